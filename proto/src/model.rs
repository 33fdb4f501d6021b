//! Validated domain types and their wire conversions.
//!
//! Inputs that carry invariants get their own types here ([`Scope`],
//! [`ClaimRef`], [`ListQuery`], [`PostBatch`]) and are checked when a wire
//! message is received ([`TryFrom`] on the generated types). Results that are
//! plain data (messages, claims, stats, subscriptions) are the generated wire
//! types themselves, re-exported below, so a storage node passes them through
//! without copying.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::ProtocolError;
use crate::pb;

pub use crate::pb::{
    Claim, HealthResponse as Health, ListQueuesResponse as QueueNames, MailContent, Message,
    MessageSummary, NewMessage, Notice, NotifyMode, PostLimits, QueueRecord,
    QueueStatsResponse as QueueStats, Subscription,
};

/// Longest queue or topic name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest project id accepted on queue and topic routes.
pub const MAX_PROJECT_LEN: usize = 256;

/// Whether `name` is a valid queue or topic name: 1..64 of `[a-zA-Z0-9_.-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// Queues and topics are separate namespaces of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// Queues (`/v2/queues/...`).
    Queue,
    /// Topics (`/v2/topics/...`).
    Topic,
}

impl Namespace {
    /// A one-letter tag used in storage keys.
    pub fn tag(self) -> &'static str {
        match self {
            Namespace::Queue => "q",
            Namespace::Topic => "t",
        }
    }
}

/// The (project, namespace, name) every queue-level request is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    project: String,
    namespace: Namespace,
    name: String,
}

impl Scope {
    /// Builds a scope, checking the name pattern and the project length.
    pub fn new(
        project: impl Into<String>,
        namespace: Namespace,
        name: impl Into<String>,
    ) -> Result<Self, ProtocolError> {
        let project = project.into();
        let name = name.into();
        if project.chars().count() > MAX_PROJECT_LEN {
            return Err(ProtocolError::invalid(
                "scope.project",
                format!("longer than {MAX_PROJECT_LEN} characters"),
            ));
        }
        if !is_valid_name(&name) {
            return Err(ProtocolError::invalid(
                "scope.name",
                "must be 1..64 characters of [a-zA-Z0-9_.-]",
            ));
        }
        Ok(Scope {
            project,
            namespace,
            name,
        })
    }

    /// Builds a queue scope.
    pub fn queue(
        project: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, ProtocolError> {
        Scope::new(project, Namespace::Queue, name)
    }

    /// Returns the same project and namespace with another name.
    pub fn sibling(&self, name: &str) -> Result<Self, ProtocolError> {
        Scope::new(self.project.clone(), self.namespace, name)
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The namespace.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// The queue or topic name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl TryFrom<i32> for Namespace {
    type Error = ProtocolError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        match pb::Namespace::try_from(value) {
            Ok(pb::Namespace::Queue) => Ok(Namespace::Queue),
            Ok(pb::Namespace::Topic) => Ok(Namespace::Topic),
            Err(_) => Err(ProtocolError::invalid(
                "namespace",
                format!("unknown value {value}"),
            )),
        }
    }
}

impl From<Namespace> for i32 {
    fn from(namespace: Namespace) -> Self {
        match namespace {
            Namespace::Queue => pb::Namespace::Queue as i32,
            Namespace::Topic => pb::Namespace::Topic as i32,
        }
    }
}

impl TryFrom<Option<pb::Scope>> for Scope {
    type Error = ProtocolError;

