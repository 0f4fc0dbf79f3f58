//! The console's forms that change something: add a connection, add and remove a secret,
//! verify and link a mailbox, discover and link rooms. Each calls `calgate-admin` as the CLI
//! does and answers with a checklist or a report page.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use calgate_admin::connections::{self, ConnectionSpec};
use calgate_admin::diagnose::{Purpose, TestOptions};
use calgate_admin::lifecycle::{self, CredentialOptions, RemoveOptions};
use calgate_admin::rooms::{self, RoomsOptions};
use calgate_admin::{Check, Checklist};
use calgate_core::{MailboxKind, NewMailbox};
use jiff::Timestamp;
use serde::Deserialize;

use super::pages::{CheckRow, ChecklistPage, Nav, checked, failure, message, render};
use crate::AppState;

/// A checklist page (or one ✗ line when the input was refused before any check).
fn checklist(nav: Nav, list: &Checklist, back: &str) -> Response {
    render(&ChecklistPage {
        nav,
        heading: list.title.clone(),
        passed: list.passed(),
        warned: super::pages::warned(list),
        checks: list.checks.iter().map(CheckRow::from).collect(),
        back: back.to_owned(),
    })
}

/// A refusal in an administrator's words, as one ✗ line: the cause, then the fix.
fn refused(title: String, id: &str, message: &str) -> Checklist {
    let mut list = Checklist::new(title);
    let (summary, fix) = calgate_admin::diagnose::split_message(message);
    list.push(Check::fail(id, summary, fix));
    list
}

/// The client secret a form gives (its Value and an optional expiry date, `YYYY-MM-DD`),
/// checked as `connection add` checks one.
fn form_secret(
    secret: &str,
    expires: &str,
    now: Timestamp,
) -> Result<calgate_core::NewCredential, String> {
    let raw = expires.trim();
    let expires = if raw.is_empty() {
        None
    } else {
        let date: jiff::civil::Date = raw
            .parse()
            .map_err(|_| format!("the expiry date '{raw}' is not a date (YYYY-MM-DD)"))?;
        let at = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| format!("the expiry date '{raw}' is out of range ({e})"))?;
        Some(at.timestamp())
    };
    let options = CredentialOptions {
        expires,
        secret_id: None,
    };
    lifecycle::secret_credential(secret, "the form", &options, now).map_err(|e| e.to_string())
}

/// Every field of a multipart form (the last of a repeated name), or why it could not be
/// read.
async fn multipart_fields(
    mut form: axum::extract::Multipart,
) -> Result<std::collections::HashMap<String, Bytes>, String> {
    let mut fields = std::collections::HashMap::new();
    while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| e.to_string())?;
        fields.insert(name, bytes);
    }
    Ok(fields)
}

/// A multipart form that could not be read: the sign-in page, or a message with the cause.
async fn unreadable(
    state: &AppState,
    headers: &HeaderMap,
    heading: &str,
    why: &str,
    back: &str,
) -> Response {
    match super::session::session_of(state.store.as_ref(), headers).await {
        Some(s) => message(
            &s,
            "",
            heading,
            &format!("the form could not be read: {why}"),
            back,
        ),
        None => axum::response::Redirect::to("/console/login").into_response(),
    }
}

