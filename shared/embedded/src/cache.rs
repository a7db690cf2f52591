//! Rows read, and rows this process wrote, kept until the database changes otherwise.
//!
//! Why: `GET customers/me` under load spent 26% of the server's CPU in its one store read
//! (`perf record --call-graph dwarf`, 2026-11-28, infra/BENCH.md): SQLite's read transaction
//! (its WAL read-mark locks are `fcntl` calls), the statement, and decoding the row's JSON.
//! Most reads find the row as the last read left it.
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
//! A write of this process carries the kept rows over its own commit ([`ReadCache::carry`]).
//! Say one step of a flow writes the flow's row and the next step reads it: without the carry,
//! that read finds the header changed and goes to SQLite, and so did most reads of the walk of
//! every route. SQLite adds one to the header's commit counter (`iChange`) at each commit that
//! writes to the WAL, and at nothing else (`walFrames` in `wal.c`); a transaction that changed
//! no page commits without writing, and without counting. So the store carries only over a
//! write that changed rows, and only when the header read under the write lock, before the
//! commit, and the header read after it differ by exactly one in that counter: then no other
//! connection committed in between, every kept row is as it was, and the rows the write changed
//! are as it hands them over (infra/BENCH.md, "Runs of 2026-11-28, late morning").
//!
//! What it assumes, and the store checks before making one: the database is in WAL mode, and
//! the file watched is the `-shm` of SQLite's own name for the database (symbolic links
//! resolved). The header is read with one `pread`; SQLite maps the file and writes it in place.
//! The file exists while any connection to the database is open (SQLite removes it when the
//! last one closes). The store holds its connections for its lifetime, and in WAL mode a
//! connection that has read once (the store's writer reads the schema version when it opens)
//! keeps a shared lock on the database file, so no other process's close is the last.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use latchkey_core::store::{Item, Key, STORE_VERSION_LEN, StoreVersion};

// One copy of the header is what the store port hands out.
const _: () = assert!(HEADER == 2 * STORE_VERSION_LEN);

/// The WAL-index header: its two copies (SQLite writes the second, then the first).
const HEADER: usize = 96;
/// The offset of `isInit` in a copy (after `iVersion`, an unused word and `iChange`).
const IS_INIT: usize = 12;
/// The offset of `iChange` in a copy: SQLite adds one to it at every commit that writes to the
/// WAL, and at nothing else (`walFrames` in `wal.c`), in the machine's byte order.
const I_CHANGE: usize = 8;
/// Rows kept at most; when full, the cache starts again empty (a sign-in storm writes anyway).
const CAPACITY: usize = 4096;

/// The state of the database as of a header read; equal versions mean no commit in between.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version([u8; HEADER]);

impl Version {
    /// The version as the store port gives it: one copy of the header (a version is only made
    /// of two equal copies).
    pub(crate) fn store_version(&self) -> Option<StoreVersion> {
        self.0.first_chunk().copied().map(StoreVersion)
    }

    /// The commits counter (`iChange`), which wraps.
    fn commits(&self) -> Option<u32> {
        self.0
            .get(I_CHANGE..I_CHANGE + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    }
}

/// The rows one write of this process changed, in order (`None`: removed).
pub(crate) type Changes = Vec<(Key, Option<Item>)>;

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

