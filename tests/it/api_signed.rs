//! Pre-signed URLs over HTTP: contract §2.1.8, §7 and rows H11–H17, E20.

use serde_json::json;
use zaqar_tests::{Cluster, Http, Reply};

async fn signed(
    http: &Http,
    method: &str,
    path: &str,
    grant: &serde_json::Value,
    overrides: &[(&str, &str)],
) -> Reply {
    let join = |field: &str| {
        grant[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut headers = vec![
        (
            "URL-Signature".to_string(),
            grant["signature"].as_str().unwrap().to_string(),
        ),
        (
            "URL-Expires".to_string(),
            grant["expires"].as_str().unwrap().to_string(),
        ),
        ("URL-Methods".to_string(), join("methods")),
        ("URL-Paths".to_string(), join("paths")),
    ];
    for (name, value) in overrides {
        headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        headers.push((name.to_string(), value.to_string()));
    }
    let mut request = http.request(method, path);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    http.send(request).await
}

/// Issuing grants and using them.
#[tokio::test]
async fn pre_signed_urls() {
    let cluster =
        Cluster::with_env(&[("ZAQAR_API__SIGNED_URL_SECRET_KEY", "test-secret")]).unwrap();
    let http = cluster.client();
    let share = "/v2/queues/shared/share";
    let reply = http
        .json("POST", share, json!({"methods": ["POST", "GET"]}))
        .await;
    reply.expect("H17", 200);
    let grant = reply.json.clone();
    assert_eq!(grant["methods"], json!(["GET", "POST"]));
    assert_eq!(grant["paths"], json!(["/v2/queues/shared/messages"]));
    assert_eq!(grant["project"], http.project.as_str());
    assert_eq!(grant["signature"].as_str().unwrap().len(), 64);
    let expires = grant["expires"].as_str().unwrap();
    assert_eq!(expires.len(), 19, "{expires}");
    let queues = http.call("GET", "/v2/queues").await;
    assert_eq!(
        queues.json["queues"],
        json!([]),
        "E20: sharing creates nothing"
    );

    for (body, row) in [
        ("not json", "not json"),
        ("{\"dummy\": 1}", "unknown key"),
        ("{\"expires\": \"tomorrow\"}", "bad expires"),
        ("{\"expires\": \"1700000000\"}", "integer expires"),
        ("{\"expires\": 1700000000}", "integer expires"),
        ("{\"expires\": \"2000-01-01T00:00:00\"}", "past expires"),
        ("{\"methods\": \"GET\"}", "methods not a list"),
        ("{\"paths\": [\"queues\"]}", "unknown path"),
        ("[]", "not an object"),
    ] {
        http.call_with("POST", share, body)
            .await
            .expect(&format!("H16 {row}"), 400);
    }
    http.call("POST", share).await.expect_error(
        "no body",
        400,
        "Invalid request body",
        "Request body can not be empty",
    );

    // A stranger with the grant's headers and project can use it.
    let stranger = Http::new(&cluster.api.url()).with_project(&http.project);
    let posted = signed(
        &stranger,
        "POST",
        "/v2/queues/shared/messages",
        &grant,
        &[("Content-Type", "application/json")],
    )
    .await;
    assert_eq!(
        posted.status, 400,
        "a signed request still needs a valid body: {}",
        posted.text
    );
    let mut request = stranger.request("POST", "/v2/queues/shared/messages");
    for (name, value) in [
        ("URL-Signature", grant["signature"].as_str().unwrap()),
        ("URL-Expires", grant["expires"].as_str().unwrap()),
        ("URL-Methods", "GET,POST"),
        ("URL-Paths", "/v2/queues/shared/messages"),
        ("Content-Type", "application/json"),
    ] {
        request = request.header(name, value);
    }
    let posted = stranger
        .send(request.body(json!({"messages": [{"body": "signed"}]}).to_string()))
        .await;
    posted.expect("signed post", 201);
    let id = posted.json["resources"][0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    signed(
        &stranger,
        "GET",
        "/v2/queues/shared/messages?echo=true",
        &grant,
        &[],
    )
    .await
    .expect("H11", 200);
    signed(
        &stranger,
        "GET",
        &format!("/v2/queues/shared/messages/{id}"),
        &grant,
        &[],
    )
    .await
    .expect("H12", 200);

    let signature = grant["signature"].as_str().unwrap();
    for (row, overrides) in [
        ("H13 truncated", vec![("URL-Signature", &signature[..40])]),
        ("H13 empty", vec![("URL-Signature", "")]),
        ("H14 expires not a date", vec![("URL-Expires", "never")]),
        (
            "H14 past expiry",
            vec![("URL-Expires", "2000-01-01T00:00:00")],
        ),
        ("H14 methods empty", vec![("URL-Methods", "")]),
        (
            "H14 methods nonsense",
            vec![("URL-Methods", "nothing here")],
        ),
        ("H14 method not granted", vec![("URL-Methods", "POST")]),
        (
            "H15 other path",
            vec![("URL-Paths", "/v2/queues/other/messages")],
        ),
    ] {
        let reply = signed(
            &stranger,
            "GET",
            "/v2/queues/shared/messages",
            &grant,
            &overrides,
        )
        .await;
        reply.expect(row, 404);
        assert_eq!(reply.json, json!({"title": "404 Not Found"}), "{row}");
    }
    signed(&stranger, "POST", "/v2/queues/shared/claims", &grant, &[])
        .await
        .expect("claims not granted", 404);
    let elsewhere = stranger.with_project("someone-else");
    signed(&elsewhere, "GET", "/v2/queues/shared/messages", &grant, &[])
        .await
        .expect("the grant is bound to its project", 404);
}

/// Without a secret key, sharing is refused and signatures are not honoured.
#[tokio::test]
async fn no_secret_key_no_grants() {
    let cluster = Cluster::start().unwrap();
    let http = cluster.client();
    http.json("POST", "/v2/queues/q/share", json!({}))
        .await
        .expect_error(
            "no key",
            400,
            "Invalid API request",
            "The `key` can't be None",
        );
    let reply = http
        .send(
            http.request("GET", "/v2/queues/q/messages")
                .header("URL-Signature", "0".repeat(64))
                .header("URL-Expires", "2030-01-01T00:00:00")
                .header("URL-Methods", "GET")
                .header("URL-Paths", "/v2/queues/q/messages"),
        )
        .await;
    reply.expect("refused", 404);
}
