//! [`CatalogStore`]: the narrow key-value seam under the catalog, with an
//! etcd implementation for clusters and an embedded one for a single process.
//!
//! Keys are UTF-8 strings; values are bytes (the typed layer stores JSON).
//! Both implementations pass the same conformance suite.

pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::Result;

/// A shared, type-erased catalog store.
pub type CatalogStoreRef = Arc<dyn CatalogStore>;

/// One key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The full key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or changed.
    Put(Entry),
    /// The key was deleted (or its lease expired).
    Delete(String),
}

/// A snapshot of a prefix and the changes after it. When `events` closes,
/// the watch was lost (compaction, connection loss): the watcher must take a
/// new snapshot.
pub struct Watch {
    /// Every key under the prefix at the snapshot.
    pub snapshot: Vec<Entry>,
    /// The changes after the snapshot, in order.
    pub events: mpsc::Receiver<WatchEvent>,
}

/// Keeps a leased key alive; dropping it ends the lease (the key goes away).
pub struct Lease {
    _guard: tokio_util::sync::DropGuard,
}

impl Lease {
    /// Wraps the cancellation of a keep-alive task.
    pub fn new(cancel: tokio_util::sync::CancellationToken) -> Lease {
        Lease {
            _guard: cancel.drop_guard(),
        }
    }
}

/// The key-value operations the catalog needs.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Lists keys under `prefix` that sort strictly after `after` (a full
    /// key; `None` starts at the prefix), ascending, at most `limit`.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Entry>>;

    /// Counts the keys under `prefix`.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Writes a key.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;

    /// Writes a key only if it does not exist, atomically. Returns the value
    /// stored afterwards and whether this call created it.
    async fn create_if_absent(&self, key: &str, value: Vec<u8>) -> Result<(Vec<u8>, bool)>;

    /// Deletes a key (absent keys are fine).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Writes a key that exists while the returned [`Lease`] lives and the
    /// process keeps it alive; it disappears within `ttl` after a crash.
    async fn put_leased(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<Lease>;

    /// Streams the changes under `prefix`, after a snapshot of it (empty
    /// unless `snapshot` is true; large prefixes are watched without one).
    async fn watch(&self, prefix: &str, snapshot: bool) -> Result<Watch>;
}
