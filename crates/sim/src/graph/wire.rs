//! The simulator's own Graph JSON for events, written from Graph's documentation: rendering
//! stored events and expanded instances ([`event_json`]), parsing POST/PATCH bodies
//! ([`parse_event_input`]), `patternedRecurrence` ↔ `calgate_recurrence`, the
//! `Prefer: outlook.timezone` header ([`prefer_time_zone`]), OData annotations and paging
//! helpers shared by every list endpoint.

#![allow(clippy::result_large_err)] // GraphError is the lead's type; boxing it is a crate-wide change.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use calgate_recurrence::{
    DayOfWeek, Pattern, PatternType, Range, RangeKind, Recurrence, WeekIndex,
};
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use serde_json::{Map, Value, json};

use crate::error::{GraphError, GraphResult};
use crate::expand::{Instance, InstanceKind, resolve_tz};
use crate::model::{
    Attendee, AttendeeType, Body, EmailAddress, EventData, ExtendedProperty, GeoCoordinates,
    Importance, LocalDateTime, Location, PhysicalAddress, ResponseType, Sensitivity,
    SeriesRecurrence, ShowAs,
};

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/// `2017-08-30T07:06:33.8673345Z`: an instant with 7 fractional digits, as Graph writes
/// `createdDateTime` and `lastModifiedDateTime`.
pub fn fmt_timestamp(ts: Timestamp) -> String {
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    format!("{}Z", fmt_civil(dt))
}

/// `2017-08-30T11:00:00.0000000`: a wall-clock date-time with 7 fractional digits.
pub fn fmt_civil(dt: civil::DateTime) -> String {
    format!(
        "{}.{:07}",
        dt.strftime("%Y-%m-%dT%H:%M:%S"),
        dt.subsec_nanosecond() / 100
    )
}

/// `dateTimeTimeZone` JSON for an instant shown in `tz` labelled `label`.
pub fn date_time_time_zone(ts: Timestamp, tz: &TimeZone, label: &str) -> Value {
    json!({"dateTime": fmt_civil(ts.to_zoned(tz.clone()).datetime()), "timeZone": label})
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// OWA deep link of an item.
pub fn web_link(id: &str) -> String {
    format!(
        "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
        url_encode(id)
    )
}

/// Graph's `bodyPreview`: the body as plain text, whitespace collapsed, at most 255 characters.
pub fn body_preview(body: &Body) -> String {
    let text = if body.content_type.eq_ignore_ascii_case("html") {
        let mut out = String::new();
        let mut in_tag = false;
        let lower = body.content.to_ascii_lowercase();
        // Drop <head>…</head> and <style>…</style> wholesale.
        let mut skip_until: Option<&str> = None;
        let mut i = 0;
        let bytes = body.content.as_bytes();
        while i < bytes.len() {
            if let Some(end) = skip_until {
                if lower[i..].starts_with(end) {
                    i += end.len();
                    skip_until = None;
                } else {
                    i += 1;
                }
                continue;
            }
            if lower[i..].starts_with("<head") {
                skip_until = Some("</head>");
                continue;
            }
            if lower[i..].starts_with("<style") {
                skip_until = Some("</style>");
                continue;
            }
            let c = body.content[i..].chars().next().unwrap_or(' ');
            match c {
                '<' => {
                    in_tag = true;
                    out.push(' ');
                }
                '>' if in_tag => in_tag = false,
                _ if !in_tag => out.push(c),
                _ => {}
            }
            i += c.len_utf8();
        }
        out.replace("&nbsp;", " ")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    } else {
        body.content.clone()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(255).collect()
}

fn enum_str<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Rendering events
// ---------------------------------------------------------------------------------------------

/// Which extended properties `$expand=singleValueExtendedProperties(…)` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandProps {
    /// `$expand=singleValueExtendedProperties`.
    All,
    /// `$expand=singleValueExtendedProperties($filter=id eq '…' [or id eq '…'])`.
    Ids(Vec<String>),
}

/// How to render events for one request.
#[derive(Debug, Clone, Default)]
pub struct RenderOpts {
    /// `Prefer: outlook.timezone`: (the name as the client sent it, the zone). `None` = UTC.
    pub time_zone: Option<(String, TimeZone)>,
    /// `$expand=singleValueExtendedProperties…`.
    pub expand_props: Option<ExpandProps>,
    /// `$select` (property names as given). `id` and `@odata.etag` are always returned.
    pub select: Option<Vec<String>>,
    /// The mailbox address the events belong to (decides `isOrganizer` / `responseStatus`).
    pub mailbox: Option<String>,
}

/// The Graph JSON of an event: a stored single or series master ([`crate::expand::master_view`])
/// or an expanded occurrence/exception ([`crate::expand::instances`]). Times are in UTC unless
/// `opts.time_zone`; all-day events keep their dates.
pub fn event_json(inst: &Instance, opts: &RenderOpts) -> Value {
    let d = &inst.data;
    let (label, tz) = match &opts.time_zone {
        Some((n, tz)) => (n.as_str(), tz.clone()),
        None => ("UTC", TimeZone::UTC),
    };
    let (start, end) = if d.is_all_day {
        (
            json!({"dateTime": fmt_civil(d.start.date_time), "timeZone": label}),
            json!({"dateTime": fmt_civil(d.end.date_time), "timeZone": label}),
        )
    } else {
        (
            date_time_time_zone(inst.start, &tz, label),
            date_time_time_zone(inst.end, &tz, label),
        )
    };
    let is_organizer = opts.mailbox.as_deref().is_none_or(|m| {
        d.organizer.address.is_empty() || d.organizer.address.eq_ignore_ascii_case(m)
    });
    // An attendee's copy carries the attendee's own response (and its time) in their entry.
    let own = opts.mailbox.as_deref().and_then(|m| {
        d.attendees
            .iter()
            .find(|a| a.email.address.eq_ignore_ascii_case(m))
    });
    let (response, response_time): (String, Option<Timestamp>) = if is_organizer {
        ("organizer".to_owned(), None)
    } else {
        (
            own.and_then(|a| enum_str(&a.response).as_str().map(str::to_owned))
                .filter(|s| s != "none")
                .unwrap_or_else(|| "notResponded".to_owned()),
            own.and_then(|a| a.response_time),
        )
    };
    let mut m = Map::new();
    m.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", inst.change_key)),
    );
    m.insert("id".into(), json!(inst.id));
    m.insert("createdDateTime".into(), json!(fmt_timestamp(inst.created)));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(fmt_timestamp(inst.last_modified)),
    );
    m.insert("changeKey".into(), json!(inst.change_key));
    m.insert("categories".into(), json!(d.categories));
    m.insert("transactionId".into(), json!(inst.transaction_id));
    m.insert("originalStartTimeZone".into(), json!(d.start.time_zone));
    m.insert("originalEndTimeZone".into(), json!(d.end.time_zone));
    m.insert("iCalUId".into(), json!(inst.ical_uid));
    m.insert(
        "reminderMinutesBeforeStart".into(),
        json!(d.reminder_minutes_before_start),
    );
    m.insert("isReminderOn".into(), json!(d.is_reminder_on));
    m.insert("hasAttachments".into(), json!(false));
    m.insert("subject".into(), json!(d.subject));
    m.insert("bodyPreview".into(), json!(body_preview(&d.body)));
    m.insert("importance".into(), enum_str(&d.importance));
    m.insert("sensitivity".into(), enum_str(&d.sensitivity));
    m.insert("isAllDay".into(), json!(d.is_all_day));
    m.insert("isCancelled".into(), json!(d.is_cancelled));
    m.insert("isOrganizer".into(), json!(is_organizer));
    m.insert("responseRequested".into(), json!(d.response_requested));
    m.insert("seriesMasterId".into(), json!(inst.series_master_id));
    m.insert("showAs".into(), enum_str(&d.show_as));
    m.insert("type".into(), json!(inst.kind.as_str()));
    m.insert("webLink".into(), json!(web_link(&inst.id)));
    m.insert("onlineMeetingUrl".into(), Value::Null);
    m.insert("isOnlineMeeting".into(), json!(d.is_online_meeting));
    m.insert(
        "onlineMeetingProvider".into(),
        json!(if d.is_online_meeting {
            "teamsForBusiness"
        } else {
            "unknown"
        }),
    );
    m.insert(
        "allowNewTimeProposals".into(),
        json!(d.allow_new_time_proposals),
    );
    m.insert("isDraft".into(), json!(false));
    m.insert("hideAttendees".into(), json!(d.hide_attendees));
    if let Some(orig) = inst.original_start
        && matches!(
            inst.kind,
            InstanceKind::Occurrence | InstanceKind::Exception
        )
    {
        m.insert("originalStart".into(), json!(fmt_timestamp(orig)));
    }
    m.insert(
        "recurrence".into(),
        inst.recurrence
            .as_ref()
            .map(recurrence_json)
            .unwrap_or(Value::Null),
    );
    m.insert(
        "onlineMeeting".into(),
        if d.is_online_meeting {
            json!({"joinUrl": format!("https://teams.microsoft.com/l/meetup-join/{}", url_encode(&inst.ical_uid))})
        } else {
            Value::Null
        },
    );
    m.insert(
        "responseStatus".into(),
        json!({"response": response, "time": response_time_json(response_time)}),
    );
    m.insert(
        "body".into(),
        json!({"contentType": d.body.content_type, "content": d.body.content}),
    );
    m.insert("start".into(), start);
    m.insert("end".into(), end);
    m.insert("locations".into(), locations_json(d));
    m.insert("location".into(), location_json(&d.location));
    m.insert(
        "attendees".into(),
        Value::Array(d.attendees.iter().map(attendee_json).collect()),
    );
    m.insert(
        "organizer".into(),
        json!({"emailAddress": email_json(&d.organizer)}),
    );
    if inst.kind == InstanceKind::SeriesMaster {
        let date_tz = inst
            .recurrence
            .as_ref()
            .and_then(|r| resolve_tz(&r.time_zone))
            .unwrap_or(TimeZone::UTC);
        let cancelled: Vec<String> = inst
            .cancelled
            .iter()
            .map(|t| {
                format!(
                    "OID.{}.{}",
                    inst.id,
                    t.to_zoned(date_tz.clone()).date().strftime("%Y-%m-%d")
                )
            })
            .collect();
        m.insert("cancelledOccurrences".into(), json!(cancelled));
    }
    if let Some(sel) = &opts.expand_props {
        let props: Vec<Value> = inst
            .extended_properties
            .iter()
            .filter(|p| match sel {
                ExpandProps::All => true,
                ExpandProps::Ids(ids) => ids.iter().any(|i| i.eq_ignore_ascii_case(&p.id)),
            })
            .map(|p| json!({"id": p.id, "value": p.value}))
            .collect();
        m.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    if let Some(select) = &opts.select {
        let keep = |k: &str| {
            k == "@odata.etag"
                || k == "id"
                || k == "singleValueExtendedProperties"
                || select.iter().any(|s| s.eq_ignore_ascii_case(k))
        };
        m.retain(|k, _| keep(k));
    } else {
        // Graph returns cancelledOccurrences only when $select asks for it.
        m.remove("cancelledOccurrences");
    }
    Value::Object(m)
}

