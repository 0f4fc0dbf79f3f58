//! Control API for events: change a mailbox's calendar as its owner would in Outlook, read the
//! simulator's truth, apply random Outlook-like changes, and arm delta faults.
//!
//! - `GET  /_sim/mailboxes/{addr}/events?start=…&end=…[&calendar=ID]` — every instance in the
//!   window, rendered as calendarView renders it (UTC), without paging: the truth tests compare
//!   a client's state with.
//! - `POST /_sim/mailboxes/{addr}/events[?calendar=ID]` — create (Graph event JSON, recurrence
//!   included); the owner is the organizer.
//! - `PATCH /_sim/mailboxes/{addr}/events/{id}` — update a single or a whole series (an occurrence
//!   id edits that occurrence). Changing a series' start, end or pattern drops its exceptions and
//!   cancelled occurrences, as Exchange does.
//! - `DELETE /_sim/mailboxes/{addr}/events/{id}` — delete a single or a series (an occurrence id
//!   cancels that occurrence).
//! - `PATCH|DELETE /_sim/mailboxes/{addr}/events/{masterId}/occurrences/{originalStart}` — edit
//!   or move one occurrence (→ exception) / cancel it. `originalStart` is RFC 3339.
//! - `PUT /_sim/mailboxes/{addr}/events/{masterId}/recurrence` — new pattern; exceptions and
//!   cancellations are dropped and the series re-expands.
//! - `POST /_sim/mailboxes/{addr}/random-changes` — `{"count","seed","window_start","window_end"}`.
//! - `GET|POST /_sim/mailboxes/{addr}/delta-faults` — see [`crate::graph::delta`].
//!
//! `{addr}` is a mailbox's UPN, mail or id (any tenant). Errors are Graph-shaped. Every
//! mutation touches the stored item (new change key, `lastModifiedDateTime` = simulated now).
//! Documented in `docs/sim/control-events.md`.
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::{EmptyBody, parse_object};
use crate::error::{GraphError, GraphResult};
use crate::expand::{self, Instance, InstanceKind};
use crate::graph::delta::{DeltaFaultRequest, MAX_REPLAY};
use crate::graph::wire::{self, EventDefaults, RenderOpts};
use crate::model::{
    Calendar, EmailAddress, ExceptionOccurrence, SeriesRecurrence, StoredEvent, User,
    new_change_key, new_ical_uid, new_item_id,
};
use crate::state::SimState;

type St = Arc<SimState>;
type Res = Result<Response, GraphError>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/mailboxes/{id}/events", get(list_truth).post(create_event))
        .route(
            "/mailboxes/{id}/events/{event}",
            patch(update_event).delete(delete_event),
        )
        .route(
            "/mailboxes/{id}/events/{event}/occurrences/{start}",
            patch(update_occurrence).delete(cancel_occurrence),
        )
        .route(
            "/mailboxes/{id}/events/{event}/recurrence",
            put(set_recurrence),
        )
        .route("/mailboxes/{id}/random-changes", post(random_changes))
        .route(
            "/mailboxes/{id}/delta-faults",
            get(delta_status).post(delta_faults),
        )
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn no_mailbox(r: &str) -> GraphError {
    GraphError::not_found(
        "ErrorInvalidUser",
        format!("The requested user '{r}' is invalid."),
    )
}

fn no_calendar() -> GraphError {
    GraphError::not_found(
        "ErrorItemNotFound",
        "The specified calendar was not found in the store.",
    )
}

