//! The scheduler: reads every linked mailbox's state, plans, and executes the plan over all
//! connections with bounded concurrency, recording each mailbox's status.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use calgate_core::{CredentialId, FailureKind};
use calgate_graph::Shared;
use calgate_store::{
    Connection, Lease, LeaseGrant, LeaseHolder, LeaseInfo, MailboxId, Store, SyncCounters,
    SyncOutcome, SyncStatusUpdate,
};
use jiff::Timestamp;
use tokio::sync::{OnceCell, Semaphore};

use crate::Error;
use crate::backend::{Backend, BackendError, graph::GraphBackend};
use crate::executor::{DeletionGuard, MailboxRun, RoundReport};
use crate::plan::{LastError, MailboxPlan, MailboxState, Plan, SyncRequest, plan, plan_mailbox};

/// Default number of mailboxes synced at once (each with ≤ 4 requests in flight).
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Default delta page size (`Prefer: odata.maxpagesize`).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// How long a mailbox's sync lease lasts without a write or renewal (renewed every third of
/// it while the round runs). A process that dies holds its leases at most this long — less on
/// the same host, where a dead process's leases are taken at once.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// How the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Mailboxes synced at once, over all connections (at least 1).
    pub concurrency: usize,
    /// Delta page size asked of Graph.
    pub page_size: u32,
    /// How long a mailbox's sync lease lasts between renewals.
    pub lease_ttl: Duration,
    /// Who holds the leases this engine takes (this process unless a test says otherwise).
    pub lease_holder: LeaseHolder,
    /// The bulk-delete circuit breaker.
    pub deletion_guard: DeletionGuard,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            concurrency: DEFAULT_CONCURRENCY,
            page_size: DEFAULT_PAGE_SIZE,
            lease_ttl: DEFAULT_LEASE_TTL,
            lease_holder: LeaseHolder::this_process(),
            deletion_guard: DeletionGuard::default(),
        }
    }
}

/// Running totals of a sync run, as a progress bar shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub mailboxes_total: u64,
    /// Finished, successfully or not, or skipped.
    pub mailboxes_done: u64,
    pub mailboxes_failed: u64,
    /// Left alone because another process holds their sync lease.
    pub mailboxes_skipped: u64,
    pub events_upserted: u64,
    pub events_removed: u64,
    /// HTTP requests to Graph during the run (retries included; from the graph client).
    pub requests: u64,
    /// Throttled answers (429) during the run.
    pub throttled: u64,
}

/// What just happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    Started,
    MailboxStarted {
        address: String,
    },
    /// One delta page stored (into the live or the shadow set).
    Page {
        address: String,
        upserts: u64,
        removals: u64,
    },
    MailboxFinished {
        address: String,
        /// `None` on success, else the failure's class.
        failed: Option<FailureKind>,
    },
    /// Another process holds the mailbox's sync lease: this run leaves it alone.
    MailboxSkipped {
        address: String,
        /// Who holds it (`pid N on HOST`).
        holder: String,
    },
    Finished,
}

/// A progress report: the event and the totals after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub event: ProgressEvent,
    pub totals: Totals,
}

/// Receives progress reports; called from several tasks at once, so keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Counts and forwards progress.
pub(crate) struct Reporter {
    callback: Option<ProgressFn>,
    shared: Shared,
    baseline: calgate_graph::MetricsSnapshot,
    total: u64,
    done: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    upserted: AtomicU64,
    removed: AtomicU64,
}

impl Reporter {
    fn new(callback: Option<ProgressFn>, shared: Shared, total: u64) -> Reporter {
        Reporter {
            callback,
            baseline: shared.metrics(),
            shared,
            total,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            upserted: AtomicU64::new(0),
            removed: AtomicU64::new(0),
        }
    }

    fn totals(&self) -> Totals {
        let m = self.shared.metrics();
        Totals {
            mailboxes_total: self.total,
            mailboxes_done: self.done.load(Ordering::Relaxed),
            mailboxes_failed: self.failed.load(Ordering::Relaxed),
            mailboxes_skipped: self.skipped.load(Ordering::Relaxed),
            events_upserted: self.upserted.load(Ordering::Relaxed),
            events_removed: self.removed.load(Ordering::Relaxed),
            requests: m.requests_sent.saturating_sub(self.baseline.requests_sent),
            throttled: m.throttled.saturating_sub(self.baseline.throttled),
        }
    }

