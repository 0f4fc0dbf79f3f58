//! The EWS operations over the tenant model: GetFolder, FindItem (CalendarView,
//! IndexedPageItemView, Restriction, SortOrder), GetItem, SyncFolderItems, CreateItem,
//! UpdateItem, DeleteItem, ResolveNames and ConvertId.
//!
//! Every operation runs synchronously under the directory lock. Each `m:*ResponseMessage` is
//! produced from a `Result<String, EwsError>`: the message's content after `m:ResponseCode`, or
//! the error that replaces it.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::error::EwsError;
use super::ids::{self, FolderKind, IdError};
use super::item::{self, ItemInput, ItemView, Path, Prop, Shape};
use super::state::SyncSnapshot;
use super::xml::{Element, Writer};
use crate::expand::{self, Instance, InstanceKind};
use crate::meetings;
use crate::model::{
    DelegateRight, Directory, EmailAddress, EwsAccount, ExceptionOccurrence, StoredEvent, Tenant,
    User, new_change_key, new_ical_uid, new_item_id,
};
use crate::state::SimState;

/// Longest CalendarView window (Exchange: two years).
pub const MAX_CALENDAR_VIEW_DAYS: i64 = 2 * 365 + 1;
/// `EWSFindCountLimit` of the default throttling policy: items per FindItem page.
pub const FIND_COUNT_LIMIT: usize = 1000;

/// One EWS call's caller: the account, the impersonated mailbox, the request's time-zone
/// context and schema version.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub st: &'a SimState,
    pub tenant_id: Uuid,
    pub account: &'a EwsAccount,
    pub impersonated: Option<Uuid>,
    pub tz_context: Option<String>,
    pub version: String,
}

/// An operation's result: the `m:*Response` element (or a fault).
pub type OpResult = Result<String, EwsError>;

fn tenant<'d>(dir: &'d Directory, ctx: &Ctx<'_>) -> Result<&'d Tenant, EwsError> {
    dir.tenant_by_id(ctx.tenant_id)
        .ok_or_else(EwsError::access_denied)
}

fn tenant_mut<'d>(dir: &'d mut Directory, ctx: &Ctx<'_>) -> Result<&'d mut Tenant, EwsError> {
    dir.tenant_by_id_mut(ctx.tenant_id)
        .ok_or_else(EwsError::access_denied)
}

// ---------------------------------------------------------------------------------------------
// Mailboxes and access
// ---------------------------------------------------------------------------------------------

/// The mailbox an address names (mail or UPN, case-insensitive); `ErrorNonExistentMailbox`
/// otherwise.
pub fn mailbox_by_address(t: &Tenant, addr: &str) -> Result<Uuid, EwsError> {
    let a = addr.trim();
    let a = a
        .strip_prefix("SMTP:")
        .or_else(|| a.strip_prefix("smtp:"))
        .unwrap_or(a);
    t.user(a)
        .filter(|u| u.has_mailbox && u.account_enabled)
        .map(|u| u.id)
        .ok_or_else(|| EwsError::non_existent_mailbox(a))
}

impl Ctx<'_> {
    /// The caller's own mailbox: the impersonated one, else the account's (when it has one).
    fn own_mailbox(&self, t: &Tenant) -> Option<Uuid> {
        self.impersonated.or_else(|| {
            t.user(&self.account.upn)
                .filter(|u| u.has_mailbox)
                .map(|u| u.id)
        })
    }

    /// Whether the caller may open mailbox `uid`: its own (or the impersonated) mailbox, or
    /// one it has delegate access to (only without impersonation: an impersonated call acts as
    /// that user).
    fn check_access(&self, t: &Tenant, uid: Uuid) -> Result<(), EwsError> {
        let u = t
            .user_by_id(uid)
            .filter(|u| u.has_mailbox && u.account_enabled)
            .ok_or_else(EwsError::item_not_found)?;
        if self.own_mailbox(t) == Some(uid) {
            return Ok(());
        }
        if self.impersonated.is_some() {
            return Err(EwsError::access_denied());
        }
        let ok = match &self.account.delegate {
            DelegateRight::All => true,
            DelegateRight::Mailboxes(list) => list
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&u.mail) || m.eq_ignore_ascii_case(&u.upn)),
        };
        if ok {
            Ok(())
        } else {
            Err(EwsError::access_denied())
        }
    }

    /// The mailbox and folder a `t:FolderId` / `t:DistinguishedFolderId` names, checked.
    fn folder(&self, t: &Tenant, e: &Element) -> Result<(Uuid, FolderKind), EwsError> {
        let (uid, kind) = match e.name.as_str() {
            "DistinguishedFolderId" => {
                let id = e.attr("Id").unwrap_or("");
                let kind = FolderKind::from_distinguished(id).ok_or_else(|| {
                    if DISTINGUISHED_IDS.contains(&id) {
                        EwsError::new(
                            "ErrorFolderNotFound",
                            "The specified folder could not be found in the store.",
                        )
                    } else {
                        EwsError::schema(format!(
                            "The 'Id' attribute is invalid - The value '{id}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:DistinguishedFolderIdNameType' - The Enumeration constraint failed."
                        ))
                    }
                })?;
                let uid = match e.path(&["Mailbox", "EmailAddress"]) {
                    Some(m) => mailbox_by_address(t, m.text())?,
                    None => self.own_mailbox(t).ok_or_else(|| {
                        EwsError::new(
                            "ErrorMissingEmailAddress",
                            "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folders.",
                        )
                    })?,
                };
                (uid, kind)
            }
            "FolderId" => ids::parse_folder_id(e.attr("Id").unwrap_or("")).map_err(id_err)?,
            other => {
                return Err(EwsError::schema(format!(
                    "The element '{other}' is not a folder id."
                )));
            }
        };
        if t.user_by_id(uid).is_none() {
            return Err(EwsError::new(
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            ));
        }
        self.check_access(t, uid)?;
        Ok((uid, kind))
    }
}

/// `DistinguishedFolderIdNameType` values other than the three modelled (they exist in a real
/// mailbox; here they are "not found").
const DISTINGUISHED_IDS: &[&str] = &[
    "contacts",
    "deleteditems",
    "drafts",
    "inbox",
    "journal",
    "notes",
    "outbox",
    "sentitems",
    "tasks",
    "publicfoldersroot",
    "searchfolders",
    "junkemail",
    "voicemail",
    "recoverableitemsroot",
    "recoverableitemsdeletions",
    "recoverableitemsversions",
    "recoverableitemspurges",
    "archiveroot",
    "archivemsgfolderroot",
    "archivedeleteditems",
    "archiveinbox",
    "syncissues",
    "conflicts",
    "localfailures",
    "serverfailures",
    "recipientcache",
    "quickcontacts",
    "conversationhistory",
    "adminauditlogs",
    "todosearch",
    "mycontacts",
    "directory",
    "imcontactlist",
    "peopleconnect",
    "favorites",
];

fn id_err(e: IdError) -> EwsError {
    match e {
        IdError::Empty => EwsError::id_empty(),
        IdError::Malformed => EwsError::id_malformed(),
    }
}

// ---------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------

/// An item reference of a request.
#[derive(Debug, Clone)]
pub enum ItemRef {
    Id {
        id: String,
        change_key: Option<String>,
    },
    Occurrence {
        master: String,
        index: i64,
    },
    Master {
        occurrence: String,
    },
}

