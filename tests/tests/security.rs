//! Security of the API server against the real kubectl and a real `flotilla server --no-agent`: who may
//! call it (anonymous callers get 401 except on the public endpoints; client certificates name user and
//! groups; the bearer token is the administrator), `kubectl auth whoami`, NodeRestriction (a node's
//! credentials write only its own Node, its own Lease and the status of its own pods, with
//! kube-apiserver's refusals), and that Secret values never reach the server's log at debug level.

mod common;

use std::path::{Path, PathBuf};

use common::server::{ApiServer, unique};
use common::{Tier, skip_tier};
use serde_json::{Value, json};

/// A kubeconfig for this server with the given `user:` body (YAML flow mapping), written in its data dir.
fn kubeconfig_as(server: &ApiServer, file: &str, user: &str) -> PathBuf {
    let path = server.dir.path().join(file);
    let ca = server.dir.path().join("tls/ca.crt");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: flotilla
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: someone
  user: {user}
contexts:
- name: flotilla
  context: {{cluster: flotilla, user: someone}}
current-context: flotilla
",
        port = server.port,
        ca = ca.display(),
    );
    std::fs::write(&path, text).expect("writing a kubeconfig");
    path
}

/// kubectl with another kubeconfig: its outcome.
fn kubectl_as(server: &ApiServer, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> common::Finished {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    server.kubectl(&all, stdin)
}

fn ok_as(server: &ApiServer, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_as(server, kubeconfig, args, stdin);
    assert!(
        out.success(),
        "kubectl {} failed ({}):\n{}{}\nserver log:\n{}",
        args.join(" "),
        out.describe_status(),
        out.stdout_text(),
        out.stderr_text(),
        server.log()
    );
    out.stdout_text()
}

fn fails_as(server: &ApiServer, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_as(server, kubeconfig, args, stdin);
    assert!(!out.success(), "kubectl {} should have failed but printed:\n{}", args.join(" "), out.stdout_text());
    out.stderr_text()
}

/// An anonymous request with curl (trusting the cluster CA): status code and body.
fn anonymous_get(server: &ApiServer, method: &str, path: &str) -> (u16, String) {
    let url = format!("https://127.0.0.1:{}{path}", server.port);
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "20", "-X", method, "-w", "\n%{http_code}", "--cacert"])
        .arg(server.dir.path().join("tls/ca.crt"))
        .arg(&url)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or_else(|_| panic!("curl {url}: {text}")), body.to_string())
}

fn whoami(server: &ApiServer, kubeconfig: &Path) -> (String, Vec<String>) {
    let out = ok_as(server, kubeconfig, &["auth", "whoami", "-o", "json"], None);
    let review: Value = serde_json::from_str(&out).expect("whoami prints JSON");
    assert_eq!(review["kind"], "SelfSubjectReview", "{out}");
    let info = &review["status"]["userInfo"];
    let groups = info["groups"].as_array().expect("groups").iter().map(|g| g.as_str().unwrap().to_string()).collect();
    (info["username"].as_str().expect("username").to_string(), groups)
}

