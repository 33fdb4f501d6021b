//! Queue metadata: the reserved attributes (contract §2.2), their defaults
//! on read (§2.1.3), and JSON-patch updates (§2.1.4), as Zaqar checks them.

use serde_json::{Map, Value};
use zaqar_proto::model::Namespace;

use crate::body::json_int;
use crate::config::Limits;
use crate::error::{ApiError, ApiResult};

/// Smallest message TTL and `_default_message_ttl`.
pub const MIN_MESSAGE_TTL: i64 = 60;

/// The reserved attributes filled with defaults on read, with their defaults.
pub fn reserved_defaults(namespace: Namespace, limits: &Limits) -> Vec<(&'static str, Value)> {
    let mut defaults = vec![
        (
            "_max_messages_post_size",
            Value::from(limits.max_messages_post_size),
        ),
        (
            "_default_message_ttl",
            Value::from(limits.default_message_ttl),
        ),
        (
            "_default_message_delay",
            Value::from(limits.default_message_delay),
        ),
    ];
    if namespace == Namespace::Queue {
        defaults.extend([
            ("_dead_letter_queue", Value::Null),
            ("_dead_letter_queue_messages_ttl", Value::Null),
            ("_max_claim_count", Value::Null),
            ("_enable_encrypt_messages", Value::Bool(false)),
        ]);
    }
    defaults
}

/// Python truthiness of a JSON value.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Returns the metadata with every absent or falsy reserved attribute
/// replaced by its default (what `GET /v2/queues/{name}` shows).
pub fn with_defaults(
    mut metadata: Map<String, Value>,
    namespace: Namespace,
    limits: &Limits,
) -> Map<String, Value> {
    for (key, default) in reserved_defaults(namespace, limits) {
        if !metadata.get(key).is_some_and(truthy) {
            metadata.insert(key.to_string(), default);
        }
    }
    metadata
}

/// Checks the reserved attributes of a whole metadata object. `title` is
/// `Invalid API request` on PUT and `Invalid request body` on PATCH.
pub fn validate(
    metadata: &Map<String, Value>,
    limits: &Limits,
    title: &'static str,
) -> ApiResult<()> {
    let fail = |description: String| ApiError::BadRequest { title, description };
    // A truthy value of the wrong type fails the type check; any non-null
    // value must then be in range (so 0 fails a range starting at 60).
    let int_field = |key: &str| -> ApiResult<Option<i64>> {
        match metadata.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => match json_int(value) {
                Some(number) => Ok(Some(number)),
                None => Err(fail(format!("{key} must be integer."))),
            },
        }
    };
    if let Some(ttl) = int_field("_default_message_ttl")?
        && !(MIN_MESSAGE_TTL..=limits.max_message_ttl).contains(&ttl)
    {
        return Err(fail(format!(
            "_default_message_ttl can not exceed {} seconds, and must be at least {} seconds long.",
            limits.max_message_ttl, MIN_MESSAGE_TTL
        )));
    }
    if let Some(size) = int_field("_max_messages_post_size")?
        && !(size > 0 && (size as u64) <= limits.max_messages_post_size)
    {
        return Err(fail(format!(
            "_max_messages_post_size can not exceed {},  and must be at least greater than 0.",
            limits.max_messages_post_size
        )));
    }
    int_field("_max_claim_count")?;
    if let Some(ttl) = int_field("_dead_letter_queue_messages_ttl")?
        && !(MIN_MESSAGE_TTL..=limits.max_message_ttl).contains(&ttl)
    {
        return Err(fail(format!(
            "The TTL for a message may not exceed {} seconds, and must be at least {} seconds long.",
            limits.max_message_ttl, MIN_MESSAGE_TTL
        )));
    }
    if let Some(delay) = int_field("_default_message_delay")?
        && !(0..=limits.max_message_delay).contains(&delay)
    {
        return Err(fail(format!(
            "The TTL can not exceed {} seconds, and must be at least 0 seconds long.",
            limits.max_message_delay
        )));
    }
    if let Some(value) = metadata.get("_enable_encrypt_messages")
        && truthy(value)
        && !value.is_boolean()
    {
        return Err(fail("_enable_encrypt_messages must be boolean.".into()));
    }
    validate_retry_policy(metadata.get("_retry_policy"), title)
}

