//! The key set: HMAC keys (HS256 tokens), asymmetric signing keys (published as JWKS), sealing
//! keys (AEAD) and the pepper for keyed hashes. Stored as JSON ([`KeySetFile`]); several keys
//! of each kind may be live at once for rotation, one of each is active.

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::aead::Sealer;
use super::{CryptoError, SecretBytes};
use crate::ports::{Rng, RngExt};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The JSON form of a key set, as `latchkey keys generate` prints it and as `LATCHKEY_KEYS`,
/// a key file or an SSM parameter holds it.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySetFile {
    pub version: u32,
    /// Generated for development; production refuses such keys.
    pub development: bool,
    pub hmac: KeyList<HmacKeyFile>,
    pub signing: KeyList<SigningKeyFile>,
    pub sealing: KeyList<SealingKeyFile>,
    /// base64; at least 32 bytes.
    pub pepper: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct KeyList<K> {
    pub active: String,
    pub keys: Vec<K>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct HmacKeyFile {
    pub kid: String,
    /// base64; at least 32 bytes.
    pub secret: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyFile {
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
    /// PKCS#8 PEM (PKCS#1 also accepted for RSA).
    pub private_key_pem: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SealingKeyFile {
    pub kid: String,
    /// base64; exactly 32 bytes.
    pub key: String,
}

impl std::fmt::Debug for KeySetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySetFile")
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

impl KeySetFile {
    /// Fresh keys: HMAC kid "1", one ES256 signing key, one sealing key, a pepper. Marked as
    /// development keys; see [`Self::set_development`].
    pub fn generate(rng: &dyn Rng) -> Result<Self, CryptoError> {
        let (pem, kid) = generate_es256(rng)?;
        Ok(Self {
            version: 1,
            development: true,
            hmac: KeyList {
                active: "1".into(),
                keys: vec![HmacKeyFile {
                    kid: "1".into(),
                    secret: B64.encode(rng.vec(32)?),
                }],
            },
            signing: KeyList {
                active: kid.clone(),
                keys: vec![SigningKeyFile {
                    kid,
                    alg: "ES256".into(),
                    private_key_pem: pem,
                }],
            },
            sealing: KeyList {
                active: "k1".into(),
                keys: vec![SealingKeyFile {
                    kid: "k1".into(),
                    key: B64.encode(rng.vec(32)?),
                }],
            },
            pepper: B64.encode(rng.vec(32)?),
        })
    }

    pub fn set_development(&mut self, development: bool) {
        self.development = development;
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    pub fn from_json(json: &str) -> Result<Self, CryptoError> {
        // Never echo the input: it is a secret.
        serde_json::from_str(json).map_err(|e| {
            CryptoError::Key(format!(
                "key set JSON is invalid at line {} column {}",
                e.line(),
                e.column()
            ))
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The secret of the active HMAC key (for independent verification in tests and tools).
    pub fn active_hmac_secret(&self) -> Vec<u8> {
        self.hmac
            .keys
            .iter()
            .find(|k| k.kid == self.hmac.active)
            .and_then(|k| B64.decode(&k.secret).ok())
            .unwrap_or_default()
    }
}

/// A P-256 key from the Rng port, as PKCS#8 PEM, with its RFC 7638 thumbprint as kid.
fn generate_es256(rng: &dyn Rng) -> Result<(String, String), CryptoError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    // A random scalar is out of range with probability ~2^-32; draw again if so.
    for _ in 0..8 {
        let bytes: [u8; 32] = rng.bytes()?;
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            let pem = secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| CryptoError::Key(format!("encoding P-256 key: {e}")))?
                .to_string();
            let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
                .map_err(|e| CryptoError::Key(e.to_string()))?;
            let kid = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
                .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
                .map_err(|e| CryptoError::Key(e.to_string()))?;
            return Ok((pem, kid));
        }
    }
    Err(CryptoError::Rng)
}

pub(super) struct HmacKey {
    pub kid: String,
    pub secret: SecretBytes,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

pub(super) struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub public_jwk: serde_json::Value,
}

pub struct KeySet {
    pub(super) hmac: Vec<HmacKey>,
    pub(super) hmac_active: usize,
    pub(super) signing: Vec<SigningKey>,
    pub(super) signing_active: usize,
    pub sealer: Sealer,
    pepper: SecretBytes,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hmac: Vec<&str> = self.hmac.iter().map(|k| k.kid.as_str()).collect();
        let signing: Vec<&str> = self.signing.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeySet")
            .field("hmac", &hmac)
            .field("signing", &signing)
            .finish_non_exhaustive()
    }
}

fn b64(what: &str, text: &str) -> Result<Vec<u8>, CryptoError> {
    B64.decode(text.trim())
        .map_err(|_| CryptoError::Key(format!("{what} is not base64")))
}

fn active_index<K>(
    list: &KeyList<K>,
    kid: impl Fn(&K) -> &str,
    what: &str,
) -> Result<usize, CryptoError> {
    let mut kids: Vec<&str> = list.keys.iter().map(&kid).collect();
    kids.sort_unstable();
    if kids.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(CryptoError::Key(format!("{what} key ids must be unique")));
    }
    list.keys
        .iter()
        .position(|k| kid(k) == list.active)
        .ok_or_else(|| {
            CryptoError::Key(format!(
                "active {what} key `{}` is not in the list",
                list.active
            ))
        })
}

impl KeySet {
    pub fn from_file(file: &KeySetFile) -> Result<Self, CryptoError> {
        if file.version != 1 {
            return Err(CryptoError::Key(format!(
                "unsupported key set version {}",
                file.version
            )));
        }
        let hmac_active = active_index(&file.hmac, |k| &k.kid, "HMAC")?;
        let hmac = file
            .hmac
            .keys
            .iter()
            .map(|k| {
                let secret = b64(&format!("HMAC key {}", k.kid), &k.secret)?;
                if secret.len() < 32 {
                    return Err(CryptoError::Key(format!(
                        "HMAC key {} must be at least 32 bytes",
                        k.kid
                    )));
                }
                Ok(HmacKey {
                    kid: k.kid.clone(),
                    secret: SecretBytes::new(secret.clone()),
                    encoding: EncodingKey::from_secret(&secret),
                    decoding: DecodingKey::from_secret(&secret),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signing_active = active_index(&file.signing, |k| &k.kid, "signing")?;
        let signing = file
            .signing
            .keys
            .iter()
            .map(signing_key)
            .collect::<Result<Vec<_>, _>>()?;
        let sealing = file
            .sealing
            .keys
            .iter()
            .map(|k| {
                Ok((
                    k.kid.clone(),
                    SecretBytes::new(b64(&format!("sealing key {}", k.kid), &k.key)?),
                ))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        active_index(&file.sealing, |k| &k.kid, "sealing")?;
        let sealer = Sealer::new(sealing, &file.sealing.active)?;
        let pepper = b64("pepper", &file.pepper)?;
        if pepper.len() < 32 {
            return Err(CryptoError::Key(
                "the pepper must be at least 32 bytes".into(),
            ));
        }
        Ok(Self {
            hmac,
            hmac_active,
            signing,
            signing_active,
            sealer,
            pepper: SecretBytes::new(pepper),
        })
    }

    /// The pepper for [`super::codes::keyed_hash`].
    pub fn pepper(&self) -> &[u8] {
        self.pepper.expose()
    }

    /// The public half of every signing key, as a JWK set (`{"keys":[...]}`).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.signing.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
    }
}

fn signing_key(k: &SigningKeyFile) -> Result<SigningKey, CryptoError> {
    let err =
        |e: jsonwebtoken::errors::Error| CryptoError::Key(format!("signing key {}: {e}", k.kid));
    let pem = k.private_key_pem.as_bytes();
    let (alg, encoding) = match k.alg.as_str() {
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(pem).map_err(err)?,
        ),
        "EdDSA" => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(pem).map_err(err)?,
        ),
        "RS256" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(pem).map_err(err)?,
        ),
        other => {
            return Err(CryptoError::Key(format!(
                "signing key {}: unsupported alg {other}",
                k.kid
            )));
        }
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(err)?;
    jwk.common.key_id = Some(k.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(err)?;
    let public_jwk = serde_json::to_value(&jwk).map_err(|e| CryptoError::Key(e.to_string()))?;
    Ok(SigningKey {
        kid: k.kid.clone(),
        alg,
        encoding,
        decoding,
        public_jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    #[test]
    fn generated_keys_load_and_round_trip_through_json() {
        let file = KeySetFile::generate(&SeededRng::new(1)).unwrap();
        assert!(file.is_development());
        let again = KeySetFile::from_json(&file.to_json_pretty()).unwrap();
        let set = KeySet::from_file(&again).unwrap();
        assert_eq!(set.pepper().len(), 32);
        assert_eq!(again.active_hmac_secret().len(), 32);
        let debug = format!("{file:?} {set:?}");
        assert!(!debug.contains(&file.pepper) && !debug.contains("PRIVATE KEY"));
    }

    #[test]
    fn jwks_lists_public_halves_only() {
        let set = KeySet::from_file(&KeySetFile::generate(&SeededRng::new(2)).unwrap()).unwrap();
        let jwks = set.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].as_str().is_some_and(|k| k.len() == 43));
        assert!(key.get("d").is_none(), "no private part");
    }

    #[test]
    fn invalid_sets_are_refused_with_a_reason() {
        let good = KeySetFile::generate(&SeededRng::new(3)).unwrap();
        let mut short = good.clone();
        short.hmac.keys[0].secret = B64.encode([0u8; 16]);
        assert!(
            KeySet::from_file(&short)
                .unwrap_err()
                .to_string()
                .contains("at least 32 bytes")
        );
        let mut missing = good.clone();
        missing.hmac.active = "9".into();
        assert!(KeySet::from_file(&missing).is_err());
        let mut pem = good.clone();
        pem.signing.keys[0].private_key_pem =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        assert!(KeySet::from_file(&pem).is_err());
        let mut pepper = good.clone();
        pepper.pepper = B64.encode([1u8; 8]);
        assert!(KeySet::from_file(&pepper).is_err());
        let mut dup = good;
        dup.sealing.keys.push(dup.sealing.keys[0].clone());
        assert!(KeySet::from_file(&dup).is_err());
        assert!(
            KeySetFile::from_json("{\"secret\": \"leak me\"")
                .unwrap_err()
                .to_string()
                .find("leak")
                .is_none()
        );
    }
}
