//! Subscriptions, unique per (queue, subscriber) through a unique index.
//! Expired subscriptions linger until the TTL index collects them: every
//! read ignores them, and a new subscription of the same subscriber
//! removes the expired one first.

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use zaqar_proto::model::{NewSubscription, Scope, Subscription, SubscriptionUpdate, new_id};

use super::documents::{SubscriptionDoc, gc_date, queue_key};
use super::{Inner, is_duplicate_key};
use crate::error::{Result, StorageError};

/// Attempts of a subscription write that races with other writers.
const SUBSCRIBE_ATTEMPTS: usize = 5;

impl Inner {
    /// Removes the subscription of `subscriber` on `key` if it has expired;
    /// returns the live one otherwise.
    async fn live_subscriber(
        &self,
        key: &str,
        subscriber: &str,
        now: i64,
    ) -> Result<Option<SubscriptionDoc>> {
        let found = self
            .subscriptions
            .find_one(doc! {"q": key, "subscriber": subscriber})
            .await?;
        match found {
            Some(existing) if existing.expires > now => Ok(Some(existing)),
            Some(expired) => {
                self.subscriptions
                    .delete_one(doc! {"_id": &expired.id, "expires": {"$lte": now}})
                    .await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub(super) async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        let key = queue_key(scope);
        for _ in 0..SUBSCRIBE_ATTEMPTS {
            let now = self.now();
            if let Some(existing) = self
                .live_subscriber(&key, &subscription.subscriber, now)
                .await?
            {
                if existing.confirmed {
                    return Err(StorageError::subscription_exists());
                }
                return Ok((existing.id, false));
            }
            let expires = now + subscription.ttl * 1000;
            let document = SubscriptionDoc {
                id: new_id(),
                q: key.clone(),
                subscriber: subscription.subscriber.clone(),
                ttl: subscription.ttl,
                options: subscription.options.clone(),
                confirmed: false,
                created: now,
                expires,
                gc: gc_date(expires),
            };
            match self.subscriptions.insert_one(&document).await {
                Ok(_) => return Ok((document.id, true)),
                // A concurrent subscription of the same subscriber: look again.
                Err(error) if is_duplicate_key(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::Unavailable(
            "the subscription kept changing while it was being created".into(),
        ))
    }

    pub(super) async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>> {
        let now = self.now();
        let mut filter = doc! {"q": queue_key(scope), "expires": {"$gt": now}};
        if let Some(marker) = marker.filter(|marker| !marker.is_empty()) {
            filter.insert("_id", doc! {"$gt": marker});
        }
        let found: Vec<SubscriptionDoc> = self
            .subscriptions
            .find(filter)
            .sort(doc! {"_id": 1})
            .limit(i64::from(limit.max(1)))
            .await?
            .try_collect()
            .await?;
        Ok(found
            .iter()
            .map(|subscription| subscription.view(scope.name(), now))
            .collect())
    }

    async fn live_subscription(
        &self,
        scope: &Scope,
        id: &str,
        now: i64,
    ) -> Result<SubscriptionDoc> {
        self.subscriptions
            .find_one(doc! {"_id": id, "q": queue_key(scope), "expires": {"$gt": now}})
            .await?
            .ok_or_else(|| StorageError::subscription_not_found(id))
    }

    pub(super) async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription> {
        let now = self.now();
        Ok(self
            .live_subscription(scope, id, now)
            .await?
            .view(scope.name(), now))
    }

    pub(super) async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()> {
        let key = queue_key(scope);
        for _ in 0..SUBSCRIBE_ATTEMPTS {
            let now = self.now();
            let current = self.live_subscription(scope, id, now).await?;
            let mut set = Document::new();
            if let Some(subscriber) = &update.subscriber
                && *subscriber != current.subscriber
            {
                if let Some(other) = self.live_subscriber(&key, subscriber, now).await?
                    && other.id != id
                {
                    return Err(StorageError::subscriber_taken());
                }
                set.insert("subscriber", subscriber);
            }
            if let Some(ttl) = update.ttl {
                let expires = now + ttl * 1000;
                set.insert("ttl", ttl);
                set.insert("expires", expires);
                set.insert("gc", gc_date(expires));
            }
            if let Some(options) = &update.options {
                set.insert("options", options);
            }
            if set.is_empty() {
                return Ok(());
            }
            match self
                .subscriptions
                .update_one(doc! {"_id": id, "q": &key}, doc! {"$set": set})
                .await
            {
                Ok(_) => return Ok(()),
                // The new subscriber was taken meanwhile: check again.
                Err(error) if is_duplicate_key(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StorageError::subscriber_taken())
    }

    pub(super) async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()> {
        self.subscriptions
            .delete_one(doc! {"_id": id, "q": queue_key(scope)})
            .await?;
        Ok(())
    }

    pub(super) async fn confirm_subscription(
        &self,
        scope: &Scope,
        id: &str,
        confirmed: bool,
    ) -> Result<()> {
        let now = self.now();
        let updated = self
            .subscriptions
            .update_one(
                doc! {"_id": id, "q": queue_key(scope), "expires": {"$gt": now}},
                doc! {"$set": {"confirmed": confirmed}},
            )
            .await?;
        if updated.matched_count == 0 {
            return Err(StorageError::subscription_not_found(id));
        }
        Ok(())
    }
}
