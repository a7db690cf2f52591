//! Users and their factors, and how they are stored.
//!
//! Items (see `infra/TABLE.md`):
//! - `USER#<id>` / `PROFILE`: the [`User`], including the attempt counter and the TOTP replay
//!   marker, so that a sign-in reads and reserves in one conditional write.
//! - `LOGIN#<username or email, lower-cased>` / `LOGIN`: `uid`, a unique pointer to the user.
//! - `COUNTER` / `USER_ID`: the last allocated user id.

use std::fmt;

use crate::store::{Cond, Item, Key, StoreError, TxOp, Update, Value};

pub type UserId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "customer" => Some(Role::Customer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a user's authenticator-app factor. The secret is sealed (AEAD, bound to the
/// user id) and only opened to verify a code or show it during setup.
#[derive(Clone, PartialEq, Eq)]
pub enum Totp {
    None,
    /// Set up but not yet confirmed with a code.
    Pending {
        sealed: Vec<u8>,
    },
    Active {
        sealed: Vec<u8>,
    },
}

impl Totp {
    pub fn is_active(&self) -> bool {
        matches!(self, Totp::Active { .. })
    }

    pub fn sealed(&self) -> Option<&[u8]> {
        match self {
            Totp::None => None,
            Totp::Pending { sealed } | Totp::Active { sealed } => Some(sealed),
        }
    }

    fn state(&self) -> &'static str {
        match self {
            Totp::None => "none",
            Totp::Pending { .. } => "pending",
            Totp::Active { .. } => "active",
        }
    }
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state())
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub store_id: u32,
    pub phone: Option<String>,
    pub totp: Totp,
    /// The last TOTP step accepted: codes of this step or older are refused.
    pub totp_last_step: Option<u64>,
    /// Per-user switch; when false the user signs in without a second factor.
    pub tfa_enabled: bool,
    /// The admin asked for a new password before the next sign-in.
    pub must_reset_password: bool,
    pub active: bool,
    /// Tokens issued at or before this Unix second are refused.
    pub tokens_revoked_at: Option<i64>,
    /// Sign-in attempts (password or code) reserved since the last success.
    pub attempts: u32,
    /// When the last attempt was reserved.
    pub attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("totp", &self.totp)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether sign-in must pass a second factor, given the deployment's policy.
    pub fn needs_second_factor(&self, policy_requires: bool) -> bool {
        policy_requires && self.tfa_enabled
    }

    /// Whether a token issued at `iat` (Unix seconds) has been revoked.
    pub fn revoked(&self, iat: i64) -> bool {
        self.tokens_revoked_at.is_some_and(|at| iat <= at)
    }

    /// Whether the account is locked at `now` under the given policy.
    pub fn locked(&self, now: i64, max_attempts: u32, lock_secs: i64) -> bool {
        self.attempts >= max_attempts
            && self
                .attempt_at
                .is_some_and(|at| at.saturating_add(lock_secs) > now)
    }

    pub fn key(&self) -> Key {
        profile_key(self.id)
    }

    pub fn aad(&self) -> Vec<u8> {
        totp_aad(self.id)
    }
}

/// What the sealed TOTP secret is bound to.
pub fn totp_aad(id: UserId) -> Vec<u8> {
    format!("latchkey:totp:{id}").into_bytes()
}

pub fn profile_key(id: UserId) -> Key {
    Key::new(format!("USER#{id}"), "PROFILE")
}

pub fn login_key(login: &str) -> Key {
    Key::new(format!("LOGIN#{}", normalize_login(login)), "LOGIN")
}

pub fn user_id_counter_key() -> Key {
    Key::new("COUNTER", "USER_ID")
}

pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

