//! Integrations: named API clients with an opaque Bearer token.
//!
//! - `INTEGRATION#<id>` / `INTEGRATION`: name, granted resources, the token's keyed hash.
//! - `ITOKEN#<keyed hash of the token>` / `ITOKEN`: id and resources, so a request with the
//!   token costs one read (the token itself is never stored).
//! - `INTEGRATION_NAME#<lower-cased name>` / `INTEGRATION_NAME`: unique names.

use super::{corrupt, id_attr, number};
use crate::identity::integrations::Integration;
use crate::store::{Cond, Item, Key, StoreError, TxOp, Value};

mod attr {
    pub const NAME: &str = "name";
    pub const RESOURCES: &str = "resources";
    pub const TOKEN_HASH: &str = "token_hash";
    pub const CREATED: &str = "created_at";
    pub const IID: &str = "iid";
}

/// The sort key of every integration record (`latchkey integration list` scans for it).
pub const SORT_KEY: &str = "INTEGRATION";

fn record_key(id: u64) -> Key {
    Key::new(format!("INTEGRATION#{id}"), SORT_KEY)
}

pub fn token_key(token_hash: &str) -> Key {
    Key::new(format!("ITOKEN#{token_hash}"), "ITOKEN")
}

fn name_key(name: &str) -> Key {
    Key::new(
        format!("INTEGRATION_NAME#{}", name.trim().to_lowercase()),
        "INTEGRATION_NAME",
    )
}

pub fn key(id: u64) -> Key {
    record_key(id)
}

fn resources_value(resources: &[String]) -> Value {
    Value::L(resources.iter().map(|r| Value::S(r.clone())).collect())
}

fn resources_of(item: &Item) -> Vec<String> {
    item.list(attr::RESOURCES)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| match v {
            Value::S(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The transaction that creates an integration; op 0 fails when the name is taken.
pub fn create_ops(integration: &Integration, token_hash: &str) -> Vec<TxOp> {
    let id = number(integration.id);
    let resources = resources_value(&integration.resources);
    vec![
        TxOp::Put {
            item: Item::new(name_key(&integration.name)).with(attr::IID, id),
            cond: Cond::NotExists,
        },
        TxOp::Put {
            item: Item::new(record_key(integration.id))
                .with(attr::NAME, integration.name.as_str())
                .with(attr::RESOURCES, resources.clone())
                .with(attr::TOKEN_HASH, token_hash)
                .with(attr::CREATED, integration.created_at),
            cond: Cond::NotExists,
        },
        TxOp::Put {
            item: Item::new(token_key(token_hash))
                .with(attr::IID, id)
                .with(attr::NAME, integration.name.as_str())
                .with(attr::RESOURCES, resources)
                .with(attr::CREATED, integration.created_at),
            cond: Cond::NotExists,
        },
    ]
}

/// The transaction that deletes an integration found at [`key`], with its token and name.
pub fn delete_ops(record: &Item) -> Result<Vec<TxOp>, StoreError> {
    let hash = record
        .str(attr::TOKEN_HASH)
        .ok_or_else(|| corrupt(&record.key, attr::TOKEN_HASH))?;
    let name = record
        .str(attr::NAME)
        .ok_or_else(|| corrupt(&record.key, attr::NAME))?;
    Ok(vec![
        TxOp::Delete {
            key: record.key.clone(),
            cond: Cond::Exists,
        },
        TxOp::Delete {
            key: token_key(hash),
            cond: Cond::Always,
        },
        TxOp::Delete {
            key: name_key(name),
            cond: Cond::Always,
        },
    ])
}

/// The integration a token item speaks for.
pub fn from_token_item(item: &Item) -> Result<Integration, StoreError> {
    Ok(Integration {
        id: id_attr(item, attr::IID)?,
        name: item.str(attr::NAME).unwrap_or_default().to_owned(),
        resources: resources_of(item),
        created_at: item.num(attr::CREATED).unwrap_or(0),
    })
}

/// An integration from its record item.
pub fn from_record(item: &Item) -> Result<Integration, StoreError> {
    let id = item
        .key
        .pk
        .strip_prefix("INTEGRATION#")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt(&item.key, "id"))?;
    Ok(Integration {
        id,
        name: item.str(attr::NAME).unwrap_or_default().to_owned(),
        resources: resources_of(item),
        created_at: item.num(attr::CREATED).unwrap_or(0),
    })
}
