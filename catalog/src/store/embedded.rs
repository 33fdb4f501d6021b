//! The embedded catalog store: an in-process ordered map with watches, for
//! `zaqar standalone` and tests of pure logic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use crate::error::{CatalogError, Result};
use crate::store::{CatalogStore, Entry, Lease, Watch, WatchEvent};

/// Watch events buffered per watcher before it is considered lost.
const WATCH_BUFFER: usize = 4096;

/// An in-memory [`CatalogStore`].
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
    changes: broadcast::Sender<WatchEvent>,
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        EmbeddedStore::new()
    }
}

impl EmbeddedStore {
    /// An empty store.
    pub fn new() -> EmbeddedStore {
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        EmbeddedStore {
            inner: Arc::new(Inner {
                entries: Mutex::new(BTreeMap::new()),
                changes,
            }),
        }
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>>> {
        self.inner
            .entries
            .lock()
            .map_err(|_| CatalogError::Unavailable("embedded catalog lock poisoned".into()))
    }

    fn publish(&self, event: WatchEvent) {
        // No receivers is fine: nobody watches.
        let _ = self.inner.changes.send(event);
    }
}

#[async_trait]
impl CatalogStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries()?.get(key).cloned())
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Entry>> {
        let entries = self.entries()?;
        let start = after.unwrap_or(prefix).to_string();
        Ok(entries
            .range(start..)
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let entries = self.entries()?;
        Ok(entries
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .count() as u64)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.entries()?.insert(key.to_string(), value.clone());
        self.publish(WatchEvent::Put(Entry {
            key: key.to_string(),
            value,
        }));
        Ok(())
    }

    async fn create_if_absent(&self, key: &str, value: Vec<u8>) -> Result<(Vec<u8>, bool)> {
        let created = {
            let mut entries = self.entries()?;
            if let Some(existing) = entries.get(key) {
                return Ok((existing.clone(), false));
            }
            entries.insert(key.to_string(), value.clone());
            true
        };
        self.publish(WatchEvent::Put(Entry {
            key: key.to_string(),
            value: value.clone(),
        }));
        Ok((value, created))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let removed = self.entries()?.remove(key).is_some();
        if removed {
            self.publish(WatchEvent::Delete(key.to_string()));
        }
        Ok(())
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, _ttl: Duration) -> Result<Lease> {
        self.put(key, value).await?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let store = self.clone();
        let owned = key.to_string();
        let released = cancel.clone();
        tokio::spawn(async move {
            released.cancelled().await;
            let _ = store.delete(&owned).await;
        });
        Ok(Lease::new(cancel))
    }

    async fn watch(&self, prefix: &str, with_snapshot: bool) -> Result<Watch> {
        let (snapshot, mut changes) = {
            // Subscribe under the lock so no change falls between the two.
            let entries = self.entries()?;
            let changes = self.inner.changes.subscribe();
            let snapshot = if with_snapshot {
                entries
                    .range(prefix.to_string()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(key, value)| Entry {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (snapshot, changes)
        };
        let (sender, events) = mpsc::channel(WATCH_BUFFER);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(event) => {
                        let key = match &event {
                            WatchEvent::Put(entry) => &entry.key,
                            WatchEvent::Delete(key) => key,
                        };
                        if key.starts_with(&prefix) && sender.send(event).await.is_err() {
                            return;
                        }
                    }
                    // Lagged or closed: end the watch so the watcher resyncs.
                    Err(_) => return,
                }
            }
        });
        Ok(Watch { snapshot, events })
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::EmbeddedStore;
    use crate::conformance::Fixture;

    async fn embedded_fixture() -> Fixture {
        Fixture {
            store: Arc::new(EmbeddedStore::new()),
            guard: None,
        }
    }

    crate::catalog_conformance_suite!(embedded_fixture);
}
