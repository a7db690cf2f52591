//! The wizard's one error shape, the same on every route:
//!
//! ```json
//! {"code": 429, "error": "too_many_attempts", "message": "...",
//!  "retryAt": "2030-03-17T17:56:40+00:00"}
//! ```
//!
//! `code` is the HTTP status (as in the success envelope), `error` a stable machine word,
//! `message` a constant sentence that names no value, `errors` (bad input only) the fields
//! refused, each with its reason, and `retryAt` (blocks only) when to try again — with the same
//! time in a `Retry-After` header (as an HTTP date). Unexpected failures answer `internal_error` with a `reportId`
//! that the log line carries.

use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{http_date, iso8601};
use crate::identity::flows::FlowError;
use crate::identity::{DISABLED, Error, Fault, Taken};
use crate::routes::IntoResponse;
use crate::web::{self, BodyError, FieldError, Response};

pub const INVALID_CREDENTIALS: &str = "The email or password is incorrect.";
pub const TOO_MANY_ATTEMPTS: &str =
    "Too many failed attempts. Sign-in is blocked for a while; try again after retryAt.";
pub const FACTOR_DISABLED: &str = "This sign-in method is disabled after too many failed attempts in a row. Ask an administrator to unlock it, or set it up again.";
pub const INVALID_CODE: &str = "The code is wrong, expired or already used.";
pub const NOT_AVAILABLE: &str = "That two-factor method is not set up for this account.";
pub const ALREADY_CONFIGURED: &str = "That two-factor method is already set up.";
pub const INVALID_TOKEN: &str = "The token is invalid or has been revoked.";
pub const TOKEN_EXPIRED: &str = "The token has expired. Sign in again.";
pub const UNKNOWN_FLOW: &str =
    "No sign-in flow has this uuid. Start a new one with GET /api/v2/my/signin/wizard.";
pub const FLOW_EXPIRED: &str =
    "This flow has expired. Start a new one with GET /api/v2/my/signin/wizard.";
pub const FLOW_FINISHED: &str = "This flow is already finished. Start a new one.";
pub const OUT_OF_ORDER: &str = "This step does not come next in this flow.";
pub const INVALID_INPUT: &str = "The request is invalid; see errors.";
pub const MALFORMED: &str = "The request body is not a JSON object.";
pub const TOO_LARGE: &str = "The request body is too large.";
pub const NO_ROUTE: &str = "No such route.";
pub const WRONG_METHOD: &str = "This route does not take that method.";
pub const RECAPTCHA_FAILED: &str = "The reCAPTCHA check failed.";
pub const NOT_OFFERED: &str = "This deployment does not offer that.";
pub const TAKEN: &str = "That is already taken.";
pub const NOT_FOUND: &str = "Not found.";
pub const SEND_FAILED: &str = "The message could not be sent. Try again later.";
pub const BUSY: &str = "The service is busy. Try again shortly.";
pub const INTERNAL: &str = "Internal error. The reportId identifies it in the log.";

/// One error answer of the wizard (boxed: handlers return it in every `Result`).
#[derive(Debug)]
pub struct WizardError(Box<Answer>);

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    error: &'static str,
    message: String,
    extra: Map<String, Value>,
    retry_at: Option<i64>,
}

impl WizardError {
    pub fn new(status: StatusCode, error: &'static str, message: &str) -> Self {
        Self(Box::new(Answer {
            status,
            error,
            message: message.to_owned(),
            extra: Map::new(),
            retry_at: None,
        }))
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    fn with(mut self, name: &str, value: Value) -> Self {
        self.0.extra.insert(name.to_owned(), value);
        self
    }

    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", NO_ROUTE)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            TOO_LARGE,
        )
    }

    pub fn body(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::too_large(),
            BodyError::Malformed | BodyError::NotAnObject => {
                Self::new(StatusCode::BAD_REQUEST, "malformed_json", MALFORMED)
            }
        }
    }

    /// Fields refused, each named with its reason.
    pub fn fields(errors: &[(&'static str, String)]) -> Self {
        let map: Map<String, Value> = errors
            .iter()
            .map(|(field, why)| ((*field).to_owned(), Value::String(why.clone())))
            .collect();
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", INVALID_INPUT)
            .with("errors", Value::Object(map))
    }

    pub fn field(field: &'static str, why: &str) -> Self {
        Self::fields(&[(field, why.to_owned())])
    }

    pub fn from_field(e: &FieldError) -> (&'static str, String) {
        match e {
            FieldError::Missing(f) => (*f, "required".to_owned()),
            FieldError::WrongType { field, expected } => (*field, format!("must be a {expected}")),
        }
    }

    pub fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", INVALID_TOKEN)
    }

    pub fn recaptcha_failed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "recaptcha_failed",
            RECAPTCHA_FAILED,
        )
    }

    pub fn not_offered() -> Self {
        Self::new(StatusCode::FORBIDDEN, "not_offered", NOT_OFFERED)
    }

    fn blocked(until: i64) -> Self {
        if until == DISABLED {
            return Self::new(StatusCode::FORBIDDEN, "factor_disabled", FACTOR_DISABLED);
        }
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            TOO_MANY_ATTEMPTS,
        )
        .with("retryAt", Value::String(iso8601(until)));
        e.0.retry_at = Some(until);
        e
    }

    /// A failure of the machinery: logged with a report id, answered without details.
    pub fn fault(fault: &Fault) -> Self {
        if fault.is_retryable() {
            tracing::warn!(error = %fault, "store busy");
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", BUSY);
        }
        let report = crate::web::report_fault("wizard", fault);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            INTERNAL,
        )
        .with("reportId", Value::String(report))
    }
}

