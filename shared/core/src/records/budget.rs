//! The conditional writes of a failure budget, on whichever item holds it (a user's profile
//! holds one per factor; a per-address budget has an item of its own).
//!
//! A budget counts attempts *before* they are checked: [`reserve`] is one conditional `ADD`
//! that fails once the count has reached the limit, so however many attempts arrive at once,
//! at most `max_failures` are ever checked. A run of failures starts a window (`first`); when
//! the window has passed, or the block after the limit has run out, [`restart`] begins a new
//! run — conditional on nobody else having changed the counter meanwhile.

use crate::identity::users::{Budget, Failures, MAX_CONSECUTIVE_FAILURES};
use crate::store::{CmpOp, Cond, Item, Key, Update, Write};

/// The three attributes of one budget on its item.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    pub count: &'static str,
    pub first: &'static str,
    pub last: &'static str,
    /// Failures in a row, where the budget keeps them (a user's factors; not an address).
    pub streak: Option<&'static str>,
}

impl Names {
    /// The failures an item holds under these names.
    pub fn read(self, item: &Item) -> Failures {
        Failures {
            count: item
                .num(self.count)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            first_at: item.num(self.first),
            last_at: item.num(self.last),
            streak: self
                .streak
                .and_then(|name| item.num(name))
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        }
    }

    /// Removes the budget's attributes (a clean run).
    pub fn clear(self, update: Update) -> Update {
        let update = update
            .remove(self.count)
            .remove(self.first)
            .remove(self.last);
        match self.streak {
            Some(name) => update.remove(name),
            None => update,
        }
    }

    /// Counts the attempt in the streak, and refuses it once the streak reached the limit.
    fn count_streak(self, update: Update, conds: &mut Vec<Cond>) -> Update {
        match self.streak {
            Some(name) => {
                conds.push(Cond::missing_or(
                    name,
                    CmpOp::Lt,
                    i64::from(MAX_CONSECUTIVE_FAILURES),
                ));
                update.add(name, 1)
            }
            None => update,
        }
    }
}

/// Counts one attempt if the budget allows it: under the limit, and within the window of the
/// current run (if the budget has one). `guard` adds the caller's own precondition.
pub fn reserve(key: Key, names: Names, budget: &Budget, now: i64, guard: Cond) -> Write {
    let mut conds = vec![
        guard,
        Cond::missing_or(names.count, CmpOp::Lt, i64::from(budget.max_failures)),
    ];
    if let Some(window) = budget.window_secs {
        conds.push(Cond::missing_or(
            names.first,
            CmpOp::Gt,
            now.saturating_sub(window),
        ));
    }
    let update = Update::new()
        .add(names.count, 1)
        .set(names.last, now)
        .set_if_missing(names.first, now);
    let update = names.count_streak(update, &mut conds);
    Write::new(key, update, Cond::And(conds))
}

/// Starts a new run at one attempt, if the counter is still as `seen` (the window passed or the
/// block ran out since).
pub fn restart(key: Key, names: Names, seen: &Failures, now: i64, guard: Cond) -> Write {
    let same = |name: &str, value: Option<i64>| match value {
        Some(v) => Cond::eq(name, v),
        None => Cond::missing(name),
    };
    // A count given back to 0 (a released reservation) may be stored as 0 rather than absent.
    let count = match seen.count {
        0 => Cond::Or(vec![Cond::missing(names.count), Cond::eq(names.count, 0)]),
        n => Cond::eq(names.count, i64::from(n)),
    };
    let mut conds = vec![
        guard,
        count,
        same(names.first, seen.first_at),
        same(names.last, seen.last_at),
    ];
    let update = Update::new()
        .set(names.count, 1)
        .set(names.first, now)
        .set(names.last, now);
    let update = names.count_streak(update, &mut conds);
    Write::new(key, update, Cond::And(conds))
}

/// Whether a run seen in a refused reservation may start over now (rather than being blocked).
pub fn may_restart(seen: &Failures, budget: &Budget, now: i64) -> bool {
    if seen.disabled() {
        return false;
    }
    if seen.count >= budget.max_failures {
        return seen.blocked(now, budget).is_none();
    }
    // Under the limit, so the window must have passed.
    budget.window_secs.is_some_and(|w| {
        seen.first_at
            .is_some_and(|first| first <= now.saturating_sub(w))
    })
}
