//! The retry policy of a subscription (contract §6.3).
//!
//! After a failed attempt the delivery is retried: first
//! `retries_with_no_delay` times at once, then `minimum_delay_retries` times
//! after `minimum_delay` seconds each, then once after each value of the
//! back-off function over [`minimum_delay`, `maximum_delay`], then
//! `maximum_delay_retries` times after `maximum_delay` seconds each. Then it
//! is given up.

use std::time::Duration;

use serde_json::Value;

/// Step between back-off sample points, in seconds.
const INTERVAL: i64 = 5;

/// A back-off function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// minimum, +5, +5, … while below the maximum.
    Linear,
    /// Quadratic growth from minimum to maximum.
    Arithmetic,
    /// Constant ratio from minimum to maximum.
    Geometric,
    /// Like geometric, shifted one step.
    Exponential,
}

/// An effective retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Immediate retries.
    pub retries_with_no_delay: u32,
    /// Retries after `minimum_delay`.
    pub minimum_delay_retries: u32,
    /// Seconds.
    pub minimum_delay: i64,
    /// Seconds.
    pub maximum_delay: i64,
    /// Retries after `maximum_delay`.
    pub maximum_delay_retries: u32,
    /// The back-off function between the two.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries_with_no_delay: 3,
            minimum_delay_retries: 3,
            minimum_delay: 5,
            maximum_delay: 30,
            maximum_delay_retries: 3,
            backoff: Backoff::Linear,
        }
    }
}

