//! The generators of the demo tenant: [`directory`] turns the directory tables of
//! `demo_data.rs` into mailboxes, room lists and groups; [`events`] turns [`DEMO_EVENTS`] into
//! the calendars' contents, with the random choices the rows leave open.

use std::collections::BTreeSet;

use calgate_recurrence::{DayOfWeek, Pattern, PatternType, RangeKind};
use jiff::civil::{Date, Time};
use uuid::Uuid;

use super::demo_data::{
    COMPANY_DAYS, DEMO_EVENTS, EQUIPMENT, EQUIPMENT_HOURS, EQUIPMENT_ZONE, GROUPS, HOLIDAYS,
    Invitees, Item, LUNCH_WALK, MEETING_CATEGORIES, MEETING_SUBJECTS, Members, PEOPLE, PERSONAL,
    ROOM_HOURS, ROOM_LISTS, ROOMS, SeriesDef, SeriesEnd, SeriesStart, SeriesTiming, SingleDef,
    Timing, WEEKDAYS,
};
use super::events::{
    Spec, Who, add_minutes, all_day, apply, data, html, ldt, meeting, personal, place, teams, time,
    who,
};
use super::generator::{Gen, seed_err};
use super::{WINDOW_FUTURE_DAYS, WINDOW_PAST_DAYS, addr, mailbox};
use crate::SimError;
use crate::model::{
    EventData, Group, Importance, MailboxKind, ResponseType, RoomInfo, RoomList, Sensitivity,
    SeriesRecurrence, ShowAs, Tenant,
};

fn hours(h: ((i8, i8), (i8, i8))) -> (Time, Time) {
    (time(h.0.0, h.0.1), time(h.1.0, h.1.1))
}

/// The entries of `ids` (a table's mailboxes, in table order) that `members` names;
/// `department(i)` is row `i`'s department, if the table has them.
fn members(
    ids: &[Uuid],
    members: &Members,
    department: impl Fn(usize) -> Option<&'static str>,
) -> Vec<Uuid> {
    match members {
        Members::None => Vec::new(),
        Members::All => ids.to_vec(),
        Members::Some(idx) => idx.iter().filter_map(|i| ids.get(*i).copied()).collect(),
        Members::Department(d) => ids
            .iter()
            .enumerate()
            .filter(|(i, _)| department(*i) == Some(*d))
            .map(|(_, id)| *id)
            .collect(),
    }
}

/// The people, rooms (in their room lists), equipment and groups of the demo tenant.
pub(super) fn directory(g: &mut Gen, t: &mut Tenant) -> Result<(), SimError> {
    let mut people = Vec::new();
    for def in &PEOPLE {
        let start_h = g.range(8..10) as i8;
        let start_m = if g.chance(0.3) { 30 } else { 0 };
        let mut u = mailbox(
            g,
            def.local,
            &format!("{} {}", def.given, def.surname),
            MailboxKind::User,
            def.zone,
            (time(start_h, start_m), time(start_h + 8, start_m)),
        );
        u.given_name = Some(def.given.to_owned());
        u.surname = Some(def.surname.to_owned());
        u.job_title = Some(def.title.to_owned());
        u.department = Some(def.dept.to_owned());
        u.office_location = Some(def.office.to_owned());
        people.push(u.id);
        t.insert_user(u);
    }
    let mut rooms = Vec::new();
    for r in &ROOMS {
        let list = ROOM_LISTS
            .get(r.list)
            .ok_or_else(|| SimError::Seed(format!("room {} has no room list", r.name)))?;
        let mut u = mailbox(
            g,
            r.local,
            &format!("Room {}", r.name),
            MailboxKind::Room,
            list.zone,
            hours(ROOM_HOURS),
        );
        let floor_label = format!("Floor {}", r.floor);
        u.office_location = Some(format!("{} {}", r.building, floor_label));
        let mut tags = Vec::new();
        if r.video.is_some() {
            tags.push("Video conferencing".to_owned());
        }
        if r.capacity >= 12 {
            tags.push("Large".to_owned());
        }
        u.room = Some(RoomInfo {
            capacity: Some(r.capacity),
            building: Some(r.building.to_owned()),
            floor_number: Some(r.floor),
            floor_label: Some(floor_label),
            is_wheelchair_accessible: r.accessible,
            tags,
            audio_device_name: r.video.map(|_| "Ceiling microphones".to_owned()),
            video_device_name: r.video.map(str::to_owned),
            display_device_name: r.display.map(str::to_owned),
            booking_type: Some("standard".to_owned()),
            phone: Some(format!(
                "+{} {}",
                list.phone_prefix,
                1000 + r.floor * 10 + r.capacity
            )),
            nickname: Some(r.name.to_owned()),
        });
        rooms.push(u.id);
        t.insert_user(u);
    }
    let mut equipment = Vec::new();
    for e in &EQUIPMENT {
        let u = mailbox(
            g,
            e.local,
            e.name,
            MailboxKind::Equipment,
            EQUIPMENT_ZONE,
            hours(EQUIPMENT_HOURS),
        );
        equipment.push(u.id);
        t.insert_user(u);
    }
    for (i, list) in ROOM_LISTS.iter().enumerate() {
        let rooms = ROOMS
            .iter()
            .zip(&rooms)
            .filter(|(r, _)| r.list == i)
            .map(|(_, id)| *id)
            .collect();
        t.room_lists.push(RoomList {
            id: g.uuid(),
            display_name: list.name.to_owned(),
            email: addr(list.local),
            rooms,
        });
    }
    for def in &GROUPS {
        let department = |i: usize| PEOPLE.get(i).map(|p| p.dept);
        let members: BTreeSet<Uuid> = members(&people, &def.people, department)
            .into_iter()
            .chain(members(&rooms, &def.rooms, |_| None))
            .chain(members(&equipment, &def.equipment, |_| None))
            .collect();
        t.groups.push(Group {
            id: g.uuid(),
            display_name: def.name.into(),
            mail: addr(def.local),
            members,
        });
    }
    Ok(())
}

