//! `flotilla server`: wires the API server, controllers, scheduler and the in-process agent together.
//! Owned by the API work stream.
//!
//! Start-up order: data dir and pid file, credentials (CA at first start), store, bootstrap objects,
//! listener, kubeconfigs (the admin's, and the node's at `<data-dir>/nodes/<node>/kubeconfig.yaml`); then
//! the in-process components, each with its own `kube::Client` so they use the real HTTPS API path. The
//! controllers and the scheduler use the admin credentials and run only while this server holds their
//! Lease (`leader.rs`: several servers on one datastore run one copy of each); the agent uses its node's
//! credentials (`system:node:<name>`), so NodeRestriction confines it as it confines a kubelet. SIGTERM
//! or SIGINT stops the elected work, releases the Leases, stops serving and removes the pid file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::agent::{self, AgentConfig};
use crate::api::{self, AppState};
use crate::leader::{self, Election};
use crate::pki;
use crate::store::{Datastore, WatchedStore};

/// Port of the agent's kubelet-like endpoint.
pub const KUBELET_PORT: u16 = 10250;

/// How `flotilla server` runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Where the API listens (default 0.0.0.0:6443).
    pub listen: SocketAddr,
    /// The node address for the in-process agent (default: the default-route interface's address).
    pub node_ip: Option<IpAddr>,
    /// The node name for the in-process agent (default: the host name).
    pub node_name: Option<String>,
    /// Run without the in-process agent (API, controllers and scheduler only).
    pub no_agent: bool,
    /// How often the store is compacted.
    pub compact_interval: Duration,
    /// How many of the newest revisions compaction keeps.
    pub compact_keep: i64,
    /// Leader election of the controllers and the scheduler.
    pub leader_timing: leader::Timing,
    /// When a silent node becomes unreachable and when its pods are evicted.
    pub node_timing: crate::controllers::nodelifecycle::Timing,
    /// Where the state lives: SQLite in the data dir (default) or a shared etcd. Servers sharing an etcd
    /// must also share the data dir's `tls/` directory and `token` file (the CA and the join token), e.g.
    /// by starting the second server on a copy of them.
    pub datastore: Datastore,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            listen: SocketAddr::from(([0, 0, 0, 0], 6443)),
            node_ip: None,
            node_name: None,
            no_agent: false,
            compact_interval: Duration::from_secs(60),
            compact_keep: 1000,
            leader_timing: leader::Timing::default(),
            node_timing: Default::default(),
            datastore: Datastore::default(),
        }
    }
}

/// Why the server could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Tls(#[from] api::tls::TlsError),
    #[error("opening the store {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("creating the first objects: {0}")]
    Bootstrap(String),
    #[error("cannot listen on {addr}: {source}; is another server running? (`flotilla server stop`, or pick --listen)")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(
        "a server is already running with this data dir ({data_dir}, pid {pid}); stop it with `flotilla server stop`"
    )]
    AlreadyRunning { data_dir: PathBuf, pid: i32 },
    #[error("no server is running with data dir {0} (no live pid in server.pid)")]
    NotRunning(PathBuf),
    #[error("the server (pid {0}) did not exit within {1} seconds")]
    StopTimeout(i32, u64),
    #[error("building a client from {path}: {message}")]
    Client { path: PathBuf, message: String },
    #[error(transparent)]
    Timing(#[from] leader::TimingError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io { path: path.to_path_buf(), source }
}

/// `/var/lib/flotilla` as root, else `$XDG_DATA_HOME/flotilla` (or `~/.local/share/flotilla`).
pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/flotilla");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("flotilla");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/flotilla")
}

/// The address of the interface holding the default route, else 127.0.0.1. A UDP socket "connected" to
/// the default gateway makes the kernel pick the source address; no packet is sent.
pub fn default_node_ip() -> IpAddr {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Ok(routes) = std::fs::read_to_string("/proc/net/route") else { return loopback };
    for line in routes.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || fields[1] != "00000000" {
            continue;
        }
        let Ok(gw) = u32::from_str_radix(fields[2], 16) else { continue };
        // /proc/net/route prints addresses in host byte order of a little-endian u32.
        let gateway = Ipv4Addr::from(gw.swap_bytes());
        let target = if gateway.is_unspecified() { Ipv4Addr::new(192, 0, 2, 1) } else { gateway };
        if let Ok(socket) = UdpSocket::bind("0.0.0.0:0")
            && socket.connect((target, 9)).is_ok()
            && let Ok(local) = socket.local_addr()
            && !local.ip().is_unspecified()
        {
            return local.ip();
        }
    }
    loopback
}

