//! Shared helpers of the test suite, and the store contract suite every store adapter passes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod audit;
pub mod harness;
pub mod otp;
