//! An application wired to test doubles — a manual clock, a recording outbox — over any store,
//! and a client that calls it through the same entry point the servers use.
//!
//! Flow tests run on the stores that ship: [`Backend::Sqlite`] (the embedded store) and
//! [`Backend::Dynamodb`] (through the local AWS emulator), each test on a store of its own;
//! [`flow_suite!`](crate::flow_suite) turns one test function into one test per store. The
//! in-memory fake remains for tests that inject a fault.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, StatusCode};
use latchkey_core::config::Config;
use latchkey_core::crypto::SecretString;
use latchkey_core::crypto::keys::{KeySet, KeySetFile};
use latchkey_core::crypto::password::PasswordHasher;
use latchkey_core::crypto::spent::Tally;
use latchkey_core::crypto::totp::TotpSecret;
use latchkey_core::identity::accounts::{self, NewUser};
use latchkey_core::identity::users::{Role, User};
use latchkey_core::ports::{ManualClock, RecordingOutbox, RecordingQueue, SeededRng};
use latchkey_core::store::{MemoryStore, Store};
use latchkey_core::web::Peer;
use latchkey_core::{App, Deps};
use latchkey_embedded::store::SqliteStore;
use serde_json::Value;

use crate::recording::RecordingStore;

/// 2030-03-17: far from any step boundary surprises, fixed so tests repeat.
pub const T0: i64 = 1_900_000_000;

/// Which store a test app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The in-memory fake: for tests that inject a fault.
    Memory,
    /// The embedded SQLite store, in a temporary directory of the test's own.
    Sqlite,
    /// DynamoDB through the local AWS emulator, in a table of the test's own.
    Dynamodb,
}

/// What a password hash costs in a test app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// 256 KiB, one pass: fast tests.
    Cheap,
    /// argon2id's least (8 KiB, one pass, a few microseconds): for timing what a step costs
    /// outside its password hash.
    Minimal,
    /// What ships (19 MiB, t=2): for measurements.
    Owasp,
}

pub struct TestApp {
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub outbox: Arc<RecordingOutbox>,
    /// Requests to email login links, until a test runs the mailer on them.
    pub link_queue: Arc<RecordingQueue>,
    pub store: Arc<dyn Store>,
    pub key_file: KeySetFile,
    pub backend: Backend,
    /// The DynamoDB store, on [`Backend::Dynamodb`] (it counts its calls).
    pub dynamo: Option<latchkey_aws::dynamodb::DynamoStore>,
    /// Keeps an SQLite store's directory alive as long as the app.
    _dir: Option<tempfile::TempDir>,
}

