//! The application: its ports, its settings, and the one entry point every runtime calls.
//!
//! Flows in [`crate::identity`] never see the application; handlers borrow from it exactly the
//! ports a flow names ([`App::db`], [`App::signin`]).

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::keys::KeySet;
use crate::crypto::password::PasswordHasher;
use crate::dialects::Dialect;
use crate::identity::Db;
use crate::identity::memo::TokenMemo;
use crate::identity::signin::{Policy, SignIn};
use crate::ports::{Clock, LinkQueue, Mailer, Recaptcha, Rng, SmsSender};
use crate::routes::{self, Call, Lookup, Route};
use crate::store::Store;
use crate::web::{ClientIp, Peer, Request, Response};

/// Everything a flow may use. Built once per process (per cold start on Lambda).
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
    /// Told of every stored request to email a login link (see [`LinkQueue`]).
    pub link_queue: Arc<dyn LinkQueue>,
    /// Checks reCAPTCHA responses where a dialect asks for them.
    pub recaptcha: Arc<dyn Recaptcha>,
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
    /// Magento bearer tokens already checked (see [`TokenMemo`]).
    pub(crate) magento_tokens: Arc<TokenMemo<crate::dialects::magento::Principal>>,
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
            magento_tokens: Arc::default(),
        }
    }

    /// The store and the clock, for flows that read or write state.
    pub fn db(&self) -> Db<'_> {
        Db::new(self.store.as_ref(), self.clock.as_ref())
    }

    /// Sessions (signed access tokens and refresh families).
    pub fn sessions(&self) -> crate::identity::sessions::Sessions<'_> {
        crate::identity::sessions::Sessions {
            db: self.db(),
            keys: &self.keys,
            rng: self.rng.as_ref(),
        }
    }

    /// One-time codes by email and SMS.
    pub fn codes(&self) -> crate::identity::codes::Codes<'_> {
        crate::identity::codes::Codes {
            db: self.db(),
            rng: self.rng.as_ref(),
            pepper: self.keys.pepper(),
            mailer: self.mailer.as_ref(),
            sms: self.sms.as_ref(),
            sealer: &self.keys.sealer,
            queue: self.link_queue.as_ref(),
        }
    }

    /// Login links: store, clock, randomness, the pepper and sealer of their tokens.
    pub fn links(&self) -> crate::identity::links::Links<'_> {
        crate::identity::links::Links {
            db: self.db(),
            rng: self.rng.as_ref(),
            pepper: self.keys.pepper(),
            sealer: &self.keys.sealer,
            queue: self.link_queue.as_ref(),
        }
    }

    /// The email and text templates, with the deployment's overrides.
    pub fn templates(&self) -> crate::templates::Templates<'_> {
        crate::templates::Templates::new(self.config.templates_dir.as_deref())
    }

    /// Multi-step flows (sign-in wizards, enrolments, QR sign-in).
    pub fn flows(&self) -> crate::identity::flows::Flows<'_> {
        crate::identity::flows::Flows {
            db: self.db(),
            rng: self.rng.as_ref(),
        }
    }

    /// Sign-in under a dialect's policy.
    pub fn signin<'a>(&'a self, policy: &'a Policy) -> SignIn<'a> {
        SignIn {
            db: self.db(),
            hasher: &self.hasher,
            sealer: &self.keys.sealer,
            pepper: self.keys.pepper(),
            policy,
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
        Dialect::of_path(path).too_large()
    }

    async fn dispatch(&self, found: Lookup, mut req: Request) -> Response {
        if let Some(Peer(peer)) = req.extensions().get::<Peer>().copied() {
            let client = self.config.trusted_proxies.client(peer, req.headers());
            req.extensions_mut().insert(ClientIp(client));
        }
        match found {
            Lookup::Found(route, params) => {
                if req.body().len() > self.config.max_body_bytes {
                    return route.dialect.too_large();
                }
                let call = Call { req, params };
                if let Some(refused) = route.dialect.admit(self, &call) {
                    return refused;
                }
                (route.handler)(self, call).await
            }
            Lookup::WrongMethod(allowed) => {
                Dialect::of_path(req.uri().path()).wrong_method(&allowed)
            }
            Lookup::NotFound => Dialect::of_path(req.uri().path()).not_found(),
        }
    }
}
