//! The placement catalog: pools, flavors, queue→pool placements and the live
//! storage nodes serving each pool.
//!
//! - [`store`]: the [`CatalogStore`](store::CatalogStore) key-value seam,
//!   with `store::etcd::EtcdStore` for clusters (feature `etcd`) and
//!   [`EmbeddedStore`](store::embedded::EmbeddedStore) in process.
//! - [`keys`]: every key, documented in one place.
//! - [`model`]: the records. [`catalog`]: typed access to them.
//! - [`placement`]: weighted rendezvous choice of a pool for a new queue.
//! - [`cache`]: an API node's watch-fed view.
//! - `conformance` (feature `conformance`): the suite every store passes.

pub mod cache;
pub mod catalog;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
pub mod keys;
pub mod model;
pub mod placement;
pub mod store;

pub use cache::CatalogView;
pub use catalog::Catalog;
pub use error::{CatalogError, Result};
pub use model::{Flavor, Node, Placement, Pool};
pub use store::{CatalogStore, CatalogStoreRef};
