//! The SQLite backend of [`Store`]: kine's single append-only table on one embedded database file.
//!
//! Every write appends a row whose autoincrement `id` is the revision; the newest row of a name is that key's
//! current state, and a delete is a row with `deleted = 1` (a tombstone). Reads at a past revision take the
//! newest row at or below it. Compaction deletes rows that a newer row below the floor has superseded, and
//! tombstones below the floor, then truncates the WAL so neither the table nor the WAL grows without bound
//! (the WAL growing without bound is the top complaint about kine).
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, and each write is its own transaction,
//! so a write returns only after its commit has been fsynced. Writes use `BEGIN IMMEDIATE`, which takes the
//! write lock before the compare-and-swap reads the current revision, so no other writer (even another
//! process) can slip in between the check and the append.
//!
//! Concurrency: one connection behind a mutex serialises every call. That is enough for a single server at
//! present; batching concurrent writes into one commit (group commit) is a later optimisation.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::{Event, EventKind, KeyValue, Result, Revision, Store, StoreError};

/// Schema. `created`, `prev_revision` and `old_value` let a row describe its own event (kind and previous
/// state) so watches still work after the previous row has been compacted away.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The `meta` key holding the compaction floor.
const COMPACT_FLOOR_KEY: &str = "compact_revision";

/// How long a write waits for a lock held by another connection (another process on the same file) before
/// failing, rather than failing at once.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The columns every row-reading query selects, in the order [`LogRow::from_row`] expects.
const ROW_COLUMNS: &str = "id, name, created, deleted, create_revision, prev_revision, value, old_value";

/// A [`Store`] on one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

/// One row of the log table.
struct LogRow {
    id: Revision,
    name: String,
    created: bool,
    deleted: bool,
    create_revision: Revision,
    prev_revision: Revision,
    value: Vec<u8>,
    old_value: Option<Vec<u8>>,
}

