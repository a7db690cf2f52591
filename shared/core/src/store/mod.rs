//! The store port: a small item store with the semantics of one DynamoDB table.
//!
//! Every adapter (the embedded SQLite store, the DynamoDB store, the in-memory fake) must
//! behave the same way; `latchkey-tests`' store contract suite checks each of them:
//!
//! - An item is addressed by a [`Key`] (`pk`, `sk`) and may carry an expiry
//!   (`expires_at`, Unix seconds). An item whose expiry is at or before `now` is **absent**
//!   for every operation: reads skip it, conditions see no item, updates start from an
//!   empty item. Physical deletion may lag (DynamoDB TTL does) and must not matter.
//! - Every write takes a [`Cond`] evaluated atomically against the live item; on failure
//!   nothing changes and the adapter returns [`StoreError::ConditionFailed`] with the live
//!   item as it was, if any.
//! - [`Update`] applies `SET`, `ADD` (atomic counter; a missing attribute counts as 0) and
//!   `REMOVE`, and returns the item as written.
//! - `delete` returns the live item it removed: a single-use item is consumed by exactly
//!   one caller, however many race for it.
//! - `transact` applies puts, updates, deletes and condition checks on several items all or
//!   nothing.
//! - `get_many` reads several items in one call.
//!
//! Which items exist, their keys and attribute names, is not this module's business: each item
//! type has a record module (`crate::records`) that builds its keys, encodes and decodes it, and
//! builds the conditional [`Write`]s the flows apply.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

pub mod engine;
mod memory;
pub use memory::MemoryStore;

/// Primary key of an item: partition key and sort key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.pk, self.sk)
    }
}

/// An attribute value. Maps one to one onto DynamoDB's `S`, `N`, `B`, `BOOL` and `L`.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    S(String),
    N(i64),
    B(Vec<u8>),
    Bool(bool),
    L(Vec<Value>),
}

