//! The Magento 2 REST dialect: admin 2FA (Google Authenticator), customer tokens, integration
//! tokens, under `/rest/V1/` and `/rest/<store_code>/V1/`.
//!
//! Tokens are JWTs as Magento 2.4 issues them — header `{"kid":"1","alg":"HS256"}`, claims
//! `uid`, `utypid` (2 admin, 3 customer), `iat`, `exp` — and integration access tokens are
//! opaque 32-character strings. Revocation is per user and time: a token issued at or before
//! the user's revocation second is refused.

mod errors;
mod handlers;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::crypto::jwt::JwtError;
use crate::identity::accounts;
use crate::identity::integrations::{self, Integration};
use crate::identity::users::{Role, User, UserId};
use crate::routes::{Params, Route};
use crate::web::{self, Request, Response};

pub use errors::MagentoError;

/// `utypid` of Magento's user context types (1, integration, is never in a JWT here:
/// integrations use opaque tokens).
const UTYPE_ADMIN: u8 = 2;
const UTYPE_CUSTOMER: u8 = 3;

/// ACL resources the admin routes require (integrations must have been granted them).
const TFA_RESOURCE: &str = "Magento_TwoFactorAuth::tfa";
const INTEGRATIONS_RESOURCE: &str = "Magento_Integration::integrations";
const SELF_RESOURCE: &str = "self";

pub async fn handle(app: &App, route: &'static Route, params: Params, req: Request) -> Response {
    if let Some(code) = params.get("store_code")
        && !app.config.magento.store_codes.contains(code)
    {
        return MagentoError::new(StatusCode::NOT_FOUND, errors::STORE_NOT_FOUND).into_response();
    }
    match handlers::dispatch(app, route, &params, &req).await {
        Ok(res) => res,
        Err(err) => err.into_response(),
    }
}

pub fn not_found() -> Response {
    MagentoError::no_route().into_response()
}

pub fn too_large() -> Response {
    MagentoError::too_large().into_response()
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

/// Claims of the emailed 2FA configuration token. `deny_unknown_fields` on both claim types
/// keeps one from passing as the other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TfaClaims {
    uid: UserId,
    tfat: bool,
    iat: i64,
    exp: i64,
}

/// Who a Bearer token speaks for.
enum Principal {
    Admin(User),
    Customer(User),
    Integration(Integration),
}

impl Principal {
    /// Admin users hold every resource; integrations what they were granted.
    fn require_admin(self, resource: &str) -> Result<Option<User>, MagentoError> {
        match self {
            Principal::Admin(user) => Ok(Some(user)),
            Principal::Integration(i) if i.allows(resource) => Ok(None),
            _ => Err(MagentoError::not_authorized(resource)),
        }
    }

    fn require_customer(self) -> Result<User, MagentoError> {
        match self {
            Principal::Customer(user) => Ok(user),
            _ => Err(MagentoError::not_authorized(SELF_RESOURCE)),
        }
    }
}

/// Resolves the request's Bearer token; `resource` names what was asked for in the refusal.
async fn principal(app: &App, req: &Request, resource: &str) -> Result<Principal, MagentoError> {
    let token = web::bearer(req.headers()).ok_or_else(|| MagentoError::not_authorized(resource))?;
    if !token.contains('.') {
        return match integrations::authenticate(app, token).await? {
            Some(integration) => Ok(Principal::Integration(integration)),
            None => Err(MagentoError::not_authorized(resource)),
        };
    }
    let now = app.clock.now();
    let claims: AccessClaims = match app.keys.verify_hs256(token, now, 0) {
        Ok(c) => c,
        Err(JwtError::Expired) => {
            return Err(MagentoError::new(
                StatusCode::UNAUTHORIZED,
                errors::TOKEN_EXPIRED,
            ));
        }
        Err(JwtError::Invalid) => return Err(MagentoError::not_authorized(resource)),
    };
    let user = accounts::get(app, claims.uid)
        .await?
        .filter(|u| u.active && !u.revoked(claims.iat))
        .ok_or_else(|| MagentoError::not_authorized(resource))?;
    match (claims.utypid, user.role) {
        (UTYPE_ADMIN, Role::Admin) => Ok(Principal::Admin(user)),
        (UTYPE_CUSTOMER, Role::Customer) => Ok(Principal::Customer(user)),
        _ => Err(MagentoError::not_authorized(resource)),
    }
}

/// Issues an access token for a signed-in user.
fn issue_access_token(app: &App, user: &User) -> Result<String, MagentoError> {
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
    app.keys
        .sign_hs256(&claims)
        .map_err(|e| MagentoError::fault(&e.into()))
}

fn issue_tfa_token(app: &App, user: &User) -> Result<String, MagentoError> {
    let iat = app.clock.now();
    let claims = TfaClaims {
        uid: user.id,
        tfat: true,
        iat,
        exp: iat + app.config.magento.tfa_token_secs,
    };
    app.keys
        .sign_hs256(&claims)
        .map_err(|e| MagentoError::fault(&e.into()))
}

/// The admin a configuration token was issued for.
async fn tfa_token_user(app: &App, token: &str) -> Result<User, MagentoError> {
    let invalid = || MagentoError::new(StatusCode::UNAUTHORIZED, errors::INVALID_TFA_TOKEN);
    let claims: TfaClaims = app
        .keys
        .verify_hs256(token, app.clock.now(), 0)
        .map_err(|_| invalid())?;
    if !claims.tfat {
        return Err(invalid());
    }
    accounts::get(app, claims.uid)
        .await?
        .filter(|u| u.role == Role::Admin && u.active && !u.revoked(claims.iat))
        .ok_or_else(invalid)
}
