//! The catalog crate's error type.

/// Result alias of the catalog crate.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Everything a catalog operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The catalog store (etcd) could not be reached or failed; retrying may help.
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("corrupt catalog entry {key}: {reason}")]
    Corrupt {
        /// The key holding the value.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// The store was given something it cannot hold.
    #[error("invalid catalog request: {0}")]
    Invalid(String),
}

#[cfg(feature = "etcd")]
impl From<etcd_client::Error> for CatalogError {
    fn from(error: etcd_client::Error) -> Self {
        CatalogError::Unavailable(error.to_string())
    }
}
