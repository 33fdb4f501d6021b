//! [`Catalog`]: typed access to pools, flavors, placements and nodes over a
//! [`CatalogStore`](crate::store::CatalogStore).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CatalogError, Result};
use crate::keys::Keys;
use crate::model::{Flavor, Node, Placement, Pool};
use crate::store::{CatalogStoreRef, Entry, Lease};

/// Typed catalog operations under one key root.
#[derive(Clone)]
pub struct Catalog {
    store: CatalogStoreRef,
    keys: Keys,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|error| CatalogError::Invalid(error.to_string()))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| CatalogError::Corrupt {
        key: key.to_string(),
        reason: error.to_string(),
    })
}

fn decode_all<T: DeserializeOwned>(entries: Vec<Entry>) -> Result<Vec<T>> {
    entries
        .iter()
        .map(|entry| decode(&entry.key, &entry.value))
        .collect()
}

/// Page size when reading a whole prefix.
const SCAN_PAGE: usize = 500;

impl Catalog {
    /// A catalog on `store` with keys under `root`.
    pub fn new(store: CatalogStoreRef, root: &str) -> Catalog {
        Catalog {
            store,
            keys: Keys::new(root),
        }
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The underlying store.
    pub fn store(&self) -> &CatalogStoreRef {
        &self.store
    }

    async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.store.get(key).await? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list(prefix, after.as_deref(), SCAN_PAGE).await?;
            let done = page.len() < SCAN_PAGE;
            after = page.last().map(|entry| entry.key.clone());
            all.extend(decode_all(page)?);
            if done {
                return Ok(all);
            }
        }
    }

    /// One pool.
    pub async fn pool(&self, name: &str) -> Result<Option<Pool>> {
        self.read(&self.keys.pool(name)).await
    }

    /// Pools sorted by name after `marker`, at most `limit`.
    pub async fn pools(&self, marker: Option<&str>, limit: usize) -> Result<Vec<Pool>> {
        let after = marker.map(|name| self.keys.pool(name));
        let page = self
            .store
            .list(&self.keys.pools(), after.as_deref(), limit)
            .await?;
        decode_all(page)
    }

    /// Every pool.
    pub async fn all_pools(&self) -> Result<Vec<Pool>> {
        self.scan(&self.keys.pools()).await
    }

    /// Creates or replaces a pool.
    pub async fn put_pool(&self, pool: &Pool) -> Result<()> {
        self.store
            .put(&self.keys.pool(&pool.name), encode(pool)?)
            .await
    }

    /// Deletes a pool.
    pub async fn delete_pool(&self, name: &str) -> Result<()> {
        self.store.delete(&self.keys.pool(name)).await
    }

    /// One flavor of a project.
    pub async fn flavor(&self, project: &str, name: &str) -> Result<Option<Flavor>> {
        self.read(&self.keys.flavor(project, name)).await
    }

    /// A project's flavors sorted by name after `marker`, at most `limit`.
    pub async fn flavors(
        &self,
        project: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Flavor>> {
        let after = marker.map(|name| self.keys.flavor(project, name));
        let page = self
            .store
            .list(&self.keys.flavors(project), after.as_deref(), limit)
            .await?;
        decode_all(page)
    }

    /// Creates or replaces a flavor.
    pub async fn put_flavor(&self, flavor: &Flavor) -> Result<()> {
        let key = self.keys.flavor(&flavor.project, &flavor.name);
        self.store.put(&key, encode(flavor)?).await
    }

    /// Deletes a flavor.
    pub async fn delete_flavor(&self, project: &str, name: &str) -> Result<()> {
        self.store.delete(&self.keys.flavor(project, name)).await
    }

    /// Where a queue lives, if it was placed.
    pub async fn placement(
        &self,
        project: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Placement>> {
        self.read(&self.keys.queue(project, namespace, name)).await
    }

    /// Records a placement unless one exists; returns the recorded one
    /// (ours, or the one a concurrent creator wrote first) and whether
    /// ours was written.
    pub async fn place(
        &self,
        project: &str,
        namespace: &str,
        name: &str,
        placement: &Placement,
    ) -> Result<(Placement, bool)> {
        let key = self.keys.queue(project, namespace, name);
        let (stored, created) = self
            .store
            .create_if_absent(&key, encode(placement)?)
            .await?;
        Ok((decode(&key, &stored)?, created))
    }

    /// Forgets a queue's placement.
    pub async fn remove_placement(&self, project: &str, namespace: &str, name: &str) -> Result<()> {
        self.store
            .delete(&self.keys.queue(project, namespace, name))
            .await
    }

    /// A project's queue names in byte order after `marker`, at most
    /// `limit`, with the project's number of queues.
    pub async fn queue_names(
        &self,
        project: &str,
        namespace: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, u64)> {
        let prefix = self.keys.queues(project, namespace);
        let after = marker.map(|name| self.keys.queue(project, namespace, name));
        let page = self.store.list(&prefix, after.as_deref(), limit).await?;
        let names = page
            .iter()
            .map(|entry| Keys::last_segment(&entry.key))
            .collect();
        let total = self.store.count(&prefix).await?;
        Ok((names, total))
    }

    /// Registers a live storage node until the returned lease is dropped.
    pub async fn register_node(&self, node: &Node, ttl: Duration) -> Result<Lease> {
        self.store
            .put_leased(&self.keys.node(&node.id), encode(node)?, ttl)
            .await
    }

    /// Every registered node.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        self.scan(&self.keys.nodes()).await
    }
}
