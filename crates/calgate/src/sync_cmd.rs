//! `calgate sync`: plan → execute over every linked mailbox, with a progress bar on a
//! terminal and one `calgate:` line per failing cause.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use calgate_graph::Shared;
use calgate_store::Store;
use calgate_sync::{Engine, EngineOptions, Progress, ProgressFn, Summary, SyncMode, SyncRequest};
use clap::Args;
use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;

use crate::output::{plural, print_out, thousands};
use crate::{Reported, StoreLocation, error_line};

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Only this mailbox (repeat for several). Default: every linked mailbox.
    #[arg(long, value_name = "ADDRESS")]
    pub mailbox: Vec<String>,
    /// A full resync (into a shadow set, swapped in when complete) instead of incremental.
    #[arg(long)]
    pub full: bool,
    /// Print the plan, one line per mailbox, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Let through the deletions the bulk-delete guard held for review (a round that would
    /// delete more than half of a mailbox's events, at least 20). Only with --mailbox.
    #[arg(long, requires = "mailbox")]
    pub accept_deletions: bool,
    /// Mailboxes synced at once (each with at most 4 requests in flight).
    #[arg(long, value_name = "N", default_value_t = calgate_sync::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub concurrency: usize,
}

pub(crate) async fn run(args: SyncArgs, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    let mut unknown = Vec::new();
    for a in &args.mailbox {
        if store.mailbox(a).await?.is_none() {
            unknown.push(a.clone());
        }
    }
    if let Some(a) = unknown.first() {
        anyhow::bail!(
            "{} not linked: link it with `calgate mailbox link {a} --connection NAME` (see `calgate mailbox list`)",
            if unknown.len() == 1 {
                format!("{a} is")
            } else {
                format!("{} are", unknown.join(", "))
            }
        );
    }
    let request = SyncRequest {
        mode: if args.full {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        },
        mailboxes: (!args.mailbox.is_empty()).then(|| args.mailbox.clone()),
        accept_deletions: args.accept_deletions,
        ..SyncRequest::default()
    };
    let engine = engine(store.clone(), args.concurrency)?;
    if args.dry_run {
        let plan = engine.plan(&request, Timestamp::now()).await?;
        print_out(&plan.to_string());
        print_out("dry run: nothing was changed\n");
        return Ok(());
    }
    // Push before pull: the host application's bookings go out first, so the pull that follows
    // sees them (as calgate's own events).
    let mut push_failed = false;
    if store.pending_pushes().await? > 0 {
        let pushed = engine
            .push(&calgate_sync::push::PushOptions::default())
            .await?;
        print_out(&format!("{pushed}\n"));
        if pushed.failed > 0 {
            error_line(&format!(
                "calgate: {} booking writes failed for good: see `calgate booking list --state failed`",
                pushed.failed
            ));
            push_failed = true;
        }
    }
    let summary = sync_with_progress(&engine, &request).await?;
    print_out(&format!("{}\n", summary_line(&summary)));
    for line in skipped_lines(&summary) {
        error_line(&line);
    }
    if report_failures(&summary) || push_failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// The engine over `store`, trusting every connection's extra CA.
pub(crate) fn engine(store: Arc<dyn Store>, concurrency: usize) -> anyhow::Result<Engine> {
    engine_with(
        store,
        EngineOptions {
            concurrency,
            ..EngineOptions::default()
        },
    )
}

/// The engine over `store` with `options`.
pub(crate) fn engine_with(store: Arc<dyn Store>, options: EngineOptions) -> anyhow::Result<Engine> {
    let shared = Shared::new().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(Engine::new(store, shared, options))
}

/// Runs the sync with a progress bar on stderr when it is a terminal (hidden otherwise).
pub(crate) async fn sync_with_progress(
    engine: &Engine,
    request: &SyncRequest,
) -> anyhow::Result<Summary> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed:>4} {bar:12} {pos}/{len} mailboxes · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let b = bar.clone();
    let progress: ProgressFn = Arc::new(move |p: &Progress| {
        let t = &p.totals;
        b.set_length(t.mailboxes_total);
        b.set_position(t.mailboxes_done);
        b.set_message(format!(
            "{} events, {} requests, {} throttled{}",
            thousands(t.events_upserted),
            thousands(t.requests),
            thousands(t.throttled),
            if t.mailboxes_failed > 0 {
                format!(", {} failed", t.mailboxes_failed)
            } else {
                String::new()
            }
        ));
    });
    let result = engine.sync(request, Some(progress)).await;
    bar.finish_and_clear();
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// `synced 37 of 37 mailboxes: 2,345 events stored, 0 removed; 120 requests, 0 throttled; 1.2 s`.
pub(crate) fn summary_line(s: &Summary) -> String {
    let t = &s.totals;
    if t.mailboxes_total == 0 {
        return "nothing to sync: no linked mailbox (link one with `calgate mailbox link ADDRESS --connection NAME`)".to_owned();
    }
    format!(
        "synced {} of {}{}: {} stored, {} removed; {}, {} throttled; {:.1} s",
        t.mailboxes_done - t.mailboxes_failed - t.mailboxes_skipped,
        plural(t.mailboxes_total, "mailbox", "mailboxes"),
        if t.mailboxes_skipped > 0 {
            format!(
                " ({} skipped: being synced by another calgate process)",
                t.mailboxes_skipped
            )
        } else {
            String::new()
        },
        plural(t.events_upserted, "event", "events"),
        thousands(t.events_removed),
        plural(t.requests, "request", "requests"),
        thousands(t.throttled),
        s.elapsed.as_secs_f64()
    )
}

