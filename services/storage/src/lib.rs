//! The storage node: the storage protocol served over one [`Backend`] trait.
//!
//! - [`backend`]: the [`Backend`] trait every pool implementation fulfils.
//! - [`backends`]: the implementations (Redis, embedded), chosen by URI scheme.
//! - [`delivery`]: the notification outbox and the worker that drains it.
//! - [`service`]: the gRPC adapter from wire messages to the trait.
//! - [`client`]: the trait over a remote node, used by the API tier.
//! - [`config`]: the settings of the storage-node role.
//! - [`server`]: serving a backend on a listener with graceful shutdown.
//! - `conformance` (feature `conformance`): the suite every backend passes.

pub mod backend;
pub mod backends;
pub mod client;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod delivery;
pub mod error;
pub mod server;
pub mod service;

pub use backend::{Backend, BackendRef};
pub use client::GrpcBackend;
pub use error::{Result, StorageError};
