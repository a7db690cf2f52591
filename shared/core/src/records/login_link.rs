//! Login links (the magic-link dialect): four item types.
//!
//! - `LINK#<keyed hash of the token>` / `LINK`: one link — its customer, store, the token
//!   generation it was issued under, `next`, creation, validity, and once it happened its use
//!   or revocation. The token itself is never stored. Using a link is one conditional update
//!   (unused, unrevoked, still valid), so of any number of racers exactly one gets the item
//!   back. The item outlives its validity by [`RETENTION_SECS`], so that admin views can show
//!   used and expired links for a day.
//! - `USER#<uid>` / `LINK#<created>#<id>`: the customer's index of links (one `Query` lists
//!   them, oldest first), pointing at the link by its hash.
//! - `LINKMAIL#<id>` / `REQUEST`: "this is to be emailed" — the item the table's stream
//!   hands to the `link-mailer` function (its event filter lets only these through). It holds
//!   a link's token, or a whole message (a one-time code's email: [`MailKind::Message`]),
//!   sealed (AES-GCM, bound to the request id), never in clear, and doubles as the
//!   idempotency record of the send: the mailer claims it with a lease, sends, and marks it
//!   `sent` (dropping the sealed part), so a retried event never sends a second email.
//! - `LINKREQ#<hash of a request id>` / `LINKREQ`: an event's request id, written with the
//!   link it asked for, so a redelivered event asks for nothing more.

use super::{corrupt, id_attr, number};
use crate::identity::users::UserId;
use crate::ports::Email;
use crate::store::{CmpOp, Cond, Item, Key, StoreError, TxOp, Update, Value, Write};

/// How long a link's items stay listed after it stopped being valid.
pub const RETENTION_SECS: i64 = 24 * 60 * 60;
/// How long a request id is remembered.
pub const REQUEST_ID_SECS: i64 = 24 * 60 * 60;

const LINK_SK: &str = "LINK";
const MAIL_SK: &str = "REQUEST";
/// The partition prefix of mail requests: the stream filter of `link-mailer` in
/// `template.yaml` matches it.
pub const MAIL_PK_PREFIX: &str = "LINKMAIL#";

mod attr {
    pub const UID: &str = "uid";
    pub const ID: &str = "link_id";
    pub const STORE: &str = "store_id";
    pub const GEN: &str = "gen";
    pub const NEXT: &str = "next";
    pub const CREATED: &str = "created_at";
    pub const VALID_UNTIL: &str = "valid_until";
    pub const USED: &str = "used_at";
    pub const REVOKED: &str = "revoked_at";
    pub const HASH: &str = "hash";
    pub const TO: &str = "to";
    pub const PATH: &str = "path";
    pub const SEALED: &str = "sealed_token";
    pub const STATE: &str = "state";
    pub const TRIES: &str = "tries";
    pub const LEASE: &str = "lease_until";
    pub const KIND: &str = "kind";
}

/// A link as stored (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRecord {
    pub id: String,
    pub hash: String,
    pub uid: UserId,
    pub store_id: u32,
    pub token_gen: u64,
    pub next: Option<String>,
    pub created_at: i64,
    pub valid_until: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub fn key(hash: &str) -> Key {
    Key::new(format!("LINK#{hash}"), LINK_SK)
}

fn user_pk(uid: UserId) -> String {
    format!("USER#{uid}")
}

/// The sort-key prefix of a customer's index of links.
pub const INDEX_PREFIX: &str = "LINK#";

fn index_key(uid: UserId, created_at: i64, id: &str) -> Key {
    Key::new(user_pk(uid), format!("{INDEX_PREFIX}{created_at:012}#{id}"))
}

/// Partition and sort-key prefix of a customer's index (for `Store::query`).
pub fn index_of(uid: UserId) -> (String, &'static str) {
    (user_pk(uid), INDEX_PREFIX)
}

/// The link an index item points at.
pub fn pointed_at(item: &Item) -> Result<Key, StoreError> {
    item.str(attr::HASH)
        .map(key)
        .ok_or_else(|| corrupt(&item.key, attr::HASH))
}

