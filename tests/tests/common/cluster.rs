//! A real one-node cluster for end-to-end tests: `flotilla server` (API, controllers, scheduler and the
//! in-process agent on the host's Docker) started from the built binary with a fresh data dir and a
//! random API port, and stopped by a guard.
//!
//! The agent works in the root network namespace (its bridge, its nftables table, port 10250, the
//! published ports on 127.0.0.1), so tests that start one run one at a time (the `root-ns` test group
//! in `.config/nextest.toml`).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Finished, flotilla_bin, run};

/// How long the server gets to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Cluster {
    pub data_dir: tempfile::TempDir,
    pub port: u16,
    /// The node's name, unique per test: the agent labels its containers with it.
    pub node: String,
    child: Option<Child>,
}

impl Cluster {
    /// Starts `flotilla server` and waits until its API answers and its node is registered.
    pub fn start() -> Cluster {
        let data_dir = tempfile::Builder::new().prefix("flt-e2e-").tempdir().expect("temp dir");
        let port = super::apps::free_port();
        let log = std::fs::File::create(data_dir.path().join("server.log")).expect("server log");
        let node = format!("flt-e2e-{port}-{}", std::process::id());
        let child = Command::new(flotilla_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--node-name")
            .arg(&node)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting flotilla server");
        let cluster = Cluster { data_dir, port, node, child: Some(child) };
        cluster.wait_ready();
        cluster
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.path().join("kubeconfig.yaml")
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if self.kubeconfig().exists() && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let nodes = self.kubectl(&["get", "nodes", "-o", "name"]);
                if nodes.success() && !nodes.stdout_text().trim().is_empty() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "flotilla server did not get ready; its log:\n{}",
                super::head(&self.log(), 80)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `flotilla --kubeconfig <ours> ARGS...` in `dir` with `env`.
    pub fn flotilla(&self, dir: &Path, args: &[&str], env: &[(String, String)], timeout: Duration) -> Finished {
        let mut cmd = super::fixed_command(&flotilla_bin(), dir, env);
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run(cmd, None, timeout)
    }

    /// Runs the real kubectl against the cluster.
    pub fn kubectl(&self, args: &[&str]) -> Finished {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run(cmd, None, Duration::from_secs(60))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::node::stop(&mut child, Duration::from_secs(60));
        }
        // Like the kubelet, a stopped agent leaves its pods running (it adopts them when it starts
        // again); a test removes what its node made.
        super::node::remove_node_containers(&self.node);
        remove_node_network();
    }
}

/// Removes what an agent in the root namespace sets up (its bridge, nftables tables and routes), best
/// effort. Only tests of the root-ns group call it, one at a time, so no other agent uses them.
pub fn remove_node_network() {
    let quiet = |program: &str, args: &[&str]| {
        let _ = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    quiet("nft", &["delete", "table", "ip", "flotilla"]);
    quiet("nft", &["delete", "table", "ip", "flotilla-nat"]);
    quiet("ip", &["route", "del", "local", "10.43.0.0/16", "dev", "lo", "table", "local"]);
    quiet("ip", &["route", "del", "unreachable", "10.42.0.0/16"]);
    quiet("ip", &["link", "del", "flotilla0"]);
}
