//! LoadBalancer status, as k3s's ServiceLB: a `type: LoadBalancer` Service is answered on every node, so its
//! `status.loadBalancer.ingress` lists the Ready nodes' InternalIPs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::daemonset::node_ready;
use super::{Ctx, Error, drain, error_policy};

/// Runs the LoadBalancer status controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let stream = controller
        .watches(Api::<Node>::all(client), watcher::Config::default(), move |_node: Node| {
            store.state().iter().filter(|s| is_load_balancer(s)).map(|s| ObjectRef::from_obj(&**s)).collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx);
    drain("servicelb", stream).await;
}

fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Ingress entries for the Ready nodes' InternalIPs, sorted and deduplicated.
pub fn ingress_for(nodes: &[Node]) -> Vec<LoadBalancerIngress> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| node_ready(n))
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter().map(|ip| LoadBalancerIngress { ip: Some(ip), ..Default::default() }).collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let have = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    if !is_load_balancer(&svc) {
        // No longer a LoadBalancer (type changed): the addresses we published no longer answer for it.
        if !have.is_empty() {
            let patch = json!({"status": {"loadBalancer": {"ingress": null}}});
            api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        return Ok(Action::await_change());
    }
    let nodes = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let want = ingress_for(&nodes);
    let have = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    if have != want {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
        let patch = json!({"status": {"loadBalancer": {"ingress": want}}});
        api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_nodes_internal_ips() {
        let node = |ip: &str, ready: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": ip},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "h"}],
                    "conditions": [{"type": "Ready", "status": ready}]
                }
            }))
            .unwrap()
        };
        let ing = ingress_for(&[node("10.0.0.2", "True"), node("10.0.0.3", "False"), node("10.0.0.1", "True")]);
        let ips: Vec<_> = ing.iter().map(|i| i.ip.clone().unwrap()).collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"]);
    }
}
