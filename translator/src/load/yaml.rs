//! Located YAML trees.
//!
//! Compose files are parsed with the event parser that serde-saphyr is built on (`granit_parser`) into a
//! [`Node`] tree that keeps the position of every value, because interpolation, merging, `extends` and
//! normalisation all happen before the typed model exists, and every message they produce must still
//! name a line and column. Anchors are resolved by copying the anchored node (a merged or overridden copy
//! must not change the original), `<<` merge keys are applied as YAML 1.1 defines them (keys written in
//! the mapping win; with a list of mappings the first one wins), and the compose tags `!reset` and
//! `!override` are kept for [`super::merge`].

use std::sync::Arc;

use indexmap::IndexMap;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, Tag as YamlTag};

use crate::diag::Diagnostic;
use crate::source::Location;

/// A YAML node with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Location,
    pub tag: Tag,
}

/// The compose-spec merge tags (`13-merge.md`); other tags are refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    None,
    /// `!reset`: drop what earlier files said for this key.
    Reset,
    /// `!override`: replace what earlier files said instead of merging.
    Override,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// A scalar as written. `plain` scalars are typed by the YAML core schema (`8080` is a number,
    /// `true` a boolean); quoted and block scalars are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Map),
}

/// A mapping; keys keep their own position so that "unknown key" can point at the key.
pub type Map = IndexMap<String, Entry>;

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key_loc: Location,
    pub node: Node,
}

impl Node {
    pub fn new(value: Value, loc: Location) -> Self {
        Node { value, loc, tag: Tag::None }
    }

    pub fn string(text: impl Into<String>, loc: Location) -> Self {
        Node::new(Value::Scalar { text: text.into(), plain: false }, loc)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar of any style.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key).map(|e| &e.node)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.get_mut(key).map(|e| &mut e.node)
    }

    /// The scalar typed by the YAML core schema, as compose-go's YAML decoder types it.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, plain: true } => plain_scalar(text),
            Value::Scalar { text, plain: false } => serde_json::Value::String(text.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(map) => map.iter().map(|(k, e)| (k.clone(), e.node.to_json())).collect(),
        }
    }
}

/// Types a plain scalar by the YAML 1.2 core schema (what go-yaml v3 does when decoding into `any`).
pub fn plain_scalar(text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return J::Null,
        "true" | "True" | "TRUE" => return J::Bool(true),
        "false" | "False" | "FALSE" => return J::Bool(false),
        _ => {}
    }
    // Like go-yaml v3 (which compose-go uses), a scalar that starts like a number is read with its
    // underscores removed: `1_000` is 1000.
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return J::String(text.to_owned());
    }
    let plain = text.replace('_', "");
    if let Some(i) = parse_int(&plain) {
        return J::from(i);
    }
    // go-yaml's float pattern also takes what `ParseInt` refused but is all digits (`08`, huge numbers).
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if (is_float(&plain) || all_digits)
        && let Ok(f) = plain.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return J::Number(n);
    }
    J::String(text.to_owned())
}

/// Go's `strconv.ParseInt(s, 0, 64)`, as go-yaml v3 reads integers: `0x1F`, `0o17`, `0b101`, and a
/// leading zero for octal (YAML 1.1's `0440`, file modes).
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        (16, hex)
    } else if let Some(oct) = digits.strip_prefix("0o").or_else(|| digits.strip_prefix("0O")) {
        (8, oct)
    } else if let Some(bin) = digits.strip_prefix("0b").or_else(|| digits.strip_prefix("0B")) {
        (2, bin)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -value } else { value })
}

fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && frac.is_none_or(digits) && !(int.is_empty() && frac.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

/// How many values aliases may copy in one file. A real project stays far below (1,000 services sharing
/// an anchor of 50 values copy 50,000); a "billion laughs" file, anchors of anchors of anchors, would
/// exhaust memory long before it finished.
pub const MAX_ALIAS_EXPANSION: usize = 2_000_000;

/// Parses one compose file. An empty file is an empty mapping's worth of nothing: `Value::Null`.
pub fn parse(text: &str, file: &Arc<str>) -> Result<Node, Diagnostic> {
    let mut builder = Builder { file: file.clone(), anchors: Vec::new(), stack: Vec::new(), root: None };
    let mut expanded = 0usize;
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            let mut col = m.col();
            // The scanner stops after a stray tab; point at the tab itself.
            if e.info().contains("tab")
                && let Some(line) = text.lines().nth(m.line().saturating_sub(1))
                && let Some(tab) = line.find('\t')
            {
                col = line[..tab].chars().count();
            }
            let loc = location(file, m.line(), col, m.line());
            Diagnostic::error(Some(loc), "", format!("invalid YAML: {}", e.info()))
                .with_hint("check the indentation and quoting on this line")
        })?;
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        Some(builder.loc(&span)),
                        "",
                        "a compose file holds one YAML document, this is the second",
                    )
                    .with_hint("remove the `---` line or split the file and pass each with -f"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag = builder.tag(tag.as_deref(), &span)?;
                let value = if style == ScalarStyle::Plain && is_null_text(&text) && tag == Tag::None {
                    Value::Null
                } else {
                    Value::Scalar { text: text.into_owned(), plain: style == ScalarStyle::Plain }
                };
                let node = Node { value, loc: builder.loc(&span), tag };
                builder.push_node(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                let tag = builder.tag(tag.as_deref(), &span)?;
                let node = Node { value: Value::Seq(Vec::new()), loc: builder.loc(&span), tag };
                builder.stack.push(Frame { node, anchor, pending_key: None, merges: Vec::new() });
            }
            Event::MappingStart(_, anchor, tag) => {
                let tag = builder.tag(tag.as_deref(), &span)?;
                let node = Node { value: Value::Map(Map::new()), loc: builder.loc(&span), tag };
                builder.stack.push(Frame { node, anchor, pending_key: None, merges: Vec::new() });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let mut frame = builder.stack.pop().expect("the parser balances start and end events");
                // A block collection's end event sits at the next token, often lines later: the
                // collection ends where its last child ends.
                let last_child = match &frame.node.value {
                    Value::Seq(items) => items.last().map(|n| n.loc.end_line),
                    Value::Map(map) => map.last().map(|(_, e)| e.node.loc.end_line),
                    _ => None,
                };
                frame.node.loc.end_line = last_child.unwrap_or(frame.node.loc.line).max(frame.node.loc.line);
                if !frame.merges.is_empty() {
                    apply_merges(&mut frame.node, frame.merges)?;
                }
                builder.push_node(frame.node, frame.anchor)?;
            }
            Event::Alias(id) => {
                let anchored = builder.anchors.get(id).and_then(Option::as_ref).ok_or_else(|| {
                    Diagnostic::error(
                        Some(builder.loc(&span)),
                        "",
                        "this alias refers to an anchor that is not defined",
                    )
                })?;
                // Counted before copying, so a "billion laughs" file is refused before it fills memory.
                expanded += size(anchored);
                if expanded > MAX_ALIAS_EXPANSION {
                    return Err(Diagnostic::error(
                        Some(builder.loc(&span)),
                        "",
                        format!("aliases expand to more than {MAX_ALIAS_EXPANSION} values"),
                    )
                    .with_hint("anchors that nest aliases of other anchors multiply; flatten them"));
                }
                let node = anchored.clone();
                // The copy answers to where it is used, so merged keys point at the `<<`/`*` site.
                let mut node = node;
                relocate(&mut node, &builder.loc(&span));
                builder.push_node(node, 0)?;
            }
            _ => {}
        }
    }
    Ok(builder.root.unwrap_or_else(|| Node::new(Value::Null, location(file, 1, 0, 1))))
}

