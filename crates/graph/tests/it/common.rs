//! Harness: a simulator per test, a `GraphClient` for one of its apps, control API helpers.
#![allow(dead_code)]

pub use calgate_graph::*;
pub use calgate_sim::SimHandle;
pub use calgate_testkit::{Control, SimExt};
pub use serde_json::{Value, json};

pub struct T {
    pub sim: SimHandle,
    /// The simulator's control API.
    pub api: Control,
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
    let sim = calgate_testkit::start_demo(7).await;
    T {
        api: Control::with_client(reqwest::Client::new(), &sim.base_url),
        sim,
        shared,
    }
}

impl T {
    pub fn tenant(&self) -> String {
        self.sim.tenant_id()
    }
    /// (client_id, secret) of a published app.
    pub fn app(&self, name: &str) -> (String, String) {
        self.sim.creds().app(name).pair()
    }
    pub fn config(&self, client_id: &str, credentials: Vec<Credential>) -> ConnectionConfig {
        ConnectionConfig {
            tenant: self.tenant(),
            client_id: client_id.to_owned(),
            credentials,
            authority: self.sim.base_url.clone(),
            graph_url: self.sim.creds().graph_url,
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
        self.sim.creds().addresses_of(kind)
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
