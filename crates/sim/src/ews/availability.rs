//! GetUserAvailability (free/busy over the tenant model), GetRoomLists and GetRooms.
//!
//! GetUserAvailability takes the request's `t:TimeZone` (a bias plus standard/daylight
//! transition rules), reads the window in that zone and answers in it, as Exchange does. At most
//! 100 mailboxes (`ErrorMailboxDataArrayTooBig`), a window of at most 42 days
//! (`ErrorTimeIntervalTooBig`), a merged interval of 5–1440 minutes
//! (`ErrorInvalidMergedFreeBusyInterval`), view `None` → `ErrorInvalidFreeBusyViewType`.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, civil};

use super::error::EwsError;
use super::item::{self, show_as_text};
use super::ops::{Ctx, OpResult, mailbox_by_address};
use super::xml::{Element, MESSAGES_NS, TYPES_NS, Writer};
use crate::expand;
use crate::model::{Sensitivity, ShowAs, User};

/// Largest `MailboxDataArray`.
pub const MAX_MAILBOXES: usize = 100;
/// Longest free/busy window (Exchange's default, 42 days).
pub const MAX_WINDOW_DAYS: i64 = 42;

/// An operation's single error in the shape of that operation's answer: for GetRoomLists and
/// GetRooms the response element itself carries the error; GetUserAvailability answers with a
/// fault; the others with one error response message.
pub fn error_for(op: &str, e: EwsError) -> OpResult {
    match op {
        "GetRoomLists" | "GetRooms" => {
            let tag = format!("m:{op}Response");
            let mut w = Writer::new();
            w.start(
                &tag,
                &[
                    ("ResponseClass", "Error"),
                    ("xmlns:m", MESSAGES_NS),
                    ("xmlns:t", TYPES_NS),
                ],
            );
            e.write_message_body(&mut w);
            w.end(&tag);
            Ok(w.finish())
        }
        "GetUserAvailability" => Err(EwsError { fault: true, ..e }),
        other => {
            let outer = format!("m:{other}Response");
            let inner = format!("m:{other}ResponseMessage");
            let mut w = Writer::new();
            w.start(&outer, &[("xmlns:m", MESSAGES_NS), ("xmlns:t", TYPES_NS)])
                .start("m:ResponseMessages", &[])
                .start(&inner, &[("ResponseClass", "Error")]);
            e.write_message_body(&mut w);
            w.end(&inner).end("m:ResponseMessages").end(&outer);
            Ok(w.finish())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SerializableTimeZone
// ---------------------------------------------------------------------------------------------

/// A transition rule of `t:StandardTime` / `t:DaylightTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    bias: i32,
    time: civil::Time,
    /// 1..=4, 5 = last.
    day_order: i8,
    month: i8,
    weekday: civil::Weekday,
}

/// `t:TimeZone` (SerializableTimeZone): UTC = local + bias (+ the period's bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialZone {
    bias: i32,
    standard: Option<Rule>,
    daylight: Option<Rule>,
}

const WEEKDAYS: [(&str, civil::Weekday); 7] = [
    ("Sunday", civil::Weekday::Sunday),
    ("Monday", civil::Weekday::Monday),
    ("Tuesday", civil::Weekday::Tuesday),
    ("Wednesday", civil::Weekday::Wednesday),
    ("Thursday", civil::Weekday::Thursday),
    ("Friday", civil::Weekday::Friday),
    ("Saturday", civil::Weekday::Saturday),
];

fn parse_rule(e: &Element) -> Option<Rule> {
    let month: i8 = e.child_text("Month")?.parse().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let wd = e.child_text("DayOfWeek")?;
    Some(Rule {
        bias: e.child_text("Bias")?.parse().ok()?,
        time: e.child_text("Time")?.parse().ok()?,
        day_order: e.child_text("DayOrder")?.parse().ok()?,
        month,
        weekday: WEEKDAYS.iter().find(|(n, _)| *n == wd)?.1,
    })
}

impl SerialZone {
    pub const UTC: SerialZone = SerialZone {
        bias: 0,
        standard: None,
        daylight: None,
    };

    pub fn parse(e: &Element) -> Result<SerialZone, EwsError> {
        let bias = e
            .child_text("Bias")
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| EwsError::schema("TimeZone/Bias is missing or invalid."))?;
        let standard = e.child("StandardTime").and_then(parse_rule);
        let daylight = e.child("DaylightTime").and_then(parse_rule);
        let (standard, daylight) = match (standard, daylight) {
            (Some(s), Some(d)) if s.month != d.month => (Some(s), Some(d)),
            (s, _) => (s, None),
        };
        Ok(SerialZone {
            bias,
            standard,
            daylight,
        })
    }

    fn transition(rule: &Rule, year: i16) -> Option<civil::DateTime> {
        let first = civil::date(year, rule.month, 1);
        let d = if rule.day_order >= 5 {
            first
                .last_of_month()
                .nth_weekday_of_month(-1, rule.weekday)
                .ok()?
        } else {
            first
                .nth_weekday_of_month(rule.day_order.max(1), rule.weekday)
                .ok()?
        };
        Some(d.to_datetime(rule.time))
    }

    /// Minutes to add to UTC to get local time at `ts`.
    fn offset_minutes(&self, ts: Timestamp) -> i32 {
        let std_bias = self.standard.map(|s| s.bias).unwrap_or(0);
        let base = -(self.bias + std_bias);
        let (Some(s), Some(d)) = (self.standard, self.daylight) else {
            return base;
        };
        let local_std = ts
            .checked_add(SignedDuration::from_mins(i64::from(base)))
            .unwrap_or(ts)
            .to_zoned(TimeZone::UTC)
            .datetime();
        let year = local_std.year();
        let (Some(dst_start), Some(std_start)) =
            (Self::transition(&d, year), Self::transition(&s, year))
        else {
            return base;
        };
        let in_dst = if dst_start < std_start {
            local_std >= dst_start && local_std < std_start
        } else {
            local_std >= dst_start || local_std < std_start
        };
        if in_dst { -(self.bias + d.bias) } else { base }
    }

    pub fn to_local(&self, ts: Timestamp) -> civil::DateTime {
        ts.checked_add(SignedDuration::from_mins(i64::from(
            self.offset_minutes(ts),
        )))
        .unwrap_or(ts)
        .to_zoned(TimeZone::UTC)
        .datetime()
    }

    pub fn to_utc(&self, dt: civil::DateTime) -> Option<Timestamp> {
        let naive = dt.to_zoned(TimeZone::UTC).ok()?.timestamp();
        let guess = naive
            .checked_sub(SignedDuration::from_mins(i64::from(
                self.offset_minutes(naive),
            )))
            .ok()?;
        naive
            .checked_sub(SignedDuration::from_mins(i64::from(
                self.offset_minutes(guess),
            )))
            .ok()
    }
}

