//! Flavors: list, create or replace, get, update, delete (contract §2.8).
//! Flavors belong to a project; a flavor's pools are the pools tagged with
//! its name. Only in pooled deployments with `admin_mode`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use zaqar_catalog::{Flavor, Pool};

use crate::context::{PathParams, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::present::{self, links};
use crate::query::{LimitWording, LinkParams, QueryParams, page_limit};
use crate::routes::pools::{
    catalog_failed, pooling, read_object, reject_unknown_keys, require_admin,
};
use crate::state::AppState;

/// What every pool of this service supports (all pools are durable stores
/// with FIFO order and claims).
pub const CAPABILITIES: [&str; 5] = ["FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"];

fn tagged(pools: &[Pool], flavor: &str) -> Vec<String> {
    pools
        .iter()
        .filter(|pool| pool.flavor.as_deref() == Some(flavor))
        .map(|pool| pool.name.clone())
        .collect()
}

fn view(name: &str, pool_list: &[String], full: bool, detailed: bool) -> Value {
    let mut item = json!({"name": name, "href": format!("/v2/flavors/{name}")});
    if full || !pool_list.is_empty() {
        item["pool_list"] = json!(pool_list);
    }
    if full || detailed {
        item["capabilities"] = if pool_list.is_empty() {
            json!([])
        } else {
            json!(CAPABILITIES)
        };
    }
    item
}

fn pool_list(document: &serde_json::Map<String, Value>) -> ApiResult<Vec<String>> {
    let Some(list) = document.get("pool_list") else {
        return Err(ApiError::bad_body("'pool_list' is a required property"));
    };
    let Value::Array(items) = list else {
        return Err(ApiError::bad_body(format!("{list} is not of type 'array'")));
    };
    let names: Option<Vec<String>> = items
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect();
    let names = names.ok_or_else(|| ApiError::bad_body("pool_list items must be strings"))?;
    if names.is_empty() {
        return Err(ApiError::BadRequest {
            title: "Unable to create",
            description: "Bad Request".into(),
        });
    }
    Ok(names)
}

/// `GET /v2/flavors`.
pub async fn list(
    State(state): State<AppState>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    let query = QueryParams::parse(raw.as_deref());
    let marker = query.get("marker");
    let limit = query.int("limit")?;
    let detailed = query.bool("detailed")?;
    let max = state.config.limits.max_flavors_per_page;
    let page = page_limit(limit, max, LimitWording::NoGreater)?;
    let catalog = placement.view().catalog();
    let flavors = catalog
        .flavors(&context.project, marker.as_deref(), page as usize)
        .await
        .map_err(catalog_failed("Flavors could not be listed."))?;
    let pools = catalog
        .all_pools()
        .await
        .map_err(catalog_failed("Flavors could not be listed."))?;
    let params = LinkParams::new()
        .with("marker", marker.as_ref())
        .with("limit", limit)
        .with("detailed", detailed);
    let next = flavors
        .last()
        .map(|last| params.link("/v2/flavors", &last.name));
    let items: Vec<Value> = flavors
        .iter()
        .map(|flavor| {
            view(
                &flavor.name,
                &tagged(&pools, &flavor.name),
                false,
                detailed == Some(true),
            )
        })
        .collect();
    Ok(present::json(
        StatusCode::OK,
        &json!({"flavors": items, "links": links(next)}),
    ))
}

/// Tags exactly `names` with `flavor` (untagging its other pools).
async fn retag(
    state: &AppState,
    flavor: &str,
    names: &[String],
    failed: &'static str,
) -> ApiResult<()> {
    let placement = pooling(state)?;
    let catalog = placement.view().catalog();
    let pools = catalog.all_pools().await.map_err(catalog_failed(failed))?;
    for mut pool in pools {
        let listed = names.contains(&pool.name);
        let carries = pool.flavor.as_deref() == Some(flavor);
        if listed && !carries {
            pool.flavor = Some(flavor.to_string());
        } else if !listed && carries {
            pool.flavor = None;
        } else {
            continue;
        }
        catalog
            .put_pool(&pool)
            .await
            .map_err(catalog_failed(failed))?;
    }
    Ok(())
}

async fn missing_pool(state: &AppState, names: &[String]) -> ApiResult<Option<String>> {
    let placement = pooling(state)?;
    let pools = placement
        .view()
        .catalog()
        .all_pools()
        .await
        .map_err(catalog_failed("Flavor could not be created."))?;
    Ok(names
        .iter()
        .find(|name| !pools.iter().any(|pool| &pool.name == *name))
        .cloned())
}

/// `PUT /v2/flavors/{flavor}`: create or replace (201).
pub async fn put(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let name = params.get("flavor").to_string();
    let document = read_object(&headers, body).await?;
    reject_unknown_keys(&document, &["pool_list", "capabilities"])?;
    if let Some(capabilities) = document.get("capabilities")
        && !capabilities.is_object()
    {
        return Err(ApiError::bad_body(format!(
            "{capabilities} is not of type 'object'"
        )));
    }
    let names = pool_list(&document)?;
    if let Some(missing) = missing_pool(&state, &names).await? {
        return Err(ApiError::BadRequest {
            title: "Unable to create",
            description: format!(
                "Flavor {name} could not be created, error:Pool {missing} does not exist"
            ),
        });
    }
    let flavor = Flavor {
        name: name.clone(),
        project: context.project.clone(),
    };
    placement
        .view()
        .catalog()
        .put_flavor(&flavor)
        .await
        .map_err(catalog_failed("Flavor could not be created."))?;
    retag(&state, &name, &names, "Flavor could not be created.").await?;
    Ok(present::with_location(
        StatusCode::CREATED.into_response(),
        &format!("/v2/flavors/{name}"),
    ))
}

/// `GET /v2/flavors/{flavor}`.
pub async fn get(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    let name = params.get("flavor");
    let catalog = placement.view().catalog();
    catalog
        .flavor(&context.project, name)
        .await
        .map_err(catalog_failed("Flavor could not be read."))?
        .ok_or_else(|| ApiError::NotFound(format!("Flavor {name} does not exist")))?;
    let pools = catalog
        .all_pools()
        .await
        .map_err(catalog_failed("Flavor could not be read."))?;
    Ok(present::json(
        StatusCode::OK,
        &view(name, &tagged(&pools, name), true, true),
    ))
}

/// `PATCH /v2/flavors/{flavor}`: replace the pool list (200).
pub async fn update(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let name = params.get("flavor").to_string();
    let document = read_object(&headers, body).await?;
    if !document.contains_key("pool_list") {
        return Err(ApiError::bad_body("`pool_list` needs to be specified"));
    }
    let names = pool_list(&document)?;
    placement
        .view()
        .catalog()
        .flavor(&context.project, &name)
        .await
        .map_err(catalog_failed("Flavor could not be updated."))?
        .ok_or_else(|| ApiError::NotFound(format!("Flavor {name} does not exist")))?;
    if let Some(missing) = missing_pool(&state, &names).await? {
        return Err(ApiError::BadRequest {
            title: "updatefail",
            description: format!(
                "Flavor {name} cant be updated, error:Pool {missing} does not exist"
            ),
        });
    }
    retag(&state, &name, &names, "Flavor could not be updated.").await?;
    Ok(present::json(
        StatusCode::OK,
        &view(&name, &names, true, true),
    ))
}

/// `DELETE /v2/flavors/{flavor}`: untag its pools and delete it (204).
pub async fn delete(
    State(state): State<AppState>,
    context: RequestContext,
    params: PathParams,
) -> ApiResult<StatusCode> {
    let placement = pooling(&state)?;
    require_admin(&context)?;
    let name = params.get("flavor");
    let exists = placement
        .view()
        .catalog()
        .flavor(&context.project, name)
        .await
        .map_err(catalog_failed("Flavor could not be deleted."))?
        .is_some();
    if exists {
        retag(&state, name, &[], "Flavor could not be deleted.").await?;
        placement
            .view()
            .catalog()
            .delete_flavor(&context.project, name)
            .await
            .map_err(catalog_failed("Flavor could not be deleted."))?;
    }
    Ok(StatusCode::NO_CONTENT)
}
