//! EWS calendar items as calgate reads and writes them, and their conversion to calgate's
//! [`Instance`]. Only this crate knows EWS's XML.

use calgate_core::{Instance, InstanceType, Origin, Person, Sensitivity, ShowAs, When};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::Error;
use crate::xml::{Element, Writer};

/// An item id with its change key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

pub(crate) fn parse_item_id(el: &Element) -> Result<ItemId, Error> {
    let id = el
        .attr("Id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("Exchange sent an ItemId without an Id"))?;
    Ok(ItemId {
        id: id.to_owned(),
        change_key: el.attr("ChangeKey").map(str::to_owned),
    })
}

/// One change of a SyncFolderItems answer (masters and single items, not occurrences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    Create(ItemId),
    Update(ItemId),
    Delete(ItemId),
}

/// One SyncFolderItems answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// The state after these changes (opaque; the next call starts from it).
    pub state: String,
    /// No more changes after these.
    pub includes_last: bool,
    pub changes: Vec<SyncChange>,
}

/// An EWS `xs:dateTime`: with `Z` or an offset; without one, UTC (as Exchange sends them).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let dt: jiff::civil::DateTime = s.parse().ok()?;
    dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// A calendar item as FindItem / GetItem return it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarItem {
    pub id: Option<ItemId>,
    pub subject: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub all_day: bool,
    /// `LegacyFreeBusyStatus`: Free, Tentative, Busy, OOF, WorkingElsewhere, NoData.
    pub free_busy: Option<String>,
    pub sensitivity: Option<String>,
    pub location: Option<String>,
    pub organizer: Option<Person>,
    pub uid: Option<String>,
    /// `CalendarItemType`: Single, Occurrence, Exception, RecurringMaster.
    pub kind: Option<String>,
    pub cancelled: bool,
    /// The Windows zone id of `StartTimeZone`.
    pub start_zone: Option<String>,
    pub last_modified: Option<Timestamp>,
    /// Extended properties: (property name, value).
    pub extended: Vec<(String, String)>,
}

fn person(el: &Element) -> Option<Person> {
    let mb = el.child("Mailbox")?;
    let address = mb.text_of("EmailAddress").unwrap_or("").to_owned();
    let name = mb.text_of("Name").unwrap_or("").to_owned();
    (!address.is_empty() || !name.is_empty()).then_some(Person { name, address })
}

