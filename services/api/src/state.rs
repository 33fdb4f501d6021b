//! The state every handler shares: configuration and placement.

use std::sync::Arc;

use crate::auth::{Authenticator, Unauthenticated};
use crate::config::ApiConfig;
use crate::forward::Placement;
use crate::forward::catalog::CatalogPlacement;
use crate::forward::coalesce::{Claims, Coalescer, Deletes, Posts};

/// Cheap to clone: one `Arc` (axum clones the state several times per
/// request, so one reference count instead of one per part).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; its fields read through the state.
pub struct Shared {
    /// The API configuration.
    pub config: Arc<ApiConfig>,
    /// Where queue calls go.
    pub placement: Arc<dyn Placement>,
    /// Who is calling.
    pub auth: Arc<dyn Authenticator>,
    /// The catalog, in pooled deployments (enables the pool and flavor APIs).
    pub pooling: Option<Arc<CatalogPlacement>>,
    /// Concurrent posts to one queue, sent to its backend together.
    pub posts: Coalescer<Posts>,
    /// Concurrent single-message deletes in one queue, sent together.
    pub deletes: Coalescer<Deletes>,
    /// Concurrent claims on one queue, sent together.
    pub claims: Coalescer<Claims>,
}

impl AppState {
    /// Bundles a configuration and a placement, unauthenticated.
    pub fn new(config: ApiConfig, placement: Arc<dyn Placement>) -> AppState {
        AppState(Arc::new(Shared::new(config, placement, None)))
    }

    /// A pooled deployment: queues placed on pools through the catalog.
    pub fn pooled(config: ApiConfig, placement: Arc<CatalogPlacement>) -> AppState {
        let pooling = Some(placement.clone());
        AppState(Arc::new(Shared::new(config, placement, pooling)))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    fn new(
        config: ApiConfig,
        placement: Arc<dyn Placement>,
        pooling: Option<Arc<CatalogPlacement>>,
    ) -> Shared {
        let auth = Arc::new(Unauthenticated {
            default_roles: config.default_roles.clone(),
        });
        let deadline = config.request_timeout;
        Shared {
            config: Arc::new(config),
            placement,
            auth,
            pooling,
            posts: Coalescer::new(deadline),
            deletes: Coalescer::new(deadline),
            claims: Coalescer::new(deadline),
        }
    }
}
