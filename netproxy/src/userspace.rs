//! Published ports on 127.0.0.1, served in userspace the way Docker's docker-proxy does it.
//!
//! nftables cannot DNAT traffic addressed to 127.0.0.1 on to a pod without `route_localnet`
//! (CVE-2020-8558), and a real listening socket is also what makes a port conflict fail loudly, as
//! `docker run -p` does. One listener per published (protocol, port); each TCP connection goes to a
//! random ready endpoint and bytes are copied both ways; UDP keeps one upstream socket per client.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::seq::IndexedRandom;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::model::{Model, Protocol};

/// How long a connection attempt to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP "session" (client address → upstream socket) ends after this long without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// A published port that could not be bound (typically: already in use by another program).
#[derive(Debug)]
pub struct BindError {
    pub namespace: String,
    pub service: String,
    pub protocol: Protocol,
    pub address: SocketAddr,
    pub error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot publish {}/{} of service {}/{}: {} (is another program using the port?)",
            self.address, self.protocol, self.namespace, self.service, self.error
        )
    }
}

type Endpoints = Arc<RwLock<Vec<SocketAddrV4>>>;
/// (namespace, service) of a listener.
type Owner = (String, String);

struct Listener {
    owner: Owner,
    ip: IpAddr,
    endpoints: Endpoints,
    task: JoinHandle<()>,
}

/// The set of userspace listeners, kept in line with the model by [`LocalPorts::update`].
pub struct LocalPorts {
    ip: IpAddr,
    listeners: HashMap<(Protocol, u16), Listener>,
    /// Ports whose bind failed, with their owner: retried on every update, reported once.
    failed: HashMap<(Protocol, u16), Owner>,
    /// Services that publish a port another service already publishes: reported once.
    conflicts: HashSet<(Owner, Protocol, u16)>,
}

impl LocalPorts {
    /// Listeners on `ip`. The agent uses 0.0.0.0, like docker-proxy: the listeners serve 127.0.0.1
    /// (nftables catches every other address first), and binding the wildcard makes a port that any
    /// other program holds, on any address, fail loudly. A port the compose file pinned to a loopback
    /// address is bound on that address only.
    pub fn new(ip: IpAddr) -> LocalPorts {
        LocalPorts { ip, listeners: HashMap::new(), failed: HashMap::new(), conflicts: HashSet::new() }
    }

    /// (protocol, port) of the listeners that are up.
    pub fn bound(&self) -> Vec<(Protocol, u16)> {
        let mut out: Vec<_> = self.listeners.keys().copied().collect();
        out.sort();
        out
    }

    /// Published ports this node does not serve for their service: the bind failed (another program
    /// holds the port) or another service publishes the same port. The caller withdraws them from the
    /// nftables rules too ([`Model::withdraw_published`]), so a port someone else holds is not hijacked,
    /// as Docker refuses to publish a taken port.
    pub fn unserved(&self) -> Vec<(String, String, Protocol, u16)> {
        let mut out: Vec<_> = self
            .failed
            .iter()
            .map(|(k, o)| (o.0.clone(), o.1.clone(), k.0, k.1))
            .chain(self.conflicts.iter().map(|(o, proto, port)| (o.0.clone(), o.1.clone(), *proto, *port)))
            .collect();
        out.sort();
        out
    }

