//! The Magento admin 2FA dialect, end to end through the router: the seed document's flow,
//! first-time set-up, customer and integration tokens, revocation, lockout, races, bad input.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{Method, StatusCode};
use latchkey_core::identity::accounts;
use latchkey_core::identity::users::Role;
use latchkey_core::ports::Clock;
use latchkey_tests::harness::{Backend, Reply, T0, TestApp, tfa_token_from};
use latchkey_tests::otp;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "/rest/V1/integration/admin/token";
const CUSTOMER_TOKEN: &str = "/rest/V1/integration/customer/token";
const AUTHENTICATE: &str = "/rest/V1/tfa/provider/google/authenticate";
const CONFIGURE: &str = "/rest/V1/tfa/provider/google/configure";
const ACTIVATE: &str = "/rest/V1/tfa/provider/google/activate";

const SIGN_IN_INCORRECT: &str = r#"{"message":"The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."}"#;
const USE_PROVIDER: &str = r#"{"message":"Please use the 2fa provider-specific endpoints to obtain a token.","parameters":{"active_providers":["google"]}}"#;
const MUST_CONFIGURE: &str = r#"{"message":"You are required to configure personal Two-Factor Authorization in order to login. Please check your email."}"#;
const INVALID_CODE: &str = r#"{"message":"Invalid code."}"#;

