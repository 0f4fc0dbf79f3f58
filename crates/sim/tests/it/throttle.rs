//! Throttling per (app, mailbox) and injected faults, over real HTTP.

use std::time::Duration;

use crate::common::*;

/// Fixtures shared by the platform modules (throttle, batch, schedule, places, robustness):
/// mailboxes, apps and events written straight into the in-process tenant model, so these
/// tests depend on nothing but the simulator's Graph and control endpoints.
pub mod fx {
    use calgate_sim::model::{
        App, Calendar, EventData, LocalDateTime, Location, MailboxKind, RoomInfo, RoomList, Secret,
        Sensitivity, ShowAs, StoredEvent, User, WorkingHours,
    };
    use jiff::{SignedDuration, Timestamp, civil};
    use uuid::Uuid;

    use crate::common::*;

    pub async fn sim() -> TestSim {
        start(Seed::Empty).await
    }

    /// Adds a mailbox `local@<default domain>`; returns its address.
    pub fn mailbox(t: &TestSim, local: &str, kind: MailboxKind) -> String {
        let mut dir = t.sim.state.dir();
        let tenant = dir.tenants.first_mut().unwrap();
        let address = format!("{local}@{}", tenant.default_domain());
        let room = (kind == MailboxKind::Room).then(|| RoomInfo {
            capacity: Some(8),
            building: Some("North".into()),
            floor_number: Some(1),
            ..RoomInfo::default()
        });
        tenant.insert_user(User {
            id: Uuid::new_v4(),
            upn: address.clone(),
            mail: address.clone(),
            display_name: local.to_owned(),
            given_name: None,
            surname: None,
            job_title: None,
            department: None,
            office_location: None,
            kind,
            has_mailbox: true,
            account_enabled: true,
            time_zone: "W. Europe Standard Time".into(),
            working_hours: WorkingHours {
                days_of_week: vec![
                    calgate_recurrence::DayOfWeek::Monday,
                    calgate_recurrence::DayOfWeek::Tuesday,
                    calgate_recurrence::DayOfWeek::Wednesday,
                    calgate_recurrence::DayOfWeek::Thursday,
                    calgate_recurrence::DayOfWeek::Friday,
                ],
                start_time: civil::time(8, 0, 0, 0),
                end_time: civil::time(17, 0, 0, 0),
                time_zone: "W. Europe Standard Time".into(),
            },
            room,
            calendars: vec![
                Calendar::new(calgate_sim::model::new_item_id(), "Calendar", true).into(),
            ],
        });
        address
    }

    /// Sets room metadata of a room mailbox.
    pub fn room_info(t: &TestSim, address: &str, info: RoomInfo) {
        let mut dir = t.sim.state.dir();
        let tenant = dir.tenants.first_mut().unwrap();
        tenant.user_mut(address).unwrap().room = Some(info);
    }

    /// Adds a room list holding `rooms` (addresses); returns (list email, list id).
    pub fn room_list(t: &TestSim, local: &str, name: &str, rooms: &[&str]) -> (String, String) {
        let mut dir = t.sim.state.dir();
        let tenant = dir.tenants.first_mut().unwrap();
        let email = format!("{local}@{}", tenant.default_domain());
        let ids = rooms.iter().map(|r| tenant.user_id(r).unwrap()).collect();
        let id = Uuid::new_v4();
        tenant.room_lists.push(RoomList {
            id,
            display_name: name.to_owned(),
            email: email.clone(),
            rooms: ids,
        });
        (email, id.to_string())
    }

    /// Registers an app with a secret and the given application permissions; returns a token.
    pub async fn app_token(t: &TestSim, name: &str, roles: &[&str]) -> String {
        let secret = format!("{name}-secret-value-0123456789");
        let client_id = {
            let mut dir = t.sim.state.dir();
            let tenant = dir.tenants.first_mut().unwrap();
            let mut app = App::new(name);
            let now = Timestamp::now();
            app.secrets.push(Secret {
                key_id: Uuid::new_v4(),
                display_name: "test".into(),
                value: secret.clone(),
                start: now - SignedDuration::from_hours(1),
                expires: now + SignedDuration::from_hours(24 * 30),
            });
            app.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
            let id = app.client_id.to_string();
            tenant.apps.push(app);
            id
        };
        t.token(&client_id, &secret).await
    }

