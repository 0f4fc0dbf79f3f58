//! Meetings, as Exchange Online processes them: an event with attendees written in its
//! organizer's mailbox sends meeting messages, and every attendee that is a mailbox of the
//! tenant gets its own copy (same iCalUId, its own id) kept in step with the organizer's item.
//!
//! - **People** (user and shared mailboxes): the Calendar Attendant puts the request on the
//!   calendar as `tentative`, response `notResponded`; responses (Graph's `accept`,
//!   `tentativelyAccept`, `decline`, or `POST /_sim/…/respond`) update the copy and the
//!   organizer's `attendees[].status`. A declined meeting leaves the attendee's calendar.
//! - **Resources** (room and equipment mailboxes) follow their booking policy
//!   (`Set-CalendarProcessing`): `AutoAccept` (the default) accepts unless the meeting conflicts
//!   with a busy item (then declines: no copy); `AutoUpdate` places it tentatively and leaves the
//!   response to a delegate; `None` leaves the request unprocessed (no copy, no response).
//! - Updates of the organizer's item are copied to every copy; added attendees get requests,
//!   removed ones cancellations; deleting the organizer's item cancels the meeting: people's
//!   copies stay as `isCancelled` with "Canceled: " before the subject, `AutoAccept` resources
//!   delete theirs.
//!
//! Every message is recorded in the tenant's [`MeetingLog`] (`GET /_sim/invitations`).
//! Documented in `docs/sim/meetings.md`. All functions are synchronous over a locked tenant.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{GraphError, GraphResult};
use crate::expand;
use crate::model::{
    Attendee, Body, EventData, ExceptionOccurrence, MailboxKind, ResponseType, Sensitivity, ShowAs,
    StoredEvent, Tenant, new_change_key, new_item_id,
};

/// Messages kept for `GET /_sim/invitations` (the counters go on past it).
pub const LOG_CAP: usize = 100_000;
/// How far past the later of "now" and a series' start a resource looks for conflicts
/// (`BookingWindowInDays`' default).
pub const BOOKING_WINDOW_DAYS: i64 = 180;
/// Occurrences of a series a resource checks at most.
pub const MAX_CHECKED_OCCURRENCES: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Booking policy
// ---------------------------------------------------------------------------------------------

/// `Set-CalendarProcessing -AutomateProcessing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutomateProcessing {
    None,
    AutoUpdate,
    AutoAccept,
}

/// The subset of `Set-CalendarProcessing` the simulator honours, with Exchange Online's
/// defaults for a resource mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingPolicy {
    pub automate_processing: AutomateProcessing,
    pub allow_conflicts: bool,
    pub maximum_conflict_instances: u32,
    pub conflict_percentage_allowed: u32,
    pub add_organizer_to_subject: bool,
    pub delete_subject: bool,
    pub delete_comments: bool,
    pub remove_private_property: bool,
    pub remove_canceled_meetings: bool,
}

impl Default for BookingPolicy {
    fn default() -> Self {
        BookingPolicy {
            automate_processing: AutomateProcessing::AutoAccept,
            allow_conflicts: false,
            maximum_conflict_instances: 0,
            conflict_percentage_allowed: 0,
            add_organizer_to_subject: true,
            delete_subject: true,
            delete_comments: true,
            remove_private_property: true,
            remove_canceled_meetings: false,
        }
    }
}

/// A partial policy: what `PUT /_sim/mailboxes/{addr}/booking-policy` changes (like the
/// cmdlet, parameters not given keep their value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingPolicyPatch {
    pub automate_processing: Option<AutomateProcessing>,
    pub allow_conflicts: Option<bool>,
    pub maximum_conflict_instances: Option<u32>,
    pub conflict_percentage_allowed: Option<u32>,
    pub add_organizer_to_subject: Option<bool>,
    pub delete_subject: Option<bool>,
    pub delete_comments: Option<bool>,
    pub remove_private_property: Option<bool>,
    pub remove_canceled_meetings: Option<bool>,
}

impl BookingPolicy {
    /// The policy of a mailbox of `kind` that no one changed: resources `AutoAccept`, people
    /// `AutoUpdate` (fixed for user mailboxes).
    pub fn default_for(kind: MailboxKind) -> Self {
        match kind {
            MailboxKind::Room | MailboxKind::Equipment => BookingPolicy::default(),
            MailboxKind::User | MailboxKind::Shared => BookingPolicy {
                automate_processing: AutomateProcessing::AutoUpdate,
                ..BookingPolicy::default()
            },
        }
    }

