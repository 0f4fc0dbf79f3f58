//! RFC 5545 corpus check (not part of `cargo test`: the corpus lives outside the repository).
//!
//! ```text
//! cargo run -q -p calgate-recurrence --example ical_check -- /work/shared/data/ical
//! ```
//!
//! For every `.ics` file in the folder (listed by `INDEX` if present, else by `SOURCES.json`,
//! else every `*.ics`), VEVENTs are parsed by hand: lines are unfolded; DTSTART / DTEND /
//! DURATION (with `TZID`, `VALUE=DATE` or a `Z` suffix), RRULE, EXDATE, RDATE,
//! RECURRENCE-ID and STATUS:CANCELLED are read. For every recurring master VEVENT whose RRULE
//! is expressible as a Graph pattern, the series is expanded twice over two years from
//! DTSTART:
//!
//! * **ours**: `Recurrence::from_rrule_local` (or `from_rrule` for all-day series) +
//!   `expand` / `expand_all_day`; EXDATEs are applied as cancelled occurrences, RECURRENCE-ID
//!   overrides as moved (or, with STATUS:CANCELLED, cancelled) occurrences matched by their
//!   original local date, as Graph identifies exceptions; RDATEs are added as extra single
//!   instances;
//! * **oracle**: the `rrule` crate's expansion of the same DTSTART / RRULE / EXDATE / RDATE,
//!   with the same overrides applied by exact original instant.
//!
//! Time zones: a TZID is used as is when it is an IANA name; otherwise it is looked up in a
//! small Windows-name table, then searched for an embedded IANA name (`custom_America/New_York`),
//! then matched by the VTIMEZONE's standard/daylight offsets and DST start month against a
//! small table of zones; anything else is treated as UTC (and said so in the output).
//! Floating times are read in UTC. All-day series are expanded in the calendar's zone
//! (`X-WR-TIMEZONE`, else its only VTIMEZONE, else UTC) — this decides how a UTC `UNTIL` of
//! an all-day series is read, as Exchange writes it as local midnight of the last day.
//!
//! The oracle is fed a normalised copy of the rule: blanks removed, and `UNTIL` given as a
//! date or floating date-time converted to the UTC instant it denotes in the series' zone, as
//! the `rrule` crate (and RFC 5545) require when DTSTART has a zone.
//!
//! Output: one line per VEVENT, then `N passed, M failed, K skipped`. Exit status 1 on any
//! mismatch or parse error, 2 when the folder is missing.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use calgate_recurrence::{Error, Recurrence, expand_all_day};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp, ToSpan};

// ------------------------------------------------------------------ content lines

#[derive(Clone, Debug)]
struct Prop {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl Prop {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Component {
    kind: String,
    props: Vec<Prop>,
    children: Vec<Component>,
}

impl Component {
    fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &Prop> {
        self.props.iter().filter(move |p| p.name == name)
    }
}

/// RFC 5545 §3.1 unfolding: a line starting with a space or tab continues the previous one.
fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

/// `NAME;P1=V1;P2="V:2":VALUE`, honouring quoted parameter values.
fn parse_line(line: &str) -> Option<Prop> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut segments = Vec::new();
    let mut cur = String::new();
    in_quotes = false;
    for c in head.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => segments.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    segments.push(cur);
    let mut it = segments.into_iter();
    let name = it.next()?.trim().to_ascii_uppercase();
    let params = it
        .filter_map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.to_owned()))
        })
        .collect();
    Some(Prop {
        name,
        params,
        value: value.to_owned(),
    })
}

