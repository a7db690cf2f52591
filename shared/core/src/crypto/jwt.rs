//! JWT issue and verification, the algorithm pinned by the caller, keys picked by `kid` among
//! the live keys of the [`KeySet`], time claims checked against the caller's clock
//! (jsonwebtoken's own time checks read the system clock, so claims are checked here and
//! jsonwebtoken only checks signatures; they are made with the key set's parsed keys, see
//! `keys::Signer`).
//!
//! # Signed tokens (RS256, ES256, EdDSA)
//!
//! [`KeySet::sign_signed`] signs with the active key of the algorithm the caller pins; the
//! header is exactly `{"typ":"JWT","alg":"<alg>","kid":"<kid>"}`. [`KeySet::verify_signed`]
//! accepts only that algorithm and only a `kid` of a published key of it, so no token can pick
//! its own algorithm or key. Anyone can check these tokens against the JWKS.
//!
//! # Subject-bound HS256 tokens (Magento)
//!
//! Magento's tokens are HS256 with the header exactly `{"kid":"<kid>","alg":"HS256"}` and the
//! claims the caller serialises (`uid`, `utypid`, `iat`, `exp`). Revoking a user's tokens must
//! hold at once, even for a token issued in the same second as the revocation, without a new
//! claim on the wire. So the MAC key is not the HMAC secret itself but one derived per subject,
//! from a *binding* the caller makes of what the token must still match (e.g. the user id and
//! a per-user token generation that revocation bumps):
//!
//! ```text
//! secret    = base64-decoded `secret` of the HMAC key whose `kid` the header names
//! key       = HMAC-SHA256(secret, "latchkey:hs256-bound:v1" || len(binding) || binding)
//!               "latchkey:hs256-bound:v1": those 23 ASCII bytes;
//!               len(binding): the binding's length in bytes, 8 bytes, unsigned big-endian
//! signature = HMAC-SHA256(key, ASCII(base64url(header) || "." || base64url(claims)))
//! ```
//!
//! that is, an ordinary HS256 JWT under the 32-byte derived key: any JWT library verifies it
//! given `key`. Changing the binding (bumping the generation) changes the key, and every token
//! made under the old one stops verifying. Verification is two steps, because the binding
//! comes from the subject, which comes from the claims: [`KeySet::peek_hs256`] checks the
//! header and the time claims and parses the claims without trusting them; the caller loads
//! the subject those claims name and makes its binding; [`Unverified::verify`] checks the MAC
//! in constant time and only then hands out the claims.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::CryptoError;
use super::keys::{KeySet, SigningAlg};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Well-formed, of a known live key, and past its `exp`. From [`KeySet::verify_signed`]
    /// also correctly signed; from [`KeySet::peek_hs256`] not yet checked (the claims say so:
    /// answering "expired" tells the sender nothing it did not write).
    #[error("token expired")]
    Expired,
    /// Anything else: malformed, wrong algorithm, unknown or retired `kid`, bad signature, bad
    /// or missing claims, wrong issuer or audience, not yet valid.
    #[error("token invalid")]
    Invalid,
}

/// The `iss` and `aud` a signed token must carry; `None` checks nothing. When set, the claim
/// must be present: `iss` equal to it, `aud` equal to it or an array containing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect<'a> {
    pub iss: Option<&'a str>,
    pub aud: Option<&'a str>,
}

/// Domain separation of the per-subject HS256 key (see the module docs).
const BOUND_CONTEXT: &[u8; 23] = b"latchkey:hs256-bound:v1";

/// Magento's header layout: `kid` before `alg`, nothing else.
#[derive(Serialize)]
struct MagentoHeader<'a> {
    kid: &'a str,
    alg: &'static str,
}

/// The header of signed tokens: `typ`, `alg`, `kid`, in that order, nothing else.
#[derive(Serialize)]
struct SignedHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
}

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn b64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

fn key_error(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Failure(format!("signing: {e}"))
}

/// `base64url(header) "." base64url(claims)`, the part a JWS signature covers.
fn signing_input<H: Serialize, C: Serialize>(
    header: &H,
    claims: &C,
) -> Result<String, CryptoError> {
    let header = serde_json::to_vec(header).map_err(key_error)?;
    let claims = serde_json::to_vec(claims).map_err(key_error)?;
    Ok(format!("{}.{}", b64url(&header), b64url(&claims)))
}

/// A compact JWS taken apart; nothing in it is trusted yet.
struct Parts<'t> {
    signing_input: &'t str,
    alg: String,
    kid: String,
    /// The claims segment, decoded: a JSON object.
    claims: Vec<u8>,
    registered: Registered,
    signature: &'t str,
}

/// The header fields read here. Others are ignored, except `crit`: no extension is understood
/// here, so none may be required (RFC 7515 §4.1.11), whatever its value.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default)]
    crit: Present,
}

/// Whether a field was there at all, `null` included.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// The registered claims [`check_claims`] reads, each as sent (`null` is present, and
/// wrong); the others are skipped unparsed. The caller's claim type is parsed on its own,
/// after the checks.
#[derive(Clone, Deserialize)]
struct Registered {
    #[serde(default, deserialize_with = "as_sent")]
    exp: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "as_sent")]
    iat: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "as_sent")]
    nbf: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "as_sent")]
    iss: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "as_sent")]
    aud: Option<serde_json::Value>,
}

