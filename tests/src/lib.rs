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
pub mod harness;
pub mod independent;
pub mod otp;
pub mod recording;
pub mod stores;
