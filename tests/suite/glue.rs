//! The Glue MFA dialect (JSON:API), end to end through the router on the embedded store and on
//! DynamoDB: the seed document's requests verbatim, tokens checked by jsonwebtoken against the
//! published JWKS, every document checked by an independent JSON:API validator, each of the
//! errors 5900-5910, races, back-office users, bad input.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::{Method, StatusCode};
use latchkey_core::identity::accounts;
use latchkey_core::identity::users::{CodeFactor, Factor, Role};
use latchkey_core::ports::Clock;
use latchkey_core::records::{code as code_record, profile};
use latchkey_core::store::{Cond, Item, Key, MemoryStore, Store, StoreError, TxOp, Update};
use latchkey_tests::contract::race;
use latchkey_tests::harness::{Backend, Reply, T0, TestApp};
use latchkey_tests::independent::jsonwebtoken_verify;
use latchkey_tests::jsonapi;
use latchkey_tests::otp;
use serde_json::{Value, json};

const JSON_API: &str = "application/vnd.api+json";
/// The seed document's current password.
const PASSWORD: &str = "oldPass123";
/// The seed document's trigger request, byte for byte.
const SEED_TRIGGER: &str = r#"{
  "data": {
    "type": "multi-factor-auth-trigger",
    "attributes": {
      "type": "email"
    }
  }
}"#;
/// The seed document's password change, byte for byte.
const SEED_PASSWORD_CHANGE: &str = r#"{
  "data": {
    "type": "customer-password",
    "attributes": {
      "password": "oldPass123",
      "newPassword": "NewPass456!",
      "confirmPassword": "NewPass456!"
    }
  }
}"#;
const SEED_5900: &str =
    r#"{"errors":[{"status":403,"code":"5900","detail":"X-MFA-Code header is missing."}]}"#;
const INVALID_5901: &str =
    r#"{"errors":[{"status":403,"code":"5901","detail":"X-MFA-Code is invalid."}]}"#;

fn doc(kind: &str, attributes: Value) -> String {
    json!({"data": {"type": kind, "attributes": attributes}}).to_string()
}

/// A Glue request: JSON:API body, Bearer token and `X-MFA-Code` where given.
async fn glue(
    t: &TestApp,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    code: Option<&str>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("accept", JSON_API)];
    if body.is_some() {
        headers.push(("content-type", JSON_API));
    }
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    if let Some(code) = code {
        headers.push(("x-mfa-code", code));
    }
    let r = t.request(method, path, body, &headers).await;
    if !r.text.is_empty() {
        assert_eq!(
            r.headers["content-type"], JSON_API,
            "{path}: Glue answers JSON:API"
        );
        jsonapi::assert_valid(&[&r.json]);
    }
    r
}

async fn post(
    t: &TestApp,
    path: &str,
    body: &str,
    token: Option<&str>,
    code: Option<&str>,
) -> Reply {
    glue(t, Method::POST, path, Some(body), token, code).await
}

fn mfa(kind: &str, t: &str) -> String {
    doc(kind, json!({ "type": t }))
}

