//! [`CatalogView`]: an API node's in-memory view of the catalog, fed by
//! watches, so steady-state requests make no catalog round trip.
//!
//! Pools, flavors and live nodes are mirrored whole (a snapshot, then the
//! changes). Placements are cached as they are looked up and kept current by
//! a watch of the placement prefix (without snapshot: there can be many).
//! When a watch is lost it is re-established with a fresh snapshot; while
//! the catalog is unreachable the last known state keeps serving.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::keys::Keys;
use crate::model::{Flavor, Node, Placement, Pool};
use crate::store::WatchEvent;

/// Longest pause between attempts to re-establish a lost watch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    pools: BTreeMap<String, Pool>,
    flavors: BTreeMap<String, Flavor>,
    nodes: BTreeMap<String, Node>,
    placements: HashMap<String, Placement>,
}

/// The watched view of a catalog.
#[derive(Clone)]
pub struct CatalogView {
    catalog: Catalog,
    state: Arc<RwLock<State>>,
    _watchers: Arc<DropGuard>,
}

/// The sections of the catalog a view mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Pools,
    Flavors,
    Nodes,
    Placements,
}

impl CatalogView {
    /// Starts watching `catalog`; waits (up to `wait`) for the first
    /// snapshots so the view starts populated when the catalog is up.
    pub async fn start(catalog: Catalog, wait: Duration) -> CatalogView {
        let state = Arc::new(RwLock::new(State::default()));
        let cancel = CancellationToken::new();
        let mut first_syncs = Vec::new();
        for section in [
            Section::Pools,
            Section::Flavors,
            Section::Nodes,
            Section::Placements,
        ] {
            let (synced, first_sync) = tokio::sync::oneshot::channel();
            first_syncs.push(first_sync);
            tokio::spawn(watch_section(
                catalog.clone(),
                section,
                state.clone(),
                cancel.clone(),
                synced,
            ));
        }
        let _ = tokio::time::timeout(wait, futures::future::join_all(first_syncs)).await;
        CatalogView {
            catalog,
            state,
            _watchers: Arc::new(cancel.drop_guard()),
        }
    }

    /// The catalog behind the view.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn read<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        match self.state.read() {
            Ok(state) => read(&state),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    fn write(&self, write: impl FnOnce(&mut State)) {
        match self.state.write() {
            Ok(mut state) => write(&mut state),
            Err(poisoned) => write(&mut poisoned.into_inner()),
        }
    }

    /// Every pool, by name.
    pub fn pools(&self) -> Vec<Pool> {
        self.read(|state| state.pools.values().cloned().collect())
    }

    /// One pool.
    pub fn pool(&self, name: &str) -> Option<Pool> {
        self.read(|state| state.pools.get(name).cloned())
    }

    /// One flavor of a project.
    pub fn flavor(&self, project: &str, name: &str) -> Option<Flavor> {
        let key = self.catalog.keys().flavor(project, name);
        self.read(|state| state.flavors.get(&key).cloned())
    }

    /// The live nodes serving a backend URI.
    pub fn nodes_for(&self, uri: &str) -> Vec<Node> {
        self.read(|state| {
            state
                .nodes
                .values()
                .filter(|node| node.uri == uri)
                .cloned()
                .collect()
        })
    }

    /// Every live node.
    pub fn nodes(&self) -> Vec<Node> {
        self.read(|state| state.nodes.values().cloned().collect())
    }

