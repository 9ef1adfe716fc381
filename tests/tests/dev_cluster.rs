//! Several machines on one: `flotilla dev-cluster up --nodes 3` makes three network-namespace nodes, each
//! with its own dockerd, the server on the first and agents on the others. One cluster serves the whole
//! story, in the order a user meets it (a cluster costs three dockerds, so the checks share it):
//!
//! 1. `kubectl get nodes -o wide` lists three Ready nodes with their addresses.
//! 2. `flotilla image load` ships an image to the server, which feeds it to the nodes whose pods need it.
//! 3. Pods on different nodes reach each other by IP (no NAT: the peer sees the sender's own pod IP) and
//!    by service name; DNS answers the same on every node; pod and service addresses that exist nowhere
//!    never take the default route.
//! 4. `flotilla up` of a fixture app whose images were built on the host: its three replicas spread over
//!    the three nodes, and its published port answers on every node's address; `kubectl drain` moves a
//!    node's replicas away through the Eviction API.
//! 5. A pod that fits nowhere says why.
//! 6. Killing a node (agent, containers, dockerd, network) gets its pods running elsewhere; the time it
//!    took is printed (short `--node-monitor-grace-period` and `--pod-eviction-timeout` here; the
//!    default-flag figure is in BENCHMARKS.md).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Finished, Tier, apps, flotilla_bin, run};

const NODES: usize = 3;

/// A dev cluster, removed by `flotilla dev-cluster down` when dropped (even when the test fails).
struct DevCluster {
    name: String,
}

impl DevCluster {
    fn up(server_args: &[&str]) -> DevCluster {
        let name = format!("t{}", std::process::id());
        let mut cmd = Command::new(flotilla_bin());
        cmd.args(["dev-cluster", "up", "--nodes", &NODES.to_string(), "--name", &name, "--"]).args(server_args);
        let cluster = DevCluster { name };
        let done = run(cmd, None, Duration::from_secs(300));
        assert!(done.success(), "dev-cluster up failed ({}):\n{}", done.describe_status(), done.stderr_text());
        cluster
    }

    fn node(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    fn netns(&self, i: usize) -> String {
        format!("flotilla-{}-{i}", self.name)
    }

    fn kubeconfig(&self) -> PathBuf {
        PathBuf::from("/var/lib/flotilla/dev-cluster").join(&self.name).join("kubeconfig.yaml")
    }

    fn kubectl(&self, args: &[&str]) -> Finished {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run(cmd, None, Duration::from_secs(60))
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let done = self.kubectl(args);
        assert!(done.success(), "kubectl {} failed: {}", args.join(" "), done.stderr_text());
        done.stdout_text()
    }

    fn flotilla(
        &self,
        dir: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
        stdin: Option<&[u8]>,
    ) -> Finished {
        let mut cmd = common::fixed_command(&flotilla_bin(), dir, env);
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        run(cmd, stdin, Duration::from_secs(300))
    }

    /// `ip route get ADDR` in node i's namespace: what the kernel would do with a packet for it.
    fn route_get(&self, i: usize, addr: &str) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.netns(i), "route", "get", addr]);
        let done = run(cmd, None, Duration::from_secs(10));
        format!("{}{}", done.stdout_text(), done.stderr_text())
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let mut cmd = Command::new(flotilla_bin());
        cmd.args(["dev-cluster", "down", "--name", &self.name]);
        let done = run(cmd, None, Duration::from_secs(120));
        if !done.success() {
            eprintln!("dev-cluster down failed: {}", done.stderr_text());
        }
    }
}

/// Retries `attempt` every 250 ms for up to `limit`, then panics with the last error.
fn eventually<T>(what: &str, limit: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: still failing after {}s: {e}", limit.as_secs()),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// `(name, ip, node, ready)` of the pods `kubectl get pods ARGS` lists.
fn pods(cluster: &DevCluster, args: &[&str]) -> Vec<(String, String, String, bool)> {
    let mut all = vec!["get", "pods", "-o", "json"];
    all.extend(args);
    let done = cluster.kubectl(&all);
    let list: serde_json::Value = serde_json::from_str(&done.stdout_text()).unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            (
                p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                p["status"]["podIP"].as_str().unwrap_or_default().to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
                ready,
            )
        })
        .collect()
}

