//! Claims: create, get, renew, release (contract §2.4).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use zaqar_proto::model::ClaimSpec;

use crate::body::{self, RawBody};
use crate::config::Limits;
use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::present::{self, MessageList, MessageView};
use crate::query::{LimitWording, QueryParams, page_limit};
use crate::state::AppState;

/// Smallest claim TTL and grace.
const MIN_CLAIM: i64 = 60;
/// Largest claim request body we read (claims carry two integers).
const MAX_CLAIM_BODY: u64 = 64 * 1024;

fn too_large() -> ApiError {
    ApiError::bad_body("Request body could not be parsed.")
}

/// Reads `ttl` and `grace` from a claim body (defaults when absent).
fn ttl_and_grace(document: Option<&Value>, limits: &Limits) -> ApiResult<(i64, i64)> {
    let Some(document) = document else {
        return Ok((limits.default_claim_ttl, limits.default_claim_grace));
    };
    let Value::Object(fields) = document else {
        return Err(body::unsupported_document());
    };
    let int = |field: &str, default: i64| -> ApiResult<i64> {
        match fields.get(field) {
            None => Ok(default),
            Some(value) => body::json_int(value).ok_or_else(|| body::wrong_type(field, "int")),
        }
    };
    Ok((
        int("ttl", limits.default_claim_ttl)?,
        int("grace", limits.default_claim_grace)?,
    ))
}

fn check_ttl(ttl: i64, limits: &Limits) -> ApiResult<()> {
    if !(MIN_CLAIM..=limits.max_claim_ttl).contains(&ttl) {
        return Err(ApiError::invalid(format!(
            "The TTL for a claim may not exceed {} seconds, and must be at least {MIN_CLAIM} \
             seconds long.",
            limits.max_claim_ttl
        )));
    }
    Ok(())
}

/// `POST .../claims[?limit=N]`: 201 with the claimed messages, or 204.
pub async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let limits = &state.config.limits;
    let limit = QueryParams::parse(raw.as_deref()).int("limit")?;
    let raw = body::read(body, &headers, MAX_CLAIM_BODY, too_large).await?;
    let document = match raw.non_empty() {
        Some(bytes) => Some(body::parse_json(bytes)?),
        None => None,
    };
    let (ttl, grace) = ttl_and_grace(document.as_ref(), limits)?;
    check_ttl(ttl, limits)?;
    let max = limits.max_messages_per_claim_or_pop;
    let page = page_limit(limit, max, LimitWording::MayNot)?;
    if !(MIN_CLAIM..=limits.max_claim_grace).contains(&grace) {
        return Err(ApiError::invalid(format!(
            "The grace for a claim may not exceed {} seconds, and must be at least {MIN_CLAIM} \
             seconds long.",
            limits.max_claim_grace
        )));
    }
    let spec = ClaimSpec {
        ttl,
        grace,
        limit: page,
    };
    let backend = state.placement.backend(scope).await?;
    let claim = state
        .claims
        .call(&backend, scope, spec)
        .await
        .map_err(ApiError::storage("Claim could not be created."))?;
    let Some(claim) = claim else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let views: Vec<MessageView> = claim
        .messages
        .iter()
        .map(|m| MessageView::new(scope, m))
        .collect();
    let response = present::json(
        StatusCode::CREATED,
        &MessageList {
            links: None,
            messages: views,
        },
    );
    let location = format!("{}/claims/{}", present::resource_path(scope), claim.id);
    Ok(present::with_location(response, &location))
}

/// A claim as `GET .../claims/{claim_id}` shows it (fields in name order,
/// as a `serde_json::Value` object writes them).
#[derive(Serialize)]
struct ClaimView<'a> {
    age: i64,
    href: String,
    messages: Vec<MessageView<'a>>,
    ttl: i64,
}

fn claim_not_found(context: &RequestContext, id: &str) -> ApiResult<ApiError> {
    let scope = context.scope()?;
    Ok(ApiError::NotFound(format!(
        "Claim {id} does not exist in queue {} for project {}",
        scope.name(),
        scope.project()
    )))
}

/// `GET .../claims/{claim_id}`.
pub async fn get(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<Response> {
    let scope = context.scope()?;
    let id = params.get("claim_id");
    let backend = state.placement.backend(scope).await?;
    let claim = match backend.get_claim(scope, id).await {
        Ok(claim) => claim,
        Err(error) if error.kind() == zaqar_proto::ErrorKind::NotFound => {
            return Err(claim_not_found(&context, id)?);
        }
        Err(error) => return Err(ApiError::from_storage(error, "Claim could not be queried.")),
    };
    let views: Vec<MessageView> = claim
        .messages
        .iter()
        .map(|m| MessageView::new(scope, m))
        .collect();
    let body = ClaimView {
        age: claim.age.max(0),
        href: format!("{}/claims/{}", present::resource_path(scope), claim.id),
        messages: views,
        ttl: claim.ttl,
    };
    Ok(present::json(StatusCode::OK, &body))
}

/// `PATCH .../claims/{claim_id}`: renew (204).
pub async fn update(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let id = params.get("claim_id");
    let limits = &state.config.limits;
    let raw = body::read(body, &headers, MAX_CLAIM_BODY, too_large).await?;
    let bytes = match &raw {
        RawBody::Absent => return Err(ApiError::bad_body("Request body can not be empty")),
        RawBody::Present(bytes) => bytes,
    };
    let document = body::parse_json(bytes)?;
    let (ttl, grace) = ttl_and_grace(Some(&document), limits)?;
    check_ttl(ttl, limits)?;
    let backend = state.placement.backend(scope).await?;
    match backend.renew_claim(scope, id, ttl, grace).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) if error.kind() == zaqar_proto::ErrorKind::NotFound => {
            Err(claim_not_found(&context, id)?)
        }
        Err(error) => Err(ApiError::from_storage(error, "Claim could not be updated.")),
    }
}

/// `DELETE .../claims/{claim_id}`: release (always 204).
pub async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<StatusCode> {
    let scope = context.scope()?;
    let backend = state.placement.backend(scope).await?;
    backend
        .release_claim(scope, params.get("claim_id"))
        .await
        .map_err(ApiError::storage("Claim could not be deleted."))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_bodies_follow_zaqar() {
        let limits = Limits::default();
        assert_eq!(ttl_and_grace(None, &limits).unwrap(), (300, 60));
        assert_eq!(ttl_and_grace(Some(&json!({})), &limits).unwrap(), (300, 60));
        assert_eq!(
            ttl_and_grace(Some(&json!({"ttl": 100, "grace": 70, "x": 1})), &limits).unwrap(),
            (100, 70)
        );
        assert!(ttl_and_grace(Some(&json!([])), &limits).is_err());
        assert!(ttl_and_grace(Some(&json!({"ttl": null})), &limits).is_err());
        assert!(ttl_and_grace(Some(&json!({"ttl": "60"})), &limits).is_err());
        assert!(check_ttl(59, &limits).is_err());
        assert!(check_ttl(43_201, &limits).is_err());
        assert!(check_ttl(60, &limits).is_ok());
    }
}
