//! calgate's persistent state: connections and their (encrypted) credentials, linked mailboxes,
//! event instances and series masters, delta cursors, shadow sets of full resyncs, and sync
//! status.
//!
//! Callers hold an `Arc<dyn Store>` obtained from [`open`], which picks the backend by the
//! location's scheme: `sqlite://FILE` or a data directory (SQLite file `calgate.db` inside it)
//! today; `postgres://…` later, behind the same trait, the same domain types and the same
//! behavioural test suite (`tests/suite`).
//!
//! Architecture invariants:
//! - **Only this crate knows SQL.** The trait speaks calgate-core's and this crate's domain
//!   types; no sqlx type crosses it. Each backend owns its migrations (`migrations/<backend>`).
//! - **Every write is one transaction.** A [`ChangeSet`] (upserts, removals, cursor) lands whole
//!   or not at all; a failure leaves the store exactly as it was.
//! - **Nothing is deleted without positive evidence:** an explicit removal in a [`ChangeSet`], an
//!   explicit unlink / remove, or a committed shadow (full resync), which replaces the live set
//!   in one transaction so that no reader ever sees an instance vanish and come back.
//! - **Secrets are sealed at rest** (AES-256-GCM, random nonce per value, see [`MasterKey`]); a
//!   wrong key is an error at [`open`], never garbage; decrypted secrets come back as
//!   [`SecretString`], whose `Debug` prints `<redacted>`.
//! - Instants are stored as UTC microseconds; reads return [`jiff::Timestamp`]s.
#![forbid(unsafe_code)]

mod accounts;
mod crypto;
mod error;
mod sqlite;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

pub use accounts::{Account, AccountEndpoint, AccountId, AccountState, NewAccount};
pub use crypto::{MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};
pub use error::{Error, ErrorKind, Result};
pub use sqlite::SqliteStore;
pub use types::*;

/// The SQLite file's name inside a data directory.
pub const SQLITE_FILE: &str = "calgate.db";

/// calgate's storage. Object-safe: hold it as `Arc<dyn Store>`.
///
/// Addresses are matched case-insensitively everywhere. Every method that writes does so in
/// one transaction.
#[async_trait]
pub trait Store: Send + Sync {
    // ---- connections -------------------------------------------------------------------

