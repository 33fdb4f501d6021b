//! A real pooled cluster: etcd, two pools (two Redis databases), a storage
//! node per pool registered in etcd, and two API nodes placing queues
//! through the catalog (contract §2.7, §2.8, §4.11).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zaqar_catalog::Catalog;
use zaqar_catalog::store::etcd::EtcdStore;
use zaqar_tests::{ApiNode, EtcdServer, Http, Reply, StorageNode, test_redis_url};

struct PooledCluster {
    /// The project of the admin client (fresh: pools share the test Redis).
    admin_project: String,
    apis: Vec<ApiNode>,
    storage: Vec<StorageNode>,
    pools: Vec<(String, String)>,
    catalog: Catalog,
    etcd: EtcdServer,
}

impl PooledCluster {
    /// Starts etcd, one storage node per pool and two API nodes, then
    /// registers the pools (name, weight, flavor) through the first API node.
    async fn start(pools: &[(&str, u64)]) -> PooledCluster {
        let etcd = EtcdServer::start().unwrap();
        let redis = test_redis_url();
        let mut storage = Vec::new();
        let mut uris = Vec::new();
        for (index, (name, _)) in pools.iter().enumerate() {
            // Distinct databases of the test Redis are distinct pools.
            let uri = format!("{redis}/{}", index + 1);
            storage.push(StorageNode::registered(&uri, &etcd.url()).unwrap());
            uris.push((name.to_string(), uri));
        }
        let apis = vec![
            ApiNode::pooled(&etcd.url()).unwrap(),
            ApiNode::pooled(&etcd.url()).unwrap(),
        ];
        let store = EtcdStore::connect(&[etcd.url()]).await.unwrap();
        let catalog = Catalog::new(Arc::new(store), "/zaqar");
        let cluster = PooledCluster {
            admin_project: format!("admin-{}", uuid::Uuid::new_v4().simple()),
            apis,
            storage,
            pools: uris,
            catalog,
            etcd,
        };
        let admin = cluster.admin(0);
        for ((name, uri), (_, weight)) in cluster.pools.iter().zip(pools) {
            admin
                .json(
                    "PUT",
                    &format!("/v2/pools/{name}"),
                    json!({"uri": uri, "weight": weight}),
                )
                .await
                .expect("register pool", 201);
        }
        cluster.wait_until_nodes_known().await;
        cluster
    }

    fn admin(&self, node: usize) -> Http {
        let http = Http::new(&self.apis[node].url());
        http.with_project(&self.admin_project).as_admin()
    }

    fn client(&self, node: usize, project: &str) -> Http {
        Http::new(&self.apis[node].url()).with_project(project)
    }

    /// Waits until both API nodes route to every pool.
    async fn wait_until_nodes_known(&self) {
        for node in 0..self.apis.len() {
            let http = self.client(node, "warmup");
            let mut ready = false;
            for _ in 0..100 {
                if http.call("GET", "/v2/ping").await.status == 204 {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ready, "api node {node} sees every pool's storage node");
        }
    }

    async fn pool_of(&self, project: &str, queue: &str) -> String {
        self.catalog
            .placement(project, "q", queue)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{queue} has no placement"))
            .pool
    }
}

fn admin_call(reply: Reply, row: &str, status: u16) -> Reply {
    reply.expect(row, status);
    reply
}

/// Queues spread over pools by weight; both API nodes agree on every queue;
/// concurrent creations of one name agree on one pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_follows_weights_and_nodes_agree() {
    let cluster = PooledCluster::start(&[("heavy", 300), ("light", 100)]).await;
    let project = format!("spread-{}", uuid::Uuid::new_v4().simple());
    for i in 0..200 {
        cluster
            .client(i % 2, &project)
            .call("PUT", &format!("/v2/queues/q{i}"))
            .await
            .expect("create", 201);
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        *counts
            .entry(cluster.pool_of(&project, &format!("q{i}")).await)
            .or_default() += 1;
    }
    let heavy = counts.get("heavy").copied().unwrap_or_default();
    eprintln!("placement of 200 queues: {counts:?}");
    assert!(
        (120..=178).contains(&heavy),
        "heavy should hold about 150 of 200: {counts:?}"
    );