fn json_status(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Graph event JSON (or a recurrence): a required JSON object.
fn parse_body(body: &Bytes) -> GraphResult<Value> {
    parse_object::<serde_json::Map<String, Value>>(body, EmptyBody::Rejected, "RequestBodyRead")
        .map(Value::Object)
}

fn query(raw: Option<&str>) -> GraphResult<Vec<(String, String)>> {
    crate::graph::view::parse_query(raw)
}

/// Finds the mailbox `r` (id, UPN or mail) in any tenant.
fn with_user<T>(st: &St, r: &str, f: impl FnOnce(&mut User) -> GraphResult<T>) -> GraphResult<T> {
    let mut dir = st.dir();
    let user = dir
        .tenants
        .iter_mut()
        .find_map(|t| t.user_mut(r))
        .ok_or_else(|| no_mailbox(r))?;
    f(user)
}

fn owner(u: &User) -> EmailAddress {
    EmailAddress {
        name: u.display_name.clone(),
        address: u.mail.clone(),
    }
}

fn calendar_mut<'a>(u: &'a mut User, sel: Option<&str>) -> GraphResult<&'a mut Calendar> {
    match sel {
        Some(id) => u.calendar_mut(id).ok_or_else(no_calendar),
        None => u.default_calendar_mut().ok_or_else(no_calendar),
    }
}

fn render(inst: &Instance, mailbox: &str) -> Value {
    wire::event_json(
        inst,
        &RenderOpts {
            mailbox: Some(mailbox.to_owned()),
            ..RenderOpts::default()
        },
    )
}

fn parse_instant(name: &str, v: &str) -> GraphResult<Timestamp> {
    wire::parse_window_time(v)
        .ok_or_else(|| bad(format!("'{v}' is not a valid {name} (ISO 8601).")))
}

/// Where an id points: a stored item, or one occurrence of a series.
enum Target {
    Stored(String),
    Occurrence {
        master: String,
        original_start: Timestamp,
    },
}

/// Resolves `id` in `user`'s calendars: (calendar index, target).
fn locate(user: &User, id: &str) -> GraphResult<(usize, Target)> {
    for (i, c) in user.calendars.iter().enumerate() {
        if c.events.contains_key(id) {
            return Ok((i, Target::Stored(id.to_owned())));
        }
    }
    if let Some((master, orig)) = expand::parse_occurrence_id(id) {
        for (i, c) in user.calendars.iter().enumerate() {
            if c.events.contains_key(&master) {
                return Ok((
                    i,
                    Target::Occurrence {
                        master,
                        original_start: orig,
                    },
                ));
            }
        }
    }
    for (i, c) in user.calendars.iter().enumerate() {
        for ev in c.events.values() {
            if let Some((orig, _)) = ev.exceptions.iter().find(|(_, x)| x.id == id) {
                return Ok((
                    i,
                    Target::Occurrence {
                        master: ev.id.clone(),
                        original_start: *orig,
                    },
                ));
            }
        }
    }
    Err(GraphError::item_not_found())
}

// ---------------------------------------------------------------------------------------------
// Mutations (plain functions over the model; the handlers and random-changes share them)
// ---------------------------------------------------------------------------------------------

/// Creates an event from Graph JSON in `cal`, organized by `org`, with id `id` (a new random
/// one when `None`). Returns the id.
fn create_in(
    cal: &mut Calendar,
    org: &EmailAddress,
    body: &Value,
    now: Timestamp,
    id: Option<String>,
) -> GraphResult<String> {
    let parsed = wire::parse_event_input(
        body,
        None,
        &EventDefaults {
            organizer: org.clone(),
        },
    )?;
    let id = id.unwrap_or_else(new_item_id);
    let ev = StoredEvent {
        id: id.clone(),
        ical_uid: new_ical_uid(),
        change_key: new_change_key(),
        created: now,
        last_modified: now,
        transaction_id: parsed.transaction_id,
        data: parsed.data,
        recurrence: parsed.recurrence.flatten(),
        exceptions: BTreeMap::new(),
        cancelled: Default::default(),
        extended_properties: parsed.extended_properties.unwrap_or_default(),
    };
    cal.events.insert(id.clone(), ev);
    Ok(id)
}

