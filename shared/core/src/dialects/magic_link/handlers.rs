//! The REST routes under `/rest/V1/otp/`: parse Magento's wire shape, call the core, answer in
//! it. Errors are Magento's ([`MagentoError`]), converted from the core's with `?`.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::LINK_RESOURCE;
use crate::app::App;
use crate::dialects::magento::MagentoError;
use crate::dialects::magento::errors;
use crate::dialects::magento::handlers::{body, magento_time, origin};
use crate::dialects::magento::principal;
use crate::identity::links::{Link, LinkState};
use crate::identity::users::{Role, User};
use crate::identity::{Error, accounts};
use crate::link_mailer::{self, Refused};
use crate::routes::Call;
use crate::stores::StoreView;
use crate::web::{self, FieldError, Response};

type Answer = Result<Response, MagentoError>;

const VIA: &str = "magic-link";

pub const NO_SUCH_CUSTOMER: &str =
    "No such entity with %fieldName = %fieldValue, %field2Name = %field2Value";
pub const NO_SUCH_ENTITY_FIELD: &str = "No such entity with %fieldName = %fieldValue";
pub const INVALID_FIELD_VALUE: &str =
    "Invalid value of \"%value\" provided for the %fieldName field.";
pub const PATH_NOT_ALLOWED: &str = "The path \"%1\" is not allowed for login links.";
pub const NEXT_NOT_ALLOWED: &str = "The \"next\" URL is not allowed for this store.";
pub const TOKEN_DEAD: &str = "The login token has expired, was used or was revoked.";
pub const NO_ACTIVE_TOKEN: &str = "The customer has no active login token.";
pub const TOO_MANY_LINKS: &str =
    "Too many login links were requested. Please wait and try again later.";

fn ok(value: &impl serde::Serialize) -> Answer {
    Ok(web::json(StatusCode::OK, value))
}

async fn require_admin(app: &App, call: &Call) -> Result<(), MagentoError> {
    principal(app, call, LINK_RESOURCE)
        .await?
        .require_admin(LINK_RESOURCE)?;
    Ok(())
}

fn store_not_found() -> MagentoError {
    MagentoError::new(StatusCode::NOT_FOUND, errors::STORE_NOT_FOUND)
}

fn refused(r: Refused) -> MagentoError {
    match r {
        Refused::UnknownStore => store_not_found(),
        Refused::NextNotAllowed => MagentoError::new(StatusCode::BAD_REQUEST, NEXT_NOT_ALLOWED),
        Refused::Core(Error::RateLimited { .. }) => {
            MagentoError::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_LINKS)
        }
        Refused::Core(e) => e.into(),
    }
}

/// A token as Magento's `TokenInterface` would serialise it (never the token itself but in
/// `createToken`'s answer).
fn view(link: &Link, state: LinkState) -> Value {
    json!({
        "id": link.id,
        "customer_id": link.uid,
        "store_id": link.store_id,
        "state": state.as_str(),
        "created_at": magento_time(link.created_at),
        "expires_at": magento_time(link.valid_until),
        "used_at": link.used_at.map(magento_time),
    })
}

