//! The revisioned key-value store behind the API server: an etcd-like log in the design of k3s's kine.
//!
//! Every write appends a new revision; the revision of a key's latest write is its `mod_revision`, which the
//! API server exposes as `resourceVersion`. Updates are compare-and-swap on that revision, watches replay the
//! log from any revision the store still retains, and compaction drops superseded history below a floor so
//! the store stays bounded. The [`Store`] trait is backend-neutral (house rule: one small trait per backend);
//! [`SqliteStore`] is the embedded default, and [`EtcdStore`] (cargo feature `etcd`) lets several API
//! servers share one etcd cluster.
//!
//! The trait is synchronous on purpose: the SQLite backend blocks on disk I/O (every acknowledged write is
//! fsynced), so the async API server is expected to call it from `tokio::task::spawn_blocking` rather than
//! from a runtime worker thread.

#[cfg(feature = "etcd")]
mod etcd;
mod hub;
mod sqlite;
pub mod timing;

#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
pub use hub::WatchedStore;
pub use sqlite::{MAX_BATCH, SqliteStore};

/// Where committed events go: called with each group of committed writes' events, in revision order, and
/// never concurrently with itself. See [`Store::set_event_sink`].
pub type EventSink = std::sync::Arc<dyn Fn(Vec<Event>) + Send + Sync>;

/// A position in the store's log. Revisions start at 1, strictly increase across all keys, and are never
/// reused; 0 means "no revision" (an empty store, or a key that has never been written).
pub type Revision = i64;

/// Errors from a [`Store`]. Backend failures are flattened to a message so the trait does not leak the
/// backend's own error type to callers.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The key does not exist (never created, or deleted).
    #[error("key not found")]
    NotFound,
    /// `create` was called for a key that currently exists.
    #[error("key already exists")]
    AlreadyExists,
    /// A compare-and-swap lost: the key's current `mod_revision` is not the one the caller expected.
    #[error("revision conflict: the key's current revision is {current}")]
    Conflict {
        /// The key's current `mod_revision`, so the caller can re-read and retry.
        current: Revision,
    },
    /// The requested revision is older than the compaction floor; its history is gone.
    #[error("revision has been compacted; the oldest retained revision is {floor}")]
    Compacted {
        /// The compaction floor: the oldest revision that can still be read or watched from.
        floor: Revision,
    },
    /// The caller passed something the store cannot act on (an empty key, a future revision, a negative
    /// retention).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend failed (I/O, corruption, a full disk). The message comes from the backend.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Shorthand for results from a [`Store`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One key's state at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/pods/default/web-0`.
    pub key: String,
    /// The stored bytes; empty in the `kv` of a delete event.
    pub value: Vec<u8>,
    /// The revision at which this incarnation of the key was created (a key deleted and created again
    /// gets a new one).
    pub create_revision: Revision,
    /// The revision of the write that produced this state.
    pub mod_revision: Revision,
}

/// What a log entry did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A create or an update.
    Put,
    /// A delete.
    Delete,
}

/// One entry of the log, as a watch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the write. For a delete, `value` is empty and `mod_revision` is the delete's revision.
    pub kv: KeyValue,
    /// The key before the write; `None` for a create.
    pub prev_kv: Option<KeyValue>,
}

/// A revisioned key-value store. Implementations must be safe to share between threads; every method that
/// writes returns only once the write is durable (an acknowledged write survives a crash).
pub trait Store: Send + Sync {
    /// Creates `key`, failing with [`StoreError::AlreadyExists`] if it currently exists. Returns the new
    /// revision, which is both the key's `create_revision` and `mod_revision`.
    fn create(&self, key: &str, value: &[u8]) -> Result<Revision>;

    /// Returns the current state of `key`, or `None` if it does not exist.
    fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists the keys starting with `prefix`, in key order, together with the revision the list reflects.
    ///
    /// `limit` caps the number of items (`None` for no cap). To page, pass the last key of the previous page
    /// as `continue_after` and the revision it returned as `at_revision`, so every page shows the same
    /// snapshot; a page shorter than `limit` is the last one. `at_revision` older than the compaction floor
    /// fails with [`StoreError::Compacted`].
    fn list(
        &self,
        prefix: &str,
        limit: Option<usize>,
        continue_after: Option<&str>,
        at_revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, Revision)>;

