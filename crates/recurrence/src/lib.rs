//! Microsoft Graph `patternedRecurrence` semantics: domain types, validation, expansion of a
//! series in its recurrence time zone (keeping wall-clock time across DST changes, as Exchange
//! does), and conversion to and from RFC 5545 `RRULE`.
//!
//! These are domain types, not wire types: they carry no serialization at all. Whoever reads or
//! writes JSON spells it at its own edge — the Graph client (`calgate-graph`) and the simulator
//! (`calgate-sim`) each map Graph's `patternedRecurrence` themselves, so that a misreading of
//! Microsoft's documentation on one side is caught by the other instead of being mirrored
//! through a shared spelling. The names in the docs and in [`Error`] messages (`dayOfMonth`,
//! `daysOfWeek`, `absoluteMonthly`, …) are those of Microsoft's documentation of the concepts.
//!
//! No I/O happens here.
//!
//! ```
//! use calgate_recurrence::{DayOfWeek, Pattern, PatternType, Range, RangeKind, Recurrence};
//! use jiff::{civil::date, civil::time, tz::TimeZone, SignedDuration, Timestamp};
//!
//! let mut pattern = Pattern::new(PatternType::Weekly, 1);
//! pattern.days_of_week = vec![DayOfWeek::Monday];
//! let rec = Recurrence {
//!     pattern,
//!     range: Range { start_date: date(2024, 3, 4), kind: RangeKind::Numbered(2), recurrence_time_zone: None },
//! };
//! assert_eq!(rec.to_rrule(), "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;WKST=SU;COUNT=2");
//! let tz = TimeZone::get("America/New_York").unwrap();
//! let occ = rec.expand(time(9, 0, 0, 0), SignedDuration::from_mins(30), &tz,
//!                      Timestamp::MIN, Timestamp::MAX).unwrap();
//! // 09:00 local on both sides of the DST change: 14:00Z, then 13:00Z.
//! assert_eq!(occ[0].start.timestamp().to_string(), "2024-03-04T14:00:00Z");
//! assert_eq!(occ[1].start.timestamp().to_string(), "2024-03-11T13:00:00Z");
//! ```
//!
//! # Semantics choices
//!
//! * **Missing days are skipped** (the behaviour specified for this crate). `absoluteMonthly`
//!   day 31 yields nothing in months with 30 days or fewer; `absoluteYearly` February 29 only
//!   yields in leap years; an impossible date such as February 30 yields no occurrence at all
//!   (the search gives up after a full 400-year Gregorian cycle without a match, so it always
//!   terminates). This is RFC 5545's `BYMONTHDAY` rule, so the `RRULE` conversion is exact.
//!   Caveat: Microsoft's EWS reference for `AbsoluteMonthlyRecurrence/DayOfMonth` says
//!   instead that "the last day of the month is assumed" when the month is shorter; if a
//!   real tenant confirms that for Graph, the clamp is expressible in RFC 5545 as
//!   `BYMONTHDAY=28,29,30,31;BYSETPOS=-1` and can be added as a policy.
//! * **Series start.** The first occurrence is the first date on or after `range.startDate`
//!   that matches the pattern; `startDate` itself is not an occurrence unless it matches.
//! * **Weekly alignment.** Weeks begin on `firstDayOfWeek`; the week containing `startDate`
//!   is week 0, and only weeks `0, interval, 2*interval, …` are used.
//! * **Relative index over a set of days.** With several `daysOfWeek`, `index` applies to the
//!   set: "first" with Monday–Friday is the first day of the month that is any of them
//!   (`BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1`).
//! * **Ranges.** `endDate` is an inclusive local date; `numbered` counts occurrences from the
//!   first one; `noEnd` is bounded only by the caller's window.
//! * **Time zones.** Each occurrence is the local date plus the series' wall-clock start time,
//!   resolved in the series zone with jiff's "compatible" disambiguation (a time in a DST gap
//!   moves forward by the gap's length; an ambiguous time in a fold takes the earlier
//!   instant). The end is the start plus the (exact) duration.
#![forbid(unsafe_code)]

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