    pub(crate) fn emit(&self, event: ProgressEvent) {
        match &event {
            ProgressEvent::Page {
                upserts, removals, ..
            } => {
                self.upserted.fetch_add(*upserts, Ordering::Relaxed);
                self.removed.fetch_add(*removals, Ordering::Relaxed);
            }
            ProgressEvent::MailboxFinished { failed, .. } => {
                self.done.fetch_add(1, Ordering::Relaxed);
                if failed.is_some() {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            ProgressEvent::MailboxSkipped { .. } => {
                self.done.fetch_add(1, Ordering::Relaxed);
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if let Some(cb) = &self.callback {
            cb(&Progress {
                event,
                totals: self.totals(),
            });
        }
    }
}

/// Why a mailbox failed, as recorded in its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// One line in an administrator's words, with the fix.
    pub message: String,
    pub next_action: String,
}

/// What happened to one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxOutcome {
    pub mailbox_id: MailboxId,
    pub address: String,
    pub connection: String,
    /// The plan line that was executed.
    pub planned: String,
    pub report: RoundReport,
    pub failure: Option<Failure>,
    /// Set when the mailbox was skipped: another process holds its sync lease.
    pub skipped: Option<LeaseInfo>,
    /// Set when the mailbox was left alone because another process finished a round of it
    /// after this run was planned (at this time; see
    /// [`SyncRequest::skip_synced_since_planned`](crate::SyncRequest)).
    pub synced_elsewhere: Option<Timestamp>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub totals: Totals,
    /// Requests sent again after a throttled or failed attempt (during the run).
    pub retries: u64,
    /// The most requests in flight to one mailbox at once (process-wide high-water mark).
    pub peak_mailbox_concurrency: u64,
    pub full_resyncs: u64,
    pub elapsed: Duration,
    /// Per mailbox, in plan order.
    pub outcomes: Vec<MailboxOutcome>,
    /// Credentials the service reported as expired during the run, now recorded as such.
    pub learned_expiries: Vec<LearnedExpiry>,
}

/// A credential the service reported as expired (Entra ID: AADSTS7000222), recorded in the
/// store as expired at the moment it was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedExpiry {
    pub connection: String,
    pub credential: CredentialId,
    pub at: Timestamp,
}

impl Summary {
    pub fn failures(&self) -> impl Iterator<Item = &MailboxOutcome> {
        self.outcomes.iter().filter(|o| o.failure.is_some())
    }
    /// The mailboxes left alone because another process was syncing them.
    pub fn skipped(&self) -> impl Iterator<Item = (&MailboxOutcome, &LeaseInfo)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.skipped.as_ref().map(|l| (o, l)))
    }
    pub fn is_success(&self) -> bool {
        self.totals.mailboxes_failed == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        write!(
            f,
            "{} of {} mailboxes synced, {} failed, {} skipped; {} events upserted, {} removed; {} requests, {} throttled; {:.1}s",
            t.mailboxes_done - t.mailboxes_failed - t.mailboxes_skipped,
            t.mailboxes_total,
            t.mailboxes_failed,
            t.mailboxes_skipped,
            t.events_upserted,
            t.events_removed,
            t.requests,
            t.throttled,
            self.elapsed.as_secs_f64()
        )
    }
}

/// A connection's backend for one run, made once: the backend (kept even when signing in
/// failed, to learn which credential was refused) and the sign-in's failure, if any.
type ClientCell = Arc<OnceCell<(Option<Backend>, Option<BackendError>)>>;

/// The sync engine: plan → execute over every linked mailbox.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    shared: Shared,
    options: EngineOptions,
    /// Connected accounts' clients, kept across runs (delegated.rs).
    delegated: crate::delegated::DelegatedClients,
    /// Mailboxes in flight, over every run of this engine at once (`concurrency`).
    slots: Arc<Semaphore>,
    /// Lowers the mailboxes in flight while Graph answers 429, and raises them back.
    limit: Arc<AdaptiveLimit>,
}

/// The fewest mailboxes in flight that 429s bring the engine down to.
const ADAPTIVE_FLOOR: usize = 4;

