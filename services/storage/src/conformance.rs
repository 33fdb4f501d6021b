//! The backend conformance suite: one set of async tests over the
//! [`Backend`] trait that every backend, and the gRPC client in front of a
//! real storage node, must pass unchanged.
//!
//! Each test works in a fresh project, so tests share a backend safely.
//! Instantiate the suite with [`backend_conformance_suite!`](crate::backend_conformance_suite)
//! and an async factory returning a [`Fixture`]. Tests that need time to pass
//! (expiry) use TTLs of one second, which the storage protocol allows even
//! though the HTTP API's minimum is 60.

// Test code: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use zaqar_proto::ErrorKind;
use zaqar_proto::model::{
    Claim, ClaimRef, ClaimSpec, ListQuery, Message, Namespace, NewMessage, NewSubscription,
    PostBatch, PostLimits, Scope, SubscriptionUpdate,
};

use crate::backend::BackendRef;
use crate::error::StorageError;

/// A backend under test plus whatever must live as long as it (a child
/// process, a temporary directory).
pub struct Fixture {
    /// The backend under test.
    pub backend: BackendRef,
    /// Dropped at the end of the test.
    pub guard: Option<Box<dyn std::any::Any + Send>>,
}

impl Fixture {
    /// A fixture that needs nothing kept alive.
    pub fn new(backend: BackendRef) -> Fixture {
        Fixture {
            backend,
            guard: None,
        }
    }
}

/// Generates one `#[tokio::test]` per conformance test, each calling
/// `$factory().await` for a fresh [`Fixture`].
///
/// `backend_conformance_suite!(factory, concurrency = (PRELOADED, PRODUCED))`
/// sizes the concurrency proof (default 10,000 + 2,000 messages) for
/// backends whose test servers are slow; it checks the same properties.
#[macro_export]
macro_rules! backend_conformance_suite {
    ($factory:path) => {
        $crate::backend_conformance_suite!($factory, concurrency = (10_000, 2_000));
    };
    ($factory:path, concurrency = ($preloaded:expr, $produced:expr)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_consumers_lose_and_duplicate_nothing() {
            let fixture: $crate::conformance::Fixture = $factory().await;
            $crate::conformance::concurrent_consumers_lose_and_duplicate_nothing_sized(
                fixture.backend.clone(),
                $preloaded,
                $produced,
            )
            .await;
            drop(fixture);
        }
        $crate::backend_conformance_suite!(@tests $factory;
            queue_create_is_idempotent_and_keeps_metadata,
            queue_get_and_batch_get,
            queue_update_needs_the_queue_and_honours_revisions,
            queue_delete_removes_messages_and_is_idempotent,
            queue_listing_pages_by_name_per_project,
            queue_names_are_scoped_by_project_and_namespace,
            stats_of_missing_queue_are_zero,
            stats_count_claimed_free_and_total,
            purge_deletes_unclaimed_messages_and_subscriptions,
            post_creates_the_queue_and_keeps_order,
            post_applies_default_ttls,
            post_checks_the_queue_size_limit,
            post_batches_are_judged_one_by_one,
            list_pages_with_markers,
            list_filters_before_the_limit,
            list_handles_missing_queues_and_bogus_markers,
            expired_messages_never_show,
            get_message_is_scoped_to_its_queue,
            get_messages_by_id,
            bodies_come_back_byte_for_byte,
            delete_message_on_missing_queue_or_message_succeeds,
            delete_message_follows_the_claim_rules,
            delete_message_with_expired_claims,
            delete_each_judges_every_item,
            delete_messages_by_id_ignores_claims,
            delete_messages_can_require_claims,
            pop_takes_the_oldest_unclaimed_messages,
            delayed_messages_wait,
            delay_is_ignored_on_plain_queues,
            claim_takes_oldest_messages_up_to_the_limit,
            create_claims_share_out_the_oldest_messages,
            claim_lifecycle_get_renew_release,
            claim_extends_short_lived_messages,
            claim_expiry_frees_messages,
            claim_of_deleted_messages_lists_nothing,
            dead_letter_queue_receives_overclaimed_messages,
            subscriptions_are_unique_per_subscriber,
            subscriptions_list_get_update_delete,
            subscriptions_expire,
            health_reports_reachable
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let fixture: $crate::conformance::Fixture = $factory().await;
                $crate::conformance::$name(fixture.backend.clone()).await;
                drop(fixture);
            }
        )*
    };
}

const CLIENT_A: &str = "3381af922b9e11e3b19171861300734c";
const CLIENT_B: &str = "550893e02b6e11e3835a5cf9dd723691";

fn fresh_project() -> String {
    format!("conformance-{}", uuid::Uuid::new_v4().simple())
}

fn queue(name: &str) -> Scope {
    Scope::queue(fresh_project(), name).expect("valid scope")
}

fn limits() -> PostLimits {
    PostLimits {
        default_message_ttl: 3600,
        max_message_delay: 900,
        max_messages_post_size: 262_144,
    }
}

fn message(body: &str) -> NewMessage {
    NewMessage {
        body: body.to_string(),
        ttl: None,
        delay: None,
    }
}

fn batch(client: &str, messages: Vec<NewMessage>) -> PostBatch {
    PostBatch {
        client_id: client.to_string(),
        messages,
        request_size: 100,
        limits: limits(),
        notify: zaqar_proto::model::NotifyMode::None,
    }
}

async fn post_n(backend: &BackendRef, scope: &Scope, client: &str, n: usize) -> Vec<String> {
    let messages = (0..n).map(|i| message(&format!("{{\"n\":{i}}}"))).collect();
    backend
        .post_messages(scope, batch(client, messages))
        .await
        .expect("post")
}

async fn post_with(backend: &BackendRef, scope: &Scope, messages: Vec<NewMessage>) -> Vec<String> {
    backend
        .post_messages(scope, batch(CLIENT_A, messages))
        .await
        .expect("post")
}

fn query(limit: u32) -> ListQuery {
    ListQuery {
        marker: None,
        limit,
        echo: true,
        client_id: CLIENT_A.to_string(),
        include_claimed: false,
        include_delayed: false,
    }
}

async fn list(backend: &BackendRef, scope: &Scope, query: &ListQuery) -> Vec<Message> {
    backend
        .list_messages(scope, query)
        .await
        .expect("list")
        .messages
}

fn ids_of(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|message| message.id.clone()).collect()
}

fn spec(ttl: i64, grace: i64, limit: u32) -> ClaimSpec {
    ClaimSpec { ttl, grace, limit }
}

async fn claim(backend: &BackendRef, scope: &Scope, spec: ClaimSpec) -> zaqar_proto::model::Claim {
    backend
        .create_claim(scope, spec)
        .await
        .expect("claim")
        .expect("something to claim")
}

