//! `flotilla dev-cluster`: a cluster of N nodes on one machine, for tests, demos and teaching. Each node is a
//! network namespace on a bridge of its own, with its own dockerd, so nodes share nothing but the kernel:
//! an image one node has, another has not; killing a node takes its containers with it.
//!
//! ```text
//!   host ── bridge fltdc<hash> (a.b.c.1/24, a /24 no route of the host overlaps)
//!            ├── veth ── netns flotilla-<name>-1: eth0 a.b.c.11, dockerd, `flotilla server` (+ its agent)
//!            ├── veth ── netns flotilla-<name>-2: eth0 a.b.c.12, dockerd, `flotilla agent`
//!            └── ...
//! ```
//!
//! Daemons are entered with `nsenter --net=` (not `ip netns exec`, which remounts /sys and hides the cgroup
//! mounts dockerd needs) and run in their own process group, so the command that started them can exit.
//! Everything lives under `<data-dir>/dev-cluster/<name>/`, whose `state.json` is what `down` and `kill`
//! act on; `kubeconfig.yaml` there reaches the server from the host.

mod net;
mod procs;
mod state;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

pub use state::{NodeState, State};

/// How long `up` waits for each daemon and for the nodes to be Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What `up` is asked for.
pub struct UpRequest {
    pub name: String,
    pub nodes: usize,
    /// Extra arguments for `flotilla server` (`--pod-eviction-timeout 5s`, ...).
    pub server_args: Vec<String>,
}

/// The directory of dev cluster `name`.
pub fn cluster_dir(name: &str) -> PathBuf {
    cluster::server::default_data_dir().join("dev-cluster").join(name)
}

/// Creates the bridge, the nodes, their dockerds, the server and the agents, and waits for every node to be
/// Ready. On any failure, removes everything it made.
pub async fn up(request: &UpRequest) -> anyhow::Result<State> {
    check_name(&request.name)?;
    if !(1..=50).contains(&request.nodes) {
        bail!("--nodes {}: a dev cluster has 1 to 50 nodes", request.nodes);
    }
    let dir = cluster_dir(&request.name);
    if dir.join("state.json").exists() {
        bail!(
            "dev cluster {:?} already exists ({}); hint: `flotilla dev-cluster down --name {}` first",
            request.name,
            dir.display(),
            request.name
        );
    }
    for program in ["ip", "nsenter", "dockerd", "nft"] {
        procs::require(program)?;
    }
    let subnet = net::free_subnet().await?;
    let mut state = State::new(&request.name, &dir, subnet, request.nodes);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    state.save()?;
    match start(&mut state, request).await {
        Ok(()) => Ok(state),
        Err(e) => {
            let logs = state.nodes.iter().map(|n| n.dir.display().to_string()).collect::<Vec<_>>().join(", ");
            down(&state).await;
            Err(e.context(format!(
                "the dev cluster did not come up (logs were in {logs}); everything it made is removed"
            )))
        }
    }
}

async fn start(state: &mut State, request: &UpRequest) -> anyhow::Result<()> {
    net::create_bridge(state).await?;
    for i in 0..state.nodes.len() {
        net::create_node(state, i).await?;
        state.save()?;
    }
    // The dockerds start in parallel: each takes a second or two.
    for node in &mut state.nodes {
        std::fs::create_dir_all(&node.dir).with_context(|| format!("creating {}", node.dir.display()))?;
        node.dockerd_pid = Some(procs::spawn_dockerd(node)?);
    }
    state.save()?;
    for node in &state.nodes {
        procs::wait_dockerd(node, READY_TIMEOUT).await?;
    }

    let server = &mut state.nodes[0];
    server.flotilla_pid = Some(procs::spawn_server(server, &request.server_args)?);
    state.save()?;
    let server = &state.nodes[0];
    let (kubeconfig, token) = procs::wait_server_files(server, READY_TIMEOUT).await?;
    let url = state.server_url();
    let kubeconfig = kubeconfig.replace("https://127.0.0.1:6443", &url);
    cluster::pki::write_private(&state.kubeconfig_path(), &kubeconfig)?;
    let client = cluster::server::kubeconfig_client(&state.kubeconfig_path()).await?;
    wait_api(&client, server).await?;

    for i in 1..state.nodes.len() {
        let pid = procs::spawn_agent(&state.nodes[i], &url, &token)?;
        state.nodes[i].flotilla_pid = Some(pid);
        state.save()?;
    }
    wait_nodes_ready(&client, state).await
}

