//! Reading and changing accounts: what the admin CLI and the admin routes do.

use crate::app::App;
use crate::audit::{Audit, Event, Outcome};
use crate::crypto::totp::{self, TotpSecret};
use crate::crypto::{SecretString, qr};
use crate::store::{Cond, Item, Key, StoreError, Update};

use super::Fault;
use super::users::{
    self, InvalidUser, Role, Totp, User, UserId, attr, login_key, pointer_uid, profile_key,
};

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(#[from] InvalidUser),
    #[error("`{0}` is already taken")]
    LoginTaken(String),
    #[error("no such user")]
    NotFound,
    #[error("the authenticator app is already set up")]
    AlreadyConfigured,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Fault(Fault::Store(e))
    }
}

impl From<crate::crypto::CryptoError> for AccountError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        AccountError::Fault(Fault::Crypto(e))
    }
}

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

pub async fn get(app: &App, id: UserId) -> Result<Option<User>, StoreError> {
    let now = app.clock.now();
    match app.store.get(&profile_key(id), now).await? {
        Some(item) => Ok(Some(User::try_from(&item)?)),
        None => Ok(None),
    }
}

/// The user whose username or email is `login` (case-insensitive).
pub async fn find(app: &App, login: &str) -> Result<Option<User>, StoreError> {
    let now = app.clock.now();
    match app.store.get(&login_key(login), now).await? {
        Some(pointer) => get(app, pointer_uid(&pointer)?).await,
        None => Ok(None),
    }
}

async fn require(app: &App, login: &str) -> Result<User, AccountError> {
    find(app, login).await?.ok_or(AccountError::NotFound)
}

/// Allocates the next value of a counter (`COUNTER` / `name`).
pub async fn next_id(app: &App, name: &str) -> Result<u64, StoreError> {
    let item = app
        .store
        .update(
            &Key::new("COUNTER", name),
            Update::new().add("n", 1),
            Cond::Always,
            0,
        )
        .await?;
    item.num("n")
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| StoreError::Failure("counter without a value".into()))
}

