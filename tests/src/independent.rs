//! Checks by implementations that share no code with latchkey: PyJWT and jsonwebtoken's own
//! decoder for tokens, against the key set latchkey publishes.

use std::process::Command;

use serde_json::Value;

/// Verifies an HS256 token with PyJWT and returns its claims (`./scripts/test` installs PyJWT).
pub fn pyjwt_verify(token: &str, secret: &[u8]) -> Value {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let script = "import jwt,sys,json; print(json.dumps(jwt.decode(sys.argv[1], bytes.fromhex(sys.argv[2]), algorithms=['HS256'])))";
    let out = Command::new("python3")
        .args(["-c", script, token, &hex])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "PyJWT refused the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("PyJWT printed the claims")
}

/// The MAC key of a Magento token bound to `binding` (`<purpose>:<user id>:<token generation>`,
/// e.g. `magento-access:7:0`), derived from the HMAC secret as latchkey documents it
/// (`crypto::jwt`): `HMAC-SHA256(secret, "latchkey:hs256-bound:v1" || u64 BE length || binding)`.
/// Written out here over the `hmac`/`sha2` crates, so tests do not check latchkey against itself.
pub fn bound_key(secret: &[u8], binding: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"latchkey:hs256-bound:v1");
    mac.update(&(binding.len() as u64).to_be_bytes());
    mac.update(binding.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The active HMAC secret of a key-set file (`latchkey keys generate` output).
pub fn hmac_secret(keys: &Value) -> Vec<u8> {
    use base64::Engine;
    let hmac = &keys["hmac"];
    let active = hmac["active"].as_str().expect("hmac.active");
    let key = hmac["keys"]
        .as_array()
        .expect("hmac.keys")
        .iter()
        .find(|k| k["kid"] == active)
        .expect("the active hmac key");
    base64::engine::general_purpose::STANDARD
        .decode(key["secret"].as_str().expect("secret"))
        .expect("base64 secret")
}

/// Verifies a Magento token with PyJWT, under the key bound to the user it names (read from its
/// unverified claims) at token generation `generation`; returns its claims.
pub fn pyjwt_verify_magento(token: &str, keys: &Value, generation: u64) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url claims"),
    )
    .expect("JSON claims");
    let uid = claims["uid"].as_u64().expect("uid");
    let key = bound_key(
        &hmac_secret(keys),
        &format!("magento-access:{uid}:{generation}"),
    );
    pyjwt_verify(token, &key)
}

/// Verifies a signed token (RS256, ES256 or EdDSA, as its header says) with jsonwebtoken's own
/// decoder against the published JWK set `jwks`, requiring `aud` and `iss`; returns its claims.
/// `now` is the time the token must be valid at (tests run on a manual clock).
pub fn jsonwebtoken_verify(
    token: &str,
    jwks: &Value,
    aud: &str,
    iss: &str,
    now: i64,
) -> Result<Value, String> {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(header.alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[iss]);
    v.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]);
    // The token's own time claims are checked against `now` below: the library reads the
    // system clock, which a test's manual clock is far from.
    v.validate_exp = false;
    v.validate_nbf = false;
    let claims = decode::<Value>(token, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    let at = |name: &str| {
        claims[name]
            .as_i64()
            .ok_or(format!("{name} is not a number"))
    };
    if !(at("nbf")? <= now && at("iat")? <= now && now < at("exp")?) {
        return Err(format!("not valid at {now}: {claims}"));
    }
    Ok(claims)
}

/// Verifies a signed token with PyJWT against the JWK set `jwks` (PyJWT picks the key by `kid`
/// and checks `exp`, `nbf`, `iat`, `aud` and `iss` against the real clock, give or take a minute:
/// the functions under test may run on a pinned clock); returns its claims.
pub fn pyjwt_verify_jwks(token: &str, jwks: &Value, aud: &str, iss: &str) -> Value {
    let script = "import jwt,sys,json\n\
keys = jwt.PyJWKSet.from_json(sys.argv[2])\n\
kid = jwt.get_unverified_header(sys.argv[1])['kid']\n\
key = next(k for k in keys.keys if k.key_id == kid)\n\
print(json.dumps(jwt.decode(sys.argv[1], key, algorithms=[key.algorithm_name], audience=sys.argv[3], issuer=sys.argv[4], leeway=60, options={'require': ['exp', 'iat', 'nbf', 'aud', 'iss', 'sub', 'jti']})))";
    let out = Command::new("python3")
        .args(["-c", script, token, &jwks.to_string(), aud, iss])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "PyJWT refused the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("PyJWT printed the claims")
}
