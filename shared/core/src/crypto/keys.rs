//! The key set: HMAC keys (Magento's HS256 tokens), asymmetric signing keys (published as JWKS),
//! sealing keys (AEAD for secrets at rest) and the pepper for keyed hashes. Stored as JSON
//! ([`KeySetFile`]), loaded once per process into a [`KeySet`].
//!
//! # Rotation
//!
//! Several keys of each kind may be live at once. One HMAC key, one sealing key and one signing
//! key *per algorithm* are active: new tokens and sealed values use them. [`KeySetFile::rotate`]
//! makes new active keys and retires the old ones:
//!
//! - a retired HMAC or signing key gets `publish_until` (Unix seconds): until then it still
//!   verifies the tokens it signed and, for signing keys, stays in the JWKS; from then on it is
//!   ignored, and the next rotation drops it from the file. The rotation's `keep_secs` must cover
//!   the longest lifetime of a token the key may have signed;
//! - sealing keys are never dropped: values sealed under an old key must still open;
//! - the pepper never rotates: codes and opaque tokens are stored as keyed hashes under it and
//!   looked up by those hashes, so another pepper would make every stored one unfindable.
//!
//! # File format
//!
//! Version 2 (written since key rotation): `signing.active` is a list of kids, at most one per
//! algorithm, and HMAC and signing keys may carry `publish_until`. Version 1 files (one
//! `signing.active` kid, no `publish_until`) are still read, and written back as version 2.
//!
//! # Tests
//!
//! Generating a key set makes a 2048-bit RSA key, which takes a while (see
//! [`KeySetFile::generate`]). Tests that need *a* key set, not a fresh one, take
//! [`KeySetFile::test_fixture`]: the same development keys on every call, generated once per
//! process.

use std::str::FromStr;
use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Deserializer, Serialize};

use super::aead::Sealer;
use super::spent::{Spent, Tally};
use super::{CryptoError, SecretBytes};
use crate::ports::{Rng, RngExt, SeededRng};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The file format version [`KeySetFile`] writes.
pub const VERSION: u32 = 2;

/// RSA modulus size of generated keys, and the least accepted in a key file.
const RSA_BITS: usize = 2048;
/// The largest RSA key aws-lc signs with.
const RSA_MAX_BITS: usize = 8192;

/// An asymmetric JWT signing algorithm. Each dialect pins the one it issues and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JWA name (`"RS256"`, `"ES256"`, `"EdDSA"`), as in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub(super) fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl FromStr for SigningAlg {
    type Err = CryptoError;

    /// The exact JWA name; nothing else (no case folding: `alg` values are case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                CryptoError::Input(format!(
                    "unknown signing algorithm `{s}` (expected RS256, ES256 or EdDSA)"
                ))
            })
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON form of a key set, as `latchkey keys generate` prints it and as `LATCHKEY_KEYS`,
/// a key file or an SSM parameter holds it.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySetFile {
    /// [`VERSION`] once read or generated (version 1 files are upgraded on reading).
    pub version: u32,
    /// Generated for development; production refuses such keys.
    pub development: bool,
    pub hmac: KeyList<HmacKeyFile>,
    pub signing: SigningKeyList,
    pub sealing: KeyList<SealingKeyFile>,
    /// base64; at least 32 bytes. Never rotates (see the module docs).
    pub pepper: String,
}

/// Keys of one kind, one of them active.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyList<K> {
    pub active: String,
    pub keys: Vec<K>,
}

/// Signing keys: at most one active per algorithm.
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyList {
    /// The active kids; version 1 files have a single string here.
    #[serde(deserialize_with = "one_or_many")]
    pub active: Vec<String>,
    pub keys: Vec<SigningKeyFile>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct HmacKeyFile {
    pub kid: String,
    /// base64; at least 32 bytes.
    pub secret: String,
    /// Retired: accepted until this Unix time (exclusive), then ignored. Absent: in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_until: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyFile {
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8 PEM (PKCS#1 also accepted for RSA).
    pub private_key_pem: String,
    /// Retired: published and accepted until this Unix time (exclusive). Absent: in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_until: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SealingKeyFile {
    pub kid: String,
    /// base64; exactly 32 bytes.
    pub key: String,
}

/// What [`KeySetFile::rotate`] replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A new active signing key for each of these algorithms.
    pub signing: Vec<SigningAlg>,
    /// A new active HMAC key.
    pub hmac: bool,
    /// A new active sealing key.
    pub sealing: bool,
}

impl Rotation {
    /// Every key that signs tokens: all signing algorithms and the HMAC key.
    pub fn token_keys() -> Self {
        Self {
            signing: SigningAlg::ALL.to_vec(),
            hmac: true,
            sealing: false,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(kid) => vec![kid],
        OneOrMany::Many(kids) => kids,
    })
}

impl std::fmt::Debug for KeySetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySetFile")
            .field("development", &self.development)
            .field("hmac_active", &self.hmac.active)
            .field("signing_active", &self.signing.active)
            .field("sealing_active", &self.sealing.active)
            .finish_non_exhaustive()
    }
}

/// Is a key with this `publish_until` still live at `at`?
fn live(publish_until: Option<i64>, at: i64) -> bool {
    publish_until.is_none_or(|until| at < until)
}

impl KeySetFile {
    /// Fresh keys: HMAC kid "1" (the kid Magento's tokens carry), one signing key per
    /// [`SigningAlg`] (kid = RFC 7638 thumbprint), sealing key "k1", a pepper. Marked as
    /// development keys; see [`Self::set_development`].
    ///
    /// The 2048-bit RSA key makes this slow: 0.3–0.5 s, in debug and release builds alike
    /// (the time goes to num-bigint-dig's Montgomery loop). Tests should take
    /// [`Self::test_fixture`].
    pub fn generate(rng: &dyn Rng) -> Result<Self, CryptoError> {
        let signing = SigningAlg::ALL
            .into_iter()
            .map(|alg| new_signing_key(alg, rng))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            version: VERSION,
            development: true,
            hmac: KeyList {
                active: "1".into(),
                keys: vec![HmacKeyFile {
                    kid: "1".into(),
                    secret: B64.encode(rng.vec(32)?),
                    publish_until: None,
                }],
            },
            signing: SigningKeyList {
                active: signing.iter().map(|k| k.kid.clone()).collect(),
                keys: signing,
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

    /// For tests: a development key set, the same on every call, made once per process from a
    /// fixed seed (so the RSA key generation is paid once, not per test). Load it with
    /// [`KeySet::from_file`]. Never for real use: anyone can make these keys, and production
    /// refuses development keys anyway.
    pub fn test_fixture() -> KeySetFile {
        static FIXTURE: OnceLock<KeySetFile> = OnceLock::new();
        FIXTURE
            .get_or_init(|| {
                #[allow(
                    clippy::expect_used,
                    reason = "SeededRng cannot fail and generated keys always encode; a fixture \
                              that cannot be made is a broken build, caught by this module's tests"
                )]
                KeySetFile::generate(&SeededRng::new(0x6c61_7463_686b_6579))
                    .expect("the test key set")
            })
            .clone()
    }

