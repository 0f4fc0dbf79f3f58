//! `calgate bench api`: the REST API under a fixed offered load (open loop: requests leave on
//! schedule whatever the answers, so a slow answer cannot hide behind fewer requests), against
//! a store of M mailboxes × E events synced from a simulator started for the occasion.
//!
//! Scenarios: (a) `GET /v1/mailboxes/{a}/events` over one month, a random mailbox each time;
//! (b) `POST /v1/availability` of N random mailboxes over four weeks. The load generator runs
//! in this process beside the server (both share the machine's cores), so its own cost is in
//! the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calgate_core::ApiScope;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bench::{BenchApiArgs, mib, peak_rss_kib, start_sim_with, store_linked_to};
use crate::config::Config;
use crate::output::{print_out, thousands};
use crate::sync_cmd::{engine, sync_with_progress};

struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
    sent: u64,
    elapsed: Duration,
}

/// The `p` percentile of `sorted`, in milliseconds (0 for none).
pub(crate) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Sends `make(i)` at `rate` per second for `seconds`, open loop.
async fn load<F>(rate: u32, seconds: u64, make: F) -> Outcome
where
    F: Fn(u64) -> reqwest::RequestBuilder,
{
    let results = Arc::new(Mutex::new((Vec::new(), 0u64)));
    let total = u64::from(rate) * seconds;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        tick.tick().await;
        let rb = make(i);
        let results = results.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let ok = match rb.send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    let _ = r.bytes().await;
                    ok
                }
                Err(_) => false,
            };
            let took = t.elapsed();
            let mut g = results.lock().await;
            if ok {
                g.0.push(took);
            } else {
                g.1 += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let (mut latencies, errors) = std::mem::take(&mut *results.lock().await);
    latencies.sort();
    Outcome {
        latencies,
        errors,
        sent: total,
        elapsed,
    }
}

fn report(name: &str, goal_ms: f64, o: &Outcome) -> String {
    let p99 = pct(&o.latencies, 0.99);
    format!(
        "{name}\n  offered:    {} requests in {:.1} s ({:.0}/s achieved), {} errors\n  latency:    p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal p99 ≤ {goal_ms} ms: {})\n",
        thousands(o.sent),
        o.elapsed.as_secs_f64(),
        (o.sent - o.errors) as f64 / o.elapsed.as_secs_f64().max(1e-9),
        o.errors,
        pct(&o.latencies, 0.50),
        pct(&o.latencies, 0.90),
        p99,
        o.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        if p99 <= goal_ms { "met" } else { "NOT met" },
    )
}

/// A store of `mailboxes` × `events` synced from a simulator started for the occasion (or the
/// one kept in `keep` by an earlier run): what `bench api` and `bench console` measure against.
pub(crate) struct BenchStore {
    pub store: Arc<dyn calgate_store::Store>,
    /// Mailboxes the first sync could not sync.
    pub failed: u64,
    /// True when `keep` held a store already.
    pub reused: bool,
    _temp: Option<tempfile::TempDir>,
}

pub(crate) async fn bench_store(
    mailboxes: u32,
    events: usize,
    rng: u64,
    keep: Option<&std::path::Path>,
    prefix: &str,
) -> anyhow::Result<BenchStore> {
    let mut temp = None;
    let dir = match keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.to_owned()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .context("cannot create a temporary data directory")?;
            let p = t.path().to_owned();
            temp = Some(t);
            p
        }
    };
    let data = dir.join("data");
    if keep.is_some() && data.join("calgate.db").exists() {
        let store = crate::StoreLocation::new(data.display().to_string())
            .open()
            .await?;
        return Ok(BenchStore {
            store,
            failed: 0,
            reused: true,
            _temp: temp,
        });
    }
    let creds_path = dir.join("sim-credentials.json");
    let (child, base) = start_sim_with(mailboxes, events, 0, rng, &creds_path)?;
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(&creds_path).context("cannot read the simulator's credentials")?,
    )?;
    let (store, _) = store_linked_to(&creds, &base, &data).await?;
    let engine = engine(store.clone(), calgate_sync::DEFAULT_CONCURRENCY)?;
    let summary = sync_with_progress(&engine, &calgate_sync::SyncRequest::default()).await?;
    drop(child);
    Ok(BenchStore {
        store,
        failed: summary.totals.mailboxes_failed,
        reused: false,
        _temp: temp,
    })
}

