//! The route table: every endpoint latchkey serves, once. The local server dispatches through
//! it, each Lambda function serves exactly one entry of it, `template.yaml` declares one
//! function per entry and `openapi.json` documents each; tests keep all four in step.

use http::Method;

/// Which wire dialect an endpoint speaks (and so which error shape it answers in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Health, OpenAPI and JWKS: plain JSON.
    Core,
    /// Magento 2 REST (`/rest/V1/...`, `/rest/<store_code>/V1/...`).
    Magento,
}

/// Outbound messages an endpoint may send (drives least-privilege IAM in the template).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    Nothing,
    Email,
    Sms,
}

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    /// Kebab-case name: the function's directory under `functions/`, its binary, and (in
    /// PascalCase + `Function`) its logical id in `template.yaml`.
    pub name: &'static str,
    pub method: Method,
    /// Path patterns; `{name}` matches one non-empty segment.
    pub paths: &'static [&'static str],
    pub dialect: Dialect,
    pub sends: Sends,
    /// Whether the endpoint writes to the store (drives IAM: read-only functions get no writes).
    pub writes: bool,
    pub summary: &'static str,
}

macro_rules! magento_paths {
    ($tail:literal) => {
        &[
            concat!("/rest/V1/", $tail),
            concat!("/rest/{store_code}/V1/", $tail),
        ]
    };
}

