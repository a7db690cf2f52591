//! MFA management (`/multi-factor-auth-*`) and the `X-MFA-Code` check of protected resources.
//!
//! Every route answers in the order Spryker's processors check: the caller, the request
//! document, `X-MFA-Code` where the route requires one (5900), the type (5902 missing, 5906 not
//! offered or not in the state the route needs, 5904 already active), then the code (5901).

use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use super::errors::{self, GlueError};
use super::{Answer, Caller, Kind, VIA, attributes, caller, document, mfa_type, origin, resource};
use crate::app::App;
use crate::config::MfaType;
use crate::identity::codes::{Channel, Recipient};
use crate::identity::users::{CodeFactor, Factor, Totp, User};
use crate::identity::{Error, accounts};
use crate::routes::Call;
use crate::web;

/// The purpose every Glue MFA code is issued under (one live code per user and channel).
pub(crate) const PURPOSE: &str = "glue-mfa";
/// The header a code comes in.
const HEADER: &str = "x-mfa-code";
/// An activation still pending sends a new code when asked again only after this long (so
/// parallel activations send one).
const RESEND_SECS: i64 = 60;

/// The caller's state of a type: 0 off, 1 activation pending, 2 on.
fn status(user: &User, t: MfaType) -> u8 {
    let code = |f: CodeFactor| match f {
        CodeFactor::Off => 0,
        CodeFactor::Pending => 1,
        CodeFactor::On => 2,
    };
    match t {
        MfaType::Email => code(user.email_otp),
        MfaType::Sms => code(user.sms_otp),
        MfaType::Totp => match user.totp {
            Totp::None => 0,
            Totp::Pending { .. } => 1,
            Totp::Active { .. } => 2,
        },
    }
}

/// The offered types the user has switched on.
fn enabled(app: &App, user: &User) -> Vec<MfaType> {
    app.config
        .glue
        .types
        .iter()
        .copied()
        .filter(|t| status(user, *t) == 2)
        .collect()
}

fn channel(t: MfaType) -> Option<Channel> {
    match t {
        MfaType::Email => Some(Channel::Email),
        MfaType::Sms => Some(Channel::Sms),
        MfaType::Totp => None,
    }
}

fn factor(t: MfaType) -> Factor {
    match t {
        MfaType::Email => Factor::Email,
        MfaType::Sms => Factor::Sms,
        MfaType::Totp => Factor::Totp,
    }
}

/// How MFA routes say the token's user is gone.
fn vanished(kind: Kind) -> GlueError {
    match kind {
        Kind::Customer => GlueError::bad(errors::CUSTOMER_NOT_FOUND),
        Kind::BackOffice => GlueError::bad(errors::USER_NOT_FOUND),
    }
}

/// The `X-MFA-Code` header: `None` when missing or empty.
fn code_header(call: &Call) -> Option<&str> {
    call.req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .filter(|v| !v.is_empty())
}

