//! `depends_on` as a list, and the defaults of its long form; follows compose-go
//! `transform/dependson.go`. (Dependencies implied by `links`, `network_mode` and `volumes_from` are
//! added later, by [`crate::load::normalize`].)

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{bool_node, go_type, insert, map_node, str_node};
use crate::load::yaml::{Map, Node, Value};

pub(super) fn depends_on(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    match &mut node.value {
        Value::Map(map) => {
            for (name, entry) in map.iter_mut() {
                let loc = entry.node.loc.clone();
                let Some(dependency) = entry.node.as_map_mut() else {
                    return Err(error(&entry.node, &path.key(name), "unsupported value"));
                };
                if !dependency.contains_key("condition") {
                    insert(dependency, "condition", str_node("service_started", &loc), &loc);
                }
                if !dependency.contains_key("required") {
                    insert(dependency, "required", bool_node(true, &loc), &loc);
                }
            }
            Ok(())
        }
        Value::Seq(items) => {
            let mut map = Map::new();
            for (i, item) in items.iter().enumerate() {
                let Some(name) = item.as_str() else {
                    return Err(error(item, &path.index(i), format!("invalid type {} for depends_on", go_type(item))));
                };
                let long = map_node(
                    vec![
                        ("condition", str_node("service_started", &item.loc)),
                        ("required", bool_node(true, &item.loc)),
                    ],
                    &item.loc,
                );
                insert(&mut map, name, long, &item.loc);
            }
            node.value = Value::Map(map);
            Ok(())
        }
        // compose-go misspells the key in this message ("depend_on"); we name it as written.
        _ => Err(error(node, path, format!("invalid type {} for depends_on", go_type(node)))),
    }
}