/// One pod per node: busybox httpd whose CGI script answers with the node name and the peer's address.
const ECHO: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: flotilla-fixtures/busybox:1
        imagePullPolicy: IfNotPresent
        env:
        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        command:
        - sh
        - -c
        - |
          mkdir -p /www/cgi-bin
          printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$NODE $REMOTE_ADDR"\n' > /www/cgi-bin/who
          chmod +x /www/cgi-bin/who
          exec httpd -f -p 8080 -h /www
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[test]
fn three_nodes_spread_connect_and_survive_a_node_loss() {
    if common::skip_tier(Tier::Node) {
        return;
    }
    apps::ensure_base_images();
    let cluster = DevCluster::up(&["--node-monitor-grace-period", "12s", "--pod-eviction-timeout", "2s"]);
    let repo = common::repo_root();

    // 1. Three Ready nodes, with their addresses.
    let wide = cluster.kubectl_ok(&["get", "nodes", "-o", "wide", "--no-headers"]);
    let node_ips: Vec<String> = (1..=NODES)
        .map(|i| {
            let line = wide.lines().find(|l| l.split_whitespace().next() == Some(&cluster.node(i)));
            let line = line.unwrap_or_else(|| panic!("node {} missing from:\n{wide}", cluster.node(i)));
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "Ready", "{line}");
            fields[5].to_string()
        })
        .collect();

    // 2. The image reaches the nodes through the server: no node's dockerd has it before.
    let image = run(
        {
            let mut c = Command::new("docker");
            c.args(["save", "flotilla-fixtures/busybox:1"]);
            c
        },
        None,
        Duration::from_secs(60),
    );
    assert!(image.success(), "docker save: {}", image.stderr_text());
    let loaded = cluster.flotilla(&repo, &["image", "load", "-i", "-"], &[], Some(&image.stdout));
    assert!(loaded.success(), "flotilla image load: {}", loaded.stderr_text());
    assert!(loaded.stdout_text().contains("Loaded image: flotilla-fixtures/busybox:1"), "{}", loaded.stdout_text());

    // 3. Pod to pod across nodes, by IP and by name.
    let mut apply = Command::new("kubectl");
    apply.arg("--kubeconfig").arg(cluster.kubeconfig()).args(["apply", "-f", "-"]);
    let applied = run(apply, Some(ECHO.as_bytes()), Duration::from_secs(60));
    assert!(applied.success(), "kubectl apply: {}", applied.stderr_text());
    let echo = eventually("an echo pod Ready on every node", Duration::from_secs(120), || {
        let p = pods(&cluster, &["-l", "app=echo"]);
        let ready = p.iter().filter(|p| p.3).count();
        if ready == NODES { Ok(p) } else { Err(format!("{ready} of {NODES} Ready: {p:?}")) }
    });
    for (i, from) in echo.iter().enumerate() {
        let to = &echo[(i + 1) % echo.len()];
        assert_ne!(from.2, to.2, "the DaemonSet put two pods on one node: {echo:?}");
        let url = format!("http://{}:8080/cgi-bin/who", to.1);
        // httpd listens on a dual-stack socket: it sees IPv4 peers as `[::ffff:a.b.c.d]`.
        let unmap = |s: String| s.replace("[::ffff:", "").replace(']', "");
        let answer = unmap(cluster.kubectl_ok(&["exec", &from.0, "--", "wget", "-qO-", &url]));
        // The peer names its own node and sees the sender's pod IP: no NAT between pods.
        assert_eq!(answer.trim(), format!("{} {}", to.2, from.1), "{} -> {}", from.0, to.0);
        let by_name = unmap(cluster.kubectl_ok(&["exec", &from.0, "--", "wget", "-qO-", "http://echo/cgi-bin/who"]));
        // Answered by a pod on another node, the peer is the sender itself; answered by the sender (the
        // service picked it), the source is its node, as kube-proxy masquerades hairpin traffic.
        let (answering_node, peer) = by_name.trim().split_once(' ').unwrap_or_default();
        assert!(peer == from.1 || answering_node == from.2, "by service name from {} on {}: {by_name}", from.0, from.2);
        let lookup = cluster.kubectl_ok(&["exec", &from.0, "--", "nslookup", "echo.default.svc.cluster.local"]);
        let cluster_ip = cluster.kubectl_ok(&["get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"]);
        assert!(lookup.contains(cluster_ip.trim()), "DNS on {} answered:\n{lookup}", from.2);
    }

    // Nothing for the pod or service ranges takes the default route: another node's pods go to that
    // node, unassigned pod addresses are unreachable, service addresses are local (DNAT or refusal).
    for i in 1..=NODES {
        let other = i % NODES + 1;
        let cidr = cluster.kubectl_ok(&["get", "node", &cluster.node(other), "-o", "jsonpath={.spec.podCIDR}"]);
        let in_other = cidr.trim().replace(".0/24", ".77");
        let route = cluster.route_get(i, &in_other);
        assert!(route.contains(&format!("via {}", node_ips[other - 1])), "node {i} -> {in_other}: {route}");
        let route = cluster.route_get(i, "10.42.250.9");
        assert!(route.contains("unreachable") || route.contains("No route"), "node {i} -> 10.42.250.9: {route}");
        let route = cluster.route_get(i, "10.43.250.9");
        assert!(route.starts_with("local"), "node {i} -> 10.43.250.9: {route}");
    }
    let refused = cluster.kubectl(&["exec", &echo[0].0, "--", "wget", "-qO-", "http://10.42.250.9:8080/"]);
    assert!(!refused.success() && refused.stderr_text().contains("No route to host"), "{}", refused.stderr_text());

    // 4. A fixture app built on the host: replicas spread, published port on every node.
    let port = apps::free_port();
    let env = [(apps::SCALED.port_var.to_string(), port.to_string())];
    let up = cluster.flotilla(&apps::SCALED.dir(), &["up", "-d", "--wait"], &env, None);
    assert!(up.success(), "flotilla up ({}):\n{}", up.describe_status(), up.stderr_text());
    let whoami = pods(&cluster, &["-n", "app-scaled", "-l", "app.kubernetes.io/name=whoami"]);
    let mut nodes: Vec<&str> = whoami.iter().map(|p| p.2.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), NODES, "3 replicas should land on 3 nodes: {whoami:?}");
    for ip in &node_ips {
        apps::check_scaled(SocketAddr::new(ip.parse().expect("node ip"), port));
    }

    // kubectl drain (cordon, then the Eviction API) moves a node's pods away; uncordon opens it again.
    let drained = whoami.iter().map(|p| p.2.clone()).find(|n| *n != cluster.node(1)).expect("a replica off node 1");
    cluster.kubectl_ok(&["drain", &drained, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"]);
    let spec = cluster.kubectl_ok(&["get", "node", &drained, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(spec.trim(), "true", "drain cordons the node");
    let whoami = eventually("whoami off the drained node", Duration::from_secs(60), || {
        let now = pods(&cluster, &["-n", "app-scaled", "-l", "app.kubernetes.io/name=whoami"]);
        let ok = now.len() == 3 && now.iter().all(|p| p.3 && p.2 != drained);
        if ok { Ok(now) } else { Err(format!("{now:?}")) }
    });
    cluster.kubectl_ok(&["uncordon", &drained]);

    // 5. A pod that fits nowhere says why.
    let huge = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"huge"},"spec":{"containers":[{"name":"c","image":"flotilla-fixtures/busybox:1","resources":{"requests":{"cpu":"500"}}}]}}"#;
    let mut create = Command::new("kubectl");
    create.arg("--kubeconfig").arg(cluster.kubeconfig()).args(["create", "-f", "-"]);
    assert!(run(create, Some(huge.as_bytes()), Duration::from_secs(30)).success());
    eventually("the unschedulable pod's reason", Duration::from_secs(30), || {
        let message = cluster.kubectl_ok(&[
            "get",
            "pod",
            "huge",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        let want = format!("0/{NODES} nodes are available: {NODES} Insufficient cpu");
        if message.contains(&want) { Ok(()) } else { Err(format!("message {message:?}, want {want:?}")) }
    });

    // 6. Kill a node that runs a whoami replica (not the server's) and time the recovery.
    let victim = whoami.iter().map(|p| p.2.clone()).find(|n| *n != cluster.node(1)).expect("a replica off node 1");
    let started = Instant::now();
    let mut kill = Command::new(flotilla_bin());
    kill.args(["dev-cluster", "kill", &victim, "--name", &cluster.name]);
    let killed = run(kill, None, Duration::from_secs(120));
    assert!(killed.success(), "dev-cluster kill: {}", killed.stderr_text());
    eventually("3 whoami replicas Ready on the surviving nodes", Duration::from_secs(180), || {
        let now = pods(&cluster, &["-n", "app-scaled", "-l", "app.kubernetes.io/name=whoami"]);
        let moved = now.iter().filter(|p| p.3 && p.2 != victim).count();
        if moved == 3 { Ok(()) } else { Err(format!("{moved} of 3: {now:?}")) }
    });
    eprintln!(
        "node loss: {victim} killed; 3 whoami replicas Ready elsewhere after {:.1} s \
         (--node-monitor-grace-period 12s, --pod-eviction-timeout 2s)",
        started.elapsed().as_secs_f64()
    );
    apps::check_scaled(SocketAddr::new(node_ips[0].parse().expect("node ip"), port));
}
