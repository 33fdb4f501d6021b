//! The catalog's records, stored as JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A storage pool: a backend URI queues can be placed on. Pools are global.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// The backend URI (`redis://…`, `mongodb://…`).
    pub uri: String,
    /// Relative share of new queues; 0 takes none.
    pub weight: u64,
    /// The flavor tag, if any.
    #[serde(default)]
    pub flavor: Option<String>,
    /// Driver options.
    #[serde(default)]
    pub options: Value,
}

/// A flavor: a named set of pools (the pools tagged with its name), scoped
/// to a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    /// The flavor's name.
    pub name: String,
    /// The project it belongs to.
    pub project: String,
}

/// Where a queue lives. The record, not any hash, is the truth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The pool holding the queue.
    pub pool: String,
    /// The flavor the queue was created with, if any.
    #[serde(default)]
    pub flavor: Option<String>,
}

/// A live storage node, registered under a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// A unique id of the node process.
    pub id: String,
    /// Its gRPC URL (`http://HOST:PORT`).
    pub address: String,
    /// The backend URI it serves.
    pub uri: String,
}
