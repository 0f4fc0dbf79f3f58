//! The `calgate` command line.
//!
//! Exit status: 0 success; 1 failure with one line on stderr per cause (`calgate: …`) that
//! says what failed and what to do; 2 bad usage (clap, and the few checks clap cannot make).
//!
//! Secrets never appear on the command line (they come from an environment variable or a
//! file) and are never printed.
#![forbid(unsafe_code)]

/// mimalloc rather than glibc's allocator: a sync round frees many large response bodies and
/// many small strings, and glibc's `malloc_consolidate` was the top entry of calgate's profile
/// (14 % of its CPU in a first sync; BENCHMARKS.md). The simulator, in the same binary, gains
/// as much. Built without transparent huge pages (`no_thp`): a 2 MiB page is resident in full
/// however little of it is used, which put ~40 MiB on a first sync's peak memory. Version 2
/// (the `v2` feature), not 3: version 3 keeps freed memory resident for a second before it
/// returns it (version 2: 10 ms), which put ~20 MiB on that peak when a first round writes
/// two pages at a time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod account;
mod admin_cmd;
mod apikey;
mod bench;
mod bench_api;
mod bench_console;
mod bench_instances;
mod bench_notify;
mod bench_push;
mod booking;
mod config;
mod connection;
mod demo;
mod doctor;
mod events;
mod feed;
mod freebusy;
mod mailbox;
mod output;
mod push_cmd;
mod rooms_cmd;
mod serve;
mod sim_cmd;
mod sync_cmd;
mod webhook_cmd;

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use calgate_store::{Location, Store};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "calgate",
    version,
    about = "A self-hosted gateway between business applications and Microsoft Exchange calendars"
)]
struct Cli {
    /// Data directory (SQLite file and master key inside it). Default: $CALGATE_DATA_DIR, else
    /// ./calgate-data.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL, instead of the SQLite file in the data directory: sqlite://FILE, or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (its master key in CALGATE_MASTER_KEY or
    /// the file named by CALGATE_MASTER_KEY_FILE).
    #[arg(long, global = true, value_name = "URL", conflicts_with = "data_dir")]
    database: Option<String>,
    /// Configuration file (TOML; every key is also a CALGATE_* environment variable, see the
    /// README).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a simulated Microsoft 365 tenant, connect to it, link all its mailboxes and sync.
    Demo(demo::DemoArgs),
    /// Run the Microsoft 365 simulator (Entra ID + Microsoft Graph calendars) until Ctrl-C.
    Sim(sim_cmd::SimArgs),
    /// Connections: one app registration in one Microsoft 365 tenant.
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Mailboxes (people, rooms, equipment) whose calendars calgate keeps.
    #[command(subcommand)]
    Mailbox(mailbox::MailboxCommand),
    /// Room lists and rooms from Exchange's places API.
    #[command(subcommand)]
    Rooms(rooms_cmd::RoomsCommand),
    /// Connected accounts: users who signed in to let calgate reach their own calendar.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Bring the stored calendars up to date with Exchange (incremental where possible).
    Sync(sync_cmd::SyncArgs),
    /// Show a mailbox's stored events in a time range.
    Events(events::EventsArgs),
    /// Health check: credential expiry, connections, mailbox sync status, connected accounts.
    /// Exit 0 unless a check failed (warnings do not fail).
    Doctor(doctor::DoctorArgs),
    /// Benchmarks against a simulator started for the occasion.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the REST API for the host application, with sync in the background.
    Serve(serve::ServeArgs),
    /// API keys for the host application.
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCommand),
    /// The admin console: its password.
    #[command(subcommand)]
    Admin(admin_cmd::AdminCommand),
    /// ICS feeds of a mailbox (for Outlook, Google Calendar, Apple Calendar).
    #[command(subcommand)]
    Feed(feed::FeedCommand),
    /// Busy time of people and rooms, and the free slots common to all.
    Freebusy(freebusy::FreeBusyArgs),
    /// The host application's events that calgate pushes into Exchange.
    #[command(subcommand)]
    Booking(booking::BookingCommand),
    /// Push bookings into Exchange now, or purge what calgate pushed.
    #[command(subcommand)]
    Push(push_cmd::PushCommand),
    /// Webhooks: endpoints of the host application that `calgate serve` tells what changed.
    #[command(subcommand)]
    Webhook(webhook_cmd::WebhookCommand),
    /// Bring the store's schema up to this calgate's (every command also does it when it opens
    /// the store, unless `serve --no-migrate`); `--check` only says whether it is needed.
    Migrate(MigrateArgs),
    /// The store itself: copy an SQLite installation into PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print the REST API's OpenAPI 3.1 document (what `calgate serve` serves at
    /// /openapi.json; committed as docs/openapi.json).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy this installation's SQLite store (every connection, sealed secret, mailbox, event,
    /// cursor, booking, outbox entry and webhook) into an empty PostgreSQL database, verified
    /// by counts. The target keeps the same master key: give it to every calgate that uses the
    /// target (CALGATE_MASTER_KEY, or CALGATE_MASTER_KEY_FILE naming this data directory's
    /// master.key).
    Copy {
        /// The PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE); it must
        /// exist and hold no calgate data.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// `calgate store copy --to URL`.
async fn store_cmd(cmd: StoreCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let StoreCommand::Copy { to } = cmd;
    let report = calgate_store::copy_store(&loc.location, &to)
        .await
        .map_err(|e| anyhow::anyhow!("{}", one_line(e.message())))?;
    let mut out = String::new();
    for (table, rows) in &report.tables {
        if *rows > 0 {
            out.push_str(&format!("  {table:<22} {rows:>9} rows\n"));
        }
    }
    let key_hint = match &loc.side_dir {
        Some(dir) => format!(
            "CALGATE_MASTER_KEY_FILE={} (or CALGATE_MASTER_KEY)",
            dir.join(calgate_store::MASTER_KEY_FILE).display()
        ),
        None => "CALGATE_MASTER_KEY".to_owned(),
    };
    out.push_str(&format!(
        "copied {} rows from {} to {} in {:.1} s; every table's count verified\nrun calgate with --database {} and {key_hint}: the target uses the same master key\n",
        report.rows(),
        loc.shown(),
        calgate_store::redacted_location(&to),
        report.seconds,
        calgate_store::redacted_location(&to),
    ));
    output::print_out(&out);
    Ok(())
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// Change nothing: exit 0 when the schema is up to date, 1 (with the reason) when it is not.
    #[arg(long)]
    check: bool,
}

/// `calgate migrate [--check]`.
async fn migrate(args: MigrateArgs, loc: StoreLocation) -> anyhow::Result<()> {
    let store = if args.check {
        loc.open_without_migrating().await?
    } else if loc.is_postgres() {
        // An empty PostgreSQL database is set up here: the database itself is the
        // administrator's (CREATE DATABASE), calgate's tables are calgate's.
        loc.open_or_create().await?
    } else {
        loc.open().await?
    };
    let schema = store.schema().await?;
    output::print_out(&match schema.migrated_from {
        Some(from) => format!(
            "{}: migrated from schema {from} to schema {}\n",
            loc.shown(),
            schema.version
        ),
        None => format!("{}: schema {}, up to date\n", loc.shown(), schema.version),
    });
    Ok(())
}

/// Where the store lives, as the global flags say.
#[derive(Debug, Clone)]
pub(crate) struct StoreLocation {
    /// What `calgate_store::open` takes: a data directory or a URL.
    pub location: String,
    /// The directory beside the database (where earlier versions kept extra CA files).
    pub side_dir: Option<PathBuf>,
}

impl StoreLocation {
    /// The flags, else the configuration (environment, then file), else `./calgate-data`.
    fn from_cli(cli: &Cli, config: &config::Config) -> StoreLocation {
        let location = match (&cli.database, &cli.data_dir) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => dir.display().to_string(),
            (None, None) => config
                .location
                .clone()
                .unwrap_or_else(|| "./calgate-data".to_owned()),
        };
        StoreLocation::new(location)
    }

    /// The location as messages show it (a URL's password hidden).
    pub(crate) fn shown(&self) -> String {
        calgate_store::redacted_location(&self.location)
    }

    /// A PostgreSQL database (which `calgate migrate` may set up when it is empty).
    fn is_postgres(&self) -> bool {
        matches!(Location::parse(&self.location), Ok(Location::Postgres(_)))
    }

    pub(crate) fn new(location: String) -> StoreLocation {
        let side_dir = match Location::parse(&location) {
            Ok(Location::Sqlite { key_dir, .. }) => Some(key_dir),
            _ => None,
        };
        StoreLocation { location, side_dir }
    }

    /// Opens the existing store; a missing one is an error naming the place and the fix
    /// (a mistyped or unmounted data directory must not look like an empty installation).
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(false, false).await
    }

    /// [`StoreLocation::open`], refusing to migrate an older schema (`serve --no-migrate`,
    /// `migrate --check`): that is an error naming `calgate migrate`.
    pub(crate) async fn open_without_migrating(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(false, true).await
    }

    /// Opens the store, creating it when there is none: for the commands that set calgate up
    /// (`connection add`, `demo`).
    pub(crate) async fn open_or_create(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(true, false).await
    }

    async fn open_with(&self, create: bool, no_migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
        let options = calgate_store::OpenOptions {
            create,
            no_migrate,
            ..calgate_store::OpenOptions::default()
        };
        let store = calgate_store::open_with(&self.location, options)
            .await
            .map_err(|e| {
                use calgate_store::ErrorKind as K;
                match e.kind() {
                    // These messages already say where and what to do.
                    K::Missing | K::MasterKey | K::DiskFull | K::Schema => {
                        anyhow::anyhow!("{}", one_line(e.message()))
                    }
                    K::Io => anyhow::anyhow!(
                        "cannot open calgate's store at {}: {} — check that the data directory (--data-dir) exists and is writable",
                        self.shown(),
                        one_line(e.message())
                    ),
                    _ => anyhow::anyhow!(
                        "cannot open calgate's store at {}: {}",
                        self.shown(),
                        one_line(&format!("{e:#}"))
                    ),
                }
            })?;
        // CA files of earlier versions move into their connections (trusted for them only).
        if let Some(dir) = &self.side_dir {
            match calgate_admin::connections::adopt_legacy_ca_files(store.as_ref(), dir).await {
                Ok(adopted) => {
                    for name in adopted {
                        tracing::info!(connection = %name, "moved the connection's CA file into the store");
                    }
                }
                Err(e) => tracing::warn!("could not move the CA files into the store: {e}"),
            }
        }
        Ok(store)
    }
}

