//! getSchedule: limits, availabilityView digits, items, privacy, errors, time zones.

use calgate_sim::model::{MailboxKind, Sensitivity, ShowAs};

use crate::common::*;
use crate::throttle::fx;

fn path(addr: &str) -> String {
    format!("/v1.0/users/{addr}/calendar/getSchedule")
}

fn body(schedules: &[&str], start: &str, end: &str, interval: Value) -> Value {
    json!({
        "schedules": schedules,
        "startTime": {"dateTime": start, "timeZone": "UTC"},
        "endTime": {"dateTime": end, "timeZone": "UTC"},
        "availabilityViewInterval": interval
    })
}

async fn post(
    t: &TestSim,
    token: &str,
    caller: &str,
    b: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    t.send_json(reqwest::Method::POST, token, &path(caller), b)
        .await
}

#[tokio::test]
async fn limits_on_schedules_period_and_interval() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;

    let many: Vec<String> = (0..21).map(|i| format!("u{i}@example.com")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &many,
            "2025-03-10T00:00:00",
            "2025-03-11T00:00:00",
            json!(30),
        ),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "ErrorMailboxDataArrayTooBig");
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &many[..20],
            "2025-03-10T00:00:00",
            "2025-03-11T00:00:00",
            json!(30),
        ),
    )
    .await;
    assert_eq!(s, 200, "20 schedules are fine: {v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 20);

    // 62 days is the limit.
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&a],
            "2025-01-01T00:00:00",
            "2025-03-04T00:00:00",
            json!(1440),
        ),
    )
    .await;
    assert_eq!(s, 200, "62 days: {v}");
    assert_eq!(
        v["value"][0]["availabilityView"].as_str().unwrap().len(),
        62
    );
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&a],
            "2025-01-01T00:00:00",
            "2025-03-05T00:00:00",
            json!(1440),
        ),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "ErrorTimeIntervalTooBig");

    for bad in [json!(4), json!(1441), json!("abc"), json!(true)] {
        let (s, _, v) = post(
            &t,
            &token,
            &a,
            &body(
                &[&a],
                "2025-03-10T00:00:00",
                "2025-03-12T00:00:00",
                bad.clone(),
            ),
        )
        .await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_graph_error(&v, "ErrorInvalidMergedFreeBusyInterval");
    }
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&a],
            "2025-03-10T10:00:00",
            "2025-03-10T09:00:00",
            json!(30),
        ),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "ErrorInvalidTimeInterval");

    // Interval as a string, PascalCase parameter names (the CSDL's spelling), default 30.
    let pascal = json!({
        "Schedules": [a],
        "StartTime": {"dateTime": "2025-03-10T09:00:00", "timeZone": "UTC"},
        "EndTime": {"dateTime": "2025-03-10T12:00:00", "timeZone": "UTC"},
        "AvailabilityViewInterval": "15"
    });
    let (s, _, v) = post(&t, &token, &a, &pascal).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"][0]["availabilityView"], "000000000000");
    let mut no_interval = pascal.clone();
    no_interval
        .as_object_mut()
        .unwrap()
        .remove("AvailabilityViewInterval");
    let (_, _, v) = post(&t, &token, &a, &no_interval).await;
    assert_eq!(v["value"][0]["availabilityView"], "000000");
}

#[tokio::test]
async fn availability_view_digits_and_items() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let b = fx::mailbox(&t, "bob", MailboxKind::User);
    let d = "2025-03-10T";
    let ev = |subject: &str, s: &str, e: &str, show: ShowAs| {
        fx::event(
            &t,
            &b,
            subject,
            &format!("{d}{s}"),
            &format!("{d}{e}"),
            show,
            Sensitivity::Normal,
        );
    };
    ev("Busy", "09:00:00", "10:00:00", ShowAs::Busy);
    ev("Tentative", "10:00:00", "11:00:00", ShowAs::Tentative);
    ev("Away", "11:00:00", "12:00:00", ShowAs::Oof);
    ev(
        "Elsewhere",
        "12:00:00",
        "13:00:00",
        ShowAs::WorkingElsewhere,
    );
    ev("Free", "13:00:00", "14:00:00", ShowAs::Free);
    // Overlaps: busy wins over tentative in 15:00-16:00; oof over busy in 16:00-17:00.
    ev("Maybe", "15:00:00", "16:00:00", ShowAs::Tentative);
    ev("Short busy", "15:30:00", "15:45:00", ShowAs::Busy);
    ev("Leave", "16:00:00", "17:00:00", ShowAs::Oof);
    ev("Meeting", "16:15:00", "16:30:00", ShowAs::Busy);
    // Partly before the window.
    ev("Early", "08:30:00", "09:10:00", ShowAs::Busy);

    let token = t.default_token().await;
    let (s, h, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&b],
            "2025-03-10T09:00:00",
            "2025-03-10T18:00:00",
            json!(60),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(h.get("preference-applied").is_none());
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Collection(microsoft.graph.scheduleInformation)")
    );
    let info = &v["value"][0];
    assert_eq!(info["scheduleId"], b.as_str());
    assert_eq!(info["availabilityView"], "213400230");
    let items = info["scheduleItems"].as_array().unwrap();
    assert_eq!(items.len(), 10, "{info}");
    assert_eq!(items[0]["subject"], "Early");
    assert_eq!(
        items[0]["start"],
        json!({"dateTime": "2025-03-10T08:30:00.0000000", "timeZone": "UTC"})
    );
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"workingElsewhere")
            && statuses.contains(&"free")
            && statuses.contains(&"oof"),
        "{statuses:?}"
    );
    assert_eq!(items[1]["isPrivate"], false);
    assert_eq!(items[1]["location"], "Busy room");
    let wh = &info["workingHours"];
    assert_eq!(
        wh["daysOfWeek"],
        json!(["monday", "tuesday", "wednesday", "thursday", "friday"])
    );
    assert_eq!(wh["startTime"], "08:00:00.0000000");
    assert_eq!(wh["endTime"], "17:00:00.0000000");
    assert_eq!(wh["timeZone"]["name"], "W. Europe Standard Time");
}

