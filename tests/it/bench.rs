//! `zaqar bench` against a real endpoint: the report's shape and `--verify`.

use std::process::Command;

use zaqar_tests::{ApiNode, zaqar_bin};

#[test]
fn bench_reports_every_operation_and_verifies_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = ApiNode::standalone_in(dir.path(), &[]).unwrap();
    let chart = dir.path().join("latency.svg");
    let output = Command::new(zaqar_bin())
        .args(["bench", "--url", &node.url(), "--queues", "2"])
        .args(["--producers", "3", "--consumers", "3", "--observers", "1"])
        .args(["--batch", "4", "--duration", "1s", "--verify", "--json"])
        .arg("--chart")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
