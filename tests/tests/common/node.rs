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
