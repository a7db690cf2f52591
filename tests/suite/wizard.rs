//! The sign-in wizard (B2Core's `/api/v2/my/`), through the router, on the embedded store and
//! on DynamoDB: the document's four steps replayed verbatim (modulo uuids, codes and tokens),
//! TOTP codes from an independent generator (and `oathtool` where installed), SMS codes from
//! the outbox, tokens verified by PyJWT against the JWKS; the brute-force run (50 parallel wrong
//! passwords over 10 fresh flows and 5 addresses, injected clock); bad input; forced reset;
//! reCAPTCHA.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::Engine;
use http::{Method, StatusCode};
use latchkey_core::crypto::SecretString;
use latchkey_core::crypto::totp::TotpSecret;
use latchkey_core::identity::accounts::{self, NewUser};
use latchkey_core::identity::users::{Factor, Role};
use latchkey_core::ports::FakeRecaptcha;
use latchkey_tests::contract::race;
use latchkey_tests::harness::{Backend, Reply, T0, TestApp};
use latchkey_tests::independent::pyjwt_verify_rs256;
use latchkey_tests::otp;
use serde_json::{Value, json};

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const EMAIL: &str = "username@example.com";
/// The document's password and device fingerprint, verbatim.
const PASSWORD: &str = "QAzqw123!";
const FINGERPRINT: &str = "eyJ1c2VyX2FnZW50IjoiTW96aWxsYVwvNS4wIChXaW5kb3dzIE5UIDEwLjA7IFdpbjY0OyB4NjQpIEFwcGxlV2ViS2l0XC81MzcuMzYgKEtIVE1MLCBsaWtlIEdlY2tvKSBDaHJvbWVcLzExOC4wLjAuMCBTYWZhcmlcLzUzNy4zNiJ9";
const PHONE: &str = "+4915112345678";
const ISSUER: &str = "http://127.0.0.1:8080";

const WIZARD: &str = "/api/v2/my/signin/wizard";
const SIGNIN: &str = "/api/v2/my/signin";
const CHOOSE: &str = "/api/v2/my/signin/2fa";
const GOOGLE: &str = "/api/v2/my/2fa/google";
const SMS: &str = "/api/v2/my/2fa/sms";

/// A client with both second factors (TOTP and a verified phone), or only some.
async fn client(t: &TestApp, email: &str, totp: bool, phone: bool) -> u64 {
    accounts::create(
        t.app.db(),
        &t.app.hasher,
        &t.app.keys.sealer,
        t.app.rng.as_ref(),
        NewUser {
            username: email.into(),
            email: email.into(),
            password: SecretString::new(PASSWORD.into()),
            role: Role::Customer,
            totp_secret: totp.then(|| TotpSecret::from_base32(SECRET).unwrap()),
            phone: phone.then(|| PHONE.to_owned()),
            store_id: 1,
        },
        "test",
    )
    .await
    .unwrap()
    .id
}

/// A reply's JSON with its uuid replaced, for comparing with the document's examples.
fn modulo_uuid(r: &Reply) -> Value {
    let mut v = r.json.clone();
    let uuid = v["uuid"].as_str().unwrap_or_default();
    assert!(is_uuid_v4(uuid), "a random UUID: {uuid}");
    v["uuid"] = json!("<uuid>");
    v
}

fn is_uuid_v4(s: &str) -> bool {
    s.len() == 36 && s.as_bytes()[14] == b'4' && s.chars().filter(|c| *c == '-').count() == 4
}

fn credentials(uuid: &str, email: &str, password: &str) -> String {
    json!({
        "uuid": uuid,
        "email": email,
        "password": password,
        "device_fingerprint": FINGERPRINT,
    })
    .to_string()
}

/// The TOTP code at `unix`, from `oathtool`, checked against the independent generator.
fn code_at(unix: i64) -> String {
    let ours = otp::totp(SECRET, unix);
    let theirs = otp::oathtool(SECRET, unix);
    assert_eq!(theirs, ours, "oathtool and the RFC 6238 generator agree");
    theirs
}

