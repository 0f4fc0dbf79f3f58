//! **Test settings** — `calgate connection test NAME [--json] [--mailbox ADDRESS] [--for pull|push]`.
//!
//! One run, one [`Checklist`], in this order:
//!
//! | id | step |
//! |---|---|
//! | `config` | the stored connection makes a valid client configuration (URLs, certificates) |
//! | `authority` | Entra ID answers at the connection's authority |
//! | `tenant` | the tenant exists (AADSTS90002 / 9001023 otherwise) |
//! | `app` | the application is registered in the tenant (AADSTS700016 otherwise) |
//! | `credential-N` | each secret / certificate, newest first, gets a token of its own (7000215, the secret's *ID* pasted, 7000222, 700024 clock skew, 700027); named `secret #3` by calgate's id, as `connection list` does (`N` is only the position) |
//! | `token` | a token was acquired; its application permissions (`roles`) are decoded |
//! | `permissions` | the permissions fit the purpose (`--for pull`: Calendars.Read; `--for push`: Calendars.ReadWrite) |
//! | `consent` | ✗ instead of `permissions` when the token has no calendar permission *and* Exchange refuses the mailbox |
//! | `graph` | Microsoft Graph answers at the connection's Graph URL and accepts the token |
//! | `directory` | a user lookup works (User.Read.All — optional: `!` when missing, see below) |
//! | `mailbox` / `mailbox-scope` | a short calendarView of one mailbox (the given one, else the first linked one) |
//!
//! **Why the directory is optional.** Sync, push and free/busy address mailboxes directly and
//! never read the directory; only `mailbox verify` and `mailbox import` use a user lookup, to
//! tell an unknown address from one outside the app's scope and to show display names. So a
//! missing User.Read.All is a warning with the grant to add, never a failure; a directory
//! probe that fails for any other reason (Graph unreachable, token refused) is a failure.
//!
//! Every token is fresh: the run uses its own HTTP client and token cache (a diagnostic must
//! not answer from a token cached before the administrator changed something in Entra ID), and
//! a short retry policy so that an unreachable host is reported in seconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use calgate_graph::{
    AccessToken, CertificateInfo, ConnectionConfig, Credential, Error as GraphError, ErrorKind,
    GraphClient, RetryPolicy, Shared, TokenClaims,
};
use calgate_store::Store;
use jiff::{SignedDuration, Timestamp};

use crate::checklist::{Check, Checklist};

/// What the connection is for: decides whether Calendars.Read is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Read calendars into the host application (Calendars.Read is enough).
    #[default]
    Pull,
    /// Also write the host application's events into Exchange (needs Calendars.ReadWrite).
    Push,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Pull => "pull",
            Purpose::Push => "push",
        }
    }
    /// The RBAC for Applications role this purpose needs.
    fn rbac_role(self) -> &'static str {
        match self {
            Purpose::Pull => "Application Calendars.Read",
            Purpose::Push => "Application Calendars.ReadWrite",
        }
    }
    /// The Entra application permission this purpose needs.
    fn permission(self) -> &'static str {
        match self {
            Purpose::Pull => "Calendars.Read",
            Purpose::Push => "Calendars.ReadWrite",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pull" | "read" => Ok(Purpose::Pull),
            "push" | "write" | "readwrite" => Ok(Purpose::Push),
            other => Err(format!("unknown purpose '{other}' (expected pull or push)")),
        }
    }
}

/// The retry policy of a diagnostic run: one quick retry, then report.
pub fn diagnostic_retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        max_total_wait: Duration::from_secs(3),
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(5),
    }
}

/// Options of `calgate connection test`.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// `--mailbox ADDRESS`: the mailbox to probe (default: the first linked to the connection).
    pub mailbox: Option<String>,
    /// `--for pull|push` (default pull).
    pub purpose: Purpose,
    /// Retries of the probes (default: [`diagnostic_retry_policy`]).
    pub retry: RetryPolicy,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            mailbox: None,
            purpose: Purpose::Pull,
            retry: diagnostic_retry_policy(),
        }
    }
}

/// Why a diagnostic could not even start (everything else is a line of the checklist).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "there is no connection named '{0}': see `calgate connection list`, or add it with `calgate connection add`"
    )]
    UnknownConnection(String),
    #[error(transparent)]
    Store(#[from] calgate_store::Error),
    /// The HTTP client could not be set up (TLS).
    #[error(transparent)]
    Setup(GraphError),
}

/// Test settings of the stored connection `name`.
pub async fn test_connection(
    store: &dyn Store,
    name: &str,
    opts: &TestOptions,
) -> Result<Checklist, AdminError> {
    let conn = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::UnknownConnection(name.to_owned()))?;
    let linked = linked_mailboxes(store, name).await?;
    if conn.ews.is_some() {
        return Ok(crate::ews::test_connection(&conn, &linked, opts).await);
    }
    let mut list = Checklist::new(title(name, &conn.tenant, &conn.client_id, opts.purpose));
    let cfg = match calgate_graph::ConnectionConfig::from_connection(&conn) {
        Ok(c) => c,
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            list.push(Check::fail("config", summary, fix));
            return Ok(list);
        }
    };
    // Credentials are named as `connection list`, `doctor` and `secret remove` name them:
    // `#` + calgate's id (the configuration keeps the stored order, newest first).
    let names = conn
        .credentials
        .iter()
        .map(|c| CredName {
            id: Some(crate::lifecycle::display_id(c)),
            note: Some(format!("added {}", c.added_at.strftime("%Y-%m-%d"))),
        })
        .collect::<Vec<_>>();
    test_settings(name, cfg, &names, &linked, opts, &mut list).await?;
    Ok(list)
}

