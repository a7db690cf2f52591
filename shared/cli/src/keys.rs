//! Where the key set comes from: `LATCHKEY_KEYS` (JSON), `LATCHKEY_KEYS_FILE`, or — in
//! development only — `<data-dir>/keys.json`, generated on first run.

use std::path::{Path, PathBuf};

use latchkey_core::config::Environment;
use latchkey_core::crypto::keys::KeySetFile;
use latchkey_core::ports::SystemRng;

/// Where the keys were found, for the start-up log line.
#[derive(Debug)]
pub enum Origin {
    Env,
    File(PathBuf),
    Generated(PathBuf),
    DevFile(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Env => f.write_str("LATCHKEY_KEYS"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Generated(p) => write!(f, "{} (generated now)", p.display()),
            Origin::DevFile(p) => write!(f, "{} (development keys)", p.display()),
        }
    }
}

pub fn load(data_dir: &Path, env: Environment) -> Result<(KeySetFile, Origin), String> {
    let lookup = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (file, origin) = if let Some(json) = lookup("LATCHKEY_KEYS") {
        (parse(&json, "LATCHKEY_KEYS")?, Origin::Env)
    } else if let Some(path) = lookup("LATCHKEY_KEYS_FILE") {
        let path = PathBuf::from(path);
        (read(&path)?, Origin::File(path))
    } else if lookup("LATCHKEY_KEYS_SSM_PARAMETER").is_some() {
        return Err("LATCHKEY_KEYS_SSM_PARAMETER is read by the Lambda functions and by `--store dynamodb`; \
                    for the embedded store set LATCHKEY_KEYS or LATCHKEY_KEYS_FILE"
            .into());
    } else if env == Environment::Production {
        return Err(
            "production needs real keys: set LATCHKEY_KEYS or LATCHKEY_KEYS_FILE \
                    (make them with `latchkey keys generate --production`)"
                .into(),
        );
    } else {
        let path = data_dir.join("keys.json");
        if path.exists() {
            (read(&path)?, Origin::DevFile(path))
        } else {
            let file =
                KeySetFile::generate(&SystemRng).map_err(|e| format!("generating keys: {e}"))?;
            write_private(&path, &file.to_json_pretty())?;
            (file, Origin::Generated(path))
        }
    };
    if env == Environment::Production && file.is_development() {
        return Err(format!(
            "production refuses development keys (from {origin}); generate real ones with \
             `latchkey keys generate --production`"
        ));
    }
    Ok((file, origin))
}

fn parse(json: &str, what: &str) -> Result<KeySetFile, String> {
    KeySetFile::from_json(json).map_err(|e| format!("{what}: {e}"))
}

fn read(path: &Path) -> Result<KeySetFile, String> {
    let json =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse(&json, &path.display().to_string())
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
