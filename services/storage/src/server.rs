//! Serving the storage protocol on a bound listener until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use zaqar_proto::pb::storage_server::StorageServer;
use zaqar_proto::tonic::transport::Server;

use crate::backend::BackendRef;
use crate::error::{Result, StorageError};
use crate::service::StorageService;

/// Largest gRPC message a node accepts or sends (a message post is bounded
/// by the API tier's `max_messages_post_size`, far below this).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Serves `backend` on `listener` until `shutdown` resolves, then lets
/// in-flight calls finish for at most `grace` (idle client connections
/// would otherwise hold the server open indefinitely).
pub async fn serve(
    listener: TcpListener,
    backend: BackendRef,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> Result<()> {
    let service = StorageServer::new(StorageService::new(backend))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let stopping = tokio_util::sync::CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.cancel();
        }
    };
    // `Server::tcp_nodelay` only applies to listeners tonic binds itself: set
    // it on each accepted stream, or Nagle holds a call's second write until
    // the API node's delayed ACK (up to 40 ms per call).
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream
            && let Err(error) = stream.set_nodelay(true)
        {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        stream
    });
    let server = Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        served = server => served
            .map_err(|error| StorageError::Internal(format!("grpc server failed: {error}"))),
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace period");
            Ok(())
        }
    }
}