/// How the checklist names one credential: calgate's `#id` once stored, plus a note.
#[derive(Debug, Clone, Default)]
struct CredName {
    /// `#3` (stored credentials only).
    id: Option<String>,
    /// `added 2026-01-31`.
    note: Option<String>,
}

/// Test settings of a connection that is not (yet) stored, e.g. before `connection add`
/// saves it. `labels[i]` describes credential `i` (may be shorter than the list); having no
/// calgate id yet, credentials are named by position (`credential 1 of 2`).
/// `linked` are the connection's mailboxes (the first is probed unless `opts.mailbox`).
pub async fn test_config(
    name: &str,
    cfg: ConnectionConfig,
    labels: &[String],
    linked: &[String],
    opts: &TestOptions,
) -> Result<Checklist, AdminError> {
    let mut list = Checklist::new(title(name, &cfg.tenant, &cfg.client_id, opts.purpose));
    let names = labels
        .iter()
        .map(|l| CredName {
            id: None,
            note: Some(l.clone()),
        })
        .collect::<Vec<_>>();
    test_settings(name, cfg, &names, linked, opts, &mut list).await?;
    Ok(list)
}

fn title(name: &str, tenant: &str, client_id: &str, purpose: Purpose) -> String {
    format!(
        "Test settings: connection '{name}' (tenant {tenant}, application {client_id}, for {purpose})"
    )
}

/// The addresses linked to connection `name`, by address.
pub(crate) async fn linked_mailboxes(
    store: &dyn Store,
    name: &str,
) -> Result<Vec<String>, AdminError> {
    let mut v: Vec<String> = store
        .list_mailboxes()
        .await?
        .into_iter()
        .filter(|m| m.connection == name)
        .map(|m| m.address)
        .collect();
    v.sort_by_key(|a| a.to_ascii_lowercase());
    Ok(v)
}

/// What the messages need to name.
pub(crate) struct Ctx<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    pub app: &'a str,
    pub authority: &'a str,
    pub graph_url: &'a str,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(name: &'a str, cfg: &'a ConnectionConfig) -> Ctx<'a> {
        Ctx {
            name,
            tenant: cfg.tenant.trim(),
            app: cfg.client_id.trim(),
            authority: cfg.authority.trim_end_matches('/'),
            graph_url: cfg.graph_url.trim_end_matches('/'),
        }
    }
    fn app_page(&self, page: &str) -> String {
        format!("Entra ID › App registrations › {} › {page}", self.app)
    }
}

/// A fresh HTTP client and token cache with `retry`.
pub(crate) fn fresh_shared(retry: &RetryPolicy) -> Result<Shared, AdminError> {
    Shared::with_retry_policy(retry.clone()).map_err(AdminError::Setup)
}

/// The outcome of one credential's token request.
enum CredOutcome {
    Token(AccessToken),
    /// Entra ID rejected this credential (the others may still work).
    Rejected(GraphError),
    /// The credential could not even be used (unreadable key or certificate).
    Unusable(GraphError),
}