    pub fn apply(&mut self, p: &BookingPolicyPatch) -> GraphResult<()> {
        if p.conflict_percentage_allowed.is_some_and(|v| v > 100) {
            return Err(GraphError::bad_request(
                "BadRequest",
                "conflict_percentage_allowed must be an integer from 0 through 100.",
            ));
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = p.$f { self.$f = v; } )* };
        }
        set!(
            automate_processing,
            allow_conflicts,
            maximum_conflict_instances,
            conflict_percentage_allowed,
            add_organizer_to_subject,
            delete_subject,
            delete_comments,
            remove_private_property,
            remove_canceled_meetings
        );
        Ok(())
    }
}

fn is_resource(kind: MailboxKind) -> bool {
    matches!(kind, MailboxKind::Room | MailboxKind::Equipment)
}

/// The policy in force for mailbox `uid`.
pub fn policy_of(t: &Tenant, uid: Uuid) -> BookingPolicy {
    let kind = t.user_by_id(uid).map_or(MailboxKind::User, |u| u.kind);
    match t.booking_policies.get(&uid) {
        Some(p) if is_resource(kind) => p.clone(),
        _ => BookingPolicy::default_for(kind),
    }
}

// ---------------------------------------------------------------------------------------------
// The message log
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageKind {
    /// A meeting request (new meeting, or a new attendee).
    Request,
    /// An updated meeting request.
    Update,
    /// A meeting cancellation (whole meeting, one occurrence, or a removed attendee).
    Cancel,
    /// An attendee's (or a resource's) response to the organizer.
    Response,
}

/// One meeting message, as `GET /_sim/invitations` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MeetingMessage {
    pub kind: MessageKind,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub ical_uid: String,
    pub at: Timestamp,
    /// Original start of the one occurrence the message is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<Timestamp>,
    /// The response (kind `response` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseType>,
}

/// Counts of messages sent since the last reset.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MessageCounts {
    pub request: u64,
    pub update: u64,
    pub cancel: u64,
    pub response: u64,
}

impl MessageCounts {
    /// Invitations organizers sent: requests, updates and cancellations (not responses).
    pub fn invitations(&self) -> u64 {
        self.request + self.update + self.cancel
    }
    pub fn add(&mut self, o: &MessageCounts) {
        self.request += o.request;
        self.update += o.update;
        self.cancel += o.cancel;
        self.response += o.response;
    }
}

#[derive(Debug, Default)]
pub struct MeetingLog {
    messages: VecDeque<MeetingMessage>,
    counts: MessageCounts,
}