    /// Opens listeners for new published ports, updates the endpoints of existing ones and closes those
    /// whose service is gone. Returns the ports that could not be served and had not failed before.
    pub async fn update(&mut self, model: &Model) -> Vec<BindError> {
        let mut desired: HashMap<(Protocol, u16), (Owner, IpAddr, Vec<SocketAddrV4>)> = HashMap::new();
        let mut conflicts = HashSet::new();
        let mut errors = Vec::new();
        for p in model.ports.values() {
            if p.protocol == Protocol::Sctp {
                continue;
            }
            let Some(port) = p.loopback_port() else { continue };
            let owner = (p.namespace.clone(), p.service.clone());
            let ip = p.host_ip.filter(|ip| ip.is_loopback()).unwrap_or(self.ip);
            match desired.get(&(p.protocol, port)) {
                None => {
                    desired.insert((p.protocol, port), (owner, ip, p.endpoints.clone()));
                }
                Some((first, _, _)) if *first != owner => {
                    let key = (owner.clone(), p.protocol, port);
                    if !self.conflicts.contains(&key) {
                        errors.push(BindError {
                            namespace: owner.0.clone(),
                            service: owner.1.clone(),
                            protocol: p.protocol,
                            address: SocketAddr::new(ip, port),
                            error: io::Error::new(
                                io::ErrorKind::AddrInUse,
                                format!("the port is already published by service {}/{}", first.0, first.1),
                            ),
                        });
                    }
                    conflicts.insert(key);
                }
                Some(_) => {}
            }
        }
        self.conflicts = conflicts;
        // Close listeners that are no longer wanted, or now belong to another service or address.
        self.listeners.retain(|key, l| {
            let keep = desired.get(key).is_some_and(|(owner, ip, _)| *owner == l.owner && *ip == l.ip);
            if !keep {
                debug!(port = key.1, protocol = %key.0, "closing published port on loopback");
                l.task.abort();
            }
            keep
        });
        self.failed.retain(|key, owner| desired.get(key).is_some_and(|(o, _, _)| o == owner));
        for (key, (owner, ip, endpoints)) in desired {
            if let Some(l) = self.listeners.get(&key) {
                *l.endpoints.write().expect("endpoint lock") = endpoints;
                continue;
            }
            let shared: Endpoints = Arc::new(RwLock::new(endpoints));
            let addr = SocketAddr::new(ip, key.1);
            let task = match key.0 {
                Protocol::Tcp => TcpListener::bind(addr).await.map(|l| tokio::spawn(serve_tcp(l, shared.clone()))),
                _ => UdpSocket::bind(addr).await.map(|s| tokio::spawn(serve_udp(Arc::new(s), shared.clone()))),
            };
            match task {
                Ok(task) => {
                    debug!(%addr, protocol = %key.0, "published port open");
                    self.failed.remove(&key);
                    self.listeners.insert(key, Listener { owner, ip, endpoints: shared, task });
                }
                Err(error) => {
                    if self.failed.insert(key, owner.clone()).is_none() {
                        errors.push(BindError {
                            namespace: owner.0,
                            service: owner.1,
                            protocol: key.0,
                            address: addr,
                            error,
                        });
                    }
                }
            }
        }
        errors
    }

    /// Closes every listener.
    pub fn close_all(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.task.abort();
        }
        self.failed.clear();
        self.conflicts.clear();
    }
}

impl Drop for LocalPorts {
    fn drop(&mut self) {
        self.close_all();
    }
}

fn pick(endpoints: &Endpoints) -> Vec<SocketAddrV4> {
    let eps = endpoints.read().expect("endpoint lock").clone();
    let mut rng = rand::rng();
    // A random order: the first is the choice, the rest are fallbacks if it does not answer.
    let mut out = Vec::with_capacity(eps.len());
    let mut rest = eps;
    while let Some(ep) = rest.choose(&mut rng).copied() {
        out.push(ep);
        rest.retain(|e| *e != ep);
        if out.len() == 3 {
            break;
        }
    }
    out
}

async fn serve_tcp(listener: TcpListener, endpoints: Endpoints) {
    loop {
        let (mut client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "accept failed on a published port");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let candidates = pick(&endpoints);
        tokio::spawn(async move {
            for ep in candidates {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
                    Ok(Ok(mut upstream)) => {
                        let _ = client.set_nodelay(true);
                        let _ = upstream.set_nodelay(true);
                        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                            debug!(%peer, %ep, error = %e, "published-port connection ended");
                        }
                        return;
                    }
                    Ok(Err(e)) => debug!(%ep, error = %e, "endpoint refused a published-port connection"),
                    Err(_) => debug!(%ep, "endpoint did not answer a published-port connection"),
                }
            }
            // No endpoint (or none answering): close at once, like a refused connection.
            debug!(%peer, "no ready endpoint for a published port");
        });
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, endpoints: Endpoints) {
    let sessions: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "udp receive failed on a published port");
                continue;
            }
        };
        let existing = sessions.lock().await.get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let Some(ep) = pick(&endpoints).into_iter().next() else { continue };
                let Ok(up) = UdpSocket::bind("0.0.0.0:0").await else { continue };
                if up.connect(ep).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                sessions.lock().await.insert(client, up.clone());
                let (up2, sock2, sessions2) = (up.clone(), socket.clone(), sessions.clone());
                tokio::spawn(async move {
                    let mut rbuf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up2.recv(&mut rbuf)).await {
                        if sock2.send_to(&rbuf[..n], client).await.is_err() {
                            break;
                        }
                    }
                    sessions2.lock().await.remove(&client);
                });
                up
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}
