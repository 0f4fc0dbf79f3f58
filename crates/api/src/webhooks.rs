//! The host application's events: outbound webhooks (Standard Webhooks, delivered at least once
//! from the store's durable queue, in order per mailbox) and the change feed
//! (`GET /v1/changes`) for hosts that cannot receive them. Both carry the same events, built
//! from the store's change log by [`host_event`]: `{type, timestamp, data}`.
//!
//! The [`Dispatcher`] runs inside `calgate serve`: it fans the change log out into each
//! endpoint's queue (the payload is fixed then, so a retry sends the same bytes under the same
//! `webhook-id`), sends what is due — one delivery at a time per endpoint and mailbox, many
//! mailboxes at once — and retries failures on [`RETRY_SCHEDULE`] (more than 24 hours) before
//! dead-lettering them. Nothing is lost in a crash: a delivery leaves the queue only when the
//! receiver answered 2xx and that was recorded; one in flight at a crash is sent again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use calgate_core::{ApiScope, BusyMapping, PrivacyPolicy, SecretString};
use calgate_store::{
    Change, ChangeRecord, Delivery, DeliveryOutcome, DeliveryState, EVENT_TYPES, LeaseHolder,
    MailboxId, NewDelivery, Store, Webhook,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::dto::InstanceDto;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

use crate::state::AppState;

/// How long after each failed attempt the next one is made (Standard Webhooks' schedule):
/// eight attempts over about 27.6 hours, then the delivery is dead-lettered.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How long the change log (and so a change-feed cursor) is kept.
pub const RETENTION: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// The most change-feed entries in one answer.
pub const MAX_CHANGES_PAGE: u32 = 1000;

// ---- events ----------------------------------------------------------------------------------

/// One event for the host application, as a webhook body and a change-feed entry carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostEvent {
    /// `event.created`, `event.updated`, `event.deleted`, `mailbox.sync_failed`,
    /// `mailbox.recovered`, `booking.synced`, `booking.failed`, `booking.drifted`,
    /// `booking.deleted_in_exchange`, `credential.expiring`, `credential.expired`.
    #[serde(rename = "type")]
    #[schema(example = "event.created")]
    pub type_: String,
    /// When calgate recorded the change (RFC 3339, UTC).
    pub timestamp: String,
    /// `event.created` and `event.updated`: the instance as `GET
    /// /v1/mailboxes/{address}/events` shows it (privacy applied); `event.deleted`: `id`,
    /// `exchange_id`, `mailbox`, `start`, `end`; the others: `mailbox` where there is one and
    /// the details of the event.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// What [`host_event`] needs to know about mailboxes.
#[derive(Debug, Default)]
pub struct Mailboxes {
    privacy: HashMap<MailboxId, PrivacyPolicy>,
}

impl Mailboxes {
    pub async fn load(store: &dyn Store) -> calgate_store::Result<Mailboxes> {
        Ok(Mailboxes {
            privacy: store
                .list_mailboxes()
                .await?
                .into_iter()
                .map(|m| (m.id, m.privacy))
                .collect(),
        })
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// The host event of one change-log row. An instance that changed again since (or went) is
/// shown as it is now; one that is gone, by what the log kept.
pub async fn host_event(
    store: &dyn Store,
    mailboxes: &Mailboxes,
    r: &ChangeRecord,
) -> calgate_store::Result<HostEvent> {
    let address = r.address.clone().unwrap_or_default();
    let data = match &r.change {
        Change::Instance {
            op,
            instance_id,
            exchange_id,
            start,
            end,
        } => {
            let live = match (r.mailbox, op) {
                (Some(m), calgate_store::ChangeOp::Created | calgate_store::ChangeOp::Updated) => {
                    match mailboxes.privacy.get(&m) {
                        Some(policy) => store
                            .instance(m, exchange_id)
                            .await?
                            .map(|s| InstanceDto::new(&s, *policy, BusyMapping::default())),
                        None => None,
                    }
                }
                _ => None,
            };
            match live {
                Some(dto) => serde_json::to_value(dto).unwrap_or_default(),
                None => serde_json::json!({
                    "id": instance_id.to_string(),
                    "exchange_id": exchange_id,
                    "mailbox": address,
                    "start": start.map(rfc3339),
                    "end": end.map(rfc3339),
                }),
            }
        }
        Change::Notice { data, .. } => {
            let mut data = match data {
                serde_json::Value::Object(o) => o.clone(),
                serde_json::Value::Null => serde_json::Map::new(),
                other => {
                    let mut m = serde_json::Map::new();
                    m.insert("details".into(), other.clone());
                    m
                }
            };
            if r.address.is_some() {
                data.insert("mailbox".into(), serde_json::Value::String(address));
            }
            serde_json::Value::Object(data)
        }
    };
    Ok(HostEvent {
        type_: r.event_type().to_owned(),
        timestamp: rfc3339(r.at),
        data,
    })
}

// ---- signing (Standard Webhooks) -------------------------------------------------------------

/// The key bytes of a `whsec_…` secret.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` for
/// each secret, space-separated (two during a rotation's overlap).
pub fn signature(secrets: &[SecretString], msg_id: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{msg_id}.{timestamp}.{body}");
    secrets
        .iter()
        .filter_map(|s| secret_key(s.expose()))
        .map(|k| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &k);
            format!(
                "v1,{}",
                STANDARD.encode(hmac::sign(&key, signed.as_bytes()).as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- endpoint URLs ---------------------------------------------------------------------------

/// An endpoint must be `https://`, or `http://` to this machine (loopback) — calendar data is
/// not sent in the clear over a network.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2,048 characters".to_owned());
    }
    let u = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("'{url}' is not a URL ({e}): give an https:// URL"))?;
    let loopback = u.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    match u.scheme() {
        "https" if u.host().is_some() => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "'{url}' is plain http: webhooks carry calendar data, so calgate sends them over https only (http only to this machine, e.g. a local relay)"
            ));
        }
        _ => return Err(format!("'{url}' is not an https:// URL")),
    }
    if u.fragment().is_some() {
        return Err(format!(
            "'{url}' has a #fragment, which is never sent: remove it"
        ));
    }
    Ok(u)
}

