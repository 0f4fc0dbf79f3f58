//! Property tests against an independent oracle: the `rrule` crate (chrono / chrono-tz), fed
//! the RRULE this crate writes (or an equivalent alternative spelling that `from_rrule` reads).
//!
//! Semantic alignment notes (no generator restriction was needed for these):
//! * Weekly rules always carry `WKST`, so interval > 1 week alignment agrees.
//! * `UNTIL` is written by `to_rrule_zoned` as the UTC instant of the last possible start, as
//!   RFC 5545 (and the `rrule` crate) require for a DTSTART with TZID.
//! * The `rrule` crate resolves a local time that falls in a DST gap or fold as "local
//!   midnight + time since midnight", which equals jiff's "compatible" disambiguation as long
//!   as midnight itself is not in a transition. The zone list therefore only has zones whose
//!   transitions happen away from midnight (this is the one restriction, see `ZONES`).
//! * The `rrule` crate refuses to parse a DTSTART that is ambiguous or nonexistent; for those
//!   the oracle gets DTSTART at local midnight plus `BYHOUR`/`BYMINUTE`/`BYSECOND`, which
//!   generates the same set of instants.
#![allow(clippy::unwrap_used)]

use calgate_recurrence::{
    DayOfWeek, Pattern, PatternType, Range, RangeKind, Recurrence, WeekIndex, expand_all_day,
};
use jiff::civil::{Date, Time, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

/// IANA zones with DST whose transitions are not at local midnight (see module docs).
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Los_Angeles",
    "America/Denver",
    "America/St_Johns",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Asia/Jerusalem",
];

#[derive(Clone, Debug)]
struct Case {
    rec: Recurrence,
    zone: &'static str,
    time: Time,
    duration: SignedDuration,
    window_start: Timestamp,
    window_end: Timestamp,
    /// Use the alternative RRULE spelling (ordinal BYDAY, DAILY;BYDAY) through `from_rrule`.
    alt_spelling: bool,
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    (
        0usize..6,
        1u32..=4,
        prop_oneof![1u8..128, (0u8..7).prop_map(|i| 1u8 << i)],
        1u8..=12,
        prop_oneof![1u8..=31, 27u8..=31],
        0usize..7,
        0usize..5,
    )
        .prop_map(|(kind, interval, mask, month, day, fdow, index)| {
            let kind = [
                PatternType::Daily,
                PatternType::Weekly,
                PatternType::AbsoluteMonthly,
                PatternType::RelativeMonthly,
                PatternType::AbsoluteYearly,
                PatternType::RelativeYearly,
            ][kind];
            let mut p = Pattern::new(kind, interval);
            let days: Vec<DayOfWeek> = DayOfWeek::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, d)| d)
                .collect();
            match kind {
                PatternType::Daily => {}
                PatternType::Weekly => {
                    p.days_of_week = days;
                    p.first_day_of_week = DayOfWeek::ALL[fdow];
                }
                PatternType::AbsoluteMonthly => p.day_of_month = day,
                PatternType::RelativeMonthly => {
                    p.days_of_week = days;
                    p.index = [
                        WeekIndex::First,
                        WeekIndex::Second,
                        WeekIndex::Third,
                        WeekIndex::Fourth,
                        WeekIndex::Last,
                    ][index];
                }
                PatternType::AbsoluteYearly => {
                    p.month = month;
                    p.day_of_month = day;
                }
                PatternType::RelativeYearly => {
                    p.month = month;
                    p.days_of_week = days;
                    p.index = [
                        WeekIndex::First,
                        WeekIndex::Second,
                        WeekIndex::Third,
                        WeekIndex::Fourth,
                        WeekIndex::Last,
                    ][index];
                }
            }
            p
        })
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        pattern_strategy(),
        0i64..=3652,                        // start date offset from 2020-01-01
        (0usize..3, 1u32..=60, 0i64..=900), // range kind, count, end offset
        (
            prop_oneof![0i8..24, 0i8..4],
            prop_oneof![Just(0i8), Just(30), 0i8..60],
        ), // start time (biased to DST hours)
        0usize..ZONES.len(),
        prop_oneof![Just(0i64), 1i64..=240, 60i64..=60 * 72], // duration minutes
        // window start offset / length, days
        (
            prop_oneof![3 => -40i64..=30, 1 => -40i64..=800],
            prop_oneof![1i64..=730, 300i64..=730],
        ),
        (0i64..24, any::<bool>()),
    )
        .prop_map(
            |(pattern, start_off, (rk, count, end_off), (h, m), zi, dur, (ws, wl), (wh, alt))| {
                let start = date(2020, 1, 1).checked_add(start_off.days()).unwrap();
                let kind = match rk {
                    0 => RangeKind::NoEnd,
                    1 => RangeKind::Numbered(count),
                    _ => RangeKind::EndDate(start.checked_add(end_off.days()).unwrap()),
                };
                let zone = ZONES[zi];
                let tz = TimeZone::get(zone).unwrap();
                let window_start = start
                    .checked_add(ws.days())
                    .unwrap()
                    .to_datetime(Time::midnight())
                    .checked_add(wh.hours())
                    .unwrap()
                    .to_zoned(tz)
                    .unwrap()
                    .timestamp();
                let window_end = window_start.checked_add((wl * 24).hours()).unwrap();
                Case {
                    rec: Recurrence {
                        pattern,
                        range: Range {
                            start_date: start,
                            kind,
                            recurrence_time_zone: Some(zone.to_owned()),
                        },
                    },
                    zone,
                    time: Time::new(h, m, 0, 0).unwrap(),
                    duration: SignedDuration::from_mins(dur),
                    window_start,
                    window_end,
                    alt_spelling: alt,
                }
            },
        )
}

