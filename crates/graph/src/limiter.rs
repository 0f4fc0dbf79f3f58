//! The process-wide per-mailbox gate (≤ 4 requests in flight, and a "not before" instant after
//! a `Retry-After`), and the request counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Graph's Outlook limit: 4 concurrent requests per app per mailbox.
pub const MAILBOX_CONCURRENCY: u32 = 4;

/// One mailbox's gate.
pub(crate) struct Gate {
    sem: Arc<Semaphore>,
    /// While the mailbox is "cautious" (recently throttled), requests go one at a time:
    /// a request in flight when a 429 is issued would otherwise reach the service before the
    /// client could learn of the Retry-After.
    solo: Arc<Semaphore>,
    cautious_until: Mutex<Option<Instant>>,
    not_before: Mutex<Option<Instant>>,
    in_flight: AtomicU64,
}

impl Gate {
    fn new() -> Self {
        Gate {
            sem: Arc::new(Semaphore::new(MAILBOX_CONCURRENCY as usize)),
            solo: Arc::new(Semaphore::new(1)),
            cautious_until: Mutex::new(None),
            not_before: Mutex::new(None),
            in_flight: AtomicU64::new(0),
        }
    }

    fn not_before(&self) -> Option<Instant> {
        self.not_before.lock().map(|g| *g).unwrap_or(None)
    }

    /// Nothing is sent to this mailbox before `until`; after it, one request at a time for a
    /// while ([`CAUTIOUS_FOR`]).
    pub(crate) fn hold_until(&self, until: Instant) {
        if let Ok(mut g) = self.not_before.lock()
            && g.is_none_or(|t| t < until)
        {
            *g = Some(until);
        }
        self.throttled(until);
    }

    /// The mailbox was throttled: one request at a time until `from` + [`CAUTIOUS_FOR`].
    pub(crate) fn throttled(&self, from: Instant) {
        let until = from + CAUTIOUS_FOR;
        if let Ok(mut g) = self.cautious_until.lock()
            && g.is_none_or(|t| t < until)
        {
            *g = Some(until);
        }
    }

    fn cautious(&self) -> bool {
        self.cautious_until
            .lock()
            .map(|g| g.is_some_and(|t| t > Instant::now()))
            .unwrap_or(false)
    }

    async fn wait_not_before(&self) {
        while let Some(t) = self.not_before() {
            if t <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(t).await;
        }
    }
}

/// How long a throttled mailbox is sent one request at a time.
pub const CAUTIOUS_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Permits held while a request (or a `$batch`) is in flight.
pub(crate) struct Permits {
    held: Vec<(Arc<Gate>, OwnedSemaphorePermit, u64)>,
    _solo: Vec<OwnedSemaphorePermit>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        for (g, _, n) in &self.held {
            g.in_flight.fetch_sub(*n, Ordering::SeqCst);
        }
    }
}

/// The process-wide registry of gates, keyed by Graph origin + lowercase mailbox address.
/// Process-wide on purpose: several connections (and `GraphClient`s) may reach the same
/// mailbox, and the service counts them together.
pub(crate) struct Limiter {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

pub(crate) fn limiter() -> &'static Limiter {
    static L: OnceLock<Limiter> = OnceLock::new();
    L.get_or_init(|| Limiter {
        gates: Mutex::new(HashMap::new()),
    })
}

pub(crate) fn key(origin: &str, mailbox: &str) -> String {
    format!("{origin}|{}", mailbox.trim().to_ascii_lowercase())
}

