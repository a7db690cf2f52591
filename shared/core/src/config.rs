//! Configuration: every setting is an environment variable with a stated default. The local
//! server and every Lambda function read the same variables. The README's configuration table
//! is generated from [`SETTINGS`] (and a test keeps the two in step).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use crate::crypto::SecretString;

use crate::crypto::keys::SigningAlg;
use crate::forwarded::TrustedProxies;
use crate::identity::codes::{self, Delivery, SendLimits, Use};
mod glue;
pub use glue::{GlueConfig, MfaType, Protected};

use crate::identity::limits::Window;
use crate::identity::sessions;
use crate::identity::signin::Policy;
use crate::identity::users::Budget;
use crate::stores::Stores;

/// Whether this is a development or a production deployment. Production refuses to start with
/// generated development keys, and never serves the local outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// How the Magento dialect treats admin two-factor authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MagentoTfa {
    /// Admins must sign in through a 2FA provider (Magento's default).
    Required,
    /// `integration/admin/token` hands out tokens on a password alone
    /// (as with `module:disable Magento_TwoFactorAuth`).
    Off,
}

/// One documented setting.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every setting the core reads. The CLI and the AWS glue add their own (`LATCHKEY_ADDR`,
/// `LATCHKEY_DATA_DIR`, `LATCHKEY_STORE`, `LATCHKEY_TABLE`, ...), listed in
/// [`crate::config::DEPLOYMENT_SETTINGS`].
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "LATCHKEY_ENV",
        default: "development",
        doc: "`development` or `production`. Production refuses to start without real keys.",
    },
    Setting {
        name: "LATCHKEY_PUBLIC_URL",
        default: "http://127.0.0.1:8080",
        doc: "Base URL clients reach latchkey at; used in emailed instructions and links. Unset, `latchkey serve` uses the address it listens on.",
    },
    Setting {
        name: "LATCHKEY_MAIL_FROM",
        default: "latchkey@localhost",
        doc: "Sender address of every email (must be verified in SES on AWS).",
    },
    Setting {
        name: "LATCHKEY_ISSUER",
        default: "latchkey",
        doc: "Issuer label shown in authenticator apps next to the account name.",
    },
    Setting {
        name: "LATCHKEY_TOTP_WINDOW",
        default: "1",
        doc: "TOTP steps (30 s each) accepted either side of now (0-10).",
    },
    Setting {
        name: "LATCHKEY_LOCKOUT_FAILURES",
        default: "6",
        doc: "Failed attempts that lock a factor of an account: the password, and separately each second factor (a right password never gives a code its tries back).",
    },
    Setting {
        name: "LATCHKEY_LOCKOUT_MINUTES",
        default: "30",
        doc: "How long a locked factor stays locked, from its last failure.",
    },
    Setting {
        name: "LATCHKEY_IP_ATTEMPTS",
        default: "100",
        doc: "Sign-in attempts (password or code) one client IP may make per window.",
    },
    Setting {
        name: "LATCHKEY_IP_WINDOW_SECONDS",
        default: "300",
        doc: "Length of the per-IP attempt window.",
    },
    Setting {
        name: "LATCHKEY_TRUSTED_PROXIES",
        default: "none",
        doc: "Proxies whose `X-Forwarded-For` is believed (comma separated: addresses, CIDR blocks, `cloudfront` for CloudFront's origin-facing ranges). The client address is the first untrusted one walking the header from the right; `none`: the peer (socket address, or API Gateway's `sourceIp`) is the client. See SECURITY.md.",
    },
    Setting {
        name: "LATCHKEY_HASH_CONCURRENCY",
        default: "auto",
        doc: "Password hashes (argon2id, 19 MiB each) computed at once; `auto`: one per CPU. Bounds memory under a flood of sign-ins.",
    },
    Setting {
        name: "LATCHKEY_HASH_WAIT_MS",
        default: "500",
        doc: "How long a sign-in waits for a hashing slot before it is answered 503 with `Retry-After` (nothing counted, nothing changed).",
    },
    Setting {
        name: "LATCHKEY_MAX_BODY_BYTES",
        default: "65536",
        doc: "Largest request body accepted; larger bodies get 413.",
    },
    Setting {
        name: "LATCHKEY_MAGENTO_TFA",
        default: "required",
        doc: "`required`: admins sign in through a 2FA provider. `off`: a password is enough.",
    },
    Setting {
        name: "LATCHKEY_MAGENTO_ADMIN_TOKEN_MINUTES",
        default: "60",
        doc: "Lifetime of Magento admin tokens.",
    },
    Setting {
        name: "LATCHKEY_MAGENTO_CUSTOMER_TOKEN_MINUTES",
        default: "60",
        doc: "Lifetime of Magento customer tokens.",
    },
    Setting {
        name: "LATCHKEY_MAGENTO_TFA_TOKEN_MINUTES",
        default: "60",
        doc: "Lifetime of the emailed 2FA configuration token (`tfaToken`).",
    },
    Setting {
        name: "LATCHKEY_MAGENTO_STORE_CODES",
        default: "default",
        doc: "Store codes accepted in `/rest/<store_code>/V1/` (comma separated; `all` is always accepted).",
    },
    Setting {
        name: "LATCHKEY_STORES",
        default: r#"[{"id":1}]"#,
        doc: "Store views as a JSON list: `id` (the `storeId` of requests), and optionally `code`, `name` (emails sign with it; default `Default Store View`), `website_id` (1), `locale` (`en_US`), `base_url` (links point there; default the public URL), `landing_url` (where a signed-in customer goes without `next`; default the base URL) and `redirect_origins` (origins besides the base URL's that `next` may point at).",
    },
    Setting {
        name: "LATCHKEY_LINK_EXPIRY_MINUTES",
        default: "15",
        doc: "Lifetime of login links sent by `POST /rest/V1/otp/send`.",
    },
    Setting {
        name: "LATCHKEY_LINK_MAX_EXPIRY_MINUTES",
        default: "60",
        doc: "Longest lifetime a login link may be given (`expiry` of `otp/createToken` is capped to it).",
    },
    Setting {
        name: "LATCHKEY_LINK_PATHS",
        default: "customer/otp/auth",
        doc: "Paths `otp/createUrl` may build links on (comma separated).",
    },
    Setting {
        name: "LATCHKEY_LINK_MAIL_ON_CREATE_URL",
        default: "on",
        doc: "`on`: `otp/createUrl` also emails the link to the customer (once per token). `off`: the caller delivers the link itself.",
    },
    Setting {
        name: "LATCHKEY_LINK_SENDS_PER_EMAIL",
        default: "3",
        doc: "Login links `otp/send` emails to one address per window.",
    },
    Setting {
        name: "LATCHKEY_LINK_SENDS_PER_IP",
        default: "10",
        doc: "Login links one client IP may ask `otp/send` for per window.",
    },
    Setting {
        name: "LATCHKEY_LINK_SENDS_PER_STORE",
        default: "500",
        doc: "Login links `otp/send` emails for one store per window.",
    },
    Setting {
        name: "LATCHKEY_LINK_SEND_WINDOW_MINUTES",
        default: "15",
        doc: "Length of the windows of the three limits above.",
    },
    Setting {
        name: "LATCHKEY_TEMPLATES_DIR",
        default: "(built-in)",
        doc: "Directory of email templates overriding the built-in ones, read on every send (no rebuild or restart): `[<store code>/][<locale>/]<template>.{subject,txt,html}`, most specific first.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_FLOW_MINUTES",
        default: "15",
        doc: "Sign-in wizard: how long a flow (`uuid`) lives.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_LOCKOUT_FAILURES",
        default: "5",
        doc: "Sign-in wizard: failed attempts (password or 2FA code) within the window that block the account, and separately the client IP.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_LOCKOUT_WINDOW_SECONDS",
        default: "60",
        doc: "Sign-in wizard: the window those failures are counted in.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_LOCKOUT_MINUTES",
        default: "10",
        doc: "Sign-in wizard: how long a block lasts, from the last failure.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_ACCESS_TOKEN_MINUTES",
        default: "15",
        doc: "Sign-in wizard: lifetime of access tokens (RS256 JWTs).",
    },
    Setting {
        name: "LATCHKEY_WIZARD_REFRESH_TOKEN_MINUTES",
        default: "60",
        doc: "Sign-in wizard: lifetime of each refresh token.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_SESSION_HOURS",
        default: "24",
        doc: "Sign-in wizard: absolute lifetime of a session (refresh family), however often refreshed.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_SMS_CODE_MINUTES",
        default: "5",
        doc: "Sign-in wizard: lifetime of SMS codes (5 wrong tries kill a code).",
    },
    Setting {
        name: "LATCHKEY_WIZARD_SMS_SENDS_PER_HOUR",
        default: "5",
        doc: "Sign-in wizard: SMS codes per account and per phone number per hour (re-sending is throttled).",
    },
    Setting {
        name: "LATCHKEY_SMS_GLOBAL_PER_HOUR",
        default: "1000",
        doc: "SMS codes the whole deployment sends per hour (the SMS-pumping guard); 20 per client IP per hour.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_PASSWORD_RECOVERY",
        default: "on",
        doc: "Sign-in wizard: `on` offers password recovery (`is_password_recovery_available`) by an emailed code; `off` refuses it.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_RESET_CODE_MINUTES",
        default: "15",
        doc: "Sign-in wizard: lifetime of emailed password-reset codes.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_QR",
        default: "on",
        doc: "Sign-in wizard: `on` offers QR sign-in (`is_qr_available`); `off` refuses it.",
    },
    Setting {
        name: "LATCHKEY_WIZARD_QR_SECONDS",
        default: "120",
        doc: "Sign-in wizard: how long a sign-in QR code can be approved and used.",
    },
    Setting {
        name: "LATCHKEY_RECAPTCHA",
        default: "off",
        doc: "`on` requires a reCAPTCHA `recaptchaResponse` at wizard sign-in, checked with Google's siteverify.",
    },
    Setting {
        name: "LATCHKEY_RECAPTCHA_SECRET",
        default: "(unset)",
        doc: "The reCAPTCHA secret key siteverify is called with (required when `LATCHKEY_RECAPTCHA=on`).",
    },
    Setting {
        name: "LATCHKEY_RECAPTCHA_SITE_KEY",
        default: "(unset)",
        doc: "The reCAPTCHA site key the local sign-in page embeds.",
    },
    Setting {
        name: "LATCHKEY_GLUE_TOKEN_ALG",
        default: "RS256",
        doc: "Algorithm of Glue access tokens: `RS256` (as Spryker) or `EdDSA`. Their public keys are in the JWKS.",
    },
    Setting {
        name: "LATCHKEY_GLUE_AUDIENCE",
        default: "frontend",
        doc: "`aud` of Glue customer access tokens (Spryker's OAuth client id).",
    },
    Setting {
        name: "LATCHKEY_GLUE_BACKOFFICE_AUDIENCE",
        default: "backoffice",
        doc: "`aud` of back-office access tokens (`POST /token`).",
    },
    Setting {
        name: "LATCHKEY_GLUE_ACCESS_TOKEN_SECONDS",
        default: "28800",
        doc: "Lifetime of Glue access tokens (`expiresIn`), 60 to 86400 seconds.",
    },
    Setting {
        name: "LATCHKEY_GLUE_REFRESH_TOKEN_SECONDS",
        default: "2592000",
        doc: "How long a Glue refresh token may wait to be used (`refreshTokenExpiresIn`); each use gives a new one.",
    },
    Setting {
        name: "LATCHKEY_GLUE_SESSION_DAYS",
        default: "90",
        doc: "Absolute lifetime of a Glue session: however often its refresh token is used, it ends this many days after sign-in.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CUSTOMER_REFERENCE_PREFIX",
        default: "DE",
        doc: "Customer references are `<prefix>--<user id>` (Spryker's `DE--42`); letters and digits only.",
    },
    Setting {
        name: "LATCHKEY_GLUE_MFA_TYPES",
        default: "email,totp,sms",
        doc: "MFA types offered to Glue clients, in the order `GET /multi-factor-auth-types` lists them (`email`, `totp`, `sms`).",
    },
    Setting {
        name: "LATCHKEY_GLUE_PROTECTED",
        default: "PATCH customer-password,PATCH customers,DELETE customers",
        doc: "Glue resources that need a valid `X-MFA-Code` once the caller has an enabled MFA type: `METHOD resource` or `resource` (every method but GET), comma separated.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_MINUTES",
        default: "30",
        doc: "Life of an MFA code (1-30), and so the grace period in which a verified code keeps opening protected resources.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_TRIES",
        default: "3",
        doc: "Wrong tries (1-5) after which an MFA code is blocked; a new code keeps the count until the blocked one expires.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_SEND_WINDOW_MINUTES",
        default: "15",
        doc: "Window of the MFA code send limits below.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_SENDS_PER_ACCOUNT",
        default: "5",
        doc: "MFA codes one account may be sent per window and channel.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_SENDS_PER_DESTINATION",
        default: "5",
        doc: "MFA codes one email address or phone number may be sent per window.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_SENDS_PER_IP",
        default: "20",
        doc: "MFA codes requests from one client IP may cause per window and channel.",
    },
    Setting {
        name: "LATCHKEY_GLUE_CODE_SENDS_GLOBAL",
        default: "1000",
        doc: "MFA codes the whole deployment sends per window and channel (the guard against SMS pumping).",
    },
    Setting {
        name: "LATCHKEY_GLUE_PASSWORD_MIN_LENGTH",
        default: "8",
        doc: "Shortest new password `PATCH /customer-password` accepts (8-128; Spryker's other rules apply too: upper and lower case, a digit, a special character).",
    },
];

