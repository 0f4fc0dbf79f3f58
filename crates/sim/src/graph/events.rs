//! Graph v1.0 users, mailbox settings, calendars, events (list, get, create with
//! `transactionId` de-duplication, update, delete), occurrences and exceptions through their
//! ids, `instances`, and `singleValueExtendedProperties` (`$expand` and the `$filter` form).
//!
//! Every mailbox call goes through [`super::enter_mailbox`] (authorization, throttling,
//! faults). Every change to a stored event calls [`StoredEvent::touch`].
#![allow(clippy::result_large_err)] // GraphError is the lead's type.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::wire::{self, ExpandProps, PreferTz, RenderOpts};
use super::{Need, Principal, St, enter_mailbox, require_role};
use crate::error::{GraphError, GraphResult};
use crate::expand::{self, Instance, InstanceKind};
use crate::meetings;
use crate::model::{
    Calendar, EmailAddress, ExceptionOccurrence, MailboxKind, StoredEvent, Tenant, User,
    new_change_key, new_ical_uid, new_item_id,
};

/// Default page size of `/events` and `/instances` (Graph's undocumented default).
pub const DEFAULT_PAGE_SIZE: usize = 10;
/// Default page size of `/users`.
pub const USERS_PAGE_SIZE: usize = 100;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/users", get(list_users))
        .route("/users/{user}", get(get_user))
        .route("/users/{user}/mailboxSettings", get(mailbox_settings))
        .route("/users/{user}/calendars", get(list_calendars))
        .route("/users/{user}/calendar", get(get_calendar))
        .route("/users/{user}/calendars/{cid}", get(get_calendar))
        .route("/users/{user}/events", get(list_events).post(create_event))
        .route(
            "/users/{user}/calendar/events",
            get(list_events).post(create_event),
        )
        .route(
            "/users/{user}/calendars/{cid}/events",
            get(list_events).post(create_event),
        )
        .route(
            "/users/{user}/events/{eid}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route(
            "/users/{user}/calendar/events/{eid}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route(
            "/users/{user}/calendars/{cid}/events/{eid}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route("/users/{user}/events/{eid}/instances", get(list_instances))
        .route(
            "/users/{user}/calendar/events/{eid}/instances",
            get(list_instances),
        )
        .route(
            "/users/{user}/calendars/{cid}/events/{eid}/instances",
            get(list_instances),
        )
}

pub(super) type Params = HashMap<String, String>;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

pub(super) fn param<'a>(p: &'a Params, name: &str) -> &'a str {
    p.get(name).map(String::as_str).unwrap_or("")
}

/// The query string as (name, value) pairs; names keep their case (lookups are
/// case-insensitive via [`wire::query_get`]).
fn parse_query(raw: Option<&str>) -> GraphResult<Vec<(String, String)>> {
    match raw {
        None => Ok(Vec::new()),
        Some(r) => serde_urlencoded::from_str(r).map_err(|_| {
            GraphError::bad_request("BadRequest", "The query specified in the URI is not valid.")
        }),
    }
}

/// The request path below `/v1.0` (for `@odata.nextLink`).
fn graph_path(uri: &OriginalUri) -> String {
    let p = uri.0.path();
    p.strip_prefix("/v1.0").unwrap_or(p).to_owned()
}

fn json_response(status: StatusCode, body: Value, prefer: Option<&PreferTz>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(p) = prefer
        && let Ok(v) = HeaderValue::from_str(&p.preference_applied())
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    resp
}

fn tenant<'d>(dir: &'d crate::model::Directory, p: &Principal) -> GraphResult<&'d Tenant> {
    dir.tenant_by_id(p.tenant_id)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))
}

pub(super) fn tenant_mut<'d>(
    dir: &'d mut crate::model::Directory,
    p: &Principal,
) -> GraphResult<&'d mut Tenant> {
    dir.tenant_by_id_mut(p.tenant_id)
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))
}

fn user_mut<'d>(
    dir: &'d mut crate::model::Directory,
    p: &Principal,
    uid: Uuid,
) -> GraphResult<&'d mut User> {
    tenant_mut(dir, p)?
        .user_by_id_mut(uid)
        .ok_or_else(GraphError::item_not_found)
}

fn user_ref<'d>(
    dir: &'d crate::model::Directory,
    p: &Principal,
    uid: Uuid,
) -> GraphResult<&'d User> {
    tenant(dir, p)?
        .user_by_id(uid)
        .ok_or_else(GraphError::item_not_found)
}

