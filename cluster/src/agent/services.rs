//! The agent's service proxy: watches Services and EndpointSlices of all namespaces and keeps the node's
//! nftables table (`netproxy`) and the 127.0.0.1 listeners for published ports in line with them.
//!
//! Changes are debounced (a burst of endpoint updates during a rollout makes one `nft` run), the first
//! sync replaces the table, later ones change only the services that changed. Service addresses get a
//! `local` route so that no packet for the service CIDR ever leaves by the default route: traffic to a
//! ClusterIP is DNATed by the table, and anything else addressed there is refused by it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use netproxy::{LocalPorts, Model, Nft, Proxy, RenderConfig};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How long to wait after a change for more changes before syncing.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long to wait before retrying a sync that failed.
const RETRY: Duration = Duration::from_secs(2);
/// How often the whole table is rewritten even without changes, in case something else flushed it.
const RESYNC: Duration = Duration::from_secs(300);

/// What the service proxy needs to know about its node.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// The node's addresses (informational: published ports are answered on every local address of the
    /// node except loopback and service addresses, like Docker publishing on 0.0.0.0).
    pub node_ips: Vec<IpAddr>,
    /// The cluster's pod CIDR (10.42.0.0/16): traffic to services from outside it is masqueraded.
    pub cluster_cidr: String,
    /// The service CIDR (10.43.0.0/16).
    pub service_cidr: String,
    /// The nftables table (family ip); must start with `flotilla`. Tests use unique names.
    pub table: String,
    /// How to run `nft` (tests: `Nft::in_netns(..)`).
    pub nft: Nft,
    /// The address the userspace listeners for published ports bind (default 0.0.0.0, like docker-proxy:
    /// they serve 127.0.0.1, where DNAT cannot reach, while nftables answers every other address first;
    /// binding the wildcard makes a port held by any other program fail loudly, and such a port is then
    /// withdrawn from the nftables rules too). `None` disables the listeners.
    pub userspace_listen: Option<IpAddr>,
    /// Add `local <service_cidr> dev lo` to the node's routes (in the agent's network namespace).
    pub service_route: bool,
}

impl ServicesConfig {
    /// The defaults: table `flotilla`, 10.42.0.0/16 and 10.43.0.0/16, listeners on 0.0.0.0, the route.
    pub fn new(node_ips: Vec<IpAddr>) -> ServicesConfig {
        ServicesConfig {
            node_ips,
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            table: "flotilla".into(),
            nft: Nft::default(),
            userspace_listen: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            service_route: true,
        }
    }
}

/// Errors that stop the service proxy before it starts.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("invalid {what} {value:?}: expected an IPv4 CIDR such as 10.43.0.0/16")]
    BadCidr { what: &'static str, value: String },
    #[error(transparent)]
    Proxy(#[from] netproxy::Error),
    #[error("cannot add the route for service addresses ({cidr}): {message}")]
    Route { cidr: String, message: String },
}

/// `ip route replace local <cidr> dev lo`: service addresses are local to every node.
async fn add_service_route(cidr: &str) -> Result<(), ServicesError> {
    let out = tokio::process::Command::new("ip")
        .args(["route", "replace", "local", cidr, "dev", "lo"])
        .output()
        .await
        .map_err(|e| ServicesError::Route { cidr: cidr.into(), message: e.to_string() })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ServicesError::Route { cidr: cidr.into(), message });
    }
    Ok(())
}

