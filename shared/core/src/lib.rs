//! latchkey's identity core.
//!
//! Everything a sign-in needs — users and their factors, credentials, codes, tokens, limits,
//! audit events — and the HTTP handlers of every dialect, written against small ports
//! ([`store::Store`], [`ports::Mailer`], [`ports::SmsSender`], [`ports::Clock`],
//! [`ports::Rng`]) and against `http::Request`/`Response`. The local server and each Lambda
//! function call the very same [`App::handle`]; nothing here knows which one runs it.

pub mod app;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod dialects;
pub mod forwarded;
pub mod identity;
pub mod link_mailer;
pub mod ports;
pub mod records;
pub mod routes;
pub mod store;
pub mod stores;
pub mod templates;
pub mod web;

pub use app::{App, Deps};