    /// Adds a connection and its credentials. A taken name → [`ErrorKind::Conflict`].
    async fn add_connection(&self, c: &NewConnection) -> Result<ConnectionId>;
    /// All connections by name, credentials decrypted (newest first).
    async fn list_connections(&self) -> Result<Vec<Connection>>;
    async fn connection(&self, name: &str) -> Result<Option<Connection>>;
    /// Removes a connection and its credentials; `false` if there was none. A connection that
    /// still has linked mailboxes → [`ErrorKind::Conflict`] (unlink them first).
    async fn remove_connection(&self, name: &str) -> Result<bool>;
    /// Adds a credential to a connection (rotation); unknown connection → NotFound.
    async fn add_credential(&self, connection: &str, c: &NewCredential) -> Result<CredentialId>;
    /// Removes one credential of a connection; `false` if it had no such credential.
    async fn remove_credential(&self, connection: &str, id: CredentialId) -> Result<bool>;
    /// Records a credential's expiry (given by the admin or learned from Entra ID).
    async fn set_credential_expiry(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool>;

    // ---- mailboxes ---------------------------------------------------------------------

    /// Links a mailbox (idempotent): a new address is inserted; an address already linked to
    /// the same connection keeps its id and data and gets the given kind, external id and
    /// privacy; an address linked to another connection → [`ErrorKind::Conflict`]. Unknown
    /// connection → NotFound.
    async fn link_mailbox(&self, m: &NewMailbox) -> Result<MailboxId>;
    /// Unlinks a mailbox and deletes everything stored for it; `false` if it was not linked.
    async fn unlink_mailbox(&self, address: &str) -> Result<bool>;
    /// All linked mailboxes, by address.
    async fn list_mailboxes(&self) -> Result<Vec<Mailbox>>;
    async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>>;

    // ---- instances and sync state --------------------------------------------------------

    /// Applies upserts, removals and the new cursor in one transaction. Unknown mailbox →
    /// NotFound; invalid data (end before start, bad window) → InvalidData, nothing changed.
    async fn apply_changes(&self, mailbox: MailboxId, changes: &ChangeSet) -> Result<()>;
    /// Starts (or restarts, discarding the previous one) a full resync into an empty shadow set.
    async fn begin_shadow(&self, mailbox: MailboxId, window: Window) -> Result<()>;
    /// Applies changes to the shadow set (readers keep seeing the live set). No shadow →
    /// NotFound. `changes.cursor`, if any, is recorded as the resync's progress.
    async fn apply_shadow(&self, mailbox: MailboxId, changes: &ChangeSet) -> Result<()>;
    /// Atomically replaces the live instances and series masters by the shadow set and stores
    /// `cursor`. Instance ids present before keep calgate's [`StoredInstance::id`].
    async fn commit_shadow(&self, mailbox: MailboxId, cursor: &Cursor) -> Result<()>;
    /// Discards the shadow set; the live set is untouched. `false` if there was none.
    async fn abort_shadow(&self, mailbox: MailboxId) -> Result<bool>;
    /// The resync in progress, if any.
    async fn shadow(&self, mailbox: MailboxId) -> Result<Option<ShadowState>>;
    /// Live instances overlapping `[from, to)` (a zero-length instance at `from` counts),
    /// ordered by start, then exchange id.
    async fn instances(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>>;
    /// One live instance by Exchange id.
    async fn instance(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>>;
    /// How many live instances the mailbox has.
    async fn count_instances(&self, mailbox: MailboxId) -> Result<u64>;
    /// Live series masters of the mailbox, by Exchange id.
    async fn series_masters(&self, mailbox: MailboxId) -> Result<Vec<SeriesMaster>>;
    async fn cursor(&self, mailbox: MailboxId) -> Result<Option<Cursor>>;
    /// Forgets the cursor (the next round starts over); `false` if there was none.
    async fn clear_cursor(&self, mailbox: MailboxId) -> Result<bool>;
    /// Records one sync attempt: times, outcome (a success clears the last error), next action,
    /// lag; `counters` are added to the running totals.
    async fn record_status(&self, mailbox: MailboxId, s: &SyncStatusUpdate) -> Result<()>;
    /// Every linked mailbox's status, by address.
    async fn statuses(&self) -> Result<Vec<MailboxStatus>>;
    async fn status(&self, mailbox: MailboxId) -> Result<Option<MailboxStatus>>;

    // ---- connected accounts (delegated "Connect account") --------------------------------

    /// Stores a signed-in account: its refresh token sealed, its state `ok`. The same UPN on
    /// the same connection is replaced (a reconnect keeps the account's id). Unknown connection
    /// → NotFound; an empty refresh token → InvalidData.
    async fn save_account(&self, a: &NewAccount) -> Result<AccountId>;
    /// All connected accounts, by connection name, then UPN; refresh tokens decrypted.
    async fn list_accounts(&self) -> Result<Vec<Account>>;
    async fn account(&self, id: AccountId) -> Result<Option<Account>>;
    /// Replaces the account's refresh token (Entra ID sends a new one with every refresh),
    /// records the refresh time and sets the state back to `ok`. `false`: no such account.
    async fn store_refresh_token(
        &self,
        id: AccountId,
        refresh_token: &SecretString,
        refreshed_at: Timestamp,
    ) -> Result<bool>;
    /// Records the account's state and why (e.g. reconnect needed: the cause and the fix).
    async fn set_account_state(
        &self,
        id: AccountId,
        state: AccountState,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<bool>;
    /// Forgets the accounts whose UPN or mail is `address` (on `connection` only, if given):
    /// their tokens are deleted; mailboxes stay linked. Returns how many were removed.
    async fn remove_accounts(&self, address: &str, connection: Option<&str>) -> Result<u64>;
}

/// Options for [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The master key; `None`: `CALGATE_MASTER_KEY`, else `master.key` beside the database
    /// (created on first use).
    pub master_key: Option<MasterKey>,
    /// Pool size (SQLite default 8).
    pub max_connections: Option<u32>,
    /// Ignore `CALGATE_MASTER_KEY` and use the key file beside the database (tests of the
    /// key-file behaviour run the same whatever the environment holds).
    pub key_file_only: bool,
}

/// Where a location points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file; the key file lives in `key_dir`.
    Sqlite { file: PathBuf, key_dir: PathBuf },
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Location {
    /// `sqlite://FILE` / `sqlite:FILE`, `postgres://…` / `postgresql://…`, or else a data
    /// directory. Other `scheme://` → InvalidData.
    pub fn parse(location: &str) -> Result<Location> {
        let location = location.trim();
        if location.is_empty() {
            return Err(Error::invalid(
                "the database location is empty: give a data directory, sqlite://FILE or postgres://URL",
            ));
        }
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(Location::Postgres(location.to_owned()));
        }
        if let Some(rest) = location.strip_prefix("sqlite:") {
            let file = rest.strip_prefix("//").unwrap_or(rest);
            let file = file.split('?').next().unwrap_or(file);
            if file.is_empty() || file == ":memory:" {
                return Err(Error::invalid(
                    "an in-memory SQLite database cannot hold calgate's state: give sqlite://FILE or a data directory",
                ));
            }
            let file = PathBuf::from(file);
            let key_dir = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            return Ok(Location::Sqlite { file, key_dir });
        }
        if let Some((scheme, _)) = location.split_once("://") {
            return Err(Error::invalid(format!(
                "unknown database URL scheme '{scheme}': use a data directory, sqlite://FILE or postgres://URL"
            )));
        }
        let dir = Path::new(location);
        Ok(Location::Sqlite {
            file: dir.join(SQLITE_FILE),
            key_dir: dir.to_path_buf(),
        })
    }
}

/// Opens (creating and migrating when needed) the store at `location`: a data directory,
/// `sqlite://FILE`, or `postgres://URL` (not implemented yet). The master key comes from
/// `CALGATE_MASTER_KEY`, else from `master.key` in the data directory (created with mode 0600).
pub async fn open(location: &str) -> Result<Arc<dyn Store>> {
    open_with(location, OpenOptions::default()).await
}

/// [`open`] with explicit options.
pub async fn open_with(location: &str, options: OpenOptions) -> Result<Arc<dyn Store>> {
    match Location::parse(location)? {
        Location::Sqlite { file, key_dir } => {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent)?;
            }
            let key = match options.master_key {
                Some(k) => k,
                None if options.key_file_only => {
                    MasterKey::resolve(None, Some(&key_dir.join(MASTER_KEY_FILE)))?
                }
                None => MasterKey::from_env_or_file(Some(&key_dir.join(MASTER_KEY_FILE)))?,
            };
            let store = SqliteStore::open(&file, key, options.max_connections).await?;
            Ok(Arc::new(store))
        }
        Location::Postgres(_) => Err(Error::new(
            ErrorKind::Unsupported,
            "PostgreSQL storage is not implemented yet: use a data directory or sqlite://FILE",
        )),
    }
}

