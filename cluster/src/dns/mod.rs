//! Node-local cluster DNS (hickory-server): answers services, headless pods and compose names from the
//! API's Services and EndpointSlices, forwards other names upstream.
//!
//! The handler answers `cluster.local` itself from an in-memory [`index::Index`] that reflectors keep
//! current, authoritatively and fast (NXDOMAIN for unknown names, so a search-path miss costs no
//! upstream round trip), with a 5 s TTL as CoreDNS does. Every other name goes to the resolvers of the
//! node's `/etc/resolv.conf` through hickory's forwarder, with short timeouts.

pub mod index;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::resolver::config::NameServerConfig;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::forwarder::{ForwardConfig, ForwardZoneHandler};
use hickory_server::zone_handler::{Catalog, MessageResponseBuilder};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use index::{Answer, Index, ZONE};

/// TTL of cluster records (CoreDNS's default for the kubernetes plugin).
pub const TTL: u32 = 5;
/// Upstream timeout per attempt: a pod's resolver gives up after 5 s, so fail well before that.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors that stop the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for DNS on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("dns server failed: {0}")]
    Server(String),
}

/// The request handler: the cluster zone from the index, the rest forwarded.
pub struct ClusterDns {
    index: Arc<RwLock<Index>>,
    /// False until the index was built once: until then cluster names get SERVFAIL (clients retry),
    /// not an NXDOMAIN they would cache.
    ready: Arc<AtomicBool>,
    zone: LowerName,
    soa: Record,
    forward: Option<Catalog>,
}

impl ClusterDns {
    /// A handler over `index`, forwarding names outside the cluster zone to `upstream`.
    pub fn new(index: Arc<RwLock<Index>>, ready: Arc<AtomicBool>, upstream: Upstream) -> ClusterDns {
        let origin = Name::from_ascii(format!("{ZONE}.")).expect("valid zone");
        let soa = Record::from_rdata(
            origin.clone(),
            TTL,
            RData::SOA(SOA::new(
                Name::from_ascii(format!("ns.dns.{ZONE}.")).expect("valid name"),
                Name::from_ascii(format!("hostmaster.{ZONE}.")).expect("valid name"),
                1,
                7200,
                1800,
                86400,
                TTL,
            )),
        );
        ClusterDns { index, ready, zone: LowerName::from(origin), soa, forward: forwarder(upstream) }
    }
}

/// Where names outside the cluster zone go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The resolvers of the node's `/etc/resolv.conf`.
    System,
    /// These servers (UDP, then TCP for truncated answers).
    Servers(Vec<SocketAddr>),
    /// Nowhere: other names are refused.
    None,
}

