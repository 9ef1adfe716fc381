//! `build:` as a string is the build context; follows compose-go `transform/build.go` (the context
//! default lives in [`super::defaults`]).

use super::{Path, error, transform_children};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, map_node, str_node};
use crate::load::yaml::Node;

pub(super) fn build(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return transform_children(node, path, ignore);
    }
    if let Some(context) = as_string(node) {
        *node = map_node(vec![("context", str_node(context, &node.loc))], &node.loc);
        return Ok(());
    }
    Err(error(node, path, format!("invalid type {} for build", go_type(node))))
}
