//! The store port over one DynamoDB table (design: `infra/TABLE.md`).
//!
//! Items carry `pk`/`sk` string keys, `expires_at` (Unix seconds, the table's TTL attribute)
//! when they expire, and their attributes mapped S→S, N→N, B→B, Bool→BOOL, L→L. TTL deletion
//! is lazy (it can lag by days), so expiry is enforced here: every read drops expired items and
//! every condition expression treats an expired item as absent. Conditional failures come back
//! with the item as it was (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so no extra read is
//! needed to report them. Retries with backoff on throttling are the SDK's standard retry
//! strategy (see [`crate::clients`]); what still fails is [`StoreError::Busy`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use latchkey_core::store::{
    Attrs, Cond, ExpiryChange, Item, Key, Store, StoreError, TxOp, Update, Value, validate_item,
    validate_tx, validate_update,
};

type AvMap = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const SK: &str = "sk";
const EXP: &str = "expires_at";

/// A store in one DynamoDB table. Cheap to clone; counts its DynamoDB calls.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    calls: Arc<AtomicUsize>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// DynamoDB calls made so far (tests assert per-endpoint counts with it).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// A cheap call that opens the TLS connection: made during a function's init, so the
    /// first request does not pay for the handshake.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let key = Key::new("PING", "PING");
        self.count();
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(&key)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_error(&e))
    }

    /// Creates the table (on-demand, TTL on `expires_at`, stream on) if it is missing. For local
    /// use and tests; deployments create it from `template.yaml`.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification, StreamViewType, TimeToLiveSpecification,
        };
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(SK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(invalid)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(invalid)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(SK)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(invalid)?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(invalid)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(map_error(&e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(EXP)
                    .enabled(true)
                    .build()
                    .map_err(invalid)?,
            )
            .send()
            .await
            .map_err(|e| map_error(&e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------- value mapping

fn to_av(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.to_string()),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::L(l) => AttributeValue::L(l.iter().map(to_av).collect()),
    }
}

fn from_av(av: &AttributeValue) -> Option<Value> {
    Some(match av {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(n.parse().ok()?),
        AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(l) => Value::L(l.iter().map(from_av).collect::<Option<Vec<_>>>()?),
        _ => return None,
    })
}

fn key_map(key: &Key) -> AvMap {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

fn item_map(item: &Item) -> AvMap {
    let mut map = key_map(&item.key);
    for (name, value) in &item.attrs {
        map.insert(name.clone(), to_av(value));
    }
    if let Some(at) = item.expires_at {
        map.insert(EXP.to_owned(), AttributeValue::N(at.to_string()));
    }
    map
}

fn from_map(map: &AvMap) -> Result<Item, StoreError> {
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
fn live(map: Option<&AvMap>, now: i64) -> Result<Option<Item>, StoreError> {
    match map {
        Some(m) if !m.is_empty() => Ok(Some(from_map(m)?).filter(|i| i.is_live(now))),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------- expressions

/// Placeholders for one request's expressions.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: AvMap,
}

impl Expr {
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, av: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), av);
        placeholder
    }

    fn now(&mut self, now: i64) -> String {
        let key = ":now".to_owned();
        self.values
            .insert(key.clone(), AttributeValue::N(now.to_string()));
        key
    }

    /// The item, if there is one, has not expired.
    fn unexpired(&mut self, now: i64) -> String {
        let (exp, now) = (self.name(EXP), self.now(now));
        format!("(attribute_not_exists({exp}) OR {exp} > {now})")
    }

    /// The item exists and has not expired.
    fn live(&mut self, now: i64) -> String {
        let (pk, unexpired) = (self.name(PK), self.unexpired(now));
        format!("(attribute_exists({pk}) AND {unexpired})")
    }

    /// No item, or an expired one.
    fn absent(&mut self, now: i64) -> String {
        let (pk, exp, now) = (self.name(PK), self.name(EXP), self.now(now));
        format!("(attribute_not_exists({pk}) OR {exp} <= {now})")
    }

    /// `None` for [`Cond::Always`].
    fn cond(&mut self, cond: &Cond, now: i64) -> Option<String> {
        Some(match cond {
            Cond::Always => return None,
            Cond::Exists => self.live(now),
            Cond::NotExists => self.absent(now),
            Cond::Eq(name, value) => {
                let (n, v, live) = (self.name(name), self.value(to_av(value)), self.live(now));
                format!("({n} = {v} AND {live})")
            }
            Cond::Cmp(name, op, value) => {
                // The type guard comes first: a string compared with a number is simply false
                // in DynamoDB, and emulators that raise on it never get to evaluate it.
                let (n, number, v, live) = (
                    self.name(name),
                    self.value(AttributeValue::S("N".into())),
                    self.value(AttributeValue::N(value.to_string())),
                    self.live(now),
                );
                format!(
                    "(attribute_type({n}, {number}) AND {n} {} {v} AND {live})",
                    op.symbol()
                )
            }
            Cond::Missing(name) => {
                let (n, absent) = (self.name(name), self.absent(now));
                format!("(attribute_not_exists({n}) OR {absent})")
            }
            Cond::And(all) => self.combine(all, " AND ", now),
            Cond::Or(any) => self.combine(any, " OR ", now),
        })
    }

    fn combine(&mut self, conds: &[Cond], sep: &str, now: i64) -> String {
        let mut parts = Vec::with_capacity(conds.len());
        for c in conds {
            let part = match self.cond(c, now) {
                Some(p) => p,
                None => self.always(),
            };
            parts.push(part);
        }
        if parts.is_empty() {
            // An empty And holds; an empty Or does not (as `Cond::holds` says).
            return if sep == " AND " {
                self.always()
            } else {
                self.never()
            };
        }
        format!("({})", parts.join(sep))
    }

    fn never(&mut self) -> String {
        let pk = self.name(PK);
        format!("(attribute_exists({pk}) AND attribute_not_exists({pk}))")
    }

    /// A condition that always holds, for operations that require one (`ConditionCheck`).
    fn always(&mut self) -> String {
        let pk = self.name(PK);
        format!("(attribute_exists({pk}) OR attribute_not_exists({pk}))")
    }

    fn update(&mut self, update: &Update) -> String {
        let mut set: Vec<String> = Vec::new();
        let mut add: Vec<String> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        for (name, value) in &update.set {
            let (n, v) = (self.name(name), self.value(to_av(value)));
            set.push(format!("{n} = {v}"));
        }
        for (name, by) in &update.add {
            let (n, v) = (
                self.name(name),
                self.value(AttributeValue::N(by.to_string())),
            );
            add.push(format!("{n} {v}"));
        }
        for name in &update.remove {
            remove.push(self.name(name));
        }
        match update.expiry {
            ExpiryChange::Keep => {}
            ExpiryChange::Set(at) => {
                let (n, v) = (
                    self.name(EXP),
                    self.value(AttributeValue::N(at.to_string())),
                );
                set.push(format!("{n} = {v}"));
            }
            ExpiryChange::Clear => remove.push(self.name(EXP)),
        }
        if set.is_empty() && add.is_empty() && remove.is_empty() {
            // An empty update still creates the item: remove an attribute nobody uses.
            remove.push(self.name("latchkey_noop"));
        }
        let mut clauses = Vec::new();
        if !set.is_empty() {
            clauses.push(format!("SET {}", set.join(", ")));
        }
        if !add.is_empty() {
            clauses.push(format!("ADD {}", add.join(", ")));
        }
        if !remove.is_empty() {
            clauses.push(format!("REMOVE {}", remove.join(", ")));
        }
        clauses.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<AvMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

// ---------------------------------------------------------------- errors

/// Maps an SDK failure (after the SDK's own retries) onto the port's errors. Never includes
/// item contents.
fn map_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> StoreError {
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException"
                | "ReplicatedWriteConflictException" => {
                    StoreError::Busy(format!("DynamoDB: {code}"))
                }
                "ValidationException" | "SerializationException" => StoreError::Invalid(format!(
                    "DynamoDB: {code}: {}",
                    service.err().message().unwrap_or("")
                )),
                _ => StoreError::Failure(format!("DynamoDB: {code}")),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Busy(format!("DynamoDB unreachable: {}", err_kind(err)))
        }
        _ => StoreError::Failure(format!("DynamoDB request: {}", err_kind(err))),
    }
}

fn err_kind<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "construction failure",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "response error",
        SdkError::ServiceError(_) => "service error",
        _ => "error",
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

// ---------------------------------------------------------------- the port

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.count();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_error(&e))?;
        live(out.item(), now)
    }

    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        validate_item(&item)?;
        let mut expr = Expr::default();
        let condition = expr.cond(&cond, now);
        self.count();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_map(&item)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                let old = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                });
                Err(StoreError::condition_failed(live(old.as_ref(), now)?))
            }
            Err(e) => Err(map_error(&e)),
        }
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        validate_update(&update)?;
        // At most one retry: after removing an expired item that was in the way.
        for attempt in 0..2 {
            let mut expr = Expr::default();
            let update_expression = expr.update(&update);
            // Updates must not build on an expired item's stale attributes.
            let (pk, unexpired) = (expr.name(PK), expr.unexpired(now));
            let not_stale = format!("(attribute_not_exists({pk}) OR {unexpired})");
            let condition = match expr.cond(&cond, now) {
                Some(c) => format!("{c} AND {not_stale}"),
                None => not_stale,
            };
            self.count();
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_map(key)))
                .update_expression(update_expression)
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(out) => {
                    return out.attributes().map(from_map).unwrap_or_else(|| {
                        Err(StoreError::Failure("UpdateItem returned no item".into()))
                    });
                }
                Err(e) if is_conditional_failure(&e) => {
                    let old = e.as_service_error().and_then(|s| match s {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                            c.item().cloned()
                        }
                        _ => None,
                    });
                    let stale = match &old {
                        Some(m) if !m.is_empty() => !from_map(m)?.is_live(now),
                        _ => false,
                    };
                    if stale && attempt == 0 {
                        self.delete_if_expired(key, now).await?;
                        continue;
                    }
                    return Err(StoreError::condition_failed(live(old.as_ref(), now)?));
                }
                Err(e) => return Err(map_error(&e)),
            }
        }
        Err(StoreError::Busy(
            "the item kept changing under the update".into(),
        ))
    }

    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        let mut expr = Expr::default();
        let condition = expr.cond(&cond, now);
        self.count();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => live(out.attributes(), now),
            Err(e) if is_conditional_failure(&e) => {
                let old = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c) => {
                        c.item().cloned()
                    }
                    _ => None,
                });
                Err(StoreError::condition_failed(live(old.as_ref(), now)?))
            }
            Err(e) => Err(map_error(&e)),
        }
    }

    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let mut expr = Expr::default();
        let (pk_n, pk_v) = (expr.name(PK), expr.value(AttributeValue::S(pk.to_owned())));
        let key_condition = if sk_prefix.is_empty() {
            format!("{pk_n} = {pk_v}")
        } else {
            let (sk_n, sk_v) = (
                expr.name(SK),
                expr.value(AttributeValue::S(sk_prefix.to_owned())),
            );
            format!("{pk_n} = {pk_v} AND begins_with({sk_n}, {sk_v})")
        };
        let filter = expr.unexpired(now);
        let (names, values) = (expr.names(), expr.values());
        self.read_pages(limit, now, |start| {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_condition)
                .filter_expression(&filter)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start);
            async move {
                let page = request.send().await.map_err(|e| map_error(&e))?;
                Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
            }
        })
        .await
    }

    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        let mut expr = Expr::default();
        let (sk_n, sk_v) = (expr.name(SK), expr.value(AttributeValue::S(sk.to_owned())));
        let filter = format!("{sk_n} = {sk_v} AND {}", expr.unexpired(now));
        let (names, values) = (expr.names(), expr.values());
        self.read_pages(limit, now, |start| {
            let request = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start);
            async move {
                let page = request.send().await.map_err(|e| map_error(&e))?;
                Ok((page.items.unwrap_or_default(), page.last_evaluated_key))
            }
        })
        .await
    }

    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        validate_tx(&ops)?;
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let mut items = Vec::with_capacity(ops.len());
        for op in &ops {
            let mut expr = Expr::default();
            let item = match op {
                TxOp::Put { item, cond } => {
                    let condition = expr.cond(cond, now);
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(item_map(item)))
                                .set_condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(invalid)?,
                        )
                        .build()
                }
                TxOp::Delete { key, cond } => {
                    let condition = expr.cond(cond, now);
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_map(key)))
                                .set_condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(invalid)?,
                        )
                        .build()
                }
                TxOp::Check { key, cond } => {
                    let condition = expr.cond(cond, now).unwrap_or_else(|| expr.always());
                    TransactWriteItem::builder()
                        .condition_check(
                            ConditionCheck::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_map(key)))
                                .condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .build()
                                .map_err(invalid)?,
                        )
                        .build()
                }
            };
            items.push(item);
        }
        self.count();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let reasons = c.cancellation_reasons();
                    if let Some(index) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(StoreError::TxConditionFailed { index });
                    }
                    return Err(StoreError::Busy("transaction cancelled (conflict)".into()));
                }
                Err(map_error(&e))
            }
        }
    }
}

