//! A login link followed in a real browser: Debian's headless Chromium, driven over WebDriver
//! (`chromedriver`), against the real `latchkey serve` on an empty data dir — once with
//! JavaScript and once without. The document's two requests make the link; the link is read
//! from the local outbox (where the in-process mailer puts it within a second); the page's
//! button signs in; the session cookie then signs in a page of the same site; the used link's
//! page offers a new one, whose form works too.
//!
//! `./scripts/test` installs `chromium` and `chromium-driver` (apt) when they are missing.
#![allow(clippy::disallowed_methods)] // real processes, real time

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latchkey_tests::free_port;
use latchkey_tests::webdriver::Browser;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const CUSTOMER: &str = "buyer@example.com";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

fn latchkey(data_dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(target_dir().join("debug/latchkey"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env_remove("LATCHKEY_KEYS")
        .env_remove("LATCHKEY_KEYS_FILE")
        .output()
        .expect("target/debug/latchkey (the workspace test build makes it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "latchkey {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A child process killed with the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_up(url: &str, what: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = latchkey_tests::http().get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the page's own script ran (it marks the document when it did).
fn page_script_ran(browser: &Browser) -> bool {
    browser.source().contains("data-js=\"on\"")
}

/// The newest email to `to` whose body contains `needle` and not `not`, waited for at most
/// `within`.
async fn email_with(
    base: &str,
    to: &str,
    needle: &str,
    not: &str,
    within: Duration,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let outbox: Value = latchkey_tests::http()
            .get(format!("{base}/_dev/outbox.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(mail) = outbox.as_array().unwrap().iter().find(|m| {
            let body = m["body"].as_str().unwrap_or("");
            m["to"] == to && body.contains(needle) && (not.is_empty() || !body.contains(not))
        }) {
            return (mail.clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "no email to {to} with {needle} in the outbox after {within:?}: {outbox}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn link_in(text: &str, base: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/customer/otp/auth/token/")))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_in_headless_chromium_with_and_without_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Command::new(target_dir().join("debug/latchkey"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env("LATCHKEY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("latchkey serve");
    let _server = Running(server);
    wait_until_up(&format!("{base}/health"), "latchkey serve").await;
    latchkey(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            CUSTOMER,
            "--email",
            CUSTOMER,
            "--password",
            PASSWORD,
            "--role",
            "customer",
        ],
    );
    let out = latchkey(
        dir.path(),
        &[
            "integration",
            "add",
            "--name",
            "storefront",
            "--resource",
            "Magento_Customer::manage",
        ],
    );
    let bearer = latchkey_tests::integration_token(&out);

    let http = latchkey_tests::http();

    for javascript in [true, false] {
        // The document's requests, with the customer's address and a `next` on the site.
        let created: Value = http
            .post(format!("{base}/rest/V1/otp/createToken"))
            .bearer_auth(&bearer)
            .json(&json!({"email": CUSTOMER, "storeId": "1", "expiry": 5, "next": "/rest/V1/customers/me"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = created["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"));
        let url: String = http
            .post(format!("{base}/rest/V1/otp/createUrl"))
            .json(&json!({"path": "customer/otp/auth", "token": created}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            url,
            format!("{base}/customer/otp/auth/token/{token}/"),
            "the public URL defaults to the address latchkey serve listens on"
        );
        let (mail, waited) = email_with(&base, CUSTOMER, &url, "", Duration::from_secs(1)).await;
        eprintln!("the link was in the outbox {waited:?} after createUrl answered");
        let link = link_in(mail["body"].as_str().unwrap(), &base);
        assert_eq!(link, url);
        assert!(
            mail["html"]
                .as_str()
                .unwrap()
                .contains(&format!("href=\"{url}\""))
        );

        let profile = tempfile::tempdir().unwrap();
        let browser = Browser::start(javascript, profile.path());
        browser.open(&link);
        let page = browser.source();
        assert!(page.contains("Sign in to Default Store View"), "{page}");
        assert_eq!(
            page_script_ran(&browser),
            javascript,
            "the page's script runs exactly when JavaScript is on"
        );
        // Loading the page (as a scanner would) burned nothing: the button still signs in.
        browser.open(&link);
        browser.click("form button");
        let me = format!("{base}/rest/V1/customers/me");
        browser.wait_for_url(&me);
        let signed_in = browser.source();
        assert!(
            signed_in.contains(CUSTOMER),
            "the cookie signs the page in: {signed_in}"
        );
        let cookies = browser.cookies();
        let session = cookies
            .iter()
            .find(|c| c["name"] == "latchkey_customer_token")
            .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
        assert_eq!(session["httpOnly"], true);
        assert_eq!(session["secure"], true);
        assert_eq!(session["sameSite"], "Lax");

        // The used link: a clear page offering a new one, whose form sends it.
        browser.open(&link);
        let used = browser.source();
        assert!(used.contains("already used"), "{used}");
        browser.type_into("input[name=email]", CUSTOMER);
        browser.click("form button");
        browser.wait_for_url(&format!("{base}/customer/otp/request"));
        assert!(browser.source().contains("Check your inbox"));
        let (fresh, _) = email_with(
            &base,
            CUSTOMER,
            &format!("{base}/customer/otp/auth/token/"),
            &link,
            Duration::from_secs(1),
        )
        .await;
        assert_ne!(link_in(fresh["body"].as_str().unwrap(), &base), link);
    }
}
