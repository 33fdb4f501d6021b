//! The MongoDB backend behind real processes: a pooled cluster with a Redis
//! pool and a Mongo pool answering alike over HTTP, the contract's seed
//! behaviours on a missing queue, and a node whose Mongo server dies
//! answering 503 until it recovers by itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use zaqar_catalog::Catalog;
use zaqar_catalog::store::etcd::EtcdStore;
use zaqar_proto::model::new_id;
use zaqar_storage::{Backend, GrpcBackend};
use zaqar_tests::{
    ApiNode, EtcdServer, Http, MongoServer, Reply, StorageNode, fresh_mongo_uri, test_redis_url,
};

async fn mongo_grpc_fixture() -> zaqar_storage::conformance::Fixture {
    let node = StorageNode::start(&fresh_mongo_uri("grpc")).expect("storage node");
    let backend = GrpcBackend::connect_lazy(&node.url()).expect("client");
    zaqar_storage::conformance::Fixture {
        backend: Arc::new(backend),
        guard: Some(Box::new(node)),
    }
}

/// The whole backend conformance suite through a real storage node on a
/// Mongo pool (the proof sized for the test server, as in the backend's
/// own run).
mod conformance_over_grpc {
    use super::mongo_grpc_fixture;

    zaqar_storage::backend_conformance_suite!(mongo_grpc_fixture, concurrency = (200, 100));
}

/// Bodies of the messages of a reply (`messages` array), in order.
fn bodies(reply: &Reply) -> Vec<Value> {
    reply.json["messages"]
        .as_array()
        .map(|messages| messages.iter().map(|m| m["body"].clone()).collect())
        .unwrap_or_default()
}

