//! Controllers and scheduler end to end: a real `flotilla server --no-agent` (own data dir, random port),
//! a Node the test registers itself, and a small stand-in for the agent that writes pod status the way the
//! agent does (Running/Ready with an IP, finishing graceful deletions). Everything else (ReplicaSets, pods,
//! bindings, EndpointSlices, garbage collection, namespace finalization) is the real code in the server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Upper bound for every wait: generous for a loaded 2-core machine; no test asserts a duration.
const WAIT: Duration = Duration::from_secs(90);

/// Annotation telling the stand-in agent to leave a pod's status to the test.
const HOLD: &str = "flt-test/hold";

struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let bin = std::env::var_os("FLOTILLA_BIN").filter(|v| !v.is_empty()).map(PathBuf::from).expect(
            "FLOTILLA_BIN is not set: it must name the flotilla binary; run scripts/test, which builds it and sets it",
        );
        let dir = tempfile::Builder::new().prefix("flt-ctl-").tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let child = Command::new(bin)
            .arg("server")
            .arg("--no-agent")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting flotilla server");
        Server { dir, child: Some(child) }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn client(&self) -> Client {
        let kubeconfig = self.dir.path().join("kubeconfig.yaml");
        let deadline = Instant::now() + WAIT;
        loop {
            if kubeconfig.exists()
                && let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig)
                && let Ok(cfg) = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await
                && let Ok(client) = Client::try_from(cfg)
                && client.apiserver_version().await.is_ok()
            {
                return client;
            }
            assert!(Instant::now() < deadline, "server did not start; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The server's log on failure (or always with FLT_CTL_SHOW_LOG set), to see what a controller did.
        if std::thread::panicking() || std::env::var_os("FLT_CTL_SHOW_LOG").is_some() {
            eprintln!("--- flotilla server log ---\n{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `f` until it returns Some, at most [`WAIT`]; panics naming `what`.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn unique(prefix: &str) -> String {
    let n: u32 = std::process::id() ^ (Instant::now().elapsed().subsec_nanos() << 8) ^ rand_u32();
    format!("flt-{prefix}-{:x}", n & 0xffffff)
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.subsec_nanos().wrapping_mul(2654435761)
}

/// Registers a Ready node with room for a few pods, whose Lease is renewed as an agent would while the test
/// runs (without it, the node lifecycle controller would find it unreachable after 15 s).
async fn make_node(client: &Client, name: &str, memory: &str) -> Node {
    make_node_with_heartbeat(client, name, memory).await.0
}

/// [`make_node`], plus the switch of its heartbeat: store false to stop renewing its Lease.
async fn make_node_with_heartbeat(client: &Client, name: &str, memory: &str) -> (Node, Arc<AtomicBool>) {
    let node = register_node(client, name, memory).await;
    let alive = Arc::new(AtomicBool::new(true));
    let (client, name, beating) = (client.clone(), name.to_string(), alive.clone());
    tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "kube-node-lease"}})).unwrap();
        let _ = Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await;
        loop {
            if beating.load(Ordering::SeqCst) {
                let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                let spec = json!({"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now});
                let patch = json!({"spec": spec});
                if leases.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_err() {
                    let lease: Lease =
                        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
                    let _ = leases.create(&PostParams::default(), &lease).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (node, alive)
}

async fn register_node(client: &Client, name: &str, memory: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.expect("create node");
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": memory, "pods": "110"},
        "allocatable": {"cpu": "4", "memory": memory, "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node"}]
    }});
    // Node IPAM patches the same node meanwhile; a PATCH should not conflict (kube-apiserver retries it
    // internally), but retry a few times in case the server answers 409.
    for _ in 0..20 {
        match nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await {
            Ok(node) => return node,
            Err(kube::Error::Api(s)) if s.code == 409 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("node status: {e}"),
        }
    }
    panic!("node status: still conflicting after 20 attempts")
}

async fn make_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
}