    // Each node routes every queue to its recorded pool: a message posted
    // through one node is read through the other.
    for i in (0..200).step_by(20) {
        let queue = format!("q{i}");
        let writer = cluster.client(i % 2, &project);
        let ids = writer.post_messages(&queue, 1).await;
        let reader = cluster.client((i + 1) % 2, &project).other_client();
        let listed = reader
            .call("GET", &format!("/v2/queues/{queue}/messages"))
            .await;
        assert_eq!(listed.json["messages"][0]["id"], ids[0], "{queue}");
    }

    // 50 concurrent creations of one name through both nodes: one 201.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = cluster.client(i % 2, &project);
        tasks.push(tokio::spawn(async move {
            http.call("PUT", "/v2/queues/contended").await.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|status| *status == 201 || *status == 204),
        "{statuses:?}"
    );
    let ids = cluster
        .client(0, &project)
        .post_messages("contended", 1)
        .await;
    let seen = cluster
        .client(1, &project)
        .other_client()
        .call("GET", "/v2/queues/contended/messages")
        .await;
    assert_eq!(seen.json["messages"][0]["id"], ids[0]);

    // Listing reads the catalog across pools.
    let listed = cluster
        .client(1, &project)
        .call("GET", "/v2/queues?limit=20&with_count=true")
        .await;
    assert_eq!(listed.json["count"], 201);
    assert_eq!(listed.json["queues"].as_array().unwrap().len(), 20);
    drop(cluster.etcd);
}

/// `_flavor` places queues on the flavor's pools only; unknown flavors are
/// refused; the management API follows the contract (H20–H34).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flavors_and_management_api() {
    let cluster = PooledCluster::start(&[("plain", 100), ("gold-a", 100), ("gold-b", 100)]).await;
    let admin = cluster.admin(0);
    let project = admin.project.clone();
    admin_call(
        admin
            .json(
                "PUT",
                "/v2/flavors/gold",
                json!({"pool_list": ["gold-a", "gold-b"]}),
            )
            .await,
        "create flavor",
        201,
    );
    let flavor = admin.call("GET", "/v2/flavors/gold").await;
    flavor.expect("get flavor", 200);
    assert_eq!(flavor.json["pool_list"], json!(["gold-a", "gold-b"]));
    assert_eq!(
        flavor.json["capabilities"],
        json!(["FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"])
    );

    for i in 0..20 {
        admin
            .json(
                "PUT",
                &format!("/v2/queues/g{i}"),
                json!({"_flavor": "gold"}),
            )
            .await
            .expect("flavored queue", 201);
        admin
            .call("PUT", &format!("/v2/queues/p{i}"))
            .await
            .expect("plain queue", 201);
    }
    for i in 0..20 {
        let gold = cluster.pool_of(&project, &format!("g{i}")).await;
        assert!(gold.starts_with("gold-"), "g{i} on {gold}");
        assert_eq!(
            cluster.pool_of(&project, &format!("p{i}")).await,
            "plain",
            "p{i}"
        );
    }
    admin
        .json("PUT", "/v2/queues/nope", json!({"_flavor": "silver"}))
        .await
        .expect_error(
            "H34",
            400,
            "Invalid API request",
            "Flavor silver does not exist",
        );
    cluster
        .client(1, "another-project")
        .json("PUT", "/v2/queues/x", json!({"_flavor": "gold"}))
        .await
        .expect("flavors are per project", 400);

