//! The store's semantics evaluated in process, once, for the adapters that hold the items
//! themselves (the in-memory fake and the embedded SQLite store). DynamoDB evaluates the same
//! rules itself, from the expressions its adapter translates them into.
//!
//! An adapter gives the engine raw access to its rows inside whatever makes the call atomic
//! (a mutex guard, an SQLite `BEGIN IMMEDIATE` transaction); the engine decides what is live,
//! checks conditions, applies updates and reports failures the way the port promises.

use super::{
    Cond, Item, Key, StoreError, TxOp, Update, validate_item, validate_key, validate_keys,
    validate_tx, validate_update,
};

/// Raw rows of an adapter, read and written inside one atomic section. Rows may hold expired
/// items; the engine treats them as absent.
pub trait Rows {
    fn read(&mut self, key: &Key) -> Result<Option<Item>, StoreError>;
    fn write(&mut self, item: &Item) -> Result<(), StoreError>;
    fn remove(&mut self, key: &Key) -> Result<(), StoreError>;
}

/// The live item at `key`.
pub fn live(rows: &mut impl Rows, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
    Ok(rows.read(key)?.filter(|item| item.is_live(now)))
}

/// The live item, if `cond` holds for it; the failure carries it otherwise.
fn checked(
    rows: &mut impl Rows,
    key: &Key,
    cond: &Cond,
    now: i64,
) -> Result<Option<Item>, StoreError> {
    let current = live(rows, key, now)?;
    if cond.holds(current.as_ref()) {
        Ok(current)
    } else {
        Err(StoreError::condition_failed(current))
    }
}

pub fn get(rows: &mut impl Rows, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
    validate_key(key)?;
    live(rows, key, now)
}

pub fn get_many(
    rows: &mut impl Rows,
    keys: &[Key],
    now: i64,
) -> Result<Vec<Option<Item>>, StoreError> {
    validate_keys(keys)?;
    keys.iter().map(|key| live(rows, key, now)).collect()
}

pub fn put(rows: &mut impl Rows, item: &Item, cond: &Cond, now: i64) -> Result<(), StoreError> {
    validate_item(item)?;
    checked(rows, &item.key, cond, now)?;
    rows.write(item)
}

pub fn update(
    rows: &mut impl Rows,
    key: &Key,
    update: &Update,
    cond: &Cond,
    now: i64,
) -> Result<Item, StoreError> {
    validate_key(key)?;
    validate_update(update)?;
    let current = checked(rows, key, cond, now)?;
    let written = update.apply(key, current.as_ref());
    rows.write(&written)?;
    Ok(written)
}

pub fn delete(
    rows: &mut impl Rows,
    key: &Key,
    cond: &Cond,
    now: i64,
) -> Result<Option<Item>, StoreError> {
    validate_key(key)?;
    let current = checked(rows, key, cond, now)?;
    rows.remove(key)?;
    Ok(current)
}

/// Every condition first, then every write: all or nothing.
pub fn transact(rows: &mut impl Rows, ops: &[TxOp], now: i64) -> Result<(), StoreError> {
    validate_tx(ops)?;
    let mut current = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let live = live(rows, op.key(), now)?;
        if !op.cond().holds(live.as_ref()) {
            return Err(StoreError::TxConditionFailed { index });
        }
        current.push(live);
    }
    for (op, live) in ops.iter().zip(current) {
        match op {
            TxOp::Put { item, .. } => rows.write(item)?,
            TxOp::Update { key, update, .. } => rows.write(&update.apply(key, live.as_ref()))?,
            TxOp::Delete { key, .. } => rows.remove(key)?,
            TxOp::Check { .. } => {}
        }
    }
    Ok(())
}