/// Removes what [`run`] installed: the nftables table and the service route. Blocking, for the agent's
/// drop guard at shutdown (the agent's pods stop with it, so their DNAT rules must not outlive it);
/// best effort, errors are ignored.
pub fn teardown_blocking(config: &ServicesConfig) {
    use std::process::{Command, Stdio};
    if config.table.starts_with("flotilla") {
        let mut cmd = Command::new(&config.nft.program);
        cmd.args(&config.nft.args).args(["delete", "table", "ip", &config.table]);
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    if config.service_route {
        let _ = Command::new("ip")
            .args(["route", "del", "local", &config.service_cidr, "dev", "lo"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs the service proxy until the process ends.
pub async fn run(client: kube::Client, config: ServicesConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cluster_cidr = netproxy::render::parse_cidr(&config.cluster_cidr)
        .ok_or_else(|| ServicesError::BadCidr { what: "pod CIDR", value: config.cluster_cidr.clone() })?;
    let service_cidr = netproxy::render::parse_cidr(&config.service_cidr)
        .ok_or_else(|| ServicesError::BadCidr { what: "service CIDR", value: config.service_cidr.clone() })?;
    let render = RenderConfig {
        table: config.table.clone(),
        cluster_cidr: Some(cluster_cidr),
        service_cidr: Some(service_cidr),
    };
    let mut proxy = Proxy::new(render, config.nft.clone()).map_err(ServicesError::from)?;
    if config.service_route {
        add_service_route(&config.service_cidr).await?;
    }
    let mut local = config.userspace_listen.map(LocalPorts::new);

    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
    let svc_stream =
        reflector::reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .default_backoff();
    let slice_stream = reflector::reflector(
        slice_writer,
        watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    for (what, stream) in [
        ("services", svc_stream.map(|r| r.map(|_| ())).boxed()),
        ("endpointslices", slice_stream.map(|r| r.map(|_| ())).boxed()),
    ] {
        let tick = tick_tx.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Some(item) = stream.next().await {
                match item {
                    // A full channel already holds a pending sync: nothing more to say.
                    Ok(()) => {
                        let _ = tick.try_send(());
                    }
                    Err(e) => warn!(watch = what, error = %e, "service proxy watch failed; retrying"),
                }
            }
        });
    }
    drop(tick_tx);
    svc_store.wait_until_ready().await?;
    slice_store.wait_until_ready().await?;
    info!(table = %config.table, "service proxy started");

    let mut failing = false;
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Wait for a change, a periodic full resync (the first tick is immediate: the first sync), or
        // the retry after a failure.
        let retry = tokio::time::sleep(if failing { RETRY } else { RESYNC * 2 });
        tokio::select! {
            tick = tick_rx.recv() => {
                if tick.is_none() {
                    return Ok(());
                }
            }
            _ = resync.tick() => proxy.invalidate(),
            _ = retry => {}
        }
        tokio::time::sleep(DEBOUNCE).await;
        while tick_rx.try_recv().is_ok() {}

        let services = svc_store.state();
        let slices = slice_store.state();
        let mut model = Model::from_k8s(services.iter().map(|s| s.as_ref()), slices.iter().map(|s| s.as_ref()));
        // Listeners first: a published port that cannot be had (another program holds it, or another
        // service publishes it) is reported and withdrawn from the rules, as Docker refuses to publish it.
        if let Some(local) = local.as_mut() {
            for err in local.update(&model).await {
                warn!("{err}");
                let service = services.iter().find(|s| {
                    s.metadata.namespace.as_deref() == Some(err.namespace.as_str())
                        && s.metadata.name.as_deref() == Some(err.service.as_str())
                });
                if let Some(service) = service {
                    report_port_in_use(&client, service, &err.to_string()).await;
                }
            }
            for (ns, svc, protocol, port) in local.unserved() {
                model.withdraw_published(&ns, &svc, protocol, port);
            }
        }
        match proxy.sync(&model).await {
            Ok(kind) => {
                debug!(?kind, ports = model.ports.len(), "service proxy synced");
                failing = false;
            }
            Err(e) => {
                warn!(error = %e, "service proxy sync failed; will rewrite the whole table");
                failing = true;
            }
        }
    }
}

/// A Warning Event on the Service, so `kubectl get events` (and `flotilla up`) can show the conflict.
async fn report_port_in_use(client: &kube::Client, service: &Service, message: &str) {
    let ns = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: service.metadata.uid.clone(),
            resource_version: service.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some("PortInUse".into()),
        message: Some(message.to_string()),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource { component: Some("flotilla-netproxy".into()), host: None }),
        reporting_component: Some("flotilla-netproxy".into()),
        ..Default::default()
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &event).await {
        debug!(error = %e, "cannot record the port conflict as an event");
    }
}