async fn start(t: &TestApp) -> String {
    let r = t.get(WIZARD, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["uuid"].as_str().unwrap().to_owned()
}

/// Checks a step-4 answer field by field and its tokens with PyJWT; returns (access, refresh).
async fn check_signed_in(t: &TestApp, r: &Reply, uuid: &str, uid: u64) -> (String, String) {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = &r.json;
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["code", "data", "done", "uuid", "workflow"]
    );
    assert_eq!(
        (&v["code"], &v["done"], &v["uuid"], &v["workflow"]),
        (&json!(202), &json!(true), &json!(uuid), &json!("Terminate"))
    );
    assert_eq!(
        v["data"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["accessToken", "refreshToken", "tfaProviders"]
    );
    assert_eq!(v["data"]["tfaProviders"], json!([]));
    let jwks = t.get("/.well-known/jwks.json", None).await.json;
    let now = t.clock_now();
    let mut tokens = Vec::new();
    for (name, lifetime) in [("accessToken", 900), ("refreshToken", 3600)] {
        let obj = &v["data"][name];
        assert_eq!(
            obj.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["token", "createdAt", "expiresAt"]
        );
        let token = obj["token"].as_str().unwrap();
        let (header, claims) = pyjwt_verify_rs256(token, &jwks, ISSUER, now);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "RS256");
        assert!(header["kid"].is_string());
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], uid.to_string());
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["nbf"].as_i64(), Some(iat));
        assert_eq!(claims["exp"].as_i64(), Some(iat + lifetime), "{name}");
        let iat_mt = claims["iat_mt"].as_str().unwrap();
        assert!(iat_mt.starts_with(&format!("{iat}.")), "{iat_mt}");
        assert_eq!(obj["createdAt"], iso(iat));
        assert_eq!(obj["expiresAt"], iso(iat + lifetime));
        tokens.push(token.to_owned());
    }
    (tokens[0].clone(), tokens[1].clone())
}

