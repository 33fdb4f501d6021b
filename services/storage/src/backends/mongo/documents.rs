//! The stored documents and their client views. Times are Unix
//! milliseconds of the server's clock; `gc` repeats the expiry as a BSON
//! date for the TTL index that collects garbage.

use mongodb::bson::{self, DateTime, Document, doc};
use serde::{Deserialize, Serialize};
use zaqar_proto::model::{Message, MessageSummary, QueueSettings, Scope, Subscription};

use crate::error::{Result, StorageError};

/// Returns the key of a queue: `<ns>:<project>:<name>`. Names cannot hold
/// `:`, so the last `:` ends the project and keys are unique per scope.
pub fn queue_key(scope: &Scope) -> String {
    format!(
        "{}:{}:{}",
        scope.namespace().tag(),
        scope.project(),
        scope.name()
    )
}

/// A BSON date for the TTL index.
pub fn gc_date(millis: i64) -> DateTime {
    DateTime::from_millis(millis)
}

/// Whole seconds between two times, never negative.
pub fn seconds_between(earlier: i64, later: i64) -> i64 {
    (later - earlier).max(0) / 1000
}

/// A queue (`queues` collection).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueDoc {
    /// The queue key.
    #[serde(rename = "_id")]
    pub key: String,
    pub project: String,
    /// The namespace tag (`q` or `t`).
    pub ns: String,
    pub name: String,
    /// The metadata JSON text, as stored by the API tier.
    pub metadata: String,
    pub revision: i64,
    /// The last position handed out.
    pub seq: i64,
    pub created: i64,
    #[serde(default)]
    pub settings: Settings,
}

/// The fields of a new queue, for `$setOnInsert` (all but `_id` and `seq`).
pub fn new_queue_fields(scope: &Scope, metadata: &str, settings: &Settings, now: i64) -> Document {
    doc! {
        "project": scope.project(),
        "ns": scope.namespace().tag(),
        "name": scope.name(),
        "metadata": metadata,
        "revision": 1_i64,
        "created": now,
        "settings": settings.to_document(),
    }
}

/// The reserved attributes storage acts on, parsed on every metadata change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// `_default_message_ttl`.
    pub dttl: Option<i64>,
    /// `_default_message_delay`; set on delay queues only.
    pub ddelay: Option<i64>,
    /// `_max_messages_post_size`.
    pub mps: Option<i64>,
    /// `_max_claim_count`.
    pub mcc: Option<i64>,
    /// `_dead_letter_queue`, kept only while dead-lettering is active.
    pub dlq: Option<String>,
    /// `_dead_letter_queue_messages_ttl`.
    pub dlqttl: Option<i64>,
}

impl Settings {
    /// Parses the settings out of a metadata JSON object.
    pub fn from_metadata(metadata: &str) -> Result<Settings> {
        let value: serde_json::Value = serde_json::from_str(metadata)
            .map_err(|error| StorageError::Invalid(format!("metadata is not JSON: {error}")))?;
        let settings = QueueSettings::from_metadata(&value);
        let dead_letter = settings.dead_letter_active();
        Ok(Settings {
            dttl: settings.default_message_ttl,
            ddelay: settings.default_message_delay,
            mps: settings.max_messages_post_size,
            mcc: settings.max_claim_count,
            dlq: settings.dead_letter_queue.filter(|_| dead_letter),
            dlqttl: settings.dead_letter_queue_messages_ttl,
        })
    }

    /// The settings as a BSON document.
    pub fn to_document(&self) -> Document {
        let optional =
            |value: Option<i64>| value.map(bson::Bson::Int64).unwrap_or(bson::Bson::Null);
        doc! {
            "dttl": optional(self.dttl),
            "ddelay": optional(self.ddelay),
            "mps": optional(self.mps),
            "mcc": optional(self.mcc),
            "dlq": self.dlq.clone().map(bson::Bson::String).unwrap_or(bson::Bson::Null),
            "dlqttl": optional(self.dlqttl),
        }
    }

