//! AWS clients, built at most once per process (DynamoDB's at the cold start, the others at
//! their first use), from one shared configuration:
//! region, credentials and `AWS_ENDPOINT_URL` (a local emulator) from the environment, the
//! standard retry strategy with backoff, and timeouts that fit inside a Lambda invocation.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use latchkey_core::config::TrustStore as Chosen;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// Attempts per call, first one included, with exponential backoff and jitter between them.
pub const MAX_ATTEMPTS: u32 = 4;

/// Timeouts of a function's DynamoDB calls, sized to fit a request in the function's timeout
/// (10 s in `template.yaml`): DynamoDB answers in milliseconds, so an attempt that takes a
/// second is a lost one; three attempts fit in 3 s, and a request's few sequential calls fit in
/// the function's time even when every one of them needs its retries. What runs out answers a
/// retryable 503 (see `lambda::handle_event`'s deadline).
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
pub const DYNAMODB_MAX_ATTEMPTS: u32 = 3;
/// The key set's one SSM read at a cold start. `GetParameter` allows 40 calls a second per
/// account and region by default (10,000 with SSM's higher-throughput setting, which a
/// deployment for sale-day peaks turns on: see the README): a burst of cold starts is
/// throttled, so the read retries adaptively (the client slows itself down) with up to
/// [`SSM_MAX_ATTEMPTS`] attempts, all within Lambda's 10 s for a function's initialisation.
pub const SSM_MAX_ATTEMPTS: u32 = 8;
pub const SSM_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
/// Timeouts of a function's SES and SNS calls: slower services, one call per request at most.
pub const DELIVERY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DELIVERY_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A client built on its first use (it dereferences to the client). Building one SDK client
/// takes 0.3-0.4 ms, and most functions never mail or text, nor read SSM when their keys come
/// from the environment: a cold start should not pay for clients its route does not use
/// (infra/BENCH.md).
pub type LazyClient<C> = Arc<LazyLock<C, Box<dyn FnOnce() -> C + Send>>>;

fn lazy<C>(build: impl FnOnce() -> C + Send + 'static) -> LazyClient<C> {
    Arc::new(LazyLock::new(Box::new(build)))
}

/// A client already built, where a [`LazyClient`] is wanted.
pub fn ready<C: Send + 'static>(client: C) -> LazyClient<C> {
    lazy(move || client)
}

/// The clients of one configuration. DynamoDB's is built at once (every route uses it), the
/// others when first used.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sesv2: LazyClient<aws_sdk_sesv2::Client>,
    pub sns: LazyClient<aws_sdk_sns::Client>,
    pub ssm: LazyClient<aws_sdk_ssm::Client>,
}

impl AwsClients {
    pub fn from_config(config: &SdkConfig) -> Self {
        let (ses, sns, ssm) = (config.clone(), config.clone(), config.clone());
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sesv2: lazy(move || aws_sdk_sesv2::Client::new(&ses)),
            sns: lazy(move || aws_sdk_sns::Client::new(&sns)),
            ssm: lazy(move || aws_sdk_ssm::Client::new(&ssm)),
        }
    }

    /// Clients configured from the environment, trusting the system's root certificates (the
    /// CLI: an operator may sit behind a proxy with its own certificate authority).
    pub async fn from_env() -> Self {
        Self::from_config(&base_config().load().await)
    }

    /// Clients for a Lambda function: as [`AwsClients::from_env`], but trusting the roots
    /// [`TrustRoots::for_lambda`] picks.
    pub async fn for_lambda(roots: TrustRoots) -> Result<Self, String> {
        Self::for_lambda_with(roots, |name| std::env::var(name).ok()).await
    }

    async fn for_lambda_with(
        roots: TrustRoots,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let loader = match roots {
            TrustRoots::System => base_config(),
            TrustRoots::Amazon => base_config().http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                    .tls_context(amazon_tls_context()?)
                    .build_https(),
            ),
        };
        let loader = sandbox_identity(loader, env);
        let config = loader.load().await;
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
            .timeout_config(timeouts(
                DYNAMODB_ATTEMPT_TIMEOUT,
                DYNAMODB_OPERATION_TIMEOUT,
            ))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(DYNAMODB_MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(25))
                    .with_max_backoff(Duration::from_millis(250)),
            )
            .build();
        let delivery = timeouts(DELIVERY_ATTEMPT_TIMEOUT, DELIVERY_OPERATION_TIMEOUT);
        let (ses, sns, ssm) = (config.clone(), config.clone(), config);
        let ses_timeouts = delivery.clone();
        Ok(Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sesv2: lazy(move || {
                aws_sdk_sesv2::Client::from_conf(
                    aws_sdk_sesv2::config::Builder::from(&ses)
                        .timeout_config(ses_timeouts)
                        .build(),
                )
            }),
            sns: lazy(move || {
                aws_sdk_sns::Client::from_conf(
                    aws_sdk_sns::config::Builder::from(&sns)
                        .timeout_config(delivery)
                        .build(),
                )
            }),
            ssm: lazy(move || {
                aws_sdk_ssm::Client::from_conf(
                    aws_sdk_ssm::config::Builder::from(&ssm)
                        .timeout_config(timeouts(Duration::from_secs(2), SSM_OPERATION_TIMEOUT))
                        .retry_config(
                            RetryConfig::adaptive()
                                .with_max_attempts(SSM_MAX_ATTEMPTS)
                                .with_initial_backoff(Duration::from_millis(100))
                                .with_max_backoff(Duration::from_secs(2)),
                        )
                        .build(),
                )
            }),
        })
    }
}

