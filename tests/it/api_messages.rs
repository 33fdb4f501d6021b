//! Messages over HTTP: contract §2.3, the rows of §5.2 (M*) and the message
//! rows of §5.1 (E*).

use serde_json::json;
use zaqar_tests::{ApiNode, Cluster, Http};

/// E1–E6, E14, E21 and the seed behaviours on a queue that does not exist.
#[tokio::test]
async fn nonexistent_queues() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let id = "5f1e0c2a9d3e4b0001a1b2c3";
    let reply = http
        .call("DELETE", &format!("/v2/queues/nonexistent/messages/{id}"))
        .await;
    reply.expect("E1", 204);
    assert!(reply.text.is_empty());
    let reply = http
        .call("DELETE", "/v2/queues/nonexistent/messages?ids=a,b")
        .await;
    reply.expect("E2", 204);
    assert!(reply.text.is_empty());
    http.call("GET", "/v2/queues/nonexistent/messages?ids=a,b")
        .await
        .expect_error(
            "E3",
            404,
            "Not found",
            "No messages with IDs: ['a', 'b'] found in the queue nonexistent for project",
        );
    http.call("GET", &format!("/v2/queues/nonexistent/messages/{id}"))
        .await
        .expect_error("E4", 404, "Not found", "does not exist");
    let listed = http.call("GET", "/v2/queues/nonexistent/messages").await;
    listed.expect("E5", 200);
    assert_eq!(listed.json, json!({"messages": [], "links": []}));
    let popped = http
        .call("DELETE", "/v2/queues/nonexistent/messages?pop=1")
        .await;
    popped.expect("E14", 200);
    assert_eq!(popped.json, json!({"messages": []}));
    let queues = http.call("GET", "/v2/queues").await;
    assert_eq!(
        queues.json["queues"],
        json!([]),
        "none of these created the queue"
    );

    let posted = http
        .json(
            "POST",
            "/v2/queues/fresh/messages",
            json!({"messages": [{"body": 1}]}),
        )
        .await;
    posted.expect("E6", 201);
    assert_eq!(
        http.call("GET", "/v2/queues").await.json["queues"][0]["name"],
        "fresh"
    );

    let ids = http.post_messages("short-lived", 3).await;
    http.call("DELETE", "/v2/queues/short-lived")
        .await
        .expect("delete queue", 204);
    http.call(
        "DELETE",
        &format!("/v2/queues/short-lived/messages?ids={}", ids.join(",")),
    )
    .await
    .expect("E21", 204);
}

/// The same seed behaviours through `zaqar standalone` on the Redis pool.
#[tokio::test]
async fn nonexistent_queues_in_standalone() {
    let node = ApiNode::standalone(&zaqar_tests::test_redis_url(), &[]).unwrap();
    let http = Http::new(&node.url());
    http.call(
        "DELETE",
        "/v2/queues/nonexistent/messages/5f1e0c2a9d3e4b0001a1b2c3",
    )
    .await
    .expect("E1", 204);
    http.call("DELETE", "/v2/queues/nonexistent/messages?ids=a,b")
        .await
        .expect("E2", 204);
    http.call("GET", "/v2/queues/nonexistent/messages?ids=a,b")
        .await
        .expect("E3", 404);
    let ids = http.post_messages("standalone", 2).await;
    let listed = http
        .call("GET", "/v2/queues/standalone/messages?echo=true")
        .await;
    assert_eq!(listed.json["messages"][1]["id"], ids[1]);
}

