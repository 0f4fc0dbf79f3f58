//! Graph's change notifications into calgate: `POST /v1/notifications/graph` and
//! `…/graph/lifecycle`. Microsoft calls these, without an API key: each notification proves
//! itself by its subscription's secret `clientState` (checked in constant time against the
//! stored hash; a mismatch or an unknown subscription is dropped and counted). They answer
//! within Graph's 3 seconds — `202` at once; the work (a delta round of the mailbox, through
//! the scheduler, which coalesces a burst into one round) happens afterwards.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use calgate_sync::notify::{LifecycleEvent, client_state_matches};
use jiff::Timestamp;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

/// The longest validation token echoed.
const MAX_TOKEN: usize = 4096;

#[derive(Debug, Deserialize)]
pub struct Validation {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Item>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default)]
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
}

/// The validation handshake: the decoded token back as text/plain.
fn validation(token: &str) -> Response {
    if token.len() > MAX_TOKEN {
        return ApiError::bad_request("the validation token is too long").into_response();
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        token.to_owned(),
    )
        .into_response()
}

fn collection(body: &[u8]) -> Result<Collection, Response> {
    serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            "this endpoint takes Microsoft Graph's change notifications ({\"value\": [...]})",
        )
        .into_response()
    })
}

/// The notification's subscription, if it is one of calgate's and the clientState matches.
async fn verified(state: &AppState, item: &Item) -> Option<calgate_store::SubscriptionRecord> {
    let record = match state.store.subscription(&item.subscription_id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::info!("a change notification for an unknown subscription: dropped");
            state
                .metrics
                .notifications_dropped
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Err(e) => {
            tracing::warn!("cannot look a change notification's subscription up: {e}");
            return None;
        }
    };
    if !client_state_matches(&record, item.client_state.as_deref().unwrap_or("")) {
        tracing::warn!(
            mailbox = %record.address,
            "a change notification with the wrong clientState: dropped (forged, or from an old subscription)"
        );
        state
            .metrics
            .notifications_dropped
            .fetch_add(1, Ordering::Relaxed);
        return None;
    }
    state
        .metrics
        .notifications_accepted
        .fetch_add(1, Ordering::Relaxed);
    Some(record)
}

/// `POST /v1/notifications/graph`: change notifications (and the validation handshake).
pub async fn graph(
    State(state): State<AppState>,
    Query(q): Query<Validation>,
    body: Bytes,
) -> Response {
    if let Some(token) = q.validation_token.as_deref() {
        return validation(token);
    }
    let c = match collection(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    for item in &c.value {
        if let Some(record) = verified(&state, item).await
            && let Some(s) = &state.scheduler
        {
            s.sync_now(&record.address);
        }
    }
    StatusCode::ACCEPTED.into_response()
}

/// `POST /v1/notifications/graph/lifecycle`: `reauthorizationRequired`, `subscriptionRemoved`,
/// `missed` (and the validation handshake).
pub async fn lifecycle(
    State(state): State<AppState>,
    Query(q): Query<Validation>,
    body: Bytes,
) -> Response {
    if let Some(token) = q.validation_token.as_deref() {
        return validation(token);
    }
    let c = match collection(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    for item in &c.value {
        let Some(record) = verified(&state, item).await else {
            continue;
        };
        let event = match item
            .lifecycle_event
            .as_deref()
            .map(str::parse::<LifecycleEvent>)
        {
            Some(Ok(e)) => e,
            _ => {
                tracing::info!(mailbox = %record.address, "a lifecycle notification calgate does not know: a delta round to be safe");
                LifecycleEvent::Missed
            }
        };
        let Some(notifier) = state.notifier.clone() else {
            continue;
        };
        let scheduler = state.scheduler.clone();
        // After the answer: reauthorizing or recreating takes Graph round trips.
        tokio::spawn(async move {
            match notifier.lifecycle(&record, event, Timestamp::now()).await {
                Ok(true) => {
                    if let Some(s) = scheduler {
                        s.sync_now(&record.address);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(mailbox = %record.address, "cannot act on a lifecycle notification ({event:?}): {e}");
                    if let Some(s) = scheduler {
                        s.sync_now(&record.address);
                    }
                }
            }
        });
    }
    StatusCode::ACCEPTED.into_response()
}
