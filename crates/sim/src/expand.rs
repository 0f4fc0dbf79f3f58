//! Instance expansion: stored singles and series masters (with exceptions and cancelled
//! occurrences) → the instances a calendarView shows.
//!
//! * A series is expanded in its recurrence time zone (wall-clock time is kept across DST
//!   changes) by `calgate_recurrence`.
//! * An occurrence's id is derived from the master id and the occurrence's original start, so
//!   it is stable across calls and can be resolved back ([`find_instance`]). An exception keeps
//!   the id of the occurrence it replaced, as Exchange does.
//! * All-day events keep their dates in the event's own zone (`start.timeZone`).
//! * Overlap rule for a window `[ws, we)`: `start < we && (end > ws || (start == end && start == ws))`.

use base64::Engine as _;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, civil};

use crate::model::{
    Calendar, EventData, ExtendedProperty, LocalDateTime, SeriesRecurrence, StoredEvent,
};

/// What an [`Instance`] is (Graph's `eventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceKind {
    SingleInstance,
    Occurrence,
    Exception,
    /// Only from [`master_view`]; [`instances`] never yields masters.
    SeriesMaster,
}

impl InstanceKind {
    /// Graph's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceKind::SingleInstance => "singleInstance",
            InstanceKind::Occurrence => "occurrence",
            InstanceKind::Exception => "exception",
            InstanceKind::SeriesMaster => "seriesMaster",
        }
    }
}

/// One event as a calendar view (or `/events`, for [`InstanceKind::SeriesMaster`]) shows it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub kind: InstanceKind,
    /// Set for occurrences and exceptions.
    pub series_master_id: Option<String>,
    /// The occurrence's start per the pattern (occurrences and exceptions).
    pub original_start: Option<Timestamp>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The event's data; for occurrences the master's data with start/end replaced.
    pub data: EventData,
    pub ical_uid: String,
    pub change_key: String,
    pub created: Timestamp,
    pub last_modified: Timestamp,
    /// The stored item's transactionId (singles and masters only).
    pub transaction_id: Option<String>,
    /// Extended properties of the stored item (occurrences share the master's).
    pub extended_properties: Vec<ExtendedProperty>,
    /// The series' recurrence (series masters only).
    pub recurrence: Option<SeriesRecurrence>,
    /// Original starts of cancelled occurrences (series masters only).
    pub cancelled: Vec<Timestamp>,
}

/// Zone names resolved on this thread (expansion asks for the same few zones for every
/// instance; a lookup in jiff's database compares names and checks its clock each time).
const TZ_CACHE_MAX: usize = 256;

thread_local! {
    static TZ_CACHE: std::cell::RefCell<std::collections::HashMap<String, Option<TimeZone>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Resolves a zone name as Graph accepts it (Windows name, IANA name, `UTC`).
pub fn resolve_tz(name: &str) -> Option<TimeZone> {
    if let Some(hit) = TZ_CACHE.with(|c| c.borrow().get(name).cloned()) {
        return hit;
    }
    let tz = resolve_tz_uncached(name);
    TZ_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= TZ_CACHE_MAX {
            c.clear();
        }
        c.insert(name.to_owned(), tz.clone());
    });
    tz
}

fn resolve_tz_uncached(name: &str) -> Option<TimeZone> {
    let n = name.trim();
    if let Some(iana) = calgate_tz::to_iana(n) {
        if iana == "UTC" {
            return Some(TimeZone::UTC);
        }
        return TimeZone::get(iana).ok();
    }
    // IANA names outside the Windows mapping table (e.g. "Etc/GMT+5") are valid too.
    if n.contains('/') {
        return TimeZone::get(n).ok();
    }
    None
}

/// The instant of a wall-clock date-time in its named zone (gaps move forward, folds take the
/// earlier instant). `None` for an unknown zone.
pub fn to_timestamp(ldt: &LocalDateTime) -> Option<Timestamp> {
    let tz = resolve_tz(&ldt.time_zone)?;
    ldt.date_time.to_zoned(tz).ok().map(|z| z.timestamp())
}

