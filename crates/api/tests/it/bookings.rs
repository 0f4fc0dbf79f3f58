//! Push: bookings through the REST API into the simulator, exactly once.

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_sync::push::PushOptions;
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, Reply, api};

async fn put(api: &Api, id: &str, body: &Value) -> Reply {
    api.send(
        api.request(
            Method::PUT,
            &format!("/v1/bookings/{id}"),
            Some(&api.write_key),
        )
        .json(body),
    )
    .await
}

async fn push(api: &Api) -> calgate_sync::push::PushSummary {
    api.engine
        .push(&PushOptions::default())
        .await
        .expect("push runs")
}

/// The simulator's instances of `address` with `subject` over the next 60 days.
async fn in_exchange(api: &Api, address: &str, subject: &str) -> Vec<Value> {
    let now = Timestamp::now();
    api.control
        .truth(
            address,
            now - SignedDuration::from_hours(24 * 30),
            now + SignedDuration::from_hours(24 * 60),
        )
        .await
        .into_iter()
        .filter(|e| e["subject"] == subject)
        .collect()
}

fn local(days: i64, hour: i8) -> String {
    let d = jiff::Zoned::now()
        .date()
        .checked_add(jiff::Span::new().days(days))
        .expect("date");
    format!("{d}T{hour:02}:00:00")
}

/// The change feed's present position.
async fn feed_cursor(api: &Api) -> String {
    api.get("/v1/changes", Some(&api.read_key)).await.ok()["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned()
}

/// The change feed's entries of `kind` after `cursor`.
async fn feed_of(api: &Api, cursor: &str, kind: &str) -> Vec<Value> {
    let page = api
        .get(
            &format!("/v1/changes?cursor={cursor}&limit=1000"),
            Some(&api.read_key),
        )
        .await
        .ok();
    page["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["type"] == kind)
        .cloned()
        .collect()
}

/// The target of booking JSON `b` for mailbox `address`.
fn target<'a>(b: &'a Value, address: &str) -> Option<&'a Value> {
    b["targets"].as_array().expect("targets").iter().find(|t| {
        t["address"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(address))
    })
}

struct Session {
    person: String,
    room: String,
    equipment: String,
}