// Attribute names of the profile item.
pub mod attr {
    pub const USERNAME: &str = "username";
    pub const EMAIL: &str = "email";
    pub const ROLE: &str = "role";
    pub const PASSWORD: &str = "password_hash";
    pub const STORE_ID: &str = "store_id";
    pub const PHONE: &str = "phone";
    pub const TOTP_STATE: &str = "totp_state";
    pub const TOTP_SECRET: &str = "totp_secret";
    pub const TOTP_STEP: &str = "totp_step";
    pub const TFA: &str = "tfa_enabled";
    pub const RESET: &str = "must_reset_password";
    pub const ACTIVE: &str = "active";
    pub const REVOKED: &str = "tokens_revoked_at";
    pub const ATTEMPTS: &str = "attempts";
    pub const ATTEMPT_AT: &str = "attempt_at";
    pub const CREATED: &str = "created_at";
    pub const UPDATED: &str = "updated_at";
    pub const UID: &str = "uid";
}

fn corrupt(key: &Key, what: &str) -> StoreError {
    StoreError::Failure(format!("item {key}: {what}"))
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl TryFrom<&Item> for User {
    type Error = StoreError;

    fn try_from(item: &Item) -> Result<Self, StoreError> {
        let key = &item.key;
        let id = key
            .pk
            .strip_prefix("USER#")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(key, "not a user key"))?;
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
            tfa_enabled: item.bool(attr::TFA).unwrap_or(true),
            must_reset_password: item.bool(attr::RESET).unwrap_or(false),
            active: item.bool(attr::ACTIVE).unwrap_or(true),
            tokens_revoked_at: item.num(attr::REVOKED),
            attempts: item
                .num(attr::ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            attempt_at: item.num(attr::ATTEMPT_AT),
            created_at: item.num(attr::CREATED).unwrap_or(0),
            updated_at: item.num(attr::UPDATED).unwrap_or(0),
        })
    }
}

impl From<&User> for Item {
    fn from(u: &User) -> Item {
        let mut item = Item::new(u.key())
            .with(attr::USERNAME, u.username.as_str())
            .with(attr::EMAIL, u.email.as_str())
            .with(attr::ROLE, u.role.as_str())
            .with(attr::PASSWORD, u.password_hash.as_str())
            .with(attr::STORE_ID, i64::from(u.store_id))
            .with(attr::TOTP_STATE, u.totp.state())
            .with(attr::TFA, u.tfa_enabled)
            .with(attr::RESET, u.must_reset_password)
            .with(attr::ACTIVE, u.active)
            .with(attr::ATTEMPTS, i64::from(u.attempts))
            .with(attr::CREATED, u.created_at)
            .with(attr::UPDATED, u.updated_at);
        if let Some(sealed) = u.totp.sealed() {
            item = item.with(attr::TOTP_SECRET, Value::B(sealed.to_vec()));
        }
        let optional = [
            (attr::PHONE, u.phone.clone().map(Value::S)),
            (
                attr::TOTP_STEP,
                u.totp_last_step
                    .map(|s| Value::N(i64::try_from(s).unwrap_or(i64::MAX))),
            ),
            (attr::REVOKED, u.tokens_revoked_at.map(Value::N)),
            (attr::ATTEMPT_AT, u.attempt_at.map(Value::N)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.attrs.insert(name.to_owned(), value);
            }
        }
        item
    }
}

/// The write that sets a user's TOTP state; the replay marker restarts with a new secret.
pub fn set_totp(update: Update, totp: &Totp) -> Update {
    let update = update
        .set(attr::TOTP_STATE, totp.state())
        .remove(attr::TOTP_STEP);
    match totp.sealed() {
        Some(sealed) => update.set(attr::TOTP_SECRET, Value::B(sealed.to_vec())),
        None => update.remove(attr::TOTP_SECRET),
    }
}

/// The transaction that creates a user with its login pointers, failing if any login is taken.
pub fn create_ops(user: &User) -> Vec<TxOp> {
    let mut logins = vec![user.username.as_str()];
    if normalize_login(&user.email) != normalize_login(&user.username) {
        logins.push(user.email.as_str());
    }
    let mut ops: Vec<TxOp> = logins
        .into_iter()
        .map(|login| TxOp::Put {
            item: Item::new(login_key(login)).with(attr::UID, id_value(user.id)),
            cond: Cond::NotExists,
        })
        .collect();
    ops.push(TxOp::Put {
        item: Item::from(user),
        cond: Cond::NotExists,
    });
    ops
}

