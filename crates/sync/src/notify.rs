//! Change notifications: calgate asks Graph to tell it when a linked mailbox's calendar
//! changes, so that a change reaches the store within seconds instead of at the next poll.
//! Notifications are an accelerator; delta stays the truth — a notification only makes the
//! mailbox due for an ordinary (incremental) round, and a mailbox without a working
//! subscription is polled.
//!
//! The [`Notifier`] keeps one subscription per linked mailbox of an app-only connection: it
//! creates them (Graph validates the notification URL first), renews them well before they
//! expire, recreates one Graph removed, and records each in the store — failing ones with the
//! reason, in an administrator's words, and a back-off before the next attempt. The
//! `clientState` of each subscription is random and secret; the store keeps only its SHA-256,
//! and [`client_state_matches`] compares in constant time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use calgate_core::FailureKind;
use calgate_store::{MailboxId, SubscriptionRecord, SubscriptionState};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::backend::{Backend, Subscribe};
use crate::engine::Engine;
use crate::error::Error;

/// Where `calgate serve` takes Graph's change notifications, below the public URL.
pub const NOTIFICATION_PATH: &str = "/v1/notifications/graph";
/// Where it takes Graph's lifecycle notifications.
pub const LIFECYCLE_PATH: &str = "/v1/notifications/graph/lifecycle";

/// The mailboxes whose subscription is live now (the scheduler polls them less often).
pub type NotifiedSet = Arc<RwLock<HashSet<MailboxId>>>;

/// How subscriptions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyOptions {
    /// The URL at which Microsoft reaches `calgate serve` (https; http only to loopback, for
    /// tests and the simulator), without a trailing slash.
    pub public_url: String,
    /// How long a subscription is asked for (Graph allows events under 7 days).
    pub lifetime: Duration,
    /// Renewed when less than this is left.
    pub renew_before: Duration,
    /// How often the subscriptions are looked at.
    pub check_every: Duration,
}

impl NotifyOptions {
    pub fn new(public_url: &str) -> NotifyOptions {
        NotifyOptions {
            public_url: public_url.trim_end_matches('/').to_owned(),
            lifetime: Duration::from_secs(3 * 24 * 3600),
            renew_before: Duration::from_secs(24 * 3600),
            check_every: Duration::from_secs(60),
        }
    }
}

/// SHA-256 of a clientState.
pub fn client_state_hash(client_state: &str) -> Vec<u8> {
    Sha256::digest(client_state.as_bytes()).to_vec()
}

/// Whether a notification's clientState is the subscription's (constant time).
pub fn client_state_matches(record: &SubscriptionRecord, client_state: &str) -> bool {
    match &record.client_state_hash {
        Some(h) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(h, &client_state_hash(client_state))
                .is_ok()
        }
        None => false,
    }
}

fn new_client_state() -> Result<String, Error> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| Error::Config("cannot draw a random clientState".to_owned()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A lifecycle notification's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    ReauthorizationRequired,
    SubscriptionRemoved,
    Missed,
}

impl std::str::FromStr for LifecycleEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reauthorizationRequired" => Ok(LifecycleEvent::ReauthorizationRequired),
            "subscriptionRemoved" => Ok(LifecycleEvent::SubscriptionRemoved),
            "missed" => Ok(LifecycleEvent::Missed),
            other => Err(format!("unknown lifecycle event '{other}'")),
        }
    }
}

/// What one look at the subscriptions did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub created: u64,
    pub renewed: u64,
    pub failed: u64,
    /// Mailboxes with a live subscription afterwards.
    pub active: u64,
}

/// Keeps the subscriptions (see the module).
#[derive(Clone)]
pub struct Notifier {
    engine: Engine,
    options: NotifyOptions,
    notified: NotifiedSet,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A running notifier loop.
#[derive(Debug)]
pub struct NotifierHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl NotifierHandle {
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// The back-off of a mailbox whose subscription keeps failing: 1 minute, doubling, at most an
/// hour.
fn backoff(failures: u32) -> SignedDuration {
    let secs = 60u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    SignedDuration::from_secs(i64::try_from(secs.min(3600)).unwrap_or(3600))
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::from_hours(24))
}

/// The role lease of the process that keeps the Graph subscriptions.
pub const SUBSCRIPTIONS_ROLE: &str = "subscriptions";

impl Notifier {
    pub fn new(engine: Engine, options: NotifyOptions) -> Notifier {
        Notifier {
            engine,
            options,
            notified: NotifiedSet::default(),
        }
    }

    /// The mailboxes notified now (shared with the scheduler).
    pub fn notified(&self) -> NotifiedSet {
        self.notified.clone()
    }

    pub fn options(&self) -> &NotifyOptions {
        &self.options
    }

