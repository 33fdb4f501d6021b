//! Subscriptions: create, list, get, update, delete, confirm (contract §2.5).
//! Notifications are delivered by the queue's pool; this tier only asks for
//! confirmations when they are required ([`crate::notices`]).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use zaqar_proto::ErrorKind;
use zaqar_proto::model::{NewSubscription, Scope, Subscription, SubscriptionUpdate};
use zaqar_storage::Backend;

use crate::body::{self, RawBody};
use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::metadata::{truthy, validate_retry_policy};
use crate::notices;
use crate::present::{self, links};
use crate::query::{LimitWording, LinkParams, QueryParams, page_limit};
use crate::routes::queues::parse_metadata;
use crate::state::AppState;

/// Subscriber URI schemes accepted (`subscriber_types`).
pub const SUBSCRIBER_TYPES: [&str; 5] = ["http", "https", "mailto", "trust+http", "trust+https"];
/// Smallest subscription TTL.
const MIN_SUBSCRIPTION_TTL: i64 = 60;
/// Largest subscription request body read.
const MAX_SUBSCRIPTION_BODY: u64 = 64 * 1024;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59.
const LAST_REPRESENTABLE: i64 = 253_402_300_799;

async fn read_document(headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let raw = body::read(body, headers, MAX_SUBSCRIPTION_BODY, || {
        ApiError::bad_body("Request body could not be parsed.")
    })
    .await?;
    match raw {
        RawBody::Absent => Ok(Value::Object(Map::new())),
        RawBody::Present(bytes) if bytes.is_empty() => Ok(Value::Object(Map::new())),
        RawBody::Present(bytes) => body::parse_json(&bytes),
    }
}

