//! The API server against real clients: a real `flotilla server --no-agent` process (own temp data dir,
//! random loopback port) driven by kube-rs and by the real kubectl. Covers CRUD, label and field
//! selectors, optimistic concurrency (and concurrent patches without a resourceVersion, which the server
//! retries), watches (a Table watch as `kubectl get -w` asks for, and a watch that falls behind compaction,
//! which must get a 410 ERROR event and make kube-rs's watcher relist), authentication and the body size
//! limit.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{ApiServer, unique};
use common::{Tier, flotilla_bin, skip_tier};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Upper bound for every wait; no test asserts a duration.
const WAIT: Duration = Duration::from_secs(60);

async fn make_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace created");
}

fn configmap(name: &str, labels: serde_json::Value, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data})).unwrap()
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn crud_selectors_conflicts_and_errors() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("crud");
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

        // create: server-set metadata
        let created = cms
            .create(&PostParams::default(), &configmap("a", json!({"tier": "web"}), json!({"k": "1"})))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
        assert!(created.resource_version().is_some());
        cms.create(&PostParams::default(), &configmap("b", json!({"tier": "db"}), json!({}))).await.unwrap();
        cms.create(&PostParams::default(), &configmap("c", json!({}), json!({}))).await.unwrap();

        // 409 AlreadyExists, 404 NotFound with kube-apiserver's wording
        let exists = api_error(cms.create(&PostParams::default(), &configmap("a", json!({}), json!({}))).await);
        assert_eq!((exists.code, exists.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(exists.message, "configmaps \"a\" already exists");
        let missing = api_error(cms.get("nope").await);
        assert_eq!((missing.code, missing.message.as_str()), (404, "configmaps \"nope\" not found"));

        // a namespace that does not exist
        let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), &unique("absent"));
        let no_ns = api_error(elsewhere.create(&PostParams::default(), &configmap("x", json!({}), json!({}))).await);
        assert_eq!(no_ns.code, 404);
        assert!(no_ns.message.starts_with("namespaces \""), "{}", no_ns.message);

        // generateName
        let generated: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
        let generated = cms.create(&PostParams::default(), &generated).await.unwrap();
        assert!(
            generated.name_any().starts_with("gen-") && generated.name_any().len() == 9,
            "{}",
            generated.name_any()
        );

        // label selectors (full syntax) and field selectors
        let names = |list: kube::core::ObjectList<ConfigMap>| {
            let mut n: Vec<String> = list.items.iter().map(|c| c.name_any()).collect();
            n.sort();
            n
        };
        assert_eq!(names(cms.list(&ListParams::default().labels("tier=web")).await.unwrap()), ["a"]);
        assert_eq!(names(cms.list(&ListParams::default().labels("tier in (web,db)")).await.unwrap()), ["a", "b"]);
        assert_eq!(names(cms.list(&ListParams::default().labels("tier,tier notin (web)")).await.unwrap()), ["b"]);
        assert_eq!(names(cms.list(&ListParams::default().labels("!tier")).await.unwrap()).len(), 2);
        assert_eq!(names(cms.list(&ListParams::default().fields("metadata.name=c")).await.unwrap()), ["c"]);

        // paging: limit + continue return everything exactly once
        let mut seen = Vec::new();
        let mut params = ListParams::default().limit(1);
        for _ in 0..10 {
            let page = cms.list(&params).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.name_any()));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = ListParams::default().limit(1).continue_token(&token),
                _ => break,
            }
        }
        seen.sort();
        assert_eq!(seen.len(), 4, "{seen:?}");
        seen.dedup();
        assert_eq!(seen.len(), 4);

        // update with a stale resourceVersion: 409 Conflict, exact message
        let mut fresh = cms.get("a").await.unwrap();
        let mut stale = fresh.clone();
        fresh.data = Some([("k".to_string(), "2".to_string())].into());
        let updated = cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
        assert_ne!(updated.resource_version(), stale.resource_version());
        stale.data = Some([("k".to_string(), "3".to_string())].into());
        let conflict = api_error(cms.replace("a", &PostParams::default(), &stale).await);
        assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            conflict.message,
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your \
             changes to the latest version and try again"
        );

        // merge patch and JSON patch
        let patched =
            cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"m": "x"}}))).await.unwrap();
        assert_eq!(patched.data.as_ref().unwrap().get("m").map(String::as_str), Some("x"));

        // delete, then it is gone
        cms.delete("a", &DeleteParams::default()).await.unwrap();
        assert_eq!(api_error(cms.get("a").await).code, 404);

        // pods: defaults, and with no node they are deleted at once
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .unwrap();
        let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
        let unscheduled = pods.list(&ListParams::default().fields("spec.nodeName=")).await.unwrap();
        assert_eq!(unscheduled.items.len(), 1);
        pods.delete("p", &DeleteParams::default()).await.unwrap();
        assert_eq!(api_error(pods.get("p").await).code, 404);

        // bodies over 3 MiB are refused with 413
        let big = configmap("big", json!({}), json!({"blob": "x".repeat(3 * 1024 * 1024 + 1)}));
        assert_eq!(api_error(cms.create(&PostParams::default(), &big).await).code, 413);
    });
}

