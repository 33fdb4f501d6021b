//! Claims and claim-guarded deletes over HTTP: contract §2.4, §2.3.7 and the
//! rows of §5.3 (D*), §5.4 (C*) and the claim rows of §5.1 (E*).
//!
//! Claim expiry (C7, C17, D10–D12) needs a claim TTL below the API minimum
//! of 60 seconds; the backend conformance suite covers it with 1-second
//! claims, through the same storage node.

use serde_json::json;
use zaqar_tests::Cluster;

/// E8, E9, E15, E16, C1–C6, C10, C12–C15: claim requests on their own.
#[tokio::test]
async fn claim_requests() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.call("POST", "/v2/queues/nowhere/claims")
        .await
        .expect("E8", 204);
    http.call("GET", "/v2/queues/nowhere/claims/aaabbbba")
        .await
        .expect_error("E9", 404, "Not found", "Claim aaabbbba does not exist");
    http.json(
        "PATCH",
        "/v2/queues/nowhere/claims/aaabbbba",
        json!({"ttl": 60}),
    )
    .await
    .expect("E15", 404);
    http.call("DELETE", "/v2/queues/nowhere/claims/aaabbbba")
        .await
        .expect("E16", 204);

    http.post_messages("work", 30).await;
    for body in ["[", "[]", ".", "\"fail\""] {
        http.call_with("POST", "/v2/queues/work/claims", body)
            .await
            .expect(&format!("POST body {body}"), 400);
        http.call_with("PATCH", "/v2/queues/work/claims/x", body)
            .await
            .expect(&format!("PATCH body {body}"), 400);
    }
    http.call("POST", "/v2/queues/work/claims?limit=21")
        .await
        .expect_error(
            "C3",
            400,
            "Invalid API request",
            "Limit must be at least 1 and may not be greater than 20.",
        );
    for (ttl, grace) in [(-1, -1), (59, 60), (60, 59), (60, 43_201), (43_201, 60)] {
        http.json(
            "POST",
            "/v2/queues/work/claims",
            json!({"ttl": ttl, "grace": grace}),
        )
        .await
        .expect(&format!("C4 ({ttl}, {grace})"), 400);
    }
    http.json("POST", "/v2/queues/work/claims", json!({"ttl": null}))
        .await
        .expect_error(
            "C5",
            400,
            "Invalid request body",
            "The value of the \"ttl\" field must be a int.",
        );
    http.json(
        "POST",
        "/v2/queues/work/claims",
        json!({"ttl": 59, "grace": 1}),
    )
    .await
    .expect_error(
        "ttl checked first",
        400,
        "Invalid API request",
        "The TTL for a claim",
    );

    let reply = http.json("POST", "/v2/queues/work/claims", json!({})).await;
    reply.expect("C2 {}", 201);
    let location = reply.header("location").unwrap().to_string();
    assert!(
        location.starts_with("/v2/queues/work/claims/"),
        "{location}"
    );
    let messages = reply.json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 10, "default limit 10");
    let claim_id = location.rsplit('/').next().unwrap().to_string();
    for message in messages {
        let href = message["href"].as_str().unwrap();
        assert_eq!(
            href.split('=').next_back(),
            Some(claim_id.as_str()),
            "claim id last in href"
        );
    }
    let got = http.call("GET", &location).await;
    got.expect("get", 200);
    assert_eq!(got.json["ttl"], 300, "C2: default ttl");
    assert_eq!(got.json["href"], location);
    assert!(got.json.get("id").is_none() && got.json.get("grace").is_none());
    let no_body = http.call("POST", "/v2/queues/work/claims?limit=5").await;
    no_body.expect("C2 no body", 201);
    assert_eq!(no_body.json["messages"].as_array().unwrap().len(), 5);

    http.call("GET", "/v2/queues/work/claims/a")
        .await
        .expect("C6", 404);
    http.json("PATCH", "/v2/queues/work/claims/a", json!({"ttl": 60}))
        .await
        .expect("C10", 404);
    for ttl in [-1, 59, 43_201] {
        http.json("PATCH", &location, json!({"ttl": ttl}))
            .await
            .expect(&format!("C12 {ttl}"), 400);
    }
    http.json("PATCH", &location, json!({"ttl": 100, "grace": 1}))
        .await
        .expect("C13", 204);
    http.call("PATCH", &location).await.expect_error(
        "C14",
        400,
        "Invalid request body",
        "Request body can not be empty",
    );
    http.call("DELETE", "/v2/queues/work/claims/a")
        .await
        .expect("C15", 204);
    let rest = http.call("POST", "/v2/queues/work/claims?limit=20").await;
    assert_eq!(rest.json["messages"].as_array().unwrap().len(), 15);
    http.call("POST", "/v2/queues/work/claims")
        .await
        .expect("C1", 204);
}

