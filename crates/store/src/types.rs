//! The domain types of the store's API. No database types appear here: a PostgreSQL backend
//! implements the same trait over the same types.

use std::fmt;

use calgate_core::{FailureKind, Instance, Person, PrivacyPolicy, Sensitivity, ShowAs};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use calgate_core::{
    ApiScope, Connection, ConnectionId, ConnectionKind, Credential, CredentialId, CredentialKind,
    EwsAuth, EwsSettings, Mailbox, MailboxId, NewConnection, NewCredential, NewMailbox,
    SecretString,
};

/// A sync window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Where incremental sync resumes: the deltaLink and the window it was started for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Opaque; may embed a token. Not a credential, but not for logs either.
    pub delta_link: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// When the window was last re-based (the initial round counts).
    pub rebased_at: Timestamp,
}

/// What a series master looks like, enough to show the series (its occurrences are instances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesMaster {
    pub exchange_id: String,
    pub ical_uid: Option<String>,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub organizer: Option<Person>,
    /// The recurrence as JSON (for example Graph's `patternedRecurrence` converted by the
    /// recurrence crate); the store does not interpret it.
    pub recurrence: Option<serde_json::Value>,
    /// The first occurrence's start and end, when known.
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// IANA zone the series is scheduled in.
    pub time_zone: Option<String>,
    pub show_as: Option<ShowAs>,
    pub sensitivity: Option<Sensitivity>,
    pub web_link: Option<String>,
    pub change_key: Option<String>,
    pub last_modified: Option<Timestamp>,
}

impl SeriesMaster {
    /// The master as `policy` lets it be stored and shown: subject, location and organizer
    /// absent when the policy hides the series' details.
    pub fn visible(&self, policy: PrivacyPolicy) -> std::borrow::Cow<'_, SeriesMaster> {
        let hidden = match policy {
            PrivacyPolicy::BusyOnly => true,
            PrivacyPolicy::Full => self.sensitivity.is_some_and(Sensitivity::is_restricted),
            PrivacyPolicy::FullIncludingPrivate => false,
        };
        if !hidden {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut out = self.clone();
        out.subject = None;
        out.location = None;
        out.organizer = None;
        std::borrow::Cow::Owned(out)
    }
}

/// One round's worth of changes to one mailbox, applied atomically by
/// [`Store::apply_changes`](crate::Store::apply_changes) (or into the shadow set by
/// [`Store::apply_shadow`](crate::Store::apply_shadow)).
///
/// Order of application: `removals`, then `master_removals`, then `upserts`, then `masters`,
/// then `cursor`. An id both removed and upserted in one set therefore ends up present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Instances to insert or replace, keyed by `exchange_id` (the mailbox is the argument;
    /// `Instance::mailbox` is ignored on write and filled with the mailbox's address on read).
    pub upserts: Vec<Instance>,
    /// Exchange ids of instances to delete (positive evidence: `@removed`, a 404 on a known id).
    /// Unknown ids are ignored. Removing a series master's id does not remove its occurrences.
    pub removals: Vec<String>,
    /// Series masters to insert or replace.
    pub masters: Vec<SeriesMaster>,
    /// Exchange ids of series masters to delete.
    pub master_removals: Vec<String>,
    /// The new cursor, stored in the same transaction (for a shadow: the resync's progress).
    pub cursor: Option<Cursor>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.removals.is_empty()
            && self.masters.is_empty()
            && self.master_removals.is_empty()
            && self.cursor.is_none()
    }
}

/// An instance as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// calgate's id for this instance: assigned when first stored, kept across updates and
    /// full resyncs (the host application may keep it).
    pub id: uuid::Uuid,
    pub mailbox_id: MailboxId,
    /// `instance.mailbox` is the mailbox's address.
    pub instance: Instance,
    /// When this version was written.
    pub stored_at: Timestamp,
}

/// A full resync in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowState {
    /// The fencing token of the round that owns it (see [`Lease`]).
    pub lease_token: i64,
    pub window: Window,
    /// The resync's last recorded progress link (the `delta_link` of the `ChangeSet::cursor`
    /// last given to `apply_shadow`): where an interrupted resync may resume.
    pub progress_link: Option<String>,
    pub started_at: Timestamp,
    /// Instances in the shadow set so far.
    pub instances: u64,
}

/// Counters of one sync attempt; [`Store::record_status`](crate::Store::record_status) adds
/// them to the mailbox's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounters {
    pub rounds: u64,
    pub requests: u64,
    pub throttled: u64,
    pub upserts: u64,
    pub removals: u64,
    pub full_resyncs: u64,
}

/// How a sync attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncOutcome {
    Success,
    Failure {
        /// The failure's class.
        kind: FailureKind,
        /// One line in an administrator's words, with the fix.
        message: String,
    },
}

