//! Concurrent posts and deletes on one queue through a real API node and
//! storage node on Redis: the API tier sends them to the node together
//! (group commit), and every request must still get exactly its own answer.

use std::collections::HashSet;

use serde_json::json;
use zaqar_tests::{Cluster, Http};

/// Every message of a queue (claimed included) as (id, body).
async fn everything(http: &Http, queue: &str) -> Vec<(String, serde_json::Value)> {
    let mut all = Vec::new();
    let mut path = format!("/v2/queues/{queue}/messages?echo=true&include_claimed=true&limit=20");
    loop {
        let reply = http.call("GET", &path).await;
        reply.expect("list", 200);
        let messages = reply.json["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            return all;
        }
        for message in messages {
            all.push((
                message["id"].as_str().expect("id").to_string(),
                message["body"].clone(),
            ));
        }
        path = reply.json["links"][0]["href"]
            .as_str()
            .expect("next link")
            .to_string();
    }
}

/// 150 concurrent posts, a third of them over the queue's own size limit:
/// the small ones get 201 with their own ids, the big ones the queue-limit
/// 400, and the queue holds exactly the accepted messages, each once.
#[tokio::test]
async fn concurrent_posts_each_get_their_own_answer() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.json(
        "PUT",
        "/v2/queues/crowd",
        json!({"_max_messages_post_size": 1023}),
    )
    .await
    .expect("create", 201);
    let posts = (0..150).map(|i| {
        let http = http.clone();
        async move {
            let body = if i % 3 == 2 {
                json!({"messages": [{"body": {"n": i, "pad": "x".repeat(1_200)}}]})
            } else {
                json!({"messages": [{"body": {"n": i}}, {"body": {"n": i, "second": true}}]})
            };
            (
                i,
                http.json("POST", "/v2/queues/crowd/messages", body).await,
            )
        }
    });
    let replies = futures::future::join_all(posts).await;
    let mut accepted = HashSet::new();
    for (i, reply) in &replies {
        if i % 3 == 2 {
            reply.expect_error(
                "over the queue's limit",
                400,
                "Invalid API request",
                "The max size for current queue is 1023",
            );
        } else {
            reply.expect("within the limit", 201);
            let ids = reply.posted_ids();
            assert_eq!(ids.len(), 2, "post {i}: {}", reply.text);
            for id in ids {
                assert!(accepted.insert((id, *i)), "id handed out twice");
            }
        }
    }
    assert_eq!(accepted.len(), 200);

    let stored = everything(&http, "crowd").await;
    assert_eq!(stored.len(), 200, "exactly the accepted messages");
    let stored_ids: HashSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(stored_ids.len(), 200, "no duplicates");
    for (id, body) in &stored {
        let poster = body["n"].as_i64().expect("n");
        assert!(
            accepted.contains(&(id.clone(), poster)),
            "{id} holds post {poster}'s body but was not answered to it"
        );
    }
    // Each post's two messages stay in its order.
    let position = |id: &str| stored.iter().position(|(stored, _)| stored == id);
    for (i, reply) in &replies {
        if i % 3 != 2 {
            let ids = reply.posted_ids();
            assert!(position(&ids[0]) < position(&ids[1]), "post {i} reordered");
        }
    }
}

/// Concurrent single deletes with every kind of claim answer at once: each
/// request gets what it would have got alone.
#[tokio::test]
async fn concurrent_deletes_each_get_their_own_answer() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let ids = http.post_messages("busy", 40).await;
    let (claim, claimed) = http.claim("busy", 20).await;
    assert_eq!(claimed, ids[..20]);
    let unknown = "5f1e0c2a9d3e4b0001a1b2c3";
    // (message, claim id to send, expected status)
    let mut plan: Vec<(String, Option<String>, u16)> = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let step = match (n < 20, n % 4) {
            (true, 0 | 1) => (Some(claim.clone()), 204),
            (true, 2) => (None, 403),
            (true, _) => (Some(unknown.to_string()), 403),
            (false, 0 | 1) => (None, 204),
            (false, 2) => (Some(unknown.to_string()), 400),
            (false, _) => (Some("not-a-claim-id".to_string()), 400),
        };
        plan.push((id.clone(), step.0, step.1));
    }
    // A repeated delete of an already deleted message is fine as well.
    plan.push((ids[0].clone(), Some(claim.clone()), 204));
    let deletes = plan.iter().map(|(id, claim, _)| {
        let http = http.clone();
        let path = match claim {
            Some(claim) => format!("/v2/queues/busy/messages/{id}?claim_id={claim}"),
            None => format!("/v2/queues/busy/messages/{id}"),
        };
        async move { http.call("DELETE", &path).await }
    });
    let replies = futures::future::join_all(deletes).await;
    for ((id, claim, expected), reply) in plan.iter().zip(&replies) {
        assert_eq!(
            reply.status, *expected,
            "DELETE {id} with claim {claim:?}: {}",
            reply.text
        );
    }
    let left: HashSet<String> = everything(&http, "busy")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let expected: HashSet<String> = plan
        .iter()
        .filter(|(_, _, status)| *status != 204)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(left, expected);
}

