//! **Verify a mailbox** — `calgate mailbox verify ADDRESS --connection NAME [--calendar ID]
//! [--write-probe] [--json]`.
//!
//! | id | step |
//! |---|---|
//! | `token` | the connection gets a token (details: `connection test`) |
//! | `exists` | the address is a mailbox of the tenant (user lookup; without User.Read.All, from Exchange's answer) |
//! | `kind` | user, room or equipment — from `mailboxSettings.userPurpose`; when mailbox settings are not permitted, from the places API (rooms only); compared with the kind it is linked as |
//! | `scope` | the mailbox is inside the app's access scope (Entra permission, RBAC for Applications scope, Application Access Policy) |
//! | `calendar` | the default (or `--calendar`) calendar is readable: a calendarView of the next 7 days |
//! | `write` | only with `--write-probe`: a probe event is created (with a transactionId) and deleted — nothing is left behind, also when a step fails |
//! | `settings` | the mailbox's time zone and working hours (MailboxSettings.Read; optional) |

use std::collections::HashSet;

use calgate_core::{MailboxKind, Sensitivity, ShowAs};
use calgate_graph::{
    ErrorKind, EventDraft, GraphClient, MailboxSettings, RetryPolicy, UserInfo, WorkingHours,
};
use calgate_store::Store;
use jiff::{SignedDuration, Timestamp};

use crate::checklist::{Check, Checklist};
use crate::diagnose::{
    AdminError, Ctx, Purpose, diagnostic_retry_policy, fresh_shared, graph_failure, is_raop,
    is_unreachable, linked_mailboxes, reachable_elsewhere, scope_failure, split_message,
};
use crate::probe::{KindEvidence, PurposeRead, a_kind};

/// Options of `calgate mailbox verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// `--calendar ID`: check this calendar instead of the default one.
    pub calendar: Option<String>,
    /// `--write-probe`: create and delete a probe event.
    pub write_probe: bool,
    /// Retries of the probes (default: [`diagnostic_retry_policy`]).
    pub retry: RetryPolicy,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            calendar: None,
            write_probe: false,
            retry: diagnostic_retry_policy(),
        }
    }
}

/// The subject of the `--write-probe` event.
pub const PROBE_SUBJECT: &str = "calgate write probe (safe to delete)";

fn step_name(id: &str) -> &str {
    match id {
        "exists" => "existence",
        "kind" => "kind",
        "scope" => "access scope",
        "calendar" => "calendar",
        "write" => "write access",
        "settings" => "time zone and working hours",
        other => other,
    }
}

/// Verifies `address` through the stored connection `connection`.
pub async fn verify_mailbox(
    store: &dyn Store,
    connection: &str,
    address: &str,
    opts: &VerifyOptions,
) -> Result<Checklist, AdminError> {
    let conn = store
        .connection(connection)
        .await?
        .ok_or_else(|| AdminError::UnknownConnection(connection.to_owned()))?;
    let address = address.trim();
    let mut list = Checklist::new(format!(
        "Verify mailbox {address} (connection '{connection}'{})",
        opts.calendar
            .as_deref()
            .map(|c| format!(", calendar {c}"))
            .unwrap_or_default()
    ));
    let linked = store
        .mailbox(address)
        .await?
        .filter(|m| m.connection == connection)
        .map(|m| m.kind);
    let others = linked_mailboxes(store, connection).await?;
    if conn.ews.is_some() {
        crate::ews::verify_mailbox(&conn, address, linked, opts, &mut list).await;
        return Ok(list);
    }
    let cfg = match calgate_graph::ConnectionConfig::from_connection(&conn) {
        Ok(c) => c,
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            list.push(Check::fail("token", summary, fix));
            return Ok(list);
        }
    };
    let ctx = Ctx::new(connection, &cfg);
    let shared = fresh_shared(&opts.retry)?;
    let client = match GraphClient::new(cfg.clone(), &shared) {
        Ok(c) => c,
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            list.push(Check::fail("token", summary, fix));
            return Ok(list);
        }
    };
    let target = Target {
        address,
        linked,
        others: &others,
    };
    verify_with(&ctx, &client, &target, opts, &mut list).await;
    Ok(list)
}

struct Target<'a> {
    address: &'a str,
    /// The kind it is linked as on this connection, if it is.
    linked: Option<MailboxKind>,
    /// The connection's linked mailboxes (to tell an RBAC scope from missing consent).
    others: &'a [String],
}

