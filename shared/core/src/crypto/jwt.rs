//! JWT issue and verification over jsonwebtoken, the algorithm pinned per use, keys picked by
//! `kid`, `exp` and `iat` checked against the caller's clock (jsonwebtoken's own time checks
//! read the system clock, so they are switched off and done here).

use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header};
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

/// Magento's header layout: `kid` before `alg`, nothing else.
#[derive(Serialize)]
struct MagentoHeader<'a> {
    kid: &'a str,
    alg: &'static str,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_error(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Failure(format!("signing: {e}"))
}

/// Signature, algorithm and key are checked by jsonwebtoken; time claims are checked here.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

fn check_times<C: DeserializeOwned>(
    claims: serde_json::Value,
    now: i64,
    leeway: i64,
) -> Result<C, JwtError> {
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .ok_or(JwtError::Invalid)?;
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_i64().ok_or(JwtError::Invalid)?;
        if iat > now.saturating_add(leeway) {
            return Err(JwtError::Invalid);
        }
    }
    if let Some(nbf) = claims.get("nbf")
        && nbf
            .as_i64()
            .is_none_or(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(JwtError::Invalid);
    }
    if exp.saturating_add(leeway) <= now {
        return Err(JwtError::Expired);
    }
    serde_json::from_value(claims).map_err(|_| JwtError::Invalid)
}

