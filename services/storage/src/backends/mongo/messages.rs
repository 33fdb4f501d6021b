//! Messages: posting, listing, reading, deleting and popping.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use zaqar_proto::model::{
    ClaimRef, ListQuery, Message, MessagePage, NotifyMode, PostBatch, Scope, new_id,
};

use super::documents::{MessageDoc, gc_date, queue_key};
use super::{Finished, Inner, TxnError};
use crate::error::{Result, StorageError};

/// Attempts of a single-message delete whose message keeps changing.
const DELETE_ATTEMPTS: usize = 10;

/// How a post ended.
enum Posted {
    /// Stored, with this many deliveries queued.
    Stored(usize),
    TooLarge {
        effective: i64,
        global: i64,
        queue: i64,
    },
    BadDelay,
}

/// The filter of the messages of `key` a claim or pop may take now:
/// live, visible and not held by an active claim.
pub(super) fn takeable(key: &str, now: i64) -> Document {
    doc! {
        "q": key,
        "expires": {"$gt": now},
        "visible": {"$lte": now},
        "cexp": {"$lte": now},
    }
}

impl Inner {
    /// Stores the batch in one transaction: `$inc` of the queue's counter
    /// (creating the queue if missing) reserves the positions, then the
    /// messages are inserted and one delivery is queued per notified
    /// subscription. Rejected batches still create the queue.
    pub(super) async fn post_messages(
        &self,
        scope: &Scope,
        batch: PostBatch,
    ) -> Result<Vec<String>> {
        let key = queue_key(scope);
        let ids: Vec<String> = batch.messages.iter().map(|_| new_id()).collect();
        let mut attempt = 0;
        let posted = loop {
            let mut session = self.begin().await?;
            let outcome = self
                .post_attempt(&mut session, scope, &key, &batch, &ids)
                .await;
            match self.finish(&mut session, outcome, &mut attempt).await? {
                Finished::Committed(posted) => break posted,
                Finished::Abandoned => break Posted::Stored(0),
                Finished::Retry => continue,
            }
        };
        match posted {
            Posted::Stored(queued) => {
                if queued > 0 {
                    self.wakeup.notify_one();
                }
                Ok(ids)
            }
            Posted::TooLarge {
                effective,
                global,
                queue,
            } => Err(StorageError::post_too_large(effective, global, queue)),
            Posted::BadDelay => Err(StorageError::bad_delay(batch.limits.max_message_delay)),
        }
    }

    async fn post_attempt(
        &self,
        session: &mut ClientSession,
        scope: &Scope,
        key: &str,
        batch: &PostBatch,
        ids: &[String],
    ) -> std::result::Result<Posted, TxnError> {
        let now = self.now();
        let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
        let queue = self
            .reserve_positions(session, scope, key, count, now)
            .await?;
        let settings = &queue.settings;
        let global = batch.limits.max_messages_post_size;
        if let Some(queue_max) = settings.mps {
            let effective = queue_max.min(global);
            if batch.request_size > effective {
                return Ok(Posted::TooLarge {
                    effective,
                    global,
                    queue: queue_max,
                });
            }
        }
        let default_ttl = settings.dttl.unwrap_or(batch.limits.default_message_ttl);
        let mut documents = Vec::with_capacity(ids.len());
        let mut notified = Vec::new();
        let first = queue.seq - count + 1;
        for (index, (id, message)) in ids.iter().zip(&batch.messages).enumerate() {
            // The per-message delay only counts on delay queues.
            let delay = match settings.ddelay {
                Some(default_delay) => {
                    let delay = message.delay.unwrap_or(default_delay);
                    if !(0..=batch.limits.max_message_delay).contains(&delay) {
                        return Ok(Posted::BadDelay);
                    }
                    delay
                }
                None => 0,
            };
            let ttl = message.ttl.unwrap_or(default_ttl);
            let expires = now + ttl * 1000;
            if batch.notify != NotifyMode::None {
                // Notifications carry the delay on delay queues only.
                let shown = if settings.ddelay.is_some() { delay } else { -1 };
                notified.push((ttl, shown, message.body.clone()));
            }
            documents.push(MessageDoc {
                id: id.clone(),
                q: key.to_string(),
                pos: first + i64::try_from(index).unwrap_or(i64::MAX),
                created: now,
                expires,
                ttl,
                visible: now + delay * 1000,
                client: batch.client_id.clone(),
                claim: String::new(),
                cexp: 0,
                count: 0,
                rev: 0,
                body: message.body.clone(),
                gc: gc_date(expires),
            });
        }
        if !documents.is_empty() {
            self.messages
                .insert_many(documents)
                .session(&mut *session)
                .await?;
        }
        let queued = match ids.first() {
            Some(first) if !notified.is_empty() => {
                self.queue_notifications(session, key, first, notified, batch.notify, now)
                    .await?
            }
            _ => 0,
        };
        Ok(Posted::Stored(queued))
    }

