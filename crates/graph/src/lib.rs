//! calgate's Microsoft Graph + Entra ID client: the only crate that knows Graph's and Entra's
//! JSON.
//!
//! # What it owns
//! - **Wire types** (`wire`): token responses (v2, and v1 with string-typed numbers), Entra
//!   error bodies, Graph error bodies (`innerError` and `innererror`), events, delta pages,
//!   users, mailbox settings, places, `$batch`. Read leniently: unknown properties are ignored
//!   and a mistyped optional property reads as absent.
//! - **Conversion at the edge** (`convert`): events become [`calgate_core::Instance`]s —
//!   instants in UTC plus the IANA zone (Windows names mapped with `calgate_tz`), all-day events
//!   as dates, origin `exchange`.
//! - **Tokens** (`token`): client credentials with a client secret or a certificate assertion
//!   (PS256 + `x5t#S256`, or RS256 + `x5t`), v2 or v1 endpoint; cached, refreshed when less
//!   than 5 minutes are left, one refresh in flight per credential; several credentials per
//!   connection, falling back on a rejected or expired one.
//! - **Requests** ([`GraphClient`]): paging, calendarView and its delta, `$batch` (≤ 20 per
//!   batch), retries on 429/503/504 honouring `Retry-After` (integer or fractional seconds),
//!   else exponential backoff with jitter, within bounded attempts and total wait.
//! - **Errors** ([`Error`]): one type, callers branch on [`ErrorKind`]; messages name the cause
//!   and the administrator's fix.
//!
//! # Invariants
//! - **≤ 4 requests in flight per mailbox in the whole process**, whatever the number of
//!   clients or connections (a process-wide gate keyed by Graph origin + lowercase address;
//!   a `$batch` holds one slot per item of each mailbox, at most 4).
//! - **Nothing is sent to a mailbox before its `Retry-After` has passed**: a 429/503 with
//!   `Retry-After` sets the mailbox's "not before" instant, which every later request waits for.
//! - **A broken page is an error, never "no more items"**: a page that is not JSON, lacks
//!   `value`, or (delta) lacks both `@odata.nextLink` and `@odata.deltaLink` is `InvalidData`.
//! - **The access token is only sent to the configured Graph origin**: paging links elsewhere
//!   are refused (`InvalidData`).
//! - **Plain `http://` only to loopback** (127.0.0.0/8, ::1, localhost); anything else is a
//!   configuration error.
//! - **Secrets and tokens never appear in messages, logs or `Debug`** ([`SecretString`]).
//!
//! # API boundary
//! Callers (sync, CLI) see [`GraphClient`], [`Shared`], [`ConnectionConfig`], [`Credential`],
//! [`Cloud`], the request/response types and [`Error`]; the wire types are public only for the
//! property tests and may change.
#![forbid(unsafe_code)]

mod client;
mod config;
mod convert;
mod delegated;
mod error;
mod limiter;
mod secret;
mod token;
pub mod wire;

pub use client::{
    BATCH_LIMIT, BatchRequest, BatchResponse, CredentialStatus, DeltaRequest, EventDraft,
    FoundEvent, GraphClient, RetryPolicy, Shared, Subscription, SubscriptionRequest,
    parse_retry_after,
};
pub use config::{
    AssertionAlg, CertificateInfo, Cloud, ConnectionConfig, Credential, TokenEndpoint, is_loopback,
    validate_endpoint,
};
pub use convert::{
    DeltaItem, DeltaNext, DeltaPage, MailboxSettings, Room, RoomList, UserInfo, UserPurpose,
    WorkingHours, event_to_instance, parse_delta_page, parse_event,
};
pub use delegated::{
    AuthorizationRequest, DEFAULT_DELEGATED_PERMISSIONS, DelegatedOptions, DelegatedSession,
    DelegatedTokens, RefreshTokenSink, SignedInUser, is_reconnect_needed, pkce_challenge,
};
pub use error::{AADSTS_SECRET_EXPIRED, Error, ErrorKind};
pub use limiter::{MAILBOX_CONCURRENCY, MetricsSnapshot};
pub use secret::SecretString;
pub use token::TokenClaims;
pub use token::{AccessToken, EARLY_REFRESH, parse_token_response};

/// Parses an Entra ID error body and classifies it (exposed for tests and diagnostics).
pub fn classify_entra_error(status: u16, body: &[u8], tenant: &str, client_id: &str) -> Error {
    let parsed: wire::EntraErrorBody = serde_json::from_slice(body).unwrap_or_default();
    error::from_entra(
        status,
        &parsed,
        &error::TokenContext {
            tenant,
            client_id,
            authority: "the authority",
            credential: "credential",
        },
    )
}

/// Parses a Graph error body and classifies it (exposed for tests and diagnostics).
pub fn classify_graph_error(status: u16, body: &[u8], mailbox: Option<&str>) -> Error {
    let err = error::parse_graph_error(body);
    error::from_graph(
        status,
        err.as_ref(),
        None,
        None,
        &error::GraphContext {
            mailbox: mailbox.map(str::to_owned),
            ..Default::default()
        },
    )
}
