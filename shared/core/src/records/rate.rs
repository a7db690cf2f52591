//! Counters of subjects that are not users: how often a client address (or a destination, or
//! the whole deployment) did something.
//!
//! - `RATE#<scope>#<subject>` / `W#<window start>`: a fixed-window counter, expiring with its
//!   window; one conditional `ADD` counts a hit only while the window is under its limit.
//! - `RATE#<scope>#<subject>` / `BUDGET`: a failure budget (see [`super::budget`]) of such a
//!   subject, e.g. the sign-in failures of one client address, or of a login no user has.
//!
//! IPv6 clients are counted per /64, the block one subscriber gets: one address each would
//! hand an attacker 2^64 fresh budgets.

use std::net::IpAddr;

use super::budget::{self, Names};
use crate::identity::users::{Budget, Failures, normalize_login};
use crate::store::{CmpOp, Cond, Item, Key, Update, Write};

const N: &str = "n";
const BUDGET_SK: &str = "BUDGET";
const BUDGET_NAMES: Names = Names {
    count: "n",
    first: "first",
    last: "last",
    streak: None,
};

/// How a client address is counted: IPv4 as is (and IPv4-mapped IPv6 as IPv4), IPv6 by /64.
pub fn ip_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A subject given by a client (an email address, a phone number, a login), as a fixed-length
/// key part, keyed with the deployment's pepper: the table — its backups and its stream —
/// holds no hash of what clients typed that a dictionary could reverse (a password typed into
/// a username field included).
pub fn hashed_subject(pepper: &[u8], subject: &str) -> String {
    crate::crypto::codes::keyed_hash(pepper, "latchkey:subject:v1", subject)
}

fn pk(scope: &str, subject: &str) -> String {
    format!("RATE#{scope}#{subject}")
}

/// Counts one hit of `subject` in the current `secs`-long window if fewer than `limit` were
/// counted in it.
pub fn hit(scope: &str, subject: &str, limit: u32, secs: i64, now: i64) -> Write {
    let secs = secs.max(1);
    let start = now - now.rem_euclid(secs);
    Write::new(
        Key::new(pk(scope, subject), format!("W#{start}")),
        Update::new().add(N, 1).expire_at(start + secs),
        Cond::missing_or(N, CmpOp::Lt, i64::from(limit)),
    )
}

/// Gives back a [`hit`] made at `now` (whose action did not happen after all).
pub fn refund(scope: &str, subject: &str, secs: i64, now: i64) -> Write {
    let secs = secs.max(1);
    let start = now - now.rem_euclid(secs);
    Write::new(
        Key::new(pk(scope, subject), format!("W#{start}")),
        Update::new().add(N, -1),
        Cond::cmp(N, CmpOp::Gt, 0),
    )
}

/// When the window a refused [`hit`] fell in ends.
pub fn window_end(secs: i64, now: i64) -> i64 {
    let secs = secs.max(1);
    now - now.rem_euclid(secs) + secs
}

pub fn budget_key(scope: &str, subject: &str) -> Key {
    Key::new(pk(scope, subject), BUDGET_SK)
}

/// The failure budget of a login that names no user: sign-in counts an unknown login's
/// attempts there as a known login's on its profile (one write the store makes, a lockout
/// after as many failures), and the item expires once idle. One key per login (hashed, so of
/// fixed length however long the login), so a run of unknown logins is no hot key.
pub fn unknown_login_key(pepper: &[u8], login: &str) -> Key {
    budget_key(
        "unknown-login",
        &hashed_subject(pepper, &normalize_login(login)),
    )
}

/// Reserves an attempt against a subject's failure budget. The item expires once a block
/// after it would have run out, so idle budgets leave the table.
pub fn reserve(key: Key, budget: &Budget, now: i64) -> Write {
    let mut w = budget::reserve(key, BUDGET_NAMES, budget, now, Cond::Always);
    w.update = w.update.expire_at(expiry(budget, now));
    w
}

pub fn restart(key: Key, seen: &Failures, budget: &Budget, now: i64) -> Write {
    let mut w = budget::restart(key, BUDGET_NAMES, seen, now, Cond::Always);
    w.update = w.update.expire_at(expiry(budget, now));
    w
}

/// Gives back a reservation whose attempt succeeded (a subject's budget counts failures only;
/// a success must not clear the failures others made from the same address).
pub fn release(key: Key) -> Write {
    Write::new(key, Update::new().add(N, -1), Cond::cmp(N, CmpOp::Gt, 0))
}

pub fn failures(item: &Item) -> Failures {
    BUDGET_NAMES.read(item)
}

fn expiry(budget: &Budget, now: i64) -> i64 {
    now.saturating_add(budget.window_secs.unwrap_or(0).max(budget.block_secs))
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_subject(a), ip_subject(b));
        assert_ne!(ip_subject(a), ip_subject(c));
        assert_eq!(ip_subject(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(ip_subject(mapped), "203.0.113.7");
    }

    #[test]
    fn windows_are_aligned_and_expire_with_themselves() {
        let w = hit("ip", "1.2.3.4", 3, 300, 1000);
        assert_eq!(w.key.sk, "W#900");
        assert_eq!(window_end(300, 1000), 1200);
        let after = w.update.apply(&w.key, None);
        assert_eq!(after.expires_at, Some(1200));
    }
}
