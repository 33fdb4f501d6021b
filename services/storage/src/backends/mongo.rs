//! The MongoDB backend.
//!
//! One database per pool (named by the URI path, default `zaqar`) holding
//! five collections; `docs/mongo-backend.md` describes every document and
//! index:
//!
//! - `queues`: one document per queue (metadata, revision, parsed settings
//!   and the position counter `seq`), keyed by the queue key
//!   `<ns>:<project>:<name>` (names cannot hold `:`, so keys are unique);
//! - `messages`: one document per message, keyed by message id, carrying
//!   its queue key, position, times, claim state and a revision `rev`;
//! - `claims`: one document per claim (its messages point to it);
//! - `subscriptions`: one document per subscription;
//! - `deliveries`: the notification outbox, one document per pending
//!   delivery (written in the posting transaction; see `mongo/outbox.rs`).
//!
//! Every change that spans documents is one multi-document transaction
//! (posting a batch with its positions and deliveries, moving a message to
//! its dead-letter queue, deleting a queue); everything else is a
//! single-document conditional update. Claims take a message with `find_one_and_update`
//! filtered on the revision seen and on "no live claim", so a message never
//! goes to two live claims. Positions come from `$inc` on the queue
//! document inside the posting transaction: concurrent posts to one queue
//! conflict on that document, so batches commit in position order and a
//! reader paging by marker never skips one.
//!
//! Times are milliseconds of the MongoDB server's clock, estimated from the
//! `localTime` its `hello` reply carries (see [`Clock`]). TTL indexes only
//! collect garbage; every read filters expired data itself.
//!
//! Driver and server errors are `Unavailable` (HTTP 503). Server selection
//! and connecting time out after a few seconds and every operation is
//! bounded by [`OPERATION_TIMEOUT`], so a node whose MongoDB is gone answers
//! 503 in time, and the driver reconnects by itself when MongoDB returns.

mod claims;
mod documents;
mod messages;
mod outbox;
mod queues;
mod subscriptions;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::FutureExt;
use mongodb::bson::doc;
use mongodb::error::{
    ErrorKind as DriverErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
    WriteFailure,
};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::{CancellationToken, DropGuard};
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, Health, ListQuery, Message, MessagePage, Namespace,
    NewSubscription, Notice, PostBatch, QueueNames, QueueRecord, QueueStats, Scope, Subscription,
    SubscriptionUpdate,
};

use self::documents::{ClaimDoc, MessageDoc, QueueDoc, SubscriptionDoc, queue_key};
use self::outbox::DeliveryDoc;
use crate::backend::Backend;
use crate::delivery::{DeliveryRecord, OutboxRef};
use crate::error::{Result, StorageError};

/// The database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "zaqar";
/// Server selection timeout unless the URI sets `serverSelectionTimeoutMS`.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Connect timeout unless the URI sets `connectTimeoutMS`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one backend call may take before it fails as unavailable
/// (well below the API tier's 30 s request timeout). A server that is down
/// fails faster, at server selection; this bounds a server that hangs.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the clock offset to the server is measured again.
const CLOCK_SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Attempts of one transaction (or commit) before giving up with 503.
const TRANSACTION_ATTEMPTS: u32 = 30;

/// A backend storing queues in one MongoDB database.
pub struct MongoBackend {
    inner: Arc<Inner>,
    _maintenance: DropGuard,
}

impl MongoBackend {
    /// Prepares a client for `uri` (`mongodb://HOSTS/[DATABASE][?OPTIONS]`)
    /// and starts the background task that creates the indexes and keeps
    /// the clock offset fresh.
    ///
    /// Nothing is contacted here: a node starts (and answers 503) while
    /// MongoDB is down, and creates the indexes once it is reachable.
    pub fn connect(uri: &str) -> Result<MongoBackend> {
        let inner = Arc::new(Inner::new(uri)?);
        let cancel = CancellationToken::new();
        tokio::spawn(maintain(inner.clone(), cancel.clone()));
        Ok(MongoBackend {
            inner,
            _maintenance: cancel.drop_guard(),
        })
    }

    /// The name of the database this backend uses.
    pub fn database_name(&self) -> &str {
        self.inner.database.name()
    }

    /// Runs `work` once the indexes exist, within [`OPERATION_TIMEOUT`].
    async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.inner.run(work).await
    }
}