/// Applies a partial Graph JSON update to a stored single or series master.
fn update_stored(
    ev: &mut StoredEvent,
    org: &EmailAddress,
    body: &Value,
    now: Timestamp,
) -> GraphResult<()> {
    let parsed = wire::parse_event_input(
        body,
        Some(&ev.data),
        &EventDefaults {
            organizer: org.clone(),
        },
    )?;
    let times_changed = parsed.data.start != ev.data.start
        || parsed.data.end != ev.data.end
        || parsed.data.is_all_day != ev.data.is_all_day;
    let mut pattern_changed = false;
    if let Some(r) = parsed.recurrence {
        pattern_changed = r != ev.recurrence;
        ev.recurrence = r;
    }
    if ev.recurrence.is_some() && (times_changed || pattern_changed) {
        // Outlook: "any exceptions associated with this recurring appointment will be lost".
        ev.exceptions.clear();
        ev.cancelled.clear();
    }
    if ev.recurrence.is_none() {
        ev.exceptions.clear();
        ev.cancelled.clear();
    }
    ev.data = parsed.data;
    if let Some(props) = parsed.extended_properties {
        for p in props {
            match ev
                .extended_properties
                .iter_mut()
                .find(|e| e.id.eq_ignore_ascii_case(&p.id))
            {
                Some(e) => e.value = p.value,
                None => ev.extended_properties.push(p),
            }
        }
    }
    ev.touch(now);
    Ok(())
}

/// Whether `orig` is an occurrence (or an existing exception) of `ev`, not cancelled.
fn is_live_occurrence(ev: &StoredEvent, orig: Timestamp) -> bool {
    ev.recurrence.is_some()
        && !ev.cancelled.contains(&orig)
        && (ev.exceptions.contains_key(&orig) || expand::is_occurrence_start(ev, orig))
}

fn no_occurrence() -> GraphError {
    GraphError::not_found(
        "ErrorItemNotFound",
        "The series has no occurrence starting at that time (or it was cancelled).",
    )
}

/// Edits one occurrence of series `master` (making or updating an exception).
fn update_occurrence_in(
    cal: &mut Calendar,
    master: &str,
    orig: Timestamp,
    org: &EmailAddress,
    body: &Value,
    now: Timestamp,
) -> GraphResult<String> {
    if body.get("recurrence").is_some_and(|r| !r.is_null()) {
        return Err(bad(
            "An occurrence cannot carry a recurrence; change the series instead.",
        ));
    }
    let occ_id = expand::occurrence_id(master, orig);
    let ev = cal
        .events
        .get(master)
        .ok_or_else(GraphError::item_not_found)?;
    if !is_live_occurrence(ev, orig) {
        return Err(no_occurrence());
    }
    let current = match ev.exceptions.get(&orig) {
        Some(x) => x.data.clone(),
        None => expand::find_instance(cal, &occ_id)
            .map(|i| i.data)
            .ok_or_else(no_occurrence)?,
    };
    let parsed = wire::parse_event_input(
        body,
        Some(&current),
        &EventDefaults {
            organizer: org.clone(),
        },
    )?;
    let ev = cal
        .events
        .get_mut(master)
        .ok_or_else(GraphError::item_not_found)?;
    let id = ev
        .exceptions
        .get(&orig)
        .map(|x| x.id.clone())
        .unwrap_or(occ_id);
    ev.exceptions.insert(
        orig,
        ExceptionOccurrence {
            id: id.clone(),
            data: parsed.data,
            last_modified: now,
            change_key: new_change_key(),
        },
    );
    ev.touch(now);
    Ok(id)
}

/// Cancels (deletes) one occurrence of series `master`.
fn cancel_occurrence_in(
    cal: &mut Calendar,
    master: &str,
    orig: Timestamp,
    now: Timestamp,
) -> GraphResult<()> {
    let ev = cal
        .events
        .get_mut(master)
        .ok_or_else(GraphError::item_not_found)?;
    if !is_live_occurrence(ev, orig) {
        return Err(no_occurrence());
    }
    ev.exceptions.remove(&orig);
    ev.cancelled.insert(orig);
    ev.touch(now);
    Ok(())
}

