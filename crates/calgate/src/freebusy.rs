//! `calgate freebusy ADDRESS... --from DATE --to DATE [--duration MIN] [--json]`: merged busy
//! time of people and rooms and the free slots common to all — the same function as
//! `POST /v1/availability`.

use clap::Args;
use jiff::SignedDuration;
use jiff::tz::TimeZone;

use crate::output::{DateArg, local_minute, print_out};
use crate::{StoreLocation, Usage};

#[derive(Debug, Args)]
pub(crate) struct FreeBusyArgs {
    /// Linked mailboxes (people and rooms).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub from: DateArg,
    /// A date includes that whole day.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub to: DateArg,
    /// The shortest free slot worth listing, in minutes.
    #[arg(long, value_name = "MIN", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=44640))]
    pub duration: u32,
    /// The answer of POST /v1/availability, as JSON.
    #[arg(long)]
    pub json: bool,
    /// Show times in this IANA zone (default: the machine's).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
}

pub(crate) async fn run(args: FreeBusyArgs, loc: StoreLocation) -> anyhow::Result<()> {
    let tz = match &args.time_zone {
        Some(z) => TimeZone::get(z).map_err(|_| {
            Usage(format!(
                "unknown time zone '{z}': give an IANA name such as Europe/Amsterdam"
            ))
        })?,
        None => TimeZone::system(),
    };
    let from = args.from.resolve(&tz, false).map_err(Usage)?;
    let to = args.to.resolve(&tz, true).map_err(Usage)?;
    if to <= from {
        return Err(Usage(format!("--to ({to}) must be after --from ({from})")).into());
    }
    for a in &args.addresses {
        calgate_core::check_address(a.trim()).map_err(|e| Usage(e.to_string()))?;
    }
    let store = loc.open().await?;
    let result = calgate_api::availability::compute(
        store.as_ref(),
        &calgate_api::availability::BusyCache::default(),
        &args.addresses,
        from,
        to,
        SignedDuration::from_mins(i64::from(args.duration)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    if args.json {
        print_out(&format!("{}\n", serde_json::to_string_pretty(&result)?));
        return Ok(());
    }
    let show = |s: &str| {
        s.parse::<jiff::Timestamp>()
            .map(|t| local_minute(t, &tz))
            .unwrap_or_else(|_| s.to_owned())
    };
    for m in &result.mailboxes {
        print_out(&format!(
            "{} — busy {}{}\n",
            m.address,
            if m.busy.is_empty() { "never" } else { "" },
            m.last_synced
                .as_deref()
                .map(|t| format!(" (synced {})", show(t)))
                .unwrap_or_else(|| " (never synced: run `calgate sync`)".to_owned())
        ));
        for b in &m.busy {
            print_out(&format!("  {} – {}\n", show(&b.start), show(&b.end)));
        }
    }
    print_out(&format!(
        "free for everyone, {} minutes or more:{}\n",
        args.duration,
        if result.free_slots.is_empty() {
            " none"
        } else {
            ""
        }
    ));
    for f in &result.free_slots {
        print_out(&format!("  {} – {}\n", show(&f.start), show(&f.end)));
    }
    Ok(())
}