/// Checks a `_retry_policy` object (also used in subscription options).
pub fn validate_retry_policy(policy: Option<&Value>, title: &'static str) -> ApiResult<()> {
    let fail = |description: &str| ApiError::BadRequest {
        title,
        description: description.to_string(),
    };
    let Some(policy) = policy.filter(|value| truthy(value)) else {
        return Ok(());
    };
    let Value::Object(policy) = policy else {
        return Err(fail("retry_policy must be a dict."));
    };
    for key in [
        "retries_with_no_delay",
        "minimum_delay_retries",
        "minimum_delay",
        "maximum_delay",
        "maximum_delay_retries",
    ] {
        if let Some(value) = policy.get(key)
            && truthy(value)
            && json_int(value).is_none()
        {
            return Err(fail(&format!("Retry policy: {key} must be a integer.")));
        }
    }
    if let Some(function) = policy.get("retry_backoff_function").filter(|v| truthy(v)) {
        match function.as_str() {
            None => return Err(fail("retry_backoff_function must be a string.")),
            Some("linear" | "arithmetic" | "exponential" | "geometric") => {}
            Some(_) => return Err(fail("invalid retry_backoff_function.")),
        }
    }
    if let Some(flag) = policy.get("ignore_subscription_override")
        && truthy(flag)
        && !flag.is_boolean()
    {
        return Err(fail("ignore_subscription_override must be a boolean."));
    }
    let delay = |key: &str, default: i64| policy.get(key).and_then(json_int).unwrap_or(default);
    let minimum = delay("minimum_delay", 5);
    let maximum = delay("maximum_delay", 30);
    if maximum < minimum {
        return Err(fail("minimum_delay must less than maximum_delay."));
    }
    if maximum - minimum < 10 {
        return Err(fail("invalid minimum_delay and maximum_delay."));
    }
    Ok(())
}

/// One checked JSON-patch operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Set a key.
    Add(String, Value),
    /// Set a key that exists (or is reserved).
    Replace(String, Value),
    /// Drop a key that exists (or is reserved).
    Remove(String),
}

/// Checks a JSON-patch document (an array of operations) before any
/// storage access. Errors are 400 `Invalid request body`.
pub fn parse_patch(document: &Value) -> ApiResult<Vec<Change>> {
    let Value::Array(operations) = document else {
        return Err(crate::body::unsupported_document());
    };
    let operations_list = "add, remove, replace";
    operations
        .iter()
        .map(|operation| {
            let Value::Object(operation) = operation else {
                return Err(ApiError::bad_body("Operations must be JSON objects."));
            };
            let op = match operation.get("op") {
                None | Some(Value::Null) => {
                    return Err(ApiError::bad_body(format!(
                        "Unable to find `op` in JSON Schema change. It must be one of the \
                         following: {operations_list}."
                    )));
                }
                Some(Value::String(op)) if matches!(op.as_str(), "add" | "remove" | "replace") => {
                    op.as_str()
                }
                Some(other) => {
                    let shown = other
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(other.to_string());
                    return Err(ApiError::bad_body(format!(
                        "Invalid operation: `{shown}`. It must be one of the following: \
                         {operations_list}."
                    )));
                }
            };
            let Some(path) = operation.get("path") else {
                return Err(ApiError::bad_body(
                    "Unable to find 'path' in JSON Schema change",
                ));
            };
            let pointer = path
                .as_str()
                .ok_or_else(|| ApiError::bad_body("Request body could not be parsed."))?;
            let tokens = decode_pointer(pointer)?;
            if tokens.len() != 2 {
                return Err(ApiError::bad_body(format!(
                    "Invalid JSON pointer for this resource: '/{}, e.g /metadata/key'",
                    tokens.join("/")
                )));
            }
            let key = tokens[1].clone();
            if op == "remove" {
                return Ok(Change::Remove(key));
            }
            let Some(value) = operation.get("value") else {
                return Err(ApiError::bad_body(format!(
                    "Operation \"{op}\" requires a member named \"value\"."
                )));
            };
            if !tokens[0].eq_ignore_ascii_case("metadata") {
                return Err(ApiError::bad_body(
                    "The root of path must be metadata, e.g /metadata/key.",
                ));
            }
            Ok(if op == "add" {
                Change::Add(key, value.clone())
            } else {
                Change::Replace(key, value.clone())
            })
        })
        .collect()
}

