//! The console's pages and forms.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use calgate_admin::diagnose::TestOptions;
use calgate_admin::lifecycle::{self, ExpiryLevel};
use calgate_core::ApiScope;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Session, close_session, cookie, open_session, random_token, same,
    session_of,
};
use crate::AppState;
use crate::dto::{InstanceDto, MailboxDto};

/// What the layout needs on every page.
pub(crate) struct Nav {
    pub signed_in: bool,
    pub csrf: String,
    pub here: &'static str,
}

impl Nav {
    pub(crate) fn of(s: &Session, here: &'static str) -> Nav {
        Nav {
            signed_in: true,
            csrf: s.csrf.clone(),
            here,
        }
    }
}

pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    // No caching of pages with data; no framing; no scripts at all.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// A handler's `s: Session` argument: the request's session, or a redirect to the sign-in
/// page instead of the handler.
impl axum::extract::FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Session, Response> {
        signed_in(state, &parts.headers).await
    }
}

/// The request's session, or a redirect to the sign-in page.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    session_of(state.store.as_ref(), headers)
        .await
        .ok_or_else(|| Redirect::to("/console/login").into_response())
}

/// A POST's session with its CSRF token checked.
pub(crate) async fn checked(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Response> {
    let s = signed_in(state, headers).await?;
    if csrf.is_empty() || !same(&s.csrf, csrf) {
        return Err(refused_form(&s));
    }
    Ok(s)
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    nav: Nav,
    heading: String,
    message: String,
    back: String,
}

fn refused_form(s: &Session) -> Response {
    let t = MessagePage {
        nav: Nav::of(s, ""),
        heading: "Form refused".into(),
        message: "This form did not come from this console session (its security token is missing or wrong), so nothing was done. Open the page again and resubmit.".into(),
        back: "/console".into(),
    };
    let mut r = render(&t);
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(r: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../assets/console.css"),
    )
        .into_response()
}

// ---- sign-in ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    nav: Nav,
    error: Option<String>,
}

fn login_page(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let token = random_token();
    let t = LoginPage {
        nav: Nav {
            signed_in: false,
            csrf: token.clone(),
            here: "login",
        },
        error,
    };
    let mut r = render(&t);
    *r.status_mut() = status;
    set_cookie(
        &mut r,
        format!(
            "{LOGIN_COOKIE}={token}; Path=/console/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure(state)
        ),
    );
    r
}

pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session_of(state.store.as_ref(), &headers).await.is_some() {
        return Redirect::to("/console").into_response();
    }
    login_page(&state, StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    api_key: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if f.csrf.is_empty() || expected.is_empty() || !same(&expected, &f.csrf) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some(
                "The sign-in form expired or did not come from this console: sign in again.".into(),
            ),
        );
    }
    if let Some(wait) = state.console.locked_for() {
        return login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "Too many failed sign-ins: wait {} s, then try again.",
                wait.as_secs().max(1)
            )),
        );
    }
    let via = match (f.password.is_empty(), f.api_key.trim().is_empty()) {
        (false, _) => check_password(&state, &f.password).await,
        (true, false) => check_key(&state, f.api_key.trim()).await,
        (true, true) => Err("Give the administrator password or an admin API key.".to_owned()),
    };
    match via {
        Ok(via) => {
            state.console.succeeded();
            let token = match open_session(state.store.as_ref(), via).await {
                Ok((token, _)) => token,
                Err(e) => {
                    tracing::error!("console: cannot open a session: {e}");
                    return login_page(
                        &state,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(format!("Signed in, but the session could not be kept: {e}")),
                    );
                }
            };
            let mut r = Redirect::to("/console").into_response();
            set_cookie(
                &mut r,
                format!(
                    "{SESSION_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200{}",
                    secure(&state)
                ),
            );
            set_cookie(
                &mut r,
                format!(
                    "{LOGIN_COOKIE}=; Path=/console/login; HttpOnly; SameSite=Strict; Max-Age=0"
                ),
            );
            r
        }
        Err(why) => {
            let wait = state.console.failed();
            tracing::warn!("console: a sign-in failed");
            let more = if wait.is_zero() {
                String::new()
            } else {
                format!(" The next attempt is possible in {} s.", wait.as_secs())
            };
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some(format!("{why}{more}")),
            )
        }
    }
}

async fn check_password(state: &AppState, password: &str) -> Result<String, String> {
    let Some(phc) = state
        .store
        .console_password_hash()
        .await
        .map_err(|e| format!("calgate's database failed: {e}"))?
    else {
        return Err(
            "No administrator password is set: set one with `calgate admin set-password --password-env VAR`, or sign in with an admin API key.".to_owned(),
        );
    };
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || super::verify_password(&phc, &password))
        .await
        .unwrap_or(false);
    if ok {
        Ok("with the administrator password".to_owned())
    } else {
        Err("The password is not right.".to_owned())
    }
}

