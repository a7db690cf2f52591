//! Building the application for the command line: settings, keys, store, outbox.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey_core::config::{Config, StoreKind};
use latchkey_core::crypto::keys::KeySet;
use latchkey_core::crypto::password::PasswordHasher;
use latchkey_core::ports::{Clock, LinkQueue, SystemRng};
use latchkey_core::store::Key;
use latchkey_core::{App, Deps};
use latchkey_embedded::outbox::Outbox;
use latchkey_embedded::store::SqliteStore;
use tokio::sync::mpsc;

use crate::keys;

/// Which store the commands work on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// SQLite under `--data-dir`: nothing to set up.
    Embedded,
    /// The DynamoDB table `--table`, with the AWS settings of the environment (region,
    /// credentials, `AWS_ENDPOINT_URL`); mail goes out through SES, SMS through SNS.
    Dynamodb,
}

/// What the commands share: where data lives. Each flag overrides its setting
/// (`LATCHKEY_DATA_DIR`, `LATCHKEY_STORE`, `LATCHKEY_TABLE`), read through the configuration.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded store, development keys and outbox [default: LATCHKEY_DATA_DIR, else ./.latchkey].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// `embedded` (local SQLite) or `dynamodb` (a deployed stack's table) [default: LATCHKEY_STORE, else embedded].
    #[arg(long, value_enum, global = true)]
    pub store: Option<StoreChoice>,
    /// DynamoDB table, with `--store dynamodb` (the stack's `TableName` output) [default: LATCHKEY_TABLE, else latchkey].
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// With `--store dynamodb`: create the table (on demand, TTL on) if it does not exist,
    /// for a local emulator. Deployed stacks create theirs from `template.yaml`.
    #[arg(long, global = true)]
    pub create_table: bool,
}

/// A ready application and the local pieces the server also needs.
pub struct Local {
    pub app: App,
    /// The embedded store, which the server sweeps now and then (DynamoDB has TTL).
    pub sqlite: Option<Arc<SqliteStore>>,
    /// The local outbox, when mail and SMS stay on this machine.
    pub outbox: Option<Arc<Outbox>>,
    /// Where the data is, for the start-up line.
    pub location: String,
    /// Requests to email login links, for the server's in-process mailer (embedded store only:
    /// on DynamoDB the table's stream feeds the `link-mailer` function).
    pub mail_requests: Option<mpsc::UnboundedReceiver<Key>>,
}

/// Tells the local server's mailer of each stored request.
struct ChannelQueue(mpsc::UnboundedSender<Key>);

impl LinkQueue for ChannelQueue {
    fn requested(&self, key: &Key) {
        // The receiver lives as long as the server; an admin command has none, and its
        // requests wait for the server's sweep.
        let _ = self.0.send(key.clone());
    }
}

/// The application for `latchkey serve` on `addr`: links and emailed instructions point at
/// `http://<addr>` unless `LATCHKEY_PUBLIC_URL` says otherwise.
pub async fn serving(
    args: &StoreArgs,
    mut config: Config,
    addr: SocketAddr,
) -> Result<Local, String> {
    if !config.public_url_set {
        config.public_url = format!("http://{addr}");
    }
    local_with(args, config).await
}

/// The store flags with the settings filled in.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub data_dir: PathBuf,
    pub store: StoreKind,
    pub table: String,
    pub create_table: bool,
}

impl StoreArgs {
    pub fn resolve(&self, config: &Config) -> Resolved {
        let d = &config.deployment;
        Resolved {
            data_dir: self.data_dir.clone().unwrap_or_else(|| d.data_dir.clone()),
            store: match self.store {
                Some(StoreChoice::Embedded) => StoreKind::Embedded,
                Some(StoreChoice::Dynamodb) => StoreKind::Dynamodb,
                None => d.store,
            },
            table: self.table.clone().unwrap_or_else(|| d.table.clone()),
            create_table: self.create_table,
        }
    }
}

/// The settings, or the reason they do not parse.
pub fn config() -> Result<Config, String> {
    Config::from_env().map_err(|e| format!("configuration: {e}"))
}

pub async fn local(args: &StoreArgs) -> Result<Local, String> {
    let config = config()?;
    local_with(args, config).await
}

