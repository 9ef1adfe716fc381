//! `gpus: all` is one request for every GPU; follows compose-go `transform/gpus.go` (the `count`
//! default of each request lives in [`super::defaults`]).

use super::{Path, error, transform_children};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, map_node, str_node};
use crate::load::yaml::{Node, Value};

pub(super) fn gpus(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_seq().is_some() {
        return transform_children(node, path, ignore);
    }
    // Any string means "all": the schema allows no other.
    if as_string(node).is_some() {
        let request = map_node(vec![("count", str_node("all", &node.loc))], &node.loc);
        node.value = Value::Seq(vec![request]);
        return Ok(());
    }
    Err(error(node, path, format!("invalid type {} for gpus", go_type(node))))
}
