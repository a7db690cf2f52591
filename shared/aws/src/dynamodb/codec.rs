//! Items to and from DynamoDB's attribute values: S→S, N→N, B→B, Bool→BOOL, L→L, the key in
//! `pk`/`sk` and the expiry in `expires_at` (the table's TTL attribute).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use latchkey_core::store::{Attrs, Item, Key, StoreError, Value};

pub type AvMap = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const EXP: &str = "expires_at";

pub fn to_av(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.to_string()),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::L(l) => AttributeValue::L(l.iter().map(to_av).collect()),
    }
}

pub fn from_av(av: &AttributeValue) -> Option<Value> {
    Some(match av {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(n.parse().ok()?),
        AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(l) => Value::L(l.iter().map(from_av).collect::<Option<Vec<_>>>()?),
        _ => return None,
    })
}

pub fn key_map(key: &Key) -> AvMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

pub fn item_map(item: &Item) -> AvMap {
    let mut map = key_map(&item.key);
    for (name, value) in &item.attrs {
        map.insert(name.clone(), to_av(value));
    }
    if let Some(at) = item.expires_at {
        map.insert(EXP.to_owned(), AttributeValue::N(at.to_string()));
    }
    map
}

pub fn from_map(map: &AvMap) -> Result<Item, StoreError> {
    let text = |name: &str| match map.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Failure(format!(
            "stored item without a string `{name}`"
        ))),
    };
    let key = Key::new(text(PK)?, text(SK)?);
    let expires_at = match map.get(EXP) {
        None => None,
        Some(AttributeValue::N(n)) => Some(n.parse().map_err(|_| {
            StoreError::Failure(format!("item {key}: expires_at is not an integer"))
        })?),
        Some(_) => {
            return Err(StoreError::Failure(format!(
                "item {key}: expires_at is not a number"
            )));
        }
    };
    let mut attrs = Attrs::new();
    for (name, av) in map {
        if name == PK || name == SK || name == EXP {
            continue;
        }
        let value = from_av(av).ok_or_else(|| {
            StoreError::Failure(format!(
                "item {key}: attribute `{name}` has an unsupported type"
            ))
        })?;
        attrs.insert(name.clone(), value);
    }
    Ok(Item {
        key,
        attrs,
        expires_at,
    })
}

/// The live item in a map DynamoDB returned, if any.
pub fn live(map: Option<&AvMap>, now: i64) -> Result<Option<Item>, StoreError> {
    match map {
        Some(m) if !m.is_empty() => Ok(Some(from_map(m)?).filter(|i| i.is_live(now))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_one_to_one() {
        let v = Value::L(vec![
            Value::S("x".into()),
            Value::N(-3),
            Value::B(vec![1]),
            Value::Bool(true),
            Value::L(vec![]),
        ]);
        assert_eq!(from_av(&to_av(&v)), Some(v));
        assert_eq!(from_av(&AttributeValue::Null(true)), None);
    }
}