/// A yearly transition as Windows describes it: the `order`-th (5 = last) `weekday` of
/// `month` at wall-clock `time` (as clocks read before the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearlyRule {
    pub month: i8,
    pub order: i8,
    pub weekday: civil::Weekday,
    pub time: civil::Time,
}

/// A zone's rules in one year: standard offset (minutes east of UTC) and, with DST, the
/// daylight offset and the two transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneRules {
    pub std_offset: i32,
    /// (daylight offset, rule into daylight time, rule back into standard time).
    pub dst: Option<(i32, YearlyRule, YearlyRule)>,
}

/// The rules of zone `zone_name` (Windows, IANA or UTC) in `year`, from jiff's tz database.
pub fn zone_rules(zone_name: &str, year: i16) -> ZoneRules {
    let tz = expand::resolve_tz(zone_name).unwrap_or(TimeZone::UTC);
    let start = civil::date(year, 1, 1)
        .to_datetime(civil::Time::midnight())
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let jan = tz.to_offset(start).seconds() / 60;
    let mut transitions: Vec<(Timestamp, i32)> = tz
        .following(start)
        .take(2)
        .map(|t| (t.timestamp(), t.offset().seconds() / 60))
        .filter(|(ts, _)| ts.to_zoned(tz.clone()).year() == year)
        .collect();
    if transitions.len() != 2 {
        return ZoneRules {
            std_offset: jan,
            dst: None,
        };
    }
    transitions.sort();
    let (a, b) = (transitions[0], transitions[1]);
    let (std_at, std_off, dst_at, dst_off) = if a.1 < b.1 {
        (a.0, a.1, b.0, b.1)
    } else {
        (b.0, b.1, a.0, a.1)
    };
    let rule = |ts: Timestamp, before: i32| {
        let local = ts
            .checked_add(SignedDuration::from_mins(i64::from(before)))
            .unwrap_or(ts)
            .to_zoned(TimeZone::UTC)
            .datetime();
        let order = if local.day() + 7 > local.date().days_in_month() {
            5
        } else {
            (local.day() - 1) / 7 + 1
        };
        YearlyRule {
            month: local.month(),
            order,
            weekday: local.weekday(),
            time: local.time(),
        }
    };
    ZoneRules {
        std_offset: std_off,
        dst: Some((dst_off, rule(dst_at, std_off), rule(std_at, dst_off))),
    }
}

