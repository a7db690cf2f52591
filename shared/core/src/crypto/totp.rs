//! RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps) over totp-rs. Verification returns the matched
//! time step; refusing replays (a step at or before the last accepted one) is the caller's
//! job, done atomically in the store.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::{CryptoError, SecretBytes, SecretString};
use crate::ports::Rng;

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// Bytes of a generated secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;
/// Fewest bytes accepted (128 bits, RFC 4226's minimum).
pub const MIN_SECRET_BYTES: usize = 16;

#[derive(Clone, Debug)]
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    pub fn generate(rng: &dyn Rng) -> Result<Self, CryptoError> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rng.fill(&mut bytes)?;
        Ok(Self(SecretBytes::new(bytes)))
    }

    /// From raw bytes (at least 16: 128 bits).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, CryptoError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(CryptoError::Input(
                "a TOTP secret needs at least 128 bits".into(),
            ));
        }
        Ok(Self(SecretBytes::new(bytes)))
    }

    /// From base32 as authenticator apps show it (case-insensitive, spaces, dashes and padding
    /// ignored; at least 128 bits).
    pub fn from_base32(text: &str) -> Result<Self, CryptoError> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| CryptoError::Input("not a base32 secret".into()))?;
        Self::from_bytes(bytes)
    }

    /// Unpadded upper-case base32.
    pub fn to_base32(&self) -> SecretString {
        SecretString::new(data_encoding::BASE32_NOPAD.encode(self.0.expose()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.expose()
    }

    fn totp(&self, skew: u8) -> Totp {
        // `build_noncompliant` skips only checks we have made ourselves (secret length) or
        // that cannot fail for these constants; it never panics for 6 digits.
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(u16::from(skew))
            .with_step_duration(STEP_SECS)
            .with_secret(Secret::from(self.0.expose()))
            .build_noncompliant()
    }
}

/// The step number of a Unix time.
pub fn step_of(unix_secs: i64) -> u64 {
    u64::try_from(unix_secs).unwrap_or(0) / STEP_SECS
}

fn unix(unix_secs: i64) -> u64 {
    u64::try_from(unix_secs).unwrap_or(0)
}

/// The code for a Unix time.
pub fn code_at(secret: &TotpSecret, unix_secs: i64) -> String {
    secret.totp(0).generate(unix(unix_secs)).to_string()
}

/// If `code` is valid at `unix_secs` within ±`window` steps, the step it matched.
/// Anything but exactly six ASCII digits is invalid. totp-rs compares in constant time.
pub fn verify(secret: &TotpSecret, code: &str, unix_secs: i64, window: u8) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    secret.totp(window).check(code, unix(unix_secs))
}

/// `otpauth://totp/<issuer>:<account>?secret=...&issuer=...` (SHA-1, 6 digits and 30 s are the
/// URI defaults). Colons, which the label format reserves, are replaced in both names.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = issuer.replace(':', "-");
    let account = account.replace(':', "-");
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::from(secret.as_bytes()))
        .with_issuer(Some(issuer.as_str()))
        .with_account_name(account.as_str())
        .build_noncompliant();
    // to_url fails only for a missing or colon-bearing account name, excluded above; fall back
    // to the bare form rather than panic.
    totp.to_url().unwrap_or_else(|_| {
        format!(
            "otpauth://totp/{account}?secret={}",
            secret.to_base32().expose()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        // The RFC gives 8 digits; 6-digit codes are their last six.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, eight) in vectors {
            assert_eq!(code_at(&rfc_secret(), t), eight[2..], "t={t}");
            assert_eq!(verify(&rfc_secret(), &eight[2..], t, 0), Some(step_of(t)));
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let hotp = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in hotp.iter().enumerate() {
            assert_eq!(
                code_at(&rfc_secret(), counter as i64 * 30),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn window_boundaries() {
        let s = rfc_secret();
        let now = 1_900_000_005;
        let step = step_of(now);
        let at = |k: i64| code_at(&s, now + k * 30);
        assert_eq!(verify(&s, &at(0), now, 1), Some(step));
        assert_eq!(verify(&s, &at(-1), now, 1), Some(step - 1));
        assert_eq!(verify(&s, &at(1), now, 1), Some(step + 1));
        assert_eq!(verify(&s, &at(-2), now, 1), None);
        assert_eq!(verify(&s, &at(2), now, 1), None);
        assert_eq!(verify(&s, &at(-1), now, 0), None);
        assert_eq!(verify(&s, &at(0), now, 0), Some(step));
    }

    #[test]
    fn malformed_codes_are_invalid() {
        let s = rfc_secret();
        let now = 59;
        for bad in [
            "28708",
            "2870822",
            "abcdef",
            " 287082",
            "287 082",
            "",
            "２８７０８２",
        ] {
            assert_eq!(verify(&s, bad, now, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_parsing() {
        let s = TotpSecret::from_base32("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp").unwrap();
        assert_eq!(s.to_base32().expose(), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
        assert!(
            TotpSecret::from_base32("JBSWY3DPEHPK3PXP").is_err(),
            "80 bits is too short"
        );
        assert!(TotpSecret::from_base32("not base32!").is_err());
        let g = TotpSecret::generate(&SeededRng::new(1)).unwrap();
        assert_eq!(g.as_bytes().len(), SECRET_BYTES);
        let back = TotpSecret::from_base32(g.to_base32().expose()).unwrap();
        assert_eq!(back.as_bytes(), g.as_bytes());
        assert!(!format!("{g:?}").contains(g.to_base32().expose()));
    }

    #[test]
    fn otpauth_uri_shape() {
        let uri = otpauth_uri(&rfc_secret(), "My Shop", "admin:1");
        assert!(
            uri.starts_with("otpauth://totp/My%20Shop:admin-1?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=My%20Shop"), "{uri}");
    }

    #[test]
    fn agrees_with_oathtool() {
        // `./scripts/test` installs oathtool; a missing one fails this test rather than skipping.
        let out = std::process::Command::new("oathtool")
            .args([
                "--totp",
                "-b",
                "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                "--now",
                "@1900000000",
            ])
            .output()
            .expect("oathtool is installed (./scripts/test installs it)");
        assert!(out.status.success());
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(code_at(&rfc_secret(), 1_900_000_000), theirs);
    }
}
