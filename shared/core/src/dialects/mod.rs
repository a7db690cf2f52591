//! The wire dialects. Each parses its requests, calls the core's flows and renders its own
//! answers and errors; none holds a rule of its own.

pub mod core;
pub mod magento;

use http::Method;

use crate::app::App;
use crate::routes::{Dialect, Params, Route};
use crate::web::{Request, Response};

pub async fn handle(app: &App, route: &'static Route, params: Params, req: Request) -> Response {
    match route.dialect {
        Dialect::Core => core::handle(app, route, req).await,
        Dialect::Magento => magento::handle(app, route, params, req).await,
    }
}

/// No route has this path.
pub fn not_found(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Core => core::not_found(),
        Dialect::Magento => magento::not_found(),
    }
}

/// The path exists, not with this method. Magento answers as for an unknown route.
pub fn wrong_method(dialect: Dialect, allowed: &[Method]) -> Response {
    match dialect {
        Dialect::Core => core::wrong_method(allowed),
        Dialect::Magento => magento::not_found(),
    }
}

pub fn too_large(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Core => core::too_large(),
        Dialect::Magento => magento::too_large(),
    }
}

/// The answer to a Lambda event that is not an HTTP request at all.
pub fn bad_event(dialect: Dialect) -> Response {
    const WHY: &str = "The event is not an API Gateway HTTP API (payload 2.0) request.";
    match dialect {
        Dialect::Core => core::bad_request(WHY),
        Dialect::Magento => {
            magento::MagentoError::new(http::StatusCode::BAD_REQUEST, WHY).into_response()
        }
    }
}
