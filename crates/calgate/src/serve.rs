//! `calgate serve`: the REST API of DESIGN.md's contract, with the sync engine running in the
//! background on a cadence and webhooks delivered from the store's queue. SIGTERM / Ctrl-C: stop taking work, let the requests and the rounds
//! in flight finish (their writes are transactions), exit 0 within 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use calgate_api::metrics::Metrics;
use calgate_api::{ApiConfig, AppState};
use calgate_store::Store;
use calgate_sync::scheduler::{self, SchedulerOptions, SummaryFn};
use calgate_sync::{Engine, EngineOptions, SyncRequest, WindowConfig};
use clap::Args;

use crate::config::Config;
use crate::output::print_out;
use crate::{StoreLocation, sync_cmd};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the API listens (default 127.0.0.1:8080, or server.listen / CALGATE_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Create the data directory and store when there is none (as `connection add` would).
    #[arg(long)]
    pub create: bool,
    /// Do not run the background sync (serve the stored data only).
    #[arg(long)]
    pub no_sync: bool,
    /// Refuse to start on a database whose schema is older than this calgate's, instead of
    /// migrating it (run `calgate migrate` after a backup, then start).
    #[arg(long, conflicts_with = "create")]
    pub no_migrate: bool,
    /// Log lines as `text` or `json` (default: log.format / CALGATE_LOG_FORMAT, else text).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
}

/// The running service: the API's state and its scheduler.
pub(crate) struct Service {
    pub state: AppState,
    pub listener: tokio::net::TcpListener,
    /// Days the change log is kept (`[server] history_days`).
    pub history_days: u32,
}

/// Sets up the engine, scheduler and API state over `store`, bound to `listen`.
pub(crate) async fn start(
    store: Arc<dyn Store>,
    config: &Config,
    listen: SocketAddr,
    background_sync: bool,
) -> anyhow::Result<Service> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (in use, or not an address of this machine): pick another with --listen ADDR")
    })?;
    start_on(store, config, listener, background_sync).await
}

/// [`start`] on a listener bound already (the demo and benchmarks take Graph's change
/// notifications at its address, known only once bound).
pub(crate) async fn start_on(
    store: Arc<dyn Store>,
    config: &Config,
    listener: tokio::net::TcpListener,
    background_sync: bool,
) -> anyhow::Result<Service> {
    let local = listener
        .local_addr()
        .context("the listener has no address")?;
    let engine: Engine = sync_cmd::engine_with(
        store.clone(),
        EngineOptions {
            concurrency: config.concurrency,
            ..EngineOptions::default()
        },
    )?;
    let metrics = Arc::new(Metrics::default());
    let scheduler = background_sync.then(|| {
        let m = metrics.clone();
        let on_summary: SummaryFn = Arc::new(move |s| {
            m.record_summary(s);
            for line in sync_cmd::failure_lines(s) {
                tracing::warn!("{line}");
            }
        });
        scheduler::spawn(
            engine.clone(),
            SchedulerOptions {
                cadence: config.cadence,
                jitter: config.jitter,
                request: SyncRequest {
                    window: WindowConfig {
                        days_back: config.days_back,
                        days_ahead: config.days_ahead,
                    },
                    ..SyncRequest::default()
                },
                ..SchedulerOptions::default()
            },
            Some(on_summary),
        )
    });
    // Change notifications: Graph tells calgate what changed; the scheduler then polls those
    // mailboxes only as a safety net.
    let notifier = config.notifications_url.as_deref().map(|url| {
        calgate_sync::notify::Notifier::new(
            engine.clone(),
            calgate_sync::notify::NotifyOptions::new(url),
        )
    });
    if let (Some(n), Some(s)) = (&notifier, &scheduler) {
        s.follow_notifications(n.notified(), config.safety_net);
    }
    let public_url = match &config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("http://{local}"),
    };
    let mut state = AppState::new(
        store,
        engine,
        scheduler,
        metrics,
        ApiConfig {
            public_url,
            window: WindowConfig {
                days_back: config.days_back,
                days_ahead: config.days_ahead,
            },
            ..ApiConfig::default()
        },
    );
    if let Some(n) = notifier {
        state = state.with_notifier(n);
    }
    Ok(Service {
        state,
        listener,
        history_days: config.history_days,
    })
}

