//! `zaqar bench` against a real endpoint: the report's shape and `--verify`.

use std::process::Command;

use zaqar_tests::{ApiNode, zaqar_bin};

/// Runs `zaqar bench --url URL --json ARGS...`; returns its report.
fn bench_report(url: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(zaqar_bin())
        .args(["bench", "--url", url, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without a progress bar the start of the measured phase is announced
    // on stderr (deploy/bench/profile.sh waits for it).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("measuring for ").count(),
        1,
        "stderr: {stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn bench_reports_every_operation_and_verifies_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let chart = dir.path().join("latency.svg");
    let report = bench_report(
        &node.url(),
        &[
            "--queues",
            "2",
            "--producers",
            "3",
            "--consumers",
            "3",
            "--observers",
            "1",
            "--batch",
            "4",
            "--duration",
            "1s",
            "--verify",
            "--chart",
            chart.to_str().unwrap(),
        ],
    );
    for op in ["post", "claim", "delete", "list"] {
        let stats = &report["operations"][op];
        assert!(stats["requests"].as_u64().unwrap() > 0, "{op}: {stats}");
        assert!(stats["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{op}");
        assert_eq!(stats["errors"], serde_json::json!({}), "{op}");
    }
    let verify = &report["verify"];
    assert_eq!(verify["passed"], true, "{verify}");
    assert!(verify["posted"].as_u64().unwrap() > 0);
    assert_eq!(verify["posted"], verify["consumed"]);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 4);
}

#[test]
fn bench_without_a_role_is_refused() {
    let output = Command::new(zaqar_bin())
        .args(["bench", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing to run"));
}

/// `--rate` paces the whole load: posts and claim rounds never exceed the
/// rate over the run (unpaced, the same workers do hundreds per second),
/// and paced consumers still verify exactly-once delivery.
#[test]
fn paced_bench_keeps_to_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let report = bench_report(
        &node.url(),
        &[
            "--rate",
            "40",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--batch",
            "2",
            "--duration",
            "2s",
            "--verify",
        ],
    );
    assert_eq!(report["settings"]["rate"], 40.0, "{}", report["settings"]);
    let posts = report["operations"]["post"]["requests"].as_u64().unwrap();
    let claims = report["operations"]["claim"]["requests"].as_u64().unwrap();
    // 4 workers at 40/s in total: one operation per worker every 100 ms,
    // so at most 20 per worker in 2 s.
    assert!(posts > 0 && posts <= 40, "{posts} posts");
    assert!(claims > 0 && claims <= 40, "{claims} claims");
    assert_eq!(report["verify"]["passed"], true, "{}", report["verify"]);
    let refused = Command::new(zaqar_bin())
        .args(["bench", "--url", &node.url(), "--producers", "1"])
        .arg("--rate=-1")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--rate"));
}