impl MeetingLog {
    pub fn push(&mut self, m: MeetingMessage) {
        match m.kind {
            MessageKind::Request => self.counts.request += 1,
            MessageKind::Update => self.counts.update += 1,
            MessageKind::Cancel => self.counts.cancel += 1,
            MessageKind::Response => self.counts.response += 1,
        }
        if self.messages.len() >= LOG_CAP {
            self.messages.pop_front();
        }
        self.messages.push_back(m);
    }
    pub fn messages(&self) -> impl Iterator<Item = &MeetingMessage> {
        self.messages.iter()
    }
    pub fn counts(&self) -> MessageCounts {
        self.counts
    }
    pub fn clear(&mut self) {
        self.messages.clear();
        self.counts = MessageCounts::default();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether `ev`, stored in the mailbox `mail`, is organized there.
pub fn organized_by(ev: &StoredEvent, mail: &str) -> bool {
    ev.data.organizer.address.is_empty() || eq(&ev.data.organizer.address, mail)
}

/// The attendees messages go to: distinct addresses, the organizer left out.
fn recipients(data: &EventData, organizer: &str) -> Vec<Attendee> {
    let mut seen = BTreeSet::new();
    data.attendees
        .iter()
        .filter(|a| !a.email.address.trim().is_empty() && !eq(&a.email.address, organizer))
        .filter(|a| seen.insert(a.email.address.to_ascii_lowercase()))
        .cloned()
        .collect()
}

fn has(list: &[Attendee], addr: &str) -> bool {
    list.iter().any(|a| eq(&a.email.address, addr))
}

/// What attendees see changed: content, times, pattern, edited or cancelled occurrences.
fn content_changed(a: &StoredEvent, b: &StoredEvent) -> bool {
    let strip = |d: &EventData| {
        let mut d = d.clone();
        d.attendees.clear();
        d.categories.clear();
        d.show_as = ShowAs::Busy;
        d.is_reminder_on = false;
        d.reminder_minutes_before_start = 0;
        d
    };
    strip(&a.data) != strip(&b.data)
        || a.recurrence != b.recurrence
        || a.cancelled != b.cancelled
        || a.exceptions.len() != b.exceptions.len()
        || a.exceptions
            .iter()
            .zip(&b.exceptions)
            .any(|((ka, xa), (kb, xb))| ka != kb || strip(&xa.data) != strip(&xb.data))
}

fn times_changed(a: &StoredEvent, b: &StoredEvent) -> bool {
    a.data.start != b.data.start
        || a.data.end != b.data.end
        || a.data.is_all_day != b.data.is_all_day
        || a.recurrence != b.recurrence
}

/// A new meeting's tracking: Exchange ignores the statuses a client sends; every attendee
/// starts at `none` on the organizer's side.
pub fn prepare_new(ev: &mut StoredEvent, mailbox: &str) {
    if !organized_by(ev, mailbox) {
        return;
    }
    for a in &mut ev.data.attendees {
        a.response = ResponseType::None;
        a.response_time = None;
    }
}

/// An update keeps the tracked responses of attendees who stay (whatever the body says);
/// new attendees start at `none`. Applies to the master's and the exceptions' lists.
pub fn keep_tracking(ev: &mut StoredEvent, before: &StoredEvent, mailbox: &str) {
    if !organized_by(ev, mailbox) {
        return;
    }
    let tracked = |addr: &str| {
        before
            .data
            .attendees
            .iter()
            .find(|a| eq(&a.email.address, addr))
            .map(|a| (a.response, a.response_time))
            .unwrap_or((ResponseType::None, None))
    };
    let fix = |d: &mut EventData| {
        for a in &mut d.attendees {
            (a.response, a.response_time) = tracked(&a.email.address);
        }
    };
    fix(&mut ev.data);
    for x in ev.exceptions.values_mut() {
        fix(&mut x.data);
    }
}

impl MeetingMessage {
    fn new(
        kind: MessageKind,
        from: &str,
        to: &str,
        subject: String,
        ical_uid: &str,
        at: Timestamp,
    ) -> Self {
        MeetingMessage {
            kind,
            from: from.to_owned(),
            to: to.to_owned(),
            subject,
            ical_uid: ical_uid.to_owned(),
            at,
            occurrence: None,
            response: None,
        }
    }
}

/// (calendar index, event id) of the copy of meeting `ical_uid` in mailbox `uid`.
fn find_copy(t: &Tenant, uid: Uuid, ical_uid: &str) -> Option<(usize, String)> {
    let u = t.user_by_id(uid)?;
    u.calendars.iter().enumerate().find_map(|(i, c)| {
        c.events
            .values()
            .find(|e| e.ical_uid == ical_uid && !organized_by(e, &u.mail))
            .map(|e| (i, e.id.clone()))
    })
}

fn copy_ref<'t>(t: &'t Tenant, uid: Uuid, ical_uid: &str) -> Option<&'t StoredEvent> {
    let (ci, id) = find_copy(t, uid, ical_uid)?;
    t.user_by_id(uid)?.calendars.get(ci)?.events.get(&id)
}

fn remove_copy(t: &mut Tenant, uid: Uuid, ical_uid: &str) -> bool {
    let Some((ci, id)) = find_copy(t, uid, ical_uid) else {
        return false;
    };
    t.user_by_id_mut(uid)
        .and_then(|u| u.calendars.get_mut(ci))
        .is_some_and(|c| {
            c.transactions.retain(|_, v| *v != id);
            c.events.remove(&id).is_some()
        })
}

/// The data of occurrence `orig` of series `ev` per its pattern (cancelled or not).
fn occurrence_data(ev: &StoredEvent, orig: Timestamp) -> Option<EventData> {
    let mut tmp = ev.clone();
    tmp.cancelled.remove(&orig);
    tmp.exceptions.remove(&orig);
    let we = orig.checked_add(SignedDuration::from_secs(1)).ok()?;
    expand::event_instances(&tmp, orig, we)
        .into_iter()
        .find(|i| i.original_start == Some(orig))
        .map(|i| i.data)
}

fn canceled_subject(s: &str) -> String {
    if s.starts_with("Canceled: ") {
        s.to_owned()
    } else {
        format!("Canceled: {s}")
    }
}

fn mark_cancelled(d: &mut EventData) {
    d.is_cancelled = true;
    d.subject = canceled_subject(&d.subject);
}

/// The show-as of an attendee's copy, by their response (the request itself is tentative).
fn copy_show_as(r: ResponseType, organizer: ShowAs) -> ShowAs {
    match r {
        ResponseType::Accepted | ResponseType::Organizer => organizer,
        ResponseType::Declined => ShowAs::Free,
        _ => ShowAs::Tentative,
    }
}

fn empty_body(b: &Body) -> Body {
    Body {
        content_type: b.content_type.clone(),
        content: String::new(),
    }
}

/// How a copy is made from the organizer's item.
struct CopyMode<'a> {
    /// The copy owner's address and response (with its time).
    own: &'a str,
    response: ResponseType,
    response_time: Option<Timestamp>,
    /// A resource's policy when the booking attendant processes it (subject/body rules).
    resource: Option<&'a BookingPolicy>,
    organizer_name: &'a str,
}

