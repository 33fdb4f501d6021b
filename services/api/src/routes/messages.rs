//! Messages: post, list, get by id(s), delete one or many, pop (contract §2.3).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use zaqar_proto::model::{ClaimRef, ListQuery, NewMessage, PostBatch, PostLimits, Scope};

use crate::body::{self, RawBody};
use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::metadata::MIN_MESSAGE_TTL;
use crate::present::{self, MessageView, PoppedView, links};
use crate::query::{LimitWording, LinkParams, QueryParams, limit_error, page_limit, parse_int};
use crate::routes::queues::parse_metadata;
use crate::state::AppState;

/// The top level of a message POST; other keys are ignored.
#[derive(Deserialize)]
struct PostDocument<'a> {
    #[serde(borrow, default, deserialize_with = "present_raw")]
    messages: Option<&'a RawValue>,
}

/// The answer to a POST: the new messages' hrefs.
#[derive(Serialize)]
struct Created {
    resources: Vec<String>,
}

/// One message of a POST; other keys are ignored.
#[derive(Deserialize)]
struct MessageDocument<'a> {
    #[serde(borrow, default, deserialize_with = "present_raw")]
    body: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    ttl: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    delay: Option<&'a RawValue>,
}

/// Keeps a present member (JSON `null` included) as `Some`.
fn present_raw<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue as Deserialize>::deserialize(deserializer).map(Some)
}

/// Reads an integer field the way Zaqar does (booleans are 0/1).
fn int_field(raw: &RawValue, field: &str) -> ApiResult<i64> {
    match raw.get().trim() {
        "true" => Ok(1),
        "false" => Ok(0),
        text if !text.contains(['.', 'e', 'E']) => {
            parse_int(text).ok_or_else(|| body::wrong_type(field, "int"))
        }
        _ => Err(body::wrong_type(field, "int")),
    }
}

fn first_char(raw: &RawValue) -> Option<u8> {
    raw.get().trim_start().bytes().next()
}

/// Parses and checks a POST body (steps 3–7 of contract §2.3.1).
fn parse_messages(bytes: &[u8], limits: &crate::config::Limits) -> ApiResult<Vec<NewMessage>> {
    let text = std::str::from_utf8(bytes).map_err(|_| body::unparsable())?;
    let no_messages = || ApiError::invalid("No messages were found in the request body.");
    // An object that parses as a document is valid JSON: one pass instead of
    // validating first. Anything else takes the checks in their order.
    let fast = match text.trim_start().as_bytes().first() {
        Some(b'{') => serde_json::from_str::<PostDocument>(text).ok(),
        _ => None,
    };
    let document = match fast {
        Some(document) => {
            body::check_integers(text)?;
            document
        }
        None => {
            let top: &RawValue = serde_json::from_str(text).map_err(|_| body::unparsable())?;
            body::check_top_level(text)?;
            body::check_integers(text)?;
            if first_char(top) != Some(b'{') {
                return Err(no_messages());
            }
            serde_json::from_str(top.get()).map_err(|_| body::unparsable())?
        }
    };
    let messages = document.messages.ok_or_else(no_messages)?;
    if first_char(messages) != Some(b'[') {
        return Err(body::unsupported_document());
    }
    let elements: Vec<&RawValue> =
        serde_json::from_str(messages.get()).map_err(|_| body::unparsable())?;
    let mut parsed = Vec::with_capacity(elements.len());
    for element in elements {
        if first_char(element) != Some(b'{') {
            return Err(body::unsupported_document());
        }
        let message: MessageDocument =
            serde_json::from_str(element.get()).map_err(|_| body::unparsable())?;
        let body = message
            .body
            .ok_or_else(|| ApiError::bad_body("Missing \"body\" field."))?;
        let ttl = message.ttl.map(|raw| int_field(raw, "ttl")).transpose()?;
        let delay = message
            .delay
            .map(|raw| int_field(raw, "delay"))
            .transpose()?;
        parsed.push(NewMessage {
            body: body.get().to_string(),
            ttl,
            delay,
        });
    }
    if parsed.is_empty() {
        return Err(ApiError::invalid("No messages to enqueu."));
    }
    for message in &parsed {
        if let Some(ttl) = message.ttl
            && !(MIN_MESSAGE_TTL..=limits.max_message_ttl).contains(&ttl)
        {
            return Err(ApiError::invalid(format!(
                "The TTL for a message may not exceed {} seconds, and must be at least {} seconds long.",
                limits.max_message_ttl, MIN_MESSAGE_TTL
            )));
        }
    }
    Ok(parsed)
}