/// Serves until SIGTERM or Ctrl-C, then shuts down within 10 s.
pub(crate) async fn run_service(service: Service) -> anyhow::Result<()> {
    run_service_until(service, crate::sim_cmd::wait_for_shutdown()).await
}

/// Serves until `stop` resolves, then shuts down within 10 s.
pub(crate) async fn run_service_until(
    service: Service,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let Service {
        state,
        listener,
        history_days,
    } = service;
    // Busy time of every mailbox into memory, beside serving (availability answers from the
    // store meanwhile).
    let warm = state.clone();
    tokio::spawn(async move {
        match warm.busy.warm(warm.store.as_ref()).await {
            Ok(n) => tracing::debug!("busy time of {n} mailboxes in memory"),
            Err(e) => tracing::warn!("could not load busy time ahead: {}", e.detail),
        }
    });
    let scheduler = state.scheduler.clone();
    let store = state.store.clone();
    // Webhooks: the change log fanned out to the host's endpoints, delivered from the queue.
    let webhooks = calgate_api::webhooks::Dispatcher::new(
        store.clone(),
        calgate_api::webhooks::DispatcherOptions {
            retention: jiff::SignedDuration::from_hours(i64::from(history_days) * 24),
            ..Default::default()
        },
    )
    .spawn();
    // Subscriptions: made and renewed while serving (the API must answer Graph's validation).
    let notifier = state
        .notifier
        .clone()
        .filter(|_| state.scheduler.is_some())
        .map(calgate_sync::notify::Notifier::spawn);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(calgate_api::serve(listener, state, async move {
        let _ = rx.await;
    }));
    stop.await;
    tracing::info!("shutting down: no new work; finishing what is in flight");
    let _ = tx.send(());
    let stop_sync = async {
        if let Some(s) = &scheduler {
            s.shutdown(Duration::from_secs(8)).await;
        }
    };
    let stop_api = async {
        let _ = tokio::time::timeout(Duration::from_secs(8), server).await;
    };
    // A delivery not finished by then stays queued and is sent again at the next start.
    let stop_webhooks = webhooks.shutdown(Duration::from_secs(8));
    let stop_notifier = async {
        if let Some(n) = notifier {
            n.shutdown(Duration::from_secs(5)).await;
        }
    };
    tokio::join!(stop_sync, stop_api, stop_webhooks, stop_notifier);
    store.close().await;
    Ok(())
}

pub(crate) async fn run(args: ServeArgs, loc: StoreLocation, config: Config) -> anyhow::Result<()> {
    let store = if args.create {
        loc.open_or_create().await?
    } else if args.no_migrate {
        loc.open_without_migrating().await?
    } else {
        loc.open().await?
    };
    if let Some(from) = store.schema().await?.migrated_from {
        tracing::info!(from, "the database was migrated to this calgate's schema");
        print_out(&format!(
            "calgate serve: migrated the database from schema {from} to schema {}\n",
            store.schema().await?.version
        ));
    }
    let listen = args.listen.unwrap_or(config.listen);
    let service = start(store, &config, listen, !args.no_sync).await?;
    let addr = service
        .listener
        .local_addr()
        .context("the listener has no address")?;
    print_out(&format!(
        "calgate serve: API on http://{addr} (OpenAPI: http://{addr}/openapi.json){}\n",
        if args.no_sync {
            ", background sync off".to_owned()
        } else {
            format!(", syncing every {} s", config.cadence.as_secs())
        }
    ));
    run_service(service).await
}
