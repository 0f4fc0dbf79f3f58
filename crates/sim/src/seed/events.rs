//! Building blocks of seeded events: a [`Spec`] (one meeting or personal item before it is
//! copied into calendars), event data with the defaults Outlook gives, and the stored events
//! made from a spec.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan};
use uuid::Uuid;

use super::WINDOW_PAST_DAYS;
use super::demo_data::Details;
use super::generator::Gen;
use crate::SimError;
use crate::model::{
    Attendee, AttendeeType, Body, EmailAddress, EventData, ExceptionOccurrence, Importance,
    LocalDateTime, Location, ResponseType, Sensitivity, SeriesRecurrence, ShowAs, StoredEvent,
    Tenant, User,
};

/// One meeting (or personal item) before it is copied into each participant's calendar.
pub(super) struct Spec {
    pub data: EventData,
    pub recurrence: Option<SeriesRecurrence>,
    /// Edited occurrences: original start → new data.
    pub exceptions: Vec<(Timestamp, EventData)>,
    pub cancelled: Vec<Timestamp>,
    /// Mailbox of the organizer (gets the organizer's copy).
    pub organizer: Uuid,
    /// Other mailboxes that get a copy, with their response.
    pub copies: Vec<(Uuid, ResponseType)>,
}

impl Spec {
    /// A single event in `organizer`'s calendar only.
    pub fn new(data: EventData, organizer: Uuid) -> Self {
        Spec {
            data,
            recurrence: None,
            exceptions: Vec::new(),
            cancelled: Vec::new(),
            organizer,
            copies: Vec::new(),
        }
    }

    /// The edited occurrences as stored, with new ids; `show_as` (a copy's) replaces theirs
    /// when given.
    pub fn exception_occurrences(
        &self,
        g: &mut Gen,
        show_as: Option<ShowAs>,
        last_modified: Timestamp,
    ) -> BTreeMap<Timestamp, ExceptionOccurrence> {
        self.exceptions
            .iter()
            .map(|(ts, d)| {
                let mut d = d.clone();
                if let Some(show_as) = show_as {
                    d.show_as = show_as;
                }
                let occurrence = ExceptionOccurrence {
                    id: g.item_id(),
                    data: d,
                    last_modified,
                    change_key: g.change_key(),
                };
                (*ts, occurrence)
            })
            .collect()
    }

    /// A stored copy of the spec: `data` (the copy's) and `exceptions` (from
    /// [`Spec::exception_occurrences`]).
    pub fn stored(
        &self,
        ids: EventIds,
        data: EventData,
        exceptions: BTreeMap<Timestamp, ExceptionOccurrence>,
        created: Timestamp,
        last_modified: Timestamp,
    ) -> StoredEvent {
        StoredEvent {
            id: ids.id,
            ical_uid: ids.ical_uid,
            change_key: ids.change_key,
            created,
            last_modified,
            transaction_id: None,
            data,
            recurrence: self.recurrence.clone(),
            exceptions,
            cancelled: self.cancelled.iter().copied().collect(),
            extended_properties: Vec::new(),
        }
    }
}

/// A stored event's ids.
pub(super) struct EventIds {
    pub id: String,
    pub ical_uid: String,
    pub change_key: String,
}

/// Copies a spec into the calendars of the organizer and every participant.
pub(super) fn place(g: &mut Gen, t: &mut Tenant, s: Spec) -> Result<(), SimError> {
    let ical_uid = g.ical_uid();
    let created = g.ago(WINDOW_PAST_DAYS + 5, WINDOW_PAST_DAYS + 90);
    let last_modified = g.ago(1, WINDOW_PAST_DAYS);
    let mut targets = vec![(s.organizer, ResponseType::Organizer)];
    targets.extend(s.copies.iter().copied());
    for (mbx, response) in targets {
        let mut data = s.data.clone();
        if response != ResponseType::Organizer {
            data.show_as = response_show_as(response, data.show_as);
        }
        let exceptions = s.exception_occurrences(g, Some(data.show_as), last_modified);
        let ids = EventIds {
            id: g.item_id(),
            ical_uid: ical_uid.clone(),
            change_key: g.change_key(),
        };
        let ev = s.stored(ids, data, exceptions, created, last_modified);
        let cal = t
            .user_by_id_mut(mbx)
            .and_then(User::default_calendar_mut)
            .ok_or_else(|| SimError::Seed("seeded mailbox has no calendar".into()))?;
        cal.events.insert(ev.id.clone(), ev);
    }
    Ok(())
}

pub(super) fn email_of(u: &User) -> EmailAddress {
    EmailAddress {
        name: u.display_name.clone(),
        address: u.mail.clone(),
    }
}

pub(super) fn time(h: i8, m: i8) -> Time {
    Time::new(h, m, 0, 0).unwrap_or(Time::midnight())
}

pub(super) fn ldt(date: Date, t: Time, zone: &str) -> LocalDateTime {
    LocalDateTime {
        date_time: date.to_datetime(t),
        time_zone: zone.to_owned(),
    }
}

pub(super) fn add_minutes(l: &LocalDateTime, minutes: i64) -> LocalDateTime {
    LocalDateTime {
        date_time: l
            .date_time
            .checked_add(minutes.minutes())
            .unwrap_or(l.date_time),
        time_zone: l.time_zone.clone(),
    }
}

