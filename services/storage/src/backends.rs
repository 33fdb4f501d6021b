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
        "redis" => Ok(Arc::new(RedisBackend::connect(uri, redis)?)),
        "mongodb" => Ok(Arc::new(MongoBackend::connect(uri)?)),
        "embedded" => Ok(Arc::new(EmbeddedBackend::open_uri(
            uri,
            redis.sweep_interval,
            embedded,
        )?)),
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
}