fn ical_local(d: Date, t: Time) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        d.year(),
        d.month(),
        d.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The oracle: start instants (Unix seconds) of the `rrule` crate's expansion that overlap
/// the window.
fn oracle(case: &Case, rrule: &str) -> Vec<i64> {
    let tz = TimeZone::get(case.zone).unwrap();
    let start = case.rec.range.start_date;
    let unambiguous = tz
        .to_ambiguous_zoned(start.to_datetime(case.time))
        .unambiguous()
        .is_ok();
    let text = if unambiguous {
        format!(
            "DTSTART;TZID={}:{}\nRRULE:{rrule}",
            case.zone,
            ical_local(start, case.time)
        )
    } else {
        format!(
            "DTSTART;TZID={}:{}\nRRULE:{rrule};BYHOUR={};BYMINUTE={};BYSECOND={}",
            case.zone,
            ical_local(start, Time::midnight()),
            case.time.hour(),
            case.time.minute(),
            case.time.second()
        )
    };
    let set: rrule::RRuleSet = text
        .parse()
        .unwrap_or_else(|e| panic!("oracle rejected {text:?}: {e}"));
    let ws = case.window_start.as_second();
    let we = case.window_end.as_second();
    let dur = case.duration.as_secs();
    set.limit()
        .into_iter()
        .map(|dt| dt.timestamp())
        .take_while(|&s| s < we)
        .filter(|&s| s + dur > ws || (dur == 0 && s == ws))
        .collect()
}

