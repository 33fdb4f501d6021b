//! `/` (versions), `/v2/` (home document), ping and health (contract §1.10,
//! §1.11, §2.9).

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use zaqar_proto::model::{ClaimRef, ClaimSpec, NewMessage, PostBatch, PostLimits, Scope};

use crate::context::{RequestContext, check_negotiation};
use crate::error::{ApiError, ApiResult};
use crate::present;
use crate::state::AppState;

/// `GET /`: the versions document (300).
pub async fn versions(headers: HeaderMap) -> ApiResult<Response> {
    check_negotiation(&headers)?;
    let body = json!({
        "versions": [{
            "id": "2",
            "status": "CURRENT",
            "updated": "2014-9-24T04:06:47Z",
            "media-types": [{
                "base": "application/json",
                "type": "application/vnd.openstack.messaging-v2+json"
            }],
            "links": [{"href": "/v2/", "rel": "self"}]
        }]
    });
    Ok(present::json(StatusCode::MULTIPLE_CHOICES, &body))
}

fn resource(template: &str, vars: &[(&str, &str)], allow: &[&str]) -> Value {
    let mut hints = json!({
        "allow": allow,
        "formats": {"application/json": {}}
    });
    if allow
        .iter()
        .any(|method| matches!(*method, "POST" | "PATCH"))
    {
        hints["accept-post"] = json!(["application/json"]);
    }
    if vars.is_empty() {
        return json!({"href-template": template, "hints": hints});
    }
    let vars: Map<String, Value> = vars
        .iter()
        .map(|(name, param)| (name.to_string(), json!(format!("param/{param}"))))
        .collect();
    json!({"href-template": template, "href-vars": vars, "hints": hints})
}

/// The JSON-home document of `/v2/`.
fn home_document(admin: bool) -> Value {
    let queue = ("queue_name", "queue_name");
    let message = ("message_id", "message_id");
    let claim = ("claim_id", "claim_id");
    let subscription = ("subscriptions_id", "subscriptions_id");
    let mut resources = Map::new();
    let mut add = |rel: &str, value: Value| {
        resources.insert(format!("rel/{rel}"), value);
    };
    add(
        "queues",
        resource(
            "/v2/queues{?marker,limit,detailed}",
            &[
                ("marker", "marker"),
                ("limit", "queue_limit"),
                ("detailed", "detailed"),
            ],
            &["GET"],
        ),
    );
    add(
        "queue",
        resource(
            "/v2/queues/{queue_name}",
            &[queue],
            &["GET", "PUT", "DELETE", "PATCH"],
        ),
    );
    add(
        "queue_stats",
        resource("/v2/queues/{queue_name}/stats", &[queue], &["GET"]),
    );
    add(
        "queue_share",
        resource("/v2/queues/{queue_name}/share", &[queue], &["POST"]),
    );
    add(
        "queue_purge",
        resource("/v2/queues/{queue_name}/purge", &[queue], &["POST"]),
    );
    add(
        "messages",
        resource(
            "/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}",
            &[
                queue,
                ("marker", "marker"),
                ("limit", "messages_limit"),
                ("echo", "echo"),
                ("include_claimed", "include_claimed"),
            ],
            &["GET"],
        ),
    );
    add(
        "post_messages",
        resource("/v2/queues/{queue_name}/messages", &[queue], &["POST"]),
    );
    add(
        "messages_delete",
        resource(
            "/v2/queues/{queue_name}/messages{?ids,pop}",
            &[queue, ("ids", "ids"), ("pop", "pop")],
            &["DELETE"],
        ),
    );
    add(
        "message_delete",
        resource(
            "/v2/queues/{queue_name}/messages/{message_id}{?claim}",
            &[queue, message, ("claim", "claim_id")],
            &["DELETE"],
        ),
    );
    add(
        "message_get",
        resource(
            "/v2/queues/{queue_name}/messages/{message_id}",
            &[queue, message],
            &["GET"],
        ),
    );
    add(
        "claim",
        resource(
            "/v2/queues/{queue_name}/claims/{claim_id}",
            &[queue, claim],
            &["GET"],
        ),
    );
    add(
        "post_claim",
        resource(
            "/v2/queues/{queue_name}/claims{?limit}",
            &[queue, ("limit", "claim_limit")],
            &["POST"],
        ),
    );
    add(
        "patch_claim",
        resource(
            "/v2/queues/{queue_name}/claims/{claim_id}",
            &[queue, claim],
            &["PATCH"],
        ),
    );
    add(
        "delete_claim",
        resource(
            "/v2/queues/{queue_name}/claims/{claim_id}",
            &[queue, claim],
            &["DELETE"],
        ),
    );
    add(
        "subscriptions_get",
        resource(
            "/v2/queues/{queue_name}/subscriptions{?marker,limit}",
            &[queue, ("marker", "marker"), ("limit", "subscription_limit")],
            &["GET"],
        ),
    );
    add(
        "subscriptions_post",
        resource("/v2/queues/{queue_name}/subscriptions", &[queue], &["POST"]),
    );
    add(
        "subscription",
        resource(
            "/v2/queues/{queue_name}/subscriptions/{subscriptions_id}",
            &[queue, subscription],
            &["GET", "DELETE"],
        ),
    );
    add(
        "subscription_patch",
        resource(
            "/v2/queues/{queue_name}/subscriptions/{subscriptions_id}",
            &[queue, subscription],
            &["PATCH"],
        ),
    );
    add("ping", resource("/v2/ping", &[], &["GET"]));
    if admin {
        add(
            "pools",
            resource(
                "/v2/pools{?detailed,limit,marker}",
                &[
                    ("detailed", "detailed"),
                    ("limit", "pool_limit"),
                    ("marker", "marker"),
                ],
                &["GET"],
            ),
        );
        add(
            "pool",
            resource(
                "/v2/pools/{pool_name}",
                &[("pool_name", "pool_name")],
                &["GET", "PUT", "PATCH", "DELETE"],
            ),
        );
        add(
            "flavors",
            resource(
                "/v2/flavors{?detailed,limit,marker}",
                &[
                    ("detailed", "detailed"),
                    ("limit", "flavor_limit"),
                    ("marker", "marker"),
                ],
                &["GET"],
            ),
        );
        add(
            "flavor",
            resource(
                "/v2/flavors/{flavor_name}",
                &[("flavor_name", "flavor_name")],
                &["GET", "PUT", "PATCH", "DELETE"],
            ),
        );
        add(
            "health",
            json!({"href": "/v2/health", "hints": {"allow": ["GET"], "formats": {"application/json": {}}}}),
        );
    }
    json!({"resources": resources})
}

