//! Conversion between Graph patterns and RFC 5545 `RRULE` values.

use std::fmt::Write as _;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::{DayOfWeek, Error, Pattern, PatternType, Range, RangeKind, Recurrence, WeekIndex};

fn unsupported(msg: impl Into<String>) -> Error {
    Error::Unsupported(msg.into())
}

fn parse_err(msg: impl Into<String>) -> Error {
    Error::Parse(msg.into())
}

/// The value of `UNTIL` as written.
#[derive(Clone, Copy, Debug)]
enum Until {
    Date(Date),
    Floating(DateTime),
    Utc(Timestamp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Default)]
struct Parts {
    freq: Option<Freq>,
    interval: Option<u32>,
    count: Option<u32>,
    until: Option<Until>,
    byday: Vec<(Option<i32>, DayOfWeek)>,
    byday_text: String,
    bymonthday: Vec<i32>,
    bymonth: Vec<i32>,
    bysetpos: Vec<i32>,
    wkst: Option<DayOfWeek>,
}

fn parse_int_list(key: &str, value: &str) -> Result<Vec<i32>, Error> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<i32>()
                .map_err(|_| parse_err(format!("{key}={value}: {v:?} is not an integer")))
        })
        .collect()
}

fn parse_until(value: &str) -> Result<Until, Error> {
    let bad = || parse_err(format!("UNTIL={value} is not a DATE or DATE-TIME"));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<i16>().map_err(|_| bad());
    let v = value.trim();
    let (date_part, time_part) = match v.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    if date_part.len() != 8 || !digits(date_part) {
        return Err(bad());
    }
    let date = Date::new(
        num(&date_part[0..4])?,
        i8::try_from(num(&date_part[4..6])?).map_err(|_| bad())?,
        i8::try_from(num(&date_part[6..8])?).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let Some(t) = time_part else {
        return Ok(Until::Date(date));
    };
    let (t, utc) = match t.strip_suffix(['Z', 'z']) {
        Some(t) => (t, true),
        None => (t, false),
    };
    if t.len() != 6 || !digits(t) {
        return Err(bad());
    }
    let part = |r: std::ops::Range<usize>| -> Result<i8, Error> {
        i8::try_from(num(&t[r])?).map_err(|_| bad())
    };
    // RFC 5545 allows a leap second (60); clamp it.
    let time = Time::new(part(0..2)?, part(2..4)?, part(4..6)?.min(59), 0).map_err(|_| bad())?;
    let dt = date.to_datetime(time);
    if utc {
        let ts = dt.to_zoned(TimeZone::UTC).map_err(|_| bad())?.timestamp();
        Ok(Until::Utc(ts))
    } else {
        Ok(Until::Floating(dt))
    }
}

fn parse_parts(rrule: &str) -> Result<Parts, Error> {
    let mut body = rrule.trim();
    if body
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("RRULE:"))
    {
        body = &body[6..];
    }
    if body.is_empty() {
        return Err(parse_err("empty RRULE"));
    }
    let mut parts = Parts::default();
    let mut seen: Vec<String> = Vec::new();
    for item in body.split(';').filter(|s| !s.trim().is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| parse_err(format!("{item:?} is not NAME=VALUE")))?;
        let key = key.trim().to_ascii_uppercase();
        let value = value.trim();
        if seen.contains(&key) {
            return Err(parse_err(format!("{key} appears more than once")));
        }
        seen.push(key.clone());
        match key.as_str() {
            "FREQ" => {
                parts.freq = Some(match value.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    "SECONDLY" | "MINUTELY" | "HOURLY" => {
                        return Err(unsupported(format!(
                            "FREQ={value} (Graph patterns repeat daily at the finest)"
                        )));
                    }
                    _ => return Err(parse_err(format!("FREQ={value} is not a frequency"))),
                });
            }
            "INTERVAL" => {
                let n: u32 = value.parse().map_err(|_| {
                    parse_err(format!("INTERVAL={value} is not a positive integer"))
                })?;
                if n == 0 {
                    return Err(parse_err("INTERVAL must be at least 1"));
                }
                parts.interval = Some(n);
            }
            "COUNT" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| parse_err(format!("COUNT={value} is not a positive integer")))?;
                if n == 0 {
                    return Err(parse_err("COUNT must be at least 1"));
                }
                parts.count = Some(n);
            }
            "UNTIL" => parts.until = Some(parse_until(value)?),
            "BYDAY" => {
                parts.byday_text = value.to_ascii_uppercase();
                for v in value.split(',') {
                    let v = v.trim();
                    if v.len() < 2 || !v.is_char_boundary(v.len() - 2) {
                        return Err(parse_err(format!("BYDAY value {v:?} is not a weekday")));
                    }
                    let (ord, code) = v.split_at(v.len() - 2);
                    let day = DayOfWeek::from_ical_code(code)
                        .ok_or_else(|| parse_err(format!("BYDAY value {v:?} is not a weekday")))?;
                    let ord = if ord.is_empty() {
                        None
                    } else {
                        let n: i32 =
                            ord.strip_prefix('+').unwrap_or(ord).parse().map_err(|_| {
                                parse_err(format!("BYDAY value {v:?} has a bad ordinal"))
                            })?;
                        if n == 0 || !(-53..=53).contains(&n) {
                            return Err(parse_err(format!("BYDAY value {v:?} has a bad ordinal")));
                        }
                        Some(n)
                    };
                    parts.byday.push((ord, day));
                }
            }
            "BYMONTHDAY" => parts.bymonthday = parse_int_list("BYMONTHDAY", value)?,
            "BYMONTH" => {
                parts.bymonth = parse_int_list("BYMONTH", value)?;
                if parts.bymonth.iter().any(|m| !(1..=12).contains(m)) {
                    return Err(parse_err(format!("BYMONTH={value} is out of range (1-12)")));
                }
            }
            "BYSETPOS" => parts.bysetpos = parse_int_list("BYSETPOS", value)?,
            "WKST" => {
                parts.wkst = Some(
                    DayOfWeek::from_ical_code(value)
                        .ok_or_else(|| parse_err(format!("WKST={value} is not a weekday")))?,
                );
            }
            "BYSECOND" | "BYMINUTE" | "BYHOUR" | "BYYEARDAY" | "BYWEEKNO" | "BYEASTER"
            | "RSCALE" | "SKIP" => {
                return Err(unsupported(format!(
                    "{key}={value} (Graph patterns have no equivalent)"
                )));
            }
            _ => {
                return Err(unsupported(format!(
                    "{key}={value} (unknown or extension part)"
                )));
            }
        }
    }
    if parts.freq.is_none() {
        return Err(parse_err("FREQ is required"));
    }
    if parts.count.is_some() && parts.until.is_some() {
        return Err(parse_err("COUNT and UNTIL must not both be given"));
    }
    Ok(parts)
}

