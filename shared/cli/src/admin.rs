//! The admin commands: users, integrations, keys.

use clap::{Subcommand, ValueEnum};
use latchkey_core::App;
use latchkey_core::crypto::keys::{KeySetFile, Rotation, SigningAlg};
use latchkey_core::crypto::qr;
use latchkey_core::crypto::totp::TotpSecret;
use latchkey_core::crypto::{CryptoError, SecretString};
use latchkey_core::identity::accounts::{self, NewUser, TotpSetup};
use latchkey_core::identity::integrations::{self, Grantor};
use latchkey_core::identity::links::LinkState;
use latchkey_core::identity::users::{Factor, Role, Totp, User};
use latchkey_core::identity::{Error, Taken};
use latchkey_core::link_mailer;
use latchkey_core::ports::SystemRng;

use crate::keys;
use crate::setup::{self, StoreArgs};

const VIA: &str = "cli";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Customer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Customer => Role::Customer,
        }
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is asked for at the terminal, or read from standard input
    /// with --password-stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Enroll this authenticator secret (base32) right away.
        #[arg(long)]
        totp_secret: Option<String>,
        /// Phone number for SMS codes, E.164 (`+4915112345678`).
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, default_value_t = 1)]
        store_id: u32,
    },
    /// List users.
    List,
    /// Set a user's password (clears a required reset and the lockout counter). The password
    /// is asked for at the terminal, or read from standard input with --password-stdin.
    SetPassword {
        /// Username or email.
        login: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Require a new password before the user's next sign-in.
    RequirePasswordReset { login: String },
    /// Clear the failed-attempt counter of a locked account.
    Unlock { login: String },
    /// Authenticator app (TOTP) enrollment.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Set (or with --clear, remove) the phone number for SMS codes.
    SetPhone {
        login: String,
        #[arg(long, required_unless_present = "clear")]
        phone: Option<String>,
        #[arg(long)]
        clear: bool,
    },
    /// Require a second factor for this user (the default).
    Enable2fa { login: String },
    /// Let this user sign in with a password alone.
    Disable2fa { login: String },
    /// Allow the user to sign in again.
    Enable { login: String },
    /// Refuse every sign-in of the user (tokens stop working too).
    Disable { login: String },
    /// Revoke every token issued to the user so far.
    RevokeTokens { login: String },
    /// Switch every second factor of the user off (email and SMS codes, the authenticator app;
    /// Glue's MFA types) and revoke their tokens: for a user who lost theirs.
    ResetMfa { login: String },
}

/// Where a new password comes from: a prompt (the default, at a terminal), standard input, or
/// the command line.
#[derive(Clone, Debug, clap::Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input (for scripts).
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The password itself. Visible to every user of this machine in the process list
    /// (`ps`) and kept in shell history: prefer the prompt or --password-stdin.
    #[arg(long)]
    password: Option<String>,
}

impl PasswordArgs {
    fn read(self) -> Result<SecretString, String> {
        use std::io::{BufRead, IsTerminal};
        if let Some(password) = self.password {
            return Ok(SecretString::new(password));
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let line = SecretString::new(line);
            let password = line.expose().trim_end_matches(['\n', '\r']);
            return Ok(SecretString::new(password.to_owned()));
        }
        if !std::io::stdin().is_terminal() {
            return Err(
                "no password given: type it at a terminal, or pass --password-stdin \
                        (or --password, which other users can see in the process list)"
                    .into(),
            );
        }
        let first = SecretString::new(
            rpassword::prompt_password("Password: ")
                .map_err(|e| format!("reading the password: {e}"))?,
        );
        let again = SecretString::new(
            rpassword::prompt_password("Password (again): ")
                .map_err(|e| format!("reading the password: {e}"))?,
        );
        if first.expose() != again.expose() {
            return Err("the two passwords differ".into());
        }
        Ok(first)
    }
}

#[derive(Subcommand)]
pub enum TotpCommand {
    /// Enroll an authenticator secret (generated, or --secret) and print its URI and QR code.
    Enroll {
        login: String,
        #[arg(long)]
        secret: Option<String>,
    },
    /// Remove the user's authenticator secret; their next sign-in sets one up again.
    Reset { login: String },
}