impl LogRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            created: row.get(2)?,
            deleted: row.get(3)?,
            create_revision: row.get(4)?,
            prev_revision: row.get(5)?,
            value: row.get(6)?,
            old_value: row.get(7)?,
        })
    }

    fn into_kv(self) -> KeyValue {
        KeyValue { key: self.name, value: self.value, create_revision: self.create_revision, mod_revision: self.id }
    }

    fn into_event(self) -> Event {
        // A row carries its predecessor's revision and value, so `prev_kv` does not need the previous row
        // (which compaction may have removed). A key keeps its create_revision across updates and its delete,
        // so the previous state's create_revision is this row's.
        let prev_kv = (!self.created && self.prev_revision != 0).then(|| KeyValue {
            key: self.name.clone(),
            value: self.old_value.clone().unwrap_or_default(),
            create_revision: self.create_revision,
            mod_revision: self.prev_revision,
        });
        let kind = if self.deleted { EventKind::Delete } else { EventKind::Put };
        let value = if self.deleted { Vec::new() } else { self.value };
        Event {
            kind,
            kv: KeyValue { key: self.name, value, create_revision: self.create_revision, mod_revision: self.id },
            prev_kv,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend(err.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn =
            Connection::open(path).map_err(|err| StoreError::Backend(format!("opening {}: {err}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // journal_mode reports the mode actually in effect; some filesystems cannot do WAL, and silently
        // running in another mode would change the durability and concurrency we promise.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{}: SQLite could not enable WAL mode (journal_mode is {mode})",
                path.display()
            )));
        }
        // FULL fsyncs the WAL at every commit, so an acknowledged write survives power loss (NORMAL, kine's
        // default, may lose the last commits).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// The number of rows in the log table (live keys, tombstones and retained history). For diagnostics and
    /// for tests that check compaction keeps the table bounded.
    pub fn row_count(&self) -> Result<i64> {
        Ok(self.lock().query_row("SELECT COUNT(*) FROM kine", [], |row| row.get(0))?)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied write: an open transaction rolls back
        // when dropped during unwinding. So the connection is still consistent and poisoning can be ignored.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>> {
        Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// The newest row for `key`, tombstone or not.
fn latest(conn: &Connection, key: &str) -> Result<Option<LogRow>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1");
    Ok(conn.query_row(&sql, params![key], LogRow::from_row).optional()?)
}

/// The newest row for `key` if the key currently exists.
fn live(conn: &Connection, key: &str) -> Result<Option<LogRow>> {
    Ok(latest(conn, key)?.filter(|row| !row.deleted))
}

/// The newest revision ever assigned. Read from AUTOINCREMENT's own counter rather than `MAX(id)`, because
/// compaction may delete the newest row (a tombstone) and the revision must not go backwards.
fn current_revision(conn: &Connection) -> Result<Revision> {
    let seq: Option<Revision> =
        conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'kine'", [], |row| row.get(0)).optional()?;
    Ok(seq.unwrap_or(0))
}

fn compact_floor(conn: &Connection) -> Result<Revision> {
    let floor: Option<Revision> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![COMPACT_FLOOR_KEY], |row| row.get(0))
        .optional()?;
    Ok(floor.unwrap_or(0))
}

/// Appends one row and returns its revision.
fn append(
    tx: &Transaction<'_>,
    key: &str,
    created: bool,
    deleted: bool,
    create_revision: Revision,
    prev: Option<&LogRow>,
    value: &[u8],
) -> Result<Revision> {
    let prev_revision = prev.map_or(0, |row| row.id);
    let old_value = prev.filter(|row| !row.deleted).map(|row| row.value.as_slice());
    let id: Revision = tx.query_row(
        "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value, old_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![key, created, deleted, create_revision, prev_revision, value, old_value],
        |row| row.get(0),
    )?;
    Ok(id)
}

/// The half-open range `[lower, upper)` of names starting with `prefix`, for an index range scan.
///
/// SQLite compares TEXT bytewise (BINARY collation), so every name with the prefix lies below the prefix
/// with its last byte incremented. That bound may not be valid UTF-8, so it is bound as a BLOB and cast to
/// TEXT in SQL (a cast keeps the bytes). A UTF-8 string never contains 0xFF, so the last byte can always be
/// incremented, and `[0xFF]` is above every name (the bound for the empty prefix).
fn prefix_range(prefix: &str) -> (&str, Vec<u8>) {
    let mut upper = prefix.as_bytes().to_vec();
    match upper.last_mut() {
        Some(last) => *last += 1,
        None => upper.push(0xFF),
    }
    (prefix, upper)
}

impl Store for SqliteStore {
    fn create(&self, key: &str, value: &[u8]) -> Result<Revision> {
        if key.is_empty() {
            return Err(StoreError::InvalidArgument("the key is empty".into()));
        }
        let mut conn = self.lock();
        let tx = Self::write_tx(&mut conn)?;
        let prev = latest(&tx, key)?;
        if prev.as_ref().is_some_and(|row| !row.deleted) {
            return Err(StoreError::AlreadyExists);
        }
        // prev_revision links a re-created key to its tombstone; create_revision is the row's own id, which
        // is known only after the insert. The fix-up happens before commit, so nobody sees the placeholder.
        let id = append(&tx, key, true, false, 0, prev.as_ref(), value)?;
        tx.execute("UPDATE kine SET create_revision = id WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(id)
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(live(&self.lock(), key)?.map(LogRow::into_kv))
    }

    fn list(
        &self,
        prefix: &str,
        limit: Option<usize>,
        continue_after: Option<&str>,
        at_revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, Revision)> {
        let mut conn = self.lock();
        // A read transaction so the revision and the rows come from one snapshot.
        let tx = conn.transaction()?;
        let current = current_revision(&tx)?;
        let revision = match at_revision {
            None => current,
            Some(rev) if rev > current => {
                return Err(StoreError::InvalidArgument(format!(
                    "revision {rev} is in the future (the current revision is {current})"
                )));
            }
            Some(rev) => {
                let floor = compact_floor(&tx)?;
                if rev < floor {
                    return Err(StoreError::Compacted { floor });
                }
                rev
            }
        };
        // SQLite treats a negative LIMIT as "no limit".
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let (lower, upper) = prefix_range(prefix);
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM kine WHERE id IN (
                 SELECT MAX(id) FROM kine
                 WHERE name >= ?1 AND name < CAST(?2 AS TEXT) AND (?3 IS NULL OR name > ?3) AND id <= ?4
                 GROUP BY name)
             AND deleted = 0 ORDER BY name LIMIT ?5"
        );
        let kvs = {
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map(params![lower, upper, continue_after, revision, limit], LogRow::from_row)?;
            rows.map(|row| row.map(LogRow::into_kv)).collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok((kvs, revision))
    }

    fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision> {
        let mut conn = self.lock();
        let tx = Self::write_tx(&mut conn)?;
        let prev = live(&tx, key)?.ok_or(StoreError::NotFound)?;
        if prev.id != expected_mod_revision {
            return Err(StoreError::Conflict { current: prev.id });
        }
        let id = append(&tx, key, false, false, prev.create_revision, Some(&prev), value)?;
        tx.commit()?;
        Ok(id)
    }

    fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        let mut conn = self.lock();
        let tx = Self::write_tx(&mut conn)?;
        let prev = live(&tx, key)?.ok_or(StoreError::NotFound)?;
        if expected_mod_revision.is_some_and(|expected| expected != prev.id) {
            return Err(StoreError::Conflict { current: prev.id });
        }
        // The tombstone's value is empty: the deleted value is kept once, in old_value, for the event's prev_kv.
        let id = append(&tx, key, false, true, prev.create_revision, Some(&prev), &[])?;
        tx.commit()?;
        Ok(id)
    }

    fn current_revision(&self) -> Result<Revision> {
        current_revision(&self.lock())
    }

    fn events_since(&self, revision: Revision, prefix: &str) -> Result<Vec<Event>> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let floor = compact_floor(&tx)?;
        if revision < floor {
            return Err(StoreError::Compacted { floor });
        }
        let (lower, upper) = prefix_range(prefix);
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM kine WHERE id > ?1 AND name >= ?2 AND name < CAST(?3 AS TEXT) ORDER BY id"
        );
        let events = {
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt.query_map(params![revision, lower, upper], LogRow::from_row)?;
            rows.map(|row| row.map(LogRow::into_event)).collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(events)
    }

    fn compact(&self, keep_last: Revision) -> Result<Revision> {
        if keep_last < 0 {
            return Err(StoreError::InvalidArgument(format!("keep_last must not be negative (got {keep_last})")));
        }
        let mut conn = self.lock();
        let tx = Self::write_tx(&mut conn)?;
        let current = current_revision(&tx)?;
        let floor = compact_floor(&tx)?.max(current.saturating_sub(keep_last)).max(0);
        // Reading at the floor must still work, so for each key the newest row at or below the floor stays,
        // unless it is a tombstone (the key is absent at the floor, so nothing needs to remember it). Rows
        // above the floor are untouched: they are the retained history that watches replay.
        tx.execute(
            "DELETE FROM kine WHERE id <= ?1 AND (deleted = 1 OR id < (
                 SELECT MAX(newer.id) FROM kine AS newer WHERE newer.name = kine.name AND newer.id <= ?1))",
            params![floor],
        )?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![COMPACT_FLOOR_KEY, floor],
        )?;
        tx.commit()?;
        // Copy the WAL back into the database and truncate it, so the WAL stays bounded; the freed pages of
        // the database file are reused by later writes. The pragma reports (busy, log frames, checkpointed
        // frames); a busy result only means another reader held the WAL, and the next compaction retries.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(floor)
    }
}
