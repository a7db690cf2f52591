//! The store contract against every adapter available here, plus what only the embedded store
//! promises: persistence across reopen and atomicity across processes.

use std::process::Command;
use std::sync::Arc;

use latchkey_core::store::{CmpOp, Cond, Item, Key, Store, StoreError, Update};
use latchkey_embedded::store::SqliteStore;
use latchkey_tests::contract::NOW;

mod memory {
    latchkey_tests::store_contract_suite!(latchkey_tests::stores::memory_store().await);
}

mod embedded {
    latchkey_tests::store_contract_suite!(latchkey_tests::stores::sqlite_store().await);
}

/// DynamoDB through `moto_server` (`./scripts/test` starts it).
mod dynamodb {
    latchkey_tests::store_contract_suite!(latchkey_tests::stores::dynamodb_store().await);
}

#[tokio::test]
async fn the_embedded_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let item = Item::new(Key::new("USER#1", "PROFILE"))
        .with("username", "alice")
        .with("n", 7)
        .expiring_at(NOW + 60);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.put(item.clone(), Cond::NotExists, NOW).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get(&item.key, NOW).await.unwrap(), Some(item.clone()));
    assert_eq!(store.sweep_expired(NOW + 60).await.unwrap(), 1);
    assert_eq!(
        store.get(&item.key, NOW).await.unwrap(),
        None,
        "swept rows are gone for good"
    );
}

/// A commit through another store on the same file (as `latchkey user …` makes from its own
/// process) moves this store's version: what the server's memo of checked tokens relies on.
#[tokio::test]
async fn another_stores_commit_moves_the_embedded_stores_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let server = SqliteStore::open(&path).unwrap();
    let key = Key::new("USER#1", "PROFILE");
    server
        .put(Item::new(key.clone()), Cond::Always, NOW)
        .await
        .unwrap();
    let before = server.version();
    assert!(before.is_some(), "a WAL database tells its version");
    let cli = SqliteStore::open(&path).unwrap();
    assert_eq!(
        cli.get(&key, NOW).await.unwrap(),
        Some(Item::new(key.clone()))
    );
    assert_eq!(server.version(), before, "opening and reading are no write");
    cli.update(&key, Update::new().add("generation", 1), Cond::Always, NOW)
        .await
        .unwrap();
    assert_ne!(server.version(), before, "the other store's commit");
}

#[test]
fn a_file_that_is_not_a_store_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    std::fs::write(
        &path,
        b"this is not a database, it is a text file that is long enough to look like a header",
    )
    .unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("not a latchkey store"), "{err}");
}

const HAMMER_ENV: &str = "LATCHKEY_TEST_HAMMER_DB";
const ROUNDS: i64 = 100;
const SLOTS: i64 = 150;

/// One process's share of the cross-process race; prints how many limited slots it won.
async fn hammer(path: &std::path::Path) -> i64 {
    let store = SqliteStore::open(path).unwrap();
    let mut won = 0;
    for _ in 0..ROUNDS {
        store
            .update(
                &Key::new("HAMMER", "COUNT"),
                Update::new().add("n", 1),
                Cond::Always,
                NOW,
            )
            .await
            .unwrap();
        match store
            .update(
                &Key::new("HAMMER", "SLOTS"),
                Update::new().add("n", 1),
                Cond::missing_or("n", CmpOp::Lt, SLOTS),
                NOW,
            )
            .await
        {
            Ok(_) => won += 1,
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    won
}

/// Entry point of the child processes of `processes_share_one_store_atomically`.
#[tokio::test]
#[ignore = "run by processes_share_one_store_atomically as a child process"]
async fn hammer_child() {
    let path = std::env::var(HAMMER_ENV).expect("child mode only");
    println!("WON={}", hammer(std::path::Path::new(&path)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_one_store_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    SqliteStore::open(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "store_contract::hammer_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(HAMMER_ENV, &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mine = hammer(&path).await;
    let mut total = mine;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let won: i64 = text
            .lines()
            .find_map(|l| l.split("WON=").nth(1))
            .expect("child reported")
            .trim()
            .parse()
            .unwrap();
        total += won;
    }
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(
        store
            .get(&Key::new("HAMMER", "COUNT"), NOW)
            .await
            .unwrap()
            .unwrap()
            .num("n"),
        Some(3 * ROUNDS),
        "no increment lost"
    );
    assert_eq!(
        store
            .get(&Key::new("HAMMER", "SLOTS"), NOW)
            .await
            .unwrap()
            .unwrap()
            .num("n"),
        Some(SLOTS)
    );
    assert_eq!(
        total, SLOTS,
        "exactly the limit was granted across three processes"
    );
}