fn as_sent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// A base64url segment holding a JSON object, decoded, and read as `T`. Typed reads, not a
/// `serde_json::Value` of the whole segment: a token check is on every authenticated request,
/// and building the tree was a tenth of who-am-I's CPU (infra/BENCH.md). serde's derive would
/// also take an array for a struct, field by position, so the object is checked first. A
/// member `T` names, sent twice, is refused; members it does not name are skipped unchecked
/// (the signature still covers every byte).
fn object<T: DeserializeOwned>(segment: &str) -> Result<(T, Vec<u8>), JwtError> {
    let bytes = B64URL.decode(segment).map_err(|_| JwtError::Invalid)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwtError::Invalid);
    }
    let value = serde_json::from_slice(&bytes).map_err(|_| JwtError::Invalid)?;
    Ok((value, bytes))
}

/// Splits a compact JWS into exactly three segments and decodes the header and claims, both
/// JSON objects. The header needs a string `alg` and `kid`, and must not carry `crit`.
fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwtError::Invalid)?;
    let (header, claims) = signing_input.split_once('.').ok_or(JwtError::Invalid)?;
    if claims.contains('.') {
        return Err(JwtError::Invalid);
    }
    let (header, _) = object::<Header>(header)?;
    if header.crit.0 {
        return Err(JwtError::Invalid);
    }
    let (registered, claims) = object::<Registered>(claims)?;
    Ok(Parts {
        signing_input,
        alg: header.alg,
        kid: header.kid,
        claims,
        registered,
        signature,
    })
}

/// `exp` required (an integer) and after `now - leeway`; `iat` and `nbf`, when present,
/// integers not after `now + leeway`; `iss`/`aud` as [`Expect`] says. Every reason for
/// [`JwtError::Invalid`] is checked before expiry.
fn check_claims(
    claims: &Registered,
    now: i64,
    leeway: i64,
    expect: &Expect<'_>,
) -> Result<(), JwtError> {
    use serde_json::Value;
    let leeway = leeway.max(0);
    let exp = claims
        .exp
        .as_ref()
        .and_then(Value::as_i64)
        .ok_or(JwtError::Invalid)?;
    for t in [&claims.iat, &claims.nbf].into_iter().flatten() {
        if t.as_i64().is_none_or(|t| t > now.saturating_add(leeway)) {
            return Err(JwtError::Invalid);
        }
    }
    if let Some(iss) = expect.iss
        && claims.iss.as_ref().and_then(Value::as_str) != Some(iss)
    {
        return Err(JwtError::Invalid);
    }
    if let Some(aud) = expect.aud {
        let ok = match &claims.aud {
            Some(Value::String(a)) => a == aud,
            Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(aud)),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Invalid);
        }
    }
    if exp.saturating_add(leeway) <= now {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// The per-subject HS256 key (see the module docs).
fn bound_key(secret: &[u8], binding: &[u8]) -> Zeroizing<Vec<u8>> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return Zeroizing::new(Vec::new());
    };
    mac.update(BOUND_CONTEXT);
    mac.update(&(binding.len() as u64).to_be_bytes());
    mac.update(binding);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

fn hs256(key: &[u8]) -> Result<Hmac<Sha256>, CryptoError> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::Key("HMAC key".into()))
}

impl KeySet {
    /// Signs `claims` with the active key of `alg`; the header is exactly
    /// `{"typ":"JWT","alg":"<alg>","kid":"<kid>"}`. Fails if the key set has no active key of
    /// `alg` (see [`KeySet::signing_algs`]).
    pub fn sign_signed<C: Serialize>(
        &self,
        alg: SigningAlg,
        claims: &C,
    ) -> Result<String, CryptoError> {
        let key = self
            .active_signing(alg)
            .ok_or_else(|| CryptoError::Key(format!("no active {alg} signing key")))?;
        let message = signing_input(
            &SignedHeader {
                typ: "JWT",
                alg: alg.as_str(),
                kid: &key.kid,
            },
            claims,
        )?;
        let signature = b64url(&self.sign_with(key, message.as_bytes())?);
        Ok(format!("{message}.{signature}"))
    }

