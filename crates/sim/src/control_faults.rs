//! Control API for fault injection, run-time settings and per-mailbox counters:
//!
//! - `GET /_sim/faults`, `PUT|POST /_sim/faults` (replace), `DELETE /_sim/faults` (clear)
//! - `GET /_sim/settings`, `PUT|PATCH /_sim/settings` (request budget, concurrency, latency,
//!   budget window)
//! - `GET /_sim/stats`, `GET /_sim/mailboxes/{addr}/stats`, `POST /_sim/stats/reset` (also
//!   clears the meeting messages of `GET /_sim/invitations`)
//!
//! Documented in `docs/sim/platform.md`.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::EmptyBody;
use crate::error::GraphError;
use crate::faults::FaultConfig;
use crate::state::{MAX_LATENCY_MS, SimState, lock};

type St = Arc<SimState>;

pub fn routes() -> Router<St> {
    Router::new()
        .route(
            "/faults",
            get(get_faults)
                .put(set_faults)
                .post(set_faults)
                .delete(clear_faults),
        )
        .route(
            "/settings",
            get(get_settings).put(put_settings).patch(put_settings),
        )
        .route("/stats", get(get_stats))
        .route("/stats/reset", post(reset_stats))
        .route("/mailboxes/{id}/stats", get(mailbox_stats))
}

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

/// A JSON object body; empty means `{}`.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GraphError> {
    crate::control::parse_object(body, EmptyBody::IsEmptyObject, "BadRequest")
}

/// Finds a mailbox (by id, UPN or mail) in any tenant.
fn resolve_mailbox(st: &SimState, r: &str) -> Option<(Uuid, String)> {
    let dir = st.dir();
    dir.tenants
        .iter()
        .find_map(|t| t.user(r).map(|u| (u.id, u.mail.clone())))
}

fn address_of(st: &SimState, id: Uuid) -> Option<String> {
    let dir = st.dir();
    dir.tenants
        .iter()
        .find_map(|t| t.user_by_id(id).map(|u| u.mail.clone()))
}

fn faults_doc(st: &SimState) -> Value {
    json!({
        "faults": st.faults.config(),
        "dropped_connections": st.faults.dropped_connections(),
    })
}

async fn get_faults(State(st): State<St>) -> Response {
    axum::Json(faults_doc(&st)).into_response()
}

async fn set_faults(State(st): State<St>, body: Bytes) -> Result<Response, GraphError> {
    let cfg: FaultConfig = parse(&body)?;
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    let mailbox = match cfg.mailbox.as_deref() {
        None => None,
        Some(m) => Some(
            resolve_mailbox(&st, m)
                .ok_or_else(|| {
                    GraphError::not_found("ErrorInvalidUser", format!("No mailbox '{m}'."))
                })?
                .0,
        ),
    };
    st.faults.set(cfg, mailbox);
    Ok(axum::Json(faults_doc(&st)).into_response())
}

async fn clear_faults(State(st): State<St>) -> Response {
    st.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

fn settings_doc(st: &SimState) -> Value {
    let s = st.settings();
    json!({
        "latency_ms": s.latency_ms,
        "request_budget": s.request_budget,
        "mailbox_concurrency": s.mailbox_concurrency,
        "budget_window_seconds": st.throttle.window().as_secs_f64(),
    })
}

async fn get_settings(State(st): State<St>) -> Response {
    axum::Json(settings_doc(&st)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    latency_ms: Option<u64>,
    request_budget: Option<u32>,
    mailbox_concurrency: Option<u32>,
    budget_window_seconds: Option<f64>,
}

async fn put_settings(State(st): State<St>, body: Bytes) -> Result<Response, GraphError> {
    let p: SettingsPatch = parse(&body)?;
    if p.mailbox_concurrency == Some(0) {
        return Err(bad("mailbox_concurrency must be at least 1"));
    }
    if let Some(l) = p.latency_ms.filter(|l| *l > MAX_LATENCY_MS) {
        return Err(bad(format!(
            "latency_ms must be at most {MAX_LATENCY_MS} (got {l})"
        )));
    }
    let window = match p.budget_window_seconds {
        Some(w) if !(w.is_finite() && (0.1..=86_400.0).contains(&w)) => {
            return Err(bad("budget_window_seconds must be between 0.1 and 86400"));
        }
        Some(w) => Some(Duration::from_secs_f64(w)),
        None => None,
    };
    {
        let mut s = lock(&st.settings);
        if let Some(v) = p.latency_ms {
            s.latency_ms = v;
        }
        if let Some(v) = p.request_budget {
            s.request_budget = v;
        }
        if let Some(v) = p.mailbox_concurrency {
            s.mailbox_concurrency = v;
        }
    }
    if let Some(w) = window {
        st.throttle.set_window(w);
    }
    Ok(axum::Json(settings_doc(&st)).into_response())
}

fn mailbox_json(st: &SimState, m: &crate::throttle::MailboxStats) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("address".into(), json!(address_of(st, m.mailbox_id)));
    }
    v
}

async fn get_stats(State(st): State<St>) -> Response {
    let snap = st.throttle.snapshot();
    let mut totals = crate::throttle::Counters::default();
    for m in &snap {
        let c = &m.counters;
        totals.requests += c.requests;
        totals.throttled += c.throttled;
        totals.concurrency_throttled += c.concurrency_throttled;
        totals.budget_throttled += c.budget_throttled;
        totals.injected_faults += c.injected_faults;
        totals.early_retries += c.early_retries;
        totals.peak_concurrency = totals.peak_concurrency.max(c.peak_concurrency);
    }
    let mailboxes: Vec<Value> = snap.iter().map(|m| mailbox_json(&st, m)).collect();
    axum::Json(json!({
        "now": st.now(),
        "totals": totals,
        "dropped_connections": st.faults.dropped_connections(),
        "invitations": crate::control_meetings::stats(&st),
        "mailboxes": mailboxes,
    }))
    .into_response()
}

async fn mailbox_stats(
    State(st): State<St>,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let (uid, address) = resolve_mailbox(&st, &id)
        .ok_or_else(|| GraphError::not_found("ErrorInvalidUser", format!("No mailbox '{id}'.")))?;
    let snap = st.throttle.snapshot();
    let v = match snap.iter().find(|m| m.mailbox_id == uid) {
        Some(m) => mailbox_json(&st, m),
        None => {
            // Never called: zero counters.
            let mut v = json!(crate::throttle::Counters::default());
            if let Some(o) = v.as_object_mut() {
                o.insert("mailbox_id".into(), json!(uid));
                o.insert("address".into(), json!(address));
                o.insert("in_flight".into(), json!(0));
                o.insert("last_retry_after".into(), Value::Null);
                o.insert("apps".into(), json!([]));
            }
            v
        }
    };
    Ok(axum::Json(v).into_response())
}

async fn reset_stats(State(st): State<St>) -> Response {
    st.throttle.reset();
    crate::control_meetings::reset(&st);
    StatusCode::NO_CONTENT.into_response()
}