/// Settings read outside the core: by the `latchkey` binary and by the Lambda glue.
pub const DEPLOYMENT_SETTINGS: &[Setting] = &[
    Setting {
        name: "LATCHKEY_ADDR",
        default: "127.0.0.1:8080",
        doc: "Address `latchkey serve` listens on (also `--addr`).",
    },
    Setting {
        name: "LATCHKEY_DATA_DIR",
        default: "./.latchkey",
        doc: "Embedded store, development keys and outbox (also `--data-dir`).",
    },
    Setting {
        name: "LATCHKEY_STORE",
        default: "embedded",
        doc: "`embedded` (SQLite under the data dir) or `dynamodb`.",
    },
    Setting {
        name: "LATCHKEY_TABLE",
        default: "latchkey",
        doc: "DynamoDB table name when the store is `dynamodb`.",
    },
    Setting {
        name: "LATCHKEY_KEYS",
        default: "(unset)",
        doc: "The key set as JSON (see `latchkey keys generate`). Takes precedence over the file and SSM.",
    },
    Setting {
        name: "LATCHKEY_KEYS_FILE",
        default: "(unset)",
        doc: "Path of a key set JSON file. Locally, `<data-dir>/keys.json` is generated on first run in development.",
    },
    Setting {
        name: "LATCHKEY_KEYS_SSM_PARAMETER",
        default: "(unset)",
        doc: "Name of an SSM SecureString parameter holding the key set (read once per cold start).",
    },
    Setting {
        name: "LATCHKEY_SMS_SENDER_ID",
        default: "(unset)",
        doc: "Sender ID of text messages sent through SNS, where the destination country allows one.",
    },
    Setting {
        name: "LATCHKEY_TRUST_STORE",
        default: "(unset)",
        doc: "Roots the functions' HTTPS client trusts: `amazon` (Amazon Trust Services, compiled in; AWS endpoints outside China) or `system`. Unset: `amazon`, or `system` when an `AWS_ENDPOINT_URL*` is set or the region is in China. The CLI always uses `system`.",
    },
    Setting {
        name: "LATCHKEY_DEV_CLOCK",
        default: "(unset)",
        doc: "Development only: pins the clock of the server or function at this Unix time (tests of the functions use it instead of waiting). Refused with `LATCHKEY_ENV=production`.",
    },
    Setting {
        name: "LATCHKEY_LOG",
        default: "info",
        doc: "Log filter (`tracing` env-filter syntax). Logs are JSON on Lambda, text locally.",
    },
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// The core's settings, parsed and checked.
#[derive(Clone, Debug)]
pub struct Config {
    pub environment: Environment,
    /// Where and how this process runs: store, table, keys, addresses.
    pub deployment: Deployment,
    pub public_url: String,
    pub mail_from: String,
    pub issuer: String,
    pub totp_window: u8,
    pub lockout_failures: u32,
    pub lockout_secs: i64,
    pub ip_attempts: u32,
    pub ip_window_secs: i64,
    pub max_body_bytes: usize,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// The bound on password hashing.
    pub hashing: HashLimits,
    pub magento: MagentoConfig,
    /// Whether `LATCHKEY_PUBLIC_URL` was set: `latchkey serve` defaults it to the address it
    /// listens on otherwise.
    pub public_url_set: bool,
    pub stores: Stores,
    pub links: LinkConfig,
    /// Templates overriding the built-in ones.
    pub templates_dir: Option<std::path::PathBuf>,
    pub wizard: WizardConfig,
    pub glue: glue::GlueConfig,
}

/// Login links (the magic-link dialect).
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub default_secs: i64,
    pub max_secs: i64,
    pub paths: Vec<String>,
    pub mail_on_create_url: bool,
    pub per_email: Window,
    pub per_ip: Window,
    pub per_store: Window,
}