fn assert_kind<T: std::fmt::Debug>(result: crate::Result<T>, kind: ErrorKind) {
    match result {
        Err(error) => assert_eq!(error.kind(), kind, "unexpected error {error}"),
        Ok(value) => panic!("expected {kind:?}, got {value:?}"),
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Creating twice reports `created` once and never changes the metadata.
pub async fn queue_create_is_idempotent_and_keeps_metadata(backend: BackendRef) {
    let scope = queue("orders");
    assert!(backend.create_queue(&scope, r#"{"a":1}"#).await.unwrap());
    assert!(!backend.create_queue(&scope, r#"{"a":2}"#).await.unwrap());
    let record = backend.get_queue(&scope).await.unwrap().unwrap();
    let metadata: serde_json::Value = serde_json::from_str(&record.metadata).unwrap();
    assert_eq!(metadata, serde_json::json!({"a": 1}));
    assert!(backend.queue_exists(&scope).await.unwrap());
}

/// Missing queues read as `None`; batch reads keep the request order.
pub async fn queue_get_and_batch_get(backend: BackendRef) {
    let first = queue("first");
    let missing = first.sibling("missing").unwrap();
    let second = first.sibling("second").unwrap();
    assert!(backend.get_queue(&missing).await.unwrap().is_none());
    assert!(!backend.queue_exists(&missing).await.unwrap());
    backend.create_queue(&first, r#"{"n":1}"#).await.unwrap();
    backend.create_queue(&second, r#"{"n":2}"#).await.unwrap();
    let records = backend
        .get_queues(&[second.clone(), missing, first.clone()])
        .await
        .unwrap();
    assert_eq!(records.len(), 3);
    assert!(records[0].as_ref().unwrap().metadata.contains("2"));
    assert!(records[1].is_none());
    assert!(records[2].as_ref().unwrap().metadata.contains("1"));
}

/// Updates need an existing queue; a stale expected revision conflicts.
pub async fn queue_update_needs_the_queue_and_honours_revisions(backend: BackendRef) {
    let scope = queue("meta");
    assert_kind(
        backend.update_queue_metadata(&scope, "{}", None).await,
        ErrorKind::NotFound,
    );
    assert!(
        !backend.queue_exists(&scope).await.unwrap(),
        "update must not create"
    );
    backend.create_queue(&scope, "{}").await.unwrap();
    let revision = backend.get_queue(&scope).await.unwrap().unwrap().revision;
    let next = backend
        .update_queue_metadata(&scope, r#"{"team":"a"}"#, Some(revision))
        .await
        .unwrap();
    assert!(next > revision);
    assert_kind(
        backend
            .update_queue_metadata(&scope, r#"{"team":"b"}"#, Some(revision))
            .await,
        ErrorKind::Conflict,
    );
    let record = backend.get_queue(&scope).await.unwrap().unwrap();
    assert!(record.metadata.contains("\"a\""));
    assert_eq!(record.revision, next);
    backend
        .update_queue_metadata(&scope, r#"{"team":"c"}"#, None)
        .await
        .unwrap();
    assert!(
        backend
            .get_queue(&scope)
            .await
            .unwrap()
            .unwrap()
            .metadata
            .contains("\"c\"")
    );
}

/// Deleting removes messages and claims, keeps subscriptions, and is idempotent.
pub async fn queue_delete_removes_messages_and_is_idempotent(backend: BackendRef) {
    let scope = queue("doomed");
    backend.delete_queue(&scope).await.unwrap();
    let ids = post_n(&backend, &scope, CLIENT_A, 3).await;
    claim(&backend, &scope, spec(60, 60, 1)).await;
    let (subscription, _) = backend
        .create_subscription(
            &scope,
            NewSubscription {
                subscriber: "http://example.com/hook".into(),
                ttl: 3600,
                options: "{}".into(),
            },
        )
        .await
        .unwrap();
    backend.delete_queue(&scope).await.unwrap();
    assert!(!backend.queue_exists(&scope).await.unwrap());
    assert_kind(
        backend.get_messages(&scope, &ids).await,
        ErrorKind::NotFound,
    );
    backend.delete_messages(&scope, &ids, None).await.unwrap();
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.exists, stats.total), (false, 0));
    assert!(
        backend
            .get_subscription(&scope, &subscription)
            .await
            .is_ok(),
        "subscriptions outlive their queue"
    );
    let again = post_n(&backend, &scope, CLIENT_A, 1).await;
    assert_eq!(list(&backend, &scope, &query(10)).await.len(), 1);
    assert_ne!(again[0], ids[0]);
}

/// Listing returns a project's names in byte order, pages by marker, counts
/// the project's queues and never shows other projects or namespaces.
pub async fn queue_listing_pages_by_name_per_project(backend: BackendRef) {
    let project = fresh_project();
    let empty = backend
        .list_queues(&project, Namespace::Queue, None, 10)
        .await
        .unwrap();
    assert!(empty.names.is_empty());
    assert_eq!(empty.total, 0);
    let names = [
        "beta", "Alpha", "alpha", "gamma.1", "gamma-2", "delta_3", "zulu",
    ];
    for name in names {
        backend
            .create_queue(&Scope::queue(project.clone(), name).unwrap(), "{}")
            .await
            .unwrap();
    }
    // Auto-created queues are listed too.
    post_n(
        &backend,
        &Scope::queue(project.clone(), "epsilon").unwrap(),
        CLIENT_A,
        1,
    )
    .await;
    // Neighbours that must never show.
    let neighbour = format!("{project}0");
    backend
        .create_queue(&Scope::queue(neighbour, "aaa").unwrap(), "{}")
        .await
        .unwrap();
    backend
        .create_queue(
            &Scope::new(project.clone(), Namespace::Topic, "topic").unwrap(),
            "{}",
        )
        .await
        .unwrap();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.push("epsilon".into());
    expected.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = backend
            .list_queues(&project, Namespace::Queue, marker.as_deref(), 3)
            .await
            .unwrap();
        assert_eq!(page.total, 8);
        if page.names.is_empty() {
            break;
        }
        assert!(page.names.len() <= 3);
        marker = page.names.last().cloned();
        seen.extend(page.names);
    }
    assert_eq!(seen, expected);
    let after = backend
        .list_queues(&project, Namespace::Queue, Some("zzz"), 10)
        .await
        .unwrap();
    assert!(after.names.is_empty());
    let between = backend
        .list_queues(&project, Namespace::Queue, Some("b"), 2)
        .await
        .unwrap();
    assert_eq!(
        between.names,
        vec!["beta".to_string(), "delta_3".to_string()]
    );
    backend
        .delete_queue(&Scope::queue(project.clone(), "beta").unwrap())
        .await
        .unwrap();
    let after_delete = backend
        .list_queues(&project, Namespace::Queue, None, 20)
        .await
        .unwrap();
    assert_eq!(after_delete.total, 7);
    assert!(!after_delete.names.contains(&"beta".to_string()));
    let topics = backend
        .list_queues(&project, Namespace::Topic, None, 20)
        .await
        .unwrap();
    assert_eq!(topics.names, vec!["topic".to_string()]);
}

/// The same name in another project or namespace is another queue.
pub async fn queue_names_are_scoped_by_project_and_namespace(backend: BackendRef) {
    let scope = queue("shared");
    let other_project = Scope::queue(fresh_project(), "shared").unwrap();
    let topic = Scope::new(scope.project(), Namespace::Topic, "shared").unwrap();
    let ids = post_n(&backend, &scope, CLIENT_A, 2).await;
    for other in [&other_project, &topic] {
        assert!(!backend.queue_exists(other).await.unwrap());
        assert!(list(&backend, other, &query(10)).await.is_empty());
        assert_kind(
            backend.get_message(other, &ids[0]).await,
            ErrorKind::NotFound,
        );
        assert!(
            backend
                .create_claim(other, spec(60, 60, 10))
                .await
                .unwrap()
                .is_none()
        );
        backend.create_queue(other, "{}").await.unwrap();
        assert_kind(
            backend.get_message(other, &ids[0]).await,
            ErrorKind::NotFound,
        );
        assert!(backend.get_messages(other, &ids).await.unwrap().is_empty());
        backend.delete_messages(other, &ids, None).await.unwrap();
        backend.delete_message(other, &ids[0], None).await.unwrap();
        assert_eq!(backend.queue_stats(other).await.unwrap().total, 0);
    }
    assert_eq!(list(&backend, &scope, &query(10)).await.len(), 2);
}

/// Stats of a queue that never existed are all zero.
pub async fn stats_of_missing_queue_are_zero(backend: BackendRef) {
    let stats = backend.queue_stats(&queue("ghost")).await.unwrap();
    assert!(!stats.exists);
    assert_eq!((stats.claimed, stats.free, stats.total), (0, 0, 0));
    assert!(stats.oldest.is_none() && stats.newest.is_none());
}

/// The counts Zaqar's own tests check (contract §4.8).
pub async fn stats_count_claimed_free_and_total(backend: BackendRef) {
    let scope = queue("counted");
    let ids = post_n(&backend, &scope, CLIENT_A, 20).await;
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.claimed, stats.free, stats.total), (0, 20, 20));
    let oldest = stats.oldest.unwrap();
    let newest = stats.newest.unwrap();
    assert_eq!(oldest.id, ids[0]);
    assert_eq!(newest.id, ids[19]);
    assert!(oldest.age >= 0 && oldest.created > 1_600_000_000);
    let first = claim(&backend, &scope, spec(60, 60, 15)).await;
    assert_eq!(first.messages.len(), 15);
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.claimed, stats.free, stats.total), (15, 5, 20));
    assert_eq!(
        stats.oldest.unwrap().id,
        ids[0],
        "claimed messages count as oldest"
    );

    let scope = queue("counted-again");
    post_n(&backend, &scope, CLIENT_A, 15).await;
    let held = claim(&backend, &scope, spec(60, 60, 10)).await;
    let claim_ref = ClaimRef::Id(held.id.clone());
    backend
        .delete_message(&scope, &held.messages[0].id, Some(&claim_ref))
        .await
        .unwrap();
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.total, stats.claimed, stats.free), (14, 9, 5));
    let two = ids_of(&held.messages[1..3]);
    backend.delete_messages(&scope, &two, None).await.unwrap();
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.total, stats.claimed, stats.free), (12, 7, 5));
    backend.release_claim(&scope, &held.id).await.unwrap();
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.total, stats.claimed, stats.free), (12, 0, 12));
}

