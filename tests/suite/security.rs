//! Issue 9: what an attacker could do, each closed and each proven here — through the router
//! and at the core, on both shipping stores where the store matters.
//!
//! - an integration minting a stronger integration;
//! - over-long identifiers reaching a key (DynamoDB refuses partition keys over 2,048 bytes,
//!   which the emulator does not: every store here refuses them too, so a route that let one
//!   through would answer 500);
//! - unknown logins as one hot key;
//! - per-address limits dodged by hopping within an IPv6 /64, or by a forged
//!   `X-Forwarded-For`, or shared by every shopper behind a proxy;
//! - a flood of sign-ins exhausting memory (bounded hashing);
//! - secrets in log lines;
//! - answers that tell known accounts from unknown ones.
//!
//! The development outbox pages, local file modes and the CLI's password prompt are tested on
//! the real binary in `shared/cli/tests/serve.rs`; the parsers by property tests and the
//! bounded fuzz run in [`fuzz`].

mod fuzz;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use latchkey_core::identity::integrations::{self, ALL_RESOURCES, Grantor};
use latchkey_core::identity::users::{Role, User};
use latchkey_core::identity::{Error, Invalid, accounts};
use latchkey_core::routes;
use latchkey_core::store::{MAX_PK_BYTES, MAX_SK_BYTES};
use latchkey_tests::harness::{Backend, Reply, T0, TestApp, mask_nonces, tfa_token_from};
use latchkey_tests::otp;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const ADMIN_TOKEN: &str = "/rest/V1/integration/admin/token";
const CUSTOMER_TOKEN: &str = "/rest/V1/integration/customer/token";
const AUTHENTICATE: &str = "/rest/V1/tfa/provider/google/authenticate";
const CONFIGURE: &str = "/rest/V1/tfa/provider/google/configure";
const ACTIVATE: &str = "/rest/V1/tfa/provider/google/activate";
const INTEGRATIONS: &str = "/rest/V1/integrations";
const INTEGRATIONS_RESOURCE: &str = "Magento_Integration::integrations";
const TFA_RESOURCE: &str = "Magento_TwoFactorAuth::tfa";
const SIGN_IN_INCORRECT: &str = r#"{"message":"The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."}"#;
const BUSY: &str =
    r#"{"message":"The service is temporarily unavailable. Please try again later."}"#;

