//! A `KEY=VALUE` list as a mapping (`build.additional_contexts`); follows compose-go
//! `transform/mapping.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{go_type, insert, str_node};
use crate::load::yaml::{Map, Node, Value};

pub(super) fn key_value(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    match &node.value {
        Value::Map(_) => Ok(()),
        Value::Seq(items) => {
            let mut map = Map::new();
            for item in items {
                let Some((key, value)) = item.as_str().and_then(|s| s.split_once('=')) else {
                    if ignore {
                        return Ok(());
                    }
                    let text = item.as_str().unwrap_or_default();
                    return Err(error(item, path, format!("invalid value {text}, expected key=value")));
                };
                insert(&mut map, key, str_node(value, &item.loc), &item.loc);
            }
            node.value = Value::Map(map);
            Ok(())
        }
        _ => Err(error(node, path, format!("invalid type {}", go_type(node)))),
    }
}
