//! The Redis backend.
//!
//! Every multi-step change is one Lua script (the `.lua` files beside this
//! one, each prefixed with `common.lua`), sent by SHA and loaded on first use.
//! All keys of one queue carry the same hash tag, so they share one Redis
//! Cluster slot; `common.lua` lists them. Times come from Redis `TIME`, so
//! several storage nodes fronting one Redis agree on ages and expiries.
//!
//! Expired messages, claims and subscriptions are filtered on every read,
//! removed in small batches by every write, and swept by a background task
//! (see [`RedisConfig::sweep_interval`]) so memory does not grow without bound.
//! Messages moved to a dead-letter queue pass through a per-queue outbox that
//! the claim call (and, after a crash, the sweeper) drains into the target
//! queue, so a move is never lost even though the two queues live in
//! different slots.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, ScriptInvocation, Value};
use serde::Deserialize;
use tokio_util::sync::{CancellationToken, DropGuard};
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, Health, ListQuery, Message, MessagePage, MessageSummary, Namespace,
    NewSubscription, Notice, NotifyMode, PostBatch, QueueNames, QueueRecord, QueueSettings,
    QueueStats, Scope, Subscription, SubscriptionUpdate, new_id,
};

use crate::backend::Backend;
use crate::delivery::{DeliveryRecord, OutboxRef};
use crate::error::{Result, StorageError};

mod outbox;

/// Settings of the Redis backend.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// How often the background sweeper looks for expired data.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How long one Redis call may take before it fails as unavailable.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            sweep_interval: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
        }
    }
}

