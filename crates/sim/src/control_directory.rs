//! Control API for the directory: the tenant, mailboxes (users, rooms, equipment), groups, room
//! lists, the simulated clock and the published credentials.
//!
//! - `GET /_sim/tenant`
//! - `GET|POST /_sim/mailboxes`, `GET|PATCH|DELETE /_sim/mailboxes/{addr}`
//! - `GET|POST /_sim/groups`, `GET|DELETE /_sim/groups/{mail}`,
//!   `POST /_sim/groups/{mail}/members`, `DELETE /_sim/groups/{mail}/members/{addr}`
//! - `GET|POST /_sim/room-lists`, `GET|DELETE /_sim/room-lists/{email}`,
//!   `POST /_sim/room-lists/{email}/rooms`, `DELETE /_sim/room-lists/{email}/rooms/{addr}`
//! - `GET|POST /_sim/clock`
//! - `GET /_sim/credentials`
//!
//! Documented in `docs/sim/control-directory.md`. Errors are Graph-shaped: 400 `BadRequest`
//! for bad input, 404 `ErrorInvalidUser`/`NotFound` for unknown objects, 409 `Conflict` for
//! duplicates.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use calgate_recurrence::DayOfWeek;
use jiff::Timestamp;
use jiff::civil::Time;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::EmptyBody;
use crate::error::GraphError;
use crate::model::{Calendar, Group, MailboxKind, RoomInfo, RoomList, Tenant, User, WorkingHours};
use crate::state::SimState;

type St = Arc<SimState>;
type Res = Result<Response, GraphError>;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/tenant", get(get_tenant))
        .route("/mailboxes", get(list_mailboxes).post(create_mailbox))
        .route(
            "/mailboxes/{id}",
            get(get_mailbox).patch(patch_mailbox).delete(delete_mailbox),
        )
        .route("/groups", get(list_groups).post(create_group))
        .route("/groups/{id}", get(get_group).delete(delete_group))
        .route("/groups/{id}/members", post(add_members))
        .route("/groups/{id}/members/{member}", delete(remove_member))
        .route("/room-lists", get(list_room_lists).post(create_room_list))
        .route(
            "/room-lists/{id}",
            get(get_room_list).delete(delete_room_list),
        )
        .route("/room-lists/{id}/rooms", post(add_rooms))
        .route("/room-lists/{id}/rooms/{member}", delete(remove_room))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/credentials", get(get_credentials))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

fn conflict(msg: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::CONFLICT, "Conflict", msg)
}

fn no_mailbox(r: &str) -> GraphError {
    GraphError::not_found(
        "ErrorInvalidUser",
        format!("No mailbox '{r}' in the simulated tenant."),
    )
}

fn not_found(what: &str, r: &str) -> GraphError {
    GraphError::not_found(
        "NotFound",
        format!("No {what} '{r}' in the simulated tenant."),
    )
}

fn no_tenant() -> GraphError {
    GraphError::not_found("NotFound", "The simulator hosts no tenant.")
}

/// A JSON object body; required.
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GraphError> {
    crate::control::parse_object(body, EmptyBody::Rejected, "BadRequest")
}

fn json_status(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The tenant holding `addr` (a mailbox id, UPN or mail), or `None`.
fn tenant_of_user<'a>(dir: &'a mut crate::model::Directory, r: &str) -> Option<&'a mut Tenant> {
    dir.tenants.iter_mut().find(|t| t.user_id(r).is_some())
}

/// Picks the tenant named by `sel` (id or domain) or the first tenant.
fn pick_tenant<'a>(
    dir: &'a mut crate::model::Directory,
    sel: Option<&str>,
) -> Result<&'a mut Tenant, GraphError> {
    match sel {
        Some(s) => dir.tenant_mut(s).ok_or_else(|| not_found("tenant", s)),
        None => dir.tenants.first_mut().ok_or_else(no_tenant),
    }
}