impl Inner {
    /// Runs `work` once the indexes exist, within [`OPERATION_TIMEOUT`].
    async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let guarded = async {
            self.ready().await?;
            work.await
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, guarded).await {
            Ok(result) => result,
            Err(_) => Err(StorageError::Unavailable(format!(
                "mongodb did not answer within {OPERATION_TIMEOUT:?}"
            ))),
        }
    }
}

/// Keeps the backend ready: creates the indexes as soon as MongoDB answers
/// and measures the clock offset every [`CLOCK_SYNC_INTERVAL`].
async fn maintain(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(CLOCK_SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let refreshed = match inner.ready().await {
            Ok(()) => inner.sync_clock().await,
            Err(error) => Err(error),
        };
        if let Err(error) = refreshed {
            tracing::warn!(%error, "mongodb is not ready");
        }
    }
}

/// The collections and the state shared by the backend and its task.
struct Inner {
    client: Client,
    database: Database,
    queues: Collection<QueueDoc>,
    messages: Collection<MessageDoc>,
    claims: Collection<ClaimDoc>,
    subscriptions: Collection<SubscriptionDoc>,
    deliveries: Collection<DeliveryDoc>,
    clock: Clock,
    indexed: OnceCell<()>,
    /// Signalled when this process queues deliveries.
    wakeup: Arc<Notify>,
}

impl Inner {
    fn new(uri: &str) -> Result<Inner> {
        // Parsing a plain `mongodb://` URI needs no I/O, so the future is
        // ready at once; only `mongodb+srv://` would need a DNS lookup.
        let parsed = ClientOptions::parse(uri)
            .into_future()
            .now_or_never()
            .ok_or_else(|| {
                StorageError::Invalid(format!("mongodb uri {uri:?} needs a DNS lookup"))
            })?;
        let mut options = parsed
            .map_err(|error| StorageError::Invalid(format!("invalid mongodb uri: {error}")))?;
        options
            .server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "zaqar".into());
        let database_name = options
            .default_database
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(options)
            .map_err(|error| StorageError::Invalid(format!("invalid mongodb uri: {error}")))?;
        let database = client.database(&database_name);
        Ok(Inner {
            queues: database.collection("queues"),
            messages: database.collection("messages"),
            claims: database.collection("claims"),
            subscriptions: database.collection("subscriptions"),
            deliveries: database.collection("deliveries"),
            database,
            client,
            clock: Clock::default(),
            indexed: OnceCell::new(),
            wakeup: Arc::new(Notify::new()),
        })
    }

    /// The server's time now, in Unix milliseconds (never going back).
    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Creates the indexes once (they are idempotent) and measures the
    /// clock offset. Fails while MongoDB cannot be reached; the next call
    /// tries again.
    async fn ready(&self) -> Result<()> {
        self.indexed
            .get_or_try_init(|| async {
                self.sync_clock().await?;
                self.create_indexes().await
            })
            .await?;
        Ok(())
    }

    /// Measures the offset between our clock and the server's.
    async fn sync_clock(&self) -> Result<()> {
        let sent = unix_millis();
        let reply = self.database.run_command(doc! {"hello": 1}).await?;
        let received = unix_millis();
        if let Ok(server) = reply.get_datetime("localTime") {
            let local = sent + (received - sent) / 2;
            self.clock.set_offset(server.timestamp_millis() - local);
        }
        Ok(())
    }

    async fn create_indexes(&self) -> Result<()> {
        let named = |keys, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).build())
                .build()
        };
        let unique = |keys, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_string())
                        .unique(true)
                        .build(),
                )
                .build()
        };
        let expiry = || {
            IndexModel::builder()
                .keys(doc! {"gc": 1})
                .options(
                    IndexOptions::builder()
                        .name("gc".to_string())
                        .expire_after(Duration::ZERO)
                        .build(),
                )
                .build()
        };
        self.queues
            .create_index(named(
                doc! {"project": 1, "ns": 1, "name": 1},
                "project_names",
            ))
            .await?;
        self.messages
            .create_indexes([
                unique(doc! {"q": 1, "pos": 1}, "queue_positions"),
                named(doc! {"q": 1, "claim": 1}, "queue_claims"),
                expiry(),
            ])
            .await?;
        self.claims.create_index(expiry()).await?;
        self.subscriptions
            .create_indexes([
                unique(doc! {"q": 1, "subscriber": 1}, "queue_subscribers"),
                named(doc! {"q": 1, "_id": 1}, "queue_ids"),
                expiry(),
            ])
            .await?;
        self.deliveries
            .create_indexes([
                unique(doc! {"q": 1, "did": 1}, "queue_deliveries"),
                named(doc! {"due": 1}, "due"),
                named(doc! {"taker": 1}, "takers"),
            ])
            .await?;
        Ok(())
    }

    /// Starts a session with a transaction.
    async fn begin(&self) -> Result<ClientSession> {
        let mut session = self.client.start_session().await?;
        session.start_transaction().await?;
        Ok(session)
    }

    /// Ends the transaction of one attempt: commits it when `outcome` is a
    /// value, aborts it otherwise, and tells whether to try again (write
    /// conflicts with a concurrent transaction are transient).
    async fn finish<T>(
        &self,
        session: &mut ClientSession,
        outcome: std::result::Result<T, TxnError>,
        attempt: &mut u32,
    ) -> Result<Finished<T>> {
        *attempt += 1;
        let give_up = *attempt >= TRANSACTION_ATTEMPTS;
        let error = match outcome {
            Ok(value) => loop {
                match session.commit_transaction().await {
                    Ok(()) => return Ok(Finished::Committed(value)),
                    Err(error)
                        if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && !give_up =>
                    {
                        *attempt += 1;
                    }
                    Err(error) => break error,
                }
            },
            Err(TxnError::Abandon) => {
                session.abort_transaction().await?;
                return Ok(Finished::Abandoned);
            }
            Err(TxnError::Storage(error)) => {
                let _ = session.abort_transaction().await;
                return Err(error);
            }
            Err(TxnError::Driver(error)) => {
                let _ = session.abort_transaction().await;
                error
            }
        };
        if error.contains_label(TRANSIENT_TRANSACTION_ERROR) && !give_up {
            tokio::time::sleep(Duration::from_millis(u64::from(*attempt) * 2)).await;
            return Ok(Finished::Retry);
        }
        Err(error.into())
    }
}

