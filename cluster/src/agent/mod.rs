//! The node agent: registers its Node, renews its Lease, runs the pods bound to its node on Docker, wires
//! their network, and serves logs and exec on port 10250. Owned by the agent work stream.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

mod claims;
mod env;
mod expand;
mod images;
mod ipam;
mod kubelet;
mod manager;
mod network;
mod node;
mod pause;
mod pod;
mod portforward;
mod probes;
mod routes;
pub mod services;
mod volumes;

pub use expand::expand;
pub use ipam::PodCidr;

/// What the agent needs to start. `flotilla server` fills it for the in-process agent.
///
/// Build it with `AgentConfig { node_name, node_ip, ..., ..AgentConfig::default() }` so that fields added
/// later (all with defaults) do not break callers.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name (default: the host name).
    pub node_name: String,
    /// The node address (`--node-ip`): where the kubelet endpoint and published ports listen.
    pub node_ip: IpAddr,
    /// The agent's own directory (`flotilla server` passes `<data-dir>/agent`): pod IP allocations, pod files
    /// such as resolv.conf, PVC directories (`volumes/<namespace>/<claim>`).
    pub data_dir: PathBuf,
    /// PEM of the cluster CA, the agent's serving certificate and its key (port 10250, mutual TLS).
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Port of the kubelet-like endpoint (10250).
    pub kubelet_port: u16,
    /// Name of the pod bridge (`flotilla0`); tests use a unique one.
    pub bridge_name: String,
    /// Docker endpoint (`unix:///path` or a plain socket path); `None`: `DOCKER_HOST` or the local default.
    pub docker_host: Option<String>,
    /// First restart back-off of a crashing container (Kubernetes: 10 s, doubling up to `backoff_max`).
    pub backoff_base: Duration,
    /// Longest restart back-off (Kubernetes: 5 min).
    pub backoff_max: Duration,
    /// Cluster DNS domain used in pods' resolv.conf search path.
    pub cluster_domain: String,
    /// Whether the agent serves cluster DNS on the bridge address (port 53) and runs the service proxy.
    pub run_network_services: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            node_name: String::new(),
            node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            data_dir: PathBuf::new(),
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
            kubelet_port: 10250,
            bridge_name: "flotilla0".to_string(),
            docker_host: None,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            cluster_domain: "cluster.local".to_string(),
            run_network_services: true,
        }
    }
}

/// What every part of the running agent shares.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub docker: bollard::Docker,
    pub config: AgentConfig,
    pub cidr: ipam::PodCidr,
    pub ipam: std::sync::Mutex<ipam::Ipam>,
    /// `<data-dir>/agent`
    pub agent_dir: PathBuf,
    /// Bumped after every image load from the server: pods waiting on an image retry at once.
    pub images_loaded: tokio::sync::watch::Sender<u64>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the docker engine{hint}: {source}")]
    Docker { hint: String, source: bollard::errors::Error },
    #[error("cannot register node {node}: {source}")]
    Register { node: String, source: kube::Error },
    #[error("node {node} has an invalid spec.podCIDR {cidr:?} (want an IPv4 a.b.c.d/n)")]
    PodCidr { node: String, cidr: String },
    #[error("cannot set up the pod network on bridge {bridge}: {source}")]
    Network { bridge: String, source: network::NetError },
    #[error("cannot open the pod address allocator in {dir}: {source}")]
    Ipam { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pause(#[from] pause::PauseError),
    #[error("cannot serve the kubelet endpoint: {0}")]
    Kubelet(String),
}

fn connect_docker(config: &AgentConfig) -> Result<bollard::Docker, bollard::errors::Error> {
    match config.docker_host.as_deref() {
        None => bollard::Docker::connect_with_local_defaults(),
        Some(host) => {
            let path = host.strip_prefix("unix://").unwrap_or(host);
            bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        }
    }
}

/// Removes the DOCKER-USER rules and our NAT table when the agent stops (the future is dropped or returns).
struct NetworkGuard {
    cidr: ipam::PodCidr,
    docker_user: bool,
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        if self.docker_user {
            network::remove_docker_user_blocking(self.cidr);
        }
        network::remove_masquerade_blocking();
        routes::remove_all_blocking();
    }
}

