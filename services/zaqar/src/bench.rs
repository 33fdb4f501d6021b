//! `zaqar bench`: a load generator for any Zaqar v2 endpoint (this service
//! or OpenStack Zaqar), in the spirit of zaqar-bench.
//!
//! Producers post batches, consumers claim and delete with the claim id,
//! observers list with `echo`; all at a set concurrency for a set time, on
//! one or more queues. The report gives requests and messages per second,
//! latency percentiles and errors per operation (text, `--json`, or an SVG
//! chart); `--verify` checks that every posted message was consumed exactly
//! once.

mod chart;
mod http;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

/// Options of `zaqar bench`.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the Zaqar endpoint, e.g. `http://127.0.0.1:8888` (plain
    /// HTTP/1.1 with keep-alive, one connection per worker).
    #[arg(long)]
    pub url: String,
    /// Project id sent as `X-Project-ID`.
    #[arg(long, default_value = "bench")]
    pub project: String,
    /// Number of queues the load is spread over.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Queue name prefix (default `bench-<random>`); queues are
    /// `<prefix>-<n>`.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Concurrent producers (each posts batches back to back).
    #[arg(long, default_value_t = 0)]
    pub producers: usize,
    /// Concurrent consumers (each claims, then deletes every claimed
    /// message with its claim id).
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// Concurrent observers (each lists messages with `echo=true`).
    #[arg(long, default_value_t = 0)]
    pub observers: usize,
    /// Messages per post.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Most messages per claim (and per listing).
    #[arg(long, default_value_t = 10)]
    pub claim: usize,
    /// Approximate size of each message body in bytes.
    #[arg(long, default_value_t = 256)]
    pub message_size: usize,
    /// How long the measured phase lasts (e.g. `10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Messages posted before the measured phase (not measured).
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
    /// Paces the load to about this many operations per second in total
    /// (posts, claim-and-delete rounds, listings), spread evenly over the
    /// workers; 0 (the default) runs every worker back to back. A worker
    /// that falls behind its pace counts latency from when the operation was
    /// due, so a server that cannot keep up shows its queueing delay.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Prints the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Writes the latency distribution as an SVG chart.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Checks that every posted message was consumed exactly once (drains
    /// the queues after the measured phase); fails otherwise.
    #[arg(long)]
    pub verify: bool,
    /// Hides the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl BenchArgs {
    fn check(&self) -> anyhow::Result<()> {
        if self.producers + self.consumers + self.observers == 0 {
            bail!("nothing to run: give --producers, --consumers and/or --observers");
        }
        if self.queues == 0 || self.batch == 0 || self.claim == 0 {
            bail!("--queues, --batch and --claim must be at least 1");
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be a non-negative number of operations per second");
        }
        Ok(())
    }
}

/// Runs the benchmark and prints its report; fails when `--verify` finds
/// lost or duplicated messages.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.check()?;
    let report = workload::run(&args).await?;
    if let Some(path) = &args.chart {
        std::fs::write(path, chart::svg(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&report.to_json())?
    } else {
        report.to_text()
    };
    println_out(&text);
    if let Some(verify) = &report.verify
        && !verify.passed()
    {
        bail!(
            "verification failed: {} lost, {} consumed twice, {} unknown",
            verify.lost,
            verify.duplicates,
            verify.unknown
        );
    }
    Ok(())
}

/// The report goes to stdout (progress and logs go to stderr).
fn println_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}
