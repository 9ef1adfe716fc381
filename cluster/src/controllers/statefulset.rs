//! StatefulSet controller: pods with stable names `<sts>-0..N-1`, started in order (the next one only when
//! the previous is Running and Ready, for `OrderedReady`), removed in reverse, replaced highest ordinal
//! first on a template change, with `hostname`/`subdomain` set for per-pod DNS and one PVC per claim
//! template (`<claim>-<sts>-<i>`, kept when the StatefulSet goes, as Kubernetes' default Retain policy).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    Ctx, Error, PodName, controlled_by, controller_ref, drain, error_policy, is_conflict, pod_from_template, pod_phase,
    pod_ready, template_hash,
};

/// Label naming the pod (lets a Service select exactly one StatefulSet pod).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the revision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Runs the StatefulSet controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let stream = Controller::new(Api::<StatefulSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx);
    drain("statefulset", stream).await;
}

/// What the decision needs to know about the pod at one ordinal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub ordinal: i32,
    pub running_ready: bool,
    pub terminating: bool,
    /// Phase Failed or Succeeded: replaced.
    pub finished: bool,
    pub updated: bool,
}

/// One step for the StatefulSet.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Create(i32),
    Delete(i32),
}

/// Decides the next steps, as kube-controller-manager's `StatefulSetControl`: replace finished pods, create
/// missing ordinals in order (stopping at the first that is not Running and Ready when `ordered`), then
/// delete surplus ordinals from the highest down (one at a time, only when all wanted pods are healthy,
/// when `ordered`), then roll outdated pods from the highest ordinal down, one at a time.
pub fn plan(replicas: i32, ordered: bool, rolling: bool, partition: i32, slots: &[Slot]) -> Vec<Step> {
    let by_ord: BTreeMap<i32, &Slot> = slots.iter().map(|s| (s.ordinal, s)).collect();
    let mut steps = vec![];
    for s in slots {
        if s.finished && !s.terminating {
            steps.push(Step::Delete(s.ordinal));
            if ordered {
                return steps;
            }
        }
    }
    for i in 0..replicas {
        match by_ord.get(&i) {
            None => {
                steps.push(Step::Create(i));
                if ordered {
                    return steps;
                }
            }
            Some(s) if ordered && (!s.running_ready || s.terminating) => return steps,
            Some(_) => {}
        }
    }
    let mut condemned: Vec<&Slot> = slots.iter().filter(|s| s.ordinal >= replicas).collect();
    condemned.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
    if ordered {
        if condemned.iter().any(|s| s.terminating) {
            return steps;
        }
        if let Some(s) = condemned.first() {
            steps.push(Step::Delete(s.ordinal));
            return steps;
        }
    } else {
        steps.extend(condemned.iter().filter(|s| !s.terminating).map(|s| Step::Delete(s.ordinal)));
    }
    if rolling && steps.is_empty() {
        let wanted: Vec<&&Slot> = by_ord.values().filter(|s| s.ordinal < replicas).collect();
        if wanted.len() as i32 == replicas
            && wanted.iter().all(|s| s.running_ready && !s.terminating)
            && let Some(s) = wanted.iter().rev().find(|s| !s.updated && s.ordinal >= partition)
        {
            steps.push(Step::Delete(s.ordinal));
        }
    }
    steps
}

