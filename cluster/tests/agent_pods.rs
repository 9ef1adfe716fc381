//! Node agent tests on real parts: a real API server (in-process, `cluster::server::run` with no agent of
//! its own), the agent (`cluster::agent::run`) inside a fresh network namespace, real Docker containers, a
//! real bridge, veths and nftables in that namespace. The whole server + agent runs on one thread that
//! entered the namespace (`setns`), so every socket, `ip` and `nft` it uses lives there.
//!
//! Needs root and a running dockerd. Everything made here carries a unique `flt-` name and is removed by
//! guards: the namespace (with its bridge, veths and nft table), the containers (by the agent's node label)
//! and the test image.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rand_id() -> String {
    let b: [u8; 4] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().expect("run sh");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A fresh network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Self {
        let (ok, out) = sh(&format!("ip netns add {name} && ip -n {name} link set lo up"));
        assert!(ok, "ip netns add {name}: {out}");
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.0));
    }
}

/// Removes the containers of a test node (by the agent's node label) and the test image.
struct DockerGuard {
    node: String,
    image: String,
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ids=$(docker ps -aq --filter label=dev.flotilla.node={}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null",
            self.node
        ));
        let _ = sh(&format!("docker rmi -f {} >/dev/null 2>&1", self.image));
    }
}

/// A busybox image made from Debian's static busybox with `docker import` (no registry).
fn make_busybox(tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "set -e; cd {d}; mkdir -p bin tmp etc root www; cp /bin/busybox bin/busybox; \
         for a in $(bin/busybox --list); do [ -e bin/$a ] || ln -s busybox bin/$a; done; \
         echo 'root:x:0:0:root:/root:/bin/sh' > etc/passwd; echo 'root:x:0:' > etc/group; \
         tar -C {d} -c . | docker import --change 'CMD [\"sh\"]' --change 'ENV PATH=/bin' - {tag} >/dev/null",
        d = dir.path().display()
    );
    let (ok, out) = sh(&script);
    assert!(ok, "building the busybox image: {out}");
}

