//! Claims: taking messages with conditional updates, reading, renewing and
//! releasing claims, and moving over-claimed messages to their dead-letter
//! queue.

use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use zaqar_proto::model::{Claim, ClaimSpec, Scope, new_id};

use super::documents::{ClaimDoc, MessageDoc, gc_date, queue_key};
use super::messages::takeable;
use super::{Finished, Inner, TxnError};
use crate::error::{Result, StorageError};

/// Messages a claim looks at beyond its limit (dead-lettered ones and
/// those another claim takes first are skipped, within this budget).
const CLAIM_SCAN_BUDGET: u64 = 1000;
/// How much wider than needed a claim looks once it met contention.
const CONTENDED_WINDOW: u64 = 4;

/// `count` consecutive candidates: all of them when there are no more,
/// else a slice at a random offset (the oldest first when uncontended,
/// since the window then holds exactly `count`).
fn random_slice(candidates: &[MessageDoc], count: usize) -> &[MessageDoc] {
    use std::hash::{BuildHasher, Hasher};
    if candidates.len() <= count {
        return candidates;
    }
    let spare = candidates.len() - count;
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let start = usize::try_from(random % (spare as u64 + 1)).unwrap_or(0);
    &candidates[start..start + count]
}

impl Inner {
    /// Claims up to `spec.limit` of the oldest takeable messages.
    ///
    /// The candidates are read, then taken with `update_many` filtered on
    /// "still takeable now" (live, visible, no active claim): the server
    /// checks that filter atomically per document, so a message never goes
    /// to two live claims; candidates another claim took first are simply
    /// not updated. What was taken is read back by claim id. The claim
    /// document is written once something was taken.
    pub(super) async fn create_claim(
        &self,
        scope: &Scope,
        spec: ClaimSpec,
    ) -> Result<Option<Claim>> {
        let key = queue_key(scope);
        let Some(queue) = self.queue(&key).await? else {
            return Ok(None);
        };
        let dead_letter = queue.settings.dead_letter();
        let id = new_id();
        let now = self.now();
        let claim_expires = now + spec.ttl * 1000;
        let extended = claim_expires + spec.grace * 1000;
        let wanted = u64::from(spec.limit.max(1));
        let mut taken = 0_u64;
        let mut scanned = 0_u64;
        let mut contended = false;
        while taken < wanted && scanned < CLAIM_SCAN_BUDGET + wanted {
            let needed = wanted - taken;
            // Once another claim took candidates first, look at a wider
            // window and take a random slice of it, so that concurrent
            // claims stop chasing the same messages.
            let window = if contended {
                needed * CONTENDED_WINDOW
            } else {
                needed
            };
            let candidates: Vec<MessageDoc> = self
                .messages
                .find(takeable(&key, now))
                .sort(doc! {"pos": 1})
                .limit(i64::try_from(window).unwrap_or(i64::MAX))
                .await?
                .try_collect()
                .await?;
            if candidates.is_empty() {
                break;
            }
            let chosen = random_slice(&candidates, usize::try_from(needed).unwrap_or(usize::MAX));
            scanned += chosen.len() as u64;
            // Messages seen to expire before the claim live until its
            // expiry plus grace; the others keep their expiry. Each group
            // is taken only if it still is what was seen (expiry only grows).
            let mut short_lived = Vec::new();
            let mut long_lived = Vec::new();
            let mut moved = 0_u64;
            for candidate in chosen {
                match dead_letter {
                    Some((target, max_claims)) if candidate.count >= max_claims => {
                        let ttl = queue.settings.dlqttl;
                        self.move_to_dead_letter(scope, candidate, target, ttl, now)
                            .await?;
                        moved += 1;
                    }
                    _ if candidate.expires < claim_expires => {
                        short_lived.push(candidate.id.as_str());
                    }
                    _ => long_lived.push(candidate.id.as_str()),
                }
            }
            let counted = i64::from(dead_letter.is_some());
            let eligible = |ids: &[&str], expires: Document| {
                let mut filter = takeable(&key, now);
                filter.insert("_id", doc! {"$in": ids});
                filter.insert("expires", expires);
                if let Some((_, max_claims)) = dead_letter {
                    filter.insert("count", doc! {"$lt": max_claims});
                }
                filter
            };
            let mut claimed = 0;
            if !short_lived.is_empty() {
                let update = doc! {
                    "$set": {
                        "claim": &id,
                        "cexp": claim_expires,
                        "expires": extended,
                        "ttl": spec.ttl + spec.grace,
                        "gc": gc_date(extended),
                    },
                    "$inc": {"rev": 1_i64, "count": counted},
                };
                let filter = eligible(&short_lived, doc! {"$gt": now, "$lt": claim_expires});
                claimed += self
                    .messages
                    .update_many(filter, update)
                    .await?
                    .modified_count;
            }
            if !long_lived.is_empty() {
                let update = doc! {
                    "$set": {"claim": &id, "cexp": claim_expires},
                    "$inc": {"rev": 1_i64, "count": counted},
                };
                let filter = eligible(&long_lived, doc! {"$gte": claim_expires});
                claimed += self
                    .messages
                    .update_many(filter, update)
                    .await?
                    .modified_count;
            }
            taken += claimed;
            contended = claimed + moved < chosen.len() as u64;
        }
        if taken == 0 {
            return Ok(None);
        }
        let held: Vec<MessageDoc> = self
            .messages
            .find(doc! {"q": &key, "claim": &id})
            .sort(doc! {"pos": 1})
            .await?
            .try_collect()
            .await?;
        let claim = ClaimDoc {
            id: id.clone(),
            q: key,
            renewed: now,
            expires: claim_expires,
            ttl: spec.ttl,
            grace: spec.grace,
            gc: gc_date(claim_expires),
        };
        self.claims.insert_one(&claim).await?;
        Ok(Some(Claim {
            id,
            ttl: spec.ttl,
            grace: spec.grace,
            age: 0,
            messages: held.iter().map(|message| message.view(now)).collect(),
        }))
    }

