//! Why a mailbox's sync failed, in classes the scheduler, the status page and the API branch on.
//! Backends (Graph, EWS) and the store map their own errors into these.

use serde::{Deserialize, Serialize};

/// The class of a failure. Stored, shown (`calgate mailbox list`, `GET /v1/mailboxes`) and
/// counted (`/metrics`) by its string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Throttling, a timeout, a 5xx, a dropped connection: the next run tries again.
    Retryable,
    /// The credentials were refused (wrong or expired secret, unknown tenant or app).
    Authentication,
    /// The app may not read (or write) this mailbox.
    Permission,
    /// The mailbox (or the item) does not exist.
    NotFound,
    /// The service sent something calgate cannot read (the stored cursor is not trusted).
    InvalidData,
    /// The service forgot the sync state: a full resync is needed.
    ResyncRequired,
    /// Anything else the service refused for good.
    Fatal,
    /// calgate's own store failed.
    Store,
    /// The disk holding the store is full.
    DiskFull,
    /// Another process took the mailbox's sync lease over.
    LeaseLost,
    /// calgate's or a connection's configuration is unusable.
    Config,
    /// A round would delete more than the bulk-delete limit allows: held for review.
    DeletionsHeld,
    /// calgate failed unexpectedly (a bug to report).
    Internal,
}

string_forms!(FailureKind, "failure kind", {
    Retryable => "retryable",
    Authentication => "authentication",
    Permission => "permission",
    NotFound => "not-found",
    InvalidData => "invalid-data",
    ResyncRequired => "resync-required",
    Fatal => "fatal",
    Store => "store",
    DiskFull => "disk-full",
    LeaseLost => "lease-lost",
    Config => "config",
    DeletionsHeld => "deletions-held",
    Internal => "internal",
});

impl FailureKind {
    /// Whether the last round's failure means its stored cursor cannot be trusted: the next
    /// round resyncs in full.
    pub fn distrusts_cursor(self) -> bool {
        matches!(self, FailureKind::InvalidData | FailureKind::Fatal)
    }
}