/// Signs a customer in: the access and refresh tokens.
async fn sign_in(t: &TestApp, username: &str, password: &str) -> (String, String) {
    let r = post(
        t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": username, "password": password}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a = &r.json["data"]["attributes"];
    (
        a["accessToken"].as_str().unwrap().to_owned(),
        a["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// The code in the newest message to `to`: an email (Spryker's wording, "... the following
/// verification code: 123456.") or a text ("123456 is your ... verification code.").
fn code_sent_to(t: &TestApp, to: &str) -> String {
    if let Some(mail) = t.last_email_to(to) {
        let text = mail.text;
        let at = text.find("verification code: ").expect("a code") + "verification code: ".len();
        return text[at..at + 6].to_owned();
    }
    let sms = t
        .outbox
        .texts()
        .into_iter()
        .rev()
        .find(|s| s.to == to)
        .unwrap_or_else(|| panic!("no message to {to}"));
    assert!(sms.body.contains("verification code"), "{}", sms.body);
    sms.body
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

/// A customer with email MFA on; returns the user id and an access token.
async fn customer_with_email_mfa(t: &TestApp, email: &str) -> (u64, String) {
    let user = t.add_user(email, email, PASSWORD, Role::Customer).await;
    let (token, _) = sign_in(t, email, PASSWORD).await;
    let r = post(
        t,
        "/multi-factor-auth-type-activate",
        &mfa("multi-factor-auth-type-activate", "email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let code = code_sent_to(t, email);
    let r = post(
        t,
        "/multi-factor-auth-type-verify",
        &mfa("multi-factor-auth-type-verify", "email"),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    (user.id, token)
}

async fn statuses(t: &TestApp, token: &str) -> Vec<(String, u64)> {
    let r = glue(
        t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attributes"]["type"].as_str().unwrap().to_owned(),
                d["attributes"]["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn status_of(all: &[(String, u64)], t: &str) -> u64 {
    all.iter().find(|(n, _)| n == t).unwrap().1
}

async fn jwks(t: &TestApp) -> Value {
    t.get("/.well-known/jwks.json", None).await.json
}

// ---------------------------------------------------------------- the seed document

async fn the_seed_documents_flow_verbatim(backend: Backend) {
    let t = TestApp::on(backend).await;
    let sonia = t
        .add_user(
            "sonia@example.com",
            "sonia@example.com",
            PASSWORD,
            Role::Customer,
        )
        .await;
    let reference = format!("DE--{}", sonia.id);

    // Customer tokens.
    let r = post(
        &t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": "sonia@example.com", "password": PASSWORD}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let data = &r.json["data"];
    assert_eq!(data["type"], "access-tokens");
    assert_eq!(data["id"], Value::Null);
    let a = &data["attributes"];
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "tokenType",
            "expiresIn",
            "accessToken",
            "refreshTokenExpiresIn",
            "refreshToken"
        ]
    );
    assert_eq!(a["tokenType"], "Bearer");
    assert_eq!(a["expiresIn"], 28800);
    assert_eq!(a["refreshTokenExpiresIn"], 2_592_000);
    let token = a["accessToken"].as_str().unwrap().to_owned();
    assert!(
        !a["refreshToken"].as_str().unwrap().contains("eyJ"),
        "refresh tokens are opaque"
    );

    // The access token, verified by jsonwebtoken against the published JWKS.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let claims = jsonwebtoken_verify(
        &token,
        &jwks(&t).await,
        "frontend",
        "http://127.0.0.1:8080",
        T0,
    )
    .expect("the token verifies against the JWKS");
    for claim in ["aud", "jti", "iat", "nbf", "exp", "sub"] {
        assert!(claims.get(claim).is_some(), "{claim}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        28800
    );
    let sub: Value = serde_json::from_str(claims["sub"].as_str().unwrap()).unwrap();
    assert_eq!(sub["customer_reference"], reference);
    assert_eq!(sub["id_customer"], sonia.id);

    // MFA types: none on yet.
    assert_eq!(
        statuses(&t, &token).await,
        [("email".into(), 0), ("totp".into(), 0), ("sms".into(), 0)]
    );
    // Without MFA, the protected resource needs no code (the password stays as it is: the
    // current password given is wrong).
    let wrong_current = doc(
        "customer-password",
        json!({"password": "notMine123", "newPassword": "NewPass456!", "confirmPassword": "NewPass456!"}),
    );
    let path = format!("/customer-password/{reference}");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&wrong_current),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"errors":[{"status":400,"code":"408","detail":"Invalid password"}]}"#
        )
    );

    // Activate email MFA: a code is sent, the type is pending, the code switches it on.
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &mfa("multi-factor-auth-type-activate", "email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(status_of(&statuses(&t, &token).await, "email"), 1);
    let activation = code_sent_to(&t, "sonia@example.com");
    assert!(activation.bytes().all(|b| b.is_ascii_digit()) && activation.len() == 6);
    let r = post(
        &t,
        "/multi-factor-auth-type-verify",
        &mfa("multi-factor-auth-type-verify", "email"),
        Some(&token),
        Some(&activation),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(status_of(&statuses(&t, &token).await, "email"), 2);

    // The document's example: without X-MFA-Code, its error response word for word.
    let r = t
        .request(
            Method::PATCH,
            &path,
            Some(SEED_PASSWORD_CHANGE),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::FORBIDDEN, SEED_5900)
    );

    // Request an MFA code, exactly as the document does: 204 No Content, and an email.
    let mails_before = t.outbox.emails().len();
    let r = t
        .request(
            Method::POST,
            "/multi-factor-auth-trigger",
            Some(SEED_TRIGGER),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(t.outbox.emails().len(), mails_before + 1);
    let code = code_sent_to(&t, "sonia@example.com");
    let mail = t.last_email_to("sonia@example.com").unwrap();
    assert_eq!(mail.subject, "Verification Code for Secure Access");
    assert!(mail.text.contains("valid for 30 minutes"));

    // A wrong code, then the right one, in X-MFA-Code.
    let send = |code: String| {
        let (t, path, token) = (&t, path.clone(), token.clone());
        async move {
            t.request(
                Method::PATCH,
                &path,
                Some(SEED_PASSWORD_CHANGE),
                &[
                    ("authorization", &format!("Bearer {token}")),
                    ("x-mfa-code", &code),
                    ("content-type", "application/json"),
                ],
            )
            .await
        }
    };
    let r = send(wrong(&code)).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::FORBIDDEN, INVALID_5901)
    );
    let r = send(code.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // The password changed, and every session of the customer was revoked.
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"status":401,"code":"001","detail":"Invalid access token."}]}"#
        )
    );
    let r = post(
        &t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": "sonia@example.com", "password": PASSWORD}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"status":401,"code":"003","detail":"Failed to authenticate user."}]}"#
        )
    );
    let (token, _) = sign_in(&t, "sonia@example.com", "NewPass456!").await;

    // The grace period: the verified code keeps opening protected resources until it expires,
    // 30 minutes after it was issued.
    t.clock.advance(29 * 60);
    let r = glue(
        &t,
        Method::PATCH,
        &format!("/customers/{reference}"),
        Some(&doc("customers", json!({"phone": "+4915112345678"}))),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["id"], reference);
    assert_eq!(r.json["data"]["attributes"]["phone"], "+4915112345678");
    t.clock.advance(60);
    let r = glue(
        &t,
        Method::PATCH,
        &format!("/customers/{reference}"),
        Some(&doc("customers", json!({"phone": null}))),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::FORBIDDEN, INVALID_5901)
    );
    assert_eq!(
        t.user(sonia.id).await.phone.as_deref(),
        Some("+4915112345678")
    );
}

// ---------------------------------------------------------------- tokens

