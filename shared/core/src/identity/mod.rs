//! Users, their factors and credentials, and the sign-in rules every dialect shares.

pub mod accounts;
pub mod integrations;
pub mod limits;
pub mod signin;
pub mod users;

use crate::crypto::CryptoError;
use crate::store::StoreError;

/// A failure of the machinery rather than of the request: the store, cryptography, a task.
/// Dialects answer these with a 5xx (503 when the store is busy) and log them; they never
/// carry user input.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("a background task failed")]
    Task,
    #[error("delivery failed: {0}")]
    Send(#[from] crate::ports::SendError),
}

impl Fault {
    /// Whether trying again later may succeed (throttling, brief unavailability).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Fault::Store(StoreError::Busy(_)) | Fault::Send(crate::ports::SendError::Retryable(_))
        )
    }
}