/// How one transaction attempt ended.
enum Finished<T> {
    /// Committed with this result.
    Committed(T),
    /// The attempt found nothing to do and rolled back.
    Abandoned,
    /// A transient conflict: run the attempt again.
    Retry,
}

/// Why a transaction attempt stopped.
enum TxnError {
    /// Nothing to do after all: roll back, not an error.
    Abandon,
    /// A driver or server error (retried when transient).
    Driver(mongodb::error::Error),
    /// A failure of the request itself.
    Storage(StorageError),
}

impl From<mongodb::error::Error> for TxnError {
    fn from(error: mongodb::error::Error) -> Self {
        TxnError::Driver(error)
    }
}

impl From<mongodb::error::Error> for StorageError {
    fn from(error: mongodb::error::Error) -> Self {
        StorageError::Unavailable(format!("mongodb unavailable: {error}"))
    }
}

/// Whether the error is a unique-index violation (code 11000).
fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
    match error.kind.as_ref() {
        DriverErrorKind::Write(WriteFailure::WriteError(failure)) => failure.code == DUPLICATE_KEY,
        DriverErrorKind::Command(failure) => failure.code == DUPLICATE_KEY,
        DriverErrorKind::InsertMany(failure) => failure
            .write_errors
            .iter()
            .flatten()
            .any(|failure| failure.code == DUPLICATE_KEY),
        _ => false,
    }
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The server's clock as seen from this node: our clock plus the offset
/// measured with `hello` (half the round trip is the error bound), made
/// monotonic so that a new measurement never moves time backwards.
///
/// Several nodes fronting one pool thus agree on times up to their
/// measurement errors (a few milliseconds on a LAN), whatever their own
/// clocks say.
#[derive(Default)]
struct Clock {
    offset: AtomicI64,
    last: AtomicI64,
}

impl Clock {
    fn now(&self) -> i64 {
        let now = unix_millis() + self.offset.load(Ordering::Relaxed);
        let previous = self.last.fetch_max(now, Ordering::Relaxed);
        now.max(previous)
    }

    fn set_offset(&self, offset: i64) {
        self.offset.store(offset, Ordering::Relaxed);
    }
}

#[async_trait]
impl Backend for MongoBackend {
    async fn create_queue(&self, scope: &Scope, metadata: &str) -> Result<bool> {
        self.run(self.inner.create_queue(scope, metadata)).await
    }

    async fn get_queue(&self, scope: &Scope) -> Result<Option<QueueRecord>> {
        let mut records = self.get_queues(std::slice::from_ref(scope)).await?;
        Ok(records.pop().flatten())
    }

