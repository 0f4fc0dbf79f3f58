//! `POST /users/{id}/calendar/getSchedule` (and `/me/calendar/getSchedule`): free/busy of up to
//! 20 users or resources over a period of at most 62 days, as `scheduleInformation` items with
//! an `availabilityView` (one digit per `availabilityViewInterval` minutes: 0 free,
//! 1 tentative, 2 busy, 3 oof, 4 workingElsewhere), `scheduleItems` and `workingHours`.
//!
//! - Parameter names are accepted in camelCase (docs) and PascalCase (CSDL), case-insensitively;
//!   `availabilityViewInterval` may be a number or a numeric string.
//! - The caller needs `Calendars.Read` or `Calendars.ReadWrite` on the mailbox in the URL; the
//!   call is throttled against that mailbox.
//! - Times come back in UTC unless `Prefer: outlook.timezone` names a zone (the zone of
//!   `startTime` only says how to read the request), as Graph does.
//! - An unknown address yields an item with `error {message, responseCode}`; so does (app-only)
//!   a mailbox outside the app's scope (RBAC for Applications / access policy).
//! - Private and confidential items show `isPrivate: true` without subject and location.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, civil};
use serde_json::{Map, Value, json};

use super::{Need, Principal, St};
use crate::error::{GraphError, GraphResult};
use crate::expand;
use crate::graph::wire;
use crate::model::{Sensitivity, ShowAs, User};

/// Most schedules per request (documented; the live service is known to accept up to 100).
pub const MAX_SCHEDULES: usize = 20;
/// Longest period, in days.
pub const MAX_DAYS: i64 = 62;
pub const DEFAULT_INTERVAL: i64 = 30;
pub const MIN_INTERVAL: i64 = 5;
pub const MAX_INTERVAL: i64 = 1440;

pub fn routes() -> Router<St> {
    Router::new()
        .route("/users/{id}/calendar/getSchedule", post(get_schedule))
        .route("/users/{id}/calendar/getschedule", post(get_schedule))
        .route("/me/calendar/getSchedule", post(get_schedule_me))
        .route("/me/calendar/getschedule", post(get_schedule_me))
}

/// The request's parameters.
#[derive(Debug)]
struct Params {
    schedules: Vec<String>,
    start: Timestamp,
    end: Timestamp,
    interval: i64,
}

fn bad(code: &str, msg: impl Into<String>) -> GraphError {
    GraphError::bad_request(code, msg)
}

fn parse_dttz(name: &str, v: &Value) -> GraphResult<Timestamp> {
    let invalid = || {
        bad(
            "ErrorInvalidRequest",
            format!("The value of the parameter '{name}' is not a valid dateTimeTimeZone."),
        )
    };
    let o = v.as_object().ok_or_else(invalid)?;
    let mut date_time = None;
    let mut zone = None;
    for (k, val) in o {
        match k.to_ascii_lowercase().as_str() {
            "datetime" => date_time = val.as_str(),
            "timezone" => zone = val.as_str(),
            k if k.starts_with('@') => {}
            _ => return Err(invalid()),
        }
    }
    let raw = date_time.ok_or_else(invalid)?.trim();
    let zone_name = zone.unwrap_or("UTC");
    let tz = expand::resolve_tz(zone_name).ok_or_else(|| wire::tz_not_supported(zone_name))?;
    // A text with an offset or Z is an instant; otherwise wall-clock time in `timeZone`.
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Ok(ts);
    }
    let dt: civil::DateTime = raw.parse().map_err(|_| {
        bad(
            "ErrorInvalidRequest",
            format!("Cannot convert the literal '{raw}' to the expected type 'Edm.DateTime'."),
        )
    })?;
    dt.to_zoned(tz)
        .map(|z| z.timestamp())
        .map_err(|_| invalid())
}