/// `400 ErrorInvalidIdMalformed` unless `id` is base64 of some kind.
pub(super) fn check_id(id: &str) -> GraphResult<()> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let ok = expand::is_well_formed_id(id)
        && id.len() >= 4
        && (URL_SAFE.decode(id).is_ok()
            || URL_SAFE_NO_PAD.decode(id).is_ok()
            || STANDARD.decode(id).is_ok()
            || STANDARD_NO_PAD.decode(id).is_ok());
    if ok {
        Ok(())
    } else {
        Err(GraphError::bad_request(
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        ))
    }
}

/// The calendar a collection path names: `/calendars/{cid}` or the default calendar.
fn calendar_of<'u>(user: &'u User, params: &Params) -> GraphResult<&'u Calendar> {
    match params.get("cid") {
        Some(cid) => user.calendar(cid).ok_or_else(GraphError::item_not_found),
        None => user
            .default_calendar()
            .ok_or_else(GraphError::item_not_found),
    }
}

fn calendar_of_mut<'u>(user: &'u mut User, params: &Params) -> GraphResult<&'u mut Calendar> {
    match params.get("cid") {
        Some(cid) => user
            .calendar_mut(cid)
            .ok_or_else(GraphError::item_not_found),
        None => user
            .default_calendar_mut()
            .ok_or_else(GraphError::item_not_found),
    }
}

/// Finds the calendar holding event `eid` (a stored id, or an occurrence/exception id).
pub(super) fn locate<'u>(
    user: &'u User,
    params: &Params,
    eid: &str,
) -> Option<(&'u Calendar, Instance)> {
    let cals: Vec<&Calendar> = match params.get("cid") {
        Some(cid) => user.calendar(cid).into_iter().collect(),
        None => user.calendars.iter().map(|c| &**c).collect(),
    };
    cals.into_iter()
        .find_map(|c| expand::find_instance(c, eid).map(|i| (c, i)))
}

struct ListOpts {
    prefer: Option<PreferTz>,
    top: usize,
    skip: usize,
    select: Option<Vec<String>>,
    expand: Option<ExpandProps>,
}

fn list_opts(
    query: &[(String, String)],
    headers: &HeaderMap,
    default_top: usize,
) -> GraphResult<ListOpts> {
    Ok(ListOpts {
        prefer: wire::prefer_time_zone(headers)?,
        top: wire::parse_top(query, default_top)?,
        skip: wire::parse_skip(query)?,
        select: wire::parse_select(query),
        expand: wire::parse_expand(query)?,
    })
}

fn render_opts(o: &ListOpts, mailbox: &str) -> RenderOpts {
    RenderOpts {
        time_zone: o.prefer.as_ref().map(PreferTz::render),
        expand_props: o.expand.clone(),
        select: o.select.clone(),
        mailbox: Some(mailbox.to_owned()),
    }
}

