//! The service around the endpoints: the background scheduler, immediate syncs, health,
//! metrics, the OpenAPI document, request ids.

use std::time::{Duration, Instant};

use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::json;

use crate::common::{Options, api, api_with, event};

#[tokio::test]
async fn the_scheduler_keeps_a_mailbox_current_within_one_cadence() {
    let cadence = Duration::from_secs(3);
    let api = api_with(Options {
        cadence: Some(cadence),
        ..Default::default()
    })
    .await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    let key = Some(api.read_key.as_str());

    // The new mailbox is synced by the scheduler, with no call.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = api.get("/v1/mailboxes", key).await.ok();
        if v["mailboxes"][0]["status"]["state"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "never synced: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A change in Exchange appears within one cadence (plus a round's time).
    let start = (Timestamp::now() + SignedDuration::from_hours(30))
        .round(jiff::Unit::Hour)
        .expect("round");
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    api.control
        .create_event(
            &user,
            &event(
                "Scheduled by the background",
                &fmt(start),
                &fmt(start + SignedDuration::from_hours(1)),
                "busy",
            ),
        )
        .await;
    let made = Instant::now();
    let path = format!(
        "/v1/mailboxes/{user}/events?from={}&to={}",
        start - SignedDuration::from_hours(1),
        start + SignedDuration::from_hours(2)
    );
    loop {
        let r = api.get(&path, key).await;
        if r.ok().to_string().contains("Scheduled by the background") {
            break;
        }
        assert!(
            made.elapsed() < cadence + Duration::from_secs(2),
            "not picked up within one cadence ({cadence:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = made.elapsed();
    assert!(took <= cadence + Duration::from_secs(2), "{took:?}");

    // An immediate sync on request: seen well before the next cadence would bring it.
    let sched = api.scheduler.as_ref().expect("scheduler");
    assert!(sched.is_alive());
    api.control
        .create_event(
            &user,
            &event(
                "Asked for now",
                &fmt(start),
                &fmt(start + SignedDuration::from_hours(1)),
                "busy",
            ),
        )
        .await;
    let r = api
        .post(
            &format!("/v1/mailboxes/{user}/sync"),
            Some(&api.write_key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["queued"], true);
    let asked = Instant::now();
    loop {
        if api
            .get(&path, key)
            .await
            .ok()
            .to_string()
            .contains("Asked for now")
        {
            break;
        }
        assert!(asked.elapsed() < cadence + Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ready = api.get("/readyz", None).await.ok();
    assert_eq!(
        ready,
        json!({ "status": "ready", "store": true, "scheduler": true })
    );
    sched.shutdown(Duration::from_secs(5)).await;
    let r = api.get("/readyz", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["scheduler"], false);
}

#[tokio::test]
async fn metrics_openapi_and_request_ids() {
    let api = api().await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    assert!(api.sync().await.is_success());
    api.get("/v1/mailboxes", None).await.problem(401);
    let listed = api.get("/v1/mailboxes", Some(&api.read_key)).await.ok();
    let me = calgate_store::LeaseHolder::this_process();
    assert_eq!(
        listed["mailboxes"][0]["status"]["last_round_by"],
        json!(me.to_string()),
        "{listed}"
    );

    let m = api.get("/metrics", None).await;
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    for name in [
        "calgate_api_requests_total",
        "calgate_api_request_duration_seconds_bucket",
        "calgate_graph_responses_total",
        "calgate_events_stored",
        "calgate_mailbox_lag_seconds",
        "calgate_instance_info{instance=",
    ] {
        assert!(m.text.contains(name), "{name} missing:\n{}", m.text);
    }
    assert!(
        m.text.contains("route=\"/v1/mailboxes\"") && m.text.contains("status=\"401\""),
        "{}",
        m.text
    );
    assert!(!m.text.contains(&api.read_key));
    assert!(
        m.text.contains(&format!("pid=\"{}\"", me.pid)),
        "{}",
        m.text
    );

    let doc = api.get("/openapi.json", None).await.ok();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(&calgate_api::openapi_json()).expect("JSON")
    );

    // A plain incoming request id is kept; anything else is replaced.
    let r = api
        .send(
            api.request(Method::GET, "/healthz", None)
                .header("request-id", "abc-123"),
        )
        .await;
    assert_eq!(r.header("request-id"), Some("abc-123"));
    let r = api
        .send(
            api.request(Method::GET, "/healthz", None)
                .header("request-id", "evil\"; injected=1"),
        )
        .await;
    assert_ne!(r.header("request-id"), Some("evil\"; injected=1"));
}

/// Immediate syncs asked for over and over while rounds finish, on two runtime workers: the
/// scheduler's picking and its bookkeeping of finished rounds run at once, and the API must
/// keep answering. (They once took two locks in opposite orders and, rarely, deadlocked both
/// workers and the API with them; Schemathesis found it. The schedule is now behind one lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_immediate_syncs_does_not_stall_the_service() {
    let api = api_with(Options {
        cadence: Some(Duration::from_millis(50)),
        ..Default::default()
    })
    .await;
    let users: Vec<String> = api.users().into_iter().take(6).collect();
    for u in &users {
        api.link(u, MailboxKind::User, PrivacyPolicy::Full).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let until = Instant::now() + Duration::from_secs(3);
    let mut asked = 0u32;
    while Instant::now() < until {
        let mut calls = tokio::task::JoinSet::new();
        for u in &users {
            let (http, url, key) = (
                http.clone(),
                format!("{}/v1/mailboxes/{u}/sync", api.base),
                api.write_key.clone(),
            );
            calls.spawn(async move { http.post(url).bearer_auth(key).send().await });
        }
        while let Some(r) = calls.join_next().await {
            let r = r.expect("task").expect("the API answers within 5 s");
            assert_eq!(r.status(), 202);
            asked += 1;
        }
    }
    assert!(asked > 50, "only {asked} immediate syncs asked for");
    let r = http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .expect("the API answers within 5 s");
    assert_eq!(r.status(), 200, "scheduler stalled");
    let sched = api.scheduler.as_ref().expect("scheduler");
    assert!(sched.is_alive());
    sched.shutdown(Duration::from_secs(10)).await;
}
