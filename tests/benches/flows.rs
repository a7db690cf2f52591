//! Every flow step, measured: the walk of every route of every dialect
//! ([`latchkey_tests::walk`]) on the embedded store, each walk on a fresh store in a fresh
//! temporary directory, one request per step. Per step it reports the store calls (against
//! the `calls-per-request` table of `infra/TABLE.md`), the password hashes the step ran, and
//! the handler time: `App::handle`, the entry point the servers call, by the wall clock (the
//! test builds the request before and parses the answer after). Times are taken without
//! hashing — argon2id at its least cost, 8 KiB and one pass (a few microseconds), so what the
//! handler costs outside the hash that ships — and with it (argon2id, 19 MiB, t=2).
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
//! p99 handler time without hashing is at most 1 ms. `LATCHKEY_BENCH_QUICK=1` skips the time
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
use std::time::Duration;

use latchkey_tests::harness::{Backend, Cost};
use latchkey_tests::walk::{Measured, budget_row, documented_rows, walk};
use serde_json::{Value, json};

/// The handler-time budget of a step without hashing, at the 99th percentile.
const P99_BUDGET_US: f64 = 1_000.0;

/// One step of the walk, over every walk.
struct Step {
    route: &'static str,
    scenario: &'static str,
    /// The calls it made, every count seen (one, unless a walk differs from another).
    calls: BTreeSet<usize>,
    /// The hashes it ran, every count seen.
    hashes: BTreeSet<u64>,
    cheap: Vec<Duration>,
    owasp: Vec<Duration>,
}

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
            cheap: Vec::with_capacity(walks),
            owasp: Vec::with_capacity(hashed),
        })
        .collect();
    for (cost, n) in [(Cost::Minimal, walks), (Cost::Owasp, hashed)] {
        for _ in 0..n {
            let w = runtime.block_on(walk(Backend::Sqlite, cost));
            collect(&mut steps, &w.measured, cost);
        }
    }

    let documented = documented_rows();
    print_table(&steps, &documented, walks, hashed);
    if let Ok(path) = std::env::var("LATCHKEY_BENCH_OUT") {
        let out = report(&steps, &documented, walks, hashed);
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        println!("\nwrote {path}");
    }

    // Times are budgeted on a full run only: a quick one counts calls.
    let timed = !quick && walks > 0;
    let missed = budgets(&steps, &documented, timed);
    if missed.is_empty() {
        let times = if timed {
            ", p99 handler time without hashing ≤ 1 ms"
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
            step.cheap.push(m.handler);
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

fn print_table(steps: &[Step], documented: &[String], walks: usize, hashed: usize) {
    println!(
        "every step of the walk on the embedded store (SQLite): {walks} walks without hashing \
         (argon2id at its least, 8 KiB, t=1), {hashed} with (19 MiB, t=2); handler time (App::handle) in \
         µs, nearest-rank percentiles"
    );
    println!();
    let (rw, sw) = (
        steps.iter().map(|s| s.route.len()).max().unwrap_or(5),
        steps.iter().map(|s| s.scenario.len()).max().unwrap_or(8),
    );
    println!(
        "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>8}  {:>8}  {:>8}  {:>10}",
        "#", "route", "scenario", "calls", "hashes", "p50", "p99", "max", "hashed p50"
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
        let cheap = stats(&step.cheap);
        let owasp = stats(&step.owasp);
        println!(
            "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>8}  {:>8}  {:>8}  {:>10}",
            i + 1,
            step.route,
            step.scenario,
            calls,
            counts(&step.hashes),
            show(cheap.as_ref().map(|s| s.p50)),
            show(cheap.as_ref().map(|s| s.p99)),
            show(cheap.as_ref().map(|s| s.max)),
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

fn report(steps: &[Step], documented: &[String], walks: usize, hashed: usize) -> Value {
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
                // "cheap": without hashing, i.e. at argon2id's least cost (the key predates it).
                "cheap_us": stats_json(&step.cheap),
                "owasp_us": stats_json(&step.owasp),
            })
        })
        .collect();
    json!({
        "walks": walks,
        "hashed_walks": hashed,
        "store": "sqlite",
        "steps": steps,
    })
}

/// The budgets a run missed, one line each.
fn budgets(steps: &[Step], documented: &[String], times: bool) -> Vec<String> {
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
            if let Some(s) = stats(&step.cheap)
                && s.p99 > P99_BUDGET_US
            {
                missed.push(format!(
                    "time, step {} ({} | {}): p99 {:.0} µs without hashing, over {P99_BUDGET_US:.0} µs",
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