/// The claim lifecycle the upstream tests walk through (§2.4.5), with the
/// delete rules D1–D9.
#[tokio::test]
async fn claim_lifecycle() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let ids = http.post_messages("life", 10).await;
    let reply = http
        .json(
            "POST",
            "/v2/queues/life/claims",
            json!({"ttl": 100, "grace": 60}),
        )
        .await;
    reply.expect("claim all", 201);
    let location = reply.header("location").unwrap().to_string();
    let claim_id = location.rsplit('/').next().unwrap().to_string();
    http.call("POST", "/v2/queues/life/claims?limit=3")
        .await
        .expect("nothing left", 204);
    for query in ["echo=true", "echo=false"] {
        let listed = http
            .call("GET", &format!("/v2/queues/life/messages?{query}"))
            .await;
        assert_eq!(listed.json["messages"], json!([]), "C16 {query}");
    }
    let own = http
        .call(
            "GET",
            "/v2/queues/life/messages?include_claimed=true&echo=false",
        )
        .await;
    assert_eq!(own.json["messages"], json!([]));
    let other = http
        .other_client()
        .call("GET", "/v2/queues/life/messages?include_claimed=true")
        .await;
    assert_eq!(other.json["messages"].as_array().unwrap().len(), 10);
    let all = http
        .call(
            "GET",
            "/v2/queues/life/messages?include_claimed=true&echo=true",
        )
        .await;
    assert_eq!(all.json["messages"].as_array().unwrap().len(), 10);

    let got = http.call("GET", &location).await;
    got.expect("get claim", 200);
    assert_eq!(got.json["ttl"], 100);
    assert!(got.json["age"].as_i64().unwrap() >= 0);
    let href = got.json["messages"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let first = &ids[0];

    http.call("DELETE", &format!("/v2/queues/life/messages/{first}"))
        .await
        .expect_error(
            "D1",
            403,
            "Unable to delete",
            "This message is claimed; it cannot be deleted without a valid claim ID.",
        );
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{first}?claim_id=invalid"),
    )
    .await
    .expect_error(
        "D4",
        400,
        "Unable to delete",
        "The specified claim does not exist or has expired.",
    );
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{first}?claim_id=123"),
    )
    .await
    .expect("D5", 400);
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{first}?claim_id=5f1e0c2a9d3e4b0001a1b2c3"),
    )
    .await
    .expect("D9", 403);
    http.call("GET", &format!("/v2/queues/life/messages/{first}"))
        .await
        .expect("D4: still there", 200);
    http.call("DELETE", &href).await.expect("D2", 204);
    http.call("DELETE", &href).await.expect("D3", 204);
    http.other_project()
        .call("GET", &href)
        .await
        .expect("other project", 404);
    http.call("GET", &href).await.expect("deleted", 404);

    http.json("PATCH", &location, json!({"ttl": 60, "grace": 60}))
        .await
        .expect("renew", 204);
    let renewed = http.call("GET", &location).await;
    assert_eq!(renewed.json["ttl"], 60);
    assert!(renewed.json["age"].as_i64().unwrap() <= 1, "age restarts");
    assert_eq!(renewed.json["messages"].as_array().unwrap().len(), 9);

    http.call("DELETE", &location).await.expect("release", 204);
    let second = &ids[1];
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{second}?claim_id={claim_id}"),
    )
    .await
    .expect_error(
        "D6",
        400,
        "Unable to delete",
        "A claim was specified, but the message is not currently claimed.",
    );
    http.call("GET", &format!("/v2/queues/life/messages/{second}"))
        .await
        .expect("D6: survives", 200);
    http.call("GET", &location).await.expect("C8", 404);
    http.json("PATCH", &location, json!({"ttl": 60}))
        .await
        .expect("C11", 404);
    http.call(
        "DELETE",
        &format!(
            "/v2/queues/life/messages/{}?claim_id=5f1e0c2a9d3e4b0001a1b2c3",
            ids[2]
        ),
    )
    .await
    .expect("D7", 400);

    let (a, held_a) = http.claim("life", 2).await;
    let (b, _held_b) = http.claim("life", 2).await;
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{}?claim_id={b}", held_a[0]),
    )
    .await
    .expect("D8", 403);
    http.call(
        "DELETE",
        &format!("/v2/queues/life/messages/{}?claim_id={a}", held_a[0]),
    )
    .await
    .expect("right claim", 204);

    let stats = http.call("GET", "/v2/queues/life/stats").await;
    assert_eq!(stats.json["messages"]["claimed"], 3);
    assert_eq!(stats.json["messages"]["total"], 8);
}