fn parse_components(text: &str) -> Result<Vec<Component>, String> {
    let mut stack: Vec<Component> = Vec::new();
    let mut top = Vec::new();
    for (n, line) in unfold(text).iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some(p) = parse_line(line) else {
            return Err(format!("line {}: not a content line: {line:?}", n + 1));
        };
        match p.name.as_str() {
            "BEGIN" => stack.push(Component {
                kind: p.value.trim().to_ascii_uppercase(),
                ..Component::default()
            }),
            "END" => {
                let c = stack
                    .pop()
                    .ok_or_else(|| format!("line {}: END without BEGIN", n + 1))?;
                if !c.kind.eq_ignore_ascii_case(p.value.trim()) {
                    return Err(format!(
                        "line {}: END:{} closes BEGIN:{}",
                        n + 1,
                        p.value,
                        c.kind
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(c),
                    None => top.push(c),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.props.push(p),
                None => return Err(format!("line {}: property outside a component", n + 1)),
            },
        }
    }
    if let Some(c) = stack.last() {
        return Err(format!("BEGIN:{} is never closed", c.kind));
    }
    Ok(top)
}

// ------------------------------------------------------------------ time zones

/// A few Windows zone names (the ones Exchange exports most); the full table is the `tz`
/// crate's job.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("GMT Standard Time", "Europe/London"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Eastern Standard Time", "America/New_York"),
    ("Central Standard Time", "America/Chicago"),
    ("Mountain Standard Time", "America/Denver"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("India Standard Time", "Asia/Kolkata"),
    ("UTC", "UTC"),
];

/// Zones recognised by their VTIMEZONE shape: (standard offset, daylight offset, month in
/// which daylight time starts) in minutes.
const OFFSET_ZONES: &[(i32, i32, i8, &str)] = &[
    (0, 60, 3, "Europe/London"),
    (60, 120, 3, "Europe/Berlin"),
    (120, 180, 3, "Europe/Helsinki"),
    (-300, -240, 3, "America/New_York"),
    (-360, -300, 3, "America/Chicago"),
    (-420, -360, 3, "America/Denver"),
    (-480, -420, 3, "America/Los_Angeles"),
    (600, 660, 10, "Australia/Sydney"),
    (720, 780, 9, "Pacific/Auckland"),
];

#[derive(Clone, Debug)]
struct Zone {
    tz: TimeZone,
    /// IANA name given to the oracle.
    name: String,
    /// How the TZID was mapped, when it was not an IANA name.
    note: Option<String>,
}

fn utc_zone(note: Option<String>) -> Zone {
    Zone {
        tz: TimeZone::UTC,
        name: "UTC".to_owned(),
        note,
    }
}

fn iana(name: &str) -> Option<Zone> {
    TimeZone::get(name).ok().map(|tz| Zone {
        tz,
        name: name.to_owned(),
        note: None,
    })
}

fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let h: i32 = rest.get(0..2)?.parse().ok()?;
    let m: i32 = rest.get(2..4)?.parse().ok()?;
    Some(sign * (h * 60 + m))
}

fn resolve_zone(tzid: &str, vtimezones: &BTreeMap<String, &Component>) -> Zone {
    if let Some(z) = iana(tzid) {
        return z;
    }
    if let Some((_, name)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(tzid))
        && let Some(mut z) = iana(name)
    {
        z.note = Some(format!("TZID {tzid:?} mapped to {name} (Windows name)"));
        return z;
    }
    for (i, _) in tzid.char_indices().skip(1) {
        let tail = &tzid[i..];
        if tail.contains('/')
            && let Some(mut z) = iana(tail)
        {
            z.note = Some(format!("TZID {tzid:?} mapped to {tail} (embedded name)"));
            return z;
        }
    }
    if let Some(vtz) = vtimezones.get(tzid) {
        let offset_of = |kind: &str| {
            vtz.children
                .iter()
                .find(|c| c.kind == kind)
                .and_then(|c| c.prop("TZOFFSETTO"))
                .and_then(|p| parse_offset(&p.value))
        };
        let dst_month = vtz
            .children
            .iter()
            .find(|c| c.kind == "DAYLIGHT")
            .and_then(|c| c.prop("RRULE"))
            .and_then(|p| {
                p.value.split(';').find_map(|kv| {
                    kv.trim()
                        .strip_prefix("BYMONTH=")
                        .and_then(|m| m.parse::<i8>().ok())
                })
            });
        match (offset_of("STANDARD"), offset_of("DAYLIGHT"), dst_month) {
            (Some(std), Some(dst), Some(month)) => {
                if let Some((.., name)) = OFFSET_ZONES
                    .iter()
                    .find(|(s, d, m, _)| *s == std && *d == dst && *m == month)
                    && let Some(mut z) = iana(name)
                {
                    z.note = Some(format!(
                        "TZID {tzid:?} mapped to {name} (VTIMEZONE offsets)"
                    ));
                    return z;
                }
            }
            (Some(0), None, _) => {
                return utc_zone(Some(format!("TZID {tzid:?} is UTC+0 without DST")));
            }
            _ => {}
        }
    }
    utc_zone(Some(format!("unknown TZID {tzid:?} treated as UTC")))
}

// ------------------------------------------------------------------ values

#[derive(Clone, Debug)]
enum When {
    Date(Date),
    Local(DateTime, Zone),
    Utc(Timestamp),
}

impl When {
    fn instant(&self, default_tz: &TimeZone) -> Result<Timestamp, String> {
        match self {
            When::Date(d) => d
                .to_datetime(Time::midnight())
                .to_zoned(default_tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| e.to_string()),
            When::Local(dt, z) => dt
                .to_zoned(z.tz.clone())
                .map(|z| z.timestamp())
                .map_err(|e| e.to_string()),
            When::Utc(ts) => Ok(*ts),
        }
    }
    fn local_date(&self, tz: &TimeZone) -> Result<Date, String> {
        match self {
            When::Date(d) => Ok(*d),
            other => Ok(other.instant(tz)?.to_zoned(tz.clone()).date()),
        }
    }
}

fn parse_ical_datetime(v: &str) -> Result<(Date, Option<Time>, bool), String> {
    let bad = || format!("{v:?} is not an iCalendar DATE or DATE-TIME");
    let v = v.trim();
    let (d, t) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (v, None),
    };
    let num = |s: &str| -> Result<i16, String> { s.parse::<i16>().map_err(|_| bad()) };
    let small = |s: &str| -> Result<i8, String> { s.parse::<i8>().map_err(|_| bad()) };
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let date = Date::new(num(&d[0..4])?, small(&d[4..6])?, small(&d[6..8])?)
        .map_err(|e| format!("{}: {e}", bad()))?;
    let Some(t) = t else {
        return Ok((date, None, false));
    };
    let (t, utc) = match t.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (t, false),
    };
    if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let time = Time::new(
        small(&t[0..2])?,
        small(&t[2..4])?,
        small(&t[4..6])?.min(59),
        0,
    )
    .map_err(|e| format!("{}: {e}", bad()))?;
    Ok((date, Some(time), utc))
}