/// The sign-in wizard's settings (B2Core's `/api/v2/my/`).
#[derive(Clone, Debug)]
pub struct WizardConfig {
    /// 5 failures a minute block for 10 minutes: per account (password, and each second factor)
    /// and per client address, never per flow.
    pub signin: Policy,
    pub flow_secs: i64,
    pub sessions: sessions::Policy,
    /// SMS codes of sign-in (and of phone verification).
    pub sms: codes::Policy,
    /// Emailed password-reset codes.
    pub reset: codes::Policy,
    pub password_recovery: bool,
    pub qr: bool,
    pub qr_secs: i64,
    pub recaptcha: Option<Recaptcha>,
}

/// reCAPTCHA, when enabled.
#[derive(Clone, PartialEq, Eq)]
pub struct Recaptcha {
    pub secret: String,
    pub site_key: Option<String>,
}

impl fmt::Debug for Recaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recaptcha")
            .field("site_key", &self.site_key)
            .finish_non_exhaustive()
    }
}

/// How many password hashes run at once, and how long a request waits for a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    pub concurrency: usize,
    pub wait_ms: u64,
}

impl Default for HashLimits {
    fn default() -> Self {
        Self {
            concurrency: cpus(),
            wait_ms: 500,
        }
    }
}

/// The CPUs this process may use (1 when unknown). Found once: std reads the affinity mask
/// and the cgroup's CPU quota from /proc and /sys each time it is asked, ~0.1 ms, and a cold
/// start asks twice (the settings and the password hasher).
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

