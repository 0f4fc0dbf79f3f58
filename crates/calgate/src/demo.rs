//! `calgate demo`: the embedded simulator's demo tenant, a connection to it, every mailbox
//! linked, a first sync — and then the simulator keeps running so that `calgate sync` and
//! `calgate events` can be tried against it.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context as _;
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_sim::{Seed, SimOptions};
use calgate_store::{NewCredential, NewMailbox};
use calgate_sync::SyncRequest;
use clap::Args;
use serde_json::Value;

use crate::output::{plural, print_out, thousands};
use crate::sim_cmd::explain_sim_error;
use crate::sync_cmd::{engine, failure_lines, summary_line, sync_with_progress};
use crate::{StoreLocation, error_line};

/// The connection the demo (re)creates.
pub(crate) const DEMO_CONNECTION: &str = "demo";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Stop after the first sync (print the summary and exit).
    #[arg(long)]
    pub no_serve: bool,
    /// Where the REST API listens (without --no-serve).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the embedded Microsoft 365 simulator listens (port 0: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub sim_listen: SocketAddr,
    /// Seed of the simulated tenant (same value, same people, rooms and events).
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub rng: u64,
}

pub(crate) async fn run(
    args: DemoArgs,
    loc: StoreLocation,
    config: &crate::config::Config,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let sim = calgate_sim::start(SimOptions {
        listen: args.sim_listen,
        seed: Seed::Demo,
        rng: args.rng,
        ..SimOptions::default()
    })
    .await
    .map_err(explain_sim_error)?;
    let creds = sim.credentials();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let tenant = s(&creds["tenant_id"]);
    let app = creds["apps"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .context("the simulator published no app — this is a bug in calgate sim")?;
    let mut out = String::new();
    out.push_str(&format!(
        "calgate demo: Microsoft 365 simulator (demo tenant \"Contoso\", {}) at {}\n",
        tenant, sim.base_url
    ));

    let store = loc.open_or_create().await?;
    // Replace an earlier demo connection: its simulator is gone (new port, new token keys).
    let mut replaced = 0usize;
    let existed = store.connection(DEMO_CONNECTION).await?.is_some();
    if existed {
        for m in store.list_mailboxes().await? {
            if m.connection.eq_ignore_ascii_case(DEMO_CONNECTION) {
                store.unlink_mailbox(&m.address).await?;
                replaced += 1;
            }
        }
        crate::connection::remove(store.as_ref(), DEMO_CONNECTION).await?;
    }
    let conn = crate::connection::add(
        store.as_ref(),
        &calgate_admin::connections::ConnectionSpec {
            name: DEMO_CONNECTION.to_owned(),
            tenant: tenant.clone(),
            client_id: s(&app["client_id"]),
            authority: Some(sim.base_url.clone()),
            graph_url: Some(s(&creds["graph_url"])),
            credentials: vec![NewCredential::secret(s(&app["client_secret"]), None)],
            ..Default::default()
        },
    )
    .await?;
    out.push_str(&format!(
        "connection '{}' {}: app '{}' (client id {}), data in {}\n",
        conn.name,
        if existed {
            format!("replaced (it had {replaced} linked mailboxes)")
        } else {
            "added".to_owned()
        },
        s(&app["name"]),
        conn.client_id,
        loc.shown()
    ));

    let mut counts = [0u64; 3];
    let slot = |k: MailboxKind| match k {
        MailboxKind::User => 0,
        MailboxKind::Room => 1,
        MailboxKind::Equipment => 2,
    };
    let mut skipped = Vec::new();
    let mut room = None;
    for m in creds["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let address = s(&m["address"]);
        let kind = match m["kind"].as_str() {
            Some("room") => MailboxKind::Room,
            Some("equipment") => MailboxKind::Equipment,
            _ => MailboxKind::User,
        };
        let linked = crate::mailbox::link(
            store.as_ref(),
            NewMailbox {
                address: address.clone(),
                connection: DEMO_CONNECTION.to_owned(),
                kind: Some(kind),
                external_id: None,
                privacy: Some(PrivacyPolicy::Full),
            },
            false,
        )
        .await;
        match linked {
            Ok(_) => {
                counts[slot(kind)] += 1;
                if kind == MailboxKind::Room && room.is_none() {
                    room = Some(address);
                }
            }
            Err(_) => skipped.push(address),
        }
    }
    let linked_total: u64 = counts.iter().sum();
    out.push_str(&format!(
        "linked {} ({} users, {} rooms, {} equipment){}\n",
        plural(linked_total, "mailbox", "mailboxes"),
        counts[0],
        counts[1],
        counts[2],
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; skipped {} already linked to another connection",
                skipped.len()
            )
        }
    ));
    print_out(&out);

    let engine = engine(store.clone(), calgate_sync::DEFAULT_CONCURRENCY)?;
    let summary = sync_with_progress(&engine, &SyncRequest::default()).await?;
    let t = &summary.totals;
    let mut stored = 0u64;
    for m in store.list_mailboxes().await? {
        if m.connection.eq_ignore_ascii_case(DEMO_CONNECTION) {
            stored += store.count_instances(m.id).await?;
        }
    }
    print_out(&format!(
        "first sync: {}\n  mailboxes: {} synced, {} failed\n  events:    {} stored\n  requests:  {} to Graph ({} throttled), peak {} in flight per mailbox\n  time:      {:.1} s sync, {:.1} s in all\n",
        summary_line(&summary),
        thousands(t.mailboxes_done - t.mailboxes_failed),
        thousands(t.mailboxes_failed),
        thousands(stored),
        thousands(t.requests),
        thousands(t.throttled),
        summary.peak_mailbox_concurrency,
        summary.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    let failed = !summary.is_success();
    for line in failure_lines(&summary) {
        error_line(&line);
    }

    let data_flag = data_flag(&loc);
    let room = room.unwrap_or_else(|| "room-amstel@contoso.example".to_owned());
    let today = crate::output::utc_date(jiff::Timestamp::now());
    let week = today.checked_add(jiff::ToSpan::days(7)).unwrap_or(today);
    let try_events = format!("calgate{data_flag} events {room} --from {today} --to {week}");
    if args.no_serve {
        print_out(&format!(
            "try: {try_events}   (reads the stored events; the simulator has stopped)\n"
        ));
        sim.shutdown().await;
        return if failed {
            Err(crate::Reported.into())
        } else {
            Ok(())
        };
    }
    // Serve: an API key and a feed for the curl commands, then the REST API with sync in the
    // background against the running simulator.
    for k in store.list_api_keys().await? {
        if k.name.starts_with(DEMO_KEY) && k.revoked_at.is_none() {
            store.revoke_api_key(&k.name).await?;
        }
    }
    let (key, new) = calgate_api::auth::generate_key(
        &format!("{DEMO_KEY}-{}", jiff::Timestamp::now().as_second()),
        &[calgate_core::ApiScope::Admin],
    );
    store.add_api_key(&new).await?;
    // Change notifications from the simulator, at the API's own address (known once bound).
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: pick another with --listen ADDR",
                args.listen
            )
        })?;
    let mut config = config.clone();
    if config.notifications_url.is_none() {
        config.notifications_url = Some(format!(
            "http://{}",
            listener
                .local_addr()
                .context("the listener has no address")?
        ));
    }
    let service = crate::serve::start_on(store.clone(), &config, listener, true).await?;
    let base = service.state.config.public_url.clone();
    let (token, hash) = calgate_api::auth::generate_feed_token();
    store
        .add_feed(&calgate_store::NewFeed {
            address: room.clone(),
            token_hash: hash,
            token_hint: token.chars().take(6).collect(),
            privacy: calgate_core::PrivacyPolicy::BusyOnly,
        })
        .await?;
    let from = format!("{today}T00:00:00Z");
    let to = format!("{week}T00:00:00Z");
    let people: Vec<String> = store
        .list_mailboxes()
        .await?
        .into_iter()
        .filter(|m| m.kind == MailboxKind::User)
        .take(1)
        .map(|m| m.address)
        .collect();
    let person = people.first().cloned().unwrap_or_else(|| room.clone());
    print_out(&format!(
        "\ncalgate serves its REST API at {base} (OpenAPI: {base}/openapi.json), keeping every mailbox in sync;\nthe simulator runs at {sim} until Ctrl-C. API key (admin scope, shown once): {k}\n\nTry, in another terminal:\n  curl -s -H 'Authorization: Bearer {k}' '{base}/v1/mailboxes/{room}/events?from={from}&to={to}'\n  curl -s -H 'Authorization: Bearer {k}' -H 'Content-Type: application/json' -d '{{\"mailboxes\":[\"{person}\",\"{room}\"],\"from\":\"{from}\",\"to\":\"{to}\",\"duration_minutes\":60}}' {base}/v1/availability\n  curl -s '{base}/v1/feeds/{token}.ics'\nand: {try_events}\nPress Ctrl-C to stop.\n",
        sim = sim.base_url,
        k = key.expose(),
    ));
    crate::serve::run_service(service).await?;
    print_out("calgate demo: stopping the simulator\n");
    sim.shutdown().await;
    if failed {
        return Err(crate::Reported.into());
    }
    Ok(())
}

/// The name prefix of the API key the demo makes (the previous one is revoked on every run).
const DEMO_KEY: &str = "demo";

/// ` --data-dir X` when the location is not the default one.
fn data_flag(loc: &StoreLocation) -> String {
    let default = std::env::var("CALGATE_DATA_DIR")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "./calgate-data".to_owned());
    if loc.location == default {
        String::new()
    } else if loc.location.contains("://") {
        format!(" --database {}", loc.shown())
    } else {
        format!(" --data-dir {}", loc.location)
    }
}
