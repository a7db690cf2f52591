//! The store contract: what every adapter of the store port must do, written once and run
//! unchanged against the in-memory fake, the embedded SQLite store and DynamoDB.
//!
//! Each case takes a store and a namespace that it prefixes to every partition key, so cases
//! can share one table. Time is passed explicitly ([`NOW`]), as the port demands.
//! [`store_contract_suite!`](crate::store_contract_suite) turns every case into a test for a
//! given store factory.

use std::sync::Arc;

use latchkey_core::store::{
    CmpOp, Cond, ExpiryChange, Item, Key, MAX_TX_OPS, Store, StoreError, TxOp, Update, Value,
};

pub const NOW: i64 = 2_000_000_000;

fn key(ns: &str, pk: &str, sk: &str) -> Key {
    Key::new(format!("{ns}#{pk}"), sk)
}

fn failed_with(result: Result<impl std::fmt::Debug, StoreError>) -> Option<Item> {
    match result {
        Err(StoreError::ConditionFailed { current }) => current.map(|b| *b),
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
}

pub async fn get_of_missing_is_none(store: Arc<dyn Store>, ns: &str) {
    assert_eq!(store.get(&key(ns, "nobody", "X"), NOW).await.unwrap(), None);
}

pub async fn every_value_kind_round_trips(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "values", "V");
    let item = Item::new(k.clone())
        .with("s", "text with ünïcödé and \"quotes\"")
        .with("empty", "")
        .with("min", i64::MIN)
        .with("max", i64::MAX)
        .with("zero", 0)
        .with("bytes", vec![0u8, 1, 255])
        .with("no_bytes", Vec::<u8>::new())
        .with("t", true)
        .with("f", false)
        .with(
            "list",
            Value::L(vec![
                Value::S("a".into()),
                Value::N(-1),
                Value::L(vec![Value::Bool(true)]),
                Value::B(vec![7]),
            ]),
        )
        .with("empty_list", Value::L(vec![]))
        .expiring_at(NOW + 100);
    store.put(item.clone(), Cond::Always, NOW).await.unwrap();
    assert_eq!(store.get(&k, NOW).await.unwrap(), Some(item));
}

pub async fn put_not_exists_fails_over_live_and_succeeds_over_expired(
    store: Arc<dyn Store>,
    ns: &str,
) {
    let k = key(ns, "create", "C");
    let first = Item::new(k.clone()).with("n", 1).expiring_at(NOW + 10);
    store
        .put(first.clone(), Cond::NotExists, NOW)
        .await
        .unwrap();
    let current = failed_with(
        store
            .put(Item::new(k.clone()).with("n", 2), Cond::NotExists, NOW)
            .await,
    );
    assert_eq!(current, Some(first), "the failure carries the live item");
    assert_eq!(
        store.get(&k, NOW).await.unwrap().unwrap().num("n"),
        Some(1),
        "nothing changed"
    );
    // Ten seconds later the first item has expired: it no longer blocks a create.
    let later = NOW + 10;
    store
        .put(Item::new(k.clone()).with("n", 3), Cond::NotExists, later)
        .await
        .unwrap();
    assert_eq!(
        store.get(&k, later).await.unwrap().unwrap().num("n"),
        Some(3)
    );
}

pub async fn expired_items_are_invisible(store: Arc<dyn Store>, ns: &str) {
    let pk = format!("{ns}#exp");
    let k = Key::new(pk.clone(), "A");
    store
        .put(
            Item::new(k.clone()).with("x", 1).expiring_at(NOW + 1),
            Cond::Always,
            NOW,
        )
        .await
        .unwrap();
    assert!(
        store.get(&k, NOW).await.unwrap().is_some(),
        "expires_at = now + 1 is live"
    );
    assert!(
        store.get(&k, NOW + 1).await.unwrap().is_none(),
        "expires_at = now is expired"
    );
    assert_eq!(store.query(&pk, "", 10, NOW + 1).await.unwrap(), vec![]);
    let sk = format!("{ns}-EXPSK");
    store
        .put(
            Item::new(Key::new(pk.clone(), sk.clone())).expiring_at(NOW),
            Cond::Always,
            NOW - 5,
        )
        .await
        .unwrap();
    assert_eq!(store.scan_sk(&sk, 10, NOW).await.unwrap(), vec![]);
    assert!(store.scan_sk(&sk, 10, NOW - 1).await.unwrap().len() == 1);
    assert_eq!(
        failed_with(
            store
                .update(&k, Update::new().set("x", 2), Cond::Exists, NOW + 1)
                .await
        ),
        None
    );
    assert_eq!(
        store.delete(&k, Cond::Always, NOW + 1).await.unwrap(),
        None,
        "deleting an expired item returns nothing"
    );
}