    // Pools (H20–H28).
    for body in [
        json!({"weight": 1}),
        json!({"uri": "redis://127.0.0.1:1/9"}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": -1}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": 4_294_967_297u64}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": "big"}),
        json!({"uri": -1, "weight": 1}),
        json!({"uri": [], "weight": 1}),
        json!({"uri": "localhost:27017", "weight": 1}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": 1, "options": "wee"}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": 1, "options": []}),
        json!({"uri": "redis://127.0.0.1:1/9", "weight": 1, "extra": 1}),
    ] {
        admin
            .json("PUT", "/v2/pools/bad", body.clone())
            .await
            .expect(&format!("H20 {body}"), 400);
    }
    admin
        .json(
            "PUT",
            "/v2/pools/dup",
            json!({"uri": cluster.pools[0].1, "weight": 1}),
        )
        .await
        .expect_error(
            "H21",
            409,
            "Resource conflict",
            "The database URI is in use by another pool.",
        );
    admin_call(
        admin
            .json(
                "PUT",
                "/v2/pools/plain",
                json!({"uri": cluster.pools[0].1, "weight": 50}),
            )
            .await,
        "H22",
        201,
    );
    assert_eq!(
        admin.call("GET", "/v2/pools/plain").await.json["weight"],
        50
    );
    admin
        .call("GET", "/v2/pools/missing")
        .await
        .expect("H24", 404);
    admin
        .json("PATCH", "/v2/pools/plain", json!({"location": 1}))
        .await
        .expect("H25", 400);
    admin
        .json("PATCH", "/v2/pools/missing", json!({"weight": 1}))
        .await
        .expect("H26", 404);
    admin
        .call("GET", "/v2/pools?limit=0")
        .await
        .expect("H27", 400);
    let patched = admin
        .json(
            "PATCH",
            "/v2/pools/gold-b",
            json!({"weight": 7, "flavor": ""}),
        )
        .await;
    patched.expect("patch", 200);
    assert_eq!(patched.json["flavor"], serde_json::Value::Null);
    assert_eq!(patched.json["weight"], 7);
    admin.call("DELETE", "/v2/pools/gold-a").await.expect_error(
        "last pool of a flavor",
        403,
        "Unable to delete",
        "This pool is used by flavors gold",
    );
    let listed = admin.call("GET", "/v2/pools?detailed=true").await;
    assert_eq!(listed.json["pools"].as_array().unwrap().len(), 3);
    assert!(listed.json["pools"][0]["options"].is_object());
    assert!(listed.header("content-location").is_some());
    cluster
        .client(1, "nobody")
        .call("GET", "/v2/pools")
        .await
        .expect("pools need admin", 403);

    // Flavors (H29–H33).
    for body in [
        json!({}),
        json!({"capabilities": {}}),
        json!({"pool_list": 1}),
        json!({"pool_list": 4_294_967_297u64}),
    ] {
        admin
            .json("PUT", "/v2/flavors/bad", body.clone())
            .await
            .expect(&format!("H29 {body}"), 400);
    }
    admin
        .json("PUT", "/v2/flavors/bad", json!({"pool_list": []}))
        .await
        .expect_error("empty pool list", 400, "Unable to create", "Bad Request");
    let missing = admin
        .json("PUT", "/v2/flavors/silver", json!({"pool_list": ["ghost"]}))
        .await;
    missing.expect("H30", 400);
    assert_eq!(
        missing.json,
        json!({"title": "Unable to create", "description": "Flavor silver could not be created, error:Pool ghost does not exist"})
    );
    admin
        .json("PATCH", "/v2/flavors/gold", json!({"location": 1}))
        .await
        .expect("H31", 400);
    admin
        .json("PATCH", "/v2/flavors/gold", json!({"capabilities": {}}))
        .await
        .expect("H31 capabilities only", 400);
    admin
        .json(
            "PATCH",
            "/v2/flavors/missing",
            json!({"pool_list": ["plain"]}),
        )
        .await
        .expect("H32", 404);
    admin
        .json("PATCH", "/v2/flavors/gold", json!({"pool_list": ["ghost"]}))
        .await
        .expect_error(
            "unknown pool",
            400,
            "updatefail",
            "Flavor gold cant be updated, error:Pool ghost does not exist",
        );
    let updated = admin
        .json(
            "PATCH",
            "/v2/flavors/gold",
            json!({"pool_list": ["gold-b"]}),
        )
        .await;
    updated.expect("patch flavor", 200);
    assert_eq!(updated.json["pool_list"], json!(["gold-b"]));
    assert_eq!(
        admin.call("GET", "/v2/pools/gold-a").await.json["flavor"],
        serde_json::Value::Null,
        "untagged"
    );
    let flavors = cluster
        .client(1, &project)
        .call("GET", "/v2/flavors?detailed=true")
        .await;
    assert_eq!(
        flavors.json["flavors"][0]["name"], "gold",
        "flavors list needs no admin"
    );
    assert_eq!(
        cluster
            .client(1, "other")
            .call("GET", "/v2/flavors")
            .await
            .json["flavors"],
        json!([])
    );
    admin
        .call("DELETE", "/v2/flavors/gold")
        .await
        .expect("H33 delete", 204);
    admin
        .call("GET", "/v2/flavors/gold")
        .await
        .expect("H33 then", 404);
    admin
        .call("DELETE", "/v2/pools/gold-b")
        .await
        .expect("H28", 204);
    admin
        .call("GET", "/v2/pools/gold-b")
        .await
        .expect("H28 then", 404);
}