async fn test_settings(
    name: &str,
    cfg: ConnectionConfig,
    names: &[CredName],
    linked: &[String],
    opts: &TestOptions,
    list: &mut Checklist,
) -> Result<(), AdminError> {
    let ctx = Ctx::new(name, &cfg);
    let shared = fresh_shared(&opts.retry)?;
    // The URLs and the tenant first (without credentials: those are reported one by one).
    let mut bare = cfg.clone();
    bare.credentials.clear();
    if let Err(e) = GraphClient::new(bare, &shared) {
        let (summary, fix) = split_message(&e.message);
        list.push(Check::fail("config", summary, fix));
        return Ok(());
    }
    if cfg.credentials.is_empty() {
        list.push(Check::fail(
            "credential-1",
            format!("connection '{name}' has no client secret or certificate"),
            format!(
                "create a client secret in {} (New client secret) and add its Value: calgate connection secret add {name} --client-secret-env VAR (or a certificate: --certificate FILE)",
                ctx.app_page("Certificates & secrets")
            ),
        ));
        return Ok(());
    }

    // ---- tokens, one credential at a time, newest first -----------------------------------
    let outcomes = token_per_credential(&cfg, &shared).await;
    let Some(token) = report_tokens(&ctx, &cfg, names, &outcomes, list) else {
        return Ok(());
    };
    // The probes run with the credentials that could be used at all.
    let mut usable = cfg.clone();
    usable.credentials = cfg
        .credentials
        .iter()
        .zip(outcomes.iter().map(Some).chain(std::iter::repeat(None)))
        .filter(|(_, o)| !matches!(o, Some(CredOutcome::Unusable(_))))
        .map(|(c, _)| c.clone())
        .collect();
    let client = match GraphClient::new(usable, &shared) {
        Ok(c) => c,
        Err(e) => {
            let (summary, fix) = split_message(&e.message);
            list.push(Check::fail("config", summary, fix));
            return Ok(());
        }
    };
    let claims = token.claims().unwrap_or_default();
    let roles = claims.roles.clone();
    let has = |r: &str| roles.iter().any(|x| x.eq_ignore_ascii_case(r));
    let can_read = has("Calendars.Read") || has("Calendars.ReadWrite");
    let can_write = has("Calendars.ReadWrite");

    // ---- Graph and the directory ------------------------------------------------------------
    let target = opts.mailbox.clone().or_else(|| linked.first().cloned());
    let lookup = target
        .clone()
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".to_owned());
    // Pushed after the permissions line, which depends on the mailbox probe.
    let mut probes: Vec<Check> = Vec::new();
    match client.get_user(&lookup).await {
        Ok(u) => {
            probes.push(graph_ok(&ctx));
            probes.push(Check::pass(
                "directory",
                format!(
                    "the directory is readable (User.Read.All): {} is {}",
                    lookup,
                    u.display_name.as_deref().unwrap_or("a user of the tenant")
                ),
            ));
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            probes.push(graph_ok(&ctx));
            probes.push(Check::pass(
                "directory",
                "the directory is readable (User.Read.All)",
            ));
        }
        Err(e) if e.kind == ErrorKind::Permission => {
            probes.push(graph_ok(&ctx));
            probes.push(
                Check::warn(
                    "directory",
                    format!(
                        "application {} may not read the directory (no User.Read.All) — optional: sync and push do not need it; `mailbox verify` and `mailbox import` use it to tell an unknown address from one outside the app's scope",
                        ctx.app
                    ),
                    format!(
                        "to allow it: {} › Add a permission › Microsoft Graph › Application permissions › User.Read.All (User.ReadBasic.All is enough), then Grant admin consent",
                        ctx.app_page("API permissions")
                    ),
                )
                .with_code(e.code.clone().unwrap_or_else(|| "403".to_owned())),
            );
        }
        Err(e) => {
            if can_read
                && let Some(c) = permissions_check(&ctx, opts.purpose, &roles, Access::Unknown)
            {
                list.push(c);
            }
            list.push(graph_failure(&ctx, &e));
            list.push(Check::skip(
                "mailbox",
                "mailbox not probed: Microsoft Graph did not answer",
            ));
            return Ok(());
        }
    }

    // ---- one mailbox ----------------------------------------------------------------------------
    let Some(mb) = target else {
        if let Some(c) = permissions_check(&ctx, opts.purpose, &roles, Access::Unknown) {
            list.push(c);
        }
        list.checks.extend(probes);
        list.push(Check::warn(
            "mailbox",
            format!(
                "no mailbox probed: connection '{}' has no linked mailbox and none was given",
                ctx.name
            ),
            format!(
                "run again with --mailbox ADDRESS, or link one first: calgate mailbox link ADDRESS --connection {}",
                ctx.name
            ),
        ));
        return Ok(());
    };
    let now = Timestamp::now();
    let end = now
        .checked_add(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let probe = client.calendar_view(&mb, now, end).await;
    let access = match &probe {
        Ok(_) => Access::Granted,
        Err(e) if e.kind == ErrorKind::Permission && !can_read && !is_raop(e) => {
            match reachable_elsewhere(&client, linked, &mb).await {
                Some(other) => Access::OutOfRbacScope(other),
                None => Access::Refused,
            }
        }
        Err(_) => Access::Unknown,
    };
    if access == Access::Refused {
        list.push(consent_missing(&ctx, opts.purpose, &mb, probe_code(&probe)));
        list.checks.extend(probes);
        return Ok(());
    }
    if let Some(c) = permissions_check(&ctx, opts.purpose, &roles, access.clone()) {
        list.push(c);
    }
    list.checks.extend(probes);
    match probe {
        Ok(items) => list.push(Check::pass(
            "mailbox",
            format!(
                "read {mb}'s calendar: {} event(s) in the next 24 hours",
                items.len()
            ),
        )),
        Err(e) => list.push(mailbox_failure(
            &ctx,
            opts.purpose,
            &mb,
            &e,
            can_read || can_write,
            &access,
        )),
    };
    Ok(())
}

async fn token_per_credential(cfg: &ConnectionConfig, shared: &Shared) -> Vec<CredOutcome> {
    let mut out = Vec::with_capacity(cfg.credentials.len());
    for cred in &cfg.credentials {
        let mut one = cfg.clone();
        one.credentials = vec![cred.clone()];
        let outcome = match GraphClient::new(one, shared) {
            Err(e) => CredOutcome::Unusable(e),
            Ok(c) => match c.access_token().await {
                Ok(t) => CredOutcome::Token(t),
                Err(e) if e.is_credential_specific() => CredOutcome::Rejected(e),
                Err(e) => {
                    // Tenant, app, authority: the same for every credential — stop here.
                    out.push(CredOutcome::Rejected(e));
                    return out;
                }
            },
        };
        out.push(outcome);
    }
    out
}

/// Emits authority, tenant, app, credential-N and token lines; the token of the first
/// credential (newest first) that works.
fn report_tokens(
    ctx: &Ctx<'_>,
    cfg: &ConnectionConfig,
    names: &[CredName],
    outcomes: &[CredOutcome],
    list: &mut Checklist,
) -> Option<AccessToken> {
    // A connection-level failure is the last outcome, when there is one.
    let fatal = outcomes.last().and_then(|o| match o {
        CredOutcome::Rejected(e) if !e.is_credential_specific() => Some(e),
        _ => None,
    });
    let first_token = outcomes.iter().enumerate().find_map(|(i, o)| match o {
        CredOutcome::Token(t) => Some((i, t.clone())),
        _ => None,
    });
    let claims = first_token
        .as_ref()
        .and_then(|(_, t)| t.claims())
        .unwrap_or_default();

    // authority
    match fatal {
        Some(e) if is_unreachable(e) || e.kind == ErrorKind::Retryable => {
            list.push(authority_failure(ctx, e));
            list.push(Check::skip(
                "token",
                "no token: Entra ID did not answer (tenant, application and credentials not checked)",
            ));
            return None;
        }
        _ => {
            list.push(Check::pass(
                "authority",
                format!("Entra ID answered at {}", ctx.authority),
            ));
        }
    }

    // tenant and application
    let code = fatal.and_then(|e| e.aadsts());
    match code {
        Some(90002) | Some(9001023) => {
            list.push(tenant_failure(ctx, code.unwrap_or(90002), fatal));
            list.push(Check::skip(
                "token",
                "no token: the tenant was not found (application and credentials not checked)",
            ));
            return None;
        }
        _ => {
            list.push(Check::pass("tenant", tenant_ok(ctx, &claims)));
        }
    }
    if code == Some(700016) {
        list.push(
            Check::fail(
                "app",
                format!(
                    "application (client) ID {} is not registered in tenant {}",
                    ctx.app, ctx.tenant
                ),
                format!(
                    "copy the Application (client) ID from Entra ID › App registrations › <your app> › Overview of THIS tenant (Directory (tenant) ID {}); if the app was registered in another tenant, register it here or grant it admin consent here; then fix the connection (calgate connection remove {} and add it again with the right --client-id)",
                    ctx.tenant, ctx.name
                ),
            )
            .with_code("AADSTS700016"),
        );
        list.push(Check::skip(
            "token",
            "no token: the application is not in the tenant (credentials not checked)",
        ));
        return None;
    }
    list.push(Check::pass(
        "app",
        match &claims.app_display_name {
            Some(n) => format!(
                "application {} ('{n}') is registered in the tenant",
                ctx.app
            ),
            None => format!("application {} is registered in the tenant", ctx.app),
        },
    ));

    // one line per credential
    let working = first_token.as_ref().map(|(i, _)| *i);
    let n = cfg.credentials.len();
    for (i, outcome) in outcomes.iter().enumerate() {
        let Some(cred) = cfg.credentials.get(i) else {
            continue;
        };
        let cname = names.get(i).cloned().unwrap_or_default();
        let label = cred_label(cred, i, n, &cname);
        // The check id stays positional (`credential-N`): scripts rely on it.
        let id = format!("credential-{}", i + 1);
        let check = match outcome {
            CredOutcome::Token(_) => credential_ok(ctx, &id, &label, cred),
            CredOutcome::Unusable(e) => {
                let (summary, fix) = split_message(&e.message);
                Check::fail(&id, format!("{label} cannot be used: {summary}"), fix)
            }
            CredOutcome::Rejected(e) if !e.is_credential_specific() => {
                let (summary, fix) = split_message(&e.message);
                let mut c = Check::fail(&id, format!("{label}: {summary}"), fix);
                if let Some(code) = &e.code {
                    c = c.with_code(code.clone());
                }
                c
            }
            CredOutcome::Rejected(e) => {
                let mut c = credential_failure(ctx, &id, &label, cred, e);
                // An older credential that no longer works while a newer one does is a
                // leftover of a rotation: remove it, nothing is broken.
                if working.is_some_and(|w| w < i) {
                    c.status = crate::checklist::Status::Warn;
                    c.summary = format!(
                        "{} — a newer credential works, so nothing is broken",
                        c.summary
                    );
                    c.fix = Some(match &cname.id {
                        Some(cid) => format!(
                            "remove it: calgate connection secret remove {} {cid}",
                            ctx.name
                        ),
                        None => format!(
                            "remove it: calgate connection secret remove {} … (see `calgate connection list` for its id)",
                            ctx.name
                        ),
                    });
                }
                c
            }
        };
        list.push(check);
    }
    let Some((i, token)) = first_token else {
        list.push(Check::skip(
            "token",
            "no token: Entra ID accepted none of the connection's credentials",
        ));
        return None;
    };
    let mut roles = claims.roles.clone();
    roles.sort_by_key(|r| r.to_ascii_lowercase());
    let by = match (
        cfg.credentials.get(i),
        names.get(i).and_then(|c| c.id.as_deref()),
    ) {
        (Some(cred), Some(cid)) => format!("{} {cid}", kind_word(cred)),
        _ => format!("credential {} of {n}", i + 1),
    };
    list.push(Check::pass(
        "token",
        format!(
            "token acquired with {by}; application permissions in it: {}",
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            }
        ),
    ));
    Some(token)
}

