//! The storage crate's error type, mapped once to a gRPC status.

use zaqar_proto::model::Scope;
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
    /// The queue does not exist (Zaqar's wording).
    pub fn queue_not_found(scope: &Scope) -> StorageError {
        StorageError::NotFound(format!(
            "Queue {} does not exist for project {}",
            scope.name(),
            scope.project()
        ))
    }

    /// The message does not exist in the queue.
    pub fn message_not_found(scope: &Scope, id: &str) -> StorageError {
        StorageError::NotFound(format!(
            "Message {id} does not exist in queue {} for project {}",
            scope.name(),
            scope.project()
        ))
    }

    /// The claim does not exist (or is no longer active) in the queue.
    pub fn claim_not_found(scope: &Scope, id: &str) -> StorageError {
        StorageError::NotFound(format!(
            "Claim {id} does not exist in queue {} for project {}",
            scope.name(),
            scope.project()
        ))
    }

    /// The subscription does not exist.
    pub fn subscription_not_found(id: &str) -> StorageError {
        StorageError::NotFound(format!("Subscription {id} does not exist"))
    }

    /// A confirmed subscription of the same subscriber exists (on create).
    pub fn subscription_exists() -> StorageError {
        StorageError::Conflict(
            "Such subscription already exists.Subscriptions are unique by project + queue + \
             subscriber URI."
                .into(),
        )
    }

    /// Another subscription has the new subscriber (on update).
    pub fn subscriber_taken() -> StorageError {
        StorageError::Conflict(
            "Such subscription already exists. Subscriptions are unique by project + queue + \
             subscriber URI."
                .into(),
        )
    }

    /// The post exceeds the queue's `_max_messages_post_size`.
    pub fn post_too_large(effective: i64, global: i64, queue: i64) -> StorageError {
        StorageError::Invalid(format!(
            "Message collection size is too large. The max size for current queue is \
             {effective}. It is calculated by max size = min(max_messages_post_size_config: \
             {global}, max_messages_post_size_queue: {queue})."
        ))
    }

    /// A delay outside 0..=`max` on a delay queue.
    pub fn bad_delay(max: i64) -> StorageError {
        StorageError::Invalid(format!(
            "The Delay TTL for a message may not exceed {max} seconds,and must be at least 0 \
             seconds long."
        ))
    }

    /// A malformed claim id on a single-message delete.
    pub fn claim_invalid() -> StorageError {
        StorageError::Invalid("The specified claim does not exist or has expired.".into())
    }

    /// A bulk delete with claims named a message those claims do not hold.
    pub fn claim_required() -> StorageError {
        StorageError::Invalid(
            "Every listed message must be held by one of the given claims.".into(),
        )
    }

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

impl From<StorageError> for zaqar_proto::pb::ItemError {
    fn from(error: StorageError) -> Self {
        zaqar_proto::pb::ItemError {
            kind: error.kind().as_str().to_string(),
            message: error.to_string(),
        }
    }
}

impl From<zaqar_proto::pb::ItemError> for StorageError {
    fn from(error: zaqar_proto::pb::ItemError) -> Self {
        StorageError::from_kind(
            ErrorKind::from_wire_name(&error.kind).unwrap_or(ErrorKind::Internal),
            error.message,
        )
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
