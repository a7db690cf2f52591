//! `USER#<id>` / `PROFILE`: one user, with its factors, its failure budget per factor and its
//! token generation on the one item, so that a sign-in reserves its attempt and reads the user
//! in a single conditional write.

use std::ops::Bound;

use sha2::{Digest, Sha256};

use super::budget::{self, Names};
use super::{corrupt, non_negative, number};
use crate::identity::users::{
    Budget, Budgets, CodeFactor, Factor, Failures, Role, Totp, TotpStage, User, UserId,
    normalize_login,
};
use crate::store::{CmpOp, Cond, Item, Key, StoreError, Update, Value, Write};

const PK_PREFIX: &str = "USER#";
const SK: &str = "PROFILE";

mod attr {
    pub const USERNAME: &str = "username";
    pub const EMAIL: &str = "email";
    pub const ROLE: &str = "role";
    pub const PASSWORD: &str = "password_hash";
    pub const STORE_ID: &str = "store_id";
    pub const PHONE: &str = "phone";
    pub const TOTP_STATE: &str = "totp_state";
    pub const TOTP_SECRET: &str = "totp_secret";
    pub const TOTP_STEP: &str = "totp_step";
    pub const EMAIL_OTP: &str = "email_otp";
    pub const SMS_OTP: &str = "sms_otp";
    pub const TFA: &str = "tfa_enabled";
    pub const RESET: &str = "must_reset_password";
    pub const ACTIVE: &str = "active";
    pub const GEN: &str = "token_gen";
    pub const CREATED: &str = "created_at";
    pub const UPDATED: &str = "updated_at";
}

/// What the name of every attribute of [`budget_names`] starts with.
const FAIL_PREFIX: &str = "fail_";

/// The attributes of each factor's failure budget.
fn budget_names(factor: Factor) -> Names {
    match factor {
        Factor::Password => Names {
            count: "fail_password",
            first: "fail_password_first",
            last: "fail_password_last",
            streak: Some("fail_password_streak"),
        },
        Factor::Totp => Names {
            count: "fail_totp",
            first: "fail_totp_first",
            last: "fail_totp_last",
            streak: Some("fail_totp_streak"),
        },
        Factor::Email => Names {
            count: "fail_email",
            first: "fail_email_first",
            last: "fail_email_last",
            streak: Some("fail_email_streak"),
        },
        Factor::Sms => Names {
            count: "fail_sms",
            first: "fail_sms_first",
            last: "fail_sms_last",
            streak: Some("fail_sms_streak"),
        },
    }
}

/// The sort key of every profile: `latchkey user list` scans for it.
pub const SORT_KEY: &str = SK;

pub fn key(id: UserId) -> Key {
    Key::new(format!("{PK_PREFIX}{id}"), SK)
}

/// A profile key no user has, derived from a login that matched none: a flow that reads a
/// known login's profile reads this for an unknown one, so it costs what a known one does.
/// Spread over 2^64 partitions, so that a run of unknown logins is no hot key.
pub fn decoy_key(login: &str) -> Key {
    let digest = Sha256::digest(normalize_login(login).as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Key::new(format!("{PK_PREFIX}unknown-{hex}"), SK)
}

fn id_of(key: &Key) -> Result<UserId, StoreError> {
    key.pk
        .strip_prefix(PK_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt(key, "not a user key"))
}

fn totp_state(stage: Option<TotpStage>) -> &'static str {
    match stage {
        None => "none",
        Some(TotpStage::Pending) => "pending",
        Some(TotpStage::Active) => "active",
    }
}

fn code_factor(value: Option<&str>) -> CodeFactor {
    match value {
        Some("pending") => CodeFactor::Pending,
        Some("on") => CodeFactor::On,
        _ => CodeFactor::Off,
    }
}

fn code_factor_str(f: CodeFactor) -> &'static str {
    match f {
        CodeFactor::Off => "off",
        CodeFactor::Pending => "pending",
        CodeFactor::On => "on",
    }
}

impl TryFrom<&Item> for User {
    type Error = StoreError;