#[derive(Subcommand)]
pub enum IntegrationCommand {
    /// Create an integration and print its access token (shown once).
    Add {
        #[arg(long)]
        name: String,
        /// An ACL resource to grant (repeatable, at least one); `Magento_Backend::all` grants
        /// every resource.
        #[arg(long = "resource", required = true)]
        resources: Vec<String>,
    },
    /// List integrations.
    List,
    /// Delete an integration, revoking its token.
    Delete { id: u64 },
}

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Make a login link for a customer and print it (what `otp/createToken` + `otp/createUrl`
    /// do); with --send, also email it (the server's mailer, or the stack's, sends it).
    Create {
        /// The customer's email (or username).
        login: String,
        #[arg(long, default_value_t = 1)]
        store_id: u32,
        /// Minutes the link works (capped by LATCHKEY_LINK_MAX_EXPIRY_MINUTES).
        #[arg(long, default_value_t = 15)]
        expiry: i64,
        /// Where the customer goes once signed in (on the store's allow-list).
        #[arg(long)]
        next: Option<String>,
        #[arg(long)]
        send: bool,
    },
    /// A customer's login links: state, created, expires, used (never the token).
    List { login: String },
    /// The customer's newest link that still works.
    Active { login: String },
    /// Revoke one link of a customer (--id) or all of them.
    Revoke {
        login: String,
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a fresh key set (JSON) for LATCHKEY_KEYS, a key file or an SSM parameter.
    Generate {
        /// Mark the keys for production use (development keys are refused there).
        #[arg(long)]
        production: bool,
    },
    /// Make new active keys in the key set the server loads and retire the old ones.
    ///
    /// Tokens signed by a retired key keep verifying, and a retired signing key stays in the
    /// JWKS, until its publish_until: now + --keep-minutes. Keys past their publish_until are
    /// dropped. Sealing keys are never dropped (secrets sealed under them must still open); the
    /// pepper never rotates (stored codes and tokens are looked up by hashes under it).
    ///
    /// Without --signing, --all, --hmac or --sealing: every key that signs tokens (each signing
    /// algorithm and the HMAC key).
    ///
    /// The key set rotated is --ssm-parameter NAME, else LATCHKEY_KEYS_FILE, else
    /// LATCHKEY_KEYS_SSM_PARAMETER, else <data-dir>/keys.json. Servers and functions read keys
    /// when they start: until they restart they sign with the old keys, so let --keep-minutes
    /// cover that time as well. Prints key ids, never key material.
    Rotate {
        /// Signing algorithms to rotate, comma-separated: RS256,ES256,EdDSA.
        #[arg(long, value_delimiter = ',', value_parser = parse_alg, conflicts_with = "all")]
        signing: Vec<SigningAlg>,
        /// Rotate the signing key of every algorithm.
        #[arg(long)]
        all: bool,
        /// Rotate the HMAC key (Magento's HS256 tokens).
        #[arg(long)]
        hmac: bool,
        /// Rotate the sealing key (new secrets are sealed under the new one).
        #[arg(long)]
        sealing: bool,
        /// Minutes a retired key stays published and accepted: at least the longest lifetime
        /// of a token it may have signed. Default: the longest token lifetime the settings
        /// give (LATCHKEY_MAGENTO_*_TOKEN_MINUTES), or 24 hours if they do not parse. 0 drops
        /// the old keys at once (for a leaked key: their tokens stop working).
        #[arg(long, value_name = "N")]
        keep_minutes: Option<u32>,
        /// Rotate the key set in this SSM SecureString parameter (written back under its KMS
        /// key, with the AWS settings of the environment).
        #[arg(long, value_name = "NAME")]
        ssm_parameter: Option<String>,
    },
}

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    s.trim().parse().map_err(|e: CryptoError| e.to_string())
}