/// A failure already explained on stderr (one line per cause): exit 1, print nothing more.
#[derive(Debug)]
pub(crate) struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failure already reported")
    }
}

impl std::error::Error for Reported {}

/// Bad usage that clap cannot see (e.g. `--from` after `--to`): exit 2.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Joins a message's lines into one.
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes one `calgate: …` line on stderr.
pub(crate) fn error_line(msg: &str) {
    let _ = writeln!(std::io::stderr(), "calgate: {}", one_line(msg));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            error_line(&format!("error: {e:#}"));
            return ExitCode::from(1);
        }
    };
    // The simulator logs warnings and the service its requests; other commands report
    // failures as `calgate:` lines themselves, so their logs stay quiet unless RUST_LOG asks.
    match &cli.command {
        Command::Sim(_) => init_tracing("warn", config::LogFormat::Text),
        Command::Serve(a) => {
            init_tracing(&config.log_level, a.log_format.unwrap_or(config.log_format))
        }
        _ => init_tracing("error", config::LogFormat::Text),
    }
    let loc = StoreLocation::from_cli(&cli, &config);
    let result = match cli.command {
        Command::Sim(args) => run_async(sim_cmd::sim(args)),
        Command::Connection(cmd) => run_async(connection::run(cmd, loc)),
        Command::Mailbox(cmd) => run_async(mailbox::run(cmd, loc)),
        Command::Rooms(cmd) => run_async(rooms_cmd::run(cmd, loc)),
        Command::Account(cmd) => run_async(account::run(cmd, loc)),
        Command::Doctor(args) => run_async(doctor::run(args, loc)),
        Command::Sync(args) => run_async(sync_cmd::run(args, loc)),
        Command::Events(args) => run_async(events::run(args, loc)),
        Command::Demo(args) => run_async(demo::run(args, loc, &config)),
        Command::Bench(cmd) => run_async(bench::run(cmd)),
        Command::Serve(args) => run_async(serve::run(args, loc, config)),
        Command::Migrate(args) => run_async(migrate(args, loc)),
        Command::Store(cmd) => run_async(store_cmd(cmd, loc)),
        Command::Apikey(cmd) => run_async(apikey::run(cmd, loc)),
        Command::Admin(cmd) => run_async(admin_cmd::run(cmd, loc)),
        Command::Webhook(cmd) => run_async(webhook_cmd::run(cmd, loc)),
        Command::Feed(cmd) => run_async(feed::run(cmd, loc, &config)),
        Command::Freebusy(args) => run_async(freebusy::run(args, loc)),
        Command::Booking(cmd) => run_async(booking::run(cmd, loc)),
        Command::Push(cmd) => run_async(push_cmd::run(cmd, loc)),
        Command::Openapi => {
            output::print_out(&format!("{}\n", calgate_api::openapi_json()));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::from(1),
        Err(e) if e.is::<Usage>() => {
            error_line(&format!("{e}"));
            ExitCode::from(2)
        }
        Err(e) => {
            // One line: what failed and what to do.
            error_line(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

fn init_tracing(default: &str, format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

fn run_async(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_line_joins() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a b c");
    }
}