fn creds(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

fn with_otp(username: &str, password: &str, otp: &str) -> String {
    json!({"username": username, "password": password, "otp": otp}).to_string()
}

/// Decodes a JWT's header and claims without trusting it (for shape checks).
fn jwt_parts(token: &str) -> (String, Value) {
    use base64::Engine;
    let mut parts = token.split('.');
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = String::from_utf8(b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

/// Verifies an access token of user `uid` at token generation `generation` with
/// jsonwebtoken's own decoder (not latchkey's wrapper) and an independently derived key.
fn independent_check(
    t: &TestApp,
    token: &str,
    uid: u64,
    generation: u64,
) -> Result<Value, jsonwebtoken::errors::Error> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let key = latchkey_tests::independent::bound_key(
        &t.hmac_secret(),
        &format!("magento-access:{uid}:{generation}"),
    );
    decode::<Value>(token, &DecodingKey::from_secret(&key), &v).map(|data| data.claims)
}

fn independent_verify(t: &TestApp, token: &str, uid: u64, generation: u64, now: i64) -> Value {
    let claims = independent_check(t, token, uid, generation).expect("valid HS256 signature");
    assert!(claims["exp"].as_i64().unwrap() > now);
    claims
}

fn token_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json.as_str().expect("a bare JSON string").to_owned()
}

async fn the_seed_flow_admin_token_via_google_authenticator(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (admin, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;

    let r = t
        .post(ADMIN_TOKEN, &creds("shopadmin", "correct horse battery"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.text, USE_PROVIDER);

    let code = otp::totp(&secret, T0);
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp("shopadmin", "correct horse battery", &code),
        )
        .await;
    let token = token_of(&r);
    assert!(
        r.text.starts_with('"') && r.text.ends_with('"'),
        "the token is a bare JSON string"
    );

    let (header, claims) = jwt_parts(&token);
    assert_eq!(header, r#"{"kid":"1","alg":"HS256"}"#);
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["uid", "utypid", "iat", "exp"]);
    assert_eq!(claims["uid"], json!(admin.id));
    assert_eq!(claims["utypid"], json!(2));
    assert_eq!(claims["iat"], json!(T0));
    assert_eq!(claims["exp"], json!(T0 + 3600), "60 minutes by default");
    independent_verify(&t, &token, admin.id, 0, T0);
    assert!(
        independent_check(&t, &token, admin.id, 1).is_err(),
        "the key is bound to the user's token generation"
    );

    let r = t
        .get("/rest/V1/tfa/installed-providers", Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json[0]["code"], "google");
    let r = t
        .get(
            &format!("/rest/default/V1/tfa/user-providers/{}", admin.id),
            Some(&token),
        )
        .await;
    assert_eq!(r.json[0]["code"], "google");
    let r = t
        .get(
            &format!("/rest/V1/tfa/providers-to-activate/{}", admin.id),
            Some(&token),
        )
        .await;
    assert_eq!(r.json, json!([]), "google is active already");
}

async fn oathtool_codes_are_accepted(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t.add_admin_with_totp("ops", "correct horse battery").await;
    let code = otp::oathtool(&secret, T0);
    assert_eq!(
        code,
        otp::totp(&secret, T0),
        "two independent generators agree"
    );
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp("ops", "correct horse battery", &code),
        )
        .await;
    token_of(&r);
}

async fn first_time_setup_by_email_configure_and_activate(backend: Backend) {
    let t = TestApp::on(backend).await;
    let admin = t
        .add_user(
            "newadmin",
            "newadmin@example.com",
            "correct horse battery",
            Role::Admin,
        )
        .await;

    let r = t
        .post(ADMIN_TOKEN, &creds("newadmin", "correct horse battery"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.text, MUST_CONFIGURE);
    let email = t
        .last_email_to("newadmin@example.com")
        .expect("configuration email sent");
    let tfa_token = tfa_token_from(&email.text);

    let r = t
        .post(CONFIGURE, &json!({"tfaToken": tfa_token}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let keys: Vec<&str> = r
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["qr_code_base64", "secret_code"]);
    let secret = r.json["secret_code"].as_str().unwrap().to_owned();
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.json["qr_code_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // Asking again before activation shows the same secret (the user may have scanned it).
    let again = t
        .post(CONFIGURE, &json!({"tfaToken": tfa_token}).to_string())
        .await;
    assert_eq!(again.json["secret_code"], secret.as_str());

    // Providers to activate, by tfaToken, before activation.
    let r = t
        .get(
            &format!("/rest/V1/tfa/tfat-providers-to-activate?tfaToken={tfa_token}"),
            None,
        )
        .await;
    assert_eq!(r.json[0]["code"], "google");

    let wrong = t
        .post(
            ACTIVATE,
            &json!({"tfaToken": tfa_token, "otp": "000000"}).to_string(),
        )
        .await;
    assert_eq!(wrong.text, INVALID_CODE);

    let code = otp::totp(&secret, T0);
    let r = t
        .post(
            ACTIVATE,
            &json!({"tfaToken": tfa_token, "otp": code}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "true"));

    let r = t
        .post(
            ACTIVATE,
            &json!({"tfaToken": tfa_token, "otp": code}).to_string(),
        )
        .await;
    assert_eq!(r.json["message"], "Provider is already configured.");
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": tfa_token}).to_string())
        .await;
    assert_eq!(r.json["message"], "Provider is already configured.");

    // Now the password alone names the provider, and the code activated with is spent.
    let r = t
        .post(ADMIN_TOKEN, &creds("newadmin", "correct horse battery"))
        .await;
    assert_eq!(r.text, USE_PROVIDER);
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp("newadmin", "correct horse battery", &code),
        )
        .await;
    assert_eq!(
        r.text, INVALID_CODE,
        "the activation code cannot be replayed to sign in"
    );
    t.clock.advance(30);
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp(
                "newadmin",
                "correct horse battery",
                &otp::totp(&secret, T0 + 30),
            ),
        )
        .await;
    let token = token_of(&r);
    assert_eq!(jwt_parts(&token).1["uid"], json!(admin.id));
}

async fn tfa_tokens_and_access_tokens_do_not_stand_in_for_each_other(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_user(
        "cfg",
        "cfg@example.com",
        "correct horse battery",
        Role::Admin,
    )
    .await;
    t.post(ADMIN_TOKEN, &creds("cfg", "correct horse battery"))
        .await;
    let tfa_token = tfa_token_from(&t.last_email_to("cfg@example.com").unwrap().text);
    let r = t
        .get("/rest/V1/tfa/installed-providers", Some(&tfa_token))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a tfaToken is not an access token"
    );

    let (_, secret) = t.add_admin_with_totp("boss", "correct horse battery").await;
    let access = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp("boss", "correct horse battery", &otp::totp(&secret, T0)),
        )
        .await,
    );
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": access}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text,
        r#"{"message":"Invalid two-factor authorization token"}"#
    );
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": "abc"}).to_string())
        .await;
    assert_eq!(r.json["message"], "Invalid two-factor authorization token");

    t.clock.advance(3601);
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": tfa_token}).to_string())
        .await;
    assert_eq!(
        r.json["message"], "Invalid two-factor authorization token",
        "tfaToken lives one hour"
    );
}

async fn wrong_credentials_and_unknown_users_get_identical_answers(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let customer = t
        .add_user(
            "buyer",
            "buyer@example.com",
            "correct horse battery",
            Role::Customer,
        )
        .await;
    let wrong = t
        .post(ADMIN_TOKEN, &creds("shopadmin", "wrong password"))
        .await;
    let unknown = t
        .post(ADMIN_TOKEN, &creds("nobody", "wrong password"))
        .await;
    let customer_as_admin = t
        .post(
            ADMIN_TOKEN,
            &creds("buyer@example.com", "correct horse battery"),
        )
        .await;
    for r in [&wrong, &unknown, &customer_as_admin] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.text, SIGN_IN_INCORRECT);
    }
    let r = t
        .post(AUTHENTICATE, &with_otp("nobody", "x", "123456"))
        .await;
    assert_eq!(r.text, SIGN_IN_INCORRECT);
    let r = t
        .post(
            CUSTOMER_TOKEN,
            &creds("buyer@example.com", "wrong password"),
        )
        .await;
    assert_eq!(r.text, SIGN_IN_INCORRECT);
    // Nothing about the customer changed but its password's failure count.
    let after = accounts::get(t.db(), customer.id).await.unwrap().unwrap();
    assert_eq!(
        after.budgets.password.count, 2,
        "the admin-route attempt and the customer-route attempt both count"
    );
}

