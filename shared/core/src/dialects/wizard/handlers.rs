//! One function per wizard route: parse the wire shape, call the core, render the envelope.
//! Refusals of the core convert with `?` (`From<identity::Error>` in `errors.rs`).

use base64::Engine;
use serde_json::{Map, Value, json};

use super::errors::WizardError;
use super::{RefreshClaims, VIA, config, envelope, no_tokens, session, signed_in, subject};
use crate::app::App;
use crate::crypto::SecretString;
use crate::crypto::jwt::{Expect, JwtError};
use crate::identity::codes::{Channel, Message, Recipient};
use crate::identity::flows::{self, Flow, SIGN_IN, SignInStep};
use crate::identity::signin::PasswordOk;
use crate::identity::users::{Factor, Role, User};
use crate::identity::{Error, Origin, accounts, users};
use crate::records::flow::Proven;
use crate::routes::Call;
use crate::templates::Template;
use crate::web::{self, Response};

type Answer = Result<Response, WizardError>;

/// The purpose of sign-in SMS codes and of emailed reset codes.
const SIGNIN_SMS: &str = "wizard-signin";
const PASSWORD_RESET: &str = "wizard-password-reset";

/// The kind of a password-reset flow, and its one step.
const RESET: &str = "password-reset";
const RESET_CODE: &str = "code";

/// Workflow values of the document.
const LOGIN: &str = "login";
const CHOOSE: &str = "2fa";
const GOOGLE_AUTH: &str = "2fa_google_auth";
const SMS_AUTH: &str = "2fa_sms_auth";
const RESET_PASSWORD_EMAIL: &str = "reset_password_email";

/// Longest field accepted anywhere (a password, a fingerprint): longer is refused as input.
const MAX_FIELD: usize = 8 * 1024;

// ---------------------------------------------------------------- input

fn origin(call: &Call) -> Origin {
    Origin {
        ip: web::client_ip(&call.req),
        via: VIA,
    }
}

fn body(app: &App, call: &Call) -> Result<Map<String, Value>, WizardError> {
    web::json_object(call.req.body(), app.config.max_body_bytes).map_err(WizardError::body)
}

/// Required string fields, every problem named at once.
fn required<const N: usize>(
    obj: &Map<String, Value>,
    names: [&'static str; N],
) -> Result<[String; N], WizardError> {
    let mut errors = Vec::new();
    let values = names.map(|name| match obj.get(name) {
        Some(Value::String(s)) if s.len() > MAX_FIELD => {
            errors.push((name, "too long".to_owned()));
            String::new()
        }
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push((name, "required".to_owned()));
            String::new()
        }
        Some(_) => {
            errors.push((name, "must be a string".to_owned()));
            String::new()
        }
    });
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(WizardError::fields(&errors))
    }
}

/// `device_fingerprint`: base64 of a JSON object with a string `user_agent`.
fn check_fingerprint(fingerprint: &str) -> Result<(), WizardError> {
    let refuse = || {
        WizardError::field(
            "device_fingerprint",
            "must be base64 of a JSON object with a user_agent string",
        )
    };
    let trimmed = fingerprint.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| refuse())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) if map.get("user_agent").is_some_and(Value::is_string) => Ok(()),
        _ => Err(refuse()),
    }
}

/// The sign-in flow a request names, at `step`.
async fn sign_in_flow(app: &App, uuid: &str, step: SignInStep) -> Result<Flow, WizardError> {
    let flow = app.flows().open(uuid, SIGN_IN).await?;
    flow.expect(step.as_str())?;
    Ok(flow)
}

// ---------------------------------------------------------------- steps

/// `GET signin/wizard`: a new flow at its credentials step.
pub async fn start(app: &App, _: &Call) -> Answer {
    let cfg = config(app);
    let flow = app
        .flows()
        .start(
            SIGN_IN,
            SignInStep::Credentials.as_str(),
            Proven::default(),
            cfg.flow_secs,
        )
        .await?;
    let data = json!({
        "recaptcha": { "enabled": cfg.recaptcha.is_some() },
        "is_qr_available": cfg.qr,
        "is_password_recovery_available": cfg.password_recovery,
    });
    Ok(envelope(false, data, Some(&flow.id), LOGIN))
}