/// Checks a list of event types (`None`: all).
pub fn check_event_types(events: Option<&[String]>) -> Result<(), String> {
    if let Some(events) = events {
        if events.is_empty() {
            return Err(
                "events is empty: leave it out to receive every event type, or name some"
                    .to_owned(),
            );
        }
        for e in events {
            if !EVENT_TYPES.contains(&e.as_str()) {
                return Err(format!(
                    "'{e}' is not an event type; the types are {}",
                    EVENT_TYPES.join(", ")
                ));
            }
        }
    }
    Ok(())
}

// ---- the dispatcher --------------------------------------------------------------------------

/// The dispatcher's clock (tests move it to simulate hours of retries).
pub type ClockFn = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How the dispatcher works; the defaults are production's, tests shorten the schedule or move
/// the clock.
#[derive(Clone)]
pub struct DispatcherOptions {
    /// The wait after each failed attempt; when it runs out, the delivery is dead.
    pub schedule: Vec<Duration>,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// How often the change log and the queue are looked at.
    pub poll: Duration,
    /// Deliveries in flight at once (each to a different endpoint or mailbox).
    pub concurrency: usize,
    /// Change-log rows fanned out per endpoint per look.
    pub batch: u32,
    /// What "now" is (default: the system clock).
    pub clock: Option<ClockFn>,
    /// How long the change log (each event's history, and what a webhook endpoint can still
    /// be sent) and delivered deliveries are kept: [`RETENTION`] by default, `[server]
    /// history_days` in `calgate serve`.
    pub retention: SignedDuration,
}

impl std::fmt::Debug for DispatcherOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherOptions")
            .field("schedule", &self.schedule)
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            schedule: RETRY_SCHEDULE.to_vec(),
            timeout: Duration::from_secs(15),
            poll: Duration::from_millis(200),
            concurrency: 16,
            batch: 500,
            clock: None,
            retention: RETENTION,
        }
    }
}

