//! Rows read outside a write, kept until the database changes.
//!
//! Why: `GET customers/me` under load spent a quarter of the server's CPU in its one store
//! read (`perf record --call-graph dwarf`, infra/BENCH.md): SQLite's read transaction (its WAL
//! read-mark locks are `fcntl` calls), the statement, and the row's JSON. Most reads find the
//! row as the last read left it.
//!
//! When a kept row may be used: SQLite's WAL index (the `-shm` file beside the database) starts
//! with its header, two copies of 48 bytes that every commit rewrites, from any connection of
//! any process (the header's change counter and last frame move on every commit; see
//! <https://www.sqlite.org/walformat.html>, "The WAL-Index Header"). A row is kept under the
//! header as it was just *before* the read that found it, and is used only while the header is
//! still byte for byte the same. A commit after that moment, here or in `latchkey user …` in
//! another process, changes the header before its commit returns, so a revocation is seen by
//! the next request exactly as without the cache. A header read while a commit rewrites it
//! (its two copies differ) uses and keeps nothing. No crate exposes this check, and SQLite's
//! own (`PRAGMA data_version`) needs the read transaction it would save.
//!
//! The header is read with one `pread` of the `-shm` file, which SQLite maps and writes in
//! place. The file outlives the server's connections only: SQLite removes it when the last
//! connection to the database closes, and the store holds its connections open for its
//! lifetime (in WAL mode each keeps a shared lock on the database file, so no other process's
//! close is the last).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use latchkey_core::store::{Item, Key};

/// The WAL-index header: its two copies (SQLite writes the second, then the first).
const HEADER: usize = 96;
/// The offset of `isInit` in a copy (after `iVersion`, an unused word and `iChange`).
const IS_INIT: usize = 12;
/// Rows kept at most; when full, the cache starts again empty (a sign-in storm writes anyway).
const CAPACITY: usize = 4096;

/// The state of the database as of a header read; equal versions mean no commit in between.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version([u8; HEADER]);

pub(crate) struct ReadCache {
    shm: File,
    kept: Mutex<Kept>,
    #[cfg(test)]
    hits: std::sync::atomic::AtomicUsize,
}

struct Kept {
    version: Version,
    rows: HashMap<Key, Option<Item>>,
}

impl ReadCache {
    /// The cache of the database at `db`, whose connections are open in WAL mode; `None`
    /// where there is no WAL index to watch (then every read goes to SQLite).
    pub(crate) fn open(db: &Path) -> Option<Self> {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let shm = File::open(shm).ok()?;
        let cache = Self {
            shm,
            kept: Mutex::new(Kept {
                version: Version([0; HEADER]),
                rows: HashMap::new(),
            }),
            #[cfg(test)]
            hits: std::sync::atomic::AtomicUsize::new(0),
        };
        cache.version().map(|_| cache)
    }

    /// The database's version now; `None` while a commit rewrites the header (or it cannot
    /// be read), when nothing may be used or kept.
    pub(crate) fn version(&self) -> Option<Version> {
        let mut header = [0; HEADER];
        self.shm.read_exact_at(&mut header, 0).ok()?;
        let (first, second) = header.split_at(HEADER / 2);
        // The copies agree, and the header is initialised (its `isInit` byte).
        let initialised = first.get(IS_INIT).is_some_and(|&b| b != 0);
        (first == second && initialised).then_some(Version(header))
    }

    /// The rows at `keys` as kept at `version`, if every one of them is.
    pub(crate) fn rows(&self, version: Version, keys: &[Key]) -> Option<Vec<Option<Item>>> {
        let kept = self.kept.lock().ok()?;
        if kept.version != version {
            return None;
        }
        let rows = keys
            .iter()
            .map(|key| kept.rows.get(key).cloned())
            .collect::<Option<Vec<_>>>()?;
        #[cfg(test)]
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(rows)
    }

    /// Keeps rows read after the header was at `version`. Rows of an older version are
    /// dropped; rows read before a version already kept are not kept.
    pub(crate) fn keep(
        &self,
        version: Version,
        rows: impl IntoIterator<Item = (Key, Option<Item>)>,
    ) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if kept.version != version {
            // Only a version read no earlier than the kept one replaces it: a reader that
            // read the header before the last commit finds it changed here and keeps nothing.
            if self.version() != Some(version) {
                return;
            }
            kept.version = version;
            kept.rows.clear();
        }
        if kept.rows.len() >= CAPACITY {
            kept.rows.clear();
        }
        kept.rows.extend(rows);
    }

    #[cfg(test)]
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}
