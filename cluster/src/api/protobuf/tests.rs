//! Unit tests of the protobuf decoder: bodies built field by field here (as Go's marshaller lays them out)
//! against the JSON the same objects have, and the schema's coverage of every served kind.

use super::*;
use crate::api::resources::RESOURCES;

fn key(n: u64, wire: u64) -> Vec<u8> {
    varint_bytes((n << 3) | wire)
}

fn varint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A length-delimited field (string, bytes, message, map entry, packed run).
fn ld(n: u64, payload: &[u8]) -> Vec<u8> {
    [key(n, 2), varint_bytes(payload.len() as u64), payload.to_vec()].concat()
}

fn num(n: u64, v: i64) -> Vec<u8> {
    [key(n, 0), varint_bytes(v as u64)].concat()
}

fn entry(k: &str, v: &[u8]) -> Vec<u8> {
    [ld(1, k.as_bytes()), ld(2, v)].concat()
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    [MAGIC.to_vec(), ld(1, &type_meta), ld(2, raw), ld(3, b""), ld(4, b"")].concat()
}

/// ObjectMeta as Go writes it: every non-pointer field present, zero or not.
fn meta(name: &str, extra: &[u8]) -> Vec<u8> {
    [
        ld(1, name.as_bytes()),
        ld(2, b""),
        ld(3, b""),
        ld(4, b""),
        ld(5, b""),
        ld(6, b""),
        num(7, 0),
        ld(8, &[]), // creationTimestamp: zero Time
        extra.to_vec(),
    ]
    .concat()
}

#[test]
fn configmap_with_labels_and_binary_data() {
    let label = entry("app", b"web");
    let raw = [
        ld(1, &meta("cfg", &ld(11, &label))),
        ld(2, &entry("k", b"v")),
        ld(3, &entry("bin", &[0, 159, 255])),
        num(4, 1), // immutable: a bool pointer
    ]
    .concat();
    let obj = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        obj,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}},
               "data": {"k": "v"}, "binaryData": {"bin": "AJ//"}, "immutable": true})
    );
}

#[test]
fn pod_with_inline_volume_quantities_pointers_and_packed_ints() {
    let empty_dir = [ld(1, b"Memory"), ld(2, &ld(1, b"1Gi"))].concat();
    let volume = [ld(1, b"scratch"), ld(2, &ld(2, &empty_dir))].concat();
    let resources = ld(1, &entry("cpu", &ld(1, b"500m")));
    let container =
        [ld(1, b"app"), ld(2, b"busybox"), ld(8, &resources), num(16, 0) /* stdin: false, omitempty, dropped */]
            .concat();
    // supplementalGroups packed (one run) and unpacked (one field each), both allowed on the wire.
    let packed = [varint_bytes(1), varint_bytes(2)].concat();
    let security = [num(2, 0) /* runAsUser: 0 */, ld(4, &packed), [key(4, 0), varint_bytes(3)].concat()].concat();
    let spec = [
        ld(1, &volume),
        ld(2, &container),
        num(5, 0),                   // activeDeadlineSeconds: pointer, kept
        num(11, 0),                  // hostNetwork: false, omitempty, dropped
        ld(14, &security),           // securityContext
        num(25, -5),                 // priority: negative int32, ten bytes on the wire
        ld(7, &entry("disk", b"")),  // nodeSelector entry with an empty value
        ld(999, b"from the future"), // unknown field: skipped
    ]
    .concat();
    let raw = [ld(1, &meta("p", &[])), ld(2, &spec), ld(3, &[])].concat();
    let obj = decode(&envelope("v1", "Pod", &raw)).unwrap();
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {
                "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
                "containers": [{"name": "app", "image": "busybox", "resources": {"limits": {"cpu": "500m"}}}],
                "activeDeadlineSeconds": 0,
                "securityContext": {"runAsUser": 0, "supplementalGroups": [1, 2, 3]},
                "priority": -5,
                "nodeSelector": {"disk": ""}
            },
            "status": {}
        })
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(obj).unwrap();
}

#[test]
fn service_ports_with_int_or_string() {
    let int_port = [num(1, 0), num(2, 8080), ld(3, b"")].concat();
    let named_port = [num(1, 1), num(2, 0), ld(3, b"http")].concat();
    let ports = [
        ld(1, &[ld(1, b"a"), num(3, 80), ld(4, &int_port)].concat()),
        ld(1, &[num(3, 81), ld(4, &named_port)].concat()),
    ];
    let raw = [ld(1, &meta("s", &[])), ld(2, &ports.concat())].concat();
    let obj = decode(&envelope("v1", "Service", &raw)).unwrap();
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"name": "a", "port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "http"}])
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(obj).unwrap();
}

