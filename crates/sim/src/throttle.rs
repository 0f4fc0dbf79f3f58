//! Graph's Outlook throttling per (app, mailbox): at most N concurrent requests (a further one →
//! 429 `ApplicationThrottled`, "MailboxConcurrency") and a request budget per 10 minutes
//! (→ 429 `TooManyRequests` with `Retry-After`). Also per-mailbox request counters and the peak
//! concurrency seen, read by `/_sim/stats`.
//!
//! Windows and deadlines use the monotonic clock ([`Instant`]), so moving the simulated clock
//! (`POST /_sim/clock`) never unthrottles anybody; dates reported by `/_sim/stats` use
//! [`SimState::now`].
//!
//! Usage keeps being counted while throttled (as Graph documents): every request that reaches
//! a mailbox counts against the budget, including the ones answered with 429.
//!
//! For verifying clients, every 429/503 answered with a `Retry-After` is remembered per
//! (app, mailbox); a later request from that app to that mailbox that arrives before the
//! `Retry-After` elapsed is counted as an *early retry*.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{GraphError, GraphResult};
use crate::state::{SimState, lock};

/// Graph's budget window: 10 minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// Granularity of the sliding window's buckets.
const BUCKET: Duration = Duration::from_millis(100);
/// Largest `Retry-After` (seconds) an injected fault may carry: one day.
pub const MAX_RETRY_AFTER_S: u64 = 86_400;
/// `Retry-After` sent with `ApplicationThrottled` (the concurrency limit frees up quickly).
pub const CONCURRENCY_RETRY_AFTER_S: u64 = 1;

type Key = (Uuid, Uuid); // (app client_id, mailbox user id)

#[derive(Debug)]
pub struct Throttle {
    inner: Arc<Mutex<Inner>>,
    /// Length of the budget window in milliseconds (Graph: 10 minutes; tests shorten it).
    window_ms: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            inner: Arc::default(),
            window_ms: AtomicU64::new(DEFAULT_WINDOW.as_millis() as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<Key, KeyState>,
    mailboxes: HashMap<Uuid, MailboxState>,
}

/// Per (app, mailbox).
#[derive(Debug, Default)]
struct KeyState {
    in_flight: u32,
    /// Sliding-window buckets: (bucket start, requests in it).
    window: VecDeque<(Instant, u32)>,
    window_count: u64,
    /// Window of the last `Retry-After` delivered to this app for this mailbox: requests
    /// arriving in `[from, until)` are early retries (`from` = delivery + [`DELIVERY_GRACE`]).
    retry_not_before: Option<(Instant, Instant)>,
    counters: Counters,
    last_retry_after: Option<RetryAfterRecord>,
}

/// Per mailbox, across apps.
#[derive(Debug, Default)]
struct MailboxState {
    in_flight: u32,
    counters: Counters,
    last_retry_after: Option<RetryAfterRecord>,
}

/// Counters reported by `/_sim/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    /// Requests that reached the mailbox (after authorization), including throttled ones.
    pub requests: u64,
    /// 429 answers of any kind (concurrency, budget, injected storm).
    pub throttled: u64,
    /// 429 `ApplicationThrottled` (MailboxConcurrency).
    pub concurrency_throttled: u64,
    /// 429 `TooManyRequests` (request budget).
    pub budget_throttled: u64,
    /// Injected faults answered (429 storm, 500, 503).
    pub injected_faults: u64,
    /// Highest number of requests in flight at once (admitted ones).
    pub peak_concurrency: u32,
    /// Requests that arrived before the last `Retry-After` given to the same app for the same
    /// mailbox had elapsed.
    pub early_retries: u64,
}

/// When a `Retry-After` was issued, what it said, and until when it holds.
#[derive(Debug, Clone, Serialize)]
pub struct RetryAfterRecord {
    pub app_id: Uuid,
    pub status: u16,
    pub code: String,
    /// The header value as sent (seconds, maybe fractional).
    pub retry_after: String,
    /// Simulated-clock time it was issued at.
    pub issued_at: Timestamp,
    /// Simulated-clock time before which a retry is early.
    pub not_before: Timestamp,
}

/// Held while a request is in flight; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Mutex<Inner>>,
    key: Key,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut g = lock(&self.inner);
        if let Some(k) = g.keys.get_mut(&self.key) {
            k.in_flight = k.in_flight.saturating_sub(1);
        }
        if let Some(m) = g.mailboxes.get_mut(&self.key.1) {
            m.in_flight = m.in_flight.saturating_sub(1);
        }
    }
}

/// A 429 in the documented throttling shape.
pub fn too_many_requests(retry_after: impl Into<String>) -> GraphError {
    GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Please retry again later.",
    )
    .with_inner("code", json!("429"))
    .with_inner("message", json!("Please retry after"))
    .with_inner("status", json!("429"))
    .with_retry_after(retry_after)
}