    pub(super) async fn list_messages(
        &self,
        scope: &Scope,
        query: &ListQuery,
    ) -> Result<MessagePage> {
        let after: i64 = match &query.marker {
            None => -1,
            Some(marker) => match marker
                .parse::<u64>()
                .ok()
                .and_then(|position| i64::try_from(position).ok())
            {
                Some(position) => position,
                None => return Ok(MessagePage::default()),
            },
        };
        let key = queue_key(scope);
        let Some(queue) = self.queue(&key).await? else {
            return Ok(MessagePage::default());
        };
        let delay_queue = queue.settings.ddelay.is_some();
        let now = self.now();
        // Every filter applies before the limit.
        let mut filter = doc! {"q": &key, "pos": {"$gt": after}, "expires": {"$gt": now}};
        if !query.echo {
            filter.insert("client", doc! {"$ne": &query.client_id});
        }
        if !query.include_claimed {
            filter.insert("cexp", doc! {"$lte": now});
        }
        if delay_queue && !query.include_delayed {
            filter.insert("visible", doc! {"$lte": now});
        }
        let found: Vec<MessageDoc> = self
            .messages
            .find(filter)
            .sort(doc! {"pos": 1})
            .limit(i64::from(query.limit.max(1)))
            .await?
            .try_collect()
            .await?;
        Ok(MessagePage {
            next_marker: found.last().map(|message| message.pos.to_string()),
            messages: found.iter().map(|message| message.view(now)).collect(),
            delay_queue,
        })
    }

    /// The live messages among `ids`, in the order asked (once each).
    pub(super) async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>> {
        let key = queue_key(scope);
        if self.queue(&key).await?.is_none() {
            return Err(StorageError::queue_not_found(scope));
        }
        let now = self.now();
        let found: Vec<MessageDoc> = self
            .messages
            .find(doc! {"_id": {"$in": ids}, "q": &key, "expires": {"$gt": now}})
            .await?
            .try_collect()
            .await?;
        let by_id: HashMap<&str, &MessageDoc> = found
            .iter()
            .map(|message| (message.id.as_str(), message))
            .collect();
        let mut seen = HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| by_id.get(id.as_str()))
            .map(|message| message.view(now))
            .collect())
    }

    /// Decides on the message as read, then deletes it only if it is still
    /// that revision; a concurrent change means deciding again.
    pub(super) async fn delete_message(
        &self,
        scope: &Scope,
        id: &str,
        claim: Option<&ClaimRef>,
    ) -> Result<()> {
        let key = queue_key(scope);
        // The usual cases in one round trip: the caller's active claim
        // holds the message, or no active claim does.
        let now = self.now();
        let fast = match claim {
            Some(ClaimRef::Id(claim_id)) => {
                Some(doc! {"_id": id, "q": &key, "claim": claim_id, "cexp": {"$gt": now}})
            }
            None => Some(doc! {"_id": id, "q": &key, "cexp": {"$lte": now}}),
            Some(ClaimRef::Malformed) => None,
        };
        if let Some(filter) = fast
            && self.messages.delete_one(filter).await?.deleted_count == 1
        {
            return Ok(());
        }
        for _ in 0..DELETE_ATTEMPTS {
            let Some(message) = self.messages.find_one(doc! {"_id": id, "q": &key}).await? else {
                return Ok(());
            };
            let now = self.now();
            if message.expires > now {
                let held = message.claimed(now);
                match claim {
                    Some(ClaimRef::Malformed) => return Err(StorageError::claim_invalid()),
                    None if held => return Err(StorageError::ClaimMismatch),
                    None => {}
                    Some(ClaimRef::Id(_)) if !held => return Err(StorageError::ClaimExpired),
                    Some(ClaimRef::Id(claim_id)) if *claim_id != message.claim => {
                        return Err(StorageError::ClaimMismatch);
                    }
                    Some(ClaimRef::Id(_)) => {}
                }
            }
            let deleted = self
                .messages
                .delete_one(doc! {"_id": id, "q": &key, "rev": message.rev})
                .await?;
            if deleted.deleted_count == 1 {
                return Ok(());
            }
        }
        Err(StorageError::Unavailable(
            "the message kept changing while it was being deleted".into(),
        ))
    }

    pub(super) async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()> {
        let key = queue_key(scope);
        let mut filter = doc! {"_id": {"$in": ids}, "q": &key};
        if let Some(claim_ids) = claim_ids {
            let now = self.now();
            let allowed: HashSet<&str> = claim_ids.iter().map(String::as_str).collect();
            let mut live = filter.clone();
            live.insert("expires", doc! {"$gt": now});
            let found: Vec<MessageDoc> = self.messages.find(live).await?.try_collect().await?;
            let all_held = found
                .iter()
                .all(|message| message.claimed(now) && allowed.contains(message.claim.as_str()));
            if !all_held {
                return Err(StorageError::claim_required());
            }
            // Only what the check saw as held goes, even if claims end now.
            filter.insert("claim", doc! {"$in": claim_ids});
        }
        self.messages.delete_many(filter).await?;
        Ok(())
    }

    /// Removes and returns the oldest takeable messages, each with a
    /// conditional delete so that no message is popped twice.
    pub(super) async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>> {
        let key = queue_key(scope);
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let mut taken = Vec::new();
        let mut after = -1_i64;
        let now = self.now();
        while taken.len() < wanted {
            let mut filter = takeable(&key, now);
            filter.insert("pos", doc! {"$gt": after});
            let candidates: Vec<MessageDoc> = self
                .messages
                .find(filter)
                .sort(doc! {"pos": 1})
                .limit(i64::try_from(wanted - taken.len()).unwrap_or(i64::MAX))
                .await?
                .try_collect()
                .await?;
            let Some(last) = candidates.last() else {
                break;
            };
            after = last.pos;
            for candidate in candidates {
                let mut filter = takeable(&key, now);
                filter.insert("_id", &candidate.id);
                if let Some(message) = self.messages.find_one_and_delete(filter).await? {
                    taken.push(message.view(now));
                }
            }
        }
        Ok(taken)
    }
}
