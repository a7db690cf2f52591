//! How long aws-lc's first random draw takes in a fresh process (what the first TLS handshake
//! of a cold start pays). Built with `AWS_LC_SYS_NO_JITTER_ENTROPY=1` (the workspace default,
//! `.cargo/config.toml`) and without it, by `scripts/bench-coldstart`.
#![allow(clippy::disallowed_methods)] // it measures real time

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

fn main() -> std::process::ExitCode {
    let mut seed = [0u8; 32];
    let started = std::time::Instant::now();
    let drawn = SystemRandom::new().fill(&mut seed);
    let elapsed = started.elapsed();
    match drawn {
        Ok(()) => {
            println!("{}", elapsed.as_micros());
            std::process::ExitCode::SUCCESS
        }
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