#[test]
fn anonymous_token_and_certificate_identities() {
    if skip_tier(Tier::Api) {
        return;
    }
    let node = unique("node");
    let server = ApiServer::start(&["--node-name", &node]);
    // No credentials at all (kubectl would prompt for a password, so curl asks).
    for path in ["/healthz", "/livez", "/readyz", "/version", "/cacerts"] {
        let (code, body) = anonymous_get(&server, "GET", path);
        assert_eq!(code, 200, "{path}: {body}");
    }
    for (method, path) in [
        ("GET", "/api"),
        ("GET", "/apis"),
        ("GET", "/api/v1/namespaces"),
        ("GET", "/openapi/v3"),
        ("GET", "/apis/apps/v1/deployments"),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews"),
    ] {
        let (code, body) = anonymous_get(&server, method, path);
        assert_eq!(code, 401, "{method} {path}: {body}");
        let status: Value = serde_json::from_str(&body).expect("a Status");
        assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("Unauthorized")));
    }

    // The admin certificate: CN and O of the certificate, plus system:authenticated.
    let (user, groups) = whoami(&server, &server.kubeconfig());
    assert_eq!(user, "system:admin");
    assert_eq!(groups, ["system:masters", "system:authenticated"]);
    let table = server.ok(&["auth", "whoami"], None);
    assert!(table.contains("system:admin") && table.contains("ATTRIBUTE"), "{table}");

    // The bearer token (the join token's secret) is the administrator too; a wrong one is nobody.
    let token_file = std::fs::read_to_string(server.dir.path().join("token")).expect("token file");
    let secret = token_file.trim().rsplit_once("::server:").expect("token format").1.to_string();
    let with_token = kubeconfig_as(&server, "token.yaml", &format!("{{token: {secret}}}"));
    assert_eq!(whoami(&server, &with_token).0, "system:admin");
    ok_as(&server, &with_token, &["get", "namespaces"], None);
    let wrong = kubeconfig_as(&server, "wrong.yaml", "{token: not-the-token}");
    assert!(fails_as(&server, &wrong, &["get", "namespaces"], None).contains("Unauthorized"));

    // The node credentials the server wrote for its node.
    let node_kubeconfig = server.dir.path().join("nodes").join(&node).join("kubeconfig.yaml");
    let (user, groups) = whoami(&server, &node_kubeconfig);
    assert_eq!(user, format!("system:node:{node}"));
    assert_eq!(groups, ["system:nodes", "system:authenticated"]);

    // Discovery lists the review, create only, as kube-apiserver does.
    let resources = server.ok(&["api-resources", "--api-group=authentication.k8s.io", "-o", "wide"], None);
    let line = resources.lines().find(|l| l.starts_with("selfsubjectreviews")).unwrap_or_else(|| panic!("{resources}"));
    assert!(line.split_whitespace().collect::<Vec<_>>().ends_with(&["SelfSubjectReview", "create"]), "{line}");
}

