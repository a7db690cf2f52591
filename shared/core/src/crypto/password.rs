//! argon2id password hashing (PHC strings) with an equal-cost path for unknown users.
use super::CryptoError;
use crate::ports::Rng;

/// OWASP's argon2id parameters: 19 MiB, 2 iterations, 1 lane.
pub const OWASP_M_KIB: u32 = 19 * 1024;
pub const OWASP_T: u32 = 2;
pub const OWASP_P: u32 = 1;

/// Hashes and verifies passwords. Cheap to clone (shares its state); verification is CPU-bound
/// (tens of ms), so async callers run it on a blocking thread.
#[derive(Clone)]
pub struct PasswordHasher {}

impl PasswordHasher {
    /// OWASP parameters. Computes, once, a dummy hash used for unknown users.
    pub fn new(rng: &dyn Rng) -> Result<Self, CryptoError> {
        Self::with_params(OWASP_M_KIB, OWASP_T, OWASP_P, rng)
    }
    /// Other parameters (tests use cheaper ones).
    pub fn with_params(m_kib: u32, t: u32, p: u32, rng: &dyn Rng) -> Result<Self, CryptoError> {
        let _ = (m_kib, t, p, rng);
        todo!()
    }
    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a fresh 16-byte salt.
    pub fn hash(&self, password: &str, rng: &dyn Rng) -> Result<String, CryptoError> {
        let _ = (password, rng);
        todo!()
    }
    /// Whether `password` matches `phc`; false for a malformed PHC string. Honors the
    /// parameters recorded in the PHC string.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let _ = (password, phc);
        todo!()
    }
    /// Does the same work as a failed `verify` against a real hash; for unknown users.
    pub fn verify_unknown_user(&self, password: &str) {
        let _ = password;
        todo!()
    }
    /// Whether `phc` was made with other parameters than this hasher's.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let _ = phc;
        todo!()
    }
}
