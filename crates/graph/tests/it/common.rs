//! Harness: a simulator per test, a `GraphClient` for one of its apps, control API helpers.
#![allow(dead_code)]

pub use calgate_graph::*;
pub use calgate_sim::{Seed, SimHandle, SimOptions};
pub use serde_json::{Value, json};

pub struct T {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub shared: Shared,
}

pub async fn start() -> T {
    start_with(Shared::new().unwrap()).await
}

/// For 429-storm tests: a retry budget large enough that no request runs out of attempts by
/// chance (at a 30 % storm, 6 throttled answers in a row happen in about 1 of 1,400 requests),
/// so the test measures what it is about — nothing sent before Retry-After — not the budget.
pub async fn start_for_storm() -> T {
    let policy = RetryPolicy {
        max_attempts: 16,
        ..RetryPolicy::default()
    };
    start_with(Shared::with_retry_policy(policy).unwrap()).await
}

async fn start_with(shared: Shared) -> T {
    let sim = calgate_sim::start(SimOptions {
        seed: Seed::Demo,
        rng: 7,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    T {
        sim,
        http: reqwest::Client::new(),
        shared,
    }
}

impl T {
    pub fn creds(&self) -> Value {
        self.sim.credentials()
    }
    pub fn tenant(&self) -> String {
        self.sim.tenant_id()
    }
    /// (client_id, secret) of a published app.
    pub fn app(&self, name: &str) -> (String, String) {
        let c = self.creds();
        let a = c["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no app {name}: {c}"));
        (
            a["client_id"].as_str().unwrap().to_owned(),
            a["client_secret"].as_str().unwrap().to_owned(),
        )
    }
    pub fn config(&self, client_id: &str, credentials: Vec<Credential>) -> ConnectionConfig {
        let c = self.creds();
        ConnectionConfig {
            tenant: self.tenant(),
            client_id: client_id.to_owned(),
            credentials,
            authority: self.sim.base_url.clone(),
            graph_url: c["graph_url"].as_str().unwrap().to_owned(),
            extra_root_ca_pem: None,
            token_endpoint: TokenEndpoint::V2,
            graph_resource: None,
            credential_ids: Vec::new(),
        }
    }
    /// A client for the app `client_id` with its secret.
    pub fn client_with_secret(
        &self,
        client_id: &str,
        secret: impl Into<SecretString>,
    ) -> GraphClient {
        GraphClient::new(
            self.config(client_id, vec![Credential::secret(secret, None)]),
            &self.shared,
        )
        .unwrap()
    }
    /// A client for the published app `name` with its secret.
    pub fn client(&self, name: &str) -> GraphClient {
        let (id, secret) = self.app(name);
        self.client_with_secret(&id, secret)
    }
    /// The `kind` mailboxes of the demo tenant.
    pub fn mailboxes(&self, kind: &str) -> Vec<String> {
        self.creds()["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == kind)
            .map(|m| m["address"].as_str().unwrap().to_owned())
            .collect()
    }
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}/_sim{path}", self.sim.base_url));
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        let t = r.text().await.unwrap();
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }
    /// A control API call that must answer `status`: its body.
    pub async fn control_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let (s, v) = self.control(method, path, body).await;
        assert_eq!(s, status, "{path}: {v}");
        v
    }
    /// Creates an app through the control API: (client_id, secret).
    pub async fn new_app(&self, name: &str, roles: &[&str]) -> (String, String, Value) {
        let v = self
            .control_ok(
                reqwest::Method::POST,
                "/apps",
                Some(&json!({"name": name, "roles": roles})),
                201,
            )
            .await;
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
            v,
        )
    }
    pub async fn app_counters(&self, client_id: &str) -> Value {
        let path = format!("/apps/{client_id}/counters");
        self.control_ok(reqwest::Method::GET, &path, None, 200)
            .await
    }
    pub async fn mailbox_stats(&self, address: &str) -> Value {
        let path = format!("/mailboxes/{address}/stats");
        self.control_ok(reqwest::Method::GET, &path, None, 200)
            .await
    }
}

pub fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// A window around the simulator's "now" that holds the demo's events.
pub fn window() -> (jiff::Timestamp, jiff::Timestamp) {
    let now = jiff::Timestamp::now();
    (
        now.checked_sub(jiff::SignedDuration::from_hours(24 * 31))
            .unwrap(),
        now.checked_add(jiff::SignedDuration::from_hours(24 * 121))
            .unwrap(),
    )
}
