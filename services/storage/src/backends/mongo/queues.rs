//! Queues: creation, metadata, listing, deletion, stats and purge.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;
use zaqar_proto::model::{Namespace, QueueNames, QueueRecord, QueueStats, Scope};

use super::documents::{QueueDoc, Settings, new_queue_fields, queue_key};
use super::{Finished, Inner, TxnError, is_duplicate_key};
use crate::error::{Result, StorageError};

impl Inner {
    /// Inside a transaction: takes `count` positions from the queue's
    /// counter, creating the queue (default settings) if it is missing.
    /// Returns the queue as it is after the increment (its `seq` is the
    /// last position taken).
    pub(super) async fn reserve_positions(
        &self,
        session: &mut ClientSession,
        scope: &Scope,
        key: &str,
        count: i64,
        now: i64,
    ) -> std::result::Result<QueueDoc, TxnError> {
        self.queues
            .find_one_and_update(
                doc! {"_id": key},
                doc! {
                    "$inc": {"seq": count},
                    "$setOnInsert": new_queue_fields(scope, "{}", &Settings::default(), now),
                },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?
            .ok_or_else(|| {
                TxnError::Storage(StorageError::Internal("upsert returned no queue".into()))
            })
    }

    pub(super) async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool> {
        let settings = Settings::from_metadata(metadata)?;
        let fields = new_queue_fields(scope, metadata, &settings, self.now());
        let mut insert = fields;
        insert.insert("seq", 0_i64);
        let created = self
            .queues
            .update_one(
                doc! {"_id": queue_key(scope)},
                doc! {"$setOnInsert": insert},
            )
            .upsert(true)
            .await;
        match created {
            Ok(result) => Ok(result.upserted_id.is_some()),
            // A concurrent creation won the race: the queue exists.
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub(super) async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        let keys: Vec<String> = scopes.iter().map(queue_key).collect();
        let found: Vec<QueueDoc> = self
            .queues
            .find(doc! {"_id": {"$in": &keys}})
            .await?
            .try_collect()
            .await?;
        let mut by_key: HashMap<String, QueueDoc> = found
            .into_iter()
            .map(|queue| (queue.key.clone(), queue))
            .collect();
        Ok(keys
            .iter()
            .map(|key| {
                by_key.remove(key).map(|queue| QueueRecord {
                    metadata: queue.metadata,
                    revision: u64::try_from(queue.revision).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Reads a queue's document.
    pub(super) async fn queue(&self, key: &str) -> Result<Option<QueueDoc>> {
        Ok(self.queues.find_one(doc! {"_id": key}).await?)
    }

    pub(super) async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64> {
        let settings = Settings::from_metadata(metadata)?;
        let key = queue_key(scope);
        let mut filter = doc! {"_id": &key};
        if let Some(revision) = expected_revision {
            filter.insert("revision", i64::try_from(revision).unwrap_or(i64::MAX));
        }
        let update = doc! {
            "$set": {"metadata": metadata, "settings": settings.to_document()},
            "$inc": {"revision": 1_i64},
        };
        let updated = self
            .queues
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await?;
        match updated {
            Some(queue) => Ok(u64::try_from(queue.revision).unwrap_or_default()),
            None if self.queue_exists(scope).await? => Err(StorageError::Conflict(
                "queue metadata changed concurrently".into(),
            )),
            None => Err(StorageError::queue_not_found(scope)),
        }
    }

    pub(super) async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames> {
        let owner = doc! {"project": project, "ns": namespace.tag()};
        let mut filter = owner.clone();
        if let Some(marker) = marker {
            filter.insert("name", doc! {"$gt": marker});
        }
        let names: Vec<String> = self
            .queues
            .find(filter)
            .sort(doc! {"name": 1})
            .limit(i64::from(limit.max(1)))
            .await?
            .map_ok(|queue| queue.name)
            .try_collect()
            .await?;
        let total = self.queues.count_documents(owner).await?;
        Ok(QueueNames { names, total })
    }

    /// Deletes the queue document with its messages and claims in one
    /// transaction, so a concurrent post either precedes the deletion
    /// (and is deleted) or follows it (and recreates the queue). The bulk
    /// of the messages goes first, outside the transaction, which then
    /// only meets what was posted meanwhile (transactions are bounded).
    pub(super) async fn delete_queue(&self, scope: &Scope) -> Result<()> {
        let key = queue_key(scope);
        self.messages.delete_many(doc! {"q": &key}).await?;
        let mut attempt = 0;
        loop {
            let mut session = self.begin().await?;
            let outcome = self.delete_queue_attempt(&mut session, &key).await;
            match self.finish(&mut session, outcome, &mut attempt).await? {
                Finished::Committed(()) | Finished::Abandoned => return Ok(()),
                Finished::Retry => continue,
            }
        }
    }

    async fn delete_queue_attempt(
        &self,
        session: &mut ClientSession,
        key: &str,
    ) -> std::result::Result<(), TxnError> {
        self.queues
            .delete_one(doc! {"_id": key})
            .session(&mut *session)
            .await?;
        self.messages
            .delete_many(doc! {"q": key})
            .session(&mut *session)
            .await?;
        self.claims
            .delete_many(doc! {"q": key})
            .session(&mut *session)
            .await?;
        Ok(())
    }

    pub(super) async fn queue_exists(&self, scope: &Scope) -> Result<bool> {
        let count = self
            .queues
            .count_documents(doc! {"_id": queue_key(scope)})
            .limit(1)
            .await?;
        Ok(count > 0)
    }

    pub(super) async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats> {
        if !self.queue_exists(scope).await? {
            return Ok(QueueStats::default());
        }
        let now = self.now();
        let live = doc! {"q": queue_key(scope), "expires": {"$gt": now}};
        let total = self.messages.count_documents(live.clone()).await?;
        let mut held = live.clone();
        held.insert("cexp", doc! {"$gt": now});
        let claimed = self.messages.count_documents(held).await?;
        let oldest = self
            .messages
            .find_one(live.clone())
            .sort(doc! {"pos": 1})
            .await?;
        let newest = self.messages.find_one(live).sort(doc! {"pos": -1}).await?;
        Ok(QueueStats {
            exists: true,
            claimed,
            free: total.saturating_sub(claimed),
            total,
            oldest: oldest.map(|message| message.summary(now)),
            newest: newest.map(|message| message.summary(now)),
        })
    }

    pub(super) async fn purge_queue(
        &self,
        scope: &Scope,
        messages: bool,
        subscriptions: bool,
    ) -> Result<()> {
        let key = queue_key(scope);
        if messages && self.queue_exists(scope).await? {
            // Claimed messages are kept, as Zaqar does.
            self.messages
                .delete_many(doc! {"q": &key, "cexp": {"$lte": self.now()}})
                .await?;
        }
        if subscriptions {
            self.subscriptions.delete_many(doc! {"q": &key}).await?;
        }
        Ok(())
    }
}
