//! The load phases, each over HTTPS with the admin client certificate, as a real client would: creates
//! (closed loop and paced), lists (whole, paged, as a Table), and watch fan-out.
//!
//! Every client gets its own `kube::Client` (its own connections), like separate processes. Requests are
//! raw JSON bodies so that the load generator's own CPU (it shares the machine with the server) goes to
//! TLS and HTTP, not to typed encoding.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::AsyncBufReadExt;
use futures::future::try_join_all;
use kube::Client;
use serde::Deserialize;

/// Which object the create phases make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A small ConfigMap (about 300 bytes as sent).
    ConfigMap,
    /// A pod shaped like the translator's output (about 2 KB as stored, with the server's defaults), already
    /// bound to a node (`spec.nodeName`), as pods are in a running cluster: with `--no-agent` there is no
    /// node, and unbound pods would measure the scheduler's retries (a status write and an Event per pod
    /// and attempt) instead of the API and the store.
    Pod,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Pod => "pods",
        }
    }

    /// The body of the `i`th object, named `<prefix>-<i>`.
    pub fn body(self, prefix: &str, i: usize) -> Vec<u8> {
        match self {
            Kind::ConfigMap => format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{prefix}-{i}","labels":{{"app.kubernetes.io/managed-by":"flotilla-bench","bench/index":"{i}"}}}},"data":{{"settings.conf":"listen = 8080\nworkers = 4\nlog_level = info\n","index":"{i}"}}}}"#
            )
            .into_bytes(),
            Kind::Pod => format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{prefix}-{i}","labels":{{"app.kubernetes.io/name":"web","app.kubernetes.io/part-of":"shop","app.kubernetes.io/managed-by":"flotilla","compose.flotilla.dev/service":"web","pod-template-hash":"5d8f7c9b6"}},"annotations":{{"compose.flotilla.dev/config-hash":"9f2c4e1ab0d3c5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5"}}}},"spec":{{"hostname":"web","containers":[{{"name":"web","image":"registry.local/shop/web:1.4.2","command":["/bin/sh","-c"],"args":["exec /app/server --port 8080 --workers 4"],"env":[{{"name":"DATABASE_URL","value":"postgres://shop:shop@db:5432/shop"}},{{"name":"REDIS_URL","value":"redis://cache:6379/0"}},{{"name":"LOG_LEVEL","value":"info"}},{{"name":"TAG","value":"1.0"}},{{"name":"POD_INDEX","value":"{i}"}}],"ports":[{{"name":"http","containerPort":8080,"protocol":"TCP"}}],"resources":{{"limits":{{"cpu":"500m","memory":"256Mi"}},"requests":{{"cpu":"100m","memory":"64Mi"}}}},"readinessProbe":{{"httpGet":{{"path":"/healthz","port":8080}},"periodSeconds":5,"timeoutSeconds":2,"failureThreshold":3}},"livenessProbe":{{"exec":{{"command":["/bin/sh","-c","wget -q -O- http://127.0.0.1:8080/healthz"]}},"initialDelaySeconds":10,"periodSeconds":10}},"volumeMounts":[{{"name":"data","mountPath":"/var/lib/web"}},{{"name":"config","mountPath":"/etc/web","readOnly":true}}]}}],"volumes":[{{"name":"data","emptyDir":{{}}}},{{"name":"config","configMap":{{"name":"shop-web-config"}}}}],"restartPolicy":"Always","terminationGracePeriodSeconds":10,"enableServiceLinks":false,"nodeName":"flt-bench-node"}}}}"#
            )
            .into_bytes(),
        }
    }
}

/// `n` clients, each with its own connections.
pub fn clients(config: &kube::Config, n: usize) -> Result<Vec<Client>> {
    (0..n).map(|_| Ok(Client::try_from(config.clone())?)).collect()
}

/// Creates namespace `ns`.
pub async fn create_namespace(client: &Client, ns: &str) -> Result<()> {
    let body = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#);
    post(client, "/api/v1/namespaces", body.into_bytes()).await.with_context(|| format!("creating namespace {ns}"))
}

async fn post(client: &Client, path: &str, body: Vec<u8>) -> Result<()> {
    let req = http::Request::post(path).header("content-type", "application/json").body(body)?;
    client.request_text(req).await?;
    Ok(())
}