/// 429 `ApplicationThrottled`, as Outlook answers a 5th concurrent request to one mailbox.
pub fn application_throttled() -> GraphError {
    GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
    )
    .with_retry_after(CONCURRENCY_RETRY_AFTER_S.to_string())
}

/// Parses a `Retry-After` value in seconds (integer or fractional).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().parse().ok()?;
    if !s.is_finite() || !(0.0..=MAX_RETRY_AFTER_S as f64).contains(&s) {
        return None;
    }
    Some(Duration::from_secs_f64(s))
}

impl Throttle {
    /// The budget window (Graph: 10 minutes).
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.load(Ordering::Relaxed))
    }

    /// Changes the budget window (tests use a few seconds).
    pub fn set_window(&self, w: Duration) {
        let ms = w.as_millis().clamp(100, 86_400_000) as u64;
        self.window_ms.store(ms, Ordering::Relaxed);
    }

    /// Admits a request from `app` to `mailbox`, or answers 429. Every call counts against the
    /// budget (usage keeps being counted while throttled).
    pub fn acquire(&self, st: &Arc<SimState>, app: Uuid, mailbox: Uuid) -> GraphResult<Permit> {
        let settings = st.settings();
        let window = self.window();
        let now = Instant::now();
        let mut g = lock(&self.inner);
        let Inner { keys, mailboxes } = &mut *g;
        let ks = keys.entry((app, mailbox)).or_default();
        let ms = mailboxes.entry(mailbox).or_default();

        // Early retry: the app was told to wait and did not.
        if ks
            .retry_not_before
            .is_some_and(|(from, until)| now >= from && now < until)
        {
            ks.counters.early_retries += 1;
            ms.counters.early_retries += 1;
        }
        ks.counters.requests += 1;
        ms.counters.requests += 1;

        // Sliding window: drop expired buckets, count this request.
        while let Some(&(t, n)) = ks.window.front() {
            if now.duration_since(t) >= window {
                ks.window.pop_front();
                ks.window_count = ks.window_count.saturating_sub(u64::from(n));
            } else {
                break;
            }
        }
        match ks.window.back_mut() {
            Some((t, n)) if now.duration_since(*t) < BUCKET => *n += 1,
            _ => ks.window.push_back((now, 1)),
        }
        ks.window_count += 1;

        let budget = u64::from(settings.request_budget);
        if ks.window_count > budget {
            // Seconds until enough old requests leave the window for this one to fit.
            let excess = ks.window_count - budget;
            let mut removed = 0u64;
            let mut frees_at = now + window;
            for &(t, n) in &ks.window {
                removed += u64::from(n);
                if removed >= excess {
                    frees_at = t + window;
                    break;
                }
            }
            let wait = frees_at.saturating_duration_since(now);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            let err = too_many_requests(secs.to_string());
            ks.counters.throttled += 1;
            ks.counters.budget_throttled += 1;
            ms.counters.throttled += 1;
            ms.counters.budget_throttled += 1;
            record(st, ks, ms, app, &err, Duration::from_secs(secs));
            drop(g);
            self.arm_on_delivery((app, mailbox), Duration::from_secs(secs));
            return Err(err);
        }

        if ks.in_flight >= settings.mailbox_concurrency {
            let err = application_throttled();
            ks.counters.throttled += 1;
            ks.counters.concurrency_throttled += 1;
            ms.counters.throttled += 1;
            ms.counters.concurrency_throttled += 1;
            record(
                st,
                ks,
                ms,
                app,
                &err,
                Duration::from_secs(CONCURRENCY_RETRY_AFTER_S),
            );
            drop(g);
            self.arm_on_delivery(
                (app, mailbox),
                Duration::from_secs(CONCURRENCY_RETRY_AFTER_S),
            );
            return Err(err);
        }

        ks.in_flight += 1;
        ms.in_flight += 1;
        ks.counters.peak_concurrency = ks.counters.peak_concurrency.max(ks.in_flight);
        ms.counters.peak_concurrency = ms.counters.peak_concurrency.max(ms.in_flight);
        Ok(Permit {
            inner: self.inner.clone(),
            key: (app, mailbox),
        })
    }

    /// Records an injected fault answered to `app` for `mailbox` (and its `Retry-After`, if any).
    pub fn note_fault(&self, st: &SimState, app: Uuid, mailbox: Uuid, err: &GraphError) {
        let mut g = lock(&self.inner);
        let Inner { keys, mailboxes } = &mut *g;
        let ks = keys.entry((app, mailbox)).or_default();
        let ms = mailboxes.entry(mailbox).or_default();
        ks.counters.injected_faults += 1;
        ms.counters.injected_faults += 1;
        if err.status == StatusCode::TOO_MANY_REQUESTS {
            ks.counters.throttled += 1;
            ms.counters.throttled += 1;
        }
        if let Some(d) = err.retry_after.as_deref().and_then(parse_retry_after) {
            record(st, ks, ms, app, err, d);
            drop(g);
            self.arm_on_delivery((app, mailbox), d);
        }
    }

    /// Forgets counters, budget windows and `Retry-After` records (requests in flight stay).
    pub fn reset(&self) {
        let mut g = lock(&self.inner);
        for k in g.keys.values_mut() {
            k.window.clear();
            k.window_count = 0;
            k.retry_not_before = None;
            k.last_retry_after = None;
            k.counters = Counters {
                peak_concurrency: k.in_flight,
                ..Counters::default()
            };
        }
        for m in g.mailboxes.values_mut() {
            m.last_retry_after = None;
            m.counters = Counters {
                peak_concurrency: m.in_flight,
                ..Counters::default()
            };
        }
    }

    /// A snapshot of every mailbox seen so far.
    pub fn snapshot(&self) -> Vec<MailboxStats> {
        let g = lock(&self.inner);
        let mut out: Vec<MailboxStats> = g
            .mailboxes
            .iter()
            .map(|(id, m)| {
                let mut apps: Vec<AppStats> = g
                    .keys
                    .iter()
                    .filter(|((_, mb), _)| mb == id)
                    .map(|((app, _), k)| AppStats {
                        app_id: *app,
                        in_flight: k.in_flight,
                        window_requests: k.window_count,
                        counters: k.counters.clone(),
                        last_retry_after: k.last_retry_after.clone(),
                    })
                    .collect();
                apps.sort_by_key(|a| a.app_id);
                MailboxStats {
                    mailbox_id: *id,
                    in_flight: m.in_flight,
                    counters: m.counters.clone(),
                    last_retry_after: m.last_retry_after.clone(),
                    apps,
                }
            })
            .collect();
        out.sort_by_key(|m| m.mailbox_id);
        out
    }
}

