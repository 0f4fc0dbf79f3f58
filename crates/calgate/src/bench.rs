//! `calgate bench sync`: a first sync of M simulated mailboxes, measured.
//!
//! The simulator runs as a child process (`calgate sim --seed empty --scale M`), so that the
//! peak RSS printed for calgate is calgate's alone; both share the machine's cores.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_store::{NewCredential, NewMailbox};
use calgate_sync::SyncRequest;
use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::output::{print_out, thousands};
use crate::sync_cmd::{engine, failure_lines, sync_with_progress};
use crate::{StoreLocation, error_line};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// First sync of M mailboxes of a simulator started for the occasion; prints wall time,
    /// requests, requests per second, peak concurrency per mailbox, 429s, peak RSS and the
    /// round-trip lower bound.
    Sync(BenchSyncArgs),
    /// The REST API under a fixed offered load: events of one mailbox over a month, and
    /// availability of many mailboxes over four weeks, against a store of M × E synced
    /// events; prints p50/p90/p99 latency, throughput and peak RSS.
    Api(BenchApiArgs),
    /// N bookings pushed into M mailboxes of a simulator started for the occasion; prints wall
    /// time, requests per booking, the round-trip lower bound and duplicates (must be 0).
    Push(crate::bench_push::BenchPushArgs),
    /// C changes made in M simulated mailboxes, timed from the change to the host's webhook
    /// receiver through `calgate serve` (Graph change notifications in, signed webhooks out);
    /// then the same polling only. Prints p50/p99 latency, losses and Graph requests per change.
    Notify(crate::bench_notify::BenchNotifyArgs),
    /// Each admin-console page rendered over HTTP, N times, with M mailboxes linked and
    /// synced; prints p50/p90/slowest time and size per page (goal: ≤ 200 ms each).
    Console(crate::bench_console::BenchConsoleArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchApiArgs {
    /// Mailboxes in the store.
    #[arg(long, value_name = "M", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub mailboxes: u32,
    /// Event instances per mailbox in the simulator's seeding window.
    #[arg(long, value_name = "E", default_value_t = 150)]
    pub events_per_mailbox: usize,
    /// Requests per second offered (open loop: sent on schedule, whatever the answers).
    #[arg(long, value_name = "R", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Seconds of load per scenario.
    #[arg(long, value_name = "S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Mailboxes per availability request.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=200))]
    pub availability_mailboxes: u32,
    /// Seed of the simulated tenant.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
    /// Build the store in DIR and keep it; a later run with the same DIR (on the same day)
    /// reuses it, skipping the simulator and the first sync.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchSyncArgs {
    /// Mailboxes to sync.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub mailboxes: u32,
    /// Event instances per mailbox in the simulator's seeding window (30 days back to 120
    /// ahead; default ~150; at least ~62: five series and six all-day events, the rest are
    /// single meetings). calgate's sync window (30 back, 365 ahead) holds more: the series
    /// go on (~220 instances per mailbox for E = 150).
    #[arg(long, value_name = "E", default_value_t = 150)]
    pub events_per_mailbox: usize,
    /// Latency the simulator adds to every response, in milliseconds.
    #[arg(long, value_name = "L", default_value_t = 0)]
    pub latency_ms: u64,
    /// Mailboxes synced at once (each with at most 4 requests in flight).
    #[arg(long, value_name = "C", default_value_t = calgate_sync::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=4096).map(usize::from))]
    pub concurrency: usize,
    /// Seed of the simulated tenant.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
    /// Sync through the simulator's EWS face (Exchange Server: NTLM, impersonation,
    /// CalendarView and SyncFolderItems) instead of Microsoft Graph.
    #[arg(long)]
    pub ews: bool,
    /// Keep the store in this empty PostgreSQL database (postgres://USER@HOST/DB; make one with
    /// `createdb`) instead of an SQLite file in a temporary data directory; implies processes
    /// (`--instances`, default 1).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Run each round as N `calgate sync` processes at once over the one store (their leases
    /// share the mailboxes out) instead of in this process; figures are over all of them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub instances: Option<u16>,
}

pub(crate) async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Sync(args) => bench_sync(args).await,
        BenchCommand::Api(args) => crate::bench_api::run(args).await,
        BenchCommand::Push(args) => crate::bench_push::run(args).await,
        BenchCommand::Notify(args) => crate::bench_notify::run(args).await,
        BenchCommand::Console(args) => crate::bench_console::run(args).await,
    }
}