async fn verify_with(
    ctx: &Ctx<'_>,
    client: &GraphClient,
    t: &Target<'_>,
    opts: &VerifyOptions,
    list: &mut Checklist,
) {
    let mb = t.address;
    let skip_rest = |list: &mut Checklist, from: usize, why: &str| {
        let steps = ["exists", "kind", "scope", "calendar", "write", "settings"];
        for id in steps.iter().skip(from) {
            if *id == "write" && !opts.write_probe {
                continue;
            }
            list.push(Check::skip(
                id,
                format!("{} not checked: {why}", step_name(id)),
            ));
        }
    };

    // ---- token ----------------------------------------------------------------------------
    let token = match client.access_token().await {
        Ok(t) => t,
        Err(e) => {
            let (summary, _) = split_message(&e.message);
            let mut c = Check::fail(
                "token",
                format!("connection '{}' cannot sign in: {summary}", ctx.name),
                format!(
                    "run `calgate connection test {}` for the cause and the exact fix",
                    ctx.name
                ),
            );
            if let Some(code) = &e.code {
                c = c.with_code(code.clone());
            }
            list.push(c);
            skip_rest(list, 0, "the connection cannot sign in");
            return;
        }
    };
    let roles = token.roles().map(<[String]>::to_vec).unwrap_or_default();
    let has_calendar_role = roles.iter().any(|r| {
        r.eq_ignore_ascii_case("Calendars.Read") || r.eq_ignore_ascii_case("Calendars.ReadWrite")
    });
    list.push(Check::pass(
        "token",
        format!("connection '{}' signed in", ctx.name),
    ));

    // ---- exists (directory) ---------------------------------------------------------------------
    let user: Option<UserInfo> = match client.get_user(mb).await {
        Ok(u) => Some(u),
        Err(e) if e.kind == ErrorKind::NotFound => {
            list.push(not_found(mb, e.code.as_deref()));
            skip_rest(list, 1, "the mailbox does not exist");
            return;
        }
        Err(e) if is_unreachable(&e) || e.kind == ErrorKind::Authentication => {
            list.push(graph_failure(ctx, &e));
            skip_rest(list, 0, "Microsoft Graph did not answer");
            return;
        }
        // No User.Read.All (or another failure): Exchange's answers below tell.
        Err(_) => None,
    };

    // ---- mailbox settings, calendar ---------------------------------------------------------------
    let settings = client.mailbox_settings(mb).await;
    let now = Timestamp::now();
    let end = now
        .checked_add(SignedDuration::from_hours(24 * 7))
        .unwrap_or(now);
    let view = match &opts.calendar {
        Some(cal) => client.calendar_view_in(mb, cal, now, end).await,
        None => client.calendar_view(mb, now, end).await,
    };

    // exists
    match (&user, &view) {
        (Some(u), _) => {
            list.push(Check::pass(
                "exists",
                format!(
                    "{mb} exists: {}{}",
                    u.display_name.as_deref().unwrap_or("(no display name)"),
                    u.user_principal_name
                        .as_deref()
                        .filter(|upn| !upn.eq_ignore_ascii_case(mb))
                        .map(|upn| format!(" ({upn})"))
                        .unwrap_or_default()
                ),
            ));
        }
        (None, Err(e)) if e.kind == ErrorKind::NotFound && !is_item_not_found(e) => {
            list.push(not_found(mb, e.code.as_deref()));
            skip_rest(list, 1, "the mailbox does not exist");
            return;
        }
        (None, Err(e)) if is_unreachable(e) => {
            list.push(graph_failure(ctx, e));
            skip_rest(list, 1, "Microsoft Graph did not answer");
            return;
        }
        (None, _) => {
            list.push(Check::pass(
            "exists",
            format!(
                "{mb} exists (Exchange answered for it; the directory itself is not readable without User.Read.All)"
            ),
        ));
        }
    }
    if let Err(e) = &view
        && e.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI"))
    {
        list.push(not_found(mb, e.code.as_deref()));
        skip_rest(list, 1, "the address has no Exchange Online mailbox");
        return;
    }

    // kind
    list.push(kind_check(ctx, client, t, &settings).await);

    // scope and calendar
    let calendar_name = match &opts.calendar {
        Some(c) => format!("calendar {c}"),
        None => "the default calendar".to_owned(),
    };
    let readable = match &view {
        Ok(items) => {
            list.push(Check::pass(
                "scope",
                format!("{mb} is inside application {}'s access scope", ctx.app),
            ));
            list.push(Check::pass(
                "calendar",
                format!(
                    "{calendar_name} is readable: {} event(s) in the next 7 days",
                    items.len()
                ),
            ));
            true
        }
        Err(e) if e.kind == ErrorKind::Permission => {
            let other = if !has_calendar_role && !is_raop(e) {
                reachable_elsewhere(client, t.others, mb).await
            } else {
                None
            };
            let c = scope_failure("scope", ctx.app, Purpose::Pull, mb, e, other.as_deref())
                .unwrap_or_else(|| no_access(ctx, mb, has_calendar_role, e.code.as_deref()));
            list.push(c);
            list.push(Check::skip(
                "calendar",
                format!("{calendar_name} not read: the mailbox is out of the app's reach"),
            ));
            false
        }
        Err(e) if is_item_not_found(e) && opts.calendar.is_some() => {
            list.push(Check::pass(
                "scope",
                format!("{mb} is inside application {}'s access scope", ctx.app),
            ));
            list.push(
                Check::fail(
                    "calendar",
                    format!("{mb} has no calendar with the ID given (--calendar)"),
                    format!(
                        "use a calendar ID of this mailbox (Graph: GET /users/{mb}/calendars, field id), or leave out --calendar to check the default calendar"
                    ),
                )
                .with_code(e.code.clone().unwrap_or_else(|| "ErrorItemNotFound".to_owned())),
            );
            false
        }
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            let mut c = Check::fail(
                "calendar",
                format!("{calendar_name} of {mb} could not be read: {summary}"),
                fix,
            );
            if let Some(code) = &e.code {
                c = c.with_code(code.clone());
            }
            list.push(c);
            false
        }
    };

    // write probe
    if opts.write_probe {
        if readable {
            list.push(write_probe(ctx, client, mb, opts.calendar.as_deref()).await);
        } else {
            list.push(Check::skip(
                "write",
                "write probe not run: the calendar is not readable",
            ));
        }
    }

    // time zone and working hours
    list.push(settings_check(ctx, &settings));
}

