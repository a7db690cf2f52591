//! The magic-link dialect through the router, on the embedded store and on DynamoDB: the
//! document's two requests, the link the mailer emails, the confirmation page, single use
//! (also under 20 simultaneous confirmations), expiry on the injected clock, mail-scanner
//! prefetches, open redirects, the same answer for unknown emails, throttles, the admin views
//! and revocation.

use bytes::Bytes;
use http::{Method, StatusCode, header};
use latchkey_core::identity::accounts;
use latchkey_core::identity::integrations::{self, Grantor};
use latchkey_core::identity::users::{Role, User};
use latchkey_core::link_mailer;
use latchkey_core::ports::Clock;
use latchkey_core::store::Item;
use latchkey_tests::flow_suite;
use latchkey_tests::harness::{Backend, Reply, T0, TestApp};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const CUSTOMER: &str = "buyer@example.com";
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/seeds/003_6d7b95c76e81ebe5.txt"
);
/// The document's create-token request, byte for byte (its email is a web page's obfuscation
/// of an address, "[email\u{a0}protected]").
const DOC_CREATE_TOKEN: &str =
    "{\"email\": \"[email\u{a0}protected]\", \"storeId\": \"1\", \"expiry\": 5}";
/// The document's create-URL request, with `<token>` left to fill in.
const DOC_CREATE_URL: &str = "{\"path\": \"customer/otp/auth\", \"token\": <token>}";

const STORES: &str = r#"[{"id":1,"name":"Main Store","base_url":"https://shop.example.com","redirect_origins":["https://account.example.com"]},{"id":2,"code":"de","name":"Laden","locale":"de_DE","website_id":2,"base_url":"https://shop.example.de"}]"#;

async fn app(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, String, User) {
    let mut settings = vec![("LATCHKEY_STORES", STORES)];
    settings.extend_from_slice(extra);
    let t = TestApp::on_with(backend, &settings).await;
    let customer = t
        .add_user(CUSTOMER, CUSTOMER, PASSWORD, Role::Customer)
        .await;
    let (_, token) = integrations::create(
        t.db(),
        t.app.rng.as_ref(),
        t.app.keys.pepper(),
        Grantor::Admin,
        "storefront",
        vec!["Magento_Customer::manage".into()],
        "test",
    )
    .await
    .unwrap();
    (t, token.expose().to_owned(), customer)
}

async fn post_json(t: &TestApp, path: &str, body: &str, bearer: Option<&str>) -> Reply {
    t.call(Method::POST, path, Some(body), bearer).await
}

