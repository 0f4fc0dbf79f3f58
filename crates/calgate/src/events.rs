//! `calgate events ADDRESS --from DATE --to DATE [--json]`: a mailbox's stored instances, with
//! the busy mapping and the mailbox's privacy policy applied.

use calgate_core::{BusyMapping, Instance, InstanceType, Origin, Person, PrivacyPolicy};
use calgate_store::StoredInstance;
use clap::Args;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use crate::output::{DateArg, Table, local_minute, plural, print_out, zone_name};
use crate::{StoreLocation, Usage};

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The mailbox's address.
    pub address: String,
    /// Start: YYYY-MM-DD (midnight), YYYY-MM-DDTHH:MM (local time) or an RFC 3339 instant.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub from: DateArg,
    /// End: as --from; a date includes that whole day.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub to: DateArg,
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
    let from = args.from.resolve(&tz, false).map_err(Usage)?;
    let to = args.to.resolve(&tz, true).map_err(Usage)?;
    if to <= from {
        return Err(Usage(format!("--to ({to}) must be after --from ({from})")).into());
    }
    let store = loc.open().await?;
    let Some(mailbox) = store.mailbox(args.address.trim()).await? else {
        anyhow::bail!(
            "{} is not linked: link it with `calgate mailbox link {} --connection NAME`, then `calgate sync`",
            args.address,
            args.address
        );
    };
    let stored = store.instances(mailbox.id, from, to).await?;
    let mapping = BusyMapping::default();
    if args.json {
        let arr: Vec<Value> = stored
            .iter()
            .map(|s| instance_json(s, mailbox.privacy, mapping))
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

fn person(p: &Person) -> Value {
    json!({"name": p.name, "address": p.address})
}

fn type_str(k: InstanceType) -> &'static str {
    match k {
        InstanceType::SingleInstance => "singleInstance",
        InstanceType::Occurrence => "occurrence",
        InstanceType::Exception => "exception",
    }
}

fn sensitivity_str(s: calgate_core::Sensitivity) -> &'static str {
    use calgate_core::Sensitivity::*;
    match s {
        Normal => "normal",
        Personal => "personal",
        Private => "private",
        Confidential => "confidential",
    }
}

/// One instance as `calgate events --json` prints it: the contract's fields, with the detail
/// fields (subject, location, body, organizer, attendees) ABSENT when the policy hides them.
pub(crate) fn instance_json(
    s: &StoredInstance,
    policy: PrivacyPolicy,
    mapping: BusyMapping,
) -> Value {
    let full: &Instance = &s.instance;
    let hidden = full.details_hidden(policy);
    let i = full.redacted(policy);
    let mut m = Map::new();
    m.insert("id".into(), json!(s.id.to_string()));
    m.insert("exchange_id".into(), json!(i.exchange_id));
    m.insert("ical_uid".into(), json!(i.ical_uid));
    m.insert("mailbox".into(), json!(i.mailbox));
    m.insert("type".into(), json!(type_str(i.kind)));
    m.insert("series_master_id".into(), json!(i.series_master_id));
    if !hidden {
        m.insert("subject".into(), json!(i.subject));
    }
    m.insert("start".into(), json!(i.when.start.to_string()));
    m.insert("end".into(), json!(i.when.end.to_string()));
    m.insert("is_all_day".into(), json!(i.when.all_day.is_some()));
    if let Some((d0, d1)) = i.when.all_day {
        m.insert("start_date".into(), json!(d0.to_string()));
        m.insert("end_date".into(), json!(d1.to_string()));
    }
    m.insert("time_zone".into(), json!(i.when.time_zone));
    m.insert("show_as".into(), json!(i.show_as.as_str()));
    m.insert("busy".into(), json!(i.is_busy(mapping)));
    m.insert("sensitivity".into(), json!(sensitivity_str(i.sensitivity)));
    if !hidden {
        m.insert("location".into(), json!(i.location));
        if let Some(b) = &i.body_preview {
            m.insert("body_preview".into(), json!(b));
        }
        m.insert("organizer".into(), json!(i.organizer.as_ref().map(person)));
        m.insert(
            "attendees".into(),
            Value::Array(i.attendees.iter().map(person).collect()),
        );
    }
    m.insert("details_hidden".into(), json!(hidden));
    m.insert("web_link".into(), json!(i.web_link));
    m.insert("change_key".into(), json!(i.change_key));
    m.insert(
        "last_modified".into(),
        json!(i.last_modified.map(|t| t.to_string())),
    );
    m.insert(
        "origin".into(),
        json!(match i.origin {
            Origin::Exchange => "exchange",
            Origin::Calgate => "calgate",
        }),
    );
    Value::Object(m)
}
