//! [`CatalogPlacement`]: placement through the catalog for pooled clusters.
//!
//! A queue's pool comes from its placement record (cached by the
//! [`CatalogView`], so the steady state makes no catalog round trip); a new
//! queue is placed by weighted rendezvous among the eligible pools and
//! recorded with create-if-absent, so concurrent creators on any API node
//! agree. Calls go to a live storage node serving the pool's URI, round
//! robin; a pool without one answers 503 for its queues only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use zaqar_catalog::{CatalogError, CatalogView, Placement as Record, Pool};
use zaqar_proto::model::{Namespace, QueueNames, Scope};
use zaqar_storage::{BackendRef, GrpcBackend};

use crate::error::{ApiError, ApiResult};
use crate::forward::Placement;
use crate::forward::empty::EmptyBackend;

/// Opens a pool's backend in this process, from its URI.
pub type LocalOpener = Arc<dyn Fn(&str) -> ApiResult<BackendRef> + Send + Sync>;

/// Routes queues to pools through the catalog.
pub struct CatalogPlacement {
    view: CatalogView,
    channels: Mutex<HashMap<String, BackendRef>>,
    turn: AtomicUsize,
    empty: BackendRef,
    /// In `zaqar standalone`, pools are served in process rather than by
    /// storage nodes.
    local: Option<LocalOpener>,
}

fn unavailable(error: CatalogError) -> ApiError {
    tracing::warn!(%error, "catalog unavailable");
    ApiError::Unavailable("The catalog is not reachable. Please try again in a few seconds.".into())
}

impl CatalogPlacement {
    /// Routes through `view` to the storage nodes registered there.
    pub fn new(view: CatalogView) -> CatalogPlacement {
        CatalogPlacement {
            view,
            channels: Mutex::new(HashMap::new()),
            turn: AtomicUsize::new(0),
            empty: Arc::new(EmptyBackend),
            local: None,
        }
    }

    /// Routes through `view` to pools opened in this process by `opener`
    /// (one backend per URI, opened on first use).
    pub fn in_process(view: CatalogView, opener: LocalOpener) -> CatalogPlacement {
        CatalogPlacement {
            local: Some(opener),
            ..CatalogPlacement::new(view)
        }
    }

    /// Whether pools are served in this process.
    pub fn serves_locally(&self) -> bool {
        self.local.is_some()
    }

    /// The catalog view.
    pub fn view(&self) -> &CatalogView {
        &self.view
    }

    fn channel(&self, address: &str) -> ApiResult<BackendRef> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| ApiError::Internal("channel table poisoned".into()))?;
        if let Some(backend) = channels.get(address) {
            return Ok(backend.clone());
        }
        let backend: BackendRef = Arc::new(
            GrpcBackend::connect_lazy(address)
                .map_err(|error| ApiError::Internal(format!("bad node address: {error}")))?,
        );
        channels.insert(address.to_string(), backend.clone());
        Ok(backend)
    }

    /// A backend for a pool: in process, or one of its live nodes in turn.
    pub fn pool_backend(&self, pool: &Pool) -> ApiResult<BackendRef> {
        if let Some(opener) = &self.local {
            let mut channels = self
                .channels
                .lock()
                .map_err(|_| ApiError::Internal("backend table poisoned".into()))?;
            if let Some(backend) = channels.get(&pool.uri) {
                return Ok(backend.clone());
            }
            let backend = opener(&pool.uri)?;
            channels.insert(pool.uri.clone(), backend.clone());
            return Ok(backend);
        }
        let nodes = self.view.nodes_for(&pool.uri);
        if nodes.is_empty() {
            return Err(ApiError::Unavailable(format!(
                "No storage node serves pool {}. Please try again in a few seconds.",
                pool.name
            )));
        }
        let node = &nodes[self.turn.fetch_add(1, Ordering::Relaxed) % nodes.len()];
        self.channel(&node.address)
    }

    fn backend_of(&self, record: &Record) -> ApiResult<BackendRef> {
        match self.view.pool(&record.pool) {
            Some(pool) => self.pool_backend(&pool),
            None => Err(ApiError::Unavailable(format!(
                "Pool {} is not registered. Please try again in a few seconds.",
                record.pool
            ))),
        }
    }
}

#[async_trait]
impl Placement for CatalogPlacement {
    async fn backend(&self, scope: &Scope) -> ApiResult<BackendRef> {
        let record = self
            .view
            .placement(scope.project(), scope.namespace().tag(), scope.name())
            .await
            .map_err(unavailable)?;
        match record {
            Some(record) => self.backend_of(&record),
            None => Ok(self.empty.clone()),
        }
    }

    async fn backend_for_create(
        &self,
        scope: &Scope,
        flavor: Option<&str>,
    ) -> ApiResult<BackendRef> {
        let (project, namespace, name) = (scope.project(), scope.namespace().tag(), scope.name());
        if let Some(record) = self
            .view
            .placement(project, namespace, name)
            .await
            .map_err(unavailable)?
        {
            return self.backend_of(&record);
        }
        if let Some(flavor) = flavor
            && self.view.flavor(project, flavor).is_none()
        {
            return Err(ApiError::invalid(format!("Flavor {flavor} does not exist")));
        }
        let candidates: Vec<Pool> = self
            .view
            .pools()
            .into_iter()
            .filter(|pool| pool.flavor.as_deref() == flavor)
            .collect();
        let Some(chosen) = zaqar_catalog::placement::choose(&candidates, project, name) else {
            return Err(ApiError::Unavailable(
                "No pool can take new queues. Please try again in a few seconds.".into(),
            ));
        };
        let record = Record {
            pool: chosen.name.clone(),
            flavor: flavor.map(str::to_string),
        };
        let stored = self
            .view
            .place(project, namespace, name, &record)
            .await
            .map_err(unavailable)?;
        self.backend_of(&stored)
    }

    async fn forget(&self, scope: &Scope) -> ApiResult<()> {
        self.view
            .remove_placement(scope.project(), scope.namespace().tag(), scope.name())
            .await
            .map_err(unavailable)
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> ApiResult<QueueNames> {
        let (names, total) = self
            .view
            .catalog()
            .queue_names(project, namespace.tag(), marker, limit as usize)
            .await
            .map_err(unavailable)?;
        Ok(QueueNames { names, total })
    }

    async fn backends(&self) -> ApiResult<Vec<BackendRef>> {
        self.view
            .pools()
            .iter()
            .map(|pool| self.pool_backend(pool))
            .collect()
    }
}
