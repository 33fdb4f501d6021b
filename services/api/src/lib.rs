//! The stateless HTTP tier speaking the Zaqar v2 API.
//!
//! It validates requests, looks up where a queue lives and forwards each call
//! over gRPC to the storage node of that pool. The HTTP surface is built in
//! its own milestone; this crate reserves its place in the workspace.
