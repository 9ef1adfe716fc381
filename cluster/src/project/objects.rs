//! Objects as dynamic JSON: which API resource each one is, the hash that says whether it changed since
//! the last `up`, and create-or-replace that keeps what the server owns (a Service's cluster IP, a
//! workload's status, the resourceVersion).

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CONFIG_HASH, Error, Result, api_err};

/// The kinds `up` writes, in the order it writes them: what pods mount and call must exist before pods.
pub const APPLY_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "Job",
    "StatefulSet",
    "DaemonSet",
    "Deployment",
];

/// Kinds that run pods.
pub fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job")
}

pub fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or_default()
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// The API resource of an object, from its `apiVersion` and `kind`.
pub fn resource(obj: &Value) -> Result<ApiResource> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    if version.is_empty() || kind(obj).is_empty() {
        return Err(Error::Invalid(format!("object {:?} has no apiVersion or kind", name(obj))));
    }
    Ok(ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind(obj))))
}

/// The API for an object's resource in `namespace` (ignored for cluster-scoped kinds).
pub fn api_for(client: &Client, obj: &Value, namespace: &str) -> Result<Api<DynamicObject>> {
    let ar = resource(obj)?;
    Ok(if kind(obj) == "Namespace" {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), namespace, &ar)
    })
}

/// The hash of an object as the translator made it: equal hashes mean nothing to change.
pub fn config_hash(obj: &Value) -> String {
    let mut copy = obj.clone();
    if let Some(meta) = copy["metadata"].as_object_mut() {
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(CONFIG_HASH);
        }
        // `with_hash` may have added the map; an empty map and none are the same object.
        if meta.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
            meta.remove("annotations");
        }
    }
    let digest = Sha256::digest(serde_json::to_vec(&copy).unwrap_or_default());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The object with its hash annotation set.
pub fn with_hash(obj: &Value) -> Value {
    let hash = config_hash(obj);
    let mut obj = obj.clone();
    let meta = obj["metadata"].as_object_mut().expect("translated objects have metadata");
    let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
    annotations[CONFIG_HASH] = Value::String(hash);
    obj
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// Creates the object, or replaces it when its hash differs from the live one's. Fields the server owns
/// are carried over from the live object; kinds whose spec cannot change in place (Jobs) are deleted and
/// created again.
pub async fn apply(client: &Client, obj: &Value, namespace: &str) -> Result<Applied> {
    let desired = with_hash(obj);
    let api = api_for(client, &desired, namespace)?;
    let what = format!("{} {:?}", kind(&desired), name(&desired));
    let live = api.get_opt(name(&desired)).await.map_err(api_err(format!("reading {what}")))?;
    let dynamic: DynamicObject =
        serde_json::from_value(desired.clone()).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let Some(live) = live else {
        api.create(&PostParams::default(), &dynamic).await.map_err(api_err(format!("creating {what}")))?;
        return Ok(Applied::Created);
    };
    let live_hash = live.metadata.annotations.as_ref().and_then(|a| a.get(CONFIG_HASH));
    let same_hash = live_hash.map(String::as_str) == desired["metadata"]["annotations"][CONFIG_HASH].as_str();
    // `stop` and `scale` change replicas without changing the hash; `up` puts compose's count back.
    let same_replicas = !matches!(kind(&desired), "Deployment" | "StatefulSet")
        || live.data["spec"]["replicas"].as_i64() == Some(desired["spec"]["replicas"].as_i64().unwrap_or(1));
    if same_hash && same_replicas {
        return Ok(Applied::Unchanged);
    }
    match kind(&desired) {
        // A Job's template is immutable; a PVC's spec too (compose's volume keeps its data).
        "Job" => {
            super::down::delete_and_wait(&api, name(&desired), None).await?;
            api.create(&PostParams::default(), &dynamic).await.map_err(api_err(format!("creating {what}")))?;
            return Ok(Applied::Updated);
        }
        "PersistentVolumeClaim" | "Namespace" => return Ok(Applied::Unchanged),
        _ => {}
    }
    let live_json = serde_json::to_value(&live).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut next = desired.clone();
    keep_server_fields(&mut next, &live_json);
    let next: DynamicObject = serde_json::from_value(next).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    api.replace(name(&desired), &PostParams::default(), &next).await.map_err(api_err(format!("updating {what}")))?;
    Ok(Applied::Updated)
}

/// Copies into `next` what the server assigned on the live object and must not change on replace.
fn keep_server_fields(next: &mut Value, live: &Value) {
    next["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    if kind(next) == "Service" {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if !live["spec"][field].is_null() && next["spec"][field].is_null() {
                next["spec"][field] = live["spec"][field].clone();
            }
        }
        // Node ports stay what they were for the same port.
        if let (Some(ports), Some(live_ports)) =
            (next["spec"]["ports"].as_array_mut(), live["spec"]["ports"].as_array())
        {
            for p in ports {
                if !p["nodePort"].is_null() {
                    continue;
                }
                if let Some(lp) =
                    live_ports.iter().find(|lp| lp["port"] == p["port"] && lp["protocol"] == p["protocol"])
                {
                    p["nodePort"] = lp["nodePort"].clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_its_own_annotation_and_sees_changes() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}});
        let stamped = with_hash(&a);
        assert_eq!(config_hash(&a), config_hash(&stamped));
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "w"}});
        assert_ne!(config_hash(&a), config_hash(&b));
    }

    #[test]
    fn resource_of_core_and_grouped_kinds() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
        let r = resource(&svc).unwrap();
        assert_eq!((r.group.as_str(), r.plural.as_str()), ("", "services"));
        let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}});
        assert_eq!(resource(&np).unwrap().plural, "networkpolicies");
    }

    #[test]
    fn replace_keeps_the_allocated_cluster_ip_and_node_ports() {
        let mut next = json!({"kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        let live = json!({"kind": "Service", "metadata": {"name": "x", "resourceVersion": "7"},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        keep_server_fields(&mut next, &live);
        assert_eq!(next["spec"]["clusterIP"], "10.43.0.9");
        assert_eq!(next["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(next["metadata"]["resourceVersion"], "7");
    }
}
