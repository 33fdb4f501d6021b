//! Configuration of the storage-node role.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::backends::{EmbeddedConfig, RedisConfig};
use crate::delivery::DeliveryConfig;
use crate::error::{Result, StorageError};

/// Settings of `zaqar storage`.
///
/// Loaded from defaults, then an optional TOML file, then `ZAQAR_STORAGE__*`
/// environment variables (`__` nests), then command-line flags; unknown keys
/// are rejected.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageNodeConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// URI of the pool this node fronts, e.g. `redis://127.0.0.1:6379/0`.
    pub backend: String,
    /// Redis backend settings.
    pub redis: RedisConfig,
    /// Embedded store settings (`embedded://DIR` backends).
    pub embedded: EmbeddedConfig,
    /// How long in-flight calls may take to finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// etcd endpoints of the cluster catalog; when set, the node registers
    /// itself there (under a lease) so API nodes route the pool's calls to it.
    pub etcd: Vec<String>,
    /// Root of the catalog's keys in etcd.
    pub catalog_root: String,
    /// The gRPC URL API nodes use to reach this node; defaults to
    /// `http://` + the bound listen address.
    pub advertise: Option<String>,
    /// How long the registration outlives a node that stopped renewing it.
    #[serde(with = "humantime_serde")]
    pub registration_ttl: Duration,
    /// Notification delivery from this node's pool.
    pub delivery: DeliveryConfig,
}

impl Default for StorageNodeConfig {
    fn default() -> Self {
        StorageNodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            backend: String::new(),
            redis: RedisConfig::default(),
            embedded: EmbeddedConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            etcd: Vec::new(),
            catalog_root: "/zaqar".into(),
            advertise: None,
            registration_ttl: Duration::from_secs(6),
            delivery: DeliveryConfig::default(),
        }
    }
}

impl StorageNodeConfig {
    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.backend.is_empty() {
            return Err(StorageError::Invalid(
                "no backend configured: pass --backend redis://HOST:PORT[/DB]".into(),
            ));
        }
        self.redis.validate()?;
        self.embedded.validate()?;
        self.delivery.validate()
    }
}
