//! The application: its ports, its settings, and the one entry point every runtime calls.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::keys::KeySet;
use crate::crypto::password::PasswordHasher;
use crate::dialects;
use crate::ports::{Clock, Mailer, Rng, SmsSender};
use crate::routes::{self, Lookup, Route};
use crate::store::Store;
use crate::web::{Request, Response};

/// Everything a flow may use. Built once per process (per cold start on Lambda).
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub keys: Arc<KeySet>,
    pub config: Config,
    pub hasher: PasswordHasher,
}

/// A cheap-to-clone handle on the application.
#[derive(Clone)]
pub struct App {
    deps: Arc<Deps>,
}

impl std::ops::Deref for App {
    type Target = Deps;
    fn deref(&self) -> &Deps {
        &self.deps
    }
}

impl App {
    pub fn new(deps: Deps) -> Self {
        Self {
            deps: Arc::new(deps),
        }
    }

    /// Serves a request on any route (the local server).
    pub async fn handle(&self, req: Request) -> Response {
        let found = routes::lookup(req.method(), req.uri().path());
        self.dispatch(found, req).await
    }

    /// Serves a request on one route only (a Lambda function); other paths get the
    /// dialect's "no such route" answer.
    pub async fn handle_route(&self, route: &'static Route, req: Request) -> Response {
        let found = routes::lookup_in(std::iter::once(route), req.method(), req.uri().path());
        self.dispatch(found, req).await
    }

    /// The answer to a request whose body exceeded the limit before it was read in full.
    pub fn body_too_large(&self, path: &str) -> Response {
        dialects::too_large(routes::dialect_of_path(path))
    }

    async fn dispatch(&self, found: Lookup, req: Request) -> Response {
        match found {
            Lookup::Found(route, params) => {
                if req.body().len() > self.config.max_body_bytes {
                    return dialects::too_large(route.dialect);
                }
                dialects::handle(self, route, params, req).await
            }
            Lookup::WrongMethod(allowed) => {
                dialects::wrong_method(routes::dialect_of_path(req.uri().path()), &allowed)
            }
            Lookup::NotFound => dialects::not_found(routes::dialect_of_path(req.uri().path())),
        }
    }
}
