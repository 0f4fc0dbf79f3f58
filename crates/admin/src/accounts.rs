//! Delegated "Connect account" (the Jadu guide's flow): a user signs in through a connection's
//! app registration — authorization code + PKCE (S256), `offline_access` — and calgate keeps
//! the refresh token, sealed in the store, to read (and write) that user's own calendar with
//! delegated permissions. A mailbox of the same connection whose address is the account's UPN
//! syncs with the account's token (calgate-sync's `delegated` module), like any other mailbox.
//!
//! - `calgate account connect --connection NAME [--listen 127.0.0.1:PORT] [--v1]` →
//!   [`begin_connect`] (prints [`PendingConnect::url`]) then [`PendingConnect::finish`]: a
//!   callback listener on 127.0.0.1 receives the code (its `state` checked), redeems it with the
//!   PKCE verifier, stores the refresh token encrypted with the account's UPN, probes the
//!   calendar, and links the mailbox if asked. [`connect_account`] does both.
//! - `calgate account list` → [`list_accounts`]: each account's state (`ok` or
//!   `reconnect needed`, with the cause and the fix), last refresh, and its mailbox's status.
//! - `calgate account disconnect EMAIL` → [`disconnect_account`]: forgets the tokens; mailboxes
//!   stay linked.
//!
//! Refresh happens in the sync engine as needed; a refresh token Entra ID refuses (expired,
//! revoked, consent withdrawn: AADSTS70008 / 50173 / 65001 / `invalid_grant`) marks the account
//! "reconnect needed" and fails only its mailbox, whose status names the fix.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::{
    AuthorizationRequest, DelegatedOptions, DelegatedSession, GraphClient, Shared, TokenEndpoint,
};
use calgate_store::{
    Account, AccountEndpoint, AccountState, Connection, NewAccount, NewMailbox, Store,
};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::checklist::{Check, Checklist};

/// How long `account connect` waits for the browser by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);
/// Entra ID's refresh-token lifetime (non-SPA): 90 days from issue; each refresh issues a new one.
pub const REFRESH_TOKEN_LIFETIME_DAYS: i64 = 90;
/// `account list` warns when a refresh token has not been used for this long.
pub const REFRESH_WARN_DAYS: i64 = 60;

/// Why an account command failed (one line, with the fix).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The connection or account does not exist, or an option is unusable.
    #[error("{0}")]
    Usage(String),
    /// Nobody completed the sign-in in time.
    #[error(
        "no sign-in arrived within {0} seconds: run `calgate account connect` again and open the URL it prints in a browser on this machine"
    )]
    Timeout(u64),
    /// The sign-in was refused or cancelled in the browser (`error=` on the callback).
    #[error("the sign-in did not complete ({code}): {message}")]
    SignIn { code: String, message: String },
    /// Entra ID or Graph refused (message in admin words, with the fix).
    #[error("{0}")]
    Graph(#[from] calgate_graph::Error),
    #[error("calgate's store failed: {0}")]
    Store(#[from] calgate_store::Error),
    /// The local callback listener could not run.
    #[error("{0}")]
    Listener(String),
}

/// How to link the account's mailbox after it is connected (`--link`). `None`: the default
/// for a new link (user, full), unchanged for a mailbox already linked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkOptions {
    pub kind: Option<MailboxKind>,
    pub external_id: Option<String>,
    pub privacy: Option<PrivacyPolicy>,
}

/// `calgate account connect` options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where the callback listener binds (`--listen`, loopback only; port 0 = any free port).
    pub listen: SocketAddr,
    /// Use the Entra ID v1 endpoints (`--v1`: "Azure AD" legacy registrations).
    pub v1: bool,
    /// Delegated Graph permissions (`--read-only`: `Calendars.Read`; default
    /// `Calendars.ReadWrite`).
    pub permissions: Vec<String>,
    /// Pre-fill the sign-in page (`--login-hint UPN`).
    pub login_hint: Option<String>,
    /// Ask for consent again (`--consent`).
    pub force_consent: bool,
    /// Link the account's mailbox to the connection (`--link [--kind …] [--external-id …]
    /// [--privacy …]`).
    pub link: Option<LinkOptions>,
    /// How long to wait for the browser (`--timeout SECONDS`).
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            v1: false,
            permissions: DelegatedOptions::default().permissions,
            login_hint: None,
            force_consent: false,
            link: None,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A connect in progress: show [`PendingConnect::url`], then [`PendingConnect::finish`].
