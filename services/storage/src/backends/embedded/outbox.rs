//! The delivery outbox in the embedded store.
//!
//! Two tables: `deliveries` (queue key + delivery id → due time + record)
//! and `delivery_due` (due time + queue key + delivery id → nothing), both
//! written in the transaction of the post that queued them. One process
//! owns the store, so leases are kept in memory: after a restart every
//! delivery that was in flight is due again at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use tokio::sync::Notify;
use zaqar_proto::model::NotifyMode;

use super::{Bytes, Job, SubscriptionRow, Tables, child, db_error, decode, prefix_end, submit};
use crate::delivery::{Delivery, DeliveryKey, DeliveryRecord, Outbox, Target};
use crate::error::Result;

/// Queue key + 0 + delivery id → due time (8 bytes, big endian) + record.
pub(super) const DELIVERIES: TableDefinition<Bytes, Bytes> = TableDefinition::new("deliveries");
/// Due time (8 bytes, big endian) + queue key + 0 + delivery id → empty.
pub(super) const DELIVERY_DUE: TableDefinition<Bytes, Bytes> = TableDefinition::new("delivery_due");

/// Deliveries taken and not yet finished or handed back.
pub(super) type InFlight = Arc<Mutex<HashSet<Vec<u8>>>>;

fn due_key(due: i64, full: &[u8]) -> Vec<u8> {
    let mut key = (due.max(0) as u64).to_be_bytes().to_vec();
    key.extend_from_slice(full);
    key
}

impl Tables<'_> {
    /// Stores (or replaces) a delivery, due at `due`.
    pub(super) fn put_delivery(&mut self, full: &[u8], due: i64, record: &[u8]) -> Result<()> {
        self.remove_delivery(full)?;
        let mut value = (due.max(0) as u64).to_be_bytes().to_vec();
        value.extend_from_slice(record);
        self.deliveries
            .insert(full, value.as_slice())
            .map_err(db_error)?;
        self.delivery_due
            .insert(due_key(due, full).as_slice(), &[][..])
            .map_err(db_error)?;
        Ok(())
    }

    /// Removes a delivery; returns its record when it existed.
    pub(super) fn remove_delivery(&mut self, full: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(value) = self
            .deliveries
            .remove(full)
            .map_err(db_error)?
            .map(|value| value.value().to_vec())
        else {
            return Ok(None);
        };
        if let Some((due, record)) = value.split_first_chunk::<8>() {
            let due = u64::from_be_bytes(*due) as i64;
            self.delivery_due
                .remove(due_key(due, full).as_slice())
                .map_err(db_error)?;
            return Ok(Some(record.to_vec()));
        }
        Ok(None)
    }

    /// The queue's live subscriptions that a post with `notify` reaches.
    fn notified_subscriptions(
        &self,
        scope: &[u8],
        notify: NotifyMode,
        now: i64,
    ) -> Result<Vec<String>> {
        if notify == NotifyMode::None {
            return Ok(Vec::new());
        }
        let prefix = child(scope, &[]);
        let end = prefix_end(&prefix);
        let mut found = Vec::new();
        for entry in self
            .subscriptions
            .range(prefix.as_slice()..end.as_slice())
            .map_err(db_error)?
        {
            let (key, value) = entry.map_err(db_error)?;
            let row: SubscriptionRow = decode(value.value())?;
            if row.expires > now && (notify == NotifyMode::All || row.confirmed) {
                found.push(String::from_utf8_lossy(&key.value()[prefix.len()..]).into_owned());
            }
        }
        Ok(found)
    }

    /// Queues one delivery of `messages` per subscription `notify` reaches;
    /// returns how many.
    pub(super) fn queue_notifications(
        &mut self,
        scope: &[u8],
        first_id: &str,
        messages: Vec<(i64, i64, String)>,
        notify: NotifyMode,
        now: i64,
    ) -> Result<usize> {
        let subscriptions = self.notified_subscriptions(scope, notify, now)?;
        for subscription in &subscriptions {
            let record = DeliveryRecord {
                subscription: subscription.clone(),
                messages: messages.clone(),
                ..DeliveryRecord::default()
            };
            let id = format!("{first_id}.{subscription}");
            self.put_delivery(
                &child(scope, id.as_bytes()),
                now,
                record.encode()?.as_bytes(),
            )?;
        }
        Ok(subscriptions.len())
    }

    /// Takes up to `limit` due deliveries not in flight.
    fn take_due(&self, limit: usize, now: i64, in_flight: &InFlight) -> Result<Vec<Delivery>> {
        let end = due_key(now + 1, &[]);
        let mut fulls = Vec::new();
        {
            let busy = in_flight
                .lock()
                .map_err(|_| crate::error::StorageError::Internal("poisoned lock".into()))?;
            for entry in self
                .delivery_due
                .range(&[][..]..end.as_slice())
                .map_err(db_error)?
            {
                if fulls.len() >= limit {
                    break;
                }
                let (key, _) = entry.map_err(db_error)?;
                let full = key.value()[8..].to_vec();
                if !busy.contains(&full) {
                    fulls.push(full);
                }
            }
        }
        let mut taken = Vec::with_capacity(fulls.len());
        for full in fulls {
            let Some(value) = self
                .deliveries
                .get(full.as_slice())
                .map_err(db_error)?
                .map(|value| value.value().to_vec())
            else {
                continue;
            };
            let Some(split) = full.iter().rposition(|byte| *byte == 0) else {
                continue;
            };
            let (scope, id) = (&full[..split], &full[split + 1..]);
            let id = String::from_utf8_lossy(id).into_owned();
            let record = DeliveryRecord::decode(value.get(8..).unwrap_or_default())?;
            let queue_name = scope
                .rsplit(|byte| *byte == 0)
                .next()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .unwrap_or_default();
            let target = self
                .subscription(scope, &record.subscription, now)?
                .map(|row| Target {
                    subscriber: row.subscriber,
                    options: row.options,
                });
            let queue_metadata = self
                .queue(scope)?
                .map(|queue| queue.metadata)
                .unwrap_or_default();
            if let Ok(mut busy) = in_flight.lock() {
                busy.insert(full.clone());
            }
            taken.push(Delivery {
                key: DeliveryKey {
                    queue: scope.to_vec(),
                    id,
                },
                queue_name,
                record,
                target,
                queue_metadata,
            });
        }
        Ok(taken)
    }
}

