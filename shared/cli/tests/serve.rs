//! The real `latchkey` binary, driven as the README tells a new user to: `latchkey serve` on an
//! empty data dir, the admin CLI beside it, the Magento admin 2FA flow with codes from
//! `oathtool` and the token checked by PyJWT, a restart, and production refusing dev keys; the
//! README's Glue MFA walk (codes from the outbox, the RS256 token checked by PyJWT against the
//! served JWKS);
//! `keys rotate` on a data dir and on an SSM parameter (moto_server).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::disallowed_methods)] // real processes, real time

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey_tests::free_port;
use latchkey_tests::independent::{pyjwt_verify_jwks, pyjwt_verify_magento};
use latchkey_tests::webdriver::Browser;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Waits until the server's log holds `needle` (its reader thread may lag behind the
    /// process), or fails after ten seconds.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the server never logged {needle:?}: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .env_remove("LATCHKEY_KEYS")
    .env_remove("LATCHKEY_KEYS_FILE")
    .env("LATCHKEY_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let server = Server { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = request(port, "GET", "/health", None, None) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "server did not become ready: {}",
        server.log.lock().unwrap()
    );
}

/// A minimal HTTP/1.1 client (one request per connection).
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    request_with(port, method, path, body, &headers)
}

/// [`request`] with any headers.
fn request_with(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.unwrap_or("");
    let headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn call(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (u16, String) {
    request(
        s.port,
        method,
        path,
        body.map(|b| b.to_string()).as_deref(),
        bearer,
    )
    .unwrap()
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn oathtool(secret: &str, at: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "--now", &format!("@{at}")])
        .output()
        .expect("oathtool is installed (./scripts/test installs it)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_new_user_runs_the_readme_flow() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let log = server.wait_for_log("latchkey listening on");
    assert_eq!(
        log.matches("generated development keys").count(),
        1,
        "one log line says development keys were generated: {log}"
    );

    // The admin CLI writes to the store while the server runs.
    let (ok, out) = cli(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            "shopadmin",
            "--email",
            "admin@example.com",
            "--password",
            "correct horse battery",
            "--role",
            "admin",
        ],
    );
    assert!(ok, "{out}");

    let creds = json!({"username": "shopadmin", "password": "correct horse battery"});
    let (status, body) = call(
        &server,
        "POST",
        "/rest/V1/integration/admin/token",
        Some(creds.clone()),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"message":"You are required to configure personal Two-Factor Authorization in order to login. Please check your email."}"#
    );

    let (_, outbox) = call(&server, "GET", "/_dev/outbox.json", None, None);
    let outbox: Value = serde_json::from_str(&outbox).unwrap();
    let email = &outbox[0];
    assert_eq!(email["channel"], "email");
    assert_eq!(email["to"], "admin@example.com");
    let tfa_token = email["body"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("tfaToken: "))
        .unwrap()
        .to_owned();
    let lines = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        1,
        "the outbox file has one JSON line per message"
    );
    let (status, page) = call(&server, "GET", "/_dev/outbox", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("admin@example.com"));

    let (status, body) = call(
        &server,
        "POST",
        "/rest/V1/tfa/provider/google/configure",
        Some(json!({"tfaToken": tfa_token})),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let secret = serde_json::from_str::<Value>(&body).unwrap()["secret_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let activated_at = now();
    let (status, body) = call(
        &server,
        "POST",
        "/rest/V1/tfa/provider/google/activate",
        Some(json!({"tfaToken": tfa_token, "otp": oathtool(&secret, activated_at)})),
        None,
    );
    assert_eq!((status, body.as_str()), (200, "true"));

    let (status, body) = call(
        &server,
        "POST",
        "/rest/V1/integration/admin/token",
        Some(creds),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"message":"Please use the 2fa provider-specific endpoints to obtain a token.","parameters":{"active_providers":["google"]}}"#
    );

    // The activation code is spent: sign in with the next step's code.
    let next_step = (activated_at / 30 + 1) * 30;
    while now() < next_step {
        std::thread::sleep(Duration::from_millis(200));
    }
    let otp = oathtool(&secret, now());
    let body = json!({"username": "shopadmin", "password": "correct horse battery", "otp": otp});
    let (status, token) = call(
        &server,
        "POST",
        "/rest/V1/tfa/provider/google/authenticate",
        Some(body.clone()),
        None,
    );
    assert_eq!(status, 200, "{token}");
    let token: String = serde_json::from_str(&token).unwrap();
    let (status, replay) = call(
        &server,
        "POST",
        "/rest/V1/tfa/provider/google/authenticate",
        Some(body),
        None,
    );
    assert_eq!(
        (status, replay.as_str()),
        (401, r#"{"message":"Invalid code."}"#)
    );

    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("keys.json")).unwrap())
            .unwrap();
    let claims = pyjwt_verify_magento(&token, &keys, 0);
    assert_eq!(claims["utypid"], 2);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let (status, providers) = call(
        &server,
        "GET",
        "/rest/V1/tfa/installed-providers",
        None,
        Some(&token),
    );
    assert_eq!(status, 200, "{providers}");

    // A restart keeps users, factors and keys. The start-up line comes after the keys were
    // loaded, so once it is in the log, a key generation would be too.
    drop(server);
    let server = serve(dir.path(), &[]);
    let log = server.wait_for_log("latchkey listening on");
    assert_eq!(
        log.matches("generated development keys").count(),
        0,
        "the restart reused the keys: {log}"
    );
    let (status, _) = call(
        &server,
        "GET",
        "/rest/V1/tfa/installed-providers",
        None,
        Some(&token),
    );
    assert_eq!(status, 200, "tokens survive a restart");
    let (ok, listing) = cli(dir.path(), &["user", "list"]);
    assert!(
        ok && listing.contains("shopadmin") && listing.contains("active"),
        "{listing}"
    );
}

