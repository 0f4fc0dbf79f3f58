//! Test harness: an in-process simulator (real HTTP), a real SQLite file, and the comparison
//! of calgate's store with the simulator's truth.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use calgate_core::{MailboxKind, Sensitivity, ShowAs};
use calgate_graph::{RetryPolicy, Shared};
use calgate_sim::{SimHandle, SimOptions};
use calgate_store::{ChangeSet, MailboxId, NewCredential, OpenOptions, Store, Window};
use calgate_sync::{DeletionGuard, Engine, Summary, SyncRequest};
use calgate_testkit::{Control, SimExt, TempStore};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::Value;

pub struct Env {
    pub sim: SimHandle,
    /// The simulator's control API.
    pub api: Control,
    pub store: Arc<dyn Store>,
    pub shared: Shared,
    _dir: tempfile::TempDir,
}

/// A demo simulator (rng 7) with `latency_ms`, an empty store in a temp dir, and a `Shared`
/// graph context (with `retry` if given).
pub async fn env(latency_ms: u64, retry: Option<RetryPolicy>) -> Env {
    env_with(latency_ms, retry, None).await
}

/// [`env`] whose store holds at most `max_page_count` pages (past it writes fail "disk full").
pub async fn env_with(
    latency_ms: u64,
    retry: Option<RetryPolicy>,
    max_page_count: Option<u64>,
) -> Env {
    let sim = calgate_testkit::start_sim(SimOptions {
        latency_ms,
        ..calgate_testkit::demo(7)
    })
    .await;
    let TempStore { store, dir } = calgate_testkit::temp_store_with(OpenOptions {
        max_page_count,
        ..OpenOptions::default()
    })
    .await;
    let shared = match retry {
        Some(r) => Shared::with_retry_policy(r),
        None => Shared::new(),
    }
    .expect("shared");
    Env {
        api: sim.control(),
        sim,
        store,
        shared,
        _dir: dir,
    }
}

impl Env {
    pub fn base(&self) -> &str {
        &self.sim.base_url
    }

    /// (client_id, client_secret) of a published demo app.
    pub fn app(&self, name: &str) -> (String, String) {
        self.sim.creds().app(name).pair()
    }

    /// Every demo mailbox: (address, kind).
    pub fn mailboxes(&self) -> Vec<(String, MailboxKind)> {
        self.sim.creds().kinds()
    }

    /// Adds a connection to the simulator's tenant (or `tenant`), Graph at `graph_url` (default
    /// the simulator's).
    pub async fn add_connection(
        &self,
        name: &str,
        client_id: &str,
        secret: &str,
        tenant: Option<&str>,
        graph_url: Option<&str>,
    ) {
        let credentials = vec![NewCredential::secret(secret, None)];
        let mut c = calgate_testkit::sim_connection(&self.sim, name, client_id, credentials);
        if let Some(t) = tenant {
            c.tenant = t.to_owned();
        }
        if let Some(g) = graph_url {
            c.graph_url = g.to_owned();
        }
        self.store.add_connection(&c).await.expect("add connection");
    }

    /// The main demo app ("calgate", Calendars.ReadWrite) as connection `contoso`.
    pub async fn add_main_connection(&self) {
        let (id, secret) = self.app("calgate");
        self.add_connection("contoso", &id, &secret, None, None)
            .await;
    }

