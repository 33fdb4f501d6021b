//! The route table (contract §1.12) and what every route shares: the
//! request-id header, the request deadline, 404 for unknown paths and 405
//! (after the header checks) for unknown methods.

mod claims;
mod flavors;
mod home;
mod messages;
pub(crate) mod pools;
mod queues;
mod subscriptions;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use std::time::Duration;

use tracing::Instrument;

use crate::context::{RequestContext, check_negotiation};
use crate::error::ApiError;
use crate::state::AppState;

/// Builds the routes of the HTTP API; [`crate::serve`] wraps them in
/// [`common`] (request ids and deadlines), so only it hands them out.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route(
            "/",
            endpoint(&["GET"], on(MethodFilter::GET, home::versions)),
        )
        .route("/v2", endpoint(&["GET"], on(MethodFilter::GET, home::home)))
        .route(
            "/v2/",
            endpoint(&["GET"], on(MethodFilter::GET, home::home)),
        )
        .route(
            "/v2/ping",
            endpoint(
                &["GET", "HEAD"],
                on(MethodFilter::GET, home::ping).on(MethodFilter::HEAD, home::ping_head),
            ),
        );
    if state.config.admin_mode {
        router = router.route(
            "/v2/health",
            endpoint(&["GET"], on(MethodFilter::GET, home::health)),
        );
        if state.pooling.is_some() {
            router = router
                .route(
                    "/v2/pools",
                    endpoint(&["GET"], on(MethodFilter::GET, pools::list)),
                )
                .route(
                    "/v2/pools/{pool}",
                    endpoint(
                        &["GET", "PUT", "PATCH", "DELETE"],
                        on(MethodFilter::GET, pools::get)
                            .on(MethodFilter::PUT, pools::put)
                            .on(MethodFilter::PATCH, pools::update)
                            .on(MethodFilter::DELETE, pools::delete),
                    ),
                )
                .route(
                    "/v2/flavors",
                    endpoint(&["GET"], on(MethodFilter::GET, flavors::list)),
                )
                .route(
                    "/v2/flavors/{flavor}",
                    endpoint(
                        &["GET", "PUT", "PATCH", "DELETE"],
                        on(MethodFilter::GET, flavors::get)
                            .on(MethodFilter::PUT, flavors::put)
                            .on(MethodFilter::PATCH, flavors::update)
                            .on(MethodFilter::DELETE, flavors::delete),
                    ),
                );
        }
    }
    for collection in ["queues", "topics"] {
        let item = if collection == "queues" {
            "/v2/queues/{queue_name}"
        } else {
            "/v2/topics/{topic_name}"
        };
        router = router
            .route(
                &format!("/v2/{collection}"),
                endpoint(&["GET"], on(MethodFilter::GET, queues::list)),
            )
            .route(
                item,
                endpoint(
                    &["GET", "PUT", "PATCH", "DELETE"],
                    on(MethodFilter::GET, queues::get)
                        .on(MethodFilter::PUT, queues::create)
                        .on(MethodFilter::PATCH, queues::update)
                        .on(MethodFilter::DELETE, queues::delete),
                ),
            )
            .route(
                &format!("{item}/stats"),
                endpoint(&["GET"], on(MethodFilter::GET, queues::stats)),
            )
            .route(
                &format!("{item}/purge"),
                endpoint(&["POST"], on(MethodFilter::POST, queues::purge)),
            )
            .route(
                &format!("{item}/messages"),
                endpoint(
                    &["GET", "POST", "DELETE"],
                    on(MethodFilter::GET, messages::list_or_get_many)
                        .on(MethodFilter::POST, messages::post)
                        .on(MethodFilter::DELETE, messages::delete_many_or_pop),
                ),
            )
            .route(
                &format!("{item}/messages/{{message_id}}"),
                endpoint(
                    &["GET", "DELETE"],
                    on(MethodFilter::GET, messages::get_one)
                        .on(MethodFilter::DELETE, messages::delete_one),
                ),
            )
            .route(
                &format!("{item}/subscriptions"),
                endpoint(
                    &["GET", "POST"],
                    on(MethodFilter::GET, subscriptions::list)
                        .on(MethodFilter::POST, subscriptions::create),
                ),
            )
            .route(
                &format!("{item}/subscriptions/{{subscription_id}}"),
                endpoint(
                    &["GET", "PATCH", "DELETE"],
                    on(MethodFilter::GET, subscriptions::get)
                        .on(MethodFilter::PATCH, subscriptions::update)
                        .on(MethodFilter::DELETE, subscriptions::delete),
                ),
            )
            .route(
                &format!("{item}/subscriptions/{{subscription_id}}/confirm"),
                endpoint(&["PUT"], on(MethodFilter::PUT, subscriptions::confirm)),
            );
        if collection == "queues" {
            router = router
                .route(
                    &format!("{item}/share"),
                    endpoint(&["POST"], on(MethodFilter::POST, queues::share)),
                )
                .route(
                    &format!("{item}/claims"),
                    endpoint(&["POST"], on(MethodFilter::POST, claims::create)),
                )
                .route(
                    &format!("{item}/claims/{{claim_id}}"),
                    endpoint(
                        &["GET", "PATCH", "DELETE"],
                        on(MethodFilter::GET, claims::get)
                            .on(MethodFilter::PATCH, claims::update)
                            .on(MethodFilter::DELETE, claims::delete),
                    ),
                );
        }
    }
    router
        .fallback(|| async { ApiError::NoRoute })
        .with_state(state)
}

