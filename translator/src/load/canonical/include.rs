//! `include: [path]` entries as `{path: ...}`; follows compose-go `transform/include.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, map_node, str_node};
use crate::load::yaml::Node;

pub(super) fn include(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return Ok(());
    }
    if let Some(file) = as_string(node) {
        *node = map_node(vec![("path", str_node(file, &node.loc))], &node.loc);
        return Ok(());
    }
    Err(error(node, path, format!("invalid type {} for include", go_type(node))))
}
