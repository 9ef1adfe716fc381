//! Watches: newline-delimited JSON events streamed in one chunked response, as kube-apiserver sends them.
//!
//! A watch subscribes to the store's broadcast first, then replays what it must (the current objects as
//! synthetic ADDED events for resourceVersion "" or "0" or `sendInitialEvents=true` — the latter ending
//! with a BOOKMARK annotated `k8s.io/initial-events-end` — else the log after the given revision), then
//! follows the broadcast, skipping anything at or below the last revision it sent. A watcher that lags
//! behind the broadcast re-reads the log from its last revision. A revision below the compaction floor
//! ends the watch with an ERROR event carrying a 410 Expired Status (HTTP 200), which is what makes
//! kube-rs and client-go relist.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::errors::{ApiError, ApiResult};
use super::registry::{ListOptions, decode_at, selected};
use super::resources::Resource;
use super::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, EventKind, Revision, StoreError};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);

/// Default watch length when the client gives no timeoutSeconds (kube-apiserver picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// None or Some("0"): start with the current state.
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// `sendInitialEvents`: Some(true) starts with the current state even for a given resourceVersion
    /// and marks its end with a BOOKMARK annotated `k8s.io/initial-events-end: "true"` (the streaming
    /// list of kube-apiserver 1.33); Some(false) never sends it; None is the legacy rule (current state
    /// for resourceVersion "" or "0", without the marker).
    pub send_initial_events: Option<bool>,
    /// Some(includeObject query value) when the client asked for `as=Table` (`kubectl get -w`): each
    /// ADDED/MODIFIED/DELETED object is then sent as a one-row Table, as kube-apiserver does.
    pub table: Option<String>,
}

/// Starts a watch and returns the streaming response.
pub async fn watch(state: Arc<AppState>, res: &'static Resource, req: WatchRequest) -> ApiResult<Response> {
    let given: Option<Revision> = match req.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion: {rv}")))?),
    };
    let start = match req.send_initial_events {
        Some(true) => Start::InitialEvents,
        Some(false) => match given {
            Some(rev) => Start::From(rev),
            None => Start::From(state.blocking(|s| s.store().current_revision()).await.map_err(ApiError::from_store)?),
        },
        None => given.map_or(Start::Current, Start::From),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let rx_events = state.store.subscribe();
    tokio::spawn(async move {
        let mut watcher = Watcher { state, res, req, tx, last: 0, sent_columns: false };
        watcher.run(start, rx_events).await;
    });
    let body =
        Body::from_stream(futures::StreamExt::map(ReceiverStream::new(rx), Ok::<Bytes, std::convert::Infallible>));
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Synthetic ADDED events for the current state (legacy resourceVersion "" or "0").
    Current,
    /// The current state, then the initial-events-end BOOKMARK.
    InitialEvents,
    /// The log after this revision.
    From(Revision),
}

struct Watcher {
    state: Arc<AppState>,
    res: &'static Resource,
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    /// The newest revision this watch has accounted for (sent, or filtered out).
    last: Revision,
    /// Whether a Table event with columnDefinitions went out: later ones leave them empty, as
    /// kube-apiserver does to save bandwidth (kubectl's printer reuses the last columns it saw).
    sent_columns: bool,
}

/// The client went away: stop.
struct Gone;