/// Drives one queue through the message, claim, stats, subscription, purge
/// and delete API and returns what a client observes, ids left out.
async fn transcript(http: &Http, queue: &str) -> Vec<String> {
    let base = format!("/v2/queues/{queue}");
    let mut seen = Vec::new();
    let mut note = |step: &str, reply: &Reply, detail: Value| {
        seen.push(format!("{step}: {} {detail}", reply.status));
    };

    let ids = http.post_messages(queue, 3).await;
    let page = http
        .call("GET", &format!("{base}/messages?echo=true&limit=2"))
        .await;
    note("first page", &page, json!(bodies(&page)));
    let next = page.json["links"][0]["href"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let second = http.call("GET", &next).await;
    note("second page", &second, json!(bodies(&second)));
    let own = http.call("GET", &format!("{base}/messages")).await;
    note("no echo", &own, json!(bodies(&own)));
    let others = http
        .other_client()
        .call("GET", &format!("{base}/messages"))
        .await;
    note("other client", &others, json!(bodies(&others)));

    let claimed = http
        .json(
            "POST",
            &format!("{base}/claims?limit=2"),
            json!({"ttl": 300, "grace": 60}),
        )
        .await;
    note("claim", &claimed, json!(bodies(&claimed)));
    let claim_href = claimed.header("location").unwrap_or_default().to_string();
    let claim_id = claim_href
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let got = http.call("GET", &claim_href).await;
    note(
        "get claim",
        &got,
        json!([got.json["ttl"], got.json["grace"], bodies(&got)]),
    );
    let stats = http.call("GET", &format!("{base}/stats")).await;
    note("stats", &stats, stats.json["messages"]["total"].clone());
    note(
        "stats counts",
        &stats,
        json!([
            stats.json["messages"]["claimed"],
            stats.json["messages"]["free"]
        ]),
    );
    let refused = http
        .call("DELETE", &format!("{base}/messages/{}", ids[0]))
        .await;
    note("delete claimed", &refused, refused.json["title"].clone());
    let deleted = http
        .call(
            "DELETE",
            &format!("{base}/messages/{}?claim_id={claim_id}", ids[0]),
        )
        .await;
    note("delete with claim", &deleted, Value::Null);
    let bad_claim = http
        .call("DELETE", &format!("{base}/messages/{}?claim_id=a", ids[1]))
        .await;
    note("delete malformed claim", &bad_claim, Value::Null);
    let renewed = http.json("PATCH", &claim_href, json!({"ttl": 120})).await;
    note("renew", &renewed, Value::Null);
    let released = http.call("DELETE", &claim_href).await;
    note("release", &released, Value::Null);
    let gone = http.call("GET", &claim_href).await;
    note("released claim", &gone, Value::Null);
    let nothing = http
        .json(
            "POST",
            "/v2/queues/never-created/claims",
            json!({"ttl": 300, "grace": 60}),
        )
        .await;
    note("claim missing queue", &nothing, Value::Null);

    let popped = http.call("DELETE", &format!("{base}/messages?pop=1")).await;
    note("pop", &popped, json!(bodies(&popped)));
    let by_ids = http
        .call("GET", &format!("{base}/messages?ids={}", ids.join(",")))
        .await;
    note("get by ids", &by_ids, json!(bodies(&by_ids)));
    let bulk = http
        .call("DELETE", &format!("{base}/messages?ids={}", ids.join(",")))
        .await;
    note("delete by ids", &bulk, Value::Null);
    let missing = http
        .call("GET", &format!("{base}/messages/{}", ids[2]))
        .await;
    note("get deleted", &missing, Value::Null);

    let subscribe = json!({"subscriber": "http://example.com/hook", "ttl": 3600});
    let first = http
        .json("POST", &format!("{base}/subscriptions"), subscribe.clone())
        .await;
    note("subscribe", &first, Value::Null);
    let again = http
        .json("POST", &format!("{base}/subscriptions"), subscribe)
        .await;
    note(
        "subscribe again",
        &again,
        json!(again.json["subscription_id"] == first.json["subscription_id"]),
    );
    let listed = http.call("GET", &format!("{base}/subscriptions")).await;
    note(
        "subscriptions",
        &listed,
        json!(listed.json["subscriptions"].as_array().map(Vec::len)),
    );

    http.post_messages(queue, 2).await;
    let purged = http
        .json(
            "POST",
            &format!("{base}/purge"),
            json!({"resource_types": ["messages", "subscriptions"]}),
        )
        .await;
    note("purge", &purged, Value::Null);
    let stats = http.call("GET", &format!("{base}/stats")).await;
    note("stats after purge", &stats, stats.json["messages"].clone());
    let deleted = http.call("DELETE", &base).await;
    note("delete queue", &deleted, Value::Null);
    seen
}

async fn wait_for_ping(http: &Http) {
    for _ in 0..200 {
        if http.call("GET", "/v2/ping").await.status == 204 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the api node never saw every pool's storage node");
}

/// A Redis pool and a Mongo pool (flavor `mongo`) in one pooled cluster:
/// the same client calls give the same results on a queue of each pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_and_mongo_pools_answer_alike() {
    let etcd = EtcdServer::start().unwrap();
    let redis_uri = format!("{}/9", test_redis_url());
    let mongo_uri = fresh_mongo_uri("pooled");
    let _redis_node = StorageNode::registered(&redis_uri, &etcd.url()).unwrap();
    let _mongo_node = StorageNode::registered(&mongo_uri, &etcd.url()).unwrap();
    let api = ApiNode::pooled(&etcd.url()).unwrap();
    let admin = Http::new(&api.url()).as_admin();
    admin
        .json(
            "PUT",
            "/v2/pools/redis",
            json!({"uri": redis_uri, "weight": 100}),
        )
        .await
        .expect("register the redis pool", 201);
    admin
        .json(
            "PUT",
            "/v2/pools/mongo",
            json!({"uri": mongo_uri, "weight": 100}),
        )
        .await
        .expect("register the mongo pool", 201);
    admin
        .json("PUT", "/v2/flavors/mongo", json!({"pool_list": ["mongo"]}))
        .await
        .expect("create the mongo flavor", 201);
    wait_for_ping(&admin).await;

    let client = Http::new(&api.url()).with_project(&admin.project);
    client
        .call("PUT", "/v2/queues/on-redis")
        .await
        .expect("plain queue", 201);
    client
        .json("PUT", "/v2/queues/on-mongo", json!({"_flavor": "mongo"}))
        .await
        .expect("flavored queue", 201);
    let store = EtcdStore::connect(&[etcd.url()]).await.unwrap();
    let catalog = Catalog::new(Arc::new(store), "/zaqar");
    for (queue, pool) in [("on-redis", "redis"), ("on-mongo", "mongo")] {
        let placed = catalog
            .placement(&client.project, "q", queue)
            .await
            .unwrap()
            .expect("placed");
        assert_eq!(placed.pool, pool, "{queue}");
    }

    let on_redis = transcript(&client, "on-redis").await;
    let on_mongo = transcript(&client, "on-mongo").await;
    assert_eq!(on_mongo, on_redis);
    // The transcript is worth comparing: it saw real work on both pools.
    assert!(
        on_mongo.iter().any(|line| line.starts_with("claim: 201")),
        "{on_mongo:#?}"
    );
    drop(etcd);
}

/// Contract §5.1 seed rows through an API node in front of a storage node on
/// a Mongo pool: a missing queue answers 204 to deleting one message or
/// messages by id and 404 to getting messages by id, and none of these
/// creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_behaviours_on_a_missing_queue_on_mongo() {
    let storage = StorageNode::start(&fresh_mongo_uri("seed")).unwrap();
    let api = ApiNode::start(&storage.url(), &[]).unwrap();
    let http = Http::new(&api.url());
    let base = "/v2/queues/nonexistent";
    http.call("DELETE", &format!("{base}/messages/{}", new_id()))
        .await
        .expect("E1 delete one message", 204);
    http.call("DELETE", &format!("{base}/messages?ids=a,b"))
        .await
        .expect("E2 delete by ids", 204);
    http.call("GET", &format!("{base}/messages?ids=a,b"))
        .await
        .expect("E3 get by ids", 404);
    let queues = http.call("GET", "/v2/queues").await;
    queues.expect("list queues", 200);
    assert_eq!(queues.json["queues"], json!([]), "nothing was created");

    // E21: the ids of a deleted queue delete nothing and fail nothing.
    let ids = http.post_messages("short-lived", 2).await;
    http.call("DELETE", "/v2/queues/short-lived")
        .await
        .expect("delete queue", 204);
    http.call(
        "DELETE",
        &format!("/v2/queues/short-lived/messages?ids={}", ids.join(",")),
    )
    .await
    .expect("E21 delete by ids after the queue", 204);
}