fn record(
    st: &SimState,
    ks: &mut KeyState,
    ms: &mut MailboxState,
    app: Uuid,
    err: &GraphError,
    wait: Duration,
) {
    // The deadline itself is armed when the answer has been delivered (see `DeliveryMark`):
    // a request the client sent before it could see this 429 is not an early retry.
    let issued_at = st.now();
    let not_before = issued_at
        .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
        .unwrap_or(issued_at);
    let rec = RetryAfterRecord {
        app_id: app,
        status: err.status.as_u16(),
        code: err.code.clone(),
        retry_after: err.retry_after.clone().unwrap_or_default(),
        issued_at,
        not_before,
    };
    ks.last_retry_after = Some(rec.clone());
    ms.last_retry_after = Some(rec);
}

/// Requests arriving this soon after a 429 left the simulator may have been sent before the
/// client could read it (other tasks of the same client, already on the wire): not counted.
pub const DELIVERY_GRACE: Duration = Duration::from_millis(25);

/// Arms a `Retry-After` deadline once the answer that carries it has left the simulator
/// (after any injected latency): Retry-After counts from when the response is received
/// (RFC 9110 §10.2.3), so requests already in flight when the 429 was issued are not early.
struct DeliveryMark {
    inner: Arc<Mutex<Inner>>,
    key: Key,
    wait: Duration,
}

impl Drop for DeliveryMark {
    fn drop(&mut self) {
        let delivered = Instant::now();
        let deadline = delivered + self.wait;
        let mut g = lock(&self.inner);
        if let Some(ks) = g.keys.get_mut(&self.key) {
            let until = ks
                .retry_not_before
                .map_or(deadline, |(_, d)| d.max(deadline));
            ks.retry_not_before = Some((delivered + DELIVERY_GRACE, until));
        }
    }
}

impl Throttle {
    fn arm_on_delivery(&self, key: Key, wait: Duration) {
        crate::server::hold_until_response(DeliveryMark {
            inner: self.inner.clone(),
            key,
            wait,
        });
    }
}

/// One mailbox's counters, across apps and per app.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxStats {
    pub mailbox_id: Uuid,
    pub in_flight: u32,
    #[serde(flatten)]
    pub counters: Counters,
    pub last_retry_after: Option<RetryAfterRecord>,
    pub apps: Vec<AppStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppStats {
    pub app_id: Uuid,
    pub in_flight: u32,
    /// Requests counted in the current budget window.
    pub window_requests: u64,
    #[serde(flatten)]
    pub counters: Counters,
    pub last_retry_after: Option<RetryAfterRecord>,
}
