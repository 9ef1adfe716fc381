//! `flotilla agent --server URL --token TOKEN [--node-name NAME] [--node-ip IP] [--data-dir DIR]`: a node
//! agent joining an existing cluster (k3s's `k3s agent`). It checks the server's CA against the hash the
//! token pins, gets its node certificate, registers its Node and runs pods until SIGTERM.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The API server to join, e.g. https://10.0.0.1:6443.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The cluster's join token (the server's <data-dir>/token: K10<ca-hash>::server:<secret>).
    #[arg(long, value_name = "TOKEN", env = "FLOTILLA_TOKEN", hide_env_values = true)]
    pub token: cluster::join::Token,
    /// The node's name; default: the host name.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The node's address (kubelet port, published ports); default: the address of the interface holding
    /// the default route, else 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// The agent's credentials, pod addresses and volumes; default: <flotilla data dir>/agent-<node name>.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: &AgentArgs) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: `up` and `dev-cluster` send this output to log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let result = runtime.block_on(agent(args));
    // Background tasks (watches, pod workers) may still hold the runtime; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result.map_err(Failure::Runtime)
}

async fn agent(args: &AgentArgs) -> anyhow::Result<()> {
    let node_name = args.node_name.clone().unwrap_or_else(cluster::server::default_node_name);
    let node_ip = args.node_ip.unwrap_or_else(cluster::server::default_node_ip);
    let data_dir =
        args.data_dir.clone().unwrap_or_else(|| cluster::server::default_data_dir().join(format!("agent-{node_name}")));
    let joined = cluster::join::join(&args.server, &args.token, &node_name, &[node_ip], &data_dir)
        .await
        .with_context(|| format!("joining {} as node {node_name}", args.server))?;
    tracing::info!(server = %args.server, node = %node_name, "joined the cluster");
    let client = cluster::server::kubeconfig_client(&joined.kubeconfig).await?;
    let config = cluster::agent::AgentConfig {
        node_name,
        node_ip,
        data_dir,
        ca_pem: joined.ca_pem,
        cert_pem: joined.node.cert_pem,
        key_pem: joined.node.key_pem,
        kubelet_port: cluster::server::KUBELET_PORT,
        ..cluster::agent::AgentConfig::default()
    };
    // Dropping the agent on a signal runs its cleanup (nftables rules, DOCKER-USER accepts).
    tokio::select! {
        result = cluster::agent::run(client, config) => result.map_err(|e| anyhow::anyhow!(e))?,
        _ = cluster::server::wait_for_signal() => tracing::info!("stopping"),
    }
    Ok(())
}