/// Lambda hands a function its role's credentials and its region in the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`). Wherever
/// the environment holds them (a sandbox, or `cargo lambda` given an env file), they are read
/// from there alone, as the default chains would find them first anyway; those chains would
/// first build the providers that look elsewhere (profile files, web identity with an STS
/// client of its own, ECS, IMDS), 0.3-0.5 ms of every cold start for providers a sandbox never
/// asks (infra/BENCH.md). Without them in the environment (a profile, container credentials),
/// the default chains apply.
fn sandbox_identity(
    loader: aws_config::ConfigLoader,
    env: impl Fn(&str) -> Option<String>,
) -> aws_config::ConfigLoader {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut loader = loader;
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        // A process's environment does not change under it: the values, read once, are what
        // the SDK's environment provider would read at every call.
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "lambda-environment",
        ));
    }
    if let Some(region) = var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader
}

fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// Amazon Trust Services' roots (Amazon Root CA 1-4 and the Starfield Services Root G2 that
/// cross-signs them), as published at <https://www.amazontrust.com/repository/>.
pub const AMAZON_ROOTS_PEM: &str = include_str!("../certs/amazon-trust-services.pem");

fn amazon_tls_context() -> Result<TlsContext, String> {
    TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes()))
        .build()
        .map_err(|e| format!("TLS settings: {e}"))
}

/// The root certificates a function's HTTPS client trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustRoots {
    /// Amazon Trust Services' roots, compiled in: the certificate of every AWS service endpoint
    /// outside the China regions chains to them. Loading the system's store instead costs 3-5 ms
    /// of every cold start (infra/BENCH.md), and trusts ~150 authorities where 5 will do.
    Amazon,
    /// The system's root certificates.
    System,
}

impl TrustRoots {
    /// Amazon's roots, except the system's when chosen (`LATCHKEY_TRUST_STORE=system`, parsed by
    /// the configuration), when an `AWS_ENDPOINT_URL*` sends calls elsewhere (an emulator, a
    /// proxy), or in a China region (whose endpoints use other authorities). `aws_vars` are the
    /// process's environment variables: the AWS SDK's own settings.
    pub fn for_lambda<K, V>(
        chosen: Option<Chosen>,
        aws_vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        match chosen {
            Some(Chosen::Amazon) => return Self::Amazon,
            Some(Chosen::System) => return Self::System,
            None => {}
        }
        let elsewhere = aws_vars.into_iter().any(|(key, value)| {
            let (key, value) = (key.as_ref(), value.as_ref().trim());
            match key {
                "AWS_REGION" | "AWS_DEFAULT_REGION" => value.starts_with("cn-"),
                _ => key.starts_with("AWS_ENDPOINT_URL") && !value.is_empty(),
            }
        });
        if elsewhere {
            Self::System
        } else {
            Self::Amazon
        }
    }
}