fn iso(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

trait Clocked {
    fn clock_now(&self) -> i64;
}

impl Clocked for TestApp {
    fn clock_now(&self) -> i64 {
        use latchkey_core::ports::Clock;
        self.clock.now()
    }
}

/// The newest SMS code sent to `PHONE`.
fn sms_code(t: &TestApp) -> String {
    let text = t
        .outbox
        .texts()
        .into_iter()
        .rev()
        .find(|s| s.to == PHONE)
        .expect("an SMS to the verified phone")
        .body;
    text.split_whitespace().next().unwrap().to_owned()
}

// ---------------------------------------------------------------- the document's four steps

async fn the_documents_four_steps_with_google_then_sms(backend: Backend) {
    let t = TestApp::on(backend).await;
    let uid = client(&t, EMAIL, true, true).await;

    // Step 1.
    let r = t.get(WIZARD, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        modulo_uuid(&r),
        json!({
          "code": 200,
          "data": {
            "recaptcha": { "enabled": false },
            "is_qr_available": true,
            "is_password_recovery_available": true
          },
          "done": false,
          "uuid": "<uuid>",
          "workflow": "login"
        })
    );
    assert!(
        r.text.starts_with(r#"{"code":200,"data":{"recaptcha""#),
        "field order: {}",
        r.text
    );
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();

    // Step 2: both methods enabled.
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        modulo_uuid(&r),
        json!({
          "code": 200,
          "data": { "accessToken": null, "refreshToken": null, "tfaProviders": [] },
          "done": false,
          "uuid": "<uuid>",
          "workflow": "2fa"
        })
    );
    assert_eq!(r.json["uuid"], uuid.as_str(), "the same flow");

    // Step 3.
    let r = t
        .post(CHOOSE, &json!({"uuid": uuid, "type": "google"}).to_string())
        .await;
    assert_eq!(
        (r.status, modulo_uuid(&r)),
        (
            StatusCode::OK,
            json!({"code": 200, "data": null, "done": false, "uuid": "<uuid>", "workflow": "2fa_google_auth"})
        )
    );
    assert!(t.outbox.texts().is_empty(), "google sends no SMS");

    // Step 4, with a code from another implementation.
    let code = code_at(T0);
    let r = t
        .post(GOOGLE, &json!({"uuid": uuid, "code": code}).to_string())
        .await;
    let (access, refresh) = check_signed_in(&t, &r, &uuid, uid).await;

    // The flow is finished, and the code single use.
    let again = t
        .post(GOOGLE, &json!({"uuid": uuid, "code": code}).to_string())
        .await;
    assert_eq!(
        (again.status, again.json["error"].as_str()),
        (StatusCode::CONFLICT, Some("flow_finished"))
    );

    // Who am I, refresh, replay, sign-out.
    let me = t.get("/api/v2/my/user", Some(&access)).await;
    assert_eq!(
        (me.status, me.json["id"].as_u64()),
        (StatusCode::OK, Some(uid))
    );
    assert_eq!(me.json["email"], EMAIL);
    t.clock.advance(60);
    let r = t
        .post(
            "/api/v2/my/refresh",
            &json!({"refreshToken": refresh}).to_string(),
        )
        .await;
    let (access2, refresh2) = check_signed_in(&t, &r, &uuid, uid).await;
    assert_ne!(refresh2, refresh);
    let replay = t
        .post(
            "/api/v2/my/refresh",
            &json!({"refreshToken": refresh}).to_string(),
        )
        .await;
    assert_eq!(
        (replay.status, replay.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    // The replay revoked the family: the newer pair is dead too.
    let me = t.get("/api/v2/my/user", Some(&access2)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.text);
    let r = t
        .post(
            "/api/v2/my/refresh",
            &json!({"refreshToken": refresh2}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An access token is no refresh token, and the other way round.
    let r = t
        .post(
            "/api/v2/my/refresh",
            &json!({"refreshToken": access}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/api/v2/my/user", Some(&refresh2)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Now by SMS: step 3 sends the code, step 4 takes it from the outbox.
    t.clock.advance(30);
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.json["workflow"], "2fa", "{}", r.text);
    let r = t
        .post(CHOOSE, &json!({"uuid": uuid, "type": "sms"}).to_string())
        .await;
    assert_eq!(
        (r.status, modulo_uuid(&r)),
        (
            StatusCode::OK,
            json!({"code": 200, "data": null, "done": false, "uuid": "<uuid>", "workflow": "2fa_sms_auth"})
        )
    );
    let code = sms_code(&t);
    assert_eq!(code.len(), 6);
    let r = t
        .post(SMS, &json!({"uuid": uuid, "code": code}).to_string())
        .await;
    let (access, _) = check_signed_in(&t, &r, &uuid, uid).await;
    let r = t
        .call(Method::POST, "/api/v2/my/signout", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let me = t.get("/api/v2/my/user", Some(&access)).await;
    assert_eq!(
        me.status,
        StatusCode::UNAUTHORIZED,
        "refused after sign-out"
    );
}

async fn one_factor_skips_the_choice_and_none_signs_in_at_once(backend: Backend) {
    let t = TestApp::on(backend).await;
    let google = client(&t, "google@example.com", true, false).await;
    let sms = client(&t, "sms@example.com", false, true).await;
    let plain = client(&t, "plain@example.com", false, false).await;

    let uuid = start(&t).await;
    let r = t
        .post(SIGNIN, &credentials(&uuid, "google@example.com", PASSWORD))
        .await;
    assert_eq!(r.json["workflow"], "2fa_google_auth");
    // Out of order: the SMS step and the choice are not this flow's next step; nothing moves.
    for (path, body) in [
        (SMS, json!({"uuid": uuid, "code": "123456"})),
        (CHOOSE, json!({"uuid": uuid, "type": "sms"})),
        (
            SIGNIN,
            serde_json::from_str(&credentials(&uuid, "google@example.com", PASSWORD)).unwrap(),
        ),
    ] {
        let r = t.post(path, &body.to_string()).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (StatusCode::CONFLICT, Some("step_out_of_order")),
            "{path}: {}",
            r.text
        );
    }
    let r = t
        .post(
            GOOGLE,
            &json!({"uuid": uuid, "code": code_at(T0)}).to_string(),
        )
        .await;
    check_signed_in(&t, &r, &uuid, google).await;

    let uuid = start(&t).await;
    let r = t
        .post(SIGNIN, &credentials(&uuid, "sms@example.com", PASSWORD))
        .await;
    assert_eq!(r.json["workflow"], "2fa_sms_auth", "{}", r.text);
    let code = sms_code(&t);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = t
        .post(SMS, &json!({"uuid": uuid, "code": wrong}).to_string())
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code"))
    );
    let r = t
        .post(SMS, &json!({"uuid": uuid, "code": code}).to_string())
        .await;
    check_signed_in(&t, &r, &uuid, sms).await;

    let uuid = start(&t).await;
    let r = t
        .post(SIGNIN, &credentials(&uuid, "plain@example.com", PASSWORD))
        .await;
    let (access, _) = check_signed_in(&t, &r, &uuid, plain).await;
    assert_eq!(
        t.get("/api/v2/my/user", Some(&access)).await.status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- limits

async fn fifty_parallel_wrong_passwords_check_at_most_five_then_block(backend: Backend) {
    let t = Arc::new(TestApp::on(backend).await);
    client(&t, EMAIL, true, false).await;
    let mut flows = Vec::new();
    for _ in 0..10 {
        flows.push(start(&t).await);
    }
    let runs_before = t.hash_runs();
    let results = race(50, |i| {
        let t = t.clone();
        let uuid = flows[i % 10].clone();
        let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 5) as u8 + 1));
        async move {
            let body = credentials(&uuid, EMAIL, &format!("wrong-{i}"));
            t.call_from(Method::POST, SIGNIN, Some(&body), None, ip)
                .await
        }
    })
    .await;
    let checked = results
        .iter()
        .filter(|r| r.json["error"] == "invalid_credentials")
        .count();
    let blocked: Vec<&Reply> = results
        .iter()
        .filter(|r| r.json["error"] == "too_many_attempts")
        .collect();
    assert!(checked <= 5, "{checked} wrong passwords were checked");
    let others: Vec<&str> = results
        .iter()
        .filter(|r| {
            r.json["error"] != "invalid_credentials" && r.json["error"] != "too_many_attempts"
        })
        .map(|r| r.text.as_str())
        .collect();
    assert!(
        others.is_empty(),
        "every answer is one of the two: {others:?}"
    );
    for r in &blocked {
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let at = r.json["retryAt"].as_str().unwrap();
        assert!(at.ends_with("+00:00"), "{at}");
    }
    // No request hashed more than once (blocked addresses are refused before any work; a
    // blocked account costs what a wrong password does).
    assert!(t.hash_runs() - runs_before <= 50);

    // The right password, from a fresh flow and a fresh address, is refused until the block
    // ends — ten minutes after the last failure.
    let fresh_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77));
    let try_right = |t: Arc<TestApp>| async move {
        let uuid = start(&t).await;
        let body = credentials(&uuid, EMAIL, PASSWORD);
        t.call_from(Method::POST, SIGNIN, Some(&body), None, fresh_ip)
            .await
    };
    let r = try_right(t.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.json["retryAt"], iso(T0 + 600));
    t.clock.advance(599);
    let r = try_right(t.clone()).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "still blocked at 599 s"
    );
    t.clock.advance(1);
    let r = try_right(t.clone()).await;
    assert_eq!(
        (r.status, r.json["workflow"].as_str()),
        (StatusCode::OK, Some("2fa_google_auth")),
        "{}",
        r.text
    );
    // The blocked addresses are blocked per address too (never per flow), and free again now.
    let uuid = start(&t).await;
    let body = credentials(&uuid, EMAIL, "wrong again");
    let r = t
        .call_from(
            Method::POST,
            SIGNIN,
            Some(&body),
            None,
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        )
        .await;
    assert_eq!(r.json["error"], "invalid_credentials");
}

/// Found by review: a reset flow asked for an unknown email answered `invalid_code` for ever,
/// while an account's locked after its budget of wrong codes — so a few wrong codes told which
/// emails are accounts. An unknown email's tries now count, and lock, as an account's do: the
/// same answers, try by try.
async fn wrong_reset_codes_lock_an_unknown_email_as_they_lock_an_account(backend: Backend) {
    let t = TestApp::on(backend).await;
    client(&t, EMAIL, false, false).await;
    let restore = "/api/v2/my/signin/password/restore";
    let reset = "/api/v2/my/signin/password/reset";
    let mut answers = Vec::new();
    for email in [EMAIL, "nobody@example.com"] {
        let r = t.post(restore, &json!({"email": email}).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let uuid = r.json["uuid"].as_str().unwrap().to_owned();
        let mut seen = Vec::new();
        for _ in 0..7 {
            let body = json!({"uuid": uuid, "code": "000000", "password": "N3w password!"});
            let r = t.post(reset, &body.to_string()).await;
            seen.push((r.status, r.json["error"].clone(), r.json["retryAt"].clone()));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "an account's tries and nobody's");
    assert_eq!(answers[0][0].1, "invalid_code");
    assert!(
        answers[0]
            .iter()
            .any(|(status, ..)| *status == StatusCode::TOO_MANY_REQUESTS),
        "the tries run out: {:?}",
        answers[0]
    );
}

async fn failed_codes_count_too_and_unknown_emails_answer_the_same(backend: Backend) {
    let t = TestApp::on(backend).await;
    client(&t, EMAIL, true, false).await;
    // Five wrong TOTP codes over five fresh flows block the factor — and the address.
    for i in 0..5 {
        let uuid = start(&t).await;
        let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
        assert_eq!(r.json["workflow"], "2fa_google_auth", "{i}: {}", r.text);
        let r = t
            .post(GOOGLE, &json!({"uuid": uuid, "code": "000000"}).to_string())
            .await;
        assert_eq!(r.json["error"], "invalid_code", "{i}: {}", r.text);
    }
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
        "the address made 5 failures: {}",
        r.text
    );
    // From another address the password passes, and the right code is refused: the factor
    // itself is blocked, ten minutes after its last failure.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
    let body = credentials(&uuid, EMAIL, PASSWORD);
    let r = t
        .call_from(Method::POST, SIGNIN, Some(&body), None, other)
        .await;
    assert_eq!(r.json["workflow"], "2fa_google_auth", "{}", r.text);
    let body = json!({"uuid": uuid, "code": code_at(T0)}).to_string();
    let r = t
        .call_from(Method::POST, GOOGLE, Some(&body), None, other)
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
        "{}",
        r.text
    );
    assert_eq!(r.json["retryAt"], iso(T0 + 600));

    // Unknown email and wrong password: the same answer.
    let t = TestApp::on(backend).await;
    client(&t, EMAIL, false, false).await;
    let uuid = start(&t).await;
    let wrong = t
        .post(SIGNIN, &credentials(&uuid, EMAIL, "not the password"))
        .await;
    let unknown = t
        .post(SIGNIN, &credentials(&uuid, "nobody@example.com", PASSWORD))
        .await;
    assert_eq!((wrong.status, &wrong.text), (unknown.status, &unknown.text));
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // ... and neither moved the flow: the right password still works in it.
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

async fn sms_codes_are_resent_at_most_five_times_an_hour(backend: Backend) {
    let t = TestApp::on(backend).await;
    client(&t, EMAIL, false, true).await;
    for i in 0..5 {
        let uuid = start(&t).await;
        let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
        assert_eq!(r.json["workflow"], "2fa_sms_auth", "{i}: {}", r.text);
    }
    assert_eq!(t.outbox.texts().len(), 5);
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
        "{}",
        r.text
    );
    assert_eq!(
        r.json["retryAt"],
        iso(T0 - T0 % 3600 + 3600),
        "the hour's window ends"
    );
    assert_eq!(t.outbox.texts().len(), 5, "nothing sent");
    // The flow did not move: once the window passed, the same flow goes on.
    t.clock.set(T0 - T0 % 3600 + 3600);
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.json["workflow"], "2fa_sms_auth", "{}", r.text);
}

