//! The service proxy as the agent runs it (`cluster::agent::services::run`) against a real API server:
//! Services and EndpointSlices created with kube-rs become nftables rules in a node network namespace,
//! and connections through ClusterIPs and published ports reach the "pods" of that namespace.

mod common;
mod net_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use cluster::agent::services::{ServicesConfig, run};
use common::Tier;
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use net_support::{ApiServer, Lab, NODE, ask, eventually, refused, unique};

fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() }
}

fn slice(name: &str, ns: &str, service: &str, ready: &[(&str, bool)]) -> EndpointSlice {
    let mut m = meta(name, ns);
    m.labels = Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), service.to_string())]));
    EndpointSlice {
        metadata: m,
        address_type: "IPv4".into(),
        endpoints: ready
            .iter()
            .map(|(ip, ready)| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions { ready: Some(*ready), ..Default::default() }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

fn service(name: &str, ns: &str, type_: &str, port: i32) -> Service {
    Service {
        metadata: meta(name, ns),
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            // No selector: the EndpointSlices are the test's, not the controller's.
            ports: Some(vec![ServicePort { name: Some("http".into()), port, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Asks from `ns` on a blocking thread (the namespace switch needs a thread of its own).
async fn ask_from(ns: &str, addr: SocketAddr) -> std::io::Result<String> {
    let ns = ns.to_string();
    tokio::task::spawn_blocking(move || ask(&ns, addr)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpointslices_drive_the_node_table() {
    if common::skip_tier(Tier::Node) {
        return;
    }
    let server = ApiServer::start(common::flotilla_bin());
    let client = server.client().await;
    let lab = Lab::new();
    let mut config = ServicesConfig::new(vec![NODE.into()]);
    config.table = format!("flotilla-{}", unique());
    config.nft = netproxy::Nft::in_netns(&lab.node);
    // The lab made the route in its namespace; the loopback listeners are covered by netproxy's own
    // tests (here they would run in the test's namespace, where the pods are not reachable).
    config.service_route = false;
    config.userspace_listen = None;
    let proxy = tokio::spawn(run(client.clone(), config.clone()));

    let ns = format!("flt-np-{}", unique());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }, ..Default::default() },
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let web = services.create(&PostParams::default(), &service("web", &ns, "ClusterIP", 80)).await.unwrap();
    let vip: Ipv4Addr = web.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    let vip = SocketAddr::from((vip, 80));

    // No endpoints yet: refused at once.
    eventually(30, "the service without endpoints to be refused", async || {
        refused(&ask_from(&lab.node, vip).await).then_some(())
    })
    .await;
    // A ready endpoint: answered through the ClusterIP, from the node and from a pod.
    slices.create(&PostParams::default(), &slice("web-1", &ns, "web", &[("10.42.7.2", true)])).await.unwrap();
    eventually(30, "the ClusterIP to reach pod a", async || {
        (ask_from(&lab.node, vip).await.ok()? == "a").then_some(())
    })
    .await;
    assert_eq!(ask_from(&lab.pods[1], vip).await.unwrap(), "a");
    // Readiness moves to pod b: only ready endpoints receive traffic.
    slices
        .replace("web-1", &PostParams::default(), &{
            let mut s = slice("web-1", &ns, "web", &[("10.42.7.2", false), ("10.42.7.3", true)]);
            s.metadata.resource_version = slices.get("web-1").await.unwrap().metadata.resource_version;
            s
        })
        .await
        .unwrap();
    eventually(30, "the ClusterIP to reach pod b only", async || {
        for _ in 0..5 {
            if ask_from(&lab.node, vip).await.ok()? != "b" {
                return None;
            }
        }
        Some(())
    })
    .await;

    // A published (LoadBalancer) port answers on the node's address.
    let published =
        services.create(&PostParams::default(), &service("web-published", &ns, "LoadBalancer", 18080)).await.unwrap();
    let node_port = published.spec.unwrap().ports.unwrap()[0].node_port;
    slices
        .create(&PostParams::default(), &slice("web-published-1", &ns, "web-published", &[("10.42.7.2", true)]))
        .await
        .unwrap();
    eventually(30, "the published port on the node address", async || {
        (ask_from(&lab.pods[1], SocketAddr::from((NODE, 18080))).await.ok()? == "a").then_some(())
    })
    .await;
    if let Some(np) = node_port {
        assert_eq!(ask_from(&lab.pods[1], SocketAddr::from((NODE, np as u16))).await.unwrap(), "a");
    }

    // The endpoints go: refused again; the service goes: its rules go.
    slices.delete("web-1", &DeleteParams::default()).await.unwrap();
    eventually(30, "refusal after the endpoints went", async || refused(&ask_from(&lab.node, vip).await).then_some(()))
        .await;
    services.delete("web-published", &DeleteParams::default()).await.unwrap();
    eventually(30, "the published port to close", async || {
        ask_from(&lab.pods[1], SocketAddr::from((NODE, 18080))).await.is_err().then_some(())
    })
    .await;
    proxy.abort();
    // Teardown removes the table.
    cluster::agent::services::teardown_blocking(&config);
    let listed = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.node, "nft", "list", "table", "ip", &config.table])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "table still there after teardown");
    let _ = Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()).await;
}
