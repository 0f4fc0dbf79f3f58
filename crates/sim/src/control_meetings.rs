//! Control API for meetings (see [`crate::meetings`]):
//!
//! - `GET /_sim/mailboxes/{addr}/booking-policy`, `PUT|PATCH …/booking-policy` — a resource
//!   mailbox's `Set-CalendarProcessing` subset (people: read-only, `AutoUpdate`).
//! - `POST /_sim/mailboxes/{addr}/events/{id}/respond` `{"response", "send_response"?}` — the
//!   attendee answers (as in Outlook); `{id}` is the copy's id (an occurrence id answers the
//!   series) or the meeting's iCalUId.
//! - `GET /_sim/invitations[?mailbox=&from=&to=&kind=&ical_uid=]`, `DELETE /_sim/invitations`
//!   — the meeting messages sent, and a reset (also done by `POST /_sim/stats/reset`).
//!
//! Documented in `docs/sim/meetings.md`.
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::{EmptyBody, parse_object};
use crate::error::{GraphError, GraphResult};
use crate::graph::wire::{self, RenderOpts};
use crate::meetings::{self, BookingPolicyPatch, MessageCounts, MessageKind};
use crate::model::{Directory, MailboxKind, ResponseType, Tenant};
use crate::state::SimState;

type St = Arc<SimState>;

pub fn routes() -> Router<St> {
    Router::new()
        .route(
            "/mailboxes/{id}/booking-policy",
            get(get_policy).put(put_policy).patch(put_policy),
        )
        .route("/mailboxes/{id}/events/{event}/respond", post(respond))
        .route("/invitations", get(list).delete(clear))
}

fn no_mailbox(r: &str) -> GraphError {
    GraphError::not_found(
        "ErrorInvalidUser",
        format!("The requested user '{r}' is invalid."),
    )
}

/// The tenant holding mailbox `r` (id, UPN or mail) and the mailbox's id.
fn find<'d>(dir: &'d mut Directory, r: &str) -> GraphResult<(&'d mut Tenant, uuid::Uuid)> {
    let t = dir
        .tenants
        .iter_mut()
        .find(|t| t.user_id(r).is_some())
        .ok_or_else(|| no_mailbox(r))?;
    let uid = t.user_id(r).ok_or_else(|| no_mailbox(r))?;
    Ok((t, uid))
}

fn policy_json(t: &Tenant, uid: uuid::Uuid) -> Value {
    let u = t.user_by_id(uid);
    let mut v = json!(meetings::policy_of(t, uid));
    if let Some(o) = v.as_object_mut() {
        o.insert("mailbox".into(), json!(u.map(|u| u.mail.clone())));
        o.insert(
            "kind".into(),
            json!(u.map(|u| u.kind).unwrap_or(MailboxKind::User)),
        );
    }
    v
}

async fn get_policy(State(st): State<St>, Path(id): Path<String>) -> GraphResult<Response> {
    let mut dir = st.dir();
    let (t, uid) = find(&mut dir, &id)?;
    Ok(axum::Json(policy_json(t, uid)).into_response())
}

