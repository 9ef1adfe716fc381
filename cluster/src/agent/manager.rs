//! Watches the pods bound to this node (`spec.nodeName=<node>`) and hands each to its own worker task; a
//! pod the API no longer has gets `None` so its worker stops and removes its containers. After the first
//! full list, containers of pods that no longer exist (deleted while the agent was down) are removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Ctx;
use super::pod::{cleanup_orphans, run_worker};

type Slot = watch::Sender<Option<Arc<Pod>>>;

fn dispatch(ctx: &Arc<Ctx>, workers: &mut HashMap<String, Slot>, tasks: &mut JoinSet<()>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid)
        && !tx.is_closed()
    {
        let _ = tx.send(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    tasks.spawn(run_worker(ctx.clone(), rx));
    workers.insert(uid, tx);
}

/// Runs until the watch stream ends (it does not: the watcher retries with back-off).
pub async fn run(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.node_name));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, Slot> = HashMap::new();
    // Workers live in this set so that stopping the agent (dropping this future) stops them too.
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut first_list = true;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listing = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                dispatch(&ctx, &mut workers, &mut tasks, pod);
            }
            Ok(Event::InitDone) => {
                let seen = listing.take().unwrap_or_default();
                for (uid, tx) in workers.iter() {
                    if !seen.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                if first_list {
                    first_list = false;
                    cleanup_orphans(&ctx, &seen).await;
                }
            }
            Ok(Event::Apply(pod)) => dispatch(&ctx, &mut workers, &mut tasks, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    let _ = tx.send(None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
        }
        workers.retain(|_, tx| !tx.is_closed());
        while tasks.try_join_next().is_some() {}
    }
}