impl CalendarItem {
    pub fn parse(el: &Element) -> Result<CalendarItem, Error> {
        let time = |k: &str| -> Result<Option<Timestamp>, Error> {
            match el.text_of(k) {
                None => Ok(None),
                Some(t) => parse_time(t).map(Some).ok_or_else(|| {
                    Error::invalid(format!(
                        "Exchange sent a calendar item with {k} '{t}', not a date-time"
                    ))
                }),
            }
        };
        let flag = |k: &str| {
            el.text_of(k)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let text = |k: &str| el.text_of(k).map(str::to_owned);
        let extended = el
            .all("ExtendedProperty")
            .filter_map(|p| {
                let uri = p.child("ExtendedFieldURI")?;
                let name = uri
                    .attr("PropertyName")
                    .or_else(|| uri.attr("PropertyId"))?;
                Some((name.to_owned(), p.text_of("Value").unwrap_or("").to_owned()))
            })
            .collect();
        Ok(CalendarItem {
            id: el.child("ItemId").map(parse_item_id).transpose()?,
            subject: el.child("Subject").map(|s| s.text.clone()),
            start: time("Start")?,
            end: time("End")?,
            all_day: flag("IsAllDayEvent"),
            free_busy: text("LegacyFreeBusyStatus"),
            sensitivity: text("Sensitivity"),
            location: text("Location"),
            organizer: el.child("Organizer").and_then(person),
            uid: text("UID"),
            kind: text("CalendarItemType"),
            cancelled: flag("IsCancelled"),
            start_zone: el
                .child("StartTimeZone")
                .and_then(|z| z.attr("Id"))
                .map(str::to_owned)
                .or_else(|| text("StartTimeZoneId")),
            last_modified: time("LastModifiedTime")?,
            extended,
        })
    }

    /// The extended property `name`, when it was read.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.extended
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The item as one of `mailbox`'s instances. A recurring master is not an instance.
    pub fn to_instance(&self, mailbox: &str) -> Result<Instance, Error> {
        let id = self
            .id
            .as_ref()
            .ok_or_else(|| Error::invalid("Exchange sent a calendar item without an ItemId"))?;
        let bad =
            |why: &str| Error::invalid(format!("Exchange sent calendar item {} with {why}", id.id));
        let start = self.start.ok_or_else(|| bad("no Start"))?;
        let end = self.end.ok_or_else(|| bad("no End"))?;
        if end < start {
            return Err(bad("its End before its Start"));
        }
        let kind = match self.kind.as_deref().unwrap_or("Single") {
            "Single" => InstanceType::SingleInstance,
            "Occurrence" => InstanceType::Occurrence,
            "Exception" => InstanceType::Exception,
            "RecurringMaster" => {
                return Err(bad("type RecurringMaster where instances were expected"));
            }
            other => return Err(bad(&format!("an unknown CalendarItemType '{other}'"))),
        };
        let zone_name = self
            .start_zone
            .as_deref()
            .and_then(calgate_tz::to_iana)
            .unwrap_or("UTC");
        let zone = TimeZone::get(zone_name).unwrap_or(TimeZone::UTC);
        let all_day = if self.all_day {
            let d = |t: Timestamp| t.to_zoned(zone.clone()).date();
            Some((d(start), d(end)))
        } else {
            None
        };
        let show_as = match self.free_busy.as_deref() {
            Some("NoData") | None => ShowAs::Unknown,
            Some(s) => ShowAs::parse(s),
        };
        Ok(Instance {
            exchange_id: id.id.clone(),
            ical_uid: self.uid.clone(),
            mailbox: mailbox.to_owned(),
            kind,
            series_master_id: None,
            when: When {
                start,
                end,
                time_zone: zone_name.to_owned(),
                all_day,
            },
            show_as,
            sensitivity: self
                .sensitivity
                .as_deref()
                .map(Sensitivity::parse)
                .unwrap_or(Sensitivity::Normal),
            subject: self.subject.clone(),
            location: self.location.clone().filter(|l| !l.is_empty()),
            body_preview: None,
            organizer: self.organizer.clone(),
            attendees: Vec::new(),
            web_link: None,
            change_key: id.change_key.clone(),
            last_modified: self.last_modified,
            origin: Origin::Exchange,
            booking_id: None,
        })
    }
}

/// A calendar item as calgate writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    pub subject: String,
    pub body: Option<String>,
    pub sensitivity: Sensitivity,
    pub start: Timestamp,
    pub end: Timestamp,
    pub all_day: bool,
    pub show_as: ShowAs,
    pub location: Option<String>,
    pub attendees: Vec<Person>,
    /// Windows zone id of the item.
    pub zone: String,
    /// `(property set GUID, property name, value)` string properties.
    pub properties: Vec<(String, String, String)>,
    /// A `<t:Recurrence>` element's children, already written by [`RecurrenceXml`].
    pub recurrence: Option<RecurrenceXml>,
}

/// An EWS recurrence: the pattern element and the range element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceXml {
    /// e.g. `WeeklyRecurrence`, with its children as (name, text).
    pub pattern: (&'static str, Vec<(&'static str, String)>),
    /// e.g. `EndDateRecurrence`.
    pub range: (&'static str, Vec<(&'static str, String)>),
}

fn sensitivity(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "Normal",
        Sensitivity::Personal => "Personal",
        Sensitivity::Private => "Private",
        Sensitivity::Confidential => "Confidential",
    }
}

fn free_busy(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "Free",
        ShowAs::Tentative => "Tentative",
        ShowAs::Oof => "OOF",
        ShowAs::WorkingElsewhere => "WorkingElsewhere",
        ShowAs::Busy | ShowAs::Unknown => "Busy",
    }
}

fn time_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl RecurrenceXml {
    fn write(&self, w: &mut Writer) {
        w.open("t:Recurrence", &[]);
        for (name, children) in [&self.pattern, &self.range] {
            w.open(name_t(name), &[]);
            for (k, v) in children {
                w.leaf(name_t(k), v);
            }
            w.close();
        }
        w.close();
    }
}

/// The `t:`-prefixed constant for a known element name.
fn name_t(name: &str) -> &'static str {
    match name {
        "DailyRecurrence" => "t:DailyRecurrence",
        "WeeklyRecurrence" => "t:WeeklyRecurrence",
        "AbsoluteMonthlyRecurrence" => "t:AbsoluteMonthlyRecurrence",
        "RelativeMonthlyRecurrence" => "t:RelativeMonthlyRecurrence",
        "AbsoluteYearlyRecurrence" => "t:AbsoluteYearlyRecurrence",
        "RelativeYearlyRecurrence" => "t:RelativeYearlyRecurrence",
        "NoEndRecurrence" => "t:NoEndRecurrence",
        "EndDateRecurrence" => "t:EndDateRecurrence",
        "NumberedRecurrence" => "t:NumberedRecurrence",
        "Interval" => "t:Interval",
        "DaysOfWeek" => "t:DaysOfWeek",
        "FirstDayOfWeek" => "t:FirstDayOfWeek",
        "DayOfMonth" => "t:DayOfMonth",
        "DayOfWeekIndex" => "t:DayOfWeekIndex",
        "Month" => "t:Month",
        "StartDate" => "t:StartDate",
        "EndDate" => "t:EndDate",
        "NumberOfOccurrences" => "t:NumberOfOccurrences",
        _ => "t:Unknown",
    }
}

