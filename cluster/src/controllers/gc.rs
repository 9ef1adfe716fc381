//! Garbage collector: deletes (background propagation) every object whose owners, by uid, are all gone,
//! and drops dangling references from objects that still have a live owner.
//!
//! It also finishes the other two propagation policies, as kube-controller-manager's collector does. An
//! owner deleted with `propagationPolicy: Orphan` keeps an `orphan` finalizer: its dependents lose their
//! reference to it, then the finalizer goes (and with it the owner). An owner deleted with `Foreground`
//! keeps a `foregroundDeletion` finalizer: its dependents are deleted (those with `blockOwnerDeletion`
//! in the foreground too, so a Deployment waits for its ReplicaSets, which wait for their pods), and the
//! finalizer goes once no blocking dependent is left. While such owners are pending the collector polls
//! every [`PENDING_PERIOD`], since the dependents' deletions it waits for are not all watched.
//!
//! A sweep lists the dependent kinds first and the owner kinds second, so an owner created after its
//! dependent is always seen; each verdict is confirmed with a GET before deleting. Sweeps run when an owner
//! kind reports a deletion (cascades: Deployment → ReplicaSets → Pods) and every [`SWEEP_PERIOD`] otherwise
//! (objects created with dangling references, deletions missed while a watch restarted).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use super::{Error, is_not_found};
use crate::api::registry::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN};

/// Owner kinds whose deletions are watched (by plural).
pub const WATCHED_OWNERS: &[&str] = &["deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "services"];

/// Sweep period when no owner deletion prompts one.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(15);

/// Poll period while an owner waits for its dependents (foreground) or their orphaning.
pub const PENDING_PERIOD: Duration = Duration::from_millis(250);

/// A kind the collector knows how to list and look up.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn k(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind { group, version, kind, plural, namespaced }
}

/// Kinds that may carry ownerReferences (what our controllers and `flotilla up` create).
pub const DEPENDENTS: &[Kind] = &[
    k("apps", "v1", "ReplicaSet", "replicasets", true),
    k("", "v1", "Pod", "pods", true),
    k("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true),
    k("", "v1", "Endpoints", "endpoints", true),
    k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    k("batch", "v1", "Job", "jobs", true),
    k("", "v1", "ConfigMap", "configmaps", true),
    k("", "v1", "Secret", "secrets", true),
    k("", "v1", "Service", "services", true),
];

/// Kinds that own things. An owner reference to a kind not listed here is never judged dangling.
pub const OWNERS: &[Kind] = &[
    k("apps", "v1", "Deployment", "deployments", true),
    k("apps", "v1", "ReplicaSet", "replicasets", true),
    k("apps", "v1", "StatefulSet", "statefulsets", true),
    k("apps", "v1", "DaemonSet", "daemonsets", true),
    k("batch", "v1", "Job", "jobs", true),
    k("batch", "v1", "CronJob", "cronjobs", true),
    k("", "v1", "Service", "services", true),
    k("", "v1", "Pod", "pods", true),
    k("", "v1", "ConfigMap", "configmaps", true),
    k("", "v1", "Secret", "secrets", true),
    k("", "v1", "Node", "nodes", false),
    k("", "v1", "Namespace", "namespaces", false),
];

impl Kind {
    fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// The owner kind an ownerReference points at, if known.
pub fn owner_kind(r: &OwnerReference) -> Option<&'static Kind> {
    OWNERS.iter().find(|k| k.kind == r.kind && k.api_version() == r.api_version)
}

/// What to do with one dependent, given the set of live owner uids per kind (None: that kind could not be
/// listed, so its references are treated as alive).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Every owner is gone.
    Delete,
    /// Some owners are gone: keep the object, drop these references (by uid).
    DropRefs(Vec<String>),
}

/// Judges one dependent's owner references.
pub fn judge(refs: &[OwnerReference], live: &BTreeMap<&'static str, Option<BTreeSet<String>>>) -> Verdict {
    if refs.is_empty() {
        return Verdict::Keep;
    }
    let dangling: Vec<String> = refs
        .iter()
        .filter(|r| match owner_kind(r) {
            None => false,
            Some(kind) => match live.get(kind.plural) {
                Some(Some(uids)) => !uids.contains(&r.uid),
                _ => false,
            },
        })
        .map(|r| r.uid.clone())
        .collect();
    if dangling.is_empty() {
        Verdict::Keep
    } else if dangling.len() == refs.len() {
        Verdict::Delete
    } else {
        Verdict::DropRefs(dangling)
    }
}

