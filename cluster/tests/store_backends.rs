//! The [`Store`] contract, run against every backend: SQLite on a temporary file, and (cargo feature `etcd`)
//! a real etcd started from Debian's `etcd` binary on loopback with random ports and a temporary data dir.
//!
//! Revisions are compared relative to each other, never as absolute numbers: etcd starts at revision 1 with
//! no keys, SQLite at 0.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::store::{Event, EventKind, KeyValue, Revision, SqliteStore, Store, StoreError};

/// A backend under test and whatever keeps it alive (a temp dir, an etcd process).
struct Backend {
    store: Arc<dyn Store>,
    /// Opens another client of the same data (a second API server on a shared etcd); `None` for SQLite,
    /// which has one writer per file.
    second: Option<Box<dyn Fn() -> Arc<dyn Store>>>,
    _guard: Box<dyn std::any::Any>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = SqliteStore::open(dir.path().join("state.db")).expect("open store");
    Backend { store: Arc::new(store), second: None, _guard: Box::new(dir) }
}

#[cfg(feature = "etcd")]
mod etcd_server {
    //! A real etcd on loopback for one test.
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Etcd {
        child: Child,
        pub endpoint: String,
        _dir: tempfile::TempDir,
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
    }

    impl Etcd {
        pub fn start() -> Etcd {
            let dir = tempfile::Builder::new().prefix("flt-etcd-").tempdir().expect("create temp dir");
            let (client, peer) = (free_port(), free_port());
            let endpoint = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
            let child = Command::new("etcd")
                .arg("--name")
                .arg("flt-test")
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("flt-test={peer_url}")])
                // Above the API's 3 MiB body limit.
                .args(["--max-request-bytes", "8388608"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd (Debian package etcd-server; scripts/install-deps installs it)");
            let etcd = Etcd { child, endpoint, _dir: dir };
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
                assert!(Instant::now() < deadline, "etcd did not listen on {} within 30 s", etcd.endpoint);
                std::thread::sleep(Duration::from_millis(50));
            }
            etcd
        }
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(feature = "etcd")]
fn etcd() -> Backend {
    let server = etcd_server::Etcd::start();
    let endpoints = vec![server.endpoint.clone()];
    let store = cluster::store::EtcdStore::connect(&endpoints).expect("connect to etcd");
    let second = move || -> Arc<dyn Store> {
        Arc::new(cluster::store::EtcdStore::connect(&endpoints).expect("connect a second client"))
    };
    Backend { store: Arc::new(store), second: Some(Box::new(second)), _guard: Box::new(server) }
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

fn create_get_update_delete(b: Backend) {
    let store = b.store.as_ref();
    assert_eq!(store.get("/a").unwrap(), None);
    let r1 = store.create("/a", b"one").unwrap();
    assert_eq!(store.create("/a", b"again"), Err(StoreError::AlreadyExists));
    assert_eq!(
        store.get("/a").unwrap(),
        Some(KeyValue { key: "/a".into(), value: b"one".to_vec(), create_revision: r1, mod_revision: r1 })
    );
    let r2 = store.update("/a", b"two", r1).unwrap();
    assert!(r2 > r1);
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision), (&b"two"[..], r1, r2));
    let r3 = store.delete("/a", Some(r2)).unwrap();
    assert!(r3 > r2);
    assert_eq!(store.get("/a").unwrap(), None);
    assert_eq!(store.update("/a", b"x", r3), Err(StoreError::NotFound));
    assert_eq!(store.update("/a", b"x", 0), Err(StoreError::NotFound));
    assert_eq!(store.delete("/a", None), Err(StoreError::NotFound));
    let r4 = store.create("/a", b"three").unwrap();
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    assert_eq!(store.current_revision().unwrap(), r4);
    assert!(matches!(store.create("", b"x"), Err(StoreError::InvalidArgument(_))));
}

fn compare_and_swap(b: Backend) {
    let store = b.store.as_ref();
    let r1 = store.create("/k", b"v1").unwrap();
    let r2 = store.update("/k", b"v2", r1).unwrap();
    assert_eq!(store.update("/k", b"stale", r1), Err(StoreError::Conflict { current: r2 }));
    assert_eq!(store.delete("/k", Some(r1)), Err(StoreError::Conflict { current: r2 }));
    assert_eq!(store.current_revision().unwrap(), r2);
    assert_eq!(store.get("/k").unwrap().unwrap().value, b"v2");
    store.update("/k", b"v3", r2).unwrap();
}

