//! `flotilla-pod-start`: pod startup latency on a running cluster (Kubernetes' pod startup SLI: from the
//! create request to the pod observed Ready through a watch), with the image already on the nodes.
//! Pods arrive at a fixed rate, spread by the scheduler; they are deleted with their namespace at the end.
//!
//! `--rss-pods N --rss-node NODE --rss-pid PID` instead fills one node with N pods and prints the resident
//! memory of process PID (the node's agent) before and after.

// Shared with flotilla-api-load, which uses more of it.
#[allow(dead_code)]
mod stats;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;

use crate::stats::percentile_ms;

#[derive(Debug, Parser)]
#[command(about = "Pod startup latency (create to Ready) on a running flotilla cluster")]
struct Args {
    /// The cluster's kubeconfig.
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// The image of the pods; it must already be on the nodes.
    #[arg(long, default_value = "flotilla-fixtures/busybox:1")]
    image: String,
    /// How many pods.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods created per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Put every pod on this node (nodeName) and report the memory of `--rss-pid` with them running.
    #[arg(long)]
    rss_node: Option<String>,
    /// The process whose resident memory is reported (the node's agent).
    #[arg(long)]
    rss_pid: Option<u32>,
}

fn pod(name: &str, image: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pod-start"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    }))
    .expect("a valid pod")
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let ns = format!("bench-pod-start-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
    namespaces.create(&PostParams::default(), &namespace).await?;
    let result = measure(&client, &ns, &args).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    result
}

async fn measure(client: &kube::Client, ns: &str, args: &Args) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rss_before = args.rss_pid.map(rss_kib).transpose()?;
    // The watch runs first, so no Ready transition is missed.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_pods = pods.clone();
    let watching = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(watch_pods, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            let seen = Instant::now();
            let (watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = event.unwrap_or(watcher::Event::Init)
            else {
                continue;
            };
            if ready(&p) && tx.send((p.metadata.name.unwrap_or_default(), seen)).is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    for i in 0..args.pods {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let name = format!("p{i:04}");
        let at = Instant::now();
        pods.create(&PostParams::default(), &pod(&name, &args.image, args.rss_node.as_deref())).await?;
        created.insert(name, at);
    }
    let mut latencies = Vec::new();
    let mut done: HashMap<String, ()> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.len() < args.pods {
        let Ok(Some((name, seen))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            bail!("only {} of {} pods became Ready within 300 s", done.len(), args.pods);
        };
        if let (Some(at), None) = (created.get(&name), done.get(&name)) {
            latencies.push(seen - *at);
            done.insert(name, ());
        }
    }
    watching.abort();
    latencies.sort();
    let on = |node: &Option<String>| node.clone().unwrap_or_else(|| "the scheduler's choice".into());
    println!(
        "pods={} rate={}/s node={} p50_ms={:.0} p99_ms={:.0} max_ms={:.0}",
        args.pods,
        args.rate,
        on(&args.rss_node),
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0)
    );
    if let (Some(pid), Some(before)) = (args.rss_pid, rss_before) {
        // Let the startup work settle (probes keep running).
        tokio::time::sleep(Duration::from_secs(10)).await;
        println!(
            "agent_rss_mib_before={:.1} agent_rss_mib_with_pods={:.1}",
            before as f64 / 1024.0,
            rss_kib(pid)? as f64 / 1024.0
        );
    }
    Ok(())
}