/// Kills the simulator when dropped (also on error).
pub(crate) struct SimChild(pub Child);

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) of a process, in KiB.
pub(crate) fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a (no /proc)".to_owned())
}

/// Starts `calgate sim` and returns it with its base URL once its banner is out.
pub(crate) fn start_sim(args: &BenchSyncArgs, creds: &Path) -> anyhow::Result<(SimChild, String)> {
    start_sim_with(
        args.mailboxes,
        args.events_per_mailbox,
        args.latency_ms,
        args.rng,
        creds,
    )
}

pub(crate) fn start_sim_with(
    mailboxes: u32,
    events: usize,
    latency_ms: u64,
    rng: u64,
    creds: &Path,
) -> anyhow::Result<(SimChild, String)> {
    let exe = std::env::current_exe().context("cannot find calgate's own executable")?;
    let mut child = Command::new(exe)
        .args(["sim", "--seed", "empty", "--listen", "127.0.0.1:0"])
        .args(["--scale", &mailboxes.to_string()])
        .args(["--events-per-mailbox", &events.to_string()])
        .args(["--latency-ms", &latency_ms.to_string()])
        .args(["--rng", &rng.to_string()])
        .arg("--credentials-out")
        .arg(creds)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start `calgate sim`")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from `calgate sim`")?;
    let child = SimChild(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .context("cannot read `calgate sim`'s banner")?;
    let Some(base) = first.trim().strip_prefix("calgate sim listening on ") else {
        bail!(
            "`calgate sim` did not start (it printed: {:?})",
            first.trim()
        );
    };
    Ok((child, base.to_owned()))
}

/// A new store in `data` with a connection `bench` to the simulator at `base` and every
/// mailbox of its credentials document linked; returns it and how many were linked.
pub(crate) async fn store_linked_to(
    creds: &Value,
    base: &str,
    data: &Path,
) -> anyhow::Result<(std::sync::Arc<dyn calgate_store::Store>, u64)> {
    store_linked_as(creds, base, data, Service::Graph).await
}

/// Which face of the simulator a benchmark syncs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Graph,
    Ews,
}

/// [`store_linked_to`] with the connection made for `service`.
pub(crate) async fn store_linked_as(
    creds: &Value,
    base: &str,
    data: &Path,
    service: Service,
) -> anyhow::Result<(std::sync::Arc<dyn calgate_store::Store>, u64)> {
    let loc = StoreLocation::new(data.display().to_string());
    let store = loc.open_or_create().await?;
    let linked = link_all(store.as_ref(), creds, base, service).await?;
    Ok((store, linked))
}