/// A running dispatcher; [`DispatcherHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct DispatcherHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops taking work and waits up to `grace` for deliveries in flight (one not finished
    /// stays queued and is sent again after a restart).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// The role lease of the process that delivers webhooks.
pub const WEBHOOKS_ROLE: &str = "webhooks";
/// How long the dispatcher's role lasts unrenewed (it renews every third of it).
const ROLE_TTL: Duration = Duration::from_secs(30);

/// Fans the change log out to the endpoints and delivers their queues.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    options: DispatcherOptions,
}

/// What one look did (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, options: DispatcherOptions) -> Dispatcher {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("calgate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Dispatcher {
            store,
            client,
            options,
        }
    }

    fn now(&self) -> Timestamp {
        self.options
            .clock
            .as_ref()
            .map_or_else(Timestamp::now, |c| c())
    }

    /// Runs on the current runtime until the handle shuts it down.
    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        DispatcherHandle { stop, task }
    }

    async fn run(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut in_flight: HashSet<i64> = HashSet::new();
        let mut sending: JoinSet<(i64, bool)> = JoinSet::new();
        let mut last_prune: Option<Timestamp> = None;
        let mut role_renewed: Option<std::time::Instant> = None;
        loop {
            if *stopped.borrow() {
                break;
            }
            // One process delivers for all that share the store (a role lease).
            let holding = this.holds_role(&mut role_renewed).await;
            if holding && let Err(e) = this.fan_out().await {
                tracing::warn!("webhooks: cannot queue deliveries: {e}");
            }
            let room = this.options.concurrency.saturating_sub(in_flight.len());
            if holding && room > 0 {
                match this
                    .store
                    .due_deliveries(this.now(), u32::try_from(room * 2).unwrap_or(64))
                    .await
                {
                    Ok(due) => {
                        let fresh: Vec<Delivery> = due
                            .into_iter()
                            .filter(|d| !in_flight.contains(&d.id))
                            .take(room)
                            .collect();
                        for d in fresh {
                            in_flight.insert(d.id);
                            let me = this.clone();
                            sending.spawn(async move {
                                let id = d.id;
                                (id, me.deliver(d).await)
                            });
                        }
                    }
                    Err(e) => tracing::warn!("webhooks: cannot read the queue: {e}"),
                }
            }
            let now = this.now();
            if holding
                && last_prune.is_none_or(|t| now.duration_since(t) > SignedDuration::from_hours(1))
            {
                last_prune = Some(now);
                this.prune(now).await;
                if let Err(e) = credential_notices(this.store.as_ref(), now).await {
                    tracing::warn!("webhooks: cannot check credential expiry: {e}");
                }
            }
            // Wait for a delivery to finish, the next look, or the stop.
            tokio::select! {
                Some(done) = sending.join_next(), if !sending.is_empty() => {
                    if let Ok((id, _)) = done {
                        in_flight.remove(&id);
                    }
                }
                _ = tokio::time::sleep(this.options.poll) => {}
                _ = stopped.changed() => {}
            }
        }
        // Let what is in flight finish (the caller bounds the wait).
        while let Some(done) = sending.join_next().await {
            if let Ok((id, _)) = done {
                in_flight.remove(&id);
            }
        }
        // Another process takes over at once.
        if role_renewed.is_some()
            && let Err(e) = this
                .store
                .release_role(WEBHOOKS_ROLE, &LeaseHolder::this_process())
                .await
        {
            tracing::warn!("webhooks: cannot give the dispatcher's role up: {e}");
        }
    }

    /// Whether this process is the one that delivers (the `webhooks` role lease, taken or
    /// renewed once a third of [`ROLE_TTL`] has passed). Processes sharing a store deliver
    /// through one of them; another takes over within [`ROLE_TTL`] when it stops.
    async fn holds_role(&self, renewed: &mut Option<std::time::Instant>) -> bool {
        if renewed.is_some_and(|t| t.elapsed() < ROLE_TTL / 3) {
            return true;
        }
        let ttl = SignedDuration::try_from(ROLE_TTL).unwrap_or(SignedDuration::from_secs(30));
        match self
            .store
            .hold_role(WEBHOOKS_ROLE, &LeaseHolder::this_process(), ttl)
            .await
        {
            Ok(true) => {
                if renewed.is_none() {
                    tracing::info!("webhooks: this process delivers the webhooks");
                }
                *renewed = Some(std::time::Instant::now());
                true
            }
            Ok(false) => {
                if renewed.take().is_some() {
                    tracing::warn!("webhooks: another process delivers the webhooks now");
                }
                false
            }
            Err(e) => {
                tracing::warn!("webhooks: cannot renew the dispatcher's role: {e}");
                // Keep delivering until the lease would have lapsed.
                renewed.is_some_and(|t| t.elapsed() < ROLE_TTL)
            }
        }
    }

    async fn prune(&self, now: Timestamp) {
        let before = now
            .checked_sub(self.options.retention)
            .unwrap_or(Timestamp::MIN);
        if let Err(e) = self.store.prune_change_log(before).await {
            tracing::warn!("webhooks: cannot prune the change log: {e}");
        }
        if let Err(e) = self.store.prune_deliveries(before).await {
            tracing::warn!("webhooks: cannot prune delivered deliveries: {e}");
        }
    }

    /// Queues what the change log has past each endpoint's position; how many deliveries.
    pub async fn fan_out(&self) -> calgate_store::Result<u64> {
        let hooks = self.store.webhooks().await?;
        if hooks.is_empty() {
            return Ok(0);
        }
        let end = self.store.change_log_end().await?;
        let mut queued = 0;
        let mut mailboxes: Option<Mailboxes> = None;
        for hook in hooks.iter().filter(|h| h.position < end) {
            let rows = self
                .store
                .changes_after(hook.position, self.options.batch)
                .await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                continue;
            };
            if mailboxes.is_none() {
                mailboxes = Some(Mailboxes::load(self.store.as_ref()).await?);
            }
            let boxes = mailboxes.as_ref().ok_or_else(|| {
                calgate_store::Error::new(calgate_store::ErrorKind::Database, "no mailboxes")
            })?;
            let deliveries = self.deliveries_of(hook, boxes, &rows).await?;
            if self
                .store
                .enqueue_deliveries(&hook.id, hook.position, last, &deliveries)
                .await?
            {
                queued += deliveries.len() as u64;
            }
        }
        Ok(queued)
    }

    async fn deliveries_of(
        &self,
        hook: &Webhook,
        mailboxes: &Mailboxes,
        rows: &[ChangeRecord],
    ) -> calgate_store::Result<Vec<NewDelivery>> {
        let mut out = Vec::new();
        for r in rows.iter().filter(|r| hook.wants(r.event_type())) {
            let event = host_event(self.store.as_ref(), mailboxes, r).await?;
            out.push(NewDelivery {
                seq: r.seq,
                partition: r.address.as_deref().unwrap_or("").to_ascii_lowercase(),
                event_type: event.type_.clone(),
                payload: serde_json::to_string(&event).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// One attempt; `true` when delivered.
    async fn deliver(&self, d: Delivery) -> bool {
        let outcome = self.attempt(&d).await;
        let delivered = matches!(outcome, DeliveryOutcome::Delivered { .. });
        if let DeliveryOutcome::Failed {
            error, retry_at, ..
        } = &outcome
        {
            match retry_at {
                Some(at) => tracing::info!(
                    webhook = %d.webhook_id, delivery = d.id,
                    "webhook delivery failed ({error}); next attempt at {at}"
                ),
                None => tracing::warn!(
                    webhook = %d.webhook_id, delivery = d.id,
                    "webhook delivery failed ({error}) after {} attempts: dead-lettered (replay with `calgate webhook replay`)",
                    d.attempts + 1
                ),
            }
        }
        if let Err(e) = self.store.finish_delivery(d.id, &outcome).await {
            tracing::warn!("webhooks: cannot record delivery {}: {e}", d.id);
        }
        delivered
    }

    async fn attempt(&self, d: &Delivery) -> DeliveryOutcome {
        let failed = |status: Option<u16>, error: String| {
            let wait = self
                .options
                .schedule
                .get(usize::try_from(d.attempts).unwrap_or(usize::MAX))
                .copied();
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: wait.map(|w| self.now() + jitter(w)),
            }
        };
        let Some(hook) = self.store.webhook(&d.webhook_id).await.ok().flatten() else {
            return failed(None, "the endpoint was removed".into());
        };
        let secrets = match self.store.webhook_secrets(&d.webhook_id).await {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return failed(None, "the endpoint has no secret".into()),
            Err(e) => return failed(None, format!("cannot read the endpoint's secret: {e}")),
        };
        let ts = Timestamp::now().as_second();
        let request = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                signature(&secrets, &d.msg_id, ts, &d.payload),
            )
            .body(d.payload.clone());
        match request.send().await {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Delivered {
                status: r.status().as_u16(),
            },
            Ok(r) => {
                let status = r.status();
                failed(
                    Some(status.as_u16()),
                    format!("the receiver answered {status}"),
                )
            }
            Err(e) if e.is_timeout() => failed(
                None,
                format!(
                    "the receiver did not answer within {} s",
                    self.options.timeout.as_secs_f64()
                ),
            ),
            Err(e) if e.is_connect() => failed(None, format!("cannot connect to {}", hook.url)),
            Err(e) => failed(None, format!("the request failed: {e}")),
        }
    }
}

/// Credentials reaching 30, 14 or 7 days before expiry, or expired: one notice per credential
/// and occasion (`credential.expiring`, `credential.expired`); how many were new.
pub async fn credential_notices(store: &dyn Store, now: Timestamp) -> calgate_store::Result<u64> {
    use calgate_admin::lifecycle::{ExpiryLevel, expiry_level};
    let mut recorded = 0;
    for c in store.list_connections().await? {
        for cred in &c.credentials {
            let level = expiry_level(cred.expires_at, now);
            let (kind, key) = match level {
                ExpiryLevel::Expired => (
                    calgate_store::NoticeKind::CredentialExpired,
                    format!("credential:{}:expired", cred.id.0),
                ),
                l => match l.threshold_days() {
                    Some(days) => (
                        calgate_store::NoticeKind::CredentialExpiring,
                        format!("credential:{}:expiring:{days}", cred.id.0),
                    ),
                    None => continue,
                },
            };
            let data = serde_json::json!({
                "connection": c.name,
                "credential_id": cred.id.0,
                "kind": cred.kind.as_str(),
                "expires_at": cred.expires_at.map(rfc3339),
                "threshold_days": level.threshold_days(),
                "fix": format!(
                    "add a new secret or certificate to the app registration in Entra ID, then `calgate connection secret add {}` and remove this one",
                    c.name
                ),
            });
            let notice = calgate_store::NewNotice {
                kind,
                mailbox: None,
                data,
            };
            if store.record_notice_once(&key, &notice).await?.is_some() {
                recorded += 1;
            }
        }
    }
    Ok(recorded)
}

/// `d` give or take 10 %, so that retries of many deliveries spread out.
fn jitter(d: Duration) -> SignedDuration {
    let spread = d.as_secs_f64() * 0.1;
    let offset = if spread > 0.0 {
        rand::random_range(-spread..spread)
    } else {
        0.0
    };
    SignedDuration::try_from_secs_f64((d.as_secs_f64() + offset).max(0.0))
        .unwrap_or(SignedDuration::ZERO)
}

// ---- REST: webhooks --------------------------------------------------------------------------

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to deliver: https (http only to this machine).
    #[schema(example = "https://lms.example.edu/hooks/calgate")]
    pub url: String,
    /// The event types to receive; absent: all.
    pub events: Option<Vec<String>>,
}

