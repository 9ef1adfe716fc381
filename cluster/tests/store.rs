//! Tests of the SQLite store against a real database file in a temporary directory: write semantics,
//! compare-and-swap, listing and paging, past revisions, the event log, compaction and durability.

use cluster::store::{EventKind, KeyValue, Revision, SqliteStore, Store, StoreError};
use tempfile::TempDir;

/// A fresh store in its own temporary directory; the directory lives as long as the returned guard.
fn open_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let store = SqliteStore::open(dir.path().join("state.db")).expect("open store");
    (dir, store)
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

#[test]
fn create_get_update_delete() {
    let (_dir, store) = open_store();
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
    assert_eq!(store.delete("/a", None), Err(StoreError::NotFound));
    assert_eq!(store.update("/missing", b"x", 1), Err(StoreError::NotFound));

    // A re-created key is a new incarnation with a new create_revision.
    let r4 = store.create("/a", b"three").unwrap();
    let kv = store.get("/a").unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    assert_eq!(store.current_revision().unwrap(), r4);

    assert!(matches!(store.create("", b"x"), Err(StoreError::InvalidArgument(_))));
}

#[test]
fn compare_and_swap_conflict_reports_current_revision() {
    let (_dir, store) = open_store();
    let r1 = store.create("/k", b"v1").unwrap();
    let r2 = store.update("/k", b"v2", r1).unwrap();

    // A writer that read r1 loses, learns r2, and nothing is written.
    assert_eq!(store.update("/k", b"stale", r1), Err(StoreError::Conflict { current: r2 }));
    assert_eq!(store.delete("/k", Some(r1)), Err(StoreError::Conflict { current: r2 }));
    assert_eq!(store.current_revision().unwrap(), r2);
    assert_eq!(store.get("/k").unwrap().unwrap().value, b"v2");

    // Retrying with the revision from the conflict succeeds.
    store.update("/k", b"v3", r2).unwrap();
}

#[test]
fn revisions_strictly_increase_across_keys() {
    let (_dir, store) = open_store();
    assert_eq!(store.current_revision().unwrap(), 0);
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(store.create(&format!("/k/{i}"), b"v").unwrap());
    }
    let first = store.get("/k/0").unwrap().unwrap().mod_revision;
    revisions.push(store.update("/k/0", b"w", first).unwrap());
    revisions.push(store.delete("/k/5", None).unwrap());
    revisions.push(store.create("/other", b"v").unwrap());
    assert!(revisions.windows(2).all(|pair| pair[0] < pair[1]), "{revisions:?}");
    assert_eq!(store.current_revision().unwrap(), *revisions.last().unwrap());
}

#[test]
fn list_by_prefix_with_limit_and_continue() {
    let (_dir, store) = open_store();
    for key in ["/pods/a", "/pods/b", "/pods/c", "/pods/d", "/pods/e", "/podsx", "/pod", "/services/a", "/pods/é"] {
        store.create(key, key.as_bytes()).unwrap();
    }
    store.delete("/pods/c", None).unwrap();

    let (all, rev) = store.list("/pods/", None, None, None).unwrap();
    assert_eq!(keys(&all), ["/pods/a", "/pods/b", "/pods/d", "/pods/e", "/pods/é"]);
    assert_eq!(rev, store.current_revision().unwrap());

    // Page through two at a time at the first page's revision; a write in between is not seen.
    let (page1, rev) = store.list("/pods/", Some(2), None, None).unwrap();
    assert_eq!(keys(&page1), ["/pods/a", "/pods/b"]);
    store.create("/pods/bb", b"late").unwrap();
    let (page2, rev2) = store.list("/pods/", Some(2), Some("/pods/b"), Some(rev)).unwrap();
    assert_eq!(keys(&page2), ["/pods/d", "/pods/e"]);
    assert_eq!(rev2, rev);
    let (page3, _) = store.list("/pods/", Some(2), Some("/pods/e"), Some(rev)).unwrap();
    assert_eq!(keys(&page3), ["/pods/é"]);

    // The empty prefix lists everything.
    let (everything, _) = store.list("", None, None, None).unwrap();
    assert_eq!(everything.len(), 9);

    let future = store.current_revision().unwrap() + 1;
    assert!(matches!(store.list("/", None, None, Some(future)), Err(StoreError::InvalidArgument(_))));
}

#[test]
fn list_at_past_revision() {
    let (_dir, store) = open_store();
    let a1 = store.create("/r/a", b"a1").unwrap();
    let b1 = store.create("/r/b", b"b1").unwrap();
    let snapshot = store.current_revision().unwrap();
    store.update("/r/a", b"a2", a1).unwrap();
    store.delete("/r/b", Some(b1)).unwrap();
    store.create("/r/c", b"c1").unwrap();

    let (then, rev) = store.list("/r/", None, None, Some(snapshot)).unwrap();
    assert_eq!(rev, snapshot);
    assert_eq!(
        then.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())).collect::<Vec<_>>(),
        [("/r/a", &b"a1"[..]), ("/r/b", &b"b1"[..])]
    );

    let (now, _) = store.list("/r/", None, None, None).unwrap();
    assert_eq!(
        now.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())).collect::<Vec<_>>(),
        [("/r/a", &b"a2"[..]), ("/r/c", &b"c1"[..])]
    );
}

