//! Every flow step, measured: the walk of every route of every dialect
//! ([`latchkey_tests::walk`]) on the embedded store, each walk on a fresh store in a fresh
//! temporary directory, one request per step. Per step it reports the store calls (against
//! the `calls-per-request` table of `infra/TABLE.md`), the password hashes the step ran, and
//! the handler time: `App::handle`, the entry point the servers call, by the wall clock (the
//! test builds the request before and parses the answer after). Times are taken without
//! hashing — argon2id at its least cost, 8 KiB and one pass (a few microseconds), so what the
//! handler costs outside the hash that ships — and with it (argon2id, 19 MiB, t=2).
//!
//! RS256 is told apart the same way. A 2048-bit RSA signature costs about as much as all the
//! rest of a request, and the contracts ask for it (the wizard's two tokens, Glue's). Each step
//! counts the RS256 signatures it made, and the run times the same key's signatures between
//! walks. "Outside RS256" is a request's time less its signatures at their median: a signature
//! slowed by the machine still counts against the step. Every app of the run shares one key
//! set, as the requests of one server or one warm function do, so an RSA key's check at its
//! first signature is paid once, not once per walk.
//!
//! ```sh
//! cargo bench -p latchkey-tests --bench flows                         # 200 walks, 10 hashed
//! LATCHKEY_BENCH_WALKS=50 LATCHKEY_BENCH_HASHED_WALKS=0 LATCHKEY_BENCH_OUT=flows.json \
//!     cargo bench -p latchkey-tests --bench flows
//! LATCHKEY_BENCH_QUICK=1 cargo bench -p latchkey-tests --bench flows  # CI: counts only
//! ```
//!
//! Budgets, checked (exit code 1 when one is missed): each step's store calls equal its row of
//! `infra/TABLE.md` (the rows the DynamoDB test compares, in the same order), and each step's
//! p99 handler time without hashing, outside RS256, is at most 1 ms (the table shows the p99
//! with RS256 too). `LATCHKEY_BENCH_QUICK=1` skips the time
//! budget (shared CI machines time nothing reliably) and walks 20 times, none hashed, unless
//! told otherwise.
//!
//! Steps are told apart by their place in the walk, not by route and scenario alone: a
//! scenario can come twice with different costs (the wizard's `right code: tokens`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods // a benchmark measures real time
)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use latchkey_core::crypto::keys::SigningAlg;
use latchkey_tests::harness::{Backend, Cost, fixture_keys};
use latchkey_tests::walk::{Measured, budget_row, documented_rows, walk};
use serde_json::{Value, json};

/// The handler-time budget of a step without hashing, outside RS256, at the 99th percentile.
const P99_BUDGET_US: f64 = 1_000.0;

/// One step of the walk, over every walk.
struct Step {
    route: &'static str,
    scenario: &'static str,
    /// The calls it made, every count seen (one, unless a walk differs from another).
    calls: BTreeSet<usize>,
    /// The hashes it ran, every count seen.
    hashes: BTreeSet<u64>,
    /// The RS256 signatures it made, every count seen.
    rs256: BTreeSet<u64>,
    /// Handler times without hashing, each with the RS256 signatures of its request.
    cheap: Vec<(Duration, u64)>,
    owasp: Vec<Duration>,
}

