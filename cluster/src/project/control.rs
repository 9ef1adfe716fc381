//! Changing running services without a new translation: `stop` (Ctrl-C after `up`), `scale`, `restart`.
//! Replica counts changed here are put back to compose's by the next `up`, as compose does.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::wait::{self, State};
use super::{Condition, Error, Progress, ProjectSpec, Result, Step, api_err, objects};

/// Workloads that have a replica count.
fn scalable(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet")
}

/// The workload object of a Kubernetes service name.
pub fn workload<'a>(project: &'a ProjectSpec, service: &str) -> Option<&'a Value> {
    project
        .objects
        .iter()
        .find(|o| objects::is_workload(objects::kind(o)) && o["metadata"]["labels"][super::SERVICE_LABEL] == service)
}

async fn set_replicas(client: &Client, namespace: &str, obj: &Value, replicas: i64) -> Result<()> {
    let api = objects::api_for(client, obj, namespace)?;
    let name = objects::name(obj);
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .map_err(api_err(format!("scaling {name}")))?;
    Ok(())
}

/// Stops every service: replicas to 0 (DaemonSets and Jobs are deleted), then waits for the pods to go.
pub async fn stop(client: &Client, project: &ProjectSpec, timeout: Option<u32>, progress: &dyn Progress) -> Result<()> {
    let ns = &project.namespace;
    for obj in project.objects.iter().filter(|o| objects::is_workload(objects::kind(o))) {
        let kind = objects::kind(obj);
        if scalable(kind) {
            set_replicas(client, ns, obj, 0).await?;
        } else {
            let api = objects::api_for(client, obj, ns)?;
            let _ = api.delete(objects::name(obj), &kube::api::DeleteParams::background()).await;
        }
    }
    let grace = u64::from(timeout.unwrap_or(30));
    let deadline = Instant::now() + Duration::from_secs(grace + 30);
    for service in &project.services {
        loop {
            let pods = wait::service_pods(client, ns, &service.name).await?;
            if pods.is_empty() {
                break;
            }
            if let Some(t) = timeout {
                let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
                for p in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                    let dp = kube::api::DeleteParams { grace_period_seconds: Some(t), ..Default::default() };
                    let _ = api.delete(p.metadata.name.as_deref().unwrap_or_default(), &dp).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    secs: grace + 30,
                    what: format!("service {} to stop", service.compose_name),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        progress.step(&format!("Service {}", service.compose_name), Step::Stopped);
    }
    Ok(())
}

/// `scale SERVICE=N`: sets the replicas and waits until the pods run.
pub async fn scale(
    client: &Client,
    project: &ProjectSpec,
    service: &str,
    replicas: i64,
    progress: &dyn Progress,
) -> Result<()> {
    let obj = workload(project, service).ok_or_else(|| Error::Invalid(format!("no such service: {service}")))?;
    if !scalable(objects::kind(obj)) {
        return Err(Error::Invalid(format!(
            "service {service} runs as a {} and has no replica count; hint: only replicated services scale",
            objects::kind(obj)
        )));
    }
    set_replicas(client, &project.namespace, obj, replicas).await?;
    let mut target = obj.clone();
    target["spec"]["replicas"] = json!(replicas);
    let deadline = Some(Instant::now() + Duration::from_secs(120));
    let state = wait::until(client, &project.namespace, service, &target, Condition::Started, deadline).await?;
    if matches!(state, State::Healthy | State::Started) {
        progress.step(&format!("Service {service}"), Step::Started);
    }
    Ok(())
}

/// `restart [SERVICE...]`: a rolling restart (a new pod template annotation, as `kubectl rollout restart`).
pub async fn restart(client: &Client, project: &ProjectSpec, service: &str, progress: &dyn Progress) -> Result<()> {
    let obj = workload(project, service).ok_or_else(|| Error::Invalid(format!("no such service: {service}")))?;
    if objects::kind(obj) == "Job" {
        return Ok(());
    }
    let api = objects::api_for(client, obj, &project.namespace)?;
    let now = jiff::Timestamp::now().to_string();
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    api.patch(objects::name(obj), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(api_err(format!("restarting {service}")))?;
    progress.step(&format!("Service {service}"), Step::Started);
    Ok(())
}
