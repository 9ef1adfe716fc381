//! `flotilla up` end to end: each fixture app (`fixtures/compose/app-*`) on a real one-node cluster
//! (`flotilla server` with its in-process agent on the host's Docker), checked through its published
//! port on 127.0.0.1 with the same checks that prove the apps right under Docker Compose
//! (`common/apps.rs`), then `ps`, `logs`, `exec`, `scale`, a second `up` that changes nothing, and
//! `down`. Bad projects are refused before anything changes.
//!
//! Tier e2e. These tests use the root network namespace (the agent's bridge and nftables table, port
//! 10250, 127.0.0.1 published ports), so they run one at a time (the `root-ns` group of nextest).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::apps::{self, App};
use common::cluster::Cluster;
use common::{Finished, Tier};

const UP_TIMEOUT: Duration = Duration::from_secs(300);
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// A fixture app brought up with `flotilla up -d --wait` under a unique project name and host port.
struct UpProject<'a> {
    cluster: &'a Cluster,
    app: App,
    project: String,
    port: u16,
}

impl<'a> UpProject<'a> {
    fn up(cluster: &'a Cluster, app: App) -> UpProject<'a> {
        apps::ensure_base_images();
        let project = UpProject { cluster, app, project: format!("flt-{}", suffix()), port: apps::free_port() };
        let done = project.run(&["up", "-d", "--wait", "--wait-timeout", "180"], UP_TIMEOUT);
        project.expect_ok(&done, "up -d --wait");
        project
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![(self.app.port_var.to_owned(), self.port.to_string())]
    }

    fn run(&self, args: &[&str], timeout: Duration) -> Finished {
        // `-p` belongs to the subcommand: put it after the command word.
        let (command, rest) = args.split_first().expect("a command");
        let mut ordered = vec![*command, "-p", self.project.as_str()];
        ordered.extend_from_slice(rest);
        self.cluster.flotilla(&self.app.dir(), &ordered, &self.env(), timeout)
    }

    fn expect_ok(&self, done: &Finished, what: &str) {
        assert!(
            done.success(),
            "{}: flotilla {what} failed ({}):\nstdout:\n{}\nstderr:\n{}\nserver log (tail):\n{}",
            self.app.name,
            done.describe_status(),
            common::head(&done.stdout_text(), 40),
            common::head(&done.stderr_text(), 60),
            tail(&self.cluster.log(), 60)
        );
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn down(&self, extra: &[&str]) -> Finished {
        let mut args = vec!["down", "-t", "2"];
        args.extend_from_slice(extra);
        self.run(&args, DOWN_TIMEOUT)
    }
}

impl Drop for UpProject<'_> {
    fn drop(&mut self) {
        let done = self.down(&["-v"]);
        if !done.success() {
            eprintln!("cleanup: flotilla down -v of {} failed: {}", self.project, done.stderr_text());
        }
    }
}

fn suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() & 0xffff_ffff)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn counter_runs_and_second_up_changes_nothing() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let project = UpProject::up(&cluster, apps::COUNTER);
    apps::check_counter(project.addr());

    let ps = project.run(&["ps"], Duration::from_secs(60));
    project.expect_ok(&ps, "ps");
    let table = ps.stdout_text();
    assert!(table.starts_with("SERVICE"), "ps header: {table}");
    assert!(table.lines().any(|l| l.starts_with("web") && l.contains("running")), "ps: {table}");
    assert!(table.lines().any(|l| l.starts_with("redis") && l.contains("running")), "ps: {table}");
    assert!(table.contains(&format!("0.0.0.0:{}->8000/tcp", project.port)), "ps ports: {table}");

    let pods_before = cluster.kubectl(&["get", "pods", "-n", &project.project, "-o", "name"]).stdout_text();
    let again = project.run(&["up", "-d", "--wait"], UP_TIMEOUT);
    project.expect_ok(&again, "second up");
    assert!(!again.stderr_text().contains("Recreated"), "second up changed something:\n{}", again.stderr_text());
    let pods_after = cluster.kubectl(&["get", "pods", "-n", &project.project, "-o", "name"]).stdout_text();
    assert_eq!(pods_before, pods_after, "a second up replaced pods");

    let exec = project.run(&["exec", "-T", "redis", "redis-cli", "ping"], Duration::from_secs(60));
    project.expect_ok(&exec, "exec");
    assert_eq!(exec.stdout_text().trim(), "PONG");
    let failing = project.run(&["exec", "-T", "redis", "sh", "-c", "exit 3"], Duration::from_secs(60));
    assert_eq!(failing.status.and_then(|s| s.code()), Some(3), "exec passes the exit code through");

    let logs = project.run(&["logs", "--tail", "50", "redis"], Duration::from_secs(60));
    project.expect_ok(&logs, "logs");
    assert!(logs.stdout_text().lines().any(|l| l.contains(" | ")), "logs have prefixes:\n{}", logs.stdout_text());

    let down = project.down(&[]);
    project.expect_ok(&down, "down");
    let left = cluster.kubectl(&["get", "pods", "-n", &project.project, "-o", "name"]).stdout_text();
    assert!(left.trim().is_empty(), "pods left after down: {left}");
}