/// The outbox of an embedded store.
pub struct EmbeddedOutbox {
    pub(super) jobs: std::sync::mpsc::Sender<Job>,
    pub(super) in_flight: InFlight,
    pub(super) wakeup: Arc<Notify>,
}

impl EmbeddedOutbox {
    fn release(&self, full: &[u8]) {
        if let Ok(mut busy) = self.in_flight.lock() {
            busy.remove(full);
        }
    }
}

#[async_trait]
impl Outbox for EmbeddedOutbox {
    async fn take_due(&self, limit: usize, _lease: Duration) -> Result<Vec<Delivery>> {
        let in_flight = self.in_flight.clone();
        submit(&self.jobs, move |tables, now| {
            (tables.take_due(limit, now, &in_flight), false)
        })
        .await
    }

    async fn finish(&self, key: &DeliveryKey) -> Result<()> {
        let full = child(&key.queue, key.id.as_bytes());
        let target = full.clone();
        let outcome = submit(&self.jobs, move |tables, _| {
            (tables.remove_delivery(&target).map(|_| ()), false)
        })
        .await;
        self.release(&full);
        outcome
    }

    async fn retry_later(
        &self,
        key: &DeliveryKey,
        record: &DeliveryRecord,
        after: Duration,
    ) -> Result<()> {
        let full = child(&key.queue, key.id.as_bytes());
        let target = full.clone();
        let record = record.encode()?;
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
        let outcome = submit(&self.jobs, move |tables, now| {
            let stored = (|| {
                // A delivery removed meanwhile stays removed.
                if tables.remove_delivery(&target)?.is_some() {
                    tables.put_delivery(&target, now + after, record.as_bytes())?;
                }
                Ok(())
            })();
            (stored, false)
        })
        .await;
        self.release(&full);
        if after == 0 {
            self.wakeup.notify_one();
        }
        outcome
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }
}
