//! Exchange Server through EWS as a [`CalendarBackend`].
//!
//! EWS has no per-instance delta like Graph's `calendarView/delta`: `SyncFolderItems` reports
//! changed *items* (a series master, a single event) and a calendar view lists instances. So a
//! round here is:
//! - **start** (first sync, full resync): take a `SyncState` (from the round that asked for the
//!   relist, else by syncing the folder from scratch, ids only), then page through a
//!   `CalendarView` of the window; the cursor is that `SyncState`;
//! - **incremental**: `SyncFolderItems` from the cursor; nothing changed → done, the new state
//!   is the cursor; something changed → [`PageNext::Relist`]: the engine lists the window again
//!   into a shadow set and commits it atomically, so that occurrences of an edited or deleted
//!   series are replaced or removed without calgate guessing their ids, and nothing vanishes
//!   meanwhile. `ErrorInvalidSyncStateData` is `ResyncRequired`, like Graph's 410.
//!
//! Links are calgate's own opaque strings: `ews1|view|START|END|NEXT|STATE` while listing,
//! `ews1|sync|STATE` as a cursor, `ews1|relist|STATE` to start a relist.

use async_trait::async_trait;
use calgate_core::{CredentialId, FailureKind};
use calgate_ews::{CalendarItem, EwsClient, ItemWrite, RecurrenceXml};
use jiff::Timestamp;

use super::{
    BackendError, CalendarBackend, Change, ChangesPage, ChangesRequest, EventWrite, PageNext,
    Written,
};

/// calgate's property set and names, the same as on Graph (Graph's
/// `String {GUID} Name calgateBooking` is EWS's ExtendedFieldURI with that set and name).
pub const PROPERTY_SET: &str = "5b8a3c1e-7d4f-4e2a-9c6b-ca19a7e00001";
pub const MARKER_NAME: &str = "calgateBooking";
pub const OWNER_NAME: &str = "calgateOwner";

/// The most SyncFolderItems calls one state refresh may take (512 items each).
const MAX_SYNC_CALLS: usize = 10_000;

impl From<calgate_ews::Error> for BackendError {
    fn from(e: calgate_ews::Error) -> BackendError {
        BackendError {
            kind: e.kind,
            code: e.code.clone(),
            message: e.message,
            reconnect_needed: false,
        }
    }
}

fn bad_link() -> BackendError {
    BackendError::new(
        FailureKind::InvalidData,
        "the stored EWS cursor is not one calgate wrote (the connection changed kind?): a full resync follows",
    )
}

/// An EWS client as a backend.
#[derive(Debug, Clone)]
pub struct EwsBackend {
    client: EwsClient,
}

impl EwsBackend {
    pub fn new(client: EwsClient) -> EwsBackend {
        EwsBackend { client }
    }

    pub fn client(&self) -> &EwsClient {
        &self.client
    }

    /// The folder's current SyncState, walking SyncFolderItems from `from` to its end.
    /// Returns the state and whether anything changed on the way.
    async fn catch_up(
        &self,
        mailbox: &str,
        from: Option<String>,
    ) -> Result<(String, bool), BackendError> {
        let mut state = from;
        let mut changed = false;
        for _ in 0..MAX_SYNC_CALLS {
            let page = self
                .client
                .sync_items(mailbox, state.as_deref(), calgate_ews::MAX_SYNC_CHANGES)
                .await?;
            changed |= !page.changes.is_empty();
            state = Some(page.state);
            if page.includes_last {
                return Ok((state.unwrap_or_default(), changed));
            }
        }
        Err(BackendError::new(
            FailureKind::InvalidData,
            format!(
                "Exchange kept reporting changes of {mailbox} after {MAX_SYNC_CALLS} SyncFolderItems calls"
            ),
        ))
    }

