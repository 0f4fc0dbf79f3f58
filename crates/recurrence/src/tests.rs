#![allow(clippy::unwrap_used)]

use super::*;
use DayOfWeek::*;
use jiff::civil::{date, time};

fn rec(p: Pattern, start: Date, kind: RangeKind) -> Recurrence {
    Recurrence {
        pattern: p,
        range: Range {
            start_date: start,
            kind,
            recurrence_time_zone: None,
        },
    }
}

fn pat(kind: PatternType, interval: u32) -> Pattern {
    Pattern::new(kind, interval)
}

fn weekly(interval: u32, days: &[DayOfWeek]) -> Pattern {
    let mut p = pat(PatternType::Weekly, interval);
    p.days_of_week = days.to_vec();
    p
}

fn abs_monthly(interval: u32, day: u8) -> Pattern {
    let mut p = pat(PatternType::AbsoluteMonthly, interval);
    p.day_of_month = day;
    p
}

fn rel_monthly(interval: u32, days: &[DayOfWeek], index: WeekIndex) -> Pattern {
    let mut p = pat(PatternType::RelativeMonthly, interval);
    p.days_of_week = days.to_vec();
    p.index = index;
    p
}

fn abs_yearly(interval: u32, month: u8, day: u8) -> Pattern {
    let mut p = pat(PatternType::AbsoluteYearly, interval);
    p.month = month;
    p.day_of_month = day;
    p
}

fn rel_yearly(interval: u32, month: u8, days: &[DayOfWeek], index: WeekIndex) -> Pattern {
    let mut p = pat(PatternType::RelativeYearly, interval);
    p.month = month;
    p.days_of_week = days.to_vec();
    p.index = index;
    p
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

// ---------------------------------------------------------------- patterns

#[test]
fn daily_every_third_day() {
    let r = rec(
        pat(PatternType::Daily, 3),
        date(2024, 1, 30),
        RangeKind::Numbered(4),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 30),
            date(2024, 2, 2),
            date(2024, 2, 5),
            date(2024, 2, 8)
        ]
    );
}

#[test]
fn daily_across_leap_day() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2024, 2, 27),
        RangeKind::EndDate(date(2024, 3, 1)),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 2, 27),
            date(2024, 2, 28),
            date(2024, 2, 29),
            date(2024, 3, 1)
        ]
    );
}

#[test]
fn weekly_skips_days_before_start_in_week_zero() {
    // 2024-01-03 is a Wednesday; Monday of that week is before the start.
    let r = rec(
        weekly(1, &[Monday, Friday]),
        date(2024, 1, 3),
        RangeKind::Numbered(4),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 5),
            date(2024, 1, 8),
            date(2024, 1, 12),
            date(2024, 1, 15)
        ]
    );
}

#[test]
fn weekly_interval_two_aligns_on_first_day_of_week() {
    // Start Saturday 2024-01-06. With weeks starting Sunday, week 0 is Dec 31 – Jan 6, so
    // Monday Jan 1 (before start) is skipped, next used week starts Jan 14.
    let mut p = weekly(2, &[Monday, Saturday]);
    p.first_day_of_week = Sunday;
    let r = rec(p.clone(), date(2024, 1, 6), RangeKind::Numbered(4));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 6),
            date(2024, 1, 15),
            date(2024, 1, 20),
            date(2024, 1, 29)
        ]
    );
    // With weeks starting Monday, week 0 is Jan 1 – Jan 7; the next used week starts Jan 15
    // as well, but with Saturday Jan 6 in week 0 and Monday Jan 15 in week 2.
    p.first_day_of_week = Monday;
    let r = rec(p.clone(), date(2024, 1, 6), RangeKind::Numbered(4));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 6),
            date(2024, 1, 15),
            date(2024, 1, 20),
            date(2024, 1, 29)
        ]
    );
    // Start Sunday Jan 7: with Sunday weeks, week 0 is Jan 7 – 13 (Mon Jan 8 is in it);
    // with Monday weeks, week 0 is Jan 1 – 7 and the next used week is Jan 15 – 21.
    let mut p = weekly(2, &[Monday]);
    p.first_day_of_week = Sunday;
    let r = rec(p.clone(), date(2024, 1, 7), RangeKind::Numbered(2));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 8), date(2024, 1, 22)]
    );
    p.first_day_of_week = Monday;
    let r = rec(p, date(2024, 1, 7), RangeKind::Numbered(2));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 15), date(2024, 1, 29)]
    );
}

