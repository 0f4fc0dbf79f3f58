//! Graph `/subscriptions` and change notifications: the validation handshake, create / get /
//! list / update / delete / reauthorize, Graph's limits, delivery of change notifications for
//! every path that changes a calendar (Graph, the control API, meetings), batching, retries,
//! drops after the horizon, lifecycle notifications, expiry by the simulated clock, lost
//! notifications and shutdown. Each test runs a real HTTP receiver on 127.0.0.1:0; every wait
//! is bounded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus, Uri, header};
use axum::response::{IntoResponse, Response};
use calgate_testkit::SimExt;
use reqwest::Method;

use crate::common::*;

// ---------------------------------------------------------------------------------------------
// A notification receiver
// ---------------------------------------------------------------------------------------------

/// How the receiver answers a validation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validation {
    /// 200, text/plain, the decoded token: what Graph expects.
    Echo,
    /// The token as it came in the URL (still percent-encoded).
    EchoEncoded,
    /// 200 text/plain with another body.
    WrongBody,
    /// 200 with the right body but `text/html`.
    Html,
    /// This status, no body.
    Status(u16),
    /// Waits this long, then echoes.
    SleepMs(u64),
}

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: String,
    content_type: String,
    body: String,
}

#[derive(Debug)]
struct RecvState {
    hits: Vec<Hit>,
    validation: Validation,
    /// Statuses for the next notification POSTs (then `default_status`).
    statuses: VecDeque<u16>,
    default_status: u16,
    /// Delays (ms) before answering the next notification POSTs.
    delays: VecDeque<u64>,
}

