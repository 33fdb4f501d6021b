//! Queues and topics: list, create, get, update (JSON patch), delete, stats
//! and purge (contract §2.1, §2.6).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use zaqar_proto::model::{MessageSummary, Namespace, QueueRecord, Scope};
use zaqar_storage::StorageError;

use crate::body;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::metadata;
use crate::present::{self, links};
use crate::query::{LimitWording, LinkParams, QueryParams, page_limit, parse_int};
use crate::state::AppState;

/// How often a PATCH retries when the metadata changed underneath it.
const PATCH_ATTEMPTS: usize = 5;

fn collection_name(namespace: Namespace) -> &'static str {
    match namespace {
        Namespace::Queue => "queues",
        Namespace::Topic => "topics",
    }
}

fn failed(namespace: Namespace, queue: &'static str, topic: &'static str) -> &'static str {
    match namespace {
        Namespace::Queue => queue,
        Namespace::Topic => topic,
    }
}

/// Parses stored metadata text (an object; anything else reads as empty).
pub fn parse_metadata(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Reads the stored records of `scopes`, one batched call per backend.
async fn fetch_records(state: &AppState, scopes: &[Scope]) -> ApiResult<Vec<Option<QueueRecord>>> {
    let mut groups: HashMap<usize, (zaqar_storage::BackendRef, Vec<usize>)> = HashMap::new();
    for (index, scope) in scopes.iter().enumerate() {
        let backend = state.placement.backend(scope).await?;
        let key = std::sync::Arc::as_ptr(&backend) as *const () as usize;
        groups
            .entry(key)
            .or_insert_with(|| (backend, Vec::new()))
            .1
            .push(index);
    }
    let mut records = vec![None; scopes.len()];
    for (backend, indexes) in groups.into_values() {
        let batch: Vec<Scope> = indexes.iter().map(|index| scopes[*index].clone()).collect();
        let fetched = backend
            .get_queues(&batch)
            .await
            .map_err(ApiError::storage("Queues could not be listed."))?;
        for (index, record) in indexes.into_iter().zip(fetched) {
            records[index] = record;
        }
    }
    Ok(records)
}

/// A metadata filter value: base-10 integers compare as integers.
fn filter_value(text: &str) -> Value {
    match parse_int(text) {
        Some(number) if number != i64::MAX && number != i64::MIN => Value::from(number),
        _ => Value::from(text),
    }
}

/// `GET /v2/queues` (and `/v2/topics`).
pub async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let namespace = if uri.path().starts_with("/v2/topics") {
        Namespace::Topic
    } else {
        Namespace::Queue
    };
    let query = QueryParams::parse(raw.as_deref());
    let marker = query.get("marker");
    let limit = query.int("limit")?;
    let detailed = query.bool("detailed")?;
    let name = query.get("name");
    let with_count = match namespace {
        Namespace::Queue => query.bool("with_count")?,
        Namespace::Topic => None,
    };
    let max = state.config.limits.max_queues_per_page;
    let page = page_limit(limit, max, LimitWording::NoGreater)?;
    let page_size = page as usize;
    let known = ["marker", "limit", "detailed", "name", "with_count"];
    let filters: Vec<(String, Value)> = query
        .others(&known)
        .into_iter()
        .map(|(key, value)| {
            let value = filter_value(&value);
            (key, value)
        })
        .collect();
    let needs_metadata = detailed == Some(true) || !filters.is_empty();

    let mut items = Vec::new();
    let mut cursor = marker.clone();
    let mut total;
    loop {
        let fetch = if needs_metadata || name.is_some() {
            100
        } else {
            page_size - items.len()
        };
        let page = state
            .placement
            .list_queues(&context.project, namespace, cursor.as_deref(), fetch as u32)
            .await?;
        total = page.total;
        let exhausted = page.names.len() < fetch;
        cursor = page.names.last().cloned().or(cursor);
        let names: Vec<String> = page
            .names
            .into_iter()
            .filter(|candidate| {
                name.as_ref()
                    .is_none_or(|part| candidate.contains(part.as_str()))
            })
            .collect();
        let scopes: Vec<Scope> = names
            .iter()
            .filter_map(|name| Scope::new(context.project.clone(), namespace, name.as_str()).ok())
            .collect();
        let records = if needs_metadata {
            fetch_records(&state, &scopes).await?
        } else {
            vec![None; scopes.len()]
        };
        for (scope, record) in scopes.iter().zip(records) {
            if items.len() >= page_size {
                break;
            }
            let mut item = json!({
                "name": scope.name(),
                "href": present::resource_path(scope),
            });
            if needs_metadata {
                let Some(record) = record else { continue };
                let stored = parse_metadata(&record.metadata);
                let matches = filters
                    .iter()
                    .all(|(key, value)| stored.get(key).is_some_and(|found| found == value));
                if !matches {
                    continue;
                }
                if detailed == Some(true) {
                    item["metadata"] = Value::Object(metadata::with_defaults(
                        stored,
                        namespace,
                        &state.config.limits,
                    ));
                }
            }
            items.push(item);
        }
        if items.len() >= page_size || exhausted {
            break;
        }
    }
    let params = LinkParams::new()
        .with("marker", marker.as_ref())
        .with("limit", limit)
        .with("detailed", detailed)
        .with("name", name.as_ref())
        .with("with_count", with_count);
    let path = format!("/v2/{}", collection_name(namespace));
    let next = items
        .last()
        .and_then(|item| item["name"].as_str())
        .map(|last| params.link(&path, last));
    let mut body = json!({
        collection_name(namespace): items,
        "links": links(next),
    });
    if with_count == Some(true) && total > 0 {
        body["count"] = json!(total);
    }
    Ok(present::json(StatusCode::OK, &body))
}