#[test]
fn times_and_owner_references() {
    let time = [num(1, 1_700_000_000), num(2, 0)].concat();
    let micro = [num(1, 1_700_000_000), num(2, 123_456_789)].concat();
    let owner = [ld(5, b"batch/v1"), ld(1, b"CronJob"), ld(3, b"cj"), ld(4, b"u-1"), num(6, 1)].concat();
    let raw = [
        ld(1, &meta("e", &ld(13, &owner))),
        ld(6, &time),   // firstTimestamp
        ld(7, &[]),     // lastTimestamp: zero, left out
        num(8, 2),      // count
        ld(10, &micro), // eventTime
    ]
    .concat();
    let obj = decode(&envelope("v1", "Event", &raw)).unwrap();
    assert_eq!(obj["firstTimestamp"], json!("2023-11-14T22:13:20Z"));
    assert_eq!(obj["eventTime"], json!("2023-11-14T22:13:20.123456Z"));
    assert_eq!(obj.get("lastTimestamp"), None);
    assert_eq!(
        obj["metadata"]["ownerReferences"],
        json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj", "uid": "u-1", "controller": true}])
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::Event>(obj).unwrap();
}

#[test]
fn raw_extension_holds_json() {
    let raw = [ld(1, &meta("rev", &[])), ld(2, &ld(1, br#"{"spec":{"a":1}}"#)), num(3, 4)].concat();
    let obj = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap();
    assert_eq!(obj["data"], json!({"spec": {"a": 1}}));
    assert_eq!(obj["revision"], json!(4));
}

#[test]
fn every_served_kind_and_posted_subresource_has_a_schema() {
    for res in RESOURCES {
        assert!(
            find_message(&res.api_version(), res.kind).is_some(),
            "no protobuf schema for {} {}",
            res.api_version(),
            res.kind
        );
    }
    for (api_version, kind) in
        [("autoscaling/v1", "Scale"), ("v1", "Binding"), ("policy/v1", "Eviction"), ("meta.k8s.io/v1", "DeleteOptions")]
    {
        assert!(find_message(api_version, kind).is_some(), "no protobuf schema for {api_version} {kind}");
    }
    // Every message reference points into the table.
    for message in schema::MESSAGES {
        for field in message.fields {
            if let Ty::Msg(n) | Ty::Items(n) = field.ty {
                assert!(n < schema::MESSAGES.len(), "{}.{}", message.name, field.json);
            }
        }
    }
}

#[test]
fn unknown_kinds_and_broken_bodies_are_refused() {
    let err = decode(&envelope("scheduling.k8s.io/v1", "PriorityClass", &[])).unwrap_err();
    assert_eq!(err.code, 415);
    assert!(err.message.contains("scheduling.k8s.io/v1 PriorityClass"), "{}", err.message);
    assert_eq!(decode(b"{\"kind\":\"Pod\"}").unwrap_err().code, 400);
    let mut truncated = envelope("v1", "Pod", &ld(1, &meta("p", &[])));
    truncated.truncate(truncated.len() - 3);
    assert_eq!(decode(&truncated).unwrap_err().code, 400);
    // A string where a number belongs.
    let err = decode(&envelope("v1", "Pod", &ld(2, &ld(5, b"x")))).unwrap_err();
    assert!(err.message.contains("activeDeadlineSeconds"), "{}", err.message);
}

#[test]
fn go_durations() {
    for (nanos, text) in [
        (0, "0s"),
        (7, "7ns"),
        (1_500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (120_000_000_000, "2m0s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_000_000_000, "1h2m3s"),
        (-90_000_000_000, "-1m30s"),
    ] {
        assert_eq!(go_duration(nanos), text);
    }
}

#[test]
fn protobuf_only_accept_is_not_acceptable() {
    let headers = |accept: &str| {
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::ACCEPT, accept.parse().unwrap());
        h
    };
    assert_eq!(check_accept(&headers("application/vnd.kubernetes.protobuf")).unwrap_err().code, 406);
    assert_eq!(check_accept(&headers("application/vnd.kubernetes.protobuf;stream=watch")).unwrap_err().code, 406);
    for ok in [
        "application/vnd.kubernetes.protobuf,application/json",
        "application/vnd.kubernetes.protobuf, */*",
        "text/plain",
        "",
    ] {
        assert!(check_accept(&headers(ok)).is_ok(), "{ok}");
    }
    assert!(check_accept(&axum::http::HeaderMap::new()).is_ok());
}

/// The schema's JSON names checked against a second source: k8s-openapi's (OpenAPI-derived) JSON Schema of
/// each served kind, walked together with the protobuf messages. Every property must have a protobuf field
/// and every field a property, with inline messages flattened.
#[test]
fn json_names_match_k8s_openapi_for_every_served_kind() {
    use k8s_openapi::api::{apps, batch, coordination, core, discovery, events, networking};
    use k8s_openapi::schemars::{JsonSchema, generate::SchemaSettings};
    use std::collections::BTreeSet;

    fn check<T: JsonSchema>(api_version: &str, kind: &str, errors: &mut Vec<String>) {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let root = generator.subschema_for::<T>().to_value();
        let defs = generator.definitions().clone();
        let message = find_message(api_version, kind).expect("schema of a served kind");
        walk(message, &root, &defs, kind, errors, &mut BTreeSet::new());
    }

    fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
            Some(name) => defs.get(name).map_or(schema, |s| resolve(s, defs)),
            None => schema,
        }
    }

    /// (JSON name, field) of a message with inline messages flattened.
    fn flat(message: &'static Message, out: &mut Vec<(&'static str, &'static Field)>) {
        for field in message.fields {
            match (field.json, field.ty) {
                ("", Ty::Msg(n)) => flat(&schema::MESSAGES[n], out),
                _ => out.push((field.json, field)),
            }
        }
    }

    fn walk(
        message: &'static Message,
        schema: &Value,
        defs: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<String>,
        seen: &mut BTreeSet<&'static str>,
    ) {
        if !seen.insert(message.name) {
            return;
        }
        let schema = resolve(schema, defs);
        let empty = Map::new();
        let props = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let mut fields = Vec::new();
        flat(message, &mut fields);
        let names: BTreeSet<&str> = fields.iter().map(|(n, _)| *n).collect();
        // An object's apiVersion and kind (Go's TypeMeta) are not in its message: the envelope carries them,
        // and an embedded object (a StatefulSet's volumeClaimTemplates) loses them, as in kube-apiserver.
        let object = message.fields.iter().any(|f| f.json == "metadata");
        let props_names: BTreeSet<&str> =
            props.keys().map(String::as_str).filter(|k| !(object && (*k == "apiVersion" || *k == "kind"))).collect();
        for missing in props_names.difference(&names) {
            errors.push(format!("{path}: property {missing} has no protobuf field in {}", message.name));
        }
        for extra in names.difference(&props_names) {
            errors.push(format!("{path}: protobuf field {extra} of {} is not a JSON property", message.name));
        }
        for (name, field) in fields {
            let (Ty::Msg(n), Some(sub)) = (field.ty, props.get(name)) else { continue };
            let sub = resolve(sub, defs);
            let sub = match field.kind {
                Kind::Single => sub,
                Kind::Repeated => sub.get("items").unwrap_or(sub),
                Kind::Map => sub.get("additionalProperties").unwrap_or(sub),
            };
            walk(&schema::MESSAGES[n], sub, defs, &format!("{path}.{name}"), errors, seen);
        }
    }

    let mut errors = Vec::new();
    check::<core::v1::Namespace>("v1", "Namespace", &mut errors);
    check::<core::v1::Pod>("v1", "Pod", &mut errors);
    check::<core::v1::Service>("v1", "Service", &mut errors);
    check::<core::v1::Endpoints>("v1", "Endpoints", &mut errors);
    check::<core::v1::Node>("v1", "Node", &mut errors);
    check::<core::v1::Event>("v1", "Event", &mut errors);
    check::<core::v1::ConfigMap>("v1", "ConfigMap", &mut errors);
    check::<core::v1::Secret>("v1", "Secret", &mut errors);
    check::<core::v1::PersistentVolumeClaim>("v1", "PersistentVolumeClaim", &mut errors);
    check::<core::v1::PersistentVolume>("v1", "PersistentVolume", &mut errors);
    check::<core::v1::ServiceAccount>("v1", "ServiceAccount", &mut errors);
    check::<core::v1::Binding>("v1", "Binding", &mut errors);
    check::<apps::v1::Deployment>("apps/v1", "Deployment", &mut errors);
    check::<apps::v1::ReplicaSet>("apps/v1", "ReplicaSet", &mut errors);
    check::<apps::v1::StatefulSet>("apps/v1", "StatefulSet", &mut errors);
    check::<apps::v1::DaemonSet>("apps/v1", "DaemonSet", &mut errors);
    check::<batch::v1::Job>("batch/v1", "Job", &mut errors);
    check::<batch::v1::CronJob>("batch/v1", "CronJob", &mut errors);
    check::<discovery::v1::EndpointSlice>("discovery.k8s.io/v1", "EndpointSlice", &mut errors);
    check::<networking::v1::NetworkPolicy>("networking.k8s.io/v1", "NetworkPolicy", &mut errors);
    check::<coordination::v1::Lease>("coordination.k8s.io/v1", "Lease", &mut errors);
    check::<events::v1::Event>("events.k8s.io/v1", "Event", &mut errors);
    check::<k8s_openapi::api::autoscaling::v1::Scale>("autoscaling/v1", "Scale", &mut errors);
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
}
