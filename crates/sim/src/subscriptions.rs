//! Change notifications (webhooks) for Outlook events: the subscriptions Graph's
//! `/v1.0/subscriptions` manages, the validation handshake, the detection of calendar changes
//! and the delivery of change and lifecycle notifications. Written from Graph's documentation
//! (reference §2.9); the routes are in [`crate::graph::subscriptions`] and
//! [`crate::control_subscriptions`]. Documented in `docs/sim/subscriptions.md`.
//!
//! - **Detection** compares each subscribed mailbox's calendars with a baseline: calendar
//!   versions first ([`crate::model::CalCell::version`] changes on every mutable access), then,
//!   for a calendar whose version moved, stored item id → change key. New ids are `created`,
//!   changed keys `updated` (an edited or cancelled occurrence touches its series master),
//!   vanished ids `deleted`. It runs after every request that may change something (the
//!   per-request middleware calls [`Subscriptions::after_write`]), so every path that changes a
//!   calendar — Graph writes, `$batch`, the control API, meeting processing — is covered by
//!   construction, and it costs nothing while no subscription exists.
//! - **Delivery** runs on background tasks and never blocks a request: notifications for the
//!   same URL wait [`DeliveryConfig::coalesce`] and go out together as one
//!   `{"value":[…]}` POST (even for different subscriptions). A POST that is not answered with
//!   2xx within [`DeliveryConfig::ack_timeout`] (5xx, 429, connection failure, no answer) is
//!   retried with exponential backoff until [`DeliveryConfig::retry_horizon`], then dropped and
//!   counted. Other 4xx answers drop the batch at once. Tasks end when the simulator shuts
//!   down.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::GraphError;
use crate::graph::wire::fmt_timestamp;
use crate::model::{Directory, User};
use crate::state::{SimState, lock};

/// Longest lifetime of a subscription to Outlook events without resource data (minutes).
pub const MAX_LIFETIME_MINUTES: i64 = 10_080;
/// Shorter expirations are raised to this (minutes).
pub const MIN_LIFETIME_MINUTES: i64 = 45;
/// Active Outlook subscriptions per mailbox, counted across apps.
pub const MAX_PER_MAILBOX: usize = 1_000;
/// Longest `clientState`.
pub const MAX_CLIENT_STATE: usize = 128;

/// Timing of the handshake and of deliveries. Graph's values are the defaults; tests shorten
/// them through `PUT /_sim/subscriptions/settings` or [`Subscriptions::set_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long notifications for one URL are collected before they are POSTed together.
    pub coalesce: Duration,
    /// How long the validation handshake may take (Graph: 10 s).
    pub validation_timeout: Duration,
    /// How long a notification POST may take before it counts as unanswered (Graph: 3 s).
    pub ack_timeout: Duration,
    /// How long a batch is retried before it is dropped (Graph: up to 4 hours).
    pub retry_horizon: Duration,
    /// First retry delay; it doubles up to [`DeliveryConfig::retry_max`].
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Active subscriptions per mailbox (Graph: 1,000).
    pub max_per_mailbox: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            coalesce: Duration::from_millis(50),
            validation_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(3),
            retry_horizon: Duration::from_secs(4 * 3600),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            max_per_mailbox: MAX_PER_MAILBOX,
        }
    }
}

/// The change types a subscription to Outlook events accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "created" => Some(ChangeType::Created),
            "updated" => Some(ChangeType::Updated),
            "deleted" => Some(ChangeType::Deleted),
            _ => None,
        }
    }
}

/// Parses `changeType` (`"created,updated,deleted"`): known values only, at least one.
pub fn parse_change_types(raw: &str) -> Result<BTreeSet<ChangeType>, GraphError> {
    let mut out = BTreeSet::new();
    for part in raw.split(',') {
        let ct = ChangeType::parse(part).ok_or_else(|| {
            GraphError::bad_request(
                "InvalidRequest",
                format!(
                    "'{}' is not a valid changeType value; use created, updated and/or deleted, separated by commas.",
                    part.trim()
                ),
            )
        })?;
        out.insert(ct);
    }
    Ok(out)
}