/// Days and index of a relative pattern from BYDAY (+ BYSETPOS).
fn relative(parts: &Parts, freq_name: &str) -> Result<(Vec<DayOfWeek>, WeekIndex), Error> {
    let days: Vec<DayOfWeek> = parts.byday.iter().map(|(_, d)| *d).collect();
    let ordinals: Vec<i32> = parts.byday.iter().filter_map(|(o, _)| *o).collect();
    if !ordinals.is_empty() {
        if parts.byday.len() > 1 {
            return Err(unsupported(format!(
                "BYDAY={} (several days with ordinals; Graph applies one index to the set of days, \
                 written BYDAY=MO,TU;BYSETPOS=n)",
                parts.byday_text
            )));
        }
        if !parts.bysetpos.is_empty() {
            return Err(unsupported(format!(
                "BYSETPOS together with an ordinal BYDAY={}",
                parts.byday_text
            )));
        }
        let n = ordinals[0];
        let index = WeekIndex::from_setpos(n).ok_or_else(|| {
            unsupported(format!(
                "BYDAY={} (Graph's index is first, second, third, fourth or last)",
                parts.byday_text
            ))
        })?;
        return Ok((days, index));
    }
    match parts.bysetpos.as_slice() {
        [] => Err(unsupported(format!(
            "BYDAY={} without an ordinal or BYSETPOS in a {freq_name} rule (every such weekday)",
            parts.byday_text
        ))),
        [pos] => {
            let index = WeekIndex::from_setpos(*pos).ok_or_else(|| {
                unsupported(format!(
                    "BYSETPOS={pos} (Graph's index is first, second, third, fourth or last: 1-4 or -1)"
                ))
            })?;
            let mut seen = Vec::new();
            for d in days {
                if !seen.contains(&d) {
                    seen.push(d);
                }
            }
            Ok((seen, index))
        }
        _ => Err(unsupported(format!(
            "BYSETPOS with several positions ({:?})",
            parts.bysetpos
        ))),
    }
}

fn to_u8(n: i32) -> u8 {
    u8::try_from(n).unwrap_or(0)
}

