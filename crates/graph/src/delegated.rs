//! Delegated tokens ("Connect account", the Jadu guide): a user signs in through the
//! connection's app registration with the OAuth 2.0 authorization code flow and PKCE (S256);
//! calgate keeps the refresh token (`offline_access`) and reads that user's own calendar with
//! delegated permissions (`scp`), where app-only access is not wanted or not granted.
//!
//! - [`GraphClient::authorization_request`] builds the sign-in URL with a fresh PKCE verifier,
//!   `state` and `nonce`; [`GraphClient::redeem_authorization_code`] redeems the code the
//!   browser brings back; [`GraphClient::refresh_delegated`] redeems a refresh token. The app
//!   authenticates with the connection's credentials (newest valid first, falling back as for
//!   app-only tokens); an app without credentials is treated as a public client.
//! - Endpoints: v2 (`/oauth2/v2.0/authorize`, `/oauth2/v2.0/token`, `scope=openid profile
//!   offline_access https://graph.microsoft.com/Calendars.ReadWrite`) or, for legacy
//!   registrations ("Azure AD" rather than "Azure AD v2.0"), v1 (`/oauth2/authorize`,
//!   `/oauth2/token`, `resource=https://graph.microsoft.com`, no `scope`; v1 always returns a
//!   refresh token). The endpoint is the [`ConnectionConfig::token_endpoint`] of the client.
//! - [`DelegatedSession`] is a token source for one account: cached access token, refreshed
//!   when less than 5 minutes are left, one refresh in flight; every new refresh token goes to
//!   a [`RefreshTokenSink`] (the store) before it is used, and a refused refresh token
//!   (expired, revoked, consent withdrawn) turns the session into "reconnect needed": the sink
//!   is told once, and every later call fails at once with the same message and fix.
//!   [`GraphClient::with_delegated`] makes a Graph client that uses it for every request.
//!
//! Refresh tokens and verifiers are [`SecretString`]s: never in `Debug`, logs or messages.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use jiff::Timestamp;
use rand::RngCore as _;
use reqwest::Url;
use serde::Deserialize;
use sha2::Digest as _;

use crate::client::GraphClient;
use crate::config::{ConnectionConfig, TokenEndpoint};
use crate::error::{self, Error, ErrorKind, TokenContext};
use crate::limiter::Metrics;
use crate::secret::SecretString;
use crate::token::{self, AccessToken, EARLY_REFRESH, TokenRequest};
use crate::wire::{EntraErrorBody, Lenient};

/// The delegated permission calgate asks for by default (read and write the user's calendar).
pub const DEFAULT_DELEGATED_PERMISSIONS: &[&str] = &["Calendars.ReadWrite"];

/// What to ask for when a user connects an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedOptions {
    /// Delegated permissions on Graph, e.g. `Calendars.Read` (pull only) or
    /// `Calendars.ReadWrite` (push). v2 only: the v1 endpoint grants what the registration
    /// lists.
    pub permissions: Vec<String>,
    /// Pre-fills the sign-in page (`login_hint`).
    pub login_hint: Option<String>,
    /// Ask the user to consent again even if they already did (`prompt=consent`).
    pub force_consent: bool,
}

impl Default for DelegatedOptions {
    fn default() -> Self {
        DelegatedOptions {
            permissions: DEFAULT_DELEGATED_PERMISSIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            login_hint: None,
            force_consent: false,
        }
    }
}

