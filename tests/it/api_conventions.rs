//! Contract §1 and §5.7 over HTTP: versions, home, ping, the order of the
//! header checks, routing answers, and behaviour when storage is down.

use std::time::Duration;

use serde_json::json;
use zaqar_tests::{ApiNode, Cluster, Http, RedisServer, StorageNode};

/// H1, H2, H7 and the request-id header.
#[tokio::test]
async fn versions_home_and_ping() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let versions = http.send(http.bare("GET", "/")).await;
    versions.expect("H1", 300);
    assert_eq!(versions.json["versions"][0]["id"], "2");
    assert_eq!(
        versions.json["versions"][0]["updated"],
        "2014-9-24T04:06:47Z"
    );
    assert_eq!(versions.json["versions"][0]["links"][0]["href"], "/v2/");
    let request_id = versions.header("x-openstack-request-id").unwrap();
    assert!(
        request_id.starts_with("req-") && request_id.len() == 40,
        "{request_id}"
    );

    for path in ["/v2/", "/v2"] {
        let home = http.call("GET", path).await;
        home.expect("H2", 200);
        assert_eq!(home.header("content-type"), Some("application/json-home"));
        let queue = &home.json["resources"]["rel/queue"];
        assert_eq!(queue["href-template"], "/v2/queues/{queue_name}");
        assert!(
            home.json["resources"].get("rel/health").is_none(),
            "no admin resources"
        );
    }
    let ping = http.call("GET", "/v2/ping").await;
    ping.expect("H7 GET", 204);
    assert!(ping.text.is_empty());
    http.call("HEAD", "/v2/ping").await.expect("H7 HEAD", 204);
    http.send(http.bare("GET", "/v2/ping"))
        .await
        .expect("ping needs Client-ID", 400);
    http.call("GET", "/v2/health")
        .await
        .expect("health needs admin_mode", 404);
}

/// §1.2 and §1.3: each check answers with its own error, in order.
#[tokio::test]
async fn header_checks_follow_zaqar_order() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let queue = "/v2/queues/orders";

    // H3: Accept without JSON is 406 with an empty body, before any other check.
    let reply = http
        .send(http.bare("GET", queue).header("Accept", "application/xml"))
        .await;
    reply.expect("H3", 406);
    assert!(reply.text.is_empty());
    http.send(http.bare("GET", "/").header("Accept", "text/plain"))
        .await
        .expect("H3 on /", 406);
    http.send(
        http.request("GET", queue)
            .header("Accept", "application/json;q=0"),
    )
    .await
    .expect("H3 q=0", 406);

    // H4: Client-ID.
    http.send(http.bare("GET", queue).header("X-Project-ID", "p"))
        .await
        .expect_error("H4", 400, "Missing header value", "Client-Id");
    for bad in [
        "",
        "0xdeadbeef",
        "550893e0-2b6e-11e3-835a-5cf9dd72369",
        "textid",
    ] {
        http.send(
            http.bare("GET", queue)
                .header("Client-ID", bad)
                .header("X-Project-ID", "p"),
        )
        .await
        .expect_error(
            &format!("Client-ID {bad:?}"),
            400,
            "Wrong UUID value",
            "Malformed",
        );
    }
    for good in [
        "3381af922b9e11e3b19171861300734c",
        "{3381af92-2b9e-11e3-b191-71861300734c}",
        "urn:uuid:3381af92-2b9e-11e3-b191-71861300734c",
    ] {
        http.send(
            http.bare("GET", queue)
                .header("Client-ID", good)
                .header("X-Project-ID", "p"),
        )
        .await
        .expect(&format!("Client-ID {good:?}"), 200);
    }

    // Q11: the project header.
    let client_id = http.client_id.clone();
    http.send(http.bare("GET", queue).header("Client-ID", &client_id))
        .await
        .expect_error("Q11 missing", 400, "Project-Id Missing", "X-PROJECT-ID");
    http.send(
        http.bare("PUT", queue)
            .header("Client-ID", &client_id)
            .header("X-Project-ID", ""),
    )
    .await
    .expect_error(
        "Q11 empty",
        400,
        "Empty project header not allowed",
        "empty string",
    );
    http.send(http.bare("DELETE", queue).header("Client-ID", &client_id))
        .await
        .expect("Q11 DELETE", 400);
    http.send(
        http.bare("GET", queue)
            .header("Client-ID", &client_id)
            .header("X-Tenant-ID", "t"),
    )
    .await
    .expect("X-Tenant-ID is a project header", 200);

    // Q8, Q10, M26: names and project length, on every method.
    for name in [
        "Nice-Bo@t",
        &"_niceboat".repeat(8),
        "non-ascii-n%C5%93me",
        "@$@^qw@",
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            http.call(method, &format!("/v2/queues/{name}"))
                .await
                .expect_error(
                    &format!("Q8 {method} {name}"),
                    400,
                    "Invalid queue identification",
                    "",
                );
        }
        http.json(
            "POST",
            &format!("/v2/queues/{name}/messages"),
            json!({"messages": [{"body": 1}]}),
        )
        .await
        .expect("M26", 400);
    }
    http.call("PUT", &format!("/v2/queues/{}", "a".repeat(64)))
        .await
        .expect("64 chars", 201);
    http.call("PUT", "/v2/queues/Service.test_queue")
        .await
        .expect("Q9", 201);
    let long_project = http.with_project(&"p".repeat(264));
    long_project.call("PUT", queue).await.expect("Q10", 400);
    http.call("GET", "/v2/topics/bad@name").await.expect_error(
        "topic names",
        400,
        "Invalid topic identification",
        "topic name",
    );

    // M25: a form body is refused; a form type without a body is fine.
    http.send(
        http.request("POST", "/v2/queues/forms/messages")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("{\"messages\": [{\"body\": 1}]}"),
    )
    .await
    .expect_error("M25", 400, "Invalid Content-Type", "x-www-form-urlencoded");
    http.send(
        http.request("PUT", "/v2/queues/forms")
            .header("Content-Type", "application/x-www-form-urlencoded"),
    )
    .await
    .expect("form type without body", 201);
}

