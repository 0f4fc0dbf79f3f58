//! Bookings: the host application's events that calgate pushes into Exchange
//! (`PUT/GET/DELETE /v1/bookings/{external_id}`, `GET /v1/bookings`; `calgate booking …`).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use calgate_core::booking::{
    Booking, BookingMode, BookingSpec, BookingState, BookingTarget, TargetRole,
};
use calgate_core::{ApiScope, MailboxKind, Sensitivity, ShowAs, When};
use calgate_store::Store;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// The longest subject accepted (Exchange keeps 255 characters).
pub const MAX_SUBJECT_CHARS: usize = 255;
/// The longest body accepted.
pub const MAX_BODY_CHARS: usize = 32_000;
/// The longest event accepted.
pub const MAX_EVENT_DAYS: i64 = 366;

/// One calendar of a booking.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarRef {
    /// A linked mailbox's address.
    #[schema(example = "room-amstel@contoso.example")]
    pub address: String,
    /// `organizer`, `attendee`, `room` or `equipment`.
    #[schema(example = "room")]
    pub role: String,
}

/// The host application's event (`PUT /v1/bookings/{external_id}`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    #[schema(example = "Thesis defence")]
    pub subject: String,
    /// Plain text.
    pub body: Option<String>,
    /// A local date-time (`YYYY-MM-DDTHH:MM:SS`) in `time_zone`, or an RFC 3339 instant; a date
    /// (`YYYY-MM-DD`) when `is_all_day`.
    #[schema(example = "2026-12-14T10:00:00")]
    pub start: String,
    /// As `start`; after it (exclusive for all-day dates).
    #[schema(example = "2026-12-14T11:30:00")]
    pub end: String,
    /// IANA zone (default `UTC`).
    #[schema(example = "Europe/Amsterdam")]
    pub time_zone: Option<String>,
    pub is_all_day: Option<bool>,
    pub location: Option<String>,
    /// `busy` (default), `tentative`, `free`, `oof`, `workingElsewhere`.
    pub show_as: Option<String>,
    /// `normal` (default), `personal`, `private`, `confidential`.
    pub sensitivity: Option<String>,
    /// A series (timed bookings only): `start`/`end` are its first occurrence.
    pub recurrence: Option<RecurrenceRequest>,
    /// `direct` (default: a copy in each calendar, no invitations) or `meeting`.
    pub mode: Option<String>,
    pub calendars: Vec<CalendarRef>,
}

/// A booking's series.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceRequest {
    /// An RFC 5545 RRULE with COUNT or UNTIL (`FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`); what
    /// Exchange's patterns cannot express is refused.
    #[schema(example = "FREQ=WEEKLY;BYDAY=MO;COUNT=10")]
    pub rrule: String,
    /// Cancelled occurrences: their original local starts (`YYYY-MM-DDTHH:MM:SS`) in the
    /// booking's zone.
    pub exdates: Option<Vec<String>>,
    /// Moved or renamed occurrences.
    pub overrides: Option<Vec<OverrideRequest>>,
}

/// One occurrence changed.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The occurrence's original local start in the booking's zone.
    pub original_start: String,
    /// Its new start and end: local date-times in the booking's zone, or RFC 3339 instants.
    pub start: String,
    pub end: String,
    pub subject: Option<String>,
}

/// The most occurrences a series may have.
pub const MAX_OCCURRENCES: usize = 730;

