//! The rows of `flotilla ps`: one per pod, with compose's columns (SERVICE, POD, STATUS with health,
//! PORTS as `HOST:PUBLISHED->TARGET/proto`).

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams};

use super::{MANAGED_BY, PART_OF, Result, SERVICE_LABEL, api_err};

/// One line of `ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub pod: String,
    pub status: String,
    pub ports: String,
    /// Whether the pod is running (`ps` without `-a` shows only these).
    pub running: bool,
}

/// The project's pods, sorted by service then pod name.
pub async fn rows(client: &Client, name: &str, namespace: &str) -> Result<Vec<Row>> {
    let selector = format!("{PART_OF}={name},{MANAGED_BY}=flotilla");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let pod_list = pods.list(&ListParams::default().labels(&selector)).await.map_err(api_err("listing pods"))?;
    let svc_list =
        services.list(&ListParams::default().labels(&selector)).await.map_err(api_err("listing services"))?;
    let mut rows: Vec<Row> = pod_list
        .items
        .iter()
        .map(|pod| {
            let service = pod.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_LABEL)).cloned().unwrap_or_default();
            let (status, running) = status_text(pod);
            Row {
                ports: ports_text(&service, &svc_list.items),
                service,
                pod: pod.metadata.name.clone().unwrap_or_default(),
                status,
                running,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.pod).cmp(&(&b.service, &b.pod)));
    Ok(rows)
}

/// Compose's STATUS: `running (healthy)`, `running (starting)`, `exited (1)`, or the waiting reason.
pub fn status_text(pod: &Pod) -> (String, bool) {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if pod.metadata.deletion_timestamp.is_some() {
        return ("removing".into(), false);
    }
    let containers = status.and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    if let Some(reason) = containers.iter().find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone()) {
        return (reason, false);
    }
    match phase {
        "Running" => {
            let has_probe = pod.spec.as_ref().is_some_and(|s| s.containers.iter().any(|c| c.readiness_probe.is_some()));
            let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
            let health = if !has_probe {
                ""
            } else if super::wait::is_ready(pod) {
                " (healthy)"
            } else {
                " (starting)"
            };
            let restarts = if restarts > 0 { format!(", {restarts} restarts") } else { String::new() };
            (format!("running{health}{restarts}"), true)
        }
        "Succeeded" | "Failed" => {
            let code = containers
                .iter()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
                .find(|c| *c != 0)
                .unwrap_or(0);
            (format!("exited ({code})"), false)
        }
        "Pending" if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() => {
            ("pending (not scheduled)".into(), false)
        }
        _ => ("created".into(), false),
    }
}

/// `0.0.0.0:8080->80/tcp` for each published port of the service, as compose prints them.
fn ports_text(service: &str, services: &[Service]) -> String {
    let published = format!("{service}-published");
    let mut out = Vec::new();
    for svc in services.iter().filter(|s| s.metadata.name.as_deref() == Some(published.as_str())) {
        for p in svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default() {
            let target = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => i.to_string(),
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s.clone(),
                None => p.port.to_string(),
            };
            let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            out.push(format!("0.0.0.0:{}->{target}/{proto}", p.port));
        }
    }
    out.join(", ")
}
