//! `calgate sim`: a Microsoft 365 simulator — Entra ID (OIDC discovery, JWKS, v2 and v1 token
//! endpoints, an authorize page) and Microsoft Graph v1.0 calendars (users, calendars, events,
//! calendarView and its delta, instances, getSchedule, places, `$batch`, subscriptions and
//! change notifications), with Graph's
//! throttling, errors and paging, a tenant seeded with realistic data, and a control API under
//! `/_sim/` for tests and benchmarks. An EWS face (`/EWS/Exchange.asmx`, [`ews`], documented in
//! `docs/sim/ews.md`) serves the same tenant model as an on-premises Exchange 2019 would.
//!
//! Architecture invariant: this crate is written from Microsoft's documentation and shares no
//! wire types with calgate's client crates; it may depend only on `calgate-tz` and
//! `calgate-recurrence` among calgate's crates.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod control;
pub mod control_apps;
pub mod control_directory;
pub mod control_events;
pub mod control_ews;
pub mod control_faults;
pub mod control_meetings;
pub mod control_subscriptions;
pub mod error;
pub mod ews;
pub mod expand;
pub mod faults;
pub mod graph;
pub mod identity;
pub mod meetings;
pub mod model;
pub mod seed;
pub mod server;
pub mod state;
pub mod subscriptions;
pub mod throttle;
pub mod tokens;

pub use state::{MAX_LATENCY_MS, SimState};

/// Which tenant to start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// A realistic organisation: people, rooms in room lists, equipment, months of events.
    #[default]
    Demo,
    /// One tenant with one app and no mailboxes.
    Empty,
}

impl std::str::FromStr for Seed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "demo" => Ok(Seed::Demo),
            "empty" => Ok(Seed::Empty),
            other => Err(format!("unknown seed '{other}' (expected demo or empty)")),
        }
    }
}

/// Start-up options; the flags of `calgate sim`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub tls: bool,
    pub seed: Seed,
    /// Extra mailboxes with a realistic event mix, for benchmarks.
    pub scale: usize,
    /// Event instances per `scale` mailbox in the seeding window (30 days back, 120 ahead);
    /// `None`: the seed's ~150. The five series and six all-day events (~62 instances there)
    /// are always present; the rest are singles.
    pub scale_events: Option<usize>,
    /// Seed of the random generator: the same value gives the same tenant.
    pub rng: u64,
    /// Added to every Graph and identity response; capped at [`MAX_LATENCY_MS`] (a larger
    /// value is logged and replaced by the cap).
    pub latency_ms: u64,
    /// Requests per (app, mailbox) per 10 minutes (Graph: 10,000).
    pub request_budget: u32,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            seed: Seed::Demo,
            scale: 0,
            scale_events: None,
            rng: 1,
            latency_ms: 0,
            request_budget: 10_000,
        }
    }
}

/// Default of [`ConnectionLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on the listener's connections, so that a client that connects and then sends a
/// request head slowly, partly or not at all cannot hold a connection and its task forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has, from the moment the simulator starts waiting for it, to complete
    /// the TLS handshake (with `--tls`), to send the first bytes that tell HTTP/1.1 from
    /// HTTP/2, and to send each HTTP/1.1 request head (which also closes a keep-alive
    /// connection idle for that long). Past it the connection is closed without an answer.
    /// Kept between 1 ms and one hour.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot seed the tenant: {0}")]
    Seed(String),
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub base_url: String,
    pub state: Arc<SimState>,
    /// PEM of the generated CA (with `--tls`).
    pub ca_cert_pem: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The demo/primary tenant's id.
    pub fn tenant_id(&self) -> String {
        self.state
            .dir()
            .tenants
            .first()
            .map(|t| t.id.to_string())
            .unwrap_or_default()
    }

    /// The `--credentials-out` document:
    /// `{"tenant_id","authority","graph_url","ews_url","ca_cert_pem"?,"apps":[…],"mailboxes":[…]}`.
    pub fn credentials(&self) -> serde_json::Value {
        seed::credentials_document(&self.state, &self.base_url, self.ca_cert_pem.as_deref())
    }

    /// Stops accepting connections and delivering notifications, and waits for the accept
    /// loop to end.
    pub async fn shutdown(mut self) {
        self.state.subscriptions.shutdown();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.state.subscriptions.shutdown();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Seeds the tenant, binds the listener and serves in the background, with the default
/// [`ConnectionLimits`].
pub async fn start(opts: SimOptions) -> Result<SimHandle, SimError> {
    start_with_limits(opts, ConnectionLimits::default()).await
}

/// [`start`] with other connection limits (tests use a short header-read timeout).
pub async fn start_with_limits(
    opts: SimOptions,
    limits: ConnectionLimits,
) -> Result<SimHandle, SimError> {
    let limits = ConnectionLimits {
        header_read_timeout: limits
            .header_read_timeout
            .clamp(Duration::from_millis(1), Duration::from_secs(3600)),
    };
    let (directory, published) = seed::build(&opts)?;
    if opts.latency_ms > MAX_LATENCY_MS {
        tracing::warn!(
            latency_ms = opts.latency_ms,
            max = MAX_LATENCY_MS,
            "latency capped at {MAX_LATENCY_MS} ms"
        );
    }
    let settings = state::Settings {
        latency_ms: opts.latency_ms.min(MAX_LATENCY_MS),
        request_budget: opts.request_budget,
        ..state::Settings::default()
    };
    let state = Arc::new(SimState::new(directory, settings));
    *state::lock(&state.published) = published;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: opts.listen,
        source,
    })?;
    let (tls, ca_cert_pem) = if opts.tls {
        let m = server::generate_tls()?;
        (Some(m.server_config), Some(m.ca_cert_pem))
    } else {
        (None, None)
    };
    let host = if opts.tls {
        "localhost".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let scheme = if opts.tls { "https" } else { "http" };
    let base_url = format!("{scheme}://{host}:{}", addr.port());
    let _ = state.base_url.set(base_url.clone());
    if let Some(pem) = &ca_cert_pem {
        let _ = state.ca_cert_pem.set(pem.clone());
    }
    let app = server::router(state.clone());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(server::serve(listener, app, tls, limits, state.clone(), rx));
    Ok(SimHandle {
        addr,
        base_url,
        state,
        ca_cert_pem,
        shutdown: Some(tx),
        task: Some(task),
    })
}
