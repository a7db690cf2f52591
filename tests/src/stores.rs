//! Store factories for the contract suite, and the AWS emulator the DynamoDB ones run on:
//! its clients, and its record of the mail and text messages sent through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use latchkey_core::store::{MemoryStore, Store};
use latchkey_embedded::store::SqliteStore;

/// A namespace no other test in this run uses (process id + counter).
#[allow(clippy::disallowed_methods)] // the wall clock names tables apart; it times nothing
pub fn namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    // The process id alone repeats: ids are reused within a run of hundreds of processes, and
    // an emulator kept between runs still holds the tables of the last one. The start time of
    // the process (to the nanosecond) tells two holders of one id apart.
    static STARTED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let started = STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!(
        "t{}-{started:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn memory_store() -> (Arc<dyn Store>, String, ()) {
    (Arc::new(MemoryStore::new()), namespace(), ())
}

pub async fn sqlite_store() -> (Arc<dyn Store>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("latchkey.db")).expect("open sqlite store");
    (Arc::new(store), namespace(), dir)
}

/// The local AWS emulator `./scripts/test` starts for DynamoDB and SSM (`moto_server`), as
/// `LATCHKEY_TEST_AWS_ENDPOINT`.
pub fn aws_endpoint() -> String {
    std::env::var("LATCHKEY_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "LATCHKEY_TEST_AWS_ENDPOINT is not set: run the tests with ./scripts/test, which starts moto_server"
        )
    })
}

/// The emulator `./scripts/test` starts for SES and SNS (`LATCHKEY_TEST_MAIL_ENDPOINT`; the
/// DynamoDB one when unset). A second emulator, because reading what was sent means moto's
/// `/moto-api/data.json`, which serialises every model of its process — every table and item of
/// the whole run — one request at a time: on the DynamoDB emulator that read stalls every
/// DynamoDB call queued behind it for seconds.
pub fn mail_endpoint() -> String {
    std::env::var("LATCHKEY_TEST_MAIL_ENDPOINT").unwrap_or_else(|_| aws_endpoint())
}

/// The environment that points the AWS SDK of a function or of the CLI at the emulators.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", aws_endpoint()),
        ("AWS_ENDPOINT_URL_SESV2", mail_endpoint()),
        ("AWS_ENDPOINT_URL_SNS", mail_endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// AWS clients pointed at the emulators, with dummy credentials and a fixed region, and no SDK
/// retries: the emulator handles one request at a time, so under a test's load a request may
/// wait in its queue past the SDK's attempt timeout, and a retried conditional `ADD` that had in
/// fact been applied would count twice — which DynamoDB's own idempotency rules do not let
/// happen in production, but would make a race test lie. One attempt, with time to wait.
pub async fn aws_clients() -> latchkey_aws::clients::AwsClients {
    let at = |endpoint: String| async move {
        configure(latchkey_aws::clients::base_config(), &endpoint)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(std::time::Duration::from_secs(60))
                    .operation_timeout(std::time::Duration::from_secs(60))
                    .build(),
            )
            .load()
            .await
    };
    let (aws, mail) = (at(aws_endpoint()).await, at(mail_endpoint()).await);
    use latchkey_aws::clients::ready;
    latchkey_aws::clients::AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::new(&aws),
        ssm: ready(aws_sdk_ssm::Client::new(&aws)),
        sesv2: ready(aws_sdk_sesv2::Client::new(&mail)),
        sns: ready(aws_sdk_sns::Client::new(&mail)),
    }
}

/// AWS clients, configured as the functions configure theirs (retries and timeouts included),
/// pointed at `endpoint`.
pub async fn aws_clients_at(endpoint: &str) -> latchkey_aws::clients::AwsClients {
    let config = configure(latchkey_aws::clients::base_config(), endpoint)
        .load()
        .await;
    latchkey_aws::clients::AwsClients::from_config(&config)
}

fn configure(loader: aws_config::ConfigLoader, endpoint: &str) -> aws_config::ConfigLoader {
    loader
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "latchkey-tests",
        ))
}

/// A DynamoDB store on the emulator: one table per test process, created on first use.
pub async fn dynamodb_table(table: &str) -> latchkey_aws::dynamodb::DynamoStore {
    let store = latchkey_aws::dynamodb::DynamoStore::new(aws_clients().await.dynamodb, table);
    store
        .create_table_if_missing()
        .await
        .expect("create the test table on moto_server");
    store
}

pub async fn dynamodb_store() -> (Arc<dyn Store>, String, ()) {
    let table = format!("latchkey-contract-{}", std::process::id());
    (Arc::new(dynamodb_table(&table).await), namespace(), ())
}

/// What the emulator recorded under `data.json`'s `service`/`kind` that `keep` selects.
async fn recorded(
    service: &str,
    kind: &str,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let data: serde_json::Value = crate::http()
        .get(format!("{}/moto-api/data.json", mail_endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data[service][kind]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| keep(m))
        .cloned()
        .collect()
}

/// The mail SES accepted for `to`, from the emulator's own record of it.
pub async fn ses_sent_to(to: &str) -> Vec<serde_json::Value> {
    recorded("ses", "Message", |m| {
        m["destinations"]["ToAddresses"][0] == to
    })
    .await
}

/// The text messages SNS accepted for `phone`, from the emulator's own record of them.
pub async fn sns_sent_to(phone: &str) -> Vec<serde_json::Value> {
    recorded("sns", "SMS", |m| m["phone_number"] == phone).await
}

/// Verifies `from` as an SES identity on the emulator: SES sends only from verified ones.
pub async fn verify_ses_sender(from: &str) {
    aws_clients()
        .await
        .sesv2
        .create_email_identity()
        .email_identity(from)
        .send()
        .await
        .expect("verify the sender on moto_server");
}