/// The agent's part, minimally: pods bound to `node` become Running and Ready with an IP (unless they carry
/// [`HOLD`]), and graceful deletions are finished with grace 0.
fn spawn_fake_agent(client: Client, node: String) -> tokio::task::JoinHandle<()> {
    let ip = Arc::new(AtomicU32::new(2));
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        loop {
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            if let Ok(list) = pods.list(&lp).await {
                for pod in list.items {
                    let ns = pod.namespace().unwrap_or_default();
                    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                    let held = pod.annotations().contains_key(HOLD);
                    if pod.metadata.deletion_timestamp.is_some() {
                        if !held {
                            let _ = api
                                .delete(
                                    &pod.name_any(),
                                    &DeleteParams { grace_period_seconds: Some(0), ..Default::default() },
                                )
                                .await;
                        }
                        continue;
                    }
                    let has_ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
                    if held || has_ip {
                        continue;
                    }
                    let n = ip.fetch_add(1, Ordering::SeqCst);
                    let _ = api
                        .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&running(n, true)))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn running(ip_suffix: u32, ready: bool) -> serde_json::Value {
    let ip = format!("10.42.0.{ip_suffix}");
    json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": if ready {"True"} else {"False"}},
            {"type": "ContainersReady", "status": if ready {"True"} else {"False"}}
        ]
    }})
}

fn deployment(name: &str, replicas: i32, version: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "local/busybox:latest",
                    "env": [{"name": "VERSION", "value": version}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    }))
    .unwrap()
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid && r.controller == Some(true))
}

