//! The storage crate's error type, mapped once to a gRPC status.

use zaqar_proto::tonic::Status;
use zaqar_proto::{ErrorKind, ProtocolError};

/// Result alias of the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything a storage operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The queue, message, claim or subscription does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the stored state.
    #[error("{0}")]
    Conflict(String),
    /// The message is held by an active claim the caller did not name.
    #[error("This message is claimed; it cannot be deleted without a valid claim ID.")]
    ClaimMismatch,
    /// A claim was named but the message is not under an active claim.
    #[error("A claim was specified, but the message is not currently claimed.")]
    ClaimExpired,
    /// The request breaks a rule only storage can check; the text is the
    /// client-facing description.
    #[error("{0}")]
    Invalid(String),
    /// The backend could not be reached or failed transiently.
    #[error("{0}")]
    Unavailable(String),
    /// An unexpected failure, such as a malformed backend reply.
    #[error("{0}")]
    Internal(String),
    /// A wire message did not describe a valid request.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl StorageError {
    /// Returns the kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::NotFound(_) => ErrorKind::NotFound,
            StorageError::Conflict(_) => ErrorKind::Conflict,
            StorageError::ClaimMismatch => ErrorKind::ClaimMismatch,
            StorageError::ClaimExpired => ErrorKind::ClaimExpired,
            StorageError::Invalid(_) | StorageError::Protocol(_) => ErrorKind::Invalid,
            StorageError::Unavailable(_) => ErrorKind::Unavailable,
            StorageError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Rebuilds an error from its kind and description (the inverse of the
    /// gRPC mapping).
    pub fn from_kind(kind: ErrorKind, message: String) -> StorageError {
        match kind {
            ErrorKind::NotFound => StorageError::NotFound(message),
            ErrorKind::Conflict => StorageError::Conflict(message),
            ErrorKind::ClaimMismatch => StorageError::ClaimMismatch,
            ErrorKind::ClaimExpired => StorageError::ClaimExpired,
            ErrorKind::Invalid => StorageError::Invalid(message),
            ErrorKind::Unavailable => StorageError::Unavailable(message),
            ErrorKind::Internal => StorageError::Internal(message),
        }
    }
}

impl From<StorageError> for Status {
    fn from(error: StorageError) -> Self {
        let kind = error.kind();
        if matches!(kind, ErrorKind::Internal | ErrorKind::Unavailable) {
            tracing::warn!(error = %error, "storage operation failed");
        }
        kind.to_status(error.to_string())
    }
}

impl From<Status> for StorageError {
    fn from(status: Status) -> Self {
        StorageError::from_kind(
            ErrorKind::from_status(&status),
            status.message().to_string(),
        )
    }
}

impl From<redis::RedisError> for StorageError {
    fn from(error: redis::RedisError) -> Self {
        use redis::{ErrorKind as Kind, ServerErrorKind as Server};
        let transient = error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || matches!(
                error.kind(),
                Kind::Io
                    | Kind::Server(
                        Server::BusyLoading
                            | Server::TryAgain
                            | Server::ClusterDown
                            | Server::MasterDown
                            | Server::ReadOnly
                    )
            );
        if transient {
            StorageError::Unavailable(format!("redis unavailable: {error}"))
        } else {
            StorageError::Internal(format!("redis error: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_grpc_mapping() {
        let errors = [
            StorageError::NotFound("queue q does not exist".into()),
            StorageError::Conflict("c".into()),
            StorageError::ClaimMismatch,
            StorageError::ClaimExpired,
            StorageError::Invalid("bad".into()),
            StorageError::Unavailable("down".into()),
            StorageError::Internal("oops".into()),
        ];
        for error in errors {
            let kind = error.kind();
            let text = error.to_string();
            let back = StorageError::from(Status::from(error));
            assert_eq!(back.kind(), kind);
            assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn protocol_errors_are_invalid() {
        let error = StorageError::from(ProtocolError::MissingField("scope"));
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
}
