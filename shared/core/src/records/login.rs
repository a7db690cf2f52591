//! `LOGIN#<normalised login>` / `LOGIN`: a unique pointer from a username or an email to its
//! user, claimed in the same transaction that creates the profile.

use super::{corrupt, number};
use crate::identity::users::{User, UserId, normalize_login};
use crate::store::{Cond, Item, Key, StoreError, TxOp, Write};

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

/// The transaction that changes a user's username and email (`profile` is the profile's write,
/// conditional on its logins being unchanged): pointers of logins the user gives up are deleted
/// (only if still the user's), new ones claimed (only if free). Fails at the index of the
/// first pointer already taken.
pub fn change_ops(user: &User, username: &str, email: &str, profile: Write) -> Vec<TxOp> {
    let old: Vec<String> = logins(user).into_iter().map(normalize_login).collect();
    let (username, email) = (normalize_login(username), normalize_login(email));
    let mut new = vec![email.clone()];
    if username != email {
        new.insert(0, username);
    }
    let mut ops: Vec<TxOp> = new
        .iter()
        .filter(|l| !old.contains(l))
        .map(|login| TxOp::Put {
            item: Item::new(key(login)).with(UID, number(user.id)),
            cond: Cond::NotExists,
        })
        .collect();
    ops.extend(
        old.iter()
            .filter(|l| !new.contains(l))
            .map(|login| TxOp::Delete {
                key: key(login),
                cond: Cond::eq(UID, number(user.id)),
            }),
    );
    ops.push(profile.into_op());
    ops
}

/// The transaction that deletes a user: its login pointers (only if still its own) and its
/// profile.
pub fn delete_ops(user: &User) -> Vec<TxOp> {
    let mut ops: Vec<TxOp> = logins(user)
        .into_iter()
        .map(|login| TxOp::Delete {
            key: key(login),
            cond: Cond::eq(UID, number(user.id)),
        })
        .collect();
    ops.push(TxOp::Delete {
        key: super::profile::key(user.id),
        cond: Cond::Exists,
    });
    ops
}
