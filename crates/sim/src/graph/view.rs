//! `calendarView`: the expanded instances (singles, occurrences, exceptions) of a calendar that
//! overlap a window, as Graph serves them:
//!
//! - `GET /users/{id}/calendarView`, `/users/{id}/calendar/calendarView`,
//!   `/users/{id}/calendars/{cid}/calendarView` (and `/me/…` with a delegated token);
//! - `startDateTime` / `endDateTime` required (ISO 8601; an offset is honoured, none means UTC;
//!   parameter names are case-insensitive as in Graph's own samples);
//! - default page size 10 with `@odata.nextLink` (`$top` + `$skip`), `$top` up to 1000,
//!   `$select`, `$orderby`;
//! - `Prefer: outlook.timezone` → start/end in that zone (all-day events are not shifted) and
//!   `Preference-Applied`.
//!
//! The window parsing, calendar selection, rendering and time-zone shifting here are shared with
//! `delta` (calendarView/delta).
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::route_util;
use super::wire::{self, PreferTz};
use super::{Need, Principal, St};
use crate::error::{GraphError, GraphResult};
use crate::expand::{self, Instance};
use crate::model::Calendar;

/// Graph's default page size for calendarView.
pub const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest `$top` honoured (larger values are clamped).
pub const MAX_TOP: usize = 1000;

pub fn routes() -> Router<St> {
    route_util::calendar_routes("calendarView", |st, p, t, q, headers| async move {
        calendar_view(&st, &p, &t, q.as_deref(), &headers).await
    })
}

// ---------------------------------------------------------------------------------------------
// Shared pieces (also used by delta)
// ---------------------------------------------------------------------------------------------

/// A calendarView window: instances with `start < end_window && end > start_window` are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Which calendar of the mailbox a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalSel {
    /// `/calendarView` (the default calendar).
    Root,
    /// `/calendar/calendarView` (the default calendar).
    Default,
    /// `/calendars/{cid}/calendarView`.
    Id(String),
}

/// How the request named the mailbox: `/users/{ref}` or `/me`. Links echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User(String),
    Me,
}

/// The request's resource path: who, which calendar.
#[derive(Debug, Clone)]
pub struct Target {
    pub who: Who,
    pub cal: CalSel,
}

impl Target {
    /// `users/{ref}` or `me`.
    fn owner_segment(&self) -> String {
        match &self.who {
            Who::User(r) => format!("users/{}", encode_path_segment(r)),
            Who::Me => "me".to_owned(),
        }
    }

    /// The path of the collection under `/v1.0/`, e.g. `users/a@b.c/calendars/X/calendarView`.
    pub fn collection_path(&self) -> String {
        let owner = self.owner_segment();
        match &self.cal {
            CalSel::Root => format!("{owner}/calendarView"),
            CalSel::Default => format!("{owner}/calendar/calendarView"),
            CalSel::Id(cid) => format!(
                "{owner}/calendars/{}/calendarView",
                encode_path_segment(cid)
            ),
        }
    }

    /// The `@odata.context` entity-set part, e.g. `users('a@b.c')/calendarView`.
    fn context_path(&self) -> String {
        let owner = match &self.who {
            Who::User(r) => format!("users('{}')", r.replace('\'', "''")),
            Who::Me => "users('me')".to_owned(),
        };
        match &self.cal {
            CalSel::Root => format!("{owner}/calendarView"),
            CalSel::Default => format!("{owner}/calendar/calendarView"),
            CalSel::Id(cid) => format!(
                "{owner}/calendars('{}')/calendarView",
                cid.replace('\'', "''")
            ),
        }
    }
}

/// Percent-encodes the characters that cannot stand in a path segment.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '/' | '?' | '#' | '%' | ' ' | '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Form-encodes a query value.
pub fn encode_query_value(v: &str) -> String {
    serde_urlencoded::to_string([("v", v)])
        .ok()
        .and_then(|s| s.strip_prefix("v=").map(str::to_owned))
        .unwrap_or_default()
}

