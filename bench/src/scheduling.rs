//! `flotilla-sched-load`: scheduler throughput through the API, kube-scheduler's scheduler_perf shape: a
//! fresh `flotilla server --no-agent` with N fake Ready nodes (no agents; the node lifecycle grace is set
//! long so they stay schedulable), then P pods created by 32 clients as fast as the API takes them. The
//! figure is P divided by the time from the first create to the last binding seen through a watch.

#[allow(dead_code)] // shared with flotilla-api-load, which uses all of it
mod server;
#[allow(dead_code)]
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

use crate::server::{Server, ServerSpec};

#[derive(Debug, Parser)]
#[command(about = "Scheduler throughput: fake nodes, pods through the API, bindings seen through a watch")]
struct Args {
    /// The flotilla binary (a release build for figures worth reporting).
    #[arg(long, env = "FLOTILLA_BIN")]
    flotilla: PathBuf,
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
}

fn node(i: usize) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("fake-{i:05}"), "labels": {"kubernetes.io/hostname": format!("fake-{i:05}")}},
        // A pod range of their own (outside 10.42/16, which has room for 256 nodes), so the node IPAM
        // controller has nothing to do for them: the figure is the scheduler's.
        "spec": {"podCIDR": format!("10.{}.{}.0/24", 100 + i / 256, i % 256)},
    }))
    .expect("a valid node")
}

fn node_status() -> serde_json::Value {
    serde_json::json!({"status": {
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }})
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("p-{i:05}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                  "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}
    }))
    .expect("a valid pod")
}

/// Runs `work(i)` for i in 0..count over `clients` concurrent tasks.
async fn fan_out<F, Fut>(count: usize, clients: usize, work: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(0..count).map(work).buffer_unordered(clients).try_collect::<Vec<()>>().await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let spec = ServerSpec {
        bin: args.flotilla.clone(),
        extra_args: vec!["--node-monitor-grace-period".into(), "3600s".into()],
        etcd_bin: None,
        scratch: args.scratch.clone(),
    };
    let server = Server::start(&spec).await?;
    let client = server.client()?;
    let nodes: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    fan_out(args.nodes, args.clients, |i| {
        let nodes = nodes.clone();
        async move {
            let n = node(i);
            let name = n.metadata.name.clone().unwrap_or_default();
            nodes.create(&PostParams::default(), &n).await?;
            nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(node_status())).await?;
            Ok(())
        }
    })
    .await?;
    let nodes_s = started.elapsed().as_secs_f64();
    // Let the scheduler's cache take the nodes in.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bound = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Instant>();
    let watching = {
        let (bound, pods, total) = (bound.clone(), pods.clone(), args.pods);
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default()));
            let mut done_tx = Some(done_tx);
            while let Some(Ok(event)) = stream.next().await {
                let (watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = event else { continue };
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                    && seen.insert(p.metadata.name.unwrap_or_default())
                {
                    bound.store(seen.len(), Ordering::Relaxed);
                    if seen.len() == total
                        && let Some(tx) = done_tx.take()
                    {
                        let _ = tx.send(Instant::now());
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_create = Instant::now();
    fan_out(args.pods, args.clients, |i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(i)).await?;
            Ok(())
        }
    })
    .await?;
    let created_s = first_create.elapsed().as_secs_f64();
    let last_bind = match tokio::time::timeout(Duration::from_secs(600), done_rx).await {
        Ok(Ok(at)) => at,
        _ => bail!("only {} of {} pods bound within 600 s", bound.load(Ordering::Relaxed), args.pods),
    };
    watching.abort();
    let total_s = (last_bind - first_create).as_secs_f64();
    let memory = server.memory()?;
    println!(
        "nodes={} pods={} nodes_created_s={nodes_s:.1} pods_created_s={created_s:.2} all_bound_s={total_s:.2} \
         pods_per_s={:.0} server_rss_mib={:.1}",
        args.nodes,
        args.pods,
        args.pods as f64 / total_s,
        memory.rss_mib
    );
    Ok(())
}
