//! Building the application on AWS: DynamoDB store, SES mail, SNS SMS, keys from the
//! environment or SSM. Used by every Lambda function and by `latchkey --store dynamodb`.

use std::sync::Arc;

use latchkey_core::config::{Config, Environment, KeySource};
use latchkey_core::crypto::keys::{KeySet, KeySetFile};
use latchkey_core::crypto::password::PasswordHasher;
use latchkey_core::ports::{StreamQueue, SystemRng};
use latchkey_core::{App, Deps};

use crate::clients::{AwsClients, LazyClient};
use crate::dynamodb::DynamoStore;
use crate::keys::load_key_set_json;
use crate::send::{SesMailer, SnsSms};

/// The key set from its configured source (`LATCHKEY_KEYS`, `LATCHKEY_KEYS_FILE` or
/// `LATCHKEY_KEYS_SSM_PARAMETER`), and where it came from. `Ok(None)` when none is configured.
pub async fn key_set(
    source: Option<&KeySource>,
    ssm: &LazyClient<aws_sdk_ssm::Client>,
) -> Result<Option<(KeySetFile, String)>, String> {
    let (json, origin) = match source {
        None => return Ok(None),
        Some(KeySource::Json(json)) => (json.expose().to_owned(), "LATCHKEY_KEYS".to_owned()),
        Some(KeySource::File(path)) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        Some(KeySource::Ssm(name)) => (
            load_key_set_json(ssm, name).await?,
            format!("SSM parameter {name}"),
        ),
    };
    let file = KeySetFile::from_json(&json).map_err(|e| format!("{origin}: {e}"))?;
    Ok(Some((file, origin)))
}

/// Checks keys against the environment: production refuses development keys.
pub fn accept_keys(file: &KeySetFile, origin: &str, env: Environment) -> Result<KeySet, String> {
    if env == Environment::Production && file.is_development() {
        return Err(format!(
            "production refuses development keys (from {origin}); generate real ones with `latchkey keys generate --production`"
        ));
    }
    KeySet::from_file(file).map_err(|e| format!("keys from {origin}: {e}"))
}

/// The DynamoDB store of the configured table (`LATCHKEY_TABLE`).
pub fn store(clients: &AwsClients, config: &Config) -> DynamoStore {
    DynamoStore::new(clients.dynamodb.clone(), config.deployment.table.clone())
}

/// The whole application over AWS, as a Lambda function builds it at cold start.
#[allow(clippy::disallowed_methods)] // measures its own init, for the log
pub async fn aws_app_from_env() -> Result<App, String> {
    let started = std::time::Instant::now();
    let ms = |since: std::time::Instant| since.elapsed().as_secs_f64() * 1000.0;
    let config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    let roots =
        crate::clients::TrustRoots::for_lambda(config.deployment.trust_store, std::env::vars());
    let clients = AwsClients::for_lambda(roots).await?;
    let clients_ms = ms(started);
    let step = std::time::Instant::now();
    let (file, origin) = key_set(config.deployment.keys.as_ref(), &clients.ssm)
        .await?
        .ok_or(
            "no keys: set LATCHKEY_KEYS_SSM_PARAMETER (or LATCHKEY_KEYS / LATCHKEY_KEYS_FILE)",
        )?;
    let keys = accept_keys(&file, &origin, config.environment)?;
    let keys_ms = ms(step);
    let store = store(&clients, &config);
    // Open the TLS connection now, during init, not during the first request.
    let step = std::time::Instant::now();
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "DynamoDB warm-up call failed; continuing");
    }
    let warm_up_ms = ms(step);
    let step = std::time::Instant::now();
    let app = app(config, &clients, store, keys)?;
    tracing::info!(
        trust_roots = ?roots,
        clients_ms,
        keys_ms,
        warm_up_ms,
        app_ms = ms(step),
        total_ms = ms(started),
        "initialised"
    );
    Ok(app)
}

/// The application over `store`, mailing through SES and texting through SNS.
pub fn app(
    config: Config,
    clients: &AwsClients,
    store: DynamoStore,
    keys: KeySet,
) -> Result<App, String> {
    let mailer = SesMailer::new(clients.sesv2.clone(), config.mail_from.clone());
    let sms = SnsSms::new(clients.sns.clone(), config.deployment.sms_sender_id.clone());
    let hasher = PasswordHasher::new(&SystemRng)
        .map_err(|e| format!("password hasher: {e}"))?
        .limited(config.hashing);
    let recaptcha = crate::recaptcha::verifier(config.wizard.recaptcha.as_ref())?;
    Ok(App::new(Deps {
        recaptcha,
        store: Arc::new(store),
        mailer: Arc::new(mailer),
        sms: Arc::new(sms),
        // The table's stream hands every stored mail request to the `link-mailer` function.
        link_queue: Arc::new(StreamQueue),
        clock: config.clock(),
        rng: Arc::new(SystemRng),
        keys: Arc::new(keys),
        config,
        hasher,
    }))
}

/// JSON logs for CloudWatch (`LATCHKEY_LOG` filter, default `info`), without ANSI colours.
pub fn init_json_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(true)
        .try_init();
}
