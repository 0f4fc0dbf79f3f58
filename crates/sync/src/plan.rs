//! The pure planner: a mailbox's local state + the request + `now` → what to do. No I/O.

use std::fmt;

use calgate_store::{Cursor, MailboxId, Window};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan as _};

use crate::Error;

/// Default days kept before today.
pub const DEFAULT_DAYS_BACK: u32 = 30;
/// Default days kept after today.
pub const DEFAULT_DAYS_AHEAD: u32 = 365;
/// The longest window calgate accepts on either side (Graph's delta has no documented limit;
/// ten years keeps every instant far inside jiff's range).
pub const MAX_DAYS: u32 = 3650;

/// The sliding window a mailbox is kept in sync over: `days_back` before today, `days_ahead`
/// after it. Windows are aligned on UTC midnights, so that every run of one day asks for the
/// same window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub days_back: u32,
    pub days_ahead: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            days_back: DEFAULT_DAYS_BACK,
            days_ahead: DEFAULT_DAYS_AHEAD,
        }
    }
}

impl WindowConfig {
    /// A checked window configuration (each side at most [`MAX_DAYS`]; not both zero).
    pub fn new(days_back: u32, days_ahead: u32) -> Result<WindowConfig, Error> {
        if days_back > MAX_DAYS || days_ahead > MAX_DAYS {
            return Err(Error::Config(format!(
                "the sync window of {days_back} days back and {days_ahead} days ahead is too long: at most {MAX_DAYS} days on each side"
            )));
        }
        if days_back == 0 && days_ahead == 0 {
            return Err(Error::Config(
                "the sync window is empty: give at least one day back or ahead".to_owned(),
            ));
        }
        Ok(WindowConfig {
            days_back,
            days_ahead,
        })
    }

    /// What must be covered at `now`: exactly `[now - back, now + ahead]`.
    pub fn required(&self, now: Timestamp) -> Window {
        Window {
            start: now
                .checked_sub(SignedDuration::from_hours(24 * i64::from(self.days_back)))
                .unwrap_or(Timestamp::MIN),
            end: now
                .checked_add(SignedDuration::from_hours(24 * i64::from(self.days_ahead)))
                .unwrap_or(Timestamp::MAX),
        }
    }

    /// The window to sync at `now`: from the UTC midnight `days_back` days before today to the
    /// UTC midnight after `now + days_ahead`. It always covers [`WindowConfig::required`].
    pub fn window_at(&self, now: Timestamp) -> Window {
        let today = now.to_zoned(TimeZone::UTC).date();
        let midnight = |days: i64| {
            today
                .checked_add(days.days())
                .ok()
                .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        };
        Window {
            start: midnight(-i64::from(self.days_back)).unwrap_or(Timestamp::MIN),
            end: midnight(i64::from(self.days_ahead) + 1).unwrap_or(Timestamp::MAX),
        }
    }
}

/// Whether the request asked for the usual rounds or for a full resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Incremental where a cursor allows it (an initial round where there is none).
    #[default]
    Incremental,
    /// A full resync of every mailbox (`calgate sync --full`), through a shadow set.
    Full,
}

/// What was asked for (`calgate sync [--mailbox A] [--full]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub mode: SyncMode,
    pub window: WindowConfig,
    /// Re-base the window when the last base is at least this old (default 24 h).
    pub rebase_every: SignedDuration,
    /// Only these mailboxes (addresses, case-insensitive); `None`: every linked mailbox.
    pub mailboxes: Option<Vec<String>>,
    /// Let rounds through that the bulk-delete guard would hold (`--accept-deletions`).
    pub accept_deletions: bool,
    /// Leave alone a mailbox that another process synced after this plan was made (seen once
    /// its lease is held): the scheduler of `calgate serve` sets it, so that instances sharing
    /// a store sync each mailbox once per cadence, not once per instance. `calgate sync` and
    /// "sync now" requests do not: they ask for a round.
    pub skip_synced_since_planned: bool,
}

impl Default for SyncRequest {
    fn default() -> Self {
        SyncRequest {
            mode: SyncMode::Incremental,
            window: WindowConfig::default(),
            rebase_every: SignedDuration::from_hours(24),
            mailboxes: None,
            accept_deletions: false,
            skip_synced_since_planned: false,
        }
    }
}

/// The last attempt's failure, as the status recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub kind: calgate_core::FailureKind,
    pub message: String,
}

/// What the planner knows about one mailbox: read from the store, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxState {
    pub mailbox_id: MailboxId,
    pub address: String,
    pub connection: String,
    /// Where incremental sync resumes (the deltaLink, its window and last re-base).
    pub cursor: Option<Cursor>,
    /// A full resync (shadow set) was started and neither committed nor aborted.
    pub resync_in_progress: bool,
    /// Live instances stored for the mailbox.
    pub live_instances: u64,
    pub last_attempt: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    /// The last attempt's failure (`None` if it succeeded or none was made).
    pub last_error: Option<LastError>,
    /// A full resync the store asks for, and why (e.g. the privacy policy was widened).
    pub pending_resync: Option<String>,
}

