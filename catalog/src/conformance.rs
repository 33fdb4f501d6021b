//! The catalog conformance suite: one set of async tests over
//! [`CatalogStore`](crate::store::CatalogStore) (and the typed [`Catalog`]
//! on top) that the etcd and embedded stores both pass.
//!
//! Each test works under its own random root, so tests share a store safely.

// Test code: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::model::{Flavor, Placement, Pool};
use crate::store::{CatalogStoreRef, WatchEvent};

/// A store under test plus whatever must live as long as it.
pub struct Fixture {
    /// The store under test.
    pub store: CatalogStoreRef,
    /// Dropped at the end of the test.
    pub guard: Option<Box<dyn std::any::Any + Send>>,
}

/// Generates one `#[tokio::test]` per conformance test, each calling
/// `$factory().await` for a fresh [`Fixture`].
#[macro_export]
macro_rules! catalog_conformance_suite {
    ($factory:path) => {
        $crate::catalog_conformance_suite!(@tests $factory;
            get_put_delete,
            list_orders_pages_and_respects_prefixes,
            create_if_absent_has_one_winner,
            leased_keys_vanish_with_their_lease,
            watches_deliver_snapshots_and_changes,
            placements_are_recorded_once_and_listed_per_project,
            pools_and_flavors_round_trip
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture: $crate::conformance::Fixture = $factory().await;
                $crate::conformance::$name(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

fn root() -> String {
    format!("/zaqar-test-{}", uuid::Uuid::new_v4().simple())
}

/// Reads see writes; deletes are idempotent.
pub async fn get_put_delete(store: CatalogStoreRef) {
    let key = format!("{}/a", root());
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(&key, b"1".to_vec()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(b"1".to_vec()));
    store.put(&key, b"2".to_vec()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(b"2".to_vec()));
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
}

/// Listing is ordered, pages strictly after a key, and never leaves its prefix.
pub async fn list_orders_pages_and_respects_prefixes(store: CatalogStoreRef) {
    let root = root();
    let prefix = format!("{root}/p/");
    for name in ["b", "a", "c", "aa", "d"] {
        store
            .put(&format!("{prefix}{name}"), name.as_bytes().to_vec())
            .await
            .unwrap();
    }
    store
        .put(&format!("{root}/p0"), b"x".to_vec())
        .await
        .unwrap();
    store
        .put(&format!("{root}/o/a"), b"x".to_vec())
        .await
        .unwrap();
    let all: Vec<String> = store
        .list(&prefix, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.key[prefix.len()..].to_string())
        .collect();
    assert_eq!(all, vec!["a", "aa", "b", "c", "d"]);
    let page = store
        .list(&prefix, Some(&format!("{prefix}aa")), 2)
        .await
        .unwrap();
    let names: Vec<&str> = page
        .iter()
        .map(|entry| &entry.key[prefix.len()..])
        .collect();
    assert_eq!(names, vec!["b", "c"]);
    assert_eq!(page[0].value, b"b".to_vec());
    let after_missing = store
        .list(&prefix, Some(&format!("{prefix}bb")), 10)
        .await
        .unwrap();
    assert_eq!(after_missing.len(), 2);
    assert!(
        store
            .list(&prefix, Some(&format!("{prefix}z")), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count(&prefix).await.unwrap(), 5);
    assert_eq!(store.count(&format!("{root}/none/")).await.unwrap(), 0);
}

/// Concurrent creations of one key agree on a single winner.
pub async fn create_if_absent_has_one_winner(store: CatalogStoreRef) {
    let key = format!("{}/contended", root());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_if_absent(&key, format!("v{i}").into_bytes())
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    let mut values = HashSet::new();
    for task in tasks {
        let (value, created) = task.await.unwrap();
        winners += usize::from(created);
        values.insert(value);
    }
    assert_eq!(winners, 1);
    assert_eq!(values.len(), 1, "everyone sees the winner's value");
    let stored = store.get(&key).await.unwrap().unwrap();
    assert!(values.contains(&stored));
}

/// A leased key exists while its lease lives.
pub async fn leased_keys_vanish_with_their_lease(store: CatalogStoreRef) {
    let key = format!("{}/node", root());
    let lease = store
        .put_leased(&key, b"alive".to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Some(b"alive".to_vec()));
    drop(lease);
    let mut gone = false;
    for _ in 0..50 {
        if store.get(&key).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the key goes with its lease");
}

/// A watch starts with the prefix's snapshot and then sees every change
/// under the prefix, in order, and none outside it.
pub async fn watches_deliver_snapshots_and_changes(store: CatalogStoreRef) {
    let root = root();
    let prefix = format!("{root}/w/");
    store
        .put(&format!("{prefix}existing"), b"0".to_vec())
        .await
        .unwrap();
    let mut watch = store.watch(&prefix, true).await.unwrap();
    assert_eq!(watch.snapshot.len(), 1);
    assert_eq!(watch.snapshot[0].key, format!("{prefix}existing"));
    let mut bare = store.watch(&prefix, false).await.unwrap();
    assert!(bare.snapshot.is_empty());
    store
        .put(&format!("{root}/elsewhere"), b"x".to_vec())
        .await
        .unwrap();
    store
        .put(&format!("{prefix}new"), b"1".to_vec())
        .await
        .unwrap();
    store.delete(&format!("{prefix}existing")).await.unwrap();
    let (created, _) = store
        .create_if_absent(&format!("{prefix}created"), b"2".to_vec())
        .await
        .unwrap()
        .clone();
    assert_eq!(created, b"2".to_vec());
    let expected = vec![
        WatchEvent::Put(crate::store::Entry {
            key: format!("{prefix}new"),
            value: b"1".to_vec(),
        }),
        WatchEvent::Delete(format!("{prefix}existing")),
        WatchEvent::Put(crate::store::Entry {
            key: format!("{prefix}created"),
            value: b"2".to_vec(),
        }),
    ];
    for events in [&mut watch.events, &mut bare.events] {
        for want in &expected {
            let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("event in time")
                .expect("watch alive");
            assert_eq!(&got, want);
        }
    }
}

/// The typed layer: placements are written once, listed per project and
/// namespace with counts.
pub async fn placements_are_recorded_once_and_listed_per_project(store: CatalogStoreRef) {
    let catalog = Catalog::new(store, &root());
    let first = Placement {
        pool: "a".into(),
        flavor: None,
    };
    let second = Placement {
        pool: "b".into(),
        flavor: None,
    };
    let (stored, created) = catalog.place("p", "q", "orders", &first).await.unwrap();
    assert!(created);
    assert_eq!(stored, first);
    let (stored, created) = catalog.place("p", "q", "orders", &second).await.unwrap();
    assert!(!created);
    assert_eq!(stored, first, "the record, once written, is the truth");
    for name in ["b", "a", "c"] {
        catalog.place("p", "q", name, &second).await.unwrap();
    }
    catalog.place("p", "t", "topic", &second).await.unwrap();
    catalog.place("p/x", "q", "zzz", &second).await.unwrap();
    catalog.place("p0", "q", "aaa", &second).await.unwrap();
    let (names, total) = catalog.queue_names("p", "q", None, 2).await.unwrap();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(total, 4);
    let (names, _) = catalog.queue_names("p", "q", Some("b"), 10).await.unwrap();
    assert_eq!(names, vec!["c", "orders"]);
    let (names, total) = catalog.queue_names("p/x", "q", None, 10).await.unwrap();
    assert_eq!((names, total), (vec!["zzz".to_string()], 1));
    catalog.remove_placement("p", "q", "orders").await.unwrap();
    assert_eq!(catalog.placement("p", "q", "orders").await.unwrap(), None);
    assert_eq!(catalog.queue_names("p", "q", None, 10).await.unwrap().1, 3);
}

/// Pools are global, flavors per project.
pub async fn pools_and_flavors_round_trip(store: CatalogStoreRef) {
    let catalog = Catalog::new(store, &root());
    for (name, weight) in [("b/1", 10), ("a", 0), ("c", 5)] {
        catalog
            .put_pool(&Pool {
                name: name.into(),
                uri: format!("redis://{name}"),
                weight,
                flavor: None,
                options: serde_json::json!({}),
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = catalog
        .all_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["a", "b/1", "c"]);
    let page = catalog.pools(Some("a"), 1).await.unwrap();
    assert_eq!(page[0].name, "b/1");
    assert_eq!(catalog.pool("b/1").await.unwrap().unwrap().weight, 10);
    catalog.delete_pool("b/1").await.unwrap();
    assert!(catalog.pool("b/1").await.unwrap().is_none());

    let gold = Flavor {
        name: "gold".into(),
        project: "p1".into(),
    };
    catalog.put_flavor(&gold).await.unwrap();
    assert_eq!(catalog.flavor("p1", "gold").await.unwrap(), Some(gold));
    assert_eq!(catalog.flavor("p2", "gold").await.unwrap(), None);
    assert!(catalog.flavors("p2", None, 10).await.unwrap().is_empty());
    assert_eq!(catalog.flavors("p1", None, 10).await.unwrap().len(), 1);
    catalog.delete_flavor("p1", "gold").await.unwrap();
    assert!(catalog.flavors("p1", None, 10).await.unwrap().is_empty());
}