    pub fn set_development(&mut self, development: bool) {
        self.development = development;
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Parses a key set file of version 1 or 2; the result is version 2.
    pub fn from_json(json: &str) -> Result<Self, CryptoError> {
        // Never echo the input: it is a secret.
        let mut file: Self = serde_json::from_str(json).map_err(|e| {
            CryptoError::Key(format!(
                "key set JSON is invalid at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        if !(1..=VERSION).contains(&file.version) {
            return Err(CryptoError::Key(format!(
                "unsupported key set version {} (this build reads 1 to {VERSION})",
                file.version
            )));
        }
        file.version = VERSION;
        Ok(file)
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

    /// The active signing kid of `alg`, if there is one.
    pub fn active_signing_kid(&self, alg: SigningAlg) -> Option<&str> {
        self.signing
            .keys
            .iter()
            .find(|k| k.alg == alg && self.signing.active.contains(&k.kid))
            .map(|k| k.kid.as_str())
    }

    /// Makes a new active key of each kind `what` names and retires the one it replaces:
    /// a retired HMAC or signing key gets `publish_until = now + keep_secs`, where `keep_secs`
    /// is the longest lifetime of a token it may have signed (`0` drops it at once, for a
    /// compromised key). Then drops every HMAC and signing key whose `publish_until <= now`.
    /// Sealing keys are never dropped; the pepper never rotates (see the module docs).
    ///
    /// An algorithm without an active key (a version 1 file has only ES256) just gets one.
    /// Inactive keys without `publish_until` (possible in hand-edited files) are left alone.
    /// On error the file is unchanged.
    pub fn rotate(
        &mut self,
        rng: &dyn Rng,
        now: i64,
        what: &Rotation,
        keep_secs: i64,
    ) -> Result<(), CryptoError> {
        let until = now.saturating_add(keep_secs.max(0));
        // Everything that can fail first, so that an error leaves the file as it was.
        let mut algs = what.signing.clone();
        algs.sort_by_key(|a| SigningAlg::ALL.iter().position(|b| b == a));
        algs.dedup();
        let new_signing = algs
            .into_iter()
            .map(|alg| new_signing_key(alg, rng))
            .collect::<Result<Vec<_>, _>>()?;
        if new_signing
            .iter()
            .any(|new| self.signing.keys.iter().any(|k| k.kid == new.kid))
        {
            return Err(CryptoError::Key(
                "a new signing key id is already taken".into(),
            ));
        }
        let new_hmac = if what.hmac {
            Some(HmacKeyFile {
                kid: next_kid(self.hmac.keys.iter().map(|k| k.kid.as_str()), ""),
                secret: B64.encode(rng.vec(32)?),
                publish_until: None,
            })
        } else {
            None
        };
        let new_sealing = if what.sealing {
            Some(SealingKeyFile {
                kid: next_kid(self.sealing.keys.iter().map(|k| k.kid.as_str()), "k"),
                key: B64.encode(rng.vec(32)?),
            })
        } else {
            None
        };

        for new in new_signing {
            let old = self
                .signing
                .keys
                .iter_mut()
                .find(|k| k.alg == new.alg && self.signing.active.contains(&k.kid));
            match old {
                Some(old) => {
                    old.publish_until = Some(until);
                    let old_kid = old.kid.clone();
                    for kid in &mut self.signing.active {
                        if *kid == old_kid {
                            kid.clone_from(&new.kid);
                        }
                    }
                }
                None => self.signing.active.push(new.kid.clone()),
            }
            self.signing.keys.push(new);
        }
        if let Some(new) = new_hmac {
            for k in &mut self.hmac.keys {
                if k.kid == self.hmac.active {
                    k.publish_until = Some(until);
                }
            }
            self.hmac.active.clone_from(&new.kid);
            self.hmac.keys.push(new);
        }
        if let Some(new) = new_sealing {
            self.sealing.active.clone_from(&new.kid);
            self.sealing.keys.push(new);
        }

        self.signing.keys.retain(|k| live(k.publish_until, now));
        self.hmac.keys.retain(|k| live(k.publish_until, now));
        self.version = VERSION;
        Ok(())
    }
}

/// `<prefix><n>` for the smallest n above every numeric kid of that shape (so HMAC kids go
/// "1", "2", … like Magento's, sealing kids "k1", "k2", …), and unused.
fn next_kid<'a>(kids: impl Iterator<Item = &'a str> + Clone, prefix: &str) -> String {
    let highest = kids
        .clone()
        .filter_map(|k| k.strip_prefix(prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut n = highest.saturating_add(1);
    loop {
        let kid = format!("{prefix}{n}");
        if !kids.clone().any(|k| k == kid) {
            return kid;
        }
        n = n.wrapping_add(1);
    }
}

pub(super) fn new_signing_key(
    alg: SigningAlg,
    rng: &dyn Rng,
) -> Result<SigningKeyFile, CryptoError> {
    let pem = match alg {
        SigningAlg::RS256 => generate_rs256(rng)?,
        SigningAlg::ES256 => generate_es256(rng)?,
        SigningAlg::EdDSA => generate_eddsa(rng)?,
    };
    // Read the way a key file is, and the kid made from the same JWK loading publishes.
    let encoding = encoding_key(alg, &pem).map_err(|e| CryptoError::Key(e.to_string()))?;
    let kid = Signer::new(alg, &encoding)
        .map_err(CryptoError::Key)?
        .public_jwk(alg)
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .map_err(|e| CryptoError::Key(format!("thumbprint of a new {alg} key: {e}")))?;
    Ok(SigningKeyFile {
        kid,
        alg,
        private_key_pem: pem,
        publish_until: None,
    })
}

/// p256, rsa and ed25519 share the `pkcs8` crate, and so this error type.
fn pem_error(alg: SigningAlg) -> impl Fn(p256::pkcs8::Error) -> CryptoError {
    move |e| CryptoError::Key(format!("encoding a new {alg} key: {e}"))
}

/// A P-256 key from the Rng port, as PKCS#8 PEM.
fn generate_es256(rng: &dyn Rng) -> Result<String, CryptoError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    // A random scalar is out of range with probability ~2^-32; draw again if so.
    for _ in 0..8 {
        let bytes = zeroize::Zeroizing::new(rng.bytes::<32>()?);
        if let Ok(secret) = p256::SecretKey::from_slice(bytes.as_slice()) {
            let pem = secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(pem_error(SigningAlg::ES256))?;
            return Ok(pem.to_string());
        }
    }
    Err(CryptoError::Rng)
}

/// An Ed25519 key from the Rng port, as PKCS#8 v1 PEM (the 32-byte seed only: jsonwebtoken
/// reads that form). Any 32 bytes are a valid Ed25519 secret key, so the seed comes straight
/// from the port; no `rand_core` adapter is needed here.
fn generate_eddsa(rng: &dyn Rng) -> Result<String, CryptoError> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes, spki::der::pem::LineEnding};
    let seed = zeroize::Zeroizing::new(rng.bytes::<32>()?);
    let keypair = KeypairBytes {
        secret_key: *seed,
        public_key: None,
    };
    let pem = keypair
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(pem_error(SigningAlg::EdDSA))?;
    Ok(pem.to_string())
}

/// An RSA key from the Rng port, as PKCS#8 PEM.
fn generate_rs256(rng: &dyn Rng) -> Result<String, CryptoError> {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let mut port = PortRng::new(rng);
    let key = rsa::RsaPrivateKey::new(&mut port, RSA_BITS)
        .map_err(|e| CryptoError::Key(format!("generating an RSA key: {e}")))?;
    if port.failed {
        return Err(CryptoError::Rng);
    }
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(pem_error(SigningAlg::RS256))?;
    Ok(pem.to_string())
}

/// The [`Rng`] port as a `rand_core` 0.6 generator, for the `rsa` crate, whose prime search
/// draws its randomness through `RngCore` itself. Going through the port keeps key generation
/// under the same control as every other random draw: production reads the OS generator
/// through [`crate::ports::SystemRng`], and tests reproduce keys from a seed.
///
/// `RngCore::fill_bytes` cannot report an error, so a failure of the port is remembered in
/// `failed` and the caller discards whatever was made. Until then the prime search must still
/// end, so from the failure on the bytes come from a SHA-256 counter rather than a constant
/// (on which the search would spin for ever).
struct PortRng<'a> {
    rng: &'a dyn Rng,
    failed: bool,
    counter: u64,
}

impl<'a> PortRng<'a> {
    fn new(rng: &'a dyn Rng) -> Self {
        Self {
            rng,
            failed: false,
            counter: 0,
        }
    }

    /// Filler after a failure: never used for a key that is kept.
    fn filler(&mut self, dest: &mut [u8]) {
        use sha2::Digest;
        for chunk in dest.chunks_mut(32) {
            self.counter = self.counter.wrapping_add(1);
            let block = sha2::Sha256::digest(self.counter.to_le_bytes());
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
    }
}

impl rand_core::RngCore for PortRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.failed || self.rng.fill(dest).is_err() {
            self.failed = true;
            self.filler(dest);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        const CODE: std::num::NonZeroU32 =
            match std::num::NonZeroU32::new(rand_core::Error::CUSTOM_START) {
                Some(code) => code,
                None => std::num::NonZeroU32::MIN,
            };
        if self.failed || self.rng.fill(dest).is_err() {
            self.failed = true;
            return Err(rand_core::Error::from(CODE));
        }
        Ok(())
    }
}

// The port's contract is a cryptographically secure generator.
impl rand_core::CryptoRng for PortRng<'_> {}

pub(super) struct HmacKey {
    pub kid: String,
    pub secret: SecretBytes,
    pub publish_until: Option<i64>,
}

pub(super) struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub signer: Signer,
    pub decoding: DecodingKey,
    pub public_jwk: serde_json::Value,
    pub publish_until: Option<i64>,
}

/// A loaded, checked key set.
pub struct KeySet {
    hmac: Vec<HmacKey>,
    hmac_active: usize,
    signing: Vec<SigningKey>,
    /// Indexes into `signing`, at most one per algorithm.
    signing_active: Vec<usize>,
    pub sealer: Sealer,
    pepper: SecretBytes,
    /// RS256 signatures made so far, and their time (see [`KeySet::rs256_spent`]).
    rs256: Spent,
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

fn unique_kids<'a>(kids: impl Iterator<Item = &'a str>, what: &str) -> Result<(), CryptoError> {
    let mut kids: Vec<&str> = kids.collect();
    kids.sort_unstable();
    if kids.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(CryptoError::Key(format!("{what} key ids must be unique")));
    }
    Ok(())
}

