//! The embedded store: one SQLite file (bundled SQLite via rusqlite, WAL mode) with the same
//! semantics as the DynamoDB table.
//!
//! Every conditional operation is one `BEGIN IMMEDIATE` transaction that reads the row,
//! evaluates the condition against the live item (expired = absent) and writes. SQLite's file
//! locks make that atomic across threads and across processes, so `latchkey user add` can
//! write while `latchkey serve` runs on the same data dir; a writer that finds the database
//! busy waits up to five seconds, then reports [`StoreError::Busy`].
//!
//! Where the work runs: a request's store call runs on the caller's thread when it can, because
//! handing it to a blocking thread (a futex wake and two context switches) cost more than the
//! SQLite work itself — on `GET customers/me` under load, the wake-up was the server's largest
//! single cost. Reads use a small pool of read-only connections: in WAL mode a reader never
//! waits for a writer, so a read takes microseconds. A write runs inline when the write lock is
//! free at once (`BEGIN IMMEDIATE` with no busy wait); when another connection or process holds
//! it, the write goes to a blocking thread and waits there, up to five seconds, so a writer in
//! `latchkey user add` never stalls the server's async threads. (SQLite checkpoints its WAL
//! after the commit that takes it past 1,000 pages, on the thread that committed: now and
//! then an inline write pays for one, a few milliseconds. The sweep of expired rows, a large
//! write, always runs on a blocking thread.)
//!
//! `get` and `get_many` keep the rows they read until the next commit, from this process or
//! another: a `GET customers/me` that finds its profile as the last request left it costs no
//! SQLite read at all (`cache.rs` says how a commit is noticed). A write of this process
//! carries the kept rows over its own commit, with the rows it wrote, and reads its own row from
//! them: when one step of a flow writes the flow's row, the next step's `get` finds it without
//! an SQLite read. A commit made through any other connection (another process's, or another
//! store's in this one) still leaves every kept row unserved.
//!
//! Attributes are stored as JSON in DynamoDB's own typed form — `{"S":"x"}`, `{"N":"12"}`,
//! `{"B":"<base64>"}`, `{"BOOL":true}`, `{"L":[...]}` — so an exported row reads like a
//! DynamoDB item.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use latchkey_core::store::engine::{self, Rows};
use latchkey_core::store::{
    Attrs, Cond, Item, Key, Store, StoreError, StoreVersion, TxOp, Update, Value, validate_keys,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
#[cfg(test)]
use serde_json::Value as Json;

use crate::cache::{Changes, ReadCache, Version};

const SCHEMA_VERSION: i64 = 1;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in one SQLite file. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    /// The one connection that writes (SQLite has one writer at a time anyway).
    conn: Arc<Mutex<Connection>>,
    /// The server's writes take turns here, in order, before they take the connection: a write
    /// waiting for another of this process waits as a task, not as a blocked thread.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Read-only connections, one per core: reads run on the caller's thread on a free one.
    readers: Arc<[Mutex<Connection>]>,
    /// Rows read and rows written, kept until another connection commits (see [`ReadCache`]).
    cache: Option<Arc<ReadCache>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Creates the database file, if missing, readable and writable by its owner only: it holds
/// password hashes and sealed secrets. SQLite gives its `-wal` and `-shm` files the database
/// file's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Failure(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) {
        StoreError::Busy("the embedded store is locked by another writer".into())
    } else {
        StoreError::Failure(format!("sqlite: {e}"))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn poisoned() -> StoreError {
    StoreError::Failure("store connection poisoned".into())
}

/// One read-only connection per core the server's threads run on (at least two).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// A connection that only reads: `query_only` refuses any write made through it by mistake.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sql_error)?;
    // Compiled now, which reads the schema: else the first request to read through this
    // connection pays for both.
    conn.prepare_cached(READ_ROW).map_err(sql_error)?;
    Ok(conn)
}