/// A response, with its body both raw and parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl TestApp {
    /// An app on the in-memory fake.
    pub fn new() -> Self {
        Self::with(Arc::new(MemoryStore::new()), &[])
    }

    /// An app on the in-memory fake, with settings overridden.
    pub fn with_settings(settings: &[(&str, &str)]) -> Self {
        Self::with(Arc::new(MemoryStore::new()), settings)
    }

    /// An app on a fresh store of `backend`.
    pub async fn on(backend: Backend) -> Self {
        Self::on_with(backend, &[]).await
    }

    /// An app on a fresh store of `backend`, with settings overridden by `settings`.
    pub async fn on_with(backend: Backend, settings: &[(&str, &str)]) -> Self {
        match backend {
            Backend::Memory => Self::with_settings(settings),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let store =
                    SqliteStore::open(&dir.path().join("latchkey.db")).expect("sqlite store");
                let mut t = Self::with(Arc::new(store), settings);
                t.backend = Backend::Sqlite;
                t._dir = Some(dir);
                t
            }
            Backend::Dynamodb => {
                let table = format!("latchkey-flow-{}", crate::stores::namespace());
                let store = crate::stores::dynamodb_table(&table).await;
                let mut t = Self::with(Arc::new(store.clone()), settings);
                t.backend = Backend::Dynamodb;
                t.dynamo = Some(store);
                t
            }
        }
    }

    /// An app on a fresh store of `backend` seen through a [`RecordingStore`], which notes
    /// every call and every key it touches.
    pub async fn recorded(
        backend: Backend,
        settings: &[(&str, &str)],
    ) -> (Self, Arc<RecordingStore>) {
        let (inner, dir) = fresh_store(backend).await;
        let recorder = Arc::new(RecordingStore::new(inner));
        let mut t = Self::with(recorder.clone(), settings);
        t.backend = backend;
        t._dir = dir;
        (t, recorder)
    }

    /// An app on a fresh store of `backend`, hashing passwords at `cost`.
    pub async fn on_with_cost(backend: Backend, settings: &[(&str, &str)], cost: Cost) -> Self {
        let (store, dir) = fresh_store(backend).await;
        let mut t = Self::with_cost(store, settings, cost);
        t.backend = backend;
        t._dir = dir;
        t
    }

    /// An app on `store`, with settings overridden by `settings` (name, value).
    pub fn with(store: Arc<dyn Store>, settings: &[(&str, &str)]) -> Self {
        Self::with_cost(store, settings, Cost::Cheap)
    }

    /// As [`TestApp::with`], hashing passwords at `cost`.
    pub fn with_cost(store: Arc<dyn Store>, settings: &[(&str, &str)], cost: Cost) -> Self {
        // Flow tests wait for a hashing slot as long as it takes: on the single-threaded AWS
        // emulator, fifty racing sign-ins queue for seconds. Tests of the bound set their own.
        let defaults = [("LATCHKEY_HASH_WAIT_MS", "60000")];
        let owned: Vec<(String, String)> = settings
            .iter()
            .chain(
                defaults
                    .iter()
                    .filter(|(d, _)| !settings.iter().any(|(k, _)| k == d)),
            )
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_lookup(|name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("test settings parse");
        let rng = Arc::new(SeededRng::new(42));
        let key_file = KeySetFile::test_fixture();
        let clock = Arc::new(ManualClock::at(T0));
        let outbox = Arc::new(RecordingOutbox::default());
        let link_queue = Arc::new(RecordingQueue::default());
        let hasher = match cost {
            // Cheap argon2id parameters: the flows, not the cost, are under test here.
            Cost::Cheap => PasswordHasher::with_params(256, 1, 1, rng.as_ref()),
            Cost::Minimal => PasswordHasher::with_params(8, 1, 1, rng.as_ref()),
            Cost::Owasp => PasswordHasher::new(rng.as_ref()),
        }
        .expect("hasher")
        .limited(config.hashing);
        let app = App::new(Deps {
            recaptcha: Arc::new(latchkey_core::ports::FakeRecaptcha::new()),
            store: store.clone(),
            mailer: outbox.clone(),
            sms: outbox.clone(),
            link_queue: link_queue.clone(),
            clock: clock.clone(),
            rng,
            keys: fixture_keys(),
            config,
            hasher,
        });
        Self {
            app,
            clock,
            outbox,
            link_queue,
            store,
            key_file,
            backend: Backend::Memory,
            dynamo: None,
            _dir: None,
        }
    }

    /// The store and clock, for reading state behind the API's back.
    pub fn db(&self) -> latchkey_core::identity::Db<'_> {
        self.app.db()
    }

    /// The user as stored now.
    pub async fn user(&self, id: u64) -> User {
        accounts::get(self.db(), id)
            .await
            .expect("read user")
            .expect("user exists")
    }

    /// RS256 signatures made so far with the app's key set, and their time. The key set is the
    /// process's (see [`fixture_keys`]): where tests run side by side in one process, the
    /// figures are theirs too. The flows benchmark walks one app at a time.
    pub fn rs256_spent(&self) -> Tally {
        self.app.keys.rs256_spent()
    }

    /// The requests' waits for the app's hashing threads so far, counted and timed.
    pub fn hash_waited(&self) -> Tally {
        self.app.hasher.waited()
    }

    /// argon2 computations made so far by the app's hasher.
    pub fn hash_runs(&self) -> u64 {
        self.app.hasher.runs()
    }

    async fn create(&self, new: NewUser) -> User {
        accounts::create(
            self.app.db(),
            &self.app.hasher,
            &self.app.keys.sealer,
            self.app.rng.as_ref(),
            new,
            "test",
        )
        .await
        .expect("create user")
    }

    pub async fn add_user(&self, username: &str, email: &str, password: &str, role: Role) -> User {
        self.create(NewUser {
            username: username.into(),
            email: email.into(),
            password: SecretString::new(password.into()),
            role,
            totp_secret: None,
            phone: None,
            store_id: 1,
        })
        .await
    }

    /// An admin with an authenticator already enrolled; returns the base32 secret.
    pub async fn add_admin_with_totp(&self, username: &str, password: &str) -> (User, String) {
        let secret_b32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".to_string();
        let user = self
            .create(NewUser {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: SecretString::new(password.into()),
                role: Role::Admin,
                totp_secret: Some(TotpSecret::from_base32(&secret_b32).unwrap()),
                phone: None,
                store_id: 1,
            })
            .await;
        (user, secret_b32)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
    ) -> Reply {
        self.call_from(
            method,
            path,
            body,
            bearer,
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        )
        .await
    }

    pub async fn call_from(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
        ip: IpAddr,
    ) -> Reply {
        self.call_with(method, path, body, bearer, &[], ip).await
    }

    /// A request from peer `ip` with extra `headers` (e.g. `X-Forwarded-For`).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        ip: IpAddr,
    ) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(path);
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder
            .body(Bytes::from(body.unwrap_or("").to_owned()))
            .unwrap();
        req.extensions_mut().insert(Peer(ip));
        let res = self.app.handle(req).await;
        reply(res)
    }

    /// Sends a request as built by the test (headers and all), from the default client
    /// address unless it carries one.
    pub async fn send(&self, mut req: http::Request<Bytes>) -> Reply {
        if req.extensions().get::<Peer>().is_none() {
            req.extensions_mut()
                .insert(Peer(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))));
        }
        reply(self.app.handle(req).await)
    }

    /// A request with any headers (`name`, `value`), from the default client address.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        reply(
            self.app
                .handle(build_request(method, path, body, headers))
                .await,
        )
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.call(Method::GET, path, None, bearer).await
    }

    /// Runs the link mailer on every mail request stored since the last run, as the table's
    /// stream (or the local server) would; how many it sent.
    pub async fn run_link_mailer(&self) -> usize {
        let mut sent = 0;
        for key in self.link_queue.take() {
            if latchkey_core::link_mailer::deliver(&self.app, &key)
                .await
                .expect("deliver")
                == latchkey_core::identity::links::Delivered::Sent
            {
                sent += 1;
            }
        }
        sent
    }

    /// The newest email to `to`.
    pub fn last_email_to(&self, to: &str) -> Option<latchkey_core::ports::Email> {
        self.outbox.emails().into_iter().rev().find(|e| e.to == to)
    }

    /// The HMAC secret of the active Magento signing key, for independent verification.
    pub fn hmac_secret(&self) -> Vec<u8> {
        self.key_file.active_hmac_secret().to_vec()
    }
}