    /// What `find` finds among the rows kept at `version`: `None` when the cache holds
    /// another version's rows, or `find` finds nothing.
    fn served<T>(
        &self,
        version: Version,
        find: impl FnOnce(&HashMap<Key, Option<Item>>) -> Option<T>,
    ) -> Option<T> {
        let kept = self.kept.lock().ok()?;
        if kept.version != version {
            return None;
        }
        let found = find(&kept.rows);
        #[cfg(test)]
        if found.is_some() {
            self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        found
    }

    /// The rows at `keys` as kept at `version`, if every one of them is.
    pub(crate) fn rows(&self, version: Version, keys: &[Key]) -> Option<Vec<Option<Item>>> {
        self.served(version, |rows| {
            keys.iter().map(|key| rows.get(key).cloned()).collect()
        })
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

    /// The row at `key` as kept at `version`, if it is: for a write's own reads, made under
    /// the write lock while `version` is the database's, of rows it has not written yet.
    pub(crate) fn row(&self, version: Version, key: &Key) -> Option<Option<Item>> {
        self.served(version, |rows| rows.get(key).cloned())
    }

    /// Carries the kept rows over a commit of this process: `before` is the version read under
    /// the write lock, `after` the version read once the commit returned, and `changes` the
    /// rows the commit changed, never none (a commit that changed nothing counts no commit).
    /// When `after` counts exactly one commit more than `before`, that commit was this one:
    /// every kept row not in `changes` is as it was, and the rows in `changes` are as written.
    /// Any other commit in between (another process's, after this one released the lock) and
    /// nothing is carried: the kept rows stay under `before`, no longer served.
    pub(crate) fn carry(&self, before: Version, after: Version, changes: Changes) {
        let one_commit = before
            .commits()
            .zip(after.commits())
            .is_some_and(|(b, a)| a == b.wrapping_add(1));
        if !one_commit {
            return;
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if kept.version != before || kept.rows.len() >= CAPACITY {
            kept.rows.clear();
        }
        kept.version = after;
        kept.rows.extend(changes);
    }

    #[cfg(test)]
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file and a `-shm` beside it holding `header` (the rest of a real WAL index
    /// does not matter here).
    fn shm_with(header: &[u8; HEADER]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("latchkey.db");
        std::fs::write(dir.path().join("latchkey.db-shm"), header).unwrap();
        (dir, db)
    }

    fn header(change: u8, init: u8) -> [u8; HEADER] {
        let mut copy = [0u8; HEADER / 2];
        copy[I_CHANGE..I_CHANGE + 4].copy_from_slice(&u32::from(change).to_ne_bytes());
        copy[IS_INIT] = init;
        let mut header = [0u8; HEADER];
        header[..HEADER / 2].copy_from_slice(&copy);
        header[HEADER / 2..].copy_from_slice(&copy);
        header
    }

    /// A cache over an index whose header counts one commit, and the `-shm` file to rewrite.
    fn cache_after_one_commit() -> (tempfile::TempDir, std::path::PathBuf, ReadCache) {
        let (dir, db) = shm_with(&header(1, 1));
        let cache = ReadCache::open(&db).unwrap();
        (dir, db.with_file_name("latchkey.db-shm"), cache)
    }

    fn row(n: i64) -> Option<Item> {
        let mut item = Item::new(Key::new("USER#1", "PROFILE"));
        item.attrs
            .insert("n".into(), latchkey_core::store::Value::N(n));
        Some(item)
    }

    #[test]
    fn a_header_being_rewritten_or_not_initialised_gives_no_version() {
        let (_dir, db) = shm_with(&header(1, 1));
        let cache = ReadCache::open(&db).expect("a whole header");
        let shm = db.with_file_name("latchkey.db-shm");

        // SQLite writes the second copy, then the first: caught in between, they differ.
        let mut torn = header(1, 1);
        torn[8] = 2;
        std::fs::write(&shm, torn).unwrap();
        assert!(cache.version().is_none());
        std::fs::write(&shm, header(1, 0)).unwrap();
        assert!(cache.version().is_none());
        std::fs::write(&shm, &header(1, 1)[..50]).unwrap();
        assert!(cache.version().is_none(), "a short file");

        assert!(ReadCache::open(Path::new("/nonexistent/latchkey.db")).is_none());
        let (_dir, db) = shm_with(&header(1, 0));
        assert!(
            ReadCache::open(&db).is_none(),
            "no cache over an uninitialised index"
        );
    }

    /// Rows are served only at the version they were kept under; rows read before a commit
    /// that the cache has not seen yet are not kept at all.
    #[test]
    fn rows_are_served_at_their_version_only() {
        let (_dir, shm, cache) = cache_after_one_commit();
        let key = Key::new("USER#1", "PROFILE");
        let keys = [key.clone()];

        let before = cache.version().unwrap();
        cache.keep(before, [(key.clone(), row(1))]);
        assert_eq!(cache.rows(before, &keys), Some(vec![row(1)]));
        assert_eq!(
            cache.rows(before, &[key.clone(), Key::new("USER#2", "PROFILE")]),
            None
        );

        // A commit: the old version's rows are no longer served.
        std::fs::write(&shm, header(2, 1)).unwrap();
        let after = cache.version().unwrap();
        assert_eq!(cache.rows(after, &keys), None);
        cache.keep(after, [(key.clone(), row(2))]);
        assert_eq!(cache.rows(after, &keys), Some(vec![row(2)]));
        // A reader that saw the header before the commit, and finishes after it, keeps
        // nothing: its rows may be either side of the commit.
        cache.keep(before, [(key.clone(), row(1))]);
        assert_eq!(cache.rows(after, &keys), Some(vec![row(2)]));
        assert_eq!(cache.rows(before, &keys), None);
    }

    /// A write of this process carries the kept rows over its commit only when the counter of
    /// commits moved by one, its own: any other commit in between and nothing is served.
    #[test]
    fn rows_are_carried_over_exactly_one_commit() {
        let (_dir, shm, cache) = cache_after_one_commit();
        let key = Key::new("USER#1", "PROFILE");
        let other = Key::new("USER#2", "PROFILE");
        let at = |change: u8| {
            std::fs::write(&shm, header(change, 1)).unwrap();
            cache.version().unwrap()
        };

        let v1 = at(1);
        cache.keep(v1, [(key.clone(), row(1)), (other.clone(), row(5))]);
        let v2 = at(2);
        cache.carry(v1, v2, vec![(key.clone(), row(2))]);
        assert_eq!(cache.row(v2, &key), Some(row(2)));
        assert_eq!(cache.row(v2, &other), Some(row(5)), "unwritten rows stay");
        assert_eq!(cache.row(v1, &key), None);

        // Another commit came between: the write's own rows are not carried either.
        let v4 = at(4);
        cache.carry(v2, v4, vec![(key.clone(), None)]);
        assert_eq!(cache.row(v4, &key), None);

        // A write that began from a version the cache does not hold keeps only its own rows.
        let v5 = at(5);
        cache.carry(v4, v5, vec![(key.clone(), None)]);
        assert_eq!(cache.row(v5, &key), Some(None));
        assert_eq!(cache.rows(v5, &[other]), None);

        // The counter wraps.
        let mut max = header(0, 1);
        for copy in [0, HEADER / 2] {
            max[copy + I_CHANGE..copy + I_CHANGE + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        }
        std::fs::write(&shm, max).unwrap();
        let vmax = cache.version().unwrap();
        let v0 = at(0);
        cache.carry(vmax, v0, vec![(key.clone(), row(9))]);
        assert_eq!(cache.rows(v0, &[key]), Some(vec![row(9)]));
    }
}
