//! Root-only tests of the real data path: a node network namespace with a bridge and two "pods" (network
//! namespaces on veths) running a tiny TCP server, the rendered table applied with `nft` in the node's
//! namespace, and connections made through ClusterIPs, node ports and the loopback listeners.
//!
//! Every namespace has a unique `flt-` name and is removed by a guard, even when a test fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use netproxy::render::{self, RenderConfig, parse_cidr};
use netproxy::{LocalPorts, Model, Nft, Protocol, Proxy, ServicePort, SyncKind};

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `f` on a thread that entered the network namespace `ns`; sockets made there stay in it.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid namespace file descriptor.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// A node namespace (bridge 10.42.7.1/24, local route for 10.43.0.0/16) with pods `a` (10.42.7.2) and
/// `b` (10.42.7.3), each serving TCP 8080: it writes its name and a newline, then echoes.
struct Lab {
    node: String,
    pods: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.pods.iter().chain(std::iter::once(&self.node)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

const POD_A: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 2);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 3);
const NODE: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 1);

impl Lab {
    fn new() -> Lab {
        let id: u32 = rand::random();
        let id = format!("{:06x}", id & 0xff_ffff);
        let node = format!("flt-{id}-node");
        let lab = Lab { node: node.clone(), pods: vec![format!("flt-{id}-a"), format!("flt-{id}-b")] };
        run(&["ip", "netns", "add", &node]);
        run(&["ip", "-n", &node, "link", "set", "lo", "up"]);
        run(&["ip", "-n", &node, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &node, "addr", "add", "10.42.7.1/24", "dev", "br0"]);
        run(&["ip", "-n", &node, "link", "set", "br0", "up"]);
        run(&["ip", "-n", &node, "route", "add", "local", "10.43.0.0/16", "dev", "lo"]);
        run(&["ip", "netns", "exec", &node, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for (i, (pod, ip)) in lab.pods.iter().zip([POD_A, POD_B]).enumerate() {
            let name = ["a", "b"][i];
            let host_if = format!("veth{name}");
            run(&["ip", "netns", "add", pod]);
            run(&["ip", "-n", &node, "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", pod]);
            run(&["ip", "-n", &node, "link", "set", &host_if, "master", "br0", "up"]);
            // With br_netfilter (Docker loads it), a pod reaching itself through its service is DNATed
            // at the bridge and sent back out of the port it came in by: that needs hairpin mode.
            run(&["ip", "-n", &node, "link", "set", &host_if, "type", "bridge_slave", "hairpin", "on"]);
            run(&["ip", "-n", pod, "link", "set", "lo", "up"]);
            run(&["ip", "-n", pod, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            run(&["ip", "-n", pod, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", pod, "route", "add", "default", "via", "10.42.7.1"]);
            let listener = in_netns(pod, || TcpListener::bind("0.0.0.0:8080").expect("bind 8080 in pod"));
            std::thread::spawn(move || serve(listener, name));
            let udp = in_netns(pod, || std::net::UdpSocket::bind("0.0.0.0:8080").expect("bind udp 8080 in pod"));
            std::thread::spawn(move || serve_udp(udp, name));
        }
        lab
    }

    fn nft(&self) -> Nft {
        Nft::in_netns(&self.node)
    }
}

fn serve(listener: TcpListener, name: &'static str) {
    for conn in listener.incoming().take(10_000) {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = conn.write_all(format!("{name}\n").as_bytes());
            let mut buf = [0u8; 1024];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

/// Answers every datagram with the pod's name and the datagram.
fn serve_udp(sock: std::net::UdpSocket, name: &'static str) {
    let mut buf = [0u8; 1500];
    for _ in 0..10_000 {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
        let mut reply = format!("{name}:").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = sock.send_to(&reply, peer);
    }
}

/// Connects from namespace `ns` and returns the name the server announced, after checking the echo.
fn ask(ns: &str, addr: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"ping")?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"ping") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed before echo"));
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).to_string();
        Ok(text.lines().next().unwrap_or_default().to_string())
    })
}

fn port(name: &str, vip: [u8; 4], port: u16, eps: &[Ipv4Addr], lb: Option<u16>, node_port: Option<u16>) -> ServicePort {
    ServicePort {
        namespace: "app".into(),
        service: name.into(),
        port_name: port.to_string(),
        protocol: Protocol::Tcp,
        port,
        cluster_ips: vec![Ipv4Addr::from(vip)],
        node_port,
        load_balancer_port: lb,
        host_ip: None,
        endpoints: eps.iter().map(|ip| SocketAddrV4::new(*ip, 8080)).collect(),
    }
}

fn model(ports: Vec<ServicePort>) -> Model {
    Model { ports: ports.into_iter().map(|p| (p.id(), p)).collect() }
}

fn cfg(table: &str) -> RenderConfig {
    RenderConfig {
        table: table.into(),
        cluster_cidr: parse_cidr("10.42.0.0/16"),
        service_cidr: parse_cidr("10.43.0.0/16"),
    }
}

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn refused(r: std::io::Result<String>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn clusterip_nodeport_and_reject_through_nftables() {
    let lab = Lab::new();
    let table = "flotilla-test";
    let mut proxy = Proxy::new(cfg(table), lab.nft()).unwrap();
    let web = port("web", [10, 43, 0, 10], 80, &[POD_A, POD_B], None, None);
    let empty = port("empty", [10, 43, 0, 11], 80, &[], None, None);
    let published = port("pub", [10, 43, 0, 12], 8080, &[POD_A], Some(8080), Some(30080));
    let rt = rt();
    assert_eq!(
        rt.block_on(proxy.sync(&model(vec![web.clone(), empty.clone(), published.clone()]))).unwrap(),
        SyncKind::Full
    );

    // Round trip: the kernel holds what was rendered.
    let listed = rt.block_on(lab.nft().list_table(table)).unwrap();
    let objects = listed["nftables"].as_array().unwrap();
    let map = |name: &str| {
        objects.iter().find(|o| o["map"]["name"] == name).unwrap_or_else(|| panic!("map {name}"))["map"].clone()
    };
    let ips = map("service-ips");
    assert_eq!(ips["map"], "verdict");
    assert_eq!(ips["elem"].as_array().map(Vec::len), Some(2), "{ips}");
    assert!(ips.to_string().contains(r#"{"concat":["10.43.0.10","tcp",80]}"#), "{ips}");
    assert!(map("no-endpoint-services").to_string().contains("10.43.0.11"));
    assert_eq!(map("service-nodeports")["elem"].as_array().map(Vec::len), Some(2));
    let rendered = render::render(&model(vec![web.clone(), empty.clone(), published.clone()]), &cfg(table));
    for chain in rendered.chains.keys() {
        assert!(objects.iter().any(|o| o["chain"]["name"] == chain.as_str()), "chain {chain} missing");
    }
    // Per-service rules read back equal to the rendered ones, and parse into the nftables crate's types.
    for (chain, rules) in &rendered.chains {
        let listed: Vec<serde_json::Value> = objects
            .iter()
            .filter(|o| o["rule"]["chain"] == chain.as_str())
            .map(|o| {
                let _: nftables::schema::NfListObject =
                    serde_json::from_value(o.clone()).unwrap_or_else(|e| panic!("{o}: {e}"));
                o["rule"]["expr"].clone()
            })
            .collect();
        let listed = serde_json::to_string(&listed).unwrap().replace(r#","offset":0"#, "");
        let rendered: serde_json::Value = serde_json::to_value(rules).unwrap();
        // Compare as values: nft lists object keys in its own order.
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed, rendered, "chain {chain}");
    }

    // ClusterIP from the node itself (nat output) and from a pod (nat prerouting): both endpoints answer.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(ask(&lab.node, sa([10, 43, 0, 10], 80)).unwrap());
    }
    assert_eq!(seen, ["a", "b"].map(String::from).into(), "random choice over both endpoints");
    assert!(["a", "b"].contains(&ask(&lab.pods[1], sa([10, 43, 0, 10], 80)).unwrap().as_str()));
    // Hairpin: pod a reaches itself through a service whose only endpoint it is.
    assert_eq!(ask(&lab.pods[0], sa([10, 43, 0, 12], 8080)).unwrap(), "a");
    // Published port and node port on the node's address.
    assert_eq!(ask(&lab.pods[1], SocketAddr::from((NODE, 8080))).unwrap(), "a");
    assert_eq!(ask(&lab.pods[1], SocketAddr::from((NODE, 30080))).unwrap(), "a");
    assert_eq!(ask(&lab.node, SocketAddr::from((NODE, 30080))).unwrap(), "a");
    // No ready endpoint: refused at once, from the node and from a pod.
    assert!(refused(ask(&lab.node, sa([10, 43, 0, 11], 80))));
    assert!(refused(ask(&lab.pods[1], sa([10, 43, 0, 11], 80))));

    // A node socket on all addresses is not reachable through service addresses (they have a local
    // route): unallocated addresses and undeclared ports are refused.
    let node_sock = in_netns(&lab.node, || TcpListener::bind("0.0.0.0:2222").unwrap());
    assert!(refused(ask(&lab.pods[1], sa([10, 43, 0, 99], 2222))));
    assert!(refused(ask(&lab.node, sa([10, 43, 0, 10], 2222))));
    drop(node_sock);

    // Incremental: web loses endpoint b; only a answers now.
    let web_a = port("web", [10, 43, 0, 10], 80, &[POD_A], None, None);
    let kind = rt.block_on(proxy.sync(&model(vec![web_a, empty.clone(), published.clone()]))).unwrap();
    assert!(matches!(kind, SyncKind::Partial { .. }), "{kind:?}");
    for _ in 0..10 {
        assert_eq!(ask(&lab.node, sa([10, 43, 0, 10], 80)).unwrap(), "a");
    }
    // web loses every endpoint: refused; the empty service gains b: answered.
    let web_none = port("web", [10, 43, 0, 10], 80, &[], None, None);
    let empty_b = port("empty", [10, 43, 0, 11], 80, &[POD_B], None, None);
    rt.block_on(proxy.sync(&model(vec![web_none, empty_b, published.clone()]))).unwrap();
    assert!(refused(ask(&lab.node, sa([10, 43, 0, 10], 80))));
    assert_eq!(ask(&lab.pods[0], sa([10, 43, 0, 11], 80)).unwrap(), "b");
    // Nothing changed: nothing applied.
    assert_eq!(
        rt.block_on(proxy.sync(&model(vec![
            port("web", [10, 43, 0, 10], 80, &[], None, None),
            port("empty", [10, 43, 0, 11], 80, &[POD_B], None, None),
            published
        ])))
        .unwrap(),
        SyncKind::Unchanged
    );
    // Services gone: their chains go too.
    rt.block_on(proxy.sync(&Model::default())).unwrap();
    let listed = rt.block_on(lab.nft().list_table(table)).unwrap();
    let text = listed.to_string();
    assert!(!text.contains("app/"), "per-service chains left: {text}");
    rt.block_on(proxy.delete()).unwrap();
    assert!(rt.block_on(lab.nft().list_table(table)).is_err());
}

#[test]
fn localhost_listener_forwards_and_conflicts_fail() {
    let lab = Lab::new();
    let published = port("pub", [10, 43, 0, 12], 8080, &[POD_A], Some(18080), None);
    let node = lab.node.clone();
    let pods = lab.pods.clone();
    // The listeners live in the node namespace: run the runtime on a thread that entered it.
    in_netns(&lab.node.clone(), move || {
        let rt = rt();
        rt.block_on(async {
            let mut ports = LocalPorts::new("127.0.0.1".parse().unwrap());
            let errors = ports.update(&model(vec![published.clone()])).await;
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(ports.bound(), vec![(Protocol::Tcp, 18080)]);
            let got = tokio::task::spawn_blocking({
                let node = node.clone();
                move || ask(&node, sa([127, 0, 0, 1], 18080))
            })
            .await
            .unwrap();
            assert_eq!(got.unwrap(), "a");

            // A second owner of the same port fails loudly, and only once.
            let mut other = LocalPorts::new("127.0.0.1".parse().unwrap());
            let errors = other.update(&model(vec![published.clone()])).await;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].error.kind(), ErrorKind::AddrInUse);
            assert!(errors[0].to_string().contains("127.0.0.1:18080"), "{}", errors[0]);
            assert!(other.update(&model(vec![published.clone()])).await.is_empty());
            assert_eq!(other.unserved(), vec![("app".into(), "pub".into(), Protocol::Tcp, 18080)]);
            drop(other);

            // Two services publishing one port: the first keeps it, the second is reported once and
            // withdrawn from the rules.
            let rival = port("rival", [10, 43, 0, 13], 8080, &[POD_B], Some(18080), None);
            let both = model(vec![published.clone(), rival.clone()]);
            let errors = ports.update(&both).await;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].service, "rival");
            assert!(errors[0].to_string().contains("already published by service app/pub"), "{}", errors[0]);
            assert!(ports.update(&both).await.is_empty());
            let mut withdrawn = both.clone();
            for (ns, svc, proto, p) in ports.unserved() {
                withdrawn.withdraw_published(&ns, &svc, proto, p);
            }
            let rival_port = withdrawn.service("app", "rival").next().unwrap();
            assert_eq!(rival_port.load_balancer_port, None);
            assert_eq!(withdrawn.service("app", "pub").next().unwrap().load_balancer_port, Some(18080));

            // The endpoints follow the model: now pod b.
            let moved = port("pub", [10, 43, 0, 12], 8080, &[POD_B], Some(18080), None);
            assert!(ports.update(&model(vec![moved])).await.is_empty());
            let got = tokio::task::spawn_blocking({
                let node = node.clone();
                move || ask(&node, sa([127, 0, 0, 1], 18080))
            })
            .await
            .unwrap();
            assert_eq!(got.unwrap(), "b");

            // UDP: one upstream socket per client, replies relayed back.
            let dns_like = ServicePort {
                protocol: Protocol::Udp,
                ..port("udp", [10, 43, 0, 14], 53, &[POD_A], Some(18053), None)
            };
            assert!(ports.update(&model(vec![published.clone(), dns_like])).await.is_empty());
            let reply = tokio::task::spawn_blocking({
                let node = node.clone();
                move || {
                    in_netns(&node, || {
                        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        s.send_to(b"hello", "127.0.0.1:18053").unwrap();
                        let mut buf = [0u8; 64];
                        let n = s.recv(&mut buf).unwrap();
                        String::from_utf8_lossy(&buf[..n]).to_string()
                    })
                }
            })
            .await
            .unwrap();
            assert_eq!(reply, "a:hello");

            // The service goes: the port closes (the listener task is cancelled at its next poll).
            ports.update(&Model::default()).await;
            assert!(ports.bound().is_empty());
            let mut closed = false;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let got = tokio::task::spawn_blocking({
                    let node = node.clone();
                    move || ask(&node, sa([127, 0, 0, 1], 18080))
                })
                .await
                .unwrap();
                if refused(got) {
                    closed = true;
                    break;
                }
            }
            assert!(closed, "port still open after the service went");
        });
    });
    let _ = pods;
}
