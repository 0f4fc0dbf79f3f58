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

/// Connects over plain TCP, sends `sent` and waits — at most `bound` — for the server to close
/// the connection (end of stream or reset). Returns how long that took, or `None` if it was
/// still open at `bound`.
async fn closed_after(
    addr: std::net::SocketAddr,
    sent: &[u8],
    bound: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    if !sent.is_empty() {
        s.write_all(sent).await.unwrap();
    }
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(bound, closed)
        .await
        .ok()
        .map(|()| started.elapsed())
}

const SHORT: std::time::Duration = std::time::Duration::from_millis(300);
const BOUND: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::test]
async fn half_sent_request_heads_are_closed_after_the_header_read_timeout() {
    let sim = calgate_sim::start_with_limits(
        SimOptions {
            seed: Seed::Empty,
            ..SimOptions::default()
        },
        calgate_sim::ConnectionLimits {
            header_read_timeout: SHORT,
        },
    )
    .await
    .unwrap();
    for (what, sent) in [
        ("part of a request head", &b"GET / HTTP/1.1\r\nHo"[..]),
        ("nothing", &b""[..]),
        ("part of the HTTP/2 preface", &b"PRI * HT"[..]),
        (
            "a head without its blank line",
            &b"GET /_sim/settings HTTP/1.1\r\nHost: x\r\n"[..],
        ),
    ] {
        let took = closed_after(sim.addr, sent, BOUND).await;
        let took = took.unwrap_or_else(|| panic!("{what}: still open after {BOUND:?}"));
        assert!(
            took >= SHORT - std::time::Duration::from_millis(50),
            "{what}: closed after {took:?}, before the timeout"
        );
    }
    // Whole requests are still answered, also after a keep-alive pause shorter than the timeout.
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let r = http
            .get(format!("{}/_sim/settings", sim.base_url))
            .timeout(BOUND)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(SHORT / 3).await;
    }
    // A slow answer (injected latency longer than the timeout) is not cut off: the timeout
    // is about reading the request, not about the server's own time.
    let r = http
        .patch(format!("{}/_sim/settings", sim.base_url))
        .json(&json!({"latency_ms": 600}))
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    let r = http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            sim.base_url,
            sim.tenant_id()
        ))
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));
}

#[tokio::test]
async fn the_tls_handshake_is_bounded_by_the_header_read_timeout() {
    let sim = calgate_sim::start_with_limits(
        SimOptions {
            seed: Seed::Empty,
            tls: true,
            ..SimOptions::default()
        },
        calgate_sim::ConnectionLimits {
            header_read_timeout: SHORT,
        },
    )
    .await
    .unwrap();
    // Nothing, and the first bytes of a ClientHello record.
    for (what, sent) in [
        ("nothing", &b""[..]),
        ("a partial ClientHello", &b"\x16\x03\x01\x02"[..]),
    ] {
        let took = closed_after(sim.addr, sent, BOUND).await;
        let took = took.unwrap_or_else(|| panic!("{what}: still open after {BOUND:?}"));
        assert!(
            took >= SHORT - std::time::Duration::from_millis(50),
            "{what}: closed after {took:?}"
        );
    }
    // A real TLS client (HTTP/2 by ALPN) is served.
    let ca =
        reqwest::Certificate::from_pem(sim.ca_cert_pem.as_deref().unwrap().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/_sim/settings", sim.base_url))
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