    /// Runs [`Notifier::reconcile`] now and every `check_every` until shut down.
    pub fn spawn(self) -> NotifierHandle {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let holder = calgate_store::LeaseHolder::this_process();
            // Held across three looks: another process takes over after three missed ones.
            let ttl = SignedDuration::try_from(self.options.check_every * 3)
                .unwrap_or(SignedDuration::from_mins(3))
                .max(SignedDuration::from_secs(30));
            let mut holding = false;
            loop {
                // One process keeps the subscriptions for all that share the store.
                let held = match self
                    .engine
                    .store()
                    .hold_role(SUBSCRIPTIONS_ROLE, &holder, ttl)
                    .await
                {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!("change notifications: cannot renew the keeper's role: {e}");
                        holding
                    }
                };
                if held != holding {
                    if held {
                        tracing::info!(
                            "change notifications: this process keeps the subscriptions"
                        );
                    } else {
                        tracing::info!(
                            "change notifications: another process keeps the subscriptions"
                        );
                    }
                    holding = held;
                }
                let result = if holding {
                    self.reconcile(Timestamp::now()).await
                } else {
                    Ok(Reconciled::default())
                };
                match result {
                    Ok(r) if r.created + r.renewed + r.failed > 0 => tracing::info!(
                        created = r.created,
                        renewed = r.renewed,
                        failed = r.failed,
                        active = r.active,
                        "change notifications: subscriptions kept"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("change notifications: {e}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.options.check_every) => {}
                    _ = stopped.changed() => {}
                }
                if *stopped.borrow() {
                    break;
                }
            }
            if holding
                && let Err(e) = self
                    .engine
                    .store()
                    .release_role(SUBSCRIPTIONS_ROLE, &holder)
                    .await
            {
                tracing::warn!("change notifications: cannot give the keeper's role up: {e}");
            }
        });
        NotifierHandle { stop, task }
    }

    fn request(&self, client_state: String, now: Timestamp) -> Subscribe {
        Subscribe {
            notification_url: format!("{}{NOTIFICATION_PATH}", self.options.public_url),
            lifecycle_url: Some(format!("{}{LIFECYCLE_PATH}", self.options.public_url)),
            client_state,
            expires: now + signed(self.options.lifetime),
        }
    }

    /// Creates a subscription for `mailbox` and records it (or records why not).
    async fn create(
        &self,
        backend: &Backend,
        mailbox: MailboxId,
        address: &str,
        failures: u32,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let client_state = new_client_state()?;
        let hash = client_state_hash(&client_state);
        let record = match backend
            .subscribe(address, &self.request(client_state, now))
            .await
        {
            Ok(s) => SubscriptionRecord {
                mailbox,
                address: address.to_owned(),
                subscription_id: Some(s.id),
                client_state_hash: Some(hash),
                expires_at: Some(s.expires),
                state: SubscriptionState::Active,
                reason: None,
                failures: 0,
                next_attempt_at: None,
                updated_at: now,
            },
            Err(e) => {
                tracing::warn!(mailbox = %address, "cannot subscribe to change notifications: {e}");
                failing(
                    mailbox,
                    address,
                    format!("Graph refused the subscription: {e}"),
                    failures + 1,
                    now,
                )
            }
        };
        let ok = record.state == SubscriptionState::Active;
        self.engine.store().save_subscription(&record).await?;
        Ok(ok)
    }