/// hickory's forwarder for `.`.
fn forwarder(upstream: Upstream) -> Option<Catalog> {
    let mut builder = match upstream {
        Upstream::None => return None,
        Upstream::System => match ForwardZoneHandler::builder(TokioRuntimeProvider::default()) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "no upstream DNS (cannot read /etc/resolv.conf): only cluster names will resolve");
                return None;
            }
        },
        Upstream::Servers(addrs) => {
            let name_servers = addrs
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect();
            ForwardZoneHandler::builder_tokio(ForwardConfig { name_servers, options: None })
        }
    };
    let opts = builder.options_mut();
    opts.timeout = UPSTREAM_TIMEOUT;
    opts.attempts = 2;
    let handler = match builder.with_origin(Name::root()).build() {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "no upstream DNS: only cluster names will resolve");
            return None;
        }
    };
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::from(Name::root()), vec![Arc::new(handler)]);
    Some(catalog)
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDns {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return response.send_response(msg).await.unwrap_or_else(|_| failed(request, ResponseCode::FormErr));
        };
        let qname = info.query.name();
        if !self.zone.zone_of(qname) {
            if let Some(forward) = &self.forward {
                return forward.handle_request::<R, T>(request, response).await;
            }
            let msg = builder.error_msg(&request.metadata, ResponseCode::Refused);
            return response.send_response(msg).await.unwrap_or_else(|_| failed(request, ResponseCode::Refused));
        }
        if !self.ready.load(Ordering::Acquire) {
            let msg = builder.error_msg(&request.metadata, ResponseCode::ServFail);
            return response.send_response(msg).await.unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
        }
        let answer = self.index.read().expect("dns index lock").lookup(&qname.to_string());
        let name = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = self.forward.is_some();
        let mut answers = Vec::new();
        match answer {
            Answer::NxDomain => metadata.response_code = ResponseCode::NXDomain,
            Answer::Found(records) => {
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    answers.extend(records.a.iter().map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(*ip)))));
                }
                if matches!(qtype, RecordType::SRV | RecordType::ANY) {
                    for (port, target) in &records.srv {
                        let Ok(target) = Name::from_ascii(format!("{target}.")) else { continue };
                        let srv = SRV::new(0, 100, *port, target);
                        answers.push(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
                    }
                }
            }
        }
        // A negative answer (NXDOMAIN, or no record of this type) carries the SOA, whose minimum TTL
        // bounds how long the client caches the miss.
        let soa: Vec<&Record> = if answers.is_empty() { vec![&self.soa] } else { Vec::new() };
        let msg = builder.build(metadata, answers.iter(), std::iter::empty(), soa, std::iter::empty());
        match response.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                debug!(error = %e, "cannot send a dns response");
                failed(request, ResponseCode::ServFail)
            }
        }
    }
}

/// Serves `handler` on an already bound UDP socket and, if given, TCP listener, until they fail.
pub async fn serve(handler: ClusterDns, udp: UdpSocket, tcp: Option<TcpListener>) -> Result<(), DnsError> {
    let mut server = Server::new(handler);
    server.register_socket(udp);
    if let Some(tcp) = tcp {
        server.register_listener(tcp, Duration::from_secs(5), 64);
    }
    server.block_until_done().await.map_err(|e| DnsError::Server(e.to_string()))
}

/// Keeps `index` in line with the cluster's Services and EndpointSlices (all namespaces); sets `ready`
/// after the first build.
pub async fn watch(client: kube::Client, index: Arc<RwLock<Index>>, ready: Arc<AtomicBool>) {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
    let svc_stream =
        reflector::reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .default_backoff();
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    for (what, stream) in [
        ("services", svc_stream.map(|r| r.map(|_| ())).boxed()),
        ("endpointslices", slice_stream.map(|r| r.map(|_| ())).boxed()),
    ] {
        let tick = tick_tx.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(()) => {
                        let _ = tick.try_send(());
                    }
                    Err(e) => warn!(watch = what, error = %e, "dns watch failed; retrying"),
                }
            }
        });
    }
    drop(tick_tx);
    if svc_store.wait_until_ready().await.is_err() || slice_store.wait_until_ready().await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        if !first && tick_rx.recv().await.is_none() {
            return;
        }
        first = false;
        tokio::time::sleep(Duration::from_millis(20)).await;
        while tick_rx.try_recv().is_ok() {}
        let services = svc_store.state();
        let slices = slice_store.state();
        let built = Index::build(services.iter().map(|s| s.as_ref()), slices.iter().map(|s| s.as_ref()));
        debug!(names = built.len(), "dns index rebuilt");
        *index.write().expect("dns index lock") = built;
        ready.store(true, Ordering::Release);
    }
}

