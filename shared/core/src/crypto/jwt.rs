//! JWT issue and verification over jsonwebtoken, the algorithm pinned per use, keys picked by
//! `kid`, `exp` and `iat` checked against the caller's clock.
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CryptoError;
use super::keys::KeySet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Well-formed and correctly signed, but past its `exp`.
    #[error("token expired")]
    Expired,
    /// Anything else: malformed, wrong algorithm, unknown `kid`, bad signature, bad claims.
    #[error("token invalid")]
    Invalid,
}

impl KeySet {
    /// HS256 under the active HMAC key; the header is exactly `{"kid":"<kid>","alg":"HS256"}`
    /// (Magento's layout, in that order).
    pub fn sign_hs256<C: Serialize>(&self, claims: &C) -> Result<String, CryptoError> {
        let _ = claims;
        todo!()
    }
    /// Verifies an HS256 token: algorithm pinned, key by `kid` among the live HMAC keys,
    /// `exp` required and after `now - leeway`, `iat` (if present) not after `now + leeway`.
    pub fn verify_hs256<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
    ) -> Result<C, JwtError> {
        let _ = (token, now, leeway);
        todo!()
    }
}
