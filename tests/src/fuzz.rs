//! Fuzz targets: every parser of untrusted input, each a function of bytes that must not panic
//! and must hold its invariant for any input.
//!
//! The same functions run two ways:
//! - on the stable toolchain, from the suite (`security::fuzz`), driven by proptest for a
//!   bounded number of cases (`LATCHKEY_FUZZ_CASES`, default 256 per target) — in every
//!   `./scripts/test`, and longer with `./scripts/fuzz`;
//! - under libFuzzer with `cargo fuzz run <target>` (nightly), from `fuzz/fuzz_targets/`, as
//!   long as one cares to let them.
//!
//! Request targets go through [`latchkey_core::App::handle`], the entry point of the local
//! server and every function, on an in-memory store with an admin, a customer and an
//! integration signed in, so the fuzzer reaches the authenticated handlers too. The invariant
//! of every request: a JSON answer below 500 (bad input is the client's error, never ours).

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use latchkey_core::crypto::jwt::Expect;
use latchkey_core::crypto::keys::{KeySet, KeySetFile, SigningAlg};
use latchkey_core::crypto::totp::{self, TotpSecret};
use latchkey_core::forwarded::TrustedProxies;
use latchkey_core::identity::users::Role;
use latchkey_core::routes;
use latchkey_core::web::{self, Peer};
use serde_json::{Value, json};

use crate::harness::{T0, TestApp};
use crate::otp;

/// A signed-in world to send requests into (one per thread, reused across inputs).
pub struct Rig {
    pub runtime: tokio::runtime::Runtime,
    pub t: TestApp,
    /// Bearer tokens: admin, customer, integration.
    pub tokens: [String; 3],
}

const PASSWORD: &str = "correct horse battery";

impl Rig {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let t = TestApp::with_settings(&[("LATCHKEY_IP_ATTEMPTS", "1000000")]);
        let tokens = runtime.block_on(async {
            let (_, secret) = t.add_admin_with_totp("boss", PASSWORD).await;
            t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
                .await;
            let body =
                json!({"username": "boss", "password": PASSWORD, "otp": otp::totp(&secret, T0)});
            let admin = t
                .post(
                    "/rest/V1/tfa/provider/google/authenticate",
                    &body.to_string(),
                )
                .await;
            let admin = admin.json.as_str().expect("admin token").to_owned();
            let body = json!({"username": "buyer", "password": PASSWORD});
            let customer = t
                .post("/rest/V1/integration/customer/token", &body.to_string())
                .await;
            let customer = customer.json.as_str().expect("customer token").to_owned();
            let body = json!({"name": "fuzz", "resources": ["Magento_Backend::all"]});
            let integration = t
                .call(
                    Method::POST,
                    "/rest/V1/integrations",
                    Some(&body.to_string()),
                    Some(&admin),
                )
                .await;
            let integration = integration.json["access_token"]
                .as_str()
                .expect("integration token")
                .to_owned();
            [admin, customer, integration]
        });
        Self { runtime, t, tokens }
    }

    /// Sends a request and checks the invariant: a JSON answer below 500.
    pub fn send(&self, req: http::Request<Bytes>) {
        let shown = format!("{} {}", req.method(), req.uri());
        let mut req = req;
        req.extensions_mut()
            .insert(Peer(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))));
        let res = self.runtime.block_on(self.t.app.handle(req));
        check_answer(&shown, res);
    }
}

/// A JSON answer (or an empty one; an HTML page where the route is a page) below 500.
pub fn check_answer(shown: &str, res: http::Response<Bytes>) {
    let status = res.status();
    let html = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let body = res.into_body();
    assert!(
        status.as_u16() < 500,
        "{shown}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if html {
        assert!(body.starts_with(b"<!doctype html>"), "{shown}: not a page");
        return;
    }
    assert!(
        body.is_empty() || serde_json::from_slice::<Value>(&body).is_ok(),
        "{shown}: the answer is not JSON: {}",
        String::from_utf8_lossy(&body)
    );
}

thread_local! {
    static RIG: Rig = Rig::new();
}

/// Runs `f` with this thread's rig.
pub fn with_rig<T>(f: impl FnOnce(&Rig) -> T) -> T {
    RIG.with(f)
}

/// Every (method, path pattern) the router serves, in a fixed order.
pub fn operations() -> Vec<(Method, &'static str)> {
    routes::all()
        .flat_map(|r| r.paths.iter().map(move |p| (r.method.clone(), *p)))
        .collect()
}