/// A `BEGIN IMMEDIATE` transaction, rolled back when dropped uncommitted. rusqlite's
/// `Transaction` does the same, but compiles its `BEGIN` and `COMMIT` anew on every write
/// (`execute_batch`); these are compiled once per connection and kept, which took the SQL
/// compiler's 4% out of the flows' own handler time (infra/BENCH.md, "Runs of 2026-11-28,
/// mid-morning"). It borrows the connection shared, where rusqlite's takes it `&mut` to rule
/// out nesting at compile time: only [`SqliteStore::write`] and
/// [`SqliteStore::write_blocking`] begin one, each on the writer connection it has locked.
struct Immediate<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        // A rollback that failed (below, where nothing can be told) would leave the connection
        // inside that transaction, and every later BEGIN refused: end it first.
        if !conn.is_autocommit() {
            conn.prepare_cached("ROLLBACK")?.execute([])?;
        }
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Immediate<'_> {
    /// Runs on every write that failed, a condition that did not hold included.
    fn drop(&mut self) {
        // SQLite may have rolled back already (a failed COMMIT on a full disk, say).
        if self.open && !self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut rollback| rollback.execute([]));
        }
    }
}

/// Runs `f` inside `tx` and commits when it returns Ok (dropping `tx` rolls back otherwise).
///
/// With a cache, `f`'s reads come from it when it holds the row at the version the write began
/// from, and a commit that changed rows carries the kept rows over with them
/// ([`ReadCache::carry`]): the next request finds the rows this one left without reading
/// SQLite. That version is read here, under the write lock, where no other connection can
/// commit.
fn commit_with<T>(
    cache: Option<&ReadCache>,
    tx: Immediate<'_>,
    f: impl FnOnce(&mut ConnRows<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let before = cache.and_then(|cache| cache.version().map(|version| (cache, version)));
    let mut rows = ConnRows::writing(tx.conn, before);
    let out = f(&mut rows)?;
    let changes = rows.changes();
    tx.commit().map_err(sql_error)?;
    if let (Some((cache, before)), Some(changes)) = (before, changes)
        && let Some(after) = cache.version()
    {
        cache.carry(before, after, changes);
    }
    Ok(out)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_inner(path).map_err(|e| match e {
            StoreError::Failure(m) if m.contains("not a database") => StoreError::Failure(format!(
                "{} is not a latchkey store (not an SQLite database)",
                path.display()
            )),
            other => other,
        })
    }

    fn open_inner(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(sql_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        let journal: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_error)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(sql_error)?;
        let mut conn = conn;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS latchkey_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS items (
                 pk TEXT NOT NULL,
                 sk TEXT NOT NULL,
                 attrs TEXT NOT NULL,
                 expires_at INTEGER,
                 PRIMARY KEY (pk, sk)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS items_by_sk ON items (sk);",
        )
        .map_err(sql_error)?;
        let version: Option<String> = tx
            .query_row(
                "SELECT value FROM latchkey_meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error)?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                tx.execute(
                    "INSERT INTO latchkey_meta (name, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(sql_error)?;
            }
            Some(Ok(SCHEMA_VERSION)) => {}
            Some(_) => {
                return Err(StoreError::Failure(format!(
                    "{} was written by another latchkey version (schema {version:?}, expected {SCHEMA_VERSION})",
                    path.display()
                )));
            }
        }
        tx.commit().map_err(sql_error)?;
        let readers = (0..reader_count())
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        // SQLite's own name for the file (symbolic links resolved), whose `-shm` it uses.
        let cache = conn
            .path()
            .filter(|_| journal.eq_ignore_ascii_case("wal"))
            .and_then(|db| ReadCache::open(Path::new(db)))
            .map(Arc::new);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            turn: Arc::new(tokio::sync::Mutex::new(())),
            readers: readers.into(),
            cache,
        })
    }

    /// Runs `f` on a read-only connection, on the caller's thread: a free one if there is one,
    /// else the first, after the read that holds it (reads are short and never wait for
    /// writers).
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let free = self.readers.iter().find_map(|r| r.try_lock().ok());
        let mut guard = match free {
            Some(guard) => guard,
            None => self
                .readers
                .first()
                .ok_or_else(|| StoreError::Failure("the store has no reader".into()))?
                .lock()
                .map_err(|_| poisoned())?,
        };
        f(&mut guard)
    }

    /// Runs `f` on the rows inside one read transaction (a consistent snapshot of several
    /// rows).
    fn read_snapshot<T>(
        &self,
        f: impl FnOnce(&mut ConnRows<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            f(&mut ConnRows::reading(&tx))
        })
    }

    /// The rows at `keys` as one snapshot (expired ones included, as [`Rows`] gives them):
    /// from the cache when it holds every one at the database's current version, else read
    /// and kept.
    fn kept_rows(&self, keys: &[Key]) -> Result<KeptRows, StoreError> {
        // Refused keys are neither read nor kept (the engine checks them again, as for every
        // adapter).
        validate_keys(keys)?;
        let version = self.cache.as_ref().and_then(|cache| cache.version());
        if let (Some(cache), Some(version)) = (&self.cache, version)
            && let Some(rows) = cache.rows(version, keys)
        {
            return Ok(KeptRows::new(keys.iter().cloned().zip(rows)));
        }
        let rows = match keys {
            // One statement reads one row atomically: no transaction needed.
            [key] => vec![self.read(|conn| read_row(conn, key))?],
            _ => self.read_snapshot(|rows| keys.iter().map(|key| rows.read(key)).collect())?,
        };
        let rows: Vec<(Key, Option<Item>)> = keys.iter().cloned().zip(rows).collect();
        if let (Some(cache), Some(version)) = (&self.cache, version) {
            cache.keep(version, rows.iter().cloned());
        }
        Ok(KeptRows::new(rows))
    }

    /// Runs `f` on the rows inside one `BEGIN IMMEDIATE` transaction, committing if it
    /// returns Ok: the write lock is taken before the read, so the read and the write are one
    /// atomic step, across threads and processes. Writes of this process take turns (as tasks),
    /// then run on the caller's thread when the write lock is free at once; when another
    /// process or the sweep holds it, on a blocking thread that waits for it.
    ///
    /// Without the turns, 32 connections emailing login links at once sent most writes to
    /// blocking threads (one per waiting write: 140 threads, futex handoffs), at 1,000
    /// requests/s with a p50 of 31 ms (infra/BENCH.md).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ConnRows<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let _turn = self.turn.lock().await;
        if let Ok(conn) = self.conn.try_lock() {
            conn.busy_timeout(Duration::ZERO).map_err(sql_error)?;
            match Immediate::begin(&conn) {
                Ok(tx) => return commit_with(self.cache.as_deref(), tx, f),
                Err(e) if is_busy(&e) => {}
                Err(e) => return Err(sql_error(e)),
            }
        }
        self.write_blocking(f).await
    }

    /// [`SqliteStore::write`] on a blocking thread, waiting up to [`BUSY_TIMEOUT`] for the
    /// write lock.
    async fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ConnRows<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| poisoned())?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
            let tx = Immediate::begin(&conn).map_err(sql_error)?;
            commit_with(cache.as_deref(), tx, f)
        })
        .await
        .map_err(|_| StoreError::Failure("store task failed".into()))?
    }

    /// Deletes expired rows. Reads already ignore them; this keeps the file small. Always on
    /// a blocking thread: a sweep may delete many rows, too long a write for an async thread.
    pub async fn sweep_expired(&self, now: i64) -> Result<usize, StoreError> {
        self.write_blocking(move |rows| {
            rows.untracked()
                .execute(
                    "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    params![now],
                )
                .map_err(sql_error)
        })
        .await
    }
}