/// Purge removes unclaimed messages (claimed ones stay) and subscriptions on request.
pub async fn purge_deletes_unclaimed_messages_and_subscriptions(backend: BackendRef) {
    let scope = queue("purged");
    backend.purge_queue(&scope, true, true).await.unwrap();
    assert!(
        !backend.queue_exists(&scope).await.unwrap(),
        "purge must not create"
    );
    let ids = post_n(&backend, &scope, CLIENT_A, 5).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    let subscribe = NewSubscription {
        subscriber: "http://example.com/a".into(),
        ttl: 3600,
        options: "{}".into(),
    };
    backend
        .create_subscription(&scope, subscribe.clone())
        .await
        .unwrap();
    backend.purge_queue(&scope, true, false).await.unwrap();
    let left = backend.get_messages(&scope, &ids).await.unwrap();
    assert_eq!(ids_of(&left), ids_of(&held.messages));
    assert_eq!(
        backend
            .list_subscriptions(&scope, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    backend.purge_queue(&scope, false, true).await.unwrap();
    assert!(
        backend
            .list_subscriptions(&scope, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(backend.get_messages(&scope, &ids).await.unwrap().len(), 2);
    assert!(backend.queue_exists(&scope).await.unwrap());
}

/// Posting creates the queue; messages list in post order with their bodies.
pub async fn post_creates_the_queue_and_keeps_order(backend: BackendRef) {
    let scope = queue("fifo");
    let first = post_with(
        &backend,
        &scope,
        vec![
            message(r#"{"a":[1,2]}"#),
            message("\"text\""),
            message("null"),
        ],
    )
    .await;
    let second = post_n(&backend, &scope, CLIENT_A, 2).await;
    assert!(backend.queue_exists(&scope).await.unwrap());
    let listed = list(&backend, &scope, &query(10)).await;
    let mut expected = first.clone();
    expected.extend(second);
    assert_eq!(ids_of(&listed), expected);
    let bodies: Vec<serde_json::Value> = listed
        .iter()
        .map(|message| serde_json::from_str(&message.body).unwrap())
        .collect();
    assert_eq!(bodies[0], serde_json::json!({"a": [1, 2]}));
    assert_eq!(bodies[1], serde_json::json!("text"));
    assert_eq!(bodies[2], serde_json::Value::Null);
    assert!(
        listed
            .iter()
            .all(|message| message.claim_id.is_none() && message.age >= 0)
    );
    let unique: HashSet<_> = expected.iter().collect();
    assert_eq!(unique.len(), expected.len());
}

/// Missing TTLs take the queue default, else the limits' default.
pub async fn post_applies_default_ttls(backend: BackendRef) {
    let plain = queue("plain-ttl");
    let ids = post_with(
        &backend,
        &plain,
        vec![
            message("1"),
            NewMessage {
                ttl: Some(120),
                ..message("2")
            },
        ],
    )
    .await;
    let got = backend.get_messages(&plain, &ids).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.ttl).collect::<Vec<_>>(),
        vec![3600, 120]
    );

    let custom = plain.sibling("custom-ttl").unwrap();
    backend
        .create_queue(&custom, r#"{"_default_message_ttl": 600}"#)
        .await
        .unwrap();
    let ids = post_with(&backend, &custom, vec![message("1")]).await;
    assert_eq!(
        backend.get_message(&custom, &ids[0]).await.unwrap().ttl,
        600
    );

    backend
        .update_queue_metadata(&custom, r#"{"_default_message_ttl": 900}"#, None)
        .await
        .unwrap();
    let ids = post_with(&backend, &custom, vec![message("1")]).await;
    assert_eq!(
        backend.get_message(&custom, &ids[0]).await.unwrap().ttl,
        900
    );
}

/// `_max_messages_post_size` caps the request size; the queue is created anyway.
pub async fn post_checks_the_queue_size_limit(backend: BackendRef) {
    let scope = queue("small");
    backend
        .create_queue(&scope, r#"{"_max_messages_post_size": 1023}"#)
        .await
        .unwrap();
    let mut too_big = batch(CLIENT_A, vec![message("1")]);
    too_big.request_size = 1024;
    let error = backend.post_messages(&scope, too_big).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(error.to_string().contains("1023"), "{error}");
    assert!(list(&backend, &scope, &query(10)).await.is_empty());
    let mut fits = batch(CLIENT_A, vec![message("1")]);
    fits.request_size = 1023;
    backend.post_messages(&scope, fits).await.unwrap();

    let fresh = scope.sibling("fresh").unwrap();
    let mut huge = batch(CLIENT_A, vec![message("1")]);
    huge.request_size = 10_000_000;
    backend.post_messages(&fresh, huge).await.unwrap();
    assert!(backend.queue_exists(&fresh).await.unwrap());
}

/// Coalesced posts: every batch of one call is accepted or refused on its
/// own (size limit, delay bounds), accepted ones are all stored with their
/// own client ids, and the queue is created even when all are refused.
pub async fn post_batches_are_judged_one_by_one(backend: BackendRef) {
    let scope = queue("coalesced");
    backend
        .create_queue(&scope, r#"{"_max_messages_post_size": 1023}"#)
        .await
        .unwrap();
    let first = batch(CLIENT_A, vec![message("1"), message("2")]);
    let mut too_big = batch(CLIENT_B, vec![message("x")]);
    too_big.request_size = 1024;
    let last = batch(CLIENT_B, vec![message("3")]);
    let results = backend
        .post_batches(&scope, vec![first, too_big, last])
        .await
        .expect("the call itself succeeds");
    assert_eq!(results.len(), 3);
    let first_ids = results[0].as_ref().expect("first batch stored").clone();
    assert_eq!(first_ids.len(), 2);
    let refused = results[1].as_ref().expect_err("the big batch is refused");
    assert_eq!(refused.kind(), ErrorKind::Invalid);
    assert!(refused.to_string().contains("1023"), "{refused}");
    let last_ids = results[2].as_ref().expect("last batch stored").clone();
    assert_eq!(last_ids.len(), 1);

    let listed = list(&backend, &scope, &query(10)).await;
    let mut bodies: Vec<&str> = listed.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["1", "2", "3"]);
    let stored: Vec<String> = listed.iter().map(|m| m.id.clone()).collect();
    for id in first_ids.iter().chain(&last_ids) {
        assert!(stored.contains(id), "{id} not stored");
    }
    // The batch's own order holds inside the listing.
    let one = stored.iter().position(|id| *id == first_ids[0]).unwrap();
    let two = stored.iter().position(|id| *id == first_ids[1]).unwrap();
    assert!(one < two);
    // Client ids stay per batch: echo=false for CLIENT_B hides only "3".
    let mut hidden = query(10);
    hidden.echo = false;
    hidden.client_id = CLIENT_B.into();
    let others: Vec<String> = list(&backend, &scope, &hidden)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(others.len(), 2, "{others:?}");
    assert!(!others.contains(&"3".to_string()));

    // Delay bounds are judged per batch too, on a delay queue.
    let delayed = scope.sibling("coalesced-delay").unwrap();
    backend
        .create_queue(&delayed, r#"{"_default_message_delay": 5}"#)
        .await
        .unwrap();
    let mut bad = batch(CLIENT_A, vec![message("late")]);
    bad.messages[0].delay = Some(10_000);
    let good = batch(CLIENT_A, vec![message("fine")]);
    let results = backend
        .post_batches(&delayed, vec![bad, good])
        .await
        .unwrap();
    assert_eq!(
        results[0].as_ref().map_err(StorageError::kind).unwrap_err(),
        ErrorKind::Invalid
    );
    assert_eq!(results[1].as_ref().unwrap().len(), 1);

    // A call whose every batch is refused stores nothing.
    let mut bad = batch(CLIENT_A, vec![message("x")]);
    bad.request_size = 5000;
    let results = backend.post_batches(&scope, vec![bad]).await.unwrap();
    assert!(results[0].is_err());
    assert_eq!(list(&backend, &scope, &query(10)).await.len(), 3);
}

/// Ten messages paged by three: 3+3+3+1, then an empty page without marker.
pub async fn list_pages_with_markers(backend: BackendRef) {
    let scope = queue("paged");
    let ids = post_n(&backend, &scope, CLIENT_A, 10).await;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut page_query = query(3);
    loop {
        let page = backend.list_messages(&scope, &page_query).await.unwrap();
        sizes.push(page.messages.len());
        if page.messages.is_empty() {
            assert!(page.next_marker.is_none());
            break;
        }
        seen.extend(ids_of(&page.messages));
        page_query.marker = page.next_marker;
        assert!(sizes.len() < 10, "paging must end");
    }
    assert_eq!(sizes, vec![3, 3, 3, 1, 0]);
    assert_eq!(seen, ids);
}

/// Echo, claimed and delayed filters apply before the limit.
pub async fn list_filters_before_the_limit(backend: BackendRef) {
    let scope = queue("filtered");
    let own = post_n(&backend, &scope, CLIENT_A, 2).await;
    let others = post_n(&backend, &scope, CLIENT_B, 2).await;
    let mut no_echo = query(2);
    no_echo.echo = false;
    assert_eq!(ids_of(&list(&backend, &scope, &no_echo).await), others);
    no_echo.client_id = CLIENT_B.to_string();
    assert_eq!(ids_of(&list(&backend, &scope, &no_echo).await), own);

    let held = claim(&backend, &scope, spec(60, 60, 3)).await;
    assert_eq!(held.messages.len(), 3);
    let visible = list(&backend, &scope, &query(10)).await;
    assert_eq!(ids_of(&visible), vec![others[1].clone()]);
    let mut with_claimed = query(10);
    with_claimed.include_claimed = true;
    let all = list(&backend, &scope, &with_claimed).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].claim_id.as_deref(), Some(held.id.as_str()));
    assert!(all[3].claim_id.is_none());
    let mut claimed_no_echo = with_claimed.clone();
    claimed_no_echo.echo = false;
    assert_eq!(
        ids_of(&list(&backend, &scope, &claimed_no_echo).await),
        others
    );
}

/// Missing queues list empty; a marker that is not one of ours lists nothing.
pub async fn list_handles_missing_queues_and_bogus_markers(backend: BackendRef) {
    let scope = queue("listless");
    let page = backend.list_messages(&scope, &query(10)).await.unwrap();
    assert!(page.messages.is_empty() && page.next_marker.is_none());
    post_n(&backend, &scope, CLIENT_A, 3).await;
    let mut bogus = query(10);
    bogus.marker = Some("sfhlsfdjh2048".into());
    assert!(list(&backend, &scope, &bogus).await.is_empty());
    bogus.marker = Some("999999".into());
    assert!(list(&backend, &scope, &bogus).await.is_empty());
}

/// Expired messages are not listed, returned, claimed, popped or counted.
pub async fn expired_messages_never_show(backend: BackendRef) {
    let scope = queue("expiring");
    let short = post_with(
        &backend,
        &scope,
        vec![NewMessage {
            ttl: Some(1),
            ..message("\"short\"")
        }],
    )
    .await;
    let long = post_n(&backend, &scope, CLIENT_A, 1).await;
    assert_eq!(backend.queue_stats(&scope).await.unwrap().total, 2);
    sleep_ms(1200).await;
    assert_eq!(ids_of(&list(&backend, &scope, &query(10)).await), long);
    assert_kind(
        backend.get_message(&scope, &short[0]).await,
        ErrorKind::NotFound,
    );
    assert!(
        backend
            .get_messages(&scope, &short)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.total, stats.free), (1, 1));
    assert_eq!(stats.oldest.unwrap().id, long[0]);
    let popped = backend.pop_messages(&scope, 5).await.unwrap();
    assert_eq!(ids_of(&popped), long);
    let only_expired = scope.sibling("only-expired").unwrap();
    post_with(
        &backend,
        &only_expired,
        vec![NewMessage {
            ttl: Some(1),
            ..message("1")
        }],
    )
    .await;
    sleep_ms(1200).await;
    let stats = backend.queue_stats(&only_expired).await.unwrap();
    assert_eq!(stats.total, 0);
    assert!(stats.oldest.is_none());
    assert!(
        backend
            .create_claim(&only_expired, spec(60, 60, 10))
            .await
            .unwrap()
            .is_none()
    );
}

/// A message id only names a message within its own queue and project.
pub async fn get_message_is_scoped_to_its_queue(backend: BackendRef) {
    let scope = queue("home");
    let ids = post_n(&backend, &scope, CLIENT_A, 1).await;
    let got = backend.get_message(&scope, &ids[0]).await.unwrap();
    assert_eq!(got.id, ids[0]);
    assert_eq!(got.ttl, 3600);
    let neighbour = scope.sibling("neighbour").unwrap();
    backend.create_queue(&neighbour, "{}").await.unwrap();
    assert_kind(
        backend.get_message(&neighbour, &ids[0]).await,
        ErrorKind::NotFound,
    );
    let stranger = Scope::queue(fresh_project(), "home").unwrap();
    assert_kind(
        backend.get_message(&stranger, &ids[0]).await,
        ErrorKind::NotFound,
    );
    assert_kind(backend.get_message(&scope, "a").await, ErrorKind::NotFound);
    assert_kind(
        backend
            .get_message(&scope.sibling("nowhere").unwrap(), &ids[0])
            .await,
        ErrorKind::NotFound,
    );
}

/// Get-by-ids: missing queue is `NotFound`; unknown ids are skipped.
pub async fn get_messages_by_id(backend: BackendRef) {
    let scope = queue("by-id");
    let unknown = vec!["a".to_string(), "b".to_string()];
    assert_kind(
        backend.get_messages(&scope, &unknown).await,
        ErrorKind::NotFound,
    );
    let ids = post_n(&backend, &scope, CLIENT_A, 3).await;
    assert!(
        backend
            .get_messages(&scope, &unknown)
            .await
            .unwrap()
            .is_empty()
    );
    let asked = vec![
        ids[2].clone(),
        "-1".to_string(),
        ids[0].clone(),
        ids[2].clone(),
    ];
    let got = backend.get_messages(&scope, &asked).await.unwrap();
    let got_ids: HashSet<_> = ids_of(&got).into_iter().collect();
    assert_eq!(got.len(), 2);
    assert!(got_ids.contains(&ids[0]) && got_ids.contains(&ids[2]));
    let held = claim(&backend, &scope, spec(60, 60, 1)).await;
    let claimed = backend.get_messages(&scope, &ids[..1]).await.unwrap();
    assert_eq!(claimed[0].claim_id.as_deref(), Some(held.id.as_str()));
}

/// Bodies come back exactly as posted from every read: non-ASCII text,
/// escapes, and a body of 100,000 bytes.
pub async fn bodies_come_back_byte_for_byte(backend: BackendRef) {
    let scope = queue("bodies");
    let large = format!("{{\"data\":\"{}\"}}", "x".repeat(100_000 - 11));
    let bodies = [
        "{\"text\":\"héllo – 日本語 🎉\"}".to_string(),
        "\"\\u00ff \\\"quoted\\\" \\\\ back\"".to_string(),
        large,
        "null".to_string(),
        "[0,-1.5e3,true]".to_string(),
    ];
    let ids = post_with(
        &backend,
        &scope,
        bodies.iter().map(|b| message(b)).collect(),
    )
    .await;
    let posted: Vec<(String, String)> = ids.iter().cloned().zip(bodies.iter().cloned()).collect();
    let pairs = |messages: Vec<Message>| -> Vec<(String, String)> {
        messages.into_iter().map(|m| (m.id, m.body)).collect()
    };
    assert_eq!(pairs(list(&backend, &scope, &query(10)).await), posted);
    let got = backend.get_messages(&scope, &ids[1..3]).await.unwrap();
    assert_eq!(pairs(got), posted[1..3]);
    let held = claim(&backend, &scope, spec(60, 60, 3)).await;
    assert_eq!(pairs(held.messages.clone()), posted[..3]);
    backend
        .renew_claim(&scope, &held.id, 120, 60)
        .await
        .unwrap();
    let again = backend.get_claim(&scope, &held.id).await.unwrap();
    assert_eq!(pairs(again.messages), posted[..3]);
    backend.release_claim(&scope, &held.id).await.unwrap();
    let popped = backend.pop_messages(&scope, 5).await.unwrap();
    assert_eq!(pairs(popped), posted);
}

/// Deleting on a missing queue, or a missing or malformed id, is success.
pub async fn delete_message_on_missing_queue_or_message_succeeds(backend: BackendRef) {
    let scope = queue("nothing-here");
    let claim_ref = ClaimRef::Id(zaqar_proto::model::new_id());
    backend.delete_message(&scope, "a", None).await.unwrap();
    backend
        .delete_message(&scope, &zaqar_proto::model::new_id(), Some(&claim_ref))
        .await
        .unwrap();
    backend
        .delete_messages(&scope, &["a".into(), "b".into()], None)
        .await
        .unwrap();
    assert!(!backend.queue_exists(&scope).await.unwrap());
    let ids = post_n(&backend, &scope, CLIENT_A, 1).await;
    backend.delete_message(&scope, "-1", None).await.unwrap();
    backend.delete_message(&scope, &ids[0], None).await.unwrap();
    backend.delete_message(&scope, &ids[0], None).await.unwrap();
    assert_kind(
        backend.get_message(&scope, &ids[0]).await,
        ErrorKind::NotFound,
    );
}

/// The single-message delete decision table (contract §2.3.7, §5.3).
pub async fn delete_message_follows_the_claim_rules(backend: BackendRef) {
    let scope = queue("guarded");
    let ids = post_n(&backend, &scope, CLIENT_A, 4).await;
    // D4: a malformed claim id on an existing message is refused.
    assert_kind(
        backend
            .delete_message(&scope, &ids[3], Some(&ClaimRef::Malformed))
            .await,
        ErrorKind::Invalid,
    );
    // D7: a well-formed claim id on a message never claimed.
    let unknown = ClaimRef::Id(zaqar_proto::model::new_id());
    assert_kind(
        backend
            .delete_message(&scope, &ids[3], Some(&unknown))
            .await,
        ErrorKind::ClaimExpired,
    );
    assert!(backend.get_message(&scope, &ids[3]).await.is_ok());

    let first = claim(&backend, &scope, spec(60, 60, 2)).await;
    let second = claim(&backend, &scope, spec(60, 60, 1)).await;
    let first_ref = ClaimRef::Id(first.id.clone());
    let second_ref = ClaimRef::Id(second.id.clone());
    // D1: claimed, no claim id.
    assert_kind(
        backend.delete_message(&scope, &ids[0], None).await,
        ErrorKind::ClaimMismatch,
    );
    // D8: claimed by another active claim.
    assert_kind(
        backend
            .delete_message(&scope, &ids[0], Some(&second_ref))
            .await,
        ErrorKind::ClaimMismatch,
    );
    // D9: claimed, well-formed unknown claim id.
    assert_kind(
        backend
            .delete_message(&scope, &ids[0], Some(&unknown))
            .await,
        ErrorKind::ClaimMismatch,
    );
    // D2, D3: the right claim deletes, and deleting again succeeds.
    backend
        .delete_message(&scope, &ids[0], Some(&first_ref))
        .await
        .unwrap();
    backend
        .delete_message(&scope, &ids[0], Some(&first_ref))
        .await
        .unwrap();
    assert_kind(
        backend.get_message(&scope, &ids[0]).await,
        ErrorKind::NotFound,
    );
    // D6: after release the claim id no longer deletes; the message survives.
    backend.release_claim(&scope, &first.id).await.unwrap();
    assert_kind(
        backend
            .delete_message(&scope, &ids[1], Some(&first_ref))
            .await,
        ErrorKind::ClaimExpired,
    );
    assert!(backend.get_message(&scope, &ids[1]).await.is_ok());
    backend.delete_message(&scope, &ids[1], None).await.unwrap();
    backend
        .delete_message(&scope, &ids[2], Some(&second_ref))
        .await
        .unwrap();
}

/// Coalesced single deletes: each item gets exactly the outcome
/// `delete_message` would give it, in request order (a repeated id is
/// deleted by the first request and then found gone).
pub async fn delete_each_judges_every_item(backend: BackendRef) {
    let scope = queue("each");
    let ids = post_n(&backend, &scope, CLIENT_A, 5).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    let held_ref = ClaimRef::Id(held.id.clone());
    let unknown = ClaimRef::Id(zaqar_proto::model::new_id());
    let results = backend
        .delete_each(
            &scope,
            vec![
                (ids[0].clone(), Some(held_ref.clone())),
                (ids[0].clone(), Some(held_ref.clone())),
                (ids[1].clone(), None),
                (ids[2].clone(), Some(unknown)),
                (ids[3].clone(), Some(ClaimRef::Malformed)),
                (ids[4].clone(), None),
                (zaqar_proto::model::new_id(), None),
            ],
        )
        .await
        .expect("the call itself succeeds");
    let kinds: Vec<Option<ErrorKind>> = results
        .iter()
        .map(|result| result.as_ref().err().map(StorageError::kind))
        .collect();
    assert_eq!(
        kinds,
        [
            None,
            None,
            Some(ErrorKind::ClaimMismatch),
            Some(ErrorKind::ClaimExpired),
            Some(ErrorKind::Invalid),
            None,
            None,
        ]
    );
    let left: Vec<String> = list(&backend, &scope, &{
        let mut all = query(10);
        all.include_claimed = true;
        all
    })
    .await
    .into_iter()
    .map(|m| m.id)
    .collect();
    assert_eq!(left, [ids[1].clone(), ids[2].clone(), ids[3].clone()]);

    // On a missing queue every item succeeds.
    let missing = scope.sibling("each-missing").unwrap();
    let results = backend
        .delete_each(&missing, vec![(ids[1].clone(), None)])
        .await
        .unwrap();
    assert!(results[0].is_ok());
}

/// Coalesced claims: the claims of one call share out the messages, each
/// taking its own (never one another's), each up to its limit and in
/// position order, with its own TTL; a missing queue gives none to all.
pub async fn create_claims_share_out_the_oldest_messages(backend: BackendRef) {
    let scope = queue("shared");
    let ids = post_n(&backend, &scope, CLIENT_A, 7).await;
    let specs = vec![
        spec(60, 60, 3),
        spec(120, 30, 2),
        spec(60, 60, 5),
        spec(60, 60, 1),
    ];
    let outcomes = backend
        .create_claims(&scope, specs.clone())
        .await
        .expect("the call itself succeeds");
    assert_eq!(outcomes.len(), 4);
    let claims: Vec<Option<Claim>> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("claim"))
        .collect();
    let mut taken = Vec::new();
    let mut claim_ids = HashSet::new();
    for (claim, asked) in claims.iter().zip(&specs) {
        let Some(claim) = claim else { continue };
        assert!(claim_ids.insert(claim.id.clone()), "claim id reused");
        assert!(!claim.messages.is_empty());
        assert!(claim.messages.len() <= asked.limit as usize);
        assert_eq!((claim.ttl, claim.grace), (asked.ttl, asked.grace));
        let mine = ids_of(&claim.messages);
        let mut sorted = mine.clone();
        sorted.sort_by_key(|id| ids.iter().position(|posted| posted == id));
        assert_eq!(mine, sorted, "a claim lists its messages in order");
        // Each claim is a real claim of exactly its messages.
        let stored = backend.get_claim(&scope, &claim.id).await.unwrap();
        assert_eq!(ids_of(&stored.messages), mine);
        taken.extend(mine);
    }
    assert!(!taken.is_empty(), "the claims took something");
    // No message went to two claims, and none was lost: what no claim took
    // is still there to be claimed (claims racing inside a backend may
    // leave some for later).
    let left = ids_of(&list(&backend, &scope, &query(10)).await);
    let mut accounted = taken.clone();
    accounted.extend(left);
    accounted.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(accounted, all, "every message claimed once or still free");
    // One claim's id does not delete another claim's message.
    let granted: Vec<&Claim> = claims.iter().flatten().collect();
    if let [first, second, ..] = granted.as_slice() {
        assert_kind(
            backend
                .delete_message(
                    &scope,
                    &first.messages[0].id,
                    Some(&ClaimRef::Id(second.id.clone())),
                )
                .await,
            ErrorKind::ClaimMismatch,
        );
    }

    let missing = scope.sibling("shared-missing").unwrap();
    let outcomes = backend
        .create_claims(&missing, vec![spec(60, 60, 3), spec(60, 60, 3)])
        .await
        .unwrap();
    assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok(None))));
}