#[test]
fn node_credentials_are_confined_to_their_node() {
    if skip_tier(Tier::Api) {
        return;
    }
    let node = unique("node");
    let other = unique("other");
    let server = ApiServer::start(&["--node-name", &node]);
    let me = server.dir.path().join("nodes").join(&node).join("kubeconfig.yaml");
    let node_json = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}).to_string();

    // Its own Node: create, label, status. Another node: refused in NodeRestriction's words.
    ok_as(&server, &me, &["create", "-f", "-"], Some(&node_json(&node)));
    ok_as(&server, &me, &["label", "node", &node, "flt-test=yes"], None);
    ok_as(
        &server,
        &me,
        &["patch", "node", &node, "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Running"}}"#],
        None,
    );
    let err = fails_as(&server, &me, &["create", "-f", "-"], Some(&node_json(&other)));
    assert!(
        err.contains(&format!(
            "nodes \"{other}\" is forbidden: node \"{node}\" is not allowed to modify node \"{other}\""
        )),
        "{err}"
    );
    server.ok(&["create", "-f", "-"], Some(&node_json(&other)));
    let err = fails_as(&server, &me, &["label", "node", &other, "flt-test=yes"], None);
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): nodes \"{other}\" is forbidden: node \"{node}\" is not allowed to modify \
             node \"{other}\""
        )),
        "{err}"
    );
    let err = fails_as(&server, &me, &["delete", "node", &other], None);
    assert!(err.contains("is not allowed to delete node"), "{err}");

    // Its own Lease in kube-node-lease only.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
               "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}})
        .to_string()
    };
    ok_as(&server, &me, &["-n", "kube-node-lease", "create", "-f", "-"], Some(&lease(&node)));
    ok_as(
        &server,
        &me,
        &[
            "-n",
            "kube-node-lease",
            "patch",
            "lease",
            &node,
            "--type=merge",
            "-p",
            r#"{"spec":{"leaseDurationSeconds":30}}"#,
        ],
        None,
    );
    let err = fails_as(&server, &me, &["-n", "kube-node-lease", "create", "-f", "-"], Some(&lease(&other)));
    assert!(err.contains("can only access node lease with the same name as the requesting node"), "{err}");
    let err = fails_as(&server, &me, &["-n", "kube-system", "create", "-f", "-"], Some(&lease(&node)));
    assert!(err.contains(&format!("User \"system:node:{node}\" cannot create resource \"leases\"")), "{err}");

    // Pods: the status of its own pods, and deleting them; nothing of other nodes' pods.
    let ns = unique("ns");
    server.ok(&["create", "namespace", &ns], None);
    for (pod, on) in [("mine", &node), ("theirs", &other)] {
        let overrides = json!({"spec": {"nodeName": on}}).to_string();
        server.ok(&["-n", &ns, "run", pod, "--image=busybox", &format!("--overrides={overrides}")], None);
    }
    let status = r#"{"status":{"message":"from the node"}}"#;
    ok_as(
        &server,
        &me,
        &["-n", &ns, "patch", "pod", "mine", "--subresource=status", "--type=merge", "-p", status],
        None,
    );
    let err = fails_as(
        &server,
        &me,
        &["-n", &ns, "patch", "pod", "theirs", "--subresource=status", "--type=merge", "-p", status],
        None,
    );
    assert!(
        err.contains(&format!(
            "pods \"theirs\" is forbidden: node \"{node}\" can only update pod status for pods with spec.nodeName set \
             to itself"
        )),
        "{err}"
    );
    let err = fails_as(&server, &me, &["-n", &ns, "label", "pod", "mine", "a=b"], None);
    assert!(err.contains("cannot patch resource \"pods\""), "{err}");
    let err = fails_as(&server, &me, &["-n", &ns, "delete", "pod", "theirs", "--wait=false"], None);
    assert!(err.contains("can only delete pods with spec.nodeName set to itself"), "{err}");
    ok_as(&server, &me, &["-n", &ns, "delete", "pod", "mine", "--wait=false"], None);
    let err = fails_as(&server, &me, &["-n", &ns, "run", "new", "--image=busybox"], None);
    assert!(err.contains("can only create mirror pods"), "{err}");
    let err = fails_as(&server, &me, &["-n", &ns, "exec", "theirs", "--", "true"], None);
    assert!(err.contains("cannot create resource \"pods/exec\""), "{err}");

    // Everything else: RBAC's refusal. Reads are allowed; Events may be written.
    let err = fails_as(&server, &me, &["-n", &ns, "create", "deployment", "web", "--image=busybox"], None);
    assert!(
        err.contains(&format!(
            "deployments.apps is forbidden: User \"system:node:{node}\" cannot create resource \"deployments\" in \
             API group \"apps\" in the namespace \"{ns}\""
        )),
        "{err}"
    );
    let err = fails_as(&server, &me, &["create", "namespace", &unique("ns")], None);
    assert!(err.contains("at the cluster scope"), "{err}");
    let err = fails_as(&server, &me, &["-n", &ns, "create", "secret", "generic", "s", "--from-literal=a=b"], None);
    assert!(err.contains("cannot create resource \"secrets\""), "{err}");
    let pods = ok_as(&server, &me, &["-n", &ns, "get", "pods", "-o", "name"], None);
    assert!(pods.contains("pod/theirs"), "{pods}");
    ok_as(&server, &me, &["get", "nodes"], None);
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "flt-ev"},
        "involvedObject": {"kind": "Node", "name": node}, "reason": "Test", "message": "from the node", "type": "Normal"});
    ok_as(&server, &me, &["-n", &ns, "create", "-f", "-"], Some(&event.to_string()));
}

