//! `zaqar standalone`: the whole service in one process — the HTTP API, the
//! management API, an embedded catalog and every pool served in process
//! (by default one embedded store), with no gRPC hop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::net::TcpListener;

use zaqar_api::forward::catalog::{CatalogPlacement, LocalOpener};
use zaqar_api::{ApiConfig, ApiError, AppState};
use zaqar_catalog::store::embedded::EmbeddedStore;
use zaqar_catalog::{Catalog, CatalogView, Pool};
use zaqar_storage::BackendRef;
use zaqar_storage::backends::{EmbeddedConfig, RedisConfig};
use zaqar_storage::delivery::DeliveryConfig;

use crate::settings::{announce, redact};
use crate::{settings, shutdown};

/// Settings of `zaqar standalone`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StandaloneConfig {
    /// Address of the HTTP API (overrides `api.listen`).
    pub listen: Option<SocketAddr>,
    /// The backend URI; empty means the embedded store in `data_dir`.
    pub backend: String,
    /// Directory of the embedded store (default: `$XDG_DATA_HOME/zaqar`,
    /// else `~/.local/share/zaqar`, else `./zaqar-data`).
    pub data_dir: Option<PathBuf>,
    /// Redis backend settings.
    pub redis: RedisConfig,
    /// Embedded store settings.
    pub embedded: EmbeddedConfig,
    /// Notification delivery from every pool served in process.
    pub delivery: DeliveryConfig,
    /// API settings (`storage` is unused here).
    pub api: ApiConfig,
}

/// The command-line flags that override the configuration.
#[derive(Serialize)]
struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
}

/// Where the embedded store lives when no directory is configured.
pub fn default_data_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(data).join("zaqar");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(home).join(".local/share/zaqar");
    }
    PathBuf::from("zaqar-data")
}

/// Name of the pool registered on first start.
pub const DEFAULT_POOL: &str = "default";
/// The catalog file inside the data directory.
pub const CATALOG_FILE: &str = "catalog.redb";

/// The embedded catalog of a standalone process: kept in `dir`, with the
/// default pool (the configured backend) registered on first start, and
/// every pool served in process.
async fn catalog_placement(
    dir: &Path,
    config: &StandaloneConfig,
    default_backend: BackendRef,
) -> anyhow::Result<Arc<CatalogPlacement>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let store = EmbeddedStore::open(&dir.join(CATALOG_FILE))?;
    let catalog = Catalog::new(Arc::new(store), "/zaqar");
    if catalog.all_pools().await?.is_empty() {
        catalog
            .put_pool(&Pool {
                name: DEFAULT_POOL.into(),
                uri: config.backend.clone(),
                weight: 100,
                flavor: None,
                options: serde_json::json!({}),
            })
            .await?;
    }
    let view = CatalogView::start(catalog, Duration::from_secs(1)).await;
    let default_uri = config.backend.clone();
    let redis = config.redis.clone();
    let embedded = config.embedded.clone();
    let delivery = config.delivery.clone();
    // Each pool opened here delivers its own notifications for as long as
    // the process runs.
    let workers = std::sync::Mutex::new(Vec::new());
    let keep =
        move |backend: &BackendRef, workers: &std::sync::Mutex<Vec<_>>| -> anyhow::Result<()> {
            if let Some(guard) = zaqar_storage::delivery::start(backend, &delivery)?
                && let Ok(mut workers) = workers.lock()
            {
                workers.push(guard);
            }
            Ok(())
        };
    keep(&default_backend, &workers)?;
    let opener: LocalOpener = Arc::new(move |uri: &str| {
        if uri == default_uri {
            return Ok(default_backend.clone());
        }
        let backend = zaqar_storage::backends::open(uri, &redis, &embedded)
            .map_err(|error| ApiError::bad_body(format!("cannot connect to {uri}: {error}")))?;
        keep(&backend, &workers).map_err(|error| ApiError::Internal(error.to_string()))?;
        Ok(backend)
    });
    Ok(Arc::new(CatalogPlacement::in_process(view, opener)))
}

/// Opens the backend and serves the API on it until SIGTERM.
pub async fn run(
    file: Option<&Path>,
    listen: Option<SocketAddr>,
    backend: Option<String>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let flags = Flags {
        listen,
        backend,
        data_dir,
    };
    let mut config: StandaloneConfig = settings::load("standalone", file, flags)?;
    config.api.validate().map_err(anyhow::Error::msg)?;
    config.redis.validate()?;
    config.embedded.validate()?;
    config.delivery.validate()?;
    let dir = config.data_dir.clone().unwrap_or_else(default_data_dir);
    if config.backend.is_empty() {
        config.backend = format!("embedded://{}", dir.display());
    }
    let backend = zaqar_storage::backends::open(&config.backend, &config.redis, &config.embedded)?;
    let placement = catalog_placement(&dir, &config, backend).await?;
    let address = config.listen.unwrap_or(config.api.listen);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    let stop = shutdown::listen();
    announce(bound)?;
    tracing::info!(address = %bound, backend = %redact(&config.backend), "standalone serving");
    let grace = config.api.shutdown_grace;
    let state = AppState::pooled(config.api, placement);
    zaqar_api::serve(listener, state, stop, grace).await?;
    tracing::info!("standalone stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_example_config_parses() {
        let file =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/standalone.toml");
        let config: StandaloneConfig = settings::load(
            "standalone",
            Some(&file),
            Flags {
                listen: None,
                backend: None,
                data_dir: None,
            },
        )
        .unwrap();
        config.api.validate().unwrap();
        assert_eq!(config.backend, "");
        assert_eq!(config.data_dir, Some(PathBuf::from("zaqar-data")));
        assert_eq!(config.api.limits.max_claim_ttl, 43_200);
        assert_eq!(config.delivery, DeliveryConfig::default());
        assert_eq!(config.embedded.sweep_interval.as_secs(), 5);
        config.embedded.validate().unwrap();
    }
}
