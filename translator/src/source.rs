//! Where a value of the resolved model came from.
//!
//! The loader keeps a [`SourceMap`] beside the model: for every node of the canonical JSON document it
//! records the file, line and column the node was written at (after merges, `extends` and `include`, the
//! position of the file that won). Everything downstream addresses values by [`Path`] and asks the map,
//! so the typed model stays plain serde data and messages can still point at `file:line:col`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

/// A path into the canonical model, as JSON object keys and array indexes: `services/web/ports/0`.
pub type Path = str;

/// Locations of the nodes of the canonical model, keyed by their `/`-joined path.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    entries: HashMap<String, Location>,
}

impl SourceMap {
    pub fn insert(&mut self, path: String, location: Location) {
        self.entries.insert(path, location);
    }

    /// The location of `path`, or of its nearest ancestor that has one (values made by normalisation,
    /// such as defaults, point at the key that caused them).
    pub fn get(&self, path: &Path) -> Option<&Location> {
        let mut path = path;
        loop {
            if let Some(found) = self.entries.get(path) {
                return Some(found);
            }
            path = &path[..path.rfind('/')?];
        }
    }

    /// Shorthand for `get` with the segments joined by `/`.
    pub fn at(&self, segments: &[&str]) -> Option<&Location> {
        self.get(&segments.join("/"))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let mut map = SourceMap::default();
        let loc = Location { file: "compose.yaml".into(), line: 3, column: 5, end_line: 4 };
        map.insert("services/web".into(), loc.clone());
        assert_eq!(map.get("services/web/ports/0/published"), Some(&loc));
        assert_eq!(map.get("volumes"), None);
        assert_eq!(map.at(&["services", "web"]).map(ToString::to_string).as_deref(), Some("compose.yaml:3:5"));
    }
}