/// Adds the connection `bench` (made for `service`) to the simulator at `base` to `store`, and
/// links every mailbox of its credentials document: how many.
pub(crate) async fn link_all(
    store: &dyn calgate_store::Store,
    creds: &Value,
    base: &str,
    service: Service,
) -> anyhow::Result<u64> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let app = creds["apps"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .context("the simulator published no app")?;
    let spec = match service {
        Service::Graph => calgate_admin::connections::ConnectionSpec {
            name: "bench".to_owned(),
            tenant: s(&creds["tenant_id"]),
            client_id: s(&app["client_id"]),
            authority: Some(base.to_owned()),
            graph_url: Some(s(&creds["graph_url"])),
            credentials: vec![NewCredential::secret(s(&app["client_secret"]), None)],
            ..Default::default()
        },
        Service::Ews => {
            // The service account that may impersonate every mailbox.
            let account = creds["ews_accounts"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["impersonation"] == "all"))
                .context("the simulator published no EWS service account")?;
            calgate_admin::connections::ConnectionSpec {
                name: "bench".to_owned(),
                ews: Some(calgate_admin::ews::EwsSpec {
                    url: s(&creds["ews_url"]),
                    username: s(&account["username"]),
                    password: calgate_store::SecretString::new(s(&account["password"])),
                    auth: calgate_store::EwsAuth::Ntlm,
                    impersonation: true,
                }),
                ..Default::default()
            }
        }
    };
    crate::connection::add(store, &spec).await?;
    let mut linked = 0u64;
    for m in creds["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        store
            .link_mailbox(&NewMailbox {
                address: s(&m["address"]),
                connection: "bench".to_owned(),
                kind: Some(MailboxKind::User),
                external_id: None,
                privacy: Some(PrivacyPolicy::Full),
            })
            .await?;
        linked += 1;
    }
    Ok(linked)
}

async fn bench_sync(args: BenchSyncArgs) -> anyhow::Result<()> {
    if args.instances.is_some() || args.database.is_some() {
        return crate::bench_instances::run(args).await;
    }
    let dir = tempfile::Builder::new()
        .prefix("calgate-bench-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let creds_path = dir.path().join("sim-credentials.json");
    let t_sim = Instant::now();
    let (child, base) = start_sim(&args, &creds_path)?;
    let sim_pid = child.0.id().to_string();
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(&creds_path).context("cannot read the simulator's credentials")?,
    )?;
    let seeded = t_sim.elapsed();
    let t_link = Instant::now();
    let service = if args.ews {
        Service::Ews
    } else {
        Service::Graph
    };
    let (store, linked) = store_linked_as(&creds, &base, &dir.path().join("data"), service).await?;
    let link_time = t_link.elapsed();
    print_out(&format!(
        "bench sync{}: {} mailboxes × ~{} events, simulator latency {} ms, concurrency {} (simulator seeded in {:.1} s, mailboxes linked in {:.1} s)\n",
        if args.ews {
            " --ews (EWS: NTLM, impersonation)"
        } else {
            ""
        },
        thousands(linked),
        args.events_per_mailbox,
        args.latency_ms,
        args.concurrency,
        seeded.as_secs_f64(),
        link_time.as_secs_f64()
    ));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let engine = engine(store.clone(), args.concurrency)?;
    let db = dir.path().join("data");

    // Round 1: the first sync.
    let first = timed_round(&engine, &http, &base, &sim_pid).await?;
    let mut stored = 0u64;
    for m in store.list_mailboxes().await? {
        stored += store.count_instances(m.id).await?;
    }
    let t = &first.summary.totals;
    let m = f64::from(args.mailboxes);
    let per_mailbox = first.sim_requests as f64 / m;
    let parallel = args.concurrency.min(args.mailboxes as usize) as f64;
    // Each mailbox's delta pages are sequential (a page's nextLink is needed for the next);
    // at most `parallel` mailboxes run at once.
    let waves = (m / parallel).ceil();
    let bound = waves * per_mailbox * args.latency_ms as f64 / 1000.0;
    let secs = first.wall.as_secs_f64().max(1e-9);
    print_out(&format!(
        "first sync\n\
         wall time:            {:.2} s\n\
         mailboxes synced:     {} of {} ({} failed)\n\
         events stored:        {}\n\
         requests sent:        {} to {} by calgate (+ {} token), {} seen by the simulator ({:.2} per mailbox)\n\
         requests per second:  {:.0}\n\
         peak concurrency:     {} requests in flight per mailbox (simulator's peak over all mailboxes; calgate's own gauge: {})\n\
         429 responses:        {} (simulator), {} (calgate); early retries: {}\n\
         CPU:                  {:.2} s calgate ({:.1} ms per 1,000 events stored, {:.0} events per CPU second), {:.2} s simulator\n\
         written:              {} by calgate (database now {})\n\
         round-trip lower bound: {:.2} s = ceil({} mailboxes ÷ {} at once) × {:.2} sequential requests per mailbox × {} ms — each mailbox's delta pages follow one another, mailboxes run {} at a time\n\
         efficiency:           {:.0} % of the lower bound\n",
        secs,
        thousands(t.mailboxes_done - t.mailboxes_failed),
        thousands(t.mailboxes_total),
        thousands(t.mailboxes_failed),
        thousands(stored),
        thousands(t.requests),
        if args.ews { "EWS" } else { "Graph" },
        thousands(engine.shared().metrics().token_requests),
        thousands(first.sim_requests),
        per_mailbox,
        first.sim_requests as f64 / secs,
        if args.ews {
            "n/a (the simulator counts it on Graph only)".to_owned()
        } else {
            first.peak_per_mailbox.to_string()
        },
        first.summary.peak_mailbox_concurrency,
        thousands(first.sim_429),
        thousands(t.throttled),
        thousands(first.early),
        first.cpu,
        1000.0 * first.cpu * 1000.0 / (stored.max(1) as f64),
        stored as f64 / first.cpu.max(1e-9),
        first.sim_cpu,
        bytes(first.written),
        bytes(dir_size(&db)),
        bound,
        thousands(u64::from(args.mailboxes)),
        parallel as u64,
        per_mailbox,
        args.latency_ms,
        parallel as u64,
        100.0 * bound / secs,
    ));
    let mut failed = !first.summary.is_success();
    for line in failure_lines(&first.summary) {
        error_line(&line);
    }

    // Round 2: an incremental round with nothing changed.
    let unchanged = timed_round(&engine, &http, &base, &sim_pid).await?;
    print_out(&unchanged.short("incremental, nothing changed"));
    failed |= !unchanged.summary.is_success();
    for line in failure_lines(&unchanged.summary) {
        error_line(&line);
    }

    // Round 3: 1 % of the mailboxes changed (a few random changes each, as people make them).
    let changed = change_one_percent(&http, &base, &creds).await?;
    let one_percent = timed_round(&engine, &http, &base, &sim_pid).await?;
    print_out(&one_percent.short(&format!(
        "incremental, {} mailboxes (1 %) changed",
        changed.len()
    )));
    failed |= !one_percent.summary.is_success();
    for line in failure_lines(&one_percent.summary) {
        error_line(&line);
    }
    print_out(&format!(
        "peak RSS:             {} calgate, {} simulator (separate process)\n",
        mib(peak_rss_kib("self")),
        mib(peak_rss_kib(&sim_pid)),
    ));
    drop(child);
    if failed {
        return Err(crate::Reported.into());
    }
    Ok(())
}

