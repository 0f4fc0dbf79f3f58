//! Wire → calgate-core at the edge, plus the small output types of this crate.

use calgate_core::{
    Instance, InstanceType, MailboxKind, Origin, Person, Sensitivity, ShowAs, When,
};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::wire;

/// One change in a delta round.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem {
    /// Created or updated (or replayed: the same change may come again).
    Upsert(Box<Instance>),
    /// `@removed`: deleted, or moved out of the window — drop it.
    Removed {
        exchange_id: String,
        reason: Option<String>,
    },
}

/// Where a delta round goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaNext {
    /// More pages in this round: follow it now.
    NextLink(String),
    /// The round is complete: store it and follow it next round.
    DeltaLink(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage {
    pub items: Vec<DeltaItem>,
    pub next: DeltaNext,
}

/// A directory user (a mailbox owner, a room or an equipment mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub id: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub account_enabled: Option<bool>,
}

/// `mailboxSettings.userPurpose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPurpose {
    User,
    Linked,
    Shared,
    Room,
    Equipment,
    Other(String),
}

impl UserPurpose {
    /// Graph's spelling (`user`, `room`, …).
    pub fn as_str(&self) -> &str {
        match self {
            UserPurpose::User => "user",
            UserPurpose::Linked => "linked",
            UserPurpose::Shared => "shared",
            UserPurpose::Room => "room",
            UserPurpose::Equipment => "equipment",
            UserPurpose::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> UserPurpose {
        match s.to_ascii_lowercase().as_str() {
            "user" => UserPurpose::User,
            "linked" => UserPurpose::Linked,
            "shared" => UserPurpose::Shared,
            "room" => UserPurpose::Room,
            "equipment" => UserPurpose::Equipment,
            _ => UserPurpose::Other(s.to_owned()),
        }
    }
    /// calgate's mailbox kind: rooms and equipment as such, everything else a user mailbox.
    pub fn mailbox_kind(&self) -> MailboxKind {
        match self {
            UserPurpose::Room => MailboxKind::Room,
            UserPurpose::Equipment => MailboxKind::Equipment,
            _ => MailboxKind::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    pub days_of_week: Vec<Weekday>,
    pub start: Option<Time>,
    pub end: Option<Time>,
    /// IANA name when the Windows name is known, else as Graph sent it.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSettings {
    /// IANA name when the Windows name is known, else as Graph sent it.
    pub time_zone: Option<String>,
    pub working_hours: Option<WorkingHours>,
    pub user_purpose: Option<UserPurpose>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomList {
    pub id: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub capacity: Option<i64>,
    pub building: Option<String>,
    pub floor_label: Option<String>,
    pub floor_number: Option<i64>,
    pub booking_type: Option<String>,
}

fn opt(s: &wire::Lenient<String>) -> Option<String> {
    s.non_empty().map(str::to_owned)
}

/// [`opt`] for a value that is read once: the string is moved, not copied.
fn take(s: wire::Lenient<String>) -> Option<String> {
    s.into_inner().filter(|v| !v.trim().is_empty())
}

/// IANA name for a Graph zone name (Windows or IANA), if known.
pub(crate) fn iana(name: &str) -> Option<&'static str> {
    calgate_tz::to_iana(name)
}

/// Reads a `dateTimeTimeZone` as (civil date-time in its zone, the zone).
fn civil(d: &wire::DateTimeTimeZone, what: &str) -> Result<(DateTime, TimeZone), String> {
    let raw = d.date_time.trim();
    let tz_name = d.time_zone.as_deref().unwrap_or("UTC");
    // An explicit offset or Z wins over the zone name. (Graph sends neither: a timestamp is
    // parsed only when the text after the date has one, not tried and failed on every time.)
    let offset = raw.ends_with(['Z', 'z']) || raw.get(10..).is_some_and(|t| t.contains(['+', '-']));
    if let Some(ts) = offset.then(|| raw.parse::<Timestamp>().ok()).flatten() {
        let dt = ts.to_zoned(TimeZone::UTC).datetime();
        return Ok((dt, TimeZone::UTC));
    }
    let dt: DateTime = raw
        .parse()
        .map_err(|_| format!("{what}.dateTime '{raw}' is not a date-time"))?;
    let iana =
        iana(tz_name).ok_or_else(|| format!("{what}.timeZone '{tz_name}' is not a known zone"))?;
    let tz = TimeZone::get(iana)
        .map_err(|_| format!("{what}.timeZone '{tz_name}' ({iana}) is not in the zone database"))?;
    Ok((dt, tz))
}

fn person(r: wire::Recipient) -> Option<Person> {
    let e = r.email_address.into_inner()?;
    let address = take(e.address);
    let name = take(e.name);
    if address.is_none() && name.is_none() {
        return None;
    }
    Some(Person {
        name: name.unwrap_or_default(),
        address: address.unwrap_or_default(),
    })
}

fn is_series_master(ev: &wire::Event) -> bool {
    ev.kind
        .non_empty()
        .is_some_and(|k| k.eq_ignore_ascii_case("seriesMaster"))
}

/// Converts one event (not a removal) to an [`Instance`] of `mailbox`.
pub fn event_to_instance(ev: wire::Event, mailbox: &str) -> Result<Instance, Error> {
    let id = take(ev.id).ok_or_else(|| Error::invalid_data("Graph sent an event without an id"))?;
    let bad = |why: String| Error::invalid_data(format!("Graph sent event {id} with {why}"));
    let start = ev.start.get().ok_or_else(|| bad("no start".into()))?;
    let end = ev.end.get().ok_or_else(|| bad("no end".into()))?;
    let (s_dt, s_tz) = civil(start, "start").map_err(bad)?;
    let (e_dt, e_tz) = civil(end, "end").map_err(bad)?;
    let all_day = ev.is_all_day.get().copied().unwrap_or(false);
    // The event's own zone: where it was scheduled (originalStartTimeZone), else the zone of
    // the times we were sent.
    let zone_name = ev
        .original_start_time_zone
        .non_empty()
        .and_then(iana)
        .or_else(|| start.time_zone.as_deref().and_then(iana))
        .unwrap_or("UTC");
    let zone = TimeZone::get(zone_name).unwrap_or(TimeZone::UTC);
    let (when_start, when_end, dates) = if all_day {
        // All-day events are dates; Graph does not shift them by Prefer: outlook.timezone.
        let (sd, ed): (Date, Date) = (s_dt.date(), e_dt.date());
        let at_midnight = |d: Date| {
            d.to_zoned(zone.clone())
                .map(|z| z.timestamp())
                .map_err(|e| {
                    bad(format!(
                        "an all-day date {d} that does not exist in {zone_name} ({e})"
                    ))
                })
        };
        (at_midnight(sd)?, at_midnight(ed)?, Some((sd, ed)))
    } else {
        let at = |dt: DateTime, tz: &TimeZone| {
            dt.to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| bad(format!("a time {dt} out of range ({e})")))
        };
        (at(s_dt, &s_tz)?, at(e_dt, &e_tz)?, None)
    };
    if when_end < when_start {
        return Err(bad(format!(
            "its end {when_end} before its start {when_start}"
        )));
    }
    let series_master_id = take(ev.series_master_id);
    let kind = match ev.kind.non_empty().map(str::to_ascii_lowercase).as_deref() {
        Some("singleinstance") => InstanceType::SingleInstance,
        Some("occurrence") => InstanceType::Occurrence,
        Some("exception") => InstanceType::Exception,
        Some("seriesmaster") => {
            return Err(bad("type seriesMaster where instances were expected".into()));
        }
        _ if series_master_id.is_some() => InstanceType::Occurrence,
        _ => InstanceType::SingleInstance,
    };
    let last_modified = ev
        .last_modified_date_time
        .non_empty()
        .and_then(|s| s.parse::<Timestamp>().ok());
    let (show_as, sensitivity) = (
        ev.show_as.non_empty().map(ShowAs::parse),
        ev.sensitivity.non_empty().map(Sensitivity::parse),
    );
    Ok(Instance {
        exchange_id: id,
        ical_uid: take(ev.ical_uid),
        mailbox: mailbox.to_owned(),
        kind,
        series_master_id,
        when: When {
            start: when_start,
            end: when_end,
            time_zone: zone_name.to_owned(),
            all_day: dates,
        },
        show_as: show_as.unwrap_or(ShowAs::Unknown),
        sensitivity: sensitivity.unwrap_or(Sensitivity::Normal),
        subject: take(ev.subject),
        location: ev.location.into_inner().and_then(|l| take(l.display_name)),
        body_preview: take(ev.body_preview),
        organizer: ev.organizer.into_inner().and_then(person),
        attendees: ev
            .attendees
            .into_inner()
            .map(|v| {
                v.into_iter()
                    .filter_map(|a| a.into_inner().and_then(person))
                    .collect()
            })
            .unwrap_or_default(),
        web_link: take(ev.web_link),
        change_key: take(ev.change_key),
        last_modified,
        origin: Origin::Exchange,
        booking_id: None,
    })
}

/// Reads a JSON event (e.g. a create/get response) for `mailbox`.
pub fn parse_event(body: &[u8], mailbox: &str) -> Result<Instance, Error> {
    let v: &RawValue = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_data(format!("Graph sent an event that is not JSON ({e})")))?;
    if !v.get().starts_with('{') {
        return Err(Error::invalid_data(
            "Graph sent an event that is not a JSON object",
        ));
    }
    let ev: wire::Event = serde_json::from_str(v.get())
        .map_err(|e| Error::invalid_data(format!("Graph sent an unreadable event ({e})")))?;
    event_to_instance(ev, mailbox)
}

/// A page's items (each the raw JSON text of an object, borrowed from the body), nextLink
/// and deltaLink.
pub(crate) type RawPage<'a> = (Vec<&'a RawValue>, Option<String>, Option<String>);

/// A collection page: its items (raw objects) and links. A body that is not a page — not
/// JSON, not an object, `value` missing or not an array, an item not an object — is
/// `InvalidData`: a broken page must never read as "no more items". Nothing is built as a
/// `Value` tree: the items stay text until each is read into its wire type.
pub(crate) fn parse_page<'a>(body: &'a [u8], what: &str) -> Result<RawPage<'a>, Error> {
    let page: wire::Page<'a> = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_data(format!(
            "Graph sent a {what} page that is not valid JSON ({e}); it may have been truncated"
        ))
    })?;
    let Some(value) = page.value else {
        return Err(Error::invalid_data(format!(
            "Graph sent a {what} page without 'value'"
        )));
    };
    let items: Vec<&'a RawValue> = serde_json::from_str(value.get()).map_err(|_| {
        Error::invalid_data(format!(
            "Graph sent a {what} page whose 'value' is not a list"
        ))
    })?;
    if items.iter().any(|i| !i.get().starts_with('{')) {
        return Err(Error::invalid_data(format!(
            "Graph sent a {what} page with an item that is not an object"
        )));
    }
    Ok((
        items,
        page.next_link.into_inner(),
        page.delta_link.into_inner(),
    ))
}