/// C9, C18, C19 and claim effects on message TTLs.
#[tokio::test]
async fn claim_effects() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.json(
        "POST",
        "/v2/queues/short/messages",
        json!({"messages": [{"body": 1, "ttl": 120}]}),
    )
    .await
    .expect("post", 201);
    let claimed = http
        .json(
            "POST",
            "/v2/queues/short/claims",
            json!({"ttl": 300, "grace": 60}),
        )
        .await;
    assert_eq!(
        claimed.json["messages"][0]["ttl"], 360,
        "ttl raised to claim ttl + grace"
    );

    http.call("POST", "/v2/queues/short/claims")
        .await
        .expect("nothing left", 204);

    http.post_messages("emptied", 1).await;
    let (claim, held) = http.claim("emptied", 1).await;
    http.call(
        "DELETE",
        &format!("/v2/queues/emptied/messages/{}?claim_id={claim}", held[0]),
    )
    .await
    .expect("delete", 204);
    let got = http
        .call("GET", &format!("/v2/queues/emptied/claims/{claim}"))
        .await;
    got.expect("C9", 200);
    assert_eq!(got.json["messages"], json!([]));

    http.json(
        "PUT",
        "/v2/queues/later",
        json!({"_default_message_delay": 300}),
    )
    .await
    .expect("delay queue", 201);
    http.post_messages("later", 2).await;
    http.call("POST", "/v2/queues/later/claims")
        .await
        .expect("C19", 204);

    http.json(
        "PUT",
        "/v2/queues/source",
        json!({"_max_claim_count": 2, "_dead_letter_queue": "source-dlq", "_dead_letter_queue_messages_ttl": 7200}),
    )
    .await
    .expect("dlq queue", 201);
    http.call("PUT", "/v2/queues/source-dlq")
        .await
        .expect("create dlq", 201);
    let ids = http.post_messages("source", 1).await;
    for round in 1..=2 {
        let (claim, held) = http.claim("source", 10).await;
        assert_eq!(held, ids, "claim {round}");
        http.call("DELETE", &format!("/v2/queues/source/claims/{claim}"))
            .await
            .expect("release", 204);
    }
    http.call("POST", "/v2/queues/source/claims")
        .await
        .expect("C18", 204);
    let moved = http
        .call("GET", "/v2/queues/source-dlq/messages?echo=true")
        .await;
    assert_eq!(moved.json["messages"][0]["id"], ids[0]);
    assert_eq!(moved.json["messages"][0]["ttl"], 7200);
    assert_eq!(
        http.call("GET", "/v2/queues/source/stats").await.json["messages"]["total"],
        0
    );
}
