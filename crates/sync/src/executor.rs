//! The executor of one mailbox's plan: delta rounds into the live set or into a shadow set.
//! All I/O of a mailbox happens here; decisions come from [`crate::plan`] and
//! [`crate::page::plan_page`].

use calgate_core::FailureKind;
use calgate_store::{ChangeSet, Cursor, Lease, Store, Window};
use jiff::Timestamp;

use crate::backend::{BackendError, CalendarBackend, ChangesPage, ChangesRequest, PageNext};
use crate::page::{merge_changes, plan_page};
use crate::plan::{Action, MailboxPlan, ResyncReason};
use crate::{Error, ProgressEvent, Reporter};

/// The most pages one round may take: a guard against a service that never ends a round.
const MAX_PAGES: u64 = 1_000_000;

/// What kind of round ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundKind {
    Initial,
    Incremental,
    FullResync(ResyncReason),
}

/// What one mailbox's run did (also when it failed part-way).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoundReport {
    /// The last round that ran (an incremental round that hit 410 reports the full resync).
    pub round: Option<RoundKind>,
    /// Pages fetched (requests made by this mailbox's rounds, retries excluded).
    pub pages: u64,
    /// Instances written (upserts) and removed, into the live set or the shadow set.
    pub upserts: u64,
    pub removals: u64,
    /// Full resyncs committed.
    pub full_resyncs: u64,
    /// The window the mailbox is now synced over (on success).
    pub window: Option<Window>,
}

/// Everything one mailbox's execution needs.
pub(crate) struct MailboxRun<'a> {
    pub store: &'a dyn Store,
    /// The mailbox's sync lease: every write of the round presents it.
    pub lease: &'a Lease,
    pub backend: &'a dyn CalendarBackend,
    pub plan: &'a MailboxPlan,
    /// The plan's `now`: the base of a re-based window.
    pub now: Timestamp,
    pub page_size: u32,
    pub reporter: &'a Reporter,
    /// The bulk-delete guard (`None`: the deletions were accepted).
    pub guard: Option<DeletionGuard>,
}

/// The bulk-delete circuit breaker (field notes P5): a round that would delete more than
/// `max_percent` % of a mailbox's live events, and at least `min_removals` of them, is held —
/// nothing is written, the mailbox is marked for review — until an administrator accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionGuard {
    pub max_percent: u32,
    pub min_removals: u64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard {
            max_percent: 50,
            min_removals: 20,
        }
    }
}

impl DeletionGuard {
    /// A guard that never holds (for tests and benchmarks whose point is elsewhere).
    pub fn off() -> DeletionGuard {
        DeletionGuard {
            max_percent: 100,
            min_removals: u64::MAX,
        }
    }

    /// The failure that holds a round deleting `removed` of `live` events, if it must be held.
    pub fn check(&self, address: &str, removed: u64, live: u64) -> Result<(), Error> {
        let share = removed.saturating_mul(100) / live.max(1);
        if removed < self.min_removals
            || removed.saturating_mul(100) <= live.saturating_mul(u64::from(self.max_percent))
        {
            return Ok(());
        }
        Err(Error::Backend(BackendError::new(
            FailureKind::DeletionsHeld,
            format!(
                "held for review: this round would delete {removed} of {address}'s {live} events ({share} %, more than the limit of {} %); nothing was deleted — if Exchange is right (events really deleted there), run `calgate sync --mailbox {address} --accept-deletions`",
                self.max_percent
            ),
        )))
    }
}

/// Which set a round's changes go into.
#[derive(Clone, Copy)]
enum WriteTo {
    Live,
    Shadow,
}

/// A relist asked for in the middle of a listing: the service contradicts itself.
fn relist_mid_round(address: &str) -> Error {
    Error::Backend(BackendError::new(
        FailureKind::InvalidData,
        format!("the service asked to list {address}'s window again in the middle of a listing"),
    ))
}

/// Instances a first round gathers before it writes them: two pages of 100 (the default page
/// size) in one transaction. Each transaction rewrites the B-tree pages its rows share with
/// the previous one; for a mailbox of ~220 instances this is two transactions instead of
/// three: 13 % fewer bytes written and ~5 % less CPU than a page at a time
/// (BENCHMARKS.md). Gathering the whole mailbox (500) wrote 13 % less again but held every
/// mailbox's pages until its last one (~10 MiB more at the peak, 64 mailboxes at once) and
/// was no faster.
const FIRST_ROUND_BATCH: usize = 200;