fn tenant_ok(ctx: &Ctx<'_>, claims: &TokenClaims) -> String {
    match &claims.tenant_id {
        Some(tid) if !tid.eq_ignore_ascii_case(ctx.tenant) => {
            format!("tenant {} exists (Directory (tenant) ID {tid})", ctx.tenant)
        }
        _ => format!("tenant {} exists", ctx.tenant),
    }
}

/// `secret` / `certificate`, the words `connection list` puts before `#id`.
fn kind_word(cred: &Credential) -> &'static str {
    match cred {
        Credential::Secret { .. } => "secret",
        Credential::Certificate { .. } => "certificate",
    }
}

/// `secret #3 (newest, added 2026-01-31, expires 2027-01-31)` — stored credentials by
/// calgate's id, as `connection list` shows it; `credential 1 of 2 (secret, newest, …)` for a
/// configuration not stored yet.
fn cred_label(cred: &Credential, i: usize, n: usize, name: &CredName) -> String {
    let mut parts = Vec::new();
    if name.id.is_none() {
        parts.push(cred.kind_name().to_owned());
    }
    if n > 1 && i == 0 {
        parts.push("newest".to_owned());
    }
    if let Some(x) = &name.note {
        parts.push(x.clone());
    }
    if let Some(exp) = cred.expires() {
        parts.push(format!("expires {}", exp.strftime("%Y-%m-%d")));
    }
    match &name.id {
        Some(cid) if parts.is_empty() => format!("{} {cid}", kind_word(cred)),
        Some(cid) => format!("{} {cid} ({})", kind_word(cred), parts.join(", ")),
        None => format!("credential {} of {n} ({})", i + 1, parts.join(", ")),
    }
}