    fn try_from(item: &Item) -> Result<Self, StoreError> {
        let key = &item.key;
        let id = id_of(key)?;
        let text = |name: &str| {
            item.str(name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(key, name))
        };
        let sealed = || item.bytes(attr::TOTP_SECRET).map(<[u8]>::to_vec);
        let totp = match (item.str(attr::TOTP_STATE), sealed()) {
            (None | Some("none"), _) => Totp::None,
            (Some("pending"), Some(sealed)) => Totp::Pending { sealed },
            (Some("active"), Some(sealed)) => Totp::Active { sealed },
            _ => return Err(corrupt(key, "totp state")),
        };
        let mut budgets = Budgets::default();
        // Every budget attribute starts with `fail_`, and most profiles hold none: one ordered
        // lookup then stands for sixteen (the profile is read on every authenticated request).
        let has_failures = item
            .attrs
            .range::<str, _>((Bound::Included(FAIL_PREFIX), Bound::Unbounded))
            .next()
            .is_some_and(|(name, _)| name.starts_with(FAIL_PREFIX));
        if has_failures {
            for factor in Factor::ALL {
                *budgets.of_mut(factor) = budget_names(factor).read(item);
            }
        }
        Ok(User {
            id,
            username: text(attr::USERNAME)?,
            email: text(attr::EMAIL)?,
            role: item
                .str(attr::ROLE)
                .and_then(Role::parse)
                .ok_or_else(|| corrupt(key, "role"))?,
            password_hash: text(attr::PASSWORD)?,
            store_id: item
                .num(attr::STORE_ID)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            phone: item.str(attr::PHONE).map(str::to_owned),
            totp,
            totp_last_step: item.num(attr::TOTP_STEP).map(non_negative),
            email_otp: code_factor(item.str(attr::EMAIL_OTP)),
            sms_otp: code_factor(item.str(attr::SMS_OTP)),
            tfa_enabled: item.bool(attr::TFA).unwrap_or(true),
            must_reset_password: item.bool(attr::RESET).unwrap_or(false),
            active: item.bool(attr::ACTIVE).unwrap_or(true),
            token_gen: item.num(attr::GEN).map(non_negative).unwrap_or(0),
            budgets,
            created_at: item.num(attr::CREATED).unwrap_or(0),
            updated_at: item.num(attr::UPDATED).unwrap_or(0),
        })
    }
}

impl From<&User> for Item {
    fn from(u: &User) -> Item {
        let mut item = Item::new(key(u.id))
            .with(attr::USERNAME, u.username.as_str())
            .with(attr::EMAIL, u.email.as_str())
            .with(attr::ROLE, u.role.as_str())
            .with(attr::PASSWORD, u.password_hash.as_str())
            .with(attr::STORE_ID, i64::from(u.store_id))
            .with(attr::TOTP_STATE, totp_state(u.totp.stage()))
            .with(attr::EMAIL_OTP, code_factor_str(u.email_otp))
            .with(attr::SMS_OTP, code_factor_str(u.sms_otp))
            .with(attr::TFA, u.tfa_enabled)
            .with(attr::RESET, u.must_reset_password)
            .with(attr::ACTIVE, u.active)
            .with(attr::GEN, number(u.token_gen))
            .with(attr::CREATED, u.created_at)
            .with(attr::UPDATED, u.updated_at);
        if let Some(sealed) = u.totp.sealed() {
            item = item.with(attr::TOTP_SECRET, Value::B(sealed.to_vec()));
        }
        if let Some(phone) = &u.phone {
            item = item.with(attr::PHONE, phone.as_str());
        }
        if let Some(step) = u.totp_last_step {
            item = item.with(attr::TOTP_STEP, number(step));
        }
        for factor in Factor::ALL {
            let names = budget_names(factor);
            let f = u.budgets.of(factor);
            if f.count > 0 {
                item = item.with(names.count, i64::from(f.count));
            }
            if let Some(at) = f.first_at {
                item = item.with(names.first, at);
            }
            if let Some(at) = f.last_at {
                item = item.with(names.last, at);
            }
            if let (Some(name), true) = (names.streak, f.streak > 0) {
                item = item.with(name, i64::from(f.streak));
            }
        }
        item
    }
}