pub fn id_value(id: UserId) -> Value {
    Value::N(i64::try_from(id).unwrap_or(i64::MAX))
}

/// Reads the user id a login pointer item holds.
pub fn pointer_uid(item: &Item) -> Result<UserId, StoreError> {
    item.num(attr::UID)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| corrupt(&item.key, "uid"))
}

/// Why a user's fields were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUser {
    #[error("username must be 1-128 characters without spaces or control characters")]
    Username,
    #[error("a username containing '@' must be the user's email address")]
    UsernameLooksLikeEmail,
    #[error("not a valid email address")]
    Email,
    #[error("phone numbers are E.164: '+' then 8 to 15 digits")]
    Phone,
    #[error("passwords are 8 to 256 characters")]
    Password,
}

pub fn check_username(username: &str, email: &str) -> Result<(), InvalidUser> {
    let n = username.chars().count();
    if n == 0
        || n > 128
        || username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(InvalidUser::Username);
    }
    if username.contains('@') && normalize_login(username) != normalize_login(email) {
        return Err(InvalidUser::UsernameLooksLikeEmail);
    }
    Ok(())
}

pub fn check_email(email: &str) -> Result<(), InvalidUser> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok { Ok(()) } else { Err(InvalidUser::Email) }
}

pub fn check_phone(phone: &str) -> Result<(), InvalidUser> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if ok { Ok(()) } else { Err(InvalidUser::Phone) }
}

pub fn check_password(password: &str) -> Result<(), InvalidUser> {
    let n = password.chars().count();
    if (8..=256).contains(&n) {
        Ok(())
    } else {
        Err(InvalidUser::Password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
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
            tfa_enabled: true,
            must_reset_password: false,
            active: true,
            tokens_revoked_at: Some(100),
            attempts: 2,
            attempt_at: Some(90),
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn user_round_trips_through_an_item() {
        let u = user();
        let item = Item::from(&u);
        assert_eq!(User::try_from(&item).unwrap(), u);
        let mut none = u.clone();
        none.totp = Totp::None;
        none.phone = None;
        none.totp_last_step = None;
        assert_eq!(User::try_from(&Item::from(&none)).unwrap(), none);
    }

    #[test]
    fn corrupt_items_are_errors_not_panics() {
        let mut item = Item::from(&user());
        item.attrs.remove(attr::TOTP_SECRET);
        assert!(User::try_from(&item).is_err());
        let item = Item::new(Key::new("USER#x", "PROFILE"));
        assert!(User::try_from(&item).is_err());
    }

    #[test]
    fn revocation_and_lock_rules() {
        let u = user();
        assert!(u.revoked(100));
        assert!(u.revoked(99));
        assert!(!u.revoked(101));
        let mut locked = u.clone();
        locked.attempts = 6;
        assert!(locked.locked(100, 6, 1800));
        assert!(
            !locked.locked(90 + 1800, 6, 1800),
            "the lock ends lock_secs after the last attempt"
        );
        assert!(!u.locked(100, 6, 1800));
    }

    #[test]
    fn field_checks() {
        assert!(check_username("admin", "a@b.co").is_ok());
        assert_eq!(check_username("x y", "a@b.co"), Err(InvalidUser::Username));
        assert_eq!(
            check_username("bob@b.co", "a@b.co"),
            Err(InvalidUser::UsernameLooksLikeEmail)
        );
        assert!(check_username("A@B.co", "a@b.co").is_ok());
        assert!(check_email("a@b.co").is_ok());
        for bad in [
            "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@.co", "a@b.co.",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_phone("+4915112345678").is_ok());
        for bad in [
            "4915112345678",
            "+0123456789",
            "+12",
            "+12345678901234567",
            "+4915a12345678",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
    }

    #[test]
    fn create_ops_point_both_logins_at_the_user() {
        let ops = create_ops(&user());
        assert_eq!(ops.len(), 3);
        let mut same = user();
        same.username = "ALICE@example.com".into();
        assert_eq!(
            create_ops(&same).len(),
            2,
            "one pointer when username is the email"
        );
    }
}
