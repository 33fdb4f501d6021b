//! `zaqar storage`: a storage node in front of one pool.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use zaqar_storage::config::StorageNodeConfig;

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

/// Prints the bound address on stdout, the line scripts and tests wait for.
fn announce(address: SocketAddr) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}")?;
    stdout.flush()?;
    Ok(())
}

/// Hides a password in a backend URI before it is logged.
fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &uri[..scheme_end], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact("redis://:secret@host:1/0"), "redis://***@host:1/0");
        assert_eq!(redact("redis://host:1"), "redis://host:1");
    }
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
