//! `/metrics` in Prometheus' text format: what a scrape reads live (mailboxes, lag, events,
//! Graph counters) and what calgate counts (sync rounds and failures by kind, API latency).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use calgate_store::MailboxSyncState;
use calgate_sync::Summary;
use jiff::Timestamp;

/// Upper bounds of the API latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Microseconds.
    sum: AtomicU64,
}

/// calgate's own counters.
#[derive(Default)]
pub struct Metrics {
    rounds: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    upserts: AtomicU64,
    removals: AtomicU64,
    /// By route template and status class.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Histogram,
    /// Graph change notifications: accepted, and dropped (unknown subscription or wrong
    /// clientState).
    pub notifications_accepted: AtomicU64,
    pub notifications_dropped: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A label value as Prometheus' text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts a finished sync batch.
    pub fn record_summary(&self, s: &Summary) {
        self.rounds
            .fetch_add(s.outcomes.len() as u64, Ordering::Relaxed);
        self.upserts
            .fetch_add(s.totals.events_upserted, Ordering::Relaxed);
        self.removals
            .fetch_add(s.totals.events_removed, Ordering::Relaxed);
        let mut f = lock(&self.failures);
        for o in s.failures() {
            if let Some(fail) = &o.failure {
                *f.entry(fail.kind.as_str().to_owned()).or_insert(0) += 1;
            }
        }
    }

    /// Counts an API request.
    pub fn record_request(&self, route: &str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((route.to_owned(), status))
            .or_insert(0) += 1;
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency.count.fetch_add(1, Ordering::Relaxed);
        self.latency.sum.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text exposition, with what is read live at scrape time.
    pub fn render(
        &self,
        states: &[MailboxSyncState],
        graph: &calgate_graph::MetricsSnapshot,
        graph_by_status: &[(u16, u64)],
        now: Timestamp,
    ) -> String {
        let mut o = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "calgate_sync_rounds_total",
            "Mailbox sync rounds run by this process.",
            self.rounds.load(Ordering::Relaxed),
        );
        counter(
            "calgate_sync_events_upserted_total",
            "Instances written by sync rounds.",
            self.upserts.load(Ordering::Relaxed),
        );
        counter(
            "calgate_sync_events_removed_total",
            "Instances removed by sync rounds.",
            self.removals.load(Ordering::Relaxed),
        );
        counter(
            "calgate_notifications_accepted_total",
            "Graph change notifications accepted (each makes its mailbox due now).",
            self.notifications_accepted.load(Ordering::Relaxed),
        );
        counter(
            "calgate_notifications_dropped_total",
            "Graph change notifications dropped: unknown subscription or wrong clientState.",
            self.notifications_dropped.load(Ordering::Relaxed),
        );
        counter(
            "calgate_graph_requests_total",
            "HTTP requests sent to Microsoft Graph.",
            graph.requests_sent,
        );
        counter(
            "calgate_graph_throttled_total",
            "Throttled answers (429) from Microsoft Graph.",
            graph.throttled,
        );
        counter(
            "calgate_graph_retries_total",
            "Requests sent again after a throttled or failed attempt.",
            graph.retries,
        );
        counter(
            "calgate_token_requests_total",
            "Requests to the Entra ID token endpoint.",
            graph.token_requests,
        );
        let _ = writeln!(
            o,
            "# HELP calgate_graph_responses_total Microsoft Graph answers by HTTP status.\n# TYPE calgate_graph_responses_total counter"
        );
        for (status, n) in graph_by_status {
            let _ = writeln!(
                o,
                "calgate_graph_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP calgate_sync_failures_total Failed mailbox rounds by failure kind.\n# TYPE calgate_sync_failures_total counter"
        );
        for (kind, n) in lock(&self.failures).iter() {
            let _ = writeln!(
                o,
                "calgate_sync_failures_total{{kind=\"{}\"}} {n}",
                label(kind)
            );
        }
        let me = calgate_store::LeaseHolder::this_process();
        let _ = writeln!(
            o,
            "# HELP calgate_instance_info This calgate process (the value of last_round_by in GET /v1/mailboxes for the rounds it runs).\n# TYPE calgate_instance_info gauge\ncalgate_instance_info{{instance=\"{}\",pid=\"{}\",host=\"{}\"}} 1",
            label(&me.to_string()),
            me.pid,
            label(&me.host)
        );
        let events: u64 = states.iter().map(|s| s.live_instances).sum();
        let failing = states
            .iter()
            .filter(|s| s.status.last_error.is_some())
            .count();
        let _ = writeln!(
            o,
            "# HELP calgate_mailboxes Linked mailboxes.\n# TYPE calgate_mailboxes gauge\ncalgate_mailboxes {}\n# HELP calgate_mailboxes_failing Mailboxes whose last round failed.\n# TYPE calgate_mailboxes_failing gauge\ncalgate_mailboxes_failing {failing}\n# HELP calgate_events_stored Instances stored over all mailboxes.\n# TYPE calgate_events_stored gauge\ncalgate_events_stored {events}",
            states.len()
        );
        let _ = writeln!(
            o,
            "# HELP calgate_mailbox_lag_seconds Seconds since the mailbox's last successful round.\n# TYPE calgate_mailbox_lag_seconds gauge"
        );
        for s in states {
            if let Some(at) = s.status.last_success {
                let lag = now.duration_since(at).as_secs_f64().max(0.0);
                let _ = writeln!(
                    o,
                    "calgate_mailbox_lag_seconds{{mailbox=\"{}\"}} {lag:.3}",
                    label(&s.mailbox.address)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP calgate_api_requests_total API requests by route and status.\n# TYPE calgate_api_requests_total counter"
        );
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                o,
                "calgate_api_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        let _ = writeln!(
            o,
            "# HELP calgate_api_request_duration_seconds API request latency.\n# TYPE calgate_api_request_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "calgate_api_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "calgate_api_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\ncalgate_api_request_duration_seconds_sum {:.6}\ncalgate_api_request_duration_seconds_count {count}",
            self.latency.sum.load(Ordering::Relaxed) as f64 / 1e6
        );
        o
    }
}
