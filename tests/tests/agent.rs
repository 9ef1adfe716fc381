//! The node agent through the real binary: `flotilla server` (API, controllers, scheduler and the
//! in-process agent on the host's Docker) runs inside a fresh network namespace (`nsenter --net`), and real
//! `kubectl` in that namespace drives it. Pods get addresses from the node's /24 on the agent's bridge and
//! reach each other; `kubectl logs` and `kubectl exec` go API server -> kubelet endpoint (mutual TLS) ->
//! docker; `kubectl delete` stops a pod gracefully and removes its containers. The bridge and the agent's
//! nftables table exist in the namespace only.
//!
//! Everything carries a unique `flt-` name and is removed by guards (namespace, server process, the
//! containers with the test node's label).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::node::{GracefulChild, Netns, NodeContainers};
use common::{Finished, Tier, apps, flotilla_bin, run, skip_tier};

fn rand_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))
}

struct Node {
    netns: Netns,
    data_dir: PathBuf,
}

impl Node {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Finished {
        let mut cmd = self.netns.command("kubectl");
        cmd.arg("--kubeconfig").arg(self.data_dir.join("kubeconfig.yaml")).args(args);
        run(cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
    }

    fn log(&self) -> String {
        common::head(&std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default(), 60)
    }

    fn jsonpath(&self, pod: &str, path: &str) -> String {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")], None).stdout_text()
    }

    fn wait_ready(&self, pod: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if self.jsonpath(pod, "{.status.conditions[?(@.type==\"Ready\")].status}") == "True" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pod {pod} never got Ready; status: {}\nserver log:\n{}",
                self.jsonpath(pod, "{.status}"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn start(netns: Netns, node: &str, data_dir: &Path) -> (Node, GracefulChild) {
    let log = std::fs::File::create(data_dir.join("server.log")).unwrap();
    let child = netns
        .command(flotilla_bin())
        .args(["server", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:6443", "--node-ip", "127.0.0.1", "--node-name", node])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting flotilla server");
    let server = GracefulChild(child);
    let n = Node { netns, data_dir: data_dir.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if n.data_dir.join("kubeconfig.yaml").exists() {
            let cidr = n.kubectl(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"], None);
            if cidr.success() && !cidr.stdout_text().trim().is_empty() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the node never registered with a podCIDR; server log:\n{}", n.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    (n, server)
}

#[test]
fn flotilla_server_runs_pods_in_its_own_network_namespace() {
    if skip_tier(Tier::Node) {
        return;
    }
    apps::ensure_base_images();
    let id = rand_id();
    let name = format!("flt-{id}");
    let _containers = NodeContainers(name.clone());
    let dir = tempfile::Builder::new().prefix("flt-agent-").tempdir().unwrap();
    let (node, _server) = start(Netns::new(&name), &name, dir.path());

    let pods = serde_json::json!([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {
            "nodeName": name, "terminationGracePeriodSeconds": 3,
            "containers": [{"name": "httpd", "image": "flotilla-fixtures/busybox:1", "imagePullPolicy": "Never",
                "command": ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && echo started && exec httpd -f -p 8080 -h /www"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"}, "spec": {
            "nodeName": name, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "flotilla-fixtures/busybox:1", "imagePullPolicy": "Never",
                "command": ["sleep", "3600"]}]}},
    ]);
    for pod in pods.as_array().unwrap() {
        let created = node.kubectl(&["create", "-f", "-"], Some(&pod.to_string()));
        assert!(created.success(), "kubectl create: {}", created.stderr_text());
    }
    node.wait_ready("web");
    node.wait_ready("client");
    let web_ip = node.jsonpath("web", "{.status.podIP}");
    let cidr = node.kubectl(&["get", "node", &name, "-o", "jsonpath={.spec.podCIDR}"], None).stdout_text();
    let prefix = cidr.trim().trim_end_matches("0/24");
    assert!(web_ip.starts_with(prefix), "pod IP {web_ip} outside the node's {cidr}");

    // Pod to pod through the bridge, with kubectl exec through the API server's proxy to the agent.
    let got = node.kubectl(&["exec", "client", "--", "wget", "-qO-", &format!("http://{web_ip}:8080/")], None);
    assert!(got.success(), "kubectl exec: {}\n{}", got.stderr_text(), node.log());
    assert_eq!(got.stdout_text(), "hello from web\n");
    let failed = node.kubectl(&["exec", "client", "--", "sh", "-c", "exit 3"], None);
    assert_eq!(failed.status.and_then(|s| s.code()), Some(3), "kubectl exec exit code: {}", failed.stderr_text());
    let logs = node.kubectl(&["logs", "web"], None);
    assert_eq!(logs.stdout_text(), "started\n", "kubectl logs: {}", logs.stderr_text());

    // The agent's network lives in the namespace.
    let bridge = node.netns.command("ip").args(["-o", "addr", "show", "flotilla0"]).output().unwrap();
    let bridge = String::from_utf8_lossy(&bridge.stdout).into_owned();
    assert!(bridge.contains(&format!("{prefix}1/24")), "bridge address: {bridge}");
    let nat = node.netns.command("nft").args(["list", "table", "ip", "flotilla-nat"]).output().unwrap();
    assert!(nat.status.success(), "nft table flotilla-nat missing in the node namespace");

    // Graceful delete: kubectl waits until the agent has stopped the pod and deleted it.
    let deleted = node.kubectl(&["delete", "pod", "web", "--timeout=60s"], None);
    assert!(deleted.success(), "kubectl delete: {}", deleted.stderr_text());
    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.flotilla.node={name}"),
            "--filter",
            "label=dev.flotilla.pod-name=web",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "containers of web are left");
}