#[test]
fn three_tier_starts_api_after_db_is_healthy() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let project = UpProject::up(&cluster, apps::THREE_TIER);
    apps::check_three_tier(project.addr());
}

#[test]
fn worker_consumes_the_queue() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let project = UpProject::up(&cluster, apps::WORKER);
    apps::check_worker(project.addr());
}

#[test]
fn stateful_data_survives_down_and_up() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let project = UpProject::up(&cluster, apps::STATEFUL);
    let note = format!("note {}", suffix());
    apps::check_stateful_write(project.addr(), &note);
    let down = project.down(&[]);
    project.expect_ok(&down, "down");
    let up = project.run(&["up", "-d", "--wait"], UP_TIMEOUT);
    project.expect_ok(&up, "up after down");
    apps::check_stateful_kept(project.addr(), &note);
}

#[test]
fn scaled_service_answers_from_three_pods_behind_one_name() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let project = UpProject::up(&cluster, apps::SCALED);
    apps::check_scaled(project.addr());

    // `scale` changes the count; `restart` replaces the pods; both through the CLI.
    let pods = |cluster: &Cluster| {
        let out = cluster.kubectl(&[
            "get",
            "pods",
            "-n",
            &project.project,
            "-l",
            "compose.flotilla.dev/service=whoami",
            "-o",
            "name",
        ]);
        out.stdout_text().lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let scaled = project.run(&["scale", "whoami=1"], UP_TIMEOUT);
    project.expect_ok(&scaled, "scale whoami=1");
    apps::retry("whoami scaled to one pod", || {
        let now = pods(&cluster);
        if now.len() == 1 { Ok(()) } else { Err(format!("{now:?}")) }
    });
    let before = pods(&cluster);
    let restarted = project.run(&["restart", "whoami"], UP_TIMEOUT);
    project.expect_ok(&restarted, "restart whoami");
    apps::retry("whoami's pod replaced by restart", || {
        let now = pods(&cluster);
        if now.len() == 1 && now != before { Ok(()) } else { Err(format!("{now:?}")) }
    });
}

/// Writes a one-file project into a temp dir.
fn project_dir(compose: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("flt-up-").tempdir().expect("temp dir");
    std::fs::write(dir.path().join("compose.yaml"), compose).expect("write compose.yaml");
    dir
}

fn namespace_exists(cluster: &Cluster, ns: &str) -> bool {
    cluster.kubectl(&["get", "namespace", ns]).success()
}

#[test]
fn missing_image_is_refused_before_anything_changes() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    let cluster = Cluster::start();
    let name = format!("flt-{}", suffix());
    let dir = project_dir("services:\n  ghost:\n    image: flotilla-test/no-such-image:1\n");
    let done = cluster.flotilla(dir.path(), &["up", "-d", "-p", &name], &[], UP_TIMEOUT);
    assert_eq!(done.status.and_then(|s| s.code()), Some(1), "{}", done.stderr_text());
    let err = done.stderr_text();
    assert!(err.contains("\"ghost\"") && err.contains("flotilla-test/no-such-image:1"), "{err}");
    assert!(!namespace_exists(&cluster, &name), "the namespace was created although up was refused");
}

