//! The typed model reproduces compose's canonical JSON exactly: decode, re-encode, compare.
//!
//! Pure by default: it reads the committed snapshots in `data/model/` (what Docker Compose v2 printed).
//! With `COMPOSE_BIN` set it also runs that binary on `data/model/inputs/*` and on the awesome-compose
//! corpus beside the repo, and checks the live output; with `UPDATE_MODEL_SNAPSHOTS=1` as well, it
//! rewrites the snapshots from it.

use std::path::{Path, PathBuf};
use std::process::Command;

use translator::model;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/model")
}

/// Decodes `text`, re-encodes it and asserts equality; also that every key was known to the model.
fn check(name: &str, text: &str) {
    let original: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: bad json: {e}"));
    let (project, unknown) =
        model::from_json_reporting_unknown(original.clone()).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert!(unknown.is_empty(), "{name}: keys the model does not know: {unknown:?}");
    let again = serde_json::to_value(&project).unwrap();
    if again != original {
        let a = serde_json::to_string_pretty(&original).unwrap();
        let b = serde_json::to_string_pretty(&again).unwrap();
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(5)
            .map(|(i, (x, y))| format!("line {}: {x} != {y}", i + 1))
            .collect();
        panic!("{name}: round trip differs:\n{}", diff.join("\n"));
    }
    // Serialising twice gives the same text: our output is deterministic.
    assert_eq!(
        serde_json::to_string(&project).unwrap(),
        serde_json::to_string(&model::from_json(again).unwrap()).unwrap()
    );
}

#[test]
fn snapshots_round_trip() {
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(data_dir()).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            check(&path.file_name().unwrap().to_string_lossy(), &text);
            count += 1;
        }
    }
    assert!(count >= 40, "expected the awesome-compose snapshots and our own, found {count}");
}

#[test]
fn live_compose_round_trips() {
    let Some(bin) = std::env::var_os("COMPOSE_BIN") else { return };
    let update = std::env::var_os("UPDATE_MODEL_SNAPSHOTS").is_some();
    let mut projects: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(data_dir().join("inputs")).unwrap().flatten() {
        projects.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/awesome-compose");
    if let Ok(dir) = std::fs::read_dir(&corpus) {
        for entry in dir.flatten() {
            projects.push((format!("awesome-compose-{}", entry.file_name().to_string_lossy()), entry.path()));
        }
    }
    for (name, dir) in projects {
        let out = Command::new(&bin).args(["config", "--format", "json"]).current_dir(&dir).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        check(&name, &text);
        if update {
            std::fs::write(data_dir().join(format!("{name}.json")), text).unwrap();
        }
    }
}

#[test]
fn lenient_on_scalars() {
    let project = model::from_json(serde_json::json!({
        "services": {"a": {
            "environment": {"N": 1, "B": true, "U": null},
            "labels": {"n": 2},
            "ports": [{"target": "80", "published": 8080}],
            "mem_limit": "1g",
            "stop_grace_period": 5,
            "command": "run"
        }}
    }))
    .unwrap();
    let a = &project.services["a"];
    let env = a.environment.as_ref().unwrap();
    assert_eq!(env["N"].as_deref(), Some("1"));
    assert_eq!(env["B"].as_deref(), Some("true"));
    assert_eq!(env["U"], None);
    assert_eq!(a.label("n"), Some("2"));
    let port = &a.ports.as_ref().unwrap()[0];
    assert_eq!(port.target.as_ref().and_then(|t| t.as_i64()), Some(80));
    assert_eq!(port.published.as_ref().and_then(|t| t.as_i64()), Some(8080));
    assert_eq!(a.mem_limit.as_ref().and_then(|m| m.bytes()), Some(1 << 30));
    assert_eq!(a.stop_grace_period.as_ref().and_then(|d| d.seconds()), Some(5));
    assert_eq!(a.command(), Some(&vec!["run".to_string()]));
}

#[test]
fn null_and_absent_stay_apart() {
    let project = model::from_json(serde_json::json!({
        "services": {"a": {"command": null, "networks": {"default": null, "n": {}}}}
    }))
    .unwrap();
    let a = &project.services["a"];
    assert_eq!(a.command, Some(None));
    assert_eq!(a.entrypoint, None);
    let json = serde_json::to_value(&project).unwrap();
    assert_eq!(json["services"]["a"]["command"], serde_json::Value::Null);
    assert!(json["services"]["a"].get("entrypoint").is_none());
    assert_eq!(json["services"]["a"]["networks"], serde_json::json!({"default": null, "n": {}}));
}