/// The number of nodes in a tree.
fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(map) => map.values().map(|e| size(&e.node)).sum(),
        _ => 0,
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn location(file: &Arc<str>, line: usize, col0: usize, end_line: usize) -> Location {
    Location { file: file.clone(), line: line as u32, column: col0 as u32 + 1, end_line: end_line as u32 }
}

/// Anchored copies keep the positions of their definition for their children (so an error inside an
/// anchored block points into the block), but the copy's own root points at the alias.
fn relocate(node: &mut Node, at: &Location) {
    node.loc = Location { end_line: at.line, ..at.clone() };
}

struct Frame {
    node: Node,
    anchor: usize,
    /// In a mapping, the key read but not yet given its value.
    pending_key: Option<(String, Location)>,
    /// Values of `<<` keys, applied when the mapping ends so written keys win whatever their order.
    merges: Vec<Node>,
}

struct Builder {
    file: Arc<str>,
    anchors: Vec<Option<Node>>,
    stack: Vec<Frame>,
    root: Option<Node>,
}

impl Builder {
    fn loc(&self, span: &Span) -> Location {
        location(&self.file, span.start.line(), span.start.col(), span.end.line())
    }

    fn tag(&self, tag: Option<&YamlTag>, span: &Span) -> Result<Tag, Diagnostic> {
        let Some(tag) = tag else { return Ok(Tag::None) };
        match (tag.handle(), tag.suffix()) {
            ("!", "reset") => Ok(Tag::Reset),
            ("!", "override") => Ok(Tag::Override),
            // Explicit core tags (`!!str 8080`) are accepted; the value keeps its text.
            ("tag:yaml.org,2002:", _) => Ok(Tag::None),
            (handle, suffix) => {
                Err(Diagnostic::error(Some(self.loc(span)), "", format!("unknown YAML tag `{handle}{suffix}`"))
                    .with_hint("compose understands only `!reset` and `!override`"))
            }
        }
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(map) => match parent.pending_key.take() {
                None => {
                    let key = match &node.value {
                        Value::Scalar { text, .. } => text.clone(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(Diagnostic::error(
                                Some(node.loc),
                                "",
                                "a mapping key must be a plain value, not a list or mapping",
                            ));
                        }
                    };
                    parent.pending_key = Some((key, node.loc));
                }
                Some((key, key_loc)) => {
                    if key == "<<" && node.tag == Tag::None {
                        parent.merges.push(node);
                    } else if let Some(previous) = map.get(&key) {
                        return Err(Diagnostic::error(
                            Some(key_loc),
                            key.clone(),
                            format!("mapping key \"{key}\" already defined at line {}", previous.key_loc.line),
                        )
                        .with_hint("remove one of the two entries"));
                    } else {
                        map.insert(key, Entry { key_loc, node });
                    }
                }
            },
            _ => unreachable!("only collections are pushed on the stack"),
        }
        Ok(())
    }
}

