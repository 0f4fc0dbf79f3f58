//! `t:CalendarItem` ↔ the tenant model: properties (FieldURI and ExtendedFieldURI), shapes,
//! rendering in the schema's element order, and parsing for CreateItem/UpdateItem.
//!
//! Mapping (EWS ↔ model): `LegacyFreeBusyStatus` Free/Tentative/Busy/OOF/WorkingElsewhere/NoData
//! ↔ showAs free/tentative/busy/oof/workingElsewhere/unknown; `Sensitivity` same names;
//! `UID` ↔ iCalUId; `CalendarItemType` Single/Occurrence/Exception/RecurringMaster ↔ event
//! type; `Recurrence` patterns ↔ the model's pattern (the Graph face's `patternedRecurrence`);
//! `ModifiedOccurrences` ↔ exceptions; `DeletedOccurrences` ↔ cancelled occurrences;
//! `StartTimeZone/@Id` ↔ the start's zone as a Windows id (via calgate-tz). An extended
//! property `PropertySetId=G PropertyName=N PropertyType=T` is the Graph face's
//! `T {G} Name N`.

use std::collections::BTreeSet;

use calgate_recurrence::{
    DayOfWeek, Pattern, PatternType, Range, RangeKind, Recurrence, WeekIndex,
};
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};
use uuid::Uuid;

use super::error::EwsError;
use super::ids;
use super::xml::{Element, Writer};
use crate::expand::{self, Instance, InstanceKind};
use crate::model::{
    Attendee, AttendeeType, Body, EmailAddress, EventData, ExtendedProperty, Importance, Location,
    ResponseType, Sensitivity, SeriesRecurrence, ShowAs, StoredEvent,
};

/// The properties the simulator renders, in the schema's element order (`ItemType` first,
/// then `CalendarItemType`); extended properties go between `HasAttachments` and
/// `LastModifiedTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prop {
    ItemId,
    ParentFolderId,
    ItemClass,
    Subject,
    Sensitivity,
    Body,
    Categories,
    Importance,
    DateTimeCreated,
    ReminderIsSet,
    ReminderMinutesBeforeStart,
    HasAttachments,
    LastModifiedTime,
    Uid,
    RecurrenceId,
    Start,
    End,
    OriginalStart,
    IsAllDayEvent,
    LegacyFreeBusyStatus,
    Location,
    IsMeeting,
    IsCancelled,
    IsRecurring,
    IsResponseRequested,
    CalendarItemType,
    MyResponseType,
    Organizer,
    RequiredAttendees,
    OptionalAttendees,
    Resources,
    Duration,
    TimeZone,
    Recurrence,
    FirstOccurrence,
    LastOccurrence,
    ModifiedOccurrences,
    DeletedOccurrences,
    StartTimeZone,
    EndTimeZone,
    AllowNewTimeProposal,
    IsOnlineMeeting,
    StartTimeZoneId,
    EndTimeZoneId,
}

const FIELDS: &[(&str, Prop)] = &[
    ("item:ItemId", Prop::ItemId),
    ("item:ParentFolderId", Prop::ParentFolderId),
    ("item:ItemClass", Prop::ItemClass),
    ("item:Subject", Prop::Subject),
    ("item:Sensitivity", Prop::Sensitivity),
    ("item:Body", Prop::Body),
    ("item:Categories", Prop::Categories),
    ("item:Importance", Prop::Importance),
    ("item:DateTimeCreated", Prop::DateTimeCreated),
    ("item:ReminderIsSet", Prop::ReminderIsSet),
    (
        "item:ReminderMinutesBeforeStart",
        Prop::ReminderMinutesBeforeStart,
    ),
    ("item:HasAttachments", Prop::HasAttachments),
    ("item:LastModifiedTime", Prop::LastModifiedTime),
    ("calendar:UID", Prop::Uid),
    ("calendar:RecurrenceId", Prop::RecurrenceId),
    ("calendar:Start", Prop::Start),
    ("calendar:End", Prop::End),
    ("calendar:OriginalStart", Prop::OriginalStart),
    ("calendar:IsAllDayEvent", Prop::IsAllDayEvent),
    ("calendar:LegacyFreeBusyStatus", Prop::LegacyFreeBusyStatus),
    ("calendar:Location", Prop::Location),
    ("calendar:IsMeeting", Prop::IsMeeting),
    ("calendar:IsCancelled", Prop::IsCancelled),
    ("calendar:IsRecurring", Prop::IsRecurring),
    ("calendar:IsResponseRequested", Prop::IsResponseRequested),
    ("calendar:CalendarItemType", Prop::CalendarItemType),
    ("calendar:MyResponseType", Prop::MyResponseType),
    ("calendar:Organizer", Prop::Organizer),
    ("calendar:RequiredAttendees", Prop::RequiredAttendees),
    ("calendar:OptionalAttendees", Prop::OptionalAttendees),
    ("calendar:Resources", Prop::Resources),
    ("calendar:Duration", Prop::Duration),
    ("calendar:TimeZone", Prop::TimeZone),
    ("calendar:Recurrence", Prop::Recurrence),
    ("calendar:FirstOccurrence", Prop::FirstOccurrence),
    ("calendar:LastOccurrence", Prop::LastOccurrence),
    ("calendar:ModifiedOccurrences", Prop::ModifiedOccurrences),
    ("calendar:DeletedOccurrences", Prop::DeletedOccurrences),
    ("calendar:StartTimeZone", Prop::StartTimeZone),
    ("calendar:EndTimeZone", Prop::EndTimeZone),
    ("calendar:AllowNewTimeProposal", Prop::AllowNewTimeProposal),
    ("calendar:IsOnlineMeeting", Prop::IsOnlineMeeting),
    ("calendar:StartTimeZoneId", Prop::StartTimeZoneId),
    ("calendar:EndTimeZoneId", Prop::EndTimeZoneId),
];

impl Prop {
    /// The property a `FieldURI` names; `None` for a valid URI the simulator does not model
    /// (it is then left out of answers, and ignored in updates).
    pub fn from_field_uri(uri: &str) -> Option<Prop> {
        FIELDS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(uri))
            .map(|(_, p)| *p)
    }

    pub fn field_uri(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(u, _)| *u)
            .unwrap_or("")
    }
}

/// `t:ExtendedFieldURI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtUri {
    /// Lower-case GUID of the property set (named and id properties).
    pub set_id: Option<String>,
    /// `DistinguishedPropertySetId`, kept for rendering.
    pub distinguished: Option<String>,
    pub name: Option<String>,
    pub id: Option<u32>,
    /// `PropertyTag` (`0x…`).
    pub tag: Option<u32>,
    pub ptype: String,
}

const DISTINGUISHED_SETS: &[(&str, &str)] = &[
    ("PublicStrings", "00020329-0000-0000-c000-000000000046"),
    ("Common", "00062008-0000-0000-c000-000000000046"),
    ("Appointment", "00062002-0000-0000-c000-000000000046"),
    ("Meeting", "6ed8da90-450b-101b-98da-00aa003f1305"),
    ("InternetHeaders", "00020386-0000-0000-c000-000000000046"),
    ("Address", "00062004-0000-0000-c000-000000000046"),
    ("Task", "00062003-0000-0000-c000-000000000046"),
    ("CalendarAssistant", "11000e07-b51b-40d6-af21-caa85edab1d0"),
    ("UnifiedMessaging", "4442858e-a9e3-4e80-b900-317a210cc15b"),
    ("Sharing", "00062040-0000-0000-c000-000000000046"),
];