/// Standard base64 (the encoding of Secret `data`), to look for encoded values too.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn secret_values_never_reach_the_log() {
    if skip_tier(Tier::Api) {
        return;
    }
    let node = unique("node");
    let debug = [("FLOTILLA_LOG", "debug"), ("RUST_LOG", "debug")];
    let mut server = ApiServer::start_with(&["--node-name", &node], &debug, |_| {});
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let markers: Vec<String> = (0..4).map(|i| format!("fltsecretmarker{i}x{}x{nanos}", std::process::id())).collect();
    let ns = unique("ns");
    server.ok(&["create", "namespace", &ns], None);

    // Create, read every way, apply (twice), patch, replace.
    server.ok(
        &["-n", &ns, "create", "secret", "generic", "s1", &format!("--from-literal=password={}", markers[0])],
        None,
    );
    server.ok(&["-n", &ns, "get", "secret", "s1", "-o", "yaml"], None);
    server.ok(&["-n", &ns, "get", "secret", "s1", "-o", "json"], None);
    server.ok(&["-n", &ns, "describe", "secret", "s1"], None);
    let _ = server.kubectl(&["-n", &ns, "get", "secrets", "-w", "--request-timeout=2s"], None);
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2", "namespace": ns},
        "stringData": {"token": markers[1]}})
    .to_string();
    server.ok(&["apply", "-f", "-"], Some(&applied));
    server.ok(&["apply", "-f", "-"], Some(&applied));
    let patch = json!({"stringData": {"password": markers[2]}}).to_string();
    server.ok(&["-n", &ns, "patch", "secret", "s1", "--type=merge", "-p", &patch], None);
    let json_patch = json!([{"op": "add", "path": "/data/extra", "value": base64(markers[3].as_bytes())}]).to_string();
    server.ok(&["-n", &ns, "patch", "secret", "s1", "--type=json", "-p", &json_patch], None);

    // Errors that carry the object: invalid values, a conflict, a duplicate, a refused node write, a bad
    // patch.
    let invalid = json!({"data": {"bad key!": base64(markers[0].as_bytes())}}).to_string();
    server.fails(&["-n", &ns, "patch", "secret", "s1", "--type=merge", "-p", &invalid], None);
    let not_base64 = json!({"data": {"password": format!("{}!!", markers[0])}}).to_string();
    server.fails(&["-n", &ns, "patch", "secret", "s1", "--type=merge", "-p", &not_base64], None);
    server.fails(
        &["-n", &ns, "create", "secret", "generic", "s1", &format!("--from-literal=password={}", markers[0])],
        None,
    );
    let mut stale: Value =
        serde_json::from_str(&server.ok(&["-n", &ns, "get", "secret", "s1", "-o", "json"], None)).unwrap();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["stringData"] = json!({"password": markers[1]});
    server.fails(&["replace", "-f", "-"], Some(&stale.to_string()));
    server.fails(
        &["-n", &ns, "patch", "secret", "s1", "--type=json", "-p", r#"[{"op":"test","path":"/type","value":"x"}]"#],
        None,
    );
    let me = server.dir.path().join("nodes").join(&node).join("kubeconfig.yaml");
    ok_as(&server, &me, &["-n", &ns, "get", "secret", "s1", "-o", "yaml"], None);
    fails_as(&server, &me, &["-n", &ns, "patch", "secret", "s1", "--type=merge", "-p", &patch], None);
    server.ok(&["-n", &ns, "delete", "secret", "s1", "s2"], None);

    server.stop();
    let log = server.full_log();
    assert!(log.contains("DEBUG"), "the server did not log at debug level; log:\n{}", common::head(&log, 50));
    for marker in &markers {
        for needle in [marker.clone(), base64(marker.as_bytes()).trim_end_matches('=').to_string()] {
            if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
                panic!("a secret value ({needle}) is in the server log:\n{line}");
            }
        }
    }
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
}