#[test]
fn watch_events_in_order_with_selectors() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("watch");
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let start = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        let mut stream = cms.watch(&WatchParams::default().labels("app=x").timeout(30), &start).await.unwrap().boxed();

        cms.create(&PostParams::default(), &configmap("w", json!({"app": "x"}), json!({}))).await.unwrap();
        cms.create(&PostParams::default(), &configmap("other", json!({"app": "y"}), json!({}))).await.unwrap();
        cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "1"}}))).await.unwrap();
        // leaving the selector reads as a delete for this watcher
        cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})))
            .await
            .unwrap();
        cms.create(&PostParams::default(), &configmap("gone", json!({"app": "x"}), json!({}))).await.unwrap();
        cms.delete("gone", &DeleteParams::default()).await.unwrap();

        let mut got = Vec::new();
        while got.len() < 5 {
            let event = tokio::time::timeout(WAIT, stream.try_next()).await.expect("watch event in time").unwrap();
            match event {
                Some(WatchEvent::Added(c)) => got.push(format!("ADDED {}", c.name_any())),
                Some(WatchEvent::Modified(c)) => got.push(format!("MODIFIED {}", c.name_any())),
                Some(WatchEvent::Deleted(c)) => got.push(format!("DELETED {}", c.name_any())),
                Some(WatchEvent::Bookmark(_)) => {}
                Some(WatchEvent::Error(e)) => panic!("watch error: {e:?}"),
                None => panic!("watch ended early; got {got:?}"),
            }
        }
        assert_eq!(got, ["ADDED w", "MODIFIED w", "DELETED w", "ADDED gone", "DELETED gone"]);

        // resourceVersion "0": the current state first, as synthetic ADDED events
        let mut stream = cms.watch(&WatchParams::default().timeout(30), "0").await.unwrap().boxed();
        let mut initial = Vec::new();
        while initial.len() < 2 {
            match tokio::time::timeout(WAIT, stream.try_next()).await.expect("event in time").unwrap() {
                Some(WatchEvent::Added(c)) => initial.push(c.name_any()),
                other => panic!("expected ADDED, got {other:?}"),
            }
        }
        initial.sort();
        assert_eq!(initial, ["other", "w"]);
    });
}