async fn wait_api(client: &kube::Client, server: &NodeState) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match client.apiserver_version().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "the server on {} did not answer: {e}; see {}",
                    server.name,
                    server.log_path("flotilla").display()
                )
            }
            Err(_) => {
                procs::check_alive(server.flotilla_pid, &server.log_path("flotilla"))?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Waits until every node of `state` is registered and Ready.
async fn wait_nodes_ready(client: &kube::Client, state: &State) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let nodes = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let not_ready: Vec<&NodeState> = state
            .nodes
            .iter()
            .filter(|n| !nodes.iter().any(|k| k.metadata.name.as_deref() == Some(n.name.as_str()) && node_ready(k)))
            .collect();
        if not_ready.is_empty() {
            return Ok(());
        }
        for node in &not_ready {
            procs::check_alive(node.flotilla_pid, &node.log_path("flotilla"))?;
        }
        if Instant::now() > deadline {
            let names: Vec<String> =
                not_ready.iter().map(|n| format!("{} (see {})", n.name, n.log_path("flotilla").display())).collect();
            bail!("nodes not Ready after {}s: {}", READY_TIMEOUT.as_secs(), names.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Removes dev cluster `state` entirely: daemons (their containers first), namespaces, bridge, files.
/// Best effort: a part already gone is fine; what could not be removed is printed.
pub async fn down(state: &State) {
    for node in state.nodes.iter().rev() {
        stop_node(node, false).await;
    }
    net::remove_bridge(state).await;
    procs::unmount_under(&state.dir);
    if let Err(e) = std::fs::remove_dir_all(&state.dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("warning: cannot remove {}: {e}", state.dir.display());
    }
}

/// Kills node `name` as a machine dies: its agent first (so nothing reports the end), then its containers
/// and dockerd, then its network namespace. The cluster notices only the silence.
pub async fn kill(state: &mut State, name: &str) -> anyhow::Result<()> {
    let Some(index) = state.nodes.iter().position(|n| n.name == name) else {
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!("no node {name:?} in dev cluster {:?}; hint: its nodes are {}", state.name, names.join(", "));
    };
    if index == 0 {
        bail!("{name} runs the server: killing it stops the whole cluster; hint: `flotilla dev-cluster down`");
    }
    if state.nodes[index].killed {
        bail!("{name} is already killed");
    }
    stop_node(&state.nodes[index], true).await;
    state.nodes[index].killed = true;
    state.save()?;
    Ok(())
}

/// Stops a node's daemons and removes its namespace. `crash`: SIGKILL the flotilla process (a dying machine
/// says goodbye to no one); otherwise SIGTERM, so the server or agent cleans up after itself.
async fn stop_node(node: &NodeState, crash: bool) {
    if let Some(pid) = node.flotilla_pid {
        procs::stop(pid, &node.dir, crash, Duration::from_secs(10)).await;
    }
    if node.dockerd_pid.is_some() {
        procs::remove_containers(node).await;
    }
    if let Some(pid) = node.dockerd_pid {
        procs::stop(pid, &node.dir, false, Duration::from_secs(15)).await;
    }
    // dockerd's own containerd and any shim left behind name the node's directory on their command line.
    procs::kill_mentioning(&node.dir);
    net::remove_node(node).await;
}

/// Loads the state of dev cluster `name`.
pub fn load(name: &str) -> anyhow::Result<State> {
    check_name(name)?;
    State::load(&cluster_dir(name))
}

/// Names become directory, namespace and node names: keep them short DNS labels.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(anyhow!("invalid dev cluster name {name:?}: use 1 to 20 lower-case letters, digits and '-'"))
    }
}
