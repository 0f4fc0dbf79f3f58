//! What calgate writes: [`EventDraft`] and the Graph event JSON made from it.

use calgate_core::{Person, Sensitivity, ShowAs};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

/// An event calgate writes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub subject: Option<String>,
    /// Plain-text body.
    pub body_text: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// IANA zone the event is scheduled in (sent to Graph as its Windows name).
    pub time_zone: String,
    /// All-day: the dates (end exclusive); `start`/`end` are then ignored.
    pub all_day: Option<(Date, Date)>,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub location: Option<String>,
    pub attendees: Vec<Person>,
    /// Single-value extended properties: (`"String {guid} Name X"`, value).
    pub extended_properties: Vec<(String, String)>,
    /// Graph's `patternedRecurrence` JSON, for a series master.
    pub recurrence: Option<Value>,
}

fn sensitivity_str(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "normal",
        Sensitivity::Personal => "personal",
        Sensitivity::Private => "private",
        Sensitivity::Confidential => "confidential",
    }
}

/// Graph JSON for an event draft: times in the event's zone by its Windows name (what Graph
/// documents), or UTC when the zone has no Windows name.
pub(super) fn draft_json(d: &EventDraft) -> Value {
    let windows = calgate_tz::iana_to_windows(&d.time_zone);
    let zone = windows
        .and_then(|_| jiff::tz::TimeZone::get(&d.time_zone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let zone_name = windows.unwrap_or("UTC");
    let fmt = |t: Timestamp| {
        t.to_zoned(zone.clone())
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (start, end, all_day) = match d.all_day {
        Some((s, e)) => (format!("{s}T00:00:00"), format!("{e}T00:00:00"), true),
        None => (fmt(d.start), fmt(d.end), false),
    };
    let mut v = json!({
        "start": {"dateTime": start, "timeZone": zone_name},
        "end": {"dateTime": end, "timeZone": zone_name},
        "isAllDay": all_day,
        "showAs": d.show_as.as_str(),
        "sensitivity": sensitivity_str(d.sensitivity),
    });
    if let Value::Object(m) = &mut v {
        if let Some(s) = &d.subject {
            m.insert("subject".into(), json!(s));
        }
        if let Some(b) = &d.body_text {
            m.insert("body".into(), json!({"contentType": "text", "content": b}));
        }
        if let Some(l) = &d.location {
            m.insert("location".into(), json!({"displayName": l}));
        }
        if !d.attendees.is_empty() {
            let a: Vec<Value> = d
                .attendees
                .iter()
                .map(|p| json!({"type": "required", "emailAddress": {"name": p.name, "address": p.address}}))
                .collect();
            m.insert("attendees".into(), Value::Array(a));
        }
        if let Some(r) = &d.recurrence {
            m.insert("recurrence".into(), r.clone());
        }
        if !d.extended_properties.is_empty() {
            let p: Vec<Value> = d
                .extended_properties
                .iter()
                .map(|(id, value)| json!({"id": id, "value": value}))
                .collect();
            m.insert("singleValueExtendedProperties".into(), Value::Array(p));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_uses_windows_zone_names() {
        let d = EventDraft {
            subject: Some("x".into()),
            body_text: None,
            start: "2026-07-01T07:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            end: "2026-07-01T08:00:00Z"
                .parse()
                .unwrap_or(Timestamp::UNIX_EPOCH),
            time_zone: "Europe/Berlin".into(),
            all_day: None,
            show_as: ShowAs::Busy,
            sensitivity: Sensitivity::Normal,
            location: None,
            attendees: vec![],
            extended_properties: vec![],
            recurrence: None,
        };
        let v = draft_json(&d);
        assert_eq!(v["start"]["timeZone"], "W. Europe Standard Time");
        assert_eq!(v["start"]["dateTime"], "2026-07-01T09:00:00");
    }
}