fn context_fragment(user: &str) -> String {
    format!("users('{}')", user.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Users and mailbox settings
// ---------------------------------------------------------------------------------------------

const DIRECTORY_ROLES: &[&str] = &[
    "User.Read.All",
    "User.ReadBasic.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

fn user_json(u: &User) -> Value {
    json!({
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": u.office_location,
        "preferredLanguage": "en-US",
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "id": u.id.to_string(),
    })
}

fn user_not_found(r: &str) -> GraphError {
    GraphError::not_found(
        "Request_ResourceNotFound",
        format!(
            "Resource '{r}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn select_fields(mut v: Value, select: Option<&[String]>) -> Value {
    if let (Some(sel), Some(m)) = (select, v.as_object_mut()) {
        m.retain(|k, _| {
            k == "id" || k.starts_with('@') || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
        });
    }
    v
}

async fn get_user(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
) -> GraphResult<Response> {
    require_role(&p, DIRECTORY_ROLES)?;
    let query = parse_query(q.as_deref())?;
    let select = wire::parse_select(&query);
    let r = param(&params, "user");
    let dir = st.dir();
    let t = tenant(&dir, &p)?;
    let u = t.user(r).ok_or_else(|| user_not_found(r))?;
    let mut v = select_fields(user_json(u), select.as_deref());
    v["@odata.context"] = json!(wire::context_url(st.base_url(), "users/$entity"));
    Ok(json_response(StatusCode::OK, v, None))
}

/// `$filter` on `/users`: `mail|userPrincipalName|displayName|id eq '…'` (optionally `or`-ed).
fn user_filter(raw: &str) -> GraphResult<Vec<(String, String)>> {
    let unsupported = || GraphError::bad_request("Request_UnsupportedQuery", "Unsupported Query.");
    wire::split_keyword(raw, " or ")
        .into_iter()
        .map(|c| {
            let (l, r) = wire::split_eq(c.trim()).ok_or_else(unsupported)?;
            let prop = l.trim().to_ascii_lowercase();
            if !matches!(
                prop.as_str(),
                "mail" | "userprincipalname" | "displayname" | "id"
            ) {
                return Err(unsupported());
            }
            Ok((prop, wire::unquote(&r).ok_or_else(unsupported)?))
        })
        .collect()
}

async fn list_users(
    State(st): State<St>,
    p: Principal,
    RawQuery(q): RawQuery,
    uri: OriginalUri,
) -> GraphResult<Response> {
    require_role(&p, DIRECTORY_ROLES)?;
    let query = parse_query(q.as_deref())?;
    let top = wire::parse_top(&query, USERS_PAGE_SIZE)?.min(999);
    let skip = wire::parse_skip(&query)?;
    let select = wire::parse_select(&query);
    let filter = wire::query_get(&query, "$filter")
        .map(user_filter)
        .transpose()?;
    let values: Vec<Value> = {
        let dir = st.dir();
        let t = tenant(&dir, &p)?;
        let mut users: Vec<&User> = t
            .users()
            .filter(|u| match &filter {
                None => true,
                Some(clauses) => clauses.iter().any(|(prop, val)| {
                    let actual = match prop.as_str() {
                        "mail" => u.mail.clone(),
                        "userprincipalname" => u.upn.clone(),
                        "displayname" => u.display_name.clone(),
                        _ => u.id.to_string(),
                    };
                    actual.eq_ignore_ascii_case(val)
                }),
            })
            .collect();
        users.sort_by_key(|a| a.upn.to_ascii_lowercase());
        users
            .into_iter()
            .map(|u| select_fields(user_json(u), select.as_deref()))
            .collect()
    };
    let (page, next) = wire::paginate(values, skip, top);
    let next = next.map(|s| wire::next_link(st.base_url(), &graph_path(&uri), &query, s));
    let ctx = wire::context_url(
        st.base_url(),
        &wire::with_select("users", select.as_deref()),
    );
    Ok(json_response(
        StatusCode::OK,
        wire::odata_page(&ctx, page, next),
        None,
    ))
}

fn fmt_time(t: jiff::civil::Time) -> String {
    format!("{}.0000000", t.strftime("%H:%M:%S"))
}

async fn mailbox_settings(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
) -> GraphResult<Response> {
    // Real Graph needs MailboxSettings.Read (or ReadWrite); Calendars.* is not enough.
    let perms = match &p.delegated {
        Some((_, scp)) => scp,
        None => &p.roles,
    };
    let allowed = perms.iter().any(|r| {
        r.eq_ignore_ascii_case("MailboxSettings.Read")
            || r.eq_ignore_ascii_case("MailboxSettings.ReadWrite")
    });
    let r = param(&params, "user");
    let dir = st.dir();
    let t = tenant(&dir, &p)?;
    let u = t.user(r).ok_or_else(|| {
        GraphError::not_found(
            "ErrorInvalidUser",
            format!("The requested user '{r}' is invalid."),
        )
    })?;
    if !allowed || p.delegated.as_ref().is_some_and(|(uid, _)| *uid != u.id) {
        return Err(GraphError::access_denied(
            "Access is denied. Check credentials and try again.",
        ));
    }
    if !u.has_mailbox || !u.account_enabled {
        return Err(GraphError::not_found(
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    let purpose = match u.kind {
        MailboxKind::User => "user",
        MailboxKind::Room => "room",
        MailboxKind::Equipment => "equipment",
        MailboxKind::Shared => "shared",
    };
    let wh = &u.working_hours;
    let body = json!({
        "@odata.context": wire::context_url(st.base_url(), &format!("{}/mailboxSettings", context_fragment(r))),
        "archiveFolder": "",
        "timeZone": u.time_zone,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": purpose,
        "automaticRepliesSetting": {
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": {"dateTime": "2020-01-01T00:00:00.0000000", "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": "2020-01-02T00:00:00.0000000", "timeZone": "UTC"},
        },
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": wh.days_of_week.iter().map(|d| wire::day_of_week_name(*d)).collect::<Vec<_>>(),
            "startTime": fmt_time(wh.start_time),
            "endTime": fmt_time(wh.end_time),
            "timeZone": {"name": wh.time_zone},
        },
    });
    Ok(json_response(StatusCode::OK, body, None))
}

// ---------------------------------------------------------------------------------------------
// Calendars
// ---------------------------------------------------------------------------------------------

fn calendar_json(c: &Calendar, owner: &User) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "color": c.color,
        "hexColor": "",
        "isDefaultCalendar": c.is_default,
        "changeKey": c.change_key,
        "canShare": true,
        "canViewPrivateItems": true,
        "canEdit": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": true,
        "isRemovable": !c.is_default,
        "owner": {"name": owner.display_name, "address": owner.mail},
    })
}

/// `@odata.id` of a calendar as Graph writes it (Outlook's entity id:
/// `users('{object id}@{tenant id}')/calendars('{id}')`).
fn calendar_odata_id(st: &St, u: &User, tenant_id: Uuid, cid: &str) -> String {
    format!(
        "{}/v1.0/users('{}@{}')/calendars('{}')",
        st.base_url(),
        u.id,
        tenant_id,
        cid.replace('\'', "''")
    )
}

/// Adds `@odata.id` to a calendar's JSON.
fn with_calendar_id(mut v: Value, st: &St, u: &User, tenant_id: Uuid, cid: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.id".into(),
            json!(calendar_odata_id(st, u, tenant_id, cid)),
        );
    }
    v
}

async fn list_calendars(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    uri: OriginalUri,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Read).await?;
    let query = parse_query(q.as_deref())?;
    let top = wire::parse_top(&query, DEFAULT_PAGE_SIZE)?;
    let skip = wire::parse_skip(&query)?;
    let select = wire::parse_select(&query);
    let values: Vec<Value> = {
        let dir = st.dir();
        let u = user_ref(&dir, &p, uid)?;
        u.calendars
            .iter()
            .map(|c| {
                let v = select_fields(calendar_json(c, u), select.as_deref());
                with_calendar_id(v, &st, u, p.tenant_id, &c.id)
            })
            .collect()
    };
    let (page, next) = wire::paginate(values, skip, top);
    let next = next.map(|s| wire::next_link(st.base_url(), &graph_path(&uri), &query, s));
    let ctx = wire::context_url(
        st.base_url(),
        &wire::with_select(
            &format!("{}/calendars", context_fragment(&r)),
            select.as_deref(),
        ),
    );
    Ok(json_response(
        StatusCode::OK,
        wire::odata_page(&ctx, page, next),
        None,
    ))
}

async fn get_calendar(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Read).await?;
    let query = parse_query(q.as_deref())?;
    let select = wire::parse_select(&query);
    let dir = st.dir();
    let u = user_ref(&dir, &p, uid)?;
    if let Some(cid) = params.get("cid") {
        check_id(cid)?;
    }
    let c = calendar_of(u, &params)?;
    let mut v = with_calendar_id(
        select_fields(calendar_json(c, u), select.as_deref()),
        &st,
        u,
        p.tenant_id,
        &c.id,
    );
    let frag = match params.get("cid") {
        Some(_) => format!("{}/calendars/$entity", context_fragment(&r)),
        None => format!("{}/calendar/$entity", context_fragment(&r)),
    };
    v["@odata.context"] = json!(wire::context_url(st.base_url(), &frag));
    Ok(json_response(StatusCode::OK, v, None))
}

