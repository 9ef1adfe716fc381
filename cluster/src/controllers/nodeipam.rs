//! Node IPAM: gives each Node without `spec.podCIDR` the next free /24 of the cluster pod CIDR
//! (10.42.0.0/16), as kube-controller-manager's range allocator; the agent waits for it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use super::{Ctx, Error, drain, error_policy};

/// The cluster pod CIDR's first two octets (10.42.0.0/16).
pub const POD_CIDR_BASE: [u8; 2] = [10, 42];

struct IpamCtx {
    ctx: Ctx,
    /// Allocation reads all nodes then writes one; two at once could hand out the same range.
    lock: Mutex<()>,
}

/// Runs the node IPAM controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(IpamCtx { ctx: Ctx { client: client.clone() }, lock: Mutex::new(()) });
    let stream = Controller::new(Api::<Node>::all(client), watcher::Config::default()).run(
        reconcile,
        |node, err, ctx: Arc<IpamCtx>| error_policy(node, err, Arc::new(Ctx { client: ctx.ctx.client.clone() })),
        ctx,
    );
    drain("nodeipam", stream).await;
}

/// The first /24 of 10.42.0.0/16 not in `used`.
pub fn next_free(used: &BTreeSet<String>) -> Option<String> {
    (0..=255u8)
        .map(|i| format!("{}/24", Ipv4Addr::new(POD_CIDR_BASE[0], POD_CIDR_BASE[1], i, 0)))
        .find(|cidr| !used.contains(cidr))
}

async fn reconcile(node: Arc<Node>, ctx: Arc<IpamCtx>) -> Result<Action, Error> {
    let has = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty());
    if has || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let _guard = ctx.lock.lock().await;
    let api: Api<Node> = Api::all(ctx.ctx.client.clone());
    let nodes = api.list(&ListParams::default()).await?.items;
    if nodes
        .iter()
        .any(|n| n.name_any() == node.name_any() && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some())
    {
        return Ok(Action::await_change());
    }
    let used: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.spec.as_ref())
        .flat_map(|s| s.pod_cidr.iter().chain(s.pod_cidrs.iter().flatten()))
        .cloned()
        .collect();
    let Some(cidr) = next_free(&used) else {
        tracing::error!(node = %node.name_any(), "no free /24 left in 10.42.0.0/16");
        return Ok(Action::requeue(std::time::Duration::from_secs(60)));
    };
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    api.patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    tracing::info!(node = %node.name_any(), %cidr, "assigned pod CIDR");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_the_lowest_free_range() {
        let mut used = BTreeSet::new();
        assert_eq!(next_free(&used).as_deref(), Some("10.42.0.0/24"));
        used.insert("10.42.0.0/24".to_string());
        used.insert("10.42.2.0/24".to_string());
        assert_eq!(next_free(&used).as_deref(), Some("10.42.1.0/24"));
        let all: BTreeSet<String> = (0..=255).map(|i| format!("10.42.{i}.0/24")).collect();
        assert_eq!(next_free(&all), None);
    }
}
