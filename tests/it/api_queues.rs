//! Queues and metadata over HTTP: contract §2.1, §2.2 and the rows of §5.5
//! (Q*), plus the queue rows of §5.1 (E*).

use serde_json::{Value, json};
use zaqar_tests::Cluster;

const PATCH_TYPE: &str = "application/openstack-messaging-v2.0-json-patch";

fn defaults() -> Value {
    json!({
        "_max_messages_post_size": 262144,
        "_default_message_ttl": 3600,
        "_default_message_delay": 0,
        "_dead_letter_queue": null,
        "_dead_letter_queue_messages_ttl": null,
        "_max_claim_count": null,
        "_enable_encrypt_messages": false
    })
}

/// Q1–Q7, E10, E11: create, re-create, get and delete.
#[tokio::test]
async fn create_get_delete() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let reply = http
        .json(
            "PUT",
            "/v2/queues/orders",
            json!({"team": "a", "_default_message_ttl": 600}),
        )
        .await;
    reply.expect("Q1", 201);
    assert_eq!(reply.header("location"), Some("/v2/queues/orders"));
    assert!(reply.text.is_empty());
    let again = http
        .json("PUT", "/v2/queues/orders", json!({"team": "b"}))
        .await;
    again.expect("Q2", 204);
    assert_eq!(again.header("location"), Some("/v2/queues/orders"));
    http.call("PUT", "/v2/queues/orders")
        .await
        .expect("Q2 without body", 204);
    let got = http.call("GET", "/v2/queues/orders").await;
    got.expect("get", 200);
    let mut expected = defaults();
    expected["team"] = json!("a");
    expected["_default_message_ttl"] = json!(600);
    assert_eq!(
        got.json, expected,
        "Q2: metadata unchanged by the second PUT"
    );

    for body in ["{", "[]", ".", "  ", "\"x\"", "[1]"] {
        http.call_with("PUT", "/v2/queues/bad-body", body)
            .await
            .expect(&format!("Q3 {body:?}"), 400);
    }
    let too_big = format!("{{\"a\": \"{}\"}}", "x".repeat(65_538));
    http.call_with("PUT", "/v2/queues/big", &too_big)
        .await
        .expect_error(
            "Q4",
            400,
            "Invalid API request",
            "Queue metadata is too large. Max size: 65536",
        );
    let hundredfold = format!("{{\"a\": \"{}\"}}", "x".repeat(6_553_600));
    http.call_with("PUT", "/v2/queues/big", &hundredfold)
        .await
        .expect("Q4 x100", 400);
    let just_under = format!("{{\"a\": \"{}\"}}", "x".repeat(65_529 - 10));
    assert!(just_under.len() <= 65_536);
    http.call_with("PUT", "/v2/queues/big", &just_under)
        .await
        .expect("Q5", 201);
    let stored = http.call("GET", "/v2/queues/big").await;
    assert_eq!(
        stored.json["a"].as_str().map(str::len),
        Some(65_519),
        "Q5 stored as sent"
    );

    for (row, metadata) in [
        ("Q6 ttl 0", json!({"_default_message_ttl": 0})),
        ("Q6 ttl 59", json!({"_default_message_ttl": 59})),
        ("Q6 ttl max+1", json!({"_default_message_ttl": 1_209_601})),
        ("Q6 delay", json!({"_default_message_delay": 901})),
        ("Q6 size 0", json!({"_max_messages_post_size": 0})),
        ("Q6 size", json!({"_max_messages_post_size": 262_145})),
        (
            "Q6 dlq ttl 0",
            json!({"_dead_letter_queue_messages_ttl": 0}),
        ),
        (
            "Q6 dlq ttl 59",
            json!({"_dead_letter_queue_messages_ttl": 59}),
        ),
        (
            "Q6 dlq ttl str",
            json!({"_dead_letter_queue_messages_ttl": "123"}),
        ),
        ("Q6 max claims str", json!({"_max_claim_count": "123"})),
    ] {
        http.json("PUT", "/v2/queues/reserved", metadata)
            .await
            .expect_error(row, 400, "Invalid API request", "");
    }
    http.json(
        "PUT",
        "/v2/queues/reserved",
        json!({"_default_message_ttl": 60, "_max_messages_post_size": 255}),
    )
    .await
    .expect("Q7", 201);

    http.call("DELETE", "/v2/queues/orders")
        .await
        .expect("delete", 204);
    http.call("DELETE", "/v2/queues/orders")
        .await
        .expect("E10", 204);
    let missing = http.call("GET", "/v2/queues/orders").await;
    missing.expect("E11", 200);
    assert_eq!(missing.json, defaults(), "E11: defaults only");
    http.call("GET", "/v2/queues/orders/stats")
        .await
        .expect("E7 after delete", 200);
}

