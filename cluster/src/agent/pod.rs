//! One worker per pod bound to this node: builds the sandbox (pause container with `--network none`, veth
//! and IP, /etc/hosts and resolv.conf, volumes), runs init containers in order and then the containers
//! joined to the pause container, restarts them with Kubernetes' back-off and restart policy, runs probes,
//! writes the pod status back, and on deletion stops everything gracefully and deletes the pod.
//!
//! Like the kubelet, the worker derives its view from the engine on every sync (containers are found by
//! labels), so an agent restart adopts the pods it left running.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptionsBuilder, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Ctx;
use super::env::{Sources, container_env, parse_cpu_nanos, parse_memory};
use super::expand::expand;
use super::network;
use super::pause::PAUSE_IMAGE;
use super::probes::{ProbeState, run_probe};
use super::volumes;

pub const LABEL_NODE: &str = "dev.flotilla.node";
pub const LABEL_UID: &str = "dev.flotilla.pod-uid";
pub const LABEL_NAMESPACE: &str = "dev.flotilla.pod-namespace";
pub const LABEL_POD: &str = "dev.flotilla.pod-name";
pub const LABEL_CONTAINER: &str = "dev.flotilla.container";
pub const LABEL_KIND: &str = "dev.flotilla.kind";
pub const LABEL_ATTEMPT: &str = "dev.flotilla.attempt";

const KIND_PAUSE: &str = "pause";
const KIND_INIT: &str = "init";
const KIND_APP: &str = "app";

/// How often a worker re-syncs its pod without being told.
const SYNC_PERIOD: Duration = Duration::from_secs(1);

fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Docker's RFC 3339 nanosecond time as Kubernetes' whole-second form.
fn k8s_time(docker: &str) -> Option<String> {
    let ts: jiff::Timestamp = docker.parse().ok()?;
    if ts.as_second() <= 0 {
        return None;
    }
    Some(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// One container of the pod as the engine reports it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub attempt: i32,
    pub running: bool,
    pub exit_code: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub oom_killed: bool,
    pub error: String,
    pub image_id: String,
}

/// Lists the containers of pod `uid` (newest attempt last per name).
pub async fn observe(ctx: &Ctx, uid: &str) -> Result<Vec<Observed>, bollard::errors::Error> {
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{LABEL_UID}={uid}"), format!("{LABEL_NODE}={}", ctx.config.node_name)],
    );
    let list = ctx
        .docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await?;
    let mut out = Vec::new();
    for summary in list {
        let Some(id) = summary.id else { continue };
        let labels = summary.labels.unwrap_or_default();
        let Ok(info) = ctx.docker.inspect_container(&id, None).await else { continue };
        let state = info.state.unwrap_or_default();
        out.push(Observed {
            id,
            kind: labels.get(LABEL_KIND).cloned().unwrap_or_default(),
            name: labels.get(LABEL_CONTAINER).cloned().unwrap_or_default(),
            attempt: labels.get(LABEL_ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0),
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code.unwrap_or(0),
            started_at: state.started_at.as_deref().and_then(k8s_time),
            finished_at: state.finished_at.as_deref().and_then(k8s_time),
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.unwrap_or_default(),
            image_id: info.image.unwrap_or_default(),
        });
    }
    out.sort_by_key(|o| o.attempt);
    Ok(out)
}

/// This node's containers of `namespace/pod` that also carry `label` (`key=value`); stopped ones too when
/// `all`.
async fn pod_containers(
    ctx: &Ctx,
    namespace: &str,
    pod: &str,
    label: String,
    all: bool,
) -> Option<Vec<bollard::models::ContainerSummary>> {
    let labels = vec![
        format!("{LABEL_NODE}={}", ctx.config.node_name),
        format!("{LABEL_NAMESPACE}={namespace}"),
        format!("{LABEL_POD}={pod}"),
        label,
    ];
    let filters = HashMap::from([("label".to_string(), labels)]);
    let options = ListContainersOptions { all, filters: Some(filters), ..Default::default() };
    ctx.docker.list_containers(Some(options)).await.ok()
}