/// Creates a missing data directory readable by its owner only (event details live there).
/// An existing directory is left as it is.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::io(
            format!("cannot create the data directory {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_by_scheme() {
        assert_eq!(
            Location::parse("sqlite:///var/lib/calgate/x.db").expect("sqlite"),
            Location::Sqlite {
                file: "/var/lib/calgate/x.db".into(),
                key_dir: "/var/lib/calgate".into()
            }
        );
        assert_eq!(
            Location::parse("sqlite://x.db?mode=rwc").expect("relative"),
            Location::Sqlite {
                file: "x.db".into(),
                key_dir: ".".into()
            }
        );
        assert_eq!(
            Location::parse("./calgate-data").expect("dir"),
            Location::Sqlite {
                file: "./calgate-data/calgate.db".into(),
                key_dir: "./calgate-data".into()
            }
        );
        assert!(matches!(
            Location::parse("postgres://u@localhost/db"),
            Ok(Location::Postgres(_))
        ));
        assert_eq!(
            Location::parse("mysql://x").expect_err("mysql").kind(),
            ErrorKind::InvalidData
        );
        assert!(Location::parse("sqlite::memory:").is_err());
        assert!(Location::parse("  ").is_err());
    }

    #[tokio::test]
    async fn postgres_is_a_clear_not_implemented_error() {
        let e = open("postgres://localhost/calgate")
            .await
            .err()
            .expect("not implemented");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("not implemented yet"), "{e}");
    }

    #[test]
    fn secrets_redact_in_debug_and_display() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        let c = NewCredential::secret("hunter2", None);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