async fn setup(api: &Api) -> Session {
    let s = Session {
        person: api.users()[0].clone(),
        room: api.rooms()[0].clone(),
        equipment: api.creds.addresses_of("equipment")[0].clone(),
    };
    api.link(&s.person, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    api.link(&s.room, MailboxKind::Room, PrivacyPolicy::Full)
        .await;
    api.link(&s.equipment, MailboxKind::Equipment, PrivacyPolicy::Full)
        .await;
    s
}

fn session_body(s: &Session, subject: &str) -> Value {
    json!({
        "subject": subject,
        "body": "Bring the slides.",
        "start": local(3, 10),
        "end": local(3, 12),
        "time_zone": "Europe/Amsterdam",
        "location": "Room Amstel",
        "calendars": [
            {"address": s.person, "role": "organizer"},
            {"address": s.room, "role": "room"},
            {"address": s.equipment, "role": "equipment"},
        ]
    })
}

#[tokio::test]
async fn a_session_goes_into_three_calendars_once_and_follows_updates_and_deletes() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Thesis defence";

    let r = put(&api, "course-42-session-7", &session_body(&s, subject)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let b = r.json();
    assert_eq!(b["state"], "pending");
    assert_eq!(b["targets"].as_array().map(Vec::len), Some(3));
    let cursor = feed_cursor(&api).await;

    let pushed = push(&api).await;
    assert_eq!(pushed.created, 3, "{pushed:?}");
    assert_eq!(pushed.failed + pushed.retried, 0, "{pushed:?}");
    let b = api
        .get("/v1/bookings/course-42-session-7", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["state"], "synced", "{b}");
    for t in b["targets"].as_array().expect("targets") {
        assert_eq!(t["state"], "synced", "{t}");
        assert!(t["exchange_id"].is_string(), "{t}");
    }
    // The host is told: one booking.synced per calendar, with Exchange's id.
    let synced = feed_of(&api, &cursor, "booking.synced").await;
    assert_eq!(synced.len(), 3, "{synced:?}");
    for t in b["targets"].as_array().expect("targets") {
        let address = t["address"].as_str().expect("address").to_ascii_lowercase();
        let n = synced
            .iter()
            .find(|n| n["data"]["calendar"] == json!(address))
            .unwrap_or_else(|| panic!("no booking.synced for {address}: {synced:?}"));
        assert_eq!(n["data"]["external_id"], "course-42-session-7");
        assert_eq!(n["data"]["exchange_id"], t["exchange_id"]);
    }
    for m in [&s.person, &s.room, &s.equipment] {
        let found = in_exchange(&api, m, subject).await;
        assert_eq!(found.len(), 1, "{m}: {found:?}");
        // Direct mode: a plain copy, nobody invited.
        assert_eq!(found[0]["attendees"], json!([]), "{m}: {}", found[0]);
        assert_eq!(
            found[0]["start"]["dateTime"].as_str().map(|d| &d[11..16]),
            Some(
                // 10:00 in Amsterdam is 09:00 UTC in winter, 08:00 in summer.
                if jiff::tz::TimeZone::get("Europe/Amsterdam")
                    .expect("zone")
                    .to_offset(Timestamp::now())
                    .seconds()
                    == 3600
                {
                    "09:00"
                } else {
                    "08:00"
                }
            )
        );
    }

    // Direct mode: not one invitation, request or otherwise.
    let sent = api.control.ok(Method::GET, "/invitations", None).await;
    assert_eq!(sent["count"], 0, "{sent}");

    // The same body again: nothing to do.
    let r = put(&api, "course-42-session-7", &session_body(&s, subject)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(push(&api).await.attempted, 0);

    // Pulled back: calgate's own events, with their booking, never new Exchange events.
    api.sync().await;
    let from = Timestamp::now().to_string();
    let to = (Timestamp::now() + SignedDuration::from_hours(24 * 10)).to_string();
    let events = api
        .get(
            &format!("/v1/mailboxes/{}/events?from={from}&to={to}", s.room),
            Some(&api.read_key),
        )
        .await
        .ok();
    let ours: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["subject"] == subject)
        .collect();
    assert_eq!(ours.len(), 1, "{events}");
    assert_eq!(ours[0]["origin"], "calgate");
    assert_eq!(ours[0]["booking_id"], "course-42-session-7");

    // An update: each copy changes in place.
    let moved = "Thesis defence (moved)";
    let mut body = session_body(&s, moved);
    body["start"] = json!(local(4, 14));
    body["end"] = json!(local(4, 15));
    let r = put(&api, "course-42-session-7", &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pushed = push(&api).await;
    assert_eq!((pushed.updated, pushed.created), (3, 0), "{pushed:?}");
    for m in [&s.person, &s.room, &s.equipment] {
        assert_eq!(in_exchange(&api, m, subject).await.len(), 0, "{m}");
        assert_eq!(in_exchange(&api, m, moved).await.len(), 1, "{m}");
    }

    // The room is dropped from the booking: only its copy goes.
    let mut body = body.clone();
    body["calendars"]
        .as_array_mut()
        .expect("calendars")
        .remove(1);
    assert_eq!(put(&api, "course-42-session-7", &body).await.status, 202);
    let pushed = push(&api).await;
    assert_eq!(pushed.removed, 1, "{pushed:?}");
    assert_eq!(in_exchange(&api, &s.room, moved).await.len(), 0);
    assert_eq!(in_exchange(&api, &s.person, moved).await.len(), 1);

    // Deleted: every copy goes, and the booking says so.
    let r = api
        .send(api.request(
            Method::DELETE,
            "/v1/bookings/course-42-session-7",
            Some(&api.write_key),
        ))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pushed = push(&api).await;
    assert_eq!(pushed.removed, 2, "{pushed:?}");
    for m in [&s.person, &s.room, &s.equipment] {
        assert_eq!(in_exchange(&api, m, moved).await.len(), 0, "{m}");
    }
    let b = api
        .get("/v1/bookings/course-42-session-7", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["deleted"], true);
    assert_eq!(b["state"], "synced", "{b}");
}

/// Booking `lost-1` into the room, and what a worker that died leaves behind: the outbox entry
/// claimed (its outcome unknown) and the event made in Exchange with calgate's properties, but
/// not recorded.
async fn lost_create(api: &Api, s: &Session, subject: &str) {
    let mut body = session_body(s, subject);
    body["calendars"] = json!([{"address": s.room, "role": "room"}]);
    assert_eq!(put(api, "lost-1", &body).await.status, 202);

    // A worker claimed the entry and created the event, then died before recording it.
    let task = api
        .store
        .due_pushes(Timestamp::now(), 10)
        .await
        .expect("outbox")
        .pop()
        .expect("one entry");
    assert!(
        api.store
            .claim_push(task.entry, Timestamp::now(), SignedDuration::ZERO)
            .await
            .expect("claim")
    );
    let client = calgate_graph::GraphClient::new(
        calgate_graph::ConnectionConfig::from_connection(
            &api.store
                .connection("contoso")
                .await
                .expect("store")
                .expect("connection"),
        )
        .expect("config"),
        api.engine.shared(),
    )
    .expect("client");
    let draft = calgate_graph::EventDraft {
        recurrence: None,
        subject: Some(subject.into()),
        body_text: None,
        start: task.spec.when.start,
        end: task.spec.when.end,
        time_zone: task.spec.when.time_zone.clone(),
        all_day: None,
        show_as: calgate_core::ShowAs::Busy,
        sensitivity: calgate_core::Sensitivity::Normal,
        location: None,
        attendees: vec![],
        // What calgate's own create carries.
        extended_properties: vec![
            (
                calgate_sync::backend::graph::MARKER_PROPERTY.to_owned(),
                "lost-1".to_owned(),
            ),
            (
                calgate_sync::backend::graph::OWNER_PROPERTY.to_owned(),
                calgate_sync::backend::graph::OWNER_VALUE.to_owned(),
            ),
        ],
    };
    client
        .create_event(&s.room, &draft, "an-earlier-attempt")
        .await
        .expect("created");
    assert_eq!(in_exchange(api, &s.room, subject).await.len(), 1);
}

#[tokio::test]
async fn an_attempt_whose_outcome_was_lost_is_found_by_its_marker_not_created_again() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Lost answer";
    lost_create(&api, &s, subject).await;
    let pushed = push(&api).await;
    assert_eq!((pushed.recovered, pushed.created), (1, 0), "{pushed:?}");
    let found = in_exchange(&api, &s.room, subject).await;
    assert_eq!(found.len(), 1, "no duplicate: {found:?}");
    let b = api
        .get("/v1/bookings/lost-1", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["state"], "synced", "{b}");
    assert_eq!(b["targets"][0]["exchange_id"], found[0]["id"], "{b}");
}

#[tokio::test]
async fn the_mapping_is_rebuilt_from_exchange_alone() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Lost answer";
    lost_create(&api, &s, subject).await;

    // The mapping is rebuilt from Exchange alone (`calgate push reconcile`).
    let r = api.engine.reconcile("contoso").await.expect("reconcile");
    assert_eq!((r.found, r.adopted, r.unknown), (1, 1, 0), "{r:?}");
    assert_eq!(
        api.engine
            .reconcile("contoso")
            .await
            .expect("again")
            .adopted,
        0,
        "known now"
    );
    let pushed = push(&api).await;
    assert_eq!((pushed.updated, pushed.created), (1, 0), "{pushed:?}");
    let found = in_exchange(&api, &s.room, subject).await;
    assert_eq!(found.len(), 1, "no duplicate: {found:?}");
    let b = api
        .get("/v1/bookings/lost-1", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["state"], "synced", "{b}");
    assert_eq!(b["targets"][0]["exchange_id"], found[0]["id"], "{b}");
}

