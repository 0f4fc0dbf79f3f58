//! The harness the admin tests share: the in-process simulator (real HTTP), a real SQLite file
//! in a temp dir, and connections made from the simulator's published credentials — built on
//! calgate-testkit.

use std::path::PathBuf;
use std::sync::Arc;

use calgate_core::MailboxKind;
use calgate_graph::Shared;
use calgate_sim::{SimHandle, SimOptions};
use calgate_store::{NewCredential, Store};
use calgate_sync::{DeletionGuard, Engine};
use calgate_testkit::{Control, SimExt, TempStore};
use reqwest::Method;
use serde_json::Value;

pub use calgate_testkit::demo;

/// A person of the demo tenant.
pub const ANNA: &str = "anna.devries@contoso.example";
/// A member of the `calgate-scope` group (the RBAC scope of `calgate-scoped`).
pub const MARCO: &str = "marco.rossi@contoso.example";

/// A simulator, its control API, and a SQLite store in a temp dir.
pub struct Env {
    pub sim: SimHandle,
    /// The simulator's control API (over the HTTP client the harness was started with).
    pub api: Control,
    pub store: Arc<dyn Store>,
    pub shared: Shared,
    /// The SQLite file.
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

/// [`Env::start`] on the demo tenant seeded with `rng`, a plain HTTP client and a default
/// `Shared`.
pub async fn demo_env(rng: u64) -> Env {
    Env::start(
        demo(rng),
        reqwest::Client::new(),
        Shared::new().expect("shared"),
    )
    .await
}

impl Env {
    pub async fn start(sim: SimOptions, http: reqwest::Client, shared: Shared) -> Env {
        let sim = calgate_testkit::start_sim(sim).await;
        let api = Control::with_client(http, &sim.base_url);
        let t = calgate_testkit::temp_store().await;
        let db = t.db();
        let TempStore { store, dir } = t;
        Env {
            sim,
            api,
            store,
            shared,
            db,
            dir,
        }
    }

    /// A control API call: (status, JSON body).
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, path, body.as_ref()).await
    }

    /// A control API call that must succeed: its JSON body.
    pub async fn control_ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.api.ok(method, path, body.as_ref()).await
    }

    /// The (client id, secret) of a published app.
    pub fn app(&self, name: &str) -> (String, String) {
        self.sim.creds().app(name).pair()
    }

    /// The people of the tenant.
    pub fn users(&self) -> Vec<String> {
        self.sim.creds().people()
    }

    /// Adds the connection `name` as `client_id` with one `secret`.
    pub async fn add_connection(&self, name: &str, client_id: &str, secret: &str) {
        self.add_connection_with(name, client_id, vec![NewCredential::secret(secret, None)])
            .await;
    }

    /// Adds the connection `name` to the simulator's tenant as `client_id` with `credentials`.
    pub async fn add_connection_with(
        &self,
        name: &str,
        client_id: &str,
        credentials: Vec<NewCredential>,
    ) {
        let c = calgate_testkit::sim_connection(&self.sim, name, client_id, credentials);
        self.store.add_connection(&c).await.expect("add connection");
    }

    /// Links `address` to `connection` as `kind`, with full privacy and no external id.
    pub async fn link(&self, address: &str, connection: &str, kind: MailboxKind) {
        calgate_testkit::link_full(self.store.as_ref(), address, connection, kind).await;
    }

    /// A sync engine over the store (with the default bulk-delete guard).
    pub fn engine_with(&self, concurrency: usize, page_size: u32) -> Engine {
        let guard = DeletionGuard::default();
        calgate_testkit::engine(&self.store, &self.shared, concurrency, page_size, guard)
    }
}
