//! The PostgreSQL backend (sqlx): one database shared by any number of calgate processes.
//!
//! **Writes are serialised, as SQLite's are.** Every write transaction first takes one
//! transaction-scoped advisory lock ([`WRITE_LOCK`]), so write transactions of every process
//! run one after the other, exactly as under SQLite's `BEGIN IMMEDIATE`: the invariants the
//! SQLite code keeps by running alone (check-then-insert, the change log's `seq` committing in
//! order so that a reader of `seq > n` never skips a row that commits later) hold here
//! unchanged. The work is still shared out between processes: sync leases, outbox claims and
//! webhook deliveries are rows with deadlines and fencing tokens, taken in those short
//! transactions, while the slow part — talking to Exchange — runs outside any transaction.
//! Reads run without the lock; a read that needs several statements to agree uses
//! [`PgStore::read_tx`] (one `REPEATABLE READ` snapshot).
//!
//! The code is split by concern exactly as the SQLite backend is (`connections.rs`,
//! `mailboxes.rs`, `instances.rs`, `status.rs`, `leases.rs`, `accounts.rs`, `push.rs`,
//! `webhooks.rs`, `host.rs`), with methods of the same names, so that one routing
//! ([`crate::routing`]) serves both. The schema is `migrations/postgres`: SQLite's schema with
//! BIGINT integers, BYTEA blobs and byte-order (`"C"`) collation.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

#[allow(unused_imports)]
use crate::codec::{
    address_key, count, date, from_json, opt_ts, parse_enum, sql, text_ts, to_i64, to_json, ts, us,
};

mod accounts;
mod connections;
mod host;
mod instances;
mod leases;
mod mailboxes;
mod push;
mod roles;
mod status;
mod webhooks;

/// `meta` key of the admin console's password hash.
const CONSOLE_PASSWORD: &str = "console_password";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock every write transaction holds ("calgate" and 1 in ASCII): one writer at a
/// time across every process that shares the database.
const WRITE_LOCK: i64 = 0x6361_6c67_6174_6501;

/// See [`PgStore::open`]: how long a session may sit idle inside a transaction.
const IDLE_IN_TRANSACTION: &str = "30s";
/// How long a statement may wait for a lock (the write lock included).
const LOCK_WAIT: &str = "120s";

const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAIN: &[u8] = b"calgate master key check v1";

/// How to open a PostgreSQL store.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Create calgate's tables in an empty database (else an empty database is
    /// [`ErrorKind::Missing`]). The database itself must exist.
    pub create: bool,
    /// Pool size (default 10).
    pub max_connections: Option<u32>,
    /// Refuse to migrate an older schema (see
    /// [`OpenOptions::no_migrate`](crate::OpenOptions::no_migrate)).
    pub no_migrate: bool,
}

/// The PostgreSQL implementation of [`Store`](crate::Store).
pub struct PgStore {
    pool: PgPool,
    /// This process's writers queue here before taking a connection (see [`Tx`]).
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    key: MasterKey,
    /// The schema as this process found and left it.
    schema: crate::SchemaInfo,
    /// The URL without its password, for messages.
    display: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.display)
            .finish_non_exhaustive()
    }
}

/// A write transaction holding [`WRITE_LOCK`] (and this process's write gate), or a read
/// snapshot. Dropped uncommitted, it rolls back. Derefs to the connection (`&mut *tx` is the
/// executor).
struct Tx {
    tx: sqlx::Transaction<'static, Postgres>,
    /// This process's turn to write: writers queue here without holding a pooled connection,
    /// so that writers waiting for [`WRITE_LOCK`] never take every connection of the pool
    /// (readers, and the writer that holds the lock, would then wait for one).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }
}

// ---- error mapping ---------------------------------------------------------------------------

