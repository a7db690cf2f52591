//! Decoys: what a request about an unknown account writes in place of what a known one's
//! writes, so that neither the store's time nor its bill tells the two apart.
//!
//! - `DECOY#<hash of the key it stands for>` / `DECOY`: a put of as many attributes, of the
//!   same sizes, as the item it stands for, with every text and byte value blanked (nothing a
//!   client sent, such as an email address, is kept), expiring within the hour. Nothing reads
//!   it; the table's stream filter and the local mail sweep pass it by.

use sha2::{Digest, Sha256};

use crate::store::{Cond, Item, Key, TxOp, Value};

const PK_PREFIX: &str = "DECOY#";
const SK: &str = "DECOY";
/// How long a decoy stays (it only has to be written).
const LIFE_SECS: i64 = 3600;

/// The decoy of `item`: its size and shape, none of its content, at a key of its own.
pub fn of(item: &Item, now: i64) -> TxOp {
    let digest = Sha256::digest(format!("{}\u{0}{}", item.key.pk, item.key.sk).as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let mut decoy = Item::new(Key::new(format!("{PK_PREFIX}{hex}"), SK))
        .expiring_at(now.saturating_add(LIFE_SECS));
    for (name, value) in &item.attrs {
        decoy = decoy.with(name, blank(value));
    }
    TxOp::Put {
        item: decoy,
        cond: Cond::Always,
    }
}

/// The decoys of a known account's puts (other operations have none).
pub fn of_puts(ops: &[TxOp], now: i64) -> Vec<TxOp> {
    ops.iter()
        .filter_map(|op| match op {
            TxOp::Put { item, .. } => Some(of(item, now)),
            _ => None,
        })
        .collect()
}

fn blank(value: &Value) -> Value {
    match value {
        Value::S(s) => Value::S("-".repeat(s.len())),
        Value::B(b) => Value::B(vec![0; b.len()]),
        Value::N(_) => Value::N(0),
        Value::Bool(_) => Value::Bool(false),
        Value::L(l) => Value::L(l.iter().map(blank).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoy_has_the_shape_of_its_item_and_none_of_its_content() {
        let item = Item::new(Key::new("LINKMAIL#abc", "REQUEST"))
            .with("to", "someone@example.com")
            .with("sealed_token", Value::B(vec![7; 40]))
            .with("valid_until", 1300);
        let TxOp::Put { item: decoy, cond } = of(&item, 1000) else {
            panic!("a put")
        };
        assert_eq!(cond, Cond::Always);
        assert!(decoy.key.pk.starts_with("DECOY#") && decoy.key.sk == "DECOY");
        assert_eq!(decoy.expires_at, Some(1000 + LIFE_SECS));
        assert_eq!(decoy.attrs.len(), 3);
        assert_eq!(decoy.str("to"), Some("-------------------"));
        assert_eq!(decoy.bytes("sealed_token"), Some(&[0u8; 40][..]));
        let TxOp::Put { item: again, .. } = of(&item, 1000) else {
            panic!("a put")
        };
        assert_eq!(again.key, decoy.key, "one decoy per item it stands for");
    }
}
