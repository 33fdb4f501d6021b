//! Notification delivery (contract §6) end to end: real API and storage
//! processes posting to a real HTTP receiver (or a real mail command).
//!
//! Cluster tests use a private Redis (or a fresh Mongo database) each, so
//! no other test's storage node (which would legitimately share the pool's
//! deliveries) takes part.

use std::time::Duration;

use serde_json::{Value, json};
use zaqar_tests::webhook::{Answer, Receiver};
use zaqar_tests::{ApiNode, Http, RedisServer, StorageNode, fresh_mongo_uri};

/// How long a delivery may take to show up at the receiver.
const ARRIVAL: Duration = Duration::from_secs(20);

/// An API node and a storage node on a private Redis.
struct PrivateCluster {
    api: ApiNode,
    storage: StorageNode,
    redis: RedisServer,
}

impl PrivateCluster {
    fn start(storage_env: &[(&str, &str)]) -> PrivateCluster {
        let redis = RedisServer::start().unwrap();
        let storage = StorageNode::start_env(&redis.url(), "127.0.0.1:0", storage_env).unwrap();
        let api = ApiNode::start(&storage.url(), &[]).unwrap();
        PrivateCluster {
            api,
            storage,
            redis,
        }
    }

    fn client(&self) -> Http {
        Http::new(&self.api.url())
    }
}

async fn subscribe(http: &Http, queue: &str, subscriber: &str, options: Value) -> String {
    let reply = http
        .json(
            "POST",
            &format!("/v2/queues/{queue}/subscriptions"),
            json!({"subscriber": subscriber, "ttl": 3600, "options": options}),
        )
        .await;
    reply.expect("create subscription", 201);
    reply.json["subscription_id"].as_str().unwrap().to_string()
}

async fn post(http: &Http, queue: &str, messages: Value) {
    http.json(
        "POST",
        &format!("/v2/queues/{queue}/messages"),
        json!({ "messages": messages }),
    )
    .await
    .expect("post messages", 201);
}

/// A retry policy: one retry after 2 s, then (linear back-off) 2 s and 7 s.
fn slow_retries() -> Value {
    json!({"_retry_policy": {
        "retries_with_no_delay": 0, "minimum_delay_retries": 1, "minimum_delay": 2,
        "maximum_delay": 12, "maximum_delay_retries": 0
    }})
}

/// A retry policy that gives up after the first failure.
fn no_retries() -> Value {
    json!({"_retry_policy": {
        "retries_with_no_delay": 0, "minimum_delay_retries": 0, "minimum_delay": 20,
        "maximum_delay": 30, "maximum_delay_retries": 0, "retry_backoff_function": "linear"
    }})
}

/// Posted messages reach every subscriber with the documented payload,
/// templated through `post_data` with `post_headers`, in post order.
async fn check_payloads(http: &Http, receiver: &Receiver) {
    subscribe(http, "orders", &receiver.url("/plain"), json!({})).await;
    subscribe(
        http,
        "orders",
        &receiver.url("/templated"),
        json!({
            "post_data": "{\"alarm\": \"$zaqar_message$\", \"src\": \"zaqar\"}",
            "post_headers": {"X-Token": "t0k3n"}
        }),
    )
    .await;
    post(
        http,
        "orders",
        json!([
            {"body": {"event": "order.created", "order_id": 1234}, "ttl": 300},
            {"body": [1, "two"]}
        ]),
    )
    .await;
    let plain = receiver.wait_for("/plain", 2, ARRIVAL).await;
    assert_eq!(
        plain[0].json(),
        json!({"ttl": 300, "body": {"event": "order.created", "order_id": 1234},
               "Message_Type": "Notification", "queue_name": "orders"})
    );
    assert_eq!(
        plain[1].json(),
        json!({"ttl": 3600, "body": [1, "two"],
               "Message_Type": "Notification", "queue_name": "orders"})
    );
    assert_eq!(plain[0].headers["content-type"], "application/json");
    let templated = receiver.wait_for("/templated", 2, ARRIVAL).await;
    assert_eq!(
        templated[0].json(),
        json!({"alarm": {"ttl": 300, "body": {"event": "order.created", "order_id": 1234},
                         "Message_Type": "Notification", "queue_name": "orders"},
               "src": "zaqar"})
    );
    assert_eq!(templated[1].json()["alarm"]["body"], json!([1, "two"]));
    assert_eq!(templated[0].headers["x-token"], "t0k3n");

    // Delay queues add the effective delay.
    http.json(
        "PUT",
        "/v2/queues/delayed",
        json!({"_default_message_delay": 1}),
    )
    .await
    .expect("create delay queue", 201);
    subscribe(http, "delayed", &receiver.url("/delayed"), json!({})).await;
    post(
        http,
        "delayed",
        json!([{"body": "later", "ttl": 120, "delay": 3}]),
    )
    .await;
    let delayed = receiver.wait_for("/delayed", 1, ARRIVAL).await;
    assert_eq!(
        delayed[0].json(),
        json!({"ttl": 120, "body": "later", "delay": 3,
               "Message_Type": "Notification", "queue_name": "delayed"})
    );
}