/// `createToken` for the test customer; the whole answer.
async fn create_token(t: &TestApp, bearer: &str, body: Value) -> Value {
    let r = post_json(
        t,
        "/rest/V1/otp/createToken",
        &body.to_string(),
        Some(bearer),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn token_for(t: &TestApp, bearer: &str, expiry: i64) -> String {
    let answer = create_token(
        t,
        bearer,
        json!({"email": CUSTOMER, "storeId": "1", "expiry": expiry}),
    )
    .await;
    answer["token"].as_str().unwrap().to_owned()
}

/// Whether an item holds `text` in any attribute, in clear.
fn holds(item: &Item, text: &str) -> bool {
    use latchkey_core::store::Value as V;
    item.key.pk.contains(text)
        || item.attrs.values().any(|v| match v {
            V::S(s) => s.contains(text),
            V::B(b) => b.windows(text.len()).any(|w| w == text.as_bytes()),
            _ => false,
        })
}

fn link_path(token: &str) -> String {
    format!("/customer/otp/auth/token/{token}/")
}

/// The browser's confirmation: a form post of the page, from its own origin.
async fn confirm(t: &TestApp, token: &str) -> Reply {
    t.send(
        http::Request::post(link_path(token))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .header(header::ACCEPT, "text/html")
            .body(Bytes::new())
            .unwrap(),
    )
    .await
}

fn session_cookie(r: &Reply) -> String {
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("latchkey_customer_token=")
        .unwrap()
        .to_owned()
}

fn location(r: &Reply) -> &str {
    r.headers[header::LOCATION].to_str().unwrap()
}

/// The customer the token in `cookie` signs in, read as a storefront page would.
async fn me_by_cookie(t: &TestApp, token: &str) -> Reply {
    t.send(
        http::Request::get("/rest/V1/customers/me")
            .header(header::COOKIE, format!("latchkey_customer_token={token}"))
            .body(Bytes::new())
            .unwrap(),
    )
    .await
}

#[test]
fn the_requests_here_are_the_documents_own() {
    let Ok(seed) = std::fs::read_to_string(SEED) else {
        eprintln!("{SEED} is not beside the repository; skipping the comparison");
        return;
    };
    assert!(seed.contains(DOC_CREATE_TOKEN), "createToken request");
    assert!(seed.contains(DOC_CREATE_URL), "createUrl request");
}

/// The document's two requests, then the link: from the answer, and from the email the mailer
/// sends; the page; the sign-in; the session.
async fn the_documents_two_requests_sign_the_customer_in(backend: Backend) {
    let (t, bearer, customer) = app(backend, &[]).await;

    // Verbatim, the email is no customer's: a clear answer in Magento's shape.
    let r = post_json(
        &t,
        "/rest/V1/otp/createToken",
        DOC_CREATE_TOKEN,
        Some(&bearer),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        r.json["message"],
        "No such entity with %fieldName = %fieldValue, %field2Name = %field2Value"
    );
    assert_eq!(r.json["parameters"]["fieldValue"], "[email\u{a0}protected]");
    // Without a token, or with a customer's, nobody may make one.
    let r = post_json(&t, "/rest/V1/otp/createToken", DOC_CREATE_TOKEN, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // The same request for the customer's address.
    let body = DOC_CREATE_TOKEN.replace("[email\u{a0}protected]", CUSTOMER);
    let r = post_json(&t, "/rest/V1/otp/createToken", &body, Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let created = r.json.clone();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["customer_id"], customer.id);
    assert_eq!(created["store_id"], 1);
    assert_eq!(created["created_at"], "2030-03-17 17:46:40");
    assert_eq!(created["expires_at"], "2030-03-17 17:51:40", "5 minutes");
    let stored = t.store.scan_sk("LINK", 10, T0).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored.iter().any(|i| holds(i, &token)),
        "stored hashed only"
    );

    // createUrl with "the exact response value from Create token request" ...
    let url_path = "/rest/V1/otp/createUrl";
    let body = DOC_CREATE_URL.replace("<token>", &created.to_string());
    let r = post_json(&t, url_path, &body, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let url = format!("https://shop.example.com/customer/otp/auth/token/{token}/");
    assert_eq!(r.json, json!(url), "a bare JSON string");
    // ... or with the token alone.
    let body = DOC_CREATE_URL.replace("<token>", &json!(token).to_string());
    let r = post_json(&t, url_path, &body, None).await;
    assert_eq!((r.status, r.json.clone()), (StatusCode::OK, json!(url)));

    // The API waited on no mail service: the email goes out when the mailer runs, once.
    assert!(t.last_email_to(CUSTOMER).is_none());
    assert_eq!(
        t.run_link_mailer().await,
        1,
        "one email for two createUrl calls"
    );
    let email = t.last_email_to(CUSTOMER).unwrap();
    assert_eq!(email.subject, "Your sign-in link for Main Store");
    assert!(email.text.contains(&url), "{}", email.text);
    assert!(
        email
            .html
            .as_deref()
            .unwrap()
            .contains(&format!("href=\"{url}\""))
    );

    // Following the link shows a page whose button posts; the post signs in.
    let r = t.get(&link_path(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("<form method=\"post\" action=\"\">"),
        "{}",
        r.text
    );
    assert!(r.text.contains("Sign in to Main Store"));
    assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let r = confirm(&t, &token).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text);
    assert_eq!(
        location(&r),
        "https://shop.example.com/",
        "the store's landing page"
    );
    let session = session_cookie(&r);
    let me = t.get("/rest/V1/customers/me", Some(&session)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["email"], CUSTOMER);
    let me = me_by_cookie(&t, &session).await;
    assert_eq!(
        me.json["id"], customer.id,
        "the cookie alone signs the page in"
    );
}

/// A link works once; its page says so afterwards and offers a new one, which arrives.
async fn a_used_link_is_refused_and_offers_a_new_one(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let token = token_for(&t, &bearer, 10).await;
    assert_eq!(confirm(&t, &token).await.status, StatusCode::FOUND);
    let again = confirm(&t, &token).await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    assert!(again.text.contains("already used"), "{}", again.text);
    let page = t.get(&link_path(&token), None).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text.contains("action=\"/customer/otp/request\""));

    let r = t
        .send(
            http::Request::post("/customer/otp/request")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Bytes::from(format!(
                    "email={}&store_id=1",
                    CUSTOMER.replace('@', "%40")
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Check your inbox"));
    assert_eq!(t.run_link_mailer().await, 1);
    let email = t.last_email_to(CUSTOMER).unwrap();
    let fresh = email
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("https://shop.example.com/customer/otp/auth/token/"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert_ne!(fresh, token);
    assert_eq!(confirm(&t, &fresh).await.status, StatusCode::FOUND);

    // Unknown and malformed tokens: a clear page, not an error of the machinery.
    for bogus in ["A".repeat(32), "short".into(), "x".repeat(300)] {
        let r = confirm(&t, &bogus).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bogus}");
        assert!(r.text.contains("not valid"));
    }
}

/// Expiry follows the injected clock, and `expiry` is capped by configuration.
async fn links_expire_on_the_clock_and_expiry_is_capped(backend: Backend) {
    let (t, bearer, _) = app(backend, &[("LATCHKEY_LINK_MAX_EXPIRY_MINUTES", "30")]).await;
    let token = token_for(&t, &bearer, 5).await;
    let late = token_for(&t, &bearer, 5).await;
    t.clock.advance(5 * 60 - 1);
    assert_eq!(t.get(&link_path(&token), None).await.status, StatusCode::OK);
    assert_eq!(
        confirm(&t, &token).await.status,
        StatusCode::FOUND,
        "one second left"
    );
    t.clock.advance(1);
    let page = t.get(&link_path(&late), None).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text.contains("expired"), "{}", page.text);
    assert_eq!(confirm(&t, &late).await.status, StatusCode::GONE);

    let capped = create_token(
        &t,
        &bearer,
        json!({"email": CUSTOMER, "storeId": 1, "expiry": 100000}),
    )
    .await;
    assert_eq!(
        capped["expires_at"], "2030-03-17 18:21:40",
        "30 minutes after now"
    );
    for bad in [json!(0), json!(-5), json!("soon"), json!(1.5)] {
        let r = post_json(
            &t,
            "/rest/V1/otp/createToken",
            &json!({"email": CUSTOMER, "storeId": 1, "expiry": bad}).to_string(),
            Some(&bearer),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert!(r.json["message"].is_string());
    }
}

/// Mail scanners fetch links (GET, HEAD) before the customer does: that burns nothing. A form
/// posted from another site (login CSRF) is refused.
async fn prefetches_and_cross_site_posts_burn_nothing(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let token = token_for(&t, &bearer, 10).await;
    for _ in 0..3 {
        assert_eq!(t.get(&link_path(&token), None).await.status, StatusCode::OK);
    }
    let head = t.call(Method::HEAD, &link_path(&token), None, None).await;
    assert_eq!(head.status, StatusCode::OK);
    let no_slash = t
        .get(&format!("/customer/otp/auth/token/{token}"), None)
        .await;
    assert_eq!(no_slash.status, StatusCode::OK);
    let forged = t
        .send(
            http::Request::post(link_path(&token))
                .header("sec-fetch-site", "cross-site")
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        confirm(&t, &token).await.status,
        StatusCode::FOUND,
        "still unused"
    );
}

/// `next` must stay on the store's origins, when the link is made and again when it is used.
async fn next_never_leaves_the_stores_origins(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    for evil in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "https://shop.example.com.evil.example/",
        "https://shop.example.com@evil.example/",
        "javascript:alert(document.cookie)",
        "http://shop.example.com/",
    ] {
        let body = json!({"email": CUSTOMER, "storeId": 1, "expiry": 5, "next": evil}).to_string();
        let r = post_json(&t, "/rest/V1/otp/createToken", &body, Some(&bearer)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{evil}: {}", r.text);
        assert_eq!(
            r.json["message"],
            "The \"next\" URL is not allowed for this store."
        );
        let body = json!({"email": CUSTOMER, "storeId": 1, "next": evil}).to_string();
        let r = post_json(&t, "/rest/V1/otp/send", &body, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{evil}");
    }
    for (next, to) in [
        ("/checkout/cart/", "https://shop.example.com/checkout/cart/"),
        (
            "https://account.example.com/orders?x=1",
            "https://account.example.com/orders?x=1",
        ),
    ] {
        let answer = create_token(
            &t,
            &bearer,
            json!({"email": CUSTOMER, "storeId": 1, "expiry": 5, "next": next}),
        )
        .await;
        let r = confirm(&t, answer["token"].as_str().unwrap()).await;
        assert_eq!((r.status, location(&r)), (StatusCode::FOUND, to));
    }
}

/// The allow-list is checked again when the link is used: a `next` the store no longer allows
/// lands on the store's page instead.
async fn a_next_no_longer_allowed_lands_on_the_store(backend: Backend) {
    let (t, bearer, customer) = app(backend, &[]).await;
    let answer = create_token(
        &t,
        &bearer,
        json!({"email": CUSTOMER, "storeId": 1, "expiry": 5, "next": "https://account.example.com/x"}),
    )
    .await;
    let token = answer["token"].as_str().unwrap();
    // The same store and data, with the account origin dropped from the allow-list.
    let stricter = TestApp::with(
        t.store.clone(),
        &[(
            "LATCHKEY_STORES",
            r#"[{"id":1,"base_url":"https://shop.example.com"}]"#,
        )],
    );
    stricter.clock.set(t.clock.now());
    let r = confirm(&stricter, token).await;
    assert_eq!(
        (r.status, location(&r)),
        (StatusCode::FOUND, "https://shop.example.com/")
    );
    let me = t
        .get("/rest/V1/customers/me", Some(&session_cookie(&r)))
        .await;
    assert_eq!(me.json["id"], customer.id);
}

/// Twenty confirmations of one link at once: exactly one session.
async fn twenty_simultaneous_confirmations_make_one_session(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let token = token_for(&t, &bearer, 10).await;
    let t = std::sync::Arc::new(t);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (t, token) = (t.clone(), token.clone());
        tasks.push(tokio::spawn(async move { confirm(&t, &token).await }));
    }
    let mut signed_in = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            StatusCode::FOUND => {
                session_cookie(&r);
                signed_in += 1;
            }
            StatusCode::GONE => assert!(r.headers.get(header::SET_COOKIE).is_none()),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(signed_in, 1);
}

/// `otp/send` answers the same for unknown emails and emails nothing to them; it is throttled
/// per email, per client address and per store, and a refused send counts and creates nothing.
async fn send_answers_alike_and_is_throttled(backend: Backend) {
    let (t, _, _) = app(
        backend,
        &[
            ("LATCHKEY_LINK_SENDS_PER_EMAIL", "2"),
            ("LATCHKEY_LINK_SENDS_PER_IP", "4"),
            ("LATCHKEY_LINK_SENDS_PER_STORE", "6"),
        ],
    )
    .await;
    let app = &t;
    let send = move |email: &str, ip: [u8; 4]| {
        let body = json!({"email": email, "storeId": "1", "next": "/account/"}).to_string();
        let t = app;
        async move {
            t.call_from(
                Method::POST,
                "/rest/V1/otp/send",
                Some(&body),
                None,
                std::net::IpAddr::from(ip),
            )
            .await
        }
    };
    let known = send(CUSTOMER, [198, 51, 100, 1]).await;
    let unknown = send("nobody@example.com", [198, 51, 100, 1]).await;
    assert_eq!(
        (known.status, known.text.as_str()),
        (StatusCode::OK, "true")
    );
    assert_eq!(
        (unknown.status, unknown.text.as_str()),
        (StatusCode::OK, "true")
    );
    assert_eq!(t.run_link_mailer().await, 1, "only the customer gets mail");
    assert!(t.last_email_to("nobody@example.com").is_none());
    let email = t.last_email_to(CUSTOMER).unwrap();
    assert!(
        email.text.contains("expires in 15 minutes"),
        "{}",
        email.text
    );

    // Per email: the third send to the customer in the window is refused, from any address.
    assert_eq!(
        send(CUSTOMER, [198, 51, 100, 2]).await.status,
        StatusCode::OK
    );
    let r = send(CUSTOMER, [198, 51, 100, 3]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(
        r.json["message"],
        "Too many login links were requested. Please wait and try again later."
    );
    assert_eq!(
        t.run_link_mailer().await,
        1,
        "the refused send made no link"
    );
    // Per address: 4 from one address (two were counted above).
    assert_eq!(
        send("a@example.com", [198, 51, 100, 1]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send("b@example.com", [198, 51, 100, 1]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send("c@example.com", [198, 51, 100, 1]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Per store: 6 in all were counted (the refused ones gave theirs back).
    assert_eq!(
        send("d@example.com", [198, 51, 100, 9]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send("e@example.com", [198, 51, 100, 10]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A new window lets them through again.
    t.clock.advance(15 * 60);
    assert_eq!(
        send(CUSTOMER, [198, 51, 100, 3]).await.status,
        StatusCode::OK
    );

    // Unknown stores and missing fields: Magento's answers.
    let r = post_json(
        &t,
        "/rest/V1/otp/send",
        r#"{"email":"x@example.com","storeId":"9"}"#,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json["message"],
        "The store that was requested wasn't found. Verify the store and try again."
    );
    let r = post_json(&t, "/rest/V1/otp/send", "{}", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 2);
}

/// Customers of another website cannot get links for this store, and the German store's
/// customer gets German mail.
async fn stores_keep_their_customers_and_locales(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let kunde = accounts::create(
        t.db(),
        &t.app.hasher,
        &t.app.keys.sealer,
        t.app.rng.as_ref(),
        accounts::NewUser {
            username: "kunde@example.de".into(),
            email: "kunde@example.de".into(),
            password: latchkey_core::crypto::SecretString::new(PASSWORD.into()),
            role: Role::Customer,
            totp_secret: None,
            phone: None,
            store_id: 2,
        },
        "test",
    )
    .await
    .unwrap();
    let wrong_store = json!({"email": "kunde@example.de", "storeId": 1, "expiry": 5}).to_string();
    let r = post_json(&t, "/rest/V1/otp/createToken", &wrong_store, Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = post_json(
        &t,
        "/rest/V1/otp/send",
        r#"{"email":"kunde@example.de","storeId":2}"#,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(t.run_link_mailer().await, 1);
    let mail = t.last_email_to("kunde@example.de").unwrap();
    assert_eq!(mail.subject, "Ihr Anmeldelink für Laden");
    assert!(
        mail.text
            .contains("https://shop.example.de/customer/otp/auth/token/")
    );
    assert_eq!(kunde.store_id, 2);
}

/// The admin views list a customer's tokens (never the token), name the active one, and revoke
/// one or all; revoking the customer's tokens (a credential change) kills links too.
async fn admin_views_list_and_revoke(backend: Backend) {
    let (t, bearer, customer) = app(backend, &[]).await;
    let used = token_for(&t, &bearer, 10).await;
    assert_eq!(confirm(&t, &used).await.status, StatusCode::FOUND);
    t.clock.advance(1);
    let old = token_for(&t, &bearer, 10).await;
    t.clock.advance(1);
    let newest = token_for(&t, &bearer, 10).await;
    let tokens = format!("/rest/V1/otp/customers/{}/tokens", customer.id);
    let r = t.get(&tokens, Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let states: Vec<&str> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["used", "active", "active"]);
    for secret in [&used, &old, &newest] {
        assert!(
            !r.text.contains(secret.as_str()),
            "a view never shows a token"
        );
    }
    assert!(r.json[0]["used_at"].is_string());
    let active = t.get(&format!("{tokens}/active"), Some(&bearer)).await;
    assert_eq!(active.status, StatusCode::OK);
    let newest_id = active.json["id"].as_str().unwrap().to_owned();
    assert_eq!(active.json, r.json[2]);
    assert_eq!(t.get(&tokens, None).await.status, StatusCode::UNAUTHORIZED);
    let nobody = t
        .get("/rest/V1/otp/customers/999/tokens", Some(&bearer))
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    let revoke = format!("{tokens}/revoke");
    let body = json!({ "tokenId": newest_id }).to_string();
    let r = post_json(&t, &revoke, &body, Some(&bearer)).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "true"));
    let page = confirm(&t, &newest).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text.contains("no longer works"));
    let active = t.get(&format!("{tokens}/active"), Some(&bearer)).await;
    assert_eq!(active.json["id"], r_json_id(&t, &tokens, &bearer, 1).await);
    let r = post_json(&t, &revoke, r#"{"tokenId":"nope"}"#, Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Revoking the customer's tokens moves their generation: the remaining link dies too.
    accounts::revoke_tokens(t.db(), customer.id, "test")
        .await
        .unwrap();
    assert_eq!(confirm(&t, &old).await.status, StatusCode::GONE);
    let active = t.get(&format!("{tokens}/active"), Some(&bearer)).await;
    assert_eq!(active.status, StatusCode::NOT_FOUND);
    let fresh = token_for(&t, &bearer, 10).await;
    let r = post_json(&t, &revoke, "", Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        confirm(&t, &fresh).await.status,
        StatusCode::GONE,
        "revoke all"
    );
}

async fn r_json_id(t: &TestApp, tokens: &str, bearer: &str, index: usize) -> Value {
    t.get(tokens, Some(bearer)).await.json[index]["id"].clone()
}

/// The mailer sends each request once, however often the stream (or a retry) hands it over,
/// and its stream events carry no token in clear.
async fn the_mailer_sends_each_request_once(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let token = token_for(&t, &bearer, 10).await;
    let body = json!({"path": "customer/otp/auth", "token": token}).to_string();
    assert_eq!(
        post_json(&t, "/rest/V1/otp/createUrl", &body, None)
            .await
            .status,
        StatusCode::OK
    );
    let keys = t.link_queue.take();
    assert_eq!(keys.len(), 1);
    let item = t.store.get(&keys[0], T0).await.unwrap().unwrap();
    assert!(
        !holds(&item, &token),
        "the stream image carries the token sealed only"
    );
    assert!(item.bytes("sealed_token").is_some());
    let stream_event = json!({"Records": [
        {"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
         "dynamodb": {"Keys": {"pk": {"S": keys[0].pk.clone()}, "sk": {"S": keys[0].sk.clone()}}, "SequenceNumber": "100"}},
        {"eventID": "2", "eventName": "INSERT", "eventSource": "aws:dynamodb",
         "dynamodb": {"Keys": {"pk": {"S": keys[0].pk.clone()}, "sk": {"S": keys[0].sk.clone()}}, "SequenceNumber": "101"}},
        {"eventID": "3", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
         "dynamodb": {"Keys": {"pk": {"S": "USER#1"}, "sk": {"S": "PROFILE"}}, "SequenceNumber": "102"}}
    ]});
    let answer = link_mailer::handle_event(&t.app, &stream_event)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let answer = link_mailer::handle_event(&t.app, &stream_event)
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}), "a retried batch");
    let mails: Vec<_> = t
        .outbox
        .emails()
        .into_iter()
        .filter(|e| e.to == CUSTOMER)
        .collect();
    assert_eq!(mails.len(), 1);
    let sent = t.store.get(&keys[0], T0).await.unwrap().unwrap();
    assert!(
        sent.bytes("sealed_token").is_none(),
        "the sealed token is dropped once sent"
    );

    // A storefront's own event (SQS) asks for a link; its redelivery asks for nothing more.
    let sqs = json!({"Records": [{"messageId": "m-1", "eventSource": "aws:sqs",
        "body": json!({"email": CUSTOMER, "storeId": 1}).to_string()}]});
    assert_eq!(
        link_mailer::handle_event(&t.app, &sqs).await.unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!(
        link_mailer::handle_event(&t.app, &sqs).await.unwrap(),
        json!({"batchItemFailures": []})
    );
    assert_eq!(
        t.run_link_mailer().await,
        1,
        "one link for a message delivered twice"
    );
    let bridge = json!({"version": "0", "id": "e-1", "detail-type": "LoginLinkRequested",
        "source": "shop", "detail": {"email": CUSTOMER, "storeId": "1", "requestId": "r-9"}});
    link_mailer::handle_event(&t.app, &bridge).await.unwrap();
    link_mailer::handle_event(&t.app, &bridge).await.unwrap();
    assert_eq!(t.run_link_mailer().await, 1);
    assert!(
        link_mailer::handle_event(&t.app, &json!({"nope": 1}))
            .await
            .is_err()
    );
}

/// Errors of the token routes, in Magento's shape.
async fn token_routes_answer_in_magentos_shape(backend: Backend) {
    let (t, bearer, _) = app(backend, &[]).await;
    let create = "/rest/V1/otp/createToken";
    let r = post_json(&t, create, "{}", Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json["message"],
        "One or more input exceptions have occurred."
    );
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 3);
    let r = post_json(
        &t,
        create,
        r#"{"email":"buyer@example.com","storeId":"7","expiry":5}"#,
        Some(&bearer),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post_json(&t, create, "{not json", Some(&bearer)).await;
    assert_eq!(
        (r.status, r.json["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Decoding error."))
    );
    let r = post_json(
        &t,
        "/rest/default/V1/otp/createToken",
        r#"{"email":"buyer@example.com","storeId":1,"expiry":5}"#,
        Some(&bearer),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "store code path");

    let url = "/rest/V1/otp/createUrl";
    let token = token_for(&t, &bearer, 5).await;
    let r = post_json(
        &t,
        url,
        &json!({"path": "admin/evil", "token": token}).to_string(),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["parameters"], json!(["admin/evil"]));
    let r = post_json(
        &t,
        url,
        &json!({"path": "customer/otp/auth", "token": "B6uiladd2569hikvf6vcphh8FixchO7T"})
            .to_string(),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post_json(
        &t,
        url,
        &json!({"path": "customer/otp/auth", "token": 12}).to_string(),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post_json(&t, url, "{}", None).await;
    assert_eq!(r.json["errors"].as_array().unwrap().len(), 2);
    assert_eq!(confirm(&t, &token).await.status, StatusCode::FOUND);
    let r = post_json(
        &t,
        url,
        &json!({"path": "customer/otp/auth", "token": token}).to_string(),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a used token makes no URL"
    );

    // The pages: HTML answers for unknown paths and methods.
    let r = t.get("/customer/otp/nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = t.get("/customer/otp/request", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

flow_suite!(
    the_documents_two_requests_sign_the_customer_in,
    a_used_link_is_refused_and_offers_a_new_one,
    links_expire_on_the_clock_and_expiry_is_capped,
    prefetches_and_cross_site_posts_burn_nothing,
    next_never_leaves_the_stores_origins,
    a_next_no_longer_allowed_lands_on_the_store,
    twenty_simultaneous_confirmations_make_one_session,
    send_answers_alike_and_is_throttled,
    stores_keep_their_customers_and_locales,
    admin_views_list_and_revoke,
    the_mailer_sends_each_request_once,
    token_routes_answer_in_magentos_shape,
);