/// What must hold of the profile for a write to apply, besides its existence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Only that the user exists.
    Exists,
    /// The authenticator is at this stage (activation needs a pending one, sign-in an active
    /// one): an attempt at a factor the user does not have is refused without being counted.
    Totp(TotpStage),
}

impl Guard {
    fn cond(self) -> Cond {
        match self {
            Guard::Exists => Cond::Exists,
            Guard::Totp(stage) => Cond::And(vec![
                Cond::Exists,
                Cond::eq(attr::TOTP_STATE, totp_state(Some(stage))),
            ]),
        }
    }

    /// Whether a user (as read back from a refused write) meets the guard.
    pub fn holds(self, user: &User) -> bool {
        match self {
            Guard::Exists => true,
            Guard::Totp(stage) => user.totp.stage() == Some(stage),
        }
    }
}

/// Reserves one attempt at `factor` on the profile at `key` (see [`super::budget`]), and clears
/// the budgets of `proven` (factors the same request has already proven) in the same write.
pub fn reserve(
    key: Key,
    factor: Factor,
    budget: &Budget,
    now: i64,
    guard: Guard,
    proven: &[Factor],
) -> Write {
    let mut w = budget::reserve(key, budget_names(factor), budget, now, guard.cond());
    for f in proven {
        w.update = budget_names(*f).clear(w.update);
    }
    w
}

/// Starts a new run of `factor`'s failures, if they are still as `seen` (clearing `proven`).
pub fn restart(
    key: Key,
    factor: Factor,
    seen: &Failures,
    now: i64,
    guard: Guard,
    proven: &[Factor],
) -> Write {
    let mut w = budget::restart(key, budget_names(factor), seen, now, guard.cond());
    for f in proven {
        w.update = budget_names(*f).clear(w.update);
    }
    w
}

/// The update that records a TOTP step as used (refusing it and every older one from now on),
/// activating a pending secret, and clearing the failure budgets of `clears`; applies only while
/// the authenticator is at `stage` and the step is newer than the last one accepted.
pub fn accept_totp(id: UserId, step: u64, stage: TotpStage, clears: &[Factor]) -> Write {
    let step_n = number(step);
    let mut update = Update::new().set(attr::TOTP_STEP, step_n);
    if stage == TotpStage::Pending {
        update = update.set(attr::TOTP_STATE, totp_state(Some(TotpStage::Active)));
    }
    for factor in clears {
        update = budget_names(*factor).clear(update);
    }
    let cond = Cond::And(vec![
        Guard::Totp(stage).cond(),
        Cond::missing_or(attr::TOTP_STEP, CmpOp::Lt, step_n),
    ]);
    Write::new(key(id), update, cond)
}

/// Stores a pending authenticator secret if the user has none yet.
pub fn begin_totp(id: UserId, sealed: Vec<u8>) -> Write {
    let update = set_totp(Update::new(), &Totp::Pending { sealed });
    let unset = Cond::And(vec![
        Cond::Exists,
        Cond::Or(vec![
            Cond::missing(attr::TOTP_STATE),
            Cond::eq(attr::TOTP_STATE, totp_state(None)),
        ]),
    ]);
    Write::new(key(id), update, unset)
}

fn set_totp(update: Update, totp: &Totp) -> Update {
    // The replay marker restarts with a new secret.
    let update = update
        .set(attr::TOTP_STATE, totp_state(totp.stage()))
        .remove(attr::TOTP_STEP);
    match totp.sealed() {
        Some(sealed) => update.set(attr::TOTP_SECRET, Value::B(sealed.to_vec())),
        None => update.remove(attr::TOTP_SECRET),
    }
}

/// The attribute of a code factor's state.
fn code_factor_attr(factor: Factor) -> Option<&'static str> {
    match factor {
        Factor::Email => Some(attr::EMAIL_OTP),
        Factor::Sms => Some(attr::SMS_OTP),
        Factor::Password | Factor::Totp => None,
    }
}

