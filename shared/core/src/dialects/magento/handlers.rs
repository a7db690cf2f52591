//! One function per Magento route: parse the wire shape, call the core, render the answer.
//! Refusals of the core convert to Magento's answers with `?` (`From<identity::Error>` in
//! `errors.rs`); only where Magento words a refusal differently by route is it mapped here.

use base64::Engine;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::errors::{self, MagentoError};
use super::{
    INTEGRATIONS_RESOURCE, Principal, SELF_RESOURCE, TFA_RESOURCE, issue_access_token,
    issue_tfa_token, principal, tfa_token_user,
};
use crate::app::App;
use crate::config::MagentoTfa;
use crate::identity::integrations::{self, Grantor};
use crate::identity::users::{Role, User};
use crate::identity::{Error, Origin, Taken, accounts};
use crate::ports::Email;
use crate::routes::Call;
use crate::templates::Template;
use crate::web::{self, FieldError, Response};

type Answer = Result<Response, MagentoError>;

const VIA: &str = "magento";
const GOOGLE: &str = "google";

// ---------------------------------------------------------------- input

pub(crate) fn origin(call: &Call) -> Origin {
    Origin {
        ip: web::client_ip(&call.req),
        via: VIA,
    }
}

pub(crate) fn body(app: &App, call: &Call) -> Result<Map<String, Value>, MagentoError> {
    web::json_object(call.req.body(), app.config.max_body_bytes).map_err(MagentoError::body)
}

/// Required string fields, all checked before answering so every problem is named at once.
pub(crate) fn required<const N: usize>(
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

fn user_id_param(call: &Call) -> Result<u64, MagentoError> {
    call.params
        .get("userId")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            MagentoError::fields(vec![FieldError::WrongType {
                field: "userId",
                expected: "int",
            }])
        })
}

