//! The administrator's flows for connections to Exchange Server through EWS: adding one,
//! **Test settings** and **Verify a mailbox**. (Room discovery is in [`crate::rooms`], import
//! and linking are the same for both kinds of connection.)
//!
//! Test settings of an EWS connection, one line each, in this order:
//!
//! | id | step |
//! |---|---|
//! | `config` | the stored URL, user name and CA bundle make a client (https, or http to loopback only) |
//! | `dns` | the server's host name resolves |
//! | `tls` | the TLS handshake succeeds and the certificate is trusted (skipped for http to loopback) |
//! | `auth` | the service account signs in with the connection's scheme (Basic or NTLM) |
//! | `server` | Exchange answers EWS at the URL; its version (`ServerVersionInfo`) |
//! | `mailbox` | one mailbox's calendar (the given one, else the first linked) opens and reads, by impersonation or by delegate access |
//! | `write` | only `--for push`: a probe item is created with no invitation sent, and deleted |
//!
//! Verify a mailbox through EWS: `token` (the service account signs in), `exists` (Exchange has
//! the mailbox), `scope` (impersonation or delegate access reaches it), `calendar` (a 7-day
//! calendar view reads), `write` (with `--write-probe`).

use calgate_core::{
    Connection, EwsAuth, EwsSettings, MailboxKind, NewConnection, Sensitivity, ShowAs,
};
use calgate_ews::{EwsClient, EwsConfig, ItemWrite};
use jiff::{SignedDuration, Timestamp};

use crate::checklist::{Check, Checklist};
use crate::connections::{ConnectionError, check_ca_pem, check_name};
use crate::diagnose::{Purpose, TestOptions, split_message};
use crate::verify::{PROBE_SUBJECT, VerifyOptions};

/// What an administrator gives to add an EWS connection.
#[derive(Debug, Clone)]
pub struct EwsSpec {
    pub url: String,
    pub username: String,
    pub password: calgate_core::SecretString,
    pub auth: EwsAuth,
    pub impersonation: bool,
}

/// Validates an EWS connection offline (no request is sent) and returns what the store holds.
pub fn prepare(
    name: &str,
    spec: &EwsSpec,
    ca_cert_pem: Option<&str>,
) -> Result<NewConnection, ConnectionError> {
    check_name(name)?;
    let username = spec.username.trim().to_owned();
    if username.is_empty() {
        return Err(ConnectionError::Usage(
            "an EWS connection needs the service account's user name: --username 'DOMAIN\\user' or --username user@domain".to_owned(),
        ));
    }
    if spec.password.expose().is_empty() {
        return Err(ConnectionError::Usage(
            "the service account's password is empty: check --password-env / --password-file"
                .to_owned(),
        ));
    }
    if let Some(pem) = ca_cert_pem {
        check_ca_pem(pem)?;
    }
    let conn = NewConnection {
        name: name.to_owned(),
        tenant: String::new(),
        client_id: String::new(),
        authority: String::new(),
        graph_url: String::new(),
        cloud: "on-premises".to_owned(),
        credentials: Vec::new(),
        ca_cert_pem: ca_cert_pem.map(str::to_owned),
        ews: Some(EwsSettings {
            url: spec.url.trim().to_owned(),
            username,
            password: spec.password.clone(),
            auth: spec.auth,
            impersonation: spec.impersonation,
        }),
    };
    // The client accepts it as it would be stored (URL scheme and host, CA bundle).
    let as_stored = crate::connections::as_stored(&conn, Timestamp::now());
    client(&as_stored).map_err(|e| ConnectionError::Invalid(e.message))?;
    Ok(conn)
}

/// The EWS client of a stored connection.
pub fn client(conn: &Connection) -> Result<EwsClient, calgate_ews::Error> {
    EwsClient::new(diagnostic_config(conn)?)
}

/// A short retry budget: a diagnostic reports an unreachable or throttling server in seconds.
fn diagnostic_config(conn: &Connection) -> Result<EwsConfig, calgate_ews::Error> {
    let mut cfg = EwsConfig::from_connection(conn)?;
    cfg.attempts = 2;
    cfg.max_back_off = std::time::Duration::from_secs(2);
    cfg.max_in_flight = 2;
    Ok(cfg)
}

fn how(e: &EwsSettings) -> &'static str {
    if e.impersonation {
        "by impersonation"
    } else {
        "by delegate access"
    }
}

fn fail(id: &str, e: &calgate_ews::Error) -> Check {
    let (summary, fix) = split_message(&e.message);
    let fix = if fix.is_empty() {
        "see the message above".to_owned()
    } else {
        fix
    };
    let c = Check::fail(id, summary, fix);
    match &e.code {
        Some(code) => c.with_code(code.clone()),
        None => c,
    }
}