// ---------------------------------------------------------------------------------------------
// Events: $filter and $orderby
// ---------------------------------------------------------------------------------------------

/// The `$filter` forms supported on `/events`.
#[derive(Debug, Clone, PartialEq)]
enum EventFilter {
    /// `singleValueExtendedProperties/Any(ep: ep/id eq '…' [and ep/value eq '…'])`.
    ExtProp { id: String, value: Option<String> },
    /// `iCalUId eq '…'`, `subject eq '…'`, `type eq '…'`, `transactionId eq '…'`.
    Eq { prop: String, value: String },
}

fn bad_filter() -> GraphError {
    GraphError::bad_request("BadRequest", "Invalid filter clause")
}

fn parse_event_filter(raw: &str) -> GraphResult<Vec<EventFilter>> {
    // Top-level `and` between clauses (outside parentheses).
    let mut clauses = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut start = 0;
    let lower = raw.to_ascii_lowercase();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ if !quoted && depth == 0 && lower[i..].starts_with(" and ") => {
                clauses.push(raw[start..i].to_owned());
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    clauses.push(raw[start..].to_owned());
    clauses
        .iter()
        .map(|c| parse_filter_clause(c.trim()))
        .collect()
}

fn parse_filter_clause(c: &str) -> GraphResult<EventFilter> {
    let lower = c.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("singlevalueextendedproperties/any(") {
        let inner_orig = &c[c.len() - rest.len()..];
        let inner = inner_orig.strip_suffix(')').ok_or_else(bad_filter)?;
        let (var, body) = inner.split_once(':').ok_or_else(bad_filter)?;
        let var = var.trim();
        if var.is_empty() {
            return Err(bad_filter());
        }
        let mut id = None;
        let mut value = None;
        for part in wire::split_keyword(body, " and ") {
            let (l, r) = wire::split_eq(part.trim()).ok_or_else(bad_filter)?;
            let l = l.trim();
            let member = l
                .strip_prefix(var)
                .and_then(|m| m.strip_prefix('/'))
                .ok_or_else(bad_filter)?;
            let v = wire::unquote(&r).ok_or_else(bad_filter)?;
            if member.eq_ignore_ascii_case("id") {
                id = Some(v);
            } else if member.eq_ignore_ascii_case("value") {
                value = Some(v);
            } else {
                return Err(bad_filter());
            }
        }
        let id = id.ok_or_else(bad_filter)?;
        return Ok(EventFilter::ExtProp { id, value });
    }
    let (l, r) = wire::split_eq(c).ok_or_else(bad_filter)?;
    let prop = l.trim().to_owned();
    if ![
        "iCalUId",
        "subject",
        "type",
        "transactionId",
        "showAs",
        "sensitivity",
    ]
    .iter()
    .any(|p| p.eq_ignore_ascii_case(&prop))
    {
        return Err(bad_filter());
    }
    Ok(EventFilter::Eq {
        prop: prop.to_ascii_lowercase(),
        value: wire::unquote(&r).ok_or_else(bad_filter)?,
    })
}

fn matches_filter(i: &Instance, f: &EventFilter) -> bool {
    match f {
        EventFilter::ExtProp { id, value } => i
            .extended_properties
            .iter()
            .any(|p| p.id.eq_ignore_ascii_case(id) && value.as_ref().is_none_or(|v| *v == p.value)),
        EventFilter::Eq { prop, value } => {
            let actual = match prop.as_str() {
                "icaluid" => i.ical_uid.clone(),
                "subject" => i.data.subject.clone(),
                "type" => i.kind.as_str().to_owned(),
                "transactionid" => i.transaction_id.clone().unwrap_or_default(),
                "showas" => serde_json::to_value(i.data.show_as)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                _ => serde_json::to_value(i.data.sensitivity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            };
            if prop == "subject" {
                actual == *value
            } else {
                actual.eq_ignore_ascii_case(value)
            }
        }
    }
}

fn sort_events(items: &mut [Instance], orderby: Option<&str>) -> GraphResult<()> {
    let Some(ob) = orderby else {
        items.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        return Ok(());
    };
    let mut keys = Vec::new();
    for part in ob.split(',') {
        let mut words = part.split_whitespace();
        let prop = words.next().unwrap_or_default().to_ascii_lowercase();
        let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    "Invalid $orderby clause",
                ));
            }
        };
        if !matches!(
            prop.as_str(),
            "start/datetime"
                | "end/datetime"
                | "createddatetime"
                | "lastmodifieddatetime"
                | "subject"
        ) {
            return Err(GraphError::bad_request(
                "BadRequest",
                format!("The $orderby property '{prop}' is not supported."),
            ));
        }
        keys.push((prop, desc));
    }
    items.sort_by(|a, b| {
        for (prop, desc) in &keys {
            let o = match prop.as_str() {
                "start/datetime" => a.start.cmp(&b.start),
                "end/datetime" => a.end.cmp(&b.end),
                "createddatetime" => a.created.cmp(&b.created),
                "lastmodifieddatetime" => a.last_modified.cmp(&b.last_modified),
                _ => a.data.subject.cmp(&b.data.subject),
            };
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events: list, get, create, update, delete, instances
// ---------------------------------------------------------------------------------------------

async fn list_events(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    uri: OriginalUri,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Read).await?;
    let query = parse_query(q.as_deref())?;
    let o = list_opts(&query, &headers, DEFAULT_PAGE_SIZE)?;
    let filters = wire::query_get(&query, "$filter")
        .map(parse_event_filter)
        .transpose()?
        .unwrap_or_default();
    if let Some(cid) = params.get("cid") {
        check_id(cid)?;
    }
    let (page, next, mailbox) = {
        let dir = st.dir();
        let u = user_ref(&dir, &p, uid)?;
        let cal = calendar_of(u, &params)?;
        let mut items: Vec<Instance> = cal
            .events
            .values()
            .map(expand::master_view)
            .filter(|i| filters.iter().all(|f| matches_filter(i, f)))
            .collect();
        sort_events(&mut items, wire::query_get(&query, "$orderby"))?;
        let (page, next) = wire::paginate(items, o.skip, o.top);
        (page, next, u.mail.clone())
    };
    let ro = render_opts(&o, &mailbox);
    let values: Vec<Value> = page.iter().map(|i| wire::event_json(i, &ro)).collect();
    let next = next.map(|s| wire::next_link(st.base_url(), &graph_path(&uri), &query, s));
    let coll = match params.get("cid") {
        Some(cid) => format!("{}/calendars('{}')/events", context_fragment(&r), cid),
        None => format!("{}/events", context_fragment(&r)),
    };
    let ctx = wire::context_url(
        st.base_url(),
        &wire::with_select(&coll, o.select.as_deref()),
    );
    Ok(json_response(
        StatusCode::OK,
        wire::odata_page(&ctx, values, next),
        o.prefer.as_ref(),
    ))
}

fn entity_context(st: &St, r: &str, select: Option<&[String]>) -> String {
    wire::context_url(
        st.base_url(),
        &format!(
            "{}/$entity",
            wire::with_select(&format!("{}/events", context_fragment(r)), select)
        ),
    )
}

/// The answer to a create or update: the event as written. Graph's answers leave out what
/// the client did not set, such as an empty `uniqueId` in `locations`.
fn entity_response(
    st: &St,
    r: &str,
    inst: &Instance,
    o: &ListOpts,
    mailbox: &str,
    status: StatusCode,
) -> Response {
    let mut v = wire::event_json(inst, &render_opts(o, mailbox));
    wire::strip_unset_unique_ids(&mut v);
    entity_body_response(st, r, v, o, status, Vec::new())
}

/// `@odata.context` first, then the event, then OData annotations (`@odata.id`, navigation
/// links).
fn entity_body_response(
    st: &St,
    r: &str,
    mut v: Value,
    o: &ListOpts,
    status: StatusCode,
    annotations: Vec<(String, Value)>,
) -> Response {
    if let Some(m) = v.as_object_mut() {
        let mut out = serde_json::Map::new();
        out.insert(
            "@odata.context".into(),
            json!(entity_context(st, r, o.select.as_deref())),
        );
        out.extend(std::mem::take(m));
        out.extend(annotations);
        v = Value::Object(out);
    }
    json_response(status, v, o.prefer.as_ref())
}

/// The annotations Graph puts on an event it reads by id: the `calendar` navigation
/// property's `associationLink` and `navigationLink` (`users('{object id}')/calendars('{id}')`),
/// and with `$expand` the entity's `@odata.id` (`users('{object id}@{tenant id}')/events('{id}')`,
/// as in Graph's `$expand=singleValueExtendedProperties` examples).
fn event_read_annotations(
    st: &St,
    u: &User,
    tenant_id: Uuid,
    cid: &str,
    eid: &str,
    expanded: bool,
) -> Vec<(String, Value)> {
    let calendar = format!(
        "{}/v1.0/users('{}')/calendars('{}')",
        st.base_url(),
        u.id,
        cid.replace('\'', "''")
    );
    let mut out = vec![
        (
            "calendar@odata.associationLink".to_owned(),
            json!(format!("{calendar}/$ref")),
        ),
        ("calendar@odata.navigationLink".to_owned(), json!(calendar)),
    ];
    if expanded {
        out.push((
            "@odata.id".to_owned(),
            json!(format!(
                "{}/v1.0/users('{}@{}')/events('{}')",
                st.base_url(),
                u.id,
                tenant_id,
                eid.replace('\'', "''")
            )),
        ));
    }
    out
}

async fn get_event(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Read).await?;
    let query = parse_query(q.as_deref())?;
    let o = list_opts(&query, &headers, DEFAULT_PAGE_SIZE)?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    let (inst, mailbox, annotations) = {
        let dir = st.dir();
        let u = user_ref(&dir, &p, uid)?;
        let (cal, inst) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
        let annotations =
            event_read_annotations(&st, u, p.tenant_id, &cal.id, &inst.id, o.expand.is_some());
        (inst, u.mail.clone(), annotations)
    };
    let v = wire::event_json(&inst, &render_opts(&o, &mailbox));
    Ok(entity_body_response(
        &st,
        &r,
        v,
        &o,
        StatusCode::OK,
        annotations,
    ))
}

pub(super) fn read_body(body: Result<Bytes, BytesRejection>) -> GraphResult<Value> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request body is too large.",
            )
        } else {
            GraphError::bad_request("BadRequest", e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        GraphError::bad_request(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })
}