/// Replaces a series' pattern: exceptions and cancellations are dropped.
fn set_recurrence_in(ev: &mut StoredEvent, body: &Value, now: Timestamp) -> GraphResult<()> {
    if ev.recurrence.is_none() {
        return Err(bad("The event is not a series master."));
    }
    let r: SeriesRecurrence = wire::parse_recurrence(body, &ev.data.start.time_zone)?;
    ev.recurrence = Some(r);
    ev.exceptions.clear();
    ev.cancelled.clear();
    ev.touch(now);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn list_truth(State(st): State<St>, Path(addr): Path<String>, RawQuery(q): RawQuery) -> Res {
    let q = query(q.as_deref())?;
    let get = |a: &str, b: &str| {
        crate::graph::view::query_get(&q, a).or(crate::graph::view::query_get(&q, b))
    };
    let (Some(s), Some(e)) = (get("start", "startdatetime"), get("end", "enddatetime")) else {
        return Err(bad(
            "Query parameters 'start' and 'end' (ISO 8601) are required.",
        ));
    };
    let (ws, we) = (parse_instant("start", s)?, parse_instant("end", e)?);
    crate::graph::view::check_window_span(ws, we)?;
    let cal_sel = crate::graph::view::query_get(&q, "calendar").map(str::to_owned);
    let st2 = st.clone();
    let value = with_user(&st2, &addr, |u| {
        let mail = u.mail.clone();
        let cal = calendar_mut(u, cal_sel.as_deref())?;
        let items: Vec<Value> = if we > ws {
            expand::instances(cal, ws, we)
                .iter()
                .map(|i| render(i, &mail))
                .collect()
        } else {
            Vec::new()
        };
        Ok(json!({"mailbox": mail, "calendar": cal.id, "count": items.len(), "value": items}))
    })?;
    Ok(json_status(StatusCode::OK, value))
}

async fn create_event(
    State(st): State<St>,
    Path(addr): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Res {
    let body = parse_body(&body)?;
    let q = query(q.as_deref())?;
    let cal_sel = crate::graph::view::query_get(&q, "calendar").map(str::to_owned);
    let now = st.now();
    let v = with_user(&st, &addr, |u| {
        let org = owner(u);
        let mail = u.mail.clone();
        let cal = calendar_mut(u, cal_sel.as_deref())?;
        let id = create_in(cal, &org, &body, now, None)?;
        let ev = cal.events.get(&id).ok_or_else(GraphError::item_not_found)?;
        Ok(json!({"id": id, "event": render(&expand::master_view(ev), &mail)}))
    })?;
    Ok(json_status(StatusCode::CREATED, v))
}

async fn update_event(
    State(st): State<St>,
    Path((addr, id)): Path<(String, String)>,
    body: Bytes,
) -> Res {
    let body = parse_body(&body)?;
    let now = st.now();
    let v = with_user(&st, &addr, |u| {
        let org = owner(u);
        let mail = u.mail.clone();
        let (ci, target) = locate(u, &id)?;
        let cal = u.calendars.get_mut(ci).ok_or_else(no_calendar)?;
        match target {
            Target::Stored(sid) => {
                let ev = cal
                    .events
                    .get_mut(&sid)
                    .ok_or_else(GraphError::item_not_found)?;
                update_stored(ev, &org, &body, now)?;
                Ok(json!({"id": sid, "event": render(&expand::master_view(ev), &mail)}))
            }
            Target::Occurrence {
                master,
                original_start,
            } => {
                let oid = update_occurrence_in(cal, &master, original_start, &org, &body, now)?;
                let inst =
                    expand::find_instance(cal, &oid).ok_or_else(GraphError::item_not_found)?;
                Ok(json!({"id": oid, "event": render(&inst, &mail)}))
            }
        }
    })?;
    Ok(json_status(StatusCode::OK, v))
}

async fn delete_event(State(st): State<St>, Path((addr, id)): Path<(String, String)>) -> Res {
    let now = st.now();
    with_user(&st, &addr, |u| {
        let (ci, target) = locate(u, &id)?;
        let cal = u.calendars.get_mut(ci).ok_or_else(no_calendar)?;
        match target {
            Target::Stored(sid) => {
                cal.events.remove(&sid);
                cal.transactions.retain(|_, v| *v != sid);
                Ok(())
            }
            Target::Occurrence {
                master,
                original_start,
            } => cancel_occurrence_in(cal, &master, original_start, now),
        }
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_original_start(s: &str) -> GraphResult<Timestamp> {
    s.trim().parse::<Timestamp>().map_err(|_| {
        bad(format!(
            "'{s}' is not an RFC 3339 instant (e.g. 2025-03-04T09:00:00Z)."
        ))
    })
}

async fn update_occurrence(
    State(st): State<St>,
    Path((addr, id, start)): Path<(String, String, String)>,
    body: Bytes,
) -> Res {
    let body = parse_body(&body)?;
    let orig = parse_original_start(&start)?;
    let now = st.now();
    let v = with_user(&st, &addr, |u| {
        let org = owner(u);
        let mail = u.mail.clone();
        let ci = u
            .calendars
            .iter()
            .position(|c| c.events.contains_key(&id))
            .ok_or_else(GraphError::item_not_found)?;
        let cal = u.calendars.get_mut(ci).ok_or_else(no_calendar)?;
        let oid = update_occurrence_in(cal, &id, orig, &org, &body, now)?;
        let inst = expand::find_instance(cal, &oid).ok_or_else(GraphError::item_not_found)?;
        Ok(json!({"id": oid, "event": render(&inst, &mail)}))
    })?;
    Ok(json_status(StatusCode::OK, v))
}

async fn cancel_occurrence(
    State(st): State<St>,
    Path((addr, id, start)): Path<(String, String, String)>,
) -> Res {
    let orig = parse_original_start(&start)?;
    let now = st.now();
    with_user(&st, &addr, |u| {
        let ci = u
            .calendars
            .iter()
            .position(|c| c.events.contains_key(&id))
            .ok_or_else(GraphError::item_not_found)?;
        let cal = u.calendars.get_mut(ci).ok_or_else(no_calendar)?;
        cancel_occurrence_in(cal, &id, orig, now)
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_recurrence(
    State(st): State<St>,
    Path((addr, id)): Path<(String, String)>,
    body: Bytes,
) -> Res {
    let body = parse_body(&body)?;
    let now = st.now();
    let v = with_user(&st, &addr, |u| {
        let mail = u.mail.clone();
        let cal = u
            .calendar_of_event_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        let ev = cal
            .events
            .get_mut(&id)
            .ok_or_else(GraphError::item_not_found)?;
        set_recurrence_in(ev, &body, now)?;
        Ok(json!({"id": id, "event": render(&expand::master_view(ev), &mail)}))
    })?;
    Ok(json_status(StatusCode::OK, v))
}

// ---------------------------------------------------------------------------------------------
// Delta faults
// ---------------------------------------------------------------------------------------------

fn user_id(st: &St, addr: &str) -> GraphResult<Uuid> {
    with_user(st, addr, |u| Ok(u.id))
}

async fn delta_status(State(st): State<St>, Path(addr): Path<String>) -> Res {
    let id = user_id(&st, &addr)?;
    Ok(json_status(StatusCode::OK, json!(st.delta.status(id))))
}

async fn delta_faults(State(st): State<St>, Path(addr): Path<String>, body: Bytes) -> Res {
    let id = user_id(&st, &addr)?;
    let req: DeltaFaultRequest = parse_object(&body, EmptyBody::IsEmptyObject, "BadRequest")?;
    if let Some(n) = req.replay.filter(|n| *n > MAX_REPLAY) {
        return Err(bad(format!(
            "replay must be at most {MAX_REPLAY} (got {n})."
        )));
    }
    Ok(json_status(
        StatusCode::OK,
        json!(st.delta.apply_faults(id, &req)),
    ))
}

// ---------------------------------------------------------------------------------------------
// Random Outlook-like changes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomRequest {
    count: u32,
    #[serde(default)]
    seed: u64,
    window_start: Option<String>,
    window_end: Option<String>,
    calendar: Option<String>,
}

/// Most changes one call may apply.
const MAX_RANDOM_CHANGES: u32 = 10_000;

/// The kinds of change `random-changes` makes (issue 3's list).
const KINDS: &[&str] = &[
    "create",
    "edit",
    "move_occurrence",
    "cancel_occurrence",
    "delete_series",
    "change_pattern",
    "move_out_of_window",
    "delete",
];

async fn random_changes(State(st): State<St>, Path(addr): Path<String>, body: Bytes) -> Res {
    let req: RandomRequest = parse_object(&body, EmptyBody::Rejected, "BadRequest")?;
    if req.count > MAX_RANDOM_CHANGES {
        return Err(bad(format!("count must be at most {MAX_RANDOM_CHANGES}.")));
    }
    let now = st.now();
    let ws = match &req.window_start {
        Some(s) => parse_instant("window_start", s)?,
        None => now
            .checked_sub(SignedDuration::from_hours(24 * 7))
            .unwrap_or(now),
    };
    let we = match &req.window_end {
        Some(s) => parse_instant("window_end", s)?,
        None => now
            .checked_add(SignedDuration::from_hours(24 * 60))
            .unwrap_or(now),
    };
    if we <= ws {
        return Err(bad("window_end must be after window_start."));
    }
    crate::graph::view::check_window_span(ws, we)?;
    let mut rng = StdRng::seed_from_u64(req.seed);
    let summary = with_user(&st, &addr, |u| {
        let org = owner(u);
        let zone = u.time_zone.clone();
        let cal = calendar_mut(u, req.calendar.as_deref())?;
        let mut changes = Vec::new();
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for _ in 0..req.count {
            let c = random_change(&mut rng, cal, &org, &zone, ws, we, now);
            *counts.entry(c.0).or_default() += 1;
            changes.push(json!({"kind": c.0, "event_id": c.1}));
        }
        Ok(json!({"applied": changes.len(), "counts": counts, "changes": changes}))
    })?;
    Ok(json_status(StatusCode::OK, summary))
}

fn random_instant(rng: &mut StdRng, ws: Timestamp, we: Timestamp) -> Timestamp {
    let span = (we.as_second() - ws.as_second()).max(3600);
    let s = ws.as_second() + rng.random_range(0..span);
    // Round to the half hour.
    let s = s - s.rem_euclid(1800);
    Timestamp::from_second(s).unwrap_or(ws)
}

fn local(ts: Timestamp, zone: &str) -> Value {
    let l = expand::to_local(ts, zone);
    json!({"dateTime": wire::fmt_civil(l.date_time), "timeZone": zone})
}

const SUBJECTS: &[&str] = &[
    "Team sync",
    "1:1",
    "Budget review",
    "Customer call",
    "Lunch",
    "Interview",
    "Sprint planning",
    "Dentist",
    "Training",
    "Board prep",
];
const SHOW_AS: &[&str] = &["free", "tentative", "busy", "oof", "workingElsewhere"];
const SENSITIVITY: &[&str] = &["normal", "personal", "private", "confidential"];
const DAYS: &[&str] = &["monday", "tuesday", "wednesday", "thursday", "friday"];

fn random_pattern(rng: &mut StdRng, start_date: &str) -> Value {
    if rng.random_bool(0.5) {
        json!({
            "pattern": {"type": "daily", "interval": rng.random_range(1..3)},
            "range": {"type": "numbered", "startDate": start_date, "numberOfOccurrences": rng.random_range(3..12)}
        })
    } else {
        let n = rng.random_range(1..4usize);
        let mut days: Vec<&str> = Vec::new();
        while days.len() < n {
            let d = DAYS[rng.random_range(0..DAYS.len())];
            if !days.contains(&d) {
                days.push(d);
            }
        }
        json!({
            "pattern": {"type": "weekly", "interval": rng.random_range(1..3), "daysOfWeek": days, "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": start_date, "numberOfOccurrences": rng.random_range(3..10)}
        })
    }
}

fn random_event_json(
    rng: &mut StdRng,
    zone: &str,
    ws: Timestamp,
    we: Timestamp,
    series: bool,
) -> Value {
    let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())];
    let all_day = rng.random_bool(0.1);
    let start = random_instant(rng, ws, we);
    let mut v = if all_day {
        let d = expand::to_local(start, zone).date_time.date();
        let days = rng.random_range(1..3i64);
        let end = d.checked_add(jiff::Span::new().days(days)).unwrap_or(d);
        json!({
            "subject": subject,
            "isAllDay": true,
            "start": {"dateTime": format!("{d}T00:00:00"), "timeZone": zone},
            "end": {"dateTime": format!("{end}T00:00:00"), "timeZone": zone},
            "showAs": "free",
        })
    } else {
        let minutes = [30i64, 60, 90, 120][rng.random_range(0..4usize)];
        let end = start
            .checked_add(SignedDuration::from_mins(minutes))
            .unwrap_or(start);
        json!({
            "subject": subject,
            "start": local(start, zone),
            "end": local(end, zone),
            "showAs": SHOW_AS[rng.random_range(0..SHOW_AS.len())],
            "sensitivity": SENSITIVITY[rng.random_range(0..SENSITIVITY.len())],
            "location": {"displayName": format!("Room {}", rng.random_range(1..20))},
        })
    };
    if series {
        let d = expand::to_local(start, zone).date_time.date().to_string();
        v["recurrence"] = random_pattern(rng, &d);
    }
    v
}

/// Live occurrences (plain or exception) of series in the window: (master id, original start).
fn occurrences_in(cal: &Calendar, ws: Timestamp, we: Timestamp) -> Vec<(String, Timestamp)> {
    expand::instances(cal, ws, we)
        .into_iter()
        .filter(|i| matches!(i.kind, InstanceKind::Occurrence | InstanceKind::Exception))
        .filter_map(|i| Some((i.series_master_id?, i.original_start?)))
        .collect()
}

/// An item id in [`new_item_id`]'s shape drawn from `rng`, so that the same seed makes the
/// same ids (and therefore the same later choices).
fn seeded_item_id(rng: &mut StdRng) -> String {
    use base64::Engine as _;
    let mut bytes = vec![0x00, 0x00, 0x0d, 0x24, 0x00, 0x46];
    let random: [u8; 32] = rng.random();
    bytes.extend_from_slice(&random);
    bytes.extend_from_slice(&[0x00, 0x00]);
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn pick<'a, T>(rng: &mut StdRng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(rng.random_range(0..v.len()))
    }
}

/// Applies one random change; returns (kind, id of the event or occurrence it touched).
fn random_change(
    rng: &mut StdRng,
    cal: &mut Calendar,
    org: &EmailAddress,
    zone: &str,
    ws: Timestamp,
    we: Timestamp,
    now: Timestamp,
) -> (&'static str, String) {
    let masters: Vec<String> = cal
        .events
        .values()
        .filter(|e| e.recurrence.is_some())
        .map(|e| e.id.clone())
        .collect();
    let singles_in: Vec<String> = expand::instances(cal, ws, we)
        .into_iter()
        .filter(|i| i.kind == InstanceKind::SingleInstance)
        .map(|i| i.id)
        .collect();
    let all: Vec<String> = cal.events.keys().cloned().collect();
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let attempt: Option<(&'static str, String)> = match kind {
        "edit" => pick(rng, &all).cloned().and_then(|id| {
            let field = rng.random_range(0..4);
            let body = match field {
                0 => json!({"subject": format!("{} (edited {})", SUBJECTS[rng.random_range(0..SUBJECTS.len())], rng.random_range(0..1000))}),
                1 => json!({"showAs": SHOW_AS[rng.random_range(0..SHOW_AS.len())]}),
                2 => json!({"sensitivity": SENSITIVITY[rng.random_range(0..SENSITIVITY.len())]}),
                _ => json!({"location": {"displayName": format!("Room {}", rng.random_range(20..40))}}),
            };
            let ev = cal.events.get_mut(&id)?;
            update_stored(ev, org, &body, now).ok().map(|_| ("edit", id))
        }),
        "move_occurrence" => {
            let occs = occurrences_in(cal, ws, we);
            pick(rng, &occs).cloned().and_then(|(master, orig)| {
                let inst = expand::find_instance(cal, &expand::occurrence_id(&master, orig))?;
                if inst.data.is_all_day {
                    return None;
                }
                let steps = rng.random_range(1..=6i64);
                let steps = if rng.random_bool(0.5) { steps } else { -steps };
                let shift = SignedDuration::from_mins(30 * steps);
                let (s, e) = (inst.start.checked_add(shift).ok()?, inst.end.checked_add(shift).ok()?);
                let body = json!({"start": local(s, zone), "end": local(e, zone)});
                update_occurrence_in(cal, &master, orig, org, &body, now).ok().map(|id| ("move_occurrence", id))
            })
        }
        "cancel_occurrence" => {
            let occs = occurrences_in(cal, ws, we);
            pick(rng, &occs).cloned().and_then(|(master, orig)| {
                cancel_occurrence_in(cal, &master, orig, now)
                    .ok()
                    .map(|_| ("cancel_occurrence", expand::occurrence_id(&master, orig)))
            })
        }
        "delete_series" => pick(rng, &masters).cloned().and_then(|id| {
            cal.events.remove(&id)?;
            Some(("delete_series", id))
        }),
        "change_pattern" => pick(rng, &masters).cloned().and_then(|id| {
            let ev = cal.events.get_mut(&id)?;
            let d = ev.data.start.date_time.date().to_string();
            let body = random_pattern(rng, &d);
            set_recurrence_in(ev, &body, now).ok().map(|_| ("change_pattern", id))
        }),
        "move_out_of_window" => pick(rng, &singles_in).cloned().and_then(|id| {
            let ev = cal.events.get(&id)?;
            let (s, e) = expand::data_span(&ev.data)?;
            let days = rng.random_range(1..30i64);
            let target = if rng.random_bool(0.5) {
                we.checked_add(SignedDuration::from_hours(24 * days)).ok()?
            } else {
                ws.checked_sub(SignedDuration::from_hours(24 * days)).ok()?
                    .checked_sub(e.duration_since(s)).ok()?
            };
            let end = target.checked_add(e.duration_since(s)).ok()?;
            let body = if ev.data.is_all_day {
                let sd = expand::to_local(target, &ev.data.start.time_zone).date_time.date();
                let len = (ev.data.end.date_time.date() - ev.data.start.date_time.date()).get_days().max(1);
                let ed = sd.checked_add(jiff::Span::new().days(len)).ok()?;
                json!({"start": {"dateTime": format!("{sd}T00:00:00"), "timeZone": ev.data.start.time_zone},
                       "end": {"dateTime": format!("{ed}T00:00:00"), "timeZone": ev.data.end.time_zone}})
            } else {
                json!({"start": local(target, zone), "end": local(end, zone)})
            };
            let ev = cal.events.get_mut(&id)?;
            update_stored(ev, org, &body, now).ok().map(|_| ("move_out_of_window", id))
        }),
        "delete" => pick(rng, &singles_in).cloned().and_then(|id| {
            cal.events.remove(&id)?;
            Some(("delete", id))
        }),
        _ => None,
    };
    if let Some(done) = attempt {
        return done;
    }
    // "create", or a change that had nothing to act on: create (a series one time in three).
    let series = rng.random_bool(0.33);
    let body = random_event_json(rng, zone, ws, we, series);
    let id = seeded_item_id(rng);
    match create_in(cal, org, &body, now, Some(id)) {
        Ok(id) => ("create", id),
        Err(_) => ("none", String::new()),
    }
}
