//! Enumeration, measured: the latency of a sign-in for an account that exists (wrong password)
//! and for one that does not, 1,000 samples each, interleaved, with the password hash that
//! ships (argon2id, 19 MiB, t=2), on the embedded store and on DynamoDB (through the local AWS
//! emulator, when `LATCHKEY_TEST_AWS_ENDPOINT` is set — `./scripts/test` sets it).
//!
//! ```sh
//! cargo bench -p latchkey-tests --bench enumeration               # both stores
//! LATCHKEY_BENCH_SAMPLES=200 cargo bench -p latchkey-tests --bench enumeration
//! ```
//!
//! It prints both distributions (percentiles, mean, a histogram) and the Kolmogorov–Smirnov
//! distance between them with its 1% critical value: a distance under the critical value means
//! the samples give no evidence that the two differ. The answers themselves are compared byte
//! for byte by `security::known_and_unknown_accounts_get_byte_identical_answers`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods // a benchmark measures real time
)]

use std::time::{Duration, Instant};

use latchkey_core::identity::users::Role;
use latchkey_tests::harness::{Backend, Cost, TestApp};

const PATH: &str = "/rest/V1/integration/customer/token";
const USERS: usize = 50;

fn samples() -> usize {
    std::env::var("LATCHKEY_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut backends = vec![Backend::Sqlite];
    if std::env::var_os("LATCHKEY_TEST_AWS_ENDPOINT").is_some() {
        backends.push(Backend::Dynamodb);
    } else {
        println!(
            "LATCHKEY_TEST_AWS_ENDPOINT is not set: DynamoDB skipped (run under ./scripts/test's emulator)"
        );
    }
    for backend in backends {
        runtime.block_on(measure(backend, samples()));
    }
}

async fn measure(backend: Backend, n: usize) {
    let t = TestApp::on_with_cost(
        backend,
        &[
            ("LATCHKEY_IP_ATTEMPTS", "1000000"),
            ("LATCHKEY_LOCKOUT_FAILURES", "1000"),
        ],
        Cost::Owasp,
    )
    .await;
    for i in 0..USERS {
        t.add_user(
            &format!("known{i}"),
            &format!("known{i}@example.com"),
            "correct horse battery",
            Role::Customer,
        )
        .await;
    }
    let body = |login: &str| {
        serde_json::json!({"username": login, "password": "wrong password"}).to_string()
    };
    // Warm up both paths (connections, caches, the blocking pool).
    for i in 0..20 {
        t.post(PATH, &body(&format!("known{}", i % USERS))).await;
        t.post(PATH, &body(&format!("warmup{i}@example.com"))).await;
    }
    let mut known = Vec::with_capacity(n);
    let mut unknown = Vec::with_capacity(n);
    let mut answers = std::collections::BTreeSet::new();
    for i in 0..n {
        // Interleaved, alternating which goes first, so drift hits both alike.
        let k = body(&format!("known{}", i % USERS));
        let u = body(&format!("nobody{i}@example.com"));
        let order: [(&String, bool); 2] = if i % 2 == 0 {
            [(&k, true), (&u, false)]
        } else {
            [(&u, false), (&k, true)]
        };
        for (request, is_known) in order {
            let started = Instant::now();
            let reply = t.post(PATH, request).await;
            let took = started.elapsed();
            answers.insert((reply.status.as_u16(), reply.text));
            if is_known {
                known.push(took);
            } else {
                unknown.push(took);
            }
        }
    }
    println!(
        "\n== {backend:?}: {n} sign-ins each, wrong password for a known account vs an unknown account"
    );
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
