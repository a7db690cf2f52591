//! Magento's error shape — `{"message": ..., "parameters": ...}` (and `errors` for several input
//! errors) — with the vendor's own texts, and the one mapping from core errors to it.

use http::StatusCode;
use serde_json::{Value, json};

use crate::identity::{Error, Fault, Invalid, Taken};
use crate::routes::IntoResponse;
use crate::web::{self, BodyError, FieldError, Response};

pub const SIGN_IN_INCORRECT: &str = "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later.";
pub const USE_PROVIDER: &str = "Please use the 2fa provider-specific endpoints to obtain a token.";
pub const MUST_CONFIGURE: &str = "You are required to configure personal Two-Factor Authorization in order to login. Please check your email.";
pub const INVALID_CODE: &str = "Invalid code.";
pub const INVALID_TFA_TOKEN: &str = "Invalid two-factor authorization token";
pub const PROVIDER_NOT_ALLOWED: &str = "Provider is not allowed.";
pub const PROVIDER_NOT_CONFIGURED: &str = "Provider is not configured.";
pub const PROVIDER_ALREADY_CONFIGURED: &str = "Provider is already configured.";
pub const NOT_AUTHORIZED: &str = "The consumer isn't authorized to access %resources.";
pub const TOKEN_EXPIRED: &str = "The token has expired. Please sign in again.";
pub const NO_ROUTE: &str = "Request does not match any route.";
pub const DECODING: &str = "Decoding error.";
pub const REQUIRED: &str = "\"%fieldName\" is required. Enter and try again.";
pub const SEVERAL_INPUT_ERRORS: &str = "One or more input exceptions have occurred.";
pub const WRONG_TYPE: &str = "The \"%fieldName\" value's type is invalid. The \"%type\" type was expected. Verify and try again.";
pub const STORE_NOT_FOUND: &str =
    "The store that was requested wasn't found. Verify the store and try again.";
pub const TOO_LARGE: &str = "The request body is too large.";
pub const SEND_FAILED: &str = "Failed to send the message. Please contact the administrator";
pub const BUSY: &str = "The service is temporarily unavailable. Please try again later.";
pub const NO_SUCH_ENTITY: &str =
    "The entity that was requested doesn't exist. Verify the entity and try again.";
pub const USER_EXISTS: &str = "A user with the same user name or email already exists.";
pub const INTEGRATION_EXISTS: &str = "The integration with name \"%1\" exists.";
pub const INTERNAL: &str =
    "Internal Error. Details are available in the latchkey log. Report ID: %1";

/// One Magento error answer.
#[derive(Debug)]
pub struct MagentoError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds to send as `Retry-After` (answers that say "try again shortly").
    pub retry_after: Option<u32>,
}

impl MagentoError {
    pub fn new(status: StatusCode, message: &str) -> Self {
        Self::from_body(status, json!({ "message": message }))
    }

    pub fn with_parameters(status: StatusCode, message: &str, parameters: Value) -> Self {
        Self::from_body(
            status,
            json!({ "message": message, "parameters": parameters }),
        )
    }

    fn from_body(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    pub fn sign_in_incorrect() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, SIGN_IN_INCORRECT)
    }

    pub fn not_authorized(resource: &str) -> Self {
        Self::with_parameters(
            StatusCode::UNAUTHORIZED,
            NOT_AUTHORIZED,
            json!({ "resources": resource }),
        )
    }

    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, NO_ROUTE)
    }

    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)
    }

    pub fn body(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::too_large(),
            BodyError::Malformed | BodyError::NotAnObject => {
                Self::new(StatusCode::BAD_REQUEST, DECODING)
            }
        }
    }

    /// Input errors, one or several, as Magento's validators word them.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let one = |e: &FieldError| match e {
            FieldError::Missing(field) => {
                json!({ "message": REQUIRED, "parameters": { "fieldName": field } })
            }
            FieldError::WrongType { field, expected } => {
                json!({ "message": WRONG_TYPE, "parameters": { "fieldName": field, "type": expected } })
            }
        };
        match errors.as_slice() {
            [single] => Self::from_body(StatusCode::BAD_REQUEST, one(single)),
            many => Self::from_body(
                StatusCode::BAD_REQUEST,
                json!({
                    "message": SEVERAL_INPUT_ERRORS,
                    "errors": many.iter().map(one).collect::<Vec<_>>(),
                }),
            ),
        }
    }

    /// A failure of the machinery: logged with a report id, answered without details. One
    /// that may pass (the store throttling, every hashing slot busy) is a 503 with
    /// `Retry-After`.
    pub fn fault(fault: &Fault) -> Self {
        if fault.is_retryable() {
            tracing::warn!(error = %fault, "busy: answered 503");
            let mut busy = Self::new(StatusCode::SERVICE_UNAVAILABLE, BUSY);
            busy.retry_after = Some(1);
            return busy;
        }
        let report = crate::web::report_fault("webapi", fault);
        Self::with_parameters(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, json!([report]))
    }
}

