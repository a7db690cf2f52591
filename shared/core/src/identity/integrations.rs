//! Integrations: named API clients whose opaque access token works as a Bearer token without a
//! second factor, limited to the resources they were granted. Stored as
//! [`crate::records::integration`] says.
//!
//! Granting is bounded by what the grantor holds: an admin user holds every resource, an
//! integration only its own, and no list of resources is ever read as "everything" unless it
//! names [`ALL_RESOURCES`] — so a client can never mint a stronger client.

use crate::audit::{Audit, Event, Outcome};
use crate::crypto::{SecretString, codes};
use crate::ports::Rng;
use crate::records::{counter, integration};
use crate::store::StoreError;

use super::accounts::next_id;
use super::{Db, Error, Invalid, Taken};

/// The resource that grants everything.
pub const ALL_RESOURCES: &str = "Magento_Backend::all";
const TOKEN_PURPOSE: &str = "integration-access-token";
const TOKEN_LEN: usize = 32;
const MAX_RESOURCES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    pub id: u64,
    pub name: String,
    pub resources: Vec<String>,
    pub created_at: i64,
}

impl Integration {
    pub fn allows(&self, resource: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r == ALL_RESOURCES || r == resource)
    }
}

/// Who grants an integration its resources.
#[derive(Clone, Copy, Debug)]
pub enum Grantor<'a> {
    /// An admin user, or the operator's CLI: holds every resource.
    Admin,
    /// Another integration: may grant only what it holds itself.
    Integration(&'a Integration),
}

impl Grantor<'_> {
    fn holds(&self, resource: &str) -> bool {
        match self {
            Grantor::Admin => true,
            Grantor::Integration(i) => i.allows(resource),
        }
    }
}

/// Creates an integration holding `resources` (at least one, each held by `grantor`); returns it
/// with its access token (shown once, stored only as a keyed hash).
pub async fn create(
    db: Db<'_>,
    rng: &dyn Rng,
    pepper: &[u8],
    grantor: Grantor<'_>,
    name: &str,
    resources: Vec<String>,
    via: &'static str,
) -> Result<(Integration, SecretString), Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(Error::Invalid(Invalid::IntegrationName));
    }
    let mut resources: Vec<String> = resources.iter().map(|r| r.trim().to_owned()).collect();
    resources.sort();
    resources.dedup();
    if resources.is_empty()
        || resources.len() > MAX_RESOURCES
        || resources.iter().any(|r| r.is_empty() || r.len() > 100)
    {
        return Err(Error::Invalid(Invalid::Resources));
    }
    if !resources.iter().all(|r| grantor.holds(r)) {
        return Err(Error::Invalid(Invalid::ResourceNotHeld));
    }
    let id = next_id(db, counter::INTEGRATION_ID).await?;
    let token = codes::alnum_token(rng, TOKEN_LEN)?;
    let hash = codes::keyed_hash(pepper, TOKEN_PURPOSE, token.expose());
    let created = Integration {
        id,
        name: name.to_owned(),
        resources,
        created_at: db.now(),
    };
    match db
        .store
        .transact(integration::create_ops(&created, &hash), db.now())
        .await
    {
        Ok(()) => {}
        Err(StoreError::TxConditionFailed { index: 0 }) => {
            return Err(Error::Taken(Taken::IntegrationName));
        }
        Err(e) => return Err(e.into()),
    }
    Audit::new(Event::IntegrationCreated, Outcome::Success, via).emit();
    Ok((created, token))
}

/// The integration an access token belongs to, if it is live.
pub async fn authenticate(
    db: Db<'_>,
    pepper: &[u8],
    token: &str,
) -> Result<Option<Integration>, StoreError> {
    if token.len() != TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Ok(None);
    }
    let hash = codes::keyed_hash(pepper, TOKEN_PURPOSE, token);
    match db.get(&integration::token_key(&hash)).await? {
        Some(item) => Ok(Some(integration::from_token_item(&item)?)),
        None => Ok(None),
    }
}

/// Deletes an integration and revokes its token.
pub async fn delete(db: Db<'_>, id: u64, via: &'static str) -> Result<(), Error> {
    let record = db
        .get(&integration::key(id))
        .await?
        .ok_or(Error::NotFound)?;
    match db
        .store
        .transact(integration::delete_ops(&record)?, db.now())
        .await
    {
        Ok(()) => {
            Audit::new(Event::IntegrationDeleted, Outcome::Success, via).emit();
            Ok(())
        }
        Err(StoreError::TxConditionFailed { .. }) => Err(Error::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(db: Db<'_>) -> Result<Vec<Integration>, StoreError> {
    let items = db
        .store
        .scan_sk(integration::SORT_KEY, 10_000, db.now())
        .await?;
    let mut all = items
        .iter()
        .map(integration::from_record)
        .collect::<Result<Vec<_>, StoreError>>()?;
    all.sort_by_key(|i| i.id);
    Ok(all)
}
