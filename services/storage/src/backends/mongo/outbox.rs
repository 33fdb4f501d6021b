//! The delivery outbox: the `deliveries` collection.
//!
//! One document per pending delivery, unique per (queue key, delivery id),
//! written in the transaction of the post that queued it. `due` is when it
//! may be taken next; taking moves `due` to the end of the lease with an
//! update filtered on `due <= now`, so two nodes of the pool never take the
//! same delivery, and a taker that dies leaves it due again once the lease
//! ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use zaqar_proto::model::{NotifyMode, new_id};

use super::documents::{QueueDoc, SubscriptionDoc};
use super::{Inner, TxnError};
use crate::delivery::{Delivery, DeliveryKey, DeliveryRecord, Outbox, Target};
use crate::error::{Result, StorageError};

/// A pending delivery (`deliveries` collection).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryDoc {
    /// The key of the queue whose post (or subscription) queued it.
    pub q: String,
    /// The delivery id: `<first message id>.<subscription id>` for a post,
    /// `<fresh id>.<subscription id>` for a notice.
    pub did: String,
    /// When it may be taken next (the end of the lease while taken).
    pub due: i64,
    /// The [`DeliveryRecord`] as JSON text.
    pub record: String,
    /// The token of the take that leased it last (`""`: never taken).
    #[serde(default)]
    pub taker: String,
}

/// The queue name inside a queue key `<ns>:<project>:<name>`.
fn queue_name_of(key: &str) -> String {
    key.rsplit_once(':')
        .map(|(_, name)| name.to_string())
        .unwrap_or_default()
}

fn queue_key_of(key: &DeliveryKey) -> Result<&str> {
    std::str::from_utf8(&key.queue)
        .map_err(|_| StorageError::Internal("delivery key is not a mongodb queue key".into()))
}

impl Inner {
    /// Queues one delivery of `messages` per live subscription of `key`
    /// that `notify` reaches, inside the post's transaction. Returns how
    /// many were queued.
    pub(super) async fn queue_notifications(
        &self,
        session: &mut ClientSession,
        key: &str,
        first_id: &str,
        messages: Vec<(i64, i64, String)>,
        notify: NotifyMode,
        now: i64,
    ) -> std::result::Result<usize, TxnError> {
        let mut filter = doc! {"q": key, "expires": {"$gt": now}};
        match notify {
            NotifyMode::None => return Ok(0),
            NotifyMode::All => {}
            NotifyMode::Confirmed => {
                filter.insert("confirmed", true);
            }
        }
        let subscriptions: Vec<SubscriptionDoc> = self
            .subscriptions
            .find(filter)
            .session(&mut *session)
            .await?
            .stream(&mut *session)
            .try_collect()
            .await?;
        if subscriptions.is_empty() {
            return Ok(0);
        }
        let mut documents = Vec::with_capacity(subscriptions.len());
        for subscription in &subscriptions {
            let record = DeliveryRecord {
                subscription: subscription.id.clone(),
                messages: messages.clone(),
                ..DeliveryRecord::default()
            };
            let record = record.encode().map_err(TxnError::Storage)?;
            documents.push(DeliveryDoc {
                q: key.to_string(),
                did: format!("{first_id}.{}", subscription.id),
                due: now,
                record,
                taker: String::new(),
            });
        }
        self.deliveries
            .insert_many(documents)
            .session(&mut *session)
            .await?;
        Ok(subscriptions.len())
    }

    /// Queues `record` (a notice) for a live subscription of `key`, due now.
    pub(super) async fn enqueue_notice(
        &self,
        key: &str,
        subscription_id: &str,
        record: String,
    ) -> Result<()> {
        let now = self.now();
        let live = self
            .subscriptions
            .find_one(doc! {"_id": subscription_id, "q": key, "expires": {"$gt": now}})
            .await?;
        if live.is_none() {
            return Err(StorageError::subscription_not_found(subscription_id));
        }
        self.deliveries
            .insert_one(DeliveryDoc {
                q: key.to_string(),
                did: format!("{}.{subscription_id}", new_id()),
                due: now,
                record,
                taker: String::new(),
            })
            .await?;
        self.wakeup.notify_one();
        Ok(())
    }

