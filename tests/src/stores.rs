//! Store factories for the contract suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use latchkey_core::store::{MemoryStore, Store};
use latchkey_embedded::store::SqliteStore;

/// A namespace no other test in this run uses (process id + counter).
pub fn namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn memory_store() -> (Arc<dyn Store>, String, ()) {
    (Arc::new(MemoryStore::new()), namespace(), ())
}

pub async fn sqlite_store() -> (Arc<dyn Store>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("latchkey.db")).expect("open sqlite store");
    (Arc::new(store), namespace(), dir)
}
