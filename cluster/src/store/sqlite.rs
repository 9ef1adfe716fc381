//! The SQLite backend of [`Store`]: kine's single append-only table on one embedded database file.
//!
//! Every write appends a row whose autoincrement `id` is the revision; the newest row of a name is that key's
//! current state, and a delete is a row with `deleted = 1` (a tombstone). Reads at a past revision take the
//! newest row at or below it. Compaction deletes rows that a newer row below the floor has superseded, and
//! tombstones below the floor, then truncates the WAL so neither the table nor the WAL grows without bound
//! (the WAL growing without bound is the top complaint about kine).
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a commit returns only after the WAL
//! has been fsynced, and a write is acknowledged only after the commit that holds it.
//!
//! Group commit: one writer thread owns the only write connection. Callers queue their writes and wait; the
//! thread takes every write queued while the previous commit was being fsynced (up to [`MAX_BATCH`]) and
//! applies them, in order, inside one `BEGIN IMMEDIATE` transaction, so N concurrent writers share one fsync
//! instead of paying one each. Each write runs inside its own savepoint and its compare-and-swap sees the
//! writes before it in the batch, so a write that fails (a lost CAS, an existing key) fails alone and the
//! rest of the batch still commits; the semantics are exactly those of running the writes one by one. After
//! the commit the thread publishes the batch's events, in revision order, to the event sink (the watch
//! fan-out), and only then answers the callers. Reads use a small pool of separate connections: WAL lets them
//! run while the writer commits, and they see only committed writes.
//!
//! Latency: the writer thread does nothing but commits. SQLite's automatic checkpoint (which would copy the
//! WAL into the database and fsync it inside whichever COMMIT crossed 1,000 WAL pages, stalling a whole
//! batch of callers) is off; a checkpointer thread with its own connection runs PASSIVE checkpoints
//! instead, which never block the writer or readers. A passive checkpoint cannot restart the WAL while
//! commits keep arriving, so once the WAL file passes [`WAL_RESTART_BYTES`] the writer finishes the (by then
//! small) rest of the checkpoint itself, and its next transaction starts the WAL over.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

use super::{Event, EventKind, EventSink, KeyValue, Result, Revision, Store, StoreError, timing};

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

/// The most writes one transaction takes. Large enough that 32+ concurrent API clients share one fsync,
/// small enough that one commit (and the wait of the first writer in it) stays short.
pub const MAX_BATCH: usize = 256;

/// Idle read connections kept open; more are opened when more readers run at once.
const MAX_IDLE_READERS: usize = 8;

/// The WAL is truncated to this size after a checkpoint (SQLite's `journal_size_limit`), so a burst of
/// writes between compactions does not leave a large WAL behind.
const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// The background checkpointer runs a passive checkpoint at most this often while writes arrive: often
/// enough that the WAL stays small, rarely enough that its fsyncs do not crowd the writer's.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// WAL file size past which the writer completes a checkpoint itself, so the next transaction can start the
/// WAL over: a passive checkpoint alone never catches up with a steady stream of commits. The background
/// checkpointer has usually copied all but the newest pages by then, so this costs little. A WAL that was
/// started over is cut back to [`JOURNAL_SIZE_LIMIT`] at the next commit, so the file size (one `stat`)
/// tells whether the WAL has been growing since.
const WAL_RESTART_BYTES: u64 = 2 * JOURNAL_SIZE_LIMIT as u64;

/// A [`Store`] on one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    /// The queue of the writer thread; `None` only while dropping.
    writer: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    sink: Arc<Mutex<Option<EventSink>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// One queued write.
enum Op {
    Create { key: String, value: Vec<u8> },
    Update { key: String, value: Vec<u8>, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
    Compact { keep_last: Revision },
}

/// A write and where its result goes.
struct Job {
    op: Op,
    reply: mpsc::SyncSender<Result<Revision>>,
    queued: Instant,
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
        // SQLite's own text, "database or disk is full", does not say what to do; callers add the path.
        if err.sqlite_error_code() == Some(ErrorCode::DiskFull) {
            return StoreError::Backend(format!(
                "no space left on device: the disk holding the store is full ({err}); free space there and retry"
            ));
        }
        StoreError::Backend(err.to_string())
    }
}

