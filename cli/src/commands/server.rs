//! `flotilla server [--data-dir DIR] [--listen HOST:PORT] [--node-ip IP] [--node-name NAME] [--no-agent]`
//! and `flotilla server stop [--data-dir DIR]`. Owned by the API work stream.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::Failure;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// State, certificates and kubeconfig; default: /var/lib/flotilla as root, else
    /// $XDG_DATA_HOME/flotilla.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address and port the API listens on.
    #[arg(long, value_name = "HOST:PORT", default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// The node address for the in-process agent; default: the address of the interface holding the
    /// default route, else 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// The node name for the in-process agent; default: the host name.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Run only the control plane (API, controllers, scheduler), without a node agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Where the cluster state lives: `sqlite` (state.db in the data dir) or
    /// `etcd://HOST:PORT[,HOST:PORT...]` (shared by several servers, which must also share the data dir's
    /// tls/ directory and token file; needs a build with `--features etcd`).
    #[arg(long, value_name = "URL", default_value = "sqlite")]
    pub datastore: cluster::store::Datastore,
    /// Seconds between store compactions.
    #[arg(long, value_name = "SECS", default_value_t = 60, hide = true)]
    pub compact_interval: u64,
    /// Revisions of history compaction keeps.
    #[arg(long, value_name = "N", default_value_t = 1000, hide = true)]
    pub compact_keep: i64,
    /// Leader election of the controllers and scheduler: how long a Lease lasts without renewal.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = cluster::leader::parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader retries renewing before it stops leading.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cluster::leader::parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to take the Lease and the leader renews it.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = cluster::leader::parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// How long a node may go without renewing its Lease before it is marked unreachable (tainted).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = cluster::leader::parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How long pods without a toleration stay on an unreachable or not-ready node before eviction.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = cluster::leader::parse_duration)]
    pub pod_eviction_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Stop the server running with this data dir (SIGTERM, then wait for it to exit).
    Stop {
        /// The data dir of the server to stop (same default as `flotilla server`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(args: &ServerArgs) -> Result<(), Failure> {
    if let Some(ServerCommand::Stop { data_dir }) = &args.command {
        let data_dir = data_dir.clone().unwrap_or_else(cluster::server::default_data_dir);
        let pid = cluster::server::stop(&data_dir, Duration::from_secs(30)).map_err(anyhow::Error::from)?;
        eprintln!("stopped the server (pid {pid})");
        return Ok(());
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(cluster::server::default_data_dir);
    let mut config = cluster::server::ServerConfig::new(data_dir);
    config.listen = args.listen;
    config.node_ip = args.node_ip;
    config.node_name = args.node_name.clone();
    config.no_agent = args.no_agent;
    config.compact_interval = Duration::from_secs(args.compact_interval.max(1));
    config.compact_keep = args.compact_keep.max(0);
    config.datastore = args.datastore.clone();
    config.node_timing = cluster::controllers::nodelifecycle::Timing {
        grace: args.node_monitor_grace_period,
        eviction: args.pod_eviction_timeout,
    };
    config.leader_timing = cluster::leader::Timing {
        lease_duration: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry_period: args.leader_elect_retry_period,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: `up` and `dev-cluster` send this output to log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // Before the runtime's threads exist, so every thread's malloc arena follows the tuned limits.
    cluster::server::tune_allocator();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(cluster::server::run(config)).map_err(anyhow::Error::from)?;
    // Background tasks (watches, the agent) may still hold the runtime; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}
