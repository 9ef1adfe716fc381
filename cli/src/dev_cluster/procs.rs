//! The dev cluster's daemons: per node a dockerd, and `flotilla server` (first node) or `flotilla agent`
//! (the others), each started in the node's network namespace with `nsenter --net=`, in a process group of
//! its own, logging to `<node dir>/<daemon>.log`.
//!
//! Processes are stopped by pid, but only when `/proc/<pid>/cmdline` still names the node's directory: a
//! pid reused by an unrelated process after a reboot is left alone.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::state::NodeState;

/// Runs a command; a non-zero exit is an error carrying its stderr.
pub async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`run`] with `input` on stdin.
pub async fn run_stdin(program: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Fails with what to install when `program` is not on PATH.
pub fn require(program: &str) -> anyhow::Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(program).is_file()) {
        return Ok(());
    }
    let package = match program {
        "ip" => "iproute2",
        "nsenter" => "util-linux",
        "dockerd" => "docker.io",
        "nft" => "nftables",
        other => other,
    };
    Err(anyhow!("`{program}` is not installed; hint: apt-get install {package} (or run scripts/install-deps)"))
}

/// Starts `program args` in the node's namespace, detached, logging to `<node dir>/<log>.log`.
fn spawn_in(node: &NodeState, log: &str, program: &Path, args: &[String], env: &[(&str, &str)]) -> anyhow::Result<u32> {
    let log_path = node.log_path(log);
    let file = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", node.netns))
        .arg("--")
        .arg(program)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", node.docker_socket().display()))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // Its own process group: a Ctrl-C at the terminal that ran `up` does not reach the daemons.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} in {}", program.display(), node.netns))?;
    // nsenter execs the program (no fork for a network namespace), so this is the daemon's pid.
    Ok(child.id())
}

pub fn spawn_dockerd(node: &NodeState) -> anyhow::Result<u32> {
    let dir = node.dir.display();
    let args = [
        format!("--data-root={dir}/docker"),
        format!("--exec-root={dir}/exec"),
        format!("--pidfile={dir}/docker.pid"),
        format!("--host=unix://{}", node.docker_socket().display()),
        format!("--containerd-namespace={}", node.containerd_namespace),
        format!("--containerd-plugins-namespace={}-plugins", node.containerd_namespace),
        // The agent wires pods itself; Docker's bridge, iptables and masquerade would only get in the way.
        "--bridge=none".into(),
        "--iptables=false".into(),
        "--ip-masq=false".into(),
    ];
    spawn_in(node, "dockerd", Path::new("dockerd"), &args, &[])
}

/// Waits until the node's dockerd answers `/_ping` on its socket.
pub async fn wait_dockerd(node: &NodeState, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ping(&node.docker_socket()).await {
            return Ok(());
        }
        check_alive(node.dockerd_pid, &node.log_path("dockerd"))?;
        if Instant::now() > deadline {
            bail!(
                "dockerd of {} did not answer within {}s; see {}",
                node.name,
                timeout.as_secs(),
                node.log_path("dockerd").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = tokio::net::UnixStream::connect(socket).await else { return false };
    if stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut reply)).await;
    read.is_ok() && (reply.starts_with(b"HTTP/1.0 200") || reply.starts_with(b"HTTP/1.1 200"))
}

fn flotilla_exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("finding the flotilla executable")
}

pub fn spawn_server(node: &NodeState, extra: &[String]) -> anyhow::Result<u32> {
    let mut args: Vec<String> = vec![
        "server".into(),
        format!("--data-dir={}", node.flotilla_dir().display()),
        format!("--node-name={}", node.name),
        format!("--node-ip={}", node.ip),
    ];
    args.extend(extra.iter().cloned());
    spawn_in(node, "flotilla", &flotilla_exe()?, &args, &[])
}

pub fn spawn_agent(node: &NodeState, server_url: &str, token: &str) -> anyhow::Result<u32> {
    let args: Vec<String> = vec![
        "agent".into(),
        format!("--server={server_url}"),
        format!("--node-name={}", node.name),
        format!("--node-ip={}", node.ip),
        format!("--data-dir={}", node.flotilla_dir().display()),
    ];
    // The token goes through the environment (`FLOTILLA_TOKEN`), not the command line `ps` shows.
    spawn_in(node, "flotilla", &flotilla_exe()?, &args, &[("FLOTILLA_TOKEN", token)])
}

/// Waits for the server's admin kubeconfig and join token; returns both.
pub async fn wait_server_files(node: &NodeState, timeout: Duration) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + timeout;
    let dir = node.flotilla_dir();
    loop {
        let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig.yaml"));
        let token = std::fs::read_to_string(dir.join("token"));
        if let (Ok(k), Ok(t)) = (kubeconfig, token)
            && !k.is_empty()
            && !t.trim().is_empty()
        {
            return Ok((k, t.trim().to_string()));
        }
        check_alive(node.flotilla_pid, &node.log_path("flotilla"))?;
        if Instant::now() > deadline {
            bail!(
                "the server on {} wrote no kubeconfig within {}s; see {}",
                node.name,
                timeout.as_secs(),
                node.log_path("flotilla").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An error with the end of the daemon's log when process `pid` has exited.
pub fn check_alive(pid: Option<u32>, log: &Path) -> anyhow::Result<()> {
    let Some(pid) = pid else { return Ok(()) };
    if alive(pid) {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    bail!("process {pid} exited; the end of {}:\n  {}", log.display(), tail.join("\n  "))
}

/// Whether `pid` is alive and its command line names `dir` (so it is ours).
fn is_ours(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    text.contains(&*dir.to_string_lossy())
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Stops process `pid` if it is still the node's: SIGTERM (or SIGKILL when `crash`), then SIGKILL after
/// `grace`.
pub async fn stop(pid: u32, node_dir: &Path, crash: bool, grace: Duration) {
    if !is_ours(pid, node_dir) {
        return;
    }
    signal(pid, if crash { libc::SIGKILL } else { libc::SIGTERM });
    let deadline = Instant::now() + grace;
    while is_ours(pid, node_dir) && alive(pid) {
        if Instant::now() > deadline {
            signal(pid, libc::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` exists and has not exited (a zombie, not yet reaped by its parent, has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"))
}

/// Removes every container of the node's dockerd (so no container process outlives the node). Best effort.
pub async fn remove_containers(node: &NodeState) {
    let socket = node.docker_socket();
    let Ok(docker) = bollard::Docker::connect_with_unix(&socket.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)
    else {
        return;
    };
    let Ok(docker) = docker.negotiate_version().await else { return };
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).build();
    let Ok(containers) = docker.list_containers(Some(options)).await else { return };
    let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        docker.remove_container(id, Some(options))
    });
    let _ = futures::future::join_all(removals).await;
}

/// SIGKILLs every process whose command line names `dir`: dockerd's own containerd and leftover shims.
pub fn kill_mentioning(dir: &Path) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid != me && is_ours(pid, dir) {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// Lazily unmounts whatever is mounted under `dir` (dockerd's overlays if it died uncleanly).
pub fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<&str> =
        mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = std::process::Command::new("umount").args(["-l", point]).stderr(Stdio::null()).status();
    }
}