#[test]
fn production_refuses_to_start_without_real_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LATCHKEY_ENV", "production")
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("production needs real keys"), "{err}");
    assert!(
        !dir.path().join("keys.json").exists(),
        "no development keys were generated"
    );

    // Development keys are refused in production too.
    let (ok, keys) = cli(dir.path(), &["keys", "generate"]);
    assert!(ok);
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LATCHKEY_ENV", "production")
        .env("LATCHKEY_KEYS", keys.trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refuses development keys"));
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("LATCHKEY_TOTP_WINDOW", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LATCHKEY_TOTP_WINDOW"));
}

/// `latchkey keys …` on `dir`, with no key settings but `env`; (success, stdout, stderr).
fn keys_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE")
        .env_remove("LATCHKEY_KEYS_SSM_PARAMETER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jwks_kids(keys: &latchkey_core::crypto::keys::KeySet, at: i64) -> Vec<String> {
    keys.jwks(at)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn keys_rotate_keeps_retired_keys_published_until_publish_until() {
    use latchkey_core::crypto::keys::{KeySet, KeySetFile, SigningAlg};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let (ok, _, err) = keys_cli(dir.path(), &["rotate"], &[]);
    assert!(
        !ok && err.contains("latchkey serve"),
        "no key set yet: {err}"
    );

    let before = KeySetFile::test_fixture();
    std::fs::write(&path, before.to_json_pretty()).unwrap();
    let old_es = before
        .active_signing_kid(SigningAlg::ES256)
        .unwrap()
        .to_owned();
    let started = now() as i64;
    let (ok, out, err) = keys_cli(
        dir.path(),
        &["rotate", "--signing", "ES256", "--keep-minutes", "60"],
        &[],
    );
    assert!(ok, "{out}{err}");
    let after = KeySetFile::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let new_es = after.active_signing_kid(SigningAlg::ES256).unwrap();
    assert_ne!(new_es, old_es);
    assert!(out.contains(new_es) && out.contains(&old_es), "{out}");
    for secret in [
        "PRIVATE KEY",
        &before.pepper,
        &before.hmac.keys[0].secret,
        &before.sealing.keys[0].key,
    ] {
        assert!(!out.contains(secret) && !err.contains(secret));
    }
    for alg in [SigningAlg::RS256, SigningAlg::EdDSA] {
        assert_eq!(
            after.active_signing_kid(alg),
            before.active_signing_kid(alg),
            "{alg} untouched"
        );
    }
    assert_eq!(after.hmac.active, "1");
    assert_eq!(after.sealing.active, "k1");

    // The old kid stays in the JWKS of the loaded key set until its publish_until.
    let until = after
        .signing
        .keys
        .iter()
        .find(|k| k.kid == old_es)
        .unwrap()
        .publish_until
        .unwrap();
    assert!(until >= started + 3600 && until <= now() as i64 + 3600);
    let keys = KeySet::from_file(&after).unwrap();
    let published = jwks_kids(&keys, until - 1);
    assert!(published.contains(&old_es) && published.contains(&new_es.to_owned()));
    assert_eq!(published.len(), 4);
    assert!(!jwks_kids(&keys, until).contains(&old_es));

    // Written whole, for its owner only, and nothing left beside it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // Bare `rotate`: every key that signs tokens, kept for the longest token lifetime set.
    let (ok, out, err) = keys_cli(
        dir.path(),
        &["rotate"],
        // Longer than every other lifetime (Glue's access tokens: 8 hours by default).
        &[("LATCHKEY_MAGENTO_ADMIN_TOKEN_MINUTES", "600")],
    );
    assert!(ok, "{out}{err}");
    let again = KeySetFile::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for alg in SigningAlg::ALL {
        assert_ne!(again.active_signing_kid(alg), after.active_signing_kid(alg));
    }
    assert_eq!(again.hmac.active, "2");
    assert_eq!(again.sealing.active, "k1", "sealing only when asked");
    let hmac_until = again.hmac.keys[0].publish_until.unwrap();
    assert!(hmac_until >= started + 600 * 60 && hmac_until <= now() as i64 + 600 * 60);
    assert_eq!(
        again.signing.keys.len(),
        7,
        "3 active, 3 just retired, 1 from before"
    );

    // Keys given inline have nowhere to go back to.
    let (ok, _, err) = keys_cli(
        dir.path(),
        &["rotate"],
        &[("LATCHKEY_KEYS", &before.to_json_pretty())],
    );
    assert!(!ok && err.contains("LATCHKEY_KEYS"), "{err}");
    let (ok, _, err) = keys_cli(dir.path(), &["rotate", "--signing", "HS256"], &[]);
    assert!(!ok && err.contains("unknown signing algorithm"), "{err}");
}

#[test]
fn keys_rotate_writes_an_ssm_parameter_back_under_its_kms_key() {
    use aws_sdk_ssm::types::ParameterType;
    use latchkey_core::crypto::keys::{KeySet, KeySetFile};
    let endpoint = latchkey_tests::stores::aws_endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ssm = rt.block_on(latchkey_tests::stores::aws_clients()).ssm;
    let name = format!("/latchkey-test/keys-{}", std::process::id());
    let before = KeySetFile::test_fixture();
    rt.block_on(
        ssm.put_parameter()
            .name(&name)
            .value(before.to_json_pretty())
            .r#type(ParameterType::SecureString)
            .key_id("alias/latchkey-test")
            .send(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let (ok, out, err) = keys_cli(
        dir.path(),
        &[
            "rotate",
            "--hmac",
            "--keep-minutes",
            "30",
            "--ssm-parameter",
            &name,
        ],
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("version 2"), "{out}");
    assert!(!out.contains(&before.hmac.keys[0].secret));

    let got = rt
        .block_on(ssm.get_parameter().name(&name).with_decryption(true).send())
        .unwrap();
    let parameter = got.parameter().unwrap();
    assert_eq!(parameter.r#type(), Some(&ParameterType::SecureString));
    let after = KeySetFile::from_json(parameter.value().unwrap()).unwrap();
    assert_eq!(after.hmac.active, "2");
    let until = after.hmac.keys[0].publish_until.unwrap();
    assert!(until > now() as i64 + 29 * 60 && until <= now() as i64 + 30 * 60);
    assert_eq!(
        after.signing.active, before.signing.active,
        "signing keys untouched"
    );
    KeySet::from_file(&after).unwrap();
    let by_name = aws_sdk_ssm::types::ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(&name)
        .build()
        .unwrap();
    let described = rt
        .block_on(ssm.describe_parameters().parameter_filters(by_name).send())
        .unwrap()
        .parameters()
        .iter()
        .find(|p| p.name() == Some(&name))
        .and_then(|p| p.key_id().map(str::to_owned));
    assert_eq!(described.as_deref(), Some("alias/latchkey-test"));

    let (ok, _, err) = keys_cli(
        dir.path(),
        &["rotate", "--ssm-parameter", "/latchkey-test/missing"],
        &env,
    );
    assert!(!ok && err.contains("ParameterNotFound"), "{err}");
}

/// A raw HTTP/1.1 request (`head` is the request line and header lines, without the final
/// blank line); (status, body).
fn raw(port: u16, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

/// `latchkey <args> --data-dir <dir>` with `input` on standard input.
fn cli_stdin(dir: &Path, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const NOT_FOUND: &str = r#"{"error":"not_found","message":"No such route."}"#;

fn add_admin(dir: &Path) {
    add_user(dir, "shopadmin", "admin@example.com", "admin");
}

/// `latchkey user add`, the password ("correct horse battery") on standard input.
fn add_user(dir: &Path, username: &str, email: &str, role: &str) {
    let (ok, out) = cli_stdin(
        dir,
        &[
            "user",
            "add",
            "--username",
            username,
            "--email",
            email,
            "--password-stdin",
            "--role",
            role,
        ],
        "correct horse battery\n",
    );
    assert!(ok, "{out}");
}

/// Issue 9: `GET /_dev/outbox.json` with `Host: evil.example.com` answered 200 with live set-up
/// tokens (a DNS-rebinding page, or a server on 0.0.0.0, leaked them). The pages now answer a
/// loopback client asking for a loopback host only (peers other than loopback are refused too:
/// see the unit tests in `serve.rs`, as no test may send traffic to a non-loopback address),
/// and do not exist in production. The server logs at `debug` throughout, and no line holds the
/// password or the token.
#[test]
fn dev_pages_answer_only_loopback_hosts_and_never_exist_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[("LATCHKEY_LOG", "debug")]);
    add_admin(dir.path());
    let creds = json!({"username": "shopadmin", "password": "correct horse battery"});
    let path = "/rest/V1/integration/admin/token";
    let (status, _) = call(&server, "POST", path, Some(creds.clone()), None);
    assert_eq!(status, 401);

    let (status, outbox) = raw(
        server.port,
        "GET /_dev/outbox.json HTTP/1.1\r\nHost: 127.0.0.1",
    );
    assert_eq!(status, 200, "{outbox}");
    let token = outbox
        .split("tfaToken: ")
        .nth(1)
        .and_then(|rest| rest.split(['\\', '\n', '"']).next())
        .unwrap()
        .to_owned();
    assert!(token.len() > 40, "{token}");

    for page in ["/_dev/outbox.json", "/_dev/outbox"] {
        for head in [
            format!("GET {page} HTTP/1.1\r\nHost: evil.example.com"),
            format!(
                "GET {page} HTTP/1.1\r\nHost: evil.example.com:{}",
                server.port
            ),
            format!("GET {page} HTTP/1.1\r\nHost: localhost.evil.example.com"),
            format!("GET http://evil.example.com{page} HTTP/1.1\r\nHost: evil.example.com"),
            format!(
                "GET {page} HTTP/1.1\r\nHost: localhost:{}\r\nOrigin: https://evil.example.com",
                server.port
            ),
            format!("GET {page} HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com"),
        ] {
            let (status, body) = raw(server.port, &head);
            assert!(status == 404 || status == 400, "{head}: {status} {body}");
            assert!(!body.contains(&token), "{head}: the token leaked");
            if status == 404 {
                assert_eq!(body, NOT_FOUND, "{head}");
            }
        }
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("DEBUG") || log.contains("sign_in"), "{log}");
    assert!(
        !log.contains("correct horse battery") && !log.contains(&token),
        "a log line holds a secret"
    );
    drop(server);

    // Production: the pages do not exist, whoever asks.
    let prod = tempfile::tempdir().unwrap();
    let (ok, keys) = cli(prod.path(), &["keys", "generate", "--production"]);
    assert!(ok, "{keys}");
    let keys = keys.trim().to_owned();
    let server = serve(
        prod.path(),
        &[("LATCHKEY_ENV", "production"), ("LATCHKEY_KEYS", &keys)],
    );
    let out = Command::new(BIN)
        .args(["user", "add", "--username", "shopadmin", "--email"])
        .args(["admin@example.com", "--role", "admin", "--password-stdin"])
        .arg("--data-dir")
        .arg(prod.path())
        .env("LATCHKEY_ENV", "production")
        .env("LATCHKEY_KEYS", &keys)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"correct horse battery\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (status, _) = call(&server, "POST", path, Some(creds), None);
    assert_eq!(status, 401);
    for page in ["/_dev/outbox.json", "/_dev/outbox"] {
        let (status, body) = raw(
            server.port,
            &format!("GET {page} HTTP/1.1\r\nHost: localhost"),
        );
        assert_eq!((status, body.as_str()), (404, NOT_FOUND), "{page}");
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The data dir is its owner's alone (0700), and so are the store, its WAL, the keys and the
/// outbox (0600) — created so, and made so again where someone opened them up.
#[cfg(unix)]
#[test]
fn local_data_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let server = serve(&dir, &[]);
    add_admin(&dir);
    let creds = json!({"username": "shopadmin", "password": "correct horse battery"});
    let (status, _) = call(
        &server,
        "POST",
        "/rest/V1/integration/admin/token",
        Some(creds),
        None,
    );
    assert_eq!(status, 401, "an email went to the outbox");
    let files = [
        "latchkey.db",
        "latchkey.db-wal",
        "latchkey.db-shm",
        "keys.json",
        "outbox.jsonl",
    ];
    assert_eq!(mode(&dir), 0o700);
    for name in files {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    drop(server);

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in files {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let (ok, out) = cli(&dir, &["user", "list"]);
    assert!(ok, "{out}");
    assert_eq!(mode(&dir), 0o700, "{out}");
    for name in files {
        let path = dir.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

/// Passwords come from a prompt or `--password-stdin`; without either and without a terminal,
/// the CLI refuses rather than hang or make up a password. `--password` still works, for
/// scripts that accept that it shows in the process list.
#[test]
fn the_cli_reads_passwords_from_stdin_and_never_guesses() {
    let dir = tempfile::tempdir().unwrap();
    let add = |username: &str, extra: &[&str]| {
        let email = format!("{username}@example.com");
        let mut args = vec![
            "user",
            "add",
            "--username",
            username,
            "--email",
            &email,
            "--role",
            "customer",
        ];
        args.extend_from_slice(extra);
        cli_stdin(dir.path(), &args, "piped horse battery\r\n")
    };
    let (ok, out) = add("nopassword", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("--password-stdin"), "{out}");
    let (ok, out) = add("both", &["--password-stdin", "--password", "x"]);
    assert!(!ok, "{out}");
    let (ok, out) = add("piped", &["--password-stdin"]);
    assert!(ok, "{out}");
    let (ok, out) = add("flagged", &["--password", "flagged horse battery"]);
    assert!(ok, "{out}");
    let (ok, out) = cli_stdin(
        dir.path(),
        &["user", "set-password", "flagged", "--password-stdin"],
        "a newer horse battery\n",
    );
    assert!(ok, "{out}");
    let (_, listing) = cli(dir.path(), &["user", "list"]);
    assert!(
        !listing.contains("nopassword") && !listing.contains("both@"),
        "{listing}"
    );

    let server = serve(dir.path(), &[]);
    let token = |user: &str, password: &str| {
        call(
            &server,
            "POST",
            "/rest/V1/integration/customer/token",
            Some(json!({"username": user, "password": password})),
            None,
        )
        .0
    };
    assert_eq!(
        token("piped", "piped horse battery"),
        200,
        "the line ending is not part of it"
    );
    assert_eq!(token("flagged", "a newer horse battery"), 200);
    assert_eq!(token("flagged", "flagged horse battery"), 401);
}

/// The README's Glue walk, against the real binary: codes from the outbox, the access token
/// checked by PyJWT against the JWKS the server publishes.
#[test]
fn the_readme_glue_walk() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let (ok, out) = cli(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            "sonia@example.com",
            "--email",
            "sonia@example.com",
            "--password",
            "oldPass123",
            "--role",
            "customer",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Glue customer reference DE--1"), "{out}");
    let json_api = [("Content-Type", "application/vnd.api+json")];
    let (status, body) = request_with(
        server.port,
        "POST",
        "/access-tokens",
        Some(r#"{"data":{"type":"access-tokens","attributes":{"username":"sonia@example.com","password":"oldPass123"}}}"#),
        &json_api,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, jwks) = request(server.port, "GET", "/.well-known/jwks.json", None, None).unwrap();
    let claims = pyjwt_verify_jwks(
        &token,
        &serde_json::from_str(&jwks).unwrap(),
        "frontend",
        "http://127.0.0.1:8080",
    );
    assert!(
        claims["sub"]
            .as_str()
            .unwrap()
            .contains(r#""customer_reference":"DE--1""#)
    );

    let code = || {
        let (_, outbox) = request(server.port, "GET", "/_dev/outbox.json", None, None).unwrap();
        let newest = serde_json::from_str::<Value>(&outbox).unwrap()[0]["body"]
            .as_str()
            .unwrap()
            .to_owned();
        let at = newest.find("code: ").unwrap() + 6;
        newest[at..at + 6].to_owned()
    };
    let auth = format!("Bearer {token}");
    let send = |method: &str, path: &str, body: &str, code: Option<&str>| {
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(code) = code {
            headers.push(("X-MFA-Code", code));
        }
        request_with(server.port, method, path, Some(body), &headers).unwrap()
    };
    let (status, body) = send(
        "POST",
        "/multi-factor-auth-type-activate",
        r#"{"data":{"type":"multi-factor-auth-type-activate","attributes":{"type":"email"}}}"#,
        None,
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = send(
        "POST",
        "/multi-factor-auth-type-verify",
        r#"{"data":{"type":"multi-factor-auth-type-verify","attributes":{"type":"email"}}}"#,
        Some(&code()),
    );
    assert_eq!(status, 204, "{body}");
    let change = r#"{"data":{"type":"customer-password","attributes":{"password":"oldPass123","newPassword":"NewPass456!","confirmPassword":"NewPass456!"}}}"#;
    let (status, body) = send("PATCH", "/customer-password/DE--1", change, None);
    assert_eq!(
        (status, body.as_str()),
        (
            403,
            r#"{"errors":[{"status":403,"code":"5900","detail":"X-MFA-Code header is missing."}]}"#
        )
    );
    let (status, body) = send(
        "POST",
        "/multi-factor-auth-trigger",
        r#"{"data":{"type":"multi-factor-auth-trigger","attributes":{"type":"email"}}}"#,
        None,
    );
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) = send("PATCH", "/customer-password/DE--1", change, Some(&code()));
    assert_eq!(status, 204, "{body}");
}

/// Signs in through the wizard with the TOTP code of the step holding Unix time `code_at`.
fn wizard_sign_in(port: u16, email: &str, password: &str, secret: &str, code_at: u64) -> String {
    let (_, body) = request(port, "GET", "/api/v2/my/signin/wizard", None, None).unwrap();
    let uuid = serde_json::from_str::<Value>(&body).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = json!({"uuid": uuid, "email": email, "password": password,
                       "device_fingerprint": "eyJ1c2VyX2FnZW50IjoiY3VybCJ9"});
    let (status, body) = request(
        port,
        "POST",
        "/api/v2/my/signin",
        Some(&creds.to_string()),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let choose = json!({"uuid": uuid, "type": "google"});
    let (status, body) = request(
        port,
        "POST",
        "/api/v2/my/signin/2fa",
        Some(&choose.to_string()),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let code = json!({"uuid": uuid, "code": oathtool(secret, code_at)});
    let (status, body) = request(
        port,
        "POST",
        "/api/v2/my/2fa/google",
        Some(&code.to_string()),
        None,
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_wizard_sign_in_page_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let (ok, out) = cli(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            "web@example.com",
            "--email",
            "web@example.com",
            "--password",
            "QAzqw123!",
            "--role",
            "customer",
            "--totp-secret",
            secret,
            "--phone",
            "+4915112345678",
        ],
    );
    assert!(ok, "{out}");
    // One step either side: the QR part below signs in with the next step's code.
    let server = serve(dir.path(), &[("LATCHKEY_TOTP_WINDOW", "1")]);
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(true, profile.path());
    let page = format!("http://127.0.0.1:{}/signin", server.port);

    // Credentials, then the choice (the client has both methods), then a code from oathtool.
    browser.open(&page);
    browser.wait_for("!document.getElementById('qr').hidden");
    browser.wait_for("document.getElementById('qr-image').naturalWidth > 100");
    browser.type_into("#email", "web@example.com");
    browser.type_into("#password", "QAzqw123!");
    browser.click("#signin");
    browser.wait_for("!document.getElementById('choose').hidden");
    browser.click("#choose-google");
    browser.wait_for("!document.getElementById('code').hidden");
    // Codes are single use: the password sign-in below takes the next step's code.
    let at = now();
    let next_step = (at / 30 + 1) * 30;
    browser.type_into("#otp", &oathtool(secret, at));
    browser.click("#verify");
    browser
        .wait_for("document.getElementById('welcome').innerText.startsWith('Signed in as user 1')");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    browser.screenshot(&shots.join("wizard-signin.png"));
    // A wrong password is said so on the page.
    browser.open(&page);
    browser.wait_for("!document.getElementById('credentials').hidden");
    browser.type_into("#email", "web@example.com");
    browser.type_into("#password", "wrong password");
    browser.click("#signin");
    browser.wait_for("document.getElementById('error').innerText.includes('incorrect')");

    // QR: the page shows a code; a signed-in "mobile" client approves it; the page signs in.
    browser.open(&page);
    browser.wait_for("document.getElementById('qr-image').naturalWidth > 100");
    // The next TOTP step's code (a code is single use, and so is every older step's), taken
    // now: the server's window accepts a code one step either side of its clock.
    let access = wizard_sign_in(
        server.port,
        "web@example.com",
        "QAzqw123!",
        secret,
        next_step,
    );
    let uuid = browser.script(
        "return document.getElementById('qr-image').dataset.uuid || window.qrUuid || null;",
    );
    let uuid = uuid
        .as_str()
        .expect("the page exposes its QR flow")
        .to_owned();
    let (status, body) = request(
        server.port,
        "POST",
        "/api/v2/my/signin/qrcodes",
        Some(&json!({ "uuid": uuid }).to_string()),
        Some(&access),
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    browser
        .wait_for("document.getElementById('welcome').innerText.startsWith('Signed in as user 1')");
    browser.screenshot(&shots.join("wizard-qr.png"));
}

/// A reader that stops reading (`latchkey keys generate | head -1`) ends the command quietly,
/// with the status of a command SIGPIPE ended, not a panic and its backtrace.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["keys", "generate", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The read end closes before the command writes: its first write finds no reader.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// The server keeps the rows it read until the next commit (`shared/embedded/src/cache.rs`),
/// and the Magento tokens it checked while nothing was written (`shared/core/src/identity/
/// memo.rs`); a commit by the CLI, another process, must count for both. A customer's token is
/// honoured (twice, so that its profile and the token are kept), then each of `user
/// revoke-tokens` and `user disable`, run while the server serves, refuses it at the very next
/// request.
#[test]
fn cli_revocations_reach_the_running_server_at_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    add_user(
        dir.path(),
        "shopper@example.com",
        "shopper@example.com",
        "customer",
    );
    let sign_in = || {
        let (status, body) = call(
            &server,
            "POST",
            "/rest/V1/integration/customer/token",
            Some(json!({"username": "shopper@example.com", "password": "correct horse battery"})),
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<String>(&body).unwrap()
    };
    let me = |token: &str| call(&server, "GET", "/rest/V1/customers/me", None, Some(token));
    let refused = r#"{"message":"The consumer isn't authorized to access %resources.","parameters":{"resources":"self"}}"#;

    let token = sign_in();
    for _ in 0..2 {
        let (status, body) = me(&token);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""email":"shopper@example.com""#), "{body}");
    }
    let (ok, out) = cli(
        dir.path(),
        &["user", "revoke-tokens", "shopper@example.com"],
    );
    assert!(ok, "{out}");
    assert_eq!(me(&token), (401, refused.to_owned()));

    let token = sign_in();
    assert_eq!(me(&token).0, 200);
    assert_eq!(me(&token).0, 200);
    let (ok, out) = cli(dir.path(), &["user", "disable", "shopper@example.com"]);
    assert!(ok, "{out}");
    assert_eq!(me(&token), (401, refused.to_owned()));
}
