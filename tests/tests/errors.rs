//! The error contract on bad input: for every project in `fixtures/compose-invalid/` (inputs Docker
//! Compose refuses) and `fixtures/flotilla-invalid/` (inputs Compose accepts but that cannot become valid
//! Kubernetes objects), `flotilla convert` exits 1, prints nothing on stdout, and its first stderr line is
//! `error: FILE:LINE:COL: ...` at the position the case's `expect` file names (`... @ LINE:COL` at the end
//! of its first line). `flotilla config` refuses the `compose-invalid` ones the same way.

mod common;

use std::fmt::Write as _;

use common::{Project, Tier};

/// The `@ LINE:COL` an `expect` file names.
fn expected_position(case: &Project) -> (u32, u32) {
    let text = std::fs::read_to_string(case.dir.join("expect"))
        .unwrap_or_else(|e| panic!("{}: no expect file: {e}", case.name));
    let first = text.lines().next().unwrap_or_default();
    let (_, at) = first.rsplit_once('@').unwrap_or_else(|| panic!("{}: expect has no `@ LINE:COL`", case.name));
    let (line, col) = at.trim().split_once(':').unwrap_or_else(|| panic!("{}: bad position {at:?}", case.name));
    (line.trim().parse().expect("a line number"), col.trim().parse().expect("a column number"))
}

/// `(line, col)` of the first `error: FILE:LINE:COL:` line, if the output has one.
fn reported_position(stderr: &str) -> Option<(u32, u32)> {
    let first = stderr.lines().find(|l| l.starts_with("error: "))?;
    let mut parts = first.trim_start_matches("error: ").splitn(4, ':');
    let _file = parts.next()?;
    let line = parts.next()?.trim().parse().ok()?;
    let col = parts.next()?.trim().parse().ok()?;
    Some((line, col))
}

fn check(case: &Project, command: &str) -> Option<String> {
    let mut cmd = common::fixed_command(&common::flotilla_bin(), &case.dir, &case.env);
    cmd.arg(command).args(&case.args);
    let done = common::run(cmd, None, common::CHILD_TIMEOUT);
    let stderr = done.stderr_text();
    let mut problems = Vec::new();
    if done.status.and_then(|s| s.code()) != Some(1) {
        problems.push(format!("exit status {} (want exit 1)", done.describe_status()));
    }
    if !done.stdout.is_empty() {
        problems.push(format!("{} bytes on stdout (want none)", done.stdout.len()));
    }
    if stderr.contains("panicked") {
        problems.push("it panicked".into());
    }
    let want = expected_position(case);
    match reported_position(&stderr) {
        Some(got) if got == want => {}
        Some(got) => problems.push(format!("reported at {}:{} (want {}:{})", got.0, got.1, want.0, want.1)),
        None => problems.push("no `error: FILE:LINE:COL:` line".into()),
    }
    (!problems.is_empty()).then(|| {
        format!("{} ({command}): {}\n    stderr: {}", case.name, problems.join("; "), common::head(&stderr, 4))
    })
}

#[test]
fn bad_input_is_refused_at_its_position() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let root = common::repo_root().join("fixtures");
    let refused_by_compose = common::project_dirs(&root.join("compose-invalid"), "compose-invalid");
    let refused_by_us = common::project_dirs(&root.join("flotilla-invalid"), "flotilla-invalid");
    assert!(refused_by_compose.len() >= 12, "expected the compose-invalid cases");
    assert!(!refused_by_us.is_empty(), "expected the flotilla-invalid cases");
    let mut jobs: Vec<(&Project, &str)> = Vec::new();
    for case in &refused_by_compose {
        jobs.push((case, "config"));
        jobs.push((case, "convert"));
    }
    for case in &refused_by_us {
        jobs.push((case, "convert"));
    }
    let failures: Vec<String> =
        common::parallel_map(&jobs, |(case, command)| check(case, command)).into_iter().flatten().collect();
    let mut report = String::new();
    for f in &failures {
        let _ = writeln!(report, "{f}");
    }
    assert!(failures.is_empty(), "{} of {} checks failed:\n{report}", failures.len(), jobs.len());
}
