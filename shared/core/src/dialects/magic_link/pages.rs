//! The pages a customer sees: the link's confirmation page, the signed-in redirect, and the page
//! that offers a new link. Plain HTML forms — they work without JavaScript; with it, a small
//! script only keeps the button from being pressed twice. Nothing here writes on `GET`, so a
//! mail scanner that fetches the link burns nothing.
//!
//! Every page is `no-store`, `noindex`, sends no `Referer` (the token is in the URL), cannot be
//! framed, and runs only its own nonce'd script.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::SESSION_COOKIE;
use crate::app::App;
use crate::dialects::magento::issue_access_token;
use crate::identity::Error;
use crate::identity::links::Dead;
use crate::link_mailer::{self, Refused};
use crate::ports::RngExt;
use crate::routes::{Call, IntoResponse};
use crate::stores::StoreView;
use crate::templates::escape_html as esc;
use crate::web::{self, Response};

const VIA: &str = "magic-link";

/// A page answered instead of the one asked for.
#[derive(Debug)]
pub struct Page(Response);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<Error> for Page {
    fn from(e: Error) -> Self {
        let (status, text) = match &e {
            Error::Fault(f) if f.is_retryable() => {
                tracing::warn!(error = %f, "login link page: store busy");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is busy. Please try again in a moment.".to_owned(),
                )
            }
            Error::Fault(f) => {
                let report = crate::web::report_fault("page", f);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "Something went wrong on our side. Please try again later \
                         (report <code>{report}</code>)."
                    ),
                )
            }
            // A refusal the page did not word itself: the request, not latchkey, is at fault.
            _ => {
                tracing::info!(error = %e, "login link page refused a request");
                (
                    StatusCode::BAD_REQUEST,
                    "This request cannot be completed. Please ask for a new sign-in link."
                        .to_owned(),
                )
            }
        };
        Page(page(status, "Sorry", &format!("<p>{text}</p>"), None))
    }
}