    async fn get_queues(&self, scopes: &[Scope]) -> Result<Vec<Option<QueueRecord>>> {
        self.run(self.inner.get_queues(scopes)).await
    }

    async fn update_queue_metadata(
        &self,
        scope: &Scope,
        metadata: &str,
        expected_revision: Option<u64>,
    ) -> Result<u64> {
        self.run(
            self.inner
                .update_queue_metadata(scope, metadata, expected_revision),
        )
        .await
    }

    async fn list_queues(
        &self,
        project: &str,
        namespace: Namespace,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<QueueNames> {
        self.run(self.inner.list_queues(project, namespace, marker, limit))
            .await
    }

    async fn delete_queue(&self, scope: &Scope) -> Result<()> {
        self.run(self.inner.delete_queue(scope)).await
    }

    async fn queue_exists(&self, scope: &Scope) -> Result<bool> {
        self.run(self.inner.queue_exists(scope)).await
    }

    async fn queue_stats(&self, scope: &Scope) -> Result<QueueStats> {
        self.run(self.inner.queue_stats(scope)).await
    }

    async fn purge_queue(&self, scope: &Scope, messages: bool, subscriptions: bool) -> Result<()> {
        self.run(self.inner.purge_queue(scope, messages, subscriptions))
            .await
    }

    async fn post_messages(&self, scope: &Scope, batch: PostBatch) -> Result<Vec<String>> {
        self.run(self.inner.post_messages(scope, batch)).await
    }

    async fn list_messages(&self, scope: &Scope, query: &ListQuery) -> Result<MessagePage> {
        self.run(self.inner.list_messages(scope, query)).await
    }

    async fn get_messages(&self, scope: &Scope, ids: &[String]) -> Result<Vec<Message>> {
        self.run(self.inner.get_messages(scope, ids)).await
    }

    async fn delete_message(
        &self,
        scope: &Scope,
        id: &str,
        claim: Option<&ClaimRef>,
    ) -> Result<()> {
        self.run(self.inner.delete_message(scope, id, claim)).await
    }

    async fn delete_messages(
        &self,
        scope: &Scope,
        ids: &[String],
        claim_ids: Option<&[String]>,
    ) -> Result<()> {
        self.run(self.inner.delete_messages(scope, ids, claim_ids))
            .await
    }

    async fn pop_messages(&self, scope: &Scope, limit: u32) -> Result<Vec<Message>> {
        self.run(self.inner.pop_messages(scope, limit)).await
    }

    async fn create_claim(&self, scope: &Scope, spec: ClaimSpec) -> Result<Option<Claim>> {
        self.run(self.inner.create_claim(scope, spec)).await
    }

    async fn get_claim(&self, scope: &Scope, id: &str) -> Result<Claim> {
        self.run(self.inner.get_claim(scope, id)).await
    }

    async fn renew_claim(&self, scope: &Scope, id: &str, ttl: i64, grace: i64) -> Result<()> {
        self.run(self.inner.renew_claim(scope, id, ttl, grace))
            .await
    }

    async fn release_claim(&self, scope: &Scope, id: &str) -> Result<()> {
        self.run(self.inner.release_claim(scope, id)).await
    }

    async fn create_subscription(
        &self,
        scope: &Scope,
        subscription: NewSubscription,
    ) -> Result<(String, bool)> {
        self.run(self.inner.create_subscription(scope, subscription))
            .await
    }

    async fn list_subscriptions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscription>> {
        self.run(self.inner.list_subscriptions(scope, marker, limit))
            .await
    }

    async fn get_subscription(&self, scope: &Scope, id: &str) -> Result<Subscription> {
        self.run(self.inner.get_subscription(scope, id)).await
    }

    async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        update: SubscriptionUpdate,
    ) -> Result<()> {
        self.run(self.inner.update_subscription(scope, id, update))
            .await
    }

    async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<()> {
        self.run(self.inner.delete_subscription(scope, id)).await
    }

    async fn confirm_subscription(&self, scope: &Scope, id: &str, confirmed: bool) -> Result<()> {
        self.run(self.inner.confirm_subscription(scope, id, confirmed))
            .await
    }

    async fn enqueue_notice(
        &self,
        scope: &Scope,
        subscription_id: &str,
        notice: Notice,
    ) -> Result<()> {
        let record = DeliveryRecord::notice(subscription_id, notice).encode()?;
        self.run(
            self.inner
                .enqueue_notice(&queue_key(scope), subscription_id, record),
        )
        .await
    }