/// One measured `calgate sync` round and the simulator's view of it.
struct Round {
    summary: calgate_sync::Summary,
    wall: Duration,
    /// calgate's own CPU seconds (user + system) over the round.
    cpu: f64,
    /// The simulator's CPU seconds over the round.
    sim_cpu: f64,
    /// Bytes calgate's process caused to be written to storage.
    written: u64,
    sim_requests: u64,
    sim_429: u64,
    early: u64,
    peak_per_mailbox: u64,
}

impl Round {
    fn short(&self, what: &str) -> String {
        let t = &self.summary.totals;
        format!(
            "{what}\n\
             wall time:            {:.2} s\n\
             mailboxes synced:     {} of {} ({} failed); {} events stored, {} removed\n\
             requests:             {} seen by the simulator; 429s: {}; peak {} in flight per mailbox\n\
             CPU:                  {:.2} s calgate ({:.2} ms per mailbox), {:.2} s simulator\n\
             written:              {} by calgate\n",
            self.wall.as_secs_f64(),
            thousands(t.mailboxes_done - t.mailboxes_failed),
            thousands(t.mailboxes_total),
            thousands(t.mailboxes_failed),
            thousands(t.events_upserted),
            thousands(t.events_removed),
            thousands(self.sim_requests),
            thousands(self.sim_429),
            self.peak_per_mailbox,
            self.cpu,
            1000.0 * self.cpu / (t.mailboxes_total.max(1) as f64),
            self.sim_cpu,
            bytes(self.written),
        )
    }
}