    /// Adds a single event (times in UTC) to the mailbox's default calendar; returns its id.
    pub fn event(
        t: &TestSim,
        address: &str,
        subject: &str,
        start: &str,
        end: &str,
        show_as: ShowAs,
        sensitivity: Sensitivity,
    ) -> String {
        let mut dir = t.sim.state.dir();
        let tenant = dir.tenants.first_mut().unwrap();
        let user = tenant.user_mut(address).unwrap();
        let organizer = calgate_sim::model::EmailAddress {
            name: user.display_name.clone(),
            address: user.mail.clone(),
        };
        let ldt = |s: &str| LocalDateTime {
            date_time: s.parse().unwrap(),
            time_zone: "UTC".into(),
        };
        let data = EventData {
            subject: subject.to_owned(),
            body: calgate_sim::model::Body {
                content_type: "text".into(),
                content: String::new(),
            },
            start: ldt(start),
            end: ldt(end),
            is_all_day: false,
            show_as,
            sensitivity,
            importance: Default::default(),
            location: Location {
                display_name: format!("{subject} room"),
                location_email: None,
                location_type: "default".into(),
                ..Default::default()
            },
            locations: Vec::new(),
            attendees: Vec::new(),
            organizer,
            categories: Vec::new(),
            is_reminder_on: false,
            reminder_minutes_before_start: 15,
            is_online_meeting: false,
            response_requested: true,
            allow_new_time_proposals: true,
            hide_attendees: false,
            is_cancelled: false,
        };
        let id = calgate_sim::model::new_item_id();
        let now = Timestamp::now();
        let ev = StoredEvent {
            id: id.clone(),
            ical_uid: calgate_sim::model::new_ical_uid(),
            change_key: calgate_sim::model::new_change_key(),
            created: now,
            last_modified: now,
            transaction_id: None,
            data,
            recurrence: None,
            exceptions: Default::default(),
            cancelled: Default::default(),
            extended_properties: Vec::new(),
        };
        user.default_calendar_mut()
            .unwrap()
            .events
            .insert(id.clone(), ev);
        id
    }

    /// A getSchedule request body for `schedules` over one hour.
    pub fn schedule_body(schedules: &[&str]) -> Value {
        json!({
            "schedules": schedules,
            "startTime": {"dateTime": "2025-03-10T09:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2025-03-10T10:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 30
        })
    }

    /// One mailbox call (getSchedule on the caller's own mailbox): (status, headers, body).
    pub async fn call(
        t: &TestSim,
        token: &str,
        address: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        t.send_json(
            reqwest::Method::POST,
            token,
            &format!("/v1.0/users/{address}/calendar/getSchedule"),
            &schedule_body(&[address]),
        )
        .await
    }

    /// Sets run-time settings through the control API.
    pub async fn settings(t: &TestSim, body: Value) {
        let (s, v) = t
            .control(reqwest::Method::PUT, "/settings", Some(&body))
            .await;
        assert_eq!(s, 200, "settings: {v}");
    }

    /// `/_sim/mailboxes/{address}/stats`.
    pub async fn stats(t: &TestSim, address: &str) -> Value {
        let (s, v) = t
            .control(
                reqwest::Method::GET,
                &format!("/mailboxes/{address}/stats"),
                None,
            )
            .await;
        assert_eq!(s, 200, "stats: {v}");
        v
    }
}

use calgate_sim::model::MailboxKind;

#[tokio::test]
async fn fifth_concurrent_request_to_a_mailbox_is_application_throttled() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let b = fx::mailbox(&t, "bob", MailboxKind::User);
    let token = t.default_token().await;
    fx::settings(&t, json!({"latency_ms": 400})).await;

    let calls = (0..5).map(|_| fx::call(&t, &token, &a));
    let other = fx::call(&t, &token, &b);
    let (results, other) = tokio::join!(futures::future::join_all(calls), other);