    /// Verifies a token signed with `alg` and nothing else: the header's `alg` must be `alg`,
    /// its `kid` a key of `alg` still published at `now` (give or take `leeway`), the signature
    /// good, `exp` present and not passed, `iat`/`nbf` not in the future, `iss`/`aud` as
    /// `expect` says. All within `leeway` seconds.
    pub fn verify_signed<C: DeserializeOwned>(
        &self,
        token: &str,
        alg: SigningAlg,
        now: i64,
        leeway: i64,
        expect: &Expect<'_>,
    ) -> Result<C, JwtError> {
        let parts = split(token)?;
        if parts.alg != alg.as_str() {
            return Err(JwtError::Invalid);
        }
        let key = self
            .published_signing(&parts.kid, alg, now.saturating_sub(leeway.max(0)))
            .ok_or(JwtError::Invalid)?;
        let good = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signing_input.as_bytes(),
            &key.decoding,
            alg.jwt(),
        )
        .unwrap_or(false);
        if !good {
            return Err(JwtError::Invalid);
        }
        check_claims(&parts.registered, now, leeway, expect)?;
        serde_json::from_slice(&parts.claims).map_err(|_| JwtError::Invalid)
    }

    /// Signs `claims` as HS256 under the active HMAC key, keyed for `binding` (see the module
    /// docs); the header is exactly `{"kid":"<kid>","alg":"HS256"}`. `binding` must not be
    /// empty: it is what ties the token to its subject.
    pub fn sign_hs256_bound<C: Serialize>(
        &self,
        claims: &C,
        binding: &[u8],
    ) -> Result<String, CryptoError> {
        if binding.is_empty() {
            return Err(CryptoError::Input("an HS256 token needs a binding".into()));
        }
        let key = self
            .active_hmac()
            .ok_or_else(|| CryptoError::Key("no active HMAC key".into()))?;
        let message = signing_input(
            &MagentoHeader {
                kid: &key.kid,
                alg: "HS256",
            },
            claims,
        )?;
        let mut mac = hs256(&bound_key(key.secret.expose(), binding))?;
        mac.update(message.as_bytes());
        let signature = b64url(&mac.finalize().into_bytes());
        Ok(format!("{message}.{signature}"))
    }

    /// First step of verifying a bound HS256 token: the header's `alg` must be `HS256` and its
    /// `kid` an HMAC key still accepted at `now` (give or take `leeway`); `exp` present and not
    /// passed (else [`JwtError::Expired`]), `iat`/`nbf` not in the future; the claims must
    /// parse as `C`. Nothing here proves who made the token: load the subject the claims name,
    /// then [`Unverified::verify`] with its binding.
    pub fn peek_hs256<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
    ) -> Result<Unverified<C>, JwtError> {
        let parts = split(token)?;
        if parts.alg != "HS256" {
            return Err(JwtError::Invalid);
        }
        let signature: [u8; 32] = B64URL
            .decode(parts.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or(JwtError::Invalid)?;
        let recheck = Recheck {
            kid: parts.kid,
            registered: parts.registered,
            leeway,
        };
        let at = self.time_checks(&recheck, now)?;
        let claims = serde_json::from_slice(&parts.claims).map_err(|_| JwtError::Invalid)?;
        Ok(Unverified {
            claims,
            recheck,
            at,
            signing_input: parts.signing_input.to_owned(),
            signature,
        })
    }

    /// Whether a bound HS256 token that [`KeySet::peek_hs256`] and [`Unverified::verify`]
    /// passed earlier still passes at `now`: the checks of the peek that depend on the time
    /// (its key still accepted, `exp`, `iat`, `nbf`), as the peek makes them. The rest of a
    /// check cannot change with the time.
    pub fn still_valid(&self, recheck: &Recheck, now: i64) -> bool {
        self.time_checks(recheck, now).is_ok()
    }

    /// The peek's checks against the clock; the instant its key must be live at.
    fn time_checks(&self, recheck: &Recheck, now: i64) -> Result<i64, JwtError> {
        let at = now.saturating_sub(recheck.leeway.max(0));
        self.live_hmac(&recheck.kid, at).ok_or(JwtError::Invalid)?;
        check_claims(&recheck.registered, now, recheck.leeway, &Expect::default())?;
        Ok(at)
    }
}

/// What [`KeySet::still_valid`] checks a token's times again with: its key id, its registered
/// claims, and the peek's leeway.
#[derive(Clone)]
pub struct Recheck {
    kid: String,
    registered: Registered,
    leeway: i64,
}

/// A bound HS256 token whose header and times are checked but whose MAC is not: see
/// [`KeySet::peek_hs256`]. Its claims may be read to find the subject, never trusted.
pub struct Unverified<C> {
    claims: C,
    recheck: Recheck,
    /// The instant the key must still be live at (`now - leeway` of the peek).
    at: i64,
    signing_input: String,
    signature: [u8; 32],
}

impl<C> std::fmt::Debug for Unverified<C> {
    // The token is a credential: only the key id is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("kid", &self.recheck.kid)
            .finish_non_exhaustive()
    }
}

impl<C> Unverified<C> {
    /// The claims as sent: not authenticated yet. Use them only to find the subject.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// Checks the MAC (in constant time) under the key derived for `binding` and returns the
    /// claims, now authenticated. `keys` is the key set of the peek.
    pub fn verify(self, keys: &KeySet, binding: &[u8]) -> Result<C, JwtError> {
        self.verify_rechecked(keys, binding)
            .map(|(claims, _)| claims)
    }

