//! Leader election and several servers on one datastore, against real `flotilla server --no-agent`
//! processes and the real kubectl: the controllers and the scheduler run only where their Lease
//! (`kube-system/flotilla-controllers`, `kube-system/flotilla-scheduler`) is held, the Lease is released on
//! a graceful stop, and two servers on one etcd (Debian's `etcd` on loopback, own temp dir, killed on drop)
//! serve the same cluster: writes through one are read and watched through the other, exactly one holds
//! each Lease, and when the leader is killed with SIGKILL the other takes over and the controllers keep
//! working. Short lease timings keep the waits small; every wait is bounded and no test asserts a time.

mod common;

use std::time::{Duration, Instant};

use common::server::{ApiServer, SETTLE_TIMEOUT, unique};
use common::{Tier, skip_tier};
use serde_json::Value;

const LEASES: [&str; 2] = ["flotilla-controllers", "flotilla-scheduler"];

/// Short leader-election timings (lease 3 s, renew deadline 2 s, retry 0.5 s).
fn timing_flags() -> Vec<&'static str> {
    vec![
        "--leader-elect-lease-duration",
        "3s",
        "--leader-elect-renew-deadline",
        "2s",
        "--leader-elect-retry-period",
        "500ms",
    ]
}

/// The holder and transitions of a control-plane Lease, read through `server`.
fn lease(server: &ApiServer, name: &str) -> (String, i64) {
    let out = server.ok(&["-n", "kube-system", "get", "lease", name, "-o", "json"], None);
    let lease: Value = serde_json::from_str(&out).expect("lease JSON");
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default().to_string();
    (holder, lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0))
}

