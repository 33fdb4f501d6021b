//! The gRPC adapter: wire request → validated model → [`Backend`] → wire reply.
//!
//! Errors become gRPC statuses in exactly one place (`From<StorageError> for
//! Status`). Each call runs in its own task, so a client that disconnects
//! mid-call cannot cut a backend operation in half.

use zaqar_proto::ProtocolError;
use zaqar_proto::model::{
    ClaimRef, ClaimSpec, ListQuery, Namespace, NewSubscription, PostBatch, Scope,
    SubscriptionUpdate,
};
use zaqar_proto::pb::storage_server::Storage;
use zaqar_proto::pb::{self};
use zaqar_proto::tonic::{Request, Response, Status};

use crate::backend::BackendRef;
use crate::error::{Result, StorageError};

/// The tonic service over one backend.
#[derive(Clone)]
pub struct StorageService {
    backend: BackendRef,
}

impl StorageService {
    /// Wraps a backend.
    pub fn new(backend: BackendRef) -> Self {
        StorageService { backend }
    }

    /// Runs `call` on its own task so it completes even if the client goes away.
    async fn spawn<T, F, Fut>(&self, call: F) -> Result<Response<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(BackendRef) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let task = tokio::spawn(call(self.backend.clone()));
        match task.await {
            Ok(Ok(reply)) => Ok(Response::new(reply)),
            Ok(Err(error)) => Err(error.into()),
            Err(join) => Err(StorageError::Internal(format!("storage task failed: {join}")).into()),
        }
    }
}

fn scope(scope: Option<pb::Scope>) -> Result<Scope, Status> {
    Scope::try_from(scope).map_err(Status::from)
}

fn limit(value: u32, field: &'static str) -> Result<u32, Status> {
    if value == 0 {
        return Err(ProtocolError::invalid(field, "must be at least 1").into());
    }
    Ok(value)
}