async fn check_key(state: &AppState, key: &str) -> Result<String, String> {
    let refused = || "The API key is not valid (unknown, mistyped or revoked).".to_owned();
    let id = crate::auth::key_id(key).ok_or_else(refused)?;
    let stored = state
        .store
        .api_key(id)
        .await
        .map_err(|e| format!("calgate's database failed: {e}"))?
        .ok_or_else(refused)?;
    if stored.revoked_at.is_some() || !crate::auth::matches(&stored, key) {
        return Err(refused());
    }
    if !stored.scopes.contains(&ApiScope::Admin) {
        return Err(format!(
            "The API key '{}' has no admin scope: the console needs one made with `--scope admin`.",
            stored.name
        ));
    }
    Ok(format!("with the API key '{}'", stored.name))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = checked(&state, &headers, &f.csrf).await {
        return r;
    }
    close_session(state.store.as_ref(), &headers).await;
    let mut r = Redirect::to("/console/login").into_response();
    set_cookie(
        &mut r,
        format!("{SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ---- overview -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    nav: Nav,
    via: String,
    connections: usize,
    mailboxes: usize,
    /// (address, last error).
    failing: Vec<(String, String)>,
    pending_pushes: u64,
}

pub(crate) async fn overview(State(state): State<AppState>, s: Session) -> Response {
    let load = async {
        let connections = state.store.list_connections().await?.len();
        let states = state.store.sync_states().await?;
        let pending = state.store.pending_pushes().await?;
        Ok::<_, calgate_store::Error>((connections, states, pending))
    };
    let (connections, states, pending_pushes) = match load.await {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let failing = states
        .iter()
        .map(MailboxDto::new)
        .filter(|m| m.status.state == "failing")
        .map(|m| {
            let e = m.status.last_error.map(|e| e.message).unwrap_or_default();
            (m.address, e)
        })
        .collect();
    render(&OverviewPage {
        nav: Nav::of(&s, "overview"),
        via: s.via.clone(),
        connections,
        mailboxes: states.len(),
        failing,
        pending_pushes,
    })
}

pub(crate) fn failure(s: &Session, message: &str) -> Response {
    let mut r = render(&MessagePage {
        nav: Nav::of(s, ""),
        heading: "Something failed".into(),
        message: message.to_owned(),
        back: "/console".into(),
    });
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

// ---- connections ----------------------------------------------------------------------------

struct CredRow {
    /// calgate's id, for a Remove button (Graph credentials).
    id: Option<String>,
    label: String,
    /// (CSS class, words), for credentials that expire within 30 days.
    badge: Option<(&'static str, String)>,
}

struct ConnRow {
    name: String,
    /// A Graph connection (it has secrets to add).
    graph: bool,
    reaches: String,
    mailboxes: usize,
    credentials: Vec<CredRow>,
}

#[derive(Template)]
#[template(path = "console/connections.html")]
struct ConnectionsPage {
    nav: Nav,
    rows: Vec<ConnRow>,
}

pub(crate) async fn connections(State(state): State<AppState>, s: Session) -> Response {
    let (conns, mailboxes) = match async {
        Ok::<_, calgate_store::Error>((
            state.store.list_connections().await?,
            state.store.list_mailboxes().await?,
        ))
    }
    .await
    {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let now = Timestamp::now();
    let rows = conns
        .iter()
        .map(|c| {
            let (reaches, credentials) = match &c.ews {
                Some(e) => (
                    format!(
                        "Exchange Server at {} as {} ({}, {})",
                        e.url,
                        e.username,
                        e.auth,
                        if e.impersonation {
                            "impersonation"
                        } else {
                            "delegate access"
                        }
                    ),
                    vec![CredRow {
                        id: None,
                        label: "password (sealed)".into(),
                        badge: None,
                    }],
                ),
                None => (
                    format!(
                        "Microsoft Graph: tenant {}, application {}",
                        c.tenant, c.client_id
                    ),
                    lifecycle::summarize(c, now)
                        .into_iter()
                        .map(|k| CredRow {
                            id: Some(k.id.0.to_string()),
                            badge: match k.level {
                                ExpiryLevel::Expired => Some(("expired", "expired".to_owned())),
                                ExpiryLevel::Within7 => Some(("d7", expires(&k))),
                                ExpiryLevel::Within14 => Some(("d14", expires(&k))),
                                ExpiryLevel::Within30 => Some(("d30", expires(&k))),
                                _ => None,
                            },
                            label: if k.preferred {
                                format!("{} (in use)", k.label)
                            } else {
                                k.label
                            },
                        })
                        .collect(),
                ),
            };
            ConnRow {
                graph: c.ews.is_none(),
                name: c.name.clone(),
                reaches,
                mailboxes: mailboxes.iter().filter(|m| m.connection_id == c.id).count(),
                credentials,
            }
        })
        .collect();
    render(&ConnectionsPage {
        nav: Nav::of(&s, "connections"),
        rows,
    })
}

fn expires(k: &lifecycle::CredentialSummary) -> String {
    k.expires.clone().unwrap_or_else(|| "expires soon".into())
}

#[derive(Debug, Deserialize)]
pub(crate) struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mailbox: String,
    #[serde(default)]
    purpose: String,
}

pub(crate) struct CheckRow {
    class: &'static str,
    symbol: &'static str,
    summary: String,
    fix: Option<String>,
    code: Option<String>,
}

impl From<&calgate_admin::Check> for CheckRow {
    fn from(c: &calgate_admin::Check) -> CheckRow {
        let (class, symbol) = match c.status {
            calgate_admin::Status::Pass => ("pass", "✓"),
            calgate_admin::Status::Fail => ("fail", "✗"),
            calgate_admin::Status::Warn => ("warn", "!"),
            calgate_admin::Status::Skip => ("skip", "–"),
        };
        CheckRow {
            class,
            symbol,
            summary: c.summary.clone(),
            fix: c.fix.clone(),
            code: c.code.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/checklist.html")]
pub(crate) struct ChecklistPage {
    pub nav: Nav,
    pub heading: String,
    pub passed: bool,
    /// Some step passed with a warning.
    pub warned: bool,
    pub checks: Vec<CheckRow>,
    pub back: String,
}

/// Some step of `list` passed with a warning.
pub(crate) fn warned(list: &calgate_admin::Checklist) -> bool {
    list.checks
        .iter()
        .any(|c| c.status == calgate_admin::Status::Warn)
}

/// A page with one message.
pub(crate) fn message(
    s: &Session,
    here: &'static str,
    heading: &str,
    text: &str,
    back: &str,
) -> Response {
    render(&MessagePage {
        nav: Nav::of(s, here),
        heading: heading.to_owned(),
        message: text.to_owned(),
        back: back.to_owned(),
    })
}

pub(crate) async fn test_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<TestForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let opts = TestOptions {
        mailbox: Some(f.mailbox.trim().to_owned()).filter(|m| !m.is_empty()),
        purpose: super::actions::purpose(&f.purpose),
        ..TestOptions::default()
    };
    let list =
        match calgate_admin::diagnose::test_connection(state.store.as_ref(), &name, &opts).await {
            Ok(l) => l,
            Err(e) => return failure(&s, &e.to_string()),
        };
    let checks = list.checks.iter().map(CheckRow::from).collect();
    render(&ChecklistPage {
        nav: Nav::of(&s, "connections"),
        heading: list.title.clone(),
        passed: list.passed(),
        warned: warned(&list),
        checks,
        back: "/console/connections".into(),
    })
}

// ---- mailboxes ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MailboxFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    connection: String,
    /// 1-based page of [`MAILBOXES_PER_PAGE`] rows.
    #[serde(default)]
    page: Option<usize>,
}

/// Rows on one page of the mailbox list: a list of 40,000 stays a page a browser draws at once.
const MAILBOXES_PER_PAGE: usize = 200;

struct MailboxRow {
    address: String,
    kind: String,
    connection: String,
    privacy: String,
    events: u64,
    last_sync: String,
    status: String,
}

#[derive(Template)]
#[template(path = "console/mailboxes.html")]
struct MailboxesPage {
    nav: Nav,
    q: String,
    kind: String,
    status: String,
    connection: String,
    kinds: Vec<String>,
    statuses: Vec<String>,
    total: usize,
    /// Mailboxes that match the filters (`rows` is one page of them).
    matching: usize,
    /// 1-based index of the first row shown.
    first: usize,
    rows: Vec<MailboxRow>,
    /// Links (query strings) to the previous and next pages, when there are.
    prev: Option<String>,
    next: Option<String>,
    /// Every connection's name (the verify and discover forms).
    connections: Vec<String>,
}

/// An instance's subject as the console shows it (`hidden`: the words for one the privacy
/// policy hides).
fn subject_of(d: &InstanceDto, hidden: &str) -> String {
    match &d.subject {
        crate::dto::Detail::Hidden => hidden.to_owned(),
        crate::dto::Detail::Shown(v) => v.clone().unwrap_or_default(),
    }
}

/// An instance's (start, end): dates for all-day ones, else minutes in UTC.
fn start_end(d: &InstanceDto) -> (String, String) {
    (
        d.start_date
            .clone()
            .unwrap_or_else(|| short_time(Some(&d.start))),
        d.end_date
            .clone()
            .unwrap_or_else(|| short_time(Some(&d.end))),
    )
}

const HIDDEN: &str = "(hidden by the privacy policy)";

fn short_time(rfc3339: Option<&str>) -> String {
    match rfc3339.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        None => "never".to_owned(),
    }
}

pub(crate) async fn mailboxes(
    State(state): State<AppState>,
    s: Session,
    Query(f): Query<MailboxFilter>,
) -> Response {
    let (states, conns) = match async {
        Ok::<_, calgate_store::Error>((
            state.store.sync_states().await?,
            state.store.list_connections().await?,
        ))
    }
    .await
    {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let q = f.q.trim().to_lowercase();
    let all: Vec<MailboxDto> = states.iter().map(MailboxDto::new).collect();
    let total = all.len();
    let matched: Vec<MailboxDto> = all
        .into_iter()
        .filter(|m| q.is_empty() || m.address.to_lowercase().contains(&q))
        .filter(|m| f.kind.is_empty() || m.kind == f.kind)
        .filter(|m| f.status.is_empty() || m.status.state == f.status)
        .filter(|m| f.connection.is_empty() || m.connection == f.connection)
        .collect();
    let matching = matched.len();
    let pages = matching.div_ceil(MAILBOXES_PER_PAGE).max(1);
    let page = f.page.unwrap_or(1).clamp(1, pages);
    let link = |p: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &f.q),
            ("kind", &f.kind),
            ("status", &f.status),
            ("connection", &f.connection),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &p.to_string());
        q.finish()
    };
    let prev = (page > 1).then(|| link(page - 1));
    let next = (page < pages).then(|| link(page + 1));
    let rows = matched
        .into_iter()
        .skip((page - 1) * MAILBOXES_PER_PAGE)
        .take(MAILBOXES_PER_PAGE)
        .map(|m| MailboxRow {
            last_sync: short_time(m.status.last_success.as_deref()),
            events: m.status.events,
            status: m.status.state,
            address: m.address,
            kind: m.kind,
            connection: m.connection,
            privacy: m.privacy,
        })
        .collect();
    render(&MailboxesPage {
        nav: Nav::of(&s, "mailboxes"),
        q: f.q,
        kind: f.kind,
        status: f.status,
        connection: f.connection,
        kinds: ["", "user", "room", "equipment"].map(String::from).to_vec(),
        statuses: ["", "ok", "failing", "never-synced"]
            .map(String::from)
            .to_vec(),
        total,
        matching,
        first: (page - 1) * MAILBOXES_PER_PAGE + 1,
        rows,
        prev,
        next,
        connections: conns.into_iter().map(|c| c.name).collect(),
    })
}

struct EventRow {
    /// Exchange's id (the history page's key).
    id: String,
    start: String,
    end: String,
    subject: String,
    show_as: String,
}

#[derive(Template)]
#[template(path = "console/mailbox.html")]
struct MailboxPage {
    nav: Nav,
    address: String,
    kind: String,
    connection: String,
    privacy: String,
    status: String,
    last_success: String,
    next_action: String,
    last_error: Option<String>,
    /// Which calgate process ran the last round.
    last_round_by: Option<String>,
    from: String,
    to: String,
    events: Vec<EventRow>,
    /// Seven days from today (UTC): (day, its events as "09:00–10:00 busy · Subject").
    week: Vec<(String, Vec<(String, String)>)>,
}

pub(crate) async fn mailbox(
    State(state): State<AppState>,
    s: Session,
    Path(address): Path<String>,
) -> Response {
    let st = match state.store.sync_state(address.trim()).await {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let Some(st) = st.as_ref() else {
        let mut r = render(&MessagePage {
            nav: Nav::of(&s, "mailboxes"),
            heading: "No such mailbox".into(),
            message: format!("{address} is not linked to calgate."),
            back: "/console/mailboxes".into(),
        });
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let m = MailboxDto::new(st);
    let from = Timestamp::now()
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or_else(|_| Timestamp::now());
    let to = from
        .checked_add(SignedDuration::from_hours(24 * 14))
        .unwrap_or(from);
    let instances = match state.store.instances(st.mailbox.id, from, to).await {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let today = from
        .checked_add(SignedDuration::from_hours(24))
        .unwrap_or(from)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let week = (0..7)
        .map(|n| {
            let day = today
                .checked_add(jiff::Span::new().days(n))
                .unwrap_or(today);
            let start = day
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
                .unwrap_or(from);
            let end = start
                .checked_add(SignedDuration::from_hours(24))
                .unwrap_or(start);
            let items = instances
                .iter()
                .filter(|i| i.instance.when.start < end && i.instance.when.end > start)
                .map(|i| {
                    let d = InstanceDto::new(i, st.mailbox.privacy, Default::default());
                    let when = if d.is_all_day {
                        "all day".to_owned()
                    } else {
                        format!(
                            "{}–{}",
                            i.instance.when.start.strftime("%H:%M"),
                            i.instance.when.end.strftime("%H:%M")
                        )
                    };
                    let subject = subject_of(&d, "");
                    (d.show_as.clone(), format!("{when} {subject}"))
                })
                .collect();
            (day.strftime("%a %d %b").to_string(), items)
        })
        .collect();
    let events = instances
        .iter()
        .map(|i| {
            let d = InstanceDto::new(i, st.mailbox.privacy, Default::default());
            let (start, end) = start_end(&d);
            EventRow {
                id: i.instance.exchange_id.clone(),
                start,
                end,
                subject: subject_of(&d, HIDDEN),
                show_as: d.show_as.clone(),
            }
        })
        .collect();
    render(&MailboxPage {
        nav: Nav::of(&s, "mailboxes"),
        address: m.address,
        kind: m.kind,
        connection: m.connection,
        privacy: m.privacy,
        status: m.status.state,
        last_success: short_time(m.status.last_success.as_deref()),
        next_action: m.status.next_action.unwrap_or_default(),
        last_error: m.status.last_error.map(|e| e.message),
        last_round_by: m.status.last_round_by,
        from: from.strftime("%Y-%m-%d").to_string(),
        to: to.strftime("%Y-%m-%d").to_string(),
        events,
        week,
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WhyQuery {
    /// Words of the subject.
    #[serde(default)]
    subject: String,
    /// `YYYY-MM-DD` (with `time`, an hour around it; alone, the whole day), UTC.
    #[serde(default)]
    date: String,
    /// `HH:MM`, UTC.
    #[serde(default)]
    time: String,
}

#[derive(Template)]
#[template(path = "console/why.html")]
struct WhyPage {
    nav: Nav,
    address: String,
    subject: String,
    date: String,
    time: String,
    asked: bool,
    /// What calgate knows, one finding a line.
    findings: Vec<String>,
}

/// "Why isn't this event here?": what calgate knows about an event searched by subject or
/// time — stored (and how it is shown), Free, hidden by the privacy policy, outside the sync
/// window, removed on a date by a sync round, or never seen.
pub(crate) async fn why(
    State(state): State<AppState>,
    s: Session,
    Path(address): Path<String>,
    Query(q): Query<WhyQuery>,
) -> Response {
    let asked = !q.subject.trim().is_empty() || !q.date.trim().is_empty();
    let findings = if asked {
        match explain(&state, &address, &q).await {
            Ok(f) => f,
            Err(e) => vec![e],
        }
    } else {
        Vec::new()
    };
    render(&WhyPage {
        nav: Nav::of(&s, "mailboxes"),
        address,
        subject: q.subject,
        date: q.date,
        time: q.time,
        asked,
        findings,
    })
}

async fn explain(state: &AppState, address: &str, q: &WhyQuery) -> Result<Vec<String>, String> {
    let db = |e: calgate_store::Error| format!("calgate's database failed: {e}");
    let Some(st) = state.store.sync_state(address.trim()).await.map_err(db)? else {
        return Ok(vec![format!(
            "{address} is not linked to calgate: calgate reads no calendar of it. Link it (Mailboxes › Verify a mailbox)."
        )]);
    };
    let m = &st.mailbox;
    // The time asked about: an hour at date+time, or the whole date.
    let range = if q.date.trim().is_empty() {
        None
    } else {
        let date: jiff::civil::Date = q
            .date
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a date (YYYY-MM-DD)", q.date.trim()))?;
        let (start, hours) = match q.time.trim() {
            "" => (date.to_datetime(jiff::civil::Time::midnight()), 24),
            t => {
                let time: jiff::civil::Time = t
                    .parse()
                    .map_err(|_| format!("'{t}' is not a time (HH:MM)"))?;
                (date.to_datetime(time), 1)
            }
        };
        let start = start
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| e.to_string())?
            .timestamp();
        Some((start, start + SignedDuration::from_hours(hours)))
    };
    let mut out = Vec::new();
    let window = state.store.cursor(m.id).await.map_err(db)?;
    let (wfrom, wto) = match &window {
        Some(c) => (c.window_start, c.window_end),
        None => {
            out.push(format!(
                "calgate has not synced {address} yet: nothing of it is stored. Its status says why (Mailboxes › {address})."
            ));
            return Ok(out);
        }
    };
    if let Some((from, to)) = range
        && (to <= wfrom || from >= wto)
    {
        out.push(format!(
            "{} is outside the sync window ({} to {}): calgate does not read events there. Widen [sync] window in the configuration to include it.",
            from.strftime("%Y-%m-%d %H:%M UTC"),
            wfrom.strftime("%Y-%m-%d"),
            wto.strftime("%Y-%m-%d")
        ));
        return Ok(out);
    }
    let (from, to) = range.unwrap_or((wfrom, wto));
    let words = q.subject.trim().to_lowercase();
    let stored = state.store.instances(m.id, from, to).await.map_err(db)?;
    let policy = m.privacy;
    let mut found = 0;
    for i in &stored {
        let full = &i.instance;
        let subject = full.subject.clone().unwrap_or_default();
        let hidden = full.details_hidden(policy);
        if !words.is_empty() && (hidden || !subject.to_lowercase().contains(&words)) {
            continue;
        }
        found += 1;
        if found > 20 {
            break;
        }
        let when = match full.when.all_day {
            Some((first, _)) => format!("{first} (all day)"),
            None => format!(
                "{}–{}",
                full.when.start.strftime("%Y-%m-%d %H:%M"),
                full.when.end.strftime("%H:%M UTC")
            ),
        };
        let name = if hidden {
            "an event (details hidden)".to_owned()
        } else {
            format!("'{subject}'")
        };
        let mut line = format!(
            "calgate has {name} at {when}, shown as {}.",
            full.show_as.as_str()
        );
        if full.show_as == calgate_core::ShowAs::Free {
            line.push_str(" It is Free in Exchange: busy views and availability leave Free time out (only Busy, Tentative, Out of office and Working elsewhere count as busy); the events list and the API still have it.");
        }
        if hidden {
            line.push_str(&format!(
                " Its subject and details are hidden by the mailbox's privacy policy ({}).",
                policy.as_str()
            ));
        }
        out.push(line);
    }
    if found == 0 {
        // Removed by a sync round?
        let removed = state
            .store
            .changes_of(m.id, from, to, 20)
            .await
            .map_err(db)?;
        for c in removed {
            if let calgate_store::Change::Instance {
                op: calgate_store::ChangeOp::Deleted,
                start: Some(a),
                end: Some(b),
                ..
            } = c.change
            {
                out.push(format!(
                    "an event at {}–{} was removed from calgate on {}: {}",
                    a.strftime("%Y-%m-%d %H:%M"),
                    b.strftime("%H:%M UTC"),
                    c.at.strftime("%Y-%m-%d %H:%M UTC"),
                    match c.via {
                        Some(calgate_store::ChangeVia::Resync) => "it was not among what Exchange returned when calgate read the whole window again (a full resync).",
                        _ => "Exchange reported it deleted (or moved away) in that sync round.",
                    }
                ));
            }
        }
    }
    if out.is_empty() {
        let last = st
            .status
            .last_success
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".to_owned());
        let what = if words.is_empty() {
            "no event at that time".to_owned()
        } else {
            format!("no event whose subject has '{}'", q.subject.trim())
        };
        let privacy = if policy != calgate_core::PrivacyPolicy::Full && !words.is_empty() {
            format!(
                " (subjects are hidden by the privacy policy {}: search by time instead)",
                policy.as_str()
            )
        } else {
            String::new()
        };
        out.push(format!(
            "calgate has never seen {what}{privacy} in {address}'s calendar, as last read on {last}: check the calendar in Outlook (the event may be in another calendar, or declined), then sync the mailbox."
        ));
    }
    Ok(out)
}

// ---- bookings, webhooks, doctor ---------------------------------------------------------------

struct BookingRow {
    id: String,
    subject: String,
    state: &'static str,
    /// (calendar, state, error).
    targets: Vec<(String, &'static str, Option<String>)>,
}

#[derive(Template)]
#[template(path = "console/bookings.html")]
struct BookingsPage {
    nav: Nav,
    failed: usize,
    pending: usize,
    synced: usize,
    shown: usize,
    outbox: u64,
    rows: Vec<BookingRow>,
}

/// The bookings, failed ones first (at most 500 of each state).
pub(crate) async fn bookings(State(state): State<AppState>, s: Session) -> Response {
    use calgate_core::booking::BookingState as B;
    let load = async {
        let mut all = Vec::new();
        let mut counts = [0usize; 3];
        for (n, st) in [B::Failed, B::Pending, B::Synced].into_iter().enumerate() {
            let v = state.store.list_bookings(Some(st), None, 500).await?;
            counts[n] = v.len();
            all.extend(v);
        }
        Ok::<_, calgate_store::Error>((all, counts, state.store.pending_pushes().await?))
    };
    let (all, counts, outbox) = match load.await {
        Ok(x) => x,
        Err(e) => return failure(&s, &e.to_string()),
    };
    let rows: Vec<BookingRow> = all
        .iter()
        .map(|b| BookingRow {
            id: b.external_id.clone(),
            subject: b.spec.subject.clone(),
            state: b.state().as_str(),
            targets: b
                .targets
                .iter()
                .map(|t| (t.address.clone(), t.state.as_str(), t.error.clone()))
                .collect(),
        })
        .collect();
    render(&BookingsPage {
        nav: Nav::of(&s, "bookings"),
        failed: counts[0],
        pending: counts[1],
        synced: counts[2],
        shown: rows.len(),
        outbox,
        rows,
    })
}

struct HookRow {
    id: String,
    url: String,
    events: String,
    dead: usize,
    /// (event type, state, attempts, last answer, created).
    deliveries: Vec<(String, &'static str, u32, String, String)>,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    hooks: Vec<HookRow>,
}

/// The webhook endpoints, their recent deliveries and dead letters.
pub(crate) async fn webhooks(State(state): State<AppState>, s: Session) -> Response {
    let load = async {
        let mut out = Vec::new();
        for h in state.store.webhooks().await? {
            let recent = state.store.deliveries(&h.id, None, 20).await?;
            let dead = state
                .store
                .deliveries(&h.id, Some(calgate_store::DeliveryState::Dead), 1000)
                .await?
                .len();
            out.push(HookRow {
                events: h
                    .events
                    .as_ref()
                    .map(|e| e.join(", "))
                    .unwrap_or_else(|| "all".to_owned()),
                id: h.id.clone(),
                url: h.url.clone(),
                dead,
                deliveries: recent
                    .iter()
                    .map(|d| {
                        (
                            d.event_type.clone(),
                            d.state.as_str(),
                            d.attempts,
                            match (d.last_status, &d.last_error) {
                                (Some(code), _) => format!("HTTP {code}"),
                                (None, Some(e)) => e.clone(),
                                (None, None) => "—".to_owned(),
                            },
                            d.created_at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
                        )
                    })
                    .collect(),
            });
        }
        Ok::<_, calgate_store::Error>(out)
    };
    match load.await {
        Ok(hooks) => render(&WebhooksPage {
            nav: Nav::of(&s, "webhooks"),
            hooks,
        }),
        Err(e) => failure(&s, &e.to_string()),
    }
}

/// Puts an endpoint's dead letters back in the queue.
pub(crate) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.store.replay_deliveries(&id, None).await {
        Ok(n) => message(
            &s,
            "webhooks",
            "Dead letters replayed",
            &format!("{n} deliveries are queued again and go out in order."),
            "/console/webhooks",
        ),
        Err(e) => failure(&s, &e.to_string()),
    }
}

/// `calgate doctor`'s checks.
pub(crate) async fn doctor(State(state): State<AppState>, s: Session) -> Response {
    // The integrity check reads the whole database (seconds on a large store): it runs in the
    // background and the page shows its last result.
    let (last, stale) = state.console.integrity();
    if stale {
        state.console.refresh_integrity(state.store.clone());
    }
    let database = match last {
        Some((at, mut check)) => {
            check.summary = format!(
                "{} (checked {}{})",
                check.summary,
                at.strftime("%Y-%m-%d %H:%M UTC"),
                if stale { "; checking again now" } else { "" }
            );
            check
        }
        None => calgate_admin::Check::skip(
            "database",
            "the database's integrity check is running in the background (it reads the whole file): reload this page in a few seconds to see it",
        ),
    };
    match calgate_admin::lifecycle::doctor_after(state.store.as_ref(), Timestamp::now(), database)
        .await
    {
        Ok(list) => render(&ChecklistPage {
            nav: Nav::of(&s, "doctor"),
            heading: list.title.clone(),
            passed: list.passed(),
            warned: warned(&list),
            checks: list.checks.iter().map(CheckRow::from).collect(),
            back: "/console".into(),
        }),
        Err(e) => failure(&s, &e.to_string()),
    }
}

struct AccountRow {
    upn: String,
    name: Option<String>,
    connection: String,
    state: String,
    fix: Option<String>,
    connected: String,
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct AccountsPage {
    nav: Nav,
    rows: Vec<AccountRow>,
    /// Microsoft Graph connections (Connect account signs in through one).
    connections: Vec<String>,
    /// Where Entra ID sends the browser back: the app registration must list it.
    redirect_uri: String,
}

/// The console's Connect account callback, at calgate's public URL.
fn sign_in_redirect_uri(state: &AppState) -> String {
    format!(
        "{}/console/accounts/callback",
        state.config.public_url.trim_end_matches('/')
    )
}

/// The connected (delegated) accounts.
pub(crate) async fn accounts(State(state): State<AppState>, s: Session) -> Response {
    let listed = async {
        Ok::<_, calgate_admin::accounts::AccountError>((
            calgate_admin::accounts::list_accounts(state.store.as_ref()).await?,
            state.store.list_connections().await?,
        ))
    };
    match listed.await {
        Ok((list, conns)) => render(&AccountsPage {
            nav: Nav::of(&s, "accounts"),
            connections: conns
                .into_iter()
                .filter(|c| c.kind() == calgate_core::ConnectionKind::Graph)
                .map(|c| c.name)
                .collect(),
            redirect_uri: sign_in_redirect_uri(&state),
            rows: list
                .into_iter()
                .map(|a| AccountRow {
                    upn: a.upn,
                    name: a.display_name,
                    connection: a.connection,
                    state: a.state,
                    fix: a.fix,
                    connected: a.connected_at.strftime("%Y-%m-%d").to_string(),
                })
                .collect(),
        }),
        Err(e) => failure(&s, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    login_hint: String,
    /// "on": ask for Calendars.Read only.
    #[serde(default)]
    read_only: Option<String>,
    /// "on": ask the user to consent again.
    #[serde(default)]
    consent: Option<String>,
    /// "on": link the account's mailbox (kind user, full details) when it is connected.
    #[serde(default)]
    link: Option<String>,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    nav: Nav,
    /// The sign-in page's host (login.microsoftonline.com, or the simulator's).
    host: String,
    connection: String,
    url: String,
}

/// The host (and port) of `url`.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .to_owned()
}

/// Connect account, step 1: the sign-in URL for the connection's app, with the console's
/// callback as redirect URI, on a page with a link there.
pub(crate) async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<ConnectForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut options = calgate_admin::accounts::ConnectOptions {
        login_hint: Some(f.login_hint.trim().to_owned()).filter(|h| !h.is_empty()),
        force_consent: f.consent.is_some(),
        link: f
            .link
            .is_some()
            .then(calgate_admin::accounts::LinkOptions::default),
        ..Default::default()
    };
    if f.read_only.is_some() {
        options.permissions = vec!["Calendars.Read".to_owned()];
    }
    match calgate_admin::accounts::begin_sign_in(
        state.store.as_ref(),
        state.engine.shared(),
        f.connection.trim(),
        &options,
        &sign_in_redirect_uri(&state),
    )
    .await
    {
        Ok(sign_in) => {
            // A link, not a redirect: the console's CSP (`form-action 'self'`) rightly stops
            // a form's answer from sending the browser to another site.
            let page = SignInPage {
                nav: Nav::of(&s, "accounts"),
                host: url_host(&sign_in.url),
                connection: sign_in.connection().to_owned(),
                url: sign_in.url.clone(),
            };
            state.console.begin_sign_in(sign_in);
            render(&page)
        }
        Err(e) => message(
            &s,
            "accounts",
            "Cannot connect an account",
            &e.to_string(),
            "/console/accounts",
        ),
    }
}

/// Connect account, step 2: Entra ID sends the browser back here with `code` (or `error`)
/// and the sign-in's `state`. The session cookie is `SameSite=Strict`, so a browser coming
/// back from Microsoft's sign-in page does not send it: the unguessable `state`, issued to a
/// signed-in administrator a moment ago and good once, is what authorises this request.
pub(crate) async fn connect_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let session = session_of(state.store.as_ref(), &headers).await;
    let nav = |here| match &session {
        Some(s) => Nav::of(s, here),
        None => Nav {
            signed_in: false,
            csrf: String::new(),
            here,
        },
    };
    let Some(sign_in) = q.get("state").and_then(|st| state.console.take_sign_in(st)) else {
        let mut r = render(&MessagePage {
            nav: nav("accounts"),
            heading: "Unexpected sign-in".into(),
            message: "This is not a sign-in the console is waiting for: it was already used, it is older than 15 minutes, or it did not start here. Press Connect account again.".into(),
            back: "/console/accounts".into(),
        });
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let connection = sign_in.connection().to_owned();
    let callback = calgate_admin::accounts::Callback::from_query(&q);
    match sign_in.complete(state.store.clone(), callback).await {
        Ok(done) => render(&ChecklistPage {
            nav: nav("accounts"),
            heading: done.checklist.title.clone(),
            passed: done.checklist.passed(),
            warned: warned(&done.checklist),
            checks: done.checklist.checks.iter().map(CheckRow::from).collect(),
            back: "/console/accounts".into(),
        }),
        Err(e) => {
            tracing::warn!(connection = %connection, "console: a Connect account sign-in failed");
            let mut r = render(&MessagePage {
                nav: nav("accounts"),
                heading: "Account not connected".into(),
                message: e.to_string(),
                back: "/console/accounts".into(),
            });
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DisconnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    upn: String,
    #[serde(default)]
    connection: String,
}

/// Forgets a connected account (its mailboxes stay linked, with app-only access).
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<DisconnectForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let connection = Some(f.connection.trim()).filter(|c| !c.is_empty());
    match calgate_admin::accounts::disconnect_account(
        state.store.as_ref(),
        f.upn.trim(),
        connection,
    )
    .await
    {
        Ok(r) => message(
            &s,
            "accounts",
            "Account disconnected",
            &format!(
                "{} is disconnected ({} account(s) forgotten; its refresh token is gone).{}",
                f.upn.trim(),
                r.removed,
                if r.mailboxes_still_linked.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Still linked, now with app-only access: {}.",
                        r.mailboxes_still_linked.join(", ")
                    )
                }
            ),
            "/console/accounts",
        ),
        Err(e) => message(
            &s,
            "accounts",
            "Not disconnected",
            &e.to_string(),
            "/console/accounts",
        ),
    }
}

/// Queues a failed booking's calendars again.
pub(crate) async fn retry_booking(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match checked(&state, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.store.retry_booking(&id).await {
        Ok(Some(n)) => message(
            &s,
            "bookings",
            "Booking queued again",
            &format!(
                "{n} calendar(s) of booking {id} are queued again: the next push writes them (it looks for an event it may have made first)."
            ),
            "/console/bookings",
        ),
        Ok(None) => message(
            &s,
            "bookings",
            "No such booking",
            &format!("there is no booking {id}"),
            "/console/bookings",
        ),
        Err(e) => failure(&s, &e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventQuery {
    #[serde(default)]
    id: String,
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct EventPage {
    nav: Nav,
    address: String,
    id: String,
    /// (subject, when, shown as, made by), when calgate holds it.
    now: Option<(String, String, String, String)>,
    history: Vec<String>,
}

/// One event's history: what calgate holds now and each change the change log recorded.
pub(crate) async fn event(
    State(state): State<AppState>,
    s: Session,
    Path(address): Path<String>,
    Query(q): Query<EventQuery>,
) -> Response {
    let load = async {
        let Some(m) = state.store.mailbox(address.trim()).await? else {
            return Ok(None);
        };
        let h =
            calgate_admin::history::event_history(state.store.as_ref(), m.id, &q.id, 100).await?;
        Ok::<_, calgate_store::Error>(Some((m, h.now, h.lines)))
    };
    let (m, now, history) = match load.await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return message(
                &s,
                "mailboxes",
                "No such mailbox",
                &format!("{address} is not linked to calgate."),
                "/console/mailboxes",
            );
        }
        Err(e) => return failure(&s, &e.to_string()),
    };
    let now = now.map(|i| {
        let d = InstanceDto::new(&i, m.privacy, Default::default());
        let (start, end) = start_end(&d);
        (
            subject_of(&d, HIDDEN),
            format!("{start} – {end}"),
            d.show_as.clone(),
            match &d.booking_id {
                Some(b) => format!("calgate, for booking {b}"),
                None => "a person, in Exchange".to_owned(),
            },
        )
    });
    render(&EventPage {
        nav: Nav::of(&s, "mailboxes"),
        address: m.address,
        id: q.id,
        now,
        history,
    })
}
