//! Merging one compose file into what the earlier files said.
//!
//! Follows compose-go `override/merge.go` (the merge rules of compose-spec `13-merge.md`) together with
//! the part of `loader/reset.go` that gives `!reset` and `!override` their meaning. compose-go strips
//! the tagged nodes while decoding a file, records their paths, deletes those paths from the
//! accumulated model and only then merges; we keep the tags on the nodes ([`Tag`]) and do the same three
//! steps here, on the located tree, so a merged value keeps the position of the file it came from.
//!
//! The rules, in short:
//! - mappings merge key by key, sequences are concatenated, any other value is replaced;
//! - a few keys have their own rule ([`special`]): `environment`, `labels` and friends are turned into
//!   `KEY=VALUE` lists and concatenated (duplicates are dropped later by [`super::unicity`]),
//!   `depends_on`, `networks` and `models` are turned into mappings and merged, `command`,
//!   `entrypoint` and `healthcheck.test` are replaced, `logging` options merge only for the same
//!   driver, `build` as a string means `{context: ...}`, one `ulimits` entry is replaced whole,
//!   `extra_hosts` drops repeated entries and `ipam.config` merges entries by subnet;
//! - a key tagged `!reset` in the overlay removes the key from the base and is not copied; a key tagged
//!   `!override` replaces the base's value instead of merging with it. compose-go resolves the tags
//!   before typing values, so a tagged scalar is a string (`!override 1.50` stays `"1.50"`), and tags
//!   nested inside an `!override` value are ignored.

use super::tree::{Path, go_sprint, go_type};
use super::yaml::{Entry, Map, Node, Tag, Value};
use crate::diag::Diagnostic;

/// Merges `overlay` (one file, as parsed and interpolated, tags still on its nodes) into `base` (what the
/// earlier files said). Tags in `base` are resolved too, so the first file of a project can be passed
/// as `base` directly; the result carries no tags.
pub fn merge(base: Node, overlay: Node) -> Result<Node, Diagnostic> {
    merge_at(base, overlay, &Path::root(), Mode::Consume)
}

/// Merges the service `overlay` into a copy of the service it extends (compose-go's
/// `override.ExtendService`: the service rules apply as if both sat at `services.x`).
///
/// Unlike [`merge`], the overlay's `!reset` and `!override` tags are kept in the result (a `!reset`
/// key stays as a marker): compose-go applies the tags of a file to the earlier files *after* resolving
/// `extends`, so the file-level [`merge`] that follows must still see them. Tags nested under a key
/// merged by a special rule (`environment: {FOO: !reset}`) are resolved here and do not reach it.
pub fn merge_service(base: Node, overlay: Node) -> Result<Node, Diagnostic> {
    let path = Path::root().key("services").key("x");
    merge_at(base, overlay, &path, Mode::Keep)
}

/// Whether the merge result keeps the overlay's tags (for `extends`) or resolves them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Consume,
    Keep,
}

fn merge_at(mut base: Node, mut overlay: Node, path: &Path, mode: Mode) -> Result<Node, Diagnostic> {
    // The base's own tags concern files before it, of which there are none left to affect.
    resolve_tags(&mut base);
    // Tags nested in an `!override` value are ignored (an extended service may carry one; its own tag
    // is the caller's business). A tag on the document itself has no key to reset.
    if overlay.tag == Tag::Override {
        literal(&mut overlay);
    }
    overlay.tag = Tag::None;
    remove_tagged_paths(&mut base, &overlay);
    if mode == Mode::Consume {
        resolve_tags(&mut overlay);
    }
    merge_value(base, overlay, path, mode)
}

/// Drops `!reset` nodes and clears the other tags, the way compose-go's decoder leaves a file.
fn resolve_tags(node: &mut Node) {
    match node.tag {
        Tag::Override => return literal(node),
        Tag::Reset | Tag::None => node.tag = Tag::None,
    }
    match &mut node.value {
        Value::Map(map) => {
            map.retain(|_, e| e.node.tag != Tag::Reset);
            map.values_mut().for_each(|e| resolve_tags(&mut e.node));
        }
        Value::Seq(items) => {
            items.retain(|n| n.tag != Tag::Reset);
            items.iter_mut().for_each(resolve_tags);
        }
        _ => {}
    }
}

