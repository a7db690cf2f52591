//! The Magento 2 REST dialect: admin 2FA (Google Authenticator), customer tokens, integration
//! tokens, under `/rest/V1/` and `/rest/<store_code>/V1/`.
//!
//! Tokens are JWTs as Magento 2.4 issues them — header `{"kid":"1","alg":"HS256"}`, claims
//! `uid`, `utypid` (2 admin, 3 customer), `iat`, `exp` — and integration access tokens are
//! opaque 32-character strings. So that revocation holds even within the second it happened,
//! without a claim Magento's clients would not expect, each token's MAC key is derived from
//! the HMAC key and the user's current token generation
//! ([`crate::identity::users::User::token_binding`]): revoking moves the generation, and every
//! earlier token stops verifying while every later one verifies.

pub(crate) mod errors;
pub(crate) mod handlers;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::crypto::jwt::JwtError;
use crate::identity::accounts;
use crate::identity::integrations::{self, Integration};
use crate::identity::users::{Role, User, UserId};
use crate::routes::{Call, Route, Sends, handler};
use crate::web::{self, Response};

use super::Dialect;
pub use errors::MagentoError;

/// `utypid` of Magento's user context types (1, integration, is never in a JWT here:
/// integrations use opaque tokens).
const UTYPE_ADMIN: u8 = 2;
const UTYPE_CUSTOMER: u8 = 3;

/// What each kind of token is bound to, besides the user and its generation.
const ACCESS_BINDING: &str = "magento-access";
const TFA_BINDING: &str = "magento-tfa";

/// ACL resources the admin routes require (integrations must have been granted them).
const TFA_RESOURCE: &str = "Magento_TwoFactorAuth::tfa";
const INTEGRATIONS_RESOURCE: &str = "Magento_Integration::integrations";
const SELF_RESOURCE: &str = "self";

macro_rules! magento_paths {
    ($tail:literal) => {
        &[
            concat!("/rest/V1/", $tail),
            concat!("/rest/{store_code}/V1/", $tail),
        ]
    };
}

macro_rules! route {
    ($name:literal, $method:ident, $tail:literal, $sends:ident, $writes:literal, $summary:literal, $handler:path) => {
        Route {
            name: $name,
            method: Method::$method,
            paths: magento_paths!($tail),
            dialect: Dialect::Magento,
            sends: Sends::$sends,
            writes: $writes,
            summary: $summary,
            handler: handler!($handler),
        }
    };
}

pub static ROUTES: &[Route] = &[
    route!(
        "magento-admin-token",
        POST,
        "integration/admin/token",
        Email,
        true,
        "Admin sign-in by password; with 2FA on, names the providers to use instead.",
        handlers::admin_token
    ),
    route!(
        "magento-customer-token",
        POST,
        "integration/customer/token",
        Nothing,
        true,
        "Customer sign-in by email (or username) and password.",
        handlers::customer_token
    ),
    route!(
        "magento-google-authenticate",
        POST,
        "tfa/provider/google/authenticate",
        Nothing,
        true,
        "Admin sign-in with password and Google Authenticator code.",
        handlers::google_authenticate
    ),
    route!(
        "magento-google-configure",
        POST,
        "tfa/provider/google/configure",
        Nothing,
        true,
        "First-time 2FA setup: the secret and its QR code, for an emailed tfaToken.",
        handlers::google_configure
    ),
    route!(
        "magento-google-activate",
        POST,
        "tfa/provider/google/activate",
        Nothing,
        true,
        "First-time 2FA setup: confirm the authenticator with one code.",
        handlers::google_activate
    ),
    route!(
        "magento-tfat-user-providers",
        GET,
        "tfa/tfat-user-providers",
        Nothing,
        false,
        "Providers of the user a tfaToken was issued for.",
        handlers::tfat_user_providers
    ),
    route!(
        "magento-tfat-providers-to-activate",
        GET,
        "tfa/tfat-providers-to-activate",
        Nothing,
        false,
        "Providers still to configure for the user a tfaToken was issued for.",
        handlers::tfat_providers_to_activate
    ),
    route!(
        "magento-installed-providers",
        GET,
        "tfa/installed-providers",
        Nothing,
        false,
        "Every 2FA provider this installation offers.",
        handlers::installed_providers
    ),
    route!(
        "magento-forced-providers",
        GET,
        "tfa/forced-providers",
        Nothing,
        false,
        "The 2FA providers every admin must use.",
        handlers::installed_providers
    ),
    route!(
        "magento-user-providers",
        GET,
        "tfa/user-providers/{userId}",
        Nothing,
        false,
        "The 2FA providers of one admin user.",
        handlers::user_providers
    ),
    route!(
        "magento-providers-to-activate",
        GET,
        "tfa/providers-to-activate/{userId}",
        Nothing,
        false,
        "The 2FA providers one admin user has yet to configure.",
        handlers::providers_to_activate
    ),
    route!(
        "magento-provider-reset",
        POST,
        "tfa/provider/{providerCode}/reset/{userId}",
        Nothing,
        true,
        "Reset one provider of a user (what `bin/magento security:tfa:reset` does).",
        handlers::provider_reset
    ),
    route!(
        "magento-customers-me",
        GET,
        "customers/me",
        Nothing,
        false,
        "The signed-in customer.",
        handlers::customers_me
    ),
    route!(
        "magento-revoke-customer-token",
        POST,
        "integration/customer/revoke-customer-token",
        Nothing,
        true,
        "Revoke every token of the signed-in customer.",
        handlers::revoke_customer_token
    ),
    route!(
        "magento-integration-create",
        POST,
        "integrations",
        Nothing,
        true,
        "Create an integration and its Bearer access token (admin).",
        handlers::integration_create
    ),
    route!(
        "magento-integration-delete",
        DELETE,
        "integrations/{integrationId}",
        Nothing,
        true,
        "Delete an integration, revoking its access token (admin).",
        handlers::integration_delete
    ),
];