#[test]
fn weekly_days_ordered_from_first_day_of_week() {
    let mut p = weekly(1, &[Sunday, Wednesday, Monday, Monday]);
    p.first_day_of_week = Monday;
    let r = rec(p, date(2024, 1, 1), RangeKind::Numbered(5));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 1),
            date(2024, 1, 3),
            date(2024, 1, 7),
            date(2024, 1, 8),
            date(2024, 1, 10)
        ]
    );
}

#[test]
fn absolute_monthly_skips_months_without_the_day() {
    let r = rec(
        abs_monthly(1, 31),
        date(2024, 1, 15),
        RangeKind::Numbered(5),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![
            date(2024, 1, 31),
            date(2024, 3, 31),
            date(2024, 5, 31),
            date(2024, 7, 31),
            date(2024, 8, 31)
        ]
    );
    let r = rec(
        abs_monthly(1, 29),
        date(2023, 1, 30),
        RangeKind::Numbered(3),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2023, 3, 29), date(2023, 4, 29), date(2023, 5, 29)]
    );
    let r = rec(
        abs_monthly(1, 29),
        date(2024, 1, 30),
        RangeKind::Numbered(2),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 2, 29), date(2024, 3, 29)]
    );
}

#[test]
fn absolute_monthly_interval_counts_from_start_month() {
    // Every 2 months on the 31st from February: Feb, Apr, Jun (no 31st), Aug, Oct, Dec.
    let r = rec(abs_monthly(2, 31), date(2024, 2, 1), RangeKind::Numbered(3));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 8, 31), date(2024, 10, 31), date(2024, 12, 31)]
    );
    // Every 12 months on the 31st from April never matches and must terminate.
    let r = rec(
        abs_monthly(12, 31),
        date(2024, 4, 1),
        RangeKind::Numbered(3),
    );
    assert!(r.dates(Date::MAX).unwrap().is_empty());
}

#[test]
fn relative_monthly_single_and_set() {
    // Second Tuesday.
    let r = rec(
        rel_monthly(1, &[Tuesday], WeekIndex::Second),
        date(2024, 1, 1),
        RangeKind::Numbered(3),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 9), date(2024, 2, 13), date(2024, 3, 12)]
    );
    // First weekday of the month (index applies to the set).
    let r = rec(
        rel_monthly(
            1,
            &[Monday, Tuesday, Wednesday, Thursday, Friday],
            WeekIndex::First,
        ),
        date(2024, 6, 1),
        RangeKind::Numbered(3),
    );
    // June 1 2024 is a Saturday; July 1 a Monday; Aug 1 a Thursday.
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 6, 3), date(2024, 7, 1), date(2024, 8, 1)]
    );
    // Fourth weekend day.
    let r = rec(
        rel_monthly(1, &[Saturday, Sunday], WeekIndex::Fourth),
        date(2024, 6, 1),
        RangeKind::Numbered(1),
    );
    assert_eq!(r.dates(date(2030, 1, 1)).unwrap(), vec![date(2024, 6, 9)]);
}

#[test]
fn relative_monthly_last() {
    let r = rec(
        rel_monthly(1, &[Friday], WeekIndex::Last),
        date(2024, 1, 1),
        RangeKind::EndDate(date(2024, 3, 31)),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 26), date(2024, 2, 23), date(2024, 3, 29)]
    );
    // Last weekday of the month, every 3 months.
    let r = rec(
        rel_monthly(
            3,
            &[Monday, Tuesday, Wednesday, Thursday, Friday],
            WeekIndex::Last,
        ),
        date(2024, 1, 1),
        RangeKind::Numbered(3),
    );
    // Mar 31 2024 is a Sunday, Jun 30 a Sunday.
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 31), date(2024, 4, 30), date(2024, 7, 31)]
    );
}

#[test]
fn relative_monthly_first_occurrence_on_or_after_start() {
    // The first Monday of January 2024 (Jan 1) is before the start; next is Feb 5.
    let r = rec(
        rel_monthly(1, &[Monday], WeekIndex::First),
        date(2024, 1, 2),
        RangeKind::Numbered(2),
    );
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 2, 5), date(2024, 3, 4)]
    );
}