/// An `!override` value is taken as written: go-yaml does not type a scalar carrying a tag it does not
/// know, so tagged scalars (this one and any nested one) are strings.
fn literal(node: &mut Node) {
    if node.tag != Tag::None {
        node.tag = Tag::None;
        if let Value::Scalar { plain, .. } = &mut node.value {
            *plain = false;
        }
    }
    match &mut node.value {
        Value::Map(map) => map.values_mut().for_each(|e| literal(&mut e.node)),
        Value::Seq(items) => items.iter_mut().for_each(literal),
        _ => {}
    }
}

/// compose-go's `ResetProcessor.Apply`: every key the overlay tags `!reset` or `!override` is deleted
/// from the base before merging, wherever the base has a mapping at that path. The recorded paths go
/// through mappings only (a list item's path never matches in the base, in compose-go either).
fn remove_tagged_paths(base: &mut Node, overlay: &Node) {
    let (Value::Map(base_map), Value::Map(overlay_map)) = (&mut base.value, &overlay.value) else { return };
    for (key, entry) in overlay_map {
        match entry.node.tag {
            Tag::Reset | Tag::Override => {
                base_map.shift_remove(key);
            }
            Tag::None => {
                if let Some(base_entry) = base_map.get_mut(key) {
                    remove_tagged_paths(&mut base_entry.node, &entry.node);
                }
            }
        }
    }
}

/// The rules that replace the generic merge at some paths (compose-go's `mergeSpecials`).
#[derive(Clone, Copy)]
enum Special {
    ToSequence,
    ExtraHosts,
    Override,
    DependsOn,
    ToMapping,
    Logging,
    Build,
    Ulimit,
    IpamConfig,
}

const SPECIALS: &[(&str, Special)] = &[
    ("networks.*.ipam.config", Special::IpamConfig),
    ("networks.*.labels", Special::ToSequence),
    ("volumes.*.labels", Special::ToSequence),
    ("services.*.annotations", Special::ToSequence),
    ("services.*.build", Special::Build),
    ("services.*.build.args", Special::ToSequence),
    ("services.*.build.additional_contexts", Special::ToSequence),
    ("services.*.build.extra_hosts", Special::ExtraHosts),
    ("services.*.build.labels", Special::ToSequence),
    ("services.*.command", Special::Override),
    ("services.*.depends_on", Special::DependsOn),
    ("services.*.deploy.labels", Special::ToSequence),
    ("services.*.dns", Special::ToSequence),
    ("services.*.dns_opt", Special::ToSequence),
    ("services.*.dns_search", Special::ToSequence),
    ("services.*.entrypoint", Special::Override),
    ("services.*.env_file", Special::ToSequence),
    ("services.*.label_file", Special::ToSequence),
    ("services.*.environment", Special::ToSequence),
    ("services.*.extra_hosts", Special::ExtraHosts),
    ("services.*.healthcheck.test", Special::Override),
    ("services.*.labels", Special::ToSequence),
    ("services.*.volumes.*.volume.labels", Special::ToSequence),
    ("services.*.logging", Special::Logging),
    ("services.*.models", Special::ToMapping),
    ("services.*.networks", Special::ToMapping),
    ("services.*.sysctls", Special::ToSequence),
    ("services.*.tmpfs", Special::ToSequence),
    ("services.*.ulimits.*", Special::Ulimit),
];

static SPECIALS_BY_DEPTH: std::sync::LazyLock<super::tree::Patterns<Special>> =
    std::sync::LazyLock::new(|| super::tree::Patterns::new(SPECIALS));

fn special(path: &Path) -> Option<Special> {
    SPECIALS_BY_DEPTH.find(path).copied()
}

fn cannot_override(overlay: &Node, path: &Path) -> Diagnostic {
    Diagnostic::error(Some(overlay.loc.clone()), path.to_string(), format!("cannot override {path}")).with_hint(
        "an override must have the same shape as the value it overrides: a mapping for a mapping, a list for a list",
    )
}

fn merge_value(base: Node, overlay: Node, path: &Path, mode: Mode) -> Result<Node, Diagnostic> {
    if let Some(rule) = special(path) {
        // The special rules rebuild values; markers kept for `extends` cannot survive that.
        let mut overlay = overlay;
        resolve_tags(&mut overlay);
        return merge_special(rule, base, overlay, path, mode);
    }
    if overlay.is_null() {
        return Ok(base);
    }
    match base.value {
        Value::Map(map) => {
            let Value::Map(other) = overlay.value else { return Err(cannot_override(&overlay, path)) };
            Ok(Node { value: Value::Map(merge_mappings(map, other, path, mode)?), ..base })
        }
        Value::Seq(mut items) => {
            let Value::Seq(other) = overlay.value else { return Err(cannot_override(&overlay, path)) };
            items.extend(other);
            Ok(Node { value: Value::Seq(items), ..base })
        }
        _ => Ok(overlay),
    }
}

