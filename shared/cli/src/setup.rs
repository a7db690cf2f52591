//! Building the application for the command line: settings, keys, store, outbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey_core::config::Config;
use latchkey_core::crypto::keys::KeySet;
use latchkey_core::crypto::password::PasswordHasher;
use latchkey_core::ports::{Clock, SystemClock, SystemRng};
use latchkey_core::{App, Deps};
use latchkey_embedded::outbox::Outbox;
use latchkey_embedded::store::SqliteStore;

use crate::keys;

/// What the commands share: where data lives.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded store, development keys and outbox.
    #[arg(
        long,
        env = "LATCHKEY_DATA_DIR",
        default_value = "./.latchkey",
        global = true
    )]
    pub data_dir: PathBuf,
}

/// A ready application and the local pieces the server also needs.
pub struct Local {
    pub app: App,
    pub store: Arc<SqliteStore>,
    pub outbox: Arc<Outbox>,
    pub data_dir: PathBuf,
}

pub async fn local(args: &StoreArgs) -> Result<Local, String> {
    let config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    let (key_file, origin) = keys::load(&data_dir, config.environment)?;
    if matches!(origin, keys::Origin::Generated(_)) {
        tracing::warn!(
            "generated development keys in {} (development only: production needs LATCHKEY_KEYS)",
            data_dir.join("keys.json").display()
        );
    }
    let key_set = KeySet::from_file(&key_file).map_err(|e| format!("keys from {origin}: {e}"))?;
    let store = Arc::new(open_store(&data_dir).await?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let outbox = Arc::new(Outbox::new(data_dir.join("outbox.jsonl"), clock.clone()));
    let hasher = PasswordHasher::new(&SystemRng).map_err(|e| format!("password hasher: {e}"))?;
    let app = App::new(Deps {
        store: store.clone(),
        mailer: outbox.clone(),
        sms: outbox.clone(),
        clock,
        rng: Arc::new(SystemRng),
        keys: Arc::new(key_set),
        config,
        hasher,
    });
    Ok(Local {
        app,
        store,
        outbox,
        data_dir,
    })
}

async fn open_store(data_dir: &Path) -> Result<SqliteStore, String> {
    let path = data_dir.join("latchkey.db");
    SqliteStore::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))
}
