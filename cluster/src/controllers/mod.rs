//! Controllers: kube-rs clients of the API server, one module per controller (Deployment → ReplicaSet →
//! Pods, StatefulSet, DaemonSet, Job, EndpointSlices, garbage collection, namespace deletion, node IPAM,
//! LoadBalancer status). Owned by the controllers work stream.
//!
//! Every controller follows the kube-rs shape: a watcher feeds a reflector store, changes trigger a small
//! idempotent `reconcile`, and failures go through `error_policy` (log, requeue). The decisions (how many pods
//! to create, which to delete, what the status says) are pure functions beside each reconcile so they are
//! unit-tested without a server.
//!
//! Children are listed from the API server inside the reconcile rather than read from a watch cache: a cache
//! that lags behind our own writes would make a reconcile create the same pods twice (kube-controller-manager
//! solves this with "expectations"; a list is simpler and exact on one server).

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod servicelb;
pub mod statefulset;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use kube::Resource;
use kube::runtime::controller::Action;

/// Label carrying the template hash on ReplicaSets and their pods (Deployments).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Failure of one reconcile; always retried by `error_policy`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("object {0} has no {1}")]
    Missing(String, &'static str),
}

/// Shared state of every controller: the client only (state lives in the API server).
pub struct Ctx {
    pub client: kube::Client,
}

/// Runs every controller until the process ends. Errors inside one reconcile are retried, never returned.
pub async fn run(client: kube::Client, node_timing: nodelifecycle::Timing) {
    let tasks = vec![
        tokio::spawn(deployment::run(client.clone())),
        tokio::spawn(replicaset::run(client.clone())),
        tokio::spawn(statefulset::run(client.clone())),
        tokio::spawn(daemonset::run(client.clone())),
        tokio::spawn(job::run(client.clone())),
        tokio::spawn(endpoints::run(client.clone())),
        tokio::spawn(gc::run(client.clone())),
        tokio::spawn(namespace::run(client.clone())),
        tokio::spawn(nodeipam::run(client.clone())),
        tokio::spawn(nodelifecycle::run(client.clone(), node_timing)),
        tokio::spawn(servicelb::run(client.clone())),
    ];
    for task in futures::future::join_all(tasks).await {
        if let Err(err) = task {
            tracing::error!(%err, "controller task ended");
        }
    }
}

/// Requeue after a failed reconcile: log it and retry (soon after a conflict, else in a few seconds; the next
/// watch event may come first).
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(
        kind = %K::kind(&()),
        name = obj.meta().name.as_deref().unwrap_or(""),
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        %err,
        "reconcile failed, retrying"
    );
    match err {
        // A conflict means someone else wrote first: retry soon with fresh data.
        Error::Kube(e) if is_conflict(e) => Action::requeue(Duration::from_millis(200)),
        _ => Action::requeue(Duration::from_secs(3)),
    }
}

/// Drains a controller's output stream, logging failures (the stream never ends on errors).
pub async fn drain<S, T, E>(name: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|res| async move {
            if let Err(err) = res {
                tracing::debug!(controller = name, %err, "controller event");
            }
        })
        .await;
}

/// Owner reference marking `owner` as the managing controller of a child (GC relies on it).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` names `uid` as its controller.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.as_deref().unwrap_or_default().iter().any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The pod's Ready condition.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's phase, "Pending" when unset.
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// A pod that counts towards a controller's replicas: not terminating and not finished.
pub fn pod_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// Whether `labels` satisfy `selector` (matchLabels and matchExpressions, as apimachinery evaluates them).
/// An empty selector matches everything, a missing one nothing.
pub fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else { return false };
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let value = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Service-style selector (a plain map): empty or missing selects nothing.
pub fn map_selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// FNV-1a 32-bit, the hash kube-controller-manager uses for pod-template-hash.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// apimachinery's `rand.SafeEncodeString`: maps each byte onto an alphabet without vowels and look-alikes,
/// so hashes never spell words or get confused.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// Hash of a pod template as kube-controller-manager's `ComputeHash`: FNV-1a over the template (here its
/// canonical JSON; the Go code hashes its own dump of the struct) plus the collision count, then the decimal
/// value safe-encoded. The `pod-template-hash` label itself is left out so the hash is stable.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let mut data = serde_json::to_vec(&template).unwrap_or_default();
    if let Some(count) = collision_count {
        data.extend_from_slice(&count.to_le_bytes());
    }
    safe_encode(&fnv32a(&data).to_string())
}

