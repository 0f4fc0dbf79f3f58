//! Graph's change notifications into calgate, against the simulator's subscriptions: a change
//! reaches the store without a poll; forged notifications change nothing; lifecycle events;
//! renewals across simulated days; a failed validation leaves the mailbox polled, saying why.

use std::time::{Duration, Instant};

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_store::SubscriptionState;
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, Options, api_with, event};

async fn notified_api() -> Api {
    let api = api_with(Options {
        // Long enough that only a notification can make a round in these tests.
        cadence: Some(Duration::from_secs(3600)),
        notifications: true,
    })
    .await;
    // Short timings in the simulator (retries of undelivered notifications).
    api.control
        .ok(
            Method::PUT,
            "/subscriptions/settings",
            Some(&json!({"coalesce_ms": 10, "retry_initial_ms": 50, "retry_horizon_ms": 5000})),
        )
        .await;
    api
}

/// A linked, synced mailbox with one event; its address.
async fn synced_mailbox(api: &Api, local: &str) -> String {
    let who = api.empty_mailbox(local, "user").await;
    api.link(&who, MailboxKind::User, PrivacyPolicy::Full).await;
    api.control
        .create_event(&who, &event("first", &at(48, 9), &at(48, 10), "busy"))
        .await;
    assert!(api.sync().await.is_success());
    who
}

fn at(hours_ahead: i64, hour: u8) -> String {
    let d = (Timestamp::now() + SignedDuration::from_hours(hours_ahead)).strftime("%Y-%m-%d");
    format!("{d}T{hour:02}:00:00")
}

