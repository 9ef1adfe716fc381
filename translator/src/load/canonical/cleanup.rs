//! Small clean-ups compose-go applies to each file's tree; follows compose-go `loader/omitEmpty.go`
//! and `loader/fix.go`.

use crate::load::tree::{Path, as_string};
use crate::load::yaml::{Node, Value};

/// Lists and mappings whose empty items mean "unset" and are dropped.
const OMIT_EMPTY: &[&str] = &["services.*.dns"];

/// Drops null and empty-string items where they mean nothing (`dns: ""` is no DNS server), run after
/// [`super::canonical`] (`loader.OmitEmpty`).
pub fn omit_empty(root: &mut Node) {
    omit(root, &Path::root());
}

fn omit(node: &mut Node, path: &Path) {
    // compose-go tests the path of the collection holding the item, not the item's own path.
    let must_omit = OMIT_EMPTY.iter().any(|pattern| path.matches(pattern));
    match &mut node.value {
        Value::Map(map) => {
            if must_omit {
                map.retain(|_, entry| !is_empty(&entry.node));
            }
            for (key, entry) in map.iter_mut() {
                omit(&mut entry.node, &path.key(key));
            }
        }
        Value::Seq(items) => {
            if must_omit {
                items.retain(|item| !is_empty(item));
            }
            // Indexes after removal, as compose-go builds a new list.
            for (i, item) in items.iter_mut().enumerate() {
                omit(item, &path.index(i));
            }
        }
        _ => {}
    }
}

fn is_empty(node: &Node) -> bool {
    node.is_null() || as_string(node) == Some("")
}

/// compose-go's `fixEmptyNotNull` turns lists that its YAML decoder produced as nil into empty lists,
/// so that schema validation sees `[]` and not `null`. Our parser already keeps `[]` as an empty
/// [`Value::Seq`], distinct from [`Value::Null`], so there is nothing to fix; this exists so the
/// pipeline reads like compose's.
pub fn fix_empty_not_null(_root: &mut Node) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn drops_empty_dns_entries_only() {
        let yaml = "services:\n  web:\n    dns: ['', 8.8.8.8, null]\n    dns_search: ['']\n    labels: {a: ''}\n";
        let mut root = parse(yaml, &Arc::from("c.yaml")).unwrap();
        omit_empty(&mut root);
        assert_eq!(
            root.to_json(),
            json!({"services": {"web": {"dns": ["8.8.8.8"], "dns_search": [""], "labels": {"a": ""}}}})
        );
    }

    #[test]
    fn empty_lists_stay_lists() {
        let mut root = parse("a: []\nb:\n", &Arc::from("c.yaml")).unwrap();
        fix_empty_not_null(&mut root);
        assert_eq!(root.to_json(), json!({"a": [], "b": null}));
    }
}
