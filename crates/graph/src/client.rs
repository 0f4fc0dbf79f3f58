//! `Shared` (HTTP client, token caches, metrics, retry policy) and `GraphClient` (one per
//! connection): request execution with the mailbox gate, retries and classification, and the
//! Graph operations calgate uses.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calgate_core::{Instance, Person, Sensitivity, ShowAs};
use jiff::Timestamp;
use jiff::civil::Date;
use rand::Rng as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{
    ConnectionConfig, Credential, TokenEndpoint, graph_resource_for, validate_endpoint,
};
use crate::convert::{self, DeltaPage, MailboxSettings, Room, RoomList, UserInfo};
use crate::error::{self, Error, ErrorKind, GraphContext};
use crate::limiter::{self, MAILBOX_CONCURRENCY, Metrics, MetricsSnapshot};
use crate::token::{self, AccessToken, CredSlot, TokenRequest};
use crate::wire;

/// Graph's limit of requests in one `$batch`.
pub const BATCH_LIMIT: usize = 20;

/// Retry behaviour for 429 / 503 / 504 and network failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Total time one request may spend waiting between attempts.
    pub max_total_wait: Duration,
    /// First backoff when the service gives no `Retry-After`; doubles per attempt, with jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error goes to the caller.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_total_wait: Duration::from_secs(120),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_backoff);
        // "Equal jitter": between half and all of the exponential step.
        let half = cap / 2;
        let jitter =
            rand::rng().random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// Parses `Retry-After`: delay-seconds, integer or fractional (`2.128`), or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && (0.0..1.0e7).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let d = at.duration_since(Timestamp::now());
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// What every client in the process shares: the HTTP client, token caches, metrics, retry
/// policy. Make one (per process, or per benchmark run) and pass it to every
/// [`GraphClient::new`]. The per-mailbox concurrency limit is process-wide regardless.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    http: reqwest::Client,
    with_ca: Mutex<HashMap<String, reqwest::Client>>,
    metrics: Metrics,
    tokens: Mutex<HashMap<String, Arc<CredSlot>>>,
    retry: RetryPolicy,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("metrics", &self.inner.metrics.snapshot())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("calgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(100))
        .pool_idle_timeout(Duration::from_secs(60))
}

impl Shared {
    pub fn new() -> Result<Shared, Error> {
        Shared::with_retry_policy(RetryPolicy::default())
    }

    pub fn with_retry_policy(retry: RetryPolicy) -> Result<Shared, Error> {
        let http = http_builder()
            .build()
            .map_err(|e| Error::config(format!("cannot set up HTTPS ({e})")))?;
        Ok(Shared {
            inner: Arc::new(SharedInner {
                http,
                with_ca: Mutex::new(HashMap::new()),
                metrics: Metrics::default(),
                tokens: Mutex::new(HashMap::new()),
                retry,
            }),
        })
    }

    /// Counters of every client made from this `Shared`.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The shared HTTP client, or one that also trusts `ca_pem` (one per distinct CA).
    fn http_for(&self, ca_pem: Option<&str>) -> Result<reqwest::Client, Error> {
        let Some(pem) = ca_pem.filter(|p| !p.trim().is_empty()) else {
            return Ok(self.inner.http.clone());
        };
        let mut map = self.inner.with_ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(pem) {
            return Ok(c.clone());
        }
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            Error::config(format!("the extra root CA is not a PEM certificate ({e}): give the CA's -----BEGIN CERTIFICATE----- block"))
        })?;
        if certs.is_empty() {
            return Err(Error::config("the extra root CA PEM holds no certificate"));
        }
        let client = http_builder().tls_certs_merge(certs).build().map_err(|e| {
            Error::config(format!("cannot set up HTTPS with the extra root CA ({e})"))
        })?;
        map.insert(pem.to_owned(), client.clone());
        Ok(client)
    }

    fn slot(
        &self,
        token_url: &Url,
        client_id: &str,
        cred: &Credential,
    ) -> Result<Arc<CredSlot>, Error> {
        let key = format!("{token_url}|{client_id}|{}", cred.fingerprint());
        let mut map = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return Ok(s.clone());
        }
        let slot = Arc::new(CredSlot::new(cred.clone())?);
        map.insert(key, slot.clone());
        Ok(slot)
    }
}

/// Which page of a delta round to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaRequest {
    /// A new round over `[start, end)`.
    Start {
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    },
    /// A `@odata.nextLink` or `@odata.deltaLink`, followed as is.
    Follow(String),
    /// A link followed with `Prefer: odata.maxpagesize` again, as Microsoft's samples send it on
    /// every request of a round (a service may otherwise fall back to its default of 10).
    FollowPaged { link: String, page_size: u32 },
}