#[tokio::test]
async fn private_items_hide_subject_and_location() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    fx::event(
        &t,
        &a,
        "Doctor",
        "2025-03-10T09:00:00",
        "2025-03-10T10:00:00",
        ShowAs::Busy,
        Sensitivity::Private,
    );
    fx::event(
        &t,
        &a,
        "Plans",
        "2025-03-10T10:00:00",
        "2025-03-10T11:00:00",
        ShowAs::Busy,
        Sensitivity::Personal,
    );
    let token = t.default_token().await;
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&a],
            "2025-03-10T09:00:00",
            "2025-03-10T11:00:00",
            json!(30),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let items = v["value"][0]["scheduleItems"].as_array().unwrap();
    assert_eq!(items[0]["isPrivate"], true);
    assert!(
        items[0].get("subject").is_none() && items[0].get("location").is_none(),
        "{}",
        items[0]
    );
    assert_eq!(items[0]["status"], "busy");
    assert_eq!(items[1]["isPrivate"], false);
    assert_eq!(items[1]["subject"], "Plans");
    assert_eq!(v["value"][0]["availabilityView"], "2222");
}

#[tokio::test]
async fn unknown_and_out_of_scope_schedules_are_error_items() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let (s, _, v) = post(
        &t,
        &token,
        &a,
        &body(
            &[&a, "nobody@nowhere.example"],
            "2025-03-10T09:00:00",
            "2025-03-10T10:00:00",
            json!(30),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let err = &v["value"][1];
    assert_eq!(err["scheduleId"], "nobody@nowhere.example");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody@nowhere.example")
    );
    assert_eq!(err["error"]["responseCode"], "5009");
    assert!(err.get("availabilityView").is_none());
    assert!(v["value"][0].get("error").is_none());
}

#[tokio::test]
async fn prefer_time_zone_and_request_zones() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    fx::event(
        &t,
        &a,
        "Standup",
        "2025-03-10T16:00:00",
        "2025-03-10T16:30:00",
        ShowAs::Busy,
        Sensitivity::Normal,
    );
    let token = t.default_token().await;
    // 08:00-09:00 Pacific (UTC-7 in March after DST) = 15:00-16:00 UTC... the event is 16:00 UTC = 09:00 PDT.
    let b = json!({
        "schedules": [a],
        "startTime": {"dateTime": "2025-03-10T08:00:00", "timeZone": "Pacific Standard Time"},
        "endTime": {"dateTime": "2025-03-10T10:00:00", "timeZone": "Pacific Standard Time"},
        "availabilityViewInterval": 60
    });
    let r = t
        .http
        .post(t.url(&path(&a)))
        .bearer_auth(&token)
        .header("Prefer", "outlook.timezone=\"Pacific Standard Time\"")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["preference-applied"],
        "outlook.timezone=\"Pacific Standard Time\""
    );
    let v: Value = r.json().await.unwrap();
    let info = &v["value"][0];
    assert_eq!(info["availabilityView"], "02", "{v}");
    assert_eq!(
        info["scheduleItems"][0]["start"],
        json!({"dateTime": "2025-03-10T09:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    // Without Prefer: UTC.
    let (_, _, v) = post(&t, &token, &a, &b).await;
    assert_eq!(
        v["value"][0]["scheduleItems"][0]["start"]["timeZone"],
        "UTC"
    );
    assert_eq!(
        v["value"][0]["scheduleItems"][0]["start"]["dateTime"],
        "2025-03-10T16:00:00.0000000"
    );

    let r = t
        .http
        .post(t.url(&path(&a)))
        .bearer_auth(&token)
        .header("Prefer", "outlook.timezone=\"Mars Standard Time\"")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_graph_error(&v, "TimeZoneNotSupportedException");
}

#[tokio::test]
async fn caller_needs_calendar_permission_and_valid_input() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let places_only = fx::app_token(&t, "places-only", &["Place.Read.All"]).await;
    let ok = body(
        &[&a],
        "2025-03-10T09:00:00",
        "2025-03-10T10:00:00",
        json!(30),
    );
    let (s, _, v) = post(&t, &places_only, &a, &ok).await;
    assert_eq!(s, 403, "{v}");
    assert_graph_error(&v, "ErrorAccessDenied");
    let read_only = fx::app_token(&t, "read-only", &["Calendars.Read"]).await;
    assert_eq!(post(&t, &read_only, &a, &ok).await.0, 200);

    let token = t.default_token().await;
    let (s, _, v) = post(&t, &token, "ghost@nowhere.example", &ok).await;
    assert_eq!(s, 404, "{v}");

    let mut unknown = ok.clone();
    unknown["colour"] = json!("blue");
    let (s, _, v) = post(&t, &token, &a, &unknown).await;
    assert_eq!(s, 400, "{v}");
    let mut bad_date = ok.clone();
    bad_date["startTime"]["dateTime"] = json!("2025-02-30T09:00:00");
    let (s, _, v) = post(&t, &token, &a, &bad_date).await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "ErrorInvalidRequest");
    let mut no_schedules = ok.clone();
    no_schedules["schedules"] = json!([]);
    assert_eq!(post(&t, &token, &a, &no_schedules).await.0, 400);
}