/// The demo's mailboxes, by table.
struct Mailboxes {
    people: Vec<Who>,
    rooms: Vec<Who>,
    gear: Vec<Who>,
}

/// The mailboxes of the table rows with local parts `locals`.
fn mailboxes<'a>(
    t: &Tenant,
    locals: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<Vec<Who>, SimError> {
    locals
        .map(|l| {
            let id = t
                .user_id(&addr(l))
                .ok_or_else(|| SimError::Seed(format!("{what} missing")))?;
            who(t, id)
        })
        .collect()
}

/// The entries of `all` at `idx`.
fn pick(all: &[Who], idx: &[usize], what: &str) -> Result<Vec<Who>, SimError> {
    idx.iter().map(|i| one(all, *i, what)).collect()
}

/// The entry of `all` at `i` (a `what` row of the tables).
fn one(all: &[Who], i: usize, what: &str) -> Result<Who, SimError> {
    all.get(i)
        .cloned()
        .ok_or_else(|| SimError::Seed(format!("no {what} #{i} in the demo tables")))
}

impl Mailboxes {
    fn person(&self, i: usize) -> Result<Who, SimError> {
        one(&self.people, i, "person")
    }

    fn people(&self, idx: &[usize]) -> Result<Vec<Who>, SimError> {
        pick(&self.people, idx, "person")
    }

    fn rooms(&self, idx: &[usize]) -> Result<Vec<Who>, SimError> {
        pick(&self.rooms, idx, "room")
    }

    fn gear(&self, idx: &[usize]) -> Result<Vec<Who>, SimError> {
        pick(&self.gear, idx, "equipment")
    }

    /// The rooms of the room list in `zone` (none elsewhere).
    fn rooms_in(&self, zone: &str) -> Vec<Who> {
        ROOMS
            .iter()
            .zip(&self.rooms)
            .filter(|(r, _)| ROOM_LISTS.get(r.list).is_some_and(|l| l.zone == zone))
            .map(|(_, w)| w.clone())
            .collect()
    }
}

/// The demo calendars: every item of [`DEMO_EVENTS`], in order, then copied into calendars.
pub(super) fn events(g: &mut Gen, t: &mut Tenant) -> Result<(), SimError> {
    let m = Mailboxes {
        people: mailboxes(t, PEOPLE.iter().map(|p| p.local), "person")?,
        rooms: mailboxes(t, ROOMS.iter().map(|r| r.local), "room")?,
        gear: mailboxes(t, EQUIPMENT.iter().map(|e| e.local), "equipment")?,
    };
    let mut specs: Vec<Spec> = Vec::new();
    for item in &DEMO_EVENTS {
        match item {
            Item::Series(def) => specs.push(series(g, &m, def)?),
            Item::OneOnOnes => one_on_ones(g, &m, &mut specs)?,
            Item::Birthdays => birthdays(g, &m, &mut specs)?,
            Item::RandomMeetings(n) => random_meetings(g, &m, *n, &mut specs)?,
            Item::RoomBookings(n) => room_bookings(g, &m, *n, &mut specs),
            Item::Single(def) => specs.push(single(g, &m, def)?),
            Item::PersonalCalendars => personal_calendars(g, &m, &mut specs)?,
        }
    }
    for s in specs {
        place(g, t, s)?;
    }
    Ok(())
}

