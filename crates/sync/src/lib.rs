//! calgate's sync engine: keeps each linked mailbox's Exchange calendar mirrored in the store,
//! over a sliding window, with Graph's `calendarView/delta`.
//!
//! # What it owns
//! - **The planner** ([`plan()`], [`plan_mailbox`]): pure. From a mailbox's local state (cursor
//!   with its window and last re-base, a resync in progress, stored instances, the last error),
//!   the request (incremental or `--full`, the window: 30 days back and 365 ahead by default)
//!   and `now`, it makes a [`Plan`]: per mailbox an initial round, an incremental round from
//!   the stored deltaLink, or a full resync into a shadow set (and why). The plan is data;
//!   its `Display` is what `calgate sync --dry-run` prints, one line per mailbox.
//! - **The page applier** ([`plan_page`]): pure. One delta page's items + the window → the
//!   [`ChangeSet`](calgate_store::ChangeSet) to write: upserts of instances overlapping the
//!   window, removals for `@removed` and for instances now outside it; the last item of an id
//!   wins; replays are idempotent.
//! - **The executor** (per mailbox): initial rounds (delta over the window, nextLinks followed,
//!   each page one `apply_changes` transaction, the deltaLink stored with the last page only),
//!   incremental rounds from the deltaLink, and full resyncs into a shadow set
//!   (`begin_shadow` → `apply_shadow` per page → `commit_shadow`, or `abort_shadow` on
//!   failure) — after 410 Gone / `SyncStateNotFound`, on `--full`, and to re-base the window.
//! - **The scheduler** ([`Engine`]): all mailboxes of all connections in a fair order (least
//!   recently attempted first, connections interleaved), at most
//!   [`EngineOptions::concurrency`] mailboxes at once (the graph client keeps ≤ 4 requests in
//!   flight per mailbox); one client per connection, whose token is acquired once per run;
//!   each mailbox's status recorded (last success, lag, error class and admin-words message,
//!   next action); progress reported through a callback; a [`Summary`] at the end.
//!
//! # Invariants
//! - **Plan → execute.** Every decision is made by the pure planner from stored state; the
//!   executor only does I/O and records what happened.
//! - **Nothing disappears without positive evidence.** Instances are removed only for an
//!   `@removed`, for an upsert that places the instance outside the window, or by committing a
//!   completed full resync. A full resync never touches the live set before its commit, so no
//!   reader sees an instance vanish while it runs; an error aborts the shadow and leaves the
//!   live set as it was.
//! - **Crash-safe rounds.** The deltaLink is stored only in the transaction of a round's last
//!   page. A round cut short resumes from the previous deltaLink (pages replay idempotently);
//!   an initial round cut short (instances but no cursor) is redone as a full resync, so
//!   leftovers cannot survive.
//! - **The window re-bases at least daily** (`rebase_every`, default 24 h, or sooner when the
//!   stored window no longer covers `[now - back, now + ahead]`), by a full resync over the new
//!   window: nothing lost, nothing duplicated (instances are keyed by Exchange id).
//! - **One mailbox's failure never stops another**; a connection whose token cannot be had
//!   fails its own mailboxes with the same admin-words error after a single token request.
//!
//! # API boundary
//! Depends on `calgate-graph` (the only crate that knows Graph JSON) and `calgate-store` (the
//! only crate that knows SQL); knows no HTTP server. The CLI builds an [`Engine`] from an
//! `Arc<dyn Store>` and a `calgate_graph::Shared`.
#![forbid(unsafe_code)]

pub mod backend;
mod delegated;
mod engine;
mod error;
mod executor;
pub mod notify;
mod page;
mod plan;
pub mod push;
pub mod scheduler;

pub use backend::{
    Backend, BackendError, CalendarBackend, Change, ChangesPage, ChangesRequest, PageNext,
};
pub use delegated::{StoreSink, account_for, account_options, delegated_client, reconnect_command};
pub(crate) use engine::Reporter;
pub use engine::{
    DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE, Engine, EngineOptions, Failure, LearnedExpiry,
    MailboxOutcome, Progress, ProgressEvent, ProgressFn, Summary, Totals,
};
pub use error::Error;
pub use executor::{DeletionGuard, RoundKind, RoundReport};
pub use page::{merge_changes, plan_page};
pub use plan::{
    Action, DEFAULT_DAYS_AHEAD, DEFAULT_DAYS_BACK, DeltaLink, LastError, MAX_DAYS, MailboxPlan,
    MailboxState, Plan, ResyncReason, SyncMode, SyncRequest, WindowConfig, plan, plan_mailbox,
};
