//! `calgate push run [--claim-seconds N]`: drain the push outbox into Exchange now (what
//! `calgate sync` does before it pulls, and `calgate serve` in the background).
//! `calgate push reconcile --connection NAME`: rebuild the mapping from Exchange alone.
//! `calgate push purge --connection NAME [--dry-run] [--yes]`: delete every event calgate made in
//! the connection's linked mailboxes, found in Exchange itself.

use std::io::IsTerminal as _;
use std::time::Duration;

use calgate_sync::push::PushOptions;
use clap::Subcommand;

use crate::output::print_out;
use crate::sync_cmd::engine;
use crate::{Reported, StoreLocation, error_line};

#[derive(Debug, Subcommand)]
pub(crate) enum PushCommand {
    /// Write the queued bookings into Exchange now (then exit).
    Run {
        /// How long an entry being written stays hidden from other calgate processes (a
        /// process that died is taken over after it).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        claim_seconds: u64,
    },
    /// Rebuild the booking ↔ Exchange mapping from Exchange alone (calgate's events found by
    /// their property in the connection's mailboxes); run it before pushing into a restored
    /// or rebuilt store.
    Reconcile {
        #[arg(long)]
        connection: String,
    },
    /// Delete every event calgate created in the mailboxes linked through a connection, found
    /// by calgate's property in Exchange itself: a count first, then a confirmation.
    Purge {
        #[arg(long)]
        connection: String,
        /// Count only; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) async fn run(cmd: PushCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    let engine = engine(store.clone(), calgate_sync::DEFAULT_CONCURRENCY)?;
    match cmd {
        PushCommand::Run { claim_seconds } => {
            let summary = engine
                .push(&PushOptions {
                    hold: Duration::from_secs(claim_seconds),
                    ..PushOptions::default()
                })
                .await?;
            print_out(&format!("{summary}\n"));
            let left = store.pending_pushes().await?;
            if left > 0 {
                print_out(&format!(
                    "{left} writes still queued (waiting to retry, or held by another process)\n"
                ));
            }
            if summary.failed > 0 {
                error_line(&format!(
                    "calgate: {} booking writes failed for good: see `calgate booking list --state failed`",
                    summary.failed
                ));
                return Err(Reported.into());
            }
            Ok(())
        }
        PushCommand::Reconcile { connection } => {
            let r = engine.reconcile(&connection).await?;
            for (a, e) in &r.errors {
                error_line(&format!("calgate: {a}: {e}"));
            }
            print_out(&format!(
                "{} events made by calgate found in Exchange: {} recorded on their bookings, {} of bookings this store does not have\n",
                r.found, r.adopted, r.unknown
            ));
            if !r.errors.is_empty() {
                return Err(Reported.into());
            }
            Ok(())
        }
        PushCommand::Purge {
            connection,
            dry_run,
            yes,
        } => {
            let found = engine.purge(&connection, true).await?;
            let total: usize = found.iter().map(|m| m.found).sum();
            for m in &found {
                if let Some(e) = &m.error {
                    error_line(&format!("calgate: {}: {e}", m.address));
                } else if m.found > 0 {
                    print_out(&format!(
                        "{}: {} events made by calgate\n",
                        m.address, m.found
                    ));
                }
            }
            print_out(&format!(
                "{total} events made by calgate in {} mailboxes of connection '{connection}'\n",
                found.len()
            ));
            if dry_run || total == 0 {
                if dry_run {
                    print_out("dry run: nothing was deleted\n");
                }
                return Ok(());
            }
            if !yes {
                if !std::io::stdin().is_terminal() {
                    anyhow::bail!(
                        "not deleting {total} events without confirmation: run again with --yes"
                    );
                }
                print_out(&format!(
                    "delete these {total} events from Exchange? [y/N] "
                ));
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    print_out("nothing was deleted\n");
                    return Ok(());
                }
            }
            let done = engine.purge(&connection, false).await?;
            let removed: usize = done.iter().map(|m| m.removed).sum();
            let failed: Vec<_> = done.iter().filter(|m| m.error.is_some()).collect();
            for m in &failed {
                error_line(&format!(
                    "calgate: {}: {}",
                    m.address,
                    m.error.as_deref().unwrap_or_default()
                ));
            }
            print_out(&format!("deleted {removed} events made by calgate\n"));
            if !failed.is_empty() {
                return Err(Reported.into());
            }
            Ok(())
        }
    }
}