fn pattern_from_parts(parts: &Parts, dtstart: Date) -> Result<Pattern, Error> {
    let interval = parts.interval.unwrap_or(1);
    if parts.bymonth.len() > 1 {
        return Err(unsupported(format!(
            "BYMONTH with several months ({:?})",
            parts.bymonth
        )));
    }
    if parts.bymonthday.len() > 1 {
        return Err(unsupported(format!(
            "BYMONTHDAY with several days ({:?})",
            parts.bymonthday
        )));
    }
    if let Some(&d) = parts.bymonthday.first() {
        if d < 1 {
            return Err(unsupported(format!(
                "BYMONTHDAY={d} (days counted from the end of the month)"
            )));
        }
        if d > 31 {
            return Err(parse_err(format!("BYMONTHDAY={d} is out of range")));
        }
    }
    let no_setpos = |freq: &str| -> Result<(), Error> {
        if parts.bysetpos.is_empty() {
            Ok(())
        } else {
            Err(unsupported(format!(
                "BYSETPOS in a {freq} rule without a set of weekdays"
            )))
        }
    };
    let no_ordinals = |freq: &str| -> Result<(), Error> {
        if parts.byday.iter().any(|(o, _)| o.is_some()) {
            Err(unsupported(format!(
                "BYDAY={} (ordinal weekdays in a {freq} rule)",
                parts.byday_text
            )))
        } else {
            Ok(())
        }
    };
    let mut p = Pattern::new(PatternType::Daily, interval);
    p.first_day_of_week = parts.wkst.unwrap_or(DayOfWeek::Sunday);
    let freq = parts.freq.ok_or_else(|| parse_err("FREQ is required"))?;
    match freq {
        Freq::Daily | Freq::Weekly => {
            let name = if freq == Freq::Daily {
                "DAILY"
            } else {
                "WEEKLY"
            };
            if !parts.bymonth.is_empty() {
                return Err(unsupported(format!("BYMONTH in a {name} rule")));
            }
            if !parts.bymonthday.is_empty() {
                return Err(unsupported(format!("BYMONTHDAY in a {name} rule")));
            }
            no_setpos(name)?;
            no_ordinals(name)?;
            let days: Vec<DayOfWeek> = parts.byday.iter().map(|(_, d)| *d).collect();
            if freq == Freq::Daily {
                if days.is_empty() {
                    return Ok(p);
                }
                if interval != 1 {
                    return Err(unsupported(format!(
                        "BYDAY={} in a DAILY rule with INTERVAL={interval}",
                        parts.byday_text
                    )));
                }
                // FREQ=DAILY;BYDAY=… ("every weekday") is Graph's weekly pattern.
            } else {
                // RFC 5545's default week start is Monday; it matters for INTERVAL > 1.
                p.first_day_of_week = parts.wkst.unwrap_or(DayOfWeek::Monday);
            }
            p.kind = PatternType::Weekly;
            p.days_of_week = if days.is_empty() {
                vec![DayOfWeek::from(dtstart.weekday())]
            } else {
                dedup(days)
            };
        }
        Freq::Monthly => {
            if !parts.bymonth.is_empty() {
                return Err(unsupported("BYMONTH in a MONTHLY rule"));
            }
            if let Some(&d) = parts.bymonthday.first() {
                if !parts.byday.is_empty() {
                    return Err(unsupported(format!(
                        "BYMONTHDAY together with BYDAY={}",
                        parts.byday_text
                    )));
                }
                no_setpos("MONTHLY")?;
                p.kind = PatternType::AbsoluteMonthly;
                p.day_of_month = to_u8(d);
            } else if !parts.byday.is_empty() {
                let (days, index) = relative(parts, "MONTHLY")?;
                p.kind = PatternType::RelativeMonthly;
                p.days_of_week = days;
                p.index = index;
            } else {
                no_setpos("MONTHLY")?;
                p.kind = PatternType::AbsoluteMonthly;
                p.day_of_month = to_u8(i32::from(dtstart.day()));
            }
        }
        Freq::Yearly => {
            let month = parts.bymonth.first().copied();
            if let Some(&d) = parts.bymonthday.first() {
                if !parts.byday.is_empty() {
                    return Err(unsupported(format!(
                        "BYMONTHDAY together with BYDAY={}",
                        parts.byday_text
                    )));
                }
                no_setpos("YEARLY")?;
                let m = month.ok_or_else(|| {
                    unsupported(format!(
                        "BYMONTHDAY={d} without BYMONTH in a YEARLY rule (that day of every month)"
                    ))
                })?;
                p.kind = PatternType::AbsoluteYearly;
                p.month = to_u8(m);
                p.day_of_month = to_u8(d);
            } else if !parts.byday.is_empty() {
                let m = month.ok_or_else(|| {
                    unsupported(format!(
                        "BYDAY={} without BYMONTH in a YEARLY rule (weekdays of the whole year)",
                        parts.byday_text
                    ))
                })?;
                let (days, index) = relative(parts, "YEARLY")?;
                p.kind = PatternType::RelativeYearly;
                p.month = to_u8(m);
                p.days_of_week = days;
                p.index = index;
            } else {
                no_setpos("YEARLY")?;
                p.kind = PatternType::AbsoluteYearly;
                p.month = to_u8(month.unwrap_or(i32::from(dtstart.month())));
                p.day_of_month = to_u8(i32::from(dtstart.day()));
            }
        }
    }
    Ok(p)
}