fn scheme(uri: &str) -> String {
    match uri.split_once(':') {
        Some((scheme, _))
            if scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            scheme.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// Checks the fields of a create or update document (Zaqar's order).
fn check_fields(document: &Map<String, Value>) -> ApiResult<()> {
    if let Some(subscriber) = document.get("subscriber").filter(|v| truthy(v)) {
        let kind = subscriber.as_str().map(scheme).unwrap_or_default();
        if !SUBSCRIBER_TYPES.contains(&kind.as_str()) {
            return Err(ApiError::invalid(
                "The subscriber type of subscription must be supported in the list ['http', \
                 'https', 'mailto', 'trust+http', 'trust+https'].",
            ));
        }
    }
    if let Some(options) = document.get("options")
        && !options.is_object()
    {
        return Err(ApiError::invalid("Options must be a dict."));
    }
    if let Some(Value::Object(options)) = document.get("options") {
        validate_retry_policy(options.get("_retry_policy"), "Invalid API request")?;
    }
    if let Some(ttl) = document.get("ttl") {
        let Some(ttl) = ttl.as_i64().filter(|_| !ttl.is_boolean()) else {
            return Err(ApiError::invalid("TTL must be an integer."));
        };
        if ttl < MIN_SUBSCRIPTION_TTL {
            return Err(ApiError::invalid(format!(
                "The TTL for a subscription must be at least {MIN_SUBSCRIPTION_TTL} seconds long."
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or_default();
        if ttl > LAST_REPRESENTABLE - now {
            return Err(ApiError::invalid(
                "The TTL seconds for a subscription plus current time must be less than \
                 9999-12-31 23:59:59.999999.",
            ));
        }
    }
    Ok(())
}

fn collection_path(context: &RequestContext) -> ApiResult<String> {
    Ok(format!(
        "{}/subscriptions",
        present::resource_path(context.scope()?)
    ))
}

/// `POST .../subscriptions`: 201 with the (new or unconfirmed) id.
pub async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let backend = state.placement.backend_for_create(scope, None).await?;
    let failed = "Subscription could not be created.";
    // Zaqar creates the queue before it validates the subscription.
    backend
        .create_queue(scope, "{}")
        .await
        .map_err(ApiError::storage(failed))?;
    let document = read_document(&headers, body).await?;
    let Value::Object(document) = document else {
        return Err(ApiError::invalid("Missing parameter subscriber in body."));
    };
    let subscriber = match document.get("subscriber") {
        None => return Err(ApiError::invalid("Missing parameter subscriber in body.")),
        Some(Value::String(subscriber)) if !subscriber.is_empty() => subscriber.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "The subscriber type of subscription must be supported in the list ['http', \
                 'https', 'mailto', 'trust+http', 'trust+https'].",
            ));
        }
    };
    check_fields(&document)?;
    let ttl = match document.get("ttl") {
        Some(ttl) => ttl
            .as_i64()
            .unwrap_or(state.config.limits.default_subscription_ttl),
        None => state.config.limits.default_subscription_ttl,
    };
    let options = document
        .get("options")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
        .to_string();
    let location = collection_path(&context)?;
    let created = backend
        .create_subscription(
            scope,
            NewSubscription {
                subscriber: subscriber.clone(),
                ttl,
                options,
            },
        )
        .await;
    match created {
        Ok((id, _)) => {
            // New, or re-posted while unconfirmed: (re)send the request.
            let request = notices::Request::Subscribe;
            if let Some(notice) =
                notices::confirmation(&state.config, scope, &id, &subscriber, ttl, request)
                && let Err(error) = backend.enqueue_notice(scope, &id, notice).await
            {
                tracing::warn!(%error, "cannot queue a confirmation request");
            }
            let response = present::json(StatusCode::CREATED, &json!({"subscription_id": id}));
            Ok(present::with_location(response, &location))
        }
        Err(error) if error.kind() == ErrorKind::Conflict => Ok(present::with_location(
            ApiError::Conflict(
                "Such subscription already exists.Subscriptions are unique by project + queue + \
                 subscriber URI."
                    .into(),
            )
            .into_response(),
            &location,
        )),
        Err(error) => Err(ApiError::from_storage(error, failed)),
    }
}

fn view(subscription: &Subscription) -> Value {
    json!({
        "id": subscription.id,
        "source": subscription.source,
        "subscriber": subscription.subscriber,
        "ttl": subscription.ttl,
        "age": subscription.age.max(0),
        "options": Value::Object(parse_metadata(&subscription.options)),
        "confirmed": subscription.confirmed,
    })
}

/// `GET .../subscriptions`: a page in id order.
pub async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let query = QueryParams::parse(raw.as_deref());
    let marker = query.get("marker");
    let limit = query.int("limit")?;
    let max = state.config.limits.max_subscriptions_per_page;
    let page = page_limit(limit, max, LimitWording::MayNot)?;
    let backend = state.placement.backend(scope).await?;
    let subscriptions = backend
        .list_subscriptions(scope, marker.as_deref(), page)
        .await
        .map_err(ApiError::storage("Subscriptions could not be listed."))?;
    let params = LinkParams::new()
        .with("marker", marker.as_ref())
        .with("limit", limit);
    let path = format!("{}/subscriptions", present::resource_path(scope));
    let next = subscriptions
        .last()
        .map(|last| params.link(&path, &last.id));
    let views: Vec<Value> = subscriptions.iter().map(view).collect();
    Ok(present::json(
        StatusCode::OK,
        &json!({"subscriptions": views, "links": links(next)}),
    ))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Subscription {id} does not exist"))
}

/// `GET .../subscriptions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let id = params.get("subscription_id");
    let backend = state.placement.backend(scope).await?;
    match backend.get_subscription(scope, id).await {
        Ok(subscription) => Ok(present::json(StatusCode::OK, &view(&subscription))),
        Err(error) if error.kind() == ErrorKind::NotFound => Err(not_found(id)),
        Err(error) => Err(ApiError::from_storage(
            error,
            "Subscription could not be retrieved.",
        )),
    }
}