/// The text of `path` once it contains `marker`, or whatever it holds when
/// [`ARRIVAL`] has passed (the caller's assertions then say what is missing).
async fn file_once_it_holds(path: &std::path::Path, marker: &str) -> String {
    let deadline = std::time::Instant::now() + ARRIVAL;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(marker) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webhooks_get_the_documented_payload_on_redis() {
    let cluster = PrivateCluster::start(&[]);
    let receiver = Receiver::start().await;
    check_payloads(&cluster.client(), &receiver).await;
}

#[tokio::test]
async fn webhooks_get_the_documented_payload_on_mongo() {
    let storage = StorageNode::start(&fresh_mongo_uri("notify")).unwrap();
    let api = ApiNode::start(&storage.url(), &[]).unwrap();
    let receiver = Receiver::start().await;
    check_payloads(&Http::new(&api.url()), &receiver).await;
}

#[tokio::test]
async fn webhooks_get_the_documented_payload_standalone() {
    let node = ApiNode::standalone_in(tempfile::tempdir().unwrap().path(), &[]).unwrap();
    let receiver = Receiver::start().await;
    check_payloads(&Http::new(&node.url()), &receiver).await;
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let cluster = PrivateCluster::start(&[]);
    let http = cluster.client();
    let receiver = Receiver::start().await;
    receiver.script("/flaky", &[Answer::Status(503), Answer::Status(503)]);
    receiver.answer_by_default("/refusing", Answer::Status(400));
    subscribe(&http, "jobs", &receiver.url("/flaky"), json!({})).await;
    subscribe(&http, "jobs", &receiver.url("/refusing"), json!({})).await;
    post(&http, "jobs", json!([{"body": {"job": 1}}])).await;
    // 503, 503, then 200 on the third try.
    let flaky = receiver.wait_for("/flaky", 3, ARRIVAL).await;
    assert!(
        flaky
            .iter()
            .all(|request| request.json()["body"] == json!({"job": 1}))
    );
    // A 4xx is final: the next message is the next request.
    post(&http, "jobs", json!([{"body": {"job": 2}}])).await;
    receiver.wait_for("/flaky", 4, ARRIVAL).await;
    let refusing = receiver.wait_for("/refusing", 2, ARRIVAL).await;
    let bodies: Vec<Value> = refusing.iter().map(|r| r.json()["body"].clone()).collect();
    assert_eq!(bodies, vec![json!({"job": 1}), json!({"job": 2})]);
    let flaky = receiver.received_on("/flaky");
    assert_eq!(flaky.len(), 4, "no retry after the 200: {flaky:#?}");
    assert_eq!(flaky[3].json()["body"], json!({"job": 2}));
}

#[tokio::test]
async fn a_hanging_subscriber_does_not_hold_posts_or_other_subscribers() {
    let cluster = PrivateCluster::start(&[("ZAQAR_STORAGE__DELIVERY__TIMEOUT", "5s")]);
    let http = cluster.client();
    let receiver = Receiver::start().await;
    receiver.answer_by_default("/hang", Answer::Hang);
    subscribe(&http, "busy", &receiver.url("/hang"), no_retries()).await;
    subscribe(&http, "busy", &receiver.url("/ok"), json!({})).await;
    const POSTS: usize = 10;
    for n in 0..POSTS {
        post(&http, "busy", json!([{"body": {"n": n}}])).await;
    }
    // Every post was acknowledged while the hung calls were still open.
    assert_eq!(receiver.abandoned(), 0, "posts waited for the subscriber");
    let ok = receiver.wait_for("/ok", POSTS, ARRIVAL).await;
    assert_eq!(ok.len(), POSTS);
    receiver.wait_for("/hang", POSTS, ARRIVAL).await;
    // Each hung call is cut off at the timeout and, with no retries left,
    // given up.
    receiver
        .wait_until("every hung call to be abandoned", ARRIVAL, |r| {
            r.abandoned() == POSTS
        })
        .await;
    post(&http, "busy", json!([{"body": "last"}])).await;
    receiver.wait_for("/ok", POSTS + 1, ARRIVAL).await;
    receiver.wait_for("/hang", POSTS + 1, ARRIVAL).await;
    let hang = receiver.received_on("/hang");
    assert_eq!(hang.len(), POSTS + 1, "a given-up call was retried");
    assert_eq!(hang[POSTS].json()["body"], "last");
}

#[tokio::test]
async fn a_storage_node_restarted_mid_backoff_still_delivers() {
    // A short timeout keeps the lease short: a node killed during the
    // attempt itself (before it stored the retry) holds the delivery until
    // its lease runs out.
    let fast = [("ZAQAR_STORAGE__DELIVERY__TIMEOUT", "2s")];
    let mut cluster = PrivateCluster::start(&fast);
    let http = cluster.client();
    let receiver = Receiver::start().await;
    receiver.script("/later", &[Answer::Status(503)]);
    subscribe(&http, "restart", &receiver.url("/later"), slow_retries()).await;
    post(&http, "restart", json!([{"body": "survives"}])).await;
    receiver.wait_for("/later", 1, ARRIVAL).await;
    // Killed while the retry waits its 2 s (the pause lets the node store
    // the retry; a kill during the attempt itself is covered by the lease);
    // a new node on the pool (and its Redis) finishes the job.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.storage.guard.kill();
    let _restarted = StorageNode::start_env(&cluster.redis.url(), "127.0.0.1:0", &fast).unwrap();
    let later = receiver.wait_for("/later", 2, ARRIVAL).await;
    assert_eq!(later[1].json()["body"], "survives");
}

#[tokio::test]
async fn a_standalone_restarted_mid_backoff_still_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let http = Http::new(&node.url());
    let receiver = Receiver::start().await;
    receiver.script("/later", &[Answer::Status(503)]);
    subscribe(&http, "restart", &receiver.url("/later"), slow_retries()).await;
    post(&http, "restart", json!([{"body": "survives"}])).await;
    receiver.wait_for("/later", 1, ARRIVAL).await;
    // Killed while the retry waits its 2 s (see the storage-node test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.guard.kill();
    let _restarted = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let later = receiver.wait_for("/later", 2, ARRIVAL).await;
    assert_eq!(later[1].json()["body"], "survives");
}

