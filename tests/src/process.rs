//! The real `latchkey` binary of the workspace's test build, run as a user runs it: the CLI on a
//! data dir, and `latchkey serve` on a loopback port, each in its own process.
#![allow(clippy::disallowed_methods)] // real processes, real time

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

fn binary() -> PathBuf {
    target_dir().join("debug/latchkey")
}

/// Runs `latchkey --data-dir DATA_DIR ARGS…` to its end and returns what it printed; a failure
/// fails the test.
pub fn latchkey(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(binary())
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
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `latchkey serve` on `127.0.0.1:PORT` over `data_dir`, answering `/health` when this returns.
pub async fn serve(data_dir: &Path, port: u16) -> Running {
    let server = Command::new(binary())
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env("LATCHKEY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("latchkey serve");
    let running = Running(server);
    wait_until_up(&format!("http://127.0.0.1:{port}/health"), "latchkey serve").await;
    running
}

async fn wait_until_up(url: &str, what: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = crate::http().get(url).send().await
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
