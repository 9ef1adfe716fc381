//! Durability and boundedness of the SQLite store under hostile conditions: a `kill -9` in the middle of a
//! write storm, 100,000 updates of one object with periodic compaction, and a full disk (a 2 MiB tmpfs the
//! test mounts; needs root).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::store::{SqliteStore, Store, StoreError};

/// Set in the child process of [`acknowledged_writes_survive_kill_9`]: the database path to storm.
const CHILD_ENV: &str = "FLT_STORE_STORM_DB";

/// The child's half of the crash test: 16 threads create and update keys as fast as the store allows and
/// print `ack KEY REVISION` for every acknowledged write, until the parent kills the process (or a bound).
#[test]
#[ignore = "run by acknowledged_writes_survive_kill_9 in a child process"]
fn storm_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let store = Arc::new(SqliteStore::open(&path).expect("open store in child"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    if Instant::now() > deadline {
                        return;
                    }
                    let key = format!("/storm/{t:02}/{i:06}");
                    let rev = store.create(&key, format!("v0-{i}").as_bytes()).unwrap();
                    ack(&out, &key, rev);
                    let rev = store.update(&key, format!("v1-{i}").as_bytes(), rev).unwrap();
                    ack(&out, &key, rev);
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

fn ack(out: &Mutex<std::io::Stdout>, key: &str, rev: i64) {
    let out = out.lock().unwrap();
    let mut out = out.lock();
    // Written and flushed only after the store returned: the line is the acknowledgement.
    writeln!(out, "ack {key} {rev}").unwrap();
    out.flush().unwrap();
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "storm_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the storm child");
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Reap(child);

    // key -> newest acknowledged revision.
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut lines = BufReader::new(stdout).lines();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count < 3_000 && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if record(&mut acked, &line) {
            count += 1;
        }
    }
    assert!(count >= 100, "the child acknowledged only {count} writes");
    // SIGKILL mid-storm; then collect every acknowledgement it printed before dying.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        record(&mut acked, &line);
    }

    let store = SqliteStore::open(&db).expect("reopen after kill -9");
    let (all, at) = store.list("/storm/", None, None, None).unwrap();
    let current: BTreeMap<&str, i64> = all.iter().map(|kv| (kv.key.as_str(), kv.mod_revision)).collect();
    for (key, rev) in &acked {
        let found = current.get(key.as_str()).copied();
        assert!(found.is_some_and(|found| found >= *rev), "acknowledged write {key}@{rev} lost (found {found:?})");
    }
    // Consistent: revisions unique, the store's revision covers them, CAS still works, writes continue.
    let mut revisions: Vec<i64> = all.iter().map(|kv| kv.mod_revision).collect();
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), all.len());
    assert!(at >= revisions.last().copied().unwrap_or(0));
    let kv = &all[0];
    assert_eq!(
        store.update(&kv.key, b"stale", kv.mod_revision - 1),
        Err(StoreError::Conflict { current: kv.mod_revision })
    );
    let next = store.update(&kv.key, b"after", kv.mod_revision).unwrap();
    assert!(next > at);
    eprintln!("{} acknowledged writes over {} keys all present after kill -9", count, acked.len());
}

/// Parses one `ack KEY REV` line into `acked`.
fn record(acked: &mut BTreeMap<String, i64>, line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let (Some("ack"), Some(key), Some(rev)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let Ok(rev) = rev.parse::<i64>() else { return false };
    let entry = acked.entry(key.to_string()).or_insert(rev);
    *entry = (*entry).max(rev);
    true
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// 100,000 updates of one object, compacting every 1,000 revisions as the server does: the database, WAL
/// and shared-memory files stay under a generous bound the whole time. The database lives on /dev/shm
/// (tmpfs) when there is one, only so the 100,000 fsyncs do not take minutes; the sizes are the same.
#[test]
fn hundred_thousand_updates_stay_bounded() {
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::Builder::new().prefix("flt-store-").tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let db = dir.path().join("state.db");
    let files = |db: &Path| -> u64 {
        let base = db.to_string_lossy().to_string();
        [base.clone(), format!("{base}-wal"), format!("{base}-shm")].iter().map(|p| file_size(Path::new(p))).sum()
    };
    let store = SqliteStore::open(&db).unwrap();
    let value = vec![b'x'; 1024];
    let mut rev = store.create("/registry/configmaps/default/hot", &value).unwrap();
    let mut largest = 0;
    for i in 1..=100_000 {
        rev = store.update("/registry/configmaps/default/hot", &value, rev).unwrap();
        if i % 1_000 == 0 {
            store.compact(1_000).unwrap();
            largest = largest.max(files(&db));
        }
    }
    let bound = 16 * 1024 * 1024;
    assert!(largest < bound, "db + WAL reached {largest} bytes (bound {bound})");
    assert!(store.row_count().unwrap() <= 1_001);
    eprintln!("largest db+wal+shm size over 100,000 updates: {largest} bytes");
}

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = std::env::temp_dir().join(format!("flt-disk-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed (this test needs root)");
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

/// Writing until a 2 MiB disk is full fails with an error that says so and names the file; every write
/// acknowledged before is readable after reopening, and writing works again once space is freed.
#[test]
fn full_disk_fails_cleanly_and_recovers() {
    let disk = SmallDisk::mount("2m");
    let db = disk.dir.join("state.db");
    // Ballast to free later.
    std::fs::write(disk.dir.join("ballast"), vec![0u8; 512 * 1024]).unwrap();
    let mut acked = Vec::new();
    let error = {
        let store = SqliteStore::open(&db).unwrap();
        let value = vec![b'v'; 16 * 1024];
        let mut error = None;
        for i in 0..1_000 {
            let key = format!("/full/{i:04}");
            match store.create(&key, &value) {
                Ok(rev) => acked.push((key, rev)),
                Err(err) => {
                    error = Some(err);
                    break;
                }
            }
        }
        error.expect("the 2 MiB disk never filled")
    };
    let StoreError::Backend(message) = &error else { panic!("expected a backend error, got {error:?}") };
    assert!(message.contains("no space left on device"), "{message}");
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(acked.len() > 10, "only {} writes before the disk filled", acked.len());

    std::fs::remove_file(disk.dir.join("ballast")).unwrap();
    let store = SqliteStore::open(&db).expect("reopen after the disk filled");
    for (key, rev) in &acked {
        assert_eq!(store.get(key).unwrap().map(|kv| kv.mod_revision), Some(*rev), "{key}");
    }
    let rev = store.create("/full/after", b"space again").unwrap();
    assert!(rev > acked.last().unwrap().1);
    eprintln!("{} writes before the disk filled; error: {message}", acked.len());
}