const PROPERTY_TYPES: &[&str] = &[
    "ApplicationTime",
    "Binary",
    "CLSID",
    "Currency",
    "Double",
    "Error",
    "Float",
    "Integer",
    "IntegerArray",
    "Long",
    "LongArray",
    "Null",
    "Object",
    "Short",
    "ShortArray",
    "SystemTime",
    "SystemTimeArray",
    "String",
    "StringArray",
    "Boolean",
    "BinaryArray",
    "CLSIDArray",
    "CurrencyArray",
    "DoubleArray",
    "FloatArray",
    "ObjectArray",
    "ApplicationTimeArray",
];

fn parse_u32_any(s: &str) -> Option<u32> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

impl ExtUri {
    pub fn parse(e: &Element) -> Result<ExtUri, EwsError> {
        let bad = || {
            EwsError::new(
                "ErrorInvalidExtendedProperty",
                "The extended property attribute combination is invalid.",
            )
        };
        let ptype = e.attr("PropertyType").ok_or_else(bad)?;
        let ptype = PROPERTY_TYPES
            .iter()
            .find(|t| **t == ptype)
            .ok_or_else(bad)?
            .to_string();
        let distinguished = e.attr("DistinguishedPropertySetId").map(str::to_owned);
        let set_id = match (&distinguished, e.attr("PropertySetId")) {
            (Some(_), Some(_)) => return Err(bad()),
            (Some(d), None) => Some(
                DISTINGUISHED_SETS
                    .iter()
                    .find(|(n, _)| n == d)
                    .map(|(_, g)| (*g).to_owned())
                    .ok_or_else(bad)?,
            ),
            (None, Some(g)) => Some(
                Uuid::parse_str(g.trim().trim_start_matches('{').trim_end_matches('}'))
                    .map_err(|_| bad())?
                    .to_string(),
            ),
            (None, None) => None,
        };
        let name = e.attr("PropertyName").map(str::to_owned);
        let id = e
            .attr("PropertyId")
            .map(|v| parse_u32_any(v).ok_or_else(bad))
            .transpose()?;
        let tag = e
            .attr("PropertyTag")
            .map(|v| parse_u32_any(v).ok_or_else(bad))
            .transpose()?;
        let ok = matches!(
            (&set_id, &name, id, tag),
            (Some(_), Some(_), None, None)
                | (Some(_), None, Some(_), None)
                | (None, None, None, Some(_))
        );
        if !ok {
            return Err(bad());
        }
        Ok(ExtUri {
            set_id,
            distinguished,
            name,
            id,
            tag,
            ptype,
        })
    }

    /// The Graph face's `singleValueExtendedProperties` id of the same property.
    pub fn graph_id(&self) -> String {
        match (&self.set_id, &self.name, self.id, self.tag) {
            (Some(g), Some(n), _, _) => format!("{} {{{g}}} Name {n}", self.ptype),
            (Some(g), None, Some(i), _) => format!("{} {{{g}}} Id 0x{i:04x}", self.ptype),
            (_, _, _, Some(t)) => format!("{} 0x{t:04x}", self.ptype),
            _ => self.ptype.clone(),
        }
    }

    /// Whether the model's property `graph_id` is this one (case-insensitive, numbers by
    /// value).
    pub fn matches(&self, graph_id: &str) -> bool {
        ExtUri::from_graph_id(graph_id).is_some_and(|o| {
            o.ptype.eq_ignore_ascii_case(&self.ptype)
                && o.set_id == self.set_id
                && o.id == self.id
                && o.tag == self.tag
                && match (&o.name, &self.name) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (None, None) => true,
                    _ => false,
                }
        })
    }

    /// Reads a Graph id (`String {guid} Name X`, `Integer {guid} Id 0x8001`,
    /// `String 0x001A`).
    pub fn from_graph_id(id: &str) -> Option<ExtUri> {
        let parts: Vec<&str> = id.split(' ').collect();
        let first = *parts.first()?;
        let ptype = PROPERTY_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(first))?
            .to_string();
        let guid = |s: &str| {
            let g = s.strip_prefix('{')?.strip_suffix('}')?;
            Uuid::parse_str(g).ok().map(|u| u.to_string())
        };
        match parts.len() {
            2 => Some(ExtUri {
                set_id: None,
                distinguished: None,
                name: None,
                id: None,
                tag: Some(parse_u32_any(parts[1])?),
                ptype,
            }),
            4 if parts[2].eq_ignore_ascii_case("Id") => Some(ExtUri {
                set_id: Some(guid(parts[1])?),
                distinguished: None,
                name: None,
                id: Some(parse_u32_any(parts[3])?),
                tag: None,
                ptype,
            }),
            n if n >= 4 && parts[2].eq_ignore_ascii_case("Name") => Some(ExtUri {
                set_id: Some(guid(parts[1])?),
                distinguished: None,
                name: Some(parts[3..].join(" ")),
                id: None,
                tag: None,
                ptype,
            }),
            _ => None,
        }
    }

    pub fn write(&self, w: &mut Writer) {
        let id_text = self.id.map(|i| i.to_string());
        let tag_text = self.tag.map(|t| format!("0x{t:x}"));
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        match (&self.distinguished, &self.set_id) {
            (Some(d), _) => attrs.push(("DistinguishedPropertySetId", d)),
            (None, Some(g)) => attrs.push(("PropertySetId", g)),
            _ => {}
        }
        if let Some(t) = &tag_text {
            attrs.push(("PropertyTag", t));
        }
        if let Some(n) = &self.name {
            attrs.push(("PropertyName", n));
        }
        if let Some(i) = &id_text {
            attrs.push(("PropertyId", i));
        }
        attrs.push(("PropertyType", &self.ptype));
        w.empty("t:ExtendedFieldURI", &attrs);
    }
}

/// A property path: `FieldURI`, `IndexedFieldURI` (not modelled) or `ExtendedFieldURI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    Field(Prop),
    /// A valid field the simulator does not model.
    Unmodelled(String),
    Ext(ExtUri),
}

impl Path {
    pub fn parse(e: &Element) -> Result<Path, EwsError> {
        match e.name.as_str() {
            "FieldURI" => {
                let uri = e.attr("FieldURI").unwrap_or("");
                if !uri.contains(':') {
                    return Err(EwsError::schema(format!(
                        "The 'FieldURI' attribute is invalid - The value '{uri}' is invalid according to its datatype."
                    )));
                }
                Ok(Prop::from_field_uri(uri)
                    .map(Path::Field)
                    .unwrap_or_else(|| Path::Unmodelled(uri.to_owned())))
            }
            "IndexedFieldURI" => Ok(Path::Unmodelled(
                e.attr("FieldURI").unwrap_or("").to_owned(),
            )),
            "ExtendedFieldURI" => Ok(Path::Ext(ExtUri::parse(e)?)),
            other => Err(EwsError::schema(format!(
                "The element '{other}' is not a property path."
            ))),
        }
    }

