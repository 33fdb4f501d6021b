//! `mailto:` subscribers (contract §6.6): the e-mail is piped to a
//! sendmail-compatible command, or sent to an SMTP server.

use std::process::Stdio;
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::webhook::Outcome;

/// An e-mail to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The sender (may be empty).
    pub from: String,
    /// The subject (may be empty).
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl Mail {
    /// A notification e-mail for a `mailto:` subscriber: `To` from the URI,
    /// `Subject` from its `subject` parameter (any case) or the options',
    /// `From` from the options.
    pub fn notification(subscriber: &str, options: &str, body: &str) -> Option<Mail> {
        let rest = subscriber.strip_prefix("mailto:")?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let options: Value = serde_json::from_str(options).unwrap_or(Value::Null);
        let option = |key: &str| {
            options
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let subject = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key.eq_ignore_ascii_case("subject"))
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| option("subject"));
        Some(Mail {
            to: percent_decode(address),
            from: option("from"),
            subject,
            body: body.to_string(),
        })
    }

    /// The RFC 822 text of the e-mail. Header values lose line breaks so a
    /// subscriber cannot inject headers.
    pub fn render(&self) -> String {
        let clean = |value: &str| value.replace(['\r', '\n'], " ");
        format!(
            "To: {}\r\nFrom: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            clean(&self.to),
            clean(&self.from),
            clean(&self.subject),
            self.body
        )
    }
}

/// The bare address of `Name <user@host>` or `user@host`.
fn address_of(text: &str) -> Option<Address> {
    let bare = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    bare.trim().parse().ok()
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// Sends e-mails by piping them to a command (`sendmail -t -oi` style: the
/// recipients are read from the headers).
#[derive(Clone, Debug)]
pub struct MailCommand {
    argv: Vec<String>,
    timeout: Duration,
}

impl MailCommand {
    /// A sender running `command` (split on whitespace), killed after
    /// `timeout`.
    pub fn new(command: &str, timeout: Duration) -> MailCommand {
        MailCommand {
            argv: command.split_whitespace().map(str::to_string).collect(),
            timeout,
        }
    }

    /// Pipes `mail` to the command; success is exit status 0.
    pub async fn send(&self, mail: &Mail) -> Outcome {
        let Some((program, args)) = self.argv.split_first() else {
            return Outcome::Refused("no mail command is configured".into());
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => return Outcome::Failed(format!("cannot run {program}: {error}")),
        };
        let text = mail.render();
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(text.as_bytes()).await?;
                stdin.shutdown().await?;
            }
            child.wait().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(status)) if status.success() => Outcome::Delivered,
            Ok(Ok(status)) => Outcome::Failed(format!("{program} exited with {status}")),
            Ok(Err(error)) => Outcome::Failed(format!("{program}: {error}")),
            Err(_) => Outcome::Failed(format!("{program} timed out")),
        }
    }
}

/// How e-mails leave (`[delivery] mail_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailMode {
    /// Piped to `mail_command` (Zaqar's `third_part`).
    #[default]
    Command,
    /// Sent to `smtp_host` (Zaqar's `self_local`).
    Smtp,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (SMTP over SSL, usually port 465).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS (usually port 587).
    Starttls,
    /// No encryption (a relay on a trusted network).
    None,
}

/// Settings of the SMTP server e-mails are sent to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the server (also checked against its certificate).
    pub host: String,
    /// Port of the server.
    pub port: u16,
    /// Connection protection.
    pub security: SmtpSecurity,
    /// Login user; empty sends no credentials.
    pub user_name: String,
    /// Login password.
    pub user_password: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 465,
            security: SmtpSecurity::Tls,
            user_name: String::new(),
            user_password: String::new(),
        }
    }
}