/// Adds a connection (a client secret's Value, or an uploaded PEM with the certificate and its
/// private key), then runs Test settings on it.
pub(crate) async fn add_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: axum::extract::Multipart,
) -> Response {
    let fields = match multipart_fields(form).await {
        Ok(f) => f,
        Err(e) => {
            return unreadable(
                &state,
                &headers,
                "Connection not added",
                &e,
                "/console/connections",
            )
            .await;
        }
    };
    let text = |k: &str| {
        fields
            .get(k)
            .map(|b| String::from_utf8_lossy(b).trim().to_owned())
            .unwrap_or_default()
    };
    let s = match checked(&state, &headers, &text("csrf")).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = Timestamp::now();
    let name = text("name");
    let title = format!("Add connection '{name}'");
    let opt = |k: &str| Some(text(k)).filter(|v| !v.is_empty());
    let certificate = fields.get("certificate").filter(|b| !b.is_empty());
    let secret = fields
        .get("secret")
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let credential = match (certificate, secret.trim().is_empty()) {
        (Some(_), false) => Err(
            "give a client secret or a certificate, not both: clear one of them and add again"
                .to_owned(),
        ),
        (Some(pem), true) => match std::str::from_utf8(pem) {
            Ok(pem) => lifecycle::certificate_credential(
                pem,
                "the uploaded certificate",
                &CredentialOptions::default(),
                now,
            )
            .map_err(|e| e.to_string()),
            Err(_) => Err("the uploaded certificate is not a PEM text file: upload one PEM file with the private key and the certificate (`cat calgate.key calgate.crt > calgate.pem`)".to_owned()),
        },
        (None, _) => form_secret(&secret, &text("secret_expires"), now),
    };
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            return checklist(
                Nav::of(&s, "connections"),
                &refused(title, "credential", &e),
                "/console/connections",
            );
        }
    };
    let spec = ConnectionSpec {
        name: name.clone(),
        tenant: text("tenant"),
        client_id: text("client_id"),
        cloud: opt("cloud"),
        authority: opt("authority"),
        graph_url: opt("graph_url"),
        credentials: vec![credential],
        ..ConnectionSpec::default()
    };
    if let Err(e) = connections::add(state.store.as_ref(), &spec, now).await {
        return checklist(
            Nav::of(&s, "connections"),
            &refused(title, "config", &e.to_string()),
            "/console/connections",
        );
    }
    test_and_show(&state, &s, &name, TestOptions::default()).await
}

