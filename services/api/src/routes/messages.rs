//! Messages: post, list, get by id(s), delete one or many, pop (contract §2.3).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use zaqar_proto::model::{ClaimRef, ListQuery, PostBatch, PostLimits, Scope};

use crate::body::{self, RawBody};
use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::present::{self, MessageList, MessageView, PoppedView, links};
use crate::query::{LimitWording, LinkParams, QueryParams, limit_error, page_limit};
use crate::routes::queues::parse_metadata;
use crate::state::AppState;

mod document;

use document::parse_messages;

/// The answer to a POST: the new messages' hrefs.
#[derive(Serialize)]
struct Created {
    resources: Vec<String>,
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
        &MessageList {
            links: Some(links(next)),
            messages: views,
        },
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
    Ok(present::json(
        StatusCode::OK,
        &MessageList {
            links: None,
            messages: views,
        },
    ))
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
    Ok(present::json(
        StatusCode::OK,
        &MessageList {
            links: None,
            messages: views,
        },
    ))
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
