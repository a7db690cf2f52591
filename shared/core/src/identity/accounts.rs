//! Reading and changing accounts: what the admin CLI and the admin routes do.
//!
//! Every change of a credential — a new password, a forced reset, a factor enrolled, reset or
//! switched off, the account disabled — moves the user to a new token generation in the same
//! write, so every token issued before it (access tokens, refresh families, emailed set-up
//! tokens) is refused from then on, and every token issued after it works.

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::aead::Sealer;
use crate::crypto::password::PasswordHasher;
use crate::crypto::totp::{self, TotpSecret};
use crate::crypto::{SecretString, qr};
use crate::ports::Rng;
use crate::records::{counter, login, profile};
use crate::store::StoreError;

use super::users::{
    self, Budgets, CodeFactor, Factor, MAX_LOGIN_BYTES, Role, Totp, User, UserId, totp_aad,
};
use super::{Db, Error, Fault, Taken};

/// A user to create.
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password: SecretString,
    pub role: Role,
    /// An authenticator secret to enroll right away (active at once).
    pub totp_secret: Option<TotpSecret>,
    pub phone: Option<String>,
    pub store_id: u32,
}

pub async fn get(db: Db<'_>, id: UserId) -> Result<Option<User>, StoreError> {
    match db.get(&profile::key(id)).await? {
        Some(item) => Ok(Some(User::try_from(&item)?)),
        None => Ok(None),
    }
}

/// The user whose username or email is `login` (case-insensitive).
pub async fn find(db: Db<'_>, login_name: &str) -> Result<Option<User>, StoreError> {
    if login_name.len() > MAX_LOGIN_BYTES {
        return Ok(None);
    }
    match db.get(&login::key(login_name)).await? {
        Some(pointer) => get(db, login::uid_of(&pointer)?).await,
        None => Ok(None),
    }
}

/// [`find`], for a flow whose answer must not tell whether the login is an account's (a reset
/// or a link asked for by email): an unknown login — an over-long one too — costs the reads a
/// known one does, a login pointer and a profile, decoys standing in for what is not there.
pub async fn find_alike(db: Db<'_>, login_name: &str) -> Result<Option<User>, StoreError> {
    let decoy = profile::decoy_key(login_name);
    let pointer = if login_name.len() > MAX_LOGIN_BYTES {
        // No key may be made of it: the decoy stands in for the pointer's read as well.
        db.get(&decoy).await?
    } else {
        db.get(&login::key(login_name)).await?
    };
    match pointer {
        Some(pointer) if login_name.len() <= MAX_LOGIN_BYTES => {
            get(db, login::uid_of(&pointer)?).await
        }
        _ => {
            db.get(&decoy).await?;
            Ok(None)
        }
    }
}

/// Who a self-service email asked for by `email` (a password-reset code, a login link) may go
/// to: the active customer whose email it is (not a username typed into the field), if
/// `eligible` (e.g. of the store asked for) — found as [`find_alike`] finds, at the cost of a
/// known login for an unknown one. Every dialect that emails on request asks here.
pub async fn self_service_customer(
    db: Db<'_>,
    email: &str,
    eligible: &(dyn Fn(&User) -> bool + Sync),
) -> Result<Option<User>, StoreError> {
    Ok(find_alike(db, email).await?.filter(|u| {
        u.role == Role::Customer
            && u.active
            && users::normalize_login(&u.email) == users::normalize_login(email)
            && eligible(u)
    }))
}

async fn require(db: Db<'_>, login_name: &str) -> Result<User, Error> {
    find(db, login_name).await?.ok_or(Error::NotFound)
}

/// Allocates the next value of a counter.
pub async fn next_id(db: Db<'_>, name: &str) -> Result<u64, StoreError> {
    counter::allocated(&db.apply(counter::next(name)).await?)
}

