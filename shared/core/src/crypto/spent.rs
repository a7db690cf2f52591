//! What a process has spent on the two deliberate costs of a request, password hashes and
//! RS256 signatures: how many, and how long, summed since start. The flows benchmark reads the
//! sums before and after each request, and so times the handler outside them request by
//! request, as long as nothing else signs or hashes with the same keys and hasher meanwhile (its
//! walks make one request at a time; infra/BENCH.md). No rule reads them: they change no
//! answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Running totals of one kind of cost.
#[derive(Debug, Default)]
pub struct Spent {
    count: AtomicU64,
    nanos: AtomicU64,
}

/// [`Spent`]'s totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub time: Duration,
}

impl std::ops::Sub for Tally {
    type Output = Tally;

    /// What was spent between two readings (`self` the later one).
    fn sub(self, earlier: Tally) -> Tally {
        Tally {
            count: self.count.saturating_sub(earlier.count),
            time: self.time.saturating_sub(earlier.time),
        }
    }
}

impl Spent {
    /// The moment one cost starts; hand it to [`Spent::add`] when it ends.
    #[allow(clippy::disallowed_methods)] // a duration for the benchmark, not a time any rule reads
    pub fn start() -> Instant {
        Instant::now()
    }

    /// Counts one cost, begun at `since` (from [`Spent::start`]) and ended now.
    pub fn add(&self, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The totals so far.
    pub fn tally(&self) -> Tally {
        Tally {
            count: self.count.load(Ordering::Relaxed),
            time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sums_what_it_is_given() {
        let spent = Spent::default();
        assert_eq!(spent.tally(), Tally::default());
        let before = spent.tally();
        let start = Spent::start();
        // Some work between start and add, so the sum is not zero on any clock.
        let mut x = 0u64;
        while start.elapsed() < Duration::from_micros(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        spent.add(start);
        spent.add(Spent::start());
        let delta = spent.tally() - before;
        assert_eq!(delta.count, 2);
        assert!(delta.time >= Duration::from_micros(50), "{delta:?}");
    }
}
