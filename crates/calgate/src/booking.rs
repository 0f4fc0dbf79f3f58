//! `calgate booking put FILE.json | get EXTERNAL_ID [--json] | delete EXTERNAL_ID |
//! list [--state S] [--json]`: the host application's bookings from the command line, checked
//! exactly as `PUT /v1/bookings/{external_id}` checks them. `calgate sync` (or `calgate serve`)
//! writes them into Exchange.

use std::path::PathBuf;

use calgate_api::bookings::{BookingDto, BookingRequest, parse_request};
use calgate_core::booking::BookingState;
use clap::Subcommand;

use crate::StoreLocation;
use crate::output::{Table, print_json, print_out};

#[derive(Debug, Subcommand)]
pub(crate) enum BookingCommand {
    /// Create or update a booking from a JSON file: the body of PUT /v1/bookings/{external_id}
    /// plus its "external_id" (`-` reads standard input).
    Put { file: PathBuf },
    /// A booking and the state of each of its calendars.
    Get {
        external_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a booking: its events are removed from Exchange on the next push.
    Delete { external_id: String },
    /// Queue a booking's failed calendars again (after fixing the cause its error names).
    Retry { external_id: String },
    /// List bookings (optionally only those pending, synced or failed).
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn api_err(e: calgate_api::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.detail)
}

fn show(b: &BookingDto) {
    let mut out = format!(
        "{}: {} ({}), {} – {} {}, {} mode{}\n",
        b.external_id,
        b.subject,
        b.state,
        b.start,
        b.end,
        b.time_zone,
        b.mode,
        if b.deleted { ", deleted" } else { "" }
    );
    for t in &b.targets {
        out.push_str(&format!(
            "  {} ({}): {}{}\n",
            t.address,
            t.role,
            t.state,
            t.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        ));
    }
    print_out(&out);
}

pub(crate) async fn run(cmd: BookingCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    match cmd {
        BookingCommand::Put { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            let mut v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", file.display()))?;
            let id = v
                .as_object_mut()
                .and_then(|m| m.remove("external_id"))
                .and_then(|id| id.as_str().map(str::to_owned))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} has no \"external_id\" (the host application's id of the event)",
                        file.display()
                    )
                })?;
            calgate_core::booking::check_external_id(&id).map_err(|e| anyhow::anyhow!("{e}"))?;
            let req: BookingRequest = serde_json::from_value(v)
                .map_err(|e| anyhow::anyhow!("{} is not a booking: {e}", file.display()))?;
            let spec = parse_request(store.as_ref(), &req).await.map_err(api_err)?;
            let (b, changed) = store
                .put_booking(&id, &spec)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            show(&BookingDto::from(&b));
            print_out(if changed {
                "stored: `calgate sync` (or `calgate serve`) writes it into Exchange\n"
            } else {
                "unchanged\n"
            });
            Ok(())
        }
        BookingCommand::Get { external_id, json } => {
            let b = store
                .booking(external_id.trim())
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no booking '{}'", external_id.trim()))?;
            let dto = BookingDto::from(&b);
            if json {
                print_json(&dto)
            } else {
                show(&dto);
                Ok(())
            }
        }
        BookingCommand::Delete { external_id } => {
            if !store.delete_booking(external_id.trim()).await? {
                anyhow::bail!("there is no booking '{}'", external_id.trim());
            }
            print_out(&format!(
                "booking '{}' deleted: `calgate sync` (or `calgate serve`) removes its events from Exchange\n",
                external_id.trim()
            ));
            Ok(())
        }
        BookingCommand::Retry { external_id } => {
            let id = external_id.trim();
            let Some(n) = store.retry_booking(id).await? else {
                anyhow::bail!("there is no booking '{id}'");
            };
            print_out(&format!(
                "booking '{id}': {n} failed calendar(s) queued again; `calgate push run` (or `calgate serve`) writes them\n"
            ));
            Ok(())
        }
        BookingCommand::List { state, json } => {
            let state: Option<BookingState> = state
                .as_deref()
                .map(|s| s.trim().parse().map_err(|e: String| anyhow::anyhow!("{e}")))
                .transpose()?;
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.list_bookings(state, after.as_deref(), 1000).await?;
                let n = page.len();
                after = page.last().map(|b| b.external_id.clone());
                all.extend(page.iter().map(BookingDto::from));
                if n < 1000 {
                    break;
                }
            }
            if json {
                return print_json(&all);
            }
            if all.is_empty() {
                print_out("no bookings\n");
                return Ok(());
            }
            let mut t = Table::new(&["EXTERNAL ID", "STATE", "START", "SUBJECT", "CALENDARS"]);
            for b in &all {
                t.row(vec![
                    b.external_id.clone(),
                    if b.deleted {
                        format!("{} (deleted)", b.state)
                    } else {
                        b.state.clone()
                    },
                    b.start.clone(),
                    b.subject.clone(),
                    b.targets.len().to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
    }
}