/// All values of a date/date-time property (EXDATE and RDATE may hold several).
fn parse_when(p: &Prop, vtz: &BTreeMap<String, &Component>) -> Result<Vec<When>, String> {
    let zone = p.param("TZID").map(|id| resolve_zone(id, vtz));
    let mut out = Vec::new();
    for v in p.value.split(',').filter(|v| !v.trim().is_empty()) {
        if p.param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"))
        {
            return Err(format!("{}: VALUE=PERIOD is not supported", p.name));
        }
        let (date, time, utc) = parse_ical_datetime(v)?;
        out.push(match (time, utc) {
            (None, _) => When::Date(date),
            (Some(t), true) => When::Utc(
                date.to_datetime(t)
                    .to_zoned(TimeZone::UTC)
                    .map_err(|e| e.to_string())?
                    .timestamp(),
            ),
            (Some(t), false) => When::Local(
                date.to_datetime(t),
                zone.clone().unwrap_or_else(|| utc_zone(None)),
            ),
        });
    }
    Ok(out)
}

fn parse_one_when(p: &Prop, vtz: &BTreeMap<String, &Component>) -> Result<When, String> {
    parse_when(p, vtz)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no value", p.name))
}

fn parse_duration(v: &str) -> Result<SignedDuration, String> {
    let span: Span = v
        .trim()
        .parse()
        .map_err(|e| format!("DURATION {v:?}: {e}"))?;
    span.to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("DURATION {v:?}: {e}"))
}

