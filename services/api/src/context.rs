//! The checks every v2 request passes before its handler runs, in Zaqar's
//! order (contract §1.2): a pre-signed URL's signature when one is sent,
//! form content type, `Accept`, `Client-ID`, the project header, then the
//! queue or topic name of the path.
//!
//! [`RequestContext`] runs them as the first extractor of every v2 handler
//! (including the per-route 405 answer, which the contract puts after these
//! checks); unknown paths never reach it, so they get a bare 404.

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use zaqar_proto::model::{MAX_PROJECT_LEN, Namespace, Scope};

use crate::auth::Identity;
use crate::config::{ClientIdMode, Limits};
use crate::error::ApiError;
use crate::state::AppState;

/// What a v2 request established about its caller.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The project (tenant) of the request.
    pub project: String,
    /// The normalised Client-ID (32 lowercase hex digits in strict mode).
    pub client_id: String,
    /// The queue or topic the path names, if any.
    pub scope: Option<Scope>,
    /// What authentication established.
    pub identity: Identity,
}

impl RequestContext {
    /// The queue or topic of the path; only called by handlers whose route
    /// has one.
    pub fn scope(&self) -> Result<&Scope, ApiError> {
        self.scope
            .as_ref()
            .ok_or_else(|| ApiError::Internal("route has no queue name".into()))
    }
}

impl<S> FromRequestParts<S> for RequestContext
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        if parts.headers.contains_key("url-signature") {
            crate::signed::verify(
                app.config.signed_url_secret_key.as_deref(),
                &parts.method,
                parts.uri.path(),
                &parts.headers,
            )?;
        }
        let identity = match parts.extensions.get::<Identity>() {
            Some(identity) => identity.clone(),
            None => app.auth.authenticate(&parts.headers).await?,
        };
        check_negotiation(&parts.headers)?;
        let client_id = client_id(&parts.headers, &app.config.limits)?;
        let header_project = project(&parts.headers)?;
        let project = identity.project.clone().unwrap_or(header_project);
        let scope = path_scope(parts, state, &project).await?;
        Ok(RequestContext {
            project,
            client_id,
            scope,
            identity,
        })
    }
}

/// Steps 4 and 5 of §1.2, which also apply to `/`.
pub fn check_negotiation(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::CONTENT_LENGTH)
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        && headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() != "0")
    {
        return Err(ApiError::BadRequest {
            title: "Invalid Content-Type",
            description: "Endpoint does not accept `application/x-www-form-urlencoded` content; \
                currently supported media type is `application/json`; specify proper \
                client-side media type with the \"Content-Type\" header."
                .into(),
        });
    }
    if !accepts_json(headers) {
        return Err(ApiError::NotAcceptable);
    }
    Ok(())
}

/// Whether the `Accept` header admits `application/json` (absent = `*/*`).
pub fn accepts_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    values
        .iter()
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, value)| value.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            quality > 0.0 && matches!(media.as_str(), "*/*" | "application/*" | "application/json")
        })
}

fn client_id(headers: &HeaderMap, limits: &Limits) -> Result<String, ApiError> {
    let Some(value) = headers.get("client-id") else {
        return Err(ApiError::BadRequest {
            title: "Missing header value",
            description: "The \"Client-Id\" header is required.".into(),
        });
    };
    let wrong = || ApiError::BadRequest {
        title: "Wrong UUID value",
        description: "Malformed hexadecimal UUID.".into(),
    };
    let text = value.to_str().map_err(|_| wrong())?;
    match limits.client_id_uuid_safe {
        ClientIdMode::Strict => normalise_uuid(text).ok_or_else(wrong),
        ClientIdMode::Off => {
            let length = text.chars().count();
            if length < limits.min_length_client_id || length > limits.max_length_client_id {
                return Err(wrong());
            }
            Ok(text.to_string())
        }
    }
}

/// Parses a UUID the way Python's `uuid.UUID(hex)` does: `urn:` and `uuid:`
/// removed, braces stripped, all hyphens dropped, then exactly 32 hex digits.
/// Returns the 32 lowercase digits, so spellings of one UUID compare equal.
pub fn normalise_uuid(text: &str) -> Option<String> {
    // The usual spellings (hex digits and hyphens only) in one pass.
    if text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        let digits: String = text
            .bytes()
            .filter(|b| *b != b'-')
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
        return (digits.len() == 32).then_some(digits);
    }
    let stripped = text.replace("urn:", "").replace("uuid:", "");
    let digits: String = stripped
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    (digits.len() == 32 && digits.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| digits.to_ascii_lowercase())
}

