//! HTTP plumbing shared by every dialect: the request and response types the local server and
//! the Lambda functions hand to the core, and JSON body parsing that tells a dialect *what*
//! was wrong so it can say so in its own words.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};

pub type Request = http::Request<Bytes>;
pub type Response = http::Response<Bytes>;

/// The address the request came from as the runtime saw it, put into the request's extensions
/// by the local server (the socket's peer) or the Lambda glue (`requestContext.http.sourceIp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// The client's address: the [`Peer`], or behind trusted proxies the address they forwarded
/// (see [`crate::forwarded`]). Set by [`crate::App`] before a handler runs; never taken from a
/// header an untrusted client can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client IP of a request, or the unspecified address when the runtime gave none.
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0)
}

/// A response with a JSON body.
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    with_type(
        status,
        Bytes::from(bytes),
        "application/json; charset=utf-8",
    )
}

/// A response with a body of the given content type.
pub fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response {
    let mut res = http::Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An empty response (e.g. 204).
pub fn empty(status: StatusCode) -> Response {
    let mut res = http::Response::new(Bytes::new());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The bearer token of the `Authorization` header, if there is exactly one well-formed one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The value of cookie `name` in the request's `Cookie` headers, if set exactly once.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim());
    let first = found.next()?;
    (found.next().is_none() && !first.is_empty()).then_some(first)
}

/// Why a JSON body could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all, or not UTF-8.
    Malformed,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Larger than the configured limit.
    TooLarge,
}

/// Parses a request body that must be a JSON object. An empty body counts as `{}` so that
/// the dialect reports the missing fields by name.
pub fn json_object(body: &[u8], limit: usize) -> Result<Map<String, Value>, BodyError> {
    if body.len() > limit {
        return Err(BodyError::TooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BodyError::NotAnObject),
        Err(_) => Err(BodyError::Malformed),
    }
}

/// Why a field of a JSON object could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldError {
    Missing(&'static str),
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

/// A required string field. Numbers are accepted and rendered as text, as PHP-based APIs do for
/// scalar parameters; `null`, empty or blank strings count as missing.
pub fn string_field(obj: &Map<String, Value>, field: &'static str) -> Result<String, FieldError> {
    match optional_string_field(obj, field)? {
        Some(s) => Ok(s),
        None => Err(FieldError::Missing(field)),
    }
}

/// An optional string field, with the rules of [`string_field`].
pub fn optional_string_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(FieldError::WrongType {
            field,
            expected: "string",
        }),
    }
}

/// An optional whole-number field; numeric strings are accepted.
pub fn optional_int_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<i64>, FieldError> {
    let wrong = FieldError::WrongType {
        field,
        expected: "int",
    };
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(wrong),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| wrong),
        Some(_) => Err(wrong),
    }
}

/// An optional list of strings.
pub fn optional_string_list(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, FieldError> {
    let wrong = FieldError::WrongType {
        field,
        expected: "string[]",
    };
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| wrong.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong),
    }
}

/// Whether a method may carry a body we read.
pub fn has_body(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Logs a failure of the machinery and returns the id the answer carries, so that a report of
/// the answer finds its log line: `<prefix>-` and 12 hex digits (random, or a counter if the
/// system's randomness fails; not security-relevant).
pub fn report_fault(prefix: &str, fault: &dyn std::fmt::Display) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 6];
    if getrandom::fill(&mut bytes).is_err() {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        bytes.copy_from_slice(n.get(..6).unwrap_or(&[0; 6]));
    }
    let report = format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    tracing::error!(report_id = %report, error = %fault, "request failed");
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer   xyz"),
        );
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer(&h), None, "two Authorization headers are ambiguous");
    }

    #[test]
    fn cookies_are_found_once_by_exact_name() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h, "a"), None);
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; a=v.w; ab=2"));
        assert_eq!(cookie(&h, "a"), Some("v.w"));
        assert_eq!(cookie(&h, "b"), None);
        h.append(header::COOKIE, HeaderValue::from_static("a=other"));
        assert_eq!(cookie(&h, "a"), None, "two values are ambiguous");
    }

    #[test]
    fn json_object_classifies_errors() {
        assert_eq!(json_object(b"{", 100), Err(BodyError::Malformed));
        assert_eq!(json_object(b"[1]", 100), Err(BodyError::NotAnObject));
        assert_eq!(json_object(b"\"x\"", 100), Err(BodyError::NotAnObject));
        assert_eq!(json_object(&[b' '; 101], 100), Err(BodyError::TooLarge));
        assert_eq!(json_object(b"  ", 100), Ok(Map::new()));
        assert_eq!(json_object(&[0xff, 0xfe], 100), Err(BodyError::Malformed));
    }

    #[test]
    fn string_fields() {
        let obj = json!({"a": "x", "b": 12, "c": [1], "d": "  ", "e": null});
        let obj = obj.as_object().unwrap();
        assert_eq!(string_field(obj, "a"), Ok("x".into()));
        assert_eq!(string_field(obj, "b"), Ok("12".into()));
        assert_eq!(
            string_field(obj, "c"),
            Err(FieldError::WrongType {
                field: "c",
                expected: "string"
            })
        );
        assert_eq!(string_field(obj, "d"), Err(FieldError::Missing("d")));
        assert_eq!(string_field(obj, "e"), Err(FieldError::Missing("e")));
        assert_eq!(string_field(obj, "zz"), Err(FieldError::Missing("zz")));
    }

    #[test]
    fn int_and_list_fields() {
        let obj = json!({"n": 5, "s": "7", "bad": "x", "l": ["a", "b"], "lbad": [1]});
        let obj = obj.as_object().unwrap();
        assert_eq!(optional_int_field(obj, "n"), Ok(Some(5)));
        assert_eq!(optional_int_field(obj, "s"), Ok(Some(7)));
        assert!(optional_int_field(obj, "bad").is_err());
        assert_eq!(
            optional_string_list(obj, "l"),
            Ok(Some(vec!["a".into(), "b".into()]))
        );
        assert!(optional_string_list(obj, "lbad").is_err());
    }
}