/// Checks a series against the booking's first occurrence `when`.
fn parse_recurrence(
    r: &RecurrenceRequest,
    when: &When,
    zone: &TimeZone,
) -> ApiResult<calgate_core::booking::BookingRecurrence> {
    use calgate_core::booking::{BookingRecurrence, OccurrenceOverride};
    use calgate_recurrence::{RangeKind, Recurrence};
    if when.all_day.is_some() {
        return Err(field_error(
            "recurrence",
            "all-day series are not supported yet: give the series times, or put each day as its own booking",
        ));
    }
    let rrule = r.rrule.trim().trim_start_matches("RRULE:");
    let first = when.start.to_zoned(zone.clone()).datetime();
    let rec = Recurrence::from_rrule_local(rrule, first, zone)
        .map_err(|e| field_error("recurrence.rrule", e))?;
    if rec.range.kind == RangeKind::NoEnd {
        return Err(field_error(
            "recurrence.rrule",
            "a series needs an end: add COUNT or UNTIL",
        ));
    }
    let limit = first
        .date()
        .checked_add(jiff::Span::new().years(5))
        .map_err(|e| field_error("recurrence.rrule", e))?;
    let dates = rec
        .dates(limit)
        .map_err(|e| field_error("recurrence.rrule", e))?;
    if dates.len() > MAX_OCCURRENCES {
        return Err(field_error(
            "recurrence.rrule",
            format!("more than {MAX_OCCURRENCES} occurrences: split the series"),
        ));
    }
    if let RangeKind::EndDate(end) = rec.range.kind
        && end > limit
    {
        return Err(field_error(
            "recurrence.rrule",
            "the series runs more than 5 years: split it",
        ));
    }
    let occurrence = |field: &str, v: &str| -> ApiResult<DateTime> {
        let dt: DateTime = v.trim().parse().map_err(|_| {
            field_error(
                field,
                format!(
                    "'{}' is not a local date-time (2026-12-14T10:00:00)",
                    calgate_core::printable(v).trim_matches('\'')
                ),
            )
        })?;
        if dt.time() != first.time() || !dates.contains(&dt.date()) {
            return Err(field_error(
                field,
                format!(
                    "{dt} is not an occurrence of the series (they start at {} local time)",
                    first.time()
                ),
            ));
        }
        Ok(dt)
    };
    let mut exdates = Vec::new();
    for (i, e) in r.exdates.iter().flatten().enumerate() {
        exdates.push(occurrence(&format!("recurrence.exdates[{i}]"), e)?);
    }
    let mut overrides = Vec::new();
    for (i, o) in r.overrides.iter().flatten().enumerate() {
        let f = |k: &str| format!("recurrence.overrides[{i}].{k}");
        let original_start = occurrence(&f("original_start"), &o.original_start)?;
        if exdates.contains(&original_start) {
            return Err(field_error(
                &f("original_start"),
                "that occurrence is cancelled (in exdates)",
            ));
        }
        let (start, end) = (
            instant(&f("start"), &o.start, zone)?,
            instant(&f("end"), &o.end, zone)?,
        );
        if end <= start {
            return Err(field_error(&f("end"), "must be after start"));
        }
        let subject = o
            .subject
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if subject
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SUBJECT_CHARS)
        {
            return Err(field_error(
                &f("subject"),
                format!("is longer than {MAX_SUBJECT_CHARS} characters"),
            ));
        }
        overrides.push(OccurrenceOverride {
            original_start,
            start,
            end,
            subject,
        });
    }
    Ok(BookingRecurrence {
        rrule: rrule.to_owned(),
        exdates,
        overrides,
    })
}

/// One target's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetDto {
    pub address: String,
    pub role: String,
    /// `pending`, `synced`, `failed`, `deleting`, `deleted`, `deleted_in_exchange`.
    pub state: String,
    pub exchange_id: Option<String>,
    pub web_link: Option<String>,
    /// What went wrong last, in an administrator's words.
    pub error: Option<String>,
    /// Meeting mode: this calendar's answer (`accepted`, `tentativelyAccepted`, `declined`,
    /// `notResponded`, `none`); `null` in direct mode.
    pub response: Option<String>,
}

/// A booking and where it stands in Exchange.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookingDto {
    pub external_id: String,
    /// `pending`, `synced` or `failed`.
    pub state: String,
    pub deleted: bool,
    pub subject: String,
    pub start: String,
    pub end: String,
    pub time_zone: String,
    pub is_all_day: bool,
    pub mode: String,
    /// The series' RRULE (`null`: a single event).
    pub rrule: Option<String>,
    pub targets: Vec<TargetDto>,
    pub updated_at: String,
}

