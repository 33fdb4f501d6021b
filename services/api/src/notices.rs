//! What the API tier asks subscribers (contract §6.5): confirmation and
//! unsubscribe requests, signed with the pre-signed URL key and handed to
//! the queue's pool for delivery.

use serde_json::{Map, Value, json};
use zaqar_proto::model::{MailContent, Notice, NotifyMode, Scope};

use crate::config::{ApiConfig, NotificationConfig};
use crate::present;
use crate::signed;

/// Which request a subscriber is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// "Please confirm" after a subscription is created.
    Subscribe,
    /// "You have unsubscribed" after `confirmed: false`.
    Unsubscribe,
}

/// Which subscriptions a post notifies under `config`.
pub fn notify_mode(config: &NotificationConfig) -> NotifyMode {
    match (config.enabled, config.require_confirmation) {
        (false, _) => NotifyMode::None,
        (true, false) => NotifyMode::All,
        (true, true) => NotifyMode::Confirmed,
    }
}

/// The notice for subscription `id` of `scope`, whose subscriber is
/// `subscriber`, valid for `ttl` seconds; `None` when confirmation is not
/// required or cannot be signed (no secret key: logged).
pub fn confirmation(
    config: &ApiConfig,
    scope: &Scope,
    id: &str,
    subscriber: &str,
    ttl: i64,
    request: Request,
) -> Option<Notice> {
    let notification = &config.notification;
    if !notification.require_confirmation {
        return None;
    }
    let Some(key) = config.signed_url_secret_key.as_deref() else {
        tracing::error!("cannot send a confirmation request: signed_url_secret_key is not set");
        return None;
    };
    let path = format!(
        "{}/subscriptions/{id}/confirm",
        present::resource_path(scope)
    );
    let expires = signed::format_expires(signed::now_seconds().saturating_add(ttl.max(0)));
    let methods = vec!["PUT".to_string()];
    let signature = signed::signature(
        key,
        std::slice::from_ref(&path),
        &methods,
        Some(scope.project()),
        &expires,
    );
    let url = notification
        .public_endpoint
        .as_deref()
        .map(|endpoint| format!("{}{path}", endpoint.trim_end_matches('/')));
    let queue = scope.name();
    let (kind, message) = match request {
        Request::Subscribe => (
            "SubscriptionConfirmation",
            format!("You have chosen to subscribe to the queue: {queue}"),
        ),
        Request::Unsubscribe => (
            "UnsubscribeConfirmation",
            format!(
                "You have unsubscribed successfully to the queue: {queue}, you can resubscribe \
                 it by using confirmed=True."
            ),
        ),
    };
    let mut document = Map::new();
    if let Some(url) = &url {
        document.insert("WSGISubscribeURL".into(), Value::String(url.clone()));
    }
    for (name, value) in [
        ("Message_Type", json!(kind)),
        ("Message", json!(message)),
        ("URL-Signature", json!(signature)),
        ("URL-Methods", json!("PUT")),
        ("URL-Paths", json!(path)),
        ("X-Project-ID", json!(scope.project())),
        ("URL-Expires", json!(expires)),
        ("SubscribeBody", json!({"confirmed": true})),
        ("UnsubscribeBody", json!({"confirmed": false})),
        ("queue_name", json!(queue)),
    ] {
        document.insert(name.into(), value);
    }
    let mail = match (
        subscriber.starts_with("mailto:"),
        &notification.external_confirmation_url,
    ) {
        (true, Some(page)) => {
            let link = format!(
                "{page}?Signature={signature}&Methods=PUT&Paths={path}&Project={}&Expires={expires}&Url={}&Queue={queue}",
                scope.project(),
                url.as_deref().unwrap_or_default()
            );
            let (subject, body) = match request {
                Request::Subscribe => (
                    &notification.subscription_confirmation_subject,
                    &notification.subscription_confirmation_body,
                ),
                Request::Unsubscribe => (
                    &notification.unsubscribe_confirmation_subject,
                    &notification.unsubscribe_confirmation_body,
                ),
            };
            let body = body
                .replace("{0}", queue)
                .replace("{1}", scope.project())
                .replace("{2}", &link);
            Some(MailContent {
                subject: subject.clone(),
                from: notification.subscription_confirmation_sender.clone(),
                body,
            })
        }
        _ => None,
    };
    Some(Notice {
        document: Value::Object(document).to_string(),
        mail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: Option<&str>) -> ApiConfig {
        let mut config = ApiConfig {
            signed_url_secret_key: key.map(str::to_string),
            ..ApiConfig::default()
        };
        config.notification.require_confirmation = true;
        config.notification.public_endpoint = Some("https://zaqar.example.com:8888/".into());
        config.notification.external_confirmation_url = Some("https://confirm.example.com".into());
        config
    }

    #[test]
    fn confirmation_requests_are_signed_grants_for_the_confirm_path() {
        let config = config(Some("secret"));
        let scope = Scope::queue("p1", "orders").unwrap();
        let notice =
            confirmation(&config, &scope, "abc", "http://x", 300, Request::Subscribe).unwrap();
        let doc: Value = serde_json::from_str(&notice.document).unwrap();
        let path = "/v2/queues/orders/subscriptions/abc/confirm";
        assert_eq!(doc["URL-Paths"], path);
        assert_eq!(doc["URL-Methods"], "PUT");
        assert_eq!(doc["X-Project-ID"], "p1");
        assert_eq!(doc["Message_Type"], "SubscriptionConfirmation");
        assert_eq!(doc["queue_name"], "orders");
        assert_eq!(
            doc["WSGISubscribeURL"],
            format!("https://zaqar.example.com:8888{path}")
        );
        let expected = signed::signature(
            "secret",
            &[path.to_string()],
            &["PUT".to_string()],
            Some("p1"),
            doc["URL-Expires"].as_str().unwrap(),
        );
        assert_eq!(doc["URL-Signature"], expected);
        assert!(notice.mail.is_none(), "webhooks get no e-mail");
    }

    #[test]
    fn mail_subscribers_get_the_templated_e_mail() {
        let config = config(Some("secret"));
        let scope = Scope::queue("p1", "orders").unwrap();
        let notice = confirmation(
            &config,
            &scope,
            "abc",
            "mailto:a@b.c",
            60,
            Request::Unsubscribe,
        )
        .unwrap();
        let mail = notice.mail.unwrap();
        assert_eq!(
            mail.subject,
            "Zaqar Notification - Unsubscribe Confirmation"
        );
        assert!(mail.body.contains("queue: orders."), "{}", mail.body);
        assert!(
            mail.body.contains("https://confirm.example.com?Signature="),
            "{}",
            mail.body
        );
        let doc: Value = serde_json::from_str(&notice.document).unwrap();
        assert_eq!(doc["Message_Type"], "UnsubscribeConfirmation");
    }

    #[test]
    fn nothing_is_sent_without_a_key_or_when_not_required() {
        let scope = Scope::queue("p1", "orders").unwrap();
        assert!(
            confirmation(
                &config(None),
                &scope,
                "a",
                "http://x",
                60,
                Request::Subscribe
            )
            .is_none()
        );
        let mut relaxed = config(Some("k"));
        relaxed.notification.require_confirmation = false;
        assert!(confirmation(&relaxed, &scope, "a", "http://x", 60, Request::Subscribe).is_none());
        assert_eq!(notify_mode(&relaxed.notification), NotifyMode::All);
        relaxed.notification.enabled = false;
        assert_eq!(notify_mode(&relaxed.notification), NotifyMode::None);
    }
}
