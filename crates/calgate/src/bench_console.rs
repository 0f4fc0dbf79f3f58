//! `calgate bench console`: how long each admin-console page takes to render, over HTTP, with
//! M mailboxes linked and synced (the goal: no page above 200 ms with 2,000).
//!
//! The store is the one `bench api` builds (a simulator started for the occasion, a first
//! sync of M × E events). `calgate serve`'s service runs in this process; the benchmark signs
//! in through the console's own form with an admin API key, then requests each page N times,
//! one at a time, and prints p50, p90 and the slowest time, and the page's size; then how long
//! the database integrity check takes, which the Doctor page runs in the background.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use calgate_core::ApiScope;
use clap::Args;
use jiff::Timestamp;

use crate::bench::{mib, peak_rss_kib};
use crate::bench_api::{bench_store, pct};
use crate::config::Config;
use crate::output::{print_out, thousands};

/// The goal for every page, in milliseconds.
const GOAL_MS: f64 = 200.0;

#[derive(Debug, Args)]
pub(crate) struct BenchConsoleArgs {
    /// Mailboxes linked and synced.
    #[arg(long, value_name = "M", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub mailboxes: u32,
    /// Event instances per mailbox in the simulator's seeding window.
    #[arg(long, value_name = "E", default_value_t = 150)]
    pub events_per_mailbox: usize,
    /// Requests of each page (one at a time).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub requests: u32,
    /// Seed of the simulated tenant.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
    /// Build the store in DIR and keep it; a later run with the same DIR reuses it.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=')?;
            (k.trim() == name && !val.is_empty()).then(|| val.to_owned())
        })
}

/// The text between `before` and the next `until` in `html`, from its first occurrence.
fn between<'a>(html: &'a str, before: &str, until: &str) -> Option<&'a str> {
    let i = html.find(before)? + before.len();
    let j = html[i..].find(until)?;
    Some(&html[i..i + j])
}

