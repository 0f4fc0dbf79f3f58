//! The harness the admin integration tests share: the in-process simulator (real HTTP), a real
//! SQLite file in a temp dir, connections made from the simulator's published credentials, and
//! calls to its control API (`/_sim/…`).
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;
use calgate_sim::{Seed, SimHandle, SimOptions};
use calgate_store::{MasterKey, NewConnection, NewCredential, NewMailbox, OpenOptions, Store};
use calgate_sync::{Engine, EngineOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The demo tenant seeded with `rng`.
pub fn demo(rng: u64) -> SimOptions {
    SimOptions {
        seed: Seed::Demo,
        rng,
        ..SimOptions::default()
    }
}

/// A store on the SQLite file `db`, encrypted with a fresh master key.
pub async fn open_sqlite(db: &Path) -> Arc<dyn Store> {
    let (key, _) = MasterKey::generate().expect("key");
    calgate_store::open_with(
        &format!("sqlite://{}", db.display()),
        OpenOptions {
            master_key: Some(key),
            create: true,
            ..OpenOptions::default()
        },
    )
    .await
    .expect("store opens")
}

/// The (client id, secret) of the app `name` the simulator publishes.
pub fn published_app(sim: &SimHandle, name: &str) -> (String, String) {
    let c = sim.credentials();
    let a = c["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == name))
        .unwrap_or_else(|| panic!("no app {name}"))
        .clone();
    (
        a["client_id"].as_str().expect("id").to_owned(),
        a["client_secret"].as_str().expect("secret").to_owned(),
    )
}

/// The people (mailboxes of kind `user`) of the simulator's tenant.
pub fn people(sim: &SimHandle) -> Vec<String> {
    sim.credentials()["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .filter(|m| m["kind"] == "user")
        .map(|m| m["address"].as_str().expect("address").to_owned())
        .collect()
}

/// Adds the connection `name` to the simulator's tenant as `client_id` with `credentials`.
pub async fn add_sim_connection(
    store: &dyn Store,
    sim: &SimHandle,
    name: &str,
    client_id: &str,
    credentials: Vec<NewCredential>,
) {
    store
        .add_connection(&NewConnection {
            ca_cert_pem: None,
            name: name.to_owned(),
            tenant: sim.tenant_id(),
            client_id: client_id.to_owned(),
            authority: sim.base_url.clone(),
            graph_url: format!("{}/v1.0", sim.base_url),
            cloud: "custom".to_owned(),
            credentials,
        })
        .await
        .expect("add connection");
}

/// Links `address` to `connection` as `kind`, with full privacy and no external id.
pub async fn link(store: &dyn Store, address: &str, connection: &str, kind: MailboxKind) {
    store
        .link_mailbox(&NewMailbox {
            address: address.to_owned(),
            connection: connection.to_owned(),
            kind: Some(kind),
            external_id: None,
            privacy: Some(PrivacyPolicy::Full),
        })
        .await
        .expect("link");
}

/// A call to the simulator's control API at `base`: (status, body text).
pub async fn control_text(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut rb = http.request(method, format!("{base}/_sim{path}"));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("control request");
    let status = r.status();
    (status, r.text().await.unwrap_or_default())
}

/// A call to the simulator's control API at `base`: (status, JSON body or null).
pub async fn control(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = control_text(http, base, method, path, body).await;
    (
        status.as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A simulator, an HTTP client for its control API, and a SQLite store in a temp dir.
pub struct Env {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub shared: Shared,
    /// The SQLite file.
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn start(sim: SimOptions, http: reqwest::Client, shared: Shared) -> Env {
        let sim = calgate_sim::start(sim).await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("calgate.db");
        let store = open_sqlite(&db).await;
        Env {
            sim,
            http,
            store,
            shared,
            db,
            dir,
        }
    }

    /// A control API call: (status, JSON body or null).
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        control(&self.http, &self.sim.base_url, method, path, body).await
    }

    /// A control API call that must succeed: its JSON body (or null).
    pub async fn control_ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, text) = control_text(&self.http, &self.sim.base_url, method, path, body).await;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// The (client id, secret) of a published app.
    pub fn app(&self, name: &str) -> (String, String) {
        published_app(&self.sim, name)
    }

    /// The people of the tenant.
    pub fn users(&self) -> Vec<String> {
        people(&self.sim)
    }

    /// Adds the connection `name` as `client_id` with one `secret`.
    pub async fn add_connection(&self, name: &str, client_id: &str, secret: &str) {
        self.add_connection_with(name, client_id, vec![NewCredential::secret(secret, None)])
            .await;
    }

    /// Adds the connection `name` as `client_id` with `credentials`.
    pub async fn add_connection_with(
        &self,
        name: &str,
        client_id: &str,
        credentials: Vec<NewCredential>,
    ) {
        add_sim_connection(self.store.as_ref(), &self.sim, name, client_id, credentials).await;
    }

    pub async fn link(&self, address: &str, connection: &str, kind: MailboxKind) {
        link(self.store.as_ref(), address, connection, kind).await;
    }

    /// A sync engine over the store.
    pub fn engine_with(&self, concurrency: usize, page_size: u32) -> Engine {
        Engine::new(
            self.store.clone(),
            self.shared.clone(),
            EngineOptions {
                concurrency,
                page_size,
                ..EngineOptions::default()
            },
        )
    }
}