/// Test settings of a stored EWS connection; `linked` are its mailboxes.
pub async fn test_connection(
    conn: &Connection,
    linked: &[String],
    opts: &TestOptions,
) -> Checklist {
    let Some(settings) = conn.ews.as_ref() else {
        return Checklist::new("not an EWS connection");
    };
    let mut list = Checklist::new(format!(
        "Test settings: connection '{}' (Exchange Server at {}, {} as {}, {}, for {})",
        conn.name,
        settings.url,
        match settings.auth {
            EwsAuth::Basic => "Basic",
            EwsAuth::Ntlm => "NTLM",
        },
        settings.username,
        if settings.impersonation {
            "impersonation"
        } else {
            "delegate access"
        },
        opts.purpose
    ));
    let skip = |list: &mut Checklist, ids: &[&str], why: &str| {
        for id in ids {
            if *id == "write" && opts.purpose != Purpose::Push {
                continue;
            }
            list.push(Check::skip(id, format!("{id} not checked: {why}")));
        }
    };
    // ---- config -------------------------------------------------------------------------------
    let client = match client(conn) {
        Ok(c) => c,
        Err(e) => {
            list.push(fail("config", &e));
            skip(
                &mut list,
                &["dns", "tls", "auth", "server", "mailbox", "write"],
                "the settings are not usable",
            );
            return list;
        }
    };
    list.push(Check::pass(
        "config",
        format!(
            "EWS URL {} and service account {}",
            settings.url, settings.username
        ),
    ));
    // ---- dns ----------------------------------------------------------------------------------
    let url = calgate_ews::transport::check_url(&settings.url).ok();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let port = url
        .as_ref()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(443);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    match tokio::net::lookup_host((bare.as_str(), port)).await {
        Ok(mut addrs) => {
            let first = addrs.next().map(|a| a.ip().to_string()).unwrap_or_default();
            list.push(Check::pass("dns", format!("{host} resolves to {first}")));
        }
        Err(e) => {
            list.push(Check::fail(
                "dns",
                format!("the host name {host} does not resolve ({e})"),
                "check the server name in --ews-url (the name on Exchange's certificate, e.g. mail.example.org) and this machine's DNS",
            ));
            skip(
                &mut list,
                &["tls", "auth", "server", "mailbox", "write"],
                "the host name does not resolve",
            );
            return list;
        }
    }
    // ---- tls, auth, server: one request that needs no mailbox -----------------------------------
    let https = url.as_ref().is_some_and(|u| u.scheme() == "https");
    let signed_in = client.room_lists().await;
    let reached = match &signed_in {
        Ok(_) => true,
        Err(e) => !matches!(
            e.code.as_deref(),
            Some("TlsUntrusted" | "ConnectFailed" | "Timeout" | "NetworkError")
        ),
    };
    if !reached {
        let e = signed_in.as_ref().err().cloned().unwrap_or_else(|| {
            calgate_ews::Error::new(calgate_core::FailureKind::Retryable, "no answer")
        });
        list.push(fail("tls", &e));
        skip(
            &mut list,
            &["auth", "server", "mailbox", "write"],
            "no TLS connection to Exchange",
        );
        return list;
    }
    if https {
        list.push(Check::pass(
            "tls",
            format!("TLS to {host}: the certificate is trusted"),
        ));
    } else {
        list.push(Check::pass(
            "tls",
            format!("plain http to {host} (loopback only): no TLS"),
        ));
    }
    match &signed_in {
        Err(e) if e.kind == calgate_core::FailureKind::Authentication => {
            list.push(fail("auth", e));
            skip(
                &mut list,
                &["server", "mailbox", "write"],
                "the service account cannot sign in",
            );
            return list;
        }
        Err(e)
            if e.status.is_some_and(|s| s == 404 || s == 403)
                || e.kind == calgate_core::FailureKind::InvalidData =>
        {
            list.push(Check::pass(
                "auth",
                format!("{} was not refused", settings.username),
            ));
            list.push(fail("server", e));
            skip(
                &mut list,
                &["mailbox", "write"],
                "EWS does not answer at the URL",
            );
            return list;
        }
        _ => {
            list.push(Check::pass(
                "auth",
                format!(
                    "{} signs in with {}",
                    settings.username,
                    match settings.auth {
                        EwsAuth::Basic => "Basic",
                        EwsAuth::Ntlm => "NTLM",
                    }
                ),
            ));
        }
    }
    match client.server_version() {
        Some(v) => {
            list.push(Check::pass(
                "server",
                format!("Exchange answers EWS: {}", v.product()),
            ));
        }
        None => {
            list.push(Check::warn(
                "server",
                "Exchange answered without ServerVersionInfo",
                "check that --ews-url ends in /EWS/Exchange.asmx",
            ));
        }
    }
    // ---- mailbox ------------------------------------------------------------------------------
    let probe = opts.mailbox.clone().or_else(|| linked.first().cloned());
    let Some(mb) = probe else {
        list.push(Check::skip(
            "mailbox",
            "no mailbox to open: link one (`calgate mailbox link ADDRESS --connection NAME`) or give --mailbox ADDRESS",
        ));
        skip(&mut list, &["write"], "no mailbox to write to");
        return list;
    };
    match read_calendar(&client, &mb).await {
        Ok(n) => {
            list.push(Check::pass(
                "mailbox",
                format!(
                    "{mb}'s calendar opens {} and reads ({n} items in the next 7 days)",
                    how(settings)
                ),
            ));
        }
        Err(e) => {
            list.push(fail("mailbox", &e));
            skip(&mut list, &["write"], "the calendar cannot be read");
            return list;
        }
    }
    if opts.purpose == Purpose::Push {
        match write_probe(&client, &mb).await {
            Ok(()) => {
                list.push(Check::pass(
                "write",
                format!("a probe item was created in {mb}'s calendar with no invitation sent, and deleted"),
            ));
            }
            Err(e) => {
                list.push(fail("write", &e));
            }
        }
    }
    list
}

