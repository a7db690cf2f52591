//! The fuzz targets of `latchkey_tests::fuzz`, run on the stable toolchain for a bounded number
//! of cases per target (`LATCHKEY_FUZZ_CASES`, default 256; `./scripts/fuzz` runs more), plus
//! properties of the parsers: codes, tokens (their header and key id — the RFC 7638 key
//! fingerprint — included), forwarded addresses and bodies.
//!
//! Inputs are part random bytes, part shaped like what the parser expects (JSON objects with
//! the route's own field names, three-part tokens, digit strings), so that the run reaches past
//! the first syntax check.

use latchkey_core::crypto::codes;
use latchkey_core::crypto::keys::{KeySet, KeySetFile, SigningAlg};
use latchkey_core::crypto::totp::{self, TotpSecret};
use latchkey_core::forwarded::TrustedProxies;
use latchkey_core::ports::SeededRng;
use latchkey_tests::fuzz;
use latchkey_tests::harness::T0;
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("LATCHKEY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9]{6}".prop_map(Value::String),
        Just(json!("x".repeat(3000))),
        Just(json!("Magento_Backend::all")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body shaped for some route: its field names with values of any shape, or raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "username",
        "password",
        "otp",
        "tfaToken",
        "name",
        "resources",
        "email",
        "refreshToken",
    ]);
    let shaped = prop::collection::vec((names, any_json()), 0..5).prop_map(|fields| {
        let obj: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::to_vec(&Value::Object(obj)).unwrap()
    });
    prop_oneof![
        3 => shaped,
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

/// Something shaped like a JWT: three base64url-ish parts, sometimes with a real header.
fn jwt_like() -> impl Strategy<Value = String> {
    let part = "[A-Za-z0-9_=+/-]{0,60}";
    let header = prop_oneof![
        part.prop_map(String::from),
        Just("eyJraWQiOiIxIiwiYWxnIjoiSFMyNTYifQ".to_owned()),
        Just("eyJhbGciOiJub25lIn0".to_owned()),
        ".{0,20}".prop_map(|s| b64(&format!(r#"{{"alg":"HS256","kid":"{s}"}}"#))),
        prop::sample::select(vec!["RS256", "ES256", "EdDSA", "none", "HS512"])
            .prop_map(|a| b64(&format!(r#"{{"alg":"{a}","kid":"1","typ":"JWT"}}"#))),
    ];
    let claims = prop_oneof![
        part.prop_map(String::from),
        any_json().prop_map(|v| b64(&v.to_string())),
        (any::<u64>(), 0..5u8).prop_map(|(uid, t)| b64(
            &json!({"uid": uid, "utypid": t, "iat": T0, "exp": T0 + 60}).to_string()
        )),
    ];
    (header, claims, part).prop_map(|(h, c, s)| format!("{h}.{c}.{s}"))
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn ops() -> usize {
    fuzz::operations().len()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_request_bodies_of_every_route(op in 0..ops(), who in 0..5u8, body in body()) {
        let mut data = vec![u8::try_from(op % 256).unwrap(), who];
        data.extend(body);
        fuzz::request_body(&data);
    }

    #[test]
    fn fuzz_request_lines(
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "X"]),
        op in 0..ops(),
        param in ".{0,40}",
        query in ".{0,40}",
        xff in ".{0,40}",
        auth in jwt_like(),
        body in body(),
    ) {
        let (_, pattern) = &fuzz::operations()[op];
        let target = format!("{}?{}", fuzz::fill(pattern, &param), query.replace(['\n', ' '], ""));
        let mut data = format!("{method}\n{target}\nx-forwarded-for: {xff}\nauthorization: Bearer {auth}\n\n")
            .replace('\r', "")
            .into_bytes();
        data.extend(body);
        fuzz::request_line(&data);
    }

    #[test]
    fn fuzz_lambda_events(pick in any::<u8>(), event in lambda_event()) {
        let mut data = vec![pick];
        data.extend(serde_json::to_vec(&event).unwrap());
        fuzz::lambda_event(&data);
    }

    #[test]
    fn fuzz_json_bodies(body in body()) {
        fuzz::json_body(&body);
    }

    #[test]
    fn fuzz_tokens(token in prop_oneof![jwt_like(), ".{0,120}"]) {
        fuzz::token(token.as_bytes());
    }

    #[test]
    fn fuzz_totp_codes(code in prop_oneof!["[0-9]{6}", "[0-9]{0,9}", ".{0,8}", "[０-９]{6}", " ?[0-9]{6} ?"]) {
        fuzz::totp_code(code.as_bytes());
    }

    #[test]
    fn fuzz_forwarded_for(value in prop_oneof![
        ".{0,60}",
        prop::collection::vec(
            prop_oneof!["[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]{1,5})?", "\\[?[0-9a-f:]{2,30}\\]?(:[0-9]{1,5})?", "unknown", ".{0,8}"],
            0..5
        ).prop_map(|v| v.join(", ")),
    ]) {
        fuzz::forwarded_for(value.as_bytes());
    }

    /// Codes: only the exact six ASCII digits of a step in the window pass, and a keyed hash
    /// verifies only its own value.
    #[test]
    fn codes_accept_only_their_exact_digits(offset in -3i64..=3, noise in ".{0,3}", seed in any::<u64>()) {
        let secret = TotpSecret::generate(&SeededRng::new(seed)).unwrap();
        let at = T0 + offset * 30;
        let code = totp::code_at(&secret, at);
        let accepted = totp::verify(&secret, &code, T0, 1).is_some();
        prop_assert_eq!(accepted, offset.abs() <= 1);
        let noisy = format!("{code}{noise}");
        if !noise.is_empty() {
            prop_assert!(totp::verify(&secret, &noisy, T0, 1).is_none());
            let prefixed = format!("{noise}{code}");
            prop_assert!(totp::verify(&secret, &prefixed, T0, 1).is_none());
        }
        let stored = codes::keyed_hash(b"pepper", "purpose", &code);
        prop_assert!(codes::verify_keyed_hash(b"pepper", "purpose", &code, &stored));
        prop_assert!(!codes::verify_keyed_hash(b"pepper", "purpose", &noisy, &stored) || noise.is_empty());
        prop_assert!(!codes::verify_keyed_hash(b"pepper", "other", &code, &stored));
    }

    /// Tokens: a real token with any one character changed, or any part swapped for another
    /// token's, is refused; the key id (for signed tokens, the key's RFC 7638 thumbprint) must
    /// name a key of the token's own algorithm.
    #[test]
    fn a_token_changed_anywhere_is_refused(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_-]") {
        let keys = keys();
        let claims = json!({"uid": 7, "utypid": 2, "iat": T0, "exp": T0 + 60});
        let bound = keys.sign_hs256_bound(&claims, b"magento-access:7:0").unwrap();
        let mut changed: Vec<char> = bound.chars().collect();
        let i = at.index(changed.len());
        let new = with.chars().next().unwrap();
        prop_assume!(changed[i] != new && changed[i] != '.');
        changed[i] = new;
        let changed: String = changed.into_iter().collect();
        let refused = match keys.peek_hs256::<Value>(&changed, T0, 0) {
            Ok(u) => u.verify(keys, b"magento-access:7:0").is_err(),
            Err(_) => true,
        };
        // base64url's last character may carry unused bits: a change there can decode alike.
        let last = i + 1 == bound.len();
        prop_assert!(refused || last, "{changed}");
        for alg in SigningAlg::ALL {
            let signed = keys.sign_signed(alg, &claims).unwrap();
            let expect = latchkey_core::crypto::jwt::Expect::default();
            prop_assert!(keys.verify_signed::<Value>(&signed, alg, T0, 0, &expect).is_ok());
            let mut parts: Vec<&str> = signed.split('.').collect();
            parts[2] = bound.split('.').nth(2).unwrap();
            prop_assert!(keys.verify_signed::<Value>(&parts.join("."), alg, T0, 0, &expect).is_err());
            for other in SigningAlg::ALL.into_iter().filter(|o| *o != alg) {
                prop_assert!(keys.verify_signed::<Value>(&signed, other, T0, 0, &expect).is_err());
            }
        }
    }

    /// Forwarded addresses: from an untrusted peer the header is never read, whatever it says.
    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards(value in ".{0,80}", last in any::<u8>()) {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", v);
        }
        let peer: std::net::IpAddr = format!("203.0.113.{last}").parse().unwrap();
        prop_assert_eq!(proxies.client(peer, &headers), peer);
    }
}

fn lambda_event() -> impl Strategy<Value = Value> {
    let base: Value =
        serde_json::from_str(include_str!("../../../events/magento-customer-token.json")).unwrap();
    let paths = prop::sample::select(
        fuzz::operations()
            .into_iter()
            .map(|(_, p)| fuzz::fill(p, ""))
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        3 => (paths, ".{0,30}", body(), any::<bool>(), ".{0,20}").prop_map(move |(path, ip, body, b64, method)| {
            let mut e = base.clone();
            e["rawPath"] = json!(path);
            e["requestContext"]["http"]["path"] = json!(path);
            e["requestContext"]["http"]["sourceIp"] = json!(ip);
            e["requestContext"]["http"]["method"] = json!(method);
            e["body"] = json!(String::from_utf8_lossy(&body));
            e["isBase64Encoded"] = json!(b64);
            e
        }),
        1 => any_json(),
    ]
}

fn keys() -> &'static KeySet {
    static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_file(&KeySetFile::test_fixture()).unwrap())
}

#[test]
fn a_body_of_raw_bytes_never_panics_the_parsers() {
    // Fixed inputs every fuzz run starts from (the cargo-fuzz corpus seeds are the same).
    for seed in [
        &b""[..],
        b"{",
        b"[]",
        b"\xff\xfe",
        b"{\"username\":\"\\ud800\"}",
        b"{\"username\":1e999}",
        b"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    ] {
        fuzz::json_body(seed);
        for op in 0..ops() {
            let mut data = vec![u8::try_from(op).unwrap(), 1];
            data.extend_from_slice(seed);
            fuzz::request_body(&data);
        }
    }
}
