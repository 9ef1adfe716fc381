//! Paths into a compose tree, the patterns the loader's passes dispatch on, and small helpers to read
//! and build [`Node`]s the way compose-go reads and builds its `map[string]any`.
//!
//! Follows compose-go `tree/path.go`: a pattern is a dotted list of segments where `*` matches any
//! key or list item and `[]` matches a list item. compose-go keeps a path as a dotted string and
//! hides dots inside keys; we keep the segments apart, which gives the same matching and lets
//! messages name list items by index (`services.web.ports[2]`).

use std::fmt;
use std::rc::Rc;

use super::yaml::{Entry, Map, Node, Value, plain_scalar};
use crate::source::Location;

/// Where a node sits in the tree, from the root. Every pass of the loader makes one for every node, so
/// it is a shared list from the leaf back to the root: extending it allocates one link, not a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    last: Option<Rc<Link>>,
}

#[derive(Debug, PartialEq, Eq)]
struct Link {
    parent: Path,
    part: Part,
    depth: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Key(Box<str>),
    Index(usize),
}

impl Path {
    pub fn root() -> Self {
        Path::default()
    }

    fn push(&self, part: Part) -> Path {
        let depth = self.len() + 1;
        Path { last: Some(Rc::new(Link { parent: self.clone(), part, depth })) }
    }

    /// The path of the value under `key` in the mapping at `self`.
    pub fn key(&self, key: &str) -> Path {
        self.push(Part::Key(key.into()))
    }

    /// The path of item `index` in the sequence at `self`.
    pub fn index(&self, index: usize) -> Path {
        self.push(Part::Index(index))
    }

    /// How many segments deep the path is.
    pub fn len(&self) -> usize {
        self.last.as_ref().map_or(0, |l| l.depth)
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The segments from the leaf back to the root.
    fn rev_parts(&self) -> impl Iterator<Item = &Part> {
        std::iter::successors(self.last.as_deref(), |link| link.parent.last.as_deref()).map(|link| &link.part)
    }

    /// Whether the path matches a pattern such as `services.*.volumes.*`; `*` matches any key and any
    /// list item, `[]` a list item, and every other segment itself.
    pub fn matches(&self, pattern: &str) -> bool {
        pattern.split('.').count() == self.len() && self.matches_rev(pattern.rsplit('.'))
    }

    /// Compares the segments of a pattern, given leaf first, with the path (whose depth must be theirs).
    fn matches_rev<'a>(&self, mut segments: impl Iterator<Item = &'a str>) -> bool {
        self.rev_parts().all(|part| match (segments.next(), part) {
            (None, _) => false,
            (Some("*"), _) | (Some("[]"), Part::Index(_)) => true,
            (Some(literal), Part::Key(key)) => literal == &**key,
            (Some(_), Part::Index(_)) => false,
        })
    }
}

/// A table of patterns for [`Path::matches`], split once and grouped by depth, so that finding the
/// entry for a path compares it with the few patterns of its own depth. Every pass of the loader runs
/// this for every node.
pub struct Patterns<T: 'static> {
    by_depth: Vec<Vec<(Vec<&'static str>, &'static T)>>,
}

impl<T> Patterns<T> {
    pub fn new(table: &'static [(&'static str, T)]) -> Self {
        let mut by_depth: Vec<Vec<(Vec<&'static str>, &'static T)>> = Vec::new();
        for (pattern, value) in table {
            let segments: Vec<&'static str> = pattern.split('.').collect();
            if by_depth.len() <= segments.len() {
                by_depth.resize_with(segments.len() + 1, Vec::new);
            }
            by_depth[segments.len()].push((segments, value));
        }
        Patterns { by_depth }
    }

    /// Whether some pattern is longer than `path` and could match below it: a walk that only acts where
    /// a pattern matches need not descend where this is false.
    pub fn below(&self, path: &Path) -> bool {
        let depth = path.len();
        let prefix: Vec<&Part> = {
            let mut parts: Vec<&Part> = path.rev_parts().collect();
            parts.reverse();
            parts
        };
        self.by_depth.iter().skip(depth + 1).flatten().any(|(segments, _)| {
            segments.iter().zip(&prefix).all(|(segment, part)| match (*segment, part) {
                ("*", _) | ("[]", Part::Index(_)) => true,
                (literal, Part::Key(key)) => literal == &**key,
                (_, Part::Index(_)) => false,
            })
        })
    }

    /// The value of the first pattern (in table order) that `path` matches.
    pub fn find(&self, path: &Path) -> Option<&'static T> {
        let candidates = self.by_depth.get(path.len())?;
        candidates
            .iter()
            .find(|(segments, _)| path.matches_rev(segments.iter().rev().copied()))
            .map(|(_, value)| *value)
    }
}

