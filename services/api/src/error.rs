//! [`ApiError`]: every failure of the HTTP tier, mapped once to a Zaqar
//! error response (`{"title": ..., "description": ...}`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use zaqar_proto::ErrorKind;
use zaqar_storage::StorageError;

/// Result alias of the API crate.
pub type ApiResult<T> = Result<T, ApiError>;

/// Seconds clients are told to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400 with a Zaqar title such as `Invalid API request`.
    #[error("{title}: {description}")]
    BadRequest {
        /// The Zaqar title.
        title: &'static str,
        /// What is wrong.
        description: String,
    },
    /// 403: a policy or claim refusal.
    #[error("{title}: {description}")]
    Forbidden {
        /// The Zaqar title.
        title: &'static str,
        /// Why.
        description: String,
    },
    /// 404 for a missing resource (`Not found` with a description).
    #[error("not found: {0}")]
    NotFound(String),
    /// 404 for an unknown route (`404 Not Found`, no description).
    #[error("no such route")]
    NoRoute,
    /// 405 with the route's methods.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: String,
    },
    /// 406: the client does not accept JSON (answered with an empty body).
    #[error("not acceptable")]
    NotAcceptable,
    /// 409 `Resource conflict`.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 415 on a queue or topic PATCH with the wrong media type.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503 with `Retry-After`: storage is unreachable or failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: an unexpected failure; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 titled `Invalid API request`.
    pub fn invalid(description: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            title: "Invalid API request",
            description: description.into(),
        }
    }

    /// A 400 titled `Invalid request body`.
    pub fn bad_body(description: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            title: "Invalid request body",
            description: description.into(),
        }
    }

    /// A 400 titled `Invalid parameter`.
    pub fn bad_param(description: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            title: "Invalid parameter",
            description: description.into(),
        }
    }

    /// Maps a storage failure of operation `failed` (Zaqar's wording, e.g.
    /// `Queue could not be created.`) to the client's answer.
    pub fn storage(failed: &'static str) -> impl FnOnce(StorageError) -> ApiError {
        move |error| ApiError::from_storage(error, failed)
    }

    /// See [`ApiError::storage`].
    pub fn from_storage(error: StorageError, failed: &'static str) -> ApiError {
        match error.kind() {
            ErrorKind::NotFound => ApiError::NotFound(error.to_string()),
            ErrorKind::Conflict => ApiError::Conflict(error.to_string()),
            ErrorKind::ClaimMismatch => ApiError::Forbidden {
                title: "Unable to delete",
                description: StorageError::ClaimMismatch.to_string(),
            },
            ErrorKind::ClaimExpired => ApiError::BadRequest {
                title: "Unable to delete",
                description: StorageError::ClaimExpired.to_string(),
            },
            ErrorKind::Invalid => ApiError::invalid(error.to_string()),
            ErrorKind::Unavailable => {
                tracing::warn!(%error, operation = failed, "storage unavailable");
                ApiError::Unavailable(format!("{failed} Please try again in a few seconds."))
            }
            ErrorKind::Internal => {
                tracing::error!(%error, operation = failed, "storage failure");
                ApiError::Internal(failed.to_string())
            }
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Zaqar error body, or `None` for an empty body.
    fn body(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        match self {
            ApiError::BadRequest { title, description }
            | ApiError::Forbidden { title, description } => {
                Some(json!({"title": title, "description": description}))
            }
            ApiError::NotFound(description) => {
                Some(json!({"title": "Not found", "description": description}))
            }
            ApiError::NoRoute => Some(json!({"title": "404 Not Found"})),
            ApiError::MethodNotAllowed { .. } => Some(json!({"title": "405 Method Not Allowed"})),
            ApiError::NotAcceptable => None,
            ApiError::Conflict(description) => {
                Some(json!({"title": "Resource conflict", "description": description}))
            }
            ApiError::UnsupportedMediaType => Some(json!({
                "title": "415 Unsupported Media Type",
                "description": "Accepted media type for PATCH: {'Accept-Patch': \
                    'application/openstack-messaging-v2.0-json-patch'}."
            })),
            ApiError::Unavailable(description) => Some(json!({
                "title": "Service temporarily unavailable",
                "description": description
            })),
            ApiError::Internal(description) => Some(json!({
                "title": "Internal server error",
                "description": description
            })),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match self.body() {
            Some(body) => (status, axum::Json(body)).into_response(),
            None => status.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, value);
                }
            }
            ApiError::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_kinds_map_to_zaqar_statuses() {
        let cases = [
            (StorageError::NotFound("x".into()), 404),
            (StorageError::Conflict("x".into()), 409),
            (StorageError::ClaimMismatch, 403),
            (StorageError::ClaimExpired, 400),
            (StorageError::Invalid("x".into()), 400),
            (StorageError::Unavailable("x".into()), 503),
            (StorageError::Internal("x".into()), 500),
        ];
        for (error, status) in cases {
            let api = ApiError::from_storage(error, "Queue could not be created.");
            assert_eq!(api.status().as_u16(), status);
        }
    }

    #[test]
    fn unavailable_says_what_failed_and_when_to_retry() {
        let api = ApiError::from_storage(
            StorageError::Unavailable("connection refused".into()),
            "Messages could not be listed.",
        );
        let response = api.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_errors_hide_details() {
        let api = ApiError::from_storage(
            StorageError::Internal("lua stack trace".into()),
            "Claim could not be created.",
        );
        assert_eq!(
            api.body().unwrap()["description"],
            "Claim could not be created."
        );
    }
}