/// The result of one sync attempt of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatusUpdate {
    pub attempted_at: Timestamp,
    pub outcome: SyncOutcome,
    /// What the scheduler will do next, in words (`incremental`, `full resync`, `retry`, …).
    pub next_action: Option<String>,
    pub next_run_at: Option<Timestamp>,
    /// How far behind Exchange the stored instances may be.
    pub lag: Option<SignedDuration>,
    pub counters: SyncCounters,
}

/// A mailbox's sync status (mailboxes never attempted have all `None` and zero counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxStatus {
    pub mailbox_id: MailboxId,
    pub address: String,
    pub connection: String,
    pub last_attempt: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    /// The last failure's class, message and time; cleared by a success.
    pub last_error: Option<StatusError>,
    pub consecutive_failures: u64,
    pub next_action: Option<String>,
    pub next_run_at: Option<Timestamp>,
    pub lag: Option<SignedDuration>,
    /// Running totals.
    pub counters: SyncCounters,
    /// Whether a full resync (shadow) is in progress.
    pub resync_in_progress: bool,
    /// Which calgate process ran the last round ("pid 4242 on host-a"; `None`: none finished
    /// since schema 16).
    pub last_round_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub kind: FailureKind,
    pub message: String,
    pub at: Timestamp,
}

/// Who holds (or asks for) a mailbox's sync lease: one calgate process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// Unique per process (random), so that two processes with the same pid on two hosts, or a
    /// restarted process that got its old pid back, are told apart.
    pub id: String,
    pub pid: u32,
    pub host: String,
}

impl LeaseHolder {
    /// This process (the same value for its whole life).
    pub fn this_process() -> LeaseHolder {
        static THIS: std::sync::OnceLock<LeaseHolder> = std::sync::OnceLock::new();
        THIS.get_or_init(|| LeaseHolder {
            id: uuid::Uuid::new_v4().to_string(),
            pid: std::process::id(),
            host: this_host(),
        })
        .clone()
    }

    /// Whether the holder is a process of this host that no longer runs (killed, crashed):
    /// its leases need not wait for their deadline. `false` when it cannot be known (another
    /// host, or no `/proc`).
    pub fn is_gone(&self) -> bool {
        let proc_fs = std::path::Path::new("/proc/self");
        if self.host != this_host() || !proc_fs.exists() {
            return false;
        }
        if self.pid == std::process::id() {
            return self.id != LeaseHolder::this_process().id;
        }
        !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, else `localhost`).
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A held sync lease: the right to run one round of one mailbox. Every write of the round
/// (pages, the shadow set and its swap, the cursor) presents it; the store refuses a write
/// whose token is no longer the mailbox's current one (another process took over after the
/// lease expired), and extends the deadline of one that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mailbox: MailboxId,
    /// The fencing token: larger for every new holder of this mailbox's lease.
    pub token: i64,
    pub holder: LeaseHolder,
    /// How long the lease lasts after each write or renewal.
    pub ttl: SignedDuration,
    pub acquired_at: Timestamp,
}

/// Someone else's lease, as a refused [`Store::acquire_lease`](crate::Store::acquire_lease)
/// or [`Store::leases`](crate::Store::leases) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub mailbox: MailboxId,
    pub address: String,
    pub holder: LeaseHolder,
    pub token: i64,
    /// When the holder acquired it.
    pub since: Timestamp,
    /// When it lapses unless renewed.
    pub deadline: Timestamp,
}

/// The answer to [`Store::acquire_lease`](crate::Store::acquire_lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrant {
    Acquired(Lease),
    /// Another holder's lease is live: skip the mailbox (or try again later).
    Held(LeaseInfo),
}

/// What happened to an instance in a mailbox's live set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Updated => "updated",
            ChangeOp::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for ChangeOp {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "created" => Ok(ChangeOp::Created),
            "updated" => Ok(ChangeOp::Updated),
            "deleted" => Ok(ChangeOp::Deleted),
            other => Err(format!("unknown change '{other}'")),
        }
    }
}

/// What the host application is told about besides instances: a mailbox's sync failing or
/// recovering, a booking's fate, a credential expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    MailboxSyncFailed,
    MailboxRecovered,
    BookingSynced,
    BookingFailed,
    BookingDrifted,
    BookingDeletedInExchange,
    CredentialExpiring,
    CredentialExpired,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 8] = [
        NoticeKind::MailboxSyncFailed,
        NoticeKind::MailboxRecovered,
        NoticeKind::BookingSynced,
        NoticeKind::BookingFailed,
        NoticeKind::BookingDrifted,
        NoticeKind::BookingDeletedInExchange,
        NoticeKind::CredentialExpiring,
        NoticeKind::CredentialExpired,
    ];

    /// The event type the host application sees (`mailbox.sync_failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::MailboxSyncFailed => "mailbox.sync_failed",
            NoticeKind::MailboxRecovered => "mailbox.recovered",
            NoticeKind::BookingSynced => "booking.synced",
            NoticeKind::BookingFailed => "booking.failed",
            NoticeKind::BookingDrifted => "booking.drifted",
            NoticeKind::BookingDeletedInExchange => "booking.deleted_in_exchange",
            NoticeKind::CredentialExpiring => "credential.expiring",
            NoticeKind::CredentialExpired => "credential.expired",
        }
    }
}

