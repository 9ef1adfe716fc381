//! What a dev cluster is made of, saved in `<dir>/state.json` after every step of `up`, so that `down`
//! removes exactly what exists even when `up` was interrupted.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The port `flotilla server` listens on by default (`--listen 0.0.0.0:6443`).
const API_PORT: u16 = 6443;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub dir: PathBuf,
    /// The host's bridge joining the nodes.
    pub bridge: String,
    /// The nodes' /24 (`a.b.c.0`); the bridge holds `.1`, node i (from 1) holds `.10+i`.
    pub subnet: Ipv4Addr,
    /// Whether `up` added the accept rule to the host's `DOCKER-USER` chain (removed by `down`).
    #[serde(default)]
    pub docker_user_rule: bool,
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// The Node's name: `<cluster>-<i>`.
    pub name: String,
    /// Network namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// Host end of the node's veth, on the bridge.
    pub veth: String,
    pub ip: Ipv4Addr,
    /// `<cluster dir>/<node name>`: dockerd's roots and socket, the flotilla data dir, logs.
    pub dir: PathBuf,
    /// containerd namespace of this node's dockerd.
    pub containerd_namespace: String,
    pub dockerd_pid: Option<u32>,
    /// `flotilla server` on the first node, `flotilla agent` on the others.
    pub flotilla_pid: Option<u32>,
    /// Set by `flotilla dev-cluster kill`.
    #[serde(default)]
    pub killed: bool,
}

impl State {
    pub fn new(name: &str, dir: &Path, subnet: Ipv4Addr, nodes: usize) -> State {
        // Interface names have 15 bytes: a short hash of the cluster name keeps them unique.
        let hash = short_hash(name);
        let [a, b, c, _] = subnet.octets();
        let nodes = (1..=nodes)
            .map(|i| NodeState {
                name: format!("{name}-{i}"),
                netns: format!("flotilla-{name}-{i}"),
                veth: format!("fltdc{hash}n{i}"),
                ip: Ipv4Addr::new(a, b, c, 10 + i as u8),
                dir: dir.join(format!("{name}-{i}")),
                containerd_namespace: format!("flotilla-{name}-{i}"),
                dockerd_pid: None,
                flotilla_pid: None,
                killed: false,
            })
            .collect();
        State {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            bridge: format!("fltdc{hash}"),
            subnet,
            docker_user_rule: false,
            nodes,
        }
    }

    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.octets();
        Ipv4Addr::new(a, b, c, 1)
    }

    pub fn server_url(&self) -> String {
        format!("https://{}:{}", self.nodes[0].ip, API_PORT)
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join("state.json");
        let text = serde_json::to_string_pretty(self)?;
        // Written whole then renamed: an interrupted `up` never leaves half a file for `down` to choke on.
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(dir: &Path) -> anyhow::Result<State> {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!("no dev cluster at {} ({e}); hint: `flotilla dev-cluster up --nodes 3`", dir.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }
}

impl NodeState {
    pub fn docker_socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `dockerd.log` or `flotilla.log` in the node's directory.
    pub fn log_path(&self, daemon: &str) -> PathBuf {
        self.dir.join(format!("{daemon}.log"))
    }

    /// The data dir of the node's `flotilla server` or `flotilla agent`.
    pub fn flotilla_dir(&self) -> PathBuf {
        self.dir.join("flotilla")
    }
}

fn short_hash(name: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits() {
        let s = State::new("a-long-cluster-name1", Path::new("/x"), Ipv4Addr::new(172, 30, 7, 0), 50);
        assert!(s.bridge.len() <= 15, "{}", s.bridge);
        assert!(s.nodes.iter().all(|n| n.veth.len() <= 15), "{}", s.nodes[49].veth);
        assert_eq!(s.nodes[0].ip, Ipv4Addr::new(172, 30, 7, 11));
        assert_eq!(s.nodes[49].name, "a-long-cluster-name1-50");
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 30, 7, 1));
    }
}
