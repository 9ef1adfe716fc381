//! Deployment controller: keeps one ReplicaSet per pod template (`<deploy>-<pod-template-hash>`), moves
//! replicas from the old ReplicaSets to the new one within maxSurge/maxUnavailable (or all at once for
//! Recreate), numbers revisions, and writes the Deployment's status and conditions.
//!
//! The pods themselves are the ReplicaSet controller's job; this one only sets ReplicaSet `spec.replicas`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    Ctx, Error, POD_TEMPLATE_HASH, controlled_by, controller_ref, drain, error_policy, now, scaled_value,
    template_hash, templates_equal_ignoring_hash,
};

/// Annotation numbering a Deployment's rollouts, on the Deployment and on each ReplicaSet.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Runs the Deployment controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let stream = Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx);
    drain("deployment", stream).await;
}

/// What the rollout decision needs to know about one ReplicaSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsCounts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// Target `spec.replicas` of the new ReplicaSet and of each old one (same order as given).
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub new: i32,
    pub old: Vec<i32>,
}

/// One step of a rolling update, as kube-controller-manager's `rolloutRolling`: first grow the new
/// ReplicaSet up to `desired + max_surge` pods in total; otherwise shrink old ReplicaSets, unhealthy pods
/// first, without going below `desired - max_unavailable` available pods. Old ReplicaSets are given oldest
/// first.
pub fn plan_rolling(desired: i32, max_surge: i32, max_unavailable: i32, new: &RsCounts, old: &[RsCounts]) -> Plan {
    let mut old_targets: Vec<i32> = old.iter().map(|r| r.replicas).collect();
    if old.iter().all(|r| r.replicas == 0) {
        return Plan { new: desired, old: old_targets };
    }
    // Scale the new ReplicaSet up (or down, when the Deployment itself shrank).
    let mut new_target = new.replicas;
    if new.replicas > desired {
        new_target = desired;
    } else {
        let all: i32 = new.replicas + old.iter().map(|r| r.replicas).sum::<i32>();
        let max_total = desired + max_surge;
        if all < max_total {
            new_target = new.replicas + (max_total - all).min(desired - new.replicas).max(0);
        }
    }
    if new_target != new.replicas {
        return Plan { new: new_target, old: old_targets };
    }
    // Scale old ReplicaSets down.
    let all: i32 = new.replicas + old.iter().map(|r| r.replicas).sum::<i32>();
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Plan { new: new_target, old: old_targets };
    }
    // First the pods that are not available anyway.
    let mut cleaned = 0;
    for (i, rs) in old.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (rs.replicas - rs.available).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned);
        old_targets[i] -= n;
        cleaned += n;
    }
    // Then available ones, keeping min_available.
    let available: i32 = new.available + old.iter().map(|r| r.available.min(r.replicas)).sum::<i32>();
    let mut budget = (available - min_available).min(max_scaled_down - cleaned);
    for target in old_targets.iter_mut() {
        if budget <= 0 {
            break;
        }
        let n = (*target).min(budget);
        *target -= n;
        budget -= n;
    }
    Plan { new: new_target, old: old_targets }
}

/// Recreate: old ReplicaSets to zero first; the new one grows once no old pod is left.
pub fn plan_recreate(desired: i32, old: &[RsCounts], old_pods_left: usize) -> Plan {
    if old.iter().any(|r| r.replicas > 0) || old_pods_left > 0 {
        return Plan { new: 0, old: vec![0; old.len()] };
    }
    Plan { new: desired, old: vec![0; old.len()] }
}