#[test]
fn watch_behind_compaction_gets_410_and_watcher_relists() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&["--compact-interval", "1", "--compact-keep", "3"]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("compact");
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        cms.create(&PostParams::default(), &configmap("first", json!({}), json!({}))).await.unwrap();
        let old = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

        // kube-rs's watcher: run it through its initial list, then leave it unpolled while history moves on
        let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
        let mut listed = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, events.next()).await.expect("watcher event in time") {
                Some(Ok(watcher::Event::InitApply(c))) => listed.push(c.name_any()),
                Some(Ok(watcher::Event::InitDone)) => break,
                Some(Ok(_)) => {}
                other => panic!("unexpected watcher item {other:?}"),
            }
        }
        assert_eq!(listed, ["first"]);

        for i in 0..10 {
            cms.create(&PostParams::default(), &configmap(&format!("n{i}"), json!({}), json!({}))).await.unwrap();
        }
        // A raw watch from the old revision gets an ERROR event with a 410 Expired Status once compaction has
        // passed it (compaction runs every second here).
        let deadline = Instant::now() + WAIT;
        let status = loop {
            let mut stream = cms.watch(&WatchParams::default().timeout(5), &old).await.unwrap().boxed();
            match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await {
                Ok(Ok(Some(WatchEvent::Error(status)))) => break status,
                _ => {
                    assert!(Instant::now() < deadline, "no 410 after compaction; log:\n{}", server.log());
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));

        // The paused watcher now watches from its (compacted) list revision: it must see the error and
        // relist, ending up with every object.
        let mut saw_error = false;
        let mut relisted = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "watcher did not relist; saw_error={saw_error} relisted={relisted:?}");
            match tokio::time::timeout(WAIT, events.next()).await.expect("watcher event in time") {
                Some(Err(watcher::Error::WatchError(status))) => {
                    assert_eq!(status.code, 410);
                    saw_error = true;
                }
                Some(Err(other)) => panic!("unexpected watcher error {other:?}"),
                Some(Ok(watcher::Event::Init)) => relisted.clear(),
                Some(Ok(watcher::Event::InitApply(c))) => relisted.push(c.name_any()),
                Some(Ok(watcher::Event::InitDone)) if saw_error => break,
                Some(Ok(_)) => {}
                None => panic!("watcher ended"),
            }
        }
        assert_eq!(relisted.len(), 11, "{relisted:?}");
    });
}

#[test]
fn unauthenticated_requests_get_401() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let admin = server.client().await;
        let anonymous = server.client_without_cert(None).await;
        // public endpoints stay open
        assert_eq!(anonymous.apiserver_version().await.unwrap().minor, "33");
        let status = api_error(Api::<Namespace>::all(anonymous).list(&ListParams::default()).await);
        assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));

        let wrong = server.client_without_cert(Some("not-the-token".into())).await;
        assert_eq!(api_error(Api::<Namespace>::all(wrong).list(&ListParams::default()).await).code, 401);

        // the secret of <data-dir>/token is an admin bearer token
        let token = std::fs::read_to_string(server.dir.path().join("token")).unwrap();
        let secret = token.trim().rsplit_once("::server:").expect("k3s-style token").1.to_string();
        assert!(token.starts_with("K10"));
        let bearer = server.client_without_cert(Some(secret)).await;
        let names: Vec<String> = Api::<Namespace>::all(bearer)
            .list(&ListParams::default())
            .await
            .unwrap()
            .iter()
            .map(|n| n.name_any())
            .collect();
        for wanted in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(names.iter().any(|n| n == wanted), "{names:?}");
        }
        let svc =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin, "default").get("kubernetes").await.unwrap();
        assert_eq!(svc.spec.unwrap().cluster_ip.as_deref(), Some("10.43.0.1"));
    });
}

