//! `flotilla-api-load`: API benchmarks against a real `flotilla server --no-agent` (fresh data dir per
//! server, durability as configured: SQLite with its fsyncs by default, or a fresh Debian etcd).
//!
//! Each round starts two fresh servers. The first takes creates (paced, then back to back from 32
//! clients) and a watch fan-out; the second is filled with pods shaped like the translator's, then listed
//! whole, in pages and as a Table, and its memory read. Every figure is kept per round, and the median over
//! rounds is what `scripts/bench-api` writes into BENCHMARKS.md. Nothing here judges a figure: the machines
//! are shared and noisy, so the targets are compared by a person reading the table.

mod load;
mod server;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::load::Kind;
use crate::server::{Server, ServerSpec};
use crate::stats::{median, percentile_ms};

#[derive(Debug, Parser)]
#[command(about = "API benchmarks against a real flotilla server")]
struct Args {
    /// The flotilla binary to benchmark (a release build for figures worth reporting).
    #[arg(long, env = "FLOTILLA_BIN")]
    flotilla: PathBuf,
    /// Start a fresh etcd (this binary, e.g. /usr/bin/etcd) per server and use `--datastore etcd://...`.
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// An extra `flotilla server` flag (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Where fresh data dirs go; must be a disk (not tmpfs) for durability to cost what it costs.
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
    /// Rounds; every figure is reported as the median over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent clients of the create phases.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// ConfigMaps created back to back by the clients (throughput and latency under saturation).
    #[arg(long, default_value_t = 20_000)]
    creates: usize,
    /// ConfigMaps created at a fixed rate by the clients (latency below saturation).
    #[arg(long, default_value_t = 4_000)]
    paced_creates: usize,
    /// Rate of the paced creates, per second, all clients together.
    #[arg(long, default_value_t = 500.0)]
    paced_rate: f64,
    /// Pods stored before the list phase.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Whole lists (and Table lists) per round.
    #[arg(long, default_value_t = 5)]
    list_repeats: usize,
    /// Page size of the paged list.
    #[arg(long, default_value_t = 500)]
    page_limit: usize,
    /// Concurrent watchers of the watch phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// ConfigMaps created while the watchers watch.
    #[arg(long, default_value_t = 500)]
    watch_events: usize,
    /// Rate of those creates, per second.
    #[arg(long, default_value_t = 50.0)]
    watch_rate: f64,
    /// Longest wait for the server to go idle between phases, in seconds.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// Label of this run in the JSON (e.g. sqlite, etcd).
    #[arg(long, default_value = "sqlite")]
    label: String,
    /// Write the figures (per round and medians) here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One round's figures by name (milliseconds, MiB, per-second rates, counts).
type Figures = BTreeMap<String, f64>;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args).await {
        eprintln!("flotilla-api-load: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<()> {
    if args.rounds == 0 || args.clients == 0 {
        bail!("--rounds and --clients must be at least 1");
    }
    let spec = ServerSpec {
        bin: args.flotilla.clone(),
        extra_args: args.server_args.clone(),
        etcd_bin: args.etcd.clone(),
        scratch: args.scratch.clone(),
    };
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let mut figures = Figures::new();
        eprintln!("[{}] round {round}/{}: creates and watches", args.label, args.rounds);
        creates_and_watches(args, &spec, &mut figures).await?;
        eprintln!("[{}] round {round}/{}: pods, lists and memory", args.label, args.rounds);
        pods_and_lists(args, &spec, &mut figures).await?;
        for (k, v) in &figures {
            eprintln!("[{}]   {k} = {v:.2}", args.label);
        }
        rounds.push(figures);
    }
    let mut medians = Figures::new();
    for key in rounds[0].keys() {
        let values: Vec<f64> = rounds.iter().filter_map(|r| r.get(key).copied()).collect();
        medians.insert(key.clone(), median(&values));
    }
    let report = serde_json::json!({
        "label": args.label,
        "rounds": rounds,
        "median": medians,
        "settings": {
            "clients": args.clients, "creates": args.creates, "paced_creates": args.paced_creates,
            "paced_rate": args.paced_rate, "pods": args.pods, "list_repeats": args.list_repeats,
            "page_limit": args.page_limit, "watchers": args.watchers, "watch_events": args.watch_events,
            "watch_rate": args.watch_rate, "rounds": args.rounds, "etcd": args.etcd.is_some(),
        },
    });
    let text = serde_json::to_string_pretty(&report)?;
    match &args.json {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

fn put_creates(f: &mut Figures, name: &str, c: &load::Creates) {
    f.insert(format!("{name}_per_s"), c.per_second());
    f.insert(format!("{name}_p50_ms"), percentile_ms(&c.latencies, 50.0));
    f.insert(format!("{name}_p99_ms"), percentile_ms(&c.latencies, 99.0));
    f.insert(format!("{name}_max_ms"), percentile_ms(&c.latencies, 100.0));
    f.insert(format!("{name}_errors"), c.errors as f64);
    if let Some(e) = &c.first_error {
        eprintln!("  {name}: {} failed creates; first: {e}", c.errors);
    }
}

/// A fresh server: idle memory, paced creates, back-to-back creates, then the watch fan-out.
async fn creates_and_watches(args: &Args, spec: &ServerSpec, f: &mut Figures) -> Result<()> {
    let server = Server::start(spec).await?;
    server.settle(Duration::from_secs(args.settle_secs)).await?;
    let idle = server.memory()?;
    f.insert("idle_rss_mib".into(), idle.rss_mib);
    if let Some(m) = server.etcd_memory() {
        f.insert("etcd_idle_rss_mib".into(), m.rss_mib);
    }
    let admin = server.client()?;
    let clients = load::clients(&server.config, args.clients)?;
    load::create_namespace(&admin, "bench-paced").await?;
    load::create_namespace(&admin, "bench-cm").await?;
    load::create_namespace(&admin, "bench-watch").await?;

    if args.paced_creates > 0 {
        let c = load::create_paced(&clients, "bench-paced", Kind::ConfigMap, "cm", args.paced_creates, args.paced_rate)
            .await;
        put_creates(f, "cm_paced", &c);
        server.settle(Duration::from_secs(args.settle_secs)).await?;
    }
    if args.creates > 0 {
        let c = load::create_closed(&clients, "bench-cm", Kind::ConfigMap, "cm", args.creates).await;
        put_creates(f, "cm_closed", &c);
        let waited = server.settle(Duration::from_secs(args.settle_secs)).await?;
        f.insert("cm_settle_s".into(), waited.as_secs_f64());
    }
    drop(clients);
    if args.watchers > 0 && args.watch_events > 0 {
        let w = load::watch_fanout(&server.config, "bench-watch", args.watchers, args.watch_events, args.watch_rate)
            .await
            .with_context(|| format!("watch phase; server log:\n{}", server.log()))?;
        f.insert("watch_p50_ms".into(), percentile_ms(&w.from_response, 50.0));
        f.insert("watch_p99_ms".into(), percentile_ms(&w.from_response, 99.0));
        f.insert("watch_max_ms".into(), percentile_ms(&w.from_response, 100.0));
        f.insert("watch_from_request_p50_ms".into(), percentile_ms(&w.from_request, 50.0));
        f.insert("watch_from_request_p99_ms".into(), percentile_ms(&w.from_request, 99.0));
        f.insert("watch_behind_first_p99_ms".into(), percentile_ms(&w.behind_first, 99.0));
        f.insert("watch_deliveries".into(), w.from_response.len() as f64);
        f.insert("watch_early".into(), w.early as f64);
        f.insert("watch_missing".into(), w.missing as f64);
        f.insert("watch_create_errors".into(), w.create_errors as f64);
    }
    let m = server.memory()?;
    f.insert("after_creates_rss_mib".into(), m.rss_mib);
    f.insert("after_creates_hwm_mib".into(), m.hwm_mib);
    Ok(())
}

/// A fresh server filled with pods, then listed; memory once the lists are done.
async fn pods_and_lists(args: &Args, spec: &ServerSpec, f: &mut Figures) -> Result<()> {
    if args.pods == 0 {
        return Ok(());
    }
    let server = Server::start(spec).await?;
    let admin = server.client()?;
    let clients = load::clients(&server.config, args.clients)?;
    let ns = "bench-pods";
    load::create_namespace(&admin, ns).await?;
    let c = load::create_closed(&clients, ns, Kind::Pod, "web", args.pods).await;
    put_creates(f, "pod_closed", &c);
    drop(clients);
    let waited = server.settle(Duration::from_secs(args.settle_secs)).await?;
    f.insert("pod_settle_s".into(), waited.as_secs_f64());
    f.insert("pods_before_lists_rss_mib".into(), server.memory()?.rss_mib);
    f.insert(
        "pod_stored_bytes".into(),
        load::object_bytes(&admin, &format!("/api/v1/namespaces/{ns}/pods/web-0")).await? as f64,
    );

    let path = format!("/api/v1/namespaces/{ns}/pods");
    let stored = args.pods - c.errors;
    let mut whole = Vec::new();
    for _ in 0..args.list_repeats.max(1) {
        let l = load::list_once(&admin, &path, load::JSON).await?;
        if l.items != stored {
            bail!("the list of {path} held {} items, but {stored} pods were created", l.items);
        }
        f.insert("list_mib".into(), l.bytes as f64 / (1024.0 * 1024.0));
        whole.push(l.elapsed.as_secs_f64() * 1e3);
    }
    f.insert("list_ms".into(), median(&whole));
    f.insert("list_items".into(), stored as f64);

    let (pages, items) = load::list_paged(&admin, &path, args.page_limit).await?;
    if items != stored {
        bail!("the paged list of {path} held {items} items, but {stored} pods were created");
    }
    let mut sorted = pages.clone();
    sorted.sort();
    f.insert("list_paged_total_ms".into(), pages.iter().sum::<Duration>().as_secs_f64() * 1e3);
    f.insert("list_page_p50_ms".into(), percentile_ms(&sorted, 50.0));
    f.insert("list_page_max_ms".into(), percentile_ms(&sorted, 100.0));

    let mut table = Vec::new();
    for _ in 0..args.list_repeats.max(1) {
        let l = load::list_once(&admin, &path, load::TABLE).await?;
        table.push(l.elapsed.as_secs_f64() * 1e3);
    }
    f.insert("list_table_ms".into(), median(&table));

    let m = server.memory()?;
    f.insert("pods_rss_mib".into(), m.rss_mib);
    f.insert("pods_hwm_mib".into(), m.hwm_mib);
    if let Some(m) = server.etcd_memory() {
        f.insert("etcd_pods_rss_mib".into(), m.rss_mib);
    }
    f.insert("pods_disk_mib".into(), server.disk_bytes() as f64 / (1024.0 * 1024.0));
    Ok(())
}
