//! Push: drains the store's outbox into Exchange, exactly once.
//!
//! Each outbox entry is one target of one booking: make its event match the booking
//! (`upsert`) or remove it (`delete`). An attempt first *claims* the entry in the store (which
//! counts the attempt and hides the entry from other workers for [`PushOptions::hold`]), then
//! calls the backend, then records the outcome. A crash or a lost answer leaves the entry
//! claimed with `attempts > 0`; once the hold passes, the next attempt looks the event up by
//! calgate's marker in Exchange itself before it creates anything, and every create carries an
//! idempotency key (Graph's `transactionId`) derived from the entry. So no path creates a
//! second event for one target.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calgate_core::booking::{BookingMode, TargetRole};
use calgate_core::{FailureKind, Person};
use calgate_store::{Connection, PushOp, PushOutcome, PushTask, Store};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::Error;
use crate::backend::{Backend, BackendError, EventWrite, Written};
use crate::engine::Engine;

/// How a push run behaves.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// How long a claimed entry stays hidden from other workers (a crashed worker's entry is
    /// taken up again after it).
    pub hold: Duration,
    /// Entries read from the outbox at a time.
    pub batch: u32,
    /// Writes in flight at once, over all mailboxes (Graph's limit of 4 per mailbox holds
    /// beneath it).
    pub concurrency: usize,
    /// Stop after this long (the rest stays queued for the next run).
    pub max_time: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            hold: Duration::from_secs(60),
            batch: 500,
            concurrency: 64,
            max_time: Duration::from_secs(600),
        }
    }
}

/// What a push run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSummary {
    pub attempted: u64,
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
    /// Found in Exchange by the marker after an earlier attempt's outcome was unknown.
    pub recovered: u64,
    /// Extra copies found by the marker and removed (should stay 0).
    pub duplicates_removed: u64,
    pub retried: u64,
    pub failed: u64,
    pub gone_in_exchange: u64,
    /// Claimed by another worker meanwhile.
    pub skipped: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for PushSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pushed {} writes: {} created, {} updated, {} removed, {} recovered, {} to retry, {} failed, {} deleted in Exchange; {:.1} s",
            self.attempted,
            self.created,
            self.updated,
            self.removed,
            self.recovered,
            self.retried,
            self.failed,
            self.gone_in_exchange,
            self.elapsed.as_secs_f64()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Did {
    Created,
    Updated,
    Recovered,
    Removed,
}

/// The idempotency key of a create: stable across the attempts of one outbox entry, distinct
/// between entries, bookings and stores (the store's entry ids restart in a new store, so the
/// booking and target are part of it).
pub fn idempotency_key(task: &PushTask) -> String {
    let mut h = Sha256::new();
    h.update(task.external_id.as_bytes());
    h.update([0]);
    h.update(task.address.to_lowercase().as_bytes());
    h.update([0]);
    h.update(task.entry.to_be_bytes());
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("calgate-{hex}")
}

