//! Where the key set comes from: `LATCHKEY_KEYS` (JSON), `LATCHKEY_KEYS_FILE`, or — in
//! development only — `<data-dir>/keys.json`, generated on first run. And `keys rotate`,
//! which rewrites the key set where it lives: a file, or an SSM SecureString parameter.

use std::path::{Path, PathBuf};

use latchkey_core::config::{Config, Environment, KeySource};
use latchkey_core::crypto::keys::{KeySet, KeySetFile, Rotation, SigningAlg};
use latchkey_core::ports::{Clock, SystemClock, SystemRng};

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

pub fn load(data_dir: &Path, config: &Config) -> Result<(KeySetFile, Origin), String> {
    let env = config.environment;
    let (file, origin) = if let Some(KeySource::Json(json)) = &config.deployment.keys {
        (parse(json.expose(), "LATCHKEY_KEYS")?, Origin::Env)
    } else if let Some(KeySource::File(path)) = &config.deployment.keys {
        (read(path)?, Origin::File(path.clone()))
    } else if let Some(KeySource::Ssm(_)) = &config.deployment.keys {
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

/// Writes a new file only its owner can read, and flushes it to disk.
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
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Replaces `path` (an existing file, or the file a symlink points to) with `contents`, mode
/// 0600: written to a temporary file beside it, then renamed over it, so that a reader sees the
/// old key set or the new one, never half of one.
pub fn replace_private(path: &Path, contents: &str) -> Result<(), String> {
    let path =
        std::fs::canonicalize(path).map_err(|e| format!("finding {}: {e}", path.display()))?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} is not a file", path.display()));
    };
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    write_private(&temp, contents)?;
    if let Err(e) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("replacing {}: {e}", path.display()));
    }
    // Make the rename itself durable; not every platform can open a directory for that.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where `keys rotate` finds the key set, and writes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Ssm(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Ssm(name) => write!(f, "SSM parameter {name}"),
        }
    }
}

/// The key set the server and the functions would load: `--ssm-parameter`, else
/// `LATCHKEY_KEYS_FILE`, else `LATCHKEY_KEYS_SSM_PARAMETER`, else `<data-dir>/keys.json`.
/// Keys given inline in `LATCHKEY_KEYS` have nowhere to be written back to.
pub fn locate(
    data_dir: &Path,
    ssm_parameter: Option<String>,
    keys: Option<&KeySource>,
) -> Result<Location, String> {
    if let Some(name) = ssm_parameter {
        return Ok(Location::Ssm(name));
    }
    if let Some(KeySource::Json(_)) = keys {
        return Err(
            "the key set comes from LATCHKEY_KEYS, which cannot be rewritten in place: rotate the file \
             or SSM parameter it came from (LATCHKEY_KEYS_FILE or --ssm-parameter) and set it again"
                .into(),
        );
    }
    if let Some(KeySource::File(path)) = keys {
        return Ok(Location::File(path.clone()));
    }
    if let Some(KeySource::Ssm(name)) = keys {
        return Ok(Location::Ssm(name.clone()));
    }
    let path = data_dir.join("keys.json");
    if !path.exists() {
        return Err(format!(
            "no key set at {}: `latchkey serve` creates one on its first start (or point \
             LATCHKEY_KEYS_FILE or --ssm-parameter at yours)",
            path.display()
        ));
    }
    Ok(Location::File(path))
}

/// How long a retired key stays when `--keep-minutes` is not given: the longest lifetime of a
/// token the settings allow, or a day if the settings do not parse.
pub fn default_keep_secs() -> i64 {
    match Config::from_env() {
        Ok(config) => longest_token_secs(&config),
        Err(e) => {
            eprintln!(
                "warning: settings do not parse ({e}); retired keys stay for 24 hours (see --keep-minutes)"
            );
            24 * 3600
        }
    }
}

/// The longest lifetime of a token signed by a key of the key set. (Every setting of a token
/// lifetime belongs here.)
fn longest_token_secs(config: &Config) -> i64 {
    [
        config.magento.admin_token_secs,
        config.magento.customer_token_secs,
        config.magento.tfa_token_secs,
        config.glue.customer_sessions.access_secs,
        config.glue.backoffice_sessions.access_secs,
    ]
    .into_iter()
    .max()
    .unwrap_or(24 * 3600)
}