/// Deployment status from its ReplicaSets (`new` first in `all` is not required).
pub fn compute_status(
    deploy: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
) -> DeploymentStatus {
    let desired = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let replicas: i32 = all.iter().map(|rs| st(rs).replicas).sum();
    let ready: i32 = all.iter().map(|rs| st(rs).ready_replicas.unwrap_or(0)).sum();
    let available: i32 = all.iter().map(|rs| st(rs).available_replicas.unwrap_or(0)).sum();
    let updated = new_rs.map(|rs| st(rs).replicas).unwrap_or(0);
    let old = deploy.status.clone().unwrap_or_default();
    let prev = |t: &str| old.conditions.iter().flatten().find(|c| c.type_ == t).cloned();
    let cond = |t: &str, status: &str, reason: &str, message: String| {
        let now = now();
        let prev = prev(t);
        let transition = match &prev {
            Some(p) if p.status == status => p.last_transition_time.clone().or(Some(now.clone())),
            _ => Some(now.clone()),
        };
        let unchanged = prev.as_ref().is_some_and(|p| {
            p.status == status && p.reason.as_deref() == Some(reason) && p.message.as_deref() == Some(&message)
        });
        DeploymentCondition {
            type_: t.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_transition_time: transition,
            last_update_time: if unchanged { prev.and_then(|p| p.last_update_time) } else { Some(now) },
        }
    };
    let available_cond = if available >= desired - max_unavailable {
        cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
    } else {
        cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    let rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let complete = updated == desired && replicas == desired && available == desired;
    let progressing = if complete {
        cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        cond("Progressing", "True", "ReplicaSetUpdated", format!("ReplicaSet \"{rs_name}\" is progressing."))
    };
    DeploymentStatus {
        observed_generation: deploy.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: Some(vec![available_cond, progressing]),
        collision_count: old.collision_count,
        terminating_replicas: None,
    }
}

/// Deployment annotations that are not copied to its ReplicaSets (kube-controller-manager's skip list).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The Deployment's annotations its new ReplicaSet carries (`kubernetes.io/change-cause` among them,
/// which `kubectl rollout history` shows per revision).
fn copied_annotations(deploy: &Deployment) -> BTreeMap<String, String> {
    deploy
        .annotations()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn rs_counts(rs: &ReplicaSet) -> RsCounts {
    RsCounts {
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

/// The ReplicaSet a Deployment creates for its current template.
pub fn new_replicaset(deploy: &Deployment, hash: &str, replicas: i32, revision: i64) -> ReplicaSet {
    let spec = deploy.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut selector: LabelSelector = spec.selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut labels = tmeta.labels.clone().unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", deploy.name_any())),
            namespace: deploy.namespace(),
            labels: Some(labels),
            annotations: Some({
                let mut annotations = copied_annotations(deploy);
                annotations.insert(REVISION.to_string(), revision.to_string());
                annotations
            }),
            owner_references: Some(vec![controller_ref(deploy)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

async fn reconcile(deploy: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if deploy.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = deploy.namespace().unwrap_or_default();
    let uid = deploy.uid().ok_or_else(|| Error::Missing(deploy.name_any(), "metadata.uid"))?;
    let spec = deploy.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned: Vec<ReplicaSet> = rs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| controlled_by(&rs.metadata, &uid))
        .collect();
    owned.sort_by_key(|rs| (rs.metadata.creation_timestamp.clone(), rs.name_any()));

    let collision = deploy.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collision);
    let new_name = format!("{}-{hash}", deploy.name_any());
    let max_revision = owned.iter().map(revision_of).max().unwrap_or(0);
    let new_idx = owned.iter().position(|rs| {
        rs.name_any() == new_name
            || rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| templates_equal_ignoring_hash(t, &spec.template))
    });

    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let ru = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let mut max_surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), desired, 25, true);
    let mut max_unavailable = scaled_value(ru.and_then(|r| r.max_unavailable.as_ref()), desired, 25, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if recreate {
        max_surge = 0;
        max_unavailable = desired;
    }

    // The new ReplicaSet: create it (with zero replicas under Recreate while old pods remain) or renumber it.
    let new_rs = match new_idx {
        Some(i) => {
            let rs = owned.remove(i);
            let mut annotations = serde_json::Map::new();
            if revision_of(&rs) < max_revision || rs.annotations().get(REVISION).is_none() {
                let rev = if owned.iter().any(|o| revision_of(o) >= revision_of(&rs)) {
                    max_revision + 1
                } else {
                    max_revision.max(1)
                };
                annotations.insert(REVISION.into(), json!(rev.to_string()));
            }
            for (k, v) in copied_annotations(&deploy) {
                if rs.annotations().get(&k) != Some(&v) {
                    annotations.insert(k, json!(v));
                }
            }
            if annotations.is_empty() {
                rs
            } else {
                let patch = json!({"metadata": {"annotations": annotations}});
                rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?
            }
        }
        None => {
            let initial = if owned.iter().all(|r| rs_counts(r).replicas == 0) && !recreate { desired } else { 0 };
            let rs = new_replicaset(&deploy, &hash, initial, max_revision + 1);
            match rs_api.create(&PostParams::default(), &rs).await {
                Ok(rs) => {
                    if initial > 0 {
                        record_scaling(&ctx.client, &deploy, &rs.name_any(), 0, initial).await;
                    }
                    rs
                }
                Err(e) if super::is_conflict(&e) => {
                    // A ReplicaSet of that name exists but is not ours or has another template: bump the
                    // collision count so the next hash differs, as kube-controller-manager does.
                    let patch = json!({"status": {"collisionCount": collision.unwrap_or(0) + 1}});
                    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                    dapi.patch_status(&deploy.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    return Ok(Action::requeue(Duration::from_millis(200)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };

    // Recreate waits for the old pods to be gone; their final deletion changes no ReplicaSet (its status
    // already says 0), so nothing would wake this Deployment: poll while waiting.
    let mut waiting_for_old_pods = false;
    if spec.paused != Some(true) {
        let new_counts = rs_counts(&new_rs);
        let old_counts: Vec<RsCounts> = owned.iter().map(rs_counts).collect();
        let plan = if recreate {
            let mut left = 0;
            if old_counts.iter().all(|r| r.replicas == 0) && !owned.is_empty() {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                let old_uids: Vec<String> = owned.iter().filter_map(|r| r.uid()).collect();
                left = pods
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .filter(|p| old_uids.iter().any(|u| controlled_by(&p.metadata, u)))
                    .count();
            }
            waiting_for_old_pods = left > 0;
            plan_recreate(desired, &old_counts, left)
        } else {
            plan_rolling(desired, max_surge, max_unavailable, &new_counts, &old_counts)
        };
        if plan.new != new_counts.replicas {
            scale(&rs_api, &new_rs.name_any(), plan.new).await?;
            record_scaling(&ctx.client, &deploy, &new_rs.name_any(), new_counts.replicas, plan.new).await;
        }
        for (rs, target) in owned.iter().zip(&plan.old) {
            if *target != rs_counts(rs).replicas {
                scale(&rs_api, &rs.name_any(), *target).await?;
                record_scaling(&ctx.client, &deploy, &rs.name_any(), rs_counts(rs).replicas, *target).await;
            }
        }
    }

    // Old ReplicaSets beyond revisionHistoryLimit, scaled to zero, go.
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let idle: Vec<&ReplicaSet> = owned
        .iter()
        .filter(|rs| rs_counts(rs).replicas == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0))
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            super::delete_ignore_missing(&rs_api, &rs.name_any(), &DeleteParams::background()).await?;
        }
    }

    // Status and the revision annotation.
    let all: Vec<&ReplicaSet> = std::iter::once(&new_rs).chain(owned.iter()).collect();
    let status = compute_status(&deploy, Some(&new_rs), &all, max_unavailable);
    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    if !status_equal(deploy.status.as_ref(), &status) {
        let patch = json!({"status": status});
        dapi.patch_status(&deploy.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    let rev = revision_of(&new_rs).to_string();
    if deploy.annotations().get(REVISION) != Some(&rev) {
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        dapi.patch(&deploy.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    if waiting_for_old_pods {
        return Ok(Action::requeue(Duration::from_millis(300)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Status equality ignoring condition timestamps (which `compute_status` keeps when nothing changed).
fn status_equal(old: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    let Some(old) = old else { return false };
    let strip = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_update_time = None;
        }
        s
    };
    strip(old) == strip(new)
}

/// The `ScalingReplicaSet` event kube-controller-manager records on the Deployment (what `kubectl
/// describe deployment` lists under Events). Events are for humans: failing to record one is logged only.
async fn record_scaling(client: &kube::Client, deploy: &Deployment, rs: &str, from: i32, to: i32) {
    let ns = deploy.namespace().unwrap_or_default();
    let direction = if to > from { "up" } else { "down" };
    let now = super::now();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", deploy.name_any())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: deploy.metadata.name.clone(),
            namespace: Some(ns.clone()),
            uid: deploy.metadata.uid.clone(),
            resource_version: deploy.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some("ScalingReplicaSet".into()),
        message: Some(format!("Scaled {direction} replica set {rs} from {from} to {to}")),
        type_: Some("Normal".into()),
        source: Some(EventSource { component: Some("deployment-controller".into()), host: None }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some("deployment-controller".into()),
        ..Default::default()
    };
    if let Err(err) = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &event).await {
        tracing::debug!(%err, "cannot record ScalingReplicaSet event");
    }
}

async fn scale(api: &Api<ReplicaSet>, name: &str, replicas: i32) -> Result<(), Error> {
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// ReplicaSet status as this module reads it (kept for tests that build fixtures).
pub fn rs_with(replicas: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
        status: Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(replicas: i32, available: i32) -> RsCounts {
        RsCounts { replicas, available }
    }

    /// Simulates a rollout: each step applies the plan, then every pod becomes available.
    fn simulate(desired: i32, surge: i32, unavail: i32, old_start: i32) -> Vec<(i32, i32)> {
        let mut new = c(0, 0);
        let mut old = vec![c(old_start, old_start)];
        let mut trace = vec![];
        for _ in 0..50 {
            let plan = plan_rolling(desired, surge, unavail, &new, &old);
            new.replicas = plan.new;
            old[0].replicas = plan.old[0];
            old[0].available = old[0].available.min(old[0].replicas);
            trace.push((new.replicas, old[0].replicas));
            // Invariants: never more than desired+surge pods, never fewer available than desired-unavail.
            assert!(new.replicas + old[0].replicas <= desired + surge);
            assert!(new.available + old[0].available >= desired - unavail);
            new.available = new.replicas;
            if new.replicas == desired && old[0].replicas == 0 {
                break;
            }
        }
        trace
    }

    #[test]
    fn rolling_update_with_defaults_for_three_replicas() {
        // 25%/25% of 3: surge 1, unavailable 0.
        let trace = simulate(3, 1, 0, 3);
        assert_eq!(trace.last(), Some(&(3, 0)));
        assert_eq!(trace[0], (1, 3));
    }

    #[test]
    fn rolling_update_with_unavailability() {
        let trace = simulate(4, 1, 1, 4);
        assert_eq!(trace.last(), Some(&(4, 0)));
    }

    #[test]
    fn no_old_replicasets_means_plain_scaling() {
        assert_eq!(plan_rolling(5, 1, 0, &c(2, 2), &[c(0, 0)]), Plan { new: 5, old: vec![0] });
        assert_eq!(plan_rolling(1, 1, 0, &c(3, 3), &[]), Plan { new: 1, old: vec![] });
    }

    #[test]
    fn unhealthy_old_pods_go_first() {
        // Old RS has 3 pods, none available; new has 1 available. Scale old down without waiting.
        let plan = plan_rolling(3, 1, 0, &c(1, 1), &[c(3, 0)]);
        assert_eq!(plan.new, 1);
        assert!(plan.old[0] < 3);
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        assert_eq!(plan_recreate(3, &[c(2, 2)], 2), Plan { new: 0, old: vec![0] });
        assert_eq!(plan_recreate(3, &[c(0, 0)], 1), Plan { new: 0, old: vec![0] });
        assert_eq!(plan_recreate(3, &[c(0, 0)], 0), Plan { new: 3, old: vec![0] });
    }

    #[test]
    fn status_conditions() {
        let deploy = Deployment {
            metadata: ObjectMeta { generation: Some(2), ..Default::default() },
            spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec { replicas: Some(2), ..Default::default() }),
            status: None,
        };
        let mut rs = rs_with(2, 2);
        rs.metadata.name = Some("web-abc".into());
        let st = compute_status(&deploy, Some(&rs), &[&rs], 0);
        assert_eq!(st.available_replicas, Some(2));
        assert_eq!(st.observed_generation, Some(2));
        let conds = st.conditions.unwrap();
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[1].reason.as_deref(), Some("NewReplicaSetAvailable"));
        let rs1 = rs_with(2, 1);
        let st = compute_status(&deploy, Some(&rs1), &[&rs1], 0);
        assert_eq!(st.conditions.unwrap()[0].status, "False");
    }
}