impl std::str::FromStr for NoticeKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        NoticeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event type '{s}'"))
    }
}

/// Every event type of the change feed and of webhooks, as the host application sees them.
pub const EVENT_TYPES: [&str; 11] = [
    "event.created",
    "event.updated",
    "event.deleted",
    "mailbox.sync_failed",
    "mailbox.recovered",
    "booking.synced",
    "booking.failed",
    "booking.drifted",
    "booking.deleted_in_exchange",
    "credential.expiring",
    "credential.expired",
];

/// What one change-log row says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An instance of a mailbox's live set was created, updated or deleted.
    Instance {
        op: ChangeOp,
        /// calgate's id of the instance.
        instance_id: uuid::Uuid,
        exchange_id: String,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    },
    /// Anything else, with its details.
    Notice {
        kind: NoticeKind,
        data: serde_json::Value,
    },
}

/// How a change-log row about an instance came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeVia {
    /// A sync round applied Exchange's changes (a delta page, SyncFolderItems) to the live set.
    Round,
    /// A full resync's shadow set was swapped in (after Exchange invalidated the sync state,
    /// a window re-base, or a privacy change).
    Resync,
}

impl ChangeVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeVia::Round => "round",
            ChangeVia::Resync => "resync",
        }
    }
}

/// One row of the change log, in the order the store wrote them (`seq` only grows): the change
/// feed and the source of webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub seq: u64,
    /// `None` for events about no mailbox (credentials).
    pub mailbox: Option<MailboxId>,
    pub address: Option<String>,
    pub change: Change,
    /// How an instance change was written (`None`: a notice, or a row older than schema 14).
    pub via: Option<ChangeVia>,
    pub at: Timestamp,
}

impl ChangeRecord {
    /// The event type the host application sees (`event.created`, `mailbox.recovered`, …).
    pub fn event_type(&self) -> &'static str {
        match &self.change {
            Change::Instance { op, .. } => match op {
                ChangeOp::Created => "event.created",
                ChangeOp::Updated => "event.updated",
                ChangeOp::Deleted => "event.deleted",
            },
            Change::Notice { kind, .. } => kind.as_str(),
        }
    }
}

/// A notice to append to the change log ([`Store::record_notice`](crate::Store::record_notice)).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub kind: NoticeKind,
    /// The mailbox it is about, if any.
    pub mailbox: Option<MailboxId>,
    pub data: serde_json::Value,
}

/// A webhook endpoint of the host application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `wh_` and 26 characters.
    pub id: String,
    pub url: String,
    /// The event types it receives; `None`: all of them.
    pub events: Option<Vec<String>>,
    /// The change-log position fanned out into its queue so far.
    pub position: u64,
    pub created_at: Timestamp,
    /// Until when the secret before the last rotation still signs deliveries.
    pub previous_secret_until: Option<Timestamp>,
}

impl Webhook {
    /// Whether the endpoint receives events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|e| e.iter().any(|t| t == event_type))
    }
}

/// A delivery to queue ([`Store::enqueue_deliveries`](crate::Store::enqueue_deliveries)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The change-log position it comes from.
    pub seq: u64,
    /// Deliveries of one partition (a mailbox's address; `""` for none) go out in order.
    pub partition: String,
    pub event_type: String,
    /// The exact body to sign and send.
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(format!(
                "unknown delivery state '{other}' (pending, delivered or dead)"
            )),
        }
    }
}

/// One queued delivery to a webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: String,
    /// The Standard Webhooks message id (`webhook-id`): the same on every attempt.
    pub msg_id: String,
    pub seq: u64,
    pub partition: String,
    pub event_type: String,
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// How an attempt ended ([`Store::finish_delivery`](crate::Store::finish_delivery)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        status: u16,
    },
    /// Try again at `retry_at`; `None`: give up (dead letter).
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<Timestamp>,
    },
}

/// Where a page of [`Store::instances_page`](crate::Store::instances_page) ends: the last
/// instance's start and Exchange id (instances are ordered by start, then Exchange id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCursor {
    pub start: Timestamp,
    pub exchange_id: String,
}

/// One page of instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePage {
    pub instances: Vec<StoredInstance>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<InstanceCursor>,
}