/// An endpoint (its secret only in the answer that creates or rotates it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDto {
    #[schema(example = "wh_3f0c9a1b2c3d4e5f60718293a4b5c6d7")]
    pub id: String,
    pub url: String,
    /// The event types it receives; null: all.
    pub events: Option<Vec<String>>,
    pub created_at: String,
    /// Until when the secret before the last rotation also signs deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<String>,
    /// The signing secret (`whsec_…`): shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookDto {
    fn new(w: &Webhook, secret: Option<String>) -> WebhookDto {
        WebhookDto {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            created_at: rfc3339(w.created_at),
            previous_secret_valid_until: w
                .previous_secret_until
                .filter(|t| *t > Timestamp::now())
                .map(rfc3339),
            secret,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookDto>,
}

/// One delivery of an endpoint's queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDto {
    pub id: i64,
    /// The `webhook-id` header: the same on every attempt.
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    /// Pending: when the next attempt is due.
    pub next_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The mailbox it is about (deliveries of one mailbox go out in order).
    pub mailbox: Option<String>,
}

impl DeliveryDto {
    pub fn new(d: &Delivery) -> DeliveryDto {
        DeliveryDto {
            id: d.id,
            webhook_id: d.msg_id.clone(),
            type_: d.event_type.clone(),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: (d.state == DeliveryState::Pending).then(|| rfc3339(d.next_at)),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_at),
            finished_at: d.finished_at.map(rfc3339),
            mailbox: (!d.partition.is_empty()).then(|| d.partition.clone()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryDto>,
}

#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `dead`.
    pub state: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<u32>,
}

/// `POST /v1/webhooks/{id}/replay`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The dead deliveries to send again; absent: all of the endpoint's dead deliveries.
    pub ids: Option<Vec<i64>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayAnswer {
    pub replayed: u64,
}

async fn known_webhook(state: &AppState, id: &str) -> ApiResult<Webhook> {
    state.store.webhook(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no webhook {id}: list them with GET /v1/webhooks"
        ))
    })
}

