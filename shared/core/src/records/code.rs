//! `CODE#<subject>` / `<purpose>#<channel>`: the one live one-time code of a subject for one
//! purpose and channel. A new code overwrites the slot (so the old code dies) but keeps the
//! slot's count of wrong tries while the slot lives: asking for a new code never gives tries
//! back. The slot expires with its code.
//!
//! The code itself is never stored: `hash` is a keyed hash of the code under a random per-code
//! `id`, so the same digits in two codes hash differently.

use super::corrupt;
use crate::store::{CmpOp, Cond, Item, Key, Update, Write};

mod attr {
    pub const ID: &str = "code_id";
    pub const HASH: &str = "code_hash";
    pub const TRIES: &str = "tries";
    pub const MAX_TRIES: &str = "max_tries";
    pub const STATE: &str = "state";
    pub const CREATED: &str = "created_at";
}

const UNVERIFIED: &str = "unverified";
const VERIFIED: &str = "verified";

pub fn key(subject: &str, purpose: &str, channel: &str) -> Key {
    Key::new(format!("CODE#{subject}"), format!("{purpose}#{channel}"))
}

/// A code slot as read back from a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub hash: String,
    pub tries: u32,
    pub max_tries: u32,
    pub verified: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl TryFrom<&Item> for Slot {
    type Error = crate::store::StoreError;

    fn try_from(item: &Item) -> Result<Self, Self::Error> {
        let text = |name: &str| {
            item.str(name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(&item.key, name))
        };
        let count = |name: &str| {
            item.num(name)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        Ok(Slot {
            id: text(attr::ID)?,
            hash: text(attr::HASH)?,
            tries: count(attr::TRIES),
            max_tries: count(attr::MAX_TRIES),
            verified: item.str(attr::STATE) == Some(VERIFIED),
            created_at: item.num(attr::CREATED).unwrap_or(0),
            expires_at: item.expires_at,
        })
    }
}

/// Puts a new code in the slot, unless the slot's tries are used up (it then stays blocked
/// until it expires). Keeps the tries counted so far in a live slot.
pub fn issue(key: Key, id: &str, hash: &str, max_tries: u32, now: i64, expires_at: i64) -> Write {
    let update = Update::new()
        .set(attr::ID, id)
        .set(attr::HASH, hash)
        .set(attr::MAX_TRIES, i64::from(max_tries))
        .set(attr::STATE, UNVERIFIED)
        .set(attr::CREATED, now)
        .expire_at(expires_at);
    Write::new(
        key,
        update,
        Cond::missing_or(attr::TRIES, CmpOp::Lt, i64::from(max_tries)),
    )
}

/// Counts one try of the slot's code, if fewer than `max_tries` were counted: however many
/// tries arrive at once, at most `max_tries` are ever checked. The slot as written tells the
/// caller what to check the try against.
pub fn reserve_try(key: Key, max_tries: u32) -> Write {
    Write::new(
        key,
        Update::new().add(attr::TRIES, 1),
        Cond::And(vec![
            Cond::Exists,
            Cond::missing_or(attr::TRIES, CmpOp::Lt, i64::from(max_tries)),
        ]),
    )
}

/// A right code: marks it verified and gives back its try and the ones before it (a verified
/// code starts a clean slot), if it is still the code `id`.
pub fn confirm(key: Key, id: &str) -> Write {
    Write::new(
        key,
        Update::new().set(attr::STATE, VERIFIED).set(attr::TRIES, 0),
        Cond::eq(attr::ID, id),
    )
}

/// A right code presented again while verified (a grace period): gives back its try.
pub fn refund_try(key: Key, id: &str) -> Write {
    Write::new(
        key,
        Update::new().add(attr::TRIES, -1),
        Cond::And(vec![
            Cond::eq(attr::ID, id),
            Cond::cmp(attr::TRIES, CmpOp::Gt, 0),
        ]),
    )
}

/// Consumes a single-use code: only the first of any number of racers with the right code
/// succeeds.
pub fn consume(key: Key, id: &str) -> (Key, Cond) {
    (
        key,
        Cond::And(vec![
            Cond::eq(attr::ID, id),
            Cond::eq(attr::STATE, UNVERIFIED),
        ]),
    )
}

/// Removes a code that could not be delivered, if it is still that code.
pub fn withdraw(key: Key, id: &str) -> (Key, Cond) {
    (key, Cond::eq(attr::ID, id))
}

/// A slot without a code, recording only when a code of another kind (one the user's
/// authenticator app makes) was asked for; it expires like a code.
pub fn mark(key: Key, now: i64, expires_at: i64) -> Write {
    Write::new(
        key,
        Update::new().set(attr::CREATED, now).expire_at(expires_at),
        Cond::Always,
    )
}

/// When the slot's code (or mark) was issued.
pub fn issued_at(item: &Item) -> i64 {
    item.num(attr::CREATED).unwrap_or(0)
}