/// The one mapping of the core's refusals onto the wizard's answers.
impl From<Error> for WizardError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        match e {
            Error::InvalidCredentials | Error::PasswordResetRequired => {
                Self::new(S::UNAUTHORIZED, "invalid_credentials", INVALID_CREDENTIALS)
            }
            Error::Locked { until } | Error::RateLimited { until } => Self::blocked(until),
            Error::InvalidCode => Self::new(S::UNAUTHORIZED, "invalid_code", INVALID_CODE),
            Error::NotConfigured => Self::new(S::BAD_REQUEST, "not_available", NOT_AVAILABLE),
            Error::AlreadyConfigured => {
                Self::new(S::CONFLICT, "already_configured", ALREADY_CONFIGURED)
            }
            Error::InvalidToken => Self::invalid_token(),
            Error::TokenExpired => Self::new(S::UNAUTHORIZED, "token_expired", TOKEN_EXPIRED),
            Error::Invalid(invalid) => Self::new(S::BAD_REQUEST, "invalid_input", INVALID_INPUT)
                .with("errors", json!({ "input": invalid.to_string() })),
            Error::Taken(Taken::Login | Taken::IntegrationName) => {
                Self::new(S::CONFLICT, "taken", TAKEN)
            }
            Error::NotFound => Self::new(S::NOT_FOUND, "not_found", NOT_FOUND),
            Error::SendFailed { retryable } => {
                tracing::warn!(retryable, "message not sent");
                let status = if retryable {
                    S::SERVICE_UNAVAILABLE
                } else {
                    S::INTERNAL_SERVER_ERROR
                };
                Self::new(status, "send_failed", SEND_FAILED)
            }
            Error::Flow(FlowError::Unknown) => {
                Self::new(S::NOT_FOUND, "unknown_flow", UNKNOWN_FLOW)
            }
            Error::Flow(FlowError::Expired) => Self::new(S::GONE, "flow_expired", FLOW_EXPIRED),
            Error::Flow(FlowError::Finished) => {
                Self::new(S::CONFLICT, "flow_finished", FLOW_FINISHED)
            }
            Error::Flow(FlowError::OutOfOrder) => {
                Self::new(S::CONFLICT, "step_out_of_order", OUT_OF_ORDER)
            }
            Error::Fault(f) => Self::fault(&f),
        }
    }
}

impl IntoResponse for WizardError {
    fn into_response(self) -> Response {
        let answer = *self.0;
        let mut body = Map::new();
        body.insert("code".into(), json!(answer.status.as_u16()));
        body.insert("error".into(), json!(answer.error));
        body.insert("message".into(), json!(answer.message));
        body.extend(answer.extra);
        let mut res = web::json(answer.status, &Value::Object(body));
        if let Some(at) = answer.retry_at
            && let Ok(v) = HeaderValue::from_str(&http_date(at))
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

impl From<Fault> for WizardError {
    fn from(f: Fault) -> Self {
        Self::fault(&f)
    }
}

impl From<crate::store::StoreError> for WizardError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::fault(&Fault::Store(e))
    }
}

impl From<crate::crypto::CryptoError> for WizardError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::fault(&Fault::Crypto(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: WizardError) -> (StatusCode, String, Option<String>) {
        let res = e.into_response();
        let retry = res
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (
            res.status(),
            String::from_utf8(res.into_body().to_vec()).unwrap(),
            retry,
        )
    }

    #[test]
    fn one_shape_for_every_error() {
        let (status, body, _) = text(Error::InvalidCredentials.into());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            r#"{"code":401,"error":"invalid_credentials","message":"The email or password is incorrect."}"#
        );
        let (status, body, retry) = text(
            Error::Locked {
                until: 1_900_000_600,
            }
            .into(),
        );
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("Sun, 17 Mar 2030 17:56:40 GMT"));
        assert!(
            body.ends_with(r#""retryAt":"2030-03-17T17:56:40+00:00"}"#),
            "{body}"
        );
        let (status, body, _) = text(WizardError::field("device_fingerprint", "bad"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains(r#""errors":{"device_fingerprint":"bad"}"#),
            "{body}"
        );
        let (status, _, _) = text(Error::Locked { until: DISABLED }.into());
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
