//! The one door to Exchange: a calendar backend. The executor and the scheduler see only
//! [`CalendarBackend`]; each service (Microsoft Graph now, EWS for Exchange Server next) has an
//! adapter here that turns its client's calls and errors into these backend-neutral types.
//! The adapters live in this crate so that the protocol crates (`graph`, `ews`) stay free of
//! sync's types.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use calgate_core::{CredentialId, FailureKind, Instance};
use calgate_store::Window;

pub mod graph;

/// What a round asks the backend for.
#[derive(Clone, PartialEq, Eq)]
pub enum ChangesRequest {
    /// A new round over the window: every item in it, page by page.
    Start { window: Window, page_size: u32 },
    /// The next page of a round, or the next round from a stored cursor (both opaque).
    Continue { link: String, page_size: u32 },
}

impl fmt::Debug for ChangesRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangesRequest::Start { window, page_size } => f
                .debug_struct("Start")
                .field("window", window)
                .field("page_size", page_size)
                .finish(),
            // Links may embed a token: not for logs.
            ChangesRequest::Continue { page_size, .. } => f
                .debug_struct("Continue")
                .field("page_size", page_size)
                .finish_non_exhaustive(),
        }
    }
}

/// One item of a page of changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created or updated (or replayed: the same change may come again).
    Upsert(Box<Instance>),
    /// Deleted, cancelled, or moved out of the window.
    Removed { exchange_id: String },
}

/// Where the round goes after a page.
#[derive(Clone, PartialEq, Eq)]
pub enum PageNext {
    /// More pages in this round (opaque): ask for it now.
    More(String),
    /// The round is complete: this opaque cursor starts the next incremental round.
    Done(String),
}

impl fmt::Debug for PageNext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageNext::More(_) => "More(…)",
            PageNext::Done(_) => "Done(…)",
        })
    }
}

/// One page of changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    pub changes: Vec<Change>,
    pub next: PageNext,
}

/// A backend's failure, in backend-neutral terms: the class the engine branches on, one line in
/// an administrator's words (cause and fix), and the service's own code when it has one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub kind: FailureKind,
    pub message: String,
    /// The service's code (`AADSTS7000215`, `ErrorAccessDenied`, `ErrorServerBusy`, …).
    pub code: Option<String>,
    /// A connected account must sign in again (its refresh token was refused).
    pub reconnect_needed: bool,
}

impl BackendError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
            code: None,
            reconnect_needed: false,
        }
    }
}

/// A calendar service as the sync engine uses it. Object-safe: held as
/// `Arc<dyn CalendarBackend>`, one per connection (or connected account) and run.
///
/// Pushing the host application's events (issue 10) adds its writes here: create, update and
/// delete an event in a calendar, find calgate's events by their extended property.
#[async_trait]
pub trait CalendarBackend: Send + Sync + fmt::Debug {
    /// Signs in once (an access token, a session), so that a refused credential is reported
    /// for every mailbox of the connection after one attempt. Transient failures are
    /// `Retryable`: each mailbox then tries on its own.
    async fn sign_in(&self) -> Result<(), BackendError>;

    /// One page of a mailbox's changes. A round starts with [`ChangesRequest::Start`] and
    /// follows [`PageNext::More`] until [`PageNext::Done`]; the next round continues from that
    /// cursor. `ResyncRequired` means the cursor is no longer valid: start a new round. A page
    /// the backend cannot read is an error, never "no more changes".
    async fn changes(
        &self,
        mailbox: &str,
        request: ChangesRequest,
    ) -> Result<ChangesPage, BackendError>;

    /// The stored credentials the service reported as expired during this backend's life
    /// (the engine records them, so `doctor` and `connection list` show them).
    fn expired_credentials(&self) -> Vec<CredentialId>;
}

/// A shared backend.
pub type Backend = Arc<dyn CalendarBackend>;
