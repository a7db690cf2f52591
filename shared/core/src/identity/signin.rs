//! Sign-in: password, then (when required) a second factor. Every dialect signs in through
//! here, so lockout, per-IP limits, equal cost for unknown users, TOTP replay refusal and audit
//! events hold for all of them.
//!
//! The steps are types: [`password`] yields a [`PasswordVerified`], which must be either
//! [`PasswordVerified::complete`]d (no second factor) or carried through
//! [`PasswordVerified::totp`]. An attempt left unfinished stays counted as a failure.

use std::net::IpAddr;

use crate::app::App;
use crate::audit::{Audit, Event, Outcome};
use crate::crypto::totp::{self, TotpSecret};
use crate::store::{CmpOp, Cond, StoreError, Update};

use super::Fault;
use super::limits::{self, Reservation};
use super::users::{Role, Totp, User, UserId, attr, login_key, pointer_uid, profile_key};

/// A user id that is never allocated ([`super::accounts::next_id`] starts at 1).
const NO_SUCH_USER: UserId = 0;

/// Where an attempt comes from, for limits and audit.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub ip: IpAddr,
    /// The dialect (or `cli`), for audit events.
    pub via: &'static str,
}

/// Why a sign-in step failed. Dialects render these; several deliberately share one answer.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown login, wrong password, wrong role or disabled account — one answer for all.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed attempts on this account.
    #[error("account locked")]
    Locked,
    /// Too many attempts from this client IP.
    #[error("rate limited")]
    RateLimited,
    /// The admin requires a new password before the next sign-in.
    #[error("password reset required")]
    PasswordResetRequired,
    /// The code was wrong, expired, malformed or already used.
    #[error("invalid code")]
    InvalidCode,
    /// The user has no active factor of the kind asked for.
    #[error("factor not configured")]
    NotConfigured,
    /// The factor being activated is active already.
    #[error("factor already configured")]
    AlreadyConfigured,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<StoreError> for SignInError {
    fn from(e: StoreError) -> Self {
        SignInError::Fault(Fault::Store(e))
    }
}

/// A correct password whose sign-in is not finished yet.
#[must_use = "complete the sign-in or verify a second factor; an unfinished attempt counts as a failure"]
#[derive(Debug)]
pub struct PasswordVerified {
    pub user: User,
    ctx: Context,
}

/// Checks a login (username or email) and password for a user of `role`.
pub async fn password(
    app: &App,
    login: &str,
    password: &str,
    role: Role,
    ctx: Context,
) -> Result<PasswordVerified, SignInError> {
    let fail = |reason| {
        Audit::new(Event::SignIn, Outcome::Failure, ctx.via)
            .ip(ctx.ip)
            .reason(reason)
    };
    if !limits::allow_ip(app, ctx.ip, ctx.via).await? {
        return Err(SignInError::RateLimited);
    }
    let now = app.clock.now();
    let uid = match app.store.get(&login_key(login), now).await? {
        Some(pointer) => pointer_uid(&pointer)?,
        // An unknown login goes on as a known one: its attempt's conditional write is refused
        // (no user has id 0) and lands in `NoUser` below. Neither the time nor the number of
        // store calls then tells an unknown login from a wrong password.
        None => NO_SUCH_USER,
    };
    let user = match limits::reserve_attempt(app, uid).await? {
        Reservation::Granted(user) => *user,
        Reservation::NoUser => {
            burn_equal_cost(app, password).await?;
            fail("unknown_user").emit();
            return Err(SignInError::InvalidCredentials);
        }
        Reservation::Locked => {
            burn_equal_cost(app, password).await?;
            fail("locked").user(uid).emit();
            return Err(SignInError::Locked);
        }
    };
    let matches = verify_password(app, password, &user.password_hash).await?;
    if !matches || user.role != role || !user.active {
        limits::attempt_failed(app, &user, ctx.via, ctx.ip);
        let reason = if !matches {
            "bad_password"
        } else if user.role != role {
            "wrong_role"
        } else {
            "inactive"
        };
        fail(reason).user(user.id).emit();
        return Err(SignInError::InvalidCredentials);
    }
    if user.must_reset_password {
        limits::attempt_succeeded(app, user.id).await?;
        fail("password_reset_required").user(user.id).emit();
        return Err(SignInError::PasswordResetRequired);
    }
    Ok(PasswordVerified { user, ctx })
}

impl PasswordVerified {
    /// Finishes a sign-in that needs no second factor.
    pub async fn complete(self, app: &App) -> Result<User, SignInError> {
        limits::attempt_succeeded(app, self.user.id).await?;
        Audit::new(Event::SignIn, Outcome::Success, self.ctx.via)
            .user(self.user.id)
            .ip(self.ctx.ip)
            .emit();
        Ok(self.user)
    }

    /// Ends the attempt as "password right, but not signed in" (e.g. 2FA still to be set
    /// up): the attempt counter is cleared, no sign-in is recorded.
    pub async fn stop(self, app: &App, reason: &'static str) -> Result<User, SignInError> {
        limits::attempt_succeeded(app, self.user.id).await?;
        Audit::new(Event::SignIn, Outcome::Failure, self.ctx.via)
            .user(self.user.id)
            .ip(self.ctx.ip)
            .reason(reason)
            .emit();
        Ok(self.user)
    }

