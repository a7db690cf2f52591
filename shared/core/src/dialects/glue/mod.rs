//! The Spryker Glue dialect (JSON:API): customer access and refresh tokens, MFA types with
//! emailed (or texted, or app-made) codes, `X-MFA-Code` on protected resources, the customer
//! resources it protects, and back-office users through OAuth 2.0's `POST /token`.
//!
//! - **Tokens** are the core's sessions: RS256 (or EdDSA) JWTs with `aud` (Spryker's OAuth
//!   client, `frontend`), `jti`, `iat`, `nbf`, `exp`, `sid`, and a `sub` that is — as Spryker's
//!   is — a JSON object in a string, naming the customer reference (`{"customer_reference":
//!   "DE--42","id_customer":42}`; back-office users `{"id_user":7}`); refresh tokens are opaque,
//!   stored hashed, rotate on use, and a replayed one revokes its family.
//! - **MFA types** map onto the core's factors: `email` and `sms` are the user's code factors
//!   (status 0/1/2 = off, pending, on), `totp` the authenticator app (none, pending, active).
//!   Codes are the core's one-time codes under one purpose: 6 digits, one live code per
//!   customer and channel, 3 wrong tries and it is blocked, and once verified it keeps opening
//!   protected resources until it expires (Spryker's grace period, [`Use::UntilExpiry`]).
//! - **Which code an `X-MFA-Code` is checked against** is decided from state, never from the
//!   guess (so a guess is never tried against several secrets): the live code of the enabled
//!   type most recently triggered; `totp` when it was triggered last, or when no code is live.
//!
//! [`Use::UntilExpiry`]: crate::identity::codes::Use::UntilExpiry

mod customers;
mod errors;
mod mfa;
mod tokens;

use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::MfaType;
use crate::identity::sessions;
use crate::identity::users::{Role, User, UserId};
use crate::identity::{Error, Origin};
use crate::routes::{Call, Handler, Reply, Route, Sends};
use crate::web::{self, Response};

use super::Dialect;
pub use errors::GlueError;

type Answer = Result<Response, GlueError>;

const VIA: &str = "glue";

/// Like [`crate::routes::handler!`], answering refusals at the app's time (a 429 says how
/// many minutes are left).
macro_rules! glue_handler {
    ($f:path) => {{
        fn handle(app: &App, call: Call) -> Reply<'_> {
            Box::pin(async move {
                match $f(app, &call).await {
                    Ok(response) => response,
                    Err(error) => error.at(app.clock.now()),
                }
            })
        }
        handle as Handler
    }};
}

macro_rules! route {
    ($name:literal, $method:ident, $paths:expr, $sends:ident, $writes:literal, $summary:literal, $handler:path) => {
        Route {
            name: $name,
            method: Method::$method,
            paths: $paths,
            dialect: Dialect::Glue,
            sends: Sends::$sends,
            writes: $writes,
            summary: $summary,
            handler: glue_handler!($handler),
        }
    };
}

pub static ROUTES: &[Route] = &[
    route!(
        "glue-access-tokens",
        POST,
        &["/access-tokens"],
        Nothing,
        true,
        "Customer sign-in: an access token (JWT) and a refresh token.",
        tokens::access_tokens
    ),
    route!(
        "glue-refresh-tokens",
        POST,
        &["/refresh-tokens"],
        Nothing,
        true,
        "A new token pair for a refresh token (which dies; replaying it revokes the session).",
        tokens::refresh_tokens
    ),
    route!(
        "glue-refresh-tokens-revoke",
        DELETE,
        &["/refresh-tokens/{refreshToken}"],
        Nothing,
        true,
        "Revoke one refresh token of the caller, or `mine`: every token of the caller.",
        tokens::revoke_refresh_token
    ),
    route!(
        "glue-token",
        POST,
        &["/token"],
        Nothing,
        true,
        "Back-office sign-in, OAuth 2.0 (form-encoded password and refresh_token grants).",
        tokens::token
    ),
    route!(
        "glue-mfa-types",
        GET,
        &["/multi-factor-auth-types"],
        Nothing,
        false,
        "The MFA types offered, with the caller's status of each (0 off, 1 pending, 2 on).",
        mfa::types
    ),
    route!(
        "glue-mfa-trigger",
        POST,
        &["/multi-factor-auth-trigger"],
        EmailAndSms,
        true,
        "Send a code of an MFA type (email, SMS; for totp the app makes it).",
        mfa::trigger
    ),
    route!(
        "glue-mfa-activate",
        POST,
        &["/multi-factor-auth-type-activate"],
        EmailAndSms,
        true,
        "Start activating an MFA type: a code is sent (totp: the secret is shown).",
        mfa::activate
    ),
    route!(
        "glue-mfa-verify",
        POST,
        &["/multi-factor-auth-type-verify"],
        Nothing,
        true,
        "Finish activating an MFA type with its code in X-MFA-Code.",
        mfa::verify
    ),
    route!(
        "glue-mfa-deactivate",
        POST,
        &["/multi-factor-auth-type-deactivate"],
        Nothing,
        true,
        "Deactivate an MFA type with a code of it in X-MFA-Code.",
        mfa::deactivate
    ),
    route!(
        "glue-customer-password",
        PATCH,
        &[
            "/customer-password/{customerReference}",
            "/customer-password"
        ],
        Nothing,
        true,
        "Change the password (protected by MFA); every session of the customer is revoked.",
        customers::change_password
    ),
    route!(
        "glue-customer-update",
        PATCH,
        &["/customers/{customerReference}", "/customers"],
        Nothing,
        true,
        "Change the customer's email or phone number (protected by MFA).",
        customers::update
    ),
    route!(
        "glue-customer-delete",
        DELETE,
        &["/customers/{customerReference}", "/customers"],
        Nothing,
        true,
        "Delete the customer (protected by MFA).",
        customers::delete
    ),
    route!(
        "glue-customer-mfa-reset",
        DELETE,
        &["/customers/{customerReference}/multi-factor-auth"],
        Nothing,
        true,
        "Back office: switch every MFA type of a customer off (revokes their sessions).",
        customers::reset_mfa
    ),
];

