//! The walk: every route of every dialect, successes and refusals, one request per step, each
//! step recorded with its store calls, its handler time and the password hashes it ran. The
//! AWS suite holds its call counts against `infra/TABLE.md` on DynamoDB (and derives each
//! function's table actions from it); the `flows` benchmark runs it on the embedded store
//! to time each step.
//!
//! Calls per step: on DynamoDB, the adapter's own counter (what DynamoDB is asked, retries of
//! an expired item or unprocessed keys included), checked step by step against what the
//! [`RecordingStore`] saw (calls through the `Store` port); on any other store, the
//! recorder's count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use latchkey_aws::dynamodb::DynamoStore;
use latchkey_core::crypto::spent::Tally;
use latchkey_core::identity::users::Role;
use latchkey_core::routes;
use serde_json::json;

use crate::harness::{self, Backend, Cost, Reply, T0, TestApp, fresh_store, tfa_token_from};
use crate::otp;
use crate::recording::RecordingStore;
use crate::stores::{dynamodb_table, namespace};

/// One request of the walk, measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub route: &'static str,
    pub scenario: &'static str,
    /// Store calls the request made.
    pub calls: usize,
    /// Wall time of the request through the app's entry point, `App::handle` (the link
    /// mailer's: of its event, `link_mailer::handle_event`).
    pub handler: Duration,
    /// Password hashes (argon2id) the request ran.
    pub hashes: u64,
    /// RS256 signatures the request made (its tokens), each about as costly as the rest of it.
    pub rs256: u64,
    /// What the request spent outside its handler's own work: the time its RS256 signatures
    /// took, and its waits for the hashing threads (the hashes and the hand-offs).
    pub deliberate: Duration,
}

pub struct Walk {
    pub t: TestApp,
    /// The DynamoDB store under the recorder, on [`Backend::Dynamodb`] (it counts its calls).
    dynamo: Option<DynamoStore>,
    recorder: Arc<RecordingStore>,
    /// Every step, in walk order.
    pub measured: Vec<Measured>,
    /// The table actions each route (and the link mailer) needed on DynamoDB.
    pub actions: BTreeMap<&'static str, BTreeSet<&'static str>>,
    /// Keeps an SQLite store's directory alive as long as the walk.
    _dir: Option<tempfile::TempDir>,
}

impl Walk {
    /// A walk on a fresh store of `backend` (seen through a [`RecordingStore`]), its app
    /// hashing passwords at `cost`.
    pub async fn new(backend: Backend, cost: Cost) -> Self {
        let (inner, dynamo, dir) = match backend {
            Backend::Dynamodb => {
                let dynamo = dynamodb_table(&format!("latchkey-walk-{}", namespace())).await;
                let inner: Arc<dyn latchkey_core::store::Store> = Arc::new(dynamo.clone());
                (inner, Some(dynamo), None)
            }
            other => {
                let (inner, dir) = fresh_store(other).await;
                (inner, None, dir)
            }
        };
        let recorder = Arc::new(RecordingStore::new(inner));
        let mut t = TestApp::with_cost(recorder.clone(), &[], cost);
        // The walk measures a running server's requests: its hashing threads are up, as
        // `latchkey serve` starts them (else the walk's first sign-in pays for them, 2x).
        t.app.hasher.start_workers();
        t.backend = backend;
        Self {
            t,
            dynamo,
            recorder,
            measured: Vec::new(),
            actions: BTreeMap::new(),
            _dir: dir,
        }
    }

    /// Makes one request, checks its status, and records what it cost.
    pub async fn step(
        &mut self,
        scenario: &'static str,
        method: Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
        status: StatusCode,
    ) -> Reply {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        self.step_with(scenario, method, path, body, &headers, status)
            .await
    }

    /// [`Walk::step`] with any headers.
    pub async fn step_with(
        &mut self,
        scenario: &'static str,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        status: StatusCode,
    ) -> Reply {
        let bare = path.split('?').next().unwrap_or(path);
        let route = match routes::lookup(&method, bare) {
            routes::Lookup::Found(route, _) => route.name,
            other => panic!("{method} {path} is not a route: {other:?}"),
        };
        // The request `TestApp::request` makes, built before the clock starts and its answer
        // read after it stops: the time is the app's (its entry point, as the servers call
        // it), not the test's (a 254 KB OpenAPI document takes the test ~4 ms to parse).
        let req = harness::build_request(method, path, body, headers);
        let start = self.start();
        let res = self.t.app.handle(req).await;
        self.finish(route, scenario, start);
        let reply = harness::reply(res);
        assert_eq!(reply.status, status, "{scenario}: {}", reply.text);
        reply
    }

