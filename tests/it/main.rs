//! Integration tests: real `zaqar` processes and backends on loopback.

// Test code: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_claims;
mod api_coalescing;
mod api_conventions;
mod api_messages;
mod api_queues;
mod api_signed;
mod api_subscriptions;
mod bench;
mod cluster;
mod mongo_pool;
mod notifications;
mod standalone;
mod storage_node;