/// Validates and decodes a JSON pointer the way Zaqar does.
fn decode_pointer(pointer: &str) -> ApiResult<Vec<String>> {
    let fail = |what: &str| ApiError::bad_body(format!("Pointer `{pointer}` {what}"));
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(fail("does not start with \"/\"."));
    };
    let mut after_slash = false;
    for ch in rest.chars() {
        if ch == '/' {
            if after_slash {
                return Err(fail("contains adjacent \"/\"."));
            }
            after_slash = true;
        } else if !ch.is_whitespace() {
            after_slash = false;
        }
    }
    if pointer.len() > 1 && pointer.ends_with('/') {
        return Err(fail("end with \"/\"."));
    }
    if rest.trim() == "/" {
        return Err(fail("does not contains valid token."));
    }
    let mut chars = pointer.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '~' && !matches!(chars.peek(), Some('0') | Some('1')) {
            return Err(fail(
                "contains \"~\" not part of a recognized escape sequence.",
            ));
        }
    }
    Ok(pointer
        .trim_start_matches('/')
        .split('/')
        .map(|part| {
            part.replace("~1", "/")
                .replace("~0", "~")
                .trim()
                .to_string()
        })
        .collect())
}

/// Applies checked changes in order to a copy of `metadata`; a replace or
/// remove of a key that is neither stored nor reserved is a 409 and nothing
/// is applied.
pub fn apply_patch(
    metadata: &Map<String, Value>,
    changes: Vec<Change>,
    namespace: Namespace,
    limits: &Limits,
) -> ApiResult<Map<String, Value>> {
    let reserved: Vec<&str> = reserved_defaults(namespace, limits)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let mut result = metadata.clone();
    for change in changes {
        match change {
            Change::Add(key, value) => {
                result.insert(key, value);
            }
            Change::Replace(key, value) => {
                if !result.contains_key(&key) && !reserved.contains(&key.as_str()) {
                    return Err(ApiError::Conflict(format!(
                        "Can't replace non-existent object {key}."
                    )));
                }
                result.insert(key, value);
            }
            Change::Remove(key) => {
                if result.remove(&key).is_none() && !reserved.contains(&key.as_str()) {
                    return Err(ApiError::Conflict(format!(
                        "Can't remove non-existent object {key}."
                    )));
                }
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn put(value: Value) -> ApiResult<()> {
        validate(&object(value), &Limits::default(), "Invalid API request")
    }

    #[test]
    fn reserved_attributes_follow_zaqar() {
        assert!(put(json!({"_default_message_ttl": 60, "_max_messages_post_size": 255})).is_ok());
        assert!(put(json!({"_max_claim_count": 0})).is_ok());
        assert!(put(json!({"_dead_letter_queue_messages_ttl": null})).is_ok());
        assert!(put(json!({"anything": [1, {"x": null}]})).is_ok());
        for bad in [
            json!({"_default_message_ttl": 0}),
            json!({"_default_message_ttl": 59}),
            json!({"_default_message_ttl": 1_209_601}),
            json!({"_default_message_delay": 901}),
            json!({"_max_messages_post_size": 0}),
            json!({"_max_messages_post_size": 262_145}),
            json!({"_dead_letter_queue_messages_ttl": 0}),
            json!({"_dead_letter_queue_messages_ttl": 59}),
            json!({"_dead_letter_queue_messages_ttl": "123"}),
            json!({"_max_claim_count": "123"}),
            json!({"_enable_encrypt_messages": "yes"}),
            json!({"_retry_policy": 1}),
            json!({"_retry_policy": {"minimum_delay": 30, "maximum_delay": 5}}),
        ] {
            assert!(put(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_replace_absent_and_falsy_values() {
        let shown = with_defaults(
            object(json!({"_default_message_ttl": 0, "_max_claim_count": 3, "team": "a"})),
            Namespace::Queue,
            &Limits::default(),
        );
        assert_eq!(shown["_default_message_ttl"], 3600);
        assert_eq!(shown["_max_claim_count"], 3);
        assert_eq!(shown["_dead_letter_queue"], Value::Null);
        assert_eq!(shown["_enable_encrypt_messages"], false);
        assert_eq!(shown["team"], "a");
        assert_eq!(shown.len(), 8);
        let topic = with_defaults(Map::new(), Namespace::Topic, &Limits::default());
        assert_eq!(topic.len(), 3);
    }

    #[test]
    fn patches_are_checked_before_storage() {
        let ok = parse_patch(&json!([
            {"op": "add", "path": "/metadata/team", "value": "payments"},
            {"op": "replace", "path": "/METADATA/_default_message_ttl", "value": 300},
            {"op": "remove", "path": "/anything/_max_claim_count"}
        ]))
        .unwrap();
        assert_eq!(ok.len(), 3);
        for bad in [
            json!({}),
            json!([1]),
            json!([{"path": "/metadata/a", "value": 1}]),
            json!([{"op": "a", "path": "/metadata/a", "value": 1}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "add", "path": "/a", "value": 1}]),
            json!([{"op": "add", "path": "metadata/a", "value": 1}]),
            json!([{"op": "add", "path": "/metadata//a", "value": 1}]),
            json!([{"op": "add", "path": "/metadata/a/", "value": 1}]),
            json!([{"op": "add", "path": "/metadata/~2", "value": 1}]),
            json!([{"op": "add", "path": "/metadata/a"}]),
            json!([{"op": "add", "path": "/other/a", "value": 1}]),
        ] {
            assert!(parse_patch(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_apply_in_order_with_zaqar_conflicts() {
        let limits = Limits::default();
        let stored = object(json!({"team": "a", "_max_claim_count": 3}));
        let changes = parse_patch(&json!([
            {"op": "add", "path": "/metadata/new", "value": 1},
            {"op": "replace", "path": "/metadata/new", "value": 2},
            {"op": "replace", "path": "/metadata/_default_message_ttl", "value": 300},
            {"op": "remove", "path": "/metadata/_max_claim_count"},
            {"op": "remove", "path": "/metadata/_dead_letter_queue"}
        ]))
        .unwrap();
        let result = apply_patch(&stored, changes, Namespace::Queue, &limits).unwrap();
        assert_eq!(
            Value::Object(result),
            json!({"team": "a", "new": 2, "_default_message_ttl": 300})
        );
        for conflict in [
            json!([{"op": "replace", "path": "/metadata/missing", "value": 1}]),
            json!([{"op": "remove", "path": "/metadata/missing"}]),
        ] {
            let changes = parse_patch(&conflict).unwrap();
            let error = apply_patch(&stored, changes, Namespace::Queue, &limits).unwrap_err();
            assert_eq!(error.status().as_u16(), 409);
        }
        let topic_change =
            parse_patch(&json!([{"op": "remove", "path": "/metadata/_max_claim_count"}])).unwrap();
        assert!(apply_patch(&Map::new(), topic_change, Namespace::Topic, &limits).is_err());
    }
}
