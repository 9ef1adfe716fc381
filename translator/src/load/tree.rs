//! Paths into a compose tree, the patterns the loader's passes dispatch on, and small helpers to read
//! and build [`Node`]s the way compose-go reads and builds its `map[string]any`.
//!
//! Follows compose-go `tree/path.go`: a pattern is a dotted list of segments where `*` matches any
//! key or list item and `[]` matches a list item. compose-go keeps a path as a dotted string and
//! hides dots inside keys; we keep the segments apart, which gives the same matching and lets
//! messages name list items by index (`services.web.ports[2]`).

use std::fmt;

use super::yaml::{Entry, Map, Node, Value, plain_scalar};
use crate::source::Location;

/// Where a node sits in the tree, from the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Self {
        Path::default()
    }

    /// The path of the value under `key` in the mapping at `self`.
    pub fn key(&self, key: &str) -> Path {
        let mut parts = self.parts.clone();
        parts.push(Part::Key(key.to_owned()));
        Path { parts }
    }

    /// The path of item `index` in the sequence at `self`.
    pub fn index(&self, index: usize) -> Path {
        let mut parts = self.parts.clone();
        parts.push(Part::Index(index));
        Path { parts }
    }

    /// Whether the path matches a pattern such as `services.*.volumes.*`; `*` matches any key and any
    /// list item, `[]` a list item, and every other segment itself.
    pub fn matches(&self, pattern: &str) -> bool {
        let segments: Vec<&str> = pattern.split('.').collect();
        segments.len() == self.parts.len()
            && segments.iter().zip(&self.parts).all(|(segment, part)| match (*segment, part) {
                ("*", _) | ("[]", Part::Index(_)) => true,
                (literal, Part::Key(key)) => literal == key,
                (_, Part::Index(_)) => false,
            })
    }
}

/// `services.web.ports[2]`, the way a user would point at the value.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
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