/// A refusal of the core, in the operator's words.
fn describe(e: Error) -> String {
    match e {
        Error::Taken(Taken::Login) => "that username or email is already taken".into(),
        Error::Taken(Taken::IntegrationName) => "an integration of that name exists".into(),
        Error::NotFound => "no such user".into(),
        Error::AlreadyConfigured => "the authenticator app is already set up".into(),
        Error::Invalid(invalid) => invalid.to_string(),
        Error::Fault(fault) => fault.to_string(),
        other => other.to_string(),
    }
}

pub async fn user(store: &StoreArgs, cmd: UserCommand) -> Result<(), String> {
    let app = setup::local(store).await?.app;
    let db = app.db();
    let rng = app.rng.as_ref();
    match cmd {
        UserCommand::Add {
            username,
            email,
            password,
            role,
            totp_secret,
            phone,
            store_id,
        } => {
            let totp_secret = totp_secret
                .map(|s| TotpSecret::from_base32(&s).map_err(|e| format!("--totp-secret: {e}")))
                .transpose()?;
            let new = NewUser {
                username,
                email,
                password: password.read()?,
                role: role.into(),
                totp_secret,
                phone,
                store_id,
            };
            let user = accounts::create(db, &app.hasher, &app.keys.sealer, rng, new, VIA)
                .await
                .map_err(describe)?;
            let reference = match user.role {
                Role::Customer => format!(
                    ", Glue customer reference {}--{}",
                    app.config.glue.customer_reference_prefix, user.id
                ),
                Role::Admin => String::new(),
            };
            outln!(
                "created {} {} ({}, id {}{reference})",
                user.role,
                user.username,
                user.email,
                user.id
            );
        }
        UserCommand::List => print_users(
            &app,
            &accounts::list(db, 100_000)
                .await
                .map_err(|e| e.to_string())?,
        ),
        UserCommand::SetPassword { login, password } => {
            let password = password.read()?;
            accounts::set_password_by_login(db, &app.hasher, rng, &login, &password, VIA)
                .await
                .map_err(describe)?;
            outln!("password set for {login}; every earlier token of theirs is revoked");
        }
        UserCommand::RequirePasswordReset { login } => {
            accounts::require_password_reset(db, &login, VIA)
                .await
                .map_err(describe)?;
            outln!("{login} must set a new password before signing in (signed out everywhere)");
        }
        UserCommand::Unlock { login } => {
            accounts::unlock(db, &login, VIA).await.map_err(describe)?;
            outln!("{login} unlocked");
        }
        UserCommand::Totp(TotpCommand::Enroll { login, secret }) => {
            let secret = secret
                .map(|s| TotpSecret::from_base32(&s).map_err(|e| format!("--secret: {e}")))
                .transpose()?;
            let setup = accounts::enroll_totp(
                db,
                &app.keys.sealer,
                rng,
                &app.config.issuer,
                &login,
                secret,
                VIA,
            )
            .await
            .map_err(describe)?;
            print_setup(&setup)?;
        }
        UserCommand::Totp(TotpCommand::Reset { login }) => {
            let user = accounts::find(db, &login)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such user")?;
            accounts::reset_totp(db, user.id, VIA)
                .await
                .map_err(describe)?;
            outln!("authenticator removed for {login}; the next sign-in sets one up again");
        }
        UserCommand::SetPhone {
            login,
            phone,
            clear,
        } => {
            let phone = if clear { None } else { phone };
            accounts::set_phone(db, &login, phone.as_deref(), VIA)
                .await
                .map_err(describe)?;
            outln!(
                "phone {} for {login}",
                if phone.is_some() { "set" } else { "removed" }
            );
        }
        UserCommand::Enable2fa { login } => {
            accounts::set_two_factor(db, &login, true, VIA)
                .await
                .map_err(describe)?;
            outln!("two-factor authentication required for {login}");
        }
        UserCommand::Disable2fa { login } => {
            accounts::set_two_factor(db, &login, false, VIA)
                .await
                .map_err(describe)?;
            outln!("two-factor authentication disabled for {login}");
        }
        UserCommand::Enable { login } => {
            accounts::set_active(db, &login, true, VIA)
                .await
                .map_err(describe)?;
            outln!("{login} enabled");
        }
        UserCommand::Disable { login } => {
            accounts::set_active(db, &login, false, VIA)
                .await
                .map_err(describe)?;
            outln!("{login} disabled; every token of theirs is revoked");
        }
        UserCommand::ResetMfa { login } => {
            let user = accounts::find(db, &login)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such user")?;
            accounts::reset_second_factors(db, user.id, VIA)
                .await
                .map_err(describe)?;
            outln!("every second factor of {login} is off; every token of theirs is revoked");
        }
        UserCommand::RevokeTokens { login } => {
            accounts::revoke_tokens_by_login(db, &login, VIA)
                .await
                .map_err(describe)?;
            outln!("every token issued to {login} so far is revoked");
        }
    }
    Ok(())
}

