//! `zaqar api`: an HTTP API node forwarding to a storage node over gRPC.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "etcd")]
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use zaqar_api::{ApiConfig, AppState, SingleNode};
use zaqar_storage::GrpcBackend;

use crate::settings::announce;
use crate::{settings, shutdown};

/// The command-line flags that override the configuration.
#[derive(Serialize)]
struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<Vec<String>>,
}

/// The state of a pooled API node: placement through the etcd catalog.
#[cfg(feature = "etcd")]
async fn pooled(config: ApiConfig) -> anyhow::Result<AppState> {
    let store = zaqar_catalog::store::etcd::EtcdStore::connect(&config.etcd).await?;
    let catalog = zaqar_catalog::Catalog::new(Arc::new(store), &config.catalog_root);
    let view = zaqar_catalog::CatalogView::start(catalog, Duration::from_secs(5)).await;
    Ok(AppState::pooled(
        config,
        Arc::new(zaqar_api::forward::catalog::CatalogPlacement::new(view)),
    ))
}

/// Without etcd support, a configured etcd is an error.
#[cfg(not(feature = "etcd"))]
async fn pooled(_config: ApiConfig) -> anyhow::Result<AppState> {
    anyhow::bail!("this zaqar was built without etcd support: rebuild with `--features etcd`")
}

/// Loads the configuration and serves the API until SIGTERM.
pub async fn run(
    file: Option<&Path>,
    listen: Option<SocketAddr>,
    storage: Option<String>,
    etcd: Option<Vec<String>>,
) -> anyhow::Result<()> {
    let config: ApiConfig = settings::load(
        "api",
        file,
        Flags {
            listen,
            storage,
            etcd,
        },
    )?;
    config.validate().map_err(anyhow::Error::msg)?;
    let state = if !config.etcd.is_empty() {
        pooled(config).await?
    } else if !config.storage.is_empty() {
        let backend = GrpcBackend::connect_lazy(&config.storage)?;
        AppState::new(config, Arc::new(SingleNode::new(Arc::new(backend))))
    } else {
        anyhow::bail!(
            "no storage configured: pass --storage http://HOST:PORT or --etcd http://HOST:PORT"
        );
    };
    let config = state.config.clone();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let stop = shutdown::listen();
    announce(address)?;
    tracing::info!(%address, pooled = state.pooling.is_some(), "api node serving");
    let grace = config.shutdown_grace;
    zaqar_api::serve(listener, state, stop, grace).await?;
    tracing::info!("api node stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_example_config_parses_and_validates() {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/api.toml");
        let config: ApiConfig = settings::load(
            "api",
            Some(&file),
            Flags {
                listen: None,
                storage: None,
                etcd: None,
            },
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.storage, "http://127.0.0.1:7070");
        assert_eq!(config.limits.max_messages_per_page, 20);
        // The example spells out every notification setting's default.
        assert_eq!(
            config.notification,
            zaqar_api::config::NotificationConfig::default()
        );
    }
}