/// A pool without a live storage node fails only its own queues (503), and
/// heals when a node comes back, without restarting API nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_pool_fails_only_its_queues() {
    let mut cluster = PooledCluster::start(&[("one", 100), ("two", 100)]).await;
    let project = format!("pools-{}", uuid::Uuid::new_v4().simple());
    let http = cluster.client(0, &project);
    let mut on: HashMap<String, String> = HashMap::new();
    let mut i = 0;
    while on.len() < 2 {
        let queue = format!("q{i}");
        http.call("PUT", &format!("/v2/queues/{queue}"))
            .await
            .expect("create", 201);
        on.entry(cluster.pool_of(&project, &queue).await)
            .or_insert(queue);
        i += 1;
    }
    let (alive, dead) = (on["one"].clone(), on["two"].clone());
    http.post_messages(&alive, 1).await;
    http.post_messages(&dead, 1).await;

    let dead_uri = cluster.pools[1].1.clone();
    cluster.storage[1].guard.terminate(Duration::from_secs(10));
    let mut failing = None;
    for _ in 0..100 {
        let reply = http
            .call("GET", &format!("/v2/queues/{dead}/messages?echo=true"))
            .await;
        if reply.status == 503 {
            failing = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failing = failing.expect("the dead pool's queues answer 503");
    assert!(failing.header("retry-after").is_some());
    let listed = http
        .call("GET", &format!("/v2/queues/{alive}/messages?echo=true"))
        .await;
    listed.expect("the other pool keeps working", 200);
    assert_eq!(listed.json["messages"].as_array().unwrap().len(), 1);

    cluster.storage[1] = StorageNode::registered(&dead_uri, &cluster.etcd.url()).unwrap();
    let mut healed = false;
    for _ in 0..100 {
        let reply = http
            .call("GET", &format!("/v2/queues/{dead}/messages?echo=true"))
            .await;
        if reply.status == 200 {
            assert_eq!(
                reply.json["messages"].as_array().unwrap().len(),
                1,
                "no message lost"
            );
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healed, "the pool heals when a node serves it again");
}

/// With etcd down, placed queues keep serving; new queues get 503; after
/// etcd returns, creation works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_outage_keeps_placed_queues_serving() {
    let mut cluster = PooledCluster::start(&[("only", 100)]).await;
    let project = format!("outage-{}", uuid::Uuid::new_v4().simple());
    let http = cluster.client(0, &project);
    http.call("PUT", "/v2/queues/placed")
        .await
        .expect("create", 201);
    http.post_messages("placed", 2).await;

    cluster.etcd.stop();
    let ids = http.post_messages("placed", 1).await;
    let listed = http
        .call("GET", "/v2/queues/placed/messages?echo=true")
        .await;
    listed.expect("traffic continues", 200);
    assert_eq!(listed.json["messages"].as_array().unwrap().len(), 3);
    let (claim, _) = http.claim("placed", 1).await;
    http.call("DELETE", &format!("/v2/queues/placed/claims/{claim}"))
        .await
        .expect("release", 204);
    http.call("DELETE", &format!("/v2/queues/placed/messages/{}", ids[0]))
        .await
        .expect("delete", 204);
    let created = http.call("PUT", "/v2/queues/brand-new").await;
    created.expect_error(
        "creation needs the catalog",
        503,
        "Service temporarily unavailable",
        "",
    );
    assert!(created.header("retry-after").is_some());

    cluster.etcd.restart().unwrap();
    let mut recovered = false;
    for _ in 0..150 {
        if http.call("PUT", "/v2/queues/brand-new").await.status == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "creation works again once etcd is back");
    http.post_messages("brand-new", 1).await;
}
