//! The storage protocol between the API tier and storage nodes, and the
//! vocabulary both sides share.
//!
//! - [`pb`]: the generated `zaqar.storage.v1` messages, client and server.
//! - [`model`]: validated domain types (scopes, ids, queue settings) and their
//!   conversions from and to the wire messages.
//! - [`error`]: [`ErrorKind`], the one table mapping every error kind to an HTTP
//!   status and a gRPC code, and the metadata that carries a kind across gRPC.
//!
//! The crate re-exports `tonic` and `prost` so every crate uses one version.

pub mod error;
pub mod model;

pub use error::{ERROR_KIND_METADATA, ErrorKind, ProtocolError};
pub use prost;
pub use tonic;

/// The generated protocol code (package `zaqar.storage.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("zaqar.storage.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("storage_descriptor");
}
