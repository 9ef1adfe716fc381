//! Secret and config mounts given by name, and a secret's default target; follows compose-go
//! `transform/secrets.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_sprint, go_type, insert, map_node, str_node};
use crate::load::yaml::Node;

/// `secrets: [db_password]` is `secrets: [{source: db_password}]` (also `configs`, `build.secrets`).
pub(super) fn file_mount(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return Ok(());
    }
    if let Some(source) = as_string(node) {
        *node = map_node(vec![("source", str_node(source, &node.loc))], &node.loc);
        return Ok(());
    }
    Err(error(node, path, format!("unsupported type {}", go_type(node))))
}

/// A service's secret is mounted at `/run/secrets/<source>` unless it says where.
pub(super) fn default_secret_mount(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    let loc = node.loc.clone();
    let Some(mount) = node.as_map_mut() else {
        return Err(error(node, path, format!("unsupported type {}", go_type(node))));
    };
    if !mount.contains_key("target") {
        // Go prints a missing source as `%!s(<nil>)`; the schema requires one, so that never shows.
        let source = mount.get("source").map_or_else(|| "%!s(<nil>)".to_owned(), |e| go_sprint(&e.node));
        insert(mount, "target", str_node(format!("/run/secrets/{source}"), &loc), &loc);
    }
    Ok(())
}