/// A backend error that names the database file.
fn backend_error(path: &Path, err: impl Into<StoreError>) -> StoreError {
    match err.into() {
        StoreError::Backend(msg) => StoreError::Backend(format!("{}: {msg}", path.display())),
        other => other,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`, with group commit.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_batch_limit(path, MAX_BATCH)
    }

    /// Opens the store with at most `max_batch` writes per transaction; 1 turns group commit off (one fsync
    /// per write), which the benchmarks use as the baseline.
    pub fn open_with_batch_limit(path: impl AsRef<Path>, max_batch: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = open_writer(&path)?;
        let checkpointer = Checkpointer::start(&path)?;
        let sink: Arc<Mutex<Option<EventSink>>> = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = Writer { conn, path: path.clone(), sink: sink.clone(), max_batch: max_batch.max(1), checkpointer };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|err| StoreError::Backend(format!("starting the store's writer thread: {err}")))?;
        Ok(Self { path, writer: Some(tx), thread: Some(thread), readers: Mutex::new(Vec::new()), sink })
    }

    /// The number of rows in the log table (live keys, tombstones and retained history). For diagnostics and
    /// for tests that check compaction keeps the table bounded.
    pub fn row_count(&self) -> Result<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM kine", [], |row| row.get(0))?))
    }

    /// Queues one write and waits for its commit.
    fn write(&self, op: Op) -> Result<Revision> {
        let (reply, result) = mpsc::sync_channel(1);
        let gone = || StoreError::Backend(format!("{}: the store's writer thread has stopped", self.path.display()));
        let queued = Instant::now();
        self.writer.as_ref().ok_or_else(gone)?.send(Job { op, reply, queued }).map_err(|_| gone())?;
        let r = result.recv().map_err(|_| gone())?;
        timing::record("write_caller", queued.elapsed());
        r
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let idle = lock(&self.readers).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = f(&mut conn);
        // A connection left inside a transaction by a failed read is not reused.
        if conn.is_autocommit() {
            let mut idle = lock(&self.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result.map_err(|err| backend_error(&self.path, err))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer thread once it has finished the queued writes; joining it closes
        // the write connection, so the file can be reopened at once.
        self.writer = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing guarded here is left half-updated by a panic (a Vec of idle connections, an Option), so a
    // poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|err| StoreError::Backend(format!("opening {}: {err}", path.display())))?;
    let fail = |err: rusqlite::Error| backend_error(path, err);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // Must precede the first table: a new database then returns the pages compaction frees to the file
    // system (incremental_vacuum below). An existing database keeps its mode; compaction still reuses pages.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(fail)?;
    // journal_mode reports the mode actually in effect; some filesystems cannot do WAL, and silently
    // running in another mode would change the durability and concurrency we promise.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: SQLite could not enable WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    // FULL fsyncs the WAL at every commit, so an acknowledged write survives power loss (NORMAL, kine's
    // default, may lose the last commits).
    conn.pragma_update(None, "synchronous", "FULL").map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT).map_err(fail)?;
    // No checkpoint inside a commit: the checkpointer thread does them (see the module doc).
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(fail)?;
    conn.execute_batch(SCHEMA).map_err(fail)?;
    Ok(conn)
}

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` and returns the WAL's size in pages (-1 if the database is not
/// in WAL mode). A passive checkpoint copies what it can without waiting for any lock, so it never stalls
/// the writer or a reader; a busy result only means it copied less.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// The background checkpointer: a thread with its own connection, woken after commits.
struct Checkpointer {
    /// Wakes the thread; a full channel means a wake-up is already pending.
    nudge: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The WAL file (`<database>-wal`).
    wal_path: PathBuf,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|err| backend_error(path, err))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|err| backend_error(path, err))?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let (nudge, wakes) = mpsc::sync_channel::<()>(1);
        let path_buf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while wakes.recv().is_ok() {
                    // Let commits accumulate: one checkpoint covers everything written meanwhile.
                    std::thread::sleep(CHECKPOINT_INTERVAL);
                    while wakes.try_recv().is_ok() {}
                    let t = Instant::now();
                    if let Err(err) = passive_checkpoint(&conn) {
                        tracing::warn!(path = %path_buf.display(), error = %err, "WAL checkpoint failed");
                    }
                    timing::record("bg_checkpoint", t.elapsed());
                }
            })
            .map_err(|err| StoreError::Backend(format!("starting the store's checkpoint thread: {err}")))?;
        Ok(Self { nudge: Some(nudge), thread: Some(thread), wal_path: wal_path.into() })
    }

    /// Tells the thread the WAL has grown.
    fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|err| backend_error(path, err))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|err| backend_error(path, err))?;
    // Reads never write; this makes a bug that tried to fail instead of bypassing the writer thread.
    conn.pragma_update(None, "query_only", true).map_err(|err| backend_error(path, err))?;
    Ok(conn)
}