impl ItemWrite {
    fn extended(&self, w: &mut Writer) {
        for (set, name, value) in &self.properties {
            w.open("t:ExtendedProperty", &[]);
            w.empty(
                "t:ExtendedFieldURI",
                &[
                    ("PropertySetId", set),
                    ("PropertyName", name),
                    ("PropertyType", "String"),
                ],
            );
            w.leaf("t:Value", value);
            w.close();
        }
    }

    fn attendees(&self, w: &mut Writer) {
        w.open("t:RequiredAttendees", &[]);
        for p in &self.attendees {
            w.open("t:Attendee", &[])
                .open("t:Mailbox", &[])
                .leaf("t:Name", &p.name)
                .leaf("t:EmailAddress", &p.address)
                .close()
                .close();
        }
        w.close();
    }

    /// `<t:CalendarItem>` for CreateItem, its children in the schema's order.
    pub fn write(&self, w: &mut Writer) {
        w.open("t:CalendarItem", &[]);
        w.leaf("t:Subject", &self.subject);
        w.leaf("t:Sensitivity", sensitivity(self.sensitivity));
        if let Some(b) = &self.body {
            w.leaf_with("t:Body", &[("BodyType", "Text")], b);
        }
        self.extended(w);
        w.leaf("t:Start", &time_text(self.start));
        w.leaf("t:End", &time_text(self.end));
        w.leaf(
            "t:IsAllDayEvent",
            if self.all_day { "true" } else { "false" },
        );
        w.leaf("t:LegacyFreeBusyStatus", free_busy(self.show_as));
        if let Some(l) = &self.location {
            w.leaf("t:Location", l);
        }
        if !self.attendees.is_empty() {
            self.attendees(w);
        }
        if let Some(r) = &self.recurrence {
            r.write(w);
        }
        w.empty("t:StartTimeZone", &[("Id", &self.zone)]);
        w.empty("t:EndTimeZone", &[("Id", &self.zone)]);
        w.close();
    }