/// Which calendar(s) of the mailbox a subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/users/{id}/events`, `/users/{id}/calendar/events` (and `/me/…`): the default calendar,
    /// as `GET` on the same path lists it.
    DefaultCalendar,
    /// `/users/{id}/calendars/{cid}/events`.
    Calendar(String),
}

/// The `lifecycleEvent` values (CSDL enum `lifecycleEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    ReauthorizationRequired,
    SubscriptionRemoved,
    Missed,
}

impl LifecycleEvent {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reauthorizationRequired" => Some(LifecycleEvent::ReauthorizationRequired),
            "subscriptionRemoved" => Some(LifecycleEvent::SubscriptionRemoved),
            "missed" => Some(LifecycleEvent::Missed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::ReauthorizationRequired => "reauthorizationRequired",
            LifecycleEvent::SubscriptionRemoved => "subscriptionRemoved",
            LifecycleEvent::Missed => "missed",
        }
    }
}

/// Delivery counters of one subscription (per notification, not per POST).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SubCounters {
    /// Change notifications acknowledged with 2xx.
    pub delivered: u64,
    /// Re-sends of a change notification after an unanswered or 5xx POST.
    pub retried: u64,
    /// Change notifications given up on (retry horizon reached, or a 4xx answer).
    pub dropped: u64,
    /// Change notifications suppressed by the control API (a simulated lost notification).
    pub lost: u64,
    /// Lifecycle notifications acknowledged with 2xx.
    pub lifecycle_delivered: u64,
    /// Lifecycle notifications given up on.
    pub lifecycle_dropped: u64,
}

/// A subscription as the simulator keeps it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The app that created it (`applicationId`).
    pub app_id: Uuid,
    /// The signed-in user (delegated) or the app's service principal (app-only).
    pub creator_id: Uuid,
    /// Whether it was created with a delegated token (then only that user manages it).
    pub delegated: bool,
    pub mailbox: Uuid,
    /// `resource` as the client wrote it.
    pub resource: String,
    pub scope: Scope,
    pub change_types: BTreeSet<ChangeType>,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub expiration: Timestamp,
    pub tls_version: String,
    /// Control API: deliver nothing (every change notification counts as lost).
    pub silent: bool,
    /// Control API: suppress the next N change notifications.
    pub drop_next: u64,
    /// Set by an injected `reauthorizationRequired`, cleared by `reauthorize` or a renewal.
    pub reauthorization_required: bool,
    pub counters: SubCounters,
}

impl Subscription {
    pub fn change_type_text(&self) -> String {
        self.change_types
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Graph's JSON of the subscription.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type_text(),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": fmt_timestamp(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": false,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
            "notificationContentType": "application/json",
        })
    }

    fn watches(&self, calendar_id: &str, default_id: &str) -> bool {
        match &self.scope {
            Scope::DefaultCalendar => calendar_id == default_id,
            Scope::Calendar(c) => c == calendar_id,
        }
    }
}

/// One calendar as last seen: its version and stored item id → change key.
#[derive(Debug, Default)]
struct CalendarSeen {
    version: u64,
    items: HashMap<String, String>,
}

/// A subscribed mailbox as last seen, by calendar id.
#[derive(Debug, Default)]
struct Baseline {
    calendars: HashMap<String, CalendarSeen>,
}

/// One notification waiting for (or in) delivery.
#[derive(Debug, Clone)]
struct Outgoing {
    subscription: Uuid,
    lifecycle: bool,
    body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    subs: BTreeMap<Uuid, Subscription>,
    baselines: HashMap<Uuid, Baseline>,
    /// Notifications collected per URL, waiting for the coalescing delay.
    pending: HashMap<String, Vec<Outgoing>>,
}

/// Totals over all subscriptions (including deleted ones).
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// Notification POSTs sent (first attempts and retries), validation requests excluded.
    pub posts: u64,
    pub delivered: u64,
    pub retried: u64,
    pub dropped: u64,
    pub lost: u64,
    pub lifecycle_delivered: u64,
    pub lifecycle_dropped: u64,
    /// Validation handshakes sent / failed.
    pub validations: u64,
    pub validations_failed: u64,
    /// Subscriptions removed because they expired.
    pub expired: u64,
}

