//! `zaqar standalone` on its embedded store: durable across `kill -9`.

use std::collections::HashMap;

use serde_json::json;
use zaqar_tests::{ApiNode, Http};

/// Posts 1,000 messages and claims some, kills the process with SIGKILL,
/// restarts it on the same directory, and finds every message (ids and
/// bodies) and the claim behaving as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_data_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let http = Http::new(&node.url());
    let mut posted: Vec<(String, serde_json::Value)> = Vec::new();
    for batch in 0..10 {
        let messages: Vec<_> = (0..100)
            .map(|i| json!({"body": {"n": batch * 100 + i, "text": format!("message {}", batch * 100 + i)}, "ttl": 3600}))
            .collect();
        let reply = http
            .json(
                "POST",
                "/v2/queues/durable/messages",
                json!({"messages": messages.clone()}),
            )
            .await;
        reply.expect("post", 201);
        for (href, message) in reply.json["resources"]
            .as_array()
            .unwrap()
            .iter()
            .zip(messages)
        {
            let id = href
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            posted.push((id, message["body"].clone()));
        }
    }
    let (claim, claimed) = http.claim("durable", 10).await;
    assert_eq!(claimed.len(), 10);

    node.guard.kill();
    let node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let http = Http::new(&node.url())
        .with_project(&http.project)
        .with_client_id(&http.client_id);

    let mut seen: Vec<(String, serde_json::Value)> = Vec::new();
    let mut path =
        "/v2/queues/durable/messages?limit=20&echo=true&include_claimed=true".to_string();
    loop {
        let page = http.call("GET", &path).await;
        page.expect("list after restart", 200);
        let messages = page.json["messages"].as_array().unwrap().clone();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen.push((
                message["id"].as_str().unwrap().to_string(),
                message["body"].clone(),
            ));
        }
        path = page.json["links"][0]["href"].as_str().unwrap().to_string();
    }
    assert_eq!(seen.len(), 1000, "every acknowledged message survives");
    assert_eq!(seen, posted, "same ids, bodies and order");

    let got = http
        .call("GET", &format!("/v2/queues/durable/claims/{claim}"))
        .await;
    got.expect("the live claim is honoured after restart", 200);
    let held: Vec<&str> = got.json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(held, claimed.iter().map(String::as_str).collect::<Vec<_>>());
    let visible = http.call("GET", "/v2/queues/durable/stats").await;
    assert_eq!(visible.json["messages"]["claimed"], 10);
    assert_eq!(visible.json["messages"]["total"], 1000);
    http.call(
        "DELETE",
        &format!("/v2/queues/durable/messages/{}", claimed[0]),
    )
    .await
    .expect("still claimed", 403);
    http.call(
        "DELETE",
        &format!(
            "/v2/queues/durable/messages/{}?claim_id={claim}",
            claimed[0]
        ),
    )
    .await
    .expect("deleted with its claim", 204);
    let next = http.call("POST", "/v2/queues/durable/claims?limit=5").await;
    next.expect("new claims skip the held messages", 201);
    let ids: HashMap<&str, ()> = claimed.iter().map(|id| (id.as_str(), ())).collect();
    for message in next.json["messages"].as_array().unwrap() {
        assert!(!ids.contains_key(message["id"].as_str().unwrap()));
    }
}

/// The seed behaviours on the embedded backend, and the default listening
/// address's flags.
#[tokio::test]
async fn seed_behaviours_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
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
        .expect_error("E3", 404, "Not found", "No messages with IDs: ['a', 'b']");
    http.call("GET", "/v2/ping").await.expect("ping", 204);
    assert!(
        dir.path().join("zaqar.redb").is_file(),
        "the store lives in --data-dir"
    );
}