/// An event calgate writes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub subject: Option<String>,
    /// Plain-text body.
    pub body_text: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// IANA zone the event is scheduled in (sent to Graph as its Windows name).
    pub time_zone: String,
    /// All-day: the dates (end exclusive); `start`/`end` are then ignored.
    pub all_day: Option<(Date, Date)>,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub location: Option<String>,
    pub attendees: Vec<Person>,
    /// Single-value extended properties: (`"String {guid} Name X"`, value).
    pub extended_properties: Vec<(String, String)>,
}

/// One request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// Unique within the call.
    pub id: String,
    pub method: Method,
    /// Relative to the Graph base, e.g. `/users/a@b.c/events/AAMk…`.
    pub url: String,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub depends_on: Vec<String>,
}

impl BatchRequest {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> BatchRequest {
        BatchRequest {
            id: id.into(),
            method: Method::GET,
            url: url.into(),
            body: None,
            headers: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    /// The mailbox a `/users/{x}/…` URL addresses, lowercased.
    pub fn mailbox(&self) -> Option<String> {
        let path = self.url.trim_start_matches('/');
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut it = path.split('/');
        let first = it.next()?;
        if !first.eq_ignore_ascii_case("users") {
            return None;
        }
        let m = it.next().filter(|m| !m.is_empty())?;
        Some(percent_decode(m).to_ascii_lowercase())
    }
}

/// The answer to one request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl BatchResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request to execute.
struct Req {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    prefer: Vec<String>,
    /// (gate key, slots) to hold while in flight.
    gates: Vec<(String, u32)>,
    mailbox: Option<String>,
    idempotent: bool,
    write: bool,
}

/// A successful response.
struct Resp {
    status: u16,
    body: Vec<u8>,
}

/// The Graph + Entra ID client of one connection. Cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    shared: Shared,
    http: reqwest::Client,
    tenant: String,
    client_id: String,
    authority: String,
    graph_base: Url,
    graph_origin: String,
    token_url: Url,
    endpoint: TokenEndpoint,
    resource: String,
    slots: Vec<Arc<CredSlot>>,
    /// calgate's ids of the credentials behind `slots` (empty: not a stored connection).
    credential_ids: Vec<calgate_core::CredentialId>,
    active: AtomicUsize,
    /// A connected account's token source (`delegated.rs`); `None`: app-only tokens.
    delegated: Option<Arc<crate::delegated::DelegatedSession>>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("GraphClient")
            .field("tenant", &i.tenant)
            .field("client_id", &i.client_id)
            .field("authority", &i.authority)
            .field("graph", &i.graph_base.as_str())
            .field("credentials", &i.slots.len())
            .finish_non_exhaustive()
    }
}

/// The status of one credential of a connection (for `connection list` / `doctor`).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialStatus {
    /// Position in the connection's list.
    pub index: usize,
    pub kind: &'static str,
    pub expires: Option<Timestamp>,
    /// Whether this is the credential in use.
    pub active: bool,
    /// Why Entra ID rejected it recently, if it did.
    pub rejected: Option<Error>,
}

impl GraphClient {
    /// Validates `cfg` (URLs: https, or http to loopback only; credentials readable) and
    /// makes a client that shares `shared`'s HTTP client, token caches and metrics.
    pub fn new(cfg: ConnectionConfig, shared: &Shared) -> Result<GraphClient, Error> {
        let tenant = cfg.tenant.trim().to_owned();
        if tenant.is_empty() || tenant.contains(['/', '?', '#', ' ']) {
            return Err(Error::config(format!(
                "'{tenant}' is not a tenant: use the Directory (tenant) ID from Entra ID › Overview"
            )));
        }
        let client_id = cfg.client_id.trim().to_owned();
        if client_id.is_empty() {
            return Err(Error::config(
                "the Application (client) ID is empty: copy it from Entra ID › App registrations › Overview",
            ));
        }
        let authority = validate_endpoint("authority", &cfg.authority)?;
        let mut graph_base = validate_endpoint("Graph URL", &cfg.graph_url)?;
        graph_base.set_query(None);
        graph_base.set_fragment(None);
        let graph_origin = graph_base.origin().ascii_serialization();
        let mut token_url = authority.clone();
        {
            let mut segs = token_url
                .path_segments_mut()
                .map_err(|_| Error::config("the authority URL cannot hold a path"))?;
            segs.pop_if_empty().push(&tenant).push("oauth2");
            if cfg.endpoint_is_v2() {
                segs.push("v2.0");
            }
            segs.push("token");
        }
        let resource = cfg
            .graph_resource
            .clone()
            .unwrap_or_else(|| graph_resource_for(&graph_base));
        let slots = cfg
            .credentials
            .iter()
            .map(|c| shared.slot(&token_url, &client_id, c))
            .collect::<Result<Vec<_>, _>>()?;
        let http = shared.http_for(cfg.extra_root_ca_pem.as_deref())?;
        Ok(GraphClient {
            inner: Arc::new(ClientInner {
                shared: shared.clone(),
                http,
                tenant,
                client_id,
                authority: authority.as_str().trim_end_matches('/').to_owned(),
                graph_base,
                graph_origin,
                token_url,
                endpoint: cfg.token_endpoint,
                resource,
                slots,
                credential_ids: cfg.credential_ids.clone(),
                active: AtomicUsize::new(0),
                delegated: None,
            }),
        })
    }

