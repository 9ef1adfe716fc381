//! `extends: name` is `extends: {service: name}`; follows compose-go `transform/extends.go`.

use super::{Path, error, transform_children};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, map_node, str_node};
use crate::load::yaml::Node;

pub(super) fn extends(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return transform_children(node, path, ignore);
    }
    if let Some(service) = as_string(node) {
        *node = map_node(vec![("service", str_node(service, &node.loc))], &node.loc);
        return Ok(());
    }
    Err(error(node, path, format!("invalid type {} for extends", go_type(node))))
}
