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
}

/// Loads the configuration, opens the backend and serves until SIGTERM.
pub async fn run(
    file: Option<&Path>,
    listen: Option<SocketAddr>,
    backend: Option<String>,
) -> anyhow::Result<()> {
    let config: StorageNodeConfig = settings::load("storage", file, Flags { listen, backend })?;
    config.validate()?;
    let backend = zaqar_storage::backends::open(&config.backend, &config.redis)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    announce(address)?;
    tracing::info!(%address, backend = %redact(&config.backend), "storage node serving");
    zaqar_storage::server::serve(listener, backend, shutdown::signal(), config.shutdown_grace)
        .await?;
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
            },
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.backend, "redis://127.0.0.1:6379/0");
        assert_eq!(config.redis.sweep_interval.as_secs(), 5);
    }

    #[test]
    fn flags_override_the_file() {
        let config: StorageNodeConfig = settings::load(
            "storage",
            Some(&example()),
            Flags {
                listen: Some("127.0.0.1:9999".parse().unwrap()),
                backend: Some("redis://other:1".into()),
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
            },
        );
        assert!(unknown.is_err());
        let empty = StorageNodeConfig::default();
        assert!(empty.validate().is_err(), "a backend is required");
    }
}