fn active_must_not_retire(
    kid: &str,
    publish_until: Option<i64>,
    what: &str,
) -> Result<(), CryptoError> {
    if publish_until.is_some() {
        return Err(CryptoError::Key(format!(
            "active {what} key `{kid}` has publish_until: only retired keys have one"
        )));
    }
    Ok(())
}

impl KeySet {
    /// [`KeySet::from_file`], then [`KeySet::check_private_keys`]: how a long-running process
    /// (`latchkey serve`) or the CLI loads keys.
    pub fn from_file_checked(file: &KeySetFile) -> Result<Self, CryptoError> {
        let keys = Self::from_file(file)?;
        keys.check_private_keys()?;
        Ok(keys)
    }

    /// Parses and checks every RSA private key now, not at its first signature: what a
    /// long-running process (`latchkey serve`) or the CLI does once, so a broken key stops it at
    /// start. A function's cold start leaves them for the routes that sign ([`LazyRsa`]).
    pub fn check_private_keys(&self) -> Result<(), CryptoError> {
        for key in &self.signing {
            if let Signer::Rs256(rsa) = &key.signer {
                rsa.pair().map_err(|e| named(&key.kid, e))?;
            }
        }
        Ok(())
    }

    pub fn from_file(file: &KeySetFile) -> Result<Self, CryptoError> {
        if !(1..=VERSION).contains(&file.version) {
            return Err(CryptoError::Key(format!(
                "unsupported key set version {}",
                file.version
            )));
        }

        unique_kids(file.hmac.keys.iter().map(|k| k.kid.as_str()), "HMAC")?;
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
                    secret: SecretBytes::new(secret),
                    publish_until: k.publish_until,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hmac_active = hmac
            .iter()
            .position(|k| k.kid == file.hmac.active)
            .ok_or_else(|| {
                CryptoError::Key(format!(
                    "active HMAC key `{}` is not in the list",
                    file.hmac.active
                ))
            })?;
        if let Some(k) = hmac.get(hmac_active) {
            active_must_not_retire(&k.kid, k.publish_until, "HMAC")?;
        }

        unique_kids(file.signing.keys.iter().map(|k| k.kid.as_str()), "signing")?;
        let signing = file
            .signing
            .keys
            .iter()
            .map(signing_key)
            .collect::<Result<Vec<_>, _>>()?;
        let mut signing_active: Vec<usize> = Vec::with_capacity(file.signing.active.len());
        for kid in &file.signing.active {
            let i = signing.iter().position(|k| &k.kid == kid).ok_or_else(|| {
                CryptoError::Key(format!("active signing key `{kid}` is not in the list"))
            })?;
            let Some(key) = signing.get(i) else { continue };
            active_must_not_retire(kid, key.publish_until, "signing")?;
            if signing_active
                .iter()
                .any(|&j| signing.get(j).is_some_and(|other| other.alg == key.alg))
            {
                return Err(CryptoError::Key(format!(
                    "more than one active {} signing key",
                    key.alg
                )));
            }
            signing_active.push(i);
        }

        unique_kids(file.sealing.keys.iter().map(|k| k.kid.as_str()), "sealing")?;
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
            rs256: Spent::default(),
        })
    }

    /// RS256 signatures made so far with this key set, and the time they took. A 2048-bit RSA
    /// signature costs more than most whole requests (0.66-0.91 ms here, infra/BENCH.md) and the
    /// wizard's and Glue's contracts ask for it, so the flows benchmark tells it apart from the
    /// handler's own time, as it does the password hash.
    pub fn rs256_spent(&self) -> Tally {
        self.rs256.tally()
    }

    /// Signs with `key`, timing the signature when it is RS256 (see [`KeySet::rs256_spent`]).
    pub(super) fn sign_with(
        &self,
        key: &SigningKey,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if key.alg != SigningAlg::RS256 {
            return key.sign(message);
        }
        let start = Spent::start();
        let signature = key.sign(message);
        self.rs256.add(start);
        signature
    }

    /// The pepper for [`super::codes::keyed_hash`].
    pub fn pepper(&self) -> &[u8] {
        self.pepper.expose()
    }

    /// The public half of every signing key still published at `now` (in use, or retired with
    /// `publish_until > now`), as a JWK set: `{"keys":[{"kid","alg","use":"sig",...}]}`.
    pub fn jwks(&self, now: i64) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .signing
            .iter()
            .filter(|k| live(k.publish_until, now))
            .map(|k| k.public_jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The algorithms that have an active signing key (all three for generated sets; a version
    /// 1 file has only ES256 until `latchkey keys rotate` adds the others).
    pub fn signing_algs(&self) -> Vec<SigningAlg> {
        self.signing_active
            .iter()
            .filter_map(|&i| self.signing.get(i))
            .map(|k| k.alg)
            .collect()
    }

    pub(super) fn active_signing(&self, alg: SigningAlg) -> Option<&SigningKey> {
        self.signing_active
            .iter()
            .filter_map(|&i| self.signing.get(i))
            .find(|k| k.alg == alg)
    }

    /// The signing key `kid` of `alg`, if it is still published at `at`.
    pub(super) fn published_signing(
        &self,
        kid: &str,
        alg: SigningAlg,
        at: i64,
    ) -> Option<&SigningKey> {
        self.signing
            .iter()
            .find(|k| k.kid == kid && k.alg == alg && live(k.publish_until, at))
    }

    pub(super) fn active_hmac(&self) -> Option<&HmacKey> {
        self.hmac.get(self.hmac_active)
    }

    /// The HMAC key `kid`, if it is still accepted at `at`.
    pub(super) fn live_hmac(&self, kid: &str, at: i64) -> Option<&HmacKey> {
        self.hmac
            .iter()
            .find(|k| k.kid == kid && live(k.publish_until, at))
    }
}

/// The jsonwebtoken key for `alg` from a PEM. Ed25519 keys are normalised to PKCS#8 v1 (the
/// seed alone): other tools may write v2, with the public key, which jsonwebtoken's JWK export
/// does not take.
fn encoding_key(alg: SigningAlg, pem: &str) -> Result<EncodingKey, jsonwebtoken::errors::Error> {
    Ok(match alg {
        SigningAlg::ES256 => EncodingKey::from_ec_pem(pem.as_bytes())?,
        SigningAlg::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes())?,
        SigningAlg::EdDSA => {
            // aws-lc reads v1 and v2, checks a v2 file's public key against its secret key,
            // and writes v1 back (ed25519-dalek did the same, but computing the public key at
            // opt-level "z" was most of a cold start's key loading).
            use aws_lc_rs::signature::Ed25519KeyPair;
            let invalid = || jsonwebtoken::errors::ErrorKind::InvalidEddsaKey;
            let der = EncodingKey::from_ed_pem(pem.as_bytes())?;
            let pair = Ed25519KeyPair::from_pkcs8(der.as_bytes()).map_err(|_| invalid())?;
            let v1 = pair.to_pkcs8v1().map_err(|_| invalid())?;
            EncodingKey::from_ed_der(v1.as_ref())
        }
    })
}

