//! The body of a message POST: parsed in one pass when it is well formed,
//! and otherwise checked step by step so that each fault gets Zaqar's
//! answer, in Zaqar's order (contract §2.3.1, steps 3–7).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use zaqar_proto::model::NewMessage;

use crate::body;
use crate::error::{ApiError, ApiResult};
use crate::metadata::MIN_MESSAGE_TTL;
use crate::query::parse_int;

/// The top level of a message POST; other keys are ignored.
#[derive(Deserialize)]
struct PostDocument<'a> {
    #[serde(borrow, default, deserialize_with = "present_raw")]
    messages: Option<&'a RawValue>,
}

/// One message of a POST; other keys are ignored.
#[derive(Deserialize)]
struct MessageDocument<'a> {
    #[serde(borrow, default, deserialize_with = "present_raw")]
    body: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    ttl: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    delay: Option<&'a RawValue>,
}

/// Keeps a present member (JSON `null` included) as `Some`.
fn present_raw<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue as Deserialize>::deserialize(deserializer).map(Some)
}

/// Reads an integer field the way Zaqar does (booleans are 0/1).
fn int_field(raw: &RawValue, field: &str) -> ApiResult<i64> {
    match raw.get().trim() {
        "true" => Ok(1),
        "false" => Ok(0),
        text if !text.contains(['.', 'e', 'E']) => {
            parse_int(text).ok_or_else(|| body::wrong_type(field, "int"))
        }
        _ => Err(body::wrong_type(field, "int")),
    }
}

fn first_char(raw: &RawValue) -> Option<u8> {
    raw.get().trim_start().bytes().next()
}

/// A whole POST document read in one pass: its `messages` member with
/// every element already split into its fields.
#[derive(Deserialize)]
struct WholeDocument<'a> {
    #[serde(borrow, default, deserialize_with = "present_messages")]
    messages: Option<Messages<'a>>,
}

/// The `messages` member: an array, or anything else (refused later).
enum Messages<'a> {
    Array(Vec<Element<'a>>),
    Other,
}

/// One element of `messages`, in the order the checks look at it.
enum Element<'a> {
    /// An object, split into the fields a message takes.
    Object(MessageDocument<'a>),
    /// Not an object: `Document type not supported.`
    Other,
    /// An object that is not valid JSON on its own (only from the
    /// step-by-step path): `Request body could not be parsed.`
    Unparsable,
}

/// Keeps a present `messages` member (JSON `null` included) as `Some`.
fn present_messages<'de, D>(deserializer: D) -> Result<Option<Messages<'de>>, D::Error>
where
    D: Deserializer<'de>,
{
    Messages::deserialize(deserializer).map(Some)
}

/// The `Visitor` methods that answer `$other` for every scalar JSON value
/// (`null`, booleans, numbers, strings).
macro_rules! scalars_are {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

impl<'de> Deserialize<'de> for Messages<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MessagesVisitor)
    }
}

/// Reads `messages`: the elements of an array, or skips any other value.
struct MessagesVisitor;

impl<'de> Visitor<'de> for MessagesVisitor {
    type Value = Messages<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(element) = seq.next_element::<Element<'de>>()? {
            elements.push(element);
        }
        Ok(Messages::Array(elements))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Messages::Other)
    }

    scalars_are!(Messages::Other);
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor)
    }
}

/// Reads one element: an object's message fields, or skips any other value.
struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        MessageDocument::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(Element::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other)
    }

    scalars_are!(Element::Other);
}

/// The step-by-step reading of a body that is not a well-formed document,
/// for Zaqar's answer to its first fault: not JSON, not an object, no
/// `messages`, `messages` not an array; the elements are then checked in
/// order along with the fields of the ones before them.
fn parse_stepwise(text: &str) -> ApiResult<Vec<Element<'_>>> {
    let top: &RawValue = serde_json::from_str(text).map_err(|_| body::unparsable())?;
    body::check_top_level(text)?;
    body::check_integers(text)?;
    if first_char(top) != Some(b'{') {
        return Err(no_messages());
    }
    let document: PostDocument<'_> =
        serde_json::from_str(top.get()).map_err(|_| body::unparsable())?;
    let messages = document.messages.ok_or_else(no_messages)?;
    if first_char(messages) != Some(b'[') {
        return Err(body::unsupported_document());
    }
    let elements: Vec<&RawValue> =
        serde_json::from_str(messages.get()).map_err(|_| body::unparsable())?;
    Ok(elements
        .into_iter()
        .map(|element| {
            if first_char(element) != Some(b'{') {
                return Element::Other;
            }
            serde_json::from_str(element.get()).map_or(Element::Unparsable, Element::Object)
        })
        .collect())
}

fn no_messages() -> ApiError {
    ApiError::invalid("No messages were found in the request body.")
}

