//! `LOGIN#<normalised login>` / `LOGIN`: a unique pointer from a username or an email to its
//! user, claimed in the same transaction that creates the profile.

use super::{corrupt, number};
use crate::identity::users::{User, UserId, normalize_login};
use crate::store::{Cond, Item, Key, StoreError, TxOp};

const UID: &str = "uid";

pub fn key(login: &str) -> Key {
    Key::new(format!("LOGIN#{}", normalize_login(login)), "LOGIN")
}

/// The user a pointer item names.
pub fn uid_of(item: &Item) -> Result<UserId, StoreError> {
    item.num(UID)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| corrupt(&item.key, UID))
}

/// The logins of a user: the username, and the email when it differs.
pub fn logins(user: &User) -> Vec<&str> {
    let mut logins = vec![user.username.as_str()];
    if normalize_login(&user.email) != normalize_login(&user.username) {
        logins.push(user.email.as_str());
    }
    logins
}

/// The transaction that creates a user with its login pointers, failing at the index of the
/// first login already taken (the profile comes last).
pub fn create_ops(user: &User) -> Vec<TxOp> {
    let mut ops: Vec<TxOp> = logins(user)
        .into_iter()
        .map(|login| TxOp::Put {
            item: Item::new(key(login)).with(UID, number(user.id)),
            cond: Cond::NotExists,
        })
        .collect();
    ops.push(TxOp::Put {
        item: Item::from(user),
        cond: Cond::NotExists,
    });
    ops
}