fn creds(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

fn token_of(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json.as_str().expect("a bare JSON string").to_owned()
}

/// An admin with an authenticator, signed in; their user and access token.
async fn signed_in_admin(t: &TestApp) -> (User, String) {
    let (admin, secret) = t.add_admin_with_totp("boss", PASSWORD).await;
    let body = json!({"username": "boss", "password": PASSWORD, "otp": otp::totp(&secret, T0)});
    let token = token_of(&t.post(AUTHENTICATE, &body.to_string()).await);
    (admin, token)
}

async fn create_integration(t: &TestApp, bearer: &str, body: Value) -> Reply {
    t.call(
        Method::POST,
        INTEGRATIONS,
        Some(&body.to_string()),
        Some(bearer),
    )
    .await
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ------------------------------------------------------------ integrations

/// The issue's attack, through the route: an admin creates an integration holding only
/// `Magento_Integration::integrations`; with its token, `POST /rest/V1/integrations
/// {"name":"evil"}` used to answer 200 with an integration holding `Magento_Backend::all`,
/// whose token could then reset any admin's 2FA.
async fn an_integration_cannot_mint_a_stronger_integration(backend: Backend) {
    let t = TestApp::on(backend).await;
    let (admin, admin_token) = signed_in_admin(&t).await;
    let r = create_integration(
        &t,
        &admin_token,
        json!({"name": "Provisioner", "resources": [INTEGRATIONS_RESOURCE]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let provisioner = r.json["access_token"].as_str().unwrap().to_owned();

    // The exact request of the issue.
    let r = create_integration(&t, &provisioner, json!({"name": "evil"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "resources"}})
    );
    // An empty list is not "everything".
    let r = create_integration(&t, &provisioner, json!({"name": "evil", "resources": []})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["message"], Invalid::Resources.to_string());
    // Nor may it name what it does not hold, alone or beside what it holds.
    for resources in [
        json!([ALL_RESOURCES]),
        json!([TFA_RESOURCE]),
        json!([INTEGRATIONS_RESOURCE, ALL_RESOURCES]),
        json!([format!("  {ALL_RESOURCES} ")]),
    ] {
        let body = json!({"name": "evil", "resources": resources});
        let r = create_integration(&t, &provisioner, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{resources}: {}", r.text);
        assert_eq!(
            r.json["message"],
            Invalid::ResourceNotHeld.to_string(),
            "{resources}"
        );
    }
    // Nothing was created by any of those, and the provisioner still cannot touch 2FA.
    let stored = integrations::list(t.db()).await.unwrap();
    assert_eq!(
        stored.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["Provisioner"]
    );
    let r = t
        .call(
            Method::POST,
            &format!("/rest/V1/tfa/provider/google/reset/{}", admin.id),
            None,
            Some(&provisioner),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(t.user(admin.id).await.totp.is_active());

    // What it holds, it may pass on — and no more than that comes out.
    let r = create_integration(
        &t,
        &provisioner,
        json!({"name": "Helper", "resources": [INTEGRATIONS_RESOURCE]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["resources"], json!([INTEGRATIONS_RESOURCE]));
    // An admin holds everything, so may grant everything — but only when asked by name.
    let r = create_integration(&t, &admin_token, json!({"name": "Everything"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = create_integration(
        &t,
        &admin_token,
        json!({"name": "Everything", "resources": [ALL_RESOURCES]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// The same rule at the core, where every dialect and the CLI get it.
async fn the_core_grants_at_most_what_the_grantor_holds(backend: Backend) {
    let t = TestApp::on(backend).await;
    let create = |grantor, name, resources| grant(&t, grantor, name, resources);
    let (provisioner, _) = create(Grantor::Admin, "provisioner", &[INTEGRATIONS_RESOURCE])
        .await
        .unwrap();
    let as_provisioner = Grantor::Integration(&provisioner);
    let empties: [&[&str]; 3] = [&[], &[""], &["   "]];
    for grantor in [Grantor::Admin, as_provisioner] {
        for empty in empties {
            assert!(
                matches!(
                    create(grantor, "evil", empty).await,
                    Err(Error::Invalid(Invalid::Resources))
                ),
                "{grantor:?} {empty:?}"
            );
        }
    }
    let lacking_lists: [&[&str]; 3] = [
        &[ALL_RESOURCES],
        &[TFA_RESOURCE],
        &[INTEGRATIONS_RESOURCE, ALL_RESOURCES],
    ];
    for lacking in lacking_lists {
        assert!(
            matches!(
                create(as_provisioner, "evil", lacking).await,
                Err(Error::Invalid(Invalid::ResourceNotHeld))
            ),
            "{lacking:?}"
        );
    }
    let (child, _) = create(as_provisioner, "child", &[INTEGRATIONS_RESOURCE])
        .await
        .unwrap();
    assert_eq!(child.resources, [INTEGRATIONS_RESOURCE]);
    assert!(!child.allows(TFA_RESOURCE) && !child.allows(ALL_RESOURCES));
    // A holder of everything may pass anything on.
    let (root, _) = create(Grantor::Admin, "root", &[ALL_RESOURCES])
        .await
        .unwrap();
    let (tfa, _) = create(Grantor::Integration(&root), "tfa", &[TFA_RESOURCE])
        .await
        .unwrap();
    assert!(tfa.allows(TFA_RESOURCE) && !tfa.allows(INTEGRATIONS_RESOURCE));
}

async fn grant(
    t: &TestApp,
    grantor: Grantor<'_>,
    name: &str,
    resources: &[&str],
) -> Result<
    (
        integrations::Integration,
        latchkey_core::crypto::SecretString,
    ),
    Error,
> {
    let resources = resources.iter().map(|r| r.to_string()).collect();
    integrations::create(
        t.db(),
        t.app.rng.as_ref(),
        t.app.keys.pepper(),
        grantor,
        name,
        resources,
        "test",
    )
    .await
}

// ------------------------------------------------------------ over-long identifiers

/// 3,000 characters, as in the issue; and a string short in characters but over DynamoDB's
/// 2,048-byte partition key limit in UTF-8.
fn long_identifiers() -> [String; 2] {
    ["x".repeat(3000), "é".repeat(1100)]
}

/// Every route that takes an identifier, with an over-long one, answers the dialect's own
/// refusal — the one it gives any unknown or malformed identifier — never a 500, and no key
/// over DynamoDB's limits is ever asked of the store.
async fn over_long_identifiers_get_the_dialects_own_answer_on_every_route(backend: Backend) {
    let (t, recorder) = TestApp::recorded(backend, &[("LATCHKEY_IP_ATTEMPTS", "100000")]).await;
    let (_, admin) = signed_in_admin(&t).await;
    let ascii_long = "x".repeat(3000);
    for long in long_identifiers() {
        // As it travels in a path or a query string.
        let seg: String = url::form_urlencoded::byte_serialize(long.as_bytes()).collect();
        let login = |extra: Value| {
            let mut body = json!({"username": long, "password": PASSWORD});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body.to_string()
        };
        let not_found_integration = json!({
            "message": "The integration with ID \"%1\" doesn't exist.", "parameters": [seg]
        });
        let wrong_user_id = json!({
            "message": "The \"%fieldName\" value's type is invalid. The \"%type\" type was expected. Verify and try again.",
            "parameters": {"fieldName": "userId", "type": "int"}
        });
        let invalid_tfa = json!({"message": "Invalid two-factor authorization token"});
        let cases: Vec<MalformedCase<'_>> = vec![
            (
                Method::POST,
                ADMIN_TOKEN.into(),
                Some(login(json!({}))),
                None,
                StatusCode::UNAUTHORIZED,
                serde_json::from_str(SIGN_IN_INCORRECT).unwrap(),
            ),
            (
                Method::POST,
                CUSTOMER_TOKEN.into(),
                Some(login(json!({}))),
                None,
                StatusCode::UNAUTHORIZED,
                serde_json::from_str(SIGN_IN_INCORRECT).unwrap(),
            ),
            (
                Method::POST,
                AUTHENTICATE.into(),
                Some(login(json!({"otp": "123456"}))),
                None,
                StatusCode::UNAUTHORIZED,
                serde_json::from_str(SIGN_IN_INCORRECT).unwrap(),
            ),
            (
                Method::POST,
                CONFIGURE.into(),
                Some(json!({"tfaToken": long}).to_string()),
                None,
                StatusCode::UNAUTHORIZED,
                invalid_tfa.clone(),
            ),
            (
                Method::POST,
                ACTIVATE.into(),
                Some(json!({"tfaToken": long, "otp": "123456"}).to_string()),
                None,
                StatusCode::UNAUTHORIZED,
                invalid_tfa.clone(),
            ),
            (
                Method::GET,
                format!("/rest/V1/tfa/tfat-user-providers?tfaToken={seg}"),
                None,
                None,
                StatusCode::UNAUTHORIZED,
                invalid_tfa.clone(),
            ),
            (
                Method::GET,
                format!("/rest/V1/tfa/user-providers/{}", "9".repeat(long.len())),
                None,
                Some(&admin),
                StatusCode::BAD_REQUEST,
                wrong_user_id.clone(),
            ),
            (
                Method::POST,
                format!("/rest/V1/tfa/provider/google/reset/{seg}"),
                None,
                Some(&admin),
                StatusCode::BAD_REQUEST,
                wrong_user_id,
            ),
            (
                Method::POST,
                format!("/rest/V1/tfa/provider/{seg}/reset/1"),
                None,
                Some(&admin),
                StatusCode::BAD_REQUEST,
                json!({"message": "Provider is not allowed."}),
            ),
            (
                Method::POST,
                INTEGRATIONS.into(),
                Some(json!({"name": long, "resources": [TFA_RESOURCE]}).to_string()),
                Some(&admin),
                StatusCode::BAD_REQUEST,
                json!({"message": Invalid::IntegrationName.to_string()}),
            ),
            (
                Method::POST,
                INTEGRATIONS.into(),
                Some(json!({"name": "ok", "resources": [long]}).to_string()),
                Some(&admin),
                StatusCode::BAD_REQUEST,
                json!({"message": Invalid::Resources.to_string()}),
            ),
            (
                Method::DELETE,
                format!("{INTEGRATIONS}/{seg}"),
                None,
                Some(&admin),
                StatusCode::NOT_FOUND,
                not_found_integration,
            ),
            (
                Method::GET,
                "/rest/V1/customers/me".into(),
                None,
                Some(ascii_long.as_str()),
                StatusCode::UNAUTHORIZED,
                json!({"message": "The consumer isn't authorized to access %resources.", "parameters": {"resources": "self"}}),
            ),
            (
                Method::POST,
                format!("/rest/{seg}/V1/integration/customer/token"),
                Some(creds("buyer", PASSWORD)),
                None,
                StatusCode::NOT_FOUND,
                json!({"message": "The store that was requested wasn't found. Verify the store and try again."}),
            ),
        ];
        for (method, path, body, bearer, status, expected) in cases {
            let shown = format!("{method} {}", &path[..path.len().min(60)]);
            let r = t.call(method, &path, body.as_deref(), bearer).await;
            assert_eq!(r.status, status, "{shown}: {}", r.text);
            assert_eq!(r.json, expected, "{shown}");
        }
    }
    assert_keys_within_limits(&recorder.take().keys);
    every_documented_request_with_long_values_answers_below_500(&t, &admin, &recorder).await;
}

fn assert_keys_within_limits(keys: &[latchkey_core::store::Key]) {
    for key in keys {
        assert!(
            key.pk.len() <= MAX_PK_BYTES && key.sk.len() <= MAX_SK_BYTES,
            "a key of {} + {} bytes reached the store",
            key.pk.len(),
            key.sk.len()
        );
    }
}

/// Every operation of `openapi.json` — so every dialect as it lands — with every path
/// parameter, query parameter and string field of its body set to an over-long value, signed
/// in as an admin, as nobody and with an over-long token: no answer is a 5xx, every answer is
/// JSON, and no over-long key reaches the store.
async fn every_documented_request_with_long_values_answers_below_500(
    t: &TestApp,
    admin: &str,
    recorder: &latchkey_tests::recording::RecordingStore,
) {
    let doc: Value = serde_json::from_str(latchkey_core::dialects::core::OPENAPI).unwrap();
    for long in long_identifiers() {
        let encoded: String = url::form_urlencoded::byte_serialize(long.as_bytes()).collect();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let mut concrete = path
                    .split('/')
                    .map(|seg| {
                        if seg.starts_with('{') {
                            encoded.clone()
                        } else {
                            seg.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let query: Vec<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .map(|p| format!("{}={encoded}", p["name"].as_str().unwrap()))
                    .collect();
                if !query.is_empty() {
                    concrete = format!("{concrete}?{}", query.join("&"));
                }
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                let body = schema["properties"].as_object().map(|props| {
                    let fields: serde_json::Map<String, Value> = props
                        .iter()
                        .map(|(name, prop)| {
                            let value = match prop["type"].as_str() {
                                Some("array") => json!([long]),
                                _ => json!(long),
                            };
                            (name.clone(), value)
                        })
                        .collect();
                    Value::Object(fields).to_string()
                });
                let forged = Some(long.as_str()).filter(|l| l.is_ascii());
                for bearer in [Some(admin), None, forged] {
                    let r = t
                        .call(method.clone(), &concrete, body.as_deref(), bearer)
                        .await;
                    assert!(
                        r.status.as_u16() < 500,
                        "{method} {path}: {} {}",
                        r.status,
                        r.text
                    );
                    let page = r
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
                    assert!(
                        if page {
                            r.text.starts_with("<!doctype html>")
                        } else {
                            serde_json::from_str::<Value>(&r.text).is_ok()
                        },
                        "{method} {path}: neither JSON nor a page: {}",
                        r.text
                    );
                }
            }
        }
    }
    assert_keys_within_limits(&recorder.take().keys);
}

// ------------------------------------------------------------ hot key

/// Every unknown login used to reserve its refused attempt on one item (`USER#0/PROFILE`): a
/// credential-stuffing run wrote every attempt to one partition, which DynamoDB throttles past
/// 1,000 writes a second — 503s for unknown users only. Now each unknown login has a budget key
/// of its own, and costs exactly the store calls, their outcomes (a write made, not refused:
/// a store answers a refused write sooner) and the hash of a wrong password.
async fn unknown_logins_touch_distinct_keys_at_the_cost_of_a_wrong_password(backend: Backend) {
    let (t, recorder) = TestApp::recorded(backend, &[("LATCHKEY_IP_ATTEMPTS", "1000")]).await;
    let buyer = t
        .add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    recorder.take();
    let is_ip_counter = |k: &latchkey_core::store::Key| k.pk.starts_with("RATE#ip");

    let hashes = t.hash_runs();
    let r = t
        .post(CUSTOMER_TOKEN, &creds("buyer", "wrong password"))
        .await;
    assert_eq!(r.text, SIGN_IN_INCORRECT);
    let known = recorder.take();
    let known_hashes = t.hash_runs() - hashes;
    assert_eq!(known_hashes, 1);
    let known_profile: Vec<_> = known.written.iter().filter(|k| !is_ip_counter(k)).collect();
    assert_eq!(
        known_profile,
        [&latchkey_core::records::profile::key(buyer.id)]
    );

    let mut partitions = BTreeSet::new();
    for i in 0..40 {
        let login = format!("stuffed{i}@example.com");
        let hashes = t.hash_runs();
        let r = t
            .post(CUSTOMER_TOKEN, &creds(&login, "wrong password"))
            .await;
        assert_eq!(r.text, SIGN_IN_INCORRECT, "{login}");
        let unknown = recorder.take();
        assert_eq!(
            unknown.calls, known.calls,
            "{login}: the store calls of a wrong password"
        );
        assert_eq!(
            unknown.actions, known.actions,
            "{login}: the same kinds of calls"
        );
        assert_eq!(
            unknown.refused, known.refused,
            "{login}: the same writes made, none refused where a known login's is made"
        );
        assert_eq!(t.hash_runs() - hashes, known_hashes, "{login}: one hash");
        let written: Vec<_> = unknown
            .written
            .iter()
            .filter(|k| !is_ip_counter(k))
            .collect();
        assert_eq!(written.len(), 1, "{login}: one reservation, {written:?}");
        assert_ne!(written[0], known_profile[0]);
        assert!(
            partitions.insert(written[0].pk.clone()),
            "{login}: a partition of its own, not {}",
            written[0].pk
        );
    }
    // One unknown login keeps its decoy (so its refusals count like a known login's would).
    t.post(CUSTOMER_TOKEN, &creds("stuffed0@example.com", "again"))
        .await;
    let again: Vec<_> = recorder
        .take()
        .written
        .into_iter()
        .filter(|k| !is_ip_counter(k))
        .collect();
    assert!(partitions.contains(&again[0].pk));
    // And the decoys hold no user: nothing was created by the refusals.
    assert_eq!(accounts::list(t.db(), 100).await.unwrap().len(), 1);
}

// ------------------------------------------------------------ client addresses

/// A limit of three attempts per address: IPv6 clients are counted per /64 (one subscriber's
/// block), `X-Forwarded-For` is read only from configured proxies, and then only the entries
/// they appended.
async fn per_address_limits_count_ipv6_by_64_and_believe_only_trusted_proxies(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_IP_ATTEMPTS", "3"),
            ("LATCHKEY_IP_WINDOW_SECONDS", "60"),
            ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8:ffff::/48"),
        ],
    )
    .await;
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let body = creds("buyer", PASSWORD);
    let attempt = |peer: &str, xff: Option<&str>| {
        let (t, body, peer) = (&t, body.clone(), ip(peer));
        let headers: Vec<(&str, String)> = xff
            .map(|v| vec![("x-forwarded-for", v.to_owned())])
            .unwrap_or_default();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = t
                .call_with(
                    Method::POST,
                    CUSTOMER_TOKEN,
                    Some(&body),
                    None,
                    &headers,
                    peer,
                )
                .await;
            match r.status {
                StatusCode::OK => true,
                _ => {
                    assert_eq!(r.text, SIGN_IN_INCORRECT);
                    false
                }
            }
        }
    };

    // One /64, four addresses: the fourth is over the limit.
    for host in ["::1", "::2", "::3"] {
        assert!(
            attempt(&format!("2001:db8:1:2{host}"), None).await,
            "{host}"
        );
    }
    assert!(!attempt("2001:db8:1:2:ffff:ffff:ffff:fffe", None).await);
    assert!(
        attempt("2001:db8:1:3::1", None).await,
        "the next /64 is another client"
    );

    // Behind a trusted proxy, each shopper has a budget of their own.
    for _ in 0..3 {
        assert!(attempt("10.0.0.1", Some("198.51.100.1")).await);
    }
    assert!(!attempt("10.0.0.1", Some("198.51.100.1")).await);
    assert!(
        attempt("10.0.0.1", Some("198.51.100.2")).await,
        "another shopper"
    );
    // Through two proxies, IPv6 shoppers per /64 as well.
    for host in ["::a", "::b", "::c"] {
        let chain = format!("2001:db8:5:5{host}, 2001:db8:ffff::7");
        assert!(attempt("10.0.0.2", Some(&chain)).await, "{host}");
    }
    assert!(!attempt("10.0.0.2", Some("2001:db8:5:5::d, 2001:db8:ffff::7")).await);
    // A shopper who forges entries to the left is still counted by what the proxy appended.
    assert!(!attempt("10.0.0.1", Some("192.0.2.99, 198.51.100.1")).await);
    assert!(!attempt("10.0.0.1", Some("192.0.2.98, 198.51.100.1")).await);
    // A peer that is no trusted proxy is the client, whatever it claims.
    for i in 0..3 {
        assert!(attempt("203.0.113.50", Some(&format!("192.0.2.{i}"))).await);
    }
    assert!(!attempt("203.0.113.50", Some("192.0.2.200")).await);
}

/// The same on Lambda: API Gateway's `sourceIp` is the peer; `X-Forwarded-For` counts only
/// when that peer is a trusted proxy (here CloudFront's published origin-facing ranges).
async fn lambda_events_take_the_client_from_source_ip_and_trusted_proxies_only(backend: Backend) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_IP_ATTEMPTS", "2"),
            ("LATCHKEY_IP_WINDOW_SECONDS", "60"),
            ("LATCHKEY_TRUSTED_PROXIES", "cloudfront"),
        ],
    )
    .await;
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let route = routes::by_name("magento-customer-token").unwrap();
    let event = |source_ip: &str, xff: &str| {
        json!({
            "version": "2.0",
            "routeKey": "POST /rest/V1/integration/customer/token",
            "rawPath": CUSTOMER_TOKEN,
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-forwarded-for": xff},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
                "domainPrefix": "api", "requestId": "r", "routeKey": "POST /rest/V1/integration/customer/token",
                "stage": "$default", "time": "17/Mar/2030:17:46:40 +0000", "timeEpoch": 1_900_000_000_000_i64,
                "http": {"method": "POST", "path": CUSTOMER_TOKEN, "protocol": "HTTP/1.1",
                         "sourceIp": source_ip, "userAgent": "test"}
            },
            "body": creds("buyer", PASSWORD),
            "isBase64Encoded": false
        })
    };
    let status = |source_ip: &'static str, xff: &'static str| {
        let (t, payload) = (&t, event(source_ip, xff));
        async move {
            latchkey_aws::lambda::handle_event(&t.app, route, payload, None)
                .await
                .status_code
        }
    };
    // A CloudFront edge (130.176.0.0/18 is origin-facing) forwarding two viewers.
    assert_eq!(status("130.176.0.10", "198.51.100.1").await, 200);
    assert_eq!(status("130.176.0.11", "198.51.100.1").await, 200);
    assert_eq!(
        status("130.176.0.12", "198.51.100.1").await,
        401,
        "that viewer's third attempt"
    );
    assert_eq!(
        status("130.176.0.12", "198.51.100.2").await,
        200,
        "another viewer"
    );
    // Straight to API Gateway, a forged header is ignored: the source address is counted.
    assert_eq!(status("203.0.113.9", "198.51.100.3").await, 200);
    assert_eq!(status("203.0.113.9", "198.51.100.4").await, 200);
    assert_eq!(status("203.0.113.9", "198.51.100.5").await, 401);
}

/// Events API Gateway would never send, but a direct invocation (or the runtime emulator) can:
/// a body flagged base64 that is not, a query or path `http` refuses, a Host no URL can be made
/// of. `lambda_http`'s own conversion panicked on each (found by the `lambda_event` fuzz
/// target) — with `panic = "abort"`, the function died mid-invocation. Each is now a 400 in the
/// route's dialect, or answered like any request.
#[tokio::test]
async fn malformed_lambda_events_get_an_answer_not_a_crash() {
    let t = TestApp::new();
    let route = routes::by_name("magento-customer-token").unwrap();
    let base: Value =
        serde_json::from_str(include_str!("../../events/magento-customer-token.json")).unwrap();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut e = base.clone();
        edit(&mut e);
        e
    };
    let bad_request =
        json!({"message": "The event is not an API Gateway HTTP API (payload 2.0) request."});
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "a body flagged base64 that is not",
            with(&|e| {
                e["isBase64Encoded"] = json!(true);
                e["body"] = json!("\u{ef}not base64!");
            }),
            400,
        ),
        (
            "a Host no URL can be made of",
            with(&|e| e["headers"]["host"] = json!("exa mple.com:99999")),
            401,
        ),
        (
            "an unparseable X-Forwarded-Proto",
            with(&|e| e["headers"]["x-forwarded-proto"] = json!("ht tp")),
            401,
        ),
        (
            "a query with bytes a URI may not hold",
            with(&|e| e["rawQueryString"] = json!("a=\"<{|}>\" é")),
            401,
        ),
        (
            "a path with them",
            with(&|e| e["rawPath"] = json!("/rest/V1/integration/customer/token é<>")),
            404,
        ),
        (
            "a path that is not one",
            with(&|e| e["rawPath"] = json!("http://evil.example.com/x")),
            400,
        ),
    ];
    for (what, event, status) in cases {
        let res = latchkey_aws::lambda::handle_event(&t.app, route, event, None).await;
        assert_eq!(res.status_code, i64::from(status), "{what}: {:?}", res.body);
        if status == 400 {
            let res = serde_json::to_value(&res).unwrap();
            let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
            assert_eq!(body, bad_request, "{what}");
        }
    }
}

// ------------------------------------------------------------ bounded hashing

/// When every hashing slot stays busy for the configured wait, a sign-in is answered at once
/// with Magento's 503 and `Retry-After`, in every case alike (unknown, wrong, right), and has
/// counted nothing against the account or changed anything.
async fn sign_ins_without_a_hashing_slot_get_a_fast_retryable_answer_and_count_nothing(
    backend: Backend,
) {
    let t = TestApp::on_with(
        backend,
        &[
            ("LATCHKEY_HASH_CONCURRENCY", "1"),
            ("LATCHKEY_HASH_WAIT_MS", "0"),
            ("LATCHKEY_LOCKOUT_FAILURES", "2"),
        ],
    )
    .await;
    let buyer = t
        .add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let (admin, secret) = t.add_admin_with_totp("boss", PASSWORD).await;
    let (buyer_before, admin_before) = (t.user(buyer.id).await, t.user(admin.id).await);
    let held = t.app.hasher.slot().await.unwrap();
    let hashes = t.hash_runs();
    let otp_body = json!({"username": "boss", "password": PASSWORD, "otp": otp::totp(&secret, T0)});
    for (path, body) in [
        (CUSTOMER_TOKEN, creds("buyer", "wrong password")),
        (CUSTOMER_TOKEN, creds("buyer", "wrong password")),
        (CUSTOMER_TOKEN, creds("buyer", "wrong password")),
        (CUSTOMER_TOKEN, creds("nobody", "wrong password")),
        (CUSTOMER_TOKEN, creds("buyer", PASSWORD)),
        (ADMIN_TOKEN, creds("boss", PASSWORD)),
        (AUTHENTICATE, otp_body.to_string()),
    ] {
        let r = t.post(path, &body).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.text
        );
        assert_eq!(r.text, BUSY, "{path}");
        assert_eq!(r.headers["retry-after"], "1", "{path}");
    }
    assert_eq!(t.hash_runs(), hashes, "no hash ran");
    assert_eq!(t.user(buyer.id).await, buyer_before, "nothing counted");
    assert_eq!(
        t.user(admin.id).await,
        admin_before,
        "the code was not spent"
    );
    assert!(t.outbox.emails().is_empty());
    drop(held);
    // With the slot free again the same requests go through: three wrong passwords would have
    // locked the account (limit 2), and the code was not spent.
    token_of(&t.post(CUSTOMER_TOKEN, &creds("buyer", PASSWORD)).await);
    token_of(&t.post(AUTHENTICATE, &otp_body.to_string()).await);
}

/// Fifty sign-ins at once against one slot that frees up in time: all are served, never more
/// than one hash at a time.
async fn waiting_sign_ins_are_served_one_slot_at_a_time(backend: Backend) {
    let t = Arc::new(
        TestApp::on_with(
            backend,
            &[
                ("LATCHKEY_HASH_CONCURRENCY", "1"),
                ("LATCHKEY_HASH_WAIT_MS", "30000"),
                ("LATCHKEY_IP_ATTEMPTS", "1000"),
            ],
        )
        .await,
    );
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let hashes = t.hash_runs();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                let who = if i % 2 == 0 { "buyer" } else { "nobody" };
                t.post(CUSTOMER_TOKEN, &creds(who, "wrong password")).await
            })
        })
        .collect();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.text, SIGN_IN_INCORRECT);
    }
    assert_eq!(t.hash_runs() - hashes, 50);
    assert!(t.app.hasher.slot().await.is_ok(), "every slot came back");
}