/// Expired claims: no claim id deletes (D11), the old id does not (D10), and
/// a re-claimed message refuses the old id (D12).
pub async fn delete_message_with_expired_claims(backend: BackendRef) {
    let scope = queue("expired-claims");
    let ids = post_n(&backend, &scope, CLIENT_A, 2).await;
    let old = claim(&backend, &scope, spec(1, 60, 2)).await;
    let old_ref = ClaimRef::Id(old.id.clone());
    sleep_ms(1200).await;
    assert_kind(
        backend
            .delete_message(&scope, &ids[0], Some(&old_ref))
            .await,
        ErrorKind::ClaimExpired,
    );
    backend.delete_message(&scope, &ids[0], None).await.unwrap();
    let new = claim(&backend, &scope, spec(60, 60, 1)).await;
    assert_eq!(ids_of(&new.messages), vec![ids[1].clone()]);
    assert_kind(
        backend
            .delete_message(&scope, &ids[1], Some(&old_ref))
            .await,
        ErrorKind::ClaimMismatch,
    );
    backend
        .delete_message(&scope, &ids[1], Some(&ClaimRef::Id(new.id)))
        .await
        .unwrap();
}

/// Bulk delete ignores claims and unknown ids.
pub async fn delete_messages_by_id_ignores_claims(backend: BackendRef) {
    let scope = queue("bulk");
    let ids = post_n(&backend, &scope, CLIENT_A, 4).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    let mut doomed = ids[..3].to_vec();
    doomed.push("bogus".into());
    doomed.push(zaqar_proto::model::new_id());
    backend
        .delete_messages(&scope, &doomed, None)
        .await
        .unwrap();
    let left = list(&backend, &scope, &query(10)).await;
    assert_eq!(ids_of(&left), vec![ids[3].clone()]);
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.total, stats.claimed), (1, 0));
    let got = backend.get_claim(&scope, &held.id).await.unwrap();
    assert!(got.messages.is_empty());
}