/// An attribute written as DynamoDB's typed JSON, straight into the row's text. serde_json's
/// `json!` tree, built for every value and then printed, cost a store write more than SQLite's
/// own statements did (`BENCH.md`, "Runs of 2026-11-28, late morning").
struct TypedRef<'a>(&'a Value);

impl serde::Serialize for TypedRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::S(v) => map.serialize_entry("S", v)?,
            Value::N(n) => map.serialize_entry("N", &Text(n))?,
            Value::B(b) => map.serialize_entry(
                "B",
                &Text(base64::display::Base64Display::new(
                    b,
                    &base64::engine::general_purpose::STANDARD,
                )),
            )?,
            Value::Bool(b) => map.serialize_entry("BOOL", b)?,
            Value::L(l) => map.serialize_entry("L", &TypedList(l))?,
        }
        map.end()
    }
}

/// A JSON string written from its `Display` (a number's decimal digits, as DynamoDB gives
/// numbers; bytes in base64), without a `String` in between.
struct Text<T>(T);

impl<T: std::fmt::Display> serde::Serialize for Text<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

struct TypedList<'a>(&'a [Value]);

impl serde::Serialize for TypedList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(TypedRef))
    }
}

/// An attribute as stored: DynamoDB's typed JSON, which is serde's externally tagged form of
/// this enum, so a row deserialises straight into it without an intermediate JSON tree.
#[derive(serde::Deserialize)]
enum Typed {
    S(String),
    N(String),
    B(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    L(Vec<Typed>),
}

impl Typed {
    fn into_value(self) -> Option<Value> {
        Some(match self {
            Typed::S(s) => Value::S(s),
            Typed::N(n) => Value::N(n.parse().ok()?),
            Typed::B(b) => Value::B(base64::engine::general_purpose::STANDARD.decode(b).ok()?),
            Typed::Bool(b) => Value::Bool(b),
            Typed::L(l) => Value::L(
                l.into_iter()
                    .map(Typed::into_value)
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }
}

#[cfg(test)]
fn decode_value(j: &Json) -> Option<Value> {
    serde_json::from_value::<Typed>(j.clone())
        .ok()?
        .into_value()
}

/// A row's attributes, by name (an [`Attrs`] map is ordered, as serde_json's own map is).
struct TypedAttrs<'a>(&'a Attrs);

impl serde::Serialize for TypedAttrs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, TypedRef(v))))
    }
}

