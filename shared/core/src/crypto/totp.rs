//! RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps) over totp-rs. Verification returns the matched
//! time step; refusing replays (a step at or before the last accepted one) is the caller's
//! job, done atomically in the store.
use super::{CryptoError, SecretBytes, SecretString};
use crate::ports::Rng;

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// Bytes of a generated secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

#[derive(Clone, Debug)]
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    pub fn generate(rng: &dyn Rng) -> Result<Self, CryptoError> {
        let _ = rng;
        todo!()
    }
    /// From raw bytes (at least 16: 128 bits).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CryptoError> {
        let _ = bytes;
        todo!()
    }
    /// From base32 as authenticator apps show it (case-insensitive, spaces and padding
    /// ignored; at least 128 bits).
    pub fn from_base32(text: &str) -> Result<Self, CryptoError> {
        let _ = text;
        todo!()
    }
    /// Unpadded upper-case base32.
    pub fn to_base32(&self) -> SecretString {
        todo!()
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.0.expose()
    }
}

/// The step number of a Unix time.
pub fn step_of(unix_secs: i64) -> u64 {
    u64::try_from(unix_secs).unwrap_or(0) / STEP_SECS
}

/// The code for a Unix time.
pub fn code_at(secret: &TotpSecret, unix_secs: i64) -> String {
    let _ = (secret, unix_secs);
    todo!()
}

/// If `code` is valid at `unix_secs` within ±`window` steps, the step it matched (the one
/// closest to now when several match). Anything but exactly six ASCII digits is invalid.
/// Comparison is constant-time.
pub fn verify(secret: &TotpSecret, code: &str, unix_secs: i64, window: u8) -> Option<u64> {
    let _ = (secret, code, unix_secs, window);
    todo!()
}

/// `otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let _ = (secret, issuer, account);
    todo!()
}