fn weekday_name(d: civil::Weekday) -> &'static str {
    WEEKDAYS
        .iter()
        .find(|(_, x)| *x == d)
        .map(|(n, _)| *n)
        .unwrap_or("Sunday")
}

/// The mailbox zone as a SerializableTimeZone (`t:TimeZone`: bias, standard and daylight
/// rules; a zone without DST gets zero rules).
fn write_zone_of(w: &mut Writer, zone_name: &str, year: i16) {
    let r = zone_rules(zone_name, year);
    let rule = |w: &mut Writer, tag: &str, bias: i32, at: Option<YearlyRule>| {
        w.start(tag, &[]);
        w.leaf("t:Bias", &bias.to_string());
        match at {
            Some(y) => {
                w.leaf("t:Time", &y.time.strftime("%H:%M:%S").to_string())
                    .leaf("t:DayOrder", &y.order.to_string())
                    .leaf("t:Month", &y.month.to_string())
                    .leaf("t:DayOfWeek", weekday_name(y.weekday));
            }
            None => {
                w.leaf("t:Time", "00:00:00")
                    .leaf("t:DayOrder", "0")
                    .leaf("t:Month", "0")
                    .leaf("t:DayOfWeek", "Sunday");
            }
        }
        w.end(tag);
    };
    w.start("t:TimeZone", &[]);
    w.leaf("t:Bias", &(-r.std_offset).to_string());
    match r.dst {
        Some((dst_off, to_dst, to_std)) => {
            rule(w, "t:StandardTime", 0, Some(to_std));
            rule(w, "t:DaylightTime", r.std_offset - dst_off, Some(to_dst));
        }
        None => {
            rule(w, "t:StandardTime", 0, None);
            rule(w, "t:DaylightTime", 0, None);
        }
    }
    w.end("t:TimeZone");
}

/// `xs:duration` of a bias in minutes (`-PT1H`, `PT5H30M`, `PT0M`).
fn duration_minutes(m: i32) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    let (h, mm) = (a / 60, a % 60);
    match (h, mm) {
        (0, mm) => format!("{sign}PT{mm}M"),
        (h, 0) => format!("{sign}PT{h}H"),
        (h, mm) => format!("{sign}PT{h}H{mm}M"),
    }
}

fn time_offset(t: civil::Time) -> String {
    let (h, m) = (t.hour(), t.minute());
    if m == 0 {
        format!("PT{h}H")
    } else {
        format!("PT{h}H{m}M")
    }
}

