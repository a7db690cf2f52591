//! The sign-in wizard dialect (B2Core's `/api/v2/my/`): a flow keyed by a `uuid` — start it,
//! send the credentials, pick a second factor, send its code — answering every step in one
//! envelope, `{"code", "data", "done", "uuid", "workflow"}`: `code` 200 (and HTTP 200) for an
//! intermediate step, 202 once signed in, with an access and a refresh token.
//!
//! The flow is the core's [`crate::identity::flows`] state machine (a sign-in flow, moved past
//! the password only by [`crate::identity::signin`]); limits, codes and sessions are the core's.
//! What is the dialect's own is the wire:
//!
//! - **Access tokens** are the core's session tokens, RS256 (keys in the JWKS), with the
//!   document's claims (`iss`, `sub`, `iat`, `nbf`, `exp`, `iat_mt`) plus the core's `jti` and
//!   `sid`.
//! - **Refresh tokens** have the document's shape too: an RS256 JWT with the same claims, whose
//!   `rt` claim carries the core's opaque refresh token, so the family, its rotation, replay
//!   detection and absolute lifetime are the core's ([`crate::identity::sessions`]). The flow's
//!   `uuid` rides along (claim `uuid`), so a refresh answers with the sign-in's uuid.
//! - **Errors** have one shape on every route ([`errors`]).

mod errors;
mod handlers;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::WizardConfig;
use crate::identity::sessions::{Issued, Session, Subject};
use crate::identity::users::User;
use crate::routes::{Call, IntoResponse, Route, Sends, handler};
use crate::web::{self, Response};

use super::Dialect;
pub use errors::WizardError;

/// Where the dialect lives.
pub const PREFIX: &str = "/api/v2/my/";

/// Audit events of this dialect say `via: "wizard"`.
const VIA: &str = "wizard";

macro_rules! route {
    ($name:literal, $method:ident, $path:literal, $sends:ident, $writes:literal, $summary:literal, $handler:path) => {
        Route {
            name: $name,
            method: Method::$method,
            paths: &[concat!("/api/v2/my/", $path)],
            dialect: Dialect::Wizard,
            sends: Sends::$sends,
            writes: $writes,
            summary: $summary,
            handler: handler!($handler),
        }
    };
}

pub static ROUTES: &[Route] = &[
    route!(
        "wizard-signin-wizard",
        GET,
        "signin/wizard",
        Nothing,
        true,
        "Starts a sign-in flow: its uuid, and whether reCAPTCHA, QR sign-in and password recovery are offered.",
        handlers::start
    ),
    route!(
        "wizard-signin",
        POST,
        "signin",
        Sms,
        true,
        "Credentials of a flow: tokens (no 2FA), the 2FA step next (an SMS code is sent now), or a forced password reset.",
        handlers::signin
    ),
    route!(
        "wizard-signin-2fa",
        POST,
        "signin/2fa",
        Sms,
        true,
        "Picks the 2FA method (google or sms) when the client has both; sms sends the code.",
        handlers::choose
    ),
    route!(
        "wizard-2fa-google",
        POST,
        "2fa/google",
        Nothing,
        true,
        "Completes sign-in with a Google Authenticator code: access and refresh tokens.",
        handlers::google
    ),
    route!(
        "wizard-2fa-sms",
        POST,
        "2fa/sms",
        Nothing,
        true,
        "Completes sign-in with the SMS code: access and refresh tokens.",
        handlers::sms
    ),
    route!(
        "wizard-refresh",
        POST,
        "refresh",
        Nothing,
        true,
        "A new token pair for a refresh token (rotation; a replayed one revokes the session).",
        handlers::refresh
    ),
    route!(
        "wizard-signout",
        POST,
        "signout",
        Nothing,
        true,
        "Signs out: the session's access and refresh tokens stop working.",
        handlers::signout
    ),
    route!(
        "wizard-user",
        GET,
        "user",
        Nothing,
        false,
        "The signed-in client.",
        handlers::user
    ),
    route!(
        "wizard-password-restore",
        POST,
        "signin/password/restore",
        // Queued: `link-mailer` sends it, after the answer.
        Nothing,
        true,
        "Emails a password-reset code (the same answer for unknown emails); its uuid goes to the reset.",
        handlers::restore
    ),
    route!(
        "wizard-password-reset",
        POST,
        "signin/password/reset",
        Nothing,
        true,
        "Sets a new password with the emailed code; every session ends.",
        handlers::reset
    ),
    route!(
        "wizard-qrcodes",
        GET,
        "signin/qrcodes",
        Nothing,
        true,
        "QR sign-in, web side: a QR code (PNG, base64) for a signed-in mobile client to approve; 2 minutes, single use.",
        handlers::qr_start
    ),
    route!(
        "wizard-qrcodes-approve",
        POST,
        "signin/qrcodes",
        Nothing,
        true,
        "QR sign-in, mobile side (Bearer): approves the scanned QR code's flow for the signed-in client.",
        handlers::qr_approve
    ),
    route!(
        "wizard-signin-tokens",
        POST,
        "signin/tokens",
        Nothing,
        true,
        "QR sign-in, web side: waits (200) until the QR code is approved, then the web flow's own tokens (202), once.",
        handlers::qr_tokens
    ),
    route!(
        "wizard-2fa-enable-wizard",
        GET,
        "2fa/{type}/enable/wizard",
        Nothing,
        true,
        "Enrolment (Bearer): starts enabling google (secret, otpauth URI, QR) or sms (a phone number next).",
        handlers::enable
    ),
    route!(
        "wizard-2fa-disable-wizard",
        GET,
        "2fa/{type}/disable/wizard",
        Sms,
        true,
        "Enrolment (Bearer): starts disabling google or sms, which takes a fresh code of that method (sms sends it).",
        handlers::disable
    ),
    route!(
        "wizard-2fa-wizard",
        POST,
        "2fa/wizard",
        Sms,
        true,
        "Enrolment (Bearer): the next step of an enable/disable flow: a phone number (sends a code) or a code.",
        handlers::enrol_step
    ),
];

