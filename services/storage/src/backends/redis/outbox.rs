//! The delivery outbox on Redis.
//!
//! Each queue keeps its deliveries under its own hash tag (`nrec`, `ndue`),
//! written by the post script in the same step as the messages. A global
//! sorted set ([`SCHEDULE_KEY`]: queue key prefix → when to look next) tells
//! the nodes of the pool which queues have due deliveries; it is kept
//! outside the queue's slot, so it is a schedule hint, maintained after each
//! step and healed by the sweeper. Queues that this process posted to are
//! also remembered in memory so their deliveries start at once whatever the
//! schedule says.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tokio::sync::Notify;

use super::{Inner, KEY_ROOT, Reply};
use crate::delivery::{Delivery, DeliveryKey, DeliveryRecord, Outbox, Target};
use crate::error::{Result, StorageError};

/// The global schedule: queue key prefix → next due time (ms).
pub(super) const SCHEDULE_KEY: &str = "zaqar:deliveries";
/// Queues looked at per schedule read.
const SCHEDULE_BATCH: i64 = 64;
/// Most queues remembered in memory; beyond, the schedule alone finds them
/// (and a node whose worker is off never grows the list).
const HOT_MAX: usize = 4096;

/// Remembers `prefix` for this process's worker.
fn remember(inner: &Inner, prefix: &str) {
    if let Ok(mut hot) = inner.hot.lock()
        && hot.len() < HOT_MAX
        && !hot.iter().any(|known| known == prefix)
    {
        hot.push(prefix.to_string());
    }
}

/// The outbox of one Redis pool.
pub struct RedisOutbox {
    pub(super) inner: Arc<Inner>,
}

impl Inner {
    /// Records that `prefix` has deliveries due at `due` (ms): in the
    /// schedule and, for this process's worker, in memory.
    pub(super) async fn schedule_deliveries(&self, prefix: &str, due: i64) {
        remember(self, prefix);
        self.wakeup.notify_one();
        let mut conn = self.conn();
        let scheduled: std::result::Result<i64, _> = redis::cmd("ZADD")
            .arg(SCHEDULE_KEY)
            .arg(due)
            .arg(prefix)
            .query_async(&mut conn)
            .await;
        if let Err(error) = scheduled {
            // The sweeper re-schedules queues it finds with deliveries.
            tracing::warn!(%error, "cannot schedule deliveries");
        }
    }

