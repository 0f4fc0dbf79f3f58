//! A client for the simulator's control API (`/_sim/…`): plain calls (method, path, optional
//! JSON body → status and JSON), and typed helpers for what tests do often.

use std::fmt::Display;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::creds::App;

/// A control API answer: its status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
}

impl Reply {
    /// The body as JSON: `null` when empty, a JSON string holding the text when it is not JSON.
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).unwrap_or_else(|_| Value::String(self.text.clone()))
    }
}

/// The control API of one simulator.
#[derive(Debug, Clone)]
pub struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    /// The control API of the simulator at `base_url`, over an HTTP client of its own (30 s
    /// timeout).
    pub fn new(base_url: &str) -> Control {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Control::with_client(http, base_url)
    }

    /// The same over `http`.
    pub fn with_client(http: reqwest::Client, base_url: &str) -> Control {
        Control {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `{base}/_sim{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/_sim{path}", self.base)
    }

    /// `method /_sim{path}` with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("control request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        Reply { status, text }
    }

    /// A call: (status, JSON body; see [`Reply::json`]).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = self.send(method, path, body).await;
        (r.status.as_u16(), r.json())
    }

    /// A call that must succeed (2xx): its JSON body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let r = self.send(method, path, body).await;
        assert!(r.status.is_success(), "{path}: {} {}", r.status, r.text);
        r.json()
    }

    /// A call that must answer `status`: its JSON body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (s, v) = self.call(method, path, body).await;
        assert_eq!(s, status, "{path}: {v}");
        v
    }

    /// `POST /clock {"advance_seconds"}`: moves the simulator's clock; its clock document.
    pub async fn advance_clock(&self, seconds: i64) -> Value {
        let body = json!({ "advance_seconds": seconds });
        self.expect(Method::POST, "/clock", Some(&body), 200).await
    }

    /// `POST /mailboxes/{address}/delta-faults`: arms delta faults on a mailbox (e.g.
    /// `{"gone_on_next": true}`); the simulator's answer.
    pub async fn delta_faults(&self, address: &str, faults: &Value) -> Value {
        let path = format!("/mailboxes/{address}/delta-faults");
        self.expect(Method::POST, &path, Some(faults), 200).await
    }

    /// `POST /mailboxes/{address}/random-changes {"count", "seed"}`: its answer (`applied`,
    /// `counts` per kind).
    pub async fn random_changes(&self, address: &str, count: u32, seed: u64) -> Value {
        let path = format!("/mailboxes/{address}/random-changes");
        let body = json!({ "count": count, "seed": seed });
        self.expect(Method::POST, &path, Some(&body), 200).await
    }

    /// `GET /mailboxes/{address}/events?start&end`: the truth of a mailbox over a window, the
    /// whole answer (`count`, `value`: calendarView-shaped instances in UTC).
    pub async fn events(&self, address: &str, start: impl Display, end: impl Display) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/mailboxes/{address}/events")))
            .query(&[("start", start.to_string()), ("end", end.to_string())])
            .send()
            .await
            .expect("truth request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 200, "truth of {address}: {text}");
        serde_json::from_str(&text).expect("truth JSON")
    }

    /// The instances of [`Control::events`].
    pub async fn truth(&self, address: &str, start: impl Display, end: impl Display) -> Vec<Value> {
        let mut v = self.events(address, start, end).await;
        match v["value"].take() {
            Value::Array(a) => a,
            other => panic!("truth of {address}: no value array: {other}"),
        }
    }

    /// `POST /mailboxes/{address}/events`: creates an event as its owner would; the event.
    pub async fn create_event(&self, address: &str, event: &Value) -> Value {
        let path = format!("/mailboxes/{address}/events");
        self.expect(Method::POST, &path, Some(event), 201).await
    }

    /// `DELETE /mailboxes/{address}/events/{id}`: the status (204, or 404 for an unknown id).
    pub async fn delete_event(&self, address: &str, id: &str) -> u16 {
        let path = format!("/mailboxes/{address}/events/{id}");
        self.call(Method::DELETE, &path, None).await.0
    }

    /// `POST /apps {"name", "roles"}`: a new app registration with one secret; the app and
    /// the whole answer (its `secret` with `key_id`, `value`, `expires`).
    pub async fn new_app(&self, name: &str, roles: &[&str]) -> (App, Value) {
        let body = json!({ "name": name, "roles": roles });
        let v = self.expect(Method::POST, "/apps", Some(&body), 201).await;
        let app = App::deserialize(&v).unwrap_or_else(|e| panic!("new app {name}: {e}: {v}"));
        (app, v)
    }

    /// `GET /apps/{client_id}/counters`.
    pub async fn app_counters(&self, client_id: &str) -> Value {
        let path = format!("/apps/{client_id}/counters");
        self.expect(Method::GET, &path, None, 200).await
    }

    /// `GET /mailboxes/{address}/stats`.
    pub async fn mailbox_stats(&self, address: &str) -> Value {
        let path = format!("/mailboxes/{address}/stats");
        self.expect(Method::GET, &path, None, 200).await
    }
}
