//! Availability of people and rooms over a window: each mailbox's busy intervals (after the
//! busy mapping: tentative and out-of-office block time, free does not), merged, and the free
//! slots common to all. `POST /v1/availability` and `calgate freebusy` both call [`compute`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calgate_core::busy::{Interval, free_slots, merge};
use calgate_core::{BusyMapping, Mailbox, MailboxId, ShowAs};
use calgate_store::Store;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The most mailboxes one request may ask about.
pub const MAX_MAILBOXES: usize = 200;

/// A busy or free interval (RFC 3339 instants, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntervalDto {
    pub start: String,
    pub end: String,
}

impl From<&Interval> for IntervalDto {
    fn from(i: &Interval) -> Self {
        IntervalDto {
            start: i.start.to_string(),
            end: i.end.to_string(),
        }
    }
}

/// One mailbox's busy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailboxBusy {
    pub address: String,
    /// Merged, sorted, within the window.
    pub busy: Vec<IntervalDto>,
    /// When the mailbox was last synced (`null`: never): how fresh `busy` is.
    pub last_synced: Option<String>,
}

/// The answer of `POST /v1/availability`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    pub mailboxes: Vec<MailboxBusy>,
    /// Windows of at least `duration_minutes` where every listed mailbox is free.
    pub free_slots: Vec<IntervalDto>,
}

/// Availability of `addresses` over `[from, to)`; free slots of at least `min`. `cache`
/// keeps busy time between calls (`calgate serve` holds one; a one-off caller passes a fresh
/// one).
pub async fn compute(
    store: &dyn Store,
    cache: &BusyCache,
    addresses: &[String],
    from: Timestamp,
    to: Timestamp,
    min: SignedDuration,
) -> Result<Availability, ApiError> {
    if addresses.is_empty() {
        return Err(ApiError::bad_request(
            "mailboxes is empty: list the addresses to check",
        ));
    }
    if addresses.len() > MAX_MAILBOXES {
        return Err(ApiError::bad_request(format!(
            "{} mailboxes asked for; at most {MAX_MAILBOXES} at once",
            addresses.len()
        )));
    }
    let found: HashMap<String, (Mailbox, Option<Timestamp>)> = store
        .mailboxes_named(addresses)
        .await?
        .into_iter()
        .map(|(m, last)| (m.address.to_lowercase(), (m, last)))
        .collect();
    let mut mailboxes = Vec::with_capacity(addresses.len());
    for a in addresses {
        let Some((m, last)) = found.get(&a.trim().to_lowercase()) else {
            return Err(ApiError::not_found(format!(
                "{} is not linked: link it first (POST /v1/mailboxes or `calgate mailbox link`)",
                calgate_core::printable(a.trim())
            )));
        };
        mailboxes.push((m, *last));
    }
    let busy = cache
        .busy(store, mailboxes.iter().map(|(m, _)| *m), from, to)
        .await?;
    let mut out = Vec::with_capacity(mailboxes.len());
    let mut all = Vec::with_capacity(mailboxes.len());
    for ((m, last), b) in mailboxes.into_iter().zip(busy) {
        out.push(MailboxBusy {
            address: m.address.clone(),
            busy: b.iter().map(IntervalDto::from).collect(),
            last_synced: last.map(|t| t.to_string()),
        });
        all.push(b);
    }
    let free = free_slots(&all, from, to, min);
    Ok(Availability {
        mailboxes: out,
        free_slots: free.iter().map(IntervalDto::from).collect(),
    })
}

/// How long a mailbox's busy time is kept without a look at the store (a bound on top of the
/// change log, in case the log is ever pruned past what this cache has seen).
const CACHE_TTL: Duration = Duration::from_secs(600);
/// The most mailboxes kept (past it, the cache starts over).
const CACHE_MAX_MAILBOXES: usize = 50_000;

/// Mailboxes' merged busy time over everything stored, kept in memory between requests, so
/// that an availability request costs one read of the mailboxes and one of the change log
/// instead of a read of every instance.
///
/// Correctness rests on the change log: every write to a mailbox's live instances logs a row
/// in the same transaction, so a mailbox's entry is dropped as soon as a request sees a row
/// newer than the entry. An entry is also tied to the mailbox's `linked_at` (an unlinked and
/// re-linked mailbox starts over) and lives at most [`CACHE_TTL`].
#[derive(Debug, Default)]
pub struct BusyCache {
    inner: Mutex<CacheInner>,
    /// Where the change log ended when the cache started (read once).
    start: tokio::sync::OnceCell<u64>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// The change-log position every entry is valid at.
    seen: u64,
    /// The newest change seen per mailbox (a load that began before it must not be kept).
    changed: HashMap<MailboxId, u64>,
    entries: HashMap<MailboxId, CacheEntry>,
}