/// A storage node whose Mongo server is killed answers 503 (not 500, and
/// not never), and serves again by itself once the server is restarted on
/// the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_mongo_dies_answers_503_then_recovers() {
    let mut mongo = MongoServer::start().unwrap();
    let storage = StorageNode::start(&mongo.uri("outage")).unwrap();
    let api = ApiNode::start(&storage.url(), &[]).unwrap();
    let http = Http::new(&api.url());
    let ids = http.post_messages("kept", 1).await;

    mongo.kill();
    for (method, path) in [
        ("GET", "/v2/queues/kept/messages?echo=true"),
        ("GET", "/v2/queues/kept/stats"),
        ("DELETE", "/v2/queues/kept/messages?pop=1"),
    ] {
        let reply = http.call(method, path).await;
        reply.expect_error(
            &format!("{method} {path} while mongo is down"),
            503,
            "Service temporarily unavailable",
            "",
        );
    }
    let posted = http
        .json(
            "POST",
            "/v2/queues/kept/messages",
            json!({"messages": [{"body": 1}]}),
        )
        .await;
    posted.expect("post while mongo is down", 503);
    let node = GrpcBackend::connect_lazy(&storage.url()).unwrap();
    assert!(!node.health().await.unwrap().reachable);

    mongo.restart().unwrap();
    let mut recovered = None;
    for _ in 0..300 {
        let reply = http
            .call("GET", &format!("/v2/queues/kept/messages/{}", ids[0]))
            .await;
        if reply.status == 200 {
            recovered = Some(reply);
            break;
        }
        assert_eq!(
            reply.status, 503,
            "only 503 while recovering: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = recovered.expect("the node serves again once mongo is back");
    assert_eq!(
        message.json["body"],
        json!({"n": 0}),
        "the message survived"
    );
    assert!(node.health().await.unwrap().reachable);
}