async fn patch(http: &zaqar_tests::Http, path: &str, body: Value) -> zaqar_tests::Reply {
    http.send(
        http.request("PATCH", path)
            .header("Content-Type", PATCH_TYPE)
            .body(body.to_string()),
    )
    .await
}

/// Q12–Q19, E12, E13: JSON-patch updates.
#[tokio::test]
async fn patch_metadata() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let path = "/v2/queues/patched";
    patch(
        &http,
        path,
        json!([{"op": "add", "path": "/metadata/a", "value": 1}]),
    )
    .await
    .expect_error("E12", 404, "Not found", "does not exist");
    patch(
        &http,
        path,
        json!([{"op": "a", "path": "/metadata/a", "value": 1}]),
    )
    .await
    .expect("E13: validation before lookup", 400);
    http.json("PUT", path, json!({"team": "a", "_max_claim_count": 3}))
        .await
        .expect("create", 201);

    let reply = patch(
        &http,
        path,
        json!([
            {"op": "add", "path": "/metadata/team", "value": "payments"},
            {"op": "replace", "path": "/metadata/_default_message_ttl", "value": 300},
            {"op": "remove", "path": "/metadata/_max_claim_count"}
        ]),
    )
    .await;
    reply.expect("patch", 200);
    let mut expected = defaults();
    expected["team"] = json!("payments");
    expected["_default_message_ttl"] = json!(300);
    assert_eq!(reply.json, expected);
    assert_eq!(http.call("GET", path).await.json, expected, "stored");

    patch(
        &http,
        path,
        json!([{"op": "replace", "path": "/metadata/missing", "value": 1}]),
    )
    .await
    .expect_error(
        "Q12",
        409,
        "Resource conflict",
        "Can't replace non-existent object missing.",
    );
    patch(
        &http,
        path,
        json!([{"op": "remove", "path": "/metadata/missing"}]),
    )
    .await
    .expect_error(
        "Q13",
        409,
        "Resource conflict",
        "Can't remove non-existent object missing.",
    );
    patch(
        &http,
        path,
        json!([{"op": "remove", "path": "/metadata/_dead_letter_queue"}]),
    )
    .await
    .expect("Q14", 200);
    let reply = patch(
        &http,
        path,
        json!([{"op": "replace", "path": "/metadata/_max_claim_count", "value": 5}]),
    )
    .await;
    reply.expect("Q15", 200);
    assert_eq!(reply.json["_max_claim_count"], 5);
    patch(
        &http,
        path,
        json!([{"op": "add", "path": "/a", "value": 1}]),
    )
    .await
    .expect_error("Q16", 400, "Invalid request body", "Invalid JSON pointer");
    patch(
        &http,
        path,
        json!([{"op": "a", "path": "/metadata/a", "value": 1}]),
    )
    .await
    .expect_error("Q17", 400, "Invalid request body", "Invalid operation: `a`");
    http.send(
        http.request("PATCH", path)
            .header("Content-Type", "application/json")
            .body(json!([{"op": "add", "path": "/metadata/a", "value": 1}]).to_string()),
    )
    .await
    .expect_error("Q18", 415, "415 Unsupported Media Type", "Accept-Patch");
    http.send(
        http.request("PATCH", path)
            .header("Content-Type", format!("{PATCH_TYPE}; charset=utf-8"))
            .body("[]"),
    )
    .await
    .expect("Q18 with a charset", 415);
    patch(
        &http,
        path,
        json!([{"op": "replace", "path": "/metadata/_default_message_ttl", "value": 30}]),
    )
    .await
    .expect_error("Q19", 400, "Invalid request body", "_default_message_ttl");
    patch(&http, path, json!({"op": "add"})).await.expect_error(
        "not an array",
        400,
        "Invalid request body",
        "Document type not supported.",
    );
    http.send(
        http.request("PATCH", path)
            .header("Content-Type", PATCH_TYPE),
    )
    .await
    .expect_error(
        "empty",
        400,
        "Invalid request body",
        "PATCH body could not be empty for update.",
    );
    assert_eq!(
        http.call("GET", path).await.json["_max_claim_count"],
        5,
        "failed patches change nothing"
    );
}

