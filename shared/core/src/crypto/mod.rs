//! Cryptographic building blocks, each over a well-kept crate: argon2id passwords, RFC 6238
//! TOTP, numeric codes and opaque tokens stored as keyed hashes, AEAD sealing of secrets at
//! rest, the key set (HMAC, RS256/ES256/EdDSA signing, sealing and pepper keys, and their
//! rotation), JWT issue/verify (signed tokens, and HS256 tokens keyed per subject) and QR
//! codes. Time and randomness come in as parameters.

pub mod aead;
pub mod codes;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod qr;
pub mod secret;
pub mod spent;
pub mod totp;

pub use secret::{SecretBytes, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random number generator failed")]
    Rng,
    #[error("invalid key material: {0}")]
    Key(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("cryptographic failure: {0}")]
    Failure(String),
}

impl From<crate::ports::RngFailure> for CryptoError {
    fn from(_: crate::ports::RngFailure) -> Self {
        CryptoError::Rng
    }
}