pub async fn conditions_hold_and_fail_as_documented(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "conds", "C");
    let item = Item::new(k.clone()).with("n", 5).with("s", "on");
    store.put(item.clone(), Cond::Always, NOW).await.unwrap();
    let holding = [
        Cond::Exists,
        Cond::eq("s", "on"),
        Cond::eq("n", 5),
        Cond::cmp("n", CmpOp::Lt, 6),
        Cond::cmp("n", CmpOp::Le, 5),
        Cond::cmp("n", CmpOp::Gt, 4),
        Cond::cmp("n", CmpOp::Ge, 5),
        Cond::missing("absent"),
        Cond::missing_or("absent", CmpOp::Lt, 0),
        Cond::missing_or("n", CmpOp::Lt, 6),
        Cond::And(vec![
            Cond::Exists,
            Cond::eq("s", "on"),
            Cond::cmp("n", CmpOp::Ge, 5),
        ]),
        Cond::Or(vec![Cond::eq("s", "off"), Cond::eq("n", 5)]),
    ];
    for (i, cond) in holding.into_iter().enumerate() {
        let written = store
            .update(
                &k,
                Update::new().set("touched", i as i64),
                cond.clone(),
                NOW,
            )
            .await;
        assert_eq!(
            written
                .unwrap_or_else(|e| panic!("{cond:?}: {e}"))
                .num("touched"),
            Some(i as i64)
        );
    }
    let before = store.get(&k, NOW).await.unwrap();
    let failing = [
        Cond::NotExists,
        Cond::eq("s", "off"),
        Cond::eq("n", "5"),
        Cond::eq("absent", 1),
        Cond::cmp("n", CmpOp::Lt, 5),
        Cond::cmp("n", CmpOp::Le, 4),
        Cond::cmp("n", CmpOp::Gt, 5),
        Cond::cmp("n", CmpOp::Ge, 6),
        Cond::cmp("s", CmpOp::Lt, 100),
        Cond::cmp("absent", CmpOp::Lt, 100),
        Cond::missing("n"),
        Cond::missing_or("n", CmpOp::Lt, 5),
        Cond::And(vec![Cond::Exists, Cond::eq("s", "off")]),
        Cond::Or(vec![Cond::eq("s", "off"), Cond::missing("s")]),
    ];
    for cond in failing {
        let current = failed_with(
            store
                .update(
                    &k,
                    Update::new().set("touched", -1).add("n", 100),
                    cond.clone(),
                    NOW,
                )
                .await,
        );
        assert_eq!(
            current, before,
            "{cond:?}: the failure carries the unchanged item"
        );
    }
    assert_eq!(
        store.get(&k, NOW).await.unwrap(),
        before,
        "failed updates changed nothing"
    );
    // On an absent item: only NotExists and Missing hold.
    let absent = key(ns, "conds", "ABSENT");
    assert_eq!(
        failed_with(
            store
                .update(&absent, Update::new().set("a", 1), Cond::Exists, NOW)
                .await
        ),
        None
    );
    assert_eq!(
        failed_with(
            store
                .update(
                    &absent,
                    Update::new().set("a", 1),
                    Cond::cmp("n", CmpOp::Lt, 9),
                    NOW
                )
                .await
        ),
        None
    );
    store
        .update(
            &absent,
            Update::new().set("a", 1),
            Cond::And(vec![Cond::NotExists, Cond::missing("n")]),
            NOW,
        )
        .await
        .unwrap();
}