impl RedisConfig {
    /// Checks the settings that serde cannot: both durations positive.
    pub fn validate(&self) -> Result<()> {
        if self.sweep_interval.is_zero() || self.response_timeout.is_zero() {
            return Err(StorageError::Invalid(
                "redis.sweep_interval and redis.response_timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Prefix of every key this backend writes.
const KEY_ROOT: &str = "zaqar:";
/// Suffixes of a queue's keys, in the order the scripts expect them.
const KEY_SUFFIXES: [&str; 15] = [
    "q", "msgs", "free", "exp", "claimed", "info", "body", "claims", "cexp", "dead", "subs",
    "subz", "subu", "nrec", "ndue",
];
/// Entries one listing script call looks at before handing back.
const LIST_SCAN_BUDGET: i64 = 1000;
/// Unclaimed messages one purge script call deletes.
const PURGE_BATCH: i64 = 1000;
/// Fields per message in script replies.
const MESSAGE_FIELDS: usize = 8;
/// Fields per subscription in script replies.
const SUBSCRIPTION_FIELDS: usize = 6;

/// Returns the key prefix of a queue: `zaqar:{<ns>:<project>:<name>}`.
///
/// The project is escaped so that it cannot end the hash tag early; names
/// cannot contain `:`, so the prefix is unique per scope.
pub fn key_prefix(scope: &Scope) -> String {
    format!(
        "{KEY_ROOT}{{{}:{}:{}}}",
        scope.namespace().tag(),
        escape_project(scope.project()),
        scope.name()
    )
}

/// Returns the key of a project's queue index: a sorted set of names.
pub fn index_key(project: &str, namespace: Namespace) -> String {
    format!(
        "{KEY_ROOT}idx:{{{}:{}}}",
        namespace.tag(),
        escape_project(project)
    )
}

/// Returns the index key and queue name of a queue key prefix.
fn index_of_prefix(prefix: &str) -> Option<(String, &str)> {
    let inner = prefix
        .strip_prefix(KEY_ROOT)?
        .strip_prefix('{')?
        .strip_suffix('}')?;
    let (owner, name) = inner.rsplit_once(':')?;
    Some((format!("{KEY_ROOT}idx:{{{owner}}}"), name))
}

fn escape_project(project: &str) -> String {
    let mut escaped = String::with_capacity(project.len());
    for ch in project.chars() {
        match ch {
            '%' => escaped.push_str("%25"),
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Most single deletes one script call handles.
const DELETE_CHUNK: usize = 1000;
/// Most claims one script call makes.
const CLAIM_CHUNK: usize = 100;

fn keys_of(prefix: &str) -> impl Iterator<Item = String> + '_ {
    KEY_SUFFIXES
        .iter()
        .map(move |suffix| format!("{prefix}:{suffix}"))
}

/// The loaded scripts.
struct Scripts {
    queue_create: Script,
    queue_update: Script,
    queue_delete: Script,
    queue_stats: Script,
    queue_purge: Script,
    queue_sweep: Script,
    messages_post: Script,
    messages_list: Script,
    messages_get: Script,
    message_delete: Script,
    messages_delete: Script,
    messages_pop: Script,
    claim_create: Script,
    claim_get: Script,
    claim_renew: Script,
    claim_release: Script,
    dead_letter_list: Script,
    dead_letter_insert: Script,
    sub_create: Script,
    sub_list: Script,
    sub_get: Script,
    sub_update: Script,
    sub_delete: Script,
    sub_confirm: Script,
    delivery_due: Script,
    delivery_take: Script,
    delivery_finish: Script,
    delivery_retry: Script,
    delivery_enqueue: Script,
}

impl Scripts {
    fn new() -> Scripts {
        const COMMON: &str = include_str!("redis/common.lua");
        const PICK: &str = include_str!("redis/pick.lua");
        const SUBS: &str = include_str!("redis/subs.lua");
        let plain = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        let picking = |body: &str| Script::new(&format!("{COMMON}\n{PICK}\n{body}"));
        let subs = |body: &str| Script::new(&format!("{COMMON}\n{SUBS}\n{body}"));
        Scripts {
            queue_create: plain(include_str!("redis/queue_create.lua")),
            queue_update: plain(include_str!("redis/queue_update.lua")),
            queue_delete: plain(include_str!("redis/queue_delete.lua")),
            queue_stats: plain(include_str!("redis/queue_stats.lua")),
            queue_purge: plain(include_str!("redis/queue_purge.lua")),
            queue_sweep: plain(include_str!("redis/queue_sweep.lua")),
            messages_post: subs(include_str!("redis/messages_post.lua")),
            messages_list: plain(include_str!("redis/messages_list.lua")),
            messages_get: plain(include_str!("redis/messages_get.lua")),
            message_delete: plain(include_str!("redis/message_delete.lua")),
            messages_delete: plain(include_str!("redis/messages_delete.lua")),
            messages_pop: picking(include_str!("redis/messages_pop.lua")),
            claim_create: picking(include_str!("redis/claim_create.lua")),
            claim_get: plain(include_str!("redis/claim_get.lua")),
            claim_renew: plain(include_str!("redis/claim_renew.lua")),
            claim_release: plain(include_str!("redis/claim_release.lua")),
            dead_letter_list: plain(include_str!("redis/dead_letter_list.lua")),
            dead_letter_insert: plain(include_str!("redis/dead_letter_insert.lua")),
            sub_create: subs(include_str!("redis/sub_create.lua")),
            sub_list: subs(include_str!("redis/sub_list.lua")),
            sub_get: subs(include_str!("redis/sub_get.lua")),
            sub_update: subs(include_str!("redis/sub_update.lua")),
            sub_delete: subs(include_str!("redis/sub_delete.lua")),
            sub_confirm: subs(include_str!("redis/sub_confirm.lua")),
            delivery_due: Script::new(include_str!("redis/delivery_due.lua")),
            delivery_take: subs(include_str!("redis/delivery_take.lua")),
            delivery_finish: plain(include_str!("redis/delivery_finish.lua")),
            delivery_retry: plain(include_str!("redis/delivery_retry.lua")),
            delivery_enqueue: subs(include_str!("redis/delivery_enqueue.lua")),
        }
    }
}

/// The state shared by the backend, its sweeper and its outbox.
struct Inner {
    conn: ConnectionManager,
    scripts: Scripts,
    /// Queues this process queued deliveries in, not yet looked at.
    hot: std::sync::Mutex<Vec<String>>,
    /// Wakes the delivery worker.
    wakeup: std::sync::Arc<tokio::sync::Notify>,
}

/// A backend storing queues in one Redis server.
pub struct RedisBackend {
    inner: std::sync::Arc<Inner>,
    _sweeper: DropGuard,
}

impl RedisBackend {
    /// Connects to `uri` (`redis://HOST:PORT[/DB]`) and starts the sweeper.
    ///
    /// The connection is made lazily and re-made after failures, so a node
    /// starts (and answers 503) while Redis is down.
    pub fn connect(uri: &str, config: &RedisConfig) -> Result<RedisBackend> {
        let info = redis::IntoConnectionInfo::into_connection_info(uri)
            .map_err(|error| StorageError::Invalid(format!("invalid redis uri: {error}")))?
            // The crate leaves Nagle on; calls share one pipelined
            // connection, and a call written while an earlier one is
            // unacknowledged must not wait for Redis' ACK or reply.
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info)
            .map_err(|error| StorageError::Invalid(format!("invalid redis uri: {error}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = client.get_connection_manager_lazy(manager_config)?;
        let inner = std::sync::Arc::new(Inner {
            conn,
            scripts: Scripts::new(),
            hot: std::sync::Mutex::new(Vec::new()),
            wakeup: std::sync::Arc::new(tokio::sync::Notify::new()),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(sweep_forever(
            inner.clone(),
            config.sweep_interval,
            cancel.clone(),
        ));
        Ok(RedisBackend {
            inner,
            _sweeper: cancel.drop_guard(),
        })
    }

    /// Runs one full sweep of every queue now (the background task does this
    /// every `sweep_interval`). Returns how many expired messages it removed.
    pub async fn sweep_now(&self) -> Result<u64> {
        self.inner.sweep_all().await
    }
}

impl Inner {
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Prepares an invocation of `script` on the keys of `prefix`.
    fn invocation<'a>(&self, script: &'a Script, prefix: &str) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in keys_of(prefix) {
            invocation.key(key);
        }
        invocation
    }

    async fn run(&self, invocation: &ScriptInvocation<'_>) -> Result<Value> {
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Records a queue in its project's index (after the queue was created).
    async fn index_add(&self, prefix: &str) -> Result<()> {
        if let Some((index, name)) = index_of_prefix(prefix) {
            let mut conn = self.conn();
            let _: i64 = redis::cmd("ZADD")
                .arg(index)
                .arg(0)
                .arg(name)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Files the messages waiting in a queue's dead-letter outbox into their
    /// dead-letter queues, then removes them from the outbox.
    async fn drain_dead_letters(&self, prefix: &str) -> Result<()> {
        let mut list = self.invocation(&self.scripts.dead_letter_list, prefix);
        list.arg(1000);
        let mut reply = Reply::new(self.run(&list).await?)?;
        while !reply.is_empty() {
            let id = reply.string()?;
            let body = reply.string()?;
            let client = reply.string()?;
            let created = reply.int()?;
            let ttl = reply.int()?;
            let expires = reply.int()?;
            let count = reply.int()?;
            let target = reply.string()?;
            let mut insert = self.invocation(&self.scripts.dead_letter_insert, &target);
            insert
                .arg(&id)
                .arg(body)
                .arg(client)
                .arg(created)
                .arg(ttl)
                .arg(expires)
                .arg(count);
            let mut filed = Reply::new(self.run(&insert).await?)?;
            let _filed = filed.int()?;
            if filed.int()? == 1 {
                self.index_add(&target).await?;
            }
            let mut conn = self.conn();
            let _: i64 = redis::cmd("HDEL")
                .arg(format!("{prefix}:dead"))
                .arg(&id)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Sweeps every queue once; returns the number of expired messages removed.
    async fn sweep_all(&self) -> Result<u64> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_ROOT}{{*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let mut prefixes: Vec<&str> = keys
                .iter()
                .filter_map(|key| key.strip_suffix(":q").or_else(|| key.strip_suffix(":subz")))
                .collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            // Heal the project indexes: every queue found is (re)indexed.
            let mut heal = redis::pipe();
            let mut healing = false;
            for key in &keys {
                if let Some((index, name)) = key.strip_suffix(":q").and_then(index_of_prefix) {
                    heal.cmd("ZADD").arg(index).arg(0).arg(name).ignore();
                    healing = true;
                }
                // Queues with deliveries are on the delivery schedule.
                if let Some(prefix) = key.strip_suffix(":ndue") {
                    heal.cmd("ZADD")
                        .arg(outbox::SCHEDULE_KEY)
                        .arg("NX")
                        .arg(0)
                        .arg(prefix)
                        .ignore();
                    healing = true;
                }
            }
            if healing {
                let _: () = heal.query_async(&mut conn).await?;
            }
            for prefix in prefixes {
                let mut sweep = self.invocation(&self.scripts.queue_sweep, prefix);
                sweep.arg(1000);
                let mut reply = Reply::new(self.run(&sweep).await?)?;
                removed += u64::try_from(reply.int()?).unwrap_or_default();
                let _claims = reply.int()?;
                let _subscriptions = reply.int()?;
                if reply.int()? > 0 {
                    self.drain_dead_letters(prefix).await?;
                }
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

async fn sweep_forever(
    inner: std::sync::Arc<Inner>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = inner.sweep_all().await {
            tracing::warn!(%error, "redis sweep failed");
        }
    }
}

/// Reads a flat script reply field by field.
struct Reply {
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    fn new(value: Value) -> Result<Reply> {
        match value {
            Value::Array(items) => Ok(Reply {
                items: items.into_iter(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn next(&mut self) -> Result<Value> {
        self.items
            .next()
            .ok_or_else(|| StorageError::Internal("short reply from redis script".into()))
    }

    fn string(&mut self) -> Result<String> {
        match self.next()? {
            Value::BulkString(bytes) => String::from_utf8(bytes)
                .map_err(|_| StorageError::Internal("non-utf8 text in redis reply".into())),
            Value::SimpleString(text) => Ok(text),
            Value::Int(number) => Ok(number.to_string()),
            other => Err(unexpected(&other)),
        }
    }

    fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Value::Int(number) => Ok(number),
            Value::BulkString(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| StorageError::Internal("non-numeric redis reply".into())),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads one message (see `push_message` in `common.lua`); also returns its position.
    fn message(&mut self) -> Result<(Message, i64)> {
        let id = self.string()?;
        let ttl = self.int()?;
        let age = self.int()?;
        let body = self.string()?;
        let claim = self.string()?;
        let claim_count = self.int()?;
        let created = self.int()?;
        let position = self.int()?;
        let message = Message {
            id,
            ttl,
            age,
            body,
            claim_id: (!claim.is_empty()).then_some(claim),
            claim_count,
            created,
        };
        Ok((message, position))
    }

    /// Reads one message of a claim just made (see `claim_create.lua`):
    /// it is held by `claim_id`; its age and created seconds follow from
    /// `now` (ms, the script's clock) and its creation time.
    fn claimed_message(&mut self, claim_id: &str, now: i64) -> Result<Message> {
        let id = self.string()?;
        let ttl = self.int()?;
        let created_ms = self.int()?;
        let body = self.string()?;
        let claim_count = self.int()?;
        Ok(Message {
            id,
            ttl,
            age: (now - created_ms).div_euclid(1000),
            body,
            claim_id: Some(claim_id.to_string()),
            claim_count,
            created: created_ms.div_euclid(1000),
        })
    }

    fn messages(&mut self) -> Result<Vec<Message>> {
        let mut messages = Vec::with_capacity(self.len() / MESSAGE_FIELDS);
        while !self.is_empty() {
            messages.push(self.message()?.0);
        }
        Ok(messages)
    }

    fn subscription(&mut self, source: &str) -> Result<Subscription> {
        Ok(Subscription {
            id: self.string()?,
            subscriber: self.string()?,
            ttl: self.int()?,
            age: self.int()?,
            options: self.string()?,
            confirmed: self.int()? == 1,
            source: source.to_string(),
        })
    }
}

fn unexpected(value: &Value) -> StorageError {
    StorageError::Internal(format!("unexpected redis reply: {value:?}"))
}

fn status_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// The script arguments describing a queue's settings, `''` meaning unset.
fn settings_args(scope: &Scope, metadata: &str) -> Result<[String; 6]> {
    let value: serde_json::Value = serde_json::from_str(metadata)
        .map_err(|error| StorageError::Invalid(format!("metadata is not JSON: {error}")))?;
    let settings = QueueSettings::from_metadata(&value);
    let number = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
    let dead_letter = if settings.dead_letter_active() {
        match &settings.dead_letter_queue {
            Some(name) => key_prefix(&scope.sibling(name)?),
            None => String::new(),
        }
    } else {
        String::new()
    };
    Ok([
        number(settings.default_message_ttl),
        number(settings.default_message_delay),
        number(settings.max_messages_post_size),
        number(settings.max_claim_count),
        dead_letter,
        number(settings.dead_letter_queue_messages_ttl),
    ])
}

#[async_trait]
impl Backend for RedisBackend {
    async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool> {
        let settings = settings_args(scope, metadata)?;
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.queue_create, &key_prefix(scope));
        invocation.arg(metadata);
        for setting in settings {
            invocation.arg(setting);
        }
        let created = matches!(inner.run(&invocation).await?, Value::Int(1));
        if created {
            inner.index_add(&key_prefix(scope)).await?;
        }
        Ok(created)
    }

    async fn get_queue(&self, scope: &Scope) -> Result<Option<QueueRecord>> {
        let mut records = self.get_queues(std::slice::from_ref(scope)).await?;
        Ok(records.pop().flatten())
    }

    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        let mut pipe = redis::pipe();
        for scope in scopes {
            pipe.cmd("HMGET")
                .arg(format!("{}:q", key_prefix(scope)))
                .arg("meta")
                .arg("rev");
        }
        let mut conn = self.inner.conn();
        let rows: Vec<(Option<String>, Option<u64>)> = pipe.query_async(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|(metadata, revision)| {
                metadata.map(|metadata| QueueRecord {
                    metadata,
                    revision: revision.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64> {
        let settings = settings_args(scope, metadata)?;
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.queue_update, &key_prefix(scope));
        invocation.arg(metadata).arg(
            expected_revision
                .map(|rev| rev.to_string())
                .unwrap_or_default(),
        );
        for setting in settings {
            invocation.arg(setting);
        }
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        match reply.string()?.as_str() {
            "ok" => Ok(u64::try_from(reply.int()?).unwrap_or_default()),
            "not_found" => Err(StorageError::queue_not_found(scope)),
            _ => Err(StorageError::Conflict(
                "queue metadata changed concurrently".into(),
            )),
        }
    }

    async fn delete_queue(&self, scope: &Scope) -> Result<()> {
        let inner = &self.inner;
        let invocation = inner.invocation(&inner.scripts.queue_delete, &key_prefix(scope));
        inner.run(&invocation).await?;
        let mut conn = inner.conn();
        let _: i64 = redis::cmd("ZREM")
            .arg(index_key(scope.project(), scope.namespace()))
            .arg(scope.name())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames> {
        let index = index_key(project, namespace);
        let mut conn = self.inner.conn();
        let mut names = Vec::new();
        let mut after = marker.map(str::to_string);
        let wanted = limit.max(1) as usize;
        while names.len() < wanted {
            let start = after
                .as_deref()
                .map(|name| format!("({name}"))
                .unwrap_or_else(|| "-".into());
            let page: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(&index)
                .arg(start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(wanted - names.len())
                .query_async(&mut conn)
                .await?;
            if page.is_empty() {
                break;
            }
            // The index may name a queue deleted concurrently: check and heal.
            let mut exists = redis::pipe();
            for name in &page {
                let scope = Scope::new(project, namespace, name.as_str())?;
                exists
                    .cmd("EXISTS")
                    .arg(format!("{}:q", key_prefix(&scope)));
            }
            let present: Vec<bool> = exists.query_async(&mut conn).await?;
            after = page.last().cloned();
            for (name, present) in page.into_iter().zip(present) {
                if present {
                    names.push(name);
                } else {
                    let _: i64 = redis::cmd("ZREM")
                        .arg(&index)
                        .arg(&name)
                        .query_async(&mut conn)
                        .await?;
                }
            }
        }
        let total: u64 = redis::cmd("ZCARD")
            .arg(&index)
            .query_async(&mut conn)
            .await?;
        Ok(QueueNames { names, total })
    }

    async fn queue_exists(&self, scope: &Scope) -> Result<bool> {
        let mut conn = self.inner.conn();
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("{}:q", key_prefix(scope)))
            .query_async(&mut conn)
            .await?;
        Ok(exists)
    }

    async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats> {
        let inner = &self.inner;
        let invocation = inner.invocation(&inner.scripts.queue_stats, &key_prefix(scope));
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        let exists = reply.int()? == 1;
        let claimed = u64::try_from(reply.int()?).unwrap_or_default();
        let total = u64::try_from(reply.int()?).unwrap_or_default();
        let mut summary = || -> Result<Option<MessageSummary>> {
            if reply.is_empty() {
                return Ok(None);
            }
            Ok(Some(MessageSummary {
                id: reply.string()?,
                age: reply.int()?,
                created: reply.int()?,
            }))
        };
        let oldest = summary()?;
        let newest = summary()?;
        Ok(QueueStats {
            exists,
            claimed,
            free: total.saturating_sub(claimed),
            total,
            oldest,
            newest,
        })
    }

    async fn purge_queue(&self, scope: &Scope, messages: bool, subscriptions: bool) -> Result<()> {
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let mut purge_subscriptions = subscriptions;
        loop {
            let mut invocation = inner.invocation(&inner.scripts.queue_purge, &prefix);
            invocation
                .arg(i64::from(messages))
                .arg(i64::from(purge_subscriptions))
                .arg(PURGE_BATCH);
            purge_subscriptions = false;
            match inner.run(&invocation).await? {
                Value::Int(deleted) if deleted >= PURGE_BATCH => continue,
                Value::Int(_) => return Ok(()),
                other => return Err(unexpected(&other)),
            }
        }
    }

    async fn post_messages(&self, scope: &Scope, batch: PostBatch) -> Result<Vec<String>> {
        self.post_batches(scope, vec![batch])
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(StorageError::Internal(
                    "post script returned no result".into(),
                ))
            })
    }

    async fn post_batches(
        &self,
        scope: &Scope,
        batches: Vec<PostBatch>,
    ) -> Result<Vec<Result<Vec<String>>>> {
        let Some(limits) = batches.first().map(|batch| batch.limits) else {
            return Ok(Vec::new());
        };
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let mut invocation = inner.invocation(&inner.scripts.messages_post, &prefix);
        invocation
            .arg(limits.default_message_ttl)
            .arg(limits.max_message_delay)
            .arg(limits.max_messages_post_size);
        let mut ids: Vec<Vec<String>> = Vec::with_capacity(batches.len());
        for batch in &batches {
            invocation
                .arg(&batch.client_id)
                .arg(batch.request_size)
                .arg(match batch.notify {
                    NotifyMode::None => "",
                    NotifyMode::All => "all",
                    NotifyMode::Confirmed => "confirmed",
                })
                .arg(batch.messages.len());
            // Shared ttl and delay go once in the batch header.
            let setting = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
            let shared = batch.messages.first().and_then(|first| {
                batch
                    .messages
                    .iter()
                    .all(|m| m.ttl == first.ttl && m.delay == first.delay)
                    .then_some((first.ttl, first.delay))
            });
            match shared {
                Some((ttl, delay)) => invocation.arg(setting(ttl)).arg(setting(delay)),
                None => invocation.arg("*").arg("*"),
            };
            let mut batch_ids = Vec::with_capacity(batch.messages.len());
            for message in &batch.messages {
                let id = new_id();
                invocation.arg(&id).arg(&message.body);
                if shared.is_none() {
                    invocation
                        .arg(setting(message.ttl))
                        .arg(setting(message.delay));
                }
                batch_ids.push(id);
            }
            ids.push(batch_ids);
        }
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        let created = reply.int()? == 1;
        let queued = reply.int()?;
        let now = reply.int()?;
        let effective = reply.int()?;
        let queue_max = reply.int()?;
        if queued > 0 {
            inner.schedule_deliveries(&prefix, now).await;
        }
        if created {
            inner.index_add(&prefix).await?;
        }
        let mut results = Vec::with_capacity(batches.len());
        for (batch, batch_ids) in batches.iter().zip(ids) {
            results.push(match reply.string()?.as_str() {
                "ok" => Ok(batch_ids),
                "too_large" => Err(StorageError::post_too_large(
                    effective,
                    limits.max_messages_post_size,
                    queue_max,
                )),
                _ => Err(StorageError::bad_delay(batch.limits.max_message_delay)),
            });
        }
        Ok(results)
    }

    async fn list_messages(&self, scope: &Scope, query: &ListQuery) -> Result<MessagePage> {
        let mut after: i64 = match &query.marker {
            None => -1,
            Some(marker) => match marker
                .parse::<u64>()
                .ok()
                .and_then(|m| i64::try_from(m).ok())
            {
                Some(position) => position,
                None => return Ok(MessagePage::default()),
            },
        };
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let limit = i64::from(query.limit.max(1));
        let mut page = MessagePage::default();
        let mut last_position = None;
        loop {
            let remaining = limit - page.messages.len() as i64;
            let mut invocation = inner.invocation(&inner.scripts.messages_list, &prefix);
            invocation
                .arg(after)
                .arg(remaining)
                .arg(i64::from(query.echo))
                .arg(&query.client_id)
                .arg(i64::from(query.include_claimed))
                .arg(i64::from(query.include_delayed))
                .arg(LIST_SCAN_BUDGET);
            let mut reply = Reply::new(inner.run(&invocation).await?)?;
            page.delay_queue = reply.int()? == 1;
            let exhausted = reply.int()? == 1;
            let scanned_to = reply.int()?;
            while !reply.is_empty() {
                let (message, position) = reply.message()?;
                page.messages.push(message);
                last_position = Some(position);
            }
            if exhausted || page.messages.len() as i64 >= limit || scanned_to <= after {
                break;
            }
            after = scanned_to;
        }
        page.next_marker = last_position.map(|position| position.to_string());
        Ok(page)
    }

    async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.messages_get, &key_prefix(scope));
        for id in ids {
            invocation.arg(id);
        }
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        if reply.int()? == 0 {
            return Err(StorageError::queue_not_found(scope));
        }
        reply.messages()
    }

    async fn delete_message(
        &self,
        scope: &Scope,
        id: &str,
        claim: Option<&ClaimRef>,
    ) -> Result<()> {
        self.delete_each(scope, vec![(id.to_string(), claim.cloned())])
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(StorageError::Internal(
                    "delete script returned no result".into(),
                ))
            })
    }

    async fn delete_each(
        &self,
        scope: &Scope,
        items: Vec<(String, Option<ClaimRef>)>,
    ) -> Result<Vec<Result<()>>> {
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let mut results = Vec::with_capacity(items.len());
        // The script reads the infos with one HMGET: bounded arguments.
        for chunk in items.chunks(DELETE_CHUNK) {
            let mut invocation = inner.invocation(&inner.scripts.message_delete, &prefix);
            for (id, claim) in chunk {
                let (mode, claim_id) = match claim {
                    None => ("none", ""),
                    Some(ClaimRef::Id(claim_id)) => ("id", claim_id.as_str()),
                    Some(ClaimRef::Malformed) => ("malformed", ""),
                };
                invocation.arg(id).arg(mode).arg(claim_id);
            }
            let mut reply = Reply::new(inner.run(&invocation).await?)?;
            for _ in chunk {
                results.push(match reply.string()?.as_str() {
                    "ok" => Ok(()),
                    "claimed" => Err(StorageError::ClaimMismatch),
                    "not_claimed" => Err(StorageError::ClaimExpired),
                    "claim_invalid" => Err(StorageError::claim_invalid()),
                    other => Err(StorageError::Internal(format!(
                        "unexpected delete outcome {other:?}"
                    ))),
                });
            }
        }
        Ok(results)
    }

    async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.messages_delete, &key_prefix(scope));
        invocation
            .arg(i64::from(claim_ids.is_some()))
            .arg(ids.len());
        for id in ids {
            invocation.arg(id);
        }
        for claim_id in claim_ids.unwrap_or_default() {
            invocation.arg(claim_id);
        }
        let value = inner.run(&invocation).await?;
        match status_of(&value) {
            Some(b"ok") => Ok(()),
            Some(b"claim_required") => Err(StorageError::claim_required()),
            _ => Err(unexpected(&value)),
        }
    }

    async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.messages_pop, &key_prefix(scope));
        invocation.arg(limit);
        Reply::new(inner.run(&invocation).await?)?.messages()
    }

    async fn create_claim(&self, scope: &Scope, spec: ClaimSpec) -> Result<Option<Claim>> {
        self.create_claims(scope, vec![spec])
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(StorageError::Internal(
                    "claim script returned no result".into(),
                ))
            })
    }

    async fn create_claims(
        &self,
        scope: &Scope,
        specs: Vec<ClaimSpec>,
    ) -> Result<Vec<Result<Option<Claim>>>> {
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let mut outcomes = Vec::with_capacity(specs.len());
        // Each claim returns up to `limit` messages: bounded replies.
        for chunk in specs.chunks(CLAIM_CHUNK) {
            let mut invocation = inner.invocation(&inner.scripts.claim_create, &prefix);
            let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
            for (id, spec) in ids.iter().zip(chunk) {
                invocation
                    .arg(id)
                    .arg(spec.ttl)
                    .arg(spec.grace)
                    .arg(spec.limit);
            }
            let mut reply = Reply::new(inner.run(&invocation).await?)?;
            let moved = reply.int()?;
            let now = reply.int()?;
            for (id, spec) in ids.into_iter().zip(chunk) {
                let count = usize::try_from(reply.int()?).unwrap_or_default();
                let mut messages = Vec::with_capacity(count);
                for _ in 0..count {
                    messages.push(reply.claimed_message(&id, now)?);
                }
                outcomes.push(Ok((!messages.is_empty()).then_some(Claim {
                    id,
                    ttl: spec.ttl,
                    grace: spec.grace,
                    age: 0,
                    messages,
                })));
            }
            if moved > 0 {
                inner.drain_dead_letters(&prefix).await?;
            }
        }
        Ok(outcomes)
    }

    async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.claim_get, &key_prefix(scope));
        invocation.arg(id);
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        if reply.string()? != "ok" {
            return Err(StorageError::claim_not_found(scope, id));
        }
        let ttl = reply.int()?;
        let grace = reply.int()?;
        let age = reply.int()?;
        Ok(Claim {
            id: id.to_string(),
            ttl,
            grace,
            age,
            messages: reply.messages()?,
        })
    }

    async fn renew_claim(&self, scope: &Scope, id: &str, ttl: i64, grace: i64) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.claim_renew, &key_prefix(scope));
        invocation.arg(id).arg(ttl).arg(grace);
        let value = inner.run(&invocation).await?;
        match status_of(&value) {
            Some(b"ok") => Ok(()),
            Some(b"not_found") => Err(StorageError::claim_not_found(scope, id)),
            _ => Err(unexpected(&value)),
        }
    }

    async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.claim_release, &key_prefix(scope));
        invocation.arg(id);
        inner.run(&invocation).await?;
        Ok(())
    }

    async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_create, &key_prefix(scope));
        invocation
            .arg(new_id())
            .arg(&subscription.subscriber)
            .arg(subscription.ttl)
            .arg(&subscription.options);
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        match reply.string()?.as_str() {
            "created" => Ok((reply.string()?, true)),
            "exists" => Ok((reply.string()?, false)),
            _ => Err(StorageError::subscription_exists()),
        }
    }

    async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_list, &key_prefix(scope));
        invocation.arg(marker.unwrap_or_default()).arg(limit.max(1));
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        let mut subscriptions = Vec::with_capacity(reply.len() / SUBSCRIPTION_FIELDS);
        while !reply.is_empty() {
            subscriptions.push(reply.subscription(scope.name())?);
        }
        Ok(subscriptions)
    }

    async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_get, &key_prefix(scope));
        invocation.arg(id);
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        if reply.string()? != "ok" {
            return Err(StorageError::subscription_not_found(id));
        }
        reply.subscription(scope.name())
    }