async fn local_with(args: &StoreArgs, config: Config) -> Result<Local, String> {
    let args = &args.resolve(&config);
    if args.store == StoreKind::Dynamodb {
        return on_dynamodb(args, config).await;
    }
    let data_dir = args.data_dir.clone();
    private_dir(&data_dir)?;
    let key_set = key_set(&data_dir, &config)?;
    let store = Arc::new(open_store(&data_dir).await?);
    let clock: Arc<dyn Clock> = config.clock();
    let outbox = Arc::new(Outbox::new(data_dir.join("outbox.jsonl"), clock.clone()));
    let hasher = PasswordHasher::new(&SystemRng)
        .map_err(|e| format!("password hasher: {e}"))?
        .limited(config.hashing);
    let recaptcha = latchkey_aws::recaptcha::verifier(config.wizard.recaptcha.as_ref())?;
    let (queue, mail_requests) = mpsc::unbounded_channel();
    let app = App::new(Deps {
        recaptcha,
        store: store.clone(),
        mailer: outbox.clone(),
        sms: outbox.clone(),
        link_queue: Arc::new(ChannelQueue(queue)),
        clock,
        rng: Arc::new(SystemRng),
        keys: Arc::new(key_set),
        config,
        hasher,
    });
    Ok(Local {
        app,
        sqlite: Some(store),
        outbox: Some(outbox),
        location: format!("embedded store in {}", data_dir.display()),
        mail_requests: Some(mail_requests),
    })
}

fn key_set(data_dir: &Path, config: &Config) -> Result<KeySet, String> {
    let (key_file, origin) = keys::load(data_dir, config)?;
    if matches!(origin, keys::Origin::Generated(_)) {
        tracing::warn!(
            "generated development keys in {} (development only: production needs LATCHKEY_KEYS)",
            data_dir.join("keys.json").display()
        );
    }
    KeySet::from_file_checked(&key_file).map_err(|e| format!("keys from {origin}: {e}"))
}

/// The application on DynamoDB + SES + SNS: keys from `LATCHKEY_KEYS_SSM_PARAMETER` as the
/// functions read them, or else as for the embedded store.
async fn on_dynamodb(args: &Resolved, config: Config) -> Result<Local, String> {
    use latchkey_aws::{clients::AwsClients, dynamodb::DynamoStore, setup};
    let clients = AwsClients::from_env().await;
    let key_set = match setup::key_set(config.deployment.keys.as_ref(), &clients.ssm).await? {
        Some((file, origin)) => {
            let keys = setup::accept_keys(&file, &origin, config.environment)?;
            keys.check_private_keys()
                .map_err(|e| format!("keys from {origin}: {e}"))?;
            keys
        }
        // A local emulator's table: the development keys of the data dir will do.
        None if args.create_table => {
            private_dir(&args.data_dir)?;
            key_set(&args.data_dir, &config)?
        }
        // A deployed stack's table: other keys would seal secrets and sign tokens that its
        // functions cannot read.
        None => {
            return Err(
                "--store dynamodb needs the stack's keys: set LATCHKEY_KEYS_SSM_PARAMETER to the stack's \
                 KeysParameterName output (or LATCHKEY_KEYS / LATCHKEY_KEYS_FILE)"
                    .into(),
            );
        }
    };
    let store = DynamoStore::new(clients.dynamodb.clone(), args.table.clone());
    if args.create_table {
        store
            .create_table_if_missing()
            .await
            .map_err(|e| format!("creating table {}: {e}", args.table))?;
    }
    store.ping().await.map_err(|e| {
        format!(
            "DynamoDB table {}: {e} (check the AWS region and credentials, or pass --create-table for a local emulator)",
            args.table
        )
    })?;
    let location = format!("DynamoDB table {}", args.table);
    Ok(Local {
        app: setup::app(config, &clients, store, key_set)?,
        sqlite: None,
        outbox: None,
        location,
        mail_requests: None,
    })
}

/// The files of a data dir: the store (with SQLite's write-ahead log and shared memory), the
/// development keys and the outbox.
pub const DATA_FILES: [&str; 5] = [
    "latchkey.db",
    "latchkey.db-wal",
    "latchkey.db-shm",
    "keys.json",
    "outbox.jsonl",
];

/// Creates the data dir readable by its owner only (0700), and takes group and other access
/// away from it and its files (0600) where an earlier version or a hand left them open: they
/// hold password hashes, sealed secrets, keys and live set-up tokens.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    let created = !dir.exists();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        restrict(dir, 0o700, created)?;
        for name in DATA_FILES {
            let path = dir.join(name);
            if path.exists() {
                restrict(&path, 0o600, false)?;
            }
        }
    }
    Ok(())
}

/// Sets `path`'s mode to `mode` if group or others have any access to it.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32, quiet: bool) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let current = meta.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("making {} private: {e}", path.display()))?;
    if !quiet {
        tracing::warn!(
            "{} was readable by others ({current:o}); now {mode:o}",
            path.display()
        );
    }
    Ok(())
}

async fn open_store(data_dir: &Path) -> Result<SqliteStore, String> {
    let path = data_dir.join("latchkey.db");
    SqliteStore::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))
}