pub async fn update_creates_adds_sets_removes_and_expires(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "upd", "U");
    let written = store
        .update(
            &k,
            Update::new()
                .add("count", 3)
                .set("name", "x")
                .expire_at(NOW + 60),
            Cond::Always,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        written.num("count"),
        Some(3),
        "ADD on a missing attribute starts from 0"
    );
    assert_eq!(written.str("name"), Some("x"));
    assert_eq!(written.expires_at, Some(NOW + 60));
    assert_eq!(written.key, k);
    let written = store
        .update(
            &k,
            Update::new().add("count", -5).remove("name"),
            Cond::Exists,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(written.num("count"), Some(-2));
    assert_eq!(written.get("name"), None);
    assert_eq!(written.expires_at, Some(NOW + 60), "Keep leaves the expiry");
    let written = store
        .update(
            &k,
            Update {
                expiry: ExpiryChange::Clear,
                ..Update::new()
            },
            Cond::Exists,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(written.expires_at, None);
    assert_eq!(
        store.get(&k, NOW + 1_000_000).await.unwrap(),
        Some(written),
        "no expiry: lives forever"
    );
    // Removing an attribute that is not there is fine.
    store
        .update(&k, Update::new().remove("never"), Cond::Exists, NOW)
        .await
        .unwrap();
}

pub async fn update_over_an_expired_item_starts_empty(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "stale", "S");
    store
        .put(
            Item::new(k.clone())
                .with("count", 41)
                .with("stale", "yes")
                .expiring_at(NOW),
            Cond::Always,
            NOW - 100,
        )
        .await
        .unwrap();
    let written = store
        .update(
            &k,
            Update::new().add("count", 1).expire_at(NOW + 60),
            Cond::missing_or("count", CmpOp::Lt, 10),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        written.num("count"),
        Some(1),
        "the expired counter does not carry over"
    );
    assert_eq!(
        written.get("stale"),
        None,
        "no stale attribute leaks into the new item"
    );
    assert_eq!(store.get(&k, NOW).await.unwrap(), Some(written));
}

/// `Store::version`, where a store tells one: unchanged by reads, moved on by every kind of
/// write (put, update, delete, transaction) once it returns. A store that cannot tell
/// (DynamoDB) says `None` throughout.
pub async fn the_version_moves_with_every_write_and_only_then(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "ver", "V");
    let other = key(ns, "ver", "W");
    let Some(start) = store.version() else {
        store
            .put(Item::new(k.clone()), Cond::Always, NOW)
            .await
            .unwrap();
        assert_eq!(
            store.version(),
            None,
            "a store without a version has none after a write"
        );
        return;
    };
    store.get(&k, NOW).await.unwrap();
    store
        .get_many(&[k.clone(), other.clone()], NOW)
        .await
        .unwrap();
    store
        .query(&format!("{ns}#ver"), "", 10, NOW)
        .await
        .unwrap();
    assert_eq!(store.version(), Some(start), "reads leave it");

    let mut seen = vec![start];
    let mut moved = |what: &str| {
        let now = store
            .version()
            .expect("a store with a version keeps telling it");
        assert!(!seen.contains(&now), "{what} moves the version on");
        seen.push(now);
    };
    store
        .put(Item::new(k.clone()).with("v", 1), Cond::Always, NOW)
        .await
        .unwrap();
    moved("a put");
    store
        .update(&k, Update::new().add("v", 1), Cond::Always, NOW)
        .await
        .unwrap();
    moved("an update");
    store
        .transact(
            vec![
                TxOp::Put {
                    item: Item::new(other.clone()),
                    cond: Cond::NotExists,
                },
                TxOp::Check {
                    key: k.clone(),
                    cond: Cond::eq("v", 2),
                },
            ],
            NOW,
        )
        .await
        .unwrap();
    moved("a transaction");
    store.delete(&k, Cond::Always, NOW).await.unwrap();
    moved("a delete");
    let settled = store.version();
    assert_eq!(store.get(&k, NOW).await.unwrap(), None);
    assert_eq!(store.version(), settled, "and nothing else does");
}

