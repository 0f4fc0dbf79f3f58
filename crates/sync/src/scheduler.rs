//! The background scheduler of `calgate serve`: keeps every linked mailbox current on a cadence,
//! without any CLI call.
//!
//! - Every mailbox is due `cadence` (± `jitter`) after its last successful round; a failing
//!   mailbox backs off (1 minute, doubling, at most `max_backoff`) without holding the others.
//! - Due mailboxes are planned together (the planner interleaves connections: fair) and run on
//!   the engine, whose concurrency limit holds across everything in flight; a mailbox already
//!   running is not started twice (and another process's lease is respected by the engine).
//! - [`SchedulerHandle::sync_now`] makes a mailbox due at once (`POST …/sync`).
//! - [`SchedulerHandle::shutdown`] stops taking work and waits (bounded) for the rounds in
//!   flight; every round's writes are transactions, so one cut short loses nothing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use calgate_store::MailboxId;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::engine::{Engine, Summary};
use crate::plan::{MailboxState, SyncRequest, plan};

/// How the scheduler paces the mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Time between two rounds of a healthy mailbox (default 5 minutes).
    pub cadence: Duration,
    /// Spread: each due time moves by up to this much either way (default a tenth of the
    /// cadence), so that mailboxes linked together do not all run together forever.
    pub jitter: Duration,
    /// The longest back-off of a failing mailbox (default 1 hour).
    pub max_backoff: Duration,
    /// How often the scheduler looks for due mailboxes (default 1 second).
    pub tick: Duration,
    /// The request every round is planned with (window, re-base period).
    pub request: SyncRequest,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            cadence: Duration::from_secs(300),
            jitter: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            tick: Duration::from_secs(1),
            request: SyncRequest::default(),
        }
    }
}

/// Called with each batch's summary (metrics, logs).
pub type SummaryFn = Arc<dyn Fn(&Summary) + Send + Sync>;

struct Shared {
    engine: Engine,
    options: SchedulerOptions,
    /// Mailboxes asked for now (`sync_now`), by lowercase address.
    urgent: Mutex<HashSet<String>>,
    /// The schedule, behind one lock: picking and finishing rounds run on different workers
    /// at once, and with one lock per map they once took two in opposite orders and
    /// deadlocked both runtime workers (and with them the API).
    book: Mutex<Book>,
    wake: Notify,
    /// A push run is in flight (one at a time).
    pushing: std::sync::atomic::AtomicBool,
    /// The last time the loop went round (readiness).
    heartbeat: Mutex<Timestamp>,
    /// Mailboxes Graph notifies about, and the safety-net cadence they are polled at.
    notified: Mutex<Option<(crate::notify::NotifiedSet, Duration)>>,
    on_summary: Option<SummaryFn>,
}

#[derive(Default)]
struct Book {
    /// When each mailbox is due next (set after each round; absent: from its status).
    due: HashMap<MailboxId, Timestamp>,
    running: HashSet<MailboxId>,
    /// Consecutive failures seen by this scheduler (the back-off grows with them).
    failures: HashMap<MailboxId, u64>,
    /// When `due` was last set for each mailbox: a round recorded in the store after that was
    /// another process's, and the mailbox is due a cadence after it instead.
    decided: HashMap<MailboxId, Timestamp>,
}