/// RS256 signatures timed after each walk: spread over the run, they see its slow spells too.
const SIGNATURES_PER_WALK: usize = 5;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let quick = std::env::var("LATCHKEY_BENCH_QUICK").is_ok_and(|v| v == "1");
    let walks = env_count("LATCHKEY_BENCH_WALKS", if quick { 20 } else { 200 });
    let hashed = env_count("LATCHKEY_BENCH_HASHED_WALKS", if quick { 0 } else { 10 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Warm-up: one walk, not measured (code paths, allocator, the file cache).
    let mut steps: Vec<Step> = runtime
        .block_on(walk(Backend::Sqlite, Cost::Minimal))
        .measured
        .iter()
        .map(|m| Step {
            route: m.route,
            scenario: m.scenario,
            calls: BTreeSet::from([m.calls]),
            hashes: BTreeSet::from([m.hashes]),
            rs256: BTreeSet::from([m.rs256]),
            cheap: Vec::with_capacity(walks),
            owasp: Vec::with_capacity(hashed),
        })
        .collect();
    let mut signatures = Vec::with_capacity(walks * SIGNATURES_PER_WALK);
    for (cost, n) in [(Cost::Minimal, walks), (Cost::Owasp, hashed)] {
        for _ in 0..n {
            let w = runtime.block_on(walk(Backend::Sqlite, cost));
            collect(&mut steps, &w.measured, cost);
            if cost == Cost::Minimal {
                time_signatures(&mut signatures);
            }
        }
    }
    let run = Run {
        walks,
        hashed,
        signatures,
    };

    let documented = documented_rows();
    print_table(&steps, &documented, &run);
    if let Ok(path) = std::env::var("LATCHKEY_BENCH_OUT") {
        let out = report(&steps, &documented, &run);
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        println!("\nwrote {path}");
    }

    // Times are budgeted on a full run only: a quick one counts calls.
    let timed = !quick && walks > 0;
    let missed = budgets(&steps, &documented, timed, run.rs256());
    if missed.is_empty() {
        let times = if timed {
            ", p99 handler time without hashing, outside RS256, ≤ 1 ms"
        } else {
            " (times not checked)"
        };
        println!("\nbudgets met: calls per request as infra/TABLE.md documents{times}");
    } else {
        println!("\nbudgets missed:");
        for line in &missed {
            println!("  {line}");
        }
        std::process::exit(1);
    }
}

/// What every step of a run shares.
struct Run {
    walks: usize,
    hashed: usize,
    /// The run's RS256 signatures, timed between walks.
    signatures: Vec<Duration>,
}

impl Run {
    /// The run's median RS256 signature, nearest-rank as every figure here (zero when none
    /// was timed).
    fn rs256(&self) -> Duration {
        stats(&self.signatures).map_or(Duration::ZERO, |s| Duration::from_secs_f64(s.p50 / 1e6))
    }
}

/// Times [`SIGNATURES_PER_WALK`] RS256 signatures with the key the walks sign with.
fn time_signatures(samples: &mut Vec<Duration>) {
    let keys = fixture_keys();
    let claims = json!({"sub": "87", "iat": 1_700_000_000, "exp": 1_700_003_600});
    for _ in 0..SIGNATURES_PER_WALK {
        let start = Instant::now();
        keys.sign_signed(SigningAlg::RS256, &claims).unwrap();
        samples.push(start.elapsed());
    }
}

/// A request's time less its RS256 signatures at the run's median.
fn outside_rs256(samples: &[(Duration, u64)], rs256: Duration) -> Vec<Duration> {
    samples
        .iter()
        .map(|&(handler, signatures)| {
            handler.saturating_sub(rs256 * u32::try_from(signatures).unwrap())
        })
        .collect()
}

fn handler_times(samples: &[(Duration, u64)]) -> Vec<Duration> {
    samples.iter().map(|&(handler, _)| handler).collect()
}

/// Adds one walk's steps to `steps`; a walk that took other steps is a broken walk.
fn collect(steps: &mut [Step], measured: &[Measured], cost: Cost) {
    assert_eq!(
        measured.len(),
        steps.len(),
        "every walk takes the same steps"
    );
    for (step, m) in steps.iter_mut().zip(measured) {
        assert_eq!(
            (step.route, step.scenario),
            (m.route, m.scenario),
            "every walk takes the same steps"
        );
        step.calls.insert(m.calls);
        if cost == Cost::Minimal {
            step.hashes.insert(m.hashes);
            step.rs256.insert(m.rs256);
            step.cheap.push((m.handler, m.rs256));
        } else {
            step.owasp.push(m.handler);
        }
    }
}

/// Nearest-rank percentile statistics, in µs.
struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
    n: usize,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The nearest-rank percentiles of `samples` (none when empty): the `p`th is the smallest
/// sample at or above which `p`% of the samples lie — rank ⌈p·n/100⌉, no interpolation. With
/// 200 samples the p99 is the 198th smallest, so the two slowest requests do not count.
fn stats(samples: &[Duration]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = |p: usize| sorted[(p * n).div_ceil(100).max(1) - 1];
    Some(Stats {
        p50: us(rank(50)),
        p99: us(rank(99)),
        max: us(sorted[n - 1]),
        mean: us(sorted.iter().sum::<Duration>()) / n as f64,
        n,
    })
}

/// "3", or "2, 3" when walks differed.
fn counts<T: std::fmt::Display>(seen: &BTreeSet<T>) -> String {
    seen.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The calls `infra/TABLE.md` documents for the step at `i`, if its row names the step.
fn documented_calls(step: &Step, documented: &[String], i: usize) -> Option<usize> {
    let row = documented.get(i)?;
    let prefix = format!("| `{}` | {} | ", step.route, step.scenario);
    row.strip_prefix(&prefix)?
        .trim_end_matches('|')
        .trim()
        .parse()
        .ok()
}

fn print_table(steps: &[Step], documented: &[String], run: &Run) {
    println!(
        "every step of the walk on the embedded store (SQLite): {} walks without hashing \
         (argon2id at its least, 8 KiB, t=1), {} with (19 MiB, t=2); handler time (App::handle) in \
         µs, nearest-rank percentiles; \"outside RS256\": less the step's RS256 signatures at \
         this run's median, {:.0} µs (p99 {:.0} µs, {} timed)",
        run.walks,
        run.hashed,
        us(run.rs256()),
        stats(&run.signatures).map_or(0.0, |s| s.p99),
        run.signatures.len(),
    );
    println!();
    let (rw, sw) = (
        steps.iter().map(|s| s.route.len()).max().unwrap_or(5),
        steps.iter().map(|s| s.scenario.len()).max().unwrap_or(8),
    );
    println!(
        "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>5}  {:>8}  {:>8}  {:>8}  {:>13}  {:>10}",
        "#",
        "route",
        "scenario",
        "calls",
        "hashes",
        "RS256",
        "p50",
        "p99",
        "max",
        "p99 w/o RS256",
        "hashed p50"
    );
    for (i, step) in steps.iter().enumerate() {
        let mut calls = counts(&step.calls);
        let doc = documented_calls(step, documented, i);
        if step.calls.len() != 1 || doc.is_none_or(|d| !step.calls.contains(&d)) {
            calls = match doc {
                Some(d) => format!("{calls} (doc {d})"),
                None => format!("{calls} (doc ?)"),
            };
        }
        let show = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.0}"));
        let cheap = stats(&handler_times(&step.cheap));
        let own = stats(&outside_rs256(&step.cheap, run.rs256()));
        let owasp = stats(&step.owasp);
        println!(
            "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>5}  {:>8}  {:>8}  {:>8}  {:>13}  {:>10}",
            i + 1,
            step.route,
            step.scenario,
            calls,
            counts(&step.hashes),
            counts(&step.rs256),
            show(cheap.as_ref().map(|s| s.p50)),
            show(cheap.as_ref().map(|s| s.p99)),
            show(cheap.as_ref().map(|s| s.max)),
            show(own.as_ref().map(|s| s.p99)),
            show(owasp.as_ref().map(|s| s.p50)),
        );
    }
}

fn stats_json(samples: &[Duration]) -> Value {
    let round = |x: f64| (x * 10.0).round() / 10.0;
    stats(samples).map_or(Value::Null, |s| {
        json!({
            "p50": round(s.p50),
            "p99": round(s.p99),
            "max": round(s.max),
            "mean": round(s.mean),
            "n": s.n,
        })
    })
}

fn report(steps: &[Step], documented: &[String], run: &Run) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            // One count when every walk agreed (they do, on a sound walk), else all of them.
            let one_or_all = |seen: Vec<Value>| match seen.as_slice() {
                [one] => one.clone(),
                _ => Value::Array(seen),
            };
            json!({
                "route": step.route,
                "scenario": step.scenario,
                "calls": one_or_all(step.calls.iter().map(|&c| json!(c)).collect()),
                "documented_calls": documented_calls(step, documented, i),
                "hashes": one_or_all(step.hashes.iter().map(|&h| json!(h)).collect()),
                "rs256_signatures": one_or_all(step.rs256.iter().map(|&n| json!(n)).collect()),
                // "cheap": without hashing, i.e. at argon2id's least cost (the key predates it).
                "cheap_us": stats_json(&handler_times(&step.cheap)),
                "cheap_outside_rs256_us": stats_json(&outside_rs256(&step.cheap, run.rs256())),
                "owasp_us": stats_json(&step.owasp),
            })
        })
        .collect();
    json!({
        "walks": run.walks,
        "hashed_walks": run.hashed,
        "rs256_signature_us": (us(run.rs256()) * 10.0).round() / 10.0,
        "rs256_signatures_timed_us": stats_json(&run.signatures),
        "store": "sqlite",
        "steps": steps,
    })
}