impl ItemRef {
    pub fn parse(e: &Element) -> Option<ItemRef> {
        match e.name.as_str() {
            "ItemId" => Some(ItemRef::Id {
                id: e.attr("Id").unwrap_or("").to_owned(),
                change_key: e.attr("ChangeKey").map(str::to_owned),
            }),
            "OccurrenceItemId" => Some(ItemRef::Occurrence {
                master: e.attr("RecurringMasterId").unwrap_or("").to_owned(),
                index: e
                    .attr("InstanceIndex")
                    .and_then(|i| i.trim().parse().ok())
                    .unwrap_or(0),
            }),
            "RecurringMasterItemId" => Some(ItemRef::Master {
                occurrence: e.attr("OccurrenceId").unwrap_or("").to_owned(),
            }),
            _ => None,
        }
    }

    fn change_key(&self) -> Option<&str> {
        match self {
            ItemRef::Id { change_key, .. } => change_key.as_deref(),
            _ => None,
        }
    }
}

/// An item found by an [`ItemRef`].
#[derive(Debug, Clone)]
pub struct Found {
    pub mailbox: Uuid,
    pub calendar_id: String,
    pub inst: Instance,
    /// The stored item: itself, or the series master of an occurrence/exception.
    pub stored: StoredEvent,
}

/// The original start of the `index`-th (1-based) occurrence of a series per its pattern.
fn nth_occurrence(ev: &StoredEvent, index: i64) -> Result<Timestamp, EwsError> {
    let out_of_range = || {
        EwsError::new(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "Occurrence index is out of recurrence range.",
        )
    };
    let rec = ev.recurrence.as_ref().ok_or_else(|| {
        EwsError::new(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "Occurrence index is out of recurrence range.",
        )
    })?;
    let n = usize::try_from(index)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(out_of_range)?;
    let mut plain = ev.clone();
    plain.exceptions.clear();
    plain.cancelled.clear();
    let tz = expand::resolve_tz(&rec.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let from = rec
        .rule
        .range
        .start_date
        .yesterday()
        .ok()
        .and_then(|d| {
            d.to_datetime(jiff::civil::Time::midnight())
                .to_zoned(tz)
                .ok()
        })
        .map(|z| z.timestamp())
        .ok_or_else(out_of_range)?;
    let period_days: i64 = match rec.rule.pattern.kind {
        calgate_recurrence::PatternType::Daily => 1,
        calgate_recurrence::PatternType::Weekly => 7,
        calgate_recurrence::PatternType::AbsoluteMonthly
        | calgate_recurrence::PatternType::RelativeMonthly => 31,
        _ => 366,
    };
    let days = (i64::try_from(n).unwrap_or(i64::MAX / 2))
        .saturating_mul(period_days)
        .saturating_mul(i64::from(rec.rule.pattern.interval.max(1)))
        .saturating_add(400)
        .min(366 * 100);
    let until = from
        .checked_add(SignedDuration::from_hours(24 * days))
        .unwrap_or(from);
    expand::event_instances(&plain, from, until)
        .get(n - 1)
        .and_then(|i| i.original_start)
        .ok_or_else(out_of_range)
}

impl Ctx<'_> {
    /// Finds the item a reference names and checks access to its mailbox.
    pub fn find_item(&self, t: &Tenant, r: &ItemRef) -> Result<Found, EwsError> {
        let (mailbox, model_id, occurrence_index, want_master) = match r {
            ItemRef::Id { id, .. } => {
                let (m, i) = ids::parse_item_id(id).map_err(id_err)?;
                (m, i, None, false)
            }
            ItemRef::Occurrence { master, index } => {
                let (m, i) = ids::parse_item_id(master).map_err(id_err)?;
                (m, i, Some(*index), false)
            }
            ItemRef::Master { occurrence } => {
                let (m, i) = ids::parse_item_id(occurrence).map_err(id_err)?;
                (m, i, None, true)
            }
        };
        if t.user_by_id(mailbox).is_none() {
            return Err(EwsError::item_not_found());
        }
        self.check_access(t, mailbox)?;
        let u = t.user_by_id(mailbox).ok_or_else(EwsError::item_not_found)?;
        for cal in &u.calendars {
            let Some(inst) = expand::find_instance(cal, &model_id) else {
                // A cancelled occurrence's id, or an id of another calendar.
                if let Some((master_id, orig)) = expand::parse_occurrence_id(&model_id)
                    && cal
                        .events
                        .get(&master_id)
                        .is_some_and(|ev| ev.cancelled.contains(&orig))
                {
                    return Err(EwsError::new(
                        "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                        "Occurrence with this index was previously deleted from the recurrence.",
                    ));
                }
                continue;
            };
            let master_id = inst
                .series_master_id
                .clone()
                .unwrap_or_else(|| inst.id.clone());
            let Some(stored) = cal.events.get(&master_id).cloned() else {
                continue;
            };
            if let Some(index) = occurrence_index {
                if inst.kind != InstanceKind::SeriesMaster {
                    return Err(EwsError::new(
                        "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                        "Occurrence index is out of recurrence range.",
                    ));
                }
                let orig = nth_occurrence(&stored, index)?;
                if stored.cancelled.contains(&orig) {
                    return Err(EwsError::new(
                        "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                        "Occurrence with this index was previously deleted from the recurrence.",
                    ));
                }
                let occ_id = stored
                    .exceptions
                    .get(&orig)
                    .map(|x| x.id.clone())
                    .unwrap_or_else(|| expand::occurrence_id(&stored.id, orig));
                let inst =
                    expand::find_instance(cal, &occ_id).ok_or_else(EwsError::item_not_found)?;
                return Ok(Found {
                    mailbox,
                    calendar_id: cal.id.clone(),
                    inst,
                    stored,
                });
            }
            if want_master {
                if inst.series_master_id.is_none() {
                    return Err(EwsError::new(
                        "ErrorItemNotFound",
                        "The specified object was not found in the store., The item is not an occurrence of a recurring series.",
                    ));
                }
                return Ok(Found {
                    mailbox,
                    calendar_id: cal.id.clone(),
                    inst: expand::master_view(&stored),
                    stored,
                });
            }
            return Ok(Found {
                mailbox,
                calendar_id: cal.id.clone(),
                inst,
                stored,
            });
        }
        Err(EwsError::item_not_found())
    }
}

fn write_found(w: &mut Writer, t: &Tenant, f: &Found, shape: &Shape) {
    let mail = t
        .user_by_id(f.mailbox)
        .map(|u| u.mail.as_str())
        .unwrap_or("");
    item::write_item(
        w,
        &ItemView {
            inst: &f.inst,
            mailbox: f.mailbox,
            mailbox_mail: mail,
            stored: Some(&f.stored),
        },
        shape,
    );
}

// ---------------------------------------------------------------------------------------------
// Response assembly
// ---------------------------------------------------------------------------------------------

fn response_messages(op: &str, msgs: Vec<Result<String, EwsError>>) -> OpResult {
    // A fault anywhere (schema problems are found while reading the request) wins.
    if let Some(f) = msgs
        .iter()
        .find_map(|m| m.as_ref().err().filter(|e| e.fault))
    {
        return Err(f.clone());
    }
    let mut w = Writer::new();
    let outer = format!("m:{op}Response");
    let inner = format!("m:{op}ResponseMessage");
    w.start(
        &outer,
        &[
            ("xmlns:m", super::xml::MESSAGES_NS),
            ("xmlns:t", super::xml::TYPES_NS),
        ],
    );
    w.start("m:ResponseMessages", &[]);
    for m in msgs {
        match m {
            Ok(body) => {
                w.start(&inner, &[("ResponseClass", "Success")])
                    .leaf("m:ResponseCode", "NoError")
                    .raw(&body)
                    .end(&inner);
            }
            Err(e) => {
                w.start(&inner, &[("ResponseClass", "Error")]);
                e.write_message_body(&mut w);
                w.end(&inner);
            }
        }
    }
    w.end("m:ResponseMessages").end(&outer);
    Ok(w.finish())
}