/// The wall-clock date-time of `ts` in zone `zone_name` (UTC when the zone is unknown).
pub fn to_local(ts: Timestamp, zone_name: &str) -> LocalDateTime {
    let tz = resolve_tz(zone_name).unwrap_or(TimeZone::UTC);
    LocalDateTime {
        date_time: ts.to_zoned(tz).datetime(),
        time_zone: zone_name.to_owned(),
    }
}

const OCC_PREFIX: [u8; 6] = [0x00, 0x00, 0x0d, 0x24, 0x00, 0x07];

/// The id of the occurrence of series `master_id` originally starting at `original_start`:
/// opaque URL-safe base64 (like Graph's), deterministic, distinct from the master id.
pub fn occurrence_id(master_id: &str, original_start: Timestamp) -> String {
    let mut bytes = Vec::with_capacity(32 + master_id.len());
    bytes.extend_from_slice(&OCC_PREFIX);
    bytes.extend_from_slice(&original_start.as_nanosecond().to_be_bytes());
    bytes.extend_from_slice(master_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// Decodes an id made by [`occurrence_id`] into (master id, original start).
pub fn parse_occurrence_id(id: &str) -> Option<(String, Timestamp)> {
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(id).ok()?;
    let rest = bytes.strip_prefix(&OCC_PREFIX[..])?;
    if rest.len() < 16 {
        return None;
    }
    let (ts, master) = rest.split_at(16);
    let nanos = i128::from_be_bytes(ts.try_into().ok()?);
    let ts = Timestamp::from_nanosecond(nanos).ok()?;
    Some((String::from_utf8(master.to_vec()).ok()?, ts))
}

/// Whether `id` looks like an item id this simulator could have made (base64 of some kind).
pub fn is_well_formed_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'/'))
}

/// The iCalUId of one occurrence: Exchange's GlobalObjectId with the instance date filled in
/// (bytes 16–19: year, month, day), so each occurrence has its own, as Graph documents.
pub fn occurrence_ical_uid(master_uid: &str, date: civil::Date) -> String {
    if master_uid.len() < 40 || !master_uid.is_char_boundary(32) || !master_uid.is_char_boundary(40)
    {
        return format!("{master_uid}-{}", date.strftime("%Y%m%d"));
    }
    let y = u16::try_from(date.year()).unwrap_or(0);
    format!(
        "{}{:04X}{:02X}{:02X}{}",
        &master_uid[..32],
        y,
        date.month(),
        date.day(),
        &master_uid[40..]
    )
}

fn overlaps(start: Timestamp, end: Timestamp, ws: Timestamp, we: Timestamp) -> bool {
    start < we && (end > ws || (start == end && start == ws))
}

/// Start and end instants of stored data (all-day dates are midnights in the event's zone).
pub fn data_span(data: &EventData) -> Option<(Timestamp, Timestamp)> {
    let s = to_timestamp(&data.start)?;
    let e = to_timestamp(&data.end)?;
    Some((s, e.max(s)))
}

/// A stored item as itself (a single instance or a series master), as `/events` lists it.
pub fn master_view(ev: &StoredEvent) -> Instance {
    let (start, end) = data_span(&ev.data).unwrap_or((ev.created, ev.created));
    Instance {
        id: ev.id.clone(),
        kind: if ev.recurrence.is_some() {
            InstanceKind::SeriesMaster
        } else {
            InstanceKind::SingleInstance
        },
        series_master_id: None,
        original_start: None,
        start,
        end,
        data: ev.data.clone(),
        ical_uid: ev.ical_uid.clone(),
        change_key: ev.change_key.clone(),
        created: ev.created,
        last_modified: ev.last_modified,
        transaction_id: ev.transaction_id.clone(),
        extended_properties: ev.extended_properties.clone(),
        recurrence: ev.recurrence.clone(),
        cancelled: ev.cancelled.iter().copied().collect(),
    }
}