    fn try_from(scope: Option<pb::Scope>) -> Result<Self, Self::Error> {
        let scope = scope.ok_or(ProtocolError::MissingField("scope"))?;
        let namespace = Namespace::try_from(scope.namespace)?;
        Scope::new(scope.project, namespace, scope.name)
    }
}

impl From<&Scope> for pb::Scope {
    fn from(scope: &Scope) -> Self {
        pb::Scope {
            project: scope.project.clone(),
            namespace: scope.namespace.into(),
            name: scope.name.clone(),
        }
    }
}

/// Length of every id this server issues (messages, claims, subscriptions).
pub const ID_LEN: usize = 24;

/// Returns a new id: 24 lowercase hex digits laid out like a MongoDB
/// ObjectId (4 bytes of Unix seconds, 5 random bytes fixed per process,
/// a 3-byte counter), so ids sort by creation time.
pub fn new_id() -> String {
    static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let process = PROCESS.get_or_init(rand::random);
    let counter = COUNTER
        .get_or_init(|| AtomicU32::new(rand::random()))
        .fetch_add(1, Ordering::Relaxed);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default() as u32;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    bytes[4..9].copy_from_slice(process);
    bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
    let mut id = String::with_capacity(ID_LEN);
    for byte in bytes {
        id.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        id.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    id
}

/// Whether `id` could have been issued by [`new_id`]; anything else names
/// nothing and is treated as "does not exist".
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// How a single-message delete refers to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimRef {
    /// A syntactically valid claim id.
    Id(String),
    /// A value this server can never have issued.
    Malformed,
}

impl ClaimRef {
    /// Classifies a claim id sent by a client.
    pub fn parse(claim_id: &str) -> ClaimRef {
        if is_valid_id(claim_id) {
            ClaimRef::Id(claim_id.to_string())
        } else {
            ClaimRef::Malformed
        }
    }
}

impl From<&ClaimRef> for pb::ClaimRef {
    fn from(claim: &ClaimRef) -> Self {
        pb::ClaimRef {
            claim: Some(match claim {
                ClaimRef::Id(id) => pb::claim_ref::Claim::Id(id.clone()),
                ClaimRef::Malformed => pb::claim_ref::Claim::Malformed(true),
            }),
        }
    }
}

impl TryFrom<pb::ClaimRef> for ClaimRef {
    type Error = ProtocolError;

    fn try_from(claim: pb::ClaimRef) -> Result<Self, Self::Error> {
        match claim.claim {
            Some(pb::claim_ref::Claim::Id(id)) => Ok(ClaimRef::Id(id)),
            Some(pb::claim_ref::Claim::Malformed(_)) => Ok(ClaimRef::Malformed),
            None => Err(ProtocolError::MissingField("claim.claim")),
        }
    }
}

/// Parameters of a message listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Opaque marker from a previous page.
    pub marker: Option<String>,
    /// Page size, at least 1.
    pub limit: u32,
    /// Include the caller's own messages.
    pub echo: bool,
    /// The caller's Client-ID.
    pub client_id: String,
    /// Include messages under an active claim.
    pub include_claimed: bool,
    /// Include messages whose delay has not elapsed.
    pub include_delayed: bool,
}

/// A page of messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessagePage {
    /// The messages, in post order.
    pub messages: Vec<Message>,
    /// Marker of the last message; `None` when the page is empty.
    pub next_marker: Option<String>,
    /// Whether the queue has a non-zero `_default_message_delay`.
    pub delay_queue: bool,
}

/// A batch of messages to post.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostBatch {
    /// The producer's Client-ID.
    pub client_id: String,
    /// At least one message.
    pub messages: Vec<NewMessage>,
    /// Size of the HTTP request body in bytes.
    pub request_size: i64,
    /// The API tier's limits.
    pub limits: PostLimits,
    /// Which subscriptions are notified of the posted messages.
    pub notify: NotifyMode,
}

/// Parameters of a new claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimSpec {
    /// Seconds the claim lasts.
    pub ttl: i64,
    /// Seconds claimed messages outlive the claim.
    pub grace: i64,
    /// Most messages to claim.
    pub limit: u32,
}

/// A new subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSubscription {
    /// The subscriber URI.
    pub subscriber: String,
    /// Seconds to live.
    pub ttl: i64,
    /// The options JSON object.
    pub options: String,
}

/// Fields of a subscription to change; `None` keeps the stored value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionUpdate {
    /// A new subscriber URI.
    pub subscriber: Option<String>,
    /// A new TTL, which also restarts the expiry.
    pub ttl: Option<i64>,
    /// A new options object.
    pub options: Option<String>,
}