    pub async fn link(&self, address: &str, connection: &str) -> MailboxId {
        let kind = self
            .mailboxes()
            .into_iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(_, k)| k)
            .unwrap_or(MailboxKind::User);
        calgate_testkit::link_full(self.store.as_ref(), address, connection, kind).await
    }

    /// Writes `changes` as another process would: under a lease of its own, released after.
    pub async fn apply_as_another_process(&self, id: MailboxId, changes: &ChangeSet) {
        let holder = calgate_store::LeaseHolder {
            id: "test-writer".into(),
            pid: 1,
            host: "test-host".into(),
        };
        let grant = self
            .store
            .acquire_lease(id, &holder, jiff::SignedDuration::from_secs(60))
            .await
            .expect("lease");
        let calgate_store::LeaseGrant::Acquired(lease) = grant else {
            panic!("the mailbox is leased: {grant:?}")
        };
        self.store
            .apply_changes(&lease, changes)
            .await
            .expect("apply the changes");
        self.store.release_lease(&lease).await.expect("release");
    }

    pub async fn mailbox_id(&self, address: &str) -> MailboxId {
        self.store
            .mailbox(address)
            .await
            .expect("mailbox")
            .expect("linked")
            .id
    }

    pub fn engine(&self, concurrency: usize) -> Engine {
        self.engine_with(concurrency, 50)
    }

    pub fn engine_with(&self, concurrency: usize, page_size: u32) -> Engine {
        // Random changes may delete most of a small mailbox: the guard has its own test.
        let guard = DeletionGuard::off();
        calgate_testkit::engine(&self.store, &self.shared, concurrency, page_size, guard)
    }

    pub async fn sync(&self, engine: &Engine, request: &SyncRequest) -> Summary {
        engine.sync(request, None).await.expect("sync runs")
    }

    /// `/_sim{path}` with an optional JSON body: (status, JSON).
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, path, body.as_ref()).await
    }

    /// The window the mailbox's cursor covers.
    pub async fn cursor_window(&self, address: &str) -> Window {
        let id = self.mailbox_id(address).await;
        let c = self
            .store
            .cursor(id)
            .await
            .expect("cursor")
            .unwrap_or_else(|| panic!("{address} has no cursor"));
        Window {
            start: c.window_start,
            end: c.window_end,
        }
    }

    /// The simulator's instances of `address` in `w`, as comparable rows.
    pub async fn truth(&self, address: &str, w: Window) -> BTreeMap<String, Row> {
        self.api
            .truth(address, w.start, w.end)
            .await
            .iter()
            .map(|e| (e["id"].as_str().expect("id").to_owned(), Row::from_graph(e)))
            .collect()
    }

    /// calgate's stored instances of `address` in `w`, as comparable rows.
    pub async fn stored(&self, address: &str, w: Window) -> BTreeMap<String, Row> {
        let id = self.mailbox_id(address).await;
        self.store
            .instances(id, w.start, w.end)
            .await
            .expect("instances")
            .into_iter()
            .map(|s| {
                (
                    s.instance.exchange_id.clone(),
                    Row::from_instance(&s.instance),
                )
            })
            .collect()
    }

    /// Asserts that the store equals the simulator for `address` over its cursor's window;
    /// returns the number of instances.
    pub async fn assert_equal(&self, address: &str) -> usize {
        let w = self.cursor_window(address).await;
        let truth = self.truth(address, w).await;
        let stored = self.stored(address, w).await;
        assert_rows_equal(address, &truth, &stored);
        truth.len()
    }
}