#[test]
fn absolute_yearly_leap_day_only_in_leap_years() {
    let r = rec(
        abs_yearly(1, 2, 29),
        date(2023, 1, 1),
        RangeKind::Numbered(3),
    );
    assert_eq!(
        r.dates(date(2040, 1, 1)).unwrap(),
        vec![date(2024, 2, 29), date(2028, 2, 29), date(2032, 2, 29)]
    );
    // 2100 is not a leap year.
    let r = rec(
        abs_yearly(4, 2, 29),
        date(2096, 1, 1),
        RangeKind::Numbered(2),
    );
    assert_eq!(
        r.dates(date(2200, 1, 1)).unwrap(),
        vec![date(2096, 2, 29), date(2104, 2, 29)]
    );
    // Interval 4 from an odd year never hits a leap year: terminates, empty.
    let r = rec(
        abs_yearly(4, 2, 29),
        date(2021, 1, 1),
        RangeKind::Numbered(2),
    );
    assert!(r.dates(Date::MAX).unwrap().is_empty());
}

#[test]
fn absolute_yearly_impossible_dates_terminate() {
    for (m, d) in [(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)] {
        let r = rec(abs_yearly(1, m, d), date(2024, 1, 1), RangeKind::NoEnd);
        r.validate().unwrap();
        assert!(r.dates(Date::MAX).unwrap().is_empty(), "{m}/{d}");
        let r = rec(
            abs_yearly(1, m, d),
            date(2024, 1, 1),
            RangeKind::Numbered(5),
        );
        assert!(r.dates(Date::MAX).unwrap().is_empty(), "{m}/{d}");
    }
}

#[test]
fn absolute_yearly_interval() {
    let r = rec(
        abs_yearly(2, 7, 4),
        date(2024, 7, 5),
        RangeKind::Numbered(2),
    );
    // 2024-07-04 is before the start; the next year used is 2026.
    assert_eq!(
        r.dates(date(2040, 1, 1)).unwrap(),
        vec![date(2026, 7, 4), date(2028, 7, 4)]
    );
}

#[test]
fn relative_yearly_thanksgiving_and_last() {
    let r = rec(
        rel_yearly(1, 11, &[Thursday], WeekIndex::Fourth),
        date(2024, 1, 1),
        RangeKind::Numbered(3),
    );
    assert_eq!(
        r.dates(date(2040, 1, 1)).unwrap(),
        vec![date(2024, 11, 28), date(2025, 11, 27), date(2026, 11, 26)]
    );
    let r = rec(
        rel_yearly(2, 5, &[Monday], WeekIndex::Last),
        date(2024, 6, 1),
        RangeKind::EndDate(date(2030, 12, 31)),
    );
    assert_eq!(
        r.dates(date(2040, 1, 1)).unwrap(),
        vec![date(2026, 5, 25), date(2028, 5, 29), date(2030, 5, 27)]
    );
}

// ---------------------------------------------------------------- ranges

#[test]
fn ranges_end_date_inclusive_numbered_no_end() {
    let p = weekly(1, &[Tuesday]);
    let start = date(2024, 1, 2);
    let r = rec(p.clone(), start, RangeKind::EndDate(date(2024, 1, 16)));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 2), date(2024, 1, 9), date(2024, 1, 16)]
    );
    // until earlier than endDate wins.
    assert_eq!(
        r.dates(date(2024, 1, 9)).unwrap(),
        vec![date(2024, 1, 2), date(2024, 1, 9)]
    );
    let r = rec(p.clone(), start, RangeKind::Numbered(2));
    assert_eq!(
        r.dates(date(2030, 1, 1)).unwrap(),
        vec![date(2024, 1, 2), date(2024, 1, 9)]
    );
    let r = rec(p, start, RangeKind::NoEnd);
    assert_eq!(r.dates(date(2024, 12, 31)).unwrap().len(), 53);
    assert!(r.dates(date(2024, 1, 1)).unwrap().is_empty());
}

