//! The SQLite backend (sqlx): one file, WAL, foreign keys, a busy timeout and a small pool.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction ([`WriteTx`]), so concurrent writers
//! queue on the busy timeout instead of failing on a read-to-write upgrade. A connection whose
//! transaction ended in an unknown state (a failed `COMMIT` after "disk full", a dropped
//! transaction) is closed, never handed to the next writer.
//!
//! The code is split by concern: `connections.rs` (connections and sealed credentials),
//! `mailboxes.rs` (linking, privacy changes), `instances.rs` (change sets, shadow resyncs,
//! reads, cursors), `status.rs`, `leases.rs`, `accounts.rs`. This file holds opening, the
//! transaction wrapper, value codecs, and the [`Store`] impl that routes to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite};

use crate::Store;
use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

mod accounts;
mod connections;
mod host;
mod instances;
mod leases;
mod mailboxes;
mod push;
mod status;
mod webhooks;

/// `meta` key of the admin console's password hash.
const CONSOLE_PASSWORD: &str = "console_password";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
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

// ---- value codecs ----------------------------------------------------------------------------

fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(v: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|_| Error::corrupt("instant", &v.to_string()))
}

fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(ts).transpose()
}

fn text_ts(v: Option<String>) -> Result<Option<Timestamp>> {
    v.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|_| Error::corrupt("instant", &s))
    })
    .transpose()
}

