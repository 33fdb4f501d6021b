//! The placement catalog: pools, flavors, queue→pool placements and the live
//! storage nodes serving each pool.
//!
//! The catalog is built in its own milestone (an etcd store for clusters and
//! an embedded store for `zaqar standalone`, behind one `CatalogStore` trait).
//! Until then the API tier talks to one storage node given on its command
//! line, and this crate only reserves the place in the workspace.
