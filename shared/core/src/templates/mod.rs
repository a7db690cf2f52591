//! Every message latchkey sends, from one template set: login links, the Magento 2FA set-up
//! email, and the emailed and texted one-time codes of the dialects. Each email has a subject,
//! a text part and an HTML part; each text message one body.
//!
//! Built-in templates (this directory, `en_US`, and `de_DE` for login links) are compiled in.
//! A deployment overrides any of them from files, read on every send — so a change needs no
//! rebuild and no restart: under `LATCHKEY_TEMPLATES_DIR`, the first of
//!
//! ```text
//! <store code>/<locale>/<template>.<part>
//! <store code>/<template>.<part>
//! <locale>/<template>.<part>
//! <template>.<part>
//! ```
//!
//! that exists is used for each part (`subject`, `txt`, `html`), else the built-in one of the
//! store's locale, else the `en_US` one. Placeholders are `{{name}}`; in the HTML part their
//! values are escaped.

use std::path::Path;

use crate::identity::codes::{Channel, Message};
use crate::stores::StoreView;

/// Which message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// A login link: `store_name`, `link`, `minutes`, `email`.
    LoginLink,
    /// Magento admin 2FA set-up: `name`, `minutes`, `token`, `url`.
    TfaSetup,
    /// An emailed one-time code: `code`, `minutes`, `store_name`, `purpose`.
    EmailCode,
    /// A texted one-time code: `code`, `minutes`, `store_name`, `purpose`.
    SmsCode,
    /// A password-reset code (the sign-in wizard): `code`, `minutes`, `url`, `uuid`.
    PasswordReset,
}

impl Template {
    pub const ALL: [Template; 5] = [
        Template::LoginLink,
        Template::TfaSetup,
        Template::EmailCode,
        Template::SmsCode,
        Template::PasswordReset,
    ];

    /// The file name stem of its parts.
    pub fn name(self) -> &'static str {
        match self {
            Template::LoginLink => "login_link",
            Template::TfaSetup => "tfa_setup",
            Template::EmailCode => "email_code",
            Template::SmsCode => "sms_code",
            Template::PasswordReset => "password_reset",
        }
    }
}

/// One part of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    fn ext(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "txt",
            Part::Html => "html",
        }
    }
}

/// The compiled-in parts: (locale, template, part, text).
const BUILT_IN: &[(&str, &str, &str, &str)] = &[
    (
        "en_US",
        "login_link",
        "subject",
        include_str!("en_US/login_link.subject"),
    ),
    (
        "en_US",
        "login_link",
        "txt",
        include_str!("en_US/login_link.txt"),
    ),
    (
        "en_US",
        "login_link",
        "html",
        include_str!("en_US/login_link.html"),
    ),
    (
        "de_DE",
        "login_link",
        "subject",
        include_str!("de_DE/login_link.subject"),
    ),
    (
        "de_DE",
        "login_link",
        "txt",
        include_str!("de_DE/login_link.txt"),
    ),
    (
        "de_DE",
        "login_link",
        "html",
        include_str!("de_DE/login_link.html"),
    ),
    (
        "en_US",
        "tfa_setup",
        "subject",
        include_str!("en_US/tfa_setup.subject"),
    ),
    (
        "en_US",
        "tfa_setup",
        "txt",
        include_str!("en_US/tfa_setup.txt"),
    ),
    (
        "en_US",
        "tfa_setup",
        "html",
        include_str!("en_US/tfa_setup.html"),
    ),
    (
        "en_US",
        "email_code",
        "subject",
        include_str!("en_US/email_code.subject"),
    ),
    (
        "en_US",
        "email_code",
        "txt",
        include_str!("en_US/email_code.txt"),
    ),
    (
        "en_US",
        "email_code",
        "html",
        include_str!("en_US/email_code.html"),
    ),
    (
        "en_US",
        "sms_code",
        "txt",
        include_str!("en_US/sms_code.txt"),
    ),
    (
        "en_US",
        "password_reset",
        "subject",
        include_str!("en_US/password_reset.subject"),
    ),
    (
        "en_US",
        "password_reset",
        "txt",
        include_str!("en_US/password_reset.txt"),
    ),
    (
        "en_US",
        "password_reset",
        "html",
        include_str!("en_US/password_reset.html"),
    ),
];