/// `t:TimeZoneDefinition` of a Windows zone with this year's periods and transition group.
fn write_definition(w: &mut Writer, id: &str, full: bool, year: i16) {
    w.start("t:TimeZoneDefinition", &[("Id", id), ("Name", id)]);
    if full {
        let r = zone_rules(id, year);
        let std_id = format!("trule:Microsoft/Registry/{id}/{year}-Standard");
        let dst_id = format!("trule:Microsoft/Registry/{id}/{year}-Daylight");
        w.start("t:Periods", &[]);
        w.empty(
            "t:Period",
            &[
                ("Bias", &duration_minutes(-r.std_offset)),
                ("Name", "Standard"),
                ("Id", &std_id),
            ],
        );
        if let Some((dst_off, _, _)) = r.dst {
            w.empty(
                "t:Period",
                &[
                    ("Bias", &duration_minutes(-dst_off)),
                    ("Name", "Daylight"),
                    ("Id", &dst_id),
                ],
            );
        }
        w.end("t:Periods");
        w.start("t:TransitionsGroups", &[])
            .start("t:TransitionsGroup", &[("Id", "0")]);
        match r.dst {
            Some((_, to_dst, to_std)) => {
                for (to, rule) in [(&dst_id, to_dst), (&std_id, to_std)] {
                    let occurrence = if rule.order >= 5 {
                        "-1".to_owned()
                    } else {
                        rule.order.to_string()
                    };
                    w.start("t:RecurringDayTransition", &[])
                        .leaf_attrs("t:To", &[("Kind", "Period")], to)
                        .leaf("t:TimeOffset", &time_offset(rule.time))
                        .leaf("t:Month", &rule.month.to_string())
                        .leaf("t:DayOfWeek", weekday_name(rule.weekday))
                        .leaf("t:Occurrence", &occurrence)
                        .end("t:RecurringDayTransition");
                }
            }
            None => {
                w.start("t:Transition", &[])
                    .leaf_attrs("t:To", &[("Kind", "Period")], &std_id)
                    .end("t:Transition");
            }
        }
        w.end("t:TransitionsGroup").end("t:TransitionsGroups");
        w.start("t:Transitions", &[])
            .start("t:Transition", &[])
            .leaf_attrs("t:To", &[("Kind", "Group")], "0")
            .end("t:Transition")
            .end("t:Transitions");
    }
    w.end("t:TimeZoneDefinition");
}

/// GetServerTimeZones: the Windows zones (all, or the requested `m:Ids`), with this year's
/// rules when `ReturnFullTimeZoneData` is true.
pub fn get_server_time_zones(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let full = matches!(op.attr("ReturnFullTimeZoneData"), Some("true" | "1"));
    let year = ctx.st.now().to_zoned(TimeZone::UTC).year();
    let mut ids: Vec<String> = match op.child("Ids") {
        Some(list) => list
            .children_named("Id")
            .map(|i| i.text().to_owned())
            .collect(),
        None => calgate_tz::windows_names().map(str::to_owned).collect(),
    };
    ids.dedup();
    let mut w = Writer::new();
    w.start(
        "m:GetServerTimeZonesResponse",
        &[("xmlns:m", MESSAGES_NS), ("xmlns:t", TYPES_NS)],
    )
    .start("m:ResponseMessages", &[]);
    if let Some(bad) = ids
        .iter()
        .find(|i| !i.eq_ignore_ascii_case("utc") && calgate_tz::windows_to_iana(i).is_none())
    {
        w.start(
            "m:GetServerTimeZonesResponseMessage",
            &[("ResponseClass", "Error")],
        );
        EwsError::new(
            "ErrorTimeZone",
            format!("The specified time zone isn't valid. Time zone: '{bad}'."),
        )
        .write_message_body(&mut w);
        w.end("m:GetServerTimeZonesResponseMessage");
    } else {
        w.start(
            "m:GetServerTimeZonesResponseMessage",
            &[("ResponseClass", "Success")],
        )
        .leaf("m:ResponseCode", "NoError")
        .start("m:TimeZoneDefinitions", &[]);
        for id in &ids {
            write_definition(&mut w, id, full, year);
        }
        w.end("m:TimeZoneDefinitions")
            .end("m:GetServerTimeZonesResponseMessage");
    }
    w.end("m:ResponseMessages")
        .end("m:GetServerTimeZonesResponse");
    Ok(w.finish())
}

// ---------------------------------------------------------------------------------------------
// GetUserAvailability
// ---------------------------------------------------------------------------------------------

fn busy_char(s: ShowAs) -> char {
    match s {
        ShowAs::Free => '0',
        ShowAs::Tentative => '1',
        ShowAs::Busy => '2',
        ShowAs::Oof => '3',
        ShowAs::WorkingElsewhere => '4',
        ShowAs::Unknown => '5',
    }
}

fn busy_rank(c: char) -> u8 {
    match c {
        '0' => 0,
        '5' => 1,
        '1' => 2,
        '4' => 3,
        '2' => 4,
        '3' => 5,
        _ => 0,
    }
}