/// The mailboxes-in-flight limit under throttling. It starts at the configured concurrency
/// (the cap, never exceeded); when Graph answered 429 since the last look it halves (down to
/// [`ADAPTIVE_FLOOR`]), and after as many mailboxes as the limit started with no new 429 it
/// grows back by one. Lowering takes permits out of the engine's semaphore into a reserve
/// (as they come free: mailboxes in flight finish first); raising gives one back.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    cap: usize,
    state: std::sync::Mutex<LimitState>,
}

#[derive(Debug, Default)]
struct LimitState {
    reserve: Vec<tokio::sync::OwnedSemaphorePermit>,
    /// How many permits the reserve should hold.
    withheld: usize,
    seen_throttled: u64,
    calm: usize,
}

impl AdaptiveLimit {
    pub(crate) fn new(cap: usize) -> AdaptiveLimit {
        AdaptiveLimit {
            cap: cap.max(1),
            state: Default::default(),
        }
    }

    /// The limit now.
    pub(crate) fn current(&self) -> usize {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.cap - st.withheld
    }

    /// Called before a mailbox takes its slot, with the 429s counted so far. Returns how many
    /// more permits the reserve needs: the caller waits for them (ahead of its own slot, the
    /// semaphore is fair) and hands them over with [`AdaptiveLimit::stash`].
    pub(crate) fn observe(&self, slots: &Arc<Semaphore>, throttled: u64) -> usize {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let floor = ADAPTIVE_FLOOR.min(self.cap);
        let limit = self.cap - st.withheld;
        if throttled > st.seen_throttled {
            st.seen_throttled = throttled;
            st.calm = 0;
            let lower = (limit / 2).max(floor);
            if lower < limit {
                st.withheld = self.cap - lower;
                tracing::info!(
                    from = limit,
                    to = lower,
                    "Graph is throttling (429): fewer mailboxes at once"
                );
            }
        } else if st.withheld > 0 {
            st.calm += 1;
            if st.calm >= self.cap {
                st.calm = 0;
                st.withheld -= 1;
            }
        }
        while st.reserve.len() > st.withheld {
            st.reserve.pop();
        }
        while st.reserve.len() < st.withheld {
            match slots.clone().try_acquire_owned() {
                Ok(p) => st.reserve.push(p),
                Err(_) => break,
            }
        }
        st.withheld - st.reserve.len()
    }