pub struct PendingConnect {
    /// The sign-in URL to open in a browser.
    pub url: String,
    /// Where the browser is sent back to (the listener).
    pub redirect_uri: String,
    listener: tokio::net::TcpListener,
    sign_in: SignIn,
}

/// A sign-in begun for a redirect URI: send the browser to [`SignIn::url`]; when it comes back
/// with the matching [`SignIn::state`], [`SignIn::complete`] redeems the code. Used by
/// [`PendingConnect`] (a callback listener of its own) and by the admin console (its own
/// callback page, [`begin_sign_in`]).
pub struct SignIn {
    /// The sign-in URL to open in a browser.
    pub url: String,
    /// Where the browser is sent back to.
    pub redirect_uri: String,
    /// How to word the fix for a refused redirect URI: a desktop-style loopback listener
    /// (`false`) or a web page calgate serves (`true`).
    web: bool,
    request: AuthorizationRequest,
    client: GraphClient,
    shared: Shared,
    connection: Connection,
    options: ConnectOptions,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("url", &self.url)
            .field("redirect_uri", &self.redirect_uri)
            .field("connection", &self.connection.name)
            .finish_non_exhaustive()
    }
}

/// What the browser brought back to the redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// `code=`: the sign-in succeeded.
    Code(String),
    /// `error=` (and `error_description=`): refused or cancelled.
    Error { code: String, message: String },
}

impl Callback {
    /// From the callback's query parameters (`code`, or `error` and `error_description`).
    pub fn from_query(q: &HashMap<String, String>) -> Callback {
        if let Some(code) = q.get("code").filter(|c| !c.is_empty()) {
            return Callback::Code(code.clone());
        }
        Callback::Error {
            code: q
                .get("error")
                .cloned()
                .unwrap_or_else(|| "invalid_request".to_owned()),
            message: q
                .get("error_description")
                .cloned()
                .unwrap_or_else(|| "the callback carried neither a code nor an error".to_owned()),
        }
    }
}

/// Builds the sign-in (authorization code + PKCE S256, `offline_access`, `state`, `nonce`)
/// for `redirect_uri`, which the caller serves: the admin console's callback page. The
/// connection's app registration must list that URI (Entra ID › App registrations ›
/// Authentication › Web).
pub async fn begin_sign_in(
    store: &dyn Store,
    shared: &Shared,
    connection: &str,
    options: &ConnectOptions,
    redirect_uri: &str,
) -> Result<SignIn, AccountError> {
    prepare_sign_in(
        store,
        shared,
        connection,
        options,
        redirect_uri.to_owned(),
        true,
    )
    .await
}

async fn prepare_sign_in(
    store: &dyn Store,
    shared: &Shared,
    connection: &str,
    options: &ConnectOptions,
    redirect_uri: String,
    web: bool,
) -> Result<SignIn, AccountError> {
    let conn = store.connection(connection).await?.ok_or_else(|| {
        AccountError::Usage(format!(
            "there is no connection named '{connection}': `calgate connection list` shows them; add one with `calgate connection add {connection} …`"
        ))
    })?;
    if conn.kind() != calgate_core::ConnectionKind::Graph {
        return Err(AccountError::Usage(format!(
            "connection '{connection}' is an Exchange Server (EWS) connection: Connect account signs in through Entra ID, so it needs a Microsoft Graph connection"
        )));
    }
    let mut cfg = calgate_graph::ConnectionConfig::from_connection(&conn)?;
    cfg.token_endpoint = if options.v1 {
        TokenEndpoint::V1
    } else {
        TokenEndpoint::V2
    };
    let client = GraphClient::new(cfg, shared)?;
    let request = client.authorization_request(
        &redirect_uri,
        &DelegatedOptions {
            permissions: options.permissions.clone(),
            login_hint: options.login_hint.clone(),
            force_consent: options.force_consent,
        },
    )?;
    Ok(SignIn {
        url: request.url.clone(),
        redirect_uri,
        web,
        request,
        client,
        shared: shared.clone(),
        connection: conn,
        options: options.clone(),
    })
}

