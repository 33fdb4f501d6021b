//! The load: producers, consumers and observers against one endpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};

use super::BenchArgs;
use super::http::{self, Answer, Connection, Endpoint};
use super::report::{OpStats, Report, Verify};

/// Claim settings sent by consumers (long enough never to expire in a run).
const CLAIM_BODY: &str = r#"{"ttl": 300, "grace": 60}"#;
/// Concurrent requests while prefilling.
const PREFILL_TASKS: usize = 16;
/// How long draining may take under `--verify`.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// The endpoint and what every request needs.
struct Target {
    endpoint: Endpoint,
    queues: Vec<String>,
    post_body: Bytes,
    claim_path_suffix: String,
    claim: usize,
    batch: usize,
    verify: bool,
}

/// One claimed message: its id and the href to delete it with.
struct Claimed {
    id: String,
    href: String,
}

/// The parts of a claimed message the load uses; the rest (the body
/// above all) is skipped unread, so parsing stays cheap for the load
/// generator that shares the machine with the server.
#[derive(Deserialize)]
struct ClaimedRecord {
    href: String,
    #[serde(default)]
    id: Option<String>,
}

/// A claim's answer: `{"messages": [...]}` (v2), or a bare list.
#[derive(Deserialize)]
struct ClaimAnswer {
    messages: Vec<ClaimedRecord>,
}

/// The messages a claim's 201 answer holds; the id comes from the href
/// (`.../messages/ID?claim_id=...`) when the answer has none.
fn claimed_messages(body: &[u8]) -> Result<Vec<Claimed>, String> {
    let records = match serde_json::from_slice::<ClaimAnswer>(body) {
        Ok(answer) => answer.messages,
        Err(_) => serde_json::from_slice::<Vec<ClaimedRecord>>(body)
            .map_err(|_| "bad body".to_string())?,
    };
    Ok(records
        .into_iter()
        .map(|record| {
            let id = record.id.unwrap_or_else(|| {
                let path = record.href.split('?').next().unwrap_or_default();
                path.rsplit('/').next().unwrap_or_default().to_string()
            });
            Claimed {
                id,
                href: record.href,
            }
        })
        .collect())
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    operations: BTreeMap<&'static str, OpStats>,
    posted: Vec<String>,
    claimed: Vec<String>,
    deleted: Vec<String>,
}

impl Tally {
    fn op(&mut self, name: &'static str) -> &mut OpStats {
        self.operations.entry(name).or_default()
    }

    fn merge(&mut self, other: Tally) {
        for (name, stats) in &other.operations {
            self.op(name).merge(stats);
        }
        self.posted.extend(other.posted);
        self.claimed.extend(other.claimed);
        self.deleted.extend(other.deleted);
    }
}

fn status_error(status: StatusCode) -> String {
    status.as_u16().to_string()
}

/// Sends a request, mapping transport failures to the report's names.
async fn send(
    connection: &mut Connection,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<Answer, String> {
    connection
        .send(method, path, body)
        .await
        .map_err(|error| http::failure(&error))
}

fn json_of(answer: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&answer.body).map_err(|_| "bad body".to_string())
}

impl Target {
    /// A connection for one worker, with its own Client-ID.
    fn connection(&self) -> anyhow::Result<Connection> {
        Connection::new(&self.endpoint, &uuid::Uuid::new_v4().to_string())
    }