pub async fn delete_returns_what_it_removed(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "del", "D");
    let item = Item::new(k.clone())
        .with("code", "h4sh")
        .expiring_at(NOW + 300);
    store.put(item.clone(), Cond::Always, NOW).await.unwrap();
    let current = failed_with(store.delete(&k, Cond::eq("code", "other"), NOW).await);
    assert_eq!(current, Some(item.clone()));
    assert_eq!(
        store.delete(&k, Cond::Exists, NOW).await.unwrap(),
        Some(item)
    );
    assert_eq!(store.get(&k, NOW).await.unwrap(), None);
    assert_eq!(store.delete(&k, Cond::Always, NOW).await.unwrap(), None);
    assert_eq!(failed_with(store.delete(&k, Cond::Exists, NOW).await), None);
}

pub async fn query_orders_filters_and_limits(store: Arc<dyn Store>, ns: &str) {
    let pk = format!("{ns}#q");
    for sk in ["B#2", "A#1", "B#1", "B#10", "C#1", "b#1", "B_1", "B%1"] {
        store
            .put(
                Item::new(Key::new(pk.clone(), sk)).with("name", sk),
                Cond::Always,
                NOW,
            )
            .await
            .unwrap();
    }
    store
        .put(
            Item::new(Key::new(format!("{ns}#q2"), "B#1")),
            Cond::Always,
            NOW,
        )
        .await
        .unwrap();
    store
        .put(
            Item::new(Key::new(pk.clone(), "B#0")).expiring_at(NOW),
            Cond::Always,
            NOW - 1,
        )
        .await
        .unwrap();
    let sks = |items: Vec<Item>| items.into_iter().map(|i| i.key.sk).collect::<Vec<_>>();
    assert_eq!(
        sks(store.query(&pk, "B#", 100, NOW).await.unwrap()),
        ["B#1", "B#10", "B#2"]
    );
    assert_eq!(
        sks(store.query(&pk, "B#", 2, NOW).await.unwrap()),
        ["B#1", "B#10"]
    );
    assert_eq!(
        sks(store.query(&pk, "B_", 100, NOW).await.unwrap()),
        ["B_1"],
        "no wildcards in prefixes"
    );
    assert_eq!(store.query(&pk, "", 100, NOW).await.unwrap().len(), 8);
    assert_eq!(
        store
            .query(&format!("{ns}#none"), "", 100, NOW)
            .await
            .unwrap(),
        vec![]
    );
}

pub async fn scan_by_sort_key_crosses_partitions(store: Arc<dyn Store>, ns: &str) {
    let sk = format!("{ns}-PROFILE");
    for i in 0..5 {
        store
            .put(
                Item::new(Key::new(format!("{ns}#user{i}"), sk.clone())).with("i", i),
                Cond::Always,
                NOW,
            )
            .await
            .unwrap();
    }
    store
        .put(
            Item::new(Key::new(format!("{ns}#user0"), "OTHER")),
            Cond::Always,
            NOW,
        )
        .await
        .unwrap();
    let mut found: Vec<i64> = store
        .scan_sk(&sk, 100, NOW)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| i.num("i"))
        .collect();
    found.sort_unstable();
    assert_eq!(found, [0, 1, 2, 3, 4]);
    assert_eq!(store.scan_sk(&sk, 2, NOW).await.unwrap().len(), 2);
}