#[tokio::test]
async fn deployment_rolls_out_scales_and_is_collected() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let agent = spawn_fake_agent(client.clone(), node.clone());
    let ns = unique("deploy");
    make_namespace(&client, &ns).await;

    // Node IPAM gave the node a /24 of 10.42.0.0/16.
    let nodes: Api<Node> = Api::all(client.clone());
    let cidr = wait_for("the node's pod CIDR", || async { nodes.get(&node).await.ok()?.spec?.pod_cidr }).await;
    assert!(cidr.starts_with("10.42.") && cidr.ends_with(".0/24"), "{cidr}");

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let d = deploys.create(&PostParams::default(), &deployment("web", 3, "1")).await.expect("create deployment");
    let duid = d.uid().unwrap();

    // A ReplicaSet named <deploy>-<pod-template-hash>, revision 1, and 3 pods bound to our node.
    let rs1 = wait_for("the first ReplicaSet", || async {
        rss.list(&ListParams::default()).await.ok()?.items.into_iter().find(|r| owned_by(&r.metadata, &duid))
    })
    .await;
    let hash = rs1.labels().get("pod-template-hash").cloned().expect("pod-template-hash label");
    assert_eq!(rs1.name_any(), format!("web-{hash}"));
    assert_eq!(rs1.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
    let rs1_uid = rs1.uid().unwrap();
    let status = wait_for("3 available replicas", || async {
        let d = deploys.get("web").await.ok()?;
        let st = d.status.clone()?;
        (st.available_replicas == Some(3) && st.updated_replicas == Some(3)).then_some(d)
    })
    .await;
    let conds = status.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "Available" && c.status == "True"), "{conds:?}");
    assert!(conds.iter().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")));
    assert_eq!(status.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"], "1");
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 3);
    for p in &list {
        assert!(p.name_any().starts_with(&format!("web-{hash}-")), "{}", p.name_any());
        assert_eq!(p.name_any().len(), format!("web-{hash}-").len() + 5);
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some(node.as_str()));
        assert!(owned_by(&p.metadata, &rs1_uid));
    }

    // Rolling update: a new template makes revision 2 and replaces every pod.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "local/busybox:latest",
        "env": [{"name": "VERSION", "value": "2"}], "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update template");
    let rs2 = wait_for("rollout to the new ReplicaSet", || async {
        let all = rss.list(&ListParams::default()).await.ok()?.items;
        let new = all.iter().find(|r| r.uid() != Some(rs1_uid.clone()) && owned_by(&r.metadata, &duid))?.clone();
        let old = all.iter().find(|r| r.uid() == Some(rs1_uid.clone()))?;
        let done = new.status.as_ref()?.available_replicas == Some(3)
            && old.spec.as_ref()?.replicas == Some(0)
            && old.status.as_ref()?.replicas == 0;
        done.then_some(new)
    })
    .await;
    assert_eq!(rs2.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    let hash2 = rs2.labels()["pod-template-hash"].clone();
    assert_ne!(hash, hash2);
    wait_for("only new pods left, deployment at revision 2", || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        let d = deploys.get("web").await.ok()?;
        let st = d.status.clone()?;
        let all_new = list.len() == 3 && list.iter().all(|p| p.labels().get("pod-template-hash") == Some(&hash2));
        (all_new
            && st.updated_replicas == Some(3)
            && st.replicas == Some(3)
            && d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str) == Some("2"))
        .then_some(())
    })
    .await;

    // Scale down to 1, then up to 2.
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}}))).await.unwrap();
    wait_for("one pod", || async { (pods.list(&ListParams::default()).await.ok()?.items.len() == 1).then_some(()) })
        .await;
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 2}}))).await.unwrap();
    wait_for("two ready replicas", || async {
        (deploys.get("web").await.ok()?.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;

    // Garbage collection: deleting the Deployment takes its ReplicaSets and their pods along.
    deploys.delete("web", &DeleteParams::default()).await.expect("delete deployment");
    wait_for("ReplicaSets and pods collected", || async {
        let r = rss.list(&ListParams::default()).await.ok()?.items.len();
        let p = pods.list(&ListParams::default()).await.ok()?.items.len();
        (r == 0 && p == 0).then_some(())
    })
    .await;
    agent.abort();
}

#[tokio::test]
async fn recreate_starts_new_pods_only_after_old_ones_are_gone() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let ns = unique("recreate");
    make_namespace(&client, &ns).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut d = deployment("db", 1, "1");
    let spec = d.spec.as_mut().unwrap();
    spec.strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    // The test plays the agent for these pods: it decides when the old pod is finally gone.
    spec.template.metadata.as_mut().unwrap().annotations = Some([(HOLD.to_string(), "1".to_string())].into());
    deploys.create(&PostParams::default(), &d).await.expect("create deployment");
    let old = wait_for("the first pod, bound", || async {
        let p = pods.list(&ListParams::default()).await.ok()?.items.into_iter().next()?;
        p.spec.as_ref()?.node_name.as_ref()?;
        Some(p)
    })
    .await;
    pods.patch_status(&old.name_any(), &PatchParams::default(), &Patch::Merge(&running(5, true))).await.unwrap();

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "local/busybox:latest",
        "env": [{"name": "VERSION", "value": "2"}]}]}}}});
    deploys.patch("db", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update template");
    wait_for("the old pod to be terminating", || async {
        pods.get(&old.name_any()).await.ok()?.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    // While the old pod still runs, no new pod may start.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(
            list.len(),
            1,
            "a new pod started before the old one was gone: {:?}",
            list.iter().map(|p| p.name_any()).collect::<Vec<_>>()
        );
    }
    pods.delete(&old.name_any(), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    let new = wait_for("the new pod", || async {
        pods.list(&ListParams::default()).await.ok()?.items.into_iter().find(|p| p.uid() != old.uid())
    })
    .await;
    assert_ne!(new.labels().get("pod-template-hash"), old.labels().get("pod-template-hash"));
}

#[tokio::test]
async fn many_deployments_converge_without_extra_pods() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let agent = spawn_fake_agent(client.clone(), node.clone());
    let ns = unique("many");
    make_namespace(&client, &ns).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    for i in 0..10 {
        deploys.create(&PostParams::default(), &deployment(&format!("svc{i}"), 3, "1")).await.expect("create");
    }
    wait_for("30 pods bound", || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 30 && list.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()))
            .then_some(())
    })
    .await;
    eprintln!("30 pods bound after {:?}", started.elapsed());
    wait_for("10 deployments with 3 available replicas each", || async {
        let list = deploys.list(&ListParams::default()).await.ok()?.items;
        list.iter().all(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(3)).then_some(())
    })
    .await;
    eprintln!("10 deployments x 3 replicas available after {:?}", started.elapsed());
    // Exactly 30 pods: a reconcile that read a stale cache would have created more.
    for _ in 0..5 {
        let list = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(list.len(), 30, "{:?}", list.iter().map(|p| p.name_any()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    agent.abort();
}

#[tokio::test]
async fn jobs_complete_or_fail() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let ns = unique("job");
    make_namespace(&client, &ns).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let job = |name: &str, completions: i32, backoff: i32| -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"completions": completions, "parallelism": 1, "backoffLimit": backoff, "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "local/busybox:latest"}]}}}
        }))
        .unwrap()
    };
    jobs.create(&PostParams::default(), &job("ok", 2, 6)).await.expect("create job");
    jobs.create(&PostParams::default(), &job("bad", 1, 0)).await.expect("create job");

    // The test plays the agent: each bound pod of "ok" succeeds, each of "bad" fails.
    let finish = |phase: &'static str, job: &'static str| {
        let pods = pods.clone();
        async move {
            let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
            for p in pods.list(&lp).await.ok()?.items {
                let bound = p.spec.as_ref()?.node_name.is_some();
                let phase_now = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                if bound && phase_now != phase {
                    let st = json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}});
                    pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await.ok()?;
                }
            }
            Some(())
        }
    };
    let done = wait_for("job ok to complete", || async {
        finish("Succeeded", "ok").await;
        let j = jobs.get("ok").await.ok()?;
        let st = j.status.clone()?;
        st.conditions.iter().flatten().any(|c| c.type_ == "Complete" && c.status == "True").then_some(j)
    })
    .await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(2));
    assert!(st.completion_time.is_some());
    assert!(st.start_time.is_some());
    let ok_pods = pods.list(&ListParams::default().labels("batch.kubernetes.io/job-name=ok")).await.unwrap().items;
    assert_eq!(ok_pods.len(), 2, "one pod per completion with parallelism 1");
    assert!(ok_pods.iter().all(|p| p.spec.as_ref().unwrap().restart_policy.as_deref() == Some("Never")));

    let failed = wait_for("job bad to fail", || async {
        finish("Failed", "bad").await;
        let j = jobs.get("bad").await.ok()?;
        let st = j.status.clone()?;
        st.conditions.iter().flatten().find(|c| c.type_ == "Failed" && c.status == "True").cloned()
    })
    .await;
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(jobs.get("bad").await.unwrap().status.unwrap().failed, Some(1));
}

