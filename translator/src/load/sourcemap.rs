//! The hand-over point between loading and the typed model: the finished located tree becomes the
//! canonical JSON document (decoded into [`crate::model::Project`]) and the [`SourceMap`] that answers
//! where each of its values was written.

use crate::load::yaml::Node;
use crate::source::SourceMap;

/// The JSON form of `root` and the map of its locations.
pub fn to_json(root: Node) -> (serde_json::Value, SourceMap) {
    let json = root.to_json();
    (json, SourceMap::new(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    #[test]
    fn json_paths_find_their_nodes() {
        let root = parse("services:\n  web:\n    ports:\n      - 80\n", &"c.yaml".into()).unwrap();
        let (json, map) = to_json(root);
        assert_eq!(json, serde_json::json!({"services": {"web": {"ports": [80]}}}));
        assert_eq!(map.get("services/web/ports/0").map(|l| (l.line, l.column)), Some((4, 9)));
        assert_eq!(map.get("services/web/ports/@key").map(|l| (l.line, l.column)), Some((3, 5)));
    }
}
