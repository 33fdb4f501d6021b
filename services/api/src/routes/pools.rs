//! Pools (admin): list, create or replace, get, update, delete
//! (contract §2.7). Only in pooled deployments with `admin_mode`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use zaqar_catalog::{CatalogError, Pool};
use zaqar_storage::backends::SUPPORTED_SCHEMES;

use crate::body;
use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::forward::catalog::CatalogPlacement;
use crate::present::{self, links};
use crate::query::{LimitWording, LinkParams, QueryParams, page_limit};
use crate::state::AppState;

/// Longest pool URI and flavor name.
const MAX_FIELD: usize = 255;
/// Largest pool or flavor request body.
const MAX_BODY: u64 = 64 * 1024;

/// The catalog of a pooled deployment (the routes exist only then).
pub fn pooling(state: &AppState) -> ApiResult<Arc<CatalogPlacement>> {
    state.pooling.clone().ok_or(ApiError::NoRoute)
}

/// 403 unless the caller is an admin.
pub fn require_admin(context: &RequestContext) -> ApiResult<()> {
    if context.identity.is_admin() {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        title: "Not authorized",
        description: "You are not authorized to complete this action.".into(),
    })
}

/// Maps a catalog failure to 503.
pub fn catalog_failed(failed: &'static str) -> impl FnOnce(CatalogError) -> ApiError {
    move |error| {
        tracing::warn!(%error, "catalog operation failed");
        ApiError::Unavailable(format!("{failed} Please try again in a few seconds."))
    }
}

/// Reads a management body: parse errors are `JSON could not be parsed.`
pub async fn read_object(headers: &HeaderMap, body: Body) -> ApiResult<Map<String, Value>> {
    let unparsable = || ApiError::bad_body("JSON could not be parsed.");
    let raw = body::read(body, headers, MAX_BODY, unparsable).await?;
    let bytes = raw.non_empty().ok_or_else(unparsable)?;
    match body::parse_json(bytes).map_err(|_| unparsable())? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_body("JSON could not be parsed.")),
    }
}

/// Refuses keys outside `allowed` (the management schemas allow no others).
pub fn reject_unknown_keys(document: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    match document.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(extra) => Err(ApiError::bad_body(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        ))),
        None => Ok(()),
    }
}

fn view(pool: &Pool, detailed: bool) -> Value {
    let mut item = json!({
        "name": pool.name,
        "uri": pool.uri,
        "weight": pool.weight,
        "flavor": pool.flavor,
        "href": format!("/v2/pools/{}", pool.name),
    });
    if detailed {
        item["options"] = if pool.options.is_object() {
            pool.options.clone()
        } else {
            json!({})
        };
    }
    item
}

fn check_uri(value: &Value, placement: &CatalogPlacement) -> ApiResult<String> {
    let Some(uri) = value.as_str() else {
        return Err(ApiError::bad_body(format!(
            "{value} is not of type 'string'"
        )));
    };
    if uri.len() > MAX_FIELD {
        return Err(ApiError::bad_body(format!("'{uri}' is too long")));
    }
    let scheme_ok = uri
        .split_once("://")
        .is_some_and(|(scheme, rest)| SUPPORTED_SCHEMES.contains(&scheme) && !rest.is_empty());
    let servable = if placement.serves_locally() {
        scheme_ok && placement.pool_backend(&probe(uri)).is_ok()
    } else {
        scheme_ok || !placement.view().nodes_for(uri).is_empty()
    };
    if !servable {
        return Err(ApiError::bad_body(format!("cannot connect to {uri}")));
    }
    Ok(uri.to_string())
}

/// A throwaway pool record for checking that a URI can be opened.
fn probe(uri: &str) -> Pool {
    Pool {
        name: String::new(),
        uri: uri.to_string(),
        weight: 0,
        flavor: None,
        options: json!({}),
    }
}

fn check_weight(value: &Value) -> ApiResult<u64> {
    value
        .as_u64()
        .filter(|weight| *weight <= u64::from(u32::MAX))
        .ok_or_else(|| ApiError::bad_body(format!("{value} is not a valid weight (0..4294967295)")))
}

fn check_flavor(value: &Value) -> ApiResult<Option<String>> {
    match value.as_str() {
        Some("") => Ok(None),
        Some(flavor) if flavor.len() <= MAX_FIELD => Ok(Some(flavor.to_string())),
        Some(flavor) => Err(ApiError::bad_body(format!("'{flavor}' is too long"))),
        None => Err(ApiError::bad_body(format!(
            "{value} is not of type 'string'"
        ))),
    }
}

fn check_options(value: &Value) -> ApiResult<Value> {
    if value.is_object() {
        Ok(value.clone())
    } else {
        Err(ApiError::bad_body(format!(
            "{value} is not of type 'object'"
        )))
    }
}

async fn uri_in_use(placement: &CatalogPlacement, name: &str, uri: &str) -> ApiResult<()> {
    let pools = placement
        .view()
        .catalog()
        .all_pools()
        .await
        .map_err(catalog_failed("Pool could not be created."))?;
    if pools
        .iter()
        .any(|pool| pool.uri == uri && pool.name != name)
    {
        return Err(ApiError::Conflict(
            "The database URI is in use by another pool.".into(),
        ));
    }
    Ok(())
}