/// Runs `make()` to completion on a current-thread runtime in a thread that entered netns `ns`.
fn in_netns<F, Fut>(ns: &str, make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let path = format!("/run/netns/{ns}");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let handle = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid namespace fd we hold open.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(make());
        rt.shutdown_timeout(Duration::from_secs(5));
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// A server + agent running in the current (namespaced) thread.
struct Cluster {
    client: kube::Client,
    data_dir: PathBuf,
    kubelet_port: u16,
    agent_config: cluster::agent::AgentConfig,
    _server: tokio::task::JoinHandle<()>,
    agent: tokio::task::JoinHandle<()>,
}

fn spawn_agent(client: kube::Client, config: cluster::agent::AgentConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = cluster::agent::run(client, config).await {
            panic!("agent: {e}");
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_cluster(node: &str, bridge: &str, data_dir: &Path) -> Cluster {
    let mut sc = cluster::server::ServerConfig::new(data_dir.to_path_buf());
    sc.listen = (Ipv4Addr::LOCALHOST, free_port()).into();
    sc.node_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    sc.node_name = Some(node.to_string());
    sc.no_agent = true;
    let server = tokio::spawn(async move {
        if let Err(e) = cluster::server::run(sc).await {
            panic!("server: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        assert!(Instant::now() < deadline, "the API server did not come up");
        assert!(!server.is_finished(), "the API server stopped");
        if data_dir.join("kubeconfig.yaml").exists()
            && let Ok(client) = cluster::server::admin_client(data_dir).await
            && client.apiserver_version().await.is_ok()
        {
            break client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ca = cluster::pki::ClusterCa::load_or_create(&data_dir.join("tls")).unwrap();
    let node_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let pair = cluster::pki::node_credentials(&ca, data_dir, node, node_ip).unwrap();
    let kubelet_port = free_port();
    let config = cluster::agent::AgentConfig {
        node_name: node.to_string(),
        node_ip,
        data_dir: data_dir.join("agent"),
        ca_pem: ca.cert_pem.clone(),
        cert_pem: pair.cert_pem,
        key_pem: pair.key_pem,
        kubelet_port,
        bridge_name: bridge.to_string(),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
        run_network_services: false,
        ..Default::default()
    };
    let agent = spawn_agent(client.clone(), config.clone());
    // The node-IPAM controller assigns spec.podCIDR; if it is not running, assign one ourselves.
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waited = 0;
    loop {
        assert!(Instant::now() < deadline, "the node never got a podCIDR");
        assert!(!agent.is_finished(), "the agent stopped");
        if let Ok(Some(n)) = nodes.get_opt(node).await {
            if n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some() {
                break;
            }
            waited += 1;
            if waited > 30 {
                let patch = json!({"spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}});
                let _ = nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Cluster { client, data_dir: data_dir.to_path_buf(), kubelet_port, agent_config: config, _server: server, agent }
}

async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, secs: u64, pred: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(pod) = api.get(name).await {
            if pred(&pod) {
                return pod;
            }
            last = Some(pod);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod {name}: {what} not reached; last: {:#?}", last.map(|p| p.status));
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn condition(p: &Pod, ty: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == ty && c.status == "True"))
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

/// A TLS connection to the kubelet endpoint with the API server's kubelet-client certificate.
async fn kubelet_tls(c: &Cluster) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tls = c.data_dir.join("tls");
    let ca = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
    let cert = std::fs::read_to_string(tls.join("kubelet-client.crt")).unwrap();
    let key = std::fs::read_to_string(tls.join("kubelet-client.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let certs = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", c.kubelet_port)).await.unwrap();
    connector.connect("127.0.0.1".try_into().unwrap(), tcp).await.unwrap()
}

/// GET on the kubelet endpoint: (status code, body de-chunked).
async fn kubelet_get(c: &Cluster, path: &str) -> (u16, String) {
    let mut s = kubelet_tls(c).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
        }
        out
    } else {
        body.to_string()
    };
    (code, body)
}

/// Exec over the kubelet endpoint's WebSocket (v5): returns (stdout, stderr, status JSON).
async fn kubelet_exec(
    c: &Cluster,
    pod: &str,
    container: &str,
    cmd: &[&str],
    stdin: Option<&str>,
) -> (String, String, serde_json::Value) {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut query: Vec<String> = cmd
        .iter()
        .map(|c| format!("command={}", c.replace(' ', "%20").replace('>', "%3E").replace('&', "%26")))
        .collect();
    query.push("stdout=true".into());
    query.push("stderr=true".into());
    if stdin.is_some() {
        query.push("stdin=true".into());
    }
    let url = format!("wss://127.0.0.1:{}/exec/default/{pod}/{container}?{}", c.kubelet_port, query.join("&"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().unwrap());
    let tls = kubelet_tls(c).await;
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "v5.channel.k8s.io");
    if let Some(input) = stdin {
        let mut frame = vec![0u8];
        frame.extend_from_slice(input.as_bytes());
        ws.send(Message::Binary(frame.into())).await.unwrap();
        ws.send(Message::Binary(vec![255u8, 0].into())).await.unwrap();
    }
    let (mut out, mut err, mut status) = (String::new(), String::new(), serde_json::Value::Null);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Binary(data) = msg else { continue };
        let Some((&ch, payload)) = data.split_first() else { continue };
        match ch {
            1 => out.push_str(&String::from_utf8_lossy(payload)),
            2 => err.push_str(&String::from_utf8_lossy(payload)),
            3 => status = serde_json::from_slice(payload).unwrap(),
            _ => {}
        }
    }
    (out, err, status)
}

struct Env {
    _netns: Netns,
    _docker: DockerGuard,
    _dir: tempfile::TempDir,
    ns: String,
    node: String,
    bridge: String,
    image: String,
    dir: PathBuf,
}

impl Drop for Env {
    /// Unmounts what the agent mounted under the test's data dir (memory-backed emptyDirs) if a failed test
    /// left a pod behind, so the temporary directory can go.
    fn drop(&mut self) {
        let prefix = self.dir.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|p| p.starts_with(&prefix)) {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
}

fn env() -> Env {
    let id = rand_id();
    let ns = format!("flt-{id}");
    let node = format!("flt-{id}");
    let image = format!("flt-busybox-{id}:1");
    let docker = DockerGuard { node: node.clone(), image: image.clone() };
    make_busybox(&image);
    let dir = tempfile::tempdir().unwrap();
    Env {
        _netns: Netns::new(&ns),
        _docker: docker,
        dir: dir.path().to_path_buf(),
        _dir: dir,
        bridge: format!("flt{id}"),
        ns,
        node,
        image,
    }
}

fn containers_of(uid: &str) -> String {
    sh(&format!("docker ps -aq --filter label=dev.flotilla.pod-uid={uid}")).1.trim().to_string()
}

#[test]
fn pods_get_ips_talk_to_each_other_and_stop_gracefully() {
    let e = env();
    let (node, bridge, image, dir) = (e.node.clone(), e.bridge.clone(), e.image.clone(), e.dir.clone());
    in_netns(&e.ns, move || async move {
        let c = start_cluster(&node, &bridge, &dir).await;
        // The Node: Ready, its addresses and kubelet port; its Lease is held and renewed by the agent.
        let n = Api::<Node>::all(c.client.clone()).get(&node).await.unwrap();
        let st = n.status.clone().unwrap();
        assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(st.addresses.unwrap().iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
        assert_eq!(st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, i32::from(c.kubelet_port));
        assert_eq!(n.metadata.labels.unwrap().get("kubernetes.io/hostname"), Some(&node));
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(c.client.clone(), "kube-node-lease");
        let lease = leases.get(&node).await.unwrap().spec.unwrap();
        assert_eq!(lease.holder_identity.as_deref(), Some(node.as_str()));
        assert!(lease.renew_time.is_some());

        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "web-content"},
            "data": {"greeting": "hello from configmap\n", "FROM_CM": "env-from-configmap"},
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let web = pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 5,
                "volumes": [
                    {"name": "content", "configMap": {"name": "web-content", "items": [{"key": "greeting", "path": "greeting"}]}},
                    {"name": "work", "emptyDir": {}},
                ],
                "initContainers": [
                    {"name": "expand", "image": image, "imagePullPolicy": "Never", "command": ["echo"],
                     "args": ["x=$(B)", "y=$$(A)", "z=$(NOPE)", "w=$(FROM_CM)"],
                     "env": [{"name": "A", "value": "alpha"}, {"name": "B", "value": "$(A)-beta"}],
                     "envFrom": [{"configMapRef": {"name": "web-content"}}]},
                    {"name": "mark", "image": image, "imagePullPolicy": "Never",
                     "command": ["sh", "-c", "echo first > /work/init-done"],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                ],
                "containers": [{
                    "name": "httpd", "image": image, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "cat /work/init-done; echo POD_IP=$POD_IP NODE=$NODE; exec httpd -f -p 8080 -h /www"],
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                    "volumeMounts": [{"name": "content", "mountPath": "/www"}, {"name": "work", "mountPath": "/work"}],
                    "readinessProbe": {"httpGet": {"path": "/greeting", "port": 8080}, "periodSeconds": 1},
                }],
            },
        }));
        pods.create(&PostParams::default(), &web).await.unwrap();
        let client_pod = pod(json!({
            "metadata": {"name": "client"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]},
        }));
        pods.create(&PostParams::default(), &client_pod).await.unwrap();

        let web = wait_pod(&pods, "web", "Ready", 90, |p| condition(p, "Ready")).await;
        let status = web.status.clone().unwrap();
        let web_ip = status.pod_ip.clone().expect("web has a pod IP");
        assert!(web_ip.starts_with("10.42.0."), "pod IP {web_ip}");
        assert_eq!(phase(&web), "Running");
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(
            condition(&web, "Initialized") && condition(&web, "ContainersReady") && condition(&web, "PodScheduled")
        );
        let inits = status.init_container_statuses.clone().unwrap();
        assert!(inits.iter().all(|s| s.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code == 0));
        let client = wait_pod(&pods, "client", "Running", 60, |p| phase(p) == "Running").await;
        let client_ip = client.status.unwrap().pod_ip.unwrap();
        assert_ne!(client_ip, web_ip);

        // $(VAR) expansion as the kubelet does it, envFrom, init order, fieldRefs.
        let (code, logs) = kubelet_get(&c, "/containerLogs/default/web/expand").await;
        assert_eq!(code, 200, "{logs}");
        assert_eq!(logs.trim(), "x=alpha-beta y=$(A) z=$(NOPE) w=env-from-configmap");
        let (_, logs) = kubelet_get(&c, "/containerLogs/default/web/httpd").await;
        assert!(logs.contains("first"), "the init container ran first: {logs}");
        assert!(logs.contains(&format!("POD_IP={web_ip} NODE={node}")), "{logs}");

        // Pod to pod by IP, the configMap volume served by httpd.
        let (out, err, st) =
            kubelet_exec(&c, "client", "main", &["wget", "-qO-", &format!("http://{web_ip}:8080/greeting")], None)
                .await;
        assert_eq!(st["status"], "Success", "{st} {err}");
        assert_eq!(out, "hello from configmap\n");
        // resolv.conf points at the bridge address with the namespace's search path.
        let (out, _, _) = kubelet_exec(&c, "client", "main", &["cat", "/etc/resolv.conf"], None).await;
        assert!(out.contains("nameserver 10.42.0.1"), "{out}");
        assert!(out.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{out}");
        assert!(out.contains("options ndots:5"), "{out}");

        // Graceful delete: the agent stops the containers and deletes the pod with grace 0.
        let uid = web.metadata.uid.clone().unwrap();
        assert!(!containers_of(&uid).is_empty());
        pods.delete("web", &DeleteParams::default()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "pod web was not deleted");
            if pods.get_opt("web").await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(containers_of(&uid).is_empty(), "containers of web are left: {}", containers_of(&uid));
        let ipam: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.data_dir.join("agent/ipam.json")).unwrap()).unwrap();
        assert!(ipam["allocations"].get(&web_ip).is_none(), "the address {web_ip} was not released: {ipam}");
        assert!(ipam["allocations"].get(&client_ip).is_some(), "{ipam}");
        pods.delete("client", &DeleteParams::default()).await.unwrap();
    });
}

#[test]
fn crashing_containers_back_off_and_logs_and_exec_work() {
    let e = env();
    let (node, bridge, image, dir) = (e.node.clone(), e.bridge.clone(), e.image.clone(), e.dir.clone());
    in_netns(&e.ns, move || async move {
        let c = start_cluster(&node, &bridge, &dir).await;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let spec = |name: &str, cmd: serde_json::Value, policy: &str| {
            pod(json!({
                "metadata": {"name": name},
                "spec": {"nodeName": node, "restartPolicy": policy, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "command": cmd}]},
            }))
        };
        pods.create(&PostParams::default(), &spec("crash", json!(["sh", "-c", "echo boom; exit 3"]), "Always"))
            .await
            .unwrap();
        pods.create(&PostParams::default(), &spec("once", json!(["sh", "-c", "echo done"]), "Never")).await.unwrap();
        pods.create(&PostParams::default(), &spec("shell", json!(["sleep", "3600"]), "Always")).await.unwrap();
        let probed = |name: &str, cmd: &str, probes: serde_json::Value| {
            let mut container =
                json!({"name": "main", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", cmd]});
            for (k, v) in probes.as_object().unwrap() {
                container[k] = v.clone();
            }
            pod(
                json!({"metadata": {"name": name}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [container]}}),
            )
        };
        // Liveness: the file goes away after 2 s, the probe fails, the container is restarted.
        let sick = probed(
            "sick",
            "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600",
            json!({"livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1}}),
        );
        pods.create(&PostParams::default(), &sick).await.unwrap();
        // Startup: not started (so not ready) until the probe passes after about 2 s.
        let slow = probed(
            "slow",
            "sleep 2; touch /tmp/up; exec sleep 3600",
            json!({"startupProbe": {"exec": {"command": ["test", "-f", "/tmp/up"]}, "periodSeconds": 1, "failureThreshold": 30},
                   "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}),
        );
        pods.create(&PostParams::default(), &slow).await.unwrap();
        let missing = pod(json!({
            "metadata": {"name": "missing"},
            "spec": {"nodeName": node, "containers": [
                {"name": "main", "image": format!("flt-missing-{}:1", rand_id()), "imagePullPolicy": "Never"}]},
        }));
        pods.create(&PostParams::default(), &missing).await.unwrap();

        let waiting_reason = |p: &Pod| -> String {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .unwrap_or_default()
        };
        let crash = wait_pod(&pods, "crash", "CrashLoopBackOff after 2 restarts", 90, |p| {
            let cs = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first().cloned());
            cs.is_some_and(|c| c.restart_count >= 2) && waiting_reason(p) == "CrashLoopBackOff"
        })
        .await;
        let cs = crash.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].clone();
        let last = cs.last_state.unwrap().terminated.expect("lastState.terminated");
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert!(!cs.ready);
        assert_eq!(phase(&crash), "Running");

        let once = wait_pod(&pods, "once", "Succeeded", 60, |p| phase(p) == "Succeeded").await;
        let term = once.status.unwrap().container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!((term.exit_code, term.reason.as_deref()), (0, Some("Completed")));

        let missing =
            wait_pod(&pods, "missing", "ErrImageNeverPull", 60, |p| waiting_reason(p) == "ErrImageNeverPull").await;
        assert_eq!(phase(&missing), "Pending");
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), "default");
        let listed = events.list(&Default::default()).await.unwrap();
        assert!(
            listed.items.iter().any(|e| e.involved_object.name.as_deref() == Some("missing")
                && e.reason.as_deref() == Some("Failed")
                && e.message.as_deref().is_some_and(|m| m.contains("pull policy of Never"))),
            "no Failed event for pod missing"
        );

        let sick = wait_pod(&pods, "sick", "restarted by its liveness probe", 60, |p| {
            p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| {
                c[0].restart_count >= 1 && c[0].last_state.as_ref().is_some_and(|l| l.terminated.is_some())
            })
        })
        .await;
        assert_eq!(phase(&sick), "Running");
        let slow = wait_pod(&pods, "slow", "Ready", 60, |p| condition(p, "Ready")).await;
        let cs = slow.status.unwrap().container_statuses.unwrap()[0].clone();
        assert_eq!((cs.started, cs.ready, cs.restart_count), (Some(true), true, 0));

        // Logs, the previous instance's logs, tail, and errors for unknown containers. The crashing
        // container restarts under our feet: its newest instance may have just been created and not yet
        // printed, so both are read until they show what every instance prints (bounded).
        for path in ["/containerLogs/default/crash/main", "/containerLogs/default/crash/main?previous=true"] {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (code, body) = kubelet_get(&c, path).await;
                if (code, body.as_str()) == (200, "boom\n") {
                    break;
                }
                assert!(Instant::now() < deadline, "{path}: {code} {body:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let (code, body) = kubelet_get(&c, "/containerLogs/default/once/main?timestamps=true&tailLines=1").await;
        assert_eq!(code, 200);
        assert!(body.ends_with(" done\n") && body.starts_with("20"), "{body}");
        let (code, _) = kubelet_get(&c, "/containerLogs/default/nope/main").await;
        assert_eq!(code, 404);
        let (code, body) = kubelet_get(&c, "/healthz").await;
        assert_eq!((code, body.as_str()), (200, "ok"));

        // Exec: stdout, stderr and a non-zero exit code as the kubelet reports it; stdin with v5 close.
        wait_pod(&pods, "shell", "Running", 60, |p| phase(p) == "Running").await;
        let (out, err, st) =
            kubelet_exec(&c, "shell", "main", &["sh", "-c", "echo out; echo err >&2; exit 7"], None).await;
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(st["status"], "Failure");
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(st["details"]["causes"][0]["message"], "7");
        let (out, _, st) = kubelet_exec(&c, "shell", "main", &["cat"], Some("ping\n")).await;
        assert_eq!(out, "ping\n");
        assert_eq!(st["status"], "Success");

        // A client without a certificate from the cluster CA is refused at the TLS handshake.
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", c.kubelet_port)).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read_to_string(c.data_dir.join("tls/ca.crt")).unwrap();
        for cert in rustls_pemfile::certs(&mut ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let refused = async {
            let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect("127.0.0.1".try_into().unwrap(), tcp)
                .await?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await?;
            if n == 0 { Err(std::io::Error::other("closed")) } else { Ok(()) }
        };
        assert!(refused.await.is_err(), "a client without a certificate got an answer");

        for name in ["crash", "once", "shell", "missing", "sick", "slow"] {
            let _ = pods.delete(name, &DeleteParams::default()).await;
        }
        let _: BTreeMap<(), ()> = BTreeMap::new();
    });
}

#[test]
fn volumes_security_context_host_settings_and_adoption() {
    let e = env();
    let (node, bridge, image, dir) = (e.node.clone(), e.bridge.clone(), e.image.clone(), e.dir.clone());
    let host_dir = dir.join("hostpath");
    // A hostPath the pod's user may write to (Kubernetes creates DirectoryOrCreate paths 0755 root).
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::set_permissions(&host_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    in_netns(&e.ns, move || async move {
        let mut c = start_cluster(&node, &bridge, &dir).await;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.client.clone(), "default");
        let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "creds"}, "data": {"password": "czNjcmV0"}}))
                .unwrap(),
            )
            .await
            .unwrap();
        pvcs.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
        let script = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
            echo secret=$(cat /secret/password) mode=$(stat -c %a /secret/password) env=$PASSWORD; \
            touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro; \
            grep -q ' /cache tmpfs ' /proc/mounts && echo cache=tmpfs; \
            echo kept > /data/note; echo host > /host/file; echo sub > /sub/file; \
            grep -q 'foo.local' /etc/hosts && echo alias=ok; exec sleep 3600";
        let boxed = pod(json!({
            "metadata": {"name": "box"},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "hostAliases": [{"ip": "192.0.2.10", "hostnames": ["foo.local", "bar.local"]}],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
                "volumes": [
                    {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o440}},
                    {"name": "cache", "emptyDir": {"medium": "Memory"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "host", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}},
                    {"name": "scratch", "emptyDir": {}},
                ],
                "containers": [{
                    "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}],
                    "securityContext": {"readOnlyRootFilesystem": true},
                    "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                    "volumeMounts": [
                        {"name": "secret", "mountPath": "/secret", "readOnly": true},
                        {"name": "cache", "mountPath": "/cache"},
                        {"name": "data", "mountPath": "/data"},
                        {"name": "host", "mountPath": "/host"},
                        {"name": "scratch", "mountPath": "/sub", "subPath": "deeper/dir"},
                    ],
                }],
            },
        }));
        pods.create(&PostParams::default(), &boxed).await.unwrap();
        let hostnet = pod(json!({
            "metadata": {"name": "hostnet"},
            "spec": {"nodeName": node, "hostNetwork": true, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]},
        }));
        pods.create(&PostParams::default(), &hostnet).await.unwrap();

        let running = wait_pod(&pods, "box", "Ready", 90, |p| condition(p, "Ready")).await;
        let mut logs = String::new();
        for _ in 0..50 {
            logs = kubelet_get(&c, "/containerLogs/default/box/main").await.1;
            if logs.contains("alias=") || logs.lines().count() >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(logs.contains("uid=1000 gid=1000 groups=1000 2000"), "{logs}");
        assert!(logs.contains("secret=s3cret mode=440 env=s3cret"), "{logs}");
        assert!(logs.contains("rootfs=ro"), "{logs}");
        assert!(logs.contains("cache=tmpfs"), "{logs}");
        assert!(logs.contains("alias=ok"), "{logs}");
        let claim_dir = c.data_dir.join("agent/volumes/default/data");
        assert_eq!(std::fs::read_to_string(claim_dir.join("note")).unwrap(), "kept\n");
        assert_eq!(std::fs::read_to_string(host_dir.join("file")).unwrap(), "host\n");
        let sub = c
            .data_dir
            .join(format!("agent/pods/{}/volumes/scratch/deeper/dir/file", running.metadata.uid.clone().unwrap()));
        assert_eq!(std::fs::read_to_string(sub).unwrap(), "sub\n");
        let bound = pvcs.get("data").await.unwrap();
        assert_eq!(bound.status.unwrap().phase.as_deref(), Some("Bound"));
        let id = running.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].container_id.clone().unwrap();
        let (_, inspect) = sh(&format!(
            "docker inspect -f '{{{{.HostConfig.Memory}}}} {{{{.HostConfig.NanoCpus}}}}' {}",
            id.trim_start_matches("docker://")
        ));
        assert_eq!(inspect.trim(), "67108864 500000000");

        let hn = wait_pod(&pods, "hostnet", "Running", 60, |p| phase(p) == "Running").await;
        assert_eq!(hn.status.unwrap().pod_ip.as_deref(), Some("127.0.0.1"));

        // The agent restarts (as `flotilla server` does): it adopts the running pod, same container.
        c.agent.abort();
        let _ = (&mut c.agent).await;
        c.agent = spawn_agent(c.client.clone(), c.agent_config.clone());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = wait_pod(&pods, "box", "Ready", 60, |p| condition(p, "Ready")).await;
        let cs = after.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].clone();
        assert_eq!(cs.container_id.as_deref(), Some(id.as_str()), "the container was replaced");
        assert_eq!(cs.restart_count, 0);
        assert_eq!(after.status.unwrap().pod_ip, running.status.unwrap().pod_ip);
        // The adopted pod's volumes are still the ones its container sees.
        let (out, err, _) = kubelet_exec(&c, "box", "main", &["cat", "/secret/password"], None).await;
        assert_eq!(out, "s3cret", "{err}");

        // The claim's data outlives the pod; deleting the claim removes it.
        pods.delete("box", &DeleteParams::default()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while pods.get_opt("box").await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "pod box was not deleted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(claim_dir.join("note").exists(), "the claim's data went with the pod");
        pvcs.delete("data", &DeleteParams::default()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while claim_dir.exists() {
            assert!(Instant::now() < deadline, "the deleted claim's data is still there");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = pods.delete("hostnet", &DeleteParams::default()).await;
    });
}
