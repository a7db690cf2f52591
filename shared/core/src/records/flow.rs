//! `FLOW#<id>` / `FLOW`: a multi-step flow that spans requests (a sign-in wizard, an enrolment,
//! a QR sign-in), keyed by an unguessable id the client carries from step to step.
//!
//! A flow is `kind` (what it is), `step` (where it stands), and what the steps so far proved:
//! `uid` (whose flow it is, once known) and `data` (one value a later step needs, e.g. the phone
//! number being verified). Every move is one conditional write on the step it leaves, so of two
//! racing requests on one flow only one moves it. The flow's deadline is `until`; the item
//! outlives it by [`GRACE_SECS`] (its TTL), so that a flow that ran out is told apart from one
//! that never existed for a while, and then leaves the table.

use super::{corrupt, number};
use crate::identity::users::UserId;
use crate::store::{CmpOp, Cond, Item, Key, StoreError, Update, Write};

mod attr {
    pub const KIND: &str = "kind";
    pub const STEP: &str = "step";
    pub const UID: &str = "uid";
    pub const DATA: &str = "data";
    pub const CREATED: &str = "created_at";
    pub const UNTIL: &str = "until";
}

const PK_PREFIX: &str = "FLOW#";
const SK: &str = "FLOW";

/// How long a flow's item stays after its deadline (then TTL deletes it).
pub const GRACE_SECS: i64 = 3600;

/// The step of a finished flow: no move leaves it.
pub const DONE: &str = "done";

pub fn key(id: &str) -> Key {
    Key::new(format!("{PK_PREFIX}{id}"), SK)
}

/// A flow as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub id: String,
    pub kind: String,
    pub step: String,
    pub uid: Option<UserId>,
    pub data: Option<String>,
    pub created_at: i64,
    /// The deadline: no step is taken at or after it.
    pub until: i64,
}

impl TryFrom<&Item> for Flow {
    type Error = StoreError;

    fn try_from(item: &Item) -> Result<Self, StoreError> {
        let id = item
            .key
            .pk
            .strip_prefix(PK_PREFIX)
            .ok_or_else(|| corrupt(&item.key, "not a flow key"))?
            .to_owned();
        let text = |name: &str| {
            item.str(name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(&item.key, name))
        };
        Ok(Flow {
            id,
            kind: text(attr::KIND)?,
            step: text(attr::STEP)?,
            uid: item.num(attr::UID).and_then(|n| u64::try_from(n).ok()),
            data: item.str(attr::DATA).map(str::to_owned),
            created_at: item.num(attr::CREATED).unwrap_or(0),
            until: item
                .num(attr::UNTIL)
                .ok_or_else(|| corrupt(&item.key, attr::UNTIL))?,
        })
    }
}

impl From<&Flow> for Item {
    fn from(f: &Flow) -> Item {
        let mut item = Item::new(key(&f.id))
            .with(attr::KIND, f.kind.as_str())
            .with(attr::STEP, f.step.as_str())
            .with(attr::CREATED, f.created_at)
            .with(attr::UNTIL, f.until);
        if let Some(uid) = f.uid {
            item = item.with(attr::UID, number(uid));
        }
        if let Some(data) = &f.data {
            item = item.with(attr::DATA, data.as_str());
        }
        item.expiring_at(f.until.saturating_add(GRACE_SECS))
    }
}

/// What a move sets besides the step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proven<'a> {
    pub uid: Option<UserId>,
    pub data: Option<&'a str>,
}

/// Moves the flow `id` of `kind` from step `from` to step `to` (setting what `proven` names), if
/// it is still at `from` and before its deadline.
pub fn advance(id: &str, kind: &str, from: &str, to: &str, proven: Proven<'_>, now: i64) -> Write {
    let mut update = Update::new().set(attr::STEP, to);
    if let Some(uid) = proven.uid {
        update = update.set(attr::UID, number(uid));
    }
    if let Some(data) = proven.data {
        update = update.set(attr::DATA, data);
    }
    Write::new(
        key(id),
        update,
        Cond::And(vec![
            Cond::Exists,
            Cond::eq(attr::KIND, kind),
            Cond::eq(attr::STEP, from),
            Cond::cmp(attr::UNTIL, CmpOp::Gt, now),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            id: "6f1c2a9e-0000-4000-8000-000000000001".into(),
            kind: "signin".into(),
            step: "login".into(),
            uid: None,
            data: None,
            created_at: 100,
            until: 1000,
        }
    }

    #[test]
    fn a_flow_round_trips_and_outlives_its_deadline_by_the_grace() {
        let f = flow();
        let item = Item::from(&f);
        assert_eq!(item.expires_at, Some(1000 + GRACE_SECS));
        assert_eq!(Flow::try_from(&item).unwrap(), f);
        let mut g = f.clone();
        g.uid = Some(7);
        g.data = Some("+4915112345678".into());
        assert_eq!(Flow::try_from(&Item::from(&g)).unwrap(), g);
    }

    #[test]
    fn a_move_applies_only_from_its_step_of_its_kind_before_the_deadline() {
        let item = Item::from(&flow());
        let proven = Proven {
            uid: Some(7),
            data: None,
        };
        let ok = advance(&flow().id, "signin", "login", "totp", proven, 999);
        assert!(ok.cond.holds(Some(&item)));
        let after = Flow::try_from(&ok.update.apply(&ok.key, Some(&item))).unwrap();
        assert_eq!((after.step.as_str(), after.uid), ("totp", Some(7)));
        for (kind, from, now) in [
            ("signin", "totp", 999),
            ("enrol", "login", 999),
            ("signin", "login", 1000),
        ] {
            let w = advance(&flow().id, kind, from, "x", proven, now);
            assert!(!w.cond.holds(Some(&item)), "{kind} {from} {now}");
        }
        assert!(!ok.cond.holds(None), "no flow, no move");
    }
}