/// `GET /v2/pools`.
pub async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
    uri: Uri,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let query = QueryParams::parse(raw.as_deref());
    let marker = query.get("marker");
    let limit = query.int("limit")?;
    let detailed = query.bool("detailed")?;
    let max = state.config.limits.max_pools_per_page;
    let page = page_limit(limit, max, LimitWording::NoGreater)?;
    let pools = placement
        .view()
        .catalog()
        .pools(marker.as_deref(), page as usize)
        .await
        .map_err(catalog_failed("Pools could not be listed."))?;
    let params = LinkParams::new()
        .with("marker", marker.as_ref())
        .with("limit", limit)
        .with("detailed", detailed);
    let next = pools
        .last()
        .map(|last| params.link("/v2/pools", &last.name));
    let items: Vec<Value> = pools
        .iter()
        .map(|pool| view(pool, detailed == Some(true)))
        .collect();
    let mut response = present::json(
        StatusCode::OK,
        &json!({"pools": items, "links": links(next)}),
    );
    let location = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/v2/pools");
    if let Ok(value) = HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, value);
    }
    Ok(response)
}

/// `PUT /v2/pools/{pool}`: create or replace (201).
pub async fn put(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let name = params.get("pool").to_string();
    let document = read_object(&headers, body).await?;
    reject_unknown_keys(&document, &["uri", "weight", "flavor", "options"])?;
    let uri = match document.get("uri") {
        Some(uri) => uri,
        None => return Err(ApiError::bad_body("'uri' is a required property")),
    };
    let weight = match document.get("weight") {
        Some(weight) => check_weight(weight)?,
        None => return Err(ApiError::bad_body("'weight' is a required property")),
    };
    let flavor = document
        .get("flavor")
        .map(check_flavor)
        .transpose()?
        .flatten();
    let options = document
        .get("options")
        .map(check_options)
        .transpose()?
        .unwrap_or_else(|| json!({}));
    let uri = check_uri(uri, &placement)?;
    uri_in_use(&placement, &name, &uri).await?;
    let pool = Pool {
        name: name.clone(),
        uri,
        weight,
        flavor,
        options,
    };
    placement
        .view()
        .catalog()
        .put_pool(&pool)
        .await
        .map_err(catalog_failed("Pool could not be created."))?;
    Ok(present::with_location(
        StatusCode::CREATED.into_response(),
        &format!("/v2/pools/{name}"),
    ))
}

async fn load(placement: &CatalogPlacement, name: &str) -> ApiResult<Pool> {
    placement
        .view()
        .catalog()
        .pool(name)
        .await
        .map_err(catalog_failed("Pool could not be read."))?
        .ok_or_else(|| ApiError::NotFound(format!("Pool {name} does not exist")))
}

/// `GET /v2/pools/{pool}`.
pub async fn get(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let detailed = QueryParams::parse(raw.as_deref()).bool("detailed")?;
    let pool = load(&placement, params.get("pool")).await?;
    Ok(present::json(
        StatusCode::OK,
        &view(&pool, detailed == Some(true)),
    ))
}

/// `PATCH /v2/pools/{pool}`: update the given fields (200).
pub async fn update(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let document = read_object(&headers, body).await?;
    if !["uri", "weight", "flavor", "options"]
        .iter()
        .any(|key| document.contains_key(*key))
    {
        return Err(ApiError::bad_body(
            "One of `uri`, `weight`, `flavor`, or `options` needs to be specified",
        ));
    }
    let mut pool = load(&placement, params.get("pool")).await?;
    if let Some(weight) = document.get("weight") {
        pool.weight = check_weight(weight)?;
    }
    if let Some(flavor) = document.get("flavor") {
        pool.flavor = check_flavor(flavor)?;
    }
    if let Some(options) = document.get("options") {
        pool.options = check_options(options)?;
    }
    if let Some(uri) = document.get("uri") {
        pool.uri = check_uri(uri, &placement)?;
        uri_in_use(&placement, &pool.name, &pool.uri).await?;
    }
    placement
        .view()
        .catalog()
        .put_pool(&pool)
        .await
        .map_err(catalog_failed("Pool could not be updated."))?;
    Ok(present::json(StatusCode::OK, &view(&pool, false)))
}

/// `DELETE /v2/pools/{pool}`: 204, unless it is its flavor's last pool (403).
pub async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<StatusCode> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let name = params.get("pool");
    let catalog = placement.view().catalog();
    let Some(pool) = catalog
        .pool(name)
        .await
        .map_err(catalog_failed("Pool could not be deleted."))?
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    if let Some(flavor) = &pool.flavor {
        let pools = catalog
            .all_pools()
            .await
            .map_err(catalog_failed("Pool could not be deleted."))?;
        let tagged = pools
            .iter()
            .filter(|other| other.flavor.as_ref() == Some(flavor))
            .count();
        if tagged <= 1 {
            return Err(ApiError::Forbidden {
                title: "Unable to delete",
                description: format!(
                    "This pool is used by flavors {flavor}; It cannot be deleted."
                ),
            });
        }
    }
    catalog
        .delete_pool(name)
        .await
        .map_err(catalog_failed("Pool could not be deleted."))?;
    Ok(StatusCode::NO_CONTENT)
}