/// One line per other process whose leases made this run skip mailboxes:
/// `room-a@x is being synced by another calgate process (pid 4242 on host) since 17:03:12 UTC;
/// skipped`.
pub(crate) fn skipped_lines(s: &Summary) -> Vec<String> {
    let mut by_holder: Vec<(&calgate_store::LeaseInfo, Vec<&str>)> = Vec::new();
    for (o, lease) in s.skipped() {
        match by_holder.iter_mut().find(|(l, _)| l.holder == lease.holder) {
            Some((first, addresses)) => {
                if lease.since < first.since {
                    *first = lease;
                }
                addresses.push(&o.address);
            }
            None => by_holder.push((lease, vec![&o.address])),
        }
    }
    by_holder
        .into_iter()
        .map(|(lease, addresses)| {
            let since = lease.since.strftime("%Y-%m-%d %H:%M:%S UTC");
            if let [one] = addresses.as_slice() {
                format!(
                    "{one} is being synced by another calgate process ({}) since {since}; skipped it",
                    lease.holder
                )
            } else {
                let shown: Vec<&str> = addresses.iter().take(3).copied().collect();
                let more = addresses.len() - shown.len();
                format!(
                    "{} mailboxes ({}{}) are being synced by another calgate process ({}) since {since}; skipped them",
                    addresses.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    lease.holder
                )
            }
        })
        .collect()
}

/// Prints one `calgate:` line per failing cause (connection + class + message, with the
/// mailbox's address taken out); returns whether anything failed.
pub(crate) fn report_failures(s: &Summary) -> bool {
    for line in failure_lines(s) {
        error_line(&line);
    }
    !s.is_success()
}

/// One line per cause, in plan order of first appearance.
pub(crate) fn failure_lines(s: &Summary) -> Vec<String> {
    struct Group {
        connection: String,
        template: String,
        first_message: String,
        addresses: Vec<String>,
        order: usize,
    }
    let mut groups: BTreeMap<(String, calgate_core::FailureKind, String), Group> = BTreeMap::new();
    for (i, o) in s.outcomes.iter().enumerate() {
        let Some(f) = &o.failure else { continue };
        let template = replace_ci(&f.message, &o.address, "the mailbox");
        let key = (o.connection.to_lowercase(), f.kind, template.clone());
        groups
            .entry(key)
            .or_insert_with(|| Group {
                connection: o.connection.clone(),
                template,
                first_message: f.message.clone(),
                addresses: Vec::new(),
                order: i,
            })
            .addresses
            .push(o.address.clone());
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    groups.sort_by_key(|g| g.order);
    groups
        .into_iter()
        .map(|g| {
            if g.addresses.len() == 1 {
                format!(
                    "sync failed for {} (connection '{}'): {}",
                    g.addresses[0], g.connection, g.first_message
                )
            } else {
                let shown: Vec<&str> = g.addresses.iter().take(3).map(String::as_str).collect();
                let more = g.addresses.len() - shown.len();
                format!(
                    "sync failed for {} mailboxes of connection '{}' ({}{}): {}",
                    g.addresses.len(),
                    g.connection,
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    g.template
                )
            }
        })
        .collect()
}

/// `haystack` with every case-insensitive occurrence of `needle` replaced.
fn replace_ci(haystack: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return haystack.to_owned();
    }
    let lower = haystack.to_ascii_lowercase();
    let n = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(&n) {
        out.push_str(&haystack[i..i + pos]);
        out.push_str(with);
        i += pos + n.len();
    }
    out.push_str(&haystack[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two mailboxes failing for one cause share a line that reads as words, with no
    /// placeholder left in it.
    #[test]
    fn grouped_failures_read_as_words() {
        let outcome = |a: &str| calgate_sync::MailboxOutcome {
            mailbox_id: calgate_store::MailboxId(1),
            address: a.to_owned(),
            connection: "c".to_owned(),
            planned: String::new(),
            report: Default::default(),
            failure: Some(calgate_sync::Failure {
                kind: calgate_core::FailureKind::Permission,
                message: format!("{a} is outside the app's RBAC scope: add {a} to the group"),
                next_action: String::new(),
            }),
            skipped: None,
            synced_elsewhere: None,
        };
        let s = Summary {
            totals: Default::default(),
            retries: 0,
            peak_mailbox_concurrency: 0,
            full_resyncs: 0,
            elapsed: Duration::ZERO,
            outcomes: vec![outcome("a@x.example"), outcome("B@x.example")],
            learned_expiries: Vec::new(),
        };
        let lines = failure_lines(&s);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0],
            "sync failed for 2 mailboxes of connection 'c' (a@x.example, B@x.example): the mailbox is outside the app's RBAC scope: add the mailbox to the group"
        );
    }

    #[test]
    fn replace_is_case_insensitive() {
        assert_eq!(
            replace_ci(
                "Room-A@x is outside; add room-a@X",
                "room-a@x",
                "the mailbox"
            ),
            "the mailbox is outside; add the mailbox"
        );
    }
}