async fn get(client: &Client, path: &str, accept: &str) -> Result<String> {
    let req = http::Request::get(path).header("accept", accept).body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// The outcome of a create phase.
#[derive(Debug)]
pub struct Creates {
    /// Each successful create's latency, ascending.
    pub latencies: Vec<Duration>,
    /// Failed creates and the first error.
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first request to the last response.
    pub elapsed: Duration,
}

impl Creates {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Creates `total` objects named `<prefix>-<i>` in `ns` with the `clients` sending back to back (a closed
/// loop: each client sends its next create when the previous one is answered).
pub async fn create_closed(clients: &[Client], ns: &str, kind: Kind, prefix: &str, total: usize) -> Creates {
    let next = Arc::new(AtomicUsize::new(0));
    let path = format!("/api/v1/namespaces/{ns}/{}", kind.plural());
    let start = Instant::now();
    let workers = clients.iter().cloned().map(|client| {
        let (next, path, prefix) = (next.clone(), path.clone(), prefix.to_string());
        tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return out;
                }
                let body = kind.body(&prefix, i);
                let t = Instant::now();
                let r = post(&client, &path, body).await;
                out.push(r.map(|()| t.elapsed()).map_err(|e| format!("{e:#}")));
            }
        })
    });
    collect(futures::future::join_all(workers).await, start)
}

/// Creates `total` objects spread over the `clients` at `rate` per second in all (an open loop: each
/// create has a scheduled time, and its latency counts from then, so a stalled server cannot hide its
/// queue behind clients that stopped sending).
pub async fn create_paced(clients: &[Client], ns: &str, kind: Kind, prefix: &str, total: usize, rate: f64) -> Creates {
    let path = format!("/api/v1/namespaces/{ns}/{}", kind.plural());
    let n = clients.len();
    let start = tokio::time::Instant::now();
    let workers = clients.iter().cloned().enumerate().map(|(w, client)| {
        let (path, prefix) = (path.clone(), prefix.to_string());
        tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..total).step_by(n) {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                let r = post(&client, &path, kind.body(&prefix, i)).await;
                out.push(r.map(|()| due.elapsed()).map_err(|e| format!("{e:#}")));
            }
            out
        })
    });
    collect(futures::future::join_all(workers).await, start.into_std())
}

fn collect(results: Vec<Result<Vec<Result<Duration, String>>, tokio::task::JoinError>>, start: Instant) -> Creates {
    let elapsed = start.elapsed();
    let mut c = Creates { latencies: Vec::new(), errors: 0, first_error: None, elapsed };
    for r in results {
        match r {
            Ok(rs) => {
                for r in rs {
                    match r {
                        Ok(d) => c.latencies.push(d),
                        Err(e) => {
                            c.errors += 1;
                            c.first_error.get_or_insert(e);
                        }
                    }
                }
            }
            Err(e) => {
                c.errors += 1;
                c.first_error.get_or_insert(e.to_string());
            }
        }
    }
    c.latencies.sort();
    c
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

#[derive(Deserialize)]
struct ListShape {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    rows: Vec<serde::de::IgnoredAny>,
}

/// One whole list: how long until its last byte, its size, and how many items (or Table rows) it held.
#[derive(Debug)]
pub struct Listed {
    pub elapsed: Duration,
    pub bytes: usize,
    pub items: usize,
}

pub const JSON: &str = "application/json";
/// What `kubectl get` asks for: a server-side Table.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// GETs `path` once (the time counts until the whole body has arrived; parsing it is not counted).
pub async fn list_once(client: &Client, path: &str, accept: &str) -> Result<Listed> {
    let t = Instant::now();
    let text = get(client, path, accept).await?;
    let elapsed = t.elapsed();
    let shape: ListShape = serde_json::from_str(&text).with_context(|| format!("decoding the list of {path}"))?;
    Ok(Listed { elapsed, bytes: text.len(), items: shape.items.len() + shape.rows.len() })
}

/// Walks `path` in pages of `limit`: each page's latency, and the items seen.
pub async fn list_paged(client: &Client, path: &str, limit: usize) -> Result<(Vec<Duration>, usize)> {
    let mut pages = Vec::new();
    let mut items = 0;
    let mut cont: Option<String> = None;
    // Bounded: a server that never ends the walk fails the phase instead of looping forever.
    for _ in 0..100_000 {
        let url = match &cont {
            None => format!("{path}?limit={limit}"),
            Some(c) => format!("{path}?limit={limit}&continue={c}"),
        };
        let t = Instant::now();
        let text = get(client, &url, JSON).await?;
        pages.push(t.elapsed());
        let shape: ListShape = serde_json::from_str(&text).context("decoding a page")?;
        items += shape.items.len();
        match shape.metadata.continue_token.filter(|c| !c.is_empty()) {
            Some(c) => cont = Some(c),
            None => return Ok((pages, items)),
        }
    }
    bail!("listing {path} in pages of {limit} did not end after 100000 pages")
}

/// The outcome of the watch phase.
#[derive(Debug)]
pub struct Watched {
    /// Per delivery: from the create's response to the watcher reading the event (0 when the event came
    /// first), ascending.
    pub from_response: Vec<Duration>,
    /// Per delivery: from the create's request being sent, ascending.
    pub from_request: Vec<Duration>,
    /// Per delivery: how long after the first watcher to see the same event this watcher saw it (the
    /// fan-out's own cost, independent of the write's latency), ascending.
    pub behind_first: Vec<Duration>,
    /// Deliveries that arrived before the create's response.
    pub early: usize,
    /// Deliveries expected but not seen before the deadline.
    pub missing: usize,
    pub create_errors: usize,
}

#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: WatchObject,
}
#[derive(Deserialize)]
struct WatchObject {
    #[serde(default)]
    metadata: WatchObjectMeta,
}
#[derive(Deserialize, Default)]
struct WatchObjectMeta {
    #[serde(default)]
    name: String,
}

