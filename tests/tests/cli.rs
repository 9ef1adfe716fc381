//! The command line's contract, on real fixtures through the built binary: output formats, `-o DIR`,
//! `--strict`, `explain`, and the exit codes (0 with warnings, 1 when refused, 2 for a bad command line).

mod common;

use std::path::Path;

use common::Tier;

fn flotilla(dir: &Path, args: &[&str]) -> common::Finished {
    let mut cmd = common::fixed_command(&common::flotilla_bin(), dir, &[]);
    cmd.args(args);
    common::run(cmd, None, common::CHILD_TIMEOUT)
}

fn fixture(name: &str) -> std::path::PathBuf {
    common::repo_root().join("fixtures/compose").join(name)
}

#[test]
fn convert_formats_agree_and_out_dir_holds_one_file_per_object() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let dir = fixture("voting-app");
    let yaml = flotilla(&dir, &["convert"]);
    assert!(yaml.success(), "{}", yaml.stderr_text());
    let documents = String::from_utf8_lossy(&yaml.stdout).matches("\n---\n").count() + 1;

    let json = flotilla(&dir, &["convert", "--format", "json"]);
    assert!(json.success(), "{}", json.stderr_text());
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).expect("convert --format json prints JSON");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("a List has items");
    assert_eq!(items.len(), documents, "YAML and JSON hold the same objects");

    let out = tempfile::tempdir().expect("a temporary folder");
    let written = flotilla(&dir, &["convert", "-o", out.path().to_str().unwrap()]);
    assert!(written.success() && written.stdout.is_empty(), "{}", written.stderr_text());
    let mut files: Vec<String> =
        std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files.len(), items.len(), "one file per object: {files:?}");
    assert!(files.contains(&"deployment-vote.yaml".to_owned()), "{files:?}");
    assert!(files.contains(&"service-vote-published.yaml".to_owned()), "{files:?}");
}

#[test]
fn warnings_exit_zero_and_strict_refuses_them_without_output() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let dir = fixture("unsupported-keys");
    let lenient = flotilla(&dir, &["convert"]);
    assert!(lenient.success(), "warnings alone do not fail: {}", lenient.stderr_text());
    assert!(
        lenient.stderr_text().lines().any(|l| l.starts_with("warning: compose.yaml:")),
        "{}",
        lenient.stderr_text()
    );
    assert!(!lenient.stdout.is_empty());

    let strict = flotilla(&dir, &["convert", "--strict"]);
    assert_eq!(strict.status.and_then(|s| s.code()), Some(1), "{}", strict.stderr_text());
    assert!(strict.stdout.is_empty(), "nothing is printed when refused");
    assert!(strict.stderr_text().lines().all(|l| l.starts_with("error: ")), "{}", strict.stderr_text());
}

#[test]
fn explain_quotes_the_compose_lines_and_names_the_objects() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let dir = fixture("voting-app");
    let text = flotilla(&dir, &["explain"]);
    assert!(text.success(), "{}", text.stderr_text());
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("service vote"), "{text}");
    assert!(text.contains("|   vote:"), "the service's own lines are quoted with their numbers: {text}");
    assert!(text.contains("Deployment vote:"), "{text}");
    assert!(text.contains("Service vote-published:"), "{text}");

    let markdown = flotilla(&dir, &["explain", "--format", "markdown"]);
    let markdown = String::from_utf8_lossy(&markdown.stdout).into_owned();
    assert!(markdown.contains("## Service `vote`"), "{markdown}");
    assert!(markdown.contains("| Deployment `vote` |"), "{markdown}");
}

#[test]
fn config_yaml_and_json_hold_the_same_model() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let dir = fixture("anchors-merge-keys");
    let json = flotilla(&dir, &["config", "--format", "json"]);
    let yaml = flotilla(&dir, &["config"]);
    assert!(json.success() && yaml.success(), "{}{}", json.stderr_text(), yaml.stderr_text());
    let from_json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // The YAML is read back with Docker Compose itself: it must be a loadable compose file.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("compose.yaml"), &yaml.stdout).unwrap();
    let mut cmd = common::fixed_command(&common::compose_bin(), tmp.path(), &[]);
    cmd.args(["-p", from_json["name"].as_str().unwrap(), "config", "--format", "json"]);
    let reread = common::run(cmd, None, common::CHILD_TIMEOUT);
    assert!(reread.success(), "Compose reads our YAML back: {}", reread.stderr_text());
    let reread: serde_json::Value = serde_json::from_slice(&reread.stdout).unwrap();
    assert_eq!(reread["services"].as_object().map(|s| s.len()), from_json["services"].as_object().map(|s| s.len()));
}

#[test]
fn a_bad_command_line_exits_two() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let done = flotilla(&common::repo_root(), &["convert", "--format", "toml"]);
    assert_eq!(done.status.and_then(|s| s.code()), Some(2), "{}", done.stderr_text());
}