pub fn not_found() -> Response {
    WizardError::no_route().into_response()
}

pub fn wrong_method(allowed: &[Method]) -> Response {
    let mut res = WizardError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        errors::WRONG_METHOD,
    )
    .into_response();
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    if let Ok(v) = http::HeaderValue::from_str(&allow.join(", ")) {
        res.headers_mut().insert(http::header::ALLOW, v);
    }
    res
}

pub fn too_large() -> Response {
    WizardError::too_large().into_response()
}

/// The service cannot answer in time: the wizard's `busy`, with `Retry-After: 1`.
pub fn unavailable() -> Response {
    let mut res =
        WizardError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", errors::BUSY).into_response();
    res.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    res
}

pub fn bad_request(why: &str) -> Response {
    WizardError::new(StatusCode::BAD_REQUEST, "bad_request", why).into_response()
}

/// ISO 8601 with an offset, as the document writes times (`2024-04-22T11:07:24+00:00`).
pub fn iso8601(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An HTTP date (`Retry-After`), e.g. `Sun, 17 Mar 2030 17:56:40 GMT`.
pub fn http_date(unix: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The envelope every answer of the wizard is.
fn envelope(done: bool, data: Value, uuid: Option<&str>, workflow: &str) -> Response {
    let status = if done {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    web::json(
        status,
        &json!({
            "code": status.as_u16(),
            "data": data,
            "done": done,
            "uuid": uuid,
            "workflow": workflow,
        }),
    )
}

/// `data` of a step that names what comes next but hands out nothing yet.
fn no_tokens() -> Value {
    json!({ "accessToken": null, "refreshToken": null, "tfaProviders": [] })
}

/// The claims of a refresh token: the document's, plus the core's opaque refresh token (`rt`)
/// and the sign-in's uuid.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshClaims {
    iat: i64,
    nbf: i64,
    exp: i64,
    iss: String,
    sub: String,
    iat_mt: String,
    uuid: String,
    rt: String,
}

/// `iat_mt`: the issue time with sub-second digits, as the document's tokens carry it.
fn microtime(app: &App) -> String {
    let ms = app.clock.now_ms();
    format!("{}.{:04}", ms.div_euclid(1000), ms.rem_euclid(1000) * 10)
}

fn subject(app: &App, user: &User) -> Subject {
    let mut extra = Map::new();
    extra.insert("iat_mt".into(), Value::String(microtime(app)));
    Subject {
        sub: user.id.to_string(),
        extra,
    }
}

fn config(app: &App) -> &WizardConfig {
    &app.config.wizard
}

/// The step-4 answer: 202, `Terminate`, the pair as `{token, createdAt, expiresAt}`.
fn signed_in(app: &App, issued: &Issued, user: &User, uuid: &str) -> Result<Response, WizardError> {
    let claims = RefreshClaims {
        iat: issued.issued_at,
        nbf: issued.issued_at,
        exp: issued.refresh_expires_at,
        iss: config(app).sessions.issuer.clone(),
        sub: user.id.to_string(),
        iat_mt: microtime(app),
        uuid: uuid.to_owned(),
        rt: issued.refresh_token.expose().to_owned(),
    };
    let refresh = app.keys.sign_signed(config(app).sessions.alg, &claims)?;
    let token = |token: &str, expires_at: i64| {
        json!({
            "token": token,
            "createdAt": iso8601(issued.issued_at),
            "expiresAt": iso8601(expires_at),
        })
    };
    let data = json!({
        "accessToken": token(&issued.access_token, issued.access_expires_at),
        "refreshToken": token(&refresh, issued.refresh_expires_at),
        "tfaProviders": [],
    });
    Ok(envelope(true, data, Some(uuid), "Terminate"))
}

/// The session a Bearer access token stands for.
async fn session(app: &App, call: &Call) -> Result<Session, WizardError> {
    let token = web::bearer(call.req.headers()).ok_or_else(WizardError::invalid_token)?;
    Ok(app
        .sessions()
        .authenticate(token, &config(app).sessions)
        .await?)
}