/// [`event_json`] of an expanded instance for `mailbox` (no `$select`, no `$expand`), times
/// in UTC or in `zone` (a `Prefer: outlook.timezone`: the label as the client sent it, and the
/// zone), written straight to JSON text: the same bytes as `event_json(inst, opts).to_string()`
/// with `opts.mailbox = Some(mailbox)` and `opts.time_zone = zone` (keys in the same, sorted,
/// order), plus `"@odata.type":"#microsoft.graph.event"` when `odata_type` (as a delta round
/// sends it). Used on the hot paths (calendarView/delta), where building a `Value` tree per
/// instance costs more than everything else.
pub fn event_json_text(
    inst: &Instance,
    mailbox: &str,
    odata_type: bool,
    zone: Option<(&str, &TimeZone)>,
) -> String {
    let d = &inst.data;
    let is_organizer =
        d.organizer.address.is_empty() || d.organizer.address.eq_ignore_ascii_case(mailbox);
    let own = d
        .attendees
        .iter()
        .find(|a| a.email.address.eq_ignore_ascii_case(mailbox));
    let mut w = JsonText::with_capacity(2048 + d.body.content.len());
    w.open();
    w.key("@odata.etag");
    w.etag(&inst.change_key);
    if odata_type {
        w.key("@odata.type");
        w.raw("\"#microsoft.graph.event\"");
    }
    w.key("allowNewTimeProposals");
    w.bool(d.allow_new_time_proposals);
    w.key("attendees");
    w.raw("[");
    for (i, a) in d.attendees.iter().enumerate() {
        if i > 0 {
            w.raw(",");
        }
        w.raw("{\"emailAddress\":");
        w.email(&a.email);
        w.raw(",\"status\":{\"response\":");
        w.ser(&a.response);
        w.raw(",\"time\":");
        w.response_time(a.response_time);
        w.raw("},\"type\":");
        w.ser(&a.kind);
        w.raw("}");
    }
    w.raw("]");
    w.key("body");
    w.raw("{\"content\":");
    w.str(&d.body.content);
    w.raw(",\"contentType\":");
    w.str(&d.body.content_type);
    w.raw("}");
    w.key("bodyPreview");
    w.str(&body_preview(&d.body));
    w.key("categories");
    w.ser(&d.categories);
    w.key("changeKey");
    w.str(&inst.change_key);
    w.key("createdDateTime");
    w.timestamp(inst.created);
    w.key("end");
    if d.is_all_day {
        w.date_time_labelled(d.end.date_time, zone);
    } else {
        w.date_time_labelled(zoned(inst.end, zone), zone);
    }
    w.key("hasAttachments");
    w.bool(false);
    w.key("hideAttendees");
    w.bool(d.hide_attendees);
    w.key("iCalUId");
    w.str(&inst.ical_uid);
    w.key("id");
    w.str(&inst.id);
    w.key("importance");
    w.ser(&d.importance);
    w.key("isAllDay");
    w.bool(d.is_all_day);
    w.key("isCancelled");
    w.bool(d.is_cancelled);
    w.key("isDraft");
    w.bool(false);
    w.key("isOnlineMeeting");
    w.bool(d.is_online_meeting);
    w.key("isOrganizer");
    w.bool(is_organizer);
    w.key("isReminderOn");
    w.bool(d.is_reminder_on);
    w.key("lastModifiedDateTime");
    w.timestamp(inst.last_modified);
    w.key("location");
    w.value(&location_json(&d.location));
    w.key("locations");
    w.value(&locations_json(d));
    w.key("onlineMeeting");
    if d.is_online_meeting {
        w.raw("{\"joinUrl\":");
        w.str(&format!(
            "https://teams.microsoft.com/l/meetup-join/{}",
            url_encode(&inst.ical_uid)
        ));
        w.raw("}");
    } else {
        w.raw("null");
    }
    w.key("onlineMeetingProvider");
    w.raw(if d.is_online_meeting {
        "\"teamsForBusiness\""
    } else {
        "\"unknown\""
    });
    w.key("onlineMeetingUrl");
    w.raw("null");
    w.key("organizer");
    w.raw("{\"emailAddress\":");
    w.email(&d.organizer);
    w.raw("}");
    w.key("originalEndTimeZone");
    w.str(&d.end.time_zone);
    if let Some(orig) = inst.original_start
        && matches!(
            inst.kind,
            InstanceKind::Occurrence | InstanceKind::Exception
        )
    {
        w.key("originalStart");
        w.timestamp(orig);
    }
    w.key("originalStartTimeZone");
    w.str(&d.start.time_zone);
    w.key("recurrence");
    match &inst.recurrence {
        Some(r) => w.value(&recurrence_json(r)),
        None => w.raw("null"),
    }
    w.key("reminderMinutesBeforeStart");
    w.ser(&d.reminder_minutes_before_start);
    w.key("responseRequested");
    w.bool(d.response_requested);
    w.key("responseStatus");
    if is_organizer {
        w.raw("{\"response\":\"organizer\",\"time\":\"0001-01-01T00:00:00Z\"}");
    } else {
        let response = own
            .and_then(|a| enum_str(&a.response).as_str().map(str::to_owned))
            .filter(|s| s != "none")
            .unwrap_or_else(|| "notResponded".to_owned());
        w.raw("{\"response\":");
        w.str(&response);
        w.raw(",\"time\":");
        w.response_time(own.and_then(|a| a.response_time));
        w.raw("}");
    }
    w.key("sensitivity");
    w.ser(&d.sensitivity);
    w.key("seriesMasterId");
    w.ser(&inst.series_master_id);
    w.key("showAs");
    w.ser(&d.show_as);
    w.key("start");
    if d.is_all_day {
        w.date_time_labelled(d.start.date_time, zone);
    } else {
        w.date_time_labelled(zoned(inst.start, zone), zone);
    }
    w.key("subject");
    w.str(&d.subject);
    w.key("transactionId");
    w.ser(&inst.transaction_id);
    w.key("type");
    w.str(inst.kind.as_str());
    w.key("webLink");
    w.web_link(&inst.id);
    w.close();
    w.finish()
}

/// `ts` as a civil date-time in `zone`'s zone, else in UTC.
fn zoned(ts: Timestamp, zone: Option<(&str, &TimeZone)>) -> civil::DateTime {
    match zone {
        Some((_, tz)) => tz.to_datetime(ts),
        None => TimeZone::UTC.to_datetime(ts),
    }
}

/// Whether `s` stands in a JSON string as is (no quote, backslash or control character).
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// `n` as exactly `width` decimal digits (zero-padded; `n` must fit).
fn push_digits(buf: &mut Vec<u8>, n: u32, width: usize) {
    let mut tmp = [b'0'; 10];
    let mut n = n;
    for d in tmp[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&tmp[..width]);
}

/// A JSON text being written (strings escaped by `serde_json` itself).
struct JsonText {
    buf: Vec<u8>,
    first: bool,
}

