//! The in-memory fake of the store port: the reference semantics, in a few lines.
//! Used by unit tests of the core; the contract suite runs against it as well.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Cond, Item, Key, Store, StoreError, TxOp, Update, validate_item, validate_tx, validate_update,
};

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Item>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Key, Item>>, StoreError> {
        self.items
            .lock()
            .map_err(|_| StoreError::Failure("memory store poisoned".into()))
    }
}

fn live(items: &BTreeMap<Key, Item>, key: &Key, now: i64) -> Option<Item> {
    items.get(key).filter(|i| i.is_live(now)).cloned()
}

fn check(cond: &Cond, current: Option<Item>) -> Result<Option<Item>, StoreError> {
    if cond.holds(current.as_ref()) {
        Ok(current)
    } else {
        Err(StoreError::condition_failed(current))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        Ok(live(&*self.lock()?, key, now))
    }

    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        validate_item(&item)?;
        let mut items = self.lock()?;
        check(&cond, live(&items, &item.key, now))?;
        items.insert(item.key.clone(), item);
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        validate_update(&update)?;
        let mut items = self.lock()?;
        let current = check(&cond, live(&items, key, now))?;
        let written = update.apply(key, current.as_ref());
        items.insert(key.clone(), written.clone());
        Ok(written)
    }

    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        let mut items = self.lock()?;
        let current = check(&cond, live(&items, key, now))?;
        items.remove(key);
        Ok(current)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let items = self.lock()?;
        Ok(items
            .values()
            .filter(|i| i.key.pk == pk && i.key.sk.starts_with(sk_prefix) && i.is_live(now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        let items = self.lock()?;
        Ok(items
            .values()
            .filter(|i| i.key.sk == sk && i.is_live(now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        validate_tx(&ops)?;
        let mut items = self.lock()?;
        for (index, op) in ops.iter().enumerate() {
            let cond = match op {
                TxOp::Put { cond, .. } | TxOp::Delete { cond, .. } | TxOp::Check { cond, .. } => {
                    cond
                }
            };
            if !cond.holds(live(&items, op.key(), now).as_ref()) {
                return Err(StoreError::TxConditionFailed { index });
            }
        }
        for op in ops {
            match op {
                TxOp::Put { item, .. } => {
                    items.insert(item.key.clone(), item);
                }
                TxOp::Delete { key, .. } => {
                    items.remove(&key);
                }
                TxOp::Check { .. } => {}
            }
        }
        Ok(())
    }
}