/// `GET /v2/`: the JSON-home document.
pub async fn home(State(state): State<AppState>, _context: RequestContext) -> Response {
    let mut response = present::json(StatusCode::OK, &home_document(state.config.admin_mode));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json-home"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400"),
    );
    response
}

/// `GET /v2/ping`: 204 when every backend answers, else 503 without body.
pub async fn ping(State(state): State<AppState>, _context: RequestContext) -> Response {
    let Ok(backends) = state.placement.backends().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    for backend in backends {
        let reachable = backend.health().await.is_ok_and(|health| health.reachable);
        if !reachable {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `HEAD /v2/ping`: always 204.
pub async fn ping_head(_context: RequestContext) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /v2/health` (admin): a self-test against every backend.
pub async fn health(State(state): State<AppState>, context: RequestContext) -> ApiResult<Response> {
    if !context.identity.is_admin() {
        return Err(ApiError::Forbidden {
            title: "Not authorized",
            description: "You are not authorized to complete this action.".into(),
        });
    }
    if let Some(pooling) = &state.pooling {
        // Pooled: the catalog's state, then every pool's self-test.
        let pools = pooling.view().catalog().all_pools().await;
        let mut body = Map::new();
        body.insert("catalog_reachable".into(), json!(pools.is_ok()));
        let pools = pools.unwrap_or_else(|_| pooling.view().pools());
        for pool in pools {
            let report = match pooling.pool_backend(&pool) {
                Ok(backend) => self_test(&backend).await,
                Err(_) => json!({"storage_reachable": false, "operation_status": {}}),
            };
            body.insert(pool.name.clone(), report);
        }
        return Ok(present::json(StatusCode::OK, &Value::Object(body)));
    }
    let backends = state.placement.backends().await?;
    let Some(backend) = backends.into_iter().next() else {
        return Err(ApiError::Unavailable(
            "Health status could not be read. Please try again in a few seconds.".into(),
        ));
    };
    let reachable = backend.health().await.is_ok_and(|health| health.reachable);
    if !reachable {
        return Err(ApiError::Unavailable(
            "Health status could not be read. Please try again in a few seconds.".into(),
        ));
    }
    Ok(present::json(StatusCode::OK, &self_test(&backend).await))
}

/// Zaqar's storage self-test on one backend: create a queue, post, claim,
/// list, delete, release, bulk-delete, drop the queue, timing every step.
async fn self_test(backend: &zaqar_storage::BackendRef) -> Value {
    if !backend.health().await.is_ok_and(|health| health.reachable) {
        return json!({"storage_reachable": false, "operation_status": {}});
    }
    let Ok(scope) = Scope::queue(
        format!("health-{}", uuid::Uuid::new_v4().simple()),
        "health",
    ) else {
        return json!({"storage_reachable": true, "operation_status": {}});
    };
    let mut steps = Map::new();
    let mut record = |name: &str, started: Instant, outcome: Result<(), String>| {
        let reference = outcome.as_ref().err().map(|error| {
            let reference = uuid::Uuid::new_v4().to_string();
            tracing::warn!(step = name, %reference, %error, "health step failed");
            reference
        });
        steps.insert(
            name.to_string(),
            json!({
                "succeeded": outcome.is_ok(),
                "seconds": started.elapsed().as_secs_f64(),
                "ref": reference,
            }),
        );
    };
    let started = Instant::now();
    let outcome = backend.create_queue(&scope, "{}").await.map(|_| ());
    record("create_queue", started, outcome.map_err(|e| e.to_string()));
    let started = Instant::now();
    let batch = PostBatch {
        client_id: "health".into(),
        messages: (0..100)
            .map(|i| NewMessage {
                body: format!("{{\"health\":{i}}}"),
                ttl: Some(300),
                delay: None,
            })
            .collect(),
        request_size: 0,
        limits: PostLimits {
            default_message_ttl: 300,
            max_message_delay: 0,
            max_messages_post_size: i64::MAX,
        },
        notify: zaqar_proto::model::NotifyMode::None,
    };
    let posted = backend.post_messages(&scope, batch).await;
    let ids = posted.as_ref().map(Clone::clone).unwrap_or_default();
    record(
        "post_messages",
        started,
        posted.map(|_| ()).map_err(|e| e.to_string()),
    );
    let started = Instant::now();
    let claimed = backend
        .create_claim(
            &scope,
            ClaimSpec {
                ttl: 60,
                grace: 60,
                limit: 5,
            },
        )
        .await;
    let claim = claimed.as_ref().ok().cloned().flatten();
    record(
        "claim_messages",
        started,
        claimed.map(|_| ()).map_err(|e| e.to_string()),
    );
    let started = Instant::now();
    let query = zaqar_proto::model::ListQuery {
        limit: 10,
        echo: true,
        ..Default::default()
    };
    let listed = backend.list_messages(&scope, &query).await;
    record(
        "list_messages",
        started,
        listed.map(|_| ()).map_err(|e| e.to_string()),
    );
    let started = Instant::now();
    let mut deleted = Ok(());
    if let Some(claim) = &claim {
        let claim_ref = ClaimRef::Id(claim.id.clone());
        for message in &claim.messages {
            if let Err(error) = backend
                .delete_message(&scope, &message.id, Some(&claim_ref))
                .await
            {
                deleted = Err(error.to_string());
                break;
            }
        }
    }
    record("delete_messages", started, deleted);
    let started = Instant::now();
    let released = match &claim {
        Some(claim) => backend
            .release_claim(&scope, &claim.id)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(()),
    };
    record("delete_claim", started, released);
    let started = Instant::now();
    let bulk = backend.delete_messages(&scope, &ids, None).await;
    record(
        "bulk_delete_messages",
        started,
        bulk.map_err(|e| e.to_string()),
    );
    let started = Instant::now();
    let dropped = backend.delete_queue(&scope).await;
    record("delete_queue", started, dropped.map_err(|e| e.to_string()));
    json!({"storage_reachable": true, "operation_status": steps})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_document_hrefs_start_with_v2() {
        let document = home_document(true);
        let resources = document["resources"].as_object().unwrap();
        assert_eq!(resources.len(), 24);
        for (rel, resource) in resources {
            let href = resource
                .get("href-template")
                .or_else(|| resource.get("href"))
                .and_then(Value::as_str)
                .unwrap();
            assert!(href.starts_with("/v2"), "{rel}: {href}");
        }
        assert_eq!(
            document["resources"]["rel/queue"]["href-template"],
            "/v2/queues/{queue_name}"
        );
        assert_eq!(
            home_document(false)["resources"].as_object().unwrap().len(),
            19
        );
    }
}