    /// Puts a permit into the reserve (or back, if the limit rose meanwhile).
    pub(crate) fn stash(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.reserve.len() < st.withheld {
            st.reserve.push(permit);
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, shared: Shared, options: EngineOptions) -> Engine {
        let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
        Engine {
            store,
            shared,
            limit: Arc::new(AdaptiveLimit::new(options.concurrency)),
            options,
            delegated: Default::default(),
            slots,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Every linked mailbox's state, read from the store in one query.
    pub async fn states(&self) -> Result<Vec<MailboxState>, Error> {
        Ok(self
            .store
            .sync_states()
            .await?
            .into_iter()
            .map(mailbox_state)
            .collect())
    }

    /// The plan for `request` at `now` (`--dry-run` prints it).
    pub async fn plan(&self, request: &SyncRequest, now: Timestamp) -> Result<Plan, Error> {
        Ok(plan(&self.states().await?, request, now))
    }

    /// Plans at the current time and executes.
    pub async fn sync(
        &self,
        request: &SyncRequest,
        progress: Option<ProgressFn>,
    ) -> Result<Summary, Error> {
        let plan = self.plan(request, Timestamp::now()).await?;
        self.execute(&plan, progress).await
    }

    /// Executes `plan`: mailboxes start in plan order (fair), at most
    /// [`EngineOptions::concurrency`] at once over every run of this engine (a background
    /// scheduler may run several plans at a time); one mailbox's failure never stops the
    /// others.
    /// Each mailbox's status is recorded. `Err` only if the store cannot list connections.
    pub async fn execute(
        &self,
        plan: &Plan,
        progress: Option<ProgressFn>,
    ) -> Result<Summary, Error> {
        let started = Instant::now();
        let metrics_before = self.shared.metrics();
        let reporter = Arc::new(Reporter::new(
            progress,
            self.shared.clone(),
            plan.mailboxes.len() as u64,
        ));
        reporter.emit(crate::ProgressEvent::Started);
        let connections: HashMap<String, Connection> = self
            .store
            .list_connections()
            .await?
            .into_iter()
            .map(|c| (c.name.to_lowercase(), c))
            .collect();
        let connections = Arc::new(connections);
        // Mailboxes reached through a connected account use its delegated token (delegated.rs).
        let accounts = self.store.list_accounts().await?;
        let mut cells: HashMap<String, ClientCell> = HashMap::new();
        let semaphore = self.slots.clone();
        let mut tasks = Vec::with_capacity(plan.mailboxes.len());
        for mp in &plan.mailboxes {
            let account = crate::delegated::account_for(&accounts, &mp.connection, &mp.address);
            let key = match account {
                Some(a) => format!("{}\0account\0{}", mp.connection.to_lowercase(), a.id),
                None => mp.connection.to_lowercase(),
            };
            let cell = cells.entry(key).or_default().clone();
            let owed = self
                .limit
                .observe(&semaphore, self.shared.metrics().throttled);
            for _ in 0..owed {
                match semaphore.clone().acquire_owned().await {
                    Ok(p) => self.limit.stash(p),
                    Err(_) => break,
                }
            }
            let Ok(permit) = semaphore.clone().acquire_owned().await else {
                break;
            };
            let task = MailboxTask {
                store: self.store.clone(),
                shared: self.shared.clone(),
                options: self.options.clone(),
                connections: connections.clone(),
                cell,
                account: account.cloned(),
                delegated: self.delegated.clone(),
                plan: mp.clone(),
                request: plan.request.clone(),
                now: plan.now,
                reporter: reporter.clone(),
            };
            let handle = tokio::spawn(async move {
                let outcome = task.run().await;
                drop(permit);
                outcome
            });
            tasks.push((mp, handle));
        }
        let mut outcomes = Vec::with_capacity(tasks.len());
        for (mp, handle) in tasks {
            match handle.await {
                Ok(o) => outcomes.push(o),
                Err(e) => {
                    tracing::error!(mailbox = %mp.address, error = %e, "a mailbox's sync task failed");
                    reporter.emit(ProgressEvent::MailboxFinished {
                        address: mp.address.clone(),
                        failed: Some(FailureKind::Internal),
                    });
                    outcomes.push(MailboxOutcome {
                        mailbox_id: mp.mailbox_id,
                        address: mp.address.clone(),
                        connection: mp.connection.clone(),
                        planned: mp.to_string(),
                        report: RoundReport::default(),
                        failure: Some(Failure {
                            kind: FailureKind::Internal,
                            message: format!("calgate's sync task for {} stopped unexpectedly ({e}); please report this", mp.address),
                            next_action: "retry on the next run".to_owned(),
                        }),
                        skipped: None,
                        synced_elsewhere: None,
                    });
                }
            }
        }
        let limit = self.limit.current();
        if limit < self.options.concurrency {
            tracing::info!(
                limit,
                cap = self.options.concurrency,
                "Graph throttled this run: mailboxes in flight are still lowered"
            );
        }
        let learned_expiries = self.record_learned_expiries(&cells, &connections).await;
        // What the rounds saw of calgate's own events: edits put back, deletions reported.
        match self.store.reconcile_pushed().await {
            Ok((0, 0)) => {}
            Ok((requeued, gone)) => tracing::info!(
                requeued,
                gone,
                "calgate's events changed in Exchange: edits are put back, deletions reported"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not compare calgate's events with Exchange")
            }
        }
        reporter.emit(ProgressEvent::Finished);
        let after = self.shared.metrics();
        Ok(Summary {
            totals: reporter.totals(),
            retries: after.retries.saturating_sub(metrics_before.retries),
            peak_mailbox_concurrency: after.peak_mailbox_concurrency,
            full_resyncs: outcomes.iter().map(|o| o.report.full_resyncs).sum(),
            elapsed: started.elapsed(),
            outcomes,
            learned_expiries,
        })
    }

    /// Records as expired the credentials a backend of this run saw refused as expired, unless
    /// an expiry at or before now is recorded already.
    async fn record_learned_expiries(
        &self,
        cells: &HashMap<String, ClientCell>,
        connections: &HashMap<String, Connection>,
    ) -> Vec<LearnedExpiry> {
        let now = Timestamp::now();
        let mut learned = Vec::new();
        for cell in cells.values() {
            let Some((Some(backend), _)) = cell.get() else {
                continue;
            };
            for id in backend.expired_credentials() {
                let Some(conn) = connections
                    .values()
                    .find(|c| c.credentials.iter().any(|k| k.id == id))
                else {
                    continue;
                };
                let known = conn
                    .credentials
                    .iter()
                    .any(|k| k.id == id && k.expires_at.is_some_and(|at| at <= now));
                if known || learned.iter().any(|l: &LearnedExpiry| l.credential == id) {
                    continue;
                }
                match self.store.set_credential_expiry(id, Some(now)).await {
                    Ok(true) => {
                        tracing::warn!(
                            connection = %conn.name,
                            credential = %id,
                            "Entra ID reports the client secret as expired (AADSTS7000222); recorded"
                        );
                        learned.push(LearnedExpiry {
                            connection: conn.name.clone(),
                            credential: id,
                            at: now,
                        });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not record a credential's expiry")
                    }
                }
            }
        }
        learned
    }
}

/// What the planner needs of one mailbox.
fn mailbox_state(s: calgate_store::MailboxSyncState) -> MailboxState {
    let status = &s.status;
    MailboxState {
        mailbox_id: s.mailbox.id,
        cursor: s.cursor,
        resync_in_progress: status.resync_in_progress,
        live_instances: s.live_instances,
        last_attempt: status.last_attempt,
        last_success: status.last_success,
        last_error: status.last_error.as_ref().map(|e| LastError {
            kind: e.kind,
            message: e.message.clone(),
        }),
        pending_resync: s.mailbox.pending_resync,
        address: s.mailbox.address,
        connection: s.mailbox.connection,
    }
}

/// One mailbox's work, owned by its task.
struct MailboxTask {
    store: Arc<dyn Store>,
    shared: Shared,
    options: EngineOptions,
    connections: Arc<HashMap<String, Connection>>,
    cell: ClientCell,
    /// The connected account whose delegated token reaches this mailbox, if any.
    account: Option<calgate_store::Account>,
    delegated: crate::delegated::DelegatedClients,
    plan: MailboxPlan,
    request: SyncRequest,
    now: Timestamp,
    reporter: Arc<Reporter>,
}

impl MailboxTask {
    /// The connection's backend, made (and signed in) once per run: a wrong secret is reported
    /// for every mailbox of the connection after one token request, not one each.
    async fn backend(&self) -> Result<Backend, Error> {
        let made = self
            .cell
            .get_or_init(|| async {
                let Some(c) = self.connections.get(&self.plan.connection.to_lowercase()) else {
                    let e = BackendError::new(
                        FailureKind::Config,
                        format!(
                            "connection '{}' no longer exists: link {} to another connection or unlink it",
                            self.plan.connection, self.plan.address
                        ),
                    );
                    return (None, Some(e));
                };
                let made = match &self.account {
                    Some(a) => self
                        .delegated
                        .get_or_make(self.store.clone(), &self.shared, c, a)
                        .map(|client| Arc::new(GraphBackend::new(client)) as Backend)
                        .map_err(BackendError::from),
                    None => crate::backend::app_backend(c, &self.shared),
                };
                let backend: Backend = match made {
                    Ok(b) => b,
                    Err(e) => return (None, Some(e)),
                };
                match backend.sign_in().await {
                    Ok(()) => (Some(backend), None),
                    // Transient: let each mailbox try (and retry) on its own.
                    Err(e) if e.kind == FailureKind::Retryable => (Some(backend), None),
                    Err(e) => (Some(backend), Some(e)),
                }
            })
            .await;
        match made {
            (_, Some(e)) => Err(Error::Backend(e.clone())),
            (Some(b), None) => Ok(b.clone()),
            (None, None) => Err(Error::Config("no backend was made".to_owned())),
        }
    }

    /// The mailbox's plan made again from its state now that the lease is held: another
    /// process may have synced it since the run was planned. `None`: it was unlinked.
    async fn fresh_plan(&self) -> Result<Option<MailboxPlan>, Error> {
        let Some(state) = self.store.sync_state(&self.plan.address).await? else {
            return Ok(None);
        };
        let state = mailbox_state(state);
        Ok(Some(plan_mailbox(&state, &self.request, self.now)))
    }

    fn outcome(&self, report: RoundReport, failure: Option<Failure>) -> MailboxOutcome {
        MailboxOutcome {
            mailbox_id: self.plan.mailbox_id,
            address: self.plan.address.clone(),
            connection: self.plan.connection.clone(),
            planned: self.plan.to_string(),
            report,
            failure,
            skipped: None,
            synced_elsewhere: None,
        }
    }

    async fn run(mut self) -> MailboxOutcome {
        let address = self.plan.address.clone();
        self.reporter.emit(ProgressEvent::MailboxStarted {
            address: address.clone(),
        });
        let attempted_at = Timestamp::now();
        let ttl = jiff::SignedDuration::try_from(self.options.lease_ttl)
            .unwrap_or(jiff::SignedDuration::from_secs(60));
        let grant = self
            .store
            .acquire_lease(self.plan.mailbox_id, &self.options.lease_holder, ttl)
            .await;
        let lease = match grant {
            Ok(LeaseGrant::Acquired(l)) => l,
            Ok(LeaseGrant::Held(info)) => {
                tracing::info!(mailbox = %address, holder = %info.holder, "skipped: another process is syncing it");
                self.reporter.emit(ProgressEvent::MailboxSkipped {
                    address: address.clone(),
                    holder: info.holder.to_string(),
                });
                let mut o = self.outcome(RoundReport::default(), None);
                o.skipped = Some(info);
                return o;
            }
            Err(e) => {
                return self
                    .finish(attempted_at, RoundReport::default(), Err(e.into()), None)
                    .await;
            }
        };
        let seen = self.plan.seen_attempt;
        let result = match self.fresh_plan().await {
            Ok(Some(p))
                if self.request.skip_synced_since_planned
                    && p.seen_attempt.is_some_and(|at| Some(at) > seen) =>
            {
                // Another process ran a round of it after this one was planned: once per
                // cadence is enough.
                let at = p.seen_attempt;
                if let Err(e) = self.store.release_lease(&lease).await {
                    tracing::warn!(mailbox = %address, error = %e, "could not release the sync lease");
                }
                tracing::debug!(mailbox = %address, "skipped: another process synced it since this round was planned");
                self.reporter.emit(ProgressEvent::MailboxSkipped {
                    address: address.clone(),
                    holder: "another calgate process (it synced the mailbox moments ago)"
                        .to_owned(),
                });
                let mut o = self.outcome(RoundReport::default(), None);
                o.synced_elsewhere = at;
                return o;
            }
            Ok(Some(p)) => {
                self.plan = p;
                let mut report = RoundReport::default();
                let r = self.run_leased(&lease, &mut report).await;
                (report, r)
            }
            Ok(None) => (
                RoundReport::default(),
                Err(Error::Config(format!(
                    "{address} was unlinked while the sync ran"
                ))),
            ),
            Err(e) => (RoundReport::default(), Err(e)),
        };
        self.finish(attempted_at, result.0, result.1, Some(&lease))
            .await
    }

    /// The round, with the lease renewed every third of its ttl while it runs; a lease taken
    /// over meanwhile stops the round.
    async fn run_leased(&self, lease: &Lease, report: &mut RoundReport) -> Result<(), Error> {
        let backend = self.backend().await?;
        let run = MailboxRun {
            store: self.store.as_ref(),
            lease,
            backend: backend.as_ref(),
            plan: &self.plan,
            now: self.now,
            page_size: self.options.page_size,
            reporter: &self.reporter,
            guard: (!self.request.accept_deletions).then_some(self.options.deletion_guard),
        };
        let every = (self.options.lease_ttl / 3).max(Duration::from_millis(10));
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let round = run.run(report);
        tokio::pin!(round);
        loop {
            tokio::select! {
                r = &mut round => return r,
                _ = renew.tick() => {
                    if let Err(e) = self.store.renew_lease(lease).await {
                        match e.kind() {
                            calgate_store::ErrorKind::LeaseLost | calgate_store::ErrorKind::NotFound => {
                                return Err(e.into());
                            }
                            _ => tracing::warn!(mailbox = %self.plan.address, error = %e, "could not renew the sync lease"),
                        }
                    }
                }
            }
        }
    }

    /// Records the mailbox's status (unless another process took the mailbox over, which
    /// records its own), releases the round's lease (in the same transaction), and reports the
    /// outcome.
    async fn finish(
        &self,
        attempted_at: Timestamp,
        report: RoundReport,
        result: Result<(), Error>,
        lease: Option<&Lease>,
    ) -> MailboxOutcome {
        let address = self.plan.address.clone();
        let finished = Timestamp::now();
        let failure = result.as_ref().err().map(|e| Failure {
            kind: e.kind(),
            message: e.to_string(),
            next_action: e.next_action().to_owned(),
        });
        match &failure {
            None => tracing::info!(
                mailbox = %address,
                upserts = report.upserts,
                removals = report.removals,
                pages = report.pages,
                "mailbox synced"
            ),
            Some(f) => {
                tracing::warn!(mailbox = %address, class = %f.kind, "mailbox sync failed: {}", f.message)
            }
        }
        let lease_lost = failure
            .as_ref()
            .is_some_and(|f| f.kind == FailureKind::LeaseLost);
        let update = SyncStatusUpdate {
            attempted_at,
            outcome: match &failure {
                None => SyncOutcome::Success,
                Some(f) => SyncOutcome::Failure {
                    kind: f.kind,
                    message: f.message.clone(),
                },
            },
            next_action: Some(match &failure {
                None => "incremental from the stored deltaLink".to_owned(),
                Some(f) => f.next_action.clone(),
            }),
            next_run_at: None,
            lag: match &failure {
                None => Some(finished.duration_since(attempted_at)),
                Some(_) => self.plan.last_success.map(|s| finished.duration_since(s)),
            },
            counters: SyncCounters {
                rounds: 1,
                requests: report.pages,
                throttled: 0,
                upserts: report.upserts,
                removals: report.removals,
                full_resyncs: report.full_resyncs,
            },
        };
        let status = (!lease_lost).then_some(&update);
        match lease {
            Some(lease) => {
                if let Err(e) = self
                    .store
                    .finish_round(self.plan.mailbox_id, status, lease)
                    .await
                {
                    tracing::warn!(mailbox = %address, error = %e, "could not record the mailbox's sync status");
                    if let Err(e) = self.store.release_lease(lease).await {
                        tracing::warn!(mailbox = %address, error = %e, "could not release the sync lease (it lapses by itself)");
                    }
                }
            }
            None => {
                if let Some(update) = status
                    && let Err(e) = self.store.record_status(self.plan.mailbox_id, update).await
                {
                    tracing::warn!(mailbox = %address, error = %e, "could not record the mailbox's sync status");
                }
            }
        }
        self.reporter.emit(ProgressEvent::MailboxFinished {
            address: address.clone(),
            failed: failure.as_ref().map(|f| f.kind),
        });
        self.outcome(report, failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_halves_on_429s_to_a_floor_and_grows_back_when_calm() {
        let slots = Arc::new(Semaphore::new(16));
        let l = AdaptiveLimit::new(16);
        assert_eq!(l.observe(&slots, 0), 0);
        assert_eq!(l.current(), 16);
        // A 429: half, and the reserve takes the 8 free permits at once.
        assert_eq!(l.observe(&slots, 3), 0);
        assert_eq!((l.current(), slots.available_permits()), (8, 8));
        // More 429s: 4, the floor, and no lower.
        l.observe(&slots, 5);
        assert_eq!((l.current(), slots.available_permits()), (4, 4));
        l.observe(&slots, 9);
        assert_eq!(l.current(), 4);
        // Calm: one back per 16 mailboxes started without a new 429.
        for _ in 0..16 {
            l.observe(&slots, 9);
        }
        assert_eq!((l.current(), slots.available_permits()), (5, 5));
        for _ in 0..(16 * 11) {
            l.observe(&slots, 9);
        }
        assert_eq!((l.current(), slots.available_permits()), (16, 16));
    }

    #[test]
    fn permits_in_use_are_owed_to_the_reserve() {
        let slots = Arc::new(Semaphore::new(8));
        let l = AdaptiveLimit::new(8);
        let busy: Vec<_> = (0..8)
            .map(|_| slots.clone().try_acquire_owned().expect("a free permit"))
            .collect();
        // Everything is in use: halving is owed four permits.
        assert_eq!(l.observe(&slots, 1), 4);
        drop(busy);
        for _ in 0..4 {
            l.stash(slots.clone().try_acquire_owned().expect("a free permit"));
        }
        assert_eq!((l.current(), slots.available_permits()), (4, 4));
    }
}
