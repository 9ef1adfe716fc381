//! Watch fan-out over a [`Store`]: every committed write is published, in revision order, to every
//! subscriber through a broadcast channel.
//!
//! The store itself feeds the channel through its event sink ([`Store::set_event_sink`]): the SQLite backend
//! after each group commit, the etcd backend from an etcd watch on the whole key space (so writes made by
//! other API servers reach this server's watchers too). Writes therefore need no lock here, and concurrent
//! writers share commits. A subscriber that falls behind the channel's capacity gets `Lagged` and is
//! expected to catch up with [`Store::events_since`] (see the API server's watch code), which is also how a
//! watch from an old revision starts.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Event, Result, Revision, Store};

/// How many events the broadcast channel holds for a slow subscriber before it lags.
const CHANNEL_CAPACITY: usize = 4096;

/// A [`Store`] plus the broadcast of its committed events.
pub struct WatchedStore {
    store: Arc<dyn Store>,
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
        let sender = events.clone();
        store.set_event_sink(Arc::new(move |batch: Vec<Event>| {
            for event in batch {
                // No receivers is fine: nobody watches yet.
                let _ = sender.send(Arc::new(event));
            }
        }));
        Self { store, events }
    }

    /// The underlying store, for reads.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A receiver of every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    pub fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        self.store.create(key, value)
    }

    pub fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision> {
        self.store.update(key, value, expected_mod_revision)
    }

    pub fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        self.store.delete(key, expected_mod_revision)
    }

    pub fn compact(&self, keep_last: Revision) -> Result<Revision> {
        self.store.compact(keep_last)
    }
}
