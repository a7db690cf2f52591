//! The wire dialects. Each is one module: its routes (with their handlers), its error shape and
//! the one mapping of the core's errors onto it. A dialect parses its requests, calls the
//! core's flows and renders its own answers; none holds a rule of its own.
//!
//! Adding a dialect: a module with a `ROUTES` table and an error type implementing
//! [`crate::routes::IntoResponse`] and `From<identity::Error>`, a variant here (the `match`es
//! below then say what else it must decide), and its table in [`TABLES`].

pub mod core;
pub mod glue;
pub mod magento;

use http::Method;

use crate::app::App;
use crate::routes::{Call, Route};
use crate::web::Response;

/// Which wire dialect an endpoint speaks (and so which error shape it answers in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Health, OpenAPI and JWKS: plain JSON.
    Core,
    /// Magento 2 REST (`/rest/V1/...`, `/rest/<store_code>/V1/...`).
    Magento,
    /// Spryker Glue (JSON:API) at the root: `/access-tokens`, `/refresh-tokens`,
    /// `/multi-factor-auth-*`, `/customers`, `/customer-password`, `/token`.
    Glue,
}

/// Every dialect's routes.
pub static TABLES: &[&[Route]] = &[core::ROUTES, magento::ROUTES, glue::ROUTES];

impl Dialect {
    /// Which dialect's error shape a path gets when no route matched it.
    pub fn of_path(path: &str) -> Dialect {
        if path.starts_with("/rest/") {
            Dialect::Magento
        } else if glue::owns_path(path) {
            Dialect::Glue
        } else {
            Dialect::Core
        }
    }

    /// A check every route of the dialect makes before its handler runs; `Some` refuses.
    pub fn admit(self, app: &App, call: &Call) -> Option<Response> {
        match self {
            Dialect::Core => None,
            Dialect::Magento => magento::admit(app, call),
            Dialect::Glue => None,
        }
    }

    /// No route has this path.
    pub fn not_found(self) -> Response {
        match self {
            Dialect::Core => core::not_found(),
            Dialect::Magento => magento::not_found(),
            Dialect::Glue => glue::not_found(),
        }
    }

    /// The path exists, not with this method. Magento answers as for an unknown route.
    pub fn wrong_method(self, allowed: &[Method]) -> Response {
        match self {
            Dialect::Core => core::wrong_method(allowed),
            Dialect::Magento => magento::not_found(),
            Dialect::Glue => glue::wrong_method(allowed),
        }
    }

    pub fn too_large(self) -> Response {
        match self {
            Dialect::Core => core::too_large(),
            Dialect::Magento => magento::too_large(),
            Dialect::Glue => glue::too_large(),
        }
    }

    /// The service cannot answer in time (a store or delivery that stays busy): try again.
    pub fn unavailable(self) -> Response {
        match self {
            Dialect::Core => core::unavailable(),
            Dialect::Magento => magento::unavailable(),
            Dialect::Glue => glue::unavailable(),
        }
    }

    /// A request that is not one at all (e.g. a Lambda event that is not an HTTP request).
    pub fn bad_request(self, why: &'static str) -> Response {
        match self {
            Dialect::Core => core::bad_request(why),
            Dialect::Magento => magento::bad_request(why),
            Dialect::Glue => glue::bad_request(why),
        }
    }
}

/// The answer to a Lambda event that is not an HTTP request at all.
pub fn bad_event(dialect: Dialect) -> Response {
    dialect.bad_request("The event is not an API Gateway HTTP API (payload 2.0) request.")
}
