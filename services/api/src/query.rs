//! Query-string parameters with Zaqar's rules (contract §1.6): empty values
//! are dropped, integers allow whitespace and a sign, booleans take Python's
//! spellings, lists split on raw commas (a `%2C` does not split).

use crate::error::ApiError;

/// The parsed query string of a request.
#[derive(Clone, Debug, Default)]
pub struct QueryParams {
    /// Decoded names with their raw (still encoded) values, in order.
    pairs: Vec<(String, String)>,
}

fn decode(raw: &str) -> String {
    form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(query: Option<&str>) -> QueryParams {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (!value.is_empty()).then(|| (decode(name), value.to_string()))
            })
            .collect();
        QueryParams { pairs }
    }

    /// Whether the parameter was given (with a non-empty value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(key, _)| key == name)
    }

    /// The decoded value of the last occurrence of a parameter.
    pub fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| decode(value))
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse_int(&value).map(Some).ok_or_else(|| {
            ApiError::bad_param(format!(
                "The \"{name}\" parameter is invalid. The value must be an integer."
            ))
        })
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.as_str() {
            "true" | "True" | "t" | "yes" | "y" | "1" | "on" => Ok(Some(true)),
            "false" | "False" | "f" | "no" | "n" | "0" | "off" => Ok(Some(false)),
            _ => Err(ApiError::bad_param(format!(
                "The \"{name}\" parameter is invalid. The value of the parameter must be \
                 \"true\" or \"false\"."
            ))),
        }
    }

    /// A list parameter: every occurrence, split on raw commas, empty
    /// elements dropped. `None` when absent.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .pairs
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .filter(|element| !element.is_empty())
            .map(decode)
            .filter(|element| !element.is_empty())
            .collect();
        self.has(name).then_some(values)
    }

    /// Every parameter not in `known`, decoded, for metadata filters.
    pub fn others(&self, known: &[&str]) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(key, _)| !known.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), decode(value)))
            .collect()
    }
}

/// Parses an integer like Python's `int()`: surrounding whitespace and a
/// sign allowed. Values beyond 64 bits saturate (they fail range checks).
pub fn parse_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    match trimmed.parse::<i64>() {
        Ok(value) => Some(value),
        Err(_) if trimmed.starts_with('-') => Some(i64::MIN),
        Err(_) => Some(i64::MAX),
    }
}

/// Default page size of every collection and claim.
pub const DEFAULT_LIMIT: u32 = 10;

/// How Zaqar words a bad `limit`: queues, topics, pools and flavors say
/// "no greater than", messages, claims and subscriptions "may not be
/// greater than".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitWording {
    /// `Limit must be at least 1 and no greater than N.`
    NoGreater,
    /// `Limit must be at least 1 and may not be greater than N.`
    MayNot,
}

/// The 400 for a limit outside 1..=`max`.
pub fn limit_error(max: u32, wording: LimitWording) -> ApiError {
    ApiError::invalid(match wording {
        LimitWording::NoGreater => format!("Limit must be at least 1 and no greater than {max}."),
        LimitWording::MayNot => {
            format!("Limit must be at least 1 and may not be greater than {max}.")
        }
    })
}

/// Checks an optional `limit` against 1..=`max`; returns the effective
/// limit (the default when absent).
pub fn page_limit(limit: Option<i64>, max: u32, wording: LimitWording) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=i64::from(max)).contains(&limit) => Ok(limit as u32),
        Some(_) => Err(limit_error(max, wording)),
    }
}

/// The paging parameters a request supplied, in the order they were read,
/// to rebuild its `next` link.
#[derive(Clone, Debug, Default)]
pub struct LinkParams(Vec<(&'static str, String)>);

impl LinkParams {
    /// No parameters yet.
    pub fn new() -> LinkParams {
        LinkParams::default()
    }

    /// Adds a parameter when the request supplied it.
    pub fn with(mut self, name: &'static str, value: Option<impl ToString>) -> LinkParams {
        if let Some(value) = value {
            self.0.push((name, value.to_string()));
        }
        self
    }

    /// The `next` link for a page ending at `marker`.
    pub fn link(&self, path: &str, marker: &str) -> String {
        next_link(path, &self.0, marker)
    }
}

/// Builds a `next` link: `path` plus the given parameters in order, with
/// `marker` replaced in place or appended.
pub fn next_link(path: &str, params: &[(&str, String)], marker: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut marker_written = false;
    for (name, value) in params {
        if *name == "marker" {
            query.append_pair("marker", marker);
            marker_written = true;
        } else {
            query.append_pair(name, value);
        }
    }
    if !marker_written {
        query.append_pair("marker", marker);
    }
    format!("{path}?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_default_and_bound() {
        assert_eq!(page_limit(None, 20, LimitWording::NoGreater).unwrap(), 10);
        assert_eq!(
            page_limit(Some(20), 20, LimitWording::NoGreater).unwrap(),
            20
        );
        for bad in [0, -5, 21] {
            assert!(page_limit(Some(bad), 20, LimitWording::MayNot).is_err());
        }
        assert!(
            limit_error(20, LimitWording::NoGreater)
                .to_string()
                .contains("no greater than 20")
        );
    }

    #[test]
    fn empty_values_are_dropped() {
        let query = QueryParams::parse(Some("marker=&limit=5"));
        assert!(!query.has("marker"));
        assert_eq!(query.int("limit").unwrap(), Some(5));
    }

    #[test]
    fn integers_follow_python() {
        assert_eq!(parse_int(" 5 "), Some(5));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("5.0"), None);
        assert_eq!(parse_int(" "), None);
        assert_eq!(parse_int("99999999999999999999"), Some(i64::MAX));
        let query = QueryParams::parse(Some("limit=+5&pop=%20"));
        assert_eq!(query.int("limit").unwrap(), Some(5));
        assert!(query.int("pop").is_err());
    }

    #[test]
    fn booleans_follow_python() {
        let query = QueryParams::parse(Some("a=True&b=off&c=TRUE&d=None"));
        assert_eq!(query.bool("a").unwrap(), Some(true));
        assert_eq!(query.bool("b").unwrap(), Some(false));
        assert!(query.bool("c").is_err());
        assert!(query.bool("d").is_err());
        assert_eq!(query.bool("missing").unwrap(), None);
    }

    #[test]
    fn lists_split_on_raw_commas_and_repeat() {
        let query = QueryParams::parse(Some("ids=a,,b&ids=c&x=1%2C2"));
        assert_eq!(query.list("ids").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(query.list("x").unwrap(), vec!["1,2"]);
        assert!(query.list("none").is_none());
    }

    #[test]
    fn next_links_keep_order_and_set_the_marker() {
        let link = next_link(
            "/v2/queues",
            &[("limit", "2".into()), ("detailed", "true".into())],
            "orders",
        );
        assert_eq!(link, "/v2/queues?limit=2&detailed=true&marker=orders");
        let link = next_link(
            "/v2/queues",
            &[("marker", "a".into()), ("limit", "2".into())],
            "b c",
        );
        assert_eq!(link, "/v2/queues?marker=b+c&limit=2");
    }
}
