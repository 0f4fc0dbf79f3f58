//! Webhooks and the change feed: signed deliveries that a real HTTP receiver gets, in order per
//! mailbox, through outages, dead letters and replay; the feed's cursors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use calgate_api::webhooks::{Dispatcher, DispatcherHandle, DispatcherOptions};
use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, api, event};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A host application's webhook receiver on 127.0.0.1: answers `status` (settable) and keeps
/// every request.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<std::sync::Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type Shared = (Arc<AtomicU16>, Arc<std::sync::Mutex<Vec<Received>>>);

async fn receive(
    State((status, got)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answered = status.load(Ordering::SeqCst);
    got.lock().expect("lock").push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Receiver {
    async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(204));
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state((status.clone(), got.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            url,
            status,
            got,
            stop: Some(stop),
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The requests answered 2xx.
    fn delivered(&self) -> Vec<Received> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (at most 20 s) until `n` deliveries were answered 2xx.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived: {:?}",
                d.len(),
                d.iter().map(|r| r.body.clone()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Checks a delivery's signature as a receiver would (Standard Webhooks): one of the
/// space-separated `v1,` signatures is the HMAC-SHA256 of `id.timestamp.body` under the secret.
fn verifies(r: &Received, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let signed = format!("{}.{}.{}", r.id, r.timestamp, r.body);
    r.signature.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|sig| hmac::verify(&key, signed.as_bytes(), &sig).is_ok())
    })
}

fn fast(schedule_ms: &[u64]) -> DispatcherOptions {
    DispatcherOptions {
        schedule: schedule_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(20),
        ..DispatcherOptions::default()
    }
}

fn dispatcher(api: &Api, options: DispatcherOptions) -> DispatcherHandle {
    Dispatcher::new(api.store.clone(), options).spawn()
}

/// Adds an endpoint through the API: (id, secret).
async fn add_hook(api: &Api, url: &str, events: Option<&[&str]>) -> (String, String) {
    let mut body = json!({ "url": url });
    if let Some(e) = events {
        body["events"] = json!(e);
    }
    let r = api.post("/v1/webhooks", Some(&api.admin_key), &body).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let v = r.json();
    (
        v["id"].as_str().expect("id").to_owned(),
        v["secret"].as_str().expect("secret").to_owned(),
    )
}

fn day(offset_hours: i64) -> String {
    (Timestamp::now() + SignedDuration::from_hours(offset_hours))
        .strftime("%Y-%m-%d")
        .to_string()
}

/// Two mailboxes with a few events each, linked; returns their addresses.
async fn two_mailboxes(api: &Api, prefix: &str, each: usize) -> (String, String) {
    let a = api.empty_mailbox(&format!("{prefix}.a"), "user").await;
    let b = api.empty_mailbox(&format!("{prefix}.b"), "room").await;
    api.link(&a, MailboxKind::User, PrivacyPolicy::Full).await;
    api.link(&b, MailboxKind::Room, PrivacyPolicy::BusyOnly)
        .await;
    let d = day(48);
    for (i, who) in [&a, &b].into_iter().enumerate() {
        for n in 0..each {
            let start = format!("{d}T{:02}:00:00", 8 + n);
            let end = format!("{d}T{:02}:30:00", 8 + n);
            api.control
                .create_event(
                    who,
                    &event(&format!("{prefix} {i}.{n}"), &start, &end, "busy"),
                )
                .await;
        }
    }
    (a, b)
}

/// The feed's entries from `cursor` to the end, all pages.
async fn feed_from(api: &Api, cursor: &str, limit: u32) -> (Vec<Value>, String) {
    let mut out = Vec::new();
    let mut cursor = cursor.to_owned();
    loop {
        let page = api
            .get(
                &format!("/v1/changes?cursor={cursor}&limit={limit}"),
                Some(&api.read_key),
            )
            .await
            .ok();
        out.extend(page["changes"].as_array().expect("changes").iter().cloned());
        cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
        if page["more"] != true {
            return (out, cursor);
        }
    }
}

#[tokio::test]
async fn signed_event_webhooks_arrive_in_the_feeds_order_per_mailbox() {
    let api = api().await;
    let receiver = Receiver::start().await;
    let start = api.get("/v1/changes", Some(&api.read_key)).await.ok();
    assert_eq!(start["changes"], json!([]), "no cursor: the present");
    let cursor = start["next_cursor"].as_str().expect("cursor").to_owned();
    let (hook, secret) = add_hook(&api, &receiver.url, None).await;
    let (a, b) = two_mailboxes(&api, "hooks", 3).await;
    assert!(api.sync().await.is_success());
    let dispatch = dispatcher(&api, fast(&[50, 100]));
    let got = receiver.wait_for(6).await;

    // Every delivery is signed with the endpoint's secret, and has a fresh id.
    for r in &got {
        assert!(r.id.starts_with("msg_"), "{r:?}");
        assert!(verifies(r, &secret), "bad signature: {r:?}");
        let ts: i64 = r.timestamp.parse().expect("unix seconds");
        assert!((Timestamp::now().as_second() - ts).abs() < 60);
        assert!(!verifies(
            r,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ));
    }
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "each event once");

    // The same events as the feed, in the feed's order for each mailbox; event data equal to
    // the events API's (privacy applied: the room's subject is absent).
    let (feed, _) = feed_from(&api, &cursor, 2).await;
    assert_eq!(feed.len(), 6, "{feed:?}");
    for who in [&a, &b] {
        let of = |v: &Value| v["data"]["mailbox"] == json!(who);
        let hooked: Vec<Value> = got.iter().map(Received::json).filter(of).collect();
        let fed: Vec<Value> = feed
            .iter()
            .filter(|v| of(v))
            .map(|v| {
                let mut v = v.clone();
                v.as_object_mut().expect("object").remove("id");
                v
            })
            .collect();
        assert_eq!(hooked, fed, "{who}");
        assert_eq!(hooked.len(), 3);
        let (from, to) = (
            Timestamp::now() - SignedDuration::from_hours(24),
            Timestamp::now() + SignedDuration::from_hours(24 * 30),
        );
        let events = api
            .get(
                &format!("/v1/mailboxes/{who}/events?from={from}&to={to}"),
                Some(&api.read_key),
            )
            .await
            .ok();
        for h in &hooked {
            assert_eq!(h["type"], "event.created");
            let same = events["events"]
                .as_array()
                .expect("events")
                .iter()
                .find(|e| e["id"] == h["data"]["id"])
                .expect("the instance is served");
            assert_eq!(&h["data"], same);
        }
    }
    assert!(
        got.iter()
            .map(Received::json)
            .all(|v| { v["data"]["mailbox"] != json!(b) || v["data"].get("subject").is_none() })
    );

    // A deletion in Exchange: event.deleted with calgate's id.
    let gone = got
        .iter()
        .map(Received::json)
        .find(|v| v["data"]["mailbox"] == json!(a))
        .expect("an event of a");
    let exchange_id = gone["data"]["exchange_id"].as_str().expect("exchange id");
    assert_eq!(api.control.delete_event(&a, exchange_id).await, 204);
    assert!(api.sync().await.is_success());
    let got = receiver.wait_for(7).await;
    let last = got.last().expect("one more").json();
    assert_eq!(last["type"], "event.deleted");
    assert_eq!(last["data"]["id"], gone["data"]["id"]);
    assert_eq!(last["data"]["mailbox"], json!(a));

    // The queue shows what was delivered; the list never shows the secret.
    let d = api
        .get(
            &format!("/v1/webhooks/{hook}/deliveries?state=delivered"),
            Some(&api.admin_key),
        )
        .await
        .ok();
    assert_eq!(d["deliveries"].as_array().expect("list").len(), 7);
    assert!(
        d["deliveries"]
            .as_array()
            .expect("list")
            .iter()
            .all(|x| x["attempts"] == 1 && x["last_status"] == 204)
    );
    let list = api.get("/v1/webhooks", Some(&api.admin_key)).await;
    assert!(!list.text.contains(&secret));
    assert_eq!(list.json()["webhooks"][0]["id"], json!(hook));
    dispatch.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_every_delivery_in_order_then_dead_letters_replay() {
    let api = api().await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let (hook, secret) = add_hook(&api, &receiver.url, Some(&["event.created"])).await;
    let (a, b) = two_mailboxes(&api, "outage", 4).await;
    assert!(api.sync().await.is_success());
    let schedule = [40, 80, 160, 320, 640, 1000, 1000, 1000];
    let dispatch = dispatcher(&api, fast(&schedule));
    // Down for a while: attempts are made and refused; nothing is lost.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let refused = receiver.all().len();
    assert!(refused >= 4, "retries while down: {refused}");
    assert!(receiver.delivered().is_empty());
    receiver.answer(200);
    let got = receiver.wait_for(8).await;
    for who in [&a, &b] {
        let of_who = got
            .iter()
            .filter(|r| r.json()["data"]["mailbox"] == json!(who))
            .count();
        assert_eq!(of_who, 4, "{who}");
    }
    for r in &got {
        assert!(verifies(r, &secret));
    }
    // A retry repeats the message: the same id and body as the refused attempt.
    let all = receiver.all();
    let first = &all[0];
    let again = got
        .iter()
        .find(|r| r.id == first.id)
        .expect("delivered later");
    assert_eq!(again.body, first.body);
    let list = api
        .get(
            &format!("/v1/webhooks/{hook}/deliveries?limit=100"),
            Some(&api.admin_key),
        )
        .await
        .ok();
    let mut queued: Vec<(i64, String, String)> = list["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| {
            (
                d["id"].as_i64().expect("id"),
                d["mailbox"].as_str().expect("mailbox").to_owned(),
                d["webhook_id"].as_str().expect("msg id").to_owned(),
            )
        })
        .collect();
    queued.sort();
    for who in [&a, &b] {
        let want: Vec<&str> = queued
            .iter()
            .filter(|(_, m, _)| m.eq_ignore_ascii_case(who))
            .map(|(_, _, id)| id.as_str())
            .collect();
        let seen: Vec<&str> = got
            .iter()
            .filter(|r| r.json()["data"]["mailbox"] == json!(who))
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(seen, want, "{who}: delivered in queue order");
    }
    dispatch.shutdown(Duration::from_secs(5)).await;

    // Dead letters: a receiver that never recovers within the schedule.
    receiver.answer(500);
    api.control
        .create_event(
            &a,
            &event(
                "late",
                &format!("{}T15:00:00", day(72)),
                &format!("{}T16:00:00", day(72)),
                "busy",
            ),
        )
        .await;
    assert!(api.sync().await.is_success());
    let dispatch = dispatcher(&api, fast(&[20, 20]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let d = api
            .get(
                &format!("/v1/webhooks/{hook}/deliveries?state=dead"),
                Some(&api.admin_key),
            )
            .await
            .ok();
        if !d["deliveries"].as_array().expect("list").is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    let dead = &dead["deliveries"][0];
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert_eq!(dead["last_status"], 500);
    assert!(dead["last_error"].as_str().expect("error").contains("500"));
    receiver.answer(204);
    let r = api
        .post(
            &format!("/v1/webhooks/{hook}/replay"),
            Some(&api.admin_key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_eq!(r.json()["replayed"], 1);
    let got = receiver.wait_for(9).await;
    assert_eq!(
        got.last().expect("replayed").id,
        dead["webhook_id"].as_str().expect("id")
    );
    dispatch.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_and_notices_reach_the_feed() {
    let api = api().await;
    let receiver = Receiver::start().await;
    let cursor = api.get("/v1/changes", Some(&api.read_key)).await.ok()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let (hook, old) = add_hook(
        &api,
        &receiver.url,
        Some(&["mailbox.sync_failed", "mailbox.recovered"]),
    )
    .await;
    let r = api
        .post(
            &format!("/v1/webhooks/{hook}/rotate-secret"),
            Some(&api.admin_key),
            &json!({}),
        )
        .await
        .ok();
    let new = r["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    assert!(r["previous_secret_valid_until"].is_string(), "{r}");
    // A mailbox that is not in the tenant: its round fails, a sync_failed notice follows.
    let ghost = format!(
        "ghost@{}",
        api.users()[0].split_once('@').expect("domain").1
    );
    api.link(&ghost, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    assert!(!api.sync().await.is_success());
    assert!(
        !api.sync().await.is_success(),
        "second failure: no second notice"
    );
    let dispatch = dispatcher(&api, fast(&[50]));
    let got = receiver.wait_for(1).await;
    assert!(
        verifies(&got[0], &new) && verifies(&got[0], &old),
        "{:?}",
        got[0]
    );
    let v = got[0].json();
    assert_eq!(v["type"], "mailbox.sync_failed");
    assert_eq!(v["data"]["mailbox"], json!(ghost));
    assert!(v["data"]["error"]["message"].is_string(), "{v}");
    let (feed, _) = feed_from(&api, &cursor, 10).await;
    let types: Vec<&str> = feed.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(types, vec!["mailbox.sync_failed"]);
    dispatch.shutdown(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.all().len(),
        1,
        "the event types not asked for are not sent"
    );
}

#[tokio::test]
async fn change_feed_cursors_page_expire_and_refuse_garbage() {
    let api = api().await;
    let cursor = api.get("/v1/changes", Some(&api.read_key)).await.ok()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let (a, _) = two_mailboxes(&api, "feed", 3).await;
    assert!(api.sync().await.is_success());
    let (all, end) = feed_from(&api, &cursor, 4).await;
    assert_eq!(all.len(), 6);
    let positions: Vec<u64> = all
        .iter()
        .map(|v| v["id"].as_str().expect("id").parse().expect("number"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(
        all.iter()
            .all(|v| v["type"] == "event.created" && v["timestamp"].is_string())
    );
    // At the end: an empty page and the same cursor.
    let page = api
        .get(&format!("/v1/changes?cursor={end}"), Some(&api.read_key))
        .await
        .ok();
    assert_eq!(page["changes"], json!([]));
    assert_eq!(page["next_cursor"], json!(end));
    assert_eq!(page["more"], false);
    // Garbage and foreign cursors: 400 problem.
    for bad in ["garbage", "YzE6OTk5OTk5OTk", ""] {
        let r = api
            .get(&format!("/v1/changes?cursor={bad}x"), Some(&api.read_key))
            .await;
        r.problem(400);
    }
    let r = api
        .get(
            &format!("/v1/changes?cursor={end}&limit=0"),
            Some(&api.read_key),
        )
        .await;
    r.problem(400);
    // Older than what is kept: 410 with what to do.
    api.store
        .prune_change_log(Timestamp::now() + SignedDuration::from_secs(1))
        .await
        .expect("prune");
    api.control
        .create_event(
            &a,
            &event(
                "new",
                &format!("{}T18:00:00", day(48)),
                &format!("{}T19:00:00", day(48)),
                "busy",
            ),
        )
        .await;
    assert!(api.sync().await.is_success());
    let detail = api
        .get(&format!("/v1/changes?cursor={cursor}"), Some(&api.read_key))
        .await
        .problem(410);
    assert!(detail.contains("events"), "{detail}");
    let (after, _) = feed_from(&api, &end, 10).await;
    assert_eq!(after.len(), 1, "a cursor at the kept edge reads on");
    // Scopes: the feed is read-scope; endpoints are admin-scope.
    api.get("/v1/webhooks", Some(&api.read_key))
        .await
        .problem(403);
    api.get("/v1/changes", None).await.problem(401);
}

#[tokio::test]
async fn endpoints_are_validated_and_removed_with_their_queue() {
    let api = api().await;
    let key = Some(api.admin_key.as_str());
    for (body, says) in [
        (json!({"url": "http://lms.example.edu/hook"}), "https"),
        (json!({"url": "ftp://lms.example.edu/hook"}), "https"),
        (json!({"url": "not a url"}), "not a URL"),
        (
            json!({"url": "https://lms.example.edu/h", "events": ["event.moved"]}),
            "event type",
        ),
        (
            json!({"url": "https://lms.example.edu/h", "events": []}),
            "empty",
        ),
    ] {
        let detail = api.post("/v1/webhooks", key, &body).await.problem(400);
        assert!(detail.contains(says), "{body}: {detail}");
    }
    for (body, says) in [
        (
            json!({"url": "https://lms.example.edu/h", "secret": "mine"}),
            "secret",
        ),
        (json!({"events": ["event.created"]}), "url"),
    ] {
        let detail = api.post("/v1/webhooks", key, &body).await.problem(422);
        assert!(detail.contains(says), "{body}: {detail}");
    }
    assert!(api.store.webhooks().await.expect("list").is_empty());
    let (id, _) = add_hook(&api, "https://lms.example.edu/hooks/calgate", None).await;
    let r = api
        .send(api.request(Method::DELETE, &format!("/v1/webhooks/{id}"), key))
        .await;
    assert_eq!(r.status.as_u16(), 204);
    api.send(api.request(Method::DELETE, &format!("/v1/webhooks/{id}"), key))
        .await
        .problem(404);
    api.get(&format!("/v1/webhooks/{id}/deliveries"), key)
        .await
        .problem(404);
    api.post(&format!("/v1/webhooks/{id}/replay"), key, &json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn credential_expiry_is_told_once_per_threshold_and_once_expired() {
    use calgate_api::webhooks::credential_notices;
    let api = api().await;
    let cursor = api.get("/v1/changes", Some(&api.read_key)).await.ok()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let now = Timestamp::now();
    api.store
        .add_credential(
            "contoso",
            &calgate_store::NewCredential::secret(
                "second-secret",
                Some(now + SignedDuration::from_hours(24 * 10)),
            ),
        )
        .await
        .expect("credential");
    // The first credential has no recorded expiry: nothing about it.
    assert_eq!(
        credential_notices(api.store.as_ref(), now)
            .await
            .expect("check"),
        1
    );
    assert_eq!(
        credential_notices(api.store.as_ref(), now + SignedDuration::from_hours(1))
            .await
            .expect("again"),
        0,
        "once per threshold"
    );
    let in_4_days = now + SignedDuration::from_hours(24 * 4);
    assert_eq!(
        credential_notices(api.store.as_ref(), in_4_days)
            .await
            .expect("7"),
        1
    );
    let later = now + SignedDuration::from_hours(24 * 11);
    assert_eq!(
        credential_notices(api.store.as_ref(), later)
            .await
            .expect("expired"),
        1
    );
    assert_eq!(
        credential_notices(api.store.as_ref(), later)
            .await
            .expect("once"),
        0
    );
    let (feed, _) = feed_from(&api, &cursor, 10).await;
    let seen: Vec<(String, Value)> = feed
        .iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or("").to_owned(),
                v["data"]["threshold_days"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("credential.expiring".to_owned(), json!(14)),
            ("credential.expiring".to_owned(), json!(7)),
            ("credential.expired".to_owned(), Value::Null),
        ]
    );
    assert_eq!(feed[0]["data"]["connection"], "contoso");
    assert!(
        feed[0]["data"]["fix"]
            .as_str()
            .expect("fix")
            .contains("calgate connection secret add contoso")
    );
    assert!(
        !serde_json::to_string(&feed)
            .expect("json")
            .contains("second-secret")
    );
}

/// Issue 12's outage on the production schedule, in simulated time: the receiver is down for
/// ten minutes (attempts at 0 s, ~5 s, ~5 min are refused), up again afterwards; the next
/// attempt (~35 min) and everything queued behind it arrive, in order per mailbox, none dead.
#[tokio::test]
async fn a_receiver_down_for_ten_simulated_minutes_gets_everything_on_the_real_schedule() {
    use std::sync::atomic::AtomicI64;
    let api = api().await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let (hook, secret) = add_hook(&api, &receiver.url, Some(&["event.created"])).await;
    let (a, b) = two_mailboxes(&api, "tenmin", 3).await;
    assert!(api.sync().await.is_success());
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let options = DispatcherOptions {
        schedule: calgate_api::webhooks::RETRY_SCHEDULE.to_vec(),
        poll: Duration::from_millis(10),
        timeout: Duration::from_secs(2),
        clock: Some(Arc::new(move || {
            Timestamp::now() + SignedDuration::from_secs(clock_offset.load(Ordering::SeqCst))
        })),
        ..DispatcherOptions::default()
    };
    let dispatch = dispatcher(&api, options);
    // Ten simulated minutes, in steps of 20 s, each given time to tick.
    let advance_to = |secs: i64| {
        let offset = offset.clone();
        async move {
            while offset.load(Ordering::SeqCst) < secs {
                offset.fetch_add(20, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    advance_to(600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = receiver.all();
    assert!(receiver.delivered().is_empty());
    // Two mailboxes' first deliveries, each tried at 0 s, ~5 s and ~5 min; the rest wait.
    assert_eq!(refused.len(), 6, "{}", refused.len());
    assert_eq!(
        refused
            .iter()
            .map(|r| r.id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2
    );
    receiver.answer(200);
    // The next attempt is 30 min (±10 %) after the third: by 40 simulated minutes.
    advance_to(2400).await;
    let got = receiver.wait_for(6).await;
    assert_eq!(got.len(), 6);
    for r in &got {
        assert!(verifies(r, &secret));
    }
    let list = api
        .get(
            &format!("/v1/webhooks/{hook}/deliveries?limit=100"),
            Some(&api.admin_key),
        )
        .await
        .ok();
    let deliveries = list["deliveries"].as_array().expect("list");
    assert!(
        deliveries.iter().all(|d| d["state"] == "delivered"),
        "{list}"
    );
    let attempts: Vec<u64> = deliveries
        .iter()
        .filter_map(|d| d["attempts"].as_u64())
        .collect();
    assert_eq!(
        attempts.iter().filter(|n| **n == 4).count(),
        2,
        "{attempts:?}"
    );
    assert_eq!(
        attempts.iter().filter(|n| **n == 1).count(),
        4,
        "{attempts:?}"
    );
    for who in [&a, &b] {
        let mut queued: Vec<(i64, String)> = deliveries
            .iter()
            .filter(|d| {
                d["mailbox"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(who))
            })
            .map(|d| {
                (
                    d["id"].as_i64().expect("id"),
                    d["webhook_id"].as_str().expect("id").to_owned(),
                )
            })
            .collect();
        queued.sort();
        let seen: Vec<String> = got
            .iter()
            .filter(|r| r.json()["data"]["mailbox"] == json!(who))
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(
            seen,
            queued.into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
            "{who}: in order"
        );
    }
    dispatch.shutdown(Duration::from_secs(5)).await;
}