fn check_address(t: &Tenant, address: &str) -> Result<String, GraphError> {
    let a = address.trim();
    let valid = a.len() <= 320
        && a.split('@').count() == 2
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
        && a.split('@').all(|p| !p.is_empty());
    if !valid {
        return Err(bad(format!("'{address}' is not a valid email address.")));
    }
    let domain = a.rsplit('@').next().unwrap_or("");
    if !t.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Err(bad(format!(
            "The domain '{domain}' is not a verified domain of the tenant; use one of: {}.",
            t.domains.join(", ")
        )));
    }
    Ok(a.to_owned())
}

/// Whether `address` is already used by a mailbox, group or room list (other than `except`).
fn address_taken(t: &Tenant, address: &str, except: Option<Uuid>) -> bool {
    t.user_id(address).is_some_and(|id| Some(id) != except)
        || t.groups
            .iter()
            .any(|g| g.mail.eq_ignore_ascii_case(address) && Some(g.id) != except)
        || t.room_lists
            .iter()
            .any(|l| l.email.eq_ignore_ascii_case(address) && Some(l.id) != except)
}

/// Refuses an `address` already used by a mailbox, group or room list (other than `except`).
fn ensure_address_free(t: &Tenant, address: &str, except: Option<Uuid>) -> Result<(), GraphError> {
    if address_taken(t, address, except) {
        return Err(conflict(format!(
            "A mailbox, group or room list with address '{address}' already exists."
        )));
    }
    Ok(())
}

fn check_zone(z: &str) -> Result<String, GraphError> {
    if calgate_tz::to_iana(z).is_some() {
        Ok(z.trim().to_owned())
    } else {
        Err(bad(format!(
            "Unknown time zone '{z}': use a Windows name (\"W. Europe Standard Time\") or an IANA name (\"Europe/Amsterdam\")."
        )))
    }
}

fn parse_kind(s: &str) -> Result<MailboxKind, GraphError> {
    match s.to_ascii_lowercase().as_str() {
        "user" => Ok(MailboxKind::User),
        "room" => Ok(MailboxKind::Room),
        "equipment" => Ok(MailboxKind::Equipment),
        "shared" => Ok(MailboxKind::Shared),
        _ => Err(bad(format!(
            "Unknown mailbox kind '{s}' (expected user, room, equipment or shared)."
        ))),
    }
}

fn kind_str(k: MailboxKind) -> &'static str {
    match k {
        MailboxKind::User => "user",
        MailboxKind::Room => "room",
        MailboxKind::Equipment => "equipment",
        MailboxKind::Shared => "shared",
    }
}

fn parse_time(s: &str, field: &str) -> Result<Time, GraphError> {
    s.trim().parse::<Time>().map_err(|_| {
        bad(format!(
            "{field} '{s}' is not a time of day (HH:MM or HH:MM:SS)."
        ))
    })
}

fn event_count(u: &User) -> usize {
    u.calendars.iter().map(|c| c.events.len()).sum()
}

fn mailbox_json(u: &User) -> Value {
    let wh = &u.working_hours;
    let mut v = json!({
        "id": u.id,
        "address": u.mail,
        "user_principal_name": u.upn,
        "display_name": u.display_name,
        "kind": kind_str(u.kind),
        "time_zone": u.time_zone,
        "has_mailbox": u.has_mailbox,
        "account_enabled": u.account_enabled,
        "given_name": u.given_name,
        "surname": u.surname,
        "job_title": u.job_title,
        "department": u.department,
        "office_location": u.office_location,
        "working_hours": {
            "days_of_week": wh.days_of_week.iter().map(|d| Day::from(*d)).collect::<Vec<_>>(),
            "start_time": wh.start_time.strftime("%H:%M:%S").to_string(),
            "end_time": wh.end_time.strftime("%H:%M:%S").to_string(),
            "time_zone": wh.time_zone,
        },
        "calendars": u.calendars.iter().map(|c| json!({
            "id": c.id, "name": c.name, "is_default": c.is_default, "event_count": c.events.len(),
        })).collect::<Vec<_>>(),
        "event_count": event_count(u),
    });
    if let Some(r) = &u.room {
        v["room"] = json!({
            "capacity": r.capacity,
            "building": r.building,
            "floor_number": r.floor_number,
            "floor_label": r.floor_label,
            "is_wheelchair_accessible": r.is_wheelchair_accessible,
            "tags": r.tags,
            "audio_device_name": r.audio_device_name,
            "video_device_name": r.video_device_name,
            "display_device_name": r.display_device_name,
            "booking_type": r.booking_type,
            "phone": r.phone,
            "nickname": r.nickname,
        });
    }
    v
}

