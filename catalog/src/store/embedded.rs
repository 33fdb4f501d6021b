//! The embedded catalog store: an in-process ordered map with watches, for
//! `zaqar standalone`. [`EmbeddedStore::open`] keeps it in a redb file
//! (written through on every change, read back at start); leased keys live
//! in memory only, as they should not outlive the process.

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
    file: Option<redb::Database>,
}

/// The table of a persistent store.
const ENTRIES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("catalog");

fn file_error(error: impl std::fmt::Display) -> CatalogError {
    CatalogError::Unavailable(format!("catalog file failed: {error}"))
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        EmbeddedStore::new()
    }
}

impl EmbeddedStore {
    /// An empty store in memory.
    pub fn new() -> EmbeddedStore {
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        EmbeddedStore {
            inner: Arc::new(Inner {
                entries: Mutex::new(BTreeMap::new()),
                changes,
                file: None,
            }),
        }
    }

    /// A store kept in the redb file at `path` (created if missing).
    pub fn open(path: &std::path::Path) -> Result<EmbeddedStore> {
        use redb::{ReadableDatabase, ReadableTable};
        let file = redb::Database::create(path).map_err(file_error)?;
        let mut entries = BTreeMap::new();
        {
            let txn = file.begin_write().map_err(file_error)?;
            txn.open_table(ENTRIES).map_err(file_error)?;
            txn.commit().map_err(file_error)?;
        }
        {
            let txn = file.begin_read().map_err(file_error)?;
            let table = txn.open_table(ENTRIES).map_err(file_error)?;
            for entry in table.iter().map_err(file_error)? {
                let (key, value) = entry.map_err(file_error)?;
                entries.insert(key.value().to_string(), value.value().to_vec());
            }
        }
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                entries: Mutex::new(entries),
                changes,
                file: Some(file),
            }),
        })
    }

    /// Writes one change through to the file, if any (`None` deletes).
    fn persist(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let Some(file) = &self.inner.file else {
            return Ok(());
        };
        let txn = file.begin_write().map_err(file_error)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(file_error)?;
            match value {
                Some(value) => {
                    table.insert(key, value).map_err(file_error)?;
                }
                None => {
                    table.remove(key).map_err(file_error)?;
                }
            }
        }
        txn.commit().map_err(file_error)
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
        {
            let mut entries = self.entries()?;
            self.persist(key, Some(&value))?;
            entries.insert(key.to_string(), value.clone());
        }
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
            self.persist(key, Some(&value))?;
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
        let removed = {
            let mut entries = self.entries()?;
            self.persist(key, None)?;
            entries.remove(key).is_some()
        };
        if removed {
            self.publish(WatchEvent::Delete(key.to_string()));
        }
        Ok(())
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, _ttl: Duration) -> Result<Lease> {
        // Leased keys never reach the file: they die with the process.
        self.entries()?.insert(key.to_string(), value.clone());
        self.publish(WatchEvent::Put(Entry {
            key: key.to_string(),
            value,
        }));
        let cancel = tokio_util::sync::CancellationToken::new();
        let store = self.clone();
        let owned = key.to_string();
        let released = cancel.clone();
        tokio::spawn(async move {
            released.cancelled().await;
            let removed = store
                .entries()
                .map(|mut entries| entries.remove(&owned).is_some());
            if removed.unwrap_or(false) {
                store.publish(WatchEvent::Delete(owned));
            }
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

    mod persistent {
        use std::sync::Arc;

        use super::EmbeddedStore;
        use crate::conformance::Fixture;
        use crate::store::CatalogStore;

        async fn file_fixture() -> Fixture {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = EmbeddedStore::open(&dir.path().join("catalog.redb")).expect("open");
            Fixture {
                store: Arc::new(store),
                guard: Some(Box::new(dir)),
            }
        }

        crate::catalog_conformance_suite!(file_fixture);

        /// What was written is read back by the next process; leased keys are not.
        #[tokio::test]
        async fn entries_survive_reopening() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("catalog.redb");
            {
                let store = EmbeddedStore::open(&path).unwrap();
                store.put("/a", b"1".to_vec()).await.unwrap();
                store.put("/b", b"2".to_vec()).await.unwrap();
                store.create_if_absent("/c", b"3".to_vec()).await.unwrap();
                store.delete("/b").await.unwrap();
                let _lease = store
                    .put_leased("/node", b"n".to_vec(), std::time::Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            // Let the lease's task finish and release the file.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let store = EmbeddedStore::open(&path).unwrap();
            assert_eq!(store.get("/a").await.unwrap(), Some(b"1".to_vec()));
            assert_eq!(store.get("/b").await.unwrap(), None);
            assert_eq!(store.get("/c").await.unwrap(), Some(b"3".to_vec()));
            assert_eq!(store.get("/node").await.unwrap(), None);
        }
    }
}
