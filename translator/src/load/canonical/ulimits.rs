//! A ulimit is a number or `{soft, hard}`; follows compose-go `transform/ulimits.go`, which only checks
//! the type.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_int, go_type};
use crate::load::yaml::Node;

pub(super) fn ulimits(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() || as_int(node).is_some() {
        return Ok(());
    }
    // compose-go says "for external" here, a copy-paste slip; we name the key.
    Err(error(node, path, format!("invalid type {} for ulimit", go_type(node))))
}