/// The query string as (lower-cased name, value) pairs, in order. OData and Graph treat the
/// names case-insensitively (`startdatetime` in Graph's own delta sample).
pub fn parse_query(raw: Option<&str>) -> GraphResult<Vec<(String, String)>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| GraphError::invalid_request("The query specified in the URI is not valid."))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

/// The first value of query parameter `name` (lower-case).
pub fn query_get<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The window of a calendarView / initial delta request (the events engineer's parser, so
/// calendarView, instances and delta word errors alike).
pub fn parse_window(q: &[(String, String)]) -> GraphResult<Window> {
    let (start, end) = wire::parse_window(q)?;
    check_window_span(start, end)?;
    Ok(Window { start, end })
}

/// Longest window expanded (a guard against windows of centuries filling memory).
pub const MAX_WINDOW_DAYS: i64 = 3660;

/// `400 ErrorInvalidParameter` for a window longer than [`MAX_WINDOW_DAYS`].
pub fn check_window_span(start: Timestamp, end: Timestamp) -> GraphResult<()> {
    if end.as_second().saturating_sub(start.as_second()) > MAX_WINDOW_DAYS * 86_400 {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            format!(
                "The time window between StartDateTime and EndDateTime is too large; at most {MAX_WINDOW_DAYS} days are supported."
            ),
        ));
    }
    Ok(())
}

/// The mailbox user id for `who` (the signed-in user for `/me`).
fn user_ref(p: &Principal, who: &Who) -> GraphResult<String> {
    match who {
        Who::User(r) => Ok(r.clone()),
        Who::Me => match &p.delegated {
            Some((uid, _)) => Ok(uid.to_string()),
            None => Err(GraphError::bad_request(
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            )),
        },
    }
}

/// Runs the mailbox pipeline (authorize → throttle → faults) for `target`; returns the user id.
pub async fn enter(st: &St, p: &Principal, target: &Target) -> GraphResult<Uuid> {
    let r = user_ref(p, &target.who)?;
    super::enter_mailbox(st, p, &r, Need::Read).await
}

/// One instance in a window, with its rendering in UTC.
#[derive(Debug, Clone)]
pub struct ViewItem {
    pub inst: Instance,
    /// The event JSON as calendarView renders it without `Prefer: outlook.timezone`.
    pub json: Value,
}

impl ViewItem {
    pub fn id(&self) -> &str {
        &self.inst.id
    }
}

/// What [`collect`] found: the calendar, the mailbox address, the instances.
#[derive(Debug)]
pub struct Collected {
    pub calendar_id: String,
    pub mailbox: String,
    pub items: Vec<ViewItem>,
}

/// The calendar a request addresses, taken out of the directory: a shared handle on its
/// content (copy-on-write), its version ([`crate::model::CalCell::version`]) and the mailbox
/// address. The directory lock is held only while looking it up.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub cal: Arc<Calendar>,
    pub version: u64,
    pub mailbox: String,
}

/// Resolves the calendar `sel` of `user_id`. An unknown calendar → 404 `ErrorItemNotFound`.
pub fn resolve(st: &St, user_id: Uuid, sel: &CalSel) -> GraphResult<Resolved> {
    let dir = st.dir();
    let user = dir
        .tenants
        .iter()
        .find_map(|t| t.user_by_id(user_id))
        .ok_or_else(GraphError::item_not_found)?;
    let cell = match sel {
        CalSel::Root | CalSel::Default => user.default_calendar_cell(),
        CalSel::Id(cid) => user.calendar_cell(cid),
    }
    .ok_or_else(GraphError::item_not_found)?;
    Ok(Resolved {
        cal: cell.shared(),
        version: cell.version(),
        mailbox: user.mail.clone(),
    })
}