async fn timed_round(
    engine: &calgate_sync::Engine,
    http: &reqwest::Client,
    base: &str,
    sim_pid: &str,
) -> anyhow::Result<Round> {
    let _ = http.post(format!("{base}/_sim/stats/reset")).send().await;
    // The EWS face counts on (its reset would also forget sync states): take the difference.
    let ews0 = ews_counts(http, base).await;
    let (cpu0, sim0, w0) = (cpu_seconds("self"), cpu_seconds(sim_pid), written_bytes());
    let started = Instant::now();
    let summary = sync_with_progress(engine, &SyncRequest::default()).await?;
    let wall = started.elapsed();
    let (cpu1, sim1, w1) = (cpu_seconds("self"), cpu_seconds(sim_pid), written_bytes());
    let stats = sim_stats(http, base).await?;
    let mailboxes = stats["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let sum = |k: &str| -> u64 { mailboxes.iter().filter_map(|m| m[k].as_u64()).sum() };
    let ews1 = ews_counts(http, base).await;
    Ok(Round {
        wall,
        cpu: cpu1 - cpu0,
        sim_cpu: sim1 - sim0,
        written: w1.saturating_sub(w0),
        sim_requests: sum("requests") + ews1.0.saturating_sub(ews0.0),
        sim_429: sum("throttled") + ews1.1.saturating_sub(ews0.1),
        early: sum("early_retries"),
        peak_per_mailbox: mailboxes
            .iter()
            .filter_map(|m| m["peak_concurrency"].as_u64())
            .max()
            .unwrap_or(0),
        summary,
    })
}

/// The simulator's EWS counters: (SOAP requests, throttled answers: ErrorServerBusy,
/// ErrorExceededConnectionCount, 503).
pub(crate) async fn ews_counts(http: &reqwest::Client, base: &str) -> (u64, u64) {
    let Ok(r) = http.get(format!("{base}/_sim/ews")).send().await else {
        return (0, 0);
    };
    let v: Value = r.json().await.unwrap_or_default();
    let n = |k: &str| v["stats"][k].as_u64().unwrap_or(0);
    (
        n("requests"),
        n("server_busy") + n("exceeded_connection_count") + n("http_503"),
    )
}

/// User + system CPU seconds of a process so far (`/proc/PID/stat`, in USER_HZ = 100 ticks
/// per second); 0 where there is no /proc.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 (utime) and 15 (stime) of the whole line are the 12th and 13th after ')'.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Bytes this process caused to be written to storage so far (`/proc/self/io`).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The total size of the files in `dir` (not recursive).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub(crate) fn bytes(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// The simulator's counters (`GET /_sim/stats`).
pub(crate) async fn sim_stats(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    http.get(format!("{base}/_sim/stats"))
        .send()
        .await
        .context("cannot read the simulator's stats")?
        .json()
        .await
        .context("the simulator's stats are not JSON")
}

/// Makes a few random changes (as people make them) in every hundredth mailbox of the
/// simulator: the addresses changed.
pub(crate) async fn change_one_percent(
    http: &reqwest::Client,
    base: &str,
    creds: &Value,
) -> anyhow::Result<Vec<String>> {
    let changed: Vec<String> = creds["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .step_by(100)
        .filter_map(|m| m["address"].as_str().map(str::to_owned))
        .collect();
    for (n, address) in changed.iter().enumerate() {
        let r = http
            .post(format!("{base}/_sim/mailboxes/{address}/random-changes"))
            .json(&serde_json::json!({"count": 3, "seed": n}))
            .send()
            .await
            .context("cannot change the simulator's mailboxes")?;
        if !r.status().is_success() {
            bail!("the simulator refused random changes: {}", r.status());
        }
    }
    Ok(changed)
}
