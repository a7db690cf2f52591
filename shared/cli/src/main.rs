//! `latchkey`: the local server and the admin commands.
//!
//! ```text
//! latchkey serve [--addr 127.0.0.1:8080] [--data-dir ./.latchkey]
//! latchkey [--store dynamodb --table NAME [--create-table]] serve | user ... | integration ...
//! latchkey user add --username U --email E [--password-stdin | --password P] --role admin|customer
//!                   [--totp-secret B32] [--phone +E164] [--store-id N]   (no password flag: a prompt)
//! latchkey user list | set-password | require-password-reset | unlock | totp enroll|reset | set-phone
//!               | enable-2fa | disable-2fa | enable | disable | revoke-tokens
//! latchkey integration add --name N [--resource R]... | list | delete ID
//! latchkey link create LOGIN [--store-id N] [--expiry MIN] [--next URL] [--send] | list LOGIN
//!               | active LOGIN | revoke LOGIN [--id ID]
//! latchkey keys generate [--production]
//! latchkey keys rotate [--signing RS256,ES256,EdDSA | --all] [--hmac] [--sealing] [--keep-minutes N]
//!                      [--ssm-parameter NAME]
//! ```

// Standard output goes through `out!`/`outln!`, which end quietly on a closed pipe.
#![deny(clippy::print_stdout)]

/// Writes to standard output as `print!` does, except that a reader gone away
/// (`latchkey user totp enroll ... | head`) ends the command quietly, with the status a shell
/// gives a command SIGPIPE ended (141), where `print!` would panic: Rust ignores SIGPIPE, so
/// the write fails instead of the process being ended by the signal as C tools are.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

/// `out!` with a newline, as `println!`.
macro_rules! outln {
    () => { out!("\n") };
    ($($arg:tt)*) => {
        out!("{}\n", format_args!($($arg)*))
    };
}

fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

mod admin;
mod keys;
mod serve;
mod setup;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use setup::StoreArgs;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Sign-in and multi-factor authentication backend for storefronts"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route over HTTP (on the embedded store unless `--store dynamodb`).
    Serve {
        /// Address to listen on [default: LATCHKEY_ADDR, else 127.0.0.1:8080].
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage integrations (API clients with Bearer access tokens).
    #[command(subcommand)]
    Integration(admin::IntegrationCommand),
    /// Login links of customers (the magic-link dialect).
    #[command(subcommand)]
    Link(admin::LinkCommand),
    /// Manage key sets.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
}

/// `serve` logs at `info` (its audit events included); admin commands only warn, so their own
/// output stays readable. `LATCHKEY_LOG` overrides both.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// mimalloc rather than glibc's allocator for the long-running server: a request allocates and
/// frees dozens of small blocks (headers, the row, the token's parts), and under load glibc's
/// malloc, free and fastbin consolidation were 7% of `GET customers/me`'s CPU. Measured with wrk,
/// builds taken in turn: the server's user CPU per request 26.6 -> 21 us (infra/BENCH.md). The
/// functions keep the system allocator (their start-up is what they are measured on). Under a
/// flood of sign-ins the server's peak memory was lower too: 90 MB, where glibc's took 392 on
/// another machine (SECURITY.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { addr } => {
                let config = setup::config()?;
                let addr = match addr {
                    Some(addr) => addr,
                    // Checked when the settings were parsed.
                    None => config
                        .deployment
                        .addr
                        .parse()
                        .map_err(|e| format!("LATCHKEY_ADDR: {e}"))?,
                };
                serve::run(setup::serving(&cli.store, config, addr).await?, addr).await
            }
            Command::User(cmd) => admin::user(&cli.store, cmd).await,
            Command::Integration(cmd) => admin::integration(&cli.store, cmd).await,
            Command::Link(cmd) => admin::link(&cli.store, cmd).await,
            Command::Keys(cmd) => admin::keys(&cli.store, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