    pub fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.shared.metrics()
    }

    pub fn token_url(&self) -> &str {
        self.inner.token_url.as_str()
    }

    fn token_request(&self) -> TokenRequest<'_> {
        let i = &self.inner;
        TokenRequest {
            http: &i.http,
            metrics: &i.shared.inner.metrics,
            token_url: &i.token_url,
            endpoint: i.endpoint,
            resource: &i.resource,
            tenant: &i.tenant,
            client_id: &i.client_id,
            authority: &i.authority,
        }
    }

    /// An app-only access token for Graph: cached, refreshed when < 5 minutes are left, one
    /// refresh in flight per credential; the last credential that worked first, falling back
    /// to the next on a rejected or expired secret/certificate.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        if let Some(d) = &self.inner.delegated {
            return d.access_token().await;
        }
        let req = self.token_request();
        token::acquire(&req, &self.inner.slots, &self.inner.active)
            .await
            .map(|(_, t)| t)
    }

    /// The stored credentials Entra ID recently rejected as expired (AADSTS7000222), by
    /// calgate's id (a client made from a stored connection only).
    pub fn expired_credentials(&self) -> Vec<calgate_core::CredentialId> {
        if self.inner.credential_ids.len() != self.inner.slots.len() {
            return Vec::new();
        }
        self.credential_statuses()
            .iter()
            .zip(&self.inner.credential_ids)
            .filter(|(s, _)| {
                s.rejected
                    .as_ref()
                    .is_some_and(|e| e.aadsts() == Some(crate::error::AADSTS_SECRET_EXPIRED))
            })
            .map(|(_, id)| *id)
            .collect()
    }

    /// Each credential's state.
    pub fn credential_statuses(&self) -> Vec<CredentialStatus> {
        use std::sync::atomic::Ordering;
        let active = self.inner.active.load(Ordering::Relaxed);
        self.inner
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| CredentialStatus {
                index: i,
                kind: s.cred.kind_name(),
                expires: s.cred.expires(),
                active: i == active,
                rejected: s.rejection(),
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // URLs
    // -----------------------------------------------------------------------------------------

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, Error> {
        let mut u = self.inner.graph_base.clone();
        {
            let mut segs = u
                .path_segments_mut()
                .map_err(|_| Error::config("the Graph URL cannot hold a path"))?;
            segs.pop_if_empty();
            for s in segments {
                segs.push(s);
            }
        }
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect();
            u.set_query(Some(&q.join("&")));
        }
        Ok(u)
    }

    /// A link the service sent (nextLink, deltaLink): followed as is, but only on the Graph
    /// host — the access token never goes anywhere else.
    fn link(&self, link: &str) -> Result<Url, Error> {
        let u = Url::parse(link.trim()).map_err(|_| {
            Error::invalid_data(
                "Graph sent a paging link that is not a URL (a truncated or damaged delta link?)",
            )
        })?;
        if u.origin().ascii_serialization() != self.inner.graph_origin {
            return Err(Error::invalid_data(format!(
                "Graph sent a paging link to another host ({}); calgate only sends its token to {}",
                u.host_str().unwrap_or("?"),
                self.inner.graph_origin
            )));
        }
        Ok(u)
    }

    fn gate_key(&self, mailbox: &str) -> String {
        limiter::key(&self.inner.graph_origin, mailbox)
    }

    fn req(&self, method: Method, url: Url, mailbox: Option<&str>) -> Req {
        let idempotent = method != Method::POST;
        let write = method != Method::GET;
        Req {
            gates: mailbox
                .map(|m| vec![(self.gate_key(m), 1)])
                .unwrap_or_default(),
            mailbox: mailbox.map(str::to_owned),
            method,
            url,
            body: None,
            prefer: vec!["outlook.timezone=\"UTC\"".to_owned()],
            idempotent,
            write,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Execution
    // -----------------------------------------------------------------------------------------

    async fn execute(&self, req: Req) -> Result<Resp, Error> {
        let shared = &self.inner.shared.inner;
        let policy = &shared.retry;
        let metrics = &shared.metrics;
        let limiter = limiter::limiter();
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let token = self.access_token().await?;
            // Held until the answer is read AND any Retry-After it carries is recorded in the
            // mailbox's gate: releasing the slot earlier would let another task slip a request
            // in before the "not before" instant is known.
            let mut permits = Some(limiter.acquire(&req.gates, metrics).await);
            let mut rb = self
                .inner
                .http
                .request(req.method.clone(), req.url.clone())
                .bearer_auth(token.secret().expose())
                .header("client-request-id", uuid::Uuid::new_v4().to_string())
                .header(reqwest::header::ACCEPT, "application/json");
            for p in &req.prefer {
                rb = rb.header("Prefer", p);
            }
            if let Some(b) = &req.body {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            Metrics::inc(&metrics.requests_sent);
            let sent = rb.send().await;
            let outcome = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    resp.bytes().await.map(|b| (status, headers, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            let (status, headers, body) = match outcome {
                Ok(x) => x,
                Err(e) => {
                    drop(permits.take());
                    let wait = policy.backoff(attempt);
                    if req.idempotent
                        && attempt < policy.max_attempts
                        && waited + wait <= policy.max_total_wait
                    {
                        tracing::debug!(error = %e, attempt, "Graph request failed; retrying");
                        Metrics::inc(&metrics.retries);
                        waited += wait;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let why = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "connection broken"
                    };
                    return Err(Error::new(
                        ErrorKind::Retryable,
                        format!(
                            "cannot reach Microsoft Graph at {} ({why}): check DNS, proxy and firewall (outbound HTTPS); calgate will try again",
                            self.inner.graph_origin
                        ),
                    ));
                }
            };
            if (200..300).contains(&status) {
                return Ok(Resp { status, body });
            }
            let ra = retry_after(&headers);
            if matches!(status, 429 | 503 | 504) {
                if status == 429 {
                    Metrics::inc(&metrics.throttled);
                }
                let until =
                    Instant::now() + ra.unwrap_or(Duration::ZERO) + Duration::from_millis(5);
                for (k, _) in &req.gates {
                    if ra.is_some() {
                        limiter.gate(k).hold_until(until);
                    } else {
                        limiter.gate(k).throttled(until);
                    }
                }
                drop(permits.take());
                let wait = ra.unwrap_or_else(|| policy.backoff(attempt));
                let give_up = attempt >= policy.max_attempts
                    || waited + wait > policy.max_total_wait
                    || ra.is_some_and(|r| r > policy.max_retry_after);
                if !give_up {
                    tracing::debug!(
                        status,
                        ?wait,
                        attempt,
                        mailbox = req.mailbox.as_deref(),
                        "throttled; waiting"
                    );
                    Metrics::inc(&metrics.retries);
                    waited += wait;
                    // Mailbox requests also wait in the gate; this covers the others.
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            drop(permits.take());
            let graph_err = error::parse_graph_error(&body);
            if status == 401 && !reauthenticated {
                // Expired or revoked token: get a new one once.
                reauthenticated = true;
                for s in &self.inner.slots {
                    s.invalidate(&token).await;
                }
                if let Some(d) = &self.inner.delegated {
                    d.invalidate(&token).await;
                }
                Metrics::inc(&metrics.retries);
                continue;
            }
            let location = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let ctx = GraphContext {
                mailbox: req.mailbox.clone(),
                roles: token.roles().map(<[String]>::to_vec),
                write: req.write,
                client_id: self.inner.client_id.clone(),
            };
            return Err(error::from_graph(
                status,
                graph_err.as_ref(),
                ra,
                location,
                &ctx,
            ));
        }
    }

    async fn get_json(&self, url: Url, mailbox: Option<&str>) -> Result<Vec<u8>, Error> {
        Ok(self
            .execute(self.req(Method::GET, url, mailbox))
            .await?
            .body)
    }

    // -----------------------------------------------------------------------------------------
    // Calendars
    // -----------------------------------------------------------------------------------------

    /// One page of a `calendarView/delta` round.
    pub async fn delta(&self, mailbox: &str, request: DeltaRequest) -> Result<DeltaPage, Error> {
        let (url, page_size) = match &request {
            DeltaRequest::Start {
                start,
                end,
                page_size,
            } => {
                if end <= start {
                    return Err(Error::config("the sync window is empty (end before start)"));
                }
                let (s, e) = (start.to_string(), end.to_string());
                let url = self.url(
                    &["users", mailbox, "calendarView", "delta"],
                    &[("startDateTime", &s), ("endDateTime", &e)],
                )?;
                (url, Some(*page_size))
            }
            DeltaRequest::Follow(link) => (self.link(link)?, None),
            DeltaRequest::FollowPaged { link, page_size } => (self.link(link)?, Some(*page_size)),
        };
        let mut req = self.req(Method::GET, url, Some(mailbox));
        if let Some(n) = page_size.filter(|n| *n > 0) {
            req.prefer.push(format!("odata.maxpagesize={n}"));
        }
        let body = self.execute(req).await?.body;
        convert::parse_delta_page(&body, mailbox)
    }

    /// A whole delta round from `request` to its deltaLink: (all items, deltaLink).
    pub async fn delta_round(
        &self,
        mailbox: &str,
        request: DeltaRequest,
    ) -> Result<(Vec<convert::DeltaItem>, String), Error> {
        let mut items = Vec::new();
        let page_size = match &request {
            DeltaRequest::Start { page_size, .. } | DeltaRequest::FollowPaged { page_size, .. } => {
                Some(*page_size)
            }
            DeltaRequest::Follow(_) => None,
        };
        let mut next = request;
        loop {
            let page = self.delta(mailbox, next).await?;
            items.extend(page.items);
            match page.next {
                convert::DeltaNext::NextLink(link) => {
                    next = match page_size {
                        Some(page_size) => DeltaRequest::FollowPaged { link, page_size },
                        None => DeltaRequest::Follow(link),
                    }
                }
                convert::DeltaNext::DeltaLink(l) => return Ok((items, l)),
            }
        }
    }

    async fn view_pages(&self, mailbox: &str, first: Url) -> Result<Vec<Instance>, Error> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..100_000 {
            let body = self.get_json(url, Some(mailbox)).await?;
            let (items, next) = convert::parse_view_page(&body, mailbox)?;
            out.extend(items);
            match next {
                Some(n) => url = self.link(&n)?,
                None => return Ok(out),
            }
        }
        Err(Error::invalid_data(
            "Graph kept sending next links (over 100,000 pages)",
        ))
    }

    /// Every instance (occurrences, exceptions, single events) overlapping `[start, end)`,
    /// all pages.
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        self.calendar_view_paged(mailbox, start, end, 100).await
    }

    /// [`GraphClient::calendar_view`] with `page_size` instances per request (`$top`).
    pub async fn calendar_view_paged(
        &self,
        mailbox: &str,
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    ) -> Result<Vec<Instance>, Error> {
        let (s, e, n) = (
            start.to_string(),
            end.to_string(),
            page_size.clamp(1, 1000).to_string(),
        );
        let url = self.url(
            &["users", mailbox, "calendarView"],
            &[("startDateTime", &s), ("endDateTime", &e), ("$top", &n)],
        )?;
        self.view_pages(mailbox, url).await
    }

    /// The occurrences and exceptions of a series in `[start, end)`.
    pub async fn instances(
        &self,
        mailbox: &str,
        series_master_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        let (s, e) = (start.to_string(), end.to_string());
        let url = self.url(
            &["users", mailbox, "events", series_master_id, "instances"],
            &[("startDateTime", &s), ("endDateTime", &e), ("$top", "100")],
        )?;
        self.view_pages(mailbox, url).await
    }

    pub async fn get_event(&self, mailbox: &str, id: &str) -> Result<Instance, Error> {
        let url = self.url(&["users", mailbox, "events", id], &[])?;
        let body = self.get_json(url, Some(mailbox)).await?;
        convert::parse_event(&body, mailbox)
    }

    /// Creates an event; `transaction_id` makes a retried create idempotent (Graph answers a
    /// repeated create with the event it made the first time).
    pub async fn create_event(
        &self,
        mailbox: &str,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<Instance, Error> {
        let mut body = draft_json(draft);
        if let Value::Object(m) = &mut body {
            m.insert("transactionId".into(), json!(transaction_id));
        }
        let url = self.url(&["users", mailbox, "events"], &[])?;
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(body.to_string().into_bytes());
        // Safe to repeat: the transactionId de-duplicates.
        req.idempotent = !transaction_id.is_empty();
        let resp = self.execute(req).await?;
        convert::parse_event(&resp.body, mailbox)
    }

    pub async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        draft: &EventDraft,
    ) -> Result<Instance, Error> {
        let url = self.url(&["users", mailbox, "events", id], &[])?;
        let mut req = self.req(Method::PATCH, url, Some(mailbox));
        req.body = Some(draft_json(draft).to_string().into_bytes());
        let resp = self.execute(req).await?;
        convert::parse_event(&resp.body, mailbox)
    }

    pub async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let url = self.url(&["users", mailbox, "events", id], &[])?;
        let resp = self
            .execute(self.req(Method::DELETE, url, Some(mailbox)))
            .await?;
        tracing::debug!(status = resp.status, "event deleted");
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Directory and places
    // -----------------------------------------------------------------------------------------

    pub async fn get_user(&self, mailbox: &str) -> Result<UserInfo, Error> {
        let url = self.url(
            &["users", mailbox],
            &[(
                "$select",
                "id,displayName,mail,userPrincipalName,accountEnabled",
            )],
        )?;
        convert::parse_user(&self.get_json(url, Some(mailbox)).await?)
    }

    pub async fn mailbox_settings(&self, mailbox: &str) -> Result<MailboxSettings, Error> {
        let url = self.url(&["users", mailbox, "mailboxSettings"], &[])?;
        convert::parse_mailbox_settings(&self.get_json(url, Some(mailbox)).await?)
    }

    async fn places(&self, first: Url) -> Result<Vec<wire::Place>, Error> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..10_000 {
            let body = self.get_json(url, None).await?;
            let (items, next, _) = convert::parse_page(&body, "places")?;
            out.extend(
                items
                    .into_iter()
                    .filter_map(|v| serde_json::from_value::<wire::Place>(v).ok()),
            );
            match next.filter(|n| !n.trim().is_empty()) {
                Some(n) => url = self.link(&n)?,
                None => return Ok(out),
            }
        }
        Err(Error::invalid_data(
            "Graph kept sending next links for places",
        ))
    }

    pub async fn list_room_lists(&self) -> Result<Vec<RoomList>, Error> {
        let url = self.url(&["places", "microsoft.graph.roomlist"], &[])?;
        Ok(self
            .places(url)
            .await?
            .into_iter()
            .filter_map(convert::place_to_room_list)
            .collect())
    }

    pub async fn list_rooms(&self) -> Result<Vec<Room>, Error> {
        let url = self.url(&["places", "microsoft.graph.room"], &[])?;
        Ok(self
            .places(url)
            .await?
            .into_iter()
            .filter_map(convert::place_to_room)
            .collect())
    }

    /// The rooms of a room list, given by the list's email address.
    pub async fn rooms_in_list(&self, room_list_email: &str) -> Result<Vec<Room>, Error> {
        let url = self.url(
            &[
                "places",
                room_list_email,
                "microsoft.graph.roomlist",
                "rooms",
            ],
            &[],
        )?;
        Ok(self
            .places(url)
            .await?
            .into_iter()
            .filter_map(convert::place_to_room)
            .collect())
    }

    // -----------------------------------------------------------------------------------------
    // $batch
    // -----------------------------------------------------------------------------------------

    /// Runs `requests` as JSON batches of at most 20, in order. Throttled items (429/503/504)
    /// are sent again after their `Retry-After` (and their mailbox holds until then), up to the
    /// retry policy's attempts; the rest come back as they are, one [`BatchResponse`] per
    /// request, in request order. `dependsOn` must stay within a batch of 20.
    pub async fn batch(&self, requests: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, Error> {
        let mut seen = std::collections::HashSet::new();
        for r in &requests {
            if !seen.insert(r.id.clone()) {
                return Err(Error::config(format!(
                    "batch request id '{}' is used twice",
                    r.id
                )));
            }
        }
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(BATCH_LIMIT) {
            let ids: std::collections::HashSet<&str> =
                chunk.iter().map(|r| r.id.as_str()).collect();
            if let Some(r) = chunk
                .iter()
                .find(|r| r.depends_on.iter().any(|d| !ids.contains(d.as_str())))
            {
                return Err(Error::config(format!(
                    "batch request '{}' depends on a request outside its batch of {BATCH_LIMIT}",
                    r.id
                )));
            }
            out.extend(self.batch_chunk(chunk).await?);
        }
        Ok(out)
    }

    async fn batch_chunk(&self, chunk: &[BatchRequest]) -> Result<Vec<BatchResponse>, Error> {
        let shared = &self.inner.shared.inner;
        let policy = &shared.retry;
        let metrics = &shared.metrics;
        let mut done: HashMap<String, BatchResponse> = HashMap::new();
        let mut pending: Vec<&BatchRequest> = chunk.iter().collect();
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        while !pending.is_empty() {
            attempt += 1;
            let pending_ids: std::collections::HashSet<&str> =
                pending.iter().map(|r| r.id.as_str()).collect();
            let items: Vec<wire::BatchRequestItem<'_>> = pending
                .iter()
                .map(|r| {
                    let mut headers = serde_json::Map::new();
                    for (k, v) in &r.headers {
                        headers.insert(k.clone(), json!(v));
                    }
                    if r.body.is_some()
                        && !r
                            .headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        headers.insert("Content-Type".into(), json!("application/json"));
                    }
                    wire::BatchRequestItem {
                        id: &r.id,
                        method: r.method.as_str(),
                        url: &r.url,
                        headers: (!headers.is_empty()).then_some(headers),
                        body: r.body.as_ref(),
                        depends_on: r
                            .depends_on
                            .iter()
                            .map(String::as_str)
                            .filter(|d| pending_ids.contains(d))
                            .collect(),
                    }
                })
                .collect();
            let body = serde_json::to_vec(&wire::BatchRequestBody { requests: items })
                .map_err(|e| Error::config(format!("cannot encode the batch ({e})")))?;
            // Gate: per mailbox, as many slots as its items (Outlook runs at most 4 at once).
            let mut per_mailbox: HashMap<String, u32> = HashMap::new();
            for r in &pending {
                if let Some(m) = r.mailbox() {
                    *per_mailbox.entry(self.gate_key(&m)).or_default() += 1;
                }
            }
            let url = self.url(&["$batch"], &[])?;
            let mut req = self.req(Method::POST, url, None);
            req.gates = per_mailbox
                .into_iter()
                .map(|(k, n)| (k, n.min(MAILBOX_CONCURRENCY)))
                .collect();
            req.body = Some(body);
            req.idempotent = pending.iter().all(|r| r.method == Method::GET);
            req.write = !req.idempotent;
            let resp = self.execute(req).await?;
            let parsed: wire::BatchResponseBody =
                serde_json::from_slice(&resp.body).map_err(|e| {
                    Error::invalid_data(format!(
                        "Graph sent a $batch answer that is not JSON ({e})"
                    ))
                })?;
            let responses = parsed.responses.ok_or_else(|| {
                Error::invalid_data("Graph sent a $batch answer without 'responses'")
            })?;
            let mut got: HashMap<String, BatchResponse> = HashMap::new();
            for r in responses.into_iter().filter_map(|r| r.into_inner()) {
                let (Some(id), Some(status)) = (r.id.into_inner(), r.status.into_inner()) else {
                    return Err(Error::invalid_data(
                        "Graph sent a $batch response without id or status",
                    ));
                };
                let headers = r
                    .headers
                    .into_inner()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect();
                got.insert(
                    id.clone(),
                    BatchResponse {
                        id,
                        status,
                        headers,
                        body: r.body,
                    },
                );
            }
            if let Some(missing) = pending.iter().find(|r| !got.contains_key(&r.id)) {
                return Err(Error::invalid_data(format!(
                    "Graph's $batch answer has no response for request '{}'",
                    missing.id
                )));
            }
            let mut again: Vec<&BatchRequest> = Vec::new();
            let mut wait = Duration::ZERO;
            for r in &pending {
                let Some(resp) = got.remove(&r.id) else {
                    continue;
                };
                let throttled = matches!(resp.status, 429 | 503 | 504);
                if resp.status == 429 {
                    Metrics::inc(&metrics.throttled);
                }
                if throttled {
                    let ra = resp
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                        .and_then(|(_, v)| parse_retry_after(v));
                    if let (Some(ra), Some(m)) = (ra, r.mailbox()) {
                        limiter::limiter()
                            .gate(&self.gate_key(&m))
                            .hold_until(Instant::now() + ra + Duration::from_millis(5));
                    }
                    wait = wait.max(ra.unwrap_or_else(|| policy.backoff(attempt)));
                    again.push(r);
                } else if resp.status == 424 && !r.depends_on.is_empty() {
                    again.push(r);
                }
                done.insert(r.id.clone(), resp);
            }
            let only_dependents = again
                .iter()
                .all(|r| done.get(&r.id).is_some_and(|d| d.status == 424));
            if again.is_empty()
                || only_dependents
                || attempt >= policy.max_attempts
                || waited + wait > policy.max_total_wait
                || wait > policy.max_retry_after
            {
                break;
            }
            for _ in &again {
                Metrics::inc(&metrics.retries);
            }
            waited += wait;
            tokio::time::sleep(wait).await;
            pending = again;
        }
        Ok(chunk.iter().filter_map(|r| done.remove(&r.id)).collect())
    }

    /// Classifies a failed batch item like a direct request.
    pub fn batch_error(&self, request: &BatchRequest, response: &BatchResponse) -> Option<Error> {
        if response.is_success() {
            return None;
        }
        let err = response
            .body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(|e| serde_json::from_value::<wire::GraphError>(e.clone()).ok());
        let ra = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, v)| parse_retry_after(v));
        let location = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone());
        let ctx = GraphContext {
            mailbox: request.mailbox(),
            roles: None,
            write: request.method != Method::GET,
            client_id: self.inner.client_id.clone(),
        };
        Some(error::from_graph(
            response.status,
            err.as_ref(),
            ra,
            location,
            &ctx,
        ))
    }
}

