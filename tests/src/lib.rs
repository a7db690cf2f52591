//! Shared helpers of the test suite, and the store contract suite every store adapter passes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod audit;
pub mod contract;
pub mod fake_service;
pub mod fuzz;
pub mod harness;
pub mod independent;
pub mod jsonapi;
pub mod otp;
pub mod recording;
pub mod stores;
pub mod walk;
pub mod webdriver;

/// A loopback port free at the time of asking, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client for tests: every request times out (a stalled server fails the test instead
/// of hanging CI).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// The access token `latchkey integration add` printed (its line `access token: ...`).
pub fn integration_token(cli_output: &str) -> String {
    cli_output
        .lines()
        .find_map(|l| l.strip_prefix("access token: "))
        .unwrap_or_else(|| panic!("no access token in: {cli_output}"))
        .trim()
        .to_owned()
}
