//! ReplicaSet controller: creates pods from the template (`generateName: <rs>-`) until `spec.replicas`
//! active pods exist, deletes the least useful ones when there are too many, and writes the status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    Ctx, Error, PodName, controlled_by, controller_ref, drain, error_policy, pod_active, pod_from_template, pod_phase,
    pod_ready, selector_matches,
};

/// Runs the ReplicaSet controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let stream = Controller::new(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx);
    drain("replicaset", stream).await;
}

/// Sort key for scale-down, most deletable first (kube-controller-manager's `ActivePods` ordering):
/// unscheduled before scheduled, Pending before Unknown before Running, not ready before ready, more
/// restarts first, newer before older.
pub fn deletion_rank(pod: &Pod) -> (u8, u8, u8, i64, std::cmp::Reverse<Option<jiff::Timestamp>>) {
    let scheduled = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
    let phase = match pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let restarts: i64 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| i64::from(c.restart_count)).sum())
        .unwrap_or(0);
    (
        u8::from(scheduled),
        phase,
        u8::from(pod_ready(pod)),
        -restarts,
        std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    )
}

/// Pods to delete so that `desired` remain, or how many to create.
pub fn diff<'a>(active: &[&'a Pod], desired: i32) -> (usize, Vec<&'a Pod>) {
    let have = active.len() as i64;
    let want = i64::from(desired.max(0));
    if have < want {
        return ((want - have) as usize, vec![]);
    }
    let mut sorted: Vec<&Pod> = active.to_vec();
    sorted.sort_by_key(|p| deletion_rank(p));
    (0, sorted.into_iter().take((have - want) as usize).collect())
}

/// Ready pods that have been ready for `min_ready_seconds` (available), and how long until the next one
/// becomes available (to requeue then).
pub fn available(pods: &[&Pod], min_ready_seconds: i32, now: jiff::Timestamp) -> (i32, Option<Duration>) {
    let mut count = 0;
    let mut next: Option<Duration> = None;
    for pod in pods.iter().filter(|p| pod_ready(p)) {
        let since = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let ready_for = since.map(|t| now.duration_since(t).as_secs()).unwrap_or(i64::MAX);
        if min_ready_seconds <= 0 || ready_for >= i64::from(min_ready_seconds) {
            count += 1;
        } else {
            let left = Duration::from_secs((i64::from(min_ready_seconds) - ready_for).max(1) as u64);
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    (count, next)
}

/// Status from the owned pods (active ones only count as replicas).
pub fn compute_status(rs: &ReplicaSet, owned: &[&Pod]) -> ReplicaSetStatus {
    let active: Vec<&&Pod> = owned.iter().filter(|p| pod_active(p)).collect();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i32;
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let active_pods: Vec<&Pod> = active.iter().map(|p| **p).collect();
    let (available, _) = available(&active_pods, min_ready, jiff::Timestamp::now());
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully as i32),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let uid = rs.uid().ok_or_else(|| Error::Missing(rs.name_any(), "metadata.uid"))?;
    let spec = rs.spec.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods.list(&ListParams::default()).await?.items;
    let owned: Vec<&Pod> = listed.iter().filter(|p| controlled_by(&p.metadata, &uid)).collect();
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| pod_active(p)).collect();
    let desired = spec.replicas.unwrap_or(1);

    let (create, delete) = diff(&active, desired);
    if create > 0 {
        let template = spec.template.clone().ok_or_else(|| Error::Missing(rs.name_any(), "spec.template"))?;
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        if !selector_matches(Some(&spec.selector), &labels) {
            tracing::warn!(replicaset = %rs.name_any(), "template labels do not match the selector; not creating pods");
        } else {
            let pod = pod_from_template(
                &template,
                &ns,
                PodName::Generate(rs.name_any()),
                &BTreeMap::new(),
                controller_ref(&*rs),
            );
            // Independent writes: in parallel, so the store can commit them together.
            let pp = PostParams::default();
            let creates = (0..create).map(|_| pods.create(&pp, &pod));
            futures::future::try_join_all(creates).await?;
        }
    }
    let dp = DeleteParams::default();
    let deletes = delete
        .iter()
        .map(|pod| super::delete_ignore_missing(&pods, pod.metadata.name.as_deref().unwrap_or_default(), &dp));
    futures::future::try_join_all(deletes).await?;

    let status = compute_status(&rs, &owned);
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": status});
        api.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    // A pod turning available after minReadySeconds changes no object: come back for it.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let (_, next) = available(&active, min_ready, jiff::Timestamp::now());
    Ok(Action::requeue(next.unwrap_or(Duration::from_secs(300))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(Into::into), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn scale_up_counts_missing() {
        let a = pod("a", Some("n"), "Running", true, 1);
        assert_eq!(diff(&[&a], 3).0, 2);
        assert!(diff(&[&a], 3).1.is_empty());
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_not_ready_then_newest() {
        let old_ready = pod("old", Some("n"), "Running", true, 1);
        let new_ready = pod("new", Some("n"), "Running", true, 5);
        let not_ready = pod("nr", Some("n"), "Running", false, 0);
        let pending = pod("pend", None, "Pending", false, 0);
        let all = [&old_ready, &new_ready, &not_ready, &pending];
        let names = |n: i32| diff(&all, n).1.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(names(3), vec!["pend"]);
        assert_eq!(names(2), vec!["pend", "nr"]);
        assert_eq!(names(1), vec!["pend", "nr", "new"]);
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let mut p = pod("a", Some("n"), "Running", true, 1);
        let cond = &mut p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        cond.last_transition_time = Some(Time(jiff::Timestamp::from_second(100).unwrap()));
        let at = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        assert_eq!(available(&[&p], 0, at(100)), (1, None));
        assert_eq!(available(&[&p], 10, at(105)), (0, Some(Duration::from_secs(5))));
        assert_eq!(available(&[&p], 10, at(110)), (1, None));
    }

    #[test]
    fn status_counts_only_active_pods() {
        let mut gone = pod("t", Some("n"), "Running", true, 1);
        gone.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(9).unwrap()));
        let done = pod("d", Some("n"), "Succeeded", false, 1);
        let ok = pod("ok", Some("n"), "Running", true, 1);
        let st = compute_status(&ReplicaSet::default(), &[&gone, &done, &ok]);
        assert_eq!(st.replicas, 1);
        assert_eq!(st.ready_replicas, Some(1));
    }
}
