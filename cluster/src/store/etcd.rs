//! The etcd backend of [`Store`], for several API servers sharing one etcd cluster (cargo feature `etcd`).
//!
//! etcd already is a revisioned key-value log, so the mapping is direct (it is the one kine serves etcd's
//! API from): the API's keys are etcd keys, a key's `mod_revision` is etcd's, a create is a transaction
//! "create_revision == 0 → put", an update "mod_revision == expected → put", a delete "exists (and
//! mod_revision == expected) → delete", each falling back to a read of the key so a lost compare-and-swap
//! reports the current revision. Lists are ranges at a revision with a limit; compaction is etcd's.
//!
//! The [`Store`] trait is synchronous, the etcd client async: the store owns a small tokio runtime, each
//! call is spawned on it and the calling thread (a `spawn_blocking` thread in the API server) waits for the
//! answer. Watch fan-out: the event sink is fed from one etcd watch over the whole key space, so a server's
//! watchers see writes made through every server, in etcd's revision order.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient, Txn,
    TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};

use super::{Event, EventKind, EventSink, KeyValue, Result, Revision, Store, StoreError};

/// How long one request may take before the store reports etcd as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to the endpoints may take at startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response accepted: a list of many objects can exceed gRPC's 4 MiB default.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// How long the event feed waits before re-opening a broken watch.
const REWATCH_DELAY: Duration = Duration::from_millis(500);

