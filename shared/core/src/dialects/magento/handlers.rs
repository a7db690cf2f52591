//! One function per Magento route: parse the wire shape, call the core, render the answer.

use base64::Engine;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::errors::{self, MagentoError};
use super::{
    INTEGRATIONS_RESOURCE, TFA_RESOURCE, issue_access_token, issue_tfa_token, principal,
    tfa_token_user,
};
use crate::app::App;
use crate::config::MagentoTfa;
use crate::identity::accounts::{self, AccountError};
use crate::identity::integrations::{self, IntegrationError};
use crate::identity::signin::{self, Context};
use crate::identity::users::{Role, User};
use crate::ports::Email;
use crate::routes::{Params, Route};
use crate::web::{self, FieldError, Request, Response};

type Answer = Result<Response, MagentoError>;

const VIA: &str = "magento";
const GOOGLE: &str = "google";

pub async fn dispatch(app: &App, route: &'static Route, params: &Params, req: &Request) -> Answer {
    match route.name {
        "magento-admin-token" => admin_token(app, req).await,
        "magento-customer-token" => customer_token(app, req).await,
        "magento-google-authenticate" => google_authenticate(app, req).await,
        "magento-google-configure" => google_configure(app, req).await,
        "magento-google-activate" => google_activate(app, req).await,
        "magento-tfat-user-providers" => tfat_providers(app, req, false).await,
        "magento-tfat-providers-to-activate" => tfat_providers(app, req, true).await,
        "magento-installed-providers" | "magento-forced-providers" => {
            principal(app, req, TFA_RESOURCE)
                .await?
                .require_admin(TFA_RESOURCE)?;
            Ok(providers(&[GOOGLE]))
        }
        "magento-user-providers" => user_providers(app, req, params, false).await,
        "magento-providers-to-activate" => user_providers(app, req, params, true).await,
        "magento-provider-reset" => provider_reset(app, req, params).await,
        "magento-customers-me" => customers_me(app, req).await,
        "magento-revoke-customer-token" => revoke_customer_token(app, req).await,
        "magento-integration-create" => integration_create(app, req).await,
        "magento-integration-delete" => integration_delete(app, req, params).await,
        _ => Err(MagentoError::no_route()),
    }
}

// ---------------------------------------------------------------- input

fn context(req: &Request) -> Context {
    Context {
        ip: web::client_ip(req),
        via: VIA,
    }
}

fn body(app: &App, req: &Request) -> Result<Map<String, Value>, MagentoError> {
    web::json_object(req.body(), app.config.max_body_bytes).map_err(MagentoError::body)
}

/// Required string fields, all checked before answering so every problem is named at once.
fn required<const N: usize>(
    obj: &Map<String, Value>,
    names: [&'static str; N],
) -> Result<[String; N], MagentoError> {
    let mut errors = Vec::new();
    let values = names.map(|name| match web::string_field(obj, name) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            String::new()
        }
    });
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(MagentoError::fields(errors))
    }
}

fn user_id_param(params: &Params) -> Result<u64, MagentoError> {
    params
        .get("userId")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            MagentoError::fields(vec![FieldError::WrongType {
                field: "userId",
                expected: "int",
            }])
        })
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------- output

fn ok(value: &impl serde::Serialize) -> Answer {
    Ok(web::json(StatusCode::OK, value))
}

fn provider(code: &str) -> Value {
    json!({
        "enabled": true,
        "engine": { "enabled": true },
        "code": code,
        "name": "Google Authenticator",
        "icon": "Magento_TwoFactorAuth::images/providers/google.png",
        "reset_allowed": true,
        "configure_action": "tfa/google/configure",
        "auth_action": "tfa/google/auth",
        "extra_actions": [],
    })
}

fn providers(codes: &[&str]) -> Response {
    web::json(
        StatusCode::OK,
        &codes.iter().map(|c| provider(c)).collect::<Vec<_>>(),
    )
}

/// Magento's date-time format for entity timestamps (`2024-04-22 11:07:24`, UTC).
fn magento_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- sign-in

/// `POST integration/admin/token`: a token only when no second factor is required; otherwise
/// the providers to use, or (none set up yet) the configuration email.
async fn admin_token(app: &App, req: &Request) -> Answer {
    let [username, password] = required(&body(app, req)?, ["username", "password"])?;
    let verified = signin::password(app, &username, &password, Role::Admin, context(req))
        .await
        .map_err(|e| MagentoError::sign_in(&e))?;
    let policy_requires = app.config.magento.tfa == MagentoTfa::Required;
    if !verified.user.needs_second_factor(policy_requires) {
        let user = verified
            .complete(app)
            .await
            .map_err(|e| MagentoError::sign_in(&e))?;
        return ok(&issue_access_token(app, &user)?);
    }
    if verified.user.totp.is_active() {
        verified
            .stop(app, "second_factor_required")
            .await
            .map_err(|e| MagentoError::sign_in(&e))?;
        return Err(MagentoError::with_parameters(
            StatusCode::UNAUTHORIZED,
            errors::USE_PROVIDER,
            json!({ "active_providers": [GOOGLE] }),
        ));
    }
    let user = verified
        .stop(app, "second_factor_not_configured")
        .await
        .map_err(|e| MagentoError::sign_in(&e))?;
    send_configuration_email(app, &user).await?;
    Err(MagentoError::new(
        StatusCode::UNAUTHORIZED,
        errors::MUST_CONFIGURE,
    ))
}