fn is_item_not_found(e: &calgate_graph::Error) -> bool {
    e.code.as_deref().is_some_and(|c| {
        c.eq_ignore_ascii_case("ErrorItemNotFound") || c.eq_ignore_ascii_case("itemNotFound")
    })
}

fn not_found(mb: &str, code: Option<&str>) -> Check {
    let c = if code.is_some_and(|c| c.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI")) {
        Check::fail(
            "exists",
            format!(
                "{mb} exists in the directory but has no Exchange Online mailbox (inactive, soft-deleted, unlicensed or on-premises)"
            ),
            "give the user an Exchange Online licence in the Microsoft 365 admin center › Users › Active users › Licenses and apps (room and equipment mailboxes need none); an on-premises mailbox needs an EWS connection",
        )
    } else {
        Check::fail(
            "exists",
            format!("{mb} was not found in the tenant"),
            "check the spelling; use the mailbox's primary SMTP address or UPN as shown in the Microsoft 365 admin center › Users › Active users (people) or › Resources › Rooms & equipment",
        )
    };
    c.with_code(code.unwrap_or("ErrorInvalidUser").to_owned())
}

fn no_access(ctx: &Ctx<'_>, mb: &str, has_calendar_role: bool, code: Option<&str>) -> Check {
    let app = ctx.app;
    let c = if has_calendar_role {
        Check::fail(
            "scope",
            format!(
                "Exchange refused {mb}'s calendar (403) although the app holds a calendar permission: an access policy or scope excludes it"
            ),
            format!(
                "Test-ServicePrincipalAuthorization -Identity {app} -Resource {mb}\nTest-ApplicationAccessPolicy -AppId {app} -Identity {mb}"
            ),
        )
    } else {
        Check::fail(
            "scope",
            format!(
                "{mb} is out of application {app}'s reach: the app holds no Entra calendar permission, and no RBAC for Applications assignment covers {mb} (or admin consent is missing)"
            ),
            format!(
                "if access should be scoped: add {mb} to the management scope's group, or:\nNew-ManagementRoleAssignment -App {app} -Role \"Application Calendars.Read\" -CustomResourceScope <scope containing {mb}>\nTest-ServicePrincipalAuthorization -Identity {app} -Resource {mb}\nif it should be tenant-wide: {} › Add a permission › Microsoft Graph › Application permissions › Calendars.Read, then Grant admin consent",
                ctx_api(ctx)
            ),
        )
    };
    c.with_code(code.unwrap_or("ErrorAccessDenied").to_owned())
}

