//! The sync engine's error: a Graph error (classified by the graph crate), a store error, or a
//! configuration error of the engine itself.

/// Why a mailbox (or the whole run) could not sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Graph or Entra ID refused or failed; the message is in an administrator's words.
    #[error("{0}")]
    Graph(#[from] calgate_graph::Error),
    /// calgate's store failed.
    #[error("{}", store_message(.0))]
    Store(#[from] calgate_store::Error),
    /// The engine's or a connection's configuration is unusable.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The class recorded in the mailbox status: the graph crate's error kind
    /// (`authentication`, `permission`, `retryable`, `not-found`, `invalid-data`,
    /// `resync-required`, `fatal`), `store` or `config`.
    pub fn class(&self) -> &'static str {
        match self {
            Error::Graph(e) => e.kind.as_str(),
            Error::Store(e) if e.kind() == calgate_store::ErrorKind::LeaseLost => "lease-lost",
            Error::Store(e) if e.kind() == calgate_store::ErrorKind::DiskFull => "disk-full",
            Error::Store(_) => "store",
            Error::Config(_) => "config",
        }
    }

    /// The graph error's kind, if this is one.
    pub fn graph_kind(&self) -> Option<calgate_graph::ErrorKind> {
        match self {
            Error::Graph(e) => Some(e.kind),
            _ => None,
        }
    }

    /// What the scheduler does next after this failure, in words for the status page.
    pub fn next_action(&self) -> &'static str {
        use calgate_graph::ErrorKind::*;
        match self {
            Error::Graph(e) if calgate_graph::is_reconnect_needed(e) => {
                "the account's user signs in again with `calgate account connect --connection NAME`, then sync"
            }
            Error::Graph(e) => match e.kind {
                Retryable => "retry on the next run",
                Authentication => {
                    "fix the connection's credentials (see the error; `calgate connection test NAME`), then sync"
                }
                Permission => "grant the app access to this mailbox (see the error), then sync",
                NotFound => {
                    "check the address (`calgate mailbox verify ADDRESS --connection NAME`) or unlink it"
                }
                InvalidData | Fatal => "full resync into a shadow set on the next run",
                ResyncRequired => "full resync into a shadow set on the next run",
            },
            Error::Store(e) if e.kind() == calgate_store::ErrorKind::LeaseLost => {
                "none: the process that took the lease over syncs the mailbox"
            }
            Error::Store(e) if e.kind() == calgate_store::ErrorKind::DiskFull => {
                "free space on the data directory's disk, then sync"
            }
            Error::Store(_) => "check the data directory and database, then sync",
            Error::Config(_) => "fix the configuration, then sync",
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