/// The reserved attributes of a queue's metadata that storage acts on.
///
/// Parsed leniently: the API tier validated the metadata, and anything that
/// still does not fit counts as unset. JSON booleans count as 0/1 integers,
/// as in Zaqar; zero values count as unset, as Zaqar's truthiness checks do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSettings {
    /// `_default_message_ttl`.
    pub default_message_ttl: Option<i64>,
    /// `_default_message_delay`; `Some` makes the queue a delay queue.
    pub default_message_delay: Option<i64>,
    /// `_max_messages_post_size`.
    pub max_messages_post_size: Option<i64>,
    /// `_max_claim_count`.
    pub max_claim_count: Option<i64>,
    /// `_dead_letter_queue`, when it is a valid queue name.
    pub dead_letter_queue: Option<String>,
    /// `_dead_letter_queue_messages_ttl`.
    pub dead_letter_queue_messages_ttl: Option<i64>,
}

impl QueueSettings {
    /// Extracts the settings from a metadata JSON object.
    pub fn from_metadata(metadata: &Value) -> QueueSettings {
        let int = |key: &str| -> Option<i64> {
            match metadata.get(key)? {
                Value::Number(number) => number.as_i64(),
                Value::Bool(flag) => Some(i64::from(*flag)),
                _ => None,
            }
            .filter(|value| *value != 0)
        };
        QueueSettings {
            default_message_ttl: int("_default_message_ttl"),
            default_message_delay: int("_default_message_delay"),
            max_messages_post_size: int("_max_messages_post_size"),
            max_claim_count: int("_max_claim_count"),
            dead_letter_queue: metadata
                .get("_dead_letter_queue")
                .and_then(Value::as_str)
                .filter(|name| is_valid_name(name))
                .map(str::to_string),
            dead_letter_queue_messages_ttl: int("_dead_letter_queue_messages_ttl"),
        }
    }

    /// Whether claims move over-claimed messages to a dead-letter queue.
    pub fn dead_letter_active(&self) -> bool {
        self.max_claim_count.is_some() && self.dead_letter_queue.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_contract_pattern() {
        assert!(is_valid_name("Service.test_queue"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Nice-Bo@t"));
        assert!(!is_valid_name("non-ascii-nœme"));
    }

    #[test]
    fn scope_rejects_long_projects_and_bad_names() {
        assert!(Scope::queue("p".repeat(256), "q").is_ok());
        assert!(Scope::queue("p".repeat(257), "q").is_err());
        assert!(Scope::queue("JAM Project", "q").is_ok());
        assert!(Scope::queue("p", "q/x").is_err());
    }

    #[test]
    fn scope_survives_the_wire() {
        let scope = Scope::new("p", Namespace::Topic, "t").unwrap();
        let wire = pb::Scope::from(&scope);
        assert_eq!(Scope::try_from(Some(wire)).unwrap(), scope);
        assert!(Scope::try_from(None).is_err());
        let bad = pb::Scope {
            project: "p".into(),
            namespace: 7,
            name: "q".into(),
        };
        assert!(Scope::try_from(Some(bad)).is_err());
    }

    #[test]
    fn ids_are_valid_unique_and_ordered_by_time() {
        let first = new_id();
        let second = new_id();
        assert!(is_valid_id(&first));
        assert_ne!(first, second);
        assert_eq!(first[..8], second[..8].to_string()[..8]);
        assert!(!is_valid_id("a"));
        assert!(!is_valid_id(&first.to_uppercase()));
    }

    #[test]
    fn claim_refs_classify_client_input() {
        let id = new_id();
        assert_eq!(ClaimRef::parse(&id), ClaimRef::Id(id.clone()));
        assert_eq!(ClaimRef::parse("invalid"), ClaimRef::Malformed);
        let wire = pb::ClaimRef::from(&ClaimRef::Malformed);
        assert_eq!(ClaimRef::try_from(wire).unwrap(), ClaimRef::Malformed);
    }

    #[test]
    fn settings_follow_zaqar_truthiness() {
        let settings = QueueSettings::from_metadata(&json!({
            "_default_message_ttl": 600,
            "_default_message_delay": 0,
            "_max_claim_count": true,
            "_dead_letter_queue": "dlq",
            "_dead_letter_queue_messages_ttl": null,
        }));
        assert_eq!(settings.default_message_ttl, Some(600));
        assert_eq!(settings.default_message_delay, None);
        assert_eq!(settings.max_claim_count, Some(1));
        assert!(settings.dead_letter_active());
        assert_eq!(settings.dead_letter_queue_messages_ttl, None);
        let inactive = QueueSettings::from_metadata(&json!({"_dead_letter_queue": "dlq"}));
        assert!(!inactive.dead_letter_active());
    }
}