/// A deltaLink. Opaque and not a credential, but it embeds a token: `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeltaLink(String);

impl DeltaLink {
    pub fn new(link: impl Into<String>) -> DeltaLink {
        DeltaLink(link.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeltaLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeltaLink(…)")
    }
}

/// Why a full resync (into a shadow set) is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncReason {
    /// `calgate sync --full`.
    Requested,
    /// The window's last base is too old (`last_base` + `rebase_every` ≤ now).
    Rebase { last_base: Timestamp },
    /// The stored window no longer covers `[now - back, now + ahead]` (time moved on, or the
    /// configured window grew).
    WindowMoved { old: Window },
    /// A full resync was started and did not finish (crash): it starts over.
    Interrupted,
    /// Instances are stored but no cursor is (an initial round that did not finish): only a
    /// completed full resync may remove what that round left behind.
    NoCursor { live_instances: u64 },
    /// The last round failed reading what Graph sent (garbage link, truncated page): the
    /// stored deltaLink is not trusted any more.
    LastRoundUnreadable { kind: calgate_core::FailureKind },
    /// Graph said the delta token is gone (410 Gone / SyncStateNotFound). Decided by the
    /// executor during a round, never by the planner.
    DeltaTokenExpired,
    /// The service reported changes by item (EWS): the window is listed again. Decided by the
    /// executor during a round.
    Relisted,
    /// The store asks for one (a setting changed that needs what was never fetched).
    Pending { why: String },
}

/// What to do for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No cursor and nothing stored: a first delta round over `window`, written into the live
    /// set page by page; the deltaLink is stored with the last page.
    Initial,
    /// A delta round from the stored deltaLink over its window.
    Incremental {
        delta_link: DeltaLink,
        window: Window,
        rebased_at: Timestamp,
    },
    /// A full delta round over the target window into a shadow set, swapped in atomically when
    /// complete (live instances stay visible throughout).
    FullResync { reason: ResyncReason },
}

/// The plan for one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxPlan {
    pub mailbox_id: MailboxId,
    pub address: String,
    pub connection: String,
    pub action: Action,
    /// The window an initial round or a full resync uses (the re-based window at `now`).
    pub target: Window,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<LastError>,
    /// The last attempt as the planner saw it: a later one, seen once the lease is held, was
    /// another process's round (see [`SyncRequest::skip_synced_since_planned`]).
    pub seen_attempt: Option<Timestamp>,
}

impl MailboxPlan {
    /// The window this plan's round reads.
    pub fn window(&self) -> Window {
        match &self.action {
            Action::Incremental { window, .. } => *window,
            Action::Initial | Action::FullResync { .. } => self.target,
        }
    }
}

/// A whole plan: data, printable (`--dry-run`), executed by [`crate::Engine::execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub now: Timestamp,
    /// What was asked for: each mailbox is planned again from fresh state once its lease is
    /// held (another process may have synced it meanwhile).
    pub request: SyncRequest,
    pub mailboxes: Vec<MailboxPlan>,
}

/// Plans one mailbox. Pure.
pub fn plan_mailbox(state: &MailboxState, request: &SyncRequest, now: Timestamp) -> MailboxPlan {
    let target = request.window.window_at(now);
    let required = request.window.required(now);
    let action = match (&state.cursor, request.mode) {
        _ if state.resync_in_progress => Action::FullResync {
            reason: ResyncReason::Interrupted,
        },
        (Some(_), _) if state.pending_resync.is_some() => Action::FullResync {
            reason: ResyncReason::Pending {
                why: state.pending_resync.clone().unwrap_or_default(),
            },
        },
        (None, _) if state.live_instances == 0 => Action::Initial,
        (None, _) => Action::FullResync {
            reason: ResyncReason::NoCursor {
                live_instances: state.live_instances,
            },
        },
        (Some(_), SyncMode::Full) => Action::FullResync {
            reason: ResyncReason::Requested,
        },
        (Some(c), SyncMode::Incremental) => {
            let old = Window {
                start: c.window_start,
                end: c.window_end,
            };
            let unreadable = state
                .last_error
                .as_ref()
                .filter(|e| e.kind.distrusts_cursor());
            if let Some(e) = unreadable {
                Action::FullResync {
                    reason: ResyncReason::LastRoundUnreadable { kind: e.kind },
                }
            } else if old.start > required.start || old.end < required.end {
                Action::FullResync {
                    reason: ResyncReason::WindowMoved { old },
                }
            } else if now.duration_since(c.rebased_at) >= request.rebase_every {
                Action::FullResync {
                    reason: ResyncReason::Rebase {
                        last_base: c.rebased_at,
                    },
                }
            } else {
                Action::Incremental {
                    delta_link: DeltaLink::new(c.delta_link.clone()),
                    window: old,
                    rebased_at: c.rebased_at,
                }
            }
        }
    };
    MailboxPlan {
        mailbox_id: state.mailbox_id,
        address: state.address.clone(),
        connection: state.connection.clone(),
        action,
        target,
        last_success: state.last_success,
        last_error: state.last_error.clone(),
        seen_attempt: state.last_attempt,
    }
}

