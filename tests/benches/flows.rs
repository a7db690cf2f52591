//! Every flow step, measured: the walk of every route of every dialect
//! ([`latchkey_tests::walk`]) on the embedded store, each walk on a fresh store in a fresh
//! temporary directory, one request per step. Per step it reports the store calls (against
//! the `calls-per-request` table of `infra/TABLE.md`), the password hashes the step ran, and
//! the handler time: `App::handle`, the entry point the servers call, by the wall clock (the
//! test builds the request before and parses the answer after). Times are taken without
//! hashing — argon2id at its least cost, 8 KiB and one pass (a few microseconds), so what the
//! handler costs outside the hash that ships — and with it (argon2id, 19 MiB, t=2).
//!
//! A request's own time leaves out what it spends on purpose: its waits for the hashing threads
//! (the hash, at whatever cost, and the two hand-offs between threads that keep it off the async
//! ones) and its RS256 signatures. A 2048-bit RSA signature costs about as much as all the rest
//! of a request, and the contracts ask for it (the wizard's two tokens, Glue's). The core sums
//! both as they happen (`PasswordHasher::waited`, `KeySet::rs256_spent`), and each request is
//! timed less its own: a hash or a signature slowed by the machine does not count against the
//! step, and anything else slowed does. Every app of the run shares one key set, as the requests
//! of one server or one warm function do, so an RSA key's check at its first signature is paid
//! once, not once per walk.
//!
//! The walks without hashing run in batches, and a step's own p99 is the median of its batches'.
//! On a shared machine, the hypervisor gives other guests part of the CPU time in spells (the
//! run prints each batch's "steal"): a request that a spell falls on is slow whatever its code.
//! Over one pool of 200 walks, the count of steps over 1 ms moved from 0 to 24 between runs of
//! one binary, the most where the steal was highest (infra/BENCH.md, "Run of 2026-11-28,
//! morning"). A spell shorter than a batch moves that batch's
//! tail and not the median; a slow step is slow in every batch.
//!
//! ```sh
//! cargo bench -p latchkey-tests --bench flows      # 3 batches of 200 walks, 10 hashed
//! LATCHKEY_BENCH_WALKS=50 LATCHKEY_BENCH_BATCHES=1 LATCHKEY_BENCH_HASHED_WALKS=0 \
//!     LATCHKEY_BENCH_OUT=flows.json cargo bench -p latchkey-tests --bench flows
//! LATCHKEY_BENCH_QUICK=1 cargo bench -p latchkey-tests --bench flows  # CI: counts only
//! ```
//!
//! Budgets, checked (exit code 1 when one is missed): each step's store calls equal its row of
//! `infra/TABLE.md` (the rows the DynamoDB test compares, in the same order), and each step's
//! own p99 handler time (walks without hashing, less the hash waits and RS256 signatures; the
//! median of the batches') is at most 1 ms (the table shows the p99 with them too).
//! `LATCHKEY_BENCH_QUICK=1` skips the time budget (shared CI machines time nothing reliably)
//! and walks 20 times in one batch, none hashed, unless told otherwise.
//!
//! The bench runs on mimalloc, the allocator of `latchkey serve`, the one program whose
//! requests reach the embedded store (the functions run on DynamoDB). On glibc's allocator one
//! step, the walk's first sign-in, took twice its time in every run whose per-step sample
//! vectors (`Step::cheap`) were sized for 600 walks, the default three batches of 200: own p50
//! 379–697 µs (medians of 100 walks), against 175–314 in runs sized for 200. Nothing else told
//! the runs apart: no page fault and no change of CPU during the step, and the same binary both
//! ways. Growing the vectors from 200 in the middle of a run slowed the step from then on. On
//! mimalloc, in turn with glibc at 3 × 200: 173–297 µs and no step over the budget, against
//! 424–634 µs and 1 and 6 over. We take it for an effect of the heap's layout: each walk drops a
//! whole app and store, which a server never does, and what glibc's free lists hold after that
//! depends on what sits below (infra/BENCH.md, "Runs of 2026-11-28, mid-morning").
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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The budget of a step's own handler time (outside its hash waits and RS256 signatures), at
/// the 99th percentile.
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
    /// Handler times without hashing, each with what its request spent on purpose (hash waits
    /// and RS256 signatures).
    cheap: Vec<(Duration, Duration)>,
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
    let batches = env_count("LATCHKEY_BENCH_BATCHES", if quick { 1 } else { 3 }).max(1);
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
            cheap: Vec::with_capacity(walks * batches),
            owasp: Vec::with_capacity(hashed),
        })
        .collect();
    let mut steal = Vec::with_capacity(batches);
    for _ in 0..batches {
        let before = cpu_ticks();
        for _ in 0..walks {
            let w = runtime.block_on(walk(Backend::Sqlite, Cost::Minimal));
            collect(&mut steps, &w.measured, Cost::Minimal);
        }
        steal.push(
            before
                .zip(cpu_ticks())
                .and_then(|(a, b)| b.share_stolen_since(&a)),
        );
    }
    for _ in 0..hashed {
        let w = runtime.block_on(walk(Backend::Sqlite, Cost::Owasp));
        collect(&mut steps, &w.measured, Cost::Owasp);
    }
    let run = Run {
        walks,
        batches,
        hashed,
        steal,
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
    let missed = budgets(&steps, &documented, timed.then_some(&run));
    if missed.is_empty() {
        let times = if timed {
            ", own p99 handler time (outside hashing and RS256) ≤ 1 ms"
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
    /// Walks without hashing in each batch.
    walks: usize,
    batches: usize,
    hashed: usize,
    /// Per batch, the share of the machine's CPU time that the hypervisor gave to other guests
    /// while its walks ran (Linux's "steal"), when the system reports it.
    steal: Vec<Option<f64>>,
}

impl Run {
    /// A step's own p99 in each batch of walks without hashing.
    fn batch_p99s(&self, step: &Step) -> Vec<f64> {
        step.cheap
            .chunks(self.walks.max(1))
            .filter_map(|batch| stats(&own_times(batch)).map(|s| s.p99))
            .collect()
    }

    /// A step's own p99 as the budget reads it: the median of its batches' (the higher middle
    /// one of an even count). A spell of a slow machine shorter than a batch moves one batch's
    /// tail, not the median; code that is slow is slow in every batch.
    fn own_p99(&self, step: &Step) -> Option<f64> {
        let mut p99s = self.batch_p99s(step);
        p99s.sort_by(f64::total_cmp);
        p99s.get(p99s.len() / 2).copied()
    }
}

/// The machine's CPU time so far, in clock ticks, from the first line of `/proc/stat`.
struct CpuTicks {
    total: u64,
    steal: u64,
}

impl CpuTicks {
    fn share_stolen_since(&self, earlier: &CpuTicks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)?;
        Some(self.steal.saturating_sub(earlier.steal) as f64 / total as f64)
    }
}

/// `/proc/stat`'s `cpu` line: user, nice, system, idle, iowait, irq, softirq, steal, ... (none
/// elsewhere than Linux).
fn cpu_ticks() -> Option<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    Some(CpuTicks {
        total: fields.iter().take(8).sum(),
        steal: *fields.get(7)?,
    })
}