#[tokio::test]
async fn endpointslices_follow_pod_readiness_and_termination() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let ns = unique("eps");
    make_namespace(&client, &ns).await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.expect("create service");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-0", "labels": {"app": "web"}, "annotations": {HOLD: "1"}},
        "spec": {"hostname": "web-0", "subdomain": "web",
                 "containers": [{"name": "c", "image": "local/busybox:latest", "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    wait_for("the pod to be bound", || async { pods.get("web-0").await.ok()?.spec?.node_name }).await;
    pods.patch_status("web-0", &PatchParams::default(), &Patch::Merge(&running(7, true))).await.unwrap();

    let endpoint = |want_ready: bool, want_terminating: bool| {
        let slices = slices.clone();
        async move {
            let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.ok()?.items;
            let s = list.into_iter().find(|s| !s.endpoints.is_empty())?;
            let ep = s.endpoints[0].clone();
            let c = ep.conditions.clone()?;
            (c.ready == Some(want_ready) && c.terminating == Some(want_terminating)).then_some((s, ep))
        }
    };
    let (slice, ep) = wait_for("a ready endpoint", || endpoint(true, false)).await;
    assert_eq!(slice.address_type, "IPv4");
    assert!(slice.name_any().starts_with("web-"));
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080), "named targetPort resolved");
    assert_eq!(ep.addresses, vec!["10.42.0.7"]);
    assert_eq!(ep.hostname.as_deref(), Some("web-0"));
    assert_eq!(ep.node_name.as_deref(), Some(node.as_str()));
    assert_eq!(ep.target_ref.as_ref().unwrap().name.as_deref(), Some("web-0"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, owner.block_owner_deletion),
        ("Service", Some(true), Some(true))
    );

    // Legacy Endpoints and the LoadBalancer status (the node's InternalIP).
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
    wait_for("legacy Endpoints", || async {
        let e = eps.get("web").await.ok()?;
        (e.subsets?[0].addresses.as_ref()?[0].ip == "10.42.0.7").then_some(())
    })
    .await;
    wait_for("LoadBalancer ingress", || async {
        let ing = svcs.get("web").await.ok()?.status?.load_balancer?.ingress?;
        (ing.first()?.ip.as_deref() == Some("127.0.0.1")).then_some(())
    })
    .await;

    // Not ready: the endpoint stays, not ready.
    pods.patch_status("web-0", &PatchParams::default(), &Patch::Merge(&running(7, false))).await.unwrap();
    wait_for("a not-ready endpoint", || endpoint(false, false)).await;
    pods.patch_status("web-0", &PatchParams::default(), &Patch::Merge(&running(7, true))).await.unwrap();
    wait_for("ready again", || endpoint(true, false)).await;

    // Graceful deletion: at once not ready and terminating, while the pod still runs.
    pods.delete("web-0", &DeleteParams::default()).await.unwrap();
    let (_, ep) = wait_for("a terminating endpoint", || endpoint(false, true)).await;
    assert_eq!(ep.conditions.unwrap().serving, Some(true));
    // The agent finishes the deletion: the endpoint goes.
    pods.delete("web-0", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    wait_for("no endpoints", || async {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await.ok()?.items;
        (!list.is_empty() && list.iter().all(|s| s.endpoints.is_empty())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_order_scheduler_no_fit_daemonset_and_orphans() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "1Gi").await;
    let ns = unique("sts");
    make_namespace(&client, &ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}, "annotations": {HOLD: "1"}},
                         "spec": {"containers": [{"name": "c", "image": "local/busybox:latest",
                                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns).create(&PostParams::default(), &sts).await.expect("create sts");
    let p0 = wait_for("db-0 bound", || async {
        let p = pods.get("db-0").await.ok()?;
        p.spec.as_ref()?.node_name.as_ref()?;
        Some(p)
    })
    .await;
    let spec = p0.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("db-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("db"));
    assert_eq!(p0.metadata.labels.unwrap()["statefulset.kubernetes.io/pod-name"], "db-0");
    let claim = spec.volumes.as_ref().unwrap().iter().find(|v| v.name == "data").unwrap();
    assert_eq!(claim.persistent_volume_claim.as_ref().unwrap().claim_name, "data-db-0");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    assert!(pvcs.get_opt("data-db-0").await.unwrap().is_some(), "PVC data-db-0 created with the pod");
    // Ordered start: db-1 waits for db-0 to be Running and Ready. Give the controller several chances.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(pods.get_opt("db-1").await.unwrap().is_none(), "db-1 created before db-0 was ready");
    }
    pods.patch_status("db-0", &PatchParams::default(), &Patch::Merge(&running(3, true))).await.unwrap();
    wait_for("db-1", || async { pods.get_opt("db-1").await.ok()? }).await;

    // A pod asking for more memory than the node has stays pending with kube-scheduler's message.
    let big: Pod = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "c", "image": "local/busybox:latest", "resources": {"requests": {"memory": "64Gi"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &big).await.unwrap();
    let cond = wait_for("PodScheduled=False", || async {
        let p = pods.get("big").await.ok()?;
        p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(cond.message.as_deref(), Some("0/1 nodes are available: 1 Insufficient memory."));
    assert!(pods.get("big").await.unwrap().spec.unwrap().node_name.is_none());

    // A DaemonSet places one pod on the node itself (spec.nodeName, no scheduler).
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}, "annotations": {HOLD: "1"}},
                         "spec": {"containers": [{"name": "c", "image": "local/busybox:latest"}]}}}
    }))
    .unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    dss.create(&PostParams::default(), &ds).await.expect("create daemonset");
    let dpod = wait_for("the DaemonSet pod", || async {
        pods.list(&ListParams::default().labels("app=agent")).await.ok()?.items.into_iter().next()
    })
    .await;
    assert_eq!(dpod.spec.unwrap().node_name.as_deref(), Some(node.as_str()));
    wait_for("DaemonSet status", || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.desired_number_scheduled == 1 && st.current_number_scheduled == 1).then_some(())
    })
    .await;

    // Garbage collection of an object whose owner never existed (by uid).
    let orphan: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "gone", "uid": "00000000-0000-0000-0000-000000000000", "controller": true}]},
        "data": {"a": "b"}
    }))
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&PostParams::default(), &orphan).await.expect("create orphan");
    wait_for("the orphan to be collected", || async { matches!(cms.get_opt("orphan").await, Ok(None)).then_some(()) })
        .await;
}

