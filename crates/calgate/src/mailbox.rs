//! `calgate mailbox link|unlink|list|verify|import`.

use std::collections::HashMap;

use std::path::PathBuf;

use anyhow::bail;
use calgate_admin::import::{self, ImportOptions};
use calgate_admin::mailboxes::{LinkError, LinkOptions};
use calgate_admin::verify::{self, VerifyOptions};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;
use calgate_store::{NewMailbox, Store};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::output::{Table, finish_checklist, local_minute, print_json, print_out};
use crate::{Reported, StoreLocation, error_line};

#[derive(Debug, Subcommand)]
pub(crate) enum MailboxCommand {
    /// Link a mailbox to a connection (again: update its kind, external id and privacy).
    Link(LinkArgs),
    /// Unlink a mailbox and delete everything stored for it.
    Unlink {
        /// The mailbox's address (UPN or primary SMTP address).
        address: String,
    },
    /// List linked mailboxes with their sync status.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Verify a mailbox: exists? user, room or equipment? calendar readable? in the app's
    /// scope? (writable, with --write-probe); its time zone and working hours.
    Verify(VerifyArgs),
    /// Link mailboxes in bulk from a CSV file (columns: address,kind,connection,external_id,
    /// privacy); every row is verified first and reported. Safe to repeat.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The mailbox's address (UPN or primary SMTP address).
    pub address: String,
    /// The connection whose app should reach it.
    #[arg(long, value_name = "NAME")]
    pub connection: String,
    /// Check this calendar (its Graph id) instead of the default one.
    #[arg(long, value_name = "ID")]
    pub calendar: Option<String>,
    /// Also create and delete a probe event (needs write access; nothing is left behind).
    #[arg(long)]
    pub write_probe: bool,
    /// The checklist as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The CSV file (header row: address,kind,connection,external_id,privacy; any order; only
    /// address and connection are required).
    pub file: PathBuf,
    /// Verify and report, link nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The connection for rows without one (or a file without a connection column).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    User,
    Room,
    Equipment,
}