    /// Posts one batch; returns the ids (when verifying) or just the count.
    async fn post(
        &self,
        connection: &mut Connection,
        queue: &str,
    ) -> Result<(u64, Vec<String>), String> {
        let answer = send(
            connection,
            Method::POST,
            &format!("/v2/queues/{queue}/messages"),
            Some(self.post_body.clone()),
        )
        .await?;
        if answer.status != StatusCode::CREATED {
            return Err(status_error(answer.status));
        }
        if !self.verify {
            return Ok((self.batch as u64, Vec::new()));
        }
        let body = json_of(&answer)?;
        let ids: Vec<String> = body["resources"]
            .as_array()
            .map(|resources| {
                resources
                    .iter()
                    .filter_map(|href| href.as_str()?.rsplit('/').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((ids.len() as u64, ids))
    }

    /// Claims up to `claim` messages.
    async fn claim(
        &self,
        connection: &mut Connection,
        queue: &str,
    ) -> Result<Vec<Claimed>, String> {
        let answer = send(
            connection,
            Method::POST,
            &format!("/v2/queues/{queue}/claims{}", self.claim_path_suffix),
            Some(Bytes::from_static(CLAIM_BODY.as_bytes())),
        )
        .await?;
        match answer.status {
            StatusCode::NO_CONTENT => Ok(Vec::new()),
            StatusCode::CREATED => claimed_messages(&answer.body),
            status => Err(status_error(status)),
        }
    }

    /// Deletes a claimed message by its href (which carries the claim id).
    async fn delete(&self, connection: &mut Connection, href: &str) -> Result<(), String> {
        let answer = send(connection, Method::DELETE, href, None).await?;
        match answer.status {
            StatusCode::NO_CONTENT => Ok(()),
            status => Err(status_error(status)),
        }
    }

    /// Lists messages with `echo=true`; returns how many.
    async fn list(&self, connection: &mut Connection, queue: &str) -> Result<u64, String> {
        let answer = send(
            connection,
            Method::GET,
            &format!("/v2/queues/{queue}/messages?echo=true&limit={}", self.claim),
            None,
        )
        .await?;
        match answer.status {
            StatusCode::NO_CONTENT => Ok(0),
            StatusCode::OK => {
                let body = json_of(&answer)?;
                Ok(body["messages"].as_array().map_or(0, |m| m.len() as u64))
            }
            status => Err(status_error(status)),
        }
    }

    /// Claims once on `queue`, then deletes each claimed message; returns
    /// how many messages the claim held. The claim's latency counts from
    /// `started`.
    async fn consume_once(
        &self,
        connection: &mut Connection,
        queue: &str,
        tally: &mut Tally,
        started: Instant,
    ) -> usize {
        let claimed = self.claim(connection, queue).await;
        let count = claimed.as_ref().map_or(0, Vec::len);
        tally.op("claim").record(
            started.elapsed(),
            claimed
                .as_ref()
                .map(|c| c.len() as u64)
                .map_err(Clone::clone),
        );
        for message in claimed.unwrap_or_default() {
            if self.verify {
                tally.claimed.push(message.id.clone());
            }
            let started = Instant::now();
            let deleted = self.delete(connection, &message.href).await;
            if deleted.is_ok() && self.verify {
                tally.deleted.push(message.id);
            }
            tally
                .op("delete")
                .record(started.elapsed(), deleted.map(|()| 1));
        }
        count
    }
}

/// A message body of about `size` bytes.
fn post_body(batch: usize, size: usize) -> String {
    let padding = "x".repeat(size.saturating_sub(12));
    let message = json!({"ttl": 3600, "body": {"data": padding}});
    json!({ "messages": vec![message; batch] }).to_string()
}

/// Runs the whole benchmark.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let endpoint = Endpoint::parse(&args.url, &args.project)?;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let queues: Vec<String> = (0..args.queues).map(|n| format!("{prefix}-{n}")).collect();
    let target = Arc::new(Target {
        endpoint,
        queues,
        post_body: Bytes::from(post_body(args.batch, args.message_size)),
        claim_path_suffix: format!("?limit={}", args.claim),
        claim: args.claim,
        batch: args.batch,
        verify: args.verify,
    });
    create_queues(&target).await?;
    let mut total = Tally::default();
    if args.prefill > 0 {
        total.merge(prefill(&target, args.prefill).await?);
        // Prefill is not part of the measured load.
        total.operations.clear();
    }

    let progress = progress_bar(args);
    if progress.is_hidden() {
        // Without a progress bar, one line on stderr tells scripts (and a
        // terminal) that the measured phase has begun, after any prefill.
        eprintln!(
            "measuring for {} ({} messages prefilled)",
            humantime::format_duration(args.duration),
            args.prefill
        );
    }
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    let roles = [
        (Role::Producer, args.producers),
        (Role::Consumer, args.consumers),
        (Role::Observer, args.observers),
    ];
    let mut index = 0;
    let total_workers = args.producers + args.consumers + args.observers;
    for (role, count) in roles {
        for _ in 0..count {
            let target = target.clone();
            let requests = requests.clone();
            let connection = target.connection()?;
            let pace = Pace::new(args.rate, total_workers, index, started, deadline);
            workers.push(tokio::spawn(worker(
                target, connection, role, index, pace, requests,
            )));
            index += 1;
        }
    }
    let ticker = {
        let progress = progress.clone();
        let requests = requests.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let elapsed = started.elapsed();
                progress.set_position(elapsed.as_millis() as u64);
                let rate =
                    requests.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64().max(0.001);
                progress.set_message(format!("{rate:.0} req/s"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut measured = Tally::default();
    for handle in workers {
        measured.merge(handle.await.context("a bench worker failed")?);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    progress.finish_and_clear();

    let operations = std::mem::take(&mut measured.operations);
    total.merge(measured);
    let verify = if args.verify {
        total.merge(drain(&target, args.consumers.max(4)).await);
        Some(check(&total))
    } else {
        None
    };
    Ok(Report {
        url: args.url.clone(),
        elapsed,
        settings: json!({
            "queues": args.queues, "producers": args.producers, "consumers": args.consumers,
            "observers": args.observers, "batch": args.batch, "claim": args.claim,
            "message_size": args.message_size, "duration_s": args.duration.as_secs_f64(),
            "prefill": args.prefill, "rate": args.rate,
        }),
        operations,
        verify,
    })
}

#[derive(Clone, Copy)]
enum Role {
    Producer,
    Consumer,
    Observer,
}

/// When a worker's operations are due: back to back, or one every
/// `interval` from `first`; none at or after `end`.
#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    interval: Option<Duration>,
    end: Instant,
}

impl Pace {
    /// The pace of worker `index` of `workers` for `rate` operations per
    /// second in total (0 = unpaced), from `start` to `end`: workers are
    /// staggered evenly over one interval.
    fn new(rate: f64, workers: usize, index: usize, start: Instant, end: Instant) -> Pace {
        if rate <= 0.0 || workers == 0 {
            return Pace {
                first: start,
                interval: None,
                end,
            };
        }
        let interval = Duration::from_secs_f64(workers as f64 / rate);
        Pace {
            first: start + interval.mul_f64(index as f64 / workers as f64),
            interval: Some(interval),
            end,
        }
    }

    /// Waits until operation `n` (from 0) is due and returns when its
    /// latency counts from: the moment it is sent when the worker is on
    /// time (the timer's millisecond slack is not the server's), its due
    /// time when the worker is behind (the server held it up). Unpaced: now.
    async fn due(&self, n: u32) -> Instant {
        let Some(interval) = self.interval else {
            return Instant::now();
        };
        let due = self.first + interval * n;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        }
    }
}

async fn worker(
    target: Arc<Target>,
    mut connection: Connection,
    role: Role,
    index: usize,
    pace: Pace,
    requests: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    let mut turn = index;
    let mut n = 0u32;
    loop {
        let started = pace.due(n).await;
        n = n.saturating_add(1);
        if started >= pace.end || Instant::now() >= pace.end {
            break;
        }
        let queue = &target.queues[turn % target.queues.len()];
        turn += 1;
        match role {
            Role::Producer => {
                let posted = target.post(&mut connection, queue).await;
                requests.fetch_add(1, Ordering::Relaxed);
                let outcome = posted.map(|(count, ids)| {
                    tally.posted.extend(ids);
                    count
                });
                tally.op("post").record(started.elapsed(), outcome);
            }
            Role::Consumer => {
                let got = target
                    .consume_once(&mut connection, queue, &mut tally, started)
                    .await;
                requests.fetch_add(1 + got as u64, Ordering::Relaxed);
                if got == 0 && pace.interval.is_none() {
                    // Nothing to do on this queue: do not spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Role::Observer => {
                let listed = target.list(&mut connection, queue).await;
                requests.fetch_add(1, Ordering::Relaxed);
                tally.op("list").record(started.elapsed(), listed);
            }
        }
    }
    tally
}

async fn create_queues(target: &Target) -> anyhow::Result<()> {
    let mut connection = target.connection()?;
    for queue in &target.queues {
        let answer = connection
            .send(
                Method::PUT,
                &format!("/v2/queues/{queue}"),
                Some(Bytes::from_static(b"{}")),
            )
            .await
            .with_context(|| format!("cannot reach {}", target.endpoint))?;
        if !answer.status.is_success() {
            bail!(
                "creating queue {queue} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
    }
    Ok(())
}

/// Posts `count` messages (in batches of the run's size), unmeasured.
async fn prefill(target: &Arc<Target>, count: usize) -> anyhow::Result<Tally> {
    let batches = count.div_ceil(target.batch);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..PREFILL_TASKS.min(batches) {
        let target = target.clone();
        let next = next.clone();
        let mut connection = target.connection()?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= batches {
                    return Ok(tally);
                }
                let queue = &target.queues[(n + task) % target.queues.len()];
                match target.post(&mut connection, queue).await {
                    Ok((_, ids)) => tally.posted.extend(ids),
                    Err(error) => bail!("prefill post failed: {error}"),
                }
            }
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.context("a prefill task failed")??);
    }
    Ok(total)
}

/// Consumes everything left, for `--verify`.
async fn drain(target: &Arc<Target>, tasks: usize) -> Tally {
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let target = target.clone();
        let Ok(mut connection) = target.connection() else {
            continue;
        };
        handles.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            // Stop after two passes in a row found every queue empty.
            let mut empty_passes = 0;
            while empty_passes < 2 && Instant::now() < deadline {
                let mut got = 0;
                for queue in &target.queues {
                    got += target
                        .consume_once(&mut connection, queue, &mut tally, Instant::now())
                        .await;
                }
                empty_passes = if got == 0 { empty_passes + 1 } else { 0 };
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for handle in handles {
        if let Ok(tally) = handle.await {
            total.merge(tally);
        }
    }
    total.operations.clear();
    total
}

/// Compares what was posted with what was claimed and deleted.
fn check(tally: &Tally) -> Verify {
    let mut deleted: HashMap<&str, u64> = HashMap::new();
    for id in &tally.deleted {
        *deleted.entry(id.as_str()).or_default() += 1;
    }
    let mut claimed: HashMap<&str, u64> = HashMap::new();
    for id in &tally.claimed {
        *claimed.entry(id.as_str()).or_default() += 1;
    }
    let posted: std::collections::HashSet<&str> = tally.posted.iter().map(String::as_str).collect();
    Verify {
        posted: posted.len() as u64,
        consumed: deleted.len() as u64,
        lost: posted
            .iter()
            .filter(|id| !deleted.contains_key(*id))
            .count() as u64,
        duplicates: claimed.values().filter(|count| **count > 1).count() as u64
            + deleted.values().filter(|count| **count > 1).count() as u64,
        unknown: deleted.keys().filter(|id| !posted.contains(*id)).count() as u64,
    }
}

fn progress_bar(args: &BenchArgs) -> ProgressBar {
    if args.no_progress || args.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(args.duration.as_millis() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_size() {
        let body: Value = serde_json::from_str(&post_body(3, 256)).unwrap();
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        let size = messages[0]["body"].to_string().len();
        assert!((250..=262).contains(&size), "{size}");
    }

    #[test]
    fn verification_counts_losses_duplicates_and_strangers() {
        let tally = Tally {
            posted: vec!["a".into(), "b".into(), "c".into()],
            claimed: vec!["a".into(), "b".into(), "b".into(), "x".into()],
            deleted: vec!["a".into(), "b".into(), "x".into()],
            ..Tally::default()
        };
        let verify = check(&tally);
        assert_eq!(
            (
                verify.posted,
                verify.consumed,
                verify.lost,
                verify.duplicates,
                verify.unknown
            ),
            (3, 3, 1, 1, 1)
        );
        assert!(!verify.passed());
    }

    #[test]
    fn claim_answers_give_ids_and_hrefs() {
        let href = "/v2/queues/q/messages/m2?claim_id=c1";
        let v2 = json!({"messages": [
            {"id": "m1", "href": "/v2/queues/q/messages/m1?claim_id=c1", "body": {"x": [1, 2]}, "ttl": 60},
            {"href": href, "age": 3},
        ]});
        let claimed = claimed_messages(v2.to_string().as_bytes()).unwrap();
        let seen: Vec<(&str, &str)> = claimed
            .iter()
            .map(|c| (c.id.as_str(), c.href.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("m1", "/v2/queues/q/messages/m1?claim_id=c1"), ("m2", href)]
        );
        let bare = json!([{"href": href, "body": "text"}]).to_string();
        let claimed = claimed_messages(bare.as_bytes()).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, "m2");
        assert_eq!(
            claimed_messages(b"{\"messages\": 3}").err().as_deref(),
            Some("bad body")
        );
        assert!(claimed_messages(b"not json").is_err());
    }
}