fn credential_ok(ctx: &Ctx<'_>, id: &str, label: &str, cred: &Credential) -> Check {
    let now = Timestamp::now();
    if let Some(exp) = cred.expires() {
        let left = exp.duration_since(now);
        let days = left.as_hours().div_euclid(24);
        if left.is_positive() && days < 30 {
            return Check::warn(
                id,
                format!("{label} works, but expires in {days} day(s)"),
                format!(
                    "rotate it now, without downtime: create a new one in {}, add it with `calgate connection secret add {} …`, then remove this one",
                    ctx.app_page("Certificates & secrets"),
                    ctx.name
                ),
            );
        }
    }
    Check::pass(id, format!("{label} accepted by Entra ID"))
}

/// A secret's Secret ID is a GUID; its Value never is (Entra values look like `abc8Q~…`).
pub(crate) fn looks_like_guid(s: &str) -> bool {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn credential_failure(
    ctx: &Ctx<'_>,
    id: &str,
    label: &str,
    cred: &Credential,
    e: &GraphError,
) -> Check {
    let secrets = ctx.app_page("Certificates & secrets");
    let add = format!(
        "calgate connection secret add {} --client-secret-env VAR",
        ctx.name
    );
    let code = e
        .code
        .clone()
        .unwrap_or_else(|| format!("AADSTS{}", e.aadsts().unwrap_or(0)));
    let check = match (e.aadsts(), cred) {
        (Some(7000215), Credential::Secret { value, .. }) if looks_like_guid(value.expose()) => {
            Check::fail(
                id,
                format!(
                    "{label} is the secret's ID, not its value: Entra ID rejected it (invalid client secret). The Secret ID column is a GUID; calgate needs the Value column"
                ),
                format!(
                    "in {secrets}, the Value of a secret is shown only once, right after it is created: press New client secret, copy the Value (not the Secret ID), add it with `{add}`, then remove this credential"
                ),
            )
        }
        (Some(7000215), _) => Check::fail(
            id,
            format!("{label} was rejected by Entra ID: it is not a valid client secret of application {}", ctx.app),
            format!(
                "copy the secret's Value (not its Secret ID) from {secrets} — or, if it is lost, press New client secret there — and add it with `{add}`; then remove the wrong one"
            ),
        ),
        (Some(7000222), _) => Check::fail(
            id,
            format!("{label} has expired (Entra ID refuses expired client secrets)"),
            format!(
                "in {secrets} press New client secret, add its Value with `{add}` (give --secret-expires so calgate warns before the next expiry), then remove the expired one with `calgate connection secret remove {} …`; a certificate credential (--certificate) is the recommended option",
                ctx.name
            ),
        ),
        (Some(700024), _) => Check::fail(
            id,
            format!(
                "{label}: Entra ID says the certificate assertion is outside its valid time range — this machine's clock and Entra ID's differ by more than 5 minutes (clock skew)"
            ),
            "synchronise this machine's clock with NTP (Linux: `timedatectl set-ntp true`; Windows: `w32tm /resync`), then run the test again".to_owned(),
        ),
        (Some(700027), Credential::Certificate { cert_pem, .. }) => {
            let thumb = CertificateInfo::from_pem(cert_pem)
                .map(|i| format!(" (thumbprint {})", i.thumbprint_hex))
                .unwrap_or_default();
            Check::fail(
                id,
                format!(
                    "{label}: Entra ID does not know this certificate{thumb}, or the private key does not belong to it"
                ),
                format!(
                    "upload the certificate's public part (.cer/.pem, never the key) in {secrets} › Certificates › Upload certificate, and check that its thumbprint matches; or add the key that belongs to the uploaded certificate"
                ),
            )
        }
        _ => {
            let (summary, fix) = split_message(&e.message);
            Check::fail(id, format!("{label}: {summary}"), fix)
        }
    };
    check.with_code(code)
}

fn authority_failure(ctx: &Ctx<'_>, e: &GraphError) -> Check {
    if is_unreachable(e) {
        return Check::fail(
            "authority",
            format!(
                "cannot reach Entra ID at {} (no answer: connection refused, DNS or timeout)",
                ctx.authority
            ),
            "check the connection's authority URL (for Microsoft's global cloud: https://login.microsoftonline.com; `calgate connection add … --authority URL`), DNS, the proxy, and that the firewall allows outbound HTTPS to that host from this machine",
        );
    }
    let (summary, _) = split_message(&e.message);
    let mut c = Check::fail(
        "authority",
        format!("Entra ID at {} is not available: {summary}", ctx.authority),
        "try again in a few minutes; if it persists, check https://status.cloud.microsoft and that the authority URL is Entra ID's".to_owned(),
    );
    if let Some(code) = &e.code {
        c = c.with_code(code.clone());
    }
    c
}

fn tenant_failure(ctx: &Ctx<'_>, code: i64, e: Option<&GraphError>) -> Check {
    let c = if code == 9001023 {
        Check::fail(
            "tenant",
            format!(
                "'{}' is not a tenant: app-only sign-in needs the tenant's own ID or domain, not common/organizations/consumers",
                ctx.tenant
            ),
            "use the Directory (tenant) ID from Entra ID › Overview (or a verified domain such as contoso.onmicrosoft.com) as --tenant".to_owned(),
        )
    } else {
        Check::fail(
            "tenant",
            format!(
                "tenant '{}' was not found by Entra ID at {}",
                ctx.tenant, ctx.authority
            ),
            format!(
                "copy the Directory (tenant) ID from Entra ID › Overview (or use a verified domain such as contoso.onmicrosoft.com), and check that the authority {} is the cloud of this tenant (global, US Government, China); then fix the connection: calgate connection remove {} and add it again with the right --tenant",
                ctx.authority, ctx.name
            ),
        )
    };
    c.with_code(
        e.and_then(|e| e.code.clone())
            .unwrap_or_else(|| format!("AADSTS{code}")),
    )
}

fn graph_ok(ctx: &Ctx<'_>) -> Check {
    Check::pass(
        "graph",
        format!(
            "Microsoft Graph answered at {} and accepted the token",
            ctx.graph_url
        ),
    )
}

pub(crate) fn is_unreachable(e: &GraphError) -> bool {
    e.kind == ErrorKind::Retryable && e.status.is_none()
}

pub(crate) fn graph_failure(ctx: &Ctx<'_>, e: &GraphError) -> Check {
    let c = if is_unreachable(e) {
        Check::fail(
            "graph",
            format!(
                "cannot reach Microsoft Graph at {} (no answer: connection refused, DNS or timeout)",
                ctx.graph_url
            ),
            "check the connection's Graph URL (for Microsoft's global cloud: https://graph.microsoft.com/v1.0; `calgate connection add … --graph-url URL`), DNS, the proxy, and that the firewall allows outbound HTTPS to that host from this machine".to_owned(),
        )
    } else if e.kind == ErrorKind::Authentication {
        Check::fail(
            "graph",
            format!(
                "Microsoft Graph at {} refused the token Entra ID issued (HTTP {})",
                ctx.graph_url,
                e.status.unwrap_or(401)
            ),
            format!(
                "the authority ({}) and the Graph URL ({}) must belong to the same cloud (global, US Government, China); also check this machine's clock (NTP)",
                ctx.authority, ctx.graph_url
            ),
        )
    } else {
        let (summary, fix) = split_message(&e.message);
        Check::fail("graph", summary, fix)
    };
    match &e.code {
        Some(code) => c.with_code(code.clone()),
        None => c,
    }
}

/// How the app reaches the probed mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// The calendar was read.
    Granted,
    /// Refused, and no other linked mailbox is reachable either (no calendar role).
    Refused,
    /// Refused, but this other linked mailbox is reachable: an RBAC scope is in effect.
    OutOfRbacScope(String),
    /// Not known (no mailbox, or another failure).
    Unknown,
}

