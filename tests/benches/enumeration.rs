//! Enumeration, measured: for every route that takes an identifier, the latency of a request
//! naming an account that exists and of one naming none, 1,000 samples each, interleaved, with
//! the password hash that ships (argon2id, 19 MiB, t=2), on the embedded store and on DynamoDB
//! (through the local AWS emulator, when `LATCHKEY_TEST_AWS_ENDPOINT` is set — `./scripts/test`
//! sets it). Sign-in routes try a wrong password; the send routes (a password reset, a login
//! link) ask for a known or an unknown email.
//!
//! ```sh
//! cargo bench -p latchkey-tests --bench enumeration               # every route, both stores
//! LATCHKEY_BENCH_SAMPLES=200 LATCHKEY_BENCH_ROUTES=glue-access-tokens,wizard-restore \
//!     cargo bench -p latchkey-tests --bench enumeration
//! ```
//!
//! It prints both distributions (percentiles, mean, a histogram) and the Kolmogorov–Smirnov
//! distance between them with its 1% critical value: a distance under the critical value means
//! the samples give no evidence that the two differ. Every answer's status and body (random
//! flow ids masked) are collected too, and must be one. The answers themselves are compared
//! byte for byte by `security::known_and_unknown_accounts_get_byte_identical_answers`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods // a benchmark measures real time
)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::Method;
use latchkey_core::identity::users::Role;
use latchkey_core::web::Peer;
use latchkey_tests::harness::{Backend, Cost, Reply, TestApp, mask_nonces};
use serde_json::{Value, json};

const USERS: usize = 50;

/// Accounts (and unknown identifiers) a route's samples go round. A reset's wrong code uses up
/// a try of its email's code slot, which a new code does not give back: after five, the email
/// gets no code (alike for an account and for nobody), so each reset sample has an email of
/// its own.
fn users(route: &str) -> usize {
    if route == "wizard-reset" { 1100 } else { USERS }
}
const PASSWORD: &str = "correct horse battery";

/// The routes measured, by name: `LATCHKEY_BENCH_ROUTES` picks some.
const ROUTES: [&str; 10] = [
    "magento-customer-token",
    "magento-admin-token",
    "magento-tfa-authenticate",
    "glue-access-tokens",
    "glue-token",
    "wizard-signin",
    "wizard-restore",
    "wizard-reset",
    "magic-link-send",
    "magic-link-request",
];

