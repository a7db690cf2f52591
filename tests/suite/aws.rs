//! The Magento flow on DynamoDB (through `moto_server`): every route, its DynamoDB calls per
//! request against the budget table in `infra/TABLE.md`, and the table actions it needs
//! against its least-privilege policy in `template.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::{Method, StatusCode};
use latchkey_aws::dynamodb::DynamoStore;
use latchkey_core::identity::users::Role;
use latchkey_core::routes;
use latchkey_tests::harness::{T0, TestApp, tfa_token_from};
use latchkey_tests::otp;
use latchkey_tests::recording::RecordingStore;
use latchkey_tests::stores::{dynamodb_table, namespace};
use serde_json::json;

use crate::template::{self, Template};

/// One request of the walk, measured.
struct Measured {
    route: &'static str,
    scenario: &'static str,
    calls: usize,
}

struct Walk {
    t: TestApp,
    dynamo: DynamoStore,
    recorder: Arc<RecordingStore>,
    measured: Vec<Measured>,
    actions: BTreeMap<&'static str, BTreeSet<&'static str>>,
}

impl Walk {
    async fn new() -> Self {
        let dynamo = dynamodb_table(&format!("latchkey-walk-{}", namespace())).await;
        let recorder = Arc::new(RecordingStore::new(Arc::new(dynamo.clone())));
        let t = TestApp::with(recorder.clone(), &[]);
        Self {
            t,
            dynamo,
            recorder,
            measured: Vec::new(),
            actions: BTreeMap::new(),
        }
    }

    /// Makes one request, checks its status, and records what it cost.
    async fn step(
        &mut self,
        scenario: &'static str,
        method: Method,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
        status: StatusCode,
    ) -> latchkey_tests::harness::Reply {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        self.step_with(scenario, method, path, body, &headers, status)
            .await
    }

    /// [`Walk::step`] with any headers.
    async fn step_with(
        &mut self,
        scenario: &'static str,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        status: StatusCode,
    ) -> latchkey_tests::harness::Reply {
        let bare = path.split('?').next().unwrap_or(path);
        let route = match routes::lookup(&method, bare) {
            routes::Lookup::Found(route, _) => route.name,
            other => panic!("{method} {path} is not a route: {other:?}"),
        };
        self.recorder.take();
        let before = self.dynamo.calls();
        let reply = self.t.request(method, path, body, headers).await;
        assert_eq!(reply.status, status, "{scenario}: {}", reply.text);
        self.measured.push(Measured {
            route,
            scenario,
            calls: self.dynamo.calls() - before,
        });
        self.actions
            .entry(route)
            .or_default()
            .extend(self.recorder.take().actions);
        reply
    }
}

const PASSWORD: &str = "correct horse battery";

/// Walks every route, successes and refusals, on DynamoDB.
async fn walk() -> Walk {
    let mut w = Walk::new().await;
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
    walk_glue(&mut w).await;
    w
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

/// The rows of the call-budget table, as `infra/TABLE.md` lists them.
fn budget_rows(measured: &[Measured]) -> Vec<String> {
    measured
        .iter()
        .map(|m| format!("| `{}` | {} | {} |", m.route, m.scenario, m.calls))
        .collect()
}

fn documented_rows() -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_on_dynamodb_within_its_call_budget_and_its_policy() {
    let w = walk().await;

    // Every route was walked.
    let walked: BTreeSet<&str> = w.measured.iter().map(|m| m.route).collect();
    for route in routes::all() {
        assert!(
            walked.contains(route.name),
            "the walk misses {}",
            route.name
        );
    }

    // DynamoDB calls per request are exactly what infra/TABLE.md documents.
    let rows = budget_rows(&w.measured);
    let documented = documented_rows();
    assert_eq!(
        rows,
        documented,
        "DynamoDB calls per request changed; measured:\n{}",
        rows.join("\n")
    );

    // An unknown login costs the store what a wrong password does: the number of calls does
    // not tell an attacker which usernames exist.
    let calls = |scenario: &str| {
        w.measured
            .iter()
            .find(|m| m.route == "magento-admin-token" && m.scenario == scenario)
            .map(|m| m.calls)
    };
    assert_eq!(calls("unknown user"), calls("wrong password"));
    assert!(calls("unknown user").is_some());

    // Each function's table actions in template.yaml are exactly what its route needed.
    let template = Template::load();
    for route in routes::all() {
        let mut needed: BTreeSet<String> = w
            .actions
            .get(route.name)
            .map(|a| a.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        // The warm-up read every function makes in its init (`DynamoStore::ping`).
        needed.insert("dynamodb:GetItem".into());
        let granted = template.table_actions(&template::logical_id(route.name));
        assert_eq!(
            granted, needed,
            "{}: the template's DynamoDB actions differ from what the route uses",
            route.name
        );
    }
}

/// DynamoDB (JSON 1.0) throttling, and an empty `GetItem` answer.
fn dynamodb_answers() -> (String, String) {
    use latchkey_tests::fake_service::answer;
    (
        answer(
            "400 Bad Request",
            "content-type: application/x-amz-json-1.0\r\n",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
        answer(
            "200 OK",
            "content-type: application/x-amz-json-1.0\r\n",
            "{}",
        ),
    )
}

#[tokio::test]
async fn throttled_dynamodb_is_retried_then_reported_busy_after_bounded_attempts() {
    use latchkey_aws::clients::MAX_ATTEMPTS;
    use latchkey_core::store::{Key, Store, StoreError};
    use latchkey_tests::fake_service::ThrottlingService;
    use latchkey_tests::stores::aws_clients_at;

    let key = Key::new("USER#1", "PROFILE");
    let service = ThrottlingService::start(2, dynamodb_answers()).await;
    let store = DynamoStore::new(aws_clients_at(&service.url).await.dynamodb, "latchkey");
    assert_eq!(store.get(&key, T0).await.unwrap(), None);
    let bodies = service.bodies();
    assert_eq!(bodies.len(), 3, "two throttled attempts, then the answer");
    assert!(bodies.iter().all(|b| b == &bodies[0]));

    let service = ThrottlingService::start(usize::MAX, dynamodb_answers()).await;
    let store = DynamoStore::new(aws_clients_at(&service.url).await.dynamodb, "latchkey");
    let err = store.get(&key, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert_eq!(service.bodies().len(), MAX_ATTEMPTS as usize);
}
