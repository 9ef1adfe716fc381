//! Working on stored objects without decoding them: the list path's fast lane.
//!
//! Objects are stored as compact JSON without `metadata.resourceVersion` (the store's `mod_revision` is
//! the resourceVersion). A list used to decode every stored value into a `serde_json::Value`, set the
//! resourceVersion and encode it again, about 100 µs per pod. Here instead:
//!
//! - [`stamp_resource_version`] copies the stored bytes and edits in the resourceVersion with a small
//!   scanner over the top-level `metadata` object. The scanner, rather than "insert right after
//!   `"metadata":{`", because (a) with serde_json's `preserve_order` the stored key order is the client's,
//!   so `metadata` is not always first and a nested `spec.template.metadata` could come before it, (b) an
//!   older or foreign writer may have left a (stale) resourceVersion in the bytes, which must be replaced,
//!   not duplicated, and (c) appending it as the last member of `metadata` gives byte for byte what the
//!   old decode/insert/encode path gave (`IndexMap` appends a new key, replaces an existing one in place),
//!   so clients see no change at all. Strings are skipped with their escapes, so braces and quotes inside
//!   names, labels or annotations cannot confuse it. Anything it does not understand returns `None`, and
//!   the caller falls back to the full decode (which reports bad JSON properly).
//! - [`Sparse`] decodes only the paths a label or field selector reads (`metadata.labels` and each field
//!   selector's path), skipping the rest of the object without allocating; the selectors then run on
//!   that small `Value` exactly as they would on the whole object.

use jiff::Timestamp;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use super::errors::{ApiError, ApiResult};
use super::registry::{decode, write_stamped};
use super::selectors::{FieldSelector, LabelSelector};
use super::table::{self, IncludeObject, RowPrinter};
use crate::store::{KeyValue, Revision};

/// A list as a `meta.k8s.io/v1` Table written from stored objects: each row's cells from a narrow decode
/// (when the printer says what it reads, see [`RowPrinter::paths`]), its `object` spliced from the stored
/// bytes. The same bytes as serialising `table::to_table_at` over the decoded objects.
pub fn table_from_stored(
    group: &str,
    plural: &str,
    items: &[KeyValue],
    list_meta: Value,
    include: IncludeObject,
    now: Timestamp,
) -> ApiResult<Vec<u8>> {
    let printer = RowPrinter::new(group, plural);
    let sparse = printer.paths().map(|paths| Sparse::from_paths(paths.iter().copied()));
    let envelope = serde_json::to_vec(&table::to_table_at(group, plural, &[], list_meta, include, now))
        .map_err(|e| ApiError::internal(format!("encoding a table: {e}")))?;
    // The envelope ends with `"rows":[]}`: the rows go between the brackets.
    let head = envelope.strip_suffix(b"]}").ok_or_else(|| ApiError::internal("a table without rows"))?;
    let per_row = match include {
        IncludeObject::None => 128,
        IncludeObject::Metadata => 768,
        IncludeObject::Object => 2048,
    };
    let mut out = Vec::with_capacity(head.len() + items.len() * per_row + 2);
    out.extend_from_slice(head);
    let encoding = |e: serde_json::Error| ApiError::internal(format!("encoding a table row: {e}"));
    for (i, kv) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let view = match &sparse {
            Some(sparse) => sparse.decode(&kv.value).map_err(not_json)?,
            None => decode(kv)?,
        };
        serde_json::to_writer(&mut out, &printer.row(&view, now)).map_err(encoding)?;
        // The row is an object with at least `cells`: reopen it to add `object`.
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.pop();
                out.extend_from_slice(
                    br#","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
                );
                if !stamped_metadata(&kv.value, kv.mod_revision, &mut out) {
                    let meta = decode(kv)?.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    serde_json::to_writer(&mut out, &meta).map_err(encoding)?;
                }
                out.extend_from_slice(b"}}");
            }
            IncludeObject::Object => {
                out.pop();
                out.extend_from_slice(br#","object":"#);
                write_stamped(kv, &mut out)?;
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("stored object is not JSON: {e}"))
}

