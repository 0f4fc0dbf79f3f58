//! Meeting actions on an event: `accept`, `tentativelyAccept`, `decline` (an attendee answers
//! the organizer) and `cancel` (the organizer cancels the meeting or one occurrence), under
//! `/users/{id}/events/{id}/…`, `/users/{id}/calendar/events/{id}/…` and
//! `/users/{id}/calendars/{id}/events/{id}/…`. Each answers `202 Accepted` with no body.
//! The meeting logic is [`crate::meetings`].
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use super::events::{Params, check_id, locate, param, read_body, tenant_mut};
use super::{Need, Principal, St, enter_mailbox};
use crate::error::{GraphError, GraphResult};
use crate::expand::InstanceKind;
use crate::meetings;
use crate::model::ResponseType;

const PREFIXES: [&str; 3] = [
    "/users/{user}/events/{eid}",
    "/users/{user}/calendar/events/{eid}",
    "/users/{user}/calendars/{cid}/events/{eid}",
];

pub fn routes() -> Router<St> {
    let mut r = Router::new();
    for p in PREFIXES {
        r = r
            .route(&format!("{p}/accept"), post(accept))
            .route(&format!("{p}/tentativelyAccept"), post(tentatively_accept))
            .route(&format!("{p}/decline"), post(decline))
            .route(&format!("{p}/cancel"), post(cancel));
    }
    r
}

/// The action's body: a JSON object (an empty body counts as `{}`); `sendResponse` defaults
/// to true.
fn body_object(body: Result<Bytes, BytesRejection>) -> GraphResult<serde_json::Map<String, Value>> {
    if matches!(&body, Ok(b) if b.iter().all(u8::is_ascii_whitespace)) {
        return Ok(serde_json::Map::new());
    }
    match read_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(GraphError::bad_request(
            "RequestBodyRead",
            "The request body must be a JSON object.",
        )),
    }
}

async fn accept(
    st: State<St>,
    p: Principal,
    params: Path<Params>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    respond(st, p, params, body, ResponseType::Accepted).await
}

async fn tentatively_accept(
    st: State<St>,
    p: Principal,
    params: Path<Params>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    respond(st, p, params, body, ResponseType::TentativelyAccepted).await
}

async fn decline(
    st: State<St>,
    p: Principal,
    params: Path<Params>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    respond(st, p, params, body, ResponseType::Declined).await
}

async fn respond(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    body: Result<Bytes, BytesRejection>,
    r: ResponseType,
) -> GraphResult<Response> {
    let user = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &user, Need::Write).await?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    let b = body_object(body)?;
    let send = match b.get("sendResponse") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(v)) => *v,
        Some(_) => {
            return Err(GraphError::bad_request(
                "RequestBodyRead",
                "Cannot convert the literal to the expected type 'Edm.Boolean'.",
            ));
        }
    };
    let now = st.now();
    let mut dir = st.dir();
    let t = tenant_mut(&mut dir, &p)?;
    let u = t.user_by_id(uid).ok_or_else(GraphError::item_not_found)?;
    let (_, inst) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
    // A response to one occurrence answers the series (see docs/sim/meetings.md).
    let stored = inst.series_master_id.clone().unwrap_or(inst.id.clone());
    meetings::respond(t, uid, &stored, r, send, now)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn cancel(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    let user = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &user, Need::Write).await?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    body_object(body)?;
    let now = st.now();
    let mut dir = st.dir();
    let t = tenant_mut(&mut dir, &p)?;
    let u = t
        .user_by_id_mut(uid)
        .ok_or_else(GraphError::item_not_found)?;
    let mail = u.mail.clone();
    let (cal_id, inst) = {
        let (c, i) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
        (c.id.clone(), i)
    };
    let cal = u
        .calendar_mut(&cal_id)
        .ok_or_else(GraphError::item_not_found)?;
    let stored = inst.series_master_id.clone().unwrap_or(inst.id.clone());
    let ev = cal
        .events
        .get_mut(&stored)
        .ok_or_else(GraphError::item_not_found)?;
    if !meetings::organized_by(ev, &mail) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        ));
    }
    match inst.kind {
        InstanceKind::SingleInstance | InstanceKind::SeriesMaster => {
            // "The action moves the event to the Deleted Items folder."
            let removed = cal.events.remove(&stored);
            cal.transactions.retain(|_, id| *id != stored);
            if let Some(ev) = removed {
                meetings::after_delete(t, uid, &ev, now);
            }
        }
        InstanceKind::Occurrence | InstanceKind::Exception => {
            let orig = inst.original_start.ok_or_else(GraphError::item_not_found)?;
            let before = ev.clone();
            ev.exceptions.remove(&orig);
            ev.cancelled.insert(orig);
            ev.touch(now);
            meetings::after_write(t, uid, Some(&before), &stored, Some(orig), now);
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