    /// The dead-letter queue and the claim count that sends messages there,
    /// when dead-lettering is active.
    pub fn dead_letter(&self) -> Option<(&str, i64)> {
        Some((self.dlq.as_deref()?, self.mcc?))
    }
}

/// A message (`messages` collection).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageDoc {
    /// The message id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The key of the queue holding it.
    pub q: String,
    /// Its position in the queue.
    pub pos: i64,
    pub created: i64,
    pub expires: i64,
    /// The TTL reported to clients (extended by claims).
    pub ttl: i64,
    /// When a delayed message becomes claimable.
    pub visible: i64,
    /// The Client-ID of the producer.
    pub client: String,
    /// The last claim that took it (`""`: none); held while `cexp` is ahead.
    pub claim: String,
    /// The expiry of that claim (0: none).
    pub cexp: i64,
    /// Claims counted while dead-lettering was active.
    pub count: i64,
    /// Bumped by every change of claim state or queue: conditional updates
    /// name the revision they read.
    pub rev: i64,
    /// The body JSON text.
    pub body: String,
    /// The expiry as a date, for the TTL index.
    pub gc: DateTime,
}

impl MessageDoc {
    /// Whether an active claim holds the message.
    pub fn claimed(&self, now: i64) -> bool {
        !self.claim.is_empty() && self.cexp > now
    }

    /// The client view of the message.
    pub fn view(&self, now: i64) -> Message {
        Message {
            id: self.id.clone(),
            ttl: self.ttl,
            age: seconds_between(self.created, now),
            body: self.body.clone(),
            claim_id: self.claimed(now).then(|| self.claim.clone()),
            claim_count: self.count,
            created: self.created.div_euclid(1000),
        }
    }

    /// The stats view of the message.
    pub fn summary(&self, now: i64) -> MessageSummary {
        MessageSummary {
            id: self.id.clone(),
            age: seconds_between(self.created, now),
            created: self.created.div_euclid(1000),
        }
    }
}

/// A claim (`claims` collection); its messages name it in `claim`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimDoc {
    /// The claim id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The key of the queue.
    pub q: String,
    /// When it was created or last renewed.
    pub renewed: i64,
    pub expires: i64,
    pub ttl: i64,
    pub grace: i64,
    pub gc: DateTime,
}

/// A subscription (`subscriptions` collection).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionDoc {
    /// The subscription id.
    #[serde(rename = "_id")]
    pub id: String,
    /// The key of the source queue.
    pub q: String,
    pub subscriber: String,
    pub ttl: i64,
    /// The options JSON text.
    pub options: String,
    pub confirmed: bool,
    pub created: i64,
    pub expires: i64,
    pub gc: DateTime,
}

impl SubscriptionDoc {
    /// The client view of the subscription.
    pub fn view(&self, source: &str, now: i64) -> Subscription {
        Subscription {
            id: self.id.clone(),
            source: source.to_string(),
            subscriber: self.subscriber.clone(),
            ttl: self.ttl,
            age: seconds_between(self.created, now),
            options: self.options.clone(),
            confirmed: self.confirmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_are_unique_per_scope() {
        let queue = Scope::queue("p", "x").unwrap();
        let topic = Scope::new("p", zaqar_proto::model::Namespace::Topic, "x").unwrap();
        let colon = Scope::queue("p:x", "x").unwrap();
        assert_eq!(queue_key(&queue), "q:p:x");
        assert_ne!(queue_key(&queue), queue_key(&topic));
        assert_ne!(queue_key(&colon), queue_key(&queue));
    }

    #[test]
    fn settings_keep_the_dead_letter_queue_only_when_active() {
        let active = Settings::from_metadata(
            r#"{"_max_claim_count": 2, "_dead_letter_queue": "dlq", "_default_message_delay": 5}"#,
        )
        .unwrap();
        assert_eq!(active.dead_letter(), Some(("dlq", 2)));
        assert_eq!(active.ddelay, Some(5));
        let inactive = Settings::from_metadata(r#"{"_dead_letter_queue": "dlq"}"#).unwrap();
        assert!(inactive.dead_letter().is_none() && inactive.dlq.is_none());
        assert!(Settings::from_metadata("not json").is_err());
    }
}
