//! `COUNTER` / `<name>`: allocates ids with one atomic `ADD`.

use super::corrupt;
use crate::store::{Cond, Item, Key, StoreError, Update, Write};

const N: &str = "n";

/// Ids of users.
pub const USER_ID: &str = "USER_ID";
/// Ids of integrations.
pub const INTEGRATION_ID: &str = "INTEGRATION_ID";

pub fn next(name: &str) -> Write {
    Write::new(
        Key::new("COUNTER", name),
        Update::new().add(N, 1),
        Cond::Always,
    )
}

/// The value a [`next`] write allocated.
pub fn allocated(item: &Item) -> Result<u64, StoreError> {
    item.num(N)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| corrupt(&item.key, "counter without a value"))
}