/// The event data of a series' master (`subject`, organized by `who`, in `zone`) and its
/// recurrence.
fn series_master(
    g: &mut Gen,
    subject: &str,
    who: &Who,
    zone: &str,
    timing: &SeriesTiming,
) -> Result<(EventData, SeriesRecurrence), SimError> {
    let def = &timing.pattern;
    let mut p = Pattern::new(def.kind, def.interval);
    p.days_of_week = def.days.to_vec();
    p.first_day_of_week = def.first_day;
    p.index = def.index;
    p.day_of_month = def.day_of_month;
    let start = match timing.start {
        SeriesStart::Day(n) => g.day(n),
        SeriesStart::Yearly {
            within,
            years_back,
            day_of_month,
        } => {
            let d = g.rand_day(within.0..within.1);
            p.month = d.month() as u8;
            if day_of_month {
                p.day_of_month = d.day().min(28) as u8;
            }
            Date::new(d.year() - years_back, 1, 1).map_err(seed_err)?
        }
    };
    let kind = match timing.end {
        SeriesEnd::Never => RangeKind::NoEnd,
        SeriesEnd::Day(n) => RangeKind::EndDate(g.day(n)),
        SeriesEnd::After(n) => RangeKind::Numbered(n),
    };
    let (rec, first) = g.series(p, start, kind, zone)?;
    let (from, to) = (timing.from, timing.to);
    let d = data(
        subject,
        who.email.clone(),
        ldt(first, time(from.0, from.1), zone),
        ldt(first, time(to.0, to.1), zone),
    );
    Ok((d, rec))
}

/// A row of recurring meeting.
fn series(g: &mut Gen, m: &Mailboxes, def: &SeriesDef) -> Result<Spec, SimError> {
    let org = m.person(def.organizer)?;
    let (mut d, rec) = series_master(g, def.subject, &org, def.zone, &def.timing)?;
    apply(&mut d, &def.details);
    let invited = match def.invitees {
        Invitees::People(idx) => m.people(idx)?,
        Invitees::Everyone => m.people.clone(),
        Invitees::Zone(z) => m.people.iter().filter(|w| w.zone == z).cloned().collect(),
    };
    let rooms = m.rooms(def.rooms)?;
    let gear = m.gear(def.equipment)?;
    let mut s = meeting(g, &org, &invited, &rooms, &gear, d);
    s.recurrence = Some(rec);
    g.add_exceptions(&mut s, def.exceptions.0, def.exceptions.1);
    Ok(s)
}

/// A row of single meeting.
fn single(g: &mut Gen, m: &Mailboxes, def: &SingleDef) -> Result<Spec, SimError> {
    let org = m.person(def.organizer)?;
    let date = g.rand_weekday(def.days.0..def.days.1);
    let zone = def.zone.unwrap_or(&org.zone);
    let mut d = match def.timing {
        Timing::At { from, minutes } => {
            let st = ldt(date, time(from.0, from.1), zone);
            data(
                def.subject,
                org.email.clone(),
                st.clone(),
                add_minutes(&st, minutes),
            )
        }
        Timing::AllDay { days } => all_day(def.subject, org.email.clone(), date, days, zone),
    };
    apply(&mut d, &def.details);
    let invited = m.people(def.invitees)?;
    let gear = m.gear(def.equipment)?;
    Ok(meeting(g, &org, &invited, &[], &gear, d))
}

/// A weekly 1:1 between every manager and report, at a time in the manager's zone.
fn one_on_ones(g: &mut Gen, m: &Mailboxes, specs: &mut Vec<Spec>) -> Result<(), SimError> {
    for (i, def) in PEOPLE.iter().enumerate() {
        let Some(mi) = def.manager else { continue };
        let mgr = m.person(mi)?;
        let report = m.person(i)?;
        let manager_name = PEOPLE.get(mi).map_or("", |p| p.given);
        let day = *g.pick(&WEEKDAYS).unwrap_or(&DayOfWeek::Tuesday);
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![day];
        let start_date = g.rand_day(-200..-35);
        let kind = if g.chance(0.2) {
            RangeKind::EndDate(g.rand_day(30..110))
        } else {
            RangeKind::NoEnd
        };
        // A time that works for both: the manager's zone, working hours.
        let h = g.range(10..16) as i8;
        let (rec, first) = g.series(p, start_date, kind, &mgr.zone)?;
        let mut d = data(
            &format!("1:1 {manager_name} / {}", def.given),
            mgr.email.clone(),
            ldt(first, time(h, 0), &mgr.zone),
            ldt(first, time(h, 30), &mgr.zone),
        );
        teams(&mut d);
        d.sensitivity = if g.chance(0.3) {
            Sensitivity::Private
        } else {
            Sensitivity::Normal
        };
        let mut s = meeting(g, &mgr, &[mgr.clone(), report], &[], &[], d);
        s.copies
            .iter_mut()
            .for_each(|c| c.1 = ResponseType::Accepted);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 1);
        specs.push(s);
    }
    Ok(())
}