#[test]
fn crash_loop_fails_wait_naming_pod_and_last_log_lines() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    apps::ensure_base_images();
    let cluster = Cluster::start();
    let name = format!("flt-{}", suffix());
    let dir = project_dir(
        "services:\n  crasher:\n    image: flotilla-fixtures/busybox:1\n    pull_policy: never\n    \
         command: [\"sh\", \"-c\", \"echo the-last-words; exit 4\"]\n",
    );
    let done =
        cluster.flotilla(dir.path(), &["up", "-d", "--wait", "--wait-timeout", "120", "-p", &name], &[], UP_TIMEOUT);
    let down = cluster.flotilla(dir.path(), &["down", "-v", "-t", "1", "-p", &name], &[], DOWN_TIMEOUT);
    assert!(!done.success(), "up --wait succeeded for a crashing service");
    let err = done.stderr_text();
    assert!(err.contains("crasher") && err.contains("CrashLoopBackOff"), "{err}");
    assert!(err.contains("the-last-words"), "no log lines in: {err}");
    assert!(down.success(), "down: {}", down.stderr_text());
}

#[test]
fn foreground_up_follows_logs_and_ctrl_c_stops_the_project() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    apps::ensure_base_images();
    let cluster = Cluster::start();
    let app = apps::COUNTER;
    let project = format!("flt-{}", suffix());
    let port = apps::free_port();
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = std::process::Command::new(common::flotilla_bin())
        .current_dir(app.dir())
        .env(app.port_var, port.to_string())
        .args(["--kubeconfig"])
        .arg(cluster.kubeconfig())
        .args(["up", "-p", &project])
        .stdin(std::process::Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flotilla up");
    let guard = UpProject { cluster: &cluster, app, project: project.clone(), port };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    apps::check_counter(addr);
    // The logs are followed: the web service's access log shows the checks' requests.
    apps::retry("the access log in up's output", || {
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        if text.lines().any(|l| l.contains(" | ") && l.contains("GET /")) { Ok(()) } else { Err(text) }
    });
    let _ = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "up did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "up exited with {status} after Ctrl-C");
    let replicas = cluster.kubectl(&["get", "deploy", "-n", &project, "-o", "jsonpath={.items[*].spec.replicas}"]);
    assert_eq!(replicas.stdout_text().trim(), "0 0", "Ctrl-C leaves every service stopped");
    // `up` again starts what Ctrl-C stopped.
    let again = guard.run(&["up", "-d", "--wait"], UP_TIMEOUT);
    guard.expect_ok(&again, "up after Ctrl-C");
    apps::check_counter(addr);
}

#[test]
fn an_edit_changes_only_its_service_and_build_takes_args_and_target() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    apps::ensure_base_images();
    let cluster = Cluster::start();
    let name = format!("flt-{}", suffix());
    let image = format!("flotilla-test/{name}-built:1");
    let compose = |greeting: &str| {
        format!(
            "services:\n  \
               built:\n    image: {image}\n    \
                 build:\n      context: ./app\n      dockerfile: Custom.Dockerfile\n      target: final\n      \
                   args:\n        GREETING: {greeting}\n    \
                 command: [\"sh\", \"-c\", \"cat /greeting; exec sleep 3600\"]\n  \
               other:\n    image: flotilla-fixtures/busybox:1\n    pull_policy: never\n    \
                 command: [\"sleep\", \"3600\"]\n"
        )
    };
    let dir = project_dir(&compose("hello"));
    std::fs::create_dir(dir.path().join("app")).expect("mkdir");
    std::fs::write(
        dir.path().join("app/Custom.Dockerfile"),
        "FROM flotilla-fixtures/busybox:1 AS base\nARG GREETING=unset\nRUN echo \"$GREETING from the build\" > /greeting\n\
         FROM base AS final\nRUN echo built-final > /stage\nFROM base AS unused\nRUN false\n",
    )
    .expect("Dockerfile");
    let run = |args: &[&str]| cluster.flotilla(dir.path(), args, &[], UP_TIMEOUT);
    let first = run(&["up", "-d", "--wait", "-p", &name]);
    let cleanup = scopeguard(|| {
        run(&["down", "-v", "-t", "1", "-p", &name]);
        let _ = std::process::Command::new("docker").args(["image", "rm", "-f", &image]).output();
    });
    assert!(first.success(), "first up: {}\n{}", first.stderr_text(), tail(&cluster.log(), 40));
    let logs = run(&["logs", "-p", &name, "built"]);
    assert!(
        logs.stdout_text().contains("hello from the build"),
        "build args reached the image: {}",
        logs.stdout_text()
    );

    // Edit one service's build argument: only that service is recreated (and rebuilt with --build).
    std::fs::write(dir.path().join("compose.yaml"), compose("bonjour")).expect("edit");
    let second = run(&["up", "-d", "--wait", "--build", "-p", &name]);
    assert!(second.success(), "second up: {}", second.stderr_text());
    let err = second.stderr_text();
    assert!(err.lines().any(|l| l.contains("Service other") && l.contains("Running")), "other untouched:\n{err}");
    assert!(!err.lines().any(|l| l.contains("Service other") && l.contains("Recreated")), "other recreated:\n{err}");
    drop(cleanup);
}

