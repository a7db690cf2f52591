//! Debian's headless Chromium, driven over the W3C WebDriver protocol by its `chromedriver`
//! (`./scripts/test` installs `chromium` and `chromium-driver`), for the tests of the pages a
//! browser sees: the wizard's sign-in page and the login-link pages.
//!
//! Blocking on purpose: a test drives one browser step by step, and the servers under test run
//! in their own processes, so an async test may call it too. (A WebDriver crate would pull in
//! a second HTTP stack for a handful of JSON calls.)
#![allow(clippy::disallowed_methods)] // real processes, real time

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::free_port;

/// One WebDriver call: ChromeDriver keeps connections open, so the answer is read by its
/// `Content-Length` rather than to the end of the stream.
fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0u8; length];
    reader.read_exact(&mut buf)?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

/// A browser session on its own `chromedriver`, both ended when it is dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium on the empty profile directory `profile`,
    /// with JavaScript on or off.
    pub fn start(javascript: bool, profile: &Path) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; ./scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while call(port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let prefs = if javascript {
            json!({})
        } else {
            json!({"profile.managed_default_content_settings.javascript": 2})
        };
        // The flags that work on these machines: no sandbox as root, no GPU, and no background
        // networking (the network is closed).
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=800,1000",
                         format!("--user-data-dir={}", profile.display())],
                "prefs": prefs,
            },
        }}});
        let (status, body) =
            call(port, "POST", "/session", Some(&caps.to_string())).expect("a WebDriver session");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session ({status}): {body}"))
            .to_owned();
        Self {
            driver,
            port,
            session,
        }
    }

    /// A command of this session; its `value`.
    pub fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then(|| body.to_string());
        let (status, text) = call(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_deref(),
        )
        .expect("WebDriver answers");
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching the CSS selector `css`.
    pub fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/click"), json!({}));
    }

    pub fn cookies(&self) -> Vec<Value> {
        self.cmd("GET", "/cookie", Value::Null)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs `js` (a function body) in the page; its return value.
    pub fn script(&self, js: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({"script": js, "args": []}))
    }

    /// Waits (20 s at most) until `js` (an expression) is truthy in the page.
    pub fn wait_for(&self, js: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.script(&format!("return !!({js});")) == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never got to `{js}`: {}",
                self.script("return document.body.innerText;")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (15 s at most) for the page to be at `url` (after a form post and its redirect).
    pub fn wait_for_url(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.url() != url {
            assert!(
                Instant::now() < deadline,
                "the browser stayed at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window at `to`.
    pub fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let png = self.cmd("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        std::fs::write(to, bytes).expect("the screenshot written");
    }
}
