//! Running one route as a Lambda function: build the application once per cold start (AWS
//! clients, keys from SSM, a warm DynamoDB connection), then answer API Gateway HTTP API
//! (payload 2.0) events through the core's `App::handle_route`.
//!
//! Events are parsed here rather than by `lambda_http::run`, so that an event that is not an
//! HTTP API request gets a clear 400 in the route's dialect instead of a function error.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, LambdaEvent, lambda_runtime, service_fn};
use latchkey_core::App;
use latchkey_core::routes::{self, Route};
use latchkey_core::web::{self, ClientIp};

use crate::setup;

pub use lambda_http::Error;

/// The whole `main` of a function: `latchkey_aws::lambda::main("magento-admin-token")`.
///
/// A Lambda sandbox handles one event at a time, so a current-thread runtime is enough and
/// starts faster than a multi-threaded one; password hashing still runs on the blocking pool.
pub fn main(route_name: &'static str) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(route_name)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, route = route_name, "function stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves `route_name` until the runtime API goes away.
pub async fn run(route_name: &'static str) -> Result<(), Error> {
    setup::init_json_logging();
    let route =
        routes::by_name(route_name).ok_or_else(|| format!("no route named {route_name}"))?;
    let app = setup::aws_app_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "function could not start");
        e
    })?;
    tracing::info!(route = route.name, "ready");
    let app = Arc::new(app);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle_event(&app, route, event.payload).await) }
    }))
    .await
}

/// Answers one raw Lambda event for `route`.
pub async fn handle_event(
    app: &App,
    route: &'static Route,
    payload: serde_json::Value,
) -> ApiGatewayV2httpResponse {
    let Some(request) = parse_event(payload) else {
        return to_event(latchkey_core::dialects::bad_event(route.dialect));
    };
    to_event(app.handle_route(route, request).await)
}

/// An HTTP API v2 event as the core's request, with the caller's IP; `None` if it is not one.
pub fn parse_event(payload: serde_json::Value) -> Option<web::Request> {
    let event: ApiGatewayV2httpRequest = serde_json::from_value(payload).ok()?;
    if event.raw_path.as_deref().is_none_or(str::is_empty) {
        return None;
    }
    let ip: Option<IpAddr> = event
        .request_context
        .http
        .source_ip
        .as_deref()
        .and_then(|s| s.parse().ok());
    let request: http::Request<Body> = LambdaRequest::ApiGatewayV2(event).into();
    let (parts, body) = request.into_parts();
    let bytes = match body {
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut request = http::Request::from_parts(parts, bytes);
    if let Some(ip) = ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    Some(request)
}

/// The core's response as an HTTP API v2 response.
pub fn to_event(response: web::Response) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    if !body.is_empty() {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => out.body = Some(Body::Text(text)),
            Err(e) => {
                out.body = Some(Body::Binary(e.into_bytes()));
                out.is_base64_encoded = true;
            }
        }
    }
    out
}