/// An HTML body of one paragraph.
pub(super) fn html(text: &str) -> Body {
    Body {
        content_type: "html".into(),
        content: format!(
            "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>{text}</p></body></html>"
        ),
    }
}

/// A timed event with Outlook's defaults (busy, a 15-minute reminder, responses requested).
pub(super) fn data(
    subject: &str,
    organizer: EmailAddress,
    start: LocalDateTime,
    end: LocalDateTime,
) -> EventData {
    EventData {
        subject: subject.to_owned(),
        body: Body {
            content_type: "html".into(),
            content: String::new(),
        },
        start,
        end,
        is_all_day: false,
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
        location: Location {
            display_name: String::new(),
            location_email: None,
            location_type: "default".into(),
            ..Default::default()
        },
        locations: Vec::new(),
        attendees: Vec::new(),
        organizer,
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

/// An all-day event of `days` days (at least one), free, without a reminder.
pub(super) fn all_day(
    subject: &str,
    organizer: EmailAddress,
    start: Date,
    days: i64,
    zone: &str,
) -> EventData {
    let end = start.checked_add(days.max(1).days()).unwrap_or(start);
    let mut d = data(
        subject,
        organizer,
        ldt(start, Time::midnight(), zone),
        ldt(end, Time::midnight(), zone),
    );
    d.is_all_day = true;
    d.show_as = ShowAs::Free;
    d.is_reminder_on = false;
    d.reminder_minutes_before_start = 1080;
    d
}

/// Makes it an online meeting (and says so in the location when there is none).
pub(super) fn teams(d: &mut EventData) {
    d.is_online_meeting = true;
    if d.location.display_name.is_empty() {
        d.location.display_name = "Microsoft Teams Meeting".into();
    }
}

/// Sets what a row's [`Details`] say, in a fixed order (Teams first, so that a location given
/// replaces Teams' default one).
pub(super) fn apply(d: &mut EventData, details: &Details) {
    if details.teams {
        teams(d);
    }
    if let Some(m) = details.reminder_minutes {
        d.reminder_minutes_before_start = m;
    }
    if let Some(body) = details.body {
        d.body = html(body);
    }
    if let Some(i) = details.importance {
        d.importance = i;
    }
    if let Some(s) = details.sensitivity {
        d.sensitivity = s;
    }
    if let Some(s) = details.show_as {
        d.show_as = s;
    }
    if let Some(l) = details.location {
        d.location.display_name = l.into();
    }
    if !details.categories.is_empty() {
        d.categories = details.categories.iter().map(|c| (*c).to_owned()).collect();
    }
    if let Some(r) = details.response_requested {
        d.response_requested = r;
    }
}

fn room_location(d: &mut EventData, room: &User) {
    d.location = Location {
        display_name: room.display_name.clone(),
        location_email: Some(room.mail.clone()),
        location_type: "conferenceRoom".into(),
        ..Default::default()
    };
}

fn attendee(u: &User, kind: AttendeeType, response: ResponseType) -> Attendee {
    Attendee {
        email: email_of(u),
        kind,
        response,
        response_time: None,
    }
}

/// What an attendee's copy shows, by their response.
fn response_show_as(r: ResponseType, organizer_show_as: ShowAs) -> ShowAs {
    match r {
        ResponseType::TentativelyAccepted | ResponseType::NotResponded | ResponseType::None => {
            ShowAs::Tentative
        }
        ResponseType::Declined => ShowAs::Free,
        _ => organizer_show_as,
    }
}

/// Snapshot of a mailbox for building events (avoids borrowing the tenant).
#[derive(Clone)]
pub(super) struct Who {
    pub id: Uuid,
    pub email: EmailAddress,
    pub zone: String,
    pub user: User,
}

pub(super) fn who(t: &Tenant, id: Uuid) -> Result<Who, SimError> {
    let u = t
        .user_by_id(id)
        .ok_or_else(|| SimError::Seed("seeded mailbox missing".into()))?;
    Ok(Who {
        id,
        email: email_of(u),
        zone: u.time_zone.clone(),
        user: User {
            calendars: Vec::new(),
            ..u.clone()
        },
    })
}

/// A meeting organised by `org` with `people` (required, sometimes optional after the first;
/// random responses), `rooms` and `gear` (resources, accepted); the first room is the location.
pub(super) fn meeting(
    g: &mut Gen,
    org: &Who,
    people: &[Who],
    rooms: &[Who],
    gear: &[Who],
    d: EventData,
) -> Spec {
    let mut d = d;
    let mut copies = Vec::new();
    for (i, w) in people.iter().enumerate() {
        if w.id == org.id {
            continue;
        }
        let r = g.response();
        let kind = if i > 0 && g.chance(0.15) {
            AttendeeType::Optional
        } else {
            AttendeeType::Required
        };
        d.attendees.push(attendee(&w.user, kind, r));
        copies.push((w.id, r));
    }
    for w in rooms.iter().chain(gear) {
        d.attendees.push(attendee(
            &w.user,
            AttendeeType::Resource,
            ResponseType::Accepted,
        ));
        copies.push((w.id, ResponseType::Accepted));
    }
    if let Some(room) = rooms.first() {
        room_location(&mut d, &room.user);
    }
    Spec {
        copies,
        ..Spec::new(d, org.id)
    }
}

/// An item in `org`'s own calendar (no responses requested).
pub(super) fn personal(org: &Who, d: EventData) -> Spec {
    let mut d = d;
    d.response_requested = false;
    Spec::new(d, org.id)
}
