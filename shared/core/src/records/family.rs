//! `FAMILY#<sid>` / `FAMILY`: a refresh-token family — one sign-in's chain of refresh tokens.
//! Only the keyed hash of the current refresh token is stored; using it rotates the family to
//! the next one in one conditional write, so of any number of racers exactly one gets the next
//! pair. The family remembers the user's token generation at sign-in, and expires (TTL) at its
//! absolute lifetime.

use super::{corrupt, non_negative, number};
use crate::identity::users::UserId;
use crate::store::{CmpOp, Cond, Item, Key, Update, Write};

mod attr {
    pub const UID: &str = "uid";
    pub const GEN: &str = "token_gen";
    pub const SEQ: &str = "seq";
    pub const CURRENT: &str = "current_hash";
    pub const CURRENT_EXPIRES: &str = "current_expires_at";
    pub const REVOKED: &str = "revoked";
    pub const AUDIENCE: &str = "audience";
    pub const CREATED: &str = "created_at";
    pub const USED: &str = "used_at";
}

const SK: &str = "FAMILY";

pub fn key(sid: &str) -> Key {
    Key::new(format!("FAMILY#{sid}"), SK)
}

/// A family as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub sid: String,
    pub uid: UserId,
    pub token_gen: u64,
    /// Sequence number of the current refresh token (0 for the first).
    pub seq: u64,
    pub current_hash: String,
    pub current_expires_at: i64,
    pub revoked: bool,
    /// Who the family's tokens are for (the dialect's audience).
    pub audience: String,
    pub created_at: i64,
    /// The absolute end of the family.
    pub expires_at: Option<i64>,
}

impl TryFrom<&Item> for Family {
    type Error = crate::store::StoreError;

    fn try_from(item: &Item) -> Result<Self, Self::Error> {
        let sid = item
            .key
            .pk
            .strip_prefix("FAMILY#")
            .ok_or_else(|| corrupt(&item.key, "not a family key"))?
            .to_owned();
        Ok(Family {
            sid,
            uid: super::id_attr(item, attr::UID)?,
            token_gen: item.num(attr::GEN).map(non_negative).unwrap_or(0),
            seq: item.num(attr::SEQ).map(non_negative).unwrap_or(0),
            current_hash: item
                .str(attr::CURRENT)
                .ok_or_else(|| corrupt(&item.key, attr::CURRENT))?
                .to_owned(),
            current_expires_at: item.num(attr::CURRENT_EXPIRES).unwrap_or(0),
            revoked: item.bool(attr::REVOKED).unwrap_or(false),
            audience: item.str(attr::AUDIENCE).unwrap_or_default().to_owned(),
            created_at: item.num(attr::CREATED).unwrap_or(0),
            expires_at: item.expires_at,
        })
    }
}

impl From<&Family> for Item {
    fn from(f: &Family) -> Item {
        let mut item = Item::new(key(&f.sid))
            .with(attr::UID, number(f.uid))
            .with(attr::GEN, number(f.token_gen))
            .with(attr::SEQ, number(f.seq))
            .with(attr::CURRENT, f.current_hash.as_str())
            .with(attr::CURRENT_EXPIRES, f.current_expires_at)
            .with(attr::REVOKED, f.revoked)
            .with(attr::AUDIENCE, f.audience.as_str())
            .with(attr::CREATED, f.created_at);
        item.expires_at = f.expires_at;
        item
    }
}

/// Moves the family from the refresh token hashed `presented` (sequence `seq`) to the next one,
/// if that is still the current one, unrevoked and unexpired.
pub fn rotate(
    sid: &str,
    presented: &str,
    seq: u64,
    next_hash: &str,
    next_expires_at: i64,
    now: i64,
) -> Write {
    Write::new(
        key(sid),
        Update::new()
            .set(attr::CURRENT, next_hash)
            .set(attr::SEQ, number(seq.saturating_add(1)))
            .set(attr::CURRENT_EXPIRES, next_expires_at)
            .set(attr::USED, now),
        Cond::And(vec![
            Cond::eq(attr::CURRENT, presented),
            Cond::eq(attr::SEQ, number(seq)),
            Cond::eq(attr::REVOKED, false),
            Cond::cmp(attr::CURRENT_EXPIRES, CmpOp::Gt, now),
        ]),
    )
}

/// Revokes the family: none of its tokens works from now on.
pub fn revoke(sid: &str) -> Write {
    Write::new(
        key(sid),
        Update::new().set(attr::REVOKED, true),
        Cond::Exists,
    )
}