fn permissions_check(
    ctx: &Ctx<'_>,
    purpose: Purpose,
    roles: &[String],
    access: Access,
) -> Option<Check> {
    let has = |r: &str| roles.iter().any(|x| x.eq_ignore_ascii_case(r));
    let read = has("Calendars.Read");
    let write = has("Calendars.ReadWrite");
    let api = ctx.app_page("API permissions");
    if write {
        return Some(Check::pass(
            "permissions",
            "Calendars.ReadWrite is consented: calgate may read and write calendars",
        ));
    }
    if read {
        return Some(match purpose {
            Purpose::Pull => Check::pass(
                "permissions",
                "Calendars.Read is consented: enough to pull calendars (pushing events would need Calendars.ReadWrite)",
            ),
            Purpose::Push => Check::fail(
                "permissions",
                format!(
                    "application {} has Calendars.Read only: pushing events into Exchange needs Calendars.ReadWrite",
                    ctx.app
                ),
                format!(
                    "in {api} › Add a permission › Microsoft Graph › Application permissions › Calendars.ReadWrite, then Grant admin consent (and remove Calendars.Read)\nor, to limit writing to some mailboxes, RBAC for Applications in Exchange Online PowerShell:\nNew-ManagementRoleAssignment -App {} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope <scope>\nTest-ServicePrincipalAuthorization -Identity {} -Resource <mailbox>",
                    ctx.app, ctx.app
                ),
            ),
        });
    }
    // No calendar permission in the token: access can only come from RBAC for Applications.
    match access {
        Access::Granted | Access::OutOfRbacScope(_) => Some(match purpose {
            Purpose::Pull => Check::pass(
                "permissions",
                "no Entra calendar permission in the token: access comes from RBAC for Applications (scoped in Exchange), which the mailbox probe confirms",
            ),
            Purpose::Push => Check::warn(
                "permissions",
                "no Entra calendar permission in the token: access comes from RBAC for Applications; whether its role allows writing cannot be read from the token",
                format!(
                    "check the role: Test-ServicePrincipalAuthorization -Identity {} -Resource <mailbox> (RoleName must be Application Calendars.ReadWrite), or try a write: calgate mailbox verify <mailbox> --connection {} --write-probe",
                    ctx.app, ctx.name
                ),
            ),
        }),
        Access::Refused => None,
        Access::Unknown => Some(Check::warn(
            "permissions",
            "no Entra calendar permission in the token: calgate can only work if RBAC for Applications grants access, which needs a mailbox to check",
            format!(
                "probe a mailbox: calgate connection test {} --mailbox ADDRESS; for tenant-wide access instead, add {} in {api} and press Grant admin consent",
                ctx.name,
                purpose.permission()
            ),
        )),
    }
}

