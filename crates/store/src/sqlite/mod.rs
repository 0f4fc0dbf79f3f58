//! The SQLite backend (sqlx): one file, WAL, foreign keys, a busy timeout and a small pool.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction ([`WriteTx`]), so concurrent writers
//! queue on the busy timeout instead of failing on a read-to-write upgrade. A connection whose
//! transaction ended in an unknown state (a failed `COMMIT` after "disk full", a dropped
//! transaction) is closed, never handed to the next writer.
//!
//! The sync rounds' own writes (leases, change sets, status) run on a second write connection
//! that a thread of its own owns (`bulk.rs`, rusqlite): one hand-off per transaction instead of
//! one per statement. Both write connections sit behind the same write gate (that thread takes
//! it itself, for the jobs queued at once). A third
//! connection, on a thread of its own too, only checkpoints the WAL (`bulk.rs`'s
//! `Checkpointer`), so the writer's commits do not.
//!
//! The code is split by concern: `connections.rs` (connections and sealed credentials),
//! `mailboxes.rs` (linking, privacy changes), `instances.rs` (change sets, shadow resyncs,
//! reads, cursors), `status.rs`, `leases.rs`, `accounts.rs`. This file holds opening, the
//! transaction wrapper, value codecs, and the [`Store`] impl that routes to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

mod accounts;
mod bulk;
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// `PRAGMA cache_size` of each reader: in KiB when negative.
const READER_CACHE: &str = "-1024";
const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_PLAIN: &[u8] = b"calgate master key check v1";

/// How to open an SQLite store.
#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    /// Create the file when it does not exist (else: [`ErrorKind::Missing`]).
    pub create: bool,
    /// Pool size (default 8).
    pub max_connections: Option<u32>,
    /// A cap on the database's size, in pages (`PRAGMA max_page_count`); past it writes fail
    /// as "disk full". For quotas and for tests of that path.
    pub max_page_count: Option<u64>,
    /// Refuse to migrate an existing database whose schema is older (see
    /// [`OpenOptions::no_migrate`](crate::OpenOptions::no_migrate)).
    pub no_migrate: bool,
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for every write transaction of this process: its page cache stays warm
    /// and its multi-row statements are prepared once, instead of on each of the readers'.
    writer: SqlitePool,
    /// This process's writers queue here (first come, first served) before `BEGIN
    /// IMMEDIATE`, rather than all taking pooled connections and sleeping in SQLite's busy
    /// handler; other processes' writers still meet the busy timeout.
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// The rounds' change sets: a connection of its own on a thread of its own (`bulk.rs`),
    /// also behind `write_gate`, which that thread takes itself.
    bulk: bulk::BulkWriter,
    key: MasterKey,
    /// The schema as this process found and left it.
    schema: crate::SchemaInfo,
    file: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

// ---- error mapping ---------------------------------------------------------------------------

/// SQLite's primary result codes that have a meaning of their own for an administrator.
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_NOTADB: i64 = 26;

fn map_sqlx(what: &str, e: sqlx::Error) -> Error {
    let (kind, detail) = match &e {
        sqlx::Error::Database(d) => {
            let primary = d
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            let kind = match (d.kind(), primary) {
                (sqlx::error::ErrorKind::UniqueViolation, _) => ErrorKind::Conflict,
                (
                    sqlx::error::ErrorKind::CheckViolation
                    | sqlx::error::ErrorKind::NotNullViolation,
                    _,
                ) => ErrorKind::InvalidData,
                (sqlx::error::ErrorKind::ForeignKeyViolation, _) => ErrorKind::NotFound,
                (_, Some(SQLITE_FULL)) => ErrorKind::DiskFull,
                (_, Some(SQLITE_READONLY | SQLITE_IOERR)) => ErrorKind::Io,
                _ => ErrorKind::Database,
            };
            let detail = match primary {
                Some(SQLITE_CORRUPT | SQLITE_NOTADB) => format!(
                    "{} — the database file is damaged: restore it from a backup",
                    d.message()
                ),
                _ => d.message().to_owned(),
            };
            (kind, detail)
        }
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

// ---- the write transaction -------------------------------------------------------------------

/// One `BEGIN IMMEDIATE` transaction on a pooled connection. `commit` ends it; dropping it
/// uncommitted (an early `?`) closes the connection, which rolls the transaction back; a failed
/// `COMMIT` (disk full, I/O error: SQLite may already have rolled back) also closes it, so no
/// later writer inherits a connection in an unknown transaction state.
struct WriteTx {
    conn: PoolConnection<Sqlite>,
    done: bool,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn begin(
        pool: &SqlitePool,
        gate: &Arc<tokio::sync::Mutex<()>>,
    ) -> std::result::Result<WriteTx, sqlx::Error> {
        let turn = gate.clone().lock_owned().await;
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e);
        }
        Ok(WriteTx {
            conn,
            done: false,
            _turn: turn,
        })
    }

    async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        match sqlx::raw_sql("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.done = true;
                Ok(())
            }
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *self.conn).await;
                Err(e)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

type Tx = WriteTx;

use crate::codec::{
    address_key, count, date, from_json, opt_ts, parse_enum, sql, text_ts, to_i64, to_json, ts, us,
};

// ---- files -----------------------------------------------------------------------------------

