//! AES-256-GCM sealing of secrets at rest (TOTP secrets), under versioned keys so keys can be
//! rotated: a sealed value names the key that sealed it.
use super::{CryptoError, SecretBytes};
use crate::ports::Rng;

pub struct Sealer {}

impl Sealer {
    /// `keys`: (key id, 32-byte key); `active`: the id new values are sealed under.
    pub fn new(keys: Vec<(String, SecretBytes)>, active: &str) -> Result<Self, CryptoError> {
        let _ = (keys, active);
        todo!()
    }
    /// Seals `plaintext`, binding it to `aad` (e.g. the user id) so it cannot be moved to
    /// another record. Format: version byte, key id length and bytes, 12-byte nonce, ciphertext.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        rng: &dyn Rng,
    ) -> Result<Vec<u8>, CryptoError> {
        let _ = (plaintext, aad, rng);
        todo!()
    }
    /// Opens a value sealed under any known key with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let _ = (sealed, aad);
        todo!()
    }
}
