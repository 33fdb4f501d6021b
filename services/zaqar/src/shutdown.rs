//! The shutdown signal shared by every role: SIGTERM or Ctrl-C.

use std::future::Future;

/// Starts listening for SIGTERM and Ctrl-C (SIGINT) at once and returns a
/// future that resolves when either arrives.
///
/// The handlers are in place when this returns, not when the future is
/// first polled: a role calls it before it announces that it listens, so a
/// signal sent as soon as the process is ready stops it cleanly instead of
/// killing it with the signal's default action. Must be called inside the
/// Tokio runtime.
pub fn listen() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let stopped = {
        use tokio::signal::unix::SignalKind;
        let terminate = unix::install(SignalKind::terminate(), "SIGTERM");
        let interrupt = unix::install(SignalKind::interrupt(), "SIGINT");
        async move {
            tokio::select! {
                () = unix::received(terminate) => {}
                () = unix::received(interrupt) => {}
            }
        }
    };
    #[cfg(not(unix))]
    let stopped = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    async move {
        stopped.await;
        tracing::info!("shutting down");
    }
}

#[cfg(unix)]
mod unix {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    /// Installs the handler for `kind` now; `None` (with a warning) when the
    /// process cannot listen for it.
    pub(super) fn install(kind: SignalKind, name: &str) -> Option<Signal> {
        signal(kind)
            .inspect_err(|error| tracing::warn!(%error, "cannot listen for {name}"))
            .ok()
    }

    /// Resolves when the signal arrives; never without a handler.
    pub(super) async fn received(stream: Option<Signal>) {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