#[test]
fn numbered_counts_occurrences_before_window() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2024, 1, 1),
        RangeKind::Numbered(10),
    );
    let got = r
        .dates_between(date(2024, 1, 8), date(2024, 12, 31))
        .unwrap();
    assert_eq!(
        got,
        vec![date(2024, 1, 8), date(2024, 1, 9), date(2024, 1, 10)]
    );
}

#[test]
fn dates_between_skipping_matches_full_walk() {
    let pats = [
        pat(PatternType::Daily, 3),
        weekly(3, &[Monday, Saturday]),
        abs_monthly(5, 30),
        rel_monthly(2, &[Wednesday], WeekIndex::Last),
        abs_yearly(3, 2, 29),
        rel_yearly(2, 3, &[Sunday, Saturday], WeekIndex::Second),
    ];
    for p in pats {
        let r = rec(p, date(2001, 3, 17), RangeKind::NoEnd);
        let all = r.dates(date(2060, 1, 1)).unwrap();
        for (from, until) in [
            (date(2030, 6, 5), date(2032, 1, 1)),
            (date(2001, 1, 1), date(2001, 12, 31)),
            (date(2059, 12, 1), date(2060, 1, 1)),
        ] {
            let expect: Vec<Date> = all
                .iter()
                .copied()
                .filter(|d| *d >= from && *d <= until)
                .collect();
            assert_eq!(
                r.dates_between(from, until).unwrap(),
                expect,
                "{:?}",
                r.pattern
            );
        }
    }
}

// ---------------------------------------------------------------- validation

#[test]
fn validation_messages() {
    let start = date(2024, 1, 1);
    let check = |r: Recurrence, needle: &str| {
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} should contain {needle:?}");
        assert!(r.dates(date(2025, 1, 1)).is_err());
    };
    check(
        rec(pat(PatternType::Daily, 0), start, RangeKind::NoEnd),
        "interval must be at least 1",
    );
    check(
        rec(abs_monthly(1, 32), start, RangeKind::NoEnd),
        "dayOfMonth 32 is out of range",
    );
    check(
        rec(abs_monthly(1, 0), start, RangeKind::NoEnd),
        "dayOfMonth 0 is out of range",
    );
    check(
        rec(abs_yearly(1, 13, 1), start, RangeKind::NoEnd),
        "month 13 is out of range",
    );
    check(
        rec(abs_yearly(1, 0, 1), start, RangeKind::NoEnd),
        "month 0 is out of range",
    );
    check(
        rec(
            rel_yearly(1, 0, &[Monday], WeekIndex::First),
            start,
            RangeKind::NoEnd,
        ),
        "month 0",
    );
    check(rec(weekly(1, &[]), start, RangeKind::NoEnd), "daysOfWeek");
    check(
        rec(
            rel_monthly(1, &[], WeekIndex::Last),
            start,
            RangeKind::NoEnd,
        ),
        "daysOfWeek",
    );
    check(
        rec(pat(PatternType::Daily, 1), start, RangeKind::Numbered(0)),
        "numberOfOccurrences",
    );
    check(
        rec(
            pat(PatternType::Daily, 1),
            start,
            RangeKind::EndDate(date(2023, 12, 31)),
        ),
        "endDate 2023-12-31 is before startDate 2024-01-01",
    );
    // Irrelevant fields are ignored.
    let mut p = pat(PatternType::Daily, 1);
    p.month = 77;
    p.day_of_month = 99;
    rec(p, start, RangeKind::EndDate(start)).validate().unwrap();
}

// ---------------------------------------------------------------- expansion and DST

fn weekly_9am_instants(zone: &str, from: Date, weeks: u32) -> Vec<Occurrence> {
    let start_wd = DayOfWeek::from(from.weekday());
    let r = rec(weekly(1, &[start_wd]), from, RangeKind::Numbered(weeks));
    let tz = tz(zone);
    r.expand(
        time(9, 0, 0, 0),
        SignedDuration::from_mins(30),
        &tz,
        Timestamp::MIN,
        Timestamp::MAX,
    )
    .unwrap()
}