impl From<&LinkRecord> for Item {
    fn from(l: &LinkRecord) -> Item {
        let mut item = Item::new(key(&l.hash))
            .with(attr::UID, number(l.uid))
            .with(attr::ID, l.id.as_str())
            .with(attr::STORE, i64::from(l.store_id))
            .with(attr::GEN, number(l.token_gen))
            .with(attr::CREATED, l.created_at)
            .with(attr::VALID_UNTIL, l.valid_until)
            .with(attr::HASH, l.hash.as_str())
            .expiring_at(l.valid_until.saturating_add(RETENTION_SECS));
        if let Some(next) = &l.next {
            item = item.with(attr::NEXT, next.as_str());
        }
        item
    }
}

impl TryFrom<&Item> for LinkRecord {
    type Error = StoreError;

    fn try_from(item: &Item) -> Result<Self, StoreError> {
        let text = |name: &str| {
            item.str(name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(&item.key, name))
        };
        let num = |name: &str| item.num(name).ok_or_else(|| corrupt(&item.key, name));
        Ok(LinkRecord {
            id: text(attr::ID)?,
            hash: text(attr::HASH)?,
            uid: id_attr(item, attr::UID)?,
            store_id: u32::try_from(num(attr::STORE)?)
                .map_err(|_| corrupt(&item.key, attr::STORE))?,
            token_gen: id_attr(item, attr::GEN)?,
            next: item.str(attr::NEXT).map(str::to_owned),
            created_at: num(attr::CREATED)?,
            valid_until: num(attr::VALID_UNTIL)?,
            used_at: item.num(attr::USED),
            revoked_at: item.num(attr::REVOKED),
        })
    }
}

/// The writes that create a link: the link and its index entry (each only if new).
pub fn issue_ops(link: &LinkRecord) -> Vec<TxOp> {
    let expires = link.valid_until.saturating_add(RETENTION_SECS);
    vec![
        TxOp::Put {
            item: Item::from(link),
            cond: Cond::NotExists,
        },
        TxOp::Put {
            item: Item::new(index_key(link.uid, link.created_at, &link.id))
                .with(attr::HASH, link.hash.as_str())
                .expiring_at(expires),
            cond: Cond::NotExists,
        },
    ]
}

/// What a link must be to be used (or changed): unused, unrevoked, valid at `now`.
fn usable(now: i64) -> Cond {
    Cond::And(vec![
        Cond::Exists,
        Cond::missing(attr::USED),
        Cond::missing(attr::REVOKED),
        Cond::cmp(attr::VALID_UNTIL, CmpOp::Gt, now),
    ])
}

/// Uses the link: only the first of any number of racers gets the item back.
pub fn use_once(hash: &str, now: i64) -> Write {
    Write::new(key(hash), Update::new().set(attr::USED, now), usable(now))
}

/// Revokes a link not used yet.
pub fn revoke(hash: &str, now: i64) -> Write {
    Write::new(
        key(hash),
        Update::new().set(attr::REVOKED, now),
        Cond::And(vec![
            Cond::Exists,
            Cond::missing(attr::USED),
            Cond::missing(attr::REVOKED),
        ]),
    )
}

/// Sets where a still usable link sends its customer.
pub fn set_next(hash: &str, next: &str, now: i64) -> Write {
    Write::new(key(hash), Update::new().set(attr::NEXT, next), usable(now))
}

// ---------------------------------------------------------------- mail requests

/// Where a mail request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailState {
    /// Waiting for the mailer.
    Pending,
    /// A mailer holds it until its lease ends.
    Sending,
    Sent,
    /// Given up on (after the mailer's last try).
    Failed,
}

impl MailState {
    fn as_str(self) -> &'static str {
        match self {
            MailState::Pending => "pending",
            MailState::Sending => "sending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }

    fn parse(s: Option<&str>) -> MailState {
        match s {
            Some("sending") => MailState::Sending,
            Some("sent") => MailState::Sent,
            Some("failed") => MailState::Failed,
            _ => MailState::Pending,
        }
    }
}

/// What a mail request holds sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// A login link's token: the mailer words the store's link email around it.
    Link,
    /// A whole email, worded when it was asked for (subject, text and HTML, as JSON): a
    /// one-time code's, queued so that the answer to the request that asked for it does not
    /// wait for the send — and so takes no longer for an account than for none.
    Message,
}

impl MailKind {
    fn as_str(self) -> &'static str {
        match self {
            MailKind::Link => "link",
            MailKind::Message => "message",
        }
    }
}