async fn test_and_show(
    state: &AppState,
    s: &super::session::Session,
    name: &str,
    opts: TestOptions,
) -> Response {
    match calgate_admin::diagnose::test_connection(state.store.as_ref(), name, &opts).await {
        Ok(list) => checklist(Nav::of(s, "connections"), &list, "/console/connections"),
        Err(e) => failure(s, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    secret_expires: String,
}

/// Adds a secret to a connection (rotation), then runs Test settings.
pub(crate) async fn add_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<SecretForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = Timestamp::now();
    let title = format!("Add a secret to connection '{name}'");
    let added = match form_secret(&f.secret, &f.secret_expires, now) {
        Err(e) => Err(e),
        Ok(c) => lifecycle::add_credential(state.store.as_ref(), &name, c, now)
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = added {
        return checklist(
            Nav::of(&s, "connections"),
            &refused(title, "credential", &e),
            "/console/connections",
        );
    }
    test_and_show(&state, &s, &name, TestOptions::default()).await
}

/// Removes (retires) one credential of a connection.
pub(crate) async fn remove_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(f): Form<super::pages::CsrfForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match lifecycle::remove_credential(
        state.store.as_ref(),
        &name,
        &id,
        RemoveOptions::default(),
        Timestamp::now(),
    )
    .await
    {
        Ok(r) => message(
            &s,
            "connections",
            "Secret removed",
            &r.message,
            "/console/connections",
        ),
        Err(e) => {
            let mut r = message(
                &s,
                "connections",
                "Secret not removed",
                &e.to_string(),
                "/console/connections",
            );
            *r.status_mut() = StatusCode::CONFLICT;
            r
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    connection: String,
    /// `on`: link the mailbox when every step passed.
    #[serde(default)]
    link: String,
}

/// Verify a mailbox, and link it when asked and every step passed.
pub(crate) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<VerifyForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let address = f.address.trim();
    let mut list = match calgate_admin::verify::verify_mailbox(
        state.store.as_ref(),
        f.connection.trim(),
        address,
        &Default::default(),
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return failure(&s, &e.to_string()),
    };
    if f.link == "on" && list.passed() {
        let linked = calgate_admin::mailboxes::link(
            state.store.as_ref(),
            state.engine.shared(),
            &NewMailbox {
                address: address.to_owned(),
                connection: f.connection.trim().to_owned(),
                kind: None,
                external_id: None,
                privacy: None,
            },
            // Probed again so that the kind is the one Exchange tells.
            calgate_admin::mailboxes::LinkOptions::default(),
        )
        .await;
        list.push(match linked {
            Ok(r) => Check::pass(
                "link",
                format!(
                    "{} linked as {} to connection '{}'",
                    r.mailbox.address,
                    r.mailbox.kind.as_str(),
                    r.mailbox.connection
                ),
            ),
            Err(e) => Check::fail("link", "not linked", e.to_string()),
        });
    }
    checklist(Nav::of(&s, "mailboxes"), &list, "/console/mailboxes")
}

/// A room on the discovery page: (address, name, already linked).
type RoomRow = (String, String, bool);

#[derive(Template)]
#[template(path = "console/rooms.html")]
struct RoomsPage {
    nav: Nav,
    connection: String,
    summary: String,
    /// (room list, rooms: (address, name, already linked)).
    lists: Vec<(String, Vec<RoomRow>)>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DiscoverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    connection: String,
}

/// Lists the connection's room lists and rooms, with a checkbox for each room not linked.
pub(crate) async fn discover(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<DiscoverForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let connection = f.connection.trim().to_owned();
    let report = match rooms::discover(
        state.store.as_ref(),
        state.engine.shared(),
        &connection,
        &RoomsOptions::default(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return message(
                &s,
                "mailboxes",
                "Rooms not discovered",
                &e.to_string(),
                "/console/mailboxes",
            );
        }
    };
    let linked: std::collections::HashSet<String> = match state.store.list_mailboxes().await {
        Ok(v) => v.into_iter().map(|m| m.address.to_lowercase()).collect(),
        Err(e) => return failure(&s, &e.to_string()),
    };
    let entry = |r: &rooms::RoomEntry| {
        (
            r.email.clone(),
            r.display_name.clone().unwrap_or_default(),
            linked.contains(&r.email.to_lowercase()),
        )
    };
    let mut lists: Vec<(String, Vec<RoomRow>)> = report
        .room_lists
        .iter()
        .map(|l| {
            (
                l.display_name.clone().unwrap_or_else(|| l.email.clone()),
                l.rooms.iter().map(entry).collect(),
            )
        })
        .collect();
    if !report.unlisted_rooms.is_empty() {
        lists.push((
            "Rooms in no room list".to_owned(),
            report.unlisted_rooms.iter().map(entry).collect(),
        ));
    }
    render(&RoomsPage {
        nav: Nav::of(&s, "mailboxes"),
        connection,
        summary: report.summary_line(),
        lists,
    })
}

/// Links the rooms ticked on the discovery page (`room` repeated), as rooms.
pub(crate) async fn link_rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut csrf = String::new();
    let mut connection = String::new();
    let mut picked = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "connection" => connection = v.into_owned(),
            "room" => picked.push(v.into_owned()),
            _ => {}
        }
    }
    let s = match checked(&state, &headers, &csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut list = Checklist::new(format!(
        "Link {} room(s) to connection '{connection}'",
        picked.len()
    ));
    for room in &picked {
        let r = calgate_admin::mailboxes::link(
            state.store.as_ref(),
            state.engine.shared(),
            &NewMailbox {
                address: room.clone(),
                connection: connection.clone(),
                kind: Some(MailboxKind::Room),
                external_id: None,
                privacy: None,
            },
            calgate_admin::mailboxes::LinkOptions { verify: false },
        )
        .await;
        list.push(match r {
            Ok(r) => Check::pass("link", format!("{} linked as a room", r.mailbox.address)),
            Err(e) => Check::fail("link", format!("{room} not linked"), e.to_string()),
        });
    }
    if picked.is_empty() {
        list.push(Check::skip("link", "no room was ticked"));
    }
    checklist(Nav::of(&s, "mailboxes"), &list, "/console/mailboxes")
}

/// Test settings for a purpose (push needs write access).
pub(crate) fn purpose(p: &str) -> Purpose {
    if p == "push" {
        Purpose::Push
    } else {
        Purpose::Pull
    }
}

