//! Snapshot tests: `flotilla convert` on every project in `fixtures/compose/` (in its folder, with its
//! `args`, under the fixed environment), its stdout and stderr compared with the reviewed snapshot in
//! `tests/tests/snapshots/`. A change in the output shows up as a diff to review: run
//! `INSTA_UPDATE=always scripts/test snapshots` (or `cargo insta review`) and read `git diff`.
//! With `CI` set, insta never writes snapshots and a mismatch fails the test.

mod common;

use common::Tier;

#[test]
fn every_fixture_converts_as_reviewed() {
    if common::skip_tier(Tier::Conformance) {
        return;
    }
    let projects = common::fixture_projects();
    assert!(projects.len() >= 30, "expected at least 30 fixture projects, found {}", projects.len());
    let outputs = common::parallel_map(&projects, |case| {
        let mut cmd = common::fixed_command(&common::flotilla_bin(), &case.dir, &case.env);
        cmd.arg("convert").args(&case.args);
        let done = common::run(cmd, None, common::CHILD_TIMEOUT);
        let stderr: String = done.stderr_text().lines().map(|l| format!("# {l}\n")).collect();
        let root = common::repo_root().display().to_string();
        let text = format!("# {}\n{stderr}{}", done.describe_status(), String::from_utf8_lossy(&done.stdout));
        text.replace(&root, "<repo>")
    });
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for (case, output) in projects.iter().zip(outputs) {
            let name = case.name.trim_start_matches("fixtures/").to_owned();
            insta::assert_snapshot!(name, output);
        }
    });
}