    /// `SetItemField` updates of every field calgate writes (UpdateItem).
    pub fn write_updates(&self, w: &mut Writer) {
        let set = |w: &mut Writer, uri: &str, inner: &dyn Fn(&mut Writer)| {
            w.open("t:SetItemField", &[]);
            w.empty("t:FieldURI", &[("FieldURI", uri)]);
            w.open("t:CalendarItem", &[]);
            inner(w);
            w.close().close();
        };
        set(w, "item:Subject", &|w| {
            w.leaf("t:Subject", &self.subject);
        });
        set(w, "item:Sensitivity", &|w| {
            w.leaf("t:Sensitivity", sensitivity(self.sensitivity));
        });
        set(w, "item:Body", &|w| {
            w.leaf_with(
                "t:Body",
                &[("BodyType", "Text")],
                self.body.as_deref().unwrap_or(""),
            );
        });
        set(w, "calendar:StartTimeZone", &|w| {
            w.empty("t:StartTimeZone", &[("Id", &self.zone)]);
        });
        set(w, "calendar:EndTimeZone", &|w| {
            w.empty("t:EndTimeZone", &[("Id", &self.zone)]);
        });
        set(w, "calendar:Start", &|w| {
            w.leaf("t:Start", &time_text(self.start));
        });
        set(w, "calendar:End", &|w| {
            w.leaf("t:End", &time_text(self.end));
        });
        set(w, "calendar:IsAllDayEvent", &|w| {
            w.leaf(
                "t:IsAllDayEvent",
                if self.all_day { "true" } else { "false" },
            );
        });
        set(w, "calendar:LegacyFreeBusyStatus", &|w| {
            w.leaf("t:LegacyFreeBusyStatus", free_busy(self.show_as));
        });
        set(w, "calendar:Location", &|w| {
            w.leaf("t:Location", self.location.as_deref().unwrap_or(""));
        });
        if !self.attendees.is_empty() {
            set(w, "calendar:RequiredAttendees", &|w| self.attendees(w));
        }
        if let Some(r) = &self.recurrence {
            set(w, "calendar:Recurrence", &|w| r.write(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occurrence_becomes_an_instance() {
        let el = Element::parse(
            r#"<t:CalendarItem xmlns:t="t"><t:ItemId Id="AAMk=" ChangeKey="DwAA"/><t:Subject>Board &amp; budget</t:Subject><t:Sensitivity>Private</t:Sensitivity><t:LastModifiedTime>2026-11-30T10:00:00Z</t:LastModifiedTime><t:Start>2026-12-07T08:00:00Z</t:Start><t:End>2026-12-07T09:00:00Z</t:End><t:IsAllDayEvent>false</t:IsAllDayEvent><t:LegacyFreeBusyStatus>OOF</t:LegacyFreeBusyStatus><t:Location>Room 1</t:Location><t:UID>040000</t:UID><t:CalendarItemType>Occurrence</t:CalendarItemType><t:Organizer><t:Mailbox><t:Name>Ann</t:Name><t:EmailAddress>ann@x.org</t:EmailAddress></t:Mailbox></t:Organizer><t:StartTimeZone Id="W. Europe Standard Time" Name="x"/></t:CalendarItem>"#,
        )
        .expect("xml");
        let i = CalendarItem::parse(&el)
            .expect("item")
            .to_instance("room@x.org")
            .expect("instance");
        assert_eq!(i.exchange_id, "AAMk=");
        assert_eq!(i.kind, InstanceType::Occurrence);
        assert_eq!(i.show_as, ShowAs::Oof);
        assert_eq!(i.sensitivity, Sensitivity::Private);
        assert_eq!(i.subject.as_deref(), Some("Board & budget"));
        assert_eq!(i.when.time_zone, "Europe/Berlin");
        assert_eq!(i.when.start.to_string(), "2026-12-07T08:00:00Z");
        assert_eq!(i.change_key.as_deref(), Some("DwAA"));
        assert_eq!(i.organizer.map(|p| p.address), Some("ann@x.org".into()));
    }

    #[test]
    fn all_day_dates_are_local_and_garbage_is_refused() {
        let el = Element::parse(
            r#"<CalendarItem><ItemId Id="A"/><Start>2026-12-06T23:00:00Z</Start><End>2026-12-07T23:00:00Z</End><IsAllDayEvent>true</IsAllDayEvent><StartTimeZone Id="W. Europe Standard Time"/></CalendarItem>"#,
        )
        .expect("xml");
        let i = CalendarItem::parse(&el)
            .expect("item")
            .to_instance("m")
            .expect("instance");
        let (s, e) = i.when.all_day.expect("all-day");
        assert_eq!(
            (s.to_string(), e.to_string()),
            ("2026-12-07".into(), "2026-12-08".into())
        );
        let bad = Element::parse(
            "<CalendarItem><ItemId Id=\"A\"/><Start>yesterday</Start></CalendarItem>",
        )
        .expect("xml");
        assert!(CalendarItem::parse(&bad).is_err());
        let master = Element::parse("<CalendarItem><ItemId Id=\"A\"/><Start>2026-12-06T23:00:00Z</Start><End>2026-12-06T23:00:00Z</End><CalendarItemType>RecurringMaster</CalendarItemType></CalendarItem>").expect("xml");
        assert!(
            CalendarItem::parse(&master)
                .expect("item")
                .to_instance("m")
                .is_err()
        );
        let backwards = Element::parse("<CalendarItem><ItemId Id=\"A\"/><Start>2026-12-07T00:00:00Z</Start><End>2026-12-06T23:00:00Z</End></CalendarItem>").expect("xml");
        assert!(
            CalendarItem::parse(&backwards)
                .expect("item")
                .to_instance("m")
                .is_err()
        );
    }

    #[test]
    fn written_items_escape_user_data_and_keep_the_schema_order() {
        let item = ItemWrite {
            subject: "</t:Subject><t:IsAllDayEvent>true".into(),
            body: Some("a < b".into()),
            sensitivity: Sensitivity::Normal,
            start: "2026-12-07T08:00:00Z".parse().expect("ts"),
            end: "2026-12-07T09:00:00Z".parse().expect("ts"),
            all_day: false,
            show_as: ShowAs::Busy,
            location: Some("Room \"1\"".into()),
            attendees: vec![],
            zone: "W. Europe Standard Time".into(),
            properties: vec![(
                "5b8a3c1e-7d4f-4e2a-9c6b-ca19a7e00001".into(),
                "calgateBooking".into(),
                "b-1&2".into(),
            )],
            recurrence: None,
        };
        let mut w = Writer::new();
        item.write(&mut w);
        let doc = w.finish();
        let el = Element::parse(&doc).expect("well-formed");
        let names: Vec<&str> = el.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Subject",
                "Sensitivity",
                "Body",
                "ExtendedProperty",
                "Start",
                "End",
                "IsAllDayEvent",
                "LegacyFreeBusyStatus",
                "Location",
                "StartTimeZone",
                "EndTimeZone"
            ]
        );
        assert_eq!(
            el.text_of("Subject"),
            Some("</t:Subject><t:IsAllDayEvent>true")
        );
        assert_eq!(
            el.at(&["ExtendedProperty", "Value"])
                .map(|v| v.text.as_str()),
            Some("b-1&2")
        );
    }
}