#[derive(Clone, Debug)]
pub struct MagentoConfig {
    /// Failure budgets and address limits of Magento sign-ins: the lockout settings for the
    /// password and, separately, for the authenticator code.
    pub signin: Policy,
    pub tfa: MagentoTfa,
    pub admin_token_secs: i64,
    pub customer_token_secs: i64,
    pub tfa_token_secs: i64,
    pub store_codes: BTreeSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults table parses: a test checks it.
        Config::from_lookup(|_| None).unwrap_or_else(|_| Config::fallback())
    }
}

impl Config {
    /// The clock this process runs on: the system's, or in development a pinned one.
    pub fn clock(&self) -> std::sync::Arc<dyn crate::ports::Clock> {
        match self.deployment.pinned_clock {
            Some(at) => std::sync::Arc::new(crate::ports::ManualClock::at(at)),
            None => std::sync::Arc::new(crate::ports::SystemClock),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a name → value function), so tests need no env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| -> (&'static str, String) {
            let default = SETTINGS
                .iter()
                .chain(DEPLOYMENT_SETTINGS)
                .find(|s| s.name == name)
                .map_or("", |s| s.default);
            let value = lookup(name).filter(|v| !v.trim().is_empty());
            (
                name,
                value
                    .unwrap_or_else(|| default.to_owned())
                    .trim()
                    .to_owned(),
            )
        };
        let environment = match get("LATCHKEY_ENV") {
            (_, v) if v == "development" => Environment::Development,
            (_, v) if v == "production" => Environment::Production,
            (name, v) => return Err(bad(name, &v, "expected `development` or `production`")),
        };
        let tfa = match get("LATCHKEY_MAGENTO_TFA") {
            (_, v) if v == "required" => MagentoTfa::Required,
            (_, v) if v == "off" => MagentoTfa::Off,
            (name, v) => return Err(bad(name, &v, "expected `required` or `off`")),
        };
        let public_url = get("LATCHKEY_PUBLIC_URL")
            .1
            .trim_end_matches('/')
            .to_owned();
        if url::Url::parse(&public_url).is_err() {
            return Err(bad(
                "LATCHKEY_PUBLIC_URL",
                &public_url,
                "not an absolute URL",
            ));
        }
        let store_codes = get("LATCHKEY_MAGENTO_STORE_CODES")
            .1
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .chain(std::iter::once("all".to_owned()))
            .collect();
        let totp_window = number(get("LATCHKEY_TOTP_WINDOW"), 0, 10)?;
        let lockout_failures = number(get("LATCHKEY_LOCKOUT_FAILURES"), 1, 1000)?;
        let lockout_secs = minutes(get("LATCHKEY_LOCKOUT_MINUTES"), 1, 60 * 24 * 30)?;
        let ip_attempts = number(get("LATCHKEY_IP_ATTEMPTS"), 1, 1_000_000)?;
        let ip_window_secs = number(get("LATCHKEY_IP_WINDOW_SECONDS"), 1, 86_400)?;
        let deployment = Deployment::parse(&get, &lookup)?;
        if environment == Environment::Production && deployment.pinned_clock.is_some() {
            return Err(bad(
                "LATCHKEY_DEV_CLOCK",
                "(set)",
                "a pinned clock is for development only; unset it in production",
            ));
        }
        let trusted_proxies = match get("LATCHKEY_TRUSTED_PROXIES") {
            (_, v) if v.eq_ignore_ascii_case("none") => TrustedProxies::default(),
            (name, v) => {
                TrustedProxies::parse(&v).map_err(|reason| ConfigError { name, reason })?
            }
        };
        let hashing = HashLimits {
            concurrency: match get("LATCHKEY_HASH_CONCURRENCY") {
                (_, v) if v == "auto" => cpus(),
                setting => number(setting, 1, 1024)?,
            },
            wait_ms: number(get("LATCHKEY_HASH_WAIT_MS"), 0, 60_000)?,
        };
        let lockout = Budget {
            max_failures: lockout_failures,
            window_secs: None,
            block_secs: lockout_secs,
        };
        let public_url_set = lookup("LATCHKEY_PUBLIC_URL").is_some_and(|v| !v.trim().is_empty());
        let stores = Stores::parse(&get("LATCHKEY_STORES").1)
            .map_err(|e| bad("LATCHKEY_STORES", "…", &e))?;
        let link_window = minutes(get("LATCHKEY_LINK_SEND_WINDOW_MINUTES"), 1, 60 * 24)?;
        let window = |setting| -> Result<Window, ConfigError> {
            Ok(Window {
                limit: number(setting, 1, 1_000_000)?,
                secs: link_window,
            })
        };
        let links = LinkConfig {
            default_secs: minutes(get("LATCHKEY_LINK_EXPIRY_MINUTES"), 1, 60 * 24 * 7)?,
            max_secs: minutes(get("LATCHKEY_LINK_MAX_EXPIRY_MINUTES"), 1, 60 * 24 * 7)?,
            paths: get("LATCHKEY_LINK_PATHS")
                .1
                .split(',')
                .map(|p| p.trim().trim_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            mail_on_create_url: match get("LATCHKEY_LINK_MAIL_ON_CREATE_URL") {
                (_, v) if v == "on" => true,
                (_, v) if v == "off" => false,
                (name, v) => return Err(bad(name, &v, "expected `on` or `off`")),
            },
            per_email: window(get("LATCHKEY_LINK_SENDS_PER_EMAIL"))?,
            per_ip: window(get("LATCHKEY_LINK_SENDS_PER_IP"))?,
            per_store: window(get("LATCHKEY_LINK_SENDS_PER_STORE"))?,
        };
        let templates_dir = match get("LATCHKEY_TEMPLATES_DIR").1 {
            v if v == "(built-in)" => None,
            v => Some(std::path::PathBuf::from(v)),
        };
        let wizard = wizard(&get, &public_url, totp_window)?;
        let glue =
            glue::GlueConfig::parse(&get, lockout, ip_attempts, ip_window_secs, &public_url)?;
        Ok(Config {
            public_url_set,
            stores,
            links,
            templates_dir,
            wizard,
            environment,
            deployment,
            public_url,
            mail_from: get("LATCHKEY_MAIL_FROM").1,
            issuer: get("LATCHKEY_ISSUER").1,
            totp_window,
            lockout_failures,
            lockout_secs,
            ip_attempts,
            ip_window_secs,
            max_body_bytes: number(get("LATCHKEY_MAX_BODY_BYTES"), 1024, 10 * 1024 * 1024)?,
            trusted_proxies,
            hashing,
            magento: MagentoConfig {
                signin: Policy {
                    password: lockout,
                    second_factor: lockout,
                    per_ip: Some(Window {
                        limit: ip_attempts,
                        secs: ip_window_secs,
                    }),
                    ip_failures: None,
                    totp_window,
                },
                tfa,
                admin_token_secs: minutes(
                    get("LATCHKEY_MAGENTO_ADMIN_TOKEN_MINUTES"),
                    1,
                    60 * 24 * 30,
                )?,
                customer_token_secs: minutes(
                    get("LATCHKEY_MAGENTO_CUSTOMER_TOKEN_MINUTES"),
                    1,
                    60 * 24 * 30,
                )?,
                tfa_token_secs: minutes(get("LATCHKEY_MAGENTO_TFA_TOKEN_MINUTES"), 1, 60 * 24)?,
                store_codes,
            },
            glue,
        })
    }

    /// Hard-coded defaults, only reachable if the defaults table itself failed to parse.
    fn fallback() -> Self {
        let five_a_minute = Budget {
            max_failures: 5,
            window_secs: Some(60),
            block_secs: 600,
        };
        let sends = SendLimits {
            per_account: Window {
                limit: 5,
                secs: 3600,
            },
            per_destination: Window {
                limit: 5,
                secs: 3600,
            },
            per_ip: Window {
                limit: 20,
                secs: 3600,
            },
            global: Window {
                limit: 1000,
                secs: 3600,
            },
        };
        let code = codes::Policy {
            digits: 6,
            ttl_secs: 300,
            max_tries: 5,
            use_: Use::Once,
            sends,
            factor_budget: five_a_minute,
            delivery: Delivery::Now,
        };
        Config {
            public_url_set: false,
            stores: Stores::single_default(),
            links: LinkConfig {
                default_secs: 900,
                max_secs: 3600,
                paths: vec!["customer/otp/auth".into()],
                mail_on_create_url: true,
                per_email: Window {
                    limit: 3,
                    secs: 900,
                },
                per_ip: Window {
                    limit: 10,
                    secs: 900,
                },
                per_store: Window {
                    limit: 500,
                    secs: 900,
                },
            },
            templates_dir: None,
            wizard: WizardConfig {
                signin: Policy {
                    password: five_a_minute,
                    second_factor: five_a_minute,
                    per_ip: None,
                    ip_failures: Some(five_a_minute),
                    totp_window: 1,
                },
                flow_secs: 900,
                sessions: sessions::Policy {
                    client: WIZARD_CLIENT,
                    issuer: "http://127.0.0.1:8080".into(),
                    audience: None,
                    alg: SigningAlg::RS256,
                    access_secs: 900,
                    refresh_secs: 3600,
                    family_secs: 86_400,
                },
                sms: code,
                reset: codes::Policy {
                    ttl_secs: 900,
                    delivery: Delivery::Queued,
                    ..code
                },
                password_recovery: true,
                qr: true,
                qr_secs: 120,
                recaptcha: None,
            },
            environment: Environment::Development,
            deployment: Deployment {
                addr: "127.0.0.1:8080".into(),
                data_dir: PathBuf::from("./.latchkey"),
                store: StoreKind::Embedded,
                table: "latchkey".into(),
                keys: None,
                sms_sender_id: None,
                trust_store: None,
                pinned_clock: None,
                log: "info".into(),
            },
            public_url: "http://127.0.0.1:8080".into(),
            mail_from: "latchkey@localhost".into(),
            issuer: "latchkey".into(),
            totp_window: 1,
            lockout_failures: 6,
            lockout_secs: 1800,
            ip_attempts: 100,
            ip_window_secs: 300,
            max_body_bytes: 65536,
            trusted_proxies: TrustedProxies::default(),
            hashing: HashLimits::default(),
            magento: MagentoConfig {
                signin: Policy {
                    password: Budget {
                        max_failures: 6,
                        window_secs: None,
                        block_secs: 1800,
                    },
                    second_factor: Budget {
                        max_failures: 6,
                        window_secs: None,
                        block_secs: 1800,
                    },
                    per_ip: Some(Window {
                        limit: 100,
                        secs: 300,
                    }),
                    ip_failures: None,
                    totp_window: 1,
                },
                tfa: MagentoTfa::Required,
                admin_token_secs: 3600,
                customer_token_secs: 3600,
                tfa_token_secs: 3600,
                store_codes: ["default", "all"].into_iter().map(String::from).collect(),
            },
            glue: glue::GlueConfig::fallback(),
        }
    }
}

/// Which store a process works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite under the data directory.
    Embedded,
    /// The DynamoDB table [`Deployment::table`].
    Dynamodb,
}

