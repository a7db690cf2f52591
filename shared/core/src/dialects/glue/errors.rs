//! Glue's error shape — JSON:API `{"errors":[{"status":403,"code":"5900","detail":"..."}]}`, with
//! the seed document's codes and texts and, where it is silent, Spryker's own — and the one
//! mapping of the core's refusals onto it. `POST /token` (OAuth 2.0) answers in RFC 6749's shape
//! instead: [`GlueError::oauth`] and [`GlueError::from_oauth`].

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::identity::users::InvalidUser;
use crate::identity::{Error, Fault, Invalid, Taken};
use crate::routes::IntoResponse;
use crate::web::{self, Response};

/// A code and the detail that goes with it.
pub type Coded = (&'static str, &'static str);

// The seed document's MFA errors (5910 from its newer edition: Spryker's own text).
pub const CODE_MISSING: Coded = ("5900", "X-MFA-Code header is missing.");
pub const CODE_INVALID: Coded = ("5901", "X-MFA-Code is invalid.");
pub const TYPE_MISSING: Coded = ("5902", "MFA type is missing.");
pub const DEACTIVATION_FAILED: Coded = ("5903", "Failed to deactivate MFA.");
pub const ALREADY_ACTIVATED: Coded = ("5904", "MFA type already activated.");
pub const NO_CUSTOMER_IDENTIFIER: Coded = ("5905", "No customer identifier provided.");
pub const TYPE_NOT_FOUND: Coded = ("5906", "MFA type is not found.");
pub const CUSTOMER_NOT_FOUND: Coded = ("5907", "Customer not found.");
pub const USER_NOT_FOUND: Coded = ("5908", "User not found.");
pub const NO_USER_IDENTIFIER: Coded = ("5909", "No user identifier provided.");
pub const SENDING_FAILED: Coded = (
    "5910",
    "Something went wrong while sending your code. Please try again later or contact the system administrator.",
);
/// Sending refused by the send limits (or while the last code is blocked): nothing was sent.
pub const SENDING_THROTTLED: Coded = (
    "5910",
    "Too many codes were requested. Please wait %minutes% minutes before trying again.",
);

// Spryker's authentication errors (AuthenticationRestApi, SecurityBlockerRestApi).
pub const INVALID_ACCESS_TOKEN: Coded = ("001", "Invalid access token.");
pub const MISSING_ACCESS_TOKEN: Coded = ("002", "Missing access token.");
pub const INVALID_LOGIN: Coded = ("003", "Failed to authenticate user.");
pub const INVALID_REFRESH_TOKEN: Coded = ("004", "Failed to refresh token.");
pub const BLOCKED: Coded = (
    "4401",
    "Too many log in attempts from your address. Please wait %minutes% minutes before trying again.",
);

// Spryker's customer errors (CustomersRestApi).
pub const CUSTOMERS_NOT_FOUND: Coded = ("402", "Customer not found.");
pub const REFERENCE_MISSING: Coded = ("405", "Customer reference is missing.");
pub const PASSWORDS_DONT_MATCH: Coded = (
    "406",
    "Value in field newPassword should be identical to value in the confirmPassword field.",
);
pub const INVALID_PASSWORD: Coded = ("408", "Invalid password");
pub const EMAIL_TAKEN: Coded = ("410", "Customer with this email already exists.");
pub const UNAUTHORIZED: Coded = ("411", "Unauthorized request.");
/// Request validation (`<field> => <message>`), as Spryker's RestRequestValidator words it.
pub const VALIDATION: &str = "901";

// Spryker's framework answers (GlueApplication), which carry no code.
pub const POST_DATA_INVALID: &str = "Post data is invalid.";
pub const INVALID_TYPE: &str = "Invalid type.";
pub const NOT_FOUND: &str = "Not Found";
pub const METHOD_NOT_ALLOWED: &str = "Method Not Allowed";
pub const TOO_LARGE: &str = "Request Entity Too Large";
pub const BUSY: &str = "Service temporarily unavailable. Please try again later.";
pub const INTERNAL: &str =
    "Internal error. Details are in the latchkey log under the report id of this error.";

// Symfony's validator messages, as Spryker's request validation shows them.
pub const NOT_BLANK: &str = "This value should not be blank.";
pub const NOT_A_STRING: &str = "This value should be of type string.";
pub const NOT_SUPPORTED: &str = "This field is not supported by this server.";

pub const JSON_API: &str = "application/vnd.api+json";

/// One Glue error answer.
#[derive(Debug)]
pub struct GlueError {
    pub status: StatusCode,
    body: Value,
    content_type: &'static str,
    /// Blocked until then (Unix seconds): the detail's `%minutes%` and `Retry-After` come
    /// from it once the time is known (see [`GlueError::at`]).
    until: Option<i64>,
}

fn object(status: StatusCode, code: Option<&str>, detail: &str) -> Value {
    let mut e = serde_json::Map::new();
    e.insert("status".into(), json!(status.as_u16()));
    if let Some(code) = code {
        e.insert("code".into(), json!(code));
    }
    e.insert("detail".into(), json!(detail));
    Value::Object(e)
}

