//! The identity core: users, their factors and credentials, and the rules every dialect
//! shares — failure budgets, throttles, sign-in, revocation. Flows take only the ports they use
//! ([`Db`] for the store and the clock, plus what else they name), so this module depends on
//! the ports, the store and the records, never on the application or a dialect.

pub mod accounts;
pub mod codes;
pub mod flows;
pub mod integrations;
pub mod limits;
pub mod links;
pub mod memo;
pub mod sessions;
pub mod signin;
pub mod users;

use std::net::IpAddr;

use crate::crypto::CryptoError;
use crate::ports::{Clock, SendError};
use crate::store::{Item, Key, Store, StoreError, Write};

use users::InvalidUser;

/// The store and the clock: what every flow that reads or writes state uses.
#[derive(Clone, Copy)]
pub struct Db<'a> {
    pub store: &'a dyn Store,
    pub clock: &'a dyn Clock,
}

impl<'a> Db<'a> {
    pub fn new(store: &'a dyn Store, clock: &'a dyn Clock) -> Self {
        Self { store, clock }
    }

    /// Unix seconds, from the clock port.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.store.get(key, self.now()).await
    }

    /// Applies one conditional write built by a record module; the item as written.
    pub async fn apply(&self, write: Write) -> Result<Item, StoreError> {
        self.store
            .update(&write.key, write.update, write.cond, self.now())
            .await
    }
}

/// Where a request comes from, for limits and audit events.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub ip: IpAddr,
    /// The dialect (or `cli`), for audit events.
    pub via: &'static str,
}

/// A failure of the machinery rather than of the request: the store, cryptography, a task.
/// Dialects answer these with a 5xx (503 when retrying may help), log them with a correlation
/// id, and never show their text.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("a background task failed")]
    Task,
    /// Every password hashing slot stayed busy for the configured wait: the request was
    /// refused before anything was counted or changed.
    #[error(transparent)]
    Overloaded(#[from] crate::crypto::password::Busy),
}

impl Fault {
    /// Whether trying again later may succeed (throttling, brief unavailability).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Fault::Store(StoreError::Busy(_)) | Fault::Overloaded(_)
        )
    }
}

/// Which kind of thing a name clash is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    Login,
    IntegrationName,
}

/// Why a flow refused. One enum for the whole core: every dialect maps it onto its own wire
/// shape in one `From` impl, and a new variant is a compile error in each of them until the
/// dialect decides how to say it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown login, wrong password, wrong role or disabled account: one answer for all.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A failure budget of the account is used up until `until` (Unix seconds); `i64::MAX`
    /// ([`DISABLED`]) when the factor failed too often in a row and stays disabled until an
    /// admin unlocks the account or the user re-binds the factor.
    #[error("locked")]
    Locked { until: i64 },
    /// The client address made too many attempts; try again at `until`.
    #[error("rate limited")]
    RateLimited { until: i64 },
    /// The admin requires a new password before the next sign-in.
    #[error("password reset required")]
    PasswordResetRequired,
    /// The code was wrong, malformed, expired, used up or already used.
    #[error("invalid code")]
    InvalidCode,
    /// The user has no factor of the kind asked for (or not at the stage asked for).
    #[error("factor not configured")]
    NotConfigured,
    /// The factor being set up is set up already.
    #[error("factor already configured")]
    AlreadyConfigured,
    /// A token (access, refresh, set-up) that is malformed, forged, revoked or for someone
    /// else.
    #[error("invalid token")]
    InvalidToken,
    /// A well-formed, authentic token past its expiry.
    #[error("token expired")]
    TokenExpired,
    /// Input the core refuses, with the reason (safe to show: it names a rule, not a value).
    #[error("{0}")]
    Invalid(Invalid),
    #[error("already taken")]
    Taken(Taken),
    /// The user, integration or other subject named does not exist.
    #[error("not found")]
    NotFound,
    /// The message could not be delivered; nothing was counted.
    #[error("delivery failed")]
    SendFailed { retryable: bool },
    /// A multi-step flow refused the step (see [`flows`]).
    #[error(transparent)]
    Flow(#[from] flows::FlowError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// `Error::Locked { until: DISABLED }`: the factor is disabled, not blocked for a while.
pub const DISABLED: i64 = i64::MAX;

/// Input refused by a rule of the core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error(transparent)]
    User(#[from] InvalidUser),
    #[error("integration names are 1 to 255 characters")]
    IntegrationName,
    #[error("resources are 1 to 100 characters each, at least one and at most 100 of them")]
    Resources,
    #[error("an integration cannot grant a resource its creator does not hold")]
    ResourceNotHeld,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Fault(Fault::Store(e))
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        Error::Fault(Fault::Crypto(e))
    }
}

impl From<InvalidUser> for Error {
    fn from(e: InvalidUser) -> Self {
        Error::Invalid(Invalid::User(e))
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Error::SendFailed {
            retryable: matches!(e, SendError::Retryable(_)),
        }
    }
}