#[derive(Clone)]
struct Receiver {
    base: String,
    state: Arc<Mutex<RecvState>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(RecvState {
            hits: Vec::new(),
            validation: Validation::Echo,
            statuses: VecDeque::new(),
            default_status: 202,
            delays: VecDeque::new(),
        }));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base: format!("http://127.0.0.1:{}", addr.port()),
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn set_validation(&self, v: Validation) {
        self.state.lock().unwrap().validation = v;
    }

    fn script(&self, statuses: &[u16], default_status: u16) {
        let mut s = self.state.lock().unwrap();
        s.statuses = statuses.iter().copied().collect();
        s.default_status = default_status;
    }

    fn delay(&self, delays_ms: &[u64]) {
        self.state.lock().unwrap().delays = delays_ms.iter().copied().collect();
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    fn validations(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.query.contains("validationToken="))
            .collect()
    }

    /// Notification POSTs to `path` (validation requests excluded), as parsed JSON.
    fn posts(&self, path: &str) -> Vec<Value> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == path && !h.query.contains("validationToken="))
            .map(|h| serde_json::from_str(&h.body).unwrap())
            .collect()
    }

    /// Every notification item POSTed to `path`.
    fn items(&self, path: &str) -> Vec<Value> {
        self.posts(path)
            .into_iter()
            .flat_map(|p| p["value"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits (at most 10 s) until `path` got at least `n` notification items; returns them.
    async fn wait_items(&self, path: &str, n: usize) -> Vec<Value> {
        let r = self.clone();
        let owned = path.to_owned();
        wait_until(move || r.items(&owned).len() >= n, "notifications").await;
        self.items(path)
    }
}

async fn receive(
    State(state): State<Arc<Mutex<RecvState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    let hit = Hit {
        path: uri.path().to_owned(),
        query: query.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body,
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap_or_default();
    let token = pairs
        .iter()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.clone());
    let (validation, status, delay) = {
        let mut s = state.lock().unwrap();
        s.hits.push(hit);
        if token.is_none() {
            let status = s.statuses.pop_front().unwrap_or(s.default_status);
            (s.validation, status, s.delays.pop_front().unwrap_or(0))
        } else {
            (s.validation, 200, 0)
        }
    };
    let Some(token) = token else {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        return AxStatus::from_u16(status).unwrap().into_response();
    };
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match validation {
        Validation::Echo => (plain, token).into_response(),
        Validation::EchoEncoded => {
            let raw = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("validationToken="))
                .unwrap_or("")
                .to_owned();
            (plain, raw).into_response()
        }
        Validation::WrongBody => (plain, "not the token").into_response(),
        Validation::Html => ([(header::CONTENT_TYPE, "text/html")], token).into_response(),
        Validation::Status(s) => AxStatus::from_u16(s).unwrap().into_response(),
        Validation::SleepMs(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (plain, token).into_response()
        }
    }
}

/// A loopback port nobody listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `cond` every 10 ms for at most 10 s.
async fn wait_until(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

struct Ctx {
    ts: TestSim,
    token: String,
    /// Two demo people.
    a: String,
    b: String,
    rx: Receiver,
}

async fn setup() -> Ctx {
    let ts = start(Seed::Demo).await;
    let token = ts.default_token().await;
    let people = ts.sim.creds().people();
    let rx = Receiver::start().await;
    // Short delivery timings for the tests.
    settings(
        &ts,
        &json!({"coalesce_ms": 30, "retry_initial_ms": 20, "retry_max_ms": 100, "validation_timeout_ms": 2000}),
    )
    .await;
    Ctx {
        token,
        a: people[0].clone(),
        b: people[1].clone(),
        ts,
        rx,
    }
}

async fn settings(ts: &TestSim, body: &Value) -> Value {
    let (s, v) = ts
        .control(Method::PUT, "/subscriptions/settings", Some(body))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn in_hours(ts: &TestSim, h: i64) -> String {
    ts.sim
        .state
        .now()
        .checked_add(jiff::SignedDuration::from_hours(h))
        .unwrap()
        .to_string()
}

impl Ctx {
    fn sub_body(&self, mailbox: &str, change: &str, path: &str) -> Value {
        json!({
            "changeType": change,
            "notificationUrl": self.rx.url(path),
            "resource": format!("/users/{mailbox}/events"),
            "expirationDateTime": in_hours(&self.ts, 24),
            "clientState": "secret-client-state",
        })
    }

    async fn post_sub(&self, body: &Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .ts
            .send_json(Method::POST, &self.token, "/v1.0/subscriptions", body)
            .await;
        (s, v)
    }

    /// Creates a subscription that must succeed; its JSON.
    async fn subscribe(&self, mailbox: &str, change: &str, path: &str) -> Value {
        let (s, v) = self.post_sub(&self.sub_body(mailbox, change, path)).await;
        assert_eq!(s, 201, "{v}");
        v
    }

    async fn create_event(&self, mailbox: &str, subject: &str) -> Value {
        let body = json!({
            "subject": subject,
            "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"},
        });
        let (s, _, v) = self
            .ts
            .send_json(
                Method::POST,
                &self.token,
                &format!("/v1.0/users/{mailbox}/events"),
                &body,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    async fn control_subs(&self) -> Value {
        let (s, v) = self.ts.control(Method::GET, "/subscriptions", None).await;
        assert_eq!(s, 200);
        v
    }

    async fn counters(&self, id: &str) -> Value {
        let v = self.control_subs().await;
        v["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["counters"].clone())
            .unwrap_or(Value::Null)
    }
}

fn assert_notification(n: &Value, sub: &Value, change: &str, event_id: &str) {
    assert_eq!(n["subscriptionId"], sub["id"], "{n}");
    assert_eq!(n["changeType"], change, "{n}");
    assert_eq!(n["clientState"], sub["clientState"], "{n}");
    assert_eq!(
        n["subscriptionExpirationDateTime"], sub["expirationDateTime"],
        "{n}"
    );
    assert!(n["id"].as_str().is_some_and(|s| !s.is_empty()), "{n}");
    assert!(n["tenantId"].is_string(), "{n}");
    let resource = n["resource"].as_str().unwrap();
    assert!(resource.starts_with("Users/"), "{n}");
    assert!(resource.ends_with(&format!("/Events/{event_id}")), "{n}");
    let rd = &n["resourceData"];
    assert_eq!(rd["@odata.type"], "#Microsoft.Graph.Event", "{n}");
    assert_eq!(rd["@odata.id"], resource, "{n}");
    assert_eq!(rd["id"], event_id, "{n}");
    assert!(
        rd["@odata.etag"]
            .as_str()
            .is_some_and(|e| e.starts_with("W/\"")),
        "{n}"
    );
    let keys: Vec<&String> = n.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "exactly Graph's members: {n}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_get_list_update_delete_and_reauthorize() {
    let c = setup().await;
    let mut body = c.sub_body(&c.a, "created,updated,deleted", "/hook?tenant=x");
    body["lifecycleNotificationUrl"] = json!(c.rx.url("/lifecycle"));
    let (s, sub) = c.post_sub(&body).await;
    assert_eq!(s, 201, "{sub}");
    // Both URLs were validated: POST with a text/plain content type and the token in the query
    // (the notificationUrl's own query is kept).
    let v = c.rx.validations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].path == "/hook" && v[0].query.starts_with("tenant=x&validationToken="));
    assert!(v[0].content_type.starts_with("text/plain"), "{v:?}");
    assert_eq!(v[1].path, "/lifecycle");
    // Graph's shape.
    for (k, want) in [
        ("changeType", json!("created,updated,deleted")),
        ("clientState", json!("secret-client-state")),
        ("latestSupportedTlsVersion", json!("v1_2")),
        ("includeResourceData", json!(false)),
        ("encryptionCertificate", Value::Null),
        ("resource", body["resource"].clone()),
        ("notificationUrl", body["notificationUrl"].clone()),
        (
            "lifecycleNotificationUrl",
            body["lifecycleNotificationUrl"].clone(),
        ),
    ] {
        assert_eq!(sub[k], want, "{k}: {sub}");
    }
    for k in ["id", "applicationId", "creatorId", "expirationDateTime"] {
        assert!(sub[k].is_string(), "{k}: {sub}");
    }
    assert!(
        sub["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/v1.0/$metadata#subscriptions/$entity")
    );
    let id = sub["id"].as_str().unwrap();
    let path = format!("/v1.0/subscriptions/{id}");

    let (s, _, got) = c.ts.get(&c.token, &path).await;
    assert_eq!(s, 200);
    assert_eq!(got["expirationDateTime"], sub["expirationDateTime"]);
    let (s, _, list) = c.ts.get(&c.token, "/v1.0/subscriptions").await;
    assert_eq!(s, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");

    // Renewal: 200 with the new expiration; lifecycleNotificationUrl is creation-only.
    let renewed = in_hours(&c.ts, 48);
    let (s, _, v) =
        c.ts.send_json(
            Method::PATCH,
            &c.token,
            &path,
            &json!({"expirationDateTime": renewed}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_ne!(v["expirationDateTime"], sub["expirationDateTime"]);
    let (s, _, v) =
        c.ts.send_json(
            Method::PATCH,
            &c.token,
            &path,
            &json!({"lifecycleNotificationUrl": c.rx.url("/other")}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "InvalidRequest");

    // A new notificationUrl is validated first.
    let before = c.rx.validations().len();
    let (s, _, v) =
        c.ts.send_json(
            Method::PATCH,
            &c.token,
            &path,
            &json!({"notificationUrl": c.rx.url("/hook2")}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["notificationUrl"], c.rx.url("/hook2"));
    assert_eq!(c.rx.validations().len(), before + 1);

    // reauthorize → 204.
    let (s, _, v) =
        c.ts.send_json(
            Method::POST,
            &c.token,
            &format!("{path}/reauthorize"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 204, "{v}");

    // Another app sees none of it.
    let (other, _) = c.ts.api.new_app("other-app", &["Calendars.Read"]).await;
    let (oid, osecret) = other.pair();
    let other_token = c.ts.token(&oid, &osecret).await;
    let (s, _, v) = c.ts.get(&other_token, "/v1.0/subscriptions").await;
    assert_eq!(s, 200);
    assert_eq!(v["value"], json!([]));
    let (s, _, _) = c.ts.get(&other_token, &path).await;
    assert_eq!(s, 404);

    // Delete → 204, then 404.
    let r =
        c.ts.http
            .delete(c.ts.url(&path))
            .bearer_auth(&c.token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 204);
    let (s, _, v) = c.ts.get(&c.token, &path).await;
    assert_eq!(s, 404, "{v}");
    assert_graph_error(&v, "ResourceNotFound");
}

#[tokio::test]
async fn the_validation_handshake_must_echo_the_decoded_token() {
    let c = setup().await;
    let body = c.sub_body(&c.a, "created", "/hook");
    let fails = [
        (
            Validation::EchoEncoded,
            "Response must exactly match validationToken query parameter.",
        ),
        (
            Validation::WrongBody,
            "Response must exactly match validationToken query parameter.",
        ),
        (Validation::Html, "Content-Type text/plain"),
        (
            Validation::Status(404),
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
        (
            Validation::Status(202),
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
    ];
    for (mode, msg) in fails {
        c.rx.set_validation(mode);
        let (s, v) = c.post_sub(&body).await;
        assert_eq!(s, 400, "{mode:?}: {v}");
        assert_graph_error(&v, "InvalidRequest");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.starts_with("Subscription validation request failed."),
            "{m}"
        );
        assert!(m.contains(msg), "{mode:?}: {m}");
    }
    // The token carries characters that must be percent-encoded: the encoded echo failed above.
    let q = &c.rx.validations()[0].query;
    assert!(q.contains('%') || q.contains('+'), "{q}");

    // Too slow (the timeout is configured short here; Graph's is 10 s).
    settings(&c.ts, &json!({"validation_timeout_ms": 200})).await;
    c.rx.set_validation(Validation::SleepMs(1500));
    let (s, v) = c.post_sub(&body).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        "Subscription validation request timed out."
    );

    // Nobody listening.
    let mut dead = body.clone();
    let port = closed_port().await;
    dead["notificationUrl"] = json!(format!("http://127.0.0.1:{port}/hook"));
    let (s, v) = c.post_sub(&dead).await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "InvalidRequest");

    // A failing lifecycleNotificationUrl fails the creation too.
    c.rx.set_validation(Validation::Echo);
    let mut lc = body.clone();
    lc["lifecycleNotificationUrl"] = json!(format!("http://127.0.0.1:{port}/lifecycle"));
    let (s, v) = c.post_sub(&lc).await;
    assert_eq!(s, 400, "{v}");

    // Nothing was created; a correct endpoint then succeeds.
    let (_, _, list) = c.ts.get(&c.token, "/v1.0/subscriptions").await;
    assert_eq!(list["value"], json!([]));
    let (s, v) = c.post_sub(&body).await;
    assert_eq!(s, 201, "{v}");
    let totals = c.control_subs().await["totals"].clone();
    assert!(
        totals["validations_failed"].as_u64().unwrap() >= 8,
        "{totals}"
    );
}

#[tokio::test]
async fn requests_are_checked_like_graph() {
    let c = setup().await;
    let base = c.sub_body(&c.a, "created", "/hook");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let now = c.ts.sim.state.now();
    let at = |mins: i64| {
        now.checked_add(jiff::SignedDuration::from_mins(mins))
            .unwrap()
            .to_string()
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with("changeType", json!("created,moved")),
            400,
            "InvalidRequest",
            "changeType",
        ),
        (
            with("clientState", json!("x".repeat(129))),
            400,
            "InvalidRequest",
            "128",
        ),
        (
            without("expirationDateTime"),
            400,
            "InvalidRequest",
            "expirationDateTime is a required property",
        ),
        (
            without("notificationUrl"),
            400,
            "InvalidRequest",
            "notificationUrl is a required property",
        ),
        (
            with("expirationDateTime", json!(at(-5))),
            400,
            "InvalidRequest",
            "future",
        ),
        (
            with("expirationDateTime", json!(at(10_081))),
            400,
            "ExtensionError",
            "10080 minutes",
        ),
        (
            with("notificationUrl", json!("http://example.com/hook")),
            400,
            "InvalidRequest",
            "NotificationUrl scheme='http' is not supported.",
        ),
        (
            with("lifecycleNotificationUrl", json!("http://example.com/lc")),
            400,
            "InvalidRequest",
            "LifecycleNotificationUrl scheme='http'",
        ),
        (
            with("resource", json!(format!("/users/{}/messages", c.a))),
            400,
            "InvalidRequest",
            "not supported",
        ),
        (
            with("resource", json!("me/events")),
            400,
            "BadRequest",
            "delegated",
        ),
        (
            with("resource", json!("/users/nobody@nowhere.example/events")),
            404,
            "ErrorInvalidUser",
            "",
        ),
        (
            with("includeResourceData", json!(true)),
            400,
            "InvalidRequest",
            "resource data",
        ),
    ];
    for (body, status, code, msg) in cases {
        let (s, v) = c.post_sub(&body).await;
        assert_eq!(s.as_u16(), status, "{body}: {v}");
        assert_graph_error(&v, code);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(msg),
            "{body}: {v}"
        );
    }
    // https is what Graph wants: accepted as a URL (the handshake then fails: nobody listens).
    let port = closed_port().await;
    let (s, v) = c
        .post_sub(&with(
            "notificationUrl",
            json!(format!("https://127.0.0.1:{port}/hook")),
        ))
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Subscription validation request failed."),
        "{v}"
    );
    // Nothing was validated for the rejected requests above.
    assert_eq!(c.rx.validations().len(), 0);

    // Lifetimes: at most 10,080 minutes; under 45 minutes is raised to 45.
    let (s, v) = c
        .post_sub(&with("expirationDateTime", json!(at(10_079))))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c.post_sub(&with("expirationDateTime", json!(at(5)))).await;
    assert_eq!(s, 201, "{v}");
    let exp: jiff::Timestamp = v["expirationDateTime"].as_str().unwrap().parse().unwrap();
    let mins = now.duration_until(exp).as_secs() / 60;
    assert!((44..=46).contains(&mins), "{mins} minutes: {v}");
    // Renewal beyond the maximum fails likewise.
    let id = v["id"].as_str().unwrap();
    let (s, _, v) =
        c.ts.send_json(
            Method::PATCH,
            &c.token,
            &format!("/v1.0/subscriptions/{id}"),
            &json!({"expirationDateTime": at(20_000)}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "ExtensionError");

    // The other resource forms.
    for r in [
        format!("users/{}/events", c.a),
        format!("/users/{}/calendar/events", c.a),
    ] {
        let (s, v) = c.post_sub(&with("resource", json!(r))).await;
        assert_eq!(s, 201, "{r}: {v}");
        assert_eq!(v["resource"], r);
    }

    // Permissions: an app without calendar permissions is refused, as on /events.
    let (bare, _) = c.ts.api.new_app("no-calendars", &["User.Read.All"]).await;
    let (bid, bsecret) = bare.pair();
    let bare_token = c.ts.token(&bid, &bsecret).await;
    let (s, _, v) =
        c.ts.send_json(Method::POST, &bare_token, "/v1.0/subscriptions", &base)
            .await;
    assert_eq!(s, 403, "{v}");
    assert_graph_error(&v, "ErrorAccessDenied");
    // Calendars.Read is enough.
    let (ro, _) = c.ts.api.new_app("read-only", &["Calendars.Read"]).await;
    let (rid, rsecret) = ro.pair();
    let ro_token = c.ts.token(&rid, &rsecret).await;
    let (s, _, v) =
        c.ts.send_json(Method::POST, &ro_token, "/v1.0/subscriptions", &base)
            .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["applicationId"], rid);
    // An Application Access Policy that restricts the app to B's group refuses A's mailbox
    // (and allows B's), as on /events.
    {
        use calgate_sim::model::{AccessPolicy, AccessRight, Group};
        let mut dir = c.ts.sim.state.dir();
        let t = &mut dir.tenants[0];
        let b_id = t.user(&c.b).unwrap().id;
        let group = uuid::Uuid::new_v4();
        t.groups.push(Group {
            id: group,
            display_name: "Only B".into(),
            mail: "only-b@contoso.example".into(),
            members: [b_id].into_iter().collect(),
        });
        t.app_mut(&rid).unwrap().access_policy = Some(AccessPolicy {
            access_right: AccessRight::RestrictAccess,
            group,
        });
    }
    let (s, _, v) =
        c.ts.send_json(Method::POST, &ro_token, "/v1.0/subscriptions", &base)
            .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("[RAOP]"),
        "{v}"
    );
    let (s, _, v) =
        c.ts.send_json(
            Method::POST,
            &ro_token,
            "/v1.0/subscriptions",
            &c.sub_body(&c.b, "created", "/hook"),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // No token: 401.
    let r =
        c.ts.http
            .get(c.ts.url("/v1.0/subscriptions"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn at_most_the_cap_per_mailbox_across_apps() {
    let c = setup().await;
    // Graph's cap is 1,000; a small one keeps the test short (the rule is the same).
    settings(&c.ts, &json!({"max_per_mailbox": 2})).await;
    let (other, _) = c.ts.api.new_app("second-app", &["Calendars.Read"]).await;
    let (oid, osecret) = other.pair();
    let other_token = c.ts.token(&oid, &osecret).await;
    c.subscribe(&c.a, "created", "/hook").await;
    let body = c.sub_body(&c.a, "updated", "/hook");
    let (s, _, v) =
        c.ts.send_json(Method::POST, &other_token, "/v1.0/subscriptions", &body)
            .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = c.post_sub(&body).await;
    assert_eq!(s, 403, "{v}");
    assert_graph_error(&v, "ExtensionError");
    // Another mailbox is not affected.
    c.subscribe(&c.b, "created", "/hook").await;
    let (_, v) =
        c.ts.control(Method::GET, "/subscriptions/settings", None)
            .await;
    assert_eq!(v["max_per_mailbox"], 2);
    assert_eq!(
        calgate_sim::subscriptions::MAX_PER_MAILBOX,
        1000,
        "Graph's default"
    );
}

#[tokio::test]
async fn graph_writes_notify_created_updated_deleted() {
    let c = setup().await;
    let all = c.subscribe(&c.a, "created,updated,deleted", "/all").await;
    let deleted_only = c.subscribe(&c.a, "deleted", "/deleted").await;
    let ev = c.create_event(&c.a, "notify me").await;
    let id = ev["id"].as_str().unwrap();
    let got = c.rx.wait_items("/all", 1).await;
    assert_notification(&got[0], &all, "created", id);
    assert_eq!(
        got[0]["resourceData"]["@odata.etag"], ev["@odata.etag"],
        "the etag of the event as created"
    );

    let (s, _, upd) =
        c.ts.send_json(
            Method::PATCH,
            &c.token,
            &format!("/v1.0/users/{}/events/{id}", c.a),
            &json!({"subject": "changed"}),
        )
        .await;
    assert_eq!(s, 200);
    let got = c.rx.wait_items("/all", 2).await;
    assert_notification(&got[1], &all, "updated", id);
    assert_eq!(got[1]["resourceData"]["@odata.etag"], upd["@odata.etag"]);

    let r =
        c.ts.http
            .delete(c.ts.url(&format!("/v1.0/users/{}/events/{id}", c.a)))
            .bearer_auth(&c.token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 204);
    let got = c.rx.wait_items("/all", 3).await;
    assert_notification(&got[2], &all, "deleted", id);
    let del = c.rx.wait_items("/deleted", 1).await;
    assert_notification(&del[0], &deleted_only, "deleted", id);

    // The POSTs are JSON; nothing else arrived for the deleted-only subscription.
    let h = c.rx.hits();
    assert!(
        h.iter()
            .filter(|h| !h.query.contains("validationToken"))
            .all(|h| h.content_type.starts_with("application/json"))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.rx.items("/deleted").len(), 1);
    assert_eq!(c.rx.items("/all").len(), 3);
    // Events of another mailbox notify nothing here.
    c.create_event(&c.b, "elsewhere").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.rx.items("/all").len(), 3);
    let counters = c.counters(all["id"].as_str().unwrap()).await;
    assert_eq!(counters["delivered"], 3, "{counters}");
}

#[tokio::test]
async fn control_api_changes_and_meetings_notify_too() {
    let c = setup().await;
    let sub_a = c.subscribe(&c.a, "created,updated,deleted", "/a").await;
    let sub_b = c.subscribe(&c.b, "created", "/b").await;
    // The owner creates an event in Outlook (control API).
    let ev =
        c.ts.api
            .create_event(
                &c.a,
                &json!({
                    "subject": "from outlook",
                    "start": {"dateTime": "2030-02-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2030-02-01T09:30:00", "timeZone": "UTC"},
                }),
            )
            .await;
    let id = ev["id"].as_str().unwrap();
    let got = c.rx.wait_items("/a", 1).await;
    assert_notification(&got[0], &sub_a, "created", id);
    // ... and deletes it.
    assert_eq!(c.ts.api.delete_event(&c.a, id).await, 204);
    let got = c.rx.wait_items("/a", 2).await;
    assert_notification(&got[1], &sub_a, "deleted", id);

    // Random Outlook-like changes notify as well.
    let n_before = c.rx.items("/a").len();
    c.ts.api.random_changes(&c.a, 5, 11).await;
    c.rx.wait_items("/a", n_before + 1).await;

    // A meeting organised by A with B as attendee lands in B's calendar: B is told.
    let body = json!({
        "subject": "meet",
        "start": {"dateTime": "2030-03-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-01T10:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": c.b}, "type": "required"}],
    });
    let (s, _, _) =
        c.ts.send_json(
            Method::POST,
            &c.token,
            &format!("/v1.0/users/{}/events", c.a),
            &body,
        )
        .await;
    assert_eq!(s, 201);
    let got = c.rx.wait_items("/b", 1).await;
    assert_eq!(got[0]["subscriptionId"], sub_b["id"]);
    assert_eq!(got[0]["changeType"], "created");
}

#[tokio::test]
async fn batch_sub_requests_notify() {
    let c = setup().await;
    let sub = c.subscribe(&c.a, "created", "/batch").await;
    let ev = |subject: &str| {
        json!({"subject": subject,
               "start": {"dateTime": "2030-04-01T09:00:00", "timeZone": "UTC"},
               "end": {"dateTime": "2030-04-01T10:00:00", "timeZone": "UTC"}})
    };
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": format!("/users/{}/events", c.a), "body": ev("one"),
         "headers": {"Content-Type": "application/json"}},
        {"id": "2", "method": "POST", "url": format!("/users/{}/events", c.a), "body": ev("two"),
         "headers": {"Content-Type": "application/json"}},
    ]});
    let (s, _, v) =
        c.ts.send_json(Method::POST, &c.token, "/v1.0/$batch", &body)
            .await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<Value> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["id"].clone())
        .collect();
    let got = c.rx.wait_items("/batch", 2).await;
    for g in &got {
        assert_eq!(g["subscriptionId"], sub["id"]);
        assert!(ids.contains(&g["resourceData"]["id"]), "{g} not in {ids:?}");
    }
}