async fn refresh_tokens_rotate_and_a_replay_revokes_the_session(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_user(
        "kim@example.com",
        "kim@example.com",
        PASSWORD,
        Role::Customer,
    )
    .await;
    let (access, refresh) = sign_in(&t, "kim@example.com", PASSWORD).await;
    let refresh_doc = |token: &str| doc("refresh-tokens", json!({"refreshToken": token}));
    let r = post(&t, "/refresh-tokens", &refresh_doc(&refresh), None, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["data"]["type"], "refresh-tokens");
    let second = r.json["data"]["attributes"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_access = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second, refresh);
    assert_eq!(statuses(&t, &second_access).await.len(), 3);

    let failed = r#"{"errors":[{"status":401,"code":"004","detail":"Failed to refresh token."}]}"#;
    let r = post(&t, "/refresh-tokens", &refresh_doc(&refresh), None, None).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::UNAUTHORIZED, failed),
        "a replay"
    );
    let r = post(&t, "/refresh-tokens", &refresh_doc(&second), None, None).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::UNAUTHORIZED, failed),
        "the family died"
    );
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&second_access),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "so did its access tokens"
    );
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&access),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Sign-out of one session.
    let (access, refresh) = sign_in(&t, "kim@example.com", PASSWORD).await;
    let (other_access, other_refresh) = sign_in(&t, "kim@example.com", PASSWORD).await;
    let r = glue(
        &t,
        Method::DELETE,
        &format!("/refresh-tokens/{refresh}"),
        None,
        Some(&access),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = post(&t, "/refresh-tokens", &refresh_doc(&refresh), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses(&t, &other_access).await.len(),
        3,
        "the other session lives"
    );
    // Someone else's refresh token is not the caller's to revoke: 204, nothing happens.
    t.add_user(
        "lee@example.com",
        "lee@example.com",
        PASSWORD,
        Role::Customer,
    )
    .await;
    let (lee, _) = sign_in(&t, "lee@example.com", PASSWORD).await;
    let r = glue(
        &t,
        Method::DELETE,
        &format!("/refresh-tokens/{other_refresh}"),
        None,
        Some(&lee),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = post(
        &t,
        "/refresh-tokens",
        &refresh_doc(&other_refresh),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "still kim's");
    let other_access = r.json["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // `mine`: every token of the caller.
    let r = glue(
        &t,
        Method::DELETE,
        "/refresh-tokens/mine",
        None,
        Some(&other_access),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&other_access),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses(&t, &lee).await.len(),
        3,
        "another customer is untouched"
    );
}

async fn lifetimes_and_algorithm_are_configurable(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_GLUE_TOKEN_ALG", "EdDSA"),
            ("LATCHKEY_GLUE_ACCESS_TOKEN_SECONDS", "600"),
            ("LATCHKEY_GLUE_REFRESH_TOKEN_SECONDS", "3600"),
            ("LATCHKEY_GLUE_AUDIENCE", "shop"),
        ],
    )
    .await;
    t.add_user("ed@example.com", "ed@example.com", PASSWORD, Role::Customer)
        .await;
    let r = post(
        &t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": "ed@example.com", "password": PASSWORD}),
        ),
        None,
        None,
    )
    .await;
    let a = &r.json["data"]["attributes"];
    assert_eq!(
        (a["expiresIn"].as_i64(), a["refreshTokenExpiresIn"].as_i64()),
        (Some(600), Some(3600))
    );
    let token = a["accessToken"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    jsonwebtoken_verify(token, &jwks(&t).await, "shop", "http://127.0.0.1:8080", T0).unwrap();
    assert!(
        jsonwebtoken_verify(
            token,
            &jwks(&t).await,
            "frontend",
            "http://127.0.0.1:8080",
            T0
        )
        .is_err()
    );
    t.clock.advance(603); // past exp and the two seconds of tolerated skew
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired");
}

async fn failed_sign_ins_answer_429_until_the_block_ends(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_user(
        "max@example.com",
        "max@example.com",
        PASSWORD,
        Role::Customer,
    )
    .await;
    let attempt = |password: &'static str| {
        let t = &t;
        async move {
            post(
                t,
                "/access-tokens",
                &doc(
                    "access-tokens",
                    json!({"username": "max@example.com", "password": password}),
                ),
                None,
                None,
            )
            .await
        }
    };
    for _ in 0..6 {
        assert_eq!(attempt("wrongPass1").await.status, StatusCode::UNAUTHORIZED);
    }
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.json["errors"][0]["code"], "4401");
    assert_eq!(
        r.json["errors"][0]["detail"],
        "Too many log in attempts from your address. Please wait 30 minutes before trying again."
    );
    assert_eq!(r.headers["retry-after"], "1800");
    // An unknown customer gets what a wrong password gets.
    let r = post(
        &t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": "nobody@example.com", "password": PASSWORD}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["errors"][0]["code"], "003");
    t.clock.advance(1800);
    assert_eq!(attempt(PASSWORD).await.status, StatusCode::CREATED);
}

// ---------------------------------------------------------------- races