/// A rendered email.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for RenderedEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies carry codes and links.
        f.debug_struct("RenderedEmail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The template set, with the deployment's override directory.
#[derive(Clone, Copy, Debug)]
pub struct Templates<'a> {
    dir: Option<&'a Path>,
}

impl<'a> Templates<'a> {
    pub fn new(dir: Option<&'a Path>) -> Self {
        Self { dir }
    }

    /// Renders an email template for `store` (`None`: the default store's code and `en_US`).
    pub fn email(
        &self,
        template: Template,
        store: Option<&StoreView>,
        vars: &[(&str, &str)],
    ) -> RenderedEmail {
        let part = |p| self.source(template, p, store);
        RenderedEmail {
            subject: render(&part(Part::Subject), vars, false)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .to_owned(),
            text: render(&part(Part::Text), vars, false),
            html: render(&part(Part::Html), vars, true),
        }
    }

    /// Renders a text-message template.
    pub fn sms(
        &self,
        template: Template,
        store: Option<&StoreView>,
        vars: &[(&str, &str)],
    ) -> String {
        render(&self.source(template, Part::Text, store), vars, false)
            .trim()
            .to_owned()
    }

    /// A one-time code as the core's [`Message`] for `channel`: what the dialects hand to
    /// [`crate::identity::codes::Codes::send`]. `purpose` says what the code is for, in the
    /// message's words (`sign-in`, `verification`, ...).
    pub fn code_message(
        &self,
        channel: Channel,
        store: Option<&StoreView>,
        purpose: &str,
        code: &str,
        minutes: i64,
    ) -> Message {
        let minutes = minutes.to_string();
        let store_name = store.map_or("latchkey", |s| s.name.as_str());
        let vars = [
            ("code", code),
            ("minutes", minutes.as_str()),
            ("store_name", store_name),
            ("purpose", purpose),
        ];
        match channel {
            Channel::Email => self.email_message(Template::EmailCode, store, &vars),
            Channel::Sms => Message::Sms {
                body: self.sms(Template::SmsCode, store, &vars),
            },
        }
    }

    /// An email template rendered as the core's [`Message`].
    pub fn email_message(
        &self,
        template: Template,
        store: Option<&StoreView>,
        vars: &[(&str, &str)],
    ) -> Message {
        let e = self.email(template, store, vars);
        Message::Email {
            subject: e.subject,
            text: e.text,
            html: Some(e.html),
        }
    }

    /// The text of one part: the most specific override, else the built-in one.
    fn source(&self, template: Template, part: Part, store: Option<&StoreView>) -> String {
        let code = store.map_or("default", |s| s.code.as_str());
        let locale = store.map_or("en_US", |s| s.locale.as_str());
        let file = format!("{}.{}", template.name(), part.ext());
        if let Some(dir) = self.dir {
            for candidate in [
                dir.join(code).join(locale).join(&file),
                dir.join(code).join(&file),
                dir.join(locale).join(&file),
                dir.join(&file),
            ] {
                match std::fs::read_to_string(&candidate) {
                    Ok(text) => return text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %candidate.display(), error = %e, "template not readable; using the built-in one");
                        break;
                    }
                }
            }
        }
        let built_in = |loc: &str| {
            BUILT_IN
                .iter()
                .find(|(l, t, p, _)| *l == loc && *t == template.name() && *p == part.ext())
                .map(|(_, _, _, text)| (*text).to_owned())
        };
        built_in(locale)
            .or_else(|| built_in("en_US"))
            .unwrap_or_default()
    }
}