/// Q20–Q26: listing with paging, filters, details and counts.
#[tokio::test]
async fn list_queues() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let empty = http.call("GET", "/v2/queues").await;
    empty.expect("Q21", 200);
    assert_eq!(empty.json, json!({"queues": [], "links": []}));
    assert_eq!(
        http.call("GET", "/v2/queues?with_count=true")
            .await
            .json
            .get("count"),
        None
    );
    http.call("GET", "/v2/queues?limit=21").await.expect_error(
        "Q20",
        400,
        "Invalid API request",
        "no greater than 20",
    );
    http.call("GET", "/v2/queues?limit=0")
        .await
        .expect("limit 0", 400);

    for (name, metadata) in [
        ("alpha", json!({"node": 31, "test_metadata_key2": 30})),
        ("beta", json!({"node": 34})),
        ("qgamma", json!({"test_metadata_key2": 30})),
        ("queue", json!({"test_metadata_key2": 31})),
    ] {
        http.json("PUT", &format!("/v2/queues/{name}"), metadata)
            .await
            .expect("create", 201);
    }
    // Another project's queue sorting right after must never show (Q26).
    http.other_project()
        .call("PUT", "/v2/queues/alpha0")
        .await
        .expect("neighbour", 201);
    http.post_messages("delta", 1).await;

    let mut seen = Vec::new();
    let mut path = "/v2/queues?limit=2".to_string();
    loop {
        let page = http.call("GET", &path).await;
        page.expect("page", 200);
        let queues = page.json["queues"].as_array().unwrap().clone();
        if queues.is_empty() {
            assert_eq!(page.json["links"], json!([]));
            break;
        }
        for queue in &queues {
            let name = queue["name"].as_str().unwrap().to_string();
            assert_eq!(queue["href"], format!("/v2/queues/{name}"));
            assert!(queue.get("metadata").is_none());
            seen.push(name);
        }
        let next = page.json["links"][0]["href"].as_str().unwrap().to_string();
        // Parameters keep the order they were read in (marker first once
        // the client sends one), with the marker replaced.
        assert!(
            next.starts_with("/v2/queues?limit=2&marker=")
                || next.starts_with("/v2/queues?marker="),
            "{next}"
        );
        assert!(next.contains("limit=2"), "{next}");
        path = next;
        assert!(seen.len() <= 5, "paging ends");
    }
    assert_eq!(seen, vec!["alpha", "beta", "delta", "qgamma", "queue"]);

    http.call("GET", "/v2/queues?marker=zzz")
        .await
        .expect("Q22", 200);
    let none = http.call("GET", "/v2/queues?node=99").await;
    none.expect("Q23", 200);
    assert_eq!(none.json["queues"], json!([]));
    let node = http.call("GET", "/v2/queues?node=34").await;
    assert_eq!(node.json["queues"][0]["name"], "beta", "integer filter");
    let combined = http
        .call("GET", "/v2/queues?name=q&test_metadata_key2=30")
        .await;
    combined.expect("Q24", 200);
    let names: Vec<&str> = combined.json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["qgamma"], "Q24");
    let counted = http.call("GET", "/v2/queues?with_count=true&limit=1").await;
    assert_eq!(counted.json["count"], 5, "Q25");
    assert_eq!(
        counted.json["links"][0]["href"],
        "/v2/queues?limit=1&with_count=true&marker=alpha"
    );
    let detailed = http.call("GET", "/v2/queues?detailed=true&limit=1").await;
    let mut expected = defaults();
    expected["node"] = json!(31);
    expected["test_metadata_key2"] = json!(30);
    assert_eq!(
        detailed.json["queues"][0]["metadata"], expected,
        "detailed fills defaults"
    );
    http.call("GET", "/v2/queues?detailed=maybe")
        .await
        .expect("bad bool", 400);
}