fn query_param(call: &Call, name: &str) -> Option<String> {
    let query = call.req.uri().query()?;
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

fn providers(codes: &[&str]) -> Answer {
    ok(&codes.iter().map(|c| provider(c)).collect::<Vec<_>>())
}

fn providers_of(user: &User, to_activate: bool) -> Answer {
    if to_activate && user.totp.is_active() {
        providers(&[])
    } else {
        providers(&[GOOGLE])
    }
}

/// Magento's date-time format for entity timestamps (`2024-04-22 11:07:24`, UTC).
///
/// Written with `format!` for years 0–9999, not by `time`'s formatter: `customers/me` writes
/// two of these per answer, and the formatter's walk over its format description was 1.7% of
/// that route's CPU under load (infra/BENCH.md). `time` still splits the instant into its
/// fields, and formats any other year; a test holds both paths to the same text.
pub(crate) fn magento_time(unix: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return String::new();
    };
    match t.year() {
        year @ 0..=9999 => format!(
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Years before 0 (and after 9999, should `time`'s `large-dates` ever be turned on).
        _ => formatted_time(t),
    }
}

/// [`magento_time`] through `time`'s formatter.
fn formatted_time(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&format).unwrap_or_default()
}

fn no_such_user() -> MagentoError {
    MagentoError::new(StatusCode::NOT_FOUND, "The user doesn't exist.")
}

// ---------------------------------------------------------------- sign-in

/// `POST integration/admin/token`: a token only when no second factor is required; otherwise
/// the providers to use, or (none set up yet) the configuration email.
pub async fn admin_token(app: &App, call: &Call) -> Answer {
    let [username, password] = required(&body(app, call)?, ["username", "password"])?;
    let si = app.signin(&app.config.magento.signin);
    let verified = si
        .password(&username, &password, Role::Admin, origin(call))
        .await?;
    let policy_requires = app.config.magento.tfa == MagentoTfa::Required;
    if !verified.user.needs_second_factor(policy_requires) {
        let user = verified.complete(&si).await?;
        return ok(&issue_access_token(app, &user)?);
    }
    if verified.user.totp.is_active() {
        verified.pause(&si, "second_factor_required").await?;
        return Err(MagentoError::with_parameters(
            StatusCode::UNAUTHORIZED,
            errors::USE_PROVIDER,
            json!({ "active_providers": [GOOGLE] }),
        ));
    }
    let user = verified.pause(&si, "second_factor_not_configured").await?;
    send_configuration_email(app, &user).await?;
    Err(MagentoError::new(
        StatusCode::UNAUTHORIZED,
        errors::MUST_CONFIGURE,
    ))
}

async fn send_configuration_email(app: &App, user: &User) -> Result<(), MagentoError> {
    let token = issue_tfa_token(app, user)?;
    let minutes = (app.config.magento.tfa_token_secs / 60).to_string();
    let store = app.config.stores.get(user.store_id);
    let e = app.templates().email(
        Template::TfaSetup,
        store,
        &[
            ("name", user.username.as_str()),
            ("minutes", minutes.as_str()),
            ("token", token.as_str()),
            ("url", app.config.public_url.as_str()),
        ],
    );
    let email = Email {
        to: user.email.clone(),
        subject: e.subject,
        text: e.text,
        html: Some(e.html),
    };
    app.mailer
        .send_email(&email)
        .await
        .map_err(|e| MagentoError::from(Error::from(e)))
}

/// `POST integration/customer/token`.
pub async fn customer_token(app: &App, call: &Call) -> Answer {
    let [username, password] = required(&body(app, call)?, ["username", "password"])?;
    let si = app.signin(&app.config.magento.signin);
    let user = si
        .password(&username, &password, Role::Customer, origin(call))
        .await?
        .complete(&si)
        .await?;
    ok(&issue_access_token(app, &user)?)
}

/// `POST tfa/provider/google/authenticate`.
pub async fn google_authenticate(app: &App, call: &Call) -> Answer {
    let [username, password, otp] = required(&body(app, call)?, ["username", "password", "otp"])?;
    let si = app.signin(&app.config.magento.signin);
    let user = si
        .password(&username, &password, Role::Admin, origin(call))
        .await?
        .totp(&si, &otp)
        .await?;
    ok(&issue_access_token(app, &user)?)
}

// ---------------------------------------------------------------- first-time set-up

/// `POST tfa/provider/google/configure`: the pending secret and its QR code.
pub async fn google_configure(app: &App, call: &Call) -> Answer {
    let [tfa_token] = required(&body(app, call)?, ["tfaToken"])?;
    let user = tfa_token_user(app, &tfa_token).await?;
    let setup = accounts::begin_totp_setup(
        app.db(),
        &app.keys.sealer,
        app.rng.as_ref(),
        &app.config.issuer,
        user.id,
    )
    .await
    .map_err(|e| match e {
        Error::NotFound => MagentoError::new(StatusCode::UNAUTHORIZED, errors::INVALID_TFA_TOKEN),
        other => other.into(),
    })?;
    let png = setup.qr_png()?;
    ok(&json!({
        "qr_code_base64": base64::engine::general_purpose::STANDARD.encode(png),
        "secret_code": setup.secret.to_base32().expose(),
    }))
}

/// `POST tfa/provider/google/activate`: confirms the pending secret with one code.
pub async fn google_activate(app: &App, call: &Call) -> Answer {
    let [tfa_token, otp] = required(&body(app, call)?, ["tfaToken", "otp"])?;
    let user = tfa_token_user(app, &tfa_token).await?;
    app.signin(&app.config.magento.signin)
        .activate_totp(user.id, &otp, origin(call))
        .await?;
    ok(&true)
}

/// The user a `?tfaToken=` stands for.
async fn tfat_user(app: &App, call: &Call) -> Result<User, MagentoError> {
    let token = query_param(call, "tfaToken")
        .ok_or_else(|| MagentoError::fields(vec![FieldError::Missing("tfaToken")]))?;
    tfa_token_user(app, &token).await
}

/// `GET tfa/tfat-user-providers?tfaToken=`.
pub async fn tfat_user_providers(app: &App, call: &Call) -> Answer {
    providers_of(&tfat_user(app, call).await?, false)
}

/// `GET tfa/tfat-providers-to-activate?tfaToken=`.
pub async fn tfat_providers_to_activate(app: &App, call: &Call) -> Answer {
    providers_of(&tfat_user(app, call).await?, true)
}

// ---------------------------------------------------------------- admin routes

/// `GET tfa/installed-providers` and `GET tfa/forced-providers`.
pub async fn installed_providers(app: &App, call: &Call) -> Answer {
    principal(app, call, TFA_RESOURCE)
        .await?
        .require_admin(TFA_RESOURCE)?;
    providers(&[GOOGLE])
}

async fn admin_user(app: &App, call: &Call) -> Result<User, MagentoError> {
    principal(app, call, TFA_RESOURCE)
        .await?
        .require_admin(TFA_RESOURCE)?;
    let id = user_id_param(call)?;
    accounts::get(app.db(), id)
        .await?
        .filter(|u| u.role == Role::Admin)
        .ok_or_else(no_such_user)
}

/// `GET tfa/user-providers/{userId}`.
pub async fn user_providers(app: &App, call: &Call) -> Answer {
    providers_of(&admin_user(app, call).await?, false)
}

/// `GET tfa/providers-to-activate/{userId}`.
pub async fn providers_to_activate(app: &App, call: &Call) -> Answer {
    providers_of(&admin_user(app, call).await?, true)
}

/// `POST tfa/provider/{providerCode}/reset/{userId}`: what `bin/magento security:tfa:reset`
/// does.
pub async fn provider_reset(app: &App, call: &Call) -> Answer {
    principal(app, call, TFA_RESOURCE)
        .await?
        .require_admin(TFA_RESOURCE)?;
    let id = user_id_param(call)?;
    if call.params.get("providerCode") != Some(GOOGLE) {
        return Err(MagentoError::new(
            StatusCode::BAD_REQUEST,
            errors::PROVIDER_NOT_ALLOWED,
        ));
    }
    accounts::reset_totp(app.db(), id, VIA)
        .await
        .map_err(|e| match e {
            Error::NotFound => no_such_user(),
            other => other.into(),
        })?;
    ok(&true)
}

/// `POST integrations`: an integration holding at most what its creator holds.
pub async fn integration_create(app: &App, call: &Call) -> Answer {
    let creator = principal(app, call, INTEGRATIONS_RESOURCE)
        .await?
        .require_admin(INTEGRATIONS_RESOURCE)?;
    let obj = body(app, call)?;
    let [name] = required(&obj, ["name"])?;
    let resources = web::optional_string_list(&obj, "resources")
        .map_err(|e| MagentoError::fields(vec![e]))?
        .ok_or_else(|| MagentoError::fields(vec![FieldError::Missing("resources")]))?;
    let grantor = match &creator {
        Principal::Integration(i) => Grantor::Integration(i),
        _ => Grantor::Admin,
    };
    let (integration, token) = integrations::create(
        app.db(),
        app.rng.as_ref(),
        app.keys.pepper(),
        grantor,
        &name,
        resources,
        VIA,
    )
    .await
    .map_err(|e| match e {
        Error::Taken(Taken::IntegrationName) => MagentoError::with_parameters(
            StatusCode::BAD_REQUEST,
            errors::INTEGRATION_EXISTS,
            json!([name.trim()]),
        ),
        other => other.into(),
    })?;
    ok(&json!({
        "id": integration.id,
        "name": integration.name,
        "status": 1,
        "resources": integration.resources,
        "access_token": token.expose(),
    }))
}

/// `DELETE integrations/{integrationId}`.
pub async fn integration_delete(app: &App, call: &Call) -> Answer {
    principal(app, call, INTEGRATIONS_RESOURCE)
        .await?
        .require_admin(INTEGRATIONS_RESOURCE)?;
    let raw = call.params.get("integrationId").unwrap_or_default();
    let not_found = || {
        MagentoError::with_parameters(
            StatusCode::NOT_FOUND,
            "The integration with ID \"%1\" doesn't exist.",
            json!([raw]),
        )
    };
    let id: u64 = raw.parse().map_err(|_| not_found())?;
    integrations::delete(app.db(), id, VIA)
        .await
        .map_err(|e| match e {
            Error::NotFound => not_found(),
            other => other.into(),
        })?;
    ok(&true)
}

// ---------------------------------------------------------------- customer routes

/// Magento's customer data, as `GET customers/me` answers it (the storefront's who-am-I, the
/// busiest route: serialised straight from this, without building a JSON tree first).
#[derive(serde::Serialize)]
struct Customer<'a> {
    id: crate::identity::users::UserId,
    group_id: u8,
    created_at: String,
    updated_at: String,
    email: &'a str,
    store_id: u32,
    website_id: u8,
    addresses: [(); 0],
    disable_auto_group_change: u8,
}

