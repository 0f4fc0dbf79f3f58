//! Shared simulator state: the tenant model behind one mutex, the simulated clock, and the
//! per-subsystem states (tokens, throttling, faults, delta sync states, subscriptions,
//! published credentials).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use jiff::{SignedDuration, Timestamp};

use crate::model::Directory;

/// Largest latency (ms), two minutes — well past any client timeout worth testing:
/// `PUT /_sim/settings` and `PUT /_sim/faults` reject more with a 400, `--latency-ms` is capped.
pub const MAX_LATENCY_MS: u64 = 120_000;

/// Settings fixed at start-up (the CLI flags of `calgate sim`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Added to every response (`--latency-ms`).
    pub latency_ms: u64,
    /// Requests per (app, mailbox) per 10 minutes before `429 TooManyRequests` (default 10,000).
    pub request_budget: u32,
    /// Concurrent requests per (app, mailbox) before `429 ApplicationThrottled` (default 4).
    pub mailbox_concurrency: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            latency_ms: 0,
            request_budget: 10_000,
            mailbox_concurrency: 4,
        }
    }
}

/// An app whose credentials `--credentials-out` publishes.
#[derive(Clone)]
pub struct PublishedApp {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub roles: Vec<String>,
}

impl std::fmt::Debug for PublishedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedApp")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug)]
pub struct SimState {
    directory: Mutex<Directory>,
    /// Seconds added to the real clock (`POST /_sim/clock`), so tests can expire secrets and tokens.
    clock_offset_s: AtomicI64,
    pub settings: Mutex<Settings>,
    /// `http://127.0.0.1:port` or `https://localhost:port`, set once the listener is bound.
    pub base_url: OnceLock<String>,
    /// PEM of the generated CA, with `--tls`.
    pub ca_cert_pem: OnceLock<String>,
    pub published: Mutex<Vec<PublishedApp>>,
    pub tokens: crate::tokens::TokenState,
    pub throttle: crate::throttle::Throttle,
    pub faults: crate::faults::Faults,
    pub delta: crate::graph::delta::SyncStates,
    pub subscriptions: crate::subscriptions::Subscriptions,
    /// The EWS face's state (auth settings, sync states, faults, NTLM connections).
    pub ews: crate::ews::state::EwsState,
}

impl SimState {
    pub fn new(directory: Directory, settings: Settings) -> Self {
        SimState {
            directory: Mutex::new(directory),
            clock_offset_s: AtomicI64::new(0),
            settings: Mutex::new(settings),
            base_url: OnceLock::new(),
            ca_cert_pem: OnceLock::new(),
            published: Mutex::new(Vec::new()),
            tokens: crate::tokens::TokenState::new(),
            throttle: crate::throttle::Throttle::default(),
            faults: crate::faults::Faults::default(),
            delta: crate::graph::delta::SyncStates::default(),
            subscriptions: crate::subscriptions::Subscriptions::default(),
            ews: crate::ews::state::EwsState::default(),
        }
    }

    /// Locks the tenant model. Never hold the guard across an `.await`.
    pub fn dir(&self) -> MutexGuard<'_, Directory> {
        lock(&self.directory)
    }

    /// The simulated "now" (real clock plus the test offset).
    pub fn now(&self) -> Timestamp {
        let off = self.clock_offset_s.load(Ordering::Relaxed);
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(off))
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Moves the simulated clock forward (or back) by `secs`.
    pub fn advance_clock(&self, secs: i64) {
        self.clock_offset_s.fetch_add(secs, Ordering::Relaxed);
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn base_url(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("")
    }
}

/// Locks a std mutex, recovering from poisoning (a panicked handler must not wedge the simulator).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