impl DynamoStore {
    /// Reads pages of a query or scan until `limit` live items are found or none are left.
    /// `page` sends one request from the given start key and answers its items and the key to
    /// read on from. Each page is one call, counted.
    async fn read_pages<F, Fut>(
        &self,
        limit: usize,
        now: i64,
        mut page: F,
    ) -> Result<Vec<Item>, StoreError>
    where
        F: FnMut(Option<AvMap>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<AvMap>, Option<AvMap>), StoreError>>,
    {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            self.count();
            let (items, last) = page(start.take()).await?;
            for map in &items {
                if let Some(item) = live(Some(map), now)? {
                    out.push(item);
                }
            }
            match last {
                Some(next) if out.len() < limit => start = Some(next),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn delete_if_expired(&self, key: &Key, now: i64) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let (exp, now_v) = (expr.name(EXP), expr.now(now));
        self.count();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_map(key)))
            .condition_expression(format!("{exp} <= {now_v}"))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(map_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::store::CmpOp;

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

    #[test]
    fn conditions_are_expiry_aware() {
        let mut e = Expr::default();
        let c = e
            .cond(
                &Cond::And(vec![
                    Cond::Exists,
                    Cond::missing_or("attempts", CmpOp::Lt, 6),
                ]),
                100,
            )
            .unwrap();
        assert!(c.contains("attribute_exists(#n0)"), "{c}");
        assert!(c.contains("> :now"), "{c}");
        assert!(
            c.contains("<= :now"),
            "missing counts an expired item as absent: {c}"
        );
        assert_eq!(e.names.get("#n0").map(String::as_str), Some("pk"));
        let mut e = Expr::default();
        assert_eq!(e.cond(&Cond::Always, 1), None);
        let mut e = Expr::default();
        let c = e
            .cond(&Cond::Or(vec![Cond::Always, Cond::Exists]), 1)
            .unwrap();
        assert!(
            c.contains("attribute_exists(#n0) OR attribute_not_exists(#n0)"),
            "{c}"
        );
    }

    #[test]
    fn update_expressions_group_clauses() {
        let mut e = Expr::default();
        let u = e.update(
            &Update::new()
                .set("a", 1)
                .add("n", 2)
                .remove("r")
                .expire_at(5),
        );
        assert!(
            u.starts_with("SET ") && u.contains(" ADD ") && u.contains(" REMOVE "),
            "{u}"
        );
        let mut e = Expr::default();
        assert!(e.update(&Update::new()).starts_with("REMOVE "));
        let mut e = Expr::default();
        assert!(
            e.update(&Update::new().never_expire())
                .starts_with("REMOVE ")
        );
    }
}

/// The IAM actions each store operation needs on the table, for least-privilege policies
/// (`template.yaml`; a test derives each function's policy from the operations it was seen
/// to make).
pub mod iam {
    pub const GET: &[&str] = &["dynamodb:GetItem"];
    pub const PUT: &[&str] = &["dynamodb:PutItem"];
    /// `UpdateItem`, plus the conditional `DeleteItem` of an expired item in the way.
    pub const UPDATE: &[&str] = &["dynamodb:UpdateItem", "dynamodb:DeleteItem"];
    pub const DELETE: &[&str] = &["dynamodb:DeleteItem"];
    pub const QUERY: &[&str] = &["dynamodb:Query"];
    pub const SCAN: &[&str] = &["dynamodb:Scan"];
    /// Transactions are authorised per item: these plus the actions of their ops.
    pub const TX_PUT: &[&str] = &["dynamodb:PutItem"];
    pub const TX_DELETE: &[&str] = &["dynamodb:DeleteItem"];
    pub const TX_CHECK: &[&str] = &["dynamodb:ConditionCheckItem"];
}
