//! An independent RFC 6238 TOTP generator (RFC 4226 truncation written out by hand over the
//! `hmac`/`sha1` crates), so tests never check latchkey's TOTP code against itself.

use hmac::{Hmac, Mac};

/// The 6-digit code of a base32 secret at a Unix time.
pub fn totp(secret_b32: &str, unix: i64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.trim_end_matches('=').to_uppercase().as_bytes())
        .expect("base32 secret");
    let counter = (unix / 30) as u64;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&secret).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// The same code from `oathtool` (Debian's `oathtool` package, which `./scripts/test`
/// installs): a missing or failing oathtool fails the test that asks.
pub fn oathtool(secret_b32: &str, unix: i64) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret_b32, "--now", &format!("@{unix}")])
        .output()
        .expect("oathtool is installed (./scripts/test installs it)");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_rfc_6238_vectors() {
        // RFC 6238 Appendix B, SHA-1, secret "12345678901234567890" (last six digits).
        let b32 = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(super::totp(&b32, t), code);
        }
    }
}
