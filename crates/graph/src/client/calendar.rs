//! Calendars: `calendarView` (of the default calendar or another one), its delta rounds, the
//! instances of a series, and creating, reading, updating and deleting events.

use calgate_core::Instance;
use jiff::Timestamp;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::GraphClient;
use super::draft::{EventDraft, draft_json};
use super::transport::Resp;
use crate::convert::{self, DeltaItem, DeltaNext, DeltaPage};
use crate::error::Error;

/// Which page of a delta round to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaRequest {
    /// A new round over `[start, end)`.
    Start {
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    },
    /// A `@odata.nextLink` or `@odata.deltaLink`, followed as is.
    Follow(String),
    /// A link followed with `Prefer: odata.maxpagesize` again, as Microsoft's samples send it on
    /// every request of a round (a service may otherwise fall back to its default of 10).
    FollowPaged { link: String, page_size: u32 },
}

/// The path of `leaf` (`calendarView`, `events`) under `mailbox`'s default calendar or, with
/// `calendar`, under that calendar.
fn calendar_path<'a>(mailbox: &'a str, calendar: Option<&'a str>, leaf: &'a str) -> Vec<&'a str> {
    let mut segments = vec!["users", mailbox];
    if let Some(id) = calendar {
        segments.extend(["calendars", id]);
    }
    segments.push(leaf);
    segments
}

/// An event found by [`GraphClient::find_by_property`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEvent {
    pub id: String,
    pub ical_uid: Option<String>,
    pub web_link: Option<String>,
    pub change_key: Option<String>,
    /// The single-value extended properties asked for with `expand`: (id, value).
    pub properties: Vec<(String, String)>,
}

/// The identity of an event in a Graph answer.
fn found_of(body: &[u8]) -> Result<FoundEvent, Error> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_data(format!("Graph sent an event calgate cannot read: {e}"))
    })?;
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_data("Graph sent an event without an id"))?;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    Ok(FoundEvent {
        id: id.to_owned(),
        ical_uid: text("iCalUId"),
        web_link: text("webLink"),
        change_key: text("changeKey"),
        properties: Vec::new(),
    })
}

impl GraphClient {
    /// A view of `[start, end)` at `segments`, `page_size` instances a page (`$top`).
    fn view_url(
        &self,
        segments: &[&str],
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    ) -> Result<Url, Error> {
        let (s, e, n) = (start.to_string(), end.to_string(), page_size.to_string());
        self.url(
            segments,
            &[("startDateTime", &s), ("endDateTime", &e), ("$top", &n)],
        )
    }

    fn event_url(&self, mailbox: &str, id: &str) -> Result<Url, Error> {
        self.url(&["users", mailbox, "events", id], &[])
    }

    // -----------------------------------------------------------------------------------------
    // Delta
    // -----------------------------------------------------------------------------------------

    /// One page of a `calendarView/delta` round.
    pub async fn delta(&self, mailbox: &str, request: DeltaRequest) -> Result<DeltaPage, Error> {
        let (url, page_size) = match &request {
            DeltaRequest::Start {
                start,
                end,
                page_size,
            } => {
                if end <= start {
                    return Err(Error::config("the sync window is empty (end before start)"));
                }
                let (s, e) = (start.to_string(), end.to_string());
                let url = self.url(
                    &["users", mailbox, "calendarView", "delta"],
                    &[("startDateTime", &s), ("endDateTime", &e)],
                )?;
                (url, Some(*page_size))
            }
            DeltaRequest::Follow(link) => (self.link(link)?, None),
            DeltaRequest::FollowPaged { link, page_size } => (self.link(link)?, Some(*page_size)),
        };
        let mut req = self.req(Method::GET, url, Some(mailbox));
        if let Some(n) = page_size.filter(|n| *n > 0) {
            req.prefer.push(format!("odata.maxpagesize={n}"));
        }
        let Resp { body, reading, .. } = self.execute(req).await?;
        let page = convert::parse_delta_body(body, mailbox);
        drop(reading);
        page
    }