impl JsonText {
    fn with_capacity(n: usize) -> Self {
        JsonText {
            buf: Vec::with_capacity(n),
            first: true,
        }
    }
    fn open(&mut self) {
        self.buf.push(b'{');
        self.first = true;
    }
    fn close(&mut self) {
        self.buf.push(b'}');
    }
    /// A key of the top-level object (plain ASCII, no escaping needed).
    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }
    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }
    fn ser<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Writing to a Vec cannot fail; serializing these plain types cannot either.
        let _ = serde_json::to_writer(&mut self.buf, v);
    }
    fn str(&mut self, s: &str) {
        self.ser(s);
    }
    fn value(&mut self, v: &Value) {
        self.ser(v);
    }
    fn etag(&mut self, change_key: &str) {
        if needs_no_escape(change_key) {
            self.raw("\"W/\\\"");
            self.raw(change_key);
            self.raw("\\\"\"");
        } else {
            self.str(&format!("W/\"{change_key}\""));
        }
    }
    /// [`web_link`] as a JSON string (its characters need no escaping).
    fn web_link(&mut self, id: &str) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.raw("\"https://outlook.office365.com/owa/?itemid=");
        for b in id.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                self.buf.push(b);
            } else {
                self.buf.extend_from_slice(&[
                    b'%',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
        }
        self.raw("&exvsurl=1&path=/calendar/item\"");
    }
    fn email(&mut self, e: &EmailAddress) {
        self.raw("{\"address\":");
        self.str(&e.address);
        self.raw(",\"name\":");
        self.str(&e.name);
        self.raw("}");
    }
    fn response_time(&mut self, t: Option<Timestamp>) {
        match t {
            Some(t) => self.timestamp(t),
            None => self.raw("\"0001-01-01T00:00:00Z\""),
        }
    }
    /// [`fmt_timestamp`] as a JSON string.
    fn timestamp(&mut self, ts: Timestamp) {
        self.buf.push(b'"');
        self.civil(TimeZone::UTC.to_datetime(ts));
        self.buf.extend_from_slice(b"Z\"");
    }
    /// `{"dateTime": …, "timeZone": label}`: the label of `zone`, else `"UTC"`.
    fn date_time_labelled(&mut self, dt: civil::DateTime, zone: Option<(&str, &TimeZone)>) {
        self.raw("{\"dateTime\":\"");
        self.civil(dt);
        self.raw("\",\"timeZone\":");
        match zone {
            Some((label, _)) => self.str(label),
            None => self.raw("\"UTC\""),
        }
        self.raw("}");
    }
    /// [`fmt_civil`] (no quotes).
    fn civil(&mut self, dt: civil::DateTime) {
        let y = dt.year();
        if !(0..=9999).contains(&y) {
            self.buf.extend_from_slice(fmt_civil(dt).as_bytes());
            return;
        }
        let b = &mut self.buf;
        push_digits(b, y.unsigned_abs().into(), 4);
        b.push(b'-');
        push_digits(b, dt.month().unsigned_abs().into(), 2);
        b.push(b'-');
        push_digits(b, dt.day().unsigned_abs().into(), 2);
        b.push(b'T');
        push_digits(b, dt.hour().unsigned_abs().into(), 2);
        b.push(b':');
        push_digits(b, dt.minute().unsigned_abs().into(), 2);
        b.push(b':');
        push_digits(b, dt.second().unsigned_abs().into(), 2);
        b.push(b'.');
        push_digits(b, dt.subsec_nanosecond().unsigned_abs() / 100, 7);
    }
    fn finish(self) -> String {
        String::from_utf8(self.buf).unwrap_or_default()
    }
}

fn email_json(e: &EmailAddress) -> Value {
    json!({"name": e.name, "address": e.address})
}

/// `status.time` / `responseStatus.time`: Exchange's "never" until a response was given.
fn response_time_json(t: Option<Timestamp>) -> Value {
    match t {
        Some(t) => json!(fmt_timestamp(t)),
        None => json!("0001-01-01T00:00:00Z"),
    }
}

fn attendee_json(a: &Attendee) -> Value {
    json!({
        "type": enum_str(&a.kind),
        "status": {"response": enum_str(&a.response), "time": response_time_json(a.response_time)},
        "emailAddress": email_json(&a.email),
    })
}

fn is_empty_location(l: &Location) -> bool {
    l.display_name.is_empty()
        && l.location_email.is_none()
        && l.address.is_none()
        && l.coordinates.is_none()
}

/// The event's `location`. An empty one is Exchange's placeholder (with empty `address` and
/// `coordinates`); a named one is a `private` location whose `uniqueId` is its name; a room
/// (`locationUri`) is a `directory` location.
fn location_json(l: &Location) -> Value {
    if is_empty_location(l) {
        return json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
            "address": {}, "coordinates": {}});
    }
    let mut m = location_head(l);
    if l.location_email.is_none() {
        m.insert("uniqueId".into(), json!(l.display_name));
        m.insert("uniqueIdType".into(), json!("private"));
    }
    location_tail(&mut m, l);
    Value::Object(m)
}

/// One entry of `locations`: as in Graph's samples, a location known by its name only has
/// `uniqueIdType: unknown` and an empty `uniqueId` (a create/update answer leaves the empty
/// `uniqueId` out: see [`strip_unset_unique_ids`]); one with an address or coordinates is
/// `private`, its `uniqueId` its name.
fn location_entry_json(l: &Location) -> Value {
    let mut m = location_head(l);
    if l.location_email.is_none() {
        if l.address.is_some() || l.coordinates.is_some() {
            m.insert("uniqueId".into(), json!(l.display_name));
            m.insert("uniqueIdType".into(), json!("private"));
        } else {
            m.insert("uniqueId".into(), json!(""));
            m.insert("uniqueIdType".into(), json!("unknown"));
        }
    }
    location_tail(&mut m, l);
    Value::Object(m)
}

/// Drops the empty `uniqueId` of `locations` entries, as Graph's answers to POST and PATCH
/// show them (the entity as written, where the client set no `uniqueId`); reads show `""`.
pub fn strip_unset_unique_ids(event: &mut Value) {
    if let Some(list) = event.get_mut("locations").and_then(Value::as_array_mut) {
        for l in list.iter_mut().filter_map(Value::as_object_mut) {
            if l.get("uniqueId").and_then(Value::as_str) == Some("") {
                l.remove("uniqueId");
            }
        }
    }
}

/// `locations`: the stored list, else `[location]` (none when `location` is empty).
fn locations_json(d: &EventData) -> Value {
    if !d.locations.is_empty() {
        return Value::Array(d.locations.iter().map(location_entry_json).collect());
    }
    if is_empty_location(&d.location) {
        return json!([]);
    }
    json!([location_entry_json(&d.location)])
}

fn location_head(l: &Location) -> Map<String, Value> {
    let lt = if l.location_type.is_empty() {
        "default"
    } else {
        l.location_type.as_str()
    };
    let mut m = Map::new();
    m.insert("displayName".into(), json!(l.display_name));
    if let Some(email) = &l.location_email {
        m.insert("locationUri".into(), json!(email));
    }
    m.insert("locationType".into(), json!(lt));
    if let Some(email) = &l.location_email {
        m.insert("uniqueId".into(), json!(email));
        m.insert("uniqueIdType".into(), json!("directory"));
    }
    m
}

fn location_tail(m: &mut Map<String, Value>, l: &Location) {
    if let Some(a) = &l.address {
        let mut o = Map::new();
        for (k, v) in [
            ("street", &a.street),
            ("city", &a.city),
            ("state", &a.state),
            ("countryOrRegion", &a.country_or_region),
            ("postalCode", &a.postal_code),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
        m.insert("address".into(), Value::Object(o));
    }
    if let Some(c) = &l.coordinates {
        let mut o = Map::new();
        for (k, v) in [
            ("altitude", &c.altitude),
            ("latitude", &c.latitude),
            ("longitude", &c.longitude),
            ("accuracy", &c.accuracy),
            ("altitudeAccuracy", &c.altitude_accuracy),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), Value::Number(v.clone()));
            }
        }
        m.insert("coordinates".into(), Value::Object(o));
    }
}

// ---------------------------------------------------------------------------------------------
// patternedRecurrence
// ---------------------------------------------------------------------------------------------

// The simulator's own spelling of the recurrence enums (Graph's `recurrencePatternType`,
// `dayOfWeek` and `weekIndex` members, from Graph's documentation). `calgate_recurrence` has
// no wire names: the client spells them on its side, independently.

const PATTERN_TYPES: [(&str, PatternType); 6] = [
    ("daily", PatternType::Daily),
    ("weekly", PatternType::Weekly),
    ("absoluteMonthly", PatternType::AbsoluteMonthly),
    ("relativeMonthly", PatternType::RelativeMonthly),
    ("absoluteYearly", PatternType::AbsoluteYearly),
    ("relativeYearly", PatternType::RelativeYearly),
];

const DAYS_OF_WEEK: [(&str, DayOfWeek); 7] = [
    ("sunday", DayOfWeek::Sunday),
    ("monday", DayOfWeek::Monday),
    ("tuesday", DayOfWeek::Tuesday),
    ("wednesday", DayOfWeek::Wednesday),
    ("thursday", DayOfWeek::Thursday),
    ("friday", DayOfWeek::Friday),
    ("saturday", DayOfWeek::Saturday),
];

const WEEK_INDEXES: [(&str, WeekIndex); 5] = [
    ("first", WeekIndex::First),
    ("second", WeekIndex::Second),
    ("third", WeekIndex::Third),
    ("fourth", WeekIndex::Fourth),
    ("last", WeekIndex::Last),
];

/// `value`'s name in `members`.
fn member_name<T: PartialEq + Copy>(members: &[(&'static str, T)], value: T) -> &'static str {
    members
        .iter()
        .find(|(_, m)| *m == value)
        .map_or("", |(name, _)| name)
}

/// Graph's name of a day of the week (`"monday"`), as `dayOfWeek` JSON spells it.
pub fn day_of_week_name(d: DayOfWeek) -> &'static str {
    member_name(&DAYS_OF_WEEK, d)
}

/// Reads an enum member of `members`; Graph accepts members case-insensitively.
fn parse_member<T: Copy>(
    prop: &str,
    type_name: &str,
    v: &Value,
    members: &[(&str, T)],
) -> GraphResult<T> {
    let s = json_str(prop, v)?;
    members
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, m)| *m)
        .ok_or_else(|| invalid_member(s, prop, type_name))
}