    /// Leases up to `limit` due deliveries: the oldest due ones are read,
    /// then leased with `update_many` filtered on "still due", which the
    /// server checks atomically per document; what this take got is read
    /// back by its token.
    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let now = self.now();
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        let candidates: Vec<DeliveryDoc> = self
            .deliveries
            .find(doc! {"due": {"$lte": now}})
            .sort(doc! {"due": 1})
            .limit(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .await?
            .try_collect()
            .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let token = new_id();
        let mut leased = 0;
        // One update per queue key keeps the filter on the unique index.
        let mut by_queue: HashMap<&str, Vec<&str>> = HashMap::new();
        for candidate in &candidates {
            by_queue
                .entry(candidate.q.as_str())
                .or_default()
                .push(candidate.did.as_str());
        }
        for (queue, ids) in &by_queue {
            leased += self
                .deliveries
                .update_many(
                    doc! {"q": queue, "did": {"$in": ids}, "due": {"$lte": now}},
                    doc! {"$set": {"due": now + lease, "taker": &token}},
                )
                .await?
                .modified_count;
        }
        if leased == 0 {
            return Ok(Vec::new());
        }
        let taken: Vec<DeliveryDoc> = self
            .deliveries
            .find(doc! {"taker": &token})
            .await?
            .try_collect()
            .await?;
        self.describe(taken, now).await
    }

    /// Pairs taken deliveries with their subscriptions and queues.
    async fn describe(&self, taken: Vec<DeliveryDoc>, now: i64) -> Result<Vec<Delivery>> {
        let mut records = Vec::with_capacity(taken.len());
        for document in taken {
            let key = DeliveryKey {
                queue: document.q.as_bytes().to_vec(),
                id: document.did.clone(),
            };
            match DeliveryRecord::decode(document.record.as_bytes()) {
                Ok(record) => records.push((document.q, key, record)),
                Err(error) => {
                    // Unreadable: drop it rather than retry it forever.
                    tracing::error!(%error, id = %key.id, "dropping a corrupt delivery");
                    self.finish_delivery(&key).await?;
                }
            }
        }
        let subscription_ids: Vec<&str> = records
            .iter()
            .map(|(_, _, record)| record.subscription.as_str())
            .collect();
        let subscriptions: HashMap<String, SubscriptionDoc> = self
            .subscriptions
            .find(doc! {"_id": {"$in": &subscription_ids}, "expires": {"$gt": now}})
            .await?
            .map_ok(|subscription| (subscription.id.clone(), subscription))
            .try_collect()
            .await?;
        let mut queue_keys: Vec<&str> = records.iter().map(|(q, _, _)| q.as_str()).collect();
        queue_keys.sort_unstable();
        queue_keys.dedup();
        let queues: HashMap<String, QueueDoc> = self
            .queues
            .find(doc! {"_id": {"$in": &queue_keys}})
            .await?
            .map_ok(|queue| (queue.key.clone(), queue))
            .try_collect()
            .await?;
        Ok(records
            .into_iter()
            .map(|(q, key, record)| Delivery {
                queue_name: queue_name_of(&q),
                target: subscriptions
                    .get(&record.subscription)
                    .filter(|subscription| subscription.q == q)
                    .map(|subscription| Target {
                        subscriber: subscription.subscriber.clone(),
                        options: subscription.options.clone(),
                    }),
                queue_metadata: queues
                    .get(&q)
                    .map(|queue| queue.metadata.clone())
                    .unwrap_or_default(),
                key,
                record,
            })
            .collect())
    }

    async fn finish_delivery(&self, key: &DeliveryKey) -> Result<()> {
        self.deliveries
            .delete_one(doc! {"q": queue_key_of(key)?, "did": &key.id})
            .await?;
        Ok(())
    }

    /// Stores the progress and the next due time of a delivery that still
    /// exists (one finished meanwhile stays finished).
    async fn retry_delivery(
        &self,
        key: &DeliveryKey,
        record: &DeliveryRecord,
        after: Duration,
    ) -> Result<()> {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
        self.deliveries
            .update_one(
                doc! {"q": queue_key_of(key)?, "did": &key.id},
                doc! {"$set": {"record": record.encode()?, "due": self.now() + after}},
            )
            .await?;
        Ok(())
    }
}

/// The outbox of one MongoDB pool.
pub struct MongoOutbox {
    pub(super) inner: Arc<Inner>,
}

#[async_trait]
impl Outbox for MongoOutbox {
    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let taken = self.inner.run(self.inner.take_due(limit, lease)).await?;
        if taken.len() >= limit {
            // There may be more: look again at once.
            self.inner.wakeup.notify_one();
        }
        Ok(taken)
    }

    async fn finish(&self, key: &DeliveryKey) -> Result<()> {
        self.inner.run(self.inner.finish_delivery(key)).await
    }

    async fn retry_later(
        &self,
        key: &DeliveryKey,
        record: &DeliveryRecord,
        after: Duration,
    ) -> Result<()> {
        self.inner
            .run(self.inner.retry_delivery(key, record, after))
            .await?;
        if after.is_zero() {
            self.inner.wakeup.notify_one();
        }
        Ok(())
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.inner.wakeup.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_come_from_the_key() {
        assert_eq!(queue_name_of("q:a:b:orders"), "orders");
        assert_eq!(queue_name_of("garbage"), "");
    }
}
