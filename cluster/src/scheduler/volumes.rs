//! Node-bound volumes: a PersistentVolumeClaim here is a directory on one node's disk, so a pod using a
//! claim must run where its data is. As kube-scheduler does for `WaitForFirstConsumer` storage, the node
//! is chosen when the first pod using the claim is placed, and written in the claim's
//! `volume.kubernetes.io/selected-node` annotation; later pods are filtered to that node ("node(s) had
//! volume node affinity conflict"). Claims are read when a pod using them is scheduled, not cached: few
//! pods have them.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The annotation kube's scheduler sets on a claim it placed.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// One claim of the pod being scheduled.
pub struct Claim {
    pub namespace: String,
    pub name: String,
    /// Where its data is, if it is anywhere yet.
    pub node: Option<String>,
}

/// The pod's claims with their selected nodes. A claim that cannot be read counts as unplaced (the agent
/// reports a missing claim on the pod).
pub async fn claims_of(client: &kube::Client, pod: &Pod) -> Vec<Claim> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()))
        .collect();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let mut claims = Vec::new();
    for name in names {
        let node = match api.get_opt(&name).await {
            Ok(Some(pvc)) => pvc.metadata.annotations.and_then(|a| a.get(SELECTED_NODE).cloned()),
            _ => None,
        };
        claims.push(Claim { namespace: namespace.clone(), name, node });
    }
    claims
}

/// Records `node` on the claims that have none yet. Best effort: the next pod placed finds it again.
pub async fn select_node(client: &kube::Client, claims: &[Claim], node: &str) {
    for claim in claims.iter().filter(|c| c.node.is_none()) {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &claim.namespace);
        let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
        if let Err(e) = api.patch(&claim.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!(claim = %claim.name, %node, error = %e, "cannot record the claim's node");
        }
    }
}
