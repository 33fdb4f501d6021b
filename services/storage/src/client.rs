//! [`GrpcBackend`]: the [`Backend`] trait over a remote storage node.
//!
//! The API tier holds one of these per storage node; it spreads the calls
//! over a few long-lived HTTP/2 connections that reconnect by themselves. The
//! conformance suite runs through it against a real storage-node process, so
//! the protocol mapping is held to the same semantics as the backends.

use std::time::Duration;

use async_trait::async_trait;
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, Health, ListQuery, Message, MessagePage, Namespace,
    NewSubscription, Notice, PostBatch, QueueNames, QueueRecord, QueueStats, Scope, Subscription,
    SubscriptionUpdate,
};
use zaqar_proto::pb::storage_client::StorageClient;
use zaqar_proto::pb::{self};
use zaqar_proto::tonic::transport::{Channel, Endpoint};

use crate::backend::Backend;
use crate::error::{Result, StorageError};

/// HTTP/2 connections kept to one storage node. One connection is driven by
/// one task, so a few let both ends spread the framing work over cores.
const CONNECTIONS: usize = 4;

/// A [`Backend`] served by a storage node over gRPC.
#[derive(Clone)]
pub struct GrpcBackend {
    clients: std::sync::Arc<[StorageClient<Channel>]>,
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GrpcBackend {
    /// Creates a client for the node at `address` (`http://HOST:PORT`).
    ///
    /// Connects lazily: calls fail as unavailable while the node is down and
    /// succeed again once it is back.
    pub fn connect_lazy(address: &str) -> Result<GrpcBackend> {
        let endpoint = Endpoint::from_shared(address.to_string())
            .map_err(|error| StorageError::Invalid(format!("invalid node address: {error}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let clients: Vec<StorageClient<Channel>> = (0..CONNECTIONS)
            .map(|_| {
                StorageClient::new(endpoint.connect_lazy())
                    .max_decoding_message_size(64 * 1024 * 1024)
                    .max_encoding_message_size(64 * 1024 * 1024)
            })
            .collect();
        Ok(GrpcBackend {
            clients: clients.into(),
            turn: std::sync::Arc::default(),
        })
    }

    fn client(&self) -> StorageClient<Channel> {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[turn % self.clients.len()].clone()
    }
}

fn wire(scope: &Scope) -> Option<pb::Scope> {
    Some(pb::Scope::from(scope))
}

fn missing(field: &str) -> StorageError {
    StorageError::Internal(format!("storage node reply lacks `{field}`"))
}

/// Unpacks the outcomes of a multi-item call, one per item `sent`: each
/// is its value or its own error.
fn per_item<O, T>(
    outcomes: Vec<O>,
    sent: usize,
    split: impl Fn(O) -> (Option<pb::ItemError>, T),
) -> Result<Vec<Result<T>>> {
    if outcomes.len() != sent {
        return Err(missing("outcomes"));
    }
    Ok(outcomes
        .into_iter()
        .map(|outcome| match split(outcome) {
            (Some(error), _) => Err(error.into()),
            (None, value) => Ok(value),
        })
        .collect())
}

#[async_trait]
impl Backend for GrpcBackend {
    async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool> {
        let reply = self
            .client()
            .create_queue(pb::CreateQueueRequest {
                scope: wire(scope),
                metadata: metadata.to_string(),
            })
            .await?;
        Ok(reply.into_inner().created)
    }

    async fn get_queue(&self, scope: &Scope) -> Result<Option<QueueRecord>> {
        let reply = self
            .client()
            .get_queue(pb::GetQueueRequest { scope: wire(scope) })
            .await?;
        Ok(reply.into_inner().queue)
    }

    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        let reply = self
            .client()
            .get_queues(pb::GetQueuesRequest {
                scopes: scopes.iter().map(pb::Scope::from).collect(),
            })
            .await?;
        Ok(reply
            .into_inner()
            .queues
            .into_iter()
            .map(|queue| queue.queue)
            .collect())
    }

    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64> {
        let reply = self
            .client()
            .update_queue_metadata(pb::UpdateQueueMetadataRequest {
                scope: wire(scope),
                metadata: metadata.to_string(),
                expected_revision,
            })
            .await?;
        Ok(reply.into_inner().revision)
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames> {
        let reply = self
            .client()
            .list_queues(pb::ListQueuesRequest {
                project: project.to_string(),
                namespace: namespace.into(),
                marker: marker.map(str::to_string),
                limit,
            })
            .await?;
        Ok(reply.into_inner())
    }

    async fn delete_queue(&self, scope: &Scope) -> Result<()> {
        self.client()
            .delete_queue(pb::DeleteQueueRequest { scope: wire(scope) })
            .await?;
        Ok(())
    }

    async fn queue_exists(&self, scope: &Scope) -> Result<bool> {
        let reply = self
            .client()
            .queue_exists(pb::QueueExistsRequest { scope: wire(scope) })
            .await?;
        Ok(reply.into_inner().exists)
    }

    async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats> {
        let reply = self
            .client()
            .queue_stats(pb::QueueStatsRequest { scope: wire(scope) })
            .await?;
        Ok(reply.into_inner())
    }

    async fn purge_queue(&self, scope: &Scope, messages: bool, subscriptions: bool) -> Result<()> {
        self.client()
            .purge_queue(pb::PurgeQueueRequest {
                scope: wire(scope),
                messages,
                subscriptions,
            })
            .await?;
        Ok(())
    }

    async fn post_messages(&self, scope: &Scope, batch: PostBatch) -> Result<Vec<String>> {
        let reply = self
            .client()
            .post_messages(pb::PostMessagesRequest {
                scope: wire(scope),
                client_id: batch.client_id,
                messages: batch.messages,
                request_size: batch.request_size,
                limits: Some(batch.limits),
                notify: batch.notify.into(),
            })
            .await?;
        Ok(reply.into_inner().ids)
    }

    async fn post_batches(
        &self,
        scope: &Scope,
        batches: Vec<PostBatch>,
    ) -> Result<Vec<Result<Vec<String>>>> {
        let Some(limits) = batches.first().map(|batch| batch.limits) else {
            return Ok(Vec::new());
        };
        let count = batches.len();
        let reply = self
            .client()
            .post_batches(pb::PostBatchesRequest {
                scope: wire(scope),
                limits: Some(limits),
                batches: batches
                    .into_iter()
                    .map(|batch| pb::PostBatchItem {
                        client_id: batch.client_id,
                        messages: batch.messages,
                        request_size: batch.request_size,
                        notify: batch.notify.into(),
                    })
                    .collect(),
            })
            .await?
            .into_inner();
        per_item(reply.outcomes, count, |outcome| {
            (outcome.error, outcome.ids)
        })
    }

    async fn list_messages(&self, scope: &Scope, query: &ListQuery) -> Result<MessagePage> {
        let reply = self
            .client()
            .list_messages(pb::ListMessagesRequest {
                scope: wire(scope),
                marker: query.marker.clone(),
                limit: query.limit,
                echo: query.echo,
                client_id: query.client_id.clone(),
                include_claimed: query.include_claimed,
                include_delayed: query.include_delayed,
            })
            .await?
            .into_inner();
        Ok(MessagePage {
            messages: reply.messages,
            next_marker: reply.next_marker,
            delay_queue: reply.delay_queue,
        })
    }

    async fn get_message(&self, scope: &Scope, id: &str) -> Result<Message> {
        let reply = self
            .client()
            .get_message(pb::GetMessageRequest {
                scope: wire(scope),
                id: id.to_string(),
            })
            .await?;
        reply.into_inner().message.ok_or_else(|| missing("message"))
    }

    async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>> {
        let reply = self
            .client()
            .get_messages(pb::GetMessagesRequest {
                scope: wire(scope),
                ids: ids.to_vec(),
            })
            .await?;
        Ok(reply.into_inner().messages)
    }

    async fn delete_message(
        &self,
        scope: &Scope,
        id: &str,
        claim: Option<&ClaimRef>,
    ) -> Result<()> {
        self.client()
            .delete_message(pb::DeleteMessageRequest {
                scope: wire(scope),
                id: id.to_string(),
                claim: claim.map(pb::ClaimRef::from),
            })
            .await?;
        Ok(())
    }

    async fn delete_each(
        &self,
        scope: &Scope,
        items: Vec<(String, Option<ClaimRef>)>,
    ) -> Result<Vec<Result<()>>> {
        let count = items.len();
        let reply = self
            .client()
            .delete_each(pb::DeleteEachRequest {
                scope: wire(scope),
                items: items
                    .into_iter()
                    .map(|(id, claim)| pb::DeleteItem {
                        id,
                        claim: claim.as_ref().map(pb::ClaimRef::from),
                    })
                    .collect(),
            })
            .await?
            .into_inner();
        per_item(reply.outcomes, count, |outcome| (outcome.error, ()))
    }

    async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()> {
        self.client()
            .delete_messages(pb::DeleteMessagesRequest {
                scope: wire(scope),
                ids: ids.to_vec(),
                claim_ids: claim_ids.map(<[String]>::to_vec).unwrap_or_default(),
                require_claim: claim_ids.is_some(),
            })
            .await?;
        Ok(())
    }

    async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>> {
        let reply = self
            .client()
            .pop_messages(pb::PopMessagesRequest {
                scope: wire(scope),
                limit,
            })
            .await?;
        Ok(reply.into_inner().messages)
    }

    async fn create_claim(&self, scope: &Scope, spec: ClaimSpec) -> Result<Option<Claim>> {
        let reply = self
            .client()
            .create_claim(pb::CreateClaimRequest {
                scope: wire(scope),
                ttl: spec.ttl,
                grace: spec.grace,
                limit: spec.limit,
            })
            .await?;
        Ok(reply.into_inner().claim)
    }

    async fn create_claims(
        &self,
        scope: &Scope,
        specs: Vec<ClaimSpec>,
    ) -> Result<Vec<Result<Option<Claim>>>> {
        let count = specs.len();
        let reply = self
            .client()
            .create_claims(pb::CreateClaimsRequest {
                scope: wire(scope),
                claims: specs
                    .into_iter()
                    .map(|spec| pb::ClaimParams {
                        ttl: spec.ttl,
                        grace: spec.grace,
                        limit: spec.limit,
                    })
                    .collect(),
            })
            .await?
            .into_inner();
        per_item(reply.outcomes, count, |outcome| {
            (outcome.error, outcome.claim)
        })
    }

    async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim> {
        let reply = self
            .client()
            .get_claim(pb::GetClaimRequest {
                scope: wire(scope),
                id: id.to_string(),
            })
            .await?;
        reply.into_inner().claim.ok_or_else(|| missing("claim"))
    }

    async fn renew_claim(&self, scope: &Scope, id: &str, ttl: i64, grace: i64) -> Result<()> {
        self.client()
            .renew_claim(pb::RenewClaimRequest {
                scope: wire(scope),
                id: id.to_string(),
                ttl,
                grace,
            })
            .await?;
        Ok(())
    }

    async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()> {
        self.client()
            .release_claim(pb::ReleaseClaimRequest {
                scope: wire(scope),
                id: id.to_string(),
            })
            .await?;
        Ok(())
    }

    async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        let reply = self
            .client()
            .create_subscription(pb::CreateSubscriptionRequest {
                scope: wire(scope),
                subscriber: subscription.subscriber,
                ttl: subscription.ttl,
                options: subscription.options,
            })
            .await?
            .into_inner();
        Ok((reply.id, reply.created))
    }

    async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>> {
        let reply = self
            .client()
            .list_subscriptions(pb::ListSubscriptionsRequest {
                scope: wire(scope),
                marker: marker.map(str::to_string),
                limit,
            })
            .await?;
        Ok(reply.into_inner().subscriptions)
    }

    async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription> {
        let reply = self
            .client()
            .get_subscription(pb::GetSubscriptionRequest {
                scope: wire(scope),
                id: id.to_string(),
            })
            .await?;
        reply
            .into_inner()
            .subscription
            .ok_or_else(|| missing("subscription"))
    }

    async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()> {
        self.client()
            .update_subscription(pb::UpdateSubscriptionRequest {
                scope: wire(scope),
                id: id.to_string(),
                subscriber: update.subscriber,
                ttl: update.ttl,
                options: update.options,
            })
            .await?;
        Ok(())
    }

    async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()> {
        self.client()
            .delete_subscription(pb::DeleteSubscriptionRequest {
                scope: wire(scope),
                id: id.to_string(),
            })
            .await?;
        Ok(())
    }

    async fn confirm_subscription(&self, scope: &Scope, id: &str, confirmed: bool) -> Result<()> {
        self.client()
            .confirm_subscription(pb::ConfirmSubscriptionRequest {
                scope: wire(scope),
                id: id.to_string(),
                confirmed,
            })
            .await?;
        Ok(())
    }

    async fn enqueue_notice(
        &self,
        scope: &Scope,
        subscription_id: &str,
        notice: Notice,
    ) -> Result<()> {
        self.client()
            .enqueue_notice(pb::EnqueueNoticeRequest {
                scope: wire(scope),
                subscription_id: subscription_id.to_string(),
                notice: Some(notice),
            })
            .await?;
        Ok(())
    }

    async fn health(&self) -> Result<Health> {
        let reply = self.client().health(pb::HealthRequest {}).await?;
        Ok(reply.into_inner())
    }
}
