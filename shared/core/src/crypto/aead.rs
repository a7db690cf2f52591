//! AES-256-GCM sealing of secrets at rest (TOTP secrets), under versioned keys so keys can be
//! rotated: a sealed value names the key that sealed it.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};

use super::{CryptoError, SecretBytes};
use crate::ports::{Rng, RngExt};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

pub struct Sealer {
    keys: Vec<(String, Aes256Gcm)>,
    active: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Sealer")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// `keys`: (key id, 32-byte key); `active`: the id new values are sealed under.
    pub fn new(keys: Vec<(String, SecretBytes)>, active: &str) -> Result<Self, CryptoError> {
        let mut ciphers = Vec::with_capacity(keys.len());
        for (kid, key) in keys {
            if kid.is_empty() || kid.len() > 255 {
                return Err(CryptoError::Key(
                    "sealing key ids are 1 to 255 bytes".into(),
                ));
            }
            if key.expose().len() != 32 {
                return Err(CryptoError::Key(format!(
                    "sealing key {kid} must be 32 bytes"
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(key.expose())
                .map_err(|_| CryptoError::Key(format!("sealing key {kid}")))?;
            ciphers.push((kid, cipher));
        }
        let active = ciphers
            .iter()
            .position(|(kid, _)| kid == active)
            .ok_or_else(|| {
                CryptoError::Key(format!("active sealing key {active} is not in the key set"))
            })?;
        Ok(Self {
            keys: ciphers,
            active,
        })
    }

    /// Seals `plaintext`, binding it to `aad` (e.g. the user id) so it cannot be moved to
    /// another record. Format: version byte, key id length and bytes, 12-byte nonce, ciphertext.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        rng: &dyn Rng,
    ) -> Result<Vec<u8>, CryptoError> {
        let (kid, cipher) = self
            .keys
            .get(self.active)
            .ok_or_else(|| CryptoError::Key("no active key".into()))?;
        let nonce_bytes: [u8; NONCE_LEN] = rng.bytes()?;
        let nonce = aes_gcm::Nonce::from(nonce_bytes);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Failure("sealing failed".into()))?;
        let mut out = Vec::with_capacity(2 + kid.len() + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(kid.as_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed under any known key with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let bad = || CryptoError::Input("not a sealed value".into());
        let (&version, rest) = sealed.split_first().ok_or_else(bad)?;
        if version != VERSION {
            return Err(bad());
        }
        let (&kid_len, rest) = rest.split_first().ok_or_else(bad)?;
        let (kid, rest) = rest
            .split_at_checked(usize::from(kid_len))
            .ok_or_else(bad)?;
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or_else(bad)?;
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k.as_bytes() == kid)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::Key("sealed under an unknown key".into()))?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
        cipher
            .decrypt(
                &aes_gcm::Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| {
                CryptoError::Input("sealed value does not open (tampered, or other aad)".into())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    fn key(b: u8) -> SecretBytes {
        SecretBytes::new(vec![b; 32])
    }

    #[test]
    fn round_trip_and_aad_binding() {
        let s = Sealer::new(vec![("k1".into(), key(1))], "k1").unwrap();
        let rng = SeededRng::new(1);
        let sealed = s.seal(b"secret", b"user:1", &rng).unwrap();
        assert_eq!(s.open(&sealed, b"user:1").unwrap().expose(), b"secret");
        assert!(s.open(&sealed, b"user:2").is_err());
        assert_ne!(
            sealed,
            s.seal(b"secret", b"user:1", &rng).unwrap(),
            "fresh nonce each time"
        );
    }

    #[test]
    fn any_tampered_byte_fails() {
        let s = Sealer::new(vec![("k1".into(), key(1))], "k1").unwrap();
        let sealed = s.seal(b"secret", b"a", &SeededRng::new(2)).unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(s.open(&t, b"a").is_err(), "byte {i}");
        }
        for n in 0..sealed.len() {
            assert!(s.open(&sealed[..n], b"a").is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let rng = SeededRng::new(3);
        let old = Sealer::new(vec![("k1".into(), key(1))], "k1").unwrap();
        let sealed_old = old.seal(b"v1", b"a", &rng).unwrap();
        let rotated =
            Sealer::new(vec![("k1".into(), key(1)), ("k2".into(), key(2))], "k2").unwrap();
        assert_eq!(rotated.open(&sealed_old, b"a").unwrap().expose(), b"v1");
        let sealed_new = rotated.seal(b"v2", b"a", &rng).unwrap();
        assert_eq!(&sealed_new[2..4], b"k2");
        assert!(old.open(&sealed_new, b"a").is_err(), "unknown kid");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Sealer::new(vec![("k1".into(), SecretBytes::new(vec![0; 16]))], "k1").is_err());
        assert!(Sealer::new(vec![("k1".into(), key(1))], "k2").is_err());
        assert!(Sealer::new(vec![], "k1").is_err());
    }
}