/// The whole API in one process: the management API over the embedded
/// catalog, with the default pool registered on first start and further
/// pools served in process; placements survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn management_api_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let admin_env = [("ZAQAR_STANDALONE__API__ADMIN_MODE", "true")];
    let mut node = ApiNode::standalone_in(dir.path(), &admin_env).unwrap();
    let http = Http::new(&node.url()).as_admin();
    let pools = http.call("GET", "/v2/pools").await;
    pools.expect("pools", 200);
    assert_eq!(pools.json["pools"][0]["name"], "default");
    let default_uri = pools.json["pools"][0]["uri"].as_str().unwrap().to_string();
    assert!(default_uri.starts_with("embedded://"), "{default_uri}");

    let redis_uri = format!("{}/7", zaqar_tests::test_redis_url());
    http.json(
        "PUT",
        "/v2/pools/cache",
        json!({"uri": redis_uri, "weight": 100, "flavor": "fast"}),
    )
    .await
    .expect("second pool", 201);
    http.json("PUT", "/v2/flavors/fast", json!({"pool_list": ["cache"]}))
        .await
        .expect("flavor", 201);
    http.json("PUT", "/v2/queues/quick", json!({"_flavor": "fast"}))
        .await
        .expect("flavored queue", 201);
    http.call("PUT", "/v2/queues/plain")
        .await
        .expect("plain queue", 201);
    let quick = http.post_messages("quick", 2).await;
    let plain = http.post_messages("plain", 3).await;
    http.json(
        "PUT",
        "/v2/pools/bad",
        json!({"uri": "redis://", "weight": 1}),
    )
    .await
    .expect_error(
        "unservable uri",
        400,
        "Invalid request body",
        "cannot connect to redis://",
    );

    node.guard.kill();
    let node = ApiNode::standalone_in(dir.path(), &admin_env).unwrap();
    let http = Http::new(&node.url())
        .as_admin()
        .with_project(&http.project)
        .with_client_id(&http.client_id);
    let pools = http.call("GET", "/v2/pools").await;
    assert_eq!(
        pools.json["pools"].as_array().unwrap().len(),
        2,
        "pools survive a restart"
    );
    for (queue, ids) in [("quick", quick), ("plain", plain)] {
        let listed = http
            .call("GET", &format!("/v2/queues/{queue}/messages?echo=true"))
            .await;
        let found: Vec<&str> = listed.json["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            found,
            ids.iter().map(String::as_str).collect::<Vec<_>>(),
            "{queue} keeps its pool"
        );
    }
    let queues = http.call("GET", "/v2/queues").await;
    assert_eq!(queues.json["queues"].as_array().unwrap().len(), 2);

    // Pooled health: the catalog, then a self-test per pool.
    let health = http.call("GET", "/v2/health").await;
    health.expect("health", 200);
    assert_eq!(health.json["catalog_reachable"], true);
    for pool in ["default", "cache"] {
        assert_eq!(health.json[pool]["storage_reachable"], true, "{pool}");
        let steps = health.json[pool]["operation_status"].as_object().unwrap();
        assert_eq!(steps.len(), 8, "{pool}");
        assert!(
            steps.values().all(|step| step["succeeded"] == true),
            "{pool}: {steps:?}"
        );
    }
}

/// A setting that would stop a background task (a zero sweep interval) is
/// refused at startup with its name, not accepted and broken later.
#[test]
fn a_zero_sweep_interval_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(zaqar_tests::zaqar_bin())
        .args(["standalone", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("ZAQAR_STANDALONE__EMBEDDED__SWEEP_INTERVAL", "0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zaqar standalone kept running with a zero sweep interval");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("embedded.sweep_interval must be positive"),
        "{stderr}"
    );
}

/// SIGTERM sent the moment the process prints `listening on` stops it
/// cleanly: its handlers are in place before it announces itself (a signal
/// arriving before them would kill it with the signal's default action).
#[test]
fn sigterm_right_after_listening_stops_cleanly() {
    for attempt in 1..=20 {
        let dir = tempfile::tempdir().unwrap();
        let mut node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
        let status = node.guard.terminate(std::time::Duration::from_secs(10));
        assert!(
            status.is_some_and(|status| status.success()),
            "attempt {attempt}: {status:?}"
        );
    }
}