/// Each request's own time: its handler time less what it spent on purpose.
fn own_times(samples: &[(Duration, Duration)]) -> Vec<Duration> {
    samples
        .iter()
        .map(|&(handler, deliberate)| handler.saturating_sub(deliberate))
        .collect()
}

/// What each request spent on purpose: its hash waits and RS256 signatures.
fn deliberate_times(samples: &[(Duration, Duration)]) -> Vec<Duration> {
    samples.iter().map(|&(_, deliberate)| deliberate).collect()
}

fn handler_times(samples: &[(Duration, Duration)]) -> Vec<Duration> {
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
            step.cheap.push((m.handler, m.deliberate));
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
         µs, nearest-rank percentiles; \"spent\": the request's waits for the hashing threads \
         and its RS256 signatures, as timed in it; \"own\": its time less what it spent",
        run.walks * run.batches,
        run.hashed,
    );
    println!(
        "\"own p99\": the median of {} batches' p99 ({} walks each); the hypervisor's steal in each \
         batch (the share of the machine's CPU time given to other guests, /proc/stat): {}",
        run.batches,
        run.walks,
        run.steal
            .iter()
            .map(|s| s.map_or("?".to_owned(), |s| format!("{:.1}%", s * 100.0)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    let (rw, sw) = (
        steps.iter().map(|s| s.route.len()).max().unwrap_or(5),
        steps.iter().map(|s| s.scenario.len()).max().unwrap_or(8),
    );
    println!(
        "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>5}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}  {:>10}",
        "#",
        "route",
        "scenario",
        "calls",
        "hashes",
        "RS256",
        "p50",
        "p99",
        "max",
        "spent p50",
        "own p50",
        "own p99",
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
        let spent = stats(&deliberate_times(&step.cheap));
        let own = stats(&own_times(&step.cheap));
        let own_p99 = run.own_p99(step);
        let owasp = stats(&step.owasp);
        println!(
            "{:>3}  {:rw$}  {:sw$}  {:>11}  {:>6}  {:>5}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}  {:>10}",
            i + 1,
            step.route,
            step.scenario,
            calls,
            counts(&step.hashes),
            counts(&step.rs256),
            show(cheap.as_ref().map(|s| s.p50)),
            show(cheap.as_ref().map(|s| s.p99)),
            show(cheap.as_ref().map(|s| s.max)),
            show(spent.as_ref().map(|s| s.p50)),
            show(own.as_ref().map(|s| s.p50)),
            show(own_p99),
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
                // What the request spent on purpose (hash waits, RS256 signatures), and the
                // rest: its own time, which the budget holds.
                "cheap_spent_us": stats_json(&deliberate_times(&step.cheap)),
                "cheap_own_us": stats_json(&own_times(&step.cheap)),
                // The budget's figure: the median of the batches' p99.
                "cheap_own_p99_us": run.own_p99(step).map(|x| (x * 10.0).round() / 10.0),
                "cheap_own_p99_batches_us": run.batch_p99s(step)
                    .iter()
                    .map(|x| (x * 10.0).round() / 10.0)
                    .collect::<Vec<_>>(),
                "owasp_us": stats_json(&step.owasp),
            })
        })
        .collect();
    json!({
        "walks": run.walks * run.batches,
        "batches": run.batches,
        "hashed_walks": run.hashed,
        "steal_share_per_batch": run.steal,
        "store": "sqlite",
        "steps": steps,
    })
}

/// The budgets a run missed, one line each; times only given the run (a full one).
fn budgets(steps: &[Step], documented: &[String], times: Option<&Run>) -> Vec<String> {
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
                deliberate: Duration::ZERO,
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
    if let Some(run) = times {
        for (i, step) in steps.iter().enumerate() {
            if let Some(p99) = run.own_p99(step)
                && p99 > P99_BUDGET_US
            {
                missed.push(format!(
                    "time, step {} ({} | {}): own p99 {p99:.0} µs (outside hashing and RS256, \
                     median of the batches), over {P99_BUDGET_US:.0} µs",
                    i + 1,
                    step.route,
                    step.scenario,
                ));
            }
        }
    }
    missed
}