fn parse_params(body: &Bytes) -> GraphResult<Params> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| {
        bad(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })?;
    let o = doc.as_object().ok_or_else(|| {
        bad(
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })?;
    let mut schedules = None;
    let mut start = None;
    let mut end = None;
    let mut interval = DEFAULT_INTERVAL;
    for (k, v) in o {
        match k.to_ascii_lowercase().as_str() {
            "schedules" => {
                let arr = v.as_array().ok_or_else(|| {
                    bad(
                        "ErrorInvalidRequest",
                        "The parameter 'Schedules' must be a collection of SMTP addresses.",
                    )
                })?;
                let list: Vec<String> = arr
                    .iter()
                    .map(|s| s.as_str().map(|s| s.trim().to_owned()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        bad(
                            "ErrorInvalidRequest",
                            "The parameter 'Schedules' must be a collection of SMTP addresses.",
                        )
                    })?;
                schedules = Some(list);
            }
            "starttime" => start = Some(parse_dttz("StartTime", v)?),
            "endtime" => end = Some(parse_dttz("EndTime", v)?),
            "availabilityviewinterval" => {
                interval = match v {
                    Value::Null => DEFAULT_INTERVAL,
                    Value::Number(n) => n.as_i64().ok_or_else(invalid_interval)?,
                    Value::String(s) => s.trim().parse().map_err(|_| invalid_interval())?,
                    _ => return Err(invalid_interval()),
                }
            }
            k if k.starts_with('@') => {}
            _ => {
                return Err(bad(
                    "RequestBodyRead",
                    format!(
                        "The parameter '{k}' in the request payload is not a valid parameter for the operation 'getSchedule'."
                    ),
                ));
            }
        }
    }
    let schedules = schedules.ok_or_else(|| {
        bad(
            "ErrorInvalidRequest",
            "The parameter 'Schedules' is missing or empty.",
        )
    })?;
    if schedules.is_empty() {
        return Err(bad(
            "ErrorInvalidRequest",
            "The parameter 'Schedules' is missing or empty.",
        ));
    }
    if schedules.len() > MAX_SCHEDULES {
        return Err(bad(
            "ErrorMailboxDataArrayTooBig",
            format!(
                "There are too many target users in the EmailAddress array. The allowed size = {MAX_SCHEDULES}; the actual size = {}.",
                schedules.len()
            ),
        ));
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(bad(
            "ErrorInvalidRequest",
            "The parameters 'StartTime' and 'EndTime' are required.",
        ));
    };
    if end <= start {
        return Err(bad(
            "ErrorInvalidTimeInterval",
            "The time duration specified for FreeBusyViewOptions.TimeWindow is invalid.",
        ));
    }
    let span = end.duration_since(start);
    let day = SignedDuration::from_hours(24);
    let days = span.as_secs().div_euclid(day.as_secs())
        + i64::from(span.as_secs().rem_euclid(day.as_secs()) > 0 || span.subsec_nanos() > 0);
    if days > MAX_DAYS {
        return Err(bad(
            "ErrorTimeIntervalTooBig",
            format!(
                "The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. The allowed limit = {MAX_DAYS} days; the actual limit = {days} days."
            ),
        ));
    }
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) || interval * 60 > span.as_secs() {
        return Err(invalid_interval());
    }
    Ok(Params {
        schedules,
        start,
        end,
        interval,
    })
}

fn invalid_interval() -> GraphError {
    bad(
        "ErrorInvalidMergedFreeBusyInterval",
        format!(
            "The specified merged free/busy interval is not valid. Specify an interval that is less than the free/busy time window and between {MIN_INTERVAL} and {MAX_INTERVAL} minutes."
        ),
    )
}

/// Graph's `freeBusyStatus` string.
fn status_str(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
        ShowAs::Unknown => "unknown",
    }
}

/// (availabilityView digit, priority when items overlap a slot).
fn digit(s: ShowAs) -> (char, u8) {
    match s {
        ShowAs::Oof => ('3', 5),
        ShowAs::Busy => ('2', 4),
        ShowAs::Tentative => ('1', 3),
        ShowAs::WorkingElsewhere => ('4', 2),
        ShowAs::Free | ShowAs::Unknown => ('0', 0),
    }
}

fn dow_name(d: calgate_recurrence::DayOfWeek) -> &'static str {
    use calgate_recurrence::DayOfWeek as D;
    match d {
        D::Sunday => "sunday",
        D::Monday => "monday",
        D::Tuesday => "tuesday",
        D::Wednesday => "wednesday",
        D::Thursday => "thursday",
        D::Friday => "friday",
        D::Saturday => "saturday",
    }
}

fn fmt_time(t: civil::Time) -> String {
    format!("{}.0000000", t.strftime("%H:%M:%S"))
}

struct Item {
    start: Timestamp,
    end: Timestamp,
    show_as: ShowAs,
    json: Value,
}

