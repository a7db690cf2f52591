//! Sign-in: a password, then (when required) a second factor. Every dialect signs in through
//! here, so failure budgets, address limits, equal cost for unknown users, TOTP replay refusal
//! and audit events hold for all of them.
//!
//! The steps are types: [`SignIn::password`] yields a [`PasswordOk`], which must be
//! [`PasswordOk::complete`]d (no second factor), [`PasswordOk::pause`]d (the password was
//! right, the sign-in goes no further now) or carried through [`PasswordOk::totp`] or
//! [`PasswordOk::sms`]. An attempt left unfinished stays counted as a failure.
//!
//! A sign-in may also span requests: [`PasswordOk::park`] records the right password in a
//! sign-in flow ([`crate::identity::flows`]), and [`SignIn::resume`] turns such a flow — and
//! nothing else — back into a [`PasswordOk`] for the second factor. A flow only names its user
//! once `park` wrote it, so no request reaches the second factor without the password.

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::SecretString;
use crate::crypto::aead::Sealer;
use crate::crypto::password::{HashSlot, PasswordHasher};
use crate::crypto::totp::{self, TotpSecret};
use crate::records::{login, profile, rate};
use crate::store::{Key, StoreError};

use super::codes::{self, Channel, Codes};
use super::flows::{self, Flow, Flows, SignInStep};
use super::limits::{self, Reservation, SubjectReservation, Window};
use super::users::{Budget, Factor, MAX_LOGIN_BYTES, Role, TotpStage, User, UserId};
use super::{Db, Error, Fault, Origin};

/// The limits one dialect signs in under.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Failures of the password before the account is blocked.
    pub password: Budget,
    /// Failures of each second factor before it is blocked.
    pub second_factor: Budget,
    /// Attempts (right or wrong) one client address may make per window.
    pub per_ip: Option<Window>,
    /// Failures one client address may make before it is blocked.
    pub ip_failures: Option<Budget>,
    /// TOTP steps accepted either side of now.
    pub totp_window: u8,
}

/// What sign-in uses: the store and clock, the password hasher, the sealer that opens TOTP
/// secrets, and the policy of the dialect signing in.
#[derive(Clone, Copy)]
pub struct SignIn<'a> {
    pub db: Db<'a>,
    pub hasher: &'a PasswordHasher,
    pub sealer: &'a Sealer,
    /// Keys the hash an unknown login is counted under ([`rate::unknown_login_key`]).
    pub pepper: &'a [u8],
    pub policy: &'a Policy,
}

/// Scope of the per-address counters.
const IP_SCOPE: &str = "ip";
const IP_FAILURES_SCOPE: &str = "ip-failures";

/// Where a sign-in's password attempt is counted.
enum Target {
    /// The profile of the user the login names.
    User(Key),
    /// The failure budget of a login no user has ([`rate::unknown_login_key`]).
    Unknown(Key),
}

/// A right password whose sign-in is not finished yet.
#[must_use = "complete or pause the sign-in, or verify a second factor; an unfinished attempt counts as a failure"]
#[derive(Debug)]
pub struct PasswordOk {
    pub user: User,
    origin: Origin,
}

fn audit(event: Event, outcome: Outcome, origin: Origin) -> Audit {
    Audit::new(event, outcome, origin.via).ip(origin.ip)
}