async fn twenty_parallel_wrong_codes_count_three_and_block_the_code(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    let (id, token) = customer_with_email_mfa(&t, "race@example.com").await;
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let code = code_sent_to(&t, "race@example.com");
    let bad = wrong(&code);
    let path = format!("/customers/DE--{id}");
    let body = doc("customers", json!({"phone": "+4915112345678"}));
    let results = race(20, |_| {
        let (t, bad, token, path, body) = (
            t.clone(),
            bad.clone(),
            token.clone(),
            path.clone(),
            body.clone(),
        );
        async move {
            glue(
                &t,
                Method::PATCH,
                &path,
                Some(&body),
                Some(&token),
                Some(&bad),
            )
            .await
        }
    })
    .await;
    for r in &results {
        assert_eq!(
            (r.status, r.text.as_str()),
            (StatusCode::FORBIDDEN, INVALID_5901)
        );
    }
    let slot = t
        .store
        .get(
            &code_record::key(&id.to_string(), "glue-mfa", "email"),
            t.clock.now(),
        )
        .await
        .unwrap()
        .unwrap();
    let slot = code_record::Slot::try_from(&slot).unwrap();
    assert_eq!(
        slot.tries, 3,
        "exactly three wrong codes were counted on the code"
    );
    assert_eq!(slot.tries, slot.max_tries, "the code is blocked");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::FORBIDDEN, INVALID_5901),
        "the right code, after them, fails"
    );
    assert_eq!(t.user(id).await.phone, None, "nothing changed");
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a blocked code is not replaced before it expires"
    );
    assert_eq!(r.json["errors"][0]["code"], "5910");
}

async fn twenty_parallel_activations_activate_once(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    let user = t
        .add_user(
            "twenty@example.com",
            "twenty@example.com",
            PASSWORD,
            Role::Customer,
        )
        .await;
    let (token, _) = sign_in(&t, "twenty@example.com", PASSWORD).await;
    let results = race(20, |_| {
        let (t, token) = (t.clone(), token.clone());
        async move {
            post(
                &t,
                "/multi-factor-auth-type-activate",
                &mfa("multi-factor-auth-type-activate", "email"),
                Some(&token),
                None,
            )
            .await
        }
    })
    .await;
    for r in &results {
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let mails: Vec<_> = t
        .outbox
        .emails()
        .into_iter()
        .filter(|e| e.to == "twenty@example.com")
        .collect();
    assert_eq!(mails.len(), 1, "one activation, one code");
    assert_eq!(t.user(user.id).await.email_otp, CodeFactor::Pending);

    // The authenticator app: every racer is shown the one pending secret.
    let results = race(20, |_| {
        let (t, token) = (t.clone(), token.clone());
        async move {
            post(
                &t,
                "/multi-factor-auth-type-activate",
                &mfa("multi-factor-auth-type-activate", "totp"),
                Some(&token),
                None,
            )
            .await
        }
    })
    .await;
    let secrets: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json["data"]["attributes"]["secret"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(secrets.len(), 1);
}

// ---------------------------------------------------------------- every error

async fn every_mfa_error_is_reachable(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (id, token) = customer_with_email_mfa(&t, "errs@example.com").await;
    let expect = |r: &Reply, status: u16, code: &str, detail: &str| {
        assert_eq!(
            r.text,
            json!({"errors": [{"status": status, "code": code, "detail": detail}]}).to_string()
        );
    };
    let trigger = |t: &'static str| mfa("multi-factor-auth-trigger", t);

    // 5900: no code where one is needed.
    let r = post(
        &t,
        "/multi-factor-auth-type-deactivate",
        &mfa("multi-factor-auth-type-deactivate", "email"),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 403, "5900", "X-MFA-Code header is missing.");
    // 5901: a wrong one.
    let r = post(
        &t,
        "/multi-factor-auth-type-deactivate",
        &mfa("multi-factor-auth-type-deactivate", "email"),
        Some(&token),
        Some("000000"),
    )
    .await;
    expect(&r, 403, "5901", "X-MFA-Code is invalid.");
    // 5902: no type.
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &doc("multi-factor-auth-trigger", json!({})),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5902", "MFA type is missing.");
    // 5904: already on.
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &mfa("multi-factor-auth-type-activate", "email"),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5904", "MFA type already activated.");
    // 5906: a type the project does not offer, or one the customer has not activated.
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("fax"),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5906", "MFA type is not found.");
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("sms"),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5906", "MFA type is not found.");
    // 5910: the code could not be sent — 503, and nothing was counted: of the five sends an
    // account may have per window, the activation used one, and four more go out.
    t.outbox.fail_sends(Some(true));
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("email"),
        Some(&token),
        None,
    )
    .await;
    expect(
        &r,
        503,
        "5910",
        "Something went wrong while sending your code. Please try again later or contact the system administrator.",
    );
    t.outbox.fail_sends(None);
    for _ in 0..4 {
        let r = post(
            &t,
            "/multi-factor-auth-trigger",
            &trigger("email"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=900).contains(&wait),
        "until the 15-minute window ends: {wait}"
    );
    assert_eq!(
        r.json["errors"][0]["detail"],
        format!(
            "Too many codes were requested. Please wait {} minutes before trying again.",
            (wait + 59) / 60
        )
    );

    // 5905 and 5907: the token's customer was deleted since.
    let r = glue(
        &t,
        Method::DELETE,
        &format!("/customers/DE--{id}"),
        None,
        Some(&token),
        Some(&code_sent_to(&t, "errs@example.com")),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5905", "No customer identifier provided.");
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("email"),
        Some(&token),
        None,
    )
    .await;
    expect(&r, 400, "5907", "Customer not found.");

    // 5908 and 5909: the same for a back-office user.
    let admin = t
        .add_user("boss", "boss@example.com", PASSWORD, Role::Admin)
        .await;
    let bo = back_office_token(&t, "boss", PASSWORD).await;
    let r = glue(
        &t,
        Method::DELETE,
        "/customers/DE--999/multi-factor-auth",
        None,
        Some(&bo),
        None,
    )
    .await;
    expect(&r, 400, "5907", "Customer not found.");
    accounts::delete(t.db(), admin.id, "test").await.unwrap();
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger("email"),
        Some(&bo),
        None,
    )
    .await;
    expect(&r, 400, "5908", "User not found.");
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&bo),
        None,
    )
    .await;
    expect(&r, 400, "5909", "No user identifier provided.");
}