/// One `scheduleInformation` for a resolved mailbox.
fn schedule_info(id: &str, u: &User, p: &Params, tz: &TimeZone, label: &str) -> Value {
    let mut items: Vec<Item> = match u.default_calendar() {
        None => Vec::new(),
        Some(cal) => expand::instances(cal, p.start, p.end)
            .into_iter()
            .filter(|i| !i.data.is_cancelled)
            .map(|i| {
                let private = matches!(
                    i.data.sensitivity,
                    Sensitivity::Private | Sensitivity::Confidential
                );
                let mut o = Map::new();
                o.insert("isPrivate".into(), json!(private));
                o.insert("status".into(), json!(status_str(i.data.show_as)));
                if !private {
                    o.insert("subject".into(), json!(i.data.subject));
                    o.insert("location".into(), json!(i.data.location.display_name));
                }
                o.insert(
                    "start".into(),
                    wire::date_time_time_zone(i.start, tz, label),
                );
                o.insert("end".into(), wire::date_time_time_zone(i.end, tz, label));
                Item {
                    start: i.start,
                    end: i.end,
                    show_as: i.data.show_as,
                    json: Value::Object(o),
                }
            })
            .collect(),
    };
    items.sort_by_key(|i| (i.start, i.end));

    let step = SignedDuration::from_mins(p.interval);
    let mut view = String::new();
    let mut slot = p.start;
    while slot < p.end {
        let slot_end = slot.checked_add(step).unwrap_or(p.end);
        let best = items
            .iter()
            .filter(|i| {
                i.start < slot_end && (i.end > slot || (i.start == i.end && i.start == slot))
            })
            .map(|i| digit(i.show_as))
            .max_by_key(|d| d.1)
            .map_or('0', |d| d.0);
        view.push(best);
        slot = slot_end;
    }

    let wh = &u.working_hours;
    json!({
        "scheduleId": id,
        "availabilityView": view,
        "scheduleItems": items.into_iter().map(|i| i.json).collect::<Vec<_>>(),
        "workingHours": {
            "daysOfWeek": wh.days_of_week.iter().map(|d| dow_name(*d)).collect::<Vec<_>>(),
            "startTime": fmt_time(wh.start_time),
            "endTime": fmt_time(wh.end_time),
            "timeZone": {"name": wh.time_zone},
        },
    })
}

fn error_info(id: &str, message: String, code: &str) -> Value {
    json!({
        "scheduleId": id,
        "error": {"message": message, "responseCode": code},
    })
}

async fn get_schedule(
    State(st): State<St>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(st, p, id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn get_schedule_me(
    State(st): State<St>,
    p: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((uid, _)) = &p.delegated else {
        return GraphError::bad_request(
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )
        .into_response();
    };
    let id = uid.to_string();
    run(st, p, id, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(
    st: St,
    p: Principal,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult<Response> {
    super::enter_mailbox(&st, &p, &id, Need::Read).await?;
    let prefer = wire::prefer_time_zone(&headers)?;
    let params = parse_params(&body)?;
    let (label, tz) = match &prefer {
        Some(pt) => pt.render(),
        None => ("UTC".to_owned(), TimeZone::UTC),
    };
    let value: Vec<Value> = {
        let dir = st.dir();
        let tenant = dir
            .tenant_by_id(p.tenant_id)
            .ok_or_else(|| GraphError::invalid_token("Access token validation failure."))?;
        params
            .schedules
            .iter()
            .map(|addr| {
                let Some(u) = tenant
                    .user(addr)
                    .filter(|u| u.has_mailbox && u.account_enabled)
                else {
                    return error_info(
                        addr,
                        format!(
                            "Unable to resolve e-mail address {addr} to an Active Directory object."
                        ),
                        "5009",
                    );
                };
                // App-only callers see only mailboxes in their scope; delegated callers see
                // the organisation's free/busy.
                if p.delegated.is_none()
                    && let Err(e) = super::authorize_mailbox(&dir, &p, addr, Need::Read)
                {
                    return error_info(addr, e.message, "ErrorAccessDenied");
                }
                schedule_info(addr, u, &params, &tz, &label)
            })
            .collect()
    };
    let mut resp = axum::Json(json!({
        "@odata.context": format!(
            "{}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
            st.base_url()
        ),
        "value": value,
    }))
    .into_response();
    if let Some(pt) = prefer
        && let Ok(v) = HeaderValue::from_str(&pt.preference_applied())
    {
        resp.headers_mut().insert("Preference-Applied", v);
    }
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(v: Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    #[test]
    fn limits() {
        let ok = json!({"Schedules": ["a@x"], "StartTime": {"dateTime": "2025-01-01T00:00:00", "timeZone": "UTC"},
            "EndTime": {"dateTime": "2025-03-04T00:00:00", "timeZone": "UTC"}, "availabilityViewInterval": "15"});
        let p = parse_params(&body(ok)).unwrap();
        assert_eq!(p.interval, 15);
        let long = json!({"schedules": ["a@x"], "startTime": {"dateTime": "2025-01-01T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2025-03-04T00:00:01", "timeZone": "UTC"}});
        assert_eq!(
            parse_params(&body(long)).unwrap_err().code,
            "ErrorTimeIntervalTooBig"
        );
        let small = json!({"schedules": ["a@x"], "startTime": {"dateTime": "2025-01-01T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2025-01-02T00:00:00", "timeZone": "UTC"}, "availabilityViewInterval": 4});
        assert_eq!(
            parse_params(&body(small)).unwrap_err().code,
            "ErrorInvalidMergedFreeBusyInterval"
        );
    }
}
