//! Node lifecycle, as kube-controller-manager's node lifecycle controller and pod GC do it:
//!
//! - A node whose agent has not renewed its Lease (`kube-node-lease/<node>`) nor posted its Ready condition
//!   for the grace period (`--node-monitor-grace-period`, 15 s) gets `Ready=Unknown` ("Kubelet stopped
//!   posting node status.") and the `node.kubernetes.io/unreachable` taints (NoSchedule and NoExecute). A
//!   node that reports `Ready=False` gets the `node.kubernetes.io/not-ready` taints instead. Both go away
//!   when the node is healthy again. Unlike kube-controller-manager, its pods are not marked `Ready=False`
//!   here: our agent does not re-post a pod status it believes unchanged, so a brief stall would leave
//!   pods unready for good; Services stop using them when they are evicted (terminating endpoints).
//! - Taint-based eviction: a pod on a node with a NoExecute taint it does not tolerate is deleted once the
//!   taint is older than the pod's `tolerationSeconds` for it, or `--pod-eviction-timeout` (30 s) when the
//!   pod has no toleration (kube-apiserver's DefaultTolerationSeconds gives 300 s). Its controller then
//!   makes a replacement, which the scheduler keeps off the tainted node. Pods that tolerate the taint
//!   without a limit (DaemonSet pods) stay.
//! - Pods bound to a Node that was deleted are deleted at once (pod GC's orphan rule): no agent will ever
//!   finish their graceful deletion.
//!
//! Unlike the other controllers this is a periodic sweep (every second) rather than a watch: staleness is
//! a matter of time passing, not of an object changing, and the sweep reads only Nodes and Leases (the pods
//! of one node only when that node is tainted).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// The taint of a node whose agent stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node that reports it is not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// How often nodes are checked.
const PERIOD: Duration = Duration::from_secs(1);

/// The controller's two knobs (flags of `flotilla server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a node may go without a heartbeat before it is unreachable.
    pub grace: Duration,
    /// How long pods without a toleration stay on an unreachable or not-ready node.
    pub eviction: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { grace: Duration::from_secs(15), eviction: Duration::from_secs(30) }
    }
}

/// Runs the sweep until the process ends.
pub async fn run(client: kube::Client, timing: Timing) {
    let mut known: Option<BTreeSet<String>> = None;
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&client, timing, known.as_ref()).await {
            Ok(names) => known = Some(names),
            Err(err) => tracing::debug!(%err, "node lifecycle sweep failed; retrying"),
        }
    }
}

/// One pass over every node; returns the names of the nodes that exist now.
async fn sweep(
    client: &kube::Client,
    timing: Timing,
    known: Option<&BTreeSet<String>>,
) -> Result<BTreeSet<String>, kube::Error> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items;
    let leases: BTreeMap<String, Lease> = Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|l| (l.name_any(), l))
        .collect();
    let now = jiff::Timestamp::now();
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    for node in &nodes {
        if node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let health = health(node, leases.get(&node.name_any()), now, timing.grace);
        if let Err(err) = converge(client, node, health, now).await {
            tracing::warn!(node = %node.name_any(), %err, "cannot update node health");
        }
        if let Err(err) = evict(client, node, now, timing.eviction).await {
            tracing::warn!(node = %node.name_any(), %err, "cannot evict pods from node");
        }
    }
    if let Some(known) = known {
        for gone in known.difference(&names) {
            if let Err(err) = delete_orphans(client, gone).await {
                tracing::warn!(node = %gone, %err, "cannot delete the pods of a deleted node");
            }
        }
    }
    Ok(names)
}

/// What the sweep concludes about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// The node reports Ready=False.
    NotReady,
    /// No heartbeat for longer than the grace period.
    Unreachable,
}