async fn wrong_and_replayed_codes_are_refused_with_the_same_answer(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let code = otp::totp(&secret, T0);
    let wrong_code = if code == "111111" { "222222" } else { "111111" };
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp("shopadmin", "correct horse battery", wrong_code),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::UNAUTHORIZED, INVALID_CODE)
    );
    token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp("shopadmin", "correct horse battery", &code),
        )
        .await,
    );
    let replay = t
        .post(
            AUTHENTICATE,
            &with_otp("shopadmin", "correct horse battery", &code),
        )
        .await;
    assert_eq!(
        (replay.status, replay.text.as_str()),
        (StatusCode::UNAUTHORIZED, INVALID_CODE)
    );
    // A code of an older step than the last one accepted is refused too, even inside the window.
    t.clock.advance(30);
    token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0 + 30),
            ),
        )
        .await,
    );
    let older = otp::totp(&secret, T0 - 30);
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp("shopadmin", "correct horse battery", &older),
        )
        .await;
    assert_eq!(r.text, INVALID_CODE);
    for bad in ["12345", "1234567", "abcdef", " 123456"] {
        let r = t
            .post(
                AUTHENTICATE,
                &with_otp("shopadmin", "correct horse battery", bad),
            )
            .await;
        assert_eq!(r.text, INVALID_CODE, "{bad:?}");
    }
}

async fn a_code_within_the_window_is_accepted_and_outside_is_not(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0 - 90),
            ),
        )
        .await;
    assert_eq!(r.text, INVALID_CODE, "three steps old");
    let r = t
        .post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0 - 30),
            ),
        )
        .await;
    token_of(&r);
}

async fn two_factor_switched_off_by_configuration_or_per_user(backend: Backend) {
    let t = TestApp::on_with(backend, &[("LATCHKEY_MAGENTO_TFA", "off")]).await;
    t.add_user(
        "plain",
        "plain@example.com",
        "correct horse battery",
        Role::Admin,
    )
    .await;
    let token = token_of(
        &t.post(ADMIN_TOKEN, &creds("plain", "correct horse battery"))
            .await,
    );
    assert_eq!(jwt_parts(&token).1["utypid"], json!(2));
    assert!(
        t.outbox.emails().is_empty(),
        "no configuration email when 2FA is off"
    );

    let t = TestApp::on(backend).await;
    t.add_user(
        "exempt",
        "exempt@example.com",
        "correct horse battery",
        Role::Admin,
    )
    .await;
    accounts::set_two_factor(t.db(), "exempt", false, "test")
        .await
        .unwrap();
    token_of(
        &t.post(ADMIN_TOKEN, &creds("exempt", "correct horse battery"))
            .await,
    );
}

async fn token_lifetime_is_configurable_and_expired_tokens_say_so(backend: Backend) {
    let t = TestApp::on_with(backend, &[("LATCHKEY_MAGENTO_CUSTOMER_TOKEN_MINUTES", "5")]).await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    let token = token_of(
        &t.post(
            CUSTOMER_TOKEN,
            &creds("buyer@example.com", "correct horse battery"),
        )
        .await,
    );
    assert_eq!(jwt_parts(&token).1["exp"], json!(T0 + 300));
    assert_eq!(
        t.get("/rest/V1/customers/me", Some(&token)).await.status,
        StatusCode::OK
    );
    t.clock.advance(301);
    let r = t.get("/rest/V1/customers/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text,
        r#"{"message":"The token has expired. Please sign in again."}"#
    );
}

async fn customer_token_me_and_revocation(backend: Backend) {
    let t = TestApp::on(backend).await;
    let buyer = t
        .add_user(
            "buyer",
            "Buyer@Example.com",
            "correct horse battery",
            Role::Customer,
        )
        .await;
    let token = token_of(
        &t.post(
            "/rest/default/V1/integration/customer/token",
            &creds("buyer@example.com", "correct horse battery"),
        )
        .await,
    );
    assert_eq!(jwt_parts(&token).1["utypid"], json!(3));
    let me = t.get("/rest/V1/customers/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["id"], json!(buyer.id));
    assert_eq!(me.json["email"], "Buyer@Example.com");

    let r = t
        .call(
            Method::POST,
            "/rest/V1/integration/customer/revoke-customer-token",
            None,
            Some(&token),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "true"));
    let r = t.get("/rest/V1/customers/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json["message"],
        "The consumer isn't authorized to access %resources."
    );
    // A token issued right after the revocation works, within the same second (the clock has
    // not moved), and the revoked one stays dead.
    let fresh = token_of(
        &t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await,
    );
    assert_eq!(jwt_parts(&fresh).1["iat"], jwt_parts(&token).1["iat"]);
    let r = t.get("/rest/V1/customers/me", Some(&fresh)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        t.get("/rest/V1/customers/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn admin_revocation_kills_every_earlier_token(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (admin, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let token = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0),
            ),
        )
        .await,
    );
    accounts::revoke_tokens(t.db(), admin.id, "test")
        .await
        .unwrap();
    let r = t
        .get("/rest/V1/tfa/installed-providers", Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.text,
        r#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"Magento_TwoFactorAuth::tfa"}}"#
    );
}