/// The event a task writes into its target's calendar.
fn event_of(task: &PushTask) -> EventWrite {
    let s = &task.spec;
    // Meeting mode: the organizer's event invites the other targets; every other mode and
    // target is a plain copy without attendees (no invitation is ever sent).
    let attendees = if s.mode == BookingMode::Meeting && task.role == TargetRole::Organizer {
        s.calendars
            .iter()
            .filter(|t| !t.address.eq_ignore_ascii_case(&task.address))
            .map(|t| Person {
                name: t.address.clone(),
                address: t.address.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    EventWrite {
        subject: s.subject.clone(),
        body: s.body.clone(),
        when: s.when.clone(),
        location: s.location.clone(),
        show_as: s.show_as,
        sensitivity: s.sensitivity,
        attendees,
        marker: task.external_id.clone(),
        rrule: s.recurrence.as_ref().map(|r| r.rrule.clone()),
    }
}

/// A series' cancelled and changed occurrences, applied to the series `master_id` after it was
/// written (a write of the master may have reset them, as Exchange does when the pattern or
/// times change). Idempotent: an occurrence already gone is fine.
async fn apply_exceptions(
    backend: &dyn crate::backend::CalendarBackend,
    task: &PushTask,
    master_id: &str,
) -> Result<(), BackendError> {
    let s = &task.spec;
    let Some(rec) = &s.recurrence else {
        return Ok(());
    };
    if rec.exdates.is_empty() && rec.overrides.is_empty() {
        return Ok(());
    }
    let tz = jiff::tz::TimeZone::get(&s.when.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let at = |dt: jiff::civil::DateTime| dt.to_zoned(tz.clone()).map(|z| z.timestamp()).ok();
    let starts: Vec<Timestamp> = rec
        .exdates
        .iter()
        .chain(rec.overrides.iter().map(|o| &o.original_start))
        .filter_map(|d| at(*d))
        .collect();
    let (Some(from), Some(to)) = (starts.iter().min(), starts.iter().max()) else {
        return Ok(());
    };
    let occurrences = backend
        .occurrences(
            &task.address,
            master_id,
            *from - SignedDuration::from_hours(1),
            *to + SignedDuration::from_hours(25),
        )
        .await?;
    let find = |start: Timestamp| {
        occurrences
            .iter()
            .find(|(_, s)| *s == start)
            .map(|(id, _)| id.clone())
    };
    for d in &rec.exdates {
        if let Some(id) = at(*d).and_then(find) {
            match backend.delete_event(&task.address, &id).await {
                Ok(()) => {}
                Err(e) if e.kind == FailureKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    for o in &rec.overrides {
        // Found by its original start, or where an earlier write moved it already.
        let Some(id) = at(o.original_start)
            .and_then(find)
            .or_else(|| find(o.start))
        else {
            continue;
        };
        let mut ev = event_of(task);
        ev.rrule = None;
        ev.when = calgate_core::When {
            start: o.start,
            end: o.end,
            time_zone: s.when.time_zone.clone(),
            all_day: None,
        };
        if let Some(subject) = &o.subject {
            ev.subject = subject.clone();
        }
        backend.update_event(&task.address, &id, &ev).await?;
    }
    Ok(())
}

/// In meeting mode only the organizer's calendar is written; the others get Exchange's copy.
fn writes_itself(task: &PushTask) -> bool {
    task.spec.mode == BookingMode::Direct || task.role == TargetRole::Organizer
}

fn backoff(attempts: u32) -> SignedDuration {
    let secs = 5u64.saturating_mul(1 << attempts.min(10)).min(900);
    SignedDuration::from_secs(secs as i64)
}

fn outcome_of_error(task: &PushTask, e: &BackendError) -> PushOutcome {
    let now = Timestamp::now();
    let later = |extra: SignedDuration| now.checked_add(extra).unwrap_or(now);
    match e.kind {
        FailureKind::Retryable
        | FailureKind::Store
        | FailureKind::DiskFull
        | FailureKind::Internal => PushOutcome::Retry {
            error: e.message.clone(),
            not_before: later(backoff(task.attempts)),
        },
        // The administrator may fix credentials: keep trying, slowly.
        FailureKind::Authentication | FailureKind::Config => PushOutcome::Retry {
            error: e.message.clone(),
            not_before: later(SignedDuration::from_secs(300)),
        },
        _ => PushOutcome::Failed {
            error: format!("{}: {}", task.address, e.message),
        },
    }
}

struct Backends {
    shared: calgate_graph::Shared,
    connections: HashMap<String, Connection>,
    /// Linked mailboxes: lowercase address → connection name.
    mailboxes: HashMap<String, String>,
    made: tokio::sync::Mutex<HashMap<String, Result<Backend, BackendError>>>,
}

impl Backends {
    async fn for_mailbox(&self, address: &str) -> Result<Backend, BackendError> {
        let Some(conn) = self.mailboxes.get(&address.to_lowercase()) else {
            return Err(BackendError::new(
                FailureKind::NotFound,
                format!(
                    "{address} is not linked to calgate: link it (`calgate mailbox link {address} --connection NAME`), then put the booking again"
                ),
            ));
        };
        let mut made = self.made.lock().await;
        if let Some(b) = made.get(conn) {
            return b.clone();
        }
        let made_now = match self.connections.get(&conn.to_lowercase()) {
            None => Err(BackendError::new(
                FailureKind::Config,
                format!("connection '{conn}' no longer exists"),
            )),
            Some(c) => crate::backend::app_backend(c, &self.shared),
        };
        made.insert(conn.clone(), made_now.clone());
        made_now
    }
}

impl Engine {
    /// Drains the outbox: every due entry once (those that must wait stay queued).
    pub async fn push(&self, options: &PushOptions) -> Result<PushSummary, Error> {
        let started = Instant::now();
        let store = self.store().clone();
        let connections = store
            .list_connections()
            .await?
            .into_iter()
            .map(|c| (c.name.to_lowercase(), c))
            .collect();
        let mailboxes = store
            .list_mailboxes()
            .await?
            .into_iter()
            .map(|m| (m.address.to_lowercase(), m.connection))
            .collect();
        let backends = Arc::new(Backends {
            shared: self.shared().clone(),
            connections,
            mailboxes,
            made: Default::default(),
        });
        let hold = SignedDuration::try_from(options.hold).unwrap_or(SignedDuration::from_secs(60));
        let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let mut summary = PushSummary::default();
        let mut seen = std::collections::HashSet::new();
        // One stream of writes: the next entries are read while earlier ones are in flight, so
        // no batch waits for its slowest write.
        let mut set: tokio::task::JoinSet<Result<Pushed, Error>> = tokio::task::JoinSet::new();
        loop {
            if started.elapsed() >= options.max_time {
                break;
            }
            let tasks = store.due_pushes(Timestamp::now(), options.batch).await?;
            // An entry seen in this run (retried, or in flight) is not started twice; one
            // superseded meanwhile (a new version) is.
            let tasks: Vec<PushTask> = tasks
                .into_iter()
                .filter(|t| seen.insert((t.entry, t.version, t.op)))
                .collect();
            if tasks.is_empty() {
                if set.is_empty() {
                    break;
                }
                // Let what is in flight finish, then look once more.
                while let Some(r) = set.join_next().await {
                    tally(&mut summary, r)?;
                }
                continue;
            }
            for task in tasks {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (store, backends) = (store.clone(), backends.clone());
                set.spawn(async move {
                    let r = push_one(store.as_ref(), &backends, &task, hold).await;
                    drop(permit);
                    r
                });
                while let Some(r) = set.try_join_next() {
                    tally(&mut summary, r)?;
                }
            }
        }
        while let Some(r) = set.join_next().await {
            tally(&mut summary, r)?;
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }
}

type Pushed = Option<(PushOutcome, Option<Did>, u64)>;

fn tally(
    summary: &mut PushSummary,
    r: Result<Result<Pushed, Error>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match r {
        Ok(Ok(Some((outcome, did, dups)))) => {
            summary.attempted += 1;
            summary.duplicates_removed += dups;
            match (&outcome, did) {
                (PushOutcome::Written { .. }, Some(Did::Created)) => summary.created += 1,
                (PushOutcome::Written { .. }, Some(Did::Recovered)) => summary.recovered += 1,
                (PushOutcome::Written { .. }, _) => summary.updated += 1,
                (PushOutcome::Removed, _) => summary.removed += 1,
                (PushOutcome::GoneInExchange, _) => summary.gone_in_exchange += 1,
                (PushOutcome::Retry { .. }, _) => summary.retried += 1,
                (PushOutcome::Failed { .. }, _) => summary.failed += 1,
            }
        }
        Ok(Ok(None)) => summary.skipped += 1,
        Ok(Err(e)) => return Err(e),
        Err(e) => tracing::error!(error = %e, "a push task stopped unexpectedly"),
    }
    Ok(())
}

/// One entry: claim, write, record. `None`: another worker has it.
async fn push_one(
    store: &dyn Store,
    backends: &Backends,
    task: &PushTask,
    hold: SignedDuration,
) -> Result<Pushed, Error> {
    if !store.claim_push(task.entry, Timestamp::now(), hold).await? {
        return Ok(None);
    }
    let backend = backends.for_mailbox(&task.address).await;
    let (outcome, did, dups) = match &backend {
        Err(e) => (outcome_of_error(task, e), None, 0),
        Ok(backend) => match attempt(backend.as_ref(), task).await {
            Ok((o, did, dups)) => (o, did, dups),
            Err(e) => (outcome_of_error(task, &e), None, 0),
        },
    };
    match &outcome {
        PushOutcome::Failed { error } | PushOutcome::Retry { error, .. } => {
            tracing::warn!(booking = %task.external_id, mailbox = %task.address, %error, "a push did not go through");
        }
        _ => {}
    }
    store.finish_push(task, &outcome).await?;
    // Meeting mode: the answers of the invited calendars, as the organizer's event shows them
    // (rooms and equipment answer by their booking policy).
    if task.spec.mode == BookingMode::Meeting
        && task.role == TargetRole::Organizer
        && let (Ok(backend), PushOutcome::Written { exchange_id, .. }) = (&backend, &outcome)
    {
        match backend.responses(&task.address, exchange_id).await {
            Ok(answers) => store.record_responses(&task.external_id, &answers).await?,
            Err(e) => {
                tracing::warn!(booking = %task.external_id, error = %e, "could not read the meeting's answers")
            }
        }
    }
    Ok(Some((outcome, did, dups)))
}

fn written(w: Written) -> PushOutcome {
    PushOutcome::Written {
        exchange_id: w.exchange_id,
        ical_uid: w.ical_uid,
        web_link: w.web_link,
        change_key: w.change_key,
    }
}

/// The backend calls of one attempt.
async fn attempt(
    backend: &dyn crate::backend::CalendarBackend,
    task: &PushTask,
) -> Result<(PushOutcome, Option<Did>, u64), BackendError> {
    let mailbox = task.address.as_str();
    match task.op {
        PushOp::Upsert => {
            if !writes_itself(task) {
                // Meeting mode: Exchange puts the organizer's meeting into this calendar.
                return Ok((
                    PushOutcome::Written {
                        exchange_id: String::new(),
                        ical_uid: task.ical_uid.clone(),
                        web_link: None,
                        change_key: None,
                    },
                    Some(Did::Updated),
                    0,
                ));
            }
            let event = event_of(task);
            if let Some(id) = task.exchange_id.as_deref().filter(|id| !id.is_empty()) {
                return match backend.update_event(mailbox, id, &event).await {
                    Ok(w) => {
                        apply_exceptions(backend, task, &w.exchange_id).await?;
                        Ok((written(w), Some(Did::Updated), 0))
                    }
                    Err(e) if e.kind == FailureKind::NotFound => {
                        Ok((PushOutcome::GoneInExchange, None, 0))
                    }
                    Err(e) => Err(e),
                };
            }
            // No event known. After an attempt whose outcome is unknown, look in Exchange first.
            if task.attempts > 0 {
                let mut found = backend.find_pushed(mailbox, &task.external_id).await?;
                if !found.is_empty() {
                    // Keep one; remove any extra copy (there should be none).
                    found.sort_by(|a, b| a.exchange_id.cmp(&b.exchange_id));
                    let keep = found.remove(0);
                    let mut dups = 0;
                    for extra in &found {
                        match backend.delete_event(mailbox, &extra.exchange_id).await {
                            Ok(()) => dups += 1,
                            Err(e) if e.kind == FailureKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let w = backend
                        .update_event(mailbox, &keep.exchange_id, &event)
                        .await?;
                    apply_exceptions(backend, task, &w.exchange_id).await?;
                    return Ok((written(w), Some(Did::Recovered), dups));
                }
            }
            let w = backend
                .create_event(mailbox, &event, &idempotency_key(task))
                .await?;
            apply_exceptions(backend, task, &w.exchange_id).await?;
            Ok((written(w), Some(Did::Created), 0))
        }
        PushOp::Delete => {
            if !writes_itself(task) {
                return Ok((PushOutcome::Removed, Some(Did::Removed), 0));
            }
            let mut ids: Vec<String> = task
                .exchange_id
                .iter()
                .filter(|id| !id.is_empty())
                .cloned()
                .collect();
            if ids.is_empty() || task.attempts > 0 {
                for f in backend.find_pushed(mailbox, &task.external_id).await? {
                    if !ids.contains(&f.exchange_id) {
                        ids.push(f.exchange_id);
                    }
                }
            }
            for id in &ids {
                match backend.delete_event(mailbox, id).await {
                    Ok(()) => {}
                    Err(e) if e.kind == FailureKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((PushOutcome::Removed, Some(Did::Removed), 0))
        }
    }
}

/// What `purge` found (and removed) in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedMailbox {
    pub address: String,
    pub found: usize,
    pub removed: usize,
    /// Why the mailbox could not be searched or cleaned, if so.
    pub error: Option<String>,
}

/// What `reconcile` found in Exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// calgate's events found in the connection's mailboxes.
    pub found: u64,
    /// Of those, events a booking's target did not know (now recorded).
    pub adopted: u64,
    /// Events of bookings (or targets) this store does not have.
    pub unknown: u64,
    /// Mailboxes that could not be searched: (address, why).
    pub errors: Vec<(String, String)>,
}

impl Engine {
    /// The named connection and an app-only backend for it.
    pub(crate) async fn connection_backend(
        &self,
        connection: &str,
    ) -> Result<(Connection, Backend), Error> {
        let conn = self.store().connection(connection).await?.ok_or_else(|| {
            Error::Config(format!(
                "there is no connection '{connection}' (see `calgate connection list`)"
            ))
        })?;
        let backend = crate::backend::app_backend(&conn, self.shared()).map_err(Error::Backend)?;
        Ok((conn, backend))
    }

    /// Rebuilds the booking ↔ Exchange mapping from Exchange alone: every event carrying
    /// calgate's marker in the connection's linked mailboxes is recorded on its booking's
    /// target. Run it before pushing into a store that lost its mapping.
    pub async fn reconcile(&self, connection: &str) -> Result<Reconciled, Error> {
        let store = self.store().clone();
        let (conn, backend) = self.connection_backend(connection).await?;
        let mut out = Reconciled::default();
        for m in store.list_mailboxes().await? {
            if !m.connection.eq_ignore_ascii_case(&conn.name) {
                continue;
            }
            match backend.find_all_pushed(&m.address, 1_000_000).await {
                Err(e) => out.errors.push((m.address.clone(), e.message)),
                Ok(found) => {
                    for w in found {
                        out.found += 1;
                        let Some(marker) = &w.marker else {
                            out.unknown += 1;
                            continue;
                        };
                        let known = store.booking(marker).await?.is_some_and(|b| {
                            b.targets
                                .iter()
                                .any(|t| t.address.eq_ignore_ascii_case(&m.address))
                        });
                        if !known {
                            out.unknown += 1;
                        } else if store
                            .adopt_pushed(
                                marker,
                                &m.address,
                                &w.exchange_id,
                                w.ical_uid.as_deref(),
                                w.web_link.as_deref(),
                                w.change_key.as_deref(),
                            )
                            .await?
                        {
                            out.adopted += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Finds, in Exchange itself, every event calgate created in the mailboxes linked through
    /// `connection` (by calgate's owner property) and, unless `dry_run`, deletes exactly those.
    pub async fn purge(
        &self,
        connection: &str,
        dry_run: bool,
    ) -> Result<Vec<PurgedMailbox>, Error> {
        let store = self.store().clone();
        let (conn, backend) = self.connection_backend(connection).await?;
        let mut out = Vec::new();
        for m in store.list_mailboxes().await? {
            if !m.connection.eq_ignore_ascii_case(&conn.name) {
                continue;
            }
            let mut report = PurgedMailbox {
                address: m.address.clone(),
                found: 0,
                removed: 0,
                error: None,
            };
            match backend.find_all_pushed(&m.address, 1_000_000).await {
                Err(e) => report.error = Some(e.message),
                Ok(found) => {
                    report.found = found.len();
                    if !dry_run {
                        for f in &found {
                            match backend.delete_event(&m.address, &f.exchange_id).await {
                                Ok(()) => report.removed += 1,
                                Err(e) if e.kind == FailureKind::NotFound => {}
                                Err(e) => {
                                    report.error = Some(e.message);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            out.push(report);
        }
        Ok(out)
    }
}