    /// The first property path among `e`'s children.
    pub fn find_in(e: &Element) -> Result<Path, EwsError> {
        e.children
            .iter()
            .find(|c| {
                matches!(
                    c.name.as_str(),
                    "FieldURI" | "IndexedFieldURI" | "ExtendedFieldURI"
                )
            })
            .ok_or_else(|| EwsError::schema("A property path is missing."))
            .and_then(Path::parse)
    }
}

/// What to render: the shape's properties plus requested extended properties.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub props: BTreeSet<Prop>,
    pub ext: Vec<ExtUri>,
}

const DEFAULT_SHAPE: &[Prop] = &[
    Prop::ItemId,
    Prop::Subject,
    Prop::HasAttachments,
    Prop::Start,
    Prop::End,
    Prop::LegacyFreeBusyStatus,
    Prop::Location,
    Prop::CalendarItemType,
    Prop::Organizer,
];

impl Shape {
    /// `ItemShape`: `BaseShape` (IdOnly/Default/AllProperties) plus `AdditionalProperties`.
    pub fn parse(e: Option<&Element>) -> Result<Shape, EwsError> {
        let Some(e) = e else {
            return Err(EwsError::schema(
                "The element 'ItemShape' is missing (it is required).",
            ));
        };
        let base = e.child_text("BaseShape").unwrap_or("");
        let mut props: BTreeSet<Prop> = match base {
            "IdOnly" => [Prop::ItemId].into_iter().collect(),
            "Default" => DEFAULT_SHAPE.iter().copied().collect(),
            "AllProperties" => FIELDS
                .iter()
                .map(|(_, p)| *p)
                .filter(|p| !matches!(p, Prop::StartTimeZoneId | Prop::EndTimeZoneId))
                .collect(),
            other => {
                return Err(EwsError::schema(format!(
                    "The 'BaseShape' element is invalid - The value '{other}' is invalid according to its datatype."
                )));
            }
        };
        let mut ext = Vec::new();
        if let Some(add) = e.child("AdditionalProperties") {
            for c in &add.children {
                match Path::parse(c)? {
                    Path::Field(p) => {
                        props.insert(p);
                    }
                    Path::Unmodelled(_) => {}
                    Path::Ext(x) => ext.push(x),
                }
            }
        }
        Ok(Shape { props, ext })
    }

    pub fn id_only() -> Shape {
        Shape {
            props: [Prop::ItemId].into_iter().collect(),
            ext: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value spellings
// ---------------------------------------------------------------------------------------------

pub fn fmt_ts(ts: Timestamp) -> String {
    ts.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn show_as_text(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "Free",
        ShowAs::Tentative => "Tentative",
        ShowAs::Busy => "Busy",
        ShowAs::Oof => "OOF",
        ShowAs::WorkingElsewhere => "WorkingElsewhere",
        ShowAs::Unknown => "NoData",
    }
}

pub fn parse_show_as(s: &str) -> Option<ShowAs> {
    Some(match s {
        "Free" => ShowAs::Free,
        "Tentative" => ShowAs::Tentative,
        "Busy" => ShowAs::Busy,
        "OOF" => ShowAs::Oof,
        "WorkingElsewhere" => ShowAs::WorkingElsewhere,
        "NoData" => ShowAs::Unknown,
        _ => return None,
    })
}

pub fn sensitivity_text(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "Normal",
        Sensitivity::Personal => "Personal",
        Sensitivity::Private => "Private",
        Sensitivity::Confidential => "Confidential",
    }
}

fn parse_sensitivity(s: &str) -> Option<Sensitivity> {
    Some(match s {
        "Normal" => Sensitivity::Normal,
        "Personal" => Sensitivity::Personal,
        "Private" => Sensitivity::Private,
        "Confidential" => Sensitivity::Confidential,
        _ => return None,
    })
}

fn importance_text(i: Importance) -> &'static str {
    match i {
        Importance::Low => "Low",
        Importance::Normal => "Normal",
        Importance::High => "High",
    }
}

fn parse_importance(s: &str) -> Option<Importance> {
    Some(match s {
        "Low" => Importance::Low,
        "Normal" => Importance::Normal,
        "High" => Importance::High,
        _ => return None,
    })
}

fn response_text(r: ResponseType) -> &'static str {
    match r {
        ResponseType::None => "Unknown",
        ResponseType::Organizer => "Organizer",
        ResponseType::TentativelyAccepted => "Tentative",
        ResponseType::Accepted => "Accept",
        ResponseType::Declined => "Decline",
        ResponseType::NotResponded => "NoResponseReceived",
    }
}

fn parse_response(s: &str) -> ResponseType {
    match s {
        "Organizer" => ResponseType::Organizer,
        "Tentative" => ResponseType::TentativelyAccepted,
        "Accept" => ResponseType::Accepted,
        "Decline" => ResponseType::Declined,
        "NoResponseReceived" => ResponseType::NotResponded,
        _ => ResponseType::None,
    }
}

pub fn kind_text(k: InstanceKind) -> &'static str {
    match k {
        InstanceKind::SingleInstance => "Single",
        InstanceKind::Occurrence => "Occurrence",
        InstanceKind::Exception => "Exception",
        InstanceKind::SeriesMaster => "RecurringMaster",
    }
}

/// The Windows id of a zone name the model holds (Windows, IANA or UTC).
pub fn windows_zone(name: &str) -> String {
    let n = name.trim();
    if n.eq_ignore_ascii_case("utc") || n.eq_ignore_ascii_case("etc/utc") {
        return "UTC".into();
    }
    if calgate_tz::windows_to_iana(n).is_some() {
        return n.to_owned();
    }
    calgate_tz::iana_to_windows(n)
        .map(str::to_owned)
        .unwrap_or_else(|| "UTC".into())
}

