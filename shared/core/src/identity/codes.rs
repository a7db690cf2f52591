//! One-time codes by email and SMS, written once for every dialect.
//!
//! - **Issue** ([`Codes::send`]): digits from the CSPRNG, stored only as a keyed hash under a
//!   random per-code id, expiring after the purpose's lifetime (never over 30 minutes). One live
//!   code per (subject, purpose, channel): a new one replaces the old, and the slot keeps its
//!   wrong tries (see [`crate::records::code`]). Sending is throttled per account, per
//!   destination, per client address and globally per channel (the SMS-pumping guard) — five
//!   atomic counters and the code, in one transaction, so a refused send counts nothing. A
//!   message that cannot be delivered is withdrawn and its counts given back.
//! - **Check** ([`Codes::verify`]): each try is reserved before it is checked, against the
//!   account's budget for the factor and against the code's own tries, so no number of parallel
//!   guesses gets more checks than the limits allow. A right code is used once
//!   ([`Use::Once`]), or stays valid until it expires ([`Use::UntilExpiry`], a grace period in
//!   which it may be presented again).
//! - **Same answer for unknown accounts** ([`Recipient::Nobody`]): the same counters and a decoy
//!   slot are written, nothing is sent, and the caller gets the same answer.

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::SecretString;
use crate::crypto::aead::Sealer;
use crate::crypto::codes as crypto_codes;
use crate::ports::{Email, LinkQueue, Mailer, Rng, Sms, SmsSender};
use crate::records::code::{self as record, Slot};
use crate::records::login_link::{self as mail, MailKind, MailRequest, MailState, Worded};
use crate::records::{decoy, profile, rate};
use crate::store::{Cond, StoreError, TxOp};

use super::limits::{self, Counter, Reservation, SubjectReservation, Window};
use super::users::{Budget, Factor, UserId, normalize_login};
use super::{Db, Error, Fault, Origin};

/// Longest life of any code (the product's rule).
pub const MAX_TTL_SECS: i64 = 30 * 60;
/// Most tries of any code (the product's rule).
pub const MAX_TRIES: u32 = 5;

/// How a code travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The second factor a code on this channel proves.
    pub fn factor(self) -> Factor {
        match self {
            Channel::Email => Factor::Email,
            Channel::Sms => Factor::Sms,
        }
    }
}

/// How often a right code works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Once: the first right try consumes it.
    Once,
    /// Until it expires: verified by its first right try, then accepted again (a grace period).
    UntilExpiry,
}

/// When a code's message leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Before the answer: a message that cannot be delivered is withdrawn (its counts given
    /// back) and the caller told.
    Now,
    /// After the answer, by the mailer (email; a text has no queue and leaves now): the message
    /// is worded and sealed into a mail request written in the transaction that issues the
    /// code. For a purpose whose recipient the client names (a password reset by email): the
    /// answer then waits for no send, so it takes no longer for an account than for none
    /// ([`Recipient::Nobody`]). A message that cannot be delivered is retried, then given up,
    /// and its code expires unused.
    Queued,
}

/// Limits on sending codes of one purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    pub per_account: Window,
    pub per_destination: Window,
    pub per_ip: Window,
    /// Every send of the channel, deployment-wide.
    pub global: Window,
}

/// The rules of one purpose's codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub digits: u32,
    pub ttl_secs: i64,
    pub max_tries: u32,
    pub use_: Use,
    pub sends: SendLimits,
    /// The account's failure budget for the code's factor (shared by every purpose).
    pub factor_budget: Budget,
    pub delivery: Delivery,
}

impl Policy {
    /// The policy, held to the product's rules (at most 30 minutes, at most 5 tries, 4 to 10
    /// digits).
    pub fn capped(mut self) -> Self {
        self.ttl_secs = self.ttl_secs.clamp(1, MAX_TTL_SECS);
        self.max_tries = self.max_tries.clamp(1, MAX_TRIES);
        self.digits = self.digits.clamp(4, 10);
        self
    }
}