impl Limiter {
    pub(crate) fn gate(&self, key: &str) -> Arc<Gate> {
        let mut g = match self.gates.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() > 50_000 {
            // Forget idle gates whose hold has passed.
            let now = Instant::now();
            g.retain(|_, gate| {
                Arc::strong_count(gate) > 1 || gate.not_before().is_some_and(|t| t > now)
            });
        }
        g.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Gate::new()))
            .clone()
    }

    /// Acquires `n` slots (capped at 4) on each mailbox, in key order (no deadlock between
    /// batches), after every mailbox's "not before" has passed. Returns the permits and the
    /// peak in-flight count seen.
    pub(crate) async fn acquire(&self, wants: &[(String, u32)], metrics: &Metrics) -> Permits {
        let mut wants: Vec<(String, u32)> = wants.to_vec();
        wants.sort();
        wants.dedup_by(|a, b| {
            if a.0 == b.0 {
                b.1 += a.1;
                true
            } else {
                false
            }
        });
        let gates: Vec<(Arc<Gate>, u32)> = wants
            .iter()
            .map(|(k, n)| (self.gate(k), (*n).clamp(1, MAILBOX_CONCURRENCY)))
            .collect();
        'outer: loop {
            for (g, _) in &gates {
                g.wait_not_before().await;
            }
            let mut solo = Vec::new();
            for (g, _) in &gates {
                if g.cautious()
                    && let Ok(p) = g.solo.clone().acquire_owned().await
                {
                    solo.push(p);
                }
            }
            let mut held = Vec::with_capacity(gates.len());
            for (g, n) in &gates {
                let Ok(p) = g.sem.clone().acquire_many_owned(*n).await else {
                    // The semaphore is never closed; treat as no limit.
                    continue;
                };
                held.push((g.clone(), p, u64::from(*n)));
            }
            // A Retry-After may have arrived while we waited for a slot, or the mailbox may
            // have turned cautious.
            let now = Instant::now();
            let cautious_now = gates.iter().filter(|(g, _)| g.cautious()).count();
            if gates
                .iter()
                .any(|(g, _)| g.not_before().is_some_and(|t| t > now))
                || cautious_now > solo.len()
            {
                drop(held);
                drop(solo);
                continue 'outer;
            }
            for (g, _, n) in &held {
                let now_in = g.in_flight.fetch_add(*n, Ordering::SeqCst) + n;
                metrics
                    .peak_mailbox_concurrency
                    .fetch_max(now_in, Ordering::Relaxed);
            }
            return Permits { held, _solo: solo };
        }
    }
}

/// Counters readable by callers (progress bars, benchmarks). Shared by every client made from
/// the same [`crate::Shared`].
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) requests_sent: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) peak_mailbox_concurrency: AtomicU64,
    /// Answers by HTTP status.
    pub(crate) by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
}

/// A snapshot of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// HTTP requests sent to Graph (a `$batch` counts once; its items are in `batch_items`).
    pub requests_sent: u64,
    /// Throttled answers (429), including throttled items inside a `$batch`.
    pub throttled: u64,
    /// Requests sent again after a throttled, unavailable or failed attempt.
    pub retries: u64,
    /// Requests to the Entra ID token endpoint.
    pub token_requests: u64,
    /// The most requests this process had in flight to one mailbox at once.
    pub peak_mailbox_concurrency: u64,
}

impl Metrics {
    /// Counts one answer of Graph with this status.
    pub(crate) fn answered(&self, status: u16) {
        let mut m = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(status).or_insert(0) += 1;
    }

    /// Answers so far, by HTTP status.
    pub fn by_status(&self) -> Vec<(u16, u64)> {
        let m = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(s, n)| (*s, *n)).collect()
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            peak_mailbox_concurrency: self.peak_mailbox_concurrency.load(Ordering::Relaxed),
        }
    }
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn at_most_four_and_not_before_holds() {
        let m = Arc::new(Metrics::default());
        let k = key("http://t", "A@x");
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(limiter().acquire(&[(k.clone(), 1)], &m).await);
        }
        let fifth = tokio::time::timeout(
            Duration::from_millis(50),
            limiter().acquire(&[(k.clone(), 1)], &m),
        )
        .await;
        assert!(fifth.is_err(), "a fifth slot must wait");
        held.clear();
        limiter()
            .gate(&k)
            .hold_until(Instant::now() + Duration::from_millis(120));
        let t0 = Instant::now();
        let _p = limiter().acquire(&[(key("http://t", "a@X"), 1)], &m).await;
        assert!(t0.elapsed() >= Duration::from_millis(110));
        assert_eq!(m.snapshot().peak_mailbox_concurrency, 4);
    }
}