/// M17–M27: posting.
#[tokio::test]
async fn posting() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let reply = http
        .json(
            "POST",
            "/v2/queues/posts/messages",
            json!({"messages": [
                {"body": {"event": "order.created", "order_id": 1234}, "ttl": 300},
                {"body": "plain string payload"},
                {"ttl": 120, "delay": 30, "body": [1, 2, 3]}
            ]}),
        )
        .await;
    reply.expect("post", 201);
    let resources: Vec<String> = reply.json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|href| href.as_str().unwrap().to_string())
        .collect();
    assert_eq!(resources.len(), 3);
    let ids: Vec<&str> = resources
        .iter()
        .map(|href| href.rsplit('/').next().unwrap())
        .collect();
    assert!(
        resources
            .iter()
            .all(|href| href.starts_with("/v2/queues/posts/messages/"))
    );
    assert!(reply.json.get("partial").is_none());
    assert_eq!(
        reply.header("location"),
        Some(format!("/v2/queues/posts/messages?ids={}", ids.join(",")).as_str())
    );
    let listed = http
        .call("GET", "/v2/queues/posts/messages?echo=true")
        .await;
    let messages = listed.json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "M22: delay ignored on a plain queue");
    assert_eq!(
        messages[0]["body"],
        json!({"event": "order.created", "order_id": 1234})
    );
    assert_eq!(messages[1]["ttl"], 3600, "M20: default ttl");
    assert_eq!(messages[2]["body"], json!([1, 2, 3]));
    for message in messages {
        let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "exactly id, href, ttl, age, body: {message}");
    }

    let path = "/v2/queues/posts/messages";
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "M17",
            r#"[{"body": 1}]"#,
            "No messages were found in the request body.",
        ),
        ("M18", r#"{"messages": []}"#, "No messages to enqueu."),
        (
            "M19",
            r#"{"messages": [{"ttl": 60}]}"#,
            "Missing \"body\" field.",
        ),
        (
            "M21",
            r#"{"messages": [{"body": 1, "ttl": 0.05}]}"#,
            "must be a int",
        ),
        (
            "TTL -1",
            r#"{"messages": [{"body": 1, "ttl": -1}]}"#,
            "The TTL for a message",
        ),
        (
            "TTL 59",
            r#"{"messages": [{"body": 1, "ttl": 59}]}"#,
            "The TTL for a message",
        ),
        (
            "TTL max+1",
            r#"{"messages": [{"body": 1, "ttl": 1209601}]}"#,
            "The TTL for a message",
        ),
        (
            "big int",
            r#"{"messages": [{"body": 9223372036854775808}]}"#,
            "too large",
        ),
        (
            "non-object message",
            r#"{"messages": [1]}"#,
            "Document type not supported.",
        ),
        ("[", "[", "could not be parsed"),
        ("{}", "{}", "No messages were found"),
        (".", ".", "could not be parsed"),
        ("123", "123", "could not be parsed"),
    ];
    for (row, body, description) in cases {
        http.call_with("POST", path, body).await.expect_error(
            row,
            400,
            if description.contains("parsed")
                || description.contains("field")
                || description.contains("int")
                || description.contains("large")
                || description.contains("Document")
            {
                "Invalid request body"
            } else {
                "Invalid API request"
            },
            description,
        );
    }
    http.call("POST", path).await.expect_error(
        "no body",
        400,
        "Invalid request body",
        "Request body can not be empty",
    );

    let padded = format!("{{\"messages\": [{{\"body\": 1}}]{}}}", " ".repeat(262_144));
    http.call_with("POST", path, &padded).await.expect_error(
        "size",
        400,
        "Invalid API request",
        "Message collection size is too large. Max size 262144",
    );
    http.json(
        "PUT",
        "/v2/queues/small",
        json!({"_max_messages_post_size": 1023}),
    )
    .await
    .expect("create", 201);
    let big = format!(
        "{{\"messages\": [{{\"body\": \"{}\"}}]}}",
        "x".repeat(1_000)
    );
    http.call_with("POST", "/v2/queues/small/messages", &big)
        .await
        .expect_error(
            "M24",
            400,
            "Invalid API request",
            "The max size for current queue is 1023",
        );
    http.call_with("POST", "/v2/queues/small/messages", "[")
        .await
        .expect("M24 unparsable but small", 400);

    let many: Vec<_> = (0..25).map(|i| json!({"body": i})).collect();
    http.json(
        "POST",
        "/v2/queues/many/messages",
        json!({"messages": many}),
    )
    .await
    .expect("M27", 201);

    http.json(
        "PUT",
        "/v2/queues/delayed",
        json!({"_default_message_delay": 10}),
    )
    .await
    .expect("delay queue", 201);
    http.json(
        "POST",
        "/v2/queues/delayed/messages",
        json!({"messages": [{"body": 1, "delay": 901}]}),
    )
    .await
    .expect_error(
        "M23",
        400,
        "Invalid API request",
        "The Delay TTL for a message may not exceed 900 seconds",
    );
    http.json(
        "POST",
        "/v2/queues/delayed/messages",
        json!({"messages": [{"body": 1, "delay": 0}, {"body": 2}]}),
    )
    .await
    .expect("delays", 201);
    let visible = http
        .call("GET", "/v2/queues/delayed/messages?echo=true")
        .await;
    assert_eq!(
        visible.json["messages"].as_array().unwrap().len(),
        1,
        "the delayed one waits"
    );
    let all = http
        .call(
            "GET",
            "/v2/queues/delayed/messages?echo=true&include_delayed=true",
        )
        .await;
    assert_eq!(all.json["messages"].as_array().unwrap().len(), 2);

    http.call_with("POST", "/v2/queues/created-anyway/messages", "[")
        .await
        .expect("rejected", 400);
    let queues = http.call("GET", "/v2/queues?limit=20").await;
    let names: Vec<&str> = queues.json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"created-anyway"),
        "a rejected post still creates the queue"
    );
}