impl MailboxRun<'_> {
    fn address(&self) -> &str {
        &self.plan.address
    }

    /// Runs the plan. The report is filled in as far as the run got.
    pub(crate) async fn run(&self, report: &mut RoundReport) -> Result<(), Error> {
        let target = self.plan.target;
        let live = match &self.plan.action {
            Action::Initial => {
                report.round = Some(RoundKind::Initial);
                let start = ChangesRequest::Start {
                    window: target,
                    page_size: self.page_size,
                    resume: None,
                };
                self.live_round(start, target, self.now, false, report)
                    .await
            }
            Action::Incremental {
                delta_link,
                window,
                rebased_at,
            } => {
                report.round = Some(RoundKind::Incremental);
                let follow = ChangesRequest::Continue {
                    link: delta_link.as_str().to_owned(),
                    page_size: self.page_size,
                };
                self.live_round(follow, *window, *rebased_at, true, report)
                    .await
            }
            Action::FullResync { reason } => {
                return self.shadow_round(reason.clone(), report, None).await;
            }
        };
        match live {
            Ok(None) => Ok(()),
            Ok(Some(relist)) => {
                tracing::debug!(
                    mailbox = self.address(),
                    "the service reported changed items: listing the window again"
                );
                self.shadow_round(ResyncReason::Relisted, report, Some(relist))
                    .await
            }
            Err(Error::Backend(e)) if e.kind == FailureKind::ResyncRequired => {
                tracing::info!(
                    mailbox = self.address(),
                    "delta token expired: full resync into a shadow set"
                );
                self.shadow_round(ResyncReason::DeltaTokenExpired, report, None)
                    .await
            }
            Err(other) => Err(other),
        }
    }

    /// One page, counted.
    async fn page(
        &self,
        request: ChangesRequest,
        report: &mut RoundReport,
    ) -> Result<ChangesPage, Error> {
        if report.pages >= MAX_PAGES {
            return Err(Error::Backend(BackendError::new(
                FailureKind::InvalidData,
                format!(
                    "the service kept sending next pages for {} (over {MAX_PAGES} pages)",
                    self.address()
                ),
            )));
        }
        report.pages += 1;
        Ok(self.backend.changes(self.address(), request).await?)
    }

    fn counted(&self, upserts: u64, removals: u64, report: &mut RoundReport) {
        report.upserts += upserts;
        report.removals += removals;
        self.reporter.emit(ProgressEvent::Page {
            address: self.address().to_owned(),
            upserts,
            removals,
        });
    }

    /// Writes `changes` into the live set, or into the round's shadow set, then counts them.
    /// The changes are moved to the store, not copied (the SQLite store writes them on a
    /// thread of its own).
    async fn write(
        &self,
        into: WriteTo,
        changes: ChangeSet,
        report: &mut RoundReport,
    ) -> Result<(), Error> {
        let (upserts, removals) = (changes.upserts.len() as u64, changes.removals.len() as u64);
        match into {
            WriteTo::Live => self.store.apply_changes_owned(self.lease, changes).await?,
            WriteTo::Shadow => self.store.apply_shadow_owned(self.lease, changes).await?,
        }
        self.counted(upserts, removals, report);
        Ok(())
    }

    /// A delta round into the live set, the deltaLink stored with its last changes. A first
    /// round (nothing stored yet) writes its pages in transactions of about
    /// [`FIRST_ROUND_BATCH`] instances (two pages each); an incremental
    /// round gathers its pages and writes them in one transaction, after the bulk-delete guard
    /// let it through. A failure part-way leaves the old cursor, so the next round replays
    /// from it (pages are idempotent). `Some(link)`: the service asked for a relist
    /// ([`PageNext::Relist`]); nothing of this round was written.
    async fn live_round(
        &self,
        first: ChangesRequest,
        window: Window,
        rebased_at: Timestamp,
        incremental: bool,
        report: &mut RoundReport,
    ) -> Result<Option<String>, Error> {
        let mut request = first;
        let mut gathered = ChangeSet::default();
        loop {
            let page = self.page(request, report).await?;
            let mut changes = plan_page(page.changes, window);
            let next = match page.next {
                PageNext::Relist(link) if incremental && gathered.is_empty() => {
                    return Ok(Some(link));
                }
                PageNext::Relist(_) => return Err(relist_mid_round(self.address())),
                PageNext::More(next) => Some(next),
                PageNext::Done(link) => {
                    changes.cursor = Some(Cursor {
                        delta_link: link,
                        window_start: window.start,
                        window_end: window.end,
                        rebased_at,
                    });
                    None
                }
            };
            merge_changes(&mut gathered, changes);
            if !incremental && next.is_some() && gathered.upserts.len() >= FIRST_ROUND_BATCH {
                let batch = std::mem::take(&mut gathered);
                self.write(WriteTo::Live, batch, report).await?;
            }
            match next {
                Some(next) => {
                    request = ChangesRequest::Continue {
                        link: next,
                        page_size: self.page_size,
                    };
                }
                None => break,
            }
        }
        if incremental
            && let Some(guard) = self.guard
            && !gathered.removals.is_empty()
        {
            let removed = self
                .store
                .count_live(self.plan.mailbox_id, &gathered.removals)
                .await?;
            let live = self.store.count_instances(self.plan.mailbox_id).await?;
            guard.check(self.address(), removed, live)?;
        }
        self.write(WriteTo::Live, gathered, report).await?;
        report.window = Some(window);
        Ok(None)
    }

    /// A full round over the target window into a shadow set, committed atomically at the
    /// end; the live set stays visible and untouched until then. Any failure aborts the
    /// shadow. A 410 during the resync itself restarts it once.
    async fn shadow_round(
        &self,
        reason: ResyncReason,
        report: &mut RoundReport,
        mut resume: Option<String>,
    ) -> Result<(), Error> {
        report.round = Some(RoundKind::FullResync(reason));
        let mut restarted = false;
        loop {
            let result = self.shadow_attempt(report, resume.take()).await;
            match result {
                Ok(()) => {
                    report.full_resyncs += 1;
                    report.window = Some(self.plan.target);
                    return Ok(());
                }
                Err(e) => {
                    if let Err(abort) = self.store.abort_shadow(self.lease).await {
                        tracing::warn!(
                            mailbox = self.address(),
                            error = %abort,
                            "could not discard the shadow set of a failed full resync"
                        );
                    }
                    let again =
                        matches!(&e, Error::Backend(b) if b.kind == FailureKind::ResyncRequired);
                    if again && !restarted {
                        restarted = true;
                        tracing::info!(
                            mailbox = self.address(),
                            "delta token expired during the full resync: starting it over"
                        );
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn shadow_attempt(
        &self,
        report: &mut RoundReport,
        resume: Option<String>,
    ) -> Result<(), Error> {
        let window = self.plan.target;
        self.store.begin_shadow(self.lease, window).await?;
        let mut request = ChangesRequest::Start {
            window,
            page_size: self.page_size,
            resume,
        };
        loop {
            let page = self.page(request, report).await?;
            let mut changes = plan_page(page.changes, window);
            match page.next {
                PageNext::Relist(_) => return Err(relist_mid_round(self.address())),
                PageNext::More(next) => {
                    // The progress link is recorded with the page (where a resync could resume).
                    changes.cursor = Some(Cursor {
                        delta_link: next.clone(),
                        window_start: window.start,
                        window_end: window.end,
                        rebased_at: self.now,
                    });
                    self.write(WriteTo::Shadow, changes, report).await?;
                    request = ChangesRequest::Continue {
                        link: next,
                        page_size: self.page_size,
                    };
                }
                PageNext::Done(link) => {
                    if changes.is_empty() {
                        self.counted(0, 0, report);
                    } else {
                        self.write(WriteTo::Shadow, changes, report).await?;
                    }
                    let cursor = Cursor {
                        delta_link: link,
                        window_start: window.start,
                        window_end: window.end,
                        rebased_at: self.now,
                    };
                    // What the commit removes: live instances the listing no longer holds.
                    let diff = self.store.shadow_diff(self.lease).await?;
                    if let Some(guard) = self.guard {
                        guard.check(self.address(), diff.removed, diff.live)?;
                    }
                    self.store.commit_shadow(self.lease, &cursor).await?;
                    if diff.removed > 0 {
                        report.removals += diff.removed;
                        self.reporter.emit(ProgressEvent::Page {
                            address: self.address().to_owned(),
                            upserts: 0,
                            removals: diff.removed,
                        });
                    }
                    return Ok(());
                }
            }
        }
    }
}