fn consent_missing(ctx: &Ctx<'_>, purpose: Purpose, mb: &str, code: Option<String>) -> Check {
    let api = ctx.app_page("API permissions");
    Check::fail(
        "consent",
        format!(
            "admin consent is missing: the token of application {} carries no calendar permission, and Exchange refused {mb}'s calendar (403), so no RBAC for Applications assignment covers it either",
            ctx.app
        ),
        format!(
            "grant admin consent in {api}: Add a permission › Microsoft Graph › Application permissions › {perm}, then press 'Grant admin consent for <tenant>'\nor, to scope the app to some mailboxes, RBAC for Applications in Exchange Online PowerShell:\nNew-ManagementRoleAssignment -App {app} -Role \"{role}\" -CustomResourceScope <scope>\nTest-ServicePrincipalAuthorization -Identity {app} -Resource {mb}",
            perm = purpose.permission(),
            app = ctx.app,
            role = purpose.rbac_role(),
        ),
    )
    .with_code(code.unwrap_or_else(|| "ErrorAccessDenied".to_owned()))
}

fn probe_code<T>(r: &Result<T, GraphError>) -> Option<String> {
    r.as_ref().err().and_then(|e| e.code.clone())
}

pub(crate) fn is_raop(e: &GraphError) -> bool {
    e.message.contains("[RAOP]") || e.message.contains("Application Access Policy")
}

/// Another linked mailbox of the connection whose calendar the app can read (at most 3 tried).
pub(crate) async fn reachable_elsewhere(
    client: &GraphClient,
    linked: &[String],
    except: &str,
) -> Option<String> {
    let now = Timestamp::now();
    let end = now.checked_add(SignedDuration::from_mins(5)).unwrap_or(now);
    for other in linked
        .iter()
        .filter(|a| !a.eq_ignore_ascii_case(except))
        .take(3)
    {
        if client.calendar_view(other, now, end).await.is_ok() {
            return Some(other.clone());
        }
    }
    None
}