impl KeySet {
    /// HS256 under the active HMAC key; the header is exactly `{"kid":"<kid>","alg":"HS256"}`
    /// (Magento's layout, in that order). jsonwebtoken's `Header` always orders `alg` first, so
    /// the two segments are assembled here and only the signature comes from jsonwebtoken.
    pub fn sign_hs256<C: Serialize>(&self, claims: &C) -> Result<String, CryptoError> {
        let key = self
            .hmac
            .get(self.hmac_active)
            .ok_or_else(|| CryptoError::Key("no active HMAC key".into()))?;
        let header = serde_json::to_vec(&MagentoHeader {
            kid: &key.kid,
            alg: "HS256",
        })
        .map_err(key_error)?;
        let payload = serde_json::to_vec(claims).map_err(key_error)?;
        let message = format!("{}.{}", b64url(&header), b64url(&payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::HS256)
                .map_err(key_error)?;
        Ok(format!("{message}.{signature}"))
    }

    /// Verifies an HS256 token: algorithm pinned, key by `kid` among the live HMAC keys,
    /// `exp` required and after `now - leeway`, `iat` (if present) not after `now + leeway`.
    pub fn verify_hs256<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
    ) -> Result<C, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtError::Invalid);
        }
        let kid = header.kid.ok_or(JwtError::Invalid)?;
        let key = self
            .hmac
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::Invalid)?;
        let data = decode::<serde_json::Value>(token, &key.decoding, &validation(Algorithm::HS256))
            .map_err(|_| JwtError::Invalid)?;
        check_times(data.claims, now, leeway)
    }

    /// Signs with the active asymmetric key; header `{"typ":"JWT","alg":...,"kid":...}`.
    pub fn sign_signed<C: Serialize>(&self, claims: &C) -> Result<String, CryptoError> {
        let key = self
            .signing
            .get(self.signing_active)
            .ok_or_else(|| CryptoError::Key("no active signing key".into()))?;
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(key_error)
    }

    /// Verifies a token signed by one of the live signing keys: its `alg` must be that key's,
    /// `exp`/`iat` as for [`Self::verify_hs256`], and `iss`/`aud` when expected.
    pub fn verify_signed<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
        expected_iss: Option<&str>,
        expected_aud: Option<&str>,
    ) -> Result<C, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Invalid)?;
        let kid = header.kid.ok_or(JwtError::Invalid)?;
        let key = self
            .signing
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JwtError::Invalid)?;
        if header.alg != key.alg {
            return Err(JwtError::Invalid);
        }
        let mut v = validation(key.alg);
        if let Some(iss) = expected_iss {
            v.set_issuer(&[iss]);
        }
        if let Some(aud) = expected_aud {
            v.set_audience(&[aud]);
            v.validate_aud = true;
        }
        let data =
            decode::<serde_json::Value>(token, &key.decoding, &v).map_err(|_| JwtError::Invalid)?;
        check_times(data.claims, now, leeway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{HmacKeyFile, KeySetFile};
    use crate::ports::SeededRng;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        uid: u64,
        utypid: u8,
        iat: i64,
        exp: i64,
    }

    fn set(seed: u64) -> (KeySetFile, KeySet) {
        let file = KeySetFile::generate(&SeededRng::new(seed)).unwrap();
        let set = KeySet::from_file(&file).unwrap();
        (file, set)
    }

    fn segment(token: &str, i: usize) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap()
    }

    const NOW: i64 = 1_900_000_000;

    fn claims() -> Claims {
        Claims {
            uid: 93,
            utypid: 2,
            iat: NOW,
            exp: NOW + 3600,
        }
    }

    #[test]
    fn hs256_header_bytes_are_magentos() {
        let (_, keys) = set(1);
        let token = keys.sign_hs256(&claims()).unwrap();
        assert_eq!(segment(&token, 0), br#"{"kid":"1","alg":"HS256"}"#);
        assert_eq!(
            segment(&token, 1),
            br#"{"uid":93,"utypid":2,"iat":1900000000,"exp":1900003600}"#
        );
        assert_eq!(
            keys.verify_hs256::<Claims>(&token, NOW, 0).unwrap(),
            claims()
        );
    }

    #[test]
    fn expiry_and_issue_time_use_the_callers_clock() {
        let (_, keys) = set(1);
        let token = keys.sign_hs256(&claims()).unwrap();
        assert!(keys.verify_hs256::<Claims>(&token, NOW + 3599, 0).is_ok());
        assert_eq!(
            keys.verify_hs256::<Claims>(&token, NOW + 3600, 0),
            Err(JwtError::Expired)
        );
        assert!(keys.verify_hs256::<Claims>(&token, NOW + 3600, 5).is_ok());
        assert_eq!(
            keys.verify_hs256::<Claims>(&token, NOW - 10, 0),
            Err(JwtError::Invalid),
            "issued in the future"
        );
        let no_exp = keys
            .sign_hs256(&json!({"uid": 1, "utypid": 2, "iat": NOW}))
            .unwrap();
        assert_eq!(
            keys.verify_hs256::<serde_json::Value>(&no_exp, NOW, 0),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn tampering_and_algorithm_games_are_refused() {
        let (file, keys) = set(1);
        let token = keys.sign_hs256(&claims()).unwrap();
        let b64 = |s: &str| b64url(s.as_bytes());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = format!(
            "{}.{}.{}",
            parts[0],
            b64(r#"{"uid":1,"utypid":2,"iat":1900000000,"exp":1900003600}"#),
            parts[2]
        );
        assert_eq!(
            keys.verify_hs256::<Claims>(&forged_payload, NOW, 0),
            Err(JwtError::Invalid)
        );
        let none = format!("{}.{}.", b64(r#"{"kid":"1","alg":"none"}"#), parts[1]);
        assert_eq!(
            keys.verify_hs256::<Claims>(&none, NOW, 0),
            Err(JwtError::Invalid)
        );
        let hs512 = {
            let header = b64(r#"{"kid":"1","alg":"HS512"}"#);
            let message = format!("{header}.{}", parts[1]);
            let secret = file.active_hmac_secret();
            let sig = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(&secret),
                Algorithm::HS512,
            )
            .unwrap();
            format!("{message}.{sig}")
        };
        assert_eq!(
            keys.verify_hs256::<Claims>(&hs512, NOW, 0),
            Err(JwtError::Invalid),
            "algorithm pinned to HS256"
        );
        let unknown_kid = {
            let header = b64(r#"{"kid":"7","alg":"HS256"}"#);
            format!("{header}.{}.{}", parts[1], parts[2])
        };
        assert_eq!(
            keys.verify_hs256::<Claims>(&unknown_kid, NOW, 0),
            Err(JwtError::Invalid)
        );
        for junk in ["", "a", "a.b", "a.b.c", "....", &token[..token.len() - 2]] {
            assert_eq!(
                keys.verify_hs256::<Claims>(junk, NOW, 0),
                Err(JwtError::Invalid),
                "{junk}"
            );
        }
        // Another key set's token does not verify.
        let (_, other) = set(2);
        assert_eq!(
            other.verify_hs256::<Claims>(&token, NOW, 0),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn hmac_rotation_keeps_old_tokens_valid() {
        let (mut file, keys) = set(1);
        let old = keys.sign_hs256(&claims()).unwrap();
        file.hmac.keys.push(HmacKeyFile {
            kid: "2".into(),
            secret: base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
        });
        file.hmac.active = "2".into();
        let rotated = KeySet::from_file(&file).unwrap();
        assert!(rotated.verify_hs256::<Claims>(&old, NOW, 0).is_ok());
        let new = rotated.sign_hs256(&claims()).unwrap();
        assert_eq!(segment(&new, 0), br#"{"kid":"2","alg":"HS256"}"#);
        assert_eq!(
            keys.verify_hs256::<Claims>(&new, NOW, 0),
            Err(JwtError::Invalid),
            "old set lacks kid 2"
        );
    }

    #[test]
    fn signed_tokens_verify_with_the_published_jwk_and_resist_alg_confusion() {
        let (file, keys) = set(3);
        let token = keys.sign_signed(&json!({"sub": "87", "iss": "latchkey", "aud": "shop", "iat": NOW, "exp": NOW + 900})).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&segment(&token, 0)).unwrap();
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "ES256");
        let verified: serde_json::Value = keys
            .verify_signed(&token, NOW, 0, Some("latchkey"), Some("shop"))
            .unwrap();
        assert_eq!(verified["sub"], "87");
        assert_eq!(
            keys.verify_signed::<serde_json::Value>(&token, NOW, 0, Some("other"), None),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            keys.verify_signed::<serde_json::Value>(&token, NOW, 0, None, Some("other")),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            keys.verify_signed::<serde_json::Value>(&token, NOW + 900, 0, None, None),
            Err(JwtError::Expired)
        );

        // Independently: jsonwebtoken with only the JWK from the JWKS document.
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(keys.jwks()).unwrap();
        let jwk = jwks.find(header["kid"].as_str().unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["shop"]);
        v.validate_exp = false;
        assert!(
            decode::<serde_json::Value>(
                &token,
                &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
                &v
            )
            .is_ok()
        );

        // Alg confusion: an HS256 token keyed with the public key's bytes, claiming the ES256 kid.
        let x = jwk.to_owned();
        let public_bytes = serde_json::to_vec(&x).unwrap();
        let confused_header = b64url(
            format!(
                r#"{{"typ":"JWT","alg":"HS256","kid":"{}"}}"#,
                header["kid"].as_str().unwrap()
            )
            .as_bytes(),
        );
        let message = format!(
            "{confused_header}.{}",
            b64url(br#"{"sub":"1","exp":1900000900}"#)
        );
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(&public_bytes),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(
            keys.verify_signed::<serde_json::Value>(
                &format!("{message}.{sig}"),
                NOW,
                0,
                None,
                None
            ),
            Err(JwtError::Invalid)
        );
        // And an HS256 Magento token is not a signed token.
        let hs = keys.sign_hs256(&super::tests::claims()).unwrap();
        assert_eq!(
            keys.verify_signed::<serde_json::Value>(&hs, NOW, 0, None, None),
            Err(JwtError::Invalid)
        );

        // Rotation: a second signing key goes active; both stay published and verifiable.
        let mut rotated = file;
        let extra = KeySetFile::generate(&SeededRng::new(4))
            .unwrap()
            .signing
            .keys
            .remove(0);
        rotated.signing.active = extra.kid.clone();
        rotated.signing.keys.push(extra);
        let rotated = KeySet::from_file(&rotated).unwrap();
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(
            rotated
                .verify_signed::<serde_json::Value>(&token, NOW, 0, None, None)
                .is_ok()
        );
    }
}

// ---------------------------------------------------------------- bound HS256 (interim)

/// A token whose header and time claims passed, whose claims are parsed, and whose MAC is not
/// checked yet: the caller loads the subject the claims name, then [`Unverified::verify`]s it
/// with that subject's binding.
#[derive(Debug)]
pub struct Unverified<C> {
    claims: C,
    token: String,
    kid: String,
}

impl<C> Unverified<C> {
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// Checks the MAC under the key derived for `binding`.
    pub fn verify(self, keys: &KeySet, binding: &[u8]) -> Result<C, JwtError> {
        let key = keys
            .hmac
            .iter()
            .find(|k| k.kid == self.kid)
            .ok_or(JwtError::Invalid)?;
        let derived =
            jsonwebtoken::DecodingKey::from_secret(&bound_secret(key.secret.expose(), binding));
        decode::<serde_json::Value>(&self.token, &derived, &validation(Algorithm::HS256))
            .map_err(|_| JwtError::Invalid)?;
        Ok(self.claims)
    }
}

/// `HMAC-SHA256(secret, "latchkey:hs256-bound:v1" || len(binding) as u64 BE || binding)`.
fn bound_secret(secret: &[u8], binding: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(b"latchkey:hs256-bound:v1");
    mac.update(&(binding.len() as u64).to_be_bytes());
    mac.update(binding);
    mac.finalize().into_bytes().to_vec()
}

impl KeySet {
    /// HS256 in Magento's header layout under a key derived from the active HMAC key and
    /// `binding`.
    pub fn sign_hs256_bound<C: Serialize>(
        &self,
        claims: &C,
        binding: &[u8],
    ) -> Result<String, CryptoError> {
        let key = self
            .hmac
            .get(self.hmac_active)
            .ok_or_else(|| CryptoError::Key("no active HMAC key".into()))?;
        let header = serde_json::to_vec(&MagentoHeader {
            kid: &key.kid,
            alg: "HS256",
        })
        .map_err(key_error)?;
        let payload = serde_json::to_vec(claims).map_err(key_error)?;
        let message = format!("{}.{}", b64url(&header), b64url(&payload));
        let derived =
            jsonwebtoken::EncodingKey::from_secret(&bound_secret(key.secret.expose(), binding));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &derived, Algorithm::HS256)
            .map_err(key_error)?;
        Ok(format!("{message}.{signature}"))
    }

    /// Checks the header (HS256, a known kid) and time claims, and parses the claims without
    /// trusting them yet.
    pub fn peek_hs256<C: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
    ) -> Result<Unverified<C>, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtError::Invalid);
        }
        let kid = header.kid.ok_or(JwtError::Invalid)?;
        if !self.hmac.iter().any(|k| k.kid == kid) {
            return Err(JwtError::Invalid);
        }
        let payload = token.split('.').nth(1).ok_or(JwtError::Invalid)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwtError::Invalid)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| JwtError::Invalid)?;
        let claims = check_times(claims, now, leeway)?;
        Ok(Unverified {
            claims,
            token: token.to_owned(),
            kid,
        })
    }
}