impl From<&Booking> for BookingDto {
    fn from(b: &Booking) -> BookingDto {
        BookingDto {
            external_id: b.external_id.clone(),
            state: b.state().as_str().to_owned(),
            deleted: b.deleted,
            subject: b.spec.subject.clone(),
            start: b.spec.when.start.to_string(),
            end: b.spec.when.end.to_string(),
            time_zone: b.spec.when.time_zone.clone(),
            is_all_day: b.spec.when.all_day.is_some(),
            mode: b.spec.mode.as_str().to_owned(),
            rrule: b.spec.recurrence.as_ref().map(|r| r.rrule.clone()),
            targets: b
                .targets
                .iter()
                .map(|t| TargetDto {
                    address: t.address.clone(),
                    role: t.role.as_str().to_owned(),
                    state: t.state.as_str().to_owned(),
                    exchange_id: t.exchange_id.clone(),
                    web_link: t.web_link.clone(),
                    error: t.error.clone(),
                    response: t.response.clone(),
                })
                .collect(),
            updated_at: b.updated_at.to_string(),
        }
    }
}

fn field_error(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(format!("{field}: {why}"))
}

/// A point of a timed booking: an RFC 3339 instant, or a local date-time in `zone`.
fn instant(field: &str, v: &str, zone: &TimeZone) -> ApiResult<Timestamp> {
    let v = v.trim();
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t);
    }
    let dt: DateTime = v.parse().map_err(|_| {
        field_error(
            field,
            format!(
                "'{}' is not a local date-time (2026-12-14T10:00:00) or an RFC 3339 instant",
                calgate_core::printable(v).trim_matches('\'')
            ),
        )
    })?;
    dt.to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .map_err(|e| field_error(field, e))
}

fn date(field: &str, v: &str) -> ApiResult<Date> {
    v.trim().parse::<Date>().map_err(|_| {
        field_error(
            field,
            format!(
                "'{}' is not a date (2026-12-14): an all-day booking takes dates",
                calgate_core::printable(v).trim_matches('\'')
            ),
        )
    })
}

fn show_as(v: Option<&str>) -> ApiResult<ShowAs> {
    Ok(match v.map(str::trim) {
        None | Some("busy") => ShowAs::Busy,
        Some("free") => ShowAs::Free,
        Some("tentative") => ShowAs::Tentative,
        Some("oof") => ShowAs::Oof,
        Some("workingElsewhere") => ShowAs::WorkingElsewhere,
        Some(other) => {
            return Err(field_error(
                "show_as",
                format!(
                    "'{}' is not one of busy, tentative, free, oof, workingElsewhere",
                    calgate_core::printable(other).trim_matches('\'')
                ),
            ));
        }
    })
}