/// What the sync planner needs of one mailbox, read in one query for many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSyncState {
    pub mailbox: Mailbox,
    pub cursor: Option<Cursor>,
    pub live_instances: u64,
    pub status: MailboxStatus,
}

/// What committing a shadow set would do to the live set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShadowDiff {
    /// Live instances now.
    pub live: u64,
    /// Live instances the shadow set does not hold (they would be deleted).
    pub removed: u64,
    /// Shadow instances the live set does not hold (they would be created).
    pub added: u64,
}

/// An API key to store: its public id and the salted hash of the whole key (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub key_id: String,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub scopes: Vec<ApiScope>,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub key_id: String,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
    pub scopes: Vec<ApiScope>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// An ICS feed to store: the mailbox, the hash of its token, what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFeed {
    pub address: String,
    pub token_hash: Vec<u8>,
    pub token_hint: String,
    pub privacy: PrivacyPolicy,
}

/// A stored ICS feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: i64,
    pub mailbox_id: MailboxId,
    pub address: String,
    pub token_hint: String,
    pub privacy: PrivacyPolicy,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A mailbox's busy spans over a window (what availability needs; nothing else is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyTimes {
    pub mailbox: MailboxId,
    /// `(start, end)` of each instance.
    pub spans: Vec<(Timestamp, Timestamp)>,
}

// ---- push ------------------------------------------------------------------------------------

pub use calgate_core::booking::{
    Booking, BookingMode, BookingSpec, BookingState, BookingTarget, TargetRole, TargetState,
    TargetStatus,
};

/// What an outbox entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushOp {
    /// Make the target's event match the booking (create it, or update it).
    Upsert,
    /// Remove the target's event.
    Delete,
}

impl PushOp {
    pub fn as_str(self) -> &'static str {
        match self {
            PushOp::Upsert => "upsert",
            PushOp::Delete => "delete",
        }
    }
}

impl std::str::FromStr for PushOp {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "upsert" => Ok(PushOp::Upsert),
            "delete" => Ok(PushOp::Delete),
            other => Err(format!("unknown push operation '{other}'")),
        }
    }
}

/// One due outbox entry with what the pusher needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PushTask {
    /// The outbox entry's id: stable across the entry's attempts (its `transactionId`).
    pub entry: i64,
    pub external_id: String,
    pub address: String,
    pub role: TargetRole,
    pub op: PushOp,
    /// The booking's version this entry brings the target to.
    pub version: i64,
    /// Attempts begun before this one: > 0 means an earlier outcome is unknown.
    pub attempts: u32,
    /// The target's event in Exchange, when calgate knows it.
    pub exchange_id: Option<String>,
    pub ical_uid: Option<String>,
    pub change_key: Option<String>,
    pub pushed_version: i64,
    /// The booking as it is now.
    pub spec: BookingSpec,
}

/// How a push attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Exchange holds the booking's event (created or updated).
    Written {
        exchange_id: String,
        ical_uid: Option<String>,
        web_link: Option<String>,
        change_key: Option<String>,
    },
    /// The event is gone from Exchange (deleted, or was never there).
    Removed,
    /// Someone deleted calgate's event in Exchange: not re-created by itself.
    GoneInExchange,
    /// Try again after `not_before`.
    Retry {
        error: String,
        not_before: Timestamp,
    },
    /// A permanent error, in an administrator's words.
    Failed { error: String },
}

/// Whether Graph notifies calgate about a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionState {
    /// A live subscription: changes are notified.
    Active,
    /// No working subscription: the mailbox is polled, `reason` says why.
    Failing,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Failing => "failing",
        }
    }
}

impl std::str::FromStr for SubscriptionState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "active" => Ok(SubscriptionState::Active),
            "failing" => Ok(SubscriptionState::Failing),
            other => Err(format!("unknown subscription state '{other}'")),
        }
    }
}

/// calgate's record of a mailbox's change-notification subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub mailbox: MailboxId,
    /// The mailbox's address (filled in by reads).
    pub address: String,
    /// Graph's subscription id (`None` while failing).
    pub subscription_id: Option<String>,
    /// SHA-256 of the subscription's clientState.
    pub client_state_hash: Option<Vec<u8>>,
    pub expires_at: Option<Timestamp>,
    pub state: SubscriptionState,
    /// Why the mailbox is polled (failing), in an administrator's words.
    pub reason: Option<String>,
    pub failures: u32,
    /// Failing: when to try again.
    pub next_attempt_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// A signed-in administrator of the admin console. The session's token is only in the
/// browser's cookie; the store keeps its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub token_sha256: Vec<u8>,
    /// The session's CSRF token: every form of the session carries it.
    pub csrf: String,
    /// How the administrator signed in ("with the administrator password").
    pub via: String,
    pub expires_at: Timestamp,
}