fn encode_attrs(attrs: &Attrs) -> Result<String, StoreError> {
    serde_json::to_string(&TypedAttrs(attrs))
        .map_err(|e| StoreError::Failure(format!("encoding item: {e}")))
}

fn decode_row(key: Key, attrs: &str, expires_at: Option<i64>) -> Result<Item, StoreError> {
    let corrupt = || StoreError::Failure(format!("item {key}: stored attributes are corrupt"));
    let typed: std::collections::BTreeMap<String, Typed> =
        serde_json::from_str(attrs).map_err(|_| corrupt())?;
    let attrs = typed
        .into_iter()
        .map(|(k, v)| v.into_value().map(|v| (k, v)))
        .collect::<Option<Attrs>>()
        .ok_or_else(corrupt)?;
    Ok(Item {
        key,
        attrs,
        expires_at,
    })
}

/// The rows seen through one connection (inside a transaction, or one statement on its own),
/// for the shared [`engine`]. Statements are prepared once per connection and cached.
struct ConnRows<'a> {
    conn: &'a Connection,
    /// Inside a write: the cache, and the version the write began from, whose kept rows are
    /// the rows as they stand.
    kept: Option<(&'a ReadCache, Version)>,
    /// Inside a write: every row it read or wrote, as the transaction now has it; `None` when
    /// reading, and once the connection was used directly ([`ConnRows::untracked`]).
    touched: Option<Vec<Touched>>,
}

/// A row a write read or wrote: as it stands inside the transaction, and whether the write
/// changed its bytes.
struct Touched {
    key: Key,
    row: Option<Item>,
    changed: bool,
}

impl<'a> ConnRows<'a> {
    fn reading(conn: &'a Connection) -> Self {
        Self {
            conn,
            kept: None,
            touched: None,
        }
    }

    fn writing(conn: &'a Connection, kept: Option<(&'a ReadCache, Version)>) -> Self {
        Self {
            conn,
            kept,
            touched: Some(Vec::new()),
        }
    }

    /// The connection itself, for a statement the engine does not make (the sweep): what it
    /// changes is not known row by row, so nothing is carried over its commit.
    fn untracked(&mut self) -> &'a Connection {
        self.touched = None;
        self.conn
    }

    fn touched(&mut self, key: &Key) -> Option<&mut Touched> {
        self.touched.as_mut()?.iter_mut().find(|t| &t.key == key)
    }

    /// Notes what the write made of the row at `key`.
    fn note(&mut self, key: &Key, row: Option<&Item>, changed: bool) {
        if let Some(touched) = self.touched(key) {
            touched.row = row.cloned();
            touched.changed |= changed;
        } else if let Some(all) = &mut self.touched {
            all.push(Touched {
                key: key.clone(),
                row: row.cloned(),
                changed,
            });
        }
    }

    /// The rows the write changed, for [`ReadCache::carry`]: `None` when it changed none (its
    /// commit then writes nothing to the WAL, and moves no counter) or when it is not known.
    fn changes(self) -> Option<Changes> {
        let changes: Changes = self
            .touched?
            .into_iter()
            .filter(|t| t.changed)
            .map(|t| (t.key, t.row))
            .collect();
        (!changes.is_empty()).then_some(changes)
    }
}

