//! The output formats of converted objects: multi-document YAML (what `kubectl apply -f` reads) and a
//! JSON `v1/List`. One place, so the binary and the snapshot tests print the same bytes.

use crate::convert::Object;

/// Every object as a YAML document, each starting with `---`.
pub fn to_yaml(objects: &[Object]) -> String {
    objects.iter().map(|o| format!("---\n{}", object_to_yaml(o))).collect()
}

pub fn object_to_yaml(object: &Object) -> String {
    serde_saphyr::to_string(object).expect("Kubernetes objects always serialise as YAML")
}

/// A `v1/List` holding every object, pretty-printed.
pub fn to_json(objects: &[Object]) -> String {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    serde_json::to_string_pretty(&list).expect("Kubernetes objects always serialise") + "\n"
}

pub fn object_to_json(object: &Object) -> String {
    serde_json::to_string_pretty(object).expect("Kubernetes objects always serialise") + "\n"
}