#[tokio::test]
async fn subscriptions_confirm_through_the_signed_request_they_are_sent() {
    let node = ApiNode::standalone_in(
        tempfile::tempdir().unwrap().path(),
        &[
            (
                "ZAQAR_STANDALONE__API__NOTIFICATION__REQUIRE_CONFIRMATION",
                "true",
            ),
            (
                "ZAQAR_STANDALONE__API__SIGNED_URL_SECRET_KEY",
                "confirm-secret",
            ),
        ],
    )
    .unwrap();
    let http = Http::new(&node.url());
    let receiver = Receiver::start().await;
    let id = subscribe(&http, "alerts", &receiver.url("/confirming"), json!({})).await;
    subscribe(&http, "alerts", &receiver.url("/silent"), json!({})).await;
    let request = receiver.wait_for("/confirming", 1, ARRIVAL).await[0].json();
    assert_eq!(request["Message_Type"], "SubscriptionConfirmation");
    assert_eq!(
        request["URL-Paths"],
        format!("/v2/queues/alerts/subscriptions/{id}/confirm")
    );
    receiver.wait_for("/silent", 1, ARRIVAL).await;
    // Unconfirmed subscriptions are not notified.
    post(&http, "alerts", json!([{"body": "before"}])).await;
    // The subscriber confirms with the headers it was sent.
    let header = |name: &str| request[name].as_str().unwrap().to_string();
    let confirm = http
        .bare("PUT", &header("URL-Paths"))
        .header("Client-ID", uuid::Uuid::new_v4().to_string())
        .header("Content-Type", "application/json")
        .header("URL-Signature", header("URL-Signature"))
        .header("URL-Methods", header("URL-Methods"))
        .header("URL-Paths", header("URL-Paths"))
        .header("URL-Expires", header("URL-Expires"))
        .header("X-Project-ID", header("X-Project-ID"))
        .body(request["SubscribeBody"].to_string());
    http.send(confirm).await.expect("confirm", 204);
    post(&http, "alerts", json!([{"body": "after"}])).await;
    let confirming = receiver.wait_for("/confirming", 2, ARRIVAL).await;
    assert_eq!(confirming[1].json()["body"], "after");
    // Un-confirming sends the unsubscribe request.
    http.json(
        "PUT",
        &format!("/v2/queues/alerts/subscriptions/{id}/confirm"),
        json!({"confirmed": false}),
    )
    .await
    .expect("unconfirm", 204);
    let confirming = receiver.wait_for("/confirming", 3, ARRIVAL).await;
    assert_eq!(
        confirming[2].json()["Message_Type"],
        "UnsubscribeConfirmation"
    );
    assert_eq!(confirming.len(), 3, "{confirming:#?}");
    assert_eq!(receiver.received_on("/silent").len(), 1);
}