fn invalid_member(s: &str, prop: &str, type_name: &str) -> GraphError {
    GraphError::bad_request(
        "RequestBodyRead",
        format!("The value '{s}' is not valid for the property '{prop}' of type '{type_name}'."),
    )
}

/// `patternedRecurrence` JSON as Graph returns it (every pattern and range member present).
pub fn recurrence_json(r: &SeriesRecurrence) -> Value {
    let p = &r.rule.pattern;
    let rg = &r.rule.range;
    let (kind, end_date, n) = match &rg.kind {
        RangeKind::EndDate(d) => ("endDate", d.strftime("%Y-%m-%d").to_string(), 0),
        RangeKind::NoEnd => ("noEnd", "0001-01-01".to_owned(), 0),
        RangeKind::Numbered(n) => ("numbered", "0001-01-01".to_owned(), *n),
    };
    json!({
        "pattern": {
            "type": member_name(&PATTERN_TYPES, p.kind),
            "interval": p.interval,
            "month": p.month,
            "dayOfMonth": p.day_of_month,
            "daysOfWeek": p.days_of_week.iter().map(|d| day_of_week_name(*d)).collect::<Vec<_>>(),
            "firstDayOfWeek": day_of_week_name(p.first_day_of_week),
            "index": member_name(&WEEK_INDEXES, p.index),
        },
        "range": {
            "type": kind,
            "startDate": rg.start_date.strftime("%Y-%m-%d").to_string(),
            "endDate": end_date,
            "recurrenceTimeZone": rg.recurrence_time_zone.clone().unwrap_or_else(|| r.time_zone.clone()),
            "numberOfOccurrences": n,
        }
    })
}

fn recurrence_error(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("ErrorCalendarInvalidRecurrence", msg)
}

fn type_error(prop: &str, expected: &str, v: &Value) -> GraphError {
    GraphError::bad_request(
        "RequestBodyRead",
        format!(
            "Cannot convert the literal '{}' to the expected type '{expected}' for property '{prop}'.",
            literal(v)
        ),
    )
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads a non-negative integer that clients send as a number or a numeric string.
fn json_u32(prop: &str, v: &Value) -> GraphResult<u32> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| type_error(prop, "Edm.Int32", v)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| type_error(prop, "Edm.Int32", v)),
        Value::Null => Ok(0),
        _ => Err(type_error(prop, "Edm.Int32", v)),
    }
}

fn json_str<'a>(prop: &str, v: &'a Value) -> GraphResult<&'a str> {
    v.as_str().ok_or_else(|| type_error(prop, "Edm.String", v))
}

fn json_bool(prop: &str, v: &Value) -> GraphResult<bool> {
    v.as_bool()
        .ok_or_else(|| type_error(prop, "Edm.Boolean", v))
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    prop: &str,
    type_name: &str,
    v: &Value,
) -> GraphResult<T> {
    let s = json_str(prop, v)?;
    // Graph accepts enum members case-insensitively ("Required", "Default").
    let mut chars = s.chars();
    let camel = match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    };
    let candidates = [camel.clone(), s.to_ascii_lowercase()];
    for c in candidates {
        if let Ok(t) = serde_json::from_value::<T>(Value::String(c)) {
            return Ok(t);
        }
    }
    // Members with inner capitals (workingElsewhere, tentativelyAccepted) in other cases.
    let lower = s.to_ascii_lowercase();
    for member in [
        "workingElsewhere",
        "tentativelyAccepted",
        "notResponded",
        "conferenceRoom",
    ] {
        if member.to_ascii_lowercase() == lower
            && let Ok(t) = serde_json::from_value::<T>(Value::String(member.to_owned()))
        {
            return Ok(t);
        }
    }
    Err(invalid_member(s, prop, type_name))
}

fn parse_date(prop: &str, v: &Value) -> GraphResult<civil::Date> {
    let s = json_str(prop, v)?;
    s.trim()
        .parse::<civil::Date>()
        .map_err(|_| type_error(prop, "Edm.Date", v))
}

/// Parses a `patternedRecurrence` body member into the model, validating it as Graph does.
/// `default_tz` is the event start's zone (used when `recurrenceTimeZone` is absent).
pub fn parse_recurrence(v: &Value, default_tz: &str) -> GraphResult<SeriesRecurrence> {
    let obj = v
        .as_object()
        .ok_or_else(|| type_error("recurrence", "microsoft.graph.patternedRecurrence", v))?;
    let pv = obj
        .get("pattern")
        .and_then(Value::as_object)
        .ok_or_else(|| recurrence_error("The recurrence pattern is missing."))?;
    let rv = obj
        .get("range")
        .and_then(Value::as_object)
        .ok_or_else(|| recurrence_error("The recurrence range is missing."))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "pattern" | "range") && !k.starts_with('@') {
            return Err(unknown_property(k, "microsoft.graph.patternedRecurrence"));
        }
    }
    let kind = parse_member(
        "type",
        "microsoft.graph.recurrencePatternType",
        pv.get("type").unwrap_or(&Value::Null),
        &PATTERN_TYPES,
    )?;
    let mut pattern = Pattern::new(kind, 1);
    for (k, val) in pv {
        match k.as_str() {
            "type" => {}
            "interval" => pattern.interval = json_u32("interval", val)?,
            "month" => {
                pattern.month = u8::try_from(json_u32("month", val)?)
                    .map_err(|_| recurrence_error("month must be between 1 and 12."))?
            }
            "dayOfMonth" => {
                pattern.day_of_month = u8::try_from(json_u32("dayOfMonth", val)?)
                    .map_err(|_| recurrence_error("dayOfMonth must be between 1 and 31."))?
            }
            "daysOfWeek" => {
                if !val.is_null() {
                    let arr = val.as_array().ok_or_else(|| {
                        type_error("daysOfWeek", "Collection(microsoft.graph.dayOfWeek)", val)
                    })?;
                    pattern.days_of_week = arr
                        .iter()
                        .map(|d| {
                            parse_member(
                                "daysOfWeek",
                                "microsoft.graph.dayOfWeek",
                                d,
                                &DAYS_OF_WEEK,
                            )
                        })
                        .collect::<GraphResult<_>>()?;
                }
            }
            "firstDayOfWeek" => {
                if !val.is_null() {
                    pattern.first_day_of_week = parse_member(
                        "firstDayOfWeek",
                        "microsoft.graph.dayOfWeek",
                        val,
                        &DAYS_OF_WEEK,
                    )?
                }
            }
            "index" => {
                if !val.is_null() {
                    pattern.index =
                        parse_member("index", "microsoft.graph.weekIndex", val, &WEEK_INDEXES)?
                }
            }
            k if k.starts_with('@') => {}
            other => return Err(unknown_property(other, "microsoft.graph.recurrencePattern")),
        }
    }
    if !pv.contains_key("interval") {
        return Err(recurrence_error(
            "The recurrence pattern interval must be at least 1.",
        ));
    }
    let range_kind = rv
        .get("type")
        .map(|t| json_str("type", t).map(str::to_ascii_lowercase))
        .transpose()?
        .unwrap_or_default();
    let start_date = parse_date(
        "startDate",
        rv.get("startDate")
            .ok_or_else(|| recurrence_error("The recurrence range startDate is missing."))?,
    )?;
    let kind = match range_kind.as_str() {
        "enddate" => RangeKind::EndDate(parse_date(
            "endDate",
            rv.get("endDate")
                .ok_or_else(|| recurrence_error("An endDate range requires endDate."))?,
        )?),
        "noend" => RangeKind::NoEnd,
        "numbered" => RangeKind::Numbered(json_u32(
            "numberOfOccurrences",
            rv.get("numberOfOccurrences").unwrap_or(&Value::Null),
        )?),
        other => {
            return Err(GraphError::bad_request(
                "RequestBodyRead",
                format!(
                    "The value '{other}' is not valid for the property 'type' of type 'microsoft.graph.recurrenceRangeType'."
                ),
            ));
        }
    };
    for k in rv.keys() {
        if !matches!(
            k.as_str(),
            "type" | "startDate" | "endDate" | "numberOfOccurrences" | "recurrenceTimeZone"
        ) && !k.starts_with('@')
        {
            return Err(unknown_property(k, "microsoft.graph.recurrenceRange"));
        }
    }
    let rtz = match rv.get("recurrenceTimeZone") {
        Some(Value::Null) | None => None,
        Some(v) => {
            let s = json_str("recurrenceTimeZone", v)?;
            if s.is_empty() {
                None
            } else {
                Some(s.to_owned())
            }
        }
    };
    let time_zone = rtz.unwrap_or_else(|| default_tz.to_owned());
    if resolve_tz(&time_zone).is_none() {
        return Err(tz_not_supported(&time_zone));
    }
    let rule = Recurrence {
        pattern,
        range: Range {
            start_date,
            kind,
            // Normalised so that a recurrence read back and PATCHed unchanged compares equal.
            recurrence_time_zone: Some(time_zone.clone()),
        },
    };
    rule.validate()
        .map_err(|e| recurrence_error(e.to_string()))?;
    Ok(SeriesRecurrence { rule, time_zone })
}

// ---------------------------------------------------------------------------------------------
// Errors shared by the parsers
// ---------------------------------------------------------------------------------------------