// Additive, for calgate-admin's `mailbox verify --calendar ID` (kept apart from the methods
// above so concurrent edits do not collide).
impl GraphClient {
    /// Every instance overlapping `[start, end)` in the calendar `calendar_id` of `mailbox`
    /// (any calendar, not only the default one), all pages.
    pub async fn calendar_view_in(
        &self,
        mailbox: &str,
        calendar_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        let (s, e) = (start.to_string(), end.to_string());
        let url = self.url(
            &["users", mailbox, "calendars", calendar_id, "calendarView"],
            &[("startDateTime", &s), ("endDateTime", &e), ("$top", "100")],
        )?;
        self.view_pages(mailbox, url).await
    }

    /// [`GraphClient::create_event`] in the calendar `calendar_id` of `mailbox`.
    pub async fn create_event_in(
        &self,
        mailbox: &str,
        calendar_id: &str,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<Instance, Error> {
        let mut body = draft_json(draft);
        if let Value::Object(m) = &mut body {
            m.insert("transactionId".into(), json!(transaction_id));
        }
        let url = self.url(&["users", mailbox, "calendars", calendar_id, "events"], &[])?;
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(body.to_string().into_bytes());
        req.idempotent = !transaction_id.is_empty();
        let resp = self.execute(req).await?;
        convert::parse_event(&resp.body, mailbox)
    }
}

// Additive, for delegated tokens (`delegated.rs`, connected accounts).
impl GraphClient {
    /// Turns a freshly made client into one that uses `session`'s delegated tokens.
    pub(crate) fn into_delegated(
        mut self,
        session: Arc<crate::delegated::DelegatedSession>,
    ) -> Result<GraphClient, Error> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| Error::config("a shared Graph client cannot become delegated"))?;
        inner.delegated = Some(session);
        Ok(self)
    }

    /// Whether this client uses a connected account's delegated token.
    pub fn is_delegated(&self) -> bool {
        self.inner.delegated.is_some()
    }

    /// The connected account's token source, for a delegated client.
    pub fn delegated_session(&self) -> Option<&Arc<crate::delegated::DelegatedSession>> {
        self.inner.delegated.as_ref()
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    pub(crate) fn resource(&self) -> &str {
        &self.inner.resource
    }

    pub(crate) fn delegated_endpoint(&self) -> TokenEndpoint {
        self.inner.endpoint
    }

    pub(crate) fn credential_slots(&self) -> &[Arc<CredSlot>] {
        &self.inner.slots
    }

    pub(crate) fn token_request_for_delegated(&self) -> TokenRequest<'_> {
        self.token_request()
    }
}

