//! Bearer tokens already checked, kept while the store has not changed.
//!
//! Why: `GET customers/me` is a storefront's most frequent call, and its token check (the
//! token's parse, its two HMACs, the user's row and its decoding) was 23% of the local server's
//! CPU under load (`perf record -g`; infra/BENCH.md, "Run of 2026-11-28, morning"). A
//! storefront sends the same token again and again.
//!
//! When a kept answer may be used: the store's version ([`Store::version`]) is the one read
//! before the check read the rows it rests on, so no row has changed since (a revocation, a
//! role or a password changed, an account locked: any write, by this process or another), and
//! the token still passes the checks that depend on the time ([`KeySet::still_valid`]: its key
//! still accepted, not expired). Everything else the check looked at is in the token's bytes,
//! which are the key (kept as their SHA-256: the memo holds no credential). A store that
//! cannot tell its version (DynamoDB) keeps nothing, and every request is checked in full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::crypto::jwt::Recheck;
use crate::crypto::keys::KeySet;
use crate::store::{Store, StoreVersion};

/// Tokens kept at most; when full, the memo starts again empty.
const CAPACITY: usize = 4096;

pub struct TokenMemo<P> {
    kept: Mutex<Kept<P>>,
}

struct Kept<P> {
    version: Option<StoreVersion>,
    /// By the token's SHA-256; shared, so that a hit copies its answer outside the lock.
    tokens: HashMap<[u8; 32], Arc<(P, Recheck)>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl<P: Clone> Default for TokenMemo<P> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(Kept {
                version: None,
                tokens: HashMap::new(),
            }),
        }
    }
}

impl<P: Clone> TokenMemo<P> {
    /// What `token` was found to speak for, if it was kept at the store's version `now_version`
    /// (read before this request's own reads) and still passes its time checks at `now`.
    pub fn get(
        &self,
        keys: &KeySet,
        now_version: Option<StoreVersion>,
        token: &str,
        now: i64,
    ) -> Option<P> {
        let now_version = now_version?;
        let key = digest(token);
        let entry = {
            let kept = self.kept.lock().ok()?;
            if kept.version != Some(now_version) {
                return None;
            }
            kept.tokens.get(&key)?.clone()
        };
        let (principal, recheck) = entry.as_ref();
        keys.still_valid(recheck, now).then(|| principal.clone())
    }

    /// Keeps what `token` speaks for, found by a check whose reads came after the store was at
    /// `version`. Kept only if the store is still there now: a write in between could have
    /// changed what those reads saw.
    pub fn keep(
        &self,
        store: &dyn Store,
        version: Option<StoreVersion>,
        token: &str,
        principal: P,
        recheck: Recheck,
    ) {
        let Some(version) = version else {
            return;
        };
        let key = digest(token);
        let entry = Arc::new((principal, recheck));
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if store.version() != Some(version) {
            return;
        }
        if kept.version != Some(version) || kept.tokens.len() >= CAPACITY {
            kept.version = Some(version);
            kept.tokens.clear();
        }
        kept.tokens.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::KeySetFile;
    use crate::store::{Cond, Item, Key, MemoryStore, Value};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;

    struct Fixture {
        keys: KeySet,
        store: MemoryStore,
        memo: TokenMemo<String>,
        token: String,
        recheck: Recheck,
    }

    async fn fixture() -> Fixture {
        let keys = KeySet::from_file(&KeySetFile::test_fixture()).unwrap();
        let token = keys
            .sign_hs256_bound(&json!({"uid": 7, "iat": NOW, "exp": NOW + 3600}), b"user:7")
            .unwrap();
        let (_, recheck) = keys
            .peek_hs256::<serde_json::Value>(&token, NOW, 0)
            .unwrap()
            .verify_rechecked(&keys, b"user:7")
            .unwrap();
        let store = MemoryStore::new();
        write(&store, "a").await;
        Fixture {
            keys,
            store,
            memo: TokenMemo::default(),
            token,
            recheck,
        }
    }

    impl Fixture {
        /// Keeps the fixture's token as speaking for "alice", checked at `version`.
        fn keep_alice(&self, version: Option<StoreVersion>) {
            self.memo.keep(
                &self.store,
                version,
                &self.token,
                "alice".into(),
                self.recheck.clone(),
            );
        }
    }

    async fn write(store: &MemoryStore, value: &str) {
        let mut item = Item::new(Key::new("USER#7", "PROFILE"));
        item.attrs.insert("v".into(), Value::S(value.into()));
        store.put(item, Cond::Always, NOW).await.unwrap();
    }

    #[tokio::test]
    async fn kept_while_the_store_is_unchanged_and_dropped_by_any_write() {
        let f = fixture().await;
        let version = f.store.version();
        assert!(version.is_some(), "the memory store tells its version");
        let get = || f.memo.get(&f.keys, f.store.version(), &f.token, NOW + 1);
        assert_eq!(get(), None, "nothing kept yet");
        f.keep_alice(version);
        assert_eq!(get().as_deref(), Some("alice"));
        assert_eq!(
            f.memo
                .get(&f.keys, f.store.version(), "another.token.here", NOW + 1),
            None,
            "only the token kept"
        );
        write(&f.store, "b").await;
        assert_eq!(get(), None, "a write moves the version on");
        assert_eq!(
            f.memo.get(&f.keys, version, &f.token, NOW + 1),
            Some("alice".into()),
            "(kept under the old version, which no request reads any more)"
        );
    }

    #[tokio::test]
    async fn a_check_the_store_moved_past_is_not_kept() {
        let f = fixture().await;
        let before = f.store.version();
        write(&f.store, "b").await;
        f.keep_alice(before);
        assert_eq!(f.memo.get(&f.keys, before, &f.token, NOW + 1), None);
        assert_eq!(
            f.memo.get(&f.keys, f.store.version(), &f.token, NOW + 1),
            None
        );
    }

    #[tokio::test]
    async fn a_kept_token_still_expires() {
        let f = fixture().await;
        let version = f.store.version();
        f.keep_alice(version);
        assert!(f.memo.get(&f.keys, version, &f.token, NOW + 3599).is_some());
        assert_eq!(f.memo.get(&f.keys, version, &f.token, NOW + 3600), None);
    }

    #[tokio::test]
    async fn a_store_without_a_version_keeps_nothing() {
        let f = fixture().await;
        f.keep_alice(None);
        assert_eq!(
            f.memo.get(&f.keys, f.store.version(), &f.token, NOW + 1),
            None
        );
        assert_eq!(f.memo.get(&f.keys, None, &f.token, NOW + 1), None);
    }
}
