//! `--scale N`: extra mailboxes `user00001@…` with a realistic event mix, for benchmarks.

use calgate_recurrence::{DayOfWeek, Pattern, PatternType, RangeKind};
use uuid::Uuid;

use super::demo_data::{EST, GMT, IST, MEETING_SUBJECTS, PST, WEEKDAYS, WEU};
use super::events::{EventIds, Spec, add_minutes, all_day, data, email_of, ldt, time};
use super::generator::Gen;
use super::{WINDOW_FUTURE_DAYS, WINDOW_PAST_DAYS, addr, mailbox};
use crate::SimError;
use crate::model::{
    Attendee, AttendeeType, EmailAddress, EventData, MailboxKind, ResponseType, Sensitivity,
    ShowAs, Tenant,
};

const SCALE_ZONES: [&str; 8] = [WEU, WEU, WEU, GMT, GMT, EST, PST, IST];

/// Instances of a scale mailbox that are not timed singles: 6 all-day events and the
/// occurrences of its 5 series in the window (one cancelled each), measured on the seed.
const SCALE_FIXED_INSTANCES: usize = 62;
/// Timed singles of a scale mailbox when no count is asked for (~150 instances in all).
const SCALE_DEFAULT_SINGLES: usize = 88;

/// Adds `n` mailboxes `user00001@…` with about 150 event instances each in the window (or
/// about `events` when given: the singles make up the difference to the fixed part).
pub(super) fn scale_mailboxes(
    g: &mut Gen,
    t: &mut Tenant,
    n: usize,
    events: Option<usize>,
) -> Result<(), SimError> {
    let singles = events.map_or(SCALE_DEFAULT_SINGLES, |e| {
        e.saturating_sub(SCALE_FIXED_INSTANCES)
    });
    for i in 1..=n {
        let zone = SCALE_ZONES[i % SCALE_ZONES.len()];
        let local = format!("user{i:05}");
        let mut u = mailbox(
            g,
            &local,
            &format!("Load User {i:05}"),
            MailboxKind::User,
            zone,
            (time(9, 0), time(17, 0)),
        );
        u.given_name = Some("Load".into());
        u.surname = Some(format!("User {i:05}"));
        u.department = Some("Load testing".into());
        u.job_title = Some("Synthetic user".into());
        let me = email_of(&u);
        let mut events = Vec::with_capacity(singles + 11);
        let created = g.ago(WINDOW_PAST_DAYS + 5, WINDOW_PAST_DAYS + 60);
        let mut push = |g: &mut Gen, s: Spec| {
            let ids = EventIds {
                id: g.item_id(),
                ical_uid: g.ical_uid(),
                change_key: g.change_key(),
            };
            let exceptions = s.exception_occurrences(g, None, created);
            events.push(s.stored(ids, s.data.clone(), exceptions, created, created));
        };
        let solo = |d: EventData| Spec::new(d, Uuid::nil());
        // ~88 singles (or as many as asked for).
        for k in 0..singles {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let h = g.range(8..18) as i8;
            let len = *g.pick(&[30i64, 30, 60, 60, 90]).unwrap_or(&60);
            let st = ldt(date, time(h, if k % 2 == 0 { 0 } else { 30 }), zone);
            let mut d = data(
                MEETING_SUBJECTS[k % MEETING_SUBJECTS.len()],
                me.clone(),
                st.clone(),
                add_minutes(&st, len),
            );
            d.show_as = match k % 10 {
                0 => ShowAs::Tentative,
                1 => ShowAs::Free,
                2 => ShowAs::WorkingElsewhere,
                _ => ShowAs::Busy,
            };
            if k % 7 == 0 {
                d.sensitivity = Sensitivity::Private;
            }
            if k % 3 == 0 {
                let other = g.range(1..n as i64 + 1);
                d.attendees.push(Attendee {
                    email: EmailAddress {
                        name: format!("Load User {other:05}"),
                        address: addr(&format!("user{other:05}")),
                    },
                    kind: AttendeeType::Required,
                    response: ResponseType::None,
                    response_time: None,
                });
                d.is_online_meeting = true;
            }
            push(g, solo(d));
        }
        // ~6 all-day (vacation, WFH).
        for k in 0..6 {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 3);
            let (subject, show, days) = if k == 0 {
                ("Vacation", ShowAs::Oof, 3)
            } else {
                ("Working from home", ShowAs::WorkingElsewhere, 1)
            };
            let mut d = all_day(subject, me.clone(), date, days, zone);
            d.show_as = show;
            push(g, solo(d));
        }
        // Series: weekly 1:1 (~21), biweekly (~11), monthly relative (~5), monthly absolute (~5),
        // weekly Mon/Wed (~17 until its end date) — with moved and cancelled occurrences.
        let day = *g.pick(&WEEKDAYS).unwrap_or(&DayOfWeek::Wednesday);
        let mut defs: Vec<(Pattern, &str, i8, RangeKind)> = Vec::with_capacity(5);
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![day];
        defs.push((p, "Weekly 1:1", 11, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::Weekly, 2);
        p.days_of_week = vec![DayOfWeek::Thursday];
        defs.push((p, "Team sync", 14, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::RelativeMonthly, 1);
        p.days_of_week = vec![DayOfWeek::Monday];
        defs.push((p, "Monthly review", 15, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 1);
        p.day_of_month = 15;
        defs.push((p, "Reporting", 10, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![DayOfWeek::Monday, DayOfWeek::Wednesday];
        defs.push((p, "Project sync", 16, RangeKind::EndDate(g.day(30))));
        for (p, subject, h, kind) in defs {
            let (rec, first) = g.series(p, g.day(-60), kind, zone)?;
            let mut d = data(
                subject,
                me.clone(),
                ldt(first, time(h, 0), zone),
                ldt(first, time(h, 30), zone),
            );
            d.is_online_meeting = true;
            let mut s = solo(d);
            s.recurrence = Some(rec);
            g.add_exceptions(&mut s, 1, 1);
            push(g, s);
        }
        if let Some(cal) = u.default_calendar_mut() {
            for ev in events {
                cal.events.insert(ev.id.clone(), ev);
            }
        }
        t.insert_user(u);
    }
    Ok(())
}