    /// One page of the listing of `[next, end)`.
    async fn view_page(
        &self,
        mailbox: &str,
        (start, end, next): (Timestamp, Timestamp, Timestamp),
        state: &str,
        page_size: u32,
    ) -> Result<ChangesPage, BackendError> {
        let size = page_size.clamp(1, calgate_ews::MAX_PAGE);
        let (items, last) = self.client.calendar_view(mailbox, next, end, size).await?;
        let mut changes = Vec::with_capacity(items.len());
        let mut latest = next;
        for item in &items {
            if item.kind.as_deref() == Some("RecurringMaster") {
                continue;
            }
            let instance = item.to_instance(mailbox)?;
            latest = latest.max(instance.when.start);
            changes.push(Change::Upsert(Box::new(instance)));
        }
        let next_page = if last {
            PageNext::Done(format!("ews1|sync|{state}"))
        } else {
            // The next page starts at the last start seen: items that overlap it come again
            // (upserts are idempotent). A page whose items all start where it began cannot move
            // on: Exchange's page limit is below the items at one instant.
            if latest <= next {
                return Err(BackendError::new(
                    FailureKind::InvalidData,
                    format!(
                        "more than {size} events of {mailbox} start at {next}: calgate cannot page past them"
                    ),
                ));
            }
            PageNext::More(format!("ews1|view|{start}|{end}|{latest}|{state}"))
        };
        Ok(ChangesPage {
            changes,
            next: next_page,
        })
    }
}

fn parse_ts(s: &str) -> Result<Timestamp, BackendError> {
    s.parse().map_err(|_| bad_link())
}

/// Graph's RRULE-based recurrence as EWS's `<t:Recurrence>` parts.
fn recurrence_xml(rrule: &str, when: &calgate_core::When) -> Result<RecurrenceXml, BackendError> {
    use calgate_recurrence::{DayOfWeek, PatternType, RangeKind};
    let r = super::booking_recurrence(rrule, when)?;
    let p = &r.pattern;
    let day = |d: DayOfWeek| {
        let w: jiff::civil::Weekday = d.into();
        format!("{w:?}")
    };
    let days = || {
        p.days_of_week
            .iter()
            .map(|d| day(*d))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Relative patterns take one day (or Day / Weekday / WeekendDay).
    let one_day = || -> Result<String, BackendError> {
        let mut set: Vec<DayOfWeek> = p.days_of_week.clone();
        set.sort_by_key(|d| d.sunday_zero_offset());
        set.dedup();
        let offs: Vec<i8> = set.iter().map(|d| d.sunday_zero_offset()).collect();
        Ok(match offs.as_slice() {
            [_] => day(set[0]),
            [1, 2, 3, 4, 5] => "Weekday".into(),
            [0, 6] => "WeekendDay".into(),
            [0, 1, 2, 3, 4, 5, 6] => "Day".into(),
            _ => {
                return Err(BackendError::new(
                    FailureKind::Fatal,
                    "EWS cannot express this relative recurrence (several days that are not all days, weekdays or weekend days)",
                ));
            }
        })
    };
    let index = match p.index.to_setpos() {
        1 => "First",
        2 => "Second",
        3 => "Third",
        4 => "Fourth",
        _ => "Last",
    };
    let month = || {
        [
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
        ]
        .get(usize::from(p.month.max(1)) - 1)
        .copied()
        .unwrap_or("January")
        .to_owned()
    };
    let interval = p.interval.to_string();
    let pattern: (&'static str, Vec<(&'static str, String)>) = match p.kind {
        PatternType::Daily => ("DailyRecurrence", vec![("Interval", interval)]),
        PatternType::Weekly => (
            "WeeklyRecurrence",
            vec![
                ("Interval", interval),
                ("DaysOfWeek", days()),
                ("FirstDayOfWeek", day(p.first_day_of_week)),
            ],
        ),
        PatternType::AbsoluteMonthly => (
            "AbsoluteMonthlyRecurrence",
            vec![
                ("Interval", interval),
                ("DayOfMonth", p.day_of_month.to_string()),
            ],
        ),
        PatternType::RelativeMonthly => (
            "RelativeMonthlyRecurrence",
            vec![
                ("Interval", interval),
                ("DaysOfWeek", one_day()?),
                ("DayOfWeekIndex", index.into()),
            ],
        ),
        PatternType::AbsoluteYearly => (
            "AbsoluteYearlyRecurrence",
            vec![
                ("DayOfMonth", p.day_of_month.to_string()),
                ("Month", month()),
            ],
        ),
        PatternType::RelativeYearly => (
            "RelativeYearlyRecurrence",
            vec![
                ("DaysOfWeek", one_day()?),
                ("DayOfWeekIndex", index.into()),
                ("Month", month()),
            ],
        ),
    };
    let start = ("StartDate", r.range.start_date.to_string());
    let range = match r.range.kind {
        RangeKind::NoEnd => ("NoEndRecurrence", vec![start]),
        RangeKind::EndDate(d) => ("EndDateRecurrence", vec![start, ("EndDate", d.to_string())]),
        RangeKind::Numbered(n) => (
            "NumberedRecurrence",
            vec![start, ("NumberOfOccurrences", n.to_string())],
        ),
    };
    Ok(RecurrenceXml { pattern, range })
}

