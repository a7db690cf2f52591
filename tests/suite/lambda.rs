//! The real function binaries under the Lambda runtime emulator of `cargo lambda watch`, over
//! DynamoDB and SES on `moto_server`: the Magento admin 2FA flow end to end over HTTP, the
//! `events/` files through `cargo lambda invoke`, and malformed events answered with a 400; the
//! Glue MFA flow with codes read from the emulator's SES and the token checked by PyJWT.
//! The first admin is created with `latchkey --store dynamodb`, as an operator would.
//!
//! The emulator runs with `--only-lambda-apis`: it serves the Runtime API and the function URLs,
//! and each function binary, as `./scripts/test` built it (`target/debug/<route>`, one workspace
//! build), is started here against it — rather than by `cargo run` inside the emulator, which
//! would resolve the functions' features alone and compile the AWS SDK a second time.
#![allow(clippy::disallowed_methods)] // real processes and real time

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey_core::dialects::Dialect;
use latchkey_core::routes;
use latchkey_tests::free_port;
use latchkey_tests::independent::{pyjwt_verify_jwks, pyjwt_verify_magento};
use latchkey_tests::otp;
use latchkey_tests::stores::{aws_endpoint, aws_env, namespace, ses_sent_to, verify_ses_sender};
use serde_json::{Value, json};

const MAIL_FROM: &str = "latchkey@example.com";
const PASSWORD: &str = "correct horse battery";

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// What the functions and the CLI get: the emulator's endpoint, dummy credentials, a table of
/// this test's own, development keys from a file.
struct Stack {
    dir: tempfile::TempDir,
    table: String,
    /// The functions' clock, pinned (development only) so that codes are computed for the
    /// time the functions will see, however long their cold starts take.
    clock: i64,
}

impl Stack {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = cli_raw(&["keys", "generate"], &[]);
        assert!(keys.status.success());
        std::fs::write(dir.path().join("keys.json"), &keys.stdout).unwrap();
        Self {
            dir,
            table: format!("latchkey-lambda-{}", namespace()),
            // Mid-step of the TOTP step before the current one (in the past, so that PyJWT
            // does not see a token issued in the future): the next step's code is within the
            // ±1 window of it.
            clock: now() - now() % 30 - 15,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = aws_env();
        env.extend([
            ("LATCHKEY_ENV", "development".into()),
            ("LATCHKEY_TABLE", self.table.clone()),
            ("LATCHKEY_MAIL_FROM", MAIL_FROM.into()),
            ("LATCHKEY_PUBLIC_URL", "https://auth.example.com".into()),
            ("LATCHKEY_DEV_CLOCK", self.clock.to_string()),
            (
                "LATCHKEY_KEYS_FILE",
                self.dir.path().join("keys.json").display().to_string(),
            ),
        ]);
        env
    }

    fn keys(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("keys.json")).unwrap()).unwrap()
    }

    /// `latchkey --store dynamodb --table <table> ...`
    fn cli(&self, args: &[&str]) -> String {
        let mut all = vec![
            "--store",
            "dynamodb",
            "--table",
            &self.table,
            "--create-table",
        ];
        all.extend_from_slice(args);
        let env: Vec<(&str, String)> = self.env();
        let out = cli_raw(&all, &env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "latchkey {all:?}: {text}");
        text
    }
}

