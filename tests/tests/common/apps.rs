//! The runnable fixture apps (`fixtures/compose/app-*`) and, for each, the check that it works, made
//! through its published port: the same checks serve the Docker Compose tests (`fixture_apps.rs`, which
//! prove the fixtures right) and the `flotilla up` end-to-end tests.
//!
//! Every app publishes one port, `${APP_<NAME>_PORT:-<default>}:8000` in its compose file, so a test can
//! pick a free port ([`free_port`]) and run beside another test of the same app. The checks talk plain
//! HTTP/1.0 over `std::net::TcpStream` and retry within a bound, since a service may still be starting
//! when `up` returns: every loop here ends with a panic naming the app, the address and the last answer.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::repo_root;

/// How long a check waits for an app to answer as expected (first start of Python services included).
pub const APP_TIMEOUT: Duration = Duration::from_secs(90);

/// One runnable fixture app.
#[derive(Clone, Copy, Debug)]
pub struct App {
    /// Folder name under `fixtures/compose/`.
    pub name: &'static str,
    /// The variable its compose file reads the published host port from.
    pub port_var: &'static str,
    /// The published host port when that variable is unset.
    pub default_port: u16,
}

pub const COUNTER: App = App { name: "app-counter", port_var: "APP_COUNTER_PORT", default_port: 18080 };
pub const THREE_TIER: App = App { name: "app-three-tier", port_var: "APP_THREE_TIER_PORT", default_port: 18081 };
pub const WORKER: App = App { name: "app-worker", port_var: "APP_WORKER_PORT", default_port: 18082 };
pub const STATEFUL: App = App { name: "app-stateful", port_var: "APP_STATEFUL_PORT", default_port: 18083 };
pub const SCALED: App = App { name: "app-scaled", port_var: "APP_SCALED_PORT", default_port: 18084 };

pub const ALL: [App; 5] = [COUNTER, THREE_TIER, WORKER, STATEFUL, SCALED];

impl App {
    /// The app's folder (the project directory for Compose and `flotilla up`).
    pub fn dir(&self) -> PathBuf {
        repo_root().join("fixtures").join("compose").join(self.name)
    }
}

/// The images the apps are built from (`scripts/build-images`).
pub const BASE_IMAGES: [&str; 3] =
    ["flotilla-fixtures/busybox:1", "flotilla-fixtures/redis:1", "flotilla-fixtures/python:1"];

/// Makes sure the base images exist by running `scripts/build-images` once per test process. It is
/// idempotent (a no-op taking a fraction of a second when they are current), offline, and serialises
/// parallel callers with a lock, so every test needing the images may call this.
pub fn ensure_base_images() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let script = repo_root().join("scripts").join("build-images");
        let mut cmd = super::fixed_command(&script, &repo_root(), &[("QUIET".to_owned(), "1".to_owned())]);
        cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let done = super::run(cmd, None, Duration::from_secs(300));
        if done.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}); it builds {} offline from Debian packages that scripts/install-deps installs:\n{}",
                script.display(),
                done.describe_status(),
                BASE_IMAGES.join(", "),
                super::head(&done.stderr_text(), 20)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound and released), for an app's published port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port on 127.0.0.1");
    listener.local_addr().expect("a bound listener has an address").port()
}

// --- HTTP ----------------------------------------------------------------------------------------------

/// A parsed HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.0 request on a fresh connection with 10 s timeouts; `Err` describes what went wrong.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let timeout = Duration::from_secs(10);
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    conn.write_all(request.as_bytes()).map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}: incomplete answer {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: bad status line in {head:?}"))?;
    Ok(Answer { status, body: body.to_owned() })
}

pub fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    http(addr, "GET", path, &[], "")
}

/// Retries `attempt` every 250 ms until it returns `Ok` or [`APP_TIMEOUT`] has passed, then panics with
/// `what` and the last error.
pub fn retry<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + APP_TIMEOUT;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: still failing after {} s; last error: {e}", APP_TIMEOUT.as_secs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A GET expected to answer 200; other statuses are errors carrying the body.
fn get_ok(addr: SocketAddr, path: &str) -> Result<String, String> {
    let answer = get(addr, path)?;
    if answer.status != 200 {
        return Err(format!("GET {path} answered {}: {}", answer.status, answer.body.trim()));
    }
    Ok(answer.body)
}

/// The body as JSON.
fn json(body: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body:?}"))
}

/// The integer after `key` in `text` (`"Visits: "` → 3, `"\"hits\": "` → 7).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// --- the checks ----------------------------------------------------------------------------------------