/// Moves a code factor (email or SMS) to `to` if it is in one of the states `from` (a missing
/// attribute is `Off`): of any number of parallel requests making the same move, one applies.
/// Moved to `Off`, the factor's failures start over.
/// `None` for factors that are not delivered by code.
pub fn code_factor_transition(
    id: UserId,
    factor: Factor,
    from: &[CodeFactor],
    to: CodeFactor,
    now: i64,
) -> Option<Write> {
    let name = code_factor_attr(factor)?;
    let mut any = Vec::new();
    for state in from {
        any.push(Cond::eq(name, code_factor_str(*state)));
        if *state == CodeFactor::Off {
            any.push(Cond::missing(name));
        }
    }
    let mut update = Update::new()
        .set(name, code_factor_str(to))
        .set(attr::UPDATED, now);
    if to == CodeFactor::Off {
        // Switched off, its failures start over (as an authenticator's do when removed).
        update = budget_names(factor).clear(update);
    }
    Some(Write::new(
        key(id),
        update,
        Cond::And(vec![Cond::Exists, Cond::Or(any)]),
    ))
}

/// That the profile still has this username and email (for a change of either, made in the
/// same transaction as the login pointers'.
pub fn logins_unchanged(user: &User) -> Cond {
    Cond::And(vec![
        Cond::Exists,
        Cond::eq(attr::USERNAME, user.username.as_str()),
        Cond::eq(attr::EMAIL, user.email.as_str()),
    ])
}

/// Removes the authenticator secret if it is active (the user switching the app off with one
/// of its codes): of parallel requests, one applies.
pub fn remove_active_totp(id: UserId, now: i64) -> Write {
    let update = budget_names(Factor::Totp).clear(set_totp(Update::new(), &Totp::None));
    Write::new(
        key(id),
        update.set(attr::UPDATED, now),
        Guard::Totp(TotpStage::Active).cond(),
    )
}