/// The stored object with `metadata.resourceVersion` set to `revision`, appended to `out`; `false` (and
/// `out` unchanged) when the bytes are not a JSON object with an object `metadata` the scanner can read.
pub fn stamp_resource_version(stored: &[u8], revision: Revision, out: &mut Vec<u8>) -> bool {
    let Some(meta) = top_level_member(stored, "metadata") else { return false };
    let Some(edit) = rv_edit(stored, meta) else { return false };
    write_edited(stored, edit, revision, out);
    true
}

/// Like [`stamp_resource_version`], but appends only the object's `metadata` (what a Table row's
/// `PartialObjectMetadata` carries).
pub fn stamped_metadata(stored: &[u8], revision: Revision, out: &mut Vec<u8>) -> bool {
    let Some(meta) = top_level_member(stored, "metadata") else { return false };
    let Some(edit) = rv_edit(stored, meta) else { return false };
    let Some(end) = skip_value(stored, meta) else { return false };
    let shift = |i: usize| i - meta;
    let edit = match edit {
        Edit::Replace { start, end } => Edit::Replace { start: shift(start), end: shift(end) },
        Edit::Append { close, empty } => Edit::Append { close: shift(close), empty },
    };
    write_edited(&stored[meta..end], edit, revision, out);
    true
}

fn write_edited(bytes: &[u8], edit: Edit, revision: Revision, out: &mut Vec<u8>) {
    let rv = revision.to_string();
    out.reserve(bytes.len() + 24 + rv.len());
    match edit {
        Edit::Replace { start, end } => {
            out.extend_from_slice(&bytes[..start]);
            out.push(b'"');
            out.extend_from_slice(rv.as_bytes());
            out.push(b'"');
            out.extend_from_slice(&bytes[end..]);
        }
        Edit::Append { close, empty } => {
            out.extend_from_slice(&bytes[..close]);
            out.extend_from_slice(if empty { b"\"resourceVersion\":\"" } else { b",\"resourceVersion\":\"" });
            out.extend_from_slice(rv.as_bytes());
            out.push(b'"');
            out.extend_from_slice(&bytes[close..]);
        }
    }
}

/// Where the resourceVersion goes.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    /// Replace the existing value at `start..end`.
    Replace { start: usize, end: usize },
    /// Insert a new last member before the `}` of metadata at `close`; `empty` when metadata has no members.
    Append { close: usize, empty: bool },
}

/// The start of the value of the first top-level member `key` of the JSON object in `b`.
fn top_level_member(b: &[u8], key: &str) -> Option<usize> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return None; // `}` (no such member) or malformed
        }
        let key_end = skip_string(b, i)?;
        let found = key_is(&b[i..key_end], key);
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if found {
            return Some(i);
        }
        i = skip_ws(b, skip_value(b, i)?);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// The edit that sets `resourceVersion` in the object starting at `b[meta]`.
fn rv_edit(b: &[u8], meta: usize) -> Option<Edit> {
    if b.get(meta) != Some(&b'{') {
        return None;
    }
    let mut i = meta + 1;
    let mut members = 0usize;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') if members == 0 => return Some(Edit::Append { close: i, empty: true }),
            Some(b'"') => {}
            _ => return None,
        }
        let key_end = skip_string(b, i)?;
        let is_rv = key_is(&b[i..key_end], "resourceVersion");
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        if is_rv {
            return Some(Edit::Replace { start: value_start, end: value_end });
        }
        members += 1;
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Some(Edit::Append { close: i, empty: false }),
            _ => return None,
        }
    }
}

