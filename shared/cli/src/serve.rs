//! `latchkey serve`: every route on one local HTTP server, plus the development outbox pages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use latchkey_core::App;
use latchkey_core::config::Environment;
use latchkey_core::ports::Clock;
use latchkey_core::web::{self, ClientIp};
use latchkey_embedded::outbox::{self, Outbox};
use latchkey_embedded::store::SqliteStore;
use tokio::net::TcpListener;

use crate::setup::Local;

/// A small sign-in page for the wizard dialect (credentials, 2FA choice, code, QR), served by
/// `latchkey serve` only: it calls the `/api/v2/my/` routes from the browser.
const SIGNIN_PAGE: &str = include_str!("pages/signin.html");

/// Everything a connection needs.
struct Server {
    app: App,
    /// The local outbox, shown at `/_dev/outbox` in development.
    outbox: Option<Arc<Outbox>>,
}

pub async fn run(local: Local, addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let dev_pages = local.app.config.environment == Environment::Development;
    let outbox = local.outbox.filter(|_| dev_pages);
    match outbox {
        Some(_) => tracing::info!(
            "latchkey listening on http://{bound} ({}; outbox at http://{bound}/_dev/outbox)",
            local.location
        ),
        None => tracing::info!("latchkey listening on http://{bound} ({})", local.location),
    }
    if let Some(store) = local.sqlite {
        spawn_sweeper(store, local.app.clock.clone());
    }
    let server = Arc::new(Server {
        app: local.app,
        outbox,
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.serve(req, peer).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

impl Server {
    async fn serve(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> http::Response<Full<Bytes>> {
        let (mut parts, body) = req.into_parts();
        let limit = self.app.config.max_body_bytes;
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return into_hyper(self.app.body_too_large(parts.uri.path())),
        };
        parts.extensions.insert(ClientIp(peer.ip()));
        let req = http::Request::from_parts(parts, body);
        let res = match (req.method(), req.uri().path(), &self.outbox) {
            (&Method::GET, "/_dev/outbox", Some(local)) => web::with_type(
                StatusCode::OK,
                Bytes::from(outbox::render_html(&local.read())),
                "text/html; charset=utf-8",
            ),
            (&Method::GET, "/_dev/outbox.json", Some(local)) => web::with_type(
                StatusCode::OK,
                Bytes::from(outbox::render_json(&local.read())),
                "application/json",
            ),
            // The wizard's sign-in page: local only (a storefront serves its own in production).
            (&Method::GET, "/signin", _) => web::with_type(
                StatusCode::OK,
                Bytes::from_static(SIGNIN_PAGE.as_bytes()),
                "text/html; charset=utf-8",
            ),
            _ => self.app.handle(req).await,
        };
        into_hyper(res)
    }
}

fn into_hyper(res: web::Response) -> http::Response<Full<Bytes>> {
    res.map(Full::new)
}

/// Deletes expired items now and then (reads already ignore them; this keeps the file small).
fn spawn_sweeper(store: Arc<SqliteStore>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = store.sweep_expired(clock.now()).await {
                tracing::warn!(error = %e, "sweeping expired items failed");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
