//! Login links: a token that signs one customer in, once.
//!
//! - **Issue** ([`Links::issue`]): 32 characters of `[A-Za-z0-9]` from the CSPRNG (190 bits),
//!   stored only as a keyed hash, valid for the lifetime asked (the caller caps it), bound to
//!   the customer's token generation — so revoking the customer's tokens, or any credential
//!   change, kills every link issued before it.
//! - **Use** ([`Links::confirm`]): one conditional update (unused, unrevoked, still valid) —
//!   of any number of simultaneous confirmations exactly one gets the link. Looking at a link
//!   ([`Links::find`]) writes nothing, so a mail scanner that fetches it burns nothing.
//! - **Send** ([`Links::send`]): the customer is looked up by email; the three send counters
//!   (per email, per client address, per store), the link and its mail request are one
//!   transaction, so a refused send counts nothing and creates nothing. An unknown email costs
//!   the same reads and counts the same counters, creates nothing, and gets the same answer.
//! - **Mail** ([`Links::request_mail`], [`Links::deliver`]): the API never waits on the mail
//!   service. It stores a mail request holding the token sealed; the mailer (the table's stream
//!   on AWS, a task of the local server) claims it, sends it and marks it sent, so a retried
//!   event never sends a second email.

use std::net::IpAddr;

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::aead::Sealer;
use crate::crypto::{SecretString, codes};
use crate::ports::{Email, LinkQueue, Mailer, Rng};
use crate::records::login_link::{self as record, MailKind, MailRequest, MailState, Worded};
use crate::records::{decoy, rate};
use crate::store::{Key, StoreError};

use super::limits::{self, Counter, Window};
use super::users::{Role, User, UserId, normalize_login};
use super::{Db, Error, Fault, accounts};

pub use record::LinkRecord as Link;

/// Characters of a token.
pub const TOKEN_LEN: usize = 32;
const LINK_ID_LEN: usize = 12;
const HASH_PURPOSE: &str = "login-link";
/// How long a mailer holds a request it claimed before another may take it over.
pub const MAILER_LEASE_SECS: i64 = 60;
/// Sends a mail request gets before it is given up on.
pub const MAILER_MAX_TRIES: u32 = 5;
/// Most links one customer's views list.
const MAX_LISTED: usize = 100;

/// What a link is, at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Active,
    Used,
    Expired,
    Revoked,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Used => "used",
            LinkState::Expired => "expired",
            LinkState::Revoked => "revoked",
        }
    }
}

impl Link {
    /// The link's state at `now`, for a customer now at token generation `gen`.
    pub fn state(&self, now: i64, current_gen: u64) -> LinkState {
        if self.used_at.is_some() {
            LinkState::Used
        } else if self.revoked_at.is_some() || self.token_gen != current_gen {
            LinkState::Revoked
        } else if self.valid_until <= now {
            LinkState::Expired
        } else {
            LinkState::Active
        }
    }
}

/// Why a token signs nobody in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dead {
    /// No link has this token (or it left the table).
    Unknown,
    Used,
    Expired,
    /// Revoked, or issued before the customer's tokens were revoked.
    Revoked,
}

/// A link just issued: its token, shown once.
#[derive(Debug)]
pub struct Issued {
    pub token: SecretString,
    pub link: Link,
}

/// A link used: whom it signs in.
#[derive(Debug)]
pub struct Confirmed {
    pub user: User,
    pub link: Link,
}

/// The send limits of [`Links::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    pub per_email: Window,
    pub per_ip: Window,
    pub per_store: Window,
}

/// A customer's request for a link by email.
#[derive(Clone, Copy, Debug)]
pub struct SendRequest<'r> {
    pub email: &'r str,
    pub store_id: u32,
    pub ttl_secs: i64,
    /// Already checked against the store's allow-list.
    pub next: Option<&'r str>,
    /// The link's path (`customer/otp/auth`).
    pub path: &'r str,
    /// The client's address; `None` for a request from an event (no address to count).
    pub ip: Option<IpAddr>,
    /// An event's own id: a redelivered event asks for nothing more.
    pub request_id: Option<&'r str>,
    pub limits: SendLimits,
    pub via: &'static str,
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A link was made and its email requested (or, for an unknown email, as good as).
    Requested,
    /// The request id was seen before: nothing more was done.
    Duplicate,
}