fn duration_text(start: Timestamp, end: Timestamp) -> String {
    let secs = end.duration_since(start).as_secs().max(0);
    let (d, rem) = (secs / 86_400, secs % 86_400);
    let (h, rem) = (rem / 3600, rem % 3600);
    let (m, s) = (rem / 60, rem % 60);
    let mut out = String::from("P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if h > 0 || m > 0 || s > 0 || d == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 || (h == 0 && m == 0) {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

const DAY_NAMES: [(&str, DayOfWeek); 7] = [
    ("Sunday", DayOfWeek::Sunday),
    ("Monday", DayOfWeek::Monday),
    ("Tuesday", DayOfWeek::Tuesday),
    ("Wednesday", DayOfWeek::Wednesday),
    ("Thursday", DayOfWeek::Thursday),
    ("Friday", DayOfWeek::Friday),
    ("Saturday", DayOfWeek::Saturday),
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day_name(d: DayOfWeek) -> &'static str {
    DAY_NAMES
        .iter()
        .find(|(_, x)| *x == d)
        .map(|(n, _)| *n)
        .unwrap_or("Sunday")
}

fn days_text(days: &[DayOfWeek]) -> String {
    let set: BTreeSet<u8> = days.iter().map(|d| d.sunday_zero_offset() as u8).collect();
    if set.len() == 7 {
        return "Day".into();
    }
    let weekdays: BTreeSet<u8> = (1..=5).collect();
    if set == weekdays {
        return "Weekday".into();
    }
    if set == [0u8, 6].into_iter().collect() {
        return "WeekendDay".into();
    }
    days.iter()
        .map(|d| day_name(*d))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_days(s: &str) -> Result<Vec<DayOfWeek>, EwsError> {
    let mut out = Vec::new();
    for w in s.split_whitespace() {
        match w {
            "Day" => out.extend(DAY_NAMES.iter().map(|(_, d)| *d)),
            "Weekday" => out.extend(DAY_NAMES[1..6].iter().map(|(_, d)| *d)),
            "WeekendDay" => out.extend([DayOfWeek::Saturday, DayOfWeek::Sunday]),
            other => out.push(
                DAY_NAMES
                    .iter()
                    .find(|(n, _)| *n == other)
                    .map(|(_, d)| *d)
                    .ok_or_else(|| {
                        EwsError::schema(format!(
                            "The 'DaysOfWeek' element is invalid - The value '{other}' is invalid according to its datatype."
                        ))
                    })?,
            ),
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|d| seen.insert(d.sunday_zero_offset()));
    Ok(out)
}

fn index_text(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "First",
        WeekIndex::Second => "Second",
        WeekIndex::Third => "Third",
        WeekIndex::Fourth => "Fourth",
        WeekIndex::Last => "Last",
    }
}

fn parse_index(s: &str) -> Option<WeekIndex> {
    Some(match s {
        "First" => WeekIndex::First,
        "Second" => WeekIndex::Second,
        "Third" => WeekIndex::Third,
        "Fourth" => WeekIndex::Fourth,
        "Last" => WeekIndex::Last,
        _ => return None,
    })
}

fn fmt_date(d: civil::Date) -> String {
    d.strftime("%Y-%m-%d").to_string()
}

/// `xs:date`, with or without a zone suffix (`2006-10-01`, `2006-10-01Z`, `2006-10-01-07:00`).
fn parse_date(s: &str) -> Option<civil::Date> {
    let t = s.trim();
    t.get(..10)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// What an item is rendered from.
#[derive(Debug)]
pub struct ItemView<'a> {
    pub inst: &'a Instance,
    pub mailbox: Uuid,
    pub mailbox_mail: &'a str,
    /// The stored item (the series master for occurrences and exceptions).
    pub stored: Option<&'a StoredEvent>,
}

fn write_mailbox(w: &mut Writer, tag: &str, e: &EmailAddress) {
    w.start(tag, &[]);
    w.leaf("t:Name", &e.name)
        .leaf("t:EmailAddress", &e.address)
        .leaf("t:RoutingType", "SMTP")
        .leaf("t:MailboxType", "Mailbox");
    w.end(tag);
}

fn write_attendees(w: &mut Writer, tag: &str, list: &[&Attendee]) {
    if list.is_empty() {
        return;
    }
    w.start(tag, &[]);
    for a in list {
        w.start("t:Attendee", &[]);
        write_mailbox(w, "t:Mailbox", &a.email);
        w.leaf("t:ResponseType", response_text(a.response));
        if let Some(t) = a.response_time {
            w.leaf("t:LastResponseTime", &fmt_ts(t));
        }
        w.end("t:Attendee");
    }
    w.end(tag);
}

fn write_zone(w: &mut Writer, tag: &str, zone: &str) {
    let id = windows_zone(zone);
    w.empty(tag, &[("Id", &id), ("Name", &id)]);
}

pub fn write_recurrence(w: &mut Writer, r: &SeriesRecurrence) {
    let p = &r.rule.pattern;
    w.start("t:Recurrence", &[]);
    let interval = p.interval.to_string();
    match p.kind {
        PatternType::Daily => {
            w.start("t:DailyRecurrence", &[])
                .leaf("t:Interval", &interval)
                .end("t:DailyRecurrence");
        }
        PatternType::Weekly => {
            w.start("t:WeeklyRecurrence", &[])
                .leaf("t:Interval", &interval)
                .leaf(
                    "t:DaysOfWeek",
                    &p.days_of_week
                        .iter()
                        .map(|d| day_name(*d))
                        .collect::<Vec<_>>()
                        .join(" "),
                )
                .leaf("t:FirstDayOfWeek", day_name(p.first_day_of_week))
                .end("t:WeeklyRecurrence");
        }
        PatternType::AbsoluteMonthly => {
            w.start("t:AbsoluteMonthlyRecurrence", &[])
                .leaf("t:Interval", &interval)
                .leaf("t:DayOfMonth", &p.day_of_month.to_string())
                .end("t:AbsoluteMonthlyRecurrence");
        }
        PatternType::RelativeMonthly => {
            w.start("t:RelativeMonthlyRecurrence", &[])
                .leaf("t:Interval", &interval)
                .leaf("t:DaysOfWeek", &days_text(&p.days_of_week))
                .leaf("t:DayOfWeekIndex", index_text(p.index))
                .end("t:RelativeMonthlyRecurrence");
        }
        PatternType::AbsoluteYearly => {
            w.start("t:AbsoluteYearlyRecurrence", &[])
                .leaf("t:DayOfMonth", &p.day_of_month.to_string())
                .leaf("t:Month", month_name(p.month))
                .end("t:AbsoluteYearlyRecurrence");
        }
        PatternType::RelativeYearly => {
            w.start("t:RelativeYearlyRecurrence", &[])
                .leaf("t:DaysOfWeek", &days_text(&p.days_of_week))
                .leaf("t:DayOfWeekIndex", index_text(p.index))
                .leaf("t:Month", month_name(p.month))
                .end("t:RelativeYearlyRecurrence");
        }
    }
    let start = fmt_date(r.rule.range.start_date);
    match &r.rule.range.kind {
        RangeKind::NoEnd => {
            w.start("t:NoEndRecurrence", &[])
                .leaf("t:StartDate", &start)
                .end("t:NoEndRecurrence");
        }
        RangeKind::EndDate(d) => {
            w.start("t:EndDateRecurrence", &[])
                .leaf("t:StartDate", &start)
                .leaf("t:EndDate", &fmt_date(*d))
                .end("t:EndDateRecurrence");
        }
        RangeKind::Numbered(n) => {
            w.start("t:NumberedRecurrence", &[])
                .leaf("t:StartDate", &start)
                .leaf("t:NumberOfOccurrences", &n.to_string())
                .end("t:NumberedRecurrence");
        }
    }
    w.end("t:Recurrence");
}

fn month_name(m: u8) -> &'static str {
    MONTHS
        .get(usize::from(m.max(1)) - 1)
        .copied()
        .unwrap_or("January")
}

fn my_response(v: &ItemView<'_>) -> &'static str {
    let d = &v.inst.data;
    if d.organizer.address.is_empty() || d.organizer.address.eq_ignore_ascii_case(v.mailbox_mail) {
        return "Organizer";
    }
    d.attendees
        .iter()
        .find(|a| a.email.address.eq_ignore_ascii_case(v.mailbox_mail))
        .map(|a| match a.response {
            ResponseType::None => "NoResponseReceived",
            r => response_text(r),
        })
        .unwrap_or("Unknown")
}

/// Writes `<t:CalendarItem>` with the shape's properties.
pub fn write_item(w: &mut Writer, v: &ItemView<'_>, shape: &Shape) {
    let i = v.inst;
    let d = &i.data;
    let is_master = i.kind == InstanceKind::SeriesMaster;
    w.start("t:CalendarItem", &[]);
    let mut ext_done = false;
    for p in &shape.props {
        if !ext_done && *p > Prop::HasAttachments {
            write_ext(w, i, shape);
            ext_done = true;
        }
        match p {
            Prop::ItemId => {
                let id = ids::item_id(v.mailbox, &i.id);
                w.empty("t:ItemId", &[("Id", &id), ("ChangeKey", &i.change_key)]);
            }
            Prop::ParentFolderId => {
                let f = ids::folder_id(v.mailbox, ids::FolderKind::Calendar);
                let ck = ids::folder_change_key(ids::FolderKind::Calendar);
                w.empty("t:ParentFolderId", &[("Id", &f), ("ChangeKey", &ck)]);
            }
            Prop::ItemClass => {
                w.leaf("t:ItemClass", "IPM.Appointment");
            }
            Prop::Subject => {
                w.leaf("t:Subject", &d.subject);
            }
            Prop::Sensitivity => {
                w.leaf("t:Sensitivity", sensitivity_text(d.sensitivity));
            }
            Prop::Body => {
                let bt = if d.body.content_type.eq_ignore_ascii_case("html") {
                    "HTML"
                } else {
                    "Text"
                };
                w.leaf_attrs("t:Body", &[("BodyType", bt)], &d.body.content);
            }
            Prop::Categories => {
                if !d.categories.is_empty() {
                    w.start("t:Categories", &[]);
                    for c in &d.categories {
                        w.leaf("t:String", c);
                    }
                    w.end("t:Categories");
                }
            }
            Prop::Importance => {
                w.leaf("t:Importance", importance_text(d.importance));
            }
            Prop::DateTimeCreated => {
                w.leaf("t:DateTimeCreated", &fmt_ts(i.created));
            }
            Prop::ReminderIsSet => {
                w.leaf("t:ReminderIsSet", bool_text(d.is_reminder_on));
            }
            Prop::ReminderMinutesBeforeStart => {
                w.leaf(
                    "t:ReminderMinutesBeforeStart",
                    &d.reminder_minutes_before_start.to_string(),
                );
            }
            Prop::HasAttachments => {
                w.leaf("t:HasAttachments", "false");
            }
            Prop::LastModifiedTime => {
                w.leaf("t:LastModifiedTime", &fmt_ts(i.last_modified));
            }
            Prop::Uid => {
                let uid = v.stored.map(|s| s.ical_uid.as_str()).unwrap_or(&i.ical_uid);
                w.leaf("t:UID", uid);
            }
            Prop::RecurrenceId => {
                if let Some(o) = i.original_start {
                    w.leaf("t:RecurrenceId", &fmt_ts(o));
                }
            }
            Prop::Start => {
                w.leaf("t:Start", &fmt_ts(i.start));
            }
            Prop::End => {
                w.leaf("t:End", &fmt_ts(i.end));
            }
            Prop::OriginalStart => {
                if let Some(o) = i.original_start {
                    w.leaf("t:OriginalStart", &fmt_ts(o));
                }
            }
            Prop::IsAllDayEvent => {
                w.leaf("t:IsAllDayEvent", bool_text(d.is_all_day));
            }
            Prop::LegacyFreeBusyStatus => {
                w.leaf("t:LegacyFreeBusyStatus", show_as_text(d.show_as));
            }
            Prop::Location => {
                w.leaf("t:Location", &d.location.display_name);
            }
            Prop::IsMeeting => {
                w.leaf("t:IsMeeting", bool_text(!d.attendees.is_empty()));
            }
            Prop::IsCancelled => {
                w.leaf("t:IsCancelled", bool_text(d.is_cancelled));
            }
            Prop::IsRecurring => {
                // Exchange: true for occurrences and exceptions, false for masters and singles.
                let r = matches!(i.kind, InstanceKind::Occurrence | InstanceKind::Exception);
                w.leaf("t:IsRecurring", bool_text(r));
            }
            Prop::IsResponseRequested => {
                w.leaf("t:IsResponseRequested", bool_text(d.response_requested));
            }
            Prop::CalendarItemType => {
                w.leaf("t:CalendarItemType", kind_text(i.kind));
            }
            Prop::MyResponseType => {
                w.leaf("t:MyResponseType", my_response(v));
            }
            Prop::Organizer => {
                if !d.organizer.address.is_empty() {
                    w.start("t:Organizer", &[]);
                    write_mailbox(w, "t:Mailbox", &d.organizer);
                    w.end("t:Organizer");
                }
            }
            Prop::RequiredAttendees | Prop::OptionalAttendees | Prop::Resources => {
                let (kind, tag) = match p {
                    Prop::RequiredAttendees => (AttendeeType::Required, "t:RequiredAttendees"),
                    Prop::OptionalAttendees => (AttendeeType::Optional, "t:OptionalAttendees"),
                    _ => (AttendeeType::Resource, "t:Resources"),
                };
                let list: Vec<&Attendee> = d.attendees.iter().filter(|a| a.kind == kind).collect();
                write_attendees(w, tag, &list);
            }
            Prop::Duration => {
                w.leaf("t:Duration", &duration_text(i.start, i.end));
            }
            Prop::TimeZone => {
                w.leaf("t:TimeZone", &windows_zone(&d.start.time_zone));
            }
            Prop::Recurrence => {
                if let (true, Some(r)) = (is_master, &i.recurrence) {
                    write_recurrence(w, r);
                }
            }
            Prop::FirstOccurrence | Prop::LastOccurrence => {
                if is_master && let Some(ev) = v.stored {
                    write_first_last(w, v, ev, *p == Prop::FirstOccurrence);
                }
            }
            Prop::ModifiedOccurrences => {
                if is_master
                    && let Some(ev) = v.stored
                    && ev.exceptions.keys().any(|k| !ev.cancelled.contains(k))
                {
                    w.start("t:ModifiedOccurrences", &[]);
                    for (orig, x) in &ev.exceptions {
                        if ev.cancelled.contains(orig) {
                            continue;
                        }
                        let Some((s, e)) = expand::data_span(&x.data) else {
                            continue;
                        };
                        w.start("t:Occurrence", &[]);
                        let id = ids::item_id(v.mailbox, &x.id);
                        w.empty("t:ItemId", &[("Id", &id), ("ChangeKey", &x.change_key)]);
                        w.leaf("t:Start", &fmt_ts(s))
                            .leaf("t:End", &fmt_ts(e))
                            .leaf("t:OriginalStart", &fmt_ts(*orig));
                        w.end("t:Occurrence");
                    }
                    w.end("t:ModifiedOccurrences");
                }
            }
            Prop::DeletedOccurrences => {
                if is_master
                    && let Some(ev) = v.stored
                    && !ev.cancelled.is_empty()
                {
                    w.start("t:DeletedOccurrences", &[]);
                    for c in &ev.cancelled {
                        w.start("t:DeletedOccurrence", &[])
                            .leaf("t:Start", &fmt_ts(*c))
                            .end("t:DeletedOccurrence");
                    }
                    w.end("t:DeletedOccurrences");
                }
            }
            Prop::StartTimeZone => write_zone(w, "t:StartTimeZone", &d.start.time_zone),
            Prop::EndTimeZone => write_zone(w, "t:EndTimeZone", &d.end.time_zone),
            Prop::AllowNewTimeProposal => {
                w.leaf(
                    "t:AllowNewTimeProposal",
                    bool_text(d.allow_new_time_proposals),
                );
            }
            Prop::IsOnlineMeeting => {
                w.leaf("t:IsOnlineMeeting", bool_text(d.is_online_meeting));
            }
            Prop::StartTimeZoneId => {
                w.leaf("t:StartTimeZoneId", &windows_zone(&d.start.time_zone));
            }
            Prop::EndTimeZoneId => {
                w.leaf("t:EndTimeZoneId", &windows_zone(&d.end.time_zone));
            }
        }
    }
    if !ext_done {
        write_ext(w, i, shape);
    }
    w.end("t:CalendarItem");
}

fn write_first_last(w: &mut Writer, v: &ItemView<'_>, ev: &StoredEvent, first: bool) {
    let Some(rec) = &ev.recurrence else {
        return;
    };
    let tz = expand::resolve_tz(&rec.time_zone).unwrap_or(TimeZone::UTC);
    let Ok(from) = rec
        .rule
        .range
        .start_date
        .to_datetime(civil::Time::midnight())
        .to_zoned(tz.clone())
    else {
        return;
    };
    let from = from.timestamp();
    let until = match &rec.rule.range.kind {
        RangeKind::EndDate(d) => d
            .tomorrow()
            .ok()
            .and_then(|t| t.to_datetime(civil::Time::midnight()).to_zoned(tz).ok())
            .map(|z| z.timestamp()),
        RangeKind::Numbered(_) | RangeKind::NoEnd => None,
    };
    let tag = if first {
        "t:FirstOccurrence"
    } else {
        "t:LastOccurrence"
    };
    let occ = if first {
        let end = from
            .checked_add(jiff::SignedDuration::from_hours(24 * 366 * 5))
            .unwrap_or(from);
        expand::event_instances(ev, from, end).into_iter().next()
    } else {
        match (&rec.rule.range.kind, until) {
            (RangeKind::NoEnd, _) => None,
            (_, Some(u)) => expand::event_instances(ev, from, u).into_iter().last(),
            _ => {
                let end = from
                    .checked_add(jiff::SignedDuration::from_hours(24 * 366 * 30))
                    .unwrap_or(from);
                expand::event_instances(ev, from, end).into_iter().last()
            }
        }
    };
    let Some(o) = occ else {
        return;
    };
    w.start(tag, &[]);
    let id = ids::item_id(v.mailbox, &o.id);
    w.empty("t:ItemId", &[("Id", &id), ("ChangeKey", &o.change_key)]);
    w.leaf("t:Start", &fmt_ts(o.start))
        .leaf("t:End", &fmt_ts(o.end))
        .leaf(
            "t:OriginalStart",
            &fmt_ts(o.original_start.unwrap_or(o.start)),
        );
    w.end(tag);
}

fn write_ext(w: &mut Writer, i: &Instance, shape: &Shape) {
    for x in &shape.ext {
        if let Some(p) = i.extended_properties.iter().find(|p| x.matches(&p.id)) {
            w.start("t:ExtendedProperty", &[]);
            x.write(w);
            w.leaf("t:Value", &p.value);
            w.end("t:ExtendedProperty");
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

// ---------------------------------------------------------------------------------------------
// Parsing (CreateItem, UpdateItem)
// ---------------------------------------------------------------------------------------------

/// A date-time as a request gives it: an instant (with `Z` or an offset) or a wall-clock time
/// to be placed in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTime {
    Instant(Timestamp),
    Local(civil::DateTime),
}

pub fn parse_time(s: &str) -> Option<RawTime> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(RawTime::Instant(ts));
    }
    t.parse::<civil::DateTime>().ok().map(RawTime::Local)
}

/// Every property a `t:CalendarItem` of a request may carry (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct ItemInput {
    pub subject: Option<String>,
    pub body: Option<Body>,
    pub sensitivity: Option<Sensitivity>,
    pub importance: Option<Importance>,
    pub categories: Option<Vec<String>>,
    pub reminder_is_set: Option<bool>,
    pub reminder_minutes: Option<i32>,
    pub ext: Vec<(ExtUri, String)>,
    pub uid: Option<String>,
    pub start: Option<RawTime>,
    pub end: Option<RawTime>,
    pub is_all_day: Option<bool>,
    pub show_as: Option<ShowAs>,
    pub location: Option<String>,
    pub required: Option<Vec<Attendee>>,
    pub optional: Option<Vec<Attendee>>,
    pub resources: Option<Vec<Attendee>>,
    pub recurrence: Option<Recurrence>,
    pub start_tz: Option<String>,
    pub end_tz: Option<String>,
    pub response_requested: Option<bool>,
    pub allow_new_time_proposal: Option<bool>,
    pub is_online_meeting: Option<bool>,
    /// Elements present that the simulator does not model, or that are read-only.
    pub ignored: Vec<String>,
}

fn parse_bool(e: &Element) -> Result<bool, EwsError> {
    match e.text() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(EwsError::schema(format!(
            "The '{}' element is invalid - The value '{other}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:boolean'.",
            e.name
        ))),
    }
}

fn invalid_value(e: &Element) -> EwsError {
    EwsError::schema(format!(
        "The '{}' element is invalid - The value '{}' is invalid according to its datatype.",
        e.name,
        e.text()
    ))
}

fn parse_attendees(e: &Element, kind: AttendeeType) -> Vec<Attendee> {
    e.children_named("Attendee")
        .filter_map(|a| {
            let m = a.child("Mailbox")?;
            let address = m.child_text("EmailAddress").unwrap_or("").to_owned();
            if address.is_empty() {
                return None;
            }
            Some(Attendee {
                email: EmailAddress {
                    name: m.child_text("Name").unwrap_or("").to_owned(),
                    address,
                },
                kind,
                response: a
                    .child_text("ResponseType")
                    .map(parse_response)
                    .unwrap_or_default(),
                response_time: None,
            })
        })
        .collect()
}

/// The zone id of a `StartTimeZone`/`EndTimeZone`/`MeetingTimeZone` element (`Id`
/// attribute, or 2007's `TimeZoneName`), checked against the Windows zone table.
fn parse_zone_elem(e: &Element) -> Result<Option<String>, EwsError> {
    let id = e
        .attr("Id")
        .or_else(|| e.attr("TimeZoneName"))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(id) = id else {
        return Ok(None);
    };
    if id.eq_ignore_ascii_case("utc") || calgate_tz::windows_to_iana(id).is_some() {
        return Ok(Some(id.to_owned()));
    }
    Err(EwsError::new(
        "ErrorTimeZone",
        format!("The specified time zone isn't valid. Time zone: '{id}'."),
    ))
}

pub fn parse_recurrence(e: &Element) -> Result<Recurrence, EwsError> {
    let invalid = || {
        EwsError::new(
            "ErrorCalendarInvalidRecurrence",
            "The recurrence pattern is invalid.",
        )
    };
    let mut pattern: Option<Pattern> = None;
    let mut range: Option<Range> = None;
    for c in &e.children {
        let interval = || -> Result<u32, EwsError> {
            match c.child_text("Interval") {
                Some(t) => t
                    .parse::<u32>()
                    .ok()
                    .filter(|i| *i >= 1)
                    .ok_or_else(invalid),
                None => Ok(1),
            }
        };
        let month = || -> Result<u8, EwsError> {
            let m = c.child_text("Month").ok_or_else(invalid)?;
            MONTHS
                .iter()
                .position(|n| *n == m)
                .and_then(|i| u8::try_from(i + 1).ok())
                .ok_or_else(invalid)
        };
        let day_of_month = || -> Result<u8, EwsError> {
            c.child_text("DayOfMonth")
                .and_then(|t| t.parse::<u8>().ok())
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(invalid)
        };
        let days = || parse_days(c.child_text("DaysOfWeek").unwrap_or(""));
        let index = || {
            c.child_text("DayOfWeekIndex")
                .and_then(parse_index)
                .ok_or_else(invalid)
        };
        let start_date = || {
            c.child_text("StartDate")
                .and_then(parse_date)
                .ok_or_else(invalid)
        };
        match c.name.as_str() {
            "DailyRecurrence" => pattern = Some(Pattern::new(PatternType::Daily, interval()?)),
            "WeeklyRecurrence" => {
                let mut p = Pattern::new(PatternType::Weekly, interval()?);
                p.days_of_week = days()?;
                if p.days_of_week.is_empty() {
                    return Err(invalid());
                }
                if let Some(f) = c.child_text("FirstDayOfWeek") {
                    p.first_day_of_week = DAY_NAMES
                        .iter()
                        .find(|(n, _)| *n == f)
                        .map(|(_, d)| *d)
                        .ok_or_else(invalid)?;
                }
                pattern = Some(p);
            }
            "AbsoluteMonthlyRecurrence" => {
                let mut p = Pattern::new(PatternType::AbsoluteMonthly, interval()?);
                p.day_of_month = day_of_month()?;
                pattern = Some(p);
            }
            "RelativeMonthlyRecurrence" => {
                let mut p = Pattern::new(PatternType::RelativeMonthly, interval()?);
                p.days_of_week = days()?;
                p.index = index()?;
                pattern = Some(p);
            }
            "AbsoluteYearlyRecurrence" => {
                let mut p = Pattern::new(PatternType::AbsoluteYearly, 1);
                p.day_of_month = day_of_month()?;
                p.month = month()?;
                pattern = Some(p);
            }
            "RelativeYearlyRecurrence" => {
                let mut p = Pattern::new(PatternType::RelativeYearly, 1);
                p.days_of_week = days()?;
                p.index = index()?;
                p.month = month()?;
                pattern = Some(p);
            }
            "NoEndRecurrence" => {
                range = Some(Range {
                    start_date: start_date()?,
                    kind: RangeKind::NoEnd,
                    recurrence_time_zone: None,
                });
            }
            "EndDateRecurrence" => {
                let end = c
                    .child_text("EndDate")
                    .and_then(parse_date)
                    .ok_or_else(invalid)?;
                range = Some(Range {
                    start_date: start_date()?,
                    kind: RangeKind::EndDate(end),
                    recurrence_time_zone: None,
                });
            }
            "NumberedRecurrence" => {
                let n = c
                    .child_text("NumberOfOccurrences")
                    .and_then(|t| t.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(invalid)?;
                range = Some(Range {
                    start_date: start_date()?,
                    kind: RangeKind::Numbered(n),
                    recurrence_time_zone: None,
                });
            }
            _ => {}
        }
    }
    let rec = Recurrence {
        pattern: pattern.ok_or_else(invalid)?,
        range: range.ok_or_else(invalid)?,
    };
    rec.validate().map_err(|_| invalid())?;
    Ok(rec)
}

/// Reads the properties of a request's `t:CalendarItem`.
pub fn parse_item(e: &Element) -> Result<ItemInput, EwsError> {
    let mut x = ItemInput::default();
    for c in &e.children {
        match c.name.as_str() {
            "Subject" => x.subject = Some(c.text.clone()),
            "Body" => {
                let ct = match c.attr("BodyType") {
                    Some("HTML") => "html",
                    Some("Text") | None => "text",
                    Some(_) => return Err(invalid_value(c)),
                };
                x.body = Some(Body {
                    content_type: ct.into(),
                    content: c.text.clone(),
                });
            }
            "Sensitivity" => {
                x.sensitivity = Some(parse_sensitivity(c.text()).ok_or_else(|| invalid_value(c))?)
            }
            "Importance" => {
                x.importance = Some(parse_importance(c.text()).ok_or_else(|| invalid_value(c))?)
            }
            "Categories" => {
                x.categories = Some(
                    c.children_named("String")
                        .map(|s| s.text().to_owned())
                        .collect(),
                )
            }
            "ReminderIsSet" => x.reminder_is_set = Some(parse_bool(c)?),
            "ReminderMinutesBeforeStart" => {
                x.reminder_minutes = Some(c.text().parse().map_err(|_| invalid_value(c))?)
            }
            "ExtendedProperty" => {
                let uri = c
                    .child("ExtendedFieldURI")
                    .ok_or_else(|| EwsError::schema("ExtendedFieldURI is missing."))?;
                let uri = ExtUri::parse(uri)?;
                let value = c.child("Value").map(|v| v.text.clone()).ok_or_else(|| {
                    EwsError::new(
                        "ErrorInvalidExtendedPropertyValue",
                        "The extended property value is invalid.",
                    )
                })?;
                x.ext.push((uri, value));
            }
            "UID" => x.uid = Some(c.text().to_owned()),
            "Start" => x.start = Some(parse_time(c.text()).ok_or_else(|| invalid_value(c))?),
            "End" => x.end = Some(parse_time(c.text()).ok_or_else(|| invalid_value(c))?),
            "IsAllDayEvent" => x.is_all_day = Some(parse_bool(c)?),
            "LegacyFreeBusyStatus" => {
                x.show_as = Some(parse_show_as(c.text()).ok_or_else(|| invalid_value(c))?)
            }
            "Location" => x.location = Some(c.text.clone()),
            "RequiredAttendees" => x.required = Some(parse_attendees(c, AttendeeType::Required)),
            "OptionalAttendees" => x.optional = Some(parse_attendees(c, AttendeeType::Optional)),
            "Resources" => x.resources = Some(parse_attendees(c, AttendeeType::Resource)),
            "Recurrence" => x.recurrence = Some(parse_recurrence(c)?),
            "StartTimeZone" => x.start_tz = parse_zone_elem(c)?,
            "EndTimeZone" => x.end_tz = parse_zone_elem(c)?,
            "MeetingTimeZone" => {
                let z = parse_zone_elem(c)?;
                if x.start_tz.is_none() {
                    x.start_tz = z.clone();
                }
                if x.end_tz.is_none() {
                    x.end_tz = z;
                }
            }
            "StartTimeZoneId" => x.start_tz = Some(c.text().to_owned()).filter(|s| !s.is_empty()),
            "EndTimeZoneId" => x.end_tz = Some(c.text().to_owned()).filter(|s| !s.is_empty()),
            "IsResponseRequested" => x.response_requested = Some(parse_bool(c)?),
            "AllowNewTimeProposal" => x.allow_new_time_proposal = Some(parse_bool(c)?),
            "IsOnlineMeeting" => x.is_online_meeting = Some(parse_bool(c)?),
            other => x.ignored.push(other.to_owned()),
        }
    }
    Ok(x)
}

/// Defaults of a new item (Exchange's for an appointment made through EWS).
pub fn new_event_data(organizer: EmailAddress) -> EventData {
    EventData {
        subject: String::new(),
        body: Body {
            content_type: "text".into(),
            content: String::new(),
        },
        start: crate::model::LocalDateTime {
            date_time: civil::DateTime::default(),
            time_zone: "UTC".into(),
        },
        end: crate::model::LocalDateTime {
            date_time: civil::DateTime::default(),
            time_zone: "UTC".into(),
        },
        is_all_day: false,
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
        location: Location {
            location_type: "default".into(),
            ..Location::default()
        },
        locations: Vec::new(),
        attendees: Vec::new(),
        organizer,
        categories: Vec::new(),
        is_reminder_on: true,
        reminder_minutes_before_start: 15,
        is_online_meeting: false,
        response_requested: true,
        allow_new_time_proposals: true,
        hide_attendees: false,
        is_cancelled: false,
    }
}

/// Resolves a request's date-time: instants as they are; wall-clock times in the request's
/// `TimeZoneContext`, else in `zone` (the item's start zone), else UTC.
pub fn resolve_time(t: RawTime, tz_context: Option<&str>, zone: &str) -> Option<Timestamp> {
    match t {
        RawTime::Instant(ts) => Some(ts),
        RawTime::Local(dt) => {
            let name = tz_context.unwrap_or(zone);
            let tz = expand::resolve_tz(name).unwrap_or(TimeZone::UTC);
            dt.to_zoned(tz).ok().map(|z| z.timestamp())
        }
    }
}

/// Applies `x` to `data` (in place). `tz_context` is the request's `TimeZoneContext` id.
/// Returns the new extended properties to merge.
pub fn apply_input(
    data: &mut EventData,
    x: &ItemInput,
    tz_context: Option<&str>,
) -> Result<Vec<ExtendedProperty>, EwsError> {
    if let Some(s) = &x.subject {
        data.subject = s.clone();
    }
    if let Some(b) = &x.body {
        data.body = b.clone();
    }
    if let Some(s) = x.sensitivity {
        data.sensitivity = s;
    }
    if let Some(i) = x.importance {
        data.importance = i;
    }
    if let Some(c) = &x.categories {
        data.categories = c.clone();
    }
    if let Some(r) = x.reminder_is_set {
        data.is_reminder_on = r;
    }
    if let Some(m) = x.reminder_minutes {
        data.reminder_minutes_before_start = m;
    }
    if let Some(s) = x.show_as {
        data.show_as = s;
    }
    if let Some(l) = &x.location {
        data.location = Location {
            display_name: l.clone(),
            location_type: "default".into(),
            ..Location::default()
        };
        data.locations.clear();
    }
    for (list, kind) in [
        (&x.required, AttendeeType::Required),
        (&x.optional, AttendeeType::Optional),
        (&x.resources, AttendeeType::Resource),
    ] {
        if let Some(l) = list {
            data.attendees.retain(|a| a.kind != kind);
            data.attendees.extend(l.iter().cloned());
        }
    }
    if let Some(b) = x.response_requested {
        data.response_requested = b;
    }
    if let Some(b) = x.allow_new_time_proposal {
        data.allow_new_time_proposals = b;
    }
    if let Some(b) = x.is_online_meeting {
        data.is_online_meeting = b;
    }
    // Times: keep instants, re-place them in the (possibly new) zones.
    let old_start = expand::to_timestamp(&data.start);
    let old_end = expand::to_timestamp(&data.end);
    let start_zone = x
        .start_tz
        .clone()
        .unwrap_or_else(|| data.start.time_zone.clone());
    let end_zone = x
        .end_tz
        .clone()
        .or_else(|| x.start_tz.clone())
        .unwrap_or_else(|| data.end.time_zone.clone());
    let start = match x.start {
        Some(t) => resolve_time(t, tz_context, &start_zone),
        None => old_start,
    };
    let end = match x.end {
        Some(t) => resolve_time(t, tz_context, &end_zone),
        None => old_end,
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Err(EwsError::new(
            "ErrorCalendarInvalidTimeZone",
            "The time zone of the item is invalid.",
        ));
    };
    if end < start {
        return Err(EwsError::new(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate",
        ));
    }
    if let Some(a) = x.is_all_day {
        data.is_all_day = a;
    }
    if data.is_all_day {
        // All-day items run from midnight to midnight in the start zone.
        let tz = expand::resolve_tz(&start_zone).unwrap_or(TimeZone::UTC);
        let sd = start.to_zoned(tz.clone()).date();
        let ez = end.to_zoned(tz);
        let mut ed = ez.date();
        if ez.time() != civil::Time::midnight() {
            ed = ed.tomorrow().unwrap_or(ed);
        }
        if ed <= sd {
            ed = sd.tomorrow().unwrap_or(sd);
        }
        data.start = crate::model::LocalDateTime {
            date_time: sd.to_datetime(civil::Time::midnight()),
            time_zone: start_zone.clone(),
        };
        data.end = crate::model::LocalDateTime {
            date_time: ed.to_datetime(civil::Time::midnight()),
            time_zone: start_zone,
        };
    } else {
        data.start = expand::to_local(start, &start_zone);
        data.end = expand::to_local(end, &end_zone);
    }
    Ok(x.ext
        .iter()
        .map(|(u, v)| ExtendedProperty {
            id: u.graph_id(),
            value: v.clone(),
        })
        .collect())
}

/// Replaces or adds extended properties (same property: case-insensitive id match).
pub fn merge_ext(dst: &mut Vec<ExtendedProperty>, src: Vec<ExtendedProperty>) {
    for p in src {
        let uri = ExtUri::from_graph_id(&p.id);
        let same = |d: &ExtendedProperty| match &uri {
            Some(u) => u.matches(&d.id),
            None => d.id.eq_ignore_ascii_case(&p.id),
        };
        match dst.iter_mut().find(|d| same(d)) {
            Some(d) => d.value = p.value,
            None => dst.push(p),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn extended_uris_map_to_graph_ids_and_back() {
        let e = super::super::xml::parse(
            br#"<ExtendedFieldURI PropertySetId="C11FF724-AA03-4555-9952-8FA248A11C3E" PropertyName="calgate-origin" PropertyType="String"/>"#,
        )
        .unwrap();
        let u = ExtUri::parse(&e).unwrap();
        assert_eq!(
            u.graph_id(),
            "String {c11ff724-aa03-4555-9952-8fa248a11c3e} Name calgate-origin"
        );
        assert!(u.matches("String {C11FF724-AA03-4555-9952-8FA248A11C3E} Name calgate-origin"));
        assert!(!u.matches("String {C11FF724-AA03-4555-9952-8FA248A11C3E} Name other"));
        let t = ExtUri::from_graph_id("String 0x001A").unwrap();
        assert_eq!(t.tag, Some(0x1a));
    }

    #[test]
    fn durations_are_iso8601() {
        let s: Timestamp = "2024-01-01T10:00:00Z".parse().unwrap();
        let e: Timestamp = "2024-01-01T11:30:00Z".parse().unwrap();
        assert_eq!(duration_text(s, e), "PT1H30M");
        let e2: Timestamp = "2024-01-02T10:00:00Z".parse().unwrap();
        assert_eq!(duration_text(s, e2), "P1D");
        assert_eq!(duration_text(s, s), "PT0S");
    }

    #[test]
    fn day_lists_use_ews_aggregates() {
        let wd = parse_days("Weekday").unwrap();
        assert_eq!(wd.len(), 5);
        assert_eq!(days_text(&wd), "Weekday");
        assert!(parse_days("Funday").is_err());
    }
}