/// Unknown paths are 404 without checks; unknown methods are 405 after them.
#[tokio::test]
async fn routing_answers() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let reply = http.send(http.bare("GET", "/v2/nothing/here")).await;
    reply.expect("unknown path", 404);
    assert_eq!(reply.json, json!({"title": "404 Not Found"}));
    http.call("GET", "/v2/queues/q/")
        .await
        .expect("trailing slash", 404);

    let reply = http.call("POST", "/v2/queues/q").await;
    reply.expect("405", 405);
    assert_eq!(reply.json, json!({"title": "405 Method Not Allowed"}));
    assert_eq!(
        reply.header("allow"),
        Some("GET, PUT, PATCH, DELETE, OPTIONS")
    );
    http.send(
        http.bare("POST", "/v2/queues/q")
            .header("X-Project-ID", "p"),
    )
    .await
    .expect("header checks come before 405", 400);
    let head = http.call("HEAD", "/v2/queues/q").await;
    head.expect("H19", 405);
    assert!(head.text.is_empty());
    let options = http.call("OPTIONS", "/v2/queues/q/messages").await;
    options.expect("OPTIONS", 200);
    assert_eq!(options.header("allow"), Some("GET, POST, DELETE"));
    http.call("PUT", "/v2/ping")
        .await
        .expect("405 on ping", 405);
    http.call("POST", "/").await.expect("405 on /", 405);
}

/// H5: with `client_id_uuid_safe = "off"` any Client-ID of 10..36 characters.
#[tokio::test]
async fn client_ids_without_uuid_check() {
    let cluster = Cluster::with_env(&[("ZAQAR_API__LIMITS__CLIENT_ID_UUID_SAFE", "off")]).unwrap();
    let http = cluster.client();
    for (client_id, status) in [
        ("1234567890", 200),
        (&"1".repeat(35)[..], 200),
        (&"1".repeat(36)[..], 200),
        ("123456789", 400),
        (&"1".repeat(37)[..], 400),
    ] {
        let reply = http
            .send(
                http.bare("GET", "/v2/queues/q/messages")
                    .header("Client-ID", client_id)
                    .header("X-Project-ID", "p"),
            )
            .await;
        reply.expect(&format!("H5 {} characters", client_id.len()), status);
    }
    let writer = http.with_client_id("producer-one");
    writer.post_messages("echo", 1).await;
    let own = writer.call("GET", "/v2/queues/echo/messages").await;
    assert_eq!(
        own.json["messages"].as_array().unwrap().len(),
        0,
        "echo uses the raw id"
    );
}