#[test]
fn kubectl_create_get_delete() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(server.client());
    let ns = unique("kubectl");
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  greeting: hello\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {ns}\n  labels:\n    app: web\n\
         spec:\n  containers:\n  - name: web\n    image: busybox:1\n    command: [sleep, '3600']\n"
    );
    let created = server.ok(&["create", "-f", "-"], Some(&manifest));
    for line in [format!("namespace/{ns} created"), "configmap/settings created".into(), "pod/web created".into()] {
        assert!(created.contains(&line), "{created}");
    }
    let namespaces = server.ok(&["get", "namespaces"], None);
    assert!(namespaces.lines().any(|l| l.starts_with(&ns) && l.contains("Active")), "{namespaces}");
    let pods = server.ok(&["get", "pods", "-n", &ns, "-l", "app=web"], None);
    assert!(pods.lines().any(|l| l.starts_with("web ") && l.contains("Pending")), "{pods}");
    let cm = server.ok(&["get", "configmap", "settings", "-n", &ns, "-o", "jsonpath={.data.greeting}"], None);
    assert_eq!(cm, "hello");
    let pod_json = server.ok(&["get", "pod", "web", "-n", &ns, "-o", "json"], None);
    let pod: serde_json::Value = serde_json::from_str(&pod_json).unwrap();
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["status"]["phase"], "Pending");

    // strategic merge (kubectl label) and JSON patch
    server.ok(&["label", "configmap", "settings", "-n", &ns, "tier=web"], None);
    let patch = r#"[{"op": "add", "path": "/data/extra", "value": "y"}]"#;
    server.ok(&["patch", "configmap", "settings", "-n", &ns, "--type", "json", "-p", patch], None);
    let cm =
        server.ok(&["get", "configmap", "-n", &ns, "-l", "tier=web", "-o", "jsonpath={.items[0].data.extra}"], None);
    assert_eq!(cm, "y");

    // kubectl's typed create commands send protobuf bodies
    let typed = unique("typed");
    server.ok(&["create", "namespace", &typed], None);
    server.ok(&["create", "configmap", "c1", "-n", &typed, "--from-literal=a=b"], None);
    server.ok(&["create", "secret", "generic", "s1", "-n", &typed, "--from-literal=p=q"], None);
    let secret = server.ok(&["get", "secret", "s1", "-n", &typed, "-o", "json"], None);
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    assert_eq!((secret["type"].as_str(), secret["data"]["p"].as_str()), (Some("Opaque"), Some("cQ==")));
    let cm = server.ok(&["get", "configmap", "c1", "-n", &typed, "-o", "jsonpath={.data.a}"], None);
    assert_eq!(cm, "b");

    let missing = server.fails(&["get", "pod", "nope", "-n", &ns], None);
    assert!(missing.contains("pods \"nope\" not found"), "{missing}");

    let deleted = server.ok(&["delete", "pod/web", "configmap/settings", "-n", &ns], None);
    assert!(deleted.contains("pod \"web\" deleted") && deleted.contains("configmap \"settings\" deleted"), "{deleted}");
    let left = server.ok(&["get", "pods,configmaps", "-n", &ns, "-o", "name"], None);
    assert!(left.trim().is_empty(), "{left}");
    // Namespace deletion goes through Terminating (the namespace controller finishes it).
    server.ok(&["delete", "namespace", &ns, "--wait=false"], None);
    let phase = server.kubectl(&["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"], None);
    let phase = phase.stdout_text();
    assert!(phase == "Terminating" || phase.is_empty(), "{phase}");
}