/// A running scheduler.
#[derive(Clone)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    done: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// Starts the scheduler on the current tokio runtime.
pub fn spawn(
    engine: Engine,
    options: SchedulerOptions,
    on_summary: Option<SummaryFn>,
) -> SchedulerHandle {
    let shared = Arc::new(Shared {
        engine,
        options,
        urgent: Mutex::default(),
        book: Mutex::default(),
        wake: Notify::new(),
        pushing: std::sync::atomic::AtomicBool::new(false),
        heartbeat: Mutex::new(Timestamp::now()),
        notified: Mutex::new(None),
        on_summary,
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(shared.clone(), stopped));
    SchedulerHandle {
        shared,
        stop,
        done: Arc::new(tokio::sync::Mutex::new(Some(task))),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SchedulerHandle {
    /// Makes the mailbox due now; it starts within a tick unless it is running already.
    pub fn sync_now(&self, address: &str) {
        lock(&self.shared.urgent).insert(address.trim().to_lowercase());
        self.shared.wake.notify_one();
    }

    /// Polls the mailboxes in `set` (those Graph notifies about) only every `cadence`, as a
    /// safety net; the others stay on the configured cadence (half of it after a round that
    /// found changes).
    pub fn follow_notifications(&self, set: crate::notify::NotifiedSet, cadence: Duration) {
        *lock(&self.shared.notified) = Some((set, cadence));
    }

    /// Drains the push outbox on the next tick (a booking was put or deleted).
    pub fn push_now(&self) {
        self.shared.wake.notify_one();
    }

    /// When the loop last went round.
    pub fn heartbeat(&self) -> Timestamp {
        *lock(&self.shared.heartbeat)
    }

    /// Whether the scheduler has not been shut down and its loop went round within three
    /// ticks (plus 2 s).
    pub fn is_alive(&self) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        let limit = SignedDuration::try_from(self.shared.options.tick * 3 + Duration::from_secs(2))
            .unwrap_or(SignedDuration::from_secs(5));
        Timestamp::now().duration_since(self.heartbeat()) <= limit
    }

    /// Mailboxes in flight now.
    pub fn running(&self) -> usize {
        lock(&self.shared.book).running.len()
    }

    /// Stops taking work and waits up to `grace` for the rounds in flight; those still running
    /// then are dropped (their transactions are atomic: nothing half-written stays).
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        self.shared.wake.notify_one();
        let task = self.done.lock().await.take();
        if let Some(mut task) = task
            && tokio::time::timeout(grace, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

/// A healthy mailbox's next due time: `cadence` ± jitter after `from`.
fn next_due(
    options: &SchedulerOptions,
    mailbox: MailboxId,
    from: Timestamp,
    failures: u64,
) -> Timestamp {
    next_due_at(options, options.cadence, mailbox, from, failures)
}

/// [`next_due`] with another cadence for a healthy mailbox. The jitter is a hash of the
/// mailbox and `from`: the same in every process and on every tick, so that processes sharing
/// a store agree on when a mailbox is due after a round one of them ran.
fn next_due_at(
    options: &SchedulerOptions,
    cadence: Duration,
    mailbox: MailboxId,
    from: Timestamp,
    failures: u64,
) -> Timestamp {
    let delay = if failures == 0 {
        let jitter = options.jitter.as_millis() as i64;
        let spread = if jitter > 0 {
            let mut h =
                std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
            h.write_i64(mailbox.0);
            h.write_i64(from.as_millisecond());
            (h.finish() % (2 * jitter as u64 + 1)) as i64 - jitter
        } else {
            0
        };
        SignedDuration::try_from(cadence).unwrap_or(SignedDuration::from_secs(300))
            + SignedDuration::from_millis(spread)
    } else {
        let exp = failures.saturating_sub(1).min(20) as u32;
        let backoff = Duration::from_secs(60).saturating_mul(2u32.saturating_pow(exp));
        SignedDuration::try_from(backoff.min(options.max_backoff))
            .unwrap_or(SignedDuration::from_secs(3600))
    };
    from.checked_add(delay).unwrap_or(Timestamp::MAX)
}

impl Shared {
    /// When `s` is due: from the in-memory schedule, or from its status the first time and
    /// whenever another process (sharing the store) ran a round of it since this one decided.
    fn due_at(&self, book: &Book, s: &MailboxState, failures: u64) -> Timestamp {
        let from_status = || match s.last_attempt {
            None => Timestamp::MIN,
            Some(at) => next_due(&self.options, s.mailbox_id, at, failures),
        };
        let ran_elsewhere = book
            .decided
            .get(&s.mailbox_id)
            .is_some_and(|when| s.last_attempt.is_some_and(|at| at > *when));
        match book.due.get(&s.mailbox_id) {
            Some(d) if !ran_elsewhere => *d,
            _ => from_status(),
        }
    }

    /// The mailboxes to start now: (due on the cadence, asked for now).
    async fn pick(&self) -> (Vec<MailboxState>, Vec<MailboxState>) {
        let states = match self.engine.states().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the scheduler cannot read the mailboxes");
                return (Vec::new(), Vec::new());
            }
        };
        let failures: HashMap<MailboxId, u64> = match self.engine.store().statuses().await {
            Ok(st) => st
                .into_iter()
                .map(|s| (s.mailbox_id, s.consecutive_failures))
                .collect(),
            Err(_) => HashMap::new(),
        };
        let now = Timestamp::now();
        let urgent: HashSet<String> = std::mem::take(&mut *lock(&self.urgent));
        let mut book = lock(&self.book);
        let mut chosen = Vec::new();
        let mut asked = Vec::new();
        let mut left_urgent = HashSet::new();
        for s in states {
            let key = s.address.to_lowercase();
            if book.running.contains(&s.mailbox_id) {
                if urgent.contains(&key) {
                    left_urgent.insert(key);
                }
                continue;
            }
            let fails = failures.get(&s.mailbox_id).copied().unwrap_or(0);
            if urgent.contains(&key) {
                book.running.insert(s.mailbox_id);
                asked.push(s);
            } else if self.due_at(&book, &s, fails) <= now {
                book.running.insert(s.mailbox_id);
                chosen.push(s);
            }
        }
        drop(book);
        // Asked for while running: run again once this round is over.
        lock(&self.urgent).extend(left_urgent);
        (chosen, asked)
    }

    /// Records when each mailbox of a finished batch is due next.
    fn finished(&self, summary: &Summary) {
        let now = Timestamp::now();
        let notified = lock(&self.notified).clone();
        let mut book = lock(&self.book);
        let Book {
            due,
            running,
            failures,
            decided,
        } = &mut *book;
        for o in &summary.outcomes {
            running.remove(&o.mailbox_id);
            let n = match (&o.failure, &o.skipped) {
                // Another process is syncing it: look again after a cadence.
                (_, Some(_)) | (None, None) => {
                    failures.remove(&o.mailbox_id);
                    0
                }
                (Some(_), None) => {
                    let n = failures.entry(o.mailbox_id).or_insert(0);
                    *n += 1;
                    *n
                }
            };
            let notified_cadence = notified.as_ref().and_then(|(set, cadence)| {
                set.read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&o.mailbox_id)
                    .then_some(*cadence)
            });
            let cadence = match notified_cadence {
                // Graph tells calgate about changes: poll as a safety net only.
                Some(c) => c,
                // Changed in this round: it may change again soon.
                None if o.report.upserts + o.report.removals > 0 => {
                    (self.options.cadence / 2).max(Duration::from_secs(1).min(self.options.cadence))
                }
                None => self.options.cadence,
            };
            due.insert(
                o.mailbox_id,
                next_due_at(&self.options, cadence, o.mailbox_id, now, n),
            );
            decided.insert(o.mailbox_id, now);
        }
    }
}

async fn run(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut batches: JoinSet<()> = JoinSet::new();
    loop {
        *lock(&shared.heartbeat) = Timestamp::now();
        if *stopped.borrow() {
            break;
        }
        let (due, asked) = shared.pick().await;
        // On the cadence, a mailbox another process synced since it was planned is left
        // alone (instances sharing a store run it once); asked-for rounds always run.
        let once = SyncRequest {
            skip_synced_since_planned: true,
            ..shared.options.request.clone()
        };
        for (states, request) in [(due, once), (asked, shared.options.request.clone())] {
            if states.is_empty() {
                continue;
            }
            let p = plan(&states, &request, Timestamp::now());
            let s = shared.clone();
            batches.spawn(async move {
                match s.engine.execute(&p, None).await {
                    Ok(summary) => {
                        s.finished(&summary);
                        if let Some(cb) = &s.on_summary {
                            cb(&summary);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a scheduled sync could not run");
                        let mut book = lock(&s.book);
                        for m in &p.mailboxes {
                            book.running.remove(&m.mailbox_id);
                        }
                    }
                }
            });
        }
        // Push: drain the outbox when it has due work, one run at a time.
        if !shared.pushing.load(std::sync::atomic::Ordering::SeqCst) {
            match shared.engine.store().due_pushes(Timestamp::now(), 1).await {
                Ok(due) if !due.is_empty() => {
                    shared
                        .pushing
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    let s = shared.clone();
                    batches.spawn(async move {
                        match s.engine.push(&crate::push::PushOptions::default()).await {
                            Ok(summary) => tracing::info!(%summary, "pushed"),
                            Err(e) => {
                                tracing::warn!(error = %e, "the push outbox could not be drained")
                            }
                        }
                        s.pushing.store(false, std::sync::atomic::Ordering::SeqCst);
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the scheduler cannot read the push outbox"),
            }
        }
        while batches.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(shared.options.tick) => {}
            _ = shared.wake.notified() => {}
            _ = stopped.changed() => {}
        }
    }
    // Stop taking work; let the rounds in flight end (the caller bounds the wait).
    while batches.join_next().await.is_some() {}
}
