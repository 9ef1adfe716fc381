//! DaemonSet controller: one pod per Ready node that matches the template's nodeSelector, placed by setting
//! `spec.nodeName` directly; pods on other nodes go, outdated pods are replaced one at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    Ctx, Error, PodName, controlled_by, controller_ref, drain, error_policy, pod_from_template, pod_phase, pod_ready,
    template_hash,
};

/// Label with the template revision of a DaemonSet pod.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Runs the DaemonSet controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let controller = Controller::new(Api::<DaemonSet>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let stream = controller
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .watches(Api::<Node>::all(client), watcher::Config::default(), move |_node: Node| {
            store.state().iter().map(|ds| ObjectRef::from_obj(&**ds)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx);
    drain("daemonset", stream).await;
}

/// A node's Ready condition.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What the DaemonSet should do on each node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes needing a pod.
    pub create: Vec<String>,
    /// Pods to delete (wrong node, duplicates, finished, or one outdated pod).
    pub delete: Vec<String>,
}

/// Pod facts for the plan.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub name: String,
    pub node: String,
    pub updated: bool,
    pub ready: bool,
    pub terminating: bool,
    pub finished: bool,
}

/// Decides creations and deletions: each eligible node (name, Ready) gets exactly one pod; new pods go only
/// to Ready nodes, but a node turning NotReady keeps its pod (upstream DaemonSets tolerate not-ready).
/// Outdated pods are replaced one at a time (maxUnavailable 1), only while every other pod is ready.
pub fn plan(eligible: &[(String, bool)], pods: &[PodInfo], rolling: bool) -> Plan {
    let mut out = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&PodInfo>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !p.terminating) {
        if p.finished || !eligible.iter().any(|(n, _)| n == &p.node) {
            out.delete.push(p.name.clone());
        } else {
            by_node.entry(p.node.as_str()).or_default().push(p);
        }
    }
    for (node, ready) in eligible {
        let terminating_here = pods.iter().any(|p| p.terminating && &p.node == node);
        match by_node.get(node.as_str()) {
            None if !terminating_here && *ready => out.create.push(node.clone()),
            None => {}
            Some(list) => {
                // Keep one (an updated, ready one if any); the rest are surplus.
                let mut list = list.clone();
                list.sort_by_key(|p| (!p.updated, !p.ready, p.name.clone()));
                out.delete.extend(list[1..].iter().map(|p| p.name.clone()));
            }
        }
    }
    if rolling && out.create.is_empty() && out.delete.is_empty() {
        let kept: Vec<&PodInfo> = by_node.values().map(|l| l[0]).collect();
        let unavailable = kept.iter().filter(|p| !p.ready).count();
        if let Some(p) = kept.iter().find(|p| !p.updated && (unavailable == 0 || !p.ready)) {
            out.delete.push(p.name.clone());
        }
    }
    out
}

