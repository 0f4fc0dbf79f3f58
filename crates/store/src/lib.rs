//! calgate's persistent state: connections and their (encrypted) credentials, linked mailboxes,
//! event instances and series masters, delta cursors, shadow sets of full resyncs, and sync
//! status.
//!
//! Callers hold an `Arc<dyn Store>` obtained from [`open`], which picks the backend by the
//! location's scheme: `sqlite://FILE` or a data directory (SQLite file `calgate.db` inside it),
//! or `postgres://…` (one database shared by several processes), behind the same trait, the
//! same domain types and the same behavioural test suite (`tests/suite`).
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
mod codec;
mod copy;
mod crypto;
mod error;
mod postgres;
mod routing;
mod sqlite;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

pub use accounts::{Account, AccountEndpoint, AccountId, AccountState, NewAccount};
pub use copy::{CopyReport, copy_store};
pub use crypto::{MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKey};
pub use error::{Error, ErrorKind, Result};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use types::*;
pub use uuid::Uuid;

/// A file holding the master key (base64) for a PostgreSQL store, when `CALGATE_MASTER_KEY` is
/// not set (a PostgreSQL store has no data directory to keep `master.key` in).
pub const MASTER_KEY_FILE_ENV: &str = "CALGATE_MASTER_KEY_FILE";

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
    /// Replaces the extra root CA certificates (PEM) a connection trusts; `false`: no such
    /// connection.
    async fn set_connection_ca(&self, connection: &str, ca_cert_pem: Option<&str>) -> Result<bool>;
    /// Replaces the password of an EWS connection's service account (sealed at rest); `false`:
    /// no such connection; a Graph connection → [`ErrorKind::Invalid`].
    async fn set_ews_password(&self, connection: &str, password: &SecretString) -> Result<bool>;
    /// Records a credential's expiry (given by the admin or learned from Entra ID).
    async fn set_credential_expiry(
        &self,
        id: CredentialId,
        expires_at: Option<Timestamp>,
    ) -> Result<bool>;

    // ---- mailboxes ---------------------------------------------------------------------

    /// Links a mailbox (idempotent): a new address is inserted with the given settings (the
    /// defaults for those not given); an address already linked to the same connection keeps
    /// its id, its data and every setting not given. A narrower privacy policy removes the
    /// details it hides at once; a wider one asks for a full resync (see
    /// [`Mailbox::pending_resync`]). An address linked to another connection →
    /// [`ErrorKind::Conflict`]; unknown connection → NotFound; an address that is not one →
    /// InvalidData.
    async fn link_mailbox(&self, m: &NewMailbox) -> Result<MailboxId>;
    /// Unlinks a mailbox and deletes everything stored for it; `false` if it was not linked.
    async fn unlink_mailbox(&self, address: &str) -> Result<bool>;
    /// All linked mailboxes, by address.
    async fn list_mailboxes(&self) -> Result<Vec<Mailbox>>;
    /// The linked mailboxes among `addresses` (case-insensitive; unknown ones left out), each
    /// with its last successful sync, in one read.
    async fn mailboxes_named(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(Mailbox, Option<Timestamp>)>>;
    async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>>;

    // ---- sync leases ---------------------------------------------------------------------

    /// Takes the mailbox's sync lease for `ttl`, unless another holder's lease is live (its
    /// deadline not passed, and its process not known to be gone): then [`LeaseGrant::Held`]
    /// says who holds it. One round of a mailbox runs at a time, across processes. Each grant
    /// gets a larger fencing token. Unknown mailbox → NotFound.
    async fn acquire_lease(
        &self,
        mailbox: MailboxId,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<LeaseGrant>;
    /// Extends the lease by its ttl from now. Taken over → [`ErrorKind::LeaseLost`].
    async fn renew_lease(&self, lease: &Lease) -> Result<()>;
    /// Gives the lease up; `false` if it was no longer this holder's.
    async fn release_lease(&self, lease: &Lease) -> Result<bool>;
    /// The live leases held by others or by this process, by address.
    async fn leases(&self) -> Result<Vec<LeaseInfo>>;

    // ---- role leases: work one process does for all that share the store -----------------

    /// Takes or extends the lease of `role` (e.g. `webhooks`, `subscriptions`) for `ttl`:
    /// `true` when `holder` holds it afterwards — its own lease extended, or a free one, a
    /// lapsed one or a gone process's one taken. One holder at a time across every process
    /// sharing the store; a holder that stops renewing loses it at the deadline.
    async fn hold_role(
        &self,
        role: &str,
        holder: &LeaseHolder,
        ttl: SignedDuration,
    ) -> Result<bool>;
    /// Gives the role up if `holder` has it (at shutdown: another process takes over at once).
    async fn release_role(&self, role: &str, holder: &LeaseHolder) -> Result<bool>;
    /// Who holds each role now (live leases only), by role.
    async fn roles(&self) -> Result<Vec<(String, LeaseHolder, Timestamp)>>;

    // ---- instances and sync state (writes fenced by the round's lease) ---------------------

    /// Applies upserts, removals and the new cursor in one transaction, if `lease` is still
    /// the mailbox's current one (else [`ErrorKind::LeaseLost`], nothing written). Details the
    /// mailbox's privacy policy hides are not stored. Unknown mailbox → NotFound; invalid data
    /// (end before start, bad window) → InvalidData, nothing changed.
    async fn apply_changes(&self, lease: &Lease, changes: &ChangeSet) -> Result<()>;
    /// Starts a full resync into an empty shadow set owned by `lease`'s round (a shadow set
    /// left by a dead round is discarded).
    async fn begin_shadow(&self, lease: &Lease, window: Window) -> Result<()>;
    /// Applies changes to the round's shadow set (readers keep seeing the live set). No shadow
    /// → NotFound; another round's → LeaseLost. `changes.cursor`, if any, is recorded as the
    /// resync's progress.
    async fn apply_shadow(&self, lease: &Lease, changes: &ChangeSet) -> Result<()>;
    /// [`Store::apply_changes`], given the changes to keep: a backend that writes on a thread
    /// of its own takes them there as they are, instead of copying every instance.
    async fn apply_changes_owned(&self, lease: &Lease, changes: ChangeSet) -> Result<()> {
        self.apply_changes(lease, &changes).await
    }
    /// [`Store::apply_shadow`], given the changes to keep (see
    /// [`Store::apply_changes_owned`]).
    async fn apply_shadow_owned(&self, lease: &Lease, changes: ChangeSet) -> Result<()> {
        self.apply_shadow(lease, &changes).await
    }
    /// Atomically replaces the live instances and series masters by the round's shadow set and
    /// stores `cursor`; a pending resync requested before the resync began is cleared.
    /// Instance ids present before keep calgate's [`StoredInstance::id`].
    async fn commit_shadow(&self, lease: &Lease, cursor: &Cursor) -> Result<()>;
    /// Discards the shadow set; the live set is untouched. `false` if there was none.
    async fn abort_shadow(&self, lease: &Lease) -> Result<bool>;
    /// The resync in progress, if any.
    async fn shadow(&self, mailbox: MailboxId) -> Result<Option<ShadowState>>;
    /// What committing the round's shadow set would do (for the bulk-delete guard).
    async fn shadow_diff(&self, lease: &Lease) -> Result<ShadowDiff>;
    /// Live instances overlapping `[from, to)` (a zero-length instance at `from` counts),
    /// ordered by start, then exchange id.
    async fn instances(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>>;
    /// One page of [`Store::instances`]: at most `limit` instances after `after` (exclusive),
    /// in the same order; `next` says where the following page starts.
    async fn instances_page(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        after: Option<&InstanceCursor>,
        limit: u32,
    ) -> Result<InstancePage>;
    /// The spans of the live instances of `mailboxes` that overlap `[from, to)` and show as
    /// one of `busy`, in one read: one entry per mailbox that has any (in no order; spans
    /// unsorted and unclipped).
    async fn busy_times(
        &self,
        mailboxes: &[MailboxId],
        from: Timestamp,
        to: Timestamp,
        busy: &[calgate_core::ShowAs],
    ) -> Result<Vec<BusyTimes>>;
    /// One live instance by Exchange id.
    async fn instance(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>>;
    /// How many of `exchange_ids` are live instances of the mailbox.
    async fn count_live(&self, mailbox: MailboxId, exchange_ids: &[String]) -> Result<u64>;
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
    /// Records a round's status (unless `None`: the round lost its lease) and releases its
    /// lease, in one transaction where the store can; `false` if the lease was no longer this
    /// holder's. If it fails, the caller still releases the lease on its own.
    async fn finish_round(
        &self,
        mailbox: MailboxId,
        s: Option<&SyncStatusUpdate>,
        lease: &Lease,
    ) -> Result<bool> {
        if let Some(s) = s {
            self.record_status(mailbox, s).await?;
        }
        self.release_lease(lease).await
    }
    /// Every linked mailbox's status, by address.
    async fn statuses(&self) -> Result<Vec<MailboxStatus>>;
    /// Every linked mailbox's sync state (settings, cursor, live count, status), by address,
    /// read in one query.
    async fn sync_states(&self) -> Result<Vec<MailboxSyncState>>;
    /// One mailbox's sync state (by address, case-insensitive), in one query; `None`: not
    /// linked.
    async fn sync_state(&self, address: &str) -> Result<Option<MailboxSyncState>>;
    /// The change log after `after` (exclusive), oldest first, at most `limit` rows.
    async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The mailboxes with change-log rows after `after` (exclusive), each with the newest
    /// row's position: what changed since a reader last looked (empty: nothing did).
    async fn mailboxes_changed_after(&self, after: u64) -> Result<Vec<(MailboxId, u64)>>;
    /// The change-log rows of `mailbox` whose instance overlapped `[from, to)`, newest first,
    /// at most `limit` (the console's "why isn't this event here?").
    async fn changes_of(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>>;
    /// The change-log rows of one event of `mailbox` (by Exchange's id), newest first: when
    /// calgate first stored it, each change, its removal (the per-event history the console
    /// shows, kept as long as the change log is).
    async fn changes_of_event(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>>;
    /// The position of the newest change-log row (0: none yet).
    async fn change_log_end(&self) -> Result<u64>;
    /// The position just before the oldest change-log row kept: a reader at an older position
    /// has missed rows that were pruned.
    async fn change_log_floor(&self) -> Result<u64>;
    /// Removes change-log rows written before `before`, keeping those that a webhook has not
    /// fanned out yet; returns how many went.
    async fn prune_change_log(&self, before: Timestamp) -> Result<u64>;
    /// Appends a notice (an event about no single instance) to the change log; its position.
    async fn record_notice(&self, notice: &NewNotice) -> Result<u64>;
    /// Appends a notice unless one was recorded under `key` before (e.g.
    /// `credential:ID:expiring:14`); its position, `None` when it was already recorded.
    async fn record_notice_once(&self, key: &str, notice: &NewNotice) -> Result<Option<u64>>;

    // ---- change notifications (Graph subscriptions per mailbox) ----------------------------

    /// Every mailbox's subscription record, by address.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>>;
    /// The record of Graph subscription `id`.
    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>>;
    /// Creates or replaces a mailbox's record (`address` is ignored). An unknown mailbox →
    /// `NotFound`.
    async fn save_subscription(&self, record: &SubscriptionRecord) -> Result<()>;
    /// Forgets a mailbox's record; `false`: there was none.
    async fn remove_subscription(&self, mailbox: MailboxId) -> Result<bool>;

    // ---- webhooks (the host application's endpoints and their delivery queue) ----------

    /// Adds an endpoint; returns it with its signing secret (`whsec_…`), which is shown once
    /// and stored sealed. It receives what the change log gets from now on.
    async fn add_webhook(&self, url: &str, events: Option<&[String]>) -> Result<(Webhook, String)>;
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>>;
    /// Removes an endpoint and its queue; `false`: unknown.
    async fn remove_webhook(&self, id: &str) -> Result<bool>;
    /// A new signing secret; the current one keeps signing beside it for `overlap`. `None`:
    /// unknown endpoint.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        overlap: SignedDuration,
    ) -> Result<Option<String>>;
    /// The secrets that sign an endpoint's deliveries now: the current one, then the previous
    /// one while its overlap lasts.
    async fn webhook_secrets(&self, id: &str) -> Result<Vec<SecretString>>;
    /// Queues deliveries for an endpoint and moves its position to `through`, in one
    /// transaction; `false` (nothing written) when the position already passed `from`, i.e.
    /// another fan-out got there first.
    async fn enqueue_deliveries(
        &self,
        webhook: &str,
        from: u64,
        through: u64,
        deliveries: &[NewDelivery],
    ) -> Result<bool>;
    /// Pending deliveries due at `now`, each the oldest pending one of its endpoint and
    /// partition (so that a partition goes out in order), oldest first.
    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<Delivery>>;
    /// When the next pending delivery is due (`None`: none is pending).
    async fn next_delivery_at(&self) -> Result<Option<Timestamp>>;
    /// Records an attempt's outcome.
    async fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<()>;
    /// An endpoint's deliveries, newest first, optionally in one state.
    async fn deliveries(
        &self,
        webhook: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    /// Puts dead deliveries of an endpoint (all, or those listed) back in the queue, due now;
    /// how many.
    async fn replay_deliveries(&self, webhook: &str, ids: Option<&[i64]>) -> Result<u64>;
    /// Removes delivered deliveries finished before `before`; how many.
    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64>;
    async fn status(&self, mailbox: MailboxId) -> Result<Option<MailboxStatus>>;
    // ---- push (bookings, targets, outbox) ----

    /// Stores the host application's booking and queues the writes it needs in the same
    /// transaction. `false`: the spec equals the stored one (nothing queued).
    async fn put_booking(&self, external_id: &str, spec: &BookingSpec) -> Result<(Booking, bool)>;
    async fn booking(&self, external_id: &str) -> Result<Option<Booking>>;
    /// Queues a booking's failed targets again; how many (`None`: no such booking).
    async fn retry_booking(&self, external_id: &str) -> Result<Option<u64>>;
    /// Marks the booking deleted and queues the removal of its events. `false`: unknown.
    async fn delete_booking(&self, external_id: &str) -> Result<bool>;
    /// Bookings by external id after `after`, optionally in one state.
    async fn list_bookings(
        &self,
        state: Option<BookingState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Booking>>;
    /// Outbox entries due at `now`, oldest first.
    async fn due_pushes(&self, now: Timestamp, limit: u32) -> Result<Vec<PushTask>>;
    /// Claims a due entry for `hold` before calling Exchange (counts the attempt); `false`:
    /// another worker has it, or it is no longer due.
    async fn claim_push(&self, entry: i64, now: Timestamp, hold: SignedDuration) -> Result<bool>;
    /// Records how an attempt ended.
    async fn finish_push(&self, task: &PushTask, outcome: &PushOutcome) -> Result<()>;
    /// Entries in the outbox.
    async fn pending_pushes(&self) -> Result<u64>;
    /// Applies what pulls saw of calgate's events: edited in Exchange → queued again
    /// (app-wins); gone from a synced mailbox → `deleted_in_exchange`. (re-queued, gone).
    async fn reconcile_pushed(&self) -> Result<(u64, u64)>;
    /// Sets what calgate does when someone edits its events in Outlook, for the mailboxes of
    /// `connection`. `false`: no such connection.
    async fn set_outlook_edits(
        &self,
        connection: &str,
        policy: calgate_core::booking::OutlookEdits,
    ) -> Result<bool>;
    async fn outlook_edits(
        &self,
        connection: &str,
    ) -> Result<Option<calgate_core::booking::OutlookEdits>>;
    /// Meeting mode: records each calendar's answer (address, response) as the organizer's
    /// event shows it.
    async fn record_responses(
        &self,
        external_id: &str,
        responses: &[(String, String)],
    ) -> Result<()>;
    /// Records that Exchange holds `exchange_id` for a booking's target (found there by
    /// calgate's marker): the mapping rebuilt from Exchange. `false`: nothing to change.
    async fn adopt_pushed(
        &self,
        external_id: &str,
        address: &str,
        exchange_id: &str,
        ical_uid: Option<&str>,
        web_link: Option<&str>,
        change_key: Option<&str>,
    ) -> Result<bool>;

    /// Closes the store: waits for work in flight, then releases the database (SQLite:
    /// checkpoints the WAL into the file). Later calls fail.
    async fn close(&self);
    /// Checks the database's own structure (SQLite: `PRAGMA integrity_check`): the problems
    /// found, empty when it is sound.
    async fn check_integrity(&self) -> Result<Vec<String>>;

    // ---- the host application's access: API keys and ICS feeds ---------------------------

    /// Stores an API key (its salted hash). A taken name → Conflict.
    async fn add_api_key(&self, key: &NewApiKey) -> Result<()>;
    /// The key with this public id (revoked ones too: `revoked_at` says so).
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>>;
    /// Every key, by name.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// The schema the database has, and whether this process migrated it (`calgate migrate`).
    async fn schema(&self) -> Result<SchemaInfo>;
    /// The admin console's password, as a PHC string (argon2id; never the password), if set.
    async fn console_password_hash(&self) -> Result<Option<String>>;
    /// Sets (replaces) the admin console's password hash (a PHC string).
    async fn set_console_password_hash(&self, phc: &str) -> Result<()>;
    /// Keeps an admin-console session (by the SHA-256 of its token); deletes expired ones.
    async fn put_console_session(&self, session: &ConsoleSession) -> Result<()>;
    /// The session whose token has this SHA-256, unless it expired by `now`.
    async fn console_session(
        &self,
        token_sha256: &[u8],
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>>;
    /// Ends a session (sign-out); nothing if there is none.
    async fn remove_console_session(&self, token_sha256: &[u8]) -> Result<()>;
    /// Revokes the key named `name`; `false` if there is none not revoked yet.
    async fn revoke_api_key(&self, name: &str) -> Result<bool>;
    /// Stores an ICS feed of a linked mailbox; unknown mailbox → NotFound.
    async fn add_feed(&self, feed: &NewFeed) -> Result<i64>;
    /// The feed whose token has this hash (revoked ones too).
    async fn feed_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<Feed>>;
    /// Every feed, by mailbox, then id.
    async fn list_feeds(&self) -> Result<Vec<Feed>>;
    /// Revokes a feed; `false` if there is none not revoked yet.
    async fn revoke_feed(&self, id: i64) -> Result<bool>;

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
    /// Create the store when there is none (setting up: `connection add`, `demo`). Without it
    /// a missing data directory or database is [`ErrorKind::Missing`], never an empty store.
    pub create: bool,
    /// The master key; `None`: `CALGATE_MASTER_KEY`, else `master.key` beside the database
    /// (created with a new store only: a store that holds sealed data never gets a new key).
    pub master_key: Option<MasterKey>,
    /// Pool size (SQLite default 8).
    pub max_connections: Option<u32>,
    /// Ignore `CALGATE_MASTER_KEY` and use the key file beside the database (tests of the
    /// key-file behaviour run the same whatever the environment holds).
    pub key_file_only: bool,
    /// SQLite: a cap on the database's size in pages (see [`SqliteOptions::max_page_count`]).
    pub max_page_count: Option<u64>,
    /// Refuse to migrate: an existing database whose schema is older than this calgate's is
    /// [`ErrorKind::Schema`] naming `calgate migrate` (a new one is still created).
    pub no_migrate: bool,
}

/// The store's schema as this process found and left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaInfo {
    /// The schema the database has now (this calgate's newest).
    pub version: i64,
    /// The schema it had before this process migrated it (`None`: it was up to date, or new).
    pub migrated_from: Option<i64>,
}

/// Where a location points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file; the key file lives in `key_dir`; `data_dir` when the location
    /// was a data directory rather than `sqlite://FILE`.
    Sqlite {
        file: PathBuf,
        key_dir: PathBuf,
        data_dir: bool,
    },
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
            return Ok(Location::Sqlite {
                file,
                key_dir,
                data_dir: false,
            });
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
            data_dir: true,
        })
    }
}

/// `location` as it may be shown or logged: a URL's password (in its user part or a
/// `password=` parameter) becomes `***`.
pub fn redacted_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| *c == '/' || *c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Opens the existing store at `location`: a data directory, `sqlite://FILE`, or
/// `postgres://URL`. A missing one is [`ErrorKind::Missing`]. The master
/// key comes from `CALGATE_MASTER_KEY`, else from `master.key` in the data directory.
pub async fn open(location: &str) -> Result<Arc<dyn Store>> {
    open_with(location, OpenOptions::default()).await
}

/// Opens the store at `location`, creating (and migrating) it when there is none — for the
/// commands that set calgate up. A new data directory and its files are private (0700/0600).
pub async fn open_or_create(location: &str) -> Result<Arc<dyn Store>> {
    open_with(
        location,
        OpenOptions {
            create: true,
            ..OpenOptions::default()
        },
    )
    .await
}

/// [`open`] with explicit options.
pub async fn open_with(location: &str, options: OpenOptions) -> Result<Arc<dyn Store>> {
    match Location::parse(location)? {
        Location::Sqlite {
            file,
            key_dir,
            data_dir,
        } => {
            let parent = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf);
            if options.create {
                if let Some(parent) = &parent {
                    create_private_dir(parent)?;
                }
            } else if let Some(missing) = missing_store(&file, parent.as_deref(), data_dir) {
                return Err(Error::new(ErrorKind::Missing, missing));
            }
            let key_file = key_dir.join(MASTER_KEY_FILE);
            let given = options.master_key;
            let key_file_only = options.key_file_only;
            let key = move |initialized: bool| match given {
                Some(k) => Ok(k),
                None => {
                    let env = if key_file_only {
                        None
                    } else {
                        MasterKey::env_value()?
                    };
                    match env {
                        Some(text) => MasterKey::from_base64(&text, MASTER_KEY_ENV),
                        None if initialized => MasterKey::load_existing(&key_file),
                        None => MasterKey::load_or_create(&key_file),
                    }
                }
            };
            let sqlite = SqliteOptions {
                create: options.create,
                max_connections: options.max_connections,
                max_page_count: options.max_page_count,
                no_migrate: options.no_migrate,
            };
            let store = SqliteStore::open(&file, key, &sqlite).await?;
            Ok(Arc::new(store))
        }
        Location::Postgres(url) => {
            let given = options.master_key;
            let key = move |initialized: bool| match given {
                Some(k) => Ok(k),
                None => postgres_key(initialized),
            };
            let pg = PgOptions {
                create: options.create,
                max_connections: options.max_connections,
                no_migrate: options.no_migrate,
            };
            let store = PgStore::open(&url, key, &pg).await?;
            Ok(Arc::new(store))
        }
    }
}

/// A PostgreSQL store's master key: `CALGATE_MASTER_KEY`, else the file named by
/// `CALGATE_MASTER_KEY_FILE` (created with a new store only).
fn postgres_key(initialized: bool) -> Result<MasterKey> {
    if let Some(text) = MasterKey::env_value()? {
        return MasterKey::from_base64(&text, MASTER_KEY_ENV);
    }
    match std::env::var_os(MASTER_KEY_FILE_ENV) {
        Some(path) if initialized => MasterKey::load_existing(Path::new(&path)),
        Some(path) => MasterKey::load_or_create(Path::new(&path)),
        None => Err(Error::new(
            ErrorKind::MasterKey,
            format!(
                "a PostgreSQL store needs its master key in {MASTER_KEY_ENV} (base64 of 32 bytes) or in a file named by {MASTER_KEY_FILE_ENV}: every calgate process sharing the database needs the same key, and the key must not live in the database"
            ),
        )),
    }
}

/// Why there is no store at the location, in words with the fix; `None` when there is one.
fn missing_store(file: &Path, dir: Option<&Path>, data_dir: bool) -> Option<String> {
    if file.is_file() {
        return None;
    }
    let fix = "check --data-dir (or CALGATE_DATA_DIR / --database), or set calgate up there with `calgate connection add` or `calgate demo`";
    Some(match dir {
        Some(d) if data_dir && !d.exists() => format!(
            "there is no calgate data directory at {}: {fix}",
            d.display()
        ),
        Some(d) if data_dir => format!(
            "{} holds no calgate store (no {SQLITE_FILE}): {fix}",
            d.display()
        ),
        _ => format!("there is no calgate database at {}: {fix}", file.display()),
    })
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
                key_dir: "/var/lib/calgate".into(),
                data_dir: false,
            }
        );
        assert_eq!(
            Location::parse("sqlite://x.db?mode=rwc").expect("relative"),
            Location::Sqlite {
                file: "x.db".into(),
                key_dir: ".".into(),
                data_dir: false,
            }
        );
        assert_eq!(
            Location::parse("./calgate-data").expect("dir"),
            Location::Sqlite {
                file: "./calgate-data/calgate.db".into(),
                key_dir: "./calgate-data".into(),
                data_dir: true,
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

    #[test]
    fn locations_are_shown_without_passwords() {
        assert_eq!(
            redacted_location("postgres://cg:s3cret@db.example.org:5432/calgate?sslmode=require"),
            "postgres://cg:***@db.example.org:5432/calgate?sslmode=require"
        );
        assert_eq!(
            redacted_location("postgresql://cg@db/calgate?password=s3cret&sslmode=require"),
            "postgresql://cg@db/calgate?password=***&sslmode=require"
        );
        assert_eq!(redacted_location("./calgate-data"), "./calgate-data");
        assert_eq!(
            redacted_location("sqlite:///var/x.db"),
            "sqlite:///var/x.db"
        );
    }

    #[tokio::test]
    async fn a_bad_postgres_url_is_a_clear_error_without_the_password() {
        let e = open("postgres://u:pa55word@[bad/calgate")
            .await
            .err()
            .expect("bad url");
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(!e.to_string().contains("pa55word"), "{e}");
        assert!(e.to_string().contains("postgres://USER"), "{e}");
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