/// A sign-in in progress: the URL to open, and what the callback must match.
#[derive(Clone)]
pub struct AuthorizationRequest {
    /// Open this in a browser.
    pub url: String,
    /// Must come back unchanged in the callback (CSRF protection).
    pub state: String,
    /// The `redirect_uri` of the request (the code is redeemed with the same).
    pub redirect_uri: String,
    pub endpoint: TokenEndpoint,
    /// The scopes asked for (v2), space-separated; the resource (v1).
    pub scope: String,
    nonce: String,
    verifier: SecretString,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url)
            .field("redirect_uri", &self.redirect_uri)
            .field("endpoint", &self.endpoint)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequest {
    /// Whether `state` is the one this request sent (constant-time comparison).
    pub fn state_matches(&self, state: &str) -> bool {
        let (a, b) = (self.state.as_bytes(), state.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Who signed in, from the ID token (or, without one, the access token's claims).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedInUser {
    /// `preferred_username` (v2) / `upn` / `unique_name` (v1).
    pub upn: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The user's object id (`oid`).
    pub object_id: Option<String>,
    /// The tenant id (`tid`).
    pub tenant_id: Option<String>,
}

/// What a code or refresh-token redemption returned.
#[derive(Clone)]
pub struct DelegatedTokens {
    pub access: AccessToken,
    /// A new refresh token (each redemption returns one; the caller must keep the newest).
    pub refresh_token: Option<SecretString>,
    /// The scopes granted, space-separated, as Entra ID wrote them.
    pub scope: Option<String>,
    pub user: SignedInUser,
}

impl fmt::Debug for DelegatedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegatedTokens")
            .field("access", &self.access)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .field("user", &self.user)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct DelegatedTokenBody {
    #[serde(default)]
    refresh_token: Lenient<String>,
    #[serde(default)]
    id_token: Lenient<String>,
    #[serde(default)]
    scope: Lenient<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    b64().encode(bytes)
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    b64().encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn user_from_claims(c: &serde_json::Value) -> SignedInUser {
    let s = |k: &str| {
        c.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    SignedInUser {
        upn: s("preferred_username")
            .or_else(|| s("upn"))
            .or_else(|| s("unique_name")),
        email: s("email"),
        name: s("name"),
        object_id: s("oid"),
        tenant_id: s("tid"),
    }
}

/// Whether Entra ID refused a refresh token (or code) for good: the user must sign in again.
/// AADSTS70008/700082 (expired), 50173 (revoked), 700084 (SPA lifetime), 65001 (consent
/// withdrawn), 50076/50079 (MFA), 53003 (conditional access), 9002313 (unknown token),
/// 700005 (another app's token), or any other `invalid_grant` / `interaction_required`.
pub fn is_reconnect_needed(e: &Error) -> bool {
    if matches!(
        e.aadsts(),
        Some(70008 | 700082 | 700084 | 50173 | 65001 | 50076 | 50079 | 53003 | 9002313 | 700005)
    ) {
        return true;
    }
    matches!(
        e.code.as_deref(),
        Some("invalid_grant" | "interaction_required" | "consent_required")
    ) || e.message.contains(RECONNECT_MARK)
}

/// Present in every "reconnect needed" message (and how [`is_reconnect_needed`] recognises an
/// error already rewritten by a [`DelegatedSession`]).
const RECONNECT_MARK: &str = "must sign in again";

fn why_refused(e: &Error) -> &'static str {
    match e.aadsts() {
        Some(70008 | 700082) => {
            "the refresh token expired (unused for too long, or older than 90 days)"
        }
        Some(700084) => "the refresh token reached its lifetime",
        Some(50173) => {
            "the refresh token was revoked (password change, 'Revoke sessions', or an administrator)"
        }
        Some(65001) => "consent for the app's delegated permissions was withdrawn",
        Some(50076 | 50079) => "multi-factor authentication is now required",
        Some(53003) => "a Conditional Access policy blocks the sign-in",
        Some(9002313 | 700005) => "the stored refresh token is not valid for this app",
        _ => "Entra ID refused the refresh token",
    }
}

/// Where the token-endpoint answers go when a [`DelegatedSession`] refreshes: the store.
pub trait RefreshTokenSink: Send + Sync {
    /// A new refresh token was issued: persist it (sealed) before it is relied on.
    fn refreshed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// The refresh token was refused for good: record "reconnect needed" with `error.message`.
    fn reconnect_needed<'a>(&'a self, error: &'a Error) -> BoxFuture<'a, ()>;
}

struct SessionState {
    access: Option<AccessToken>,
    refresh: SecretString,
    failed: Option<Error>,
    refreshes: u64,
}

/// The delegated token source of one connected account (see the module docs).
pub struct DelegatedSession {
    app: GraphClient,
    account: String,
    reconnect_hint: String,
    options: DelegatedOptions,
    sink: Arc<dyn RefreshTokenSink>,
    state: tokio::sync::Mutex<SessionState>,
}

impl fmt::Debug for DelegatedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegatedSession")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl DelegatedSession {
    /// `app`: the connection's client (its token endpoint decides v1/v2; its credentials
    /// authenticate the app). `reconnect_hint`: the command that fixes a refused refresh
    /// token, e.g. `calgate account connect --connection NAME`.
    pub fn new(
        app: GraphClient,
        account: impl Into<String>,
        refresh_token: SecretString,
        options: DelegatedOptions,
        reconnect_hint: impl Into<String>,
        sink: Arc<dyn RefreshTokenSink>,
    ) -> DelegatedSession {
        DelegatedSession {
            app,
            account: account.into(),
            reconnect_hint: reconnect_hint.into(),
            options,
            sink,
            state: tokio::sync::Mutex::new(SessionState {
                access: None,
                refresh: refresh_token,
                failed: None,
                refreshes: 0,
            }),
        }
    }

    /// A session that starts with the access token of a fresh sign-in.
    pub async fn with_access_token(self, access: AccessToken) -> DelegatedSession {
        self.state.lock().await.access = Some(access);
        self
    }

    /// The account (UPN) this session signs in as.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// How many refreshes this session made.
    pub async fn refreshes(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    /// The account's access token: cached while more than 5 minutes are left, else refreshed
    /// with the refresh token (the new refresh token is handed to the sink first).
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        let mut st = self.state.lock().await;
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        let now = Timestamp::now();
        if let Some(t) = st
            .access
            .as_ref()
            .filter(|t| t.fresh_for(now, EARLY_REFRESH))
        {
            return Ok(t.clone());
        }
        match self.app.refresh_delegated(&st.refresh, &self.options).await {
            Ok(tokens) => {
                st.refreshes += 1;
                if let Some(rt) = tokens.refresh_token {
                    if let Err(e) = self.sink.refreshed(&rt, Timestamp::now()).await {
                        // The previous refresh token stays valid (Entra ID does not revoke it
                        // on use), so the account keeps working; the next refresh retries.
                        tracing::warn!(account = %self.account, error = %e, "could not store the new refresh token");
                    }
                    st.refresh = rt;
                }
                st.access = Some(tokens.access.clone());
                Ok(tokens.access)
            }
            Err(e) if is_reconnect_needed(&e) => {
                let mut r = e.clone();
                r.kind = ErrorKind::Authentication;
                r.message = format!(
                    "the connected account {} {RECONNECT_MARK}: {}{} — run `{}` and sign in as {}",
                    self.account,
                    why_refused(&e),
                    e.code
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default(),
                    self.reconnect_hint,
                    self.account
                );
                tracing::warn!(account = %self.account, code = ?e.code, "refresh token refused; reconnect needed");
                self.sink.reconnect_needed(&r).await;
                st.failed = Some(r.clone());
                st.access = None;
                Err(r)
            }
            Err(e) => {
                if e.kind == ErrorKind::Retryable
                    && let Some(t) = st
                        .access
                        .as_ref()
                        .filter(|t| t.fresh_for(now, Duration::from_secs(30)))
                {
                    return Ok(t.clone());
                }
                Err(e)
            }
        }
    }

    /// Drops `token` from the cache (Graph answered 401 to it): the next call refreshes.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut st = self.state.lock().await;
        if st
            .access
            .as_ref()
            .is_some_and(|t| t.secret() == token.secret())
        {
            st.access = None;
        }
    }
}

impl GraphClient {
    /// A client for the same connection whose every Graph request uses `session`'s delegated
    /// token (the signed-in user's own mailbox, at `/users/{upn}/…`).
    pub fn with_delegated(
        cfg: ConnectionConfig,
        shared: &crate::Shared,
        session: Arc<DelegatedSession>,
    ) -> Result<GraphClient, Error> {
        GraphClient::new(cfg, shared)?.into_delegated(session)
    }

    fn authorize_url(&self) -> Result<Url, Error> {
        let mut u = Url::parse(self.token_url())
            .map_err(|_| Error::config("the token endpoint is not a URL"))?;
        let path = u.path().to_owned();
        let Some(base) = path.strip_suffix("/token") else {
            return Err(Error::config("the token endpoint does not end in /token"));
        };
        u.set_path(&format!("{base}/authorize"));
        u.set_query(None);
        Ok(u)
    }

    /// The sign-in URL for a connected account (authorization code + PKCE S256, `state`,
    /// `nonce`, `response_mode=query`). `redirect_uri` must be registered on the app (for
    /// `http://localhost` / `http://127.0.0.1` Entra ignores the port).
    pub fn authorization_request(
        &self,
        redirect_uri: &str,
        options: &DelegatedOptions,
    ) -> Result<AuthorizationRequest, Error> {
        let endpoint = self.delegated_endpoint();
        let verifier = random_b64(32);
        let state = random_b64(16);
        let nonce = random_b64(16);
        let scope = self.delegated_scope(options);
        let mut url = self.authorize_url()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", self.client_id())
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_mode", "query");
            match endpoint {
                TokenEndpoint::V2 => q.append_pair("scope", &scope),
                TokenEndpoint::V1 => q.append_pair("resource", self.resource()),
            };
            q.append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(h) = options.login_hint.as_deref().filter(|h| !h.is_empty()) {
                q.append_pair("login_hint", h);
            }
            if options.force_consent {
                q.append_pair("prompt", "consent");
            }
        }
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state,
            redirect_uri: redirect_uri.to_owned(),
            endpoint,
            scope: match endpoint {
                TokenEndpoint::V2 => scope,
                TokenEndpoint::V1 => self.resource().to_owned(),
            },
            nonce,
            verifier: SecretString::new(verifier),
        })
    }

    fn delegated_scope(&self, options: &DelegatedOptions) -> String {
        let resource = self.resource().trim_end_matches('/');
        let mut v = vec![
            "openid".to_owned(),
            "profile".to_owned(),
            "offline_access".to_owned(),
        ];
        for p in &options.permissions {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            if p.contains("://") {
                v.push(p.to_owned());
            } else {
                v.push(format!("{resource}/{p}"));
            }
        }
        v.join(" ")
    }

    /// Redeems the code the browser brought back (with the request's PKCE verifier).
    pub async fn redeem_authorization_code(
        &self,
        request: &AuthorizationRequest,
        code: &str,
    ) -> Result<DelegatedTokens, Error> {
        if code.trim().is_empty() {
            return Err(Error::config("the sign-in returned an empty code"));
        }
        let mut grant = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.trim().to_owned()),
            ("redirect_uri", request.redirect_uri.clone()),
            ("code_verifier", request.verifier.expose().to_owned()),
        ];
        match self.delegated_endpoint() {
            TokenEndpoint::V2 => grant.push(("scope", request.scope.clone())),
            TokenEndpoint::V1 => grant.push(("resource", self.resource().to_owned())),
        }
        let (tokens, id_claims) = self.delegated_grant(grant).await?;
        // The ID token must be for this app and this sign-in.
        if let Some(idc) = &id_claims {
            let aud_ok = idc
                .get("aud")
                .and_then(|a| a.as_str())
                .is_some_and(|a| a.eq_ignore_ascii_case(self.client_id()));
            let nonce_ok = idc
                .get("nonce")
                .and_then(|n| n.as_str())
                .is_none_or(|n| n == request.nonce);
            if !aud_ok || !nonce_ok {
                return Err(Error::invalid_data(
                    "Entra ID returned an ID token for another app or sign-in: start `calgate account connect` again",
                ));
            }
        }
        Ok(tokens)
    }

    /// Redeems a refresh token. The answer carries a new refresh token: store it.
    pub async fn refresh_delegated(
        &self,
        refresh_token: &SecretString,
        options: &DelegatedOptions,
    ) -> Result<DelegatedTokens, Error> {
        let mut grant = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose().to_owned()),
        ];
        match self.delegated_endpoint() {
            TokenEndpoint::V2 => grant.push(("scope", self.delegated_scope(options))),
            TokenEndpoint::V1 => grant.push(("resource", self.resource().to_owned())),
        }
        Ok(self.delegated_grant(grant).await?.0)
    }

    /// One delegated grant at the token endpoint, the app authenticated with its credentials
    /// (newest valid first, falling back on a credential-specific rejection).
    async fn delegated_grant(
        &self,
        grant: Vec<(&'static str, String)>,
    ) -> Result<(DelegatedTokens, Option<serde_json::Value>), Error> {
        let req = self.token_request_for_delegated();
        let slots = self.credential_slots();
        let now = Timestamp::now();
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| {
            let s = &slots[i];
            (
                s.rejection().is_some() || s.cred.expires().is_some_and(|e| e <= now),
                i,
            )
        });
        if order.is_empty() {
            // A public client (no secret, no certificate).
            return self.delegated_post(&req, &grant, None).await;
        }
        let mut first: Option<Error> = None;
        for i in order {
            match self.delegated_post(&req, &grant, Some(&slots[i])).await {
                Ok(t) => return Ok(t),
                Err(e) if e.is_credential_specific() => {
                    first.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first.unwrap_or_else(|| Error::new(ErrorKind::Authentication, "no credential worked")))
    }

    async fn delegated_post(
        &self,
        req: &TokenRequest<'_>,
        grant: &[(&'static str, String)],
        slot: Option<&Arc<token::CredSlot>>,
    ) -> Result<(DelegatedTokens, Option<serde_json::Value>), Error> {
        let mut form: Vec<(&str, String)> = vec![("client_id", req.client_id.to_owned())];
        form.extend(grant.iter().cloned());
        if let Some(slot) = slot {
            form.extend(slot.client_authentication(req)?);
        }
        Metrics::inc(&req.metrics.token_requests);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (status, _, body) = match token::post_form(req, &form).await {
                Ok(x) => x,
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, "token request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                    continue;
                }
                Err(_) => return Err(unreachable(req)),
            };
            if (200..300).contains(&status) {
                let now = Timestamp::now();
                let access = token::parse_token_response(&body, now)?.without_roles();
                let extra: DelegatedTokenBody = serde_json::from_slice(&body).map_err(|_| {
                    Error::invalid_data("Entra ID sent a token response that is not JSON")
                })?;
                let id_claims = extra.id_token.non_empty().and_then(token::jwt_claims);
                let user = id_claims
                    .as_ref()
                    .map(user_from_claims)
                    .filter(|u| u.upn.is_some())
                    .or_else(|| {
                        token::jwt_claims(access.secret().expose()).map(|c| user_from_claims(&c))
                    })
                    .unwrap_or_default();
                return Ok((
                    DelegatedTokens {
                        refresh_token: extra
                            .refresh_token
                            .non_empty()
                            .map(|s| SecretString::new(s.to_owned())),
                        scope: extra.scope.non_empty().map(str::to_owned),
                        user,
                        access,
                    },
                    id_claims,
                ));
            }
            let parsed: EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let ctx = TokenContext {
                tenant: req.tenant,
                client_id: req.client_id,
                authority: req.authority,
                credential: slot.map(|s| s.cred.kind_name()).unwrap_or("credential"),
            };
            let mut e = error::from_entra(status, &parsed, &ctx);
            if e.kind == ErrorKind::Retryable && attempt < 3 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                continue;
            }
            if parsed.error.non_empty() == Some("invalid_grant") && e.kind == ErrorKind::Permission
            {
                // 65001 on a refresh: consent withdrawn — the user must sign in again.
                e.kind = ErrorKind::Authentication;
            }
            return Err(e);
        }
    }
}