/// Parses and checks a POST body (steps 3–7 of contract §2.3.1).
pub(super) fn parse_messages(
    bytes: &[u8],
    limits: &crate::config::Limits,
) -> ApiResult<Vec<NewMessage>> {
    let text = std::str::from_utf8(bytes).map_err(|_| body::unparsable())?;
    // An object that parses as a whole document is valid JSON, and its
    // elements are already split: one pass. Anything else takes the
    // checks in their order.
    let whole = match text.trim_start().as_bytes().first() {
        Some(b'{') => serde_json::from_str::<WholeDocument<'_>>(text).ok(),
        _ => None,
    };
    let elements = match whole {
        Some(document) => {
            body::check_integers(text)?;
            match document.messages.ok_or_else(no_messages)? {
                Messages::Array(elements) => elements,
                Messages::Other => return Err(body::unsupported_document()),
            }
        }
        None => parse_stepwise(text)?,
    };
    let mut parsed = Vec::with_capacity(elements.len());
    for element in elements {
        let message = match element {
            Element::Object(message) => message,
            Element::Other => return Err(body::unsupported_document()),
            Element::Unparsable => return Err(body::unparsable()),
        };
        let body = message
            .body
            .ok_or_else(|| ApiError::bad_body("Missing \"body\" field."))?;
        let ttl = message.ttl.map(|raw| int_field(raw, "ttl")).transpose()?;
        let delay = message
            .delay
            .map(|raw| int_field(raw, "delay"))
            .transpose()?;
        parsed.push(NewMessage {
            body: body.get().to_string(),
            ttl,
            delay,
        });
    }
    if parsed.is_empty() {
        return Err(ApiError::invalid("No messages to enqueu."));
    }
    for message in &parsed {
        if let Some(ttl) = message.ttl
            && !(MIN_MESSAGE_TTL..=limits.max_message_ttl).contains(&ttl)
        {
            return Err(ApiError::invalid(format!(
                "The TTL for a message may not exceed {} seconds, and must be at least {} seconds long.",
                limits.max_message_ttl, MIN_MESSAGE_TTL
            )));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    fn parse(text: &str) -> ApiResult<Vec<NewMessage>> {
        parse_messages(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn bodies_keep_their_raw_text() {
        let parsed = parse(
            r#"{"messages": [{"body": {"b": 1, "a": [1, 2]}, "ttl": 300}, {"body": null}, {"body": "x", "delay": 5}]}"#,
        )
        .unwrap();
        assert_eq!(parsed[0].body, r#"{"b": 1, "a": [1, 2]}"#);
        assert_eq!(parsed[0].ttl, Some(300));
        assert_eq!(parsed[1].body, "null");
        assert_eq!(parsed[1].ttl, None);
        assert_eq!(parsed[2].delay, Some(5));
    }

    #[test]
    fn bad_posts_are_400_with_zaqar_texts() {
        let cases = [
            ("[", "Request body could not be parsed."),
            (".", "Request body could not be parsed."),
            ("123", "Request body could not be parsed."),
            ("[]", "No messages were found in the request body."),
            (
                r#"[{"body": 1}]"#,
                "No messages were found in the request body.",
            ),
            ("{}", "No messages were found in the request body."),
            (r#"{"messages": {}}"#, "Document type not supported."),
            (r#"{"messages": [1]}"#, "Document type not supported."),
            (r#"{"messages": []}"#, "No messages to enqueu."),
            (r#"{"messages": [{"ttl": 60}]}"#, "Missing \"body\" field."),
            (
                r#"{"messages": [{"body": 1, "ttl": 0.05}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": "60"}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": null}]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": 59}]}"#,
                "The TTL for a message may not exceed 1209600 seconds",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": -1}]}"#,
                "The TTL for a message may not exceed",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": 1209601}]}"#,
                "The TTL for a message may not exceed",
            ),
            (
                r#"{"messages": [{"body": 99999999999999999999}]}"#,
                "JSON contains integer that is too large.",
            ),
            (r#"{"messages": null}"#, "Document type not supported."),
            (r#"{"messages": "x"}"#, "Document type not supported."),
            (
                r#"{"messages": [{"body": 1}, [1, 2]]}"#,
                "Document type not supported.",
            ),
            (
                r#"{"messages": [{"body": 1}, {"body": 1, "body": 2}]}"#,
                "Request body could not be parsed.",
            ),
            (
                r#"{"messages": [{"body": 1}], "messages": [{"body": 2}]}"#,
                "Request body could not be parsed.",
            ),
            // The faults of earlier elements come first, whichever path
            // reads the document.
            (
                r#"{"messages": [{"ttl": 60}, {"body": 1, "body": 2}]}"#,
                "Missing \"body\" field.",
            ),
            (
                r#"{"messages": [{"body": 1, "ttl": "x"}, 7]}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
            (
                r#"{"messages": [7, {"body": 1, "body": 2}]}"#,
                "Document type not supported.",
            ),
            (
                r#"{"messages": [{"body": 1}, {"body": 1, "ttl": 5.5}], "x": 1e999}"#,
                "The value of the \"ttl\" field must be a int.",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.status().as_u16(), 400, "{text}");
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn delay_types_are_checked_but_ranges_are_left_to_storage() {
        assert!(parse(r#"{"messages": [{"body": 1, "delay": 99999}]}"#).is_ok());
        assert!(parse(r#"{"messages": [{"body": 1, "delay": "x"}]}"#).is_err());
    }
}
