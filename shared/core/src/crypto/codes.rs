//! One-time codes and opaque tokens from a CSPRNG, stored only as keyed hashes.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{CryptoError, SecretString};
use crate::ports::{Rng, RngExt};

const ALNUM: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM62: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A uniformly random code of `digits` decimal digits (1..=10), leading zeros kept.
pub fn numeric_code(rng: &dyn Rng, digits: u32) -> Result<SecretString, CryptoError> {
    if !(1..=10).contains(&digits) {
        return Err(CryptoError::Input("codes have 1 to 10 digits".into()));
    }
    let n = rng.below(10u64.pow(digits))?;
    Ok(SecretString::new(format!(
        "{n:0width$}",
        width = digits as usize
    )))
}

/// A random token of `len` characters from `[a-z0-9]` (Magento's token alphabet);
/// 32 characters carry 165 bits.
pub fn alnum_token(rng: &dyn Rng, len: usize) -> Result<SecretString, CryptoError> {
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        let i = rng.below(ALNUM.len() as u64)?;
        let c = ALNUM
            .get(usize::try_from(i).unwrap_or(0))
            .copied()
            .unwrap_or(b'a');
        out.push(char::from(c));
    }
    Ok(SecretString::new(out))
}

/// A random token of `len` characters from `[A-Za-z0-9]` (the login-link token alphabet of
/// Magento's magic-link modules); 32 characters carry 190 bits.
pub fn mixed_alnum_token(rng: &dyn Rng, len: usize) -> Result<SecretString, CryptoError> {
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        let i = rng.below(ALNUM62.len() as u64)?;
        let c = ALNUM62
            .get(usize::try_from(i).unwrap_or(0))
            .copied()
            .unwrap_or(b'A');
        out.push(char::from(c));
    }
    Ok(SecretString::new(out))
}

/// A random URL-safe token carrying `bytes` bytes of randomness (base64url, no padding).
pub fn url_token(rng: &dyn Rng, bytes: usize) -> Result<SecretString, CryptoError> {
    let raw = rng.vec(bytes)?;
    Ok(SecretString::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
    ))
}

fn mac(key: &[u8], purpose: &str, value: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    // Length-prefixed purpose: no (purpose, value) pair can collide with another.
    mac.update(&(purpose.len() as u64).to_be_bytes());
    mac.update(purpose.as_bytes());
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA256 of `value` under `key`, domain-separated by `purpose`; base64url, no padding.
/// Deterministic, so it can serve as a lookup key for a token.
pub fn keyed_hash(key: &[u8], purpose: &str, value: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(key, purpose, value))
}

/// Constant-time check of `value` against a stored [`keyed_hash`].
pub fn verify_keyed_hash(key: &[u8], purpose: &str, value: &str, stored: &str) -> bool {
    let Ok(stored) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(stored) else {
        return false;
    };
    let computed = mac(key, purpose, value);
    computed.len() == stored.len() && bool::from(computed.ct_eq(&stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    #[test]
    fn numeric_codes_are_uniform_digits_with_leading_zeros() {
        let rng = SeededRng::new(9);
        let mut counts = [0usize; 10];
        let mut leading_zero = false;
        for _ in 0..2000 {
            let code = numeric_code(&rng, 6).unwrap();
            assert_eq!(code.expose().len(), 6);
            leading_zero |= code.expose().starts_with('0');
            for b in code.expose().bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        assert!(leading_zero);
        assert!(counts.iter().all(|&c| c > 1000 && c < 1400), "{counts:?}");
        assert!(numeric_code(&rng, 0).is_err());
        assert!(numeric_code(&rng, 11).is_err());
    }

    #[test]
    fn tokens_have_their_alphabet_and_length() {
        let rng = SeededRng::new(1);
        let t = alnum_token(&rng, 32).unwrap();
        assert_eq!(t.expose().len(), 32);
        assert!(
            t.expose()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let u = url_token(&rng, 32).unwrap();
        assert_eq!(u.expose().len(), 43);
        assert!(
            u.expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(alnum_token(&rng, 32).unwrap().expose(), t.expose());
        let m = mixed_alnum_token(&rng, 32).unwrap();
        assert_eq!(m.expose().len(), 32);
        assert!(m.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        let many: String = (0..50)
            .map(|_| mixed_alnum_token(&rng, 32).unwrap().expose().to_owned())
            .collect();
        assert!(many.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(many.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(many.bytes().any(|b| b.is_ascii_digit()));
    }

    #[test]
    fn keyed_hashes_separate_purposes_and_verify() {
        let key = [7u8; 32];
        let h = keyed_hash(&key, "email-code", "123456");
        assert_eq!(h, keyed_hash(&key, "email-code", "123456"));
        assert_ne!(h, keyed_hash(&key, "sms-code", "123456"));
        assert_ne!(h, keyed_hash(&[8u8; 32], "email-code", "123456"));
        assert_ne!(keyed_hash(&key, "a", "bc"), keyed_hash(&key, "ab", "c"));
        assert!(verify_keyed_hash(&key, "email-code", "123456", &h));
        assert!(!verify_keyed_hash(&key, "email-code", "123457", &h));
        assert!(!verify_keyed_hash(
            &key,
            "email-code",
            "123456",
            "not base64!"
        ));
        assert!(!verify_keyed_hash(&key, "email-code", "123456", ""));
    }
}
