//! `latchkey serve`: every route on one local HTTP server, plus the development outbox pages.
//!
//! The outbox pages show live set-up tokens and codes, so they exist only in development, and
//! answer only a client on this machine that asked for this machine: a loopback peer *and* a
//! loopback `Host` (and `Origin`, when a browser sends one). The peer check covers a server
//! started on `0.0.0.0`; the `Host` check covers DNS rebinding, where a page of another site
//! reaches the loopback server under its own name. Anyone else gets the 404 of a route that
//! does not exist.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
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
use latchkey_core::identity::links;
use latchkey_core::link_mailer;
use latchkey_core::ports::Clock;
use latchkey_core::store::Key;
use latchkey_core::web::{self, Peer};
use latchkey_embedded::outbox::{self, Outbox};
use latchkey_embedded::store::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

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
    // A server signs people in for hours: its first sign-in need not start the threads.
    local.app.hasher.start_workers();
    if let Some(store) = local.sqlite {
        spawn_sweeper(store, local.app.clock.clone());
    }
    if let Some(requests) = local.mail_requests {
        spawn_link_mailer(local.app.clone(), requests);
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
        parts.extensions.insert(Peer(peer.ip()));
        let req = http::Request::from_parts(parts, body);
        // Asked only of the development pages' paths: the check reads every `Host` and
        // `Origin` header, which no other request needs.
        let local = self.outbox.as_ref().filter(|_| {
            req.method() == Method::GET
                && req.uri().path().starts_with("/_dev/")
                && dev_page_allowed(peer.ip(), &req)
        });
        let res = match (req.uri().path(), local) {
            ("/_dev/outbox", Some(local)) => dev_page(
                Bytes::from(outbox::render_html(&local.read())),
                "text/html; charset=utf-8",
            ),
            ("/_dev/outbox.json", Some(local)) => dev_page(
                Bytes::from(outbox::render_json(&local.read())),
                "application/json",
            ),
            // The wizard's sign-in page: local only (a storefront serves its own in production).
            ("/signin", _) if req.method() == Method::GET => web::with_type(
                StatusCode::OK,
                Bytes::from_static(SIGNIN_PAGE.as_bytes()),
                "text/html; charset=utf-8",
            ),
            _ => self.app.handle(req).await,
        };
        into_hyper(res)
    }
}

/// A development page: never cached, never sniffed, never embedded by another site.
fn dev_page(body: Bytes, content_type: &'static str) -> web::Response {
    let mut res = web::with_type(StatusCode::OK, body, content_type);
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    res
}

/// Whether a request may see the development pages: from a loopback peer, for a loopback
/// host (the `Host` header, and the URI's authority when the request line has one), and, if a
/// browser names the page's origin, from a loopback origin.
fn dev_page_allowed<B>(peer: IpAddr, req: &http::Request<B>) -> bool {
    let headers = req.headers();
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let host_ok = host.to_str().is_ok_and(is_loopback_authority);
    let uri_ok = req
        .uri()
        .authority()
        .is_none_or(|a| is_loopback_authority(a.as_str()));
    let origin_ok = headers
        .get_all(http::header::ORIGIN)
        .iter()
        .all(|o| o.to_str().is_ok_and(is_loopback_origin));
    latchkey_core::forwarded::canonical(peer).is_loopback() && host_ok && uri_ok && origin_ok
}

/// `localhost`, `127.x.y.z` or `[::1]`, with an optional port.
fn is_loopback_authority(authority: &str) -> bool {
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            && v6
                .parse::<std::net::Ipv6Addr>()
                .is_ok_and(|ip| ip.is_loopback());
    }
    let host = match authority.split_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return false,
        None => authority,
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

/// `http://<loopback authority>` (browsers send `Origin` on cross-site requests).
fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(is_loopback_authority)
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

/// The link mailer, in-process: what the `link-mailer` function does on AWS. Each stored
/// request is sent as soon as it is queued (so the link is in the outbox within a second);
/// failed sends are retried with backoff (1, 2, 4, 8 s) until the mailer gives up on them, and a
/// sweep every 5 seconds picks up requests stored while no server ran (by the CLI, or before a
/// restart).
fn spawn_link_mailer(app: App, mut requests: mpsc::UnboundedReceiver<Key>) {
    let sweeper = app.clone();
    tokio::spawn(async move {
        while let Some(key) = requests.recv().await {
            let app = app.clone();
            tokio::spawn(async move { deliver_with_backoff(&app, &key).await });
        }
    });
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            match sweeper.links().pending(100).await {
                Ok(keys) => {
                    for key in keys {
                        deliver_with_backoff(&sweeper, &key).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sweeping login link emails failed"),
            }
        }
    });
}

async fn deliver_with_backoff(app: &App, key: &Key) {
    let mut wait = Duration::from_secs(1);
    for _ in 0..links::MAILER_MAX_TRIES {
        match link_mailer::deliver(app, key).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "login link email not sent yet; retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, uri: &str, origin: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn dev_pages_answer_loopback_clients_asking_for_a_loopback_host_only() {
        let path = "/_dev/outbox.json";
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(
                dev_page_allowed(ip("127.0.0.1"), &req(Some(host), path, None)),
                "{host}"
            );
        }
        assert!(dev_page_allowed(
            ip("::1"),
            &req(Some("localhost"), path, None)
        ));
        assert!(dev_page_allowed(
            ip("::ffff:127.0.0.1"),
            &req(Some("localhost"), path, None)
        ));
        assert!(dev_page_allowed(
            ip("127.0.0.1"),
            &req(Some("localhost:8080"), path, Some("http://localhost:8080"))
        ));
        // DNS rebinding: a loopback peer, another site's name.
        for host in [
            "evil.example.com",
            "evil.example.com:8080",
            "localhost.evil.example.com",
            "127.0.0.1.nip.io",
            "[::2]:8080",
            "localhost:80:80",
            "localhost:http",
            "",
        ] {
            assert!(
                !dev_page_allowed(ip("127.0.0.1"), &req(Some(host), path, None)),
                "{host}"
            );
        }
        // No Host at all, or two of them.
        assert!(!dev_page_allowed(ip("127.0.0.1"), &req(None, path, None)));
        let mut two = req(Some("localhost"), path, None);
        two.headers_mut()
            .append("host", http::HeaderValue::from_static("evil.example.com"));
        assert!(!dev_page_allowed(ip("127.0.0.1"), &two));
        // A request line naming another host.
        assert!(!dev_page_allowed(
            ip("127.0.0.1"),
            &req(
                Some("localhost"),
                "http://evil.example.com/_dev/outbox.json",
                None
            )
        ));
        // A page of another site, sent by the browser of someone on this machine.
        assert!(!dev_page_allowed(
            ip("127.0.0.1"),
            &req(
                Some("localhost:8080"),
                path,
                Some("https://evil.example.com")
            )
        ));
        // A server on 0.0.0.0, reached from another machine, whatever Host it claims.
        for peer in [
            "192.0.2.10",
            "10.0.0.2",
            "2001:db8::1",
            "::ffff:192.0.2.10",
            "0.0.0.0",
        ] {
            assert!(
                !dev_page_allowed(ip(peer), &req(Some("localhost"), path, None)),
                "{peer}"
            );
        }
    }
}