/// A [`Store`] on an etcd cluster.
pub struct EtcdStore {
    endpoints: Vec<String>,
    /// Owned runtime for the client; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    kv: KvClient,
    watch: WatchClient,
    /// The compaction floor last seen (etcd only reports it in errors); a cache, re-read when stale.
    floor: AtomicI64,
    feed: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

/// Why an etcd call failed, before it is worded as a [`StoreError`].
fn etcd_error(endpoints: &[String], err: etcd_client::Error) -> StoreError {
    let text = err.to_string();
    if text.contains("required revision is a future revision") {
        return StoreError::InvalidArgument("the revision is in the future".into());
    }
    if text.contains("database space exceeded") {
        return StoreError::Backend(format!(
            "no space left: etcd at {} reports its database space is exceeded ({text}); compact and defragment it",
            endpoints.join(",")
        ));
    }
    StoreError::Backend(format!("etcd at {}: {text}", endpoints.join(",")))
}

fn is_compacted(err: &etcd_client::Error) -> bool {
    err.to_string().contains("required revision has been compacted")
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix); `\0` (all keys
/// from the start) for the empty prefix.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn kv_from(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn event_from(event: &etcd_client::Event) -> Option<Event> {
    let kv = event.kv()?;
    let prev_kv = event.prev_kv().map(kv_from);
    Some(match event.event_type() {
        EventType::Put => Event { kind: EventKind::Put, kv: kv_from(kv), prev_kv },
        // etcd's delete event carries only the key and the delete's revision; the trait's carries the deleted
        // incarnation's create_revision too.
        EventType::Delete => Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: Vec::new(),
                create_revision: prev_kv.as_ref().map_or(0, |p| p.create_revision),
                mod_revision: kv.mod_revision(),
            },
            prev_kv,
        },
    })
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port` or `host:port`).
    pub fn connect(endpoints: &[String]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument("no etcd endpoints given".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-etcd")
            .enable_all()
            .build()
            .map_err(|err| StoreError::Backend(format!("starting the etcd client runtime: {err}")))?;
        let eps = endpoints.to_vec();
        let client = runtime.block_on(async move {
            let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
            let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(&eps, Some(options)))
                .await
                .map_err(|_| StoreError::Backend(format!("etcd at {} did not answer", eps.join(","))))?
                .map_err(|err| etcd_error(&eps, err))?;
            // Fail now, with the endpoint in the message, rather than on the first API request.
            let mut kv = client.kv_client();
            tokio::time::timeout(CONNECT_TIMEOUT, kv.get(vec![0u8], Some(GetOptions::new().with_count_only())))
                .await
                .map_err(|_| StoreError::Backend(format!("etcd at {} did not answer", eps.join(","))))?
                .map_err(|err| etcd_error(&eps, err))?;
            Ok::<_, StoreError>(client)
        })?;
        let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
        let watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        Ok(Self {
            endpoints: endpoints.to_vec(),
            runtime: Some(runtime),
            kv,
            watch,
            floor: AtomicI64::new(0),
            feed: Mutex::new(None),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("the runtime lives until drop").handle()
    }

    /// Runs `fut` on the store's runtime and waits for it (with [`REQUEST_TIMEOUT`]). Works from any thread
    /// that may block, including `spawn_blocking` threads of another runtime.
    fn call<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let endpoints = self.endpoints.join(",");
        self.handle().spawn(async move {
            let result = tokio::time::timeout(REQUEST_TIMEOUT, fut).await.unwrap_or_else(|_| {
                Err(StoreError::Backend(format!(
                    "etcd at {endpoints} did not answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            });
            let _ = tx.send(result);
        });
        rx.recv().map_err(|_| StoreError::Backend("the etcd client runtime stopped".into()))?
    }

    /// The revision etcd has compacted to: the oldest revision that can still be read. etcd reports it only
    /// when a read falls below it, so find it by bisecting with count-only reads (about 30 tiny requests,
    /// and only when a request hit the floor or a compaction needs it).
    fn compact_floor(&self) -> Result<Revision> {
        let current = self.current_revision()?;
        let (kv, eps) = (self.kv.clone(), self.endpoints.clone());
        let floor = self.call(async move {
            let readable = |rev: Revision| {
                let (mut kv, eps) = (kv.clone(), eps.clone());
                async move {
                    match kv.get(vec![0u8], Some(GetOptions::new().with_count_only().with_revision(rev))).await {
                        Ok(_) => Ok(true),
                        Err(err) if is_compacted(&err) => Ok(false),
                        Err(err) => Err(etcd_error(&eps, err)),
                    }
                }
            };
            if current < 1 || readable(1).await? {
                return Ok(0);
            }
            // readable(lo) is false, readable(hi) is true (the current revision is always readable).
            let (mut lo, mut hi) = (1, current);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if readable(mid).await? {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            Ok(hi)
        })?;
        self.floor.fetch_max(floor, Ordering::Relaxed);
        Ok(floor)
    }

    /// A lost compare-and-swap: the fallback read of the key tells whether it is absent or at another revision.
    fn lost(response: &etcd_client::TxnResponse) -> StoreError {
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.mod_revision())),
            _ => None,
        });
        match current.flatten() {
            Some(current) => StoreError::Conflict { current },
            None => StoreError::NotFound,
        }
    }

    fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
        header.map(|h| h.revision()).ok_or_else(|| StoreError::Backend("etcd sent a response without a header".into()))
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(feed) = self.feed.lock().unwrap_or_else(PoisonError::into_inner).take() {
            feed.abort();
        }
        // shutdown_background does not block, so dropping the store inside another runtime is fine.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for EtcdStore {
    fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        if key.is_empty() {
            return Err(StoreError::InvalidArgument("the key is empty".into()));
        }
        let (mut kv, eps, key, value) = (self.kv.clone(), self.endpoints.clone(), key.to_string(), value.to_vec());
        self.call(async move {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, value, None)]);
            let response = kv.txn(txn).await.map_err(|err| etcd_error(&eps, err))?;
            if !response.succeeded() {
                return Err(StoreError::AlreadyExists);
            }
            Self::revision_of(response.header())
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let (mut kv, eps, key) = (self.kv.clone(), self.endpoints.clone(), key.to_string());
        self.call(async move {
            let response = kv.get(key, None).await.map_err(|err| etcd_error(&eps, err))?;
            Ok(response.kvs().first().map(kv_from))
        })
    }

    fn list(
        &self,
        prefix: &str,
        limit: Option<usize>,
        continue_after: Option<&str>,
        at_revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, Revision)> {
        let (mut kv, eps) = (self.kv.clone(), self.endpoints.clone());
        let end = prefix_end(prefix.as_bytes());
        // The next page starts right after the last key of the previous one ("\0" is the smallest suffix).
        let start = match continue_after {
            Some(after) => [after.as_bytes(), &[0]].concat(),
            None if prefix.is_empty() => vec![0],
            None => prefix.as_bytes().to_vec(),
        };
        let mut options = GetOptions::new().with_range(end);
        if let Some(limit) = limit {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(rev) = at_revision {
            if rev <= 0 {
                return Err(StoreError::InvalidArgument(format!("revision {rev} is not a revision")));
            }
            options = options.with_revision(rev);
        }
        let result = self.call(async move {
            match kv.get(start, Some(options)).await {
                Ok(response) => {
                    let kvs = response.kvs().iter().map(kv_from).collect::<Vec<_>>();
                    Ok(Ok((kvs, at_revision.map_or_else(|| Self::revision_of(response.header()), Ok)?)))
                }
                Err(err) if is_compacted(&err) => Ok(Err(())),
                Err(err) => Err(etcd_error(&eps, err)),
            }
        })?;
        match result {
            Ok(page) => Ok(page),
            Err(()) => Err(StoreError::Compacted { floor: self.compact_floor()? }),
        }
    }

    fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision> {
        let (mut kv, eps, key, value) = (self.kv.clone(), self.endpoints.clone(), key.to_string(), value.to_vec());
        self.call(async move {
            // create_revision > 0: the key exists (mod_revision == 0 alone would also match an absent key).
            let txn = Txn::new()
                .when([
                    Compare::create_revision(key.clone(), CompareOp::Greater, 0),
                    Compare::mod_revision(key.clone(), CompareOp::Equal, expected_mod_revision),
                ])
                .and_then([TxnOp::put(key.clone(), value, None)])
                .or_else([TxnOp::get(key, None)]);
            let response = kv.txn(txn).await.map_err(|err| etcd_error(&eps, err))?;
            if !response.succeeded() {
                return Err(Self::lost(&response));
            }
            Self::revision_of(response.header())
        })
    }

    fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        let (mut kv, eps, key) = (self.kv.clone(), self.endpoints.clone(), key.to_string());
        self.call(async move {
            let mut compares = vec![Compare::create_revision(key.clone(), CompareOp::Greater, 0)];
            if let Some(expected) = expected_mod_revision {
                compares.push(Compare::mod_revision(key.clone(), CompareOp::Equal, expected));
            }
            let txn = Txn::new()
                .when(compares)
                .and_then([TxnOp::delete(key.clone(), Some(DeleteOptions::new()))])
                .or_else([TxnOp::get(key, None)]);
            let response = kv.txn(txn).await.map_err(|err| etcd_error(&eps, err))?;
            if !response.succeeded() {
                return Err(Self::lost(&response));
            }
            Self::revision_of(response.header())
        })
    }

    fn current_revision(&self) -> Result<Revision> {
        let (mut kv, eps) = (self.kv.clone(), self.endpoints.clone());
        self.call(async move {
            let response = kv
                .get(vec![0u8], Some(GetOptions::new().with_count_only()))
                .await
                .map_err(|err| etcd_error(&eps, err))?;
            Self::revision_of(response.header())
        })
    }

    fn events_since(&self, revision: Revision, prefix: &str) -> Result<Vec<Event>> {
        let current = self.current_revision()?;
        if revision >= current {
            return Ok(Vec::new());
        }
        let (mut watch, eps, prefix) = (self.watch.clone(), self.endpoints.clone(), prefix.to_string());
        let outcome = self.call(async move {
            // Watch every key, not just the prefix: the write at `current` is then certain to arrive, which
            // tells when the history is complete. Starting at `revision` itself (not revision + 1) makes etcd
            // refuse exactly when `revision` is below the compaction floor, as the trait requires.
            let options = WatchOptions::new().with_all_keys().with_prev_key().with_start_revision(revision.max(1));
            let mut stream = watch.watch(vec![0u8], Some(options)).await.map_err(|err| etcd_error(&eps, err))?;
            let mut events = Vec::new();
            loop {
                let Some(response) = stream.message().await.map_err(|err| etcd_error(&eps, err))? else {
                    return Err(StoreError::Backend(format!("etcd at {} ended a watch early", eps.join(","))));
                };
                if response.canceled() {
                    if response.compact_revision() > 0 {
                        return Ok(Err(response.compact_revision()));
                    }
                    return Err(StoreError::Backend(format!(
                        "etcd at {} cancelled a watch: {}",
                        eps.join(","),
                        response.cancel_reason()
                    )));
                }
                let mut newest = 0;
                for event in response.events() {
                    let Some(event) = event_from(event) else { continue };
                    newest = newest.max(event.kv.mod_revision);
                    if event.kv.mod_revision > revision && event.kv.key.starts_with(&prefix) {
                        events.push(event);
                    }
                }
                if newest >= current {
                    return Ok(Ok(events));
                }
            }
        })?;
        outcome.map_err(|floor| {
            self.floor.fetch_max(floor, Ordering::Relaxed);
            StoreError::Compacted { floor }
        })
    }

    fn compact(&self, keep_last: Revision) -> Result<Revision> {
        if keep_last < 0 {
            return Err(StoreError::InvalidArgument(format!("keep_last must not be negative (got {keep_last})")));
        }
        let current = self.current_revision()?;
        let target = current.saturating_sub(keep_last);
        let cached = self.floor.load(Ordering::Relaxed);
        if target <= cached {
            return Ok(cached);
        }
        let (mut kv, eps) = (self.kv.clone(), self.endpoints.clone());
        // Physical: etcd answers only once the compaction is applied, so the space is being reclaimed.
        let compacted = self.call(async move {
            match kv.compact(target, Some(CompactionOptions::new().with_physical())).await {
                Ok(_) => Ok(true),
                // Someone (another server) already compacted past the target.
                Err(err) if is_compacted(&err) => Ok(false),
                Err(err) => Err(etcd_error(&eps, err)),
            }
        })?;
        if compacted {
            self.floor.fetch_max(target, Ordering::Relaxed);
            return Ok(self.floor.load(Ordering::Relaxed));
        }
        self.compact_floor()
    }

    fn set_event_sink(&self, sink: EventSink) {
        // Start right after the current revision, so the sink sees every write from now on with no gap.
        let mut next = match self.current_revision() {
            Ok(rev) => rev + 1,
            Err(err) => {
                tracing::error!(error = %err, "etcd: could not read the current revision; watch events start at etcd's next write");
                0
            }
        };
        let (watch, eps) = (self.watch.clone(), self.endpoints.join(","));
        let task = self.handle().spawn(async move {
            loop {
                let mut watch = watch.clone();
                let options = WatchOptions::new().with_all_keys().with_prev_key().with_start_revision(next);
                match watch.watch(vec![0u8], Some(options)).await {
                    Ok(mut stream) => loop {
                        match stream.message().await {
                            Ok(Some(response)) => {
                                if response.canceled() {
                                    // Compacted past the events not yet delivered: they are lost for this
                                    // server's watchers, which is as bad as a gap; say so and resume.
                                    if response.compact_revision() > 0 {
                                        tracing::error!(
                                            endpoints = %eps, from = next, compacted = response.compact_revision(),
                                            "etcd compacted events this server had not delivered to its watchers yet"
                                        );
                                        next = response.compact_revision();
                                    }
                                    break;
                                }
                                let events: Vec<Event> = response.events().iter().filter_map(event_from).collect();
                                if let Some(last) = events.last() {
                                    next = last.kv.mod_revision + 1;
                                    sink(events);
                                }
                            }
                            Ok(None) => break,
                            Err(err) => {
                                tracing::warn!(endpoints = %eps, error = %err, "etcd watch broke; re-watching");
                                break;
                            }
                        }
                    },
                    Err(err) => tracing::warn!(endpoints = %eps, error = %err, "etcd watch failed; retrying"),
                }
                tokio::time::sleep(REWATCH_DELAY).await;
            }
        });
        if let Some(old) = self.feed.lock().unwrap_or_else(PoisonError::into_inner).replace(task) {
            old.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/pods/"), b"/pods0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
