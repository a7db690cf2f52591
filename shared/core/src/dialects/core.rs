//! Health, OpenAPI and JWKS: plain JSON, errors as `{"error": code, "message": text}`.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

use crate::app::App;
use crate::routes::Route;
use crate::web::{self, Request, Response};

/// The OpenAPI document, kept in the repository and checked against the route table.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn handle(app: &App, route: &'static Route, _req: Request) -> Response {
    match route.name {
        "health" => web::json(StatusCode::OK, &json!({"status": "ok"})),
        "openapi" => web::with_type(
            StatusCode::OK,
            Bytes::from_static(OPENAPI.as_bytes()),
            "application/json",
        ),
        "jwks" => {
            let mut res = web::json(StatusCode::OK, &app.keys.jwks());
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            res
        }
        _ => not_found(),
    }
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