/// Runs the garbage collector until the process ends.
pub async fn run(client: kube::Client) {
    let notify = Arc::new(Notify::new());
    // Deletions of the kinds our controllers own children of start a sweep at once; owners of other kinds
    // (a pod or ConfigMap owning something is rare) wait for the periodic sweep, which spares a watch each.
    for kind in OWNERS.iter().filter(|k| WATCHED_OWNERS.contains(&k.plural)) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let notify = notify.clone();
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Delete(_)) | Ok(watcher::Event::InitDone) => notify.notify_one(),
                    Ok(watcher::Event::Apply(o)) if awaits_collector(&o) => notify.notify_one(),
                    Ok(_) => {}
                    // Kinds the server does not serve keep failing here; back off quietly.
                    Err(_) => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            }
        });
    }
    let mut pending = false;
    loop {
        let period = if pending { PENDING_PERIOD } else { SWEEP_PERIOD };
        let _ = tokio::time::timeout(period, notify.notified()).await;
        // Let a burst of deletions settle into one sweep.
        tokio::time::sleep(Duration::from_millis(50)).await;
        pending = match propagate(&client).await {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(%err, "garbage collection of orphan/foreground deletions failed");
                true
            }
        };
        if let Err(err) = sweep(&client).await {
            tracing::warn!(%err, "garbage collection sweep failed");
        }
    }
}

/// Whether an object is being deleted and carries one of the collector's finalizers.
pub fn awaits_collector(obj: &DynamicObject) -> bool {
    obj.metadata.deletion_timestamp.is_some()
        && obj.finalizers().iter().any(|f| f == FINALIZER_ORPHAN || f == FINALIZER_FOREGROUND)
}

/// Whether `r` is a reference to the owner with this uid that blocks the owner's foreground deletion.
fn blocks(r: &OwnerReference, uid: &str) -> bool {
    r.uid == uid && r.block_owner_deletion == Some(true)
}

/// One pass over owners being deleted with the `orphan` or `foregroundDeletion` finalizer; returns
/// whether some are still waiting.
pub async fn propagate(client: &kube::Client) -> Result<bool, Error> {
    let mut owners: Vec<(&'static Kind, DynamicObject)> = vec![];
    for kind in OWNERS.iter().chain(DEPENDENTS.iter().filter(|d| !OWNERS.iter().any(|o| o.plural == d.plural))) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        if let Ok(items) = list_metadata(&api).await {
            owners.extend(items.into_iter().filter(awaits_collector).map(|o| (kind, o)));
        }
    }
    if owners.is_empty() {
        return Ok(false);
    }
    let mut dependents: Vec<(&'static Kind, DynamicObject)> = vec![];
    for kind in DEPENDENTS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        match list_metadata(&api).await {
            Ok(items) => {
                dependents.extend(items.into_iter().filter(|o| !o.owner_references().is_empty()).map(|o| (kind, o)))
            }
            // Without a full view of the dependents no finalizer may go: wait for the next pass.
            Err(e) => return Err(e.into()),
        }
    }
    let mut pending = false;
    for (kind, owner) in owners {
        let Some(uid) = owner.uid() else { continue };
        let ns = owner.namespace();
        let mine: Vec<&(&'static Kind, DynamicObject)> = dependents
            .iter()
            .filter(|(_, d)| d.owner_references().iter().any(|r| r.uid == uid) && (ns.is_none() || d.namespace() == ns))
            .collect();
        let finalizer = if owner.finalizers().iter().any(|f| f == FINALIZER_ORPHAN) {
            // Orphan: drop our reference from every dependent first; a conflict waits for the next pass.
            let mut done = true;
            for (dkind, d) in &mine {
                let api = dependent_api(client, dkind, d);
                let refs: Vec<&OwnerReference> = d.owner_references().iter().filter(|r| r.uid != uid).collect();
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": d.resource_version()}});
                match api.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) if super::is_conflict(&e) => done = false,
                    Err(e) => return Err(e.into()),
                }
            }
            done.then_some(FINALIZER_ORPHAN)
        } else {
            // Foreground: delete every dependent (blocking ones in the foreground too); the owner goes
            // when no blocking dependent is left.
            let mut blocked = false;
            for (dkind, d) in &mine {
                let blocking = d.owner_references().iter().any(|r| blocks(r, &uid));
                blocked |= blocking;
                if d.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let dp = if blocking { DeleteParams::foreground() } else { DeleteParams::background() };
                tracing::info!(kind = dkind.kind, name = %d.name_any(), owner = %owner.name_any(), "deleting dependent of an owner deleted in the foreground");
                super::delete_ignore_missing(&dependent_api(client, dkind, d), &d.name_any(), &dp).await?;
            }
            (!blocked).then_some(FINALIZER_FOREGROUND)
        };
        let Some(finalizer) = finalizer else {
            pending = true;
            continue;
        };
        let api = dependent_api(client, kind, &owner);
        let rest: Vec<&String> = owner.finalizers().iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": owner.resource_version()}});
        match api.patch(&owner.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) if super::is_conflict(&e) => pending = true,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pending)
}

/// Objects listed per request: pages keep both the server's and the collector's memory bounded when a kind
/// has thousands of objects (the collector lists every dependent kind on each sweep).
const LIST_PAGE: u32 = 500;