#[derive(Debug, Default)]
struct AtomicTotals {
    posts: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    lifecycle_delivered: AtomicU64,
    lifecycle_dropped: AtomicU64,
    validations: AtomicU64,
    validations_failed: AtomicU64,
    expired: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    config: Mutex<DeliveryConfig>,
    /// True while at least one subscription exists (detection is skipped otherwise).
    any: AtomicBool,
    client: OnceLock<Option<reqwest::Client>>,
    shutdown: watch::Sender<bool>,
    totals: AtomicTotals,
}

/// The simulator's subscriptions and their delivery machinery.
#[derive(Debug)]
pub struct Subscriptions {
    shared: Arc<Shared>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        let (shutdown, _) = watch::channel(false);
        Subscriptions {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                config: Mutex::new(DeliveryConfig::default()),
                any: AtomicBool::new(false),
                client: OnceLock::new(),
                shutdown,
                totals: AtomicTotals::default(),
            }),
        }
    }
}

/// Why a handshake failed: Graph's messages (code `InvalidRequest`, status 400).
const VALIDATION_NOT_200: &str = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.";
const VALIDATION_MISMATCH: &str = "Subscription validation request failed. Response must exactly match validationToken query parameter.";
const VALIDATION_CONTENT_TYPE: &str =
    "Subscription validation request failed. Response must have Content-Type text/plain.";
const VALIDATION_TIMEOUT: &str = "Subscription validation request timed out.";

impl Subscriptions {
    pub fn config(&self) -> DeliveryConfig {
        *lock(&self.shared.config)
    }

    pub fn set_config(&self, c: DeliveryConfig) {
        *lock(&self.shared.config) = c;
    }

