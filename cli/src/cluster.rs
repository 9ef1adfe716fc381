//! Which cluster a command talks to, and the project it acts on.
//!
//! The cluster is `--kubeconfig`, else `KUBECONFIG`, else the embedded cluster whose data dir is
//! `cluster::server::default_data_dir()`. When the embedded cluster does not answer, `up` starts
//! `flotilla server` there in the background (its log in `<data-dir>/server.log`) and waits for it; the
//! other commands say how to start it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use translator::convert::{Conversion, Object, Options};
use translator::load::Loaded;

use crate::args::ProjectArgs;
use crate::commands::Failure;

/// How long `up` waits for a server it started to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for the chosen cluster. `start` lets the embedded cluster be started when it does not answer.
pub async fn connect(kubeconfig: Option<PathBuf>, start: bool) -> anyhow::Result<Client> {
    let explicit = kubeconfig.or_else(|| std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = explicit {
        let client = client_from(&path).await?;
        client.apiserver_version().await.with_context(|| {
            format!("the cluster of {} does not answer; hint: check that its server runs", path.display())
        })?;
        return Ok(client);
    }
    let data_dir = cluster::server::default_data_dir();
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    if kubeconfig.exists()
        && let Ok(client) = client_from(&kubeconfig).await
        && tokio::time::timeout(Duration::from_secs(3), client.apiserver_version()).await.is_ok_and(|r| r.is_ok())
    {
        return Ok(client);
    }
    if !start {
        bail!(
            "no cluster server answers at {}; hint: `flotilla up` starts one, or pass --kubeconfig",
            data_dir.display()
        );
    }
    start_server(&data_dir)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if kubeconfig.exists()
            && let Ok(client) = client_from(&kubeconfig).await
            && let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), client.apiserver_version()).await
        {
            return Ok(client);
        }
        if Instant::now() >= deadline {
            bail!(
                "the cluster server started in {} did not answer within {} s; see {}",
                data_dir.display(),
                START_TIMEOUT.as_secs(),
                data_dir.join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn client_from(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("kubeconfig {}", path.display()))?;
    Client::try_from(config).map_err(|e| anyhow!("kubeconfig {}: {e}", path.display()))
}

/// Starts `flotilla server --data-dir DIR` in its own process group, detached from this terminal.
fn start_server(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let log_path = data_dir.join("server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the flotilla binary")?;
    std::process::Command::new(exe)
        .env("PATH", path_with_sbin())
        .arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting flotilla server")?;
    eprintln!("Started the cluster server in {} (log: {})", data_dir.display(), log_path.display());
    Ok(())
}

/// `PATH` with the system directories the agent's tools live in (`ip`, `nft`, `iptables` are in
/// `/usr/sbin`), which a user's or a script's `PATH` may lack.
fn path_with_sbin() -> std::ffi::OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"] {
        if !dirs.iter().any(|d| d == Path::new(dir)) {
            dirs.push(PathBuf::from(dir));
        }
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

/// The project a command acts on: its name, namespace, and (when its files load) the translation.
pub struct Target {
    pub name: String,
    pub namespace: String,
    pub loaded: Option<Loaded>,
    pub conversion: Option<Conversion>,
}

/// Loads and translates the project. Commands other than `up` accept a missing compose file when `-p`
/// names the project, as compose does.
pub fn target(args: &ProjectArgs, for_up: bool) -> Result<Target, Failure> {
    let options = Options { wait_init_containers: false, ..Options::default() };
    match crate::project::load(args) {
        Ok(loaded) => {
            let conversion = translator::project::convert_loaded(&loaded, &options)?;
            for warning in &conversion.diagnostics {
                eprintln!("{warning}");
            }
            let name = loaded.project.name.clone().unwrap_or_default();
            let namespace = conversion
                .objects
                .iter()
                .find_map(|o| match o {
                    Object::Namespace(ns) => ns.metadata.name.clone(),
                    _ => None,
                })
                .unwrap_or_else(|| name.clone());
            Ok(Target { name, namespace, loaded: Some(loaded), conversion: Some(conversion) })
        }
        Err(errors) => match (&args.project_name, for_up) {
            (Some(name), false) => {
                let name = translator::load::discover::normalize_project_name(name);
                Ok(Target { namespace: name.clone(), name, loaded: None, conversion: None })
            }
            _ => Err(errors.into()),
        },
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow!("starting the async runtime: {e}")))
}