/// Adds an endpoint; the answer holds its signing secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, description = "Added; the secret is shown this once", body = WebhookDto),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn add_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<WebhookRequest>,
) -> ApiResult<Response> {
    caller.require(ApiScope::Admin)?;
    let url = check_url(&req.url).map_err(ApiError::bad_request)?;
    check_event_types(req.events.as_deref()).map_err(ApiError::bad_request)?;
    let (hook, secret) = state
        .store
        .add_webhook(url.as_str(), req.events.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookDto::new(&hook, Some(secret))),
    )
        .into_response())
}

/// The endpoints (without secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")), security(("api_key" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<WebhookList>> {
    caller.require(ApiScope::Admin)?;
    let hooks = state.store.webhooks().await?;
    Ok(axum::Json(WebhookList {
        webhooks: hooks.iter().map(|h| WebhookDto::new(h, None)).collect(),
    }))
}

/// Removes an endpoint and its queue.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn remove_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiScope::Admin)?;
    if state.store.remove_webhook(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "there is no webhook {id}: list them with GET /v1/webhooks"
        )))
    }
}

/// A new signing secret; the old one keeps signing beside it for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookDto),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookDto>> {
    caller.require(ApiScope::Admin)?;
    let secret = state
        .store
        .rotate_webhook_secret(&id, ROTATION_OVERLAP)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no webhook {id}")))?;
    let hook = known_webhook(&state, &id).await?;
    Ok(axum::Json(WebhookDto::new(&hook, Some(secret))))
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    caller.require(ApiScope::Admin)?;
    let state_filter = q
        .state
        .as_deref()
        .map(str::parse::<DeliveryState>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    known_webhook(&state, &id).await?;
    let list = state.store.deliveries(&id, state_filter, limit).await?;
    Ok(axum::Json(DeliveryList {
        deliveries: list.iter().map(DeliveryDto::new).collect(),
    }))
}