/// A code that cannot be right (not 4 to 10 digits) is refused without being counted.
fn plausible(code: &str) -> bool {
    (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// A code refusal in Glue's words: anything about the code is 5901.
fn code_refused(e: Error) -> GlueError {
    match e {
        Error::InvalidCode
        | Error::Locked { .. }
        | Error::NotConfigured
        | Error::NotFound
        | Error::InvalidCredentials => GlueError::code_invalid(),
        other => other.into(),
    }
}

/// Checks `code` against type `t` of `user`.
async fn check(
    app: &App,
    call: &Call,
    user: &User,
    t: MfaType,
    code: &str,
) -> Result<(), GlueError> {
    if !plausible(code) {
        return Err(GlueError::code_invalid());
    }
    match channel(t) {
        Some(channel) => app
            .codes()
            .verify(
                user.id,
                PURPOSE,
                channel,
                code,
                &app.config.glue.codes,
                origin(call),
            )
            .await
            .map(|_| ())
            .map_err(code_refused),
        None => app
            .signin(&app.config.glue.signin)
            .verify_totp(user.id, code, origin(call))
            .await
            .map_err(code_refused),
    }
}

/// Which of the enabled types a code is checked against, decided from state alone: the type
/// most recently triggered whose code (or, for totp, whose trigger) is still live; else totp if
/// enabled; else none (nothing can be right).
async fn target(app: &App, user: &User, enabled: &[MfaType]) -> Result<Option<MfaType>, GlueError> {
    let slots: Vec<&str> = enabled.iter().map(|t| t.as_str()).collect();
    let issued = app.codes().issued_at(user.id, PURPOSE, &slots).await?;
    let latest = enabled
        .iter()
        .zip(issued)
        .filter_map(|(t, at)| at.map(|at| (at, *t)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, t)| t);
    Ok(latest.or_else(|| enabled.contains(&MfaType::Totp).then_some(MfaType::Totp)))
}

/// A valid `X-MFA-Code` of one of the user's enabled types, when they have one (and the admin
/// has not switched their second factor off): 5900 without one, 5901 when it is not right.
pub(crate) async fn require_code(app: &App, call: &Call, user: &User) -> Result<(), GlueError> {
    if !user.tfa_enabled {
        return Ok(());
    }
    let enabled = enabled(app, user);
    if enabled.is_empty() {
        return Ok(());
    }
    let code = code_header(call).ok_or_else(GlueError::code_missing)?;
    match target(app, user, &enabled).await? {
        Some(t) => check(app, call, user, t, code).await,
        None => Err(GlueError::code_invalid()),
    }
}

/// The customer has no phone number to text a code to.
fn no_phone() -> GlueError {
    GlueError::validation(&[(
        "phone",
        "The account has no phone number to send codes to; set one first.",
    )])
}

/// Sends a new code of type `t` (for totp, records that the app's code is the one expected).
async fn send_code(app: &App, call: &Call, user: &User, t: MfaType) -> Result<(), GlueError> {
    let policy = &app.config.glue.codes;
    let (channel, destination): (Channel, &str) = match t {
        MfaType::Totp => {
            app.codes()
                .mark(user.id, PURPOSE, MfaType::Totp.as_str(), policy.ttl_secs)
                .await?;
            return Ok(());
        }
        MfaType::Email => (Channel::Email, &user.email),
        MfaType::Sms => (Channel::Sms, user.phone.as_deref().ok_or_else(no_phone)?),
    };
    // Worded by the template set (Spryker's "Verification Code for Secure Access" email).
    let templates = app.templates();
    let store = app.config.stores.get(user.store_id);
    let render = move |code: &str, minutes: i64| {
        templates.code_message(channel, store, "verification", code, minutes)
    };
    match app
        .codes()
        .send(
            Recipient::User(user.id),
            PURPOSE,
            channel,
            destination,
            origin(call),
            policy,
            &render,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::RateLimited { until } | Error::Locked { until }) => {
            Err(GlueError::blocked(errors::SENDING_THROTTLED, until))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- routes

/// `GET /multi-factor-auth-types`.
pub async fn types(app: &App, call: &Call) -> Answer {
    let Caller { user, .. } = caller(app, call, |kind| match kind {
        Kind::Customer => GlueError::bad(errors::NO_CUSTOMER_IDENTIFIER),
        Kind::BackOffice => GlueError::bad(errors::NO_USER_IDENTIFIER),
    })
    .await?;
    let data: Vec<Value> = app
        .config
        .glue
        .types
        .iter()
        .map(|t| {
            json!({
                "type": "multi-factor-auth-types",
                "id": t.as_str(),
                "attributes": { "type": t.as_str(), "status": status(&user, *t) },
            })
        })
        .collect();
    Ok(document(StatusCode::OK, &json!({ "data": data })))
}

/// `POST /multi-factor-auth-trigger`: a code of an enabled (or pending) type.
pub async fn trigger(app: &App, call: &Call) -> Answer {
    let Caller { user, .. } = caller(app, call, vanished).await?;
    let attrs = attributes(app, call, "multi-factor-auth-trigger")?;
    let t = mfa_type(app, &attrs)?;
    if status(&user, t) == 0 {
        return Err(GlueError::bad(errors::TYPE_NOT_FOUND));
    }
    send_code(app, call, &user, t).await?;
    Ok(web::empty(StatusCode::NO_CONTENT))
}

/// `POST /multi-factor-auth-type-activate`: with another type enabled already, a code of it in
/// `X-MFA-Code` first. Email and SMS: the type becomes pending and a code is sent (of parallel
/// activations, one does both). Totp: the pending secret, to put in the app.
pub async fn activate(app: &App, call: &Call) -> Answer {
    let Caller { user, .. } = caller(app, call, vanished).await?;
    let attrs = attributes(app, call, "multi-factor-auth-type-activate")?;
    let t = mfa_type(app, &attrs)?;
    let state = status(&user, t);
    if state == 2 {
        return Err(GlueError::bad(errors::ALREADY_ACTIVATED));
    }
    require_code(app, call, &user).await?;
    if t == MfaType::Totp {
        return activate_totp(app, &user).await;
    }
    if t == MfaType::Sms && user.phone.is_none() {
        return Err(no_phone());
    }
    if state == 1 {
        // Asked again: a new code, unless the activation has only just begun.
        if app.clock.now() - user.updated_at >= RESEND_SECS {
            send_code(app, call, &user, t).await?;
        }
        return Ok(web::empty(StatusCode::NO_CONTENT));
    }
    let pending = accounts::set_code_factor(
        app.db(),
        user.id,
        factor(t),
        &[CodeFactor::Off],
        CodeFactor::Pending,
        VIA,
    )
    .await?;
    if pending.is_none() {
        // Another request activated it meanwhile, and sent the code.
        return Ok(web::empty(StatusCode::NO_CONTENT));
    }
    if let Err(e) = send_code(app, call, &user, t).await {
        // Not sent: the activation did not happen either.
        accounts::set_code_factor(
            app.db(),
            user.id,
            factor(t),
            &[CodeFactor::Pending],
            CodeFactor::Off,
            VIA,
        )
        .await?;
        return Err(e);
    }
    Ok(web::empty(StatusCode::NO_CONTENT))
}

async fn activate_totp(app: &App, user: &User) -> Answer {
    let setup = accounts::begin_totp_setup(
        app.db(),
        &app.keys.sealer,
        app.rng.as_ref(),
        &app.config.issuer,
        user.id,
    )
    .await?;
    let png = setup.qr_png()?;
    Ok(resource(
        StatusCode::OK,
        "multi-factor-auth-type-activate",
        Some("totp"),
        json!({
            "type": "totp",
            "secret": setup.secret.to_base32().expose(),
            "uri": setup.uri,
            "qrCode": format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            ),
        }),
    ))
}

/// `POST /multi-factor-auth-type-verify`: the pending type's code in `X-MFA-Code` switches it on.
pub async fn verify(app: &App, call: &Call) -> Answer {
    let Caller { user, .. } = caller(app, call, vanished).await?;
    let attrs = attributes(app, call, "multi-factor-auth-type-verify")?;
    let code = code_header(call).ok_or_else(GlueError::code_missing)?;
    let t = mfa_type(app, &attrs)?;
    match status(&user, t) {
        2 => return Err(GlueError::bad(errors::ALREADY_ACTIVATED)),
        0 => return Err(GlueError::bad(errors::TYPE_NOT_FOUND)),
        _ => {}
    }
    if !plausible(code) {
        return Err(GlueError::code_invalid());
    }
    match channel(t) {
        None => {
            app.signin(&app.config.glue.signin)
                .activate_totp(user.id, code, origin(call))
                .await
                .map_err(|e| match e {
                    Error::AlreadyConfigured => GlueError::bad(errors::ALREADY_ACTIVATED),
                    other => code_refused(other),
                })?;
        }
        Some(channel) => {
            app.codes()
                .verify(
                    user.id,
                    PURPOSE,
                    channel,
                    code,
                    &app.config.glue.codes,
                    origin(call),
                )
                .await
                .map_err(code_refused)?;
            let on = accounts::set_code_factor(
                app.db(),
                user.id,
                factor(t),
                &[CodeFactor::Pending],
                CodeFactor::On,
                VIA,
            )
            .await?;
            if on.is_none() {
                return Err(GlueError::bad(errors::ALREADY_ACTIVATED));
            }
        }
    }
    Ok(web::empty(StatusCode::NO_CONTENT))
}

/// `POST /multi-factor-auth-type-deactivate`: an enabled type, with a code of that type.
pub async fn deactivate(app: &App, call: &Call) -> Answer {
    let Caller { user, .. } = caller(app, call, vanished).await?;
    let attrs = attributes(app, call, "multi-factor-auth-type-deactivate")?;
    let code = code_header(call).ok_or_else(GlueError::code_missing)?;
    let t = mfa_type(app, &attrs)?;
    if status(&user, t) != 2 {
        return Err(GlueError::bad(errors::TYPE_NOT_FOUND));
    }
    check(app, call, &user, t, code).await?;
    let off = accounts::switch_off(app.db(), user.id, factor(t), VIA).await?;
    if off.is_none() {
        // Deactivated (or reset) by another request between our read and our write.
        return Err(GlueError::bad(errors::DEACTIVATION_FAILED));
    }
    Ok(web::empty(StatusCode::NO_CONTENT))
}
