//! The embedded backend: queues in one [redb] file, for `zaqar standalone`
//! with nothing installed.
//!
//! redb is a pure-Rust, ACID, copy-on-write B-tree store: every write
//! transaction is serialised and fsynced on commit, so each multi-step
//! change (a batch post, a claim, a dead-letter move) is one transaction —
//! atomic, and durable once acknowledged. Reads run in MVCC read
//! transactions beside writes. Calls run on the blocking thread pool.
//!
//! Tables (keys are bytes; `S` is a queue's scope key `ns\0project\0name`,
//! and every per-queue key starts with `S\0`, so a queue's rows are one
//! contiguous range):
//!
//! | table | key | value |
//! |---|---|---|
//! | `queues` | `S` | JSON [`QueueRow`] |
//! | `messages` | `S\0` + position (u64 BE) | JSON [`MessageRow`] |
//! | `message_ids` | `S\0` + id | position (u64 BE) |
//! | `claims` | `S\0` + claim id | JSON [`ClaimRow`] |
//! | `expiry` | expiry ms (u64 BE) + `S\0` + position | empty |
//! | `subscriptions` | `S\0` + id | JSON [`SubscriptionRow`] |
//! | `subscribers` | `S\0` + subscriber URI | id |
//!
//! Expired data is filtered on every read and removed by writes that meet
//! it and by a periodic sweep over the `expiry` index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
};
use serde::{Deserialize, Serialize};
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

type Bytes = &'static [u8];

const QUEUES: TableDefinition<Bytes, Bytes> = TableDefinition::new("queues");
const MESSAGES: TableDefinition<Bytes, Bytes> = TableDefinition::new("messages");
const MESSAGE_IDS: TableDefinition<Bytes, Bytes> = TableDefinition::new("message_ids");
const CLAIMS: TableDefinition<Bytes, Bytes> = TableDefinition::new("claims");
const EXPIRY: TableDefinition<Bytes, Bytes> = TableDefinition::new("expiry");
const SUBSCRIPTIONS: TableDefinition<Bytes, Bytes> = TableDefinition::new("subscriptions");
const SUBSCRIBERS: TableDefinition<Bytes, Bytes> = TableDefinition::new("subscribers");

/// Rows read per step of a walk over a queue.
const WALK_BATCH: usize = 128;
/// Rows a claim or pop looks at beyond its limit (claimed and delayed
/// messages at the head are skipped, within this budget).
const WALK_BUDGET: usize = 2048;
/// Most jobs committed together in one transaction.
const GROUP_MAX: usize = 512;

/// The file inside the data directory.
pub const DATA_FILE: &str = "zaqar.redb";

/// A queue's stored record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueRow {
    metadata: String,
    revision: u64,
    seq: u64,
    created: i64,
    settings: Settings,
}

/// The reserved attributes storage acts on, parsed once per metadata change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Settings {
    default_ttl: Option<i64>,
    default_delay: Option<i64>,
    max_post_size: Option<i64>,
    max_claim_count: Option<i64>,
    dead_letter: Option<String>,
    dead_letter_ttl: Option<i64>,
}

/// A stored message. Times are Unix milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRow {
    id: String,
    created: i64,
    expires: i64,
    ttl: i64,
    visible: i64,
    client: String,
    claim: String,
    claim_expires: i64,
    claim_count: i64,
    body: String,
}

/// A stored claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimRow {
    renewed: i64,
    expires: i64,
    ttl: i64,
    grace: i64,
    positions: Vec<u64>,
}

/// A stored subscription.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionRow {
    subscriber: String,
    ttl: i64,
    options: String,
    confirmed: bool,
    created: i64,
    expires: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

fn scope_key(scope: &Scope) -> Vec<u8> {
    let mut key = Vec::with_capacity(scope.project().len() + scope.name().len() + 4);
    key.extend_from_slice(scope.namespace().tag().as_bytes());
    key.push(0);
    key.extend_from_slice(scope.project().as_bytes());
    key.push(0);
    key.extend_from_slice(scope.name().as_bytes());
    key
}

fn child(scope: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(scope.len() + 1 + suffix.len());
    key.extend_from_slice(scope);
    key.push(0);
    key.extend_from_slice(suffix);
    key
}

fn message_key(scope: &[u8], position: u64) -> Vec<u8> {
    child(scope, &position.to_be_bytes())
}

fn expiry_key(expires: i64, scope: &[u8], position: u64) -> Vec<u8> {
    let mut key = (expires.max(0) as u64).to_be_bytes().to_vec();
    key.extend_from_slice(&message_key(scope, position));
    key
}

/// The exclusive upper bound of every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end.push(0xff);
    end
}

fn position_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if key.len() >= 8 {
        bytes.copy_from_slice(&key[key.len() - 8..]);
    }
    u64::from_be_bytes(bytes)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|error| StorageError::Internal(format!("corrupt embedded row: {error}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|error| StorageError::Internal(format!("cannot encode a row: {error}")))
}

fn db_error(error: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("embedded store failed: {error}"))
}

fn settings_of(scope: &Scope, metadata: &str) -> Result<Settings> {
    let value: serde_json::Value = serde_json::from_str(metadata)
        .map_err(|error| StorageError::Invalid(format!("metadata is not JSON: {error}")))?;
    let parsed = QueueSettings::from_metadata(&value);
    let dead_letter = match (&parsed.dead_letter_queue, parsed.dead_letter_active()) {
        (Some(name), true) => {
            Some(String::from_utf8_lossy(&scope_key(&scope.sibling(name)?)).into_owned())
        }
        _ => None,
    };
    Ok(Settings {
        default_ttl: parsed.default_message_ttl,
        default_delay: parsed.default_message_delay,
        max_post_size: parsed.max_messages_post_size,
        max_claim_count: parsed.max_claim_count,
        dead_letter,
        dead_letter_ttl: parsed.dead_letter_queue_messages_ttl,
    })
}

fn claim_active(row: &MessageRow, now: i64) -> bool {
    !row.claim.is_empty() && row.claim_expires > now
}

fn to_message(row: &MessageRow, now: i64) -> Message {
    Message {
        id: row.id.clone(),
        ttl: row.ttl,
        age: (now - row.created) / 1000,
        body: row.body.clone(),
        claim_id: claim_active(row, now).then(|| row.claim.clone()),
        claim_count: row.claim_count,
        created: row.created / 1000,
    }
}