/// Where the key set comes from.
#[derive(Clone)]
pub enum KeySource {
    /// The key set itself (`LATCHKEY_KEYS`).
    Json(SecretString),
    /// A key set file (`LATCHKEY_KEYS_FILE`).
    File(PathBuf),
    /// An SSM SecureString parameter (`LATCHKEY_KEYS_SSM_PARAMETER`).
    Ssm(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Json(_) => f.write_str("Json(<redacted>)"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Ssm(name) => write!(f, "Ssm({name})"),
        }
    }
}

/// The root certificates the functions' HTTPS client trusts, when chosen explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustStore {
    Amazon,
    System,
}

/// The settings of [`DEPLOYMENT_SETTINGS`], parsed and checked: read by the `latchkey` binary and
/// the Lambda glue through here, never straight from the environment.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub addr: String,
    pub data_dir: PathBuf,
    pub store: StoreKind,
    pub table: String,
    /// `None`: no key source configured (the local server then uses the data dir's keys).
    pub keys: Option<KeySource>,
    pub sms_sender_id: Option<String>,
    /// `None`: chosen from the AWS settings (see `latchkey_aws::clients::TrustRoots`).
    pub trust_store: Option<TrustStore>,
    /// Development only: the clock stands still at this Unix time.
    pub pinned_clock: Option<i64>,
    pub log: String,
}