/// Events, nextLink and deltaLink of a page of events, read in one pass; a broken page gets
/// the error [`parse_page`] words.
fn parse_event_page(body: &[u8], what: &str) -> Result<wire::EventPage, Error> {
    // The body's UTF-8 checked once, in one pass, rather than string by string.
    let read = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<wire::EventPage>(text),
        Err(_) => serde_json::from_slice::<wire::EventPage>(body),
    };
    match read {
        Ok(p) => Ok(p),
        Err(e) => {
            parse_page(body, what)?;
            Err(Error::invalid_data(format!(
                "Graph sent an unreadable {what} page ({e})"
            )))
        }
    }
}

/// Reads one delta page of `mailbox`.
pub fn parse_delta_page(body: &[u8], mailbox: &str) -> Result<DeltaPage, Error> {
    delta_page_of(parse_event_page(body, "delta")?, mailbox)
}

/// Reads one delta page of `mailbox` and frees the body before converting its events (at 64
/// mailboxes in flight, bodies of ~300 KB held through the conversion added up).
pub(crate) fn parse_delta_body(body: Vec<u8>, mailbox: &str) -> Result<DeltaPage, Error> {
    let page = parse_event_page(&body, "delta")?;
    drop(body);
    delta_page_of(page, mailbox)
}