/// A private key parsed once, when the key set loads. jsonwebtoken's `crypto::sign` parses the
/// key again on every call (and for RSA checks it: about half of an RS256 signature's 1.4 ms),
/// so signatures are made here, by aws-lc-rs, jsonwebtoken's own backend.
pub(super) enum Signer {
    /// [`RSA_BITS`] to [`RSA_MAX_BITS`] bits.
    Rs256(LazyRsa),
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    EdDsa(aws_lc_rs::signature::Ed25519KeyPair),
}

/// An RSA private key whose public half is read from its DER when the key set loads, and whose
/// key pair aws-lc parses and checks (`RSA_check_key`: about half of what loading a key set
/// costs a cold start, 0.4-0.6 ms here) at its first signature. Most functions verify RS256
/// tokens or sign none: they never pay for it. `latchkey serve` and the CLI check every key
/// when they load (see [`KeySet::check_private_keys`]), so a broken key stops them at once.
pub(super) struct LazyRsa {
    /// PKCS#1 DER, as jsonwebtoken holds it.
    der: SecretBytes,
    /// The modulus and public exponent, big-endian, without leading zeros.
    n: Vec<u8>,
    e: Vec<u8>,
    pair: std::sync::OnceLock<Result<aws_lc_rs::signature::RsaKeyPair, String>>,
}

