//! Microsoft Graph as a [`CalendarBackend`]: `calendarView/delta` rounds through the graph
//! client, its errors classified into [`FailureKind`]s.

use async_trait::async_trait;
use calgate_core::{CredentialId, FailureKind};
use calgate_graph::{DeltaItem, DeltaNext, DeltaRequest, ErrorKind, GraphClient};

use super::{
    BackendError, CalendarBackend, Change, ChangesPage, ChangesRequest, EventWrite, PageNext,
    Written,
};

/// calgate's property set (a GUID of its own) and the single-value extended property that
/// marks every event calgate creates with its booking's external id.
pub const MARKER_PROPERTY: &str =
    "String {5b8a3c1e-7d4f-4e2a-9c6b-ca19a7e00001} Name calgateBooking";
/// The second property of every event calgate creates, always [`OWNER_VALUE`]: what
/// `calgate push purge` finds them all by (Graph filters a property by id *and* value).
pub const OWNER_PROPERTY: &str = "String {5b8a3c1e-7d4f-4e2a-9c6b-ca19a7e00001} Name calgateOwner";
pub const OWNER_VALUE: &str = "calgate";

/// Graph's `patternedRecurrence` for an RRULE whose first occurrence is `when` (checked when
/// the booking was accepted; an error here is a booking calgate can no longer write).
fn recurrence_json(
    rrule: &str,
    when: &calgate_core::When,
) -> Result<serde_json::Value, BackendError> {
    use calgate_recurrence::RangeKind;
    use serde_json::json;
    let r = super::booking_recurrence(rrule, when)?;
    let p = &r.pattern;
    let day = |d: calgate_recurrence::DayOfWeek| {
        let w: jiff::civil::Weekday = d.into();
        format!("{w:?}").to_lowercase()
    };
    let mut pattern = json!({
        "type": p.kind.as_str(),
        "interval": p.interval,
        "month": p.month,
        "dayOfMonth": p.day_of_month,
        "daysOfWeek": p.days_of_week.iter().map(|d| day(*d)).collect::<Vec<_>>(),
        "firstDayOfWeek": day(p.first_day_of_week),
        "index": match p.index.to_setpos() { 1 => "first", 2 => "second", 3 => "third", 4 => "fourth", _ => "last" },
    });
    if p.days_of_week.is_empty()
        && let Some(m) = pattern.as_object_mut()
    {
        m.remove("daysOfWeek");
    }
    let zone = calgate_tz::iana_to_windows(&when.time_zone).unwrap_or("UTC");
    let mut range = json!({
        "startDate": r.range.start_date.to_string(),
        "recurrenceTimeZone": zone,
    });
    if let Some(m) = range.as_object_mut() {
        match r.range.kind {
            RangeKind::EndDate(d) => {
                m.insert("type".into(), json!("endDate"));
                m.insert("endDate".into(), json!(d.to_string()));
            }
            RangeKind::Numbered(n) => {
                m.insert("type".into(), json!("numbered"));
                m.insert("numberOfOccurrences".into(), json!(n));
            }
            RangeKind::NoEnd => {
                m.insert("type".into(), json!("noEnd"));
            }
        }
    }
    Ok(json!({"pattern": pattern, "range": range}))
}

fn draft(e: &EventWrite) -> Result<calgate_graph::EventDraft, BackendError> {
    Ok(calgate_graph::EventDraft {
        recurrence: e
            .rrule
            .as_deref()
            .map(|r| recurrence_json(r, &e.when))
            .transpose()?,
        subject: Some(e.subject.clone()),
        body_text: e.body.clone(),
        start: e.when.start,
        end: e.when.end,
        time_zone: e.when.time_zone.clone(),
        all_day: e.when.all_day,
        show_as: e.show_as,
        sensitivity: e.sensitivity,
        location: e.location.clone(),
        attendees: e.attendees.clone(),
        extended_properties: vec![
            (MARKER_PROPERTY.to_owned(), e.marker.clone()),
            (OWNER_PROPERTY.to_owned(), OWNER_VALUE.to_owned()),
        ],
    })
}

/// A found event with calgate's marker, when the service sent it.
fn found_written(f: calgate_graph::FoundEvent) -> Written {
    let marker = f
        .properties
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(MARKER_PROPERTY))
        .map(|(_, v)| v.clone());
    Written {
        marker,
        ..written(f)
    }
}

fn written(f: calgate_graph::FoundEvent) -> Written {
    Written {
        marker: None,
        exchange_id: f.id,
        ical_uid: f.ical_uid,
        web_link: f.web_link,
        change_key: f.change_key,
    }
}

/// A Graph client (app-only, or a connected account's delegated one) as a backend.
#[derive(Debug, Clone)]
pub struct GraphBackend {
    client: GraphClient,
}

impl GraphBackend {
    pub fn new(client: GraphClient) -> GraphBackend {
        GraphBackend { client }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }
}

