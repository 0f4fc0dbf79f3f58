//! The EWS face's own state: which authentication schemes the server offers, SyncFolderItems
//! sync states, injected faults, and (stage 2) NTLM connections and concurrency counters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::lock;

/// The IIS authentication settings of the `/EWS` virtual directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSettings {
    /// Basic authentication enabled.
    pub basic: bool,
    /// Windows authentication (NTLM, offered as `NTLM` and `Negotiate`) enabled.
    pub ntlm: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            basic: true,
            ntlm: true,
        }
    }
}

/// One SyncFolderItems state: what the client has seen (stored item id → change key).
#[derive(Debug, Clone)]
pub struct SyncSnapshot {
    pub mailbox: Uuid,
    pub items: HashMap<String, String>,
}

/// Most sync states kept (oldest forgotten first, as if expired).
pub const MAX_SYNC_STATES: usize = 20_000;

#[derive(Debug, Default)]
struct SyncStore {
    states: HashMap<String, SyncSnapshot>,
    order: VecDeque<String>,
}

/// Faults injected through `PUT /_sim/ews/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EwsFaults {
    /// The next this-many EWS requests get `HTTP 503 Service Unavailable` (before
    /// authentication, as when IIS queues).
    #[serde(default)]
    pub http_503: u32,
    /// Server-busy faults per account (`DOMAIN\\user`, UPN or user, case-insensitive):
    /// the next `count` requests of that account get `ErrorServerBusy` with
    /// `BackOffMilliseconds`.
    #[serde(default)]
    pub server_busy: Vec<ServerBusyFault>,
    /// Concurrent requests per account before `ErrorExceededConnectionCount`
    /// (`EWSMaxConcurrency`; `null` = 27).
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerBusyFault {
    pub account: String,
    pub count: u32,
    #[serde(default = "default_back_off")]
    pub back_off_ms: u64,
}

fn default_back_off() -> u64 {
    5_000
}

/// Exchange's default `EWSMaxConcurrency` (2013 and later).
pub const DEFAULT_MAX_CONCURRENCY: u32 = 27;

#[derive(Debug, Default)]
pub struct EwsState {
    auth: Mutex<AuthSettings>,
    sync: Mutex<SyncStore>,
    faults: Mutex<EwsFaults>,
    /// Mailboxes whose next SyncFolderItems with a sync state fails (one-shot per mailbox).
    broken_sync: Mutex<HashSet<Uuid>>,
    /// Requests in flight per account (lower-cased logon).
    in_flight: std::sync::Arc<Mutex<HashMap<String, u32>>>,
    /// Counters for `GET /_sim/ews/stats`.
    pub stats: Mutex<EwsStats>,
    /// NTLM state per TCP connection.
    pub ntlm: super::ntlm::Connections,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EwsStats {
    pub requests: u64,
    pub unauthorized: u64,
    pub server_busy: u64,
    pub exceeded_connection_count: u64,
    pub http_503: u64,
    pub invalid_sync_state: u64,
    /// Requests per operation name.
    pub operations: std::collections::BTreeMap<String, u64>,
}

impl EwsState {
    pub fn auth(&self) -> AuthSettings {
        *lock(&self.auth)
    }
    pub fn set_auth(&self, a: AuthSettings) {
        *lock(&self.auth) = a;
    }

    pub fn faults(&self) -> EwsFaults {
        lock(&self.faults).clone()
    }
    pub fn set_faults(&self, f: EwsFaults) {
        *lock(&self.faults) = f;
    }

    /// Consumes one injected 503, if any.
    pub fn take_503(&self) -> bool {
        let mut f = lock(&self.faults);
        if f.http_503 > 0 {
            f.http_503 -= 1;
            lock(&self.stats).http_503 += 1;
            true
        } else {
            false
        }
    }

    /// Consumes one injected server-busy fault for the account, returning its back-off.
    pub fn take_server_busy(&self, account: &crate::model::EwsAccount) -> Option<u64> {
        let mut f = lock(&self.faults);
        let hit = f
            .server_busy
            .iter_mut()
            .find(|b| b.count > 0 && account.matches(&b.account))?;
        hit.count -= 1;
        let ms = hit.back_off_ms;
        f.server_busy.retain(|b| b.count > 0);
        lock(&self.stats).server_busy += 1;
        Some(ms)
    }

    /// Counts a request of `account` in; `None` when the account already has the maximum in
    /// flight. The guard counts it out.
    pub fn enter(&self, account: &str) -> Option<InFlight> {
        let max = lock(&self.faults)
            .max_concurrency
            .unwrap_or(DEFAULT_MAX_CONCURRENCY);
        let key = account.to_ascii_lowercase();
        let mut m = lock(&self.in_flight);
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            drop(m);
            lock(&self.stats).exceeded_connection_count += 1;
            return None;
        }
        *n += 1;
        Some(InFlight {
            map: std::sync::Arc::clone(&self.in_flight),
            key,
        })
    }

    /// Stores a sync state and returns its opaque token.
    pub fn save_sync(&self, snap: SyncSnapshot) -> String {
        use base64::Engine as _;
        let mut raw = vec![0x53, 0x59, 0x4e, 0x43]; // "SYNC"
        raw.extend_from_slice(Uuid::new_v4().as_bytes());
        raw.extend_from_slice(snap.mailbox.as_bytes());
        let token = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut s = lock(&self.sync);
        while s.order.len() >= MAX_SYNC_STATES {
            if let Some(old) = s.order.pop_front() {
                s.states.remove(&old);
            }
        }
        s.order.push_back(token.clone());
        s.states.insert(token.clone(), snap);
        token
    }

    /// The sync state behind `token` for `mailbox`; `None` when unknown, for another mailbox,
    /// or invalidated through the control API.
    pub fn load_sync(&self, token: &str, mailbox: Uuid) -> Option<SyncSnapshot> {
        if lock(&self.broken_sync).remove(&mailbox) {
            lock(&self.stats).invalid_sync_state += 1;
            return None;
        }
        let snap = lock(&self.sync).states.get(token.trim()).cloned();
        match snap {
            Some(s) if s.mailbox == mailbox => Some(s),
            _ => {
                lock(&self.stats).invalid_sync_state += 1;
                None
            }
        }
    }

    /// Forgets every sync state of `mailbox`, and makes its next SyncFolderItems with a sync
    /// state fail with `ErrorInvalidSyncStateData` (even a state made after this call).
    pub fn invalidate_sync(&self, mailbox: Uuid) -> usize {
        let mut s = lock(&self.sync);
        let before = s.states.len();
        s.states.retain(|_, v| v.mailbox != mailbox);
        let removed = before - s.states.len();
        let SyncStore { states, order } = &mut *s;
        order.retain(|t| states.contains_key(t));
        drop(s);
        lock(&self.broken_sync).insert(mailbox);
        removed
    }

    pub fn count_operation(&self, op: &str) {
        let mut s = lock(&self.stats);
        s.requests += 1;
        *s.operations.entry(op.to_owned()).or_insert(0) += 1;
    }

    /// Back to the start-up state (auth settings, faults, sync states, counters).
    pub fn reset(&self) {
        *lock(&self.auth) = AuthSettings::default();
        *lock(&self.faults) = EwsFaults::default();
        *lock(&self.sync) = SyncStore::default();
        lock(&self.broken_sync).clear();
        *lock(&self.stats) = EwsStats::default();
    }
}

/// A request counted in by [`EwsState::enter`]; counted out when dropped (the handler keeps
/// it until the response is ready, injected latency included).
#[derive(Debug)]
pub struct InFlight {
    map: std::sync::Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = lock(&self.map);
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}
