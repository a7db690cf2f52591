//! SES v2 mail and SNS SMS. Throttling and brief outages are retried by the SDK's standard
//! retry strategy (exponential backoff with jitter, a bounded number of attempts, configured in
//! [`crate::clients`]) *inside one send call*, with the very same message — a retry never
//! sends a second, different code. What still fails is [`SendError::Retryable`]; refusals
//! (unverified sender, bad address, suspended account) are [`SendError::Rejected`].

use async_trait::async_trait;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sns::types::MessageAttributeValue;
use latchkey_core::ports::{Email, Mailer, SendError, Sms, SmsSender};

use crate::clients::LazyClient;

/// Throttled, a server fault or unreachable: worth trying again later. The error codes are the
/// SDK's own throttling and transient lists (what its retry strategy already retried), plus
/// each service's documented codes for throttling and internal faults.
fn classify<E: ProvideErrorMetadata>(
    service: &str,
    err: &SdkError<E, HttpResponse>,
    service_retryable_codes: &[&str],
) -> SendError {
    match err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("Unknown");
            let status = err.raw_response().map_or(0, |r| r.status().as_u16());
            let retryable = THROTTLING_ERRORS.contains(&code)
                || TRANSIENT_ERRORS.contains(&code)
                || service_retryable_codes.contains(&code)
                || status == 429
                || status >= 500;
            if retryable {
                SendError::Retryable(format!("{service}: {code}"))
            } else {
                SendError::Rejected(format!("{service}: {code}"))
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SendError::Retryable(format!("{service} unreachable"))
        }
        _ => SendError::Rejected(format!("{service}: request could not be built")),
    }
}

/// Sends email through SES v2 from one verified address.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: LazyClient<aws_sdk_sesv2::Client>,
    from: String,
}

impl SesMailer {
    pub fn new(client: LazyClient<aws_sdk_sesv2::Client>, from: impl Into<String>) -> Self {
        Self {
            client,
            from: from.into(),
        }
    }
}

fn content(text: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| SendError::Rejected(format!("SES: {e}")))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_email(&self, email: &Email) -> Result<(), SendError> {
        let mut body = Body::builder().text(content(&email.text)?);
        if let Some(html) = &email.html {
            body = body.html(content(html)?);
        }
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(body.build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                classify(
                    "SES",
                    &e,
                    &[
                        "TooManyRequestsException",
                        "LimitExceededException",
                        "InternalFailure",
                        "ServiceUnavailable",
                    ],
                )
            })
    }
}

/// Sends SMS through SNS (transactional messages).
#[derive(Clone, Debug)]
pub struct SnsSms {
    client: LazyClient<aws_sdk_sns::Client>,
    sender_id: Option<String>,
}

impl SnsSms {
    pub fn new(client: LazyClient<aws_sdk_sns::Client>, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendError::Rejected(format!("SNS: {e}")))
}

#[async_trait]
impl SmsSender for SnsSms {
    async fn send_sms(&self, sms: &Sms) -> Result<(), SendError> {
        let mut publish = self
            .client
            .publish()
            .phone_number(&sms.to)
            .message(&sms.body)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(id) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(id)?);
        }
        publish.send().await.map(|_| ()).map_err(|e| {
            classify(
                "SNS",
                &e,
                &[
                    "Throttled",
                    "InternalError",
                    "InternalErrorException",
                    "KMSThrottling",
                    "KMSThrottlingException",
                    "ServiceUnavailable",
                ],
            )
        })
    }
}
