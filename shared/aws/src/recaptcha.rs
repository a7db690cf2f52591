//! reCAPTCHA's siteverify over HTTPS: the production [`Recaptcha`] port.
//!
//! One `POST https://www.google.com/recaptcha/api/siteverify` (form: `secret`, `response`,
//! `remoteip`) per check, with a 3-second limit; `{"success": true}` passes, anything else
//! (including an answer that cannot be read) does not.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use latchkey_core::config::Recaptcha as Settings;
use latchkey_core::ports::{FakeRecaptcha, Recaptcha, SendError};

/// Google's endpoint.
pub const SITEVERIFY: &str = "https://www.google.com/recaptcha/api/siteverify";

const TIMEOUT: Duration = Duration::from_secs(3);
const MAX_ANSWER: usize = 64 * 1024;

pub struct SiteVerify {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    secret: String,
}

impl SiteVerify {
    /// A verifier calling `url` (Google's [`SITEVERIFY`] in production) with `secret`.
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("reCAPTCHA: no root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            url: url.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

/// The verifier the settings ask for: siteverify when reCAPTCHA is on, one that passes nothing
/// when it is off (nothing asks it then).
pub fn verifier(settings: Option<&Settings>) -> Result<std::sync::Arc<dyn Recaptcha>, String> {
    Ok(match settings {
        Some(s) => std::sync::Arc::new(SiteVerify::new(SITEVERIFY, &s.secret)?),
        None => std::sync::Arc::new(FakeRecaptcha::refusing()),
    })
}

#[async_trait]
impl Recaptcha for SiteVerify {
    async fn verify(&self, response: &str, ip: IpAddr) -> Result<bool, SendError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("secret", &self.secret)
            .append_pair("response", response)
            .append_pair("remoteip", &ip.to_string())
            .finish();
        let req = http::Request::post(&self.url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| SendError::Rejected(format!("siteverify request: {e}")))?;
        let call = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| SendError::Retryable(format!("siteverify: {e}")))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| SendError::Retryable(format!("siteverify answer: {e}")))?
                .to_bytes();
            if !status.is_success() {
                return Err(SendError::Retryable(format!(
                    "siteverify answered {status}"
                )));
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| SendError::Retryable("siteverify answer is not JSON".into()))?;
            Ok(answer.get("success") == Some(&serde_json::Value::Bool(true)))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| SendError::Retryable("siteverify timed out".into()))?
    }
}