/// The alternative spelling of the pattern, exercising `from_rrule`'s other input forms.
fn alt_rrule(rec: &Recurrence, range: &str) -> Option<String> {
    let p = &rec.pattern;
    match p.kind {
        PatternType::RelativeMonthly | PatternType::RelativeYearly if p.days_of_week.len() == 1 => {
            let month = if p.kind == PatternType::RelativeYearly {
                format!("FREQ=YEARLY;BYMONTH={}", p.month)
            } else {
                "FREQ=MONTHLY".to_owned()
            };
            Some(format!(
                "{month};INTERVAL={};BYDAY={}{}{range}",
                p.interval,
                p.index.to_setpos(),
                p.days_of_week[0].ical_code()
            ))
        }
        PatternType::Weekly if p.interval == 1 => Some(format!(
            "FREQ=DAILY;BYDAY={}{range}",
            p.days_of_week
                .iter()
                .map(|d| d.ical_code())
                .collect::<Vec<_>>()
                .join(",")
        )),
        _ => None,
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let tz = TimeZone::get(case.zone).unwrap();
    let standard = case.rec.to_rrule_zoned(case.time, &tz).unwrap();
    // The range part (";COUNT=…" / ";UNTIL=…") of the standard spelling, reused by the
    // alternative one.
    let range = standard
        .rfind(";COUNT=")
        .or_else(|| standard.rfind(";UNTIL="))
        .map_or("", |i| &standard[i..]);
    let (rec, rrule) = match (case.alt_spelling, alt_rrule(&case.rec, range)) {
        (true, Some(alt)) => {
            let dtstart = case.rec.range.start_date.to_datetime(case.time);
            let parsed = Recurrence::from_rrule_local(&alt, dtstart, &tz).unwrap();
            (parsed, alt)
        }
        _ => (case.rec.clone(), standard.clone()),
    };
    let ours: Vec<i64> = rec
        .expand(
            case.time,
            case.duration,
            &tz,
            case.window_start,
            case.window_end,
        )
        .unwrap()
        .into_iter()
        .map(|o| {
            assert_eq!(o.end.timestamp(), o.start.timestamp() + case.duration);
            o.start.timestamp().as_second()
        })
        .collect();
    let expected = oracle(case, &rrule);
    prop_assert_eq!(
        &ours,
        &expected,
        "RRULE {} in {} at {}; window {}..{}",
        rrule,
        case.zone,
        case.time,
        case.window_start,
        case.window_end
    );
    Ok(())
}

/// The fuzzer's find (`calgate demo` under Schemathesis): a multi-byte character across byte 6
/// made the `RRULE:` prefix check slice inside it.
#[test]
fn a_multibyte_character_where_the_prefix_would_be_is_an_error() {
    let date = jiff::civil::date(2026, 12, 7);
    assert!(Recurrence::from_rrule("000\u{80}\u{80}", date).is_err());
    assert!(Recurrence::from_rrule("RRULE\u{e9}FREQ=DAILY", date).is_err());
    assert!(Recurrence::from_rrule("rrule:FREQ=DAILY;COUNT=2", date).is_ok());
}

/// 256 cases per property by default (fast enough for every `cargo test`); set
/// `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn expand_matches_rrule_crate(case in case_strategy()) {
        check(&case)?;
    }

    /// Any text, however hostile (multi-byte characters where `RRULE:` would be, stray
    /// separators), is an error or a rule — never a panic.
    #[test]
    fn any_text_parses_or_fails_cleanly(text in "(RRULE:)?[\\PC;=,:0-9A-Z\u{80}-\u{10FFFF}]{0,40}") {
        let date = jiff::civil::date(2026, 12, 7);
        let _ = Recurrence::from_rrule(&text, date);
        let _ = Recurrence::from_rrule_local(&text, date.at(10, 0, 0, 0), &TimeZone::UTC);
    }

    #[test]
    fn rrule_round_trips(case in case_strategy()) {
        let rec = &case.rec;
        let back = Recurrence::from_rrule(&rec.to_rrule(), rec.range.start_date).unwrap();
        let mut expect = rec.clone();
        expect.range.recurrence_time_zone = None;
        if rec.pattern.kind != PatternType::Weekly {
            expect.pattern.first_day_of_week = DayOfWeek::Sunday;
        }
        prop_assert_eq!(&back, &expect);
        let tz = TimeZone::get(case.zone).unwrap();
        let dtstart = rec.range.start_date.to_datetime(case.time);
        let zoned = Recurrence::from_rrule_local(&rec.to_rrule_zoned(case.time, &tz).unwrap(), dtstart, &tz).unwrap();
        prop_assert_eq!(&zoned.pattern, &expect.pattern);
        prop_assert_eq!(zoned.range.kind, rec.range.kind.clone());
    }

    #[test]
    fn all_day_matches_dates(case in case_strategy(), days in 1i32..=5) {
        let tz = TimeZone::get(case.zone).unwrap();
        let ws = case.window_start.to_zoned(tz.clone()).date();
        let we = case.window_end.to_zoned(tz).date();
        let got = expand_all_day(&case.rec, days, ws, we).unwrap();
        let all = case.rec.dates(we).unwrap();
        let expect: Vec<Date> = all
            .into_iter()
            .filter(|d| *d < we && d.checked_add(i64::from(days).days()).unwrap() > ws)
            .collect();
        prop_assert_eq!(got, expect);
    }
}