    /// As [`Unverified::verify`], with what [`KeySet::still_valid`] needs to check the token's
    /// times again later: only a token whose MAC was checked yields one.
    pub fn verify_rechecked(self, keys: &KeySet, binding: &[u8]) -> Result<(C, Recheck), JwtError> {
        if binding.is_empty() {
            return Err(JwtError::Invalid);
        }
        let key = keys
            .live_hmac(&self.recheck.kid, self.at)
            .ok_or(JwtError::Invalid)?;
        let mut mac =
            hs256(&bound_key(key.secret.expose(), binding)).map_err(|_| JwtError::Invalid)?;
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| JwtError::Invalid)?;
        Ok((self.claims, self.recheck))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KeySetFile, Rotation, new_signing_key};
    use crate::ports::SeededRng;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, decode};
    use serde::Deserialize;
    use serde_json::{Value, json};

    const NOW: i64 = 1_900_000_000;
    const BINDING: &[u8] = b"user:93:generation:0";

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        uid: u64,
        utypid: u8,
        iat: i64,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            uid: 93,
            utypid: 2,
            iat: NOW,
            exp: NOW + 3600,
        }
    }

    fn keys() -> (KeySetFile, KeySet) {
        let file = KeySetFile::test_fixture();
        let set = KeySet::from_file(&file).unwrap();
        (file, set)
    }

    fn segment(token: &str, i: usize) -> Vec<u8> {
        B64URL.decode(token.split('.').nth(i).unwrap()).unwrap()
    }

    fn b64(s: &str) -> String {
        b64url(s.as_bytes())
    }

    /// peek + verify in one go, as a dialect does with the subject at hand.
    fn check<C: DeserializeOwned>(
        keys: &KeySet,
        token: &str,
        now: i64,
        leeway: i64,
        binding: &[u8],
    ) -> Result<C, JwtError> {
        keys.peek_hs256::<C>(token, now, leeway)?
            .verify(keys, binding)
    }

    /// The derivation of the module docs, written again with the hmac and sha2 crates only.
    fn independent_bound_key(secret: &[u8], binding: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        let mut message = b"latchkey:hs256-bound:v1".to_vec();
        message.extend_from_slice(&u64::try_from(binding.len()).unwrap().to_be_bytes());
        message.extend_from_slice(binding);
        m.update(&message);
        m.finalize().into_bytes().to_vec()
    }

    // ---- bound HS256 -------------------------------------------------------------------------

    #[test]
    fn bound_hs256_keeps_magentos_bytes_and_verifies_only_with_its_binding() {
        let (_, keys) = keys();
        let token = keys.sign_hs256_bound(&claims(), BINDING).unwrap();
        assert_eq!(segment(&token, 0), br#"{"kid":"1","alg":"HS256"}"#);
        assert_eq!(
            segment(&token, 1),
            br#"{"uid":93,"utypid":2,"iat":1900000000,"exp":1900003600}"#
        );
        let peeked = keys.peek_hs256::<Claims>(&token, NOW, 0).unwrap();
        assert_eq!(peeked.claims(), &claims(), "readable before the MAC check");
        assert!(!format!("{peeked:?}").contains(token.split('.').nth(2).unwrap()));
        assert_eq!(peeked.verify(&keys, BINDING).unwrap(), claims());

        for other in [
            &b"user:93:generation:1"[..],
            b"user:94:generation:0",
            b"user:93:generation:0\0",
            b"",
        ] {
            assert_eq!(
                check::<Claims>(&keys, &token, NOW, 0, other),
                Err(JwtError::Invalid),
                "{other:?}"
            );
        }
        assert!(keys.sign_hs256_bound(&claims(), b"").is_err());
    }

    #[test]
    fn bound_hs256_reproduces_with_an_independent_derivation_and_library() {
        let (file, keys) = keys();
        let token = keys.sign_hs256_bound(&claims(), BINDING).unwrap();
        let derived = independent_bound_key(&file.active_hmac_secret(), BINDING);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = decode::<Claims>(&token, &DecodingKey::from_secret(&derived), &v).unwrap();
        assert_eq!(data.claims, claims());
        assert_eq!(data.header.kid.as_deref(), Some("1"));
        // Not under the shared secret itself: that is what no Magento token is signed with now.
        assert!(
            decode::<Claims>(
                &token,
                &DecodingKey::from_secret(&file.active_hmac_secret()),
                &v
            )
            .is_err()
        );
        // And the other way: a token another library makes with the derived key verifies here.
        let header = b64(r#"{"kid":"1","alg":"HS256"}"#);
        let message = format!(
            "{header}.{}",
            b64(r#"{"uid":93,"utypid":2,"iat":1900000000,"exp":1900003600}"#)
        );
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(&derived),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(format!("{message}.{sig}"), token);
    }

    #[test]
    fn bound_hs256_times_use_the_callers_clock() {
        let (_, keys) = keys();
        let token = keys.sign_hs256_bound(&claims(), BINDING).unwrap();
        assert!(check::<Claims>(&keys, &token, NOW + 3599, 0, BINDING).is_ok());
        assert_eq!(
            keys.peek_hs256::<Claims>(&token, NOW + 3600, 0)
                .unwrap_err(),
            JwtError::Expired
        );
        assert!(check::<Claims>(&keys, &token, NOW + 3600, 5, BINDING).is_ok());
        assert_eq!(
            keys.peek_hs256::<Claims>(&token, NOW - 10, 0).unwrap_err(),
            JwtError::Invalid,
            "issued in the future"
        );
        assert!(check::<Claims>(&keys, &token, NOW - 10, 10, BINDING).is_ok());
        let no_exp = keys
            .sign_hs256_bound(&json!({"uid": 1, "utypid": 2, "iat": NOW}), BINDING)
            .unwrap();
        assert_eq!(
            keys.peek_hs256::<Value>(&no_exp, NOW, 0).unwrap_err(),
            JwtError::Invalid
        );
        let text_exp = keys
            .sign_hs256_bound(&json!({"iat": NOW, "exp": "1900003600"}), BINDING)
            .unwrap();
        assert_eq!(
            keys.peek_hs256::<Value>(&text_exp, NOW, 0).unwrap_err(),
            JwtError::Invalid
        );
        let not_yet = keys
            .sign_hs256_bound(&json!({"nbf": NOW + 60, "exp": NOW + 600}), BINDING)
            .unwrap();
        assert_eq!(
            keys.peek_hs256::<Value>(&not_yet, NOW, 0).unwrap_err(),
            JwtError::Invalid
        );
        // Claims of another shape do not parse as these.
        let tfa = keys
            .sign_hs256_bound(
                &json!({"uid": 93, "tfat": true, "iat": NOW, "exp": NOW + 60}),
                BINDING,
            )
            .unwrap();
        assert_eq!(
            keys.peek_hs256::<Claims>(&tfa, NOW, 0).unwrap_err(),
            JwtError::Invalid
        );
    }

    /// Tokens correctly signed under the subject's key whose header or claims are still not
    /// acceptable: what the typed reading of both segments must refuse, as the generic JSON
    /// reading did (and, more strictly than it, a repeated registered member). The claims are
    /// read as any JSON object, so only the checks of this module can refuse them.
    #[test]
    fn well_signed_tokens_of_the_wrong_shape_are_refused() {
        let (file, keys) = keys();
        let derived = independent_bound_key(&file.active_hmac_secret(), BINDING);
        let signed = |header: &str, claims: &str| {
            let message = format!("{}.{}", b64(header), b64(claims));
            let sig = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &EncodingKey::from_secret(&derived),
                Algorithm::HS256,
            )
            .unwrap();
            check::<serde_json::Value>(&keys, &format!("{message}.{sig}"), NOW, 0, BINDING)
        };
        let header = r#"{"kid":"1","alg":"HS256"}"#;
        let claims = format!(r#"{{"uid":93,"utypid":3,"iat":{NOW},"exp":{}}}"#, NOW + 60);
        assert!(signed(header, &claims).is_ok(), "the well-made token");
        for bad_header in [
            r#"{"kid":"1","alg":"HS256","crit":null}"#,
            r#"["HS256","1"]"#,
            r#"{"kid":1,"alg":"HS256"}"#,
            r#"{"kid":"1","alg":"HS256","alg":"HS256"}"#,
            r#"{"kid":"1","alg":"HS256"} x"#,
        ] {
            assert_eq!(
                signed(bad_header, &claims),
                Err(JwtError::Invalid),
                "{bad_header}"
            );
        }
        let exp = NOW + 60;
        for bad_claims in [
            format!("[93,3,{NOW},{exp}]"),
            format!(r#"{{"uid":93,"utypid":3,"iat":null,"exp":{exp}}}"#),
            format!(r#"{{"uid":93,"utypid":3,"iat":{NOW},"exp":"{exp}"}}"#),
            format!(r#"{{"uid":93,"utypid":3,"iat":{NOW},"exp":{exp}.5}}"#),
            format!(r#"{{"uid":93,"utypid":3,"iat":{NOW},"nbf":null,"exp":{exp}}}"#),
            format!(r#"{{"uid":93,"utypid":3,"iat":{NOW},"exp":{exp},"exp":{exp}}}"#),
            format!(r#"{{"uid":93,"utypid":3,"iat":{NOW}}}"#),
        ] {
            assert_eq!(
                signed(header, &bad_claims),
                Err(JwtError::Invalid),
                "{bad_claims}"
            );
        }
    }

    #[test]
    fn bound_hs256_refuses_tampering_and_algorithm_games() {
        let (file, keys) = keys();
        let token = keys.sign_hs256_bound(&claims(), BINDING).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let derived = independent_bound_key(&file.active_hmac_secret(), BINDING);
        let signed_with = |header: &str, key: &[u8], alg: Algorithm| {
            let message = format!("{}.{}", b64(header), parts[1]);
            let sig =
                jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(key), alg)
                    .unwrap();
            format!("{message}.{sig}")
        };
        let refused = |t: &str| check::<Claims>(&keys, t, NOW, 0, BINDING);

        let forged_payload = format!(
            "{}.{}.{}",
            parts[0],
            b64(r#"{"uid":1,"utypid":2,"iat":1900000000,"exp":1900003600}"#),
            parts[2]
        );
        assert_eq!(refused(&forged_payload), Err(JwtError::Invalid));
        let mut flipped = parts[2].as_bytes().to_vec();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(flipped).unwrap()
        );
        assert_eq!(refused(&flipped), Err(JwtError::Invalid));

        let none = format!("{}.{}.", b64(r#"{"kid":"1","alg":"none"}"#), parts[1]);
        assert_eq!(refused(&none), Err(JwtError::Invalid));
        assert_eq!(
            refused(&signed_with(
                r#"{"kid":"1","alg":"HS512"}"#,
                &derived,
                Algorithm::HS512
            )),
            Err(JwtError::Invalid),
            "algorithm pinned to HS256"
        );
        assert_eq!(
            refused(&signed_with(
                r#"{"kid":"1","alg":"HS256"}"#,
                &file.active_hmac_secret(),
                Algorithm::HS256
            )),
            Err(JwtError::Invalid),
            "the shared secret signs nothing"
        );
        assert_eq!(
            refused(&signed_with(
                r#"{"kid":"7","alg":"HS256"}"#,
                &derived,
                Algorithm::HS256
            )),
            Err(JwtError::Invalid),
            "unknown kid"
        );
        assert_eq!(
            refused(&signed_with(
                r#"{"alg":"HS256"}"#,
                &derived,
                Algorithm::HS256
            )),
            Err(JwtError::Invalid),
            "no kid"
        );
        assert_eq!(
            refused(&signed_with(
                r#"{"kid":"1","alg":"HS256","crit":["exp"]}"#,
                &derived,
                Algorithm::HS256
            )),
            Err(JwtError::Invalid),
            "crit is not understood"
        );
        // The same key with header fields in another order is still a well-made token.
        assert!(
            refused(&signed_with(
                r#"{"alg":"HS256","kid":"1","typ":"JWT"}"#,
                &derived,
                Algorithm::HS256
            ))
            .is_ok()
        );
        let signed = keys
            .sign_signed(
                SigningAlg::ES256,
                &json!({"uid": 93, "utypid": 2, "iat": NOW, "exp": NOW + 60}),
            )
            .unwrap();
        assert_eq!(
            refused(&signed),
            Err(JwtError::Invalid),
            "a signed token is no HS256 token"
        );

        let padded = format!("{token}=");
        let dotted = format!("{token}.");
        for junk in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "....",
            &token[..token.len() - 2],
            &padded,
            &dotted,
        ] {
            assert_eq!(refused(junk), Err(JwtError::Invalid), "{junk}");
        }
        // Another key set's kid "1" does not verify it.
        let mut other = file.clone();
        other.hmac.keys[0].secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let other = KeySet::from_file(&other).unwrap();
        assert_eq!(
            check::<Claims>(&other, &token, NOW, 0, BINDING),
            Err(JwtError::Invalid)
        );
    }

    /// `file` with a new HMAC key active at `NOW`, the old one kept for an hour; its key set.
    fn rotate_hmac(file: &mut KeySetFile) -> KeySet {
        let rotation = Rotation {
            hmac: true,
            ..Rotation::default()
        };
        file.rotate(&SeededRng::new(3), NOW, &rotation, 3600)
            .unwrap();
        KeySet::from_file(file).unwrap()
    }

    #[test]
    fn bound_hs256_rotation_keeps_old_tokens_until_publish_until() {
        let (mut file, keys) = keys();
        let old = keys.sign_hs256_bound(&claims(), BINDING).unwrap();
        let rotated = rotate_hmac(&mut file);
        let new = rotated.sign_hs256_bound(&claims(), BINDING).unwrap();
        assert_eq!(segment(&new, 0), br#"{"kid":"2","alg":"HS256"}"#);
        assert!(check::<Claims>(&rotated, &old, NOW, 0, BINDING).is_ok());
        assert!(check::<Claims>(&rotated, &old, NOW + 3599, 0, BINDING).is_ok());
        assert_eq!(
            check::<Claims>(&keys, &new, NOW, 0, BINDING),
            Err(JwtError::Invalid),
            "the old set lacks kid 2"
        );

        // Past publish_until kid 1 is gone, even for a token that has not expired yet.
        let long = keys
            .sign_hs256_bound(&json!({"iat": NOW, "exp": NOW + 7200}), BINDING)
            .unwrap();
        assert!(check::<Value>(&rotated, &long, NOW + 3599, 0, BINDING).is_ok());
        assert_eq!(
            rotated
                .peek_hs256::<Value>(&long, NOW + 3600, 0)
                .unwrap_err(),
            JwtError::Invalid
        );
        assert!(
            check::<Value>(&rotated, &long, NOW + 3600, 1, BINDING).is_ok(),
            "leeway"
        );
        // A token peeked while the key was live does not outlive it in another key set.
        let peeked = rotated.peek_hs256::<Value>(&long, NOW, 0).unwrap();
        file.rotate(&SeededRng::new(4), NOW + 3600, &Rotation::default(), 0)
            .unwrap();
        let pruned = KeySet::from_file(&file).unwrap();
        assert_eq!(peeked.verify(&pruned, BINDING), Err(JwtError::Invalid));
    }

    /// A token checked once is valid later exactly when a peek then would pass: until its
    /// `exp`, and while its key is accepted (a rotated-out key past its publish time is not).
    #[test]
    fn still_valid_makes_the_peeks_time_checks_again() {
        let (mut file, keys) = keys();
        let token = keys
            .sign_hs256_bound(&json!({"iat": NOW, "exp": NOW + 7200}), BINDING)
            .unwrap();
        let (_, recheck) = keys
            .peek_hs256::<Value>(&token, NOW, 0)
            .unwrap()
            .verify_rechecked(&keys, BINDING)
            .unwrap();
        let rotated = rotate_hmac(&mut file);
        for (set, now) in [
            (&keys, NOW),
            (&keys, NOW + 7199),
            (&keys, NOW + 7200),
            (&keys, NOW - 1),
            (&rotated, NOW + 3599),
            (&rotated, NOW + 3600),
        ] {
            assert_eq!(
                set.still_valid(&recheck, now),
                set.peek_hs256::<Value>(&token, now, 0).is_ok(),
                "at {now}"
            );
        }
        assert!(keys.still_valid(&recheck, NOW + 7199));
        assert!(!keys.still_valid(&recheck, NOW + 7200), "expired");
        assert!(!keys.still_valid(&recheck, NOW - 1), "issued in the future");
        assert!(
            !rotated.still_valid(&recheck, NOW + 3600),
            "its key retired"
        );
    }

    // ---- signed (RS256, ES256, EdDSA) --------------------------------------------------------

    fn access(now: i64) -> Value {
        json!({"sub": "87", "iss": "latchkey", "aud": "shop", "iat": now, "exp": now + 900})
    }

    const EXPECT: Expect<'static> = Expect {
        iss: Some("latchkey"),
        aud: Some("shop"),
    };

    /// The JWK a client would fetch from the JWKS for this token's kid, as jsonwebtoken sees it.
    fn published_key(keys: &KeySet, token: &str, now: i64) -> Option<DecodingKey> {
        let header: Value = serde_json::from_slice(&segment(token, 0)).unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(keys.jwks(now)).unwrap();
        let jwk = jwks.find(header["kid"].as_str().unwrap())?;
        Some(DecodingKey::from_jwk(jwk).unwrap())
    }

    #[test]
    fn signed_tokens_of_every_algorithm_verify_with_the_published_jwk() {
        let (_, keys) = keys();
        for alg in SigningAlg::ALL {
            let token = keys.sign_signed(alg, &access(NOW)).unwrap();
            let kid = keys.active_signing(alg).unwrap().kid.clone();
            assert_eq!(
                String::from_utf8(segment(&token, 0)).unwrap(),
                format!(r#"{{"typ":"JWT","alg":"{alg}","kid":"{kid}"}}"#)
            );
            let verified: Value = keys.verify_signed(&token, alg, NOW, 0, &EXPECT).unwrap();
            assert_eq!(verified["sub"], "87");

            // Independently: jsonwebtoken with only the JWK from the JWKS document.
            let mut v = Validation::new(alg.jwt());
            v.set_audience(&["shop"]);
            v.set_issuer(&["latchkey"]);
            v.validate_exp = false;
            let key = published_key(&keys, &token, NOW).unwrap();
            assert!(decode::<Value>(&token, &key, &v).is_ok(), "{alg}");
        }
    }

    #[test]
    fn rs256_signatures_are_counted_and_timed_and_nothing_else_is() {
        let (_, keys) = keys();
        for alg in SigningAlg::ALL {
            keys.sign_signed(alg, &access(NOW)).unwrap();
        }
        keys.sign_hs256_bound(&claims(), b"binding").unwrap();
        let one = keys.rs256_spent();
        assert_eq!(one.count, 1, "one RS256 token of the four");
        assert!(one.time > std::time::Duration::ZERO, "its time is summed");
        keys.sign_signed(SigningAlg::ES256, &access(NOW)).unwrap();
        assert_eq!(keys.rs256_spent(), one, "an ES256 signature is not RS256's");
        keys.sign_signed(SigningAlg::RS256, &access(NOW)).unwrap();
        let two = keys.rs256_spent();
        assert_eq!(two.count, 2);
        assert!(two.time > one.time);
    }

    #[test]
    fn signed_tokens_check_claims_against_the_callers_clock_and_expectations() {
        let (_, keys) = keys();
        for alg in SigningAlg::ALL {
            let verify = |claims: &Value, now: i64, leeway: i64, expect: &Expect<'_>| {
                let token = keys.sign_signed(alg, claims).unwrap();
                keys.verify_signed::<Value>(&token, alg, now, leeway, expect)
            };
            let c = access(NOW);
            assert!(verify(&c, NOW + 899, 0, &EXPECT).is_ok());
            assert_eq!(verify(&c, NOW + 900, 0, &EXPECT), Err(JwtError::Expired));
            assert!(verify(&c, NOW + 900, 1, &EXPECT).is_ok());
            assert_eq!(
                verify(&c, NOW - 1, 0, &EXPECT),
                Err(JwtError::Invalid),
                "iat ahead"
            );
            assert!(verify(&c, NOW - 1, 1, &EXPECT).is_ok());
            let wrong_iss = Expect {
                iss: Some("other"),
                ..EXPECT
            };
            assert_eq!(verify(&c, NOW, 0, &wrong_iss), Err(JwtError::Invalid));
            let wrong_aud = Expect {
                aud: Some("other"),
                ..EXPECT
            };
            assert_eq!(verify(&c, NOW, 0, &wrong_aud), Err(JwtError::Invalid));
            // Wrong issuer and expired: the token is refused as not ours, not as expired.
            assert_eq!(verify(&c, NOW + 900, 0, &wrong_iss), Err(JwtError::Invalid));
            assert!(verify(&c, NOW, 0, &Expect::default()).is_ok());

            let missing = json!({"sub": "87", "exp": NOW + 60});
            assert_eq!(
                verify(&missing, NOW, 0, &EXPECT),
                Err(JwtError::Invalid),
                "iss/aud required when expected"
            );
            let audiences = json!({"iss": "latchkey", "aud": ["a", "shop"], "exp": NOW + 60});
            assert!(verify(&audiences, NOW, 0, &EXPECT).is_ok());
            let no_exp = json!({"iss": "latchkey", "aud": "shop", "iat": NOW});
            assert_eq!(verify(&no_exp, NOW, 0, &EXPECT), Err(JwtError::Invalid));
            let float_exp = json!({"iss": "latchkey", "aud": "shop", "exp": 1.9e9 + 60.0});
            assert_eq!(verify(&float_exp, NOW, 0, &EXPECT), Err(JwtError::Invalid));
            let not_yet =
                json!({"iss": "latchkey", "aud": "shop", "nbf": NOW + 30, "exp": NOW + 60});
            assert_eq!(verify(&not_yet, NOW, 0, &EXPECT), Err(JwtError::Invalid));
            assert!(verify(&not_yet, NOW + 30, 0, &EXPECT).is_ok());
        }
        let text = keys
            .sign_signed(SigningAlg::ES256, &json!("not an object"))
            .unwrap();
        assert_eq!(
            keys.verify_signed::<Value>(&text, SigningAlg::ES256, NOW, 0, &Expect::default()),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn signed_tokens_resist_algorithm_and_key_confusion() {
        let (file, keys) = keys();
        let es = keys.sign_signed(SigningAlg::ES256, &access(NOW)).unwrap();
        let rs = keys.sign_signed(SigningAlg::RS256, &access(NOW)).unwrap();
        let ed = keys.sign_signed(SigningAlg::EdDSA, &access(NOW)).unwrap();
        let verify = |t: &str, alg| keys.verify_signed::<Value>(t, alg, NOW, 0, &EXPECT);

        // Pinned: a good token of another algorithm is refused.
        assert_eq!(verify(&es, SigningAlg::RS256), Err(JwtError::Invalid));
        assert_eq!(verify(&rs, SigningAlg::EdDSA), Err(JwtError::Invalid));
        assert_eq!(verify(&ed, SigningAlg::ES256), Err(JwtError::Invalid));

        let parts: Vec<&str> = es.split('.').collect();
        let kid_of = |alg| keys.active_signing(alg).unwrap().kid.clone();
        let rekeyed = |header: String, sig: &str| format!("{}.{}.{sig}", b64(&header), parts[1]);
        // Header claims the pinned alg but names another algorithm's kid.
        let other_kid = rekeyed(
            format!(
                r#"{{"typ":"JWT","alg":"ES256","kid":"{}"}}"#,
                kid_of(SigningAlg::RS256)
            ),
            parts[2],
        );
        assert_eq!(
            verify(&other_kid, SigningAlg::ES256),
            Err(JwtError::Invalid)
        );
        // Header alg swapped, kid kept.
        let swapped = rekeyed(
            format!(
                r#"{{"typ":"JWT","alg":"RS256","kid":"{}"}}"#,
                kid_of(SigningAlg::ES256)
            ),
            parts[2],
        );
        assert_eq!(verify(&swapped, SigningAlg::ES256), Err(JwtError::Invalid));
        assert_eq!(verify(&swapped, SigningAlg::RS256), Err(JwtError::Invalid));
        let none = rekeyed(
            format!(
                r#"{{"typ":"JWT","alg":"none","kid":"{}"}}"#,
                kid_of(SigningAlg::ES256)
            ),
            "",
        );
        assert_eq!(verify(&none, SigningAlg::ES256), Err(JwtError::Invalid));
        let unknown = rekeyed(
            r#"{"typ":"JWT","alg":"ES256","kid":"nope"}"#.into(),
            parts[2],
        );
        assert_eq!(verify(&unknown, SigningAlg::ES256), Err(JwtError::Invalid));

        // Alg confusion: HS256 keyed with public bytes (the JWK as published, its kid),
        // claiming each asymmetric kid.
        for alg in SigningAlg::ALL {
            let jwk = &keys.jwks(NOW)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["alg"] == alg.as_str())
                .unwrap()
                .clone();
            let message = format!(
                "{}.{}",
                b64(&format!(
                    r#"{{"typ":"JWT","alg":"HS256","kid":"{}"}}"#,
                    jwk["kid"].as_str().unwrap()
                )),
                parts[1]
            );
            for secret in [
                serde_json::to_vec(jwk).unwrap(),
                jwk["kid"].as_str().unwrap().as_bytes().to_vec(),
            ] {
                let sig = jsonwebtoken::crypto::sign(
                    message.as_bytes(),
                    &EncodingKey::from_secret(&secret),
                    Algorithm::HS256,
                )
                .unwrap();
                for pinned in SigningAlg::ALL {
                    assert_eq!(
                        verify(&format!("{message}.{sig}"), pinned),
                        Err(JwtError::Invalid)
                    );
                }
            }
        }

        // A bound HS256 token is not a signed token.
        let hs = keys.sign_hs256_bound(&access(NOW), BINDING).unwrap();
        for alg in SigningAlg::ALL {
            assert_eq!(verify(&hs, alg), Err(JwtError::Invalid));
        }
        // Every algorithm checks its signature: a forged payload, or another key under the
        // same kid, is refused.
        let mut other = file.clone();
        for (alg, token) in [
            (SigningAlg::RS256, &rs),
            (SigningAlg::ES256, &es),
            (SigningAlg::EdDSA, &ed),
        ] {
            let p: Vec<&str> = token.split('.').collect();
            let claims = b64(r#"{"sub":"1","iss":"latchkey","aud":"shop","exp":1900000900}"#);
            let forged = format!("{}.{claims}.{}", p[0], p[2]);
            assert_eq!(verify(&forged, alg), Err(JwtError::Invalid), "{alg}");
            if alg != SigningAlg::RS256 {
                let fresh = new_signing_key(alg, &SeededRng::new(11))
                    .unwrap()
                    .private_key_pem;
                let key = other
                    .signing
                    .keys
                    .iter_mut()
                    .find(|k| k.alg == alg)
                    .unwrap();
                key.private_key_pem = fresh;
            }
        }
        let other = KeySet::from_file(&other).unwrap();
        for (alg, token) in [(SigningAlg::ES256, &es), (SigningAlg::EdDSA, &ed)] {
            assert_eq!(
                other.verify_signed::<Value>(token, alg, NOW, 0, &EXPECT),
                Err(JwtError::Invalid),
                "{alg}"
            );
        }
    }

    #[test]
    fn rotated_signing_keys_verify_and_stay_published_until_publish_until() {
        let (mut file, keys) = keys();
        let keep = 900;
        let old: Vec<String> = SigningAlg::ALL
            .into_iter()
            .map(|alg| keys.sign_signed(alg, &access(NOW)).unwrap())
            .collect();
        file.rotate(
            &SeededRng::new(6),
            NOW,
            &Rotation {
                signing: vec![SigningAlg::ES256, SigningAlg::EdDSA],
                ..Rotation::default()
            },
            keep,
        )
        .unwrap();
        let rotated = KeySet::from_file(&file).unwrap();
        for (alg, token) in SigningAlg::ALL.into_iter().zip(&old) {
            let new = rotated.sign_signed(alg, &access(NOW)).unwrap();
            let rotated_alg = alg != SigningAlg::RS256;
            assert_eq!(
                segment(&new, 0) != segment(token, 0),
                rotated_alg,
                "{alg}: new kid"
            );
            assert!(
                rotated
                    .verify_signed::<Value>(token, alg, NOW + 899, 0, &EXPECT)
                    .is_ok()
            );
            assert!(published_key(&rotated, token, NOW + keep - 1).is_some());
            assert!(
                rotated
                    .verify_signed::<Value>(&new, alg, NOW, 0, &EXPECT)
                    .is_ok()
            );
            // After publish_until: out of the JWKS and refused (the token was signed at NOW for
            // 900 s, so it has expired too; a longer one would be refused as Invalid).
            assert_eq!(
                published_key(&rotated, token, NOW + keep).is_some(),
                !rotated_alg
            );
            let long = keys
                .sign_signed(
                    alg,
                    &json!({"iss": "latchkey", "aud": "shop", "exp": NOW + 5000}),
                )
                .unwrap();
            let late = rotated.verify_signed::<Value>(&long, alg, NOW + keep, 0, &EXPECT);
            assert_eq!(late.is_ok(), !rotated_alg, "{alg}");
        }
        assert_eq!(rotated.jwks(NOW)["keys"].as_array().unwrap().len(), 5);
        assert_eq!(
            rotated.jwks(NOW + keep)["keys"].as_array().unwrap().len(),
            3
        );
    }

    #[test]
    fn a_key_set_without_a_key_of_an_algorithm_says_so() {
        let mut file = KeySetFile::test_fixture();
        file.signing.keys.retain(|k| k.alg == SigningAlg::ES256);
        file.signing
            .active
            .retain(|kid| file.signing.keys.iter().any(|k| &k.kid == kid));
        let keys = KeySet::from_file(&file).unwrap();
        let err = keys
            .sign_signed(SigningAlg::RS256, &access(NOW))
            .unwrap_err();
        assert!(
            err.to_string().contains("no active RS256 signing key"),
            "{err}"
        );
        assert_eq!(keys.signing_algs(), vec![SigningAlg::ES256]);
    }
}