/// Checks a request against the linked mailboxes and makes the booking's spec. Errors name the
/// field (`calendars[1].role: …`).
pub async fn parse_request(store: &dyn Store, req: &BookingRequest) -> ApiResult<BookingSpec> {
    let subject = req.subject.trim();
    if subject.is_empty() {
        return Err(field_error("subject", "is empty"));
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(field_error(
            "subject",
            format!("is longer than {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    if req
        .body
        .as_ref()
        .is_some_and(|b| b.chars().count() > MAX_BODY_CHARS)
    {
        return Err(field_error(
            "body",
            format!("is longer than {MAX_BODY_CHARS} characters"),
        ));
    }
    let zone_name = req.time_zone.as_deref().map(str::trim).unwrap_or("UTC");
    let zone = TimeZone::get(zone_name).map_err(|_| {
        field_error(
            "time_zone",
            format!(
                "'{}' is not an IANA time zone (Europe/Amsterdam, America/New_York, UTC)",
                calgate_core::printable(zone_name).trim_matches('\'')
            ),
        )
    })?;
    let when = if req.is_all_day.unwrap_or(false) {
        let (s, e) = (date("start", &req.start)?, date("end", &req.end)?);
        if e <= s {
            return Err(field_error(
                "end",
                "must be after start (the end date is exclusive: a one-day booking ends the next day)",
            ));
        }
        let at = |d: Date, f: &str| {
            d.to_zoned(zone.clone())
                .map(|z| z.timestamp())
                .map_err(|e| field_error(f, e))
        };
        When {
            start: at(s, "start")?,
            end: at(e, "end")?,
            time_zone: zone_name.to_owned(),
            all_day: Some((s, e)),
        }
    } else {
        let (s, e) = (
            instant("start", &req.start, &zone)?,
            instant("end", &req.end, &zone)?,
        );
        if e <= s {
            return Err(field_error("end", "must be after start"));
        }
        When {
            start: s,
            end: e,
            time_zone: zone_name.to_owned(),
            all_day: None,
        }
    };
    if when.end.duration_since(when.start) > SignedDuration::from_hours(24 * MAX_EVENT_DAYS) {
        return Err(field_error(
            "end",
            format!("a booking lasts at most {MAX_EVENT_DAYS} days"),
        ));
    }
    let recurrence = req
        .recurrence
        .as_ref()
        .map(|r| parse_recurrence(r, &when, &zone))
        .transpose()?;
    let sensitivity = match req.sensitivity.as_deref().map(str::trim) {
        None => Sensitivity::Normal,
        Some(s) => s
            .parse()
            .map_err(|e: String| field_error("sensitivity", e))?,
    };
    let mode = match req.mode.as_deref().map(str::trim) {
        None => BookingMode::Direct,
        Some(m) => m.parse().map_err(|e: String| field_error("mode", e))?,
    };
    if req.calendars.is_empty() {
        return Err(field_error(
            "calendars",
            "is empty: list the calendars the booking goes into",
        ));
    }
    if req.calendars.len() > calgate_core::booking::MAX_TARGETS {
        return Err(field_error(
            "calendars",
            format!("more than {} calendars", calgate_core::booking::MAX_TARGETS),
        ));
    }
    let mut seen = HashSet::new();
    let mut calendars = Vec::with_capacity(req.calendars.len());
    for (i, c) in req.calendars.iter().enumerate() {
        let f = |k: &str| format!("calendars[{i}].{k}");
        let address = c.address.trim();
        calgate_core::check_address(address)
            .map_err(|e| field_error(&f("address"), e.message()))?;
        if !seen.insert(address.to_lowercase()) {
            return Err(field_error(
                &f("address"),
                format!("{address} is listed twice"),
            ));
        }
        let role: TargetRole = c
            .role
            .trim()
            .parse()
            .map_err(|e: String| field_error(&f("role"), e))?;
        let m = store.mailbox(address).await?.ok_or_else(|| {
            field_error(
                &f("address"),
                format!(
                    "{address} is not linked: link it first (POST /v1/mailboxes or `calgate mailbox link`)"
                ),
            )
        })?;
        match (role.expected_kind(), m.kind) {
            (Some(k), kind) if k != kind => {
                return Err(field_error(
                    &f("role"),
                    format!("{address} is a {kind} mailbox, not a {k}: give role {kind}"),
                ));
            }
            (None, MailboxKind::Room | MailboxKind::Equipment) => {
                return Err(field_error(
                    &f("role"),
                    format!(
                        "{address} is a {} mailbox: give role {}, not {role}",
                        m.kind, m.kind
                    ),
                ));
            }
            _ => {}
        }
        calendars.push(BookingTarget {
            address: m.address.clone(),
            role,
        });
    }
    if mode == BookingMode::Meeting {
        let organizers = calendars
            .iter()
            .filter(|t| t.role == TargetRole::Organizer)
            .count();
        if organizers != 1 {
            return Err(field_error(
                "calendars",
                format!(
                    "a meeting needs exactly one calendar with role organizer (a person), not {organizers}"
                ),
            ));
        }
    }
    Ok(BookingSpec {
        subject: subject.to_owned(),
        body: req.body.clone().filter(|b| !b.trim().is_empty()),
        when,
        location: req
            .location
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
        show_as: show_as(req.show_as.as_deref())?,
        sensitivity,
        mode,
        calendars,
        recurrence,
    })
}

fn external_id(id: &str) -> ApiResult<&str> {
    calgate_core::booking::check_external_id(id)
        .map_err(|e| ApiError::bad_request(format!("{e} (in the URL)")))?;
    Ok(id)
}

fn json_status<T: Serialize>(status: StatusCode, v: &T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Creates or updates the host application's booking; calgate writes it into Exchange in the
/// background (`202`), or nothing changed (`200`).
#[utoipa::path(put, path = "/v1/bookings/{external_id}", tag = "bookings", security(("api_key" = [])),
    params(("external_id" = String, Path, description = "The host application's id of the event", example = "course-42-session-7")),
    request_body = BookingRequest,
    responses((status = 202, description = "Stored; the writes into Exchange are queued", body = BookingDto),
              (status = 200, description = "Nothing changed", body = BookingDto),
              (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 415, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn put_booking(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<BookingRequest>,
) -> ApiResult<Response> {
    caller.require(ApiScope::Write)?;
    let id = external_id(&id)?;
    let spec = parse_request(state.store.as_ref(), &req).await?;
    let (booking, changed) = state.store.put_booking(id, &spec).await?;
    if changed && let Some(s) = &state.scheduler {
        s.push_now();
    }
    Ok(json_status(
        if changed {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        &BookingDto::from(&booking),
    ))
}

/// A booking and the state of each of its calendars.
#[utoipa::path(get, path = "/v1/bookings/{external_id}", tag = "bookings", security(("api_key" = [])),
    params(("external_id" = String, Path, description = "The host application's id of the event", example = "course-42-session-7")),
    responses((status = 200, body = BookingDto),
              (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_booking(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<BookingDto>> {
    caller.require(ApiScope::Read)?;
    let id = external_id(&id)?;
    let b = state
        .store
        .booking(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no booking '{id}'")))?;
    Ok(axum::Json(BookingDto::from(&b)))
}

/// Deletes a booking: calgate removes its events from Exchange in the background.
#[utoipa::path(delete, path = "/v1/bookings/{external_id}", tag = "bookings", security(("api_key" = [])),
    params(("external_id" = String, Path, description = "The host application's id of the event", example = "course-42-session-7")),
    responses((status = 202, description = "Deleted; the removals from Exchange are queued", body = BookingDto),
              (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn delete_booking(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(ApiScope::Write)?;
    let id = external_id(&id)?;
    if !state.store.delete_booking(id).await? {
        return Err(ApiError::not_found(format!("no booking '{id}'")));
    }
    if let Some(s) = &state.scheduler {
        s.push_now();
    }
    let b = state
        .store
        .booking(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no booking '{id}'")))?;
    Ok(json_status(StatusCode::ACCEPTED, &BookingDto::from(&b)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BookingsQuery {
    /// `pending`, `synced` or `failed`.
    pub state: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Bookings per page (default 100, at most 1,000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingList {
    pub bookings: Vec<BookingDto>,
    pub next_cursor: Option<String>,
}

/// Bookings by external id, optionally only those in one state (`?state=failed`: what needs
/// the administrator).
#[utoipa::path(get, path = "/v1/bookings", tag = "bookings", security(("api_key" = [])),
    params(BookingsQuery),
    responses((status = 200, body = BookingList),
              (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 500, body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn list_bookings(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<BookingsQuery>,
) -> ApiResult<axum::Json<BookingList>> {
    caller.require(ApiScope::Read)?;
    let filter: Option<BookingState> = q
        .state
        .as_deref()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e: String| ApiError::bad_request(e))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad_request("cursor is not one calgate made"))
        })
        .transpose()?;
    let page = state
        .store
        .list_bookings(filter, after.as_deref(), limit + 1)
        .await?;
    let more = page.len() > limit as usize;
    let bookings: Vec<BookingDto> = page
        .iter()
        .take(limit as usize)
        .map(BookingDto::from)
        .collect();
    let next_cursor = more
        .then(|| {
            bookings
                .last()
                .map(|b| URL_SAFE_NO_PAD.encode(&b.external_id))
        })
        .flatten();
    Ok(axum::Json(BookingList {
        bookings,
        next_cursor,
    }))
}