    // Soon after (Retry-After is 1 s): a request before it has passed is an early retry. (One
    // sent within the delivery grace of the 429 may have been on the wire already: not counted.)
    tokio::time::sleep(calgate_sim::throttle::DELIVERY_GRACE * 2).await;
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);

    let throttled: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(
        throttled.len(),
        1,
        "exactly one 429: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(ok, 4);
    let (_, h, body) = throttled[0];
    assert_graph_error(body, "ApplicationThrottled");
    assert_eq!(
        body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    let ra: f64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(ra > 0.0);
    assert_eq!(other.0, 200, "another mailbox is not affected: {}", other.2);

    let s = fx::stats(&t, &a).await;
    assert_eq!(s["peak_concurrency"], 4, "{s}");
    assert_eq!(s["concurrency_throttled"], 1, "{s}");
    assert_eq!(s["requests"], 6, "{s}");
    assert_eq!(s["early_retries"], 1, "{s}");
    assert_eq!(s["last_retry_after"]["code"], "ApplicationThrottled", "{s}");
    let sb = fx::stats(&t, &b).await;
    assert_eq!(sb["peak_concurrency"], 1, "{sb}");
    assert_eq!(sb["throttled"], 0, "{sb}");

    // A request after Retry-After has passed is not early.
    fx::settings(&t, json!({"latency_ms": 0})).await;
    tokio::time::sleep(Duration::from_secs_f64(ra + 0.1)).await;
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    let s = fx::stats(&t, &a).await;
    assert_eq!(s["early_retries"], 1, "{s}");
    assert_eq!(s["apps"][0]["early_retries"], 1, "{s}");

    // All-mailbox view and reset.
    let (_, all) = t.control(reqwest::Method::GET, "/stats", None).await;
    let mb = all["mailboxes"].as_array().unwrap();
    assert!(
        mb.iter()
            .any(|m| m["address"] == a.as_str() && m["peak_concurrency"] == 4),
        "{all}"
    );
    assert_eq!(all["totals"]["concurrency_throttled"], 1, "{all}");
    let (s, _) = t.control(reqwest::Method::POST, "/stats/reset", None).await;
    assert_eq!(s, 204);
    let s = fx::stats(&t, &a).await;
    assert_eq!(
        (s["requests"].as_u64(), s["peak_concurrency"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}

#[tokio::test]
async fn exhausted_budget_gives_too_many_requests_with_retry_after() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let b = fx::mailbox(&t, "bob", MailboxKind::User);
    let token = t.default_token().await;
    fx::settings(&t, json!({"request_budget": 5, "budget_window_seconds": 2})).await;

    for i in 0..5 {
        let (s, _, v) = fx::call(&t, &token, &a).await;
        assert_eq!(s, 200, "request {i}: {v}");
    }
    let (s, h, v) = fx::call(&t, &token, &a).await;
    assert_eq!(s, 429, "{v}");
    // The documented throttling body.
    assert_graph_error(&v, "TooManyRequests");
    assert_eq!(v["error"]["message"], "Please retry again later.");
    let inner = &v["error"]["innerError"];
    assert_eq!(inner["code"], "429");
    assert_eq!(inner["status"], "429");
    assert_eq!(inner["message"], "Please retry after");
    assert!(inner["date"].is_string());
    let ra: u64 = h["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("integer Retry-After");
    assert!((1..=2).contains(&ra), "Retry-After {ra}");

    // Another mailbox has its own budget.
    assert_eq!(fx::call(&t, &token, &b).await.0, 200);
    let s = fx::stats(&t, &a).await;
    assert_eq!(s["budget_throttled"], 1, "{s}");
    assert_eq!(s["last_retry_after"]["retry_after"], ra.to_string(), "{s}");

    // Honouring Retry-After works: the window has slid past the old requests.
    tokio::time::sleep(Duration::from_millis(ra * 1000 + 100)).await;
    let (s, _, v) = fx::call(&t, &token, &a).await;
    assert_eq!(s, 200, "after Retry-After: {v}");
    assert_eq!(fx::stats(&t, &a).await["early_retries"], 0);
}

#[tokio::test]
async fn usage_is_counted_while_throttled_and_early_retries_are_seen() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    fx::settings(&t, json!({"request_budget": 2})).await;
    for _ in 0..2 {
        assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(fx::call(&t, &token, &a).await.0, 429);
        tokio::time::sleep(calgate_sim::throttle::DELIVERY_GRACE * 2).await;
    }
    let s = fx::stats(&t, &a).await;
    assert_eq!(s["requests"], 5, "{s}");
    assert_eq!(s["budget_throttled"], 3, "{s}");
    assert_eq!(
        s["early_retries"], 2,
        "two retries ignored Retry-After: {s}"
    );
    assert_eq!(s["apps"][0]["window_requests"], 5, "{s}");
}

#[tokio::test]
async fn settings_are_readable_and_validated() {
    let t = fx::sim().await;
    let (s, v) = t.control(reqwest::Method::GET, "/settings", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["request_budget"], 10_000);
    assert_eq!(v["mailbox_concurrency"], 4);
    assert_eq!(v["budget_window_seconds"], 600.0);
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/settings",
            Some(&json!({"mailbox_concurrency": 0})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/settings",
            Some(&json!({"bogus": 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn error_rate_one_answers_503_with_retry_after() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"error_rate": 1.0})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, h, v) = fx::call(&t, &token, &a).await;
    assert_eq!(s, 503);
    assert_graph_error(&v, "serviceNotAvailable");
    assert_eq!(h["retry-after"], "1");

    let (s, _) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"error_rate": 1.0, "error_status": 500})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, h, v) = fx::call(&t, &token, &a).await;
    assert_eq!(s, 500, "{v}");
    assert_graph_error(&v, "generalException");
    assert!(h.get("retry-after").is_none());

    let (s, _) = t.control(reqwest::Method::DELETE, "/faults", None).await;
    assert_eq!(s, 204);
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    assert_eq!(fx::stats(&t, &a).await["injected_faults"], 2);

    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"error_rate": 2})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn throttle_storm_answers_429_with_fractional_retry_after_scoped_to_one_mailbox() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let b = fx::mailbox(&t, "bob", MailboxKind::User);
    let token = t.default_token().await;
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"throttle_rate": 1.0, "throttle_retry_after": "0.5", "mailbox": a})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, h, v) = fx::call(&t, &token, &a).await;
    assert_eq!(s, 429);
    assert_graph_error(&v, "TooManyRequests");
    assert_eq!(h["retry-after"], "0.5");
    assert_eq!(
        fx::call(&t, &token, &b).await.0,
        200,
        "other mailbox unaffected"
    );

    // Soon again: an early retry. After 0.5 s: not early (but throttled again).
    tokio::time::sleep(calgate_sim::throttle::DELIVERY_GRACE * 2).await;
    assert_eq!(fx::call(&t, &token, &a).await.0, 429);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fx::call(&t, &token, &a).await.0, 429);
    let s = fx::stats(&t, &a).await;
    assert_eq!(s["early_retries"], 1, "{s}");
    assert_eq!(s["throttled"], 3, "{s}");
}