/// Rotates the key set at `location` and writes it back; returns what to tell the operator
/// (key ids and times, never key material).
pub async fn rotate(
    location: &Location,
    rotation: &Rotation,
    keep_secs: i64,
) -> Result<String, String> {
    let now = SystemClock.now();
    let rotate = |json: &str| -> Result<(KeySetFile, KeySetFile), String> {
        let before = parse(json, &location.to_string())?;
        let mut after = before.clone();
        after
            .rotate(&SystemRng, now, rotation, keep_secs)
            .map_err(|e| format!("rotating: {e}"))?;
        // Never write back a key set the server would refuse.
        KeySet::from_file_checked(&after).map_err(|e| format!("the rotated key set: {e}"))?;
        Ok((before, after))
    };
    let (before, after, note) = match location {
        Location::File(path) => {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let (before, after) = rotate(&json)?;
            replace_private(path, &after.to_json_pretty())?;
            (before, after, String::new())
        }
        Location::Ssm(name) => {
            let client = latchkey_aws::clients::AwsClients::from_env().await.ssm;
            let current = latchkey_aws::keys::read(&client, name).await?;
            let (before, after) = rotate(&current.json)?;
            let version =
                latchkey_aws::keys::write(&client, name, &after.to_json_pretty(), &current).await?;
            (before, after, version)
        }
    };
    Ok(format!(
        "{}{note}",
        report(location, &before, &after, now, keep_secs)
    ))
}

/// What changed, by key id.
fn report(
    location: &Location,
    before: &KeySetFile,
    after: &KeySetFile,
    now: i64,
    keep_secs: i64,
) -> String {
    use std::fmt::Write;
    let mut out = format!("rotated the key set in {location}\nactive keys:\n");
    let mark = |was_active: bool| if was_active { "" } else { "  (new)" };
    for alg in SigningAlg::ALL {
        if let Some(kid) = after.active_signing_kid(alg) {
            let old = before.active_signing_kid(alg) == Some(kid);
            let _ = writeln!(out, "  signing {:<6} {kid}{}", alg.as_str(), mark(old));
        }
    }
    let _ = writeln!(
        out,
        "  hmac           {}{}",
        after.hmac.active,
        mark(before.hmac.active == after.hmac.active)
    );
    let _ = writeln!(
        out,
        "  sealing        {}{}",
        after.sealing.active,
        mark(before.sealing.active == after.sealing.active)
    );
    let until = now.saturating_add(keep_secs.max(0));
    let retired: Vec<String> = after
        .signing
        .keys
        .iter()
        .filter(|k| k.publish_until == Some(until) && before.signing.active.contains(&k.kid))
        .map(|k| format!("signing {} {}", k.alg.as_str(), k.kid))
        .chain(
            after
                .hmac
                .keys
                .iter()
                .filter(|k| k.publish_until == Some(until) && k.kid == before.hmac.active)
                .map(|k| format!("hmac {}", k.kid)),
        )
        .collect();
    if !retired.is_empty() {
        let _ = writeln!(
            out,
            "retired, still published and verifying tokens until {} ({} min from now):",
            rfc3339(until),
            keep_secs.max(0) / 60
        );
        for r in retired {
            let _ = writeln!(out, "  {r}");
        }
    }
    let dropped: Vec<String> = before
        .signing
        .keys
        .iter()
        .filter(|k| !after.signing.keys.iter().any(|a| a.kid == k.kid))
        .map(|k| format!("signing {} {}", k.alg.as_str(), k.kid))
        .chain(
            before
                .hmac
                .keys
                .iter()
                .filter(|k| !after.hmac.keys.iter().any(|a| a.kid == k.kid))
                .map(|k| format!("hmac {}", k.kid)),
        )
        .collect();
    if !dropped.is_empty() {
        let _ = writeln!(out, "dropped (past their publish_until):");
        for d in dropped {
            let _ = writeln!(out, "  {d}");
        }
    }
    out.push_str(
        "servers and functions read keys when they start: restart `latchkey serve`, or redeploy \
         the functions, to sign with the new keys\n",
    );
    out
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
