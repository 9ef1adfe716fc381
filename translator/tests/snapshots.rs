//! Snapshot tests: every project in `fixtures/compose/` is loaded and converted, and its objects (as
//! `flotilla convert` prints them) plus its warnings are compared with the reviewed snapshot in
//! `tests/snapshots/`. A change in the output shows up as a diff to review (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test -p translator --test snapshots` and read `git diff`).
//!
//! The environment is fixed (no process variables) so the output depends on the fixture alone, and the
//! repository's path is replaced by `<repo>` so snapshots do not depend on where the clone lives.

use std::path::{Path, PathBuf};

use translator::convert::render;
use translator::load::{Request, load};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate is in the workspace").to_path_buf()
}

/// The request a fixture's `args` file (`-f`, `-p`, `--profile`, `--env-file`, whitespace separated)
/// and `args.env` file (`KEY=VALUE` lines) describe.
fn request(dir: &Path) -> Request {
    let mut request = Request { cwd: dir.to_path_buf(), ..Request::default() };
    if let Ok(env) = std::fs::read_to_string(dir.join("args.env")) {
        for line in env.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            if let Some((k, v)) = line.split_once('=') {
                request.environment.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    let args = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
    let mut words = args.split_whitespace();
    while let Some(flag) = words.next() {
        let value = words.next().unwrap_or_else(|| panic!("{}: flag {flag} has no value", dir.display()));
        match flag {
            "-f" | "--file" => request.files.push(value.into()),
            "-p" | "--project-name" => request.project_name = Some(value.into()),
            "--profile" => request.profiles.push(value.into()),
            "--env-file" => request.env_files.push(value.into()),
            "--project-directory" => request.project_directory = Some(value.into()),
            other => panic!("{}: unknown flag {other} in args", dir.display()),
        }
    }
    request
}

fn render_fixture(dir: &Path) -> String {
    let text = match load(&request(dir)) {
        Err(errors) => format!("# refused by the loader\n{errors}\n"),
        Ok(loaded) => {
            let mut text = String::new();
            for w in &loaded.warnings {
                text.push_str(&format!("# {w}\n"));
            }
            match translator::project::convert_loaded(&loaded, &Default::default()) {
                Err(errors) => text.push_str(&format!("# refused by the converter\n{errors}\n")),
                Ok(conversion) => {
                    for w in &conversion.diagnostics {
                        text.push_str(&format!("# {w}\n"));
                    }
                    text.push_str(&render::to_yaml(&conversion.objects));
                }
            }
            text
        }
    };
    text.replace(&repo().display().to_string(), "<repo>")
}

#[test]
fn every_fixture_converts_as_reviewed() {
    let root = repo().join("fixtures/compose");
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&root).expect("fixtures/compose exists").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(dirs.len() >= 30, "expected at least 30 fixture projects, found {}", dirs.len());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for dir in &dirs {
            let name = dir.file_name().expect("a folder name").to_string_lossy().into_owned();
            insta::assert_snapshot!(name, render_fixture(dir));
        }
    });
}
