//! A real API server for the `api` tier: `flotilla server --no-agent` (API, store, controllers and
//! scheduler, but no node agent) started from the built binary on a free loopback port with its own
//! data dir, driven by the real kubectl and by kube-rs, and stopped by its guard (SIGTERM, then SIGKILL).
//!
//! Nothing here touches the host network beyond loopback, so these servers run in parallel.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{CHILD_TIMEOUT, Finished, flotilla_bin};

/// How long a fresh server may take to answer (the first start makes its CA and certificates).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for the controllers to bring an object to the state it checks.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A `flotilla server --no-agent` child with its own data dir; stopped and removed on drop.
pub struct ApiServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Extra environment of the server process (e.g. `FLOTILLA_LOG`), kept for restarts.
    env: Vec<(String, String)>,
}

impl ApiServer {
    /// Starts a server with `extra` server flags and waits until `/readyz` answers.
    pub fn start(extra: &[&str]) -> ApiServer {
        let dir = tempfile::Builder::new().prefix("flt-api-").tempdir().expect("creating a temporary data dir");
        let mut server = ApiServer { dir, port: 0, child: None, env: Vec::new() };
        server.spawn(extra);
        server.wait_ready();
        server
    }

    /// Like [`ApiServer::start`], with `env` added to the server's environment and `prepare` run on the
    /// empty data dir first (to give it another server's CA and token, say).
    pub fn start_with(extra: &[&str], env: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> ApiServer {
        let dir = tempfile::Builder::new().prefix("flt-api-").tempdir().expect("creating a temporary data dir");
        prepare(dir.path());
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut server = ApiServer { dir, port: 0, child: None, env };
        server.spawn(extra);
        server.wait_ready();
        server
    }

    /// Starts the server process (again, after [`ApiServer::kill`] or [`ApiServer::stop`]) on this data
    /// dir, on a new free port; does not wait.
    pub fn spawn(&mut self, extra: &[&str]) {
        self.port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("opening server.log");
        let child = Command::new(flotilla_bin())
            .args(["server", "--no-agent", "--listen", &format!("127.0.0.1:{}", self.port), "--data-dir"])
            .arg(self.dir.path())
            .args(extra)
            .env("HOME", self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log file handle"))
            .stderr(log)
            .spawn()
            .expect("starting flotilla server");
        self.child = Some(child);
    }

    /// Waits until the kubeconfig exists and `/readyz` answers through kubectl; panics with the log if the
    /// server exits or does not answer within [`START_TIMEOUT`].
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("flotilla server exited early ({status}); log:\n{}", self.log());
            }
            if self.kubeconfig().is_file() && self.kubectl(&["get", "--raw", "/readyz"], None).success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "flotilla server not ready after {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `timeout` for the server to exit by itself (after `flotilla server stop`, say); true if it
    /// did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// SIGKILL: a crash, for durability tests.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after 10 s: a graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
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
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// The server's log (its first 400 lines), for failure messages.
    pub fn log(&self) -> String {
        super::head(&self.full_log(), 400)
    }

    pub fn full_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs the machine's kubectl with this server's admin kubeconfig and `HOME` inside the data dir (kubectl
    /// keeps its discovery cache there), plus `env`.
    pub fn kubectl_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Finished {
        let mut extra = vec![
            ("KUBECONFIG".to_string(), self.kubeconfig().display().to_string()),
            ("HOME".to_string(), self.dir.path().display().to_string()),
        ];
        extra.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut cmd = super::fixed_command(Path::new("kubectl"), self.dir.path(), &extra);
        cmd.args(args);
        super::run(cmd, stdin.map(str::as_bytes), CHILD_TIMEOUT)
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Finished {
        self.kubectl_env(args, stdin, &[])
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.success(),
            "kubectl {} failed ({}):\n{}{}\nserver log:\n{}",
            args.join(" "),
            out.describe_status(),
            out.stdout_text(),
            out.stderr_text(),
            self.log()
        );
        out.stdout_text()
    }

    /// kubectl that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(!out.success(), "kubectl {} should have failed but printed:\n{}", args.join(" "), out.stdout_text());
        out.stderr_text()
    }

    /// Repeats `kubectl args` until `check` accepts its stdout, or fails with the last output.
    pub fn eventually(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let out = self.kubectl(args, None);
            let stdout = out.stdout_text();
            if out.success() && check(&stdout) {
                return stdout;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: kubectl {} never matched within {SETTLE_TIMEOUT:?}; last output:\n{stdout}{}",
                args.join(" "),
                out.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A kube-rs client with the admin kubeconfig, once the server answers.
    pub async fn client(&self) -> kube::Client {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(kc) = kube::config::Kubeconfig::read_from(self.kubeconfig())
                && let Ok(cfg) = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await
                && let Ok(client) = kube::Client::try_from(cfg)
                && client.apiserver_version().await.is_ok()
            {
                return client;
            }
            assert!(Instant::now() < deadline, "server did not answer; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client that trusts the cluster CA but presents no certificate, and `token` if given.
    pub async fn client_without_cert(&self, token: Option<String>) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("reading the kubeconfig");
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig");
        cfg.auth_info = Default::default();
        cfg.auth_info.token = token.map(Into::into);
        kube::Client::try_from(cfg).expect("client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A name unique to this test process and call: `flt-<prefix>-<pid>-<n>`, usable as a namespace.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("flt-{prefix}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
