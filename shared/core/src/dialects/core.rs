//! Health, OpenAPI and JWKS: plain JSON, errors as `{"error": code, "message": text}`.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::Dialect;
use crate::app::App;
use crate::routes::{Call, Route, Sends, handler};
use crate::web::{self, Response};

/// The OpenAPI document, kept in the repository and checked against the route table.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub static ROUTES: &[Route] = &[
    Route {
        name: "health",
        method: Method::GET,
        paths: &["/health"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "Readiness: 200 once the server or function can take requests.",
        handler: handler!(health),
    },
    Route {
        name: "openapi",
        method: Method::GET,
        paths: &["/openapi.json"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "This API as an OpenAPI 3.1 document.",
        handler: handler!(openapi),
    },
    Route {
        name: "jwks",
        method: Method::GET,
        paths: &["/.well-known/jwks.json"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "Public keys of every asymmetric signing key in use, as a JWK set.",
        handler: handler!(jwks),
    },
];

async fn health(_: &App, _: &Call) -> Result<Response, Response> {
    Ok(web::json(StatusCode::OK, &json!({"status": "ok"})))
}

async fn openapi(_: &App, _: &Call) -> Result<Response, Response> {
    Ok(web::with_type(
        StatusCode::OK,
        Bytes::from_static(OPENAPI.as_bytes()),
        "application/json",
    ))
}

async fn jwks(app: &App, _: &Call) -> Result<Response, Response> {
    let mut res = web::json(StatusCode::OK, &app.keys.jwks(app.clock.now()));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(res)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    web::json(status, &json!({"error": code, "message": message}))
}

pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "No such route.")
}

pub fn wrong_method(allowed: &[Method]) -> Response {
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not take that method.",
    );
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

pub fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Request body is too large.",
    )
}

pub fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

pub fn unavailable() -> Response {
    let mut res = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The service is temporarily unavailable. Please try again later.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