/// Serves DNS on `listen` (UDP and TCP) until the process ends.
pub async fn run(client: kube::Client, listen: SocketAddr) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let udp = UdpSocket::bind(listen).await.map_err(|source| DnsError::Bind { addr: listen, source })?;
    let tcp = TcpListener::bind(listen).await.map_err(|source| DnsError::Bind { addr: listen, source })?;
    let index = Arc::new(RwLock::new(Index::default()));
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch(client, index.clone(), ready.clone()));
    info!(%listen, "cluster dns listening");
    serve(ClusterDns::new(index, ready, Upstream::System), udp, Some(tcp)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(name: &str, ip: &str) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("shop".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn ask(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut msg = Message::query();
        msg.metadata.id = 4242;
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        sock.send_to(&msg.to_vec().unwrap(), addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await.expect("dns answer").unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    #[tokio::test]
    async fn answers_cluster_names_over_udp_and_tcp() {
        let index = Arc::new(RwLock::new(Index::build([&service("web", "10.43.0.20")], [])));
        let ready = Arc::new(AtomicBool::new(true));
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.ok();
        let has_tcp = tcp.is_some();
        let server = tokio::spawn(serve(ClusterDns::new(index.clone(), ready, Upstream::None), udp, tcp));

        let r = ask(addr, "web.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.metadata.id, 4242);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A("10.43.0.20".parse().unwrap())));
        assert_eq!(r.answers[0].ttl, TTL);

        // The search path's misses are answered at once, with the SOA for negative caching.
        let r = ask(addr, "web.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities.len(), 1);
        // The name exists but has no AAAA: NOERROR, empty.
        let r = ask(addr, "web.shop.svc.cluster.local.", RecordType::AAAA).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        let r = ask(addr, "_http._tcp.web.shop.svc.cluster.local.", RecordType::SRV).await;
        assert!(matches!(&r.answers[0].data, RData::SRV(srv) if srv.port == 80), "{:?}", r.answers);
        // Without forwarding, other names are refused.
        let r = ask(addr, "example.com.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);

        // Index updates are visible at once.
        *index.write().unwrap() = Index::build([&service("web", "10.43.0.21")], []);
        let r = ask(addr, "WEB.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.answers[0].data, RData::A(A("10.43.0.21".parse().unwrap())));

        // TCP: two-byte length prefix, then the message.
        if has_tcp {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut msg = Message::query();
            msg.metadata.id = 7;
            msg.add_query(Query::query(Name::from_ascii("web.shop.svc.cluster.local.").unwrap(), RecordType::A));
            let bytes = msg.to_vec().unwrap();
            s.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            let len = s.read_u16().await.unwrap();
            let mut buf = vec![0u8; len as usize];
            s.read_exact(&mut buf).await.unwrap();
            let r = Message::from_vec(&buf).unwrap();
            assert_eq!(r.metadata.id, 7);
            assert_eq!(r.answers.len(), 1);
        }
        server.abort();
    }

    #[tokio::test]
    async fn not_ready_is_servfail_not_nxdomain() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let dns = ClusterDns::new(Arc::default(), Arc::new(AtomicBool::new(false)), Upstream::None);
        let server = tokio::spawn(serve(dns, udp, None));
        let r = ask(addr, "web.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        server.abort();
    }
    /// A stand-in upstream resolver: answers every A question with 192.0.2.7.
    async fn fake_upstream() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            for _ in 0..100 {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else { return };
                let q = Message::from_vec(&buf[..n]).unwrap();
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.metadata.recursion_desired = q.metadata.recursion_desired;
                r.metadata.recursion_available = true;
                for query in &q.queries {
                    r.add_query(query.clone());
                    if query.query_type() == RecordType::A {
                        r.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::A(A("192.0.2.7".parse().unwrap())),
                        ));
                    }
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn other_names_are_forwarded_upstream() {
        let upstream = fake_upstream().await;
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let index = Arc::new(RwLock::new(Index::build([&service("web", "10.43.0.20")], [])));
        let dns = ClusterDns::new(index, Arc::new(AtomicBool::new(true)), Upstream::Servers(vec![upstream]));
        let server = tokio::spawn(serve(dns, udp, None));
        let r = ask(addr, "example.org.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{r:?}");
        assert_eq!(r.answers.len(), 1, "{r:?}");
        assert_eq!(r.answers[0].data, RData::A(A("192.0.2.7".parse().unwrap())));
        // Cluster names are still answered locally, never forwarded.
        let r = ask(addr, "nope.shop.svc.cluster.local.", RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        server.abort();
    }
}