/// The host name, lower-cased (a valid Node name).
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "flotilla".to_string())
}

/// A `kube::Client` with the admin credentials of the server whose data dir is `data_dir`.
pub async fn admin_client(data_dir: &Path) -> Result<kube::Client, ServerError> {
    kubeconfig_client(&data_dir.join("kubeconfig.yaml")).await
}

/// A `kube::Client` from the kubeconfig at `path` (its current context).
pub async fn kubeconfig_client(path: &Path) -> Result<kube::Client, ServerError> {
    let path = path.to_path_buf();
    let err = |message: String| ServerError::Client { path: path.clone(), message };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

fn read_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("server.pid")).ok()?.trim().parse().ok()
}

/// `flotilla server stop`: SIGTERM to the server of `data_dir`, then wait (bounded) for it to exit.
pub fn stop(data_dir: &Path, wait: Duration) -> Result<i32, ServerError> {
    let pid = read_pid(data_dir)
        .filter(|pid| pid_alive(*pid))
        .ok_or_else(|| ServerError::NotRunning(data_dir.to_path_buf()))?;
    // SAFETY: plain kill(2) on a pid we read from our own pid file.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if !pid_alive(pid) || read_pid(data_dir) != Some(pid) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ServerError::StopTimeout(pid, wait.as_secs()))
}