// ------------------------------------------------------------------ events

#[derive(Debug)]
struct Event {
    uid: String,
    start: When,
    end: Option<When>,
    duration: Option<SignedDuration>,
    rrules: Vec<String>,
    exrule: bool,
    exdates: Vec<When>,
    rdates: Vec<When>,
    recurrence_id: Option<When>,
    this_and_future: bool,
    cancelled: bool,
    notes: Vec<String>,
}

fn parse_event(c: &Component, vtz: &BTreeMap<String, &Component>) -> Result<Event, String> {
    let uid = c
        .prop("UID")
        .map(|p| p.value.trim().to_owned())
        .unwrap_or_else(|| "(no UID)".to_owned());
    let dtstart = c.prop("DTSTART").ok_or("VEVENT without DTSTART")?;
    let start = parse_one_when(dtstart, vtz)?;
    let end = c
        .prop("DTEND")
        .map(|p| parse_one_when(p, vtz))
        .transpose()?;
    let duration = c
        .prop("DURATION")
        .map(|p| parse_duration(&p.value))
        .transpose()?;
    let mut exdates = Vec::new();
    for p in c.all("EXDATE") {
        exdates.extend(parse_when(p, vtz)?);
    }
    let mut rdates = Vec::new();
    for p in c.all("RDATE") {
        rdates.extend(parse_when(p, vtz)?);
    }
    let rid = c.prop("RECURRENCE-ID");
    let recurrence_id = rid.map(|p| parse_one_when(p, vtz)).transpose()?;
    let this_and_future = rid
        .and_then(|p| p.param("RANGE"))
        .is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE"));
    let mut notes = Vec::new();
    for w in std::iter::once(&start).chain(end.iter()) {
        if let When::Local(_, z) = w
            && let Some(n) = &z.note
            && !notes.contains(n)
        {
            notes.push(n.clone());
        }
    }
    Ok(Event {
        uid,
        start,
        end,
        duration,
        rrules: c.all("RRULE").map(|p| p.value.clone()).collect(),
        exrule: c.prop("EXRULE").is_some(),
        exdates,
        rdates,
        recurrence_id,
        this_and_future,
        cancelled: c
            .prop("STATUS")
            .is_some_and(|p| p.value.trim().eq_ignore_ascii_case("CANCELLED")),
        notes,
    })
}

// ------------------------------------------------------------------ comparison

/// One instance as compared: start and end, rendered (UTC instants or dates).
type Slot = (String, String);

fn fmt_ts(ts: Timestamp) -> String {
    ts.to_string()
}

fn ical_utc(ts: Timestamp) -> String {
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn ical_local(dt: DateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The rule as the oracle wants it: no blanks, and UNTIL as a UTC date-time.
fn normalise_rrule(
    rrule: &str,
    tz: &TimeZone,
    start_time: Time,
    all_day: bool,
) -> Result<String, String> {
    let compact: String = rrule.chars().filter(|c| !c.is_whitespace()).collect();
    let mut parts = Vec::new();
    for part in compact.split(';').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") => {
                let (date, time, utc) = parse_ical_datetime(v)?;
                let ts = match (time, utc) {
                    (Some(_), true) => {
                        parts.push(part.to_owned());
                        continue;
                    }
                    // Floating: read in the series' zone.
                    (Some(t), false) => date
                        .to_datetime(t)
                        .to_zoned(tz.clone())
                        .map_err(|e| e.to_string())?
                        .timestamp(),
                    // A date: inclusive, so the last possible start on that date.
                    (None, _) => {
                        let t = if all_day {
                            Time::midnight()
                        } else {
                            start_time
                        };
                        date.to_datetime(t)
                            .to_zoned(tz.clone())
                            .map_err(|e| e.to_string())?
                            .timestamp()
                    }
                };
                parts.push(format!("UNTIL={}", ical_utc(ts)));
            }
            _ => parts.push(part.to_owned()),
        }
    }
    Ok(parts.join(";"))
}

