//! The embedded store: one SQLite file (bundled SQLite via rusqlite, WAL mode) with the same
//! semantics as the DynamoDB table.
//!
//! Every conditional operation is one `BEGIN IMMEDIATE` transaction that reads the row,
//! evaluates the condition against the live item (expired = absent) and writes. SQLite's file
//! locks make that atomic across threads and across processes, so `latchkey user add` can
//! write while `latchkey serve` runs on the same data dir; a writer that finds the database
//! busy waits up to five seconds, then reports [`StoreError::Busy`].
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
use latchkey_core::store::{Attrs, Cond, Item, Key, Store, StoreError, TxOp, Update, Value};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value as Json, json};

const SCHEMA_VERSION: i64 = 1;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in one SQLite file. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
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
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy("the embedded store is locked by another writer".into())
        }
        _ => StoreError::Failure(format!("sqlite: {e}")),
    }
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
        conn.pragma_update(None, "journal_mode", "WAL")
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
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Failure("store connection poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|_| StoreError::Failure("store task failed".into()))?
    }

    /// Runs `f` on the rows inside one `BEGIN IMMEDIATE` transaction, committing if it
    /// returns Ok: the write lock is taken before the read, so the read and the write are one
    /// atomic step, across threads and processes.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut TxRows<'_, '_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let out = f(&mut TxRows(&tx))?;
            tx.commit().map_err(sql_error)?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on the rows inside one read transaction (a consistent snapshot).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut TxRows<'_, '_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            f(&mut TxRows(&tx))
        })
        .await
    }

    /// Deletes expired rows. Reads already ignore them; this keeps the file small.
    pub async fn sweep_expired(&self, now: i64) -> Result<usize, StoreError> {
        self.write(move |rows| {
            rows.0
                .execute(
                    "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    params![now],
                )
                .map_err(sql_error)
        })
        .await
    }
}

fn encode_value(v: &Value) -> Json {
    match v {
        Value::S(s) => json!({ "S": s }),
        Value::N(n) => json!({ "N": n.to_string() }),
        Value::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b) }),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::L(l) => json!({ "L": l.iter().map(encode_value).collect::<Vec<_>>() }),
    }
}

fn decode_value(j: &Json) -> Option<Value> {
    let (tag, v) = j.as_object()?.iter().next()?;
    Some(match tag.as_str() {
        "S" => Value::S(v.as_str()?.to_owned()),
        "N" => Value::N(v.as_str()?.parse().ok()?),
        "B" => Value::B(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?,
        ),
        "BOOL" => Value::Bool(v.as_bool()?),
        "L" => Value::L(
            v.as_array()?
                .iter()
                .map(decode_value)
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

fn encode_attrs(attrs: &Attrs) -> Result<String, StoreError> {
    let map: Map<String, Json> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), encode_value(v)))
        .collect();
    serde_json::to_string(&map).map_err(|e| StoreError::Failure(format!("encoding item: {e}")))
}

fn decode_row(key: Key, attrs: &str, expires_at: Option<i64>) -> Result<Item, StoreError> {
    let corrupt = || StoreError::Failure(format!("item {key}: stored attributes are corrupt"));
    let map: Map<String, Json> = serde_json::from_str(attrs).map_err(|_| corrupt())?;
    let attrs = map
        .iter()
        .map(|(k, v)| decode_value(v).map(|v| (k.clone(), v)))
        .collect::<Option<Attrs>>()
        .ok_or_else(corrupt)?;
    Ok(Item {
        key,
        attrs,
        expires_at,
    })
}

/// The rows of one SQLite transaction, for the shared [`engine`].
struct TxRows<'a, 'c>(&'a rusqlite::Transaction<'c>);

impl Rows for TxRows<'_, '_> {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        let row: Option<(String, Option<i64>)> = self
            .0
            .query_row(
                "SELECT attrs, expires_at FROM items WHERE pk = ?1 AND sk = ?2",
                params![key.pk, key.sk],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql_error)?;
        row.map(|(attrs, expires_at)| decode_row(key.clone(), &attrs, expires_at))
            .transpose()
    }

    fn write(&mut self, item: &Item) -> Result<(), StoreError> {
        let attrs = encode_attrs(&item.attrs)?;
        self.0
            .execute(
                "INSERT INTO items (pk, sk, attrs, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pk, sk) DO UPDATE SET attrs = excluded.attrs, expires_at = excluded.expires_at",
                params![item.key.pk, item.key.sk, attrs, item.expires_at],
            )
            .map_err(sql_error)?;
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Result<(), StoreError> {
        self.0
            .execute(
                "DELETE FROM items WHERE pk = ?1 AND sk = ?2",
                params![key.pk, key.sk],
            )
            .map_err(sql_error)?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.read(move |rows| engine::get(rows, &key, now)).await
    }

    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        let keys = keys.to_vec();
        self.read(move |rows| engine::get_many(rows, &keys, now))
            .await
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
        let (pk, prefix) = (pk.to_owned(), sk_prefix.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            // substr() compares exactly (LIKE would fold ASCII case and treat % and _ as wildcards).
            let mut stmt = conn
                .prepare_cached(
                    "SELECT sk, attrs, expires_at FROM items
                     WHERE pk = ?1 AND substr(sk, 1, length(?2)) = ?2 AND (expires_at IS NULL OR expires_at > ?3)
                     ORDER BY sk LIMIT ?4",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![pk, prefix, now, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
                })
                .map_err(sql_error)?;
            rows.map(|row| {
                let (sk, attrs, expires_at) = row.map_err(sql_error)?;
                decode_row(Key::new(pk.clone(), sk), &attrs, expires_at)
            })
            .collect()
        })
        .await
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        let sk = sk.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
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
                decode_row(Key::new(pk, sk.clone()), &attrs, expires_at)
            })
            .collect()
        })
        .await
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        self.write(move |rows| engine::transact(rows, &ops, now))
            .await
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(decode_value(&encode_value(&v)), Some(v));
        assert_eq!(encode_value(&Value::N(12)), json!({"N": "12"}));
        assert_eq!(decode_value(&json!({"X": 1})), None);
    }
}
