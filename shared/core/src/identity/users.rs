//! Users and their factors, as the flows see them. How a user is stored is
//! [`crate::records::profile`]'s business; nothing here names a key or an attribute.

use std::fmt;

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
/// user id) and only opened to verify a code or show it during set-up.
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

    pub fn stage(&self) -> Option<TotpStage> {
        match self {
            Totp::None => None,
            Totp::Pending { .. } => Some(TotpStage::Pending),
            Totp::Active { .. } => Some(TotpStage::Active),
        }
    }
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Totp::None => "none",
            Totp::Pending { .. } => "pending",
            Totp::Active { .. } => "active",
        })
    }
}

/// Which secret a TOTP code is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpStage {
    /// The secret being set up; a right code confirms it.
    Pending,
    /// The confirmed secret.
    Active,
}

/// A second factor delivered by a one-time code (email or SMS), per user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CodeFactor {
    #[default]
    Off,
    /// A code was sent to confirm it; not yet confirmed.
    Pending,
    On,
}

/// What a user proves to sign in. Each has its own failure budget ([`Budgets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    Password,
    Totp,
    Email,
    Sms,
}

impl Factor {
    pub const ALL: [Factor; 4] = [Factor::Password, Factor::Totp, Factor::Email, Factor::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Totp => "totp",
            Factor::Email => "email",
            Factor::Sms => "sms",
        }
    }
}

/// Failures counted against one factor since its last clean sign-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// Attempts reserved and not given back (a reservation counts as a failure until the
    /// check succeeds).
    pub count: u32,
    /// When the counting window began (the first failure of the run).
    pub first_at: Option<i64>,
    /// When the last attempt was reserved.
    pub last_at: Option<i64>,
    /// Failures in a row since the factor last proved right (or was re-bound), across windows
    /// and blocks: at [`MAX_CONSECUTIVE_FAILURES`] the factor is disabled.
    pub streak: u32,
}

/// Consecutive failures after which a factor is disabled until an admin unlocks the account or
/// the user re-binds the factor (a new password, authenticator or phone number). A windowed
/// budget restarts every window; this does not, so a patient guesser is stopped for good.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 100;

impl Failures {
    /// Whether the factor failed [`MAX_CONSECUTIVE_FAILURES`] times in a row.
    pub fn disabled(&self) -> bool {
        self.streak >= MAX_CONSECUTIVE_FAILURES
    }

    /// Whether the factor is blocked at `now` under `budget`: its failures reached the limit
    /// and the block has not run out since the last one.
    pub fn blocked(&self, now: i64, budget: &Budget) -> Option<i64> {
        if self.disabled() {
            return Some(i64::MAX);
        }
        let until = self.last_at?.saturating_add(budget.block_secs);
        (self.count >= budget.max_failures && until > now).then_some(until)
    }
}

/// A factor's failure budget: `max_failures` within `window_secs` (or ever, since the last
/// clean sign-in, without a window) block it for `block_secs` after the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_failures: u32,
    pub window_secs: Option<i64>,
    pub block_secs: i64,
}

/// Every factor's failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    pub password: Failures,
    pub totp: Failures,
    pub email: Failures,
    pub sms: Failures,
}

impl Budgets {
    pub fn of(&self, factor: Factor) -> &Failures {
        match factor {
            Factor::Password => &self.password,
            Factor::Totp => &self.totp,
            Factor::Email => &self.email,
            Factor::Sms => &self.sms,
        }
    }