enum Outcome {
    Ok(usize),
    Mismatch(String),
    NotExpressible(String),
}

struct Series<'a> {
    master: &'a Event,
    overrides: Vec<&'a Event>,
    calendar_zone: &'a Zone,
}

fn check_series(s: &Series<'_>) -> Result<Outcome, String> {
    let m = s.master;
    if m.rrules.len() > 1 {
        return Ok(Outcome::NotExpressible("several RRULEs".to_owned()));
    }
    if m.exrule {
        return Ok(Outcome::NotExpressible("EXRULE".to_owned()));
    }
    if s.overrides.iter().any(|o| o.this_and_future) {
        return Ok(Outcome::NotExpressible(
            "RECURRENCE-ID;RANGE=THISANDFUTURE (Graph has no this-and-future exceptions)"
                .to_owned(),
        ));
    }
    let Some(rrule) = m.rrules.first() else {
        return Ok(Outcome::NotExpressible("RDATE without RRULE".to_owned()));
    };
    match &m.start {
        When::Date(d) => check_all_day(s, rrule, *d),
        When::Local(dt, z) => check_timed(s, rrule, *dt, z.clone()),
        When::Utc(ts) => {
            let z = utc_zone(None);
            check_timed(s, rrule, ts.to_zoned(TimeZone::UTC).datetime(), z)
        }
    }
}

fn not_expressible(e: Error) -> Result<Outcome, String> {
    match e {
        Error::Unsupported(m) => Ok(Outcome::NotExpressible(m)),
        other => Err(format!("RRULE rejected: {other}")),
    }
}

fn compare(ours: Vec<Slot>, oracle: Vec<Slot>) -> Outcome {
    if ours == oracle {
        return Outcome::Ok(ours.len());
    }
    let mut msg = format!("ours {} vs oracle {} occurrences", ours.len(), oracle.len());
    let first = ours
        .iter()
        .zip(oracle.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(oracle.len()));
    let _ = write!(
        msg,
        "; first difference at #{first}: ours {:?}, oracle {:?}",
        ours.get(first),
        oracle.get(first)
    );
    Outcome::Mismatch(msg)
}

fn oracle_instants(text: &str, window_end: Timestamp) -> Result<Vec<Timestamp>, String> {
    let set: rrule::RRuleSet = text
        .parse()
        .map_err(|e| format!("oracle rejected {text:?}: {e}"))?;
    let end = window_end.as_second();
    let mut out = Vec::new();
    for dt in set.limit().into_iter() {
        let secs = dt.timestamp();
        if secs >= end {
            break;
        }
        out.push(Timestamp::from_second(secs).map_err(|e| e.to_string())?);
    }
    // RFC 5545 §3.8.5.2: the recurrence set is a *set*; the `rrule` crate yields an RDATE
    // that coincides with an RRULE instance twice.
    out.dedup();
    Ok(out)
}