#[tokio::test]
async fn a_dropped_connection_after_the_create_makes_no_duplicate() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Dropped answer";
    let mut body = session_body(&s, subject);
    body["calendars"] = json!([{"address": s.person, "role": "organizer"}]);
    assert_eq!(put(&api, "dropped-1", &body).await.status, 202);
    api.control
        .ok(
            Method::PUT,
            "/faults",
            Some(&json!({"drop_connection": {"count": 1, "method": "POST", "path_contains": "/events"}})),
        )
        .await;
    let pushed = push(&api).await;
    let faults = api.control.ok(Method::GET, "/faults", None).await;
    assert_eq!(faults["dropped_connections"], 1, "{faults}");
    // Either the retried POST met Graph's transactionId de-duplication, or the next run finds
    // the event by its marker: one event either way.
    if pushed.created + pushed.recovered == 0 {
        let again = api
            .engine
            .push(&PushOptions::default())
            .await
            .expect("push");
        assert!(again.attempted <= 1, "{again:?}");
    }
    assert_eq!(in_exchange(&api, &s.person, subject).await.len(), 1);
}

#[tokio::test]
async fn deleted_in_outlook_is_reported_not_recreated() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Deleted in Outlook";
    let mut body = session_body(&s, subject);
    body["calendars"] = json!([{"address": s.person, "role": "organizer"}]);
    assert_eq!(put(&api, "outlook-del", &body).await.status, 202);
    push(&api).await;
    let found = in_exchange(&api, &s.person, subject).await;
    let id = found[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(api.control.delete_event(&s.person, &id).await, 204);

    body["subject"] = json!("Deleted in Outlook, then changed");
    assert_eq!(put(&api, "outlook-del", &body).await.status, 202);
    let cursor = feed_cursor(&api).await;
    let pushed = push(&api).await;
    assert_eq!(pushed.gone_in_exchange, 1, "{pushed:?}");
    let gone = feed_of(&api, &cursor, "booking.deleted_in_exchange").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["data"]["external_id"], "outlook-del");
    assert_eq!(gone[0]["data"]["mailbox"], json!(s.person));
    assert_eq!(pushed.created, 0);
    assert_eq!(
        in_exchange(&api, &s.person, "Deleted in Outlook, then changed")
            .await
            .len(),
        0
    );
    let b = api
        .get("/v1/bookings/outlook-del", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["targets"][0]["state"], "deleted_in_exchange", "{b}");
}