/// `400 TimeZoneNotSupportedException` for a zone name Graph does not know.
pub fn tz_not_supported(name: &str) -> GraphError {
    GraphError::bad_request(
        "TimeZoneNotSupportedException",
        format!(
            "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."
        ),
    )
}

/// `400 RequestBodyRead` for a property the type does not define (the Outlook backend's words).
pub fn unknown_property(name: &str, type_name: &str) -> GraphError {
    GraphError::bad_request(
        "RequestBodyRead",
        format!(
            "The property '{name}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ),
    )
}

/// The generic validation failure Exchange answers for inconsistent event data.
pub fn validation_failure() -> GraphError {
    GraphError::bad_request(
        "ErrorPropertyValidationFailure",
        "At least one property failed validation.",
    )
}

// ---------------------------------------------------------------------------------------------
// Parsing POST / PATCH bodies
// ---------------------------------------------------------------------------------------------

/// Server-side defaults for a new event.
#[derive(Debug, Clone, Default)]
pub struct EventDefaults {
    /// The mailbox owner: the organizer of events created in the mailbox.
    pub organizer: EmailAddress,
}

/// A parsed POST/PATCH body.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// The full event data after applying the body to `existing` (or to defaults).
    pub data: EventData,
    /// `None`: not in the body; `Some(None)`: `"recurrence": null`; `Some(Some(r))`: set.
    pub recurrence: Option<Option<SeriesRecurrence>>,
    pub transaction_id: Option<String>,
    /// `singleValueExtendedProperties` from the body (merged by id by the caller).
    pub extended_properties: Option<Vec<ExtendedProperty>>,
    /// The body's property names (as sent).
    pub present: BTreeSet<String>,
}

/// Read-only (server-computed) event properties: accepted in a body and ignored, as Graph does
/// when clients send back an event they read.
const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "uid",
    "type",
    "seriesMasterId",
    "webLink",
    "isOrganizer",
    "hasAttachments",
    "bodyPreview",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "originalStart",
    "responseStatus",
    "isDraft",
    "onlineMeetingUrl",
    "onlineMeeting",
    "onlineMeetingProvider",
    "cancelledOccurrences",
    "exceptionOccurrences",
    "occurrenceId",
    "calendar",
    "instances",
    "attachments",
    "extensions",
    "multiValueExtendedProperties",
];

fn parse_dttz(prop: &str, v: &Value) -> GraphResult<LocalDateTime> {
    let obj = v
        .as_object()
        .ok_or_else(|| type_error(prop, "microsoft.graph.dateTimeTimeZone", v))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "dateTime" | "timeZone") && !k.starts_with('@') {
            return Err(unknown_property(k, "microsoft.graph.dateTimeTimeZone"));
        }
    }
    let tz_name = match obj.get("timeZone") {
        None | Some(Value::Null) => "UTC".to_owned(),
        Some(t) => json_str("timeZone", t)?.trim().to_owned(),
    };
    let tz = resolve_tz(&tz_name).ok_or_else(|| tz_not_supported(&tz_name))?;
    let raw = obj
        .get("dateTime")
        .ok_or_else(validation_failure)
        .and_then(|d| json_str("dateTime", d))?
        .trim();
    let date_time = parse_local_or_instant(raw, &tz)
        .ok_or_else(|| type_error("dateTime", "Edm.String", &Value::String(raw.to_owned())))?;
    Ok(LocalDateTime {
        date_time,
        time_zone: tz_name,
    })
}

/// Parses `dateTime` text: a local date-time, a date (midnight), or an instant with an offset
/// (shown in `tz`).
fn parse_local_or_instant(raw: &str, tz: &TimeZone) -> Option<civil::DateTime> {
    if let Ok(dt) = raw.parse::<civil::DateTime>() {
        // jiff accepts an offset-less text here; texts with a Z/offset fail and fall through.
        if !raw.ends_with('Z') && !raw.ends_with('z') {
            return Some(dt);
        }
    }
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Some(ts.to_zoned(tz.clone()).datetime());
    }
    raw.parse::<civil::Date>()
        .ok()
        .map(|d| d.to_datetime(civil::Time::midnight()))
}

fn parse_email(prop: &str, v: &Value) -> GraphResult<EmailAddress> {
    let obj = v
        .as_object()
        .ok_or_else(|| type_error(prop, "microsoft.graph.emailAddress", v))?;
    let mut e = EmailAddress::default();
    for (k, val) in obj {
        match k.as_str() {
            "name" => e.name = val.as_str().unwrap_or_default().to_owned(),
            "address" => e.address = val.as_str().unwrap_or_default().to_owned(),
            k if k.starts_with('@') => {}
            other => return Err(unknown_property(other, "microsoft.graph.emailAddress")),
        }
    }
    Ok(e)
}

fn parse_attendees(v: &Value) -> GraphResult<Vec<Attendee>> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    let arr = v
        .as_array()
        .ok_or_else(|| type_error("attendees", "Collection(microsoft.graph.attendee)", v))?;
    if arr.len() > 500 {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "An event can have at most 500 attendees.",
        ));
    }
    arr.iter()
        .map(|a| {
            let obj = a
                .as_object()
                .ok_or_else(|| type_error("attendees", "microsoft.graph.attendee", a))?;
            let mut at = Attendee::default();
            for (k, val) in obj {
                match k.as_str() {
                    "emailAddress" => at.email = parse_email("emailAddress", val)?,
                    "type" => {
                        if !val.is_null() {
                            at.kind = parse_enum::<AttendeeType>(
                                "type",
                                "microsoft.graph.attendeeType",
                                val,
                            )?
                        }
                    }
                    "status" => {
                        if let Some(r) = val.get("response").filter(|r| !r.is_null()) {
                            at.response = parse_enum::<ResponseType>(
                                "response",
                                "microsoft.graph.responseType",
                                r,
                            )?;
                        }
                    }
                    "proposedNewTime" => {}
                    k if k.starts_with('@') => {}
                    other => return Err(unknown_property(other, "microsoft.graph.attendee")),
                }
            }
            Ok(at)
        })
        .collect()
}

fn parse_location(v: &Value) -> GraphResult<Location> {
    if v.is_null() {
        return Ok(Location::default());
    }
    let obj = v
        .as_object()
        .ok_or_else(|| type_error("location", "microsoft.graph.location", v))?;
    let mut l = Location {
        location_type: "default".to_owned(),
        ..Location::default()
    };
    for (k, val) in obj {
        match k.as_str() {
            "displayName" => l.display_name = val.as_str().unwrap_or_default().to_owned(),
            "locationEmailAddress" | "locationUri" => {
                l.location_email = val.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
            }
            "locationType" => {
                if let Some(s) = val.as_str() {
                    let t: Value = parse_enum::<LocationTypeName>(
                        "locationType",
                        "microsoft.graph.locationType",
                        val,
                    )
                    .map(|t| Value::String(t.0))?;
                    l.location_type = t.as_str().unwrap_or(s).to_owned();
                }
            }
            "address" => l.address = parse_address(val)?,
            "coordinates" => l.coordinates = parse_coordinates(val)?,
            "uniqueId" | "uniqueIdType" => {}
            k if k.starts_with('@') => {}
            other => return Err(unknown_property(other, "microsoft.graph.location")),
        }
    }
    Ok(l)
}

/// `locations`: `null` → none.
fn parse_locations(v: &Value) -> GraphResult<Vec<Location>> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    v.as_array()
        .ok_or_else(|| type_error("locations", "Collection(microsoft.graph.location)", v))?
        .iter()
        .map(parse_location)
        .collect()
}

/// The `location` that corresponds to a `locations` list given without one: the only entry,
/// or the entries' names joined with `; ` (how Exchange names a multi-location meeting).
fn primary_location(list: &[Location]) -> Location {
    match list {
        [] => Location::default(),
        [only] => only.clone(),
        many => Location {
            display_name: many
                .iter()
                .map(|l| l.display_name.as_str())
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            location_type: "default".to_owned(),
            ..Location::default()
        },
    }
}

/// `physicalAddress` (v1.0 members); `null` → none.
fn parse_address(v: &Value) -> GraphResult<Option<PhysicalAddress>> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| type_error("address", "microsoft.graph.physicalAddress", v))?;
    let mut a = PhysicalAddress::default();
    for (k, val) in obj {
        let slot = match k.as_str() {
            "street" => &mut a.street,
            "city" => &mut a.city,
            "state" => &mut a.state,
            "countryOrRegion" => &mut a.country_or_region,
            "postalCode" => &mut a.postal_code,
            k if k.starts_with('@') => continue,
            other => return Err(unknown_property(other, "microsoft.graph.physicalAddress")),
        };
        *slot = if val.is_null() {
            None
        } else {
            Some(json_str(k, val)?.to_owned())
        };
    }
    Ok(Some(a))
}

/// `outlookGeoCoordinates` (Edm.Double members); `null` → none.
fn parse_coordinates(v: &Value) -> GraphResult<Option<GeoCoordinates>> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| type_error("coordinates", "microsoft.graph.outlookGeoCoordinates", v))?;
    let mut c = GeoCoordinates::default();
    for (k, val) in obj {
        let slot = match k.as_str() {
            "latitude" => &mut c.latitude,
            "longitude" => &mut c.longitude,
            "altitude" => &mut c.altitude,
            "accuracy" => &mut c.accuracy,
            "altitudeAccuracy" => &mut c.altitude_accuracy,
            k if k.starts_with('@') => continue,
            other => {
                return Err(unknown_property(
                    other,
                    "microsoft.graph.outlookGeoCoordinates",
                ));
            }
        };
        *slot = match val {
            Value::Null => None,
            Value::Number(n) => Some(n.clone()),
            other => return Err(type_error(k, "Edm.Double", other)),
        };
    }
    Ok(Some(c))
}