impl SignIn<'_> {
    /// Checks a login (username or email) and password for a user of `role`.
    pub async fn password(
        &self,
        login_name: &str,
        password: &str,
        role: Role,
        origin: Origin,
    ) -> Result<PasswordOk, Error> {
        let fail = |reason| audit(Event::SignIn, Outcome::Failure, origin).reason(reason);
        self.admit(origin).await?;
        let target = self.target(login_name).await?;
        // A turn to hash before the attempt is reserved: a sign-in refused for want of one has
        // counted nothing against the account. (Held over the one write that reserves.)
        let slot = self.hasher.slot().await.map_err(Fault::from)?;
        let reserved = match target {
            Target::User(key) => {
                self.reserve(&key, Factor::Password, profile::Guard::Exists, &[])
                    .await?
            }
            // Counted like a known login's attempt, with a write the store makes (a refused
            // write answers sooner), on a budget of its own that expires unused.
            Target::Unknown(key) => {
                match limits::reserve_subject(self.db, &key, &self.policy.password).await? {
                    SubjectReservation::Granted => Reservation::NoUser,
                    SubjectReservation::Blocked { until } => Reservation::Locked { until },
                }
            }
        };
        let user = match reserved {
            Reservation::Granted(user) => *user,
            Reservation::NoUser | Reservation::Refused(_) => {
                burn_equal_cost(slot, password).await?;
                fail("unknown_user").emit();
                return Err(Error::InvalidCredentials);
            }
            Reservation::Locked { until } => {
                burn_equal_cost(slot, password).await?;
                fail("locked").emit();
                return Err(Error::Locked { until });
            }
        };
        let matches = verify_password(slot, password, &user.password_hash).await?;
        if !matches || user.role != role || !user.active {
            self.report_failure(&user, Factor::Password, origin);
            let reason = if !matches {
                "bad_password"
            } else if user.role != role {
                "wrong_role"
            } else {
                "inactive"
            };
            fail(reason).user(user.id).emit();
            return Err(Error::InvalidCredentials);
        }
        self.release_ip(origin).await?;
        if user.must_reset_password {
            self.clear(&user, &[Factor::Password]).await?;
            fail("password_reset_required").user(user.id).emit();
            return Err(Error::PasswordResetRequired);
        }
        Ok(PasswordOk { user, origin })
    }

    /// Confirms a pending authenticator secret with one code from it (first-time set-up, with a
    /// set-up token standing for the password). A user without a pending secret is refused
    /// without counting an attempt.
    pub async fn activate_totp(&self, id: UserId, code: &str, origin: Origin) -> Result<(), Error> {
        self.admit(origin).await?;
        let user = match self
            .reserve(
                &profile::key(id),
                Factor::Totp,
                profile::Guard::Totp(TotpStage::Pending),
                &[],
            )
            .await?
        {
            Reservation::Granted(user) => *user,
            Reservation::Refused(user) if user.totp.is_active() => {
                return Err(Error::AlreadyConfigured);
            }
            Reservation::Refused(_) => return Err(Error::NotConfigured),
            Reservation::NoUser => return Err(Error::InvalidCredentials),
            Reservation::Locked { until } => return Err(Error::Locked { until }),
        };
        self.accept_totp(&user, code, TotpStage::Pending, &[Factor::Totp], origin)
            .await?;
        audit(Event::FactorEnrolled, Outcome::Success, origin)
            .user(id)
            .reason("totp")
            .emit();
        Ok(())
    }

    /// Confirms the password of a signed-in user (e.g. before it is changed): the attempt is
    /// reserved against the password's budget and the address's limits, as at sign-in.
    pub async fn confirm_password(
        &self,
        id: UserId,
        password: &str,
        origin: Origin,
    ) -> Result<(), Error> {
        let fail = |reason| audit(Event::SignIn, Outcome::Failure, origin).reason(reason);
        self.admit(origin).await?;
        let slot = self.hasher.slot().await.map_err(Fault::from)?;
        let user = match self
            .reserve(
                &profile::key(id),
                Factor::Password,
                profile::Guard::Exists,
                &[],
            )
            .await?
        {
            Reservation::Granted(user) => *user,
            Reservation::NoUser | Reservation::Refused(_) => return Err(Error::NotFound),
            Reservation::Locked { until } => {
                fail("locked").user(id).emit();
                return Err(Error::Locked { until });
            }
        };
        if !verify_password(slot, password, &user.password_hash).await? || !user.active {
            self.report_failure(&user, Factor::Password, origin);
            fail("bad_password").user(id).emit();
            return Err(Error::InvalidCredentials);
        }
        self.release_ip(origin).await?;
        self.clear(&user, &[Factor::Password]).await
    }

    /// Checks a code of the user's active authenticator app as a second factor on its own (the
    /// user is signed in already and proves the factor again, e.g. for a protected action or
    /// before switching a factor off): the same budgets, replay refusal and address limits as a
    /// sign-in's code. A user without an active authenticator is refused without counting.
    pub async fn verify_totp(&self, id: UserId, code: &str, origin: Origin) -> Result<(), Error> {
        self.admit_second_factor(origin).await?;
        let user = match self
            .reserve(
                &profile::key(id),
                Factor::Totp,
                profile::Guard::Totp(TotpStage::Active),
                &[],
            )
            .await?
        {
            Reservation::Granted(user) => *user,
            Reservation::Refused(_) => {
                self.release_ip(origin).await?;
                return Err(Error::NotConfigured);
            }
            Reservation::NoUser => return Err(Error::NotFound),
            Reservation::Locked { until } => {
                audit(Event::SecondFactor, Outcome::Failure, origin)
                    .user(id)
                    .reason("locked")
                    .emit();
                return Err(Error::Locked { until });
            }
        };
        self.accept_totp(&user, code, TotpStage::Active, &[Factor::Totp], origin)
            .await?;
        audit(Event::SecondFactor, Outcome::Success, origin)
            .user(id)
            .reason("totp")
            .emit();
        Ok(())
    }

    /// Checks a fresh SMS code of `purpose` (sent with [`Codes::send_sms_to`]) outside a
    /// sign-in, under the same budgets as a sign-in's.
    pub async fn fresh_sms(
        &self,
        codes: &Codes<'_>,
        id: UserId,
        purpose: &'static str,
        code: &str,
        policy: &codes::Policy,
        origin: Origin,
    ) -> Result<(), Error> {
        self.admit_second_factor(origin).await?;
        codes
            .verify(id, purpose, Channel::Sms, code, policy, origin)
            .await?;
        self.release_ip(origin).await?;
        Ok(())
    }

    /// The per-address limits: a window of attempts, a budget of failures.
    async fn admit(&self, origin: Origin) -> Result<(), Error> {
        let subject = rate::ip_subject(origin.ip);
        let limited = |until: i64| {
            audit(Event::RateLimited, Outcome::Failure, origin)
                .reason("ip_attempts")
                .emit();
            Err(Error::RateLimited { until })
        };
        if let Some(window) = &self.policy.per_ip
            && let Err(until) = limits::hit(self.db, IP_SCOPE, &subject, window).await?
        {
            return limited(until);
        }
        if let Some(budget) = &self.policy.ip_failures {
            let key = rate::budget_key(IP_FAILURES_SCOPE, &subject);
            if let SubjectReservation::Blocked { until } =
                limits::reserve_subject(self.db, &key, budget).await?
            {
                return limited(until);
            }
        }
        Ok(())
    }

    /// Gives back the address's reservation of a right answer.
    async fn release_ip(&self, origin: Origin) -> Result<(), Error> {
        if self.policy.ip_failures.is_some() {
            let key = rate::budget_key(IP_FAILURES_SCOPE, &rate::ip_subject(origin.ip));
            limits::release_subject(self.db, &key).await?;
        }
        Ok(())
    }

    /// Where a login's attempt is reserved: its user's profile, or (a login no user has) a
    /// failure budget of that login's own, so that neither time, store calls nor their
    /// outcomes tell the two apart, and a run of unknown logins is spread over as many keys.
    async fn target(&self, login_name: &str) -> Result<Target, Error> {
        let unknown = || Target::Unknown(rate::unknown_login_key(self.pepper, login_name));
        if login_name.len() > MAX_LOGIN_BYTES {
            return Ok(unknown());
        }
        Ok(match self.db.get(&login::key(login_name)).await? {
            Some(pointer) => Target::User(profile::key(login::uid_of(&pointer)?)),
            None => unknown(),
        })
    }

    /// Checks `code` against the user's secret and records its step, refusing any step at or
    /// before the last accepted one — in one conditional write that also clears the budgets of
    /// `clears` (and, at [`TotpStage::Pending`], activates the secret). The caller must have
    /// reserved the attempt.
    async fn accept_totp(
        &self,
        user: &User,
        code: &str,
        stage: TotpStage,
        clears: &[Factor],
        origin: Origin,
    ) -> Result<u64, Error> {
        let fail = |reason| {
            audit(Event::SecondFactor, Outcome::Failure, origin)
                .user(user.id)
                .reason(reason)
        };
        let sealed = match (user.totp.stage(), user.totp.sealed()) {
            (Some(s), Some(sealed)) if s == stage => sealed,
            _ => return Err(Error::NotConfigured),
        };
        let secret = self.sealer.open(sealed, &super::users::totp_aad(user.id))?;
        let secret = TotpSecret::from_bytes(secret.expose().to_vec())?;
        let Some(step) = totp::verify(&secret, code, self.db.now(), self.policy.totp_window) else {
            self.report_failure(user, Factor::Totp, origin);
            fail("bad_code").emit();
            return Err(Error::InvalidCode);
        };
        match self
            .db
            .apply(profile::accept_totp(user.id, step, stage, clears))
            .await
        {
            Ok(_) => {
                self.release_ip(origin).await?;
                Ok(step)
            }
            Err(StoreError::ConditionFailed { .. }) => {
                self.report_failure(user, Factor::Totp, origin);
                fail("replayed_code").emit();
                Err(Error::InvalidCode)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Clears the budgets of `factors` (what a step proved).
    async fn clear(&self, user: &User, factors: &[Factor]) -> Result<(), Error> {
        let write = profile::Changes::new()
            .clear_budgets(factors)
            .write_quietly(user.id);
        match self.db.apply(write).await {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reports the lockout when this failure was the one that used up the factor's budget (the
    /// reservation already counted it).
    fn report_failure(&self, user: &User, factor: Factor, origin: Origin) {
        let budget = match factor {
            Factor::Password => &self.policy.password,
            _ => &self.policy.second_factor,
        };
        if user.budgets.of(factor).count >= budget.max_failures {
            audit(Event::Lockout, Outcome::Failure, origin)
                .user(user.id)
                .reason(factor.as_str())
                .emit();
        }
    }
}

async fn verify_password(slot: HashSlot, password: &str, phc: &str) -> Result<bool, Fault> {
    let password = SecretString::new(password.to_owned());
    let phc = phc.to_owned();
    slot.run(move |hasher| hasher.verify(password.expose(), &phc))
        .await
        .map_err(|_| Fault::Task)
}

/// Spends the same work as checking a real password, so that unknown and locked accounts
/// cannot be told apart by timing.
async fn burn_equal_cost(slot: HashSlot, password: &str) -> Result<(), Fault> {
    let password = SecretString::new(password.to_owned());
    slot.run(move |hasher| hasher.verify_unknown_user(password.expose()))
        .await
        .map_err(|_| Fault::Task)
}

impl SignIn<'_> {
    /// Picks a parked sign-in up again at its second factor: `flow` must be a sign-in flow at
    /// `step` (one [`PasswordOk::park`] moved it to), so its user proved the password in it.
    pub async fn resume(
        &self,
        flow: &Flow,
        step: SignInStep,
        origin: Origin,
    ) -> Result<PasswordOk, Error> {
        if flow.sign_in_step() != Some(step) || step == SignInStep::Credentials {
            return Err(flows::FlowError::OutOfOrder.into());
        }
        let uid = flows::owner(flow)?;
        let item = self.db.get(&profile::key(uid)).await?;
        let user = match item {
            Some(item) => User::try_from(&item)?,
            None => return Err(Error::InvalidCredentials),
        };
        if !user.active {
            return Err(Error::InvalidCredentials);
        }
        Ok(PasswordOk { user, origin })
    }
}

impl PasswordOk {
    /// Ends this request's part of the sign-in with the password proven, recording it in the
    /// sign-in `flow` (which must still be at its credentials step) and moving the flow to
    /// `next`, a second-factor step. Clears the password's budget only, as [`PasswordOk::pause`].
    pub async fn park(
        self,
        si: &SignIn<'_>,
        flows: &Flows<'_>,
        flow: &Flow,
        next: SignInStep,
    ) -> Result<User, Error> {
        if flow.sign_in_step() != Some(SignInStep::Credentials) || next == SignInStep::Credentials {
            return Err(flows::FlowError::OutOfOrder.into());
        }
        let user = self.pause(si, "second_factor_required").await?;
        let proven = crate::records::flow::Proven {
            uid: Some(user.id),
            data: None,
        };
        flows.advance(flow, next.as_str(), proven).await?;
        Ok(user)
    }

    /// Picks the second factor of a parked sign-in whose user has several: moves `flow` from
    /// [`SignInStep::Choose`] to `factor`'s step, if the user has that factor.
    pub async fn choose(
        self,
        flows: &Flows<'_>,
        flow: &Flow,
        factor: Factor,
    ) -> Result<User, Error> {
        if flow.sign_in_step() != Some(SignInStep::Choose) {
            return Err(flows::FlowError::OutOfOrder.into());
        }
        let next = match factor {
            Factor::Totp => SignInStep::Totp,
            Factor::Sms => SignInStep::Sms,
            Factor::Password | Factor::Email => return Err(Error::NotConfigured),
        };
        if !self.user.second_factors().contains(&factor) {
            return Err(Error::NotConfigured);
        }
        flows
            .advance(flow, next.as_str(), crate::records::flow::Proven::default())
            .await?;
        Ok(self.user)
    }

    /// Finishes a sign-in that needs no second factor (its dialect asks none at sign-in, or the
    /// user has none). Clears the password's budget only: a second factor's tries come back
    /// when that factor is proven, never with the password alone — else the password, known to
    /// an attacker, would buy unlimited guesses at a step-up code (Glue's `X-MFA-Code`).
    pub async fn complete(self, si: &SignIn<'_>) -> Result<User, Error> {
        si.clear(&self.user, &[Factor::Password]).await?;
        audit(Event::SignIn, Outcome::Success, self.origin)
            .user(self.user.id)
            .emit();
        Ok(self.user)
    }

    /// Ends the attempt as "password right, not signed in (yet)" — the second factor comes in
    /// another request, or must be set up first. Clears the password's budget only: a step that
    /// proves the password never gives a second factor its tries back.
    pub async fn pause(self, si: &SignIn<'_>, reason: &'static str) -> Result<User, Error> {
        si.clear(&self.user, &[Factor::Password]).await?;
        audit(Event::SignIn, Outcome::Failure, self.origin)
            .user(self.user.id)
            .reason(reason)
            .emit();
        Ok(self.user)
    }

    /// Finishes the sign-in with a code from the user's authenticator app. The code's attempt
    /// is reserved against the authenticator's own budget (in the write that clears the
    /// password's), and a right code clears every budget.
    pub async fn totp(self, si: &SignIn<'_>, code: &str) -> Result<User, Error> {
        let PasswordOk { user, origin } = self;
        si.admit_second_factor(origin).await?;
        let user = match si
            .reserve(
                &profile::key(user.id),
                Factor::Totp,
                profile::Guard::Totp(TotpStage::Active),
                &[Factor::Password],
            )
            .await?
        {
            Reservation::Granted(user) => *user,
            Reservation::Refused(user) => {
                // Not a guess: the caller asked for a factor the user does not have.
                si.clear(&user, &[Factor::Password]).await?;
                return Err(Error::NotConfigured);
            }
            Reservation::Locked { until } => {
                audit(Event::SecondFactor, Outcome::Failure, origin)
                    .user(user.id)
                    .reason("locked")
                    .emit();
                return Err(Error::Locked { until });
            }
            Reservation::NoUser => return Err(Error::InvalidCredentials),
        };
        si.accept_totp(&user, code, TotpStage::Active, &Factor::ALL, origin)
            .await?;
        audit(Event::SignIn, Outcome::Success, origin)
            .user(user.id)
            .emit();
        Ok(user)
    }
}

impl PasswordOk {
    /// Finishes the sign-in with the code sent by SMS for `purpose` ([`Codes::send`] to the
    /// user's verified phone). The try counts against the account's SMS budget, the code's own
    /// tries and the address's failure budget; a right code clears every budget.
    pub async fn sms(
        self,
        si: &SignIn<'_>,
        codes: &Codes<'_>,
        purpose: &'static str,
        code: &str,
        policy: &codes::Policy,
    ) -> Result<User, Error> {
        let PasswordOk { user, origin } = self;
        if user.verified_phone().is_none() {
            return Err(Error::NotConfigured);
        }
        si.admit_second_factor(origin).await?;
        codes
            .verify(user.id, purpose, Channel::Sms, code, policy, origin)
            .await?;
        si.release_ip(origin).await?;
        si.clear(&user, &Factor::ALL).await?;
        audit(Event::SignIn, Outcome::Success, origin)
            .user(user.id)
            .emit();
        Ok(user)
    }
}

impl SignIn<'_> {
    /// Reserves one attempt of `factor` against its budget under this policy (the password's
    /// or the second factors'), in the write that also clears `also_clear`'s budgets.
    async fn reserve(
        &self,
        key: &Key,
        factor: Factor,
        guard: profile::Guard,
        also_clear: &[Factor],
    ) -> Result<Reservation, Error> {
        let budget = match factor {
            Factor::Password => &self.policy.password,
            _ => &self.policy.second_factor,
        };
        Ok(limits::reserve(self.db, key, factor, budget, guard, also_clear).await?)
    }

    /// A second factor's attempt counts against the address's failure budget too (not against
    /// its window of attempts: the password step counted the request already).
    async fn admit_second_factor(&self, origin: Origin) -> Result<(), Error> {
        if let Some(budget) = &self.policy.ip_failures {
            let key = rate::budget_key(IP_FAILURES_SCOPE, &rate::ip_subject(origin.ip));
            if let SubjectReservation::Blocked { until } =
                limits::reserve_subject(self.db, &key, budget).await?
            {
                return Err(Error::RateLimited { until });
            }
        }
        Ok(())
    }
}
