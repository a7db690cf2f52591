//! Integrations: named API clients whose opaque access token works as a Bearer token without a
//! second factor, limited to the resources they were granted.
//!
//! Items: `INTEGRATION#<id>` / `INTEGRATION` (name, resources, token hash, created),
//! `ITOKEN#<keyed hash of the token>` / `ITOKEN` (id and resources: one read per request),
//! `INTEGRATION_NAME#<lower name>` / `INTEGRATION_NAME` (unique names).

use crate::app::App;
use crate::audit::{Audit, Event, Outcome};
use crate::crypto::SecretString;
use crate::crypto::codes;
use crate::store::{Cond, Item, Key, StoreError, TxOp, Value};

use super::Fault;
use super::accounts::next_id;

/// The resource that grants everything.
pub const ALL_RESOURCES: &str = "Magento_Backend::all";
const TOKEN_PURPOSE: &str = "integration-access-token";
const TOKEN_LEN: usize = 32;

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

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("an integration named `{0}` exists already")]
    NameTaken(String),
    #[error("integration names are 1 to 255 characters")]
    BadName,
    #[error("resources are 1 to 100 characters each, at most 100 of them")]
    BadResources,
    #[error("no such integration")]
    NotFound,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<StoreError> for IntegrationError {
    fn from(e: StoreError) -> Self {
        IntegrationError::Fault(Fault::Store(e))
    }
}

fn record_key(id: u64) -> Key {
    Key::new(format!("INTEGRATION#{id}"), "INTEGRATION")
}

fn token_key(hash: &str) -> Key {
    Key::new(format!("ITOKEN#{hash}"), "ITOKEN")
}

fn name_key(name: &str) -> Key {
    Key::new(
        format!("INTEGRATION_NAME#{}", name.trim().to_lowercase()),
        "INTEGRATION_NAME",
    )
}

fn resources_value(resources: &[String]) -> Value {
    Value::L(resources.iter().map(|r| Value::S(r.clone())).collect())
}

fn resources_of(item: &Item) -> Vec<String> {
    item.list("resources")
        .unwrap_or_default()
        .iter()
        .filter_map(|v| match v {
            Value::S(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn id_of(item: &Item, attr: &str) -> Result<u64, StoreError> {
    item.num(attr)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| StoreError::Failure(format!("item {}: {attr}", item.key)))
}

/// Creates an integration; returns it with its access token (shown once, stored hashed).
pub async fn create(
    app: &App,
    name: &str,
    resources: Vec<String>,
    via: &'static str,
) -> Result<(Integration, SecretString), IntegrationError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(IntegrationError::BadName);
    }
    let resources = if resources.is_empty() {
        vec![ALL_RESOURCES.to_owned()]
    } else {
        resources
    };
    if resources.len() > 100
        || resources
            .iter()
            .any(|r| r.trim().is_empty() || r.len() > 100)
    {
        return Err(IntegrationError::BadResources);
    }
    let now = app.clock.now();
    let id = next_id(app, "INTEGRATION_ID").await?;
    let token = codes::alnum_token(app.rng.as_ref(), TOKEN_LEN).map_err(Fault::Crypto)?;
    let hash = codes::keyed_hash(app.keys.pepper(), TOKEN_PURPOSE, token.expose());
    let id_n = i64::try_from(id).unwrap_or(i64::MAX);
    let ops = vec![
        TxOp::Put {
            item: Item::new(name_key(name)).with("iid", id_n),
            cond: Cond::NotExists,
        },
        TxOp::Put {
            item: Item::new(record_key(id))
                .with("name", name)
                .with("resources", resources_value(&resources))
                .with("token_hash", hash.as_str())
                .with("created_at", now),
            cond: Cond::NotExists,
        },
        TxOp::Put {
            item: Item::new(token_key(&hash))
                .with("iid", id_n)
                .with("name", name)
                .with("resources", resources_value(&resources))
                .with("created_at", now),
            cond: Cond::NotExists,
        },
    ];
    match app.store.transact(ops, now).await {
        Ok(()) => {}
        Err(StoreError::TxConditionFailed { index: 0 }) => {
            return Err(IntegrationError::NameTaken(name.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    Audit::new(Event::IntegrationCreated, Outcome::Success, via)
        .reason("")
        .emit();
    Ok((
        Integration {
            id,
            name: name.to_owned(),
            resources,
            created_at: now,
        },
        token,
    ))
}

/// The integration an access token belongs to, if it is live.
pub async fn authenticate(app: &App, token: &str) -> Result<Option<Integration>, StoreError> {
    if token.len() != TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Ok(None);
    }
    let hash = codes::keyed_hash(app.keys.pepper(), TOKEN_PURPOSE, token);
    let Some(item) = app.store.get(&token_key(&hash), app.clock.now()).await? else {
        return Ok(None);
    };
    Ok(Some(Integration {
        id: id_of(&item, "iid")?,
        name: item.str("name").unwrap_or_default().to_owned(),
        resources: resources_of(&item),
        created_at: item.num("created_at").unwrap_or(0),
    }))
}

/// Deletes an integration and revokes its token.
pub async fn delete(app: &App, id: u64, via: &'static str) -> Result<(), IntegrationError> {
    let now = app.clock.now();
    let record = app
        .store
        .get(&record_key(id), now)
        .await?
        .ok_or(IntegrationError::NotFound)?;
    let hash = record.str("token_hash").unwrap_or_default().to_owned();
    let name = record.str("name").unwrap_or_default().to_owned();
    let ops = vec![
        TxOp::Delete {
            key: record_key(id),
            cond: Cond::Exists,
        },
        TxOp::Delete {
            key: token_key(&hash),
            cond: Cond::Always,
        },
        TxOp::Delete {
            key: name_key(&name),
            cond: Cond::Always,
        },
    ];
    match app.store.transact(ops, now).await {
        Ok(()) => {
            Audit::new(Event::IntegrationDeleted, Outcome::Success, via).emit();
            Ok(())
        }
        Err(StoreError::TxConditionFailed { .. }) => Err(IntegrationError::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(app: &App) -> Result<Vec<Integration>, StoreError> {
    let items = app
        .store
        .scan_sk("INTEGRATION", 10_000, app.clock.now())
        .await?;
    let mut all = items
        .iter()
        .map(|item| {
            let id = item
                .key
                .pk
                .strip_prefix("INTEGRATION#")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| StoreError::Failure(format!("item {}: id", item.key)))?;
            Ok(Integration {
                id,
                name: item.str("name").unwrap_or_default().to_owned(),
                resources: resources_of(item),
                created_at: item.num("created_at").unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    all.sort_by_key(|i| i.id);
    Ok(all)
}
