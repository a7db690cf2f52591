//! Storage records: one module per item type, each owning its keys, its attribute names, its
//! codec to and from the domain types, and the conditional writes made on it. Flows build
//! writes here and apply them through the store port; they never name an attribute, so an item
//! layout can change in one place (`infra/TABLE.md` lists every item type).

pub mod budget;
pub mod code;
pub mod counter;
pub mod decoy;
pub mod family;
pub mod flow;
pub mod integration;
pub mod login;
pub mod login_link;
pub mod profile;
pub mod rate;

use crate::store::{Item, Key, StoreError};

/// A stored item that does not have the shape its record module writes.
pub(crate) fn corrupt(key: &Key, what: &str) -> StoreError {
    StoreError::Failure(format!("item {key}: {what}"))
}

/// A non-negative number attribute as `u64` (0 when negative: never written so).
pub(crate) fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `u64` as a stored number (saturating: ids and generations never get near `i64::MAX`).
pub(crate) fn number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A required id-like attribute.
pub(crate) fn id_attr(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.num(name)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| corrupt(&item.key, name))
}