fn ctx_api(ctx: &Ctx<'_>) -> String {
    format!(
        "Entra ID › App registrations › {} › API permissions",
        ctx.app
    )
}

async fn kind_check(
    ctx: &Ctx<'_>,
    client: &GraphClient,
    t: &Target<'_>,
    settings: &Result<MailboxSettings, calgate_graph::Error>,
) -> Check {
    let mb = t.address;
    let purpose = PurposeRead::from_settings(settings);
    let rooms: Option<HashSet<String>> = if purpose.needs_rooms() {
        client
            .list_rooms()
            .await
            .ok()
            .map(|r| r.into_iter().map(|r| r.email.to_lowercase()).collect())
    } else {
        None
    };
    let evidence = KindEvidence::from_reads(mb, purpose, rooms.as_ref());
    let Some((kind, source)) = evidence.kind() else {
        let link = format!(
            "calgate mailbox link {mb} --connection {} --kind user|room|equipment",
            ctx.name
        );
        return match evidence {
            KindEvidence::NoPurpose => Check::warn(
                "kind",
                format!("Exchange did not say what kind of mailbox {mb} is (no userPurpose)"),
                format!("link it with the right kind: {link}"),
            ),
            KindEvidence::NotARoom => Check::warn(
                "kind",
                format!(
                    "{mb} is not a room (the places API does not list it); whether it is a person's or an equipment mailbox cannot be told without MailboxSettings.Read"
                ),
                format!(
                    "to let calgate tell: {} › Add a permission › Microsoft Graph › Application permissions › MailboxSettings.Read, then Grant admin consent; meanwhile link it with the kind you know: calgate mailbox link {mb} --connection {} --kind user|equipment",
                    ctx_api(ctx),
                    ctx.name
                ),
            ),
            KindEvidence::Failed(message) => {
                let (summary, fix) = split_message(&message);
                Check::warn(
                    "kind",
                    format!("the kind of {mb} cannot be read: {summary}"),
                    fix,
                )
            }
            _ => Check::warn(
                "kind",
                format!(
                    "the kind of {mb} cannot be read: neither mailbox settings (MailboxSettings.Read) nor the places API (Place.Read.All) is permitted"
                ),
                format!(
                    "{} › Add a permission › Microsoft Graph › Application permissions › MailboxSettings.Read (or Place.Read.All for rooms), then Grant admin consent",
                    ctx_api(ctx)
                ),
            ),
        };
    };
    match t.linked {
        Some(linked) if linked != kind => Check::fail(
            "kind",
            format!(
                "{mb} is {} mailbox (from {source}), but it is linked as {}",
                a_kind(kind),
                linked.as_str()
            ),
            format!(
                "link it again with the right kind: calgate mailbox link {mb} --connection {} --kind {}",
                ctx.name,
                kind.as_str()
            ),
        ),
        _ => Check::pass(
            "kind",
            format!("{mb} is {} mailbox (from {source})", a_kind(kind)),
        ),
    }
}

fn settings_check(
    ctx: &Ctx<'_>,
    settings: &Result<MailboxSettings, calgate_graph::Error>,
) -> Check {
    match settings {
        Ok(s) => {
            let tz = s.time_zone.as_deref().unwrap_or("not set");
            let wh = s
                .working_hours
                .as_ref()
                .map(working_hours_text)
                .unwrap_or_else(|| "not set".to_owned());
            Check::pass("settings", format!("time zone {tz}; working hours {wh}"))
        }
        Err(e) if e.kind == ErrorKind::Permission => Check::warn(
            "settings",
            "time zone and working hours not readable (no MailboxSettings.Read) — optional: calgate reads event times in UTC with their own zones",
            format!(
                "to show them: {} › Add a permission › Microsoft Graph › Application permissions › MailboxSettings.Read, then Grant admin consent",
                ctx_api(ctx)
            ),
        ),
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            Check::warn(
                "settings",
                format!("time zone and working hours not readable: {summary}"),
                fix,
            )
        }
    }
}