fn list_paging_and_past_revisions(b: Backend) {
    let store = b.store.as_ref();
    for key in ["/pods/a", "/pods/b", "/pods/c", "/pods/d", "/pods/e", "/podsx", "/pod", "/services/a", "/pods/é"] {
        store.create(key, key.as_bytes()).unwrap();
    }
    store.delete("/pods/c", None).unwrap();
    let (all, rev) = store.list("/pods/", None, None, None).unwrap();
    assert_eq!(keys(&all), ["/pods/a", "/pods/b", "/pods/d", "/pods/e", "/pods/é"]);
    assert_eq!(rev, store.current_revision().unwrap());

    let (page1, rev) = store.list("/pods/", Some(2), None, None).unwrap();
    assert_eq!(keys(&page1), ["/pods/a", "/pods/b"]);
    let late = store.create("/pods/bb", b"late").unwrap();
    let (page2, rev2) = store.list("/pods/", Some(2), Some("/pods/b"), Some(rev)).unwrap();
    assert_eq!((keys(&page2), rev2), (vec!["/pods/d", "/pods/e"], rev));
    let (page3, _) = store.list("/pods/", Some(2), Some("/pods/e"), Some(rev)).unwrap();
    assert_eq!(keys(&page3), ["/pods/é"]);
    let (now, _) = store.list("/pods/", None, None, None).unwrap();
    assert!(keys(&now).contains(&"/pods/bb"));
    let (everything, _) = store.list("", None, None, None).unwrap();
    assert_eq!(everything.len(), 9);
    assert!(matches!(store.list("/", None, None, Some(late + 1)), Err(StoreError::InvalidArgument(_))));
}

fn events_in_order(b: Backend) {
    let store = b.store.as_ref();
    store.create("/unwatched", b"x").unwrap();
    let start = store.current_revision().unwrap();
    let c = store.create("/w/a", b"1").unwrap();
    let u = store.update("/w/a", b"2", c).unwrap();
    store.create("/other", b"x").unwrap();
    let d = store.delete("/w/a", None).unwrap();
    let again = store.create("/w/a", b"3").unwrap();
    let summary: Vec<_> = store
        .events_since(start, "/w/")
        .unwrap()
        .iter()
        .map(|e| {
            let prev = e.prev_kv.as_ref().map(|p| (p.value.clone(), p.mod_revision, p.create_revision));
            (e.kind, e.kv.mod_revision, e.kv.create_revision, e.kv.value.clone(), prev)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Put, c, c, b"1".to_vec(), None),
            (EventKind::Put, u, c, b"2".to_vec(), Some((b"1".to_vec(), c, c))),
            (EventKind::Delete, d, c, Vec::new(), Some((b"2".to_vec(), u, c))),
            (EventKind::Put, again, again, b"3".to_vec(), None),
        ]
    );
    let tail = store.events_since(u, "/w/").unwrap();
    assert_eq!(tail.iter().map(|e| e.kv.mod_revision).collect::<Vec<Revision>>(), [d, again]);
    assert!(store.events_since(store.current_revision().unwrap(), "").unwrap().is_empty());
}

fn compaction(b: Backend) {
    let store = b.store.as_ref();
    let mut rev = store.create("/c/a", b"0").unwrap();
    for i in 1..=9 {
        rev = store.update("/c/a", i.to_string().as_bytes(), rev).unwrap();
    }
    let floor = store.compact(3).unwrap();
    assert_eq!(floor, rev - 3);
    let events = store.events_since(floor, "/c/").unwrap();
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), [rev - 2, rev - 1, rev]);
    assert_eq!(events[0].prev_kv.as_ref().map(|p| p.value.clone()), Some(b"6".to_vec()));
    let (at_floor, _) = store.list("/c/", None, None, Some(floor)).unwrap();
    assert_eq!(at_floor[0].value, b"6");
    assert_eq!(store.events_since(floor - 1, ""), Err(StoreError::Compacted { floor }));
    assert_eq!(store.list("", None, None, Some(floor - 1)), Err(StoreError::Compacted { floor }));
    // The floor never moves backwards; compacting everything keeps current values.
    assert_eq!(store.compact(1_000).unwrap(), floor);
    let all = store.compact(0).unwrap();
    assert_eq!(all, store.current_revision().unwrap());
    assert_eq!(store.get("/c/a").unwrap().unwrap().value, b"9");
    assert!(store.update("/c/a", b"10", rev).unwrap() > all);
    assert!(matches!(store.compact(-1), Err(StoreError::InvalidArgument(_))));
}