/// A validated `locationType` member name.
struct LocationTypeName(String);
impl<'de> serde::Deserialize<'de> for LocationTypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        const MEMBERS: &[&str] = &[
            "default",
            "conferenceRoom",
            "homeAddress",
            "businessAddress",
            "geoCoordinates",
            "streetAddress",
            "hotel",
            "restaurant",
            "localBusiness",
            "postalAddress",
        ];
        MEMBERS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(&s))
            .map(|m| LocationTypeName((*m).to_owned()))
            .ok_or_else(|| serde::de::Error::custom("unknown locationType"))
    }
}

/// Validates a `singleValueExtendedProperty` id: `"{type} {guid} Name {name}"`,
/// `"{type} {guid} Id 0x8012"` or `"{type} 0x4001001E"`.
pub fn valid_extended_property_id(id: &str) -> bool {
    const TYPES: &[&str] = &[
        "Binary",
        "Boolean",
        "CLSID",
        "Currency",
        "Double",
        "Float",
        "Integer",
        "Long",
        "Object",
        "Short",
        "String",
        "SystemTime",
        "ApplicationTime",
        "Null",
    ];
    let parts: Vec<&str> = id.split(' ').collect();
    let Some(ty) = parts.first() else {
        return false;
    };
    let base = ty.strip_suffix("Array").unwrap_or(ty);
    if !TYPES.iter().any(|t| t.eq_ignore_ascii_case(base)) {
        return false;
    }
    let is_hex = |s: &str| {
        s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .is_some_and(|h| {
                !h.is_empty() && h.len() <= 8 && h.chars().all(|c| c.is_ascii_hexdigit())
            })
    };
    let is_guid = |s: &str| {
        s.strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .is_some_and(|g| uuid::Uuid::parse_str(g).is_ok())
    };
    match parts.len() {
        2 => is_hex(parts[1]),
        4 if parts[2].eq_ignore_ascii_case("Id") => is_guid(parts[1]) && is_hex(parts[3]),
        n if n >= 4 && parts[2].eq_ignore_ascii_case("Name") => {
            is_guid(parts[1]) && !parts[3..].join(" ").trim().is_empty()
        }
        _ => false,
    }
}

fn parse_extended_properties(v: &Value) -> GraphResult<Vec<ExtendedProperty>> {
    let arr = v.as_array().ok_or_else(|| {
        type_error(
            "singleValueExtendedProperties",
            "Collection(microsoft.graph.singleValueLegacyExtendedProperty)",
            v,
        )
    })?;
    arr.iter()
        .map(|p| {
            let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
            let value = match p.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if let Some(obj) = p.as_object() {
                for k in obj.keys() {
                    if !matches!(k.as_str(), "id" | "value") && !k.starts_with('@') {
                        return Err(unknown_property(
                            k,
                            "microsoft.graph.singleValueLegacyExtendedProperty",
                        ));
                    }
                }
            }
            if !valid_extended_property_id(id) {
                return Err(GraphError::bad_request(
                    "ErrorInvalidProperty",
                    format!("The extended property id '{id}' is not valid. Use '{{type}} {{guid}} Name {{name}}', '{{type}} {{guid}} Id {{0x8000-0xFFFE}}' or '{{type}} {{proptag}}'."),
                ));
            }
            Ok(ExtendedProperty { id: id.to_owned(), value })
        })
        .collect()
}

fn default_data(defaults: &EventDefaults) -> EventData {
    let midnight = civil::date(2000, 1, 1).to_datetime(civil::Time::midnight());
    EventData {
        subject: String::new(),
        body: Body {
            content_type: "html".to_owned(),
            content: String::new(),
        },
        start: LocalDateTime {
            date_time: midnight,
            time_zone: "UTC".to_owned(),
        },
        end: LocalDateTime {
            date_time: midnight,
            time_zone: "UTC".to_owned(),
        },
        is_all_day: false,
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
        location: Location::default(),
        locations: Vec::new(),
        attendees: Vec::new(),
        organizer: defaults.organizer.clone(),
        categories: Vec::new(),
        is_reminder_on: true,
        reminder_minutes_before_start: 15,
        is_online_meeting: false,
        response_requested: true,
        allow_new_time_proposals: true,
        hide_attendees: false,
        is_cancelled: false,
    }
}

/// Wraps an HTML body the way Exchange stores it.
fn normalise_body(content_type: &str, content: &str) -> Body {
    let html = content_type.eq_ignore_ascii_case("html");
    let content = if html
        && !content
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("<html")
        && !content.is_empty()
    {
        format!("<html>\r\n<head>\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n")
    } else {
        content.to_owned()
    };
    Body {
        content_type: if html {
            "html".to_owned()
        } else {
            "text".to_owned()
        },
        content,
    }
}

/// Parses a POST (`existing = None`) or PATCH body into event data. Unknown properties →
/// `400 RequestBodyRead`; unknown zones → `400 TimeZoneNotSupportedException`; all-day events
/// must start and end at midnight; `end` must not be before `start`.
pub fn parse_event_input(
    v: &Value,
    existing: Option<&EventData>,
    defaults: &EventDefaults,
) -> GraphResult<ParsedEvent> {
    let obj = v.as_object().ok_or_else(|| {
        GraphError::bad_request(
            "RequestBodyRead",
            "The request body must be a JSON object (microsoft.graph.event).",
        )
    })?;
    let mut data = existing.cloned().unwrap_or_else(|| default_data(defaults));
    let mut out = ParsedEvent {
        data: data.clone(),
        recurrence: None,
        transaction_id: None,
        extended_properties: None,
        present: obj.keys().cloned().collect(),
    };
    let mut recurrence_raw: Option<&Value> = None;
    for (k, val) in obj {
        match k.as_str() {
            "subject" => {
                data.subject = if val.is_null() {
                    String::new()
                } else {
                    json_str(k, val)?.to_owned()
                }
            }
            "body" => {
                if val.is_null() {
                    data.body = normalise_body("html", "");
                } else {
                    let b = val
                        .as_object()
                        .ok_or_else(|| type_error(k, "microsoft.graph.itemBody", val))?;
                    for bk in b.keys() {
                        if !matches!(bk.as_str(), "contentType" | "content") && !bk.starts_with('@')
                        {
                            return Err(unknown_property(bk, "microsoft.graph.itemBody"));
                        }
                    }
                    let ct = b
                        .get("contentType")
                        .and_then(Value::as_str)
                        .unwrap_or("text");
                    if !ct.eq_ignore_ascii_case("html") && !ct.eq_ignore_ascii_case("text") {
                        return Err(GraphError::bad_request(
                            "RequestBodyRead",
                            format!(
                                "The value '{ct}' is not valid for the property 'contentType' of type 'microsoft.graph.bodyType'."
                            ),
                        ));
                    }
                    let content = b.get("content").and_then(Value::as_str).unwrap_or_default();
                    data.body = normalise_body(ct, content);
                }
            }
            "start" => data.start = parse_dttz(k, val)?,
            "end" => data.end = parse_dttz(k, val)?,
            "isAllDay" => data.is_all_day = json_bool(k, val)?,
            "showAs" => data.show_as = parse_enum(k, "microsoft.graph.freeBusyStatus", val)?,
            "sensitivity" => data.sensitivity = parse_enum(k, "microsoft.graph.sensitivity", val)?,
            "importance" => data.importance = parse_enum(k, "microsoft.graph.importance", val)?,
            // Graph: `location` and `locations` always correspond; setting `location` alone
            // replaces `locations` with it.
            "location" => {
                data.location = parse_location(val)?;
                if !obj.contains_key("locations") {
                    data.locations = Vec::new();
                }
            }
            "locations" => {
                let list = parse_locations(val)?;
                if !obj.contains_key("location") {
                    data.location = primary_location(&list);
                }
                data.locations = list;
            }
            "attendees" => data.attendees = parse_attendees(val)?,
            "organizer" => {
                if let Some(e) = val.get("emailAddress") {
                    data.organizer = parse_email("emailAddress", e)?;
                }
            }
            "categories" => {
                data.categories = if val.is_null() {
                    Vec::new()
                } else {
                    val.as_array()
                        .ok_or_else(|| type_error(k, "Collection(Edm.String)", val))?
                        .iter()
                        .map(|c| json_str(k, c).map(str::to_owned))
                        .collect::<GraphResult<_>>()?
                }
            }
            "isReminderOn" => data.is_reminder_on = json_bool(k, val)?,
            "reminderMinutesBeforeStart" => {
                data.reminder_minutes_before_start = val
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| type_error(k, "Edm.Int32", val))?
            }
            "isOnlineMeeting" => data.is_online_meeting = json_bool(k, val)?,
            "responseRequested" => data.response_requested = json_bool(k, val)?,
            "allowNewTimeProposals" => data.allow_new_time_proposals = json_bool(k, val)?,
            "hideAttendees" => data.hide_attendees = json_bool(k, val)?,
            "isCancelled" => {
                json_bool(k, val)?;
            }
            "transactionId" => {
                out.transaction_id = match val {
                    Value::Null => None,
                    _ => Some(json_str(k, val)?.to_owned()),
                }
            }
            "recurrence" => recurrence_raw = Some(val),
            "singleValueExtendedProperties" => {
                out.extended_properties = Some(parse_extended_properties(val)?)
            }
            k if k.starts_with('@') || k.contains("@odata.") => {}
            k if READ_ONLY.contains(&k) => {}
            other => return Err(unknown_property(other, "Microsoft.OutlookServices.Event")),
        }
    }
    if existing.is_none() && (!obj.contains_key("start") || !obj.contains_key("end")) {
        return Err(validation_failure());
    }
    if data.is_all_day {
        let midnight = civil::Time::midnight();
        if data.start.date_time.time() != midnight || data.end.date_time.time() != midnight {
            return Err(GraphError::bad_request(
                "ErrorInvalidRequest",
                "Your request can't be completed. An all-day event's start and end must be set to midnight (00:00:00).",
            ));
        }
        if data.end.date_time <= data.start.date_time {
            return Err(validation_failure());
        }
    }
    let (s, e) = match (
        crate::expand::to_timestamp(&data.start),
        crate::expand::to_timestamp(&data.end),
    ) {
        (Some(s), Some(e)) => (s, e),
        _ => return Err(validation_failure()),
    };
    if e < s {
        return Err(validation_failure());
    }
    if let Some(r) = recurrence_raw {
        out.recurrence = Some(if r.is_null() {
            None
        } else {
            Some(parse_recurrence(r, &data.start.time_zone)?)
        });
    }
    out.data = data;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Prefer headers