fn too_large_metadata(limit: u64, title: &'static str) -> impl FnOnce() -> ApiError {
    move || ApiError::BadRequest {
        title,
        description: format!("Queue metadata is too large. Max size: {limit}"),
    }
}

/// `PUT /v2/queues/{name}`: 201 when created, 204 when it existed
/// (metadata unchanged).
pub async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let limits = &state.config.limits;
    let raw = body::read(
        body,
        &headers,
        limits.max_queue_metadata,
        too_large_metadata(limits.max_queue_metadata, "Invalid API request"),
    )
    .await?;
    let metadata = match raw.non_empty() {
        None => Map::new(),
        Some(bytes) => match body::parse_json(bytes)? {
            Value::Object(map) => map,
            _ => return Err(body::unsupported_document()),
        },
    };
    metadata::validate(&metadata, limits, "Invalid API request")?;
    let flavor = metadata
        .get("_flavor")
        .and_then(Value::as_str)
        .map(str::to_string);
    let text = Value::Object(metadata).to_string();
    let backend = state
        .placement
        .backend_for_create(scope, flavor.as_deref())
        .await?;
    let created = backend
        .create_queue(scope, &text)
        .await
        .map_err(ApiError::storage(failed(
            scope.namespace(),
            "Queue could not be created.",
            "Topic could not be created.",
        )))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(present::with_location(
        status.into_response(),
        &present::resource_path(scope),
    ))
}

/// `GET /v2/queues/{name}`: metadata with defaults (also for missing queues).
pub async fn get(State(state): State<AppState>, context: RequestContext) -> ApiResult<Response> {
    let scope = context.scope()?;
    let backend = state.placement.backend(scope).await?;
    let record = backend
        .get_queue(scope)
        .await
        .map_err(ApiError::storage(failed(
            scope.namespace(),
            "Queue metadata could not be retrieved.",
            "Topic metadata could not be retrieved.",
        )))?;
    let stored = record
        .map(|record| parse_metadata(&record.metadata))
        .unwrap_or_default();
    let shown = metadata::with_defaults(stored, scope.namespace(), &state.config.limits);
    Ok(present::json(StatusCode::OK, &shown))
}

/// The exact media type queue and topic PATCH requires.
pub const JSON_PATCH_MEDIA_TYPE: &str = "application/openstack-messaging-v2.0-json-patch";

/// `PATCH /v2/queues/{name}`: JSON-patch the metadata.
pub async fn update(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let limits = &state.config.limits;
    if body::content_length(&headers).is_some_and(|length| length > limits.max_queue_metadata) {
        return Err(too_large_metadata(
            limits.max_queue_metadata,
            "Invalid request body",
        )());
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if media_type != JSON_PATCH_MEDIA_TYPE {
        return Err(ApiError::UnsupportedMediaType);
    }
    let raw = body::read(
        body,
        &headers,
        limits.max_queue_metadata,
        too_large_metadata(limits.max_queue_metadata, "Invalid request body"),
    )
    .await?;
    let Some(bytes) = raw.non_empty() else {
        return Err(ApiError::bad_body(
            "PATCH body could not be empty for update.",
        ));
    };
    let document = body::parse_json(bytes)?;
    let changes = metadata::parse_patch(&document)?;
    let backend = state.placement.backend(scope).await?;
    let failure = failed(
        scope.namespace(),
        "Queue could not be updated.",
        "Topic could not be updated.",
    );
    for _ in 0..PATCH_ATTEMPTS {
        let record = backend
            .get_queue(scope)
            .await
            .map_err(ApiError::storage(failure))?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "{} {} does not exist for project {}",
                    match scope.namespace() {
                        Namespace::Queue => "Queue",
                        Namespace::Topic => "Topic",
                    },
                    scope.name(),
                    scope.project()
                ))
            })?;
        let stored = parse_metadata(&record.metadata);
        let updated = metadata::apply_patch(&stored, changes.clone(), scope.namespace(), limits)?;
        metadata::validate(&updated, limits, "Invalid request body")?;
        let text = Value::Object(updated.clone()).to_string();
        match backend
            .update_queue_metadata(scope, &text, Some(record.revision))
            .await
        {
            Ok(_) => {
                let shown = metadata::with_defaults(updated, scope.namespace(), limits);
                return Ok(present::json(StatusCode::OK, &shown));
            }
            Err(StorageError::Conflict(_)) => continue,
            Err(error) => return Err(ApiError::from_storage(error, failure)),
        }
    }
    Err(ApiError::Unavailable(format!(
        "{failure} Please try again in a few seconds."
    )))
}