    /// Stops delivery: pending and retrying batches are abandoned, nothing new is sent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    fn is_shut_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    pub fn totals(&self) -> Totals {
        let t = &self.shared.totals;
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Totals {
            posts: g(&t.posts),
            delivered: g(&t.delivered),
            retried: g(&t.retried),
            dropped: g(&t.dropped),
            lost: g(&t.lost),
            lifecycle_delivered: g(&t.lifecycle_delivered),
            lifecycle_dropped: g(&t.lifecycle_dropped),
            validations: g(&t.validations),
            validations_failed: g(&t.validations_failed),
            expired: g(&t.expired),
        }
    }

    fn client(&self) -> Option<reqwest::Client> {
        self.shared
            .client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| tracing::warn!("cannot build the notification client: {e}"))
                    .ok()
            })
            .clone()
    }

    /// Removes expired subscriptions (by the simulated clock).
    fn purge(&self, inner: &mut Inner, now: Timestamp) {
        let before = inner.subs.len();
        inner.subs.retain(|_, s| s.expiration > now);
        let gone = before - inner.subs.len();
        if gone > 0 {
            bump(&self.shared.totals.expired, gone as u64);
            self.refresh(inner);
        }
    }

    /// Keeps baselines only for mailboxes with a subscription, and the `any` flag.
    fn refresh(&self, inner: &mut Inner) {
        let watched: BTreeSet<Uuid> = inner.subs.values().map(|s| s.mailbox).collect();
        inner.baselines.retain(|m, _| watched.contains(m));
        self.shared
            .any
            .store(!inner.subs.is_empty(), Ordering::Relaxed);
    }

    /// Active subscriptions (expired ones are removed first).
    pub fn list(&self, now: Timestamp) -> Vec<Subscription> {
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        inner.subs.values().cloned().collect()
    }

    pub fn get(&self, id: Uuid, now: Timestamp) -> Option<Subscription> {
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        inner.subs.get(&id).cloned()
    }

    /// Active subscriptions on `mailbox`.
    pub fn count_for_mailbox(&self, mailbox: Uuid, now: Timestamp) -> usize {
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        inner.subs.values().filter(|s| s.mailbox == mailbox).count()
    }

    /// Stores a new subscription and takes the mailbox's baseline if it has none yet.
    /// Fails (`Err(cap)`) when the mailbox already has the maximum.
    pub fn insert(&self, st: &SimState, sub: Subscription) -> Result<(), usize> {
        let cap = self.config().max_per_mailbox;
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, st.now());
        if inner
            .subs
            .values()
            .filter(|s| s.mailbox == sub.mailbox)
            .count()
            >= cap
        {
            return Err(cap);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = inner.baselines.entry(sub.mailbox) {
            e.insert(baseline_of(&st.dir(), sub.tenant_id, sub.mailbox));
        }
        inner.subs.insert(sub.id, sub);
        self.refresh(&mut inner);
        Ok(())
    }

    /// Changes a stored subscription; `None` when there is none (or it expired).
    pub fn update<T>(
        &self,
        id: Uuid,
        now: Timestamp,
        f: impl FnOnce(&mut Subscription) -> T,
    ) -> Option<T> {
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        inner.subs.get_mut(&id).map(f)
    }

    pub fn remove(&self, id: Uuid) -> Option<Subscription> {
        let mut inner = lock(&self.shared.inner);
        let s = inner.subs.remove(&id);
        self.refresh(&mut inner);
        s
    }

    // -----------------------------------------------------------------------------------------
    // Validation handshake
    // -----------------------------------------------------------------------------------------

    /// `POST {url}?validationToken={token}`: the endpoint must answer 200, `text/plain`, with
    /// the decoded token as its body, within [`DeliveryConfig::validation_timeout`].
    pub async fn validate_url(&self, url: &str) -> Result<(), GraphError> {
        let fail = |msg: &str| {
            bump(&self.shared.totals.validations_failed, 1);
            GraphError::bad_request("InvalidRequest", msg)
        };
        bump(&self.shared.totals.validations, 1);
        let client = self.client().ok_or_else(|| fail(VALIDATION_NOT_200))?;
        let token = format!(
            "Validation: Testing client application reachability for subscription Request-Id: {}",
            Uuid::new_v4()
        );
        let mut target = reqwest::Url::parse(url).map_err(|_| fail(VALIDATION_NOT_200))?;
        target
            .query_pairs_mut()
            .append_pair("validationToken", &token);
        let timeout = self.config().validation_timeout;
        let attempt = async {
            let resp = client
                .post(target)
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body("")
                .send()
                .await
                .map_err(|_| VALIDATION_NOT_200)?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(VALIDATION_NOT_200);
            }
            let plain = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
            let body = resp.text().await.map_err(|_| VALIDATION_NOT_200)?;
            if !plain {
                return Err(VALIDATION_CONTENT_TYPE);
            }
            if body != token {
                return Err(VALIDATION_MISMATCH);
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(fail(VALIDATION_TIMEOUT)),
            Ok(Err(msg)) => Err(fail(msg)),
            Ok(Ok(())) => Ok(()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Detection
    // -----------------------------------------------------------------------------------------

    /// Called after every request that may have changed a calendar: compares the subscribed
    /// mailboxes with their baselines and queues change notifications. Cheap when nothing is
    /// subscribed (one atomic load) or nothing changed (a version compare per calendar).
    pub fn after_write(&self, st: &SimState) {
        if !self.shared.any.load(Ordering::Relaxed) || self.is_shut_down() {
            return;
        }
        let now = st.now();
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        let mut changes: Vec<(Uuid, Change)> = Vec::new();
        {
            let dir = st.dir();
            let tenants: HashMap<Uuid, Uuid> = inner
                .subs
                .values()
                .map(|s| (s.mailbox, s.tenant_id))
                .collect();
            for (mailbox, base) in inner.baselines.iter_mut() {
                let Some(user) = tenants
                    .get(mailbox)
                    .and_then(|t| dir.tenant_by_id(*t))
                    .and_then(|t| t.user_by_id(*mailbox))
                else {
                    continue;
                };
                for c in diff_mailbox(user, base) {
                    changes.push((*mailbox, c));
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        let mut out: Vec<(String, Outgoing)> = Vec::new();
        let Inner { subs, .. } = &mut *inner;
        for (mailbox, c) in &changes {
            for s in subs.values_mut() {
                if s.mailbox != *mailbox
                    || !s.change_types.contains(&c.kind)
                    || !s.watches(&c.calendar, &c.default_calendar)
                {
                    continue;
                }
                if s.silent || s.drop_next > 0 {
                    s.drop_next = s.drop_next.saturating_sub(1);
                    s.counters.lost += 1;
                    bump(&self.shared.totals.lost, 1);
                    continue;
                }
                out.push((
                    s.notification_url.clone(),
                    Outgoing {
                        subscription: s.id,
                        lifecycle: false,
                        body: change_notification(s, c),
                    },
                ));
            }
        }
        for (url, o) in out {
            self.enqueue(&mut inner, url, o);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Lifecycle notifications
    // -----------------------------------------------------------------------------------------

    /// Queues a lifecycle notification for subscription `id` (which must have a
    /// lifecycleNotificationUrl); `subscriptionRemoved` also deletes it. Returns the
    /// notification.
    pub fn lifecycle(
        &self,
        id: Uuid,
        event: LifecycleEvent,
        now: Timestamp,
    ) -> Result<Value, LifecycleError> {
        let mut inner = lock(&self.shared.inner);
        self.purge(&mut inner, now);
        let s = inner.subs.get_mut(&id).ok_or(LifecycleError::NotFound)?;
        let url = s.lifecycle_url.clone().ok_or(LifecycleError::NoUrl)?;
        let body = json!({
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": fmt_timestamp(s.expiration),
            "tenantId": s.tenant_id,
            "clientState": s.client_state,
            "lifecycleEvent": event.as_str(),
        });
        if event == LifecycleEvent::ReauthorizationRequired {
            s.reauthorization_required = true;
        }
        if event == LifecycleEvent::SubscriptionRemoved {
            inner.subs.remove(&id);
            self.refresh(&mut inner);
        }
        self.enqueue(
            &mut inner,
            url,
            Outgoing {
                subscription: id,
                lifecycle: true,
                body: body.clone(),
            },
        );
        Ok(body)
    }

    // -----------------------------------------------------------------------------------------
    // Delivery
    // -----------------------------------------------------------------------------------------

    /// Adds `o` to the URL's pending batch; the first notification of a batch starts the task
    /// that sends it after the coalescing delay.
    fn enqueue(&self, inner: &mut Inner, url: String, o: Outgoing) {
        let queue = inner.pending.entry(url.clone()).or_default();
        queue.push(o);
        if queue.len() > 1 {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            inner.pending.remove(&url);
            return;
        };
        let shared = Arc::clone(&self.shared);
        let client = self.client();
        rt.spawn(async move {
            let mut stop = shared.shutdown.subscribe();
            let config = *lock(&shared.config);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(config.coalesce) => {}
            }
            let batch = lock(&shared.inner).pending.remove(&url).unwrap_or_default();
            if batch.is_empty() {
                return;
            }
            let Some(client) = client else {
                settle(&shared, &batch, Outcome::Dropped);
                return;
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = deliver(&shared, &client, &url, batch, config) => {}
            }
        });
    }
}

/// Why a lifecycle notification cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no such subscription")]
    NotFound,
    #[error("the subscription has no lifecycleNotificationUrl")]
    NoUrl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Dropped,
}

/// Counts the outcome of a batch on its subscriptions and the totals.
fn settle(shared: &Shared, batch: &[Outgoing], outcome: Outcome) {
    let t = &shared.totals;
    let mut inner = lock(&shared.inner);
    for o in batch {
        let c = inner.subs.get_mut(&o.subscription).map(|s| &mut s.counters);
        match (o.lifecycle, outcome) {
            (false, Outcome::Delivered) => {
                bump(&t.delivered, 1);
                if let Some(c) = c {
                    c.delivered += 1;
                }
            }
            (false, Outcome::Dropped) => {
                bump(&t.dropped, 1);
                if let Some(c) = c {
                    c.dropped += 1;
                }
            }
            (true, Outcome::Delivered) => {
                bump(&t.lifecycle_delivered, 1);
                if let Some(c) = c {
                    c.lifecycle_delivered += 1;
                }
            }
            (true, Outcome::Dropped) => {
                bump(&t.lifecycle_dropped, 1);
                if let Some(c) = c {
                    c.lifecycle_dropped += 1;
                }
            }
        }
    }
}

fn count_retry(shared: &Shared, batch: &[Outgoing]) {
    let mut inner = lock(&shared.inner);
    for o in batch.iter().filter(|o| !o.lifecycle) {
        bump(&shared.totals.retried, 1);
        if let Some(s) = inner.subs.get_mut(&o.subscription) {
            s.counters.retried += 1;
        }
    }
}

/// What one POST of a batch came to.
enum Attempt {
    Acknowledged,
    /// 5xx, 429, no answer in time, connection failure.
    Retry,
    /// Another status: the endpoint refused the notifications.
    Refused,
}

async fn deliver(
    shared: &Shared,
    client: &reqwest::Client,
    url: &str,
    batch: Vec<Outgoing>,
    config: DeliveryConfig,
) {
    let payload = json!({"value": batch.iter().map(|o| o.body.clone()).collect::<Vec<_>>()});
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let started = Instant::now();
    let mut backoff = config.retry_initial.max(Duration::from_millis(1));
    loop {
        bump(&shared.totals.posts, 1);
        let sent = client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .timeout(config.ack_timeout)
            .body(body.clone())
            .send()
            .await;
        let attempt = match sent {
            Ok(r) if r.status().is_success() => Attempt::Acknowledged,
            Ok(r)
                if r.status().is_server_error()
                    || r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                Attempt::Retry
            }
            Ok(_) => Attempt::Refused,
            Err(_) => Attempt::Retry,
        };
        match attempt {
            Attempt::Acknowledged => {
                settle(shared, &batch, Outcome::Delivered);
                return;
            }
            Attempt::Refused => {
                settle(shared, &batch, Outcome::Dropped);
                return;
            }
            Attempt::Retry => {}
        }
        if started.elapsed() + backoff > config.retry_horizon {
            settle(shared, &batch, Outcome::Dropped);
            return;
        }
        tokio::time::sleep(backoff).await;
        count_retry(shared, &batch);
        backoff = (backoff * 2).min(config.retry_max.max(config.retry_initial));
    }
}

// ---------------------------------------------------------------------------------------------
// Change detection
// ---------------------------------------------------------------------------------------------

/// A change found by comparing a mailbox with its baseline.
#[derive(Debug, Clone)]
struct Change {
    kind: ChangeType,
    calendar: String,
    default_calendar: String,
    event_id: String,
    change_key: String,
    user: Uuid,
}

fn baseline_of(dir: &Directory, tenant: Uuid, mailbox: Uuid) -> Baseline {
    let mut base = Baseline::default();
    if let Some(user) = dir.tenant_by_id(tenant).and_then(|t| t.user_by_id(mailbox)) {
        let _ = diff_mailbox(user, &mut base);
    }
    base
}

/// Changes of `user`'s calendars since `base`, which is brought up to date.
fn diff_mailbox(user: &User, base: &mut Baseline) -> Vec<Change> {
    let default_calendar = user
        .default_calendar()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for cell in &user.calendars {
        present.insert(cell.id.as_str());
        let seen = base.calendars.entry(cell.id.clone()).or_default();
        if seen.version == cell.version() {
            continue;
        }
        let mut items: HashMap<String, String> = HashMap::with_capacity(cell.events.len());
        for (id, ev) in &cell.events {
            let kind = match seen.items.get(id) {
                None => Some(ChangeType::Created),
                Some(ck) if *ck != ev.change_key => Some(ChangeType::Updated),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                out.push(Change {
                    kind,
                    calendar: cell.id.clone(),
                    default_calendar: default_calendar.clone(),
                    event_id: id.clone(),
                    change_key: ev.change_key.clone(),
                    user: user.id,
                });
            }
            items.insert(id.clone(), ev.change_key.clone());
        }
        for (id, ck) in &seen.items {
            if !cell.events.contains_key(id) {
                out.push(Change {
                    kind: ChangeType::Deleted,
                    calendar: cell.id.clone(),
                    default_calendar: default_calendar.clone(),
                    event_id: id.clone(),
                    change_key: ck.clone(),
                    user: user.id,
                });
            }
        }
        seen.version = cell.version();
        seen.items = items;
    }
    base.calendars.retain(|id, _| present.contains(id.as_str()));
    out
}

/// One change notification as Graph sends it for an Outlook event.
fn change_notification(s: &Subscription, c: &Change) -> Value {
    let path = format!("Users/{}/Events/{}", c.user, c.event_id);
    json!({
        "id": crate::tokens::opaque("", 12),
        "subscriptionId": s.id,
        "subscriptionExpirationDateTime": fmt_timestamp(s.expiration),
        "clientState": s.client_state,
        "changeType": c.kind.as_str(),
        "resource": path,
        "tenantId": s.tenant_id,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": path,
            "@odata.etag": format!("W/\"{}\"", c.change_key),
            "id": c.event_id,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Request checks shared by the Graph routes
// ---------------------------------------------------------------------------------------------

/// Graph requires https; the simulator also accepts plain http to a loopback host
/// (`127.0.0.1`, `::1`, `localhost`), a documented difference. `what` names the property
/// (`NotificationUrl`, `LifecycleNotificationUrl`).
pub fn check_url(what: &str, raw: &str) -> Result<(), GraphError> {
    let invalid = || {
        GraphError::bad_request(
            "InvalidRequest",
            format!("{what} '{raw}' is not a valid absolute URL."),
        )
    };
    let url = reqwest::Url::parse(raw).map_err(|_| invalid())?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(GraphError::bad_request(
                    "InvalidRequest",
                    format!("{what} scheme='http' is not supported."),
                ))
            }
        }
        "https" => Err(invalid()),
        other => Err(GraphError::bad_request(
            "InvalidRequest",
            format!("{what} scheme='{other}' is not supported."),
        )),
    }
}

/// Checks a requested expiration against the simulated `now`: not in the past, at most
/// [`MAX_LIFETIME_MINUTES`] ahead; under [`MIN_LIFETIME_MINUTES`] it is raised.
pub fn check_expiration(raw: &str, now: Timestamp) -> Result<Timestamp, GraphError> {
    let t: Timestamp = raw.trim().parse().map_err(|_| {
        GraphError::bad_request(
            "InvalidRequest",
            format!("expirationDateTime '{raw}' is not a valid DateTimeOffset."),
        )
    })?;
    if t <= now {
        return Err(GraphError::bad_request(
            "InvalidRequest",
            "Subscription expiration must be in the future.",
        ));
    }
    let max = now
        .checked_add(SignedDuration::from_mins(MAX_LIFETIME_MINUTES))
        .unwrap_or(now);
    if t > max {
        return Err(GraphError::bad_request(
            "ExtensionError",
            format!(
                "Subscription expiration can only be {MAX_LIFETIME_MINUTES} minutes in the future."
            ),
        ));
    }
    let min = now
        .checked_add(SignedDuration::from_mins(MIN_LIFETIME_MINUTES))
        .unwrap_or(now);
    Ok(t.max(min))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn change_types_parse_strictly() {
        let s = parse_change_types("created, Updated,deleted").unwrap();
        assert_eq!(s.len(), 3);
        assert!(parse_change_types("created,moved").is_err());
        assert!(parse_change_types("").is_err());
    }

    #[test]
    fn urls_need_https_or_loopback_http() {
        for ok in [
            "https://example.com/hook",
            "http://127.0.0.1:8080/n?x=1",
            "http://[::1]:9/n",
            "http://localhost/n",
        ] {
            assert!(check_url("NotificationUrl", ok).is_ok(), "{ok}");
        }
        let e = check_url("NotificationUrl", "http://example.com/n").unwrap_err();
        assert_eq!(e.message, "NotificationUrl scheme='http' is not supported.");
        assert!(check_url("NotificationUrl", "ftp://example.com/").is_err());
        assert!(check_url("NotificationUrl", "not a url").is_err());
    }

    #[test]
    fn expirations_are_bounded() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert!(check_expiration("2025-12-31T23:00:00Z", now).is_err());
        let e = check_expiration("2026-01-08T00:01:00Z", now).unwrap_err();
        assert_eq!(e.code, "ExtensionError");
        assert_eq!(
            check_expiration("2026-01-01T00:10:00Z", now)
                .unwrap()
                .to_string(),
            "2026-01-01T00:45:00Z"
        );
        assert!(check_expiration("2026-01-07T23:59:00.0000000Z", now).is_ok());
    }
}
