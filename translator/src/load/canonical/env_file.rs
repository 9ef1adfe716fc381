//! `env_file` as a string or a list of paths; follows compose-go `transform/envfile.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, bool_node, go_type, insert, map_node, null_node, str_node};
use crate::load::yaml::{Node, Value};

pub(super) fn env_file(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    if as_string(node).is_some() {
        let mut item = node.clone();
        long_form(&mut item);
        node.value = Value::Seq(vec![item]);
        return Ok(());
    }
    let Value::Seq(items) = &mut node.value else {
        return Err(error(node, path, format!("invalid type {} for env_file", go_type(node))));
    };
    for item in items.iter_mut() {
        long_form(item);
    }
    Ok(())
}

/// One entry: a path is `{path, required: true}`; a mapping gets `required: true` unless it says.
fn long_form(item: &mut Node) {
    let loc = item.loc.clone();
    if let Some(path) = as_string(item) {
        *item = map_node(vec![("path", str_node(path, &loc)), ("required", bool_node(true, &loc))], &loc);
    } else if let Some(map) = item.as_map_mut() {
        if !map.contains_key("required") {
            insert(map, "required", bool_node(true, &loc), &loc);
        }
    } else {
        // compose-go turns any other entry into nil and leaves it to validation.
        *item = null_node(&loc);
    }
}
