//! `mailto:` subscribers (contract §6.6): the e-mail is piped to a
//! sendmail-compatible command.

use std::process::Stdio;
use std::time::Duration;

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