    /// Sets the schedule of `prefix` to its next due time (`-1`: none).
    async fn reschedule(&self, prefix: &str, next: i64) -> Result<()> {
        let mut conn = self.conn();
        if next >= 0 {
            let _: i64 = redis::cmd("ZADD")
                .arg(SCHEDULE_KEY)
                .arg(next)
                .arg(prefix)
                .query_async(&mut conn)
                .await?;
            return Ok(());
        }
        let _: i64 = redis::cmd("ZREM")
            .arg(SCHEDULE_KEY)
            .arg(prefix)
            .query_async(&mut conn)
            .await?;
        // A post that queued deliveries after the script looked schedules
        // itself after this removal, except when it ran before: look again.
        let first: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}:ndue"))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if let Some((_, due)) = first.first() {
            let _: i64 = redis::cmd("ZADD")
                .arg(SCHEDULE_KEY)
                .arg(*due as i64)
                .arg(prefix)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Queues whose scheduled time has come (on Redis' clock).
    async fn due_queues(&self) -> Result<Vec<String>> {
        let mut invocation = self.scripts.delivery_due.prepare_invoke();
        invocation.key(SCHEDULE_KEY).arg(SCHEDULE_BATCH);
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Leases up to `limit` due deliveries of one queue.
    async fn take_from(
        &self,
        prefix: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>> {
        let mut take = self.invocation(&self.scripts.delivery_take, prefix);
        take.arg(limit).arg(lease.as_millis() as u64);
        let mut reply = Reply::new(self.run(&take).await?)?;
        let queue_metadata = reply.string()?;
        let next = reply.int()?;
        let queue_name = queue_name_of(prefix);
        let mut deliveries = Vec::new();
        while !reply.is_empty() {
            let id = reply.string()?;
            let record = reply.string()?;
            let found = reply.int()? == 1;
            let subscriber = reply.string()?;
            let options = reply.string()?;
            let key = DeliveryKey {
                queue: prefix.as_bytes().to_vec(),
                id,
            };
            match DeliveryRecord::decode(record.as_bytes()) {
                Ok(record) => deliveries.push(Delivery {
                    key,
                    queue_name: queue_name.clone(),
                    record,
                    target: found.then_some(Target {
                        subscriber,
                        options,
                    }),
                    queue_metadata: queue_metadata.clone(),
                }),
                Err(error) => {
                    // Unreadable: drop it rather than retry it forever.
                    tracing::error!(%error, id = %key.id, "dropping a corrupt delivery");
                    self.finish_delivery(&key).await?;
                }
            }
        }
        self.reschedule(prefix, next).await?;
        Ok(deliveries)
    }

    async fn finish_delivery(&self, key: &DeliveryKey) -> Result<()> {
        let prefix = prefix_of(key)?;
        let mut finish = self.invocation(&self.scripts.delivery_finish, prefix);
        finish.arg(&key.id);
        let next = int_of(self.run(&finish).await?)?;
        self.reschedule(prefix, next).await
    }
}

fn prefix_of(key: &DeliveryKey) -> Result<&str> {
    std::str::from_utf8(&key.queue)
        .map_err(|_| StorageError::Internal("delivery key is not a redis key prefix".into()))
}

fn int_of(value: Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(n),
        other => Err(super::unexpected(&other)),
    }
}

/// The queue name inside `zaqar:{ns:project:name}`.
fn queue_name_of(prefix: &str) -> String {
    prefix
        .strip_prefix(KEY_ROOT)
        .and_then(|rest| rest.strip_prefix('{'))
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.rsplit_once(':'))
        .map(|(_, name)| name.to_string())
        .unwrap_or_default()
}

#[async_trait]
impl Outbox for RedisOutbox {
    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let inner = &self.inner;
        let mut prefixes: Vec<String> = match inner.hot.lock() {
            Ok(mut hot) => std::mem::take(&mut *hot),
            Err(_) => Vec::new(),
        };
        match inner.due_queues().await {
            Ok(due) => prefixes.extend(due),
            Err(error) => {
                for prefix in &prefixes {
                    remember(inner, prefix);
                }
                return Err(error);
            }
        }
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut taken = Vec::new();
        let mut failure = None;
        for prefix in prefixes {
            let room = limit.saturating_sub(taken.len());
            if room == 0 || failure.is_some() {
                // Looked at next round.
                remember(inner, &prefix);
                continue;
            }
            match inner.take_from(&prefix, room, lease).await {
                Ok(deliveries) => {
                    if deliveries.len() >= room {
                        // It may hold more: look again at once.
                        remember(inner, &prefix);
                    }
                    taken.extend(deliveries);
                }
                Err(error) => {
                    remember(inner, &prefix);
                    failure = Some(error);
                }
            }
        }
        match failure {
            Some(error) if taken.is_empty() => return Err(error),
            Some(_) => inner.wakeup.notify_one(),
            None if limit <= taken.len() => inner.wakeup.notify_one(),
            None => {}
        }
        Ok(taken)
    }

    async fn finish(&self, key: &DeliveryKey) -> Result<()> {
        self.inner.finish_delivery(key).await
    }

    async fn retry_later(
        &self,
        key: &DeliveryKey,
        record: &DeliveryRecord,
        after: Duration,
    ) -> Result<()> {
        let inner = &self.inner;
        let prefix = prefix_of(key)?;
        let mut retry = inner.invocation(&inner.scripts.delivery_retry, prefix);
        retry
            .arg(&key.id)
            .arg(record.encode()?)
            .arg(after.as_millis() as u64);
        let next = int_of(inner.run(&retry).await?)?;
        inner.reschedule(prefix, next).await?;
        if after.is_zero() {
            remember(inner, prefix);
            inner.wakeup.notify_one();
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
    fn queue_names_come_from_the_prefix() {
        assert_eq!(queue_name_of("zaqar:{q:a%7Db:orders}"), "orders");
        assert_eq!(queue_name_of("garbage"), "");
    }
}