#[zaqar_proto::tonic::async_trait]
impl Storage for StorageService {
    async fn create_queue(
        &self,
        request: Request<pb::CreateQueueRequest>,
    ) -> Result<Response<pb::CreateQueueResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let created = backend.create_queue(&scope, &request.metadata).await?;
            Ok(pb::CreateQueueResponse { created })
        })
        .await
    }

    async fn get_queue(
        &self,
        request: Request<pb::GetQueueRequest>,
    ) -> Result<Response<pb::GetQueueResponse>, Status> {
        let scope = scope(request.into_inner().scope)?;
        self.spawn(move |backend| async move {
            let queue = backend.get_queue(&scope).await?;
            Ok(pb::GetQueueResponse { queue })
        })
        .await
    }

    async fn get_queues(
        &self,
        request: Request<pb::GetQueuesRequest>,
    ) -> Result<Response<pb::GetQueuesResponse>, Status> {
        let scopes = request
            .into_inner()
            .scopes
            .into_iter()
            .map(|wire| scope(Some(wire)))
            .collect::<Result<Vec<_>, Status>>()?;
        self.spawn(move |backend| async move {
            let queues = backend
                .get_queues(&scopes)
                .await?
                .into_iter()
                .map(|queue| pb::GetQueueResponse { queue })
                .collect();
            Ok(pb::GetQueuesResponse { queues })
        })
        .await
    }

    async fn update_queue_metadata(
        &self,
        request: Request<pb::UpdateQueueMetadataRequest>,
    ) -> Result<Response<pb::UpdateQueueMetadataResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let revision = backend
                .update_queue_metadata(&scope, &request.metadata, request.expected_revision)
                .await?;
            Ok(pb::UpdateQueueMetadataResponse { revision })
        })
        .await
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let request = request.into_inner();
        let namespace = Namespace::try_from(request.namespace)?;
        let count = limit(request.limit, "limit")?;
        self.spawn(move |backend| async move {
            backend
                .list_queues(
                    &request.project,
                    namespace,
                    request.marker.as_deref(),
                    count,
                )
                .await
        })
        .await
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteQueueResponse>, Status> {
        let scope = scope(request.into_inner().scope)?;
        self.spawn(move |backend| async move {
            backend.delete_queue(&scope).await?;
            Ok(pb::DeleteQueueResponse {})
        })
        .await
    }

    async fn queue_exists(
        &self,
        request: Request<pb::QueueExistsRequest>,
    ) -> Result<Response<pb::QueueExistsResponse>, Status> {
        let scope = scope(request.into_inner().scope)?;
        self.spawn(move |backend| async move {
            let exists = backend.queue_exists(&scope).await?;
            Ok(pb::QueueExistsResponse { exists })
        })
        .await
    }

    async fn queue_stats(
        &self,
        request: Request<pb::QueueStatsRequest>,
    ) -> Result<Response<pb::QueueStatsResponse>, Status> {
        let scope = scope(request.into_inner().scope)?;
        self.spawn(move |backend| async move { backend.queue_stats(&scope).await })
            .await
    }

    async fn purge_queue(
        &self,
        request: Request<pb::PurgeQueueRequest>,
    ) -> Result<Response<pb::PurgeQueueResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            backend
                .purge_queue(&scope, request.messages, request.subscriptions)
                .await?;
            Ok(pb::PurgeQueueResponse {})
        })
        .await
    }

    async fn post_messages(
        &self,
        request: Request<pb::PostMessagesRequest>,
    ) -> Result<Response<pb::PostMessagesResponse>, Status> {
        let request = request.into_inner();
        let notify = request.notify();
        let scope = scope(request.scope)?;
        let limits = request
            .limits
            .ok_or(ProtocolError::MissingField("limits"))?;
        if request.messages.is_empty() {
            return Err(ProtocolError::invalid("messages", "must not be empty").into());
        }
        let batch = PostBatch {
            client_id: request.client_id,
            messages: request.messages,
            request_size: request.request_size,
            limits,
            notify,
        };
        self.spawn(move |backend| async move {
            let ids = backend.post_messages(&scope, batch).await?;
            Ok(pb::PostMessagesResponse { ids })
        })
        .await
    }

    async fn post_batches(
        &self,
        request: Request<pb::PostBatchesRequest>,
    ) -> Result<Response<pb::PostBatchesResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let limits = request
            .limits
            .ok_or(ProtocolError::MissingField("limits"))?;
        if request.batches.is_empty()
            || request
                .batches
                .iter()
                .any(|batch| batch.messages.is_empty())
        {
            return Err(ProtocolError::invalid("batches", "every batch needs messages").into());
        }
        let batches: Vec<PostBatch> = request
            .batches
            .into_iter()
            .map(|batch| PostBatch {
                notify: batch.notify(),
                client_id: batch.client_id,
                messages: batch.messages,
                request_size: batch.request_size,
                limits,
            })
            .collect();
        self.spawn(move |backend| async move {
            let outcomes = backend
                .post_batches(&scope, batches)
                .await?
                .into_iter()
                .map(|result| match result {
                    Ok(ids) => pb::PostOutcome { ids, error: None },
                    Err(error) => pb::PostOutcome {
                        ids: Vec::new(),
                        error: Some(error.into()),
                    },
                })
                .collect();
            Ok(pb::PostBatchesResponse { outcomes })
        })
        .await
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let query = ListQuery {
            marker: request.marker,
            limit: limit(request.limit, "limit")?,
            echo: request.echo,
            client_id: request.client_id,
            include_claimed: request.include_claimed,
            include_delayed: request.include_delayed,
        };
        self.spawn(move |backend| async move {
            let page = backend.list_messages(&scope, &query).await?;
            Ok(pb::ListMessagesResponse {
                messages: page.messages,
                next_marker: page.next_marker,
                delay_queue: page.delay_queue,
            })
        })
        .await
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let message = backend.get_message(&scope, &request.id).await?;
            Ok(pb::GetMessageResponse {
                message: Some(message),
            })
        })
        .await
    }

    async fn get_messages(
        &self,
        request: Request<pb::GetMessagesRequest>,
    ) -> Result<Response<pb::GetMessagesResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let messages = backend.get_messages(&scope, &request.ids).await?;
            Ok(pb::GetMessagesResponse { messages })
        })
        .await
    }

    async fn delete_message(
        &self,
        request: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let claim = request.claim.map(ClaimRef::try_from).transpose()?;
        self.spawn(move |backend| async move {
            backend
                .delete_message(&scope, &request.id, claim.as_ref())
                .await?;
            Ok(pb::DeleteMessageResponse {})
        })
        .await
    }

    async fn delete_each(
        &self,
        request: Request<pb::DeleteEachRequest>,
    ) -> Result<Response<pb::DeleteEachResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        if request.items.is_empty() {
            return Err(ProtocolError::invalid("items", "must not be empty").into());
        }
        let items = request
            .items
            .into_iter()
            .map(|item| Ok((item.id, item.claim.map(ClaimRef::try_from).transpose()?)))
            .collect::<Result<Vec<_>, ProtocolError>>()?;
        self.spawn(move |backend| async move {
            let outcomes = backend
                .delete_each(&scope, items)
                .await?
                .into_iter()
                .map(|result| pb::DeleteOutcome {
                    error: result.err().map(Into::into),
                })
                .collect();
            Ok(pb::DeleteEachResponse { outcomes })
        })
        .await
    }

    async fn delete_messages(
        &self,
        request: Request<pb::DeleteMessagesRequest>,
    ) -> Result<Response<pb::DeleteMessagesResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let claim_ids = request
                .require_claim
                .then_some(request.claim_ids.as_slice());
            backend
                .delete_messages(&scope, &request.ids, claim_ids)
                .await?;
            Ok(pb::DeleteMessagesResponse {})
        })
        .await
    }

    async fn pop_messages(
        &self,
        request: Request<pb::PopMessagesRequest>,
    ) -> Result<Response<pb::PopMessagesResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let count = limit(request.limit, "limit")?;
        self.spawn(move |backend| async move {
            let messages = backend.pop_messages(&scope, count).await?;
            Ok(pb::PopMessagesResponse { messages })
        })
        .await
    }

    async fn create_claim(
        &self,
        request: Request<pb::CreateClaimRequest>,
    ) -> Result<Response<pb::CreateClaimResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let spec = ClaimSpec {
            ttl: request.ttl,
            grace: request.grace,
            limit: limit(request.limit, "limit")?,
        };
        if spec.ttl <= 0 {
            return Err(ProtocolError::invalid("ttl", "must be positive").into());
        }
        self.spawn(move |backend| async move {
            let claim = backend.create_claim(&scope, spec).await?;
            Ok(pb::CreateClaimResponse { claim })
        })
        .await
    }

    async fn create_claims(
        &self,
        request: Request<pb::CreateClaimsRequest>,
    ) -> Result<Response<pb::CreateClaimsResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        if request.claims.is_empty() {
            return Err(ProtocolError::invalid("claims", "must not be empty").into());
        }
        let specs = request
            .claims
            .into_iter()
            .map(|params| {
                if params.ttl <= 0 {
                    return Err(Status::from(ProtocolError::invalid(
                        "ttl",
                        "must be positive",
                    )));
                }
                Ok(ClaimSpec {
                    ttl: params.ttl,
                    grace: params.grace,
                    limit: limit(params.limit, "limit")?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.spawn(move |backend| async move {
            let outcomes = backend
                .create_claims(&scope, specs)
                .await?
                .into_iter()
                .map(|result| match result {
                    Ok(claim) => pb::ClaimOutcome { claim, error: None },
                    Err(error) => pb::ClaimOutcome {
                        claim: None,
                        error: Some(error.into()),
                    },
                })
                .collect();
            Ok(pb::CreateClaimsResponse { outcomes })
        })
        .await
    }

    async fn get_claim(
        &self,
        request: Request<pb::GetClaimRequest>,
    ) -> Result<Response<pb::GetClaimResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let claim = backend.get_claim(&scope, &request.id).await?;
            Ok(pb::GetClaimResponse { claim: Some(claim) })
        })
        .await
    }

    async fn renew_claim(
        &self,
        request: Request<pb::RenewClaimRequest>,
    ) -> Result<Response<pb::RenewClaimResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        if request.ttl <= 0 {
            return Err(ProtocolError::invalid("ttl", "must be positive").into());
        }
        self.spawn(move |backend| async move {
            backend
                .renew_claim(&scope, &request.id, request.ttl, request.grace)
                .await?;
            Ok(pb::RenewClaimResponse {})
        })
        .await
    }

    async fn release_claim(
        &self,
        request: Request<pb::ReleaseClaimRequest>,
    ) -> Result<Response<pb::ReleaseClaimResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            backend.release_claim(&scope, &request.id).await?;
            Ok(pb::ReleaseClaimResponse {})
        })
        .await
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let subscription = NewSubscription {
            subscriber: request.subscriber,
            ttl: request.ttl,
            options: request.options,
        };
        self.spawn(move |backend| async move {
            let (id, created) = backend.create_subscription(&scope, subscription).await?;
            Ok(pb::CreateSubscriptionResponse { id, created })
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let count = limit(request.limit, "limit")?;
        self.spawn(move |backend| async move {
            let subscriptions = backend
                .list_subscriptions(&scope, request.marker.as_deref(), count)
                .await?;
            Ok(pb::ListSubscriptionsResponse { subscriptions })
        })
        .await
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::GetSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            let subscription = backend.get_subscription(&scope, &request.id).await?;
            Ok(pb::GetSubscriptionResponse {
                subscription: Some(subscription),
            })
        })
        .await
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> Result<Response<pb::UpdateSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let update = SubscriptionUpdate {
            subscriber: request.subscriber,
            ttl: request.ttl,
            options: request.options,
        };
        self.spawn(move |backend| async move {
            backend
                .update_subscription(&scope, &request.id, update)
                .await?;
            Ok(pb::UpdateSubscriptionResponse {})
        })
        .await
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            backend.delete_subscription(&scope, &request.id).await?;
            Ok(pb::DeleteSubscriptionResponse {})
        })
        .await
    }

    async fn confirm_subscription(
        &self,
        request: Request<pb::ConfirmSubscriptionRequest>,
    ) -> Result<Response<pb::ConfirmSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        self.spawn(move |backend| async move {
            backend
                .confirm_subscription(&scope, &request.id, request.confirmed)
                .await?;
            Ok(pb::ConfirmSubscriptionResponse {})
        })
        .await
    }

    async fn enqueue_notice(
        &self,
        request: Request<pb::EnqueueNoticeRequest>,
    ) -> Result<Response<pb::EnqueueNoticeResponse>, Status> {
        let request = request.into_inner();
        let scope = scope(request.scope)?;
        let notice = request
            .notice
            .ok_or(ProtocolError::MissingField("notice"))?;
        self.spawn(move |backend| async move {
            backend
                .enqueue_notice(&scope, &request.subscription_id, notice)
                .await?;
            Ok(pb::EnqueueNoticeResponse {})
        })
        .await
    }

    async fn health(
        &self,
        _request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        self.spawn(move |backend| async move { backend.health().await })
            .await
    }
}