fn cli_raw(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let bin = target_dir().join("debug/latchkey");
    assert!(
        bin.exists(),
        "{} is missing: the workspace test build makes it (./scripts/test)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `cargo lambda watch --only-lambda-apis` on a free port, and one process of every function
/// binary polling it, as Lambda would run them.
struct Emulator {
    child: Child,
    functions: Vec<Child>,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for f in &mut self.functions {
            let _ = f.kill();
            let _ = f.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    async fn start(stack: &Stack) -> Self {
        let port = free_port();
        let log = stack.dir.path().join("emulator.log");
        let mut cmd = Command::new("cargo");
        // Cargo's and nextest's variables for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...)
        // are not the emulator's: it reads the functions' manifest itself.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let cargo_set = name.starts_with("CARGO_")
                && !matches!(name.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR")
                && !name.starts_with("CARGO_TERM_");
            if cargo_set || name.starts_with("NEXTEST") || name == "OUT_DIR" {
                cmd.env_remove(name.as_ref());
            }
        }
        let child = cmd
            .args(["lambda", "watch", "--only-lambda-apis"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(root().join("functions"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda is installed (./scripts/test installs it)");
        // The functions ask the Runtime API for their first event as they start: it must listen.
        let listening = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                listening.elapsed() < Duration::from_secs(30),
                "cargo lambda watch did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One function at a time, each started once the one before has finished its init
        // (logged `ready`): nineteen cold starts at once would queue their warm-up calls on the
        // one-request-at-a-time emulator behind the first invocations.
        let mut functions = Vec::new();
        let names = routes::all()
            .map(|r| r.name)
            .chain(latchkey_aws::stream::FUNCTIONS.iter().copied());
        for name in names {
            let bin = target_dir().join("debug").join(name);
            assert!(
                bin.exists(),
                "{} is missing: ./scripts/test builds every function first",
                bin.display()
            );
            let log = stack.dir.path().join(format!("{name}.log"));
            let mut cmd = Command::new(bin);
            cmd.envs(stack.env())
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt/{name}"),
                )
                .env("LATCHKEY_LOG", "info")
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(Stdio::null());
            functions.push(cmd.spawn().expect("start a function binary"));
            let spawned = Instant::now();
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("\"ready\"") {
                    break;
                }
                assert!(
                    spawned.elapsed() < Duration::from_secs(30),
                    "{name} did not finish its init: {text}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let emulator = Self {
            child,
            functions,
            port,
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = latchkey_tests::http()
                .get(emulator.url("health", "/health"))
                .send()
                .await
                && r.status() == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the emulator did not serve the health function: {}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                std::fs::read_to_string(stack.dir.path().join("health.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        emulator
    }

    /// The emulator's URL for `path` on `function`.
    fn url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    async fn call(
        &self,
        function: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, String) {
        let mut req =
            latchkey_tests::http().request(method.parse().unwrap(), self.url(function, path));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A request with any headers and a raw body.
    async fn call_with(
        &self,
        function: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), self.url(function, path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// `cargo lambda invoke <function> --data-file <event>`: the function's raw answer.
    fn invoke(&self, function: &str, event: &Path) -> Value {
        let out = Command::new("cargo")
            .args(["lambda", "invoke", function])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(event)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "invoke {function}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{function} answered {}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_magento_admin_flow_under_the_lambda_runtime() {
    verify_ses_sender(MAIL_FROM).await;
    let stack = Stack::new();
    let admin_email = format!("admin-{}@example.com", namespace());
    let out = stack.cli(&[
        "user",
        "add",
        "--username",
        "shopadmin",
        "--email",
        &admin_email,
        "--password",
        PASSWORD,
        "--role",
        "admin",
    ]);
    assert!(out.contains("created admin shopadmin"), "{out}");
    let lambda = Emulator::start(&stack).await;

    let creds = json!({"username": "shopadmin", "password": PASSWORD});
    let token_path = "/rest/V1/integration/admin/token";
    let (status, body) = lambda
        .call(
            "magento-admin-token",
            "POST",
            token_path,
            Some(creds.clone()),
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"message":"You are required to configure personal Two-Factor Authorization in order to login. Please check your email."}"#
    );
    let mail = ses_sent_to(&admin_email).await;
    assert_eq!(mail.len(), 1, "one set-up email through SES");
    assert_eq!(mail[0]["source"], MAIL_FROM);
    let text = mail[0]["body"].as_str().unwrap();
    assert!(text.contains("https://auth.example.com/rest/V1/tfa/provider/google/configure"));
    let tfa_token = latchkey_tests::harness::tfa_token_from(text);

    let (status, body) = lambda
        .call(
            "magento-google-configure",
            "POST",
            "/rest/default/V1/tfa/provider/google/configure",
            Some(json!({"tfaToken": tfa_token})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let configured: Value = serde_json::from_str(&body).unwrap();
    let secret = configured["secret_code"].as_str().unwrap().to_owned();
    assert!(configured["qr_code_base64"].as_str().unwrap().len() > 100);

    let activated_at = stack.clock;
    let code = otp::oathtool(&secret, activated_at);
    let (status, body) = lambda
        .call(
            "magento-google-activate",
            "POST",
            "/rest/V1/tfa/provider/google/activate",
            Some(json!({"tfaToken": tfa_token, "otp": code})),
            None,
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "true"));

    let (status, body) = lambda
        .call("magento-admin-token", "POST", token_path, Some(creds), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"message":"Please use the 2fa provider-specific endpoints to obtain a token.","parameters":{"active_providers":["google"]}}"#
    );

    // The activation code is spent; the next step's code is inside the ±1 window.
    let authenticate = "/rest/V1/tfa/provider/google/authenticate";
    let spent = json!({"username": "shopadmin", "password": PASSWORD, "otp": code});
    let (status, body) = lambda
        .call(
            "magento-google-authenticate",
            "POST",
            authenticate,
            Some(spent),
            None,
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"message":"Invalid code."}"#)
    );
    let next = activated_at + 30;
    let code = otp::oathtool(&secret, next);
    let fresh = json!({"username": "shopadmin", "password": PASSWORD, "otp": code});
    let (status, body) = lambda
        .call(
            "magento-google-authenticate",
            "POST",
            authenticate,
            Some(fresh.clone()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token: String = serde_json::from_str(&body).unwrap();
    let (status, replay) = lambda
        .call(
            "magento-google-authenticate",
            "POST",
            authenticate,
            Some(fresh),
            None,
        )
        .await;
    assert_eq!(
        (status, replay.as_str()),
        (401, r#"{"message":"Invalid code."}"#)
    );

    let claims = pyjwt_verify_magento(&token, &stack.keys(), 0);
    assert_eq!(claims["utypid"], 2);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let (status, providers) = lambda
        .call(
            "magento-installed-providers",
            "GET",
            "/rest/V1/tfa/installed-providers",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{providers}");
    assert!(providers.contains("\"google\""));
    let (status, _) = lambda
        .call(
            "magento-installed-providers",
            "GET",
            "/rest/V1/tfa/installed-providers",
            None,
            Some("not-a-token"),
        )
        .await;
    assert_eq!(status, 401);
}

/// The text of an error answer, in the shape of the route's dialect.
fn error_text(dialect: Dialect, body: &Value) -> Option<&str> {
    match dialect {
        Dialect::Glue => body["errors"][0]["detail"]
            .as_str()
            .or_else(|| body["error_description"].as_str()),
        Dialect::Core | Dialect::Magento | Dialect::Wizard => body["message"].as_str(),
        // HTML pages: the caller reads the page instead.
        Dialect::LinkPage => None,
    }
}

/// The code in the newest email SES (on the emulator) accepted for `to`.
async fn emailed_code(to: &str, count: usize) -> String {
    let mail = ses_sent_to(to).await;
    assert_eq!(mail.len(), count, "{count} emails through SES");
    let text = mail.last().unwrap()["body"].as_str().unwrap().to_owned();
    let at = text.find("verification code: ").expect("a code") + "verification code: ".len();
    text[at..at + 6].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_glue_mfa_flow_under_the_lambda_runtime() {
    verify_ses_sender(MAIL_FROM).await;
    let stack = Stack::new();
    let email = format!("sonia-{}@example.com", namespace());
    let out = stack.cli(&[
        "user",
        "add",
        "--username",
        &email,
        "--email",
        &email,
        "--password",
        "oldPass123",
        "--role",
        "customer",
    ]);
    let reference = out
        .split("Glue customer reference ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("the CLI names the customer reference: {out}"))
        .to_owned();
    let lambda = Emulator::start(&stack).await;
    const JSON_API: &str = "application/vnd.api+json";

    let body = json!({"data": {"type": "access-tokens", "attributes": {"username": email, "password": "oldPass123"}}});
    let (status, text) = lambda
        .call_with(
            "glue-access-tokens",
            "POST",
            "/access-tokens",
            Some(&body.to_string()),
            &[("content-type", JSON_API)],
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let token = answer["data"]["attributes"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(answer["data"]["attributes"]["expiresIn"], 28800);

    // PyJWT checks the token against the key set the jwks function publishes.
    let (status, jwks) = lambda
        .call("jwks", "GET", "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(status, 200);
    let claims = pyjwt_verify_jwks(
        &token,
        &serde_json::from_str(&jwks).unwrap(),
        "frontend",
        "https://auth.example.com",
    );
    let sub: Value = serde_json::from_str(claims["sub"].as_str().unwrap()).unwrap();
    assert_eq!(sub["customer_reference"], reference.as_str());

    let auth = format!("Bearer {token}");
    let activate = json!({"data": {"type": "multi-factor-auth-type-activate", "attributes": {"type": "email"}}});
    let (status, text) = lambda
        .call_with(
            "glue-mfa-activate",
            "POST",
            "/multi-factor-auth-type-activate",
            Some(&activate.to_string()),
            &[("authorization", &auth), ("content-type", JSON_API)],
        )
        .await;
    assert_eq!(status, 204, "{text}");
    let code = emailed_code(&email, 1).await;
    let verify =
        json!({"data": {"type": "multi-factor-auth-type-verify", "attributes": {"type": "email"}}});
    let (status, text) = lambda
        .call_with(
            "glue-mfa-verify",
            "POST",
            "/multi-factor-auth-type-verify",
            Some(&verify.to_string()),
            &[("authorization", &auth), ("x-mfa-code", &code)],
        )
        .await;
    assert_eq!(status, 204, "{text}");

    // The seed document's requests, verbatim.
    let change = "{\n  \"data\": {\n    \"type\": \"customer-password\",\n    \"attributes\": {\n      \"password\": \"oldPass123\",\n      \"newPassword\": \"NewPass456!\",\n      \"confirmPassword\": \"NewPass456!\"\n    }\n  }\n}";
    let path = format!("/customer-password/{reference}");
    let (status, text) = lambda
        .call_with(
            "glue-customer-password",
            "PATCH",
            &path,
            Some(change),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (
            403,
            r#"{"errors":[{"status":403,"code":"5900","detail":"X-MFA-Code header is missing."}]}"#
        )
    );
    let trigger = "{\n  \"data\": {\n    \"type\": \"multi-factor-auth-trigger\",\n    \"attributes\": {\n      \"type\": \"email\"\n    }\n  }\n}";
    let (status, text) = lambda
        .call_with(
            "glue-mfa-trigger",
            "POST",
            "/multi-factor-auth-trigger",
            Some(trigger),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!((status, text.as_str()), (204, ""));
    let code = emailed_code(&email, 2).await;
    let (status, text) = lambda
        .call_with(
            "glue-customer-password",
            "PATCH",
            &path,
            Some(change),
            &[
                ("authorization", &auth),
                ("x-mfa-code", &code),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(status, 204, "{text}");
    let (status, _) = lambda
        .call_with(
            "glue-mfa-types",
            "GET",
            "/multi-factor-auth-types",
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        status, 401,
        "every session was revoked with the password change"
    );
    let body = json!({"data": {"type": "access-tokens", "attributes": {"username": email, "password": "NewPass456!"}}});
    let (status, _) = lambda
        .call_with(
            "glue-access-tokens",
            "POST",
            "/access-tokens",
            Some(&body.to_string()),
            &[("content-type", JSON_API)],
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_event_and_refuses_malformed_ones() {
    let stack = Stack::new();
    stack.cli(&["user", "list"]);
    let lambda = Emulator::start(&stack).await;
    let events = root().join("events");
    for route in routes::all() {
        let event = events.join(format!("{}.json", route.name));
        assert!(event.exists(), "events/{}.json is missing", route.name);
        let sample: Value =
            serde_json::from_str(&std::fs::read_to_string(&event).unwrap()).unwrap();
        let expected = sample["latchkeyExpect"]["statusCode"]
            .as_i64()
            .unwrap_or_else(|| {
                panic!(
                    "events/{}.json states no latchkeyExpect.statusCode",
                    route.name
                )
            });
        let answer = lambda.invoke(route.name, &event);
        assert_eq!(
            answer["statusCode"].as_i64(),
            Some(expected),
            "{} answered its sample event ({}) with {answer}; its log:\n{}",
            route.name,
            sample["latchkeyExpect"]["why"],
            std::fs::read_to_string(stack.dir.path().join(format!("{}.log", route.name)))
                .unwrap_or_default()
        );
        let why = "The event is not an API Gateway HTTP API (payload 2.0) request.";
        if route.dialect == Dialect::LinkPage {
            // The customer's pages answer in HTML, errors included.
            let html = answer["body"].as_str().unwrap_or_default();
            assert!(
                html.starts_with("<!doctype html>"),
                "{}: {answer}",
                route.name
            );
            let answer = lambda.invoke(route.name, &events.join("malformed.json"));
            assert_eq!(answer["statusCode"], 400, "{}: {answer}", route.name);
            assert!(answer["body"].as_str().unwrap().contains(why));
            continue;
        }
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap();
        if expected >= 400 {
            assert!(
                error_text(route.dialect, &body).is_some(),
                "{}: {answer}",
                route.name
            );
        }

        let answer = lambda.invoke(route.name, &events.join("malformed.json"));
        assert_eq!(answer["statusCode"], 400, "{}: {answer}", route.name);
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            error_text(route.dialect, &body),
            Some(why),
            "{}",
            route.name
        );
    }
}

#[test]
fn the_cli_on_a_stacks_table_refuses_to_run_without_the_stacks_keys() {
    let stack = Stack::new();
    let env: Vec<(&str, String)> = stack
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "LATCHKEY_KEYS_FILE")
        .collect();
    let out = cli_raw(
        &[
            "--store",
            "dynamodb",
            "--table",
            &stack.table,
            "user",
            "list",
        ],
        &env,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LATCHKEY_KEYS_SSM_PARAMETER"), "{err}");
}

/// The table's stream records, read from the emulator as the event source mapping reads them
/// and filtered as `template.yaml`'s filter does (inserts of mail requests only): a DynamoDB
/// stream event for `link-mailer`, and how many records the stream held in all.
fn stream_event(table: &str) -> (Value, usize) {
    const READ: &str = r#"
import boto3, json, sys
endpoint, table = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
arn = boto3.client("dynamodb", **kw).describe_table(TableName=table)["Table"]["LatestStreamArn"]
streams = boto3.client("dynamodbstreams", **kw)
records = []
for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        out = streams.get_records(ShardIterator=it)
        records += out["Records"]
        it = out.get("NextShardIterator") if out["Records"] else None
keep = [dict(r, eventSourceARN=arn) for r in records
        if r["eventName"] == "INSERT"
        and r["dynamodb"]["Keys"]["pk"]["S"].startswith("LINKMAIL#")
        and r["dynamodb"]["Keys"]["sk"]["S"] == "REQUEST"]
def plain(v):
    if isinstance(v, (bytes, bytearray)):
        import base64
        return base64.b64encode(v).decode()
    return str(v)
print(json.dumps({"all": len(records), "event": {"Records": keep}}, default=plain))
"#;
    let out = Command::new("python3")
        .args(["-c", READ, &aws_endpoint(), table])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reading the stream: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        read["event"].clone(),
        read["all"].as_u64().unwrap() as usize,
    )
}

/// The document's two requests through the functions, the link emailed by `link-mailer` from
/// the table's stream (through SES on the emulator, once however often the record is
/// delivered), then followed through the landing and confirm functions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_links_under_the_lambda_runtime_mailed_from_the_stream() {
    verify_ses_sender(MAIL_FROM).await;
    let stack = Stack::new();
    let customer = format!("buyer-{}@example.com", namespace());
    stack.cli(&[
        "user",
        "add",
        "--username",
        &customer,
        "--email",
        &customer,
        "--password",
        PASSWORD,
        "--role",
        "customer",
    ]);
    let out = stack.cli(&[
        "integration",
        "add",
        "--name",
        "storefront",
        "--resource",
        "Magento_Customer::manage",
    ]);
    let bearer = latchkey_tests::integration_token(&out);
    let lambda = Emulator::start(&stack).await;

    let (status, created) = lambda
        .call(
            "magic-link-create-token",
            "POST",
            "/rest/V1/otp/createToken",
            Some(json!({"email": customer, "storeId": "1", "expiry": 5})),
            Some(&bearer),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let (status, url) = lambda
        .call(
            "magic-link-create-url",
            "POST",
            "/rest/V1/otp/createUrl",
            Some(json!({"path": "customer/otp/auth", "token": created})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{url}");
    let url: String = serde_json::from_str(&url).unwrap();
    assert_eq!(
        url,
        format!("https://auth.example.com/customer/otp/auth/token/{token}/")
    );
    assert!(
        ses_sent_to(&customer).await.is_empty(),
        "the API sent nothing itself"
    );

    // The stream, as the event source mapping hands it over.
    let (event, all) = stream_event(&stack.table);
    let records = event["Records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "one mail request");
    assert!(all > records.len(), "the filter left the other items out");
    let text = event.to_string();
    assert!(
        !text.contains(&token),
        "no token in clear in the mailer's event"
    );
    assert!(!text.contains("password_hash") && !text.contains("$argon2id"));
    let file = stack.dir.path().join("stream-event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    for _ in 0..2 {
        let answer = lambda.invoke("link-mailer", &file);
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let mail = ses_sent_to(&customer).await;
    assert_eq!(mail.len(), 1, "one email for a record delivered twice");
    assert_eq!(mail[0]["source"], MAIL_FROM);
    let body = mail[0]["body"].as_str().unwrap();
    assert!(body.contains(&url), "{body}");

    // Follow the link through the page's functions.
    let path = format!("/customer/otp/auth/token/{token}/");
    let (status, page) = lambda
        .call("magic-link-landing", "GET", &path, None, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form method=\"post\""));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let confirm = |client: &reqwest::Client| {
        client
            .post(lambda.url("magic-link-confirm", &path))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
    };
    let signed_in = confirm(&client).await.unwrap();
    assert_eq!(signed_in.status(), 302);
    assert_eq!(signed_in.headers()["location"], "https://auth.example.com/");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax")
    );
    assert_eq!(confirm(&client).await.unwrap().status(), 410, "once");

    // The sample events of the mailer.
    for name in ["link-mailer", "link-mailer-sqs", "link-mailer-eventbridge"] {
        let answer = lambda.invoke("link-mailer", &root().join(format!("events/{name}.json")));
        assert!(
            answer == json!({"batchItemFailures": []}) || answer == json!({"status": "ok"}),
            "{name}: {answer}"
        );
    }
}

/// The wizard's four steps by SMS under the Lambda runtime: the code travels through SNS (read
/// back from `moto_server`), the tokens verify with PyJWT against the `jwks` function's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_by_sms_under_the_lambda_runtime() {
    let stack = Stack::new();
    let n = namespace();
    let digits: String = n.chars().filter(char::is_ascii_digit).take(7).collect();
    let phone = format!("+1555{digits:0>7}");
    let email = format!("client-{n}@example.com");
    stack.cli(&[
        "user",
        "add",
        "--username",
        &email,
        "--email",
        &email,
        "--password",
        PASSWORD,
        "--role",
        "customer",
        "--totp-secret",
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        "--phone",
        &phone,
    ]);
    let lambda = Emulator::start(&stack).await;

    let (status, body) = lambda
        .call(
            "wizard-signin-wizard",
            "GET",
            "/api/v2/my/signin/wizard",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let uuid = serde_json::from_str::<Value>(&body).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = json!({"uuid": uuid, "email": email, "password": PASSWORD,
                       "device_fingerprint": "eyJ1c2VyX2FnZW50IjoiY3VybCJ9"});
    let (status, body) = lambda
        .call(
            "wizard-signin",
            "POST",
            "/api/v2/my/signin",
            Some(creds),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""workflow":"2fa""#), "{body}");
    let (status, body) = lambda
        .call(
            "wizard-signin-2fa",
            "POST",
            "/api/v2/my/signin/2fa",
            Some(json!({"uuid": uuid, "type": "sms"})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""workflow":"2fa_sms_auth""#), "{body}");
    let sent = latchkey_tests::stores::sns_sent_to(&phone).await;
    assert_eq!(sent.len(), 1, "one SMS through SNS: {sent:?}");
    let text = sent[0]["message"].as_str().unwrap_or_default();
    let code = text.split_whitespace().next().unwrap().to_owned();
    assert_eq!(code.len(), 6, "{text}");
    let (status, body) = lambda
        .call(
            "wizard-2fa-sms",
            "POST",
            "/api/v2/my/2fa/sms",
            Some(json!({"uuid": uuid, "code": code})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let (_, jwks) = lambda
        .call("jwks", "GET", "/.well-known/jwks.json", None, None)
        .await;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    for name in ["accessToken", "refreshToken"] {
        let token = answer["data"][name]["token"].as_str().unwrap();
        let (header, claims) = latchkey_tests::independent::pyjwt_verify_rs256(
            token,
            &jwks,
            "https://auth.example.com",
            stack.clock,
        );
        assert_eq!(header["alg"], "RS256");
        assert!(claims["iat_mt"].is_string());
    }
    let access = answer["data"]["accessToken"]["token"].as_str().unwrap();
    let (status, body) = lambda
        .call("wizard-user", "GET", "/api/v2/my/user", None, Some(access))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&email));
}