/// The read accessors shared by write transactions ([`Tables`]) and read
/// snapshots ([`Snapshot`]): both hold tables implementing `ReadableTable`.
macro_rules! read_accessors {
    () => {
        fn queue(&self, scope: &[u8]) -> Result<Option<QueueRow>> {
            match self.queues.get(scope).map_err(db_error)? {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        }

        fn message(&self, scope: &[u8], position: u64) -> Result<Option<MessageRow>> {
            match self
                .messages
                .get(message_key(scope, position).as_slice())
                .map_err(db_error)?
            {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        }

        fn position_of_id(&self, scope: &[u8], id: &str) -> Result<Option<u64>> {
            Ok(self
                .ids
                .get(child(scope, id.as_bytes()).as_slice())
                .map_err(db_error)?
                .map(|value| position_of(value.value())))
        }

        /// The queue's messages in position order (positions and rows).
        fn messages_of(&self, scope: &[u8], after: Option<u64>) -> Result<Vec<(u64, MessageRow)>> {
            self.scan(scope, after, usize::MAX)
        }

        /// Up to `most` of the queue's messages after a position, in order.
        fn scan(
            &self,
            scope: &[u8],
            after: Option<u64>,
            most: usize,
        ) -> Result<Vec<(u64, MessageRow)>> {
            let start = match after {
                Some(position) => message_key(scope, position.saturating_add(1)),
                None => child(scope, &[]),
            };
            let end = prefix_end(&child(scope, &[]));
            let mut rows = Vec::new();
            for entry in self
                .messages
                .range(start.as_slice()..end.as_slice())
                .map_err(db_error)?
            {
                if rows.len() >= most {
                    break;
                }
                let (key, value) = entry.map_err(db_error)?;
                rows.push((position_of(key.value()), decode(value.value())?));
            }
            Ok(rows)
        }

        fn claim(&self, scope: &[u8], id: &str) -> Result<Option<ClaimRow>> {
            match self
                .claims
                .get(child(scope, id.as_bytes()).as_slice())
                .map_err(db_error)?
            {
                Some(value) => decode(value.value()).map(Some),
                None => Ok(None),
            }
        }

        fn subscription(
            &self,
            scope: &[u8],
            id: &str,
            now: i64,
        ) -> Result<Option<SubscriptionRow>> {
            let row: Option<SubscriptionRow> = match self
                .subscriptions
                .get(child(scope, id.as_bytes()).as_slice())
                .map_err(db_error)?
            {
                Some(value) => Some(decode(value.value())?),
                None => None,
            };
            Ok(row.filter(|row| row.expires > now))
        }
    };
}

/// The tables a write transaction works on.
struct Tables<'txn> {
    queues: Table<'txn, Bytes, Bytes>,
    messages: Table<'txn, Bytes, Bytes>,
    ids: Table<'txn, Bytes, Bytes>,
    claims: Table<'txn, Bytes, Bytes>,
    expiry: Table<'txn, Bytes, Bytes>,
    subscriptions: Table<'txn, Bytes, Bytes>,
    subscribers: Table<'txn, Bytes, Bytes>,
    deliveries: Table<'txn, Bytes, Bytes>,
    delivery_due: Table<'txn, Bytes, Bytes>,
}

impl<'txn> Tables<'txn> {
    read_accessors!();

    fn open(txn: &'txn redb::WriteTransaction) -> Result<Tables<'txn>> {
        Ok(Tables {
            queues: txn.open_table(QUEUES).map_err(db_error)?,
            messages: txn.open_table(MESSAGES).map_err(db_error)?,
            ids: txn.open_table(MESSAGE_IDS).map_err(db_error)?,
            claims: txn.open_table(CLAIMS).map_err(db_error)?,
            expiry: txn.open_table(EXPIRY).map_err(db_error)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(db_error)?,
            subscribers: txn.open_table(SUBSCRIBERS).map_err(db_error)?,
            deliveries: txn.open_table(outbox::DELIVERIES).map_err(db_error)?,
            delivery_due: txn.open_table(outbox::DELIVERY_DUE).map_err(db_error)?,
        })
    }

    fn put_queue(&mut self, scope: &[u8], row: &QueueRow) -> Result<()> {
        self.queues
            .insert(scope, encode(row)?.as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    /// Creates the queue with empty metadata if missing; returns its row
    /// and whether it was created.
    fn ensure_queue(&mut self, scope: &[u8], now: i64) -> Result<(QueueRow, bool)> {
        if let Some(row) = self.queue(scope)? {
            return Ok((row, false));
        }
        let row = QueueRow {
            metadata: "{}".into(),
            revision: 1,
            seq: 0,
            created: now,
            settings: Settings::default(),
        };
        self.put_queue(scope, &row)?;
        Ok((row, true))
    }

    fn insert_message(&mut self, scope: &[u8], position: u64, row: &MessageRow) -> Result<()> {
        self.messages
            .insert(
                message_key(scope, position).as_slice(),
                encode(row)?.as_slice(),
            )
            .map_err(db_error)?;
        self.ids
            .insert(
                child(scope, row.id.as_bytes()).as_slice(),
                position.to_be_bytes().as_slice(),
            )
            .map_err(db_error)?;
        self.expiry
            .insert(
                expiry_key(row.expires, scope, position).as_slice(),
                [].as_slice(),
            )
            .map_err(db_error)?;
        Ok(())
    }

    /// Rewrites a message whose expiry may have changed from `old_expires`.
    fn update_message(
        &mut self,
        scope: &[u8],
        position: u64,
        old_expires: i64,
        row: &MessageRow,
    ) -> Result<()> {
        if old_expires != row.expires {
            self.expiry
                .remove(expiry_key(old_expires, scope, position).as_slice())
                .map_err(db_error)?;
            self.expiry
                .insert(
                    expiry_key(row.expires, scope, position).as_slice(),
                    [].as_slice(),
                )
                .map_err(db_error)?;
        }
        self.messages
            .insert(
                message_key(scope, position).as_slice(),
                encode(row)?.as_slice(),
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn remove_message(&mut self, scope: &[u8], position: u64, row: &MessageRow) -> Result<()> {
        self.messages
            .remove(message_key(scope, position).as_slice())
            .map_err(db_error)?;
        self.ids
            .remove(child(scope, row.id.as_bytes()).as_slice())
            .map_err(db_error)?;
        self.expiry
            .remove(expiry_key(row.expires, scope, position).as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    /// Walks the queue's messages in order, in batches, handing each live
    /// one to `visit` until it returns false or `budget` rows were seen;
    /// expired rows met on the way are removed.
    fn walk(
        &mut self,
        scope: &[u8],
        now: i64,
        budget: usize,
        mut visit: impl FnMut(&mut Tables<'txn>, u64, MessageRow) -> Result<bool>,
    ) -> Result<()> {
        let mut after = None;
        let mut seen = 0;
        while seen < budget {
            let batch = self.scan(scope, after, WALK_BATCH)?;
            let exhausted = batch.len() < WALK_BATCH;
            for (position, row) in batch {
                seen += 1;
                after = Some(position);
                if row.expires <= now {
                    self.remove_message(scope, position, &row)?;
                } else if !visit(self, position, row)? {
                    return Ok(());
                }
            }
            if exhausted {
                return Ok(());
            }
        }
        Ok(())
    }

    fn put_claim(&mut self, scope: &[u8], id: &str, row: &ClaimRow) -> Result<()> {
        self.claims
            .insert(
                child(scope, id.as_bytes()).as_slice(),
                encode(row)?.as_slice(),
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn put_subscription(&mut self, scope: &[u8], id: &str, row: &SubscriptionRow) -> Result<()> {
        self.subscriptions
            .insert(
                child(scope, id.as_bytes()).as_slice(),
                encode(row)?.as_slice(),
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn remove_subscription(&mut self, scope: &[u8], id: &str, row: &SubscriptionRow) -> Result<()> {
        self.subscriptions
            .remove(child(scope, id.as_bytes()).as_slice())
            .map_err(db_error)?;
        let by = child(scope, row.subscriber.as_bytes());
        let owner = self
            .subscribers
            .get(by.as_slice())
            .map_err(db_error)?
            .map(|value| value.value().to_vec());
        if owner.as_deref() == Some(id.as_bytes()) {
            self.subscribers.remove(by.as_slice()).map_err(db_error)?;
        }
        Ok(())
    }
}

/// The tables a read transaction sees: a consistent snapshot that does not
/// wait for the writer.
struct Snapshot {
    queues: redb::ReadOnlyTable<Bytes, Bytes>,
    messages: redb::ReadOnlyTable<Bytes, Bytes>,
    ids: redb::ReadOnlyTable<Bytes, Bytes>,
    claims: redb::ReadOnlyTable<Bytes, Bytes>,
    subscriptions: redb::ReadOnlyTable<Bytes, Bytes>,
}

impl Snapshot {
    read_accessors!();

    fn open(txn: &redb::ReadTransaction) -> Result<Snapshot> {
        Ok(Snapshot {
            queues: txn.open_table(QUEUES).map_err(db_error)?,
            messages: txn.open_table(MESSAGES).map_err(db_error)?,
            ids: txn.open_table(MESSAGE_IDS).map_err(db_error)?,
            claims: txn.open_table(CLAIMS).map_err(db_error)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(db_error)?,
        })
    }
}

/// Completes a job once its group's transaction has committed (`None`) or
/// failed (the error text).
type Finisher = Box<dyn FnOnce(Option<String>) + Send>;

/// One operation for the writer thread. Called with the group's tables, it
/// does its work and returns how to answer plus whether it hit a storage
/// failure (which aborts the whole group); called with `None`, it answers
/// that the store is unavailable.
type Job = Box<dyn FnOnce(Option<(&mut Tables<'_>, i64)>) -> Option<(Finisher, bool)> + Send>;

/// Settings of the embedded store (`embedded://DIR`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Memory for the store's page cache, in MiB (redb's own default is
    /// 1 GiB, which a busy store fills: the process then holds that much).
    pub cache_mib: u64,
    /// How often the background sweeper removes expired data.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            cache_mib: 64,
            sweep_interval: Duration::from_secs(5),
        }
    }
}

impl EmbeddedConfig {
    /// Checks the settings that serde cannot: a positive sweep interval.
    pub fn validate(&self) -> Result<()> {
        if self.sweep_interval.is_zero() {
            return Err(StorageError::Invalid(
                "embedded.sweep_interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// A backend storing queues in a redb file.
///
/// Every operation runs on one writer thread, which commits the operations
/// waiting together in a single transaction (group commit): one fsync
/// acknowledges many concurrent requests, and each operation still sees a
/// serialised, atomic view.
pub struct EmbeddedBackend {
    db: Arc<Database>,
    jobs: std::sync::mpsc::Sender<Job>,
    path: PathBuf,
    in_flight: outbox::InFlight,
    wakeup: Arc<tokio::sync::Notify>,
    _sweeper: DropGuard,
}

impl EmbeddedBackend {
    /// Opens (or creates) the store in `dir` and starts the writer and the
    /// sweeper.
    pub fn open(dir: &Path, config: &EmbeddedConfig) -> Result<EmbeddedBackend> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|error| {
            StorageError::Invalid(format!(
                "cannot create data directory {}: {error}",
                dir.display()
            ))
        })?;
        let path = dir.join(DATA_FILE);
        let cache =
            usize::try_from(config.cache_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let db = Database::builder()
            .set_cache_size(cache)
            .create(&path)
            .map_err(|error| {
                StorageError::Invalid(format!("cannot open {}: {error}", path.display()))
            })?;
        let db = Arc::new(db);
        {
            // Create every table once so later transactions find them.
            let txn = db.begin_write().map_err(db_error)?;
            Tables::open(&txn)?;
            txn.commit().map_err(db_error)?;
        }
        let (jobs, queue) = std::sync::mpsc::channel();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("zaqar-embedded-writer".into())
            .spawn(move || writer_loop(&writer_db, &queue))
            .map_err(|error| StorageError::Internal(format!("cannot start the writer: {error}")))?;
        let cancel = CancellationToken::new();
        tokio::spawn(sweep_forever(
            jobs.clone(),
            config.sweep_interval,
            cancel.clone(),
        ));
        Ok(EmbeddedBackend {
            db,
            jobs,
            path,
            in_flight: outbox::InFlight::default(),
            wakeup: Arc::new(tokio::sync::Notify::new()),
            _sweeper: cancel.drop_guard(),
        })
    }

    /// Opens the store named by an `embedded://DIR` URI.
    pub fn open_uri(uri: &str, config: &EmbeddedConfig) -> Result<EmbeddedBackend> {
        let dir = uri
            .strip_prefix("embedded://")
            .filter(|dir| !dir.is_empty())
            .ok_or_else(|| {
                StorageError::Invalid(format!(
                    "invalid embedded uri {uri:?}: expected embedded://DIR"
                ))
            })?;
        Self::open(Path::new(dir), config)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs one sweep now (the background task does every interval).
    pub async fn sweep_now(&self) -> Result<u64> {
        self.write_ok(sweep_tables).await
    }

    /// Runs `work` on the writer thread (see [`submit`]).
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, i64) -> (Result<T>, bool) + Send + 'static,
    {
        submit(&self.jobs, work).await
    }

    /// Runs `work` in a write transaction that commits only on success.
    async fn write_ok<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, i64) -> Result<T> + Send + 'static,
    {
        self.write(move |tables, now| (work(tables, now), false))
            .await
    }

    /// Runs a read-only `work` on a snapshot, beside the writer.
    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot, i64) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_error)?;
            let snapshot = Snapshot::open(&txn)?;
            work(&snapshot, now_ms())
        })
        .await
        .map_err(|error| StorageError::Internal(format!("storage task failed: {error}")))?
    }
}

/// Runs `work` on the writer thread within a group transaction. Its writes
/// are kept when it returns `Ok`, or when it asks to keep them despite an
/// error (Zaqar creates the queue before rejecting a post); an operation
/// that fails otherwise must not have written anything.
async fn submit<T, F>(jobs: &std::sync::mpsc::Sender<Job>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Tables<'_>, i64) -> (Result<T>, bool) + Send + 'static,
{
    let (reply, answer) = tokio::sync::oneshot::channel::<Result<T>>();
    let job: Job = Box::new(move |tables| {
        let Some((tables, now)) = tables else {
            let _ = reply.send(Err(StorageError::Unavailable(
                "embedded store is unavailable".into(),
            )));
            return None;
        };
        let (outcome, _keep) = work(tables, now);
        let failed = matches!(
            &outcome,
            Err(StorageError::Unavailable(_) | StorageError::Internal(_))
        );
        let finish: Finisher = Box::new(move |commit_error| {
            let result = match commit_error {
                None => outcome,
                Some(error) => Err(StorageError::Unavailable(error)),
            };
            let _ = reply.send(result);
        });
        Some((finish, failed))
    });
    jobs.send(job)
        .map_err(|_| StorageError::Unavailable("embedded store writer stopped".into()))?;
    answer
        .await
        .map_err(|_| StorageError::Unavailable("embedded store writer stopped".into()))?
}

/// The writer thread: takes the jobs waiting together, runs them in one
/// transaction and commits once; a storage failure aborts the group and
/// every job in it is answered with the failure.
fn writer_loop(db: &Database, queue: &std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(error) => {
                tracing::error!(%error, "embedded store cannot begin a transaction");
                for job in batch {
                    job(None);
                }
                continue;
            }
        };
        let mut finishers = Vec::with_capacity(batch.len());
        let mut failure: Option<String> = None;
        match Tables::open(&txn) {
            Ok(mut tables) => {
                let now = now_ms();
                for job in batch {
                    if let Some((finish, failed)) = job(Some((&mut tables, now))) {
                        if failed && failure.is_none() {
                            failure =
                                Some("embedded store failed; the operation was not applied".into());
                        }
                        finishers.push(finish);
                    }
                }
            }
            Err(error) => {
                for job in batch {
                    job(None);
                }
                tracing::error!(%error, "embedded store cannot open its tables");
                continue;
            }
        }
        let outcome = match failure {
            Some(error) => {
                let _ = txn.abort();
                Some(error)
            }
            None => txn.commit().err().map(|error| {
                tracing::error!(%error, "embedded store commit failed");
                format!("embedded store commit failed: {error}")
            }),
        };
        for finish in finishers {
            finish(outcome.clone());
        }
    }
}

/// Removes expired messages, claims and subscriptions; returns how many
/// messages it removed.
fn sweep_tables(tables: &mut Tables<'_>, now: i64) -> Result<u64> {
    let mut removed = 0;
    {
        let tables = &mut *tables;
        let end = (now.max(0) as u64 + 1).to_be_bytes();
        let mut doomed = Vec::new();
        for entry in tables.expiry.range(..end.as_slice()).map_err(db_error)? {
            let (key, _) = entry.map_err(db_error)?;
            doomed.push(key.value().to_vec());
        }
        for key in doomed {
            tables.expiry.remove(key.as_slice()).map_err(db_error)?;
            let message_key = &key[8..];
            let scope = &message_key[..message_key.len().saturating_sub(9)];
            let position = position_of(message_key);
            if let Some(row) = tables.message(scope, position)?
                && row.expires <= now
            {
                tables.remove_message(scope, position, &row)?;
                removed += 1;
            }
        }
        let mut expired_claims = Vec::new();
        for entry in tables.claims.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let claim: ClaimRow = decode(value.value())?;
            if claim.expires <= now {
                expired_claims.push(key.value().to_vec());
            }
        }
        for key in expired_claims {
            tables.claims.remove(key.as_slice()).map_err(db_error)?;
        }
        let mut expired_subscriptions = Vec::new();
        for entry in tables.subscriptions.iter().map_err(db_error)? {
            let (key, value) = entry.map_err(db_error)?;
            let row: SubscriptionRow = decode(value.value())?;
            if row.expires <= now {
                expired_subscriptions.push((key.value().to_vec(), row));
            }
        }
        for (key, row) in expired_subscriptions {
            tables
                .subscriptions
                .remove(key.as_slice())
                .map_err(db_error)?;
            let split = key.len() - 25;
            let scope = &key[..split];
            let by = child(scope, row.subscriber.as_bytes());
            tables.subscribers.remove(by.as_slice()).map_err(db_error)?;
        }
    }
    Ok(removed)
}

async fn sweep_forever(
    jobs: std::sync::mpsc::Sender<Job>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let swept = submit(&jobs, |tables, now| (sweep_tables(tables, now), false)).await;
        if let Err(error) = swept {
            tracing::warn!(%error, "embedded sweep failed");
        }
    }
}

/// Whether a message can be claimed or popped now.
fn claimable(row: &MessageRow, now: i64) -> bool {
    row.expires > now && !claim_active(row, now) && row.visible <= now
}

/// Moves an over-claimed message into its dead-letter queue (created if
/// missing), unclaimed, with the DLQ TTL if one is set.
fn move_to_dead_letter(
    tables: &mut Tables<'_>,
    target: &str,
    mut row: MessageRow,
    ttl: Option<i64>,
    now: i64,
) -> Result<()> {
    let target = target.as_bytes();
    let (mut queue, _) = tables.ensure_queue(target, now)?;
    queue.seq += 1;
    let position = queue.seq;
    tables.put_queue(target, &queue)?;
    if let Some(ttl) = ttl {
        row.ttl = ttl;
        row.expires = now + ttl * 1000;
    }
    row.claim.clear();
    row.claim_expires = 0;
    row.visible = now;
    tables.insert_message(target, position, &row)
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool> {
        let key = scope_key(scope);
        let settings = settings_of(scope, metadata)?;
        let metadata = metadata.to_string();
        self.write_ok(move |tables, now| {
            if tables.queue(&key)?.is_some() {
                return Ok(false);
            }
            let row = QueueRow {
                metadata,
                revision: 1,
                seq: 0,
                created: now,
                settings,
            };
            tables.put_queue(&key, &row)?;
            Ok(true)
        })
        .await
    }

    async fn get_queue(&self, scope: &Scope) -> Result<Option<QueueRecord>> {
        let mut records = self.get_queues(std::slice::from_ref(scope)).await?;
        Ok(records.pop().flatten())
    }

    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        let keys: Vec<Vec<u8>> = scopes.iter().map(scope_key).collect();
        self.read(move |tables, _| {
            keys.iter()
                .map(|key| {
                    Ok(tables.queue(key)?.map(|row| QueueRecord {
                        metadata: row.metadata,
                        revision: row.revision,
                    }))
                })
                .collect()
        })
        .await
    }

    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64> {
        let key = scope_key(scope);
        let settings = settings_of(scope, metadata)?;
        let metadata = metadata.to_string();
        let missing = StorageError::queue_not_found(scope);
        self.write_ok(move |tables, _| {
            let Some(mut row) = tables.queue(&key)? else {
                return Err(missing);
            };
            if expected_revision.is_some_and(|expected| expected != row.revision) {
                return Err(StorageError::Conflict(
                    "queue metadata changed concurrently".into(),
                ));
            }
            row.revision += 1;
            row.metadata = metadata;
            row.settings = settings;
            tables.put_queue(&key, &row)?;
            Ok(row.revision)
        })
        .await
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames> {
        let mut prefix = namespace.tag().as_bytes().to_vec();
        prefix.push(0);
        prefix.extend_from_slice(project.as_bytes());
        prefix.push(0);
        let marker = marker.map(str::to_string);
        self.read(move |tables, _| {
            let end = prefix_end(&prefix);
            let mut names = Vec::new();
            let mut total = 0u64;
            for entry in tables
                .queues
                .range(prefix.as_slice()..end.as_slice())
                .map_err(db_error)?
            {
                let (key, _) = entry.map_err(db_error)?;
                let name = String::from_utf8_lossy(&key.value()[prefix.len()..]).into_owned();
                if name.contains('\0') {
                    continue;
                }
                total += 1;
                let after_marker = marker
                    .as_deref()
                    .is_none_or(|marker| name.as_str() > marker);
                if after_marker && names.len() < limit.max(1) as usize {
                    names.push(name);
                }
            }
            Ok(QueueNames { names, total })
        })
        .await
    }

    async fn delete_queue(&self, scope: &Scope) -> Result<()> {
        let key = scope_key(scope);
        self.write_ok(move |tables, _| {
            for (position, row) in tables.messages_of(&key, None)? {
                tables.remove_message(&key, position, &row)?;
            }
            let prefix = child(&key, &[]);
            let end = prefix_end(&prefix);
            let mut claims = Vec::new();
            for entry in tables
                .claims
                .range(prefix.as_slice()..end.as_slice())
                .map_err(db_error)?
            {
                claims.push(entry.map_err(db_error)?.0.value().to_vec());
            }
            for claim in claims {
                tables.claims.remove(claim.as_slice()).map_err(db_error)?;
            }
            tables.queues.remove(key.as_slice()).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn queue_exists(&self, scope: &Scope) -> Result<bool> {
        let key = scope_key(scope);
        self.read(move |tables, _| Ok(tables.queue(&key)?.is_some()))
            .await
    }

    async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats> {
        let key = scope_key(scope);
        self.read(move |tables, now| {
            if tables.queue(&key)?.is_none() {
                return Ok(QueueStats::default());
            }
            let mut stats = QueueStats {
                exists: true,
                ..QueueStats::default()
            };
            for (_, row) in tables.messages_of(&key, None)? {
                if row.expires <= now {
                    continue;
                }
                stats.total += 1;
                if claim_active(&row, now) {
                    stats.claimed += 1;
                }
                let summary = MessageSummary {
                    id: row.id.clone(),
                    age: (now - row.created) / 1000,
                    created: row.created / 1000,
                };
                if stats.oldest.is_none() {
                    stats.oldest = Some(summary.clone());
                }
                stats.newest = Some(summary);
            }
            stats.free = stats.total - stats.claimed;
            Ok(stats)
        })
        .await
    }

    async fn purge_queue(&self, scope: &Scope, messages: bool, subscriptions: bool) -> Result<()> {
        let key = scope_key(scope);
        self.write_ok(move |tables, now| {
            if messages && tables.queue(&key)?.is_some() {
                for (position, row) in tables.messages_of(&key, None)? {
                    if !claim_active(&row, now) {
                        tables.remove_message(&key, position, &row)?;
                    }
                }
            }
            if subscriptions {
                let prefix = child(&key, &[]);
                let end = prefix_end(&prefix);
                let mut keys = Vec::new();
                for entry in tables
                    .subscriptions
                    .range(prefix.as_slice()..end.as_slice())
                    .map_err(db_error)?
                {
                    keys.push(entry.map_err(db_error)?.0.value().to_vec());
                }
                for sub in keys {
                    tables
                        .subscriptions
                        .remove(sub.as_slice())
                        .map_err(db_error)?;
                }
                let mut keys = Vec::new();
                for entry in tables
                    .subscribers
                    .range(prefix.as_slice()..end.as_slice())
                    .map_err(db_error)?
                {
                    keys.push(entry.map_err(db_error)?.0.value().to_vec());
                }
                for sub in keys {
                    tables
                        .subscribers
                        .remove(sub.as_slice())
                        .map_err(db_error)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn post_messages(&self, scope: &Scope, batch: PostBatch) -> Result<Vec<String>> {
        let key = scope_key(scope);
        let notify = batch.notify;
        let (ids, queued) = self
            .write(move |tables, now| {
                let outcome = (|| {
                    let (mut queue, _) = tables.ensure_queue(&key, now)?;
                    let global = batch.limits.max_messages_post_size;
                    if let Some(queue_max) = queue.settings.max_post_size {
                        let effective = queue_max.min(global);
                        if batch.request_size > effective {
                            return Err(StorageError::post_too_large(effective, global, queue_max));
                        }
                    }
                    let mut delays = Vec::with_capacity(batch.messages.len());
                    for message in &batch.messages {
                        let delay = match queue.settings.default_delay {
                            Some(default) => message.delay.unwrap_or(default),
                            None => 0,
                        };
                        if queue.settings.default_delay.is_some()
                            && !(0..=batch.limits.max_message_delay).contains(&delay)
                        {
                            return Err(StorageError::bad_delay(batch.limits.max_message_delay));
                        }
                        delays.push(delay);
                    }
                    let default_ttl = queue
                        .settings
                        .default_ttl
                        .unwrap_or(batch.limits.default_message_ttl);
                    let mut ids = Vec::with_capacity(batch.messages.len());
                    let delay_queue = queue.settings.default_delay.is_some();
                    let mut notified = Vec::new();
                    for (message, delay) in batch.messages.into_iter().zip(delays) {
                        queue.seq += 1;
                        let ttl = message.ttl.unwrap_or(default_ttl);
                        if notify != NotifyMode::None {
                            let shown_delay = if delay_queue { delay } else { -1 };
                            notified.push((ttl, shown_delay, message.body.clone()));
                        }
                        let row = MessageRow {
                            id: new_id(),
                            created: now,
                            expires: now + ttl * 1000,
                            ttl,
                            visible: now + delay * 1000,
                            client: batch.client_id.clone(),
                            claim: String::new(),
                            claim_expires: 0,
                            claim_count: 0,
                            body: message.body,
                        };
                        tables.insert_message(&key, queue.seq, &row)?;
                        ids.push(row.id);
                    }
                    tables.put_queue(&key, &queue)?;
                    let queued = match ids.first() {
                        Some(first) if !notified.is_empty() => {
                            tables.queue_notifications(&key, first, notified, notify, now)?
                        }
                        _ => 0,
                    };
                    Ok((ids, queued))
                })();
                // The queue is created even when the batch is rejected.
                (outcome, true)
            })
            .await?;
        if queued > 0 {
            self.wakeup.notify_one();
        }
        Ok(ids)
    }

    async fn list_messages(&self, scope: &Scope, query: &ListQuery) -> Result<MessagePage> {
        let after = match &query.marker {
            None => None,
            Some(marker) => match marker.parse::<u64>() {
                Ok(position) => Some(position),
                Err(_) => return Ok(MessagePage::default()),
            },
        };
        let key = scope_key(scope);
        let query = query.clone();
        self.read(move |tables, now| {
            let Some(queue) = tables.queue(&key)? else {
                return Ok(MessagePage::default());
            };
            let delay_queue = queue.settings.default_delay.is_some();
            let include_delayed = query.include_delayed || !delay_queue;
            let mut page = MessagePage {
                delay_queue,
                ..MessagePage::default()
            };
            let start = match after {
                Some(position) => message_key(&key, position.saturating_add(1)),
                None => child(&key, &[]),
            };
            let end = prefix_end(&child(&key, &[]));
            for entry in tables
                .messages
                .range(start.as_slice()..end.as_slice())
                .map_err(db_error)?
            {
                let (row_key, value) = entry.map_err(db_error)?;
                let row: MessageRow = decode(value.value())?;
                let eligible = row.expires > now
                    && (query.echo || row.client != query.client_id)
                    && (query.include_claimed || !claim_active(&row, now))
                    && (include_delayed || row.visible <= now);
                if !eligible {
                    continue;
                }
                page.messages.push(to_message(&row, now));
                page.next_marker = Some(position_of(row_key.value()).to_string());
                if page.messages.len() >= query.limit.max(1) as usize {
                    break;
                }
            }
            Ok(page)
        })
        .await
    }

    async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>> {
        let key = scope_key(scope);
        let ids = ids.to_vec();
        let missing = StorageError::queue_not_found(scope);
        self.read(move |tables, now| {
            if tables.queue(&key)?.is_none() {
                return Err(missing);
            }
            let mut seen = std::collections::HashSet::new();
            let mut found = Vec::new();
            for id in ids {
                if !seen.insert(id.clone()) {
                    continue;
                }
                if let Some(position) = tables.position_of_id(&key, &id)?
                    && let Some(row) = tables.message(&key, position)?
                    && row.expires > now
                {
                    found.push(to_message(&row, now));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn delete_message(
        &self,
        scope: &Scope,
        id: &str,
        claim: Option<&ClaimRef>,
    ) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        let claim = claim.cloned();
        self.write_ok(move |tables, now| {
            if tables.queue(&key)?.is_none() {
                return Ok(());
            }
            let Some(position) = tables.position_of_id(&key, &id)? else {
                return Ok(());
            };
            let Some(row) = tables.message(&key, position)? else {
                return Ok(());
            };
            if row.expires <= now {
                return tables.remove_message(&key, position, &row);
            }
            let active = claim_active(&row, now);
            match &claim {
                Some(ClaimRef::Malformed) => {
                    return Err(StorageError::claim_invalid());
                }
                None if active => return Err(StorageError::ClaimMismatch),
                Some(ClaimRef::Id(_)) if !active => return Err(StorageError::ClaimExpired),
                Some(ClaimRef::Id(claim_id)) if *claim_id != row.claim => {
                    return Err(StorageError::ClaimMismatch);
                }
                _ => {}
            }
            tables.remove_message(&key, position, &row)
        })
        .await
    }

    async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()> {
        let key = scope_key(scope);
        let ids = ids.to_vec();
        let claim_ids = claim_ids.map(<[String]>::to_vec);
        self.write_ok(move |tables, now| {
            if tables.queue(&key)?.is_none() {
                return Ok(());
            }
            let mut doomed = Vec::new();
            for id in &ids {
                if let Some(position) = tables.position_of_id(&key, id)?
                    && let Some(row) = tables.message(&key, position)?
                {
                    if let Some(allowed) = &claim_ids
                        && row.expires > now
                        && !(claim_active(&row, now) && allowed.contains(&row.claim))
                    {
                        return Err(StorageError::claim_required());
                    }
                    doomed.push((position, row));
                }
            }
            for (position, row) in doomed {
                tables.remove_message(&key, position, &row)?;
            }
            Ok(())
        })
        .await
    }

    async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>> {
        let key = scope_key(scope);
        self.write_ok(move |tables, now| {
            if tables.queue(&key)?.is_none() {
                return Ok(Vec::new());
            }
            let mut popped = Vec::new();
            tables.walk(
                &key,
                now,
                WALK_BUDGET + limit as usize,
                |tables, position, row| {
                    if claimable(&row, now) {
                        let mut message = to_message(&row, now);
                        message.claim_id = None;
                        popped.push(message);
                        tables.remove_message(&key, position, &row)?;
                    }
                    Ok(popped.len() < limit as usize)
                },
            )?;
            Ok(popped)
        })
        .await
    }

    async fn create_claim(&self, scope: &Scope, spec: ClaimSpec) -> Result<Option<Claim>> {
        let key = scope_key(scope);
        self.write_ok(move |tables, now| {
            let Some(queue) = tables.queue(&key)? else {
                return Ok(None);
            };
            let settings = queue.settings;
            let dead_letter = match (&settings.dead_letter, settings.max_claim_count) {
                (Some(target), Some(max)) => Some((target.clone(), max)),
                _ => None,
            };
            let claim_id = new_id();
            let claim_expires = now + spec.ttl * 1000;
            let mut claimed = Vec::new();
            let mut positions = Vec::new();
            let budget = WALK_BUDGET + spec.limit as usize;
            tables.walk(&key, now, budget, |tables, position, mut row| {
                if !claimable(&row, now) {
                    return Ok(true);
                }
                if let Some((target, max)) = &dead_letter
                    && row.claim_count >= *max
                {
                    tables.remove_message(&key, position, &row)?;
                    move_to_dead_letter(tables, target, row, settings.dead_letter_ttl, now)?;
                    return Ok(true);
                }
                let old_expires = row.expires;
                row.claim = claim_id.clone();
                row.claim_expires = claim_expires;
                if dead_letter.is_some() {
                    row.claim_count += 1;
                }
                if row.expires < claim_expires {
                    row.expires = claim_expires + spec.grace * 1000;
                    row.ttl = spec.ttl + spec.grace;
                }
                tables.update_message(&key, position, old_expires, &row)?;
                claimed.push(to_message(&row, now));
                positions.push(position);
                Ok(claimed.len() < spec.limit as usize)
            })?;
            if claimed.is_empty() {
                return Ok(None);
            }
            let claim = ClaimRow {
                renewed: now,
                expires: claim_expires,
                ttl: spec.ttl,
                grace: spec.grace,
                positions,
            };
            tables.put_claim(&key, &claim_id, &claim)?;
            Ok(Some(Claim {
                id: claim_id,
                ttl: spec.ttl,
                grace: spec.grace,
                age: 0,
                messages: claimed,
            }))
        })
        .await
    }

    async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim> {
        let key = scope_key(scope);
        let id = id.to_string();
        let missing = StorageError::claim_not_found(scope, &id);
        self.read(move |tables, now| {
            let Some(claim) = tables.claim(&key, &id)?.filter(|claim| claim.expires > now) else {
                return Err(missing);
            };
            let mut messages = Vec::new();
            for position in &claim.positions {
                if let Some(row) = tables.message(&key, *position)?
                    && row.claim == id
                    && row.expires > now
                {
                    messages.push(to_message(&row, now));
                }
            }
            Ok(Claim {
                id,
                ttl: claim.ttl,
                grace: claim.grace,
                age: (now - claim.renewed) / 1000,
                messages,
            })
        })
        .await
    }

    async fn renew_claim(&self, scope: &Scope, id: &str, ttl: i64, grace: i64) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        let missing = StorageError::claim_not_found(scope, &id);
        self.write_ok(move |tables, now| {
            let Some(mut claim) = tables.claim(&key, &id)?.filter(|claim| claim.expires > now)
            else {
                return Err(missing);
            };
            let claim_expires = now + ttl * 1000;
            for position in &claim.positions {
                if let Some(mut row) = tables.message(&key, *position)?
                    && row.claim == id
                {
                    let old_expires = row.expires;
                    row.claim_expires = claim_expires;
                    if row.expires < claim_expires {
                        row.expires = claim_expires + grace * 1000;
                        row.ttl = ttl + grace;
                    }
                    tables.update_message(&key, *position, old_expires, &row)?;
                }
            }
            claim.renewed = now;
            claim.expires = claim_expires;
            claim.ttl = ttl;
            claim.grace = grace;
            tables.put_claim(&key, &id, &claim)?;
            Ok(())
        })
        .await
    }

    async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        self.write_ok(move |tables, _| {
            let Some(claim) = tables.claim(&key, &id)? else {
                return Ok(());
            };
            for position in &claim.positions {
                if let Some(mut row) = tables.message(&key, *position)?
                    && row.claim == id
                {
                    let expires = row.expires;
                    row.claim.clear();
                    row.claim_expires = 0;
                    tables.update_message(&key, *position, expires, &row)?;
                }
            }
            tables
                .claims
                .remove(child(&key, id.as_bytes()).as_slice())
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        let key = scope_key(scope);
        self.write_ok(move |tables, now| {
            let by = child(&key, subscription.subscriber.as_bytes());
            let existing = tables
                .subscribers
                .get(by.as_slice())
                .map_err(db_error)?
                .map(|value| String::from_utf8_lossy(value.value()).into_owned());
            if let Some(existing) = existing {
                if let Some(row) = tables.subscription(&key, &existing, now)? {
                    if row.confirmed {
                        return Err(StorageError::subscription_exists());
                    }
                    return Ok((existing, false));
                }
                tables
                    .subscriptions
                    .remove(child(&key, existing.as_bytes()).as_slice())
                    .map_err(db_error)?;
            }
            let id = new_id();
            let row = SubscriptionRow {
                subscriber: subscription.subscriber,
                ttl: subscription.ttl,
                options: subscription.options,
                confirmed: false,
                created: now,
                expires: now + subscription.ttl * 1000,
            };
            tables.put_subscription(&key, &id, &row)?;
            tables
                .subscribers
                .insert(by.as_slice(), id.as_bytes())
                .map_err(db_error)?;
            Ok((id, true))
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>> {
        let key = scope_key(scope);
        let source = scope.name().to_string();
        let marker = marker.map(str::to_string);
        self.read(move |tables, now| {
            let prefix = child(&key, &[]);
            let start = match &marker {
                Some(marker) => {
                    let mut start = child(&key, marker.as_bytes());
                    start.push(0);
                    start
                }
                None => prefix.clone(),
            };
            let end = prefix_end(&prefix);
            let mut found = Vec::new();
            for entry in tables
                .subscriptions
                .range(start.as_slice()..end.as_slice())
                .map_err(db_error)?
            {
                if found.len() >= limit.max(1) as usize {
                    break;
                }
                let (row_key, value) = entry.map_err(db_error)?;
                let row: SubscriptionRow = decode(value.value())?;
                if row.expires <= now {
                    continue;
                }
                let id = String::from_utf8_lossy(&row_key.value()[prefix.len()..]).into_owned();
                found.push(subscription_view(id, &source, &row, now));
            }
            Ok(found)
        })
        .await
    }

    async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription> {
        let key = scope_key(scope);
        let source = scope.name().to_string();
        let id = id.to_string();
        self.read(
            move |tables, now| match tables.subscription(&key, &id, now)? {
                Some(row) => Ok(subscription_view(id, &source, &row, now)),
                None => Err(StorageError::subscription_not_found(&id)),
            },
        )
        .await
    }

    async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        self.write_ok(move |tables, now| {
            let Some(mut row) = tables.subscription(&key, &id, now)? else {
                return Err(StorageError::subscription_not_found(&id));
            };
            if let Some(subscriber) = update.subscriber
                && subscriber != row.subscriber
            {
                let by = child(&key, subscriber.as_bytes());
                let other = tables
                    .subscribers
                    .get(by.as_slice())
                    .map_err(db_error)?
                    .map(|value| String::from_utf8_lossy(value.value()).into_owned());
                if let Some(other) = other
                    && other != id
                    && tables.subscription(&key, &other, now)?.is_some()
                {
                    return Err(StorageError::subscriber_taken());
                }
                tables
                    .subscribers
                    .remove(child(&key, row.subscriber.as_bytes()).as_slice())
                    .map_err(db_error)?;
                tables
                    .subscribers
                    .insert(by.as_slice(), id.as_bytes())
                    .map_err(db_error)?;
                row.subscriber = subscriber;
            }
            if let Some(ttl) = update.ttl {
                row.ttl = ttl;
                row.expires = now + ttl * 1000;
            }
            if let Some(options) = update.options {
                row.options = options;
            }
            tables.put_subscription(&key, &id, &row)?;
            Ok(())
        })
        .await
    }

    async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        self.write_ok(move |tables, _| {
            if let Some(row) = tables.subscription(&key, &id, i64::MIN)? {
                tables.remove_subscription(&key, &id, &row)?;
            }
            Ok(())
        })
        .await
    }

    async fn confirm_subscription(&self, scope: &Scope, id: &str, confirmed: bool) -> Result<()> {
        let key = scope_key(scope);
        let id = id.to_string();
        self.write_ok(move |tables, now| {
            let Some(mut row) = tables.subscription(&key, &id, now)? else {
                return Err(StorageError::subscription_not_found(&id));
            };
            row.confirmed = confirmed;
            tables.put_subscription(&key, &id, &row)?;
            Ok(())
        })
        .await
    }

    async fn enqueue_notice(
        &self,
        scope: &Scope,
        subscription_id: &str,
        notice: Notice,
    ) -> Result<()> {
        let key = scope_key(scope);
        let subscription = subscription_id.to_string();
        let record = DeliveryRecord::notice(subscription_id, notice).encode()?;
        self.write_ok(move |tables, now| {
            if tables.subscription(&key, &subscription, now)?.is_none() {
                return Err(StorageError::subscription_not_found(&subscription));
            }
            let id = format!("{}.{subscription}", new_id());
            tables.put_delivery(&child(&key, id.as_bytes()), now, record.as_bytes())
        })
        .await?;
        self.wakeup.notify_one();
        Ok(())
    }

    fn outbox(self: Arc<Self>) -> Option<OutboxRef> {
        Some(Arc::new(outbox::EmbeddedOutbox {
            jobs: self.jobs.clone(),
            in_flight: self.in_flight.clone(),
            wakeup: self.wakeup.clone(),
        }))
    }

    async fn health(&self) -> Result<Health> {
        let started = Instant::now();
        let reachable = self
            .read(|tables, _| Ok(tables.queues.len().is_ok()))
            .await
            .unwrap_or(false);
        Ok(Health {
            backend: "embedded".into(),
            reachable,
            latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

fn subscription_view(id: String, source: &str, row: &SubscriptionRow, now: i64) -> Subscription {
    Subscription {
        id,
        source: source.to_string(),
        subscriber: row.subscriber.clone(),
        ttl: row.ttl,
        age: (now - row.created) / 1000,
        options: row.options.clone(),
        confirmed: row.confirmed,
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{EmbeddedBackend, EmbeddedConfig};
    use crate::conformance::Fixture;

    async fn embedded_fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = EmbeddedConfig {
            sweep_interval: Duration::from_secs(1),
            ..EmbeddedConfig::default()
        };
        let backend = EmbeddedBackend::open(dir.path(), &config).expect("open the store");
        Fixture {
            backend: Arc::new(backend),
            guard: Some(Box::new(dir)),
        }
    }

    crate::backend_conformance_suite!(embedded_fixture);
    crate::outbox_conformance_suite!(embedded_fixture);
}
