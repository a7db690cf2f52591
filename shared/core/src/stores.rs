//! Storefront store views, as Magento numbers them (`storeId`): the name an email signs with,
//! the base URL links point at, the locale templates are chosen by, where a signed-in customer
//! lands, and which origins a link may send the customer on to (`next`).
//!
//! Configured as JSON in `LATCHKEY_STORES`; every field but `id` has a default, so the
//! default deployment has one store (id 1, code `default`) served at the public URL.

use serde::Deserialize;
use url::Url;

/// One store view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreView {
    pub id: u32,
    pub code: String,
    pub name: String,
    pub website_id: u32,
    /// Locale of its emails and pages (`en_US`, `de_DE`, ...).
    pub locale: String,
    /// Links point here; `None`: the deployment's public URL.
    base_url: Option<Url>,
    /// Where a signed-in customer goes without a (valid) `next`; `None`: the base URL.
    landing_url: Option<Url>,
    /// Origins (`https://shop.example`) a `next` may point at, besides the base URL's own.
    redirect_origins: Vec<Url>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSpec {
    id: u32,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    website_id: Option<u32>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    landing_url: Option<String>,
    #[serde(default)]
    redirect_origins: Vec<String>,
}

/// Why `LATCHKEY_STORES` was refused.
pub type StoresError = String;

fn http_url(what: &str, text: &str) -> Result<Url, StoresError> {
    let url = Url::parse(text.trim()).map_err(|_| format!("{what} `{text}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{what} `{text}` is not an http(s) URL"));
    }
    Ok(url)
}

fn locale_ok(locale: &str) -> bool {
    let mut parts = locale.split('_');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(l), Some(c), None) if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase())
            && c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase()))
}

/// Every configured store view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stores(Vec<StoreView>);

impl Stores {
    /// Parses the JSON list of `LATCHKEY_STORES`.
    pub fn parse(json: &str) -> Result<Self, StoresError> {
        let specs: Vec<StoreSpec> =
            serde_json::from_str(json).map_err(|e| format!("not a JSON list of stores: {e}"))?;
        if specs.is_empty() {
            return Err("at least one store".into());
        }
        let mut stores = Vec::with_capacity(specs.len());
        for s in specs {
            let code = s.code.unwrap_or_else(|| {
                if s.id == 1 {
                    "default".into()
                } else {
                    format!("store{}", s.id)
                }
            });
            let locale = s.locale.unwrap_or_else(|| "en_US".into());
            if !locale_ok(&locale) {
                return Err(format!(
                    "store {}: locale `{locale}` is not like en_US",
                    s.id
                ));
            }
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "store {}: code `{code}` is not [A-Za-z0-9_]+",
                    s.id
                ));
            }
            let base_url = s
                .base_url
                .as_deref()
                .map(|u| http_url("base_url", u))
                .transpose()?;
            let landing_url = s
                .landing_url
                .as_deref()
                .map(|u| http_url("landing_url", u))
                .transpose()?;
            let redirect_origins = s
                .redirect_origins
                .iter()
                .map(|u| http_url("redirect_origins", u))
                .collect::<Result<_, _>>()?;
            stores.push(StoreView {
                id: s.id,
                name: s.name.unwrap_or_else(|| "Default Store View".into()),
                code,
                website_id: s.website_id.unwrap_or(1),
                locale,
                base_url,
                landing_url,
                redirect_origins,
            });
        }
        let mut ids: Vec<u32> = stores.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
            return Err("two stores with one id".into());
        }
        Ok(Self(stores))
    }

    /// Store 1, `default`, with every default.
    pub fn single_default() -> Self {
        Self(vec![StoreView {
            id: 1,
            code: "default".into(),
            name: "Default Store View".into(),
            website_id: 1,
            locale: "en_US".into(),
            base_url: None,
            landing_url: None,
            redirect_origins: Vec::new(),
        }])
    }

    pub fn get(&self, id: u32) -> Option<&StoreView> {
        self.0.iter().find(|s| s.id == id)
    }

    /// The store a `storeId` field names (`"1"` or `1`), if configured.
    pub fn by_field(&self, value: &str) -> Option<&StoreView> {
        value.trim().parse().ok().and_then(|id| self.get(id))
    }

    pub fn all(&self) -> &[StoreView] {
        &self.0
    }
}

