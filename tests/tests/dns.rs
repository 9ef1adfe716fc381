//! The cluster DNS (`cluster::dns::run`) against a real API server: Services and EndpointSlices created
//! with kube-rs become names answered over UDP, as a pod's resolver would ask.

mod common;
mod net_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::Tier;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use net_support::{ApiServer, eventually, unique};

/// Asks `server` for `name` over UDP; `None` if no answer came within a second.
async fn query(server: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let mut msg = Message::query();
    msg.metadata.id = rand_id();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).ok()?, qtype));
    sock.send_to(&msg.to_vec().ok()?, server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await.ok()?.ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() & 0xffff) as u16
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn meta(name: &str, ns: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_headless_endpoints_and_compose_names_resolve() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(common::flotilla_bin());
    let client = server.client().await;
    let dns_addr = SocketAddr::from(([127, 0, 0, 1], net_support::free_port()));
    let dns = tokio::spawn(cluster::dns::run(client.clone(), dns_addr));

    let ns = format!("flt-dns-{}", unique());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }, ..Default::default() },
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    // A compose service `My_Web` with a network alias: the translator names the Service `my-web` and
    // records the compose name and the alias in annotations.
    let mut web_meta = meta("my-web", &ns);
    web_meta.annotations = Some(BTreeMap::from([
        ("compose.flotilla.dev/service-name".to_string(), "My_Web".to_string()),
        ("compose.flotilla.dev/aliases".to_string(), "frontend".to_string()),
    ]));
    let web = services
        .create(
            &PostParams::default(),
            &Service {
                metadata: web_meta,
                spec: Some(ServiceSpec {
                    ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cluster_ip: Ipv4Addr = web.spec.unwrap().cluster_ip.expect("clusterIP allocated").parse().unwrap();
    services
        .create(
            &PostParams::default(),
            &Service {
                metadata: meta("db", &ns),
                spec: Some(ServiceSpec {
                    cluster_ip: Some("None".into()),
                    ports: Some(vec![ServicePort { name: Some("pg".into()), port: 5432, ..Default::default() }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let mut slice_meta = meta("db-manual", &ns);
    slice_meta.labels = Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), "db".to_string())]));
    let endpoint = |ip: &str, host: Option<&str>, ready: bool| Endpoint {
        addresses: vec![ip.into()],
        hostname: host.map(Into::into),
        conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
        ..Default::default()
    };
    slices
        .create(
            &PostParams::default(),
            &EndpointSlice {
                metadata: slice_meta,
                address_type: "IPv4".into(),
                endpoints: vec![
                    endpoint("10.42.0.7", Some("db-0"), true),
                    endpoint("10.42.0.8", None, true),
                    endpoint("10.42.0.9", None, false),
                ],
                ports: Some(vec![EndpointPort { name: Some("pg".into()), port: Some(5432), ..Default::default() }]),
            },
        )
        .await
        .unwrap();

    let fqdn = |n: &str| format!("{n}.{ns}.svc.cluster.local.");
    let got = eventually(30, "the service's A record", async || {
        let m = query(dns_addr, &fqdn("my-web"), RecordType::A).await?;
        (!m.answers.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(a_records(&got), vec![cluster_ip]);
    assert_eq!(got.answers[0].ttl, 5);
    for name in ["my_web", "frontend", "MY-WEB"] {
        let m = query(dns_addr, &fqdn(name), RecordType::A).await.expect("answer");
        assert_eq!(a_records(&m), vec![cluster_ip], "{name}");
    }
    let db = eventually(30, "the headless service's records", async || {
        let m = query(dns_addr, &fqdn("db"), RecordType::A).await?;
        (m.answers.len() == 2).then_some(m)
    })
    .await;
    assert_eq!(a_records(&db), vec![Ipv4Addr::new(10, 42, 0, 7), Ipv4Addr::new(10, 42, 0, 8)]);
    let host = query(dns_addr, &format!("db-0.{}", fqdn("db")), RecordType::A).await.expect("answer");
    assert_eq!(a_records(&host), vec![Ipv4Addr::new(10, 42, 0, 7)]);
    let srv = query(dns_addr, &format!("_pg._tcp.{}", fqdn("db")), RecordType::SRV).await.expect("answer");
    assert_eq!(srv.answers.len(), 2, "{srv:?}");
    // Unknown names under the zone: NXDOMAIN at once (the search path tries several).
    let nx = query(dns_addr, "my-web.svc.cluster.local.", RecordType::A).await.expect("answer");
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    // The `default/kubernetes` service exists on every cluster.
    let k = query(dns_addr, "kubernetes.default.svc.cluster.local.", RecordType::A).await.expect("answer");
    assert_eq!(a_records(&k), vec![Ipv4Addr::new(10, 43, 0, 1)]);

    // Deleting the service removes its names.
    services.delete("my-web", &DeleteParams::default()).await.unwrap();
    eventually(30, "the deleted service's NXDOMAIN", async || {
        let m = query(dns_addr, &fqdn("my-web"), RecordType::A).await?;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;
    let _ = Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()).await;
    dns.abort();
}
