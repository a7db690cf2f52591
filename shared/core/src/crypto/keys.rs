//! The key set: HMAC keys (HS256 tokens), asymmetric signing keys (published as JWKS), sealing
//! keys (AEAD) and the pepper for keyed hashes. Stored as JSON (`KeySetFile`); several keys of
//! each kind may be live at once for rotation, one of each is active.
use serde::{Deserialize, Serialize};

use super::CryptoError;
use super::aead::Sealer;
use crate::ports::Rng;

/// The JSON form of a key set, as `latchkey keys generate` prints it and as `LATCHKEY_KEYS`,
/// the key file or the SSM parameter hold it.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySetFile {}

impl KeySetFile {
    /// Fresh keys: HMAC kid "1", one ES256 signing key, one sealing key, a pepper.
    pub fn generate(rng: &dyn Rng) -> Result<Self, CryptoError> {
        let _ = rng;
        todo!()
    }
}

pub struct KeySet {
    pub sealer: Sealer,
}

impl KeySet {
    pub fn from_file(file: &KeySetFile) -> Result<Self, CryptoError> {
        let _ = file;
        todo!()
    }
    /// The pepper for [`super::codes::keyed_hash`].
    pub fn pepper(&self) -> &[u8] {
        todo!()
    }
    /// The public half of every signing key, as a JWK set (`{"keys":[...]}`).
    pub fn jwks(&self) -> serde_json::Value {
        todo!()
    }
}
