//! `build.ssh` as a list of `ID[=PATH]`; follows compose-go `transform/ssh.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, insert, null_node, str_node};
use crate::load::yaml::{Map, Node, Value};

pub(super) fn ssh(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    match &node.value {
        Value::Map(_) => Ok(()),
        Value::Seq(items) => {
            let mut map = Map::new();
            for (i, item) in items.iter().enumerate() {
                let Some(spec) = as_string(item) else {
                    return Err(error(item, &path.index(i), format!("invalid ssh key type {}", go_type(item))));
                };
                match spec.split_once('=') {
                    Some((id, key_path)) => insert(&mut map, id, str_node(key_path, &item.loc), &item.loc),
                    // Only the agent's `default` identity may go without a path.
                    None if spec == "default" => insert(&mut map, spec, null_node(&item.loc), &item.loc),
                    None => return Err(error(item, &path.index(i), format!("invalid ssh key {spec:?}"))),
                }
            }
            node.value = Value::Map(map);
            Ok(())
        }
        _ => Err(error(node, path, format!("invalid type {} for ssh", go_type(node)))),
    }
}
