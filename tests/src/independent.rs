//! Checks by implementations that share no code with latchkey: PyJWT for tokens.

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
