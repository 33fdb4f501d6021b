//! Configuration of the API tier: where to listen, where storage is, and the
//! limits of the Zaqar contract (§3), all with Zaqar's defaults.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// How `Client-ID` values are checked (`[transport] client_id_uuid_safe`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientIdMode {
    /// The value must be a UUID (dashes optional).
    #[default]
    Strict,
    /// Any string within the configured length bounds.
    Off,
}

/// Settings of `zaqar api`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// gRPC URL of the storage node (`http://HOST:PORT`), in a single-pool
    /// deployment without catalog.
    pub storage: String,
    /// etcd endpoints of the cluster catalog; when set, queues are placed on
    /// the pools registered there (pooled deployment).
    pub etcd: Vec<String>,
    /// Root of the catalog's keys in etcd.
    pub catalog_root: String,
    /// The secret key of pre-signed URLs (`[signed_url] secret_key`); unset,
    /// `share` answers 400 and signed requests are refused.
    pub signed_url_secret_key: Option<String>,
    /// Unauthenticated mode only: roles assumed for requests that send no
    /// `X-Roles` (e.g. `["admin"]` for a trusted test cluster driven by
    /// clients that cannot send roles). Empty by default.
    pub default_roles: Vec<String>,
    /// Enables `/v2/health` (and, with pooling, the pool and flavor APIs).
    pub admin_mode: bool,
    /// How long a request may take before it fails with 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The `[transport]` limits.
    pub limits: Limits,
    /// Subscription notifications (`[notification]`).
    pub notification: NotificationConfig,
}

/// Settings of notifications (`[notification]` and `[storage]
/// message_pipeline` in Zaqar).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    /// Whether posted messages are notified to subscribers at all.
    pub enabled: bool,
    /// Whether subscriptions must be confirmed before they are notified; a
    /// new subscription is then sent a confirmation request (needs
    /// `signed_url_secret_key`).
    pub require_confirmation: bool,
    /// The public base URL of this API (e.g. `https://zaqar.example.com`),
    /// joined with the confirm path as `WSGISubscribeURL` in confirmation
    /// requests; unset, the key is left out.
    pub public_endpoint: Option<String>,
    /// Page that confirms e-mail subscriptions; confirmation e-mails link to
    /// it with the signature in the query. Unset, no confirmation e-mail is
    /// sent.
    pub external_confirmation_url: Option<String>,
    /// Subject of confirmation e-mails.
    pub subscription_confirmation_subject: String,
    /// Sender of confirmation e-mails.
    pub subscription_confirmation_sender: String,
    /// Body of confirmation e-mails: `{0}` = queue, `{1}` = project,
    /// `{2}` = confirmation link.
    pub subscription_confirmation_body: String,
    /// Subject of unsubscribe e-mails.
    pub unsubscribe_confirmation_subject: String,
    /// Body of unsubscribe e-mails (same placeholders).
    pub unsubscribe_confirmation_body: String,
    /// Lifetime of the signature sent on unsubscribe, in seconds.
    pub default_subscription_ttl: i64,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            enabled: true,
            require_confirmation: false,
            public_endpoint: None,
            external_confirmation_url: None,
            subscription_confirmation_subject: "Zaqar Notification - Subscription Confirmation"
                .into(),
            subscription_confirmation_sender: "Zaqar Notifications <no-reply@openstack.org>".into(),
            subscription_confirmation_body: "You have chosen to subscribe to the queue: {0}. \
                This queue belongs to project: {1}. \
                To confirm this subscription, click or visit this link below: {2}"
                .into(),
            unsubscribe_confirmation_subject: "Zaqar Notification - Unsubscribe Confirmation"
                .into(),
            unsubscribe_confirmation_body: "You have unsubscribed successfully to the queue: {0}. \
                This queue belongs to project: {1}. \
                To resubscribe this subscription, click or visit this link below: {2}"
                .into(),
            default_subscription_ttl: 3600,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            storage: String::new(),
            etcd: Vec::new(),
            catalog_root: "/zaqar".into(),
            default_roles: Vec::new(),
            signed_url_secret_key: None,
            admin_mode: false,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            notification: NotificationConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Checks what serde cannot: bounds that must be ordered and positive.
    pub fn validate(&self) -> Result<(), String> {
        let limits = &self.limits;
        let positive = [
            ("max_queues_per_page", limits.max_queues_per_page),
            ("max_messages_per_page", limits.max_messages_per_page),
            (
                "max_subscriptions_per_page",
                limits.max_subscriptions_per_page,
            ),
            (
                "max_messages_per_claim_or_pop",
                limits.max_messages_per_claim_or_pop,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("limits.{name} must be at least 1"));
            }
        }
        if limits.max_message_ttl < 60 {
            return Err("limits.max_message_ttl must be at least 60".into());
        }
        if limits.max_claim_ttl < 60 || limits.max_claim_grace < 60 {
            return Err("limits.max_claim_ttl and max_claim_grace must be at least 60".into());
        }
        if limits.min_length_client_id > limits.max_length_client_id {
            return Err("limits.min_length_client_id exceeds max_length_client_id".into());
        }
        Ok(())
    }
}