    /// Replaces the value of `key` if its current `mod_revision` is `expected_mod_revision`; otherwise fails
    /// with [`StoreError::Conflict`] carrying the current one. Returns the new revision.
    fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision>;

    /// Deletes `key`, optionally only if its current `mod_revision` is `expected_mod_revision`. Returns the
    /// revision of the delete.
    fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision>;

    /// The newest revision in the store (0 if nothing was ever written).
    fn current_revision(&self) -> Result<Revision>;

    /// Every write after `revision` to a key starting with `prefix`, oldest first. Fails with
    /// [`StoreError::Compacted`] if `revision` is below the compaction floor, because the log would have
    /// gaps; the caller must re-list and watch from the list's revision.
    fn events_since(&self, revision: Revision, prefix: &str) -> Result<Vec<Event>>;

    /// Drops history so that only the newest `keep_last` revisions (and every key's current value) remain,
    /// and returns the new compaction floor. The floor never moves backwards.
    fn compact(&self, keep_last: Revision) -> Result<Revision>;

    /// Sets where this store publishes committed events (replacing any earlier sink); the watch fan-out
    /// ([`WatchedStore`]) installs one. Every event is published once, in revision order, with no gaps
    /// among the events the sink receives after it is set. The SQLite backend publishes its own writes
    /// right after their commit and before acknowledging them; the etcd backend publishes what etcd's
    /// watch reports, which includes other API servers' writes.
    fn set_event_sink(&self, sink: EventSink);
}

/// Which backend an API server keeps its state in (`flotilla server --datastore`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Datastore {
    /// SQLite in `<data-dir>/state.db` (one server).
    #[default]
    Sqlite,
    /// An etcd cluster shared by several servers: its client URLs (`http://host:port`).
    Etcd(Vec<String>),
}

impl std::fmt::Display for Datastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Datastore::Sqlite => f.write_str("sqlite"),
            Datastore::Etcd(endpoints) => {
                let hosts: Vec<&str> = endpoints.iter().map(|e| e.trim_start_matches("http://")).collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

impl std::str::FromStr for Datastore {
    type Err = String;

    /// `sqlite`, or `etcd://HOST:PORT[,HOST:PORT...]` (plain HTTP; etcd's client port, usually 2379).
    fn from_str(spec: &str) -> Result<Self, String> {
        if spec.is_empty() || spec == "sqlite" {
            return Ok(Datastore::Sqlite);
        }
        let Some(hosts) = spec.strip_prefix("etcd://") else {
            return Err(format!("unknown datastore {spec:?}; use `sqlite` or `etcd://HOST:PORT[,HOST:PORT...]`"));
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{}", h.trim_end_matches('/')))
            .collect();
        if endpoints.is_empty() {
            return Err(format!("datastore {spec:?} names no etcd endpoint; e.g. etcd://127.0.0.1:2379"));
        }
        if !cfg!(feature = "etcd") {
            return Err(format!(
                "datastore {spec:?}: this flotilla was built without etcd support; rebuild with `--features etcd`"
            ));
        }
        Ok(Datastore::Etcd(endpoints))
    }
}

impl Datastore {
    /// Opens the store: SQLite at `sqlite_path`, or a connection to etcd. Blocks (etcd: until it answers),
    /// so async callers run it with `spawn_blocking`.
    pub fn open(&self, sqlite_path: &std::path::Path) -> Result<std::sync::Arc<dyn Store>> {
        match self {
            Datastore::Sqlite => Ok(std::sync::Arc::new(SqliteStore::open(sqlite_path)?)),
            #[cfg(feature = "etcd")]
            Datastore::Etcd(endpoints) => Ok(std::sync::Arc::new(EtcdStore::connect(endpoints)?)),
            #[cfg(not(feature = "etcd"))]
            Datastore::Etcd(_) => Err(StoreError::InvalidArgument(
                "this flotilla was built without etcd support; rebuild with `--features etcd`".into(),
            )),
        }
    }
}