fn dedup(days: Vec<DayOfWeek>) -> Vec<DayOfWeek> {
    let mut out = Vec::with_capacity(days.len());
    for d in days {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn fmt_date(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

fn fmt_utc(ts: Timestamp) -> String {
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    format!(
        "{}T{:02}{:02}{:02}Z",
        fmt_date(dt.date()),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

impl Recurrence {
    /// The RFC 5545 `RRULE` value (without the `RRULE:` prefix), e.g.
    /// `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU;COUNT=10`.
    ///
    /// An `endDate` range is written as `UNTIL=<date>` (the inclusive local end date). RFC 5545
    /// wants a UTC date-time when DTSTART has a time zone: use [`Recurrence::to_rrule_zoned`]
    /// for that.
    pub fn to_rrule(&self) -> String {
        let mut s = self.rrule_pattern_part();
        match self.range.kind {
            RangeKind::EndDate(d) => {
                let _ = write!(s, ";UNTIL={}", fmt_date(d));
            }
            RangeKind::NoEnd => {}
            RangeKind::Numbered(n) => {
                let _ = write!(s, ";COUNT={n}");
            }
        }
        s
    }

    /// Like [`Recurrence::to_rrule`], but an `endDate` range becomes the RFC 5545 form
    /// `UNTIL=<UTC date-time>`: the instant of the last possible occurrence start (end date +
    /// `start_time` in `tz`), so that occurrence is included.
    pub fn to_rrule_zoned(&self, start_time: Time, tz: &TimeZone) -> Result<String, Error> {
        let mut s = self.rrule_pattern_part();
        match self.range.kind {
            RangeKind::EndDate(d) => {
                let until = d.to_datetime(start_time).to_zoned(tz.clone())?.timestamp();
                let _ = write!(s, ";UNTIL={}", fmt_utc(until));
            }
            RangeKind::NoEnd => {}
            RangeKind::Numbered(n) => {
                let _ = write!(s, ";COUNT={n}");
            }
        }
        Ok(s)
    }

    fn rrule_pattern_part(&self) -> String {
        let p = &self.pattern;
        let days = || {
            dedup(p.days_of_week.clone())
                .iter()
                .map(|d| d.ical_code())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut s = String::new();
        let freq = match p.kind {
            PatternType::Daily => "DAILY",
            PatternType::Weekly => "WEEKLY",
            PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => "MONTHLY",
            PatternType::AbsoluteYearly | PatternType::RelativeYearly => "YEARLY",
        };
        let _ = write!(s, "FREQ={freq};INTERVAL={}", p.interval);
        match p.kind {
            PatternType::Daily => {}
            PatternType::Weekly => {
                let _ = write!(
                    s,
                    ";BYDAY={};WKST={}",
                    days(),
                    p.first_day_of_week.ical_code()
                );
            }
            PatternType::AbsoluteMonthly => {
                let _ = write!(s, ";BYMONTHDAY={}", p.day_of_month);
            }
            PatternType::RelativeMonthly => {
                let _ = write!(s, ";BYDAY={};BYSETPOS={}", days(), p.index.to_setpos());
            }
            PatternType::AbsoluteYearly => {
                let _ = write!(s, ";BYMONTH={};BYMONTHDAY={}", p.month, p.day_of_month);
            }
            PatternType::RelativeYearly => {
                let _ = write!(
                    s,
                    ";BYMONTH={};BYDAY={};BYSETPOS={}",
                    p.month,
                    days(),
                    p.index.to_setpos()
                );
            }
        }
        s
    }

    /// Parses an `RRULE` value (with or without the `RRULE:` prefix) for a series starting on
    /// `dtstart_date`, which becomes `range.startDate` and supplies the defaults RFC 5545 takes
    /// from DTSTART (weekday, day of month, month).
    ///
    /// `UNTIL` given as a date is the inclusive end date. Given as a date-time, only its date
    /// is used (UTC date for a `Z` value): without the series' start time and zone this is the
    /// best approximation; use [`Recurrence::from_rrule_zoned`] to be exact.
    ///
    /// Without `WKST`, a weekly rule gets Monday as `firstDayOfWeek` (RFC 5545's default, which
    /// decides the week alignment when `INTERVAL > 1`); other rules get Graph's default Sunday.
    ///
    /// Anything Graph's patterns cannot express gives [`Error::Unsupported`] naming the part.
    pub fn from_rrule(rrule: &str, dtstart_date: Date) -> Result<Self, Error> {
        let parts = parse_parts(rrule)?;
        let pattern = pattern_from_parts(&parts, dtstart_date)?;
        let kind = match (parts.count, parts.until) {
            (Some(n), _) => RangeKind::Numbered(n),
            (None, Some(Until::Date(d))) => RangeKind::EndDate(d),
            (None, Some(Until::Floating(dt))) => RangeKind::EndDate(dt.date()),
            (None, Some(Until::Utc(ts))) => RangeKind::EndDate(ts.to_zoned(TimeZone::UTC).date()),
            (None, None) => RangeKind::NoEnd,
        };
        Self::finish(pattern, dtstart_date, kind, None)
    }

    /// Parses an `RRULE` value for a series whose first occurrence is `dtstart`; same as
    /// [`Recurrence::from_rrule_local`] with `dtstart`'s civil date-time and zone. (For a
    /// DTSTART that fell into a DST gap, the `Zoned` holds the shifted wall-clock time; use
    /// `from_rrule_local` with the nominal time instead.)
    pub fn from_rrule_zoned(rrule: &str, dtstart: &Zoned) -> Result<Self, Error> {
        Self::from_rrule_local(rrule, dtstart.datetime(), dtstart.time_zone())
    }

    /// Parses an `RRULE` value for a series whose first occurrence is at the local
    /// (wall-clock) date-time `dtstart` in `tz`. `UNTIL` is exact: the end date is the last
    /// local date whose occurrence (at `dtstart`'s wall-clock time, resolved in `tz` as
    /// [`Recurrence::expand`] does) starts at or before `UNTIL`. A UTC value is an instant, a
    /// floating value is read in `tz`, and a date is the inclusive end date.
    /// `recurrenceTimeZone` is set to the zone's IANA name if it has one.
    pub fn from_rrule_local(rrule: &str, dtstart: DateTime, tz: &TimeZone) -> Result<Self, Error> {
        let parts = parse_parts(rrule)?;
        let start_date = dtstart.date();
        let pattern = pattern_from_parts(&parts, start_date)?;
        let until_instant = |ts: Timestamp| -> Result<Date, Error> {
            let local = ts.to_zoned(tz.clone()).date();
            let occ = local
                .to_datetime(dtstart.time())
                .to_zoned(tz.clone())?
                .timestamp();
            Ok(if occ > ts {
                local.checked_sub(1.day())?
            } else {
                local
            })
        };
        let kind = match (parts.count, parts.until) {
            (Some(n), _) => RangeKind::Numbered(n),
            (None, Some(Until::Date(d))) => RangeKind::EndDate(d),
            (None, Some(Until::Floating(dt))) => {
                RangeKind::EndDate(until_instant(dt.to_zoned(tz.clone())?.timestamp())?)
            }
            (None, Some(Until::Utc(ts))) => RangeKind::EndDate(until_instant(ts)?),
            (None, None) => RangeKind::NoEnd,
        };
        let name = tz.iana_name().map(str::to_owned);
        Self::finish(pattern, start_date, kind, name)
    }

    fn finish(
        pattern: Pattern,
        start_date: Date,
        kind: RangeKind,
        recurrence_time_zone: Option<String>,
    ) -> Result<Self, Error> {
        if let RangeKind::EndDate(end) = kind
            && end < start_date
        {
            return Err(Error::Invalid(format!(
                "UNTIL ({end}) is before the first possible occurrence on {start_date}"
            )));
        }
        let rec = Recurrence {
            pattern,
            range: Range {
                start_date,
                kind,
                recurrence_time_zone,
            },
        };
        rec.validate()?;
        Ok(rec)
    }
}
