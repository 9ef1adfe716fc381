//! compose's default values for keys left out of the long syntax; follows compose-go
//! `transform/defaults.go`. Run once the files are merged (so an override file can still set them),
//! before validation of the merged model.

use super::{Path, Transformer, devices, error, secrets};
use crate::diag::Diagnostic;
use crate::load::tree::{bool_node, go_type, insert, str_node};
use crate::load::yaml::{Node, Value};

const DEFAULTS: &[(&str, Transformer)] = &[
    ("services.*.build", build_context),
    ("services.*.secrets.*", secrets::default_secret_mount),
    ("services.*.ports.*", port_defaults),
    ("services.*.deploy.resources.reservations.devices.*", devices::device_request_defaults),
    ("services.*.gpus.*", devices::device_request_defaults),
    ("services.*.volumes.*.bind", volume_bind),
];

static DEFAULTS_BY_DEPTH: std::sync::LazyLock<crate::load::tree::Patterns<Transformer>> =
    std::sync::LazyLock::new(|| crate::load::tree::Patterns::new(DEFAULTS));

/// Fills in `build.context: .`, a secret's `/run/secrets/<source>` target, a port's `tcp`/`ingress`,
/// a device request's `count: all` and a bind mount's `create_host_path: true`
/// (`transform.SetDefaultValues`). compose-go fails on a secret, device request or `bind` that is not
/// a mapping; the schema refuses those first, so here they are simply left alone.
pub fn set_default_values(root: &mut Node) {
    set_defaults(root, &Path::root());
}

fn set_defaults(node: &mut Node, path: &Path) {
    if let Some(transformer) = DEFAULTS_BY_DEPTH.find(path) {
        // A transformer only errs on a value that is not a mapping, and then leaves it untouched.
        let _ = transformer(node, path, false);
        return;
    }
    if !DEFAULTS_BY_DEPTH.below(path) {
        return;
    }
    match &mut node.value {
        Value::Map(map) => {
            for (key, entry) in map.iter_mut() {
                set_defaults(&mut entry.node, &path.key(key));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                set_defaults(item, &path.index(i));
            }
        }
        _ => {}
    }
}

fn build_context(node: &mut Node, _: &Path, _: bool) -> Result<(), Diagnostic> {
    let loc = node.loc.clone();
    if let Some(build) = node.as_map_mut()
        && !build.contains_key("context")
    {
        insert(build, "context", str_node(".", &loc), &loc);
    }
    Ok(())
}

fn port_defaults(node: &mut Node, _: &Path, _: bool) -> Result<(), Diagnostic> {
    let loc = node.loc.clone();
    if let Some(port) = node.as_map_mut() {
        if !port.contains_key("protocol") {
            insert(port, "protocol", str_node("tcp", &loc), &loc);
        }
        if !port.contains_key("mode") {
            insert(port, "mode", str_node("ingress", &loc), &loc);
        }
    }
    Ok(())
}

fn volume_bind(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    let loc = node.loc.clone();
    let Some(bind) = node.as_map_mut() else {
        return Err(error(node, path, format!("invalid type {} for service volume bind", go_type(node))));
    };
    if !bind.contains_key("create_host_path") {
        insert(bind, "create_host_path", bool_node(true, &loc), &loc);
    }
    Ok(())
}