impl Deployment {
    fn parse(
        get: &impl Fn(&'static str) -> (&'static str, String),
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let set = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (name, addr) = get("LATCHKEY_ADDR");
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                name,
                &addr,
                "expected an address and port, e.g. 127.0.0.1:8080",
            ));
        }
        let store = match get("LATCHKEY_STORE") {
            (_, v) if v == "embedded" => StoreKind::Embedded,
            (_, v) if v == "dynamodb" => StoreKind::Dynamodb,
            (name, v) => return Err(bad(name, &v, "expected `embedded` or `dynamodb`")),
        };
        let (name, table) = get("LATCHKEY_TABLE");
        let table_ok = (3..=255).contains(&table.len())
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !table_ok {
            return Err(bad(
                name,
                &table,
                "expected a DynamoDB table name: 3-255 of A-Z a-z 0-9 _ - .",
            ));
        }
        let keys = match (
            set("LATCHKEY_KEYS"),
            set("LATCHKEY_KEYS_FILE"),
            set("LATCHKEY_KEYS_SSM_PARAMETER"),
        ) {
            (Some(json), _, _) => Some(KeySource::Json(SecretString::new(json))),
            (None, Some(path), _) => Some(KeySource::File(PathBuf::from(path))),
            (None, None, Some(param)) => {
                let ok = param.len() <= 2048
                    && param
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
                if !ok {
                    return Err(bad(
                        "LATCHKEY_KEYS_SSM_PARAMETER",
                        &param,
                        "expected an SSM parameter name (A-Z a-z 0-9 _ . - /)",
                    ));
                }
                Some(KeySource::Ssm(param))
            }
            (None, None, None) => None,
        };
        let sms_sender_id = set("LATCHKEY_SMS_SENDER_ID");
        if let Some(id) = &sms_sender_id
            && !(id.len() <= 11 && id.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(bad(
                "LATCHKEY_SMS_SENDER_ID",
                id,
                "expected up to 11 letters and digits",
            ));
        }
        let trust_store = match set("LATCHKEY_TRUST_STORE").as_deref() {
            None => None,
            Some("amazon") => Some(TrustStore::Amazon),
            Some("system") => Some(TrustStore::System),
            Some(other) => {
                return Err(bad(
                    "LATCHKEY_TRUST_STORE",
                    other,
                    "expected `amazon` or `system`",
                ));
            }
        };
        let pinned_clock = match set("LATCHKEY_DEV_CLOCK") {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|t| *t > 0)
                    .ok_or_else(|| bad("LATCHKEY_DEV_CLOCK", &v, "expected Unix seconds"))?,
            ),
        };
        Ok(Deployment {
            addr,
            data_dir: PathBuf::from(get("LATCHKEY_DATA_DIR").1),
            store,
            table,
            keys,
            sms_sender_id,
            trust_store,
            pinned_clock,
            log: get("LATCHKEY_LOG").1,
        })
    }
}

/// The audience of the wizard's sessions (a family started by another dialect is refused).
pub const WIZARD_CLIENT: &str = "wizard";

fn on_off((name, value): (&'static str, String)) -> Result<bool, ConfigError> {
    match value.as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(bad(name, &value, "expected `on` or `off`")),
    }
}

