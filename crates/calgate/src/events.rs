//! `calgate events ADDRESS --from DATE --to DATE [--json]`: a mailbox's stored instances, with
//! the busy mapping and the mailbox's privacy policy applied; `calgate events ADDRESS --explain
//! ID`: one event's history (what calgate holds now, each change the change log recorded).

use calgate_api::dto::InstanceDto;
use calgate_core::BusyMapping;
use clap::Args;
use jiff::tz::TimeZone;

use crate::output::{DateArg, Table, local_minute, plural, print_out, zone_name};
use crate::{StoreLocation, Usage};

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The mailbox's address.
    pub address: String,
    /// Start: YYYY-MM-DD (midnight), YYYY-MM-DDTHH:MM (local time) or an RFC 3339 instant.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse,
          required_unless_present = "explain")]
    pub from: Option<DateArg>,
    /// End: as --from; a date includes that whole day.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse,
          required_unless_present = "explain")]
    pub to: Option<DateArg>,
    /// Instead of a list: the history of the event with this Exchange id (`exchange_id` in
    /// `--json`): what calgate holds now, who made it, and each change the change log recorded
    /// (first stored, changed, removed), kept `[server] history_days` days.
    #[arg(long, value_name = "ID", conflicts_with_all = ["from", "to"])]
    pub explain: Option<String>,
    /// A JSON array of instances (fields of the contract in DESIGN.md; times in UTC).
    #[arg(long)]
    pub json: bool,
    /// Show times in this IANA zone (default: the machine's zone); also how dates are read.
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
}

pub(crate) async fn run(args: EventsArgs, loc: StoreLocation) -> anyhow::Result<()> {
    let tz = match &args.time_zone {
        Some(z) => TimeZone::get(z).map_err(|_| {
            Usage(format!(
                "unknown time zone '{z}': give an IANA name such as Europe/Amsterdam or UTC"
            ))
        })?,
        None => TimeZone::system(),
    };
    if let Some(id) = &args.explain {
        return explain(&args, id.trim(), &tz, loc).await;
    }
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        return Err(Usage("give --from and --to (or --explain ID)".to_owned()).into());
    };
    let from = from.resolve(&tz, false).map_err(Usage)?;
    let to = to.resolve(&tz, true).map_err(Usage)?;
    if to <= from {
        return Err(Usage(format!("--to ({to}) must be after --from ({from})")).into());
    }
    let (store, mailbox) = linked(&loc, &args.address).await?;
    let stored = store.instances(mailbox.id, from, to).await?;
    let mapping = BusyMapping::default();
    if args.json {
        let arr: Vec<InstanceDto> = stored
            .iter()
            .map(|s| InstanceDto::new(s, mailbox.privacy, mapping))
            .collect();
        print_out(&format!("{}\n", serde_json::to_string_pretty(&arr)?));
        return Ok(());
    }
    let status = store.status(mailbox.id).await?;
    print_out(&format!(
        "{} ({}): {} from {} to {} (times in {}){}\n",
        mailbox.address,
        mailbox.kind.as_str(),
        plural(stored.len() as u64, "event", "events"),
        local_minute(from, &tz),
        local_minute(to, &tz),
        zone_name(&tz),
        match status.and_then(|s| s.last_success) {
            Some(t) => format!(", last synced {}", local_minute(t, &tz)),
            None => ", never synced: run `calgate sync`".to_owned(),
        }
    ));
    if stored.is_empty() {
        return Ok(());
    }
    let mut t = Table::new(&["START", "END", "BUSY", "SHOW AS", "SUBJECT"]);
    for s in &stored {
        let i = &s.instance;
        let (start, end) = match i.when.all_day {
            Some((d0, d1)) => {
                // End dates are exclusive; show the last day.
                let last = d1.yesterday().unwrap_or(d1);
                let end = if last <= d0 {
                    "(all day)".to_owned()
                } else {
                    format!("{last} (all day)")
                };
                (d0.to_string(), end)
            }
            None => (
                local_minute(i.when.start, &tz),
                local_minute(i.when.end, &tz),
            ),
        };
        let subject = if i.details_hidden(mailbox.privacy) {
            "(busy)".to_owned()
        } else {
            i.subject
                .clone()
                .unwrap_or_else(|| "(no subject)".to_owned())
        };
        t.row(vec![
            start,
            end,
            if i.is_busy(mapping) { "busy" } else { "free" }.to_owned(),
            i.show_as.as_str().to_owned(),
            subject,
        ]);
    }
    t.print();
    Ok(())
}

/// `calgate events ADDRESS --explain ID`.
async fn explain(
    args: &EventsArgs,
    id: &str,
    tz: &TimeZone,
    loc: StoreLocation,
) -> anyhow::Result<()> {
    if id.is_empty() {
        return Err(Usage("--explain needs an event's Exchange id".to_owned()).into());
    }
    let (store, mailbox) = linked(&loc, &args.address).await?;
    let h = calgate_admin::history::event_history(store.as_ref(), mailbox.id, id, 1000).await?;
    let dto = h
        .now
        .as_ref()
        .map(|i| InstanceDto::new(i, mailbox.privacy, BusyMapping::default()));
    if args.json {
        let v = serde_json::json!({
            "mailbox": mailbox.address,
            "exchange_id": id,
            "now": dto,
            "history": h.lines,
        });
        print_out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        return Ok(());
    }
    let mut out = format!("Event {id} of {}\n", mailbox.address);
    match (&h.now, &dto) {
        (Some(s), Some(d)) => {
            let i = &s.instance;
            let subject = if i.details_hidden(mailbox.privacy) {
                "(details hidden by the mailbox's privacy policy)".to_owned()
            } else {
                i.subject
                    .clone()
                    .unwrap_or_else(|| "(no subject)".to_owned())
            };
            out.push_str(&format!(
                "now: {subject}, {} – {} ({}), shown as {}{}; made by {}\n",
                local_minute(i.when.start, tz),
                local_minute(i.when.end, tz),
                zone_name(tz),
                d.show_as,
                if i.is_busy(BusyMapping::default()) {
                    ""
                } else {
                    ": Free, so it is hidden from busy times and feeds"
                },
                match &d.booking_id {
                    Some(b) => format!("calgate, for booking {b}"),
                    None => "a person, in Exchange".to_owned(),
                }
            ));
        }
        _ => out.push_str("now: calgate does not hold this event\n"),
    }
    if h.lines.is_empty() {
        out.push_str(
            "history: nothing in the change log: calgate has not stored or changed this event in the days it keeps (`[server] history_days`)",
        );
        if h.now.is_none() {
            out.push_str(
                "; check the id (`calgate events ADDRESS --from … --to … --json` shows exchange_id) and that the event is inside the sync window",
            );
        }
        out.push('\n');
    } else {
        out.push_str("history, newest first:\n");
        for l in &h.lines {
            out.push_str(&format!("  {l}\n"));
        }
    }
    print_out(&out);
    Ok(())
}

/// The store and the linked mailbox `address` (or the way to link it).
async fn linked(
    loc: &StoreLocation,
    address: &str,
) -> anyhow::Result<(
    std::sync::Arc<dyn calgate_store::Store>,
    calgate_store::Mailbox,
)> {
    let store = loc.open().await?;
    let Some(mailbox) = store.mailbox(address.trim()).await? else {
        anyhow::bail!(
            "{address} is not linked: link it with `calgate mailbox link {address} --connection NAME`, then `calgate sync`"
        );
    };
    Ok((store, mailbox))
}