fn unreachable(req: &TokenRequest<'_>) -> Error {
    Error::new(
        ErrorKind::Retryable,
        format!(
            "cannot reach Entra ID at {}: check the authority URL, DNS, proxy and firewall (outbound HTTPS to the login host)",
            req.authority
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cloud, Credential};

    fn client(endpoint: TokenEndpoint) -> GraphClient {
        let mut cfg = ConnectionConfig::new(
            &Cloud::global(),
            "contoso.onmicrosoft.com",
            "11111111-2222-3333-4444-555555555555",
            vec![Credential::secret("s3cret-value", None)],
        );
        cfg.token_endpoint = endpoint;
        let shared = crate::Shared::new().expect("shared");
        GraphClient::new(cfg, &shared).expect("client")
    }

    fn query(url: &str) -> std::collections::HashMap<String, String> {
        Url::parse(url)
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn v2_authorization_url_has_pkce_scopes_and_state() {
        let c = client(TokenEndpoint::V2);
        let r = c
            .authorization_request(
                "http://127.0.0.1:5123/callback",
                &DelegatedOptions::default(),
            )
            .expect("request");
        assert!(
            r.url.starts_with(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
            ),
            "{}",
            r.url
        );
        let q = query(&r.url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge(r.verifier.expose()));
        assert_eq!(q["state"], r.state);
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5123/callback");
        assert_eq!(
            q["scope"],
            "openid profile offline_access https://graph.microsoft.com/Calendars.ReadWrite"
        );
        assert!(!q.contains_key("resource"));
        assert!(r.verifier.expose().len() >= 43);
        assert!(r.state_matches(&r.state) && !r.state_matches("other"));
        assert!(!format!("{r:?}").contains(r.verifier.expose()));
        // Fresh verifier and state every time.
        let r2 = c
            .authorization_request(
                "http://127.0.0.1:5123/callback",
                &DelegatedOptions::default(),
            )
            .expect("request");
        assert_ne!(r.state, r2.state);
        assert_ne!(r.verifier.expose(), r2.verifier.expose());
    }

    #[test]
    fn v1_authorization_url_uses_resource_not_scope() {
        let c = client(TokenEndpoint::V1);
        let r = c
            .authorization_request("http://localhost:9/cb", &DelegatedOptions::default())
            .expect("request");
        assert!(
            r.url.starts_with(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/authorize?"
            ),
            "{}",
            r.url
        );
        let q = query(&r.url);
        assert_eq!(q["resource"], "https://graph.microsoft.com");
        assert!(!q.contains_key("scope"));
    }

    #[test]
    fn reconnect_errors_are_recognised() {
        let cases: [(u16, &[u8], bool); 3] = [
            (
                400,
                br#"{"error":"invalid_grant","error_description":"AADSTS70008: expired","error_codes":[70008]}"#,
                true,
            ),
            (
                400,
                br#"{"error":"invalid_grant","error_description":"AADSTS50173: revoked","error_codes":[50173]}"#,
                true,
            ),
            (
                401,
                br#"{"error":"invalid_client","error_description":"AADSTS7000215: bad","error_codes":[7000215]}"#,
                false,
            ),
        ];
        for (status, body, reconnect) in cases {
            let e = crate::classify_entra_error(status, body, "t", "c");
            assert_eq!(is_reconnect_needed(&e), reconnect, "{e:?}");
        }
    }
}