fn wizard(
    get: &dyn Fn(&'static str) -> (&'static str, String),
    public_url: &str,
    totp_window: u8,
) -> Result<WizardConfig, ConfigError> {
    let budget = Budget {
        max_failures: number(get("LATCHKEY_WIZARD_LOCKOUT_FAILURES"), 1, 1000)?,
        window_secs: Some(number(
            get("LATCHKEY_WIZARD_LOCKOUT_WINDOW_SECONDS"),
            1,
            86_400,
        )?),
        block_secs: minutes(get("LATCHKEY_WIZARD_LOCKOUT_MINUTES"), 1, 60 * 24 * 30)?,
    };
    let per_hour = number(get("LATCHKEY_WIZARD_SMS_SENDS_PER_HOUR"), 1, 1000)?;
    let sends = SendLimits {
        per_account: Window {
            limit: per_hour,
            secs: 3600,
        },
        per_destination: Window {
            limit: per_hour,
            secs: 3600,
        },
        per_ip: Window {
            limit: 20,
            secs: 3600,
        },
        global: Window {
            limit: number(get("LATCHKEY_SMS_GLOBAL_PER_HOUR"), 1, 10_000_000)?,
            secs: 3600,
        },
    };
    let sms = codes::Policy {
        digits: 6,
        ttl_secs: minutes(get("LATCHKEY_WIZARD_SMS_CODE_MINUTES"), 1, 30)?,
        max_tries: 5,
        use_: Use::Once,
        sends,
        factor_budget: budget,
        delivery: Delivery::Now,
    };
    let recaptcha = if on_off(get("LATCHKEY_RECAPTCHA"))? {
        let secret = get("LATCHKEY_RECAPTCHA_SECRET").1;
        if secret.is_empty() || secret == "(unset)" {
            return Err(bad(
                "LATCHKEY_RECAPTCHA_SECRET",
                "",
                "required when LATCHKEY_RECAPTCHA is on",
            ));
        }
        let site_key =
            Some(get("LATCHKEY_RECAPTCHA_SITE_KEY").1).filter(|k| !k.is_empty() && k != "(unset)");
        Some(Recaptcha { secret, site_key })
    } else {
        None
    };
    Ok(WizardConfig {
        signin: Policy {
            password: budget,
            second_factor: budget,
            per_ip: None,
            ip_failures: Some(budget),
            totp_window,
        },
        flow_secs: minutes(get("LATCHKEY_WIZARD_FLOW_MINUTES"), 1, 24 * 60)?,
        sessions: sessions::Policy {
            client: WIZARD_CLIENT,
            issuer: public_url.to_owned(),
            audience: None,
            alg: SigningAlg::RS256,
            access_secs: minutes(get("LATCHKEY_WIZARD_ACCESS_TOKEN_MINUTES"), 1, 24 * 60)?,
            refresh_secs: minutes(
                get("LATCHKEY_WIZARD_REFRESH_TOKEN_MINUTES"),
                1,
                60 * 24 * 30,
            )?,
            family_secs: number(get("LATCHKEY_WIZARD_SESSION_HOURS"), 1, 24 * 365)
                .map(|h: i64| h * 3600)?,
        },
        sms,
        // Queued: the reset's recipient is named by the client, and the answer must take no
        // longer for an account than for none.
        reset: codes::Policy {
            ttl_secs: minutes(get("LATCHKEY_WIZARD_RESET_CODE_MINUTES"), 1, 30)?,
            delivery: Delivery::Queued,
            ..sms
        },
        password_recovery: on_off(get("LATCHKEY_WIZARD_PASSWORD_RECOVERY"))?,
        qr: on_off(get("LATCHKEY_WIZARD_QR"))?,
        qr_secs: number(get("LATCHKEY_WIZARD_QR_SECONDS"), 30, 600)?,
        recaptcha,
    })
}

pub(crate) fn bad(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        name,
        reason: format!("{reason} (got `{value}`)"),
    }
}

pub(crate) fn number<T>(
    (name, value): (&'static str, String),
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(bad(
            name,
            &value,
            &format!("expected a whole number from {min} to {max}"),
        )),
    }
}

