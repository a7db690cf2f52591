//! `openapi.json` documents exactly the routes the router serves, and `GET /openapi.json`
//! serves it.

use std::collections::BTreeSet;

use http::StatusCode;
use latchkey_core::routes;
use latchkey_tests::harness::TestApp;
use serde_json::Value;

const DOC: &str = include_str!("../../shared/core/openapi.json");

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

fn routed() -> BTreeSet<(String, String)> {
    routes::all()
        .flat_map(|r| {
            r.paths
                .iter()
                .map(move |p| (r.method.as_str().to_owned(), (*p).to_owned()))
        })
        .collect()
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let (doc, routes) = (documented(), routed());
    let undocumented: Vec<_> = routes.difference(&doc).collect();
    let phantom: Vec<_> = doc.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "openapi.json documents routes that do not exist: {phantom:?}"
    );
}

#[test]
fn path_parameters_are_declared() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_path, declared, "{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|code| code.starts_with('2')),
                "{method} {path} documents its success"
            );
        }
    }
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let t = TestApp::new();
    let r = t.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, serde_json::from_str::<Value>(DOC).unwrap());
    let r = t.get("/health", None).await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = t.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.json["keys"].as_array().unwrap().is_empty());
    let r = t
        .call(http::Method::POST, "/health", Some("{}"), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = t.get("/nope", None).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