#[tokio::test]
async fn namespace_deletion_empties_and_finalizes() {
    let server = Server::start();
    let client = server.client().await;
    let node = unique("node");
    make_node(&client, &node, "8Gi").await;
    let agent = spawn_fake_agent(client.clone(), node.clone());
    let ns = unique("nsdel");
    make_namespace(&client, &ns).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deploys.create(&PostParams::default(), &deployment("app", 2, "1")).await.unwrap();
    let cm = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "b"}})).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&PostParams::default(), &cm).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("2 running pods", || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 2 && list.iter().all(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()))
            .then_some(())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await.expect("delete namespace");
    wait_for("the namespace to be gone", || async {
        match namespaces.get_opt(&ns).await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    agent.abort();
}

/// Node lifecycle with fake nodes whose Leases the test renews: a node that stops renewing becomes
/// Unknown and tainted unreachable, its pods are evicted after the eviction timeout (unless they tolerate
/// it for good) and replaced on the healthy node; the taints go when it renews again; deleting the node
/// deletes the pods still bound to it.
#[tokio::test]
async fn silent_nodes_are_tainted_and_their_pods_move() {
    let server = Server::start_with(&["--node-monitor-grace-period=3s", "--pod-eviction-timeout=3s"]);
    let client = server.client().await;
    let ns = unique("life");
    make_namespace(&client, &ns).await;
    let (a, b) = (unique("node-a"), unique("node-b"));
    let (_, beat_a) = make_node_with_heartbeat(&client, &a, "8Gi").await;
    make_node(&client, &b, "8Gi").await;
    let _agent_a = AbortOnDrop(spawn_fake_agent(client.clone(), a.clone()));
    let _agent_b = AbortOnDrop(spawn_fake_agent(client.clone(), b.clone()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let nodes: Api<Node> = Api::all(client.clone());

    // A Deployment's pod pinned to node a by affinity-free means: node b is cordoned while it is placed.
    nodes.patch(&b, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": true}}))).await.unwrap();
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns).create(&PostParams::default(), &deploy).await.unwrap();
    // A bare pod on node a that tolerates unreachable for ever, as DaemonSet pods do.
    let tolerant: Pod = serde_json::from_value(json!({
        "metadata": {"name": "tolerant", "namespace": ns, "annotations": {HOLD: "1"}},
        "spec": {"nodeName": a, "containers": [{"name": "c", "image": "c:1"}],
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &tolerant).await.unwrap();
    let first = wait_for("the web pod on node a", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
        list.items.into_iter().find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(a.as_str()))
    })
    .await;
    nodes.patch(&b, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"unschedulable": false}}))).await.unwrap();

    // Node a goes silent: Unknown and tainted after the grace period.
    beat_a.store(false, Ordering::SeqCst);
    let taint_keys = |n: &Node| -> Vec<String> {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    };
    wait_for("node a unreachable", || async {
        let n = nodes.get(&a).await.ok()?;
        let ready = n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?.status.clone();
        let keys = taint_keys(&n);
        (ready == "Unknown"
            && keys.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
            && keys.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()))
        .then_some(())
    })
    .await;

    // Evicted, and replaced on node b (the stand-in agent of node a still finishes the deletion).
    wait_for("a replacement web pod on node b", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
        list.items
            .iter()
            .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(b.as_str()))
            .then_some(())
    })
    .await;
    wait_for("the first web pod evicted", || async {
        match pods.get_opt(&first.name_any()).await.ok()? {
            None => Some(()),
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;
    let kept = pods.get("tolerant").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none(), "a pod tolerating unreachable for ever was evicted");

    // Back: renewing again (and Ready, as an agent posts it) clears the taints.
    beat_a.store(true, Ordering::SeqCst);
    wait_for("node a untainted", || async {
        let n = nodes.get(&a).await.ok()?;
        taint_keys(&n).iter().all(|k| !k.starts_with("node.kubernetes.io/")).then_some(())
    })
    .await;

    // Deleting node a deletes what is still bound to it.
    nodes.delete(&a, &DeleteParams::default()).await.unwrap();
    wait_for("the pods of the deleted node gone", || async {
        pods.get_opt("tolerant").await.ok()?.is_none().then_some(())
    })
    .await;
    drop(server);
}

/// Aborts a background task when the test ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
