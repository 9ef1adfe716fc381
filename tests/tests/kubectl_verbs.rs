//! kubectl, verb by verb, against a real `flotilla server`: the scenarios a user runs (get in every
//! output format, label, annotate, scale, rollout, delete with each cascade mode, describe, events,
//! contexts) on an API server without a node (tier `api`), and the verbs that need running pods (logs,
//! exec, cp, rollout status with ready pods, describe of pods and nodes) on a server with its agent in a
//! network namespace of its own (tier `node`). Also a round trip: every fixture converted by
//! `flotilla convert`, applied with `kubectl apply`, and read back equal to what was sent (modulo the
//! fields the server sets), and watches with bookmarks and `sendInitialEvents` through kube-rs.
//!
//! Each test has its own server on a free port and data dir, stopped by its guard, so tests run in
//! parallel and leave nothing behind.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Tier;
use common::node::NodeServer;
use common::server::{ApiServer, unique};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The kubectl steps that need no running pod, in one server: output formats, label/annotate, field and
/// label selectors, scale, generation, rollout history/undo/restart/status, contexts, version,
/// api-resources, the body limit.
#[test]
fn kubectl_verbs_without_a_node() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("verbs");
    server.ok(&["create", "namespace", &ns], None);

    // version and api-resources
    let version = json(&server.ok(&["version", "-o", "json"], None));
    assert!(
        version.pointer("/serverVersion/gitVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("v1.33")),
        "{version}"
    );
    let resources = server.ok(&["api-resources"], None);
    let line = resources.lines().find(|l| l.starts_with("deployments ")).expect("deployments listed");
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells, ["deployments", "deploy", "apps/v1", "true", "Deployment"], "{resources}");
    assert!(resources.lines().any(|l| l.starts_with("pods ") && l.contains("po") && l.ends_with("Pod")));

    // contexts: one sensible name, usable with use-context
    let contexts = server.ok(&["config", "get-contexts", "-o", "name"], None);
    assert_eq!(contexts.trim(), "flotilla", "the kubeconfig's one context");
    assert!(server.ok(&["config", "use-context", "flotilla"], None).contains("Switched to context \"flotilla\""));
    assert_eq!(server.ok(&["config", "current-context"], None).trim(), "flotilla");

    // A Deployment with no replicas (no node runs pods here), so its rollout completes.
    let deploy = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{tier: front}}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: "example/web:1"}}