fn item_write(e: &EventWrite) -> Result<ItemWrite, BackendError> {
    Ok(ItemWrite {
        subject: e.subject.clone(),
        body: e.body.clone(),
        sensitivity: e.sensitivity,
        start: e.when.start,
        end: e.when.end,
        all_day: e.when.all_day.is_some(),
        show_as: e.show_as,
        location: e.location.clone(),
        attendees: e.attendees.clone(),
        zone: calgate_tz::iana_to_windows(&e.when.time_zone)
            .unwrap_or("UTC")
            .to_owned(),
        properties: vec![
            (PROPERTY_SET.into(), MARKER_NAME.into(), e.marker.clone()),
            (
                PROPERTY_SET.into(),
                OWNER_NAME.into(),
                super::graph::OWNER_VALUE.into(),
            ),
        ],
        recurrence: e
            .rrule
            .as_deref()
            .map(|r| recurrence_xml(r, &e.when))
            .transpose()?,
    })
}

fn found(item: CalendarItem) -> Option<Written> {
    let id = item.id.clone()?;
    Some(Written {
        marker: item.property(MARKER_NAME).map(str::to_owned),
        exchange_id: id.id,
        ical_uid: item.uid,
        web_link: None,
        change_key: id.change_key,
    })
}

#[async_trait]
impl CalendarBackend for EwsBackend {
    async fn sign_in(&self) -> Result<(), BackendError> {
        // EWS has no token: one cheap authenticated request tells whether the account works.
        match self.client.room_lists().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind, FailureKind::Authentication | FailureKind::Config) => {
                Err(e.into())
            }
            // Anything else (no room lists, a permission on the directory) is for each
            // mailbox's own round to find out.
            Err(_) => Ok(()),
        }
    }

    async fn changes(
        &self,
        mailbox: &str,
        request: ChangesRequest,
    ) -> Result<ChangesPage, BackendError> {
        match request {
            ChangesRequest::Start {
                window,
                page_size,
                resume,
            } => {
                let state = match resume
                    .as_deref()
                    .and_then(|r| r.strip_prefix("ews1|relist|"))
                {
                    Some(s) => s.to_owned(),
                    None => self.catch_up(mailbox, None).await?.0,
                };
                self.view_page(
                    mailbox,
                    (window.start, window.end, window.start),
                    &state,
                    page_size,
                )
                .await
            }
            ChangesRequest::Continue { link, page_size } => {
                let mut parts = link.splitn(6, '|');
                if parts.next() != Some("ews1") {
                    return Err(bad_link());
                }
                match parts.next() {
                    Some("view") => {
                        let s = parse_ts(parts.next().ok_or_else(bad_link)?)?;
                        let e = parse_ts(parts.next().ok_or_else(bad_link)?)?;
                        let n = parse_ts(parts.next().ok_or_else(bad_link)?)?;
                        let state = parts.next().ok_or_else(bad_link)?;
                        self.view_page(mailbox, (s, e, n), state, page_size).await
                    }
                    Some("sync") => {
                        let state = parts
                            .next()
                            .filter(|s| !s.is_empty())
                            .ok_or_else(bad_link)?;
                        let (state, changed) =
                            self.catch_up(mailbox, Some(state.to_owned())).await?;
                        Ok(ChangesPage {
                            changes: Vec::new(),
                            next: if changed {
                                PageNext::Relist(format!("ews1|relist|{state}"))
                            } else {
                                PageNext::Done(format!("ews1|sync|{state}"))
                            },
                        })
                    }
                    _ => Err(bad_link()),
                }
            }
        }
    }

    fn expired_credentials(&self) -> Vec<CredentialId> {
        Vec::new()
    }

    async fn find_pushed(&self, mailbox: &str, marker: &str) -> Result<Vec<Written>, BackendError> {
        let items = self
            .client
            .find_by_property(mailbox, PROPERTY_SET, MARKER_NAME, marker, 100)
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|mut i| {
                if i.property(MARKER_NAME).is_none() {
                    i.extended.push((MARKER_NAME.into(), marker.into()));
                }
                found(i)
            })
            .collect())
    }

    async fn find_all_pushed(
        &self,
        mailbox: &str,
        limit: usize,
    ) -> Result<Vec<Written>, BackendError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let items = self
            .client
            .find_by_property(
                mailbox,
                PROPERTY_SET,
                OWNER_NAME,
                super::graph::OWNER_VALUE,
                limit,
            )
            .await?;
        let ids: Vec<String> = items
            .iter()
            .filter_map(|i| i.id.as_ref().map(|x| x.id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Read the markers back (FindItem's restriction property is the owner's).
        let read = self
            .client
            .get_items(mailbox, &ids, &[], &[(PROPERTY_SET, MARKER_NAME)])
            .await?;
        Ok(read
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(found)
            .collect())
    }

    async fn create_event(
        &self,
        mailbox: &str,
        event: &EventWrite,
        _idempotency_key: &str,
    ) -> Result<Written, BackendError> {
        // EWS has no idempotency key: the push engine looks for the marker before it creates
        // again after an unknown outcome.
        let id = self
            .client
            .create_item(mailbox, &item_write(event)?, !event.attendees.is_empty())
            .await?;
        Ok(Written {
            exchange_id: id.id,
            marker: Some(event.marker.clone()),
            ical_uid: None,
            web_link: None,
            change_key: id.change_key,
        })
    }

    async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        event: &EventWrite,
    ) -> Result<Written, BackendError> {
        let new = self
            .client
            .update_item(
                mailbox,
                id,
                &item_write(event)?,
                !event.attendees.is_empty(),
            )
            .await?;
        Ok(Written {
            exchange_id: new.id,
            marker: Some(event.marker.clone()),
            ical_uid: None,
            web_link: None,
            change_key: new.change_key,
        })
    }

    async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        Ok(self.client.delete_item(mailbox, id).await?)
    }

    async fn responses(
        &self,
        mailbox: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, BackendError> {
        let _ = (mailbox, id);
        // Meeting responses through EWS are not read yet: the booking shows none.
        Ok(Vec::new())
    }

    async fn occurrences(
        &self,
        mailbox: &str,
        master_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, BackendError> {
        let master = self
            .client
            .get_items(mailbox, &[master_id.to_owned()], &[], &[])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                BackendError::new(FailureKind::InvalidData, "GetItem answered nothing")
            })??;
        let uid = master.uid.ok_or_else(|| {
            BackendError::new(
                FailureKind::InvalidData,
                format!("the series {master_id} has no UID"),
            )
        })?;
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let (items, last) = self
                .client
                .calendar_view(mailbox, next, to, calgate_ews::MAX_PAGE)
                .await?;
            let mut latest = next;
            for i in items {
                if let (Some(id), Some(start)) = (&i.id, i.start) {
                    latest = latest.max(start);
                    if i.uid.as_deref() == Some(uid.as_str())
                        && matches!(i.kind.as_deref(), Some("Occurrence" | "Exception"))
                        && !out.iter().any(|(x, _): &(String, Timestamp)| x == &id.id)
                    {
                        out.push((id.id.clone(), start));
                    }
                }
            }
            if last || latest <= next {
                return Ok(out);
            }
            next = latest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_and_relative_rrules_become_ews_patterns() {
        let when = calgate_core::When {
            start: "2026-12-07T08:00:00Z".parse().expect("ts"),
            end: "2026-12-07T09:00:00Z".parse().expect("ts"),
            time_zone: "Europe/Berlin".into(),
            all_day: None,
        };
        let r = recurrence_xml("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4", &when).expect("weekly");
        assert_eq!(r.pattern.0, "WeeklyRecurrence");
        assert!(
            r.pattern
                .1
                .contains(&("DaysOfWeek", "Monday Wednesday".into())),
            "{r:?}"
        );
        assert_eq!(r.range.0, "NumberedRecurrence");
        let r = recurrence_xml("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1", &when)
            .expect("relative");
        assert!(
            r.pattern.1.contains(&("DaysOfWeek", "Weekday".into())),
            "{r:?}"
        );
        assert!(
            r.pattern.1.contains(&("DayOfWeekIndex", "First".into())),
            "{r:?}"
        );
        assert!(recurrence_xml("FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1", &when).is_err());
    }
}