/// The ordinal of a pod named `<sts>-<i>`.
pub fn ordinal_of(sts: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

/// The pod for ordinal `i`: stable name, identity labels, hostname/subdomain, claims wired to its PVCs.
pub fn build_pod(sts: &StatefulSet, i: i32, revision: &str) -> Pod {
    let spec = sts.spec.clone().unwrap_or_default();
    let name = format!("{}-{i}", sts.name_any());
    let labels = BTreeMap::from([
        (POD_NAME_LABEL.to_string(), name.clone()),
        (REVISION_LABEL.to_string(), revision.to_string()),
        (POD_INDEX_LABEL.to_string(), i.to_string()),
    ]);
    let mut pod = pod_from_template(
        &spec.template,
        &sts.namespace().unwrap_or_default(),
        PodName::Fixed(name.clone()),
        &labels,
        controller_ref(sts),
    );
    let pspec = pod.spec.get_or_insert_with(Default::default);
    pspec.hostname = Some(name);
    if let Some(svc) = spec.service_name.filter(|s| !s.is_empty()) {
        pspec.subdomain = Some(svc);
    }
    for claim in spec.volume_claim_templates.iter().flatten() {
        let cname = claim.metadata.name.clone().unwrap_or_default();
        let volumes = pspec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != cname);
        volumes.push(Volume {
            name: cname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{cname}-{}-{i}", sts.name_any()),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    pod
}

/// The PVCs of ordinal `i` from the claim templates.
pub fn build_claims(sts: &StatefulSet, i: i32) -> Vec<PersistentVolumeClaim> {
    let spec = sts.spec.clone().unwrap_or_default();
    let delete_with_set =
        spec.persistent_volume_claim_retention_policy.as_ref().and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let cname = t.metadata.name.clone().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(format!("{cname}-{}-{i}", sts.name_any())),
                    namespace: sts.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: delete_with_set.then(|| vec![controller_ref(sts)]),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let uid = sts.uid().ok_or_else(|| Error::Missing(name.clone(), "metadata.uid"))?;
    let spec = sts.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let revision =
        format!("{name}-{}", template_hash(&spec.template, sts.status.as_ref().and_then(|s| s.collision_count)));
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| controlled_by(&p.metadata, &uid))
        .collect();
    let slots: Vec<Slot> = owned
        .iter()
        .filter_map(|p| {
            Some(Slot {
                ordinal: ordinal_of(&name, &p.name_any())?,
                running_ready: pod_phase(p) == "Running" && pod_ready(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                finished: matches!(pod_phase(p), "Succeeded" | "Failed"),
                updated: p.labels().get(REVISION_LABEL) == Some(&revision),
            })
        })
        .collect();
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let partition = strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0);
    let steps = plan(replicas, ordered, rolling, partition, &slots);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for step in &steps {
        match *step {
            Step::Create(i) => {
                for claim in build_claims(&sts, i) {
                    match pvcs.create(&PostParams::default(), &claim).await {
                        Ok(_) => {}
                        Err(e) if is_conflict(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                match pods.create(&PostParams::default(), &build_pod(&sts, i, &revision)).await {
                    Ok(_) => {}
                    // The old pod of that name is still going away; its deletion event brings us back.
                    Err(e) if is_conflict(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Delete(i) => {
                super::delete_ignore_missing(&pods, &format!("{name}-{i}"), &DeleteParams::default()).await?;
            }
        }
    }

    let active: Vec<&Pod> = owned.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let ready = active.iter().filter(|p| pod_ready(p)).count() as i32;
    let updated = active.iter().filter(|p| p.labels().get(REVISION_LABEL) == Some(&revision)).count() as i32;
    let old = sts.status.clone().unwrap_or_default();
    let current_revision = if updated == replicas && active.len() as i32 == replicas {
        revision.clone()
    } else {
        old.current_revision.clone().unwrap_or_else(|| revision.clone())
    };
    let current = active.iter().filter(|p| p.labels().get(REVISION_LABEL) == Some(&current_revision)).count() as i32;
    let status = StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas: active.len() as i32,
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(revision),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    if sts.status.as_ref() != Some(&status) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ordinal: i32, ready: bool) -> Slot {
        Slot { ordinal, running_ready: ready, terminating: false, finished: false, updated: true }
    }

    #[test]
    fn ordered_start_waits_for_the_previous_pod() {
        assert_eq!(plan(3, true, true, 0, &[]), vec![Step::Create(0)]);
        assert_eq!(plan(3, true, true, 0, &[s(0, false)]), vec![]);
        assert_eq!(plan(3, true, true, 0, &[s(0, true)]), vec![Step::Create(1)]);
        assert_eq!(plan(3, false, true, 0, &[s(0, false)]), vec![Step::Create(1), Step::Create(2)]);
    }

    #[test]
    fn scale_down_in_reverse_one_at_a_time() {
        let slots = [s(0, true), s(1, true), s(2, true)];
        assert_eq!(plan(1, true, true, 0, &slots), vec![Step::Delete(2)]);
        let mut term = s(2, true);
        term.terminating = true;
        assert_eq!(plan(1, true, true, 0, &[s(0, true), s(1, true), term]), vec![]);
        assert_eq!(plan(1, false, true, 0, &slots), vec![Step::Delete(2), Step::Delete(1)]);
    }

    #[test]
    fn rolling_update_from_the_highest_ordinal() {
        let mut slots = vec![s(0, true), s(1, true), s(2, true)];
        for sl in &mut slots {
            sl.updated = false;
        }
        assert_eq!(plan(3, true, true, 0, &slots), vec![Step::Delete(2)]);
        assert_eq!(plan(3, true, true, 3, &slots), vec![]);
        assert_eq!(plan(3, true, false, 0, &slots), vec![]);
        slots[2].updated = true;
        assert_eq!(plan(3, true, true, 0, &slots), vec![Step::Delete(1)]);
    }

    #[test]
    fn finished_pods_are_replaced() {
        let mut f = s(0, false);
        f.finished = true;
        assert_eq!(plan(1, true, true, 0, &[f]), vec![Step::Delete(0)]);
    }

    #[test]
    fn pod_identity() {
        assert_eq!(ordinal_of("db", "db-12"), Some(12));
        assert_eq!(ordinal_of("db", "db-x"), None);
        assert_eq!(ordinal_of("db", "dbx-1"), None);
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "p", "uid": "u1"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
            }
        }))
        .unwrap();
        let pod = build_pod(&sts, 1, "db-abc");
        assert_eq!(pod.metadata.name.as_deref(), Some("db-1"));
        assert_eq!(pod.labels().get(POD_NAME_LABEL).map(String::as_str), Some("db-1"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let vol = &spec.volumes.unwrap()[0];
        assert_eq!(vol.persistent_volume_claim.as_ref().unwrap().claim_name, "data-db-1");
        let claims = build_claims(&sts, 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data-db-1"));
        assert!(claims[0].metadata.owner_references.is_none());
    }
}