/// Sends e-mails to an SMTP server.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpSender {
    /// A sender for `config`, each attempt cut off after `timeout`.
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<SmtpSender, String> {
        if config.host.is_empty() {
            return Err("delivery.smtp.host is required when delivery.mail_mode is smtp".into());
        }
        let host = config.host.as_str();
        let builder = match config.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(|error| format!("invalid smtp settings: {error}"))?;
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if !config.user_name.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.user_name.clone(),
                config.user_password.clone(),
            ));
        }
        Ok(SmtpSender {
            transport: builder.build(),
        })
    }

    /// Sends `mail`; permanent SMTP refusals are not retried.
    pub async fn send(&self, mail: &Mail) -> Outcome {
        let Some(to) = address_of(&mail.to) else {
            return Outcome::Refused(format!("not an e-mail address: {}", mail.to));
        };
        let envelope = match Envelope::new(address_of(&mail.from), vec![to]) {
            Ok(envelope) => envelope,
            Err(error) => return Outcome::Refused(format!("invalid envelope: {error}")),
        };
        match self
            .transport
            .send_raw(&envelope, mail.render().as_bytes())
            .await
        {
            Ok(_) => Outcome::Delivered,
            Err(error) if error.is_permanent() => Outcome::Refused(format!("smtp: {error}")),
            Err(error) => Outcome::Failed(format!("smtp: {error}")),
        }
    }
}

/// Where e-mails go.
#[derive(Clone)]
pub enum MailSender {
    /// Piped to a command.
    Command(MailCommand),
    /// Sent to an SMTP server.
    Smtp(SmtpSender),
}

impl MailSender {
    /// Sends `mail`.
    pub async fn send(&self, mail: &Mail) -> Outcome {
        match self {
            MailSender::Command(command) => command.send(mail).await,
            MailSender::Smtp(smtp) => smtp.send(mail).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_come_from_the_uri_first() {
        let mail = Mail::notification(
            "mailto:ops%40example.com?SUBJECT=Hello%20there",
            r#"{"from": "zaqar@example.com", "subject": "ignored"}"#,
            "{}",
        )
        .unwrap();
        assert_eq!(mail.to, "ops@example.com");
        assert_eq!(mail.subject, "Hello there");
        assert_eq!(mail.from, "zaqar@example.com");
        let plain = Mail::notification("mailto:a@b.c", r#"{"subject": "S"}"#, "B").unwrap();
        assert_eq!((plain.subject.as_str(), plain.from.as_str()), ("S", ""));
        assert!(Mail::notification("http://x", "{}", "").is_none());
    }

    #[test]
    fn envelope_addresses_come_out_of_display_names() {
        assert_eq!(
            address_of("Zaqar Notifications <no-reply@openstack.org>")
                .unwrap()
                .to_string(),
            "no-reply@openstack.org"
        );
        assert_eq!(address_of("a@b.c").unwrap().to_string(), "a@b.c");
        assert!(address_of("").is_none());
    }

    #[test]
    fn rendered_headers_cannot_be_injected() {
        let mail = Mail {
            to: "a@b.c".into(),
            from: String::new(),
            subject: "x\r\nBcc: evil@x".into(),
            body: "body".into(),
        };
        let text = mail.render();
        assert!(text.contains("Subject: x  Bcc: evil@x\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
    }

    #[tokio::test]
    async fn the_command_receives_the_mail_and_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail.txt");
        let script = dir.path().join("sendmail.sh");
        std::fs::write(&script, format!("#!/bin/sh\ncat > {}\n", out.display())).unwrap();
        let command = format!("sh {}", script.display());
        let mail = Mail::notification("mailto:a@b.c", "{}", "hello").unwrap();
        let sender = MailCommand::new(&command, Duration::from_secs(5));
        assert_eq!(sender.send(&mail).await, Outcome::Delivered);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("To: a@b.c\r\n"), "{text}");
        let failing = MailCommand::new("false", Duration::from_secs(5));
        assert!(matches!(failing.send(&mail).await, Outcome::Failed(_)));
        let missing = MailCommand::new("/nonexistent/sendmail", Duration::from_secs(5));
        assert!(matches!(missing.send(&mail).await, Outcome::Failed(_)));
    }
}