/// Headers every page carries, with the nonce of its script.
fn page(status: StatusCode, title: &str, main: &str, nonce: Option<&str>) -> Response {
    let script = nonce.map_or(String::new(), |n| {
        format!(
            "<script nonce=\"{n}\">document.documentElement.dataset.js='on';for(const f of document.querySelectorAll('form'))f.addEventListener('submit',()=>{{const b=f.querySelector('button');if(b){{b.disabled=true;b.textContent=b.dataset.busy||b.textContent;}}}});</script>"
        )
    });
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><meta name=\"robots\" content=\"noindex,nofollow\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;color:#222;background:#f6f7f9;margin:0}}\
         main{{max-width:28em;margin:4em auto;background:#fff;padding:2em;border-radius:10px;box-shadow:0 1px 4px #0002}}\
         h1{{font-size:1.4em;margin-top:0}}button{{font-size:1.05em;background:#1f5fbf;color:#fff;border:0;border-radius:6px;padding:.7em 1.6em;cursor:pointer}}\
         button:disabled{{background:#888}}input{{font-size:1em;padding:.5em;width:100%;box-sizing:border-box;margin:.3em 0 1em}}\
         .muted{{color:#666;font-size:.9em}}</style></head><body><main>{main}</main>{script}</body></html>",
        title = esc(title),
    );
    let mut res = web::with_type(status, Bytes::from(html), "text/html; charset=utf-8");
    let h = res.headers_mut();
    let csp = match nonce {
        Some(n) => format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{n}'; base-uri 'none'; frame-ancestors 'none'"
        ),
        None => {
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
                .to_owned()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn nonce(app: &App) -> Result<String, Error> {
    let bytes: [u8; 16] = app.rng.bytes().map_err(|_| {
        Error::Fault(crate::identity::Fault::Crypto(
            crate::crypto::CryptoError::Rng,
        ))
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn store_name(app: &App, store_id: u32) -> String {
    app.config
        .stores
        .get(store_id)
        .map_or_else(|| "the store".to_owned(), |s| s.name.clone())
}

/// The form that asks for a new link.
fn new_link_form(store_id: u32) -> String {
    format!(
        "<form method=\"post\" action=\"/customer/otp/request\">\
         <label for=\"email\">Your email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
         <input type=\"hidden\" name=\"store_id\" value=\"{store_id}\">\
         <button type=\"submit\" data-busy=\"Sending…\">Email me a new link</button></form>"
    )
}

/// The page of a link that signs nobody in, offering a new one.
fn dead_page(app: &App, dead: Dead, store_id: u32, nonce: Option<&str>) -> Response {
    let (status, title, why) = match dead {
        Dead::Unknown => (
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid",
            "The link may have been copied incompletely.",
        ),
        Dead::Used => (
            StatusCode::GONE,
            "This sign-in link was already used",
            "Each link signs you in once.",
        ),
        Dead::Expired => (
            StatusCode::GONE,
            "This sign-in link has expired",
            "Links work for a limited time only.",
        ),
        Dead::Revoked => (
            StatusCode::GONE,
            "This sign-in link no longer works",
            "It was withdrawn, for example because your account's sign-ins were reset.",
        ),
    };
    let main = format!(
        "<h1>{}</h1><p>{}</p><p>Enter your email address and we will send you a new link to sign in to {}.</p>{}",
        esc(title),
        esc(why),
        esc(&store_name(app, store_id)),
        new_link_form(store_id)
    );
    page(status, title, &main, nonce)
}

fn default_store(app: &App) -> u32 {
    app.config.stores.all().first().map_or(1, |s| s.id)
}

fn token_param(call: &Call) -> &str {
    call.params.get("token").unwrap_or_default()
}

/// `GET /customer/otp/auth/token/<token>/`: the confirmation page (or why the link is dead).
/// Reads, never writes.
pub async fn landing(app: &App, call: &Call) -> Result<Response, Page> {
    let nonce = nonce(app)?;
    let links = app.links();
    let Some(link) = links.find(token_param(call)).await? else {
        return Ok(dead_page(
            app,
            Dead::Unknown,
            default_store(app),
            Some(&nonce),
        ));
    };
    if let Err(dead) = links.check(&link).await? {
        return Ok(dead_page(app, dead, link.store_id, Some(&nonce)));
    }
    let store = store_name(app, link.store_id);
    let main = format!(
        "<h1>Sign in to {store}</h1>\
         <p>Press the button to sign in. The link works once.</p>\
         <form method=\"post\" action=\"\"><button type=\"submit\" data-busy=\"Signing you in…\">Sign in</button></form>\
         <p class=\"muted\">Did not ask to sign in? Close this page; nothing happens without the button.</p>",
        store = esc(&store)
    );
    Ok(page(
        StatusCode::OK,
        &format!("Sign in to {store}"),
        &main,
        Some(&nonce),
    ))
}

/// A form posted from another site (a login-CSRF attempt, or a mail-bombing form) — browsers
/// say so in `Sec-Fetch-Site`.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

fn cross_site_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Open the link from your email",
        "<h1>Open the link from your email</h1><p>This form can only be sent from its own page.</p>",
        None,
    )
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// `POST /customer/otp/auth/token/<token>/`: signs the customer in, once. A browser gets the
/// session cookie (`HttpOnly; Secure; SameSite=Lax`, holding the customer token) and a 302 to
/// the link's `next` if the store still allows it, else to the store's landing page; a client
/// that asks for JSON gets `{"token", "redirect_url"}` instead.
pub async fn confirm(app: &App, call: &Call) -> Result<Response, Page> {
    if cross_site(call.req.headers()) {
        return Ok(cross_site_page());
    }
    let ip = web::client_ip(&call.req);
    let confirmed = match app.links().confirm(token_param(call), ip, VIA).await? {
        Ok(c) => c,
        Err(dead) => {
            let nonce = nonce(app)?;
            return Ok(dead_page(app, dead, default_store(app), Some(&nonce)));
        }
    };
    let token = issue_access_token(app, &confirmed.user).map_err(|e| {
        tracing::error!(error = ?e.body, "customer token not issued");
        Page::from(Error::Fault(crate::identity::Fault::Task))
    })?;
    let public = &app.config.public_url;
    let store: Option<&StoreView> = app.config.stores.get(confirmed.link.store_id);
    let target = match store {
        Some(store) => confirmed
            .link
            .next
            .as_deref()
            .and_then(|n| store.allowed_next(public, n))
            .unwrap_or_else(|| store.landing_url(public)),
        None => format!("{public}/"),
    };
    if wants_json(call.req.headers()) {
        return Ok(web::json(
            StatusCode::OK,
            &json!({ "token": token, "redirect_url": target }),
        ));
    }
    let mut res = web::empty(StatusCode::FOUND);
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        app.config.magento.customer_token_secs
    );
    let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(&target),
        HeaderValue::from_str(&cookie),
    ) else {
        return Err(Page::from(Error::Fault(crate::identity::Fault::Task)));
    };
    res.headers_mut().insert(header::LOCATION, location);
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(res)
}

/// `POST /customer/otp/request` (form: `email`, `store_id`): emails a new link, with the same
/// answer whether or not the email is a customer's.
pub async fn request(app: &App, call: &Call) -> Result<Response, Page> {
    if cross_site(call.req.headers()) {
        return Ok(cross_site_page());
    }
    let nonce = nonce(app)?;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(call.req.body())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let store_field = field("store_id").unwrap_or_else(|| default_store(app).to_string());
    let store_id = app
        .config
        .stores
        .by_field(&store_field)
        .map_or(default_store(app), |s| s.id);
    let Some(email) = field("email") else {
        let main = format!(
            "<h1>Get a new sign-in link</h1><p>Enter your email address.</p>{}",
            new_link_form(store_id)
        );
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Get a new sign-in link",
            &main,
            Some(&nonce),
        ));
    };
    let ip = web::client_ip(&call.req);
    match link_mailer::ask(app, &email, &store_field, None, Some(ip), None, VIA).await {
        Ok(_) => {
            let minutes = app.config.links.default_secs.min(app.config.links.max_secs) / 60;
            let main = format!(
                "<h1>Check your inbox</h1><p>If <strong>{}</strong> belongs to an account at {}, we have sent it a new sign-in link. It works once and expires in {minutes} minutes.</p>",
                esc(&email),
                esc(&store_name(app, store_id)),
            );
            Ok(page(StatusCode::OK, "Check your inbox", &main, None))
        }
        Err(Refused::Core(Error::RateLimited { .. })) => Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many links",
            "<h1>Too many links</h1><p>Too many sign-in links were asked for. Please wait a few minutes and try again.</p>",
            None,
        )),
        Err(Refused::UnknownStore | Refused::NextNotAllowed) => {
            Ok(bad_request("This store does not exist."))
        }
        Err(Refused::Core(e)) => Err(Page::from(e)),
    }
}

pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "<h1>Page not found</h1><p>There is nothing at this address.</p>",
        None,
    )
}

pub fn wrong_method(allowed: &[Method]) -> Response {
    let mut res = page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "<h1>Not allowed</h1><p>This page cannot be used that way.</p>",
        None,
    );
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

pub fn too_large() -> Response {
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Too large",
        "<h1>Too large</h1><p>The request was too large.</p>",
        None,
    )
}

pub fn unavailable() -> Response {
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<h1>Please try again</h1><p>The service is busy. Reload this page in a moment; your link still works.</p>",
        None,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

pub fn bad_request(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("<h1>Bad request</h1><p>{}</p>", esc(why)),
        None,
    )
}