pub async fn transactions_are_all_or_nothing(store: Arc<dyn Store>, ns: &str) {
    let a = key(ns, "tx", "A");
    let b = key(ns, "tx", "B");
    let c = key(ns, "tx", "C");
    store
        .put(Item::new(c.clone()).with("v", 1), Cond::Always, NOW)
        .await
        .unwrap();
    store
        .transact(
            vec![
                TxOp::Put {
                    item: Item::new(a.clone()).with("v", 1),
                    cond: Cond::NotExists,
                },
                TxOp::Put {
                    item: Item::new(b.clone()).with("v", 1),
                    cond: Cond::NotExists,
                },
                TxOp::Check {
                    key: c.clone(),
                    cond: Cond::eq("v", 1),
                },
            ],
            NOW,
        )
        .await
        .unwrap();
    assert!(
        store.get(&a, NOW).await.unwrap().is_some() && store.get(&b, NOW).await.unwrap().is_some()
    );
    let d = key(ns, "tx", "D");
    let result = store
        .transact(
            vec![
                TxOp::Put {
                    item: Item::new(d.clone()).with("v", 1),
                    cond: Cond::NotExists,
                },
                TxOp::Delete {
                    key: a.clone(),
                    cond: Cond::Exists,
                },
                TxOp::Put {
                    item: Item::new(b.clone()).with("v", 2),
                    cond: Cond::NotExists,
                },
            ],
            NOW,
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::TxConditionFailed { index: 2 })),
        "{result:?}"
    );
    assert_eq!(store.get(&d, NOW).await.unwrap(), None, "nothing applied");
    assert!(store.get(&a, NOW).await.unwrap().is_some());
    let check_fails = store
        .transact(
            vec![
                TxOp::Check {
                    key: c.clone(),
                    cond: Cond::eq("v", 2),
                },
                TxOp::Delete {
                    key: a.clone(),
                    cond: Cond::Always,
                },
            ],
            NOW,
        )
        .await;
    assert!(matches!(
        check_fails,
        Err(StoreError::TxConditionFailed { index: 0 })
    ));
    assert!(store.get(&a, NOW).await.unwrap().is_some());
    store
        .transact(
            vec![
                TxOp::Delete {
                    key: a.clone(),
                    cond: Cond::Exists,
                },
                TxOp::Delete {
                    key: b.clone(),
                    cond: Cond::eq("v", 1),
                },
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(store.get(&a, NOW).await.unwrap(), None);
    assert_eq!(store.get(&b, NOW).await.unwrap(), None);
}

pub async fn invalid_requests_are_refused(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "inv", "I");
    let dup = vec![
        TxOp::Check {
            key: k.clone(),
            cond: Cond::Always,
        },
        TxOp::Delete {
            key: k.clone(),
            cond: Cond::Always,
        },
    ];
    assert!(matches!(
        store.transact(dup, NOW).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.transact(vec![], NOW).await,
        Err(StoreError::Invalid(_))
    ));
    let many = (0..=MAX_TX_OPS)
        .map(|i| TxOp::Check {
            key: key(ns, "inv", &i.to_string()),
            cond: Cond::Always,
        })
        .collect();
    assert!(matches!(
        store.transact(many, NOW).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .update(&k, Update::new().set("a", 1).add("a", 1), Cond::Always, NOW)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .update(&k, Update::new().set("pk", "x"), Cond::Always, NOW)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let reserved = Item::new(k.clone()).with("expires_at", 5);
    assert!(matches!(
        store.put(reserved.clone(), Cond::Always, NOW).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .transact(
                vec![TxOp::Put {
                    item: reserved,
                    cond: Cond::Always
                }],
                NOW
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.get(&k, NOW).await.unwrap(),
        None,
        "nothing was written"
    );
}

/// Runs `n` copies of `f` at once (released together by a barrier) and returns their results.
pub async fn race<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let fut = f(i);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub async fn fifty_racers_consume_a_single_use_item_once(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "race", "CODE");
    store
        .put(
            Item::new(k.clone())
                .with("code", "x")
                .expiring_at(NOW + 600),
            Cond::Always,
            NOW,
        )
        .await
        .unwrap();
    let results = race(50, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move { store.delete(&k, Cond::Exists, NOW).await }
    })
    .await;
    let winners = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    let losers = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed { .. })))
        .count();
    assert_eq!((winners, losers), (1, 49), "{results:?}");
}