/// app-counter: `GET /` answers `Hello from <host>! Visits: N`, and the next one `N + 1` (web reached
/// Redis by name, and Redis kept the count).
pub fn check_counter(addr: SocketAddr) {
    let what = format!("app-counter at http://{addr}/");
    let first = retry(&what, || {
        let body = get_ok(addr, "/")?;
        number_after(&body, "Visits:").ok_or_else(|| format!("no visit count in {body:?}"))
    });
    let second = retry(&what, || {
        let body = get_ok(addr, "/")?;
        number_after(&body, "Visits:").ok_or_else(|| format!("no visit count in {body:?}"))
    });
    assert_eq!(second, first + 1, "{what}: the visit count went from {first} to {second}, expected +1");
}

/// app-three-tier: the frontend's page carries the api's message and the db's hit count, which goes up by
/// one per page (frontend → api → db by service names).
pub fn check_three_tier(addr: SocketAddr) {
    let what = format!("app-three-tier at http://{addr}/");
    let page = || {
        let body = get_ok(addr, "/")?;
        if !body.contains("hello from the api") {
            return Err(format!("the page lacks the api's message: {body:?}"));
        }
        number_after(&body, "db: hits").ok_or_else(|| format!("no db hit count in {body:?}"))
    };
    let first = retry(&what, page);
    let second = retry(&what, page);
    assert_eq!(second, first + 1, "{what}: the db hit count went from {first} to {second}, expected +1");
}

/// app-worker: a job posted to the web is taken by the worker from the Redis queue, its result recorded
/// (word count and upper-cased text), and the web's processed count is at least 1.
pub fn check_worker(addr: SocketAddr) {
    let what = format!("app-worker at http://{addr}/");
    let text = "the quick brown fox";
    let id = retry(&format!("{what} (POST /jobs)"), || {
        let answer = http(addr, "POST", "/jobs", &[("Content-Type", "text/plain")], text)?;
        if answer.status != 202 {
            return Err(format!("POST /jobs answered {}: {}", answer.status, answer.body.trim()));
        }
        json(&answer.body)?["id"].as_u64().ok_or_else(|| format!("no job id in {:?}", answer.body))
    });
    let result = retry(&format!("{what} (result of job {id})"), || json(&get_ok(addr, &format!("/jobs/{id}"))?));
    assert!(
        result["words"] == 4 && result["upper"] == "THE QUICK BROWN FOX",
        "{what}: job {id} has a wrong result: {result}"
    );
    let stats = get_ok(addr, "/").and_then(|body| json(&body)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        stats["processed"].as_u64().is_some_and(|n| n >= 1),
        "{what}: the web shows no processed job after job {id} finished: {stats}"
    );
}

/// The api token of app-stateful (its secret file).
pub fn stateful_token() -> String {
    let file = STATEFUL.dir().join("secrets").join("api_token.txt");
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())).trim().to_owned()
}

/// app-stateful, first half: the service sees its env_file, config and secret (a note without the token
/// is refused with 401, one with it accepted), and `note` is stored. Follow with `down`, `up` and
/// [`check_stateful_kept`].
pub fn check_stateful_write(addr: SocketAddr, note: &str) {
    let what = format!("app-stateful at http://{addr}/");
    let body = retry(&what, || json(&get_ok(addr, "/")?));
    assert_eq!(body["title"], "Fixture notes", "{what}: the env_file's NOTES_TITLE is missing: {body}");
    assert_eq!(
        body["greeting"], "Welcome to the notes of app-stateful",
        "{what}: the config's greeting (/etc/notes/notes.ini) is missing: {body}"
    );
    let refused = http(addr, "POST", "/notes", &[], note).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(refused.status, 401, "{what}: a note without the token must be refused: {}", refused.body);
    let bearer = format!("Bearer {}", stateful_token());
    let stored =
        http(addr, "POST", "/notes", &[("Authorization", &bearer)], note).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(stored.status, 201, "{what}: a note with the secret's token was not stored: {}", stored.body);
    check_stateful_kept(addr, note);
}

/// app-stateful, second half: `note` is among the notes (after `down` and `up`: the named volume kept it).
pub fn check_stateful_kept(addr: SocketAddr, note: &str) {
    retry(&format!("app-stateful at http://{addr}/ (note {note:?})"), || {
        let body = json(&get_ok(addr, "/")?)?;
        let listed = body["notes"].as_array().is_some_and(|notes| notes.iter().any(|n| n == note));
        if listed { Ok(()) } else { Err(format!("the note is not listed: {body}")) }
    });
}

/// app-scaled: the client, calling `whoami` by name, is answered by 3 distinct replicas.
pub fn check_scaled(addr: SocketAddr) {
    retry(&format!("app-scaled at http://{addr}/ (3 distinct whoami hostnames)"), || {
        let body = json(&get_ok(addr, "/")?)?;
        let distinct = body["hostnames"].as_array().map_or(0, Vec::len);
        if distinct == 3 { Ok(()) } else { Err(format!("{distinct} distinct hostnames, want 3: {body}")) }
    });
}
