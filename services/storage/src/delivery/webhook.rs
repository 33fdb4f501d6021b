//! What a notification looks like (contract §6.2) and how a webhook is
//! called.

use std::time::Duration;

use serde_json::Value;

/// The token `post_data` templates replace, with its surrounding quotes.
const TEMPLATE_TOKEN: &str = "\"$zaqar_message$\"";

/// The notification document for one posted message: the message as
/// accepted (`ttl` with the default applied, `body`, and `delay` on delay
/// queues) plus `Message_Type` and `queue_name`.
pub fn notification(queue_name: &str, ttl: i64, delay: i64, body: &str) -> String {
    let name = Value::String(queue_name.to_string());
    let delay = if delay >= 0 {
        format!("\"delay\":{delay},")
    } else {
        String::new()
    };
    format!(
        "{{\"ttl\":{ttl},\"body\":{body},{delay}\"Message_Type\":\"Notification\",\"queue_name\":{name}}}"
    )
}

/// How a webhook subscriber is called, read from the subscription options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookOptions {
    /// Extra headers (`post_headers`), overriding the content type if named.
    pub headers: Vec<(String, String)>,
    /// The `post_data` template, if any.
    pub template: Option<String>,
}

impl WebhookOptions {
    /// Reads `post_headers` and `post_data` from the options JSON text.
    pub fn from_options(options: &str) -> WebhookOptions {
        let options: Value = serde_json::from_str(options).unwrap_or(Value::Null);
        let headers = options
            .get("post_headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| {
                        let value = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (name.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let template = options
            .get("post_data")
            .and_then(Value::as_str)
            .map(str::to_string);
        WebhookOptions { headers, template }
    }

    /// The request body for `document`: the document itself, or the
    /// template with every quoted token replaced by it.
    pub fn body(&self, document: &str) -> String {
        match &self.template {
            Some(template) => template.replace(TEMPLATE_TOKEN, document),
            None => document.to_string(),
        }
    }
}

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The subscriber accepted it (status below 400).
    Delivered,
    /// The subscriber refused it for good (4xx): not retried.
    Refused(String),
    /// A transient failure (5xx, transport error, timeout): retried.
    Failed(String),
}

/// Sends webhook notifications.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    /// A client whose attempts are cut off after `timeout`.
    pub fn new(timeout: Duration) -> Result<WebhookClient, String> {
        // TLS needs a process-wide crypto provider; installing one twice is
        // harmless (the first stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|error| format!("cannot build the webhook client: {error}"))?;
        Ok(WebhookClient { http })
    }

    /// POSTs `body` to `url` with the JSON content type and `headers`.
    pub async fn post(&self, url: &str, headers: &[(String, String)], body: String) -> Outcome {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                if status.as_u16() < 400 {
                    Outcome::Delivered
                } else if status.is_client_error() {
                    Outcome::Refused(format!("{url} answered {status}"))
                } else {
                    Outcome::Failed(format!("{url} answered {status}"))
                }
            }
            Err(error) => Outcome::Failed(format!("{url}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_the_message_and_the_queue() {
        let doc = notification("orders", 300, -1, r#"{"event":"x"}"#);
        let value: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"ttl": 300, "body": {"event": "x"},
                "Message_Type": "Notification", "queue_name": "orders"})
        );
        let delayed: Value = serde_json::from_str(&notification("q", 60, 0, "1")).unwrap();
        assert_eq!(delayed["delay"], 0);
    }

    #[test]
    fn templates_replace_the_quoted_token() {
        let options = WebhookOptions::from_options(
            r#"{"post_data": "{\"alarm\": \"$zaqar_message$\", \"src\": \"zaqar\", \"raw\": \"$zaqar_message$x\"}",
                "post_headers": {"X-Token": "abc", "X-Count": 3}}"#,
        );
        let mut headers = options.headers.clone();
        headers.sort();
        assert_eq!(
            headers,
            vec![
                ("X-Count".to_string(), "3".to_string()),
                ("X-Token".to_string(), "abc".to_string())
            ]
        );
        let body = options.body(r#"{"ttl":1}"#);
        assert_eq!(
            body,
            r#"{"alarm": {"ttl":1}, "src": "zaqar", "raw": "$zaqar_message$x"}"#
        );
        assert_eq!(WebhookOptions::from_options("{}").body("D"), "D");
    }
}