fn map_sqlx(what: &str, e: sqlx::Error) -> Error {
    let (kind, detail) = match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            let kind = match d.kind() {
                sqlx::error::ErrorKind::UniqueViolation => ErrorKind::Conflict,
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => ErrorKind::InvalidData,
                sqlx::error::ErrorKind::ForeignKeyViolation => ErrorKind::NotFound,
                // disk_full, insufficient_resources
                _ if code == "53100" || code == "53000" => ErrorKind::DiskFull,
                // invalid_text_representation, numeric_value_out_of_range,
                // character_not_in_repertoire, untranslatable_character
                _ if matches!(code.as_str(), "22P02" | "22003" | "22021" | "22P05") => {
                    ErrorKind::InvalidData
                }
                _ => ErrorKind::Database,
            };
            let detail = match code.as_str() {
                "53100" => format!(
                    "{} — the PostgreSQL server's disk is full: free space there, then try again",
                    d.message()
                ),
                "XX001" | "XX002" => format!(
                    "{} — the database is damaged: restore it from a backup",
                    d.message()
                ),
                _ => d.message().to_owned(),
            };
            (kind, detail)
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => (
            ErrorKind::Database,
            format!("{e} (is the PostgreSQL server running and reachable?)"),
        ),
        other => (ErrorKind::Database, other.to_string()),
    };
    Error::with_source(kind, format!("{what}: {detail}"), e)
}

trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, sqlx::Error> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| map_sqlx(what, e))
    }
}

/// `postgres://user@host:port/db`: the URL without its password or parameters.
fn display_url(o: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("")
    )
}