impl StoreView {
    /// The base URL links of this store start with, without a trailing slash.
    pub fn base_url(&self, public_url: &str) -> String {
        match &self.base_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Where a signed-in customer goes when the link named no (acceptable) `next`.
    pub fn landing_url(&self, public_url: &str) -> String {
        match &self.landing_url {
            Some(url) => url.to_string(),
            None => format!("{}/", self.base_url(public_url)),
        }
    }

    /// `next` as an absolute URL, if it is one this store may send a customer to: relative
    /// paths resolve against the base URL; the result must be http(s) on the base URL's origin
    /// or one of `redirect_origins`, with no credentials in it. Anything else — another host,
    /// `//host`, `/\host`, `javascript:`, look-alike hosts — is `None`.
    pub fn allowed_next(&self, public_url: &str, next: &str) -> Option<String> {
        if next.is_empty()
            || next.len() > 2048
            || next.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return None;
        }
        let base = Url::parse(&format!("{}/", self.base_url(public_url))).ok()?;
        let resolved = base.join(next).ok()?;
        if !matches!(resolved.scheme(), "http" | "https")
            || !resolved.username().is_empty()
            || resolved.password().is_some()
        {
            return None;
        }
        let origin = resolved.origin();
        let allowed = std::iter::once(&base)
            .chain(self.redirect_origins.iter())
            .chain(self.landing_url.iter())
            .any(|u| u.origin() == origin);
        allowed.then(|| resolved.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = "https://auth.example.com";

    fn shop() -> Stores {
        Stores::parse(
            r#"[{"id":1,"name":"Main Store","base_url":"https://shop.example.com/","redirect_origins":["https://account.example.com"]},
                {"id":2,"code":"de","locale":"de_DE"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_fill_every_field_but_the_id() {
        let s = Stores::parse(r#"[{"id":1}]"#).unwrap();
        let one = s.get(1).unwrap();
        assert_eq!(one.code, "default");
        assert_eq!(one.locale, "en_US");
        assert_eq!(one.base_url(PUBLIC), PUBLIC);
        assert_eq!(one.landing_url(PUBLIC), "https://auth.example.com/");
        assert!(s.by_field("1").is_some() && s.by_field(" 1 ").is_some());
        assert!(s.by_field("2").is_none() && s.by_field("x").is_none());
    }

    #[test]
    fn bad_stores_are_refused_with_a_reason() {
        for bad in [
            "[]",
            "{}",
            r#"[{"id":1},{"id":1}]"#,
            r#"[{"id":1,"locale":"english"}]"#,
            r#"[{"id":1,"base_url":"ftp://x.example"}]"#,
            r#"[{"id":1,"surprise":true}]"#,
            r#"[{"id":1,"code":"a b"}]"#,
        ] {
            assert!(Stores::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_stays_on_the_stores_origins() {
        let s = shop();
        let main = s.get(1).unwrap();
        let ok = |n: &str| main.allowed_next(PUBLIC, n);
        assert_eq!(
            ok("/checkout/").as_deref(),
            Some("https://shop.example.com/checkout/")
        );
        assert_eq!(
            ok("https://shop.example.com/a?b=c").as_deref(),
            Some("https://shop.example.com/a?b=c")
        );
        assert!(ok("https://account.example.com/orders").is_some());
        for evil in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example/",
            "\\\\evil.example",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://shop.example.com.evil.example/",
            "https://shop.example.com@evil.example/",
            "https://user:pw@shop.example.com/",
            "http://shop.example.com/",
            "https://shop.example.com:8443/",
            "/ok\n",
            "/a b",
            "",
        ] {
            assert_eq!(ok(evil), None, "{evil:?}");
        }
        // The second store has no base URL of its own: the public URL's origin.
        let de = s.get(2).unwrap();
        assert!(de.allowed_next(PUBLIC, "/x").is_some());
        assert!(
            de.allowed_next(PUBLIC, "https://shop.example.com/")
                .is_none()
        );
    }
}
