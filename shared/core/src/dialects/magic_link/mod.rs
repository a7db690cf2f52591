//! The magic-link login dialect: Magento's passwordless customer sign-in. An external platform
//! (or the storefront) asks for a login token (`otp/createToken`), turns it into a link
//! (`otp/createUrl`), or has the whole thing done and emailed (`otp/send`); the customer follows
//! the link, confirms on a small page, and is signed in — once.
//!
//! Two faces: the REST routes under `/rest/V1/otp/` answer in Magento's wire shape (they are
//! [`Dialect::Magento`] routes, with its errors, store codes and Bearer tokens), and the pages
//! under `/customer/otp/` are HTML ([`Dialect::LinkPage`]) that work without JavaScript.
//!
//! The rules live in the core: tokens, single use, throttles and revocation in
//! [`crate::identity::links`], the email in [`crate::link_mailer`].

mod handlers;
mod pages;

use http::Method;

use crate::routes::{Route, Sends, handler};

use super::Dialect;

pub use pages::{bad_request, not_found, too_large, unavailable, wrong_method};

/// The ACL resource a Bearer token needs for the token routes and views (integrations must have
/// been granted it).
pub const LINK_RESOURCE: &str = "Magento_Customer::manage";

/// The cookie the customer's token is set in.
pub const SESSION_COOKIE: &str = "latchkey_customer_token";

macro_rules! rest_paths {
    ($tail:literal) => {
        &[
            concat!("/rest/V1/otp/", $tail),
            concat!("/rest/{store_code}/V1/otp/", $tail),
        ]
    };
}

const LANDING: &[&str] = &[
    "/customer/otp/auth/token/{token}/",
    "/customer/otp/auth/token/{token}",
];

pub static ROUTES: &[Route] = &[
    Route {
        name: "magic-link-create-token",
        method: Method::POST,
        paths: rest_paths!("createToken"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Create a login token for a customer email, store and expiry (admin or integration).",
        handler: handler!(handlers::create_token),
    },
    Route {
        name: "magic-link-create-url",
        method: Method::POST,
        paths: rest_paths!("createUrl"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Turn a login token into its absolute sign-in URL (and have it emailed).",
        handler: handler!(handlers::create_url),
    },
    Route {
        name: "magic-link-send",
        method: Method::POST,
        paths: rest_paths!("send"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Email a customer a login link (same answer for unknown emails; throttled).",
        handler: handler!(handlers::send),
    },
    Route {
        name: "magic-link-customer-tokens",
        method: Method::GET,
        paths: rest_paths!("customers/{customerId}/tokens"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "A customer's login tokens: state, created, expires, used (admin).",
        handler: handler!(handlers::customer_tokens),
    },
    Route {
        name: "magic-link-active-token",
        method: Method::GET,
        paths: rest_paths!("customers/{customerId}/tokens/active"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "A customer's newest login token that still works (admin).",
        handler: handler!(handlers::active_token),
    },
    Route {
        name: "magic-link-revoke-tokens",
        method: Method::POST,
        paths: rest_paths!("customers/{customerId}/tokens/revoke"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Revoke one login token of a customer (`tokenId`) or all of them (admin).",
        handler: handler!(handlers::revoke_tokens),
    },
    Route {
        name: "magic-link-landing",
        method: Method::GET,
        paths: LANDING,
        dialect: Dialect::LinkPage,
        sends: Sends::Nothing,
        writes: false,
        summary: "The link's page: a button that signs in (a prefetch burns nothing).",
        handler: handler!(pages::landing),
    },
    Route {
        name: "magic-link-confirm",
        method: Method::POST,
        paths: LANDING,
        dialect: Dialect::LinkPage,
        sends: Sends::Nothing,
        writes: true,
        summary: "Sign in with the link, once: session cookie and customer token, then 302 to `next`.",
        handler: handler!(pages::confirm),
    },
    Route {
        name: "magic-link-request",
        method: Method::POST,
        paths: &["/customer/otp/request"],
        dialect: Dialect::LinkPage,
        sends: Sends::Nothing,
        writes: true,
        summary: "Form post of the page offering a new link: emails one (same answer for unknown emails).",
        handler: handler!(pages::request),
    },
];