/// The one mapping of the core's refusals onto Magento's answers. Every reason a stranger could
/// probe at sign-in (unknown user, wrong password, locked, rate limited, reset required) gets
/// the same words.
impl From<Error> for MagentoError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidCredentials
            | Error::Locked { .. }
            | Error::RateLimited { .. }
            | Error::PasswordResetRequired => Self::sign_in_incorrect(),
            Error::InvalidCode => Self::new(StatusCode::UNAUTHORIZED, INVALID_CODE),
            Error::NotConfigured => Self::new(StatusCode::BAD_REQUEST, PROVIDER_NOT_CONFIGURED),
            Error::AlreadyConfigured => {
                Self::new(StatusCode::BAD_REQUEST, PROVIDER_ALREADY_CONFIGURED)
            }
            Error::InvalidToken => Self::not_authorized(""),
            Error::TokenExpired => Self::new(StatusCode::UNAUTHORIZED, TOKEN_EXPIRED),
            Error::Invalid(invalid) => Self::invalid(&invalid),
            Error::Taken(Taken::Login) => Self::new(StatusCode::BAD_REQUEST, USER_EXISTS),
            Error::Taken(Taken::IntegrationName) => {
                Self::with_parameters(StatusCode::BAD_REQUEST, INTEGRATION_EXISTS, json!([""]))
            }
            Error::NotFound | Error::Flow(_) => Self::new(StatusCode::NOT_FOUND, NO_SUCH_ENTITY),
            Error::SendFailed { retryable } => {
                tracing::warn!(retryable, "message not sent");
                if retryable {
                    let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, SEND_FAILED);
                    e.retry_after = Some(1);
                    e
                } else {
                    Self::new(StatusCode::INTERNAL_SERVER_ERROR, SEND_FAILED)
                }
            }
            Error::Fault(f) => Self::fault(&f),
        }
    }
}

impl MagentoError {
    /// Input refused by a rule of the core: the rule's own words, which name no value.
    pub fn invalid(invalid: &Invalid) -> Self {
        Self::new(StatusCode::BAD_REQUEST, &invalid.to_string())
    }
}

impl IntoResponse for MagentoError {
    fn into_response(self) -> Response {
        let mut res = web::json(self.status, &self.body);
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        res
    }
}

impl From<Fault> for MagentoError {
    fn from(f: Fault) -> Self {
        MagentoError::fault(&f)
    }
}

impl From<crate::store::StoreError> for MagentoError {
    fn from(e: crate::store::StoreError) -> Self {
        MagentoError::fault(&Fault::Store(e))
    }
}

impl From<crate::crypto::CryptoError> for MagentoError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        MagentoError::fault(&Fault::Crypto(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_text(e: MagentoError) -> String {
        use crate::routes::IntoResponse;
        String::from_utf8(e.into_response().into_body().to_vec()).unwrap()
    }

    #[test]
    fn wire_shapes_match_magento_byte_for_byte() {
        assert_eq!(
            body_text(MagentoError::sign_in_incorrect()),
            r#"{"message":"The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."}"#
        );
        assert_eq!(
            body_text(MagentoError::with_parameters(
                StatusCode::UNAUTHORIZED,
                USE_PROVIDER,
                json!({"active_providers": ["google"]})
            )),
            r#"{"message":"Please use the 2fa provider-specific endpoints to obtain a token.","parameters":{"active_providers":["google"]}}"#
        );
    }

    #[test]
    fn several_missing_fields_are_listed_in_order() {
        let e = MagentoError::fields(vec![
            FieldError::Missing("username"),
            FieldError::Missing("password"),
        ]);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body_text(e),
            r#"{"message":"One or more input exceptions have occurred.","errors":[{"message":"\"%fieldName\" is required. Enter and try again.","parameters":{"fieldName":"username"}},{"message":"\"%fieldName\" is required. Enter and try again.","parameters":{"fieldName":"password"}}]}"#
        );
    }
}
