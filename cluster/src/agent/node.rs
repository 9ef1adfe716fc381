//! The agent's Node and Lease: registration with addresses, capacity and the kubelet endpoint, a Ready
//! condition kept fresh, the Lease `kube-node-lease/<node>` renewed every 5 s, and waiting for the
//! `spec.podCIDR` that the node-IPAM controller assigns.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::AgentConfig;

/// How often the Lease is renewed: a third of the node lifecycle controller's 15 s grace period, so one
/// late renewal under load never makes the node unreachable (the kubelet renews every 10 s against 40 s).
pub const LEASE_RENEW: Duration = Duration::from_secs(5);
/// How often the Node's status (Ready heartbeat) is rewritten.
pub const STATUS_EVERY: Duration = Duration::from_secs(40);
const LEASE_NAMESPACE: &str = "kube-node-lease";

fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".to_string())
}

/// The Node's status as this agent reports it.
fn node_status(config: &AgentConfig, docker_version: &str) -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_kib()),
        "pods": "110",
        "ephemeral-storage": "10Gi",
    });
    let now = now_rfc3339();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "flotilla agent is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
             "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
             "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "architecture": arch,
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "containerRuntimeVersion": format!("docker://{docker_version}"),
            "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
            "kubeProxyVersion": "v1.33.0-flotilla",
            "kubeletVersion": "v1.33.0-flotilla",
            "machineID": read_trim("/etc/machine-id"),
            "operatingSystem": "linux",
            "osImage": os_image(),
            "systemUUID": read_trim("/etc/machine-id"),
        },
    })
}

/// Creates the Node if it does not exist and writes its status. Returns the Node's uid.
pub async fn register(
    client: &kube::Client,
    config: &AgentConfig,
    docker_version: &str,
    docker_engine_id: &str,
) -> Result<String, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": {
                "kubernetes.io/hostname": config.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            },
        },
        "spec": {},
    }))
    .expect("static node object");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    // Which Docker Engine runs this node's pods: `flotilla up` sends images to the cluster only when some
    // node's engine is not the one that built them.
    let annotation =
        json!({"metadata": {"annotations": {crate::project::images::DOCKER_ID_ANNOTATION: docker_engine_id}}});
    nodes.patch(&config.node_name, &PatchParams::default(), &Patch::Merge(&annotation)).await?;
    update_status(client, config, docker_version).await?;
    let node = nodes.get(&config.node_name).await?;
    Ok(node.metadata.uid.unwrap_or_default())
}

/// Rewrites the Node's status (heartbeat).
pub async fn update_status(
    client: &kube::Client,
    config: &AgentConfig,
    docker_version: &str,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": node_status(config, docker_version)});
    nodes.patch_status(&config.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Waits until the Node has a `spec.podCIDR`, polling once a second.
pub async fn wait_pod_cidr(client: &kube::Client, node_name: &str) -> String {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match nodes.get(node_name).await {
            Ok(node) => {
                if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                    return cidr;
                }
                if !logged {
                    tracing::info!(node = node_name, "waiting for the node's spec.podCIDR");
                    logged = true;
                }
            }
            Err(e) => tracing::warn!(node = node_name, error = %e, "cannot read the node"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(client: &kube::Client, node_name: &str, node_uid: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let patch = json!({"spec": {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": now_micro()}});
    match leases.patch(node_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(LEASE_NAMESPACE).await?.is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": LEASE_NAMESPACE}})).expect("static");
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {
            "name": node_name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    }))
    .expect("static lease");
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