impl PgStore {
    /// Connects, creates (with `options.create`) or migrates calgate's schema, then checks the
    /// master key against the database. `key` is told whether the database already holds data
    /// sealed with one.
    pub async fn open(
        url: &str,
        key: impl FnOnce(bool) -> Result<MasterKey>,
        options: &PgOptions,
    ) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            // sqlx's message may quote the URL: say what is wrong without it.
            let why = match e {
                sqlx::Error::Configuration(_) => "it is not a valid postgres:// URL",
                _ => "it cannot be read",
            };
            Error::invalid(format!(
                "the PostgreSQL URL cannot be used: {why} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require])"
            ))
        })?;
        // A process that stalls inside a write transaction (a paused VM, a stopped process)
        // would hold the write lock of every process: the server ends such a session after
        // IDLE_IN_TRANSACTION, which releases the lock (that process's transaction fails and its
        // round runs again later; its writes are fenced anyway). A writer that waits for the lock
        // longer than LOCK_WAIT gives up with an error instead of hanging.
        // JIT compilation never pays for calgate's short queries, and the server starts it by
        // the planner's cost estimate: with statistics a bulk first sync left stale, every
        // mailbox's state read (~0.3 ms) was JIT-compiled first (~16 ms), which made an
        // incremental round of 10,000 mailboxes take 109 s instead of seconds.
        let mut connect = connect.application_name("calgate").options([
            ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION),
            ("lock_timeout", LOCK_WAIT),
            ("jit", "off"),
        ]);
        // On this machine's loopback, TLS protects nothing, and through sqlx it costs much more
        // than its cryptography: a first sync of 2,000 mailboxes took over five times as long
        // (`sslmode=prefer`, the default, against Debian's server, which offers TLS). A URL
        // that names an sslmode keeps it.
        if !url.contains("sslmode=")
            && matches!(
                connect.get_host(),
                "127.0.0.1" | "localhost" | "::1" | "[::1]"
            )
        {
            connect = connect.ssl_mode(sqlx::postgres::PgSslMode::Disable);
        }
        let display = display_url(&connect);
        // One connection first: a server that is down or refuses the login is one clear error
        // at once (the pool would retry until its acquire timeout).
        {
            use sqlx::Connection as _;
            let probe = sqlx::PgConnection::connect_with(&connect)
                .await
                .ctx(&format!("cannot connect to PostgreSQL at {display}"))?;
            let _ = probe.close().await;
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(10).max(2))
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(connect)
            .await
            .ctx(&format!("cannot connect to PostgreSQL at {display}"))?;
        let what = format!("cannot read calgate's schema in {display}");
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&pool)
                .await
                .ctx(&what)?;
        let newest: Option<i64> = if has_table {
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .ctx(&what)?
        } else {
            None
        };
        if newest.is_none() && !options.create {
            return Err(Error::new(
                ErrorKind::Missing,
                format!(
                    "the PostgreSQL database {display} holds no calgate store: set it up with `calgate migrate --database …` (or `calgate store copy --to …` from an SQLite installation)"
                ),
            ));
        }
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(v) = newest.filter(|v| *v < known)
            && options.no_migrate
        {
            return Err(Error::new(
                ErrorKind::Schema,
                format!(
                    "the database {display} has schema {v} and this calgate uses schema {known}, but migrating was forbidden (--no-migrate): back the data up, then run `calgate migrate`"
                ),
            ));
        }
        if let Some(v) = newest.filter(|v| *v > known) {
            return Err(Error::new(
                ErrorKind::Schema,
                format!(
                    "the database {display} has schema {v}, written by a newer calgate; this calgate knows schema {known} at most: run the newer calgate (or restore the backup taken before the upgrade)"
                ),
            ));
        }
        // sqlx holds an advisory lock while it migrates: instances starting together wait.
        MIGRATOR.run(&pool).await.map_err(|e| {
            let message = format!("cannot migrate the database {display}: {e}");
            Error::with_source(ErrorKind::Database, message, e)
        })?;
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(KEY_CHECK)
            .fetch_optional(&pool)
            .await
            .ctx("cannot read the master key check")?;
        let key = key(sealed.is_some())?;
        let store = PgStore {
            pool,
            write_gate: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            key,
            schema: crate::SchemaInfo {
                version: known,
                migrated_from: newest.filter(|v| *v < known),
            },
            display,
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The database, as `postgres://user@host:port/db` (no password).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The pool (`store copy` writes the target through it).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction: it holds [`WRITE_LOCK`] until it commits or rolls back.
    async fn write_tx(&self) -> Result<Tx> {
        let what = "cannot start a write transaction";
        let turn = self.write_gate.clone().lock_owned().await;
        let mut tx = self.pool.begin().await.ctx(what)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        Ok(Tx {
            tx,
            _turn: Some(turn),
        })
    }

    /// A read-only snapshot for reads of several statements that must agree.
    #[allow(dead_code)]
    async fn read_tx(&self) -> Result<Tx> {
        let what = "cannot start a read";
        let mut tx = self.pool.begin().await.ctx(what)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        Ok(Tx { tx, _turn: None })
    }

    /// Seals a known value with the key on first open; later opens must open it.
    async fn check_key(&self) -> Result<()> {
        let aad = b"calgate:meta:master_key_check";
        let mut tx = self.write_tx().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(KEY_CHECK)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read the master key check")?;
        match existing {
            None => {
                let sealed = self.key.seal(aad, KEY_CHECK_PLAIN)?;
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
                    .bind(KEY_CHECK)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await
                    .ctx("cannot write the master key check")?;
                tx.commit().await.ctx("cannot write the master key check")?;
                Ok(())
            }
            Some(sealed) => {
                tx.commit().await.ctx("cannot read the master key check")?;
                match self.key.open(aad, &sealed) {
                    Ok(plain) if plain == KEY_CHECK_PLAIN => Ok(()),
                    _ => Err(Error::new(
                        ErrorKind::MasterKey,
                        format!(
                            "the master key does not match the database {}: it was created with another {}; restore that key",
                            self.display,
                            crate::MASTER_KEY_ENV,
                        ),
                    )),
                }
            }
        }
    }

    /// Adds the database to errors whose fix is about the server.
    fn located(&self, e: Error) -> Error {
        match e.kind() {
            ErrorKind::DiskFull | ErrorKind::Io => {
                let message = format!("{} ({})", e.message(), self.display);
                e.reworded(message)
            }
            _ => e,
        }
    }

    /// PostgreSQL checks its pages itself (and checksums them when the cluster was initialised
    /// with them); this check reads every table of calgate's through and checks the rules the
    /// schema cannot express: the problems found (empty when sound).
    async fn integrity_impl(&self) -> Result<Vec<String>> {
        let what = "cannot check the database";
        let mut problems = Vec::new();
        let orphans: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM push_outbox o \
             WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.external_id = o.external_id)",
        )
        .fetch_one(&self.pool)
        .await
        .ctx(what)?;
        if orphans > 0 {
            problems.push(format!("{orphans} outbox entries belong to no booking"));
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename <> '_sqlx_migrations' ORDER BY tablename",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(what)?;
        for table in tables {
            let q = sql(format!(
                "SELECT count(*) FROM \"{}\"",
                table.replace('"', "")
            ));
            if let Err(e) = sqlx::query_scalar::<_, i64>(q).fetch_one(&self.pool).await {
                problems.push(format!("table {table} cannot be read: {e}"));
            }
        }
        Ok(problems)
    }
}

crate::routing::route_store!(PgStore);