/// YAML 1.1 merge keys: every key of the merged mappings that the mapping does not write itself.
fn apply_merges(target: &mut Node, merges: Vec<Node>) -> Result<(), Diagnostic> {
    let Value::Map(map) = &mut target.value else { return Ok(()) };
    for merge in merges {
        let sources: Vec<Node> = match merge.value {
            Value::Map(_) => vec![merge],
            Value::Seq(items) => items,
            _ => {
                return Err(Diagnostic::error(
                    Some(merge.loc),
                    "<<",
                    "a merge key takes a mapping or a list of mappings",
                )
                .with_hint("write `<<: *anchor` where `&anchor` names a mapping"));
            }
        };
        for source in sources {
            let Value::Map(source_map) = source.value else {
                return Err(Diagnostic::error(
                    Some(source.loc),
                    "<<",
                    "a merge key takes a mapping or a list of mappings",
                ));
            };
            for (key, entry) in source_map {
                map.entry(key).or_insert(entry);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file() -> Arc<str> {
        Arc::from("compose.yaml")
    }

    fn parse_ok(text: &str) -> Node {
        parse(text, &file()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn types_plain_scalars_like_the_core_schema() {
        let n = parse_ok("a: 8080\nb: '8080'\nc: true\nd: ~\ne: 1.5\nf: 0x1F\ng: yes\nh:\ni: 1e3\nj: .5\nk: 1.2.3\n");
        assert_eq!(
            n.to_json(),
            json!({"a": 8080, "b": "8080", "c": true, "d": null, "e": 1.5, "f": 31, "g": "yes", "h": null, "i": 1000.0, "j": 0.5, "k": "1.2.3"})
        );
    }

    #[test]
    fn reads_integers_like_go_yaml_v3() {
        let n = parse_ok("a: 0440\nb: 0o17\nc: 0b101\nd: 1_000\ne: 08\nf: -010\ng: _1\nh: 0\n");
        assert_eq!(n.to_json(), json!({"a": 288, "b": 15, "c": 5, "d": 1000, "e": 8.0, "f": -8, "g": "_1", "h": 0}));
    }

    #[test]
    fn keeps_lines_and_columns() {
        let n = parse_ok("services:\n  web:\n    image: nginx\n");
        let web = n.get("services").unwrap().get("web").unwrap();
        let image = web.get("image").unwrap();
        assert_eq!((image.loc.line, image.loc.column), (3, 12));
        let key_loc = &web.as_map().unwrap()["image"].key_loc;
        assert_eq!((key_loc.line, key_loc.column), (3, 5));
        assert_eq!((web.loc.line, web.loc.end_line), (3, 3));
        let n = parse_ok("a:\n  b:\n    - 1\n    - 2\n\nc: 3\n");
        assert_eq!(n.get("a").unwrap().loc.end_line, 4);
    }

    #[test]
    fn merge_keys_never_override_written_keys() {
        let n = parse_ok("x: &x {a: 1, b: 2}\ny: &y {b: 3, c: 4}\nz:\n  a: 0\n  <<: [*x, *y]\n");
        assert_eq!(n.get("z").unwrap().to_json(), json!({"a": 0, "b": 2, "c": 4}));
    }

    #[test]
    fn anchored_copies_are_independent() {
        let n = parse_ok("a: &a [1, 2]\nb: *a\n");
        assert_eq!(n.to_json(), json!({"a": [1, 2], "b": [1, 2]}));
    }

    #[test]
    fn keeps_compose_tags() {
        let n = parse_ok("a: !reset []\nb: !override {x: 1}\nc: !reset null\n");
        assert_eq!(n.get("a").unwrap().tag, Tag::Reset);
        assert_eq!(n.get("b").unwrap().tag, Tag::Override);
        assert_eq!(n.get("c").unwrap().tag, Tag::Reset);
    }

    #[test]
    fn refuses_duplicate_keys_unknown_tags_and_bad_yaml() {
        let e = parse("a: 1\nb: 2\na: 3\n", &file()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error: compose.yaml:3:1: a: mapping key \"a\" already defined at line 1; hint: remove one of the two entries"
        );
        let e = parse("a: !foo 1\n", &file()).unwrap_err();
        assert!(e.to_string().contains("unknown YAML tag"), "{e}");
        let e = parse("a:\n  b: 1\n c: 2\n", &file()).unwrap_err();
        assert!(e.to_string().starts_with("error: compose.yaml:3:"), "{e}");
        let e = parse("a: *nope\n", &file()).unwrap_err();
        assert!(e.location.is_some());
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse(&text, &file()).unwrap_err();
        assert!(e.message.contains("aliases expand to more than"), "{e}");
    }

    #[test]
    fn empty_file_is_null() {
        assert!(parse_ok("").is_null());
        assert!(parse_ok("# only a comment\n").is_null());
    }
}