/// compose-go's `mergeMappings`: keys only the overlay has are copied, keys both have are merged.
fn merge_mappings(mut base: Map, other: Map, path: &Path, mode: Mode) -> Result<Map, Diagnostic> {
    for (key, entry) in other {
        // Only `Mode::Keep` still sees tags here; the tagged key was already deleted from the base, so
        // the marker or the `!override` value goes in as written.
        if entry.node.tag != Tag::None {
            base.insert(key, entry);
            continue;
        }
        match base.get_mut(&key) {
            None => {
                base.insert(key, entry);
            }
            Some(existing) => {
                let previous = std::mem::replace(&mut existing.node, Node::new(Value::Null, entry.node.loc.clone()));
                existing.node = merge_value(previous, entry.node, &path.key(&key), mode)?;
            }
        }
    }
    Ok(base)
}

fn merge_special(rule: Special, base: Node, overlay: Node, path: &Path, mode: Mode) -> Result<Node, Diagnostic> {
    match rule {
        Special::Override | Special::Ulimit => Ok(overlay),
        Special::ToSequence => Ok(concat(base, overlay, false)),
        Special::ExtraHosts => Ok(concat(base, overlay, true)),
        Special::DependsOn => merge_as_mappings(base, overlay, path, mode, true),
        Special::ToMapping => merge_as_mappings(base, overlay, path, mode, false),
        Special::Build => {
            let loc = base.loc.clone();
            match (build_mapping(base), build_mapping(overlay)) {
                (Some(b), Some(o)) => Ok(Node::new(Value::Map(merge_mappings(b, o, path, mode)?), loc)),
                (Some(b), None) => Ok(Node::new(Value::Map(b), loc)),
                (None, Some(o)) => Ok(Node::new(Value::Map(o), loc)),
                (None, None) => Ok(Node::new(Value::Null, loc)),
            }
        }
        Special::Logging => {
            if overlay.is_null() {
                // compose-go crashes here; keeping the base is what a null override means elsewhere.
                return Ok(base);
            }
            let Value::Map(other) = overlay.value else { return Err(cannot_override(&overlay, path)) };
            let Value::Map(config) = base.value else { return Ok(Node { value: Value::Map(other), ..overlay }) };
            let driver = |m: &Map| m.get("driver").map(|e| e.node.to_json());
            let same_driver = match (driver(&other), driver(&config)) {
                (Some(d), Some(o)) => d == o,
                _ => true,
            };
            if same_driver {
                Ok(Node { value: Value::Map(merge_mappings(config, other, path, mode)?), ..base })
            } else {
                Ok(Node { value: Value::Map(other), ..overlay })
            }
        }
        Special::IpamConfig => merge_ipam_config(base, overlay, path, mode),
    }
}

/// `build: ./dir` is `build: {context: ./dir}`.
fn build_mapping(node: Node) -> Option<Map> {
    match node.value {
        Value::Map(map) => Some(map),
        Value::Scalar { .. } if super::tree::as_string(&node).is_some() => {
            let loc = node.loc.clone();
            let mut map = Map::new();
            map.insert("context".to_owned(), Entry { key_loc: loc, node });
            Some(map)
        }
        _ => None,
    }
}

fn merge_as_mappings(base: Node, overlay: Node, path: &Path, mode: Mode, depends_on: bool) -> Result<Node, Diagnostic> {
    let loc = base.loc.clone();
    match (to_mapping(base, depends_on), to_mapping(overlay, depends_on)) {
        (Some(b), Some(o)) => Ok(Node::new(Value::Map(merge_mappings(b, o, path, mode)?), loc)),
        (Some(b), None) => Ok(Node::new(Value::Map(b), loc)),
        // compose-go would write into a nil map and crash; an absent base is an empty one.
        (None, Some(o)) => Ok(Node::new(Value::Map(o), loc)),
        (None, None) => Ok(Node::new(Value::Null, loc)),
    }
}