/// A fresh store of `backend` (and the directory an SQLite one lives in).
pub async fn fresh_store(backend: Backend) -> (Arc<dyn Store>, Option<tempfile::TempDir>) {
    match backend {
        Backend::Memory => (Arc::new(MemoryStore::new()), None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(&dir.path().join("latchkey.db")).expect("sqlite store");
            (Arc::new(store), Some(dir))
        }
        Backend::Dynamodb => {
            let table = format!("latchkey-flow-{}", crate::stores::namespace());
            (Arc::new(crate::stores::dynamodb_table(&table).await), None)
        }
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

/// The fixture's key set, loaded once per process and shared by every app, as one server or
/// one warm function shares its own: an RSA key is checked at its first signature, once per
/// process, and a walk timing its steps should not pay that again on every fresh app.
pub fn fixture_keys() -> Arc<KeySet> {
    static KEYS: OnceLock<Arc<KeySet>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Arc::new(KeySet::from_file(&KeySetFile::test_fixture()).expect("the fixture key set"))
    })
    .clone()
}

/// The request [`TestApp::request`] sends: any headers, from the default client address.
pub fn build_request(
    method: Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> http::Request<Bytes> {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder
        .body(Bytes::from(body.unwrap_or("").to_owned()))
        .unwrap();
    req.extensions_mut()
        .insert(Peer(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))));
    req
}

pub fn reply(res: http::Response<Bytes>) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let text = String::from_utf8(res.into_body().to_vec()).expect("utf-8 body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// Pulls the `tfaToken: ...` line out of a configuration email.
pub fn tfa_token_from(email_text: &str) -> String {
    email_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tfaToken: "))
        .expect("email carries a tfaToken line")
        .trim()
        .to_owned()
}

/// Turns each `async fn case(backend: Backend)` into one test per shipping store:
/// `sqlite::case` and `dynamodb::case` (the latter needs `./scripts/test`'s emulator).
#[macro_export]
macro_rules! flow_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::harness::Backend::Dynamodb).await;
                }
            )*
        }
    };
}

/// `text` with each `nonce="…"` and `'nonce-…'` value masked (a page's nonce is new per answer).
pub fn mask_nonces(text: &str) -> String {
    let mut out = text.to_owned();
    for marker in ["nonce=\"", "'nonce-"] {
        let mut masked = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(marker) {
            let (head, tail) = rest.split_at(at + marker.len());
            masked.push_str(head);
            masked.push_str("<nonce>");
            rest = tail.find(['"', '\'']).map_or("", |end| &tail[end..]);
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}