/// The failure class of a graph error.
pub fn failure_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::Retryable => FailureKind::Retryable,
        ErrorKind::Authentication => FailureKind::Authentication,
        ErrorKind::Permission => FailureKind::Permission,
        ErrorKind::NotFound => FailureKind::NotFound,
        ErrorKind::InvalidData => FailureKind::InvalidData,
        ErrorKind::ResyncRequired => FailureKind::ResyncRequired,
        ErrorKind::Fatal => FailureKind::Fatal,
    }
}

impl From<calgate_graph::Error> for BackendError {
    fn from(e: calgate_graph::Error) -> BackendError {
        BackendError {
            kind: failure_kind(e.kind),
            reconnect_needed: calgate_graph::is_reconnect_needed(&e),
            code: e.code.clone(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl CalendarBackend for GraphBackend {
    async fn sign_in(&self) -> Result<(), BackendError> {
        self.client.access_token().await?;
        Ok(())
    }

    async fn changes(
        &self,
        mailbox: &str,
        request: ChangesRequest,
    ) -> Result<ChangesPage, BackendError> {
        let request = match request {
            ChangesRequest::Start {
                window, page_size, ..
            } => DeltaRequest::Start {
                start: window.start,
                end: window.end,
                page_size,
            },
            ChangesRequest::Continue { link, page_size } => {
                DeltaRequest::FollowPaged { link, page_size }
            }
        };
        let page = self.client.delta(mailbox, request).await?;
        Ok(ChangesPage {
            changes: page
                .items
                .into_iter()
                .map(|i| match i {
                    DeltaItem::Upsert(instance) => Change::Upsert(instance),
                    DeltaItem::Removed { exchange_id, .. } => Change::Removed { exchange_id },
                })
                .collect(),
            next: match page.next {
                DeltaNext::NextLink(l) => PageNext::More(l),
                DeltaNext::DeltaLink(l) => PageNext::Done(l),
            },
        })
    }

    fn expired_credentials(&self) -> Vec<CredentialId> {
        self.client.expired_credentials()
    }

    async fn find_pushed(&self, mailbox: &str, marker: &str) -> Result<Vec<Written>, BackendError> {
        let found = self
            .client
            .find_by_property(mailbox, MARKER_PROPERTY, marker, &[], 100)
            .await?;
        Ok(found.into_iter().map(found_written).collect())
    }

    async fn find_all_pushed(
        &self,
        mailbox: &str,
        limit: usize,
    ) -> Result<Vec<Written>, BackendError> {
        let found = self
            .client
            .find_by_property(
                mailbox,
                OWNER_PROPERTY,
                OWNER_VALUE,
                &[MARKER_PROPERTY],
                limit,
            )
            .await?;
        Ok(found.into_iter().map(found_written).collect())
    }

    async fn create_event(
        &self,
        mailbox: &str,
        event: &EventWrite,
        idempotency_key: &str,
    ) -> Result<Written, BackendError> {
        Ok(written(
            self.client
                .create_any(mailbox, &draft(event)?, idempotency_key)
                .await?,
        ))
    }

    async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        event: &EventWrite,
    ) -> Result<Written, BackendError> {
        Ok(written(
            self.client.update_any(mailbox, id, &draft(event)?).await?,
        ))
    }

    async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        Ok(self.client.delete_event(mailbox, id).await?)
    }

    async fn subscribe(
        &self,
        mailbox: &str,
        request: &super::Subscribe,
    ) -> Result<super::Subscribed, BackendError> {
        let s = self
            .client
            .create_subscription(
                mailbox,
                &calgate_graph::SubscriptionRequest {
                    notification_url: request.notification_url.clone(),
                    lifecycle_url: request.lifecycle_url.clone(),
                    client_state: request.client_state.clone(),
                    expires: request.expires,
                },
            )
            .await?;
        Ok(super::Subscribed {
            id: s.id,
            expires: s.expires,
        })
    }

    async fn renew(
        &self,
        mailbox: &str,
        id: &str,
        expires: jiff::Timestamp,
    ) -> Result<super::Subscribed, BackendError> {
        let s = self.client.renew_subscription(mailbox, id, expires).await?;
        Ok(super::Subscribed {
            id: s.id,
            expires: s.expires,
        })
    }

    async fn reauthorize(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        Ok(self.client.reauthorize_subscription(mailbox, id).await?)
    }

    async fn unsubscribe(&self, mailbox: &str, id: &str) -> Result<(), BackendError> {
        Ok(self.client.delete_subscription(mailbox, id).await?)
    }

    async fn responses(
        &self,
        mailbox: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, BackendError> {
        Ok(self.client.attendee_responses(mailbox, id).await?)
    }

    async fn occurrences(
        &self,
        mailbox: &str,
        master_id: &str,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<(String, jiff::Timestamp)>, BackendError> {
        Ok(self
            .client
            .instances(mailbox, master_id, from, to)
            .await?
            .into_iter()
            .map(|i| (i.exchange_id, i.when.start))
            .collect())
    }
}