/// `watchers` watches on the ConfigMaps of `ns` (each its own connection, from the current revision), then
/// one client creates `events` ConfigMaps at `rate` per second; measures each event's delivery to each
/// watcher.
pub async fn watch_fanout(
    config: &kube::Config,
    ns: &str,
    watchers: usize,
    events: usize,
    rate: f64,
) -> Result<Watched> {
    let creator = Client::try_from(config.clone())?;
    let list = get(&creator, &format!("/api/v1/namespaces/{ns}/configmaps?limit=1"), JSON).await?;
    let rv = serde_json::from_str::<ListShape>(&list)?.metadata.resource_version;
    let path = format!("/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=600");
    // Open every watch before the first create: each request returns once the server answered its headers.
    let streams = try_join_all((0..watchers).map(|_| {
        let path = path.clone();
        let config = config.clone();
        async move {
            let client = Client::try_from(config)?;
            let req = http::Request::get(path).body(Vec::new())?;
            anyhow::Ok(client.request_stream(req).await?)
        }
    }))
    .await
    .context("opening the watches")?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(events as f64 / rate) + Duration::from_secs(60);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(async move {
                let mut stream = Box::pin(stream);
                let mut seen: Vec<(usize, Instant)> = Vec::with_capacity(events);
                let mut line = String::new();
                while seen.len() < events {
                    line.clear();
                    match tokio::time::timeout_at(deadline, stream.read_line(&mut line)).await {
                        Ok(Ok(0)) | Err(_) => break,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(anyhow::Error::from(e)),
                    }
                    let now = Instant::now();
                    let Ok(ev) = serde_json::from_str::<WatchLine>(&line) else { continue };
                    if ev.kind == "ADDED"
                        && let Some(i) = ev.object.metadata.name.strip_prefix("w-").and_then(|s| s.parse().ok())
                    {
                        seen.push((i, now));
                    }
                }
                Ok(seen)
            })
        })
        .collect();

    let start = tokio::time::Instant::now();
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let mut sent: HashMap<usize, (Instant, Instant)> = HashMap::with_capacity(events);
    let mut create_errors = 0;
    for i in 0..events {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let t0 = Instant::now();
        match post(&creator, &path, Kind::ConfigMap.body("w", i)).await {
            Ok(()) => {
                sent.insert(i, (t0, Instant::now()));
            }
            Err(_) => create_errors += 1,
        }
    }
    let mut out = Watched {
        from_response: Vec::new(),
        from_request: Vec::new(),
        behind_first: Vec::new(),
        early: 0,
        missing: 0,
        create_errors,
    };
    let mut all = Vec::with_capacity(watchers);
    for reader in readers {
        all.push(reader.await??);
    }
    let mut first: HashMap<usize, Instant> = HashMap::with_capacity(events);
    for &(i, at) in all.iter().flatten() {
        first.entry(i).and_modify(|f| *f = (*f).min(at)).or_insert(at);
    }
    for seen in all {
        out.missing += sent.len().saturating_sub(seen.len());
        for (i, at) in seen {
            out.behind_first.push(at.saturating_duration_since(first[&i]));
            let Some(&(t0, t1)) = sent.get(&i) else { continue };
            if at < t1 {
                out.early += 1;
            }
            out.from_response.push(at.saturating_duration_since(t1));
            out.from_request.push(at.saturating_duration_since(t0));
        }
    }
    out.from_response.sort();
    out.from_request.sort();
    out.behind_first.sort();
    Ok(out)
}

/// The size of one stored object as the server returns it.
pub async fn object_bytes(client: &Client, path: &str) -> Result<usize> {
    Ok(get(client, path, JSON).await?.len())
}