fn print_users(app: &App, users: &[User]) {
    let policy = &app.config.magento.signin;
    outln!(
        "{:>5}  {:<24} {:<32} {:<8} {:<8} {:<6} STATUS",
        "ID",
        "USERNAME",
        "EMAIL",
        "ROLE",
        "TOTP",
        "2FA"
    );
    let now = app.clock.now();
    for u in users {
        let totp = match u.totp {
            Totp::None => "-",
            Totp::Pending { .. } => "pending",
            Totp::Active { .. } => "active",
        };
        let locked = Factor::ALL.iter().any(|f| {
            let budget = match f {
                Factor::Password => &policy.password,
                _ => &policy.second_factor,
            };
            u.budgets.of(*f).blocked(now, budget).is_some()
        });
        let status = if !u.active {
            "disabled"
        } else if locked {
            "locked"
        } else if u.must_reset_password {
            "reset-required"
        } else {
            "ok"
        };
        outln!(
            "{:>5}  {:<24} {:<32} {:<8} {:<8} {:<6} {status}",
            u.id,
            u.username,
            u.email,
            u.role.as_str(),
            totp,
            if u.tfa_enabled { "on" } else { "off" }
        );
    }
}

fn print_setup(setup: &TotpSetup) -> Result<(), String> {
    outln!("secret: {}", setup.secret.to_base32().expose());
    outln!("uri:    {}", setup.uri);
    outln!();
    outln!("{}", qr::terminal(&setup.uri).map_err(|e| e.to_string())?);
    Ok(())
}

pub async fn integration(store: &StoreArgs, cmd: IntegrationCommand) -> Result<(), String> {
    let app = setup::local(store).await?.app;
    match cmd {
        IntegrationCommand::Add { name, resources } => {
            let (integration, token) = integrations::create(
                app.db(),
                app.rng.as_ref(),
                app.keys.pepper(),
                Grantor::Admin,
                &name,
                resources,
                VIA,
            )
            .await
            .map_err(describe)?;
            outln!(
                "created integration {} ({})",
                integration.id,
                integration.name
            );
            outln!("resources:    {}", integration.resources.join(", "));
            outln!("access token: {}", token.expose());
            outln!("(shown once; use it as `Authorization: Bearer <token>`)");
        }
        IntegrationCommand::List => {
            outln!("{:>5}  {:<32} RESOURCES", "ID", "NAME");
            for i in integrations::list(app.db())
                .await
                .map_err(|e| e.to_string())?
            {
                outln!("{:>5}  {:<32} {}", i.id, i.name, i.resources.join(", "));
            }
        }
        IntegrationCommand::Delete { id } => {
            integrations::delete(app.db(), id, VIA)
                .await
                .map_err(|e| match e {
                    Error::NotFound => format!("no integration with id {id}"),
                    other => describe(other),
                })?;
            outln!("integration {id} deleted; its token no longer works");
        }
    }
    Ok(())
}