/// Makes `path` readable and writable by its owner only, if it exists and is looser.
#[cfg(unix)]
fn tighten(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| {
                    Error::io(
                        format!("cannot make {} private (chmod 600)", path.display()),
                        e,
                    )
                },
            )?;
            tracing::info!(path = %path.display(), "made private (mode 0600)");
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> Result<()> {
    Ok(())
}

/// Creates an empty database file with mode 0600 (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), unless it exists.
fn create_private_file(path: &Path) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(
            format!("cannot create the database {}", path.display()),
            e,
        )),
    }
}

/// The database file and the files SQLite keeps beside it.
fn database_files(file: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = file.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [file.to_path_buf(), with("-wal"), with("-shm")]
}

impl SqliteStore {
    /// Opens (creating when `options.create`) and migrates the database file, then checks the
    /// master key against it. `key` is asked for the key once the file is open; it is told
    /// whether the database already holds data sealed with one (then a missing key must not be
    /// replaced by a new one).
    pub async fn open(
        file: &Path,
        key: impl FnOnce(bool) -> Result<MasterKey>,
        options: &SqliteOptions,
    ) -> Result<Self> {
        if options.create {
            create_private_file(file)?;
        } else if !file.is_file() {
            return Err(Error::new(
                ErrorKind::Missing,
                format!("there is no calgate database at {}", file.display()),
            ));
        }
        for f in database_files(file) {
            tighten(&f)?;
        }
        let mut connect = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        if let Some(pages) = options.max_page_count {
            connect = connect.pragma("max_page_count", pages.to_string());
        }
        let what = format!("cannot open the database {}", file.display());
        // Readers keep a page cache of 1 MiB each instead of SQLite's 2 MiB: the operating
        // system caches the file too, and eight full caches were a tenth of a syncing
        // process's memory.
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8).max(1))
            .connect_with(connect.clone().pragma("cache_size", READER_CACHE))
            .await
            .ctx(&what)?;
        // A database a newer calgate migrated: say so, rather than sqlx's "previously applied
        // but missing". (No migrations table yet: a new database, nothing to compare.)
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(v) = newest.filter(|v| *v < known)
            && options.no_migrate
        {
            return Err(Error::new(
                ErrorKind::Schema,
                format!(
                    "the database {} has schema {v} and this calgate uses schema {known}, but migrating was forbidden (--no-migrate): back the data up, then run `calgate migrate`",
                    file.display()
                ),
            ));
        }
        if let Some(v) = newest.filter(|v| *v > known) {
            return Err(Error::new(
                ErrorKind::Schema,
                format!(
                    "the database {} has schema {v}, written by a newer calgate; this calgate knows schema {known} at most: run the newer calgate (or restore the backup taken before the upgrade)",
                    file.display()
                ),
            ));
        }
        MIGRATOR.run(&pool).await.map_err(|e| {
            let message = format!("cannot migrate the database {}: {e}", file.display());
            Error::with_source(ErrorKind::Database, message, e)
        })?;
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&pool)
            .await
            .ctx("cannot read the master key check")?;
        let key = key(sealed.is_some())?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .ctx(&what)?;
        let write_gate = Arc::new(tokio::sync::Mutex::new(()));
        let bulk = bulk::BulkWriter::start(file, options.max_page_count, write_gate.clone())?;
        let store = SqliteStore {
            pool,
            writer,
            write_gate,
            bulk,
            key,
            schema: crate::SchemaInfo {
                version: known,
                migrated_from: newest.filter(|v| *v < known),
            },
            file: file.to_path_buf(),
        };
        store.check_key().await?;
        Ok(store)
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The key the store's secrets are sealed with (`store copy` opens the target with it).
    pub(crate) fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// The read pool (`store copy` reads the source in one snapshot from it).
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<Tx> {
        WriteTx::begin(&self.writer, &self.write_gate)
            .await
            .ctx("cannot start a write transaction")
    }

    /// Seals a known value with the key on first open; later opens must open it.
    async fn check_key(&self) -> Result<()> {
        let aad = b"calgate:meta:master_key_check";
        let mut tx = self.write_tx().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&mut *tx)
            .await
            .ctx("cannot read the master key check")?;
        match existing {
            None => {
                let sealed = self.key.seal(aad, KEY_CHECK_PLAIN)?;
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
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
                            "the master key does not match the database {}: it was created with another {} or {}; restore that key",
                            self.file.display(),
                            crate::MASTER_KEY_ENV,
                            crate::MASTER_KEY_FILE
                        ),
                    )),
                }
            }
        }
    }

    /// Adds the database's path to errors whose fix is about the file or its disk.
    fn located(&self, e: Error) -> Error {
        let message = match e.kind() {
            ErrorKind::DiskFull => format!(
                "the disk holding {} is full ({}): free space there, then try again",
                self.file.display(),
                e.message()
            ),
            ErrorKind::Io => format!(
                "{} ({}): check the disk and that the file is writable",
                e.message(),
                self.file.display()
            ),
            _ => return e,
        };
        e.reworded(message)
    }

    /// `PRAGMA integrity_check`: the problems found (empty when the database is sound).
    async fn integrity_impl(&self) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
            .fetch_all(&self.pool)
            .await
            .ctx("cannot check the database")?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }
}

crate::routing::route_store!(SqliteStore);
