//! The image feed: watches Pending pods, and for every pod bound to a node whose images are in the
//! server's [`ImageStore`], makes sure that node's agent has them: it asks the agent
//! (`GET /images/present?id=`) and, if not, streams the archive into `POST /images/load` over the same
//! mutual TLS the API server uses for logs and exec. An Event on the pod says what was shipped and how long
//! it took. The agent retries the pod's containers as soon as a load completes.
//!
//! Only Pending pods are watched (a field selector), so the feed holds nothing for the running ones.
//! Each (node, image) is shipped once per server lifetime; two ships run at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, Request, StatusCode, header};
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::ImageStore;
use crate::api::proxy;

/// Ships in flight at once (each is a disk read and a `docker load` on a node).
const PARALLEL_SHIPS: usize = 2;
/// Attempts per ship before waiting for the pod's next update.
const ATTEMPTS: u32 = 5;

type Key = (String, String);

/// Runs the feed until the process ends.
pub async fn run(client: kube::Client, store: Arc<ImageStore>, tls: Arc<rustls::ClientConfig>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields("status.phase=Pending");
    let mut stream = std::pin::pin!(watcher(pods, config).default_backoff().applied_objects());
    // (node, image id) shipped or being shipped.
    let claimed: Arc<Mutex<HashSet<Key>>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_SHIPS));
    while let Some(item) = stream.next().await {
        let pod = match item {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(error = %e, "image feed: pod watch failed; retrying");
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
        let spec = pod.spec.as_ref().expect("checked above");
        let images = spec.init_containers.iter().flatten().chain(&spec.containers).filter_map(|c| c.image.clone());
        for image in images {
            let Some((id, path)) = store.find(&image) else { continue };
            let key = (node.clone(), id.clone());
            if !claimed.lock().expect("feed lock").insert(key.clone()) {
                continue;
            }
            let job = Ship { client: client.clone(), tls: tls.clone(), node: node.clone(), image, id, path };
            let (claimed, slots, pod) = (claimed.clone(), slots.clone(), pod.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire().await;
                if let Err(e) = job.run(&pod).await {
                    tracing::warn!(node = %job.node, image = %job.image, error = %e, "cannot ship the image");
                    event(&job.client, &pod, "Warning", "ImageShipFailed", e).await;
                    // The pod's next update (its back-off) claims it again.
                    claimed.lock().expect("feed lock").remove(&key);
                }
            });
        }
    }
}

struct Ship {
    client: kube::Client,
    tls: Arc<rustls::ClientConfig>,
    node: String,
    image: String,
    id: String,
    path: std::path::PathBuf,
}

impl Ship {
    async fn run(&self, pod: &Pod) -> Result<(), String> {
        let node = Api::<Node>::all(self.client.clone()).get(&self.node).await.map_err(|e| e.to_string())?;
        let node = serde_json::to_value(&node).map_err(|e| e.to_string())?;
        let endpoint = proxy::endpoint_of(&node).map_err(|e| e.to_string())?;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
            }
            let started = Instant::now();
            match self.present(&endpoint).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    last = e;
                    continue;
                }
            }
            match self.load(&endpoint).await {
                Ok(bytes) => {
                    let message = format!(
                        "Image \"{}\" ({:.1} MB) sent to node {} in {:.2}s (no registry: from the server's image store)",
                        self.image,
                        bytes as f64 / 1e6,
                        self.node,
                        started.elapsed().as_secs_f64()
                    );
                    tracing::info!(node = %self.node, image = %self.image, bytes, "image shipped");
                    event(&self.client, pod, "Normal", "ImageShipped", message).await;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(format!("image \"{}\" could not be sent to node {}: {last}", self.image, self.node))
    }

    /// Sends `request` to the agent and returns its status and body.
    async fn send(
        &self,
        endpoint: &proxy::Endpoint,
        request: Request<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>>,
    ) -> Result<(StatusCode, String), String> {
        let stream = proxy::connect(&self.tls, endpoint).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn present(&self, endpoint: &proxy::Endpoint) -> Result<bool, String> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("/images/present?id={}", self.id))
            .header(header::HOST, endpoint.authority())
            .body(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
            .map_err(|e| e.to_string())?;
        match self.send(endpoint, request).await? {
            (StatusCode::OK, _) => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (status, body) => Err(format!("agent answered {status}: {body}")),
        }
    }

    /// Streams the archive to the agent; returns its size.
    async fn load(&self, endpoint: &proxy::Endpoint) -> Result<u64, String> {
        let file = tokio::fs::File::open(&self.path).await.map_err(|e| format!("{}: {e}", self.path.display()))?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
        let request = Request::builder()
            .method(Method::POST)
            .uri("/images/load")
            .header(header::HOST, endpoint.authority())
            .header(header::CONTENT_TYPE, "application/x-tar")
            .header(header::CONTENT_LENGTH, size)
            .body(StreamBody::new(frames).boxed_unsync())
            .map_err(|e| e.to_string())?;
        match self.send(endpoint, request).await? {
            (status, _) if status.is_success() => Ok(size),
            (status, body) => Err(format!("agent answered {status}: {}", body.trim())),
        }
    }
}

/// An Event on the pod from the image feed.
async fn event(client: &kube::Client, pod: &Pod, kind: &str, reason: &str, message: String) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let event: Result<Event, _> = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": namespace, "name": name,
                           "uid": pod.metadata.uid},
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "flotilla-image-feed"},
        "reportingComponent": "flotilla-image-feed",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }));
    if let Ok(event) = event {
        let _ = Api::<Event>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &event).await;
    }
}