/// Sends dead deliveries again (all of the endpoint's, or those listed), in their order.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, body = ReplayAnswer),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    caller.require(ApiScope::Admin)?;
    known_webhook(&state, &id).await?;
    let req: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not a replay request ({e}): send {{}} or {{\"ids\": [1, 2]}}"
            ))
        })?
    };
    let replayed = state
        .store
        .replay_deliveries(&id, req.ids.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ReplayAnswer { replayed })).into_response())
}

// ---- REST: the change feed -------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// `next_cursor` of the previous answer; absent: start at the present (the answer is empty
    /// and its `next_cursor` follows from now on).
    pub cursor: Option<String>,
    /// At most this many changes (1–1000, default 500).
    pub limit: Option<u32>,
}

/// One change-feed entry: the webhook body with its position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeDto {
    /// The change's position in the feed (increasing).
    pub id: String,
    #[serde(flatten)]
    pub event: HostEvent,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<ChangeDto>,
    /// Pass it as `cursor` to read on; valid for at least 7 days.
    pub next_cursor: String,
    /// `true` when more changes follow at once (ask again without waiting).
    pub more: bool,
}

fn encode_cursor(seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{seq}"))
}

fn decode_cursor(c: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(c.trim()).ok()?;
    let s = std::str::from_utf8(&bytes).ok()?;
    s.strip_prefix("c1:")?.parse().ok()
}

