//! Pre-signed URLs (contract §7): issuing grants with `POST .../share` and
//! verifying requests that carry `URL-Signature`.
//!
//! The signature is the lowercase hex HMAC-SHA256, under the configured
//! secret key, of `paths\nmethods\nproject\nexpires` — where `\n` is the two
//! characters backslash and `n`, as Zaqar computes it — with paths and
//! methods sorted and comma-joined, `None` for an absent project, and the
//! expiry normalised to UTC `YYYY-MM-DDTHH:MM:SS`.

use axum::http::{HeaderMap, Method};
use hmac::{KeyInit, Mac};

use crate::error::ApiError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Computes a grant's signature.
pub fn signature(
    key: &str,
    paths: &[String],
    methods: &[String],
    project: Option<&str>,
    expires: &str,
) -> String {
    let mut paths = paths.to_vec();
    paths.sort();
    let mut methods = methods.to_vec();
    methods.sort();
    let message = format!(
        "{}\\n{}\\n{}\\n{}",
        paths.join(","),
        methods.join(","),
        project.unwrap_or("None"),
        expires
    );
    let mut mac = match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot fail.
        Err(_) => return String::new(),
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Days from 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Parses an ISO 8601 timestamp (`T` or space; optional fraction; optional
/// `Z` or `±HH:MM`; none means UTC; a bare date means midnight) into Unix
/// seconds, dropping sub-seconds.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = match text.find(['T', ' ']) {
        Some(split) => (&text[..split], Some(&text[split + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year = number(parts.next()?)?;
    let month = number(parts.next()?)?;
    let day = number(parts.next()?)?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = rest {
        let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
            (clock, 0)
        } else if let Some(split) = time.rfind(['+', '-']) {
            let (clock, zone) = time.split_at(split);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let zone = zone[1..].replace(':', "");
            if zone.len() != 4 {
                return None;
            }
            let hours = number(&zone[..2])?;
            let minutes = number(&zone[2..])?;
            (clock, sign * (hours * 3600 + minutes * 60))
        } else {
            (time, 0)
        };
        let clock = clock.split('.').next()?;
        let mut fields = clock.split(':');
        let hour = number(fields.next()?)?;
        let minute = number(fields.next()?)?;
        let second = fields.next().map(number).unwrap_or(Some(0))?;
        if fields.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds += hour * 3600 + minute * 60 + second - offset;
    }
    Some(seconds)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SS` (UTC, no zone).
pub fn format_expires(seconds: i64) -> String {
    crate::present::iso8601(seconds)
        .trim_end_matches('Z')
        .to_string()
}

pub(crate) fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

/// Whether `path` is covered by a granted `prefix`: equal, or below it.
fn covers(prefix: &str, path: &str) -> bool {
    !prefix.is_empty()
        && (path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Verifies a request that carries `URL-Signature`; every failure is the
/// bare 404 Zaqar answers.
pub fn verify(
    key: Option<&str>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    verify_at(key, method, path, headers, now_seconds())
}

fn verify_at(
    key: Option<&str>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    now: i64,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let list = |name: &str| -> Vec<String> {
        header(name)
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let methods = list("url-methods");
    let paths = list("url-paths");
    if !methods.iter().any(|granted| granted == method.as_str()) {
        return Err(ApiError::NoRoute);
    }
    if !paths.iter().any(|granted| covers(granted, path)) {
        return Err(ApiError::NoRoute);
    }
    let Some(key) = key else {
        return Err(ApiError::NoRoute);
    };
    let expires = header("url-expires")
        .filter(|text| text.trim().parse::<i64>().is_err())
        .and_then(parse_iso8601)
        .filter(|expires| *expires > now)
        .ok_or(ApiError::NoRoute)?;
    let project = header("x-project-id");
    let expected = signature(key, &paths, &methods, project, &format_expires(expires));
    let given = header("url-signature").unwrap_or("");
    if given.len() != expected.len() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::NoRoute);
    }
    Ok(())
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A grant issued by `POST .../share`.
pub struct Grant {
    /// Full paths, sorted.
    pub paths: Vec<String>,
    /// Methods, sorted.
    pub methods: Vec<String>,
    /// Expiry, `YYYY-MM-DDTHH:MM:SS` UTC.
    pub expires: String,
    /// The signature.
    pub signature: String,
}

/// Checks a share request body and signs the grant (contract §2.1.8).
pub fn issue(
    key: Option<&str>,
    queue_path: &str,
    project: &str,
    document: &serde_json::Map<String, serde_json::Value>,
) -> Result<Grant, ApiError> {
    use serde_json::Value;
    let unknown: Vec<&String> = document
        .keys()
        .filter(|name| !matches!(name.as_str(), "paths" | "methods" | "expires"))
        .collect();
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|name| format!("'{name}'")).collect();
        return Err(ApiError::invalid(format!(
            "Unknown keys: {{{}}}",
            names.join(", ")
        )));
    }
    let strings = |value: Option<&Value>, field: &str| -> Result<Vec<String>, ApiError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| item.to_string())
                })
                .collect()),
            Some(_) => Err(ApiError::invalid(format!("`{field}` should be a list"))),
        }
    };
    let mut names = strings(document.get("paths"), "paths")?;
    if names.is_empty() {
        names.push("messages".into());
    }
    let invalid: Vec<String> = names
        .iter()
        .filter(|name| !matches!(name.as_str(), "messages" | "subscriptions" | "claims"))
        .map(|name| format!("'{name}'"))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::invalid(format!(
            "Invalid paths: {{{}}}",
            invalid.join(", ")
        )));
    }
    let mut methods = strings(document.get("methods"), "methods")?;
    if methods.is_empty() {
        methods.push("GET".into());
    }
    let now = now_seconds();
    let expires = match document.get("expires") {
        None | Some(Value::Null) => now + 86_400,
        Some(Value::Number(number)) => {
            return Err(ApiError::invalid(format!(
                "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: {number}"
            )));
        }
        Some(Value::String(text)) => {
            if text.trim().parse::<i64>().is_ok() {
                return Err(ApiError::invalid(format!(
                    "`expires` should be date format, for example 2016-01-01T00:00:00, not integer value: {text}"
                )));
            }
            parse_iso8601(text).ok_or_else(|| {
                ApiError::invalid(format!("Unable to parse the `expires` value: {text}"))
            })?
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Unable to parse the `expires` value: {other}"
            )));
        }
    };
    if expires <= now {
        return Err(ApiError::invalid(
            "`expires` is lower than the current time",
        ));
    }
    let Some(key) = key else {
        return Err(ApiError::invalid("The `key` can't be None"));
    };
    let mut paths: Vec<String> = names
        .iter()
        .map(|name| format!("{queue_path}/{name}"))
        .collect();
    paths.sort();
    paths.dedup();
    methods.sort();
    let expires = format_expires(expires);
    let signature = signature(key, &paths, &methods, Some(project), &expires);
    Ok(Grant {
        paths,
        methods,
        expires,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn the_contract_test_vectors() {
        assert_eq!(
            signature(
                "test",
                &strings(&["/v2/queues/q/messages"]),
                &strings(&["POST", "GET"]),
                Some("p1"),
                "2030-01-01T00:00:00"
            ),
            "aa82d9131507cd99eb3688728beeec363cbc431ed2256b605c0343e56174cd6a"
        );
        assert_eq!(
            signature(
                "test",
                &strings(&[
                    "/v2/queues/shared/subscriptions",
                    "/v2/queues/shared/messages"
                ]),
                &strings(&["GET"]),
                Some("518b51ea133c4facadae42c328d6b77b"),
                "2030-06-15T12:30:00"
            ),
            "2dc340e9a9293d6b33f4b4ddb2bde5f4cf0398e65cff0d0ea2bec43828d6c1ea"
        );
        assert_eq!(
            signature(
                "s3cr3t",
                &strings(&["/v2/queues/q/messages"]),
                &strings(&["GET"]),
                None,
                "2030-01-01T00:00:00"
            ),
            "386d4600e744888daeebca2d818ac4424f30220248b167b3018ecdb7c4c64578"
        );
        assert_eq!(
            signature(
                "s3cr3t",
                &strings(&["/v2/queues/jobs/subscriptions/5f1e0c2a9d3e4b0001a1b2c3/confirm"]),
                &strings(&["PUT"]),
                Some("proj-a"),
                "2030-01-01T00:00:00"
            ),
            "84ec28771787af5e0535a3bb3468e9eaf18d43272440470a6da815872cde9f6b"
        );
    }

    #[test]
    fn timestamps_normalise_to_utc_seconds() {
        let base = parse_iso8601("2030-01-01T00:00:00").unwrap();
        assert_eq!(format_expires(base), "2030-01-01T00:00:00");
        assert_eq!(parse_iso8601("2030-01-01 00:00:00.999"), Some(base));
        assert_eq!(parse_iso8601("2030-01-01T00:00:00Z"), Some(base));
        assert_eq!(parse_iso8601("2030-01-01T02:00:00+02:00"), Some(base));
        assert_eq!(parse_iso8601("2029-12-31T22:30:00-01:30"), Some(base));
        assert_eq!(parse_iso8601("2030-01-01"), Some(base));
        assert_eq!(parse_iso8601("not a date"), None);
        assert_eq!(parse_iso8601("2030-13-01T00:00:00"), None);
    }

    fn signed_headers(expires: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("url-methods", HeaderValue::from_static("GET,POST"));
        headers.insert(
            "url-paths",
            HeaderValue::from_static("/v2/queues/q/messages"),
        );
        headers.insert("x-project-id", HeaderValue::from_static("p1"));
        headers.insert("url-expires", HeaderValue::from_str(expires).unwrap());
        headers.insert("url-signature", HeaderValue::from_str(signature).unwrap());
        headers
    }

    #[test]
    fn verification_checks_method_path_expiry_and_signature() {
        let good = "aa82d9131507cd99eb3688728beeec363cbc431ed2256b605c0343e56174cd6a";
        let headers = signed_headers("2030-01-01T00:00:00", good);
        let now = parse_iso8601("2029-01-01T00:00:00").unwrap();
        let path = "/v2/queues/q/messages";
        assert!(verify_at(Some("test"), &Method::GET, path, &headers, now).is_ok());
        assert!(
            verify_at(
                Some("test"),
                &Method::GET,
                "/v2/queues/q/messages/abc",
                &headers,
                now
            )
            .is_ok()
        );
        assert!(
            verify_at(Some("test"), &Method::DELETE, path, &headers, now).is_err(),
            "method"
        );
        assert!(
            verify_at(
                Some("test"),
                &Method::GET,
                "/v2/queues/q/claims",
                &headers,
                now
            )
            .is_err(),
            "path"
        );
        assert!(
            verify_at(
                Some("test"),
                &Method::GET,
                "/v2/queues/q/messagesX",
                &headers,
                now
            )
            .is_err(),
            "prefix"
        );
        assert!(
            verify_at(Some("other"), &Method::GET, path, &headers, now).is_err(),
            "key"
        );
        assert!(
            verify_at(None, &Method::GET, path, &headers, now).is_err(),
            "no key"
        );
        let later = parse_iso8601("2031-01-01T00:00:00").unwrap();
        assert!(
            verify_at(Some("test"), &Method::GET, path, &headers, later).is_err(),
            "expired"
        );
        for tampered in [&good[..63], "", &good.replace('a', "b")] {
            let headers = signed_headers("2030-01-01T00:00:00", tampered);
            assert!(verify_at(Some("test"), &Method::GET, path, &headers, now).is_err());
        }
        let headers = signed_headers("1893456000", good);
        assert!(
            verify_at(Some("test"), &Method::GET, path, &headers, now).is_err(),
            "integer expiry"
        );
    }
}