impl GlueError {
    /// One error with a code.
    pub fn coded(status: StatusCode, (code, detail): Coded) -> Self {
        Self::errors(status, vec![object(status, Some(code), detail)])
    }

    /// One error without a code (Spryker's framework errors carry none).
    pub fn plain(status: StatusCode, detail: &str) -> Self {
        Self::errors(status, vec![object(status, None, detail)])
    }

    fn errors(status: StatusCode, errors: Vec<Value>) -> Self {
        Self {
            status,
            body: json!({ "errors": errors }),
            content_type: JSON_API,
            until: None,
        }
    }

    /// Request validation failures, one error per field: 422, code 901, `<field> => <message>`.
    pub fn validation(problems: &[(&str, &str)]) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        Self::errors(
            status,
            problems
                .iter()
                .map(|(field, message)| {
                    object(status, Some(VALIDATION), &format!("{field} => {message}"))
                })
                .collect(),
        )
    }

    /// A refusal that lasts until `until`: 429 with the minutes left in the detail.
    pub fn blocked(coded: Coded, until: i64) -> Self {
        let mut e = Self::coded(StatusCode::TOO_MANY_REQUESTS, coded);
        e.until = Some(until);
        e
    }

    pub fn post_data_invalid() -> Self {
        Self::plain(StatusCode::BAD_REQUEST, POST_DATA_INVALID)
    }

    pub fn invalid_type() -> Self {
        Self::plain(StatusCode::BAD_REQUEST, INVALID_TYPE)
    }

    pub fn not_found() -> Self {
        Self::plain(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    pub fn too_large() -> Self {
        Self::plain(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)
    }

    pub fn missing_token() -> Self {
        Self::coded(StatusCode::FORBIDDEN, MISSING_ACCESS_TOKEN)
    }

    pub fn invalid_token() -> Self {
        Self::coded(StatusCode::UNAUTHORIZED, INVALID_ACCESS_TOKEN)
    }

    pub fn unauthorized() -> Self {
        Self::coded(StatusCode::FORBIDDEN, UNAUTHORIZED)
    }

    pub fn code_missing() -> Self {
        Self::coded(StatusCode::FORBIDDEN, CODE_MISSING)
    }

    pub fn code_invalid() -> Self {
        Self::coded(StatusCode::FORBIDDEN, CODE_INVALID)
    }

    pub fn bad(coded: Coded) -> Self {
        Self::coded(StatusCode::BAD_REQUEST, coded)
    }

    /// An OAuth 2.0 error (RFC 6749, section 5.2), for `POST /token`.
    pub fn oauth(status: StatusCode, error: &str, description: &str) -> Self {
        Self {
            status,
            body: json!({ "error": error, "error_description": description }),
            content_type: "application/json",
            until: None,
        }
    }

    /// A failure of the machinery: logged with a report id, answered without details.
    pub fn fault(fault: &Fault) -> Self {
        if fault.is_retryable() {
            tracing::warn!(error = %fault, "store busy");
            return Self::plain(StatusCode::SERVICE_UNAVAILABLE, BUSY);
        }
        let report = crate::web::report_fault("glue", fault);
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        let mut e = object(status, None, INTERNAL);
        if let Value::Object(map) = &mut e {
            map.insert("id".into(), json!(report));
        }
        Self::errors(status, vec![e])
    }

    /// The core's refusals in OAuth 2.0's words (`POST /token`): one mapping for that route,
    /// as exhaustive as the JSON:API one.
    pub fn from_oauth(e: Error) -> Self {
        let grant =
            |description: &str| Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description);
        match e {
            Error::InvalidCredentials
            | Error::PasswordResetRequired
            | Error::NotFound
            | Error::Flow(_) => grant("The user credentials were incorrect."),
            Error::InvalidToken | Error::TokenExpired => grant("The refresh token is invalid."),
            Error::Locked { until } | Error::RateLimited { until } => {
                let mut err = Self::oauth(
                    StatusCode::TOO_MANY_REQUESTS,
                    "invalid_grant",
                    "Too many log in attempts. Please wait %minutes% minutes before trying again.",
                );
                err.until = Some(until);
                err
            }
            Error::InvalidCode
            | Error::NotConfigured
            | Error::AlreadyConfigured
            | Error::Invalid(_)
            | Error::Taken(_)
            | Error::SendFailed { .. } => Self::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request cannot be granted.",
            ),
            Error::Fault(f) => {
                let mut err = Self::fault(&f);
                let description = if err.status == StatusCode::SERVICE_UNAVAILABLE {
                    BUSY
                } else {
                    INTERNAL
                };
                let error = if err.status == StatusCode::SERVICE_UNAVAILABLE {
                    "temporarily_unavailable"
                } else {
                    "server_error"
                };
                err.body = json!({ "error": error, "error_description": description });
                err.content_type = "application/json";
                err
            }
        }
    }

    /// The answer at `now`: a blocked refusal says how many minutes are left and sets
    /// `Retry-After`.
    pub fn at(self, now: i64) -> Response {
        let until = self.until;
        let wait = until.map(|until| (until - now).max(1));
        let minutes = wait.map(|secs| ((secs + 59) / 60).to_string());
        let mut body = self.body;
        replace_minutes(&mut body, minutes.as_deref().unwrap_or("a few"));
        let mut res = web::with_type(
            self.status,
            bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            self.content_type,
        );
        if let Some(secs) = wait
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

fn replace_minutes(v: &mut Value, minutes: &str) {
    match v {
        Value::String(s) if s.contains("%minutes%") => *s = s.replace("%minutes%", minutes),
        Value::Array(items) => items.iter_mut().for_each(|i| replace_minutes(i, minutes)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_minutes(i, minutes)),
        _ => {}
    }
}

/// The field and message of an input the core refused.
fn invalid_field(invalid: &Invalid) -> (&'static str, String) {
    match invalid {
        Invalid::User(InvalidUser::Email) => {
            ("email", "This value is not a valid email address.".into())
        }
        Invalid::User(InvalidUser::Phone) => (
            "phone",
            "This value is not a valid phone number (E.164: '+' then 8 to 15 digits).".into(),
        ),
        Invalid::User(InvalidUser::Password) => (
            "newPassword",
            "This value should have 8 to 256 characters.".into(),
        ),
        Invalid::User(InvalidUser::Username | InvalidUser::UsernameLooksLikeEmail) => {
            ("email", invalid.to_string())
        }
        Invalid::IntegrationName | Invalid::Resources | Invalid::ResourceNotHeld => {
            ("data", invalid.to_string())
        }
    }
}

/// The one mapping of the core's refusals onto Glue's answers. Routes that word a refusal
/// differently (a wrong password when changing it is 408, a blocked code 5901) map those
/// before `?`.
impl From<Error> for GlueError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidCredentials | Error::PasswordResetRequired => {
                Self::coded(StatusCode::UNAUTHORIZED, INVALID_LOGIN)
            }
            Error::Locked { until } | Error::RateLimited { until } => Self::blocked(BLOCKED, until),
            Error::InvalidCode => Self::code_invalid(),
            Error::NotConfigured => Self::bad(TYPE_NOT_FOUND),
            Error::AlreadyConfigured => Self::bad(ALREADY_ACTIVATED),
            Error::InvalidToken | Error::TokenExpired => Self::invalid_token(),
            Error::Invalid(invalid) => {
                let (field, message) = invalid_field(&invalid);
                Self::validation(&[(field, &message)])
            }
            Error::Taken(Taken::Login | Taken::IntegrationName) => {
                Self::coded(StatusCode::UNPROCESSABLE_ENTITY, EMAIL_TAKEN)
            }
            Error::NotFound => Self::coded(StatusCode::NOT_FOUND, CUSTOMERS_NOT_FOUND),
            // Glue has no multi-step flows: none of its routes gets here.
            Error::Flow(_) => Self::not_found(),
            Error::SendFailed { retryable } => {
                tracing::warn!(retryable, "code not sent");
                Self::coded(StatusCode::SERVICE_UNAVAILABLE, SENDING_FAILED)
            }
            Error::Fault(f) => Self::fault(&f),
        }
    }
}