"#
    );
    server.ok(&["create", "-f", "-"], Some(&deploy));
    let d = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-n", ns.as_str()]);
        server.ok(&all, None)
    };

    // get in each output format
    let wide = d(&["get", "deploy", "web", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert!(wide.lines().nth(1).is_some_and(|l| l.contains("example/web:1") && l.contains("app=web")), "{wide}");
    let yaml = d(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(yaml.contains("kind: Deployment") && yaml.contains("image: example/web:1"), "{yaml}");
    let obj = json(&d(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(
        d(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "example/web:1"
    );
    let columns = d(&["get", "deploy", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas"]);
    assert_eq!(
        columns.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).collect::<Vec<_>>(),
        [vec!["NAME", "REPLICAS"], vec!["web", "0"]]
    );
    assert_eq!(d(&["get", "deploy", "-o", "name"]), "deployment.apps/web\n");

    // label, annotate; selectors
    d(&["label", "deploy", "web", "team=blue"]);
    assert!(server.fails(&["label", "deploy", "web", "team=red", "-n", &ns], None).contains("already has a value"));
    d(&["label", "deploy", "web", "team=red", "--overwrite"]);
    d(&["annotate", "deploy", "web", "note=first"]);
    d(&["annotate", "deploy", "web", "note-"]);
    let labelled = json(&d(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(labelled["metadata"]["labels"]["team"], "red");
    assert!(labelled["metadata"]["annotations"].get("note").is_none(), "{labelled}");
    assert_eq!(labelled["metadata"]["generation"], 1, "metadata changes leave the generation alone");
    assert_eq!(d(&["get", "deploy", "-l", "team=red", "-o", "name"]), "deployment.apps/web\n");
    assert_eq!(d(&["get", "deploy", "-l", "team!=red", "-o", "name"]), "");
    assert_eq!(d(&["get", "deploy", "--field-selector", "metadata.name=web", "-o", "name"]), "deployment.apps/web\n");
    assert_eq!(d(&["get", "deploy", "--field-selector", "metadata.name!=web", "-o", "name"]), "");

    // rollout: the first revision settles, a new template is revision 2 with its change-cause, undo
    // brings revision 1's template back as revision 3, restart stamps the template.
    server.eventually(&["get", "rs", "-n", &ns, "-o", "name"], "first ReplicaSet", |o| o.lines().count() == 1);
    d(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    // The change-cause annotation goes on after the change: the controller copies the Deployment's
    // annotations to its current ReplicaSet, as kube-controller-manager does.
    d(&["set", "image", "deploy/web", "web=example/web:2"]);
    d(&["annotate", "deploy", "web", "kubernetes.io/change-cause=move to v2"]);
    let after = json(&d(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(after["metadata"]["generation"], 2, "a spec change bumps the generation");
    server.eventually(
        &[
            "get",
            "deploy",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.observedGeneration}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
        "observedGeneration and revision follow",
        |o| o == "2/2",
    );
    d(&["rollout", "status", "deploy/web", "--timeout=30s"]);
    let history = d(&["rollout", "history", "deploy/web"]);
    let rows: Vec<Vec<&str>> =
        history.lines().skip(2).filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["1", "<none>"], vec!["2", "move", "to", "v2"]], "{history}");
    let one = d(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(one.contains("example/web:1"), "{one}");
    d(&["rollout", "undo", "deploy/web"]);
    server.eventually(
        &["get", "deploy", "web", "-n", &ns, "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
        "undo brings revision 1 back as revision 3",
        |o| o == "example/web:1 3",
    );
    let history = d(&["rollout", "history", "deploy/web"]);
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    d(&["rollout", "restart", "deploy/web"]);
    let restarted = json(&d(&["get", "deploy", "web", "-o", "json"]));
    assert!(
        restarted.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt").is_some(),
        "{restarted}"
    );
    server.eventually(&["get", "rs", "-n", &ns, "-o", "name"], "restart makes a new ReplicaSet", |o| {
        o.lines().count() == 3
    });
    d(&["rollout", "status", "deploy/web", "--timeout=30s"]);

    // scale: the ReplicaSet follows, pods are made (and stay Pending without a node)
    d(&["scale", "deploy/web", "--replicas=2"]);
    assert_eq!(d(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "2");
    server
        .eventually(&["get", "pods", "-n", &ns, "-l", "app=web", "-o", "name"], "two pods", |o| o.lines().count() == 2);
    let describe = d(&["describe", "deploy", "web"]);
    for want in
        ["Name:                   web", "Replicas:               2 desired", "NewReplicaSet:", "ScalingReplicaSet"]
    {
        assert!(describe.contains(want), "describe deployment lacks {want:?}:\n{describe}");
    }
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
    );
    server.ok(&["create", "-f", "-"], Some(&service));
    let describe = d(&["describe", "service", "web"]);
    for want in ["Name:", "IP:", "Port:", "80/TCP", "Events:"] {
        assert!(describe.contains(want), "describe service lacks {want:?}:\n{describe}");
    }
    assert!(describe.lines().any(|l| l.starts_with("Selector:") && l.ends_with(" app=web")), "{describe}");
    let describe = d(&["describe", "pods", "-l", "app=web"]);
    assert!(describe.lines().any(|l| l.starts_with("Status:") && l.ends_with(" Pending")), "{describe}");
    assert!(describe.contains("FailedScheduling"), "the scheduler's events show: {describe}");
    let events = d(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert!(events.is_empty() || events.starts_with("LAST SEEN") || events.contains("No resources found"), "{events}");

    // the body limit: 413 with kubectl's message
    let big = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(big.path(), vec![b'x'; 4 * 1024 * 1024]).expect("writing 4 MiB");
    let path = big.path().display().to_string();
    let err = server.fails(&["create", "configmap", "big", "-n", &ns, &format!("--from-file=big={path}")], None);
    assert!(err.to_lowercase().contains("too large"), "{err}");
}

/// `kubectl delete` with each cascade mode, `--grace-period` and `--wait`, and the older
/// `orphanDependents` option.
#[test]
fn kubectl_delete_cascade_modes() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let ns = unique("cascade");
    server.ok(&["create", "namespace", &ns], None);
    let deploy = |name: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: c, image: "example/c:1"}}
"#
        )
    };
    for name in ["fg", "orph", "bg"] {
        server.ok(&["create", "-f", "-"], Some(&deploy(name)));
        server.eventually(&["get", "pods", "-n", &ns, "-l", &format!("app={name}"), "-o", "name"], "pods", |o| {
            o.lines().count() == 2
        });
    }

    // Foreground: with --wait, kubectl returns once the Deployment is gone, which is after its ReplicaSet
    // and pods are.
    server.ok(&["delete", "deploy", "fg", "-n", &ns, "--cascade=foreground", "--wait=true", "--timeout=60s"], None);
    assert_eq!(server.ok(&["get", "rs,pods", "-n", &ns, "-l", "app=fg", "-o", "name"], None), "");

    // Orphan: the ReplicaSet and pods stay, without their reference to the Deployment.
    server.ok(&["delete", "deploy", "orph", "-n", &ns, "--cascade=orphan", "--wait=true", "--timeout=60s"], None);
    server.fails(&["get", "deploy", "orph", "-n", &ns], None);
    let rs = json(&server.ok(&["get", "rs", "-n", &ns, "-l", "app=orph", "-o", "json"], None));
    let items = rs["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{rs}");
    assert!(items[0].pointer("/metadata/ownerReferences").and_then(Value::as_array).is_none_or(Vec::is_empty), "{rs}");
    assert!(items[0].pointer("/metadata/finalizers").is_none(), "{rs}");
    assert_eq!(server.ok(&["get", "pods", "-n", &ns, "-l", "app=orph", "-o", "name"], None).lines().count(), 2);

    // Background (kubectl's default): the Deployment goes at once, the collector removes the rest.
    server.ok(&["delete", "deploy", "bg", "-n", &ns, "--grace-period=5"], None);
    server.eventually(&["get", "rs,pods", "-n", &ns, "-l", "app=bg", "-o", "name"], "background cascade", |o| {
        o.is_empty()
    });

    // Unscheduled pods go at once whatever the grace period.
    server.ok(&["delete", "pods", "-n", &ns, "-l", "app=orph", "--grace-period=30", "--wait=true"], None);
}

/// What the server adds to an object it was sent (paths), and where it differs (path: sent vs got).
#[derive(Default)]
struct Comparison {
    added: Vec<String>,
    differs: Vec<String>,
}

fn compare(sent: &Value, got: &Value, path: &str, out: &mut Comparison) {
    match (sent, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, v) in s {
                match g.get(k) {
                    Some(gv) => compare(v, gv, &format!("{path}/{k}"), out),
                    None if v.is_null() => {}
                    None => out.differs.push(format!("{path}/{k}: sent {v}, missing")),
                }
            }
            for k in g.keys().filter(|k| !s.contains_key(*k)) {
                out.added.push(format!("{path}/{k}"));
            }
        }
        (Value::Array(s), Value::Array(g)) if s.len() == g.len() => {
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                compare(sv, gv, &format!("{path}/{i}"), out);
            }
        }
        (s, g) if s == g => {}
        (s, g) => out.differs.push(format!("{path}: sent {s}, got {g}")),
    }
}

/// The paths a server sets itself, after which nothing is compared (the path with array indices
/// replaced by `*`).
const SERVER_SET: &[&str] = &["/status"];

fn generic(path: &str) -> String {
    path.split('/').map(|seg| if seg.parse::<usize>().is_ok() { "*" } else { seg }).collect::<Vec<_>>().join("/")
}

/// Differential round trip: every fixture (and a sample of the corpus) converted with `flotilla convert`,
/// applied with `kubectl apply -f`, read back with `kubectl get -f -o json`: each object carries every
/// field that was sent, with the same value. What the server added is printed, per kind.
#[test]
fn converted_fixtures_round_trip_through_kubectl_apply() {
    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let mut projects = common::fixture_projects();
    let corpus = common::project_dirs(&common::shared_dir().join("corpus").join("awesome-compose"), "corpus");
    projects.extend(corpus.into_iter().step_by(5));
    let work = tempfile::Builder::new().prefix("flt-roundtrip-").tempdir().expect("temp dir");
    let mut added: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut failures = vec![];
    let mut checked = 0;
    for (i, project) in projects.iter().enumerate() {
        let mut cmd = common::fixed_command(&common::flotilla_bin(), &project.dir, &project.env);
        cmd.args(["convert", "--format", "json"]).args(&project.args);
        let converted = common::run(cmd, None, common::CHILD_TIMEOUT);
        if !converted.success() {
            // Inputs `convert` refuses are the conformance tests' business.
            eprintln!("{}: convert refused: {}", project.name, common::head(&converted.stderr_text(), 3));
            continue;
        }
        let list = json(&converted.stdout_text());
        // Fixtures share project names; a namespace of its own per case keeps them apart.
        let namespace = format!("rt-{i}");
        let mut list = list;
        for item in list["items"].as_array_mut().expect("a List") {
            if item["kind"] == "Namespace" {
                item["metadata"]["name"] = Value::from(namespace.clone());
            } else if item.pointer("/metadata/namespace").is_some() {
                item["metadata"]["namespace"] = Value::from(namespace.clone());
            }
        }
        // A stream of documents rather than a `v1 List`: for a List, kubectl 1.33 validates on the client
        // from `/openapi/v2`, which we do not serve. Each document is JSON, which is YAML.
        let file = work.path().join(format!("{i}.yaml"));
        let stream: String = list["items"]
            .as_array()
            .expect("a List")
            .iter()
            .map(|item| format!("---\n{}\n", serde_json::to_string_pretty(item).expect("JSON")))
            .collect();
        std::fs::write(&file, stream).expect("writing the objects");
        let file = file.display().to_string();
        // kubectl's default `--validate=strict`: the server refuses any field its types do not know, so
        // this also checks that the translator emits no such field.
        let applied = server.kubectl(&["apply", "-f", &file], None);
        if !applied.success() {
            failures.push(format!("{}: kubectl apply failed: {}", project.name, applied.stderr_text()));
            continue;
        }
        let got = json(&server.ok(&["get", "-f", &file, "-o", "json"], None));
        let sent = list["items"].as_array().expect("items");
        let got_items = got.get("items").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![got.clone()]);
        assert_eq!(sent.len(), got_items.len(), "{}: objects read back", project.name);
        for (s, g) in sent.iter().zip(&got_items) {
            let kind = s["kind"].as_str().unwrap_or_default().to_string();
            let mut cmp = Comparison::default();
            compare(s, g, "", &mut cmp);
            for d in cmp.differs {
                failures.push(format!("{} {kind} {}: {d}", project.name, s["metadata"]["name"]));
            }
            let set = added.entry(kind).or_default();
            for path in cmp.added {
                let path = generic(&path);
                if !SERVER_SET.iter().any(|p| path.starts_with(p)) {
                    set.insert(path);
                }
            }
            checked += 1;
        }
        server.ok(&["delete", "namespace", &namespace, "--wait=false"], None);
    }
    eprintln!("round trip: {checked} objects from {} projects; fields the server added, by kind:", projects.len());
    for (kind, paths) in &added {
        eprintln!("  {kind}: {}", paths.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(failures.is_empty(), "objects read back differ from what was sent:\n{}", failures.join("\n"));
    assert!(checked > 100, "too few objects checked: {checked}");
}

/// Watches as kube-rs drives them: periodic BOOKMARK events when asked for, and the streaming list
/// (`sendInitialEvents=true`, kube-apiserver 1.33's) that kube-rs's `watcher` uses with
/// `streaming_lists()`.
#[tokio::test]
async fn watch_bookmarks_and_streaming_lists() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};
    use kube::runtime::watcher;

    if common::skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    let client = server.client().await;
    let ns = unique("watch");
    server.ok(&["create", "namespace", &ns], None);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for name in ["a", "b"] {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("cm");
        cms.create(&PostParams::default(), &cm).await.expect("create");
    }

    // The streaming list: the current objects, then the initial-events-end bookmark (kube-rs yields
    // InitDone on it), then live events.
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(cms.clone(), config).boxed();
    let mut seen = vec![];
    let deadline = Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout(deadline, stream.try_next()).await.expect("watch events").expect("ok");
        match event.expect("stream open") {
            watcher::Event::Init => {}
            watcher::Event::InitApply(cm) => seen.push(cm.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event before InitDone: {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).expect("cm");
    cms.create(&PostParams::default(), &cm).await.expect("create");
    let event = tokio::time::timeout(deadline, stream.try_next()).await.expect("live event").expect("ok");
    assert!(matches!(event, Some(watcher::Event::Apply(cm)) if cm.metadata.name.as_deref() == Some("c")));

    // A raw watch with sendInitialEvents shows the bookmark itself.
    let wp = WatchParams::streaming_lists().timeout(20);
    let mut raw = cms.watch(&wp, "0").await.expect("watch").boxed();
    let mut added = 0;
    loop {
        let event = tokio::time::timeout(deadline, raw.try_next()).await.expect("raw event").expect("ok");
        match event.expect("stream open") {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert_eq!(b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
                assert!(!b.metadata.resource_version.is_empty());
                break;
            }
            other => panic!("unexpected raw event: {other:?}"),
        }
    }
    assert_eq!(added, 3);

    // sendInitialEvents without its companions is refused, as kube-apiserver does.
    let err = server.fails(
        &["get", "--raw", &format!("/api/v1/namespaces/{ns}/configmaps?watch=true&sendInitialEvents=true")],
        None,
    );
    assert!(err.contains("resourceVersionMatch") || err.contains("Invalid"), "{err}");
}

/// Everything that needs pods that run: `flotilla server` with its agent in a network namespace of its
/// own (tier node; parallel-safe). Logs (`-c`, `--previous`, `--tail`, `--since`, `-l`, `-f`), exec
/// (`-i`, `-it` under a pty), cp both ways, rollout status/restart with ready pods, describe of a pod
/// and the node.
#[test]
fn kubectl_verbs_on_a_real_node() {
    if common::skip_tier(Tier::Node) {
        return;
    }
    common::apps::ensure_base_images();
    let node = NodeServer::start("vb");
    let (id, dir) = (&node.id, &node.dir);
    let server_log = || node.log();
    let kubectl = |args: &[&str], stdin: Option<&str>| node.kubectl(args, stdin);
    let ok = |args: &[&str]| {
        let out = kubectl(args, None);
        assert!(out.success(), "kubectl {}: {}\nserver log:\n{}", args.join(" "), out.stderr_text(), server_log());
        out.stdout_text()
    };
    let eventually = |args: &[&str], what: &str, check: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = kubectl(args, None);
            if out.success() && check(&out.stdout_text()) {
                return out.stdout_text();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: kubectl {}: {}{}\nserver log:\n{}",
                args.join(" "),
                out.stdout_text(),
                out.stderr_text(),
                server_log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    let ns = id.clone();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: multi, namespace: {ns}, labels: {{role: multi}}}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {{name: setup, image: "flotilla-fixtures/busybox:1", imagePullPolicy: Never, command: ["sh", "-c", "echo init done"]}}
  containers:
  - {{name: main, image: "flotilla-fixtures/busybox:1", imagePullPolicy: Never, command: ["sh", "-c", "echo main one; echo main two; exec sleep 3600"]}}
  - {{name: side, image: "flotilla-fixtures/busybox:1", imagePullPolicy: Never, command: ["sh", "-c", "echo side $(cat /proc/uptime); sleep 2; exit 1"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: pf, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: "flotilla-fixtures/busybox:1"
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && head -c 1048576 /dev/urandom > /www/big && exec httpd -f -p 127.0.0.1:8080 -h /www"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: web, image: "flotilla-fixtures/busybox:1", imagePullPolicy: Never, command: ["sh", "-c", "echo web up; exec sleep 3600"]}}
"#
    );
    node.kubectl_until_ok(&["apply", "-f", "-"], Some(&manifest));
    let n = ["-n", ns.as_str()];
    // `-n` goes first: after `--` it would belong to the command that exec runs.
    let with_ns = |args: &[&str]| -> Vec<String> { n.iter().chain(args.iter()).map(|s| s.to_string()).collect() };
    let run_ok = |args: &[&str]| {
        let all = with_ns(args);
        ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // rollout status waits for the ready pods
    run_ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);

    // logs: -c, init containers, -l, --tail, --since
    let all = with_ns(&["logs", "multi", "-c", "main"]);
    eventually(&all.iter().map(String::as_str).collect::<Vec<_>>(), "main logs", &|o| o == "main one\nmain two\n");
    assert_eq!(run_ok(&["logs", "multi", "-c", "setup"]), "init done\n");
    assert_eq!(run_ok(&["logs", "multi", "-c", "main", "--tail=1"]), "main two\n");
    assert_eq!(run_ok(&["logs", "multi", "-c", "main", "--since=1h"]), "main one\nmain two\n");
    let since_time = "2000-01-01T00:00:00Z";
    assert_eq!(run_ok(&["logs", "multi", "-c", "main", &format!("--since-time={since_time}")]), "main one\nmain two\n");
    let web = run_ok(&["logs", "-l", "app=web"]);
    assert_eq!(web, "web up\nweb up\n", "logs -l prints every selected pod's logs");
    let prefixed = run_ok(&["logs", "-l", "app=web", "--prefix"]);
    assert!(prefixed.lines().all(|l| l.starts_with("[pod/web-") && l.ends_with("web up")), "{prefixed}");

    // --previous: the side container exits and restarts; its previous run's line differs from the current
    let all = with_ns(&[
        "get",
        "pod",
        "multi",
        "-o",
        "jsonpath={.status.containerStatuses[?(@.name==\"side\")].restartCount}",
    ]);
    eventually(&all.iter().map(String::as_str).collect::<Vec<_>>(), "side restarts", &|o| {
        o.trim().parse::<i32>().is_ok_and(|n| n >= 1)
    });
    let previous = kubectl(
        &with_ns(&["logs", "multi", "-c", "side", "--previous"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert!(previous.success(), "logs --previous: {}", previous.stderr_text());
    assert!(previous.stdout_text().starts_with("side "), "{}", previous.stdout_text());

    // exec: plain, -i with stdin, -it under a pty (script gives kubectl a terminal)
    assert_eq!(run_ok(&["exec", "multi", "-c", "main", "--", "echo", "hi"]), "hi\n");
    let out = kubectl(
        &with_ns(&["exec", "-i", "multi", "-c", "main", "--", "cat"]).iter().map(String::as_str).collect::<Vec<_>>(),
        Some("over stdin\n"),
    );
    assert_eq!(out.stdout_text(), "over stdin\n", "{}", out.stderr_text());
    let line = format!("kubectl exec -it -n {ns} multi -c main -- sh -c 'test -t 0 && echo has a tty'");
    let mut script = node.command("script");
    script.args(["-qec", &line, "/dev/null"]).env("TERM", "dumb");
    let tty = common::run(script, Some(b""), common::CHILD_TIMEOUT);
    assert!(tty.stdout_text().contains("has a tty"), "exec -it: {}{}", tty.stdout_text(), tty.stderr_text());

    // cp both ways (tar over exec)
    let local = dir.path().join("to-pod.txt");
    std::fs::write(&local, "copied in\n").expect("writing a local file");
    let target = format!("{ns}/multi:/tmp/in.txt");
    ok(&["cp", &local.display().to_string(), &target, "-c", "main"]);
    assert_eq!(run_ok(&["exec", "multi", "-c", "main", "--", "cat", "/tmp/in.txt"]), "copied in\n");
    let back = dir.path().join("from-pod.txt");
    ok(&["cp", &target, &back.display().to_string(), "-c", "main"]);
    assert_eq!(std::fs::read_to_string(&back).unwrap_or_default(), "copied in\n");

    // port-forward: to a server bound to the pod's own 127.0.0.1, a small and a 1 MiB body (many SPDY
    // frames) over several connections of one session, then a port nobody listens on, reported by kubectl
    run_ok(&["wait", "--for=condition=Ready", "pod/pf", "--timeout=120s"]);
    let mut forward = node.command("kubectl");
    forward
        .args(with_ns(&["port-forward", "pod/pf", ":8080", ":8081"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut forward = KillOnDrop(forward.spawn().expect("starting kubectl port-forward"));
    let stdout = forward.0.stdout.take().expect("port-forward stdout");
    let stderr = forward.0.stderr.take().expect("port-forward stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text);
        text
    });
    // "Forwarding from 127.0.0.1:41234 -> 8080", one line per port (and per address family)
    let mut local: BTreeMap<u16, u16> = BTreeMap::new();
    while local.len() < 2 {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("kubectl port-forward printed no ports");
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
            && let Some((l, r)) = rest.split_once(" -> ")
        {
            local.insert(r.trim().parse().unwrap(), l.parse().unwrap());
        }
    }
    let fetch = |port: u16, path: &str, pipe: &str| {
        let mut cmd = node.command("sh");
        cmd.args(["-c", &format!("curl -sS --max-time 30 http://127.0.0.1:{port}{path}{pipe}")]);
        common::run(cmd, None, common::CHILD_TIMEOUT)
    };
    let small = fetch(local[&8080], "/index.html", "");
    assert_eq!(small.stdout_text(), "hello\n", "port-forward: {}\nserver log:\n{}", small.stderr_text(), server_log());
    let want = run_ok(&["exec", "pf", "--", "sha256sum", "/www/big"]);
    for _ in 0..2 {
        let got = fetch(local[&8080], "/big", " | sha256sum");
        assert_eq!(
            got.stdout_text().split_whitespace().next(),
            want.split_whitespace().next(),
            "1 MiB through port-forward: {}",
            got.stderr_text()
        );
    }
    let refused = fetch(local[&8081], "/", "");
    assert!(!refused.success(), "nothing listens on 8081 in the pod, yet: {}", refused.stdout_text());
    // kubectl ends the session after the error (or is stopped); its stderr carries the agent's words
    let deadline = Instant::now() + Duration::from_secs(20);
    while forward.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = forward.0.kill();
    let stderr = errors.join().unwrap_or_default();
    assert!(
        stderr.contains("error forwarding port 8081") && stderr.contains("connection refused"),
        "port-forward stderr: {stderr}"
    );

    // events, newest last
    let events = run_ok(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert!(events.starts_with("LAST SEEN") && events.contains("ScalingReplicaSet"), "{events}");
    let events = run_ok(&["get", "events", "--field-selector", "involvedObject.name=web", "-o", "name"]);
    assert!(!events.is_empty(), "events about the Deployment by field selector");

    // describe pod and node
    let describe = run_ok(&["describe", "pod", "multi"]);
    for want in [
        "Name:",
        "Node:",
        "Init Containers:",
        "setup:",
        "main:",
        "side:",
        "Restart Count:",
        "Events:",
        "Successfully assigned",
        "already present on machine",
        "Created container: main",
        "Started container main",
    ] {
        assert!(describe.contains(want), "describe pod lacks {want:?}:\n{describe}");
    }
    let describe = ok(&["describe", "node", id]);
    for want in
        ["Name:               ", "Conditions:", "Ready", "Addresses:", "Capacity:", "Non-terminated Pods:", "Events:"]
    {
        assert!(describe.contains(want), "describe node lacks {want:?}:\n{describe}");
    }

    // rollout restart replaces the pods; status waits for the new ones
    let before = run_ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    run_ok(&["rollout", "restart", "deploy/web"]);
    run_ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let all = with_ns(&["get", "pods", "-l", "app=web", "-o", "name"]);
    eventually(&all.iter().map(String::as_str).collect::<Vec<_>>(), "old pods gone", &|o| {
        o.lines().count() == 2 && o.lines().all(|p| !before.contains(p))
    });

    // delete --wait with a grace period: returns once the pod is gone
    run_ok(&["delete", "pod", "multi", "--grace-period=1", "--wait=true", "--timeout=60s"]);
    let gone = kubectl(&with_ns(&["get", "pod", "multi"]).iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(!gone.success() && gone.stderr_text().contains("NotFound"), "{}", gone.stderr_text());
}

/// A child process killed (and reaped) on drop, so a failing test leaves no kubectl behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