/// With claims required, only messages held by the named claims are deleted.
pub async fn delete_messages_can_require_claims(backend: BackendRef) {
    let scope = queue("bulk-claimed");
    let ids = post_n(&backend, &scope, CLIENT_A, 3).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    let claim_ids = vec![held.id.clone()];
    assert_kind(
        backend
            .delete_messages(&scope, &ids, Some(&claim_ids))
            .await,
        ErrorKind::Invalid,
    );
    assert_eq!(backend.get_messages(&scope, &ids).await.unwrap().len(), 3);
    backend
        .delete_messages(&scope, &ids[..2], Some(&claim_ids))
        .await
        .unwrap();
    assert_eq!(
        ids_of(&backend.get_messages(&scope, &ids).await.unwrap()),
        vec![ids[2].clone()]
    );
}

/// Pop removes the oldest unclaimed messages; claimed ones are skipped.
pub async fn pop_takes_the_oldest_unclaimed_messages(backend: BackendRef) {
    let scope = queue("popped");
    assert!(backend.pop_messages(&scope, 1).await.unwrap().is_empty());
    assert!(!backend.queue_exists(&scope).await.unwrap());
    let ids = post_n(&backend, &scope, CLIENT_A, 5).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    assert_eq!(ids_of(&held.messages), ids[..2].to_vec());
    let popped = backend.pop_messages(&scope, 2).await.unwrap();
    assert_eq!(ids_of(&popped), ids[2..4].to_vec());
    assert!(
        popped
            .iter()
            .all(|m| m.claim_id.is_none() && m.claim_count == 0)
    );
    for id in &ids[2..4] {
        assert_kind(backend.get_message(&scope, id).await, ErrorKind::NotFound);
    }
    let rest = backend.pop_messages(&scope, 20).await.unwrap();
    assert_eq!(ids_of(&rest), vec![ids[4].clone()]);
    assert!(backend.pop_messages(&scope, 20).await.unwrap().is_empty());
    assert_eq!(backend.queue_stats(&scope).await.unwrap().claimed, 2);
}

