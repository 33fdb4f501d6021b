//! Where a queue's calls go: the [`Placement`] seam between the handlers
//! and the storage nodes.
//!
//! Handlers never hold queue state; they ask the placement for the backend
//! of a queue and make one call. [`SingleNode`] sends everything to one
//! storage node (or an in-process backend in `zaqar standalone`);
//! [`catalog::CatalogPlacement`] places queues on pools through the catalog
//! and routes each call to a live storage node of the queue's pool. A queue
//! that was never placed is served by [`empty::EmptyBackend`], which answers
//! every read as "does not exist".

pub mod catalog;
pub mod coalesce;
pub mod empty;

use async_trait::async_trait;
use zaqar_proto::model::{Namespace, QueueNames, Scope};
use zaqar_storage::BackendRef;

use crate::error::{ApiError, ApiResult};

/// Routes queue operations to backends.
#[async_trait]
pub trait Placement: Send + Sync + 'static {
    /// The backend holding a queue (one that answers "does not exist" for
    /// a queue that was never created).
    async fn backend(&self, scope: &Scope) -> ApiResult<BackendRef>;

    /// The backend that holds, or is chosen to hold, a queue about to be
    /// created (placing it, with its `_flavor` if any, when new).
    async fn backend_for_create(
        &self,
        scope: &Scope,
        flavor: Option<&str>,
    ) -> ApiResult<BackendRef>;

    /// Forgets a deleted queue's placement.
    async fn forget(&self, scope: &Scope) -> ApiResult<()>;

    /// Lists a project's queue names in byte order after `marker`, with the
    /// project's total number of queues.
    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> ApiResult<QueueNames>;

    /// One backend per pool, for health checks; fails when a pool has no
    /// live storage node.
    async fn backends(&self) -> ApiResult<Vec<BackendRef>>;
}

/// A placement with one backend for every queue.
pub struct SingleNode {
    backend: BackendRef,
}

impl SingleNode {
    /// Sends everything to `backend`.
    pub fn new(backend: BackendRef) -> SingleNode {
        SingleNode { backend }
    }
}

#[async_trait]
impl Placement for SingleNode {
    async fn backend(&self, _scope: &Scope) -> ApiResult<BackendRef> {
        Ok(self.backend.clone())
    }

    async fn backend_for_create(
        &self,
        _scope: &Scope,
        _flavor: Option<&str>,
    ) -> ApiResult<BackendRef> {
        Ok(self.backend.clone())
    }

    async fn forget(&self, _scope: &Scope) -> ApiResult<()> {
        Ok(())
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> ApiResult<QueueNames> {
        let failed = match namespace {
            Namespace::Queue => "Queues could not be listed.",
            Namespace::Topic => "Topics could not be listed.",
        };
        self.backend
            .list_queues(project, namespace, marker, limit)
            .await
            .map_err(ApiError::storage(failed))
    }

    async fn backends(&self) -> ApiResult<Vec<BackendRef>> {
        Ok(vec![self.backend.clone()])
    }
}
