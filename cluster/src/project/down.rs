//! `flotilla down`: removes a project's objects, keeping its PersistentVolumeClaims and their data (compose
//! keeps named volumes); `volumes` removes those too, and the namespace.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};

use super::POLL_MAX;
use super::{Error, MANAGED_BY, PART_OF, Progress, Result, SERVICE_LABEL, Step, api_err};

/// Compose's `down` flags.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// `-v`: remove volumes (PVCs) and the namespace too.
    pub volumes: bool,
    /// `-t`: seconds a container gets to stop after SIGTERM; default: each pod's own grace period.
    pub timeout: Option<u32>,
}

/// Kinds removed by `down`, workloads first so nothing recreates the pods being removed.
const KINDS: &[(&str, &str, &str)] = &[
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("batch", "v1", "Job"),
    ("apps", "v1", "ReplicaSet"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
];

/// Removes the project `name` from `namespace`.
pub async fn down(
    client: &Client,
    name: &str,
    namespace: &str,
    options: &DownOptions,
    progress: &dyn Progress,
) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(namespace).await.map_err(api_err(format!("reading namespace {namespace}")))?.is_none() {
        return Ok(());
    }
    let selector = format!("{PART_OF}={name},{MANAGED_BY}=flotilla");
    for (group, version, kind) in KINDS {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let list =
            api.list(&ListParams::default().labels(&selector)).await.map_err(api_err(format!("listing {kind}s")))?;
        for obj in list.items {
            let obj_name = obj.metadata.name.clone().unwrap_or_default();
            api.delete(&obj_name, &DeleteParams::background())
                .await
                .map_err(api_err(format!("deleting {kind} {obj_name}")))?;
            if matches!(*kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job") {
                let service = obj.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_LABEL)).unwrap_or(&obj_name);
                progress.step(&format!("Service {service}"), Step::Removed);
            }
        }
    }
    // The pods go with their workloads; delete them now with the requested grace and wait, so `down`
    // returns when the containers are stopped, as compose's does.
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut dp = DeleteParams::default();
    if let Some(t) = options.timeout {
        dp.grace_period_seconds = Some(t);
    }
    let pod_selector = format!("{MANAGED_BY}=flotilla,{PART_OF}={name}");
    let list = pods.list(&ListParams::default().labels(&pod_selector)).await.map_err(api_err("listing pods"))?;
    let grace = list
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(30)
        .max(i64::from(options.timeout.unwrap_or(0)));
    for pod in &list.items {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        match pods.delete(&pod_name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(api_err(format!("deleting pod {pod_name}"))(e)),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(grace as u64 + 30);
    wait_gone(deadline, "the project's pods to stop", || async {
        Ok(pods
            .list(&ListParams::default().labels(&pod_selector))
            .await
            .map_err(api_err("listing pods"))?
            .items
            .is_empty())
    })
    .await?;

    if options.volumes {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        for pvc in pvcs.list(&ListParams::default()).await.map_err(api_err("listing volumes"))?.items {
            let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
            pvcs.delete(&pvc_name, &DeleteParams::default())
                .await
                .map_err(api_err(format!("deleting volume {pvc_name}")))?;
            progress.step(&format!("Volume {pvc_name}"), Step::Removed);
        }
        namespaces
            .delete(namespace, &DeleteParams::default())
            .await
            .map_err(api_err(format!("deleting namespace {namespace}")))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        wait_gone(deadline, &format!("namespace {namespace} to go"), || async {
            Ok(namespaces.get_opt(namespace).await.map_err(api_err("reading namespace"))?.is_none())
        })
        .await?;
        progress.step(&format!("Namespace {namespace}"), Step::Removed);
    }
    Ok(())
}

async fn wait_gone<F, Fut>(deadline: Instant, what: &str, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        if done().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout { secs: started.elapsed().as_secs(), what: what.to_owned() });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(POLL_MAX);
    }
}

/// Deletes one object and waits until it is gone (used to recreate objects whose spec is immutable).
pub async fn delete_and_wait(api: &Api<DynamicObject>, name: &str, timeout: Option<Duration>) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(api_err(format!("deleting {name}"))(e)),
    }
    let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(120));
    wait_gone(deadline, &format!("{name} to be deleted"), || async {
        Ok(api.get_opt(name).await.map_err(api_err(format!("reading {name}")))?.is_none())
    })
    .await
}