/// The change feed: the events webhooks carry, for hosts that cannot receive webhooks.
#[utoipa::path(get, path = "/v1/changes", tag = "webhooks", params(ChangesQuery),
    responses((status = 200, body = ChangesPage),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 410, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<axum::Json<ChangesPage>> {
    caller.require(ApiScope::Read)?;
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > MAX_CHANGES_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_CHANGES_PAGE}"
        )));
    }
    let end = state.store.change_log_end().await?;
    let Some(raw) = q.cursor.as_deref().filter(|c| !c.trim().is_empty()) else {
        return Ok(axum::Json(ChangesPage {
            changes: Vec::new(),
            next_cursor: encode_cursor(end),
            more: false,
        }));
    };
    let after = decode_cursor(raw)
        .filter(|s| *s <= end)
        .ok_or_else(|| {
            ApiError::bad_request(
                "cursor is not one calgate gave out: pass next_cursor as given, or start again without a cursor",
            )
        })?;
    if after < state.store.change_log_floor().await? {
        return Err(ApiError::new(
            StatusCode::GONE,
            "cursor-expired",
            "this cursor is older than the changes calgate keeps (7 days): read the events of your window again with GET /v1/mailboxes/{address}/events, then follow the feed from a new cursor (GET /v1/changes without one)",
        ));
    }
    let rows = state.store.changes_after(after, limit).await?;
    let mailboxes = Mailboxes::load(state.store.as_ref()).await?;
    let mut changes = Vec::with_capacity(rows.len());
    for r in &rows {
        changes.push(ChangeDto {
            id: r.seq.to_string(),
            event: host_event(state.store.as_ref(), &mailboxes, r).await?,
        });
    }
    let last = rows.last().map_or(after, |r| r.seq);
    Ok(axum::Json(ChangesPage {
        changes,
        next_cursor: encode_cursor(last),
        more: last < end,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(check_url("https://lms.example.edu/hook").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://[::1]:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://lms.example.edu/hook").is_err());
        assert!(check_url("ftp://lms.example.edu/hook").is_err());
        assert!(check_url("https://lms.example.edu/hook#x").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn event_types_are_checked() {
        assert!(check_event_types(None).is_ok());
        assert!(check_event_types(Some(&["event.created".to_owned()])).is_ok());
        assert!(check_event_types(Some(&[])).is_err());
        assert!(check_event_types(Some(&["event.moved".to_owned()])).is_err());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("c2:5")), None);
    }

    /// The example of the Standard Webhooks specification: secret, id, timestamp and body give
    /// the published signature.
    #[test]
    fn signature_matches_the_specification_example() {
        let secret = SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_secrets_sign_twice() {
        let a = SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let b = SecretString::new(format!("whsec_{}", STANDARD.encode([7u8; 32])));
        let sig = signature(&[a, b], "msg_1", 1, "{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(100)).as_secs_f64();
            assert!((90.0..=110.0).contains(&j), "{j}");
        }
        assert_eq!(jitter(Duration::ZERO), SignedDuration::ZERO);
    }
}