fn delta_page_of(page: wire::EventPage, mailbox: &str) -> Result<DeltaPage, Error> {
    let items = page.value;
    let next = match (page.next_link.into_inner(), page.delta_link.into_inner()) {
        (Some(n), _) if !n.trim().is_empty() => DeltaNext::NextLink(n),
        (_, Some(d)) if !d.trim().is_empty() => DeltaNext::DeltaLink(d),
        _ => {
            return Err(Error::invalid_data(
                "Graph sent a delta page with neither @odata.nextLink nor @odata.deltaLink; it may have been truncated",
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for ev in items {
        if let Some(removed) = &ev.removed {
            let exchange_id = opt(&ev.id)
                .ok_or_else(|| Error::invalid_data("Graph sent an @removed item without an id"))?;
            let reason = removed
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.push(DeltaItem::Removed {
                exchange_id,
                reason,
            });
            continue;
        }
        if is_series_master(&ev) {
            tracing::debug!("skipping a series master in a calendar view delta");
            continue;
        }
        out.push(DeltaItem::Upsert(Box::new(event_to_instance(ev, mailbox)?)));
    }
    Ok(DeltaPage { items: out, next })
}

/// Reads one calendarView page: the instances and the next link.
pub(crate) fn parse_view_page(
    body: &[u8],
    mailbox: &str,
) -> Result<(Vec<Instance>, Option<String>), Error> {
    let page = parse_event_page(body, "calendar view")?;
    let (items, next) = (page.value, page.next_link.into_inner());
    let mut out = Vec::with_capacity(items.len());
    for ev in items {
        if is_series_master(&ev) {
            continue;
        }
        out.push(event_to_instance(ev, mailbox)?);
    }
    Ok((out, next.filter(|n| !n.trim().is_empty())))
}

pub(crate) fn parse_user(body: &[u8]) -> Result<UserInfo, Error> {
    let u: wire::User = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_data(format!("Graph sent an unreadable user ({e})")))?;
    Ok(UserInfo {
        id: opt(&u.id).ok_or_else(|| Error::invalid_data("Graph sent a user without an id"))?,
        display_name: opt(&u.display_name),
        mail: opt(&u.mail),
        user_principal_name: opt(&u.user_principal_name),
        account_enabled: u.account_enabled.get().copied(),
    })
}

fn zone_name(raw: &str) -> String {
    iana(raw)
        .map(str::to_owned)
        .unwrap_or_else(|| raw.to_owned())
}

fn civil_time(raw: &str) -> Option<Time> {
    raw.trim().parse::<Time>().ok()
}

fn weekday(raw: &str) -> Option<Weekday> {
    Some(match raw.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

pub(crate) fn parse_mailbox_settings(body: &[u8]) -> Result<MailboxSettings, Error> {
    let m: wire::MailboxSettings = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_data(format!("Graph sent unreadable mailbox settings ({e})"))
    })?;
    let working_hours = m.working_hours.get().map(|w| WorkingHours {
        days_of_week: w
            .days_of_week
            .get()
            .map(|d| {
                d.iter()
                    .filter_map(|d| d.non_empty().and_then(weekday))
                    .collect()
            })
            .unwrap_or_default(),
        start: w.start_time.non_empty().and_then(civil_time),
        end: w.end_time.non_empty().and_then(civil_time),
        time_zone: w
            .time_zone
            .get()
            .and_then(|t| t.name.non_empty())
            .map(zone_name),
    });
    // userPurpose is a string in v1.0 and an object {"value": …} in some versions.
    let user_purpose = m.user_purpose.get().and_then(|v| match v {
        Value::String(s) => Some(UserPurpose::parse(s)),
        Value::Object(o) => o
            .get("value")
            .and_then(Value::as_str)
            .map(UserPurpose::parse),
        _ => None,
    });
    Ok(MailboxSettings {
        time_zone: m.time_zone.non_empty().map(zone_name),
        working_hours,
        user_purpose,
    })
}

pub(crate) fn place_to_room(p: wire::Place) -> Option<Room> {
    Some(Room {
        email: opt(&p.email_address)?,
        id: opt(&p.id),
        display_name: opt(&p.display_name),
        capacity: p.capacity.get().map(|c| c.0),
        building: opt(&p.building),
        floor_label: opt(&p.floor_label),
        floor_number: p.floor_number.get().map(|c| c.0),
        booking_type: opt(&p.booking_type),
    })
}

pub(crate) fn place_to_room_list(p: wire::Place) -> Option<RoomList> {
    Some(RoomList {
        email: opt(&p.email_address)?,
        id: opt(&p.id),
        display_name: opt(&p.display_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Microsoft sample from `../shared/data/graph` (not part of the repository). The tests
    /// that read them are `#[ignore]`d in the README's test command and run by their own step
    /// of `.ci/run` (`cargo test -p calgate-graph --lib -- --ignored`), where a missing folder
    /// is a failure, not a skip.
    fn sample(name: &str) -> Vec<u8> {
        let dir = std::env::var("CALGATE_SHARED_DATA")
            .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
        let path = format!("{dir}/graph/{name}");
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!("Microsoft's sample {path} is needed by this test (../shared/data): {e}")
        })
    }

    #[test]
    #[ignore = "needs Microsoft's samples in ../shared/data; run by .ci/run"]
    fn delta_samples_from_the_docs() {
        let b = sample("delta-query-events__1__response.json");
        let p = parse_delta_page(&b, "s@contoso.com").expect("page 1");
        assert!(matches!(p.next, DeltaNext::NextLink(ref l) if l.contains("$skiptoken")));
        assert_eq!(p.items.len(), 2);
        let b = sample("delta-query-events__4__response.json");
        let p = parse_delta_page(&b, "s@contoso.com").expect("page 4");
        assert!(matches!(p.next, DeltaNext::DeltaLink(_)));
        assert!(
            matches!(&p.items[0], DeltaItem::Removed { reason: Some(r), .. } if r == "deleted")
        );
        let DeltaItem::Upsert(i) = &p.items[1] else {
            panic!("upsert")
        };
        assert_eq!(i.location.as_deref(), Some("Chapel of Saint Ignatius"));
        assert_eq!(
            i.when.start,
            "2016-12-25T06:00:00Z"
                .parse::<Timestamp>()
                .unwrap_or(Timestamp::UNIX_EPOCH)
        );
        let b = sample("event-list-instances__1__response.json");
        let (items, next) = parse_view_page(&b, "s@contoso.com").expect("instances");
        assert!(next.is_none());
        assert!(items.iter().any(|i| i.kind == InstanceType::Exception));
        assert!(
            items
                .iter()
                .all(|i| i.series_master_id.as_deref() == Some("AAMkAGUzYRgWAAA="))
        );
    }

    #[test]
    #[ignore = "needs Microsoft's samples in ../shared/data; run by .ci/run"]
    fn places_samples_read_string_capacity() {
        let b = sample("place-list__1__response.json");
        let (items, _, _) = parse_page(&b, "places").expect("page");
        let rooms: Vec<Room> = items
            .into_iter()
            .filter_map(|v| serde_json::from_str::<wire::Place>(v.get()).ok())
            .filter_map(place_to_room)
            .collect();
        assert_eq!(rooms[0].capacity, Some(50));
        assert_eq!(rooms[0].email, "cf100@contoso.com");
    }

    #[test]
    fn lenient_event_windows_zone_and_casing() {
        let b = br#"{"id":"A","showAs":"OOF","sensitivity":"PRIVATE","type":"Exception","seriesMasterId":"M",
            "start":{"dateTime":"2026-03-29T09:00:00.0000000","timeZone":"W. Europe Standard Time"},
            "end":{"dateTime":"2026-03-29T10:00:00.1234567","timeZone":"W. Europe Standard Time"},
            "originalStartTimeZone":"W. Europe Standard Time","isAllDay":"nope","attendees":[1,{"emailAddress":{"address":"x@y"}}],
            "lastModifiedDateTime":"2026-03-01T10:00:00.1234567Z","unknown":{"deep":[1,2]}}"#;
        let i = parse_event(b, "m@x").expect("event");
        assert_eq!(i.show_as, ShowAs::Oof);
        assert_eq!(i.sensitivity, Sensitivity::Private);
        assert_eq!(i.kind, InstanceType::Exception);
        assert_eq!(i.when.time_zone, "Europe/Berlin");
        // 29 March 2026 is after the spring change: CEST, UTC+2.
        assert_eq!(i.when.start.to_string(), "2026-03-29T07:00:00Z");
        assert_eq!(i.attendees.len(), 1);
        assert!(i.last_modified.is_some());
        assert!(i.when.all_day.is_none());
    }

    /// An explicit offset or Z in `dateTime` wins over `timeZone`; without one the zone
    /// decides, and text that is neither is an error naming the field.
    #[test]
    fn explicit_offsets_win_over_the_zone_name() {
        let event = |start: &str| {
            format!(
                r#"{{"id":"A","start":{{"dateTime":"{start}","timeZone":"Pacific Standard Time"}},
                "end":{{"dateTime":"2026-03-01T23:00:00.0000000","timeZone":"UTC"}}}}"#
            )
        };
        for (start, utc) in [
            ("2026-03-01T10:00:00+02:00", "2026-03-01T08:00:00Z"),
            ("2026-03-01T10:00:00.5-05:00", "2026-03-01T15:00:00.5Z"),
            ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"),
            ("2026-03-01T10:00:00.0000000z", "2026-03-01T10:00:00Z"),
            // no offset: Pacific Standard Time, UTC-8 on 1 March
            ("2026-03-01T10:00:00.0000000", "2026-03-01T18:00:00Z"),
        ] {
            let i = parse_event(event(start).as_bytes(), "m@x").expect(start);
            assert_eq!(i.when.start.to_string(), utc, "{start}");
        }
        for bad in [
            "10:00:00Z",
            "2026-03-01T10:00:00+",
            "2026-13-01T10:00:00",
            "not a time",
        ] {
            let e = parse_event(event(bad).as_bytes(), "m@x").expect_err(bad);
            assert!(e.to_string().contains("start.dateTime"), "{bad}: {e}");
        }
    }

    #[test]
    fn all_day_is_dates_at_midnight_in_the_event_zone() {
        let b = br#"{"id":"A","isAllDay":true,
            "start":{"dateTime":"2026-07-01T00:00:00.0000000","timeZone":"UTC"},
            "end":{"dateTime":"2026-07-03T00:00:00.0000000","timeZone":"UTC"},
            "originalStartTimeZone":"Pacific Standard Time"}"#;
        let i = parse_event(b, "m@x").expect("event");
        let d = |s: &str| s.parse::<Date>().unwrap_or(Date::MIN);
        assert_eq!(i.when.all_day, Some((d("2026-07-01"), d("2026-07-03"))));
        assert_eq!(i.when.time_zone, "America/Los_Angeles");
        assert_eq!(i.when.start.to_string(), "2026-07-01T07:00:00Z");
    }

    #[test]
    fn broken_pages_are_invalid_data() {
        for b in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"value\":[]}",
            b"{\"value\":{},\"@odata.deltaLink\":\"x\"}",
            b"{\"value\":[1],\"@odata.deltaLink\":\"x\"}",
            b"{\"value\":[{\"subject\":\"no id\"}],\"@odata.deltaLink\":\"x\"}",
            b"{\"value\":[{\"id\":\"a\"}],\"@odata.deltaLink\":\"x\"}",
            b"{\"@odata.deltaLink\":\"x\"}",
        ] {
            let e = parse_delta_page(b, "m").err();
            assert_eq!(
                e.map(|e| e.kind),
                Some(crate::ErrorKind::InvalidData),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }
}