/// Every route checks the store code of `/rest/<store_code>/V1/` first.
pub fn admit(app: &App, call: &Call) -> Option<Response> {
    use crate::routes::IntoResponse;
    let code = call.params.get("store_code")?;
    (!app.config.magento.store_codes.contains(code))
        .then(|| MagentoError::new(StatusCode::NOT_FOUND, errors::STORE_NOT_FOUND).into_response())
}

pub fn not_found() -> Response {
    use crate::routes::IntoResponse;
    MagentoError::no_route().into_response()
}

pub fn too_large() -> Response {
    use crate::routes::IntoResponse;
    MagentoError::too_large().into_response()
}

pub fn unavailable() -> Response {
    use crate::routes::IntoResponse;
    MagentoError::new(StatusCode::SERVICE_UNAVAILABLE, errors::BUSY).into_response()
}

pub fn bad_request(why: &str) -> Response {
    use crate::routes::IntoResponse;
    MagentoError::new(StatusCode::BAD_REQUEST, why).into_response()
}

/// Claims of an access token, in Magento's order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessClaims {
    uid: UserId,
    utypid: u8,
    iat: i64,
    exp: i64,
}

/// Claims of the emailed 2FA configuration token. `deny_unknown_fields` on both claim types,
/// and a binding of its own, keep one from passing as the other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TfaClaims {
    uid: UserId,
    tfat: bool,
    iat: i64,
    exp: i64,
}

/// Who a Bearer token speaks for.
#[derive(Clone)]
pub(crate) enum Principal {
    Admin,
    Customer(Box<User>),
    Integration(Integration),
}

impl Principal {
    /// Admin users hold every resource; integrations what they were granted.
    pub(crate) fn require_admin(self, resource: &str) -> Result<Principal, MagentoError> {
        match self {
            Principal::Admin => Ok(self),
            Principal::Integration(ref i) if i.allows(resource) => Ok(self),
            _ => Err(MagentoError::not_authorized(resource)),
        }
    }

    fn require_customer(self) -> Result<User, MagentoError> {
        match self {
            Principal::Customer(user) => Ok(*user),
            _ => Err(MagentoError::not_authorized(SELF_RESOURCE)),
        }
    }
}

/// Resolves the request's Bearer token; `resource` names what was asked for in the refusal.
pub(crate) async fn principal(
    app: &App,
    call: &Call,
    resource: &str,
) -> Result<Principal, MagentoError> {
    let refused = || MagentoError::not_authorized(resource);
    let token = match web::bearer(call.req.headers()) {
        Some(token) => token,
        // A storefront page reads its signed-in customer with the session cookie a login link
        // set (GET only, and only for a customer token: the cookie carries nothing else).
        None if call.req.method() == Method::GET => {
            let token = web::cookie(
                call.req.headers(),
                crate::dialects::magic_link::SESSION_COOKIE,
            )
            .ok_or_else(refused)?;
            return match token_principal(app, token, resource).await? {
                p @ Principal::Customer(_) => Ok(p),
                _ => Err(refused()),
            };
        }
        None => return Err(refused()),
    };
    token_principal(app, token, resource).await
}