/// `services.web.ports[2]`, the way a user would point at the value.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&Part> = self.rev_parts().collect();
        parts.reverse();
        for (i, part) in parts.into_iter().enumerate() {
            match part {
                Part::Key(key) if i == 0 => write!(f, "{key}")?,
                Part::Key(key) => write!(f, ".{key}")?,
                Part::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The value a YAML decoder into `any` would produce, as JSON: plain scalars typed by the core schema.
fn scalar_json(node: &Node) -> Option<serde_json::Value> {
    match &node.value {
        Value::Scalar { text, plain: true } => Some(plain_scalar(text)),
        Value::Scalar { text, plain: false } => Some(serde_json::Value::String(text.clone())),
        _ => None,
    }
}

/// The text of a node that compose-go would hold as a Go `string` (not a number, boolean or null).
pub fn as_string(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar { text, plain: false } => Some(text),
        Value::Scalar { text, plain: true } => match plain_scalar(text) {
            serde_json::Value::String(_) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// The value of a node that compose-go would hold as a Go `int`.
pub fn as_int(node: &Node) -> Option<i64> {
    scalar_json(node)?.as_i64().filter(|_| matches!(node.value, Value::Scalar { plain: true, .. }))
}

/// The Go type name compose-go prints in "invalid type %T" messages, so ours read the same.
pub fn go_type(node: &Node) -> &'static str {
    match &node.value {
        Value::Null => "<nil>",
        Value::Seq(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Scalar { .. } => match scalar_json(node) {
            Some(serde_json::Value::Bool(_)) => "bool",
            Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => "int",
            Some(serde_json::Value::Number(_)) => "float64",
            Some(serde_json::Value::Null) => "<nil>",
            _ => "string",
        },
    }
}

/// What Go's `fmt.Sprint` prints for a decoded scalar; collections are printed as JSON, which Go
/// never does, but no compose path relies on printing one.
pub fn go_sprint(node: &Node) -> String {
    match scalar_json(node) {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Bool(b)) => b.to_string(),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or_default()),
        },
        Some(serde_json::Value::Null) | None if node.is_null() => "<nil>".to_owned(),
        _ => node.to_json().to_string(),
    }
}

/// Go's `%v` for a float64 (`strconv` 'g', shortest): exponent form below 1e-4 and from 1e6 up.
fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A string scalar (quoted, so later passes never retype it) placed at `loc`.
pub fn str_node(text: impl Into<String>, loc: &Location) -> Node {
    Node::string(text, loc.clone())
}

/// A plain scalar: typed by the core schema, like a number or boolean written in the file.
pub fn plain_node(text: impl Into<String>, loc: &Location) -> Node {
    Node::new(Value::Scalar { text: text.into(), plain: true }, loc.clone())
}

pub fn bool_node(value: bool, loc: &Location) -> Node {
    plain_node(if value { "true" } else { "false" }, loc)
}

pub fn null_node(loc: &Location) -> Node {
    Node::new(Value::Null, loc.clone())
}

/// A mapping whose keys and values all answer to `loc`, the node they were made from.
pub fn map_node(entries: Vec<(&str, Node)>, loc: &Location) -> Node {
    let mut map = Map::new();
    for (key, node) in entries {
        insert(&mut map, key, node, loc);
    }
    Node::new(Value::Map(map), loc.clone())
}

/// Inserts or replaces `key`, the key answering to `key_loc`.
pub fn insert(map: &mut Map, key: &str, node: Node, key_loc: &Location) {
    map.insert(key.to_owned(), Entry { key_loc: key_loc.clone(), node });
}

/// Whether a mapping has `key` with a value other than null (Go's `m[key] == nil` is false).
pub fn has_value(map: &Map, key: &str) -> bool {
    map.get(key).is_some_and(|e| !e.node.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_compose_go() {
        let p = Path::root().key("services").key("web").key("volumes").index(0);
        assert!(p.matches("services.*.volumes.*"));
        assert!(p.matches("services.*.volumes.[]"));
        assert!(!p.matches("services.*.volumes"));
        assert!(!p.matches("services.*.ports.*"));
        let dotted = Path::root().key("services").key("a.b");
        assert!(dotted.matches("services.*"));
        assert!(!dotted.matches("services.a.b"));
        assert_eq!(p.to_string(), "services.web.volumes[0]");
    }

    #[test]
    fn prints_like_go() {
        let loc = Location { file: "c.yaml".into(), line: 1, column: 1, end_line: 1 };
        assert_eq!(go_sprint(&plain_node("True", &loc)), "true");
        assert_eq!(go_sprint(&plain_node("1.5", &loc)), "1.5");
        assert_eq!(go_sprint(&plain_node("1e6", &loc)), "1e+06");
        assert_eq!(go_sprint(&plain_node("100000.0", &loc)), "100000");
        assert_eq!(go_sprint(&null_node(&loc)), "<nil>");
        assert_eq!(go_type(&plain_node("8080", &loc)), "int");
        assert_eq!(go_type(&str_node("8080", &loc)), "string");
    }
}
