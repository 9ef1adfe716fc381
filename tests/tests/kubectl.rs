//! The real `kubectl` against a real `flotilla server --no-agent` (tier `api`): objects created with
//! `kubectl create -f -`, then `kubectl get` output checked column by column. kubectl prints the server's
//! Tables as they come, so these tests hold our server-side printing to kubectl's own look; they also check
//! the errors of `kubectl logs` and `kubectl exec` that the API server answers itself (no node agent runs).
//!
//! Each test starts its own server on a free loopback port with its own data dir, and stops it in a Drop
//! guard, so tests run in parallel and leave nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Tier;
use common::node::NodeServer;
use common::server::{ApiServer, SETTLE_TIMEOUT, unique};

/// kubectl's human-readable output as tables: one per blank-line-separated section, each a list of rows
/// (the header first) split on runs of two or more spaces, as kubectl's tabwriter pads with three.
fn tables(text: &str) -> Vec<Vec<Vec<String>>> {
    text.split("\n\n")
        .map(|section| {
            section
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|line| line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect())
                .collect::<Vec<Vec<String>>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The row whose first cell is `name` in the table whose header starts with `header`.
fn row<'a>(tables: &'a [Vec<Vec<String>>], header: &[&str], name: &str) -> &'a Vec<String> {
    let table = tables
        .iter()
        .find(|t| t[0] == header)
        .unwrap_or_else(|| panic!("no table with header {header:?} in {tables:#?}"));
    table.iter().skip(1).find(|r| r[0] == name).unwrap_or_else(|| panic!("no row {name} in {table:#?}"))
}

/// An AGE cell as kubectl prints it ("5s", "3m2s", "4h5m", "3d"...).
fn is_age(cell: &str) -> bool {
    !cell.is_empty()
        && cell.chars().next().is_some_and(|c| c.is_ascii_digit())
        && cell.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}

