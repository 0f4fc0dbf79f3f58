//! The one door to Exchange: a calendar backend. The executor and the scheduler see only
//! [`CalendarBackend`]; each service (Microsoft Graph, EWS for Exchange Server) has an
//! adapter here that turns its client's calls and errors into these backend-neutral types.
//! The adapters live in this crate so that the protocol crates (`graph`, `ews`) stay free of
//! sync's types.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use calgate_core::{CredentialId, FailureKind, Instance};
use calgate_store::Window;

pub mod ews;
pub mod graph;

/// What a round asks the backend for.
#[derive(Clone, PartialEq, Eq)]
pub enum ChangesRequest {
    /// A new round over the window: every item in it, page by page. `resume` is the opaque
    /// position a [`PageNext::Relist`] handed out (the service's sync state), so the new round
    /// need not ask the service for it again; `None` otherwise.
    Start {
        window: Window,
        page_size: u32,
        resume: Option<String>,
    },
    /// The next page of a round, or the next round from a stored cursor (both opaque).
    Continue { link: String, page_size: u32 },
}

impl fmt::Debug for ChangesRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangesRequest::Start {
                window, page_size, ..
            } => f
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
    /// Something changed, but the service reports changes by item, not by instance (EWS's
    /// SyncFolderItems): list the window again from the start — a full round into a shadow
    /// set, committed atomically — beginning with `ChangesRequest::Start { resume: Some(this) }`.
    Relist(String),
}

impl fmt::Debug for PageNext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageNext::More(_) => "More(…)",
            PageNext::Done(_) => "Done(…)",
            PageNext::Relist(_) => "Relist(…)",
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

    // ---- push ----

    /// The events of `mailbox` that calgate wrote for `marker` (found by calgate's marker in
    /// the service itself, never by calgate's own tables).
    async fn find_pushed(&self, mailbox: &str, marker: &str) -> Result<Vec<Written>, BackendError>;

    /// Every event of `mailbox` that calgate created (up to `limit`), found in the service.
    async fn find_all_pushed(
        &self,
        mailbox: &str,
        limit: usize,
    ) -> Result<Vec<Written>, BackendError>;

    /// Creates `event` in `mailbox`; `idempotency_key` makes a repeated create (after an
    /// unknown outcome) return the event made the first time, where the service supports it.
    async fn create_event(
        &self,
        mailbox: &str,
        event: &EventWrite,
        idempotency_key: &str,
    ) -> Result<Written, BackendError>;

    /// Updates the event `id` of `mailbox` to `event`. `NotFound`: it is gone.
    async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        event: &EventWrite,
    ) -> Result<Written, BackendError>;

    /// Deletes the event `id` of `mailbox`. `NotFound`: it was gone already.
    async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), BackendError>;

    /// The attendees' answers to the meeting `id` of `mailbox` (the organizer's):
    /// (address, response).
    async fn responses(
        &self,
        mailbox: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, BackendError>;

    /// The occurrences and exceptions of the series `master_id` in `[from, to)`: (id, start).
    async fn occurrences(
        &self,
        mailbox: &str,
        master_id: &str,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<(String, jiff::Timestamp)>, BackendError>;

    // ---- change notifications (a service that has none keeps the defaults: polling) ----

    /// Asks the service to tell calgate when `mailbox`'s calendar changes.
    async fn subscribe(
        &self,
        mailbox: &str,
        request: &Subscribe,
    ) -> Result<Subscribed, BackendError> {
        let _ = (mailbox, request);
        Err(no_notifications())
    }

    /// Moves a subscription's expiry. `NotFound`: it is gone (make a new one).
    async fn renew(
        &self,
        mailbox: &str,
        id: &str,
        expires: jiff::Timestamp,
    ) -> Result<Subscribed, BackendError> {
        let _ = (mailbox, id, expires);
        Err(no_notifications())
    }

    /// Answers a "reauthorization required" lifecycle event.
    async fn reauthorize(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        let _ = (mailbox, id);
        Err(no_notifications())
    }

    async fn unsubscribe(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        let _ = (mailbox, id);
        Err(no_notifications())
    }
}

fn no_notifications() -> BackendError {
    BackendError::new(
        FailureKind::Config,
        "this calendar service sends no change notifications: calgate polls it",
    )
}

/// A subscription to ask for.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    /// Echoed in every notification: a secret (not in `Debug`).
    pub client_state: String,
    pub expires: jiff::Timestamp,
}

impl fmt::Debug for Subscribe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribe")
            .field("notification_url", &self.notification_url)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A subscription the service made or renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub id: String,
    pub expires: jiff::Timestamp,
}

/// An event as calgate writes it into a calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWrite {
    pub subject: String,
    pub body: Option<String>,
    pub when: calgate_core::When,
    pub location: Option<String>,
    pub show_as: calgate_core::ShowAs,
    pub sensitivity: calgate_core::Sensitivity,
    /// Invitees (meeting mode); empty: no invitation is sent.
    pub attendees: Vec<calgate_core::Person>,
    /// calgate's marker (the booking's external id), stored with the event in the service.
    pub marker: String,
    /// For a series master: its RRULE (`when` is the first occurrence). Occurrences left out
    /// or changed are applied afterwards, occurrence by occurrence.
    pub rrule: Option<String>,
}

/// An event calgate wrote, as the service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub exchange_id: String,
    /// calgate's marker on the event (the booking's external id), when the service was asked.
    pub marker: Option<String>,
    pub ical_uid: Option<String>,
    pub web_link: Option<String>,
    pub change_key: Option<String>,
}

/// A shared backend.
pub type Backend = Arc<dyn CalendarBackend>;

/// A booking's RRULE read as a recurrence whose first occurrence is `when`, in the booking's
/// zone (checked when the booking was accepted; an error here is a booking calgate can no
/// longer write). Each adapter spells the result in its service's terms.
pub(crate) fn booking_recurrence(
    rrule: &str,
    when: &calgate_core::When,
) -> Result<calgate_recurrence::Recurrence, BackendError> {
    let tz = jiff::tz::TimeZone::get(&when.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let first = when.start.to_zoned(tz.clone()).datetime();
    calgate_recurrence::Recurrence::from_rrule_local(rrule, first, &tz).map_err(|e| {
        BackendError::new(
            FailureKind::Fatal,
            format!("the booking's RRULE cannot be written: {e}"),
        )
    })
}

/// The app-only backend of a stored connection: Graph for Exchange Online, EWS for Exchange
/// Server. The one place the engine, push and the admin flows pick the service.
pub fn app_backend(
    conn: &calgate_core::Connection,
    shared: &calgate_graph::Shared,
) -> Result<Backend, BackendError> {
    match conn.kind() {
        calgate_core::ConnectionKind::Graph => {
            let cfg = calgate_graph::ConnectionConfig::from_connection(conn)?;
            let client = calgate_graph::GraphClient::new(cfg, shared)?;
            Ok(Arc::new(graph::GraphBackend::new(client)))
        }
        calgate_core::ConnectionKind::Ews => {
            let mut cfg = calgate_ews::EwsConfig::from_connection(conn)?;
            let counts = shared.clone();
            cfg.on_request = Some(calgate_ews::RequestHook(Arc::new(move |throttled| {
                counts.count_other_request(throttled)
            })));
            let client = calgate_ews::EwsClient::new(cfg)?;
            Ok(Arc::new(ews::EwsBackend::new(client)))
        }
    }
}
