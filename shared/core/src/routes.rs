//! The route table: every endpoint latchkey serves, once. Each dialect module declares its own
//! routes, each with the function that handles it, so a route without a handler (or a handler
//! without a route) does not compile. The local server dispatches through the table, each
//! Lambda function serves exactly one entry of it, `template.yaml` declares one function per
//! entry and `openapi.json` documents each; tests keep all four in step.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use http::Method;

use crate::app::App;
use crate::dialects::{self, Dialect};
use crate::web::{Request, Response};

/// Outbound messages an endpoint may send (drives least-privilege IAM in the template).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    Nothing,
    Email,
    Sms,
    /// Email or SMS, by the user's choice of factor.
    EmailAndSms,
}

/// A request matched to its route: the request and the path's parameters.
#[derive(Debug)]
pub struct Call {
    pub req: Request,
    pub params: Params,
}

/// The future a handler returns.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// What serves a route: the application and the call in, the dialect's answer out.
pub type Handler = for<'a> fn(&'a App, Call) -> Reply<'a>;

/// How a dialect's error becomes its answer.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

/// A handler's result as the answer.
pub fn respond<E: IntoResponse>(result: Result<Response, E>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Turns `async fn name(app: &App, call: &Call) -> Result<Response, E>` (with `E:
/// IntoResponse`) into a [`Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn handle(app: &$crate::app::App, call: $crate::routes::Call) -> $crate::routes::Reply<'_> {
            Box::pin(async move { $crate::routes::respond($f(app, &call).await) })
        }
        handle as $crate::routes::Handler
    }};
}
pub(crate) use handler;

/// One endpoint.
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
    pub handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Every endpoint, dialect by dialect.
pub fn all() -> impl Iterator<Item = &'static Route> {
    dialects::TABLES.iter().flat_map(|table| table.iter())
}

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
///
/// A path that is one of the table's fixed patterns, which no pattern with parameters also
/// matches, is found in a map; any other path is matched against the table in order. The
/// answer is the same either way (a test checks every fixed path): the scan was a tenth of a
/// token check's CPU time under load (`scripts/bench`).
pub fn lookup(method: &Method, path: &str) -> Lookup {
    match FIXED.get(path) {
        Some(routes) => lookup_in(routes.iter().copied(), method, path),
        None => lookup_in(all(), method, path),
    }
}

/// The routes of each fixed path (a pattern without parameters) that no pattern with
/// parameters matches, in table order.
static FIXED: LazyLock<HashMap<&'static str, Vec<&'static Route>>> = LazyLock::new(|| {
    let with_params: Vec<&'static str> = all()
        .flat_map(|r| r.paths.iter().copied())
        .filter(|p| p.contains('{'))
        .collect();
    let mut fixed: HashMap<&'static str, Vec<&'static Route>> = HashMap::new();
    for route in all() {
        for &path in route.paths {
            if !path.contains('{') && !with_params.iter().any(|p| match_pattern(p, path).is_some())
            {
                fixed.entry(path).or_default().push(route);
            }
        }
    }
    fixed
});

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
    all().find(|r| r.name == name)
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

    /// The map of fixed paths answers as the scan of the whole table does.
    #[test]
    fn fixed_paths_are_found_as_the_table_scan_finds_them() {
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ];
        let paths: Vec<&str> = all().flat_map(|r| r.paths.iter().copied()).collect();
        assert!(!FIXED.is_empty());
        for path in paths {
            for method in &methods {
                let fast = format!("{:?}", lookup(method, path));
                let scan = format!("{:?}", lookup_in(all(), method, path));
                assert_eq!(fast, scan, "{method} {path}");
            }
        }
    }

    #[test]
    fn names_are_unique_kebab_case_and_paths_do_not_collide() {
        let mut names: Vec<_> = all().map(|r| r.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for r in all() {
            assert!(
                r.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.name
            );
        }
        let mut pairs: Vec<_> = all()
            .flat_map(|r| r.paths.iter().map(move |p| (r.method.as_str(), *p)))
            .collect();
        pairs.sort_unstable();
        let before = pairs.len();
        pairs.dedup();
        assert_eq!(before, pairs.len());
    }
}