/// On a delay queue, delayed messages are hidden from listing (unless asked),
/// claims and pop, returned by id, and counted as free.
pub async fn delayed_messages_wait(backend: BackendRef) {
    let scope = queue("delayed");
    backend
        .create_queue(&scope, r#"{"_default_message_delay": 1}"#)
        .await
        .unwrap();
    let ids = post_with(
        &backend,
        &scope,
        vec![
            message("\"default delay\""),
            NewMessage {
                delay: Some(0),
                ..message("\"now\"")
            },
            NewMessage {
                delay: Some(900),
                ..message("\"later\"")
            },
        ],
    )
    .await;
    let page = backend.list_messages(&scope, &query(10)).await.unwrap();
    assert!(page.delay_queue);
    assert_eq!(ids_of(&page.messages), vec![ids[1].clone()]);
    let mut with_delayed = query(10);
    with_delayed.include_delayed = true;
    assert_eq!(list(&backend, &scope, &with_delayed).await.len(), 3);
    assert_eq!(backend.get_messages(&scope, &ids).await.unwrap().len(), 3);
    let stats = backend.queue_stats(&scope).await.unwrap();
    assert_eq!((stats.free, stats.total), (3, 3));
    assert_eq!(stats.oldest.unwrap().id, ids[0]);
    let held = claim(&backend, &scope, spec(60, 60, 10)).await;
    assert_eq!(ids_of(&held.messages), vec![ids[1].clone()]);
    assert!(backend.pop_messages(&scope, 10).await.unwrap().is_empty());
    sleep_ms(1200).await;
    let popped = backend.pop_messages(&scope, 10).await.unwrap();
    assert_eq!(ids_of(&popped), vec![ids[0].clone()]);

    let mut too_long = batch(
        CLIENT_A,
        vec![NewMessage {
            delay: Some(901),
            ..message("1")
        }],
    );
    too_long.limits.max_message_delay = 900;
    let error = backend.post_messages(&scope, too_long).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert!(error.to_string().contains("900"), "{error}");
}

/// Without `_default_message_delay`, per-message delays are ignored entirely.
pub async fn delay_is_ignored_on_plain_queues(backend: BackendRef) {
    let scope = queue("not-delayed");
    let ids = post_with(
        &backend,
        &scope,
        vec![
            NewMessage {
                delay: Some(30),
                ..message("1")
            },
            NewMessage {
                delay: Some(99_999),
                ..message("2")
            },
        ],
    )
    .await;
    let page = backend.list_messages(&scope, &query(10)).await.unwrap();
    assert!(!page.delay_queue);
    assert_eq!(ids_of(&page.messages), ids);
    assert_eq!(
        claim(&backend, &scope, spec(60, 60, 10))
            .await
            .messages
            .len(),
        2
    );
}

/// Claims take the oldest messages up to the limit; nothing left is `None`.
pub async fn claim_takes_oldest_messages_up_to_the_limit(backend: BackendRef) {
    let scope = queue("claimed");
    assert!(
        backend
            .create_claim(&scope, spec(60, 60, 10))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!backend.queue_exists(&scope).await.unwrap());
    let ids = post_n(&backend, &scope, CLIENT_A, 10).await;
    let first = claim(&backend, &scope, spec(100, 60, 3)).await;
    assert_eq!(ids_of(&first.messages), ids[..3].to_vec());
    assert!(
        first
            .messages
            .iter()
            .all(|m| m.claim_id.as_deref() == Some(first.id.as_str()))
    );
    assert_eq!(first.ttl, 100);
    let rest = claim(&backend, &scope, spec(100, 60, 20)).await;
    assert_eq!(ids_of(&rest.messages), ids[3..].to_vec());
    assert_ne!(first.id, rest.id);
    assert!(
        backend
            .create_claim(&scope, spec(60, 60, 3))
            .await
            .unwrap()
            .is_none()
    );
    assert!(list(&backend, &scope, &query(10)).await.is_empty());
    // Claiming looks at neither the producer nor echo: a client claims its own.
    let mut with_claimed = query(10);
    with_claimed.include_claimed = true;
    with_claimed.echo = false;
    with_claimed.client_id = CLIENT_B.into();
    assert_eq!(list(&backend, &scope, &with_claimed).await.len(), 10);
}

/// Get, renew and release of a claim, and `NotFound` for dead claims.
pub async fn claim_lifecycle_get_renew_release(backend: BackendRef) {
    let scope = queue("lifecycle");
    assert_kind(
        backend.get_claim(&scope, "aaabbbba").await,
        ErrorKind::NotFound,
    );
    assert_kind(
        backend.renew_claim(&scope, "a", 60, 60).await,
        ErrorKind::NotFound,
    );
    backend.release_claim(&scope, "a").await.unwrap();
    let ids = post_n(&backend, &scope, CLIENT_A, 3).await;
    let held = claim(&backend, &scope, spec(100, 60, 2)).await;
    let got = backend.get_claim(&scope, &held.id).await.unwrap();
    assert_eq!(
        (got.ttl, got.grace, got.id.as_str()),
        (100, 60, held.id.as_str())
    );
    assert!(got.age >= 0);
    assert_eq!(ids_of(&got.messages), ids[..2].to_vec());
    // The messages a claim hands out read the same as when read back.
    assert_eq!(held.messages.len(), got.messages.len());
    for (handed, stored) in held.messages.iter().zip(&got.messages) {
        assert_eq!(handed.claim_id.as_deref(), Some(held.id.as_str()));
        assert_eq!(
            (&handed.id, handed.ttl, &handed.body, &handed.claim_id),
            (&stored.id, stored.ttl, &stored.body, &stored.claim_id)
        );
        assert_eq!(
            (handed.claim_count, handed.created),
            (stored.claim_count, stored.created)
        );
        assert!(handed.created > 1_600_000_000 && handed.age >= 0);
        assert!((stored.age - handed.age).abs() <= 1);
    }
    assert_kind(backend.get_claim(&scope, "a").await, ErrorKind::NotFound);
    let other = scope.sibling("other").unwrap();
    backend.create_queue(&other, "{}").await.unwrap();
    assert_kind(
        backend.get_claim(&other, &held.id).await,
        ErrorKind::NotFound,
    );

    backend.renew_claim(&scope, &held.id, 60, 60).await.unwrap();
    let renewed = backend.get_claim(&scope, &held.id).await.unwrap();
    assert_eq!(renewed.ttl, 60);
    assert!(renewed.age <= 1);

    backend.release_claim(&scope, &held.id).await.unwrap();
    backend.release_claim(&scope, &held.id).await.unwrap();
    assert_kind(
        backend.get_claim(&scope, &held.id).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        backend.renew_claim(&scope, &held.id, 60, 60).await,
        ErrorKind::NotFound,
    );
    assert_eq!(list(&backend, &scope, &query(10)).await.len(), 3);
    let again = claim(&backend, &scope, spec(60, 60, 10)).await;
    assert_eq!(ids_of(&again.messages), ids);
    assert_eq!(backend.queue_stats(&scope).await.unwrap().claimed, 3);
}

/// Messages that would expire before the claim get ttl = claim ttl + grace.
pub async fn claim_extends_short_lived_messages(backend: BackendRef) {
    let scope = queue("extended");
    let short = || NewMessage {
        ttl: Some(120),
        ..message("1")
    };
    let ids = post_with(&backend, &scope, vec![short(), short(), short()]).await;
    let long_claim = claim(&backend, &scope, spec(777, 23, 1)).await;
    assert_eq!(long_claim.messages[0].ttl, 800);
    let short_claim = claim(&backend, &scope, spec(60, 23, 1)).await;
    assert_eq!(short_claim.messages[0].ttl, 120);
    let edge_claim = claim(&backend, &scope, spec(121, 22, 1)).await;
    assert_eq!(edge_claim.messages[0].ttl, 143);
    // Renewal extends with the new ttl and grace; the extension survives release.
    backend
        .renew_claim(&scope, &short_claim.id, 300, 60)
        .await
        .unwrap();
    assert_eq!(backend.get_message(&scope, &ids[1]).await.unwrap().ttl, 360);
    backend
        .release_claim(&scope, &short_claim.id)
        .await
        .unwrap();
    assert_eq!(backend.get_message(&scope, &ids[1]).await.unwrap().ttl, 360);
}

/// When a claim expires its messages are visible and claimable again.
pub async fn claim_expiry_frees_messages(backend: BackendRef) {
    let scope = queue("lapsing");
    let ids = post_n(&backend, &scope, CLIENT_A, 2).await;
    let held = claim(&backend, &scope, spec(1, 60, 10)).await;
    assert!(list(&backend, &scope, &query(10)).await.is_empty());
    sleep_ms(1200).await;
    assert_kind(
        backend.get_claim(&scope, &held.id).await,
        ErrorKind::NotFound,
    );
    assert_kind(
        backend.renew_claim(&scope, &held.id, 60, 60).await,
        ErrorKind::NotFound,
    );
    let visible = list(&backend, &scope, &query(10)).await;
    assert_eq!(ids_of(&visible), ids);
    assert!(visible.iter().all(|m| m.claim_id.is_none()));
    assert_eq!(backend.queue_stats(&scope).await.unwrap().claimed, 0);
    let again = claim(&backend, &scope, spec(60, 60, 10)).await;
    assert_eq!(ids_of(&again.messages), ids);
}

/// A claim whose messages were all deleted still exists, holding nothing.
pub async fn claim_of_deleted_messages_lists_nothing(backend: BackendRef) {
    let scope = queue("emptied");
    post_n(&backend, &scope, CLIENT_A, 2).await;
    let held = claim(&backend, &scope, spec(60, 60, 2)).await;
    let claim_ref = ClaimRef::Id(held.id.clone());
    for message in &held.messages {
        backend
            .delete_message(&scope, &message.id, Some(&claim_ref))
            .await
            .unwrap();
    }
    let got = backend.get_claim(&scope, &held.id).await.unwrap();
    assert!(got.messages.is_empty());
}

/// `_max_claim_count` + `_dead_letter_queue`: the claim after the last
/// allowed one moves the message, unclaimed, to the DLQ with the DLQ TTL.
pub async fn dead_letter_queue_receives_overclaimed_messages(backend: BackendRef) {
    let scope = queue("source");
    let dlq = scope.sibling("source-dlq").unwrap();
    backend
        .create_queue(
            &scope,
            r#"{"_max_claim_count": 2, "_dead_letter_queue": "source-dlq",
                "_dead_letter_queue_messages_ttl": 7200}"#,
        )
        .await
        .unwrap();
    let ids = post_n(&backend, &scope, CLIENT_A, 1).await;
    for round in 1..=2 {
        let held = claim(&backend, &scope, spec(1, 60, 10)).await;
        assert_eq!(
            ids_of(&held.messages),
            ids,
            "claim {round} returns the message"
        );
        backend.release_claim(&scope, &held.id).await.unwrap();
    }
    assert!(
        backend
            .create_claim(&scope, spec(60, 60, 10))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(backend.queue_stats(&scope).await.unwrap().total, 0);
    assert!(
        backend.queue_exists(&dlq).await.unwrap(),
        "the DLQ is created"
    );
    let moved = list(&backend, &dlq, &query(10)).await;
    assert_eq!(ids_of(&moved), ids);
    assert_eq!(moved[0].ttl, 7200);
    assert!(moved[0].claim_id.is_none());
    assert_eq!(moved[0].claim_count, 2);
    assert_eq!(moved[0].body, "{\"n\":0}");

    // Counting only happens while dead-lettering is active.
    let plain = scope.sibling("plain").unwrap();
    post_n(&backend, &plain, CLIENT_A, 1).await;
    let held = claim(&backend, &plain, spec(60, 60, 1)).await;
    backend.release_claim(&plain, &held.id).await.unwrap();
    let popped = backend.pop_messages(&plain, 1).await.unwrap();
    assert_eq!(popped[0].claim_count, 0);
}

fn subscription(subscriber: &str) -> NewSubscription {
    NewSubscription {
        subscriber: subscriber.into(),
        ttl: 3600,
        options: r#"{"post_headers":{"X-Token":"abc"}}"#.into(),
    }
}

/// Subscribing twice returns the unconfirmed one; a confirmed one conflicts.
pub async fn subscriptions_are_unique_per_subscriber(backend: BackendRef) {
    let scope = queue("subscribed");
    let (id, created) = backend
        .create_subscription(&scope, subscription("http://example.com/a"))
        .await
        .unwrap();
    assert!(created);
    let (again, created_again) = backend
        .create_subscription(&scope, subscription("http://example.com/a"))
        .await
        .unwrap();
    assert_eq!((again.as_str(), created_again), (id.as_str(), false));
    backend
        .confirm_subscription(&scope, &id, true)
        .await
        .unwrap();
    assert!(
        backend
            .get_subscription(&scope, &id)
            .await
            .unwrap()
            .confirmed
    );
    assert_kind(
        backend
            .create_subscription(&scope, subscription("http://example.com/a"))
            .await,
        ErrorKind::Conflict,
    );
    let other = scope.sibling("elsewhere").unwrap();
    let (elsewhere, created) = backend
        .create_subscription(&other, subscription("http://example.com/a"))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(elsewhere, id);
    assert_kind(
        backend.confirm_subscription(&scope, "fake", true).await,
        ErrorKind::NotFound,
    );
}

/// Listing pages in id order; get, update, delete behave as documented.
pub async fn subscriptions_list_get_update_delete(backend: BackendRef) {
    let scope = queue("subs");
    assert!(
        backend
            .list_subscriptions(&scope, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut ids = Vec::new();
    for i in 0..15 {
        let (id, _) = backend
            .create_subscription(&scope, subscription(&format!("http://example.com/{i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = backend
            .list_subscriptions(&scope, marker.as_deref(), 4)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        marker = page.last().map(|s| s.id.clone());
        seen.extend(page.into_iter().map(|s| s.id));
    }
    assert_eq!(seen, sorted);

    let got = backend.get_subscription(&scope, &ids[0]).await.unwrap();
    assert_eq!(got.source, "subs");
    assert_eq!(got.subscriber, "http://example.com/0");
    assert_eq!(got.ttl, 3600);
    assert!(!got.confirmed);
    assert!(got.options.contains("X-Token"));
    assert_kind(
        backend.get_subscription(&scope, "fake").await,
        ErrorKind::NotFound,
    );
    let stranger = Scope::queue(fresh_project(), "subs").unwrap();
    assert_kind(
        backend.get_subscription(&stranger, &ids[0]).await,
        ErrorKind::NotFound,
    );

    backend
        .update_subscription(
            &scope,
            &ids[0],
            SubscriptionUpdate {
                ttl: Some(300),
                options: Some("{}".into()),
                ..SubscriptionUpdate::default()
            },
        )
        .await
        .unwrap();
    let updated = backend.get_subscription(&scope, &ids[0]).await.unwrap();
    assert_eq!((updated.ttl, updated.options.as_str()), (300, "{}"));
    assert_kind(
        backend
            .update_subscription(
                &scope,
                &ids[0],
                SubscriptionUpdate {
                    subscriber: Some("http://example.com/1".into()),
                    ..SubscriptionUpdate::default()
                },
            )
            .await,
        ErrorKind::Conflict,
    );
    assert_kind(
        backend
            .update_subscription(&scope, "x", SubscriptionUpdate::default())
            .await,
        ErrorKind::NotFound,
    );
    backend
        .update_subscription(
            &scope,
            &ids[0],
            SubscriptionUpdate {
                subscriber: Some("mailto:ops@example.com".into()),
                ..SubscriptionUpdate::default()
            },
        )
        .await
        .unwrap();
    // The old subscriber is free again, the new one is taken.
    let (fresh, created) = backend
        .create_subscription(&scope, subscription("http://example.com/0"))
        .await
        .unwrap();
    assert!(created);
    let (same, created) = backend
        .create_subscription(&scope, subscription("mailto:ops@example.com"))
        .await
        .unwrap();
    assert_eq!((same.as_str(), created), (ids[0].as_str(), false));

    backend.delete_subscription(&scope, &ids[0]).await.unwrap();
    backend.delete_subscription(&scope, &ids[0]).await.unwrap();
    assert_kind(
        backend.get_subscription(&scope, &ids[0]).await,
        ErrorKind::NotFound,
    );
    backend.delete_subscription(&scope, &fresh).await.unwrap();
    assert_eq!(
        backend
            .list_subscriptions(&scope, None, 20)
            .await
            .unwrap()
            .len(),
        14
    );
}

/// Expired subscriptions are neither listed nor returned, and free their subscriber.
pub async fn subscriptions_expire(backend: BackendRef) {
    let scope = queue("lapsed-subs");
    let mut short = subscription("http://example.com/short");
    short.ttl = 1;
    let (id, _) = backend.create_subscription(&scope, short).await.unwrap();
    backend
        .create_subscription(&scope, subscription("http://example.com/long"))
        .await
        .unwrap();
    sleep_ms(1200).await;
    assert_kind(
        backend.get_subscription(&scope, &id).await,
        ErrorKind::NotFound,
    );
    let listed = backend.list_subscriptions(&scope, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subscriber, "http://example.com/long");
    let (fresh, created) = backend
        .create_subscription(&scope, subscription("http://example.com/short"))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(fresh, id);
}

/// Figures of the concurrency proof.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConcurrencyReport {
    /// Messages posted.
    pub posted: usize,
    /// Distinct messages delivered through claims.
    pub delivered: usize,
    /// Deliveries of a message already delivered.
    pub duplicates: usize,
    /// Posted messages never delivered.
    pub lost: usize,
}

/// Runs the concurrency proof: 8 consumers claim and delete from a queue
/// holding `preloaded` messages while 2 producers post `produced` more.
pub async fn run_concurrency_proof(
    backend: BackendRef,
    preloaded: usize,
    produced: usize,
) -> ConcurrencyReport {
    const CONSUMERS: usize = 8;
    const PRODUCERS: usize = 2;
    const BATCH: usize = 50;
    let scope = queue("contended");
    let mut posted = Vec::new();
    for chunk in (0..preloaded).collect::<Vec<_>>().chunks(BATCH) {
        posted.extend(post_n(&backend, &scope, CLIENT_A, chunk.len()).await);
    }
    let producing = Arc::new(std::sync::atomic::AtomicUsize::new(PRODUCERS));
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let backend = backend.clone();
        let scope = scope.clone();
        let producing = producing.clone();
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut left = produced / PRODUCERS;
            while left > 0 {
                let n = left.min(10);
                ids.extend(post_n(&backend, &scope, CLIENT_B, n).await);
                left -= n;
            }
            producing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            ids
        }));
    }
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let backend = backend.clone();
        let scope = scope.clone();
        let producing = producing.clone();
        consumers.push(tokio::spawn(async move {
            let mut delivered = Vec::new();
            loop {
                let claimed = backend
                    .create_claim(&scope, spec(300, 60, 20))
                    .await
                    .expect("claim");
                let Some(held) = claimed else {
                    if producing.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                        // Producers are done: one more look, then stop.
                        match backend
                            .create_claim(&scope, spec(300, 60, 20))
                            .await
                            .expect("claim")
                        {
                            Some(held) => {
                                let claim_ref = ClaimRef::Id(held.id.clone());
                                for message in held.messages {
                                    backend
                                        .delete_message(&scope, &message.id, Some(&claim_ref))
                                        .await
                                        .expect("delete with claim");
                                    delivered.push(message.id);
                                }
                                continue;
                            }
                            None => return delivered,
                        }
                    }
                    sleep_ms(2).await;
                    continue;
                };
                let claim_ref = ClaimRef::Id(held.id.clone());
                for message in held.messages {
                    backend
                        .delete_message(&scope, &message.id, Some(&claim_ref))
                        .await
                        .expect("delete with claim");
                    delivered.push(message.id);
                }
            }
        }));
    }
    for producer in producers {
        posted.extend(producer.await.expect("producer"));
    }
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for consumer in consumers {
        for id in consumer.await.expect("consumer") {
            *deliveries.entry(id).or_default() += 1;
        }
    }
    let posted_set: HashSet<&String> = posted.iter().collect();
    ConcurrencyReport {
        posted: posted.len(),
        delivered: deliveries
            .keys()
            .filter(|id| posted_set.contains(id))
            .count(),
        duplicates: deliveries.values().map(|count| count - 1).sum(),
        lost: posted_set
            .iter()
            .filter(|id| !deliveries.contains_key(id.as_str()))
            .count(),
    }
}

