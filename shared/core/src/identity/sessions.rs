//! Sessions: signed access tokens and rotating refresh-token families, for the dialects that hand
//! out a token pair (Glue, the sign-in wizard).
//!
//! - **Access tokens** are JWTs signed with the dialect's pinned algorithm (RS256, ES256 or EdDSA;
//!   the public keys are in the JWKS), with `iss`, `sub`, `aud` (where the dialect has one),
//!   `jti`, `iat`, `nbf`, `exp` and `sid`, the family they belong to. Checking one reads the user
//!   and the family in one call, so a revoked family, a revoked user (a newer token generation)
//!   or a disabled account refuses it at once.
//! - **Refresh tokens** are opaque: `<sid>.<seq>.<nonce>.<mac>`, MAC'd with the pepper (a forged
//!   one is refused before any read) and stored only as a keyed hash of the current one. Using
//!   one rotates the family in one conditional write: of any number of parallel uses exactly one
//!   gets the next pair. Presenting a token the family has already rotated past — a replay, the
//!   sign of a stolen token — revokes the whole family; so do the losers of such a race, since
//!   the server cannot tell which party is the thief (OAuth 2.0 Security BCP, 4.14.2). A family
//!   ends at its absolute lifetime whatever its use.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::SecretString;
use crate::crypto::codes as crypto_codes;
use crate::crypto::jwt::{Expect, JwtError};
use crate::crypto::keys::{KeySet, SigningAlg};
use crate::ports::Rng;
use crate::records::family::{self, Family};
use crate::records::profile;
use crate::store::StoreError;

use super::users::{User, UserId};
use super::{Db, Error, Origin};

/// How a dialect's sessions work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The dialect the sessions belong to: a family started by one dialect is refused by
    /// another's refresh route.
    pub client: &'static str,
    pub issuer: String,
    /// The `aud` claim, where the dialect has one.
    pub audience: Option<String>,
    pub alg: SigningAlg,
    pub access_secs: i64,
    /// How long one refresh token may wait to be used.
    pub refresh_secs: i64,
    /// The absolute lifetime of a family.
    pub family_secs: i64,
}

/// Clock skew tolerated on `iat`/`nbf` between the host that issued a token and the one checking
/// it (Lambda sandboxes run on many hosts).
const LEEWAY_SECS: i64 = 2;

/// The claims of an access token. `extra` carries the dialect's own claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The refresh-token family (session) the token belongs to.
    pub sid: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a dialect puts in a user's access tokens besides the core claims.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub sub: String,
    pub extra: Map<String, Value>,
}

/// A token pair just issued.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: SecretString,
    pub issued_at: i64,
    pub access_expires_at: i64,
    pub refresh_expires_at: i64,
    /// The family both belong to.
    pub sid: String,
}

/// A checked access token: who it speaks for and the session it belongs to.
#[derive(Debug)]
pub struct Session {
    pub user: User,
    pub claims: AccessClaims,
}

/// What sessions use: the store and clock, the keys (signing and the pepper), randomness.
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    pub db: Db<'a>,
    pub keys: &'a KeySet,
    pub rng: &'a dyn Rng,
}

const MAC_PURPOSE: &str = "refresh-token-mac:v1";
const STORE_PURPOSE: &str = "refresh-token:v1";

/// A refresh token taken apart (its MAC checked).
struct Parsed<'t> {
    sid: &'t str,
    uid: UserId,
    seq: u64,
}

/// The user a session id belongs to: sids are `<uid>-<random>`.
pub fn uid_of_sid(sid: &str) -> Option<UserId> {
    sid.split_once('-')?.0.parse().ok()
}