async fn stored_subjects(api: &Api, who: &str) -> Vec<String> {
    let (from, to) = (
        Timestamp::now() - SignedDuration::from_hours(24),
        Timestamp::now() + SignedDuration::from_hours(24 * 30),
    );
    let v = api
        .get(
            &format!("/v1/mailboxes/{who}/events?from={from}&to={to}"),
            Some(&api.read_key),
        )
        .await
        .ok();
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["subject"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn notifier(api: &Api) -> &calgate_sync::notify::Notifier {
    api.notifier.as_ref().expect("notifications on")
}

async fn mode_of(api: &Api, who: &str) -> Value {
    let v = api.get("/v1/mailboxes", Some(&api.read_key)).await.ok();
    v["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .find(|m| {
            m["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(who))
        })
        .expect("listed")["notifications"]
        .clone()
}

async fn record_of(api: &Api, who: &str) -> calgate_store::SubscriptionRecord {
    api.store
        .subscriptions()
        .await
        .expect("records")
        .into_iter()
        .find(|r| r.address.eq_ignore_ascii_case(who))
        .expect("a record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_exchange_reaches_the_store_without_a_poll() {
    let api = notified_api().await;
    let who = synced_mailbox(&api, "notified.a").await;
    let r = notifier(&api)
        .reconcile(Timestamp::now())
        .await
        .expect("reconcile");
    assert_eq!((r.created, r.failed, r.active), (1, 0, 1), "{r:?}");
    let mode = mode_of(&api, &who).await;
    assert_eq!(mode["mode"], "notified", "{mode}");
    assert!(mode["subscription_expires"].is_string());
    let subs = api.control.ok(Method::GET, "/subscriptions", None).await;
    assert_eq!(
        subs["subscriptions"].as_array().map(Vec::len),
        Some(1),
        "{subs}"
    );
    assert_eq!(
        subs["totals"]["validations"], 2,
        "both URLs validated: {subs}"
    );

    // The scheduler's next poll is an hour away: only the notification can bring this in.
    api.control
        .create_event(&who, &event("notified", &at(72, 14), &at(72, 15), "busy"))
        .await;
    let took = wait_until(
        "the new event in the store",
        Duration::from_secs(15),
        || async {
            stored_subjects(&api, &who)
                .await
                .contains(&"notified".to_owned())
        },
    )
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let metrics = api.get("/metrics", None).await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("calgate_notifications_accepted_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // A deletion too.
    let truth = api
        .control
        .truth(
            &who,
            Timestamp::now(),
            Timestamp::now() + SignedDuration::from_hours(24 * 30),
        )
        .await;
    let first = truth
        .iter()
        .find(|e| e["subject"] == "first")
        .expect("first")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(api.control.delete_event(&who, &first).await, 204);
    wait_until(
        "the deletion in the store",
        Duration::from_secs(15),
        || async {
            !stored_subjects(&api, &who)
                .await
                .contains(&"first".to_owned())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_change_nothing_and_the_handshake_echoes_the_token() {
    let api = notified_api().await;
    let who = synced_mailbox(&api, "notified.b").await;
    notifier(&api)
        .reconcile(Timestamp::now())
        .await
        .expect("reconcile");
    let id = record_of(&api, &who).await.subscription_id.expect("id");
    // Lose the real notifications, so that only the forged one could trigger a round.
    api.control
        .ok(
            Method::PATCH,
            &format!("/subscriptions/{id}"),
            Some(&json!({"silent": true})),
        )
        .await;
    api.control
        .create_event(&who, &event("unseen", &at(72, 9), &at(72, 10), "busy"))
        .await;
    let forged = json!({"value": [{
        "subscriptionId": id, "clientState": "guessed", "changeType": "created",
        "resource": format!("Users/{who}/Events/x"), "tenantId": "t",
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}]});
    let unknown = json!({"value": [{"subscriptionId": "not-ours", "clientState": "x"}]});
    for body in [&forged, &unknown] {
        let r = api
            .send(
                api.request(Method::POST, "/v1/notifications/graph", None)
                    .json(body),
            )
            .await;
        assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !stored_subjects(&api, &who)
            .await
            .contains(&"unseen".to_owned()),
        "a forged notification made a round"
    );
    let metrics = api.get("/metrics", None).await.text;
    assert!(
        metrics.contains("calgate_notifications_dropped_total 2"),
        "{metrics}"
    );
    // Garbage is a 400 problem.
    api.send(
        api.request(Method::POST, "/v1/notifications/graph", None)
            .body("<xml/>"),
    )
    .await
    .problem(400);
    // The validation handshake: the decoded token, as text/plain.
    let r = api
        .send(api.request(
            Method::POST,
            "/v1/notifications/graph?validationToken=Validation%3A%20Testing%20client%20application",
            None,
        ))
        .await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.text, "Validation: Testing client application");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_recreate_reauthorize_and_resync() {
    let api = notified_api().await;
    let who = synced_mailbox(&api, "notified.c").await;
    notifier(&api)
        .reconcile(Timestamp::now())
        .await
        .expect("reconcile");
    let before = record_of(&api, &who).await;
    let old_id = before.subscription_id.clone().expect("id");

    // subscriptionRemoved: a new subscription, and a delta round.
    let attempt_before = last_attempt(&api, &who).await;
    api.control
        .ok(
            Method::POST,
            &format!("/subscriptions/{old_id}/lifecycle"),
            Some(&json!({"event": "subscriptionRemoved"})),
        )
        .await;
    wait_until("a new subscription", Duration::from_secs(15), || async {
        let r = record_of(&api, &who).await;
        r.state == SubscriptionState::Active
            && r.subscription_id.as_deref() != Some(old_id.as_str())
    })
    .await;
    wait_until(
        "a delta round after subscriptionRemoved",
        Duration::from_secs(15),
        || async { last_attempt(&api, &who).await != attempt_before },
    )
    .await;
    let now_id = record_of(&api, &who).await.subscription_id.expect("id");
    let subs = api.control.ok(Method::GET, "/subscriptions", None).await;
    let ids: Vec<&str> = subs["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, vec![now_id.as_str()], "{subs}");

    // reauthorizationRequired: reauthorized and renewed in place.
    let r0 = record_of(&api, &who).await;
    api.control
        .ok(
            Method::POST,
            &format!("/subscriptions/{now_id}/lifecycle"),
            Some(&json!({"event": "reauthorizationRequired"})),
        )
        .await;
    wait_until(
        "the renewal after reauthorization",
        Duration::from_secs(15),
        || async { record_of(&api, &who).await.updated_at > r0.updated_at },
    )
    .await;
    let r1 = record_of(&api, &who).await;
    assert_eq!(r1.subscription_id, r0.subscription_id, "kept");
    assert_eq!(r1.state, SubscriptionState::Active);

    // missed: a delta round brings in what the lost notifications carried.
    api.control
        .ok(
            Method::PATCH,
            &format!("/subscriptions/{now_id}"),
            Some(&json!({"silent": true})),
        )
        .await;
    api.control
        .create_event(&who, &event("missed one", &at(96, 9), &at(96, 10), "busy"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stored_subjects(&api, &who)
            .await
            .contains(&"missed one".to_owned())
    );
    api.control
        .ok(
            Method::POST,
            &format!("/subscriptions/{now_id}/lifecycle"),
            Some(&json!({"event": "missed"})),
        )
        .await;
    wait_until("the missed change", Duration::from_secs(15), || async {
        stored_subjects(&api, &who)
            .await
            .contains(&"missed one".to_owned())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_renewed_across_simulated_days_and_recreated_when_gone() {
    let api = notified_api().await;
    let who = synced_mailbox(&api, "notified.d").await;
    let n = notifier(&api);
    let mut clock = Timestamp::now();
    n.reconcile(clock).await.expect("reconcile");
    let first = record_of(&api, &who).await;
    let id = first.subscription_id.clone().expect("id");
    // Nothing to do a few hours later.
    let r = n
        .reconcile(clock + SignedDuration::from_hours(3))
        .await
        .expect("reconcile");
    assert_eq!((r.created, r.renewed, r.active), (0, 0, 1), "{r:?}");
    // Three jumps of 2.5 days: 7.5 days, more than Graph's longest lifetime; renewed each time.
    for _ in 0..3 {
        api.control.advance_clock(60 * 60 * 60).await;
        clock += SignedDuration::from_hours(60);
        let r = n.reconcile(clock).await.expect("reconcile");
        assert_eq!((r.renewed, r.created, r.failed), (1, 0, 0), "{r:?}");
        let rec = record_of(&api, &who).await;
        assert_eq!(rec.subscription_id.as_deref(), Some(id.as_str()));
        assert!(rec.expires_at.expect("expiry") > clock + SignedDuration::from_hours(48));
    }
    let subs = api.control.ok(Method::GET, "/subscriptions", None).await;
    assert_eq!(subs["subscriptions"][0]["id"], json!(id), "{subs}");
    // Still notified after the jumps.
    api.control
        .create_event(
            &who,
            &event("after days", &at(24 * 9, 9), &at(24 * 9, 10), "busy"),
        )
        .await;
    wait_until(
        "a change after the jumps",
        Duration::from_secs(15),
        || async {
            stored_subjects_far(&api, &who)
                .await
                .contains(&"after days".to_owned())
        },
    )
    .await;
    // Four days without a renewal: it lapses in Graph; the next look makes a new one.
    api.control.advance_clock(4 * 24 * 3600).await;
    clock += SignedDuration::from_hours(4 * 24);
    let r = n.reconcile(clock).await.expect("reconcile");
    assert_eq!((r.created, r.failed, r.active), (1, 0, 1), "{r:?}");
    assert_ne!(record_of(&api, &who).await.subscription_id, Some(id));
}

async fn last_attempt(api: &Api, who: &str) -> Option<Timestamp> {
    api.store
        .sync_state(who)
        .await
        .expect("state")
        .expect("linked")
        .status
        .last_attempt
}

/// Subjects over a longer window (the simulated clock moved).
async fn stored_subjects_far(api: &Api, who: &str) -> Vec<String> {
    api.store
        .instances(
            api.store.mailbox(who).await.expect("m").expect("linked").id,
            Timestamp::now() - SignedDuration::from_hours(24 * 30),
            Timestamp::now() + SignedDuration::from_hours(24 * 400),
        )
        .await
        .expect("instances")
        .into_iter()
        .filter_map(|i| i.instance.subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_leaves_the_mailbox_polled_and_says_why() {
    let api = notified_api().await;
    let who = synced_mailbox(&api, "notified.e").await;
    // A public URL at which nothing answers the handshake.
    let wrong = calgate_sync::notify::Notifier::new(
        api.engine.clone(),
        calgate_sync::notify::NotifyOptions::new(&format!("{}/nowhere", api.base)),
    );
    let r = wrong.reconcile(Timestamp::now()).await.expect("reconcile");
    assert_eq!((r.created, r.failed), (0, 1), "{r:?}");
    let rec = record_of(&api, &who).await;
    assert_eq!(rec.state, SubscriptionState::Failing);
    assert_eq!(rec.failures, 1);
    assert!(rec.next_attempt_at.is_some());
    let mode = mode_of(&api, &who).await;
    assert_eq!(mode["mode"], "polling", "{mode}");
    let reason = mode["reason"].as_str().expect("reason");
    assert!(reason.to_lowercase().contains("validation"), "{reason}");
    // Not before the back-off: nothing is tried again.
    let r = wrong.reconcile(Timestamp::now()).await.expect("reconcile");
    assert_eq!((r.created, r.failed), (0, 0), "{r:?}");
    // The right URL, after the back-off: notified.
    let r = notifier(&api)
        .reconcile(Timestamp::now() + SignedDuration::from_secs(120))
        .await
        .expect("reconcile");
    assert_eq!((r.created, r.failed), (1, 0), "{r:?}");
    assert_eq!(mode_of(&api, &who).await["mode"], "notified");
}