fn ready_condition(node: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// The node's health at `now`: its last heartbeat is the newest of the Lease's renewTime, the Ready
/// condition's lastHeartbeatTime and (for a node that never reported) its creation.
pub fn health(node: &Node, lease: Option<&Lease>, now: jiff::Timestamp, grace: Duration) -> Health {
    let renewed = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let ready = ready_condition(node);
    let posted = ready.and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let last = [renewed, posted, created].into_iter().flatten().max();
    let stale = last.is_none_or(|t| now.duration_since(t).as_secs_f64() > grace.as_secs_f64());
    match ready.map(|c| c.status.as_str()) {
        _ if stale => Health::Unreachable,
        // Unknown is our own mark: with a fresh heartbeat the agent is back and will post Ready itself.
        Some("True" | "Unknown") => Health::Ready,
        // A node that never posted a Ready condition (registering) is left alone until it goes stale.
        None => Health::Ready,
        _ => Health::NotReady,
    }
}

/// The node's taints with ours made to match `health` (others kept; an existing taint keeps its timeAdded).
pub fn desired_taints(current: &[Taint], health: Health, now: jiff::Timestamp) -> Vec<Taint> {
    let want: &[&str] = match health {
        Health::Ready => &[],
        Health::NotReady => &[NOT_READY],
        Health::Unreachable => &[UNREACHABLE],
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !(t.key == UNREACHABLE || t.key == NOT_READY) || want.contains(&t.key.as_str()))
        .cloned()
        .collect();
    for key in want {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == *key && t.effect == effect) {
                out.push(Taint {
                    key: key.to_string(),
                    effect: effect.to_string(),
                    value: None,
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                });
            }
        }
    }
    out
}

