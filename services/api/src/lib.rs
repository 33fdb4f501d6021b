//! The stateless HTTP tier speaking the Zaqar v2 API.
//!
//! It validates every request in Zaqar's order, asks the [`Placement`] for
//! the backend of the queue and makes one storage call, then writes Zaqar's
//! exact response. It holds no queue state: any replica serves any request.
//!
//! - [`routes`]: the route table and the handlers, a module per resource.
//! - [`auth`]: the [`Authenticator`](auth::Authenticator) seam (unauthenticated today).
//! - [`context`]: the header and path checks every v2 request passes.
//! - [`query`], [`body`]: query-string and body parsing with Zaqar's rules.
//! - [`metadata`]: reserved queue attributes and JSON-patch updates.
//! - [`present`]: response shapes.
//! - [`forward`]: the [`Placement`] seam to the storage nodes.
//! - [`signed`]: pre-signed URLs (share and verification).
//! - [`error`]: [`ApiError`], mapped once to Zaqar error responses.

pub mod auth;
pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod forward;
pub mod metadata;
pub mod notices;
pub mod present;
pub mod query;
pub mod routes;
pub mod signed;
pub mod state;

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub use config::ApiConfig;
pub use error::{ApiError, ApiResult};
pub use forward::{Placement, SingleNode};
pub use state::AppState;

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let deadline = state.config.request_timeout;
    let app = tower::Layer::layer(
        &axum::middleware::from_fn(move |request, next| routes::common(deadline, request, next)),
        routes::router(state),
    );
    let stopping = tokio_util::sync::CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.cancel();
        }
    };
    // Responses leave in several writes (head, then body): without
    // TCP_NODELAY, Nagle holds the second until the client's delayed ACK,
    // adding up to 40 ms to a request.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut TcpStream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    tokio::select! {
        served = server => served,
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "requests still running after the shutdown grace period");
            Ok(())
        }
    }
}
