//! `flotilla convert` on every fixture project: the output must be valid for Kubernetes 1.33 and
//! byte-identical across runs.
//!
//! Each fixture under `fixtures/compose/` runs in its folder with its `args` (and `args.env`), under the
//! fixed environment of [`common::FIXED_ENV`]. Validation is `kubernetes-validate --strict
//! --kubernetes-version 1.33.0 -` (PyPI; its schemas are bundled, so it works offline) fed the YAML on
//! stdin. The validator exits 0 for a kind it has no schema for (it only prints `WARN`) and for empty
//! input, so the test also fails on any `WARN`/`ERROR`/`FATAL` line and on output without a single
//! validated object.

mod common;

use std::fmt::Write as _;

use common::{Project, Tier};

const KUBERNETES_VERSION: &str = "1.33.0";

fn convert(case: &Project) -> common::Finished {
    let mut cmd = common::fixed_command(&common::flotilla_bin(), &case.dir, &case.env);
    cmd.arg("convert").args(&case.args);
    common::run(cmd, None, common::CHILD_TIMEOUT)
}

fn convert_line(case: &Project) -> String {
    format!(
        "cd {} && {} convert{}",
        case.dir.display(),
        common::flotilla_bin().display(),
        case.args.iter().map(|a| format!(" {a}")).collect::<String>()
    )
}

/// Runs `convert` and returns its stdout, or a report of why it failed.
fn converted(case: &Project) -> Result<Vec<u8>, String> {
    let run = convert(case);
    if !run.success() {
        return Err(format!(
            "{}: convert failed ({})\n  {}\n{}",
            case.name,
            run.describe_status(),
            convert_line(case),
            indent(&common::head(&run.stderr_text(), 10))
        ));
    }
    if run.stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{}: convert succeeded but printed nothing\n  {}", case.name, convert_line(case)));
    }
    Ok(run.stdout)
}

#[test]
fn convert_output_is_valid_for_kubernetes_1_33() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let validator = common::kubernetes_validate_bin();
    let fixtures = common::fixture_projects();
    let failures: Vec<String> = common::parallel_map(&fixtures, |case| {
        let yaml = converted(case)?;
        let mut cmd = common::fixed_command(&validator, &case.dir, &[]);
        cmd.args(["--strict", "--kubernetes-version", KUBERNETES_VERSION, "-"]);
        let run = common::run(cmd, Some(&yaml), common::CHILD_TIMEOUT);
        let out = String::from_utf8_lossy(&run.stdout).into_owned() + &run.stderr_text();
        let complaints: Vec<&str> =
            out.lines().filter(|l| l.starts_with("WARN") || l.starts_with("ERROR") || l.starts_with("FATAL")).collect();
        let passed = out.lines().filter(|l| l.starts_with("INFO") && l.contains(" passed ")).count();
        if run.success() && complaints.is_empty() && passed > 0 {
            return Ok(());
        }
        let mut report = format!(
            "{}: kubernetes-validate {} ({} objects passed)\n  {} | {} --strict --kubernetes-version {KUBERNETES_VERSION} -\n",
            case.name,
            run.describe_status(),
            passed,
            convert_line(case),
            validator.display()
        );
        let shown = if complaints.is_empty() { common::head(&out, 20) } else { common::head(&complaints.join("\n"), 20) };
        let _ = write!(report, "{}", indent(&shown));
        Err(report)
    })
    .into_iter()
    .filter_map(Result::err)
    .collect();
    report(&failures, fixtures.len(), "convert output must be valid for Kubernetes 1.33");
}

#[test]
fn convert_output_is_deterministic() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let fixtures = common::fixture_projects();
    let failures: Vec<String> = common::parallel_map(&fixtures, |case| {
        let first = converted(case)?;
        let second = converted(case)?;
        if first == second {
            return Ok(());
        }
        let (a, b) = (String::from_utf8_lossy(&first), String::from_utf8_lossy(&second));
        let line = a
            .lines()
            .zip(b.lines())
            .position(|(x, y)| x != y)
            .unwrap_or_else(|| a.lines().count().min(b.lines().count()));
        Err(format!(
            "{}: two runs of convert differ, first at line {}\n    run 1: {:?}\n    run 2: {:?}\n  {}",
            case.name,
            line + 1,
            a.lines().nth(line).unwrap_or("<end of output>"),
            b.lines().nth(line).unwrap_or("<end of output>"),
            convert_line(case)
        ))
    })
    .into_iter()
    .filter_map(Result::err)
    .collect();
    report(&failures, fixtures.len(), "convert output must be byte-identical across runs");
}

fn report(failures: &[String], total: usize, rule: &str) {
    if failures.is_empty() {
        eprintln!("all {total} fixtures ok");
        return;
    }
    panic!("{} of {total} fixtures fail ({rule}):\n\n{}", failures.len(), failures.join("\n\n"));
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