    /// Runs the link mailer on one event, measured like a request.
    pub async fn mailer(&mut self, scenario: &'static str, event: &serde_json::Value) {
        let start = self.start();
        let answer = latchkey_core::link_mailer::handle_event(&self.t.app, event)
            .await
            .expect("the mailer takes the event");
        self.finish("link-mailer", scenario, start);
        assert_eq!(answer["batchItemFailures"], json!([]), "{scenario}");
    }

    /// Opens a measurement: the counters as they stand, then the clock.
    #[allow(clippy::disallowed_methods)] // the walk times its requests, with the wall clock
    fn start(&self) -> Start {
        self.recorder.take();
        Start {
            dynamo: self.dynamo.as_ref().map(DynamoStore::calls),
            hashes: self.t.hash_runs(),
            rs256: self.t.rs256_spent(),
            waited: self.t.hash_waited(),
            at: Instant::now(),
        }
    }

    /// Closes the measurement `start` opened, and records the step.
    fn finish(&mut self, route: &'static str, scenario: &'static str, start: Start) {
        let handler = start.at.elapsed();
        let hashes = self.t.hash_runs() - start.hashes;
        let rs256 = self.t.rs256_spent() - start.rs256;
        let waited = self.t.hash_waited() - start.waited;
        let recorded = self.recorder.take();
        let calls = match (&self.dynamo, start.dynamo) {
            (Some(dynamo), Some(before)) => {
                let calls = dynamo.calls() - before;
                assert_eq!(
                    calls, recorded.calls,
                    "{route} ({scenario}): DynamoDB calls differ from the store calls made"
                );
                calls
            }
            _ => recorded.calls,
        };
        self.measured.push(Measured {
            route,
            scenario,
            calls,
            handler,
            hashes,
            rs256: rs256.count,
            deliberate: rs256.time + waited.time,
        });
        self.actions
            .entry(route)
            .or_default()
            .extend(recorded.actions);
    }
}

/// The counters at the start of a step.
struct Start {
    dynamo: Option<usize>,
    hashes: u64,
    rs256: Tally,
    waited: Tally,
    at: Instant,
}

const PASSWORD: &str = "correct horse battery";

