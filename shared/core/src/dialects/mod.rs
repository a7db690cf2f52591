//! The wire dialects. Each parses its requests, calls the core's flows and renders its own
//! answers and errors; none holds a rule of its own.

pub mod core;

use http::Method;

use crate::app::App;
use crate::routes::{Dialect, Params, Route};
use crate::web::{Request, Response};

pub async fn handle(app: &App, route: &'static Route, params: Params, req: Request) -> Response {
    let _ = &params;
    match route.dialect {
        Dialect::Core => core::handle(app, route, req).await,
        Dialect::Magento => core::not_found(),
    }
}

pub fn not_found(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Core | Dialect::Magento => core::not_found(),
    }
}

pub fn wrong_method(dialect: Dialect, allowed: &[Method]) -> Response {
    match dialect {
        Dialect::Core | Dialect::Magento => core::wrong_method(allowed),
    }
}

pub fn too_large(dialect: Dialect) -> Response {
    match dialect {
        Dialect::Core | Dialect::Magento => core::too_large(),
    }
}