#[tokio::test]
async fn bad_bookings_name_the_field_and_store_nothing() {
    let api = api().await;
    let s = setup(&api).await;
    let good = session_body(&s, "Good");
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = good.clone();
                b["end"] = json!(local(2, 9));
                b
            },
            "end",
        ),
        (
            {
                let mut b = good.clone();
                b["time_zone"] = json!("Mars/Olympus");
                b
            },
            "time_zone",
        ),
        (
            {
                let mut b = good.clone();
                b["start"] = json!("next tuesday");
                b
            },
            "start",
        ),
        (
            {
                let mut b = good.clone();
                b["calendars"][1]["address"] = json!("nobody@contoso.example");
                b
            },
            "calendars[1].address",
        ),
        (
            {
                let mut b = good.clone();
                b["calendars"][1]["role"] = json!("attendee");
                b
            },
            "calendars[1].role",
        ),
        (
            {
                let mut b = good.clone();
                b["mode"] = json!("meeting");
                b["calendars"] = json!([{"address": s.room, "role": "organizer"}]);
                b
            },
            "calendars[0].role",
        ),
        (
            {
                let mut b = good.clone();
                b["subject"] = json!(" ");
                b
            },
            "subject",
        ),
        (
            {
                let mut b = good.clone();
                b["calendars"] = json!([]);
                b
            },
            "calendars",
        ),
        (
            {
                let mut b = good.clone();
                b["recurrence"] = json!({"rrule": "FREQ=DAILY"});
                b
            },
            "recurrence.rrule",
        ),
        (
            {
                let mut b = good.clone();
                b["show_as"] = json!("maybe");
                b
            },
            "show_as",
        ),
    ];
    for (body, field) in cases {
        let r = put(&api, "bad-1", &body).await;
        let detail = r.problem(422);
        assert!(
            detail.starts_with(&format!("{field}:")),
            "{field}: {detail}"
        );
    }
    // Not JSON, too big, a bad id.
    let r = api
        .send(
            api.request(Method::PUT, "/v1/bookings/bad-1", Some(&api.write_key))
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    r.problem(400);
    let big = json!({"subject": "x".repeat(10 * 1024 * 1024)});
    put(&api, "bad-1", &big).await.problem(413);
    put(&api, "a%2Fb", &good).await.problem(400);
    // A read key may not write.
    let r = api
        .send(
            api.request(Method::PUT, "/v1/bookings/bad-1", Some(&api.read_key))
                .json(&good),
        )
        .await;
    r.problem(403);
    assert!(
        api.store
            .list_bookings(None, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 0);
    api.get("/v1/bookings/bad-1", Some(&api.read_key))
        .await
        .problem(404);
}

#[tokio::test]
async fn bookings_are_listed_by_state_across_pages() {
    let api = api().await;
    let s = setup(&api).await;
    for i in 0..5 {
        let mut body = session_body(&s, &format!("Listed {i}"));
        body["calendars"] = json!([{"address": s.person, "role": "organizer"}]);
        assert_eq!(put(&api, &format!("list-{i}"), &body).await.status, 202);
    }
    let pending = api
        .get("/v1/bookings?state=pending&limit=2", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(pending["bookings"].as_array().map(Vec::len), Some(2));
    let cursor = pending["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let next = api
        .get(
            &format!("/v1/bookings?state=pending&limit=10&cursor={cursor}"),
            Some(&api.read_key),
        )
        .await
        .ok();
    assert_eq!(next["bookings"].as_array().map(Vec::len), Some(3));
    assert_eq!(next["next_cursor"], Value::Null);
    push(&api).await;
    let synced = api
        .get("/v1/bookings?state=synced", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(synced["bookings"].as_array().map(Vec::len), Some(5));
    let failed = api
        .get("/v1/bookings?state=failed", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(failed["bookings"], json!([]));
    api.get("/v1/bookings?state=bogus", Some(&api.read_key))
        .await
        .problem(400);
}

#[tokio::test]
async fn an_outlook_edit_is_put_back_and_an_outlook_delete_is_reported_after_a_pull() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Office hours";
    let mut body = session_body(&s, subject);
    body["calendars"] = json!([
        {"address": s.person, "role": "organizer"},
        {"address": s.room, "role": "room"},
    ]);
    assert_eq!(put(&api, "oh-1", &body).await.status, 202);
    assert_eq!(push(&api).await.created, 2);
    // Our own writes, pulled back, are not drift.
    api.sync().await;
    assert_eq!(
        api.store.reconcile_pushed().await.expect("reconcile"),
        (0, 0)
    );
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 0);

    // Someone renames the person's copy in Outlook and deletes the room's.
    let person_ev = in_exchange(&api, &s.person, subject).await.remove(0);
    let room_ev = in_exchange(&api, &s.room, subject).await.remove(0);
    let id = person_ev["id"].as_str().expect("id");
    api.control
        .ok(
            Method::PATCH,
            &format!("/mailboxes/{}/events/{id}", s.person),
            Some(&json!({"subject": "Renamed in Outlook"})),
        )
        .await;
    assert_eq!(
        api.control
            .delete_event(&s.room, room_ev["id"].as_str().expect("id"))
            .await,
        204
    );
    api.sync().await;
    let b = api.get("/v1/bookings/oh-1", Some(&api.read_key)).await.ok();
    let state_of = |a: &str| target(&b, a).map(|t| t["state"].clone());
    assert_eq!(state_of(&s.person), Some(json!("pending")), "{b}");
    assert_eq!(state_of(&s.room), Some(json!("deleted_in_exchange")), "{b}");
    let pushed = push(&api).await;
    assert_eq!((pushed.updated, pushed.created), (1, 0), "{pushed:?}");
    assert_eq!(
        in_exchange(&api, &s.person, subject).await.len(),
        1,
        "app wins"
    );
    assert_eq!(
        in_exchange(&api, &s.room, subject).await.len(),
        0,
        "not re-created"
    );
    // And it settles: the re-applied event pulled back is not drift again.
    api.sync().await;
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_pushes_a_booking_in_the_background() {
    let api = crate::common::api_with(crate::common::Options {
        cadence: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    })
    .await;
    let s = setup(&api).await;
    let mut body = session_body(&s, "Pushed by the service");
    body["calendars"] = json!([{"address": s.room, "role": "room"}]);
    let asked = std::time::Instant::now();
    assert_eq!(put(&api, "bg-1", &body).await.status, 202);
    loop {
        let b = api.get("/v1/bookings/bg-1", Some(&api.read_key)).await.ok();
        if b["state"] == "synced" {
            break;
        }
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(10),
            "not pushed within 10 s (long before the 60 s cadence): {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        in_exchange(&api, &s.room, "Pushed by the service")
            .await
            .len(),
        1
    );
    if let Some(sched) = &api.scheduler {
        sched.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_weekly_series_with_a_cancelled_and_a_moved_occurrence_is_one_series_in_exchange() {
    let api = api().await;
    let s = setup(&api).await;
    let subject = "Weekly seminar";
    let occ = |week: i64, hour: i8| local(3 + 7 * week, hour);
    let mut body = session_body(&s, subject);
    body["calendars"] = json!([
        {"address": s.person, "role": "organizer"},
        {"address": s.room, "role": "room"},
    ]);
    body["start"] = json!(occ(0, 10));
    body["end"] = json!(occ(0, 11));
    body["recurrence"] = json!({
        "rrule": "FREQ=WEEKLY;COUNT=4",
        "exdates": [occ(1, 10)],
        "overrides": [{"original_start": occ(2, 10), "start": occ(2, 14), "end": occ(2, 15), "subject": "Weekly seminar (moved)"}],
    });
    let r = put(&api, "seminar", &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pushed = push(&api).await;
    let b = api
        .get("/v1/bookings/seminar", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(pushed.created, 2, "{pushed:?} {b}");
    let check = |label: &'static str| {
        let api = &api;
        let s = &s;
        async move {
            for m in [&s.person, &s.room] {
                let plain = in_exchange(api, m, subject).await;
                let moved = in_exchange(api, m, "Weekly seminar (moved)").await;
                assert_eq!(plain.len(), 2, "{label} {m}: weeks 0 and 3: {plain:?}");
                assert_eq!(moved.len(), 1, "{label} {m}: week 2 moved: {moved:?}");
                for e in plain.iter().chain(&moved) {
                    assert!(e["seriesMasterId"].is_string(), "{label}: one series: {e}");
                }
                assert_eq!(moved[0]["type"], "exception", "{label}");
            }
        }
    };
    check("after create").await;
    // The host changes the series' location: Exchange keeps one series, exceptions kept.
    body["location"] = json!("Room Amstel, 2nd floor");
    assert_eq!(put(&api, "seminar", &body).await.status, 202);
    let pushed = push(&api).await;
    assert_eq!((pushed.updated, pushed.created), (2, 0), "{pushed:?}");
    check("after update").await;
    // Pulled back: every occurrence is calgate's.
    api.sync().await;
    let from = Timestamp::now().to_string();
    let to = (Timestamp::now() + SignedDuration::from_hours(24 * 40)).to_string();
    let events = api
        .get(
            &format!("/v1/mailboxes/{}/events?from={from}&to={to}", s.room),
            Some(&api.read_key),
        )
        .await
        .ok();
    let ours: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["booking_id"] == "seminar")
        .collect();
    assert_eq!(ours.len(), 3, "{events}");
    assert!(ours.iter().all(|e| e["origin"] == "calgate"));
    // Bad series are refused, naming the field.
    let mut bad = body.clone();
    bad["recurrence"]["rrule"] = json!("FREQ=WEEKLY");
    assert!(
        put(&api, "seminar-2", &bad)
            .await
            .problem(422)
            .starts_with("recurrence.rrule:")
    );
    let mut bad = body.clone();
    bad["recurrence"]["exdates"] = json!([occ(1, 9)]);
    assert!(
        put(&api, "seminar-2", &bad)
            .await
            .problem(422)
            .starts_with("recurrence.exdates[0]:")
    );
    let mut bad = body.clone();
    bad["recurrence"]["rrule"] = json!("FREQ=DAILY;COUNT=5000");
    assert!(
        put(&api, "seminar-2", &bad)
            .await
            .problem(422)
            .starts_with("recurrence.rrule:")
    );
    // Deleted: the whole series goes.
    api.send(api.request(Method::DELETE, "/v1/bookings/seminar", Some(&api.write_key)))
        .await;
    assert_eq!(push(&api).await.removed, 2);
    for m in [&s.person, &s.room] {
        assert!(in_exchange(&api, m, subject).await.is_empty());
        assert!(
            in_exchange(&api, m, "Weekly seminar (moved)")
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_meeting_invites_the_other_calendars_and_reports_their_answers() {
    let api = api().await;
    let s = setup(&api).await;
    let guest = api.users()[1].clone();
    api.link(&guest, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    let subject = "Project review";
    let mut body = session_body(&s, subject);
    body["mode"] = json!("meeting");
    body["calendars"] = json!([
        {"address": s.person, "role": "organizer"},
        {"address": guest, "role": "attendee"},
        {"address": s.room, "role": "room"},
        {"address": s.equipment, "role": "equipment"},
    ]);
    assert_eq!(put(&api, "review-1", &body).await.status, 202);
    let pushed = push(&api).await;
    assert_eq!(pushed.failed + pushed.retried, 0, "{pushed:?}");
    // One meeting, written once, in the organizer's calendar; Exchange invited the others.
    let organizer = in_exchange(&api, &s.person, subject).await;
    assert_eq!(organizer.len(), 1, "{organizer:?}");
    assert_eq!(organizer[0]["attendees"].as_array().map(Vec::len), Some(3));
    let sent = api
        .control
        .ok(Method::GET, "/invitations?kind=request", None)
        .await;
    assert_eq!(sent["count"], 3, "{sent}");
    assert_eq!(
        in_exchange(&api, &guest, subject).await.len(),
        1,
        "the guest's copy"
    );
    let b = api
        .get("/v1/bookings/review-1", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["state"], "synced", "{b}");
    let answer = |a: &str| {
        target(&b, a)
            .map(|t| t["response"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(answer(&s.room), "accepted", "{b}");
    assert_eq!(answer(&s.equipment), "accepted", "{b}");
    assert_eq!(answer(&guest), "none", "{b}");
    // Pulled back: the guest's and the room's copies are calgate's meeting, not new events.
    api.sync().await;
    let from = Timestamp::now().to_string();
    let to = (Timestamp::now() + SignedDuration::from_hours(24 * 10)).to_string();
    for m in [&guest, &s.room] {
        let events = api
            .get(
                &format!("/v1/mailboxes/{m}/events?from={from}&to={to}"),
                Some(&api.read_key),
            )
            .await
            .ok();
        let ours: Vec<&Value> = events["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["booking_id"] == "review-1")
            .collect();
        assert_eq!(ours.len(), 1, "{m}: {events}");
        assert_eq!(ours[0]["origin"], "calgate");
    }

    // A second meeting at the same time: the room declines it, and the booking says so.
    let mut clash = body.clone();
    clash["subject"] = json!("Clashing review");
    clash["calendars"] = json!([
        {"address": guest, "role": "organizer"},
        {"address": s.room, "role": "room"},
    ]);
    assert_eq!(put(&api, "review-2", &clash).await.status, 202);
    push(&api).await;
    let b = api
        .get("/v1/bookings/review-2", Some(&api.read_key))
        .await
        .ok();
    let room = b["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["role"] == "room")
        .cloned()
        .expect("room");
    assert_eq!(room["response"], "declined", "{b}");

    // Cancelled: the organizer's meeting goes; the room drops its copy.
    api.send(api.request(
        Method::DELETE,
        "/v1/bookings/review-1",
        Some(&api.write_key),
    ))
    .await;
    push(&api).await;
    assert!(in_exchange(&api, &s.person, subject).await.is_empty());
    let cancels = api
        .control
        .ok(Method::GET, "/invitations?kind=cancel", None)
        .await;
    assert_eq!(cancels["count"], 3, "{cancels}");
}

#[tokio::test]
async fn with_the_report_policy_an_outlook_edit_is_marked_drifted_and_left_alone() {
    let api = api().await;
    let s = setup(&api).await;
    assert!(
        api.store
            .set_outlook_edits("contoso", calgate_core::booking::OutlookEdits::Report)
            .await
            .expect("set")
    );
    let subject = "Reported edit";
    let mut body = session_body(&s, subject);
    body["calendars"] = json!([{"address": s.person, "role": "organizer"}]);
    assert_eq!(put(&api, "rep-1", &body).await.status, 202);
    push(&api).await;
    api.sync().await;
    let ev = in_exchange(&api, &s.person, subject).await.remove(0);
    api.control
        .ok(
            Method::PATCH,
            &format!(
                "/mailboxes/{}/events/{}",
                s.person,
                ev["id"].as_str().expect("id")
            ),
            Some(&json!({"subject": "Changed by hand"})),
        )
        .await;
    let cursor = feed_cursor(&api).await;
    api.sync().await;
    let b = api
        .get("/v1/bookings/rep-1", Some(&api.read_key))
        .await
        .ok();
    assert_eq!(b["targets"][0]["state"], "drifted", "{b}");
    let drifted = feed_of(&api, &cursor, "booking.drifted").await;
    assert_eq!(drifted.len(), 1, "{drifted:?}");
    assert_eq!(drifted[0]["data"]["external_id"], "rep-1");
    assert_eq!(api.store.pending_pushes().await.expect("outbox"), 0);
    assert_eq!(push(&api).await.attempted, 0);
    assert_eq!(
        in_exchange(&api, &s.person, "Changed by hand").await.len(),
        1,
        "left alone"
    );
    // Putting the booking again (changed) overwrites it.
    body["location"] = json!("Room 2");
    assert_eq!(put(&api, "rep-1", &body).await.status, 202);
    assert_eq!(push(&api).await.updated, 1);
    assert_eq!(in_exchange(&api, &s.person, subject).await.len(), 1);
}