/// Every object of `api`, in pages, with only its metadata kept (the collector judges by owner
/// references, uids and finalizers; dropping spec and status at once keeps a sweep over 10,000 pods small).
async fn list_metadata(api: &Api<DynamicObject>) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut items = vec![];
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items.into_iter().map(|mut o| {
            o.data = serde_json::Value::Null;
            o.metadata.managed_fields = None;
            o
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// The API for an object of `kind`, in the object's namespace when the kind is namespaced.
fn dependent_api(client: &kube::Client, kind: &Kind, obj: &DynamicObject) -> Api<DynamicObject> {
    match obj.namespace() {
        Some(ns) if kind.namespaced => Api::namespaced_with(client.clone(), &ns, &kind.api_resource()),
        _ => Api::all_with(client.clone(), &kind.api_resource()),
    }
}

/// One pass over every dependent kind.
pub async fn sweep(client: &kube::Client) -> Result<usize, Error> {
    let mut dependents: Vec<(&'static Kind, DynamicObject)> = vec![];
    for kind in DEPENDENTS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        match list_metadata(&api).await {
            Ok(items) => dependents.extend(
                items
                    .into_iter()
                    .filter(|o| !o.owner_references().is_empty() && o.metadata.deletion_timestamp.is_none())
                    .map(|o| (kind, o)),
            ),
            Err(e) => tracing::debug!(kind = kind.plural, %e, "gc cannot list dependents"),
        }
    }
    if dependents.is_empty() {
        return Ok(0);
    }
    let mut live: BTreeMap<&'static str, Option<BTreeSet<String>>> = BTreeMap::new();
    for kind in OWNERS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let uids = match list_metadata(&api).await {
            Ok(items) => Some(items.iter().filter_map(|o| o.uid()).collect()),
            Err(_) => None,
        };
        live.insert(kind.plural, uids);
    }
    let mut deleted = 0;
    for (kind, obj) in dependents {
        let verdict = judge(obj.owner_references(), &live);
        if verdict == Verdict::Keep {
            continue;
        }
        // Confirm each dangling owner with a GET: the lists are not one snapshot.
        let ns = obj.namespace().unwrap_or_default();
        let mut confirmed = vec![];
        for r in obj.owner_references() {
            let Some(okind) = owner_kind(r) else { continue };
            let dangling = match &verdict {
                Verdict::Delete => true,
                Verdict::DropRefs(uids) => uids.contains(&r.uid),
                Verdict::Keep => false,
            };
            if !dangling {
                continue;
            }
            let api: Api<DynamicObject> = if okind.namespaced {
                Api::namespaced_with(client.clone(), &ns, &okind.api_resource())
            } else {
                Api::all_with(client.clone(), &okind.api_resource())
            };
            match api.get_opt(&r.name).await {
                Ok(None) => confirmed.push(r.uid.clone()),
                Ok(Some(o)) if o.uid().as_deref() != Some(&r.uid) => confirmed.push(r.uid.clone()),
                Ok(Some(_)) => {}
                Err(e) if is_not_found(&e) => confirmed.push(r.uid.clone()),
                Err(e) => return Err(e.into()),
            }
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &kind.api_resource());
        let name = obj.name_any();
        if confirmed.len() == obj.owner_references().len() {
            tracing::info!(kind = kind.kind, namespace = %ns, %name, "deleting object whose owners are gone");
            super::delete_ignore_missing(&api, &name, &DeleteParams::background()).await?;
            deleted += 1;
        } else if !confirmed.is_empty() {
            let refs: Vec<&OwnerReference> =
                obj.owner_references().iter().filter(|r| !confirmed.contains(&r.uid)).collect();
            let patch = json!({"metadata": {"ownerReferences": refs}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, api_version: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn judges_owner_references() {
        let mut live: BTreeMap<&'static str, Option<BTreeSet<String>>> = BTreeMap::new();
        live.insert("replicasets", Some(BTreeSet::from(["rs1".to_string()])));
        live.insert("deployments", Some(BTreeSet::new()));
        live.insert("statefulsets", None);
        assert_eq!(judge(&[], &live), Verdict::Keep);
        assert_eq!(judge(&[r("ReplicaSet", "apps/v1", "rs1")], &live), Verdict::Keep);
        assert_eq!(judge(&[r("ReplicaSet", "apps/v1", "rs2")], &live), Verdict::Delete);
        assert_eq!(
            judge(&[r("ReplicaSet", "apps/v1", "rs1"), r("Deployment", "apps/v1", "d1")], &live),
            Verdict::DropRefs(vec!["d1".into()])
        );
        // Kinds that could not be listed, or unknown kinds, are never judged dangling.
        assert_eq!(judge(&[r("StatefulSet", "apps/v1", "s")], &live), Verdict::Keep);
        assert_eq!(judge(&[r("Widget", "example.com/v1", "w")], &live), Verdict::Keep);
        // Wrong apiVersion for the kind: unknown.
        assert_eq!(judge(&[r("ReplicaSet", "extensions/v1beta1", "rs2")], &live), Verdict::Keep);
    }
}