/// Whether a path (no route matched) belongs to Glue's resources.
pub fn owns_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        first,
        "access-tokens" | "refresh-tokens" | "customers" | "customer-password" | "token"
    ) || first.starts_with("multi-factor-auth-")
}

pub fn not_found() -> Response {
    GlueError::not_found().at(0)
}

pub fn wrong_method(allowed: &[Method]) -> Response {
    let mut res =
        GlueError::plain(StatusCode::METHOD_NOT_ALLOWED, errors::METHOD_NOT_ALLOWED).at(0);
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

pub fn too_large() -> Response {
    GlueError::too_large().at(0)
}

pub fn bad_request(why: &str) -> Response {
    GlueError::plain(StatusCode::BAD_REQUEST, why).at(0)
}

/// The request would outlive its invocation (a store or delivery that stays busy): try again.
pub fn unavailable() -> Response {
    let mut res = GlueError::plain(StatusCode::SERVICE_UNAVAILABLE, errors::BUSY).at(0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

// ---------------------------------------------------------------- who is calling

/// The two kinds of Glue callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Customer,
    BackOffice,
}

impl Kind {
    fn role(self) -> Role {
        match self {
            Kind::Customer => Role::Customer,
            Kind::BackOffice => Role::Admin,
        }
    }

    fn sessions(self, app: &App) -> &sessions::Policy {
        match self {
            Kind::Customer => &app.config.glue.customer_sessions,
            Kind::BackOffice => &app.config.glue.backoffice_sessions,
        }
    }
}

/// A checked Bearer token: the user it speaks for (as stored now) and which kind it is.
#[derive(Debug)]
pub(crate) struct Caller {
    pub user: User,
    pub kind: Kind,
}

/// How a route says that the token's user no longer exists.
pub(crate) type Vanished = fn(Kind) -> GlueError;

/// Resolves the Bearer token: missing → 403 (002), anything wrong with it → 401 (001), its user
/// deleted since → the route's own words.
pub(crate) async fn caller(
    app: &App,
    call: &Call,
    vanished: Vanished,
) -> Result<Caller, GlueError> {
    let headers = call.req.headers();
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err(GlueError::missing_token());
    }
    let token = web::bearer(headers).ok_or_else(GlueError::invalid_token)?;
    if token.len() > 4096 {
        return Err(GlueError::invalid_token());
    }
    for kind in [Kind::Customer, Kind::BackOffice] {
        match app.sessions().authenticate(token, kind.sessions(app)).await {
            Ok(session) if session.user.role == kind.role() => {
                return Ok(Caller {
                    user: session.user,
                    kind,
                });
            }
            Ok(_) => return Err(GlueError::invalid_token()),
            Err(Error::InvalidToken) => continue,
            Err(Error::NotFound) => return Err(vanished(kind)),
            Err(Error::TokenExpired) => return Err(GlueError::invalid_token()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(GlueError::invalid_token())
}

/// [`caller`], and — on a protected resource — a valid `X-MFA-Code` once the caller has an
/// enabled MFA type.
pub(crate) async fn protected_caller(
    app: &App,
    call: &Call,
    vanished: Vanished,
) -> Result<Caller, GlueError> {
    let caller = caller(app, call, vanished).await?;
    let path = call.req.uri().path();
    if app
        .config
        .glue
        .protected
        .covers(call.req.method().as_str(), path)
    {
        mfa::require_code(app, call, &caller.user).await?;
    }
    Ok(caller)
}

fn origin(call: &Call) -> Origin {
    Origin {
        ip: web::client_ip(&call.req),
        via: VIA,
    }
}

// ---------------------------------------------------------------- customer references

/// A customer's reference: `<prefix>--<id>` (`DE--42`).
pub(crate) fn customer_reference(app: &App, id: UserId) -> String {
    format!("{}--{id}", app.config.glue.customer_reference_prefix)
}

/// The user id a reference names, if it is one of this deployment's.
pub(crate) fn parse_reference(app: &App, reference: &str) -> Option<UserId> {
    let id = reference
        .strip_prefix(app.config.glue.customer_reference_prefix.as_str())?
        .strip_prefix("--")?;
    if id.is_empty()
        || id.len() > 19
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id.starts_with('0')
    {
        return None;
    }
    id.parse().ok()
}

/// What a user's access tokens say about them: Spryker's `sub` (a JSON object in a string) and
/// `scopes`.
pub(crate) fn subject(app: &App, user: &User) -> sessions::Subject {
    let (sub, scope) = match user.role {
        Role::Customer => (
            json!({
                "customer_reference": customer_reference(app, user.id),
                "id_customer": user.id,
            }),
            "customer",
        ),
        Role::Admin => (json!({ "id_user": user.id }), "user"),
    };
    let mut extra = Map::new();
    extra.insert("scopes".into(), json!([scope]));
    sessions::Subject {
        sub: sub.to_string(),
        extra,
    }
}

// ---------------------------------------------------------------- JSON:API documents

/// The attributes of a JSON:API request document of resource type `resource`.
pub(crate) fn attributes(
    app: &App,
    call: &Call,
    resource: &str,
) -> Result<Map<String, Value>, GlueError> {
    let mut doc =
        web::json_object(call.req.body(), app.config.max_body_bytes).map_err(|e| match e {
            web::BodyError::TooLarge => GlueError::too_large(),
            web::BodyError::Malformed | web::BodyError::NotAnObject => {
                GlueError::post_data_invalid()
            }
        })?;
    let Some(Value::Object(mut data)) = doc.remove("data") else {
        return Err(GlueError::post_data_invalid());
    };
    if data.get("type").and_then(Value::as_str) != Some(resource) {
        return Err(GlueError::invalid_type());
    }
    match data.remove("attributes") {
        Some(Value::Object(attributes)) => Ok(attributes),
        _ => Err(GlueError::post_data_invalid()),
    }
}

/// Required string attributes, every problem named at once (422, 901).
pub(crate) fn required<const N: usize>(
    attrs: &Map<String, Value>,
    names: [&'static str; N],
) -> Result<[String; N], GlueError> {
    let mut problems: Vec<(&str, &str)> = Vec::new();
    let values = names.map(|name| match attrs.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            problems.push((name, errors::NOT_BLANK));
            String::new()
        }
        Some(_) => {
            problems.push((name, errors::NOT_A_STRING));
            String::new()
        }
    });
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(GlueError::validation(&problems))
    }
}

/// A JSON:API answer with one resource.
pub(crate) fn resource(
    status: StatusCode,
    kind: &str,
    id: Option<&str>,
    attributes: Value,
) -> Response {
    document(
        status,
        &json!({ "data": { "type": kind, "id": id, "attributes": attributes } }),
    )
}

pub(crate) fn document(status: StatusCode, doc: &Value) -> Response {
    web::with_type(
        status,
        bytes::Bytes::from(serde_json::to_vec(doc).unwrap_or_default()),
        errors::JSON_API,
    )
}

/// The MFA type named in a request's `attributes.type`: missing → 5902, not offered → 5906.
pub(crate) fn mfa_type(app: &App, attrs: &Map<String, Value>) -> Result<MfaType, GlueError> {
    let name = match attrs.get("type") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
        _ => return Err(GlueError::bad(errors::TYPE_MISSING)),
    };
    MfaType::parse(name)
        .filter(|t| app.config.glue.types.contains(t))
        .ok_or_else(|| GlueError::bad(errors::TYPE_NOT_FOUND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glue_owns_its_resources_only() {
        for p in [
            "/access-tokens",
            "/refresh-tokens/x",
            "/multi-factor-auth-types",
            "/multi-factor-auth-nope",
            "/customers/DE--1",
            "/customer-password",
            "/token",
        ] {
            assert!(owns_path(p), "{p}");
        }
        for p in ["/tokens", "/rest/V1/x", "/health", "/customerss", "/"] {
            assert!(!owns_path(p), "{p}");
        }
    }
}