/// Who a code is for.
#[derive(Clone, Copy, Debug)]
pub enum Recipient<'a> {
    User(UserId),
    /// No account has this identifier (an email address or phone number): counted and answered
    /// as for an account, never sent.
    Nobody(&'a str),
}

/// What the code is sent as: the dialect words it, the core delivers it.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    Email {
        subject: String,
        text: String,
        html: Option<String>,
    },
    Sms {
        body: String,
    },
}

/// A code sent (or, for nobody, as good as).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub expires_at: i64,
}

/// A right code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The code was verified by this try (rather than presented again within its grace period).
    pub first_time: bool,
}

/// What codes use: the store and clock, randomness, the pepper their hashes are keyed with, and
/// the two delivery ports.
#[derive(Clone, Copy)]
pub struct Codes<'a> {
    pub db: Db<'a>,
    pub rng: &'a dyn Rng,
    pub pepper: &'a [u8],
    pub mailer: &'a dyn Mailer,
    pub sms: &'a dyn SmsSender,
    /// Seals a queued message ([`Delivery::Queued`]) in its mail request.
    pub sealer: &'a Sealer,
    /// Told of each queued message (the local server's mailer; nothing on AWS, where the
    /// table's stream is the queue).
    pub queue: &'a dyn LinkQueue,
}

impl Recipient<'_> {
    /// The account a code is for; `None` for nobody.
    pub fn user(self) -> Option<UserId> {
        match self {
            Recipient::User(uid) => Some(uid),
            Recipient::Nobody(_) => None,
        }
    }
}

fn subject_of(pepper: &[u8], to: Recipient<'_>) -> String {
    match to {
        Recipient::User(id) => id.to_string(),
        Recipient::Nobody(identifier) => format!(
            "unknown-{}",
            rate::hashed_subject(pepper, &normalize_login(identifier))
        ),
    }
}

fn hash_context(purpose: &str, channel: Channel, subject: &str) -> String {
    format!("otp:{purpose}:{}:{subject}", channel.as_str())
}

/// The four send counters of one send, in transaction order.
fn send_counters(
    pepper: &[u8],
    channel: Channel,
    subject: &str,
    destination: &str,
    origin: Origin,
    limits: &SendLimits,
) -> [Counter; 4] {
    let ch = channel.as_str();
    [
        Counter::new(format!("code-account-{ch}"), subject, limits.per_account),
        Counter::new(
            format!("code-destination-{ch}"),
            rate::hashed_subject(pepper, &normalize_login(destination)),
            limits.per_destination,
        ),
        Counter::new(
            format!("code-ip-{ch}"),
            rate::ip_subject(origin.ip),
            limits.per_ip,
        ),
        Counter::new(format!("code-global-{ch}"), "all", limits.global),
    ]
}

