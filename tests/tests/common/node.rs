//! Guards for tests that run a node agent: a network namespace of the test's own, the Docker containers
//! the agent made for the test's node, and a server process stopped with SIGTERM. Each undoes its part
//! on drop, even when the test failed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A network namespace of our own for a server with its agent, so its bridge, nftables table and port
/// 10250 never meet another test's (or the machine's); deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let ok = Command::new("ip").args(["netns", "add", name]).status().is_ok_and(|s| s.success())
            && Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]).status().is_ok_and(|s| s.success());
        assert!(ok, "cannot create network namespace {name} (root needed)");
        Netns(name.to_string())
    }

    /// `program` run inside the namespace (`nsenter --net`, which keeps the cgroup mounts dockerd and the
    /// agent need, unlike `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.0)).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Removes the Docker containers the agent made for the node named by it, on drop.
pub struct NodeContainers(pub String);

impl Drop for NodeContainers {
    fn drop(&mut self) {
        remove_node_containers(&self.0);
    }
}

/// Removes every container carrying the agent's label for `node`.
pub fn remove_node_containers(node: &str) {
    let filter = format!("label=dev.flotilla.node={node}");
    if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).stdout(Stdio::null()).status();
        }
    }
}

/// A server process that gets SIGTERM on drop (its agent then stops), then a bounded wait and SIGKILL.
pub struct GracefulChild(pub Child);

impl GracefulChild {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for GracefulChild {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(30));
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub fn stop(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `flotilla server` with its agent in a network namespace of its own (API on the namespace's
/// 127.0.0.1:6443, node named after the namespace), for kubectl tests whose pods must really run. Fields
/// drop in order: the server stops first, then its data dir, the node's containers and the namespace go.
pub struct NodeServer {
    _server: GracefulChild,
    pub dir: tempfile::TempDir,
    _containers: NodeContainers,
    pub netns: Netns,
    /// The namespace's and the node's name, unique per test.
    pub id: String,
}

impl NodeServer {
    /// Starts the server; it answers once its kubeconfig exists (see [`NodeServer::kubectl_until_ok`]).
    pub fn start(prefix: &str) -> NodeServer {
        let id = super::server::unique(prefix);
        let netns = Netns::new(&id);
        let containers = NodeContainers(id.clone());
        let dir = tempfile::Builder::new().prefix("flt-node-").tempdir().expect("creating a temporary data dir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("creating server.log");
        let child = netns
            .command(super::flotilla_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:6443", "--node-ip", "127.0.0.1", "--node-name", &id])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log file handle"))
            .stderr(log)
            .spawn()
            .expect("starting flotilla server");
        NodeServer { _server: GracefulChild(child), dir, _containers: containers, netns, id }
    }

    /// The first lines of the server's log, for failure messages.
    pub fn log(&self) -> String {
        super::head(&std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default(), 80)
    }

    /// `program` in the namespace with the fixed test environment plus this server's kubeconfig and a `HOME`
    /// in its data dir (kubectl's cache).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.netns.command(program);
        cmd.env_clear();
        for (k, v) in super::FIXED_ENV {
            cmd.env(k, v);
        }
        cmd.env("KUBECONFIG", self.dir.path().join("kubeconfig.yaml")).env("HOME", self.dir.path());
        cmd
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> super::Finished {
        let mut cmd = self.command("kubectl");
        cmd.args(args);
        super::run(cmd, stdin.map(str::as_bytes), super::CHILD_TIMEOUT)
    }

    /// Repeats `kubectl args` (fed `stdin`) until it succeeds, while the server starts; panics with the log
    /// after [`super::server::START_TIMEOUT`].
    pub fn kubectl_until_ok(&self, args: &[&str], stdin: Option<&str>) {
        let deadline = Instant::now() + super::server::START_TIMEOUT;
        loop {
            let done = self.kubectl(args, stdin);
            if done.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {}: {}\nserver log:\n{}",
                args.join(" "),
                done.stderr_text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
