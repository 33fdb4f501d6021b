//! Request bodies: reading with a size limit, and JSON with Zaqar's rules
//! (contract §1.5): an object or array at top level, integers within 64 bits.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A request body as sent.
#[derive(Debug)]
pub enum RawBody {
    /// No `Content-Length` and no bytes: the client sent no body.
    Absent,
    /// The bytes sent (possibly empty with `Content-Length: 0`).
    Present(Bytes),
}

impl RawBody {
    /// The bytes, or `None` when absent or empty.
    pub fn non_empty(&self) -> Option<&Bytes> {
        match self {
            RawBody::Present(bytes) if !bytes.is_empty() => Some(bytes),
            _ => None,
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        match self {
            RawBody::Absent => 0,
            RawBody::Present(bytes) => bytes.len(),
        }
    }

    /// Whether no bytes were sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of a required body: absent is `Request body can not be empty`.
    pub fn required(&self) -> ApiResult<&Bytes> {
        match self {
            RawBody::Absent => Err(ApiError::bad_body("Request body can not be empty")),
            RawBody::Present(bytes) => Ok(bytes),
        }
    }
}

/// The declared `Content-Length`, if any.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Reads a body of at most `limit` bytes; a larger one (by its declared
/// length, or as streamed) is answered with `too_large()`.
pub async fn read(
    mut body: Body,
    headers: &HeaderMap,
    limit: u64,
    too_large: impl FnOnce() -> ApiError,
) -> ApiResult<RawBody> {
    let declared = content_length(headers);
    if declared.is_some_and(|length| length > limit) {
        drain(body).await;
        return Err(too_large());
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::bad_body("Request body could not be read."))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > cap {
                drain(body).await;
                return Err(too_large());
            }
            bytes.extend_from_slice(data);
        }
    }
    if declared.is_none() && bytes.is_empty() {
        Ok(RawBody::Absent)
    } else {
        Ok(RawBody::Present(bytes.freeze()))
    }
}

/// Most bytes of a refused body read and dropped, so that clients writing
/// the whole body before reading the answer get the 400 instead of a reset.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// Reads and drops up to [`DRAIN_CAP`] bytes of a body.
async fn drain(mut body: Body) {
    let mut seen = 0usize;
    while seen < DRAIN_CAP {
        match body.frame().await {
            Some(Ok(frame)) => {
                seen += frame.data_ref().map(|data| data.len()).unwrap_or_default();
            }
            _ => return,
        }
    }
}

/// `Request body could not be parsed.`
pub fn unparsable() -> ApiError {
    ApiError::bad_body("Request body could not be parsed.")
}

/// `Document type not supported.`
pub fn unsupported_document() -> ApiError {
    ApiError::bad_body("Document type not supported.")
}

/// Parses a JSON document whose top level must be an object or an array.
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(bytes).map_err(|_| unparsable())?;
    check_top_level(text)?;
    check_integers(text)?;
    serde_json::from_str(text).map_err(|_| unparsable())
}

/// Fails unless the first significant character opens an object or array.
pub fn check_top_level(text: &str) -> ApiResult<()> {
    match text.trim_start().as_bytes().first() {
        Some(b'{') | Some(b'[') => Ok(()),
        _ => Err(unparsable()),
    }
}

/// Fails with `JSON contains integer that is too large.` when an integer
/// literal outside strings does not fit in 64 signed bits.
pub fn check_integers(text: &str) -> ApiResult<()> {
    // Fast path: no run of 19 digits means every integer fits.
    if !has_digit_run(text.as_bytes(), 19) {
        return Ok(());
    }
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    index += 1;
                }
                index += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = index;
                index += 1;
                while index < bytes.len()
                    && matches!(bytes[index], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    index += 1;
                }
                let literal = &text[start..index];
                let integral = !literal.contains(['.', 'e', 'E']);
                if integral && literal.parse::<i64>().is_err() {
                    return Err(ApiError::bad_body(
                        "JSON contains integer that is too large.",
                    ));
                }
            }
            _ => index += 1,
        }
    }
    Ok(())
}

/// Whether `bytes` holds a run of at least `len` (> 0) ASCII digits. Only
/// every `len`-th byte is probed until one is a digit: a run that long
/// covers a probe, so text without such runs is skipped `len` bytes at a time.
fn has_digit_run(bytes: &[u8], len: usize) -> bool {
    let mut probe = len.saturating_sub(1);
    while probe < bytes.len() {
        if !bytes[probe].is_ascii_digit() {
            probe += len;
            continue;
        }
        let mut start = probe;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        let mut end = probe + 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end - start >= len {
            return true;
        }
        // bytes[end] is not a digit: the next long run starts after it.
        probe = end + len;
    }
    false
}

/// Reads a JSON integer the way Zaqar does: integers, and booleans as 0/1.
pub fn json_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

/// `The value of the "<field>" field must be a <type>.`, with the Python
/// type name (`int`, `str`, `dict`, `list`).
pub fn wrong_type(field: &str, python_type: &str) -> ApiError {
    ApiError::bad_body(format!(
        "The value of the \"{field}\" field must be a {python_type}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probing scan agrees with a plain count on every mix of digits
    /// and other bytes around the threshold.
    #[test]
    fn digit_runs_are_found_wherever_they_sit() {
        let naive = |bytes: &[u8], len: usize| {
            let mut run = 0;
            bytes.iter().any(|byte| {
                run = if byte.is_ascii_digit() { run + 1 } else { 0 };
                run >= len
            })
        };
        // Deterministic pseudo-random texts of digits and letters.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for case in 0..20_000 {
            let size = case % 90;
            let digit_bias = case % 7;
            let text: Vec<u8> = (0..size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if seed % 8 < digit_bias as u64 + 1 {
                        b'7'
                    } else {
                        b'x'
                    }
                })
                .collect();
            for len in [1, 2, 5, 19] {
                assert_eq!(
                    has_digit_run(&text, len),
                    naive(&text, len),
                    "{:?} {len}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
        assert!(has_digit_run(b"{\"n\": 1234567890123456789}", 19));
        assert!(!has_digit_run(b"{\"n\": 123456789012345678}", 19));
    }

    #[test]
    fn top_level_must_be_object_or_array() {
        assert!(parse_json(b"{}").is_ok());
        assert!(parse_json(b" [1]").is_ok());
        for bad in [
            &b"123"[..],
            b"\"x\"",
            b"null",
            b"[",
            b".",
            b"",
            b"  ",
            b"\xff",
        ] {
            assert!(parse_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oversized_integers_are_refused() {
        assert!(parse_json(b"{\"a\": 9223372036854775807}").is_ok());
        assert!(parse_json(b"{\"a\": -9223372036854775808}").is_ok());
        let error = parse_json(b"{\"a\": 9223372036854775808}").unwrap_err();
        assert!(error.to_string().contains("too large"));
        assert!(parse_json(b"{\"a\": -99999999999999999999}").is_err());
        assert!(parse_json(b"{\"a\": \"99999999999999999999\"}").is_ok());
        assert!(parse_json(b"{\"a\": 1.99999999999999999999}").is_ok());
        assert!(parse_json(b"{\"a\": 1e99999999999999999999}").is_err());
    }
}
