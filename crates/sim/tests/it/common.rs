//! Test harness: start a simulator in-process, get tokens over real HTTP, small helpers.
#![allow(dead_code)]

pub use calgate_sim::{Seed, SimHandle, SimOptions};
use calgate_testkit::{Control, SimExt};
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

pub struct TestSim {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    /// The control API, over `http`.
    pub api: Control,
}

/// Starts a simulator with the given seed (deterministic rng 7, no latency).
pub async fn start(seed: Seed) -> TestSim {
    start_with(SimOptions {
        seed,
        rng: 7,
        ..SimOptions::default()
    })
    .await
}

pub async fn start_with(opts: SimOptions) -> TestSim {
    let sim = calgate_testkit::start_sim(opts).await;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let api = Control::with_client(http.clone(), &sim.base_url);
    TestSim { sim, http, api }
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url, path)
    }
    pub fn tenant(&self) -> String {
        self.sim.tenant_id()
    }
    pub fn creds(&self) -> Value {
        self.sim.credentials()
    }
    /// (client_id, client_secret) of the published app named `name`.
    pub fn app(&self, name: &str) -> (String, String) {
        self.sim.creds().app(name).pair()
    }
    /// Raw client-credentials request to the v2 token endpoint.
    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(form)
            .send()
            .await
            .unwrap()
    }
    /// An app-only Graph token for (client_id, secret) via client credentials.
    pub async fn token(&self, client_id: &str, secret: &str) -> String {
        let tenant = self.tenant();
        let r = self
            .token_request(
                &tenant,
                &[
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
    /// A token of the first published app (the demo's read-write app).
    pub async fn default_token(&self) -> String {
        let (id, secret) = self.sim.creds().first_app().pair();
        self.token(&id, &secret).await
    }
    pub async fn get(
        &self,
        token: &str,
        path: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        read(self.http.get(self.url(path)).bearer_auth(token)).await
    }
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        read(
            self.http
                .request(method, self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }
    /// Calls the control API (no auth).
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let r = self.api.send(method, path, body).await;
        (r.status, r.json())
    }
}

/// Sends `rb`: (status, headers, JSON body; `null` when empty, a string when not JSON).
async fn read(rb: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = rb.send().await.unwrap();
    let s = r.status();
    let h = r.headers().clone();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (s, h, v)
}

/// Asserts a Graph error body: `{"error":{"code","message","innerError":{"request-id",…}}}`.
pub fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "unexpected error body: {body}");
    assert!(body["error"]["message"].is_string(), "no message: {body}");
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "no innerError.request-id: {body}"
    );
}
