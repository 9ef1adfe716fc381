//! The system under test: a real `flotilla server --no-agent` started from a built binary on a free
//! loopback port with a fresh data dir (on disk, so SQLite's fsyncs are real), optionally on a fresh
//! Debian etcd of its own; and what we read about it from `/proc` (memory, CPU time).
//!
//! Both processes are stopped (SIGTERM, then SIGKILL) and their data removed when the guard drops, even
//! when a phase fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a fresh server (or etcd) may take to answer; the first start makes a CA and certificates.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `flotilla` binary.
    pub bin: PathBuf,
    /// Extra `flotilla server` flags.
    pub extra_args: Vec<String>,
    /// Debian's `etcd` binary: when set, each server gets a fresh etcd of its own on loopback and
    /// `--datastore etcd://127.0.0.1:<port>`.
    pub etcd_bin: Option<PathBuf>,
    /// Where the fresh data dirs go (a disk, not tmpfs, or durability costs nothing).
    pub scratch: PathBuf,
}

/// A running server and, with etcd, its datastore.
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    etcd: Option<Child>,
    /// The server's admin client configuration (from its kubeconfig).
    pub config: kube::Config,
}

/// Resident memory of a process, from `/proc/<pid>/status`, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_mib: f64,
    /// `VmHWM`: the peak resident set so far.
    pub hwm_mib: f64,
}

impl Server {
    /// Starts a server as `spec` says and waits until `/readyz` answers with the admin credentials.
    pub async fn start(spec: &ServerSpec) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("flt-bench-")
            .tempdir_in(&spec.scratch)
            .with_context(|| format!("creating a data dir under {}", spec.scratch.display()))?;
        let mut server = Server { dir, child: None, etcd: None, config: kube::Config::new("https://0".parse()?) };
        let mut extra = spec.extra_args.clone();
        if let Some(etcd_bin) = &spec.etcd_bin {
            let port = server.start_etcd(etcd_bin)?;
            extra.push("--datastore".into());
            extra.push(format!("etcd://127.0.0.1:{port}"));
        }
        let port = free_port()?;
        let log = std::fs::File::create(server.dir.path().join("server.log"))?;
        let child = Command::new(&spec.bin)
            .args(["server", "--no-agent", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(server.dir.path().join("data"))
            .args(&extra)
            .env("HOME", server.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} server", spec.bin.display()))?;
        server.child = Some(child);
        server.config = server.wait_ready().await?;
        Ok(server)
    }

    /// Starts Debian's etcd on two free loopback ports with its data inside our dir; returns the client port
    /// once `/health` answers.
    fn start_etcd(&mut self, bin: &Path) -> Result<u16> {
        let (client, peer) = (free_port()?, free_port()?);
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))?;
        let child = Command::new(bin)
            .arg("--name=flt-bench")
            .arg(format!("--data-dir={}", self.dir.path().join("etcd").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--initial-cluster=flt-bench=http://127.0.0.1:{peer}"))
            // above the API's 3 MiB body limit (ARCHITECTURE.md, "Store")
            .arg("--max-request-bytes=4194304")
            .arg("--quota-backend-bytes=8589934592")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.etcd = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(etcd) = self.etcd.as_mut()
                && let Ok(Some(status)) = etcd.try_wait()
            {
                bail!("etcd exited early ({status}); log:\n{}", self.read_log("etcd.log"));
            }
            if etcd_healthy(client) {
                return Ok(client);
            }
            if Instant::now() > deadline {
                bail!("etcd not healthy after {START_TIMEOUT:?}; log:\n{}", self.read_log("etcd.log"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn wait_ready(&mut self) -> Result<kube::Config> {
        let deadline = Instant::now() + START_TIMEOUT;
        let kubeconfig = self.dir.path().join("data").join("kubeconfig.yaml");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("flotilla server exited early ({status}); log:\n{}", self.log());
            }
            if let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig)
                && let Ok(config) = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await
                && let Ok(client) = kube::Client::try_from(config.clone())
                && let Ok(req) = http::Request::get("/readyz").body(Vec::new())
                && client.request_text(req).await.is_ok()
            {
                return Ok(config);
            }
            if Instant::now() > deadline {
                bail!("flotilla server not ready after {START_TIMEOUT:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new client (its own connections) with the admin credentials.
    pub fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.config.clone())?)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's memory now.
    pub fn memory(&self) -> Result<Memory> {
        memory_of(self.pid().context("the server is not running")?)
    }

    /// etcd's memory now, when it runs.
    pub fn etcd_memory(&self) -> Option<Memory> {
        self.etcd.as_ref().and_then(|c| memory_of(c.id()).ok())
    }

    /// Waits (at most `max`) until the server uses under 5% of a core over half a second, so that one
    /// phase's aftermath (controllers and the scheduler catching up) does not land in the next; returns how
    /// long it waited.
    pub async fn settle(&self, max: Duration) -> Result<Duration> {
        let pid = self.pid().context("the server is not running")?;
        let start = Instant::now();
        let window = Duration::from_millis(500);
        loop {
            let before = cpu_seconds(pid)?;
            tokio::time::sleep(window).await;
            let used = cpu_seconds(pid)? - before;
            if used / window.as_secs_f64() < 0.05 || start.elapsed() >= max {
                return Ok(start.elapsed());
            }
        }
    }

    /// The first lines of the server's log, for error messages.
    pub fn log(&self) -> String {
        self.read_log("server.log")
    }

    fn read_log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        text.lines().take(200).collect::<Vec<_>>().join("\n")
    }

    /// Bytes the data dir holds (the database, its WAL; or etcd's files).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(self.dir.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The server first, so it does not log a storm of datastore errors.
        for child in [self.child.take(), self.etcd.take()].into_iter().flatten() {
            stop(child);
        }
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn etcd_healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"health\":\"true\"")
}

fn memory_of(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} for {pid}"))?;
        let kib: f64 = line.split_whitespace().nth(1).context("malformed /proc status")?.parse()?;
        Ok(kib / 1024.0)
    };
    Ok(Memory { rss_mib: field("VmRSS:")?, hwm_mib: field("VmHWM:")? })
}

/// User + system CPU time of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let rest = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