/// Finds the container of `namespace/pod/container` on this node: the newest attempt, or the one before it
/// when `previous`.
pub async fn find_container(ctx: &Ctx, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<String> {
    let list = pod_containers(ctx, namespace, pod, format!("{LABEL_CONTAINER}={container}"), true).await?;
    let mut found: Vec<(i32, String)> = list
        .into_iter()
        .filter(|s| s.labels.as_ref().and_then(|l| l.get(LABEL_KIND)).is_some_and(|k| k != KIND_PAUSE))
        .filter_map(|s| {
            let attempt = s.labels.as_ref()?.get(LABEL_ATTEMPT)?.parse().ok()?;
            Some((attempt, s.id?))
        })
        .collect();
    found.sort();
    let idx = if previous { found.len().checked_sub(2)? } else { found.len().checked_sub(1)? };
    Some(found[idx].1.clone())
}

/// The pid of the pod's running sandbox (pause) process on this node, whose network namespace is the pod's.
pub async fn sandbox_pid(ctx: &Ctx, namespace: &str, pod: &str) -> Option<i64> {
    let list = pod_containers(ctx, namespace, pod, format!("{LABEL_KIND}={KIND_PAUSE}"), false).await?;
    let id = list.into_iter().find_map(|s| s.id)?;
    let info = ctx.docker.inspect_container(&id, None).await.ok()?;
    info.state.and_then(|s| s.pid).filter(|p| *p > 0)
}

/// What the worker remembers about one container between syncs.
#[derive(Debug, Default)]
struct CtrState {
    /// Earliest time of the next start (back-off).
    next_start: Option<Instant>,
    /// Current back-off step (zero before the first restart).
    backoff: Duration,
    /// The exited container whose exit was already accounted for.
    handled_exit: String,
    /// Why the container is not running (reason, message), when it is not.
    waiting: Option<(String, String)>,
    /// Container id and when it was first seen running (probe delays count from there).
    running_since: Option<(String, Instant)>,
    startup: ProbeState,
    liveness: ProbeState,
    readiness: ProbeState,
    /// Last event reason posted, to post each failure once.
    last_event: String,
}

pub struct PodWorker {
    ctx: Arc<Ctx>,
    uid: String,
    namespace: String,
    name: String,
    pod_dir: PathBuf,
    pause_id: Option<String>,
    pod_ip: Option<String>,
    volumes: Option<HashMap<String, PathBuf>>,
    sandbox_error: Option<(String, String)>,
    ctrs: HashMap<String, CtrState>,
    start_time: String,
    transitions: HashMap<String, (String, String)>,
    last_status: Option<Value>,
    terminal: bool,
}

/// Runs the worker of one pod until the pod is gone. `rx` carries the newest pod object, or None when the
/// API no longer has it.
pub async fn run_worker(ctx: Arc<Ctx>, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
    let Some(first) = rx.borrow().clone() else { return };
    let uid = first.metadata.uid.clone().unwrap_or_default();
    let mut worker = PodWorker {
        pod_dir: ctx.agent_dir.join("pods").join(&uid),
        ctx,
        namespace: first.metadata.namespace.clone().unwrap_or_default(),
        name: first.metadata.name.clone().unwrap_or_default(),
        uid,
        pause_id: None,
        pod_ip: None,
        volumes: None,
        sandbox_error: None,
        ctrs: HashMap::new(),
        start_time: first
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(now_rfc3339),
        transitions: HashMap::new(),
        last_status: None,
        terminal: false,
    };
    let mut images = worker.ctx.images_loaded.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        match current {
            None => {
                worker.stop_all(0).await;
                worker.teardown().await;
                return;
            }
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
                    .unwrap_or(30);
                worker.stop_all(grace).await;
                worker.teardown().await;
                let api: Api<Pod> = Api::namespaced(worker.ctx.client.clone(), &worker.namespace);
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(worker.uid.clone()), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&worker.name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        tracing::warn!(pod = %worker.name, error = %e, "cannot delete the pod; retrying");
                        tokio::time::sleep(SYNC_PERIOD).await;
                        continue;
                    }
                }
                // Wait for the API's delete event (bounded: the pod is gone for us either way).
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while rx.changed().await.is_ok() {
                        if rx.borrow().is_none() {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
            Some(pod) => {
                if let Err(e) = worker.sync(&pod).await {
                    tracing::warn!(pod = %worker.name, namespace = %worker.namespace, error = %e, "pod sync failed");
                }
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = images.changed() => worker.retry_image_waits(),
            _ = tokio::time::sleep(SYNC_PERIOD) => {}
        }
    }
}

type SyncError = Box<dyn std::error::Error + Send + Sync>;

impl PodWorker {
    /// An image arrived on the node: containers that were waiting for one start at the next sync, not
    /// after their back-off.
    fn retry_image_waits(&mut self) {
        for st in self.ctrs.values_mut() {
            if st
                .waiting
                .as_ref()
                .is_some_and(|(reason, _)| reason.starts_with("ErrImage") || reason == "ImagePullBackOff")
            {
                st.next_start = None;
            }
        }
    }

    fn host_network(pod: &Pod) -> bool {
        pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
    }

    fn labels(&self, kind: &str, container: &str, attempt: i32) -> HashMap<String, String> {
        [
            (LABEL_NODE, self.ctx.config.node_name.clone()),
            (LABEL_UID, self.uid.clone()),
            (LABEL_NAMESPACE, self.namespace.clone()),
            (LABEL_POD, self.name.clone()),
            (LABEL_CONTAINER, container.to_string()),
            (LABEL_KIND, kind.to_string()),
            (LABEL_ATTEMPT, attempt.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn docker_name(&self, container: &str, attempt: i32) -> String {
        let short: String = self.uid.chars().filter(|c| *c != '-').take(8).collect();
        format!("flt_{}_{}_{}_{}_{short}_{attempt}", self.ctx.config.node_name, self.namespace, self.name, container)
    }

    async fn post_event(&self, kind: &str, reason: &str, message: &str, field_path: Option<&str>) {
        self.event_poster()(kind, reason, message.to_string(), field_path.map(str::to_string)).await;
    }

    /// Posts routine events (Pulled, Created, Started, Killing) in the background, in order, so that
    /// starting and stopping containers never waits for the API server.
    fn post_events_later(&self, events: Vec<(&'static str, &'static str, String, String)>) {
        let post = self.event_poster();
        tokio::spawn(async move {
            for (kind, reason, message, field_path) in events {
                post(kind, reason, message, Some(field_path)).await;
            }
        });
    }

    /// A function that records an event about this pod, as the kubelet does (component `kubelet`).
    fn event_poster(
        &self,
    ) -> impl Fn(&str, &str, String, Option<String>) -> futures::future::BoxFuture<'static, ()> + Send + 'static {
        let client = self.ctx.client.clone();
        let (namespace, name, uid) = (self.namespace.clone(), self.name.clone(), self.uid.clone());
        let node = self.ctx.config.node_name.clone();
        move |kind, reason, message, field_path| {
            let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
            let now = now_rfc3339();
            let mut involved =
                json!({"kind": "Pod", "apiVersion": "v1", "namespace": namespace, "name": name, "uid": uid});
            if let Some(fp) = field_path {
                involved["fieldPath"] = json!(fp);
            }
            let ev: Result<Event, _> = serde_json::from_value(json!({
                "metadata": {"generateName": format!("{name}."), "namespace": namespace},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": "kubelet", "host": node},
                "reportingComponent": "kubelet",
                "reportingInstance": node,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }));
            Box::pin(async move {
                if let Ok(ev) = ev {
                    let _ = events.create(&PostParams::default(), &ev).await;
                }
            })
        }
    }

    /// Pause container, network, pod files, volumes.
    async fn ensure_sandbox(&mut self, pod: &Pod, observed: &[Observed]) -> Result<(), (String, String)> {
        let host_network = Self::host_network(pod);
        if self.pause_id.is_none() && !host_network {
            let pause = observed.iter().rev().find(|o| o.kind == KIND_PAUSE);
            let ip = self.ctx.ipam.lock().expect("ipam lock").lookup(&self.uid);
            match (pause, ip) {
                // Adopt a running sandbox from an earlier agent run.
                (Some(p), Some(ip)) if p.running => {
                    self.pause_id = Some(p.id.clone());
                    self.pod_ip = Some(ip.to_string());
                }
                _ => {
                    // A dead sandbox takes every container of the pod with it (as the kubelet does).
                    for o in observed {
                        self.remove_container(&o.id).await;
                    }
                    self.create_sandbox(pod).await.map_err(|e| ("ContainerCreating".to_string(), e.to_string()))?;
                }
            }
        }
        if host_network && self.pod_ip.is_none() {
            self.pod_ip = Some(self.ctx.config.node_ip.to_string());
        }
        if self.volumes.is_none() {
            std::fs::create_dir_all(&self.pod_dir).map_err(|e| ("ContainerCreating".into(), e.to_string()))?;
            self.write_pod_files(pod).map_err(|e| ("ContainerCreating".into(), e.to_string()))?;
            let mut sources = Sources::new(&self.ctx.client, &self.namespace);
            let vols = volumes::prepare(
                &self.ctx.client,
                &mut sources,
                pod,
                &self.pod_dir,
                &self.ctx.agent_dir,
                self.pod_ip.as_deref().unwrap_or(""),
                &self.ctx.config.node_ip.to_string(),
            )
            .await
            .map_err(|e| ("ContainerCreating".to_string(), e.to_string()))?;
            self.volumes = Some(vols);
        }
        Ok(())
    }

    async fn create_sandbox(&mut self, pod: &Pod) -> Result<(), SyncError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let hostname: String = spec.hostname.clone().unwrap_or_else(|| self.name.clone()).chars().take(63).collect();
        let body = ContainerCreateBody {
            image: Some(PAUSE_IMAGE.to_string()),
            hostname: Some(hostname),
            labels: Some(self.labels(KIND_PAUSE, "POD", 0)),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ipc_mode: Some("shareable".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = self.docker_name("POD", 0);
        // A leftover with the same name (crashed agent) would make the create fail.
        self.remove_container(&name).await;
        let created = self
            .ctx
            .docker
            .create_container(Some(CreateContainerOptions { name: Some(name), ..Default::default() }), body)
            .await?;
        self.ctx.docker.start_container(&created.id, None).await?;
        let info = self.ctx.docker.inspect_container(&created.id, None).await?;
        let pid = info.state.and_then(|s| s.pid).filter(|p| *p > 0).ok_or("pause container has no pid")?;
        let ip: Ipv4Addr = self.ctx.ipam.lock().expect("ipam lock").allocate(&self.uid)?;
        network::attach_pod(&self.ctx.config.bridge_name, &self.uid, pid, ip, self.ctx.cidr).await?;
        self.pause_id = Some(created.id);
        self.pod_ip = Some(ip.to_string());
        Ok(())
    }

    /// `/etc/hosts` (with hostAliases) and `/etc/resolv.conf` of the pod, bind-mounted into each container.
    fn write_pod_files(&self, pod: &Pod) -> std::io::Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let domain = &self.ctx.config.cluster_domain;
        let hostname = spec.hostname.clone().unwrap_or_else(|| self.name.clone());
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        if let Some(ip) = &self.pod_ip {
            match &spec.subdomain {
                Some(sub) if !sub.is_empty() => {
                    hosts.push_str(&format!("{ip}\t{hostname}.{sub}.{}.svc.{domain}\t{hostname}\n", self.namespace))
                }
                _ => hosts.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        if let Some(aliases) = &spec.host_aliases {
            hosts.push_str("\n# Entries added by HostAliases.\n");
            for a in aliases {
                let names = a.hostnames.clone().unwrap_or_default().join("\t");
                hosts.push_str(&format!("{}\t{names}\n", a.ip));
            }
        }
        std::fs::write(self.pod_dir.join("etc-hosts"), hosts)?;

        let host_network = Self::host_network(pod);
        let policy = spec.dns_policy.clone().unwrap_or_else(|| "ClusterFirst".into());
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (mut nameservers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
            match (policy.as_str(), host_network) {
                ("ClusterFirst", false) | ("ClusterFirstWithHostNet", _) => (
                    vec![self.ctx.cidr.gateway().to_string()],
                    vec![format!("{}.svc.{domain}", self.namespace), format!("svc.{domain}"), domain.clone()],
                    vec!["ndots:5".into()],
                ),
                ("None", _) => (vec![], vec![], vec![]),
                _ => {
                    let mut ns = vec![];
                    let mut se = vec![];
                    let mut op = vec![];
                    for line in host_resolv.lines() {
                        let mut parts = line.split_whitespace();
                        match parts.next() {
                            Some("nameserver") => ns.extend(parts.map(String::from)),
                            Some("search") | Some("domain") => se.extend(parts.map(String::from)),
                            Some("options") => op.extend(parts.map(String::from)),
                            _ => {}
                        }
                    }
                    (ns, se, op)
                }
            };
        if let Some(cfg) = &spec.dns_config {
            nameservers.extend(cfg.nameservers.clone().unwrap_or_default());
            searches.extend(cfg.searches.clone().unwrap_or_default());
            for o in cfg.options.clone().unwrap_or_default() {
                let text = match o.value {
                    Some(v) => format!("{}:{v}", o.name.unwrap_or_default()),
                    None => o.name.unwrap_or_default(),
                };
                let key = text.split(':').next().unwrap_or("").to_string();
                options.retain(|x| x.split(':').next() != Some(key.as_str()));
                options.push(text);
            }
        }
        let mut resolv = String::new();
        if !searches.is_empty() {
            resolv.push_str(&format!("search {}\n", searches.join(" ")));
        }
        for ns in nameservers.iter().take(3) {
            resolv.push_str(&format!("nameserver {ns}\n"));
        }
        if !options.is_empty() {
            resolv.push_str(&format!("options {}\n", options.join(" ")));
        }
        std::fs::write(self.pod_dir.join("resolv.conf"), resolv)
    }

    async fn remove_container(&self, id: &str) {
        let _ = self
            .ctx
            .docker
            .remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }))
            .await;
    }

    /// Checks the image against the pull policy; pulls when allowed. Err: (waiting reason, message).
    async fn ensure_image(&self, c: &Container) -> Result<(), (String, String)> {
        let image = c.image.clone().unwrap_or_default();
        let present = self.ctx.docker.inspect_image(&image).await.is_ok();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tag_latest = !image.contains('@')
                && image.rsplit('/').next().is_some_and(|last| !last.contains(':') || last.ends_with(":latest"));
            if tag_latest { "Always".into() } else { "IfNotPresent".into() }
        });
        match policy.as_str() {
            "Never" if !present => Err((
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            )),
            "Never" => Ok(()),
            "IfNotPresent" if present => Ok(()),
            _ => {
                // Without a registry a pull may hang (the name does not resolve); the image may meanwhile
                // arrive from the server's image feed, which ends the wait.
                let mut loads = self.ctx.images_loaded.subscribe();
                // A load that finished just before subscribing counts too: look once at the start.
                loads.mark_changed();
                let docker = &self.ctx.docker;
                let arrived = async {
                    while loads.changed().await.is_ok() {
                        if docker.inspect_image(&image).await.is_ok() {
                            return;
                        }
                    }
                    std::future::pending::<()>().await
                };
                let pulled = tokio::select! {
                    pulled = self.pull(&image) => pulled,
                    () = arrived => Ok(()),
                };
                match pulled {
                    Ok(()) => Ok(()),
                    // `Always` with no registry reachable: a locally built image is still the image asked
                    // for (compose projects build theirs), so run it rather than fail.
                    Err(_) if present => Ok(()),
                    Err(e) => Err(("ErrImagePull".into(), format!("failed to pull image \"{image}\": {e}"))),
                }
            }
        }
    }

    async fn pull(&self, image: &str) -> Result<(), String> {
        let (repo, tag) = match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (image.to_string(), "latest".to_string()),
        };
        let options = CreateImageOptionsBuilder::default().from_image(&repo).tag(&tag).build();
        let work = async {
            let mut stream = self.ctx.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(Duration::from_secs(60), work).await.map_err(|_| "pull timed out".to_string())?
    }

    /// Creates and starts one container. Err: (waiting reason, message).
    async fn start(&self, pod: &Pod, c: &Container, kind: &str, attempt: i32) -> Result<String, (String, String)> {
        self.ensure_image(c).await?;
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = self.pod_ip.clone().unwrap_or_default();
        let mut sources = Sources::new(&self.ctx.client, &self.namespace);
        let env = container_env(&mut sources, pod, c, &pod_ip, &self.ctx.config.node_ip.to_string())
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
        let env_map: HashMap<String, String> = env.iter().cloned().collect();
        let command = c.command.as_ref().map(|v| v.iter().map(|s| expand(s, &[&env_map])).collect::<Vec<_>>());
        let args = c.args.as_ref().map(|v| v.iter().map(|s| expand(s, &[&env_map])).collect::<Vec<_>>());
        let vols = self.volumes.clone().unwrap_or_default();
        let mut binds =
            volumes::binds(c, &vols).map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
        let host_network = Self::host_network(pod);
        let mounts_path = |p: &str| c.volume_mounts.iter().flatten().any(|m| m.mount_path == p);
        if !host_network {
            if !mounts_path("/etc/hosts") {
                binds.push(format!("{}:/etc/hosts", self.pod_dir.join("etc-hosts").display()));
            }
            if !mounts_path("/etc/resolv.conf") {
                binds.push(format!("{}:/etc/resolv.conf", self.pod_dir.join("resolv.conf").display()));
            }
        } else if spec.dns_policy.as_deref() == Some("ClusterFirstWithHostNet") && !mounts_path("/etc/resolv.conf") {
            binds.push(format!("{}:/etc/resolv.conf", self.pod_dir.join("resolv.conf").display()));
        }
        let csc = c.security_context.clone().unwrap_or_default();
        let psc = spec.security_context.clone().unwrap_or_default();
        let uid = csc.run_as_user.or(psc.run_as_user);
        let gid = csc.run_as_group.or(psc.run_as_group);
        let user = match (uid, gid) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            (None, Some(g)) => Some(format!("0:{g}")),
            (None, None) => None,
        };
        let caps = csc.capabilities.clone().unwrap_or_default();
        let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
        let memory = limits.get("memory").and_then(|q| parse_memory(&q.0));
        let nano_cpus = limits.get("cpu").and_then(|q| parse_cpu_nanos(&q.0));
        let network_mode = if host_network {
            "host".to_string()
        } else {
            format!("container:{}", self.pause_id.clone().unwrap_or_default())
        };
        let ipc_mode =
            if host_network { None } else { Some(format!("container:{}", self.pause_id.clone().unwrap_or_default())) };
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        let mut groups: Vec<String> =
            psc.supplemental_groups.clone().unwrap_or_default().iter().map(|x| x.to_string()).collect();
        if let Some(fs_group) = psc.fs_group {
            groups.push(fs_group.to_string());
        }
        let supplemental = (!groups.is_empty()).then_some(groups);
        let body = ContainerCreateBody {
            image: c.image.clone(),
            entrypoint: command,
            cmd: args,
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: c.working_dir.clone(),
            user,
            tty: c.tty,
            open_stdin: c.stdin,
            stdin_once: c.stdin_once,
            attach_stdin: c.stdin,
            labels: Some(self.labels(kind, &c.name, attempt)),
            stop_timeout: Some(grace),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode),
                ipc_mode,
                binds: Some(binds),
                privileged: csc.privileged,
                cap_add: caps.add.clone(),
                cap_drop: caps.drop.clone(),
                readonly_rootfs: csc.read_only_root_filesystem,
                memory,
                nano_cpus,
                group_add: supplemental,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = self.docker_name(&c.name, attempt);
        self.remove_container(&name).await;
        let created = self
            .ctx
            .docker
            .create_container(Some(CreateContainerOptions { name: Some(name), ..Default::default() }), body)
            .await
            .map_err(|e| ("CreateContainerError".to_string(), docker_message(&e)))?;
        if let Err(e) = self.ctx.docker.start_container(&created.id, None).await {
            self.remove_container(&created.id).await;
            return Err(("RunContainerError".to_string(), docker_message(&e)));
        }
        Ok(created.id)
    }

    /// Stops every running container of the pod (app containers with `grace` seconds, SIGTERM then SIGKILL).
    async fn stop_all(&mut self, grace: i64) {
        let Ok(observed) = observe(&self.ctx, &self.uid).await else { return };
        let killing = observed
            .iter()
            .filter(|o| o.running && o.kind == KIND_APP)
            .map(|o| {
                let field_path = format!("spec.containers{{{}}}", o.name);
                ("Normal", "Killing", format!("Stopping container {}", o.name), field_path)
            })
            .collect();
        self.post_events_later(killing);
        let stops = observed.iter().filter(|o| o.running && o.kind != KIND_PAUSE).map(|o| {
            let docker = self.ctx.docker.clone();
            let id = o.id.clone();
            async move {
                let opts = StopContainerOptions { t: Some(grace.clamp(0, i32::MAX as i64) as i32), signal: None };
                let _ = docker.stop_container(&id, Some(opts)).await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// Removes the pod's containers, network and files.
    async fn teardown(&mut self) {
        if let Ok(observed) = observe(&self.ctx, &self.uid).await {
            for o in observed {
                self.remove_container(&o.id).await;
            }
        }
        let ip = self.ctx.ipam.lock().expect("ipam lock").lookup(&self.uid);
        network::detach_pod(&self.ctx.config.bridge_name, &self.uid, ip).await;
        if let Err(e) = self.ctx.ipam.lock().expect("ipam lock").release(&self.uid) {
            tracing::warn!(pod = %self.name, error = %e, "cannot release the pod's address");
        }
        volumes::cleanup(&self.pod_dir).await;
        self.pause_id = None;
    }

    /// Tears down the sandbox of a finished pod (its containers stay for logs; its address is freed).
    async fn release_sandbox(&mut self, observed: &[Observed]) {
        for o in observed.iter().filter(|o| o.kind == KIND_PAUSE) {
            self.remove_container(&o.id).await;
        }
        let ip = self.ctx.ipam.lock().expect("ipam lock").lookup(&self.uid);
        network::detach_pod(&self.ctx.config.bridge_name, &self.uid, ip).await;
        let _ = self.ctx.ipam.lock().expect("ipam lock").release(&self.uid);
        self.pause_id = None;
    }

    /// Whether an exited container must be restarted.
    fn should_restart(policy: &str, exit_code: i64) -> bool {
        match policy {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => true,
        }
    }

    /// Handles an exited container: accounts for it once, computes the back-off; returns whether a new
    /// attempt may start now.
    fn restart_due(&mut self, key: &str, o: &Observed, restart: bool, pod_name: &str) -> bool {
        let base = self.ctx.config.backoff_base;
        let max = self.ctx.config.backoff_max;
        let st = self.ctrs.entry(key.to_string()).or_default();
        let now = Instant::now();
        if st.handled_exit != o.id {
            st.handled_exit = o.id.clone();
            st.running_since = None;
            if restart {
                // Kubernetes restarts the first crash at once, then waits 10 s, 20 s, ... up to 5 min; a
                // container that ran for longer than twice the cap starts the sequence again.
                let ran = match (&o.started_at, &o.finished_at) {
                    (Some(s), Some(f)) => match (s.parse::<jiff::Timestamp>(), f.parse::<jiff::Timestamp>()) {
                        (Ok(s), Ok(f)) => f.duration_since(s).as_secs().max(0) as u64,
                        _ => 0,
                    },
                    _ => 0,
                };
                if ran > 2 * max.as_secs() {
                    st.backoff = Duration::ZERO;
                }
                let delay = st.backoff;
                st.next_start = Some(now + delay);
                st.backoff = if delay.is_zero() { base } else { (delay * 2).min(max) };
                if !delay.is_zero() {
                    st.waiting = Some((
                        "CrashLoopBackOff".into(),
                        format!("back-off {}s restarting failed container={} pod={pod_name}", delay.as_secs(), o.name),
                    ));
                }
            }
        }
        restart && st.next_start.is_none_or(|t| now >= t)
    }

    /// One reconciliation pass.
    async fn sync(&mut self, pod: &Pod) -> Result<(), SyncError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let mut observed = observe(&self.ctx, &self.uid).await?;

        if self.terminal {
            return self.write_status(pod, &observed, true).await;
        }

        // The sandbox: a pause container that died takes the pod's containers with it.
        if let Some(pause) = &self.pause_id
            && !observed.iter().any(|o| &o.id == pause && o.running)
        {
            tracing::warn!(pod = %self.name, "sandbox died; recreating the pod's containers");
            self.pause_id = None;
            self.volumes = None;
            network::detach_pod(&self.ctx.config.bridge_name, &self.uid, None).await;
        }
        match self.ensure_sandbox(pod, &observed).await {
            Ok(()) => self.sandbox_error = None,
            Err(e) => {
                if self.sandbox_error.as_ref() != Some(&e) {
                    self.post_event("Warning", "FailedCreatePodSandBox", &e.1, None).await;
                }
                self.sandbox_error = Some(e);
                return self.write_status(pod, &observed, false).await;
            }
        }
        observed = observe(&self.ctx, &self.uid).await?;
        let latest = |kind: &str, name: &str, obs: &[Observed]| -> Option<Observed> {
            obs.iter().rev().find(|o| o.kind == kind && o.name == name).cloned()
        };

        // Init containers, in order; skipped when app containers already exist (adopted pod).
        let apps_exist = observed.iter().any(|o| o.kind == KIND_APP);
        let mut init_done = true;
        if !apps_exist {
            for c in spec.init_containers.iter().flatten() {
                let key = format!("init/{}", c.name);
                match latest(KIND_INIT, &c.name, &observed) {
                    Some(o) if !o.running && o.exit_code == 0 && o.finished_at.is_some() => continue,
                    Some(o) if o.running => {
                        self.ctrs.entry(key).or_default().waiting = None;
                        init_done = false;
                        break;
                    }
                    Some(o) => {
                        init_done = false;
                        let restart = policy != "Never";
                        if self.restart_due(&key, &o, restart, &self.name.clone()) {
                            self.start_and_record(pod, c, KIND_INIT, o.attempt + 1, &key).await;
                        }
                        break;
                    }
                    None => {
                        init_done = false;
                        let due = self.ctrs.get(&key).and_then(|s| s.next_start).is_none_or(|t| Instant::now() >= t);
                        if due {
                            self.start_and_record(pod, c, KIND_INIT, 0, &key).await;
                        }
                        break;
                    }
                }
            }
        }

        if init_done {
            for c in &spec.containers {
                let key = format!("app/{}", c.name);
                match latest(KIND_APP, &c.name, &observed) {
                    Some(o) if o.running => {
                        let st = self.ctrs.entry(key.clone()).or_default();
                        st.waiting = None;
                        if st.running_since.as_ref().is_none_or(|(id, _)| id != &o.id) {
                            st.running_since = Some((o.id.clone(), Instant::now()));
                        }
                        self.run_probes(pod, c, &o, &key).await;
                    }
                    Some(o) => {
                        let restart = Self::should_restart(&policy, o.exit_code);
                        if self.restart_due(&key, &o, restart, &self.name.clone()) {
                            // Start the new instance before pruning, so `logs --previous` always finds the
                            // one before the newest; keep only that one.
                            self.start_and_record(pod, c, KIND_APP, o.attempt + 1, &key).await;
                            for old in observed
                                .iter()
                                .filter(|x| x.kind == KIND_APP && x.name == c.name && x.attempt < o.attempt)
                            {
                                self.remove_container(&old.id).await;
                            }
                        }
                    }
                    None => {
                        let due = self.ctrs.get(&key).and_then(|s| s.next_start).is_none_or(|t| Instant::now() >= t);
                        if due {
                            self.start_and_record(pod, c, KIND_APP, 0, &key).await;
                        }
                    }
                }
            }
        }
        observed = observe(&self.ctx, &self.uid).await?;
        self.write_status(pod, &observed, false).await
    }

    async fn start_and_record(&mut self, pod: &Pod, c: &Container, kind: &str, attempt: i32, key: &str) {
        let result = self.start(pod, c, kind, attempt).await;
        let base = self.ctx.config.backoff_base;
        let max = self.ctx.config.backoff_max;
        let field_path =
            format!("spec.{}{{{}}}", if kind == KIND_INIT { "initContainers" } else { "containers" }, c.name);
        let event = {
            let st = self.ctrs.entry(key.to_string()).or_default();
            match result {
                Ok(_) => {
                    st.waiting = None;
                    st.next_start = None;
                    st.last_event.clear();
                    let image = c.image.clone().unwrap_or_default();
                    self.post_events_later(vec![
                        (
                            "Normal",
                            "Pulled",
                            format!("Container image \"{image}\" already present on machine"),
                            field_path.clone(),
                        ),
                        ("Normal", "Created", format!("Created container: {}", c.name), field_path.clone()),
                        ("Normal", "Started", format!("Started container {}", c.name), field_path.clone()),
                    ]);
                    None
                }
                Err((reason, message)) => {
                    // Failures to start back off like crashes.
                    let delay = if st.backoff.is_zero() { base } else { st.backoff };
                    st.next_start = Some(Instant::now() + delay);
                    st.backoff = (delay * 2).min(max);
                    st.waiting = Some((reason.clone(), message.clone()));
                    if st.last_event != reason {
                        st.last_event = reason.clone();
                        Some((reason, message))
                    } else {
                        None
                    }
                }
            }
        };
        if let Some((reason, message)) = event {
            tracing::warn!(pod = %self.name, container = %c.name, %reason, %message, "container start failed");
            let _ = reason;
            self.post_event("Warning", "Failed", &message, Some(&field_path)).await;
        }
    }

    async fn run_probes(&mut self, pod: &Pod, c: &Container, o: &Observed, key: &str) {
        let now = Instant::now();
        let pod_ip = self.pod_ip.clone().unwrap_or_default();
        let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
        let docker = self.ctx.docker.clone();
        let Some(st) = self.ctrs.get_mut(key) else { return };
        let since = st.running_since.as_ref().map(|(_, t)| *t).unwrap_or(now);
        st.startup.for_container(&o.id);
        st.liveness.for_container(&o.id);
        st.readiness.for_container(&o.id);
        let mut kill: Option<String> = None;
        let mut unhealthy: Option<String> = None;
        if let Some(p) = &c.startup_probe
            && st.startup.result != Some(true)
        {
            if st.startup.due(p, since, now) {
                let (ok, msg) = run_probe(&docker, &o.id, c, p, &pod_ip).await;
                st.startup.record(p, ok, msg.clone(), now);
                if !ok {
                    unhealthy = Some(format!("Startup probe failed: {msg}"));
                }
                if st.startup.result == Some(false) {
                    kill = Some("failed startup probe, will be restarted".into());
                }
            }
        } else {
            if let Some(p) = &c.liveness_probe
                && st.liveness.due(p, since, now)
            {
                let (ok, msg) = run_probe(&docker, &o.id, c, p, &pod_ip).await;
                st.liveness.record(p, ok, msg.clone(), now);
                if !ok {
                    unhealthy = Some(format!("Liveness probe failed: {msg}"));
                }
                if st.liveness.result == Some(false) {
                    kill = Some("failed liveness probe, will be restarted".into());
                }
            }
            if let Some(p) = &c.readiness_probe
                && st.readiness.due(p, since, now)
            {
                let (ok, msg) = run_probe(&docker, &o.id, c, p, &pod_ip).await;
                st.readiness.record(p, ok, msg.clone(), now);
                if !ok {
                    unhealthy = Some(format!("Readiness probe failed: {msg}"));
                }
            }
        }
        let field_path = format!("spec.containers{{{}}}", c.name);
        if let Some(msg) = unhealthy {
            self.post_event("Warning", "Unhealthy", &msg, Some(&field_path)).await;
        }
        if let Some(why) = kill {
            self.post_event("Normal", "Killing", &format!("Container {} {why}", c.name), Some(&field_path)).await;
            let opts = StopContainerOptions { t: Some(grace.clamp(0, i32::MAX as i64) as i32), signal: None };
            let _ = docker.stop_container(&o.id, Some(opts)).await;
        }
    }

    fn terminated_json(o: &Observed) -> Value {
        let reason = if o.oom_killed {
            "OOMKilled"
        } else if o.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let mut t = json!({
            "exitCode": o.exit_code,
            "reason": reason,
            "containerID": format!("docker://{}", o.id),
        });
        if let Some(s) = &o.started_at {
            t["startedAt"] = json!(s);
        }
        if let Some(f) = &o.finished_at {
            t["finishedAt"] = json!(f);
        }
        if !o.error.is_empty() {
            t["message"] = json!(o.error);
        }
        json!({"terminated": t})
    }

    /// Computes the pod status from the observed containers and writes it when it changed.
    async fn write_status(&mut self, pod: &Pod, observed: &[Observed], _terminal: bool) -> Result<(), SyncError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let find = |kind: &str, name: &str| -> (Option<&Observed>, Option<&Observed>) {
            let mut it = observed.iter().rev().filter(|o| o.kind == kind && o.name == name);
            (it.next(), it.next())
        };
        let default_waiting = "ContainerCreating";
        let apps_exist = observed.iter().any(|o| o.kind == KIND_APP);

        // Init containers.
        let mut init_statuses = Vec::new();
        let mut init_done = true;
        let mut init_failed = false;
        for c in spec.init_containers.iter().flatten() {
            let key = format!("init/{}", c.name);
            let st = self.ctrs.get(&key);
            let (cur, prev) = find(KIND_INIT, &c.name);
            let (state, ready) = match cur {
                Some(o) if o.running => {
                    init_done = false;
                    (json!({"running": {"startedAt": o.started_at}}), false)
                }
                Some(o) if o.exit_code == 0 && o.finished_at.is_some() => (Self::terminated_json(o), true),
                Some(o) => {
                    init_done = false;
                    if policy == "Never" {
                        init_failed = true;
                        (Self::terminated_json(o), false)
                    } else if let Some((r, m)) = st.and_then(|s| s.waiting.clone()) {
                        (json!({"waiting": {"reason": r, "message": m}}), false)
                    } else {
                        (Self::terminated_json(o), false)
                    }
                }
                None if apps_exist => (json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), true),
                None => {
                    init_done = false;
                    let (r, m) =
                        st.and_then(|s| s.waiting.clone()).unwrap_or_else(|| ("PodInitializing".into(), String::new()));
                    (json!({"waiting": {"reason": r, "message": m}}), false)
                }
            };
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": cur.map(|o| format!("docker://{}", o.image_id)).unwrap_or_default(),
                "ready": ready,
                "started": cur.is_some_and(|o| o.running),
                "restartCount": cur.map(|o| o.attempt).unwrap_or(0),
                "state": state,
                "lastState": prev.map(Self::terminated_json).unwrap_or_else(|| json!({})),
            });
            if let Some(o) = cur {
                s["containerID"] = json!(format!("docker://{}", o.id));
            }
            init_statuses.push(s);
        }

        // App containers.
        let mut statuses = Vec::new();
        let (mut running, mut waiting, mut succeeded, mut failed, mut restarting) = (0, 0, 0, 0, 0);
        let mut all_ready = true;
        for c in &spec.containers {
            let key = format!("app/{}", c.name);
            let st = self.ctrs.get(&key);
            let (cur, prev) = find(KIND_APP, &c.name);
            let mut last_state = prev.map(Self::terminated_json).unwrap_or_else(|| json!({}));
            let (state, ready, started) = match cur {
                Some(o) if o.running => {
                    running += 1;
                    let started = c.startup_probe.is_none() || st.is_some_and(|s| s.startup.result == Some(true));
                    let ready = started
                        && (c.readiness_probe.is_none() || st.is_some_and(|s| s.readiness.result == Some(true)));
                    (json!({"running": {"startedAt": o.started_at}}), ready, started)
                }
                Some(o) => {
                    if Self::should_restart(&policy, o.exit_code) && !self.terminal {
                        restarting += 1;
                        match st.and_then(|s| s.waiting.clone()) {
                            Some((r, m)) => {
                                last_state = Self::terminated_json(o);
                                (json!({"waiting": {"reason": r, "message": m}}), false, false)
                            }
                            None => (Self::terminated_json(o), false, false),
                        }
                    } else {
                        if o.exit_code == 0 {
                            succeeded += 1;
                        } else {
                            failed += 1;
                        }
                        (Self::terminated_json(o), false, false)
                    }
                }
                None => {
                    waiting += 1;
                    let (r, m) = if !init_done {
                        ("PodInitializing".to_string(), String::new())
                    } else if let Some(e) = &self.sandbox_error {
                        e.clone()
                    } else {
                        st.and_then(|s| s.waiting.clone()).unwrap_or_else(|| (default_waiting.into(), String::new()))
                    };
                    let mut w = json!({"reason": r});
                    if !m.is_empty() {
                        w["message"] = json!(m);
                    }
                    (json!({"waiting": w}), false, false)
                }
            };
            all_ready &= ready;
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": cur.map(|o| format!("docker://{}", o.image_id)).unwrap_or_default(),
                "ready": ready,
                "started": started,
                "restartCount": cur.map(|o| o.attempt).unwrap_or(0),
                "state": state,
                "lastState": last_state,
            });
            if let Some(o) = cur {
                s["containerID"] = json!(format!("docker://{}", o.id));
            }
            statuses.push(s);
        }
        let total = spec.containers.len();
        let phase = if init_failed {
            "Failed"
        } else if !init_done {
            "Pending"
        } else if total > 0 && succeeded + failed == total {
            if failed == 0 { "Succeeded" } else { "Failed" }
        } else if running > 0 || restarting > 0 || (succeeded + failed > 0 && waiting == 0) {
            "Running"
        } else {
            "Pending"
        };
        let terminal = phase == "Succeeded" || phase == "Failed";
        if terminal && !self.terminal {
            self.terminal = true;
            self.release_sandbox(observed).await;
        }
        let now = now_rfc3339();
        let mut cond = |name: &str, ok: bool, reason: Option<&str>| -> Value {
            let status = if ok { "True" } else { "False" };
            let entry = self.transitions.entry(name.to_string()).or_insert_with(|| (status.to_string(), now.clone()));
            if entry.0 != status {
                *entry = (status.to_string(), now.clone());
            }
            let mut c = json!({"type": name, "status": status, "lastProbeTime": null, "lastTransitionTime": entry.1});
            if let Some(r) = reason.filter(|_| !ok) {
                c["reason"] = json!(r);
            }
            c
        };
        let containers_ready = all_ready && init_done && !terminal;
        let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
        let conditions = vec![
            cond("PodReadyToStartContainers", self.pause_id.is_some() || Self::host_network(pod), None),
            cond("Initialized", init_done || terminal, Some("ContainersNotInitialized")),
            cond("Ready", containers_ready, Some(not_ready_reason)),
            cond("ContainersReady", containers_ready, Some(not_ready_reason)),
            cond("PodScheduled", true, None),
        ];
        let host_ip = self.ctx.config.node_ip.to_string();
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "startTime": self.start_time,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if self.last_status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status.clone()})))
            .await?;
        self.last_status = Some(status);
        Ok(())
    }
}

fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Removes containers carrying this node's label whose pod is not in `known` (pods deleted while the agent
/// was down), with their addresses and files.
pub async fn cleanup_orphans(ctx: &Ctx, known: &std::collections::HashSet<String>) {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![format!("{LABEL_NODE}={}", ctx.config.node_name)]);
    let Ok(list) = ctx
        .docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
    else {
        return;
    };
    let mut orphan_uids: BTreeMap<String, ()> = BTreeMap::new();
    for s in list {
        let uid = s.labels.as_ref().and_then(|l| l.get(LABEL_UID)).cloned().unwrap_or_default();
        if !known.contains(&uid) {
            if let Some(id) = s.id {
                let _ = ctx
                    .docker
                    .remove_container(&id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }))
                    .await;
            }
            orphan_uids.insert(uid, ());
        }
    }
    let owners = ctx.ipam.lock().expect("ipam lock").owners();
    for uid in owners.into_iter().filter(|u| !known.contains(u)) {
        orphan_uids.insert(uid, ());
    }
    for uid in orphan_uids.keys().filter(|u| !u.is_empty()) {
        let ip = ctx.ipam.lock().expect("ipam lock").lookup(uid);
        network::detach_pod(&ctx.config.bridge_name, uid, ip).await;
        let _ = ctx.ipam.lock().expect("ipam lock").release(uid);
        volumes::cleanup(&pod_dir(&ctx.agent_dir, uid)).await;
    }
}

fn pod_dir(agent_dir: &Path, uid: &str) -> PathBuf {
    agent_dir.join("pods").join(uid)
}
