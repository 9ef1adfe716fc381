//! Removes a PersistentVolumeClaim's node directory (`<agent-dir>/volumes/<namespace>/<claim>`) when the
//! claim is deleted, so `flotilla down -v` drops named-volume data as `docker compose down -v` does. After
//! the first full list, directories of claims that no longer exist (deleted while the agent was down) go too.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::Ctx;

fn claim_dir(agent_dir: &Path, namespace: &str, name: &str) -> Option<std::path::PathBuf> {
    // Names come from the API (DNS labels), but never let one escape the volumes directory.
    let ok = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    (ok(namespace) && ok(name)).then(|| agent_dir.join("volumes").join(namespace).join(name))
}

fn remove(agent_dir: &Path, namespace: &str, name: &str) {
    if let Some(dir) = claim_dir(agent_dir, namespace, name)
        && dir.exists()
    {
        tracing::info!(namespace, claim = name, "removing the data of a deleted claim");
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted claim's data");
        }
        // Drop the namespace directory once it is empty (errors: not empty, which is fine).
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Runs until the watch ends (never: the watcher retries with back-off).
pub async fn run(ctx: Arc<Ctx>) {
    let api: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut listing: Option<HashSet<(String, String)>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listing = Some(HashSet::new()),
            Ok(Event::InitApply(pvc)) => {
                if let Some(seen) = listing.as_mut() {
                    seen.insert((pvc.metadata.namespace.unwrap_or_default(), pvc.metadata.name.unwrap_or_default()));
                }
            }
            Ok(Event::InitDone) => {
                let seen = listing.take().unwrap_or_default();
                let volumes = ctx.agent_dir.join("volumes");
                for ns in std::fs::read_dir(&volumes).into_iter().flatten().flatten() {
                    let namespace = ns.file_name().to_string_lossy().into_owned();
                    for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                        let name = claim.file_name().to_string_lossy().into_owned();
                        if !seen.contains(&(namespace.clone(), name.clone())) {
                            remove(&ctx.agent_dir, &namespace, &name);
                        }
                    }
                }
            }
            Ok(Event::Apply(_)) => {}
            Ok(Event::Delete(pvc)) => remove(
                &ctx.agent_dir,
                pvc.metadata.namespace.as_deref().unwrap_or_default(),
                pvc.metadata.name.as_deref().unwrap_or_default(),
            ),
            Err(e) => tracing::warn!(error = %e, "claim watch failed; retrying"),
        }
    }
}