// Attribute values may hold hashes and sealed secrets: never print their content.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::S(s) => write!(f, "S(<{} chars>)", s.chars().count()),
            Value::N(n) => write!(f, "N({n})"),
            Value::B(b) => write!(f, "B(<{} bytes>)", b.len()),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::L(l) => write!(f, "L(<{} values>)", l.len()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::S(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::S(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::N(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::B(b)
    }
}

pub type Attrs = BTreeMap<String, Value>;

/// One stored item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub key: Key,
    pub attrs: Attrs,
    /// Unix seconds after which the item is absent. `None`: never expires.
    pub expires_at: Option<i64>,
}

impl Item {
    pub fn new(key: Key) -> Self {
        Self {
            key,
            attrs: Attrs::new(),
            expires_at: None,
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.attrs.insert(name.to_owned(), value.into());
        self
    }

    pub fn expiring_at(mut self, at: i64) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Whether the item is live at `now` (Unix seconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.attrs.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.attrs.get(name) {
            Some(Value::S(s)) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self, name: &str) -> Option<i64> {
        match self.attrs.get(name) {
            Some(Value::N(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        match self.attrs.get(name) {
            Some(Value::B(b)) => Some(b),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.attrs.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn list(&self, name: &str) -> Option<&[Value]> {
        match self.attrs.get(name) {
            Some(Value::L(l)) => Some(l),
            _ => None,
        }
    }
}

/// Numeric comparison operators for [`Cond::Cmp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn holds(self, left: i64, right: i64) -> bool {
        match self {
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
        }
    }

    /// The operator as DynamoDB's condition expressions spell it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A condition on the live item, checked atomically with the write it guards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    /// No condition.
    Always,
    /// A live item exists.
    Exists,
    /// No live item exists (none stored, or the stored one has expired).
    NotExists,
    /// The live item has the attribute with exactly this value.
    Eq(String, Value),
    /// The live item has a numeric attribute for which `attr op value` holds.
    Cmp(String, CmpOp, i64),
    /// There is no live item, or it lacks the attribute.
    Missing(String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn eq(name: &str, value: impl Into<Value>) -> Self {
        Cond::Eq(name.to_owned(), value.into())
    }
    pub fn cmp(name: &str, op: CmpOp, value: i64) -> Self {
        Cond::Cmp(name.to_owned(), op, value)
    }
    pub fn missing(name: &str) -> Self {
        Cond::Missing(name.to_owned())
    }
    /// `attr` is missing or `attr op value` holds.
    pub fn missing_or(name: &str, op: CmpOp, value: i64) -> Self {
        Cond::Or(vec![Cond::missing(name), Cond::cmp(name, op, value)])
    }

    /// Evaluates the condition against the live item (`None` when absent or expired).
    /// Adapters that evaluate conditions themselves use this; DynamoDB translates them.
    pub fn holds(&self, live: Option<&Item>) -> bool {
        match self {
            Cond::Always => true,
            Cond::Exists => live.is_some(),
            Cond::NotExists => live.is_none(),
            Cond::Eq(name, value) => live.and_then(|i| i.get(name)) == Some(value),
            Cond::Cmp(name, op, value) => {
                matches!(live.and_then(|i| i.num(name)), Some(n) if op.holds(n, *value))
            }
            Cond::Missing(name) => live.and_then(|i| i.get(name)).is_none(),
            Cond::And(all) => all.iter().all(|c| c.holds(live)),
            Cond::Or(any) => any.iter().any(|c| c.holds(live)),
        }
    }
}

/// What an update does to the item's expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpiryChange {
    #[default]
    Keep,
    Set(i64),
    Clear,
}

/// An update: `SET`, `SET` if missing (`if_not_exists`), `ADD` and `REMOVE` on attributes,
/// and the expiry. An attribute must appear in at most one of the lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub set: Vec<(String, Value)>,
    /// Set only where the attribute is missing (DynamoDB's `if_not_exists`).
    pub set_if_missing: Vec<(String, Value)>,
    pub add: Vec<(String, i64)>,
    pub remove: Vec<String>,
    pub expiry: ExpiryChange,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set.push((name.to_owned(), value.into()));
        self
    }
    pub fn set_if_missing(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set_if_missing.push((name.to_owned(), value.into()));
        self
    }
    pub fn add(mut self, name: &str, by: i64) -> Self {
        self.add.push((name.to_owned(), by));
        self
    }
    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_owned());
        self
    }
    pub fn expire_at(mut self, at: i64) -> Self {
        self.expiry = ExpiryChange::Set(at);
        self
    }
    pub fn never_expire(mut self) -> Self {
        self.expiry = ExpiryChange::Clear;
        self
    }

    /// Applies the update to the live item (or to an empty item at `key`) in memory.
    /// Counters saturate rather than wrap.
    pub fn apply(&self, key: &Key, live: Option<&Item>) -> Item {
        let mut item = live.cloned().unwrap_or_else(|| Item::new(key.clone()));
        for (name, value) in &self.set {
            item.attrs.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.set_if_missing {
            item.attrs
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        for (name, by) in &self.add {
            let current = item.num(name).unwrap_or(0);
            item.attrs
                .insert(name.clone(), Value::N(current.saturating_add(*by)));
        }
        for name in &self.remove {
            item.attrs.remove(name);
        }
        match self.expiry {
            ExpiryChange::Keep => {}
            ExpiryChange::Set(at) => item.expires_at = Some(at),
            ExpiryChange::Clear => item.expires_at = None,
        }
        item
    }
}

/// One conditional update of one item, as a record module builds it: the flows apply it
/// (alone, or as one op of a transaction) without naming an attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: Key,
    pub update: Update,
    pub cond: Cond,
}

impl Write {
    pub fn new(key: Key, update: Update, cond: Cond) -> Self {
        Self { key, update, cond }
    }

    /// The same write as one op of a transaction.
    pub fn into_op(self) -> TxOp {
        TxOp::Update {
            key: self.key,
            update: self.update,
            cond: self.cond,
        }
    }
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOp {
    Put {
        item: Item,
        cond: Cond,
    },
    Update {
        key: Key,
        update: Update,
        cond: Cond,
    },
    Delete {
        key: Key,
        cond: Cond,
    },
    Check {
        key: Key,
        cond: Cond,
    },
}

impl TxOp {
    pub fn key(&self) -> &Key {
        match self {
            TxOp::Put { item, .. } => &item.key,
            TxOp::Update { key, .. } | TxOp::Delete { key, .. } | TxOp::Check { key, .. } => key,
        }
    }

    pub fn cond(&self) -> &Cond {
        match self {
            TxOp::Put { cond, .. }
            | TxOp::Update { cond, .. }
            | TxOp::Delete { cond, .. }
            | TxOp::Check { cond, .. } => cond,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write's condition did not hold; nothing changed. `current` is the live item.
    #[error("condition failed")]
    ConditionFailed { current: Option<Box<Item>> },
    /// Operation `index` of a transaction failed its condition; nothing changed.
    #[error("transaction condition {index} failed")]
    TxConditionFailed { index: usize },
    /// Throttled or briefly unavailable after the adapter's own retries: try again later.
    #[error("store busy: {0}")]
    Busy(String),
    /// The request to the store was invalid (a bug, not a user error).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Anything else: I/O, corruption, a stored item of the wrong shape.
    #[error("store failure: {0}")]
    Failure(String),
}

impl StoreError {
    pub fn condition_failed(current: Option<Item>) -> Self {
        StoreError::ConditionFailed {
            current: current.map(Box::new),
        }
    }

    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

/// Most transactions allowed in one call (DynamoDB's own limit is 100).
pub const MAX_TX_OPS: usize = 25;

/// Most keys read by one `get_many` (DynamoDB's `BatchGetItem` takes 100).
pub const MAX_GET_MANY: usize = 100;

/// The state of a whole store at one moment, as far as the store can tell cheaply: two equal
/// versions mean that no item changed in between, in this process or another. Opaque bytes
/// (the embedded store's are SQLite's WAL-index header, see `latchkey_embedded::cache`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StoreVersion(pub [u8; STORE_VERSION_LEN]);

/// The length of a [`StoreVersion`]: one copy of SQLite's WAL-index header, the longest any
/// store gives; a store with less to tell pads with zeros (the memory store's write count).
pub const STORE_VERSION_LEN: usize = 48;

/// The store port. `now` is passed by the caller (from the Clock port) so that expiry is
/// decided by the same clock everywhere, and tests can move it.
#[async_trait]
pub trait Store: Send + Sync {
    /// The store's version now (see [`StoreVersion`]), where the store can tell without a
    /// call to its backend; `None` where it cannot (DynamoDB), and while it cannot say.
    ///
    /// The promise: a version read before a read of items, and equal to one read later, means
    /// that those items are still as that read found them. A write must change the version
    /// once it is visible, and before it returns.
    fn version(&self) -> Option<StoreVersion> {
        None
    }

    /// The live item at `key`, if any.
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError>;

    /// The live items at `keys`, in the order asked (`None` where there is none). At most
    /// [`MAX_GET_MANY`] distinct keys; one call on DynamoDB.
    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError>;

    /// Writes `item` whole if `cond` holds.
    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError>;

    /// Applies `update` if `cond` holds, creating the item if there is no live one; returns
    /// the item as written.
    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError>;

    /// Deletes the item if `cond` holds; returns the live item it removed (`None` when there
    /// was none, which with `Cond::Always` is not an error).
    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError>;

    /// Live items of partition `pk` whose sort key starts with `sk_prefix`, in sort-key order,
    /// at most `limit`.
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError>;

    /// Live items whose sort key equals `sk`, across all partitions (an administrative scan,
    /// never on a request path), in no particular order, at most `limit`.
    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError>;

    /// All or nothing: every op's condition holds and all writes apply, or nothing changes and
    /// the first failing op is reported. At most [`MAX_TX_OPS`] ops, on distinct keys.
    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError>;
}

/// Checks what every adapter must refuse before touching its backend.
pub fn validate_tx(ops: &[TxOp]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_TX_OPS {
        return Err(StoreError::Invalid(format!(
            "transaction of {} ops",
            ops.len()
        )));
    }
    for op in ops {
        validate_key(op.key())?;
        match op {
            TxOp::Put { item, .. } => validate_item(item)?,
            TxOp::Update { update, .. } => validate_update(update)?,
            TxOp::Delete { .. } | TxOp::Check { .. } => {}
        }
    }
    let mut keys: Vec<&Key> = ops.iter().map(TxOp::key).collect();
    keys.sort();
    if keys.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(StoreError::Invalid(
            "transaction touches one key twice".into(),
        ));
    }
    Ok(())
}

/// Longest partition key, in bytes (DynamoDB refuses longer ones).
pub const MAX_PK_BYTES: usize = 2048;
/// Longest sort key, in bytes (DynamoDB refuses longer ones).
pub const MAX_SK_BYTES: usize = 1024;

/// Checks a key against DynamoDB's limits, on every adapter, so that a flow that lets an
/// over-long identifier reach a key fails the same way on all of them (and tests see it).
/// Flows must check identifiers before they become keys; this is the backstop.
pub fn validate_key(key: &Key) -> Result<(), StoreError> {
    if key.pk.is_empty()
        || key.sk.is_empty()
        || key.pk.len() > MAX_PK_BYTES
        || key.sk.len() > MAX_SK_BYTES
    {
        return Err(StoreError::Invalid(format!(
            "key of {} + {} bytes is outside DynamoDB's limits",
            key.pk.len(),
            key.sk.len()
        )));
    }
    Ok(())
}

/// Checks what every adapter must refuse in a `get_many`.
pub fn validate_keys(keys: &[Key]) -> Result<(), StoreError> {
    keys.iter().try_for_each(validate_key)?;
    if keys.len() > MAX_GET_MANY {
        return Err(StoreError::Invalid(format!(
            "get_many of {} keys",
            keys.len()
        )));
    }
    let mut sorted: Vec<&Key> = keys.iter().collect();
    sorted.sort();
    if sorted.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(StoreError::Invalid(
            "get_many asks for one key twice".into(),
        ));
    }
    Ok(())
}

/// Checks what every adapter must refuse in an update.
pub fn validate_update(update: &Update) -> Result<(), StoreError> {
    let mut names: Vec<&str> = update
        .set
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(update.set_if_missing.iter().map(|(n, _)| n.as_str()))
        .chain(update.add.iter().map(|(n, _)| n.as_str()))
        .chain(update.remove.iter().map(String::as_str))
        .collect();
    if names
        .iter()
        .any(|n| n.is_empty() || RESERVED_ATTRS.contains(n))
    {
        return Err(StoreError::Invalid(
            "update names a reserved attribute".into(),
        ));
    }
    names.sort_unstable();
    if names.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(StoreError::Invalid(
            "update names one attribute twice".into(),
        ));
    }
    Ok(())
}

/// Checks an item's key and attribute names (every adapter refuses the reserved ones).
pub fn validate_item(item: &Item) -> Result<(), StoreError> {
    validate_key(&item.key)?;
    if item
        .attrs
        .keys()
        .any(|k| k.is_empty() || RESERVED_ATTRS.contains(&k.as_str()))
    {
        return Err(StoreError::Invalid(
            "items may not use the names pk, sk or expires_at".into(),
        ));
    }
    Ok(())
}

/// Attribute names the adapters use for the key and the expiry; items may not use them.
pub const RESERVED_ATTRS: [&str; 3] = ["pk", "sk", "expires_at"];

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        Item::new(Key::new("p", "s")).with("n", 3).with("s", "x")
    }

    #[test]
    fn conditions_see_absent_items_as_absent() {
        assert!(Cond::NotExists.holds(None));
        assert!(!Cond::Exists.holds(None));
        assert!(Cond::missing("n").holds(None));
        assert!(!Cond::cmp("n", CmpOp::Lt, 5).holds(None));
        assert!(Cond::missing_or("n", CmpOp::Lt, 5).holds(None));
    }

    #[test]
    fn conditions_on_live_items() {
        let i = item();
        assert!(Cond::cmp("n", CmpOp::Lt, 5).holds(Some(&i)));
        assert!(!Cond::cmp("n", CmpOp::Ge, 5).holds(Some(&i)));
        assert!(Cond::eq("s", "x").holds(Some(&i)));
        assert!(!Cond::eq("s", "y").holds(Some(&i)));
        assert!(
            !Cond::cmp("s", CmpOp::Lt, 5).holds(Some(&i)),
            "non-numbers never compare"
        );
        assert!(!Cond::And(vec![Cond::Exists, Cond::missing("n")]).holds(Some(&i)));
    }

    #[test]
    fn update_applies_set_add_remove() {
        let u = Update::new()
            .set("s", "y")
            .set_if_missing("first", 1)
            .set_if_missing("n2", 9)
            .add("n", 2)
            .add("m", 1)
            .remove("gone")
            .expire_at(9);
        let out = u.apply(
            &Key::new("p", "s"),
            Some(&item().with("gone", true).with("n2", 4)),
        );
        assert_eq!(out.str("s"), Some("y"));
        assert_eq!(out.num("first"), Some(1), "set where missing");
        assert_eq!(out.num("n2"), Some(4), "kept where present");
        assert_eq!(out.num("n"), Some(5));
        assert_eq!(out.num("m"), Some(1));
        assert!(out.get("gone").is_none());
        assert_eq!(out.expires_at, Some(9));
    }

    #[test]
    fn validation_refuses_duplicates_and_reserved_names() {
        assert!(validate_update(&Update::new().set("a", 1).add("a", 1)).is_err());
        assert!(validate_update(&Update::new().set("pk", 1)).is_err());
        let k = Key::new("a", "b");
        let dup = vec![
            TxOp::Check {
                key: k.clone(),
                cond: Cond::Exists,
            },
            TxOp::Delete {
                key: k,
                cond: Cond::Always,
            },
        ];
        assert!(validate_tx(&dup).is_err());
        assert!(validate_tx(&[]).is_err());
    }

    #[test]
    fn debug_never_shows_values() {
        let shown = format!("{:?}", Value::S("hunter2".into()));
        assert!(!shown.contains("hunter2"));
    }
}