fn mail_of(t: &Tenant, id: Uuid) -> Option<String> {
    t.user_by_id(id).map(|u| u.mail.clone())
}

fn group_json(t: &Tenant, g: &Group) -> Value {
    json!({
        "id": g.id,
        "display_name": g.display_name,
        "mail": g.mail,
        "members": g.members.iter().filter_map(|m| mail_of(t, *m)).collect::<Vec<_>>(),
    })
}

fn room_list_json(t: &Tenant, l: &RoomList) -> Value {
    json!({
        "id": l.id,
        "display_name": l.display_name,
        "email": l.email,
        "rooms": l.rooms.iter().filter_map(|m| mail_of(t, *m)).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// Tenant
// ---------------------------------------------------------------------------------------------

async fn get_tenant(State(st): State<St>) -> Res {
    let dir = st.dir();
    let t = dir.tenants.first().ok_or_else(no_tenant)?;
    let (mut users, mut rooms, mut equipment, mut shared) = (0usize, 0usize, 0usize, 0usize);
    let mut mailboxes = 0usize;
    let mut events = 0usize;
    for u in t.users() {
        match u.kind {
            MailboxKind::User => users += 1,
            MailboxKind::Room => rooms += 1,
            MailboxKind::Equipment => equipment += 1,
            MailboxKind::Shared => shared += 1,
        }
        if u.has_mailbox {
            mailboxes += 1;
        }
        events += event_count(u);
    }
    let mut counts =
        json!({"users": users, "rooms": rooms, "equipment": equipment, "shared": shared});
    counts["mailboxes"] = json!(mailboxes);
    counts["events"] = json!(events);
    counts["groups"] = json!(t.groups.len());
    counts["room_lists"] = json!(t.room_lists.len());
    counts["apps"] = json!(t.apps.len());
    let others: Vec<Value> = dir
        .tenants
        .iter()
        .skip(1)
        .map(|o| json!({"id": o.id, "display_name": o.display_name, "domains": o.domains}))
        .collect();
    Ok(axum::Json(json!({
        "id": t.id,
        "display_name": t.display_name,
        "domains": t.domains,
        "default_domain": t.default_domain(),
        "counts": counts,
        "other_tenants": others,
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Mailboxes
// ---------------------------------------------------------------------------------------------

/// A day of the week as the control API spells it (`"monday"`); `calgate_recurrence` has no
/// wire names of its own.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Day {
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

impl From<DayOfWeek> for Day {
    fn from(d: DayOfWeek) -> Day {
        match d {
            DayOfWeek::Sunday => Day::Sunday,
            DayOfWeek::Monday => Day::Monday,
            DayOfWeek::Tuesday => Day::Tuesday,
            DayOfWeek::Wednesday => Day::Wednesday,
            DayOfWeek::Thursday => Day::Thursday,
            DayOfWeek::Friday => Day::Friday,
            DayOfWeek::Saturday => Day::Saturday,
        }
    }
}

impl From<Day> for DayOfWeek {
    fn from(d: Day) -> DayOfWeek {
        match d {
            Day::Sunday => DayOfWeek::Sunday,
            Day::Monday => DayOfWeek::Monday,
            Day::Tuesday => DayOfWeek::Tuesday,
            Day::Wednesday => DayOfWeek::Wednesday,
            Day::Thursday => DayOfWeek::Thursday,
            Day::Friday => DayOfWeek::Friday,
            Day::Saturday => DayOfWeek::Saturday,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkingHoursBody {
    days_of_week: Option<Vec<Day>>,
    start_time: Option<String>,
    end_time: Option<String>,
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RoomBody {
    capacity: Option<i32>,
    building: Option<String>,
    floor_number: Option<i32>,
    floor_label: Option<String>,
    is_wheelchair_accessible: Option<bool>,
    tags: Option<Vec<String>>,
    audio_device_name: Option<String>,
    video_device_name: Option<String>,
    display_device_name: Option<String>,
    booking_type: Option<String>,
    phone: Option<String>,
    nickname: Option<String>,
}

impl RoomBody {
    fn apply(self, r: &mut RoomInfo) -> Result<(), GraphError> {
        if let Some(c) = self.capacity {
            if !(0..=100_000).contains(&c) {
                return Err(bad("room.capacity must be between 0 and 100000."));
            }
            r.capacity = Some(c);
        }
        if let Some(b) = self.booking_type {
            if !["standard", "reserved", "unknown"].contains(&b.as_str()) {
                return Err(bad(
                    "room.booking_type must be standard, reserved or unknown.",
                ));
            }
            r.booking_type = Some(b);
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { r.$f = Some(v); } )* };
        }
        set!(
            building,
            floor_number,
            floor_label,
            audio_device_name,
            video_device_name,
            display_device_name,
            phone,
            nickname
        );
        if let Some(v) = self.is_wheelchair_accessible {
            r.is_wheelchair_accessible = v;
        }
        if let Some(v) = self.tags {
            r.tags = v;
        }
        Ok(())
    }
}

fn apply_working_hours(wh: &mut WorkingHours, b: WorkingHoursBody) -> Result<(), GraphError> {
    if let Some(d) = b.days_of_week {
        wh.days_of_week = d.into_iter().map(DayOfWeek::from).collect();
    }
    if let Some(s) = b.start_time {
        wh.start_time = parse_time(&s, "working_hours.start_time")?;
    }
    if let Some(s) = b.end_time {
        wh.end_time = parse_time(&s, "working_hours.end_time")?;
    }
    if let Some(z) = b.time_zone {
        wh.time_zone = check_zone(&z)?;
    }
    if wh.end_time <= wh.start_time {
        return Err(bad("working_hours.end_time must be after start_time."));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMailbox {
    address: String,
    display_name: Option<String>,
    kind: Option<String>,
    time_zone: Option<String>,
    working_hours: Option<WorkingHoursBody>,
    room: Option<RoomBody>,
    given_name: Option<String>,
    surname: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
    office_location: Option<String>,
    has_mailbox: Option<bool>,
    account_enabled: Option<bool>,
    /// Tenant id or domain; default: the first tenant.
    tenant: Option<String>,
}

async fn list_mailboxes(State(st): State<St>) -> Res {
    let dir = st.dir();
    let t = dir.tenants.first().ok_or_else(no_tenant)?;
    let list: Vec<Value> = t
        .users()
        .map(|u| {
            json!({
                "id": u.id,
                "address": u.mail,
                "display_name": u.display_name,
                "kind": kind_str(u.kind),
                "time_zone": u.time_zone,
                "has_mailbox": u.has_mailbox,
                "account_enabled": u.account_enabled,
                "event_count": event_count(u),
            })
        })
        .collect();
    Ok(axum::Json(json!({"count": list.len(), "mailboxes": list})).into_response())
}

async fn get_mailbox(State(st): State<St>, Path(id): Path<String>) -> Res {
    let dir = st.dir();
    let u = dir
        .tenants
        .iter()
        .find_map(|t| t.user(&id))
        .ok_or_else(|| no_mailbox(&id))?;
    Ok(axum::Json(mailbox_json(u)).into_response())
}

async fn create_mailbox(State(st): State<St>, body: Bytes) -> Res {
    let b: CreateMailbox = parse(&body)?;
    let kind = parse_kind(b.kind.as_deref().unwrap_or("user"))?;
    let zone = check_zone(b.time_zone.as_deref().unwrap_or("UTC"))?;
    let id = Uuid::new_v4();
    let mut dir = st.dir();
    let t = pick_tenant(&mut dir, b.tenant.as_deref())?;
    let address = check_address(t, &b.address)?;
    ensure_address_free(t, &address, None)?;
    let display_name = match b.display_name {
        Some(d) if d.trim().is_empty() => return Err(bad("display_name must not be empty.")),
        Some(d) => d,
        None => address.split('@').next().unwrap_or(&address).to_owned(),
    };
    let mut wh = WorkingHours {
        days_of_week: vec![
            calgate_recurrence::DayOfWeek::Monday,
            calgate_recurrence::DayOfWeek::Tuesday,
            calgate_recurrence::DayOfWeek::Wednesday,
            calgate_recurrence::DayOfWeek::Thursday,
            calgate_recurrence::DayOfWeek::Friday,
        ],
        start_time: Time::constant(8, 0, 0, 0),
        end_time: Time::constant(17, 0, 0, 0),
        time_zone: zone.clone(),
    };
    if let Some(w) = b.working_hours {
        apply_working_hours(&mut wh, w)?;
    }
    let room = match (kind, b.room) {
        (MailboxKind::Room, r) => {
            let mut info = RoomInfo {
                booking_type: Some("standard".into()),
                nickname: Some(display_name.clone()),
                ..RoomInfo::default()
            };
            r.unwrap_or_default().apply(&mut info)?;
            Some(info)
        }
        (_, Some(_)) => return Err(bad("room is only allowed for kind \"room\".")),
        (_, None) => None,
    };
    let mut cal = Calendar::new(crate::model::new_item_id(), "Calendar", true);
    cal.change_key = crate::model::new_change_key();
    let u = User {
        id,
        upn: address.clone(),
        mail: address,
        display_name,
        given_name: b.given_name,
        surname: b.surname,
        job_title: b.job_title,
        department: b.department,
        office_location: b.office_location,
        kind,
        has_mailbox: b.has_mailbox.unwrap_or(true),
        account_enabled: b.account_enabled.unwrap_or(true),
        time_zone: zone,
        working_hours: wh,
        room,
        calendars: vec![cal.into()],
    };
    let v = mailbox_json(&u);
    t.insert_user(u);
    Ok(json_status(StatusCode::CREATED, v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchMailbox {
    /// New primary address (mail and UPN).
    address: Option<String>,
    display_name: Option<String>,
    kind: Option<String>,
    time_zone: Option<String>,
    working_hours: Option<WorkingHoursBody>,
    room: Option<RoomBody>,
    given_name: Option<String>,
    surname: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
    office_location: Option<String>,
    has_mailbox: Option<bool>,
    account_enabled: Option<bool>,
}

async fn patch_mailbox(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let p: PatchMailbox = parse(&body)?;
    let kind = p.kind.as_deref().map(parse_kind).transpose()?;
    let zone = p.time_zone.as_deref().map(check_zone).transpose()?;
    let mut dir = st.dir();
    let t = tenant_of_user(&mut dir, &id).ok_or_else(|| no_mailbox(&id))?;
    let mut u = t.user(&id).cloned().ok_or_else(|| no_mailbox(&id))?;
    if let Some(a) = p.address {
        let a = check_address(t, &a)?;
        ensure_address_free(t, &a, Some(u.id))?;
        u.mail = a.clone();
        u.upn = a;
    }
    if let Some(d) = p.display_name {
        if d.trim().is_empty() {
            return Err(bad("display_name must not be empty."));
        }
        u.display_name = d;
    }
    if let Some(z) = zone {
        u.time_zone = z;
    }
    if let Some(w) = p.working_hours {
        apply_working_hours(&mut u.working_hours, w)?;
    }
    if let Some(k) = kind {
        u.kind = k;
    }
    if u.kind == MailboxKind::Room {
        let mut info = u.room.take().unwrap_or_else(|| RoomInfo {
            booking_type: Some("standard".into()),
            nickname: Some(u.display_name.clone()),
            ..RoomInfo::default()
        });
        if let Some(r) = p.room {
            r.apply(&mut info)?;
        }
        u.room = Some(info);
    } else {
        if p.room.is_some() {
            return Err(bad("room is only allowed for kind \"room\"."));
        }
        u.room = None;
    }
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = p.$f { u.$f = Some(v); } )* };
    }
    set!(given_name, surname, job_title, department, office_location);
    if let Some(v) = p.has_mailbox {
        u.has_mailbox = v;
    }
    if let Some(v) = p.account_enabled {
        u.account_enabled = v;
    }
    if u.kind != MailboxKind::Room {
        for l in &mut t.room_lists {
            l.rooms.retain(|r| *r != u.id);
        }
    }
    let v = mailbox_json(&u);
    t.insert_user(u);
    Ok(axum::Json(v).into_response())
}

async fn delete_mailbox(State(st): State<St>, Path(id): Path<String>) -> Res {
    let mut dir = st.dir();
    let t = tenant_of_user(&mut dir, &id).ok_or_else(|| no_mailbox(&id))?;
    let uid = t.user_id(&id).ok_or_else(|| no_mailbox(&id))?;
    t.remove_user(uid);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    display_name: String,
    mail: String,
    #[serde(default)]
    members: Vec<String>,
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Members {
    address: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    rooms: Vec<String>,
}

impl Members {
    fn all(self) -> Result<Vec<String>, GraphError> {
        let mut v: Vec<String> = self.address.into_iter().collect();
        v.extend(self.members);
        v.extend(self.rooms);
        if v.is_empty() {
            return Err(bad(
                "Give \"address\" (one mailbox) or \"members\" (a list of mailboxes).",
            ));
        }
        Ok(v)
    }
}

fn resolve_all(t: &Tenant, addrs: &[String]) -> Result<Vec<Uuid>, GraphError> {
    addrs
        .iter()
        .map(|a| t.user_id(a).ok_or_else(|| no_mailbox(a)))
        .collect()
}

fn tenant_of_group<'a>(dir: &'a mut crate::model::Directory, r: &str) -> Option<&'a mut Tenant> {
    dir.tenants.iter_mut().find(|t| t.group(r).is_some())
}

fn group_mut<'a>(t: &'a mut Tenant, r: &str) -> Option<&'a mut Group> {
    let id = t.group(r)?.id;
    t.groups.iter_mut().find(|g| g.id == id)
}

async fn list_groups(State(st): State<St>) -> Res {
    let dir = st.dir();
    let t = dir.tenants.first().ok_or_else(no_tenant)?;
    let v: Vec<Value> = t.groups.iter().map(|g| group_json(t, g)).collect();
    Ok(axum::Json(json!({"groups": v})).into_response())
}

async fn get_group(State(st): State<St>, Path(id): Path<String>) -> Res {
    let dir = st.dir();
    let (t, g) = dir
        .tenants
        .iter()
        .find_map(|t| t.group(&id).map(|g| (t, g)))
        .ok_or_else(|| not_found("group", &id))?;
    Ok(axum::Json(group_json(t, g)).into_response())
}

async fn create_group(State(st): State<St>, body: Bytes) -> Res {
    let b: CreateGroup = parse(&body)?;
    if b.display_name.trim().is_empty() {
        return Err(bad("display_name must not be empty."));
    }
    let mut dir = st.dir();
    let t = pick_tenant(&mut dir, b.tenant.as_deref())?;
    let mail = check_address(t, &b.mail)?;
    ensure_address_free(t, &mail, None)?;
    let members: BTreeSet<Uuid> = resolve_all(t, &b.members)?.into_iter().collect();
    let g = Group {
        id: Uuid::new_v4(),
        display_name: b.display_name,
        mail,
        members,
    };
    let v = group_json(t, &g);
    t.groups.push(g);
    Ok(json_status(StatusCode::CREATED, v))
}

async fn delete_group(State(st): State<St>, Path(id): Path<String>) -> Res {
    let mut dir = st.dir();
    let t = tenant_of_group(&mut dir, &id).ok_or_else(|| not_found("group", &id))?;
    let gid = t
        .group(&id)
        .map(|g| g.id)
        .ok_or_else(|| not_found("group", &id))?;
    let used = t.apps.iter().any(|a| {
        a.rbac.iter().any(|r| r.scope_group == Some(gid))
            || a.access_policy.as_ref().is_some_and(|p| p.group == gid)
    });
    if used {
        return Err(conflict(format!(
            "Group '{id}' is the scope of an RBAC assignment or access policy; remove those first."
        )));
    }
    t.groups.retain(|g| g.id != gid);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_members(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Members = parse(&body)?;
    let addrs = b.all()?;
    let mut dir = st.dir();
    let t = tenant_of_group(&mut dir, &id).ok_or_else(|| not_found("group", &id))?;
    let ids = resolve_all(t, &addrs)?;
    let g = group_mut(t, &id).ok_or_else(|| not_found("group", &id))?;
    g.members.extend(ids);
    let g = g.clone();
    Ok(axum::Json(group_json(t, &g)).into_response())
}

async fn remove_member(State(st): State<St>, Path((id, member)): Path<(String, String)>) -> Res {
    let mut dir = st.dir();
    let t = tenant_of_group(&mut dir, &id).ok_or_else(|| not_found("group", &id))?;
    let uid = t.user_id(&member).ok_or_else(|| no_mailbox(&member))?;
    let g = group_mut(t, &id).ok_or_else(|| not_found("group", &id))?;
    if !g.members.remove(&uid) {
        return Err(not_found("member of the group", &member));
    }
    let g = g.clone();
    Ok(axum::Json(group_json(t, &g)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Room lists
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoomList {
    email: String,
    display_name: String,
    #[serde(default)]
    rooms: Vec<String>,
    tenant: Option<String>,
}

fn find_list(t: &Tenant, r: &str) -> Option<Uuid> {
    let id = Uuid::parse_str(r).ok();
    t.room_lists
        .iter()
        .find(|l| Some(l.id) == id || l.email.eq_ignore_ascii_case(r))
        .map(|l| l.id)
}

fn tenant_of_list<'a>(
    dir: &'a mut crate::model::Directory,
    r: &str,
) -> Option<(&'a mut Tenant, Uuid)> {
    dir.tenants
        .iter_mut()
        .find_map(|t| find_list(t, r).map(|id| (t, id)))
}

fn resolve_rooms(t: &Tenant, addrs: &[String]) -> Result<Vec<Uuid>, GraphError> {
    let mut out = Vec::new();
    for a in addrs {
        let u = t.user(a).ok_or_else(|| no_mailbox(a))?;
        if u.kind != MailboxKind::Room {
            return Err(bad(format!(
                "'{a}' is a {} mailbox; only room mailboxes can be in a room list.",
                kind_str(u.kind)
            )));
        }
        out.push(u.id);
    }
    Ok(out)
}

async fn list_room_lists(State(st): State<St>) -> Res {
    let dir = st.dir();
    let t = dir.tenants.first().ok_or_else(no_tenant)?;
    let v: Vec<Value> = t.room_lists.iter().map(|l| room_list_json(t, l)).collect();
    Ok(axum::Json(json!({"room_lists": v})).into_response())
}

async fn get_room_list(State(st): State<St>, Path(id): Path<String>) -> Res {
    let mut dir = st.dir();
    let (t, lid) = tenant_of_list(&mut dir, &id).ok_or_else(|| not_found("room list", &id))?;
    let l = t
        .room_lists
        .iter()
        .find(|l| l.id == lid)
        .ok_or_else(|| not_found("room list", &id))?;
    Ok(axum::Json(room_list_json(t, l)).into_response())
}

async fn create_room_list(State(st): State<St>, body: Bytes) -> Res {
    let b: CreateRoomList = parse(&body)?;
    if b.display_name.trim().is_empty() {
        return Err(bad("display_name must not be empty."));
    }
    let mut dir = st.dir();
    let t = pick_tenant(&mut dir, b.tenant.as_deref())?;
    let email = check_address(t, &b.email)?;
    ensure_address_free(t, &email, None)?;
    let mut rooms = Vec::new();
    for id in resolve_rooms(t, &b.rooms)? {
        if !rooms.contains(&id) {
            rooms.push(id);
        }
    }
    let l = RoomList {
        id: Uuid::new_v4(),
        display_name: b.display_name,
        email,
        rooms,
    };
    let v = room_list_json(t, &l);
    t.room_lists.push(l);
    Ok(json_status(StatusCode::CREATED, v))
}

async fn delete_room_list(State(st): State<St>, Path(id): Path<String>) -> Res {
    let mut dir = st.dir();
    let (t, lid) = tenant_of_list(&mut dir, &id).ok_or_else(|| not_found("room list", &id))?;
    t.room_lists.retain(|l| l.id != lid);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_rooms(State(st): State<St>, Path(id): Path<String>, body: Bytes) -> Res {
    let b: Members = parse(&body)?;
    let addrs = b.all()?;
    let mut dir = st.dir();
    let (t, lid) = tenant_of_list(&mut dir, &id).ok_or_else(|| not_found("room list", &id))?;
    let ids = resolve_rooms(t, &addrs)?;
    let l = t
        .room_lists
        .iter_mut()
        .find(|l| l.id == lid)
        .ok_or_else(|| not_found("room list", &id))?;
    for r in ids {
        if !l.rooms.contains(&r) {
            l.rooms.push(r);
        }
    }
    let l = l.clone();
    Ok(axum::Json(room_list_json(t, &l)).into_response())
}

async fn remove_room(State(st): State<St>, Path((id, member)): Path<(String, String)>) -> Res {
    let mut dir = st.dir();
    let (t, lid) = tenant_of_list(&mut dir, &id).ok_or_else(|| not_found("room list", &id))?;
    let uid = t.user_id(&member).ok_or_else(|| no_mailbox(&member))?;
    let l = t
        .room_lists
        .iter_mut()
        .find(|l| l.id == lid)
        .ok_or_else(|| not_found("room list", &id))?;
    let before = l.rooms.len();
    l.rooms.retain(|r| *r != uid);
    if l.rooms.len() == before {
        return Err(not_found("room in the room list", &member));
    }
    let l = l.clone();
    Ok(axum::Json(room_list_json(t, &l)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Clock and credentials
// ---------------------------------------------------------------------------------------------

fn clock_json(st: &SimState) -> Value {
    let now = st.now();
    let offset = Timestamp::now().duration_until(now).as_secs();
    json!({"now": now.to_string(), "offset_seconds": offset})
}

async fn get_clock(State(st): State<St>) -> Response {
    axum::Json(clock_json(&st)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance_seconds: Option<i64>,
    /// Absolute target time (RFC 3339).
    now: Option<String>,
}

/// At most ~100 years either way, so timestamps stay representable.
const MAX_CLOCK_SHIFT_S: i64 = 100 * 366 * 86_400;

async fn set_clock(State(st): State<St>, body: Bytes) -> Res {
    let b: ClockBody = parse(&body)?;
    let delta = match (b.advance_seconds, b.now) {
        (Some(s), None) => s,
        (None, Some(n)) => {
            let target: Timestamp = n
                .parse()
                .map_err(|e| bad(format!("now '{n}' is not an RFC 3339 timestamp: {e}")))?;
            st.now().duration_until(target).as_secs()
        }
        _ => {
            return Err(bad(
                "Give exactly one of \"advance_seconds\" (an integer) or \"now\" (RFC 3339).",
            ));
        }
    };
    let current = Timestamp::now().duration_until(st.now()).as_secs();
    let total = current.saturating_add(delta);
    if total.abs() > MAX_CLOCK_SHIFT_S {
        return Err(bad(
            "The clock may be moved at most 100 years from the real time.",
        ));
    }
    st.advance_clock(delta);
    Ok(axum::Json(clock_json(&st)).into_response())
}

async fn get_credentials(State(st): State<St>) -> Response {
    let base = st.base_url().to_owned();
    axum::Json(crate::seed::credentials_document(
        &st,
        &base,
        st.ca_cert_pem.get().map(String::as_str),
    ))
    .into_response()
}
