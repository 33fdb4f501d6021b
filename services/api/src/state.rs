//! The state every handler shares: configuration and placement.

use std::sync::Arc;

use crate::auth::{Authenticator, Unauthenticated};
use crate::config::ApiConfig;
use crate::forward::Placement;
use crate::forward::catalog::CatalogPlacement;
use crate::forward::coalesce::{Claims, Coalescer, Deletes, Posts};

/// Cheap to clone: a bundle of `Arc`s.
#[derive(Clone)]
pub struct AppState {
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
        let auth = Arc::new(Unauthenticated {
            default_roles: config.default_roles.clone(),
        });
        let deadline = config.request_timeout;
        AppState {
            config: Arc::new(config),
            placement,
            auth,
            pooling: None,
            posts: Coalescer::new(deadline),
            deletes: Coalescer::new(deadline),
            claims: Coalescer::new(deadline),
        }
    }

    /// A pooled deployment: queues placed on pools through the catalog.
    pub fn pooled(config: ApiConfig, placement: Arc<CatalogPlacement>) -> AppState {
        let mut state = AppState::new(config, placement.clone());
        state.pooling = Some(placement);
        state
    }
}
