//! Counting and reporting: per-operation counters and latency histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The operations measured, in report order.
pub const OPERATIONS: [&str; 4] = ["post", "claim", "delete", "list"];

/// Counters of one operation.
#[derive(Clone, Debug)]
pub struct OpStats {
    /// Requests answered as expected.
    pub requests: u64,
    /// Messages they carried (posted, claimed, deleted or listed).
    pub messages: u64,
    /// Latency of every request (errors included), in microseconds.
    pub latency: Histogram<u64>,
    /// Unexpected answers by HTTP status (or `transport`).
    pub errors: BTreeMap<String, u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            requests: 0,
            messages: 0,
            latency: new_histogram(),
            errors: BTreeMap::new(),
        }
    }
}

/// A histogram from 1 µs to 10 min at 3 significant digits.
#[allow(clippy::expect_used)] // Constant bounds, valid for hdrhistogram.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl OpStats {
    /// Records one request.
    pub fn record(&mut self, elapsed: Duration, outcome: Result<u64, String>) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(micros);
        match outcome {
            Ok(messages) => {
                self.requests += 1;
                self.messages += messages;
            }
            Err(error) => *self.errors.entry(error).or_default() += 1,
        }
    }

    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &OpStats) {
        self.requests += other.requests;
        self.messages += other.messages;
        let _ = self.latency.add(&other.latency);
        for (error, count) in &other.errors {
            *self.errors.entry(error.clone()).or_default() += count;
        }
    }

    /// Latency at `quantile` (0..=1) in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

/// What `--verify` found.
#[derive(Clone, Debug, Default)]
pub struct Verify {
    /// Messages posted (prefill included).
    pub posted: u64,
    /// Distinct messages deleted.
    pub consumed: u64,
    /// Posted but never deleted.
    pub lost: u64,
    /// Handed out by two claims that both deleted it.
    pub duplicates: u64,
    /// Deleted but never posted by this run.
    pub unknown: u64,
}

impl Verify {
    /// Whether every message was consumed exactly once.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.unknown == 0
    }
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The endpoint.
    pub url: String,
    /// Length of the measured phase.
    pub elapsed: Duration,
    /// The run's settings, for the record.
    pub settings: Value,
    /// Counters per operation (only those exercised).
    pub operations: BTreeMap<&'static str, OpStats>,
    /// Verification, with `--verify`.
    pub verify: Option<Verify>,
}

impl Report {
    fn per_second(&self, count: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { count as f64 / secs } else { 0.0 }
    }

    /// Messages posted per second.
    pub fn produced_per_s(&self) -> f64 {
        self.per_second(self.operations.get("post").map_or(0, |op| op.messages))
    }

    /// Messages deleted per second.
    pub fn consumed_per_s(&self) -> f64 {
        self.per_second(self.operations.get("delete").map_or(0, |op| op.messages))
    }

    fn ordered(&self) -> impl Iterator<Item = (&'static str, &OpStats)> {
        OPERATIONS
            .iter()
            .filter_map(|name| self.operations.get(name).map(|op| (*name, op)))
    }

    /// The report as JSON (the shape `deploy/bench/compare.sh` reads).
    pub fn to_json(&self) -> Value {
        let mut operations = serde_json::Map::new();
        for (name, op) in self.ordered() {
            operations.insert(
                name.to_string(),
                json!({
                    "requests": op.requests,
                    "requests_per_s": self.per_second(op.requests),
                    "messages": op.messages,
                    "messages_per_s": self.per_second(op.messages),
                    "latency_ms": {
                        "p50": op.ms(0.50), "p90": op.ms(0.90),
                        "p99": op.ms(0.99), "max": op.max_ms(),
                    },
                    "errors": op.errors,
                }),
            );
        }
        let mut report = json!({
            "url": self.url,
            "duration_s": self.elapsed.as_secs_f64(),
            "settings": self.settings,
            "operations": operations,
            "produced_messages_per_s": self.produced_per_s(),
            "consumed_messages_per_s": self.consumed_per_s(),
        });
        if let Some(verify) = &self.verify {
            report["verify"] = json!({
                "passed": verify.passed(),
                "posted": verify.posted,
                "consumed": verify.consumed,
                "lost": verify.lost,
                "duplicates": verify.duplicates,
                "unknown": verify.unknown,
            });
        }
        report
    }

    /// The report as a text table.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} for {:.1} s\n\n{:<7} {:>9} {:>10} {:>11} {:>8} {:>8} {:>8} {:>9}  errors\n",
            self.url,
            self.elapsed.as_secs_f64(),
            "op",
            "requests",
            "req/s",
            "msg/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        for (name, op) in self.ordered() {
            let errors: Vec<String> = op
                .errors
                .iter()
                .map(|(status, count)| format!("{status}×{count}"))
                .collect();
            let _ = writeln!(
                text,
                "{:<7} {:>9} {:>10.1} {:>11.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2}  {}",
                name,
                op.requests,
                self.per_second(op.requests),
                self.per_second(op.messages),
                op.ms(0.50),
                op.ms(0.90),
                op.ms(0.99),
                op.max_ms(),
                if errors.is_empty() {
                    "-".to_string()
                } else {
                    errors.join(" ")
                }
            );
        }
        let _ = write!(
            text,
            "\nproduced {:.1} msg/s, consumed {:.1} msg/s",
            self.produced_per_s(),
            self.consumed_per_s()
        );
        if let Some(verify) = &self.verify {
            let _ = write!(
                text,
                "\nverify: {} — posted {}, consumed {}, lost {}, duplicates {}, unknown {}",
                if verify.passed() { "passed" } else { "FAILED" },
                verify.posted,
                verify.consumed,
                verify.lost,
                verify.duplicates,
                verify.unknown
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles_come_from_the_counters() {
        let mut post = OpStats::default();
        for ms in 1..=100u64 {
            post.record(Duration::from_millis(ms), Ok(10));
        }
        post.record(Duration::from_millis(5), Err("503".into()));
        let mut other = OpStats::default();
        other.record(Duration::from_millis(1), Err("503".into()));
        post.merge(&other);
        let report = Report {
            url: "http://x".into(),
            elapsed: Duration::from_secs(2),
            settings: json!({}),
            operations: BTreeMap::from([("post", post)]),
            verify: None,
        };
        let json = report.to_json();
        assert_eq!(json["operations"]["post"]["requests"], 100);
        assert_eq!(json["operations"]["post"]["messages_per_s"], 500.0);
        assert_eq!(json["operations"]["post"]["errors"]["503"], 2);
        assert_eq!(json["produced_messages_per_s"], 500.0);
        let p99 = json["operations"]["post"]["latency_ms"]["p99"]
            .as_f64()
            .unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert!(report.to_text().contains("503×2"));
    }
}
