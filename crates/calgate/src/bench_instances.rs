//! `calgate bench sync --instances N [--database URL]`: the rounds of `bench sync` (a first
//! sync, an unchanged incremental round, 1 % changed), each run by N `calgate sync` processes at
//! once over one store — an SQLite file in a temporary data directory, or an empty PostgreSQL
//! database — sharing the mailboxes out through their sync leases, as `calgate serve` instances
//! do. The simulator is a process of its own too; all of them share the machine's cores.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use calgate_store::{MasterKey, OpenOptions, Store};
use jiff::Timestamp;
use serde_json::Value;

use crate::bench::{
    BenchSyncArgs, Service, bytes, change_one_percent, cpu_seconds, ews_counts, link_all,
    sim_stats, start_sim,
};
use crate::output::{print_out, thousands};
use crate::{StoreLocation, error_line};

/// One round run by N processes.
struct ProcessRound {
    wall: Duration,
    /// CPU seconds of the N calgate processes together.
    cpu: f64,
    sim_cpu: f64,
    sim_requests: u64,
    sim_429: u64,
    /// Mailboxes whose round in this run succeeded, by the process that ran it.
    by_instance: HashMap<String, u64>,
    failed: u64,
    /// The first lines a failing process printed.
    errors: Vec<String>,
}

/// User + system CPU seconds of this process's waited-for children (`cutime`, `cstime`).
fn children_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 16 (cutime) and 17 (cstime) of the whole line are the 14th and 15th after ')'.
    (ticks(13) + ticks(14)) as f64 / 100.0
}

