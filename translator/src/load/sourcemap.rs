//! The finished located tree as plain JSON, plus the [`SourceMap`] that remembers where each value was
//! written. This is the hand-over point between loading (which needs positions everywhere) and the typed
//! model (which is plain serde data).

use crate::load::yaml::{Node, Value};
use crate::source::SourceMap;

/// Converts `root` to JSON and records the location of every node under its `/`-joined path; mapping
/// keys are recorded too, under the path of their value with a trailing `/@key`, which is where an
/// "unknown" or "unsupported key" message should point.
pub fn to_json(root: &Node) -> (serde_json::Value, SourceMap) {
    let mut map = SourceMap::default();
    let mut path = String::new();
    let json = walk(root, &mut path, &mut map);
    (json, map)
}

fn walk(node: &Node, path: &mut String, map: &mut SourceMap) -> serde_json::Value {
    map.insert(path.clone(), node.loc.clone());
    match &node.value {
        Value::Map(entries) => {
            let mut object = serde_json::Map::with_capacity(entries.len());
            for (key, entry) in entries {
                let len = path.len();
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(key);
                map.insert(format!("{path}/@key"), entry.key_loc.clone());
                object.insert(key.clone(), walk(&entry.node, path, map));
                path.truncate(len);
            }
            serde_json::Value::Object(object)
        }
        Value::Seq(items) => {
            let mut array = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(&i.to_string());
                array.push(walk(item, path, map));
                path.truncate(len);
            }
            serde_json::Value::Array(array)
        }
        _ => node.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    #[test]
    fn records_values_and_keys() {
        let root = parse("services:\n  web:\n    ports:\n      - 80\n", &"c.yaml".into()).unwrap();
        let (json, map) = to_json(&root);
        assert_eq!(json, serde_json::json!({"services": {"web": {"ports": [80]}}}));
        assert_eq!(map.get("services/web/ports/0").map(|l| (l.line, l.column)), Some((4, 9)));
        assert_eq!(map.get("services/web/ports/@key").map(|l| (l.line, l.column)), Some((3, 5)));
    }
}