impl std::fmt::Debug for PendingConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingConnect")
            .field("url", &self.url)
            .field("redirect_uri", &self.redirect_uri)
            .field("connection", &self.sign_in.connection.name)
            .finish_non_exhaustive()
    }
}

/// A connected account as `account list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountSummary {
    pub connection: String,
    pub upn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// `ok` or `reconnect needed`.
    pub state: String,
    /// Why (for `reconnect needed`: what Entra ID said, in an administrator's words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exact fix, when something must be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// `v2` or `v1`.
    pub endpoint: String,
    pub scopes: String,
    pub connected_at: Timestamp,
    /// The last successful use of the refresh token (or the connect).
    pub last_refreshed: Timestamp,
    /// Whether a mailbox with the account's address is linked to the connection.
    pub mailbox_linked: bool,
    /// That mailbox's last sync error, if its last sync failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_error: Option<String>,
}

/// What `account connect` did.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedAccount {
    pub account: AccountSummary,
    /// One ✓/✗ line per step (signed in, token stored, calendar readable, mailbox linked).
    pub checklist: Checklist,
}

/// What `account disconnect` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisconnectReport {
    /// Accounts forgotten (one per connection the address was connected through).
    pub removed: u64,
    /// Mailboxes with that address that stay linked (they now sync with app-only access).
    pub mailboxes_still_linked: Vec<String>,
}

fn reconnect_fix(connection: &str, upn: &str) -> String {
    format!(
        "run `{} --login-hint {upn}` and sign in as {upn}",
        calgate_sync::reconnect_command(connection)
    )
}

fn state_words(s: AccountState) -> &'static str {
    match s {
        AccountState::Ok => "ok",
        AccountState::ReconnectNeeded => "reconnect needed",
    }
}