/// The writer thread's state: the only write connection.
struct Writer {
    conn: Connection,
    path: PathBuf,
    sink: Arc<Mutex<Option<EventSink>>>,
    max_batch: usize,
    checkpointer: Checkpointer,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        // A compaction is not batched with writes (its checkpoint must follow a commit); one that is dequeued
        // while a batch is filling waits here for the next round.
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match queue.recv_timeout(Duration::from_secs(1)) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        timing::maybe_dump();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
            };
            if let Op::Compact { keep_last } = first.op {
                let t = Instant::now();
                let _ = first.reply.send(self.compact(keep_last));
                timing::record("compact", t.elapsed());
                continue;
            }
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(job) if matches!(job.op, Op::Compact { .. }) => {
                        held = Some(job);
                        break;
                    }
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
            timing::maybe_dump();
        }
    }

    /// Applies `batch` in one transaction, publishes its events, then answers every caller.
    fn commit_batch(&mut self, batch: Vec<Job>) {
        let started = Instant::now();
        for job in &batch {
            timing::record("queue_wait", started - job.queued);
        }
        timing::record("batch_size", Duration::from_millis(batch.len() as u64));
        let mut results: Vec<Result<(Revision, Event)>> = Vec::with_capacity(batch.len());
        let outcome = self.apply_batch(&batch, &mut results);
        self.checkpointer.nudge();
        let published = Instant::now();
        let replies: Vec<Result<Revision>> = match outcome {
            Ok(()) => {
                let events: Vec<Event> =
                    results.iter().filter_map(|r| r.as_ref().ok()).map(|(_, e)| e.clone()).collect();
                if !events.is_empty() {
                    let sink = lock(&self.sink).clone();
                    if let Some(sink) = sink {
                        sink(events);
                    }
                }
                timing::record("publish", published.elapsed());
                results.into_iter().map(|r| r.map(|(rev, _)| rev)).collect()
            }
            // Nothing of the batch was committed: every write in it fails with the reason, except those that
            // had already failed on their own (their own error is the more precise answer).
            Err(err) => {
                let mut replies: Vec<Result<Revision>> = results
                    .into_iter()
                    .map(|r| match r {
                        Ok(_) => Err(err.clone()),
                        Err(own) => Err(own),
                    })
                    .collect();
                replies.resize_with(batch.len(), || Err(err.clone()));
                replies
            }
        };
        for (job, reply) in batch.into_iter().zip(replies) {
            // A caller that gave up waiting is fine: its write is committed (or not) either way.
            let _ = job.reply.send(reply);
            timing::record("writer_total", job.queued.elapsed());
        }
        timing::record("batch_total", started.elapsed());
        // After the replies, so the callers of this batch do not wait for it.
        // The next transaction then starts the WAL over (unless a reader still holds it; then the file
        // stays large and this repeats after the next batch).
        if std::fs::metadata(&self.checkpointer.wal_path).is_ok_and(|m| m.len() > WAL_RESTART_BYTES) {
            let t = Instant::now();
            if let Err(err) = passive_checkpoint(&self.conn) {
                tracing::warn!(path = %self.path.display(), error = %err, "WAL checkpoint failed");
            }
            timing::record("writer_checkpoint", t.elapsed());
        }
    }

    /// Runs the batch inside one transaction; `Err` means the transaction was rolled back as a whole.
    fn apply_batch(&mut self, batch: &[Job], results: &mut Vec<Result<(Revision, Event)>>) -> Result<()> {
        let path = self.path.clone();
        let conn = &self.conn;
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|err| backend_error(&path, err))?;
        timing::record("begin", t.elapsed());
        let t = Instant::now();
        for job in batch {
            conn.execute_batch("SAVEPOINT op").map_err(|err| backend_error(&path, err))?;
            match apply(conn, &job.op) {
                Ok(done) => {
                    conn.execute_batch("RELEASE op").map_err(|err| backend_error(&path, err))?;
                    results.push(Ok(done));
                }
                Err(err) => {
                    let err = backend_error(&path, err);
                    // SQLite rolls back the whole transaction on some errors (a full disk, an I/O error). The
                    // writes before this one are then gone too, so the batch fails as a whole.
                    if conn.is_autocommit() {
                        results.push(Err(err.clone()));
                        return Err(err);
                    }
                    conn.execute_batch("ROLLBACK TO op; RELEASE op").map_err(|err| backend_error(&path, err))?;
                    results.push(Err(err));
                }
            }
        }
        timing::record("exec", t.elapsed());
        let t = Instant::now();
        let committed = conn.execute_batch("COMMIT");
        timing::record("commit", t.elapsed());
        if let Err(err) = committed {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(backend_error(&path, err));
        }
        Ok(())
    }

    fn compact(&mut self, keep_last: Revision) -> Result<Revision> {
        if keep_last < 0 {
            return Err(StoreError::InvalidArgument(format!("keep_last must not be negative (got {keep_last})")));
        }
        let path = self.path.clone();
        let fail = |err: rusqlite::Error| backend_error(&path, err);
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(fail)?;
        let current = current_revision(&tx)?;
        let floor = compact_floor(&tx)?.max(current.saturating_sub(keep_last)).max(0);
        // Reading at the floor must still work, so for each key the newest row at or below the floor stays,
        // unless it is a tombstone (the key is absent at the floor, so nothing needs to remember it). Rows
        // above the floor are untouched: they are the retained history that watches replay.
        tx.execute(
            "DELETE FROM kine WHERE id <= ?1 AND (deleted = 1 OR id < (
                 SELECT MAX(newer.id) FROM kine AS newer WHERE newer.name = kine.name AND newer.id <= ?1))",
            params![floor],
        )
        .map_err(fail)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![COMPACT_FLOOR_KEY, floor],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        // Copy the WAL back into the database and truncate it, so the WAL stays bounded; the freed pages of
        // the database file are reused by later writes (or, in a database made with auto_vacuum, returned to
        // the file system). The pragma reports (busy, log frames, checkpointed frames); a busy result only
        // means a reader held the WAL, and the next compaction retries.
        // The vacuum writes to the WAL too, so it goes first.
        self.conn.execute_batch("PRAGMA incremental_vacuum").map_err(fail)?;
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(fail)?;
        Ok(floor)
    }
}

