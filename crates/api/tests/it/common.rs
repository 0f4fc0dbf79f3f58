//! The harness: the API served in-process on 127.0.0.1:0 over a real SQLite file, a demo
//! simulator behind it, and API keys of every scope.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use calgate_api::metrics::Metrics;
use calgate_api::{ApiConfig, AppState};
use calgate_core::{ApiScope, MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;
use calgate_sim::SimHandle;
use calgate_store::{NewCredential, NewMailbox, Store};
use calgate_sync::scheduler::{self, SchedulerHandle, SchedulerOptions};
use calgate_sync::{DeletionGuard, Engine, Summary, SyncRequest};
use calgate_testkit::{Control, Credentials, SimExt, TempStore};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct Api {
    pub sim: SimHandle,
    pub control: Control,
    pub creds: Credentials,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub scheduler: Option<SchedulerHandle>,
    /// Graph change notifications (`Options::notifications`).
    pub notifier: Option<calgate_sync::notify::Notifier>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub http: reqwest::Client,
    pub read_key: String,
    pub write_key: String,
    pub admin_key: String,
    /// The SQLite file.
    pub db: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// How to start the harness.
#[derive(Default)]
pub struct Options {
    /// Run the background scheduler with this cadence.
    pub cadence: Option<Duration>,
    /// Take Graph's change notifications at this server's address (the notifier is not
    /// spawned: tests call `reconcile` with the clock they want).
    pub notifications: bool,
}

/// The demo tenant (rng 7) behind an API with connection `contoso` (the read-write demo app)
/// and no mailbox linked.
pub async fn api() -> Api {
    api_with(Options::default()).await
}

pub async fn api_with(options: Options) -> Api {
    let sim = calgate_testkit::start_demo(7).await;
    let creds = sim.creds();
    let TempStore { store, dir } = calgate_testkit::temp_store().await;
    let (client_id, secret) = creds.first_app().pair();
    store
        .add_connection(&calgate_testkit::sim_connection(
            &sim,
            "contoso",
            &client_id,
            vec![NewCredential::secret(&secret, None)],
        ))
        .await
        .expect("connection");
    let shared = Shared::new().expect("shared");
    let engine = calgate_testkit::engine(&store, &shared, 4, 100, DeletionGuard::off());
    let scheduler = options.cadence.map(|cadence| {
        scheduler::spawn(
            engine.clone(),
            SchedulerOptions {
                cadence,
                jitter: Duration::ZERO,
                tick: Duration::from_millis(100),
                ..SchedulerOptions::default()
            },
            None,
        )
    });
    let mut keys = Vec::new();
    for (name, scopes) in [
        ("reader", vec![ApiScope::Read]),
        ("writer", vec![ApiScope::Read, ApiScope::Write]),
        ("admin", vec![ApiScope::Admin]),
    ] {
        let (key, new) = calgate_api::auth::generate_key(name, &scopes);
        store.add_api_key(&new).await.expect("api key");
        keys.push(key.expose().to_owned());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let base = format!("http://{addr}");
    let mut state = AppState::new(
        store.clone(),
        engine.clone(),
        scheduler.clone(),
        Arc::new(Metrics::default()),
        ApiConfig {
            public_url: base.clone(),
            ..ApiConfig::default()
        },
    );
    let notifier = options.notifications.then(|| {
        let n = calgate_sync::notify::Notifier::new(
            engine.clone(),
            calgate_sync::notify::NotifyOptions::new(&base),
        );
        if let Some(s) = &scheduler {
            s.follow_notifications(n.notified(), Duration::from_secs(3600));
        }
        n
    });
    if let Some(n) = &notifier {
        state = state.with_notifier(n.clone());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(calgate_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    Api {
        control: sim.control(),
        creds,
        sim,
        store,
        engine,
        scheduler,
        notifier,
        base,
        http,
        read_key: keys.remove(0),
        write_key: keys.remove(0),
        admin_key: keys.remove(0),
        stop: Some(stop),
        db: dir.path().join(calgate_testkit::DB_FILE),
        _dir: dir,
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status`: its `detail`.
    #[track_caller]
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let v = self.json();
        assert_eq!(v["status"], status, "{v}");
        assert!(v["title"].is_string(), "{v}");
        let detail = v["detail"].as_str().expect("detail").to_owned();
        assert!(!detail.is_empty() && !detail.contains('\n'), "{detail:?}");
        detail
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text);
        self.json()
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `key` (if any) as bearer token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        assert!(
            headers.get("request-id").is_some(),
            "every answer carries a request-id: {status} {text}"
        );
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, path, key)).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path, key).json(body))
            .await
    }

    /// The demo's people and rooms, as the simulator publishes them.
    pub fn users(&self) -> Vec<String> {
        self.of_kind(MailboxKind::User)
    }

    pub fn rooms(&self) -> Vec<String> {
        self.of_kind(MailboxKind::Room)
    }

    fn of_kind(&self, kind: MailboxKind) -> Vec<String> {
        self.creds
            .kinds()
            .into_iter()
            .filter(|(_, k)| *k == kind)
            .map(|(a, _)| a)
            .collect()
    }

    /// Links `address` straight in the store (no verification).
    pub async fn link(&self, address: &str, kind: MailboxKind, privacy: PrivacyPolicy) {
        self.store
            .link_mailbox(&NewMailbox::new(address, "contoso", kind, privacy))
            .await
            .expect("link");
    }

    /// One sync round of every linked mailbox.
    pub async fn sync(&self) -> Summary {
        self.engine
            .sync(&SyncRequest::default(), None)
            .await
            .expect("sync runs")
    }

    /// A mailbox with an empty calendar, made in the simulator now.
    pub async fn empty_mailbox(&self, local: &str, kind: &str) -> String {
        let domain = self
            .users()
            .first()
            .and_then(|a| a.split_once('@').map(|(_, d)| d.to_owned()))
            .expect("a demo user");
        let address = format!("{local}@{domain}");
        let body = serde_json::json!({ "address": address, "kind": kind, "time_zone": "UTC" });
        self.control
            .expect(Method::POST, "/mailboxes", Some(&body), 201)
            .await;
        address
    }
}

/// A Graph event body for the simulator's control API (UTC).
pub fn event(subject: &str, start: &str, end: &str, show_as: &str) -> Value {
    serde_json::json!({
        "subject": subject,
        "start": { "dateTime": start, "timeZone": "UTC" },
        "end": { "dateTime": end, "timeZone": "UTC" },
        "showAs": show_as,
        "location": { "displayName": "Room 12" },
    })
}