/// Opens `mb`'s calendar folder, then reads the next 7 days: the number of items.
async fn read_calendar(client: &EwsClient, mb: &str) -> Result<usize, calgate_ews::Error> {
    client.calendar_folder(mb).await?;
    let now = Timestamp::now();
    let end = now
        .checked_add(SignedDuration::from_hours(24 * 7))
        .unwrap_or(now);
    let (items, _) = client.calendar_view(mb, now, end, 100).await?;
    Ok(items.len())
}

/// Creates a free, private, attendee-less probe item an hour from now, then deletes it.
async fn write_probe(client: &EwsClient, mb: &str) -> Result<(), calgate_ews::Error> {
    let start = Timestamp::now()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap_or_else(|_| Timestamp::now());
    let item = ItemWrite {
        subject: PROBE_SUBJECT.to_owned(),
        body: None,
        sensitivity: Sensitivity::Private,
        start,
        end: start
            .checked_add(SignedDuration::from_mins(15))
            .unwrap_or(start),
        all_day: false,
        show_as: ShowAs::Free,
        location: None,
        attendees: Vec::new(),
        zone: "UTC".to_owned(),
        properties: Vec::new(),
        recurrence: None,
    };
    let id = client.create_item(mb, &item, false).await?;
    client.delete_item(mb, &id.id).await
}

/// Verify a mailbox through a stored EWS connection.
pub async fn verify_mailbox(
    conn: &Connection,
    address: &str,
    linked: Option<MailboxKind>,
    opts: &VerifyOptions,
    list: &mut Checklist,
) {
    let Some(settings) = conn.ews.as_ref() else {
        return;
    };
    let skip = |list: &mut Checklist, ids: &[&str], why: &str| {
        for id in ids {
            if *id == "write" && !opts.write_probe {
                continue;
            }
            list.push(Check::skip(id, format!("{id} not checked: {why}")));
        }
    };
    let client = match client(conn) {
        Ok(c) => c,
        Err(e) => {
            list.push(fail("token", &e));
            skip(
                list,
                &["exists", "scope", "calendar", "write"],
                "the settings are not usable",
            );
            return;
        }
    };
    if let Err(e) = client.room_lists().await {
        let (summary, _) = split_message(&e.message);
        let mut c = Check::fail(
            "token",
            format!("connection '{}' cannot sign in: {summary}", conn.name),
            format!(
                "run `calgate connection test {}` for the cause and the exact fix",
                conn.name
            ),
        );
        if let Some(code) = &e.code {
            c = c.with_code(code.clone());
        }
        list.push(c);
        skip(
            list,
            &["exists", "scope", "calendar", "write"],
            "the connection cannot sign in",
        );
        return;
    }
    list.push(Check::pass(
        "token",
        format!(
            "connection '{}' signed in as {}",
            conn.name, settings.username
        ),
    ));
    match client.calendar_folder(address).await {
        Ok(_) => {
            list.push(Check::pass(
                "exists",
                format!("{address} is a mailbox of this Exchange organisation"),
            ));
            list.push(Check::pass(
                "scope",
                format!(
                    "the service account opens {address}'s calendar {}",
                    how(settings)
                ),
            ));
        }
        Err(e) if e.kind == calgate_core::FailureKind::NotFound => {
            list.push(fail("exists", &e));
            skip(
                list,
                &["scope", "calendar", "write"],
                "the mailbox does not exist",
            );
            return;
        }
        Err(e) if e.kind == calgate_core::FailureKind::Permission => {
            list.push(Check::pass("exists", format!("Exchange knows {address}")));
            list.push(fail("scope", &e));
            skip(
                list,
                &["calendar", "write"],
                "the service account cannot open the mailbox",
            );
            return;
        }
        Err(e) => {
            list.push(fail("exists", &e));
            skip(
                list,
                &["scope", "calendar", "write"],
                "Exchange did not answer",
            );
            return;
        }
    }
    let _ = linked;
    match read_calendar(&client, address).await {
        Ok(n) => {
            list.push(Check::pass(
                "calendar",
                format!("calendar readable: {n} items in the next 7 days"),
            ));
        }
        Err(e) => {
            list.push(fail("calendar", &e));
            skip(list, &["write"], "the calendar cannot be read");
            return;
        }
    }
    if opts.write_probe {
        match write_probe(&client, address).await {
            Ok(()) => {
                list.push(Check::pass(
                    "write",
                    "a probe item was created with no invitation sent, and deleted",
                ));
            }
            Err(e) => {
                list.push(fail("write", &e));
            }
        }
    }
}