/// Applies one write inside the current transaction and returns its revision and event.
fn apply(conn: &Connection, op: &Op) -> Result<(Revision, Event)> {
    match op {
        Op::Create { key, value } => {
            let prev = latest(conn, key)?;
            if prev.as_ref().is_some_and(|row| !row.deleted) {
                return Err(StoreError::AlreadyExists);
            }
            // prev_revision links a re-created key to its tombstone; create_revision is the row's own id,
            // which is known only after the insert. The fix-up happens before commit, so nobody sees the
            // placeholder.
            let id = append(conn, key, true, false, None, prev.as_ref(), value)?;
            conn.prepare_cached("UPDATE kine SET create_revision = id WHERE id = ?1")?.execute(params![id])?;
            let kv = KeyValue { key: key.clone(), value: value.clone(), create_revision: id, mod_revision: id };
            Ok((id, Event { kind: EventKind::Put, kv, prev_kv: None }))
        }
        Op::Update { key, value, expected } => {
            let prev = live(conn, key)?.ok_or(StoreError::NotFound)?;
            if prev.id != *expected {
                return Err(StoreError::Conflict { current: prev.id });
            }
            let id = append(conn, key, false, false, Some(prev.create_revision), Some(&prev), value)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: prev.create_revision,
                mod_revision: id,
            };
            Ok((id, Event { kind: EventKind::Put, kv, prev_kv: Some(prev.into_kv()) }))
        }
        Op::Delete { key, expected } => {
            let prev = live(conn, key)?.ok_or(StoreError::NotFound)?;
            if expected.is_some_and(|expected| expected != prev.id) {
                return Err(StoreError::Conflict { current: prev.id });
            }
            // The tombstone's value is empty: the deleted value is kept once, in old_value, for the event's
            // prev_kv.
            let id = append(conn, key, false, true, Some(prev.create_revision), Some(&prev), &[])?;
            let kv = KeyValue {
                key: key.clone(),
                value: Vec::new(),
                create_revision: prev.create_revision,
                mod_revision: id,
            };
            Ok((id, Event { kind: EventKind::Delete, kv, prev_kv: Some(prev.into_kv()) }))
        }
        Op::Compact { .. } => unreachable!("compactions run on their own, never inside a batch"),
    }
}

