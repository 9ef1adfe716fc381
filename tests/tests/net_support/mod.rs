//! Support for the service-proxy and DNS tests: a real `flotilla server --no-agent` on loopback (API,
//! controllers, scheduler) with a kube-rs client, and a node network namespace with two "pods" serving
//! TCP. Everything has a unique `flt-` name and is removed by a guard, even when a test fails.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A unique id for names of this test run.
pub fn unique() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{:x}{:04x}", std::process::id() & 0xffff, nanos & 0xffff)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// `flotilla server --no-agent` with a fresh data dir on a random loopback port, stopped on drop.
pub struct ApiServer {
    pub data_dir: tempfile::TempDir,
    child: Child,
}

impl ApiServer {
    pub fn start(flotilla: PathBuf) -> ApiServer {
        let data_dir = tempfile::Builder::new().prefix("flt-net-").tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(data_dir.path().join("server.log")).unwrap();
        let child = Command::new(flotilla)
            .args(["server", "--no-agent", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start flotilla server");
        let server = ApiServer { data_dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(server.kubeconfig().exists()
            && TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200))
                .is_ok())
        {
            assert!(Instant::now() < deadline, "server did not start: {}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.path().join("kubeconfig.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `f` on a thread that entered the network namespace `ns`; sockets made there stay in it.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
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

pub const NODE: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 1);
pub const POD_A: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 2);
pub const POD_B: Ipv4Addr = Ipv4Addr::new(10, 42, 7, 3);

/// A node namespace (bridge 10.42.7.1/24 with hairpin ports, local route for 10.43.0.0/16, forwarding
/// on) with pods `a` (10.42.7.2) and `b` (10.42.7.3), each serving TCP 8080: the pod's name and a
/// newline, then an echo.
pub struct Lab {
    pub node: String,
    pub pods: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.pods.iter().chain(std::iter::once(&self.node)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Lab {
    pub fn new() -> Lab {
        let id = unique();
        let node = format!("flt-{id}-n");
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
            run(&["ip", "-n", &node, "link", "set", &host_if, "type", "bridge_slave", "hairpin", "on"]);
            run(&["ip", "-n", pod, "link", "set", "lo", "up"]);
            run(&["ip", "-n", pod, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            run(&["ip", "-n", pod, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", pod, "route", "add", "default", "via", "10.42.7.1"]);
            let listener = in_netns(pod, || TcpListener::bind("0.0.0.0:8080").expect("bind 8080 in pod"));
            std::thread::spawn(move || serve(listener, name));
        }
        lab
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

/// Connects from namespace `ns` and returns the name the server announced, after checking the echo.
pub fn ask(ns: &str, addr: SocketAddr) -> std::io::Result<String> {
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
        Ok(String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_string())
    })
}

pub fn refused(r: &std::io::Result<String>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
