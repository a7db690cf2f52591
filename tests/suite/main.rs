//! The one integration-test binary (each extra test file would be another link of the tree).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod aws;
mod browser;
mod flows;
mod glue;
mod lambda;
mod magento;
mod magic_link;
mod openapi;
mod primitives;
mod readme;
mod security;
mod senders;
mod store_contract;
mod template;
mod wizard;