/// Replaces or adds extended properties by id (case-insensitive).
fn merge_ext(
    dst: &mut Vec<crate::model::ExtendedProperty>,
    src: Vec<crate::model::ExtendedProperty>,
) {
    for p in src {
        match dst.iter_mut().find(|d| d.id.eq_ignore_ascii_case(&p.id)) {
            Some(d) => d.value = p.value,
            None => dst.push(p),
        }
    }
}

async fn create_event(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Write).await?;
    let query = parse_query(q.as_deref())?;
    let o = list_opts(&query, &headers, DEFAULT_PAGE_SIZE)?;
    if let Some(cid) = params.get("cid") {
        check_id(cid)?;
    }
    let v = read_body(body)?;
    let now = st.now();
    let (inst, mailbox) = {
        let mut dir = st.dir();
        let u = user_mut(&mut dir, &p, uid)?;
        let defaults = wire::EventDefaults {
            organizer: EmailAddress {
                name: u.display_name.clone(),
                address: u.mail.clone(),
            },
        };
        let mailbox = u.mail.clone();
        let parsed = wire::parse_event_input(&v, None, &defaults)?;
        let cal = calendar_of_mut(u, &params)?;
        // transactionId de-duplication: a retried create returns the event made the first time.
        if let Some(tx) = &parsed.transaction_id
            && let Some(existing) = cal.transactions.get(tx).and_then(|id| cal.events.get(id))
        {
            let inst = expand::master_view(existing);
            drop(dir);
            return Ok(entity_response(
                &st,
                &r,
                &inst,
                &o,
                &mailbox,
                StatusCode::CREATED,
            ));
        }
        let mut ext = Vec::new();
        merge_ext(&mut ext, parsed.extended_properties.unwrap_or_default());
        let mut ev = StoredEvent {
            id: new_item_id(),
            ical_uid: new_ical_uid(),
            change_key: new_change_key(),
            created: now,
            last_modified: now,
            transaction_id: parsed.transaction_id.clone(),
            data: parsed.data,
            recurrence: parsed.recurrence.flatten(),
            exceptions: Default::default(),
            cancelled: Default::default(),
            extended_properties: ext,
        };
        if let Some(tx) = &parsed.transaction_id {
            cal.transactions.insert(tx.clone(), ev.id.clone());
        }
        meetings::prepare_new(&mut ev, &mailbox);
        // The answer shows the item as written; resources answer right after (in Exchange a
        // few seconds later), changing the organizer's item again.
        let inst = expand::master_view(&ev);
        let id = ev.id.clone();
        cal.events.insert(id.clone(), ev);
        meetings::after_write(tenant_mut(&mut dir, &p)?, uid, None, &id, None, now);
        (inst, mailbox)
    };
    Ok(entity_response(
        &st,
        &r,
        &inst,
        &o,
        &mailbox,
        StatusCode::CREATED,
    ))
}