    pub fn of_mut(&mut self, factor: Factor) -> &mut Failures {
        match factor {
            Factor::Password => &mut self.password,
            Factor::Totp => &mut self.totp,
            Factor::Email => &mut self.email,
            Factor::Sms => &mut self.sms,
        }
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
    /// E.164; set by an admin or confirmed by an SMS code.
    pub phone: Option<String>,
    pub totp: Totp,
    /// The last TOTP step accepted: codes of this step or older are refused.
    pub totp_last_step: Option<u64>,
    /// Email codes as a second factor.
    pub email_otp: CodeFactor,
    /// SMS codes as a second factor (to `phone`).
    pub sms_otp: CodeFactor,
    /// Per-user switch; when false the user signs in without a second factor.
    pub tfa_enabled: bool,
    /// The admin asked for a new password before the next sign-in.
    pub must_reset_password: bool,
    pub active: bool,
    /// Token generation: every token carries (or is keyed by) the generation it was issued
    /// under, and only the current one is honoured. Revoking bumps it, so a revocation
    /// refuses every earlier token and none issued after it, whatever the clocks say.
    pub token_gen: u64,
    pub budgets: Budgets,
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

    /// What a token of `purpose` issued to this user now is bound to: a token whose binding
    /// differs (another user, another purpose, an earlier generation) is refused.
    pub fn token_binding(&self, purpose: &str) -> Vec<u8> {
        format!("{purpose}:{}:{}", self.id, self.token_gen).into_bytes()
    }

    /// The phone number SMS codes may go to: only one the user verified (or an admin set),
    /// with SMS codes switched on.
    pub fn verified_phone(&self) -> Option<&str> {
        (self.sms_otp == CodeFactor::On)
            .then_some(self.phone.as_deref())
            .flatten()
    }

    /// The second factors the user has set up, in the order a client offers them.
    pub fn second_factors(&self) -> Vec<Factor> {
        let mut factors = Vec::new();
        if self.totp.is_active() {
            factors.push(Factor::Totp);
        }
        if self.verified_phone().is_some() {
            factors.push(Factor::Sms);
        }
        factors
    }

    /// Whether a token issued under `generation` is still honoured.
    pub fn honours(&self, generation: u64) -> bool {
        self.active && generation == self.token_gen
    }
}

/// What the sealed TOTP secret is bound to.
pub fn totp_aad(id: UserId) -> Vec<u8> {
    format!("latchkey:totp:{id}").into_bytes()
}

/// Logins are looked up case-insensitively, without surrounding spaces.
pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// Longest login (username or email) accepted anywhere, in bytes: longer ones are refused
/// before they become part of a key.
pub const MAX_LOGIN_BYTES: usize = 254;

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
    let ok = email.len() <= MAX_LOGIN_BYTES
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

    #[test]
    fn a_factor_is_blocked_only_at_the_limit_and_until_the_block_ends() {
        let budget = Budget {
            max_failures: 3,
            window_secs: None,
            block_secs: 600,
        };
        let mut f = Failures {
            count: 2,
            first_at: Some(100),
            last_at: Some(100),
            streak: 2,
        };
        assert_eq!(f.blocked(100, &budget), None);
        f.count = 3;
        assert_eq!(f.blocked(100, &budget), Some(700));
        assert_eq!(f.blocked(699, &budget), Some(700));
        assert_eq!(
            f.blocked(700, &budget),
            None,
            "the block ends after block_secs"
        );
    }

    #[test]
    fn bindings_differ_by_purpose_user_and_generation() {
        let mut u = User {
            id: 7,
            username: "a".into(),
            email: "a@b.co".into(),
            role: Role::Admin,
            password_hash: String::new(),
            store_id: 1,
            phone: None,
            totp: Totp::None,
            totp_last_step: None,
            email_otp: CodeFactor::Off,
            sms_otp: CodeFactor::Off,
            tfa_enabled: true,
            must_reset_password: false,
            active: true,
            token_gen: 0,
            budgets: Budgets::default(),
            created_at: 0,
            updated_at: 0,
        };
        let before = u.token_binding("access");
        assert_ne!(before, u.token_binding("tfa"));
        u.token_gen = 1;
        assert_ne!(before, u.token_binding("access"));
        assert!(u.honours(1) && !u.honours(0));
        u.active = false;
        assert!(!u.honours(1), "a disabled user honours no token");
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
        assert!(check_email(&format!("{}@b.co", "a".repeat(250))).is_err());
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
}