    /// Finishes the sign-in with a code from the user's authenticator app.
    pub async fn totp(self, app: &App, code: &str) -> Result<User, SignInError> {
        let PasswordVerified { user, ctx } = self;
        if !user.totp.is_active() {
            // Not a guess: the caller asked for a factor the user doesn't have.
            limits::attempt_succeeded(app, user.id).await?;
            return Err(SignInError::NotConfigured);
        }
        accept_totp(app, &user, code, TotpStage::Active, ctx).await?;
        Audit::new(Event::SignIn, Outcome::Success, ctx.via)
            .user(user.id)
            .ip(ctx.ip)
            .emit();
        Ok(user)
    }
}

/// Which TOTP secret a code is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpStage {
    /// The confirmed secret (sign-in).
    Active,
    /// The secret being set up; a right code confirms it (activation).
    Pending,
}

/// Checks `code` against the user's secret and records its step, refusing any step at or
/// before the last accepted one — in one conditional write that also clears the attempt
/// counter (and, for [`TotpStage::Pending`], activates the secret). The caller must have
/// reserved the attempt.
pub async fn accept_totp(
    app: &App,
    user: &User,
    code: &str,
    stage: TotpStage,
    ctx: Context,
) -> Result<u64, SignInError> {
    let fail = |reason| {
        Audit::new(Event::SecondFactor, Outcome::Failure, ctx.via)
            .user(user.id)
            .ip(ctx.ip)
            .reason(reason)
    };
    let (sealed, state) = match (&user.totp, stage) {
        (Totp::Active { sealed }, TotpStage::Active) => (sealed, "active"),
        (Totp::Pending { sealed }, TotpStage::Pending) => (sealed, "pending"),
        _ => return Err(SignInError::NotConfigured),
    };
    let secret = app
        .keys
        .sealer
        .open(sealed, &user.aad())
        .map_err(Fault::Crypto)?;
    let secret = TotpSecret::from_bytes(secret.expose().to_vec()).map_err(Fault::Crypto)?;
    let now = app.clock.now();
    let Some(step) = totp::verify(&secret, code, now, app.config.totp_window) else {
        limits::attempt_failed(app, user, ctx.via, ctx.ip);
        fail("bad_code").emit();
        return Err(SignInError::InvalidCode);
    };
    let step_n = i64::try_from(step).unwrap_or(i64::MAX);
    let mut update = limits::reset_attempts(Update::new().set(attr::TOTP_STEP, step_n));
    if stage == TotpStage::Pending {
        update = update.set(attr::TOTP_STATE, "active");
    }
    let cond = Cond::And(vec![
        Cond::eq(attr::TOTP_STATE, state),
        Cond::missing_or(attr::TOTP_STEP, CmpOp::Lt, step_n),
    ]);
    match app
        .store
        .update(&profile_key(user.id), update, cond, now)
        .await
    {
        Ok(_) => Ok(step),
        Err(StoreError::ConditionFailed { .. }) => {
            limits::attempt_failed(app, user, ctx.via, ctx.ip);
            fail("replayed_code").emit();
            Err(SignInError::InvalidCode)
        }
        Err(e) => Err(e.into()),
    }
}

/// Confirms a pending authenticator secret with one code from it (first-time set-up).
pub async fn activate_totp(
    app: &App,
    id: UserId,
    code: &str,
    ctx: Context,
) -> Result<(), SignInError> {
    let user = reserve_code_attempt(app, id, ctx).await?;
    match user.totp {
        Totp::Pending { .. } => {}
        Totp::Active { .. } => {
            limits::attempt_succeeded(app, id).await?;
            return Err(SignInError::AlreadyConfigured);
        }
        Totp::None => {
            limits::attempt_succeeded(app, id).await?;
            return Err(SignInError::NotConfigured);
        }
    }
    accept_totp(app, &user, code, TotpStage::Pending, ctx).await?;
    Audit::new(Event::FactorEnrolled, Outcome::Success, ctx.via)
        .user(id)
        .ip(ctx.ip)
        .reason("totp")
        .emit();
    Ok(())
}

/// Reserves an attempt for a code-only step (e.g. activating a factor with a token in hand).
pub async fn reserve_code_attempt(
    app: &App,
    id: UserId,
    ctx: Context,
) -> Result<User, SignInError> {
    if !limits::allow_ip(app, ctx.ip, ctx.via).await? {
        return Err(SignInError::RateLimited);
    }
    match limits::reserve_attempt(app, id).await? {
        Reservation::Granted(user) => Ok(*user),
        Reservation::Locked => Err(SignInError::Locked),
        Reservation::NoUser => Err(SignInError::InvalidCredentials),
    }
}

async fn verify_password(app: &App, password: &str, phc: &str) -> Result<bool, Fault> {
    let hasher = app.hasher.clone();
    let password = crate::crypto::SecretString::new(password.to_owned());
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || hasher.verify(password.expose(), &phc))
        .await
        .map_err(|_| Fault::Task)
}

/// Spends the same work as checking a real password, so that unknown and locked accounts
/// cannot be told apart by timing.
async fn burn_equal_cost(app: &App, password: &str) -> Result<(), Fault> {
    let hasher = app.hasher.clone();
    let password = crate::crypto::SecretString::new(password.to_owned());
    tokio::task::spawn_blocking(move || hasher.verify_unknown_user(password.expose()))
        .await
        .map_err(|_| Fault::Task)
}