/// The ✗ for an application access policy or an RBAC scope that excludes `mb`, else `None`.
pub(crate) fn scope_failure(
    id: &str,
    app: &str,
    purpose: Purpose,
    mb: &str,
    e: &GraphError,
    out_of_rbac_scope: Option<&str>,
) -> Option<Check> {
    let role = purpose.rbac_role();
    let code = e
        .code
        .clone()
        .unwrap_or_else(|| "ErrorAccessDenied".to_owned());
    if is_raop(e) {
        return Some(
            Check::fail(
                id,
                format!(
                    "an Application Access Policy blocks application {app} from {mb} (403 [RAOP]: blocked by the tenant's app-only access policy)"
                ),
                format!(
                    "check it in Exchange Online PowerShell: Test-ApplicationAccessPolicy -AppId {app} -Identity {mb}\nthen add {mb} to the policy's mail-enabled security group (Add-DistributionGroupMember -Identity <policy group> -Member {mb}),\nor replace the legacy policy with RBAC for Applications: Get-ApplicationAccessPolicy | Where-Object AppId -eq '{app}' | Remove-ApplicationAccessPolicy\nNew-ManagementRoleAssignment -App {app} -Role \"{role}\" -CustomResourceScope <scope containing {mb}>"
                ),
            )
            .with_code(code),
        );
    }
    if let Some(other) = out_of_rbac_scope {
        return Some(
            Check::fail(
                id,
                format!(
                    "{mb} is outside application {app}'s RBAC for Applications scope (Exchange refused it with 403, while {other} is readable)"
                ),
                format!(
                    "add {mb} to the group the management scope is built on (Add-DistributionGroupMember -Identity <scope group> -Member {mb}), or widen the scope:\nNew-ManagementRoleAssignment -App {app} -Role \"{role}\" -CustomResourceScope <scope containing {mb}>\ncheck with: Test-ServicePrincipalAuthorization -Identity {app} -Resource {mb} (InScope must be True; changes can take 30 minutes to 2 hours)"
                ),
            )
            .with_code(code),
        );
    }
    None
}

fn mailbox_failure(
    ctx: &Ctx<'_>,
    purpose: Purpose,
    mb: &str,
    e: &GraphError,
    token_has_calendar_role: bool,
    access: &Access,
) -> Check {
    let other = match access {
        Access::OutOfRbacScope(o) => Some(o.as_str()),
        _ => None,
    };
    if e.kind == ErrorKind::Permission {
        if let Some(c) = scope_failure("mailbox-scope", ctx.app, purpose, mb, e, other) {
            return c;
        }
        if token_has_calendar_role {
            return Check::fail(
                "mailbox-scope",
                format!(
                    "Exchange refused {mb}'s calendar (403) although the token carries a calendar permission: an access policy or scope excludes it"
                ),
                format!(
                    "Test-ServicePrincipalAuthorization -Identity {app} -Resource {mb}\nTest-ApplicationAccessPolicy -AppId {app} -Identity {mb}",
                    app = ctx.app
                ),
            )
            .with_code(e.code.clone().unwrap_or_else(|| "ErrorAccessDenied".to_owned()));
        }
    }
    let check = if e.kind == ErrorKind::NotFound {
        if e.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI"))
        {
            Check::fail(
                "mailbox",
                format!(
                    "{mb} exists but has no Exchange Online mailbox (inactive, soft-deleted, unlicensed or on-premises)"
                ),
                "give the user an Exchange Online licence in the Microsoft 365 admin center › Users › Active users › Licenses and apps, or probe another mailbox with --mailbox".to_owned(),
            )
        } else {
            Check::fail(
                "mailbox",
                format!("mailbox {mb} was not found in the tenant"),
                "check the address (the primary SMTP address or UPN, Microsoft 365 admin center › Users or › Resources), or probe another mailbox with --mailbox".to_owned(),
            )
        }
    } else if is_unreachable(e) || e.kind == ErrorKind::Authentication {
        graph_failure(ctx, e)
    } else {
        let (summary, fix) = split_message(&e.message);
        Check::fail("mailbox", format!("{mb}: {summary}"), fix)
    };
    match &e.code {
        Some(c) if check.code.is_none() => check.with_code(c.clone()),
        _ => check,
    }
}

/// Splits calgate-graph's one-line "cause: fix" message at the first `": "` outside
/// parentheses (the cause keeps Microsoft's code in parentheses).
pub fn split_message(msg: &str) -> (String, String) {
    let mut depth = 0i32;
    let bytes = msg.as_bytes();
    for (i, c) in msg.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ':' if depth <= 0 && bytes.get(i + 1) == Some(&b' ') => {
                return (msg[..i].trim().to_owned(), msg[i + 1..].trim().to_owned());
            }
            _ => {}
        }
    }
    (
        msg.trim().to_owned(),
        "see the message; run `calgate connection test` for a full diagnosis".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        assert!(looks_like_guid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(looks_like_guid(" {0F8FAD5B-D9CB-469F-A165-70867728950E} "));
        assert!(!looks_like_guid("abc8Q~0123456789012345678901234567890123"));
        assert!(!looks_like_guid("0f8fad5b-d9cb-469f-a165-70867728950"));
    }

    #[test]
    fn messages_split_outside_parentheses() {
        let (s, f) = split_message(
            "cannot reach Entra ID at http://127.0.0.1:9 (connection failed: x): check the URL",
        );
        assert_eq!(
            s,
            "cannot reach Entra ID at http://127.0.0.1:9 (connection failed: x)"
        );
        assert_eq!(f, "check the URL");
        let (s, _) = split_message("no colon here");
        assert_eq!(s, "no colon here");
    }

    #[test]
    fn purposes_parse() {
        assert_eq!("PUSH".parse::<Purpose>(), Ok(Purpose::Push));
        assert_eq!("pull".parse::<Purpose>(), Ok(Purpose::Pull));
        assert!("sync".parse::<Purpose>().is_err());
    }
}