/// The newest row for `key`, tombstone or not.
fn latest(conn: &Connection, key: &str) -> Result<Option<LogRow>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1");
    Ok(conn.prepare_cached(&sql)?.query_row(params![key], LogRow::from_row).optional()?)
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

/// Appends one row and returns its revision. `create_revision` is `None` for a create (fixed up by the
/// caller once the id is known).
fn append(
    conn: &Connection,
    key: &str,
    created: bool,
    deleted: bool,
    create_revision: Option<Revision>,
    prev: Option<&LogRow>,
    value: &[u8],
) -> Result<Revision> {
    let prev_revision = prev.map_or(0, |row| row.id);
    let old_value = prev.filter(|row| !row.deleted).map(|row| row.value.as_slice());
    let id = conn
        .prepare_cached(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value, old_value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![key, created, deleted, create_revision.unwrap_or(0), prev_revision, value, old_value],
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
        self.write(Op::Create { key: key.to_string(), value: value.to_vec() })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(|conn| Ok(live(conn, key)?.map(LogRow::into_kv)))
    }

    fn list(
        &self,
        prefix: &str,
        limit: Option<usize>,
        continue_after: Option<&str>,
        at_revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, Revision)> {
        self.read(|conn| {
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
            // Walk the keys in order and seek each one's newest row at the revision: the LIMIT then stops
            // the walk. (A `GROUP BY name` subquery computed every key's newest row before the limit
            // applied, so a page of 500 cost about as much as the whole list.)
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM kine AS k
                 WHERE name >= ?1 AND name < CAST(?2 AS TEXT) AND (?3 IS NULL OR name > ?3)
                   AND id = (SELECT MAX(id) FROM kine AS newest WHERE newest.name = k.name AND newest.id <= ?4)
                   AND deleted = 0
                 ORDER BY name LIMIT ?5"
            );
            let kvs = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![lower, upper, continue_after, revision, limit], LogRow::from_row)?;
                rows.map(|row| row.map(LogRow::into_kv)).collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok((kvs, revision))
        })
    }

    fn update(&self, key: &str, value: &[u8], expected_mod_revision: Revision) -> Result<Revision> {
        self.write(Op::Update { key: key.to_string(), value: value.to_vec(), expected: expected_mod_revision })
    }

    fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        self.write(Op::Delete { key: key.to_string(), expected: expected_mod_revision })
    }

    fn current_revision(&self) -> Result<Revision> {
        self.read(|conn| current_revision(conn))
    }

    fn events_since(&self, revision: Revision, prefix: &str) -> Result<Vec<Event>> {
        self.read(|conn| {
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
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![revision, lower, upper], LogRow::from_row)?;
                rows.map(|row| row.map(LogRow::into_event)).collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(events)
        })
    }

    fn compact(&self, keep_last: Revision) -> Result<Revision> {
        if keep_last < 0 {
            return Err(StoreError::InvalidArgument(format!("keep_last must not be negative (got {keep_last})")));
        }
        self.write(Op::Compact { keep_last })
    }

    fn set_event_sink(&self, sink: EventSink) {
        *lock(&self.sink) = Some(sink);
    }
}
