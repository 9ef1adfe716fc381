//! Watch fan-out over a [`Store`]: every committed write is published, in revision order, to every
//! subscriber through a broadcast channel.
//!
//! Writes go through [`WatchedStore`], which serialises them with its own lock and publishes each event
//! before releasing it, so subscribers always see strictly increasing revisions. A subscriber that falls
//! behind the channel's capacity gets `Lagged` and is expected to catch up with [`Store::events_since`]
//! (see the API server's watch code), which is also how a watch from an old revision starts.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use super::{Event, Result, Revision, Store};

/// How many events the broadcast channel holds for a slow subscriber before it lags.
const CHANNEL_CAPACITY: usize = 4096;

/// A [`Store`] plus the broadcast of its committed events.
pub struct WatchedStore {
    store: Arc<dyn Store>,
    write_lock: Mutex<()>,
    events: broadcast::Sender<Arc<Event>>,
}

impl std::fmt::Debug for WatchedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedStore").finish_non_exhaustive()
    }
}

impl WatchedStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (events, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { store, write_lock: Mutex::new(()), events }
    }

    /// The underlying store, for reads (reads need no serialisation).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A receiver of every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    pub fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        self.write(key, |store| store.create(key, value))
    }

    pub fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision> {
        self.write(key, |store| store.update(key, value, expected_mod_revision))
    }

    pub fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        self.write(key, |store| store.delete(key, expected_mod_revision))
    }

    pub fn compact(&self, keep_last: Revision) -> Result<Revision> {
        let _guard = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.store.compact(keep_last)
    }

    /// Runs one write and publishes its event while still holding the write lock, so events reach the
    /// channel in revision order. The event is read back from the log: it then carries exactly what a
    /// watch replaying the log would see (kind, previous value).
    fn write(&self, key: &str, op: impl FnOnce(&dyn Store) -> Result<Revision>) -> Result<Revision> {
        let _guard = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let revision = op(self.store.as_ref())?;
        match self.store.events_since(revision - 1, key) {
            Ok(events) => {
                if let Some(event) = events.into_iter().find(|e| e.kv.mod_revision == revision) {
                    // No receivers is fine: nobody watches yet.
                    let _ = self.events.send(Arc::new(event));
                }
            }
            // The write is durable; only its notification failed. Watchers that miss it would silently
            // diverge, so log loudly; a compaction racing here cannot happen (it takes the same lock).
            Err(err) => {
                tracing::error!(%key, revision, error = %err, "could not read back a committed write for watchers")
            }
        }
        Ok(revision)
    }
}