/// Waits until `check` accepts the holder of every control-plane Lease; returns the holders.
fn wait_holders(server: &ApiServer, what: &str, check: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let holders: Vec<String> = LEASES
            .iter()
            .map(|name| {
                let out = server.kubectl(&["-n", "kube-system", "get", "lease", name, "-o", "json"], None);
                serde_json::from_str::<Value>(&out.stdout_text())
                    .ok()
                    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        if holders.iter().all(|h| check(h)) {
            return holders;
        }
        assert!(Instant::now() < deadline, "{what}: Lease holders are {holders:?}; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits until the Deployment's pods number `n` (created by the controllers).
fn wait_pods(server: &ApiServer, ns: &str, app: &str, n: usize) {
    server.eventually(
        &["-n", ns, "get", "pods", "-l", &format!("app={app}"), "-o", "name"],
        &format!("{n} pods of {app}"),
        |out| out.lines().filter(|l| l.starts_with("pod/")).count() == n,
    );
}

#[test]
fn controllers_lead_through_a_lease_and_release_it_on_stop() {
    if skip_tier(Tier::Api) {
        return;
    }
    let node = unique("ha");
    let mut flags = timing_flags();
    flags.extend(["--node-name", &node]);
    let mut server = ApiServer::start(&flags);
    let prefix = format!("{node}_");
    let first = wait_holders(&server, "first start", |h| h.starts_with(&prefix));
    assert_eq!(first[0], first[1], "one identity per process");
    let (_, transitions) = lease(&server, LEASES[0]);

    let ns = unique("ns");
    server.ok(&["create", "namespace", &ns], None);
    server.ok(&["-n", &ns, "create", "deployment", "web", "--image=busybox", "--replicas=2"], None);
    wait_pods(&server, &ns, "web", 2);

    // A graceful stop releases both Leases; the next server takes them at once (and counts a transition).
    server.stop();
    let log = server.full_log();
    for name in LEASES {
        let released = log.lines().any(|l| l.contains("released the lease") && l.contains(name));
        assert!(released, "{name} not released; log:\n{log}");
    }
    server.spawn(&flags);
    server.wait_ready();
    let second = wait_holders(&server, "after restart", |h| h.starts_with(&prefix) && h != first[0]);
    assert_ne!(first[0], second[0]);
    assert_eq!(lease(&server, LEASES[0]).1, transitions + 1);
    server.ok(&["-n", &ns, "scale", "deployment", "web", "--replicas=3"], None);
    wait_pods(&server, &ns, "web", 3);
}

/// Two servers on one etcd: the binary serves etcd only when built with the `etcd` feature
/// (scripts/test builds and tests with --all-features).
#[cfg(feature = "etcd")]
mod on_etcd {
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::{PostParams, WatchEvent, WatchParams};
    use serde_json::json;

    use super::*;

    /// Debian's etcd on two free loopback ports with its own data dir; killed on drop.
    struct Etcd {
        child: Option<Child>,
        dir: tempfile::TempDir,
        client_port: u16,
    }

    impl Etcd {
        fn start() -> Etcd {
            let dir = tempfile::Builder::new().prefix("flt-etcd-").tempdir().expect("temp dir");
            let free = || TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
            let (client_port, peer_port) = (free(), free());
            let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let child = Command::new("etcd")
                .args(["--name", "flt", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &format!("flt={peer}"), "--max-request-bytes", "5242880"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("starting etcd (Debian package etcd-server)");
            let mut etcd = Etcd { child: Some(child), dir, client_port };
            etcd.wait_healthy();
            etcd
        }

        fn wait_healthy(&mut self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("etcd exited ({status}); log:\n{}", self.log());
                }
                let health = Command::new("curl")
                    .args(["-s", "--max-time", "2", &format!("http://127.0.0.1:{}/health", self.client_port)])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                    .unwrap_or_default();
                if health.contains("\"true\"") {
                    return;
                }
                assert!(Instant::now() < deadline, "etcd not healthy; log:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn url(&self) -> String {
            format!("etcd://127.0.0.1:{}", self.client_port)
        }

        fn log(&self) -> String {
            common::head(&std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default(), 200)
        }
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Gives `to` (an empty data dir) the cluster CA and join token of the server in `from`, so both servers
    /// issue and trust the same certificates and accept the same token.
    fn share_ca(from: &Path, to: &Path) {
        std::fs::create_dir_all(to.join("tls")).expect("tls dir");
        for file in ["tls/ca.crt", "tls/ca.key", "token"] {
            std::fs::copy(from.join(file), to.join(file)).unwrap_or_else(|e| panic!("copying {file}: {e}"));
        }
    }

    // The binary serves etcd only when built with the `etcd` feature (scripts/test builds with --all-features).
    #[test]
    fn two_servers_on_one_etcd_serve_one_cluster_and_fail_over() {
        if skip_tier(Tier::Api) {
            return;
        }
        let etcd = Etcd::start();
        let url = etcd.url();
        let (node_a, node_b) = (unique("a"), unique("b"));
        let flags = |node: &str| -> Vec<String> {
            let datastore = ["--datastore", &url, "--node-name", node];
            timing_flags().into_iter().chain(datastore).map(str::to_string).collect()
        };
        let (flags_a, flags_b) = (flags(&node_a), flags(&node_b));
        let a = ApiServer::start(&as_strs(&flags_a));
        let b = ApiServer::start_with(&as_strs(&flags_b), &[], |dir| share_ca(a.dir.path(), dir));
        let mut servers = [Some(a), Some(b)];
        let names = [node_a.as_str(), node_b.as_str()];

        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        let ns = unique("ns");
        {
            let [Some(a), Some(b)] = &servers else { unreachable!() };
            // Written through A, read through B; watched through B while A writes.
            a.ok(&["create", "namespace", &ns], None);
            a.ok(&["-n", &ns, "create", "configmap", "one", "--from-literal=k=v"], None);
            let read = b.ok(&["-n", &ns, "get", "configmap", "one", "-o", "jsonpath={.data.k}"], None);
            assert_eq!(read, "v");
            runtime.block_on(async {
                let via_b: Api<ConfigMap> = Api::namespaced(b.client().await, &ns);
                let via_a: Api<ConfigMap> = Api::namespaced(a.client().await, &ns);
                let list = via_b.list(&Default::default()).await.expect("list through B");
                let rv = list.metadata.resource_version.expect("list resourceVersion");
                let mut events = via_b.watch(&WatchParams::default().timeout(30), &rv).await.expect("watch").boxed();
                let two: ConfigMap =
                    serde_json::from_value(json!({"metadata": {"name": "two"}, "data": {"k": "w"}})).unwrap();
                via_a.create(&PostParams::default(), &two).await.expect("create through A");
                let seen = tokio::time::timeout(SETTLE_TIMEOUT, async {
                    while let Some(event) = events.next().await {
                        if let Ok(WatchEvent::Added(cm)) = event
                            && cm.metadata.name.as_deref() == Some("two")
                        {
                            return true;
                        }
                    }
                    false
                })
                .await;
                assert_eq!(seen, Ok(true), "B's watch did not see A's write");
            });

            // Exactly one server holds each Lease, and both servers say the same.
            let holders = wait_holders(a, "two servers", |h| names.iter().any(|n| h.starts_with(&format!("{n}_"))));
            assert_eq!(holders, wait_holders(b, "two servers", |_| true));

            // A Deployment created through B gets its pods from whichever server leads.
            b.ok(&["-n", &ns, "create", "deployment", "web", "--image=busybox", "--replicas=2"], None);
            wait_pods(a, &ns, "web", 2);
        }

        // Kill -9 the server that leads the controllers: the other takes both Leases over and the controllers
        // keep working there.
        let holder = {
            let [Some(a), _] = &servers else { unreachable!() };
            lease(a, LEASES[0]).0
        };
        let leader = names.iter().position(|n| holder.starts_with(&format!("{n}_"))).expect("a known holder");
        let survivor = 1 - leader;
        servers[leader].as_mut().expect("running").kill();
        let rest = servers[survivor].as_ref().expect("running");
        let prefix = format!("{}_", names[survivor]);
        wait_holders(rest, "after the leader was killed", |h| h.starts_with(&prefix));
        rest.ok(&["-n", &ns, "scale", "deployment", "web", "--replicas=3"], None);
        wait_pods(rest, &ns, "web", 3);
        rest.ok(&["-n", &ns, "create", "deployment", "api", "--image=busybox", "--replicas=1"], None);
        wait_pods(rest, &ns, "api", 1);
        drop(servers);
        drop(etcd);
    }
}