async fn converge(client: &kube::Client, node: &Node, health: Health, now: jiff::Timestamp) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.name_any();
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let taints = desired_taints(&current, health, now);
    if taints != current {
        tracing::info!(node = %name, ?health, "node health changed; updating its taints");
        // The resourceVersion makes this a compare-and-swap: a concurrent change to the node is retried
        // by the next sweep instead of being overwritten.
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    let ready = ready_condition(node);
    if health == Health::Unreachable && ready.is_none_or(|c| c.status != "Unknown") {
        let mut conditions: Vec<serde_json::Value> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ != "Ready")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(json!({
            "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": ready.and_then(|c| c.last_heartbeat_time.clone()),
            "lastTransitionTime": crate::api::registry::now_rfc3339(),
        }));
        let patch = json!({"status": {"conditions": conditions}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(())
}

async fn pods_on(client: &kube::Client, node: &str) -> Result<Vec<Pod>, kube::Error> {
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(Api::<Pod>::all(client.clone()).list(&lp).await?.items)
}

/// How long `pod` may stay on a node with the NoExecute `taint`: `None` forever.
pub fn allowed_stay(pod: &Pod, taint: &Taint, default: Duration) -> Option<Duration> {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    let matching: Vec<_> = tolerations
        .iter()
        .filter(|t| {
            let key_ok = t.key.as_deref().is_none_or(str::is_empty) && t.operator.as_deref() == Some("Exists")
                || t.key.as_deref() == Some(taint.key.as_str());
            let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
            let value_ok = t.operator.as_deref() == Some("Exists")
                || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
            key_ok && effect_ok && value_ok
        })
        .collect();
    if matching.is_empty() {
        return Some(default);
    }
    // The shortest limit wins; a toleration without one tolerates for ever.
    matching.iter().filter_map(|t| t.toleration_seconds).min().map(|s| Duration::from_secs(s.max(0) as u64))
}

async fn evict(client: &kube::Client, node: &Node, now: jiff::Timestamp, default: Duration) -> Result<(), kube::Error> {
    let taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect();
    if taints.is_empty() {
        return Ok(());
    }
    for pod in pods_on(client, &node.name_any()).await? {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let due = taints.iter().any(|t| {
            let added = t.time_added.as_ref().map(|t| t.0).unwrap_or(now);
            allowed_stay(&pod, t, default)
                .is_some_and(|stay| now.duration_since(added).as_secs_f64() >= stay.as_secs_f64())
        });
        if due {
            let ns = pod.namespace().unwrap_or_default();
            tracing::info!(pod = %pod.name_any(), namespace = %ns, node = %node.name_any(), "evicting pod from a tainted node");
            match Api::<Pod>::namespaced(client.clone(), &ns).delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Deletes, without grace, the pods still bound to a deleted node.
async fn delete_orphans(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    for pod in pods_on(client, node).await? {
        let ns = pod.namespace().unwrap_or_default();
        tracing::info!(pod = %pod.name_any(), namespace = %ns, node, "deleting a pod of a deleted node");
        let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        match Api::<Pod>::namespaced(client.clone(), &ns).delete(&pod.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn node(ready: Option<&str>, heartbeat: i64) -> Node {
        let mut v = json!({"metadata": {"name": "n", "creationTimestamp": ts(0).to_string()}});
        if let Some(status) = ready {
            v["status"] = json!({"conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": ts(heartbeat).to_string()}]});
        }
        serde_json::from_value(v).unwrap()
    }

    fn lease(renewed: i64) -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"renewTime": ts(renewed).strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}})).unwrap()
    }

    #[test]
    fn health_follows_the_newest_heartbeat() {
        let grace = Duration::from_secs(15);
        assert_eq!(health(&node(Some("True"), 0), Some(&lease(100)), ts(110), grace), Health::Ready);
        assert_eq!(health(&node(Some("True"), 0), Some(&lease(100)), ts(116), grace), Health::Unreachable);
        assert_eq!(health(&node(Some("True"), 105), Some(&lease(100)), ts(116), grace), Health::Ready);
        assert_eq!(health(&node(Some("False"), 100), None, ts(101), grace), Health::NotReady);
        // registering: no condition yet, judged by its creation time
        assert_eq!(health(&node(None, 0), None, ts(10), grace), Health::Ready);
        assert_eq!(health(&node(None, 0), None, ts(20), grace), Health::Unreachable);
    }

    #[test]
    fn taints_follow_health_and_keep_their_time() {
        let user =
            Taint { key: "dedicated".into(), value: Some("db".into()), effect: "NoSchedule".into(), time_added: None };
        let sick = desired_taints(std::slice::from_ref(&user), Health::Unreachable, ts(5));
        assert_eq!(sick.len(), 3);
        assert!(
            sick.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoExecute" && t.time_added == Some(Time(ts(5))))
        );
        // a later sweep keeps the NoExecute taint's time (eviction counts from it)
        assert_eq!(desired_taints(&sick, Health::Unreachable, ts(50)), sick);
        let not_ready = desired_taints(&sick, Health::NotReady, ts(60));
        assert!(
            not_ready.iter().all(|t| t.key != UNREACHABLE)
                && not_ready.iter().filter(|t| t.key == NOT_READY).count() == 2
        );
        assert_eq!(desired_taints(&not_ready, Health::Ready, ts(70)), vec![user]);
    }

    #[test]
    fn eviction_waits_for_the_toleration() {
        let taint = Taint { key: UNREACHABLE.into(), value: None, effect: "NoExecute".into(), time_added: None };
        let pod = |tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}}),
            )
            .unwrap()
        };
        let default = Duration::from_secs(30);
        assert_eq!(allowed_stay(&pod(json!([])), &taint, default), Some(default));
        let limited =
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]);
        assert_eq!(allowed_stay(&pod(limited), &taint, default), Some(Duration::from_secs(5)));
        let daemon = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(allowed_stay(&pod(daemon), &taint, default), None);
        let everything = json!([{"operator": "Exists"}]);
        assert_eq!(allowed_stay(&pod(everything), &taint, default), None);
        let other = json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(allowed_stay(&pod(other), &taint, default), Some(default));
    }
}