/// Whether a quoted key (with its quotes) is `name`; a key with escapes is unescaped first.
fn key_is(quoted: &[u8], name: &str) -> bool {
    let inner = &quoted[1..quoted.len() - 1];
    if !inner.contains(&b'\\') {
        return inner == name.as_bytes();
    }
    serde_json::from_slice::<String>(quoted).is_ok_and(|k| k == name)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is an opening quote; returns the index just past the closing one.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        // Only `"` and `\` matter inside a string; UTF-8 continuation bytes are never either.
        let k = j + b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[k] == b'"' {
            return Some(k + 1);
        }
        j = k + 2; // an escape: the next byte (`"`, `\`, `u`, ...) is never the end
    }
}

/// `b[i]` starts a JSON value; returns the index just past it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            // A number, true, false or null: up to the next delimiter.
            let len = b[i..].iter().position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            let end = i + len.unwrap_or(b.len() - i);
            (end > i).then_some(end)
        }
    }
}

/// The paths of an object a decode keeps; everything else is skipped.
#[derive(Debug, Default, Clone)]
pub struct Sparse {
    /// Keep this whole subtree.
    whole: bool,
    children: Vec<(String, Sparse)>,
}

impl Sparse {
    /// What `labels` and `fields` read: `metadata.labels` and every field selector path.
    pub fn for_selectors(labels: &LabelSelector, fields: &FieldSelector) -> Self {
        let mut tree = Sparse::default();
        if !labels.is_empty() {
            tree.add(["metadata", "labels"].into_iter());
        }
        for path in fields.paths() {
            tree.add(path.split('.'));
        }
        tree
    }

