//! The store port over one DynamoDB table (design: `infra/TABLE.md`), a file per job:
//! [`codec`] (items to attribute values), [`expr`] (conditions and updates as expressions),
//! [`errors`] (SDK failures to the port's errors), [`provision`] (creating the table locally),
//! [`iam`] (the actions each operation needs), and the store itself here.
//!
//! TTL deletion is lazy (it can lag by days), so expiry is enforced here: every read drops
//! expired items and every condition expression treats an expired item as absent. Conditional
//! failures come back with the item as it was (`ReturnValuesOnConditionCheckFailure=ALL_OLD`),
//! so no extra read is needed to report them. Retries with backoff on throttling are the SDK's
//! standard retry strategy (see [`crate::clients`]); what still fails is [`StoreError::Busy`].

pub mod codec;
pub mod errors;
pub mod expr;
pub mod iam;
mod provision;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use latchkey_core::store::{
    Cond, Item, Key, Store, StoreError, TxOp, Update, validate_item, validate_key, validate_keys,
    validate_tx, validate_update,
};

use aws_sdk_dynamodb::types::AttributeValue;
use codec::{AvMap, EXP, PK, SK, from_map, item_map, key_map, live};
use errors::{is_conditional_failure, map_error};
use expr::Expr;

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
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        validate_key(key)?;
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

    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        validate_keys(keys)?;
        let mut found: HashMap<Key, Item> = HashMap::new();
        let mut pending: Vec<AvMap> = keys.iter().map(key_map).collect();
        // BatchGetItem may leave keys unprocessed under load; ask again for those (the SDK's
        // retry strategy covers throttling of the call itself).
        for _ in 0..5 {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            self.count();
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| map_error(&e))?;
            for map in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some(item) = live(Some(map), now)? {
                    found.insert(item.key.clone(), item);
                }
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::Busy(
                "DynamoDB left keys of a batch read unprocessed".into(),
            ));
        }
        Ok(keys.iter().map(|k| found.remove(k)).collect())
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
        validate_key(key)?;
        validate_update(&update)?;
        // At most one retry: after removing an expired item that was in the way.
        for attempt in 0..2 {
            let mut expr = Expr::default();
            let update_expression = expr.update(&update);
            // Updates must not build on an expired item's stale attributes.
            let not_stale = expr.not_stale(now);
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
        validate_key(key)?;
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
        // At most one retry: after removing an expired item that was in an update's way.
        for attempt in 0..2 {
            match self.transact_once(&ops, now).await? {
                TxOutcome::Done => return Ok(()),
                TxOutcome::Stale(index) if attempt == 0 => {
                    if let Some(op) = ops.get(index) {
                        self.delete_if_expired(op.key(), now).await?;
                    }
                }
                TxOutcome::Stale(index) | TxOutcome::Failed(index) => {
                    return Err(StoreError::TxConditionFailed { index });
                }
            }
        }
        Err(StoreError::Busy(
            "the items kept changing under the transaction".into(),
        ))
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

    /// One `TransactWriteItems` call. A refused condition says which op, and whether only an
    /// expired item stood in an update's way (the caller removes it and tries once more).
    async fn transact_once(&self, ops: &[TxOp], now: i64) -> Result<TxOutcome, StoreError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let mut items = Vec::with_capacity(ops.len());
        for op in ops {
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
                TxOp::Update { key, update, cond } => {
                    let update_expression = expr.update(update);
                    let not_stale = expr.not_stale(now);
                    let condition = match expr.cond(cond, now) {
                        Some(c) => format!("{c} AND {not_stale}"),
                        None => not_stale,
                    };
                    TransactWriteItem::builder()
                        .update(
                            aws_sdk_dynamodb::types::Update::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_map(key)))
                                .update_expression(update_expression)
                                .condition_expression(condition)
                                .set_expression_attribute_names(expr.names())
                                .set_expression_attribute_values(expr.values())
                                .return_values_on_condition_check_failure(
                                    ReturnValuesOnConditionCheckFailure::AllOld,
                                )
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
        let error = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(TxOutcome::Done),
            Err(e) => e,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        else {
            return Err(map_error(&error));
        };
        let reasons = cancelled.cancellation_reasons();
        let Some(index) = reasons
            .iter()
            .position(|r| r.code() == Some("ConditionalCheckFailed"))
        else {
            return Err(StoreError::Busy("transaction cancelled (conflict)".into()));
        };
        let stale = matches!(ops.get(index), Some(TxOp::Update { .. }))
            && match reasons.get(index).and_then(|r| r.item()) {
                Some(map) if !map.is_empty() => !from_map(map)?.is_live(now),
                _ => false,
            };
        Ok(if stale {
            TxOutcome::Stale(index)
        } else {
            TxOutcome::Failed(index)
        })
    }
}

/// How one transaction call ended, short of an error.
enum TxOutcome {
    Done,
    /// Op `index` failed its condition.
    Failed(usize),
    /// Op `index`, an update, failed only because an expired item was in its way.
    Stale(usize),
}