async fn protected_routes_refuse_missing_bad_and_wrong_kind_tokens(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    let admin = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0),
            ),
        )
        .await,
    );
    let customer = token_of(
        &t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await,
    );

    let admin_route = "/rest/V1/tfa/installed-providers";
    for token in [
        None,
        Some("garbage"),
        Some("a.b.c"),
        Some(customer.as_str()),
    ] {
        let r = t.get(admin_route, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(
            r.json["message"],
            "The consumer isn't authorized to access %resources."
        );
        assert_eq!(
            r.json["parameters"]["resources"],
            "Magento_TwoFactorAuth::tfa"
        );
    }
    let r = t.get("/rest/V1/customers/me", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["parameters"]["resources"], "self");

    // A signature made with another key is refused.
    let mut forged = admin.clone();
    forged.pop();
    forged.push(if admin.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        t.get(admin_route, Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn an_admin_resets_a_provider_and_the_user_must_set_up_again(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (admin, secret) = t.add_admin_with_totp("boss", "correct horse battery").await;
    let (other, _) = t
        .add_admin_with_totp("clerk", "correct horse battery")
        .await;
    let token = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp("boss", "correct horse battery", &otp::totp(&secret, T0)),
        )
        .await,
    );
    let path = format!("/rest/V1/tfa/provider/google/reset/{}", other.id);
    let r = t.call(Method::POST, &path, None, Some(&token)).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "true"));
    let r = t
        .post(ADMIN_TOKEN, &creds("clerk", "correct horse battery"))
        .await;
    assert_eq!(r.text, MUST_CONFIGURE);
    let r = t
        .get(
            &format!("/rest/V1/tfa/providers-to-activate/{}", other.id),
            Some(&token),
        )
        .await;
    assert_eq!(r.json[0]["code"], "google");

    let r = t
        .call(
            Method::POST,
            &format!("/rest/V1/tfa/provider/duo_security/reset/{}", admin.id),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t
        .call(
            Method::POST,
            "/rest/V1/tfa/provider/google/reset/9999",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn integrations_get_bearer_tokens_without_2fa_limited_to_their_resources(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t.add_admin_with_totp("boss", "correct horse battery").await;
    let admin = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp("boss", "correct horse battery", &otp::totp(&secret, T0)),
        )
        .await,
    );

    let r = t
        .call(
            Method::POST,
            "/rest/V1/integrations",
            Some(r#"{"name":"ERP","resources":["Magento_TwoFactorAuth::tfa"]}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let erp = r.json["access_token"].as_str().unwrap().to_owned();
    assert!(
        erp.len() == 32
            && erp
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let erp_id = r.json["id"].as_u64().unwrap();

    assert_eq!(
        t.get("/rest/V1/tfa/installed-providers", Some(&erp))
            .await
            .status,
        StatusCode::OK
    );
    let r = t
        .call(
            Method::POST,
            "/rest/V1/integrations",
            Some(r#"{"name":"Other"}"#),
            Some(&erp),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "not granted Magento_Integration::integrations"
    );
    assert_eq!(
        t.get("/rest/V1/customers/me", Some(&erp)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let r = t
        .call(
            Method::POST,
            "/rest/V1/integrations",
            Some(r#"{"name":"erp"}"#),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "names are unique: {}",
        r.text
    );

    let r = t
        .call(
            Method::DELETE,
            &format!("/rest/V1/integrations/{erp_id}"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "true"));
    assert_eq!(
        t.get("/rest/V1/tfa/installed-providers", Some(&erp))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = t
        .call(
            Method::DELETE,
            &format!("/rest/V1/integrations/{erp_id}"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn six_wrong_passwords_lock_the_account_for_thirty_minutes(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    for i in 0..6 {
        // Across routes: the password is one factor wherever it is checked.
        let r = if i % 2 == 0 {
            t.post(ADMIN_TOKEN, &creds("shopadmin", "wrong password"))
                .await
        } else {
            t.post(
                AUTHENTICATE,
                &with_otp("shopadmin", "wrong password", "000000"),
            )
            .await
        };
        assert_eq!(r.text, SIGN_IN_INCORRECT);
    }
    let right = || {
        with_otp(
            "shopadmin",
            "correct horse battery",
            &otp::totp(&secret, t.clock.now()),
        )
    };
    let r = t.post(AUTHENTICATE, &right()).await;
    assert_eq!(
        r.text, SIGN_IN_INCORRECT,
        "locked: even the right password and code are refused"
    );
    t.clock.advance(29 * 60);
    assert_eq!(
        t.post(AUTHENTICATE, &right()).await.text,
        SIGN_IN_INCORRECT,
        "still locked after 29 minutes"
    );
    t.clock.advance(61);
    token_of(&t.post(AUTHENTICATE, &right()).await);
}

/// The attack of the core issue: a known password used to reset the code's tries between
/// guesses. The authenticator has a budget of its own, and no password-only answer gives it back.
async fn wrong_codes_lock_the_authenticator_however_password_only_sign_ins_are_interleaved(
    backend: Backend,
) {
    let t = TestApp::on(backend).await;
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let guess = |code: &str| with_otp("shopadmin", "correct horse battery", code);
    let mut wrong = 0;
    for round in 0..3 {
        for _ in 0..2 {
            let r = t.post(AUTHENTICATE, &guess("000000")).await;
            wrong += 1;
            let expected = if wrong <= 6 {
                INVALID_CODE
            } else {
                SIGN_IN_INCORRECT
            };
            assert_eq!(r.text, expected, "round {round}, wrong code {wrong}");
        }
        // The right password alone: "use the provider endpoint". It proves the password only.
        let r = t
            .post(ADMIN_TOKEN, &creds("shopadmin", "correct horse battery"))
            .await;
        assert_eq!(r.text, USE_PROVIDER, "round {round}");
    }
    assert_eq!(wrong, 6);
    let right = || guess(&otp::totp(&secret, t.clock.now()));
    assert_eq!(
        t.post(AUTHENTICATE, &right()).await.text,
        SIGN_IN_INCORRECT,
        "six wrong codes block the authenticator: the right code is refused too"
    );
    t.clock.advance(30 * 60 - 1);
    assert_eq!(t.post(AUTHENTICATE, &right()).await.text, SIGN_IN_INCORRECT);
    t.clock.advance(2);
    token_of(&t.post(AUTHENTICATE, &right()).await);
    // A completed sign-in cleared every budget: six fresh tries.
    t.clock.advance(30);
    for _ in 0..5 {
        assert_eq!(
            t.post(AUTHENTICATE, &guess("000000")).await.text,
            INVALID_CODE
        );
    }
    token_of(&t.post(AUTHENTICATE, &right()).await);
}

/// The same attack through first-time set-up: the emailed token stands for the password, and
/// neither its "not configured" answers nor a password-only sign-in give the code tries back.
async fn activation_codes_have_the_authenticators_budget(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_user(
        "newadmin",
        "newadmin@example.com",
        "correct horse battery",
        Role::Admin,
    )
    .await;
    let r = t
        .post(ADMIN_TOKEN, &creds("newadmin", "correct horse battery"))
        .await;
    assert_eq!(r.text, MUST_CONFIGURE);
    let tfa = tfa_token_from(&t.last_email_to("newadmin@example.com").unwrap().text);
    let activate = |code: &str| json!({"tfaToken": tfa, "otp": code}).to_string();
    // No secret yet: "not configured", and not counted.
    for _ in 0..10 {
        let r = t.post(ACTIVATE, &activate("000000")).await;
        assert_eq!(r.json["message"], "Provider is not configured.");
    }
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": tfa}).to_string())
        .await;
    let secret = r.json["secret_code"].as_str().unwrap().to_owned();
    for i in 0..6 {
        let r = t.post(ACTIVATE, &activate("000000")).await;
        assert_eq!(r.text, INVALID_CODE, "wrong code {i}");
        // The password alone again (it emails a new set-up token, and proves the password only).
        let r = t
            .post(ADMIN_TOKEN, &creds("newadmin", "correct horse battery"))
            .await;
        assert_eq!(r.text, MUST_CONFIGURE);
    }
    let r = t
        .post(ACTIVATE, &activate(&otp::totp(&secret, t.clock.now())))
        .await;
    assert_eq!(
        r.text, SIGN_IN_INCORRECT,
        "six wrong codes block activation"
    );
    t.clock.advance(30 * 60 + 1);
    let r = t
        .post(ACTIVATE, &activate(&otp::totp(&secret, t.clock.now())))
        .await;
    assert_eq!(r.text, "true");
}

async fn lockout_threshold_and_duration_are_configurable(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_LOCKOUT_FAILURES", "2"),
            ("LATCHKEY_LOCKOUT_MINUTES", "1"),
        ],
    )
    .await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    for _ in 0..2 {
        t.post(CUSTOMER_TOKEN, &creds("buyer", "nope nope")).await;
    }
    assert_eq!(
        t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await
            .text,
        SIGN_IN_INCORRECT
    );
    t.clock.advance(61);
    token_of(
        &t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await,
    );
}

async fn a_success_resets_the_failure_count(backend: Backend) {
    let t = TestApp::on(backend).await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    for _ in 0..5 {
        t.post(CUSTOMER_TOKEN, &creds("buyer", "nope nope")).await;
    }
    token_of(
        &t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await,
    );
    for _ in 0..5 {
        t.post(CUSTOMER_TOKEN, &creds("buyer", "nope nope")).await;
    }
    token_of(
        &t.post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
            .await,
    );
}

async fn fifty_parallel_guesses_check_at_most_six_passwords(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    let user = t
        .add_user(
            "target",
            "target@example.com",
            "correct horse battery",
            Role::Customer,
        )
        .await;
    let hashes_before = t.hash_runs();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.post(
                CUSTOMER_TOKEN,
                &creds("target", &format!("guess number {i}")),
            )
            .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().text, SIGN_IN_INCORRECT);
    }
    let after = accounts::get(t.db(), user.id).await.unwrap().unwrap();
    assert_eq!(
        after.budgets.password.count, 6,
        "exactly six attempts were let through to the password check"
    );
    assert_eq!(
        t.hash_runs(),
        hashes_before + 50,
        "every guess cost one hash: six checked, the rest burned the same work"
    );
    assert_eq!(
        t.post(CUSTOMER_TOKEN, &creds("target", "correct horse battery"))
            .await
            .text,
        SIGN_IN_INCORRECT
    );
}

async fn one_code_raced_twenty_times_signs_in_once(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    let (_, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let body = with_otp(
        "shopadmin",
        "correct horse battery",
        &otp::totp(&secret, T0),
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (t, body) = (t.clone(), body.clone());
        tasks.push(tokio::spawn(
            async move { t.post(AUTHENTICATE, &body).await },
        ));
    }
    let mut tokens = 0;
    for task in tasks {
        let r = task.await.unwrap();
        if r.status == StatusCode::OK {
            tokens += 1;
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(tokens, 1);
}

async fn per_ip_attempts_are_limited(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_IP_ATTEMPTS", "3"),
            ("LATCHKEY_IP_WINDOW_SECONDS", "60"),
        ],
    )
    .await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
    for user in ["a", "b", "c"] {
        t.call_from(
            Method::POST,
            CUSTOMER_TOKEN,
            Some(&creds(user, "whatever1")),
            None,
            ip,
        )
        .await;
    }
    let r = t
        .call_from(
            Method::POST,
            CUSTOMER_TOKEN,
            Some(&creds("buyer", "correct horse battery")),
            None,
            ip,
        )
        .await;
    assert_eq!(
        r.text, SIGN_IN_INCORRECT,
        "the fourth attempt from one IP is refused"
    );
    let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
    let r = t
        .call_from(
            Method::POST,
            CUSTOMER_TOKEN,
            Some(&creds("buyer", "correct horse battery")),
            None,
            other,
        )
        .await;
    token_of(&r);
    t.clock.advance(60);
    let r = t
        .call_from(
            Method::POST,
            CUSTOMER_TOKEN,
            Some(&creds("buyer", "correct horse battery")),
            None,
            ip,
        )
        .await;
    token_of(&r);
}

async fn bad_input_gets_magento_errors_and_changes_nothing(backend: Backend) {
    let t = TestApp::on(backend).await;
    let user = t
        .add_user(
            "shopadmin",
            "shopadmin@example.com",
            "correct horse battery",
            Role::Admin,
        )
        .await;
    let before = accounts::get(t.db(), user.id).await.unwrap().unwrap();

    let cases: Vec<(&str, &str, StatusCode, Value)> = vec![
        (
            ADMIN_TOKEN,
            "{",
            StatusCode::BAD_REQUEST,
            json!({"message": "Decoding error."}),
        ),
        (
            ADMIN_TOKEN,
            "[1,2]",
            StatusCode::BAD_REQUEST,
            json!({"message": "Decoding error."}),
        ),
        (
            ADMIN_TOKEN,
            "\"shopadmin\"",
            StatusCode::BAD_REQUEST,
            json!({"message": "Decoding error."}),
        ),
        (
            ADMIN_TOKEN,
            r#"{"username":"shopadmin"}"#,
            StatusCode::BAD_REQUEST,
            json!({"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "password"}}),
        ),
        (
            ADMIN_TOKEN,
            "{}",
            StatusCode::BAD_REQUEST,
            json!({"message": "One or more input exceptions have occurred.", "errors": [
            {"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "username"}},
            {"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "password"}}]}),
        ),
        (
            ADMIN_TOKEN,
            r#"{"username":["shopadmin"],"password":"x"}"#,
            StatusCode::BAD_REQUEST,
            json!({"message": "The \"%fieldName\" value's type is invalid. The \"%type\" type was expected. Verify and try again.",
                   "parameters": {"fieldName": "username", "type": "string"}}),
        ),
        (
            AUTHENTICATE,
            r#"{"username":"shopadmin","password":"correct horse battery","otp":{"a":1}}"#,
            StatusCode::BAD_REQUEST,
            json!({"message": "The \"%fieldName\" value's type is invalid. The \"%type\" type was expected. Verify and try again.",
                   "parameters": {"fieldName": "otp", "type": "string"}}),
        ),
        (
            CONFIGURE,
            r#"{"tfaToken":null}"#,
            StatusCode::BAD_REQUEST,
            json!({"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "tfaToken"}}),
        ),
    ];
    for (path, body, status, expected) in cases {
        let r = t.post(path, body).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text);
        assert_eq!(r.json, expected, "{path} {body}");
    }
    let big = format!(
        r#"{{"username":"shopadmin","password":"{}"}}"#,
        "x".repeat(70_000)
    );
    let r = t.post(ADMIN_TOKEN, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json["message"].is_string());

    for (method, path) in [
        (Method::GET, "/rest/V1/nothing/here"),
        (Method::GET, ADMIN_TOKEN),
        (Method::PUT, CONFIGURE),
        (Method::POST, "/rest/V1/customers/me"),
    ] {
        let r = t.call(method.clone(), path, Some("{}"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(r.text, r#"{"message":"Request does not match any route."}"#);
    }
    let r = t
        .post(
            "/rest/nosuchstore/V1/integration/admin/token",
            &creds("shopadmin", "correct horse battery"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json["message"],
        "The store that was requested wasn't found. Verify the store and try again."
    );
    let r = t.get("/rest/V1/tfa/user-providers/abc", Some("x")).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "authorization is checked before parameters"
    );

    let after = accounts::get(t.db(), user.id).await.unwrap().unwrap();
    assert_eq!(after, before, "no bad request changed the user");
    assert!(t.outbox.emails().is_empty(), "no bad request sent an email");
}

#[test]
fn sign_ins_failures_lockouts_and_factor_changes_are_audited() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (log, _guard) = latchkey_tests::audit::capture();
    runtime.block_on(async {
        let t = TestApp::on_with(Backend::Sqlite, &[("LATCHKEY_LOCKOUT_FAILURES", "2")]).await;
        let (user, secret) = t.add_admin_with_totp("boss", "correct horse battery").await;
        token_of(
            &t.post(
                AUTHENTICATE,
                &with_otp("boss", "correct horse battery", &otp::totp(&secret, T0)),
            )
            .await,
        );
        t.post(ADMIN_TOKEN, &creds("boss", "wrong password")).await;
        t.post(ADMIN_TOKEN, &creds("boss", "wrong password")).await;
        accounts::reset_totp(t.db(), user.id, "test").await.unwrap();
    });
    assert_eq!(log.count("user_created", None), 1);
    assert_eq!(log.count("factor_enrolled", None), 1);
    assert_eq!(log.count("sign_in", Some("")), 1, "one successful sign-in");
    assert_eq!(log.count("sign_in", Some("bad_password")), 2);
    assert_eq!(log.count("lockout", None), 1);
    assert_eq!(log.count("factor_reset", None), 1);
    let text = format!("{:?}", log.events());
    assert!(
        !text.contains("correct horse battery") && !text.contains("wrong password"),
        "no password in audit events"
    );
}

/// Every credential change revokes every token issued before it — access tokens and emailed
/// set-up tokens alike — and none issued after it, within the same second.
async fn every_credential_change_revokes_every_earlier_token(backend: Backend) {
    use latchkey_core::crypto::SecretString;
    let t = TestApp::on(backend).await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    let me = |token: String| {
        let t = &t;
        async move { t.get("/rest/V1/customers/me", Some(&token)).await.status }
    };
    let sign_in = |password: &'static str| {
        let t = &t;
        async move { t.post(CUSTOMER_TOKEN, &creds("buyer", password)).await }
    };
    let db = t.db();
    let (hasher, rng) = (&t.app.hasher, t.app.rng.as_ref());

    // A new password.
    let before = token_of(&sign_in("correct horse battery").await);
    accounts::set_password_by_login(
        db,
        hasher,
        rng,
        "buyer",
        &SecretString::new("another horse battery".into()),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(
        me(before).await,
        StatusCode::UNAUTHORIZED,
        "after set-password"
    );
    let after = token_of(&sign_in("another horse battery").await);
    assert_eq!(me(after.clone()).await, StatusCode::OK);

    // Disabling the account; enabling it again does not bring old tokens back.
    accounts::set_active(db, "buyer", false, "test")
        .await
        .unwrap();
    assert_eq!(
        me(after.clone()).await,
        StatusCode::UNAUTHORIZED,
        "after disable"
    );
    accounts::set_active(db, "buyer", true, "test")
        .await
        .unwrap();
    assert_eq!(me(after).await, StatusCode::UNAUTHORIZED, "after re-enable");
    let again = token_of(&sign_in("another horse battery").await);
    assert_eq!(me(again.clone()).await, StatusCode::OK);

    // A forced password reset: signed out, and no sign-in until the new password.
    accounts::require_password_reset(db, "buyer", "test")
        .await
        .unwrap();
    assert_eq!(
        me(again).await,
        StatusCode::UNAUTHORIZED,
        "after forced reset"
    );
    assert_eq!(
        sign_in("another horse battery").await.text,
        SIGN_IN_INCORRECT
    );

    // An admin's pending set-up token dies with a TOTP reset, and so does their access token.
    let (admin, secret) = t
        .add_admin_with_totp("shopadmin", "correct horse battery")
        .await;
    let admin_token = token_of(
        &t.post(
            AUTHENTICATE,
            &with_otp(
                "shopadmin",
                "correct horse battery",
                &otp::totp(&secret, T0),
            ),
        )
        .await,
    );
    t.add_user(
        "newadmin",
        "newadmin@example.com",
        "correct horse battery",
        Role::Admin,
    )
    .await;
    t.post(ADMIN_TOKEN, &creds("newadmin", "correct horse battery"))
        .await;
    let tfa = tfa_token_from(&t.last_email_to("newadmin@example.com").unwrap().text);
    let newadmin = accounts::find(db, "newadmin").await.unwrap().unwrap();
    let r = t
        .call(
            Method::POST,
            &format!("/rest/V1/tfa/provider/google/reset/{}", newadmin.id),
            None,
            Some(&admin_token),
        )
        .await;
    assert_eq!(r.text, "true");
    for path in [CONFIGURE, ACTIVATE] {
        let r = t
            .post(path, &json!({"tfaToken": tfa, "otp": "123456"}).to_string())
            .await;
        assert_eq!(
            r.json["message"], "Invalid two-factor authorization token",
            "{path}: a set-up token issued before the reset"
        );
    }
    accounts::reset_totp(db, admin.id, "test").await.unwrap();
    let r = t
        .get("/rest/V1/tfa/installed-providers", Some(&admin_token))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "after a TOTP reset");
}

/// Every refused sign-in costs exactly one password hash, whatever the reason, so that time
/// does not tell the reasons apart.
async fn every_refused_sign_in_costs_one_password_hash(backend: Backend) {
    let t = TestApp::on_with(backend, &[("LATCHKEY_LOCKOUT_FAILURES", "2")]).await;
    t.add_user(
        "buyer",
        "buyer@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    t.add_user(
        "gone",
        "gone@example.com",
        "correct horse battery",
        Role::Customer,
    )
    .await;
    accounts::set_active(t.db(), "gone", false, "test")
        .await
        .unwrap();
    let mut cases: Vec<(&str, String)> = vec![
        ("unknown login", creds("nobody", "correct horse battery")),
        (
            "over-long login",
            creds(&"x".repeat(3000), "correct horse battery"),
        ),
        ("disabled account", creds("gone", "correct horse battery")),
        ("wrong password", creds("buyer", "wrong password")),
    ];
    for (what, body) in cases.drain(..) {
        let before = t.hash_runs();
        assert_eq!(
            t.post(CUSTOMER_TOKEN, &body).await.text,
            SIGN_IN_INCORRECT,
            "{what}"
        );
        assert_eq!(t.hash_runs(), before + 1, "{what}");
    }
    let before = t.hash_runs();
    let r = t
        .post(ADMIN_TOKEN, &creds("buyer", "correct horse battery"))
        .await;
    assert_eq!(r.text, SIGN_IN_INCORRECT);
    assert_eq!(t.hash_runs(), before + 1, "wrong role");
    // Two failures so far on buyer's password: locked.
    let before = t.hash_runs();
    let r = t
        .post(CUSTOMER_TOKEN, &creds("buyer", "correct horse battery"))
        .await;
    assert_eq!(r.text, SIGN_IN_INCORRECT);
    assert_eq!(t.hash_runs(), before + 1, "locked account");
}

latchkey_tests::flow_suite!(
    wrong_codes_lock_the_authenticator_however_password_only_sign_ins_are_interleaved,
    the_seed_flow_admin_token_via_google_authenticator,
    oathtool_codes_are_accepted,
    first_time_setup_by_email_configure_and_activate,
    tfa_tokens_and_access_tokens_do_not_stand_in_for_each_other,
    wrong_credentials_and_unknown_users_get_identical_answers,
    wrong_and_replayed_codes_are_refused_with_the_same_answer,
    a_code_within_the_window_is_accepted_and_outside_is_not,
    two_factor_switched_off_by_configuration_or_per_user,
    token_lifetime_is_configurable_and_expired_tokens_say_so,
    customer_token_me_and_revocation,
    admin_revocation_kills_every_earlier_token,
    protected_routes_refuse_missing_bad_and_wrong_kind_tokens,
    an_admin_resets_a_provider_and_the_user_must_set_up_again,
    integrations_get_bearer_tokens_without_2fa_limited_to_their_resources,
    six_wrong_passwords_lock_the_account_for_thirty_minutes,
    activation_codes_have_the_authenticators_budget,
    lockout_threshold_and_duration_are_configurable,
    a_success_resets_the_failure_count,
    fifty_parallel_guesses_check_at_most_six_passwords,
    one_code_raced_twenty_times_signs_in_once,
    per_ip_attempts_are_limited,
    bad_input_gets_magento_errors_and_changes_nothing,
    every_credential_change_revokes_every_earlier_token,
    every_refused_sign_in_costs_one_password_hash,
);