/// One expanded (unmodified) occurrence of a series.
struct Occ {
    date: civil::Date,
    start: Timestamp,
    end: Timestamp,
}

/// Expands a series master's pattern (ignoring exceptions and cancellations) over the window.
fn expand_pattern(ev: &StoredEvent, ws: Timestamp, we: Timestamp) -> Vec<Occ> {
    let Some(rec) = &ev.recurrence else {
        return Vec::new();
    };
    let data = &ev.data;
    if data.is_all_day {
        let Some(tz) = resolve_tz(&data.start.time_zone) else {
            return Vec::new();
        };
        let days = (data.end.date_time.date() - data.start.date_time.date())
            .get_days()
            .max(1);
        let wsd = ws.to_zoned(tz.clone()).date();
        let wed = we
            .to_zoned(tz.clone())
            .date()
            .checked_add(jiff::Span::new().days(1))
            .unwrap_or(civil::Date::MAX);
        let Ok(dates) = calgate_recurrence::expand_all_day(&rec.rule, days, wsd, wed) else {
            return Vec::new();
        };
        dates
            .into_iter()
            .filter_map(|d| {
                let s = d
                    .to_datetime(civil::Time::midnight())
                    .to_zoned(tz.clone())
                    .ok()?;
                let e = d
                    .checked_add(jiff::Span::new().days(i64::from(days)))
                    .ok()?
                    .to_datetime(civil::Time::midnight())
                    .to_zoned(tz.clone())
                    .ok()?;
                let (s, e) = (s.timestamp(), e.timestamp());
                overlaps(s, e, ws, we).then_some(Occ {
                    date: d,
                    start: s,
                    end: e,
                })
            })
            .collect()
    } else {
        let Some(tz) = resolve_tz(&rec.time_zone).or_else(|| resolve_tz(&data.start.time_zone))
        else {
            return Vec::new();
        };
        let Some((s, e)) = data_span(data) else {
            return Vec::new();
        };
        let start_time = s.to_zoned(tz.clone()).time();
        let duration: SignedDuration = e.duration_since(s);
        match rec.rule.expand(start_time, duration, &tz, ws, we) {
            Ok(occs) => occs
                .into_iter()
                .map(|o| Occ {
                    date: o.date,
                    start: o.start.timestamp(),
                    end: o.end.timestamp(),
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn occurrence_instance(ev: &StoredEvent, o: &Occ) -> Instance {
    let mut data = ev.data.clone();
    if data.is_all_day {
        let tz = data.start.time_zone.clone();
        data.start = LocalDateTime {
            date_time: o.date.to_datetime(civil::Time::midnight()),
            time_zone: tz.clone(),
        };
        data.end = to_local(o.end, &tz);
        data.end.time_zone = ev.data.end.time_zone.clone();
    } else {
        data.start = to_local(o.start, &ev.data.start.time_zone);
        data.end = to_local(o.end, &ev.data.end.time_zone);
    }
    Instance {
        id: occurrence_id(&ev.id, o.start),
        kind: InstanceKind::Occurrence,
        series_master_id: Some(ev.id.clone()),
        original_start: Some(o.start),
        start: o.start,
        end: o.end,
        data,
        ical_uid: occurrence_ical_uid(&ev.ical_uid, o.date),
        change_key: ev.change_key.clone(),
        created: ev.created,
        last_modified: ev.last_modified,
        transaction_id: None,
        extended_properties: ev.extended_properties.clone(),
        recurrence: None,
        cancelled: Vec::new(),
    }
}

fn exception_instance(ev: &StoredEvent, original_start: Timestamp) -> Option<Instance> {
    let x = ev.exceptions.get(&original_start)?;
    let (start, end) = data_span(&x.data)?;
    let date = original_start
        .to_zoned(
            ev.recurrence
                .as_ref()
                .and_then(|r| resolve_tz(&r.time_zone))
                .unwrap_or(TimeZone::UTC),
        )
        .date();
    Some(Instance {
        id: x.id.clone(),
        kind: InstanceKind::Exception,
        series_master_id: Some(ev.id.clone()),
        original_start: Some(original_start),
        start,
        end,
        data: x.data.clone(),
        ical_uid: occurrence_ical_uid(&ev.ical_uid, date),
        change_key: x.change_key.clone(),
        created: ev.created,
        last_modified: x.last_modified,
        transaction_id: None,
        extended_properties: ev.extended_properties.clone(),
        recurrence: None,
        cancelled: Vec::new(),
    })
}

/// The instances of one stored item that overlap `[window_start, window_end)`, sorted by start.
pub fn event_instances(
    ev: &StoredEvent,
    window_start: Timestamp,
    window_end: Timestamp,
) -> Vec<Instance> {
    let mut out = Vec::new();
    if ev.recurrence.is_none() {
        if let Some((s, e)) = data_span(&ev.data)
            && overlaps(s, e, window_start, window_end)
        {
            let mut i = master_view(ev);
            i.recurrence = None;
            i.cancelled.clear();
            out.push(i);
        }
        return out;
    }
    for o in expand_pattern(ev, window_start, window_end) {
        if ev.cancelled.contains(&o.start) || ev.exceptions.contains_key(&o.start) {
            continue;
        }
        out.push(occurrence_instance(ev, &o));
    }
    for orig in ev.exceptions.keys() {
        if ev.cancelled.contains(orig) {
            continue;
        }
        if let Some(x) = exception_instance(ev, *orig)
            && overlaps(x.start, x.end, window_start, window_end)
        {
            out.push(x);
        }
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
    out
}

/// Singles, occurrences and exceptions of `cal` overlapping `[window_start, window_end)`,
/// sorted by start (then id). Cancelled occurrences are skipped; an exception appears where it
/// was moved to.
pub fn instances(cal: &Calendar, window_start: Timestamp, window_end: Timestamp) -> Vec<Instance> {
    let out: Vec<Instance> = cal
        .events
        .values()
        .flat_map(|ev| event_instances(ev, window_start, window_end))
        .collect();
    // Sort a permutation (stable, like sorting the instances themselves): an `Instance` is
    // large, and moving them around in a sort was a good part of expanding a calendar.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| {
        out[a]
            .start
            .cmp(&out[b].start)
            .then_with(|| out[a].id.cmp(&out[b].id))
    });
    let mut slots: Vec<Option<Instance>> = out.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// Whether `original_start` is an occurrence of the series per its pattern.
pub fn is_occurrence_start(ev: &StoredEvent, original_start: Timestamp) -> bool {
    let ws = original_start;
    let we = original_start
        .checked_add(SignedDuration::from_secs(1))
        .unwrap_or(original_start);
    expand_pattern(ev, ws, we)
        .iter()
        .any(|o| o.start == original_start)
}

/// Resolves any event id of `cal` — a single, a series master, an occurrence or an exception —
/// to its instance. Cancelled occurrences resolve to `None`.
pub fn find_instance(cal: &Calendar, id: &str) -> Option<Instance> {
    if let Some(ev) = cal.events.get(id) {
        return Some(master_view(ev));
    }
    if let Some((master_id, orig)) = parse_occurrence_id(id)
        && let Some(ev) = cal.events.get(&master_id)
    {
        if ev.cancelled.contains(&orig) {
            return None;
        }
        if ev.exceptions.contains_key(&orig) {
            return exception_instance(ev, orig);
        }
        if !is_occurrence_start(ev, orig) {
            return None;
        }
        let ws = orig;
        let we = orig
            .checked_add(SignedDuration::from_secs(1))
            .unwrap_or(orig);
        return expand_pattern(ev, ws, we)
            .iter()
            .find(|o| o.start == orig)
            .map(|o| occurrence_instance(ev, o));
    }
    // Exceptions whose ids were not derived from the occurrence id (e.g. made by a seed).
    for ev in cal.events.values() {
        for (orig, x) in &ev.exceptions {
            if x.id == id && !ev.cancelled.contains(orig) {
                return exception_instance(ev, *orig);
            }
        }
    }
    None
}