/// `GET customers/me`.
pub async fn customers_me(app: &App, call: &Call) -> Answer {
    let user = principal(app, call, SELF_RESOURCE)
        .await?
        .require_customer()?;
    ok(&Customer {
        id: user.id,
        group_id: 1,
        created_at: magento_time(user.created_at),
        updated_at: magento_time(user.updated_at),
        email: &user.email,
        store_id: user.store_id,
        website_id: 1,
        addresses: [],
        disable_auto_group_change: 0,
    })
}

/// `POST integration/customer/revoke-customer-token`.
pub async fn revoke_customer_token(app: &App, call: &Call) -> Answer {
    let user = principal(app, call, SELF_RESOURCE)
        .await?
        .require_customer()?;
    match accounts::revoke_tokens(app.db(), user.id, VIA).await {
        Ok(()) | Err(Error::NotFound) => ok(&true),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_time(unix: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .map(formatted_time)
            .unwrap_or_default()
    }

    #[test]
    fn magento_time_reads_as_magento_writes_it() {
        assert_eq!(magento_time(1_713_784_044), "2024-04-22 11:07:24");
        assert_eq!(magento_time(0), "1970-01-01 00:00:00");
        // Where its own writing begins and ends: the first second of year 0, the last of
        // year -1 (the formatter's), the last of 9999; and the last second of 1969.
        for unix in [-62_167_219_200, -62_167_219_201, 253_402_300_799, -1] {
            assert_eq!(magento_time(unix), by_time(unix), "at {unix}");
        }
    }

    proptest! {
        /// Over every instant `magento_time` writes itself (years 0 to 9999).
        #[test]
        fn magento_time_matches_the_formatter(unix in -62_167_219_200i64..=253_402_300_799) {
            prop_assert_eq!(magento_time(unix), by_time(unix));
        }
    }
}
