//! Flows that span requests: a sign-in whose password and second factor come in separate
//! requests, an enrolment confirmed by a code, a QR sign-in approved from another device.
//!
//! A flow is a small state machine stored under an unguessable id (a random UUID: 122 random
//! bits from the CSPRNG) with a deadline. [`Flows::open`] refuses an unknown, expired or finished
//! flow, and a route refuses a flow that is not at the step it serves ([`Flow::expect`]);
//! [`Flows::advance`] moves it in one conditional write on the step it leaves, so a step out of
//! order, a finished, expired or unknown flow is refused and changes nothing, and of two racing
//! requests only one moves the flow. Which steps a flow has is its caller's business; a sign-in
//! flow's are [`SignInStep`], and only [`crate::identity::signin`] moves it past the password.

use crate::ports::Rng;
use crate::records::flow::{self as record, DONE, Proven};
use crate::store::{Cond, Item, StoreError};

use super::users::UserId;
use super::{Db, Error};

pub use record::Flow;

/// Why a flow was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// No flow has this id (or it is not a flow id at all, or of another kind).
    #[error("unknown flow")]
    Unknown,
    /// The flow ran past its deadline.
    #[error("flow expired")]
    Expired,
    /// The flow already finished.
    #[error("flow finished")]
    Finished,
    /// The flow is not at the step this request serves.
    #[error("step out of order")]
    OutOfOrder,
}

/// The kind of a sign-in flow.
pub const SIGN_IN: &str = "signin";

/// Where a sign-in flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInStep {
    /// Waiting for the login and password.
    Credentials,
    /// The password was right; the user has several second factors and picks one.
    Choose,
    /// The password was right; a code from the authenticator app is next.
    Totp,
    /// The password was right; the code sent by SMS is next.
    Sms,
}

impl SignInStep {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInStep::Credentials => "login",
            SignInStep::Choose => "choose",
            SignInStep::Totp => "totp",
            SignInStep::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SignInStep::Credentials,
            SignInStep::Choose,
            SignInStep::Totp,
            SignInStep::Sms,
        ]
        .into_iter()
        .find(|step| step.as_str() == s)
    }
}

/// What flows use: the store and clock, and randomness for their ids.
#[derive(Clone, Copy)]
pub struct Flows<'a> {
    pub db: Db<'a>,
    pub rng: &'a dyn Rng,
}

/// A flow id as the client sends it: a UUID in its canonical lowercase form (anything else is
/// no flow of ours, and never becomes part of a key).
fn well_formed(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// A random (version 4) UUID: 122 random bits.
fn new_id(rng: &dyn Rng) -> Result<String, Error> {
    let mut b = [0u8; 16];
    rng.fill(&mut b)
        .map_err(|_| Error::from(crate::crypto::CryptoError::Rng))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    ))
}

impl Flow {
    /// The flow, if it stands at `step`; a step out of order otherwise.
    pub fn expect(&self, step: &str) -> Result<&Self, Error> {
        if self.step == step {
            Ok(self)
        } else {
            Err(FlowError::OutOfOrder.into())
        }
    }

    /// The step of a sign-in flow.
    pub fn sign_in_step(&self) -> Option<SignInStep> {
        (self.kind == SIGN_IN)
            .then(|| SignInStep::parse(&self.step))
            .flatten()
    }
}

impl Flows<'_> {
    /// Starts a flow of `kind` at `step`, living `ttl_secs`.
    pub async fn start(
        &self,
        kind: &str,
        step: &str,
        proven: Proven<'_>,
        ttl_secs: i64,
    ) -> Result<Flow, Error> {
        let now = self.db.now();
        let flow = Flow {
            id: new_id(self.rng)?,
            kind: kind.to_owned(),
            step: step.to_owned(),
            uid: proven.uid,
            data: proven.data.map(str::to_owned),
            created_at: now,
            until: now.saturating_add(ttl_secs.max(1)),
        };
        self.db
            .store
            .put(Item::from(&flow), Cond::NotExists, now)
            .await?;
        Ok(flow)
    }

    /// The live flow `id` of `kind`: unknown, expired and finished flows are refused.
    pub async fn open(&self, id: &str, kind: &str) -> Result<Flow, Error> {
        self.open_of(id, &[kind]).await
    }

    /// The live flow `id`, of one of `kinds` (one read whichever it is).
    pub async fn open_of(&self, id: &str, kinds: &[&str]) -> Result<Flow, Error> {
        if !well_formed(id) {
            return Err(FlowError::Unknown.into());
        }
        let Some(item) = self.db.get(&record::key(id)).await? else {
            return Err(FlowError::Unknown.into());
        };
        let flow = Flow::try_from(&item)?;
        if !kinds.contains(&flow.kind.as_str()) {
            return Err(FlowError::Unknown.into());
        }
        if flow.step == DONE {
            return Err(FlowError::Finished.into());
        }
        if flow.until <= self.db.now() {
            return Err(FlowError::Expired.into());
        }
        Ok(flow)
    }

    /// Moves `flow` from the step it was read at to `to`, recording `proven`; refused (and
    /// nothing changed) if another request moved it first or its deadline passed.
    pub async fn advance(&self, flow: &Flow, to: &str, proven: Proven<'_>) -> Result<Flow, Error> {
        let now = self.db.now();
        let write = record::advance(&flow.id, &flow.kind, &flow.step, to, proven, now);
        match self.db.apply(write).await {
            Ok(item) => Ok(Flow::try_from(&item)?),
            Err(StoreError::ConditionFailed { current }) => Err(match current {
                None => FlowError::Unknown,
                Some(item) => match Flow::try_from(&*item) {
                    Ok(seen) if seen.step == DONE => FlowError::Finished,
                    Ok(seen) if seen.until <= now => FlowError::Expired,
                    _ => FlowError::OutOfOrder,
                },
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Finishes `flow` (from the step it was read at): it is used once, whatever races it.
    pub async fn finish(&self, flow: &Flow) -> Result<(), Error> {
        self.advance(flow, DONE, Proven::default())
            .await
            .map(|_| ())
    }
}

/// Whose flow it is, once a step proved it.
pub fn owner(flow: &Flow) -> Result<UserId, Error> {
    flow.uid.ok_or_else(|| FlowError::OutOfOrder.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    #[test]
    fn ids_are_random_v4_uuids_and_only_those_are_looked_up() {
        let rng = SeededRng::new(1);
        let a = new_id(&rng).unwrap();
        let b = new_id(&rng).unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert_eq!(a.as_bytes()[14], b'4', "version 4");
        assert!(
            matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "RFC 4122 variant"
        );
        for bad in [
            "",
            "36F59381-5B54-48BD-A0C7-3B908C476732",
            "36f59381-5b54-48bd-a0c7-3b908c47673",
            "36f59381_5b54_48bd_a0c7_3b908c476732",
            "../../../../../../../../../../../../..",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn sign_in_steps_round_trip() {
        for step in [
            SignInStep::Credentials,
            SignInStep::Choose,
            SignInStep::Totp,
            SignInStep::Sms,
        ] {
            assert_eq!(SignInStep::parse(step.as_str()), Some(step));
        }
        assert_eq!(SignInStep::parse(DONE), None);
    }
}