/// Walks every route, successes and refusals, on a fresh store of `backend`, hashing passwords
/// at `cost`.
pub async fn walk(backend: Backend, cost: Cost) -> Walk {
    let mut w = Walk::new(backend, cost).await;
    let (admin, secret) = w.t.add_admin_with_totp("shopadmin", PASSWORD).await;
    let newcomer =
        w.t.add_user("newadmin", "newadmin@example.com", PASSWORD, Role::Admin)
            .await;
    w.t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let creds = |user: &str, password: &str| json!({"username": user, "password": password});

    let get = Method::GET;
    let post = Method::POST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let ok = StatusCode::OK;

    for (path, scenario) in [
        ("/health", "ready"),
        ("/openapi.json", "document"),
        ("/.well-known/jwks.json", "key set"),
    ] {
        w.step(scenario, get.clone(), path, None, None, ok).await;
    }

    let token_path = "/rest/V1/integration/admin/token";
    let body = creds("shopadmin", "wrong").to_string();
    w.step(
        "wrong password",
        post.clone(),
        token_path,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = creds("nobody", PASSWORD).to_string();
    w.step(
        "unknown user",
        post.clone(),
        token_path,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = creds("shopadmin", PASSWORD).to_string();
    w.step(
        "2FA on: names the provider",
        post.clone(),
        token_path,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = creds("newadmin", PASSWORD).to_string();
    w.step(
        "2FA not set up: emails a tfaToken",
        post.clone(),
        token_path,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let email =
        w.t.last_email_to("newadmin@example.com")
            .expect("set-up email");
    let tfa = tfa_token_from(&email.text);

    let configure = "/rest/V1/tfa/provider/google/configure";
    let body = json!({ "tfaToken": tfa }).to_string();
    let r = w
        .step(
            "secret and QR code",
            post.clone(),
            configure,
            Some(&body),
            None,
            ok,
        )
        .await;
    let new_secret = r.json["secret_code"].as_str().expect("secret").to_owned();
    let body = json!({ "tfaToken": "not-a-token" }).to_string();
    w.step(
        "bad tfaToken",
        post.clone(),
        configure,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    for (path, scenario) in [
        ("/rest/V1/tfa/tfat-providers-to-activate", "by tfaToken"),
        ("/rest/V1/tfa/tfat-user-providers", "by tfaToken"),
    ] {
        let good = format!("{path}?tfaToken={tfa}");
        w.step(scenario, get.clone(), &good, None, None, ok).await;
        let bad = format!("{path}?tfaToken=forged");
        w.step("bad tfaToken", get.clone(), &bad, None, None, unauthorized)
            .await;
    }

    let activate = "/rest/V1/tfa/provider/google/activate";
    let body = json!({ "tfaToken": tfa, "otp": "000000" }).to_string();
    w.step(
        "wrong code",
        post.clone(),
        activate,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = json!({ "tfaToken": tfa, "otp": otp::totp(&new_secret, T0) }).to_string();
    w.step("right code", post.clone(), activate, Some(&body), None, ok)
        .await;

    let authenticate = "/rest/V1/tfa/provider/google/authenticate";
    let mut body = creds("shopadmin", PASSWORD);
    body["otp"] = json!("000000");
    w.step(
        "wrong code",
        post.clone(),
        authenticate,
        Some(&body.to_string()),
        None,
        unauthorized,
    )
    .await;
    body["otp"] = json!(otp::totp(&secret, T0));
    let r = w
        .step(
            "right code: token",
            post.clone(),
            authenticate,
            Some(&body.to_string()),
            None,
            ok,
        )
        .await;
    let token = r.json.as_str().expect("token").to_owned();
    w.step(
        "replayed code",
        post.clone(),
        authenticate,
        Some(&body.to_string()),
        None,
        unauthorized,
    )
    .await;

    let admin_reads = [
        "/rest/V1/tfa/installed-providers".to_owned(),
        "/rest/V1/tfa/forced-providers".to_owned(),
        format!("/rest/V1/tfa/user-providers/{}", admin.id),
        format!("/rest/default/V1/tfa/providers-to-activate/{}", admin.id),
    ];
    for path in &admin_reads {
        w.step("admin token", get.clone(), path, None, Some(&token), ok)
            .await;
        w.step(
            "bad token",
            get.clone(),
            path,
            None,
            Some("forged.token.here"),
            unauthorized,
        )
        .await;
    }

    let reset = format!("/rest/V1/tfa/provider/google/reset/{}", newcomer.id);
    w.step("admin token", post.clone(), &reset, None, Some(&token), ok)
        .await;

    let integrations = "/rest/V1/integrations";
    let body = r#"{"name":"ERP","resources":["Magento_TwoFactorAuth::tfa"]}"#;
    let r = w
        .step(
            "admin token",
            post.clone(),
            integrations,
            Some(body),
            Some(&token),
            ok,
        )
        .await;
    let erp = r.json["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let erp_id = r.json["id"].as_u64().expect("id");
    w.step(
        "integration token",
        get.clone(),
        "/rest/V1/tfa/installed-providers",
        None,
        Some(&erp),
        ok,
    )
    .await;
    let path = format!("{integrations}/{erp_id}");
    w.step("admin token", Method::DELETE, &path, None, Some(&token), ok)
        .await;

    let customer_token = "/rest/V1/integration/customer/token";
    let body = creds("buyer@example.com", PASSWORD).to_string();
    let r = w
        .step(
            "right password",
            post.clone(),
            customer_token,
            Some(&body),
            None,
            ok,
        )
        .await;
    let customer = r.json.as_str().expect("customer token").to_owned();
    let body = creds("buyer@example.com", "wrong").to_string();
    w.step(
        "wrong password",
        post.clone(),
        customer_token,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let me = "/rest/V1/customers/me";
    w.step("customer token", get.clone(), me, None, Some(&customer), ok)
        .await;
    w.step(
        "admin token",
        get.clone(),
        me,
        None,
        Some(&token),
        unauthorized,
    )
    .await;
    let revoke = "/rest/V1/integration/customer/revoke-customer-token";
    w.step(
        "customer token",
        post.clone(),
        revoke,
        None,
        Some(&customer),
        ok,
    )
    .await;
    w.step(
        "revoked token",
        get.clone(),
        me,
        None,
        Some(&customer),
        unauthorized,
    )
    .await;
    magic_links(&mut w, &token).await;
    wizard_walk(&mut w).await;
    walk_glue(&mut w).await;
    w
}
/// The sign-in wizard's routes, successes and refusals.
async fn wizard_walk(w: &mut Walk) {
    use latchkey_core::crypto::SecretString;
    use latchkey_core::crypto::totp::TotpSecret;
    use latchkey_core::identity::accounts::{self, NewUser};

    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    accounts::create(
        w.t.app.db(),
        &w.t.app.hasher,
        &w.t.app.keys.sealer,
        w.t.app.rng.as_ref(),
        NewUser {
            username: "client".into(),
            email: "client@example.com".into(),
            password: SecretString::new(PASSWORD.into()),
            role: Role::Customer,
            totp_secret: Some(TotpSecret::from_base32(secret).unwrap()),
            phone: Some("+4915112345678".into()),
            store_id: 1,
        },
        "test",
    )
    .await
    .unwrap();
    let (get, post) = (Method::GET, Method::POST);
    let (ok, done) = (StatusCode::OK, StatusCode::ACCEPTED);
    let unauthorized = StatusCode::UNAUTHORIZED;
    let creds = |uuid: &str, password: &str| {
        json!({"uuid": uuid, "email": "client@example.com", "password": password,
               "device_fingerprint": "eyJ1c2VyX2FnZW50IjoiY3VybC84LjUuMCJ9"})
        .to_string()
    };
    let wizard = "/api/v2/my/signin/wizard";
    let signin = "/api/v2/my/signin";
    let choose = "/api/v2/my/signin/2fa";
    let google = "/api/v2/my/2fa/google";
    let sms = "/api/v2/my/2fa/sms";
    let user = "/api/v2/my/user";
    let refresh_path = "/api/v2/my/refresh";

    let r = w
        .step("new flow", get.clone(), wizard, None, None, ok)
        .await;
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let body = creds(&uuid, "wrong");
    w.step(
        "wrong password",
        post.clone(),
        signin,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = creds("36f59381-5b54-48bd-a0c7-3b908c476732", PASSWORD);
    w.step(
        "unknown flow",
        post.clone(),
        signin,
        Some(&body),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let body = creds(&uuid, PASSWORD);
    w.step(
        "both factors: choose",
        post.clone(),
        signin,
        Some(&body),
        None,
        ok,
    )
    .await;
    let body = json!({"uuid": uuid, "type": "google"}).to_string();
    w.step("google", post.clone(), choose, Some(&body), None, ok)
        .await;
    let body = json!({"uuid": uuid, "code": "000000"}).to_string();
    w.step(
        "wrong code",
        post.clone(),
        google,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = json!({"uuid": uuid, "code": otp::totp(secret, T0)}).to_string();
    let r = w
        .step(
            "right code: tokens",
            post.clone(),
            google,
            Some(&body),
            None,
            done,
        )
        .await;
    let access = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = r.json["data"]["refreshToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = w
        .step("new flow", get.clone(), wizard, None, None, ok)
        .await;
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let body = creds(&uuid, PASSWORD);
    w.step(
        "both factors: choose",
        post.clone(),
        signin,
        Some(&body),
        None,
        ok,
    )
    .await;
    let body = json!({"uuid": uuid, "type": "sms"}).to_string();
    w.step(
        "sms: code sent",
        post.clone(),
        choose,
        Some(&body),
        None,
        ok,
    )
    .await;
    let text = w.t.outbox.texts().pop().expect("an SMS").body;
    let code = text.split_whitespace().next().unwrap().to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let body = json!({"uuid": uuid, "code": wrong}).to_string();
    w.step(
        "wrong code",
        post.clone(),
        sms,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = json!({"uuid": uuid, "code": code}).to_string();
    w.step(
        "right code: tokens",
        post.clone(),
        sms,
        Some(&body),
        None,
        done,
    )
    .await;

    w.step("access token", get.clone(), user, None, Some(&access), ok)
        .await;
    w.step(
        "forged token",
        get.clone(),
        user,
        None,
        Some("forged.token.here"),
        unauthorized,
    )
    .await;
    let body = json!({"refreshToken": refresh}).to_string();
    let r = w
        .step(
            "refresh token",
            post.clone(),
            refresh_path,
            Some(&body),
            None,
            done,
        )
        .await;
    let access = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    w.step(
        "replayed refresh token",
        post.clone(),
        refresh_path,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    w.step(
        "revoked session",
        get.clone(),
        user,
        None,
        Some(&access),
        unauthorized,
    )
    .await;

    let restore = "/api/v2/my/signin/password/restore";
    let body = json!({"email": "client@example.com"}).to_string();
    let r = w
        .step("known email", post.clone(), restore, Some(&body), None, ok)
        .await;
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let body = json!({"email": "nobody@example.com"}).to_string();
    w.step(
        "unknown email",
        post.clone(),
        restore,
        Some(&body),
        None,
        ok,
    )
    .await;
    assert_eq!(w.t.run_link_mailer().await, 1, "the queued reset email");
    let mail =
        w.t.last_email_to("client@example.com")
            .expect("reset email");
    let code: String = mail
        .text
        .split("code is ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();
    let reset = "/api/v2/my/signin/password/reset";
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let body = json!({"uuid": flow, "code": wrong, "password": "a new password"}).to_string();
    w.step(
        "wrong code",
        post.clone(),
        reset,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let body = json!({"uuid": flow, "code": code, "password": "a new password"}).to_string();
    w.step("right code", post.clone(), reset, Some(&body), None, ok)
        .await;

    // Signed in again with the new password (the second factor is still asked), then out.
    let r = w
        .step("new flow", get.clone(), wizard, None, None, ok)
        .await;
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let body = creds(&uuid, "a new password");
    w.step(
        "both factors: choose",
        post.clone(),
        signin,
        Some(&body),
        None,
        ok,
    )
    .await;
    let body = json!({"uuid": uuid, "type": "google"}).to_string();
    w.step("google", post.clone(), choose, Some(&body), None, ok)
        .await;
    w.t.clock.advance(30);
    let body = json!({"uuid": uuid, "code": otp::totp(secret, T0 + 30)}).to_string();
    let r = w
        .step(
            "right code: tokens",
            post.clone(),
            google,
            Some(&body),
            None,
            done,
        )
        .await;
    let access = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // QR sign-in: the web side's code, approved by the signed-in client, then its own tokens.
    let r = w
        .step(
            "new QR code",
            get.clone(),
            "/api/v2/my/signin/qrcodes",
            None,
            None,
            ok,
        )
        .await;
    let qr = json!({"uuid": r.json["uuid"]}).to_string();
    let tokens = "/api/v2/my/signin/tokens";
    w.step(
        "not approved yet",
        post.clone(),
        tokens,
        Some(&qr),
        None,
        ok,
    )
    .await;
    let approve = "/api/v2/my/signin/qrcodes";
    w.step(
        "forged token",
        post.clone(),
        approve,
        Some(&qr),
        Some("forged.token.here"),
        unauthorized,
    )
    .await;
    w.step(
        "access token",
        post.clone(),
        approve,
        Some(&qr),
        Some(&access),
        done,
    )
    .await;
    let r = w
        .step(
            "approved: tokens",
            post.clone(),
            tokens,
            Some(&qr),
            None,
            done,
        )
        .await;
    let web = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    w.step(
        "used",
        post.clone(),
        tokens,
        Some(&qr),
        None,
        StatusCode::CONFLICT,
    )
    .await;

    // Enrolment: switching SMS off takes a fresh SMS code (and, proven so, ends no session) ...
    let enrol = "/api/v2/my/2fa/wizard";
    let r = w
        .step(
            "sms: code sent",
            get.clone(),
            "/api/v2/my/2fa/sms/disable/wizard",
            None,
            Some(&web),
            ok,
        )
        .await;
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let text = w.t.outbox.texts().pop().expect("an SMS").body;
    let code = text.split_whitespace().next().unwrap().to_owned();
    let body = json!({"uuid": flow, "code": code}).to_string();
    w.step(
        "disable sms: right code",
        post.clone(),
        enrol,
        Some(&body),
        Some(&web),
        done,
    )
    .await;
    // ... after which the authenticator alone signs in ...
    let r = w
        .step("new flow", get.clone(), wizard, None, None, ok)
        .await;
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let body = creds(&uuid, "a new password");
    w.step("google only", post.clone(), signin, Some(&body), None, ok)
        .await;
    w.t.clock.advance(30);
    let body = json!({"uuid": uuid, "code": otp::totp(secret, T0 + 60)}).to_string();
    let r = w
        .step(
            "right code: tokens",
            post.clone(),
            google,
            Some(&body),
            None,
            done,
        )
        .await;
    let access = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // ... and a phone number is bound again by a code sent to it.
    w.step(
        "google: already on",
        get.clone(),
        "/api/v2/my/2fa/google/enable/wizard",
        None,
        Some(&access),
        StatusCode::CONFLICT,
    )
    .await;
    let r = w
        .step(
            "sms: phone next",
            get.clone(),
            "/api/v2/my/2fa/sms/enable/wizard",
            None,
            Some(&access),
            ok,
        )
        .await;
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let body = json!({"uuid": flow, "phone": "+4915199999999"}).to_string();
    w.step(
        "enable sms: phone, code sent",
        post.clone(),
        enrol,
        Some(&body),
        Some(&access),
        ok,
    )
    .await;
    let text = w.t.outbox.texts().pop().expect("an SMS").body;
    let code = text.split_whitespace().next().unwrap().to_owned();
    let body = json!({"uuid": flow, "code": code}).to_string();
    w.step(
        "enable sms: right code",
        post.clone(),
        enrol,
        Some(&body),
        Some(&access),
        done,
    )
    .await;

    w.step(
        "access token",
        post.clone(),
        "/api/v2/my/signout",
        None,
        Some(&access),
        done,
    )
    .await;
    w.step(
        "signed out",
        get.clone(),
        user,
        None,
        Some(&access),
        unauthorized,
    )
    .await;

    // A client without 2FA signs in with the password alone, then sets up an authenticator.
    w.t.add_user("plain", "plain@example.com", PASSWORD, Role::Customer)
        .await;
    let r = w
        .step("new flow", get.clone(), wizard, None, None, ok)
        .await;
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let body = json!({"uuid": uuid, "email": "plain@example.com", "password": PASSWORD,
                      "device_fingerprint": "eyJ1c2VyX2FnZW50IjoiY3VybC84LjUuMCJ9"})
    .to_string();
    let r = w
        .step(
            "no 2FA: tokens",
            post.clone(),
            signin,
            Some(&body),
            None,
            done,
        )
        .await;
    let access = r.json["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w
        .step(
            "google: secret and QR",
            get.clone(),
            "/api/v2/my/2fa/google/enable/wizard",
            None,
            Some(&access),
            ok,
        )
        .await;
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let new_secret = r.json["data"]["secret"].as_str().unwrap().to_owned();
    let body = json!({"uuid": flow, "code": otp::totp(&new_secret, T0 + 60)}).to_string();
    w.step(
        "enable google: right code",
        post.clone(),
        enrol,
        Some(&body),
        Some(&access),
        done,
    )
    .await;
}

/// The Glue routes: a customer signs in, sets up email MFA, changes the password with a code,
/// refreshes and signs out; a back-office user signs in and resets the customer's MFA.
async fn walk_glue(w: &mut Walk) {
    let customer =
        w.t.add_user(
            "glue@example.com",
            "glue@example.com",
            PASSWORD,
            Role::Customer,
        )
        .await;
    w.t.add_user(
        "backoffice",
        "backoffice@example.com",
        PASSWORD,
        Role::Admin,
    )
    .await;
    let reference = format!("DE--{}", customer.id);
    let doc = |kind: &str, attributes: serde_json::Value| {
        json!({"data": {"type": kind, "attributes": attributes}}).to_string()
    };
    let creds = |username: &str, password: &str| {
        doc(
            "access-tokens",
            json!({"username": username, "password": password}),
        )
    };
    let code_of = |t: &TestApp| {
        let text = t
            .last_email_to("glue@example.com")
            .or_else(|| t.last_email_to("glue2@example.com"))
            .expect("a code")
            .text;
        let at = text.find("code: ").expect("a code") + 6;
        text[at..at + 6].to_owned()
    };
    let (post, get, patch, delete) = (Method::POST, Method::GET, Method::PATCH, Method::DELETE);
    let (created, no_content, ok) = (StatusCode::CREATED, StatusCode::NO_CONTENT, StatusCode::OK);
    let (forbidden, unauthorized) = (StatusCode::FORBIDDEN, StatusCode::UNAUTHORIZED);

    let tokens = "/access-tokens";
    w.step(
        "wrong password",
        post.clone(),
        tokens,
        Some(&creds("glue@example.com", "wrong")),
        None,
        unauthorized,
    )
    .await;
    let body = doc(
        "access-tokens",
        json!({"username": "nobody@example.com", "password": PASSWORD}),
    );
    w.step(
        "unknown user",
        post.clone(),
        tokens,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let r = w
        .step(
            "right password",
            post.clone(),
            tokens,
            Some(&creds("glue@example.com", PASSWORD)),
            None,
            created,
        )
        .await;
    let token = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let types = "/multi-factor-auth-types";
    w.step("customer token", get.clone(), types, None, Some(&token), ok)
        .await;
    w.step(
        "bad token",
        get.clone(),
        types,
        None,
        Some("forged.token.here"),
        unauthorized,
    )
    .await;

    let activate = "/multi-factor-auth-type-activate";
    let body = doc("multi-factor-auth-type-activate", json!({"type": "email"}));
    w.step(
        "email: code sent",
        post.clone(),
        activate,
        Some(&body),
        Some(&token),
        no_content,
    )
    .await;
    let code = code_of(&w.t);
    let auth = format!("Bearer {token}");
    let verify = "/multi-factor-auth-type-verify";
    let body = doc("multi-factor-auth-type-verify", json!({"type": "email"}));
    let with_code = |code: &str| {
        [
            ("authorization", auth.clone()),
            ("x-mfa-code", code.to_owned()),
        ]
    };
    let h = with_code("000000");
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.step_with(
        "wrong code",
        post.clone(),
        verify,
        Some(&body),
        &h,
        forbidden,
    )
    .await;
    let h = with_code(&code);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.step_with(
        "right code",
        post.clone(),
        verify,
        Some(&body),
        &h,
        no_content,
    )
    .await;

    let trigger = "/multi-factor-auth-trigger";
    let body = doc("multi-factor-auth-trigger", json!({"type": "email"}));
    w.step(
        "email",
        post.clone(),
        trigger,
        Some(&body),
        Some(&token),
        no_content,
    )
    .await;
    let code = code_of(&w.t);

    let update = format!("/customers/{reference}");
    let body = doc("customers", json!({"phone": "+4915112345678"}));
    w.step(
        "no X-MFA-Code",
        patch.clone(),
        &update,
        Some(&body),
        Some(&token),
        forbidden,
    )
    .await;
    let h = with_code(&code);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.step_with("code verified", patch.clone(), &update, Some(&body), &h, ok)
        .await;
    w.step_with(
        "code in its grace period",
        patch.clone(),
        &update,
        Some(&body),
        &h,
        ok,
    )
    .await;
    let body = doc("customers", json!({"email": "glue2@example.com"}));
    w.step_with("email changed", patch.clone(), &update, Some(&body), &h, ok)
        .await;

    let password = format!("/customer-password/{reference}");
    let body = doc(
        "customer-password",
        json!({"password": PASSWORD, "newPassword": "NewPass456!", "confirmPassword": "NewPass456!"}),
    );
    w.step_with(
        "code: changed, sessions revoked",
        patch.clone(),
        &password,
        Some(&body),
        &h,
        no_content,
    )
    .await;

    let r = w
        .step(
            "new password",
            post.clone(),
            tokens,
            Some(&creds("glue2@example.com", "NewPass456!")),
            None,
            created,
        )
        .await;
    let refresh = r.json["data"]["attributes"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh_tokens = "/refresh-tokens";
    let body = doc("refresh-tokens", json!({"refreshToken": refresh}));
    w.step(
        "rotate",
        post.clone(),
        refresh_tokens,
        Some(&body),
        None,
        created,
    )
    .await;
    w.step(
        "replayed: family revoked",
        post.clone(),
        refresh_tokens,
        Some(&body),
        None,
        unauthorized,
    )
    .await;
    let r = w
        .step(
            "right password",
            post.clone(),
            tokens,
            Some(&creds("glue2@example.com", "NewPass456!")),
            None,
            created,
        )
        .await;
    let token2 = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh2 = r.json["data"]["attributes"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/refresh-tokens/{refresh2}");
    w.step(
        "own refresh token",
        delete.clone(),
        &revoke,
        None,
        Some(&token2),
        no_content,
    )
    .await;

    let r = w
        .step(
            "right password",
            post.clone(),
            tokens,
            Some(&creds("glue2@example.com", "NewPass456!")),
            None,
            created,
        )
        .await;
    let token = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let deactivate = "/multi-factor-auth-type-deactivate";
    let body = doc(
        "multi-factor-auth-type-deactivate",
        json!({"type": "email"}),
    );
    let auth = format!("Bearer {token}");
    let h = [
        ("authorization", auth.as_str()),
        ("x-mfa-code", code.as_str()),
    ];
    w.step_with(
        "code of the type",
        post.clone(),
        deactivate,
        Some(&body),
        &h,
        no_content,
    )
    .await;

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = w
        .step_with(
            "password grant",
            post.clone(),
            "/token",
            Some("grant_type=password&username=backoffice&password=correct+horse+battery"),
            &form,
            ok,
        )
        .await;
    let bo = r.json["access_token"].as_str().unwrap().to_owned();
    let bo_refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    w.step_with(
        "wrong password",
        post.clone(),
        "/token",
        Some("grant_type=password&username=backoffice&password=wrong"),
        &form,
        StatusCode::BAD_REQUEST,
    )
    .await;
    w.step_with(
        "refresh grant",
        post.clone(),
        "/token",
        Some(&format!(
            "grant_type=refresh_token&refresh_token={bo_refresh}"
        )),
        &form,
        ok,
    )
    .await;
    let reset = format!("/customers/{reference}/multi-factor-auth");
    w.step(
        "back-office token",
        delete.clone(),
        &reset,
        None,
        Some(&bo),
        no_content,
    )
    .await;
    let r = w
        .step(
            "right password",
            post.clone(),
            tokens,
            Some(&creds("glue2@example.com", "NewPass456!")),
            None,
            created,
        )
        .await;
    let token = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // Email MFA on again, so that deleting the customer takes a code.
    let body = doc("multi-factor-auth-type-activate", json!({"type": "email"}));
    w.step(
        "email: code sent",
        post.clone(),
        activate,
        Some(&body),
        Some(&token),
        no_content,
    )
    .await;
    let text = w.t.last_email_to("glue2@example.com").expect("a code").text;
    let at = text.find("code: ").expect("a code") + 6;
    let code = text[at..at + 6].to_owned();
    let auth = format!("Bearer {token}");
    let h = [
        ("authorization", auth.as_str()),
        ("x-mfa-code", code.as_str()),
    ];
    let body = doc("multi-factor-auth-type-verify", json!({"type": "email"}));
    w.step_with(
        "right code",
        post.clone(),
        verify,
        Some(&body),
        &h,
        no_content,
    )
    .await;
    w.step_with("code", delete.clone(), &update, None, &h, no_content)
        .await;
}

/// The magic-link routes, and the link mailer fed by a stream record and an SQS message.
async fn magic_links(w: &mut Walk, admin: &str) {
    let post = Method::POST;
    let get = Method::GET;
    let ok = StatusCode::OK;
    let body = json!({"email": "buyer@example.com", "storeId": "1", "expiry": 5}).to_string();
    let r = w
        .step(
            "admin token",
            post.clone(),
            "/rest/V1/otp/createToken",
            Some(&body),
            Some(admin),
            ok,
        )
        .await;
    let token = r.json["token"].as_str().expect("token").to_owned();
    let customer_id = r.json["customer_id"].as_u64().expect("customer");
    let body = json!({"email": "nobody@example.com", "storeId": "1", "expiry": 5}).to_string();
    w.step(
        "unknown customer",
        post.clone(),
        "/rest/V1/otp/createToken",
        Some(&body),
        Some(admin),
        StatusCode::NOT_FOUND,
    )
    .await;
    let body = json!({"path": "customer/otp/auth", "token": token}).to_string();
    w.step(
        "asks for the email",
        post.clone(),
        "/rest/V1/otp/createUrl",
        Some(&body),
        None,
        ok,
    )
    .await;
    let body = json!({"path": "customer/otp/auth", "token": "B6uiladd2569hikvf6vcphh8FixchO7T"})
        .to_string();
    w.step(
        "unknown token",
        post.clone(),
        "/rest/V1/otp/createUrl",
        Some(&body),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The mailer, as the stream hands it the request createUrl stored.
    let keys = w.t.link_queue.take();
    assert_eq!(keys.len(), 1);
    let record = json!({"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"pk": {"S": keys[0].pk.clone()}, "sk": {"S": keys[0].sk.clone()}}, "SequenceNumber": "1"}}]});
    w.mailer("stream record: sends", &record).await;
    w.mailer("stream record again: nothing", &record).await;
    let sqs = json!({"Records": [{"messageId": "m-1", "eventSource": "aws:sqs",
        "body": json!({"email": "buyer@example.com", "storeId": 1}).to_string()}]});
    w.mailer("SQS message: stores a request", &sqs).await;
    w.t.link_queue.take();

    let page = format!("/customer/otp/auth/token/{token}/");
    w.step("link page", get.clone(), &page, None, None, ok)
        .await;
    w.step(
        "unknown link",
        get.clone(),
        "/customer/otp/auth/token/B6uiladd2569hikvf6vcphh8FixchO7T/",
        None,
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    w.step(
        "signs in",
        post.clone(),
        &page,
        None,
        None,
        StatusCode::FOUND,
    )
    .await;
    w.step(
        "used link",
        post.clone(),
        &page,
        None,
        None,
        StatusCode::GONE,
    )
    .await;

    let body = json!({"email": "buyer@example.com", "storeId": "1"}).to_string();
    w.step(
        "customer",
        post.clone(),
        "/rest/V1/otp/send",
        Some(&body),
        None,
        ok,
    )
    .await;
    let body = json!({"email": "nobody@example.com", "storeId": "1"}).to_string();
    w.step(
        "unknown email",
        post.clone(),
        "/rest/V1/otp/send",
        Some(&body),
        None,
        ok,
    )
    .await;
    w.step(
        "customer",
        post.clone(),
        "/customer/otp/request",
        Some("email=buyer%40example.com&store_id=1"),
        None,
        ok,
    )
    .await;
    w.t.link_queue.take();

    let tokens = format!("/rest/V1/otp/customers/{customer_id}/tokens");
    w.step("admin token", get.clone(), &tokens, None, Some(admin), ok)
        .await;
    w.step(
        "admin token",
        get.clone(),
        &format!("{tokens}/active"),
        None,
        Some(admin),
        ok,
    )
    .await;
    w.step(
        "all: 3 active",
        post.clone(),
        &format!("{tokens}/revoke"),
        None,
        Some(admin),
        ok,
    )
    .await;
}

/// The rows of the call-budget table, as `infra/TABLE.md` lists them.
pub fn budget_rows(measured: &[Measured]) -> Vec<String> {
    measured.iter().map(budget_row).collect()
}

/// One step's row of the call-budget table.
pub fn budget_row(m: &Measured) -> String {
    format!("| `{}` | {} | {} |", m.route, m.scenario, m.calls)
}

/// The rows of the call-budget table in `infra/TABLE.md` (its `calls-per-request` section).
pub fn documented_rows() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/TABLE.md");
    let text = std::fs::read_to_string(path).expect("infra/TABLE.md");
    let section = text
        .split("<!-- calls-per-request -->")
        .nth(1)
        .expect("TABLE.md has a calls-per-request section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(str::to_owned)
        .collect()
}