async fn back_office_token(t: &TestApp, username: &str, password: &str) -> String {
    let body = format!("grant_type=password&username={username}&password={password}");
    let r = t
        .request(
            Method::POST,
            "/token",
            Some(&body),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["access_token"].as_str().unwrap().to_owned()
}

/// A store that runs a hook once, right after the first batch read once armed: another request's
/// write landing between a request's read and its own write.
struct Interleaving {
    inner: Arc<dyn Store>,
    hook: Mutex<Option<(Key, Update, Cond)>>,
}

#[async_trait]
impl Store for Interleaving {
    async fn get(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.inner.get(key, now).await
    }
    async fn get_many(&self, keys: &[Key], now: i64) -> Result<Vec<Option<Item>>, StoreError> {
        let out = self.inner.get_many(keys, now).await;
        let hook = self.hook.lock().unwrap().take();
        if let Some((key, update, cond)) = hook {
            self.inner.update(&key, update, cond, now).await.unwrap();
        }
        out
    }
    async fn put(&self, item: Item, cond: Cond, now: i64) -> Result<(), StoreError> {
        self.inner.put(item, cond, now).await
    }
    async fn update(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
        now: i64,
    ) -> Result<Item, StoreError> {
        self.inner.update(key, update, cond, now).await
    }
    async fn delete(&self, key: &Key, cond: Cond, now: i64) -> Result<Option<Item>, StoreError> {
        self.inner.delete(key, cond, now).await
    }
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, sk_prefix, limit, now).await
    }
    async fn scan_sk(&self, sk: &str, limit: usize, now: i64) -> Result<Vec<Item>, StoreError> {
        self.inner.scan_sk(sk, limit, now).await
    }
    async fn transact(&self, ops: Vec<TxOp>, now: i64) -> Result<(), StoreError> {
        self.inner.transact(ops, now).await
    }
}

/// 5903: the type was switched off by another request between this one's read and its write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_that_loses_a_race_answers_5903() {
    let store = Arc::new(Interleaving {
        inner: Arc::new(MemoryStore::new()),
        hook: Mutex::new(None),
    });
    let t = TestApp::with(store.clone(), &[]);
    let (id, token) = customer_with_email_mfa(&t, "racer@example.com").await;
    let code = code_sent_to(&t, "racer@example.com"); // the verified activation code: grace
    let other =
        profile::code_factor_transition(id, Factor::Email, &[CodeFactor::On], CodeFactor::Off, T0)
            .unwrap();
    *store.hook.lock().unwrap() = Some((other.key, other.update, other.cond));
    let r = post(
        &t,
        "/multi-factor-auth-type-deactivate",
        &mfa("multi-factor-auth-type-deactivate", "email"),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(
        r.text,
        r#"{"errors":[{"status":400,"code":"5903","detail":"Failed to deactivate MFA."}]}"#
    );
    assert_eq!(t.user(id).await.email_otp, CodeFactor::Off);
}

// ---------------------------------------------------------------- MFA types