impl Sessions<'_> {
    /// Starts a session for a signed-in user: a new family and its first token pair.
    pub async fn start(
        &self,
        user: &User,
        subject: Subject,
        policy: &Policy,
        origin: Origin,
    ) -> Result<Issued, Error> {
        let now = self.db.now();
        let sid = format!(
            "{}-{}",
            user.id,
            crypto_codes::url_token(self.rng, 16)?.expose()
        );
        let refresh = self.refresh_token(&sid, 0)?;
        let refresh_expires_at = (now + policy.refresh_secs).min(now + policy.family_secs);
        let family = Family {
            sid: sid.clone(),
            uid: user.id,
            token_gen: user.token_gen,
            seq: 0,
            current_hash: self.stored_hash(refresh.expose()),
            current_expires_at: refresh_expires_at,
            revoked: false,
            audience: policy.client.to_owned(),
            created_at: now,
            expires_at: Some(now + policy.family_secs),
        };
        self.db
            .store
            .put(
                (&family).into(),
                crate::store::Cond::NotExists,
                self.db.now(),
            )
            .await?;
        Audit::new(Event::Session, Outcome::Success, origin.via)
            .user(user.id)
            .ip(origin.ip)
            .reason("started")
            .emit();
        self.issue(&sid, subject, refresh, refresh_expires_at, policy, now)
    }

    /// Uses a refresh token: the next pair of its family, and the user it is for. `subject`
    /// words the new access token's claims for the user as stored now.
    pub async fn refresh(
        &self,
        token: &str,
        policy: &Policy,
        origin: Origin,
        subject: impl FnOnce(&User) -> Subject,
    ) -> Result<(User, Issued), Error> {
        let parsed = self.parse(token).ok_or(Error::InvalidToken)?;
        let now = self.db.now();
        let (user, family) = self.load(parsed.uid, parsed.sid).await?;
        let (Some(user), Some(family)) = (user, family) else {
            return Err(Error::InvalidToken);
        };
        if family.revoked
            || family.audience != policy.client
            || family.uid != user.id
            || !user.honours(family.token_gen)
        {
            return Err(Error::InvalidToken);
        }
        let presented = self.stored_hash(token);
        if presented != family.current_hash {
            if parsed.seq < family.seq {
                self.replayed(&family, origin).await?;
            }
            return Err(Error::InvalidToken);
        }
        if family.current_expires_at <= now {
            return Err(Error::TokenExpired);
        }
        let next = self.refresh_token(parsed.sid, parsed.seq.saturating_add(1))?;
        let family_end = family.expires_at.unwrap_or(now + policy.family_secs);
        let next_expires_at = (now + policy.refresh_secs).min(family_end);
        match self
            .db
            .apply(family::rotate(
                parsed.sid,
                &presented,
                parsed.seq,
                &self.stored_hash(next.expose()),
                next_expires_at,
                now,
            ))
            .await
        {
            Ok(_) => {}
            // Another use of the same token rotated the family first: this one is a replay.
            Err(StoreError::ConditionFailed { .. }) => {
                self.replayed(&family, origin).await?;
                return Err(Error::InvalidToken);
            }
            Err(e) => return Err(e.into()),
        }
        Audit::new(Event::Session, Outcome::Success, origin.via)
            .user(user.id)
            .ip(origin.ip)
            .reason("refreshed")
            .emit();
        let issued = self.issue(
            parsed.sid,
            subject(&user),
            next,
            next_expires_at,
            policy,
            now,
        )?;
        Ok((user, issued))
    }

    /// Checks an access token of `policy`'s dialect: signature (the pinned algorithm, a published
    /// key), time claims, issuer and audience, then the user and the family, in one read.
    /// [`Error::NotFound`] when the token and its session are good but the user was deleted.
    pub async fn authenticate(&self, token: &str, policy: &Policy) -> Result<Session, Error> {
        let expect = Expect {
            iss: Some(&policy.issuer),
            aud: policy.audience.as_deref(),
        };
        let claims: AccessClaims = self
            .keys
            .verify_signed(token, policy.alg, self.db.now(), LEEWAY_SECS, &expect)
            .map_err(|e| match e {
                JwtError::Expired => Error::TokenExpired,
                JwtError::Invalid => Error::InvalidToken,
            })?;
        let uid = uid_of_sid(&claims.sid).ok_or(Error::InvalidToken)?;
        let (user, family) = self.load(uid, &claims.sid).await?;
        match (user, family) {
            (Some(user), Some(family))
                if !family.revoked
                    && family.audience == policy.client
                    && family.uid == user.id
                    && user.honours(family.token_gen) =>
            {
                Ok(Session { user, claims })
            }
            // An authentic token of a live session whose user has since been deleted: the
            // dialect may say so (the token proves it was issued to that user).
            (None, Some(family))
                if !family.revoked && family.audience == policy.client && family.uid == uid =>
            {
                Err(Error::NotFound)
            }
            _ => Err(Error::InvalidToken),
        }
    }

    /// Ends one session (e.g. sign-out): its refresh and access tokens stop working.
    pub async fn revoke(&self, sid: &str, origin: Origin) -> Result<(), Error> {
        match self.db.apply(family::revoke(sid)).await {
            Ok(_) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut audit = Audit::new(Event::Session, Outcome::Success, origin.via)
            .ip(origin.ip)
            .reason("revoked");
        if let Some(uid) = uid_of_sid(sid) {
            audit = audit.user(uid);
        }
        audit.emit();
        Ok(())
    }

    /// The session a refresh token belongs to, if it is one of ours (its MAC checks out).
    pub fn session_of_refresh_token<'t>(&self, token: &'t str) -> Option<&'t str> {
        self.parse(token).map(|p| p.sid)
    }

    async fn replayed(&self, family: &Family, origin: Origin) -> Result<(), Error> {
        Audit::new(Event::Session, Outcome::Failure, origin.via)
            .user(family.uid)
            .ip(origin.ip)
            .reason("refresh_token_replayed")
            .emit();
        self.revoke(&family.sid, origin).await
    }

    async fn load(&self, uid: UserId, sid: &str) -> Result<(Option<User>, Option<Family>), Error> {
        let items = self
            .db
            .store
            .get_many(&[profile::key(uid), family::key(sid)], self.db.now())
            .await?;
        let mut items = items.into_iter();
        let user = items
            .next()
            .flatten()
            .map(|item| User::try_from(&item))
            .transpose()?;
        let family = items
            .next()
            .flatten()
            .map(|item| Family::try_from(&item))
            .transpose()?;
        Ok((user, family))
    }

    fn issue(
        &self,
        sid: &str,
        subject: Subject,
        refresh: SecretString,
        refresh_expires_at: i64,
        policy: &Policy,
        now: i64,
    ) -> Result<Issued, Error> {
        let claims = AccessClaims {
            iss: policy.issuer.clone(),
            sub: subject.sub,
            aud: policy.audience.clone(),
            jti: crypto_codes::url_token(self.rng, 16)?.expose().to_owned(),
            iat: now,
            nbf: now,
            exp: now + policy.access_secs,
            sid: sid.to_owned(),
            extra: subject.extra,
        };
        Ok(Issued {
            access_token: self.keys.sign_signed(policy.alg, &claims)?,
            refresh_token: refresh,
            issued_at: now,
            access_expires_at: claims.exp,
            refresh_expires_at,
            sid: sid.to_owned(),
        })
    }

    fn refresh_token(&self, sid: &str, seq: u64) -> Result<SecretString, Error> {
        let nonce = crypto_codes::url_token(self.rng, 16)?;
        let body = format!("{sid}.{seq}.{}", nonce.expose());
        let mac = crypto_codes::keyed_hash(self.keys.pepper(), MAC_PURPOSE, &body);
        Ok(SecretString::new(format!("{body}.{mac}")))
    }

    fn stored_hash(&self, token: &str) -> String {
        crypto_codes::keyed_hash(self.keys.pepper(), STORE_PURPOSE, token)
    }

    fn parse<'t>(&self, token: &'t str) -> Option<Parsed<'t>> {
        if token.len() > 256 {
            return None;
        }
        let mut parts = token.split('.');
        let (sid, seq, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let body = format!("{sid}.{seq}.{nonce}");
        if !crypto_codes::verify_keyed_hash(self.keys.pepper(), MAC_PURPOSE, &body, mac) {
            return None;
        }
        Some(Parsed {
            sid,
            uid: uid_of_sid(sid)?,
            seq: seq.parse().ok()?,
        })
    }
}