impl From<Fault> for GlueError {
    fn from(f: Fault) -> Self {
        Self::fault(&f)
    }
}

impl From<crate::store::StoreError> for GlueError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::fault(&Fault::Store(e))
    }
}

impl From<crate::crypto::CryptoError> for GlueError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::fault(&Fault::Crypto(e))
    }
}

/// Without the time (only the route table's own answers come here, never a blocked one): the
/// minutes are left vague.
impl IntoResponse for GlueError {
    fn into_response(self) -> Response {
        let until = self.until;
        self.at(until.map_or(0, |u| u - 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: GlueError, now: i64) -> String {
        String::from_utf8(e.at(now).into_body().to_vec()).unwrap()
    }

    #[test]
    fn the_documents_example_byte_for_byte() {
        assert_eq!(
            text(GlueError::code_missing(), 0),
            r#"{"errors":[{"status":403,"code":"5900","detail":"X-MFA-Code header is missing."}]}"#
        );
    }

    #[test]
    fn blocked_answers_say_how_long() {
        let res = GlueError::blocked(BLOCKED, 1000).at(1000 - 125);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "125");
        let body = String::from_utf8(res.into_body().to_vec()).unwrap();
        assert!(body.contains("Please wait 3 minutes"), "{body}");
    }

    #[test]
    fn validation_lists_every_field() {
        let body = text(
            GlueError::validation(&[("password", NOT_BLANK), ("newPassword", NOT_BLANK)]),
            0,
        );
        assert_eq!(
            body,
            r#"{"errors":[{"status":422,"code":"901","detail":"password => This value should not be blank."},{"status":422,"code":"901","detail":"newPassword => This value should not be blank."}]}"#
        );
    }
}
