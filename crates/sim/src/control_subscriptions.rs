//! Control API for change notifications:
//!
//! - `GET /_sim/subscriptions` — every active subscription (any tenant, any app) with its
//!   delivery counters, plus totals and the delivery settings
//! - `GET|PUT|PATCH /_sim/subscriptions/settings` — coalescing delay, handshake and
//!   acknowledgement timeouts, retry backoff and horizon, the per-mailbox cap
//! - `PATCH /_sim/subscriptions/{id}` — `{"silent": bool, "drop_next": N}`: stop delivering
//!   (silently) or lose the next N change notifications, to simulate lost notifications
//! - `POST /_sim/subscriptions/{id}/lifecycle` — `{"event": "reauthorizationRequired" |
//!   "subscriptionRemoved" | "missed"}`: send a lifecycle notification (`subscriptionRemoved`
//!   also deletes the subscription) → `202` with the notification
//!
//! Expiry follows the simulated clock (`POST /_sim/clock`). Documented in
//! `docs/sim/subscriptions.md`.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::EmptyBody;
use crate::error::GraphError;
use crate::state::SimState;
use crate::subscriptions::{DeliveryConfig, LifecycleError, LifecycleEvent, Subscription};

type St = Arc<SimState>;
type Res = Result<Response, GraphError>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/subscriptions", get(list))
        .route(
            "/subscriptions/settings",
            get(get_settings).put(put_settings).patch(put_settings),
        )
        .route("/subscriptions/{id}", patch(patch_one))
        .route("/subscriptions/{id}/lifecycle", post(lifecycle))
}

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn not_found(id: &str) -> GraphError {
    GraphError::not_found("ResourceNotFound", format!("No subscription '{id}'."))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, empty: EmptyBody) -> Result<T, GraphError> {
    crate::control::parse_object(body, empty, "BadRequest")
}

fn sub_json(st: &SimState, s: &Subscription) -> Value {
    let mailbox = {
        let dir = st.dir();
        dir.tenant_by_id(s.tenant_id)
            .and_then(|t| t.user_by_id(s.mailbox))
            .map(|u| u.mail.clone())
    };
    json!({
        "id": s.id,
        "tenant_id": s.tenant_id,
        "application_id": s.app_id,
        "creator_id": s.creator_id,
        "mailbox": mailbox,
        "resource": s.resource,
        "change_type": s.change_type_text(),
        "notification_url": s.notification_url,
        "lifecycle_notification_url": s.lifecycle_url,
        "expiration": s.expiration.to_string(),
        "silent": s.silent,
        "drop_next": s.drop_next,
        "reauthorization_required": s.reauthorization_required,
        "counters": s.counters,
    })
}

async fn list(State(st): State<St>) -> Response {
    let subs: Vec<Value> = st
        .subscriptions
        .list(st.now())
        .iter()
        .map(|s| sub_json(&st, s))
        .collect();
    axum::Json(json!({
        "now": st.now().to_string(),
        "subscriptions": subs,
        "totals": st.subscriptions.totals(),
        "settings": settings_json(&st.subscriptions.config()),
    }))
    .into_response()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn settings_json(c: &DeliveryConfig) -> Value {
    json!({
        "coalesce_ms": ms(c.coalesce),
        "validation_timeout_ms": ms(c.validation_timeout),
        "ack_timeout_ms": ms(c.ack_timeout),
        "retry_initial_ms": ms(c.retry_initial),
        "retry_max_ms": ms(c.retry_max),
        "retry_horizon_ms": ms(c.retry_horizon),
        "max_per_mailbox": c.max_per_mailbox,
    })
}

async fn get_settings(State(st): State<St>) -> Response {
    axum::Json(settings_json(&st.subscriptions.config())).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    coalesce_ms: Option<u64>,
    validation_timeout_ms: Option<u64>,
    ack_timeout_ms: Option<u64>,
    retry_initial_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    retry_horizon_ms: Option<u64>,
    max_per_mailbox: Option<usize>,
}

/// Longest delay or timeout accepted: one day (Graph's own horizon is 4 hours).
const MAX_SETTING_MS: u64 = 86_400_000;

async fn put_settings(State(st): State<St>, body: Bytes) -> Res {
    let p: SettingsPatch = parse(&body, EmptyBody::IsEmptyObject)?;
    let mut c = st.subscriptions.config();
    let set = |name: &str, v: Option<u64>, min: u64, dst: &mut Duration| match v {
        None => Ok(()),
        Some(v) if (min..=MAX_SETTING_MS).contains(&v) => {
            *dst = Duration::from_millis(v);
            Ok(())
        }
        Some(v) => Err(bad(format!(
            "{name} must be between {min} and {MAX_SETTING_MS} (got {v})"
        ))),
    };
    set("coalesce_ms", p.coalesce_ms, 0, &mut c.coalesce)?;
    set(
        "validation_timeout_ms",
        p.validation_timeout_ms,
        1,
        &mut c.validation_timeout,
    )?;
    set("ack_timeout_ms", p.ack_timeout_ms, 1, &mut c.ack_timeout)?;
    set(
        "retry_initial_ms",
        p.retry_initial_ms,
        1,
        &mut c.retry_initial,
    )?;
    set("retry_max_ms", p.retry_max_ms, 1, &mut c.retry_max)?;
    set(
        "retry_horizon_ms",
        p.retry_horizon_ms,
        0,
        &mut c.retry_horizon,
    )?;
    if let Some(n) = p.max_per_mailbox {
        if n == 0 {
            return Err(bad("max_per_mailbox must be at least 1"));
        }
        c.max_per_mailbox = n;
    }
    st.subscriptions.set_config(c);
    Ok(axum::Json(settings_json(&c)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubPatch {
    silent: Option<bool>,
    drop_next: Option<u64>,
}

async fn patch_one(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let p: SubPatch = parse(&body, EmptyBody::Rejected)?;
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found(&id))?;
    let s = st
        .subscriptions
        .update(uuid, st.now(), |s| {
            if let Some(v) = p.silent {
                s.silent = v;
            }
            if let Some(n) = p.drop_next {
                s.drop_next = n;
            }
            s.clone()
        })
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(sub_json(&st, &s)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleBody {
    event: String,
}

async fn lifecycle(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: LifecycleBody = parse(&body, EmptyBody::Rejected)?;
    let event = LifecycleEvent::parse(&b.event).ok_or_else(|| {
        bad(format!(
            "event '{}' is not a lifecycle event (reauthorizationRequired, subscriptionRemoved or missed)",
            b.event
        ))
    })?;
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found(&id))?;
    match st.subscriptions.lifecycle(uuid, event, st.now()) {
        Ok(v) => Ok((StatusCode::ACCEPTED, axum::Json(json!({"value": [v]}))).into_response()),
        Err(LifecycleError::NotFound) => Err(not_found(&id)),
        Err(LifecycleError::NoUrl) => Err(GraphError::new(
            StatusCode::CONFLICT,
            "BadRequest",
            "The subscription has no lifecycleNotificationUrl: it was created without one (it can only be set at creation).",
        )),
    }
}