pub async fn create(
    db: Db<'_>,
    hasher: &PasswordHasher,
    sealer: &Sealer,
    rng: &dyn Rng,
    new: NewUser,
    via: &'static str,
) -> Result<User, Error> {
    users::check_email(&new.email)?;
    users::check_username(&new.username, &new.email)?;
    users::check_password(new.password.expose())?;
    if let Some(phone) = &new.phone {
        users::check_phone(phone)?;
    }
    // Refuse taken logins before spending an id (the transaction re-checks atomically).
    for name in [&new.username, &new.email] {
        if db.get(&login::key(name)).await?.is_some() {
            return Err(Error::Taken(Taken::Login));
        }
    }
    let hash = hash_password(hasher, rng, &new.password).await?;
    let id = next_id(db, counter::USER_ID).await?;
    let totp = match &new.totp_secret {
        Some(secret) => Totp::Active {
            sealed: sealer.seal(secret.as_bytes(), &totp_aad(id), rng)?,
        },
        None => Totp::None,
    };
    let now = db.now();
    // A number the admin sets is vouched for: SMS codes may go to it.
    let sms_otp = if new.phone.is_some() {
        CodeFactor::On
    } else {
        CodeFactor::Off
    };
    let user = User {
        id,
        username: new.username.trim().to_owned(),
        email: new.email.trim().to_owned(),
        role: new.role,
        password_hash: hash,
        store_id: new.store_id,
        phone: new.phone,
        totp,
        totp_last_step: None,
        email_otp: CodeFactor::Off,
        sms_otp,
        tfa_enabled: true,
        must_reset_password: false,
        active: true,
        token_gen: 0,
        budgets: Budgets::default(),
        created_at: now,
        updated_at: now,
    };
    match db.store.transact(login::create_ops(&user), now).await {
        Ok(()) => {}
        Err(StoreError::TxConditionFailed { .. }) => return Err(Error::Taken(Taken::Login)),
        Err(e) => return Err(e.into()),
    }
    Audit::new(Event::UserCreated, Outcome::Success, via)
        .user(id)
        .emit();
    if user.totp.is_active() {
        Audit::new(Event::FactorEnrolled, Outcome::Success, via)
            .user(id)
            .reason("totp")
            .emit();
    }
    Ok(user)
}