/// The principal of a Bearer token (a JWT, or an integration's opaque token).
async fn token_principal(
    app: &App,
    token: &str,
    resource: &str,
) -> Result<Principal, MagentoError> {
    let refused = || MagentoError::not_authorized(resource);
    if !token.contains('.') {
        return match integrations::authenticate(app.db(), app.keys.pepper(), token).await? {
            Some(integration) => Ok(Principal::Integration(integration)),
            None => Err(refused()),
        };
    }
    let now = app.clock.now();
    // The store's version before any read of this check (see `TokenMemo`). What the memo
    // answers for must be all the check below rests on: the token's bytes, the rows it reads
    // (unchanged while the version is), the clock (checked again on a hit) and the key set
    // (fixed for the app's life). A new input to this check must be one of those, or the
    // memo must go.
    let version = app.store.version();
    if let Some(known) = app.magento_tokens.get(&app.keys, version, token, now) {
        return Ok(known);
    }
    let unverified = match app.keys.peek_hs256::<AccessClaims>(token, now, 0) {
        Ok(u) => u,
        Err(JwtError::Expired) => {
            return Err(MagentoError::new(
                StatusCode::UNAUTHORIZED,
                errors::TOKEN_EXPIRED,
            ));
        }
        Err(JwtError::Invalid) => return Err(refused()),
    };
    let Some(user) = accounts::get(app.db(), unverified.claims().uid).await? else {
        return Err(refused());
    };
    let (claims, recheck) = unverified
        .verify_rechecked(&app.keys, &user.token_binding(ACCESS_BINDING))
        .map_err(|_| refused())?;
    if !user.active {
        return Err(refused());
    }
    let principal = match (claims.utypid, user.role) {
        (UTYPE_ADMIN, Role::Admin) => Principal::Admin,
        (UTYPE_CUSTOMER, Role::Customer) => Principal::Customer(Box::new(user)),
        _ => return Err(refused()),
    };
    app.magento_tokens.keep(
        app.store.as_ref(),
        version,
        token,
        principal.clone(),
        recheck,
    );
    Ok(principal)
}

/// Issues an access token for a signed-in user.
pub(crate) fn issue_access_token(app: &App, user: &User) -> Result<String, MagentoError> {
    let (utypid, lifetime) = match user.role {
        Role::Admin => (UTYPE_ADMIN, app.config.magento.admin_token_secs),
        Role::Customer => (UTYPE_CUSTOMER, app.config.magento.customer_token_secs),
    };
    let iat = app.clock.now();
    let claims = AccessClaims {
        uid: user.id,
        utypid,
        iat,
        exp: iat + lifetime,
    };
    Ok(app
        .keys
        .sign_hs256_bound(&claims, &user.token_binding(ACCESS_BINDING))?)
}

fn issue_tfa_token(app: &App, user: &User) -> Result<String, MagentoError> {
    let iat = app.clock.now();
    let claims = TfaClaims {
        uid: user.id,
        tfat: true,
        iat,
        exp: iat + app.config.magento.tfa_token_secs,
    };
    Ok(app
        .keys
        .sign_hs256_bound(&claims, &user.token_binding(TFA_BINDING))?)
}

/// The admin a configuration token was issued for (refused once any credential of theirs
/// changed since: the generation moved).
async fn tfa_token_user(app: &App, token: &str) -> Result<User, MagentoError> {
    let invalid = || MagentoError::new(StatusCode::UNAUTHORIZED, errors::INVALID_TFA_TOKEN);
    let unverified = app
        .keys
        .peek_hs256::<TfaClaims>(token, app.clock.now(), 0)
        .map_err(|_| invalid())?;
    let user = accounts::get(app.db(), unverified.claims().uid)
        .await?
        .ok_or_else(invalid)?;
    let claims = unverified
        .verify(&app.keys, &user.token_binding(TFA_BINDING))
        .map_err(|_| invalid())?;
    if !claims.tfat || user.role != Role::Admin || !user.active {
        return Err(invalid());
    }
    Ok(user)
}