    /// A whole delta round from `request` to its deltaLink: (all items, deltaLink).
    pub async fn delta_round(
        &self,
        mailbox: &str,
        request: DeltaRequest,
    ) -> Result<(Vec<DeltaItem>, String), Error> {
        let mut items = Vec::new();
        let page_size = match &request {
            DeltaRequest::Start { page_size, .. } | DeltaRequest::FollowPaged { page_size, .. } => {
                Some(*page_size)
            }
            DeltaRequest::Follow(_) => None,
        };
        let mut next = request;
        loop {
            let page = self.delta(mailbox, next).await?;
            items.extend(page.items);
            match page.next {
                DeltaNext::NextLink(link) => {
                    next = match page_size {
                        Some(page_size) => DeltaRequest::FollowPaged { link, page_size },
                        None => DeltaRequest::Follow(link),
                    }
                }
                DeltaNext::DeltaLink(l) => return Ok((items, l)),
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Views
    // -----------------------------------------------------------------------------------------

    async fn view_pages(&self, mailbox: &str, first: Url) -> Result<Vec<Instance>, Error> {
        self.collect_pages(
            first,
            Some(mailbox),
            100_000,
            "Graph kept sending next links (over 100,000 pages)",
            |body| convert::parse_view_page(body, mailbox),
        )
        .await
    }

    /// Every instance (occurrences, exceptions, single events) overlapping `[start, end)` in
    /// `mailbox`'s default calendar or, with `calendar`, in that calendar (any calendar of the
    /// mailbox), all pages of `page_size` instances (`$top`, 1 to 1,000).
    pub async fn calendar_view_of(
        &self,
        mailbox: &str,
        calendar: Option<&str>,
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    ) -> Result<Vec<Instance>, Error> {
        let url = self.view_url(
            &calendar_path(mailbox, calendar, "calendarView"),
            start,
            end,
            page_size.clamp(1, 1000),
        )?;
        self.view_pages(mailbox, url).await
    }

    /// Every instance (occurrences, exceptions, single events) overlapping `[start, end)`,
    /// all pages.
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        self.calendar_view_of(mailbox, None, start, end, 100).await
    }

    /// [`GraphClient::calendar_view`] with `page_size` instances per request (`$top`).
    pub async fn calendar_view_paged(
        &self,
        mailbox: &str,
        start: Timestamp,
        end: Timestamp,
        page_size: u32,
    ) -> Result<Vec<Instance>, Error> {
        self.calendar_view_of(mailbox, None, start, end, page_size)
            .await
    }

    /// Every instance overlapping `[start, end)` in the calendar `calendar_id` of `mailbox`
    /// (any calendar, not only the default one), all pages.
    pub async fn calendar_view_in(
        &self,
        mailbox: &str,
        calendar_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        self.calendar_view_of(mailbox, Some(calendar_id), start, end, 100)
            .await
    }

    /// The occurrences and exceptions of a series in `[start, end)`.
    pub async fn instances(
        &self,
        mailbox: &str,
        series_master_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Instance>, Error> {
        let url = self.view_url(
            &["users", mailbox, "events", series_master_id, "instances"],
            start,
            end,
            100,
        )?;
        self.view_pages(mailbox, url).await
    }

    // -----------------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------------

    pub async fn get_event(&self, mailbox: &str, id: &str) -> Result<Instance, Error> {
        let url = self.event_url(mailbox, id)?;
        let body = self.get_json(url, Some(mailbox)).await?;
        convert::parse_event(&body, mailbox)
    }

    /// Creates an event in `mailbox`'s default calendar or, with `calendar`, in that calendar;
    /// `transaction_id` makes a retried create idempotent (Graph answers a repeated create
    /// with the event it made the first time).
    pub async fn create_event_of(
        &self,
        mailbox: &str,
        calendar: Option<&str>,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<Instance, Error> {
        let mut body = draft_json(draft);
        if let Value::Object(m) = &mut body {
            m.insert("transactionId".into(), json!(transaction_id));
        }
        let url = self.url(&calendar_path(mailbox, calendar, "events"), &[])?;
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(body.to_string().into_bytes());
        // Safe to repeat: the transactionId de-duplicates.
        req.idempotent = !transaction_id.is_empty();
        let resp = self.execute(req).await?;
        convert::parse_event(&resp.body, mailbox)
    }

    /// Creates an event; `transaction_id` makes a retried create idempotent (Graph answers a
    /// repeated create with the event it made the first time).
    pub async fn create_event(
        &self,
        mailbox: &str,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<Instance, Error> {
        self.create_event_of(mailbox, None, draft, transaction_id)
            .await
    }

    /// [`GraphClient::create_event`] in the calendar `calendar_id` of `mailbox`.
    pub async fn create_event_in(
        &self,
        mailbox: &str,
        calendar_id: &str,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<Instance, Error> {
        self.create_event_of(mailbox, Some(calendar_id), draft, transaction_id)
            .await
    }

    /// [`GraphClient::create_event`] for any kind of event (a series master too): what
    /// identifies the created event.
    pub async fn create_any(
        &self,
        mailbox: &str,
        draft: &EventDraft,
        transaction_id: &str,
    ) -> Result<FoundEvent, Error> {
        let mut body = draft_json(draft);
        if let Value::Object(m) = &mut body {
            m.insert("transactionId".into(), json!(transaction_id));
        }
        let url = self.url(&calendar_path(mailbox, None, "events"), &[])?;
        let mut req = self.req(Method::POST, url, Some(mailbox));
        req.body = Some(body.to_string().into_bytes());
        req.idempotent = !transaction_id.is_empty();
        let resp = self.execute(req).await?;
        found_of(&resp.body)
    }

    /// The attendees of the event `id` and their answers (`status.response`): (address,
    /// response).
    pub async fn attendee_responses(
        &self,
        mailbox: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut url = self.event_url(mailbox, id)?;
        url.query_pairs_mut().append_pair("$select", "attendees");
        let body = self.get_json(url, Some(mailbox)).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            Error::invalid_data(format!("Graph sent an event calgate cannot read: {e}"))
        })?;
        Ok(v["attendees"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|a| {
                Some((
                    a["emailAddress"]["address"].as_str()?.to_owned(),
                    a["status"]["response"]
                        .as_str()
                        .unwrap_or("none")
                        .to_owned(),
                ))
            })
            .collect())
    }

    /// [`GraphClient::update_event`] for any kind of event (a series master, an occurrence).
    pub async fn update_any(
        &self,
        mailbox: &str,
        id: &str,
        draft: &EventDraft,
    ) -> Result<FoundEvent, Error> {
        let url = self.event_url(mailbox, id)?;
        let mut req = self.req(Method::PATCH, url, Some(mailbox));
        req.body = Some(draft_json(draft).to_string().into_bytes());
        let resp = self.execute(req).await?;
        found_of(&resp.body)
    }

    pub async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        draft: &EventDraft,
    ) -> Result<Instance, Error> {
        let url = self.event_url(mailbox, id)?;
        let mut req = self.req(Method::PATCH, url, Some(mailbox));
        req.body = Some(draft_json(draft).to_string().into_bytes());
        let resp = self.execute(req).await?;
        convert::parse_event(&resp.body, mailbox)
    }

    /// The events (single events and series masters) of `mailbox` carrying the single-value
    /// extended property `property_id` with `value` (`$filter` on
    /// `singleValueExtendedProperties`, as Microsoft documents it), up to `limit`, following
    /// `@odata.nextLink`.
    pub async fn find_by_property(
        &self,
        mailbox: &str,
        property_id: &str,
        value: &str,
        expand: &[&str],
        limit: usize,
    ) -> Result<Vec<FoundEvent>, Error> {
        let q = |s: &str| s.replace('\'', "''");
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{}' and ep/value eq '{}')",
            q(property_id),
            q(value)
        );
        let mut url = self.url(
            &["users", mailbox, "events"],
            &[
                ("$filter", &filter),
                ("$select", "id,iCalUId,webLink,changeKey,subject"),
                (
                    "$expand",
                    &format!(
                        "singleValueExtendedProperties($filter={})",
                        std::iter::once(property_id)
                            .chain(expand.iter().copied())
                            .map(|id| format!("id eq '{}'", q(id)))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ),
                ("$top", "100"),
            ],
        )?;
        let mut out = Vec::new();
        loop {
            let body = self.get_json(url, Some(mailbox)).await?;
            let page: Value = serde_json::from_slice(&body).map_err(|e| {
                Error::invalid_data(format!("Graph sent an event list calgate cannot read: {e}"))
            })?;
            let items = page["value"]
                .as_array()
                .ok_or_else(|| Error::invalid_data("Graph sent an event list without `value`"))?;
            for it in items {
                let Some(id) = it["id"].as_str() else {
                    return Err(Error::invalid_data("Graph sent an event without an id"));
                };
                let text = |k: &str| it[k].as_str().map(str::to_owned);
                out.push(FoundEvent {
                    id: id.to_owned(),
                    ical_uid: text("iCalUId"),
                    web_link: text("webLink"),
                    change_key: text("changeKey"),
                    properties: it["singleValueExtendedProperties"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p["id"].as_str()?.to_owned(),
                                p["value"].as_str()?.to_owned(),
                            ))
                        })
                        .collect(),
                });
            }
            match page["@odata.nextLink"].as_str() {
                Some(next) if out.len() < limit => {
                    url = Url::parse(next).map_err(|_| {
                        Error::invalid_data("Graph sent a nextLink that is not a URL")
                    })?;
                }
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    pub async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let url = self.event_url(mailbox, id)?;
        let resp = self
            .execute(self.req(Method::DELETE, url, Some(mailbox)))
            .await?;
        tracing::debug!(status = resp.status, "event deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_paths() {
        assert_eq!(
            calendar_path("a@b.c", None, "calendarView"),
            ["users", "a@b.c", "calendarView"]
        );
        assert_eq!(
            calendar_path("a@b.c", Some("AAMk="), "events"),
            ["users", "a@b.c", "calendars", "AAMk=", "events"]
        );
    }
}