fn project(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = ["x-project-id", "x-tenant-id", "x-tenant"]
        .iter()
        .find_map(|name| headers.get(*name));
    let Some(value) = value else {
        return Err(ApiError::BadRequest {
            title: "Project-Id Missing",
            description: "The header X-PROJECT-ID was missing".into(),
        });
    };
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    if text.is_empty() {
        return Err(ApiError::BadRequest {
            title: "Empty project header not allowed",
            description: "X-PROJECT-ID cannot be an empty string. Specify the right header \
                X-PROJECT-ID and retry."
                .into(),
        });
    }
    Ok(text)
}

async fn path_scope<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    project: &str,
) -> Result<Option<Scope>, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state).await;
    let invalid = |namespace: Namespace| {
        let (title, description) = match namespace {
            Namespace::Queue => (
                "Invalid queue identification",
                "The format of the submitted queue name or project id is not valid.",
            ),
            Namespace::Topic => (
                "Invalid topic identification",
                "The format of the submitted topic name or project id is not valid.",
            ),
        };
        ApiError::BadRequest {
            title,
            description: description.into(),
        }
    };
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or("", |path| path.as_str());
    let namespace = if route.contains("{queue_name}") {
        Namespace::Queue
    } else if route.contains("{topic_name}") {
        Namespace::Topic
    } else {
        return Ok(None);
    };
    let params = params.map_err(|_| invalid(namespace))?;
    let key = match namespace {
        Namespace::Queue => "queue_name",
        Namespace::Topic => "topic_name",
    };
    let name = params
        .iter()
        .find(|(param, _)| *param == key)
        .map(|(_, value)| value)
        .ok_or_else(|| invalid(namespace))?;
    if project.chars().count() > MAX_PROJECT_LEN {
        return Err(invalid(namespace));
    }
    Scope::new(project, namespace, name)
        .map(Some)
        .map_err(|_| invalid(namespace))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn uuids_parse_like_python() {
        let canonical = "3381af922b9e11e3b19171861300734c";
        for spelling in [
            "3381af92-2b9e-11e3-b191-71861300734c",
            "3381af922b9e11e3b19171861300734c",
            "{3381af92-2b9e-11e3-b191-71861300734c}",
            "urn:uuid:3381af92-2b9e-11e3-b191-71861300734c",
            "3381AF92-2B9E-11E3-B191-71861300734C",
            "33-81af922b9e11e3b19171861300734c--",
        ] {
            assert_eq!(
                normalise_uuid(spelling).as_deref(),
                Some(canonical),
                "{spelling}"
            );
        }
        for bad in [
            "",
            "0xdeadbeef",
            "550893e0-2b6e-11e3-835a-5cf9dd72369",
            "550893e0-2b6e-11e3-835a-5cf9dd72369a0",
            "{550893e0-2b6e-11e3-835a-5cf9dd72369}",
            "textid",
        ] {
            assert_eq!(normalise_uuid(bad), None, "{bad}");
        }
    }

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_must_admit_json() {
        assert!(accepts_json(&HeaderMap::new()));
        for ok in [
            "*/*",
            "application/*",
            "application/json",
            "text/html, application/json;q=0.5",
        ] {
            assert!(accepts_json(&accept(ok)), "{ok}");
        }
        for bad in ["application/xml", "text/plain", "application/json;q=0"] {
            assert!(!accepts_json(&accept(bad)), "{bad}");
        }
    }

    #[test]
    fn form_bodies_are_refused_only_with_a_length() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(check_negotiation(&headers).is_ok());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(check_negotiation(&headers).is_ok());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert!(check_negotiation(&headers).is_err());
    }
}

/// The path parameters of the matched route, percent-decoded. A segment
/// that does not decode to UTF-8 reads as empty, which names nothing.
#[derive(Clone, Debug, Default)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    /// A parameter by name; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map(|params| {
                params
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PathParams(params))
    }
}