pub fn get_user_availability(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let zone = match op.child("TimeZone") {
        Some(z) => SerialZone::parse(z)?,
        None => SerialZone::UTC,
    };
    let mailboxes: Vec<&Element> = op
        .child("MailboxDataArray")
        .map(|a| a.children_named("MailboxData").collect())
        .unwrap_or_default();
    if mailboxes.len() > MAX_MAILBOXES {
        return Err(EwsError::fault(
            "ErrorMailboxDataArrayTooBig",
            format!(
                "There are too many target mailboxes requested: {}. The maximum is {MAX_MAILBOXES}.",
                mailboxes.len()
            ),
        ));
    }
    let opts = op.child("FreeBusyViewOptions").ok_or_else(|| {
        EwsError::fault(
            "ErrorInvalidRequest",
            "FreeBusyViewOptions is required (the simulator does not answer SuggestionsViewOptions).",
        )
    })?;
    let window = opts
        .child("TimeWindow")
        .ok_or_else(|| EwsError::schema("TimeWindow is missing."))?;
    let local = |name: &str| -> Result<Timestamp, EwsError> {
        let raw = window.child_text(name).unwrap_or("");
        match item::parse_time(raw) {
            Some(item::RawTime::Instant(t)) => Ok(t),
            Some(item::RawTime::Local(dt)) => zone
                .to_utc(dt)
                .ok_or_else(|| EwsError::schema(format!("{name} is invalid."))),
            None => Err(EwsError::schema(format!(
                "The '{name}' element is invalid - The value '{raw}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:dateTime'."
            ))),
        }
    };
    let (ws, we) = (local("StartTime")?, local("EndTime")?);
    if we <= ws {
        return Err(EwsError::fault(
            "ErrorInvalidTimeInterval",
            "The time interval is invalid: EndTime is not after StartTime.",
        ));
    }
    if we.duration_since(ws) > SignedDuration::from_hours(24 * MAX_WINDOW_DAYS) {
        return Err(EwsError::fault(
            "ErrorTimeIntervalTooBig",
            format!("The time window is larger than the maximum allowed ({MAX_WINDOW_DAYS} days)."),
        ));
    }
    let interval: i64 = match opts.child_text("MergedFreeBusyIntervalInMinutes") {
        None => 30,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (5..=1440).contains(&n) => n,
            _ => {
                return Err(EwsError::fault(
                    "ErrorInvalidMergedFreeBusyInterval",
                    "The merged free/busy interval must be between 5 and 1440 minutes.",
                ));
            }
        },
    };
    let view = opts
        .child_text("RequestedView")
        .unwrap_or("Detailed")
        .to_owned();
    if !matches!(
        view.as_str(),
        "MergedOnly" | "FreeBusy" | "FreeBusyMerged" | "Detailed" | "DetailedMerged"
    ) {
        return Err(EwsError::fault(
            "ErrorInvalidFreeBusyViewType",
            format!("The free/busy view type '{view}' is invalid."),
        ));
    }
    let merged = view.contains("Merged");
    let events = view != "MergedOnly";
    let detailed = view.starts_with("Detailed");
    let dir = ctx.st.dir();
    let t = dir
        .tenant_by_id(ctx.tenant_id)
        .ok_or_else(EwsError::access_denied)?;
    let mut w = Writer::new();
    w.start(
        "m:GetUserAvailabilityResponse",
        &[("xmlns:m", MESSAGES_NS), ("xmlns:t", TYPES_NS)],
    )
    .start("m:FreeBusyResponseArray", &[]);
    for m in &mailboxes {
        let addr = m
            .path(&["Email", "Address"])
            .map(Element::text)
            .unwrap_or("");
        w.start("m:FreeBusyResponse", &[]);
        let user: Result<&User, EwsError> = mailbox_by_address(t, addr)
            .map_err(|_| {
                EwsError::new(
                    "ErrorMailRecipientNotFound",
                    format!(
                        "Unable to resolve e-mail address {addr} to an Active Directory object."
                    ),
                )
            })
            .and_then(|id| t.user_by_id(id).ok_or_else(EwsError::item_not_found));
        let user = match user {
            Ok(u) => u,
            Err(e) => {
                w.start("m:ResponseMessage", &[("ResponseClass", "Error")]);
                e.write_message_body(&mut w);
                w.end("m:ResponseMessage");
                w.end("m:FreeBusyResponse");
                continue;
            }
        };
        w.start("m:ResponseMessage", &[("ResponseClass", "Success")])
            .leaf("m:ResponseCode", "NoError")
            .end("m:ResponseMessage");
        let instances = user
            .default_calendar_cell()
            .map(|c| expand::instances(&c.shared(), ws, we))
            .unwrap_or_default();
        w.start("m:FreeBusyView", &[]);
        w.leaf("t:FreeBusyViewType", &view);
        if merged {
            let slots = (we.duration_since(ws).as_secs() + interval * 60 - 1) / (interval * 60);
            let mut s = String::new();
            for k in 0..slots {
                let a = ws
                    .checked_add(SignedDuration::from_mins(k * interval))
                    .unwrap_or(ws);
                let b = a
                    .checked_add(SignedDuration::from_mins(interval))
                    .unwrap_or(a);
                let c = instances
                    .iter()
                    .filter(|i| i.start < b && i.end > a && !i.data.is_cancelled)
                    .map(|i| busy_char(i.data.show_as))
                    .max_by_key(|c| busy_rank(*c))
                    .unwrap_or('0');
                s.push(c);
            }
            w.leaf("t:MergedFreeBusy", &s);
        }
        if events {
            w.start("t:CalendarEventArray", &[]);
            for i in instances
                .iter()
                .filter(|i| i.data.show_as != ShowAs::Free && !i.data.is_cancelled)
            {
                let fmt =
                    |ts: Timestamp| zone.to_local(ts).strftime("%Y-%m-%dT%H:%M:%S").to_string();
                w.start("t:CalendarEvent", &[])
                    .leaf("t:StartTime", &fmt(i.start))
                    .leaf("t:EndTime", &fmt(i.end))
                    .leaf("t:BusyType", show_as_text(i.data.show_as));
                if detailed {
                    let private = matches!(
                        i.data.sensitivity,
                        Sensitivity::Private | Sensitivity::Confidential
                    );
                    let id: String = i.id.bytes().take(24).map(|b| format!("{b:02X}")).collect();
                    w.start("t:CalendarEventDetails", &[]).leaf("t:ID", &id);
                    if !private {
                        w.leaf("t:Subject", &i.data.subject)
                            .leaf("t:Location", &i.data.location.display_name);
                    }
                    let flag = |b: bool| if b { "true" } else { "false" };
                    w.leaf("t:IsMeeting", flag(!i.data.attendees.is_empty()))
                        .leaf("t:IsRecurring", flag(i.series_master_id.is_some()))
                        .leaf(
                            "t:IsException",
                            flag(i.kind == expand::InstanceKind::Exception),
                        )
                        .leaf("t:IsReminderSet", flag(i.data.is_reminder_on))
                        .leaf("t:IsPrivate", flag(private))
                        .end("t:CalendarEventDetails");
                }
                w.end("t:CalendarEvent");
            }
            w.end("t:CalendarEventArray");
        }
        let wh = &user.working_hours;
        w.start("t:WorkingHours", &[]);
        write_zone_of(&mut w, &wh.time_zone, zone.to_local(ws).year());
        let days: Vec<&str> = wh
            .days_of_week
            .iter()
            .map(|d| match d.sunday_zero_offset() {
                0 => "Sunday",
                1 => "Monday",
                2 => "Tuesday",
                3 => "Wednesday",
                4 => "Thursday",
                5 => "Friday",
                _ => "Saturday",
            })
            .collect();
        let mins = |t: civil::Time| i32::from(t.hour()) * 60 + i32::from(t.minute());
        w.start("t:WorkingPeriodArray", &[])
            .start("t:WorkingPeriod", &[])
            .leaf("t:DayOfWeek", &days.join(" "))
            .leaf("t:StartTimeInMinutes", &mins(wh.start_time).to_string())
            .leaf("t:EndTimeInMinutes", &mins(wh.end_time).to_string())
            .end("t:WorkingPeriod")
            .end("t:WorkingPeriodArray");
        w.end("t:WorkingHours");
        w.end("m:FreeBusyView");
        w.end("m:FreeBusyResponse");
    }
    w.end("m:FreeBusyResponseArray")
        .end("m:GetUserAvailabilityResponse");
    Ok(w.finish())
}