/// Step 1 of `calgate account connect`: binds the callback listener (loopback only) and builds
/// the sign-in URL (authorization code + PKCE S256, `offline_access`, `state`, `nonce`).
pub async fn begin_connect(
    store: &dyn Store,
    shared: &Shared,
    connection: &str,
    options: &ConnectOptions,
) -> Result<PendingConnect, AccountError> {
    if store.connection(connection).await?.is_none() {
        // The same words as a sign-in begun without a listener, before binding one.
        prepare_sign_in(store, shared, connection, options, String::new(), false).await?;
    }
    if !options.listen.ip().is_loopback() {
        return Err(AccountError::Usage(format!(
            "--listen {} is not a loopback address: the sign-in callback only listens on this machine (e.g. --listen 127.0.0.1:8400)",
            options.listen
        )));
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| {
            AccountError::Listener(format!(
                "cannot listen on {} for the sign-in callback ({e}): pass another --listen 127.0.0.1:PORT",
                options.listen
            ))
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| AccountError::Listener(format!("the callback listener has no address ({e})")))?
        .port();
    let host = match options.listen.ip() {
        std::net::IpAddr::V6(_) => "[::1]".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    // Entra ID ignores the port of http://127.0.0.1 and http://localhost redirect URIs: register
    // `http://127.0.0.1` (or `http://localhost`) once, any port works.
    let redirect_uri = format!("http://{host}:{port}/callback");
    let sign_in = prepare_sign_in(store, shared, connection, options, redirect_uri, false).await?;
    Ok(PendingConnect {
        url: sign_in.url.clone(),
        redirect_uri: sign_in.redirect_uri.clone(),
        listener,
        sign_in,
    })
}

#[derive(Clone)]
struct CallbackState {
    expected_state: Arc<str>,
    tx: mpsc::Sender<Callback>,
}

const PAGE_OK: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>calgate</title></head><body><h1>Signed in</h1><p>calgate received the sign-in. You can close this window and return to the terminal.</p></body></html>";

async fn callback(
    State(st): State<CallbackState>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let state_ok = q.get("state").is_some_and(|s| {
        let (a, b) = (s.as_bytes(), st.expected_state.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if !state_ok {
        // Not the sign-in calgate started (a stale tab or a forged request): ignored.
        return (
            StatusCode::BAD_REQUEST,
            Html("<!doctype html><html><body><h1>Unexpected sign-in</h1><p>This is not the sign-in calgate is waiting for (the state does not match). Use the URL the running <code>calgate account connect</code> printed.</p></body></html>"),
        )
            .into_response();
    }
    let (code, message) = match Callback::from_query(&q) {
        c @ Callback::Code(_) => {
            let _ = st.tx.send(c).await;
            return Html(PAGE_OK).into_response();
        }
        Callback::Error { code, message } => (code, message),
    };
    let _ = st
        .tx
        .send(Callback::Error {
            code: code.clone(),
            message: message.clone(),
        })
        .await;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><body><h1>Sign-in failed</h1><p>{}: {}</p><p>Return to the terminal for the fix.</p></body></html>",
            esc(&code),
            esc(&message)
        )),
    )
        .into_response()
}

fn sign_in_fix(
    code: &str,
    message: &str,
    client_id: &str,
    connection: &str,
    web: Option<&str>,
) -> String {
    if let Some(redirect_uri) = web {
        // Begun from the console: the fixes name its button, and the Web platform's URI.
        return match code {
            "access_denied" => format!(
                "the user cancelled or declined consent ({message}): press Connect account again and accept; or grant admin consent in Entra ID › App registrations › {client_id} › API permissions › Grant admin consent"
            ),
            "consent_required" | "interaction_required" => format!(
                "consent is needed ({message}): press Connect account again with \"ask for consent again\" ticked, or grant admin consent in Entra ID › App registrations › {client_id} › API permissions"
            ),
            "invalid_scope" => format!(
                "Entra ID refused the permissions asked for ({message}): add Microsoft Graph › Delegated › Calendars.ReadWrite (or Calendars.Read) and offline_access in Entra ID › App registrations › {client_id} › API permissions"
            ),
            _ => format!(
                "{message}; check the app registration's redirect URIs (Entra ID › App registrations › {client_id} › Authentication › Web: add {redirect_uri})"
            ),
        };
    }
    match code {
        "access_denied" => format!(
            "the user cancelled or declined consent ({message}): run `calgate account connect --connection {connection}` again and accept; or grant admin consent in Entra ID › App registrations › {client_id} › API permissions › Grant admin consent"
        ),
        "consent_required" | "interaction_required" => format!(
            "consent is needed ({message}): run `calgate account connect --connection {connection} --consent` again, or grant admin consent in Entra ID › App registrations › {client_id} › API permissions"
        ),
        "invalid_scope" => format!(
            "Entra ID refused the permissions asked for ({message}): add Microsoft Graph › Delegated › Calendars.ReadWrite (or Calendars.Read) and offline_access in Entra ID › App registrations › {client_id} › API permissions"
        ),
        _ => format!(
            "{message}; check the app registration's redirect URIs (Entra ID › App registrations › {client_id} › Authentication › Mobile and desktop applications: add http://127.0.0.1 and http://localhost)"
        ),
    }
}

impl PendingConnect {
    /// Step 2: waits (at most [`ConnectOptions::timeout`]) for the browser, redeems the code,
    /// stores the account (refresh token sealed), probes the calendar and links the mailbox
    /// if asked. The listener stops when this returns.
    pub async fn finish(self, store: Arc<dyn Store>) -> Result<ConnectedAccount, AccountError> {
        let (tx, mut rx) = mpsc::channel::<Callback>(4);
        let app = axum::Router::new()
            .route("/callback", axum::routing::get(callback))
            .with_state(CallbackState {
                expected_state: Arc::from(self.sign_in.state()),
                tx,
            });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .into_future(),
        );
        let timeout = self.sign_in.options.timeout;
        let waited = tokio::time::timeout(timeout, rx.recv()).await;
        // Give the browser its page, then stop listening.
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        match waited {
            Err(_) => Err(AccountError::Timeout(timeout.as_secs())),
            Ok(None) => Err(AccountError::Listener(
                "the sign-in callback listener stopped unexpectedly".to_owned(),
            )),
            Ok(Some(c)) => self.sign_in.complete(store, c).await,
        }
    }
}

impl SignIn {
    /// The `state` the callback must carry back (compare in constant time).
    pub fn state(&self) -> &str {
        &self.request.state
    }

    /// The connection the user signs in through.
    pub fn connection(&self) -> &str {
        &self.connection.name
    }

    /// What the callback brought: redeems the code with the PKCE verifier, stores the account
    /// (refresh token sealed), probes the calendar and links the mailbox if asked. An `error=`
    /// callback gives [`AccountError::SignIn`] with the fix.
    pub async fn complete(
        self,
        store: Arc<dyn Store>,
        callback: Callback,
    ) -> Result<ConnectedAccount, AccountError> {
        let code = match callback {
            Callback::Error { code, message } => {
                let fix = sign_in_fix(
                    &code,
                    &message,
                    &self.connection.client_id,
                    &self.connection.name,
                    self.web.then_some(self.redirect_uri.as_str()),
                );
                return Err(AccountError::SignIn { code, message: fix });
            }
            Callback::Code(c) => c,
        };
        let tokens = self
            .client
            .redeem_authorization_code(&self.request, &code)
            .await?;
        let name = self.connection.name.clone();
        let client_id = self.connection.client_id.clone();
        let Some(upn) = tokens.user.upn.clone() else {
            return Err(AccountError::Usage(
                "Entra ID did not say who signed in (no ID token with preferred_username/upn): the sign-in must ask for openid; run `calgate account connect` again".to_owned(),
            ));
        };
        let mut checklist = Checklist::new(format!("Connect account: {upn} via {name}"));
        checklist.push(Check::pass(
            "sign-in",
            format!(
                "{upn}{} signed in and consented ({} endpoint)",
                tokens
                    .user
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                if self.options.v1 { "v1" } else { "v2" }
            ),
        ));
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(AccountError::Usage(format!(
                "Entra ID issued no refresh token, so calgate could not keep {upn} connected: the sign-in must include offline_access — in Entra ID › App registrations › {client_id} › API permissions add Microsoft Graph › Delegated › offline_access, then run `calgate account connect --connection {name}` again"
            )));
        };
        let scopes = tokens
            .scope
            .clone()
            .unwrap_or_else(|| self.request.scope.clone());
        let id = store
            .save_account(&NewAccount {
                connection: name.clone(),
                upn: upn.clone(),
                mail: tokens
                    .user
                    .email
                    .clone()
                    .filter(|m| !m.eq_ignore_ascii_case(&upn)),
                display_name: tokens.user.name.clone(),
                user_id: tokens.user.object_id.clone(),
                refresh_token: calgate_store::SecretString::new(refresh_token.expose()),
                scopes: scopes.clone(),
                endpoint: if self.options.v1 {
                    AccountEndpoint::V1
                } else {
                    AccountEndpoint::V2
                },
            })
            .await?;
        checklist.push(Check::pass(
            "refresh-token",
            format!(
                "refresh token stored encrypted; it is renewed on every use and expires after {REFRESH_TOKEN_LIFETIME_DAYS} days unused"
            ),
        ));
        // Probe: read today's calendar with the fresh delegated token.
        let account = store.account(id).await?.ok_or_else(|| {
            AccountError::Usage("the account vanished while it was being connected".to_owned())
        })?;
        let mut cfg = calgate_graph::ConnectionConfig::from_connection(&self.connection)?;
        cfg.token_endpoint = if self.options.v1 {
            TokenEndpoint::V1
        } else {
            TokenEndpoint::V2
        };
        let session = DelegatedSession::new(
            self.client.clone(),
            upn.clone(),
            refresh_token,
            calgate_sync::account_options(&account),
            calgate_sync::reconnect_command(&name),
            Arc::new(calgate_sync::StoreSink::new(store.clone(), id)),
        )
        .with_access_token(tokens.access.clone())
        .await;
        let delegated = GraphClient::with_delegated(cfg, &self.shared, Arc::new(session))?;
        let now = Timestamp::now();
        let probe = delegated
            .calendar_view(&upn, now, now + SignedDuration::from_hours(24))
            .await;
        match probe {
            Ok(items) => checklist.push(Check::pass(
                "calendar",
                format!(
                    "{upn}'s calendar is readable with the delegated token ({} item(s) in the next 24 hours)",
                    items.len()
                ),
            )),
            Err(e) => checklist.push(
                Check::fail(
                    "calendar",
                    format!("{upn}'s calendar could not be read with the delegated token: {e}"),
                    format!(
                        "in Entra ID › App registrations › {client_id} › API permissions add Microsoft Graph › Delegated › Calendars.ReadWrite (or Calendars.Read), grant consent, then run `calgate account connect --connection {name} --consent`"
                    ),
                )
                .with_code(e.code.clone().unwrap_or_else(|| e.kind.as_str().to_owned())),
            ),
        };
        let mut linked = store
            .mailbox(&upn)
            .await?
            .is_some_and(|m| m.connection.eq_ignore_ascii_case(&name));
        if let Some(link) = &self.options.link {
            match store
                .link_mailbox(&NewMailbox {
                    address: upn.clone(),
                    connection: name.clone(),
                    kind: link.kind,
                    external_id: link.external_id.clone(),
                    privacy: link.privacy,
                })
                .await
            {
                Ok(_) => {
                    linked = true;
                    checklist.push(Check::pass(
                        "link",
                        format!("mailbox {upn} linked to {name}; it syncs with {upn}'s delegated token"),
                    ))
                }
                Err(e) if e.kind() == calgate_store::ErrorKind::Conflict => checklist.push(Check::fail(
                    "link",
                    format!("mailbox {upn} is linked to another connection ({e})"),
                    format!("`calgate mailbox unlink {upn}`, then `calgate mailbox link {upn} --connection {name}`"),
                )),
                Err(e) => return Err(e.into()),
            };
        } else if linked {
            checklist.push(Check::pass(
                "link",
                format!(
                    "mailbox {upn} is linked to {name}; it now syncs with {upn}'s delegated token"
                ),
            ));
        } else {
            checklist.push(Check::warn(
                "link",
                format!("mailbox {upn} is not linked, so nothing syncs through this account yet"),
                format!("`calgate mailbox link {upn} --connection {name}` (or connect again with --link)"),
            ));
        }
        let mut summary = summarize(&account, linked, None);
        summary.state = state_words(AccountState::Ok).to_owned();
        Ok(ConnectedAccount {
            account: summary,
            checklist,
        })
    }
}