/// A pod template equal to another one ignoring `pod-template-hash` (how a Deployment finds its new
/// ReplicaSet among the old ones).
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> serde_json::Value {
        let mut t = t.clone();
        let meta = t.metadata.get_or_insert_with(Default::default);
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        serde_json::to_value(&t).unwrap_or_default()
    }
    strip(a) == strip(b)
}

/// How a new pod is named.
pub enum PodName {
    /// A stable name (StatefulSets).
    Fixed(String),
    /// `generateName: <prefix>-`; the server appends 5 random characters.
    Generate(String),
}

/// A pod built from a template for a controller: labels and annotations from the template plus
/// `extra_labels`, and the owner reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    name: PodName,
    extra_labels: &BTreeMap<String, String>,
    owner: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.extend(extra_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (name, generate_name) = match name {
        PodName::Fixed(n) => (Some(n), None),
        PodName::Generate(prefix) => (None, Some(format!("{prefix}-"))),
    };
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Now, as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Resolves an int-or-percent (maxSurge, maxUnavailable) against `total`, rounding up or down as the
/// Deployment controller does.
pub fn scaled_value(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    total: i32,
    default_percent: i32,
    round_up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let percent = match v {
        Some(IntOrString::Int(i)) => return (*i).max(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').and_then(|p| p.trim().parse::<i32>().ok()) {
            Some(p) => p,
            None => return s.trim().parse::<i32>().unwrap_or(0).max(0),
        },
        None => default_percent,
    };
    let num = i64::from(total) * i64::from(percent);
    let v = if round_up { (num + 99) / 100 } else { num / 100 };
    v.max(0) as i32
}

/// Whether a kube error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is a 409 (conflict or already exists).
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// Deletes, treating "already gone" as success.
pub async fn delete_ignore_missing<K>(api: &kube::Api<K>, name: &str, dp: &kube::api::DeleteParams) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn safe_encode_uses_the_apimachinery_alphabet() {
        // '0' is 48, 48 % 27 = 21 -> '4'; '1' -> '5'
        assert_eq!(safe_encode("01"), "45");
        assert!(safe_encode("1234567890").chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn template_hash_ignores_its_own_label_and_changes_with_the_template() {
        let mut t = PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels(&[("app", "web")])), ..Default::default() }),
            spec: None,
        };
        let h1 = template_hash(&t, None);
        t.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(POD_TEMPLATE_HASH.into(), h1.clone());
        assert_eq!(template_hash(&t, None), h1);
        let plain = PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels(&[("app", "web")])), ..Default::default() }),
            spec: None,
        };
        assert!(templates_equal_ignoring_hash(&t, &plain));
        t.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert("v".into(), "2".into());
        assert_ne!(template_hash(&t, None), h1);
        assert_ne!(template_hash(&t, Some(1)), template_hash(&t, None));
    }

    #[test]
    fn label_selectors() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(selector_matches(Some(&sel), &labels(&[("app", "web"), ("tier", "a")])));
        assert!(!selector_matches(Some(&sel), &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector_matches(Some(&sel), &labels(&[("app", "web")])));
        assert!(selector_matches(Some(&LabelSelector::default()), &labels(&[])));
        assert!(!selector_matches(None, &labels(&[])));
        assert!(!map_selector_matches(&labels(&[]), &labels(&[("a", "b")])));
    }

    #[test]
    fn surge_rounds_up_unavailable_down() {
        assert_eq!(scaled_value(None, 3, 25, true), 1);
        assert_eq!(scaled_value(None, 3, 25, false), 0);
        assert_eq!(scaled_value(Some(&IntOrString::String("50%".into())), 5, 25, false), 2);
        assert_eq!(scaled_value(Some(&IntOrString::Int(2)), 5, 25, false), 2);
        assert_eq!(scaled_value(None, 4, 25, true), 1);
    }
}
