//! The sync engine's error: a backend's (classified by its adapter), the store's, or a
//! configuration error of the engine itself.

use calgate_core::FailureKind;

use crate::backend::BackendError;

/// Why a mailbox (or the whole run) could not sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The calendar service refused or failed; the message is in an administrator's words.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// calgate's store failed.
    #[error("{}", store_message(.0))]
    Store(#[from] calgate_store::Error),
    /// The engine's or a connection's configuration is unusable.
    #[error("{0}")]
    Config(String),
}

impl From<calgate_graph::Error> for Error {
    fn from(e: calgate_graph::Error) -> Error {
        Error::Backend(e.into())
    }
}

impl Error {
    /// The failure's class, as recorded in the mailbox status.
    pub fn kind(&self) -> FailureKind {
        use calgate_store::ErrorKind as S;
        match self {
            Error::Backend(e) => e.kind,
            Error::Store(e) => match e.kind() {
                S::LeaseLost => FailureKind::LeaseLost,
                S::DiskFull => FailureKind::DiskFull,
                _ => FailureKind::Store,
            },
            Error::Config(_) => FailureKind::Config,
        }
    }

    /// The class's string form (`authentication`, `permission`, `retryable`, …).
    pub fn class(&self) -> &'static str {
        self.kind().as_str()
    }

    /// What the scheduler does next after this failure, in words for the status page.
    pub fn next_action(&self) -> &'static str {
        if let Error::Backend(e) = self
            && e.reconnect_needed
        {
            return "the account's user signs in again with `calgate account connect --connection NAME`, then sync";
        }
        match self.kind() {
            FailureKind::Retryable => "retry on the next run",
            FailureKind::Authentication => {
                "fix the connection's credentials (see the error; `calgate connection test NAME`), then sync"
            }
            FailureKind::Permission => {
                "grant the app access to this mailbox (see the error), then sync"
            }
            FailureKind::NotFound => {
                "check the address (`calgate mailbox verify ADDRESS --connection NAME`) or unlink it"
            }
            FailureKind::InvalidData | FailureKind::Fatal | FailureKind::ResyncRequired => {
                "full resync into a shadow set on the next run"
            }
            FailureKind::LeaseLost => {
                "none: the process that took the lease over syncs the mailbox"
            }
            FailureKind::DiskFull => "free space on the data directory's disk, then sync",
            FailureKind::Store => "check the data directory and database, then sync",
            FailureKind::DeletionsHeld => {
                "review the deletions; accept them with `calgate sync --mailbox ADDRESS --accept-deletions`"
            }
            FailureKind::Config | FailureKind::Internal => "fix the configuration, then sync",
        }
    }
}

/// A store error in words: the ones whose message already says what happened and what to do
/// stand alone; others say that the store failed.
fn store_message(e: &calgate_store::Error) -> String {
    use calgate_store::ErrorKind::*;
    match e.kind() {
        LeaseLost | DiskFull | Missing => e.to_string(),
        _ => format!("calgate's store failed: {e}"),
    }
}