pub async fn keys(store: &StoreArgs, cmd: KeysCommand) -> Result<(), String> {
    match cmd {
        KeysCommand::Generate { production } => {
            let mut file = KeySetFile::generate(&SystemRng).map_err(|e| e.to_string())?;
            if production {
                file.set_development(false);
            }
            outln!("{}", file.to_json_pretty());
        }
        KeysCommand::Rotate {
            signing,
            all,
            hmac,
            sealing,
            keep_minutes,
            ssm_parameter,
        } => {
            let rotation = if signing.is_empty() && !all && !hmac && !sealing {
                Rotation::token_keys()
            } else {
                Rotation {
                    signing: if all {
                        SigningAlg::ALL.to_vec()
                    } else {
                        signing
                    },
                    hmac,
                    sealing,
                }
            };
            let keep_secs = match keep_minutes {
                Some(minutes) => i64::from(minutes) * 60,
                None => keys::default_keep_secs(),
            };
            let config = setup::config()?;
            let data_dir = store.resolve(&config).data_dir;
            let location = keys::locate(&data_dir, ssm_parameter, config.deployment.keys.as_ref())?;
            out!("{}", keys::rotate(&location, &rotation, keep_secs).await?);
        }
    }
    Ok(())
}

fn time_of(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

async fn customer(app: &App, login: &str) -> Result<User, String> {
    accounts::find(app.db(), login)
        .await
        .map_err(|e| e.to_string())?
        .filter(|u| u.role == Role::Customer)
        .ok_or_else(|| format!("no customer {login}"))
}

pub async fn link(store: &StoreArgs, cmd: LinkCommand) -> Result<(), String> {
    let app = setup::local(store).await?.app;
    let links = app.links();
    let now = app.clock.now();
    match cmd {
        LinkCommand::Create {
            login,
            store_id,
            expiry,
            next,
            send,
        } => {
            let user = customer(&app, &login).await?;
            let view = app
                .config
                .stores
                .get(store_id)
                .ok_or_else(|| format!("no store {store_id} in LATCHKEY_STORES"))?;
            let next = match next {
                Some(n) => Some(
                    view.allowed_next(&app.config.public_url, &n)
                        .ok_or("--next is not on the store's allow-list")?,
                ),
                None => None,
            };
            if expiry < 1 {
                return Err("--expiry is at least 1 minute".into());
            }
            let ttl = expiry.saturating_mul(60).min(app.config.links.max_secs);
            let issued = links
                .issue(&user, view.id, ttl, next.as_deref(), VIA)
                .await
                .map_err(describe)?;
            let path = app
                .config
                .links
                .paths
                .first()
                .cloned()
                .unwrap_or_else(|| "customer/otp/auth".into());
            let url = link_mailer::link_url(&app, view, &path, issued.token.expose());
            outln!("{url}");
            outln!(
                "id {}, expires {} UTC",
                issued.link.id,
                time_of(issued.link.valid_until)
            );
            if send {
                links
                    .request_mail(&issued.link, issued.token.expose(), &user.email, &path)
                    .await
                    .map_err(describe)?;
                outln!("emailing it to {} (the mailer sends it)", user.email);
            }
        }
        LinkCommand::List { login } => {
            let user = customer(&app, &login).await?;
            outln!(
                "{:<14} {:<8} {:>5}  {:<19}  {:<19}  USED",
                "ID",
                "STATE",
                "STORE",
                "CREATED",
                "EXPIRES"
            );
            for l in links.list(user.id).await.map_err(describe)? {
                outln!(
                    "{:<14} {:<8} {:>5}  {:<19}  {:<19}  {}",
                    l.id,
                    l.state(now, user.token_gen).as_str(),
                    l.store_id,
                    time_of(l.created_at),
                    time_of(l.valid_until),
                    l.used_at.map(time_of).unwrap_or_default()
                );
            }
        }
        LinkCommand::Active { login } => {
            let user = customer(&app, &login).await?;
            let active = links
                .list(user.id)
                .await
                .map_err(describe)?
                .into_iter()
                .filter(|l| l.state(now, user.token_gen) == LinkState::Active)
                .max_by_key(|l| l.created_at)
                .ok_or("no active login link")?;
            outln!(
                "{} (store {}), expires {} UTC",
                active.id,
                active.store_id,
                time_of(active.valid_until)
            );
        }
        LinkCommand::Revoke { login, id } => {
            let user = customer(&app, &login).await?;
            let n = links
                .revoke(&user, id.as_deref(), VIA)
                .await
                .map_err(|e| match e {
                    Error::NotFound => "no such link of that customer".into(),
                    other => describe(other),
                })?;
            outln!("revoked {n} login link(s)");
        }
    }
    Ok(())
}