/// The fields compared between calgate and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// An RFC 3339 instant, or the date for all-day instances.
    pub start: String,
    pub end: String,
    pub all_day: bool,
    pub time_zone: String,
    pub show_as: String,
    pub sensitivity: String,
    pub subject: Option<String>,
    pub kind: String,
    pub series_master_id: Option<String>,
    pub web_link: Option<String>,
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Row {
    /// From calendarView JSON (times in UTC), read independently of calgate-graph.
    fn from_graph(e: &Value) -> Row {
        let all_day = e["isAllDay"].as_bool().unwrap_or(false);
        let when = |d: &Value| {
            assert_eq!(d["timeZone"], "UTC", "the truth is rendered in UTC: {d}");
            let dt: DateTime = d["dateTime"]
                .as_str()
                .expect("dateTime")
                .parse()
                .expect("civil");
            if all_day {
                dt.date().to_string()
            } else {
                // calgate's store keeps microseconds.
                let t = dt.to_zoned(TimeZone::UTC).expect("utc").timestamp();
                t.round(
                    jiff::TimestampRound::new()
                        .smallest(jiff::Unit::Microsecond)
                        .mode(jiff::RoundMode::Trunc),
                )
                .expect("round")
                .to_string()
            }
        };
        let zone = e["originalStartTimeZone"]
            .as_str()
            .and_then(calgate_tz::to_iana)
            .unwrap_or("UTC");
        let sensitivity = Sensitivity::parse(e["sensitivity"].as_str().unwrap_or(""));
        Row {
            start: when(&e["start"]),
            end: when(&e["end"]),
            all_day,
            time_zone: zone.to_owned(),
            show_as: ShowAs::parse(e["showAs"].as_str().unwrap_or(""))
                .as_str()
                .to_owned(),
            sensitivity: format!("{sensitivity:?}"),
            // The tests link mailboxes with the `full` policy: private and confidential items'
            // details are not stored.
            subject: non_empty(&e["subject"]).filter(|_| !sensitivity.is_restricted()),
            kind: e["type"].as_str().unwrap_or("").to_owned(),
            series_master_id: non_empty(&e["seriesMasterId"]),
            web_link: non_empty(&e["webLink"]),
        }
    }

    pub fn from_instance(i: &calgate_core::Instance) -> Row {
        let (start, end) = match i.when.all_day {
            Some((s, e)) => (s.to_string(), e.to_string()),
            None => (i.when.start.to_string(), i.when.end.to_string()),
        };
        Row {
            start,
            end,
            all_day: i.when.all_day.is_some(),
            time_zone: i.when.time_zone.clone(),
            show_as: i.show_as.as_str().to_owned(),
            sensitivity: format!("{:?}", i.sensitivity),
            subject: i.subject.clone().filter(|s| !s.is_empty()),
            kind: serde_json::to_value(i.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            series_master_id: i.series_master_id.clone(),
            web_link: i.web_link.clone(),
        }
    }
}

pub fn assert_rows_equal(
    address: &str,
    truth: &BTreeMap<String, Row>,
    stored: &BTreeMap<String, Row>,
) {
    let missing: Vec<&String> = truth.keys().filter(|k| !stored.contains_key(*k)).collect();
    let extra: Vec<&String> = stored.keys().filter(|k| !truth.contains_key(*k)).collect();
    let differ: Vec<(&String, &Row, &Row)> = truth
        .iter()
        .filter_map(|(k, t)| stored.get(k).filter(|s| *s != t).map(|s| (k, t, s)))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{address}: {} instances in the simulator, {} stored; missing {:?}; extra {:?}; differing (id, truth, stored) {:#?}",
        truth.len(),
        stored.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.iter().take(5).collect::<Vec<_>>(),
        differ.iter().take(3).collect::<Vec<_>>()
    );
}

/// `POST /_sim/mailboxes/{addr}/random-changes`: returns the counts per kind.
pub async fn random_changes(env: &Env, address: &str, count: u32, seed: u64) -> Value {
    let v = env.api.random_changes(address, count, seed).await;
    assert_eq!(v["applied"], count, "{v}");
    v["counts"].clone()
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// A reverse proxy in front of the simulator's Graph that can cut the next delta page in half
/// (a truncated page as a broken proxy or connection would deliver it). Links in bodies are
/// rewritten to point at the proxy.
pub struct Proxy {
    pub base: String,
    /// `Some(n)`: let `n` delta responses through, then cut the next one.
    truncate: Arc<Mutex<Option<u32>>>,
}

struct ProxyState {
    upstream: String,
    base: String,
    http: reqwest::Client,
    truncate: Arc<Mutex<Option<u32>>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let flag: Arc<Mutex<Option<u32>>> = Arc::default();
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            base: base.clone(),
            http: reqwest::Client::new(),
            truncate: flag.clone(),
        });
        let app = axum::Router::new()
            .fallback(proxy_handler)
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            base,
            truncate: flag,
        }
    }

    /// Lets `skip` delta pages through, then cuts the next one in half.
    pub fn truncate_delta_page_after(&self, skip: u32) {
        *self.truncate.lock().expect("lock") = Some(skip);
    }

    pub fn armed(&self) -> bool {
        self.truncate.lock().expect("lock").is_some()
    }
}

async fn proxy_handler(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::header;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let mut rb = st
        .http
        .request(parts.method.clone(), format!("{}{pq}", st.upstream));
    for (k, v) in &parts.headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            rb = rb.header(k, v);
        }
    }
    let resp = rb.body(bytes).send().await.expect("upstream");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let mut text = text.replace(&st.upstream, &st.base);
    let cut_this = pq.contains("calendarView/delta") && {
        let mut t = st.truncate.lock().expect("lock");
        match *t {
            Some(0) => {
                *t = None;
                true
            }
            Some(n) => {
                *t = Some(n - 1);
                false
            }
            None => false,
        }
    };
    if cut_this {
        let mut cut = text.len() / 2;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let mut out = axum::response::Response::builder().status(status);
    for (k, v) in &headers {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING && k != header::CONNECTION
        {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::from(text)).expect("response")
}