impl LazyRsa {
    fn new(der: &[u8]) -> Result<Self, String> {
        use rsa::pkcs1::RsaPrivateKey;
        use rsa::pkcs1::der::Decode;
        let key = RsaPrivateKey::from_der(der).map_err(|e| format!("RS256 key: {e}"))?;
        let n = key.modulus.as_bytes().to_vec();
        let e = key.public_exponent.as_bytes().to_vec();
        let bits = n.first().map_or(0, |top| {
            n.len() * 8 - usize::try_from(top.leading_zeros()).unwrap_or(0)
        });
        if bits < RSA_BITS {
            return Err(format!("RSA keys must have at least {RSA_BITS} bits"));
        }
        if bits > RSA_MAX_BITS {
            return Err(format!("RSA keys must have at most {RSA_MAX_BITS} bits"));
        }
        Ok(Self {
            der: SecretBytes::new(der.to_vec()),
            n,
            e,
            pair: std::sync::OnceLock::new(),
        })
    }

    /// The key pair, parsed and checked once.
    fn pair(&self) -> Result<&aws_lc_rs::signature::RsaKeyPair, String> {
        self.pair
            .get_or_init(|| {
                aws_lc_rs::signature::RsaKeyPair::from_der(self.der.expose())
                    .map_err(|e| format!("RS256 key: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Signer {
    /// The key in `encoding` (as jsonwebtoken holds it: PKCS#1 DER for RSA, PKCS#8 DER else).
    /// RSA keys under [`RSA_BITS`] or over [`RSA_MAX_BITS`] bits are refused (as aws-lc would
    /// refuse them when it parses the pair).
    fn new(alg: SigningAlg, encoding: &EncodingKey) -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let der = encoding.as_bytes();
        let bad = |e: aws_lc_rs::error::KeyRejected| format!("{alg} key: {e}");
        Ok(match alg {
            SigningAlg::RS256 => Signer::Rs256(LazyRsa::new(der)?),
            SigningAlg::ES256 => Signer::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?,
            ),
            SigningAlg::EdDSA => Signer::EdDsa(Ed25519KeyPair::from_pkcs8(der).map_err(bad)?),
        })
    }

    /// The public half as a JWK, as `Jwk::from_encoding_key` makes it, from what loading
    /// already read: RSA's modulus and exponent from the DER, the EC point and the Ed25519 key
    /// from the parsed pairs. jsonwebtoken would parse every private key a second time (and
    /// check RSA's, `RSA_check_key`: most of what loading a key set cost a cold start).
    fn public_jwk(&self, alg: SigningAlg) -> jsonwebtoken::errors::Result<Jwk> {
        use aws_lc_rs::signature::KeyPair;
        use jsonwebtoken::errors::ErrorKind;
        use jsonwebtoken::jwk::{
            AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
            EllipticCurveKeyType, OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters,
            RSAKeyType,
        };
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let algorithm = match self {
            Signer::Rs256(public) => AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(&public.n),
                e: b64(&public.e),
            }),
            Signer::Es256(pair) => {
                // SEC 1 uncompressed: 0x04, then x and y, 32 bytes each.
                let point = pair.public_key().as_ref();
                let (Some(0x04), Some(x), Some(y)) =
                    (point.first(), point.get(1..33), point.get(33..65))
                else {
                    return Err(ErrorKind::InvalidEcdsaKey.into());
                };
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(x),
                    y: b64(y),
                })
            }
            Signer::EdDsa(pair) => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(pair.public_key().as_ref()),
            }),
        };
        Ok(Jwk {
            common: CommonParameters {
                key_algorithm: Some(alg.jwt().into()),
                ..Default::default()
            },
            algorithm,
        })
    }

    /// The JWS signature of `message`: RSASSA-PKCS1-v1_5 with SHA-256, ECDSA P-256 with
    /// SHA-256 as the fixed-width `r || s` JWS wants, or Ed25519. RSA and Ed25519 signatures are
    /// deterministic; ECDSA's nonce comes from aws-lc's own generator, as it would through
    /// jsonwebtoken.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let failed = |_| CryptoError::Failure("signing failed".into());
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok(match self {
            Signer::Rs256(key) => {
                let key = key.pair().map_err(CryptoError::Key)?;
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                signature
            }
            Signer::Es256(key) => key.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            Signer::EdDsa(key) => key.try_sign(message).map_err(failed)?.as_ref().to_vec(),
        })
    }
}

/// A failure of the signing key `kid`, named: how every signing-key error reads, at load, at
/// the start-up check and at a signature.
fn named(kid: &str, e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Key(format!("signing key {kid}: {e}"))
}

impl SigningKey {
    /// The JWS signature of `message` (see [`Signer::sign`]); an RSA key failing the check of
    /// its first signature is named.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.signer.sign(message).map_err(|e| match e {
            CryptoError::Key(why) => named(&self.kid, why),
            other => other,
        })
    }
}