// ---------------------------------------------------------------------------------------------

/// Every preference of every `Prefer` header line (RFC 7240: several lines and/or
/// comma-separated), as (lower-cased name, unquoted value).
pub fn prefer_values(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for h in headers.get_all("prefer") {
        let Ok(s) = h.to_str() else { continue };
        for part in split_outside_quotes(s, ',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            // Parameters after ';' are ignored.
            let pref = split_outside_quotes(part, ';')
                .into_iter()
                .next()
                .unwrap_or_default();
            let (name, value) = match pref.split_once('=') {
                Some((n, v)) => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (n.trim(), Some(v.to_owned()))
                }
                None => (pref.trim(), None),
            };
            out.push((name.to_ascii_lowercase(), value));
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// A `Prefer: outlook.timezone` the request asked for.
#[derive(Debug, Clone)]
pub struct PreferTz {
    /// The name as the client sent it (echoed in `timeZone` and `Preference-Applied`).
    pub name: String,
    pub tz: TimeZone,
}

impl PreferTz {
    /// The `Preference-Applied` header value.
    pub fn preference_applied(&self) -> String {
        format!("outlook.timezone=\"{}\"", self.name)
    }
    /// As [`RenderOpts::time_zone`] wants it.
    pub fn render(&self) -> (String, TimeZone) {
        (self.name.clone(), self.tz.clone())
    }
}

/// Parses `Prefer: outlook.timezone="…"` (case-insensitive name; Windows or IANA zone).
/// Unknown zone → `400 TimeZoneNotSupportedException`.
pub fn prefer_time_zone(headers: &HeaderMap) -> GraphResult<Option<PreferTz>> {
    let Some((_, value)) = prefer_values(headers)
        .into_iter()
        .rev()
        .find(|(n, _)| n == "outlook.timezone")
    else {
        return Ok(None);
    };
    let name = value.unwrap_or_default().trim().to_owned();
    let tz = resolve_tz(&name).ok_or_else(|| tz_not_supported(&name))?;
    Ok(Some(PreferTz { name, tz }))
}

/// `Prefer: odata.maxpagesize=N`, if present and valid.
pub fn prefer_max_page_size(headers: &HeaderMap) -> Option<usize> {
    prefer_values(headers)
        .into_iter()
        .rev()
        .find(|(n, _)| n == "odata.maxpagesize")
        .and_then(|(_, v)| v?.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

// ---------------------------------------------------------------------------------------------
// OData: context URLs, paging, query options
// ---------------------------------------------------------------------------------------------

/// `{base}/v1.0/$metadata#{fragment}`, e.g. fragment `users('…')/events`.
pub fn context_url(base_url: &str, fragment: &str) -> String {
    format!("{base_url}/v1.0/$metadata#{fragment}")
}

/// The `@odata.context` fragment of a collection with `$select` applied:
/// `users('id')/events(subject,start)`.
pub fn with_select(fragment: &str, select: Option<&[String]>) -> String {
    match select {
        Some(s) if !s.is_empty() => format!("{fragment}({})", s.join(",")),
        _ => fragment.to_owned(),
    }
}

/// A collection page: `{"@odata.context", "value", "@odata.nextLink"?}`.
pub fn odata_page(context: &str, value: Vec<Value>, next_link: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert("@odata.context".into(), json!(context));
    m.insert("value".into(), Value::Array(value));
    if let Some(n) = next_link {
        m.insert("@odata.nextLink".into(), json!(n));
    }
    Value::Object(m)
}

/// A page of `items` under `$skip`/`$top` and the `$skip` of the next page, if any.
pub fn paginate<T>(items: Vec<T>, skip: usize, top: usize) -> (Vec<T>, Option<usize>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(skip).take(top).collect();
    let next = skip.saturating_add(top);
    (page, (next < total).then_some(next))
}

/// `{base}/v1.0{path}?{query with $skip=skip}` (other query options kept, as Graph does).
pub fn next_link(base_url: &str, path: &str, query: &[(String, String)], skip: usize) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
        .cloned()
        .collect();
    pairs.push(("$skip".to_owned(), skip.to_string()));
    let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{base_url}/v1.0{path}?{qs}")
}

/// Case-insensitive lookup of a query option (`$top`, `startDateTime`, …).
pub fn query_get<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let bare = name.trim_start_matches('$');
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(bare))
        .map(|(_, v)| v.as_str())
}

/// `$top`: 1..=1000 (default `default`); anything else → 400.
pub fn parse_top(query: &[(String, String)], default: usize) -> GraphResult<usize> {
    match query_get(query, "$top") {
        None => Ok(default),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(1000)),
            _ => Err(GraphError::bad_request(
                "BadRequest",
                format!(
                    "Invalid value '{t}' for $top query option found. The $top query option requires a non-negative integer value."
                ),
            )),
        },
    }
}

/// `$skip` (default 0); anything but a non-negative integer → 400.
pub fn parse_skip(query: &[(String, String)]) -> GraphResult<usize> {
    match query_get(query, "$skip") {
        None => Ok(0),
        Some(t) => t.trim().parse::<usize>().map_err(|_| {
            GraphError::bad_request(
                "BadRequest",
                format!("Invalid value '{t}' for $skip query option found. The $skip query option requires a non-negative integer value."),
            )
        }),
    }
}