/// What a mailer did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    /// Sent before, given up on, or gone (expired with its link): nothing to do.
    Done,
}

/// What login links use: the store and clock, randomness, the pepper their tokens are hashed
/// with, the sealer mail requests carry them under, and the queue told of mail requests.
#[derive(Clone, Copy)]
pub struct Links<'a> {
    pub db: Db<'a>,
    pub rng: &'a dyn Rng,
    pub pepper: &'a [u8],
    pub sealer: &'a Sealer,
    pub queue: &'a dyn LinkQueue,
}

/// Whether `token` could be one of ours (anything else is unknown without a read).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Links<'_> {
    fn hash(&self, token: &str) -> String {
        codes::keyed_hash(self.pepper, HASH_PURPOSE, token)
    }

    fn new_link(
        &self,
        (uid, token_gen): (UserId, u64),
        store_id: u32,
        ttl_secs: i64,
        next: Option<&str>,
    ) -> Result<(SecretString, Link), Error> {
        let now = self.db.now();
        let token = codes::mixed_alnum_token(self.rng, TOKEN_LEN)?;
        let id = codes::alnum_token(self.rng, LINK_ID_LEN)?;
        let link = Link {
            id: id.expose().to_owned(),
            hash: self.hash(token.expose()),
            uid,
            store_id,
            token_gen,
            next: next.map(str::to_owned),
            created_at: now,
            valid_until: now.saturating_add(ttl_secs.max(1)),
            used_at: None,
            revoked_at: None,
        };
        Ok((token, link))
    }

    fn mail_request(
        &self,
        link: &Link,
        token: &str,
        to: &str,
        path: &str,
    ) -> Result<MailRequest, Error> {
        let sealed =
            self.sealer
                .seal(token.as_bytes(), &record::sealing_aad(&link.id), self.rng)?;
        Ok(MailRequest {
            kind: record::MailKind::Link,
            link_id: link.id.clone(),
            uid: link.uid,
            store_id: link.store_id,
            to: to.to_owned(),
            path: path.to_owned(),
            sealed,
            valid_until: link.valid_until,
            state: MailState::Pending,
            tries: 0,
        })
    }

    /// Issues a link for `user` in `store_id`, valid for `ttl_secs`, sending its customer on to
    /// `next` (already checked against the store's allow-list).
    pub async fn issue(
        &self,
        user: &User,
        store_id: u32,
        ttl_secs: i64,
        next: Option<&str>,
        via: &'static str,
    ) -> Result<Issued, Error> {
        let (token, link) = self.new_link((user.id, user.token_gen), store_id, ttl_secs, next)?;
        self.db
            .store
            .transact(record::issue_ops(&link), self.db.now())
            .await
            .map_err(collision)?;
        Audit::new(Event::LinkIssued, Outcome::Success, via)
            .user(user.id)
            .emit();
        Ok(Issued { token, link })
    }

    /// The link a token stands for, whatever its state; `None` when no link has it. Writes
    /// nothing.
    pub async fn find(&self, token: &str) -> Result<Option<Link>, Error> {
        if !well_formed(token) {
            return Ok(None);
        }
        match self.db.get(&record::key(&self.hash(token))).await? {
            Some(item) => Ok(Some(Link::try_from(&item)?)),
            None => Ok(None),
        }
    }

    /// Whether a link still signs its customer in: the customer, if so.
    pub async fn check(&self, link: &Link) -> Result<Result<User, Dead>, Error> {
        let user = match accounts::get(self.db, link.uid).await? {
            Some(user) if user.active && user.role == Role::Customer => user,
            _ => return Ok(Err(Dead::Revoked)),
        };
        Ok(match link.state(self.db.now(), user.token_gen) {
            LinkState::Active => Ok(user),
            LinkState::Used => Err(Dead::Used),
            LinkState::Expired => Err(Dead::Expired),
            LinkState::Revoked => Err(Dead::Revoked),
        })
    }

    /// Uses the link of `token`: the first caller gets its customer, every other one a reason.
    pub async fn confirm(
        &self,
        token: &str,
        ip: IpAddr,
        via: &'static str,
    ) -> Result<Result<Confirmed, Dead>, Error> {
        let fail = |reason| {
            Audit::new(Event::SignIn, Outcome::Failure, via)
                .ip(ip)
                .reason(reason)
        };
        if !well_formed(token) {
            fail("unknown_link").emit();
            return Ok(Err(Dead::Unknown));
        }
        let now = self.db.now();
        let link = match self
            .db
            .apply(record::use_once(&self.hash(token), now))
            .await
        {
            Ok(item) => Link::try_from(&item)?,
            Err(StoreError::ConditionFailed { current: None }) => {
                fail("unknown_link").emit();
                return Ok(Err(Dead::Unknown));
            }
            Err(StoreError::ConditionFailed {
                current: Some(item),
            }) => {
                let link = Link::try_from(&*item)?;
                let dead = match link.state(now, link.token_gen) {
                    LinkState::Used => Dead::Used,
                    LinkState::Revoked => Dead::Revoked,
                    _ => Dead::Expired,
                };
                let reason = match dead {
                    Dead::Used => "used_link",
                    Dead::Revoked => "revoked_link",
                    _ => "expired_link",
                };
                fail(reason).user(link.uid).emit();
                return Ok(Err(dead));
            }
            Err(e) => return Err(e.into()),
        };
        let user = match accounts::get(self.db, link.uid).await? {
            Some(user) if user.role == Role::Customer && user.honours(link.token_gen) => user,
            _ => {
                fail("revoked_link").user(link.uid).emit();
                return Ok(Err(Dead::Revoked));
            }
        };
        Audit::new(Event::SignIn, Outcome::Success, via)
            .user(user.id)
            .ip(ip)
            .reason("login_link")
            .emit();
        Ok(Ok(Confirmed { user, link }))
    }

    /// Asks for the link of `token` to be emailed to `to` (once per link: `false` when it was
    /// asked before).
    pub async fn request_mail(
        &self,
        link: &Link,
        token: &str,
        to: &str,
        path: &str,
    ) -> Result<bool, Error> {
        let request = self.mail_request(link, token, to, path)?;
        match self
            .db
            .store
            .transact(vec![record::request_op(&request)], self.db.now())
            .await
        {
            Ok(()) => {}
            Err(StoreError::TxConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.queue.requested(&record::mail_key(&link.id));
        Ok(true)
    }

    /// A customer asks for a link by email: the same answer whether or not the email is a
    /// customer's (`eligible` says whether a user may sign in to the store asked for).
    pub async fn send(
        &self,
        req: SendRequest<'_>,
        eligible: &(dyn Fn(&User) -> bool + Sync),
    ) -> Result<Sent, Error> {
        let now = self.db.now();
        let user = accounts::self_service_customer(self.db, req.email, eligible).await?;
        let counters: Vec<Counter> = [
            Some(Counter::new(
                "link-email",
                rate::hashed_subject(self.pepper, &normalize_login(req.email)),
                req.limits.per_email,
            )),
            req.ip
                .map(|ip| Counter::new("link-ip", rate::ip_subject(ip), req.limits.per_ip)),
            Some(Counter::new(
                "link-store",
                req.store_id.to_string(),
                req.limits.per_store,
            )),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut ops = limits::hit_ops(&counters, now);
        let request_id_at = req.request_id.map(|id| {
            ops.push(record::request_id_op(
                &rate::hashed_subject(self.pepper, id),
                now,
            ));
            ops.len() - 1
        });
        // A link and its mail request, made for an unknown email too — whose transaction
        // writes their decoys instead (as many items, as large, holding nothing).
        let owner = user.as_ref().map_or((0, 0), |u| (u.id, u.token_gen));
        let to = user.as_ref().map_or(req.email, |u| u.email.as_str());
        let (token, link) = self.new_link(owner, req.store_id, req.ttl_secs, req.next)?;
        let request = self.mail_request(&link, token.expose(), to, req.path)?;
        let mut made = record::issue_ops(&link);
        made.push(record::request_op(&request));
        let mut mail_key = None;
        if user.is_some() {
            ops.extend(made);
            mail_key = Some(record::mail_key(&link.id));
        } else {
            ops.extend(decoy::of_puts(&made, now));
        }
        let audit = |outcome, reason| {
            let mut a = Audit::new(Event::LinkRequested, outcome, req.via).reason(reason);
            if let Some(ip) = req.ip {
                a = a.ip(ip);
            }
            if let Some(u) = &user {
                a = a.user(u.id);
            }
            a.emit();
        };
        match self.db.store.transact(ops, now).await {
            Ok(()) => {}
            Err(StoreError::TxConditionFailed { index }) if Some(index) == request_id_at => {
                audit(Outcome::Success, "duplicate_request");
                return Ok(Sent::Duplicate);
            }
            Err(StoreError::TxConditionFailed { index }) => {
                return match limits::full_counter(&counters, index, now) {
                    Some((counter, throttled)) => {
                        tracing::debug!(scope = %counter.scope, "link sends throttled");
                        audit(Outcome::Failure, "throttled");
                        Err(throttled)
                    }
                    None => Err(collision(StoreError::TxConditionFailed { index })),
                };
            }
            Err(e) => return Err(e.into()),
        }
        match &mail_key {
            Some(key) => {
                self.queue.requested(key);
                audit(Outcome::Success, "sent");
            }
            None => audit(Outcome::Success, "no_customer"),
        }
        Ok(Sent::Requested)
    }

    /// Every link of a customer still listed (newest last), at most 100.
    pub async fn list(&self, uid: UserId) -> Result<Vec<Link>, Error> {
        let (pk, prefix) = record::index_of(uid);
        let index = self
            .db
            .store
            .query(&pk, prefix, MAX_LISTED, self.db.now())
            .await?;
        if index.is_empty() {
            return Ok(Vec::new());
        }
        let keys = index
            .iter()
            .map(record::pointed_at)
            .collect::<Result<Vec<_>, _>>()?;
        let items = self.db.store.get_many(&keys, self.db.now()).await?;
        Ok(items
            .iter()
            .flatten()
            .map(Link::try_from)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Revokes the customer's link `id`, or (`None`) every one still usable; how many it
    /// revoked. `Error::NotFound` when `id` names no link of theirs.
    pub async fn revoke(
        &self,
        user: &User,
        id: Option<&str>,
        via: &'static str,
    ) -> Result<usize, Error> {
        let now = self.db.now();
        let links = self.list(user.id).await?;
        if let Some(id) = id
            && !links.iter().any(|l| l.id == id)
        {
            return Err(Error::NotFound);
        }
        let mut revoked = 0;
        for link in links
            .iter()
            .filter(|l| id.is_none_or(|id| l.id == id))
            .filter(|l| l.state(now, user.token_gen) == LinkState::Active)
        {
            match self.db.apply(record::revoke(&link.hash, now)).await {
                Ok(_) => revoked += 1,
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Audit::new(Event::TokensRevoked, Outcome::Success, via)
            .user(user.id)
            .reason("login_links")
            .emit();
        Ok(revoked)
    }

    /// Sends the mail request at `key` once: claims it, opens its token, has `compose` word
    /// the email (given the request and the token; `None`: it cannot be sent, e.g. its store
    /// is gone), sends it and marks it sent. A failed send releases the claim for a retry
    /// (until the last try) and is the error.
    pub async fn deliver(
        &self,
        key: &Key,
        mailer: &dyn Mailer,
        compose: &(dyn Fn(&MailRequest, &str) -> Option<Email> + Sync),
    ) -> Result<Delivered, Error> {
        let now = self.db.now();
        let request = match self
            .db
            .apply(record::claim(key.clone(), now, MAILER_LEASE_SECS))
            .await
        {
            Ok(item) => MailRequest::try_from(&item)?,
            Err(StoreError::ConditionFailed { current: None }) => return Ok(Delivered::Done),
            Err(StoreError::ConditionFailed {
                current: Some(item),
            }) => {
                return match MailRequest::try_from(&*item)?.state {
                    // Another mailer holds it: try again once its lease may have run out.
                    MailState::Sending | MailState::Pending => {
                        Err(Error::SendFailed { retryable: true })
                    }
                    MailState::Sent | MailState::Failed => Ok(Delivered::Done),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let give_up = async |why: &'static str| {
            tracing::warn!(link_id = %request.link_id, why, "queued email given up");
            match self.db.apply(record::release(key.clone(), true)).await {
                Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(Delivered::Done),
                Err(e) => Err(Error::from(e)),
            }
        };
        let aad = match request.kind {
            MailKind::Link => record::sealing_aad(&request.link_id),
            MailKind::Message => record::message_aad(&request.link_id),
        };
        let opened = match self.sealer.open(&request.sealed, &aad) {
            Ok(bytes) => match String::from_utf8(bytes.expose().to_vec()) {
                Ok(t) => SecretString::new(t),
                Err(_) => return give_up("does not open").await,
            },
            Err(_) => return give_up("does not open").await,
        };
        let email = match request.kind {
            MailKind::Link => compose(&request, opened.expose()),
            MailKind::Message => serde_json::from_str::<Worded>(opened.expose())
                .ok()
                .map(|w| w.email(&request.to)),
        };
        let Some(email) = email else {
            return give_up("cannot be worded").await;
        };
        match mailer.send_email(&email).await {
            Ok(()) => {
                if let Err(e) = self.db.apply(record::sent(key.clone())).await {
                    tracing::warn!(error = %e, link_id = %request.link_id, "sent, but not marked sent");
                }
                let reason = match request.kind {
                    MailKind::Link => "login_link",
                    MailKind::Message => "email",
                };
                Audit::new(Event::CodeSent, Outcome::Success, "link-mailer")
                    .user(request.uid)
                    .reason(reason)
                    .emit();
                Ok(Delivered::Sent)
            }
            Err(e) => {
                let last = request.tries >= MAILER_MAX_TRIES;
                tracing::warn!(error = %e, link_id = %request.link_id, tries = request.tries, last, "queued email not sent");
                match self.db.apply(record::release(key.clone(), last)).await {
                    Ok(_) | Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                if last {
                    Ok(Delivered::Done)
                } else {
                    Err(Error::from(e))
                }
            }
        }
    }

    /// Mail requests still waiting (the local server's sweep; never on a request path).
    pub async fn pending(&self, limit: usize) -> Result<Vec<Key>, Error> {
        let items = self
            .db
            .store
            .scan_sk(record::MAIL_SORT_KEY, limit, self.db.now())
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| MailRequest::try_from(i).ok().map(|r| (i.key.clone(), r)))
            .filter(|(_, r)| matches!(r.state, MailState::Pending | MailState::Sending))
            .map(|(k, _)| k)
            .collect())
    }
}

/// A transaction that creates items with fresh random keys failed its condition: a collision
/// of 60+ random bits, or a bug — never the caller's doing.
fn collision(e: StoreError) -> Error {
    match e {
        StoreError::TxConditionFailed { index } => Error::Fault(Fault::Store(StoreError::Failure(
            format!("new link items already existed (op {index})"),
        ))),
        other => other.into(),
    }
}