/// 32 threads hammer one counter with compare-and-swap and create their own keys: every increment lands
/// exactly once (no lost update), every create succeeds once, and revisions are unique.
fn concurrent_writers(b: Backend) {
    let store = b.store.clone();
    store.create("/counter", b"0").unwrap();
    let revisions = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let (store, revisions) = (store.clone(), revisions.clone());
            std::thread::spawn(move || {
                for i in 0..10 {
                    let rev = store.create(&format!("/t/{t:02}/{i}"), b"x").unwrap();
                    revisions.lock().unwrap().push(rev);
                    assert_eq!(store.create(&format!("/t/{t:02}/{i}"), b"y"), Err(StoreError::AlreadyExists));
                    // Bounded retry loop for the counter.
                    for attempt in 0.. {
                        assert!(attempt < 10_000, "counter CAS never succeeded");
                        let kv = store.get("/counter").unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        match store.update("/counter", (n + 1).to_string().as_bytes(), kv.mod_revision) {
                            Ok(rev) => {
                                revisions.lock().unwrap().push(rev);
                                break;
                            }
                            Err(StoreError::Conflict { current }) => assert!(current > kv.mod_revision),
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.get("/counter").unwrap().unwrap().value, b"320");
    let (listed, _) = store.list("/t/", None, None, None).unwrap();
    assert_eq!(listed.len(), 320);
    let mut revisions = revisions.lock().unwrap().clone();
    let n = revisions.len();
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), n, "a revision was handed out twice");
}

/// The event sink sees every committed write once, in revision order, including (etcd) writes made through
/// another client of the same data.
fn event_sink(b: Backend) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink_seen = seen.clone();
    b.store.set_event_sink(Arc::new(move |events| sink_seen.lock().unwrap().extend(events)));
    let other = b.second.as_ref().map(|open| open());
    let writer: &dyn Store = other.as_deref().unwrap_or(b.store.as_ref());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = b.store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store.create(&format!("/s/{t}/{i}"), b"v").unwrap();
                }
            })
        })
        .collect();
    let r = writer.create("/s/other", b"1").unwrap();
    writer.delete("/s/other", Some(r)).unwrap();
    for thread in threads {
        thread.join().unwrap();
    }
    let last = b.store.current_revision().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().last().map(|e| e.kv.mod_revision) != Some(last) {
        assert!(Instant::now() < deadline, "the sink never saw revision {last}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 102);
    assert!(seen.windows(2).all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision), "events out of order");
    let by_key: BTreeMap<&str, usize> = seen.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.kv.key.as_str()).or_default() += 1;
        m
    });
    assert_eq!(by_key.get("/s/other"), Some(&2));
    assert_eq!(seen.iter().filter(|e| e.kind == EventKind::Delete).count(), 1);
    // The events the sink got are the ones the log replays.
    let logged = b.store.events_since(seen[0].kv.mod_revision - 1, "/s/").unwrap();
    assert_eq!(logged, *seen);
}

macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            #[test]
            fn create_get_update_delete() {
                super::create_get_update_delete(super::$backend());
            }
            #[test]
            fn compare_and_swap() {
                super::compare_and_swap(super::$backend());
            }
            #[test]
            fn list_paging_and_past_revisions() {
                super::list_paging_and_past_revisions(super::$backend());
            }
            #[test]
            fn events_in_order() {
                super::events_in_order(super::$backend());
            }
            #[test]
            fn compaction() {
                super::compaction(super::$backend());
            }
            #[test]
            fn concurrent_writers() {
                super::concurrent_writers(super::$backend());
            }
            #[test]
            fn event_sink() {
                super::event_sink(super::$backend());
            }
        }
    };
}

suite!(sqlite);
#[cfg(feature = "etcd")]
suite!(etcd);

/// Store-level write throughput, for BENCHMARKS.md: `cargo test -p cluster --release --features etcd --test
/// store_backends -- --ignored --nocapture write_throughput`. Prints creates/s with 1 and 32 writer threads,
/// for SQLite with and without group commit and for etcd. Asserts nothing about time.
#[test]
#[ignore]
fn write_throughput() {
    fn run(name: &str, store: Arc<dyn Store>, threads: usize, per_thread: usize) {
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut latencies = Vec::with_capacity(per_thread);
                    for i in 0..per_thread {
                        let begin = Instant::now();
                        store.create(&format!("/bench/{t}/{i}"), &[7u8; 512]).unwrap();
                        latencies.push(begin.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let elapsed = start.elapsed();
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "{name:<28} threads={threads:>2} creates={:>6} {:>8.0}/s p50={:?} p99={:?}",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            p(0.5),
            p(0.99)
        );
    }
    for (threads, per_thread) in [(1, 500), (32, 100)] {
        let dir = tempfile::tempdir().unwrap();
        run("sqlite group commit", Arc::new(SqliteStore::open(dir.path().join("a.db")).unwrap()), threads, per_thread);
        let single = SqliteStore::open_with_batch_limit(dir.path().join("b.db"), 1).unwrap();
        run("sqlite one commit per write", Arc::new(single), threads, per_thread);
        #[cfg(feature = "etcd")]
        {
            let b = etcd();
            run("etcd", b.store.clone(), threads, per_thread);
        }
    }
}