/// `$select=a,b` → `["a","b"]`.
pub fn parse_select(query: &[(String, String)]) -> Option<Vec<String>> {
    query_get(query, "$select").map(|s| {
        s.split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

/// `$expand=singleValueExtendedProperties` or
/// `$expand=singleValueExtendedProperties($filter=id eq '…' [or id eq '…'])`.
pub fn parse_expand(query: &[(String, String)]) -> GraphResult<Option<ExpandProps>> {
    let Some(raw) = query_get(query, "$expand") else {
        return Ok(None);
    };
    let raw = raw.trim();
    let bad = || {
        GraphError::bad_request(
            "BadRequest",
            format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{raw}' on type 'microsoft.graph.event'."
            ),
        )
    };
    let lower = raw.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("singlevalueextendedproperties") else {
        return Err(bad());
    };
    let rest_orig = &raw[raw.len() - rest.len()..];
    let rest_orig = rest_orig.trim();
    if rest_orig.is_empty() {
        return Ok(Some(ExpandProps::All));
    }
    let inner = rest_orig
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(bad)?
        .trim();
    let filter = inner
        .split_once('=')
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("$filter"))
        .map(|(_, v)| v.trim())
        .ok_or_else(bad)?;
    let mut ids = Vec::new();
    for clause in split_keyword(filter, " or ") {
        let clause = clause.trim();
        let Some((lhs, rhs)) = split_eq(clause) else {
            return Err(bad());
        };
        if !lhs.eq_ignore_ascii_case("id") {
            return Err(bad());
        }
        ids.push(unquote(&rhs).ok_or_else(bad)?);
    }
    Ok(Some(ExpandProps::Ids(ids)))
}

/// Splits on a keyword (case-insensitive) outside single quotes.
pub fn split_keyword(s: &str, kw: &str) -> Vec<String> {
    let lower = s.to_ascii_lowercase();
    let kw = kw.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted && lower[i..].starts_with(&kw) {
            parts.push(s[start..i].to_owned());
            i += kw.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(s[start..].to_owned());
    parts
}

/// `lhs eq rhs` → (lhs, rhs), outside quotes.
pub fn split_eq(s: &str) -> Option<(String, String)> {
    let parts = split_keyword(s, " eq ");
    if parts.len() != 2 {
        return None;
    }
    Some((parts[0].trim().to_owned(), parts[1].trim().to_owned()))
}

/// `'it''s'` → `it's`.
pub fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// Parses `startDateTime`/`endDateTime`: ISO 8601 with an offset, or without one (UTC).
pub fn parse_window_time(raw: &str) -> Option<Timestamp> {
    let raw = raw.trim();
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = raw.parse::<civil::DateTime>() {
        return dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    raw.parse::<civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

/// Reads the `startDateTime`/`endDateTime` window of calendarView and instances. Missing →
/// `400 ErrorInvalidParameter`; unparsable → `400 ErrorInvalidParameter` naming the value.
pub fn parse_window(query: &[(String, String)]) -> GraphResult<(Timestamp, Timestamp)> {
    let s = query_get(query, "startDateTime");
    let e = query_get(query, "endDateTime");
    let (Some(s), Some(e)) = (s, e) else {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let parse = |name: &str, v: &str| {
        parse_window_time(v).ok_or_else(|| {
            GraphError::bad_request(
                "ErrorInvalidParameter",
                format!("The parameter '{name}' has an invalid value '{v}'."),
            )
        })
    };
    Ok((parse("StartDateTime", s)?, parse("EndDateTime", e)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `event_json_text` writes exactly what `event_json(…).to_string()` does, for every
    /// instance of the demo tenant and of scale mailboxes, seen from the owner and from every
    /// attendee (plus the `@odata.type` variant), also with strings that need escaping.
    #[test]
    fn event_json_text_matches_event_json() {
        use crate::{Seed, SimOptions};
        let mut checked = 0usize;
        let mut zoned = 0usize;
        let zones = [
            ("UTC", TimeZone::UTC),
            (
                "Pacific Standard Time",
                resolve_tz("Pacific Standard Time").unwrap(),
            ),
            ("Asia/Kolkata", resolve_tz("Asia/Kolkata").unwrap()),
            ("Odd \"zone\"", resolve_tz("Europe/Berlin").unwrap()),
        ];
        for seed in [Seed::Demo, Seed::Empty] {
            let opts = SimOptions {
                seed,
                scale: 3,
                ..Default::default()
            };
            let (dir, _) = crate::seed::build(&opts).unwrap();
            let now = Timestamp::now();
            let ws = now
                .checked_sub(jiff::SignedDuration::from_hours(24 * 400))
                .unwrap();
            let we = now
                .checked_add(jiff::SignedDuration::from_hours(24 * 800))
                .unwrap();
            for user in dir.tenants.iter().flat_map(|t| t.users()) {
                for cal in &user.calendars {
                    let mut cal = (**cal).clone();
                    // Strings that need escaping, on one event of each calendar.
                    if let Some(ev) = cal.events.values_mut().next() {
                        ev.data.subject = "q\"b\\s/\u{1}\u{1f}\n\t\u{7f} é 😀 <&>".to_owned();
                        ev.data.body.content = "line\r\nnext \u{8}\u{c}".to_owned();
                        ev.change_key = "ck\"\\q".to_owned();
                    }
                    for inst in crate::expand::instances(&cal, ws, we) {
                        let mut who: Vec<&str> = vec![user.mail.as_str(), ""];
                        who.extend(inst.data.attendees.iter().map(|a| a.email.address.as_str()));
                        for m in who {
                            let opts = RenderOpts {
                                mailbox: Some(m.to_owned()),
                                ..Default::default()
                            };
                            let mut v = event_json(&inst, &opts);
                            assert_eq!(event_json_text(&inst, m, false, None), v.to_string());
                            if let Value::Object(o) = &mut v {
                                o.insert("@odata.type".into(), json!("#microsoft.graph.event"));
                            }
                            assert_eq!(event_json_text(&inst, m, true, None), v.to_string());
                            checked += 1;
                        }
                        // In a preferred zone, as the client named it (a label that needs
                        // escaping too).
                        for (label, tz) in &zones {
                            let opts = RenderOpts {
                                mailbox: Some(user.mail.clone()),
                                time_zone: Some((label.to_string(), tz.clone())),
                                ..Default::default()
                            };
                            let mut v = event_json(&inst, &opts);
                            if let Value::Object(o) = &mut v {
                                o.insert("@odata.type".into(), json!("#microsoft.graph.event"));
                            }
                            let text = event_json_text(&inst, &user.mail, true, Some((label, tz)));
                            assert_eq!(text, v.to_string());
                            zoned += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
        assert!(zoned > 500, "{zoned}");
    }

    #[test]
    fn prefer_parsing_handles_lines_commas_quotes_and_case() {
        let mut h = HeaderMap::new();
        h.append(
            "prefer",
            "odata.maxpagesize=5, Outlook.TimeZone=\"W. Europe Standard Time\""
                .parse()
                .unwrap(),
        );
        h.append(
            "prefer",
            "outlook.body-content-type=\"text\"".parse().unwrap(),
        );
        let tz = prefer_time_zone(&h).unwrap().unwrap();
        assert_eq!(tz.name, "W. Europe Standard Time");
        assert_eq!(
            tz.preference_applied(),
            "outlook.timezone=\"W. Europe Standard Time\""
        );
        assert_eq!(prefer_max_page_size(&h), Some(5));
        let mut bad = HeaderMap::new();
        bad.append(
            "prefer",
            "outlook.timezone=\"Nowhere/City\"".parse().unwrap(),
        );
        assert_eq!(
            prefer_time_zone(&bad).unwrap_err().code,
            "TimeZoneNotSupportedException"
        );
        assert!(prefer_time_zone(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn extended_property_ids() {
        assert!(valid_extended_property_id(
            "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color"
        ));
        assert!(valid_extended_property_id(
            "Integer {66f5a359-4659-4830-9070-00047ec6ac6e} Id 0x8012"
        ));
        assert!(valid_extended_property_id("String 0x4001001E"));
        assert!(valid_extended_property_id(
            "StringArray {66f5a359-4659-4830-9070-00047ec6ac6e} Name Tags"
        ));
        assert!(!valid_extended_property_id("String {not-a-guid} Name X"));
        assert!(!valid_extended_property_id("Strin 0x4001001E"));
        assert!(!valid_extended_property_id(
            "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name"
        ));
        assert!(!valid_extended_property_id(""));
    }

    #[test]
    fn seven_fractional_digits() {
        let ts: Timestamp = "2017-08-30T07:06:33.8673345Z".parse().unwrap();
        assert_eq!(fmt_timestamp(ts), "2017-08-30T07:06:33.8673345Z");
        let ts: Timestamp = "2017-08-30T07:06:33Z".parse().unwrap();
        assert_eq!(fmt_timestamp(ts), "2017-08-30T07:06:33.0000000Z");
    }

    #[test]
    fn recurrence_json_round_trips() {
        let v = json!({"pattern": {"type": "relativeYearly", "interval": 1, "month": 11,
            "daysOfWeek": ["Thursday"], "index": "fourth"},
            "range": {"type": "numbered", "startDate": "2025-01-01", "numberOfOccurrences": "3"}});
        let r = parse_recurrence(&v, "Pacific Standard Time").unwrap();
        let back = recurrence_json(&r);
        assert_eq!(back["pattern"]["daysOfWeek"], json!(["thursday"]));
        assert_eq!(back["range"]["numberOfOccurrences"], 3);
        assert_eq!(back["range"]["recurrenceTimeZone"], "Pacific Standard Time");
        assert_eq!(parse_recurrence(&back, "UTC").unwrap().rule, r.rule);
    }

    #[test]
    fn recurrence_enums_use_graph_names_in_any_case() {
        let v = json!({
            "pattern": {"type": "RelativeMonthly", "interval": 1, "month": 0, "dayOfMonth": 0,
                        "daysOfWeek": ["monday", "FRIDAY"], "firstDayOfWeek": "sunday", "index": "Last"},
            "range": {"type": "endDate", "startDate": "2024-01-01", "endDate": "2024-12-31",
                      "numberOfOccurrences": 0, "recurrenceTimeZone": "W. Europe Standard Time"}
        });
        let r = parse_recurrence(&v, "UTC").unwrap();
        assert_eq!(r.rule.pattern.kind, PatternType::RelativeMonthly);
        assert_eq!(
            r.rule.pattern.days_of_week,
            vec![DayOfWeek::Monday, DayOfWeek::Friday]
        );
        assert_eq!(r.rule.pattern.index, WeekIndex::Last);
        assert_eq!(
            r.rule.range.kind,
            RangeKind::EndDate("2024-12-31".parse().unwrap())
        );
        assert_eq!(r.time_zone, "W. Europe Standard Time");
        let back = recurrence_json(&r);
        assert_eq!(back["pattern"]["type"], "relativeMonthly");
        assert_eq!(back["pattern"]["daysOfWeek"], json!(["monday", "friday"]));
        assert_eq!(back["pattern"]["firstDayOfWeek"], "sunday");
        assert_eq!(back["pattern"]["index"], "last");
        assert_eq!(back["range"]["type"], "endDate");
        assert_eq!(back["range"]["endDate"], "2024-12-31");
        assert_eq!(parse_recurrence(&back, "UTC").unwrap(), r);

        for (name, kind) in PATTERN_TYPES {
            let v = json!({"type": name.to_ascii_uppercase()});
            assert_eq!(
                parse_member("type", "t", &v["type"], &PATTERN_TYPES).unwrap(),
                kind
            );
        }
        for d in DayOfWeek::ALL {
            assert!(!day_of_week_name(d).is_empty(), "{d:?}");
        }
        let e = parse_member(
            "index",
            "microsoft.graph.weekIndex",
            &json!("fifth"),
            &WEEK_INDEXES,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("'fifth' is not valid for the property 'index'"),
            "{e:?}"
        );
    }

    #[test]
    fn window_times_with_and_without_offsets() {
        assert_eq!(
            parse_window_time("2019-04-08T09:00:00.0000000").unwrap(),
            "2019-04-08T09:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_window_time("2019-11-08T19:00:00-08:00").unwrap(),
            "2019-11-09T03:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_window_time("yesterday").is_none());
    }
}