// ------------------------------------------------------------ enumeration

/// Status, every header and every byte of the body.
fn exact(r: &Reply) -> (StatusCode, Vec<(String, Vec<u8>)>, String) {
    let mut headers: Vec<(String, Vec<u8>)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.sort();
    (r.status, headers, r.text.clone())
}

/// On every route that takes a login, an unknown account gets the very answer a known one gets
/// for a wrong password — and so does a locked, disabled or wrong-role account.
async fn known_and_unknown_accounts_get_byte_identical_answers(backend: Backend) {
    let t = TestApp::on_with(backend, &[("LATCHKEY_LOCKOUT_FAILURES", "3")]).await;
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    t.add_user("gone", "gone@example.com", PASSWORD, Role::Customer)
        .await;
    accounts::set_active(t.db(), "gone", false, "test")
        .await
        .unwrap();
    let (_, secret) = t.add_admin_with_totp("boss", PASSWORD).await;
    t.add_user("locked", "locked@example.com", PASSWORD, Role::Admin)
        .await;
    for _ in 0..3 {
        t.post(ADMIN_TOKEN, &creds("locked", "wrong password"))
            .await;
    }
    let code = otp::totp(&secret, T0);
    let with_otp = |user: &str, password: &str| {
        json!({"username": user, "password": password, "otp": code}).to_string()
    };
    let routes: [(&str, &str, Logins); 3] = [
        (
            CUSTOMER_TOKEN,
            "buyer",
            &[("gone", PASSWORD), ("boss", PASSWORD), ("locked", PASSWORD)],
        ),
        (
            ADMIN_TOKEN,
            "boss",
            &[
                ("buyer", PASSWORD),
                ("gone", PASSWORD),
                ("locked", PASSWORD),
            ],
        ),
        (
            AUTHENTICATE,
            "boss",
            &[
                ("buyer", PASSWORD),
                ("gone", PASSWORD),
                ("locked", PASSWORD),
            ],
        ),
    ];
    let long = "x".repeat(3000);
    for (path, known, refused_anyway) in routes {
        let body = |user: &str, password: &str| {
            if path == AUTHENTICATE {
                with_otp(user, password)
            } else {
                creds(user, password)
            }
        };
        let unknown = exact(&t.post(path, &body("nobody@example.com", PASSWORD)).await);
        assert_eq!(unknown.2, SIGN_IN_INCORRECT, "{path}");
        let mut others = vec![
            ("known, wrong password", body(known, "wrong password")),
            ("unknown username", body("nobody", "wrong password")),
            ("over-long login", body(&long, PASSWORD)),
        ];
        for (user, password) in refused_anyway {
            others.push(("refused account", body(user, password)));
        }
        for (what, request) in others {
            let answer = exact(&t.post(path, &request).await);
            assert_eq!(answer, unknown, "{path}: {what}");
        }
    }
}

