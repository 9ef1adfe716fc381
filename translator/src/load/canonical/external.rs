//! Top-level volumes, networks, secrets and configs, and the deprecated `external: {name: ...}`;
//! follows compose-go `transform/external.go`.

use super::{Path, error, transform_children};
use crate::diag::Diagnostic;
use crate::load::tree::{bool_node, insert};
use crate::load::yaml::Node;

/// `external: {name: x}` becomes `external: true` plus `name: x`; a different `name` beside it is an
/// error. compose also logs "external.name is deprecated. Please set name and external: true", which a
/// caller that reports warnings can detect with [`uses_external_name`].
pub(super) fn maybe_external(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_none() {
        // `volumes: {data: }` stays null; anything else is the schema's to refuse.
        return Ok(());
    }
    transform_children(node, path, ignore)?;
    let loc = node.loc.clone();
    let Some(resource) = node.as_map_mut() else { return Ok(()) };
    let Some(external) = resource.get_mut("external") else { return Ok(()) };
    let Some(external_map) = external.node.as_map() else { return Ok(()) };
    let external_name = external_map.get("name").map(|e| e.node.clone());
    let external_loc = external.node.loc.clone();
    external.node = bool_node(true, &external_loc);
    let Some(external_name) = external_name else { return Ok(()) };
    match resource.get("name") {
        // Compared as decoded values, as compose-go compares `any`s.
        Some(name) if name.node.to_json() != external_name.to_json() => {
            Err(error(&external_name, path, "name and external.name conflict; only use name")
                .with_hint("remove `external.name` and keep `name` with `external: true`"))
        }
        Some(_) => Ok(()),
        None => {
            insert(resource, "name", external_name, &loc);
            Ok(())
        }
    }
}

/// Whether a top-level resource still uses the deprecated `external.name`, before [`super::canonical`].
pub fn uses_external_name(resource: &Node) -> bool {
    resource.get("external").and_then(|e| e.get("name")).is_some()
}