fn check_timed(
    s: &Series<'_>,
    rrule: &str,
    dtstart: DateTime,
    zone: Zone,
) -> Result<Outcome, String> {
    let m = s.master;
    let tz = &zone.tz;
    let rec = match Recurrence::from_rrule_local(rrule, dtstart, tz) {
        Ok(r) => r,
        Err(e) => return not_expressible(e),
    };
    let start_ts = m.start.instant(tz)?;
    let duration = match (&m.end, m.duration) {
        (Some(end), _) => end.instant(tz)?.duration_since(start_ts),
        (None, Some(d)) => d,
        (None, None) => SignedDuration::ZERO,
    };
    let window_start = start_ts;
    let window_end = dtstart
        .checked_add(2.years())
        .and_then(|d| d.to_zoned(tz.clone()))
        .map_err(|e| e.to_string())?
        .timestamp();
    let exdates: Vec<Timestamp> = m
        .exdates
        .iter()
        .map(|w| w.instant(tz))
        .collect::<Result<_, _>>()?;
    let rdates: Vec<Timestamp> = m
        .rdates
        .iter()
        .map(|w| w.instant(tz))
        .collect::<Result<_, _>>()?;
    let override_slot = |o: &Event| -> Result<(Timestamp, Timestamp), String> {
        let st = o.start.instant(tz)?;
        let en = match (&o.end, o.duration) {
            (Some(e), _) => e.instant(tz)?,
            (None, Some(d)) => st.checked_add(d).map_err(|e| e.to_string())?,
            (None, None) => st.checked_add(duration).map_err(|e| e.to_string())?,
        };
        Ok((st, en))
    };

    // Ours: Graph-style expansion; exceptions identified by the original local date.
    let occurrences = rec
        .expand(dtstart.time(), duration, tz, window_start, window_end)
        .map_err(|e| e.to_string())?;
    let mut ours: Vec<(Timestamp, Timestamp)> = Vec::new();
    'occ: for o in occurrences {
        let st = o.start.timestamp();
        if exdates.contains(&st) {
            continue;
        }
        for ov in &s.overrides {
            if let Some(rid) = &ov.recurrence_id
                && rid.local_date(tz)? == o.date
            {
                if !ov.cancelled {
                    ours.push(override_slot(ov)?);
                }
                continue 'occ;
            }
        }
        ours.push((st, o.end.timestamp()));
    }
    for r in &rdates {
        if !exdates.contains(r) && !ours.iter().any(|(st, _)| st == r) {
            ours.push((*r, r.checked_add(duration).map_err(|e| e.to_string())?));
        }
    }

    // Oracle: the rrule crate; exceptions identified by the exact original instant.
    let mut text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{}",
        zone.name,
        ical_local(dtstart),
        normalise_rrule(rrule, tz, dtstart.time(), false)?
    );
    if !exdates.is_empty() {
        let list: Vec<String> = exdates.iter().map(|t| ical_utc(*t)).collect();
        let _ = write!(text, "\nEXDATE:{}", list.join(","));
    }
    if !rdates.is_empty() {
        let list: Vec<String> = rdates.iter().map(|t| ical_utc(*t)).collect();
        let _ = write!(text, "\nRDATE:{}", list.join(","));
    }
    let mut oracle: Vec<(Timestamp, Timestamp)> = Vec::new();
    'orc: for st in oracle_instants(&text, window_end)? {
        for ov in &s.overrides {
            if let Some(rid) = &ov.recurrence_id
                && rid.instant(tz)? == st
            {
                if !ov.cancelled {
                    oracle.push(override_slot(ov)?);
                }
                continue 'orc;
            }
        }
        oracle.push((st, st.checked_add(duration).map_err(|e| e.to_string())?));
    }

    let render = |mut v: Vec<(Timestamp, Timestamp)>| -> Vec<Slot> {
        v.retain(|(st, _)| *st < window_end);
        v.sort();
        v.into_iter().map(|(a, b)| (fmt_ts(a), fmt_ts(b))).collect()
    };
    Ok(compare(render(ours), render(oracle)))
}

