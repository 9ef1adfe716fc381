//! Where a value of the resolved model came from.
//!
//! The loader keeps its final located tree beside the model: every node of it records the file, line and
//! column it was written at (after merges, `extends` and `include`, the position of the file that won).
//! Everything downstream addresses values by their [`Path`] in the canonical JSON and asks the
//! [`SourceMap`], so the typed model stays plain serde data and messages can still point at
//! `file:line:col`. The map answers by walking the tree, so keeping it costs nothing until a message
//! needs a position.

use std::fmt;
use std::sync::Arc;

use crate::load::yaml::{Node, Value};

/// A position in a compose file. Lines and columns count from 1, as editors show them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
    /// The last line the node spans (the same as `line` for scalars); `explain` quotes lines
    /// `line..=end_line` for a service.
    pub end_line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A path into the canonical model, as JSON object keys and array indexes joined by `/`:
/// `services/web/ports/0`. A last segment `@key` names the key of a mapping entry rather than its value
/// (where "unknown key" belongs).
pub type Path = str;

/// Locations of the nodes of the canonical model.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    root: Option<Arc<Node>>,
}

impl SourceMap {
    /// The map of a located tree whose JSON form is the canonical model.
    pub fn new(root: Node) -> Self {
        SourceMap { root: Some(Arc::new(root)) }
    }

    /// The location of `path`, or of its nearest ancestor that has one (values made by normalisation,
    /// such as defaults, point at the key that caused them).
    pub fn get(&self, path: &Path) -> Option<&Location> {
        let mut node = self.root.as_deref()?;
        let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
        while let Some(segment) = segments.next() {
            let next = match &node.value {
                Value::Map(map) => match map.get(segment) {
                    // `x/@key` is the key of entry `x`.
                    Some(entry) if segments.peek() == Some(&"@key") => return Some(&entry.key_loc),
                    Some(entry) => &entry.node,
                    None => break,
                },
                Value::Seq(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    Some(item) => item,
                    None => break,
                },
                _ => break,
            };
            node = next;
        }
        Some(&node.loc)
    }

    /// Shorthand for `get` with the segments joined by `/`.
    pub fn at(&self, segments: &[&str]) -> Option<&Location> {
        self.get(&segments.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    #[test]
    fn walks_to_values_keys_and_nearest_ancestors() {
        let root = parse("services:\n  web:\n    ports:\n      - 80\n", &"c.yaml".into()).unwrap();
        let map = SourceMap::new(root);
        let at = |p: &str| map.get(p).map(|l| (l.line, l.column));
        assert_eq!(at("services/web/ports/0"), Some((4, 9)));
        assert_eq!(at("services/web/ports/@key"), Some((3, 5)));
        assert_eq!(at("services/web/@key"), Some((2, 3)));
        // Made by normalisation: the nearest written ancestor answers.
        assert_eq!(at("services/web/ports/0/published"), Some((4, 9)));
        assert_eq!(at("services/web/networks"), Some((3, 5)));
        assert_eq!(map.at(&["services", "web"]).map(ToString::to_string).as_deref(), Some("c.yaml:3:5"));
        assert_eq!(SourceMap::default().get("services"), None);
    }
}