/// Birthdays (yearly, all day, free) of every third person, in their manager's calendar.
fn birthdays(g: &mut Gen, m: &Mailboxes, specs: &mut Vec<Spec>) -> Result<(), SimError> {
    for (i, def) in PEOPLE.iter().enumerate() {
        let Some(mi) = def.manager else { continue };
        if i % 3 != 0 {
            continue;
        }
        let bday = g.rand_day(-25..110);
        let mut p = Pattern::new(PatternType::AbsoluteYearly, 1);
        p.month = bday.month() as u8;
        p.day_of_month = bday.day() as u8;
        let start =
            Date::new(bday.year() - 3, bday.month(), bday.day().min(28)).map_err(seed_err)?;
        let mgr = m.person(mi)?;
        let (rec, first) = g.series(p, start, RangeKind::NoEnd, &mgr.zone)?;
        let mut d = all_day(
            &format!("{}'s birthday", def.given),
            mgr.email.clone(),
            first,
            1,
            &mgr.zone,
        );
        d.sensitivity = Sensitivity::Personal;
        d.categories = vec!["Birthday".into()];
        let mut s = personal(&mgr, d);
        s.recurrence = Some(rec);
        specs.push(s);
    }
    Ok(())
}

/// `count` meetings: a random organizer and up to five people, 30–90 minutes on a weekday in
/// the window, often in a room of the organizer's office, now and then with equipment; every
/// so many private, confidential, tentative, important or cancelled.
fn random_meetings(
    g: &mut Gen,
    m: &Mailboxes,
    count: usize,
    specs: &mut Vec<Spec>,
) -> Result<(), SimError> {
    let people = &m.people;
    for n in 0..count {
        let org = one(people, g.range(0..people.len() as i64) as usize, "person")?;
        let extra = g.range(1..6) as usize;
        let mut invited = vec![org.clone()];
        for _ in 0..extra {
            let w = one(people, g.range(0..people.len() as i64) as usize, "person")?;
            if !invited.iter().any(|i| i.id == w.id) {
                invited.push(w);
            }
        }
        let offset = g.range(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
        let date = g.weekday(offset);
        let h = g.range(9..17) as i8;
        let min = if g.chance(0.5) { 30 } else { 0 };
        let len = *g.pick(&[30i64, 30, 45, 60, 60, 90]).unwrap_or(&60);
        let subject = MEETING_SUBJECTS[n % MEETING_SUBJECTS.len()];
        let st = ldt(date, time(h, min), &org.zone);
        let mut d = data(
            subject,
            org.email.clone(),
            st.clone(),
            add_minutes(&st, len),
        );
        d.body = html(&format!("{subject}. Agenda to follow."));
        let room: Vec<Who> = if g.chance(0.6) {
            g.pick(&m.rooms_in(&org.zone))
                .cloned()
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        if room.is_empty() || g.chance(0.5) {
            teams(&mut d);
        }
        let kit: Vec<Who> = if g.chance(0.12) {
            g.pick(&m.gear).cloned().into_iter().collect()
        } else {
            Vec::new()
        };
        if n % 17 == 3 {
            d.sensitivity = Sensitivity::Private;
        } else if n % 13 == 5 {
            d.sensitivity = Sensitivity::Confidential;
        }
        if n % 11 == 2 {
            d.show_as = ShowAs::Tentative;
        }
        if n % 9 == 4 {
            d.importance = Importance::High;
        }
        if n % 23 == 7 {
            d.is_cancelled = true;
            d.subject = format!("Canceled: {subject}");
        }
        if g.chance(0.2) {
            d.categories = vec![(*g.pick(&MEETING_CATEGORIES).unwrap_or(&"Internal")).to_owned()];
        }
        specs.push(meeting(g, &org, &invited, &room, &kit, d));
    }
    Ok(())
}

/// `count` room bookings, round robin over the rooms, each by someone of the room's zone with
/// one other person.
fn room_bookings(g: &mut Gen, m: &Mailboxes, count: usize, specs: &mut Vec<Spec>) {
    let people = &m.people;
    for n in 0..count {
        let Some(room) = m.rooms.get(n % m.rooms.len().max(1)).cloned() else {
            continue;
        };
        let locals: Vec<&Who> = people.iter().filter(|w| w.zone == room.zone).collect();
        let Some(org) = g.pick(&locals).map(|w| (*w).clone()) else {
            continue;
        };
        let Some(other) = people
            .get(g.range(0..people.len() as i64) as usize)
            .cloned()
        else {
            continue;
        };
        let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
        let h = g.range(8..18) as i8;
        let len = *g.pick(&[30i64, 60, 60, 90, 120]).unwrap_or(&60);
        let subject = MEETING_SUBJECTS[(n * 7) % MEETING_SUBJECTS.len()];
        let st = ldt(date, time(h, 0), &room.zone);
        let mut d = data(
            subject,
            org.email.clone(),
            st.clone(),
            add_minutes(&st, len),
        );
        if n % 6 == 0 {
            d.sensitivity = Sensitivity::Private;
        }
        specs.push(meeting(g, &org, &[org.clone(), other], &[room], &[], d));
    }
}

/// Each person's own items: personal appointments, the lunch-walk series, vacation, days
/// working from home, their office's holidays and the company days.
fn personal_calendars(g: &mut Gen, m: &Mailboxes, specs: &mut Vec<Spec>) -> Result<(), SimError> {
    for (i, (w, def)) in m.people.iter().zip(&PEOPLE).enumerate() {
        let n = g.range(6..13) as usize;
        for k in 0..n {
            let item = &PERSONAL[(i + k * 5) % PERSONAL.len()];
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let h = g.range(8..17) as i8;
            let st = ldt(date, time(h, 0), &w.zone);
            let mut d = data(
                item.subject,
                w.email.clone(),
                st.clone(),
                add_minutes(&st, item.minutes),
            );
            d.show_as = item.show_as;
            d.sensitivity = item.sensitivity;
            if item.sensitivity == Sensitivity::Private {
                d.body = html("Personal. Do not book over this.");
            }
            if item.show_as == ShowAs::Free {
                d.is_reminder_on = false;
            }
            specs.push(personal(w, d));
        }
        if i % 4 == 1 {
            let walk = &LUNCH_WALK;
            let (mut d, rec) = series_master(g, walk.subject, w, &w.zone, &walk.timing)?;
            apply(&mut d, &walk.details);
            let mut s = personal(w, d);
            s.recurrence = Some(rec);
            g.add_exceptions(&mut s, walk.exceptions.0, walk.exceptions.1);
            specs.push(s);
        }
        // Vacation (multi-day, out of office, often private).
        if g.chance(0.7) {
            let start = g.rand_day(-25..100);
            let days = g.range(3..10);
            let mut d = all_day("Vacation", w.email.clone(), start, days, &w.zone);
            d.show_as = ShowAs::Oof;
            d.sensitivity = if g.chance(0.5) {
                Sensitivity::Private
            } else {
                Sensitivity::Normal
            };
            specs.push(personal(w, d));
        }
        for _ in 0..g.range(1..4) {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let mut d = all_day("Working from home", w.email.clone(), date, 1, &w.zone);
            d.show_as = ShowAs::WorkingElsewhere;
            specs.push(personal(w, d));
        }
        for hol in &HOLIDAYS {
            if hol.office.is_some_and(|o| o != def.office) {
                continue;
            }
            for year in [g.today().year(), g.today().year() + 1] {
                let Ok(date) = Date::new(year, hol.month, hol.day) else {
                    continue;
                };
                let from = g.day(-WINDOW_PAST_DAYS);
                let to = g.day(WINDOW_FUTURE_DAYS - 1);
                if date >= from && date <= to {
                    let mut d = all_day(hol.name, w.email.clone(), date, 1, &w.zone);
                    d.categories = vec!["Holiday".into()];
                    d.response_requested = false;
                    specs.push(personal(w, d));
                }
            }
        }
        for day in &COMPANY_DAYS {
            let org = m.person(day.organizer)?;
            let mut d = all_day(
                day.subject,
                org.email,
                g.weekday(day.weekday),
                day.days,
                &w.zone,
            );
            d.show_as = day.show_as;
            specs.push(personal(w, d));
        }
    }
    Ok(())
}