#[test]
fn subresources_graceful_deletion_and_namespace_finalize() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("sub");
        make_namespace(&client, &ns).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}], "terminationGracePeriodSeconds": 20},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();

        // binding sets spec.nodeName once
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}});
        let post = PostParams::default();
        let bind = || pods.create_subresource::<_, serde_json::Value>("binding", "p", &post, &binding);
        bind().await.unwrap();
        let bound = pods.get("p").await.unwrap();
        assert_eq!(bound.spec.as_ref().unwrap().node_name.as_deref(), Some("node-a"));
        let again = bind().await;
        assert!(matches!(again, Err(kube::Error::Api(s)) if s.code == 409));

        // the main resource ignores status; the status subresource changes only status
        // (the in-process scheduler may write the pod's conditions meanwhile: retry on conflict)
        let mut attempts = 0;
        let after = loop {
            let mut edited = pods.get("p").await.unwrap();
            edited.status.as_mut().unwrap().phase = Some("Running".into());
            edited.metadata.labels = Some([("edited".to_string(), "yes".to_string())].into());
            match pods.replace("p", &PostParams::default(), &edited).await {
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 20 => attempts += 1,
                other => break other.unwrap(),
            }
        };
        assert_eq!(after.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
        assert!(after.labels().contains_key("edited"));
        let status = pods
            .patch_status(
                "p",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"ignored": "x"}}, "status": {"phase": "Running", "podIP": "10.42.0.9"}})),
            )
            .await
            .unwrap();
        assert_eq!(status.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert!(!status.labels().contains_key("ignored"));

        // a bound pod is deleted gracefully: deletionTimestamp first, gone after a delete with grace 0
        let first = pods.delete("p", &DeleteParams::default()).await.unwrap();
        let pending = first.left().expect("the pod is returned while it terminates");
        assert!(pending.metadata.deletion_timestamp.is_some());
        assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(20));
        assert!(pods.get("p").await.is_ok());
        pods.delete("p", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
        assert_eq!(api_error(pods.get("p").await).code, 404);

        // finalizers hold an object until an update removes them
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let held: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["flt.test/hold"]}})).unwrap();
        cms.create(&PostParams::default(), &held).await.unwrap();
        cms.delete("held", &DeleteParams::default()).await.unwrap();
        assert!(cms.get("held").await.unwrap().metadata.deletion_timestamp.is_some());
        cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
        assert_eq!(api_error(cms.get("held").await).code, 404);

        // generation follows spec changes; scale subresource
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
        let deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}},
        }))
        .unwrap();
        let created = deployments.create(&PostParams::default(), &deployment).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(created.spec.as_ref().unwrap().replicas, Some(1));
        let scaled = deployments.patch_scale("d", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
        assert_eq!(scaled.spec.unwrap().replicas, Some(3));
        let after = deployments.get("d").await.unwrap();
        assert_eq!((after.spec.unwrap().replicas, after.metadata.generation), (Some(3), Some(2)));

        // namespace deletion: Terminating until /finalize empties spec.finalizers (the namespace controller
        // normally does that; calling it here too is harmless)
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let terminating = namespaces.delete(&ns, &DeleteParams::default()).await.unwrap().left().unwrap();
        assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
        let refused = api_error(cms.create(&PostParams::default(), &configmap("late", json!({}), json!({}))).await);
        assert_eq!(refused.code, 403);
        let finalize = json!({"metadata": {"name": ns}, "spec": {"finalizers": []}});
        let deadline = Instant::now() + WAIT;
        loop {
            match namespaces.get(&ns).await {
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                _ => {
                    let _ = namespaces.replace_subresource("finalize", &ns, &PostParams::default(), &finalize).await;
                }
            }
            assert!(Instant::now() < deadline, "namespace {ns} was not removed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn server_stop_and_restart_keep_state_and_credentials() {
    if skip_tier(Tier::Api) {
        return;
    }
    let mut server = ApiServer::start(&[]);
    let rt = runtime();
    let ns = unique("restart");
    rt.block_on(async {
        let client = server.client().await;
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        cms.create(&PostParams::default(), &configmap("kept", json!({}), json!({"v": "1"}))).await.unwrap();
    });
    let kubeconfig_before = std::fs::read_to_string(server.kubeconfig()).unwrap();
    let stop =
        Command::new(flotilla_bin()).args(["server", "stop", "--data-dir"]).arg(server.dir.path()).output().unwrap();
    assert!(stop.status.success(), "stop failed: {}", String::from_utf8_lossy(&stop.stderr));
    assert!(server.wait_exit(WAIT), "server did not exit after `flotilla server stop`");
    assert!(!server.dir.path().join("server.pid").exists());
    let again =
        Command::new(flotilla_bin()).args(["server", "stop", "--data-dir"]).arg(server.dir.path()).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no server is running"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    server.spawn(&[]);
    rt.block_on(async {
        let client = server.client().await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        assert_eq!(cms.get("kept").await.unwrap().data.unwrap()["v"], "1");
        // the CA survives restarts, so the old kubeconfig's credentials are still valid
        let old = kube::config::Kubeconfig::from_yaml(&kubeconfig_before).unwrap();
        let mut cfg = kube::Config::from_custom_kubeconfig(old, &Default::default()).await.unwrap();
        cfg.cluster_url = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap()
        .cluster_url;
        let old_client = Client::try_from(cfg).unwrap();
        Api::<ConfigMap>::namespaced(old_client, &ns).get("kept").await.unwrap();
    });
}

/// Patches without a resourceVersion never fail with 409: the server re-reads and re-applies them when
/// another write lands between its read and its write (kube-apiserver's GuaranteedUpdate). A patch that
/// names a stale resourceVersion still gets 409.
#[test]
fn concurrent_patches_without_resource_version_all_succeed() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("patches");
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let created = cms.create(&PostParams::default(), &configmap("shared", json!({}), json!({}))).await.unwrap();
        let stale = created.resource_version().unwrap();

        const TASKS: usize = 6;
        const PATCHES: usize = 8;
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let cms = cms.clone();
                tokio::spawn(async move {
                    for i in 0..PATCHES {
                        let patch = Patch::Merge(json!({"data": {format!("k{t}-{i}"): "v"}}));
                        cms.patch("shared", &PatchParams::default(), &patch)
                            .await
                            .unwrap_or_else(|e| panic!("patch {t}/{i} failed: {e}"));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let data = cms.get("shared").await.unwrap().data.unwrap_or_default();
        assert_eq!(data.len(), TASKS * PATCHES, "every patch landed: {data:?}");

        // an update without resourceVersion is retried the same way; with a stale one it conflicts
        let mut unconditional = cms.get("shared").await.unwrap();
        unconditional.metadata.resource_version = None;
        unconditional.data.get_or_insert_default().insert("put".into(), "yes".into());
        cms.replace("shared", &PostParams::default(), &unconditional).await.unwrap();
        let conflict = api_error(
            cms.patch(
                "shared",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"resourceVersion": stale}, "data": {"late": "x"}})),
            )
            .await,
        );
        assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    });
}