/// `calgate account connect`: [`begin_connect`], `show_url(url)` (print it), then
/// [`PendingConnect::finish`].
pub async fn connect_account(
    store: Arc<dyn Store>,
    shared: &Shared,
    connection: &str,
    options: &ConnectOptions,
    show_url: impl FnOnce(&str),
) -> Result<ConnectedAccount, AccountError> {
    let pending = begin_connect(store.as_ref(), shared, connection, options).await?;
    show_url(&pending.url);
    pending.finish(store).await
}

fn summarize(a: &Account, mailbox_linked: bool, mailbox_error: Option<String>) -> AccountSummary {
    let now = Timestamp::now();
    let idle_days = now.duration_since(a.refreshed_at).as_hours() / 24;
    let (message, fix) = match a.state {
        AccountState::ReconnectNeeded => (
            a.state_message.clone(),
            Some(reconnect_fix(&a.connection, &a.upn)),
        ),
        AccountState::Ok if idle_days >= REFRESH_WARN_DAYS => (
            Some(format!(
                "the refresh token has not been used for {idle_days} days; Entra ID lets it expire after {REFRESH_TOKEN_LIFETIME_DAYS}"
            )),
            Some(format!(
                "sync the account's mailbox (`calgate sync --mailbox {}`), or reconnect: {}",
                a.upn,
                reconnect_fix(&a.connection, &a.upn)
            )),
        ),
        AccountState::Ok => (None, None),
    };
    AccountSummary {
        connection: a.connection.clone(),
        upn: a.upn.clone(),
        display_name: a.display_name.clone(),
        mail: a.mail.clone(),
        state: state_words(a.state).to_owned(),
        message,
        fix,
        endpoint: a.endpoint.as_str().to_owned(),
        scopes: a.scopes.clone(),
        connected_at: a.connected_at,
        last_refreshed: a.refreshed_at,
        mailbox_linked,
        mailbox_error,
    }
}