/// Tunes glibc's malloc for a long-running server; best called before the async runtime starts its threads
/// (and again harmlessly from [`run`]). Measured with 10,000 pods (`scripts/bench-api`): RSS after the
/// list phase 115 MiB with glibc's defaults, 74 MiB with these settings, the heap itself peaking near 54 MiB.
/// - A fixed mmap threshold: glibc otherwise raises it (up to 32 MiB) after a large buffer is freed, so
///   later multi-megabyte list buffers come from the heap and stay resident after they are freed.
/// - A fixed trim threshold: free memory at the top of a heap goes back to the kernel past 1 MiB.
/// - At most 4 arenas: glibc's default of 8 per core gives each of our many threads (runtime workers, the
///   blocking pool, each lease term's runtime) its own arena, each keeping its free memory.
///
/// A `MALLOC_*` environment variable for a setting wins, so experiments need no rebuild.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 * 1024),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 1024 * 1024),
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 4),
        ];
        for (env, param, value) in settings {
            if std::env::var_os(env).is_none() {
                // SAFETY: mallopt only changes allocator parameters; every value here is valid for its param.
                unsafe { libc::mallopt(param, value) };
            }
        }
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    tune_allocator();
    config.leader_timing.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
    let pid_path = data_dir.join("server.pid");
    if let Some(pid) = read_pid(&data_dir).filter(|pid| pid_alive(*pid) && *pid != std::process::id() as i32) {
        return Err(ServerError::AlreadyRunning { data_dir, pid });
    }

    let node_ip = config.node_ip.unwrap_or_else(default_node_ip);
    let node_name = config.node_name.clone().unwrap_or_else(default_node_name);
    let mut ips: Vec<IpAddr> = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1)), node_ip];
    if !config.listen.ip().is_unspecified() {
        ips.push(config.listen.ip());
    }
    ips.dedup();
    let names: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(node_name.clone()))
    .collect();
    let creds = pki::server_credentials(&data_dir, &names, &ips)?;
    let ca = creds.ca.clone();

    let db_path = data_dir.join("state.db");
    let (datastore, sqlite_path) = (config.datastore.clone(), db_path.clone());
    let store = tokio::task::spawn_blocking(move || datastore.open(&sqlite_path))
        .await
        .unwrap_or_else(|e| Err(crate::store::StoreError::Backend(format!("opening the store: {e}"))));
    let store_name = if config.datastore == Datastore::Sqlite {
        db_path.clone()
    } else {
        PathBuf::from(config.datastore.to_string())
    };
    let store = store.map_err(|e| ServerError::Store { path: store_name, message: e.to_string() })?;
    let store = Arc::new(WatchedStore::new(store));
    let kubelet_tls =
        api::tls::client_config(&ca.cert_pem, &creds.kubelet_client.cert_pem, &creds.kubelet_client.key_pem)?;
    let images_dir = data_dir.join("images");
    let images = Arc::new(
        crate::images::ImageStore::open(&images_dir)
            .map_err(|e| ServerError::Io { path: images_dir.clone(), source: std::io::Error::other(e.to_string()) })?,
    );
    let state = Arc::new(
        AppState::new(store.clone(), ca.cert_pem.clone(), creds.token_secret.clone(), kubelet_tls.clone())
            .with_node_ca(ca.clone())
            .with_images(images.clone()),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen { addr: config.listen, source })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(config.listen.port());
    state.bootstrap(node_ip, port).await.map_err(|e| ServerError::Bootstrap(e.to_string()))?;

    let host = if config.listen.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { config.listen.ip() };
    let url = format!("https://{}", SocketAddr::new(host, port));
    pki::write_private(&data_dir.join("kubeconfig.yaml"), &pki::admin_kubeconfig(&url, &ca.cert_pem, &creds.admin))?;
    let (node_creds, node_kubeconfig) = pki::write_node_kubeconfig(&ca, &data_dir, &url, &node_name, node_ip)?;
    pki::write_file(&pid_path, &format!("{}\n", std::process::id()))?;

    let tls = api::tls::server_config(&ca.cert_pem, &creds.server.cert_pem, &creds.server.key_pem)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut rx = shutdown_rx.clone();
    let serving = tokio::spawn(api::tls::serve(listener, tls, api::router(state.clone()), async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    tracing::info!(%url, data_dir = %data_dir.display(), "API server listening");

    // Compaction keeps the log (and the WAL) bounded.
    let compact_store = store.clone();
    let (interval, keep) = (config.compact_interval, config.compact_keep);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let s = compact_store.clone();
            match tokio::task::spawn_blocking(move || s.compact(keep)).await {
                Ok(Ok(floor)) => tracing::debug!(floor, "store compacted"),
                Ok(Err(err)) => tracing::warn!(error = %err, "store compaction failed"),
                Err(err) => tracing::warn!(error = %err, "store compaction task failed"),
            }
        }
    });

    // In-process components, each a client of the HTTPS API like any other. The controllers and the
    // scheduler run only while this server holds their Lease; each term makes its own client on the
    // term's runtime, so ending the term ends the client's connections too.
    let client = admin_client(&data_dir).await?;
    let (elect_tx, elect_rx) = tokio::sync::watch::channel(false);
    type Component = Arc<dyn Fn(kube::Client) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;
    let elected = |work: Component| -> leader::Work {
        let data_dir = data_dir.clone();
        Arc::new(move || {
            let (data_dir, work) = (data_dir.clone(), work.clone());
            Box::pin(async move {
                match admin_client(&data_dir).await {
                    Ok(client) => work(client).await,
                    Err(err) => tracing::error!(error = %err, "cannot start the elected components"),
                }
            })
        })
    };
    let node_timing = config.node_timing;
    let elections = [
        (leader::CONTROLLERS_LEASE, elected(Arc::new(move |c| Box::pin(crate::controllers::run(c, node_timing))))),
        (leader::SCHEDULER_LEASE, elected(Arc::new(|c| Box::pin(crate::scheduler::run(c))))),
    ];
    // The image feed is not elected: each server feeds what was uploaded to it (see `images`).
    tokio::spawn(crate::images::feed::run(client.clone(), images, kubelet_tls));
    let identity = leader::identity(&node_name);
    let elections = elections.map(|(lease, work)| {
        let election = Election::new(lease, &identity, config.leader_timing);
        tokio::spawn(leader::run(client.clone(), election, work, elect_rx.clone()))
    });
    if !config.no_agent {
        let node = node_creds;
        let agent_client = kubeconfig_client(&node_kubeconfig).await?;
        let agent_config = AgentConfig {
            node_name: node_name.clone(),
            node_ip,
            data_dir: data_dir.join("agent"),
            ca_pem: ca.cert_pem.clone(),
            cert_pem: node.cert_pem,
            key_pem: node.key_pem,
            kubelet_port: KUBELET_PORT,
            ..AgentConfig::default()
        };
        tokio::spawn(async move {
            if let Err(err) = agent::run(agent_client, agent_config).await {
                tracing::error!(error = %err, "the node agent stopped");
            }
        });
    }

    wait_for_signal().await;
    tracing::info!("stopping");
    // Stop the elected work and release the Leases while the API still serves, so another server can
    // take over at once rather than after the lease duration.
    let _ = elect_tx.send(true);
    let _ = tokio::time::timeout(config.leader_timing.renew_deadline, futures::future::join_all(elections)).await;
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    if read_pid(&data_dir) == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(&pid_path);
    }
    Ok(())
}

/// Returns on SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the server can only be killed; keep serving.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