impl From<KindArg> for MailboxKind {
    fn from(k: KindArg) -> MailboxKind {
        match k {
            KindArg::User => MailboxKind::User,
            KindArg::Room => MailboxKind::Room,
            KindArg::Equipment => MailboxKind::Equipment,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PrivacyArg {
    /// Subject, location, organizer and attendees, except for private and confidential items.
    Full,
    /// Times and busy status only.
    BusyOnly,
    /// Everything, private and confidential items included.
    FullIncludingPrivate,
}

impl From<PrivacyArg> for PrivacyPolicy {
    fn from(p: PrivacyArg) -> PrivacyPolicy {
        match p {
            PrivacyArg::Full => PrivacyPolicy::Full,
            PrivacyArg::BusyOnly => PrivacyPolicy::BusyOnly,
            PrivacyArg::FullIncludingPrivate => PrivacyPolicy::FullIncludingPrivate,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// The mailbox's address (UPN or primary SMTP address).
    pub address: String,
    /// The connection whose app reads this mailbox.
    #[arg(long, value_name = "NAME")]
    pub connection: String,
    /// The mailbox's kind (new mailboxes: user; a linked mailbox keeps its kind unless given).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The host application's id for this person, room or resource ('' clears it).
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// What the host application may see of this mailbox's events (new mailboxes: full; a
    /// linked mailbox keeps its policy unless given).
    #[arg(long, value_enum)]
    pub privacy: Option<PrivacyArg>,
    /// Link without asking Exchange first (no check that it exists, is in the app's scope and
    /// of the kind given).
    #[arg(long)]
    pub no_verify: bool,
}

pub(crate) async fn run(cmd: MailboxCommand, loc: StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    match cmd {
        MailboxCommand::Link(args) => {
            let address = args.address.trim().to_owned();
            calgate_core::check_address(&address).map_err(|e| crate::Usage(e.to_string()))?;
            let report = link(
                store.as_ref(),
                NewMailbox {
                    address: address.clone(),
                    connection: args.connection.clone(),
                    kind: args.kind.map(Into::into),
                    external_id: args.external_id.clone(),
                    privacy: args.privacy.map(Into::into),
                },
                !args.no_verify,
            )
            .await?;
            let m = &report.mailbox;
            let verb = match (report.created, report.changed) {
                (true, _) => "linked",
                (false, false) => "already linked, nothing changed:",
                (false, true) => "updated",
            };
            print_out(&format!(
                "{verb} {} ({}) to connection '{}', privacy {}{}\n",
                m.address,
                m.kind.as_str(),
                m.connection,
                m.privacy.as_str(),
                m.external_id
                    .as_deref()
                    .map(|e| format!(", external id {e}"))
                    .unwrap_or_default()
            ));
            if let Some(how) = &report.verified {
                print_out(&format!("verified: {how}\n"));
            }
            if let Some(w) = &report.warning {
                error_line(&format!("warning: {w}"));
            }
            if report.created {
                print_out("run `calgate sync` to fetch its events\n");
            } else if let Some(why) = &m.pending_resync
                && report.changed
            {
                print_out(&format!(
                    "{why}: the next `calgate sync` resyncs it in full\n"
                ));
            }
            Ok(())
        }
        MailboxCommand::Unlink { address } => {
            if !store.unlink_mailbox(address.trim()).await? {
                bail!("{address} is not linked (see `calgate mailbox list`)");
            }
            print_out(&format!(
                "unlinked {address}; its stored events were deleted\n"
            ));
            Ok(())
        }
        MailboxCommand::List { json } => list(store.as_ref(), json).await,
        MailboxCommand::Verify(args) => {
            let opts = VerifyOptions {
                calendar: args.calendar.clone(),
                write_probe: args.write_probe,
                ..VerifyOptions::default()
            };
            let list =
                verify::verify_mailbox(store.as_ref(), &args.connection, &args.address, &opts)
                    .await?;
            finish_checklist(
                &list,
                args.json,
                &format!("verification of {}", args.address.trim()),
            )
        }
        MailboxCommand::Import(args) => import(store.as_ref(), &args).await,
    }
}

async fn import(store: &dyn Store, args: &ImportArgs) -> anyhow::Result<()> {
    let shared = Shared::new().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let opts = ImportOptions {
        dry_run: args.dry_run,
        default_connection: args.connection.clone(),
        ..ImportOptions::default()
    };
    // One line: the message already holds its cause (no source chain appended).
    let report = import::import_file(store, &shared, &args.file, &opts)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        print_json(&report.to_json())?;
    } else {
        print_out(&report.render_text());
    }
    if report.passed() {
        return Ok(());
    }
    let not_ok = report.rows.iter().filter(|r| !r.outcome.is_ok()).count();
    error_line(&format!(
        "{not_ok} of {} rows of {} {} not linked ({}): fix the rows marked above and import the file again (rows already linked are skipped)",
        report.summary.rows,
        args.file.display(),
        if report.dry_run { "would be" } else { "were" },
        report.summary_line()
    ));
    Err(Reported.into())
}

/// Links a mailbox (verified first when `verify`), with errors in admin words. Shared with
/// `calgate demo` and `bench` (which link what the simulator lists, unverified).
pub(crate) async fn link(
    store: &dyn Store,
    m: NewMailbox,
    verify: bool,
) -> anyhow::Result<calgate_admin::mailboxes::LinkReport> {
    let shared = Shared::with_retry_policy(calgate_admin::diagnose::diagnostic_retry_policy())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    calgate_admin::mailboxes::link(store, &shared, &m, LinkOptions { verify })
        .await
        .map_err(|e| match e {
            LinkError::Usage(m) => crate::Usage(m).into(),
            other => anyhow::anyhow!("{other}"),
        })
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let mailboxes = store.list_mailboxes().await?;
    let statuses: HashMap<_, _> = store
        .statuses()
        .await?
        .into_iter()
        .map(|s| (s.mailbox_id, s))
        .collect();
    if json {
        let mut out = Vec::with_capacity(mailboxes.len());
        for m in &mailboxes {
            let s = statuses.get(&m.id);
            out.push(json!({
                "address": m.address,
                "kind": m.kind.as_str(),
                "connection": m.connection,
                "external_id": m.external_id,
                "privacy": m.privacy.as_str(),
                "linked_at": m.linked_at.to_string(),
                "events": store.count_instances(m.id).await?,
                "last_attempt": s.and_then(|s| s.last_attempt).map(|t| t.to_string()),
                "last_success": s.and_then(|s| s.last_success).map(|t| t.to_string()),
                "last_error": s.and_then(|s| s.last_error.as_ref()).map(|e| json!({
                    "class": e.kind.as_str(), "message": e.message, "at": e.at.to_string()
                })),
                "next_action": s.and_then(|s| s.next_action.clone()),
                "resync_in_progress": s.is_some_and(|s| s.resync_in_progress),
            }));
        }
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&Value::Array(out))?
        ));
        return Ok(());
    }
    if mailboxes.is_empty() {
        print_out(
            "no linked mailboxes: link one with `calgate mailbox link ADDRESS --connection NAME`\n",
        );
        return Ok(());
    }
    let tz = jiff::tz::TimeZone::system();
    let mut t = Table::new(&[
        "ADDRESS",
        "KIND",
        "CONNECTION",
        "PRIVACY",
        "EXTERNAL ID",
        "EVENTS",
        "LAST SYNC",
        "STATUS",
    ]);
    for m in &mailboxes {
        let s = statuses.get(&m.id);
        let status = match s {
            None => "never synced".to_owned(),
            Some(s) => match (&s.last_error, s.last_attempt) {
                (Some(e), _) => format!("failing ({})", e.kind),
                (None, Some(_)) => "ok".to_owned(),
                (None, None) => "never synced".to_owned(),
            },
        };
        t.row(vec![
            m.address.clone(),
            m.kind.as_str().to_owned(),
            m.connection.clone(),
            m.privacy.as_str().to_owned(),
            m.external_id.clone().unwrap_or_else(|| "-".to_owned()),
            store.count_instances(m.id).await?.to_string(),
            s.and_then(|s| s.last_success)
                .map(|t| local_minute(t, &tz))
                .unwrap_or_else(|| "-".to_owned()),
            status,
        ]);
    }
    t.print();
    Ok(())
}
