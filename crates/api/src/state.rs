//! What every handler shares.

use std::sync::Arc;

use calgate_store::Store;
use calgate_sync::Engine;
use calgate_sync::scheduler::SchedulerHandle;

use crate::availability::BusyCache;
use crate::metrics::Metrics;

/// Settings of the API itself.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The URL the host application reaches calgate at (feed URLs are built from it), without
    /// a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// The longest window a request may ask for, in days (default 731: two years).
    pub max_window_days: i64,
    /// The sync window (ICS feeds cover it).
    pub window: calgate_sync::WindowConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            public_url: "http://127.0.0.1:8080".to_owned(),
            max_window_days: 731,
            window: calgate_sync::WindowConfig::default(),
        }
    }
}

/// The shared state of `calgate serve`.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    /// The background scheduler (`None` in tests that run without one).
    pub scheduler: Option<SchedulerHandle>,
    pub metrics: Arc<Metrics>,
    pub config: ApiConfig,
    /// Busy time kept between availability requests.
    pub busy: Arc<BusyCache>,
    /// Graph change notifications (`None`: no `[notifications] public_url`, polling only).
    pub notifier: Option<calgate_sync::notify::Notifier>,
    /// The admin console's sessions and sign-in lockout.
    pub console: Arc<crate::console::ConsoleState>,
}

impl AppState {
    /// The state of a server over `store` and `engine`, with a fresh metrics registry and busy
    /// cache.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Engine,
        scheduler: Option<SchedulerHandle>,
        metrics: Arc<Metrics>,
        config: ApiConfig,
    ) -> AppState {
        AppState {
            store,
            engine,
            scheduler,
            metrics,
            config,
            busy: Arc::new(BusyCache::default()),
            notifier: None,
            console: Arc::default(),
        }
    }
}

impl AppState {
    /// The same state, taking Graph's change notifications through `notifier`.
    pub fn with_notifier(mut self, notifier: calgate_sync::notify::Notifier) -> AppState {
        self.notifier = Some(notifier);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