/// Runs the agent until the process ends.
pub async fn run(client: kube::Client, config: AgentConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let hint = config.docker_host.as_ref().map(|h| format!(" at {h}")).unwrap_or_default();
    let docker = connect_docker(&config).map_err(|e| AgentError::Docker { hint: hint.clone(), source: e })?;
    let docker = docker.negotiate_version().await.map_err(|e| AgentError::Docker { hint: hint.clone(), source: e })?;
    let version = docker.version().await.map_err(|e| AgentError::Docker { hint, source: e })?;
    let docker_version = version.version.unwrap_or_default();
    let info = docker.info().await.map_err(|e| AgentError::Docker { hint: String::new(), source: e })?;
    let engine_id = crate::project::images::engine_identity(&info);

    let node_uid = node::register(&client, &config, &docker_version, &engine_id)
        .await
        .map_err(|e| AgentError::Register { node: config.node_name.clone(), source: e })?;
    let heartbeat = {
        let client = client.clone();
        let config = config.clone();
        let docker_version = docker_version.clone();
        tokio::spawn(async move {
            let mut last_status = tokio::time::Instant::now();
            loop {
                if let Err(e) = node::renew_lease(&client, &config.node_name, &node_uid).await {
                    tracing::warn!(node = %config.node_name, error = %e, "cannot renew the node lease");
                }
                if last_status.elapsed() >= node::STATUS_EVERY {
                    last_status = tokio::time::Instant::now();
                    if let Err(e) = node::update_status(&client, &config, &docker_version).await {
                        tracing::warn!(node = %config.node_name, error = %e, "cannot update the node status");
                    }
                }
                tokio::time::sleep(node::LEASE_RENEW).await;
            }
        })
    };
    let _abort_heartbeat = AbortOnDrop(heartbeat);

    let cidr_text = node::wait_pod_cidr(&client, &config.node_name).await;
    let cidr = ipam::PodCidr::parse(&cidr_text)
        .ok_or_else(|| AgentError::PodCidr { node: config.node_name.clone(), cidr: cidr_text.clone() })?;
    let net_err = |e| AgentError::Network { bridge: config.bridge_name.clone(), source: e };
    network::ensure_bridge(&config.bridge_name, cidr).await.map_err(net_err)?;
    let mut guard = NetworkGuard { cidr, docker_user: false };
    network::ensure_masquerade(&config.bridge_name, cidr).await.map_err(net_err)?;
    guard.docker_user = network::ensure_docker_user(cidr).await.map_err(net_err)?;
    pause::ensure_pause_image(&docker).await?;

    // `data_dir` is the agent's own directory (`flotilla server` passes `<data-dir>/agent`).
    let agent_dir = config.data_dir.clone();
    let ipam =
        ipam::Ipam::open(&agent_dir, cidr).map_err(|e| AgentError::Ipam { dir: agent_dir.clone(), source: e })?;
    let ctx = std::sync::Arc::new(Ctx {
        client: client.clone(),
        docker,
        config: config.clone(),
        cidr,
        ipam: std::sync::Mutex::new(ipam),
        agent_dir,
        images_loaded: tokio::sync::watch::Sender::new(0),
    });

    let kubelet = kubelet::serve(ctx.clone()).await.map_err(|e| AgentError::Kubelet(e.to_string()))?;
    let _abort_kubelet = AbortOnDrop(tokio::spawn(kubelet));
    let mut _abort_dns = None;
    let mut _abort_services = None;
    if config.run_network_services {
        let listen = std::net::SocketAddr::new(IpAddr::V4(cidr.gateway()), 53);
        let dns_client = client.clone();
        _abort_dns = Some(AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = crate::dns::run(dns_client, listen).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
        })));
        let svc_cfg = services::ServicesConfig::new(vec![config.node_ip]);
        let client = client.clone();
        _abort_services = Some(AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = services::run(client, svc_cfg).await {
                tracing::error!(error = %e, "service proxy stopped");
            }
        })));
    }
    tracing::info!(node = %config.node_name, pod_cidr = %cidr, bridge = %config.bridge_name, "agent ready");
    let _abort_claims = AbortOnDrop(tokio::spawn(claims::run(ctx.clone())));
    let _abort_routes = AbortOnDrop(tokio::spawn(routes::run(client.clone(), config.node_name.clone())));
    manager::run(ctx).await;
    drop(guard);
    Ok(())
}

/// Aborts a spawned task when the agent's future ends or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
