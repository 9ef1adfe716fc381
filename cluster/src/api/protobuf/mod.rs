//! Just enough of Kubernetes' protobuf encoding to accept the bodies kubectl's typed clients send for
//! the simple kinds (`kubectl create namespace|configmap|secret|serviceaccount`): client-go 1.33 encodes
//! built-in types as protobuf and does not fall back to JSON. Other kinds get 415; the full protobuf
//! schemas belong with kubectl fidelity (issue 3 of 5).
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown` message { typeMeta = 1 { apiVersion =
//! 1, kind = 2 }, raw = 2 (the object's own message), contentEncoding = 3, contentType = 4 }.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// One decoded field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn malformed() -> ApiError {
    ApiError::bad_request("the protobuf request body is malformed")
}

fn varint(buf: &[u8], pos: &mut usize) -> ApiResult<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or_else(malformed)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| malformed())?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or_else(malformed)?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Field::Fixed
            }
            _ => return Err(malformed()),
        };
        out.push((key >> 3, field));
    }
    if pos > buf.len() {
        return Err(malformed());
    }
    Ok(out)
}

fn string(bytes: &[u8]) -> ApiResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed())
}

/// A map entry message { key = 1; value = 2 }, the value as a string or base64 of bytes.
fn map_entry(bytes: &[u8], base64_value: bool) -> ApiResult<(String, Value)> {
    let (mut key, mut value) = (String::new(), Vec::new());
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = string(b)?,
            (2, Field::Bytes(b)) => value = b.to_vec(),
            _ => {}
        }
    }
    let value = if base64_value {
        json!(base64::engine::general_purpose::STANDARD.encode(&value))
    } else {
        json!(string(&value)?)
    };
    Ok((key, value))
}

fn insert_entry(obj: &mut Map<String, Value>, field: &str, entry: (String, Value)) {
    let map = obj.entry(field.to_string()).or_insert_with(|| json!({}));
    if let Some(map) = map.as_object_mut() {
        map.insert(entry.0, entry.1);
    }
}

/// ObjectMeta: the fields a client may set on create.
fn object_meta(bytes: &[u8]) -> ApiResult<Value> {
    let mut meta = Map::new();
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                meta.insert("name".into(), json!(string(b)?));
            }
            (2, Field::Bytes(b)) => {
                meta.insert("generateName".into(), json!(string(b)?));
            }
            (3, Field::Bytes(b)) => {
                meta.insert("namespace".into(), json!(string(b)?));
            }
            (6, Field::Bytes(b)) => {
                meta.insert("resourceVersion".into(), json!(string(b)?));
            }
            (11, Field::Bytes(b)) => insert_entry(&mut meta, "labels", map_entry(b, false)?),
            (12, Field::Bytes(b)) => insert_entry(&mut meta, "annotations", map_entry(b, false)?),
            (14, Field::Bytes(b)) => {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(json!(string(b)?));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

/// Decodes a protobuf body into the JSON object, or 415 for kinds this server cannot decode.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let unknown = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(unknown)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (m, g) in fields(type_meta)? {
                    match (m, g) {
                        (1, Field::Bytes(b)) => api_version = string(b)?,
                        (2, Field::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        let Field::Bytes(b) = f else {
            if let (Field::Varint(v), true) = (&f, matches!((kind.as_str(), n), ("ConfigMap", 4) | ("Secret", 5))) {
                obj.insert("immutable".into(), json!(*v != 0));
            } else if let (Field::Varint(v), ("ServiceAccount", 4)) = (&f, (kind.as_str(), n)) {
                obj.insert("automountServiceAccountToken".into(), json!(*v != 0));
            }
            continue;
        };
        match (api_version.as_str(), kind.as_str(), n) {
            (_, _, 1) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            ("v1", "Namespace", 2) => {
                let mut finalizers = Vec::new();
                for (m, g) in fields(b)? {
                    if let (1, Field::Bytes(s)) = (m, g) {
                        finalizers.push(json!(string(s)?));
                    }
                }
                obj.insert("spec".into(), json!({"finalizers": finalizers}));
            }
            ("v1", "Namespace", 3) => {}
            ("v1", "ConfigMap", 2) => insert_entry(&mut obj, "data", map_entry(b, false)?),
            ("v1", "ConfigMap", 3) => insert_entry(&mut obj, "binaryData", map_entry(b, true)?),
            ("v1", "Secret", 2) => insert_entry(&mut obj, "data", map_entry(b, true)?),
            ("v1", "Secret", 3) => {
                obj.insert("type".into(), json!(string(b)?));
            }
            ("v1", "Secret", 4) => insert_entry(&mut obj, "stringData", map_entry(b, false)?),
            ("v1", "ServiceAccount", _) => {}
            _ => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "this server cannot decode {api_version} {kind} from protobuf yet; send JSON instead (for \
                         kubectl: `kubectl create -f` with a manifest)"
                    ),
                ));
            }
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn configmap_with_labels() {
        let label = [field(1, b"app"), field(2, b"web")].concat();
        let meta = [field(1, b"cfg"), field(11, &label)].concat();
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let raw = [field(1, &meta), field(2, &entry)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }
}