fn check_all_day(s: &Series<'_>, rrule: &str, start: Date) -> Result<Outcome, String> {
    let m = s.master;
    let zone = s.calendar_zone;
    let tz = &zone.tz;
    let rec = match Recurrence::from_rrule_local(rrule, start.to_datetime(Time::midnight()), tz) {
        Ok(r) => r,
        Err(e) => return not_expressible(e),
    };
    let days = match (&m.end, m.duration) {
        (Some(end), _) => end
            .local_date(tz)?
            .since(start)
            .map_err(|e| e.to_string())?
            .get_days(),
        (None, Some(d)) => i32::try_from(d.as_hours() / 24).map_err(|e| e.to_string())?,
        (None, None) => 1,
    }
    .max(1);
    let window_end = start.checked_add(2.years()).map_err(|e| e.to_string())?;
    let exdates: Vec<Date> = m
        .exdates
        .iter()
        .map(|w| w.local_date(tz))
        .collect::<Result<_, _>>()?;
    let rdates: Vec<Date> = m
        .rdates
        .iter()
        .map(|w| w.local_date(tz))
        .collect::<Result<_, _>>()?;
    let plus_days = |d: Date, n: i32| d.checked_add(n.days()).map_err(|e| e.to_string());
    let override_slot = |o: &Event| -> Result<(Date, Date), String> {
        let st = o.start.local_date(tz)?;
        let en = match (&o.end, o.duration) {
            (Some(e), _) => e.local_date(tz)?,
            (None, Some(d)) => plus_days(st, i32::try_from(d.as_hours() / 24).unwrap_or(1))?,
            (None, None) => plus_days(st, days)?,
        };
        Ok((st, en))
    };

    let mut ours: Vec<(Date, Date)> = Vec::new();
    let dates = expand_all_day(&rec, days, start, window_end).map_err(|e| e.to_string())?;
    'occ: for d in dates {
        if exdates.contains(&d) {
            continue;
        }
        for ov in &s.overrides {
            if let Some(rid) = &ov.recurrence_id
                && rid.local_date(tz)? == d
            {
                if !ov.cancelled {
                    ours.push(override_slot(ov)?);
                }
                continue 'occ;
            }
        }
        ours.push((d, plus_days(d, days)?));
    }
    for r in &rdates {
        if !exdates.contains(r) && !ours.iter().any(|(st, _)| st == r) {
            ours.push((*r, plus_days(*r, days)?));
        }
    }

    let midnight = |d: Date| -> Result<Timestamp, String> {
        d.to_datetime(Time::midnight())
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string())
    };
    let mut text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{}",
        zone.name,
        ical_local(start.to_datetime(Time::midnight())),
        normalise_rrule(rrule, tz, Time::midnight(), true)?
    );
    if !exdates.is_empty() {
        let list: Vec<String> = exdates
            .iter()
            .map(|d| midnight(*d).map(ical_utc))
            .collect::<Result<_, _>>()?;
        let _ = write!(text, "\nEXDATE:{}", list.join(","));
    }
    if !rdates.is_empty() {
        let list: Vec<String> = rdates
            .iter()
            .map(|d| midnight(*d).map(ical_utc))
            .collect::<Result<_, _>>()?;
        let _ = write!(text, "\nRDATE:{}", list.join(","));
    }
    let mut oracle: Vec<(Date, Date)> = Vec::new();
    'orc: for st in oracle_instants(&text, midnight(window_end)?)? {
        let d = st.to_zoned(tz.clone()).date();
        for ov in &s.overrides {
            if let Some(rid) = &ov.recurrence_id
                && rid.instant(tz)? == st
            {
                if !ov.cancelled {
                    oracle.push(override_slot(ov)?);
                }
                continue 'orc;
            }
        }
        oracle.push((d, plus_days(d, days)?));
    }
    let render = |mut v: Vec<(Date, Date)>| -> Vec<Slot> {
        v.retain(|(st, _)| *st < window_end);
        v.sort();
        v.into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    Ok(compare(render(ours), render(oracle)))
}

// ------------------------------------------------------------------ driver

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let index = dir.join("INDEX");
    if let Ok(text) = std::fs::read_to_string(&index) {
        return Ok(text
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .filter(|l| l.ends_with(".ics"))
            .map(|l| dir.join(l))
            .collect());
    }
    let mut listed: Vec<PathBuf> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("SOURCES.json")) {
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("SOURCES.json: {e}"))?;
        if let Some(items) = json.as_array() {
            for item in items {
                if let Some(f) = item.get("file").and_then(|f| f.as_str()) {
                    listed.push(dir.join(f));
                }
            }
        }
    }
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ics"))
        .collect();
    on_disk.sort();
    for p in &listed {
        if !on_disk.contains(p) {
            eprintln!(
                "note: SOURCES.json lists {} which is not there",
                p.display()
            );
        }
    }
    Ok(on_disk)
}