impl ConnectionConfig {
    fn endpoint_is_v2(&self) -> bool {
        self.token_endpoint == TokenEndpoint::V2
    }
}

fn sensitivity_str(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "normal",
        Sensitivity::Personal => "personal",
        Sensitivity::Private => "private",
        Sensitivity::Confidential => "confidential",
    }
}

/// Graph JSON for an event draft: times in the event's zone by its Windows name (what Graph
/// documents), or UTC when the zone has no Windows name.
fn draft_json(d: &EventDraft) -> Value {
    let windows = calgate_tz::iana_to_windows(&d.time_zone);
    let zone = windows
        .and_then(|_| jiff::tz::TimeZone::get(&d.time_zone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let zone_name = if windows.is_some() {
        windows.unwrap_or("UTC")
    } else {
        "UTC"
    };
    let fmt = |t: Timestamp| {
        t.to_zoned(zone.clone())
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (start, end, all_day) = match d.all_day {
        Some((s, e)) => (format!("{s}T00:00:00"), format!("{e}T00:00:00"), true),
        None => (fmt(d.start), fmt(d.end), false),
    };
    let mut v = json!({
        "start": {"dateTime": start, "timeZone": zone_name},
        "end": {"dateTime": end, "timeZone": zone_name},
        "isAllDay": all_day,
        "showAs": d.show_as.as_str(),
        "sensitivity": sensitivity_str(d.sensitivity),
    });
    if let Value::Object(m) = &mut v {
        if let Some(s) = &d.subject {
            m.insert("subject".into(), json!(s));
        }
        if let Some(b) = &d.body_text {
            m.insert("body".into(), json!({"contentType": "text", "content": b}));
        }
        if let Some(l) = &d.location {
            m.insert("location".into(), json!({"displayName": l}));
        }
        if !d.attendees.is_empty() {
            let a: Vec<Value> = d
                .attendees
                .iter()
                .map(|p| json!({"type": "required", "emailAddress": {"name": p.name, "address": p.address}}))
                .collect();
            m.insert("attendees".into(), Value::Array(a));
        }
        if !d.extended_properties.is_empty() {
            let p: Vec<Value> = d
                .extended_properties
                .iter()
                .map(|(id, value)| json!({"id": id, "value": value}))
                .collect();
            m.insert("singleValueExtendedProperties".into(), Value::Array(p));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.128 "),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for a in 1..10 {
            let b = p.backoff(a);
            assert!(b <= p.max_backoff, "{a}: {b:?}");
            assert!(b >= (p.base_backoff * (1 << (a - 1))).min(p.max_backoff) / 2);
        }
    }

    #[test]
    fn batch_mailbox_from_url() {
        let r = BatchRequest::get(
            "1",
            "/users/Alice%40Contoso.com/calendarView?startDateTime=x",
        );
        assert_eq!(r.mailbox().as_deref(), Some("alice@contoso.com"));
        assert_eq!(
            BatchRequest::get("1", "users/b@c/events")
                .mailbox()
                .as_deref(),
            Some("b@c")
        );
        assert_eq!(
            BatchRequest::get("1", "/places/microsoft.graph.room").mailbox(),
            None
        );
    }

    #[test]
    fn draft_uses_windows_zone_names() {
        let d = EventDraft {
            subject: Some("x".into()),
            body_text: None,
            start: "2026-07-01T07:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            end: "2026-07-01T08:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            time_zone: "Europe/Berlin".into(),
            all_day: None,
            show_as: ShowAs::Busy,
            sensitivity: Sensitivity::Normal,
            location: None,
            attendees: vec![],
            extended_properties: vec![],
        };
        let v = draft_json(&d);
        assert_eq!(v["start"]["timeZone"], "W. Europe Standard Time");
        assert_eq!(v["start"]["dateTime"], "2026-07-01T09:00:00");
    }
}