async fn put_policy(
    State(st): State<St>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let patch: BookingPolicyPatch = parse_object(&body, EmptyBody::Rejected, "BadRequest")?;
    let mut dir = st.dir();
    let (t, uid) = find(&mut dir, &id)?;
    let kind = t.user_by_id(uid).map(|u| u.kind);
    if !matches!(kind, Some(MailboxKind::Room | MailboxKind::Equipment)) {
        return Err(GraphError::bad_request(
            "BadRequest",
            "A booking policy applies to room and equipment mailboxes only (Set-CalendarProcessing is effective only on resource mailboxes).",
        ));
    }
    let mut p = meetings::policy_of(t, uid);
    p.apply(&patch)?;
    t.booking_policies.insert(uid, p);
    Ok(axum::Json(policy_json(t, uid)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RespondBody {
    response: ResponseType,
    #[serde(default = "yes")]
    send_response: bool,
}

fn yes() -> bool {
    true
}

async fn respond(
    State(st): State<St>,
    Path((id, event)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let b: RespondBody = parse_object(&body, EmptyBody::Rejected, "BadRequest")?;
    if !matches!(
        b.response,
        ResponseType::Accepted | ResponseType::TentativelyAccepted | ResponseType::Declined
    ) {
        return Err(GraphError::bad_request(
            "BadRequest",
            "response must be accepted, tentativelyAccepted or declined.",
        ));
    }
    let now = st.now();
    let mut dir = st.dir();
    let (t, uid) = find(&mut dir, &id)?;
    let stored = meetings::resolve_copy(t, uid, &event).ok_or_else(GraphError::item_not_found)?;
    let done = meetings::respond(t, uid, &stored, b.response, b.send_response, now)?;
    let u = t.user_by_id(uid).ok_or_else(|| no_mailbox(&id))?;
    let event = done
        .kept
        .as_deref()
        .and_then(|k| u.calendars.get(done.calendar)?.events.get(k))
        .map(|e| {
            wire::event_json(
                &crate::expand::master_view(e),
                &RenderOpts {
                    mailbox: Some(u.mail.clone()),
                    ..RenderOpts::default()
                },
            )
        });
    Ok(axum::Json(json!({"response": b.response, "event": event})).into_response())
}

/// The meeting-message counters of every tenant, for `GET /_sim/stats`.
pub fn stats(st: &SimState) -> Value {
    let dir = st.dir();
    let mut c = MessageCounts::default();
    for t in &dir.tenants {
        c.add(&t.meeting_log.counts());
    }
    json!({
        "total": c.invitations(),
        "request": c.request,
        "update": c.update,
        "cancel": c.cancel,
        "responses": c.response,
    })
}

/// Clears every tenant's meeting messages and counters.
pub fn reset(st: &SimState) {
    for t in &mut st.dir().tenants {
        t.meeting_log.clear();
    }
}

async fn list(State(st): State<St>, RawQuery(q): RawQuery) -> GraphResult<Response> {
    let q = crate::graph::view::parse_query(q.as_deref())?;
    let get = |k: &str| crate::graph::view::query_get(&q, k).map(str::to_owned);
    let (mailbox, from, to, kind, uid) = (
        get("mailbox"),
        get("from"),
        get("to"),
        get("kind"),
        get("ical_uid"),
    );
    if let Some(k) = &kind
        && !matches!(k.as_str(), "request" | "update" | "cancel" | "response")
    {
        return Err(GraphError::bad_request(
            "BadRequest",
            "kind must be request, update, cancel or response.",
        ));
    }
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_none_or(|a| a.eq_ignore_ascii_case(b));
    let kind_str = |k: MessageKind| match k {
        MessageKind::Request => "request",
        MessageKind::Update => "update",
        MessageKind::Cancel => "cancel",
        MessageKind::Response => "response",
    };
    let dir = st.dir();
    let mut c = MessageCounts::default();
    let mut value = Vec::new();
    for t in &dir.tenants {
        c.add(&t.meeting_log.counts());
        for m in t.meeting_log.messages() {
            let in_mailbox = mailbox
                .as_deref()
                .is_none_or(|a| m.from.eq_ignore_ascii_case(a) || m.to.eq_ignore_ascii_case(a));
            if in_mailbox
                && eq(&from, &m.from)
                && eq(&to, &m.to)
                && eq(&kind, kind_str(m.kind))
                && uid.as_deref().is_none_or(|u| u == m.ical_uid)
            {
                value.push(json!(m));
            }
        }
    }
    Ok(axum::Json(json!({
        "count": value.len(),
        "value": value,
        "totals": {"invitations": c.invitations(), "request": c.request, "update": c.update,
                   "cancel": c.cancel, "responses": c.response},
    }))
    .into_response())
}

async fn clear(State(st): State<St>) -> Response {
    reset(&st);
    StatusCode::NO_CONTENT.into_response()
}