#[test]
fn weekly_9am_keeps_wall_clock_across_both_transitions() {
    // (zone, a start date, the expected distinct UTC offsets in seconds, in order)
    let cases: [(&str, Date, &[i32]); 4] = [
        (
            "America/New_York",
            date(2024, 2, 20),
            &[-5 * 3600, -4 * 3600, -5 * 3600],
        ),
        ("Europe/London", date(2024, 3, 5), &[0, 3600, 0]),
        ("Europe/Berlin", date(2024, 3, 5), &[3600, 7200, 3600]),
        // Southern hemisphere: DST ends in April, starts in October.
        (
            "Australia/Sydney",
            date(2024, 3, 5),
            &[11 * 3600, 10 * 3600, 11 * 3600],
        ),
    ];
    for (zone, from, offsets) in cases {
        let occ = weekly_9am_instants(zone, from, 45);
        assert_eq!(occ.len(), 45);
        let mut seen: Vec<i32> = Vec::new();
        for o in &occ {
            assert_eq!(o.start.time(), time(9, 0, 0, 0), "{zone} {}", o.start);
            assert_eq!(o.start.date(), o.date);
            assert_eq!(o.end.time(), time(9, 30, 0, 0));
            let off = o.start.offset().seconds();
            if seen.last() != Some(&off) {
                seen.push(off);
            }
        }
        assert_eq!(seen, offsets, "{zone}");
        // Consecutive occurrences are 7 days apart in local time, not always 168 h apart.
        let gaps: Vec<i64> = occ
            .windows(2)
            .map(|w| {
                w[1].start
                    .timestamp()
                    .duration_since(w[0].start.timestamp())
                    .as_hours()
            })
            .collect();
        assert!(
            gaps.contains(&167) && gaps.contains(&169),
            "{zone}: {gaps:?}"
        );
    }
}

#[test]
fn new_york_weekly_utc_instants() {
    let occ = weekly_9am_instants("America/New_York", date(2024, 3, 3), 2);
    assert_eq!(occ[0].start.timestamp(), ts("2024-03-03T14:00:00Z"));
    assert_eq!(occ[1].start.timestamp(), ts("2024-03-10T13:00:00Z"));
    let occ = weekly_9am_instants("America/New_York", date(2024, 10, 27), 2);
    assert_eq!(occ[0].start.timestamp(), ts("2024-10-27T13:00:00Z"));
    assert_eq!(occ[1].start.timestamp(), ts("2024-11-03T14:00:00Z"));
}

#[test]
fn series_at_0230_on_spring_forward_day() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2024, 3, 9),
        RangeKind::Numbered(3),
    );
    let tz = tz("America/New_York");
    let occ = r
        .expand(
            time(2, 30, 0, 0),
            SignedDuration::from_hours(1),
            &tz,
            Timestamp::MIN,
            Timestamp::MAX,
        )
        .unwrap();
    assert_eq!(occ.len(), 3);
    assert_eq!(occ[0].start.timestamp(), ts("2024-03-09T07:30:00Z"));
    // 02:30 does not exist on 2024-03-10: shifted forward to 03:30 EDT.
    assert_eq!(occ[1].date, date(2024, 3, 10));
    assert_eq!(occ[1].start.time(), time(3, 30, 0, 0));
    assert_eq!(occ[1].start.timestamp(), ts("2024-03-10T07:30:00Z"));
    assert_eq!(occ[1].end.timestamp(), ts("2024-03-10T08:30:00Z"));
    assert_eq!(occ[2].start.time(), time(2, 30, 0, 0));
    assert_eq!(occ[2].start.timestamp(), ts("2024-03-11T06:30:00Z"));
}

#[test]
fn series_at_0130_on_fall_back_day_takes_earlier_instant() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2024, 11, 3),
        RangeKind::Numbered(1),
    );
    let tz = tz("America/New_York");
    let occ = r
        .expand(
            time(1, 30, 0, 0),
            SignedDuration::from_hours(1),
            &tz,
            Timestamp::MIN,
            Timestamp::MAX,
        )
        .unwrap();
    assert_eq!(occ[0].start.timestamp(), ts("2024-11-03T05:30:00Z"));
    // End is the exact duration later: 01:30 EST.
    assert_eq!(occ[0].end.timestamp(), ts("2024-11-03T06:30:00Z"));
    assert_eq!(occ[0].end.time(), time(1, 30, 0, 0));
}