    async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_update, &key_prefix(scope));
        invocation
            .arg(id)
            .arg(update.subscriber.unwrap_or_default())
            .arg(update.ttl.map(|ttl| ttl.to_string()).unwrap_or_default())
            .arg(i64::from(update.options.is_some()))
            .arg(update.options.unwrap_or_default());
        let value = inner.run(&invocation).await?;
        match status_of(&value) {
            Some(b"ok") => Ok(()),
            Some(b"not_found") => Err(StorageError::subscription_not_found(id)),
            Some(b"conflict") => Err(StorageError::subscriber_taken()),
            _ => Err(unexpected(&value)),
        }
    }

    async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_delete, &key_prefix(scope));
        invocation.arg(id);
        inner.run(&invocation).await?;
        Ok(())
    }

    async fn confirm_subscription(&self, scope: &Scope, id: &str, confirmed: bool) -> Result<()> {
        let inner = &self.inner;
        let mut invocation = inner.invocation(&inner.scripts.sub_confirm, &key_prefix(scope));
        invocation.arg(id).arg(i64::from(confirmed));
        let value = inner.run(&invocation).await?;
        match status_of(&value) {
            Some(b"ok") => Ok(()),
            _ => Err(StorageError::subscription_not_found(id)),
        }
    }

    async fn enqueue_notice(
        &self,
        scope: &Scope,
        subscription_id: &str,
        notice: Notice,
    ) -> Result<()> {
        let inner = &self.inner;
        let prefix = key_prefix(scope);
        let record = DeliveryRecord::notice(subscription_id, notice).encode()?;
        let mut invocation = inner.invocation(&inner.scripts.delivery_enqueue, &prefix);
        invocation.arg(new_id()).arg(subscription_id).arg(record);
        let mut reply = Reply::new(inner.run(&invocation).await?)?;
        if reply.string()? != "ok" {
            return Err(StorageError::subscription_not_found(subscription_id));
        }
        let now = reply.int()?;
        inner.schedule_deliveries(&prefix, now).await;
        Ok(())
    }

    fn outbox(self: std::sync::Arc<Self>) -> Option<OutboxRef> {
        Some(std::sync::Arc::new(outbox::RedisOutbox {
            inner: self.inner.clone(),
        }))
    }

    async fn health(&self) -> Result<Health> {
        let mut conn = self.inner.conn();
        let started = Instant::now();
        let pong: Result<String> = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(StorageError::from);
        Ok(Health {
            backend: "redis".into(),
            reachable: pong.is_ok(),
            latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefixes_keep_one_hash_tag_per_queue() {
        let scope = Scope::queue("a}b{c%", "orders").unwrap();
        let prefix = key_prefix(&scope);
        assert_eq!(prefix, "zaqar:{q:a%7Db%7Bc%25:orders}");
        let open = prefix.find('{').unwrap();
        let close = prefix.find('}').unwrap();
        assert_eq!(&prefix[open + 1..close], "q:a%7Db%7Bc%25:orders");
        for key in keys_of(&prefix) {
            assert!(key.starts_with(&prefix));
        }
    }

    #[test]
    fn key_prefixes_differ_by_namespace_and_project() {
        let queue = Scope::queue("p", "x").unwrap();
        let topic = Scope::new("p", zaqar_proto::model::Namespace::Topic, "x").unwrap();
        let other = Scope::queue("p:x", "x").unwrap();
        assert_ne!(key_prefix(&queue), key_prefix(&topic));
        assert_ne!(key_prefix(&queue), key_prefix(&other));
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::Fixture;

    /// The Redis under test; `deploy/test.sh` starts one and sets this.
    fn test_url() -> String {
        std::env::var("ZAQAR_TEST_REDIS_URL")
            .expect("ZAQAR_TEST_REDIS_URL must name a test Redis (deploy/test.sh starts one)")
    }

    async fn redis_fixture() -> Fixture {
        let backend = RedisBackend::connect(&test_url(), &RedisConfig::default())
            .expect("connect to the test redis");
        Fixture::new(Arc::new(backend))
    }

    crate::backend_conformance_suite!(redis_fixture);

    /// A database of the test Redis used by no storage node, so no other
    /// taker leases the deliveries under test.
    async fn private_redis_fixture() -> Fixture {
        let url = test_url();
        let base = match url.rsplit_once('/') {
            Some((base, db)) if db.chars().all(|c| c.is_ascii_digit()) => base.to_string(),
            _ => url.trim_end_matches('/').to_string(),
        };
        let backend = RedisBackend::connect(&format!("{base}/9"), &RedisConfig::default())
            .expect("connect to the test redis");
        Fixture::new(Arc::new(backend))
    }

    crate::outbox_conformance_suite!(private_redis_fixture);

    /// Sweeping a database without queues is a no-op, not an error.
    #[tokio::test]
    async fn sweep_of_an_empty_database_succeeds() {
        let backend =
            RedisBackend::connect(&format!("{}/14", test_url()), &RedisConfig::default()).unwrap();
        assert_eq!(backend.sweep_now().await.unwrap(), 0);
    }

    /// The number of fields of the hash `key`.
    async fn hash_len(conn: &ConnectionManager, key: &str) -> u64 {
        redis::cmd("HLEN")
            .arg(key)
            .query_async(&mut conn.clone())
            .await
            .unwrap()
    }

    /// A post of `count` small messages with the given ttl (None: default).
    fn batch(count: usize, ttl: Option<i64>) -> PostBatch {
        PostBatch {
            client_id: "c".into(),
            messages: (0..count)
                .map(|i| zaqar_proto::model::NewMessage {
                    body: i.to_string(),
                    ttl,
                    delay: None,
                })
                .collect(),
            request_size: 1,
            limits: zaqar_proto::model::PostLimits {
                default_message_ttl: 3600,
                max_message_delay: 900,
                max_messages_post_size: 0,
            },
            notify: NotifyMode::None,
        }
    }

    /// Expiry is filed per post: a large post expires as one group, swept in
    /// parts of the sweep's budget, while the messages a claim extended stay
    /// until their own expiry; stats never count the expired ones.
    #[tokio::test]
    async fn expiry_groups_sweep_in_parts_and_spare_extended_messages() {
        // A database of its own (the sweep counts what it removed in all
        // queues) and no background sweeps: this test runs them.
        let config = RedisConfig {
            sweep_interval: Duration::from_secs(3600),
            ..RedisConfig::default()
        };
        let backend = RedisBackend::connect(&format!("{}/12", test_url()), &config).unwrap();
        let mut conn = backend.inner.conn();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
        let scope = Scope::queue(format!("groups-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        let short = backend
            .post_messages(&scope, batch(2500, Some(1)))
            .await
            .unwrap();
        let long = backend.post_messages(&scope, batch(1, None)).await.unwrap();
        let spec = ClaimSpec {
            ttl: 30,
            grace: 0,
            limit: 3,
        };
        let held = backend.create_claim(&scope, spec).await.unwrap().unwrap();
        let held_ids: Vec<String> = held.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(held_ids, short[..3]);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let prefix = key_prefix(&scope);
        assert_eq!(hash_len(&conn, &format!("{prefix}:info")).await, 2501);
        // Each pass looks at up to 1,000 positions of the group.
        let mut removed = Vec::new();
        for _ in 0..4 {
            removed.push(backend.sweep_now().await.unwrap());
        }
        assert_eq!(removed, vec![997, 1000, 500, 0]);
        assert_eq!(hash_len(&conn, &format!("{prefix}:info")).await, 4);
        let left: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}:exp"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(left.iter().all(|m| !m.starts_with("~0-")), "{left:?}");
        let stats = backend.queue_stats(&scope).await.unwrap();
        assert_eq!((stats.total, stats.claimed), (4, 3));
        let mut expected = held_ids.clone();
        expected.extend(long);
        for id in &expected {
            backend.get_message(&scope, id).await.unwrap();
        }
    }

    /// Stats count neither expired messages nor the holds of ended claims,
    /// before any sweep ran.
    #[tokio::test]
    async fn stats_skip_expired_groups_and_ended_claims() {
        let backend = RedisBackend::connect(&test_url(), &RedisConfig::default()).unwrap();
        let scope = Scope::queue(format!("counts-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        backend
            .post_messages(&scope, batch(1200, Some(1)))
            .await
            .unwrap();
        backend.post_messages(&scope, batch(5, None)).await.unwrap();
        let spec = ClaimSpec {
            ttl: 1,
            grace: 0,
            limit: 1300,
        };
        backend.create_claim(&scope, spec).await.unwrap().unwrap();
        assert_eq!(backend.queue_stats(&scope).await.unwrap().claimed, 1205);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let stats = backend.queue_stats(&scope).await.unwrap();
        assert_eq!((stats.total, stats.claimed, stats.free), (5, 0, 5));
    }

    /// The sweeper frees the memory of expired messages and claims.
    #[tokio::test]
    async fn sweep_frees_expired_data() {
        let backend = RedisBackend::connect(&test_url(), &RedisConfig::default()).unwrap();
        let scope = Scope::queue(format!("sweep-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        let batch = PostBatch {
            client_id: "c".into(),
            messages: vec![zaqar_proto::model::NewMessage {
                body: "1".into(),
                ttl: Some(1),
                delay: None,
            }],
            request_size: 1,
            limits: zaqar_proto::model::PostLimits {
                default_message_ttl: 3600,
                max_message_delay: 900,
                max_messages_post_size: 1000,
            },
            notify: NotifyMode::None,
        };
        backend.post_messages(&scope, batch).await.unwrap();
        let spec = ClaimSpec {
            ttl: 1,
            grace: 0,
            limit: 1,
        };
        backend.create_claim(&scope, spec).await.unwrap().unwrap();
        let prefix = key_prefix(&scope);
        let mut conn = backend.inner.conn();
        let before: i64 = redis::cmd("HLEN")
            .arg(format!("{prefix}:info"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(before, 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        backend.sweep_now().await.unwrap();
        for suffix in ["info", "body", "msgs", "exp", "claims", "cexp", "claimed"] {
            let exists: bool = redis::cmd("EXISTS")
                .arg(format!("{prefix}:{suffix}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(!exists, "{suffix} should be empty after the sweep");
        }
    }

    /// A message's position is its score in `free` / `claimed`; its info
    /// record's first field is 0. Records written by older versions hold
    /// the position there (and their `claimed` entries were scored by the
    /// claim's expiry): a claim that ends puts each message back at its
    /// own position either way, so queue order survives the upgrade.
    #[tokio::test]
    async fn ended_claims_return_messages_to_their_positions_old_and_new() {
        let backend = RedisBackend::connect(&test_url(), &RedisConfig::default()).unwrap();
        let scope = Scope::queue(format!("layout-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        let ids = backend.post_messages(&scope, batch(3, None)).await.unwrap();
        let spec = ClaimSpec {
            ttl: 300,
            grace: 0,
            limit: 2,
        };
        let held = backend.create_claim(&scope, spec).await.unwrap().unwrap();
        let prefix = key_prefix(&scope);
        let mut conn = backend.inner.conn();
        let first_fields = || {
            let mut conn = conn.clone();
            let key = format!("{prefix}:info");
            let ids = ids.clone();
            async move {
                let raw: Vec<i64> = redis::cmd("EVAL")
                    .arg(
                        "local out = {} for i, id in ipairs(ARGV) do \
                         local _, m = cmsgpack.unpack_one(redis.call('HGET', KEYS[1], id)) \
                         out[i] = m[1] end \
                         return out",
                    )
                    .arg(1)
                    .arg(key)
                    .arg(&ids)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                raw
            }
        };
        assert_eq!(first_fields().await, vec![0, 0, 0]);
        // The first held message as an older version left it.
        let _: () = redis::cmd("EVAL")
            .arg(
                "local raw = redis.call('HGET', KEYS[1], ARGV[1]) \
                 local used, m = cmsgpack.unpack_one(raw) \
                 m[1] = 1 redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(m)) \
                 redis.call('HSET', KEYS[3], ARGV[1], string.sub(raw, used + 1)) \
                 redis.call('ZADD', KEYS[2], 9000000000000, ARGV[1])",
            )
            .arg(3)
            .arg(format!("{prefix}:info"))
            .arg(format!("{prefix}:claimed"))
            .arg(format!("{prefix}:body"))
            .arg(&ids[0])
            .query_async(&mut conn)
            .await
            .unwrap();
        backend.release_claim(&scope, &held.id).await.unwrap();
        let free: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}:free"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap();
        let expected: Vec<(String, i64)> = ids.iter().cloned().zip(1..).collect();
        assert_eq!(free, expected);
        let spec = ClaimSpec {
            ttl: 300,
            grace: 0,
            limit: 3,
        };
        let again = backend.create_claim(&scope, spec).await.unwrap().unwrap();
        let again: Vec<(String, String)> =
            again.messages.into_iter().map(|m| (m.id, m.body)).collect();
        let expected: Vec<(String, String)> = ids
            .iter()
            .cloned()
            .zip(["0", "1", "2"].map(String::from))
            .collect();
        assert_eq!(again, expected);
        backend.delete_queue(&scope).await.unwrap();
    }

    /// Rewrites messages as older versions stored them: the record alone in
    /// `info`, the body in the `body` hash.
    async fn to_older_layout(conn: &mut ConnectionManager, prefix: &str, ids: &[String]) {
        let _: () = redis::cmd("EVAL")
            .arg(
                "for _, id in ipairs(ARGV) do \
                 local raw = redis.call('HGET', KEYS[1], id) \
                 local used, m = cmsgpack.unpack_one(raw) \
                 redis.call('HSET', KEYS[1], id, cmsgpack.pack(m)) \
                 redis.call('HSET', KEYS[2], id, string.sub(raw, used + 1)) end",
            )
            .arg(2)
            .arg(format!("{prefix}:info"))
            .arg(format!("{prefix}:body"))
            .arg(ids)
            .query_async(conn)
            .await
            .unwrap();
    }

    /// A message's body is stored after its record in `info`; messages
    /// older versions stored keep theirs in the `body` hash, and every
    /// read, claim change and removal finds it there, side by side with
    /// new ones, until the last is gone with the hash.
    #[tokio::test]
    async fn bodies_inline_and_in_the_older_body_hash() {
        let backend = RedisBackend::connect(&test_url(), &RedisConfig::default()).unwrap();
        let scope = Scope::queue(format!("bodies-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        let prefix = key_prefix(&scope);
        let mut conn = backend.inner.conn();
        let body_key = format!("{prefix}:body");
        let old = backend.post_messages(&scope, batch(4, None)).await.unwrap();
        assert_eq!(hash_len(&conn, &body_key).await, 0, "new bodies are inline");
        to_older_layout(&mut conn, &prefix, &old).await;
        let new = backend.post_messages(&scope, batch(2, None)).await.unwrap();
        assert_eq!(hash_len(&conn, &body_key).await, 4);
        let bodies = |messages: Vec<zaqar_proto::model::Message>| -> Vec<(String, String)> {
            messages.into_iter().map(|m| (m.id, m.body)).collect()
        };
        let all: Vec<(String, String)> = old
            .iter()
            .chain(&new)
            .cloned()
            .zip(["0", "1", "2", "3", "0", "1"].map(String::from))
            .collect();
        let query = ListQuery {
            marker: None,
            limit: 10,
            echo: true,
            client_id: "c".into(),
            include_claimed: true,
            include_delayed: true,
        };
        let page = backend.list_messages(&scope, &query).await.unwrap();
        assert_eq!(bodies(page.messages), all);
        let got = backend
            .get_messages(&scope, &[old[2].clone(), new[1].clone()])
            .await
            .unwrap();
        assert_eq!(bodies(got), vec![all[2].clone(), all[5].clone()]);
        // A claim rewrites the records it takes, old and new alike.
        let spec = ClaimSpec {
            ttl: 300,
            grace: 0,
            limit: 5,
        };
        let claim = backend.create_claim(&scope, spec).await.unwrap().unwrap();
        assert_eq!(bodies(claim.messages), all[..5]);
        backend
            .renew_claim(&scope, &claim.id, 600, 0)
            .await
            .unwrap();
        let held = backend.get_claim(&scope, &claim.id).await.unwrap();
        assert_eq!(bodies(held.messages), all[..5]);
        backend.release_claim(&scope, &claim.id).await.unwrap();
        let page = backend.list_messages(&scope, &query).await.unwrap();
        assert_eq!(bodies(page.messages), all);
        assert_eq!(hash_len(&conn, &body_key).await, 4);
        // Removals clear both places.
        let popped = backend.pop_messages(&scope, 1).await.unwrap();
        assert_eq!(bodies(popped), all[..1]);
        backend.delete_message(&scope, &old[1], None).await.unwrap();
        assert_eq!(hash_len(&conn, &body_key).await, 2);
        backend
            .delete_messages(&scope, &[old[2].clone(), new[0].clone()], None)
            .await
            .unwrap();
        backend.delete_message(&scope, &old[3], None).await.unwrap();
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}:body"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!exists, "the body hash goes with its last message");
        let page = backend.list_messages(&scope, &query).await.unwrap();
        assert_eq!(bodies(page.messages), all[5..]);
        backend.delete_queue(&scope).await.unwrap();
    }
}