#[tokio::test]
async fn mailto_subscribers_get_an_email_through_the_mail_command() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("mail.txt");
    let script = dir.path().join("sendmail.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> {}\n", outbox.display())).unwrap();
    let command = format!("sh {}", script.display());
    let node = ApiNode::standalone_in(
        &dir.path().join("data"),
        &[("ZAQAR_STANDALONE__DELIVERY__MAIL_COMMAND", command.as_str())],
    )
    .unwrap();
    let http = Http::new(&node.url());
    subscribe(
        &http,
        "mail",
        "mailto:ops@example.com?subject=Order%20news",
        json!({"from": "zaqar@example.com"}),
    )
    .await;
    post(&http, "mail", json!([{"body": {"order": 7}, "ttl": 60}])).await;
    let text = file_once_it_holds(&outbox, "\r\n\r\n").await;
    let (head, body) = text.split_once("\r\n\r\n").expect("an e-mail");
    assert!(head.contains("To: ops@example.com\r\n"), "{head}");
    assert!(head.contains("From: zaqar@example.com\r\n"), "{head}");
    assert!(head.contains("Subject: Order news\r\n"), "{head}");
    let document: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(
        document,
        json!({"ttl": 60, "body": {"order": 7}, "Message_Type": "Notification",
               "queue_name": "mail"})
    );
}

#[tokio::test]
async fn mailto_subscribers_get_an_email_through_an_smtp_server() {
    // Python's standard-library SMTP server, printing what it receives.
    let dir = tempfile::tempdir().unwrap();
    let port = zaqar_tests::free_port().unwrap();
    let received = dir.path().join("smtp.out");
    let mut command = std::process::Command::new("python3");
    command
        .args([
            "-u",
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::fs::File::create(&received).unwrap());
    let _smtp = zaqar_tests::ChildGuard::spawn("smtpd", command).unwrap();
    let deadline = std::time::Instant::now() + ARRIVAL;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "smtpd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = port.to_string();
    let node = ApiNode::standalone_in(
        &dir.path().join("data"),
        &[
            ("ZAQAR_STANDALONE__DELIVERY__MAIL_MODE", "smtp"),
            ("ZAQAR_STANDALONE__DELIVERY__SMTP__HOST", "127.0.0.1"),
            ("ZAQAR_STANDALONE__DELIVERY__SMTP__PORT", port.as_str()),
            ("ZAQAR_STANDALONE__DELIVERY__SMTP__SECURITY", "none"),
        ],
    )
    .unwrap();
    let http = Http::new(&node.url());
    subscribe(
        &http,
        "mail",
        "mailto:ops@example.com?subject=Order%20news",
        json!({"from": "Zaqar <zaqar@example.com>"}),
    )
    .await;
    post(&http, "mail", json!([{"body": {"order": 7}, "ttl": 60}])).await;
    let text = file_once_it_holds(&received, "END MESSAGE").await;
    for line in [
        "b'To: ops@example.com'",
        "b'From: Zaqar <zaqar@example.com>'",
        "b'Subject: Order news'",
        r#"b'{"ttl":60,"body":{"order":7},"Message_Type":"Notification","queue_name":"mail"}'"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}

/// Concurrent producers on several queues: every posted message reaches
/// the subscriber of its queue.
async fn check_every_message_arrives(http: &Http, receiver: &Receiver) {
    const QUEUES: usize = 4;
    const PER_QUEUE: usize = 50;
    for q in 0..QUEUES {
        subscribe(
            http,
            &format!("load-{q}"),
            &receiver.url(&format!("/load/{q}")),
            json!({}),
        )
        .await;
    }
    let mut producers = Vec::new();
    for q in 0..QUEUES {
        let http = http.clone();
        producers.push(tokio::spawn(async move {
            for n in 0..PER_QUEUE {
                post(
                    &http,
                    &format!("load-{q}"),
                    json!([{"body": {"q": q, "n": n}}]),
                )
                .await;
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    for q in 0..QUEUES {
        let got = receiver
            .wait_for(&format!("/load/{q}"), PER_QUEUE, ARRIVAL)
            .await;
        let mut seen: Vec<i64> = got
            .iter()
            .map(|request| request.json()["body"]["n"].as_i64().unwrap())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), PER_QUEUE, "queue {q}: {seen:?}");
    }
}

#[tokio::test]
async fn every_message_of_concurrent_producers_arrives_on_redis() {
    let cluster = PrivateCluster::start(&[]);
    let receiver = Receiver::start().await;
    check_every_message_arrives(&cluster.client(), &receiver).await;
}

#[tokio::test]
async fn every_message_of_concurrent_producers_arrives_standalone() {
    let node = ApiNode::standalone_in(tempfile::tempdir().unwrap().path(), &[]).unwrap();
    let receiver = Receiver::start().await;
    check_every_message_arrives(&Http::new(&node.url()), &receiver).await;
}
