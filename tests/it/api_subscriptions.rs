//! Subscription records over HTTP: contract §2.5 and the rows of §5.6 (S*).
//! (Delivery of notifications is a separate concern.)

use serde_json::json;
use zaqar_tests::Cluster;

/// S1–S24.
#[tokio::test]
async fn subscription_records() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let path = "/v2/queues/subs/subscriptions";
    let created = http
        .json(
            "POST",
            path,
            json!({"subscriber": "http://example.com/hook", "ttl": 3600, "options": {"a": 1}}),
        )
        .await;
    created.expect("S1", 201);
    assert_eq!(created.header("location"), Some(path));
    let id = created.json["subscription_id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = http
        .json(
            "POST",
            path,
            json!({"subscriber": "http://example.com/hook"}),
        )
        .await;
    again.expect("S2", 201);
    assert_eq!(again.json["subscription_id"], id.as_str());
    http.call_with(
        "POST",
        path,
        "{\"subscriber\": \"http://x\", \"options\": xxx}",
    )
    .await
    .expect_error(
        "S4",
        400,
        "Invalid request body",
        "body could not be parsed",
    );
    http.call("POST", path).await.expect_error(
        "S5",
        400,
        "Invalid API request",
        "Missing parameter subscriber in body.",
    );
    for subscriber in ["fake", "email://fake"] {
        http.json("POST", path, json!({"subscriber": subscriber}))
            .await
            .expect_error(
                "S6",
                400,
                "Invalid API request",
                "must be supported in the list",
            );
    }
    http.json(
        "POST",
        path,
        json!({"subscriber": "http://x", "options": 1}),
    )
    .await
    .expect_error("S7", 400, "Invalid API request", "must be a dict");
    http.json(
        "POST",
        path,
        json!({"subscriber": "http://x", "ttl": "invalid"}),
    )
    .await
    .expect_error("S8", 400, "Invalid API request", "must be an integer");
    http.json(
        "POST",
        path,
        json!({"subscriber": "http://x", "ttl": 99_999_999_999_999_999i64}),
    )
    .await
    .expect("S9", 400);
    http.json("POST", path, json!({"subscriber": "http://x", "ttl": 100}))
        .await
        .expect("S10", 201);
    http.json("POST", path, json!({"subscriber": ""}))
        .await
        .expect("empty subscriber", 400);
    http.json(
        "POST",
        "/v2/queues/made-by-a-bad-post/subscriptions",
        json!({"subscriber": "fake"}),
    )
    .await
    .expect("rejected", 400);
    let queues = http.call("GET", "/v2/queues?name=made-by").await;
    assert_eq!(
        queues.json["queues"][0]["name"], "made-by-a-bad-post",
        "E18"
    );

    let got = http.call("GET", &format!("{path}/{id}")).await;
    got.expect("get", 200);
    assert_eq!(got.json["source"], "subs");
    assert_eq!(got.json["subscriber"], "http://example.com/hook");
    assert_eq!(got.json["options"], json!({"a": 1}));
    assert_eq!(got.json["confirmed"], false);
    http.call("GET", &format!("{path}/fake"))
        .await
        .expect("S11", 404);
    http.json("PATCH", &format!("{path}/{id}"), json!({"ttl": 300}))
        .await
        .expect("S12", 204);
    assert_eq!(
        http.call("GET", &format!("{path}/{id}")).await.json["ttl"],
        300
    );
    http.json("PATCH", &format!("{path}/x"), json!({"ttl": 300}))
        .await
        .expect("S13", 404);
    http.json(
        "PATCH",
        &format!("{path}/{id}"),
        json!({"subscriber": "http://x"}),
    )
    .await
    .expect("S14", 409);
    let empty = http.call("PATCH", &format!("{path}/{id}")).await;
    empty.expect("S15", 400);
    assert!(!empty.text.contains("{subscription_id}"));
    http.json("PATCH", &format!("{path}/x"), json!({"ttl": "invalid"}))
        .await
        .expect("S16", 400);
    http.call_with("PATCH", &format!("{path}/{id}"), "[1]")
        .await
        .expect_error(
            "S17",
            400,
            "Invalid API request",
            "Subscriptions must be a dict.",
        );
    http.json("PATCH", &format!("{path}/{id}"), json!({"foo": 1}))
        .await
        .expect_error(
            "no field",
            400,
            "Unable to update subscription",
            &format!("Subscription {id} could not be updated."),
        );

    http.json(
        "PUT",
        &format!("{path}/{id}/confirm"),
        json!({"confirmed": true}),
    )
    .await
    .expect("S19", 204);
    http.json(
        "POST",
        path,
        json!({"subscriber": "http://example.com/hook"}),
    )
    .await
    .expect_error(
        "S3",
        409,
        "Resource conflict",
        "Such subscription already exists.",
    );
    http.call_with("PUT", &format!("{path}/{id}/confirm"), "{confirmed:123}")
        .await
        .expect_error(
            "S20",
            400,
            "Invalid request body",
            "body could not be parsed",
        );
    http.json(
        "PUT",
        &format!("{path}/{id}/confirm"),
        json!({"confirmed": 123}),
    )
    .await
    .expect_error(
        "S21",
        400,
        "Invalid API request",
        "The 'confirmed' should be boolean.",
    );
    http.json(
        "PUT",
        &format!("{path}/unknown/confirm"),
        json!({"confirmed": true}),
    )
    .await
    .expect("S22", 404);

    http.call("DELETE", &format!("{path}/{id}"))
        .await
        .expect("S18", 204);
    http.call("GET", &format!("{path}/{id}"))
        .await
        .expect("S18 then", 404);

    let empty = http.call("GET", "/v2/queues/nosubs/subscriptions").await;
    empty.expect("S24", 200);
    assert_eq!(empty.json, json!({"subscriptions": [], "links": []}));

    let listing = "/v2/queues/many/subscriptions";
    let mut ids = Vec::new();
    for i in 0..15 {
        let reply = http
            .json(
                "POST",
                listing,
                json!({"subscriber": format!("http://example.com/{i}")}),
            )
            .await;
        ids.push(reply.json["subscription_id"].as_str().unwrap().to_string());
    }
    ids.sort();
    for limit in [1usize, 5, 10, 15] {
        let mut seen = Vec::new();
        let mut next = format!("{listing}?limit={limit}");
        loop {
            let page = http.call("GET", &next).await;
            let items = page.json["subscriptions"].as_array().unwrap().clone();
            if items.is_empty() {
                break;
            }
            assert!(items.len() <= limit, "S23");
            seen.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_string()));
            next = page.json["links"][0]["href"].as_str().unwrap().to_string();
            assert!(
                next.contains(&format!("marker={}", seen.last().unwrap())),
                "S23 marker"
            );
        }
        assert_eq!(seen, ids, "S23 limit {limit}");
    }
}