// ------------------------------------------------------------ no secret in a log line

/// A writer that appends every formatted line to a shared buffer.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// The secret fields of a key set file (HMAC secrets, private keys, sealing keys, the pepper),
/// and each line of a PEM body.
fn key_material(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| key_material(v, out)),
        Value::Object(map) => {
            for (name, v) in map {
                match (name.as_str(), v) {
                    ("secret" | "private_key_pem" | "key" | "pepper", Value::String(s)) => {
                        out.push(s.clone());
                        out.extend(
                            s.lines()
                                .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                                .map(str::to_owned),
                        );
                    }
                    _ => key_material(v, out),
                }
            }
        }
        _ => {}
    }
}

/// Whether `text` holds `code` as a whole number (not inside a longer one).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Runs every flow — sign-ins right and wrong, lockout, first-time 2FA set-up, codes right,
/// wrong and replayed, tokens of every kind used and revoked, integrations, the admin
/// commands' changes — with every target logging at `debug`, and finds no password, code,
/// token, TOTP seed, hash or key in any line.
fn logs_hold_no_secret(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::debug!(target: "latchkey", "capturing at debug");
    let secrets = runtime.block_on(every_flow(backend));
    drop(guard);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("capturing at debug") && text.contains("event=\"sign_in\""),
        "the capture saw debug lines and audit events: {}",
        &text[..text.len().min(2000)]
    );
    for (what, secret) in &secrets.strings {
        assert!(!text.contains(secret.as_str()), "a log line holds {what}");
    }
    for code in &secrets.codes {
        assert!(!holds_code(&text, code), "a log line holds the code {code}");
    }
}

