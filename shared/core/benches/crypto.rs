//! What one sign-in costs: an argon2id verification at OWASP parameters (and the unknown-user
//! path, which must cost the same), a TOTP verification with a ±1 window, bound HS256 and
//! RS256/ES256/EdDSA issue/verify, opening a sealed TOTP secret, and an enrolment QR code.
//!
//! `cargo bench -p latchkey-core --bench crypto`

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_core::crypto::SecretBytes;
use latchkey_core::crypto::aead::Sealer;
use latchkey_core::crypto::jwt::Expect;
use latchkey_core::crypto::keys::{KeySet, KeySetFile, SigningAlg};
use latchkey_core::crypto::password::PasswordHasher;
use latchkey_core::crypto::qr;
use latchkey_core::crypto::totp::{self, TotpSecret};
use latchkey_core::ports::SystemRng;
use serde_json::json;

const NOW: i64 = 1_900_000_000;

fn benches(c: &mut Criterion) {
    let hasher = PasswordHasher::new(&SystemRng).unwrap();
    let phc = hasher
        .hash("correct horse battery staple", &SystemRng)
        .unwrap();
    c.bench_function("password_verify_owasp", |b| {
        b.iter(|| hasher.verify("correct horse battery staple", &phc))
    });
    c.bench_function("password_verify_unknown_user", |b| {
        b.iter(|| hasher.verify_unknown_user("correct horse battery staple"))
    });

    let secret = TotpSecret::generate(&SystemRng).unwrap();
    let code = totp::code_at(&secret, NOW - 30);
    c.bench_function("totp_verify_window1", |b| {
        b.iter(|| totp::verify(&secret, &code, NOW, 1))
    });

    let keys = KeySet::from_file(&KeySetFile::generate(&SystemRng).unwrap()).unwrap();
    let claims = json!({"uid": 1, "utypid": 2, "iat": NOW, "exp": NOW + 3600});
    let binding = b"user:1:generation:0";
    c.bench_function("hs256_bound_sign", |b| {
        b.iter(|| keys.sign_hs256_bound(&claims, binding).unwrap())
    });
    let token = keys.sign_hs256_bound(&claims, binding).unwrap();
    c.bench_function("hs256_bound_verify", |b| {
        b.iter(|| {
            keys.peek_hs256::<serde_json::Value>(&token, NOW, 0)
                .unwrap()
                .verify(&keys, binding)
                .unwrap()
        })
    });
    for alg in SigningAlg::ALL {
        c.bench_function(&format!("{alg}_sign"), |b| {
            b.iter(|| keys.sign_signed(alg, &claims).unwrap())
        });
        let token = keys.sign_signed(alg, &claims).unwrap();
        c.bench_function(&format!("{alg}_verify"), |b| {
            b.iter(|| {
                keys.verify_signed::<serde_json::Value>(&token, alg, NOW, 0, &Expect::default())
                    .unwrap()
            })
        });
    }

    let sealer = Sealer::new(vec![("k1".into(), SecretBytes::new(vec![7; 32]))], "k1").unwrap();
    let sealed = sealer
        .seal(secret.as_bytes(), b"latchkey:totp:1", &SystemRng)
        .unwrap();
    c.bench_function("aead_open_totp_secret", |b| {
        b.iter(|| sealer.open(&sealed, b"latchkey:totp:1").unwrap())
    });

    // What every function's init pays for its keys: the development key set (HMAC, sealing,
    // and an RS256, ES256 and EdDSA signing key), parsed and checked.
    let file = KeySetFile::test_fixture();
    c.bench_function("key_set_load", |b| {
        b.iter(|| KeySet::from_file(&file).unwrap())
    });

    // The enrolment QR code: a 32-character secret, a long account name, as the wizard makes it.
    let uri = format!(
        "otpauth://totp/latchkey:customer-with-a-long-address%40example.com?secret={}&issuer=latchkey&algorithm=SHA1&digits=6&period=30",
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    );
    c.bench_function("qr_png", |b| b.iter(|| qr::png(&uri).unwrap()));
}

criterion_group! {
    name = crypto;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(crypto);