pub async fn fifty_racers_get_exactly_ten_counter_slots(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "race", "LIMIT");
    let results = race(50, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move {
            store
                .update(
                    &k,
                    Update::new().add("n", 1),
                    Cond::missing_or("n", CmpOp::Lt, 10),
                    NOW,
                )
                .await
        }
    })
    .await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 10);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::ConditionFailed { .. })))
    );
    let mut seen: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|i| i.num("n"))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<_>>(),
        "each winner saw its own count"
    );
    assert_eq!(
        store.get(&k, NOW).await.unwrap().unwrap().num("n"),
        Some(10)
    );
}

pub async fn fifty_racers_create_one_item_once(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "race", "UNIQUE");
    let results = race(50, |i| {
        let (store, k) = (store.clone(), k.clone());
        async move {
            store
                .put(Item::new(k).with("winner", i as i64), Cond::NotExists, NOW)
                .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let winner = results.iter().position(|r| r.is_ok()).unwrap() as i64;
    assert_eq!(
        store.get(&k, NOW).await.unwrap().unwrap().num("winner"),
        Some(winner)
    );
}

pub async fn fifty_unconditional_increments_all_count(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "race", "COUNT");
    race(50, |_| {
        let (store, k) = (store.clone(), k.clone());
        async move {
            store
                .update(&k, Update::new().add("n", 1), Cond::Always, NOW)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(
        store.get(&k, NOW).await.unwrap().unwrap().num("n"),
        Some(50)
    );
}

pub async fn transactions_update_items_and_start_expired_ones_afresh(
    store: Arc<dyn Store>,
    ns: &str,
) {
    let counter = key(ns, "txu", "COUNTER");
    let stale = key(ns, "txu", "STALE");
    store
        .put(
            Item::new(stale.clone())
                .with("n", 40)
                .with("old", "x")
                .expiring_at(NOW),
            Cond::Always,
            NOW - 10,
        )
        .await
        .unwrap();
    let ops = |limit: i64| {
        vec![
            TxOp::Update {
                key: counter.clone(),
                update: Update::new().add("n", 1).expire_at(NOW + 60),
                cond: Cond::missing_or("n", CmpOp::Lt, limit),
            },
            TxOp::Update {
                key: stale.clone(),
                update: Update::new().add("n", 1).set_if_missing("first", NOW),
                cond: Cond::missing_or("n", CmpOp::Lt, limit),
            },
        ]
    };
    store.transact(ops(2), NOW).await.unwrap();
    let c = store.get(&counter, NOW).await.unwrap().unwrap();
    assert_eq!((c.num("n"), c.expires_at), (Some(1), Some(NOW + 60)));
    let s = store.get(&stale, NOW).await.unwrap().unwrap();
    assert_eq!(
        s.num("n"),
        Some(1),
        "the expired item's count did not carry over"
    );
    assert_eq!(s.str("old"), None, "nor its other attributes");
    assert_eq!(s.num("first"), Some(NOW));
    store.transact(ops(2), NOW + 1).await.unwrap();
    let s = store.get(&stale, NOW + 1).await.unwrap().unwrap();
    assert_eq!(
        s.num("first"),
        Some(NOW),
        "set-if-missing keeps the first value"
    );
    let refused = store.transact(ops(2), NOW + 2).await;
    assert!(
        matches!(refused, Err(StoreError::TxConditionFailed { index: 0 })),
        "{refused:?}"
    );
    assert_eq!(
        store
            .get(&counter, NOW + 2)
            .await
            .unwrap()
            .unwrap()
            .num("n"),
        Some(2),
        "a refused transaction changed nothing"
    );
}

pub async fn get_many_reads_live_items_in_order(store: Arc<dyn Store>, ns: &str) {
    let a = key(ns, "many", "A");
    let b = key(ns, "many", "B");
    let gone = key(ns, "many", "GONE");
    let absent = key(ns, "many", "ABSENT");
    store
        .put(Item::new(a.clone()).with("v", 1), Cond::Always, NOW)
        .await
        .unwrap();
    store
        .put(Item::new(b.clone()).with("v", 2), Cond::Always, NOW)
        .await
        .unwrap();
    store
        .put(
            Item::new(gone.clone()).expiring_at(NOW),
            Cond::Always,
            NOW - 1,
        )
        .await
        .unwrap();
    let got = store
        .get_many(&[b.clone(), absent.clone(), a.clone(), gone.clone()], NOW)
        .await
        .unwrap();
    let values: Vec<Option<i64>> = got
        .iter()
        .map(|i| i.as_ref().and_then(|i| i.num("v")))
        .collect();
    assert_eq!(values, vec![Some(2), None, Some(1), None]);
    assert!(got[3].is_none(), "an expired item is absent");
    assert!(store.get_many(&[], NOW).await.unwrap().is_empty());
    assert!(matches!(
        store.get_many(&[a.clone(), a.clone()], NOW).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn keys_beyond_dynamodbs_limits_are_refused_everywhere(store: Arc<dyn Store>, ns: &str) {
    let long_pk = Key::new(format!("{ns}#{}", "p".repeat(2048)), "S");
    let long_sk = Key::new(format!("{ns}#ok"), "s".repeat(1025));
    for k in [long_pk, long_sk] {
        assert!(matches!(
            store.get(&k, NOW).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.put(Item::new(k.clone()), Cond::Always, NOW).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store
                .update(&k, Update::new().add("n", 1), Cond::Always, NOW)
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.delete(&k, Cond::Always, NOW).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let at_limit = Key::new(
        format!("{ns}#{}", "p".repeat(2047 - ns.len())),
        "s".repeat(1024),
    );
    assert_eq!(at_limit.pk.len(), 2048);
    store
        .put(Item::new(at_limit.clone()).with("v", 1), Cond::Always, NOW)
        .await
        .unwrap();
    assert!(store.get(&at_limit, NOW).await.unwrap().is_some());
}

pub async fn fifty_racing_transactions_get_exactly_ten_slots(store: Arc<dyn Store>, ns: &str) {
    let k = key(ns, "race", "TXLIMIT");
    let results = race(50, |i| {
        let (store, k) = (store.clone(), k.clone());
        let mine = key(ns, "race", &format!("TXMINE{i}"));
        async move {
            store
                .transact(
                    vec![
                        TxOp::Update {
                            key: k,
                            update: Update::new().add("n", 1),
                            cond: Cond::missing_or("n", CmpOp::Lt, 10),
                        },
                        TxOp::Put {
                            item: Item::new(mine),
                            cond: Cond::NotExists,
                        },
                    ],
                    NOW,
                )
                .await
        }
    })
    .await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 10, "{results:?}");
    assert_eq!(
        store.get(&k, NOW).await.unwrap().unwrap().num("n"),
        Some(10)
    );
}

/// Instantiates every contract case as a test. `$make` is an async expression yielding
/// `(Arc<dyn Store>, String /* namespace */, impl Drop-guard)`.
#[macro_export]
macro_rules! store_contract_suite {
    ($make:expr) => {
        $crate::store_contract_suite!(@cases $make;
            get_of_missing_is_none,
            every_value_kind_round_trips,
            put_not_exists_fails_over_live_and_succeeds_over_expired,
            expired_items_are_invisible,
            conditions_hold_and_fail_as_documented,
            update_creates_adds_sets_removes_and_expires,
            update_over_an_expired_item_starts_empty,
            delete_returns_what_it_removed,
            query_orders_filters_and_limits,
            scan_by_sort_key_crosses_partitions,
            transactions_are_all_or_nothing,
            invalid_requests_are_refused,
            fifty_racers_consume_a_single_use_item_once,
            fifty_racers_get_exactly_ten_counter_slots,
            fifty_racers_create_one_item_once,
            fifty_unconditional_increments_all_count,
            transactions_update_items_and_start_expired_ones_afresh,
            get_many_reads_live_items_in_order,
            keys_beyond_dynamodbs_limits_are_refused_everywhere,
            fifty_racing_transactions_get_exactly_ten_slots,
            the_version_moves_with_every_write_and_only_then,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, ns, _guard) = $make;
                $crate::contract::$case(store, &ns).await;
            }
        )*
    };
}