/// Replaces `{{name}}` with its value (escaped for HTML when `html`); unknown names become
/// empty, so a typo in an override shows as a gap rather than as template syntax.
fn render(template: &str, vars: &[(&str, &str)], html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find("}}") else {
            out.push_str(rest.get(start..).unwrap_or_default());
            return out;
        };
        let name = after.get(..end).unwrap_or_default().trim();
        if let Some((_, value)) = vars.iter().find(|(n, _)| *n == name) {
            if html {
                out.push_str(&escape_html(value));
            } else {
                out.push_str(value);
            }
        }
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::Stores;

    #[test]
    fn every_template_has_its_built_in_parts() {
        for t in Template::ALL {
            let parts: &[&str] = if t == Template::SmsCode {
                &["txt"]
            } else {
                &["subject", "txt", "html"]
            };
            for p in parts {
                assert!(
                    BUILT_IN
                        .iter()
                        .any(|(l, n, part, _)| *l == "en_US" && *n == t.name() && part == p),
                    "{} {p}",
                    t.name()
                );
            }
        }
    }

    #[test]
    fn placeholders_are_filled_and_escaped_in_html() {
        let vars = [
            ("link", "https://x.example/?a=1&b=<2>"),
            ("store_name", "Shop"),
        ];
        let e = Templates::new(None).email(Template::LoginLink, None, &vars);
        assert_eq!(e.subject, "Your sign-in link for Shop");
        assert!(e.text.contains("https://x.example/?a=1&b=<2>"));
        assert!(e.html.contains("https://x.example/?a=1&amp;b=&lt;2&gt;"));
        assert!(!e.html.contains("{{"));
        assert_eq!(
            render("a {{ x }} b {{y}} {{", &[("x", "1")], false),
            "a 1 b  {{"
        );
    }

    #[test]
    fn the_stores_locale_picks_the_built_in_and_falls_back_to_english() {
        let stores = Stores::parse(r#"[{"id":1},{"id":2,"code":"de","locale":"de_DE"},{"id":3,"code":"fr","locale":"fr_FR"}]"#).unwrap();
        let t = Templates::new(None);
        let vars = [("store_name", "Laden")];
        assert!(
            t.email(Template::LoginLink, stores.get(2), &vars)
                .subject
                .starts_with("Ihr Anmeldelink")
        );
        assert!(
            t.email(Template::LoginLink, stores.get(3), &vars)
                .subject
                .starts_with("Your sign-in link")
        );
    }

    #[test]
    fn files_override_by_store_then_locale_then_name_and_are_read_on_every_send() {
        let dir = std::env::temp_dir().join(format!("latchkey-templates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("de").join("de_DE")).unwrap();
        std::fs::create_dir_all(dir.join("en_US")).unwrap();
        std::fs::write(dir.join("login_link.subject"), "Generic {{store_name}}").unwrap();
        std::fs::write(
            dir.join("de").join("de_DE").join("login_link.subject"),
            "Nur de",
        )
        .unwrap();
        let stores = Stores::parse(r#"[{"id":1},{"id":2,"code":"de","locale":"de_DE"}]"#).unwrap();
        let t = Templates::new(Some(&dir));
        let vars = [("store_name", "Shop")];
        assert_eq!(
            t.email(Template::LoginLink, stores.get(2), &vars).subject,
            "Nur de"
        );
        assert_eq!(
            t.email(Template::LoginLink, stores.get(1), &vars).subject,
            "Generic Shop"
        );
        // Parts without an override stay built in.
        assert!(
            t.email(Template::LoginLink, stores.get(1), &vars)
                .text
                .contains("Use this link")
        );
        std::fs::write(
            dir.join("en_US").join("login_link.subject"),
            "Locale {{store_name}}",
        )
        .unwrap();
        assert_eq!(
            t.email(Template::LoginLink, stores.get(1), &vars).subject,
            "Locale Shop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn codes_render_for_both_channels() {
        let t = Templates::new(None);
        match t.code_message(Channel::Email, None, "verification", "123456", 10) {
            Message::Email {
                subject,
                text,
                html,
            } => {
                assert_eq!(subject, "Verification Code for Secure Access");
                assert!(text.contains("verification code: 123456"));
                assert!(text.contains("123456") && text.contains("10 minutes"));
                assert!(html.is_some_and(|h| h.contains("123456")));
            }
            Message::Sms { .. } => panic!("an email"),
        }
        match t.code_message(Channel::Sms, None, "sign-in", "654321", 5) {
            Message::Sms { body } => {
                assert!(
                    body.starts_with("654321 is your latchkey sign-in code"),
                    "{body}"
                );
            }
            Message::Email { .. } => panic!("a text"),
        }
    }
}