/// Runs `f` when dropped, even while a failed assertion unwinds.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[test]
fn a_published_port_already_taken_fails_loudly() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    apps::ensure_base_images();
    let cluster = Cluster::start();
    let name = format!("flt-{}", suffix());
    // Another program holds the port, as a second web server would.
    let holder = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let dir = project_dir(&format!(
        "services:\n  web:\n    image: flotilla-fixtures/busybox:1\n    pull_policy: never\n    \
         command: [\"sleep\", \"3600\"]\n    ports:\n      - \"{port}:80\"\n"
    ));
    let done = cluster.flotilla(dir.path(), &["up", "-d", "--wait", "-p", &name], &[], UP_TIMEOUT);
    let down = cluster.flotilla(dir.path(), &["down", "-v", "-t", "1", "-p", &name], &[], DOWN_TIMEOUT);
    drop(holder);
    assert_eq!(done.status.and_then(|s| s.code()), Some(1), "up succeeded although port {port} is taken");
    let err = done.stderr_text();
    assert!(err.contains(&port.to_string()) && err.contains("web"), "the error names the port and service: {err}");
    assert!(down.success(), "down: {}", down.stderr_text());
}

/// `up` with no kubeconfig and no server: it starts `flotilla server` in the default data dir, in the
/// background, and goes on; `flotilla server stop` stops it. Uses the default data dir and port 6443, so
/// it belongs to the root-ns group like the rest of this file; it removes the data dir when it made it.
#[test]
fn up_starts_the_embedded_server_when_none_answers() {
    if common::skip_tier(Tier::E2e) {
        return;
    }
    apps::ensure_base_images();
    let data_dir = std::path::PathBuf::from("/var/lib/flotilla");
    let existed = data_dir.exists();
    let app = apps::COUNTER;
    let project = format!("flt-{}", suffix());
    let port = apps::free_port();
    let env = vec![(app.port_var.to_owned(), port.to_string())];
    let flotilla = |args: &[&str]| {
        common::run(
            {
                let mut c = common::fixed_command(&common::flotilla_bin(), &app.dir(), &env);
                c.args(args);
                c
            },
            None,
            UP_TIMEOUT,
        )
    };
    let up = flotilla(&["up", "-d", "--wait", "-p", &project]);
    let stop = scopeguard(|| {
        flotilla(&["down", "-v", "-t", "1", "-p", &project]);
        flotilla(&["server", "stop"]);
        common::cluster::remove_node_network();
        if !existed {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
    });
    assert!(
        up.success(),
        "up: {}\n{}",
        up.stderr_text(),
        std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default()
    );
    assert!(up.stderr_text().contains("Started the cluster server"), "{}", up.stderr_text());
    apps::check_counter(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let kubeconfig = flotilla(&["kubeconfig"]);
    assert!(kubeconfig.stdout_text().contains("certificate-authority-data"), "{}", kubeconfig.stdout_text());
    drop(stop);
}