/// Completes a route's method router: HEAD and other methods the route does
/// not allow answer 405 (after the header checks), OPTIONS answers 200 with
/// the allowed methods.
fn endpoint(
    allow: &'static [&'static str],
    methods: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    let listed = allow.join(", ");
    let allow_header = format!("{listed}, OPTIONS");
    let not_allowed = move |State(state): State<AppState>, request: Request| {
        let allow_header = allow_header.clone();
        async move { method_not_allowed(state, request, allow_header).await }
    };
    let mut methods = methods.on(MethodFilter::OPTIONS, move || {
        let listed = listed.clone();
        async move {
            let mut response = StatusCode::OK.into_response();
            if let Ok(value) = HeaderValue::from_str(&listed) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    });
    if !allow.contains(&"HEAD") {
        methods = methods.on(MethodFilter::HEAD, not_allowed.clone());
    }
    methods.fallback(not_allowed)
}

async fn method_not_allowed(state: AppState, request: Request, allow: String) -> Response {
    let (mut parts, _body) = request.into_parts();
    let checked = if parts.uri.path() == "/" {
        check_negotiation(&parts.headers)
    } else {
        RequestContext::from_request_parts(&mut parts, &state)
            .await
            .map(|_| ())
    };
    let error = match checked {
        Ok(()) => ApiError::MethodNotAllowed { allow },
        Err(error) => error,
    };
    let mut response = error.into_response();
    if parts.method == Method::HEAD {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

/// Adds `x-openstack-request-id` to every answer and bounds every request
/// by `deadline` (503 when it passes). Wraps the whole router (see
/// [`crate::serve`]), so it runs once per request, before routing.
pub(crate) async fn common(deadline: Duration, request: Request, next: Next) -> Response {
    let mut id = *b"req-00000000-0000-0000-0000-000000000000";
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id[4..]);
    let request_id = HeaderValue::from_bytes(&id).ok();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        id = request_id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or_default(),
    );
    let handled = tokio::time::timeout(deadline, next.run(request)).instrument(span);
    let mut response = match handled.await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?deadline, "request deadline exceeded");
            ApiError::Unavailable("Request timed out. Please try again in a few seconds.".into())
                .into_response()
        }
    };
    if let Some(value) = request_id {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}