/// Every endpoint.
pub static ROUTES: &[Route] = &[
    Route {
        name: "health",
        method: Method::GET,
        paths: &["/health"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "Readiness: 200 once the server or function can take requests.",
    },
    Route {
        name: "openapi",
        method: Method::GET,
        paths: &["/openapi.json"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "This API as an OpenAPI 3.1 document.",
    },
    Route {
        name: "jwks",
        method: Method::GET,
        paths: &["/.well-known/jwks.json"],
        dialect: Dialect::Core,
        sends: Sends::Nothing,
        writes: false,
        summary: "Public keys of every asymmetric signing key in use, as a JWK set.",
    },
    Route {
        name: "magento-admin-token",
        method: Method::POST,
        paths: magento_paths!("integration/admin/token"),
        dialect: Dialect::Magento,
        sends: Sends::Email,
        writes: true,
        summary: "Admin sign-in by password; with 2FA on, names the providers to use instead.",
    },
    Route {
        name: "magento-customer-token",
        method: Method::POST,
        paths: magento_paths!("integration/customer/token"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Customer sign-in by email (or username) and password.",
    },
    Route {
        name: "magento-google-authenticate",
        method: Method::POST,
        paths: magento_paths!("tfa/provider/google/authenticate"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Admin sign-in with password and Google Authenticator code.",
    },
    Route {
        name: "magento-google-configure",
        method: Method::POST,
        paths: magento_paths!("tfa/provider/google/configure"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "First-time 2FA setup: the secret and its QR code, for an emailed tfaToken.",
    },
    Route {
        name: "magento-google-activate",
        method: Method::POST,
        paths: magento_paths!("tfa/provider/google/activate"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "First-time 2FA setup: confirm the authenticator with one code.",
    },
    Route {
        name: "magento-tfat-user-providers",
        method: Method::GET,
        paths: magento_paths!("tfa/tfat-user-providers"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "Providers of the user a tfaToken was issued for.",
    },
    Route {
        name: "magento-tfat-providers-to-activate",
        method: Method::GET,
        paths: magento_paths!("tfa/tfat-providers-to-activate"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "Providers still to configure for the user a tfaToken was issued for.",
    },
    Route {
        name: "magento-installed-providers",
        method: Method::GET,
        paths: magento_paths!("tfa/installed-providers"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "Every 2FA provider this installation offers.",
    },
    Route {
        name: "magento-forced-providers",
        method: Method::GET,
        paths: magento_paths!("tfa/forced-providers"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "The 2FA providers every admin must use.",
    },
    Route {
        name: "magento-user-providers",
        method: Method::GET,
        paths: magento_paths!("tfa/user-providers/{userId}"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "The 2FA providers of one admin user.",
    },
    Route {
        name: "magento-providers-to-activate",
        method: Method::GET,
        paths: magento_paths!("tfa/providers-to-activate/{userId}"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "The 2FA providers one admin user has yet to configure.",
    },
    Route {
        name: "magento-provider-reset",
        method: Method::POST,
        paths: magento_paths!("tfa/provider/{providerCode}/reset/{userId}"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Reset one provider of a user (what `bin/magento security:tfa:reset` does).",
    },
    Route {
        name: "magento-customers-me",
        method: Method::GET,
        paths: magento_paths!("customers/me"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: false,
        summary: "The signed-in customer.",
    },
    Route {
        name: "magento-revoke-customer-token",
        method: Method::POST,
        paths: magento_paths!("integration/customer/revoke-customer-token"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Revoke every token of the signed-in customer.",
    },
    Route {
        name: "magento-integration-create",
        method: Method::POST,
        paths: magento_paths!("integrations"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Create an integration and its Bearer access token (admin).",
    },
    Route {
        name: "magento-integration-delete",
        method: Method::DELETE,
        paths: magento_paths!("integrations/{integrationId}"),
        dialect: Dialect::Magento,
        sends: Sends::Nothing,
        writes: true,
        summary: "Delete an integration, revoking its access token (admin).",
    },
];

/// Path parameters matched by a route's pattern, in pattern order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Matches `path` against one pattern.
pub fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(Params(params)),
            (Some(w), Some(g)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if g.is_empty() {
                        return None;
                    }
                    params.push((name, g.to_owned()));
                } else if w != g {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// What the table says about a path and method.
#[derive(Debug)]
pub enum Lookup {
    Found(&'static Route, Params),
    /// The path exists, but not for this method; `allowed` lists the methods it takes.
    WrongMethod(Vec<Method>),
    NotFound,
}

/// Finds the route for a method and path. `HEAD` is served as `GET`.
pub fn lookup(method: &Method, path: &str) -> Lookup {
    lookup_in(ROUTES.iter(), method, path)
}

/// As [`lookup`], within a subset of routes (a Lambda function serves one route).
pub fn lookup_in(
    routes: impl Iterator<Item = &'static Route>,
    method: &Method,
    path: &str,
) -> Lookup {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut allowed = Vec::new();
    for route in routes {
        for pattern in route.paths {
            if let Some(params) = match_pattern(pattern, path) {
                if route.method == method {
                    return Lookup::Found(route, params);
                }
                allowed.push(route.method.clone());
            }
        }
    }
    if allowed.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::WrongMethod(allowed)
    }
}

/// The route with this name.
pub fn by_name(name: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.name == name)
}

/// Which dialect's error shape an unmatched path gets.
pub fn dialect_of_path(path: &str) -> Dialect {
    if path.starts_with("/rest/") {
        Dialect::Magento
    } else {
        Dialect::Core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let p = match_pattern(
            "/rest/{store_code}/V1/tfa/user-providers/{userId}",
            "/rest/default/V1/tfa/user-providers/12",
        )
        .unwrap();
        assert_eq!(p.get("store_code"), Some("default"));
        assert_eq!(p.get("userId"), Some("12"));
        assert!(match_pattern("/rest/V1/customers/me", "/rest/V1/customers/me/").is_none());
        assert!(
            match_pattern(
                "/rest/V1/tfa/user-providers/{userId}",
                "/rest/V1/tfa/user-providers/"
            )
            .is_none()
        );
        assert!(match_pattern("/health", "/healthz").is_none());
    }

    #[test]
    fn lookup_distinguishes_wrong_method_from_unknown_path() {
        assert!(
            matches!(lookup(&Method::POST, "/rest/V1/integration/admin/token"), Lookup::Found(r, _) if r.name == "magento-admin-token")
        );
        assert!(matches!(
            lookup(&Method::POST, "/rest/default/V1/integration/admin/token"),
            Lookup::Found(..)
        ));
        assert!(
            matches!(lookup(&Method::GET, "/rest/V1/integration/admin/token"), Lookup::WrongMethod(m) if m == vec![Method::POST])
        );
        assert!(matches!(
            lookup(&Method::GET, "/rest/V1/nothing"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::HEAD, "/health"),
            Lookup::Found(..)
        ));
    }

    #[test]
    fn names_are_unique_kebab_case_and_paths_do_not_collide() {
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for r in ROUTES {
            assert!(
                r.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                r.name
            );
        }
        let mut pairs: Vec<_> = ROUTES
            .iter()
            .flat_map(|r| r.paths.iter().map(move |p| (r.method.as_str(), *p)))
            .collect();
        pairs.sort_unstable();
        let before = pairs.len();
        pairs.dedup();
        assert_eq!(before, pairs.len());
    }
}