/// Every message is delivered exactly once under 8 consumers and 2 producers.
pub async fn concurrent_consumers_lose_and_duplicate_nothing(backend: BackendRef) {
    concurrent_consumers_lose_and_duplicate_nothing_sized(backend, 10_000, 2_000).await;
}

/// The same proof with `preloaded` messages waiting and `produced` posted
/// meanwhile.
pub async fn concurrent_consumers_lose_and_duplicate_nothing_sized(
    backend: BackendRef,
    preloaded: usize,
    produced: usize,
) {
    let report = run_concurrency_proof(backend, preloaded, produced).await;
    eprintln!("concurrency proof: {report:?}");
    assert_eq!(report.posted, preloaded + produced);
    assert_eq!(report.delivered, report.posted, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
}

/// The backend answers health checks.
pub async fn health_reports_reachable(backend: BackendRef) {
    let health = backend.health().await.unwrap();
    assert!(health.reachable);
    assert!(!health.backend.is_empty());
}

/// Generates the outbox conformance test for a backend that keeps a
/// delivery outbox. The factory must give the test a store of its own (no
/// other taker may lease its deliveries).
#[macro_export]
macro_rules! outbox_conformance_suite {
    ($factory:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn outbox_queues_takes_retries_and_finishes_deliveries() {
            let fixture: $crate::conformance::Fixture = $factory().await;
            $crate::conformance::outbox_queues_takes_retries_and_finishes_deliveries(
                fixture.backend.clone(),
            )
            .await;
            drop(fixture);
        }
    };
}

/// Takes the due deliveries of queue `name` (others are left leased).
async fn take_of(
    outbox: &crate::delivery::OutboxRef,
    name: &str,
) -> Vec<crate::delivery::Delivery> {
    let mut mine: Vec<_> = outbox
        .take_due(1000, Duration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .filter(|delivery| delivery.queue_name == name)
        .collect();
    mine.sort_by(|a, b| a.record.subscription.cmp(&b.record.subscription));
    mine
}

fn notifying(notify: zaqar_proto::model::NotifyMode, bodies: &[&str]) -> PostBatch {
    let mut batch = batch(CLIENT_A, bodies.iter().map(|body| message(body)).collect());
    batch.notify = notify;
    batch
}

/// Posts queue one delivery per notified subscription in the same step;
/// taken deliveries are leased; progress and retry times are kept; notices
/// go to live subscriptions only; finished deliveries are gone.
pub async fn outbox_queues_takes_retries_and_finishes_deliveries(backend: BackendRef) {
    use zaqar_proto::model::NotifyMode;
    let outbox = backend
        .clone()
        .outbox()
        .expect("the backend keeps an outbox");
    let name = format!("outbox-{}", uuid::Uuid::new_v4().simple());
    let scope = Scope::queue(fresh_project(), &name).unwrap();
    let (confirmed, _) = backend
        .create_subscription(&scope, subscription("http://example.com/a"))
        .await
        .unwrap();
    let (unconfirmed, _) = backend
        .create_subscription(&scope, subscription("http://example.com/b"))
        .await
        .unwrap();
    backend
        .confirm_subscription(&scope, &confirmed, true)
        .await
        .unwrap();
    assert!(take_of(&outbox, &name).await.is_empty());

    // Everybody, with the messages in post order.
    backend
        .post_messages(&scope, notifying(NotifyMode::All, &["{\"n\":1}", "[2]"]))
        .await
        .unwrap();
    let taken = take_of(&outbox, &name).await;
    let mut subscribers: Vec<&str> = taken
        .iter()
        .map(|d| d.target.as_ref().unwrap().subscriber.as_str())
        .collect();
    subscribers.sort_unstable();
    assert_eq!(
        subscribers,
        ["http://example.com/a", "http://example.com/b"]
    );
    for delivery in &taken {
        assert_eq!(
            delivery.record.messages,
            vec![
                (3600, -1, "{\"n\":1}".to_string()),
                (3600, -1, "[2]".to_string())
            ]
        );
        assert_eq!((delivery.record.next, delivery.record.failures), (0, 0));
        assert!(
            delivery
                .target
                .as_ref()
                .unwrap()
                .options
                .contains("X-Token")
        );
        assert_eq!(delivery.queue_metadata, "{}");
    }
    // Leased: not handed out twice.
    assert!(take_of(&outbox, &name).await.is_empty());

    // Progress is kept and the delivery comes back when due.
    let mut first = taken[0].clone();
    first.record.next = 1;
    first.record.failures = 2;
    outbox
        .retry_later(&first.key, &first.record, Duration::ZERO)
        .await
        .unwrap();
    let again = take_of(&outbox, &name).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].record.next, again[0].record.failures), (1, 2));
    outbox
        .retry_later(&again[0].key, &again[0].record, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(take_of(&outbox, &name).await.is_empty(), "not due yet");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let due = loop {
        let due = take_of(&outbox, &name).await;
        if !due.is_empty() || std::time::Instant::now() > deadline {
            break due;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(due.len(), 1, "due after its delay");
    for delivery in taken.iter().chain(&due) {
        outbox.finish(&delivery.key).await.unwrap();
    }
    // Finishing twice is harmless.
    outbox.finish(&due[0].key).await.unwrap();

    // Only confirmed subscriptions, or nobody.
    backend
        .post_messages(&scope, notifying(NotifyMode::Confirmed, &["3"]))
        .await
        .unwrap();
    backend
        .post_messages(&scope, notifying(NotifyMode::None, &["4"]))
        .await
        .unwrap();
    let taken = take_of(&outbox, &name).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].record.subscription, confirmed);
    assert_eq!(taken[0].record.messages[0].2, "3");
    outbox.finish(&taken[0].key).await.unwrap();

    // Notices go to live subscriptions.
    let notice = zaqar_proto::model::Notice {
        document: "{\"Message_Type\":\"SubscriptionConfirmation\"}".into(),
        mail: None,
    };
    let missing = backend
        .enqueue_notice(&scope, "000000000000000000000000", notice.clone())
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    backend
        .enqueue_notice(&scope, &unconfirmed, notice)
        .await
        .unwrap();
    let taken = take_of(&outbox, &name).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].record.subscription, unconfirmed);
    assert!(taken[0].record.messages.is_empty());
    assert!(
        taken[0]
            .record
            .notice
            .as_ref()
            .unwrap()
            .document
            .contains("SubscriptionConfirmation")
    );
    outbox.finish(&taken[0].key).await.unwrap();

    // A delivery whose subscription is deleted meanwhile has no target.
    backend
        .post_messages(&scope, notifying(NotifyMode::Confirmed, &["5"]))
        .await
        .unwrap();
    backend
        .delete_subscription(&scope, &confirmed)
        .await
        .unwrap();
    let taken = take_of(&outbox, &name).await;
    assert_eq!(taken.len(), 1);
    assert!(taken[0].target.is_none());
    outbox.finish(&taken[0].key).await.unwrap();
    assert!(take_of(&outbox, &name).await.is_empty());
}
