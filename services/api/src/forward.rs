//! Where a queue's calls go: the [`Placement`] seam between the handlers
//! and the storage nodes.
//!
//! Handlers never hold queue state; they ask the placement for the backend
//! of a queue and make one call. [`SingleNode`] sends everything to one
//! storage node (or an in-process backend in `zaqar standalone`); the
//! catalog-backed placement replaces it for pooled clusters without changing
//! the handlers.

use async_trait::async_trait;
use zaqar_proto::model::{Namespace, QueueNames, Scope};
use zaqar_storage::BackendRef;

use crate::error::{ApiError, ApiResult};

/// Routes queue operations to backends.
#[async_trait]
pub trait Placement: Send + Sync + 'static {
    /// The backend holding (or to hold) a queue.
    async fn backend(&self, scope: &Scope) -> ApiResult<BackendRef>;

    /// Lists a project's queue names in byte order after `marker`, with the
    /// project's total number of queues.
    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> ApiResult<QueueNames>;

    /// Every backend, for health checks.
    fn backends(&self) -> Vec<BackendRef>;
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

    fn backends(&self) -> Vec<BackendRef> {
        vec![self.backend.clone()]
    }
}
