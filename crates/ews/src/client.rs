//! The EWS client of one connection: the operations calgate uses, each retried on Exchange's
//! throttling (`ErrorServerBusy` with `BackOffMilliseconds`, `ErrorExceededConnectionCount`,
//! HTTP 503) within a bounded budget, and limited to a number of requests in flight per
//! service account (Exchange's default `EWSMaxConcurrency` is 27).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use calgate_core::FailureKind;
use jiff::Timestamp;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::soap::{self, Acting, Response, ServerVersion};
use crate::transport::{Auth, Transport, check_url};
use crate::types::{CalendarItem, ItemId, SyncChange, SyncPage, parse_item_id};
use crate::xml::{Element, Writer};

/// The most items calgate asks for in one FindItem page (Exchange's default policy caps a page
/// at 1,000).
pub const MAX_PAGE: u32 = 1000;
/// The most changes one SyncFolderItems call may return (Exchange's limit).
pub const MAX_SYNC_CHANGES: u32 = 512;
/// GetUserAvailability takes at most this many identities per request.
pub const MAX_AVAILABILITY: usize = 100;

/// The calendar properties calgate reads (all of them FindItem may return).
const CALENDAR_FIELDS: &[&str] = &[
    "item:Subject",
    "item:Sensitivity",
    "item:LastModifiedTime",
    "calendar:Start",
    "calendar:End",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:Organizer",
    "calendar:UID",
    "calendar:CalendarItemType",
    "calendar:IsCancelled",
    "calendar:StartTimeZone",
];

/// How a connection reaches Exchange.
#[derive(Debug, Clone)]
pub struct EwsConfig {
    /// `https://mail.example.org/EWS/Exchange.asmx` (http only to loopback).
    pub url: String,
    pub auth: Auth,
    /// Act as each mailbox through `ExchangeImpersonation` (ApplicationImpersonation on
    /// premises); otherwise the service account opens mailboxes by delegate access.
    pub impersonation: bool,
    /// Extra trusted CA certificates (PEM), for an organisation's private CA.
    pub ca_pem: Option<String>,
    /// `RequestServerVersion` (Exchange 2013 SP1 and later accept `Exchange2013_SP1`).
    pub version: String,
    /// Requests in flight at once for this service account.
    pub max_in_flight: usize,
    /// Attempts of one operation on throttling or transient failures.
    pub attempts: u32,
    /// The longest calgate waits in one back-off.
    pub max_back_off: Duration,
    /// Told of every request sent (`true`: it was throttled and will be retried), so that a
    /// caller can count EWS requests with its other services'.
    pub on_request: Option<RequestHook>,
}

/// See [`EwsConfig::on_request`].
#[derive(Clone)]
pub struct RequestHook(pub Arc<dyn Fn(bool) + Send + Sync>);

impl std::fmt::Debug for RequestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestHook")
    }
}

impl EwsConfig {
    pub fn new(url: impl Into<String>, auth: Auth) -> EwsConfig {
        EwsConfig {
            url: url.into(),
            auth,
            impersonation: false,
            ca_pem: None,
            version: "Exchange2013_SP1".to_owned(),
            max_in_flight: 16,
            attempts: 6,
            max_back_off: Duration::from_secs(60),
            on_request: None,
        }
    }
}

impl EwsConfig {
    /// The client configuration of a stored EWS connection.
    pub fn from_connection(c: &calgate_core::Connection) -> Result<EwsConfig, Error> {
        let Some(e) = &c.ews else {
            return Err(Error::config(format!(
                "connection '{}' reaches Exchange Online through Microsoft Graph, not EWS",
                c.name
            )));
        };
        let username = e.username.clone();
        let password = e.password.expose().to_owned();
        let auth = match e.auth {
            calgate_core::EwsAuth::Basic => Auth::Basic { username, password },
            calgate_core::EwsAuth::Ntlm => Auth::Ntlm { username, password },
        };
        let mut cfg = EwsConfig::new(e.url.clone(), auth);
        cfg.impersonation = e.impersonation;
        cfg.ca_pem = c.ca_cert_pem.clone();
        Ok(cfg)
    }
}

/// Counters for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
}

/// The EWS client of one connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EwsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    config: EwsConfig,
    limit: Semaphore,
    metrics: Metrics,
    server: std::sync::Mutex<Option<ServerVersion>>,
}

