//! The in-memory fake of the store port: a map under a mutex, with the semantics of
//! [`super::engine`]. Used by unit tests of the core and by tests that need an injected fault;
//! the contract suite runs against it as well.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::engine::{self, Rows};
use super::{Cond, Item, Key, Store, StoreError, TxOp, Update};

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Item>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MapRows<'_>, StoreError> {
        self.items
            .lock()
            .map(MapRows)
            .map_err(|_| StoreError::Failure("memory store poisoned".into()))
    }
}

struct MapRows<'a>(MutexGuard<'a, BTreeMap<Key, Item>>);

impl Rows for MapRows<'_> {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError> {
        Ok(self.0.get(key).cloned())
    }
    fn write(&mut self, item: &Item) -> Result<(), StoreError> {
        self.0.insert(item.key.clone(), item.clone());
        Ok(())
    }
    fn remove(&mut self, key: &Key) -> Result<(), StoreError> {
        self.0.remove(key);
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
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