fn working_hours_text(w: &WorkingHours) -> String {
    use jiff::civil::Weekday::*;
    let name = |d: &jiff::civil::Weekday| match d {
        Monday => "Mon",
        Tuesday => "Tue",
        Wednesday => "Wed",
        Thursday => "Thu",
        Friday => "Fri",
        Saturday => "Sat",
        Sunday => "Sun",
    };
    let days: Vec<&str> = w.days_of_week.iter().map(name).collect();
    let fmt_t = |t: Option<jiff::civil::Time>| {
        t.map(|t| t.strftime("%H:%M").to_string())
            .unwrap_or_else(|| "?".to_owned())
    };
    format!(
        "{} {}–{}{}",
        if days.is_empty() {
            "no days".to_owned()
        } else {
            days.join(" ")
        },
        fmt_t(w.start),
        fmt_t(w.end),
        w.time_zone
            .as_deref()
            .map(|z| format!(" ({z})"))
            .unwrap_or_default()
    )
}

/// Creates a probe event (free, private, no attendees: nobody is notified) and deletes it.
/// A create whose answer was lost is repeated with the same transactionId, which makes
/// Exchange return the event it already made, so that it can be deleted too.
async fn write_probe(
    ctx: &Ctx<'_>,
    client: &GraphClient,
    mb: &str,
    calendar: Option<&str>,
) -> Check {
    let now = Timestamp::now();
    let start = now
        .checked_add(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let end = start
        .checked_add(SignedDuration::from_mins(15))
        .unwrap_or(start);
    let draft = EventDraft {
        recurrence: None,
        subject: Some(PROBE_SUBJECT.to_owned()),
        body_text: Some(
            "Created by `calgate mailbox verify --write-probe` to check write access; it is deleted at once.".to_owned(),
        ),
        start,
        end,
        time_zone: "UTC".to_owned(),
        all_day: None,
        show_as: ShowAs::Free,
        sensitivity: Sensitivity::Private,
        location: None,
        attendees: vec![],
        extended_properties: vec![],
    };
    let txid = format!(
        "calgate-write-probe-{}-{}",
        now.as_nanosecond(),
        std::process::id()
    );
    let create = || async {
        match calendar {
            Some(cal) => client.create_event_in(mb, cal, &draft, &txid).await,
            None => client.create_event(mb, &draft, &txid).await,
        }
    };
    let created = match create().await {
        Ok(ev) => ev,
        Err(e) if e.kind == ErrorKind::Permission => {
            return Check::fail(
                "write",
                format!(
                    "application {} may read but not write {mb}'s calendar (the probe event was refused: 403)",
                    ctx.app
                ),
                format!(
                    "{} › Add a permission › Microsoft Graph › Application permissions › Calendars.ReadWrite, then Grant admin consent\nor with RBAC for Applications: New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope <scope containing {mb}>\nTest-ServicePrincipalAuthorization -Identity {app} -Resource {mb}",
                    ctx_api(ctx),
                    app = ctx.app
                ),
            )
            .with_code(e.code.unwrap_or_else(|| "ErrorAccessDenied".to_owned()));
        }
        Err(first) => {
            // The event may exist although the answer was lost: the same transactionId
            // returns it (or fails the same way, then nothing was created).
            match create().await {
                Ok(ev) => ev,
                Err(_) => {
                    let (summary, fix) = split_message(&first.message);
                    let mut c = Check::fail(
                        "write",
                        format!("the probe event could not be created in {mb}: {summary}"),
                        format!(
                            "{fix}\nif an event '{PROBE_SUBJECT}' appears in {mb}'s calendar anyway, delete it"
                        ),
                    );
                    if let Some(code) = first.code {
                        c = c.with_code(code);
                    }
                    return c;
                }
            }
        }
    };
    let mut last = None;
    for _ in 0..3 {
        match client.delete_event(mb, &created.exchange_id).await {
            Ok(()) => {
                return Check::pass(
                    "write",
                    format!("{mb}'s calendar is writable: a probe event was created and deleted"),
                );
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Check::pass(
                    "write",
                    format!("{mb}'s calendar is writable: a probe event was created and is gone"),
                );
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map(|e| e.message).unwrap_or_default();
    Check::fail(
        "write",
        format!(
            "{mb}'s calendar is writable, but the probe event could not be deleted again ({why})"
        ),
        format!(
            "delete the event '{PROBE_SUBJECT}' on {} (UTC) from {mb}'s calendar in Outlook",
            start.strftime("%Y-%m-%d %H:%M")
        ),
    )
}
