//! The customer resources MFA protects by default — change the password, change the email or
//! phone number, delete the customer — and the back office's reset of a customer's MFA.

use http::StatusCode;
use serde_json::{Value, json};

use super::errors::{self, GlueError};
use super::{
    Answer, Caller, Kind, VIA, attributes, customer_reference, origin, parse_reference,
    protected_caller, required, resource,
};
use crate::app::App;
use crate::crypto::SecretString;
use crate::identity::Error;
use crate::identity::accounts::{self, Contact};
use crate::identity::users::{Role, User};
use crate::routes::Call;
use crate::web;

/// Customer routes say a deleted customer's token is for nobody.
fn vanished(_: Kind) -> GlueError {
    GlueError::coded(StatusCode::NOT_FOUND, errors::CUSTOMERS_NOT_FOUND)
}

/// The calling customer, who must be the one the path names: a path without a reference is
/// 400 (405), another's reference (or a back-office token) 403 (411).
async fn owner(app: &App, call: &Call) -> Result<User, GlueError> {
    let Some(reference) = call.params.get("customerReference") else {
        // Authenticate first all the same: a stranger learns nothing from the answer.
        protected_caller(app, call, vanished).await?;
        return Err(GlueError::bad(errors::REFERENCE_MISSING));
    };
    let Caller { user, kind, .. } = protected_caller(app, call, vanished).await?;
    if kind != Kind::Customer || parse_reference(app, reference) != Some(user.id) {
        return Err(GlueError::unauthorized());
    }
    Ok(user)
}

/// Spryker's rules for a new password (its validation file for `customer-password`, with the
/// shortest length configurable): 128 characters at most, upper and lower case letters, a
/// digit and a special character, nothing outside Latin letters, digits and those specials.
fn password_problems(
    app: &App,
    field: &'static str,
    password: &str,
) -> Vec<(&'static str, String)> {
    const SPECIALS: &str = "!@#$%^&*()_-=+[]{}|;:<>.,/?\\~";
    let mut problems = Vec::new();
    let min = app.config.glue.password_min_length;
    let n = password.chars().count();
    if n < min {
        problems.push((
            field,
            format!("This value is too short. It should have {min} characters or more."),
        ));
    }
    if n > 128 {
        problems.push((
            field,
            "This value is too long. It should have 128 characters or less.".to_owned(),
        ));
    }
    if field == "newPassword" {
        let has = |f: fn(char) -> bool| password.chars().any(f);
        let allowed = password
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c));
        if !(has(|c| c.is_ascii_uppercase())
            && has(|c| c.is_ascii_lowercase())
            && has(|c| c.is_ascii_digit())
            && has(|c| SPECIALS.contains(c))
            && allowed)
        {
            problems.push((
                field,
                "Your password must include at least one uppercase letter, one lowercase letter, \
                 one number, and one special character from the following list: \
                 !@#$%^&*()_-+=[]{}|;:<>.,/?\\~. Non-Latin and other special characters are not \
                 allowed."
                    .to_owned(),
            ));
        }
    }
    problems
}

/// `PATCH /customer-password/{customerReference}`: `{password, newPassword, confirmPassword}`.
/// Every session of the customer is revoked (this token included).
pub async fn change_password(app: &App, call: &Call) -> Answer {
    let user = owner(app, call).await?;
    let attrs = attributes(app, call, "customer-password")?;
    let [password, new, confirm] =
        required(&attrs, ["password", "newPassword", "confirmPassword"])?;
    let mut problems = password_problems(app, "newPassword", &new);
    problems.extend(password_problems(app, "confirmPassword", &confirm));
    if !problems.is_empty() {
        let problems: Vec<(&str, &str)> = problems.iter().map(|(f, m)| (*f, m.as_str())).collect();
        return Err(GlueError::validation(&problems));
    }
    if new != confirm {
        return Err(GlueError::coded(
            StatusCode::UNPROCESSABLE_ENTITY,
            errors::PASSWORDS_DONT_MATCH,
        ));
    }
    app.signin(&app.config.glue.signin)
        .confirm_password(user.id, &password, origin(call))
        .await
        .map_err(|e| match e {
            Error::InvalidCredentials => GlueError::bad(errors::INVALID_PASSWORD),
            other => other.into(),
        })?;
    accounts::set_password(
        app.db(),
        &app.hasher,
        app.rng.as_ref(),
        user.id,
        &SecretString::new(new),
        VIA,
    )
    .await?;
    Ok(web::empty(StatusCode::NO_CONTENT))
}

/// Spryker's customer date-time format (`2024-04-22 11:07:24.000000`, UTC).
fn glue_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].000000");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn customer(user: &User) -> Value {
    json!({
        "email": user.email,
        "phone": user.phone,
        "createdAt": glue_time(user.created_at),
        "updatedAt": glue_time(user.updated_at),
    })
}

/// `PATCH /customers/{customerReference}`: `{email?, phone?}` (`phone: null` removes it, and
/// with it SMS codes). Other attributes of Spryker's customers are refused by name: latchkey
/// keeps no names, genders or birthdays.
pub async fn update(app: &App, call: &Call) -> Answer {
    let user = owner(app, call).await?;
    let attrs = attributes(app, call, "customers")?;
    let mut problems: Vec<(&str, &str)> = Vec::new();
    let mut contact = Contact::default();
    for (name, value) in &attrs {
        match (name.as_str(), value) {
            ("email", Value::String(email)) if !email.trim().is_empty() => {
                contact.email = Some(email.as_str());
            }
            ("email", _) => problems.push(("email", errors::NOT_BLANK)),
            ("phone", Value::Null) => contact.phone = Some(None),
            ("phone", Value::String(phone)) if phone.trim().is_empty() => {
                contact.phone = Some(None)
            }
            ("phone", Value::String(phone)) => contact.phone = Some(Some(phone.trim())),
            ("phone", _) => problems.push(("phone", errors::NOT_A_STRING)),
            (other, _) => problems.push((other, errors::NOT_SUPPORTED)),
        }
    }
    if !problems.is_empty() {
        return Err(GlueError::validation(&problems));
    }
    let user = accounts::change_contact(app.db(), user.id, contact, VIA).await?;
    Ok(resource(
        StatusCode::OK,
        "customers",
        Some(&customer_reference(app, user.id)),
        customer(&user),
    ))
}

/// `DELETE /customers/{customerReference}`: the customer and every token of theirs.
pub async fn delete(app: &App, call: &Call) -> Answer {
    let user = owner(app, call).await?;
    accounts::delete(app.db(), user.id, VIA).await?;
    Ok(web::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /customers/{customerReference}/multi-factor-auth`, back office only: every MFA type
/// of the customer off (what Spryker's "Remove MFA" does), and their sessions revoked.
pub async fn reset_mfa(app: &App, call: &Call) -> Answer {
    let Caller { kind, .. } =
        protected_caller(app, call, |_| GlueError::bad(errors::USER_NOT_FOUND)).await?;
    if kind != Kind::BackOffice {
        return Err(GlueError::unauthorized());
    }
    let reference = call.params.get("customerReference").unwrap_or_default();
    let not_found = || GlueError::bad(errors::CUSTOMER_NOT_FOUND);
    let id = parse_reference(app, reference).ok_or_else(not_found)?;
    match accounts::get(app.db(), id).await? {
        Some(u) if u.role == Role::Customer => {}
        _ => return Err(not_found()),
    }
    accounts::reset_second_factors(app.db(), id, VIA)
        .await
        .map_err(|e| match e {
            Error::NotFound => not_found(),
            other => other.into(),
        })?;
    Ok(web::empty(StatusCode::NO_CONTENT))
}