/// With the storage backend down every request gets 503 with Retry-After,
/// and the API recovers by itself when it is back.
#[tokio::test]
async fn storage_outages_are_503_then_recover() {
    let mut redis = RedisServer::start().unwrap();
    let storage = StorageNode::start(&redis.url()).unwrap();
    let api = ApiNode::start(&storage.url(), &[]).unwrap();
    let http = Http::new(&api.url());
    http.post_messages("survivor", 2).await;

    redis.guard.terminate(Duration::from_secs(10));
    let reply = http
        .call("GET", "/v2/queues/survivor/messages?echo=true")
        .await;
    reply.expect_error(
        "redis down",
        503,
        "Service temporarily unavailable",
        "Messages could not be listed.",
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    http.call("GET", "/v2/ping")
        .await
        .expect("ping while down", 503);
    http.json(
        "POST",
        "/v2/queues/survivor/messages",
        json!({"messages": [{"body": 1}]}),
    )
    .await
    .expect_error(
        "post while down",
        503,
        "Service temporarily unavailable",
        "enqueued",
    );

    redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if http.call("GET", "/v2/ping").await.status == 204 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the API recovers when redis is back");
    let listed = http
        .call("GET", "/v2/queues/survivor/messages?echo=true")
        .await;
    listed.expect("after recovery", 200);
    assert_eq!(
        listed.json["messages"].as_array().unwrap().len(),
        2,
        "no acknowledged message lost"
    );
}

/// With the storage node itself gone: 503, and recovery once it is back.
#[tokio::test]
async fn storage_node_loss_is_503_then_recovers() {
    let mut storage = StorageNode::start(&zaqar_tests::test_redis_url()).unwrap();
    let address = storage.address.clone();
    let api = ApiNode::start(&storage.url(), &[]).unwrap();
    let http = Http::new(&api.url());
    http.call("PUT", "/v2/queues/q").await.expect("create", 201);
    storage.guard.terminate(Duration::from_secs(10));
    let reply = http.call("GET", "/v2/queues/q/stats").await;
    reply.expect_error(
        "node down",
        503,
        "Service temporarily unavailable",
        "Queue stats could not be read.",
    );
    assert!(reply.header("retry-after").is_some());

    let _restarted = StorageNode::start_on(&zaqar_tests::test_redis_url(), &address).unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if http.call("GET", "/v2/queues/q/stats").await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the API reconnects to the restarted node");
}

/// Malformed input of every kind is a 4xx with a Zaqar body, never a 5xx.
#[tokio::test]
async fn malformed_input_is_never_a_server_error() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.post_messages("target", 1).await;
    let huge = "9".repeat(400);
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("PUT", "/v2/queues/target".into(), Some("{".into())),
        ("PUT", "/v2/queues/target".into(), Some("[]".into())),
        (
            "PUT",
            "/v2/queues/target".into(),
            Some("{\"a\": \u{0}}".into()),
        ),
        (
            "PUT",
            "/v2/queues/target".into(),
            Some(format!("{{\"a\": {huge}}}")),
        ),
        (
            "PATCH",
            "/v2/queues/target".into(),
            Some("[{\"op\": 1}]".into()),
        ),
        (
            "POST",
            "/v2/queues/target/messages".into(),
            Some("{\"messages\": [[]]}".into()),
        ),
        (
            "POST",
            "/v2/queues/target/messages".into(),
            Some("{\"messages\": \"x\"}".into()),
        ),
        (
            "POST",
            "/v2/queues/target/messages".into(),
            Some("{\"messages\": [{\"body\": 1, \"ttl\": -1}]}".into()),
        ),
        (
            "POST",
            "/v2/queues/target/messages".into(),
            Some("\u{feff}{}".into()),
        ),
        (
            "GET",
            "/v2/queues/target/messages?limit=99999999999999999999".into(),
            None,
        ),
        ("GET", "/v2/queues/target/messages?limit=abc".into(), None),
        ("GET", "/v2/queues/target/messages/%FF".into(), None),
        (
            "DELETE",
            "/v2/queues/target/messages?pop=-99999999999999999999".into(),
            None,
        ),
        ("POST", "/v2/queues/target/claims?limit=0".into(), None),
        (
            "POST",
            "/v2/queues/target/claims".into(),
            Some("{\"ttl\": 1e400}".into()),
        ),
        (
            "PATCH",
            "/v2/queues/target/claims/x".into(),
            Some("{\"ttl\": \"a\"}".into()),
        ),
        ("GET", "/v2/queues?limit=-1".into(), None),
        (
            "POST",
            "/v2/queues/target/purge".into(),
            Some("{\"resource_types\": 5}".into()),
        ),
        (
            "POST",
            "/v2/queues/target/subscriptions".into(),
            Some("{\"subscriber\": 5}".into()),
        ),
    ];
    for (method, path, body) in cases {
        let reply = match &body {
            Some(body) => http.call_with(method, &path, body).await,
            None => http.call(method, &path).await,
        };
        assert!(
            (400..500).contains(&reply.status),
            "{method} {path} {body:?} -> {} {}",
            reply.status,
            reply.text
        );
        if reply.status != 404 || !reply.text.is_empty() {
            assert!(
                reply.json["title"].is_string(),
                "{method} {path}: {}",
                reply.text
            );
        }
    }
}

/// H8 and the admin resources: `/v2/health` in admin mode, for admins only.
#[tokio::test]
async fn health_in_admin_mode() {
    let cluster = Cluster::with_env(&[("ZAQAR_API__ADMIN_MODE", "true")]).unwrap();
    let http = cluster.client();
    http.call("GET", "/v2/health").await.expect_error(
        "policy",
        403,
        "Not authorized",
        "You are not authorized to complete this action.",
    );
    let reply = http
        .send(
            http.request("GET", "/v2/health")
                .header("X-Roles", "member,admin"),
        )
        .await;
    reply.expect("H8", 200);
    assert_eq!(reply.json["storage_reachable"], true);
    let steps = reply.json["operation_status"].as_object().unwrap();
    assert_eq!(steps.len(), 8);
    for (name, step) in steps {
        assert_eq!(step["succeeded"], true, "{name}: {step}");
        assert_eq!(step["ref"], serde_json::Value::Null);
        assert!(step["seconds"].as_f64().unwrap() >= 0.0);
    }
    let home = http.call("GET", "/v2/").await;
    assert_eq!(home.json["resources"]["rel/health"]["href"], "/v2/health");
    assert!(home.json["resources"]["rel/pools"].is_object());
}
