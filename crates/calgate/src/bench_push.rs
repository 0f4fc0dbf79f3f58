//! `calgate bench push --bookings N --mailboxes M --latency-ms L`: N bookings (one calendar
//! each, spread over M mailboxes) pushed into a simulator started for the occasion; prints wall
//! time, requests, requests per booking, the round-trip lower bound and duplicates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calgate_core::booking::{BookingMode, BookingSpec, BookingTarget, TargetRole};
use calgate_core::{Sensitivity, ShowAs, When};
use calgate_sync::push::PushOptions;
use clap::Args;
use clap::builder::TypedValueParser as _;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::bench::{mib, peak_rss_kib, sim_stats, start_sim_with, store_linked_to};
use crate::output::{print_out, thousands};
use crate::sync_cmd::engine;

#[derive(Debug, Args)]
pub(crate) struct BenchPushArgs {
    /// Bookings to push (one calendar each).
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub bookings: u32,
    /// Mailboxes the bookings are spread over.
    #[arg(long, value_name = "M", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub mailboxes: u32,
    /// Latency the simulator adds to every response, in milliseconds.
    #[arg(long, value_name = "L", default_value_t = 25)]
    pub latency_ms: u64,
    /// Writes in flight at once over all mailboxes (at most 4 per mailbox).
    #[arg(long, value_name = "C", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=4096).map(usize::from))]
    pub concurrency: usize,
    /// Seed of the simulated tenant.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
}

pub(crate) async fn run(args: BenchPushArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("calgate-bench-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let creds_path = dir.path().join("sim-credentials.json");
    // Few events of their own: the bench is about writes.
    let (child, base) = start_sim_with(args.mailboxes, 62, args.latency_ms, args.rng, &creds_path)?;
    let sim_pid = child.0.id().to_string();
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
    let t_put = Instant::now();
    let day0 = Timestamp::now()
        .checked_add(SignedDuration::from_hours(24))
        .context("clock")?;
    for i in 0..args.bookings {
        let start = day0
            .checked_add(SignedDuration::from_mins(i64::from(i % 2000) * 43))
            .context("clock")?;
        let spec = BookingSpec {
            subject: format!("Bench booking {i}"),
            body: None,
            when: When {
                start,
                end: start + SignedDuration::from_mins(30),
                time_zone: "Europe/London".to_owned(),
                all_day: None,
            },
            location: None,
            show_as: ShowAs::Busy,
            sensitivity: Sensitivity::Normal,
            mode: BookingMode::Direct,
            calendars: vec![BookingTarget {
                address: addresses[i as usize % addresses.len()].clone(),
                role: TargetRole::Organizer,
            }],
            recurrence: None,
        };
        store.put_booking(&format!("bench-{i}"), &spec).await?;
    }
    print_out(&format!(
        "bench push: {} bookings into {} mailboxes, simulator latency {} ms, concurrency {} (bookings stored in {:.1} s)\n",
        thousands(u64::from(args.bookings)),
        thousands(linked),
        args.latency_ms,
        args.concurrency,
        t_put.elapsed().as_secs_f64()
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let _ = http.post(format!("{base}/_sim/stats/reset")).send().await;

    let engine = engine(store.clone(), calgate_sync::DEFAULT_CONCURRENCY)?;
    let started = Instant::now();
    let summary = engine
        .push(&PushOptions {
            concurrency: args.concurrency,
            batch: (args.concurrency as u32).saturating_mul(16).max(500),
            max_time: Duration::from_secs(3600),
            ..PushOptions::default()
        })
        .await?;
    let wall = started.elapsed();
    let stats = sim_stats(&http, &base).await?;
    let sim_requests: u64 = stats["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|m| m["requests"].as_u64())
        .sum();
    let sim_429: u64 = stats["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|m| m["throttled"].as_u64())
        .sum();

    // Duplicates and losses, counted in the simulator.
    let mut counts: HashMap<String, u32> = HashMap::new();
    let (from, to) = (
        Timestamp::now() - SignedDuration::from_hours(24),
        Timestamp::now() + SignedDuration::from_hours(24 * 90),
    );
    for a in &addresses {
        let v: Value = http
            .get(format!("{base}/_sim/mailboxes/{a}/events"))
            .query(&[("start", from.to_string()), ("end", to.to_string())])
            .send()
            .await?
            .json()
            .await?;
        for e in v["value"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(s) = e["subject"]
                .as_str()
                .filter(|s| s.starts_with("Bench booking "))
            {
                *counts.entry(s.to_owned()).or_default() += 1;
            }
        }
    }
    let sim_rss = peak_rss_kib(&sim_pid);
    drop(child);
    let duplicates: u64 = counts
        .values()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    let lost = u64::from(args.bookings).saturating_sub(counts.len() as u64);

    let secs = wall.as_secs_f64().max(1e-9);
    let n = f64::from(args.bookings);
    let per_mailbox = (n / f64::from(args.mailboxes)).ceil();
    // One create per booking; at most 4 in flight per mailbox and `concurrency` in all.
    let rounds = (per_mailbox / 4.0)
        .ceil()
        .max((n / args.concurrency as f64).ceil());
    let bound = rounds * args.latency_ms as f64 / 1000.0;
    print_out(&format!(
        "wall time:            {secs:.2} s\n\
         pushed:               {}\n\
         requests:             {} seen by the simulator ({:.2} per booking), {:.0} per second; 429s: {}\n\
         duplicates:           {duplicates} (events per booking counted in the simulator); lost: {lost}\n\
         peak RSS:             {} calgate, {} simulator (separate process)\n\
         round-trip lower bound: {bound:.2} s = max(ceil({per_mailbox:.0} bookings per mailbox ÷ 4), ceil({} ÷ {} in flight)) × {} ms\n\
         ratio to the bound:   {:.2}× (goal ≤ 1.5×)\n",
        summary,
        thousands(sim_requests),
        sim_requests as f64 / n,
        sim_requests as f64 / secs,
        thousands(sim_429),
        mib(peak_rss_kib("self")),
        mib(sim_rss),
        thousands(u64::from(args.bookings)),
        args.concurrency,
        args.latency_ms,
        if bound > 0.0 { secs / bound } else { 0.0 },
    ));
    if duplicates > 0 || lost > 0 || summary.failed > 0 {
        anyhow::bail!(
            "push bench: {duplicates} duplicates, {lost} lost, {} failed",
            summary.failed
        );
    }
    Ok(())
}
