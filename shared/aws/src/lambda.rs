//! Running one route as a Lambda function: build the application once per cold start (AWS
//! clients, keys from SSM, a warm DynamoDB connection), then answer API Gateway HTTP API
//! (payload 2.0) events through the core's `App::handle_route`.
//!
//! Events are parsed here rather than by `lambda_http::run`, so that an event that is not an
//! HTTP API request gets a clear 400 in the route's dialect instead of a function error.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::{Body, LambdaEvent, lambda_runtime, service_fn};
use latchkey_core::App;
use latchkey_core::routes::{self, Route};
use latchkey_core::web::{self, Peer};

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
        let time_left = time_left(event.context.deadline);
        async move {
            Ok::<_, Infallible>(handle_event(&app, route, event.payload, time_left).await)
        }
    }))
    .await
}

/// What is left of the invocation's time (its deadline, Unix milliseconds), less a margin to
/// answer in: a request that runs out answers a retryable 503 in its dialect, instead of Lambda
/// cutting it off without an answer.
#[allow(clippy::disallowed_methods)] // the runtime's deadline is wall-clock time, not a rule's
fn time_left(deadline_ms: u64) -> Option<Duration> {
    const MARGIN: Duration = Duration::from_millis(300);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Duration::from_millis(deadline_ms)
        .checked_sub(now)?
        .checked_sub(MARGIN)
}

/// Answers one raw Lambda event for `route`, within `time_left` if given.
pub async fn handle_event(
    app: &App,
    route: &'static Route,
    payload: serde_json::Value,
    time_left: Option<Duration>,
) -> ApiGatewayV2httpResponse {
    let Some(request) = parse_event(payload) else {
        return to_event(latchkey_core::dialects::bad_event(route.dialect));
    };
    let answer = app.handle_route(route, request);
    let response = match time_left {
        Some(left) => match tokio::time::timeout(left, answer).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(route = route.name, "request ran out of the function's time");
                route.dialect.unavailable()
            }
        },
        None => answer.await,
    };
    to_event(response)
}

/// An HTTP API v2 event as the core's request, with the caller's IP as API Gateway saw it
/// (`sourceIp`: the core takes the client from `X-Forwarded-For` only behind trusted proxies);
/// `None` if it is not one.
///
/// Built here, not with `lambda_http`'s conversion: that one panics on a body that is not
/// base64 when the event says it is, on a `Host` or `X-Forwarded-Proto` it cannot make a URL of,
/// and on a path or query `http` refuses — and a function built with `panic = "abort"` would
/// die mid-invocation on such an event instead of answering it.
pub fn parse_event(payload: serde_json::Value) -> Option<web::Request> {
    use base64::Engine;
    let event: ApiGatewayV2httpRequest = serde_json::from_value(payload).ok()?;
    let path = event.raw_path.as_deref().filter(|p| p.starts_with('/'))?;
    let mut target = path.to_owned();
    if let Some(query) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(query);
    }
    let uri = request_target(&target)?;
    let body = match (event.body, event.is_base64_encoded) {
        (None, _) => Bytes::new(),
        (Some(text), false) => Bytes::from(text),
        (Some(text), true) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        ),
    };
    let mut request = http::Request::builder()
        .method(event.request_context.http.method.clone())
        .uri(uri)
        .body(body)
        .ok()?;
    *request.headers_mut() = event.headers;
    if let Some(cookies) = event.cookies.filter(|c| !c.is_empty())
        && let Ok(value) = http::HeaderValue::from_str(&cookies.join("; "))
    {
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    let ip: Option<IpAddr> = event
        .request_context
        .http
        .source_ip
        .as_deref()
        .and_then(|s| s.parse().ok());
    if let Some(ip) = ip {
        request.extensions_mut().insert(Peer(ip));
    }
    Some(request)
}

