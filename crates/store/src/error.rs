//! The store's one error type: callers branch on [`ErrorKind`], humans read the message.

use std::fmt;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The named connection, mailbox or shadow does not exist.
    NotFound,
    /// The write contradicts what is stored (a name taken, a mailbox linked elsewhere, a
    /// connection still in use).
    Conflict,
    /// The caller's data breaks a rule of the store (end before start, a bad window, …).
    InvalidData,
    /// The master key is malformed, unreadable, unsafe, or not the key the data was sealed with.
    MasterKey,
    /// The location names a backend this build does not implement (yet).
    Unsupported,
    /// The data directory or a file in it could not be used.
    Io,
    /// The database failed (locked for too long, corrupt, …).
    Database,
    /// There is no store at the location, and the caller did not ask to create one.
    Missing,
    /// The disk (or the database's size limit) is full.
    DiskFull,
    /// The round's sync lease was taken over by another process (it lapsed): its write was
    /// refused so that it cannot overwrite the newer round's work.
    LeaseLost,
    /// The database's schema is not this calgate's: newer (written by a newer calgate), or
    /// older while migrating was forbidden (`--no-migrate`).
    Schema,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidData => "invalid data",
            ErrorKind::MasterKey => "master key",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "i/o",
            ErrorKind::Database => "database",
            ErrorKind::Missing => "missing",
            ErrorKind::DiskFull => "disk full",
            ErrorKind::LeaseLost => "lease lost",
            ErrorKind::Schema => "schema",
        })
    }
}

/// A store error: a kind, a one-line message in an administrator's words, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error (kind and cause) with another message.
    pub fn reworded(self, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            ..self
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidData, message)
    }

    pub(crate) fn corrupt(what: &str, value: &str) -> Error {
        Error::new(
            ErrorKind::Database,
            format!("the database holds an unreadable {what} ({value:?}); was it edited by hand?"),
        )
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Error {
        let message = format!("{}: {source}", message.into());
        Error::with_source(ErrorKind::Io, message, source)
    }
}