/// E7, E19, Q28–Q30 and stats.
#[tokio::test]
async fn stats_and_purge() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let stats = http.call("GET", "/v2/queues/ghost/stats").await;
    stats.expect("E7", 200);
    assert_eq!(
        stats.json,
        json!({"messages": {"claimed": 0, "free": 0, "total": 0}})
    );
    http.call("POST", "/v2/queues/ghost/purge")
        .await
        .expect("E19", 204);

    let ids = http.post_messages("busy", 20).await;
    http.claim("busy", 15).await;
    let stats = http.call("GET", "/v2/queues/busy/stats").await;
    let messages = &stats.json["messages"];
    assert_eq!(
        (
            messages["claimed"].clone(),
            messages["free"].clone(),
            messages["total"].clone()
        ),
        (json!(15), json!(5), json!(20))
    );
    assert_eq!(
        messages["oldest"]["href"],
        format!("/v2/queues/busy/messages/{}", ids[0])
    );
    assert_eq!(
        messages["newest"]["href"],
        format!("/v2/queues/busy/messages/{}", ids[19])
    );
    let created = messages["oldest"]["created"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    assert_eq!(messages["oldest"].as_object().unwrap().len(), 3);

    for body in [
        json!({"wrong_key": ["messages"]}),
        json!({"resource_types": ["wrong_value"]}),
    ] {
        http.json("POST", "/v2/queues/busy/purge", body)
            .await
            .expect("Q28", 400);
    }
    http.json(
        "POST",
        "/v2/queues/busy/subscriptions",
        json!({"subscriber": "http://example.com/hook"}),
    )
    .await
    .expect("subscribe", 201);
    http.json(
        "POST",
        "/v2/queues/busy/purge",
        json!({"resource_types": ["messages"]}),
    )
    .await
    .expect("Q29", 204);
    let left = http.call("GET", "/v2/queues/busy/stats").await;
    assert_eq!(
        left.json["messages"]["free"], 0,
        "Q29: unclaimed messages gone"
    );
    assert_eq!(
        left.json["messages"]["claimed"], 15,
        "claimed messages are not purged"
    );
    let subscriptions = http.call("GET", "/v2/queues/busy/subscriptions").await;
    assert_eq!(
        subscriptions.json["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "Q29: kept"
    );
    http.json(
        "POST",
        "/v2/queues/busy/purge",
        json!({"resource_types": ["messages", "subscriptions"]}),
    )
    .await
    .expect("Q30", 204);
    let subscriptions = http.call("GET", "/v2/queues/busy/subscriptions").await;
    assert_eq!(subscriptions.json["subscriptions"], json!([]), "Q30");
    http.json(
        "POST",
        "/v2/queues/busy/purge",
        json!({"resource_types": []}),
    )
    .await
    .expect("empty list", 204);
}

/// Topics are a separate namespace with three reserved defaults.
#[tokio::test]
async fn topics_are_separate() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.call("PUT", "/v2/topics/news")
        .await
        .expect("create topic", 201);
    let got = http.call("GET", "/v2/topics/news").await;
    assert_eq!(
        got.json,
        json!({"_max_messages_post_size": 262144, "_default_message_ttl": 3600, "_default_message_delay": 0})
    );
    let queues = http.call("GET", "/v2/queues").await;
    assert_eq!(queues.json["queues"], json!([]), "a topic is not a queue");
    let topics = http.call("GET", "/v2/topics").await;
    assert_eq!(topics.json["topics"][0]["href"], "/v2/topics/news");
    let posted = http
        .json(
            "POST",
            "/v2/topics/news/messages",
            json!({"messages": [{"body": 1}]}),
        )
        .await;
    posted.expect("topic messages", 201);
    assert!(
        posted.json["resources"][0]
            .as_str()
            .unwrap()
            .starts_with("/v2/topics/news/messages/")
    );
    let stats = http.call("GET", "/v2/topics/news/stats").await;
    assert_eq!(stats.json["messages"]["total"], 1);
    assert!(stats.json["messages"].get("claimed").is_none());
    assert_eq!(
        http.call("GET", "/v2/queues/news/stats").await.json["messages"]["total"],
        0
    );
    http.send(
        http.request("PATCH", "/v2/topics/news")
            .header("Content-Type", PATCH_TYPE)
            .body(json!([{"op": "remove", "path": "/metadata/_max_claim_count"}]).to_string()),
    )
    .await
    .expect("not reserved on topics", 409);
}
