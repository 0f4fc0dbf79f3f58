//! Hostile input: a problem+json 4xx every time, and nothing stored changes.

use calgate_core::{MailboxKind, PrivacyPolicy};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, api};

/// What is stored: the mailbox list (with statuses and event counts) and the connections.
async fn snapshot(api: &Api) -> (Value, Value) {
    let admin = Some(api.admin_key.as_str());
    (
        api.get("/v1/mailboxes", admin).await.ok(),
        api.get("/v1/connections", admin).await.ok(),
    )
}

#[tokio::test]
async fn hostile_requests_get_a_problem_and_change_nothing() {
    let api = api().await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::BusyOnly)
        .await;
    assert!(api.sync().await.is_success());
    let before = snapshot(&api).await;
    let admin = Some(api.admin_key.as_str());
    let ev = |q: &str| format!("/v1/mailboxes/{user}/events?{q}");

    // Queries: invalid dates, reversed and over-long windows, bad limits, unknown fields.
    for (path, status) in [
        (ev("from=yesterday&to=2026-12-01"), 400),
        (ev("from=2026-13-45&to=2027-01-01"), 400),
        (ev("from=2026-12-01T25:00:00Z&to=2027-01-01"), 400),
        (ev("from=2027-01-01&to=2026-12-01"), 400),
        (ev("from=2026-12-01&to=2026-12-01"), 400),
        (ev("from=2024-01-01&to=2026-12-01"), 400),
        (ev("from=2026-12-01"), 400),
        (ev("from=2026-12-01&to=2027-01-01&limit=0"), 400),
        (ev("from=2026-12-01&to=2027-01-01&limit=1001"), 400),
        (
            ev("from=2026-12-01&to=2027-01-01&limit=99999999999999"),
            400,
        ),
        (ev("from=2026-12-01&to=2027-01-01&limit=-1"), 400),
        (ev("from=2026-12-01&to=2027-01-01&cursor=%00%01"), 400),
        (ev("from=2026-12-01&to=2027-01-01&mailbox_id=1"), 400),
        (ev("from=2026-12-01%27%20OR%201%3D1--&to=2027-01-01"), 400),
        // Unknown, malformed, traversing, SQL-looking, control-character addresses.
        (
            "/v1/mailboxes/nobody@nowhere.example/events?from=2026-12-01&to=2027-01-01".into(),
            404,
        ),
        (
            "/v1/mailboxes/..%2F..%2Fetc%2Fpasswd/events?from=2026-12-01&to=2027-01-01".into(),
            400,
        ),
        // (`%2e%2e` is a dot segment: the client removes it before sending.)
        (
            "/v1/mailboxes/%2e%2e/events?from=2026-12-01&to=2027-01-01".into(),
            404,
        ),
        (
            "/v1/mailboxes/%2E%2E%2F%2E%2E%2Fcalgate.db/events?from=2026-12-01&to=2027-01-01"
                .into(),
            400,
        ),
        (
            "/v1/mailboxes/x%27%20OR%20%271%27%3D%271/events?from=2026-12-01&to=2027-01-01".into(),
            400,
        ),
        (
            "/v1/mailboxes/a%00b@contoso.example/events?from=2026-12-01&to=2027-01-01".into(),
            400,
        ),
        (
            "/v1/mailboxes/%E2%80%AEmoc.osotnoc@x/events?from=2026-12-01&to=2027-01-01".into(),
            400,
        ),
        (
            "/v1/mailboxes/%FF%FE@x.example/events?from=2026-12-01&to=2027-01-01".into(),
            400,
        ),
        ("/v1/nothing-here".into(), 404),
        ("/v1/mailboxes/a@b.example/events/extra".into(), 404),
    ] {
        let r = api.get(&path, admin).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
        let detail = r.problem(status);
        assert!(detail.len() < 400, "{path}: {detail}");
    }

    // Bodies: malformed JSON, wrong types, unknown fields, SQL in values, the wrong media type.
    for (path, body, status) in [
        ("/v1/availability", "{\"mailboxes\": [", 400),
        ("/v1/availability", "[]", 422),
        (
            "/v1/availability",
            "{\"mailboxes\": \"all\", \"from\": \"2026-12-01\", \"to\": \"2026-12-02\"}",
            422,
        ),
        (
            "/v1/availability",
            "{\"mailboxes\": [\"' OR 1=1 --\"], \"from\": \"2026-12-01\", \"to\": \"2026-12-02\"}",
            400,
        ),
        (
            "/v1/availability",
            "{\"mailboxes\": [], \"from\": \"2026-12-01\", \"to\": \"2026-12-02\", \"drop\": 1}",
            422,
        ),
        (
            "/v1/availability",
            "{\"mailboxes\": [\"a@b.example\"], \"from\": \"2026-12-01\", \"to\": \"2030-12-02\"}",
            400,
        ),
        (
            "/v1/availability",
            "{\"mailboxes\": [\"a@b.example\"], \"from\": \"2026-12-01\", \"to\": \"2026-12-02\", \"duration_minutes\": 0}",
            400,
        ),
        (
            "/v1/mailboxes",
            "{\"address\": \"a@b.example'; DROP TABLE mailboxes;--\", \"connection\": \"contoso\"}",
            400,
        ),
        (
            "/v1/mailboxes",
            "{\"address\": \"x@y.example\", \"connection\": \"contoso\", \"kind\": \"spaceship\"}",
            400,
        ),
        ("/v1/mailboxes", "not json at all", 400),
        ("/v1/mailboxes", "", 400),
    ] {
        let r = api
            .send(
                api.request(Method::POST, path, admin)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        r.problem(status);
    }
    let r = api
        .send(
            api.request(Method::POST, "/v1/availability", admin)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    r.problem(415);

    // 10 MB bodies: refused without being read whole.
    let big = format!(
        "{{\"mailboxes\": [\"{}\"], \"from\": \"2026-12-01\", \"to\": \"2026-12-02\"}}",
        "a".repeat(10 * 1024 * 1024)
    );
    for path in ["/v1/availability", "/v1/mailboxes"] {
        let sent = api
            .request(Method::POST, path, admin)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        // The server may answer before the client has finished sending: then the client
        // sees the connection close instead of the answer, which is also a refusal.
        if let Ok(r) = sent {
            assert_eq!(r.status(), 413, "{path}");
            assert_eq!(
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/problem+json")
            );
        }
    }

    // Methods the routes do not have.
    let r = api
        .send(
            api.request(Method::PUT, "/v1/mailboxes", admin)
                .json(&json!({})),
        )
        .await;
    r.problem(405);

    // The service still answers, and nothing stored changed.
    assert_eq!(api.get("/healthz", None).await.status, 200);
    assert_eq!(snapshot(&api).await, before);
}