// ---------------------------------------------------------------- bad input

async fn bad_input_gets_one_clear_error_shape_and_changes_nothing(backend: Backend) {
    let t = TestApp::on(backend).await;
    let uid = client(&t, EMAIL, true, false).await;
    let uuid = start(&t).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = |extra: Value| {
        let mut v: Value = serde_json::from_str(&credentials(&uuid, EMAIL, PASSWORD)).unwrap();
        for (k, val) in extra.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        v.to_string()
    };
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            SIGNIN,
            "{".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            SIGNIN,
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            SIGNIN,
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"email": 5})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"password": null})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"device_fingerprint": "%%%"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"device_fingerprint": b64(r#"{"os":"linux"}"#)})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"device_fingerprint": b64("user_agent")})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SIGNIN,
            good(json!({"uuid": "36f59381-5b54-48bd-a0c7-3b908c476732"})),
            StatusCode::NOT_FOUND,
            "unknown_flow",
        ),
        (
            SIGNIN,
            good(json!({"uuid": "../../etc/passwd"})),
            StatusCode::NOT_FOUND,
            "unknown_flow",
        ),
        (
            SIGNIN,
            good(json!({"uuid": "x".repeat(5000)})),
            StatusCode::NOT_FOUND,
            "unknown_flow",
        ),
        (
            CHOOSE,
            json!({"uuid": uuid, "type": "carrier-pigeon"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            CHOOSE,
            json!({"uuid": uuid, "type": "google"}).to_string(),
            StatusCode::CONFLICT,
            "step_out_of_order",
        ),
        (
            GOOGLE,
            json!({"uuid": uuid, "code": "123456"}).to_string(),
            StatusCode::CONFLICT,
            "step_out_of_order",
        ),
        (
            GOOGLE,
            json!({"uuid": uuid}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            SMS,
            json!({"uuid": uuid, "code": ["1"]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "/api/v2/my/refresh",
            json!({"refreshToken": "x.y.z"}).to_string(),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "/api/v2/my/refresh",
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "/api/v2/my/nothing",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            SIGNIN,
            format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (path, body, status, error) in cases {
        let r = t.post(path, &body).await;
        assert_eq!(
            r.status,
            status,
            "{path} {}: {}",
            &body[..body.len().min(80)],
            r.text
        );
        assert_eq!(r.json["error"], error, "{path}: {}", r.text);
        assert_eq!(r.json["code"], status.as_u16());
        assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = t.get(SIGNIN, None).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let r = t.get("/api/v2/my/user", None).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let r = t.get("/api/v2/my/user", Some("forged.token.value")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // None of it moved the flow or counted a failure.
    assert_eq!(t.user(uid).await.budgets.password.count, 0);
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.json["workflow"], "2fa_google_auth", "{}", r.text);

    // An expired flow says so, and changes nothing.
    let stale = start(&t).await;
    t.clock.advance(15 * 60);
    let r = t.post(SIGNIN, &credentials(&stale, EMAIL, PASSWORD)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::GONE, Some("flow_expired")),
        "{}",
        r.text
    );
    let r = t
        .post(
            GOOGLE,
            &json!({"uuid": uuid, "code": code_at(T0 + 900)}).to_string(),
        )
        .await;
    assert_eq!(r.json["error"], "flow_expired", "{}", r.text);
    assert_eq!(
        t.user(uid).await.budgets.totp.count,
        0,
        "no code was checked"
    );
}

// ---------------------------------------------------------------- forced reset

async fn a_forced_reset_goes_through_restore_and_reset_and_keeps_the_second_factor(
    backend: Backend,
) {
    let t = TestApp::on(backend).await;
    let uid = client(&t, EMAIL, true, false).await;
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    let r = t
        .post(
            GOOGLE,
            &json!({"uuid": r.json["uuid"], "code": code_at(T0)}).to_string(),
        )
        .await;
    let (access, refresh) = check_signed_in(&t, &r, &uuid, uid).await;

    accounts::require_password_reset(t.db(), EMAIL, "test")
        .await
        .unwrap();
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(
        (r.status, modulo_uuid(&r)),
        (
            StatusCode::OK,
            json!({"code": 200, "data": {"accessToken": null, "refreshToken": null, "tfaProviders": []}, "done": false, "uuid": "<uuid>", "workflow": "reset_password_email"})
        )
    );
    assert_eq!(
        t.get("/api/v2/my/user", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED,
        "the admin's flag signed the client out"
    );

    let restore = "/api/v2/my/signin/password/restore";
    let known = t.post(restore, &json!({"email": EMAIL}).to_string()).await;
    let unknown = t
        .post(restore, &json!({"email": "nobody@example.com"}).to_string())
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
    assert_eq!(
        (modulo_uuid(&known), unknown.status),
        (modulo_uuid(&unknown), StatusCode::OK)
    );
    // The email is queued: the answer waited for no send (so it takes no longer for an account
    // than for none); the mailer sends it, one request, to the account only.
    assert!(t.last_email_to(EMAIL).is_none(), "sent after the answer");
    assert_eq!(t.run_link_mailer().await, 1);
    assert!(t.last_email_to("nobody@example.com").is_none());
    let mail = t.last_email_to(EMAIL).expect("reset email");
    let code: String = mail
        .text
        .split("code is ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let reset = "/api/v2/my/signin/password/reset";
    let flow = known.json["uuid"].as_str().unwrap();
    let new_password = "a brand new password";
    let r = t
        .post(
            reset,
            &json!({"uuid": flow, "code": code, "password": "short"}).to_string(),
        )
        .await;
    assert_eq!(
        r.json["error"], "invalid_input",
        "a weak password is refused first"
    );
    let r = t
        .post(
            reset,
            &json!({"uuid": flow, "code": code, "password": new_password}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let again = t
        .post(
            reset,
            &json!({"uuid": flow, "code": code, "password": "yet another one!"}).to_string(),
        )
        .await;
    assert_eq!(again.json["error"], "flow_finished", "the reset works once");
    let r = t
        .post(
            "/api/v2/my/refresh",
            &json!({"refreshToken": refresh}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "every session ended");

    // The old password is gone; the new one still asks for the second factor.
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.json["error"], "invalid_credentials");
    let r = t
        .post(SIGNIN, &credentials(&uuid, EMAIL, new_password))
        .await;
    assert_eq!(r.json["workflow"], "2fa_google_auth", "{}", r.text);
}

// ---------------------------------------------------------------- reCAPTCHA

async fn recaptcha_is_checked_through_the_verifier_port(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_RECAPTCHA", "on"),
            ("LATCHKEY_RECAPTCHA_SECRET", "test-secret"),
        ],
    )
    .await;
    client(&t, EMAIL, false, false).await;
    let r = t.get(WIZARD, None).await;
    assert_eq!(r.json["data"]["recaptcha"]["enabled"], true);
    let uuid = r.json["uuid"].as_str().unwrap().to_owned();
    let with = |response: Option<&str>| {
        let mut v: Value = serde_json::from_str(&credentials(&uuid, EMAIL, PASSWORD)).unwrap();
        if let Some(resp) = response {
            v["recaptchaResponse"] = json!(resp);
        }
        v.to_string()
    };
    let r = t.post(SIGNIN, &with(None)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let r = t.post(SIGNIN, &with(Some("a-bot-guess"))).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("recaptcha_failed"))
    );
    let r = t.post(SIGNIN, &with(Some(FakeRecaptcha::PASS))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

// ---------------------------------------------------------------- QR sign-in

async fn a_qr_code_approved_by_a_signed_in_client_signs_the_web_flow_in_once(backend: Backend) {
    let t = TestApp::on(backend).await;
    let uid = client(&t, EMAIL, false, false).await;
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    let (access, _) = check_signed_in(&t, &r, &uuid, uid).await;

    let r = t.get("/api/v2/my/signin/qrcodes", None).await;
    assert_eq!(
        (r.status, r.json["workflow"].as_str()),
        (StatusCode::OK, Some("qr")),
        "{}",
        r.text
    );
    let qr = r.json["uuid"].as_str().unwrap().to_owned();
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.json["data"]["qrCode"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(r.json["data"]["content"], format!("latchkey-signin:{qr}"));
    assert_eq!(r.json["data"]["expiresAt"], iso(T0 + 120));
    let poll = json!({ "uuid": qr }).to_string();
    let r = t.post("/api/v2/my/signin/tokens", &poll).await;
    assert_eq!(
        (r.status, r.json["workflow"].as_str()),
        (StatusCode::OK, Some("qr"))
    );
    // Approving takes a signed-in client.
    let approve = "/api/v2/my/signin/qrcodes";
    let r = t.call(Method::POST, approve, Some(&poll), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let content = json!({ "uuid": format!("latchkey-signin:{qr}") }).to_string();
    let r = t
        .call(Method::POST, approve, Some(&content), Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = t
        .call(Method::POST, approve, Some(&poll), Some(&access))
        .await;
    assert_eq!(r.json["error"], "step_out_of_order", "approved once");
    let r = t.post("/api/v2/my/signin/tokens", &poll).await;
    let (web, _) = check_signed_in(&t, &r, &qr, uid).await;
    assert_ne!(web, access, "the web flow has its own session");
    let r = t.post("/api/v2/my/signin/tokens", &poll).await;
    assert_eq!(r.json["error"], "flow_finished", "single use");

    // Two minutes, then it is gone.
    let r = t.get("/api/v2/my/signin/qrcodes", None).await;
    let late = json!({ "uuid": r.json["uuid"] }).to_string();
    t.clock.advance(120);
    let r = t.call(Method::POST, approve, Some(&late), Some(&web)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::GONE, Some("flow_expired"))
    );

    let t = TestApp::on_with(backend, &[("LATCHKEY_WIZARD_QR", "off")]).await;
    assert_eq!(
        t.get(WIZARD, None).await.json["data"]["is_qr_available"],
        false
    );
    let r = t.get("/api/v2/my/signin/qrcodes", None).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_offered"))
    );
}

// ---------------------------------------------------------------- enrolment

async fn a_client_enables_and_disables_its_factors_with_fresh_codes(backend: Backend) {
    let t = TestApp::on(backend).await;
    let uid = client(&t, EMAIL, false, false).await;
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    let (access, _) = check_signed_in(&t, &r, &uuid, uid).await;
    let enrol = "/api/v2/my/2fa/wizard";

    // TOTP: secret, otpauth URI and QR code; confirmed by a first code.
    let r = t
        .get("/api/v2/my/2fa/google/enable/wizard", Some(&access))
        .await;
    assert_eq!(
        (r.status, r.json["workflow"].as_str()),
        (StatusCode::OK, Some("2fa_google_auth")),
        "{}",
        r.text
    );
    let secret = r.json["data"]["secret"].as_str().unwrap().to_owned();
    assert!(
        r.json["data"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(r.json["data"]["qrCode"].as_str().unwrap().len() > 100);
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let r = t
        .call(
            Method::POST,
            enrol,
            Some(&json!({"uuid": flow, "code": "000000"}).to_string()),
            Some(&access),
        )
        .await;
    assert_eq!(r.json["error"], "invalid_code");
    let code = otp::totp(&secret, T0);
    let body = json!({"uuid": flow, "code": code}).to_string();
    let r = t.call(Method::POST, enrol, Some(&body), None).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "only the signed-in client"
    );
    let r = t
        .call(Method::POST, enrol, Some(&body), Some(&access))
        .await;
    assert_eq!(
        (r.status, r.json["workflow"].as_str()),
        (StatusCode::ACCEPTED, Some("Terminate")),
        "{}",
        r.text
    );
    assert!(t.user(uid).await.totp.is_active());

    // A phone: the code goes to the new number; confirming binds it.
    let r = t
        .get("/api/v2/my/2fa/sms/enable/wizard", Some(&access))
        .await;
    assert_eq!(r.json["workflow"], "phone", "{}", r.text);
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let r = t
        .call(
            Method::POST,
            enrol,
            Some(&json!({"uuid": flow, "phone": "12345"}).to_string()),
            Some(&access),
        )
        .await;
    assert_eq!(r.json["error"], "invalid_input");
    let r = t
        .call(
            Method::POST,
            enrol,
            Some(&json!({"uuid": flow, "phone": PHONE}).to_string()),
            Some(&access),
        )
        .await;
    assert_eq!(r.json["workflow"], "2fa_sms_auth", "{}", r.text);
    assert_eq!(
        t.user(uid).await.verified_phone(),
        None,
        "not bound before the code"
    );
    let body = json!({"uuid": flow, "code": sms_code(&t)}).to_string();
    let r = t
        .call(Method::POST, enrol, Some(&body), Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(t.user(uid).await.verified_phone(), Some(PHONE));

    // Sign-in now asks to choose.
    let uuid = start(&t).await;
    let r = t.post(SIGNIN, &credentials(&uuid, EMAIL, PASSWORD)).await;
    assert_eq!(r.json["workflow"], "2fa");

    // Disabling TOTP takes a fresh code (the enrolment's is spent); proven so, it ends no
    // session (the core's one rule for every dialect, `accounts::switch_off`).
    let r = t
        .get("/api/v2/my/2fa/google/disable/wizard", Some(&access))
        .await;
    let flow = r.json["uuid"].as_str().unwrap().to_owned();
    let r = t
        .call(
            Method::POST,
            enrol,
            Some(&json!({"uuid": flow, "code": code}).to_string()),
            Some(&access),
        )
        .await;
    assert_eq!(r.json["error"], "invalid_code", "a spent code: {}", r.text);
    t.clock.advance(30);
    let body = json!({"uuid": flow, "code": otp::totp(&secret, T0 + 30)}).to_string();
    let r = t
        .call(Method::POST, enrol, Some(&body), Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(!t.user(uid).await.totp.is_active());
    assert_eq!(
        t.get("/api/v2/my/user", Some(&access)).await.status,
        StatusCode::OK
    );
    // The same flow cannot switch it off twice, and SMS is now the only factor.
    let r = t
        .call(Method::POST, enrol, Some(&body), Some(&access))
        .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::CONFLICT, Some("flow_finished")),
        "{}",
        r.text
    );
    assert_eq!(t.user(uid).await.second_factors(), [Factor::Sms]);
}

/// The production verifier (siteverify) against a stand-in for Google's endpoint: the form it
/// posts, `success` read strictly, and a failing endpoint refused rather than passed.
#[tokio::test]
async fn siteverify_posts_the_form_and_passes_only_success() {
    use latchkey_aws::recaptcha::SiteVerify;
    use latchkey_core::ports::Recaptcha;
    use latchkey_tests::fake_service::{ThrottlingService, answer};
    let json = "content-type: application/json\r\n";
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let yes = answer(
        "200 OK",
        json,
        r#"{"success":true,"hostname":"shop.example"}"#,
    );
    let service = ThrottlingService::start(0, (yes.clone(), yes)).await;
    let verifier = SiteVerify::new(&service.url, "s3cret").unwrap();
    assert!(verifier.verify("token-from-the-widget", ip).await.unwrap());
    let form = String::from_utf8(service.bodies()[0].clone()).unwrap();
    assert_eq!(
        form,
        "secret=s3cret&response=token-from-the-widget&remoteip=203.0.113.7"
    );

    let no = answer(
        "200 OK",
        json,
        r#"{"success":false,"error-codes":["invalid-input-response"]}"#,
    );
    let service = ThrottlingService::start(0, (no.clone(), no)).await;
    let verifier = SiteVerify::new(&service.url, "s3cret").unwrap();
    assert!(!verifier.verify("a-bot", ip).await.unwrap());

    let down = answer("503 Service Unavailable", json, "{}");
    let service = ThrottlingService::start(0, (down.clone(), down)).await;
    let verifier = SiteVerify::new(&service.url, "s3cret").unwrap();
    assert!(
        verifier.verify("token", ip).await.is_err(),
        "no answer is no proof"
    );
}

latchkey_tests::flow_suite!(
    a_qr_code_approved_by_a_signed_in_client_signs_the_web_flow_in_once,
    a_client_enables_and_disables_its_factors_with_fresh_codes,
    the_documents_four_steps_with_google_then_sms,
    one_factor_skips_the_choice_and_none_signs_in_at_once,
    fifty_parallel_wrong_passwords_check_at_most_five_then_block,
    failed_codes_count_too_and_unknown_emails_answer_the_same,
    wrong_reset_codes_lock_an_unknown_email_as_they_lock_an_account,
    sms_codes_are_resent_at_most_five_times_an_hour,
    bad_input_gets_one_clear_error_shape_and_changes_nothing,
    a_forced_reset_goes_through_restore_and_reset_and_keeps_the_second_factor,
    recaptcha_is_checked_through_the_verifier_port,
);