/// 30 concurrent claims of up to 5 on 100 messages: every message goes to
/// exactly one claim, no claim holds more than it asked for, the claims run
/// out cleanly (204 once nothing is left), and each claim id deletes its
/// own messages and no one else's.
#[tokio::test]
async fn concurrent_claims_share_out_every_message_once() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    let mut posted = Vec::new();
    for _ in 0..5 {
        posted.extend(http.post_messages("shared", 20).await);
    }
    let claims = (0..30).map(|_| {
        let http = http.clone();
        async move {
            http.json(
                "POST",
                "/v2/queues/shared/claims?limit=5",
                json!({"ttl": 300, "grace": 60}),
            )
            .await
        }
    });
    let replies = futures::future::join_all(claims).await;
    let mut owner = std::collections::HashMap::new();
    let mut claim_ids = HashSet::new();
    for reply in &replies {
        if reply.status == 204 {
            continue;
        }
        reply.expect("claim", 201);
        let claim = reply
            .header("location")
            .and_then(|location| location.rsplit('/').next())
            .expect("claim id")
            .to_string();
        assert!(claim_ids.insert(claim.clone()), "claim id handed out twice");
        let messages = reply.json["messages"].as_array().expect("messages");
        assert!(
            !messages.is_empty() && messages.len() <= 5,
            "{}",
            reply.text
        );
        for message in messages {
            let id = message["id"].as_str().expect("id").to_string();
            assert!(
                owner.insert(id.clone(), claim.clone()).is_none(),
                "{id} claimed twice"
            );
        }
    }
    let claimed: HashSet<&String> = owner.keys().collect();
    let expected: HashSet<&String> = posted.iter().collect();
    assert_eq!(claimed, expected, "every message claimed exactly once");
    assert!(
        claim_ids.len() >= 20,
        "100 messages need at least 20 claims"
    );

    let stranger = claim_ids
        .iter()
        .find(|claim| **claim != owner[&posted[0]])
        .expect("another claim")
        .clone();
    http.call(
        "DELETE",
        &format!(
            "/v2/queues/shared/messages/{}?claim_id={stranger}",
            posted[0]
        ),
    )
    .await
    .expect("another claim's id", 403);
    let deletes = owner.iter().map(|(id, claim)| {
        let http = http.clone();
        let path = format!("/v2/queues/shared/messages/{id}?claim_id={claim}");
        async move { http.call("DELETE", &path).await }
    });
    for reply in futures::future::join_all(deletes).await {
        reply.expect("delete with its own claim", 204);
    }
    assert!(everything(&http, "shared").await.is_empty());
}

/// A storage node that stops answering: every waiting post is answered 503
/// within the request deadline (the group's call is cut, not waited for),
/// and once the node answers again posts to the same queue succeed.
#[tokio::test]
async fn a_stalled_storage_node_gives_503_and_the_queue_recovers() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let cluster = Cluster::with_env(&[("ZAQAR_API__REQUEST_TIMEOUT", "2s")]).unwrap();
    let http = cluster.client();
    http.post_messages("stall", 1).await;
    let storage = Pid::from_raw(i32::try_from(cluster.storage.guard.pid()).unwrap());
    kill(storage, Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    let posts = (0..8).map(|i| {
        let http = http.clone();
        async move {
            http.json(
                "POST",
                "/v2/queues/stall/messages",
                json!({"messages": [{"body": i}]}),
            )
            .await
        }
    });
    let replies = futures::future::join_all(posts).await;
    let waited = started.elapsed();
    kill(storage, Signal::SIGCONT).unwrap();
    for reply in &replies {
        reply.expect("stalled backend", 503);
        assert!(
            reply.json["description"].is_string(),
            "a Zaqar-style error body: {}",
            reply.text
        );
    }
    assert!(
        waited < std::time::Duration::from_secs(10),
        "answered after {waited:?}"
    );
    let ids = http.post_messages("stall", 2).await;
    assert_eq!(ids.len(), 2);
}