mod rrule;

pub use jiff::civil::Weekday;

/// Graph `recurrencePatternType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// Every `interval` days.
    Daily,
    /// On `daysOfWeek`, every `interval` weeks.
    Weekly,
    /// On `dayOfMonth`, every `interval` months.
    AbsoluteMonthly,
    /// On the `index`-th of `daysOfWeek` in the month, every `interval` months.
    RelativeMonthly,
    /// On `month`/`dayOfMonth`, every `interval` years.
    AbsoluteYearly,
    /// On the `index`-th of `daysOfWeek` in `month`, every `interval` years.
    RelativeYearly,
}

impl PatternType {
    /// The pattern type's name in messages, as Microsoft's documentation names it
    /// (`"absoluteMonthly"`, …). Not a wire spelling: JSON is spelled by whoever writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternType::Daily => "daily",
            PatternType::Weekly => "weekly",
            PatternType::AbsoluteMonthly => "absoluteMonthly",
            PatternType::RelativeMonthly => "relativeMonthly",
            PatternType::AbsoluteYearly => "absoluteYearly",
            PatternType::RelativeYearly => "relativeYearly",
        }
    }
}

impl fmt::Display for PatternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph `weekIndex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum WeekIndex {
    /// The first matching day of the month.
    #[default]
    First,
    /// The second matching day of the month.
    Second,
    /// The third matching day of the month.
    Third,
    /// The fourth matching day of the month.
    Fourth,
    /// The last matching day of the month.
    Last,
}

impl WeekIndex {
    /// The RFC 5545 `BYSETPOS` / ordinal value: 1..=4, or -1 for `Last`.
    pub fn to_setpos(self) -> i32 {
        match self {
            WeekIndex::First => 1,
            WeekIndex::Second => 2,
            WeekIndex::Third => 3,
            WeekIndex::Fourth => 4,
            WeekIndex::Last => -1,
        }
    }

    /// Inverse of [`WeekIndex::to_setpos`].
    pub fn from_setpos(pos: i32) -> Option<Self> {
        Some(match pos {
            1 => WeekIndex::First,
            2 => WeekIndex::Second,
            3 => WeekIndex::Third,
            4 => WeekIndex::Fourth,
            -1 => WeekIndex::Last,
            _ => return None,
        })
    }
}

/// Graph `dayOfWeek`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayOfWeek {
    /// Sunday.
    Sunday,
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
}

impl Default for DayOfWeek {
    /// Graph's default `firstDayOfWeek`.
    fn default() -> Self {
        DayOfWeek::Sunday
    }
}

impl DayOfWeek {
    /// All days, Sunday first.
    pub const ALL: [DayOfWeek; 7] = [
        DayOfWeek::Sunday,
        DayOfWeek::Monday,
        DayOfWeek::Tuesday,
        DayOfWeek::Wednesday,
        DayOfWeek::Thursday,
        DayOfWeek::Friday,
        DayOfWeek::Saturday,
    ];

    /// 0 for Sunday … 6 for Saturday.
    pub fn sunday_zero_offset(self) -> i8 {
        match self {
            DayOfWeek::Sunday => 0,
            DayOfWeek::Monday => 1,
            DayOfWeek::Tuesday => 2,
            DayOfWeek::Wednesday => 3,
            DayOfWeek::Thursday => 4,
            DayOfWeek::Friday => 5,
            DayOfWeek::Saturday => 6,
        }
    }

    /// The RFC 5545 two-letter code (`SU`, `MO`, …).
    pub fn ical_code(self) -> &'static str {
        match self {
            DayOfWeek::Sunday => "SU",
            DayOfWeek::Monday => "MO",
            DayOfWeek::Tuesday => "TU",
            DayOfWeek::Wednesday => "WE",
            DayOfWeek::Thursday => "TH",
            DayOfWeek::Friday => "FR",
            DayOfWeek::Saturday => "SA",
        }
    }

    /// Parses an RFC 5545 two-letter code, case-insensitively.
    pub fn from_ical_code(code: &str) -> Option<Self> {
        DayOfWeek::ALL
            .into_iter()
            .find(|d| d.ical_code().eq_ignore_ascii_case(code))
    }
}

impl From<Weekday> for DayOfWeek {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Sunday => DayOfWeek::Sunday,
            Weekday::Monday => DayOfWeek::Monday,
            Weekday::Tuesday => DayOfWeek::Tuesday,
            Weekday::Wednesday => DayOfWeek::Wednesday,
            Weekday::Thursday => DayOfWeek::Thursday,
            Weekday::Friday => DayOfWeek::Friday,
            Weekday::Saturday => DayOfWeek::Saturday,
        }
    }
}

impl From<DayOfWeek> for Weekday {
    fn from(d: DayOfWeek) -> Self {
        match d {
            DayOfWeek::Sunday => Weekday::Sunday,
            DayOfWeek::Monday => Weekday::Monday,
            DayOfWeek::Tuesday => Weekday::Tuesday,
            DayOfWeek::Wednesday => Weekday::Wednesday,
            DayOfWeek::Thursday => Weekday::Thursday,
            DayOfWeek::Friday => Weekday::Friday,
            DayOfWeek::Saturday => Weekday::Saturday,
        }
    }
}

/// Graph `recurrencePattern`. Fields that do not apply to `kind` are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Graph `type`.
    pub kind: PatternType,
    /// Number of days/weeks/months/years between occurrences; at least 1.
    pub interval: u32,
    /// 1..=12 for the yearly kinds, otherwise 0 (ignored).
    pub month: u8,
    /// 1..=31 for the absolute kinds, otherwise 0 (ignored).
    pub day_of_month: u8,
    /// For `weekly` and the relative kinds.
    pub days_of_week: Vec<DayOfWeek>,
    /// First day of the week, for `weekly` alignment when `interval > 1`. Graph's default is Sunday.
    pub first_day_of_week: DayOfWeek,
    /// For the relative kinds.
    pub index: WeekIndex,
}

impl Pattern {
    /// A pattern of `kind` every `interval` periods with every other field at its default.
    pub fn new(kind: PatternType, interval: u32) -> Self {
        Pattern {
            kind,
            interval,
            month: 0,
            day_of_month: 0,
            days_of_week: Vec::new(),
            first_day_of_week: DayOfWeek::Sunday,
            index: WeekIndex::First,
        }
    }
}

/// Graph `recurrenceRange` type and its type-specific value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// `endDate`: the last date (inclusive, local) on which an occurrence may fall.
    EndDate(Date),
    /// `noEnd`.
    NoEnd,
    /// `numbered`: `numberOfOccurrences`, at least 1.
    Numbered(u32),
}

/// Graph `recurrenceRange`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The date the series starts; the first occurrence is the first match on or after it.
    pub start_date: Date,
    /// How the series ends.
    pub kind: RangeKind,
    /// As given (Windows or IANA name); informational here, expansion takes a `TimeZone`.
    pub recurrence_time_zone: Option<String>,
}

/// Graph `patternedRecurrence`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// How often.
    pub pattern: Pattern,
    /// From when, until when.
    pub range: Range,
}

/// One expanded occurrence of a timed series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The local date of the occurrence in the recurrence zone (its identity in the series).
    pub date: Date,
    /// Start: `date` + the series' wall-clock start time, resolved in the zone.
    pub start: Zoned,
    /// `start` + duration.
    pub end: Zoned,
}

/// Errors of this crate. Messages are meant to be shown to an API client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recurrence (or an argument) breaks Graph's rules.
    #[error("{0}")]
    Invalid(String),
    /// The RRULE is valid RFC 5545 but has no Graph pattern equivalent.
    #[error("RRULE not expressible as a Graph recurrence pattern: {0}")]
    Unsupported(String),
    /// The RRULE text is malformed.
    #[error("malformed RRULE: {0}")]
    Parse(String),
    /// Date arithmetic left the supported range of dates.
    #[error("date or time out of range: {0}")]
    DateTime(#[from] jiff::Error),
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// Every month/year combination repeats within one 400-year Gregorian cycle, so a pattern
/// that has not matched for that many consecutive periods never will.
const MAX_EMPTY_MONTHS: u32 = 4800;
const MAX_EMPTY_YEARS: u32 = 400;

impl Recurrence {
    /// Validates the pattern as Graph does (required fields per pattern type; interval >= 1;
    /// month 1..=12; dayOfMonth 1..=31; daysOfWeek non-empty for weekly/relative;
    /// numberOfOccurrences >= 1; endDate >= startDate).
    pub fn validate(&self) -> Result<(), Error> {
        let p = &self.pattern;
        if p.interval < 1 {
            return Err(invalid("interval must be at least 1"));
        }
        let yearly = matches!(
            p.kind,
            PatternType::AbsoluteYearly | PatternType::RelativeYearly
        );
        if yearly && !(1..=12).contains(&p.month) {
            return Err(invalid(format!(
                "month {} is out of range (1-12); pattern type {} requires a month",
                p.month, p.kind
            )));
        }
        let absolute = matches!(
            p.kind,
            PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly
        );
        if absolute && !(1..=31).contains(&p.day_of_month) {
            return Err(invalid(format!(
                "dayOfMonth {} is out of range (1-31); pattern type {} requires a day of the month",
                p.day_of_month, p.kind
            )));
        }
        let needs_days = matches!(
            p.kind,
            PatternType::Weekly | PatternType::RelativeMonthly | PatternType::RelativeYearly
        );
        if needs_days && p.days_of_week.is_empty() {
            return Err(invalid(format!(
                "daysOfWeek must list at least one day for pattern type {}",
                p.kind
            )));
        }
        match self.range.kind {
            RangeKind::Numbered(0) => {
                return Err(invalid(
                    "numberOfOccurrences must be at least 1 for a numbered range",
                ));
            }
            RangeKind::EndDate(end) if end < self.range.start_date => {
                return Err(invalid(format!(
                    "endDate {end} is before startDate {}",
                    self.range.start_date
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Occurrence dates (local calendar dates in the recurrence zone) in order, starting at
    /// `range.start_date`, honouring the range (endDate inclusive, numbered counts
    /// occurrences), never yielding past `until` (inclusive).
    ///
    /// Always terminates: a `noEnd` series is bounded by `until`, and a pattern that can never
    /// match (e.g. `absoluteYearly` February 30) yields nothing.
    pub fn dates(&self, until: Date) -> Result<Vec<Date>, Error> {
        self.validate()?;
        let mut out = Vec::new();
        self.walk(self.range.start_date, until, |d| out.push(d));
        Ok(out)
    }

    /// Occurrence dates in `[from, until]` (both inclusive); see [`Recurrence::dates`].
    /// Occurrences before `from` still count towards a `numbered` range.
    pub fn dates_between(&self, from: Date, until: Date) -> Result<Vec<Date>, Error> {
        self.validate()?;
        let mut out = Vec::new();
        self.walk(from, until, |d| out.push(d));
        Ok(out)
    }

    /// Expand a series whose first occurrence starts at local wall-clock `start_time`, lasting
    /// `duration`, in time zone `tz`, returning every occurrence that overlaps
    /// `[window_start, window_end)`: `start < window_end && end > window_start`, where a
    /// zero-length occurrence starting exactly at `window_start` also counts.
    ///
    /// Wall-clock time is kept across DST changes, as Exchange does: each start is the local
    /// date + `start_time` resolved in `tz` with jiff's "compatible" disambiguation (in a DST
    /// gap the time moves forward by the gap; in a fold the earlier instant is used).
    pub fn expand(
        &self,
        start_time: Time,
        duration: SignedDuration,
        tz: &TimeZone,
        window_start: Timestamp,
        window_end: Timestamp,
    ) -> Result<Vec<Occurrence>, Error> {
        self.validate()?;
        if duration.is_negative() {
            return Err(invalid("duration must not be negative"));
        }
        if window_end <= window_start {
            return Ok(Vec::new());
        }
        // Occurrences ending after window_start start after window_start - duration. Local
        // dates are padded by a day on both sides to absorb offsets and DST shifts.
        let earliest = window_start.checked_sub(duration).unwrap_or(Timestamp::MIN);
        let from = earliest
            .to_zoned(tz.clone())
            .date()
            .checked_sub(1.day())
            .unwrap_or(Date::MIN);
        let until = window_end
            .to_zoned(tz.clone())
            .date()
            .checked_add(1.day())
            .unwrap_or(Date::MAX);
        let mut dates = Vec::new();
        self.walk(from, until, |d| dates.push(d));

        let mut out = Vec::new();
        for date in dates {
            let start = date.to_datetime(start_time).to_zoned(tz.clone())?;
            let end = start.checked_add(duration)?;
            let st = start.timestamp();
            let et = end.timestamp();
            let overlaps =
                st < window_end && (et > window_start || (st == et && st == window_start));
            if overlaps {
                out.push(Occurrence { date, start, end });
            }
        }
        Ok(out)
    }

    /// Calls `f` for every occurrence date in `[from, until]`, in order. Assumes `validate`
    /// passed.
    fn walk(&self, from: Date, until: Date, mut f: impl FnMut(Date)) {
        let start = self.range.start_date;
        let (limit, mut remaining) = match self.range.kind {
            RangeKind::EndDate(end) => (until.min(end), None),
            RangeKind::NoEnd => (until, None),
            RangeKind::Numbered(n) => (until, Some(n)),
        };
        if limit < start || limit < from {
            return;
        }
        let p = &self.pattern;
        let interval = i64::from(p.interval.max(1));
        // When nothing is counted, periods that end before `from` can be skipped.
        let skip_to = if remaining.is_none() && from > start {
            Some(from)
        } else {
            None
        };
        let mut emit = |d: Date| -> bool {
            // Returns false once the series is over.
            if d < start {
                return true;
            }
            if d > limit {
                return false;
            }
            if d >= from {
                f(d);
            }
            if let Some(r) = remaining.as_mut() {
                *r -= 1;
                if *r == 0 {
                    return false;
                }
            }
            true
        };
        match p.kind {
            PatternType::Daily => {
                let mut k: i64 = match skip_to {
                    Some(t) => days_between(start, t) / interval,
                    None => 0,
                };
                loop {
                    let Some(d) = add_days(start, k * interval) else {
                        return;
                    };
                    if !emit(d) {
                        return;
                    }
                    k += 1;
                }
            }
            PatternType::Weekly => {
                let fdow = p.first_day_of_week.sunday_zero_offset();
                let start_off = i64::from(
                    (DayOfWeek::from(start.weekday()).sunday_zero_offset() - fdow).rem_euclid(7),
                );
                let Some(week0) = add_days(start, -start_off) else {
                    return;
                };
                let mut offsets: Vec<i64> = p
                    .days_of_week
                    .iter()
                    .map(|d| i64::from((d.sunday_zero_offset() - fdow).rem_euclid(7)))
                    .collect();
                offsets.sort_unstable();
                offsets.dedup();
                let mut k: i64 = match skip_to {
                    Some(t) => (days_between(week0, t) / 7 / interval - 1).max(0),
                    None => 0,
                };
                loop {
                    let Some(week) = add_days(week0, k * 7 * interval) else {
                        return;
                    };
                    if week > limit {
                        return;
                    }
                    for &o in &offsets {
                        let Some(d) = add_days(week, o) else {
                            return;
                        };
                        if !emit(d) {
                            return;
                        }
                    }
                    k += 1;
                }
            }
            PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => {
                let m0 = month_number(start);
                let mut k: i64 = match skip_to {
                    Some(t) => ((month_number(t) - m0) / interval - 1).max(0),
                    None => 0,
                };
                let mut empty: u32 = 0;
                loop {
                    let (y, m) = split_month_number(m0 + k * interval);
                    let Ok(first) = Date::new(y, m, 1) else {
                        return;
                    };
                    if first > limit {
                        return;
                    }
                    match self.day_in_month(y, m) {
                        Some(d) => {
                            empty = 0;
                            if !emit(d) {
                                return;
                            }
                        }
                        None => {
                            empty += 1;
                            if empty > MAX_EMPTY_MONTHS {
                                return;
                            }
                        }
                    }
                    k += 1;
                }
            }
            PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
                let y0 = i64::from(start.year());
                let mut k: i64 = match skip_to {
                    Some(t) => ((i64::from(t.year()) - y0) / interval - 1).max(0),
                    None => 0,
                };
                let mut empty: u32 = 0;
                loop {
                    let Ok(y) = i16::try_from(y0 + k * interval) else {
                        return;
                    };
                    let Ok(first) = Date::new(y, 1, 1) else {
                        return;
                    };
                    if first > limit {
                        return;
                    }
                    let Ok(m) = i8::try_from(p.month) else {
                        return;
                    };
                    match self.day_in_month(y, m) {
                        Some(d) => {
                            empty = 0;
                            if !emit(d) {
                                return;
                            }
                        }
                        None => {
                            empty += 1;
                            if empty > MAX_EMPTY_YEARS {
                                return;
                            }
                        }
                    }
                    k += 1;
                }
            }
        }
    }

    /// The pattern's date in month `m` of year `y`, for the monthly and yearly kinds.
    fn day_in_month(&self, y: i16, m: i8) -> Option<Date> {
        let p = &self.pattern;
        match p.kind {
            PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly => {
                let day = i8::try_from(p.day_of_month).ok()?;
                // Months lacking the day are skipped (RFC 5545 BYMONTHDAY behaviour).
                Date::new(y, m, day).ok()
            }
            _ => nth_weekday_in_month(y, m, &p.days_of_week, p.index),
        }
    }
}

/// The `index`-th day of month `y`-`m` whose weekday is in `days`.
fn nth_weekday_in_month(y: i16, m: i8, days: &[DayOfWeek], index: WeekIndex) -> Option<Date> {
    let first = Date::new(y, m, 1).ok()?;
    let n = first.days_in_month();
    let mut matches = (1..=n).filter_map(|d| {
        let date = Date::new(y, m, d).ok()?;
        days.contains(&DayOfWeek::from(date.weekday()))
            .then_some(date)
    });
    match index {
        WeekIndex::Last => matches.next_back(),
        other => {
            let pos = usize::try_from(other.to_setpos() - 1).ok()?;
            matches.nth(pos)
        }
    }
}

fn add_days(d: Date, n: i64) -> Option<Date> {
    d.checked_add(SignedDuration::from_hours(n.checked_mul(24)?))
        .ok()
}

fn days_between(a: Date, b: Date) -> i64 {
    // Whole days from a to b (b >= a expected; negative otherwise).
    b.duration_since(a).as_hours() / 24
}

fn month_number(d: Date) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month()) - 1
}

fn split_month_number(n: i64) -> (i16, i8) {
    let y = n.div_euclid(12);
    let m = n.rem_euclid(12) + 1;
    (
        i16::try_from(y).unwrap_or(i16::MAX),
        i8::try_from(m).unwrap_or(1),
    )
}

/// All-day series: occurrences are whole dates lasting `days` (>= 1) days; returns the start
/// dates of the occurrences that overlap `[window_start, window_end_exclusive)`.
pub fn expand_all_day(
    rec: &Recurrence,
    days: i32,
    window_start: Date,
    window_end_exclusive: Date,
) -> Result<Vec<Date>, Error> {
    rec.validate()?;
    if days < 1 {
        return Err(invalid("an all-day event must last at least 1 day"));
    }
    if window_end_exclusive <= window_start {
        return Ok(Vec::new());
    }
    let from = add_days(window_start, -i64::from(days - 1)).unwrap_or(Date::MIN);
    let until = add_days(window_end_exclusive, -1).unwrap_or(Date::MIN);
    rec.dates_between(from, until)
}

#[cfg(test)]
mod tests;