#[derive(Template)]
#[template(path = "console/import.html")]
struct ImportPage {
    nav: Nav,
    dry_run: bool,
    summary: String,
    /// (line, address, outcome, ok, reason).
    rows: Vec<(u64, String, &'static str, bool, String)>,
}

/// Imports an uploaded CSV file (`calgate mailbox import`), with its per-row report.
pub(crate) async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: axum::extract::Multipart,
) -> Response {
    let fields = match multipart_fields(form).await {
        Ok(f) => f,
        Err(e) => {
            return unreadable(&state, &headers, "Import refused", &e, "/console/mailboxes").await;
        }
    };
    let text = |k: &str| {
        fields
            .get(k)
            .map(|b| String::from_utf8_lossy(b).trim().to_owned())
            .unwrap_or_default()
    };
    let (csrf, connection) = (text("csrf"), text("connection"));
    let dry_run = fields.contains_key("dry_run");
    let data = fields.get("file").cloned();
    let s = match checked(&state, &headers, &csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return message(
            &s,
            "mailboxes",
            "Nothing imported",
            "no file was chosen, or it is empty",
            "/console/mailboxes",
        );
    };
    let opts = calgate_admin::import::ImportOptions {
        dry_run,
        default_connection: Some(connection).filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let report = match calgate_admin::import::import_bytes(
        state.store.as_ref(),
        state.engine.shared(),
        &data,
        &opts,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return message(
                &s,
                "mailboxes",
                "Nothing imported",
                &e.to_string(),
                "/console/mailboxes",
            );
        }
    };
    let summary = report.summary_line();
    render(&ImportPage {
        nav: Nav::of(&s, "mailboxes"),
        dry_run,
        summary,
        rows: report
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.address.clone(),
                    r.outcome.as_str(),
                    r.outcome.is_ok(),
                    r.reason.clone(),
                )
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    /// The "I understand" box, ticked.
    #[serde(default)]
    confirm: Option<String>,
}

fn path_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Unlinks a mailbox and deletes what calgate stored for it (`calgate mailbox unlink`), once
/// the box saying so is ticked.
pub(crate) async fn unlink(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(address): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let address = address.trim();
    let back = format!("/console/mailboxes/{}", path_segment(address));
    if f.confirm.is_none() {
        return message(
            &s,
            "mailboxes",
            "Not unlinked",
            &format!(
                "Nothing was done: tick the box to confirm that unlinking {address} deletes every event calgate stored for it."
            ),
            &back,
        );
    }
    match state.store.unlink_mailbox(address).await {
        Ok(true) => {
            tracing::info!(mailbox = %address, "console: mailbox unlinked");
            message(
                &s,
                "mailboxes",
                "Mailbox unlinked",
                &format!(
                    "{address} is unlinked; the events calgate stored for it were deleted. Link it again with Verify a mailbox."
                ),
                "/console/mailboxes",
            )
        }
        Ok(false) => message(
            &s,
            "mailboxes",
            "Not linked",
            &format!("{address} is not linked to calgate."),
            "/console/mailboxes",
        ),
        Err(e) => failure(&s, &e.to_string()),
    }
}

/// Removes a connection and its credentials (`calgate connection remove`): refused while
/// mailboxes are linked to it.
pub(crate) async fn remove_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = name.trim();
    if f.confirm.is_none() {
        return message(
            &s,
            "connections",
            "Not removed",
            &format!(
                "Nothing was done: tick the box to confirm that connection '{name}' and its credentials are removed."
            ),
            "/console/connections",
        );
    }
    match calgate_admin::connections::remove(state.store.as_ref(), name).await {
        Ok(()) => {
            tracing::info!(connection = %name, "console: connection removed");
            message(
                &s,
                "connections",
                "Connection removed",
                &format!(
                    "Connection '{name}' and its credentials are gone from calgate. Remove the secret in Entra ID too if nothing else uses it."
                ),
                "/console/connections",
            )
        }
        Err(e) => message(
            &s,
            "connections",
            "Not removed",
            &e.to_string(),
            "/console/connections",
        ),
    }
}