/// A queued message as sealed in its mail request: worded when it was asked for.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Worded {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl Worded {
    pub fn email(self, to: &str) -> Email {
        Email {
            to: to.to_owned(),
            subject: self.subject,
            text: self.text,
            html: self.html,
        }
    }
}

/// A request to email one link (or one message, see [`MailKind`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MailRequest {
    pub kind: MailKind,
    pub link_id: String,
    pub uid: UserId,
    pub store_id: u32,
    pub to: String,
    /// The link's path (`customer/otp/auth`).
    pub path: String,
    /// The token, sealed to the link id.
    pub sealed: Vec<u8>,
    pub valid_until: i64,
    pub state: MailState,
    pub tries: u32,
}

impl std::fmt::Debug for MailRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailRequest")
            .field("link_id", &self.link_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

pub fn mail_key(link_id: &str) -> Key {
    Key::new(format!("{MAIL_PK_PREFIX}{link_id}"), MAIL_SK)
}

/// The mail request of a stream record's keys, if they are one.
pub fn mail_key_of(pk: &str, sk: &str) -> Option<Key> {
    let id = pk.strip_prefix(MAIL_PK_PREFIX)?;
    (sk == MAIL_SK && !id.is_empty() && id.len() <= 64).then(|| mail_key(id))
}

/// What binds a sealed token to its link.
pub fn sealing_aad(link_id: &str) -> Vec<u8> {
    format!("latchkey:login-link:{link_id}").into_bytes()
}

/// What binds a sealed message to its request (another context than a link's token, so
/// neither opens as the other).
pub fn message_aad(id: &str) -> Vec<u8> {
    format!("latchkey:mail-message:{id}").into_bytes()
}

/// Records a mail request, once per link; it expires with the link.
pub fn request_op(r: &MailRequest) -> TxOp {
    TxOp::Put {
        item: Item::new(mail_key(&r.link_id))
            .with(attr::KIND, r.kind.as_str())
            .with(attr::ID, r.link_id.as_str())
            .with(attr::UID, number(r.uid))
            .with(attr::STORE, i64::from(r.store_id))
            .with(attr::TO, r.to.as_str())
            .with(attr::PATH, r.path.as_str())
            .with(attr::SEALED, Value::B(r.sealed.clone()))
            .with(attr::VALID_UNTIL, r.valid_until)
            .with(attr::STATE, MailState::Pending.as_str())
            .expiring_at(r.valid_until),
        cond: Cond::NotExists,
    }
}

impl TryFrom<&Item> for MailRequest {
    type Error = StoreError;

    fn try_from(item: &Item) -> Result<Self, StoreError> {
        let text = |name: &str| {
            item.str(name)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(&item.key, name))
        };
        Ok(MailRequest {
            kind: match item.str(attr::KIND) {
                None | Some("link") => MailKind::Link,
                Some("message") => MailKind::Message,
                Some(_) => return Err(corrupt(&item.key, attr::KIND)),
            },
            link_id: text(attr::ID)?,
            uid: id_attr(item, attr::UID)?,
            store_id: item
                .num(attr::STORE)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| corrupt(&item.key, attr::STORE))?,
            to: text(attr::TO)?,
            path: text(attr::PATH)?,
            sealed: item
                .bytes(attr::SEALED)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            valid_until: item.num(attr::VALID_UNTIL).unwrap_or(0),
            state: MailState::parse(item.str(attr::STATE)),
            tries: item
                .num(attr::TRIES)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        })
    }
}

/// Claims a request for one send: pending, or sending under a lease that ran out (its mailer
/// died). The item as written says what to send.
pub fn claim(key: Key, now: i64, lease_secs: i64) -> Write {
    Write::new(
        key,
        Update::new()
            .set(attr::STATE, MailState::Sending.as_str())
            .set(attr::LEASE, now.saturating_add(lease_secs))
            .add(attr::TRIES, 1),
        Cond::Or(vec![
            Cond::eq(attr::STATE, MailState::Pending.as_str()),
            Cond::And(vec![
                Cond::eq(attr::STATE, MailState::Sending.as_str()),
                Cond::cmp(attr::LEASE, CmpOp::Le, now),
            ]),
        ]),
    )
}