fn copy_data(d: &EventData, m: &CopyMode<'_>) -> EventData {
    let mut d = d.clone();
    for a in &mut d.attendees {
        if eq(&a.email.address, m.own) {
            a.response = m.response;
            a.response_time = m.response_time;
        } else {
            a.response = ResponseType::None;
            a.response_time = None;
        }
    }
    d.show_as = copy_show_as(m.response, d.show_as);
    d.categories.clear();
    if let Some(p) = m.resource
        && p.automate_processing == AutomateProcessing::AutoAccept
    {
        if p.delete_subject {
            d.subject = String::new();
        }
        if p.add_organizer_to_subject {
            d.subject = m.organizer_name.to_owned();
        }
        if p.delete_comments {
            d.body = empty_body(&d.body);
        }
        if p.remove_private_property && d.sensitivity == Sensitivity::Private {
            d.sensitivity = Sensitivity::Normal;
        }
    }
    d
}

/// Writes (creates or replaces) the copy of `org` in mailbox `uid`. `declined`: occurrences a
/// resource declined (left out of its copy). People see the organizer's cancelled occurrences
/// as cancelled exceptions; resources drop them.
fn write_copy(
    t: &mut Tenant,
    uid: Uuid,
    org: &StoredEvent,
    mode: &CopyMode<'_>,
    declined: &BTreeSet<Timestamp>,
    now: Timestamp,
) {
    let existing = find_copy(t, uid, &org.ical_uid);
    let Some(user) = t.user_by_id_mut(uid) else {
        return;
    };
    let (ci, id) =
        match existing {
            Some(x) => x,
            None => {
                let Some(ci) = user.calendars.iter().position(|c| c.is_default).or(
                    if user.calendars.is_empty() {
                        None
                    } else {
                        Some(0)
                    },
                ) else {
                    return;
                };
                (ci, new_item_id())
            }
        };
    let mut exceptions: BTreeMap<Timestamp, ExceptionOccurrence> = org
        .exceptions
        .iter()
        .filter(|(k, _)| !declined.contains(k))
        .map(|(k, x)| {
            (
                *k,
                ExceptionOccurrence {
                    id: expand::occurrence_id(&id, *k),
                    data: copy_data(&x.data, mode),
                    last_modified: now,
                    change_key: new_change_key(),
                },
            )
        })
        .collect();
    let mut cancelled: BTreeSet<Timestamp> = declined.clone();
    for orig in &org.cancelled {
        let person = mode.resource.is_none()
            || !mode
                .resource
                .is_some_and(|p| p.automate_processing == AutomateProcessing::AutoAccept);
        match occurrence_data(org, *orig) {
            Some(d) if person && !declined.contains(orig) => {
                let mut d = copy_data(&d, mode);
                mark_cancelled(&mut d);
                exceptions.insert(
                    *orig,
                    ExceptionOccurrence {
                        id: expand::occurrence_id(&id, *orig),
                        data: d,
                        last_modified: now,
                        change_key: new_change_key(),
                    },
                );
            }
            _ => {
                cancelled.insert(*orig);
            }
        }
    }
    let Some(cal) = user.calendars.get_mut(ci) else {
        return;
    };
    let created = cal.events.get(&id).map_or(now, |e| e.created);
    let mut ev = StoredEvent {
        id: id.clone(),
        ical_uid: org.ical_uid.clone(),
        change_key: new_change_key(),
        created,
        last_modified: now,
        transaction_id: None,
        data: copy_data(&org.data, mode),
        recurrence: org.recurrence.clone(),
        exceptions,
        cancelled,
        extended_properties: Vec::new(),
    };
    ev.touch(now);
    cal.events.insert(id, ev);
}

/// Sets attendee `addr`'s tracked response on the organizer's item of meeting `ical_uid`.
fn set_tracking(
    t: &mut Tenant,
    organizer: &str,
    ical_uid: &str,
    addr: &str,
    r: ResponseType,
    now: Timestamp,
) {
    let Some(u) = t.user_mut(organizer) else {
        return;
    };
    let mail = u.mail.clone();
    for c in &mut u.calendars {
        for ev in c.events.values_mut() {
            if ev.ical_uid != ical_uid || !organized_by(ev, &mail) {
                continue;
            }
            let mut changed = false;
            let mut fix = |d: &mut EventData| {
                for a in &mut d.attendees {
                    if eq(&a.email.address, addr) {
                        a.response = r;
                        a.response_time = Some(now);
                        changed = true;
                    }
                }
            };
            fix(&mut ev.data);
            for x in ev.exceptions.values_mut() {
                fix(&mut x.data);
            }
            if changed {
                ev.touch(now);
            }
        }
    }
}

