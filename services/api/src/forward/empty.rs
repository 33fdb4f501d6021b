//! [`EmptyBackend`]: the backend of a queue that was never placed. Every
//! queue it is asked about does not exist, so reads answer "not found" or
//! empty and deletes succeed, exactly as a pool would for a missing queue.

use async_trait::async_trait;
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, Health, ListQuery, Message, MessagePage, Namespace,
    NewSubscription, Notice, PostBatch, QueueNames, QueueRecord, QueueStats, Scope, Subscription,
    SubscriptionUpdate,
};
use zaqar_storage::{Backend, Result, StorageError};

/// A backend holding no queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyBackend;

fn not_writable() -> StorageError {
    StorageError::Internal("a queue must be placed before it is written".into())
}

#[async_trait]
impl Backend for EmptyBackend {
    async fn create_queue(&self, _scope: &Scope, _metadata: &str) -> Result<bool> {
        Err(not_writable())
    }

    async fn get_queue(&self, _scope: &Scope) -> Result<Option<QueueRecord>> {
        Ok(None)
    }

    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        Ok(vec![None; scopes.len()])
    }

    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        _metadata: &str,
        _expected: Option<u64>,
    ) -> Result<u64> {
        Err(StorageError::queue_not_found(scope))
    }

    async fn list_queues(
        &self,
        _project: &str,
        _namespace: Namespace,
        _marker: Option<&str>,
        _limit: u32,
    ) -> Result<QueueNames> {
        Ok(QueueNames::default())
    }

    async fn delete_queue(&self, _scope: &Scope) -> Result<()> {
        Ok(())
    }

    async fn queue_exists(&self, _scope: &Scope) -> Result<bool> {
        Ok(false)
    }

    async fn queue_stats(&self, _scope: &Scope) -> Result<QueueStats> {
        Ok(QueueStats::default())
    }

    async fn purge_queue(
        &self,
        _scope: &Scope,
        _messages: bool,
        _subscriptions: bool,
    ) -> Result<()> {
        Ok(())
    }

    async fn post_messages(&self, _scope: &Scope, _batch: PostBatch) -> Result<Vec<String>> {
        Err(not_writable())
    }

    async fn list_messages(&self, _scope: &Scope, _query: &ListQuery) -> Result<MessagePage> {
        Ok(MessagePage::default())
    }

    async fn get_message(&self, scope: &Scope, _id: &str) -> Result<Message> {
        Err(StorageError::queue_not_found(scope))
    }

    async fn get_messages(&self, scope: &Scope, _ids: &[String]) -> Result<Vec<Message>> {
        Err(StorageError::queue_not_found(scope))
    }

    async fn delete_message(
        &self,
        _scope: &Scope,
        _id: &str,
        _claim: Option<&ClaimRef>,
    ) -> Result<()> {
        Ok(())
    }

    async fn delete_messages(
        &self,
        _scope: &Scope,
        _ids: &[String],
        _claims: Option<&[String]>,
    ) -> Result<()> {
        Ok(())
    }

    async fn pop_messages(&self, _scope: &Scope, _limit: u32) -> Result<Vec<Message>> {
        Ok(Vec::new())
    }

    async fn create_claim(&self, _scope: &Scope, _spec: ClaimSpec) -> Result<Option<Claim>> {
        Ok(None)
    }

    async fn get_claim(&self, scope: &Scope, _id: &str) -> Result<Claim> {
        Err(StorageError::queue_not_found(scope))
    }

    async fn renew_claim(&self, scope: &Scope, _id: &str, _ttl: i64, _grace: i64) -> Result<()> {
        Err(StorageError::queue_not_found(scope))
    }

    async fn release_claim(&self, _scope: &Scope, _id: &str) -> Result<()> {
        Ok(())
    }

    async fn create_subscription(
        &self,
        _scope: &Scope,
        _subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        Err(not_writable())
    }

    async fn list_subscriptions(
        &self,
        _scope: &Scope,
        _marker: Option<&str>,
        _limit: u32,
    ) -> Result<Vec<Subscription>> {
        Ok(Vec::new())
    }

    async fn get_subscription(&self, _scope: &Scope, id: &str) -> Result<Subscription> {
        Err(StorageError::NotFound(format!(
            "Subscription {id} does not exist"
        )))
    }

    async fn update_subscription(
        &self,
        _scope: &Scope,
        id: &str,
        _update: SubscriptionUpdate,
    ) -> Result<()> {
        Err(StorageError::NotFound(format!(
            "Subscription {id} does not exist"
        )))
    }

    async fn delete_subscription(&self, _scope: &Scope, _id: &str) -> Result<()> {
        Ok(())
    }

    async fn confirm_subscription(&self, _scope: &Scope, id: &str, _confirmed: bool) -> Result<()> {
        Err(StorageError::NotFound(format!(
            "Subscription {id} does not exist"
        )))
    }

    async fn enqueue_notice(&self, _scope: &Scope, id: &str, _notice: Notice) -> Result<()> {
        Err(StorageError::NotFound(format!(
            "Subscription {id} does not exist"
        )))
    }

    async fn health(&self) -> Result<Health> {
        Ok(Health {
            backend: "none".into(),
            reachable: true,
            latency_micros: 0,
        })
    }
}
