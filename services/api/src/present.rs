//! Response shapes: messages, claims, links and JSON responses, exactly as
//! Zaqar writes them (contract §2.3.0, §1.7, §1.9).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use zaqar_proto::model::{Message, Namespace, Scope};

/// `/v2/queues/{name}` or `/v2/topics/{name}`.
pub fn resource_path(scope: &Scope) -> String {
    let collection = match scope.namespace() {
        Namespace::Queue => "queues",
        Namespace::Topic => "topics",
    };
    format!("/v2/{collection}/{}", scope.name())
}

/// The href of a message, with `?claim_id=` while a claim holds it.
pub fn message_href(scope: &Scope, message: &Message) -> String {
    let base = format!("{}/messages/{}", resource_path(scope), message.id);
    match &message.claim_id {
        Some(claim) => format!("{base}?claim_id={claim}"),
        None => base,
    }
}

/// A message body as raw JSON (`null` if storage returned something else).
pub fn raw_body(body: &str) -> &RawValue {
    serde_json::from_str::<&RawValue>(body).unwrap_or(RawValue::NULL)
}

/// A message in listings, gets and claims.
#[derive(Serialize)]
pub struct MessageView<'a> {
    id: &'a str,
    href: String,
    ttl: i64,
    age: i64,
    body: &'a RawValue,
}

impl<'a> MessageView<'a> {
    /// Builds the view of `message` in `scope`.
    pub fn new(scope: &Scope, message: &'a Message) -> Self {
        MessageView {
            id: &message.id,
            href: message_href(scope, message),
            ttl: message.ttl,
            age: message.age.max(0),
            body: raw_body(&message.body),
        }
    }
}

/// A popped message: no href, with `claim_id` (null) and `claim_count`.
#[derive(Serialize)]
pub struct PoppedView<'a> {
    id: &'a str,
    ttl: i64,
    age: i64,
    body: &'a RawValue,
    claim_id: Option<&'a str>,
    claim_count: i64,
}

impl<'a> PoppedView<'a> {
    /// Builds the view of a popped message.
    pub fn new(message: &'a Message) -> Self {
        PoppedView {
            id: &message.id,
            ttl: message.ttl,
            age: message.age.max(0),
            body: raw_body(&message.body),
            claim_id: None,
            claim_count: message.claim_count,
        }
    }
}

/// A `links` entry.
#[derive(Serialize)]
pub struct Link {
    rel: &'static str,
    href: String,
}

/// The `links` array: empty for an empty page, else one `next` link.
pub fn links(next: Option<String>) -> Vec<Link> {
    next.map(|href| Link { rel: "next", href })
        .into_iter()
        .collect()
}

/// `{"messages": [...]}`, with `links` for a page. Built as a typed value
/// rather than a `serde_json::Value`, so each message body goes out as
/// stored instead of being parsed into a tree and written again. Fields in
/// name order, as a `Value` object writes them.
#[derive(Serialize)]
pub struct MessageList<T> {
    /// The page's links; absent from answers that are not pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    /// The messages.
    pub messages: Vec<T>,
}

/// A JSON response with a status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Adds a `Location` header.
pub fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn iso8601(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Renders ids like a Python list: `['a', 'b']`.
pub fn python_list(items: &[String]) -> String {
    let rendered: Vec<String> = items
        .iter()
        .map(|item| {
            if item.contains('\'') && !item.contains('"') {
                format!("\"{item}\"")
            } else {
                format!("'{}'", item.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        })
        .collect();
    format!("[{}]", rendered.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_714_558_500), "2024-05-01T10:15:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn hrefs_carry_the_active_claim_last() {
        let scope = Scope::queue("p", "orders").unwrap();
        let mut message = Message {
            id: "m1".into(),
            ..Message::default()
        };
        assert_eq!(
            message_href(&scope, &message),
            "/v2/queues/orders/messages/m1"
        );
        message.claim_id = Some("c1".into());
        let href = message_href(&scope, &message);
        assert_eq!(href, "/v2/queues/orders/messages/m1?claim_id=c1");
        assert_eq!(href.split('=').next_back(), Some("c1"));
        let topic = Scope::new("p", Namespace::Topic, "t").unwrap();
        assert_eq!(resource_path(&topic), "/v2/topics/t");
    }

    #[test]
    fn python_lists_quote_like_repr() {
        assert_eq!(python_list(&["a".into(), "b".into()]), "['a', 'b']");
    }

    #[test]
    fn bodies_embed_raw_json() {
        assert_eq!(raw_body("{\"a\": [1, 2]}").get(), "{\"a\": [1, 2]}");
        assert_eq!(raw_body("not json").get(), "null");
    }
}
