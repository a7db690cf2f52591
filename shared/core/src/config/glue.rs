//! The Glue dialect's settings (`LATCHKEY_GLUE_*`): token lifetimes and algorithm, the MFA types
//! offered, which resources need an `X-MFA-Code`, and the rules of emailed and texted codes.

use std::collections::BTreeSet;

use super::{ConfigError, bad, number};
use crate::crypto::keys::SigningAlg;
use crate::identity::codes::{self, Delivery, SendLimits, Use};
use crate::identity::limits::Window;
use crate::identity::sessions;
use crate::identity::signin::Policy;
use crate::identity::users::Budget;

/// An MFA type of the Glue API, as its clients name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MfaType {
    Email,
    Totp,
    Sms,
}

impl MfaType {
    pub const ALL: [MfaType; 3] = [MfaType::Email, MfaType::Totp, MfaType::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            MfaType::Email => "email",
            MfaType::Totp => "totp",
            MfaType::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        MfaType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The resources (first path segment) and methods that need an `X-MFA-Code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protected(BTreeSet<(String, String)>);

impl Protected {
    /// Methods a bare resource name protects: every one that changes something.
    const CHANGING: [&'static str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

    pub fn parse(value: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (methods, resource): (Vec<String>, &str) = match entry.split_once(' ') {
                Some((method, resource)) => {
                    let method = method.trim().to_ascii_uppercase();
                    if !Self::CHANGING.contains(&method.as_str()) {
                        return Err(format!(
                            "`{entry}`: the method must be POST, PUT, PATCH or DELETE (GET is never protected)"
                        ));
                    }
                    (vec![method], resource.trim())
                }
                None => (Self::CHANGING.map(str::to_owned).to_vec(), entry),
            };
            let resource = resource.trim_matches('/');
            if resource.is_empty()
                || !resource
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!("`{entry}`: not a resource name"));
            }
            for method in methods {
                set.insert((method, resource.to_owned()));
            }
        }
        Ok(Self(set))
    }

    /// Whether a request with this method and path needs an `X-MFA-Code`.
    pub fn covers(&self, method: &str, path: &str) -> bool {
        let resource = path.trim_start_matches('/').split('/').next().unwrap_or("");
        self.0.contains(&(method.to_owned(), resource.to_owned()))
    }
}

/// The Glue dialect's settings, parsed.
#[derive(Clone, Debug)]
pub struct GlueConfig {
    /// Password failure budget and address limits of `POST /access-tokens` and `POST /token`.
    pub signin: Policy,
    pub customer_sessions: sessions::Policy,
    pub backoffice_sessions: sessions::Policy,
    /// Emailed and texted MFA codes: 6 digits, valid (and, once verified, a grace period) for
    /// the code lifetime, blocked after the tries.
    pub codes: codes::Policy,
    pub customer_reference_prefix: String,
    /// The MFA types offered, in the order they are listed.
    pub types: Vec<MfaType>,
    pub protected: Protected,
    pub password_min_length: usize,
}

/// The sessions clients of the two kinds of Glue tokens (a family of one is refused by the
/// other's routes).
pub const CUSTOMER_CLIENT: &str = "glue";
pub const BACKOFFICE_CLIENT: &str = "glue-backoffice";

impl GlueConfig {
    pub(super) fn parse(
        get: &impl Fn(&'static str) -> (&'static str, String),
        lockout: Budget,
        ip_attempts: u32,
        ip_window_secs: i64,
        public_url: &str,
    ) -> Result<Self, ConfigError> {
        let alg = match get("LATCHKEY_GLUE_TOKEN_ALG") {
            (_, v) if v == "RS256" => SigningAlg::RS256,
            (_, v) if v == "EdDSA" => SigningAlg::EdDSA,
            (name, v) => return Err(bad(name, &v, "expected `RS256` or `EdDSA`")),
        };
        let access_secs = number(get("LATCHKEY_GLUE_ACCESS_TOKEN_SECONDS"), 60, 86_400)?;
        let refresh_secs = number(get("LATCHKEY_GLUE_REFRESH_TOKEN_SECONDS"), 60, 366 * 86_400)?;
        let family_secs = number(get("LATCHKEY_GLUE_SESSION_DAYS"), 1, 3660)? * 86_400;
        let audience = |setting: &'static str| -> Result<String, ConfigError> {
            let (name, v) = get(setting);
            if v.is_empty() || v.len() > 200 || v.chars().any(char::is_whitespace) {
                return Err(bad(name, &v, "expected one word"));
            }
            Ok(v)
        };
        let session = |client: &'static str, audience: String| sessions::Policy {
            client,
            issuer: public_url.to_owned(),
            audience: Some(audience),
            alg,
            access_secs,
            refresh_secs,
            family_secs,
        };
        let (name, prefix) = get("LATCHKEY_GLUE_CUSTOMER_REFERENCE_PREFIX");
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad(name, &prefix, "expected 1 to 16 letters or digits"));
        }
        let (name, listed) = get("LATCHKEY_GLUE_MFA_TYPES");
        let mut types = Vec::new();
        for t in listed.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let t = MfaType::parse(t)
                .ok_or_else(|| bad(name, &listed, "expected types from email, totp, sms"))?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        if types.is_empty() {
            return Err(bad(name, &listed, "offer at least one type"));
        }
        let (name, value) = get("LATCHKEY_GLUE_PROTECTED");
        let protected = Protected::parse(&value).map_err(|why| bad(name, &value, &why))?;
        let window_secs = number(get("LATCHKEY_GLUE_CODE_SEND_WINDOW_MINUTES"), 1, 24 * 60)? * 60;
        let window = |setting: &'static str| -> Result<Window, ConfigError> {
            Ok(Window {
                limit: number(get(setting), 1, 1_000_000)?,
                secs: window_secs,
            })
        };
        let codes = codes::Policy {
            digits: 6,
            ttl_secs: number(get("LATCHKEY_GLUE_CODE_MINUTES"), 1, 30)? * 60,
            max_tries: number(get("LATCHKEY_GLUE_CODE_TRIES"), 1, codes::MAX_TRIES)?,
            use_: Use::UntilExpiry,
            sends: SendLimits {
                per_account: window("LATCHKEY_GLUE_CODE_SENDS_PER_ACCOUNT")?,
                per_destination: window("LATCHKEY_GLUE_CODE_SENDS_PER_DESTINATION")?,
                per_ip: window("LATCHKEY_GLUE_CODE_SENDS_PER_IP")?,
                global: window("LATCHKEY_GLUE_CODE_SENDS_GLOBAL")?,
            },
            factor_budget: lockout,
            delivery: Delivery::Now,
        };
        Ok(GlueConfig {
            signin: Policy {
                password: lockout,
                second_factor: lockout,
                per_ip: Some(Window {
                    limit: ip_attempts,
                    secs: ip_window_secs,
                }),
                ip_failures: None,
                totp_window: 1,
            },
            customer_sessions: session(CUSTOMER_CLIENT, audience("LATCHKEY_GLUE_AUDIENCE")?),
            backoffice_sessions: session(
                BACKOFFICE_CLIENT,
                audience("LATCHKEY_GLUE_BACKOFFICE_AUDIENCE")?,
            ),
            codes,
            customer_reference_prefix: prefix,
            types,
            protected,
            password_min_length: number(get("LATCHKEY_GLUE_PASSWORD_MIN_LENGTH"), 8, 128)?,
        })
    }

    /// Hard-coded defaults, only reachable if the defaults table itself failed to parse.
    pub(super) fn fallback() -> Self {
        let lockout = Budget {
            max_failures: 6,
            window_secs: None,
            block_secs: 1800,
        };
        let session = |client: &'static str, audience: &str| sessions::Policy {
            client,
            issuer: "http://127.0.0.1:8080".into(),
            audience: Some(audience.into()),
            alg: SigningAlg::RS256,
            access_secs: 28_800,
            refresh_secs: 2_592_000,
            family_secs: 90 * 86_400,
        };
        let window = |limit| Window { limit, secs: 900 };
        GlueConfig {
            signin: Policy {
                password: lockout,
                second_factor: lockout,
                per_ip: Some(Window {
                    limit: 100,
                    secs: 300,
                }),
                ip_failures: None,
                totp_window: 1,
            },
            customer_sessions: session(CUSTOMER_CLIENT, "frontend"),
            backoffice_sessions: session(BACKOFFICE_CLIENT, "backoffice"),
            codes: codes::Policy {
                digits: 6,
                ttl_secs: 1800,
                max_tries: 3,
                use_: Use::UntilExpiry,
                sends: SendLimits {
                    per_account: window(5),
                    per_destination: window(5),
                    per_ip: window(20),
                    global: window(1000),
                },
                factor_budget: lockout,
                delivery: Delivery::Now,
            },
            customer_reference_prefix: "DE".into(),
            types: MfaType::ALL.to_vec(),
            protected: Protected(
                [
                    ("PATCH", "customer-password"),
                    ("PATCH", "customers"),
                    ("DELETE", "customers"),
                ]
                .into_iter()
                .map(|(m, r)| (m.to_owned(), r.to_owned()))
                .collect(),
            ),
            password_min_length: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_entries_name_methods_and_resources() {
        let p = Protected::parse("PATCH customer-password, customers").unwrap();
        assert!(p.covers("PATCH", "/customer-password/DE--1"));
        assert!(!p.covers("DELETE", "/customer-password/DE--1"));
        assert!(p.covers("DELETE", "/customers/DE--1"));
        assert!(p.covers("POST", "/customers"));
        assert!(
            !p.covers("GET", "/customers/DE--1"),
            "GET is never protected"
        );
        assert!(!p.covers("PATCH", "/customers-x/1"));
        assert!(Protected::parse("GET customers").is_err());
        assert!(Protected::parse("PATCH /Customers").is_err());
        assert_eq!(Protected::parse("").unwrap(), Protected(BTreeSet::new()));
    }

    #[test]
    fn the_defaults_are_sprykers() {
        let c = crate::config::Config::from_lookup(|_| None).unwrap();
        let g = &c.glue;
        assert_eq!(g.customer_sessions.access_secs, 28_800);
        assert_eq!(g.customer_sessions.refresh_secs, 2_592_000);
        assert_eq!(g.customer_sessions.alg, SigningAlg::RS256);
        assert_eq!(g.customer_sessions.audience.as_deref(), Some("frontend"));
        assert_eq!(g.codes.ttl_secs, 1800);
        assert_eq!(g.codes.max_tries, 3);
        assert_eq!(g.codes.digits, 6);
        assert_eq!(g.codes.use_, Use::UntilExpiry);
        assert_eq!(g.types, [MfaType::Email, MfaType::Totp, MfaType::Sms]);
        assert!(g.protected.covers("PATCH", "/customer-password/DE--42"));
        let f = GlueConfig::fallback();
        assert_eq!(f.protected, g.protected);
        assert_eq!(f.codes, g.codes);
    }
}