impl Codes<'_> {
    /// Issues a code of `purpose` for `to`, and sends it over `channel` to `destination`, worded
    /// by `render` (given the code and its lifetime in minutes).
    #[allow(clippy::too_many_arguments)] // each names a different thing the send depends on
    pub async fn send(
        &self,
        to: Recipient<'_>,
        purpose: &'static str,
        channel: Channel,
        destination: &str,
        origin: Origin,
        policy: &Policy,
        render: &(dyn Fn(&str, i64) -> Message + Sync),
    ) -> Result<Sent, Error> {
        let policy = policy.capped();
        let now = self.db.now();
        let subject = subject_of(self.pepper, to);
        let code = crypto_codes::numeric_code(self.rng, policy.digits)?;
        let id = crypto_codes::url_token(self.rng, 12)?;
        let hash = crypto_codes::keyed_hash(
            self.pepper,
            &hash_context(purpose, channel, &subject),
            &format!("{}:{}", id.expose(), code.expose()),
        );
        let expires_at = now + policy.ttl_secs;
        let slot = record::key(&subject, purpose, channel.as_str());
        let counters = send_counters(
            self.pepper,
            channel,
            &subject,
            destination,
            origin,
            &policy.sends,
        );
        let mut ops = limits::hit_ops(&counters, now);
        ops.push(
            record::issue(
                slot.clone(),
                id.expose(),
                &hash,
                policy.max_tries,
                now,
                expires_at,
            )
            .into_op(),
        );
        let minutes = (policy.ttl_secs + 59) / 60;
        let message = render(code.expose(), minutes);
        // Worded and sealed for an account and for nobody alike (only an account's is stored;
        // nobody's transaction writes its decoy).
        let queued = match (&message, policy.delivery) {
            (
                Message::Email {
                    subject,
                    text,
                    html,
                },
                Delivery::Queued,
            ) => {
                let worded = Worded {
                    subject: subject.clone(),
                    text: text.clone(),
                    html: html.clone(),
                };
                let request = self.queued_request(&worded, to, destination, expires_at)?;
                let op = mail::request_op(&request);
                match to {
                    Recipient::User(_) => ops.push(op),
                    // As large a write, holding nothing.
                    Recipient::Nobody(_) => ops.extend(decoy::of_puts(&[op], now)),
                }
                Some(mail::mail_key(&request.link_id))
            }
            _ => None,
        };
        let refused = |reason| {
            Audit::new(Event::CodeSent, Outcome::Failure, origin.via)
                .ip(origin.ip)
                .reason(reason)
                .emit()
        };
        match self.db.store.transact(ops, now).await {
            Ok(()) => {}
            Err(StoreError::TxConditionFailed { index }) => {
                if let Some((_, throttled)) = limits::full_counter(&counters, index, now) {
                    refused("throttled");
                    return Err(throttled);
                }
                refused("code_blocked");
                let until = match self.db.get(&slot).await? {
                    Some(item) => item.expires_at.unwrap_or(expires_at),
                    None => now + 1,
                };
                return Err(Error::Locked { until });
            }
            Err(e) => return Err(e.into()),
        }
        let Some(uid) = to.user() else {
            return Ok(Sent { expires_at });
        };
        if let Some(key) = queued {
            self.queue.requested(&key);
            Audit::new(Event::CodeSent, Outcome::Success, origin.via)
                .user(uid)
                .ip(origin.ip)
                .reason("email_queued")
                .emit();
            return Ok(Sent { expires_at });
        }
        let delivered = match message {
            Message::Email {
                subject,
                text,
                html,
            } => {
                let email = Email {
                    to: destination.to_owned(),
                    subject,
                    text,
                    html,
                };
                self.mailer.send_email(&email).await
            }
            Message::Sms { body } => {
                let sms = Sms {
                    to: destination.to_owned(),
                    body,
                };
                self.sms.send_sms(&sms).await
            }
        };
        if let Err(e) = delivered {
            tracing::warn!(error = %e, user_id = uid, "code not delivered; withdrawn");
            self.withdraw(&slot, id.expose(), &counters, now).await;
            refused("not_delivered");
            return Err(e.into());
        }
        Audit::new(Event::CodeSent, Outcome::Success, origin.via)
            .user(uid)
            .ip(origin.ip)
            .reason(channel.as_str())
            .emit();
        Ok(Sent { expires_at })
    }

    /// The mail request of a queued email to `destination`, sealed to its own id.
    fn queued_request(
        &self,
        worded: &Worded,
        to: Recipient<'_>,
        destination: &str,
        expires_at: i64,
    ) -> Result<MailRequest, Error> {
        let json = SecretString::new(serde_json::to_string(worded).map_err(|_| Fault::Task)?);
        let id = crypto_codes::url_token(self.rng, 16)?;
        let sealed = self.sealer.seal(
            json.expose().as_bytes(),
            &mail::message_aad(id.expose()),
            self.rng,
        )?;
        Ok(MailRequest {
            kind: MailKind::Message,
            link_id: id.expose().to_owned(),
            uid: to.user().unwrap_or(0),
            store_id: 0,
            to: destination.to_owned(),
            path: String::new(),
            sealed,
            valid_until: expires_at,
            state: MailState::Pending,
            tries: 0,
        })
    }

    /// Sends a code of `purpose` by SMS to `user`'s verified phone — and to no other number: a
    /// user without one is refused ([`Error::NotConfigured`]) before anything is counted.
    pub async fn send_sms_to(
        &self,
        user: &super::users::User,
        purpose: &'static str,
        origin: Origin,
        policy: &Policy,
        render: &(dyn Fn(&str, i64) -> Message + Sync),
    ) -> Result<Sent, Error> {
        let phone = user.verified_phone().ok_or(Error::NotConfigured)?;
        self.send(
            Recipient::User(user.id),
            purpose,
            Channel::Sms,
            phone,
            origin,
            policy,
            render,
        )
        .await
    }

    /// Takes back a code that was not delivered, and the counts its send made (best effort: a
    /// failure here leaves the send counted, which only errs on the safe side).
    async fn withdraw(&self, slot: &crate::store::Key, id: &str, counters: &[Counter], now: i64) {
        let (key, cond) = record::withdraw(slot.clone(), id);
        let mut ops = vec![TxOp::Delete { key, cond }];
        for c in counters {
            ops.push(rate::refund(&c.scope, &c.subject, c.window.secs, now).into_op());
        }
        if let Err(e) = self.db.store.transact(ops, now).await {
            tracing::warn!(error = %e, "withdrawing an undelivered code failed");
        }
    }

    /// Checks `code` against the live code of `purpose` on `channel` for user `uid`.
    pub async fn verify(
        &self,
        uid: UserId,
        purpose: &'static str,
        channel: Channel,
        code: &str,
        policy: &Policy,
        origin: Origin,
    ) -> Result<Verified, Error> {
        self.verify_for(Recipient::User(uid), purpose, channel, code, policy, origin)
            .await
    }

    /// [`Codes::verify`] for whoever a code was sent to — [`Recipient::Nobody`] included, for a
    /// flow whose answers must not tell whether an account exists (a password reset asked for
    /// an unknown email): nobody's tries count against a failure budget of that identifier's
    /// own and the decoy code's tries, and lock, as an account's do; no code of nobody's is
    /// ever right (none was sent).
    pub async fn verify_for(
        &self,
        to: Recipient<'_>,
        purpose: &'static str,
        channel: Channel,
        code: &str,
        policy: &Policy,
        origin: Origin,
    ) -> Result<Verified, Error> {
        let policy = policy.capped();
        let factor = channel.factor();
        let uid = to.user();
        let fail = |reason| {
            let mut a = Audit::new(Event::SecondFactor, Outcome::Failure, origin.via)
                .ip(origin.ip)
                .reason(reason);
            if let Some(uid) = uid {
                a = a.user(uid);
            }
            a.emit()
        };
        let subject = subject_of(self.pepper, to);
        // The account's budget for the factor first: it bounds guesses across codes and purposes.
        match uid {
            Some(uid) => match limits::reserve(
                self.db,
                &profile::key(uid),
                factor,
                &policy.factor_budget,
                profile::Guard::Exists,
                &[],
            )
            .await?
            {
                Reservation::Granted(user) => {
                    if user.budgets.of(factor).count >= policy.factor_budget.max_failures {
                        Audit::new(Event::Lockout, Outcome::Failure, origin.via)
                            .user(uid)
                            .reason(factor.as_str())
                            .emit();
                    }
                }
                Reservation::Locked { until } => {
                    fail("locked");
                    return Err(Error::Locked { until });
                }
                Reservation::NoUser | Reservation::Refused(_) => return Err(Error::InvalidCode),
            },
            None => {
                let key = rate::budget_key(&format!("unknown-{}", factor.as_str()), &subject);
                if let SubjectReservation::Blocked { until } =
                    limits::reserve_subject(self.db, &key, &policy.factor_budget).await?
                {
                    fail("locked");
                    return Err(Error::Locked { until });
                }
            }
        }
        // Then the code's own tries.
        let key = record::key(&subject, purpose, channel.as_str());
        let slot = match self
            .db
            .apply(record::reserve_try(key.clone(), policy.max_tries))
            .await
        {
            Ok(item) => Slot::try_from(&item)?,
            Err(StoreError::ConditionFailed { .. }) => {
                fail("no_live_code");
                return Err(Error::InvalidCode);
            }
            Err(e) => return Err(e.into()),
        };
        let right = crypto_codes::verify_keyed_hash(
            self.pepper,
            &hash_context(purpose, channel, &subject),
            &format!("{}:{code}", slot.id),
            &slot.hash,
        );
        let Some(uid) = uid.filter(|_| right) else {
            fail("bad_code");
            return Err(Error::InvalidCode);
        };
        let clear_factor = profile::Changes::new()
            .clear_budgets(&[factor])
            .write_quietly(uid)
            .into_op();
        let first_time = !slot.verified;
        let settle = match (policy.use_, slot.verified) {
            (Use::Once, _) => {
                let (key, cond) = record::consume(key, &slot.id);
                TxOp::Delete { key, cond }
            }
            (Use::UntilExpiry, false) => record::confirm(key, &slot.id).into_op(),
            (Use::UntilExpiry, true) => record::refund_try(key, &slot.id).into_op(),
        };
        match self
            .db
            .store
            .transact(vec![settle, clear_factor], self.db.now())
            .await
        {
            Ok(()) => {}
            // Another request used the code first, or a new code replaced it meanwhile.
            Err(StoreError::TxConditionFailed { .. }) => {
                fail("used_code");
                return Err(Error::InvalidCode);
            }
            Err(e) => return Err(e.into()),
        }
        Audit::new(Event::SecondFactor, Outcome::Success, origin.via)
            .user(uid)
            .ip(origin.ip)
            .reason(channel.as_str())
            .emit();
        Ok(Verified { first_time })
    }

    /// When the live code (or [`Codes::mark`]) of each of `slots` (a channel's name, or a name
    /// of the dialect's own) for user `uid` was issued; `None` where there is none. One read.
    pub async fn issued_at(
        &self,
        uid: UserId,
        purpose: &'static str,
        slots: &[&str],
    ) -> Result<Vec<Option<i64>>, Error> {
        let subject = uid.to_string();
        let keys: Vec<_> = slots
            .iter()
            .map(|slot| record::key(&subject, purpose, slot))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let items = self.db.store.get_many(&keys, self.db.now()).await?;
        Ok(items
            .iter()
            .map(|item| item.as_ref().map(record::issued_at))
            .collect())
    }

    /// Records that a code of a kind no message carries (the authenticator app's) was asked for
    /// now, in `slot` (never a channel's), for `ttl_secs` (capped like a code's).
    pub async fn mark(
        &self,
        uid: UserId,
        purpose: &'static str,
        slot: &str,
        ttl_secs: i64,
    ) -> Result<(), Error> {
        if slot == Channel::Email.as_str() || slot == Channel::Sms.as_str() {
            return Err(Error::Fault(super::Fault::Store(StoreError::Invalid(
                "a mark may not take a channel's slot".into(),
            ))));
        }
        let now = self.db.now();
        let key = record::key(&uid.to_string(), purpose, slot);
        self.db
            .apply(record::mark(
                key,
                now,
                now + ttl_secs.clamp(1, MAX_TTL_SECS),
            ))
            .await?;
        Ok(())
    }

    /// Invalidates the live code of `purpose` on `channel` (e.g. once the factor it confirmed is
    /// switched off). No code: nothing to do.
    pub async fn invalidate(
        &self,
        uid: UserId,
        purpose: &'static str,
        channel: Channel,
    ) -> Result<(), Error> {
        let key = record::key(&uid.to_string(), purpose, channel.as_str());
        self.db
            .store
            .delete(&key, Cond::Always, self.db.now())
            .await?;
        Ok(())
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Messages carry codes: show only what kind they are.
        f.write_str(match self {
            Message::Email { .. } => "Message::Email",
            Message::Sms { .. } => "Message::Sms",
        })
    }
}