fn objects(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{a: "1", b: "2"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
type: Opaque
data: {{password: aHVudGVyMg==}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: front, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: front}}
  ports: [{{port: 8080, protocol: TCP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{port: 5432}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: lonely, namespace: {ns}}}
spec:
  nodeSelector: {{flotilla.test/never: "true"}}
  containers:
  - {{name: app, image: busybox}}
  - {{name: sidecar, image: busybox}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      nodeSelector: {{flotilla.test/never: "true"}}
      containers:
      - {{name: api, image: "flotilla-fixtures/python:1"}}
      - {{name: log, image: "flotilla-fixtures/busybox:1"}}
"#
    )
}

#[test]
fn kubectl_get_prints_kubernetes_columns() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("ns");
    server.ok(&["create", "-f", "-"], Some(&objects(&ns)));

    // The Deployment controller makes a ReplicaSet and its pods; nothing schedules them (no matching node).
    let out = server.eventually(&["get", "pods", "-n", &ns, "-l", "app=api"], "two api pods", |out| {
        out.lines().filter(|l| l.starts_with("api-")).count() == 2
    });
    let t = tables(&out);
    assert_eq!(t[0][0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);

    let out = server.ok(&["get", "pods,services,deployments,replicasets", "-n", &ns, "-o", "wide"], None);
    let t = tables(&out);
    let pod_header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"];
    let lonely = row(&t, &pod_header, "pod/lonely");
    assert_eq!(lonely[1..4], ["0/2", "Pending", "0"], "{out}");
    assert!(is_age(&lonely[4]), "{out}");
    assert_eq!(lonely[5..], ["<none>", "<none>", "<none>", "<none>"], "{out}");

    let svc_header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"];
    let web = row(&t, &svc_header, "service/web");
    assert_eq!(web[1], "ClusterIP");
    assert!(web[2].starts_with("10.43."), "cluster IP from 10.43.0.0/16: {out}");
    assert_eq!((web[3].as_str(), web[4].as_str(), web[6].as_str()), ("<none>", "80/TCP", "app=web"), "{out}");
    let front = row(&t, &svc_header, "service/front");
    assert_eq!(front[1], "NodePort");
    let (port, node_port) = front[4].strip_suffix("/TCP").and_then(|p| p.split_once(':')).expect("PORT:NODEPORT/TCP");
    assert_eq!(port, "8080");
    assert!((30000..=32767).contains(&node_port.parse::<u32>().unwrap()), "{out}");
    let db = row(&t, &svc_header, "service/db");
    assert_eq!(db[1..5], ["ClusterIP", "None", "<none>", "5432/TCP"], "{out}");
    let kubernetes = server.ok(&["get", "service", "kubernetes", "-n", "default"], None);
    assert_eq!(
        row(&tables(&kubernetes), &svc_header[..6], "kubernetes")[1..5],
        ["ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    );

    let deploy_header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"];
    let api = row(&t, &deploy_header, "deployment.apps/api");
    assert!(api[1].ends_with("/2"), "{out}");
    assert_eq!(api[5..], ["api,log", "flotilla-fixtures/python:1,flotilla-fixtures/busybox:1", "app=api"], "{out}");

    let rs_header = ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"];
    let rs_table = t.iter().find(|t| t[0] == rs_header).unwrap_or_else(|| panic!("no replicaset table: {out}"));
    let rs = &rs_table[1];
    assert!(rs[0].starts_with("replicaset.apps/api-"), "{out}");
    assert_eq!(rs[1], "2", "{out}");
    assert!(rs[7].starts_with("app=api,pod-template-hash="), "{out}");

    let out = server.ok(&["get", "configmaps,secrets", "-n", &ns], None);
    let t = tables(&out);
    assert_eq!(row(&t, &["NAME", "DATA", "AGE"], "configmap/settings")[1], "2", "{out}");
    assert_eq!(row(&t, &["NAME", "TYPE", "DATA", "AGE"], "secret/creds")[1..3], ["Opaque", "1"], "{out}");

    let out = server.ok(&["get", "namespace", &ns], None);
    let t = tables(&out);
    let ns_row = row(&t, &["NAME", "STATUS", "AGE"], &ns);
    assert_eq!(ns_row[1], "Active");
    assert!(is_age(&ns_row[2]), "{out}");

    // A single object (`get TYPE NAME`) is a one-row table too.
    let out = server.ok(&["get", "pod", "lonely", "-n", &ns], None);
    assert_eq!(tables(&out)[0].len(), 2, "{out}");
}

#[test]
fn kubectl_get_nodes_and_custom_columns() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let node = r#"
apiVersion: v1
kind: Node
metadata:
  name: flt-node-a
  labels: {kubernetes.io/hostname: flt-node-a, node-role.kubernetes.io/control-plane: ""}
spec:
  unschedulable: true
"#;
    server.ok(&["create", "-f", "-"], Some(node));
    let out = server.ok(&["get", "nodes", "-o", "wide"], None);
    let t = tables(&out);
    let header = [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ];
    let node_row = row(&t, &header, "flt-node-a");
    // No agent reports status: there is no Ready condition (or the control plane marked it Unknown),
    // and the node is cordoned.
    assert!(["Unknown,SchedulingDisabled", "NotReady,SchedulingDisabled"].contains(&node_row[1].as_str()), "{out}");
    assert_eq!(node_row[2], "control-plane", "{out}");
    assert!(is_age(&node_row[3]), "{out}");

    // `-o name` and `--no-headers` are kubectl's own work on the same Table.
    assert_eq!(server.ok(&["get", "nodes", "-o", "name"], None).trim(), "node/flt-node-a");
    let out = server.ok(&["get", "nodes", "--no-headers"], None);
    assert!(out.trim_start().starts_with("flt-node-a"), "{out}");
    // Server-side columns are sortable by kubectl, which then asks for whole objects (includeObject=Object).
    let out = server.ok(&["get", "namespaces", "--sort-by", ".metadata.name", "-o", "wide"], None);
    let names: Vec<String> = tables(&out)[0].iter().skip(1).map(|r| r[0].clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{out}");
    assert!(names.iter().any(|n| n == "default"), "{out}");
}

#[test]
fn kubectl_logs_and_exec_errors_come_from_the_api_server() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("ns");
    server.ok(&["create", "-f", "-"], Some(&objects(&ns)));

    // Pod not found: 404 from the API server.
    let out = server.kubectl(&["logs", "-n", &ns, "nobody"], None);
    assert!(!out.success());
    assert!(out.stderr_text().contains(r#"pods "nobody" not found"#), "{}", out.stderr_text());

    // Several containers and none named: kube-apiserver's wording, container names in brackets.
    let path = format!("/api/v1/namespaces/{ns}/pods/lonely/log");
    let out = server.kubectl(&["get", "--raw", &path], None);
    assert!(!out.success());
    assert!(
        out.stderr_text().contains("a container name must be specified for pod lonely, choose one of: [app sidecar]"),
        "{}",
        out.stderr_text()
    );
    let out = server.kubectl(&["logs", "-n", &ns, "lonely", "-c", "nope"], None);
    assert!(!out.success());
    assert!(out.stderr_text().contains("container nope is not valid for pod lonely"), "{}", out.stderr_text());

    // A pod on no node has no logs yet: an empty answer, as from kube-apiserver.
    let out = server.kubectl(&["logs", "-n", &ns, "lonely", "-c", "app"], None);
    assert!(out.success(), "{}", out.stderr_text());
    assert!(out.stdout.is_empty());

    // Exec into it is refused before any node is contacted.
    let out = server.kubectl(&["exec", "-n", &ns, "lonely", "-c", "app", "--", "echo", "hi"], None);
    assert!(!out.success());
    assert!(out.stderr_text().contains("pod lonely does not have a host assigned"), "{}", out.stderr_text());
}

/// `kubectl logs` and `kubectl exec` through the API server to a real node agent running a busybox pod:
/// `flotilla server` with its agent runs in a network namespace of its own (tier node; parallel-safe).
#[test]
fn kubectl_logs_and_exec_on_a_real_node() {
    if common::skip_tier(Tier::Node) {
        return;
    }
    common::apps::ensure_base_images();
    let node = NodeServer::start("ns");
    let id = &node.id;
    let server_log = || node.log();
    let kubectl = |args: &[&str], stdin: Option<&str>| node.kubectl(args, stdin);

    let ns = id.clone();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: talker, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: talker
    image: flotilla-fixtures/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from flotilla; echo second line; exec sleep 3600"]
"#
    );
    node.kubectl_until_ok(&["create", "-f", "-"], Some(&manifest));

    let deadline = Instant::now() + Duration::from_secs(120);
    let wide = loop {
        let out = kubectl(&["get", "pod", "talker", "-n", &ns, "-o", "wide"], None);
        let text = out.stdout_text();
        let t = tables(&text);
        if out.success() && t.first().and_then(|t| t.get(1)).is_some_and(|r| r[1] == "1/1" && r[2] == "Running") {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "pod talker never ran:\n{text}{}\nserver log:\n{}",
            out.stderr_text(),
            server_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let pod = &wide[0][1];
    assert!(pod[5].starts_with("10.42."), "pod IP from the node's /24: {pod:?}");
    assert_eq!(&pod[6], id, "NODE column names the node");

    // The agent may still be flushing the first lines; logs are complete once both are there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kubectl(&["logs", "-n", &ns, "talker"], None);
        if out.success() && out.stdout_text() == "hello from flotilla\nsecond line\n" {
            break;
        }
        assert!(Instant::now() < deadline, "kubectl logs: {:?} {}", out.stdout_text(), out.stderr_text());
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = kubectl(&["logs", "-n", &ns, "talker", "--tail=1"], None);
    assert_eq!(out.stdout_text(), "second line\n", "{}", out.stderr_text());

    // `logs -f` streams: the lines arrive while the container still runs (the command is stopped by the
    // time limit, with what it printed so far).
    let mut follow = node.command("kubectl");
    follow.args(["logs", "-f", "--tail=1", "-n", &ns, "talker"]);
    let out = common::run(follow, None, Duration::from_secs(5));
    assert!(out.status.is_none(), "logs -f returned before the container ended: {}", out.stderr_text());
    assert_eq!(out.stdout_text(), "second line\n", "{}", out.stderr_text());

    let out = kubectl(&["exec", "-n", &ns, "talker", "--", "echo", "hi"], None);
    assert!(out.success(), "kubectl exec echo: {}\nserver log:\n{}", out.stderr_text(), server_log());
    assert_eq!(out.stdout_text(), "hi\n");

    let out = kubectl(&["exec", "-i", "-n", &ns, "talker", "--", "cat"], Some("ping over stdin\n"));
    assert!(out.success(), "kubectl exec -i cat: {}", out.stderr_text());
    assert_eq!(out.stdout_text(), "ping over stdin\n");

    let out = kubectl(&["exec", "-n", &ns, "talker", "--", "sh", "-c", "echo oops >&2; exit 3"], None);
    assert_eq!(out.status.and_then(|s| s.code()), Some(3), "exit code of the command: {}", out.stderr_text());
    assert!(out.stderr_text().contains("oops"), "{}", out.stderr_text());
}

/// A background `kubectl ... -w` writing to a file; killed on drop.
struct Watching {
    child: Child,
    out: PathBuf,
}

impl Watching {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl get -w` asks for Tables: the watch events after the first list must be Tables too, so kubectl
/// prints them as rows under the list's one header (and not as objects it cannot lay out).
#[test]
fn kubectl_get_watch_prints_rows_for_watch_events() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("ns");
    server.ok(&["create", "namespace", &ns], None);
    server.ok(&["create", "configmap", "before", "-n", &ns, "--from-literal=a=1"], None);

    let out = server.dir.path().join("watch.out");
    let extra = [
        ("KUBECONFIG".to_string(), server.kubeconfig().display().to_string()),
        ("HOME".to_string(), server.dir.path().display().to_string()),
    ];
    let mut cmd = common::fixed_command(Path::new("kubectl"), server.dir.path(), &extra);
    cmd.args(["get", "configmaps", "-n", &ns, "-w"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("creating watch.out"))
        .stderr(Stdio::null());
    let watching = Watching { child: cmd.spawn().expect("starting kubectl get -w"), out };
    wait_for(&watching, "the initial list", |text| text.lines().any(|l| l.starts_with("before ")));

    server.ok(&["create", "configmap", "during", "-n", &ns, "--from-literal=x=1", "--from-literal=y=2"], None);
    server.ok(&["label", "configmap", "during", "-n", &ns, "edited=yes"], None);
    server.ok(&["delete", "configmap", "during", "-n", &ns], None);
    // ADDED, MODIFIED and DELETED: three rows for `during`.
    let text = wait_for(&watching, "three rows for the watched configmap", |text| {
        text.lines().filter(|l| l.starts_with("during ")).count() >= 3
    });

    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "DATA", "AGE"], "{text}");
    for row in &lines[1..] {
        assert_eq!(row.len(), 3, "every line after the header is a NAME DATA AGE row:\n{text}");
        assert!(is_age(row[2]), "{text}");
        match row[0] {
            "before" => assert_eq!(row[1], "1", "{text}"),
            "during" => assert_eq!(row[1], "2", "{text}"),
            other => panic!("unexpected row {other}:\n{text}"),
        }
    }
}

/// Polls a background watch's output until `check` accepts it (bounded by SETTLE_TIMEOUT).
fn wait_for(watching: &Watching, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let text = watching.output();
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: kubectl get -w printed within {SETTLE_TIMEOUT:?} only:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