/// Changes to an existing profile, built up and applied as one conditional write.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    update: Update,
}

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn password_hash(mut self, phc: &str) -> Self {
        self.update = self.update.set(attr::PASSWORD, phc);
        self
    }

    pub fn must_reset_password(mut self, on: bool) -> Self {
        self.update = self.update.set(attr::RESET, on);
        self
    }

    pub fn active(mut self, on: bool) -> Self {
        self.update = self.update.set(attr::ACTIVE, on);
        self
    }

    pub fn tfa_enabled(mut self, on: bool) -> Self {
        self.update = self.update.set(attr::TFA, on);
        self
    }

    pub fn username(mut self, username: &str) -> Self {
        self.update = self.update.set(attr::USERNAME, username);
        self
    }

    pub fn email(mut self, email: &str) -> Self {
        self.update = self.update.set(attr::EMAIL, email);
        self
    }

    pub fn phone(mut self, phone: Option<&str>) -> Self {
        self.update = match phone {
            Some(p) => self.update.set(attr::PHONE, p),
            None => self.update.remove(attr::PHONE),
        };
        self
    }

    pub fn totp(mut self, totp: &Totp) -> Self {
        self.update = set_totp(self.update, totp);
        self
    }

    pub fn email_otp(mut self, f: CodeFactor) -> Self {
        self.update = self.update.set(attr::EMAIL_OTP, code_factor_str(f));
        self
    }

    pub fn sms_otp(mut self, f: CodeFactor) -> Self {
        self.update = self.update.set(attr::SMS_OTP, code_factor_str(f));
        self
    }

    /// Clears the failure budgets of `factors`.
    pub fn clear_budgets(mut self, factors: &[Factor]) -> Self {
        for factor in factors {
            self.update = budget_names(*factor).clear(self.update);
        }
        self
    }

    /// Moves to the next token generation: every token issued before is refused from now on.
    pub fn revoke_tokens(mut self) -> Self {
        self.update = self.update.add(attr::GEN, 1);
        self
    }

    /// The write, stamped with the time of the change, applying only to an existing user.
    pub fn write(self, id: UserId, now: i64) -> Write {
        Write::new(key(id), self.update.set(attr::UPDATED, now), Cond::Exists)
    }

    /// The write, stamped, applying only where `cond` holds.
    pub fn write_if(self, id: UserId, now: i64, cond: Cond) -> Write {
        Write::new(key(id), self.update.set(attr::UPDATED, now), cond)
    }

    /// The write without the change stamp (sign-in bookkeeping is not a change of the user).
    pub fn write_quietly(self, id: UserId) -> Write {
        Write::new(key(id), self.update, Cond::Exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        let budgets = Budgets {
            totp: Failures {
                count: 2,
                first_at: Some(80),
                last_at: Some(90),
                streak: 7,
            },
            ..Budgets::default()
        };
        User {
            id: 7,
            username: "Alice".into(),
            email: "alice@example.com".into(),
            role: Role::Admin,
            password_hash: "$argon2id$x".into(),
            store_id: 1,
            phone: Some("+4915112345678".into()),
            totp: Totp::Active {
                sealed: vec![1, 2, 3],
            },
            totp_last_step: Some(55),
            email_otp: CodeFactor::On,
            sms_otp: CodeFactor::Pending,
            tfa_enabled: true,
            must_reset_password: false,
            active: true,
            token_gen: 4,
            budgets,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn a_user_round_trips_through_an_item() {
        let u = user();
        assert_eq!(User::try_from(&Item::from(&u)).unwrap(), u);
        let mut bare = u.clone();
        bare.totp = Totp::None;
        bare.phone = None;
        bare.totp_last_step = None;
        bare.budgets = Budgets::default();
        assert_eq!(User::try_from(&Item::from(&bare)).unwrap(), bare);
    }

    /// The read skips the budgets when no attribute starts with `fail_`: each one, alone on a
    /// profile, is still read.
    #[test]
    fn every_budget_attribute_is_read_even_alone() {
        let mut clean = user();
        clean.budgets = Budgets::default();
        for factor in Factor::ALL {
            let names = budget_names(factor);
            let all = [
                Some(names.count),
                Some(names.first),
                Some(names.last),
                names.streak,
            ];
            for name in all.into_iter().flatten() {
                let mut item = Item::from(&clean);
                item.attrs.insert(name.to_owned(), Value::N(3));
                let read = *User::try_from(&item).unwrap().budgets.of(factor);
                assert_ne!(read, Failures::default(), "{name} was not read");
            }
        }
    }

    #[test]
    fn corrupt_items_are_errors_not_panics() {
        let mut item = Item::from(&user());
        item.attrs.remove(attr::TOTP_SECRET);
        assert!(User::try_from(&item).is_err());
        assert!(User::try_from(&Item::new(Key::new("USER#x", "PROFILE"))).is_err());
    }

    #[test]
    fn decoy_keys_are_no_users_and_spread() {
        let a = decoy_key("nobody@example.com");
        assert_eq!(a, decoy_key(" NoBody@example.com "), "per normalised login");
        assert_ne!(a, decoy_key("someone@example.com"));
        assert!(id_of(&a).is_err(), "no user id parses from a decoy key");
    }

    #[test]
    fn reservations_count_until_the_limit_then_restart_after_the_block() {
        let budget = Budget {
            max_failures: 2,
            window_secs: None,
            block_secs: 100,
        };
        let k = key(7);
        let mut item: Option<Item> = Some(Item::from(&user()));
        let mut reserve = |now: i64| {
            let w = reserve(
                k.clone(),
                Factor::Password,
                &budget,
                now,
                Guard::Exists,
                &[],
            );
            if w.cond.holds(item.as_ref()) {
                item = Some(w.update.apply(&k, item.as_ref()));
                true
            } else {
                false
            }
        };
        assert!(reserve(10));
        assert!(reserve(11));
        assert!(!reserve(12), "the third attempt is refused");
        let seen = User::try_from(item.as_ref().unwrap()).unwrap();
        let f = seen.budgets.password;
        assert_eq!((f.count, f.first_at, f.last_at), (2, Some(10), Some(11)));
        assert!(!budget::may_restart(&f, &budget, 110));
        assert!(budget::may_restart(&f, &budget, 111));
        let w = restart(k.clone(), Factor::Password, &f, 111, Guard::Exists, &[]);
        assert!(w.cond.holds(item.as_ref()));
        let after = User::try_from(&w.update.apply(&k, item.as_ref())).unwrap();
        assert_eq!(after.budgets.password.count, 1);
        assert_eq!(after.budgets.totp.count, 2, "other factors untouched");
    }

    #[test]
    fn a_windowed_budget_refuses_a_stale_run_so_it_restarts() {
        let budget = Budget {
            max_failures: 5,
            window_secs: Some(60),
            block_secs: 600,
        };
        let k = key(7);
        let item = Item::from(&user()); // totp run began at 80
        let w = reserve(k.clone(), Factor::Totp, &budget, 139, Guard::Exists, &[]);
        assert!(w.cond.holds(Some(&item)), "within the window");
        let w = reserve(k.clone(), Factor::Totp, &budget, 140, Guard::Exists, &[]);
        assert!(!w.cond.holds(Some(&item)), "the window has passed");
        assert!(budget::may_restart(&user().budgets.totp, &budget, 140));
    }

    #[test]
    fn guards_refuse_attempts_at_factors_the_user_lacks() {
        let item = Item::from(&user());
        let budget = Budget {
            max_failures: 6,
            window_secs: None,
            block_secs: 1800,
        };
        let pending = reserve(
            key(7),
            Factor::Totp,
            &budget,
            100,
            Guard::Totp(TotpStage::Pending),
            &[],
        );
        assert!(!pending.cond.holds(Some(&item)));
        let active = reserve(
            key(7),
            Factor::Totp,
            &budget,
            100,
            Guard::Totp(TotpStage::Active),
            &[],
        );
        assert!(active.cond.holds(Some(&item)));
    }

    #[test]
    fn totp_steps_are_accepted_once_and_clear_the_named_budgets() {
        let item = Item::from(&user()); // last step 55
        let old = accept_totp(7, 55, TotpStage::Active, &[Factor::Totp]);
        assert!(
            !old.cond.holds(Some(&item)),
            "a step at or before the last is refused"
        );
        let new = accept_totp(7, 56, TotpStage::Active, &[Factor::Totp]);
        assert!(new.cond.holds(Some(&item)));
        let after = User::try_from(&new.update.apply(&key(7), Some(&item))).unwrap();
        assert_eq!(after.totp_last_step, Some(56));
        assert_eq!(after.budgets.totp, Failures::default());
    }

    #[test]
    fn code_factor_transitions_apply_from_the_named_states_only() {
        let mut u = user(); // email on, sms pending
        u.email_otp = CodeFactor::Off;
        let item = Item::from(&u);
        let on =
            code_factor_transition(7, Factor::Email, &[CodeFactor::Off], CodeFactor::Pending, 5)
                .unwrap();
        assert!(on.cond.holds(Some(&item)));
        let mut bare = item.clone();
        bare.attrs.remove(attr::EMAIL_OTP);
        assert!(on.cond.holds(Some(&bare)), "a missing state is off");
        let after = User::try_from(&on.update.apply(&key(7), Some(&item))).unwrap();
        assert_eq!(after.email_otp, CodeFactor::Pending);
        assert!(!on.cond.holds(Some(&Item::from(&after))), "applies once");
        let sms = code_factor_transition(7, Factor::Sms, &[CodeFactor::Pending], CodeFactor::On, 5)
            .unwrap();
        assert!(sms.cond.holds(Some(&item)));
        assert!(code_factor_transition(7, Factor::Totp, &[], CodeFactor::On, 5).is_none());
        assert!(!on.cond.holds(None), "no user, no transition");
    }

    #[test]
    fn revoking_moves_the_generation() {
        let item = Item::from(&user());
        let w = Changes::new().revoke_tokens().write(7, 100);
        let after = User::try_from(&w.update.apply(&key(7), Some(&item))).unwrap();
        assert_eq!(after.token_gen, 5);
        assert_eq!(after.updated_at, 100);
    }
}
