//! Limits on guessing and on sending, each one atomic conditional write so that no number of
//! parallel requests gets past it.
//!
//! **Failure budgets per factor** ([`reserve`]). Before a password or code is checked, the
//! attempt is *reserved* against the budget of that factor on the user's profile: one
//! conditional `ADD` that fails once the budget is used up. A right answer clears the budgets
//! of what it proved (a completed sign-in clears all of them); a wrong one leaves the
//! reservation counted. So with a limit of 6, at most 6 guesses of a factor are ever checked —
//! however many arrive at once, and however a route that proves only the password is mixed in.
//! The reservation returns the profile as written, so it doubles as the read of the user.
//!
//! **Budgets of other subjects** ([`reserve_subject`]): the same, for a client address.
//!
//! **Windows** ([`hit`]): a fixed-window counter, e.g. attempts per client address or sends
//! per destination.

use crate::identity::users::{Budget, Factor, User};
use crate::records::{budget, profile, rate};
use crate::store::{Key, StoreError, TxOp};

use super::{Db, Error};

/// The outcome of reserving an attempt on a user's factor.
#[derive(Debug)]
pub enum Reservation {
    /// The attempt may proceed; `user` is the profile as written (its budget counts this one).
    Granted(Box<User>),
    /// The factor's budget is used up until `until`.
    Locked { until: i64 },
    /// The profile does not meet the guard (e.g. no pending authenticator to activate):
    /// nothing was counted; `user` is the profile as it is.
    Refused(Box<User>),
    /// No such user.
    NoUser,
}

/// How often a reservation retries when the counter changed under it.
const ATTEMPTS: usize = 3;

/// Reserves one attempt at `factor` on the profile at `key`; the same write clears the budgets
/// of `proven`, factors the request has already proven (a right password before its code).
pub async fn reserve(
    db: Db<'_>,
    key: &Key,
    factor: Factor,
    budget: &Budget,
    guard: profile::Guard,
    proven: &[Factor],
) -> Result<Reservation, StoreError> {
    for _ in 0..ATTEMPTS {
        let now = db.now();
        let refused = match db
            .apply(profile::reserve(
                key.clone(),
                factor,
                budget,
                now,
                guard,
                proven,
            ))
            .await
        {
            Ok(item) => return Ok(Reservation::Granted(Box::new(User::try_from(&item)?))),
            Err(StoreError::ConditionFailed { current: None }) => return Ok(Reservation::NoUser),
            Err(StoreError::ConditionFailed {
                current: Some(item),
            }) => User::try_from(&*item)?,
            Err(e) => return Err(e),
        };
        if !guard.holds(&refused) {
            return Ok(Reservation::Refused(Box::new(refused)));
        }
        let seen = refused.budgets.of(factor);
        if let Some(until) = seen.blocked(now, budget) {
            return Ok(Reservation::Locked { until });
        }
        if budget::may_restart(seen, budget, now) {
            match db
                .apply(profile::restart(
                    key.clone(),
                    factor,
                    seen,
                    now,
                    guard,
                    proven,
                ))
                .await
            {
                Ok(item) => return Ok(Reservation::Granted(Box::new(User::try_from(&item)?))),
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // The counter moved between our write and its refusal: look again.
    }
    Ok(Reservation::Locked {
        until: db.now().saturating_add(1),
    })
}

/// The outcome of reserving an attempt against a subject's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectReservation {
    Granted,
    Blocked { until: i64 },
}

/// Reserves one attempt against the failure budget at `key` (see [`rate::budget_key`]).
/// Give it back with [`release_subject`] when the attempt succeeds.
pub async fn reserve_subject(
    db: Db<'_>,
    key: &Key,
    budget: &Budget,
) -> Result<SubjectReservation, StoreError> {
    for _ in 0..ATTEMPTS {
        let now = db.now();
        let seen = match db.apply(rate::reserve(key.clone(), budget, now)).await {
            Ok(_) => return Ok(SubjectReservation::Granted),
            Err(StoreError::ConditionFailed {
                current: Some(item),
            }) => rate::failures(&item),
            Err(StoreError::ConditionFailed { current: None }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(until) = seen.blocked(now, budget) {
            return Ok(SubjectReservation::Blocked { until });
        }
        if budget::may_restart(&seen, budget, now) {
            match db
                .apply(rate::restart(key.clone(), &seen, budget, now))
                .await
            {
                Ok(_) => return Ok(SubjectReservation::Granted),
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(SubjectReservation::Blocked {
        until: db.now().saturating_add(1),
    })
}

/// Gives back a reservation of [`reserve_subject`] whose attempt succeeded.
pub async fn release_subject(db: Db<'_>, key: &Key) -> Result<(), StoreError> {
    match db.apply(rate::release(key.clone())).await {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A fixed window: at most `limit` hits per `secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub secs: i64,
}

/// Counts one hit of `subject` under `scope`; `Err(until)` when its window is used up.
pub async fn hit(
    db: Db<'_>,
    scope: &str,
    subject: &str,
    window: &Window,
) -> Result<Result<(), i64>, StoreError> {
    let now = db.now();
    match db
        .apply(rate::hit(scope, subject, window.limit, window.secs, now))
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(StoreError::ConditionFailed { .. }) => Ok(Err(rate::window_end(window.secs, now))),
        Err(e) => Err(e),
    }
}

/// One window counter a transaction hits together with other writes (a code's send counters, a
/// login link's): `subject` under `scope`, at most `window.limit` hits per window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub scope: String,
    pub subject: String,
    pub window: Window,
}

impl Counter {
    pub fn new(scope: impl Into<String>, subject: impl Into<String>, window: Window) -> Self {
        Self {
            scope: scope.into(),
            subject: subject.into(),
            window,
        }
    }
}

/// The writes that count one hit on each of `counters`, to lead a transaction (so that a
/// refused transaction's failing index names the counter that was full).
pub fn hit_ops(counters: &[Counter], now: i64) -> Vec<TxOp> {
    counters
        .iter()
        .map(|c| rate::hit(&c.scope, &c.subject, c.window.limit, c.window.secs, now).into_op())
        .collect()
}

/// Which counter refused a transaction that failed its condition at `index` (one led by
/// [`hit_ops`]), and the answer: rate limited until that counter's window ends. `None` when the
/// index is past the counters (another write of the transaction refused).
pub fn full_counter(counters: &[Counter], index: usize, now: i64) -> Option<(&Counter, Error)> {
    counters.get(index).map(|c| {
        (
            c,
            Error::RateLimited {
                until: rate::window_end(c.window.secs, now),
            },
        )
    })
}
