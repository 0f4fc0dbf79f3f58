//! Events of a mailbox: the window, pagination, ETags, privacy.

use std::collections::BTreeSet;

use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::Value;

use crate::common::api;

fn window() -> (Timestamp, Timestamp) {
    let now = Timestamp::now().round(jiff::Unit::Second).expect("round");
    (
        now - SignedDuration::from_hours(24 * 7),
        now + SignedDuration::from_hours(24 * 60),
    )
}

#[tokio::test]
async fn events_match_exchange_across_pages_with_etags() {
    let api = api().await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    assert!(api.sync().await.is_success());
    let key = Some(api.read_key.as_str());
    let (from, to) = window();
    let base = format!("/v1/mailboxes/{user}/events?from={from}&to={to}");

    let all = api.get(&format!("{base}&limit=1000"), key).await.ok();
    assert!(all["next_cursor"].is_null(), "{all}");
    let events = all["events"].as_array().expect("events").clone();
    assert!(events.len() > 20, "too few to page: {}", events.len());

    // The same instances as the simulator's truth over the window.
    let truth: BTreeSet<String> = api
        .control
        .truth(&user, from, to)
        .await
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let served: BTreeSet<String> = events
        .iter()
        .map(|e| e["exchange_id"].as_str().expect("exchange_id").to_owned())
        .collect();
    assert_eq!(served.len(), events.len(), "an instance is served twice");
    assert_eq!(served, truth);
    for e in &events {
        assert_eq!(e["mailbox"], user);
        assert!(e["subject"].is_string() || e["subject"].is_null());
        let busy = e["busy"].as_bool().expect("busy");
        let show_as = e["show_as"].as_str().expect("show_as");
        assert_eq!(busy, !matches!(show_as, "free" | "workingElsewhere"), "{e}");
    }
    // Ordered by start.
    let starts: Vec<Timestamp> = events
        .iter()
        .map(|e| {
            e["start"]
                .as_str()
                .expect("start")
                .parse()
                .expect("instant")
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));

    // Pages of 7 give the same list, in the same order, each instance once.
    let mut paged: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}&limit=7&cursor={c}"),
            None => format!("{base}&limit=7"),
        };
        let page = api.get(&path, key).await.ok();
        let batch = page["events"].as_array().expect("events");
        assert!(batch.len() <= 7);
        paged.extend(batch.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 1000, "pagination does not end");
    }
    assert_eq!(pages, events.len().div_ceil(7));
    assert_eq!(paged, events);

    // A cursor belongs to its window.
    let first = api.get(&format!("{base}&limit=7"), key).await.ok();
    let c = first["next_cursor"].as_str().expect("cursor");
    let other = format!(
        "/v1/mailboxes/{user}/events?from={}&to={to}&limit=7&cursor={c}",
        from + SignedDuration::from_hours(1)
    );
    api.get(&other, key).await.problem(400);
    api.get(&format!("{base}&cursor=bm90LWEtY3Vyc29y"), key)
        .await
        .problem(400);

    // ETag: a matching If-None-Match gets 304 without a body; a change in Exchange, once
    // synced, changes the ETag.
    let r = api.get(&format!("{base}&limit=1000"), key).await;
    let etag = r.header("etag").expect("etag").to_owned();
    let r = api
        .send(
            api.request(Method::GET, &format!("{base}&limit=1000"), key)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(r.status, 304);
    assert!(r.text.is_empty());
    let r = api
        .send(
            api.request(Method::GET, &format!("{base}&limit=1000"), key)
                .header("if-none-match", "W/\"something-else\""),
        )
        .await;
    assert_eq!(r.status, 200);
    let start = (Timestamp::now() + SignedDuration::from_hours(48))
        .round(jiff::Unit::Hour)
        .expect("round");
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    api.control
        .create_event(
            &user,
            &crate::common::event(
                "ETag changer",
                &fmt(start),
                &fmt(start + SignedDuration::from_hours(1)),
                "busy",
            ),
        )
        .await;
    assert!(api.sync().await.is_success());
    let r = api
        .send(
            api.request(Method::GET, &format!("{base}&limit=1000"), key)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(r.status, 200, "the ETag did not change with the data");
    assert!(r.text.contains("ETag changer"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn busy_only_mailboxes_never_serve_details() {
    let api = api().await;
    let users = api.users();
    let (open, closed) = (users[0].clone(), users[1].clone());
    api.link(&open, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    api.link(&closed, MailboxKind::User, PrivacyPolicy::BusyOnly)
        .await;
    assert!(api.sync().await.is_success());
    let (from, to) = window();
    let key = Some(api.read_key.as_str());

    let subjects: Vec<String> = api
        .control
        .truth(&closed, from, to)
        .await
        .iter()
        .filter_map(|e| e["subject"].as_str().map(str::to_owned))
        .filter(|s| s.len() > 3)
        .collect();
    assert!(!subjects.is_empty());
    let r = api
        .get(
            &format!("/v1/mailboxes/{closed}/events?from={from}&to={to}&limit=1000"),
            key,
        )
        .await;
    let v = r.ok();
    let events = v["events"].as_array().expect("events");
    assert!(!events.is_empty());
    for e in events {
        assert_eq!(e["details_hidden"], true, "{e}");
        for hidden in [
            "subject",
            "location",
            "body_preview",
            "organizer",
            "attendees",
        ] {
            assert!(e.get(hidden).is_none(), "{hidden} served: {e}");
        }
        assert!(e["start"].is_string() && e["busy"].is_boolean());
    }
    for s in &subjects {
        assert!(!r.text.contains(s.as_str()), "subject {s:?} served");
    }

    // The full mailbox shows its (normal) subjects.
    let v = api
        .get(
            &format!("/v1/mailboxes/{open}/events?from={from}&to={to}&limit=1000"),
            key,
        )
        .await
        .ok();
    assert!(
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["details_hidden"] == false && e["subject"].is_string()),
        "{v}"
    );
}

#[tokio::test]
async fn dates_and_percent_encoded_addresses_are_understood() {
    let api = api().await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    assert!(api.sync().await.is_success());
    let key = Some(api.read_key.as_str());
    let today = Timestamp::now().strftime("%Y-%m-%d").to_string();
    let later = (Timestamp::now() + SignedDuration::from_hours(24 * 30))
        .strftime("%Y-%m-%d")
        .to_string();
    let plain = api
        .get(
            &format!("/v1/mailboxes/{user}/events?from={today}&to={later}"),
            key,
        )
        .await
        .ok();
    let encoded = api
        .get(
            &format!(
                "/v1/mailboxes/{}/events?from={today}T00%3A00%3A00Z&to={later}T00:00:00%2B00:00",
                user.replace('@', "%40").to_uppercase()
            ),
            key,
        )
        .await
        .ok();
    assert_eq!(plain, encoded);
}