fn date(v: Option<String>) -> Result<Option<Date>> {
    v.map(|s| s.parse::<Date>().map_err(|_| Error::corrupt("date", &s)))
        .transpose()
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored enumeration in calgate's spelling (`calgate_core`'s `as_str`).
fn parse_enum<T: std::str::FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse::<T>().map_err(|_| Error::corrupt(what, s))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::invalid(format!("cannot encode a value as JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| Error::corrupt(what, s))
}

fn address_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// SQL built from constant table and column names only (never from input).
fn sql(s: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(s)
}

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
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8).max(1))
            .connect_with(connect.clone())
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
        let store = SqliteStore {
            pool,
            writer,
            write_gate: Arc::new(tokio::sync::Mutex::new(())),
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

/// Routes every call to its module and puts the database's path into disk and I/O errors.
macro_rules! routed {
    ($self:ident . $f:ident ( $($arg:expr),* )) => {
        $self.$f($($arg),*).await.map_err(|e| $self.located(e))
    };
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_connection(&self, c: &NewConnection) -> Result<ConnectionId> {
        routed!(self.add_connection_impl(c))
    }
    async fn list_connections(&self) -> Result<Vec<Connection>> {
        routed!(self.load_connections(None))
    }
    async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        Ok(routed!(self.load_connections(Some(name)))?
            .into_iter()
            .next())
    }
    async fn remove_connection(&self, name: &str) -> Result<bool> {
        routed!(self.remove_connection_impl(name))
    }
    async fn add_credential(&self, connection: &str, c: &NewCredential) -> Result<CredentialId> {
        routed!(self.add_credential_impl(connection, c))
    }
    async fn remove_credential(&self, connection: &str, id: CredentialId) -> Result<bool> {
        routed!(self.remove_credential_impl(connection, id))
    }
    async fn set_connection_ca(&self, connection: &str, ca_cert_pem: Option<&str>) -> Result<bool> {
        routed!(self.set_connection_ca_impl(connection, ca_cert_pem))
    }
    async fn set_ews_password(&self, connection: &str, password: &SecretString) -> Result<bool> {
        routed!(self.set_ews_password_impl(connection, password))
    }
    async fn set_credential_expiry(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        routed!(self.set_credential_expiry_impl(id, expires_at))
    }

    async fn link_mailbox(&self, m: &NewMailbox) -> Result<MailboxId> {
        routed!(self.link_mailbox_impl(m))
    }
    async fn unlink_mailbox(&self, address: &str) -> Result<bool> {
        routed!(self.unlink_mailbox_impl(address))
    }
    async fn list_mailboxes(&self) -> Result<Vec<Mailbox>> {
        routed!(self.mailboxes_impl(None))
    }
    async fn mailboxes_named(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(Mailbox, Option<Timestamp>)>> {
        routed!(self.mailboxes_named_impl(addresses))
    }
    async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>> {
        Ok(routed!(self.mailboxes_impl(Some(address)))?
            .into_iter()
            .next())
    }

    async fn acquire_lease(
        &self,
        mailbox: MailboxId,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<LeaseGrant> {
        routed!(self.acquire_lease_impl(mailbox, holder, ttl))
    }
    async fn renew_lease(&self, lease: &Lease) -> Result<()> {
        routed!(self.renew_lease_impl(lease))
    }
    async fn release_lease(&self, lease: &Lease) -> Result<bool> {
        routed!(self.release_lease_impl(lease))
    }
    async fn leases(&self) -> Result<Vec<LeaseInfo>> {
        routed!(self.leases_impl())
    }

    async fn apply_changes(&self, lease: &Lease, changes: &ChangeSet) -> Result<()> {
        routed!(self.apply_changes_impl(lease, changes))
    }
    async fn begin_shadow(&self, lease: &Lease, window: Window) -> Result<()> {
        routed!(self.begin_shadow_impl(lease, window))
    }
    async fn apply_shadow(&self, lease: &Lease, changes: &ChangeSet) -> Result<()> {
        routed!(self.apply_shadow_impl(lease, changes))
    }
    async fn commit_shadow(&self, lease: &Lease, cursor: &Cursor) -> Result<()> {
        routed!(self.commit_shadow_impl(lease, cursor))
    }
    async fn abort_shadow(&self, lease: &Lease) -> Result<bool> {
        routed!(self.abort_shadow_impl(lease))
    }
    async fn shadow(&self, mailbox: MailboxId) -> Result<Option<ShadowState>> {
        routed!(self.shadow_impl(mailbox))
    }
    async fn shadow_diff(&self, lease: &Lease) -> Result<ShadowDiff> {
        routed!(self.shadow_diff_impl(lease))
    }
    async fn instances_page(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        after: Option<&InstanceCursor>,
        limit: u32,
    ) -> Result<InstancePage> {
        routed!(self.instances_page_impl(mailbox, from, to, after, limit))
    }
    async fn instances(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>> {
        routed!(self.instances_impl(mailbox, from, to))
    }
    async fn busy_times(
        &self,
        mailboxes: &[MailboxId],
        from: Timestamp,
        to: Timestamp,
        busy: &[calgate_core::ShowAs],
    ) -> Result<Vec<BusyTimes>> {
        routed!(self.busy_times_impl(mailboxes, from, to, busy))
    }
    async fn instance(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>> {
        routed!(self.instance_impl(mailbox, exchange_id))
    }
    async fn count_live(&self, mailbox: MailboxId, exchange_ids: &[String]) -> Result<u64> {
        routed!(self.count_live_impl(mailbox, exchange_ids))
    }
    async fn count_instances(&self, mailbox: MailboxId) -> Result<u64> {
        routed!(self.count_instances_impl(mailbox))
    }
    async fn series_masters(&self, mailbox: MailboxId) -> Result<Vec<SeriesMaster>> {
        routed!(self.series_masters_impl(mailbox))
    }
    async fn cursor(&self, mailbox: MailboxId) -> Result<Option<Cursor>> {
        routed!(self.cursor_impl(mailbox))
    }
    async fn clear_cursor(&self, mailbox: MailboxId) -> Result<bool> {
        routed!(self.clear_cursor_impl(mailbox))
    }
    async fn record_status(&self, mailbox: MailboxId, s: &SyncStatusUpdate) -> Result<()> {
        routed!(self.record_status_impl(mailbox, s))
    }
    async fn finish_round(
        &self,
        mailbox: MailboxId,
        s: Option<&SyncStatusUpdate>,
        lease: &Lease,
    ) -> Result<bool> {
        routed!(self.finish_round_impl(mailbox, s, lease))
    }
    async fn statuses(&self) -> Result<Vec<MailboxStatus>> {
        routed!(self.statuses_impl(None))
    }
    async fn sync_states(&self) -> Result<Vec<MailboxSyncState>> {
        routed!(self.sync_states_impl())
    }
    async fn sync_state(&self, address: &str) -> Result<Option<MailboxSyncState>> {
        routed!(self.sync_state_impl(address))
    }
    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        routed!(self.changes_after_impl(after, limit))
    }
    async fn mailboxes_changed_after(&self, after: u64) -> Result<Vec<(MailboxId, u64)>> {
        routed!(self.mailboxes_changed_after_impl(after))
    }
    async fn changes_of(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM change_log WHERE mailbox_id = ? AND start_us < ? AND end_us > ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(mailbox.0)
        .bind(us(to))
        .bind(us(from))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the change log")?;
        rows.iter().map(webhooks::change_from_row).collect()
    }
    async fn changes_of_event(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM change_log WHERE mailbox_id = ? AND exchange_id = ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(mailbox.0)
        .bind(exchange_id)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read the change log")?;
        rows.iter().map(webhooks::change_from_row).collect()
    }
    async fn change_log_end(&self) -> Result<u64> {
        routed!(self.change_log_end_impl())
    }
    async fn change_log_floor(&self) -> Result<u64> {
        routed!(self.change_log_floor_impl())
    }
    async fn prune_change_log(&self, before: Timestamp) -> Result<u64> {
        routed!(self.prune_change_log_impl(before))
    }
    async fn record_notice(&self, notice: &NewNotice) -> Result<u64> {
        routed!(self.record_notice_impl(notice))
    }
    async fn record_notice_once(&self, key: &str, notice: &NewNotice) -> Result<Option<u64>> {
        routed!(self.record_notice_once_impl(key, notice))
    }
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>> {
        routed!(self.subscriptions_impl(None))
    }
    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
        Ok(routed!(self.subscriptions_impl(Some(id)))?
            .into_iter()
            .next())
    }
    async fn save_subscription(&self, record: &SubscriptionRecord) -> Result<()> {
        routed!(self.save_subscription_impl(record))
    }
    async fn remove_subscription(&self, mailbox: MailboxId) -> Result<bool> {
        routed!(self.remove_subscription_impl(mailbox))
    }
    async fn add_webhook(&self, url: &str, events: Option<&[String]>) -> Result<(Webhook, String)> {
        routed!(self.add_webhook_impl(url, events))
    }
    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        routed!(self.webhooks_impl(None))
    }
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
        Ok(routed!(self.webhooks_impl(Some(id)))?.into_iter().next())
    }
    async fn remove_webhook(&self, id: &str) -> Result<bool> {
        routed!(self.remove_webhook_impl(id))
    }
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        overlap: SignedDuration,
    ) -> Result<Option<String>> {
        routed!(self.rotate_webhook_secret_impl(id, overlap))
    }
    async fn webhook_secrets(&self, id: &str) -> Result<Vec<SecretString>> {
        routed!(self.webhook_secrets_impl(id))
    }
    async fn enqueue_deliveries(
        &self,
        webhook: &str,
        from: u64,
        through: u64,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        routed!(self.enqueue_deliveries_impl(webhook, from, through, deliveries))
    }
    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
        routed!(self.due_deliveries_impl(now, limit))
    }
    async fn next_delivery_at(&self) -> Result<Option<Timestamp>> {
        routed!(self.next_delivery_at_impl())
    }
    async fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<()> {
        routed!(self.finish_delivery_impl(id, outcome))
    }
    async fn deliveries(
        &self,
        webhook: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        routed!(self.deliveries_impl(webhook, state, limit))
    }
    async fn replay_deliveries(&self, webhook: &str, ids: Option<&[i64]>) -> Result<u64> {
        routed!(self.replay_deliveries_impl(webhook, ids))
    }
    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
        routed!(self.prune_deliveries_impl(before))
    }
    async fn status(&self, mailbox: MailboxId) -> Result<Option<MailboxStatus>> {
        Ok(routed!(self.statuses_impl(Some(mailbox)))?
            .into_iter()
            .next())
    }
    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
    async fn check_integrity(&self) -> Result<Vec<String>> {
        routed!(self.integrity_impl())
    }

    async fn put_booking(&self, external_id: &str, spec: &BookingSpec) -> Result<(Booking, bool)> {
        routed!(self.put_booking_impl(external_id, spec))
    }
    async fn booking(&self, external_id: &str) -> Result<Option<Booking>> {
        routed!(self.booking_impl(external_id))
    }
    async fn retry_booking(&self, external_id: &str) -> Result<Option<u64>> {
        routed!(self.retry_booking_impl(external_id))
    }
    async fn delete_booking(&self, external_id: &str) -> Result<bool> {
        routed!(self.delete_booking_impl(external_id))
    }
    async fn list_bookings(
        &self,
        state: Option<BookingState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Booking>> {
        routed!(self.list_bookings_impl(state, after, limit))
    }
    async fn due_pushes(&self, now: Timestamp, limit: u32) -> Result<Vec<PushTask>> {
        routed!(self.due_pushes_impl(now, limit))
    }
    async fn claim_push(&self, entry: i64, now: Timestamp, hold: SignedDuration) -> Result<bool> {
        routed!(self.claim_push_impl(entry, now, hold))
    }
    async fn finish_push(&self, task: &PushTask, outcome: &PushOutcome) -> Result<()> {
        routed!(self.finish_push_impl(task, outcome))
    }
    async fn pending_pushes(&self) -> Result<u64> {
        routed!(self.pending_pushes_impl())
    }
    async fn reconcile_pushed(&self) -> Result<(u64, u64)> {
        routed!(self.reconcile_pushed_impl())
    }
    async fn set_outlook_edits(
        &self,
        connection: &str,
        policy: calgate_core::booking::OutlookEdits,
    ) -> Result<bool> {
        routed!(self.set_outlook_edits_impl(connection, policy))
    }
    async fn outlook_edits(
        &self,
        connection: &str,
    ) -> Result<Option<calgate_core::booking::OutlookEdits>> {
        routed!(self.outlook_edits_impl(connection))
    }
    async fn record_responses(
        &self,
        external_id: &str,
        responses: &[(String, String)],
    ) -> Result<()> {
        routed!(self.record_responses_impl(external_id, responses))
    }
    async fn adopt_pushed(
        &self,
        external_id: &str,
        address: &str,
        exchange_id: &str,
        ical_uid: Option<&str>,
        web_link: Option<&str>,
        change_key: Option<&str>,
    ) -> Result<bool> {
        routed!(self.adopt_pushed_impl(
            external_id,
            address,
            exchange_id,
            ical_uid,
            web_link,
            change_key
        ))
    }

    async fn add_api_key(&self, key: &NewApiKey) -> Result<()> {
        routed!(self.add_api_key_impl(key))
    }
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>> {
        routed!(self.api_key_impl(key_id))
    }
    async fn console_password_hash(&self) -> Result<Option<String>> {
        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(CONSOLE_PASSWORD)
            .fetch_optional(&self.pool)
            .await
            .ctx("cannot read the console password")?;
        v.map(|b| String::from_utf8(b).map_err(|_| Error::corrupt("console password", "<binary>")))
            .transpose()
    }
    async fn set_console_password_hash(&self, phc: &str) -> Result<()> {
        if !phc.starts_with("$argon2") {
            return Err(Error::invalid(
                "the console password must be stored as an argon2 hash",
            ));
        }
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(CONSOLE_PASSWORD)
        .bind(phc.as_bytes())
        .execute(&mut *tx)
        .await
        .ctx("cannot store the console password")?;
        tx.commit().await.ctx("cannot store the console password")?;
        Ok(())
    }
    async fn schema(&self) -> Result<crate::SchemaInfo> {
        Ok(self.schema)
    }
    async fn put_console_session(&self, session: &ConsoleSession) -> Result<()> {
        let what = "cannot store the console session";
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(us(Timestamp::now()))
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        sqlx::query(
            "INSERT INTO console_sessions (token_sha256, csrf, via, expires_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (token_sha256) DO UPDATE SET csrf = excluded.csrf, \
             via = excluded.via, expires_at = excluded.expires_at",
        )
        .bind(&session.token_sha256)
        .bind(&session.csrf)
        .bind(&session.via)
        .bind(us(session.expires_at))
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(())
    }
    async fn console_session(
        &self,
        token_sha256: &[u8],
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let what = "cannot read the console session";
        let row = sqlx::query(
            "SELECT csrf, via, expires_at FROM console_sessions \
             WHERE token_sha256 = ? AND expires_at > ?",
        )
        .bind(token_sha256)
        .bind(us(now))
        .fetch_optional(&self.pool)
        .await
        .ctx(what)?;
        row.map(|r| {
            use sqlx::Row as _;
            Ok(ConsoleSession {
                token_sha256: token_sha256.to_vec(),
                csrf: r.try_get("csrf").ctx(what)?,
                via: r.try_get("via").ctx(what)?,
                expires_at: ts(r.try_get("expires_at").ctx(what)?)?,
            })
        })
        .transpose()
    }
    async fn remove_console_session(&self, token_sha256: &[u8]) -> Result<()> {
        let what = "cannot end the console session";
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = ?")
            .bind(token_sha256)
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        tx.commit().await.ctx(what)?;
        Ok(())
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        routed!(self.list_api_keys_impl())
    }
    async fn revoke_api_key(&self, name: &str) -> Result<bool> {
        routed!(self.revoke_api_key_impl(name))
    }
    async fn add_feed(&self, feed: &NewFeed) -> Result<i64> {
        routed!(self.add_feed_impl(feed))
    }
    async fn feed_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<Feed>> {
        routed!(self.feed_by_token_hash_impl(token_hash))
    }
    async fn list_feeds(&self) -> Result<Vec<Feed>> {
        routed!(self.list_feeds_impl())
    }
    async fn revoke_feed(&self, id: i64) -> Result<bool> {
        routed!(self.revoke_feed_impl(id))
    }

    async fn save_account(&self, a: &crate::NewAccount) -> Result<crate::AccountId> {
        routed!(self.save_account_impl(a))
    }
    async fn list_accounts(&self) -> Result<Vec<crate::Account>> {
        routed!(self.list_accounts_impl())
    }
    async fn account(&self, id: crate::AccountId) -> Result<Option<crate::Account>> {
        routed!(self.account_impl(id))
    }
    async fn store_refresh_token(
        &self,
        id: crate::AccountId,
        refresh_token: &SecretString,
        refreshed_at: Timestamp,
    ) -> Result<bool> {
        routed!(self.store_refresh_token_impl(id, refresh_token, refreshed_at))
    }
    async fn set_account_state(
        &self,
        id: crate::AccountId,
        state: crate::AccountState,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        routed!(self.set_account_state_impl(id, state, message, at))
    }
    async fn remove_accounts(&self, address: &str, connection: Option<&str>) -> Result<u64> {
        routed!(self.remove_accounts_impl(address, connection))
    }
}