pub(crate) async fn run(args: BenchSyncArgs) -> anyhow::Result<()> {
    let n = args.instances.unwrap_or(1);
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
    // The store, where the processes find it (a flag), and the key they need for it.
    let (store, flag, location, key): (Arc<dyn Store>, &str, String, Option<String>) = match &args
        .database
    {
        Some(url) => {
            let (key, text) = MasterKey::generate()?;
            let store = calgate_store::open_with(
                url,
                OpenOptions {
                    master_key: Some(key),
                    create: true,
                    ..OpenOptions::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}", crate::one_line(e.message())))?;
            if !store.list_connections().await?.is_empty() {
                bail!(
                    "{} holds calgate data already: give the benchmark an empty database (createdb …)",
                    calgate_store::redacted_location(url)
                );
            }
            (
                store,
                "--database",
                url.clone(),
                Some(text.as_str().to_owned()),
            )
        }
        None => {
            let data = dir.path().join("data").display().to_string();
            let store = StoreLocation::new(data.clone()).open_or_create().await?;
            (store, "--data-dir", data, None)
        }
    };
    let service = if args.ews {
        Service::Ews
    } else {
        Service::Graph
    };
    let linked = link_all(store.as_ref(), &creds, &base, service).await?;
    let backend = match &args.database {
        Some(url) => format!("PostgreSQL {}", calgate_store::redacted_location(url)),
        None => "SQLite (a temporary data directory)".to_owned(),
    };
    print_out(&format!(
        "bench sync --instances {n}: {} `calgate sync` processes over {backend}; {} mailboxes × ~{} events, simulator latency {} ms, concurrency {} per process (simulator seeded in {:.1} s, mailboxes linked in {:.1} s)\n",
        n,
        thousands(linked),
        args.events_per_mailbox,
        args.latency_ms,
        args.concurrency,
        seeded.as_secs_f64(),
        t_link.elapsed().as_secs_f64()
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let round = |what: &'static str| {
        let (store, location, key, http, base, sim_pid) = (
            store.clone(),
            location.clone(),
            key.clone(),
            http.clone(),
            base.clone(),
            sim_pid.clone(),
        );
        let concurrency = args.concurrency;
        async move {
            let r = processes_round(
                store.as_ref(),
                n,
                flag,
                &location,
                key.as_deref(),
                concurrency,
                &http,
                &base,
                &sim_pid,
            )
            .await
            .with_context(|| format!("the {what} round could not run"))?;
            anyhow::Ok(r)
        }
    };

    let first = round("first").await?;
    let mut stored = 0u64;
    for m in store.list_mailboxes().await? {
        stored += store.count_instances(m.id).await?;
    }
    let secs = first.wall.as_secs_f64().max(1e-9);
    let mut shares: Vec<u64> = first.by_instance.values().copied().collect();
    shares.sort_unstable();
    print_out(&format!(
        "first sync\n\
         wall time:            {secs:.2} s\n\
         mailboxes synced:     {} of {} ({} failed), by {} processes: {:?}\n\
         events stored:        {}\n\
         throughput:           {:.0} events per second, {:.1} mailboxes per second\n\
         requests:             {} seen by the simulator; 429s: {}\n\
         CPU:                  {:.2} s calgate ({} processes; {:.1} ms per 1,000 events stored), {:.2} s simulator\n",
        thousands(shares.iter().sum()),
        thousands(linked),
        thousands(first.failed),
        first.by_instance.len(),
        shares,
        thousands(stored),
        stored as f64 / secs,
        linked as f64 / secs,
        thousands(first.sim_requests),
        thousands(first.sim_429),
        first.cpu,
        n,
        1000.0 * first.cpu * 1000.0 / (stored.max(1) as f64),
        first.sim_cpu,
    ));
    let mut failed = first.failed > 0;
    for e in &first.errors {
        error_line(e);
    }

    let unchanged = round("unchanged").await?;
    print_out(&short("incremental, nothing changed", &unchanged, linked));
    failed |= unchanged.failed > 0;

    let changed = change_one_percent(&http, &base, &creds).await?;
    let one_percent = round("1 % changed").await?;
    print_out(&short(
        &format!("incremental, {} mailboxes (1 %) changed", changed.len()),
        &one_percent,
        linked,
    ));
    failed |= one_percent.failed > 0;
    if args.database.is_none() {
        print_out(&format!(
            "database:             {}\n",
            bytes(dir_bytes(&dir.path().join("data")))
        ));
    }
    store.close().await;
    drop(child);
    if failed {
        return Err(crate::Reported.into());
    }
    Ok(())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn short(what: &str, r: &ProcessRound, linked: u64) -> String {
    format!(
        "{what}\n\
         wall time:            {:.2} s\n\
         mailboxes synced:     {} of {} ({} failed)\n\
         requests:             {} seen by the simulator; 429s: {}\n\
         CPU:                  {:.2} s calgate ({:.2} ms per mailbox), {:.2} s simulator\n",
        r.wall.as_secs_f64(),
        thousands(r.by_instance.values().sum()),
        thousands(linked),
        thousands(r.failed),
        thousands(r.sim_requests),
        thousands(r.sim_429),
        r.cpu,
        1000.0 * r.cpu / (linked.max(1) as f64),
        r.sim_cpu,
    )
}

/// Runs `calgate FLAG LOCATION sync` in `n` processes at once and measures them together.
#[allow(clippy::too_many_arguments)]
async fn processes_round(
    store: &dyn Store,
    n: u16,
    flag: &str,
    location: &str,
    key: Option<&str>,
    concurrency: usize,
    http: &reqwest::Client,
    base: &str,
    sim_pid: &str,
) -> anyhow::Result<ProcessRound> {
    let _ = http.post(format!("{base}/_sim/stats/reset")).send().await;
    let ews0 = ews_counts(http, base).await;
    let exe = std::env::current_exe().context("cannot find calgate's own executable")?;
    let (cpu0, sim0) = (children_cpu_seconds(), cpu_seconds(sim_pid));
    let began = Timestamp::now();
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..n {
        let mut cmd = Command::new(&exe);
        cmd.arg(flag)
            .arg(location)
            .args(["sync", "--concurrency", &concurrency.to_string()])
            .env_remove("CALGATE_MASTER_KEY")
            .env_remove("CALGATE_DATA_DIR")
            .env_remove("CALGATE_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = key {
            cmd.env("CALGATE_MASTER_KEY", k);
        }
        children.push(cmd.spawn().context("cannot start `calgate sync`")?);
    }
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output())
            .collect::<Vec<_>>()
    })
    .await
    .context("the sync processes could not be waited for")?;
    let wall = started.elapsed();
    let (cpu1, sim1) = (children_cpu_seconds(), cpu_seconds(sim_pid));
    let mut errors = Vec::new();
    for o in outputs {
        let o = o.context("a sync process could not be waited for")?;
        if !o.status.success() {
            let text = String::from_utf8_lossy(&o.stderr);
            errors.extend(
                text.lines()
                    .filter(|l| !l.contains("is being synced by another calgate process"))
                    .take(3)
                    .map(str::to_owned),
            );
        }
    }
    let stats = sim_stats(http, base).await?;
    let mailboxes = stats["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let sum = |k: &str| -> u64 { mailboxes.iter().filter_map(|m| m[k].as_u64()).sum() };
    let ews1 = ews_counts(http, base).await;
    let mut by_instance: HashMap<String, u64> = HashMap::new();
    let mut failed = 0;
    for s in store.statuses().await? {
        if s.last_attempt.is_none_or(|t| t < began) {
            continue;
        }
        if s.last_error.is_some() {
            failed += 1;
        } else {
            *by_instance
                .entry(s.last_round_by.unwrap_or_default())
                .or_default() += 1;
        }
    }
    Ok(ProcessRound {
        wall,
        cpu: cpu1 - cpu0,
        sim_cpu: sim1 - sim0,
        sim_requests: sum("requests") + ews1.0.saturating_sub(ews0.0),
        sim_429: sum("throttled") + ews1.1.saturating_sub(ews0.1),
        by_instance,
        failed,
        errors,
    })
}