/// `POST .../messages`: 201 with the new messages' hrefs.
pub async fn post(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let limits = &state.config.limits;
    let backend = state.placement.backend_for_create(scope, None).await?;
    let enqueue_failed = ApiError::storage("Messages could not be enqueued.");
    let global_limit = limits.max_messages_post_size;
    let raw = body::read(body, &headers, global_limit, || {
        ApiError::invalid(format!(
            "Message collection size is too large. Max size {global_limit}"
        ))
    })
    .await;
    let parsed = match &raw {
        Ok(RawBody::Present(bytes)) => parse_messages(bytes, limits),
        Ok(RawBody::Absent) => Err(ApiError::bad_body("Request body can not be empty")),
        Err(error) => Err(error.clone()),
    };
    let messages = match parsed {
        Ok(messages) => messages,
        Err(error) => {
            // Zaqar creates the queue before it looks at the body, and checks
            // the queue's own size limit before parsing.
            backend
                .create_queue(scope, "{}")
                .await
                .map_err(ApiError::storage("Messages could not be enqueued."))?;
            if let Ok(raw) = &raw {
                let record = backend
                    .get_queue(scope)
                    .await
                    .map_err(ApiError::storage("Messages could not be enqueued."))?;
                let queue_limit = record
                    .map(|record| parse_metadata(&record.metadata))
                    .and_then(|metadata| {
                        metadata
                            .get("_max_messages_post_size")
                            .and_then(body::json_int)
                    })
                    .filter(|limit| *limit > 0);
                if let Some(queue_limit) = queue_limit {
                    let effective = queue_limit.min(global_limit as i64);
                    if raw.len() as i64 > effective {
                        return Err(ApiError::invalid(format!(
                            "Message collection size is too large. The max size for current queue is \
                             {effective}. It is calculated by max size = min(max_messages_post_size_config: \
                             {global_limit}, max_messages_post_size_queue: {queue_limit})."
                        )));
                    }
                }
            }
            return Err(error);
        }
    };
    let request_size = raw.map(|raw| raw.len()).unwrap_or_default() as i64;
    let batch = PostBatch {
        client_id: context.client_id.clone(),
        messages,
        request_size,
        limits: PostLimits {
            default_message_ttl: limits.default_message_ttl,
            max_message_delay: limits.max_message_delay,
            max_messages_post_size: global_limit as i64,
        },
        notify: crate::notices::notify_mode(&state.config.notification),
    };
    let ids = state
        .posts
        .call(&backend, scope, batch)
        .await
        .map_err(enqueue_failed)?;
    let base = format!("{}/messages", present::resource_path(scope));
    let resources: Vec<String> = ids.iter().map(|id| format!("{base}/{id}")).collect();
    let response = present::json(StatusCode::CREATED, &Created { resources });
    Ok(present::with_location(
        response,
        &format!("{base}?ids={}", ids.join(",")),
    ))
}