async fn update_event(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Write).await?;
    let query = parse_query(q.as_deref())?;
    let o = list_opts(&query, &headers, DEFAULT_PAGE_SIZE)?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    let v = read_body(body)?;
    let now = st.now();
    let (inst, mailbox) = {
        let mut dir = st.dir();
        let u = user_mut(&mut dir, &p, uid)?;
        let mailbox = u.mail.clone();
        let defaults = wire::EventDefaults {
            organizer: EmailAddress {
                name: u.display_name.clone(),
                address: u.mail.clone(),
            },
        };
        let (cal_id, found) = {
            let (c, i) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
            (c.id.clone(), i)
        };
        let cal = u
            .calendar_mut(&cal_id)
            .ok_or_else(GraphError::item_not_found)?;
        let parsed = wire::parse_event_input(&v, Some(&found.data), &defaults)?;
        let (inst, before, stored_id, occurrence) = match found.kind {
            InstanceKind::SingleInstance | InstanceKind::SeriesMaster => {
                let ev = cal
                    .events
                    .get_mut(&eid)
                    .ok_or_else(GraphError::item_not_found)?;
                let before = ev.clone();
                let old_start = ev.data.start.clone();
                ev.data = parsed.data;
                match parsed.recurrence {
                    Some(None) => {
                        ev.recurrence = None;
                        ev.exceptions.clear();
                        ev.cancelled.clear();
                    }
                    Some(Some(rec)) => {
                        if ev.recurrence.as_ref() != Some(&rec) {
                            // Exchange drops exceptions and deletions when the pattern changes.
                            ev.exceptions.clear();
                            ev.cancelled.clear();
                        }
                        ev.recurrence = Some(rec);
                    }
                    None => {
                        if ev.recurrence.is_some() && ev.data.start != old_start {
                            ev.exceptions.clear();
                            ev.cancelled.clear();
                        }
                    }
                }
                if let Some(ext) = parsed.extended_properties {
                    merge_ext(&mut ev.extended_properties, ext);
                }
                meetings::keep_tracking(ev, &before, &mailbox);
                ev.touch(now);
                (expand::master_view(ev), before, eid.clone(), None)
            }
            InstanceKind::Occurrence | InstanceKind::Exception => {
                if matches!(parsed.recurrence, Some(Some(_))) {
                    return Err(GraphError::bad_request(
                        "ErrorInvalidRequest",
                        "An occurrence of a recurring series cannot have its own recurrence.",
                    ));
                }
                let master_id = found.series_master_id.clone().unwrap_or_default();
                let orig = found
                    .original_start
                    .ok_or_else(GraphError::item_not_found)?;
                let ev = cal
                    .events
                    .get_mut(&master_id)
                    .ok_or_else(GraphError::item_not_found)?;
                let before = ev.clone();
                let x = ev
                    .exceptions
                    .entry(orig)
                    .or_insert_with(|| ExceptionOccurrence {
                        id: found.id.clone(),
                        data: found.data.clone(),
                        last_modified: now,
                        change_key: new_change_key(),
                    });
                x.data = parsed.data;
                x.last_modified = now;
                x.change_key = new_change_key();
                if let Some(ext) = parsed.extended_properties {
                    merge_ext(&mut ev.extended_properties, ext);
                }
                meetings::keep_tracking(ev, &before, &mailbox);
                ev.touch(now);
                let c: &Calendar = cal;
                let inst =
                    expand::find_instance(c, &found.id).ok_or_else(GraphError::item_not_found)?;
                (inst, before, master_id, Some(orig))
            }
        };
        meetings::after_write(
            tenant_mut(&mut dir, &p)?,
            uid,
            Some(&before),
            &stored_id,
            occurrence,
            now,
        );
        (inst, mailbox)
    };
    Ok(entity_response(
        &st,
        &r,
        &inst,
        &o,
        &mailbox,
        StatusCode::OK,
    ))
}