/// The send went out: never again, and the sealed token goes.
pub fn sent(key: Key) -> Write {
    Write::new(
        key,
        Update::new()
            .set(attr::STATE, MailState::Sent.as_str())
            .remove(attr::SEALED)
            .remove(attr::LEASE),
        Cond::eq(attr::STATE, MailState::Sending.as_str()),
    )
}

/// The send failed: back to pending for a retry, or `failed` for good.
pub fn release(key: Key, give_up: bool) -> Write {
    let state = if give_up {
        MailState::Failed
    } else {
        MailState::Pending
    };
    let mut update = Update::new()
        .set(attr::STATE, state.as_str())
        .remove(attr::LEASE);
    if give_up {
        update = update.remove(attr::SEALED);
    }
    Write::new(
        key,
        update,
        Cond::eq(attr::STATE, MailState::Sending.as_str()),
    )
}

/// The sort key every mail request has (`scan_sk` finds the pending ones locally).
pub const MAIL_SORT_KEY: &str = MAIL_SK;

// ---------------------------------------------------------------- request ids

/// Remembers an event's request id (op fails when it was seen).
pub fn request_id_op(hashed_id: &str, now: i64) -> TxOp {
    TxOp::Put {
        item: Item::new(Key::new(format!("LINKREQ#{hashed_id}"), "LINKREQ"))
            .expiring_at(now.saturating_add(REQUEST_ID_SECS)),
        cond: Cond::NotExists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkRecord {
        LinkRecord {
            id: "abc".into(),
            hash: "h".into(),
            uid: 7,
            store_id: 1,
            token_gen: 2,
            next: Some("https://shop.example/".into()),
            created_at: 1000,
            valid_until: 1300,
            used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_link_round_trips_and_outlives_its_validity_for_the_views() {
        let item = Item::from(&link());
        assert_eq!(LinkRecord::try_from(&item).unwrap(), link());
        assert_eq!(item.expires_at, Some(1300 + RETENTION_SECS));
    }

    #[test]
    fn a_link_is_usable_once_and_only_while_valid() {
        let item = Item::from(&link());
        let w = use_once("h", 1200);
        assert!(w.cond.holds(Some(&item)));
        let used = w.update.apply(&w.key, Some(&item));
        assert!(!use_once("h", 1200).cond.holds(Some(&used)), "used");
        assert!(!use_once("h", 1300).cond.holds(Some(&item)), "expired");
        assert!(!use_once("h", 1200).cond.holds(None), "unknown");
        let r = revoke("h", 1200);
        let revoked = r.update.apply(&r.key, Some(&item));
        assert!(!use_once("h", 1200).cond.holds(Some(&revoked)), "revoked");
        assert!(
            !revoke("h", 1200).cond.holds(Some(&used)),
            "used stays used"
        );
    }

    #[test]
    fn a_mail_request_is_claimed_once_until_its_lease_runs_out() {
        let req = MailRequest {
            kind: MailKind::Link,
            link_id: "abc".into(),
            uid: 7,
            store_id: 1,
            to: "a@example.com".into(),
            path: "customer/otp/auth".into(),
            sealed: vec![1, 2, 3],
            valid_until: 1300,
            state: MailState::Pending,
            tries: 0,
        };
        let TxOp::Put { item, .. } = request_op(&req) else {
            panic!("a put")
        };
        assert_eq!(MailRequest::try_from(&item).unwrap(), req);
        let c = claim(mail_key("abc"), 1000, 60);
        assert!(c.cond.holds(Some(&item)));
        let held = c.update.apply(&c.key, Some(&item));
        assert!(!claim(mail_key("abc"), 1059, 60).cond.holds(Some(&held)));
        assert!(claim(mail_key("abc"), 1060, 60).cond.holds(Some(&held)));
        let s = sent(mail_key("abc"));
        let done = s.update.apply(&s.key, Some(&held));
        assert!(done.bytes(attr::SEALED).is_none(), "the sealed token goes");
        assert!(!claim(mail_key("abc"), 9999, 60).cond.holds(Some(&done)));
        assert_eq!(
            mail_key_of("LINKMAIL#abc", "REQUEST"),
            Some(mail_key("abc"))
        );
        assert_eq!(mail_key_of("USER#1", "PROFILE"), None);
    }
}