/// `GET .../messages`: a page of messages, or the messages named by `ids`.
pub async fn list_or_get_many(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let query = QueryParams::parse(raw.as_deref());
    let max = state.config.limits.max_messages_per_page;
    if let Some(ids) = query.list("ids") {
        if ids.is_empty() || ids.len() > max as usize {
            return Err(limit_error(max, LimitWording::MayNot));
        }
        return get_many(&state, scope, ids).await;
    }
    let marker = query.get("marker");
    let limit = query.int("limit")?;
    let echo = query.bool("echo")?;
    let include_claimed = query.bool("include_claimed")?;
    let include_delayed = query.bool("include_delayed")?;
    let page = page_limit(limit, max, LimitWording::MayNot)?;
    let list_query = ListQuery {
        marker: marker.clone(),
        limit: page,
        echo: echo.unwrap_or(false),
        client_id: context.client_id.clone(),
        include_claimed: include_claimed.unwrap_or(false),
        include_delayed: include_delayed.unwrap_or(false),
    };
    let backend = state.placement.backend(scope).await?;
    let page = backend
        .list_messages(scope, &list_query)
        .await
        .map_err(ApiError::storage("Messages could not be listed."))?;
    let params = LinkParams::new()
        .with("marker", marker.as_ref())
        .with("limit", limit)
        .with("echo", echo)
        .with("include_claimed", include_claimed)
        .with("include_delayed", include_delayed);
    let path = format!("{}/messages", present::resource_path(scope));
    let next = page
        .next_marker
        .as_ref()
        .filter(|_| !page.messages.is_empty())
        .map(|last| params.link(&path, last));
    let views: Vec<MessageView> = page
        .messages
        .iter()
        .map(|m| MessageView::new(scope, m))
        .collect();
    Ok(present::json(
        StatusCode::OK,
        &json!({"messages": views, "links": links(next)}),
    ))
}

async fn get_many(state: &AppState, scope: &Scope, ids: Vec<String>) -> ApiResult<Response> {
    let not_found = || {
        ApiError::NotFound(format!(
            "No messages with IDs: {} found in the queue {} for project {}.",
            present::python_list(&ids),
            scope.name(),
            scope.project()
        ))
    };
    let backend = state.placement.backend(scope).await?;
    let messages = match backend.get_messages(scope, &ids).await {
        Ok(messages) => messages,
        Err(error) if error.kind() == zaqar_proto::ErrorKind::NotFound => return Err(not_found()),
        Err(error) => {
            return Err(ApiError::from_storage(
                error,
                "Message could not be retrieved.",
            ));
        }
    };
    if messages.is_empty() {
        return Err(not_found());
    }
    let views: Vec<MessageView> = messages
        .iter()
        .map(|m| MessageView::new(scope, m))
        .collect();
    Ok(present::json(StatusCode::OK, &json!({"messages": views})))
}

/// `DELETE .../messages?ids=...` (204) or `?pop=N` (200 with the messages).
pub async fn delete_many_or_pop(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let limits = &state.config.limits;
    let query = QueryParams::parse(raw.as_deref());
    let ids = query.list("ids");
    let claim_ids = if limits.message_delete_with_claim_id {
        query.list("claim_ids")
    } else {
        None
    };
    let pop = query.int("pop")?;
    if pop.is_some() && ids.is_some() {
        return Err(ApiError::invalid(
            "pop and id params cannot be present together in the delete request.",
        ));
    }
    if pop.is_none() && ids.is_none() {
        return Err(ApiError::invalid(
            "The request should have either \"ids\" or \"pop\" parameter in the request, to be \
             able to delete.",
        ));
    }
    if limits.message_delete_with_claim_id {
        let ids_present = ids.as_ref().is_some_and(|ids| !ids.is_empty());
        let claims_present = claim_ids.as_ref().is_some_and(|ids| !ids.is_empty());
        if (ids_present && claim_ids.is_none()) || (ids.is_none() && claims_present) {
            return Err(ApiError::invalid(
                "The request should have both \"ids\" and \"claim_ids\" parameter in the request \
                 when message_delete_with_claim_id is True.",
            ));
        }
    }
    let pop_max = limits.max_messages_per_claim_or_pop;
    if let Some(pop) = pop
        && !(1..=i64::from(pop_max)).contains(&pop)
    {
        return Err(ApiError::invalid(format!(
            "Pop value must be at least 1 and may not be greater than {pop_max}."
        )));
    }
    let delete_max = limits.max_messages_per_page as usize;
    if let Some(ids) = &ids
        && (ids.is_empty() || ids.len() > delete_max)
    {
        return Err(ApiError::invalid(format!(
            "ids parameter should have at least 1 and not greater than {delete_max} values."
        )));
    }
    let backend = state.placement.backend(scope).await?;
    if let Some(ids) = ids {
        backend
            .delete_messages(scope, &ids, claim_ids.as_deref())
            .await
            .map_err(ApiError::storage("Messages could not be deleted."))?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let count = pop.unwrap_or(1) as u32;
    let popped = backend
        .pop_messages(scope, count)
        .await
        .map_err(ApiError::storage("Messages could not be popped."))?;
    let views: Vec<PoppedView> = popped.iter().map(PoppedView::new).collect();
    Ok(present::json(StatusCode::OK, &json!({"messages": views})))
}

/// `GET .../messages/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let id = params.get("message_id");
    let backend = state.placement.backend(scope).await?;
    let message = backend.get_message(scope, id).await.map_err(|error| {
        if error.kind() == zaqar_proto::ErrorKind::NotFound {
            ApiError::NotFound(format!(
                "Message {id} does not exist in queue {} for project {}",
                scope.name(),
                scope.project()
            ))
        } else {
            ApiError::from_storage(error, "Message could not be retrieved.")
        }
    })?;
    Ok(present::json(
        StatusCode::OK,
        &MessageView::new(scope, &message),
    ))
}

