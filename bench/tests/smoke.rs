//! Smoke test of the API load tool (tier `api`): runs `flotilla-api-load` with tiny counts against the real
//! server binary (`$FLOTILLA_BIN`, set by scripts/test) so the benchmark cannot rot. It checks that every
//! phase ran and every request succeeded; it never looks at a time.

use std::process::Command;

#[test]
fn load_tool_runs_every_phase_against_a_real_server() {
    let skipped = std::env::var("FLOTILLA_SKIP_TIERS").unwrap_or_default();
    if skipped.split(',').any(|t| t.trim() == "api") {
        eprintln!("SKIPPED: tier api is in FLOTILLA_SKIP_TIERS");
        return;
    }
    let flotilla = std::env::var_os("FLOTILLA_BIN").filter(|v| !v.is_empty()).expect(
        "FLOTILLA_BIN is not set: it must name the flotilla binary; run scripts/test, which builds and sets it",
    );
    let scratch = tempfile::Builder::new().prefix("flt-bench-smoke-").tempdir().expect("a scratch dir");
    let json = scratch.path().join("figures.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-api-load"))
        .arg("--flotilla")
        .arg(&flotilla)
        .arg("--scratch")
        .arg(scratch.path())
        .arg("--json")
        .arg(&json)
        .args(["--rounds", "1", "--clients", "4", "--creates", "40", "--paced-creates", "20", "--paced-rate", "200"])
        .args(["--pods", "30", "--list-repeats", "1", "--page-limit", "7", "--watchers", "3"])
        .args(["--watch-events", "5", "--watch-rate", "50", "--settle-secs", "5"])
        .output()
        .expect("running flotilla-api-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "flotilla-api-load failed ({}):\n{stderr}", out.status);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("valid JSON");
    let m = &report["median"];
    let figure = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("figure {k} missing from {m}\n{stderr}"));
    for errors in ["cm_closed_errors", "cm_paced_errors", "pod_closed_errors", "watch_create_errors", "watch_missing"] {
        assert_eq!(figure(errors), 0.0, "{errors} in {m}\n{stderr}");
    }
    assert_eq!(figure("list_items"), 30.0);
    assert_eq!(figure("watch_deliveries"), 15.0, "3 watchers × 5 events");
    for present in
        ["idle_rss_mib", "pods_rss_mib", "list_ms", "list_table_ms", "list_paged_total_ms", "cm_closed_per_s"]
    {
        assert!(figure(present) > 0.0, "{present} in {m}");
    }
    // The tool's own guards removed the servers' data dirs.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("flt-bench-"))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "data dirs left behind: {left:?}");
}