/// M1–M16, M28–M38: reading and deleting.
#[tokio::test]
async fn reading_and_deleting() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let ids = http.post_messages("reads", 10).await;

    // Paging with limit=3&echo=true: 3 + 3 + 3 + 1, then an empty page.
    let mut sizes = Vec::new();
    let mut path = "/v2/queues/reads/messages?limit=3&echo=true".to_string();
    let mut seen = Vec::new();
    loop {
        let page = http.call("GET", &path).await;
        page.expect("page", 200);
        let messages = page.json["messages"].as_array().unwrap().clone();
        sizes.push(messages.len());
        if messages.is_empty() {
            assert_eq!(page.json["links"], json!([]));
            break;
        }
        seen.extend(
            messages
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        path = page.json["links"][0]["href"].as_str().unwrap().to_string();
        assert!(path.starts_with("/v2/queues/reads/messages?"), "{path}");
        assert!(sizes.len() < 10);
    }
    assert_eq!(sizes, vec![3, 3, 3, 1, 0]);
    assert_eq!(seen, ids);

    let page = http
        .call("GET", "/v2/queues/reads/messages?limit=1&echo=true")
        .await;
    let next = page.json["links"][0]["href"].as_str().unwrap().to_string();
    let second = http.call("GET", &next).await;
    assert_eq!(second.json["messages"][0]["id"], ids[1], "M36");

    let own = http.call("GET", "/v2/queues/reads/messages").await;
    assert_eq!(
        own.json["messages"],
        json!([]),
        "M31: own messages hidden without echo"
    );
    let dashless = http.with_client_id(&http.client_id.replace('-', ""));
    assert_eq!(
        dashless.call("GET", "/v2/queues/reads/messages").await.json["messages"],
        json!([]),
        "same client"
    );
    let other = http.other_client();
    assert_eq!(
        other.call("GET", "/v2/queues/reads/messages").await.json["messages"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    for (row, query) in [
        ("M14 21", "limit=21"),
        ("M14 0", "limit=0"),
        ("M14 -5", "limit=-5"),
        ("M15 echo", "echo=None"),
        ("M15 include_claimed", "include_claimed=None"),
        ("limit type", "limit=x"),
    ] {
        http.call("GET", &format!("/v2/queues/reads/messages?{query}"))
            .await
            .expect(row, 400);
    }
    let bogus = http
        .call(
            "GET",
            "/v2/queues/reads/messages?marker=sfhlsfdjh2048&echo=true",
        )
        .await;
    bogus.expect("M16", 200);
    assert_eq!(bogus.json["messages"], json!([]));

    let got = http
        .call("GET", &format!("/v2/queues/reads/messages/{}", ids[0]))
        .await;
    got.expect("get", 200);
    assert_eq!(
        got.json["href"],
        format!("/v2/queues/reads/messages/{}", ids[0]),
        "M30"
    );
    assert_eq!(got.json["body"], json!({"n": 0}));
    http.other_project()
        .call("GET", &format!("/v2/queues/reads/messages/{}", ids[0]))
        .await
        .expect("M28", 404);
    http.call("GET", "/v2/queues/reads/messages/a")
        .await
        .expect("M3 malformed", 404);
    http.call("GET", "/v2/queues/reads/messages/5f1e0c2a9d3e4b0001a1b2c3")
        .await
        .expect("M3 unknown", 404);
    http.call("PUT", "/v2/queues/elsewhere")
        .await
        .expect("create", 201);
    http.call("GET", &format!("/v2/queues/elsewhere/messages/{}", ids[0]))
        .await
        .expect("M38 get", 404);
    http.call(
        "GET",
        &format!("/v2/queues/elsewhere/messages?ids={}", ids[0]),
    )
    .await
    .expect("M38 ids", 404);
    http.call(
        "DELETE",
        &format!("/v2/queues/elsewhere/messages/{}", ids[0]),
    )
    .await
    .expect("M38 delete", 204);
    http.call(
        "DELETE",
        &format!("/v2/queues/elsewhere/messages?ids={}", ids[0]),
    )
    .await
    .expect("M38 bulk", 204);
    http.call("GET", &format!("/v2/queues/reads/messages/{}", ids[0]))
        .await
        .expect("M38 untouched", 200);

    http.call("GET", "/v2/queues/reads/messages?ids=a,b,c")
        .await
        .expect("M4", 404);
    let some = http
        .call(
            "GET",
            &format!("/v2/queues/reads/messages?ids={},{},nope", ids[1], ids[2]),
        )
        .await;
    some.expect("M5", 200);
    assert_eq!(some.json["messages"].as_array().unwrap().len(), 2);
    assert!(some.json.get("links").is_none());
    let repeated = http
        .call(
            "GET",
            &format!("/v2/queues/reads/messages?ids={}&ids={}", ids[1], ids[2]),
        )
        .await;
    assert_eq!(
        repeated.json["messages"].as_array().unwrap().len(),
        2,
        "repeated ids"
    );
    for message in some.json["messages"].as_array().unwrap() {
        assert!(
            !message["href"]
                .as_str()
                .unwrap()
                .contains("/messages/messages"),
            "M32"
        );
    }
    http.call("GET", "/v2/queues/reads/messages?ids=-1")
        .await
        .expect("M6", 404);
    let twenty_one = vec!["x"; 21].join(",");
    http.call(
        "GET",
        &format!("/v2/queues/reads/messages?ids={twenty_one}"),
    )
    .await
    .expect("M13", 400);
    http.call(
        "DELETE",
        &format!("/v2/queues/reads/messages?ids={twenty_one}"),
    )
    .await
    .expect("M12", 400);

    let (claim, claimed) = http.claim("reads", 2).await;
    let got = http
        .call("GET", &format!("/v2/queues/reads/messages/{}", claimed[0]))
        .await;
    assert_eq!(
        got.json["href"],
        format!("/v2/queues/reads/messages/{}?claim_id={claim}", claimed[0]),
        "M29"
    );
    let with_claimed = http
        .call(
            "GET",
            "/v2/queues/reads/messages?include_claimed=true&echo=true",
        )
        .await;
    with_claimed.expect("M37", 200);
    assert_eq!(with_claimed.json["messages"].as_array().unwrap().len(), 10);

    http.call(
        "DELETE",
        &format!(
            "/v2/queues/reads/messages?ids={},{},unknown",
            claimed[0], ids[9]
        ),
    )
    .await
    .expect("M7, M8", 204);
    http.call("GET", &format!("/v2/queues/reads/messages/{}", claimed[0]))
        .await
        .expect("M8 deleted", 404);
    http.call("DELETE", &format!("/v2/queues/reads/messages/{}", ids[9]))
        .await
        .expect("M1", 204);
    http.call("DELETE", "/v2/queues/reads/messages/a")
        .await
        .expect("M2 a", 204);
    http.call("DELETE", "/v2/queues/reads/messages/-1")
        .await
        .expect("M2 -1", 204);

    http.call("DELETE", "/v2/queues/reads/messages")
        .await
        .expect_error(
            "M9",
            400,
            "Invalid API request",
            "either \"ids\" or \"pop\"",
        );
    http.call("DELETE", "/v2/queues/reads/messages?pop=5&ids=x")
        .await
        .expect_error(
            "M10",
            400,
            "Invalid API request",
            "cannot be present together",
        );
    for pop in ["0", "-1", "21", "1000000", "%20"] {
        http.call("DELETE", &format!("/v2/queues/reads/messages?pop={pop}"))
            .await
            .expect(&format!("M11 {pop}"), 400);
    }
    let popped = http.call("DELETE", "/v2/queues/reads/messages?pop=2").await;
    popped.expect("M33", 200);
    let popped = popped.json["messages"].as_array().unwrap().clone();
    assert_eq!(popped.len(), 2);
    for message in &popped {
        assert!(message.get("href").is_none());
        assert_eq!(message["claim_id"], serde_json::Value::Null);
        assert_eq!(message["claim_count"], 0);
        let id = message["id"].as_str().unwrap();
        assert!(
            !claimed.contains(&id.to_string()),
            "M35: claimed messages are skipped"
        );
        http.call("GET", &format!("/v2/queues/reads/messages/{id}"))
            .await
            .expect("M33 gone", 404);
    }
    http.call("PUT", "/v2/queues/empty")
        .await
        .expect("create", 201);
    let empty = http.call("DELETE", "/v2/queues/empty/messages?pop=1").await;
    empty.expect("M34", 200);
    assert_eq!(empty.json, json!({"messages": []}));
}

/// `message_delete_with_claim_id`: D13–D16.
#[tokio::test]
async fn bulk_delete_with_claim_ids() {
    let cluster =
        Cluster::with_env(&[("ZAQAR_API__LIMITS__MESSAGE_DELETE_WITH_CLAIM_ID", "true")]).unwrap();
    let http = cluster.client();
    let ids = http.post_messages("strict", 3).await;
    let (claim, claimed) = http.claim("strict", 2).await;
    http.call(
        "DELETE",
        &format!("/v2/queues/strict/messages?ids={}", claimed.join(",")),
    )
    .await
    .expect_error(
        "D13",
        400,
        "Invalid API request",
        "both \"ids\" and \"claim_ids\"",
    );
    http.call(
        "DELETE",
        &format!(
            "/v2/queues/strict/messages?ids={}&claim_ids={claim}",
            ids.join(",")
        ),
    )
    .await
    .expect("D15: an unclaimed message in ids", 400);
    http.call(
        "DELETE",
        &format!(
            "/v2/queues/strict/messages?ids={}&claim_ids={claim}",
            claimed.join(",")
        ),
    )
    .await
    .expect("D14", 204);
    http.call("DELETE", &format!("/v2/queues/strict/messages/{}", ids[2]))
        .await
        .expect("D16", 204);
    let left = http.call("GET", "/v2/queues/strict/stats").await;
    assert_eq!(left.json["messages"]["total"], 0);
}