/// Rows already read, for the engine's reads (`get`, `get_many`). Each is handed over once
/// (no copy); a key read twice, or not read at all, is a failure rather than a wrong answer.
struct KeptRows(Vec<(Key, Option<Option<Item>>)>);

impl KeptRows {
    fn new(rows: impl IntoIterator<Item = (Key, Option<Item>)>) -> Self {
        Self(rows.into_iter().map(|(k, row)| (k, Some(row))).collect())
    }
}

impl Rows for KeptRows {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.0
            .iter_mut()
            .find(|(k, _)| k == key)
            .and_then(|(_, row)| row.take())
            .ok_or_else(|| StoreError::Failure(format!("item {key} was not read once")))
    }

    fn write(&mut self, _: &Item) -> Result<(), StoreError> {
        Err(StoreError::Failure("a read wrote".into()))
    }

    fn remove(&mut self, _: &Key) -> Result<(), StoreError> {
        Err(StoreError::Failure("a read removed".into()))
    }
}

/// The statement [`read_row`] runs.
const READ_ROW: &str = "SELECT attrs, expires_at FROM items WHERE pk = ?1 AND sk = ?2";

/// One row by key, on its own or inside a transaction.
fn read_row(conn: &Connection, key: &Key) -> Result<Option<Item>, StoreError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached(READ_ROW)
        .map_err(sql_error)?
        .query_row(params![key.pk, key.sk], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sql_error)?;
    row.map(|(attrs, expires_at)| decode_row(key.clone(), &attrs, expires_at))
        .transpose()
}

impl Rows for ConnRows<'_> {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        if let Some(touched) = self.touched(key) {
            return Ok(touched.row.clone());
        }
        let row = match self
            .kept
            .and_then(|(cache, version)| cache.row(version, key))
        {
            Some(row) => row,
            None => read_row(self.conn, key)?,
        };
        self.note(key, row.as_ref(), false);
        Ok(row)
    }

    fn write(&mut self, item: &Item) -> Result<(), StoreError> {
        // The row as it stands, byte for byte: SQLite would change no page, and the commit
        // would write nothing to the WAL (see `ConnRows::changes`).
        if self
            .touched(&item.key)
            .is_some_and(|t| t.row.as_ref() == Some(item))
        {
            return Ok(());
        }
        let attrs = encode_attrs(&item.attrs)?;
        self.conn
            .prepare_cached(
                "INSERT INTO items (pk, sk, attrs, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pk, sk) DO UPDATE SET attrs = excluded.attrs, expires_at = excluded.expires_at",
            )
            .map_err(sql_error)?
            .execute(params![item.key.pk, item.key.sk, attrs, item.expires_at])
            .map_err(sql_error)?;
        self.note(&item.key, Some(item), true);
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Result<(), StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
            .map_err(sql_error)?
            .execute(params![key.pk, key.sk])
            .map_err(sql_error)?;
        self.note(key, None, removed > 0);
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// The WAL-index header as it stands (see [`crate::cache`]): every commit of any connection
    /// of any process rewrites it before it returns. `None` outside WAL mode, and while a
    /// commit rewrites it.
    fn version(&self) -> Option<StoreVersion> {
        self.cache.as_ref()?.version()?.store_version()
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        engine::get(&mut self.kept_rows(std::slice::from_ref(key))?, key, now)
    }

    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        engine::get_many(&mut self.kept_rows(keys)?, keys, now)
    }

    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        self.write(move |rows| engine::put(rows, &item, &cond, now))
            .await
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        let key = key.clone();
        self.write(move |rows| engine::update(rows, &key, &update, &cond, now))
            .await
    }

    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.write(move |rows| engine::delete(rows, &key, &cond, now))
            .await
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            // substr() compares exactly (LIKE would fold ASCII case and treat % and _ as wildcards).
            let mut stmt = conn
                .prepare_cached(
                    "SELECT sk, attrs, expires_at FROM items
                     WHERE pk = ?1 AND substr(sk, 1, length(?2)) = ?2 AND (expires_at IS NULL OR expires_at > ?3)
                     ORDER BY sk LIMIT ?4",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![pk, sk_prefix, now, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
                })
                .map_err(sql_error)?;
            rows.map(|row| {
                let (sk, attrs, expires_at) = row.map_err(sql_error)?;
                decode_row(Key::new(pk, sk), &attrs, expires_at)
            })
            .collect()
        })
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT pk, attrs, expires_at FROM items
                     WHERE sk = ?1 AND (expires_at IS NULL OR expires_at > ?2) LIMIT ?3",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![sk, now, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })
                .map_err(sql_error)?;
            rows.map(|row| {
                let (pk, attrs, expires_at) = row.map_err(sql_error)?;
                decode_row(Key::new(pk, sk), &attrs, expires_at)
            })
            .collect()
        })
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        self.write(move |rows| engine::transact(rows, &ops, now))
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_round_trip_through_the_typed_json() {
        let v = Value::L(vec![
            Value::S("".into()),
            Value::N(i64::MIN),
            Value::N(i64::MAX),
            Value::B(vec![0, 255]),
            Value::Bool(false),
            Value::L(vec![]),
        ]);
        let encoded = serde_json::to_value(TypedRef(&v)).unwrap();
        assert_eq!(decode_value(&encoded), Some(v));
        assert_eq!(
            serde_json::to_value(TypedRef(&Value::N(12))).unwrap(),
            json!({"N": "12"})
        );
        assert_eq!(decode_value(&json!({"X": 1})), None);
    }

    /// Rows written before the direct encoder read the same: the text is DynamoDB's typed
    /// JSON, names in order, as `json!` trees printed it.
    #[test]
    fn a_row_is_written_as_dynamodb_typed_json() {
        let mut attrs = Attrs::new();
        attrs.insert("z".into(), Value::S("a \"quoted\" \u{e9}\n".into()));
        attrs.insert("b".into(), Value::B(vec![0, 1, 254, 255]));
        attrs.insert("n".into(), Value::N(-42));
        attrs.insert("ok".into(), Value::Bool(true));
        attrs.insert(
            "l".into(),
            Value::L(vec![Value::N(7), Value::L(vec![Value::S("x".into())])]),
        );
        assert_eq!(
            encode_attrs(&attrs).unwrap(),
            r#"{"b":{"B":"AAH+/w=="},"l":{"L":[{"N":"7"},{"L":[{"S":"x"}]}]},"n":{"N":"-42"},"ok":{"BOOL":true},"z":{"S":"a \"quoted\" é\n"}}"#
        );
    }
}