fn response_subject(r: ResponseType, subject: &str) -> String {
    let p = match r {
        ResponseType::Accepted => "Accepted",
        ResponseType::TentativelyAccepted => "Tentative",
        ResponseType::Declined => "Declined",
        _ => "Response",
    };
    format!("{p}: {subject}")
}

// ---------------------------------------------------------------------------------------------
// Resources: conflicts
// ---------------------------------------------------------------------------------------------

/// The original starts (start, for a single) of the meeting's instances that overlap a busy
/// item of mailbox `uid`'s calendars (its own copy of the meeting aside), and how many
/// instances were checked. `only`: check that one occurrence.
fn conflicts(
    t: &Tenant,
    uid: Uuid,
    org: &StoredEvent,
    only: Option<Timestamp>,
    now: Timestamp,
) -> (BTreeSet<Timestamp>, usize) {
    let Some(u) = t.user_by_id(uid) else {
        return (BTreeSet::new(), 0);
    };
    let Some((s, _)) = expand::data_span(&org.data) else {
        return (BTreeSet::new(), 0);
    };
    let mut mine: Vec<_> = if org.recurrence.is_none() {
        expand::event_instances(
            org,
            s,
            s.checked_add(SignedDuration::from_secs(1)).unwrap_or(s),
        )
    } else {
        let ws = s
            .checked_sub(SignedDuration::from_hours(24 * 7))
            .unwrap_or(s);
        let we = s
            .max(now)
            .checked_add(SignedDuration::from_hours(24 * BOOKING_WINDOW_DAYS))
            .unwrap_or(s);
        expand::event_instances(org, ws, we)
    };
    if org.recurrence.is_none() && mine.is_empty() {
        // A zero-length single at its own start.
        mine = vec![expand::master_view(org)];
    }
    mine.retain(|i| !i.data.is_cancelled);
    if let Some(o) = only {
        mine.retain(|i| i.original_start == Some(o));
    }
    mine.truncate(MAX_CHECKED_OCCURRENCES);
    let copy_id = find_copy(t, uid, &org.ical_uid).map(|(_, id)| id);
    let mut out = BTreeSet::new();
    for i in &mine {
        let busy = u.calendars.iter().any(|c| {
            expand::instances(c, i.start, i.end.max(i.start))
                .iter()
                .any(|j| {
                    let own = copy_id.as_deref().is_some_and(|cid| {
                        j.id == cid || j.series_master_id.as_deref() == Some(cid)
                    });
                    !own && j.data.show_as != ShowAs::Free
                        && !j.data.is_cancelled
                        && j.start < i.end
                        && i.start < j.end
                })
        });
        if busy {
            out.insert(i.original_start.unwrap_or(i.start));
        }
    }
    (out, mine.len())
}

// ---------------------------------------------------------------------------------------------
// Processing one attendee
// ---------------------------------------------------------------------------------------------

struct Ctx<'a> {
    org: &'a StoredEvent,
    org_mail: &'a str,
    org_name: &'a str,
    now: Timestamp,
    /// The change concerns this occurrence only.
    occurrence: Option<Timestamp>,
    time_changed: bool,
}

/// Delivers a message of `kind` about the organizer's item `c.org` to attendee `a` and lets
/// the recipient mailbox (if in the tenant) process it.
fn deliver(t: &mut Tenant, c: &Ctx<'_>, a: &Attendee, kind: MessageKind) {
    let subject = match (kind, c.occurrence) {
        (MessageKind::Cancel, Some(o)) => canceled_subject(
            &occurrence_data(c.org, o).map_or(c.org.data.subject.clone(), |d| d.subject),
        ),
        (MessageKind::Cancel, None) => canceled_subject(&c.org.data.subject),
        (_, Some(o)) => c
            .org
            .exceptions
            .get(&o)
            .map_or(c.org.data.subject.clone(), |x| x.data.subject.clone()),
        _ => c.org.data.subject.clone(),
    };
    t.meeting_log.push(MeetingMessage {
        occurrence: c.occurrence,
        response: None,
        ..MeetingMessage::new(
            kind,
            c.org_mail,
            &a.email.address,
            subject,
            &c.org.ical_uid,
            c.now,
        )
    });
    let Some(uid) = t
        .user(&a.email.address)
        .filter(|u| u.has_mailbox)
        .map(|u| u.id)
    else {
        return; // outside the tenant: the message leaves, nothing else happens here
    };
    let kind_of = t.user_by_id(uid).map_or(MailboxKind::User, |u| u.kind);
    if is_resource(kind_of) {
        resource_process(t, uid, c, a, kind);
    } else {
        person_process(t, uid, c, a, kind);
    }
}

