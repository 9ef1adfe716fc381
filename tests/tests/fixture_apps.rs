//! The runnable fixture apps (`fixtures/compose/app-*`) run for real with Docker Compose v2: each test
//! brings one app up (`up -d --build --wait`, building its services from the offline base images of
//! `scripts/build-images`), checks it through its published port with the checks in `common/apps.rs`
//! (the ones the `flotilla up` end-to-end tests reuse), and removes it with `down -v` in a guard, even
//! when the check fails. This proves the fixtures right, independently of Flotilla.
//!
//! Each run uses a project name `flt-fx<unix time>-<random>` and a free host port for the app's published
//! port (its compose file reads `APP_<NAME>_PORT`), so runs do not collide with each other or with a
//! `flotilla up` of the same app. A run killed before its guard ran (a nextest timeout) leaves its
//! project behind; the next run removes such projects once they are an hour old (no test lasts that
//! long, so a project of a run still going is never touched). Tier: e2e (`FLOTILLA_SKIP_TIERS=e2e` skips
//! them). Needs root and a Docker engine.

mod common;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Tier;
use common::apps::{self, App};

/// Time limit for `up` (which builds the app's images: seconds when cached, a minute at most cold).
const UP_TIMEOUT: Duration = Duration::from_secs(240);
/// Time limit for `down` (the services exit on SIGTERM at once; `-t 2` bounds the rest).
const DOWN_TIMEOUT: Duration = Duration::from_secs(90);

/// The prefix of every Compose project these tests create.
const PROJECT_PREFIX: &str = "flt-fx";
/// Age after which a project of these tests is a leftover of a killed run.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Removes the projects (containers, networks, volumes) of earlier runs that were killed before their
/// guard ran: `flt-fx<unix time>-<random>` older than [`LEFTOVER_AGE`]. Best effort, once per process.
fn sweep_leftovers(compose: &Path) {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        let list = |args: &[&str]| -> Vec<String> {
            let mut cmd = common::fixed_command(Path::new("docker"), &common::repo_root(), &[]);
            cmd.args(args);
            let done = common::run(cmd, None, common::CHILD_TIMEOUT);
            String::from_utf8_lossy(&done.stdout).lines().map(str::to_owned).collect()
        };
        let mut projects = list(&["ps", "-a", "--format", "{{.Label \"com.docker.compose.project\"}}"]);
        projects.extend(list(&["volume", "ls", "--format", "{{.Label \"com.docker.compose.project\"}}"]));
        projects.sort();
        projects.dedup();
        let now = unix_now();
        for project in projects {
            let Some(rest) = project.strip_prefix(PROJECT_PREFIX) else { continue };
            let Some(started) = rest.split('-').next().and_then(|t| t.parse::<u64>().ok()) else { continue };
            if now.saturating_sub(started) < LEFTOVER_AGE.as_secs() {
                continue;
            }
            eprintln!("removing leftover Compose project {project} of an earlier, killed run");
            let mut cmd = common::fixed_command(compose, &common::repo_root(), &[]);
            cmd.args(["-p", &project, "down", "-v", "-t", "1", "--remove-orphans"]);
            let done = common::run(cmd, None, DOWN_TIMEOUT);
            if !done.success() {
                eprintln!("could not remove {project}: {}", common::head(&done.stderr_text(), 5));
            }
        }
    });
}

/// A random hex string, unique enough for names of concurrent test runs.
fn random_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// One Compose project of a fixture app; dropping it runs `down -v`.
struct ComposeProject {
    app: App,
    compose: PathBuf,
    project: String,
    port: u16,
}

impl ComposeProject {
    /// Brings `app` up under a fresh project name and host port, after making sure the base images exist.
    fn up(app: App) -> ComposeProject {
        apps::ensure_base_images();
        let compose = common::compose_bin();
        sweep_leftovers(&compose);
        let project = ComposeProject {
            app,
            compose,
            project: format!("{PROJECT_PREFIX}{}-{}", unix_now(), &random_suffix()[..6]),
            port: apps::free_port(),
        };
        project.start();
        project
    }

    /// `up -d --build --wait`; panics with Compose's output when it fails.
    fn start(&self) {
        self.compose(&["up", "-d", "--build", "--wait", "--wait-timeout", "120"], UP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `down` with `extra` arguments (`-v` to remove the named volumes too).
    fn down(&self, extra: &[&str]) -> Result<(), String> {
        let mut args = vec!["down", "-t", "2", "--remove-orphans"];
        args.extend_from_slice(extra);
        self.compose(&args, DOWN_TIMEOUT)
    }

    fn compose(&self, args: &[&str], timeout: Duration) -> Result<(), String> {
        let env = [(self.app.port_var.to_owned(), self.port.to_string())];
        let mut cmd = common::fixed_command(&self.compose, &self.app.dir(), &env);
        cmd.arg("-p").arg(&self.project).args(args);
        let done = common::run(cmd, None, timeout);
        if done.success() {
            return Ok(());
        }
        Err(format!(
            "{}: `{} -p {} {}` ({}={}) failed ({}):\n{}",
            self.app.name,
            self.compose.display(),
            self.project,
            args.join(" "),
            self.app.port_var,
            self.port,
            done.describe_status(),
            common::head(&done.stderr_text(), 40)
        ))
    }

    /// The published port on 127.0.0.1.
    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if let Err(e) = self.down(&["-v"]) {
            // Never panic in drop (it may run while a failed check unwinds); say what was left behind.
            eprintln!("cleanup: {e}");
        }
    }
}

#[test]
fn app_counter_counts_visits_in_redis() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let project = ComposeProject::up(apps::COUNTER);
    apps::check_counter(project.addr());
}

#[test]
fn app_three_tier_answers_through_frontend_api_and_db() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let project = ComposeProject::up(apps::THREE_TIER);
    apps::check_three_tier(project.addr());
}

#[test]
fn app_worker_processes_a_queued_job() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let project = ComposeProject::up(apps::WORKER);
    apps::check_worker(project.addr());
}

#[test]
fn app_stateful_keeps_its_notes_across_down_and_up() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let project = ComposeProject::up(apps::STATEFUL);
    let note = format!("note {}", random_suffix());
    apps::check_stateful_write(project.addr(), &note);
    // `down` without -v keeps the named volume; the new container must find the note in it.
    project.down(&[]).unwrap_or_else(|e| panic!("{e}"));
    project.start();
    apps::check_stateful_kept(project.addr(), &note);
}

#[test]
fn app_scaled_answers_from_three_replicas() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let project = ComposeProject::up(apps::SCALED);
    apps::check_scaled(project.addr());
}