async fn deactivation_needs_a_code_of_that_type(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (id, token) = customer_with_email_mfa(&t, "off@example.com").await;
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "email"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let code = code_sent_to(&t, "off@example.com");
    let r = post(
        &t,
        "/multi-factor-auth-type-deactivate",
        &mfa("multi-factor-auth-type-deactivate", "email"),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(t.user(id).await.email_otp, CodeFactor::Off);
    assert_eq!(status_of(&statuses(&t, &token).await, "email"), 0);
    // Without MFA the protected resource is open again.
    let r = glue(
        &t,
        Method::PATCH,
        &format!("/customers/DE--{id}"),
        Some(&doc("customers", json!({"phone": "+4915112345678"}))),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn a_new_trigger_kills_the_old_code_and_keeps_its_tries(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (id, token) = customer_with_email_mfa(&t, "again@example.com").await;
    let trigger = mfa("multi-factor-auth-trigger", "email");
    post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger,
        Some(&token),
        None,
    )
    .await;
    let first = code_sent_to(&t, "again@example.com");
    let path = format!("/customers/DE--{id}");
    let body = doc("customers", json!({"phone": "+4915112345678"}));
    for _ in 0..2 {
        let r = glue(
            &t,
            Method::PATCH,
            &path,
            Some(&body),
            Some(&token),
            Some(&wrong(&first)),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger,
        Some(&token),
        None,
    )
    .await;
    let second = code_sent_to(&t, "again@example.com");
    if second != first {
        let r = glue(
            &t,
            Method::PATCH,
            &path,
            Some(&body),
            Some(&token),
            Some(&first),
        )
        .await;
        assert_eq!(r.text, INVALID_5901, "the old code is invalidated");
    } else {
        let r = glue(
            &t,
            Method::PATCH,
            &path,
            Some(&body),
            Some(&token),
            Some(&wrong(&second)),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&second),
    )
    .await;
    assert_eq!(
        r.text, INVALID_5901,
        "the new code inherited the used-up tries"
    );
    t.clock.advance(1800);
    post(
        &t,
        "/multi-factor-auth-trigger",
        &trigger,
        Some(&token),
        None,
    )
    .await;
    let third = code_sent_to(&t, "again@example.com");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&third),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "after the blocked code expired: {}",
        r.text
    );
}

async fn totp_and_sms_types_through_the_same_core(backend: Backend) {
    let t = TestApp::on(backend).await;
    let user = t
        .add_user(
            "app@example.com",
            "app@example.com",
            PASSWORD,
            Role::Customer,
        )
        .await;
    // The customer's own number (as `PATCH /customers` sets it): known, SMS codes not yet on.
    // (A number an admin sets is vouched for and switches them on: `accounts::set_phone`.)
    let contact = accounts::Contact {
        email: None,
        phone: Some(Some("+4915112345678")),
    };
    accounts::change_contact(t.db(), user.id, contact, "test")
        .await
        .unwrap();
    let (token, _) = sign_in(&t, "app@example.com", PASSWORD).await;

    // totp: the secret to put in the app, then a code from it.
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &mfa("multi-factor-auth-type-activate", "totp"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = &r.json["data"]["attributes"];
    let secret = a["secret"].as_str().unwrap().to_owned();
    assert!(a["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(
        a["qrCode"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(status_of(&statuses(&t, &token).await, "totp"), 1);
    let now = t.clock.now();
    let code = otp::oathtool(&secret, now);
    assert_eq!(code, otp::totp(&secret, now), "oathtool agrees");
    let r = post(
        &t,
        "/multi-factor-auth-type-verify",
        &mfa("multi-factor-auth-type-verify", "totp"),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(status_of(&statuses(&t, &token).await, "totp"), 2);

    // Protected resources take the app's codes, each once.
    t.clock.advance(30);
    let path = format!("/customers/DE--{}", user.id);
    let body = doc("customers", json!({"email": "app2@example.com"}));
    let code = otp::totp(&secret, t.clock.now());
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.text, INVALID_5901, "a TOTP code works once");

    // sms: activating it needs a code of the enabled type (totp), then the texted code.
    let activate_sms = mfa("multi-factor-auth-type-activate", "sms");
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &activate_sms,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.text, SEED_5900);
    t.clock.advance(30);
    let code = otp::totp(&secret, t.clock.now());
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &activate_sms,
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        t.outbox.texts().iter().any(|s| s.to == "+4915112345678"),
        "a text, not an email"
    );
    let sms_code = code_sent_to(&t, "+4915112345678");
    let r = post(
        &t,
        "/multi-factor-auth-type-verify",
        &mfa("multi-factor-auth-type-verify", "sms"),
        Some(&token),
        Some(&sms_code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // The most recently triggered type is the one X-MFA-Code is checked against.
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "sms"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let sms_code = code_sent_to(&t, "+4915112345678");
    let body = doc("customers", json!({"email": "app3@example.com"}));
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&sms_code),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    t.clock.advance(30);
    let r = post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "totp"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "for totp nothing is sent");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&sms_code),
    )
    .await;
    assert_eq!(r.text, INVALID_5901, "totp was asked for last");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&body),
        Some(&token),
        Some(&otp::totp(&secret, t.clock.now())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

// ---------------------------------------------------------------- customers

async fn email_changes_move_the_login(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (id, token) = customer_with_email_mfa(&t, "old@example.com").await;
    t.add_user(
        "taken@example.com",
        "taken@example.com",
        PASSWORD,
        Role::Customer,
    )
    .await;
    let code = code_sent_to(&t, "old@example.com");
    let path = format!("/customers/DE--{id}");
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&doc("customers", json!({"email": "taken@example.com"}))),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"errors":[{"status":422,"code":"410","detail":"Customer with this email already exists."}]}"#
        )
    );
    let r = glue(
        &t,
        Method::PATCH,
        &path,
        Some(&doc("customers", json!({"email": "new@example.com"}))),
        Some(&token),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["data"]["attributes"]["email"], "new@example.com");
    let r = post(
        &t,
        "/access-tokens",
        &doc(
            "access-tokens",
            json!({"username": "old@example.com", "password": PASSWORD}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old login is given up"
    );
    sign_in(&t, "new@example.com", PASSWORD).await;
    // Codes now go to the new address.
    post(
        &t,
        "/multi-factor-auth-trigger",
        &mfa("multi-factor-auth-trigger", "email"),
        Some(&token),
        None,
    )
    .await;
    assert!(t.last_email_to("new@example.com").is_some());
}

async fn bad_input_gets_glue_errors_and_changes_nothing(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (id, token) = customer_with_email_mfa(&t, "bad@example.com").await;
    let other = t
        .add_user(
            "other@example.com",
            "other@example.com",
            PASSWORD,
            Role::Customer,
        )
        .await;
    let before = t.user(id).await;
    let mails = t.outbox.emails().len();
    let code = code_sent_to(&t, "bad@example.com");
    let plain = |status: u16, detail: &str| {
        json!({"errors": [{"status": status, "detail": detail}]}).to_string()
    };
    let coded = |status: u16, code: &str, detail: &str| {
        json!({"errors": [{"status": status, "code": code, "detail": detail}]}).to_string()
    };
    let mine = format!("/customer-password/DE--{id}");
    let cases: Vec<BadInput<'_>> = vec![
        (Method::POST, "/access-tokens".into(), Some("{not json".into()), None, None, 400, plain(400, "Post data is invalid.")),
        (Method::POST, "/access-tokens".into(), Some("[1,2]".into()), None, None, 400, plain(400, "Post data is invalid.")),
        (Method::POST, "/access-tokens".into(), Some(r#"{"username":"bad@example.com","password":"oldPass123"}"#.into()), None, None, 400, plain(400, "Post data is invalid.")),
        (Method::POST, "/access-tokens".into(), Some(doc("customers", json!({}))), None, None, 400, plain(400, "Invalid type.")),
        (Method::POST, "/access-tokens".into(), Some(doc("access-tokens", json!({"username": 7}))), None, None, 422,
            json!({"errors": [{"status": 422, "code": "901", "detail": "username => This value should be of type string."}, {"status": 422, "code": "901", "detail": "password => This value should not be blank."}]}).to_string()),
        (Method::GET, "/access-tokens".into(), None, None, None, 405, plain(405, "Method Not Allowed")),
        (Method::GET, "/multi-factor-auth-nothing".into(), None, None, None, 404, plain(404, "Not Found")),
        (Method::GET, "/multi-factor-auth-types".into(), None, None, None, 403, coded(403, "002", "Missing access token.")),
        (Method::GET, "/multi-factor-auth-types".into(), None, Some("forged.token.here"), None, 401, coded(401, "001", "Invalid access token.")),
        (Method::POST, "/multi-factor-auth-trigger".into(), Some(doc("multi-factor-auth-trigger", json!({"type": ["email"]}))), Some(&token), None, 400, coded(400, "5902", "MFA type is missing.")),
        (Method::PATCH, format!("/customer-password/DE--{}", other.id), Some(SEED_PASSWORD_CHANGE.into()), Some(&token), Some(&code), 403, coded(403, "411", "Unauthorized request.")),
        (Method::PATCH, "/customer-password".into(), Some(SEED_PASSWORD_CHANGE.into()), Some(&token), Some(&code), 400, coded(400, "405", "Customer reference is missing.")),
        (Method::PATCH, mine.clone(), Some(doc("customer-password", json!({"password": PASSWORD, "newPassword": "NewPass456!", "confirmPassword": "NewPass457!"}))), Some(&token), Some(&code), 422,
            coded(422, "406", "Value in field newPassword should be identical to value in the confirmPassword field.")),
        (Method::PATCH, mine.clone(), Some(doc("customer-password", json!({"password": PASSWORD, "newPassword": "short", "confirmPassword": "short"}))), Some(&token), Some(&code), 422,
            json!({"errors": [
                {"status": 422, "code": "901", "detail": "newPassword => This value is too short. It should have 8 characters or more."},
                {"status": 422, "code": "901", "detail": "newPassword => Your password must include at least one uppercase letter, one lowercase letter, one number, and one special character from the following list: !@#$%^&*()_-+=[]{}|;:<>.,/?\\~. Non-Latin and other special characters are not allowed."},
                {"status": 422, "code": "901", "detail": "confirmPassword => This value is too short. It should have 8 characters or more."}]}).to_string()),
        (Method::PATCH, mine.clone(), Some(doc("customer-password", json!({"password": "wrongPass1", "newPassword": "NewPass456!", "confirmPassword": "NewPass456!"}))), Some(&token), Some(&code), 400,
            coded(400, "408", "Invalid password")),
        (Method::PATCH, format!("/customers/DE--{id}"), Some(doc("customers", json!({"firstName": "Bad", "email": "nope"}))), Some(&token), Some(&code), 422,
            coded(422, "901", "firstName => This field is not supported by this server.")),
        (Method::PATCH, format!("/customers/DE--{id}"), Some(doc("customers", json!({"email": "nope"}))), Some(&token), Some(&code), 422,
            coded(422, "901", "email => This value is not a valid email address.")),
        (Method::PATCH, format!("/customers/DE--{id}"), Some(doc("customers", json!({"phone": "0151"}))), Some(&token), Some(&code), 422,
            coded(422, "901", "phone => This value is not a valid phone number (E.164: '+' then 8 to 15 digits).")),
        (Method::DELETE, format!("/customers/DE--{id}/multi-factor-auth"), None, Some(&token), Some(&code), 403, coded(403, "411", "Unauthorized request.")),
        (Method::PATCH, mine.clone(), Some("x".repeat(70_000)), Some(&token), Some(&code), 413, plain(413, "Request Entity Too Large")),
    ];
    for (method, path, body, bearer, mfa_code, status, text) in cases {
        let r = glue(&t, method.clone(), &path, body.as_deref(), bearer, mfa_code).await;
        assert_eq!(
            (r.status.as_u16(), &r.text),
            (status, &text),
            "{method} {path}"
        );
    }
    // OAuth 2.0's own errors on /token.
    let form = |body: &str| {
        let t = &t;
        let body = body.to_owned();
        async move {
            t.request(
                Method::POST,
                "/token",
                Some(&body),
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .await
        }
    };
    let r = form("grant_type=client_credentials").await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let r = form("username=a").await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let r = form("grant_type=password&username=bad%40example.com&password=oldPass123").await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "customers are not back-office users"
    );

    let after = t.user(id).await;
    assert_eq!(
        (
            after.email.as_str(),
            &after.phone,
            after.password_hash.as_str(),
            after.token_gen,
            after.email_otp
        ),
        (
            before.email.as_str(),
            &before.phone,
            before.password_hash.as_str(),
            before.token_gen,
            before.email_otp
        ),
        "nothing changed"
    );
    assert_eq!(t.outbox.emails().len(), mails, "nothing sent");
}

async fn the_protected_set_is_configurable(backend: Backend) {
    let t = TestApp::on_with(backend, &[("LATCHKEY_GLUE_PROTECTED", "DELETE customers")]).await;
    let (id, token) = customer_with_email_mfa(&t, "conf@example.com").await;
    let r = glue(
        &t,
        Method::PATCH,
        &format!("/customers/DE--{id}"),
        Some(&doc("customers", json!({"phone": "+4915112345678"}))),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "not protected here: {}", r.text);
    let r = glue(
        &t,
        Method::DELETE,
        &format!("/customers/DE--{id}"),
        None,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.text, SEED_5900);
}

// ---------------------------------------------------------------- back office

async fn back_office_users_use_oauth_and_the_same_mfa_routes(backend: Backend) {
    let t = TestApp::on(backend).await;
    let admin = t
        .add_user("boss", "boss@example.com", PASSWORD, Role::Admin)
        .await;
    let (customer, customer_token) = customer_with_email_mfa(&t, "shopper@example.com").await;

    let r = t
        .request(
            Method::POST,
            "/token",
            Some("grant_type=password&username=boss&password=oldPass123"),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 28800);
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();
    let claims = jsonwebtoken_verify(
        &access,
        &jwks(&t).await,
        "backoffice",
        "http://127.0.0.1:8080",
        T0,
    )
    .unwrap();
    let sub: Value = serde_json::from_str(claims["sub"].as_str().unwrap()).unwrap();
    assert_eq!(sub["id_user"], admin.id);
    let r = t
        .request(
            Method::POST,
            "/token",
            Some("grant_type=password&username=boss&password=wrong"),
            &[],
        )
        .await;
    assert_eq!(
        r.text,
        r#"{"error":"invalid_grant","error_description":"The user credentials were incorrect."}"#
    );
    let r = t
        .request(
            Method::POST,
            "/token",
            Some(&format!("grant_type=refresh_token&refresh_token={refresh}")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.json["access_token"].as_str().unwrap().to_owned();
    // A back-office token is no customer's: customer resources refuse it, Glue's customer
    // refresh route does not take its refresh tokens.
    let r = post(
        &t,
        "/refresh-tokens",
        &doc(
            "refresh-tokens",
            json!({"refreshToken": r.json["refresh_token"].as_str().unwrap()}),
        ),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = glue(
        &t,
        Method::PATCH,
        &format!("/customers/DE--{}", admin.id),
        Some(&doc("customers", json!({}))),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(r.json["errors"][0]["code"], "411");

    // The same MFA routes.
    assert_eq!(statuses(&t, &access).await.len(), 3);
    let r = post(
        &t,
        "/multi-factor-auth-type-activate",
        &mfa("multi-factor-auth-type-activate", "email"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let code = code_sent_to(&t, "boss@example.com");
    let r = post(
        &t,
        "/multi-factor-auth-type-verify",
        &mfa("multi-factor-auth-type-verify", "email"),
        Some(&access),
        Some(&code),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // The admin route that switches a customer's MFA off is itself protected by the admin's.
    let reset = format!("/customers/DE--{customer}/multi-factor-auth");
    let r = glue(&t, Method::DELETE, &reset, None, Some(&access), None).await;
    assert_eq!(r.text, SEED_5900);
    let r = glue(&t, Method::DELETE, &reset, None, Some(&access), Some(&code)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let after = t.user(customer).await;
    assert_eq!(after.email_otp, CodeFactor::Off);
    let r = glue(
        &t,
        Method::GET,
        "/multi-factor-auth-types",
        None,
        Some(&customer_token),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the customer's sessions were revoked"
    );
}

latchkey_tests::flow_suite!(
    the_seed_documents_flow_verbatim,
    refresh_tokens_rotate_and_a_replay_revokes_the_session,
    lifetimes_and_algorithm_are_configurable,
    failed_sign_ins_answer_429_until_the_block_ends,
    twenty_parallel_wrong_codes_count_three_and_block_the_code,
    twenty_parallel_activations_activate_once,
    every_mfa_error_is_reachable,
    deactivation_needs_a_code_of_that_type,
    a_new_trigger_kills_the_old_code_and_keeps_its_tries,
    totp_and_sms_types_through_the_same_core,
    email_changes_move_the_login,
    bad_input_gets_glue_errors_and_changes_nothing,
    the_protected_set_is_configurable,
    back_office_users_use_oauth_and_the_same_mfa_routes,
);

#[test]
fn the_validator_refuses_what_is_not_json_api() {
    let bad = [
        json!({"data": {"type": "x", "id": 5}}),
        json!({"errors": [{"status": 400, "code": 5}]}),
        json!({"nothing": true}),
    ];
    for (doc, problems) in bad.iter().zip(jsonapi::violations(
        &bad.iter().map(jsonapi::strict_form).collect::<Vec<_>>(),
    )) {
        assert!(!problems.is_empty(), "{doc} passed");
    }
}

/// A malformed request and its exact answer: method, path, body, bearer token, `X-MFA-Code`,
/// status, body.
type BadInput<'a> = (
    Method,
    String,
    Option<String>,
    Option<&'a str>,
    Option<&'a str>,
    u16,
    String,
);