/// The shared configuration loader: retries, timeouts, everything else from the environment.
pub fn base_config() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services_five() {
        // SHA-256 fingerprints published at https://www.amazontrust.com/repository/.
        let published = [
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root G2
        ];
        let found: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM.as_bytes())
            .map(|cert| {
                let cert = cert.expect("a well-formed PEM certificate");
                Sha256::digest(cert.as_ref())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(found, published);
    }

    /// In a sandbox (credentials and region in the environment) the clients sign with the
    /// environment's credentials, session token included, in its region.
    #[tokio::test]
    async fn a_sandboxs_credentials_and_region_come_from_its_environment() {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let env = |name: &str| {
            match name {
                "AWS_ACCESS_KEY_ID" => Some("AKIDSANDBOX"),
                "AWS_SECRET_ACCESS_KEY" => Some("sandbox-secret"),
                "AWS_SESSION_TOKEN" => Some("sandbox-session"),
                "AWS_REGION" => Some("eu-west-3"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = sandbox_identity(base_config(), env).load().await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        let credentials = config
            .credentials_provider()
            .expect("a credentials provider")
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDSANDBOX");
        assert_eq!(credentials.secret_access_key(), "sandbox-secret");
        assert_eq!(credentials.session_token(), Some("sandbox-session"));
        // And the clients of a function are built on that configuration.
        let clients = AwsClients::for_lambda_with(TrustRoots::Amazon, env)
            .await
            .unwrap();
        assert_eq!(
            clients.dynamodb.config().region().map(|r| r.as_ref()),
            Some("eu-west-3")
        );
    }

    /// The lazily built clients build (the SDK panics on a configuration it cannot use, and
    /// these are first built in the middle of a request), and each is built once.
    #[tokio::test]
    async fn lazy_clients_build_on_first_use_and_once() {
        for roots in [TrustRoots::Amazon, TrustRoots::System] {
            let clients = AwsClients::for_lambda(roots).await.unwrap();
            let copy = clients.clone();
            let _: &aws_sdk_sesv2::Client = &clients.sesv2;
            let _: &aws_sdk_sns::Client = &clients.sns;
            let _: &aws_sdk_ssm::Client = &clients.ssm;
            // A clone shares the built client rather than building its own.
            let (built, shared): (&aws_sdk_ssm::Client, &aws_sdk_ssm::Client) =
                (&clients.ssm, &copy.ssm);
            assert!(std::ptr::eq(built, shared));
        }
        let config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let clients = AwsClients::from_config(&config);
        let _: &aws_sdk_sesv2::Client = &clients.sesv2;
        let _: &aws_sdk_sns::Client = &clients.sns;
        let _: &aws_sdk_ssm::Client = &clients.ssm;
    }

    #[test]
    fn functions_trust_amazon_roots_unless_calls_go_elsewhere() {
        let pick = |vars: &[(&str, &str)]| TrustRoots::for_lambda(None, vars.iter().copied());
        assert_eq!(pick(&[("AWS_REGION", "eu-west-1")]), TrustRoots::Amazon);
        assert_eq!(pick(&[("AWS_REGION", "us-gov-west-1")]), TrustRoots::Amazon);
        // Endpoints elsewhere (an emulator, a proxy), and the China regions' own authorities.
        for vars in [
            &[("AWS_ENDPOINT_URL", "https://localhost:4566")][..],
            &[("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.internal")][..],
            &[("AWS_REGION", "cn-north-1")][..],
            &[("AWS_DEFAULT_REGION", "cn-northwest-1")][..],
        ] {
            assert_eq!(pick(vars), TrustRoots::System, "{vars:?}");
        }
        // An empty endpoint variable sends nothing elsewhere.
        assert_eq!(pick(&[("AWS_ENDPOINT_URL", " ")]), TrustRoots::Amazon);
        // The operator's choice (LATCHKEY_TRUST_STORE, through the configuration) wins, in
        // either direction.
        assert_eq!(
            TrustRoots::for_lambda(Some(Chosen::System), [("AWS_REGION", "eu-west-1")]),
            TrustRoots::System
        );
        assert_eq!(
            TrustRoots::for_lambda(Some(Chosen::Amazon), [("AWS_ENDPOINT_URL", "https://x")]),
            TrustRoots::Amazon
        );
    }
}
