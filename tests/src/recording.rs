//! A store wrapper that records what a request did: how many store calls and which IAM
//! actions they need on DynamoDB. Tests derive each function's least-privilege policy and
//! its call budget from it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use latchkey_aws::dynamodb::iam;
use latchkey_core::store::{Cond, Item, Key, Store, StoreError, TxOp, Update};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Store operations (a transaction counts once).
    pub calls: usize,
    pub actions: BTreeSet<&'static str>,
    /// The keys read or written, in call order (a query or scan names none).
    pub keys: Vec<Key>,
    /// The keys written (updated, put, deleted, or in a transaction), in call order.
    pub written: Vec<Key>,
    /// Writes their condition refused (a store answers those sooner than a write it makes:
    /// a path of refused writes is a faster path).
    pub refused: usize,
}

pub struct RecordingStore {
    inner: Arc<dyn Store>,
    log: Mutex<Recorded>,
}

impl RecordingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            log: Mutex::new(Recorded::default()),
        }
    }

    /// What was recorded since the last call, and a fresh start.
    pub fn take(&self) -> Recorded {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn note(&self, actions: &[&'static str]) {
        let mut log = self.log.lock().unwrap();
        log.calls += 1;
        log.actions.extend(actions.iter().copied());
    }

    /// Counts `result` when its condition refused it.
    fn outcome<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(
            result,
            Err(StoreError::ConditionFailed { .. } | StoreError::TxConditionFailed { .. })
        ) {
            self.log.lock().unwrap().refused += 1;
        }
        result
    }

    fn touch(&self, keys: &[&Key], write: bool) {
        let mut log = self.log.lock().unwrap();
        log.keys.extend(keys.iter().map(|k| (*k).clone()));
        if write {
            log.written.extend(keys.iter().map(|k| (*k).clone()));
        }
    }
}

#[async_trait]
impl Store for RecordingStore {
    // No `version` (the port's default, none): the walk counts each request's calls as
    // DynamoDB makes them (infra/TABLE.md), so the core keeps no checked token here, as on
    // DynamoDB. What keeping them gives is measured under load (`scripts/bench`, who-am-I).

    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.note(iam::GET);
        self.touch(&[key], false);
        self.inner.get(key, now).await
    }

    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        self.note(iam::GET_MANY);
        self.touch(&keys.iter().collect::<Vec<_>>(), false);
        self.inner.get_many(keys, now).await
    }

    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        self.note(iam::PUT);
        self.touch(&[&item.key], true);
        self.outcome(self.inner.put(item, cond, now).await)
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        self.note(iam::UPDATE);
        self.touch(&[key], true);
        self.outcome(self.inner.update(key, update, cond, now).await)
    }

    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        self.note(iam::DELETE);
        self.touch(&[key], true);
        self.outcome(self.inner.delete(key, cond, now).await)
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.note(iam::QUERY);
        self.inner.query(pk, sk_prefix, limit, now).await
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        self.note(iam::SCAN);
        self.inner.scan_sk(sk, limit, now).await
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        let mut actions: Vec<&'static str> = Vec::new();
        for op in &ops {
            actions.extend(match op {
                TxOp::Put { .. } => iam::TX_PUT,
                TxOp::Update { .. } => iam::TX_UPDATE,
                TxOp::Delete { .. } => iam::TX_DELETE,
                TxOp::Check { .. } => iam::TX_CHECK,
            });
        }
        self.note(&actions);
        self.touch(&ops.iter().map(TxOp::key).collect::<Vec<_>>(), true);
        self.outcome(self.inner.transact(ops, now).await)
    }
}
