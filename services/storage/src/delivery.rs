//! Notification delivery: the outbox a backend keeps, and the worker that
//! drains it.
//!
//! A post that notifies writes one *delivery record* per (subscription,
//! post) into the pool's backend, in the same atomic step that stores the
//! messages. A storage node (or the standalone process) runs a
//! [`worker`] per backend that takes due records under a lease, sends them
//! (webhook or e-mail), and then either removes them or puts them back with
//! the next retry time of the subscription's retry policy. A process that
//! dies mid-delivery or mid-backoff leaves the records in the backend, where
//! the lease runs out and any node of the pool picks them up again: an
//! acknowledged post's notifications are delivered or given up on
//! explicitly, never silently lost.

pub mod mail;
pub mod policy;
pub mod webhook;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use zaqar_proto::model::Notice;

use crate::error::Result;

pub use self::worker::{DeliveryConfig, spawn_worker};

/// One pending delivery as stored in a backend's outbox (JSON; the Redis
/// post script writes the same shape).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The subscription to deliver to.
    #[serde(rename = "sub")]
    pub subscription: String,
    /// The posted messages, in post order: (effective TTL, delay or -1 when
    /// the queue is not a delay queue, body JSON text).
    #[serde(rename = "msgs", default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<(i64, i64, String)>,
    /// A notice rendered by the API tier, sent instead of messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<NoticeRecord>,
    /// Index of the next message to send (those before it are done).
    #[serde(default)]
    pub next: usize,
    /// Failed attempts so far for the next message.
    #[serde(default)]
    pub failures: u32,
}

impl DeliveryRecord {
    /// A record carrying `notice` for `subscription`.
    pub fn notice(subscription: &str, notice: Notice) -> DeliveryRecord {
        DeliveryRecord {
            subscription: subscription.to_string(),
            notice: Some(NoticeRecord {
                document: notice.document,
                mail: notice.mail.map(|mail| (mail.subject, mail.from, mail.body)),
            }),
            ..DeliveryRecord::default()
        }
    }

    /// How many documents the record sends in all.
    pub fn len(&self) -> usize {
        if self.notice.is_some() {
            1
        } else {
            self.messages.len()
        }
    }

    /// Whether the record has nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the record for storage.
    pub fn encode(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|error| {
            crate::error::StorageError::Internal(format!("cannot encode a delivery: {error}"))
        })
    }

    /// Decodes a stored record.
    pub fn decode(text: &[u8]) -> Result<DeliveryRecord> {
        serde_json::from_slice(text).map_err(|error| {
            crate::error::StorageError::Internal(format!("corrupt delivery record: {error}"))
        })
    }
}

/// A pre-rendered notice (subscription confirmation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// The JSON document POSTed to webhooks.
    #[serde(rename = "doc")]
    pub document: String,
    /// (subject, from, body) of the e-mail for `mailto:` subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<(String, String, String)>,
}

/// Where a delivery lives in its backend (opaque outside the backend).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    /// The queue's key in the backend.
    pub queue: Vec<u8>,
    /// The delivery's id within the queue.
    pub id: String,
}

/// The subscription a delivery goes to, as stored when it was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The subscriber URI.
    pub subscriber: String,
    /// The subscription's options (a JSON object as text).
    pub options: String,
}

/// A delivery taken from the outbox under a lease.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Where it lives.
    pub key: DeliveryKey,
    /// The queue (or topic) name, sent in notifications.
    pub queue_name: String,
    /// What to send and how far it got.
    pub record: DeliveryRecord,
    /// The subscription; `None` when it was deleted or has expired, in which
    /// case the delivery is dropped.
    pub target: Option<Target>,
    /// The queue's metadata (JSON text) for its `_retry_policy`; empty when
    /// the queue no longer exists.
    pub queue_metadata: String,
}

/// The outbox of one pool: deliveries waiting in the backend.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Takes up to `limit` due deliveries and leases them for `lease`: until
    /// then no other taker gets them. A lease that runs out (the taker died)
    /// makes the delivery due again.
    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>>;

    /// Removes a delivery that is done (sent or given up on).
    async fn finish(&self, key: &DeliveryKey) -> Result<()>;

    /// Stores the delivery's progress and makes it due again after `after`.
    async fn retry_later(
        &self,
        key: &DeliveryKey,
        record: &DeliveryRecord,
        after: Duration,
    ) -> Result<()>;

    /// Signalled when new deliveries are queued by this process.
    fn wakeup(&self) -> Arc<Notify>;
}

/// A shared outbox.
pub type OutboxRef = Arc<dyn Outbox>;

/// Starts delivering from `backend`'s outbox when delivery is enabled and
/// the backend keeps one. The worker runs until the returned guard is
/// dropped.
pub fn start(
    backend: &crate::BackendRef,
    config: &DeliveryConfig,
) -> Result<Option<tokio_util::sync::DropGuard>> {
    if !config.enabled {
        return Ok(None);
    }
    let Some(outbox) = backend.clone().outbox() else {
        return Ok(None);
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    spawn_worker(outbox, config, cancel.clone()).map_err(crate::error::StorageError::Invalid)?;
    Ok(Some(cancel.drop_guard()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_by_the_redis_script_decode() {
        // The shape Lua's cjson produces for a post of two messages.
        let text = br#"{"sub":"s1","msgs":[[300,-1,"{\"a\":1}"],[60,5,"[1,2]"]]}"#;
        let record = DeliveryRecord::decode(text).unwrap();
        assert_eq!(record.subscription, "s1");
        assert_eq!(record.messages[1], (60, 5, "[1,2]".to_string()));
        assert_eq!((record.next, record.failures, record.len()), (0, 0, 2));
        let again = DeliveryRecord::decode(record.encode().unwrap().as_bytes()).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn notices_count_as_one_document() {
        let record = DeliveryRecord::notice(
            "s",
            Notice {
                document: "{}".into(),
                mail: None,
            },
        );
        assert_eq!(record.len(), 1);
        assert!(!record.is_empty());
    }
}