/// `POST signin {uuid, email, password, device_fingerprint[, recaptchaResponse]}`.
pub async fn signin(app: &App, call: &Call) -> Answer {
    let obj = body(app, call)?;
    let [uuid, email, password, fingerprint] =
        required(&obj, ["uuid", "email", "password", "device_fingerprint"])?;
    check_fingerprint(&fingerprint)?;
    let flow = sign_in_flow(app, &uuid, SignInStep::Credentials).await?;
    let origin = origin(call);
    if config(app).recaptcha.is_some() {
        let response = match obj.get("recaptchaResponse") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_FIELD => s.clone(),
            _ => return Err(WizardError::field("recaptchaResponse", "required")),
        };
        match app.recaptcha.verify(&response, origin.ip).await {
            Ok(true) => {}
            Ok(false) => return Err(WizardError::recaptcha_failed()),
            Err(e) => return Err(Error::from(e).into()),
        }
    }
    let si = app.signin(&config(app).signin);
    let verified = match si.password(&email, &password, Role::Customer, origin).await {
        Ok(verified) => verified,
        Err(Error::PasswordResetRequired) => {
            app.flows().finish(&flow).await?;
            return Ok(envelope(
                false,
                no_tokens(),
                Some(&flow.id),
                RESET_PASSWORD_EMAIL,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let factors = verified.user.second_factors();
    if !verified.user.needs_second_factor(true) || factors.is_empty() {
        let user = verified.complete(&si).await?;
        return finish(app, &flow, &user, origin).await;
    }
    let flows = app.flows();
    match factors.as_slice() {
        [Factor::Totp] => {
            verified.park(&si, &flows, &flow, SignInStep::Totp).await?;
            Ok(envelope(false, no_tokens(), Some(&flow.id), GOOGLE_AUTH))
        }
        [Factor::Sms] => {
            send_sms(app, &verified.user, origin).await?;
            verified.park(&si, &flows, &flow, SignInStep::Sms).await?;
            Ok(envelope(false, no_tokens(), Some(&flow.id), SMS_AUTH))
        }
        _ => {
            verified
                .park(&si, &flows, &flow, SignInStep::Choose)
                .await?;
            Ok(envelope(false, no_tokens(), Some(&flow.id), CHOOSE))
        }
    }
}

async fn send_sms(app: &App, user: &User, origin: Origin) -> Result<(), WizardError> {
    let render = sms_render(app, user, "sign-in");
    app.codes()
        .send_sms_to(user, SIGNIN_SMS, origin, &config(app).sms, &render)
        .await?;
    Ok(())
}

/// `POST signin/2fa {uuid, type}`: `google` or `sms` (which sends the code).
pub async fn choose(app: &App, call: &Call) -> Answer {
    let obj = body(app, call)?;
    let [uuid, kind] = required(&obj, ["uuid", "type"])?;
    let factor = match kind.as_str() {
        "google" => Factor::Totp,
        "sms" => Factor::Sms,
        _ => return Err(WizardError::field("type", "must be google or sms")),
    };
    let flow = sign_in_flow(app, &uuid, SignInStep::Choose).await?;
    let origin = origin(call);
    let si = app.signin(&config(app).signin);
    let pending: PasswordOk = si.resume(&flow, SignInStep::Choose, origin).await?;
    // The flow moves first (one conditional write: of parallel choices one wins, and a user
    // without the factor is refused), then the code goes out: a refused choice sends nothing.
    let user = pending.choose(&app.flows(), &flow, factor).await?;
    if factor == Factor::Sms {
        send_sms(app, &user, origin).await?;
    }
    let workflow = if factor == Factor::Totp {
        GOOGLE_AUTH
    } else {
        SMS_AUTH
    };
    Ok(envelope(false, Value::Null, Some(&flow.id), workflow))
}

/// `POST 2fa/google {uuid, code}`.
pub async fn google(app: &App, call: &Call) -> Answer {
    let [uuid, code] = required(&body(app, call)?, ["uuid", "code"])?;
    let flow = sign_in_flow(app, &uuid, SignInStep::Totp).await?;
    let origin = origin(call);
    let si = app.signin(&config(app).signin);
    let user = si
        .resume(&flow, SignInStep::Totp, origin)
        .await?
        .totp(&si, &code)
        .await?;
    finish(app, &flow, &user, origin).await
}

/// `POST 2fa/sms {uuid, code}`.
pub async fn sms(app: &App, call: &Call) -> Answer {
    let [uuid, code] = required(&body(app, call)?, ["uuid", "code"])?;
    let flow = sign_in_flow(app, &uuid, SignInStep::Sms).await?;
    let origin = origin(call);
    let si = app.signin(&config(app).signin);
    let user = si
        .resume(&flow, SignInStep::Sms, origin)
        .await?
        .sms(&si, &app.codes(), SIGNIN_SMS, &code, &config(app).sms)
        .await?;
    finish(app, &flow, &user, origin).await
}

/// Ends the flow (once, whatever races it) and starts the session.
async fn finish(app: &App, flow: &Flow, user: &User, origin: Origin) -> Answer {
    app.flows().finish(flow).await?;
    let issued = app
        .sessions()
        .start(user, subject(app, user), &config(app).sessions, origin)
        .await?;
    signed_in(app, &issued, user, &flow.id)
}

// ---------------------------------------------------------------- tokens

/// `POST refresh {refreshToken}`: the step-4 answer with the next pair.
pub async fn refresh(app: &App, call: &Call) -> Answer {
    let [token] = required(&body(app, call)?, ["refreshToken"])?;
    let cfg = config(app);
    let expect = Expect {
        iss: Some(&cfg.sessions.issuer),
        aud: None,
    };
    let claims: RefreshClaims = app
        .keys
        .verify_signed(&token, cfg.sessions.alg, app.clock.now(), 2, &expect)
        .map_err(|e| match e {
            JwtError::Expired => Error::TokenExpired,
            JwtError::Invalid => Error::InvalidToken,
        })?;
    let (user, issued) = app
        .sessions()
        .refresh(&claims.rt, &cfg.sessions, origin(call), |u| subject(app, u))
        .await?;
    if user.id.to_string() != claims.sub {
        return Err(Error::InvalidToken.into());
    }
    signed_in(app, &issued, &user, &claims.uuid)
}

/// `POST signout` (Bearer): the session ends.
pub async fn signout(app: &App, call: &Call) -> Answer {
    let session = session(app, call).await?;
    app.sessions()
        .revoke(&session.claims.sid, origin(call))
        .await?;
    Ok(envelope(true, Value::Null, None, "signout"))
}

/// `GET user` (Bearer): who the caller is.
pub async fn user(app: &App, call: &Call) -> Answer {
    let user = session(app, call).await?.user;
    let factors = user.second_factors();
    Ok(web::json(
        http::StatusCode::OK,
        &json!({
            "id": user.id,
            "email": user.email,
            "username": user.username,
            "tfaProviders": [
                { "name": "google", "localizedCaption": "Google Authenticator",
                  "enabled": factors.contains(&Factor::Totp) },
                { "name": "sms", "localizedCaption": "SMS",
                  "enabled": factors.contains(&Factor::Sms) },
            ],
            "createdAt": super::iso8601(user.created_at),
        }),
    ))
}

// ---------------------------------------------------------------- password reset

/// `POST signin/password/restore {email}`: emails a reset code; unknown emails get the same
/// answer (a flow, no email). The answer's uuid goes to `signin/password/reset`.
pub async fn restore(app: &App, call: &Call) -> Answer {
    let [email] = required(&body(app, call)?, ["email"])?;
    let cfg = config(app);
    if !cfg.password_recovery {
        return Err(WizardError::not_offered());
    }
    let user = accounts::self_service_customer(app.db(), &email, &|_| true).await?;
    let to = match &user {
        Some(u) => Recipient::User(u.id),
        None => Recipient::Nobody(&email),
    };
    let flow = app
        .flows()
        .start(
            RESET,
            RESET_CODE,
            // The email asked for, for an account and for none alike: an unknown email's code
            // tries are counted under it (`Codes::verify_for`), as an account's are under it.
            Proven {
                uid: user.as_ref().map(|u| u.id),
                data: Some(email.as_str()),
            },
            cfg.reset.ttl_secs,
        )
        .await?;
    let url = &app.config.public_url;
    let uuid = flow.id.clone();
    let templates = app.templates();
    let store = app
        .config
        .stores
        .get(user.as_ref().map_or(1, |u| u.store_id));
    let render = |code: &str, minutes: i64| {
        let minutes = minutes.to_string();
        let vars = [
            ("code", code),
            ("minutes", minutes.as_str()),
            ("url", url.as_str()),
            ("uuid", uuid.as_str()),
        ];
        templates.email_message(Template::PasswordReset, store, &vars)
    };
    let destination = user.as_ref().map_or(email.as_str(), |u| u.email.as_str());
    app.codes()
        .send(
            to,
            PASSWORD_RESET,
            Channel::Email,
            destination,
            origin(call),
            &cfg.reset,
            &render,
        )
        .await?;
    Ok(envelope(
        false,
        Value::Null,
        Some(&flow.id),
        "reset_password",
    ))
}

/// `POST signin/password/reset {uuid, code, password}`: the new password, with the emailed
/// code; used once; every session of the account ends.
pub async fn reset(app: &App, call: &Call) -> Answer {
    let [uuid, code, password] = required(&body(app, call)?, ["uuid", "code", "password"])?;
    users::check_password(&password).map_err(Error::from)?;
    let flow = app.flows().open(&uuid, RESET).await?;
    flow.expect(RESET_CODE)?;
    // An unknown email's flow: its tries count and lock as an account's do, and no code is
    // right (none was sent).
    let to = match (flow.uid, flow.data.as_deref()) {
        (Some(uid), _) => Recipient::User(uid),
        (None, Some(email)) => Recipient::Nobody(email),
        (None, None) => return Err(Error::InvalidCode.into()),
    };
    app.codes()
        .verify_for(
            to,
            PASSWORD_RESET,
            Channel::Email,
            &code,
            &config(app).reset,
            origin(call),
        )
        .await?;
    let Some(uid) = to.user() else {
        return Err(Error::InvalidCode.into());
    };
    app.flows().finish(&flow).await?;
    accounts::set_password(
        app.db(),
        &app.hasher,
        app.rng.as_ref(),
        uid,
        &SecretString::new(password),
        VIA,
    )
    .await?;
    Ok(envelope(false, Value::Null, Some(&flow.id), LOGIN))
}

// ---------------------------------------------------------------- QR sign-in

/// The kind of a QR sign-in flow, and its steps.
const QR: &str = "qr";
const QR_PENDING: &str = "pending";
const QR_APPROVED: &str = "approved";

/// What a QR code carries: the flow's uuid under a scheme the mobile app recognises.
fn qr_content(uuid: &str) -> String {
    format!("latchkey-signin:{uuid}")
}

/// `GET signin/qrcodes`: a QR code for the mobile app to approve.
pub async fn qr_start(app: &App, _: &Call) -> Answer {
    let cfg = config(app);
    if !cfg.qr {
        return Err(WizardError::not_offered());
    }
    let flow = app
        .flows()
        .start(QR, QR_PENDING, Proven::default(), cfg.qr_secs)
        .await?;
    let content = qr_content(&flow.id);
    let png = crate::crypto::qr::png(&content)?;
    let data = json!({
        "content": content,
        "qrCode": base64::engine::general_purpose::STANDARD.encode(png),
        "expiresAt": super::iso8601(flow.until),
    });
    Ok(envelope(false, data, Some(&flow.id), "qr"))
}

/// `POST signin/qrcodes {uuid}` (Bearer): the signed-in mobile client approves the web flow.
pub async fn qr_approve(app: &App, call: &Call) -> Answer {
    let session = session(app, call).await?;
    let [uuid] = required(&body(app, call)?, ["uuid"])?;
    let uuid = uuid
        .strip_prefix("latchkey-signin:")
        .unwrap_or(&uuid)
        .to_owned();
    let flow = app.flows().open(&uuid, QR).await?;
    flow.expect(QR_PENDING)?;
    app.flows()
        .advance(
            &flow,
            QR_APPROVED,
            Proven {
                uid: Some(session.user.id),
                data: None,
            },
        )
        .await?;
    crate::audit::Audit::new(
        crate::audit::Event::SignIn,
        crate::audit::Outcome::Success,
        VIA,
    )
    .user(session.user.id)
    .ip(origin(call).ip)
    .reason("qr_approved")
    .emit();
    Ok(envelope(true, Value::Null, Some(&flow.id), "qr_approved"))
}

/// `POST signin/tokens {uuid}`: the web side asks whether its QR code was approved; once it
/// was, the flow ends and its own session starts (once, whatever races it).
pub async fn qr_tokens(app: &App, call: &Call) -> Answer {
    let [uuid] = required(&body(app, call)?, ["uuid"])?;
    let flow = app.flows().open(&uuid, QR).await?;
    if flow.step == QR_PENDING {
        return Ok(envelope(false, Value::Null, Some(&flow.id), "qr"));
    }
    flow.expect(QR_APPROVED)?;
    let uid = flows::owner(&flow)?;
    let user = accounts::get(app.db(), uid)
        .await?
        .filter(|u| u.active)
        .ok_or(Error::InvalidCredentials)?;
    finish(app, &flow, &user, origin(call)).await
}

// ---------------------------------------------------------------- enrolment

const ENABLE_GOOGLE: &str = "enable-google";
const ENABLE_SMS: &str = "enable-sms";
const DISABLE_GOOGLE: &str = "disable-google";
const DISABLE_SMS: &str = "disable-sms";
const STEP_PHONE: &str = "phone";
const STEP_CODE: &str = "code";
const PHONE_VERIFY: &str = "wizard-phone-verify";
const DISABLE_SMS_CODE: &str = "wizard-disable-sms";

fn method_param(call: &Call) -> Result<Factor, WizardError> {
    match call.params.get("type") {
        Some("google") => Ok(Factor::Totp),
        Some("sms") => Ok(Factor::Sms),
        _ => Err(WizardError::field("type", "must be google or sms")),
    }
}

/// `GET 2fa/{type}/enable/wizard` (Bearer).
pub async fn enable(app: &App, call: &Call) -> Answer {
    let user = session(app, call).await?.user;
    let factor = method_param(call)?;
    let cfg = config(app);
    let owner = Proven {
        uid: Some(user.id),
        data: None,
    };
    if user.second_factors().contains(&factor) {
        return Err(Error::AlreadyConfigured.into());
    }
    if factor == Factor::Sms {
        let flow = app
            .flows()
            .start(ENABLE_SMS, STEP_PHONE, owner, cfg.flow_secs)
            .await?;
        return Ok(envelope(false, Value::Null, Some(&flow.id), "phone"));
    }
    let setup = accounts::begin_totp_setup(
        app.db(),
        &app.keys.sealer,
        app.rng.as_ref(),
        &app.config.issuer,
        user.id,
    )
    .await?;
    let png = setup.qr_png()?;
    let flow = app
        .flows()
        .start(ENABLE_GOOGLE, STEP_CODE, owner, cfg.flow_secs)
        .await?;
    let data = json!({
        "secret": setup.secret.to_base32().expose(),
        "uri": setup.uri,
        "qrCode": base64::engine::general_purpose::STANDARD.encode(png),
    });
    Ok(envelope(false, data, Some(&flow.id), GOOGLE_AUTH))
}

/// `GET 2fa/{type}/disable/wizard` (Bearer): a fresh code of that method is the next step.
pub async fn disable(app: &App, call: &Call) -> Answer {
    let user = session(app, call).await?.user;
    let factor = method_param(call)?;
    if !user.second_factors().contains(&factor) {
        return Err(Error::NotConfigured.into());
    }
    let (kind, workflow) = if factor == Factor::Sms {
        let render = sms_render(app, &user, "switch-off");
        app.codes()
            .send_sms_to(
                &user,
                DISABLE_SMS_CODE,
                origin(call),
                &config(app).sms,
                &render,
            )
            .await?;
        (DISABLE_SMS, SMS_AUTH)
    } else {
        (DISABLE_GOOGLE, GOOGLE_AUTH)
    };
    let owner = Proven {
        uid: Some(user.id),
        data: None,
    };
    let flow = app
        .flows()
        .start(kind, STEP_CODE, owner, config(app).flow_secs)
        .await?;
    Ok(envelope(false, Value::Null, Some(&flow.id), workflow))
}

/// `POST 2fa/wizard {uuid, phone | code}` (Bearer): the next step of an enrolment flow of the
/// signed-in client.
pub async fn enrol_step(app: &App, call: &Call) -> Answer {
    let user = session(app, call).await?.user;
    let obj = body(app, call)?;
    let [uuid] = required(&obj, ["uuid"])?;
    let flows = app.flows();
    let flow = flows
        .open_of(
            &uuid,
            &[ENABLE_GOOGLE, ENABLE_SMS, DISABLE_GOOGLE, DISABLE_SMS],
        )
        .await?;
    // Someone else's flow is no flow of this client's.
    if flow.uid != Some(user.id) {
        return Err(Error::Flow(flows::FlowError::Unknown).into());
    }
    let origin = origin(call);
    let cfg = config(app);
    let si = app.signin(&cfg.signin);
    let done = |flow: &Flow| envelope(true, Value::Null, Some(&flow.id), "Terminate");
    match (flow.kind.as_str(), flow.step.as_str()) {
        (ENABLE_SMS, STEP_PHONE) => {
            let [phone] = required(&obj, ["phone"])?;
            users::check_phone(&phone).map_err(Error::from)?;
            let render = sms_render(app, &user, "phone confirmation");
            app.codes()
                .send(
                    Recipient::User(user.id),
                    PHONE_VERIFY,
                    Channel::Sms,
                    &phone,
                    origin,
                    &cfg.sms,
                    &render,
                )
                .await?;
            let proven = Proven {
                uid: Some(user.id),
                data: Some(&phone),
            };
            flows.advance(&flow, STEP_CODE, proven).await?;
            Ok(envelope(false, Value::Null, Some(&flow.id), SMS_AUTH))
        }
        (ENABLE_SMS, STEP_CODE) => {
            let [code] = required(&obj, ["code"])?;
            let phone = flow
                .data
                .clone()
                .ok_or(Error::Flow(flows::FlowError::OutOfOrder))?;
            si.fresh_sms(&app.codes(), user.id, PHONE_VERIFY, &code, &cfg.sms, origin)
                .await?;
            flows.finish(&flow).await?;
            accounts::confirm_phone(app.db(), user.id, &phone, VIA).await?;
            Ok(done(&flow))
        }
        (ENABLE_GOOGLE, STEP_CODE) => {
            let [code] = required(&obj, ["code"])?;
            si.activate_totp(user.id, &code, origin).await?;
            flows.finish(&flow).await?;
            Ok(done(&flow))
        }
        (DISABLE_GOOGLE, STEP_CODE) => {
            let [code] = required(&obj, ["code"])?;
            si.verify_totp(user.id, &code, origin).await?;
            flows.finish(&flow).await?;
            switch_off(app, &user, Factor::Totp).await?;
            Ok(done(&flow))
        }
        (DISABLE_SMS, STEP_CODE) => {
            let [code] = required(&obj, ["code"])?;
            si.fresh_sms(
                &app.codes(),
                user.id,
                DISABLE_SMS_CODE,
                &code,
                &cfg.sms,
                origin,
            )
            .await?;
            flows.finish(&flow).await?;
            switch_off(app, &user, Factor::Sms).await?;
            Ok(done(&flow))
        }
        _ => Err(Error::Flow(flows::FlowError::OutOfOrder).into()),
    }
}

/// Switches the client's `factor` off (a fresh code of it proven): the core's one rule, which
/// revokes no session. Switched off already by a parallel request: not configured.
async fn switch_off(app: &App, user: &User, factor: Factor) -> Result<(), Error> {
    match accounts::switch_off(app.db(), user.id, factor, VIA).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotConfigured),
    }
}

/// A texted code of `purpose`, worded by the template set for the user's store.
fn sms_render<'a>(
    app: &'a App,
    user: &User,
    purpose: &'a str,
) -> impl Fn(&str, i64) -> Message + Sync + 'a {
    let templates = app.templates();
    let store = app.config.stores.get(user.store_id);
    move |code: &str, minutes: i64| {
        templates.code_message(Channel::Sms, store, purpose, code, minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_must_carry_a_user_agent() {
        // The document's own example.
        let doc = "eyJ1c2VyX2FnZW50IjoiTW96aWxsYVwvNS4wIChXaW5kb3dzIE5UIDEwLjA7IFdpbjY0OyB4NjQpIEFwcGxlV2ViS2l0XC81MzcuMzYgKEtIVE1MLCBsaWtlIEdlY2tvKSBDaHJvbWVcLzExOC4wLjAuMCBTYWZhcmlcLzUzNy4zNiJ9";
        assert!(check_fingerprint(doc).is_ok());
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(check_fingerprint(&b64(r#"{"user_agent":"curl"}"#)).is_ok());
        for bad in [
            "not base64!".to_owned(),
            b64("not json"),
            b64("[1]"),
            b64(r#"{"ua":"x"}"#),
            b64(r#"{"user_agent":5}"#),
        ] {
            assert!(check_fingerprint(&bad).is_err(), "{bad}");
        }
    }
}