/// Reads the required fields of `createToken` and `send`, naming every problem at once.
fn email_and_store(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> (String, String) {
    let mut take = |name| match web::string_field(obj, name) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    let email = take("email");
    let store = take("storeId");
    (email, store)
}

fn next_field(obj: &Map<String, Value>) -> Result<Option<String>, MagentoError> {
    web::optional_string_field(obj, "next").map_err(|e| MagentoError::fields(vec![e]))
}

/// `POST otp/createToken {"email", "storeId", "expiry" (minutes), "next"?}` (admin or
/// integration): a token for the customer, valid for `expiry` minutes (capped by
/// `LATCHKEY_LINK_MAX_EXPIRY_MINUTES`).
pub async fn create_token(app: &App, call: &Call) -> Answer {
    require_admin(app, call).await?;
    let obj = body(app, call)?;
    let mut problems = Vec::new();
    let (email, store_field) = email_and_store(&obj, &mut problems);
    let expiry = match web::optional_int_field(&obj, "expiry") {
        Ok(Some(n)) => Some(n),
        Ok(None) => {
            problems.push(FieldError::Missing("expiry"));
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if !problems.is_empty() {
        return Err(MagentoError::fields(problems));
    }
    let minutes = expiry.unwrap_or_default();
    if minutes < 1 {
        return Err(MagentoError::with_parameters(
            StatusCode::BAD_REQUEST,
            INVALID_FIELD_VALUE,
            json!({ "value": minutes, "fieldName": "expiry" }),
        ));
    }
    let store = app
        .config
        .stores
        .by_field(&store_field)
        .ok_or_else(store_not_found)?;
    let next = match next_field(&obj)? {
        Some(n) => Some(
            store
                .allowed_next(&app.config.public_url, &n)
                .ok_or_else(|| MagentoError::new(StatusCode::BAD_REQUEST, NEXT_NOT_ALLOWED))?,
        ),
        None => None,
    };
    let customer = customer_by_email(app, store, &email).await?;
    let ttl = minutes.saturating_mul(60).min(app.config.links.max_secs);
    let issued = app
        .links()
        .issue(&customer, store.id, ttl, next.as_deref(), VIA)
        .await?;
    let link = &issued.link;
    ok(&json!({
        "token": issued.token.expose(),
        "id": link.id,
        "customer_id": link.uid,
        "customer_email": customer.email,
        "store_id": link.store_id,
        "created_at": magento_time(link.created_at),
        "expires_at": magento_time(link.valid_until),
    }))
}

/// The active customer with this email who may sign in to `store`, else Magento's "no such
/// entity" answer (the route is an admin's: it may say so).
async fn customer_by_email(
    app: &App,
    store: &StoreView,
    email: &str,
) -> Result<User, MagentoError> {
    let found = accounts::find(app.db(), email.trim())
        .await?
        .filter(|u| u.role == Role::Customer && u.active)
        .filter(|u| link_mailer::in_website(app, store, u));
    found.ok_or_else(|| {
        MagentoError::with_parameters(
            StatusCode::NOT_FOUND,
            NO_SUCH_CUSTOMER,
            json!({
                "fieldName": "email",
                "fieldValue": email,
                "field2Name": "websiteId",
                "field2Value": store.website_id,
            }),
        )
    })
}

/// The token of `createUrl`: the string, or (as the document says, "the exact response value
/// from createToken") the whole object `createToken` answered with.
fn token_field(obj: &Map<String, Value>) -> Result<String, MagentoError> {
    let wrong = || {
        MagentoError::fields(vec![FieldError::WrongType {
            field: "token",
            expected: "string",
        }])
    };
    match obj.get("token") {
        None | Some(Value::Null) => Err(MagentoError::fields(vec![FieldError::Missing("token")])),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::String(_)) => Err(MagentoError::fields(vec![FieldError::Missing("token")])),
        Some(Value::Object(inner)) => match inner.get("token") {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            _ => Err(wrong()),
        },
        Some(_) => Err(wrong()),
    }
}

/// `POST otp/createUrl {"path": "customer/otp/auth", "token": <token>}`: the absolute URL, as
/// a bare JSON string, on the base URL of the token's store. With
/// `LATCHKEY_LINK_MAIL_ON_CREATE_URL=on` (the default) the link is also emailed to the
/// customer, once per token, by the mailer.
pub async fn create_url(app: &App, call: &Call) -> Answer {
    let obj = body(app, call)?;
    let path = web::string_field(&obj, "path");
    let token = token_field(&obj);
    let (path, token) = match (path, token) {
        (Ok(p), Ok(t)) => (p, t),
        (Err(e), Ok(_)) => return Err(MagentoError::fields(vec![e])),
        (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(_)) => {
            return Err(MagentoError::fields(vec![e, FieldError::Missing("token")]));
        }
    };
    let path = path.trim().trim_matches('/').to_owned();
    if !app.config.links.paths.contains(&path) {
        return Err(MagentoError::with_parameters(
            StatusCode::BAD_REQUEST,
            PATH_NOT_ALLOWED,
            json!([path]),
        ));
    }
    let links = app.links();
    let no_such_token = || {
        MagentoError::with_parameters(
            StatusCode::NOT_FOUND,
            NO_SUCH_ENTITY_FIELD,
            json!({ "fieldName": "token", "fieldValue": "" }),
        )
    };
    let link = links.find(&token).await?.ok_or_else(no_such_token)?;
    let Ok(customer) = links.check(&link).await? else {
        return Err(MagentoError::new(StatusCode::BAD_REQUEST, TOKEN_DEAD));
    };
    let store = app
        .config
        .stores
        .get(link.store_id)
        .ok_or_else(store_not_found)?;
    let url = link_mailer::link_url(app, store, &path, &token);
    if app.config.links.mail_on_create_url {
        links
            .request_mail(&link, &token, &customer.email, &path)
            .await?;
    }
    ok(&url)
}

/// `POST otp/send {"email", "storeId", "next"?}`: a link emailed to the customer, if there is
/// one; `true` either way. Throttled per email, per client address and per store.
pub async fn send(app: &App, call: &Call) -> Answer {
    let obj = body(app, call)?;
    let mut problems = Vec::new();
    let (email, store_field) = email_and_store(&obj, &mut problems);
    if !problems.is_empty() {
        return Err(MagentoError::fields(problems));
    }
    let next = next_field(&obj)?;
    link_mailer::ask(
        app,
        &email,
        &store_field,
        next.as_deref(),
        Some(origin(call).ip),
        None,
        VIA,
    )
    .await
    .map_err(refused)?;
    ok(&true)
}

/// The customer `{customerId}` names, for the admin views.
async fn customer_param(app: &App, call: &Call) -> Result<User, MagentoError> {
    let raw = call.params.get("customerId").unwrap_or_default();
    let not_found = || {
        MagentoError::with_parameters(
            StatusCode::NOT_FOUND,
            NO_SUCH_ENTITY_FIELD,
            json!({ "fieldName": "customerId", "fieldValue": raw }),
        )
    };
    let id: u64 = raw.parse().map_err(|_| not_found())?;
    accounts::get(app.db(), id)
        .await?
        .filter(|u| u.role == Role::Customer)
        .ok_or_else(not_found)
}

/// `GET otp/customers/{customerId}/tokens` (getCustomerTokens): every listed token, oldest
/// first — state, times, never the token.
pub async fn customer_tokens(app: &App, call: &Call) -> Answer {
    require_admin(app, call).await?;
    let user = customer_param(app, call).await?;
    let now = app.clock.now();
    let links = app.links().list(user.id).await?;
    ok(&links
        .iter()
        .map(|l| view(l, l.state(now, user.token_gen)))
        .collect::<Vec<_>>())
}

/// `GET otp/customers/{customerId}/tokens/active` (getActiveToken): the newest token that
/// still signs in.
pub async fn active_token(app: &App, call: &Call) -> Answer {
    require_admin(app, call).await?;
    let user = customer_param(app, call).await?;
    let now = app.clock.now();
    let links = app.links().list(user.id).await?;
    let active = links
        .iter()
        .filter(|l| l.state(now, user.token_gen) == LinkState::Active)
        .max_by_key(|l| l.created_at)
        .ok_or_else(|| MagentoError::new(StatusCode::NOT_FOUND, NO_ACTIVE_TOKEN))?;
    ok(&view(active, LinkState::Active))
}

/// `POST otp/customers/{customerId}/tokens/revoke {"tokenId"?}`: revokes one token, or every
/// one still usable; `true`.
pub async fn revoke_tokens(app: &App, call: &Call) -> Answer {
    require_admin(app, call).await?;
    let user = customer_param(app, call).await?;
    let obj = body(app, call)?;
    let id =
        web::optional_string_field(&obj, "tokenId").map_err(|e| MagentoError::fields(vec![e]))?;
    app.links()
        .revoke(&user, id.as_deref(), VIA)
        .await
        .map_err(|e| match e {
            Error::NotFound => MagentoError::with_parameters(
                StatusCode::NOT_FOUND,
                NO_SUCH_ENTITY_FIELD,
                json!({ "fieldName": "tokenId", "fieldValue": id.clone().unwrap_or_default() }),
            ),
            other => other.into(),
        })?;
    ok(&true)
}