/// The `[transport]` options of Zaqar, with its defaults.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// TTL of posted messages without `ttl` (unless the queue sets one).
    pub default_message_ttl: i64,
    /// Default shown for `_default_message_delay`.
    pub default_message_delay: i64,
    /// Claim TTL when the request omits `ttl`.
    pub default_claim_ttl: i64,
    /// Claim grace when the request omits `grace`.
    pub default_claim_grace: i64,
    /// Subscription TTL when omitted.
    pub default_subscription_ttl: i64,
    /// Upper bound of `limit` on queue and topic listing.
    pub max_queues_per_page: u32,
    /// Upper bound of `limit` on message listing and of ids per request.
    pub max_messages_per_page: u32,
    /// Upper bound of `limit` on subscription listing.
    pub max_subscriptions_per_page: u32,
    /// Upper bound of claim `limit` and `pop`.
    pub max_messages_per_claim_or_pop: u32,
    /// Upper bound of `limit` on pool listing.
    pub max_pools_per_page: u32,
    /// Upper bound of `limit` on flavor listing.
    pub max_flavors_per_page: u32,
    /// Largest queue PUT/PATCH request body, in bytes.
    pub max_queue_metadata: u64,
    /// Largest message POST request body, in bytes.
    pub max_messages_post_size: u64,
    /// Largest message TTL.
    pub max_message_ttl: i64,
    /// Largest message delay.
    pub max_message_delay: i64,
    /// Largest claim TTL.
    pub max_claim_ttl: i64,
    /// Largest claim grace (checked on create only).
    pub max_claim_grace: i64,
    /// How `Client-ID` is checked.
    pub client_id_uuid_safe: ClientIdMode,
    /// Shortest Client-ID when `client_id_uuid_safe = "off"`.
    pub min_length_client_id: usize,
    /// Longest Client-ID when `client_id_uuid_safe = "off"`.
    pub max_length_client_id: usize,
    /// Require `claim_ids` together with `ids` on bulk delete.
    pub message_delete_with_claim_id: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_message_ttl: 3600,
            default_message_delay: 0,
            default_claim_ttl: 300,
            default_claim_grace: 60,
            default_subscription_ttl: 3600,
            max_queues_per_page: 20,
            max_messages_per_page: 20,
            max_subscriptions_per_page: 20,
            max_messages_per_claim_or_pop: 20,
            max_pools_per_page: 20,
            max_flavors_per_page: 20,
            max_queue_metadata: 65_536,
            max_messages_post_size: 262_144,
            max_message_ttl: 1_209_600,
            max_message_delay: 900,
            max_claim_ttl: 43_200,
            max_claim_grace: 43_200,
            client_id_uuid_safe: ClientIdMode::Strict,
            min_length_client_id: 10,
            max_length_client_id: 36,
            message_delete_with_claim_id: false,
        }
    }
}