/// A pattern with each `{param}` replaced by `value` (percent-encoded).
pub fn fill(pattern: &str, value: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                if seg == "{store_code}" && value.is_empty() {
                    "default".to_owned()
                } else {
                    encoded.clone()
                }
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Target `request_body`: one route's body. Byte 0 picks the operation, byte 1 the bearer
/// (none, admin, customer, integration, or the rest of the input as a token), the rest is the
/// body as sent.
pub fn request_body(data: &[u8]) {
    let [op, who, rest @ ..] = data else {
        return;
    };
    let ops = operations();
    let Some((method, pattern)) = ops.get(usize::from(*op) % ops.len()) else {
        return;
    };
    with_rig(|rig| {
        let mut b = http::Request::builder()
            .method(method.clone())
            .uri(fill(pattern, ""))
            .header("content-type", "application/json");
        if let Some(token) = bearer(rig, *who, rest) {
            b = b.header("authorization", token);
        }
        if let Ok(req) = b.body(Bytes::copy_from_slice(rest)) {
            rig.send(req);
        }
    });
}

fn bearer(rig: &Rig, who: u8, rest: &[u8]) -> Option<HeaderValue> {
    let token = match who % 5 {
        0 => return None,
        1..=3 => rig.tokens.get(usize::from(who % 5 - 1))?.clone(),
        _ => String::from_utf8_lossy(rest).into_owned(),
    };
    HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

/// Target `request_line`: a method, a path and query, and headers, all from the input (split at
/// newlines: method, target, then `name: value` lines, then the body).
pub fn request_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("GET");
    let target = lines.next().unwrap_or("/");
    let Ok(method) = Method::from_bytes(method.trim().as_bytes()) else {
        return;
    };
    let mut b = http::Request::builder().method(method).uri(target.trim());
    let mut body = String::new();
    for line in lines.by_ref() {
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() => {
                b = b.header(name.trim(), value.trim());
            }
            _ => break,
        }
    }
    for line in lines {
        body.push_str(line);
        body.push('\n');
    }
    if let Ok(req) = b.body(Bytes::from(body)) {
        with_rig(|rig| rig.send(req));
    }
}

/// Target `lambda_event`: an API Gateway event, parsed as each function parses its payload and
/// answered by the route the first byte picks.
pub fn lambda_event(data: &[u8]) {
    let [pick, rest @ ..] = data else {
        return;
    };
    let Ok(payload) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let all: Vec<_> = routes::all().collect();
    let Some(route) = all.get(usize::from(*pick) % all.len()) else {
        return;
    };
    with_rig(|rig| {
        let res = rig.runtime.block_on(latchkey_aws::lambda::handle_event(
            &rig.t.app, route, payload, None,
        ));
        assert!(
            res.status_code < 500,
            "{}: {} {:?}",
            route.name,
            res.status_code,
            res.body
        );
    });
}

/// Target `json_body`: the body parser every dialect uses, and the field readers over it.
pub fn json_body(data: &[u8]) {
    match web::json_object(data, 65_536) {
        Ok(obj) => {
            for field in ["username", "password", "otp", "tfaToken", "name"] {
                let _ = web::string_field(&obj, field);
                let _ = web::optional_int_field(&obj, field);
            }
            let _ = web::optional_string_list(&obj, "resources");
        }
        Err(_) => {
            assert!(
                data.len() > 65_536
                    || !matches!(serde_json::from_slice::<Value>(data), Ok(Value::Object(_)))
            );
        }
    }
}

fn keys() -> &'static KeySet {
    static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_file(&KeySetFile::test_fixture()).expect("key set"))
}

/// Target `token`: a string as a bearer JWT, through every verifier (HS256 bound tokens and
/// the signed algorithms, kid lookup included): refused, never accepted unsigned, never a panic.
pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let keys = keys();
    if let Ok(unverified) = keys.peek_hs256::<Value>(&text, T0, 0) {
        // Nothing made by a fuzzer verifies under any binding.
        assert!(unverified.verify(keys, b"magento-access:1:0").is_err());
    }
    for alg in SigningAlg::ALL {
        assert!(
            keys.verify_signed::<Value>(&text, alg, T0, 0, &Expect::default())
                .is_err(),
            "a fuzzed {alg} token verified"
        );
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {text}")) {
        headers.insert(http::header::AUTHORIZATION, v);
        let _ = web::bearer(&headers);
    }
}

/// Target `totp_code`: a code as a client sends it. Only the six ASCII digits of a step in the
/// window are accepted.
pub fn totp_code(data: &[u8]) {
    let code = String::from_utf8_lossy(data);
    let secret = TotpSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").expect("secret");
    if let Some(step) = totp::verify(&secret, &code, T0, 1) {
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(totp::code_at(&secret, (step * 30) as i64), code);
    }
}

/// Target `forwarded_for`: an `X-Forwarded-For` value from a trusted proxy. The client found
/// is the proxy or an address the header names.
pub fn forwarded_for(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let proxies = TrustedProxies::parse("10.0.0.0/8, 2001:db8::/32").expect("proxies");
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", value);
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let client = proxies.client(peer, &headers);
    let text = String::from_utf8_lossy(data);
    if !text.contains(['.', ':']) {
        assert_eq!(client, peer, "no address in {text:?}");
    }
}

/// A fuzz target: takes any bytes, panics only on a broken promise.
pub type Target = fn(&[u8]);

/// Every target by name, for `./scripts/fuzz` and the cargo-fuzz targets.
pub const TARGETS: &[(&str, Target)] = &[
    ("request_body", request_body),
    ("request_line", request_line),
    ("lambda_event", lambda_event),
    ("json_body", json_body),
    ("token", token),
    ("totp_code", totp_code),
    ("forwarded_for", forwarded_for),
];
