//! One-time codes and opaque tokens from a CSPRNG, stored only as keyed hashes.
use super::{CryptoError, SecretString};
use crate::ports::Rng;

/// A uniformly random code of `digits` decimal digits (1..=10), leading zeros kept.
pub fn numeric_code(rng: &dyn Rng, digits: u32) -> Result<SecretString, CryptoError> {
    let _ = (rng, digits);
    todo!()
}

/// A random token of `len` characters from `[a-z0-9]` (Magento's token alphabet);
/// 32 characters carry 165 bits.
pub fn alnum_token(rng: &dyn Rng, len: usize) -> Result<SecretString, CryptoError> {
    let _ = (rng, len);
    todo!()
}

/// A random URL-safe token carrying `bytes` bytes of randomness (base64url, no padding).
pub fn url_token(rng: &dyn Rng, bytes: usize) -> Result<SecretString, CryptoError> {
    let _ = (rng, bytes);
    todo!()
}

/// HMAC-SHA256 of `value` under `key`, domain-separated by `purpose`; base64url, no padding.
/// Deterministic, so it can serve as a lookup key for a token.
pub fn keyed_hash(key: &[u8], purpose: &str, value: &str) -> String {
    let _ = (key, purpose, value);
    todo!()
}

/// Constant-time check of `value` against a stored [`keyed_hash`].
pub fn verify_keyed_hash(key: &[u8], purpose: &str, value: &str, stored: &str) -> bool {
    let _ = (key, purpose, value, stored);
    todo!()
}