impl Watcher {
    async fn run(&mut self, start: Start, mut events: broadcast::Receiver<Arc<Event>>) {
        let prefix = self.res.list_prefix(self.req.namespace.as_deref());
        let initial = match start {
            Start::Current => self.send_current().await,
            Start::InitialEvents => match self.send_current().await {
                Ok(()) => self.send_bookmark(true).await,
                Err(gone) => Err(gone),
            },
            Start::From(rev) => {
                self.last = rev;
                self.catch_up(&prefix).await
            }
        };
        if initial.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(self.req.timeout.unwrap_or(DEFAULT_TIMEOUT));
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmarks.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = bookmarks.tick(), if self.req.bookmarks => {
                    if self.send_bookmark(false).await.is_err() {
                        return;
                    }
                }
                received = events.recv() => match received {
                    Ok(event) => {
                        if event.kv.mod_revision <= self.last {
                            continue;
                        }
                        let result = if event.kv.key.starts_with(&prefix) {
                            self.send_event(&event).await
                        } else {
                            Ok(())
                        };
                        self.last = event.kv.mod_revision;
                        if result.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if self.catch_up(&prefix).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// A BOOKMARK at the newest revision accounted for: an object of the watched kind with only
    /// `metadata.resourceVersion` (and, ending the initial events, the `k8s.io/initial-events-end`
    /// annotation), as kube-apiserver sends it.
    async fn send_bookmark(&mut self, initial_events_end: bool) -> Result<(), Gone> {
        let mut metadata = json!({"resourceVersion": self.last.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let bookmark = json!({
            "type": "BOOKMARK",
            "object": {"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata},
        });
        self.send(&bookmark).await
    }

    /// Synthetic ADDED events for every current object, then the watch continues from the list's revision.
    async fn send_current(&mut self) -> Result<(), Gone> {
        let opts =
            ListOptions { labels: self.req.labels.clone(), fields: self.req.fields.clone(), ..Default::default() };
        match self.state.list_objs(self.res, self.req.namespace.as_deref(), &opts).await {
            Ok(page) => {
                self.last = page.revision;
                for obj in page.items {
                    self.send(&json!({"type": "ADDED", "object": obj})).await?;
                }
                Ok(())
            }
            Err(err) => {
                let _ = self.send(&json!({"type": "ERROR", "object": err.status()})).await;
                Err(Gone)
            }
        }
    }

    /// Sends every logged event after `self.last`; a compacted revision ends the watch with 410.
    async fn catch_up(&mut self, prefix: &str) -> Result<(), Gone> {
        let (since, p) = (self.last, prefix.to_string());
        match self.state.blocking(move |s| s.store().events_since(since, &p)).await {
            Ok(events) => {
                for event in events {
                    if event.kv.mod_revision <= self.last {
                        continue;
                    }
                    self.send_event(&event).await?;
                    self.last = event.kv.mod_revision;
                }
                Ok(())
            }
            Err(StoreError::Compacted { floor }) => {
                let err = ApiError::expired(format!("too old resource version: {since} ({floor})"));
                let _ = self.send(&json!({"type": "ERROR", "object": err.status()})).await;
                Err(Gone)
            }
            Err(other) => {
                let _ = self.send(&json!({"type": "ERROR", "object": ApiError::from_store(other).status()})).await;
                Err(Gone)
            }
        }
    }

    /// Turns one store event into the watch event this watcher's selectors call for, if any: an object
    /// that stops matching is DELETED for this watcher, one that starts matching is ADDED.
    async fn send_event(&mut self, event: &Event) -> Result<(), Gone> {
        let rev = event.kv.mod_revision;
        let old = match &event.prev_kv {
            Some(prev) => decode_at(&prev.value, rev).ok(),
            None => None,
        };
        let old_matches = old.as_ref().is_some_and(|o| selected(o, &self.req.labels, &self.req.fields));
        let line = match event.kind {
            EventKind::Delete => old.filter(|_| old_matches).map(|o| json!({"type": "DELETED", "object": o})),
            EventKind::Put => {
                let Ok(new) = decode_at(&event.kv.value, rev) else { return Ok(()) };
                let new_matches = selected(&new, &self.req.labels, &self.req.fields);
                match (old_matches, new_matches) {
                    (true, true) => Some(json!({"type": "MODIFIED", "object": new})),
                    (false, true) => Some(json!({"type": "ADDED", "object": new})),
                    (true, false) => old.map(|o| json!({"type": "DELETED", "object": o})),
                    (false, false) => None,
                }
            }
        };
        match line {
            Some(line) => self.send(&line).await,
            None => Ok(()),
        }
    }

    /// For a Table watch, turns an ADDED/MODIFIED/DELETED event's object into a one-row Table; BOOKMARK
    /// and ERROR events pass unchanged.
    fn as_table(&mut self, value: &Value) -> Option<Value> {
        let include = self.req.table.as_deref()?;
        let kind = value.get("type").and_then(Value::as_str)?;
        if !matches!(kind, "ADDED" | "MODIFIED" | "DELETED") {
            return None;
        }
        let obj = value.get("object")?;
        let list_meta =
            json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
        let mut table =
            crate::api::table::to_table(self.res.group, self.res.plural, std::slice::from_ref(obj), list_meta, include);
        if self.sent_columns {
            table["columnDefinitions"] = json!([]);
        }
        self.sent_columns = true;
        Some(json!({"type": kind, "object": table}))
    }

    async fn send(&mut self, value: &Value) -> Result<(), Gone> {
        let table = self.as_table(value);
        let mut bytes = serde_json::to_vec(table.as_ref().unwrap_or(value)).unwrap_or_default();
        bytes.push(b'\n');
        self.tx.send(Bytes::from(bytes)).await.map_err(|_| Gone)
    }
}