async fn send_configuration_email(app: &App, user: &User) -> Result<(), MagentoError> {
    let token = issue_tfa_token(app, user)?;
    let url = &app.config.public_url;
    let minutes = app.config.magento.tfa_token_secs / 60;
    let text = format!(
        "Hello {name},\n\n\
         Two-factor authentication is required to sign in, and your account has no \
         authenticator app set up yet.\n\n\
         Your set-up token (valid for {minutes} minutes):\n\n\
         tfaToken: {token}\n\n\
         1. Get your secret and its QR code:\n\n   \
         curl -s -X POST {url}/rest/V1/tfa/provider/google/configure \\\n     \
         -H 'Content-Type: application/json' -d '{{\"tfaToken\":\"{token}\"}}'\n\n\
         2. Add the secret to your authenticator app, then confirm it with the 6-digit code the app shows:\n\n   \
         curl -s -X POST {url}/rest/V1/tfa/provider/google/activate \\\n     \
         -H 'Content-Type: application/json' -d '{{\"tfaToken\":\"{token}\",\"otp\":\"123456\"}}'\n\n\
         If you did not try to sign in, tell your administrator.\n",
        name = user.username,
    );
    let email = Email {
        to: user.email.clone(),
        subject: "Set up two-factor authentication".into(),
        text,
        html: None,
    };
    app.mailer.send_email(&email).await.map_err(|e| {
        tracing::warn!(error = %e, user_id = user.id, "configuration email not sent");
        let status = match e {
            crate::ports::SendError::Retryable(_) => StatusCode::SERVICE_UNAVAILABLE,
            crate::ports::SendError::Rejected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        MagentoError::new(status, errors::SEND_FAILED)
    })
}

/// `POST integration/customer/token`.
async fn customer_token(app: &App, req: &Request) -> Answer {
    let [username, password] = required(&body(app, req)?, ["username", "password"])?;
    let user = signin::password(app, &username, &password, Role::Customer, context(req))
        .await
        .map_err(|e| MagentoError::sign_in(&e))?
        .complete(app)
        .await
        .map_err(|e| MagentoError::sign_in(&e))?;
    ok(&issue_access_token(app, &user)?)
}

/// `POST tfa/provider/google/authenticate`.
async fn google_authenticate(app: &App, req: &Request) -> Answer {
    let [username, password, otp] = required(&body(app, req)?, ["username", "password", "otp"])?;
    let user = signin::password(app, &username, &password, Role::Admin, context(req))
        .await
        .map_err(|e| MagentoError::sign_in(&e))?
        .totp(app, &otp)
        .await
        .map_err(|e| MagentoError::sign_in(&e))?;
    ok(&issue_access_token(app, &user)?)
}

// ---------------------------------------------------------------- first-time set-up

/// `POST tfa/provider/google/configure`: the pending secret and its QR code.
async fn google_configure(app: &App, req: &Request) -> Answer {
    let [tfa_token] = required(&body(app, req)?, ["tfaToken"])?;
    let user = tfa_token_user(app, &tfa_token).await?;
    let setup = match accounts::begin_totp_setup(app, user.id).await {
        Ok(setup) => setup,
        Err(AccountError::AlreadyConfigured) => {
            return Err(MagentoError::new(
                StatusCode::BAD_REQUEST,
                errors::PROVIDER_ALREADY_CONFIGURED,
            ));
        }
        Err(AccountError::NotFound) => {
            return Err(MagentoError::new(
                StatusCode::UNAUTHORIZED,
                errors::INVALID_TFA_TOKEN,
            ));
        }
        Err(AccountError::Fault(f)) => return Err(f.into()),
        Err(other) => {
            tracing::error!(error = %other, "unexpected set-up failure");
            return Err(MagentoError::no_route());
        }
    };
    let png = setup.qr_png()?;
    ok(&json!({
        "qr_code_base64": base64::engine::general_purpose::STANDARD.encode(png),
        "secret_code": setup.secret.to_base32().expose(),
    }))
}

/// `POST tfa/provider/google/activate`: confirms the pending secret with one code.
async fn google_activate(app: &App, req: &Request) -> Answer {
    let [tfa_token, otp] = required(&body(app, req)?, ["tfaToken", "otp"])?;
    let user = tfa_token_user(app, &tfa_token).await?;
    signin::activate_totp(app, user.id, &otp, context(req))
        .await
        .map_err(|e| MagentoError::sign_in(&e))?;
    ok(&true)
}

/// `GET tfa/tfat-user-providers?tfaToken=` and `GET tfa/tfat-providers-to-activate?tfaToken=`.
async fn tfat_providers(app: &App, req: &Request, to_activate: bool) -> Answer {
    let token = query_param(req, "tfaToken")
        .ok_or_else(|| MagentoError::fields(vec![FieldError::Missing("tfaToken")]))?;
    let user = tfa_token_user(app, &token).await?;
    Ok(providers_of(&user, to_activate))
}

fn providers_of(user: &User, to_activate: bool) -> Response {
    if to_activate && user.totp.is_active() {
        providers(&[])
    } else {
        providers(&[GOOGLE])
    }
}

// ---------------------------------------------------------------- admin routes

async fn user_providers(app: &App, req: &Request, params: &Params, to_activate: bool) -> Answer {
    principal(app, req, TFA_RESOURCE)
        .await?
        .require_admin(TFA_RESOURCE)?;
    let id = user_id_param(params)?;
    let user = accounts::get(app, id)
        .await?
        .filter(|u| u.role == Role::Admin)
        .ok_or_else(no_such_user)?;
    Ok(providers_of(&user, to_activate))
}

fn no_such_user() -> MagentoError {
    MagentoError::new(StatusCode::NOT_FOUND, "The user doesn't exist.")
}

/// `POST tfa/provider/{providerCode}/reset/{userId}`: what `bin/magento security:tfa:reset`
/// does.
async fn provider_reset(app: &App, req: &Request, params: &Params) -> Answer {
    principal(app, req, TFA_RESOURCE)
        .await?
        .require_admin(TFA_RESOURCE)?;
    let id = user_id_param(params)?;
    if params.get("providerCode") != Some(GOOGLE) {
        return Err(MagentoError::new(
            StatusCode::BAD_REQUEST,
            errors::PROVIDER_NOT_ALLOWED,
        ));
    }
    match accounts::reset_totp(app, id, VIA).await {
        Ok(()) => ok(&true),
        Err(AccountError::NotFound) => Err(no_such_user()),
        Err(AccountError::Fault(f)) => Err(f.into()),
        Err(other) => {
            tracing::error!(error = %other, "unexpected reset failure");
            Err(MagentoError::no_route())
        }
    }
}

async fn integration_create(app: &App, req: &Request) -> Answer {
    principal(app, req, INTEGRATIONS_RESOURCE)
        .await?
        .require_admin(INTEGRATIONS_RESOURCE)?;
    let obj = body(app, req)?;
    let [name] = required(&obj, ["name"])?;
    let resources = web::optional_string_list(&obj, "resources")
        .map_err(|e| MagentoError::fields(vec![e]))?
        .unwrap_or_default();
    match integrations::create(app, &name, resources, VIA).await {
        Ok((integration, token)) => ok(&json!({
            "id": integration.id,
            "name": integration.name,
            "status": 1,
            "resources": integration.resources,
            "access_token": token.expose(),
        })),
        Err(IntegrationError::NameTaken(name)) => Err(MagentoError::with_parameters(
            StatusCode::BAD_REQUEST,
            "The integration with name \"%1\" exists.",
            json!([name]),
        )),
        Err(e @ (IntegrationError::BadName | IntegrationError::BadResources)) => {
            Err(MagentoError::new(StatusCode::BAD_REQUEST, &e.to_string()))
        }
        Err(IntegrationError::NotFound) => Err(MagentoError::no_route()),
        Err(IntegrationError::Fault(f)) => Err(f.into()),
    }
}

async fn integration_delete(app: &App, req: &Request, params: &Params) -> Answer {
    principal(app, req, INTEGRATIONS_RESOURCE)
        .await?
        .require_admin(INTEGRATIONS_RESOURCE)?;
    let raw = params.get("integrationId").unwrap_or_default();
    let not_found = || {
        MagentoError::with_parameters(
            StatusCode::NOT_FOUND,
            "The integration with ID \"%1\" doesn't exist.",
            json!([raw]),
        )
    };
    let id: u64 = raw.parse().map_err(|_| not_found())?;
    match integrations::delete(app, id, VIA).await {
        Ok(()) => ok(&true),
        Err(IntegrationError::NotFound) => Err(not_found()),
        Err(IntegrationError::Fault(f)) => Err(f.into()),
        Err(other) => Err(MagentoError::new(
            StatusCode::BAD_REQUEST,
            &other.to_string(),
        )),
    }
}

// ---------------------------------------------------------------- customer routes

async fn customers_me(app: &App, req: &Request) -> Answer {
    let user = principal(app, req, super::SELF_RESOURCE)
        .await?
        .require_customer()?;
    ok(&json!({
        "id": user.id,
        "group_id": 1,
        "created_at": magento_time(user.created_at),
        "updated_at": magento_time(user.updated_at),
        "email": user.email,
        "store_id": user.store_id,
        "website_id": 1,
        "addresses": [],
        "disable_auto_group_change": 0,
    }))
}

async fn revoke_customer_token(app: &App, req: &Request) -> Answer {
    let user = principal(app, req, super::SELF_RESOURCE)
        .await?
        .require_customer()?;
    match accounts::revoke_tokens(app, user.id, VIA).await {
        Ok(()) | Err(AccountError::NotFound) => ok(&true),
        Err(AccountError::Fault(f)) => Err(f.into()),
        Err(other) => Err(MagentoError::new(
            StatusCode::BAD_REQUEST,
            &other.to_string(),
        )),
    }
}
