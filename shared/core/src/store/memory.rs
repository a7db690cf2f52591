//! The in-memory fake of the store port: a map under a mutex, with the semantics of
//! [`super::engine`]. Used by unit tests of the core and by tests that need an injected fault;
//! the contract suite runs against it as well.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::engine::{self, Rows};
use super::{Cond, Item, Key, STORE_VERSION_LEN, Store, StoreError, StoreVersion, TxOp, Update};

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Item>>,
    /// Writes so far: moved on by every write, under the lock, after the change (so a version
    /// read before a read is never newer than the rows that read finds).
    writes: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MapRows<'_>, StoreError> {
        self.items
            .lock()
            .map(|items| MapRows(items, &self.writes))
            .map_err(|_| StoreError::Failure("memory store poisoned".into()))
    }
}

struct MapRows<'a>(MutexGuard<'a, BTreeMap<Key, Item>>, &'a AtomicU64);

impl Rows for MapRows<'_> {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, item: &Item) -> Result<(), StoreError> {
        self.0.insert(item.key.clone(), item.clone());
        self.1.fetch_add(1, Ordering::Release);
        Ok(())
    }
    fn remove(&mut self, key: &Key) -> Result<(), StoreError> {
        self.0.remove(key);
        self.1.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn version(&self) -> Option<StoreVersion> {
        let mut version = [0; STORE_VERSION_LEN];
        let writes = self.writes.load(Ordering::Acquire).to_le_bytes();
        version.get_mut(..writes.len())?.copy_from_slice(&writes);
        Some(StoreVersion(version))
    }

    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        engine::get(&mut self.lock()?, key, now)
    }

    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        engine::get_many(&mut self.lock()?, keys, now)
    }

    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        engine::put(&mut self.lock()?, &item, &cond, now)
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        engine::update(&mut self.lock()?, key, &update, &cond, now)
    }

    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        engine::delete(&mut self.lock()?, key, &cond, now)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let rows = self.lock()?;
        Ok(rows
            .0
            .values()
            .filter(|i| i.key.pk == pk && i.key.sk.starts_with(sk_prefix) && i.is_live(now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        let rows = self.lock()?;
        Ok(rows
            .0
            .values()
            .filter(|i| i.key.sk == sk && i.is_live(now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        engine::transact(&mut self.lock()?, &ops, now)
    }
}
