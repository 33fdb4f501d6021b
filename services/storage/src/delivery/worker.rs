//! The delivery worker: drains one outbox with bounded concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::mail::{Mail, MailCommand, MailMode, MailSender, SmtpConfig, SmtpSender};
use super::policy::RetryPolicy;
use super::webhook::{Outcome, WebhookClient, WebhookOptions, notification};
use super::{Delivery, DeliveryRecord, OutboxRef, Target};

/// Settings of notification delivery (`[delivery]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Whether this process delivers at all.
    pub enabled: bool,
    /// Most deliveries in flight at once.
    pub concurrency: usize,
    /// How long one attempt (an HTTP call or the mail command) may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often to look for deliveries made due by other nodes, by
    /// expired leases or by retry times.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How e-mails leave: `command` or `smtp`.
    pub mail_mode: MailMode,
    /// The command e-mails are piped to (`mail_mode = "command"`).
    pub mail_command: String,
    /// The SMTP server (`mail_mode = "smtp"`).
    pub smtp: SmtpConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            concurrency: 64,
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            mail_mode: MailMode::Command,
            mail_command: "sendmail -t -oi".into(),
            smtp: SmtpConfig::default(),
        }
    }
}

impl DeliveryConfig {
    /// Checks the settings that serde cannot: a positive timeout and
    /// concurrency.
    pub fn validate(&self) -> crate::error::Result<()> {
        if self.timeout.is_zero() || self.concurrency == 0 {
            return Err(crate::error::StorageError::Invalid(
                "delivery.timeout and delivery.concurrency must be positive".into(),
            ));
        }
        Ok(())
    }

