//! Limits on guessing, each one atomic conditional write so that no number of parallel
//! requests gets past it.
//!
//! **Account lockout.** Before a password or code is checked, the attempt is *reserved*: one
//! conditional `ADD attempts 1` on the user's profile that fails once `attempts` has reached the
//! limit. A success resets the counter; a failure leaves it. So with a limit of 6, at most 6
//! guesses are ever checked — however many arrive at once — and the account stays locked until
//! `lockout` has passed since the last reserved attempt. The reservation returns the profile as
//! written, so it doubles as the sign-in's read of the user.
//!
//! **Per-IP attempts.** A fixed-window counter per client IP (`RATE#ip#<ip>` / `W#<window>`),
//! expiring with its window.

use std::net::IpAddr;

use crate::app::App;
use crate::audit::{Audit, Event, Outcome};
use crate::store::{CmpOp, Cond, Key, StoreError, Update};

use super::users::{User, UserId, attr, profile_key};

/// The outcome of reserving an attempt.
#[derive(Debug)]
pub enum Reservation {
    /// The attempt may proceed; `user` is the profile as written (its `attempts` counts this one).
    Granted(Box<User>),
    /// The account is locked (or other attempts already hold every remaining slot).
    Locked,
    /// No such user (deleted between lookup and reservation).
    NoUser,
}

/// Reserves one sign-in attempt on `id`.
pub async fn reserve_attempt(app: &App, id: UserId) -> Result<Reservation, StoreError> {
    let now = app.clock.now();
    let max = i64::from(app.config.lockout_failures);
    let key = profile_key(id);
    let update = Update::new()
        .add(attr::ATTEMPTS, 1)
        .set(attr::ATTEMPT_AT, now);
    let under_limit = Cond::And(vec![
        Cond::Exists,
        Cond::missing_or(attr::ATTEMPTS, CmpOp::Lt, max),
    ]);
    match app.store.update(&key, update, under_limit, now).await {
        Ok(item) => Ok(Reservation::Granted(Box::new(User::try_from(&item)?))),
        Err(StoreError::ConditionFailed { current: None }) => Ok(Reservation::NoUser),
        Err(StoreError::ConditionFailed {
            current: Some(item),
        }) => {
            let user = User::try_from(&*item)?;
            if user.locked(now, app.config.lockout_failures, app.config.lockout_secs) {
                return Ok(Reservation::Locked);
            }
            // The lock has run out: start a fresh count, unless someone else just did.
            let restart = Update::new()
                .set(attr::ATTEMPTS, 1)
                .set(attr::ATTEMPT_AT, now);
            let unchanged = Cond::And(vec![
                Cond::eq(attr::ATTEMPTS, i64::from(user.attempts)),
                match user.attempt_at {
                    Some(at) => Cond::eq(attr::ATTEMPT_AT, at),
                    None => Cond::missing(attr::ATTEMPT_AT),
                },
            ]);
            match app.store.update(&key, restart, unchanged, now).await {
                Ok(item) => Ok(Reservation::Granted(Box::new(User::try_from(&item)?))),
                Err(StoreError::ConditionFailed { .. }) => Ok(Reservation::Locked),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Records that a reserved attempt failed. The counter already holds it; this only reports the
/// lockout when this failure was the one that reached the limit.
pub fn attempt_failed(app: &App, user: &User, via: &'static str, ip: IpAddr) {
    if user.attempts >= app.config.lockout_failures {
        Audit::new(Event::Lockout, Outcome::Failure, via)
            .user(user.id)
            .ip(ip)
            .reason("too_many_failures")
            .emit();
    }
}

/// The update that clears the attempt counter after a success; callers add it to the write
/// that records the success (e.g. the TOTP step), so a success costs one write.
pub fn reset_attempts(update: Update) -> Update {
    update.set(attr::ATTEMPTS, 0)
}

/// Clears the attempt counter (a success with nothing else to record, or an admin's unlock).
pub async fn attempt_succeeded(app: &App, id: UserId) -> Result<(), StoreError> {
    let now = app.clock.now();
    match app
        .store
        .update(
            &profile_key(id),
            reset_attempts(Update::new()),
            Cond::Exists,
            now,
        )
        .await
    {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Counts one attempt from `ip`; false when the IP has used up its window.
pub async fn allow_ip(app: &App, ip: IpAddr, via: &'static str) -> Result<bool, StoreError> {
    let now = app.clock.now();
    let window = app.config.ip_window_secs.max(1);
    let start = now - now.rem_euclid(window);
    let key = Key::new(format!("RATE#ip#{ip}"), format!("W#{start}"));
    let update = Update::new().add("n", 1).expire_at(start + window);
    let cond = Cond::missing_or("n", CmpOp::Lt, i64::from(app.config.ip_attempts));
    match app.store.update(&key, update, cond, now).await {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed { .. }) => {
            Audit::new(Event::RateLimited, Outcome::Failure, via)
                .ip(ip)
                .reason("ip_attempts")
                .emit();
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
