//! Error kinds shared by every crate, and how they cross gRPC.
//!
//! Each crate has its own error enum; each of those answers
//! [`ErrorKind`], and this one table maps a kind to its HTTP status and gRPC
//! code. A kind travels across gRPC in the [`ERROR_KIND_METADATA`] entry of
//! the status, so the API tier rebuilds exactly the kind the storage node
//! raised, whatever the gRPC code.

use tonic::{Code, Status};

/// The status metadata key carrying an [`ErrorKind`] across gRPC.
pub const ERROR_KIND_METADATA: &str = "zaqar-error-kind";

/// The closed set of error kinds the service distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// The change conflicts with the stored state (HTTP 409).
    Conflict,
    /// The message is held by an active claim the caller did not name (HTTP 403).
    ClaimMismatch,
    /// A claim was named but the message is not under an active claim (HTTP 400).
    ClaimExpired,
    /// The request is invalid (HTTP 400).
    Invalid,
    /// The backend is unreachable or failed; retrying may help (HTTP 503).
    Unavailable,
    /// An unexpected failure (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::ClaimMismatch,
        ErrorKind::ClaimExpired,
        ErrorKind::Invalid,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];

    /// Returns the HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::ClaimMismatch => 403,
            ErrorKind::ClaimExpired | ErrorKind::Invalid => 400,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// Returns the gRPC code for this kind.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::AlreadyExists,
            ErrorKind::ClaimMismatch => Code::PermissionDenied,
            ErrorKind::ClaimExpired => Code::FailedPrecondition,
            ErrorKind::Invalid => Code::InvalidArgument,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }

    /// Returns the stable wire name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ClaimMismatch => "claim_mismatch",
            ErrorKind::ClaimExpired => "claim_expired",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Parses a wire name produced by [`ErrorKind::as_str`].
    pub fn from_wire_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Builds the gRPC status for an error of this kind.
    pub fn to_status(self, message: impl Into<String>) -> Status {
        let mut status = Status::new(self.grpc_code(), message);
        status.metadata_mut().insert(
            ERROR_KIND_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        status
    }

    /// Recovers the kind of a gRPC status: from its metadata when a storage
    /// node set it, else from the code (transport failures, deadlines and
    /// unknown peers all count as unavailable).
    pub fn from_status(status: &Status) -> ErrorKind {
        let from_metadata = status
            .metadata()
            .get(ERROR_KIND_METADATA)
            .and_then(|value| value.to_str().ok())
            .and_then(ErrorKind::from_wire_name);
        if let Some(kind) = from_metadata {
            return kind;
        }
        match status.code() {
            Code::NotFound => ErrorKind::NotFound,
            Code::AlreadyExists | Code::Aborted => ErrorKind::Conflict,
            Code::PermissionDenied => ErrorKind::ClaimMismatch,
            Code::FailedPrecondition => ErrorKind::ClaimExpired,
            Code::InvalidArgument | Code::OutOfRange => ErrorKind::Invalid,
            Code::Internal | Code::DataLoss | Code::Unimplemented => ErrorKind::Internal,
            _ => ErrorKind::Unavailable,
        }
    }
}

/// A wire message that does not describe a valid request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field holds a value outside its domain.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ProtocolError {
    /// Builds an [`ProtocolError::InvalidField`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ProtocolError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

impl From<ProtocolError> for Status {
    fn from(error: ProtocolError) -> Self {
        ErrorKind::Invalid.to_status(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_a_status_round_trip() {
        for kind in ErrorKind::ALL {
            let status = kind.to_status("boom");
            assert_eq!(ErrorKind::from_status(&status), kind);
            assert_eq!(status.code(), kind.grpc_code());
            assert_eq!(status.message(), "boom");
        }
    }

    #[test]
    fn wire_names_are_distinct() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|kind| kind.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn transport_failures_are_unavailable() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unknown,
        ] {
            assert_eq!(
                ErrorKind::from_status(&Status::new(code, "x")),
                ErrorKind::Unavailable
            );
        }
    }

    #[test]
    fn http_statuses_match_the_contract() {
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::ClaimMismatch.http_status(), 403);
        assert_eq!(ErrorKind::ClaimExpired.http_status(), 400);
        assert_eq!(ErrorKind::Unavailable.http_status(), 503);
    }
}