/// Where an item is created, or a folder is opened: a mailbox's calendar.
fn calendar_folder(w: &mut Writer, mailbox: &str, impersonating: bool) {
    if impersonating {
        w.empty("t:DistinguishedFolderId", &[("Id", "calendar")]);
    } else {
        w.open("t:DistinguishedFolderId", &[("Id", "calendar")])
            .open("t:Mailbox", &[])
            .leaf("t:EmailAddress", mailbox)
            .close()
            .close();
    }
}

fn item_shape(w: &mut Writer, base: &str, fields: &[&str], extended: &[(&str, &str)]) {
    w.open("m:ItemShape", &[]).leaf("t:BaseShape", base);
    if !fields.is_empty() || !extended.is_empty() {
        w.open("t:AdditionalProperties", &[]);
        for f in fields {
            w.empty("t:FieldURI", &[("FieldURI", f)]);
        }
        for (set, name) in extended {
            w.empty(
                "t:ExtendedFieldURI",
                &[
                    ("PropertySetId", set),
                    ("PropertyName", name),
                    ("PropertyType", "String"),
                ],
            );
        }
        w.close();
    }
    w.close();
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl EwsClient {
    pub fn new(config: EwsConfig) -> Result<EwsClient, Error> {
        let url = check_url(&config.url)?;
        let transport = Transport::new(
            url,
            config.auth.clone(),
            config.ca_pem.as_deref(),
            config.max_in_flight.max(1),
        )?;
        Ok(EwsClient {
            inner: Arc::new(Inner {
                transport,
                limit: Semaphore::new(config.max_in_flight.max(1)),
                config,
                metrics: Metrics::default(),
                server: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &EwsConfig {
        &self.inner.config
    }

    /// The EWS URL this client talks to.
    pub fn url(&self) -> &str {
        self.inner.transport.url().as_str()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The server's version from the last answer that carried one.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.inner
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn acting<'a>(&self, mailbox: Option<&'a str>) -> Acting<'a> {
        match mailbox {
            Some(m) if self.inner.config.impersonation => Acting::Impersonating(m),
            _ => Acting::Account,
        }
    }

    fn impersonating(&self) -> bool {
        self.inner.config.impersonation
    }

    /// One operation, retried on throttling within the budget.
    async fn call(
        &self,
        mailbox: Option<&str>,
        body: impl Fn(&mut Writer),
    ) -> Result<Response, Error> {
        let cfg = &self.inner.config;
        let doc = soap::envelope(&cfg.version, self.acting(mailbox), &body);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = {
                let _permit = self
                    .inner
                    .limit
                    .acquire()
                    .await
                    .map_err(|_| Error::config("the EWS client was shut down"))?;
                self.inner.metrics.requests.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = &cfg.on_request {
                    (hook.0)(false);
                }
                let anchor = if self.impersonating() { mailbox } else { None };
                match self.inner.transport.post(doc.clone(), anchor).await {
                    Ok(answer) => soap::read(answer, mailbox),
                    Err(e) => Err(e),
                }
            };
            let result = result.and_then(|r| {
                if let Some(v) = &r.server {
                    *self.inner.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(v.clone());
                }
                // A throttled single-message answer is retried like an HTTP-level one.
                if let Some(first) = r.messages().first()
                    && let Err(e) = soap::check(first, mailbox)
                    && e.kind == FailureKind::Retryable
                {
                    return Err(e);
                }
                Ok(r)
            });
            match result {
                Err(e) if e.kind == FailureKind::Retryable && attempt < cfg.attempts => {
                    self.inner.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                    if let Some(hook) = &cfg.on_request {
                        (hook.0)(true);
                    }
                    let exp = Duration::from_millis(500u64 << attempt.min(7));
                    let wait = e.back_off.unwrap_or(exp).min(cfg.max_back_off);
                    // ±10 % so that many mailboxes do not come back at the same instant.
                    let jitter = 0.9 + rand::random::<f64>() * 0.2;
                    tracing::debug!(code = ?e.code, wait_ms = wait.as_millis() as u64, "EWS throttled: backing off");
                    tokio::time::sleep(wait.mul_f64(jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens `mailbox`'s calendar folder (Verify and Test settings): its item count.
    pub async fn calendar_folder(&self, mailbox: &str) -> Result<u64, Error> {
        let imp = self.impersonating();
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:GetFolder", &[]);
                w.open("m:FolderShape", &[])
                    .leaf("t:BaseShape", "Default")
                    .close();
                w.open("m:FolderIds", &[]);
                calendar_folder(w, mailbox, imp);
                w.close().close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        Ok(msg
            .find("TotalCount")
            .and_then(|c| c.text.trim().parse().ok())
            .unwrap_or(0))
    }

    /// One page of `mailbox`'s calendar view over `[start, end)`: singles, occurrences and
    /// exceptions, by start; `true` when the view holds no more items than these.
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        start: Timestamp,
        end: Timestamp,
        max: u32,
    ) -> Result<(Vec<CalendarItem>, bool), Error> {
        let imp = self.impersonating();
        let (s, e) = (ts(start), ts(end));
        let max = max.clamp(1, MAX_PAGE).to_string();
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:FindItem", &[("Traversal", "Shallow")]);
                item_shape(w, "IdOnly", CALENDAR_FIELDS, &[]);
                w.empty(
                    "m:CalendarView",
                    &[
                        ("MaxEntriesReturned", &max),
                        ("StartDate", &s),
                        ("EndDate", &e),
                    ],
                );
                w.open("m:ParentFolderIds", &[]);
                calendar_folder(w, mailbox, imp);
                w.close().close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        let root = msg.child("RootFolder").ok_or_else(|| {
            Error::invalid(format!(
                "Exchange's calendar view of {mailbox} has no RootFolder"
            ))
        })?;
        let last = root
            .attr("IncludesLastItemInRange")
            .is_none_or(|v| v == "true");
        let items = root
            .child("Items")
            .map(|i| {
                i.all("CalendarItem")
                    .map(CalendarItem::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok((items, last))
    }

    /// Items of `mailbox`'s calendar folder (masters and singles) whose calgate property
    /// `(set, name)` equals `value`, with that property read back.
    pub async fn find_by_property(
        &self,
        mailbox: &str,
        set: &str,
        name: &str,
        value: &str,
        limit: u32,
    ) -> Result<Vec<CalendarItem>, Error> {
        let imp = self.impersonating();
        let limit = limit.clamp(1, MAX_PAGE).to_string();
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:FindItem", &[("Traversal", "Shallow")]);
                item_shape(
                    w,
                    "IdOnly",
                    &["calendar:UID", "calendar:Start"],
                    &[(set, name)],
                );
                w.empty(
                    "m:IndexedPageItemView",
                    &[
                        ("MaxEntriesReturned", &limit),
                        ("Offset", "0"),
                        ("BasePoint", "Beginning"),
                    ],
                );
                w.open("m:Restriction", &[]).open("t:IsEqualTo", &[]);
                w.empty(
                    "t:ExtendedFieldURI",
                    &[
                        ("PropertySetId", set),
                        ("PropertyName", name),
                        ("PropertyType", "String"),
                    ],
                );
                w.open("t:FieldURIOrConstant", &[])
                    .empty("t:Constant", &[("Value", value)])
                    .close();
                w.close().close();
                w.open("m:ParentFolderIds", &[]);
                calendar_folder(w, mailbox, imp);
                w.close().close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        msg.find("Items")
            .map(|i| i.all("CalendarItem").map(CalendarItem::parse).collect())
            .unwrap_or(Ok(Vec::new()))
    }

    /// One SyncFolderItems call on `mailbox`'s calendar from `state` (`None`: from the start).
    pub async fn sync_items(
        &self,
        mailbox: &str,
        state: Option<&str>,
        max: u32,
    ) -> Result<SyncPage, Error> {
        let imp = self.impersonating();
        let max = max.clamp(1, MAX_SYNC_CHANGES).to_string();
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:SyncFolderItems", &[]);
                item_shape(w, "IdOnly", &[], &[]);
                w.open("m:SyncFolderId", &[]);
                calendar_folder(w, mailbox, imp);
                w.close();
                if let Some(s) = state {
                    w.leaf("m:SyncState", s);
                }
                w.leaf("m:MaxChangesReturned", &max);
                w.close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        let state = msg
            .text_of("SyncState")
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Exchange's SyncFolderItems answer for {mailbox} has no SyncState"
                ))
            })?
            .to_owned();
        let last = msg
            .text_of("IncludesLastItemInRange")
            .is_none_or(|v| v == "true");
        let mut changes = Vec::new();
        if let Some(c) = msg.child("Changes") {
            for ch in &c.children {
                let id = ch
                    .find("ItemId")
                    .map(parse_item_id)
                    .transpose()?
                    .ok_or_else(|| Error::invalid("a SyncFolderItems change without an ItemId"))?;
                changes.push(match ch.name.as_str() {
                    "Delete" => SyncChange::Delete(id),
                    "Create" => SyncChange::Create(id),
                    _ => SyncChange::Update(id),
                });
            }
        }
        Ok(SyncPage {
            state,
            includes_last: last,
            changes,
        })
    }

    /// Items by id, with calgate's calendar fields and `extended` properties; one result per id.
    pub async fn get_items(
        &self,
        mailbox: &str,
        ids: &[String],
        extra_fields: &[&str],
        extended: &[(&str, &str)],
    ) -> Result<Vec<Result<CalendarItem, Error>>, Error> {
        let mut fields: Vec<&str> = CALENDAR_FIELDS.to_vec();
        fields.extend_from_slice(extra_fields);
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:GetItem", &[]);
                item_shape(w, "IdOnly", &fields, extended);
                w.open("m:ItemIds", &[]);
                for id in ids {
                    w.empty("t:ItemId", &[("Id", id)]);
                }
                w.close().close();
            })
            .await?;
        Ok(r.messages()
            .into_iter()
            .map(|m| {
                soap::check(m, Some(mailbox))?;
                let item = m
                    .find("CalendarItem")
                    .ok_or_else(|| Error::invalid("GetItem answered without a CalendarItem"))?;
                CalendarItem::parse(item)
            })
            .collect())
    }

    /// Creates a calendar item in `mailbox`. `invite`: send meeting requests to its attendees.
    pub async fn create_item(
        &self,
        mailbox: &str,
        item: &crate::types::ItemWrite,
        invite: bool,
    ) -> Result<ItemId, Error> {
        let imp = self.impersonating();
        let send = if invite {
            "SendToAllAndSaveCopy"
        } else {
            "SendToNone"
        };
        let r = self
            .call(Some(mailbox), |w| {
                w.open("m:CreateItem", &[("SendMeetingInvitations", send)]);
                w.open("m:SavedItemFolderId", &[]);
                calendar_folder(w, mailbox, imp);
                w.close();
                w.open("m:Items", &[]);
                item.write(w);
                w.close().close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        msg.find("ItemId")
            .map(parse_item_id)
            .transpose()?
            .ok_or_else(|| Error::invalid("CreateItem answered without an ItemId"))
    }

    /// Replaces the fields calgate writes on item `id` (always overwriting: calgate owns them).
    pub async fn update_item(
        &self,
        mailbox: &str,
        id: &str,
        item: &crate::types::ItemWrite,
        invite: bool,
    ) -> Result<ItemId, Error> {
        let send = if invite {
            "SendToAllAndSaveCopy"
        } else {
            "SendToNone"
        };
        let r = self
            .call(Some(mailbox), |w| {
                w.open(
                    "m:UpdateItem",
                    &[
                        ("ConflictResolution", "AlwaysOverwrite"),
                        ("SendMeetingInvitationsOrCancellations", send),
                    ],
                );
                w.open("m:ItemChanges", &[]).open("t:ItemChange", &[]);
                w.empty("t:ItemId", &[("Id", id)]);
                w.open("t:Updates", &[]);
                item.write_updates(w);
                w.close().close().close().close();
            })
            .await?;
        let msg = r.single(Some(mailbox))?;
        msg.find("ItemId")
            .map(parse_item_id)
            .transpose()?
            .ok_or_else(|| Error::invalid("UpdateItem answered without an ItemId"))
    }

    /// Deletes item `id` into Deleted Items (recoverable), cancelling it for attendees if it is
    /// a meeting calgate organised.
    pub async fn delete_item(&self, mailbox: &str, id: &str) -> Result<(), Error> {
        let r = self
            .call(Some(mailbox), |w| {
                w.open(
                    "m:DeleteItem",
                    &[
                        ("DeleteType", "MoveToDeletedItems"),
                        ("SendMeetingCancellations", "SendToAllAndSaveCopy"),
                    ],
                );
                w.open("m:ItemIds", &[])
                    .empty("t:ItemId", &[("Id", id)])
                    .close();
                w.close();
            })
            .await?;
        r.single(Some(mailbox)).map(|_| ())
    }

    /// Free/busy of up to 100 mailboxes over `[start, end)` (merged busy intervals with their
    /// `BusyType`), one result per mailbox.
    pub async fn availability(
        &self,
        mailboxes: &[String],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Result<Vec<(Timestamp, Timestamp, String)>, Error>>, Error> {
        if mailboxes.len() > MAX_AVAILABILITY {
            return Err(Error::config(format!(
                "Exchange answers free/busy for at most {MAX_AVAILABILITY} mailboxes at once ({} asked)",
                mailboxes.len()
            )));
        }
        let (s, e) = (ts(start), ts(end));
        let r = self
            .call(None, |w| {
                w.open("m:GetUserAvailabilityRequest", &[]);
                // UTC: no bias, no daylight saving.
                w.open("t:TimeZone", &[]).leaf("t:Bias", "0");
                for which in ["t:StandardTime", "t:DaylightTime"] {
                    w.open(which, &[])
                        .leaf("t:Bias", "0")
                        .leaf("t:Time", "00:00:00")
                        .leaf("t:DayOrder", "1")
                        .leaf("t:Month", "1")
                        .leaf("t:DayOfWeek", "Sunday")
                        .close();
                }
                w.close();
                w.open("m:MailboxDataArray", &[]);
                for m in mailboxes {
                    w.open("t:MailboxData", &[])
                        .open("t:Email", &[])
                        .leaf("t:Address", m)
                        .close()
                        .leaf("t:AttendeeType", "Required")
                        .leaf("t:ExcludeConflicts", "false")
                        .close();
                }
                w.close();
                w.open("t:FreeBusyViewOptions", &[]);
                w.open("t:TimeWindow", &[])
                    .leaf("t:StartTime", &s)
                    .leaf("t:EndTime", &e)
                    .close();
                w.leaf("t:MergedFreeBusyIntervalInMinutes", "15")
                    .leaf("t:RequestedView", "FreeBusy")
                    .close();
                w.close();
            })
            .await?;
        let list = r.body.child("FreeBusyResponseArray").ok_or_else(|| {
            Error::invalid("GetUserAvailability answered without a FreeBusyResponseArray")
        })?;
        Ok(list
            .all("FreeBusyResponse")
            .zip(mailboxes)
            .map(|(fb, m)| {
                if let Some(msg) = fb.child("ResponseMessage") {
                    soap::check(msg, Some(m))?;
                }
                let mut busy = Vec::new();
                if let Some(arr) = fb.find("CalendarEventArray") {
                    for ev in arr.all("CalendarEvent") {
                        let when = |k: &str| {
                            ev.text_of(k)
                                .and_then(crate::types::parse_time)
                                .ok_or_else(|| {
                                    Error::invalid(format!(
                                        "a free/busy event of {m} without a readable {k}"
                                    ))
                                })
                        };
                        busy.push((
                            when("StartTime")?,
                            when("EndTime")?,
                            ev.text_of("BusyType").unwrap_or("Busy").to_owned(),
                        ));
                    }
                }
                Ok(busy)
            })
            .collect())
    }

    /// The organisation's room lists: (address, name).
    pub async fn room_lists(&self) -> Result<Vec<(String, String)>, Error> {
        let r = self
            .call(None, |w| {
                w.empty("m:GetRoomLists", &[]);
            })
            .await?;
        check_top(&r)?;
        Ok(addresses(r.body.child("RoomLists")))
    }

    /// The rooms of room list `list`: (address, name).
    pub async fn rooms(&self, list: &str) -> Result<Vec<(String, String)>, Error> {
        let r = self
            .call(None, |w| {
                w.open("m:GetRooms", &[])
                    .open("m:RoomList", &[])
                    .leaf("t:EmailAddress", list)
                    .close()
                    .close();
            })
            .await?;
        check_top(&r)?;
        Ok(r.body
            .child("Rooms")
            .map(|rs| {
                rs.all("Room")
                    .filter_map(|room| room.child("Id"))
                    .map(address)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// GetRoomLists/GetRooms answer with ResponseClass on the response element itself.
fn check_top(r: &Response) -> Result<(), Error> {
    soap::check(&r.body, None)
}

fn address(el: &Element) -> (String, String) {
    (
        el.text_of("EmailAddress").unwrap_or("").to_owned(),
        el.text_of("Name").unwrap_or("").to_owned(),
    )
}

fn addresses(list: Option<&Element>) -> Vec<(String, String)> {
    list.map(|l| l.children.iter().map(address).collect())
        .unwrap_or_default()
}