/// compose-go's `convertIntoMapping`: a list of names becomes a mapping of those names, to null or,
/// for `depends_on`, to the default dependency.
fn to_mapping(node: Node, depends_on: bool) -> Option<Map> {
    match node.value {
        Value::Map(map) => Some(map),
        Value::Seq(items) => {
            let mut map = Map::new();
            for item in items {
                let Some(name) = item.as_str() else { continue };
                let value = if depends_on {
                    super::tree::map_node(
                        vec![
                            ("condition", super::tree::str_node("service_started", &item.loc)),
                            ("required", super::tree::bool_node(true, &item.loc)),
                        ],
                        &item.loc,
                    )
                } else {
                    Node::new(Value::Null, item.loc.clone())
                };
                map.insert(name.to_owned(), Entry { key_loc: item.loc.clone(), node: value });
            }
            Some(map)
        }
        _ => None,
    }
}

/// compose-go's `mergeToSequence` and `mergeExtraHosts`. Go's `append` onto a nil slice stays nil when
/// nothing is added, hence the null result when neither side gives a list.
fn concat(base: Node, overlay: Node, drop_repeated: bool) -> Node {
    let loc = base.loc.clone();
    let right = to_sequence(base);
    let mut left = to_sequence(overlay).unwrap_or_default();
    if drop_repeated && let Some(right) = &right {
        left.retain(|item| {
            let value = item.to_json();
            !right.iter().any(|r| r.to_json() == value)
        });
    }
    match right {
        None if left.is_empty() => Node::new(Value::Null, loc),
        None => Node::new(Value::Seq(left), loc),
        Some(mut items) => {
            items.extend(left);
            Node::new(Value::Seq(items), loc)
        }
    }
}

/// compose-go's `convertIntoSequence`: a mapping becomes sorted `KEY=VALUE` strings (a key without
/// value stays alone, a list value gives one entry per item), a string becomes a one-item list. An
/// empty mapping is Go's nil slice.
fn to_sequence(node: Node) -> Option<Vec<Node>> {
    match node.value {
        Value::Map(map) => {
            let mut items = Vec::new();
            for (key, entry) in map {
                match &entry.node.value {
                    Value::Null => items.push(Node::string(key, entry.key_loc)),
                    Value::Seq(values) => {
                        for value in values {
                            items.push(Node::string(format!("{key}={}", go_sprint(value)), value.loc.clone()));
                        }
                    }
                    _ => {
                        let text = format!("{key}={}", go_sprint(&entry.node));
                        items.push(Node::string(text, entry.node.loc.clone()));
                    }
                }
            }
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            (!items.is_empty()).then_some(items)
        }
        Value::Seq(items) => Some(items),
        Value::Scalar { .. } if super::tree::as_string(&node).is_some() => Some(vec![node]),
        _ => None,
    }
}

/// compose-go's `mergeIPAMConfig`, quirks included: entries are matched by `subnet`, an override entry
/// with a new subnet is added as it is, and a base entry no override entry matches is dropped.
fn merge_ipam_config(base: Node, overlay: Node, path: &Path, mode: Mode) -> Result<Node, Diagnostic> {
    let unexpected = |node: &Node, about: &Node| {
        Diagnostic::error(
            Some(node.loc.clone()),
            path.to_string(),
            format!("{path}: unexpected type {}", go_type(about)),
        )
        .with_hint("`ipam.config` is a list of mappings")
    };
    // compose-go names the base's type in both messages.
    let Value::Seq(configs) = &base.value else { return Err(unexpected(&base, &base)) };
    let Value::Seq(overrides) = &overlay.value else { return Err(unexpected(&overlay, &base)) };
    let subnet = |m: &Map| m.get("subnet").map(|e| e.node.to_json()).unwrap_or(serde_json::Value::Null);
    let as_map = |n: &Node| match &n.value {
        Value::Map(m) => m.clone(),
        _ => Map::new(),
    };
    let mut result: Vec<Map> = Vec::new();
    let mut locs = Vec::new();
    for original in configs {
        let mut right = as_map(original);
        for item in overrides {
            let left = as_map(item);
            if subnet(&left) != subnet(&right) && !result.iter().any(|c| subnet(c) == subnet(&left)) {
                result.push(left);
                locs.push(item.loc.clone());
                continue;
            }
            right = merge_mappings(right, left, path, mode)?;
            match result.iter().position(|c| subnet(c) == subnet(&right)) {
                Some(i) => result[i] = right.clone(),
                None => {
                    result.push(right.clone());
                    locs.push(original.loc.clone());
                }
            }
        }
    }
    if result.is_empty() {
        return Ok(Node::new(Value::Null, base.loc));
    }
    let items = result.into_iter().zip(locs).map(|(m, loc)| Node::new(Value::Map(m), loc)).collect();
    Ok(Node::new(Value::Seq(items), base.loc))
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