/// `DELETE .../messages/{id}[?claim_id=...]`.
pub async fn delete_one(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let id = params.get("message_id");
    let claim = QueryParams::parse(raw.as_deref())
        .get("claim_id")
        .map(|claim| ClaimRef::parse(&claim));
    let backend = state.placement.backend(scope).await?;
    match state
        .deletes
        .call(&backend, scope, (id.to_string(), claim))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) if error.kind() == zaqar_proto::ErrorKind::Invalid => {
            Err(ApiError::BadRequest {
                title: "Unable to delete",
                description: "The specified claim does not exist or has expired.".into(),
            })
        }
        Err(error) => Err(ApiError::from_storage(
            error,
            "Message could not be deleted.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    fn parse(text: &str) -> ApiResult<Vec<NewMessage>> {
        parse_messages(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn bodies_keep_their_raw_text() {
        let parsed = parse(
            r#"{"messages": [{"body": {"b": 1, "a": [1, 2]}, "ttl": 300}, {"body": null}, {"body": "x", "delay": 5}]}"#,
        )
        .unwrap();
        assert_eq!(parsed[0].body, r#"{"b": 1, "a": [1, 2]}"#);
        assert_eq!(parsed[0].ttl, Some(300));
        assert_eq!(parsed[1].body, "null");
        assert_eq!(parsed[1].ttl, None);
        assert_eq!(parsed[2].delay, Some(5));
    }

    #[test]
    fn bad_posts_are_400_with_zaqar_texts() {
        let cases = [
            ("[", "Request body could not be parsed."),
            (".", "Request body could not be parsed."),
            ("123", "Request body could not be parsed."),
            ("[]", "No messages were found in the request body."),
            (
                r#"[{"body": 1}]"#,
                "No messages were found in the request body.",
            ),
            ("{}", "No messages were found in the request body."),
            (r#"{"messages": {}}"#, "Document type not supported."),
            (r#"{"messages": [1]}"#, "Document type not supported."),
            (r#"{"messages": []}"#, "No messages to enqueu."),
            (r#"{"messages": [{"ttl": 60}]}"#, "Missing \"body\" field."),
            (
                r#"{"messages": [{"body": 1, "ttl": 0.05}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": "60"}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": null}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": 59}]}"#,
                "The TTL for a message may not exceed 1209600 seconds",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": -1}]}"#,
                "The TTL for a message may not exceed",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": 1209601}]}"#,
                "The TTL for a message may not exceed",
            ),
            (
                r#"{"messages": [{"body": 99999999999999999999}]}"#,
                "JSON contains integer that is too large.",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.status().as_u16(), 400, "{text}");
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn delay_types_are_checked_but_ranges_are_left_to_storage() {
        assert!(parse(r#"{"messages": [{"body": 1, "delay": 99999}]}"#).is_ok());
        assert!(parse(r#"{"messages": [{"body": 1, "delay": "x"}]}"#).is_err());
    }
}
