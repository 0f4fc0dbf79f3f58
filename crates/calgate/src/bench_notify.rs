//! `calgate bench notify --mailboxes M --changes C`: how long a change made in Exchange takes to
//! reach the host application's webhook receiver, through `calgate serve` as it runs in
//! production (Graph change notifications in, a delta round, the change log, a signed webhook
//! out), measured per change; then the same with notifications off (polling at a cadence), for
//! comparison. Prints p50/p99/max latency, changes lost (must be 0) and Graph requests per
//! change. The simulator runs as a child process, a fresh one per mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use crate::bench::{start_sim_with, store_linked_to};
use crate::config::Config;
use crate::output::{print_out, thousands};
use crate::sync_cmd::engine;

#[derive(Debug, Args)]
pub(crate) struct BenchNotifyArgs {
    /// Mailboxes linked (each gets a subscription).
    #[arg(long, value_name = "M", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub mailboxes: u32,
    /// Changes made in the simulator, spread over the mailboxes.
    #[arg(long, value_name = "C", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub changes: u32,
    /// Changes per second.
    #[arg(long, value_name = "R", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Latency the simulator adds to every Graph response, in milliseconds.
    #[arg(long, value_name = "L", default_value_t = 25)]
    pub latency_ms: u64,
    /// The polling cadence of the comparison run, in seconds (at least 10).
    #[arg(long, value_name = "S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub poll_seconds: u64,
    /// Skip the polling-only comparison.
    #[arg(long)]
    pub no_polling: bool,
    /// Seed of the simulated tenant.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
}

/// When each change was made and when its webhook arrived, by change number.
#[derive(Default)]
struct Clock {
    sent: HashMap<u32, Instant>,
    received: HashMap<u32, Instant>,
    deliveries: u64,
}

type Shared = Arc<Mutex<Clock>>;

fn lock(c: &Shared) -> std::sync::MutexGuard<'_, Clock> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

async fn receiver(clock: Shared) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let clock = clock.clone();
            async move {
                let now = Instant::now();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let n = v["data"]["subject"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("bench-notify-"))
                        .and_then(|s| s.parse::<u32>().ok());
                    let mut c = lock(&clock);
                    c.deliveries += 1;
                    if let Some(n) = n {
                        c.received.entry(n).or_insert(now);
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64()
}

async fn sim_requests(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let stats: Value = http
        .get(format!("{base}/_sim/stats"))
        .send()
        .await?
        .json()
        .await
        .context("the simulator's stats are not JSON")?;
    Ok(stats["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|m| m["requests"].as_u64())
        .sum())
}

/// One mode: `notify` (Graph change notifications) or polling at `poll_seconds`.
async fn one_mode(args: &BenchNotifyArgs, notify: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("calgate-bench-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let creds_path = dir.path().join("sim-credentials.json");
    let (sim, base) = start_sim_with(args.mailboxes, 20, args.latency_ms, args.rng, &creds_path)?;
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(&creds_path).context("cannot read the simulator's credentials")?,
    )?;
    let (store, linked) = store_linked_to(&creds, &base, &dir.path().join("data")).await?;
    let addresses: Vec<String> = store
        .list_mailboxes()
        .await?
        .into_iter()
        .map(|m| m.address)
        .collect();
    let t0 = Instant::now();
    let first = engine(store.clone(), calgate_sync::DEFAULT_CONCURRENCY)?
        .sync(&calgate_sync::SyncRequest::default(), None)
        .await?;
    let first_sync = t0.elapsed();
    let clock: Shared = Arc::default();
    let hook = receiver(clock.clone()).await?;
    store
        .add_webhook(&hook, Some(&["event.created".to_owned()]))
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::default();
    if notify {
        config.notifications_url = Some(format!("http://{addr}"));
    } else {
        config.cadence = Duration::from_secs(args.poll_seconds);
        config.jitter = config.cadence / 10;
    }
    let service = crate::serve::start_on(store.clone(), &config, listener, true).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(crate::serve::run_service_until(service, async move {
        let _ = stopped.await;
    }));
    let mode = if notify {
        "with change notifications".to_owned()
    } else {
        format!("polling only, every {} s", args.poll_seconds)
    };
    print_out(&format!(
        "bench notify ({mode}): {} mailboxes, {} changes at {}/s, simulator latency {} ms (first sync {:.1} s, {} events)\n",
        thousands(linked),
        thousands(u64::from(args.changes)),
        args.rate,
        args.latency_ms,
        first_sync.as_secs_f64(),
        thousands(first.totals.events_upserted),
    ));
    if notify {
        let t = Instant::now();
        loop {
            let active = store
                .subscriptions()
                .await?
                .iter()
                .filter(|r| r.state == calgate_store::SubscriptionState::Active)
                .count() as u64;
            if active == linked {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("only {active} of {linked} mailboxes subscribed after 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        print_out(&format!(
            "subscriptions:        {} made and validated in {:.1} s\n",
            thousands(linked),
            t.elapsed().as_secs_f64()
        ));
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let before = sim_requests(&http, &base).await?;
    let day = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let t_changes = Instant::now();
    for i in 0..args.changes {
        let due = t_changes + gap * i;
        tokio::time::sleep_until(due.into()).await;
        let who = &addresses[i as usize % addresses.len()];
        let start = day + jiff::SignedDuration::from_mins(i64::from(i % 600) * 5);
        let end = start + jiff::SignedDuration::from_mins(30);
        let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let body = json!({
            "subject": format!("bench-notify-{i}"),
            "start": {"dateTime": fmt(start), "timeZone": "UTC"},
            "end": {"dateTime": fmt(end), "timeZone": "UTC"},
            "showAs": "busy",
        });
        let r = http
            .post(format!("{base}/_sim/mailboxes/{who}/events"))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "the simulator refused change {i}: {}",
            r.status()
        );
        lock(&clock).sent.insert(i, Instant::now());
    }
    let changing = t_changes.elapsed();
    let limit = if notify {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(args.poll_seconds * 2 + 60)
    };
    let t_wait = Instant::now();
    while (lock(&clock).received.len() as u32) < args.changes && t_wait.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = sim_requests(&http, &base).await?;
    let _ = stop.send(());
    let _ = serving.await;
    drop(sim);

    let c = lock(&clock);
    let mut lat: Vec<Duration> = c
        .sent
        .iter()
        .filter_map(|(n, s)| c.received.get(n).map(|r| r.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let lost = u64::from(args.changes) - lat.len() as u64;
    let requests = after.saturating_sub(before);
    print_out(&format!(
        "changes:              {} made in {:.1} s; {} reached the webhook receiver, {} did not (within {} s of the last)\n",
        thousands(u64::from(args.changes)),
        changing.as_secs_f64(),
        thousands(lat.len() as u64),
        lost,
        limit.as_secs()
    ));
    print_out(&format!(
        "change → webhook:     p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s\n",
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        lat.last().map_or(f64::NAN, Duration::as_secs_f64),
    ));
    print_out(&format!(
        "Graph requests:       {} while the changes came in and were delivered ({:.2} per change)\n",
        thousands(requests),
        requests as f64 / f64::from(args.changes),
    ));
    Ok(())
}

pub(crate) async fn run(args: BenchNotifyArgs) -> anyhow::Result<()> {
    one_mode(&args, true).await?;
    if !args.no_polling {
        one_mode(&args, false).await?;
    }
    Ok(())
}