/// The tolerations kube's DaemonSet controller gives every daemon pod: it stays on a node that is not
/// ready or unreachable (no eviction) and ignores the pressure and unschedulable taints.
pub fn add_daemon_tolerations(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    use k8s_openapi::api::core::v1::Toleration;
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect) && t.toleration_seconds.is_none()
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
    }
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().ok_or_else(|| Error::Missing(name.clone(), "metadata.uid"))?;
    let spec = ds.spec.clone().unwrap_or_default();
    let hash = template_hash(&spec.template, ds.status.as_ref().and_then(|s| s.collision_count));
    let selector = spec.template.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    let nodes = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let eligible: Vec<(String, bool)> = nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter(|n| selector.iter().all(|(k, v)| n.labels().get(k) == Some(v)))
        .map(|n| (n.name_any(), node_ready(n)))
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| controlled_by(&p.metadata, &uid))
        .collect();
    let infos: Vec<PodInfo> = owned
        .iter()
        .map(|p| PodInfo {
            name: p.name_any(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
            updated: p.labels().get(REVISION_LABEL) == Some(&hash),
            ready: pod_ready(p),
            terminating: p.metadata.deletion_timestamp.is_some(),
            finished: matches!(pod_phase(p), "Succeeded" | "Failed"),
        })
        .collect();
    let rolling = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    let plan = plan(&eligible, &infos, rolling);
    let labels = BTreeMap::from([
        (REVISION_LABEL.to_string(), hash.clone()),
        ("pod-template-generation".to_string(), ds.metadata.generation.unwrap_or(1).to_string()),
    ]);
    for node in &plan.create {
        let mut pod =
            pod_from_template(&spec.template, &ns, PodName::Generate(name.clone()), &labels, controller_ref(&*ds));
        let pod_spec = pod.spec.get_or_insert_with(Default::default);
        pod_spec.node_name = Some(node.clone());
        add_daemon_tolerations(pod_spec);
        pods.create(&PostParams::default(), &pod).await?;
    }
    for pod in &plan.delete {
        super::delete_ignore_missing(&pods, pod, &DeleteParams::default()).await?;
    }

    let live: Vec<&PodInfo> = infos.iter().filter(|p| !p.terminating && !p.finished).collect();
    let on_eligible: Vec<&&PodInfo> = live.iter().filter(|p| eligible.iter().any(|(n, _)| n == &p.node)).collect();
    let ready = on_eligible.iter().filter(|p| p.ready).count() as i32;
    let desired = eligible.len() as i32;
    let status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        desired_number_scheduled: desired,
        current_number_scheduled: on_eligible.len() as i32,
        number_misscheduled: (live.len() - on_eligible.len()) as i32,
        number_ready: ready,
        number_available: Some(ready),
        number_unavailable: Some((desired - ready).max(0)),
        updated_number_scheduled: Some(on_eligible.iter().filter(|p| p.updated).count() as i32),
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    if ds.status.as_ref() != Some(&status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, node: &str, updated: bool, ready: bool) -> PodInfo {
        PodInfo { name: name.into(), node: node.into(), updated, ready, terminating: false, finished: false }
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let nodes = vec![("a".to_string(), true), ("b".to_string(), true)];
        let plan = plan(&nodes, &[p("x", "a", true, true), p("y", "gone", true, true)], true);
        assert_eq!(plan.create, vec!["b"]);
        assert_eq!(plan.delete, vec!["y"]);
        let plan =
            super::plan(&nodes, &[p("x", "a", true, true), p("x2", "a", true, false), p("z", "b", true, true)], true);
        assert_eq!(plan.delete, vec!["x2"]);
    }

    #[test]
    fn not_ready_nodes_keep_their_pod_but_get_no_new_one() {
        let nodes = vec![("a".to_string(), false), ("b".to_string(), false)];
        let plan = plan(&nodes, &[p("x", "a", true, false)], true);
        assert!(plan.create.is_empty());
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn outdated_pods_replaced_one_at_a_time() {
        let nodes = vec![("a".to_string(), true), ("b".to_string(), true)];
        let plan = plan(&nodes, &[p("x", "a", false, true), p("z", "b", false, true)], true);
        assert_eq!(plan.delete, vec!["x"]);
        assert!(plan.create.is_empty());
        // One pod not ready: only that one may go (it is unavailable anyway).
        let plan = super::plan(&nodes, &[p("x", "a", false, true), p("z", "b", false, false)], true);
        assert_eq!(plan.delete, vec!["z"]);
        let plan = super::plan(&nodes, &[p("x", "a", false, true), p("z", "b", false, true)], false);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn daemon_pods_tolerate_sick_nodes_once() {
        let mut spec = k8s_openapi::api::core::v1::PodSpec::default();
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let t = spec.tolerations.unwrap();
        assert_eq!(t.len(), 6);
        assert!(t.iter().any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.effect.as_deref() == Some("NoExecute")
            && t.toleration_seconds.is_none()));
    }
}