impl BenchStore {
    /// Prints "`label`: M mailboxes, N events stored (…)" and returns every mailbox's state.
    pub(crate) async fn announce(
        &self,
        label: &str,
        t0: Instant,
    ) -> anyhow::Result<Vec<calgate_store::MailboxSyncState>> {
        let states = self.store.sync_states().await?;
        let stored: u64 = states.iter().map(|s| s.live_instances).sum();
        print_out(&format!(
            "{label}: {} mailboxes, {} events stored ({} in {:.1} s; {} mailboxes failed to sync)\n",
            thousands(states.len() as u64),
            thousands(stored),
            if self.reused { "reused" } else { "set up" },
            t0.elapsed().as_secs_f64(),
            self.failed
        ));
        Ok(states)
    }
}

pub(crate) async fn run(args: BenchApiArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let b = bench_store(
        args.mailboxes,
        args.events_per_mailbox,
        args.rng,
        args.keep.as_deref(),
        "calgate-bench-api-",
    )
    .await?;
    let store = b.store.clone();
    let states = b.announce("bench api", t0).await?;
    let addresses: Vec<String> = states.iter().map(|s| s.mailbox.address.clone()).collect();
    let name = format!("bench-{}", Timestamp::now().as_millisecond());
    let (key, new) = calgate_api::auth::generate_key(&name, &[ApiScope::Read]);
    store.add_api_key(&new).await?;
    let config = Config::default();
    let service = crate::serve::start(
        store.clone(),
        &config,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        false,
    )
    .await?;
    let addr = service.listener.local_addr()?;
    let state = service.state.clone();
    let state_warm = service.state.clone();
    let server = tokio::spawn(calgate_api::serve(
        service.listener,
        state,
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = format!("http://{addr}");
    let bearer = format!("Bearer {}", key.expose());
    let now = Timestamp::now();
    let month = (now, now + SignedDuration::from_hours(24 * 30));
    let weeks = (now, now + SignedDuration::from_hours(24 * 28));
    // A deterministic spread over the mailboxes (splitmix64).
    let pick = |seed: u64, n: usize| -> Vec<String> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                addresses[(z % addresses.len() as u64) as usize].clone()
            })
            .collect()
    };
    // Warm up (connections, caches) as `calgate serve` does when it starts.
    state_warm
        .busy
        .warm(state_warm.store.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let _ = load(args.rate.min(100), 1, |i| {
        http.get(format!("{api}/v1/mailboxes/{}/events", pick(i, 1)[0]))
            .query(&[("from", month.0.to_string()), ("to", month.1.to_string())])
            .header("Authorization", &bearer)
    })
    .await;
    let events = load(args.rate, args.seconds, |i| {
        http.get(format!("{api}/v1/mailboxes/{}/events", pick(i, 1)[0]))
            .query(&[("from", month.0.to_string()), ("to", month.1.to_string())])
            .header("Authorization", &bearer)
    })
    .await;
    let n = args.availability_mailboxes as usize;
    let availability = load(args.rate, args.seconds, |i| {
        http.post(format!("{api}/v1/availability"))
            .header("Authorization", &bearer)
            .json(&json!({
                "mailboxes": pick(1_000_000 + i, n),
                "from": weeks.0.to_string(),
                "to": weeks.1.to_string(),
                "duration_minutes": 30,
            }))
    })
    .await;
    server.abort();
    let _ = store.revoke_api_key(&name).await;
    print_out(&report(
        &format!(
            "(a) events of one mailbox over 30 days, {} req/s for {} s",
            args.rate, args.seconds
        ),
        5.0,
        &events,
    ));
    print_out(&report(
        &format!(
            "(b) availability of {n} mailboxes over 28 days, {} req/s for {} s",
            args.rate, args.seconds
        ),
        20.0,
        &availability,
    ));
    print_out(&format!(
        "peak RSS of this process (server + load generator): {}\n",
        mib(peak_rss_kib("self"))
    ));
    Ok(())
}
