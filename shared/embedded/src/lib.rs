//! Embedded adapters for running latchkey without AWS: the SQLite store and the local outbox.

mod cache;
pub mod outbox;
pub mod store;