impl RetryPolicy {
    /// The policy in force for a subscription: its own `_retry_policy`,
    /// unless it or the queue's sets `ignore_subscription_override`, or it
    /// has none, in which case the queue's; else the defaults.
    ///
    /// `subscription_options` and `queue_metadata` are JSON texts; anything
    /// unreadable counts as absent (the API tier validated both).
    pub fn effective(subscription_options: &str, queue_metadata: &str) -> RetryPolicy {
        let of = |text: &str| -> Option<Value> {
            serde_json::from_str::<Value>(text)
                .ok()?
                .get("_retry_policy")
                .filter(|policy| policy.is_object())
                .cloned()
        };
        let subscription = of(subscription_options);
        let queue = of(queue_metadata);
        let ignores = |policy: &Option<Value>| {
            policy
                .as_ref()
                .and_then(|policy| policy.get("ignore_subscription_override"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let chosen = if ignores(&subscription) || ignores(&queue) {
            queue
        } else {
            subscription.or(queue)
        };
        chosen
            .map(|policy| Self::from_json(&policy))
            .unwrap_or_default()
    }

    /// Reads a `_retry_policy` object, defaulting absent or invalid keys.
    pub fn from_json(policy: &Value) -> RetryPolicy {
        let defaults = RetryPolicy::default();
        let int = |key: &str| policy.get(key).and_then(Value::as_i64).map(|v| v.max(0));
        let count = |key: &str, default: u32| {
            int(key)
                .map(|v| u32::try_from(v.min(10_000)).unwrap_or(default))
                .unwrap_or(default)
        };
        let backoff = match policy.get("retry_backoff_function").and_then(Value::as_str) {
            Some("arithmetic") => Backoff::Arithmetic,
            Some("geometric") => Backoff::Geometric,
            Some("exponential") => Backoff::Exponential,
            _ => Backoff::Linear,
        };
        RetryPolicy {
            retries_with_no_delay: count("retries_with_no_delay", defaults.retries_with_no_delay),
            minimum_delay_retries: count("minimum_delay_retries", defaults.minimum_delay_retries),
            minimum_delay: int("minimum_delay").unwrap_or(defaults.minimum_delay),
            maximum_delay: int("maximum_delay").unwrap_or(defaults.maximum_delay),
            maximum_delay_retries: count("maximum_delay_retries", defaults.maximum_delay_retries),
            backoff,
        }
    }

    /// The back-off phase's delays in seconds.
    pub fn backoff_delays(&self) -> Vec<i64> {
        let (min, max) = (self.minimum_delay, self.maximum_delay);
        if self.backoff == Backoff::Linear {
            return (min..max).step_by(INTERVAL as usize).collect();
        }
        let n = (max - min) / INTERVAL;
        if n < 2 || min <= 0 {
            // The curve is undefined here (the API tier refuses such
            // policies); fall back to the linear steps.
            return (min.max(0)..max).step_by(INTERVAL as usize).collect();
        }
        let (minf, maxf, nf) = (min as f64, max as f64, n as f64);
        let k = 10f64.powf((maxf / minf).log10() / (nf - 1.0));
        (1..=n)
            .map(|i| {
                let i = i as f64;
                let value = match self.backoff {
                    Backoff::Arithmetic => {
                        let d = 2.0 * (maxf - minf) / (nf * (nf - 1.0));
                        minf + (i - 1.0) * i * d / 2.0
                    }
                    Backoff::Geometric => minf * k.powf(i - 1.0),
                    _ => (minf / k) * k.powf(i),
                };
                value as i64
            })
            .collect()
    }

    /// The wait before retry number `failures` (after that many failed
    /// attempts), or `None` when the policy gives up.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let mut left = failures.checked_sub(1)?;
        let secs = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        if left < self.retries_with_no_delay {
            return Some(Duration::ZERO);
        }
        left -= self.retries_with_no_delay;
        if left < self.minimum_delay_retries {
            return Some(secs(self.minimum_delay));
        }
        left -= self.minimum_delay_retries;
        let backoff = self.backoff_delays();
        if let Some(delay) = backoff.get(left as usize) {
            return Some(secs(*delay));
        }
        left -= u32::try_from(backoff.len()).unwrap_or(u32::MAX);
        if left < self.maximum_delay_retries {
            return Some(secs(self.maximum_delay));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(function: &str, min: i64, max: i64) -> RetryPolicy {
        RetryPolicy::from_json(&json!({
            "retry_backoff_function": function, "minimum_delay": min, "maximum_delay": max
        }))
    }

    #[test]
    fn backoff_functions_match_the_reference() {
        assert_eq!(
            with("linear", 5, 30).backoff_delays(),
            vec![5, 10, 15, 20, 25]
        );
        // Values of Zaqar's functions for (5, 30, 5), computed with its code.
        assert_eq!(
            with("arithmetic", 5, 30).backoff_delays(),
            vec![5, 7, 12, 20, 30]
        );
        assert_eq!(
            with("geometric", 5, 30).backoff_delays(),
            vec![5, 7, 12, 19, 30]
        );
        assert_eq!(
            with("exponential", 5, 30).backoff_delays(),
            vec![5, 7, 12, 19, 30]
        );
        assert_eq!(
            with("arithmetic", 10, 60).backoff_delays(),
            vec![10, 11, 13, 16, 21, 26, 33, 41, 50, 60]
        );
    }

    #[test]
    fn the_schedule_runs_through_every_phase_then_gives_up() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..)
            .map_while(|n| policy.delay_after(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(
            delays,
            vec![0, 0, 0, 5, 5, 5, 5, 10, 15, 20, 25, 30, 30, 30]
        );
        assert_eq!(policy.delay_after(0), None);
    }

    #[test]
    fn zero_retries_give_up_at_once() {
        let policy = RetryPolicy::from_json(&json!({
            "retries_with_no_delay": 0, "minimum_delay_retries": 0,
            "maximum_delay_retries": 0, "minimum_delay": 30, "maximum_delay": 30
        }));
        assert_eq!(policy.delay_after(1), None);
    }

    #[test]
    fn the_queue_policy_wins_when_either_says_so() {
        let sub = r#"{"_retry_policy": {"retries_with_no_delay": 1}}"#;
        let queue = r#"{"_retry_policy": {"retries_with_no_delay": 7}}"#;
        let ignoring = r#"{"_retry_policy": {"retries_with_no_delay": 7, "ignore_subscription_override": true}}"#;
        assert_eq!(RetryPolicy::effective(sub, queue).retries_with_no_delay, 1);
        assert_eq!(RetryPolicy::effective("{}", queue).retries_with_no_delay, 7);
        assert_eq!(
            RetryPolicy::effective(sub, ignoring).retries_with_no_delay,
            7
        );
        assert_eq!(RetryPolicy::effective("{}", "").retries_with_no_delay, 3);
        assert_eq!(RetryPolicy::effective("{}", "{}"), RetryPolicy::default());
    }
}