fn minutes(setting: (&'static str, String), min: i64, max: i64) -> Result<i64, ConfigError> {
    number(setting, min, max).map(|m: i64| m * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_parse_and_match_the_documented_values() {
        let c = with(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.lockout_failures, 6);
        assert_eq!(c.lockout_secs, 30 * 60);
        assert_eq!(c.totp_window, 1);
        assert_eq!(c.magento.admin_token_secs, 3600);
        assert_eq!(c.magento.tfa, MagentoTfa::Required);
        assert!(c.magento.store_codes.contains("default"));
        assert!(c.magento.store_codes.contains("all"));
        assert!(!c.public_url_set);
        assert_eq!(c.stores.get(1).map(|s| s.code.as_str()), Some("default"));
        assert_eq!(c.links.default_secs, 15 * 60);
        assert_eq!(c.links.max_secs, 60 * 60);
        assert_eq!(c.links.paths, ["customer/otp/auth"]);
        assert!(c.links.mail_on_create_url);
        assert_eq!(
            c.links.per_email,
            Window {
                limit: 3,
                secs: 900
            }
        );
        assert_eq!(c.templates_dir, None);
    }

    #[test]
    fn link_settings_parse_and_refuse() {
        let c = with(&[
            ("LATCHKEY_PUBLIC_URL", "https://auth.example.com"),
            ("LATCHKEY_STORES", r#"[{"id":1},{"id":2,"locale":"de_DE"}]"#),
            ("LATCHKEY_LINK_PATHS", "/customer/otp/auth/, other/path"),
            ("LATCHKEY_LINK_MAIL_ON_CREATE_URL", "off"),
            ("LATCHKEY_TEMPLATES_DIR", "/etc/latchkey/templates"),
        ])
        .unwrap();
        assert!(c.public_url_set);
        assert_eq!(c.stores.get(2).map(|s| s.locale.as_str()), Some("de_DE"));
        assert_eq!(c.links.paths, ["customer/otp/auth", "other/path"]);
        assert!(!c.links.mail_on_create_url);
        assert!(c.templates_dir.is_some());
        for (name, value) in [
            ("LATCHKEY_STORES", "[]"),
            ("LATCHKEY_LINK_MAIL_ON_CREATE_URL", "yes"),
            ("LATCHKEY_LINK_SENDS_PER_IP", "0"),
        ] {
            assert_eq!(with(&[(name, value)]).unwrap_err().name, name);
        }
        let w = &c.wizard;
        assert_eq!(
            w.signin.password,
            Budget {
                max_failures: 5,
                window_secs: Some(60),
                block_secs: 600
            },
            "5 failures within a minute block for 10 minutes"
        );
        assert_eq!(w.signin.ip_failures, Some(w.signin.password));
        assert_eq!(w.flow_secs, 900);
        assert_eq!(
            (w.sessions.access_secs, w.sessions.refresh_secs),
            (900, 3600)
        );
        assert_eq!((w.sms.ttl_secs, w.sms.max_tries), (300, 5));
        assert!(w.qr && w.password_recovery && w.recaptcha.is_none());
        assert_eq!(w.qr_secs, 120);
        let fallback = Config::fallback();
        assert_eq!(fallback.wizard.signin.password, w.signin.password);
        assert_eq!(fallback.wizard.sms, w.sms);
    }

    #[test]
    fn recaptcha_needs_its_secret() {
        let e = with(&[("LATCHKEY_RECAPTCHA", "on")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_RECAPTCHA_SECRET");
        let c = with(&[
            ("LATCHKEY_RECAPTCHA", "on"),
            ("LATCHKEY_RECAPTCHA_SECRET", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.wizard.recaptcha.unwrap().secret, "s3cret");
        assert!(
            !format!(
                "{:?}",
                with(&[
                    ("LATCHKEY_RECAPTCHA", "on"),
                    ("LATCHKEY_RECAPTCHA_SECRET", "s3cret")
                ])
                .unwrap()
                .wizard
            )
            .contains("s3cret")
        );
    }

    #[test]
    fn values_override_defaults() {
        let c = with(&[
            ("LATCHKEY_LOCKOUT_FAILURES", "3"),
            ("LATCHKEY_MAGENTO_TFA", "off"),
            ("LATCHKEY_MAGENTO_ADMIN_TOKEN_MINUTES", "5"),
            ("LATCHKEY_PUBLIC_URL", "https://auth.example.com/"),
        ])
        .unwrap();
        assert_eq!(c.lockout_failures, 3);
        assert_eq!(c.magento.tfa, MagentoTfa::Off);
        assert_eq!(c.magento.admin_token_secs, 300);
        assert_eq!(c.public_url, "https://auth.example.com");
    }

    #[test]
    fn deployment_settings_are_parsed_and_checked() {
        let c = with(&[]).unwrap();
        assert_eq!(c.deployment.store, StoreKind::Embedded);
        assert_eq!(c.deployment.table, "latchkey");
        assert!(c.deployment.keys.is_none());
        assert_eq!(c.deployment.trust_store, None);
        let c = with(&[
            ("LATCHKEY_STORE", "dynamodb"),
            ("LATCHKEY_TABLE", "shop-auth"),
            ("LATCHKEY_KEYS_SSM_PARAMETER", "/latchkey/keys"),
            ("LATCHKEY_SMS_SENDER_ID", "MyShop"),
            ("LATCHKEY_TRUST_STORE", "system"),
        ])
        .unwrap();
        assert_eq!(c.deployment.store, StoreKind::Dynamodb);
        assert!(matches!(&c.deployment.keys, Some(KeySource::Ssm(p)) if p == "/latchkey/keys"));
        assert_eq!(c.deployment.sms_sender_id.as_deref(), Some("MyShop"));
        assert_eq!(c.deployment.trust_store, Some(TrustStore::System));
        assert_eq!(
            with(&[("LATCHKEY_DEV_CLOCK", "1900000000")])
                .unwrap()
                .clock()
                .now(),
            1_900_000_000
        );
        let e = with(&[
            ("LATCHKEY_DEV_CLOCK", "1900000000"),
            ("LATCHKEY_ENV", "production"),
        ])
        .unwrap_err();
        assert_eq!(e.name, "LATCHKEY_DEV_CLOCK", "never in production");
        let secret = with(&[("LATCHKEY_KEYS", "{\"secret\": 1}")]).unwrap();
        assert!(
            !format!("{secret:?}").contains("secret\": 1"),
            "key JSON never printed"
        );
        for (name, value) in [
            ("LATCHKEY_STORE", "postgres"),
            ("LATCHKEY_TABLE", "no spaces allowed"),
            ("LATCHKEY_TABLE", "x"),
            ("LATCHKEY_SMS_SENDER_ID", "Far Too Long Sender"),
            ("LATCHKEY_TRUST_STORE", "mine"),
            ("LATCHKEY_ADDR", "localhost"),
            ("LATCHKEY_KEYS_SSM_PARAMETER", "bad name!"),
        ] {
            let e = with(&[(name, value)]).unwrap_err();
            assert_eq!(e.name, name, "{value}");
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = with(&[("LATCHKEY_TOTP_WINDOW", "eleven")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_TOTP_WINDOW");
        let e = with(&[("LATCHKEY_ENV", "prod")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_ENV");
        let e = with(&[("LATCHKEY_LOCKOUT_FAILURES", "0")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_LOCKOUT_FAILURES");
        assert!(with(&[("LATCHKEY_PUBLIC_URL", "not a url")]).is_err());
        let e = with(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8,example.com")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_TRUSTED_PROXIES");
        let e = with(&[("LATCHKEY_HASH_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(e.name, "LATCHKEY_HASH_CONCURRENCY");
    }

    #[test]
    fn proxies_and_hashing_limits() {
        let c = with(&[]).unwrap();
        assert!(
            c.trusted_proxies.is_empty(),
            "no proxy is trusted by default"
        );
        assert_eq!(c.hashing.concurrency, cpus());
        assert_eq!(c.hashing.wait_ms, 500);
        let c = with(&[
            ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1, cloudfront"),
            ("LATCHKEY_HASH_CONCURRENCY", "3"),
            ("LATCHKEY_HASH_WAIT_MS", "0"),
        ])
        .unwrap();
        assert!(c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(
            c.hashing,
            HashLimits {
                concurrency: 3,
                wait_ms: 0
            }
        );
    }
}
