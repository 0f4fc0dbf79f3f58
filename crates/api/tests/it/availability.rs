//! Availability against a hand-computed expectation.

use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::common::{api, event};

#[tokio::test]
async fn availability_merges_busy_time_and_finds_common_free_slots() {
    let api = api().await;
    let person = api.empty_mailbox("avail.person", "user").await;
    let room = api.empty_mailbox("avail.room", "room").await;
    // A day three days ahead (UTC), inside the sync window.
    let day = (Timestamp::now() + SignedDuration::from_hours(72))
        .strftime("%Y-%m-%d")
        .to_string();
    let at = |hm: &str| format!("{day}T{hm}:00");
    for (start, end, show_as) in [
        ("07:00", "08:30", "busy"),      // starts before the window: clipped
        ("09:00", "10:00", "busy"),      //
        ("09:30", "11:00", "tentative"), // overlaps: merged to 09:00–11:00
        ("13:00", "14:00", "free"),      // free: not busy
        ("15:00", "16:00", "oof"),       // out of office: busy
    ] {
        api.control
            .create_event(&person, &event("p", &at(start), &at(end), show_as))
            .await;
    }
    for (start, end, show_as) in [
        ("10:30", "12:00", "busy"),
        ("16:00", "16:30", "workingElsewhere"), // not busy by default
        ("17:30", "19:00", "busy"),             // ends after the window: clipped
    ] {
        api.control
            .create_event(&room, &event("r", &at(start), &at(end), show_as))
            .await;
    }
    api.link(&person, MailboxKind::User, PrivacyPolicy::BusyOnly)
        .await;
    api.link(&room, MailboxKind::Room, PrivacyPolicy::Full)
        .await;
    assert!(api.sync().await.is_success());

    let z = |hm: &str| format!("{day}T{hm}:00Z");
    let iv = |a: &str, b: &str| json!({ "start": z(a), "end": z(b) });
    let body = json!({
        "mailboxes": [person, room.to_uppercase()],
        "from": z("08:00"),
        "to": z("18:00"),
        "duration_minutes": 60,
    });
    let v = api
        .post("/v1/availability", Some(&api.read_key), &body)
        .await
        .ok();
    let expected = json!([
        {
            "address": person,
            "busy": [iv("08:00", "08:30"), iv("09:00", "11:00"), iv("15:00", "16:00")],
        },
        {
            "address": room,
            "busy": [iv("10:30", "12:00"), iv("17:30", "18:00")],
        },
    ]);
    let got: Vec<Value> = v["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .map(|m| {
            assert!(m["last_synced"].is_string(), "{m}");
            json!({ "address": m["address"], "busy": m["busy"] })
        })
        .collect();
    assert_eq!(Value::Array(got), expected, "{v}");
    // Together busy 08:00–08:30, 09:00–12:00, 15:00–16:00, 17:30–18:00: free for an hour
    // or more 12:00–15:00 and 16:00–17:30 (08:30–09:00 is too short).
    assert_eq!(
        v["free_slots"],
        json!([iv("12:00", "15:00"), iv("16:00", "17:30")]),
        "{v}"
    );

    // 30-minute slots also find 08:30–09:00.
    let mut body30 = body.clone();
    body30["duration_minutes"] = json!(30);
    let v = api
        .post("/v1/availability", Some(&api.read_key), &body30)
        .await
        .ok();
    assert_eq!(
        v["free_slots"],
        json!([
            iv("08:30", "09:00"),
            iv("12:00", "15:00"),
            iv("16:00", "17:30")
        ])
    );

    // Busy time is kept between requests, and follows the store: a change synced from
    // Exchange shows at once; a mailbox unlinked and linked again starts from nothing.
    api.control
        .create_event(&room, &event("r", &at("12:00"), &at("13:00"), "busy"))
        .await;
    assert!(api.sync().await.is_success());
    let v = api
        .post("/v1/availability", Some(&api.read_key), &body)
        .await
        .ok();
    assert_eq!(
        v["free_slots"],
        json!([iv("13:00", "15:00"), iv("16:00", "17:30")]),
        "{v}"
    );
    assert!(api.store.unlink_mailbox(&person).await.expect("unlink"));
    api.link(&person, MailboxKind::User, PrivacyPolicy::BusyOnly)
        .await;
    let v = api
        .post("/v1/availability", Some(&api.read_key), &body)
        .await
        .ok();
    assert_eq!(v["mailboxes"][0]["busy"], json!([]), "{v}");
    assert!(v["mailboxes"][0]["last_synced"].is_null(), "{v}");
    assert!(api.sync().await.is_success());
    let v = api
        .post("/v1/availability", Some(&api.read_key), &body)
        .await
        .ok();
    assert_eq!(
        v["mailboxes"][0]["busy"].as_array().map(Vec::len),
        Some(3),
        "{v}"
    );

    // An unknown mailbox is named; an empty list is refused.
    let domain = person.split_once('@').expect("address").1;
    let mut unknown = body.clone();
    unknown["mailboxes"] = json!([person, format!("not.linked@{domain}")]);
    let detail = api
        .post("/v1/availability", Some(&api.read_key), &unknown)
        .await
        .problem(404);
    assert!(detail.contains("not.linked@"), "{detail}");
    let mut empty = body.clone();
    empty["mailboxes"] = json!([]);
    api.post("/v1/availability", Some(&api.read_key), &empty)
        .await
        .problem(400);
}
