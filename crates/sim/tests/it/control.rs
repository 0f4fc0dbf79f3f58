//! The control API for events (`/_sim/mailboxes/{addr}/events…`): changes made as a person in
//! Outlook would, the truth endpoint, random changes, delta faults, and their errors; and the
//! body shape every control endpoint that takes JSON insists on (an object).
use std::collections::BTreeSet;

use crate::common::*;
use crate::delta::{WE, WS, fixture, single};

fn series(subject: &str, start: &str, end: &str, count: u32) -> Value {
    json!({"subject": subject,
        "start": {"dateTime": start, "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": end, "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "startDate": &start[..10], "numberOfOccurrences": count}}})
}

#[tokio::test]
async fn control_events_single_lifecycle_touches_the_item() {
    let f = fixture("single").await;
    let (s, b) = f
        .control(
            reqwest::Method::POST,
            "/events",
            Some(&single(
                "Dentist",
                "2031-03-02T09:00:00",
                "2031-03-02T10:00:00",
            )),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["event"]["type"], "singleInstance");
    assert_eq!(
        b["event"]["organizer"]["emailAddress"]["address"],
        f.addr.as_str(),
        "owner organizes"
    );
    let t0 = f.truth(WS, WE).await;
    assert_eq!(t0[&id]["subject"], "Dentist");
    let ck0 = t0[&id]["changeKey"].clone();

    // Move the simulated clock: the edit's lastModifiedDateTime follows it.
    let (s, _) =
        f.ts.control(
            reqwest::Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 86_400 * 3})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = f
        .control(reqwest::Method::PATCH, &format!("/events/{id}"), Some(&json!({"subject": "Dentist (moved)", "showAs": "oof", "sensitivity": "private",
            "start": {"dateTime": "2031-03-03T11:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-03T12:00:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 200, "{b}");
    let t1 = f.truth(WS, WE).await;
    let e = &t1[&id];
    assert_eq!(e["subject"], "Dentist (moved)");
    assert_eq!(e["showAs"], "oof");
    assert_eq!(e["sensitivity"], "private");
    assert_eq!(e["start"]["dateTime"], "2031-03-03T11:00:00.0000000");
    assert_ne!(e["changeKey"], ck0, "a mutation gives a new change key");
    let lm: jiff::Timestamp = e["lastModifiedDateTime"].as_str().unwrap().parse().unwrap();
    assert!(
        lm > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(60),
        "simulated clock used: {lm}"
    );

    let (s, _) = f
        .control(reqwest::Method::DELETE, &format!("/events/{id}"), None)
        .await;
    assert_eq!(s, 204);
    assert!(f.truth(WS, WE).await.is_empty());
    let (s, b) = f
        .control(reqwest::Method::DELETE, &format!("/events/{id}"), None)
        .await;
    assert_eq!(s, 404);
    assert_graph_error(&b, "ErrorItemNotFound");
}

#[tokio::test]
async fn control_events_series_occurrences_and_pattern_change() {
    let f = fixture("series").await;
    let master = f
        .create(series(
            "Standup",
            "2031-03-02T09:00:00",
            "2031-03-02T09:15:00",
            5,
        ))
        .await;
    let t = f.truth(WS, WE).await;
    let mut occ: Vec<&Value> = t
        .values()
        .filter(|v| v["seriesMasterId"] == master.as_str())
        .collect();
    occ.sort_by_key(|v| v["start"]["dateTime"].as_str().unwrap().to_owned());
    assert_eq!(occ.len(), 5);
    // 09:00 W. Europe (UTC+1 in early March) = 08:00Z.
    assert_eq!(occ[0]["start"]["dateTime"], "2031-03-02T08:00:00.0000000");
    let orig1 = occ[1]["originalStart"].as_str().unwrap().to_owned();
    let id1 = occ[1]["id"].as_str().unwrap().to_owned();
    let orig2 = occ[2]["originalStart"].as_str().unwrap().to_owned();
    let id3 = occ[3]["id"].as_str().unwrap().to_owned();
    let id4 = occ[4]["id"].as_str().unwrap().to_owned();

    // Move one occurrence (→ exception with the same id).
    let (s, b) = f
        .control(reqwest::Method::PATCH, &format!("/events/{master}/occurrences/{orig1}"), Some(&json!({"subject": "Standup (late)",
            "start": {"dateTime": "2031-03-03T16:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-03T16:15:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["id"], id1.as_str());
    assert_eq!(b["event"]["type"], "exception");
    // Cancel one by original start, another through its occurrence id.
    let (s, b) = f
        .control(
            reqwest::Method::DELETE,
            &format!("/events/{master}/occurrences/{orig2}"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = f
        .control(reqwest::Method::DELETE, &format!("/events/{id3}"), None)
        .await;
    assert_eq!(s, 204, "{b}");
    // Edit one through its occurrence id.
    let (s, b) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{id4}"),
            Some(&json!({"showAs": "tentative"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["event"]["type"], "exception");

    let t = f.truth(WS, WE).await;
    let mine: Vec<&Value> = t
        .values()
        .filter(|v| v["seriesMasterId"] == master.as_str())
        .collect();
    assert_eq!(mine.len(), 3, "two cancelled");
    assert_eq!(t[&id1]["start"]["dateTime"], "2031-03-03T16:00:00.0000000");
    assert_eq!(t[&id1]["subject"], "Standup (late)");
    assert_eq!(t[&id4]["showAs"], "tentative");
    // Cancelling twice, or an instant that is no occurrence → 404.
    let (s, b) = f
        .control(
            reqwest::Method::DELETE,
            &format!("/events/{master}/occurrences/{orig2}"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{master}/occurrences/2031-03-02T08:30:00Z"),
            Some(&json!({"subject": "x"})),
        )
        .await;
    assert_eq!(s, 404);

    // A new pattern drops exceptions and cancellations (as Exchange does) and re-expands.
    let (s, b) = f
        .control(
            reqwest::Method::PUT,
            &format!("/events/{master}/recurrence"),
            Some(&json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday", "thursday"]},
            "range": {"type": "endDate", "startDate": "2031-03-02", "endDate": "2031-03-15"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let t = f.truth(WS, WE).await;
    let mine: Vec<&Value> = t
        .values()
        .filter(|v| v["seriesMasterId"] == master.as_str())
        .collect();
    assert_eq!(mine.len(), 4, "Tue/Thu 4, 6, 11, 13 March");
    assert!(
        mine.iter()
            .all(|v| v["type"] == "occurrence" && v["subject"] == "Standup")
    );

    // Changing the series' time also drops exceptions.
    let orig = mine[0]["originalStart"].as_str().unwrap().to_owned();
    f.control(
        reqwest::Method::PATCH,
        &format!("/events/{master}/occurrences/{orig}"),
        Some(&json!({"subject": "one-off"})),
    )
    .await;
    let (s, b) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{master}"),
            Some(&json!({
            "start": {"dateTime": "2031-03-02T10:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2031-03-02T10:30:00", "timeZone": "W. Europe Standard Time"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let t = f.truth(WS, WE).await;
    assert!(
        t.values()
            .filter(|v| v["seriesMasterId"] == master.as_str())
            .all(|v| v["type"] == "occurrence")
    );

    // Deleting the series removes every instance.
    let (s, _) = f
        .control(reqwest::Method::DELETE, &format!("/events/{master}"), None)
        .await;
    assert_eq!(s, 204);
    assert!(f.truth(WS, WE).await.is_empty());
}

#[tokio::test]
async fn control_events_reject_bad_input_with_graph_errors() {
    let f = fixture("errors").await;
    let (s, b) =
        f.ts.control(
            reqwest::Method::POST,
            "/mailboxes/nobody@contoso.example/events",
            Some(&single("x", "2031-03-02T09:00:00", "2031-03-02T10:00:00")),
        )
        .await;
    assert_eq!(s, 404);
    assert_graph_error(&b, "ErrorInvalidUser");
    let (s, b) =
        f.ts.control(
            reqwest::Method::GET,
            "/mailboxes/nobody@contoso.example/events?start=2031-01-01&end=2031-02-01",
            None,
        )
        .await;
    assert_eq!(s, 404, "{b}");

    // Malformed JSON, unknown properties, bad dates, end before start.
    let r =
        f.ts.http
            .post(f.ts.url(&format!("/_sim/mailboxes/{}/events", f.addr)))
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["code"].is_string());
    for body in [
        json!({"subject": "x", "bogus": 1, "start": {"dateTime": "2031-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-02T10:00:00", "timeZone": "UTC"}}),
        json!({"subject": "x", "start": {"dateTime": "not a date", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-02T10:00:00", "timeZone": "UTC"}}),
        json!({"subject": "x", "start": {"dateTime": "2031-03-02T09:00:00", "timeZone": "Mars/Olympus"}, "end": {"dateTime": "2031-03-02T10:00:00", "timeZone": "UTC"}}),
        json!({"subject": "x", "start": {"dateTime": "2031-03-02T11:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-02T10:00:00", "timeZone": "UTC"}}),
        json!([1, 2, 3]),
    ] {
        let (s, b) = f
            .control(reqwest::Method::POST, "/events", Some(&body))
            .await;
        assert_eq!(s, 400, "{body} → {b}");
        assert!(b["error"]["message"].is_string());
    }
    let (s, _) = f
        .control(
            reqwest::Method::PATCH,
            "/events/AAMkAGnope",
            Some(&json!({"subject": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    let id = f
        .create(single("x", "2031-03-02T09:00:00", "2031-03-02T10:00:00"))
        .await;
    let (s, b) = f.control(reqwest::Method::PUT, &format!("/events/{id}/recurrence"), Some(&json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd", "startDate": "2031-03-02"}}))).await;
    assert_eq!(s, 400, "a single has no pattern to change: {b}");
    let (s, b) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{id}/occurrences/yesterday"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = f
        .control(reqwest::Method::GET, "/events?start=2031-03-01", None)
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = f
        .control(
            reqwest::Method::POST,
            "/random-changes",
            Some(&json!({"count": 5, "seed": 1, "window_start": WE, "window_end": WS})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = f
        .control(
            reqwest::Method::POST,
            "/delta-faults",
            Some(&json!({"explode": true})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // Nothing of that changed the calendar.
    assert_eq!(f.truth(WS, WE).await.len(), 1);
}

#[tokio::test]
async fn random_changes_are_deterministic_and_varied() {
    let mut summaries = Vec::new();
    for _ in 0..2 {
        let f = fixture("rnd").await;
        let (s, b) = f
            .control(
                reqwest::Method::POST,
                "/random-changes",
                Some(&json!({"count": 60, "seed": 7, "window_start": WS, "window_end": WE})),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["applied"], 60);
        let kinds: Vec<String> = b["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap().to_owned())
            .collect();
        let distinct: BTreeSet<&String> = kinds.iter().collect();
        assert!(distinct.len() >= 6, "{distinct:?}");
        let truth = f.truth(WS, WE).await;
        assert!(!truth.is_empty());
        summaries.push((kinds, b["counts"].clone(), truth.len()));
    }
    assert_eq!(summaries[0], summaries[1], "same seed, same changes");
}

#[tokio::test]
async fn control_bodies_that_are_not_json_objects_get_400() {
    let f = fixture("shape").await;
    let t = &f.ts;
    let m = |x: &str| reqwest::Method::from_bytes(x.as_bytes()).unwrap();
    // Resources the paths below need.
    let cid = t.creds()["apps"][0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, app) = t.control(m("GET"), &format!("/apps/{cid}"), None).await;
    let key = app["secrets"][0]["key_id"].as_str().unwrap().to_owned();
    let (s, b) = t
        .control(
            m("POST"),
            "/mailboxes",
            Some(&json!({"address": "room1@contoso.example", "kind": "room"})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = t
        .control(
            m("POST"),
            "/groups",
            Some(&json!({"display_name": "G", "mail": "g@contoso.example", "members": []})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = t
        .control(
            m("POST"),
            "/room-lists",
            Some(&json!({"email": "rl@contoso.example", "display_name": "RL",
                "rooms": ["room1@contoso.example"]})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let ev = f
        .create(series(
            "Standup",
            "2031-03-02T09:00:00",
            "2031-03-02T09:15:00",
            3,
        ))
        .await;
    let mb = format!("/mailboxes/{}", f.addr);
    let cases: Vec<(&str, String)> = vec![
        ("PUT", "/faults".into()),
        ("POST", "/faults".into()),
        ("PUT", "/settings".into()),
        ("PATCH", "/settings".into()),
        ("POST", "/apps".into()),
        ("PATCH", format!("/apps/{cid}")),
        ("POST", format!("/apps/{cid}/secrets")),
        ("PATCH", format!("/apps/{cid}/secrets/{key}")),
        ("POST", format!("/apps/{cid}/certificates")),
        ("POST", format!("/apps/{cid}/roles")),
        ("PUT", format!("/apps/{cid}/roles")),
        ("POST", format!("/apps/{cid}/consent")),
        ("PUT", format!("/apps/{cid}/consent")),
        ("POST", format!("/apps/{cid}/rbac")),
        ("DELETE", format!("/apps/{cid}/rbac")),
        ("PUT", format!("/apps/{cid}/access-policy")),
        ("POST", "/tokens/revoke".into()),
        ("POST", "/tokens/expire".into()),
        ("POST", "/mailboxes".into()),
        ("PATCH", mb.clone()),
        ("POST", "/groups".into()),
        ("POST", "/groups/g@contoso.example/members".into()),
        ("POST", "/room-lists".into()),
        ("POST", "/room-lists/rl@contoso.example/rooms".into()),
        ("POST", "/clock".into()),
        ("POST", format!("{mb}/events")),
        ("PATCH", format!("{mb}/events/{ev}")),
        (
            "PATCH",
            format!("{mb}/events/{ev}/occurrences/2031-03-03T08:00:00Z"),
        ),
        ("PUT", format!("{mb}/events/{ev}/recurrence")),
        ("POST", format!("{mb}/random-changes")),
        ("POST", format!("{mb}/delta-faults")),
    ];
    let bodies = [
        json!([]),
        json!([1000]),
        json!([{"latency_ms": 1000}]),
        json!(null),
        json!(42),
        json!("text"),
        json!(true),
    ];
    for (method, path) in &cases {
        for body in &bodies {
            let (s, v) = t.control(m(method), path, Some(body)).await;
            assert_eq!(s, 400, "{method} {path} {body} → {v}");
            assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                msg.contains("JSON object"),
                "{method} {path} {body}: the message must say an object is expected: {msg}"
            );
        }
    }
    // None of them changed anything.
    let (_, v) = t.control(m("GET"), "/faults", None).await;
    assert_eq!(v["faults"]["latency_ms"], 0, "{v}");
    let (_, v) = t.control(m("GET"), "/settings", None).await;
    assert_eq!(v["latency_ms"], 0, "{v}");
    assert_eq!(f.truth(WS, WE).await.len(), 3);
    // An object is still fine, and an empty body keeps meaning what it meant.
    let (s, v) = t
        .control(m("PUT"), "/faults", Some(&json!({"latency_ms": 0})))
        .await;
    assert_eq!(s, 200, "{v}");
    let r = t
        .http
        .put(t.url("/_sim/faults"))
        .body("  ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = t
        .http
        .post(t.url("/_sim/mailboxes"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
