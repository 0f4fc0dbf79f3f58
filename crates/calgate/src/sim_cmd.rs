//! `calgate sim`: the Microsoft 365 simulator as a command.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use calgate_sim::{Seed, SimError, SimOptions};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SeedArg {
    /// A realistic organisation: people, rooms in room lists, equipment, months of events.
    Demo,
    /// One tenant with one app and no mailboxes.
    Empty,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the banner shows the real one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5080")]
    listen: SocketAddr,
    /// Serve HTTPS with a generated CA (its PEM is in the credentials file).
    #[arg(long)]
    tls: bool,
    /// Which tenant to start with.
    #[arg(long, value_enum, default_value = "demo")]
    seed: SeedArg,
    /// Extra mailboxes (user00001@…) with ~150 events each, for benchmarks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    scale: usize,
    /// Event instances per --scale mailbox in the seeding window, 30 days back to 120 ahead
    /// (default ~150; at least ~62: the five series and six all-day events are always there,
    /// the rest are single meetings).
    #[arg(long, value_name = "E", requires = "scale")]
    events_per_mailbox: Option<usize>,
    /// Seed of the random generator: the same value gives the same tenant, ids and events.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    rng: u64,
    /// Latency added to every response, in milliseconds (at most 120000).
    #[arg(long, value_name = "L", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(..=calgate_sim::MAX_LATENCY_MS))]
    latency_ms: u64,
    /// Write tenant id, URLs, app credentials and mailboxes as JSON to FILE (mode 0600).
    #[arg(long, value_name = "FILE")]
    credentials_out: Option<PathBuf>,
    /// Requests per (app, mailbox) per 10 minutes before 429 (Graph: 10000).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    request_budget: u32,
}

/// Turns a start-up failure into one actionable line.
pub(crate) fn explain_sim_error(e: SimError) -> anyhow::Error {
    match &e {
        SimError::Listen { addr, source } => {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "address in use — pass --listen {}:0 or another port",
                    addr.ip()
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied — use a port above 1023 (e.g. --listen 127.0.0.1:5080)"
                        .to_owned()
                }
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "{} is not an address of this machine — pass --listen 127.0.0.1:{}",
                    addr.ip(),
                    addr.port()
                ),
                _ => format!("{source} — check --listen"),
            };
            anyhow::anyhow!("cannot listen on {addr}: {hint}")
        }
        SimError::Tls(m) => anyhow::anyhow!("cannot set up TLS: {m} — retry without --tls"),
        SimError::Seed(m) => {
            anyhow::anyhow!("cannot seed the tenant: {m} — try another --rng or --seed empty")
        }
    }
}

pub(crate) async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let opts = SimOptions {
        listen: args.listen,
        tls: args.tls,
        seed: match args.seed {
            SeedArg::Demo => Seed::Demo,
            SeedArg::Empty => Seed::Empty,
        },
        scale: args.scale,
        scale_events: args.events_per_mailbox,
        rng: args.rng,
        latency_ms: args.latency_ms,
        request_budget: args.request_budget,
    };
    let handle = calgate_sim::start(opts).await.map_err(explain_sim_error)?;
    let creds = handle.credentials();
    if let Some(path) = &args.credentials_out {
        write_credentials(path, &creds).with_context(|| {
            format!(
                "cannot write credentials to {} — check that the directory exists and is writable",
                path.display()
            )
        })?;
    }
    print_banner(&handle.base_url, &creds, args.credentials_out.as_deref());
    tracing::info!(base_url = %handle.base_url, "simulator started");

    wait_for_shutdown().await;
    let _ = writeln!(std::io::stderr(), "calgate sim: stopping");
    handle.shutdown().await;
    Ok(())
}

/// Writes the JSON atomically (temp file + rename) with mode 0600: it holds client secrets.
pub(crate) fn write_credentials(path: &Path, creds: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(creds)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "credentials.json".to_owned());
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

/// The start-up banner. Never prints secret values.
fn print_banner(base_url: &str, creds: &serde_json::Value, creds_file: Option<&Path>) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mailboxes = creds["mailboxes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let count = |k: &str| mailboxes.iter().filter(|m| m["kind"] == k).count();
    let mut out = String::new();
    out.push_str(&format!("calgate sim listening on {base_url}\n"));
    out.push_str(&format!("  tenant:      {}\n", s(&creds["tenant_id"])));
    out.push_str(&format!("  authority:   {}\n", s(&creds["authority"])));
    out.push_str(&format!("  graph:       {}\n", s(&creds["graph_url"])));
    out.push_str(&format!(
        "  mailboxes:   {} ({} users, {} rooms, {} equipment)\n",
        mailboxes.len(),
        count("user"),
        count("room"),
        count("equipment")
    ));
    if let Some(apps) = creds["apps"].as_array() {
        for a in apps {
            out.push_str(&format!(
                "  app:         {} (client id {})\n",
                s(&a["name"]),
                s(&a["client_id"])
            ));
        }
    }
    match creds_file {
        Some(p) => out.push_str(&format!(
            "  credentials: written to {} (client secrets inside)\n",
            p.display()
        )),
        None => out.push_str(&format!(
            "  credentials: not written (pass --credentials-out FILE, or GET {base_url}/_sim/credentials)\n"
        )),
    }
    out.push_str(&format!("  control API: {base_url}/_sim/\n"));
    out.push_str("Press Ctrl-C to stop.\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

pub(crate) async fn wait_for_shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