    fn outbox(self: Arc<Self>) -> Option<OutboxRef> {
        Some(Arc::new(outbox::MongoOutbox {
            inner: self.inner.clone(),
        }))
    }

    async fn health(&self) -> Result<Health> {
        let started = Instant::now();
        let ping = tokio::time::timeout(
            OPERATION_TIMEOUT,
            self.inner
                .database
                .run_command(doc! {"ping": 1})
                .into_future(),
        )
        .await;
        Ok(Health {
            backend: "mongodb".into(),
            reachable: matches!(ping, Ok(Ok(_))),
            latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_database_comes_from_the_uri_path() {
        let named =
            MongoBackend::connect("mongodb://127.0.0.1:1/pool7?directConnection=true").unwrap();
        assert_eq!(named.database_name(), "pool7");
        let default = MongoBackend::connect("mongodb://127.0.0.1:1").unwrap();
        assert_eq!(default.database_name(), DEFAULT_DATABASE);
        assert!(MongoBackend::connect("mongodb://").is_err());
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = Clock::default();
        clock.set_offset(10_000);
        let later = clock.now();
        clock.set_offset(-10_000);
        assert!(clock.now() >= later);
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::Fixture;

    /// The MongoDB under test; `deploy/test.sh` starts one and sets this.
    fn test_url() -> String {
        std::env::var("ZAQAR_TEST_MONGO_URL")
            .expect("ZAQAR_TEST_MONGO_URL must name a test MongoDB (deploy/test.sh starts one)")
    }

    /// `url` with its database replaced by `database`.
    fn with_database(url: &str, database: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a mongodb:// url");
        let hosts_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (hosts, tail) = rest.split_at(hosts_end);
        let query = tail.find('?').map(|at| &tail[at..]).unwrap_or("");
        format!("{scheme}://{hosts}/{database}{query}")
    }

    /// A backend on a fresh database, so tests never share collections
    /// (the test server slows down as collections grow).
    async fn mongo_fixture() -> Fixture {
        let database = format!("conformance_{}", uuid::Uuid::new_v4().simple());
        let backend = MongoBackend::connect(&with_database(&test_url(), &database))
            .expect("connect to the test mongodb");
        Fixture::new(Arc::new(backend))
    }

    // The test server is far slower than MongoDB on large collections: the
    // concurrency proof runs with 1,000 + 200 messages here (same checks).
    crate::backend_conformance_suite!(mongo_fixture, concurrency = (200, 100));
    // Each fixture has its own database: no other taker leases its deliveries.
    crate::outbox_conformance_suite!(mongo_fixture);

    #[test]
    fn databases_replace_the_uri_path() {
        assert_eq!(
            with_database("mongodb://127.0.0.1:5/?directConnection=true", "d"),
            "mongodb://127.0.0.1:5/d?directConnection=true"
        );
        assert_eq!(
            with_database("mongodb://127.0.0.1:5", "d"),
            "mongodb://127.0.0.1:5/d"
        );
        assert_eq!(
            with_database("mongodb://h:1,h:2/old?a=b", "d"),
            "mongodb://h:1,h:2/d?a=b"
        );
    }

    /// Batches posted concurrently commit in position order: an observer
    /// paging by marker meanwhile sees every message once, in post order
    /// per producer (a batch with lower positions never appears behind the
    /// observer's marker).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn observers_paging_by_marker_never_skip_concurrent_posts() {
        use zaqar_proto::model::{ListQuery, NewMessage, PostBatch, PostLimits};
        const PRODUCERS: usize = 3;
        const BATCHES: usize = 15;
        let fixture = mongo_fixture().await;
        let backend = fixture.backend.clone();
        let scope = Scope::queue(format!("paging-{}", uuid::Uuid::new_v4().simple()), "q").unwrap();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(PRODUCERS));
        let mut producers = Vec::new();
        for producer in 0..PRODUCERS {
            let backend = backend.clone();
            let scope = scope.clone();
            let running = running.clone();
            producers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for batch in 0..BATCHES {
                    let messages = (0..3)
                        .map(|n| NewMessage {
                            body: format!("[{producer},{batch},{n}]"),
                            ttl: None,
                            delay: None,
                        })
                        .collect();
                    let posted = backend
                        .post_messages(
                            &scope,
                            PostBatch {
                                client_id: "producer".into(),
                                messages,
                                request_size: 10,
                                limits: PostLimits {
                                    default_message_ttl: 3600,
                                    max_message_delay: 900,
                                    max_messages_post_size: 262_144,
                                },
                                notify: zaqar_proto::model::NotifyMode::None,
                            },
                        )
                        .await
                        .unwrap();
                    ids.extend(posted);
                }
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                ids
            }));
        }
        let mut query = ListQuery {
            marker: None,
            limit: 7,
            echo: true,
            client_id: "observer".into(),
            include_claimed: true,
            include_delayed: true,
        };
        let mut observed = Vec::new();
        loop {
            let done = running.load(std::sync::atomic::Ordering::SeqCst) == 0;
            let page = backend.list_messages(&scope, &query).await.unwrap();
            if page.messages.is_empty() && done {
                break;
            }
            observed.extend(page.messages.into_iter().map(|message| message.id));
            if page.next_marker.is_some() {
                query.marker = page.next_marker;
            }
        }
        let mut posted = Vec::new();
        for producer in producers {
            posted.push(producer.await.unwrap());
        }
        let all: std::collections::HashSet<&String> = posted.iter().flatten().collect();
        assert_eq!(observed.len(), PRODUCERS * BATCHES * 3, "seen once each");
        assert_eq!(
            observed.iter().collect::<std::collections::HashSet<_>>(),
            all,
            "nothing skipped"
        );
        for ids in &posted {
            let order: Vec<&String> = observed.iter().filter(|id| ids.contains(id)).collect();
            assert_eq!(order, ids.iter().collect::<Vec<_>>(), "post order");
        }
    }

    /// Two nodes of one pool taking deliveries at the same time never
    /// lease the same one, and between them take every one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_nodes_never_take_the_same_delivery() {
        use zaqar_proto::model::{NewMessage, NewSubscription, NotifyMode, PostBatch, PostLimits};
        const SUBSCRIBERS: usize = 3;
        const POSTS: usize = 8;
        let database = format!("outbox_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&test_url(), &database);
        let nodes = [
            Arc::new(MongoBackend::connect(&url).unwrap()),
            Arc::new(MongoBackend::connect(&url).unwrap()),
        ];
        let scope = Scope::queue("outbox", "q").unwrap();
        for n in 0..SUBSCRIBERS {
            let subscription = NewSubscription {
                subscriber: format!("http://example.com/{n}"),
                ttl: 3600,
                options: "{}".into(),
            };
            nodes[0]
                .create_subscription(&scope, subscription)
                .await
                .unwrap();
        }
        for n in 0..POSTS {
            let batch = PostBatch {
                client_id: "producer".into(),
                messages: vec![NewMessage {
                    body: n.to_string(),
                    ttl: None,
                    delay: None,
                }],
                request_size: 10,
                limits: PostLimits {
                    default_message_ttl: 3600,
                    max_message_delay: 900,
                    max_messages_post_size: 262_144,
                },
                notify: NotifyMode::All,
            };
            nodes[n % 2].post_messages(&scope, batch).await.unwrap();
        }
        let takers = nodes.iter().map(|node| {
            let outbox = node.clone().outbox().unwrap();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let taken = outbox.take_due(3, Duration::from_secs(60)).await.unwrap();
                    if taken.is_empty() {
                        return ids;
                    }
                    ids.extend(taken.into_iter().map(|delivery| delivery.key.id));
                }
            })
        });
        let mut all = Vec::new();
        for taker in takers.collect::<Vec<_>>() {
            all.extend(taker.await.unwrap());
        }
        let unique: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "taken twice: {all:?}");
        assert_eq!(all.len(), SUBSCRIBERS * POSTS);
    }

    /// Indexes are created at start and creating them again is harmless.
    #[tokio::test]
    async fn indexes_are_created_idempotently() {
        let database = format!("indexes_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&test_url(), &database);
        let first = MongoBackend::connect(&url).unwrap();
        first.inner.ready().await.unwrap();
        let second = MongoBackend::connect(&url).unwrap();
        second.inner.ready().await.unwrap();
        let names = first.inner.messages.list_index_names().await.unwrap();
        for name in ["queue_positions", "queue_claims", "gc"] {
            assert!(names.contains(&name.to_string()), "{names:?}");
        }
        let names = first.inner.deliveries.list_index_names().await.unwrap();
        for name in ["queue_deliveries", "due", "takers"] {
            assert!(names.contains(&name.to_string()), "{names:?}");
        }
    }
}