    /// The dotted `paths` (through arrays, a path applies to every element).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tree = Sparse::default();
        for path in paths {
            tree.add(path.split('.'));
        }
        tree
    }

    fn add<'a>(&mut self, mut path: impl Iterator<Item = &'a str>) {
        if self.whole {
            return;
        }
        match path.next() {
            None => {
                self.whole = true;
                self.children.clear();
            }
            Some(seg) => {
                let pos = match self.children.iter().position(|(k, _)| k == seg) {
                    Some(pos) => pos,
                    None => {
                        self.children.push((seg.to_string(), Sparse::default()));
                        self.children.len() - 1
                    }
                };
                self.children[pos].1.add(path);
            }
        }
    }

    /// Decodes the kept paths of a stored object.
    pub fn decode(&self, bytes: &[u8]) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = self.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for &Sparse {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        if self.whole {
            return serde::Deserialize::deserialize(de);
        }
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &Sparse {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    // A path through a scalar finds nothing (as `Value::get` does): it reads as null. An array on the way
    // keeps its elements, each pruned to the same paths (a printer counts containers and reads their
    // names; `Value::get` with a field name finds nothing in an array, so selectors see no difference).
    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.children.iter().find(|(k, _)| *k == key) {
                Some((_, child)) => {
                    let value = map.next_value_seed(child)?;
                    out.insert(key.into_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::registry::decode_at;

    /// The fast path gives the bytes the decode/insert/encode path gives.
    fn check(stored: &str, rev: Revision) {
        let mut out = Vec::new();
        assert!(stamp_resource_version(stored.as_bytes(), rev, &mut out), "scanner refused {stored}");
        let decoded = decode_at(stored.as_bytes(), rev).unwrap();
        let mut meta = Vec::new();
        assert!(stamped_metadata(stored.as_bytes(), rev, &mut meta));
        assert_eq!(serde_json::from_slice::<Value>(&meta).unwrap(), decoded["metadata"], "{stored}");
        let expected = serde_json::to_vec(&decoded).unwrap();
        let compact: Value = serde_json::from_slice(stored.as_bytes()).unwrap();
        if serde_json::to_string(&compact).unwrap() == stored {
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap(), "{stored}");
        } else {
            // Not compact input: equal as JSON.
            let got: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(got, serde_json::from_slice::<Value>(&expected).unwrap(), "{stored}");
        }
    }

    #[test]
    fn appends_to_metadata_like_the_full_decode() {
        check(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"b"},"spec":{}}"#, 42);
        check(r#"{"metadata":{}}"#, 1);
        check(r#"{"kind":"Pod","metadata":{},"spec":{"x":1}}"#, 7);
        check(r#"{"metadata":{"name":"a"}}"#, 9_223_372_036_854_775_807);
    }

    #[test]
    fn metadata_after_nested_metadata_and_tricky_strings() {
        // spec comes first and holds its own metadata (a template): only the top-level one is stamped.
        check(
            r#"{"spec":{"template":{"metadata":{"labels":{"a":"b"}}}},"kind":"Deployment","metadata":{"name":"d"}}"#,
            5,
        );
        // Braces, brackets, quotes and backslashes inside keys and values of metadata and before it.
        check(
            r#"{"kind":"ConfigMap","data":{"k}":"{\"metadata\":{","q":"\\","e":"\\\"}"},"metadata":{"name":"x","annotations":{"a{b}":"}\"]\\","last-applied":"{\"metadata\":{\"resourceVersion\":\"1\"}}"},"labels":{"\\":"\""}}}"#,
            77,
        );
        // Unicode escapes and raw UTF-8.
        check(r#"{"metadata":{"name":"\u00e9x","annotations":{"k":"ü\u0022}"}},"x":[1,{"y":[]}]}"#, 3);
        // Numbers, booleans and nulls in metadata.
        check(r#"{"metadata":{"generation":12,"x":true,"y":null,"z":-1.5e3,"w":[]},"status":{}}"#, 8);
    }

    #[test]
    fn replaces_a_stale_resource_version() {
        check(r#"{"metadata":{"name":"a","resourceVersion":"3","uid":"u"},"spec":{}}"#, 40);
        check(r#"{"metadata":{"resourceVersion":""}}"#, 40);
        check(r#"{"metadata":{"resourceVersion":12}}"#, 40);
        // An escaped key is still the key.
        let mut out = Vec::new();
        assert!(stamp_resource_version(br#"{"metadata":{"resource\u0056ersion":"1"}}"#, 2, &mut out));
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!({"metadata": {"resourceVersion": "2"}}));
    }

    #[test]
    fn whitespace_is_tolerated() {
        check("{ \"kind\" : \"Pod\" ,\n \"metadata\" : { \"name\" : \"a\" , \"n\" : 1 } , \"spec\" : { } }", 4);
        check("{ \"metadata\" : {  } }", 4);
        check("{\"metadata\":{\"resourceVersion\" : \"9\" }}", 4);
    }

    #[test]
    fn refuses_what_it_cannot_edit() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"kind":"Pod"}"#,
            r#"{"metadata":null}"#,
            r#"{"metadata":"x"}"#,
            r#"{"metadata":{"name":"a""#,
            r#"{"kind":"Pod"#,
            r#"{"metadata":{"name":}}"#,
            "not json",
        ] {
            let mut out = b"keep".to_vec();
            assert!(!stamp_resource_version(bad.as_bytes(), 1, &mut out), "{bad}");
            assert!(!stamped_metadata(bad.as_bytes(), 1, &mut out), "{bad}");
            assert_eq!(out, b"keep");
        }
    }

    fn kv(key: &str, obj: &Value, rev: Revision) -> KeyValue {
        KeyValue { key: key.into(), value: serde_json::to_vec(obj).unwrap(), create_revision: 1, mod_revision: rev }
    }

    /// Tables written from stored bytes are the tables built from decoded objects, byte for byte.
    #[test]
    fn stored_tables_match_decoded_tables() {
        let meta = |name: &str| json!({"name": name, "namespace": "default", "uid": "u", "creationTimestamp": "2026-01-01T11:00:00Z", "labels": {"a": "{\"}"}});
        let mut deleting = meta("gone");
        deleting["deletionTimestamp"] = json!("2026-01-01T11:59:00Z");
        let pods = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("plain"),
                "spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "}"}]}, {"name": "b"}], "nodeName": "n1"},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}], "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                        "lastState": {"terminated": {"finishedAt": "2026-01-01T11:30:00Z"}}},
                        {"name": "b", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": deleting,
                "spec": {"initContainers": [{"name": "side", "restartPolicy": "Always"}, {"name": "init"}],
                    "containers": [{"name": "a"}], "readinessGates": [{"conditionType": "x/ok"}]},
                "status": {"phase": "Pending", "conditions": [{"type": "x/ok", "status": "True"}],
                    "initContainerStatuses": [{"name": "side", "started": true, "ready": true, "state": {"running": {}}},
                        {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("done"), "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": "Succeeded"}}),
            json!({"kind": "Pod", "metadata": null}),
            json!({"kind": "Pod"}),
        ];
        let cms = [json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"), "data": {"k": "v"}})];
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        for (plural, objects) in [("pods", &pods[..]), ("configmaps", &cms[..])] {
            let items: Vec<KeyValue> =
                objects.iter().enumerate().map(|(i, o)| kv(&format!("/k/{i}"), o, 10 + i as i64)).collect();
            let decoded: Vec<Value> = items.iter().map(|kv| decode(kv).unwrap()).collect();
            for include in [IncludeObject::None, IncludeObject::Metadata, IncludeObject::Object] {
                let list_meta = json!({"resourceVersion": "99", "continue": "c"});
                let got = table_from_stored("", plural, &items, list_meta.clone(), include, now).unwrap();
                let want =
                    serde_json::to_vec(&table::to_table_at("", plural, &decoded, list_meta, include, now)).unwrap();
                assert_eq!(String::from_utf8(got).unwrap(), String::from_utf8(want).unwrap(), "{plural} {include:?}");
            }
        }
        let empty = table_from_stored("", "pods", &[], json!({}), IncludeObject::Metadata, now).unwrap();
        let want = serde_json::to_vec(&table::to_table_at("", "pods", &[], json!({}), IncludeObject::Metadata, now));
        assert_eq!(empty, want.unwrap());
        let bad = [KeyValue { key: "/k".into(), value: b"not json".to_vec(), create_revision: 1, mod_revision: 2 }];
        assert!(table_from_stored("", "pods", &bad, json!({}), IncludeObject::Metadata, now).is_err());
        assert!(table_from_stored("", "configmaps", &bad, json!({}), IncludeObject::None, now).is_err());
    }

    #[test]
    fn sparse_decode_keeps_what_selectors_read() {
        let pod = json!({
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "replicas": 3},
            "status": {"phase": "Running"},
        });
        let bytes = serde_json::to_vec(&pod).unwrap();
        let labels = LabelSelector::parse("app=web").unwrap();
        let fields = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed,metadata.name=p").unwrap();
        let sparse = Sparse::for_selectors(&labels, &fields).decode(&bytes).unwrap();
        assert_eq!(
            sparse,
            json!({
                "metadata": {"name": "p", "labels": {"app": "web"}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running"},
            })
        );
        // Every selector decides the same on the sparse object as on the whole one.
        for (l, f) in [
            ("app=web", ""),
            ("app!=web", ""),
            ("tier", ""),
            ("", "spec.nodeName=n2"),
            ("", "spec.replicas=3"),
            ("", "spec.containers.name=c"),
            ("", "spec.nodeName.x="),
            ("", "metadata.annotations.a=b"),
            ("app in (web)", "metadata.namespace=ns,spec.missing="),
        ] {
            let (labels, fields) = (LabelSelector::parse(l).unwrap(), FieldSelector::parse(f).unwrap());
            let sparse = Sparse::for_selectors(&labels, &fields).decode(&bytes).unwrap();
            assert_eq!(
                crate::api::registry::selected(&sparse, &labels, &fields),
                crate::api::registry::selected(&pod, &labels, &fields),
                "{l} / {f}"
            );
        }
        assert!(Sparse::default().decode(b"{\"a\":").is_err());
        // Through arrays, every element is pruned alike.
        let sparse = Sparse::from_paths(["spec.containers.name", "status.phase"]).decode(&bytes).unwrap();
        assert_eq!(sparse, json!({"spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}}));
    }
}