/// Every instance of `cal` overlapping `w`, ordered by start, then id
/// ([`expand::instances`] sorts them so).
pub fn instances_in(cal: &Calendar, w: Window) -> Vec<Instance> {
    if w.end > w.start {
        expand::instances(cal, w.start, w.end)
    } else {
        Vec::new()
    }
}

/// Resolves the calendar `sel` of `user_id` and renders every instance overlapping `w` (UTC),
/// ordered by start, then id. An unknown calendar → 404 `ErrorItemNotFound`. The directory
/// lock is not held while expanding and rendering.
pub fn collect(st: &St, user_id: Uuid, sel: &CalSel, w: Window) -> GraphResult<Collected> {
    let Resolved { cal, mailbox, .. } = resolve(st, user_id, sel)?;
    let items: Vec<ViewItem> = instances_in(&cal, w)
        .into_iter()
        .map(|inst| {
            let json = render(&inst, &mailbox, None, None, None);
            ViewItem { inst, json }
        })
        .collect();
    Ok(Collected {
        calendar_id: cal.id.clone(),
        mailbox,
        items,
    })
}

/// Renders one instance as calendarView shows it.
pub fn render(
    inst: &Instance,
    mailbox: &str,
    tz: Option<&PreferTz>,
    select: Option<&[String]>,
    expand: Option<&wire::ExpandProps>,
) -> Value {
    let opts = wire::RenderOpts {
        time_zone: tz.map(PreferTz::render),
        expand_props: expand.cloned(),
        select: select.map(<[String]>::to_vec),
        mailbox: Some(mailbox.to_owned()),
    };
    wire::event_json(inst, &opts)
}

/// `Prefer: outlook.timezone` (unknown zone → 400 `TimeZoneNotSupportedException`).
pub fn prefer_tz(headers: &HeaderMap) -> GraphResult<Option<PreferTz>> {
    wire::prefer_time_zone(headers)
}

// ---------------------------------------------------------------------------------------------
// calendarView
// ---------------------------------------------------------------------------------------------

/// Properties of `microsoft.graph.event` that `$select` may name (CSDL, v1.0).
const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "attachments",
    "calendar",
    "exceptionOccurrences",
    "extensions",
    "instances",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

fn unknown_property(name: &str) -> GraphError {
    GraphError::bad_request(
        "RequestBroker--ParseUri",
        format!("Could not find a property named '{name}' on type 'microsoft.graph.event'."),
    )
}

fn parse_select(v: &str) -> GraphResult<Vec<String>> {
    let mut out = Vec::new();
    for raw in v.split(',') {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        let known = EVENT_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| unknown_property(name))?;
        out.push((*known).to_owned());
    }
    Ok(out)
}

/// One `$orderby` key: a property path (`start/dateTime`) and its direction.
#[derive(Debug, Clone)]
struct OrderKey {
    path: Vec<String>,
    desc: bool,
}

fn parse_orderby(v: &str) -> GraphResult<Vec<OrderKey>> {
    let mut out = Vec::new();
    for clause in v.split(',') {
        let mut words = clause.split_whitespace();
        let Some(path) = words.next() else { continue };
        let desc = match words.next() {
            None => false,
            Some(d) if d.eq_ignore_ascii_case("asc") => false,
            Some(d) if d.eq_ignore_ascii_case("desc") => true,
            Some(_) => {
                return Err(GraphError::invalid_request(format!(
                    "The query specified in the URI is not valid. Syntax error in $orderby '{clause}'."
                )));
            }
        };
        if words.next().is_some() {
            return Err(GraphError::invalid_request(format!(
                "The query specified in the URI is not valid. Syntax error in $orderby '{clause}'."
            )));
        }
        let segs: Vec<String> = path.split('/').map(str::to_owned).collect();
        let first = segs.first().map(String::as_str).unwrap_or("");
        let known = EVENT_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(first))
            .ok_or_else(|| unknown_property(first))?;
        let mut segs = segs;
        if let Some(f) = segs.first_mut() {
            *f = (*known).to_owned();
        }
        out.push(OrderKey { path: segs, desc });
    }
    Ok(out)
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> &'a Value {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                .map(|(_, v)| v)
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    cur
}

fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn parse_count(name: &str, v: &str) -> GraphResult<usize> {
    v.trim().parse::<usize>().map_err(|_| {
        GraphError::invalid_request(format!(
            "The query specified in the URI is not valid. Invalid value '{v}' for {name} query option found. \
             The {name} query option requires a non-negative integer value."
        ))
    })
}

async fn calendar_view(
    st: &St,
    p: &Principal,
    target: &Target,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> GraphResult<Response> {
    let user_id = enter(st, p, target).await?;
    let q = parse_query(raw_query)?;
    let window = parse_window(&q)?;
    let tz = prefer_tz(headers)?;
    let select = query_get(&q, "$select").map(parse_select).transpose()?;
    let orderby = query_get(&q, "$orderby").map(parse_orderby).transpose()?;
    let top = query_get(&q, "$top")
        .map(|v| parse_count("$top", v))
        .transpose()?
        .map(|t| t.min(MAX_TOP));
    let skip = query_get(&q, "$skip")
        .map(|v| parse_count("$skip", v))
        .transpose()?
        .unwrap_or(0);
    let expand = wire::parse_expand(&q)?;
    for unsupported in ["$filter", "$search", "$count"] {
        if let Some(v) = query_get(&q, unsupported) {
            if unsupported == "$count" && v.eq_ignore_ascii_case("false") {
                continue;
            }
            return Err(GraphError::bad_request(
                "ErrorInvalidUrlQuery",
                format!(
                    "The query parameter '{unsupported}' is not supported on calendarView by this simulator."
                ),
            ));
        }
    }
    let page_size = top.unwrap_or(DEFAULT_PAGE_SIZE);

    let Collected {
        mailbox, mut items, ..
    } = collect(st, user_id, &target.cal, window)?;
    if let Some(keys) = &orderby {
        items.sort_by(|a, b| {
            for k in keys {
                let o = cmp_json(lookup(&a.json, &k.path), lookup(&b.json, &k.path));
                let o = if k.desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(page_size)
        .map(|it| {
            if tz.is_none() && select.is_none() && expand.is_none() {
                it.json
            } else {
                render(
                    &it.inst,
                    &mailbox,
                    tz.as_ref(),
                    select.as_deref(),
                    expand.as_ref(),
                )
            }
        })
        .collect();

    let base = st.base_url();
    let mut context = format!("{base}/v1.0/$metadata#{}", target.context_path());
    if let Some(s) = &select {
        context.push('(');
        context.push_str(&s.join(","));
        context.push(')');
    }
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    let next_skip = skip.saturating_add(page_size);
    if page_size > 0 && next_skip < total {
        let mut link = format!("{base}/v1.0/{}?", target.collection_path());
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in &q {
            if matches!(k.as_str(), "$skip" | "$top") {
                continue;
            }
            let name = match k.as_str() {
                "startdatetime" => "startDateTime",
                "enddatetime" => "endDateTime",
                other => other,
            };
            parts.push(format!("{name}={}", encode_query_value(v)));
        }
        parts.push(format!("$top={page_size}"));
        parts.push(format!("$skip={next_skip}"));
        link.push_str(&parts.join("&"));
        body.insert("value".into(), Value::Array(page));
        body.insert("@odata.nextLink".into(), json!(link));
    } else {
        body.insert("value".into(), Value::Array(page));
    }
    let mut resp = (StatusCode::OK, axum::Json(Value::Object(body))).into_response();
    if let Some(tz) = &tz
        && let Ok(v) = HeaderValue::from_str(&tz.preference_applied())
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    Ok(resp)
}
