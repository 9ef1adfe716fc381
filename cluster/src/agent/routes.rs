//! Pod routes between nodes, the host-gw way (flannel's `host-gw` backend): for every other Node with a
//! `spec.podCIDR` and an InternalIP, the route `<podCIDR> via <InternalIP>`. No encapsulation and no NAT,
//! so a pod sees its peers' own addresses; the price is that nodes must share one layer-2 network (a
//! next hop that is not on-link is refused by the kernel, and we say so).
//!
//! Our routes carry protocol number [`ROUTE_PROTO`], which is how the agent finds and removes its own and
//! only its own (`ip route show proto 241`). Whatever has no route here still meets the agent's
//! `unreachable 10.42.0.0/16` (see `network::ensure_bridge`) and never leaves by the default route.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::mpsc;

use super::network::run_cmd;

/// The `proto` of the routes the agent owns (unassigned in iproute2's `rt_protos`).
pub const ROUTE_PROTO: &str = "241";
/// A burst of Node updates (status every few seconds from every node) makes one pass.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The routes a node wants: every other node's pod CIDR via that node's InternalIP.
pub fn desired(nodes: &[impl AsRef<Node>], own: &str) -> BTreeMap<String, Ipv4Addr> {
    let mut routes = BTreeMap::new();
    for node in nodes.iter().map(AsRef::as_ref) {
        if node.metadata.name.as_deref() == Some(own) || node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()) else { continue };
        let ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let Some(ip) = ip {
            routes.insert(cidr, ip);
        }
    }
    routes
}

/// The routes of ours the kernel has now: pod CIDR -> next hop.
async fn current() -> BTreeMap<String, Ipv4Addr> {
    let out = run_cmd("ip", &["-4", "route", "show", "proto", ROUTE_PROTO], None).await.unwrap_or_default();
    out.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let via = words.iter().position(|w| *w == "via")?;
            Some((words.first()?.to_string(), words.get(via + 1)?.parse().ok()?))
        })
        .collect()
}

/// Makes the kernel's routes of ours equal `want`.
async fn apply(want: &BTreeMap<String, Ipv4Addr>) {
    let have = current().await;
    for cidr in have.keys().filter(|c| !want.contains_key(*c)) {
        if let Err(e) = run_cmd("ip", &["route", "del", cidr, "proto", ROUTE_PROTO], None).await {
            tracing::warn!(%cidr, error = %e, "cannot remove the route to a departed node's pods");
        }
    }
    for (cidr, via) in want.iter().filter(|(c, v)| have.get(*c) != Some(v)) {
        let via = via.to_string();
        match run_cmd("ip", &["route", "replace", cidr, "via", &via, "proto", ROUTE_PROTO], None).await {
            Ok(_) => tracing::info!(%cidr, %via, "route to another node's pods"),
            Err(e) => tracing::warn!(
                %cidr, %via, error = %e,
                "cannot route to another node's pods; host-gw needs every node on this node's network"
            ),
        }
    }
}

/// Removes every route of ours (the agent is stopping). Blocking, for a drop guard.
pub fn remove_all_blocking() {
    let _ = std::process::Command::new("ip")
        .args(["-4", "route", "flush", "proto", ROUTE_PROTO])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Keeps the routes in step with the Node list until the agent stops.
pub async fn run(client: kube::Client, own: String) {
    let (store, writer) = reflector::store::<Node>();
    let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
    let stream =
        reflector::reflector(writer, watcher(Api::<Node>::all(client), watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {
                    let _ = tick_tx.try_send(());
                }
                Err(e) => tracing::warn!(error = %e, "node watch for pod routes failed; retrying"),
            }
        }
    });
    let mut last = None;
    while tick_rx.recv().await.is_some() {
        tokio::time::sleep(DEBOUNCE).await;
        while tick_rx.try_recv().is_ok() {}
        let want = desired(&store.state(), &own);
        // Node status updates arrive every few seconds; only a change of the wanted routes costs an `ip`.
        if last.as_ref() != Some(&want) {
            apply(&want).await;
            last = Some(want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: cidr.map(Into::into), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress { type_: "Hostname".into(), address: name.into() },
                    NodeAddress { type_: "InternalIP".into(), address: ip.into() },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn every_other_node_with_a_cidr_and_an_address() {
        let nodes: Vec<std::sync::Arc<Node>> = [
            node("a", Some("10.42.1.0/24"), "172.30.0.11"),
            node("b", Some("10.42.2.0/24"), "172.30.0.12"),
            node("c", None, "172.30.0.13"),
            node("d", Some("10.42.4.0/24"), "not-an-ip"),
        ]
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
        let want = desired(&nodes, "a");
        assert_eq!(want.len(), 1);
        assert_eq!(want["10.42.2.0/24"], Ipv4Addr::new(172, 30, 0, 12));
    }
}