/// A path and query as a request target, with any byte a URI may not hold percent-encoded
/// (API Gateway passes on what the client sent).
fn request_target(target: &str) -> Option<http::Uri> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
    let encoded: String = if target.bytes().all(allowed) {
        target.to_owned()
    } else {
        target
            .bytes()
            .map(|b| {
                if allowed(b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let uri: http::Uri = encoded.parse().ok()?;
    (uri.scheme().is_none() && uri.authority().is_none()).then_some(uri)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use latchkey_core::config::Config;
    use latchkey_core::crypto::keys::{KeySet, KeySetFile};
    use latchkey_core::crypto::password::PasswordHasher;
    use latchkey_core::ports::{ManualClock, RecordingOutbox, SeededRng};
    use latchkey_core::store::{Cond, Item, Key, Store, StoreError, TxOp, Update};
    use latchkey_core::{App, Deps};

    use super::*;

    /// A store that never answers, as a DynamoDB that keeps timing out would not.
    struct Stalled;

    #[async_trait]
    impl Store for Stalled {
        async fn get(&self, _: &Key, _: i64) -> Result<Option<Item>, StoreError> {
            std::future::pending().await
        }
        async fn get_many(&self, _: &[Key], _: i64) -> Result<Vec<Option<Item>>, StoreError> {
            std::future::pending().await
        }
        async fn put(&self, _: Item, _: Cond, _: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn update(&self, _: &Key, _: Update, _: Cond, _: i64) -> Result<Item, StoreError> {
            std::future::pending().await
        }
        async fn delete(&self, _: &Key, _: Cond, _: i64) -> Result<Option<Item>, StoreError> {
            std::future::pending().await
        }
        async fn query(&self, _: &str, _: &str, _: usize, _: i64) -> Result<Vec<Item>, StoreError> {
            std::future::pending().await
        }
        async fn scan_sk(&self, _: &str, _: usize, _: i64) -> Result<Vec<Item>, StoreError> {
            std::future::pending().await
        }
        async fn transact(&self, _: Vec<TxOp>, _: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_request_that_runs_out_of_time_answers_a_retryable_503_in_its_dialect() {
        let outbox = Arc::new(RecordingOutbox::default());
        let rng = SeededRng::new(1);
        let app = App::new(Deps {
            recaptcha: Arc::new(latchkey_core::ports::FakeRecaptcha::refusing()),
            link_queue: Arc::new(latchkey_core::ports::StreamQueue),
            store: Arc::new(Stalled),
            mailer: outbox.clone(),
            sms: outbox,
            clock: Arc::new(ManualClock::at(1_900_000_000)),
            rng: Arc::new(SeededRng::new(2)),
            keys: Arc::new(KeySet::from_file(&KeySetFile::test_fixture()).unwrap()),
            config: Config::default(),
            hasher: PasswordHasher::with_params(256, 1, 1, &rng).unwrap(),
        });
        let route = routes::by_name("magento-customer-token").unwrap();
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /rest/V1/integration/customer/token",
            "rawPath": "/rest/V1/integration/customer/token",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "http": {"method": "POST", "path": "/rest/V1/integration/customer/token",
                         "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "test"},
                "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d"
            },
            "body": "{\"username\":\"a\",\"password\":\"b\"}",
            "isBase64Encoded": false
        });
        let answer = handle_event(&app, route, event, Some(Duration::from_millis(50))).await;
        assert_eq!(answer.status_code, 503);
        let body = match answer.body {
            Some(Body::Text(text)) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body,
            r#"{"message":"The service is temporarily unavailable. Please try again later."}"#
        );
    }

    #[test]
    fn the_time_left_keeps_a_margin_and_is_none_past_the_deadline() {
        assert_eq!(time_left(0), None);
        assert_eq!(time_left(1), None);
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = time_left(now + 10_000).unwrap();
        assert!(left <= Duration::from_millis(9_700) && left > Duration::from_millis(9_000));
    }
}