#[tokio::test]
async fn fault_rates_are_deterministic() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (s, _) = t
            .control(
                reqwest::Method::PUT,
                "/faults",
                Some(&json!({"error_rate": 0.5, "seed": 9})),
            )
            .await;
        assert_eq!(s, 200);
        let mut codes = Vec::new();
        for _ in 0..12 {
            codes.push(fx::call(&t, &token, &a).await.0.as_u16());
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&503) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn extra_latency_fault_delays_graph_responses() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let (s, _) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"latency_ms": 300})),
        )
        .await;
    assert_eq!(s, 200);
    let started = std::time::Instant::now();
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (_, v) = t.control(reqwest::Method::GET, "/faults", None).await;
    assert_eq!(v["faults"]["latency_ms"], 300, "{v}");
}

#[tokio::test]
async fn dropped_connection_after_the_server_acted() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"drop_connection": {"count": 1, "method": "POST", "path_contains": "/events"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let event = json!({
        "subject": "Survives the broken connection",
        "start": {"dateTime": "2025-03-10T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2025-03-10T10:00:00", "timeZone": "UTC"}
    });
    let r = t
        .http
        .post(t.url(&format!("/v1.0/users/{a}/events")))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the client must see a broken connection");
    // ...but the event was created.
    let created = {
        let dir = t.sim.state.dir();
        let u = dir.tenants[0].user(&a).unwrap();
        u.default_calendar()
            .unwrap()
            .events
            .values()
            .any(|e| e.data.subject == "Survives the broken connection")
    };
    assert!(created, "the server acted before the connection broke");
    // Only once: the next request is answered normally.
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    let (_, v) = t.control(reqwest::Method::GET, "/faults", None).await;
    assert_eq!(v["dropped_connections"], 1, "{v}");
    assert!(v["faults"]["drop_connection"].is_null(), "{v}");
}