#[test]
fn events_since_returns_puts_and_deletes_in_order() {
    let (_dir, store) = open_store();
    store.create("/unwatched", b"x").unwrap();
    let start = store.current_revision().unwrap();
    let c = store.create("/w/a", b"1").unwrap();
    let u = store.update("/w/a", b"2", c).unwrap();
    store.create("/other", b"x").unwrap();
    let d = store.delete("/w/a", None).unwrap();
    let again = store.create("/w/a", b"3").unwrap();

    let events = store.events_since(start, "/w/").unwrap();
    let summary: Vec<_> = events
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

    // Watching from the middle returns only later events; from the end, none.
    let tail = store.events_since(u, "/w/").unwrap();
    assert_eq!(tail.iter().map(|e| e.kv.mod_revision).collect::<Vec<Revision>>(), [d, again]);
    assert!(store.events_since(store.current_revision().unwrap(), "").unwrap().is_empty());
}

#[test]
fn compaction_removes_history_and_keeps_current_values() {
    let (_dir, store) = open_store();
    let mut rev = store.create("/c/a", b"0").unwrap();
    for i in 1..=5 {
        rev = store.update("/c/a", i.to_string().as_bytes(), rev).unwrap();
    }
    store.create("/c/gone", b"x").unwrap();
    store.delete("/c/gone", None).unwrap();
    store.create("/c/b", b"b").unwrap();
    let before = store.row_count().unwrap();
    assert_eq!(before, 9);

    let floor = store.compact(0).unwrap();
    assert_eq!(floor, store.current_revision().unwrap());
    // Only the newest row of each live key is left; the deleted key is gone entirely.
    assert_eq!(store.row_count().unwrap(), 2);
    assert_eq!(store.get("/c/a").unwrap().unwrap().value, b"5");
    assert_eq!(store.get("/c/a").unwrap().unwrap().mod_revision, rev);
    assert_eq!(store.get("/c/gone").unwrap(), None);
    let (listed, _) = store.list("/c/", None, None, Some(floor)).unwrap();
    assert_eq!(keys(&listed), ["/c/a", "/c/b"]);

    assert_eq!(store.events_since(floor - 1, ""), Err(StoreError::Compacted { floor }));
    assert_eq!(store.list("", None, None, Some(floor - 1)), Err(StoreError::Compacted { floor }));
    assert!(store.events_since(floor, "").unwrap().is_empty());

    // Writes continue above the floor, the revision never goes back, and the floor never moves backwards.
    let next = store.update("/c/a", b"6", rev).unwrap();
    assert!(next > floor);
    assert_eq!(store.compact(1_000).unwrap(), floor);
    assert!(matches!(store.compact(-1), Err(StoreError::InvalidArgument(_))));
}

#[test]
fn compaction_keeps_the_newest_revisions() {
    let (_dir, store) = open_store();
    let mut rev = store.create("/k", b"0").unwrap();
    for i in 1..10 {
        rev = store.update("/k", i.to_string().as_bytes(), rev).unwrap();
    }
    assert_eq!(rev, 10);
    let floor = store.compact(3).unwrap();
    assert_eq!(floor, 7);
    // Revisions 7..=10 remain: 7 is the state at the floor, 8..=10 are the events after it.
    assert_eq!(store.row_count().unwrap(), 4);
    let events = store.events_since(floor, "/k").unwrap();
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), [8, 9, 10]);
    assert_eq!(events[0].prev_kv.as_ref().map(|p| p.value.clone()), Some(b"6".to_vec()));
    let (at_floor, _) = store.list("/k", None, None, Some(floor)).unwrap();
    assert_eq!(at_floor[0].value, b"6");
}

#[test]
fn reopening_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (revision, floor) = {
        let store = SqliteStore::open(&path).unwrap();
        let mut rev = 0;
        for i in 0..50 {
            rev = store.create(&format!("/p/{i:02}"), format!("v{i}").as_bytes()).unwrap();
        }
        let r = store.get("/p/07").unwrap().unwrap().mod_revision;
        store.update("/p/07", b"updated", r).unwrap();
        store.delete("/p/08", None).unwrap();
        let floor = store.compact(10).unwrap();
        assert!(rev < store.current_revision().unwrap());
        (store.current_revision().unwrap(), floor)
    };

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().unwrap(), revision);
    let (all, _) = store.list("/p/", None, None, None).unwrap();
    assert_eq!(all.len(), 49);
    assert_eq!(store.get("/p/07").unwrap().unwrap().value, b"updated");
    assert_eq!(store.get("/p/08").unwrap(), None);
    assert_eq!(store.get("/p/49").unwrap().unwrap().value, b"v49");
    // The compaction floor is persistent too.
    assert_eq!(store.events_since(floor - 1, ""), Err(StoreError::Compacted { floor }));
    // New revisions continue after the old ones.
    assert!(store.create("/p/new", b"x").unwrap() > revision);
}

#[test]
fn store_stays_bounded_under_repeated_updates_with_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let wal = dir.path().join("state.db-wal");
    let store = SqliteStore::open(&path).unwrap();
    let value = vec![7u8; 512];
    let mut rev = store.create("/hot", &value).unwrap();

    let mut db_sizes = Vec::new();
    for _round in 0..2 {
        for _ in 0..5_000 {
            rev = store.update("/hot", &value, rev).unwrap();
        }
        assert_eq!(store.row_count().unwrap(), 5_001);
        store.compact(0).unwrap();
        assert_eq!(store.row_count().unwrap(), 1);
        // TRUNCATE leaves an empty WAL when no reader holds it.
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        db_sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    assert_eq!(store.get("/hot").unwrap().unwrap().mod_revision, 10_001);
    // The second round reuses the pages the first compaction freed, so the file does not keep growing.
    assert!(db_sizes[1] <= db_sizes[0], "database grew from {} to {} bytes", db_sizes[0], db_sizes[1]);
}