fn samples() -> usize {
    std::env::var("LATCHKEY_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn routes() -> Vec<&'static str> {
    match std::env::var("LATCHKEY_BENCH_ROUTES") {
        Ok(names) => ROUTES
            .into_iter()
            .filter(|r| names.split(',').any(|n| n.trim() == *r))
            .collect(),
        Err(_) => ROUTES.to_vec(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `LATCHKEY_BENCH_STORES=sqlite` or `dynamodb` picks one.
    let only = std::env::var("LATCHKEY_BENCH_STORES").unwrap_or_default();
    let wants = |store: &str| only.is_empty() || only.contains(store);
    let mut backends = Vec::new();
    if wants("sqlite") {
        backends.push(Backend::Sqlite);
    }
    if wants("dynamodb") {
        if std::env::var_os("LATCHKEY_TEST_AWS_ENDPOINT").is_some() {
            backends.push(Backend::Dynamodb);
        } else {
            println!(
                "LATCHKEY_TEST_AWS_ENDPOINT is not set: DynamoDB skipped (run under ./scripts/test's emulator)"
            );
        }
    }
    for backend in backends {
        runtime.block_on(measure(backend, &routes(), samples()));
    }
}

/// One app for every route, its limits opened wide (so that no sample is throttled or locked:
/// those answers are equal by construction, and not what is measured here).
async fn app(backend: Backend, route: &str) -> TestApp {
    let t = TestApp::on_with_cost(
        backend,
        &[
            ("LATCHKEY_IP_ATTEMPTS", "1000000"),
            ("LATCHKEY_LOCKOUT_FAILURES", "1000"),
            ("LATCHKEY_WIZARD_LOCKOUT_FAILURES", "1000"),
            ("LATCHKEY_WIZARD_LOCKOUT_WINDOW_SECONDS", "1"),
            ("LATCHKEY_WIZARD_SMS_SENDS_PER_HOUR", "1000"),
            ("LATCHKEY_SMS_GLOBAL_PER_HOUR", "10000000"),
            ("LATCHKEY_LINK_SENDS_PER_EMAIL", "1000000"),
            ("LATCHKEY_LINK_SENDS_PER_IP", "1000000"),
            ("LATCHKEY_LINK_SENDS_PER_STORE", "1000000"),
        ],
        Cost::Owasp,
    )
    .await;
    for i in 0..users(route) {
        t.add_user(
            &format!("known{i}"),
            &format!("known{i}@example.com"),
            PASSWORD,
            Role::Customer,
        )
        .await;
        if i >= USERS {
            continue;
        }
        t.add_user(
            &format!("admin{i}"),
            &format!("admin{i}@example.com"),
            PASSWORD,
            Role::Admin,
        )
        .await;
    }
    t
}

/// The `i`th request of `route` for a known (`known{i}`) or an unknown account; a client
/// address of its own per sample (the per-address send limits are not what is measured).
/// Returns how long the answer took, and the answer's shape ([`shape`]).
async fn probe(t: &TestApp, route: &str, i: usize, known: bool) -> (Duration, (u16, String)) {
    let k = i % users(route);
    // The same number of identifiers, each asked for as often, on either side: what a repeated
    // identifier meets (a code slot out of tries, a throttled send) is met alike.
    let (login, email) = if known {
        (format!("known{k}"), format!("known{k}@example.com"))
    } else {
        (format!("nobody{k}"), format!("nobody{k}@example.com"))
    };
    let peer = IpAddr::V4(Ipv4Addr::new(
        198,
        18 + u8::from(known),
        (i / 250) as u8,
        (i % 250) as u8 + 1,
    ));
    let wrong = "wrong password";
    let form = "application/x-www-form-urlencoded";
    let (path, content_type, body): (&str, &str, String) = match route {
        "magento-customer-token" => (
            "/rest/V1/integration/customer/token",
            "application/json",
            json!({"username": login, "password": wrong}).to_string(),
        ),
        "magento-admin-token" => {
            let admin = if known { format!("admin{k}") } else { login };
            (
                "/rest/V1/integration/admin/token",
                "application/json",
                json!({"username": admin, "password": wrong}).to_string(),
            )
        }
        "magento-tfa-authenticate" => {
            let admin = if known { format!("admin{k}") } else { login };
            (
                "/rest/V1/tfa/provider/google/authenticate",
                "application/json",
                json!({"username": admin, "password": wrong, "otp": "123456"}).to_string(),
            )
        }
        "glue-token" => {
            let admin = if known { format!("admin{k}") } else { login };
            (
                "/token",
                form,
                format!("grant_type=password&username={admin}&password=wrong"),
            )
        }
        "glue-access-tokens" => (
            "/access-tokens",
            "application/vnd.api+json",
            json!({"data": {"type": "access-tokens", "attributes": {"username": login, "password": wrong}}})
                .to_string(),
        ),
        "wizard-signin" => {
            // A flow of its own, asked for before the clock starts.
            let flow = t.get("/api/v2/my/signin/wizard", None).await;
            let fingerprint = base64::engine::general_purpose::STANDARD
                .encode(r#"{"user_agent":"latchkey-bench"}"#);
            (
                "/api/v2/my/signin",
                "application/json",
                json!({"uuid": flow.json["uuid"], "email": email, "password": wrong,
                       "device_fingerprint": fingerprint})
                .to_string(),
            )
        }
        "wizard-restore" => (
            "/api/v2/my/signin/password/restore",
            "application/json",
            json!({"email": email}).to_string(),
        ),
        "wizard-reset" => {
            // A reset flow of its own, asked for before the clock starts; a wrong code.
            let flow = t
                .call_from(
                    Method::POST,
                    "/api/v2/my/signin/password/restore",
                    Some(&json!({"email": email}).to_string()),
                    None,
                    peer,
                )
                .await;
            (
                "/api/v2/my/signin/password/reset",
                "application/json",
                json!({"uuid": flow.json["uuid"], "code": "000000", "password": "N3w password!"})
                    .to_string(),
            )
        }
        "magic-link-send" => (
            "/rest/V1/otp/send",
            "application/json",
            json!({"email": email, "storeId": "1"}).to_string(),
        ),
        "magic-link-request" => (
            "/customer/otp/request",
            form,
            format!("email={}&store_id=1", email.replace('@', "%40")),
        ),
        other => panic!("no route {other}"),
    };
    let mut req = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", content_type)
        .body(Bytes::from(body))
        .unwrap();
    req.extensions_mut().insert(Peer(peer));
    let started = Instant::now();
    let reply = t.send(req).await;
    (started.elapsed(), shape(&reply, &email))
}

/// The answer with random flow ids, page nonces and the email a page echoes masked.
fn shape(reply: &Reply, email: &str) -> (u16, String) {
    let mut v: Value = reply.json.clone();
    if v.get("uuid").is_some_and(Value::is_string) {
        v["uuid"] = json!("<uuid>");
    }
    let body = if v.is_null() {
        mask_nonces(&reply.text).replace(email, "<email>")
    } else {
        v.to_string()
    };
    (reply.status.as_u16(), body)
}

async fn measure(backend: Backend, routes: &[&str], n: usize) {
    for route in routes {
        // A fresh app and table per route: what one route wrote does not slow the next (the
        // emulator's transactions copy every table).
        let t = app(backend, route).await;
        // Warm up both paths (connections, caches, the hashing threads).
        for i in 0..20 {
            probe(&t, route, n + i, true).await;
            probe(&t, route, n + i, false).await;
        }
        let mut known = Vec::with_capacity(n);
        let mut unknown = Vec::with_capacity(n);
        let mut answers = BTreeSet::new();
        for i in 0..n {
            // Interleaved, alternating which goes first, so drift hits both alike.
            let order = if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_known in order {
                let (took, reply) = probe(&t, route, i, is_known).await;
                answers.insert(reply);
                if is_known {
                    known.push(took);
                } else {
                    unknown.push(took);
                }
            }
        }
        println!("\n== {backend:?} {route}: {n} requests each, a known account vs an unknown one");
        println!("   distinct answers seen: {} {:?}", answers.len(), answers);
        report("known   ", &mut known);
        report("unknown ", &mut unknown);
        histogram(&known, &unknown);
        let d = ks_distance(&known, &unknown);
        let critical = 1.63 * ((2.0 * n as f64) / (n as f64 * n as f64)).sqrt();
        println!(
            "   Kolmogorov-Smirnov distance {d:.4} (1% critical value {critical:.4}): {}",
            if d < critical {
                "no evidence the distributions differ"
            } else {
                "the distributions differ"
            }
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    let var = samples.iter().map(|d| (ms(*d) - mean).powi(2)).sum::<f64>() / samples.len() as f64;
    let p = |q| ms(percentile(samples, q));
    println!(
        "   {name} ms: min {:.2}  p10 {:.2}  p25 {:.2}  p50 {:.2}  p75 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {mean:.2}  sd {:.2}",
        p(0.0),
        p(0.10),
        p(0.25),
        p(0.50),
        p(0.75),
        p(0.90),
        p(0.99),
        p(1.0),
        var.sqrt()
    );
}

/// Both distributions as one histogram over their common range (20 bins, p1 to p99).
fn histogram(known: &[Duration], unknown: &[Duration]) {
    let mut all: Vec<Duration> = known.iter().chain(unknown).copied().collect();
    all.sort();
    let (lo, hi) = (ms(percentile(&all, 0.01)), ms(percentile(&all, 0.99)));
    let bins = 20;
    let width = ((hi - lo) / bins as f64).max(1e-6);
    let count = |samples: &[Duration]| {
        let mut c = vec![0usize; bins];
        for d in samples {
            let b = (((ms(*d) - lo) / width).floor().max(0.0) as usize).min(bins - 1);
            c[b] += 1;
        }
        c
    };
    let (k, u) = (count(known), count(unknown));
    let top = k.iter().chain(&u).copied().max().unwrap_or(1).max(1);
    println!(
        "   histogram (ms; K = known, U = unknown; each # is {:.0} samples)",
        top as f64 / 30.0
    );
    for b in 0..bins {
        let bar = |n: usize| "#".repeat((n * 30).div_ceil(top));
        println!(
            "   {:>7.2}  K {:<31} {:>4} | U {:<31} {:>4}",
            lo + b as f64 * width,
            bar(k[b]),
            k[b],
            bar(u[b]),
            u[b]
        );
    }
}

/// The largest gap between the two empirical distribution functions.
fn ks_distance(a: &[Duration], b: &[Duration]) -> f64 {
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            i += 1;
        } else {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}