fn person_process(t: &mut Tenant, uid: Uuid, c: &Ctx<'_>, a: &Attendee, kind: MessageKind) {
    let existing = copy_ref(t, uid, &c.org.ical_uid).map(|e| {
        e.data
            .attendees
            .iter()
            .find(|x| eq(&x.email.address, &a.email.address))
            .map(|x| (x.response, x.response_time))
            .unwrap_or((ResponseType::NotResponded, None))
    });
    if kind == MessageKind::Cancel && c.occurrence.is_none() {
        // The meeting (for this attendee) is cancelled: the copy stays, marked, until deleted.
        if let Some((ci, id)) = find_copy(t, uid, &c.org.ical_uid)
            && let Some(ev) = t
                .user_by_id_mut(uid)
                .and_then(|u| u.calendars.get_mut(ci))
                .and_then(|cal| cal.events.get_mut(&id))
        {
            mark_cancelled(&mut ev.data);
            for x in ev.exceptions.values_mut() {
                mark_cancelled(&mut x.data);
            }
            ev.touch(c.now);
        }
        return;
    }
    if kind == MessageKind::Cancel && existing.is_none() {
        return;
    }
    let (mut r, mut rt) = existing.unwrap_or((ResponseType::NotResponded, None));
    if matches!(r, ResponseType::None | ResponseType::Organizer)
        || (kind == MessageKind::Update && c.time_changed)
    {
        // A moved meeting asks for a new response.
        (r, rt) = (ResponseType::NotResponded, None);
    }
    let mode = CopyMode {
        own: &a.email.address,
        response: r,
        response_time: rt,
        resource: None,
        organizer_name: c.org_name,
    };
    write_copy(t, uid, c.org, &mode, &BTreeSet::new(), c.now);
}

fn resource_process(t: &mut Tenant, uid: Uuid, c: &Ctx<'_>, a: &Attendee, kind: MessageKind) {
    let p = policy_of(t, uid);
    let addr = a.email.address.clone();
    let has_copy = find_copy(t, uid, &c.org.ical_uid).is_some();
    if kind == MessageKind::Cancel && c.occurrence.is_none() {
        if p.automate_processing == AutomateProcessing::AutoAccept || p.remove_canceled_meetings {
            remove_copy(t, uid, &c.org.ical_uid);
        } else if let Some((ci, id)) = find_copy(t, uid, &c.org.ical_uid)
            && let Some(ev) = t
                .user_by_id_mut(uid)
                .and_then(|u| u.calendars.get_mut(ci))
                .and_then(|cal| cal.events.get_mut(&id))
        {
            mark_cancelled(&mut ev.data);
            ev.touch(c.now);
        }
        return;
    }
    match p.automate_processing {
        AutomateProcessing::None => {}
        AutomateProcessing::AutoUpdate => {
            if kind == MessageKind::Cancel && !has_copy {
                return;
            }
            let mode = CopyMode {
                own: &addr,
                response: ResponseType::NotResponded,
                response_time: None,
                resource: Some(&p),
                organizer_name: c.org_name,
            };
            write_copy(t, uid, c.org, &mode, &BTreeSet::new(), c.now);
        }
        AutomateProcessing::AutoAccept => {
            // Occurrences this resource declined before (left out of its copy).
            let previous: BTreeSet<Timestamp> = copy_ref(t, uid, &c.org.ical_uid)
                .map(|e| e.cancelled.difference(&c.org.cancelled).copied().collect())
                .unwrap_or_default();
            let accepted_mode = CopyMode {
                own: &addr,
                response: ResponseType::Accepted,
                response_time: Some(c.now),
                resource: Some(&p),
                organizer_name: c.org_name,
            };
            if kind == MessageKind::Cancel {
                // One occurrence cancelled: drop it from the copy, no response.
                if has_copy {
                    write_copy(t, uid, c.org, &accepted_mode, &previous, c.now);
                }
                return;
            }
            let content_only = kind == MessageKind::Update && !c.time_changed && has_copy;
            if content_only && c.occurrence.is_none() {
                write_copy(t, uid, c.org, &accepted_mode, &previous, c.now);
                return;
            }
            if let (Some(o), true) = (c.occurrence, has_copy) {
                // One occurrence edited: only it is checked again.
                let (conf, _) = conflicts(t, uid, c.org, Some(o), c.now);
                let mut declined = previous;
                let r = if conf.is_empty() || p.allow_conflicts {
                    declined.remove(&o);
                    ResponseType::Accepted
                } else {
                    declined.insert(o);
                    ResponseType::Declined
                };
                write_copy(t, uid, c.org, &accepted_mode, &declined, c.now);
                respond_as_resource(t, c, &addr, r, Some(o));
                return;
            }
            let (conf, n) = conflicts(t, uid, c.org, None, c.now);
            let decision = if conf.is_empty() || p.allow_conflicts {
                Some(BTreeSet::new())
            } else if c.org.recurrence.is_none() {
                None
            } else {
                let count = conf.len() as u64;
                let pct_exceeded =
                    count * 100 > u64::from(p.conflict_percentage_allowed) * n as u64;
                if count > u64::from(p.maximum_conflict_instances) || pct_exceeded {
                    None
                } else {
                    Some(conf)
                }
            };
            match decision {
                Some(declined) => {
                    write_copy(t, uid, c.org, &accepted_mode, &declined, c.now);
                    set_tracking(
                        t,
                        c.org_mail,
                        &c.org.ical_uid,
                        &addr,
                        ResponseType::Accepted,
                        c.now,
                    );
                    respond_as_resource(t, c, &addr, ResponseType::Accepted, None);
                }
                None => {
                    remove_copy(t, uid, &c.org.ical_uid);
                    set_tracking(
                        t,
                        c.org_mail,
                        &c.org.ical_uid,
                        &addr,
                        ResponseType::Declined,
                        c.now,
                    );
                    respond_as_resource(t, c, &addr, ResponseType::Declined, None);
                }
            }
        }
    }
}