/// Plans every mailbox of `states` that the request selects, in a fair order: least recently
/// attempted first (never attempted first of all), then by address, with the connections
/// interleaved round-robin. The executor starts mailboxes in this order. Pure.
pub fn plan(states: &[MailboxState], request: &SyncRequest, now: Timestamp) -> Plan {
    let selected = |s: &MailboxState| {
        request.mailboxes.as_ref().is_none_or(|only| {
            only.iter()
                .any(|a| a.trim().eq_ignore_ascii_case(s.address.trim()))
        })
    };
    let mut chosen: Vec<&MailboxState> = states.iter().filter(|s| selected(s)).collect();
    chosen.sort_by(|a, b| {
        a.last_attempt
            .cmp(&b.last_attempt)
            .then_with(|| a.address.to_lowercase().cmp(&b.address.to_lowercase()))
    });
    Plan {
        now,
        request: request.clone(),
        mailboxes: round_robin(chosen)
            .into_iter()
            .map(|s| plan_mailbox(s, request, now))
            .collect(),
    }
}

/// Interleaves connections (in the order of their first mailbox), keeping each connection's
/// own order: a connection with many mailboxes does not hold the others back.
fn round_robin(sorted: Vec<&MailboxState>) -> Vec<&MailboxState> {
    let mut queues: Vec<(String, std::collections::VecDeque<&MailboxState>)> = Vec::new();
    for s in sorted {
        let key = s.connection.to_lowercase();
        match queues.iter_mut().find(|(k, _)| *k == key) {
            Some((_, q)) => q.push_back(s),
            None => queues.push((key, std::collections::VecDeque::from([s]))),
        }
    }
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for (_, q) in &mut queues {
            if let Some(s) = q.pop_front() {
                out.push(s);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// `2026-10-24..2027-11-23` (UTC dates; the end is exclusive).
pub(crate) struct DisplayWindow(pub Window);

impl fmt::Display for DisplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |t: Timestamp| t.to_zoned(TimeZone::UTC).date();
        write!(f, "{}..{}", d(self.0.start), d(self.0.end))
    }
}

fn date(t: Timestamp) -> jiff::civil::Date {
    t.to_zoned(TimeZone::UTC).date()
}

impl fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResyncReason::Requested => f.write_str("requested with --full"),
            ResyncReason::Rebase { last_base } => {
                write!(f, "window re-based: last base {}", date(*last_base))
            }
            ResyncReason::WindowMoved { old } => {
                write!(
                    f,
                    "window re-based: {} no longer covers the window",
                    DisplayWindow(*old)
                )
            }
            ResyncReason::Interrupted => f.write_str("the previous full resync did not finish"),
            ResyncReason::NoCursor { live_instances } => write!(
                f,
                "{live_instances} instances stored but no delta cursor: the first round did not finish"
            ),
            ResyncReason::LastRoundUnreadable { kind } => write!(
                f,
                "the last round failed ({kind}): the stored deltaLink is not trusted"
            ),
            ResyncReason::DeltaTokenExpired => {
                f.write_str("the delta token expired (410 Gone / SyncStateNotFound)")
            }
            ResyncReason::Pending { why } => f.write_str(why),
            ResyncReason::Relisted => {
                f.write_str("the service reported changed items: the window was listed again")
            }
        }
    }
}

impl fmt::Display for MailboxPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.address)?;
        match &self.action {
            Action::Initial => write!(f, "initial sync (window {})", DisplayWindow(self.target))?,
            Action::Incremental { window, .. } => write!(
                f,
                "incremental from deltaLink (window {})",
                DisplayWindow(*window)
            )?,
            Action::FullResync { reason } => write!(
                f,
                "full resync into shadow ({reason}; window {})",
                DisplayWindow(self.target)
            )?,
        }
        if let Some(e) = &self.last_error {
            write!(f, " [last attempt failed: {}]", e.kind)?;
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mailboxes.is_empty() {
            return writeln!(f, "nothing to sync: no linked mailbox matches");
        }
        for m in &self.mailboxes {
            writeln!(f, "{m}")?;
        }
        Ok(())
    }
}
