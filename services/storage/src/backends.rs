//! Backend implementations, chosen once at startup from the pool URI scheme.

pub mod embedded;
pub mod mongo;
pub mod redis;

use std::sync::Arc;

use crate::backend::BackendRef;
use crate::error::{Result, StorageError};

pub use self::embedded::{EmbeddedBackend, EmbeddedConfig};
pub use self::mongo::MongoBackend;
pub use self::redis::{RedisBackend, RedisConfig};

/// The URI schemes this build can serve.
pub const SUPPORTED_SCHEMES: [&str; 3] = ["redis", "mongodb", "embedded"];

/// Opens the backend named by `uri`, rejecting unknown schemes with the list
/// of valid ones.
pub fn open(uri: &str, redis: &RedisConfig, embedded: &EmbeddedConfig) -> Result<BackendRef> {
    let scheme = uri
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or("");
    match scheme {
        "redis" => {
            redis.validate()?;
            Ok(Arc::new(RedisBackend::connect(uri, redis)?))
        }
        "mongodb" => Ok(Arc::new(MongoBackend::connect(uri)?)),
        "embedded" => Ok(Arc::new(EmbeddedBackend::open_uri(uri, embedded)?)),
        _ => Err(StorageError::Invalid(format!(
            "unsupported backend uri {uri:?}: the scheme must be one of {}",
            SUPPORTED_SCHEMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_rejected_by_name() {
        let error = open(
            "memcached://127.0.0.1:1",
            &RedisConfig::default(),
            &EmbeddedConfig::default(),
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("redis"), "{error}");
        assert!(
            open(
                "no-scheme",
                &RedisConfig::default(),
                &EmbeddedConfig::default()
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn zero_intervals_are_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("embedded://{}", dir.path().display());
        let no_sweep = EmbeddedConfig {
            sweep_interval: std::time::Duration::ZERO,
            ..EmbeddedConfig::default()
        };
        let error = open(&uri, &RedisConfig::default(), &no_sweep)
            .err()
            .unwrap();
        assert!(matches!(error, StorageError::Invalid(_)), "{error}");
        assert!(
            error.to_string().contains("embedded.sweep_interval"),
            "{error}"
        );
        assert!(!dir.path().join(embedded::DATA_FILE).exists());
        // The embedded store keeps its own interval, whatever Redis's is.
        let redis_zero = RedisConfig {
            sweep_interval: std::time::Duration::ZERO,
            ..RedisConfig::default()
        };
        assert!(open(&uri, &redis_zero, &EmbeddedConfig::default()).is_ok());
        for redis in [
            redis_zero,
            RedisConfig {
                response_timeout: std::time::Duration::ZERO,
                ..RedisConfig::default()
            },
        ] {
            let error = open("redis://127.0.0.1:1/0", &redis, &EmbeddedConfig::default())
                .err()
                .unwrap();
            assert!(
                error.to_string().contains("redis.sweep_interval"),
                "{error}"
            );
        }
    }
}