#[derive(Default)]
struct Secrets {
    strings: Vec<(&'static str, String)>,
    codes: Vec<String>,
}

async fn every_flow(backend: Backend) -> Secrets {
    use latchkey_core::crypto::SecretString;
    let mut s = Secrets::default();
    let t = TestApp::on_with(backend, &[("LATCHKEY_LOCKOUT_FAILURES", "3")]).await;
    let key_file: Value = serde_json::from_str(&t.key_file.to_json_pretty()).unwrap();
    let mut keys = Vec::new();
    key_material(&key_file, &mut keys);
    assert!(keys.len() >= 5, "the key set's secrets were found");
    s.strings
        .extend(keys.into_iter().map(|k| ("key material", k)));
    let hmac: String = t.hmac_secret().iter().map(|b| format!("{b:02x}")).collect();
    s.strings.push(("the HMAC key (hex)", hmac));
    let pepper: String = t
        .app
        .keys
        .pepper()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.strings.push(("the pepper (hex)", pepper));
    for p in [PASSWORD, "wrong password", "another horse battery"] {
        s.strings.push(("a password", p.into()));
    }

    // First-time set-up of an admin: email, configure (the secret), activate (a code).
    let newcomer = t
        .add_user("newadmin", "newadmin@example.com", PASSWORD, Role::Admin)
        .await;
    t.post(ADMIN_TOKEN, &creds("newadmin", PASSWORD)).await;
    let tfa = tfa_token_from(&t.last_email_to("newadmin@example.com").unwrap().text);
    s.strings.push(("a tfaToken", tfa.clone()));
    t.get(
        &format!("/rest/V1/tfa/tfat-user-providers?tfaToken={tfa}"),
        None,
    )
    .await;
    let r = t
        .post(CONFIGURE, &json!({"tfaToken": tfa}).to_string())
        .await;
    let secret = r.json["secret_code"].as_str().unwrap().to_owned();
    s.strings.push(("a TOTP seed", secret.clone()));
    s.strings.push(("a TOTP seed", secret.to_lowercase()));
    s.strings.push((
        "a QR code",
        r.json["qr_code_base64"].as_str().unwrap()[..64].to_owned(),
    ));
    let wrong = if otp::totp(&secret, T0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    t.post(
        ACTIVATE,
        &json!({"tfaToken": tfa, "otp": wrong}).to_string(),
    )
    .await;
    let code = otp::totp(&secret, T0);
    s.codes.push(code.clone());
    let r = t
        .post(ACTIVATE, &json!({"tfaToken": tfa, "otp": code}).to_string())
        .await;
    assert_eq!(r.text, "true");
    let user = t.user(newcomer.id).await;
    s.strings
        .push(("a password hash", user.password_hash.clone()));

    // Sign-in with password and code; the code replayed; a wrong one; a lockout.
    t.clock.advance(30);
    let next = otp::totp(&secret, T0 + 30);
    s.codes.push(next.clone());
    let body = json!({"username": "newadmin", "password": PASSWORD, "otp": next}).to_string();
    let admin = token_of(&t.post(AUTHENTICATE, &body).await);
    s.strings.push(("an admin token", admin.clone()));
    t.post(AUTHENTICATE, &body).await;
    for _ in 0..4 {
        t.post(ADMIN_TOKEN, &creds("newadmin", "wrong password"))
            .await;
    }
    t.post(ADMIN_TOKEN, &creds("nobody", "wrong password"))
        .await;

    // Admin routes with the token; integrations and their tokens.
    t.get("/rest/V1/tfa/installed-providers", Some(&admin))
        .await;
    t.get(
        &format!("/rest/V1/tfa/user-providers/{}", newcomer.id),
        Some(&admin),
    )
    .await;
    let r = create_integration(
        &t,
        &admin,
        json!({"name": "ERP", "resources": [TFA_RESOURCE]}),
    )
    .await;
    let integration = r.json["access_token"].as_str().unwrap().to_owned();
    s.strings
        .push(("an integration token", integration.clone()));
    t.get("/rest/V1/tfa/forced-providers", Some(&integration))
        .await;
    create_integration(&t, &integration, json!({"name": "evil", "resources": []})).await;
    let id = r.json["id"].as_u64().unwrap();
    t.call(
        Method::DELETE,
        &format!("{INTEGRATIONS}/{id}"),
        None,
        Some(&admin),
    )
    .await;
    t.get("/rest/V1/tfa/forced-providers", Some(&integration))
        .await;

    // A customer: token, who-am-I, revocation, the revoked token.
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    let customer = token_of(&t.post(CUSTOMER_TOKEN, &creds("buyer", PASSWORD)).await);
    s.strings.push(("a customer token", customer.clone()));
    t.get("/rest/V1/customers/me", Some(&customer)).await;
    t.call(
        Method::POST,
        "/rest/V1/integration/customer/revoke-customer-token",
        None,
        Some(&customer),
    )
    .await;
    t.get("/rest/V1/customers/me", Some(&customer)).await;
    t.get("/rest/V1/customers/me", Some("forged.token.here"))
        .await;

    // What the admin CLI does: a new password, an enrolled secret, a reset.
    let db = t.db();
    accounts::set_password_by_login(
        db,
        &t.app.hasher,
        t.app.rng.as_ref(),
        "buyer",
        &SecretString::new("another horse battery".into()),
        "cli",
    )
    .await
    .unwrap();
    let setup = accounts::enroll_totp(
        db,
        &t.app.keys.sealer,
        t.app.rng.as_ref(),
        "latchkey",
        "buyer",
        None,
        "cli",
    )
    .await
    .unwrap();
    s.strings
        .push(("a TOTP seed", setup.secret.to_base32().expose().to_owned()));
    s.strings.push(("an otpauth URI", setup.uri.clone()));
    t.call(
        Method::POST,
        &format!("/rest/V1/tfa/provider/google/reset/{}", newcomer.id),
        None,
        Some(&admin),
    )
    .await;
    accounts::unlock(db, "newadmin", "cli").await.unwrap();
    accounts::revoke_tokens_by_login(db, "buyer", "cli")
        .await
        .unwrap();
    s
}

#[test]
fn logs_hold_no_secret_sqlite() {
    logs_hold_no_secret(Backend::Sqlite);
}

#[test]
fn logs_hold_no_secret_dynamodb() {
    logs_hold_no_secret(Backend::Dynamodb);
}

latchkey_tests::flow_suite!(
    an_integration_cannot_mint_a_stronger_integration,
    the_core_grants_at_most_what_the_grantor_holds,
    over_long_identifiers_get_the_dialects_own_answer_on_every_route,
    unknown_logins_touch_distinct_keys_at_the_cost_of_a_wrong_password,
    per_address_limits_count_ipv6_by_64_and_believe_only_trusted_proxies,
    lambda_events_take_the_client_from_source_ip_and_trusted_proxies_only,
    sign_ins_without_a_hashing_slot_get_a_fast_retryable_answer_and_count_nothing,
    waiting_sign_ins_are_served_one_slot_at_a_time,
    known_and_unknown_accounts_get_byte_identical_answers,
    every_dialect_answers_unknown_accounts_as_known_ones,
);

/// The dialects that landed after the first: Glue's sign-in, the wizard's sign-in and password
/// reset, and the login-link send answer a request naming no account with the very answer one
/// naming an account gets (status, headers, body; a wizard flow's random id masked) — and so
/// do a disabled or wrong-role account's.
async fn every_dialect_answers_unknown_accounts_as_known_ones(backend: Backend) {
    // Send limits wide enough for every request here (a throttled send answers alike too, but
    // costs less: the cost compared is a send's).
    let wide = [
        ("LATCHKEY_LINK_SENDS_PER_EMAIL", "100"),
        ("LATCHKEY_LINK_SENDS_PER_IP", "100"),
    ];
    let (t, recorder) = TestApp::recorded(backend, &wide).await;
    t.add_user("buyer", "buyer@example.com", PASSWORD, Role::Customer)
        .await;
    t.add_user("gone", "gone@example.com", PASSWORD, Role::Customer)
        .await;
    accounts::set_active(t.db(), "gone", false, "test")
        .await
        .unwrap();
    t.add_user("staff", "staff@example.com", PASSWORD, Role::Admin)
        .await;
    // A wizard flow's random id and a page's per-answer nonce (in its body and its CSP) masked.
    let masked = |r: &Reply| {
        let (status, headers, text) = exact(r);
        let text = match serde_json::from_str::<Value>(&text) {
            Ok(mut v) if v.get("uuid").is_some_and(Value::is_string) => {
                v["uuid"] = json!("<uuid>");
                v.to_string()
            }
            _ => mask_nonces(&text),
        };
        let headers = headers
            .into_iter()
            .map(|(k, v)| (k, mask_nonces(&String::from_utf8_lossy(&v)).into_bytes()))
            .collect::<Vec<_>>();
        (status, headers, text)
    };
    let glue = |user: &str, password: &str| {
        let body = json!({"data": {"type": "access-tokens",
            "attributes": {"username": user, "password": password}}})
        .to_string();
        let t = &t;
        async move {
            t.request(
                Method::POST,
                "/access-tokens",
                Some(&body),
                &[("content-type", "application/vnd.api+json")],
            )
            .await
        }
    };
    let wizard = |email: &str, password: &str| {
        let (t, email, password) = (&t, email.to_owned(), password.to_owned());
        async move {
            let flow = t.get("/api/v2/my/signin/wizard", None).await;
            let body = json!({"uuid": flow.json["uuid"], "email": email, "password": password,
                "device_fingerprint": "eyJ1c2VyX2FnZW50IjoidGVzdCJ9"})
            .to_string();
            t.post("/api/v2/my/signin", &body).await
        }
    };
    let unknown = masked(&glue("nobody", "wrong password").await);
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED, "{}", unknown.2);
    for (what, user, password) in [
        ("wrong password", "buyer", "wrong password"),
        ("disabled", "gone", PASSWORD),
        ("over-long login", &"x".repeat(3000), PASSWORD),
    ] {
        assert_eq!(masked(&glue(user, password).await), unknown, "glue: {what}");
    }
    // Glue's back-office OAuth grant.
    let token = |user: &str, password: &str| {
        let body = format!("grant_type=password&username={user}&password={password}");
        let t = &t;
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
    let unknown = masked(&token("nobody", "wrong").await);
    assert_eq!(unknown.0, StatusCode::BAD_REQUEST, "{}", unknown.2);
    for (what, user, password) in [
        ("wrong password", "staff", "wrong"),
        ("a customer", "buyer", PASSWORD),
    ] {
        assert_eq!(
            masked(&token(user, password).await),
            unknown,
            "glue /token: {what}"
        );
    }
    let unknown = masked(&wizard("nobody@example.com", "wrong password").await);
    assert_eq!(unknown.0, StatusCode::UNAUTHORIZED, "{}", unknown.2);
    for (what, email, password) in [
        ("wrong password", "buyer@example.com", "wrong password"),
        ("disabled", "gone@example.com", PASSWORD),
        ("staff", "staff@example.com", PASSWORD),
    ] {
        assert_eq!(
            masked(&wizard(email, password).await),
            unknown,
            "wizard: {what}"
        );
    }
    for (path, body) in [
        ("/api/v2/my/signin/password/restore", Some(json!({}))),
        ("/rest/V1/otp/send", Some(json!({"storeId": "1"}))),
        // The form of the page a used or expired link offers.
        ("/customer/otp/request", None),
    ] {
        let ask = |email: &str| {
            let t = &t;
            let (body, content_type) = match &body {
                Some(body) => {
                    let mut body = body.clone();
                    body["email"] = json!(email);
                    (body.to_string(), "application/json")
                }
                None => (
                    format!("email={}&store_id=1", email.replace('@', "%40")),
                    "application/x-www-form-urlencoded",
                ),
            };
            async move {
                t.request(
                    Method::POST,
                    path,
                    Some(&body),
                    &[("content-type", content_type)],
                )
                .await
            }
        };
        // The page echoes the email asked for: masked too.
        let answer = |r: &Reply, email: &str| {
            let (status, headers, text) = masked(r);
            (status, headers, text.replace(email, "<email>"))
        };
        recorder.take();
        let unknown = answer(&ask("nobody@example.com").await, "nobody@example.com");
        assert_eq!(unknown.0, StatusCode::OK, "{path}: {}", unknown.2);
        let cost = |r: latchkey_tests::recording::Recorded| (r.calls, r.refused, r.written.len());
        let unknown_cost = cost(recorder.take());
        for email in ["buyer@example.com", "gone@example.com", "staff@example.com"] {
            assert_eq!(answer(&ask(email).await, email), unknown, "{path}: {email}");
        }
        // The customer's request writes what an unknown email's does: as many items (a link and
        // its mail request, or their decoys) in as many calls.
        assert_eq!(cost(recorder.take()).1, 0, "{path}: no refused write");
        ask("buyer@example.com").await;
        assert_eq!(
            cost(recorder.take()),
            unknown_cost,
            "{path}: the customer's cost"
        );
    }
}

/// A malformed request and the answer it must get: method, path, body, bearer token, status, body.
type MalformedCase<'a> = (
    Method,
    String,
    Option<String>,
    Option<&'a str>,
    StatusCode,
    Value,
);

/// (login, password) pairs tried on one route.
type Logins = &'static [(&'static str, &'static str)];