fn respond_as_resource(
    t: &mut Tenant,
    c: &Ctx<'_>,
    addr: &str,
    r: ResponseType,
    occurrence: Option<Timestamp>,
) {
    t.meeting_log.push(MeetingMessage {
        occurrence,
        response: Some(r),
        ..MeetingMessage::new(
            MessageKind::Response,
            addr,
            c.org_mail,
            response_subject(r, &c.org.data.subject),
            &c.org.ical_uid,
            c.now,
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// After the organizer's stored item `eid` in mailbox `org_uid` was created (`before` =
/// `None`) or changed (`occurrence`: the change was to that one occurrence): sends requests,
/// updates and cancellations and brings every copy in step.
pub fn after_write(
    t: &mut Tenant,
    org_uid: Uuid,
    before: Option<&StoredEvent>,
    eid: &str,
    occurrence: Option<Timestamp>,
    now: Timestamp,
) {
    let Some(u) = t.user_by_id(org_uid) else {
        return;
    };
    let (org_mail, org_name) = (u.mail.clone(), u.display_name.clone());
    let Some(org) = u
        .calendar_of_event(eid)
        .and_then(|c| c.events.get(eid))
        .cloned()
    else {
        return;
    };
    if !organized_by(&org, &org_mail) {
        return;
    }
    let organizer_name = if org.data.organizer.name.is_empty() {
        org_name
    } else {
        org.data.organizer.name.clone()
    };
    let now_list = recipients(&org.data, &org_mail);
    let before_list = before
        .filter(|b| organized_by(b, &org_mail))
        .map(|b| recipients(&b.data, &org_mail))
        .unwrap_or_default();
    let changed = before.is_none_or(|b| content_changed(b, &org));
    let cancelled_occurrence = occurrence
        .filter(|o| org.cancelled.contains(o) && before.is_some_and(|b| !b.cancelled.contains(o)));
    let c = Ctx {
        org: &org,
        org_mail: &org_mail,
        org_name: &organizer_name,
        now,
        occurrence,
        time_changed: before.is_none_or(|b| times_changed(b, &org)),
    };
    for a in &now_list {
        if !has(&before_list, &a.email.address) {
            let whole = Ctx {
                occurrence: None,
                ..c
            };
            deliver(t, &whole, a, MessageKind::Request);
        } else if cancelled_occurrence.is_some() {
            deliver(t, &c, a, MessageKind::Cancel);
        } else if changed {
            deliver(t, &c, a, MessageKind::Update);
        }
    }
    if let Some(b) = before {
        let gone: Vec<Attendee> = before_list
            .into_iter()
            .filter(|a| !has(&now_list, &a.email.address))
            .collect();
        let bc = Ctx {
            org: b,
            occurrence: None,
            ..c
        };
        for a in &gone {
            deliver(t, &bc, a, MessageKind::Cancel);
        }
    }
}

/// After the organizer deleted (or cancelled) the whole meeting `deleted` in mailbox `org_uid`.
pub fn after_delete(t: &mut Tenant, org_uid: Uuid, deleted: &StoredEvent, now: Timestamp) {
    let Some(u) = t.user_by_id(org_uid) else {
        return;
    };
    let (org_mail, org_name) = (u.mail.clone(), u.display_name.clone());
    if !organized_by(deleted, &org_mail) {
        return;
    }
    let c = Ctx {
        org: deleted,
        org_mail: &org_mail,
        org_name: &org_name,
        now,
        occurrence: None,
        time_changed: false,
    };
    for a in recipients(&deleted.data, &org_mail) {
        deliver(t, &c, &a, MessageKind::Cancel);
    }
}

/// What became of an attendee's copy after a response.
#[derive(Debug, Clone)]
pub struct Responded {
    /// The copy's id, unless the response removed it (a decline).
    pub kept: Option<String>,
    pub calendar: usize,
}

/// Attendee mailbox `uid` responds `r` to its copy `copy_id` (a stored id). With `send`, the
/// organizer's tracking is updated (when the organizer is in the tenant) and a response is
/// recorded. A decline removes the copy (Exchange moves it to Deleted Items).
pub fn respond(
    t: &mut Tenant,
    uid: Uuid,
    copy_id: &str,
    r: ResponseType,
    send: bool,
    now: Timestamp,
) -> GraphResult<Responded> {
    let u = t
        .user_by_id_mut(uid)
        .ok_or_else(GraphError::item_not_found)?;
    let mail = u.mail.clone();
    let (ci, cal) = u
        .calendars
        .iter_mut()
        .enumerate()
        .find(|(_, c)| c.events.contains_key(copy_id))
        .ok_or_else(GraphError::item_not_found)?;
    let ev = cal
        .events
        .get_mut(copy_id)
        .ok_or_else(GraphError::item_not_found)?;
    if organized_by(ev, &mail) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. You can't respond to a meeting you organized.",
        ));
    }
    if ev.data.is_cancelled {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "Your request can't be completed. The meeting was cancelled.",
        ));
    }
    let organizer = ev.data.organizer.address.clone();
    let ical_uid = ev.ical_uid.clone();
    let subject = ev.data.subject.clone();
    let set = |d: &mut EventData, organizer_show_as: ShowAs| {
        match d.attendees.iter_mut().find(|a| eq(&a.email.address, &mail)) {
            Some(a) => {
                a.response = r;
                a.response_time = Some(now);
            }
            None => d.attendees.push(Attendee {
                email: crate::model::EmailAddress {
                    name: String::new(),
                    address: mail.clone(),
                },
                kind: Default::default(),
                response: r,
                response_time: Some(now),
            }),
        }
        d.show_as = copy_show_as(r, organizer_show_as);
    };
    // The organizer's show-as, when the organizer is in the tenant (else busy).
    let kept = if r == ResponseType::Declined {
        cal.transactions.retain(|_, v| v != copy_id);
        cal.events.remove(copy_id);
        None
    } else {
        let master_show_as = ShowAs::Busy;
        set(&mut ev.data, master_show_as);
        for x in ev.exceptions.values_mut() {
            if !x.data.is_cancelled {
                set(&mut x.data, master_show_as);
            }
        }
        ev.touch(now);
        Some(copy_id.to_owned())
    };
    // Accepted copies show what the organizer shows.
    if let Some(id) = &kept
        && let Some(show_as) = organizer_show_as(t, &organizer, &ical_uid)
        && r == ResponseType::Accepted
        && let Some(ev) = t
            .user_by_id_mut(uid)
            .and_then(|u| u.calendars.get_mut(ci))
            .and_then(|c| c.events.get_mut(id))
    {
        ev.data.show_as = show_as;
    }
    if send {
        set_tracking(t, &organizer, &ical_uid, &mail, r, now);
        t.meeting_log.push(MeetingMessage {
            occurrence: None,
            response: Some(r),
            ..MeetingMessage::new(
                MessageKind::Response,
                &mail,
                &organizer,
                response_subject(r, &subject),
                &ical_uid,
                now,
            )
        });
    }
    Ok(Responded { kept, calendar: ci })
}

fn organizer_show_as(t: &Tenant, organizer: &str, ical_uid: &str) -> Option<ShowAs> {
    let u = t.user(organizer)?;
    u.calendars
        .iter()
        .flat_map(|c| c.events.values())
        .find(|e| e.ical_uid == ical_uid && organized_by(e, &u.mail))
        .map(|e| e.data.show_as)
}

/// Finds attendee `uid`'s copy by a stored id, an occurrence or exception id of it, or the
/// meeting's iCalUId; returns the stored id.
pub fn resolve_copy(t: &Tenant, uid: Uuid, id: &str) -> Option<String> {
    let u = t.user_by_id(uid)?;
    for c in &u.calendars {
        if c.events.contains_key(id) {
            return Some(id.to_owned());
        }
        if let Some((m, _)) = expand::parse_occurrence_id(id)
            && c.events.contains_key(&m)
        {
            return Some(m);
        }
        for e in c.events.values() {
            if e.ical_uid == id || e.exceptions.values().any(|x| x.id == id) {
                return Some(e.id.clone());
            }
        }
    }
    None
}