#[test]
fn expand_window_overlap_rules() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(2024, 1, 1),
        RangeKind::NoEnd,
    );
    let utc = TimeZone::UTC;
    let one_hour = SignedDuration::from_hours(1);
    let expand = |dur, ws: &str, we: &str| -> Vec<Date> {
        r.expand(time(10, 0, 0, 0), dur, &utc, ts(ws), ts(we))
            .unwrap()
            .into_iter()
            .map(|o| o.date)
            .collect()
    };
    // Occurrence ending exactly at window start is excluded; one starting at window end too.
    assert_eq!(
        expand(one_hour, "2024-01-02T11:00:00Z", "2024-01-03T10:00:00Z"),
        Vec::<Date>::new()
    );
    // Partially overlapping occurrences are included.
    assert_eq!(
        expand(one_hour, "2024-01-02T10:59:00Z", "2024-01-03T10:01:00Z"),
        vec![date(2024, 1, 2), date(2024, 1, 3)]
    );
    // Zero-length at window start counts; at window end does not.
    assert_eq!(
        expand(
            SignedDuration::ZERO,
            "2024-01-02T10:00:00Z",
            "2024-01-03T10:00:00Z"
        ),
        vec![date(2024, 1, 2)]
    );
    // Long occurrences that started before the window are included.
    assert_eq!(
        expand(
            SignedDuration::from_hours(72),
            "2024-01-10T00:00:00Z",
            "2024-01-10T00:00:01Z"
        ),
        vec![date(2024, 1, 7), date(2024, 1, 8), date(2024, 1, 9)]
    );
    // Empty / inverted window, negative duration.
    assert!(expand(one_hour, "2024-01-03T00:00:00Z", "2024-01-03T00:00:00Z").is_empty());
    assert!(
        r.expand(
            time(10, 0, 0, 0),
            SignedDuration::from_hours(-1),
            &utc,
            ts("2024-01-01T00:00:00Z"),
            ts("2024-01-02T00:00:00Z")
        )
        .is_err()
    );
}

#[test]
fn expand_far_window_of_old_series_is_cheap_and_exact() {
    let r = rec(
        pat(PatternType::Daily, 1),
        date(1900, 1, 1),
        RangeKind::NoEnd,
    );
    let tz = tz("Europe/Berlin");
    let occ = r
        .expand(
            time(23, 30, 0, 0),
            SignedDuration::from_hours(1),
            &tz,
            ts("2024-03-30T23:00:00Z"),
            ts("2024-04-01T00:00:00Z"),
        )
        .unwrap();
    let dates: Vec<Date> = occ.iter().map(|o| o.date).collect();
    // 2024-03-30 23:30 CET = 22:30Z, ends 23:30Z: overlaps. 03-31 23:30 CEST = 21:30Z.
    assert_eq!(dates, vec![date(2024, 3, 30), date(2024, 3, 31)]);
}

#[test]
fn all_day_series() {
    let r = rec(
        weekly(1, &[Friday]),
        date(2024, 1, 1),
        RangeKind::Numbered(4),
    );
    // Fridays Jan 5, 12, 19, 26; 3-day events (Fri-Sun).
    assert_eq!(
        expand_all_day(&r, 3, date(2024, 1, 7), date(2024, 1, 20)).unwrap(),
        vec![date(2024, 1, 5), date(2024, 1, 12), date(2024, 1, 19)]
    );
    assert_eq!(
        expand_all_day(&r, 1, date(2024, 1, 7), date(2024, 1, 20)).unwrap(),
        vec![date(2024, 1, 12), date(2024, 1, 19)]
    );
    // Window end is exclusive.
    assert_eq!(
        expand_all_day(&r, 1, date(2024, 1, 6), date(2024, 1, 19)).unwrap(),
        vec![date(2024, 1, 12)]
    );
    assert!(expand_all_day(&r, 0, date(2024, 1, 1), date(2024, 2, 1)).is_err());
    assert!(
        expand_all_day(&r, 1, date(2024, 2, 1), date(2024, 1, 1))
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------- weekdays

#[test]
fn weekday_conversions_round_trip() {
    for d in DayOfWeek::ALL {
        let w: Weekday = d.into();
        assert_eq!(DayOfWeek::from(w), d);
        assert_eq!(d.sunday_zero_offset(), w.to_sunday_zero_offset());
        assert_eq!(DayOfWeek::from_ical_code(d.ical_code()), Some(d));
    }
}

mod rrule_tests;
