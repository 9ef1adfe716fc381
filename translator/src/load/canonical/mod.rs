//! Short syntax rewritten to the canonical long form, and compose's default values filled in.
//!
//! Follows compose-go `transform/canonical.go` (the [`canonical`] pass, run on each file after schema
//! validation) and `transform/defaults.go` ([`set_default_values`], run once the files are merged);
//! the per-file clean-ups of `loader/omitEmpty.go` and `loader/fix.go` live in `cleanup`.
//! Both walk the tree and, at the first pattern that matches the current path, hand the node to that
//! pattern's transformer and stop descending: a transformer that wants its children transformed too
//! (`services.*`, `build`, `extends`, top-level resources) walks them itself, as compose-go's do.
//!
//! Every node a transformer creates answers to the location of the node it was made from, so a
//! message about `published` in a port written `"8080:80"` still points at that string.

mod build;
mod cleanup;
mod defaults;
mod depends_on;
mod devices;
mod env_file;
mod extends;
mod external;
mod gpus;
mod include;
mod mapping;
mod ports;
mod secrets;
mod services;
mod ssh;
mod ulimits;
mod volume;

pub use cleanup::{fix_empty_not_null, omit_empty};
pub use defaults::set_default_values;
pub use external::uses_external_name;
pub use ports::{PortConfig, parse_port_config};
pub use volume::{VolumeSpec, parse_volume};

use super::tree::{Path, go_sprint, str_node};
use super::yaml::{Node, Value};
use crate::diag::Diagnostic;

/// A transformer gets the node at a matched path and may rewrite it in place. The flag is compose's
/// `ignoreParseError` (set under `--no-interpolate`): short syntax that does not parse is left as
/// written instead of failing, because it may still hold `${VAR}`.
type Transformer = fn(&mut Node, &Path, bool) -> Result<(), Diagnostic>;

/// compose-go registers these in a map; no two patterns can match the same path, so order is free.
const TRANSFORMERS: &[(&str, Transformer)] = &[
    ("services.*", services::service),
    ("services.*.build.secrets.*", secrets::file_mount),
    ("services.*.build.provenance", string_or_x),
    ("services.*.build.sbom", string_or_x),
    ("services.*.build.additional_contexts", mapping::key_value),
    ("services.*.depends_on", depends_on::depends_on),
    ("services.*.env_file", env_file::env_file),
    ("services.*.label_file", string_or_list),
    ("services.*.extends", extends::extends),
    ("services.*.gpus", gpus::gpus),
    ("services.*.networks", services::string_slice_to_map),
    ("services.*.models", services::string_slice_to_map),
    ("services.*.volumes.*", volume::volume_mount),
    ("services.*.dns", string_or_list),
    ("services.*.devices.*", devices::device_mapping),
    ("services.*.secrets.*", secrets::file_mount),
    ("services.*.configs.*", secrets::file_mount),
    ("services.*.ports", ports::ports),
    ("services.*.build", build::build),
    ("services.*.build.ssh", ssh::ssh),
    ("services.*.ulimits.*", ulimits::ulimits),
    ("services.*.build.ulimits.*", ulimits::ulimits),
    ("services.*.develop.watch.*.ignore", string_or_list),
    ("services.*.develop.watch.*.include", string_or_list),
    ("volumes.*", external::maybe_external),
    ("networks.*", external::maybe_external),
    ("secrets.*", external::maybe_external),
    ("configs.*", external::maybe_external),
    ("include.*", include::include),
];

static TRANSFORMERS_BY_DEPTH: std::sync::LazyLock<crate::load::tree::Patterns<Transformer>> =
    std::sync::LazyLock::new(|| crate::load::tree::Patterns::new(TRANSFORMERS));

/// Rewrites every short syntax in one compose file to its long form (`transform.Canonical`).
pub fn canonical(root: &mut Node) -> Result<(), Diagnostic> {
    canonical_with(root, false)
}

/// [`canonical`], leaving unparsable short syntax as written when `ignore_parse_errors` is set, as
/// compose does when interpolation is skipped.
pub fn canonical_with(root: &mut Node, ignore_parse_errors: bool) -> Result<(), Diagnostic> {
    transform(root, &Path::root(), ignore_parse_errors)
}

fn transform(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if let Some(transformer) = TRANSFORMERS_BY_DEPTH.find(path) {
        return transformer(node, path, ignore);
    }
    if !TRANSFORMERS_BY_DEPTH.below(path) {
        return Ok(());
    }
    transform_children(node, path, ignore)
}

/// Walks into a mapping or sequence (compose-go's `transformMapping`/`transformSequence`).
fn transform_children(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    match &mut node.value {
        Value::Map(map) => {
            for (key, entry) in map.iter_mut() {
                transform(&mut entry.node, &path.key(key), ignore)?;
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                transform(item, &path.index(i), ignore)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// An error about the node at `path`, in compose's words.
fn error(node: &Node, path: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(Some(node.loc.clone()), path.to_string(), message)
}

/// A single string stands for a one-item list (`dns: 8.8.8.8`).
fn string_or_list(node: &mut Node, _: &Path, _: bool) -> Result<(), Diagnostic> {
    if super::tree::as_string(node).is_some() {
        let item = std::mem::replace(node, Node::new(Value::Null, node.loc.clone()));
        node.value = Value::Seq(vec![item]);
    }
    Ok(())
}

/// `provenance`/`sbom` take a string or a boolean; compose keeps the text either way (`true` → "true").
fn string_or_x(node: &mut Node, _: &Path, _: bool) -> Result<(), Diagnostic> {
    if super::tree::as_string(node).is_none() {
        *node = str_node(go_sprint(node), &node.loc);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