/// Asserts a `400 BadRequest` whose message names `field` and `limit`.
fn assert_rejected_naming(s: StatusCode, v: &Value, field: &str, limit: &str) {
    assert_eq!(s, 400, "{field}: {v}");
    assert_graph_error(v, "BadRequest");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(field) && msg.contains(limit),
        "the message must name {field} and {limit}: {msg}"
    );
}

#[tokio::test]
async fn fault_and_setting_durations_and_counts_are_bounded() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    // 2^63 ms of injected latency would make every later call hang.
    for body in [
        json!({"latency_ms": 1u64 << 63}),
        json!({"latency_ms": u64::MAX}),
        json!({"latency_ms": 120_001}),
    ] {
        let (s, v) = t
            .control(reqwest::Method::PUT, "/faults", Some(&body))
            .await;
        assert_rejected_naming(s, &v, "latency_ms", "120000");
    }
    for body in [
        json!({"drop_connection": {"count": 10_001}}),
        json!({"drop_connection": {"count": u32::MAX}}),
    ] {
        let (s, v) = t
            .control(reqwest::Method::POST, "/faults", Some(&body))
            .await;
        assert_rejected_naming(s, &v, "drop_connection.count", "10000");
    }
    for field in ["error_retry_after", "throttle_retry_after"] {
        for value in ["86401", "1e300", "soon"] {
            let (s, v) = t
                .control(
                    reqwest::Method::PUT,
                    "/faults",
                    Some(&json!({ field: value })),
                )
                .await;
            assert_rejected_naming(s, &v, field, "86400");
        }
    }
    // Nothing of that was applied: calls are answered at once.
    let (_, v) = t.control(reqwest::Method::GET, "/faults", None).await;
    assert_eq!(v["faults"]["latency_ms"], 0, "{v}");
    assert!(v["faults"]["drop_connection"].is_null(), "{v}");
    let started = std::time::Instant::now();
    assert_eq!(fx::call(&t, &token, &a).await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The limits themselves are accepted.
    let (s, v) = t
        .control(
            reqwest::Method::PUT,
            "/faults",
            Some(
                &json!({"latency_ms": 120_000, "drop_connection": {"count": 10_000},
                "error_retry_after": "86400", "throttle_retry_after": "0.5"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["faults"]["latency_ms"], 120_000, "{v}");
    let (s, _) = t.control(reqwest::Method::DELETE, "/faults", None).await;
    assert_eq!(s, 204);

    // Settings: the same latency limit.
    for body in [
        json!({"latency_ms": 1u64 << 63}),
        json!({"latency_ms": 120_001}),
    ] {
        let (s, v) = t
            .control(reqwest::Method::PATCH, "/settings", Some(&body))
            .await;
        assert_rejected_naming(s, &v, "latency_ms", "120000");
    }
    let (_, v) = t.control(reqwest::Method::GET, "/settings", None).await;
    assert_eq!(v["latency_ms"], 0, "{v}");

    // Delta faults: replays are a count too.
    let (s, v) = t
        .control(
            reqwest::Method::POST,
            &format!("/mailboxes/{a}/delta-faults"),
            Some(&json!({"replay": u32::MAX})),
        )
        .await;
    assert_rejected_naming(s, &v, "replay", "10000");
    let (s, v) = t
        .control(
            reqwest::Method::POST,
            &format!("/mailboxes/{a}/delta-faults"),
            Some(&json!({"replay": 10_000})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn start_up_latency_is_capped_at_the_settings_limit() {
    let t = start_with(SimOptions {
        seed: Seed::Empty,
        latency_ms: 1 << 63,
        ..SimOptions::default()
    })
    .await;
    let (s, v) = t.control(reqwest::Method::GET, "/settings", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["latency_ms"], calgate_sim::MAX_LATENCY_MS, "{v}");
    assert_eq!(calgate_sim::MAX_LATENCY_MS, 120_000);
}