/// The budgets a run missed, one line each.
fn budgets(steps: &[Step], documented: &[String], times: bool, rs256: Duration) -> Vec<String> {
    let mut missed = Vec::new();
    // Calls: the same rows, in the same order, as the DynamoDB test compares.
    for i in 0..steps.len().max(documented.len()) {
        let doc = documented.get(i).map(String::as_str);
        let Some(step) = steps.get(i) else {
            missed.push(format!(
                "calls, step {}: TABLE.md has {} and the walk no step",
                i + 1,
                doc.unwrap_or_default()
            ));
            continue;
        };
        for &calls in &step.calls {
            let row = budget_row(&Measured {
                route: step.route,
                scenario: step.scenario,
                calls,
                handler: Duration::ZERO,
                hashes: 0,
                rs256: 0,
            });
            if doc != Some(row.as_str()) {
                missed.push(format!(
                    "calls, step {}: measured {row}, TABLE.md {}",
                    i + 1,
                    doc.unwrap_or("has no row")
                ));
            }
        }
    }
    if times {
        for (i, step) in steps.iter().enumerate() {
            if let Some(s) = stats(&outside_rs256(&step.cheap, rs256))
                && s.p99 > P99_BUDGET_US
            {
                missed.push(format!(
                    "time, step {} ({} | {}): p99 {:.0} µs without hashing, outside RS256, over \
                     {P99_BUDGET_US:.0} µs",
                    i + 1,
                    step.route,
                    step.scenario,
                    s.p99
                ));
            }
        }
    }
    missed
}