#[tokio::test]
async fn delivery_settings_are_bounded() {
    let ts = start(Seed::Empty).await;
    let (s, v) = ts
        .control(Method::GET, "/subscriptions/settings", None)
        .await;
    assert_eq!(s, 200);
    // Graph's timings are the defaults.
    assert_eq!(v["validation_timeout_ms"], 10_000, "{v}");
    assert_eq!(v["ack_timeout_ms"], 3_000, "{v}");
    assert_eq!(v["retry_horizon_ms"], 4 * 3600 * 1000, "{v}");
    assert_eq!(v["max_per_mailbox"], 1000, "{v}");
    assert!(v["coalesce_ms"].as_u64().unwrap() <= 100, "{v}");
    let defaults = v.clone();
    for bad in [
        json!({"ack_timeout_ms": 0}),
        json!({"retry_horizon_ms": 86_400_001u64}),
        json!({"max_per_mailbox": 0}),
        json!({"nonsense": 1}),
        json!([]),
    ] {
        let (s, v) = ts
            .control(Method::PUT, "/subscriptions/settings", Some(&bad))
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    // Nothing of a rejected body was applied.
    let (_, after) = ts
        .control(Method::GET, "/subscriptions/settings", None)
        .await;
    assert_eq!(after, defaults);
}

#[tokio::test]
async fn notifications_for_one_url_are_batched() {
    let c = setup().await;
    settings(&c.ts, &json!({"coalesce_ms": 800})).await;
    let s1 = c.subscribe(&c.a, "created", "/shared").await;
    let s2 = c.subscribe(&c.b, "created", "/shared").await;
    c.create_event(&c.a, "one").await;
    c.create_event(&c.b, "two").await;
    let items = c.rx.wait_items("/shared", 2).await;
    let posts = c.rx.posts("/shared");
    assert_eq!(posts.len(), 1, "one POST for both: {posts:?}");
    let subs: Vec<&Value> = items.iter().map(|i| &i["subscriptionId"]).collect();
    assert!(
        subs.contains(&&s1["id"]) && subs.contains(&&s2["id"]),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_5xx_or_a_slow_answer_is_retried_then_delivered() {
    let c = setup().await;
    settings(&c.ts, &json!({"ack_timeout_ms": 1000})).await;
    let sub = c.subscribe(&c.a, "created", "/flaky").await;
    c.rx.script(&[503, 500], 202);
    let ev = c.create_event(&c.a, "retry me").await;
    let r = c.rx.clone();
    wait_until(move || r.posts("/flaky").len() >= 3, "three POSTs").await;
    let posts = c.rx.posts("/flaky");
    assert_eq!(posts[0], posts[1], "the same batch again");
    assert_eq!(posts[1], posts[2]);
    assert_notification(
        &posts[2]["value"][0],
        &sub,
        "created",
        ev["id"].as_str().unwrap(),
    );
    let id = sub["id"].as_str().unwrap().to_owned();
    wait_counter(&c, &id, "delivered", 1).await;
    let k = c.counters(&id).await;
    assert_eq!(k["retried"], 2, "{k}");
    assert_eq!(k["dropped"], 0, "{k}");

    // An answer that comes after the acknowledgement timeout (short here; Graph's is 3 s)
    // counts as none: the batch is sent again.
    settings(&c.ts, &json!({"ack_timeout_ms": 200})).await;
    c.rx.delay(&[1000]);
    c.create_event(&c.a, "slow endpoint").await;
    let r = c.rx.clone();
    wait_until(
        move || r.posts("/flaky").len() >= 5,
        "a re-send after the slow answer",
    )
    .await;
    wait_counter(&c, &id, "delivered", 2).await;
    let k = c.counters(&id).await;
    assert_eq!(k["retried"], 3, "{k}");
}

/// Waits (at most 10 s) until counter `name` of subscription `id` reaches `n`.
async fn wait_counter(c: &Ctx, id: &str, name: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let k = c.counters(id).await;
        if k[name].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never reached {n}: {k}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unanswered_notifications_are_dropped_after_the_horizon() {
    let c = setup().await;
    settings(&c.ts, &json!({"retry_horizon_ms": 300})).await;
    let sub = c.subscribe(&c.a, "created", "/down").await;
    c.rx.script(&[], 503);
    c.create_event(&c.a, "nobody home").await;
    let id = sub["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let k = c.counters(&id).await;
        if k["dropped"] == 1 {
            assert_eq!(k["delivered"], 0, "{k}");
            assert!(k["retried"].as_u64().unwrap() >= 1, "{k}");
            break;
        }
        assert!(Instant::now() < deadline, "{k}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = c.rx.posts("/down").len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.rx.posts("/down").len(),
        attempts,
        "no POST after the drop"
    );
    let totals = c.control_subs().await["totals"].clone();
    assert_eq!(totals["dropped"], 1, "{totals}");
    // A 4xx refuses the notification at once (no retry).
    c.rx.script(&[], 410);
    c.create_event(&c.a, "refused").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.counters(&id).await["dropped"] != 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lifecycle_notifications_are_injectable() {
    let c = setup().await;
    let mut body = c.sub_body(&c.a, "created", "/hook");
    body["lifecycleNotificationUrl"] = json!(c.rx.url("/lifecycle"));
    let (s, sub) = c.post_sub(&body).await;
    assert_eq!(s, 201);
    let id = sub["id"].as_str().unwrap();
    for (n, event) in ["reauthorizationRequired", "missed"].iter().enumerate() {
        let (s, v) =
            c.ts.control(
                Method::POST,
                &format!("/subscriptions/{id}/lifecycle"),
                Some(&json!({"event": event})),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let got = c.rx.wait_items("/lifecycle", n + 1).await;
        let l = &got[n];
        assert_eq!(l["lifecycleEvent"], *event);
        assert_eq!(l["subscriptionId"], sub["id"]);
        assert_eq!(l["clientState"], "secret-client-state");
        assert_eq!(
            l["subscriptionExpirationDateTime"],
            sub["expirationDateTime"]
        );
        assert!(l["tenantId"].is_string());
        assert_eq!(l.as_object().unwrap().len(), 5, "{l}");
    }
    let listed = c.control_subs().await;
    assert_eq!(listed["subscriptions"][0]["reauthorization_required"], true);
    let (s, _, _) =
        c.ts.send_json(
            Method::POST,
            &c.token,
            &format!("/v1.0/subscriptions/{id}/reauthorize"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 204);
    let listed = c.control_subs().await;
    assert_eq!(
        listed["subscriptions"][0]["reauthorization_required"],
        false
    );

    // subscriptionRemoved: told, and gone.
    let (s, _) =
        c.ts.control(
            Method::POST,
            &format!("/subscriptions/{id}/lifecycle"),
            Some(&json!({"event": "subscriptionRemoved"})),
        )
        .await;
    assert_eq!(s, 202);
    let got = c.rx.wait_items("/lifecycle", 3).await;
    assert_eq!(got[2]["lifecycleEvent"], "subscriptionRemoved");
    let (s, _, _) =
        c.ts.get(&c.token, &format!("/v1.0/subscriptions/{id}"))
            .await;
    assert_eq!(s, 404);

    // Without a lifecycleNotificationUrl there is nowhere to send one; unknown events are refused.
    let plain = c.subscribe(&c.a, "created", "/hook").await;
    let pid = plain["id"].as_str().unwrap();
    let (s, _) =
        c.ts.control(
            Method::POST,
            &format!("/subscriptions/{pid}/lifecycle"),
            Some(&json!({"event": "missed"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) =
        c.ts.control(
            Method::POST,
            &format!("/subscriptions/{pid}/lifecycle"),
            Some(&json!({"event": "exploded"})),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn expired_subscriptions_vanish_and_stop_delivering() {
    let c = setup().await;
    let short = c.subscribe(&c.a, "created", "/short").await;
    let mut long = c.sub_body(&c.a, "created", "/long");
    long["expirationDateTime"] = json!(in_hours(&c.ts, 72));
    let (s, long) = c.post_sub(&long).await;
    assert_eq!(s, 201);
    // Two days later (the simulated clock): the one-day subscription is gone. (Tokens expire
    // too: a fresh one.)
    c.ts.api.advance_clock(2 * 86_400).await;
    let token = c.ts.default_token().await;
    let (_, _, list) = c.ts.get(&token, "/v1.0/subscriptions").await;
    let ids: Vec<&Value> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, vec![&long["id"]], "{list}");
    let sid = short["id"].as_str().unwrap();
    let (s, _, _) =
        c.ts.get(&token, &format!("/v1.0/subscriptions/{sid}"))
            .await;
    assert_eq!(s, 404);
    c.ts.api
        .create_event(
            &c.a,
            &json!({
                "subject": "after expiry",
                "start": {"dateTime": "2030-02-01T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-02-01T09:30:00", "timeZone": "UTC"},
            }),
        )
        .await;
    c.rx.wait_items("/long", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.rx.items("/short").len(), 0);
    // Renewal keeps the other one alive past its first expiry.
    let lid = long["id"].as_str().unwrap();
    let (s, _, v) =
        c.ts.send_json(
            Method::PATCH,
            &token,
            &format!("/v1.0/subscriptions/{lid}"),
            &json!({"expirationDateTime": in_hours(&c.ts, 100)}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    c.ts.api.advance_clock(2 * 86_400).await;
    let token = c.ts.default_token().await;
    let (s, _, _) =
        c.ts.get(&token, &format!("/v1.0/subscriptions/{lid}"))
            .await;
    assert_eq!(s, 200);
    let totals = c.control_subs().await["totals"].clone();
    assert_eq!(totals["expired"], 1, "{totals}");
}

#[tokio::test]
async fn lost_notifications_can_be_simulated() {
    let c = setup().await;
    let sub = c.subscribe(&c.a, "created", "/hook").await;
    let id = sub["id"].as_str().unwrap();
    let (s, v) =
        c.ts.control(
            Method::PATCH,
            &format!("/subscriptions/{id}"),
            Some(&json!({"drop_next": 1})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    c.create_event(&c.a, "lost").await;
    let kept = c.create_event(&c.a, "kept").await;
    let got = c.rx.wait_items("/hook", 1).await;
    assert_eq!(got[0]["resourceData"]["id"], kept["id"]);
    // Silent: nothing at all until switched back.
    c.ts.control(
        Method::PATCH,
        &format!("/subscriptions/{id}"),
        Some(&json!({"silent": true})),
    )
    .await;
    c.create_event(&c.a, "silenced").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.rx.items("/hook").len(), 1);
    let k = c.counters(id).await;
    assert_eq!(k["lost"], 2, "{k}");
    assert_eq!(k["delivered"], 1, "{k}");
}

#[tokio::test]
async fn delivery_stops_when_the_simulator_shuts_down() {
    let c = setup().await;
    settings(&c.ts, &json!({"retry_initial_ms": 30, "retry_max_ms": 30})).await;
    c.subscribe(&c.a, "created", "/down").await;
    c.rx.script(&[], 503);
    c.create_event(&c.a, "never acknowledged").await;
    let r = c.rx.clone();
    wait_until(move || r.posts("/down").len() >= 2, "retries").await;
    let Ctx { ts, rx, .. } = c;
    ts.sim.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = rx.posts("/down").len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.posts("/down").len(), n, "no POST after shutdown");
}

/// A delegated token (authorization code + PKCE) of `login`, with Calendars.Read.
async fn delegated_token(ts: &TestSim, login: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    const REDIRECT: &str = "http://localhost/cb";
    const VERIFIER: &str = "dGhpcy1pcy1hLXZlcmlmaWVyLWZvci10aGUtc3Vic2NyaXB0aW9uLXRlc3RzLTEyMzQ";
    let (s, app) = ts
        .control(
            Method::POST,
            "/apps",
            Some(&json!({"name": "subs-web", "redirect_uris": [REDIRECT], "delegated_consent": ["Calendars.Read"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let client_id = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();
    let tenant = ts.tenant();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    let nohttp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut form = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid https://graph.microsoft.com/Calendars.Read"),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("step", "signin"),
        ("login", login),
    ];
    let url = ts.url(&format!("/{tenant}/oauth2/v2.0/authorize"));
    let mut r = nohttp.post(&url).form(&form).send().await.unwrap();
    if r.status() == 200 {
        form.retain(|(k, _)| *k != "step");
        form.extend([("step", "consent"), ("accept", "yes")]);
        r = nohttp.post(&url).form(&form).send().await.unwrap();
    }
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap();
    let code = params
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let r = ts
        .token_request(
            &tenant,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    let s = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn delegated_callers_subscribe_to_me_events() {
    let c = setup().await;
    let token = delegated_token(&c.ts, &c.a).await;
    let mut body = c.sub_body(&c.a, "created", "/me");
    body["resource"] = json!("me/events");
    let (s, _, sub) =
        c.ts.send_json(Method::POST, &token, "/v1.0/subscriptions", &body)
            .await;
    assert_eq!(s, 201, "{sub}");
    assert_eq!(sub["resource"], "me/events");
    let (_, _, me) = c.ts.get(&c.token, &format!("/v1.0/users/{}", c.a)).await;
    assert_eq!(sub["creatorId"], me["id"], "the signed-in user created it");
    // Someone else's calendar: refused, as on /users/{other}/events.
    body["resource"] = json!(format!("/users/{}/events", c.b));
    let (s, _, v) =
        c.ts.send_json(Method::POST, &token, "/v1.0/subscriptions", &body)
            .await;
    assert_eq!(s, 403, "{v}");
    // The app-only caller does not see the user's subscription, the user does.
    let (_, _, list) = c.ts.get(&c.token, "/v1.0/subscriptions").await;
    assert_eq!(list["value"], json!([]));
    let (_, _, list) = c.ts.get(&token, "/v1.0/subscriptions").await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let ev = c.create_event(&c.a, "mine").await;
    let got = c.rx.wait_items("/me", 1).await;
    assert_notification(&got[0], &sub, "created", ev["id"].as_str().unwrap());
    assert_eq!(
        got[0]["resource"],
        format!(
            "Users/{}/Events/{}",
            me["id"].as_str().unwrap(),
            ev["id"].as_str().unwrap()
        )
    );
}