// ---------------------------------------------------------------------------------------------
// GetRoomLists, GetRooms
// ---------------------------------------------------------------------------------------------

pub fn get_room_lists(ctx: &Ctx<'_>, _op: &Element) -> OpResult {
    let dir = ctx.st.dir();
    let t = dir
        .tenant_by_id(ctx.tenant_id)
        .ok_or_else(EwsError::access_denied)?;
    let mut w = Writer::new();
    w.start(
        "m:GetRoomListsResponse",
        &[
            ("ResponseClass", "Success"),
            ("xmlns:m", MESSAGES_NS),
            ("xmlns:t", TYPES_NS),
        ],
    )
    .leaf("m:ResponseCode", "NoError")
    .start("m:RoomLists", &[]);
    for l in &t.room_lists {
        w.start("t:Address", &[])
            .leaf("t:Name", &l.display_name)
            .leaf("t:EmailAddress", &l.email)
            .leaf("t:RoutingType", "SMTP")
            .leaf("t:MailboxType", "PublicDL")
            .end("t:Address");
    }
    w.end("m:RoomLists").end("m:GetRoomListsResponse");
    Ok(w.finish())
}

pub fn get_rooms(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let addr = op
        .path(&["RoomList", "EmailAddress"])
        .map(Element::text)
        .unwrap_or("")
        .to_owned();
    let dir = ctx.st.dir();
    let t = dir
        .tenant_by_id(ctx.tenant_id)
        .ok_or_else(EwsError::access_denied)?;
    let Some(list) = t
        .room_lists
        .iter()
        .find(|l| l.email.eq_ignore_ascii_case(&addr))
        .filter(|l| !l.rooms.is_empty())
    else {
        return error_for(
            "GetRooms",
            EwsError::new("ErrorNameResolutionNoResults", "No results were found."),
        );
    };
    let mut w = Writer::new();
    w.start(
        "m:GetRoomsResponse",
        &[
            ("ResponseClass", "Success"),
            ("xmlns:m", MESSAGES_NS),
            ("xmlns:t", TYPES_NS),
        ],
    )
    .leaf("m:ResponseCode", "NoError")
    .start("m:Rooms", &[]);
    for u in list.rooms.iter().filter_map(|id| t.user_by_id(*id)) {
        w.start("t:Room", &[])
            .start("t:Id", &[])
            .leaf("t:Name", &u.display_name)
            .leaf("t:EmailAddress", &u.mail)
            .leaf("t:RoutingType", "SMTP")
            .leaf("t:MailboxType", "Mailbox")
            .end("t:Id")
            .end("t:Room");
    }
    w.end("m:Rooms").end("m:GetRoomsResponse");
    Ok(w.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serializable_zone_follows_its_rules() {
        // The documentation's Pacific zone (bias 480, DST from the 1st Sunday of April to the
        // last Sunday of October, 2006 rules).
        let e = super::super::xml::parse(
            b"<TimeZone><Bias>480</Bias><StandardTime><Bias>0</Bias><Time>02:00:00</Time><DayOrder>5</DayOrder><Month>10</Month><DayOfWeek>Sunday</DayOfWeek></StandardTime><DaylightTime><Bias>-60</Bias><Time>02:00:00</Time><DayOrder>1</DayOrder><Month>4</Month><DayOfWeek>Sunday</DayOfWeek></DaylightTime></TimeZone>",
        )
        .unwrap();
        let z = SerialZone::parse(&e).unwrap();
        let summer: Timestamp = "2006-10-16T13:00:00Z".parse().unwrap();
        assert_eq!(z.to_local(summer).to_string(), "2006-10-16T06:00:00");
        let winter: Timestamp = "2006-12-01T14:00:00Z".parse().unwrap();
        assert_eq!(z.to_local(winter).to_string(), "2006-12-01T06:00:00");
        let back = z.to_utc("2006-10-16T06:00:00".parse().unwrap()).unwrap();
        assert_eq!(back, summer);
    }
}