/// `calgate account list`: every connected account with its state, last refresh and its
/// mailbox's last sync error.
pub async fn list_accounts(store: &dyn Store) -> Result<Vec<AccountSummary>, AccountError> {
    let accounts = store.list_accounts().await?;
    let mailboxes = store.list_mailboxes().await?;
    let statuses = store.statuses().await?;
    Ok(accounts
        .iter()
        .map(|a| {
            let mb = mailboxes
                .iter()
                .find(|m| m.connection.eq_ignore_ascii_case(&a.connection) && a.owns(&m.address));
            let err = mb.and_then(|m| {
                statuses
                    .iter()
                    .find(|s| s.mailbox_id == m.id)
                    .and_then(|s| s.last_error.as_ref())
                    .map(|e| e.message.clone())
            });
            summarize(a, mb.is_some(), err)
        })
        .collect())
}

/// The text form of `account list`.
pub fn render_accounts(accounts: &[AccountSummary]) -> String {
    if accounts.is_empty() {
        return "no connected accounts: connect one with `calgate account connect --connection NAME`\n"
            .to_owned();
    }
    let mut out = String::new();
    for a in accounts {
        let symbol = if a.state == "ok" && a.message.is_none() {
            "✓"
        } else if a.state == "ok" {
            "!"
        } else {
            "✗"
        };
        let _ = writeln!(
            out,
            "{symbol} {} via {} — {} (last refreshed {}, {}; mailbox {})",
            a.upn,
            a.connection,
            a.state,
            a.last_refreshed.strftime("%Y-%m-%d %H:%M UTC"),
            a.endpoint,
            if a.mailbox_linked {
                "linked"
            } else {
                "not linked"
            }
        );
        if let Some(m) = &a.message {
            let _ = writeln!(out, "      {m}");
        }
        if let Some(f) = &a.fix {
            let _ = writeln!(out, "      fix: {f}");
        }
    }
    out
}

/// `calgate account disconnect EMAIL [--connection NAME]`: forgets the account's tokens.
/// Nothing else changes: a mailbox with that address stays linked (and syncs with the
/// connection's app-only access from now on).
pub async fn disconnect_account(
    store: &dyn Store,
    address: &str,
    connection: Option<&str>,
) -> Result<DisconnectReport, AccountError> {
    let removed = store.remove_accounts(address, connection).await?;
    if removed == 0 {
        return Err(AccountError::Usage(format!(
            "no connected account {address}{}: `calgate account list` shows the connected accounts",
            connection
                .map(|c| format!(" on connection '{c}'"))
                .unwrap_or_default()
        )));
    }
    let still = store
        .list_mailboxes()
        .await?
        .into_iter()
        .filter(|m| m.address.eq_ignore_ascii_case(address.trim()))
        .map(|m| m.address)
        .collect();
    Ok(DisconnectReport {
        removed,
        mailboxes_still_linked: still,
    })
}