#[derive(Debug)]
struct CacheEntry {
    linked_at: Timestamp,
    loaded: Instant,
    /// Merged: sorted and disjoint, so both starts and ends are sorted.
    busy: Arc<[Interval]>,
}

impl BusyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads every linked mailbox's busy time (what `calgate serve` does as it starts, so that
    /// the first availability requests do not pay for it); the number of mailboxes loaded.
    pub async fn warm(&self, store: &dyn Store) -> Result<usize, ApiError> {
        let all = store.list_mailboxes().await?;
        for chunk in all.chunks(500) {
            let now = Timestamp::now();
            self.busy(store, chunk.iter(), now, now).await?;
        }
        Ok(all.len())
    }

    /// The merged busy intervals of each of `mailboxes` within `[from, to)`, in their order.
    pub async fn busy<'a>(
        &self,
        store: &dyn Store,
        mailboxes: impl Iterator<Item = &'a Mailbox>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Vec<Interval>>, ApiError> {
        let mailboxes: Vec<&Mailbox> = mailboxes.collect();
        // What changed since the cache last looked (an empty cache starts at the log's end).
        let start = *self
            .start
            .get_or_try_init(|| store.change_log_end())
            .await?;
        let seen = {
            let mut inner = self.lock();
            inner.seen = inner.seen.max(start);
            inner.seen
        };
        let changes = store.mailboxes_changed_after(seen).await?;
        let mut found: HashMap<MailboxId, Arc<[Interval]>> = HashMap::new();
        let mut missing = Vec::new();
        let snapshot = {
            let mut inner = self.lock();
            for (id, seq) in changes {
                inner.entries.remove(&id);
                let c = inner.changed.entry(id).or_default();
                *c = (*c).max(seq);
                inner.seen = inner.seen.max(seq);
            }
            for m in &mailboxes {
                match inner.entries.get(&m.id) {
                    Some(e) if e.linked_at == m.linked_at && e.loaded.elapsed() < CACHE_TTL => {
                        found.insert(m.id, e.busy.clone());
                    }
                    _ => missing.push(m.id),
                }
            }
            inner.seen
        };
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            let mapping = BusyMapping::default();
            let busy: Vec<ShowAs> = ShowAs::ALL
                .iter()
                .copied()
                .filter(|s| mapping.is_busy(*s))
                .collect();
            let mut loaded: HashMap<MailboxId, Arc<[Interval]>> = missing
                .iter()
                .map(|id| (*id, Arc::from(Vec::new())))
                .collect();
            for b in store
                .busy_times(&missing, Timestamp::MIN, Timestamp::MAX, &busy)
                .await?
            {
                let spans = b
                    .spans
                    .into_iter()
                    .map(|(start, end)| Interval { start, end })
                    .collect();
                loaded.insert(
                    b.mailbox,
                    Arc::from(merge(spans, Timestamp::MIN, Timestamp::MAX)),
                );
            }
            let mut inner = self.lock();
            if inner.entries.len() + loaded.len() > CACHE_MAX_MAILBOXES {
                inner.entries.clear();
            }
            for m in &mailboxes {
                let Some(b) = loaded.get(&m.id) else { continue };
                // Read after `snapshot`: keep it unless a newer change was seen meanwhile.
                if inner.changed.get(&m.id).is_none_or(|c| *c <= snapshot) {
                    inner.entries.insert(
                        m.id,
                        CacheEntry {
                            linked_at: m.linked_at,
                            loaded: Instant::now(),
                            busy: b.clone(),
                        },
                    );
                }
            }
            found.extend(loaded);
        }
        Ok(mailboxes
            .iter()
            .map(|m| {
                found
                    .get(&m.id)
                    .map(|b| within(b, from, to))
                    .unwrap_or_default()
            })
            .collect())
    }
}

/// The part of merged `busy` within `[from, to)`, clipped.
fn within(busy: &[Interval], from: Timestamp, to: Timestamp) -> Vec<Interval> {
    let first = busy.partition_point(|i| i.end <= from);
    let last = busy.partition_point(|i| i.start < to);
    busy.get(first..last.max(first))
        .unwrap_or_default()
        .iter()
        .map(|i| Interval {
            start: i.start.max(from),
            end: i.end.min(to),
        })
        .filter(|i| i.start < i.end)
        .collect()
}