/// A watch asked for `as=Table` (what `kubectl get -w` sends) gets each event's object as a one-row Table;
/// only the first carries columnDefinitions, as kube-apiserver does. A plain watch still gets objects.
#[test]
fn table_watch_sends_one_row_tables() {
    if skip_tier(Tier::Api) {
        return;
    }
    let server = ApiServer::start(&[]);
    runtime().block_on(async {
        let client = server.client().await;
        let ns = unique("tablewatch");
        make_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        for name in ["one", "two"] {
            cms.create(&PostParams::default(), &configmap(name, json!({}), json!({"k": "v"}))).await.unwrap();
        }
        let path = format!("/api/v1/namespaces/{ns}/configmaps");
        let watch = |table: bool| {
            let mut req = kube::core::Request::new(&path).watch(&WatchParams::default().timeout(2), "0").unwrap();
            if table {
                req.headers_mut().insert("accept", "application/json;as=Table;v=v1;g=meta.k8s.io".parse().unwrap());
            }
            client.request_text(req)
        };
        let text = watch(true).await.unwrap();
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 2, "{text}");
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["type"], "ADDED", "{text}");
            let table = &event["object"];
            assert_eq!((table["kind"].as_str(), table["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
            let rows = table["rows"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{text}");
            assert_eq!(rows[0]["cells"][1], 1, "DATA column: {text}");
            let columns = table["columnDefinitions"].as_array().map_or(0, Vec::len);
            assert_eq!(columns > 0, i == 0, "columnDefinitions only in the first event: {text}");
        }
        let plain = watch(false).await.unwrap();
        let first: serde_json::Value = serde_json::from_str(plain.lines().next().unwrap()).unwrap();
        assert_eq!(first["object"]["kind"], "ConfigMap", "{plain}");
    });
}
