//! Bad input never crashes the simulator: every case gets a Graph-shaped 4xx, and the
//! simulator keeps serving afterwards.

use calgate_sim::model::MailboxKind;

use crate::common::*;
use crate::throttle::fx;

/// Sends raw bytes; returns (status, parsed body or the raw text as a JSON string).
async fn raw(
    t: &TestSim,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = t.http.request(method, t.url(path)).body(body);
    if let Some(tok) = token {
        req = req.header("Authorization", format!("Bearer {tok}"));
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    let text = r.text().await.unwrap_or_default();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_graph_4xx(s: StatusCode, v: &Value, what: &str) {
    assert!(s.is_client_error(), "{what}: status {s}: {v}");
    assert!(
        v["error"]["code"].is_string(),
        "{what}: not Graph-shaped: {v}"
    );
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    assert!(
        v["error"]["innerError"]["request-id"].is_string(),
        "{what}: {v}"
    );
}

async fn still_serving(t: &TestSim, token: &str) {
    let (s, _, v) = t.get(token, "/v1.0/places/microsoft.graph.room").await;
    assert_eq!(s, 200, "the simulator must keep serving: {v}");
}

#[tokio::test]
async fn malformed_bodies_get_graph_shaped_400s() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let json = Some("application/json");
    let sched = format!("/v1.0/users/{a}/calendar/getSchedule");
    let events = format!("/v1.0/users/{a}/events");
    type Case<'a> = (&'a str, reqwest::Method, &'a str, Option<&'a str>, Vec<u8>);
    let cases: Vec<Case> = vec![
        ("truncated JSON", reqwest::Method::POST, &sched, json, b"{\"schedules\": [".to_vec()),
        ("not an object", reqwest::Method::POST, &sched, json, b"[1,2,3]".to_vec()),
        ("empty body", reqwest::Method::POST, &sched, json, Vec::new()),
        ("non-UTF-8", reqwest::Method::POST, &sched, json, vec![0xff, 0xfe, 0x7b, 0x80, 0x00]),
        ("unknown field", reqwest::Method::POST, &sched, json, br#"{"schedules":["x@y"],"startTime":{"dateTime":"2025-03-10T09:00:00","timeZone":"UTC"},"endTime":{"dateTime":"2025-03-10T10:00:00","timeZone":"UTC"},"bogus":1}"#.to_vec()),
        ("invalid date", reqwest::Method::POST, &sched, json, br#"{"schedules":["x@y"],"startTime":{"dateTime":"2025-13-45T99:00:00","timeZone":"UTC"},"endTime":{"dateTime":"2025-03-10T10:00:00","timeZone":"UTC"}}"#.to_vec()),
        ("wrong types", reqwest::Method::POST, &sched, json, br#"{"schedules":"x@y","startTime":7,"endTime":null}"#.to_vec()),
        ("truncated event", reqwest::Method::POST, &events, json, b"{\"subject\": ".to_vec()),
        ("event with invalid date", reqwest::Method::POST, &events, json, br#"{"subject":"x","start":{"dateTime":"yesterday","timeZone":"UTC"},"end":{"dateTime":"2025-03-10T10:00:00","timeZone":"UTC"}}"#.to_vec()),
        ("event with unknown field", reqwest::Method::POST, &events, json, br#"{"subject":"x","flavour":"mint","start":{"dateTime":"2025-03-10T09:00:00","timeZone":"UTC"},"end":{"dateTime":"2025-03-10T10:00:00","timeZone":"UTC"}}"#.to_vec()),
        ("event as text/plain", reqwest::Method::POST, &events, Some("text/plain"), b"hello".to_vec()),
        ("batch non-UTF-8", reqwest::Method::POST, "/v1.0/$batch", json, vec![0xc3, 0x28, 0xa0, 0xa1]),
    ];
    for (what, method, path, ct, body) in cases {
        let (s, v) = raw(&t, method, path, Some(&token), ct, body).await;
        assert_graph_4xx(s, &v, what);
    }
    still_serving(&t, &token).await;
}

#[tokio::test]
async fn a_ten_megabyte_body_gets_a_graph_shaped_413() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let mut big = b"{\"subject\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend(b"\"}");
    for path in [
        format!("/v1.0/users/{a}/events"),
        "/v1.0/$batch".to_owned(),
        format!("/v1.0/users/{a}/calendar/getSchedule"),
    ] {
        let (s, v) = raw(
            &t,
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some("application/json"),
            big.clone(),
        )
        .await;
        assert_eq!(s, 413, "{path}: {v}");
        assert_graph_4xx(s, &v, &path);
    }
    still_serving(&t, &token).await;
}

#[tokio::test]
async fn garbage_tokens_get_401() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let tokens = [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned(),
        "x".repeat(20_000),
        "ünïcödé".to_owned(),
    ];
    for tok in tokens {
        let (s, _, v) = t
            .get(
                &tok,
                &format!(
                    "/v1.0/users/{a}/calendarView?startDateTime=2025-01-01&endDateTime=2025-01-02"
                ),
            )
            .await;
        assert_eq!(s, 401, "{v}");
        assert_graph_error(&v, "InvalidAuthenticationToken");
    }
    // No Authorization header, and a non-Bearer scheme.
    let (s, v) = raw(
        &t,
        reqwest::Method::GET,
        "/v1.0/places/microsoft.graph.room",
        None,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let r = t
        .http
        .get(t.url("/v1.0/places/microsoft.graph.room"))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token = t.default_token().await;
    still_serving(&t, &token).await;
}

#[tokio::test]
async fn weird_paths_and_query_options_get_graph_shaped_errors() {
    let t = fx::sim().await;
    fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let long = format!("/v1.0/users/{}/events", "a".repeat(8_000));
    let paths = [
        "/v1.0/%ff%fe%00",
        "/v1.0/users/..%2f..%2fetc%2fpasswd/events",
        "/v1.0/users//events",
        "/v1.0/no/such/resource",
        long.as_str(),
        "/v1.0/places/microsoft.graph.room?$top=99999999999999999999999999",
        "/v1.0/places/microsoft.graph.room?$top=abc",
        "/v1.0/places/microsoft.graph.room?$filter=((((",
        "/v1.0/places/microsoft.graph.room?$skip=-1",
        "/v1.0/places/microsoft.graph.room?$count=maybe",
        "/v1.0/users/nobody@nowhere.example/calendarView?startDateTime=x&endDateTime=y",
    ];
    for p in paths {
        let (s, _, v) = t.get(&token, p).await;
        assert_graph_4xx(s, &v, p);
    }
    // A huge but valid $top is capped, not an error.
    let (s, _, v) = t
        .get(&token, "/v1.0/places/microsoft.graph.room?$top=1000000")
        .await;
    assert_eq!(s, 200, "{v}");
    // Wrong method on a Graph route.
    let r = t
        .http
        .delete(t.url("/v1.0/places/microsoft.graph.room"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["code"].is_string(), "{v}");
    still_serving(&t, &token).await;
}