pub(crate) async fn run(args: BenchConsoleArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let b = bench_store(
        args.mailboxes,
        args.events_per_mailbox,
        args.rng,
        args.keep.as_deref(),
        "calgate-bench-console-",
    )
    .await?;
    let store = b.store.clone();
    let states = b.announce("bench console", t0).await?;
    // The busiest mailbox: its page has the most events.
    let busiest = states
        .iter()
        .max_by_key(|s| s.live_instances)
        .map(|s| s.mailbox.address.clone())
        .context("no mailbox linked")?;
    let name = format!("bench-console-{}", Timestamp::now().as_millisecond());
    let (key, new) = calgate_api::auth::generate_key(&name, &[ApiScope::Admin]);
    store.add_api_key(&new).await?;
    let service = crate::serve::start(
        store.clone(),
        &Config::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        false,
    )
    .await?;
    let addr = service.listener.local_addr()?;
    let server = tokio::spawn(calgate_api::serve(
        service.listener,
        service.state.clone(),
        std::future::pending(),
    ));
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;

    // Sign in as an administrator would: the form, its token, an admin key.
    let form = http.get(format!("{base}/console/login")).send().await?;
    let login_cookie =
        set_cookie(&form, "calgate_console_login").context("the sign-in page set no cookie")?;
    let html = form.text().await?;
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")
        .context("the sign-in page has no form token")?
        .to_owned();
    let signed = http
        .post(format!("{base}/console/login"))
        .header(
            reqwest::header::COOKIE,
            format!("calgate_console_login={login_cookie}"),
        )
        .form(&[
            ("csrf", csrf.as_str()),
            ("password", ""),
            ("api_key", key.expose()),
        ])
        .send()
        .await?;
    let session = set_cookie(&signed, "calgate_console")
        .with_context(|| format!("signing in failed: HTTP {}", signed.status()))?;
    let cookie = format!("calgate_console={session}");
    let get = |path: String| {
        let req = http
            .get(format!("{base}{path}"))
            .header(reqwest::header::COOKIE, &cookie);
        async move {
            let started = Instant::now();
            let r = req.send().await?;
            let status = r.status();
            let body = r.text().await?;
            let took = started.elapsed();
            if !status.is_success() {
                bail!("{path}: HTTP {status}");
            }
            Ok::<_, anyhow::Error>((took, body))
        }
    };

    // The pages, with real arguments taken from the busiest mailbox's page.
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (_, mailbox_html) = get(format!("/console/mailboxes/{}", enc(&busiest))).await?;
    let event_link = between(&mailbox_html, "/event?id=", "\"")
        .context("the mailbox page lists no event")?
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let subject = between(&mailbox_html, &format!("/event?id={event_link}\">"), "</a>")
        .unwrap_or("Weekly")
        .to_owned();
    let pages: Vec<(String, String)> = vec![
        ("overview".into(), "/console".into()),
        ("connections".into(), "/console/connections".into()),
        (
            "mailboxes (page 1 of all)".into(),
            "/console/mailboxes".into(),
        ),
        (
            "mailboxes, search 'room'".into(),
            "/console/mailboxes?q=room".into(),
        ),
        (
            "mailboxes, last page".into(),
            "/console/mailboxes?page=1000000".into(),
        ),
        (
            "mailbox (busiest: week + events)".into(),
            format!("/console/mailboxes/{}", enc(&busiest)),
        ),
        (
            "why isn't it here (subject)".into(),
            format!(
                "/console/mailboxes/{}/why?subject={}",
                enc(&busiest),
                enc(&subject)
            ),
        ),
        (
            "why isn't it here (never seen)".into(),
            format!(
                "/console/mailboxes/{}/why?subject=no+such+meeting",
                enc(&busiest)
            ),
        ),
        (
            "event history".into(),
            format!("/console/mailboxes/{}/event?id={event_link}", enc(&busiest)),
        ),
        ("accounts".into(), "/console/accounts".into()),
        ("bookings".into(), "/console/bookings".into()),
        ("webhooks".into(), "/console/webhooks".into()),
        ("doctor".into(), "/console/doctor".into()),
    ];
    // Warm up each page once (connections, caches), as a person's first click would; then wait
    // (at most a minute) for the integrity check the Doctor page started in the background,
    // so that the figures are the pages' own.
    for (_, path) in &pages {
        get(path.clone()).await?;
    }
    let waiting = Instant::now();
    while !get("/console/doctor".to_owned())
        .await?
        .1
        .contains("integrity check (checked ")
        && waiting.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut out = format!(
        "{:<36} {:>9} {:>9} {:>9} {:>10}  goal ≤ {GOAL_MS:.0} ms\n",
        "page", "p50 ms", "p90 ms", "max ms", "size"
    );
    let mut worst: f64 = 0.0;
    for (label, path) in &pages {
        let mut times = Vec::with_capacity(args.requests as usize);
        let mut size = 0;
        for _ in 0..args.requests {
            let (took, body) = get(path.clone()).await?;
            size = body.len();
            times.push(took);
        }
        times.sort();
        let max = times
            .last()
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        worst = worst.max(max);
        out.push_str(&format!(
            "{label:<36} {:>9.1} {:>9.1} {:>9.1} {:>8} kB  {}\n",
            pct(&times, 0.5),
            pct(&times, 0.9),
            max,
            thousands(size as u64 / 1024),
            if max <= GOAL_MS { "ok" } else { "SLOW" }
        ));
    }
    server.abort();
    let _ = store.revoke_api_key(&name).await;
    // What the Doctor page leaves to the background: the integrity check of the whole file.
    let started = Instant::now();
    let check = calgate_admin::lifecycle::database_check(store.as_ref()).await;
    out.push_str(&format!(
        "database integrity check (run in the background for the Doctor page): {:.2} s, {}\n",
        started.elapsed().as_secs_f64(),
        check.summary
    ));
    out.push_str(&format!(
        "slowest page: {worst:.1} ms ({}); {} requests of each page; peak RSS {}\n",
        if worst <= GOAL_MS {
            "every page within the goal"
        } else {
            "above the goal"
        },
        args.requests,
        mib(peak_rss_kib("self"))
    ));
    print_out(&out);
    Ok(())
}
