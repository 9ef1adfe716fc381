//! Device mappings `HOST[:CONTAINER[:PERMISSIONS]]`, and the `count` default of device requests;
//! follows compose-go `transform/device.go` and `transform/devices.go`.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::tree::{as_string, go_type, insert, map_node, str_node};
use crate::load::yaml::Node;

pub(super) fn device_mapping(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return Ok(());
    }
    let Some(spec) = as_string(node) else {
        return Err(error(node, path, format!("invalid type {} for device mapping", go_type(node))));
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, permissions) = match parts.as_slice() {
        [source] => (*source, "", "rwm"),
        [source, target] => (*source, *target, "rwm"),
        [source, target, permissions] => (*source, *target, *permissions),
        // Under `ignore`, compose-go goes on with everything empty rather than fail.
        _ if ignore => ("", "", "rwm"),
        _ => {
            return Err(error(node, path, format!("confusing device mapping, please use long syntax: {spec}"))
                .with_hint("write `{source: ..., target: ..., permissions: ...}`"));
        }
    };
    let target = if target.is_empty() { source } else { target };
    let loc = node.loc.clone();
    *node = map_node(
        vec![
            ("source", str_node(source, &loc)),
            ("target", str_node(target, &loc)),
            ("permissions", str_node(permissions, &loc)),
        ],
        &loc,
    );
    Ok(())
}

/// A device request (`gpus`, `deploy.resources.reservations.devices`) with neither `count` nor
/// `device_ids` asks for all devices.
pub(super) fn device_request_defaults(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    let loc = node.loc.clone();
    let Some(request) = node.as_map_mut() else {
        return Err(error(node, path, format!("invalid type {} for device request", go_type(node))));
    };
    if !request.contains_key("count") && !request.contains_key("device_ids") {
        insert(request, "count", str_node("all", &loc), &loc);
    }
    Ok(())
}