    /// Moves a message to the tail of its dead-letter queue (creating the
    /// queue if missing), unclaimed, in one transaction: the message is in
    /// exactly one of the two queues whatever fails. Does nothing when the
    /// message changed since it was read.
    async fn move_to_dead_letter(
        &self,
        scope: &Scope,
        message: &MessageDoc,
        target: &str,
        ttl: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let target = scope.sibling(target)?;
        let mut attempt = 0;
        loop {
            let mut session = self.begin().await?;
            let outcome = self
                .move_attempt(&mut session, &target, message, ttl, now)
                .await;
            match self.finish(&mut session, outcome, &mut attempt).await? {
                Finished::Committed(()) | Finished::Abandoned => return Ok(()),
                Finished::Retry => continue,
            }
        }
    }

    async fn move_attempt(
        &self,
        session: &mut ClientSession,
        target: &Scope,
        message: &MessageDoc,
        ttl: Option<i64>,
        now: i64,
    ) -> std::result::Result<(), TxnError> {
        let target_key = queue_key(target);
        let queue = self
            .reserve_positions(session, target, &target_key, 1, now)
            .await?;
        let (ttl, expires) = match ttl {
            Some(ttl) => (ttl, now + ttl * 1000),
            None => (message.ttl, message.expires),
        };
        let mut filter = takeable(&message.q, now);
        filter.insert("_id", &message.id);
        filter.insert("rev", message.rev);
        let moved = self
            .messages
            .update_one(
                filter,
                doc! {
                    "$set": {
                        "q": &target_key,
                        "pos": queue.seq,
                        "ttl": ttl,
                        "expires": expires,
                        "gc": gc_date(expires),
                        "visible": now,
                        "claim": "",
                        "cexp": 0_i64,
                    },
                    "$inc": {"rev": 1_i64},
                },
            )
            .session(&mut *session)
            .await?;
        if moved.matched_count == 0 {
            return Err(TxnError::Abandon);
        }
        Ok(())
    }

    /// An active claim of the queue.
    async fn active_claim(&self, key: &str, id: &str, now: i64) -> Result<Option<ClaimDoc>> {
        Ok(self
            .claims
            .find_one(doc! {"_id": id, "q": key, "expires": {"$gt": now}})
            .await?)
    }

    pub(super) async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim> {
        let key = queue_key(scope);
        let now = self.now();
        let Some(claim) = self.active_claim(&key, id, now).await? else {
            return Err(StorageError::claim_not_found(scope, id));
        };
        let held: Vec<MessageDoc> = self
            .messages
            .find(doc! {"q": &key, "claim": id, "expires": {"$gt": now}})
            .sort(doc! {"pos": 1})
            .await?
            .try_collect()
            .await?;
        Ok(Claim {
            id: claim.id,
            ttl: claim.ttl,
            grace: claim.grace,
            age: super::documents::seconds_between(claim.renewed, now),
            messages: held.iter().map(|message| message.view(now)).collect(),
        })
    }

    /// Renews an active claim: its messages that would expire before the
    /// new claim expiry live until that expiry plus `grace`.
    pub(super) async fn renew_claim(
        &self,
        scope: &Scope,
        id: &str,
        ttl: i64,
        grace: i64,
    ) -> Result<()> {
        let key = queue_key(scope);
        let now = self.now();
        if self.active_claim(&key, id, now).await?.is_none() {
            return Err(StorageError::claim_not_found(scope, id));
        }
        let claim_expires = now + ttl * 1000;
        let extended = claim_expires + grace * 1000;
        self.messages
            .update_many(
                doc! {"q": &key, "claim": id, "expires": {"$lt": claim_expires}},
                doc! {"$set": {"expires": extended, "ttl": ttl + grace, "gc": gc_date(extended)}},
            )
            .await?;
        self.messages
            .update_many(
                doc! {"q": &key, "claim": id},
                doc! {"$set": {"cexp": claim_expires}, "$inc": {"rev": 1_i64}},
            )
            .await?;
        self.claims
            .update_one(
                doc! {"_id": id, "q": &key},
                doc! {"$set": {
                    "renewed": now,
                    "expires": claim_expires,
                    "ttl": ttl,
                    "grace": grace,
                    "gc": gc_date(claim_expires),
                }},
            )
            .await?;
        Ok(())
    }

    /// Releases a claim: the claim is gone at once, then its messages are
    /// free again.
    pub(super) async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()> {
        let key = queue_key(scope);
        self.claims.delete_one(doc! {"_id": id, "q": &key}).await?;
        self.messages
            .update_many(
                doc! {"q": &key, "claim": id},
                doc! {"$set": {"claim": "", "cexp": 0_i64}, "$inc": {"rev": 1_i64}},
            )
            .await?;
        Ok(())
    }
}
