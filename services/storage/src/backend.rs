//! The one seam every storage backend implements.
//!
//! Semantics are Zaqar's (contract §4) and identical across backends; the
//! conformance suite (`conformance.rs`) is what proves a backend right. All
//! times come from the backend's own clock so that several storage nodes
//! fronting one pool agree.

use std::sync::Arc;

use async_trait::async_trait;
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, Health, ListQuery, Message, MessagePage, Namespace,
    NewSubscription, Notice, PostBatch, QueueNames, QueueRecord, QueueStats, Scope, Subscription,
    SubscriptionUpdate,
};

use crate::delivery::OutboxRef;
use crate::error::Result;

/// A shared, type-erased backend.
pub type BackendRef = Arc<dyn Backend>;

/// Queue, message, claim and subscription storage for one pool.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Creates a queue with `metadata` (a JSON object) unless it exists.
    /// Returns whether it was created; an existing queue is left unchanged.
    async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool>;

    /// Returns the queue's stored record, or `None` when it does not exist.
    async fn get_queue(&self, scope: &Scope) -> Result<Option<QueueRecord>>;

    /// Returns the records of several queues, in the order asked.
    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>>;

    /// Replaces a queue's metadata. Fails with `NotFound` when the queue does
    /// not exist and with `Conflict` when `expected_revision` is stale.
    /// Returns the new revision.
    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64>;

    /// Lists up to `limit` queue names of a project and namespace, in byte
    /// order after `marker`, with the project's total number of queues.
    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames>;

    /// Deletes a queue with its messages and claims; subscriptions are kept.
    async fn delete_queue(&self, scope: &Scope) -> Result<()>;

    /// Tells whether the queue exists.
    async fn queue_exists(&self, scope: &Scope) -> Result<bool>;

    /// Returns counts over unexpired messages and the oldest and newest one.
    async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats>;

    /// Deletes the unclaimed messages and/or the subscriptions of a queue.
    async fn purge_queue(&self, scope: &Scope, messages: bool, subscriptions: bool) -> Result<()>;

    /// Stores a batch atomically in order, creating the queue if missing
    /// (also when the batch is then rejected). Returns the new ids in order.
    async fn post_messages(&self, scope: &Scope, batch: PostBatch) -> Result<Vec<String>>;

    /// Posts several independent batches to one queue (concurrent posts
    /// coalesced by the API tier): each is stored atomically in order or
    /// rejected on its own, as [`Backend::post_messages`] would, and gets
    /// its own outcome (in request order). Batches come from different
    /// clients, so their order relative to each other is free; they share
    /// the API tier's limits (a backend may read them from the first). The
    /// outer error fails the whole call. By default the batches are posted
    /// concurrently, as separate posts.
    async fn post_batches(
        &self,
        scope: &Scope,
        batches: Vec<PostBatch>,
    ) -> Result<Vec<Result<Vec<String>>>> {
        Ok(futures::future::join_all(
            batches
                .into_iter()
                .map(|batch| self.post_messages(scope, batch)),
        )
        .await)
    }

    /// Lists messages in post order after the marker; filters apply before
    /// the limit. A missing queue or an unusable marker gives an empty page.
    async fn list_messages(&self, scope: &Scope, query: &ListQuery) -> Result<MessagePage>;

    /// Returns one live message, or `NotFound` (by default through
    /// [`Backend::get_messages`]).
    async fn get_message(&self, scope: &Scope, id: &str) -> Result<Message> {
        let mut messages = self.get_messages(scope, &[id.to_string()]).await?;
        messages
            .pop()
            .ok_or_else(|| crate::error::StorageError::message_not_found(scope, id))
    }

    /// Returns the live messages among `ids` (claimed and delayed included);
    /// `NotFound` when the queue does not exist.
    async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>>;

    /// Deletes one message, honouring claims: `ClaimMismatch` when another
    /// active claim (or any, if `claim` is `None`) holds it, `ClaimExpired`
    /// when a claim is named but none holds it, `Invalid` for a malformed
    /// claim on an existing message. A missing queue or message is success.
    async fn delete_message(&self, scope: &Scope, id: &str, claim: Option<&ClaimRef>)
    -> Result<()>;

    /// Deletes messages named by independent requests (concurrent single
    /// deletes coalesced by the API tier), each as
    /// [`Backend::delete_message`] would, with its own outcome in request
    /// order. The outer error fails the whole call. By default the deletes
    /// run concurrently, as separate calls.
    async fn delete_each(
        &self,
        scope: &Scope,
        items: Vec<(String, Option<ClaimRef>)>,
    ) -> Result<Vec<Result<()>>> {
        Ok(futures::future::join_all(
            items
                .iter()
                .map(|(id, claim)| self.delete_message(scope, id, claim.as_ref())),
        )
        .await)
    }

    /// Deletes the listed messages regardless of claims. With `claim_ids`,
    /// every existing listed message must be held by one of those active
    /// claims, else `Invalid` and nothing is deleted.
    async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()>;

    /// Removes and returns up to `limit` of the oldest live, visible,
    /// unclaimed messages.
    async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>>;

    /// Claims up to `spec.limit` of the oldest claimable messages; `None`
    /// when nothing was claimed (no claim exists then).
    async fn create_claim(&self, scope: &Scope, spec: ClaimSpec) -> Result<Option<Claim>>;

    /// Creates independent claims on one queue (concurrent claims coalesced
    /// by the API tier), each as [`Backend::create_claim`] would, with its
    /// own outcome in request order; no message goes to two of them. The
    /// outer error fails the whole call.
    /// By default the claims run concurrently, as separate calls (as they
    /// would have without coalescing; a backend that serializes writes
    /// commits them together).
    async fn create_claims(
        &self,
        scope: &Scope,
        specs: Vec<ClaimSpec>,
    ) -> Result<Vec<Result<Option<Claim>>>> {
        Ok(
            futures::future::join_all(specs.into_iter().map(|spec| self.create_claim(scope, spec)))
                .await,
        )
    }

    /// Returns an active claim with the messages it still holds, or `NotFound`.
    async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim>;

    /// Renews an active claim, or fails with `NotFound`.
    async fn renew_claim(&self, scope: &Scope, id: &str, ttl: i64, grace: i64) -> Result<()>;

    /// Releases a claim; unknown claims are success.
    async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()>;

    /// Creates a subscription. Returns its id and whether it is new: an
    /// unconfirmed subscription of the same subscriber is returned as is; a
    /// confirmed one gives `Conflict`.
    async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)>;

    /// Lists live subscriptions in id order after `marker`.
    async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>>;

    /// Returns one live subscription, or `NotFound`.
    async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription>;

    /// Changes the given fields: `NotFound`, or `Conflict` when the new
    /// subscriber is already subscribed to the queue.
    async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()>;

    /// Deletes a subscription; unknown ids are success.
    async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()>;

    /// Sets the confirmed flag, or fails with `NotFound`.
    async fn confirm_subscription(&self, scope: &Scope, id: &str, confirmed: bool) -> Result<()>;

    /// Queues `notice` for delivery to a subscription's subscriber, or fails
    /// with `NotFound` when the subscription is unknown or expired.
    async fn enqueue_notice(
        &self,
        scope: &Scope,
        subscription_id: &str,
        notice: Notice,
    ) -> Result<()>;

    /// Reports whether the backend answers, and how fast.
    async fn health(&self) -> Result<Health>;

    /// The outbox of pending deliveries when this backend keeps one (a
    /// backend reached over the network does not: the node behind it
    /// delivers).
    fn outbox(self: Arc<Self>) -> Option<OutboxRef> {
        None
    }
}