pub async fn list(db: Db<'_>, limit: usize) -> Result<Vec<User>, StoreError> {
    let mut users = db
        .store
        .scan_sk(profile::SORT_KEY, limit, db.now())
        .await?
        .iter()
        .map(User::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    users.sort_by_key(|u| u.id);
    Ok(users)
}

/// Applies `changes` to an existing user's profile and records who changed it.
async fn change(
    db: Db<'_>,
    id: UserId,
    changes: profile::Changes,
    event: Event,
    via: &'static str,
    reason: &'static str,
) -> Result<User, Error> {
    match db.apply(changes.write(id, db.now())).await {
        Ok(item) => {
            Audit::new(event, Outcome::Success, via)
                .user(id)
                .reason(reason)
                .emit();
            Ok(User::try_from(&item)?)
        }
        Err(StoreError::ConditionFailed { .. }) => Err(Error::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Sets a new password: clears a required reset and the password's failures, and revokes every
/// earlier token.
pub async fn set_password(
    db: Db<'_>,
    hasher: &PasswordHasher,
    rng: &dyn Rng,
    id: UserId,
    password: &SecretString,
    via: &'static str,
) -> Result<User, Error> {
    users::check_password(password.expose())?;
    let hash = hash_password(hasher, rng, password).await?;
    let changes = profile::Changes::new()
        .password_hash(&hash)
        .must_reset_password(false)
        .clear_budgets(&[Factor::Password])
        .revoke_tokens();
    change(db, id, changes, Event::UserChanged, via, "password_set").await
}

/// [`set_password`] by username or email.
pub async fn set_password_by_login(
    db: Db<'_>,
    hasher: &PasswordHasher,
    rng: &dyn Rng,
    login_name: &str,
    password: &SecretString,
    via: &'static str,
) -> Result<User, Error> {
    users::check_password(password.expose())?;
    let user = require(db, login_name).await?;
    set_password(db, hasher, rng, user.id, password, via).await
}

/// Requires a new password before the next sign-in, and signs the user out everywhere.
pub async fn require_password_reset(
    db: Db<'_>,
    login_name: &str,
    via: &'static str,
) -> Result<User, Error> {
    let user = require(db, login_name).await?;
    let changes = profile::Changes::new()
        .must_reset_password(true)
        .revoke_tokens();
    change(
        db,
        user.id,
        changes,
        Event::UserChanged,
        via,
        "password_reset_required",
    )
    .await
}

/// Clears the failure budgets of a blocked account.
pub async fn unlock(db: Db<'_>, login_name: &str, via: &'static str) -> Result<User, Error> {
    let user = require(db, login_name).await?;
    let changes = profile::Changes::new().clear_budgets(&Factor::ALL);
    change(db, user.id, changes, Event::UserChanged, via, "unlocked").await
}

/// Sets or removes the phone number for SMS codes, as an admin: the number is taken as verified
/// (a factor change: earlier tokens die).
pub async fn set_phone(
    db: Db<'_>,
    login_name: &str,
    phone: Option<&str>,
    via: &'static str,
) -> Result<User, Error> {
    if let Some(phone) = phone {
        users::check_phone(phone)?;
    }
    let user = require(db, login_name).await?;
    // A new number re-binds the factor: its failures (and a disabling streak) start over.
    let mut changes = profile::Changes::new()
        .phone(phone)
        .clear_budgets(&[Factor::Sms])
        .revoke_tokens();
    // A number the admin sets is vouched for (SMS codes may go to it); none switches them off.
    changes = changes.sms_otp(if phone.is_some() {
        CodeFactor::On
    } else {
        CodeFactor::Off
    });
    let event = if phone.is_some() {
        Event::FactorEnrolled
    } else {
        Event::FactorReset
    };
    change(db, user.id, changes, event, via, "phone").await
}

/// Binds a phone number the user proved they hold (a code sent to it came back): SMS codes may
/// go to it from now on. Its failures start over. Adding a factor revokes nothing.
pub async fn confirm_phone(
    db: Db<'_>,
    id: UserId,
    phone: &str,
    via: &'static str,
) -> Result<User, Error> {
    users::check_phone(phone)?;
    let changes = profile::Changes::new()
        .phone(Some(phone))
        .sms_otp(CodeFactor::On)
        .clear_budgets(&[Factor::Sms]);
    change(db, id, changes, Event::FactorEnrolled, via, "sms").await
}

/// Switches the second factor on or off for one user (either way, earlier tokens die: they were
/// issued under the other rule).
pub async fn set_two_factor(
    db: Db<'_>,
    login_name: &str,
    enabled: bool,
    via: &'static str,
) -> Result<User, Error> {
    let user = require(db, login_name).await?;
    let reason = if enabled {
        "2fa_enabled"
    } else {
        "2fa_disabled"
    };
    let changes = profile::Changes::new().tfa_enabled(enabled).revoke_tokens();
    change(db, user.id, changes, Event::UserChanged, via, reason).await
}

/// Enables or disables an account; disabling revokes every token.
pub async fn set_active(
    db: Db<'_>,
    login_name: &str,
    active: bool,
    via: &'static str,
) -> Result<User, Error> {
    let user = require(db, login_name).await?;
    let (changes, reason) = if active {
        (profile::Changes::new().active(true), "enabled")
    } else {
        (
            profile::Changes::new().active(false).revoke_tokens(),
            "disabled",
        )
    };
    change(db, user.id, changes, Event::UserChanged, via, reason).await
}

/// Revokes every token issued to the user so far (and none issued after).
pub async fn revoke_tokens(db: Db<'_>, id: UserId, via: &'static str) -> Result<(), Error> {
    change(
        db,
        id,
        profile::Changes::new().revoke_tokens(),
        Event::TokensRevoked,
        via,
        "",
    )
    .await?;
    Ok(())
}

pub async fn revoke_tokens_by_login(
    db: Db<'_>,
    login_name: &str,
    via: &'static str,
) -> Result<(), Error> {
    let user = require(db, login_name).await?;
    revoke_tokens(db, user.id, via).await
}

/// Moves the user's email or SMS code factor to `to`, if it is in one of the states `from`, in
/// one conditional write (so of parallel requests making the same move, one does). `Ok(None)`:
/// the factor was in another state, nothing changed. Turning a factor on or off this way is the
/// user's own doing, proven with a code of it: it revokes no token (an admin's reset does).
pub async fn set_code_factor(
    db: Db<'_>,
    id: UserId,
    factor: Factor,
    from: &[CodeFactor],
    to: CodeFactor,
    via: &'static str,
) -> Result<Option<User>, Error> {
    let write = profile::code_factor_transition(id, factor, from, to, db.now())
        .ok_or(Error::NotConfigured)?;
    let event = match to {
        CodeFactor::On => Event::FactorEnrolled,
        CodeFactor::Off => Event::FactorReset,
        CodeFactor::Pending => Event::UserChanged,
    };
    move_factor(db, id, write, event, factor, via).await
}

/// Applies a factor's move (`write`, conditional on the state it leaves) and audits it as
/// `event`. `Ok(None)`: the factor was not in that state, nothing changed.
async fn move_factor(
    db: Db<'_>,
    id: UserId,
    write: crate::store::Write,
    event: Event,
    factor: Factor,
    via: &'static str,
) -> Result<Option<User>, Error> {
    match db.apply(write).await {
        Ok(item) => {
            Audit::new(event, Outcome::Success, via)
                .user(id)
                .reason(factor.as_str())
                .emit();
            Ok(Some(User::try_from(&item)?))
        }
        Err(StoreError::ConditionFailed { current: Some(_) }) => Ok(None),
        Err(StoreError::ConditionFailed { current: None }) => Err(Error::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Switches one of the user's second factors off — the user's own doing, proven with a fresh
/// code of that factor — in one conditional write, so of parallel requests one does. Every
/// dialect switches a factor off through here, under one rule: it revokes no token (the
/// sessions were opened with the factor proven, and the same code would switch it off from any
/// of them); an administrator's reset ([`reset_totp`]) revokes every one. The phone number
/// stays on file. `Ok(None)`: the factor was not on, nothing changed.
pub async fn switch_off(
    db: Db<'_>,
    id: UserId,
    factor: Factor,
    via: &'static str,
) -> Result<Option<User>, Error> {
    let write = match factor {
        Factor::Totp => profile::remove_active_totp(id, db.now()),
        Factor::Email | Factor::Sms => {
            return set_code_factor(db, id, factor, &[CodeFactor::On], CodeFactor::Off, via).await;
        }
        Factor::Password => return Err(Error::NotConfigured),
    };
    move_factor(db, id, write, Event::FactorReset, factor, via).await
}

/// A change of a user's contact details by the user (`phone`: `Some(None)` removes it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Contact<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<Option<&'a str>>,
}

/// Changes the user's email (and, where the username is the email, the username with it) and
/// phone number, claiming the new login in the same transaction that gives up the old one.
/// A new or removed phone number switches SMS codes off (a new one is proven by activating
/// them again). Made by the user with a second factor, this revokes no token.
pub async fn change_contact(
    db: Db<'_>,
    id: UserId,
    contact: Contact<'_>,
    via: &'static str,
) -> Result<User, Error> {
    if let Some(email) = contact.email {
        users::check_email(email.trim())?;
    }
    if let Some(Some(phone)) = contact.phone {
        users::check_phone(phone)?;
    }
    for _ in 0..3 {
        let user = get(db, id).await?.ok_or(Error::NotFound)?;
        let mut changes = profile::Changes::new();
        if let Some(phone) = contact.phone
            && phone != user.phone.as_deref()
        {
            // A number nobody has proven yet: SMS codes stop until a code sent to it comes
            // back (the factor's activation), so a changed number never receives them unproven.
            changes = changes.phone(phone).sms_otp(CodeFactor::Off);
        }
        let email = contact
            .email
            .map(str::trim)
            .filter(|e| users::normalize_login(e) != users::normalize_login(&user.email));
        let Some(email) = email else {
            return change(db, id, changes, Event::UserChanged, via, "contact").await;
        };
        let username =
            if users::normalize_login(&user.username) == users::normalize_login(&user.email) {
                email.to_owned()
            } else {
                user.username.clone()
            };
        users::check_username(&username, email)?;
        let write = changes.username(&username).email(email).write_if(
            id,
            db.now(),
            profile::logins_unchanged(&user),
        );
        let ops = login::change_ops(&user, &username, email, write);
        let last = ops.len().saturating_sub(1);
        let claimed = |index: usize| matches!(ops.get(index), Some(crate::store::TxOp::Put { .. }));
        match db.store.transact(ops.clone(), db.now()).await {
            Ok(()) => {
                Audit::new(Event::UserChanged, Outcome::Success, via)
                    .user(id)
                    .reason("contact")
                    .emit();
                return get(db, id).await?.ok_or(Error::NotFound);
            }
            Err(StoreError::TxConditionFailed { index }) if claimed(index) => {
                return Err(Error::Taken(Taken::Login));
            }
            // The profile or a pointer changed under us: read again.
            Err(StoreError::TxConditionFailed { index }) if index <= last => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Busy("contact change raced".into()).into())
}

/// Deletes a user: the profile and its login pointers. Every token of theirs stops working (a
/// dialect may still tell a holder of one that the user is gone).
pub async fn delete(db: Db<'_>, id: UserId, via: &'static str) -> Result<(), Error> {
    for _ in 0..3 {
        let user = get(db, id).await?.ok_or(Error::NotFound)?;
        match db.store.transact(login::delete_ops(&user), db.now()).await {
            Ok(()) => {
                Audit::new(Event::UserDeleted, Outcome::Success, via)
                    .user(id)
                    .emit();
                return Ok(());
            }
            Err(StoreError::TxConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Busy("delete raced".into()).into())
}

/// Switches every second factor of the user off (email and SMS codes, the authenticator app):
/// what an admin does for a user who lost theirs. Revokes every earlier token.
pub async fn reset_second_factors(
    db: Db<'_>,
    id: UserId,
    via: &'static str,
) -> Result<User, Error> {
    let changes = profile::Changes::new()
        .email_otp(CodeFactor::Off)
        .sms_otp(CodeFactor::Off)
        .totp(&Totp::None)
        .clear_budgets(&[Factor::Totp, Factor::Email, Factor::Sms])
        .revoke_tokens();
    change(db, id, changes, Event::FactorReset, via, "all").await
}

/// An authenticator secret being shown to its owner.
pub struct TotpSetup {
    pub secret: TotpSecret,
    pub uri: String,
}

impl TotpSetup {
    pub fn new(issuer: &str, user: &User, secret: TotpSecret) -> Self {
        let uri = totp::otpauth_uri(&secret, issuer, &user.username);
        Self { secret, uri }
    }

    pub fn qr_png(&self) -> Result<Vec<u8>, Fault> {
        qr::png(&self.uri).map_err(Fault::Crypto)
    }
}

/// Enrolls an authenticator secret (given, or generated) as the user's active factor: the admin
/// hands the URI to the user. Replaces any previous secret, and revokes every earlier token.
pub async fn enroll_totp(
    db: Db<'_>,
    sealer: &Sealer,
    rng: &dyn Rng,
    issuer: &str,
    login_name: &str,
    secret: Option<TotpSecret>,
    via: &'static str,
) -> Result<TotpSetup, Error> {
    let user = require(db, login_name).await?;
    let secret = match secret {
        Some(s) => s,
        None => TotpSecret::generate(rng)?,
    };
    let sealed = sealer.seal(secret.as_bytes(), &totp_aad(user.id), rng)?;
    let changes = profile::Changes::new()
        .totp(&Totp::Active { sealed })
        .clear_budgets(&[Factor::Totp])
        .revoke_tokens();
    change(db, user.id, changes, Event::FactorEnrolled, via, "totp").await?;
    Ok(TotpSetup::new(issuer, &user, secret))
}

/// Removes the user's authenticator secret (the next sign-in starts set-up again) and revokes
/// every earlier token, pending set-up tokens included.
pub async fn reset_totp(db: Db<'_>, id: UserId, via: &'static str) -> Result<(), Error> {
    let changes = profile::Changes::new()
        .totp(&Totp::None)
        .clear_budgets(&[Factor::Totp])
        .revoke_tokens();
    change(db, id, changes, Event::FactorReset, via, "totp").await?;
    Ok(())
}

/// First-time set-up by the user: the pending secret (created on first call, the same one on
/// later calls until confirmed) and its URI.
pub async fn begin_totp_setup(
    db: Db<'_>,
    sealer: &Sealer,
    rng: &dyn Rng,
    issuer: &str,
    id: UserId,
) -> Result<TotpSetup, Error> {
    for _ in 0..2 {
        let user = get(db, id).await?.ok_or(Error::NotFound)?;
        match &user.totp {
            Totp::Active { .. } => return Err(Error::AlreadyConfigured),
            Totp::Pending { sealed } => {
                let bytes = sealer.open(sealed, &totp_aad(user.id))?;
                let secret = TotpSecret::from_bytes(bytes.expose().to_vec())?;
                return Ok(TotpSetup::new(issuer, &user, secret));
            }
            Totp::None => {
                let secret = TotpSecret::generate(rng)?;
                let sealed = sealer.seal(secret.as_bytes(), &totp_aad(user.id), rng)?;
                match db.apply(profile::begin_totp(user.id, sealed)).await {
                    Ok(_) => return Ok(TotpSetup::new(issuer, &user, secret)),
                    // Another request created the pending secret first: show that one.
                    Err(StoreError::ConditionFailed { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(StoreError::Busy("totp set-up raced".into()).into())
}

async fn hash_password(
    hasher: &PasswordHasher,
    rng: &dyn Rng,
    password: &SecretString,
) -> Result<String, Fault> {
    // The salt is drawn here, on the caller's thread: the Rng port is borrowed, not shared.
    let salt_source = crate::crypto::password::Salt::draw(rng)?;
    let password = password.clone();
    hasher
        .slot()
        .await?
        .run(move |hasher| hasher.hash_with_salt(password.expose(), &salt_source))
        .await
        .map_err(|_| Fault::Task)?
        .map_err(Fault::Crypto)
}