    /// How long a taken delivery stays leased. The worker hands a record
    /// back once half the lease has passed, before its next attempt; an
    /// attempt lasts at most `timeout`, so the lease never runs out under a
    /// live worker.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// What the worker shares with its delivery tasks.
struct Context {
    outbox: OutboxRef,
    webhooks: WebhookClient,
    mail: MailSender,
    lease: Duration,
}

/// Starts the worker draining `outbox` until `cancel` fires. Deliveries in
/// flight at cancellation are abandoned; their leases run out and they are
/// taken again later.
pub fn spawn_worker(
    outbox: OutboxRef,
    config: &DeliveryConfig,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let context = Arc::new(Context {
        outbox,
        webhooks: WebhookClient::new(config.timeout)?,
        mail: match config.mail_mode {
            MailMode::Command => {
                MailSender::Command(MailCommand::new(&config.mail_command, config.timeout))
            }
            MailMode::Smtp => MailSender::Smtp(SmtpSender::new(&config.smtp, config.timeout)?),
        },
        lease: config.lease(),
    });
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let poll = config.poll_interval.max(Duration::from_millis(10));
    Ok(tokio::spawn(run(context, permits, poll, cancel)))
}

async fn run(
    context: Arc<Context>,
    permits: Arc<Semaphore>,
    poll: Duration,
    cancel: CancellationToken,
) {
    let wakeup = context.outbox.wakeup();
    loop {
        // Take only as many as can start now.
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let room = permits.available_permits() + 1;
        let taken = tokio::select! {
            _ = cancel.cancelled() => return,
            taken = context.outbox.take_due(room, context.lease) => taken,
        };
        let mut permit = Some(permit);
        match taken {
            Ok(deliveries) if !deliveries.is_empty() => {
                for delivery in deliveries {
                    let permit = match permit.take() {
                        Some(permit) => permit,
                        None => match permits.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    };
                    let context = context.clone();
                    tokio::spawn(async move {
                        deliver(&context, delivery).await;
                        drop(permit);
                    });
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot take deliveries"),
        }
        drop(permit);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Where the record goes after this round of attempts.
enum Next {
    Done,
    Later(Duration),
}

/// Sends what is left of one delivery, then hands it back to the outbox.
async fn deliver(context: &Context, mut delivery: Delivery) {
    let next = match delivery.target.take() {
        Some(target) => attempt(context, &target, &mut delivery).await,
        None => Next::Done,
    };
    let stored = match next {
        Next::Done => context.outbox.finish(&delivery.key).await,
        Next::Later(after) => {
            context
                .outbox
                .retry_later(&delivery.key, &delivery.record, after)
                .await
        }
    };
    if let Err(error) = stored {
        // The lease runs out and the delivery is taken again.
        tracing::warn!(%error, id = %delivery.key.id, "cannot store a delivery's progress");
    }
}

/// How a subscriber is reached.
enum Channel {
    Webhook {
        url: String,
        options: WebhookOptions,
    },
    Mail,
}

fn channel_of(target: &Target) -> Option<Channel> {
    let subscriber = target.subscriber.as_str();
    let url = subscriber.strip_prefix("trust+").unwrap_or(subscriber);
    if url.starts_with("http://") || url.starts_with("https://") {
        Some(Channel::Webhook {
            url: url.to_string(),
            options: WebhookOptions::from_options(&target.options),
        })
    } else if subscriber.starts_with("mailto:") {
        Some(Channel::Mail)
    } else {
        None
    }
}

async fn attempt(context: &Context, target: &Target, delivery: &mut Delivery) -> Next {
    let Some(channel) = channel_of(target) else {
        tracing::warn!(subscriber = %target.subscriber, "no delivery for this subscriber scheme");
        return Next::Done;
    };
    let policy = RetryPolicy::effective(&target.options, &delivery.queue_metadata);
    let started = Instant::now();
    let record = &mut delivery.record;
    while record.next < record.len() {
        if started.elapsed() > context.lease / 2 {
            // Hand the record back before the lease could run out.
            return Next::Later(Duration::ZERO);
        }
        let outcome = send(context, &channel, target, &delivery.queue_name, record).await;
        match outcome {
            Outcome::Delivered => advance(record),
            Outcome::Refused(reason) => {
                tracing::info!(%reason, subscriber = %target.subscriber, "notification refused");
                advance(record);
            }
            Outcome::Failed(reason) => {
                record.failures += 1;
                match policy.delay_after(record.failures) {
                    Some(delay) if delay.is_zero() => {}
                    Some(delay) => {
                        tracing::debug!(%reason, ?delay, "notification failed; retrying later");
                        return Next::Later(delay);
                    }
                    None => {
                        tracing::warn!(%reason, subscriber = %target.subscriber,
                            attempts = record.failures, "notification given up");
                        advance(record);
                    }
                }
            }
        }
    }
    Next::Done
}

fn advance(record: &mut DeliveryRecord) {
    record.next += 1;
    record.failures = 0;
}

async fn send(
    context: &Context,
    channel: &Channel,
    target: &Target,
    queue_name: &str,
    record: &DeliveryRecord,
) -> Outcome {
    let document = match &record.notice {
        Some(notice) => notice.document.clone(),
        None => match record.messages.get(record.next) {
            Some((ttl, delay, body)) => notification(queue_name, *ttl, *delay, body),
            None => return Outcome::Delivered,
        },
    };
    match channel {
        Channel::Webhook { url, options } => {
            context
                .webhooks
                .post(url, &options.headers, options.body(&document))
                .await
        }
        Channel::Mail => {
            let mail = match &record.notice {
                Some(notice) => match &notice.mail {
                    Some((subject, from, body)) => {
                        Mail::notification(&target.subscriber, "{}", body).map(|mail| Mail {
                            subject: subject.clone(),
                            from: from.clone(),
                            ..mail
                        })
                    }
                    // No e-mail form of this notice: nothing to send.
                    None => return Outcome::Delivered,
                },
                None => Mail::notification(&target.subscriber, &target.options, &document),
            };
            match mail {
                Some(mail) => context.mail.send(&mail).await,
                None => Outcome::Refused("not a mailto subscriber".into()),
            }
        }
    }
}