#[cfg(test)]
mod threads {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use latchkey_core::store::{Cond, Item, Key, Store, StoreError, Value};

    use super::*;

    fn item(n: i64) -> Item {
        let mut item = Item::new(Key::new("USER#1", "PROFILE"));
        item.attrs.insert("n".into(), Value::N(n));
        item
    }

    /// A store in a fresh directory (kept alive by the returned guard), at `path`, holding
    /// `item(1)`.
    async fn store_with_one_row() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.db");
        let store = SqliteStore::open(&path).unwrap();
        store.put(item(1), Cond::Always, 0).await.unwrap();
        (dir, path, store)
    }

    /// Another process (`latchkey user add`) holding the write lock must not stall the server:
    /// the write that has to wait for it waits on a blocking thread, the async thread keeps
    /// serving (here: a ticking task and a read), and the write lands once the lock is free.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_waiting_for_another_writer_leaves_the_async_thread_serving() {
        let (_dir, path, store) = store_with_one_row().await;

        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.put(item(2), Cond::Always, 0).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !writer.is_finished(),
            "the write waits for the other writer"
        );
        assert!(
            ticks.load(Ordering::SeqCst) >= 10,
            "the async thread kept running while the write waited"
        );
        let key = Key::new("USER#1", "PROFILE");
        let seen = store.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(1)), "reads do not wait");

        other.execute_batch("COMMIT").unwrap();
        writer.await.unwrap().unwrap();
        let seen = store.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(2)));
        ticker.abort();
    }

    /// A write that fails after writing is undone whole: the row is as it was, the write lock
    /// is free for another process at once, and the next write lands.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_failing_after_it_wrote_leaves_nothing_behind() {
        let (_dir, path, store) = store_with_one_row().await;

        let failed = store
            .write(|rows| {
                rows.write(&item(2))?;
                Err::<(), _>(StoreError::Failure("refused after writing".into()))
            })
            .await;
        assert!(failed.is_err());
        let key = Key::new("USER#1", "PROFILE");
        let seen = store.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(1)), "rolled back");

        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .expect("no transaction of the store holds the write lock");
        store.put(item(3), Cond::Always, 0).await.unwrap();
        let seen = store.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(3)));
    }

    /// Many writes of this process at once, from tasks on several threads: each lands once,
    /// conditional ones see each other (a counter raised by compare-and-set ends exact).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_take_turns_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("latchkey.db")).unwrap();
        store.put(item(0), Cond::Always, 0).await.unwrap();
        let key = Key::new("USER#1", "PROFILE");
        let tasks = (0..32).map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut raised = 0;
                while raised < 10 {
                    let seen = store.get(&key, 0).await.unwrap().unwrap();
                    let Some(Value::N(n)) = seen.attrs.get("n").cloned() else {
                        panic!("no counter");
                    };
                    let cond = Cond::Eq("n".into(), Value::N(n));
                    match store.put(item(n + 1), cond, 0).await {
                        Ok(()) => raised += 1,
                        Err(StoreError::ConditionFailed { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap();
        }
        let seen = store.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(320)));
    }

    /// A row kept by the cache is served again only until another connection commits, from
    /// whichever process: `latchkey user …` revoking a session is seen by the server's next
    /// request. The server's own writes leave their rows in the cache, as written.
    #[tokio::test]
    async fn a_kept_row_is_read_again_once_another_process_commits() {
        let (_dir, path, server) = store_with_one_row().await;
        let other = Key::new("USER#2", "PROFILE");
        server
            .put(Item::new(other.clone()), Cond::Always, 0)
            .await
            .unwrap();
        let key = item(1).key;
        let both = [key.clone(), other.clone()];
        let cache = server.cache.clone().expect("a WAL database has a cache");
        let n = |item: Option<Item>| item.and_then(|i| i.attrs.get("n").cloned());

        assert_eq!(n(server.get(&key, 0).await.unwrap()), Some(Value::N(1)));
        assert_eq!(
            n(server.get_many(&both, 0).await.unwrap().remove(0)),
            Some(Value::N(1))
        );
        assert_eq!(cache.hits(), 2, "rows this store wrote come from the cache");

        // A second store on the same file commits, as the CLI does from its own process
        // (a second store here shares this process's SQLite state: `serve.rs` has the test
        // across processes).
        let cli = SqliteStore::open(&path).unwrap();
        cli.put(item(2), Cond::Always, 0).await.unwrap();
        assert_eq!(n(server.get(&key, 0).await.unwrap()), Some(Value::N(2)));
        cli.delete(&other, Cond::Always, 0).await.unwrap();
        assert_eq!(server.get_many(&both, 0).await.unwrap()[1], None);
        assert_eq!(
            cache.hits(),
            2,
            "no read after another store's commit is served from the cache"
        );

        // The server writes another row after the CLI's commit: what the cache kept before
        // that commit is not carried over the server's own.
        let third = Key::new("USER#3", "PROFILE");
        cli.put(item(4), Cond::Always, 0).await.unwrap();
        server
            .put(Item::new(third.clone()), Cond::Always, 0)
            .await
            .unwrap();
        assert_eq!(n(server.get(&key, 0).await.unwrap()), Some(Value::N(4)));
        assert_eq!(cache.hits(), 2);
        drop(cli);

        // A row the server writes is served as written, and still expires on time.
        let mut expiring = item(3);
        expiring.expires_at = Some(100);
        server.put(expiring, Cond::Always, 0).await.unwrap();
        assert_eq!(n(server.get(&key, 99).await.unwrap()), Some(Value::N(3)));
        assert_eq!(server.get(&key, 100).await.unwrap(), None);
        server.delete(&third, Cond::Always, 0).await.unwrap();
        assert_eq!(server.get(&third, 0).await.unwrap(), None);
        assert_eq!(
            cache.hits(),
            7,
            "the three gets, and both writes' reads of their own rows, from the cache"
        );
    }

    /// A write's own read of a row comes from the cache when it holds the row at the version
    /// the write began from, and only then: after another store's commit, the write reads
    /// SQLite, and checks its condition against the row as it now stands.
    #[tokio::test]
    async fn a_write_reads_its_row_from_the_cache_only_at_its_version() {
        let (_dir, path, server) = store_with_one_row().await;
        let key = item(1).key;
        let cache = server.cache.clone().expect("a WAL database has a cache");

        server
            .put(item(2), Cond::eq("n", Value::N(1)), 0)
            .await
            .unwrap();
        assert_eq!(
            cache.hits(),
            1,
            "the row the server wrote, read from the cache"
        );

        // The CLI commits: the server's cache still holds n = 2, under the old version.
        let cli = SqliteStore::open(&path).unwrap();
        cli.put(item(7), Cond::Always, 0).await.unwrap();
        let refused = server
            .put(item(8), Cond::eq("n", Value::N(2)), 0)
            .await
            .unwrap_err();
        assert!(refused.is_condition_failed(), "the row is 7 now, not 2");
        server
            .put(item(8), Cond::eq("n", Value::N(7)), 0)
            .await
            .unwrap();
        assert_eq!(cache.hits(), 1);
        let seen = cli.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(8)));
    }

    /// A write that changes no row commits without writing to the WAL, and SQLite's counter of
    /// commits does not move: such a write must hand the cache nothing to carry, or another
    /// process's commit just after it would pass for its own (and a row that process changed,
    /// a revoked session, would be served as it was).
    #[test]
    fn a_write_that_changes_nothing_hands_over_no_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("latchkey.db")).unwrap();
        let conn = store.conn.lock().unwrap();
        let changes = |f: &dyn Fn(&mut ConnRows<'_>) -> Result<(), StoreError>| {
            let tx = Immediate::begin(&conn).unwrap();
            let mut rows = ConnRows::writing(tx.conn, None);
            f(&mut rows).unwrap();
            let changes = rows.changes();
            tx.commit().unwrap();
            changes
        };
        let absent = Key::new("USER#9", "PROFILE");

        let written = changes(&|rows| engine::put(rows, &item(1), &Cond::Always, 0));
        assert_eq!(written, Some(vec![(item(1).key, Some(item(1)))]));
        assert_eq!(
            changes(&|rows| engine::put(rows, &item(1), &Cond::Always, 0)),
            None,
            "the row as it stands"
        );
        assert_eq!(
            changes(&|rows| engine::delete(rows, &absent, &Cond::Always, 0).map(drop)),
            None,
            "no row to delete"
        );
        let check = TxOp::Check {
            key: item(1).key,
            cond: Cond::Exists,
        };
        assert_eq!(
            changes(&|rows| engine::transact(rows, std::slice::from_ref(&check), 0)),
            None,
            "a check alone"
        );
        assert_eq!(
            changes(&|rows| engine::put(rows, &item(2), &Cond::Always, 0)),
            Some(vec![(item(2).key, Some(item(2)))])
        );
        assert_eq!(
            changes(&|rows| engine::delete(rows, &item(2).key, &Cond::Always, 0).map(drop)),
            Some(vec![(item(2).key, None)])
        );
    }

    /// Opened through a symbolic link, the store watches the `-shm` SQLite uses (beside the
    /// file the link resolves to), not one beside the link.
    #[tokio::test]
    async fn a_store_opened_through_a_link_sees_commits_made_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        let link = dir.path().join("link.db");
        drop(SqliteStore::open(&real).unwrap());
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // A leftover index beside the link, whose header never changes: watching it would
        // serve kept rows for ever.
        let mut header = [0u8; 96];
        header[12] = 1;
        header[60] = 1;
        std::fs::write(dir.path().join("link.db-shm"), header).unwrap();
        let server = SqliteStore::open(&link).unwrap();
        let key = item(1).key;
        server.put(item(1), Cond::Always, 0).await.unwrap();
        for _ in 0..2 {
            server.get(&key, 0).await.unwrap();
        }
        let cli = SqliteStore::open(&real).unwrap();
        cli.put(item(2), Cond::Always, 0).await.unwrap();
        let seen = server.get(&key, 0).await.unwrap().unwrap();
        assert_eq!(seen.attrs.get("n"), Some(&Value::N(2)));
    }

    /// A write is seen by the very next read, whichever connection serves it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_reader_sees_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("latchkey.db")).unwrap();
        let key = Key::new("USER#1", "PROFILE");
        for n in 0..200 {
            store.put(item(n), Cond::Always, 0).await.unwrap();
            let reads = (0..4).map(|_| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move { store.get(&key, 0).await })
            });
            for read in reads {
                let seen = read.await.unwrap().unwrap().unwrap();
                assert_eq!(seen.attrs.get("n"), Some(&Value::N(n)));
            }
        }
    }
}