async fn delete_event(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Write).await?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    let now = st.now();
    let mut dir = st.dir();
    let u = user_mut(&mut dir, &p, uid)?;
    let (cal_id, found) = {
        let (c, i) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
        (c.id.clone(), i)
    };
    let cal = u
        .calendar_mut(&cal_id)
        .ok_or_else(GraphError::item_not_found)?;
    match found.kind {
        InstanceKind::SingleInstance | InstanceKind::SeriesMaster => {
            let removed = cal.events.remove(&eid);
            cal.transactions.retain(|_, id| *id != eid);
            // Deleting a meeting in the organizer's calendar cancels it for its attendees.
            if let Some(ev) = removed {
                meetings::after_delete(tenant_mut(&mut dir, &p)?, uid, &ev, now);
            }
        }
        InstanceKind::Occurrence | InstanceKind::Exception => {
            let master_id = found.series_master_id.unwrap_or_default();
            let orig = found
                .original_start
                .ok_or_else(GraphError::item_not_found)?;
            let ev = cal
                .events
                .get_mut(&master_id)
                .ok_or_else(GraphError::item_not_found)?;
            let before = ev.clone();
            ev.exceptions.remove(&orig);
            ev.cancelled.insert(orig);
            ev.touch(now);
            meetings::after_write(
                tenant_mut(&mut dir, &p)?,
                uid,
                Some(&before),
                &master_id,
                Some(orig),
                now,
            );
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_instances(
    State(st): State<St>,
    p: Principal,
    Path(params): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    uri: OriginalUri,
) -> GraphResult<Response> {
    let r = param(&params, "user").to_owned();
    let uid = enter_mailbox(&st, &p, &r, Need::Read).await?;
    let query = parse_query(q.as_deref())?;
    let o = list_opts(&query, &headers, DEFAULT_PAGE_SIZE)?;
    let eid = param(&params, "eid").to_owned();
    check_id(&eid)?;
    let (ws, we) = wire::parse_window(&query)?;
    let (page, next, mailbox) = {
        let dir = st.dir();
        let u = user_ref(&dir, &p, uid)?;
        let (cal, found) = locate(u, &params, &eid).ok_or_else(GraphError::item_not_found)?;
        let items = match cal.events.get(&eid) {
            Some(ev) => expand::event_instances(ev, ws, we),
            // An occurrence or exception id: itself, if it is in the window.
            None => {
                let overlaps = found.start < we
                    && (found.end > ws || (found.start == found.end && found.start == ws));
                if overlaps { vec![found] } else { Vec::new() }
            }
        };
        let (page, next) = wire::paginate(items, o.skip, o.top);
        (page, next, u.mail.clone())
    };
    let ro = render_opts(&o, &mailbox);
    let values: Vec<Value> = page.iter().map(|i| wire::event_json(i, &ro)).collect();
    let next = next.map(|s| wire::next_link(st.base_url(), &graph_path(&uri), &query, s));
    let coll = format!(
        "{}/events('{}')/instances",
        context_fragment(&r),
        wire::url_encode(&eid)
    );
    let ctx = wire::context_url(
        st.base_url(),
        &wire::with_select(&coll, o.select.as_deref()),
    );
    Ok(json_response(
        StatusCode::OK,
        wire::odata_page(&ctx, values, next),
        o.prefer.as_ref(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ext_prop_filter_parses() {
        let f = parse_event_filter(
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color' and ep/value eq 'Green')",
        )
        .unwrap();
        assert_eq!(
            f,
            vec![EventFilter::ExtProp {
                id: "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color".into(),
                value: Some("Green".into())
            }]
        );
        assert!(parse_event_filter("contains(subject, 'x')").is_err());
        let f = parse_event_filter("iCalUId eq 'abc' and subject eq 'it''s'").unwrap();
        assert_eq!(f.len(), 2);
    }
}
