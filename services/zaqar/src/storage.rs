//! `zaqar storage`: a storage node in front of one pool.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use zaqar_storage::config::StorageNodeConfig;

use crate::settings::{announce, redact};
use crate::{settings, shutdown};

/// The command-line flags that override the configuration.
#[derive(Serialize)]
struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<Vec<String>>,
}

/// Registers the node in the catalog (when etcd is configured) for as long
/// as the returned lease lives.
#[cfg(feature = "etcd")]
async fn register(
    config: &StorageNodeConfig,
    address: SocketAddr,
) -> anyhow::Result<Option<zaqar_catalog::store::Lease>> {
    if config.etcd.is_empty() {
        return Ok(None);
    }
    let store = zaqar_catalog::store::etcd::EtcdStore::connect(&config.etcd).await?;
    let catalog = zaqar_catalog::Catalog::new(std::sync::Arc::new(store), &config.catalog_root);
    let node = zaqar_catalog::Node {
        id: uuid::Uuid::new_v4().simple().to_string(),
        address: config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{address}")),
        uri: config.backend.clone(),
    };
    let lease = catalog
        .register_node(&node, config.registration_ttl)
        .await
        .context("cannot register in etcd")?;
    tracing::info!(id = %node.id, address = %node.address, "registered in the catalog");
    Ok(Some(lease))
}

/// Without etcd support, a configured etcd is an error.
#[cfg(not(feature = "etcd"))]
async fn register(config: &StorageNodeConfig, _address: SocketAddr) -> anyhow::Result<Option<()>> {
    if config.etcd.is_empty() {
        return Ok(None);
    }
    anyhow::bail!("this zaqar was built without etcd support: rebuild with `--features etcd`")
}

/// Loads the configuration, opens the backend and serves until SIGTERM.
pub async fn run(
    file: Option<&Path>,
    listen: Option<SocketAddr>,
    backend: Option<String>,
    etcd: Option<Vec<String>>,
) -> anyhow::Result<()> {
    let config: StorageNodeConfig = settings::load(
        "storage",
        file,
        Flags {
            listen,
            backend,
            etcd,
        },
    )?;
    config.validate()?;
    let backend = zaqar_storage::backends::open(&config.backend, &config.redis, &config.embedded)?;
    let _delivery = zaqar_storage::delivery::start(&backend, &config.delivery)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let _registration = register(&config, address).await?;
    let stop = shutdown::listen();
    announce(address)?;
    tracing::info!(%address, backend = %redact(&config.backend), "storage node serving");
    zaqar_storage::server::serve(listener, backend, stop, config.shutdown_grace).await?;
    tracing::info!("storage node stopped");
    Ok(())
}

#[cfg(test)]
mod config_tests {
    use std::path::PathBuf;

    use super::*;

    fn example() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/storage.toml")
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let config: StorageNodeConfig = settings::load(
            "storage",
            Some(&example()),
            Flags {
                listen: None,
                backend: None,
                etcd: None,
            },
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.backend, "redis://127.0.0.1:6379/0");
        assert_eq!(config.redis.sweep_interval.as_secs(), 5);
        assert_eq!(config.embedded.cache_mib, 64);
        assert_eq!(config.embedded.sweep_interval.as_secs(), 5);
        assert_eq!(
            config.delivery,
            zaqar_storage::delivery::DeliveryConfig::default()
        );
    }

    #[test]
    fn flags_override_the_file() {
        let config: StorageNodeConfig = settings::load(
            "storage",
            Some(&example()),
            Flags {
                listen: Some("127.0.0.1:9999".parse().unwrap()),
                backend: Some("redis://other:1".into()),
                etcd: None,
            },
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.backend, "redis://other:1");
    }

    #[test]
    fn missing_files_and_unknown_keys_are_errors() {
        let missing = settings::load::<StorageNodeConfig>(
            "storage",
            Some(std::path::Path::new("/nonexistent/zaqar.toml")),
            Flags {
                listen: None,
                backend: None,
                etcd: None,
            },
        );
        assert!(missing.is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
        let unknown = settings::load::<StorageNodeConfig>(
            "storage",
            Some(&file),
            Flags {
                listen: None,
                backend: None,
                etcd: None,
            },
        );
        assert!(unknown.is_err());
        let empty = StorageNodeConfig::default();
        assert!(empty.validate().is_err(), "a backend is required");
    }
}
