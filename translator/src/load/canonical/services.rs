//! A service and its list-or-mapping keys; follows compose-go `transform/services.go`.

use super::{Path, error, transform_children};
use crate::diag::Diagnostic;
use crate::load::tree::{insert, null_node};
use crate::load::yaml::{Map, Node, Value};

/// A service's own keys are transformed one by one; anything but a mapping is left for validation.
pub(super) fn service(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        transform_children(node, path, ignore)?;
    }
    Ok(())
}

/// `networks: [front, back]` is `networks: {front: null, back: null}` (also `models`).
pub(super) fn string_slice_to_map(node: &mut Node, path: &Path, _: bool) -> Result<(), Diagnostic> {
    let Value::Seq(items) = &node.value else { return Ok(()) };
    let mut map = Map::new();
    for (i, item) in items.iter().enumerate() {
        // compose-go assumes strings here (the schema says so); a number keeps its text as the key.
        let Some(name) = item.as_str() else {
            return Err(error(item, &path.index(i), "invalid type, expected a name"));
        };
        insert(&mut map, name, null_node(&item.loc), &item.loc);
    }
    node.value = Value::Map(map);
    Ok(())
}