    /// A queue's placement: from the cache, else from the catalog (then
    /// cached). `None` when the queue was never placed.
    pub async fn placement(
        &self,
        project: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Placement>> {
        let key = self.catalog.keys().queue(project, namespace, name);
        if let Some(found) = self.read(|state| state.placements.get(&key).cloned()) {
            return Ok(Some(found));
        }
        let found = self.catalog.placement(project, namespace, name).await?;
        if let Some(placement) = &found {
            self.write(|state| {
                state.placements.insert(key, placement.clone());
            });
        }
        Ok(found)
    }

    /// Records a placement unless one exists (see [`Catalog::place`]) and
    /// caches the winner.
    pub async fn place(
        &self,
        project: &str,
        namespace: &str,
        name: &str,
        placement: &Placement,
    ) -> Result<Placement> {
        let (stored, _) = self
            .catalog
            .place(project, namespace, name, placement)
            .await?;
        let key = self.catalog.keys().queue(project, namespace, name);
        self.write(|state| {
            state.placements.insert(key, stored.clone());
        });
        Ok(stored)
    }

    /// Forgets a placement in the catalog and the cache.
    pub async fn remove_placement(&self, project: &str, namespace: &str, name: &str) -> Result<()> {
        self.catalog
            .remove_placement(project, namespace, name)
            .await?;
        let key = self.catalog.keys().queue(project, namespace, name);
        self.write(|state| {
            state.placements.remove(&key);
        });
        Ok(())
    }
}

async fn watch_section(
    catalog: Catalog,
    section: Section,
    state: Arc<RwLock<State>>,
    cancel: CancellationToken,
    synced: tokio::sync::oneshot::Sender<()>,
) {
    let keys = catalog.keys().clone();
    let prefix = match section {
        Section::Pools => keys.pools(),
        Section::Flavors => keys.all_flavors(),
        Section::Nodes => keys.nodes(),
        Section::Placements => keys.all_queues(),
    };
    let mut synced = Some(synced);
    let mut backoff = Duration::from_millis(50);
    loop {
        let watch = tokio::select! {
            () = cancel.cancelled() => return,
            watch = catalog.store().watch(&prefix, section != Section::Placements) => watch,
        };
        let mut watch = match watch {
            Ok(watch) => watch,
            Err(error) => {
                tracing::debug!(%error, ?section, "catalog watch unavailable");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        if let Ok(mut guard) = state.write() {
            reset(&mut guard, section, std::mem::take(&mut watch.snapshot));
        }
        if let Some(synced) = synced.take() {
            let _ = synced.send(());
        }
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = watch.events.recv() => event,
            };
            let Some(event) = event else { break };
            if let Ok(mut guard) = state.write() {
                apply(&mut guard, section, event);
            }
        }
        tracing::debug!(?section, "catalog watch lost; resyncing");
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

fn reset(state: &mut State, section: Section, snapshot: Vec<crate::store::Entry>) {
    match section {
        Section::Pools => {
            state.pools = snapshot
                .iter()
                .filter_map(|entry| decode::<Pool>(&entry.value))
                .map(|pool| (pool.name.clone(), pool))
                .collect();
        }
        Section::Flavors => {
            state.flavors = snapshot
                .into_iter()
                .filter_map(|entry| {
                    decode::<Flavor>(&entry.value).map(|flavor| (entry.key, flavor))
                })
                .collect();
        }
        Section::Nodes => {
            state.nodes = snapshot
                .into_iter()
                .filter_map(|entry| decode::<Node>(&entry.value).map(|node| (entry.key, node)))
                .collect();
        }
        // Changes may have been missed while the watch was down.
        Section::Placements => state.placements.clear(),
    }
}

fn apply(state: &mut State, section: Section, event: WatchEvent) {
    match (section, event) {
        (Section::Pools, WatchEvent::Put(entry)) => {
            if let Some(pool) = decode::<Pool>(&entry.value) {
                state.pools.insert(pool.name.clone(), pool);
            }
        }
        (Section::Pools, WatchEvent::Delete(key)) => {
            state.pools.remove(&Keys::last_segment(&key));
        }
        (Section::Flavors, WatchEvent::Put(entry)) => {
            if let Some(flavor) = decode::<Flavor>(&entry.value) {
                state.flavors.insert(entry.key, flavor);
            }
        }
        (Section::Flavors, WatchEvent::Delete(key)) => {
            state.flavors.remove(&key);
        }
        (Section::Nodes, WatchEvent::Put(entry)) => {
            if let Some(node) = decode::<Node>(&entry.value) {
                state.nodes.insert(entry.key, node);
            }
        }
        (Section::Nodes, WatchEvent::Delete(key)) => {
            state.nodes.remove(&key);
        }
        (Section::Placements, WatchEvent::Put(entry)) => {
            if let Some(placement) = decode::<Placement>(&entry.value)
                && state.placements.contains_key(&entry.key)
            {
                state.placements.insert(entry.key, placement);
            }
        }
        (Section::Placements, WatchEvent::Delete(key)) => {
            state.placements.remove(&key);
        }
    }
}