fn check_file(path: &Path, tally: &mut Tally) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fail = |tally: &mut Tally, uid: &str, msg: &str| {
        println!("{name}  {uid}  ERROR {msg}");
        tally.failed += 1;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(tally, "-", &format!("cannot read: {e}")),
    };
    let top = match parse_components(&text) {
        Ok(t) => t,
        Err(e) => return fail(tally, "-", &format!("parse error: {e}")),
    };
    for cal in &top {
        let vtz: BTreeMap<String, &Component> = cal
            .children
            .iter()
            .filter(|c| c.kind == "VTIMEZONE")
            .filter_map(|c| c.prop("TZID").map(|p| (p.value.trim().to_owned(), c)))
            .collect();
        let calendar_zone = cal
            .prop("X-WR-TIMEZONE")
            .map(|p| resolve_zone(p.value.trim(), &vtz))
            .or_else(|| {
                (vtz.len() == 1)
                    .then(|| vtz.keys().next().map(|k| resolve_zone(k, &vtz)))
                    .flatten()
            })
            .unwrap_or_else(|| utc_zone(None));
        let mut events = Vec::new();
        for c in cal.children.iter().filter(|c| c.kind == "VEVENT") {
            match parse_event(c, &vtz) {
                Ok(e) => events.push(e),
                Err(e) => {
                    let uid = c.prop("UID").map_or("-", |p| p.value.trim());
                    fail(tally, uid, &format!("parse error: {e}"));
                }
            }
        }
        for e in &events {
            if let Some(rid) = &e.recurrence_id {
                let has_master = events
                    .iter()
                    .any(|m| m.uid == e.uid && m.recurrence_id.is_none());
                let what = if e.cancelled { "cancels" } else { "moves" };
                let rid_text = match rid {
                    When::Date(d) => d.to_string(),
                    When::Local(dt, _) => dt.to_string(),
                    When::Utc(ts) => ts.to_string(),
                };
                println!(
                    "{name}  {}  override: {what} the occurrence of {rid_text}{}",
                    e.uid,
                    if has_master {
                        ""
                    } else {
                        " (no master in this file)"
                    }
                );
                continue;
            }
            if e.rrules.is_empty() && e.rdates.is_empty() {
                println!(
                    "{name}  {}  single event (no RRULE), nothing to expand",
                    e.uid
                );
                tally.skipped += 1;
                continue;
            }
            let series = Series {
                master: e,
                overrides: events
                    .iter()
                    .filter(|o| o.uid == e.uid && o.recurrence_id.is_some())
                    .collect(),
                calendar_zone: &calendar_zone,
            };
            let notes = if e.notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", e.notes.join("; "))
            };
            match check_series(&series) {
                Ok(Outcome::Ok(n)) => {
                    println!("{name}  {}  ok {n} occurrences{notes}", e.uid);
                    tally.passed += 1;
                }
                Ok(Outcome::Mismatch(m)) => {
                    println!("{name}  {}  MISMATCH {m}{notes}", e.uid);
                    tally.failed += 1;
                }
                Ok(Outcome::NotExpressible(why)) => {
                    println!(
                        "{name}  {}  not expressible as a Graph pattern: {why}",
                        e.uid
                    );
                    tally.skipped += 1;
                }
                Err(err) => fail(tally, &e.uid, &err),
            }
        }
    }
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: ical_check DIR   (a folder of .ics files, e.g. ../shared/data/ical)");
        return ExitCode::from(2);
    };
    if !dir.is_dir() {
        eprintln!(
            "ical_check: corpus folder {} is missing; pass the folder holding the .ics files \
             (CI: ../shared/data/ical)",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let files = match list_files(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ical_check: {e}");
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!("ical_check: no .ics files in {}", dir.display());
        return ExitCode::from(2);
    }
    let mut tally = Tally::default();
    for f in &files {
        check_file(f, &mut tally);
    }
    println!(
        "{} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.skipped
    );
    if tally.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