fn required<'e>(e: &'e Element, name: &str) -> Result<&'e Element, EwsError> {
    e.child(name).ok_or_else(|| {
        EwsError::schema(format!(
            "The element '{}' in namespace 'http://schemas.microsoft.com/exchange/services/2006/messages' has incomplete content. List of possible elements expected: '{name}'.",
            e.name
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// GetFolder
// ---------------------------------------------------------------------------------------------

pub fn get_folder(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let ids_el = required(op, "FolderIds")?;
    let dir = ctx.st.dir();
    let t = tenant(&dir, ctx)?;
    let msgs = ids_el
        .children
        .iter()
        .map(|f| {
            let (uid, kind) = ctx.folder(t, f)?;
            let u = t.user_by_id(uid).ok_or_else(EwsError::item_not_found)?;
            let mut w = Writer::new();
            w.start("m:Folders", &[]);
            write_folder(&mut w, u, kind);
            w.end("m:Folders");
            Ok(w.finish())
        })
        .collect();
    response_messages("GetFolder", msgs)
}

fn write_folder(w: &mut Writer, u: &User, kind: FolderKind) {
    let (tag, class, name, parent, count, children) = match kind {
        FolderKind::Root => ("t:Folder", None, "Root", None, 0, 1),
        FolderKind::MsgFolderRoot => (
            "t:Folder",
            Some("IPF.Note"),
            "Top of Information Store",
            Some(FolderKind::Root),
            0,
            1,
        ),
        FolderKind::Calendar => (
            "t:CalendarFolder",
            Some("IPF.Appointment"),
            "Calendar",
            Some(FolderKind::MsgFolderRoot),
            u.default_calendar().map(|c| c.events.len()).unwrap_or(0),
            0,
        ),
    };
    let id = ids::folder_id(u.id, kind);
    let ck = ids::folder_change_key(kind);
    w.start(tag, &[]);
    w.empty("t:FolderId", &[("Id", &id), ("ChangeKey", &ck)]);
    if let Some(p) = parent {
        let pid = ids::folder_id(u.id, p);
        let pck = ids::folder_change_key(p);
        w.empty("t:ParentFolderId", &[("Id", &pid), ("ChangeKey", &pck)]);
    }
    if let Some(c) = class {
        w.leaf("t:FolderClass", c);
    }
    w.leaf("t:DisplayName", name)
        .leaf("t:TotalCount", &count.to_string())
        .leaf("t:ChildFolderCount", &children.to_string());
    if kind != FolderKind::Calendar {
        w.leaf("t:UnreadCount", "0");
    }
    w.end(tag);
}

// ---------------------------------------------------------------------------------------------
// Restrictions and sorting
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Text(String),
    Time(Timestamp),
    Bool(bool),
}

fn value_of(
    i: &Instance,
    stored: Option<&StoredEvent>,
    path: &Path,
) -> Result<Option<Val>, EwsError> {
    let d = &i.data;
    let unsupported = || {
        EwsError::new(
            "ErrorUnsupportedPathForQuery",
            "The property path is not supported for a restriction.",
        )
    };
    Ok(match path {
        Path::Ext(x) => i
            .extended_properties
            .iter()
            .find(|p| x.matches(&p.id))
            .map(|p| Val::Text(p.value.clone())),
        Path::Unmodelled(_) => return Err(unsupported()),
        Path::Field(p) => Some(match p {
            Prop::Subject => Val::Text(d.subject.clone()),
            Prop::Location => Val::Text(d.location.display_name.clone()),
            Prop::Uid => Val::Text(
                stored
                    .map(|s| s.ical_uid.clone())
                    .unwrap_or_else(|| i.ical_uid.clone()),
            ),
            Prop::ItemClass => Val::Text("IPM.Appointment".into()),
            Prop::CalendarItemType => Val::Text(item::kind_text(i.kind).into()),
            Prop::LegacyFreeBusyStatus => Val::Text(item::show_as_text(d.show_as).into()),
            Prop::Sensitivity => Val::Text(item::sensitivity_text(d.sensitivity).into()),
            Prop::IsAllDayEvent => Val::Bool(d.is_all_day),
            Prop::IsCancelled => Val::Bool(d.is_cancelled),
            Prop::IsMeeting => Val::Bool(!d.attendees.is_empty()),
            Prop::IsRecurring => Val::Bool(matches!(
                i.kind,
                InstanceKind::Occurrence | InstanceKind::Exception
            )),
            Prop::Start => Val::Time(i.start),
            Prop::End => Val::Time(i.end),
            Prop::DateTimeCreated => Val::Time(i.created),
            Prop::LastModifiedTime => Val::Time(i.last_modified),
            Prop::Organizer => Val::Text(d.organizer.address.clone()),
            _ => return Err(unsupported()),
        }),
    })
}

fn constant_of(e: &Element) -> Result<String, EwsError> {
    e.child("FieldURIOrConstant")
        .and_then(|c| c.child("Constant"))
        .or_else(|| e.child("Constant"))
        .and_then(|c| c.attr("Value"))
        .map(str::to_owned)
        .ok_or_else(|| EwsError::schema("The restriction's constant is missing."))
}

fn compare(actual: &Val, constant: &str) -> Result<std::cmp::Ordering, EwsError> {
    let invalid = || {
        EwsError::new(
            "ErrorInvalidValueForProperty",
            "The value is invalid for the property.",
        )
    };
    Ok(match actual {
        Val::Text(s) => s.to_lowercase().cmp(&constant.to_lowercase()),
        Val::Bool(b) => {
            let c = match constant.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(invalid()),
            };
            b.cmp(&c)
        }
        Val::Time(t) => {
            let c = match item::parse_time(constant) {
                Some(item::RawTime::Instant(ts)) => ts,
                Some(item::RawTime::Local(dt)) => dt
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .map_err(|_| invalid())?
                    .timestamp(),
                None => return Err(invalid()),
            };
            t.cmp(&c)
        }
    })
}

/// Evaluates a `t:Restriction`'s search expression on one item.
fn matches(
    e: &Element,
    i: &Instance,
    stored: Option<&StoredEvent>,
    depth: usize,
) -> Result<bool, EwsError> {
    use std::cmp::Ordering::*;
    if depth > 32 {
        return Err(EwsError::new(
            "ErrorRestrictionTooComplex",
            "Restriction contains too many elements.",
        ));
    }
    let cmp = |want: &[std::cmp::Ordering]| -> Result<bool, EwsError> {
        let path = Path::find_in(e)?;
        let c = constant_of(e)?;
        match value_of(i, stored, &path)? {
            None => Ok(false),
            Some(v) => Ok(want.contains(&compare(&v, &c)?)),
        }
    };
    match e.name.as_str() {
        "IsEqualTo" => cmp(&[Equal]),
        "IsNotEqualTo" => Ok(!cmp(&[Equal])?),
        "IsGreaterThan" => cmp(&[Greater]),
        "IsGreaterThanOrEqualTo" => cmp(&[Greater, Equal]),
        "IsLessThan" => cmp(&[Less]),
        "IsLessThanOrEqualTo" => cmp(&[Less, Equal]),
        "Exists" => {
            let path = Path::find_in(e)?;
            Ok(value_of(i, stored, &path)?.is_some())
        }
        "Contains" => {
            let path = Path::find_in(e)?;
            let c = constant_of(e)?.to_lowercase();
            let mode = e.attr("ContainmentMode").unwrap_or("Substring");
            Ok(match value_of(i, stored, &path)? {
                Some(Val::Text(s)) => {
                    let s = s.to_lowercase();
                    match mode {
                        "FullString" => s == c,
                        "Prefixed" => s.starts_with(&c),
                        _ => s.contains(&c),
                    }
                }
                _ => false,
            })
        }
        "And" => {
            for c in &e.children {
                if !matches(c, i, stored, depth + 1)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "Or" => {
            for c in &e.children {
                if matches(c, i, stored, depth + 1)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "Not" => match e.children.first() {
            Some(c) => Ok(!matches(c, i, stored, depth + 1)?),
            None => Err(EwsError::schema("'Not' needs an expression.")),
        },
        other => Err(EwsError::schema(format!(
            "The element '{other}' is not a search expression."
        ))),
    }
}

fn sort_items(
    items: &mut [(Instance, Option<StoredEvent>)],
    order: Option<&Element>,
) -> Result<(), EwsError> {
    let mut keys = Vec::new();
    if let Some(o) = order {
        for f in o.children_named("FieldOrder") {
            let desc = f.attr("Order") == Some("Descending");
            let prop = match Path::find_in(f)? {
                Path::Field(
                    p @ (Prop::Start
                    | Prop::End
                    | Prop::Subject
                    | Prop::DateTimeCreated
                    | Prop::LastModifiedTime),
                ) => p,
                _ => {
                    return Err(EwsError::new(
                        "ErrorUnsupportedPathForSortGroup",
                        "The property path is not supported for sorting.",
                    ));
                }
            };
            keys.push((prop, desc));
        }
    }
    if keys.is_empty() {
        keys.push((Prop::Start, false));
    }
    items.sort_by(|(a, _), (b, _)| {
        for (p, desc) in &keys {
            let o = match p {
                Prop::Start => a.start.cmp(&b.start),
                Prop::End => a.end.cmp(&b.end),
                Prop::Subject => a.data.subject.cmp(&b.data.subject),
                Prop::DateTimeCreated => a.created.cmp(&b.created),
                _ => a.last_modified.cmp(&b.last_modified),
            };
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// FindItem
// ---------------------------------------------------------------------------------------------

fn attr_ts(e: &Element, name: &str) -> Result<Timestamp, EwsError> {
    let raw = e.attr(name).unwrap_or("");
    match item::parse_time(raw) {
        Some(item::RawTime::Instant(t)) => Ok(t),
        Some(item::RawTime::Local(dt)) => dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| EwsError::schema(format!("The '{name}' attribute is invalid."))),
        None => Err(EwsError::schema(format!(
            "The '{name}' attribute is invalid - The value '{raw}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:dateTime'."
        ))),
    }
}

fn max_entries(e: &Element) -> Result<Option<usize>, EwsError> {
    match e.attr("MaxEntriesReturned") {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Ok(_) => Err(EwsError::new(
                "ErrorInvalidPagingMaxRows",
                "The specified MaxEntriesReturned value is invalid. It must be greater than zero.",
            )),
            Err(_) => Err(EwsError::schema(format!(
                "The 'MaxEntriesReturned' attribute is invalid - The value '{v}' is invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:int'."
            ))),
        },
    }
}

pub fn find_item(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"))?;
    let folders = required(op, "ParentFolderIds")?;
    let calendar_view = op.child("CalendarView");
    let indexed = op.child("IndexedPageItemView");
    let restriction = op.child("Restriction");
    let sort = op.child("SortOrder");
    if op.child("FractionalPageItemView").is_some() || op.child("ContactsView").is_some() {
        // Parsed as a page of everything (FractionalPageItemView is rarely used for calendars).
    }
    let dir = ctx.st.dir();
    let t = tenant(&dir, ctx)?;
    let msgs = folders
        .children
        .iter()
        .map(|f| -> Result<String, EwsError> {
            let (uid, kind) = ctx.folder(t, f)?;
            let u = t.user_by_id(uid).ok_or_else(EwsError::item_not_found)?;
            if let Some(cv) = calendar_view {
                if restriction.is_some() || sort.is_some() {
                    return Err(EwsError::new(
                        "ErrorInvalidRequest",
                        "Restrictions and sort order may not be specified for a CalendarView.",
                    ));
                }
                if kind != FolderKind::Calendar {
                    return Err(EwsError::new(
                        "ErrorCalendarFolderIsInvalidForCalendarView",
                        "The specified folder is not a calendar folder.",
                    ));
                }
                let start = attr_ts(cv, "StartDate")?;
                let end = attr_ts(cv, "EndDate")?;
                if end < start {
                    return Err(EwsError::new(
                        "ErrorCalendarEndDateIsEarlierThanStartDate",
                        "EndDate is earlier than StartDate",
                    ));
                }
                if end.duration_since(start)
                    > SignedDuration::from_hours(24 * MAX_CALENDAR_VIEW_DAYS)
                {
                    return Err(EwsError::new(
                        "ErrorCalendarViewRangeTooBig",
                        "The time window specified is larger than the maximum allowed (2 years).",
                    ));
                }
                let max = max_entries(cv)?;
                let cal = u.default_calendar_cell().map(|c| c.shared());
                let all: Vec<Instance> = cal
                    .as_deref()
                    .map(|c| expand::instances(c, start, end))
                    .unwrap_or_default();
                let total = all.len();
                let take = max.unwrap_or(usize::MAX).min(total);
                let last = take == total;
                let mut w = Writer::new();
                let total_s = total.to_string();
                w.start(
                    "m:RootFolder",
                    &[
                        ("TotalItemsInView", &total_s),
                        (
                            "IncludesLastItemInRange",
                            if last { "true" } else { "false" },
                        ),
                    ],
                );
                w.start("t:Items", &[]);
                for inst in all.iter().take(take) {
                    let master_id = inst.series_master_id.as_deref().unwrap_or(&inst.id);
                    let stored = cal.as_deref().and_then(|c| c.events.get(master_id));
                    item::write_item(
                        &mut w,
                        &ItemView {
                            inst,
                            mailbox: uid,
                            mailbox_mail: &u.mail,
                            stored,
                        },
                        &shape,
                    );
                }
                w.end("t:Items").end("m:RootFolder");
                return Ok(w.finish());
            }
            // A plain listing: stored items (singles and series masters), as a folder holds them.
            let (max, offset, from_end) = match indexed {
                Some(v) => {
                    let max = max_entries(v)?;
                    let offset = match v.attr("Offset").map(|o| o.trim().parse::<i64>()) {
                        None => 0,
                        Some(Ok(o)) if o >= 0 => usize::try_from(o).unwrap_or(usize::MAX),
                        Some(_) => {
                            return Err(EwsError::new(
                                "ErrorInvalidIndexedPagingParameters",
                                "The offset for indexed paging is invalid.",
                            ));
                        }
                    };
                    (max, offset, v.attr("BasePoint") == Some("End"))
                }
                None => (None, 0, false),
            };
            let mut items: Vec<(Instance, Option<StoredEvent>)> = Vec::new();
            if kind == FolderKind::Calendar
                && let Some(cal) = u.default_calendar()
            {
                for ev in cal.events.values() {
                    let inst = expand::master_view(ev);
                    if let Some(r) = restriction.and_then(|r| r.children.first())
                        && !matches(r, &inst, Some(ev), 0)?
                    {
                        continue;
                    }
                    items.push((inst, Some(ev.clone())));
                }
            } else if let Some(r) = restriction.and_then(|r| r.children.first()) {
                // Validate the restriction even on an empty folder.
                let _ = r;
            }
            sort_items(&mut items, sort)?;
            let total = items.len();
            let page = max.unwrap_or(FIND_COUNT_LIMIT).min(FIND_COUNT_LIMIT);
            let (lo, hi) = if from_end {
                let hi = total.saturating_sub(offset);
                (hi.saturating_sub(page), hi)
            } else {
                let lo = offset.min(total);
                (lo, lo.saturating_add(page).min(total))
            };
            let last = if from_end { lo == 0 } else { hi == total };
            let next_offset = if from_end { lo } else { hi };
            let mut w = Writer::new();
            let (total_s, off_s) = (total.to_string(), next_offset.to_string());
            w.start(
                "m:RootFolder",
                &[
                    ("IndexedPagingOffset", &off_s),
                    ("TotalItemsInView", &total_s),
                    (
                        "IncludesLastItemInRange",
                        if last { "true" } else { "false" },
                    ),
                ],
            );
            w.start("t:Items", &[]);
            for (inst, stored) in items.get(lo..hi).unwrap_or(&[]) {
                item::write_item(
                    &mut w,
                    &ItemView {
                        inst,
                        mailbox: uid,
                        mailbox_mail: &u.mail,
                        stored: stored.as_ref(),
                    },
                    &shape,
                );
            }
            w.end("t:Items").end("m:RootFolder");
            Ok(w.finish())
        })
        .collect();
    response_messages("FindItem", msgs)
}

// ---------------------------------------------------------------------------------------------
// GetItem
// ---------------------------------------------------------------------------------------------

pub fn get_item(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"))?;
    let refs = required(op, "ItemIds")?;
    let dir = ctx.st.dir();
    let t = tenant(&dir, ctx)?;
    let msgs = refs
        .children
        .iter()
        .map(|e| {
            let r = ItemRef::parse(e)
                .ok_or_else(|| EwsError::schema(format!("'{}' is not an item id.", e.name)))?;
            let f = ctx.find_item(t, &r)?;
            let mut w = Writer::new();
            w.start("m:Items", &[]);
            write_found(&mut w, t, &f, &shape);
            w.end("m:Items");
            Ok(w.finish())
        })
        .collect();
    response_messages("GetItem", msgs)
}

// ---------------------------------------------------------------------------------------------
// SyncFolderItems
// ---------------------------------------------------------------------------------------------

pub fn sync_folder_items(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let shape = Shape::parse(op.child("ItemShape"))?;
    let folder = required(op, "SyncFolderId")?;
    let max_raw = required(op, "MaxChangesReturned")?.text().to_owned();
    let max = match max_raw.parse::<i64>() {
        Ok(n) if (1..=512).contains(&n) => usize::try_from(n).unwrap_or(512),
        _ => {
            return Err(EwsError::schema(format!(
                "The 'http://schemas.microsoft.com/exchange/services/2006/messages:MaxChangesReturned' element is invalid - The value '{max_raw}' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:MaxSyncChangesReturnedType' - The MaxInclusive constraint failed."
            )));
        }
    };
    let token = op
        .child_text("SyncState")
        .map(str::to_owned)
        .filter(|s| !s.is_empty());
    let dir = ctx.st.dir();
    let t = tenant(&dir, ctx)?;
    let f = folder
        .children
        .first()
        .ok_or_else(|| EwsError::schema("SyncFolderId needs a folder id."))?;
    let msg = (|| -> Result<String, EwsError> {
        let (uid, kind) = ctx.folder(t, f)?;
        let u = t.user_by_id(uid).ok_or_else(EwsError::item_not_found)?;
        let old = match &token {
            Some(tok) => ctx.st.ews.load_sync(tok, uid).ok_or_else(|| EwsError {
                trailer: Some(
                    "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
                        .to_owned(),
                ),
                ..EwsError::new(
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                )
            })?,
            None => SyncSnapshot {
                mailbox: uid,
                items: HashMap::new(),
            },
        };
        let current: Vec<&StoredEvent> = if kind == FolderKind::Calendar {
            u.default_calendar()
                .map(|c| c.events.values().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        enum Change<'a> {
            Create(&'a StoredEvent),
            Update(&'a StoredEvent),
            Delete(String),
        }
        let mut changes: Vec<Change<'_>> = Vec::new();
        let mut upserts: Vec<&StoredEvent> = current
            .iter()
            .copied()
            .filter(|ev| old.items.get(&ev.id) != Some(&ev.change_key))
            .collect();
        upserts.sort_by(|a, b| a.last_modified.cmp(&b.last_modified).then(a.id.cmp(&b.id)));
        for ev in upserts {
            if old.items.contains_key(&ev.id) {
                changes.push(Change::Update(ev));
            } else {
                changes.push(Change::Create(ev));
            }
        }
        let live: std::collections::HashSet<&str> = current.iter().map(|e| e.id.as_str()).collect();
        let mut gone: Vec<&String> = old
            .items
            .keys()
            .filter(|k| !live.contains(k.as_str()))
            .collect();
        gone.sort();
        changes.extend(gone.into_iter().map(|k| Change::Delete(k.clone())));
        let last = changes.len() <= max;
        changes.truncate(max);
        let mut next = old;
        let mut w = Writer::new();
        w.start("m:Changes", &[]);
        for c in &changes {
            match c {
                Change::Create(ev) | Change::Update(ev) => {
                    let tag = if matches!(c, Change::Create(_)) {
                        "t:Create"
                    } else {
                        "t:Update"
                    };
                    next.items.insert(ev.id.clone(), ev.change_key.clone());
                    let inst = expand::master_view(ev);
                    w.start(tag, &[]);
                    item::write_item(
                        &mut w,
                        &ItemView {
                            inst: &inst,
                            mailbox: uid,
                            mailbox_mail: &u.mail,
                            stored: Some(ev),
                        },
                        &shape,
                    );
                    w.end(tag);
                }
                Change::Delete(id) => {
                    next.items.remove(id);
                    let eid = ids::item_id(uid, id);
                    w.start("t:Delete", &[])
                        .empty("t:ItemId", &[("Id", &eid)])
                        .end("t:Delete");
                }
            }
        }
        w.end("m:Changes");
        let state = ctx.st.ews.save_sync(next);
        let mut out = Writer::new();
        out.leaf("m:SyncState", &state).leaf(
            "m:IncludesLastItemInRange",
            if last { "true" } else { "false" },
        );
        out.raw(&w.finish());
        Ok(out.finish())
    })();
    response_messages("SyncFolderItems", vec![msg])
}

// ---------------------------------------------------------------------------------------------
// CreateItem, UpdateItem, DeleteItem
// ---------------------------------------------------------------------------------------------

/// `SendMeetingInvitations` / `…OrCancellations` / `SendMeetingCancellations` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Send {
    None,
    All,
}

fn parse_send(v: Option<&str>, attr: &str, missing: EwsError) -> Result<Send, EwsError> {
    match v {
        None => Err(missing),
        Some("SendToNone") => Ok(Send::None),
        Some(
            "SendOnlyToAll"
            | "SendToAllAndSaveCopy"
            | "SendOnlyToChanged"
            | "SendToChangedAndSaveCopy",
        ) => Ok(Send::All),
        Some(other) => Err(EwsError::schema(format!(
            "The '{attr}' attribute is invalid - The value '{other}' is invalid according to its datatype."
        ))),
    }
}

fn now_rounded(now: Timestamp) -> Timestamp {
    let s = now.as_second();
    Timestamp::from_second(s - s.rem_euclid(60)).unwrap_or(now)
}

pub fn create_item(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let items = required(op, "Items")?;
    let invitations = op.attr("SendMeetingInvitations");
    let now = ctx.st.now();
    let mut dir = ctx.st.dir();
    let target = {
        let t = tenant(&dir, ctx)?;
        match op.child("SavedItemFolderId").and_then(|s| s.children.first()) {
            Some(f) => ctx.folder(t, f).map(|(u, _)| u),
            None => ctx.own_mailbox(t).ok_or_else(|| {
                EwsError::new(
                    "ErrorMissingEmailAddress",
                    "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folders.",
                )
            }),
        }
    };
    let mut msgs = Vec::new();
    for e in &items.children {
        let r = (|| -> Result<String, EwsError> {
            let uid = target.clone()?;
            if e.name != "CalendarItem" {
                return Err(EwsError::new(
                    "ErrorInvalidRequest",
                    format!("The simulator stores calendar items only (got {}).", e.name),
                ));
            }
            let send = parse_send(
                invitations,
                "SendMeetingInvitations",
                EwsError::new(
                    "ErrorSendMeetingInvitationsRequired",
                    "SendMeetingInvitations attribute is required for Calendar items.",
                ),
            )?;
            let input = item::parse_item(e)?;
            let t = tenant_mut(&mut dir, ctx)?;
            let u = t.user_by_id_mut(uid).ok_or_else(EwsError::item_not_found)?;
            let mail = u.mail.clone();
            let mut data = item::new_event_data(EmailAddress {
                name: u.display_name.clone(),
                address: u.mail.clone(),
            });
            let zone = input
                .start_tz
                .clone()
                .or_else(|| ctx.tz_context.clone())
                .unwrap_or_else(|| "UTC".into());
            let start = now_rounded(now);
            data.start = expand::to_local(start, &zone);
            data.end = expand::to_local(
                start
                    .checked_add(SignedDuration::from_mins(30))
                    .unwrap_or(start),
                input.end_tz.as_deref().unwrap_or(&zone),
            );
            let ext = item::apply_input(&mut data, &input, ctx.tz_context.as_deref())?;
            let recurrence = input
                .recurrence
                .clone()
                .map(|rule| crate::model::SeriesRecurrence {
                    rule,
                    time_zone: data.start.time_zone.clone(),
                });
            let mut extended = Vec::new();
            item::merge_ext(&mut extended, ext);
            let mut ev = StoredEvent {
                id: new_item_id(),
                ical_uid: input
                    .uid
                    .clone()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(new_ical_uid),
                change_key: new_change_key(),
                created: now,
                last_modified: now,
                transaction_id: None,
                data,
                recurrence,
                exceptions: Default::default(),
                cancelled: Default::default(),
                extended_properties: extended,
            };
            meetings::prepare_new(&mut ev, &mail);
            let (id, ck) = (ev.id.clone(), ev.change_key.clone());
            let cal = u
                .default_calendar_mut()
                .ok_or_else(EwsError::item_not_found)?;
            cal.events.insert(id.clone(), ev);
            if send == Send::All {
                meetings::after_write(t, uid, None, &id, None, now);
            }
            let mut w = Writer::new();
            let eid = ids::item_id(uid, &id);
            w.start("m:Items", &[])
                .start("t:CalendarItem", &[])
                .empty("t:ItemId", &[("Id", &eid), ("ChangeKey", &ck)])
                .end("t:CalendarItem")
                .end("m:Items");
            Ok(w.finish())
        })();
        msgs.push(r);
    }
    response_messages("CreateItem", msgs)
}

/// Merges one update's properties into the accumulated input (later wins).
fn merge_input(acc: &mut ItemInput, x: ItemInput) {
    macro_rules! take {
        ($($f:ident),*) => { $( if x.$f.is_some() { acc.$f = x.$f; } )* };
    }
    take!(
        subject,
        body,
        sensitivity,
        importance,
        categories,
        reminder_is_set,
        reminder_minutes,
        uid,
        start,
        end,
        is_all_day,
        show_as,
        location,
        required,
        optional,
        resources,
        recurrence,
        start_tz,
        end_tz,
        response_requested,
        allow_new_time_proposal,
        is_online_meeting
    );
    acc.ext.extend(x.ext);
}

/// What an ItemChange's updates do.
#[derive(Debug, Default)]
struct Changes {
    set: ItemInput,
    /// Append to attendee lists / categories.
    append: ItemInput,
    delete_recurrence: bool,
    deleted: Vec<Prop>,
    deleted_ext: Vec<item::ExtUri>,
}

fn parse_updates(updates: &Element) -> Result<Changes, EwsError> {
    let mut ch = Changes::default();
    for u in &updates.children {
        let path = Path::find_in(u)?;
        match u.name.as_str() {
            "SetItemField" | "AppendToItemField" => {
                let Some(item_el) = u.children.iter().find(|c| {
                    !matches!(
                        c.name.as_str(),
                        "FieldURI" | "IndexedFieldURI" | "ExtendedFieldURI"
                    )
                }) else {
                    return Err(EwsError::schema(format!("{} needs an item.", u.name)));
                };
                let x = item::parse_item(item_el)?;
                if u.name == "SetItemField" {
                    merge_input(&mut ch.set, x);
                } else {
                    merge_input(&mut ch.append, x);
                }
            }
            "DeleteItemField" => match path {
                Path::Field(Prop::Recurrence) => ch.delete_recurrence = true,
                Path::Field(p) => ch.deleted.push(p),
                Path::Ext(x) => ch.deleted_ext.push(x),
                Path::Unmodelled(_) => {}
            },
            other => {
                return Err(EwsError::schema(format!(
                    "The element '{other}' is not an item change description."
                )));
            }
        }
    }
    Ok(ch)
}

fn apply_changes(
    data: &mut crate::model::EventData,
    ch: &Changes,
    tz_context: Option<&str>,
) -> Result<Vec<crate::model::ExtendedProperty>, EwsError> {
    for p in &ch.deleted {
        match p {
            Prop::Subject => data.subject.clear(),
            Prop::Body => data.body.content.clear(),
            Prop::Location => {
                data.location = crate::model::Location {
                    location_type: "default".into(),
                    ..Default::default()
                };
                data.locations.clear();
            }
            Prop::Categories => data.categories.clear(),
            Prop::RequiredAttendees => data
                .attendees
                .retain(|a| a.kind != crate::model::AttendeeType::Required),
            Prop::OptionalAttendees => data
                .attendees
                .retain(|a| a.kind != crate::model::AttendeeType::Optional),
            Prop::Resources => data
                .attendees
                .retain(|a| a.kind != crate::model::AttendeeType::Resource),
            _ => {}
        }
    }
    let ext = item::apply_input(data, &ch.set, tz_context)?;
    for list in [
        &ch.append.required,
        &ch.append.optional,
        &ch.append.resources,
    ]
    .into_iter()
    .flatten()
    {
        for a in list {
            if !data
                .attendees
                .iter()
                .any(|b| b.email.address.eq_ignore_ascii_case(&a.email.address))
            {
                data.attendees.push(a.clone());
            }
        }
    }
    if let Some(c) = &ch.append.categories {
        data.categories.extend(c.iter().cloned());
    }
    Ok(ext)
}

pub fn update_item(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let changes = required(op, "ItemChanges")?;
    let conflict = op.attr("ConflictResolution").unwrap_or("AutoResolve");
    if !matches!(
        conflict,
        "NeverOverwrite" | "AutoResolve" | "AlwaysOverwrite"
    ) {
        return Err(EwsError::schema(format!(
            "The 'ConflictResolution' attribute is invalid - The value '{conflict}' is invalid according to its datatype."
        )));
    }
    let send_attr = op.attr("SendMeetingInvitationsOrCancellations");
    let now = ctx.st.now();
    let mut dir = ctx.st.dir();
    let mut msgs = Vec::new();
    for c in changes.children_named("ItemChange") {
        let r = (|| -> Result<String, EwsError> {
            let r = c
                .children
                .iter()
                .find_map(ItemRef::parse)
                .ok_or_else(|| EwsError::schema("ItemChange needs an item id."))?;
            let updates = required(c, "Updates")?;
            let ch = parse_updates(updates)?;
            let found = ctx.find_item(tenant(&dir, ctx)?, &r)?;
            let send = parse_send(
                send_attr,
                "SendMeetingInvitationsOrCancellations",
                EwsError::new(
                    "ErrorSendMeetingInvitationsOrCancellationsRequired",
                    "SendMeetingInvitationsOrCancellations attribute is required for Calendar items.",
                ),
            )?;
            if let Some(ck) = r.change_key()
                && conflict == "NeverOverwrite"
                && ck != found.inst.change_key
            {
                return Err(EwsError::new(
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                ));
            }
            let t = tenant_mut(&mut dir, ctx)?;
            let u = t
                .user_by_id_mut(found.mailbox)
                .ok_or_else(EwsError::item_not_found)?;
            let mail = u.mail.clone();
            let cal = u
                .calendar_mut(&found.calendar_id)
                .ok_or_else(EwsError::item_not_found)?;
            let (stored_id, occurrence, before, result_id) = match found.inst.kind {
                InstanceKind::SingleInstance | InstanceKind::SeriesMaster => {
                    let ev = cal
                        .events
                        .get_mut(&found.inst.id)
                        .ok_or_else(EwsError::item_not_found)?;
                    let before = ev.clone();
                    let old_start = ev.data.start.clone();
                    let ext = apply_changes(&mut ev.data, &ch, ctx.tz_context.as_deref())?;
                    item::merge_ext(&mut ev.extended_properties, ext);
                    ev.extended_properties
                        .retain(|p| !ch.deleted_ext.iter().any(|x| x.matches(&p.id)));
                    if let Some(uid) = ch.set.uid.as_ref().filter(|u| !u.is_empty()) {
                        ev.ical_uid = uid.clone();
                    }
                    if ch.delete_recurrence {
                        ev.recurrence = None;
                        ev.exceptions.clear();
                        ev.cancelled.clear();
                    } else if let Some(rule) = &ch.set.recurrence {
                        let rec = crate::model::SeriesRecurrence {
                            rule: rule.clone(),
                            time_zone: ev.data.start.time_zone.clone(),
                        };
                        if ev.recurrence.as_ref() != Some(&rec) {
                            ev.exceptions.clear();
                            ev.cancelled.clear();
                        }
                        ev.recurrence = Some(rec);
                    } else if ev.recurrence.is_some() && ev.data.start != old_start {
                        // Moving a series drops its exceptions and deletions, as Exchange does.
                        ev.exceptions.clear();
                        ev.cancelled.clear();
                        if let Some(r) = &mut ev.recurrence {
                            r.time_zone = ev.data.start.time_zone.clone();
                        }
                    }
                    meetings::keep_tracking(ev, &before, &mail);
                    ev.touch(now);
                    (ev.id.clone(), None, before, ev.id.clone())
                }
                InstanceKind::Occurrence | InstanceKind::Exception => {
                    if ch.set.recurrence.is_some() || ch.delete_recurrence {
                        return Err(EwsError::new(
                            "ErrorInvalidPropertySet",
                            "An occurrence of a recurring series cannot have its own recurrence.",
                        ));
                    }
                    let master_id = found.stored.id.clone();
                    let orig = found
                        .inst
                        .original_start
                        .ok_or_else(EwsError::item_not_found)?;
                    let ev = cal
                        .events
                        .get_mut(&master_id)
                        .ok_or_else(EwsError::item_not_found)?;
                    let before = ev.clone();
                    let mut data = found.inst.data.clone();
                    let ext = apply_changes(&mut data, &ch, ctx.tz_context.as_deref())?;
                    item::merge_ext(&mut ev.extended_properties, ext);
                    let x = ev
                        .exceptions
                        .entry(orig)
                        .or_insert_with(|| ExceptionOccurrence {
                            id: found.inst.id.clone(),
                            data: found.inst.data.clone(),
                            last_modified: now,
                            change_key: new_change_key(),
                        });
                    x.data = data;
                    x.last_modified = now;
                    x.change_key = new_change_key();
                    let xid = x.id.clone();
                    meetings::keep_tracking(ev, &before, &mail);
                    ev.touch(now);
                    (master_id, Some(orig), before, xid)
                }
            };
            let c: &crate::model::Calendar = cal;
            let inst = expand::find_instance(c, &result_id).ok_or_else(EwsError::item_not_found)?;
            if send == Send::All {
                meetings::after_write(t, found.mailbox, Some(&before), &stored_id, occurrence, now);
            }
            let mut w = Writer::new();
            let eid = ids::item_id(found.mailbox, &inst.id);
            w.start("m:Items", &[])
                .start("t:CalendarItem", &[])
                .empty("t:ItemId", &[("Id", &eid), ("ChangeKey", &inst.change_key)])
                .end("t:CalendarItem")
                .end("m:Items")
                .start("m:ConflictResults", &[])
                .leaf("t:Count", "0")
                .end("m:ConflictResults");
            Ok(w.finish())
        })();
        msgs.push(r);
    }
    response_messages("UpdateItem", msgs)
}

pub fn delete_item(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let refs = required(op, "ItemIds")?;
    match op.attr("DeleteType") {
        Some("HardDelete" | "SoftDelete" | "MoveToDeletedItems") => {}
        Some(other) => {
            return Err(EwsError::schema(format!(
                "The 'DeleteType' attribute is invalid - The value '{other}' is invalid according to its datatype."
            )));
        }
        None => {
            return Err(EwsError::schema(
                "The required attribute 'DeleteType' is missing.",
            ));
        }
    }
    let cancellations = op.attr("SendMeetingCancellations");
    let now = ctx.st.now();
    let mut dir = ctx.st.dir();
    let mut msgs = Vec::new();
    for e in &refs.children {
        let r = (|| -> Result<String, EwsError> {
            let r = ItemRef::parse(e)
                .ok_or_else(|| EwsError::schema(format!("'{}' is not an item id.", e.name)))?;
            let found = ctx.find_item(tenant(&dir, ctx)?, &r)?;
            let send = parse_send(
                cancellations,
                "SendMeetingCancellations",
                EwsError::new(
                    "ErrorSendMeetingCancellationsRequired",
                    "SendMeetingCancellations attribute is required for Calendar items.",
                ),
            )?;
            let t = tenant_mut(&mut dir, ctx)?;
            let u = t
                .user_by_id_mut(found.mailbox)
                .ok_or_else(EwsError::item_not_found)?;
            let cal = u
                .calendar_mut(&found.calendar_id)
                .ok_or_else(EwsError::item_not_found)?;
            match found.inst.kind {
                InstanceKind::SingleInstance | InstanceKind::SeriesMaster => {
                    let removed = cal.events.remove(&found.inst.id);
                    let id = found.inst.id.clone();
                    cal.transactions.retain(|_, v| *v != id);
                    if let (Some(ev), Send::All) = (removed, send) {
                        meetings::after_delete(t, found.mailbox, &ev, now);
                    }
                }
                InstanceKind::Occurrence | InstanceKind::Exception => {
                    let orig = found
                        .inst
                        .original_start
                        .ok_or_else(EwsError::item_not_found)?;
                    let ev = cal
                        .events
                        .get_mut(&found.stored.id)
                        .ok_or_else(EwsError::item_not_found)?;
                    let before = ev.clone();
                    ev.exceptions.remove(&orig);
                    ev.cancelled.insert(orig);
                    ev.touch(now);
                    if send == Send::All {
                        meetings::after_write(
                            t,
                            found.mailbox,
                            Some(&before),
                            &found.stored.id,
                            Some(orig),
                            now,
                        );
                    }
                }
            }
            Ok(String::new())
        })();
        msgs.push(r);
    }
    response_messages("DeleteItem", msgs)
}

// ---------------------------------------------------------------------------------------------
// ResolveNames, ConvertId
// ---------------------------------------------------------------------------------------------

pub fn resolve_names(ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let entry = required(op, "UnresolvedEntry")?.text().to_owned();
    let q = entry
        .strip_prefix("SMTP:")
        .or_else(|| entry.strip_prefix("smtp:"))
        .unwrap_or(&entry)
        .to_lowercase();
    let dir = ctx.st.dir();
    let t = tenant(&dir, ctx)?;
    let mut hits: Vec<&User> = if q.is_empty() {
        Vec::new()
    } else {
        t.users()
            .filter(|u| u.has_mailbox)
            .filter(|u| {
                let mail = u.mail.to_lowercase();
                let name = u.display_name.to_lowercase();
                mail == q
                    || u.upn.eq_ignore_ascii_case(&q)
                    || mail.starts_with(&q)
                    || name.starts_with(&q)
                    || name.split_whitespace().any(|w| w.starts_with(&q))
            })
            .collect()
    };
    // An exact address wins alone.
    if let Some(exact) = hits
        .iter()
        .find(|u| u.mail.eq_ignore_ascii_case(&q) || u.upn.eq_ignore_ascii_case(&q))
    {
        hits = vec![*exact];
    }
    hits.truncate(100);
    let mut w = Writer::new();
    w.start(
        "m:ResolveNamesResponse",
        &[
            ("xmlns:m", super::xml::MESSAGES_NS),
            ("xmlns:t", super::xml::TYPES_NS),
        ],
    )
    .start("m:ResponseMessages", &[]);
    let (class, err) = match hits.len() {
        0 => (
            "Error",
            Some(EwsError::new(
                "ErrorNameResolutionNoResults",
                "No results were found.",
            )),
        ),
        1 => ("Success", None),
        _ => (
            "Warning",
            Some(EwsError::new(
                "ErrorNameResolutionMultipleResults",
                "Multiple results were found.",
            )),
        ),
    };
    w.start("m:ResolveNamesResponseMessage", &[("ResponseClass", class)]);
    match &err {
        Some(e) => e.write_message_body(&mut w),
        None => {
            w.leaf("m:ResponseCode", "NoError");
        }
    }
    if !hits.is_empty() {
        let n = hits.len().to_string();
        w.start(
            "m:ResolutionSet",
            &[
                ("TotalItemsInView", &n),
                ("IncludesLastItemInRange", "true"),
            ],
        );
        for u in &hits {
            w.start("t:Resolution", &[]).start("t:Mailbox", &[]);
            w.leaf("t:Name", &u.display_name)
                .leaf("t:EmailAddress", &u.mail)
                .leaf("t:RoutingType", "SMTP")
                .leaf("t:MailboxType", "Mailbox");
            w.end("t:Mailbox").end("t:Resolution");
        }
        w.end("m:ResolutionSet");
    }
    w.end("m:ResolveNamesResponseMessage")
        .end("m:ResponseMessages")
        .end("m:ResolveNamesResponse");
    Ok(w.finish())
}

const ID_FORMATS: &[&str] = &[
    "EwsLegacyId",
    "EwsId",
    "EntryId",
    "HexEntryId",
    "StoreId",
    "OwaId",
];

/// Converts between the simulator's id formats: `EwsId`/`EwsLegacyId`/`OwaId` are the EWS id;
/// `EntryId`/`StoreId` are base64 and `HexEntryId` hex of the same bytes behind a 4-byte
/// flags prefix (as a MAPI entry id has).
fn convert_id(id: &str, from: &str, to: &str) -> Result<String, EwsError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let raw: Vec<u8> = match from {
        "EwsId" | "EwsLegacyId" | "OwaId" => {
            ids::parse_item_id(id).map_err(id_err)?;
            STANDARD
                .decode(id.trim())
                .map_err(|_| EwsError::id_malformed())?
        }
        "EntryId" | "StoreId" => {
            let b = STANDARD
                .decode(id.trim())
                .map_err(|_| EwsError::id_malformed())?;
            b.strip_prefix(&[0u8, 0, 0, 0][..])
                .ok_or_else(EwsError::id_malformed)?
                .to_vec()
        }
        "HexEntryId" => {
            let h = id.trim();
            if !h.len().is_multiple_of(2) || h.len() < 8 {
                return Err(EwsError::id_malformed());
            }
            let b: Result<Vec<u8>, _> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2).unwrap_or("zz"), 16))
                .collect();
            b.map_err(|_| EwsError::id_malformed())?
                .strip_prefix(&[0u8, 0, 0, 0][..])
                .ok_or_else(EwsError::id_malformed)?
                .to_vec()
        }
        _ => return Err(EwsError::id_malformed()),
    };
    let ews = STANDARD.encode(&raw);
    ids::parse_item_id(&ews).map_err(id_err)?;
    let mut entry = vec![0u8, 0, 0, 0];
    entry.extend_from_slice(&raw);
    Ok(match to {
        "EwsId" | "EwsLegacyId" | "OwaId" => ews,
        "EntryId" | "StoreId" => STANDARD.encode(&entry),
        _ => entry.iter().map(|b| format!("{b:02X}")).collect(),
    })
}

pub fn convert_id_op(_ctx: &Ctx<'_>, op: &Element) -> OpResult {
    let dest = op.attr("DestinationFormat").unwrap_or("");
    if !ID_FORMATS.contains(&dest) {
        return Err(EwsError::schema(format!(
            "The 'DestinationFormat' attribute is invalid - The value '{dest}' is invalid according to its datatype."
        )));
    }
    let ids_el = required(op, "SourceIds")?;
    let msgs = ids_el
        .children
        .iter()
        .map(|a| {
            let from = a.attr("Format").unwrap_or("");
            let id = a.attr("Id").unwrap_or("");
            let mailbox = a.attr("Mailbox").unwrap_or("");
            let out = convert_id(id, from, dest)?;
            let mut w = Writer::new();
            w.empty(
                "m:AlternateId",
                &[
                    ("xsi:type", "t:AlternateIdType"),
                    ("Format", dest),
                    ("Id", &out),
                    ("Mailbox", mailbox),
                ],
            );
            Ok(w.finish())
        })
        .collect();
    response_messages("ConvertId", msgs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_convert_both_ways() {
        let m = Uuid::new_v4();
        let ews = ids::item_id(m, "AAMkAG");
        let hex = convert_id(&ews, "EwsId", "HexEntryId").unwrap();
        assert!(hex.starts_with("00000000"));
        assert_eq!(convert_id(&hex, "HexEntryId", "EwsId").unwrap(), ews);
        let entry = convert_id(&ews, "EwsId", "EntryId").unwrap();
        assert_eq!(convert_id(&entry, "EntryId", "EwsId").unwrap(), ews);
        assert_eq!(
            convert_id("DUMMY", "EwsId", "EntryId").unwrap_err().code,
            "ErrorInvalidIdMalformed"
        );
    }
}