pub async fn create(app: &App, new: NewUser, via: &'static str) -> Result<User, AccountError> {
    users::check_email(&new.email)?;
    users::check_username(&new.username, &new.email)?;
    users::check_password(new.password.expose())?;
    if let Some(phone) = &new.phone {
        users::check_phone(phone)?;
    }
    let now = app.clock.now();
    // Refuse taken logins before spending an id (the transaction re-checks atomically).
    for login in [&new.username, &new.email] {
        if app.store.get(&login_key(login), now).await?.is_some() {
            return Err(AccountError::LoginTaken(login.clone()));
        }
    }
    let hash = hash_password(app, &new.password).await?;
    let id = next_id(app, "USER_ID").await?;
    let totp = match &new.totp_secret {
        Some(secret) => Totp::Active {
            sealed: app.keys.sealer.seal(
                secret.as_bytes(),
                &users::totp_aad(id),
                app.rng.as_ref(),
            )?,
        },
        None => Totp::None,
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
        tfa_enabled: true,
        must_reset_password: false,
        active: true,
        tokens_revoked_at: None,
        attempts: 0,
        attempt_at: None,
        created_at: now,
        updated_at: now,
    };
    match app.store.transact(users::create_ops(&user), now).await {
        Ok(()) => {}
        Err(StoreError::TxConditionFailed { index }) => {
            let login = if index == 0 {
                &user.username
            } else {
                &user.email
            };
            return Err(AccountError::LoginTaken(login.clone()));
        }
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

pub async fn list(app: &App, limit: usize) -> Result<Vec<User>, StoreError> {
    let now = app.clock.now();
    let mut users = app
        .store
        .scan_sk("PROFILE", limit, now)
        .await?
        .iter()
        .map(User::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    users.sort_by_key(|u| u.id);
    Ok(users)
}

/// Applies `update` to an existing user's profile and records who changed it.
async fn change(
    app: &App,
    user: &User,
    update: Update,
    event: Event,
    via: &'static str,
    reason: &'static str,
) -> Result<User, AccountError> {
    let now = app.clock.now();
    let update = update.set(attr::UPDATED, now);
    match app
        .store
        .update(&user.key(), update, Cond::Exists, now)
        .await
    {
        Ok(item) => {
            Audit::new(event, Outcome::Success, via)
                .user(user.id)
                .reason(reason)
                .emit();
            Ok(User::try_from(&item)?)
        }
        Err(StoreError::ConditionFailed { .. }) => Err(AccountError::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_password(
    app: &App,
    login: &str,
    password: &SecretString,
    via: &'static str,
) -> Result<User, AccountError> {
    users::check_password(password.expose())?;
    let user = require(app, login).await?;
    let hash = hash_password(app, password).await?;
    let update = Update::new()
        .set(attr::PASSWORD, hash)
        .set(attr::RESET, false)
        .set(attr::ATTEMPTS, 0);
    change(app, &user, update, Event::UserChanged, via, "password_set").await
}

pub async fn require_password_reset(
    app: &App,
    login: &str,
    via: &'static str,
) -> Result<User, AccountError> {
    let user = require(app, login).await?;
    change(
        app,
        &user,
        Update::new().set(attr::RESET, true),
        Event::UserChanged,
        via,
        "password_reset_required",
    )
    .await
}

pub async fn unlock(app: &App, login: &str, via: &'static str) -> Result<User, AccountError> {
    let user = require(app, login).await?;
    change(
        app,
        &user,
        Update::new().set(attr::ATTEMPTS, 0),
        Event::UserChanged,
        via,
        "unlocked",
    )
    .await
}

pub async fn set_phone(
    app: &App,
    login: &str,
    phone: Option<&str>,
    via: &'static str,
) -> Result<User, AccountError> {
    let user = require(app, login).await?;
    let update = match phone {
        Some(phone) => {
            users::check_phone(phone)?;
            Update::new().set(attr::PHONE, phone)
        }
        None => Update::new().remove(attr::PHONE),
    };
    change(app, &user, update, Event::FactorEnrolled, via, "phone_set").await
}

pub async fn set_two_factor(
    app: &App,
    login: &str,
    enabled: bool,
    via: &'static str,
) -> Result<User, AccountError> {
    let user = require(app, login).await?;
    let reason = if enabled {
        "2fa_enabled"
    } else {
        "2fa_disabled"
    };
    change(
        app,
        &user,
        Update::new().set(attr::TFA, enabled),
        Event::UserChanged,
        via,
        reason,
    )
    .await
}

pub async fn set_active(
    app: &App,
    login: &str,
    active: bool,
    via: &'static str,
) -> Result<User, AccountError> {
    let user = require(app, login).await?;
    let reason = if active { "enabled" } else { "disabled" };
    change(
        app,
        &user,
        Update::new().set(attr::ACTIVE, active),
        Event::UserChanged,
        via,
        reason,
    )
    .await
}

/// Revokes every token issued to the user up to now.
pub async fn revoke_tokens(app: &App, id: UserId, via: &'static str) -> Result<(), AccountError> {
    let user = get(app, id).await?.ok_or(AccountError::NotFound)?;
    let now = app.clock.now();
    change(
        app,
        &user,
        Update::new().set(attr::REVOKED, now),
        Event::TokensRevoked,
        via,
        "",
    )
    .await?;
    Ok(())
}

pub async fn revoke_tokens_by_login(
    app: &App,
    login: &str,
    via: &'static str,
) -> Result<(), AccountError> {
    let user = require(app, login).await?;
    revoke_tokens(app, user.id, via).await
}

/// An authenticator secret being shown to its owner.
pub struct TotpSetup {
    pub secret: TotpSecret,
    pub uri: String,
}

impl TotpSetup {
    fn new(app: &App, user: &User, secret: TotpSecret) -> Self {
        let uri = totp::otpauth_uri(&secret, &app.config.issuer, &user.username);
        Self { secret, uri }
    }

    pub fn qr_png(&self) -> Result<Vec<u8>, Fault> {
        qr::png(&self.uri).map_err(Fault::Crypto)
    }
}

/// Enrolls an authenticator secret (given, or generated) as the user's active factor: the admin
/// hands the URI to the user. Replaces any previous secret.
pub async fn enroll_totp(
    app: &App,
    login: &str,
    secret: Option<TotpSecret>,
    via: &'static str,
) -> Result<TotpSetup, AccountError> {
    let user = require(app, login).await?;
    let secret = match secret {
        Some(s) => s,
        None => TotpSecret::generate(app.rng.as_ref())?,
    };
    let sealed = app
        .keys
        .sealer
        .seal(secret.as_bytes(), &user.aad(), app.rng.as_ref())?;
    let update = users::set_totp(Update::new(), &Totp::Active { sealed });
    change(app, &user, update, Event::FactorEnrolled, via, "totp").await?;
    Ok(TotpSetup::new(app, &user, secret))
}

/// Removes the user's authenticator secret; the next sign-in starts set-up again.
pub async fn reset_totp(app: &App, id: UserId, via: &'static str) -> Result<(), AccountError> {
    let user = get(app, id).await?.ok_or(AccountError::NotFound)?;
    change(
        app,
        &user,
        users::set_totp(Update::new(), &Totp::None),
        Event::FactorReset,
        via,
        "totp",
    )
    .await?;
    Ok(())
}

/// First-time set-up by the user: the pending secret (created on first call, the same one on
/// later calls until confirmed) and its URI.
pub async fn begin_totp_setup(app: &App, id: UserId) -> Result<TotpSetup, AccountError> {
    for _ in 0..2 {
        let user = get(app, id).await?.ok_or(AccountError::NotFound)?;
        match &user.totp {
            Totp::Active { .. } => return Err(AccountError::AlreadyConfigured),
            Totp::Pending { sealed } => {
                let bytes = app.keys.sealer.open(sealed, &user.aad())?;
                let secret = TotpSecret::from_bytes(bytes.expose().to_vec())?;
                return Ok(TotpSetup::new(app, &user, secret));
            }
            Totp::None => {
                let secret = TotpSecret::generate(app.rng.as_ref())?;
                let sealed =
                    app.keys
                        .sealer
                        .seal(secret.as_bytes(), &user.aad(), app.rng.as_ref())?;
                let update = users::set_totp(Update::new(), &Totp::Pending { sealed });
                let now = app.clock.now();
                let unset = Cond::And(vec![
                    Cond::Exists,
                    Cond::Or(vec![
                        Cond::missing(attr::TOTP_STATE),
                        Cond::eq(attr::TOTP_STATE, "none"),
                    ]),
                ]);
                match app.store.update(&user.key(), update, unset, now).await {
                    Ok(_) => return Ok(TotpSetup::new(app, &user, secret)),
                    // Another request created the pending secret first: show that one.
                    Err(StoreError::ConditionFailed { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Err(AccountError::Fault(Fault::Store(StoreError::Busy(
        "totp set-up raced".into(),
    ))))
}

async fn hash_password(app: &App, password: &SecretString) -> Result<String, Fault> {
    let hasher = app.hasher.clone();
    let rng = app.rng.clone();
    let password = password.clone();
    tokio::task::spawn_blocking(move || hasher.hash(password.expose(), rng.as_ref()))
        .await
        .map_err(|_| Fault::Task)?
        .map_err(Fault::Crypto)
}

/// Reads a raw item; for tests and diagnostics.
pub async fn raw_profile(app: &App, id: UserId) -> Result<Option<Item>, StoreError> {
    app.store.get(&profile_key(id), app.clock.now()).await
}