    /// One look at every linked mailbox: subscribe the ones without a subscription (or whose
    /// back-off has passed), renew the ones expiring within `renew_before`. `now` is the clock
    /// (tests move it with the simulator's).
    pub async fn reconcile(&self, now: Timestamp) -> Result<Reconciled, Error> {
        let store = self.engine.store().clone();
        let states = store.sync_states().await?;
        let records: HashMap<MailboxId, SubscriptionRecord> = store
            .subscriptions()
            .await?
            .into_iter()
            .map(|r| (r.mailbox, r))
            .collect();
        let mut backends: HashMap<String, Result<Backend, String>> = HashMap::new();
        let mut out = Reconciled::default();
        let mut live = HashSet::new();
        for s in &states {
            let m = &s.mailbox;
            let record = records.get(&m.id);
            let renew_by = now + signed(self.options.renew_before);
            let due = match record {
                None => true,
                Some(r) if r.state == SubscriptionState::Active => {
                    r.expires_at.is_none_or(|e| e <= renew_by)
                }
                Some(r) => r.next_attempt_at.is_none_or(|t| t <= now),
            };
            if !due {
                if record.is_some_and(|r| r.state == SubscriptionState::Active) {
                    live.insert(m.id);
                }
                continue;
            }
            let key = m.connection.to_lowercase();
            if !backends.contains_key(&key) {
                let made = self
                    .engine
                    .connection_backend(&m.connection)
                    .await
                    .map(|(_, b)| b)
                    .map_err(|e| e.to_string());
                backends.insert(key.clone(), made);
            }
            let backend = match backends.get(&key) {
                Some(Ok(b)) => b.clone(),
                Some(Err(e)) => {
                    let failures = record.map_or(0, |r| r.failures) + 1;
                    store
                        .save_subscription(&failing(m.id, &m.address, e.clone(), failures, now))
                        .await?;
                    out.failed += 1;
                    continue;
                }
                None => continue,
            };
            match record {
                Some(r) if r.state == SubscriptionState::Active => {
                    let Some(id) = r.subscription_id.as_deref() else {
                        continue;
                    };
                    match backend
                        .renew(&m.address, id, now + signed(self.options.lifetime))
                        .await
                    {
                        Ok(s) => {
                            store
                                .save_subscription(&SubscriptionRecord {
                                    expires_at: Some(s.expires),
                                    updated_at: now,
                                    ..r.clone()
                                })
                                .await?;
                            out.renewed += 1;
                            live.insert(m.id);
                        }
                        // Gone (Graph removed it, or it expired): a new one.
                        Err(e) if e.kind == FailureKind::NotFound => {
                            if self.create(&backend, m.id, &m.address, 0, now).await? {
                                out.created += 1;
                                live.insert(m.id);
                            } else {
                                out.failed += 1;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(mailbox = %m.address, "cannot renew the change-notification subscription: {e}");
                            store
                                .save_subscription(&failing(
                                    m.id,
                                    &m.address,
                                    format!("renewing the subscription failed: {e}"),
                                    r.failures + 1,
                                    now,
                                ))
                                .await?;
                            out.failed += 1;
                        }
                    }
                }
                _ => {
                    let failures = record.map_or(0, |r| r.failures);
                    if self
                        .create(&backend, m.id, &m.address, failures, now)
                        .await?
                    {
                        out.created += 1;
                        live.insert(m.id);
                    } else {
                        out.failed += 1;
                    }
                }
            }
        }
        out.active = live.len() as u64;
        *self.notified.write().unwrap_or_else(|p| p.into_inner()) = live;
        Ok(out)
    }

    /// Acts on a lifecycle notification of `record`'s subscription; `true` when the mailbox
    /// should run a delta round now (something may have been missed).
    pub async fn lifecycle(
        &self,
        record: &SubscriptionRecord,
        event: LifecycleEvent,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let store = self.engine.store().clone();
        let Some(state) = store.sync_state(&record.address).await? else {
            return Ok(false);
        };
        let (_, backend) = self
            .engine
            .connection_backend(&state.mailbox.connection)
            .await?;
        match event {
            LifecycleEvent::ReauthorizationRequired => {
                let Some(id) = record.subscription_id.as_deref() else {
                    return Ok(false);
                };
                let renewed = async {
                    backend.reauthorize(&record.address, id).await?;
                    backend
                        .renew(&record.address, id, now + signed(self.options.lifetime))
                        .await
                };
                match renewed.await {
                    Ok(s) => {
                        store
                            .save_subscription(&SubscriptionRecord {
                                expires_at: Some(s.expires),
                                updated_at: now,
                                ..record.clone()
                            })
                            .await?;
                        Ok(false)
                    }
                    Err(e) => {
                        // Make a new one instead (the old one may already be gone).
                        tracing::warn!(mailbox = %record.address, "reauthorizing the subscription failed ({e}): making a new one");
                        self.create(
                            &backend,
                            record.mailbox,
                            &record.address,
                            record.failures,
                            now,
                        )
                        .await?;
                        Ok(true)
                    }
                }
            }
            LifecycleEvent::SubscriptionRemoved => {
                if self
                    .create(&backend, record.mailbox, &record.address, 0, now)
                    .await?
                {
                    self.mark(record.mailbox, true);
                } else {
                    self.mark(record.mailbox, false);
                }
                Ok(true)
            }
            LifecycleEvent::Missed => Ok(true),
        }
    }

    fn mark(&self, mailbox: MailboxId, live: bool) {
        let mut set = self.notified.write().unwrap_or_else(|p| p.into_inner());
        if live {
            set.insert(mailbox);
        } else {
            set.remove(&mailbox);
        }
    }
}

fn failing(
    mailbox: MailboxId,
    address: &str,
    reason: String,
    failures: u32,
    now: Timestamp,
) -> SubscriptionRecord {
    SubscriptionRecord {
        mailbox,
        address: address.to_owned(),
        subscription_id: None,
        client_state_hash: None,
        expires_at: None,
        state: SubscriptionState::Failing,
        reason: Some(reason),
        failures,
        next_attempt_at: Some(now + backoff(failures)),
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), SignedDuration::from_secs(60));
        assert_eq!(backoff(2), SignedDuration::from_secs(120));
        assert_eq!(backoff(4), SignedDuration::from_secs(480));
        assert_eq!(backoff(30), SignedDuration::from_secs(3600));
    }

    #[test]
    fn client_state_is_checked_by_its_hash() {
        let state = new_client_state().expect("random");
        assert!(state.len() <= 128);
        let r = SubscriptionRecord {
            mailbox: MailboxId(1),
            address: "a@x".into(),
            subscription_id: Some("s".into()),
            client_state_hash: Some(client_state_hash(&state)),
            expires_at: None,
            state: SubscriptionState::Active,
            reason: None,
            failures: 0,
            next_attempt_at: None,
            updated_at: Timestamp::now(),
        };
        assert!(client_state_matches(&r, &state));
        assert!(!client_state_matches(&r, "forged"));
        assert!(!client_state_matches(
            &SubscriptionRecord {
                client_state_hash: None,
                ..r
            },
            &state
        ));
    }
}