/// `PATCH .../subscriptions/{id}`: 204.
pub async fn update(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let id = params.get("subscription_id");
    let document = read_document(&headers, body).await?;
    if !truthy(&document) {
        return Err(ApiError::invalid("No subscription to create."));
    }
    let Value::Object(document) = document else {
        return Err(ApiError::invalid("Subscriptions must be a dict."));
    };
    check_fields(&document)?;
    let update = SubscriptionUpdate {
        subscriber: document
            .get("subscriber")
            .and_then(Value::as_str)
            .filter(|subscriber| !subscriber.is_empty())
            .map(str::to_string),
        ttl: document.get("ttl").and_then(Value::as_i64),
        options: document
            .get("options")
            .filter(|options| options.is_object())
            .map(Value::to_string),
    };
    let unable = || ApiError::BadRequest {
        title: "Unable to update subscription",
        description: format!("Subscription {id} could not be updated."),
    };
    if update.subscriber.is_none() && update.ttl.is_none() && update.options.is_none() {
        return Err(unable());
    }
    let backend = state.placement.backend(scope).await?;
    match backend.update_subscription(scope, id, update).await {
        Ok(()) => Ok(present::with_location(
            StatusCode::NO_CONTENT.into_response(),
            uri.path(),
        )),
        Err(error) if error.kind() == ErrorKind::NotFound => Err(not_found(id)),
        Err(error) if error.kind() == ErrorKind::Conflict => Err(ApiError::Conflict(
            "Such subscription already exists. Subscriptions are unique by project + queue + \
             subscriber URI."
                .into(),
        )),
        Err(error) if error.kind() == ErrorKind::Unavailable => Err(ApiError::from_storage(
            error,
            "Subscription could not be updated.",
        )),
        Err(_) => Err(unable()),
    }
}

/// `DELETE .../subscriptions/{id}`: always 204.
pub async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let backend = state.placement.backend(scope).await?;
    backend
        .delete_subscription(scope, params.get("subscription_id"))
        .await
        .map_err(ApiError::storage("Subscription could not be deleted."))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the unsubscribe request with a fresh signature (contract §6.5).
async fn unsubscribed(state: &AppState, backend: &dyn Backend, scope: &Scope, id: &str) {
    let subscriber = match backend.get_subscription(scope, id).await {
        Ok(subscription) => subscription.subscriber,
        Err(_) => return,
    };
    let ttl = state.config.notification.default_subscription_ttl;
    let request = notices::Request::Unsubscribe;
    if let Some(notice) = notices::confirmation(&state.config, scope, id, &subscriber, ttl, request)
        && let Err(error) = backend.enqueue_notice(scope, id, notice).await
    {
        tracing::warn!(%error, "cannot queue an unsubscribe request");
    }
}

/// `PUT .../subscriptions/{id}/confirm`: 204.
pub async fn confirm(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let id = params.get("subscription_id");
    let document = read_document(&headers, body).await?;
    let Some(confirmed) = document.get("confirmed").and_then(Value::as_bool) else {
        return Err(ApiError::invalid("The 'confirmed' should be boolean."));
    };
    let backend = state.placement.backend(scope).await?;
    match backend.confirm_subscription(scope, id, confirmed).await {
        Ok(()) => {
            if !confirmed && state.config.notification.require_confirmation {
                unsubscribed(&state, &*backend, scope, id).await;
            }
            Ok(present::with_location(
                StatusCode::NO_CONTENT.into_response(),
                uri.path(),
            ))
        }
        Err(error) if error.kind() == ErrorKind::NotFound => Err(not_found(id)),
        Err(error) if error.kind() == ErrorKind::Unavailable => Err(ApiError::from_storage(
            error,
            "Subscription could not be confirmed.",
        )),
        Err(_) => Err(ApiError::BadRequest {
            title: "Unable to confirm subscription",
            description: format!("Subscription {id} could not be confirmed."),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Value) -> ApiResult<()> {
        check_fields(value.as_object().unwrap())
    }

    #[test]
    fn subscription_fields_follow_zaqar() {
        assert!(check(json!({"subscriber": "http://example.com", "ttl": 100})).is_ok());
        assert!(check(json!({"subscriber": "mailto:a@example.com", "options": {}})).is_ok());
        for bad in [
            json!({"subscriber": "fake"}),
            json!({"subscriber": "email://fake"}),
            json!({"subscriber": "http://x", "options": 1}),
            json!({"subscriber": "http://x", "options": []}),
            json!({"subscriber": "http://x", "ttl": "invalid"}),
            json!({"subscriber": "http://x", "ttl": 0}),
            json!({"subscriber": "http://x", "ttl": 99_999_999_999_999_999i64}),
        ] {
            assert!(check(bad.clone()).is_err(), "{bad}");
        }
    }
}