fn signing_key(k: &SigningKeyFile) -> Result<SigningKey, CryptoError> {
    let err = |e: jsonwebtoken::errors::Error| named(&k.kid, e);
    let encoding = encoding_key(k.alg, &k.private_key_pem).map_err(err)?;
    let signer = Signer::new(k.alg, &encoding).map_err(|e| named(&k.kid, e))?;
    let mut jwk = signer.public_jwk(k.alg).map_err(err)?;
    jwk.common.key_id = Some(k.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(err)?;
    let public_jwk = serde_json::to_value(&jwk).map_err(|e| CryptoError::Key(e.to_string()))?;
    Ok(SigningKey {
        kid: k.kid.clone(),
        alg: k.alg,
        signer,
        decoding,
        public_jwk,
        publish_until: k.publish_until,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ports::RngFailure;

    const NOW: i64 = 1_900_000_000;

    /// Seeded bytes until `budget` bytes are drawn, then failures.
    struct FailingRng {
        inner: SeededRng,
        budget: AtomicUsize,
    }

    impl FailingRng {
        fn after(bytes: usize) -> Self {
            Self {
                inner: SeededRng::new(99),
                budget: AtomicUsize::new(bytes),
            }
        }
    }

    impl Rng for FailingRng {
        fn fill(&self, dest: &mut [u8]) -> Result<(), RngFailure> {
            self.budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(dest.len())
                })
                .map_err(|_| RngFailure)?;
            self.inner.fill(dest)
        }
    }

    fn signing_kids(file: &KeySetFile) -> Vec<String> {
        file.signing.keys.iter().map(|k| k.kid.clone()).collect()
    }

    fn jwks_kids(set: &KeySet, now: i64) -> Vec<String> {
        set.jwks(now)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_test_fixture_loads_and_round_trips_through_json() {
        let file = KeySetFile::test_fixture();
        assert_eq!(
            file.to_json_pretty(),
            KeySetFile::test_fixture().to_json_pretty(),
            "the same keys on every call"
        );
        assert!(file.is_development());
        assert_eq!(file.version, VERSION);
        let again = KeySetFile::from_json(&file.to_json_pretty()).unwrap();
        let set = KeySet::from_file(&again).unwrap();
        assert_eq!(set.pepper().len(), 32);
        assert_eq!(again.active_hmac_secret().len(), 32);
        assert_eq!(set.signing_algs(), SigningAlg::ALL.to_vec());
        let debug = format!("{file:?} {set:?}");
        assert!(!debug.contains(&file.pepper) && !debug.contains("PRIVATE KEY"));
    }

    #[test]
    fn generate_makes_one_key_of_each_kind_with_thumbprint_kids() {
        let file = KeySetFile::generate(&SeededRng::new(1)).unwrap();
        assert_eq!(file.hmac.active, "1");
        assert_eq!(file.sealing.active, "k1");
        assert_eq!(file.signing.active, signing_kids(&file));
        let algs: Vec<SigningAlg> = file.signing.keys.iter().map(|k| k.alg).collect();
        assert_eq!(algs, SigningAlg::ALL.to_vec());
        for alg in SigningAlg::ALL {
            let kid = file.active_signing_kid(alg).unwrap();
            assert_eq!(kid.len(), 43, "base64url SHA-256: {kid}");
        }
        let json = file.to_json_pretty();
        assert!(json.contains("\"version\": 2"));
        assert!(!json.contains("publish_until"), "nothing retired yet");
        // A different seed, different keys.
        assert_ne!(json, KeySetFile::test_fixture().to_json_pretty());
    }

    #[test]
    fn jwks_lists_public_halves_only_with_their_thumbprints() {
        let set = KeySet::from_file(&KeySetFile::test_fixture()).unwrap();
        let jwks = set.jwks(NOW);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3);
        let expect = [
            ("RS256", "RSA", &["n", "e"][..]),
            ("ES256", "EC", &["crv", "x", "y"][..]),
            ("EdDSA", "OKP", &["crv", "x"][..]),
        ];
        for (key, (alg, kty, members)) in keys.iter().zip(expect) {
            assert_eq!(key["alg"], alg);
            assert_eq!(key["kty"], kty);
            assert_eq!(key["use"], "sig");
            for m in members {
                assert!(key[m].is_string(), "{alg} {m}");
            }
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(private).is_none(), "{alg} has no {private}");
            }
            let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
            assert_eq!(
                jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                key["kid"].as_str().unwrap(),
                "kid is the RFC 7638 thumbprint"
            );
        }
        assert_eq!(keys[0]["crv"], serde_json::Value::Null);
        assert_eq!(keys[1]["crv"], "P-256");
        assert_eq!(keys[2]["crv"], "Ed25519");
    }

    #[test]
    fn version_1_files_are_read_and_written_as_version_2() {
        let fixture = KeySetFile::test_fixture();
        let es256 = fixture
            .signing
            .keys
            .iter()
            .find(|k| k.alg == SigningAlg::ES256)
            .unwrap();
        let v1 = serde_json::json!({
            "version": 1,
            "development": true,
            "hmac": {"active": "1", "keys": [{"kid": "1", "secret": fixture.hmac.keys[0].secret}]},
            "signing": {"active": es256.kid, "keys": [
                {"kid": es256.kid, "alg": "ES256", "private_key_pem": es256.private_key_pem}
            ]},
            "sealing": {"active": "k1", "keys": [{"kid": "k1", "key": fixture.sealing.keys[0].key}]},
            "pepper": fixture.pepper,
        })
        .to_string();
        let mut file = KeySetFile::from_json(&v1).unwrap();
        assert_eq!(file.version, 2);
        assert_eq!(file.signing.active, vec![es256.kid.clone()]);
        let set = KeySet::from_file(&file).unwrap();
        assert_eq!(set.signing_algs(), vec![SigningAlg::ES256]);
        let written = file.to_json_pretty();
        assert!(written.contains("\"version\": 2"));
        let reread: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(reread["signing"]["active"], serde_json::json!([es256.kid]));

        // Rotating the missing algorithms in just adds them.
        let rotation = Rotation {
            signing: vec![SigningAlg::EdDSA],
            ..Rotation::default()
        };
        file.rotate(&SeededRng::new(5), NOW, &rotation, 60).unwrap();
        assert_eq!(
            file.active_signing_kid(SigningAlg::ES256),
            Some(&*es256.kid)
        );
        assert!(file.signing.keys.iter().all(|k| k.publish_until.is_none()));
        let set = KeySet::from_file(&file).unwrap();
        assert_eq!(
            set.signing_algs(),
            vec![SigningAlg::ES256, SigningAlg::EdDSA]
        );

        for version in [0, 3] {
            let other = v1.replace("\"version\":1", &format!("\"version\":{version}"));
            assert!(
                KeySetFile::from_json(&other)
                    .unwrap_err()
                    .to_string()
                    .contains("unsupported key set version")
            );
        }
    }

    #[test]
    fn rotation_retires_keys_until_publish_until_then_drops_them() {
        let mut file = KeySetFile::test_fixture();
        let before = KeySet::from_file(&file).unwrap();
        let sealed = before
            .sealer
            .seal(b"totp secret", b"user:1", &SeededRng::new(1))
            .unwrap();
        let old: Vec<String> = signing_kids(&file);
        let keep = 3600;
        file.rotate(
            &SeededRng::new(2),
            NOW,
            &Rotation {
                signing: SigningAlg::ALL.to_vec(),
                hmac: true,
                sealing: true,
            },
            keep,
        )
        .unwrap();

        // New active keys; the old ones retired, not gone.
        for (alg, old_kid) in SigningAlg::ALL.into_iter().zip(&old) {
            let new_kid = file.active_signing_kid(alg).unwrap();
            assert_ne!(new_kid, old_kid);
            let retired = file
                .signing
                .keys
                .iter()
                .find(|k| &k.kid == old_kid)
                .unwrap();
            assert_eq!(retired.publish_until, Some(NOW + keep));
        }
        assert_eq!(file.signing.active.len(), 3);
        assert_eq!(file.hmac.active, "2");
        assert_eq!(file.hmac.keys[0].publish_until, Some(NOW + keep));
        assert_eq!(file.sealing.active, "k2");
        assert_eq!(file.sealing.keys.len(), 2);

        // Published until publish_until, exclusive; written and read back alike.
        let file = KeySetFile::from_json(&file.to_json_pretty()).unwrap();
        let set = KeySet::from_file(&file).unwrap();
        assert_eq!(jwks_kids(&set, NOW).len(), 6);
        assert_eq!(jwks_kids(&set, NOW + keep - 1).len(), 6);
        let after: Vec<String> = jwks_kids(&set, NOW + keep);
        assert_eq!(after.len(), 3);
        assert!(old.iter().all(|k| !after.contains(k)));
        assert!(set.live_hmac("1", NOW + keep - 1).is_some());
        assert!(set.live_hmac("1", NOW + keep).is_none());
        assert_eq!(set.active_hmac().unwrap().kid, "2");

        // Old sealed values still open; new ones are sealed under k2.
        assert_eq!(
            set.sealer.open(&sealed, b"user:1").unwrap().expose(),
            b"totp secret"
        );
        let new_sealed = set
            .sealer
            .seal(b"x", b"user:1", &SeededRng::new(3))
            .unwrap();
        assert_eq!(&new_sealed[2..4], b"k2");

        // The next rotation, once they are past publish_until, drops them; sealing keys stay.
        let mut file = file;
        let pepper = file.pepper.clone();
        file.rotate(&SeededRng::new(4), NOW + keep, &Rotation::default(), keep)
            .unwrap();
        assert_eq!(signing_kids(&file), file.signing.active);
        assert_eq!(file.hmac.keys.len(), 1);
        assert_eq!(file.sealing.keys.len(), 2);
        assert_eq!(file.pepper, pepper, "the pepper never rotates");
    }

    #[test]
    fn keep_zero_drops_the_replaced_key_at_once_and_kids_count_up() {
        let mut file = KeySetFile::test_fixture();
        let hmac = Rotation {
            hmac: true,
            ..Rotation::default()
        };
        file.rotate(&SeededRng::new(1), NOW, &hmac, 0).unwrap();
        let kids: Vec<&str> = file.hmac.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["2"]);
        file.rotate(&SeededRng::new(2), NOW, &hmac, 60).unwrap();
        file.rotate(&SeededRng::new(3), NOW, &hmac, 60).unwrap();
        let kids: Vec<&str> = file.hmac.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["2", "3", "4"]);
        assert_eq!(file.hmac.active, "4");
        KeySet::from_file(&file).unwrap();

        let es256 = Rotation {
            signing: vec![SigningAlg::ES256, SigningAlg::ES256],
            ..Rotation::default()
        };
        let old = file
            .active_signing_kid(SigningAlg::ES256)
            .unwrap()
            .to_owned();
        file.rotate(&SeededRng::new(4), NOW, &es256, 0).unwrap();
        assert_eq!(
            file.signing.keys.len(),
            3,
            "one new ES256 key, the old one gone"
        );
        assert!(file.signing.keys.iter().all(|k| k.kid != old));
    }

    #[test]
    fn a_failing_rng_fails_cleanly_and_changes_nothing() {
        assert!(matches!(
            KeySetFile::generate(&FailingRng::after(0)),
            Err(CryptoError::Rng)
        ));
        // Mid-way through the RSA prime search: the search still ends, the key is discarded.
        assert!(matches!(
            generate_rs256(&FailingRng::after(300)),
            Err(CryptoError::Rng)
        ));
        let mut file = KeySetFile::test_fixture();
        let before = file.to_json_pretty();
        for budget in [0, 40] {
            let err = file
                .rotate(
                    &FailingRng::after(budget),
                    NOW,
                    &Rotation {
                        signing: vec![SigningAlg::ES256],
                        hmac: true,
                        sealing: true,
                    },
                    60,
                )
                .unwrap_err();
            assert!(matches!(err, CryptoError::Rng), "{err}");
            assert_eq!(file.to_json_pretty(), before);
        }
    }

    #[test]
    fn ed25519_keys_in_pkcs8_v2_load_and_a_mismatched_public_key_is_refused() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes, PublicKeyBytes};
        use p256::pkcs8::LineEnding;
        let v1 = new_signing_key(SigningAlg::EdDSA, &SeededRng::new(7)).unwrap();
        let seed = SeededRng::new(7).bytes::<32>().unwrap();
        let v2_pem = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        assert_ne!(
            v2_pem.as_str(),
            v1.private_key_pem,
            "v2 carries the public key"
        );
        let v2 = SigningKeyFile {
            private_key_pem: v2_pem.to_string(),
            ..v1.clone()
        };
        assert_eq!(
            signing_key(&v2).unwrap().public_jwk,
            signing_key(&v1).unwrap().public_jwk
        );
        let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mismatched = KeypairBytes {
            secret_key: seed,
            public_key: Some(PublicKeyBytes(other.to_bytes())),
        }
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
        let bad = SigningKeyFile {
            private_key_pem: mismatched.to_string(),
            ..v1
        };
        assert!(signing_key(&bad).is_err());
    }

    #[test]
    fn invalid_sets_are_refused_with_a_reason() {
        let good = KeySetFile::test_fixture();
        let refused = |file: &KeySetFile| KeySet::from_file(file).unwrap_err().to_string();

        let mut short = good.clone();
        short.hmac.keys[0].secret = B64.encode([0u8; 16]);
        assert!(refused(&short).contains("at least 32 bytes"));
        let mut missing = good.clone();
        missing.hmac.active = "9".into();
        assert!(refused(&missing).contains("not in the list"));
        let mut retired_active = good.clone();
        retired_active.hmac.keys[0].publish_until = Some(NOW);
        assert!(refused(&retired_active).contains("publish_until"));
        let mut retired_signing = good.clone();
        retired_signing.signing.keys[1].publish_until = Some(NOW);
        assert!(refused(&retired_signing).contains("publish_until"));
        let mut no_such_signing = good.clone();
        no_such_signing.signing.active.push("nope".into());
        assert!(refused(&no_such_signing).contains("not in the list"));
        let mut two_es256 = good.clone();
        let extra = new_signing_key(SigningAlg::ES256, &SeededRng::new(8)).unwrap();
        two_es256.signing.active.push(extra.kid.clone());
        two_es256.signing.keys.push(extra);
        assert!(refused(&two_es256).contains("more than one active ES256"));
        let mut pem = good.clone();
        pem.signing.keys[1].private_key_pem =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        assert!(refused(&pem).contains("signing key"));
        let mut wrong_alg = good.clone();
        wrong_alg.signing.keys[1].alg = SigningAlg::RS256;
        assert!(
            KeySet::from_file(&wrong_alg).is_err(),
            "an EC key is no RSA key"
        );
        let mut pepper = good.clone();
        pepper.pepper = B64.encode([1u8; 8]);
        assert!(refused(&pepper).contains("pepper"));
        let mut dup = good.clone();
        dup.sealing.keys.push(dup.sealing.keys[0].clone());
        assert!(refused(&dup).contains("unique"));
        let mut dup_signing = good.clone();
        dup_signing
            .signing
            .keys
            .push(dup_signing.signing.keys[2].clone());
        assert!(refused(&dup_signing).contains("unique"));

        // RSA keys under 2048 bits.
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let small = rsa::RsaPrivateKey::new(&mut PortRng::new(&SeededRng::new(9)), 1024).unwrap();
        let mut weak = good.clone();
        weak.signing.keys[0].private_key_pem =
            small.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        assert!(
            refused(&weak).contains("at least 2048 bits"),
            "{}",
            refused(&weak)
        );

        assert!(
            KeySetFile::from_json("{\"secret\": \"leak me\"")
                .unwrap_err()
                .to_string()
                .find("leak")
                .is_none()
        );
        let unknown_alg =
            good.to_json_pretty()
                .replacen("\"alg\": \"RS256\"", "\"alg\": \"HS256\"", 1);
        assert!(KeySetFile::from_json(&unknown_alg).is_err());
    }

    /// An RSA key whose private exponent does not fit its modulus loads (its public half is
    /// well-formed, and is published), but no token is signed with it: the first signature
    /// fails with the key named, and `check_private_keys` (the server and the CLI, at start)
    /// refuses it.
    #[test]
    fn an_inconsistent_rsa_key_is_refused_before_it_signs() {
        use rsa::pkcs1::der::{Decode, Encode, pem::LineEnding};
        use rsa::pkcs1::{EncodeRsaPrivateKey, RsaPrivateKey, UintRef};
        let good = KeySetFile::test_fixture();
        let rs256 = good
            .signing
            .keys
            .iter()
            .position(|k| k.alg == SigningAlg::RS256)
            .unwrap();
        let kid = good.signing.keys[rs256].kid.clone();
        let sound = rsa::RsaPrivateKey::new(&mut PortRng::new(&SeededRng::new(10)), 2048)
            .unwrap()
            .to_pkcs1_der()
            .unwrap();
        let mut parts = RsaPrivateKey::from_der(sound.as_bytes()).unwrap();
        let mut d = parts.private_exponent.as_bytes().to_vec();
        *d.last_mut().unwrap() ^= 0x02;
        parts.private_exponent = UintRef::new(&d).unwrap();
        let der = parts.to_der().unwrap();
        let mut file = good.clone();
        file.signing.keys[rs256].private_key_pem =
            rsa::pkcs1::der::pem::encode_string("RSA PRIVATE KEY", LineEnding::LF, &der).unwrap();

        let keys = KeySet::from_file(&file).unwrap();
        let err = keys.check_private_keys().unwrap_err().to_string();
        assert!(err.contains(&kid), "{err}");
        let err = keys
            .sign_signed(SigningAlg::RS256, &serde_json::json!({"sub": "1"}))
            .unwrap_err();
        assert!(matches!(err, CryptoError::Key(_)), "{err:?}");
        assert!(err.to_string().contains(&kid), "{err}");
        assert!(KeySet::from_file_checked(&file).is_err());
        // The other algorithms still sign, and the sound key set passes the check.
        assert!(
            keys.sign_signed(SigningAlg::ES256, &serde_json::json!({"sub": "1"}))
                .is_ok()
        );
        KeySet::from_file(&good)
            .unwrap()
            .check_private_keys()
            .unwrap();
    }

    /// The JWKs published for each algorithm, built from what loading read, are the ones
    /// jsonwebtoken makes from the private keys on its own.
    #[test]
    fn published_jwks_are_jsonwebtokens_own() {
        let file = KeySetFile::test_fixture();
        let keys = KeySet::from_file(&file).unwrap();
        let mut algs = Vec::new();
        for (k, loaded) in file.signing.keys.iter().zip(&keys.signing) {
            let encoding = encoding_key(k.alg, &k.private_key_pem).unwrap();
            let mut expected = Jwk::from_encoding_key(&encoding, k.alg.jwt()).unwrap();
            expected.common.key_id = Some(k.kid.clone());
            expected.common.public_key_use = Some(PublicKeyUse::Signature);
            assert_eq!(
                loaded.public_jwk,
                serde_json::to_value(&expected).unwrap(),
                "{}",
                k.alg
            );
            algs.push(k.alg);
        }
        let mut all = SigningAlg::ALL.to_vec();
        algs.sort_by_key(|a| a.as_str());
        all.sort_by_key(|a| a.as_str());
        assert_eq!(algs, all, "every algorithm, once");
    }

    #[test]
    fn signing_algs_are_named_as_in_jwa() {
        for alg in SigningAlg::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlg>().unwrap(), alg);
            assert_eq!(alg.to_string(), alg.as_str());
            assert_eq!(
                serde_json::to_value(alg).unwrap(),
                serde_json::Value::from(alg.as_str())
            );
        }
        for bad in ["rs256", "HS256", "none", "", "EDDSA"] {
            assert!(bad.parse::<SigningAlg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn new_kids_count_up_and_skip_taken_ones() {
        assert_eq!(next_kid(["1"].into_iter(), ""), "2");
        assert_eq!(next_kid(["1", "7", "x"].into_iter(), ""), "8");
        assert_eq!(next_kid(["abc"].into_iter(), ""), "1");
        assert_eq!(next_kid(["k1", "k2"].into_iter(), "k"), "k3");
        assert_eq!(next_kid(["k9", "legacy"].into_iter(), "k"), "k10");
    }
}