/// `DELETE /v2/queues/{name}`: always 204.
pub async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let backend = state.placement.backend(scope).await?;
    backend
        .delete_queue(scope)
        .await
        .map_err(ApiError::storage(failed(
            scope.namespace(),
            "Queue could not be deleted.",
            "Topic could not be deleted.",
        )))?;
    state.placement.forget(scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn summary(scope: &Scope, summary: &MessageSummary) -> Value {
    json!({
        "href": format!("{}/messages/{}", present::resource_path(scope), summary.id),
        "age": summary.age.max(0),
        "created": present::iso8601(summary.created),
    })
}

/// `GET /v2/queues/{name}/stats`.
pub async fn stats(State(state): State<AppState>, context: RequestContext) -> ApiResult<Response> {
    let scope = context.scope()?;
    let backend = state.placement.backend(scope).await?;
    let stats = backend
        .queue_stats(scope)
        .await
        .map_err(ApiError::storage(failed(
            scope.namespace(),
            "Queue stats could not be read.",
            "Topic stats could not be read.",
        )))?;
    let mut messages = if scope.namespace() == Namespace::Topic && stats.exists {
        json!({"total": stats.total})
    } else {
        json!({"claimed": stats.claimed, "free": stats.free, "total": stats.total})
    };
    if stats.total > 0 {
        if let Some(oldest) = &stats.oldest {
            messages["oldest"] = summary(scope, oldest);
        }
        if let Some(newest) = &stats.newest {
            messages["newest"] = summary(scope, newest);
        }
    }
    Ok(present::json(
        StatusCode::OK,
        &json!({"messages": messages}),
    ))
}

/// `POST /v2/queues/{name}/purge`: 204.
pub async fn purge(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let raw = body::read(
        body,
        &headers,
        state.config.limits.max_queue_metadata,
        || ApiError::bad_body("Request body could not be parsed."),
    )
    .await?;
    let (messages, subscriptions) = match raw.non_empty() {
        None => (true, true),
        Some(bytes) => purge_targets(&body::parse_json(bytes)?)?,
    };
    let backend = state.placement.backend(scope).await?;
    backend
        .purge_queue(scope, messages, subscriptions)
        .await
        .map_err(ApiError::storage(failed(
            scope.namespace(),
            "Queue could not be purged.",
            "Topic could not be purged.",
        )))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads `{"resource_types": [...]}` into (messages, subscriptions).
fn purge_targets(document: &Value) -> ApiResult<(bool, bool)> {
    let Some(types) = document
        .as_object()
        .and_then(|map| map.get("resource_types"))
    else {
        return Err(ApiError::invalid(
            "Post body must contain key \"resource_types\".",
        ));
    };
    let invalid =
        || ApiError::invalid("Resource types must be a sub set of {'messages', 'subscriptions'}.");
    let Value::Array(types) = types else {
        return Err(invalid());
    };
    let mut targets = (false, false);
    for kind in types {
        match kind.as_str() {
            Some("messages") => targets.0 = true,
            Some("subscriptions") => targets.1 = true,
            _ => return Err(invalid()),
        }
    }
    Ok(targets)
}

/// `POST /v2/queues/{name}/share`: a pre-signed URL grant (200). The queue
/// need not exist; nothing is created.
pub async fn share(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let raw = body::read(
        body,
        &headers,
        state.config.limits.max_queue_metadata,
        || ApiError::bad_body("Request body could not be parsed."),
    )
    .await?;
    let bytes = raw.required()?;
    let Value::Object(document) = body::parse_json(bytes)? else {
        return Err(body::unsupported_document());
    };
    let grant = crate::signed::issue(
        state.config.signed_url_secret_key.as_deref(),
        &present::resource_path(scope),
        &context.project,
        &document,
    )?;
    let reply = json!({
        "paths": grant.paths,
        "methods": grant.methods,
        "project": context.project,
        "expires": grant.expires,
        "signature": grant.signature,
    });
    Ok(present::json(StatusCode::OK, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_bodies_follow_zaqar() {
        assert_eq!(
            purge_targets(&json!({"resource_types": []})).unwrap(),
            (false, false)
        );
        assert_eq!(
            purge_targets(&json!({"resource_types": ["messages"]})).unwrap(),
            (true, false)
        );
        assert!(purge_targets(&json!({"wrong_key": ["messages"]})).is_err());
        assert!(purge_targets(&json!({"resource_types": ["wrong_value"]})).is_err());
        assert!(purge_targets(&json!({"resource_types": "messages"})).is_err());
        assert!(purge_targets(&json!([])).is_err());
    }

    #[test]
    fn filters_compare_integers_as_integers() {
        assert_eq!(filter_value("31"), json!(31));
        assert_eq!(filter_value("abc"), json!("abc"));
    }
}
