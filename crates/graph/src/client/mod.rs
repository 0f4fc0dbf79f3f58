//! `Shared` (HTTP client, token caches, metrics, retry policy) and `GraphClient` (one per
//! connection), split by concern:
//!
//! - this module: making a client and its access tokens (app-only or delegated);
//! - [`transport`]: URLs, request execution with the mailbox gate, retries on 429/503/504
//!   honouring `Retry-After`, classification, paging;
//! - [`batch`]: JSON `$batch`;
//! - [`calendar`]: `calendarView` (default or any calendar), delta, instances, events CRUD;
//! - [`directory`]: users, mailbox settings, places;
//! - [`draft`]: [`EventDraft`] and the Graph JSON calgate writes.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;

use crate::config::{
    ConnectionConfig, Credential, TokenEndpoint, graph_resource_for, validate_endpoint,
};
use crate::error::Error;
use crate::limiter::{Metrics, MetricsSnapshot};
use crate::token::{self, AccessToken, CredSlot, TokenRequest};

mod batch;
mod calendar;
mod directory;
mod draft;
mod subscriptions;
mod transport;

pub use subscriptions::{Subscription, SubscriptionRequest};

pub use batch::{BATCH_LIMIT, BatchRequest, BatchResponse};
pub use calendar::{DeltaRequest, FoundEvent};
pub use draft::EventDraft;
pub(crate) use transport::retry_after;
pub use transport::{RetryPolicy, parse_retry_after};

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

    /// Counts a request another calendar service's client (EWS) sent for the same work, so that
    /// run totals and `/metrics` include it. `throttled`: it was refused as too many, and is
    /// retried (counted as a throttled answer and a retry).
    pub fn count_other_request(&self, throttled: bool) {
        let m = &self.inner.metrics;
        if throttled {
            Metrics::inc(&m.throttled);
            Metrics::inc(&m.retries);
        } else {
            Metrics::inc(&m.requests_sent);
        }
    }

    /// Graph's answers to every client made from this `Shared`, by HTTP status.
    pub fn responses_by_status(&self) -> Vec<(u16, u64)> {
        self.inner.metrics.by_status()
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
