//! The simulator's own tenant model: tenants, app registrations, users/mailboxes, groups, room
//! lists, calendars and stored events (singles and series masters with their exceptions and
//! cancelled occurrences). Written from Microsoft's documentation; it shares nothing with
//! calgate's client.
//!
//! Everything here is plain data plus small, synchronous mutation methods. The whole
//! [`Directory`] lives behind one mutex in [`crate::state::SimState`]; never hold it across an
//! `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::{Timestamp, civil};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// All tenants the simulator hosts.
#[derive(Debug, Default)]
pub struct Directory {
    pub tenants: Vec<Tenant>,
}

impl Directory {
    /// Finds a tenant by GUID or by one of its domains (case-insensitive).
    pub fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.matches(id_or_domain))
    }
    pub fn tenant_mut(&mut self, id_or_domain: &str) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.matches(id_or_domain))
    }
    pub fn tenant_by_id(&self, id: Uuid) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }
    pub fn tenant_by_id_mut(&mut self, id: Uuid) -> Option<&mut Tenant> {
        self.tenants.iter_mut().find(|t| t.id == id)
    }
}

#[derive(Debug)]
pub struct Tenant {
    pub id: Uuid,
    /// Verified domains; the first is the default (`contoso.onmicrosoft.com` style).
    pub domains: Vec<String>,
    pub display_name: String,
    pub apps: Vec<App>,
    users: BTreeMap<Uuid, User>,
    /// Lower-cased UPN and mail → user id.
    user_index: HashMap<String, Uuid>,
    pub groups: Vec<Group>,
    pub room_lists: Vec<RoomList>,
    /// `Set-CalendarProcessing` of resource mailboxes that an operator changed (others use
    /// [`crate::meetings::BookingPolicy::default_for`]).
    pub booking_policies: HashMap<Uuid, crate::meetings::BookingPolicy>,
    /// Meeting messages (requests, updates, cancellations, responses) sent in this tenant.
    pub meeting_log: crate::meetings::MeetingLog,
    /// On-premises Active Directory accounts that may call EWS (service accounts).
    pub ews_accounts: Vec<EwsAccount>,
}

impl Tenant {
    pub fn new(id: Uuid, domain: &str, display_name: &str) -> Self {
        Tenant {
            id,
            domains: vec![domain.to_ascii_lowercase()],
            display_name: display_name.to_owned(),
            apps: Vec::new(),
            users: BTreeMap::new(),
            user_index: HashMap::new(),
            groups: Vec::new(),
            room_lists: Vec::new(),
            booking_policies: HashMap::new(),
            meeting_log: Default::default(),
            ews_accounts: Vec::new(),
        }
    }

    pub fn matches(&self, id_or_domain: &str) -> bool {
        if let Ok(u) = Uuid::parse_str(id_or_domain) {
            return u == self.id;
        }
        self.domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(id_or_domain))
    }

    pub fn default_domain(&self) -> &str {
        self.domains.first().map(String::as_str).unwrap_or("")
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.apps.iter().find(|a| a.client_id == id)
    }
    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.apps.iter_mut().find(|a| a.client_id == id)
    }

    /// Adds (or replaces) a user and indexes its UPN and mail.
    pub fn insert_user(&mut self, user: User) {
        if let Some(old) = self.users.get(&user.id) {
            self.user_index.remove(&old.upn.to_ascii_lowercase());
            self.user_index.remove(&old.mail.to_ascii_lowercase());
        }
        self.user_index
            .insert(user.upn.to_ascii_lowercase(), user.id);
        self.user_index
            .insert(user.mail.to_ascii_lowercase(), user.id);
        self.users.insert(user.id, user);
    }

    pub fn remove_user(&mut self, id: Uuid) -> Option<User> {
        let u = self.users.remove(&id)?;
        self.user_index.remove(&u.upn.to_ascii_lowercase());
        self.user_index.remove(&u.mail.to_ascii_lowercase());
        self.booking_policies.remove(&id);
        for g in &mut self.groups {
            g.members.remove(&id);
        }
        for l in &mut self.room_lists {
            l.rooms.retain(|r| *r != id);
        }
        Some(u)
    }

    /// Resolves `/users/{id | userPrincipalName}` (and mail) as Graph does: GUID or UPN,
    /// case-insensitive.
    pub fn user_id(&self, id_or_upn: &str) -> Option<Uuid> {
        if let Ok(u) = Uuid::parse_str(id_or_upn) {
            return self.users.contains_key(&u).then_some(u);
        }
        self.user_index
            .get(&id_or_upn.to_ascii_lowercase())
            .copied()
    }
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.user_id(id_or_upn).and_then(|id| self.users.get(&id))
    }
    pub fn user_mut(&mut self, id_or_upn: &str) -> Option<&mut User> {
        let id = self.user_id(id_or_upn)?;
        self.users.get_mut(&id)
    }
    pub fn user_by_id(&self, id: Uuid) -> Option<&User> {
        self.users.get(&id)
    }
    pub fn user_by_id_mut(&mut self, id: Uuid) -> Option<&mut User> {
        self.users.get_mut(&id)
    }
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group(&self, id_or_mail: &str) -> Option<&Group> {
        let id = Uuid::parse_str(id_or_mail).ok();
        self.groups
            .iter()
            .find(|g| Some(g.id) == id || g.mail.eq_ignore_ascii_case(id_or_mail))
    }
}

// ---------------------------------------------------------------------------------------------
// Applications and credentials
// ---------------------------------------------------------------------------------------------

/// An app registration plus its service principal in the tenant.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: Uuid,
    /// Object id of the service principal (the `oid` of app-only tokens).
    pub sp_object_id: Uuid,
    pub display_name: String,
    pub secrets: Vec<Secret>,
    pub certificates: Vec<Certificate>,
    /// Application permissions (Graph app roles) that an administrator consented to:
    /// `Calendars.Read`, `Calendars.ReadWrite`, `Place.Read.All`, `User.Read.All`, ….
    pub app_roles: BTreeSet<String>,
    /// Delegated permissions consented tenant-wide (admin consent), e.g. `Calendars.ReadWrite`.
    pub delegated_consent: BTreeSet<String>,
    /// Exchange RBAC for Applications assignments. Unioned with `app_roles`, as Exchange does.
    pub rbac: Vec<RbacAssignment>,
    /// Legacy Application Access Policy (constrains Entra grants only).
    pub access_policy: Option<AccessPolicy>,
    pub redirect_uris: Vec<String>,
    /// Whether the app is a public client (no secret needed for auth-code redemption).
    pub public_client: bool,
}

impl App {
    pub fn new(display_name: &str) -> Self {
        App {
            client_id: Uuid::new_v4(),
            sp_object_id: Uuid::new_v4(),
            display_name: display_name.to_owned(),
            secrets: Vec::new(),
            certificates: Vec::new(),
            app_roles: BTreeSet::new(),
            delegated_consent: BTreeSet::new(),
            rbac: Vec::new(),
            access_policy: None,
            redirect_uris: Vec::new(),
            public_client: false,
        }
    }
}

/// A client secret. The value is what the admin copies once from the portal; the portal also
/// shows the secret's *ID* (a GUID) which people paste by mistake.
#[derive(Clone)]
pub struct Secret {
    pub key_id: Uuid,
    pub display_name: String,
    pub value: String,
    pub start: Timestamp,
    pub expires: Timestamp,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key_id", &self.key_id)
            .field("display_name", &self.display_name)
            .field("value", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// An uploaded certificate credential (public part only).
#[derive(Debug, Clone)]
pub struct Certificate {
    pub key_id: Uuid,
    pub display_name: String,
    /// DER of the X.509 certificate.
    pub der: Vec<u8>,
    /// SHA-1 thumbprint (`x5t`), raw bytes.
    pub sha1: Vec<u8>,
    /// SHA-256 thumbprint (`x5t#S256`), raw bytes.
    pub sha256: Vec<u8>,
    pub start: Timestamp,
    pub expires: Timestamp,
}

/// `New-ManagementRoleAssignment -App … -Role "Application Calendars.ReadWrite" [-CustomResourceScope …]`.
#[derive(Debug, Clone)]
pub struct RbacAssignment {
    /// The Graph permission the role grants, e.g. `Calendars.Read` or `Calendars.ReadWrite`.
    pub permission: String,
    /// The management scope: a group whose members are in scope. `None` = the whole organisation.
    pub scope_group: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRight {
    RestrictAccess,
    DenyAccess,
}

/// `New-ApplicationAccessPolicy -AccessRight RestrictAccess|DenyAccess -PolicyScopeGroupId …`.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub access_right: AccessRight,
    pub group: Uuid,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Uuid,
    pub display_name: String,
    pub mail: String,
    pub members: BTreeSet<Uuid>,
}

#[derive(Debug, Clone)]
pub struct RoomList {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
    /// Room mailboxes (user ids) in this list, in order.
    pub rooms: Vec<Uuid>,
}

// ---------------------------------------------------------------------------------------------
// EWS (on-premises) accounts
// ---------------------------------------------------------------------------------------------

/// Who an EWS account may impersonate (`ExchangeImpersonation`): the ApplicationImpersonation
/// role over the whole organisation, over one room list's members (a management scope such as
/// `New-ManagementScope -RecipientRestrictionFilter {MemberOfGroup -eq '…'}`), or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImpersonationRight {
    All,
    /// The room list's address (lower-cased).
    RoomList(String),
    None,
}

impl ImpersonationRight {
    /// The `--credentials-out` spelling: `all`, `room-list:EMAIL`, `none`.
    pub fn as_text(&self) -> String {
        match self {
            ImpersonationRight::All => "all".into(),
            ImpersonationRight::RoomList(m) => format!("room-list:{m}"),
            ImpersonationRight::None => "none".into(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") {
            Some(ImpersonationRight::All)
        } else if t.eq_ignore_ascii_case("none") {
            Some(ImpersonationRight::None)
        } else {
            let (k, v) = t.split_once(':')?;
            (k.eq_ignore_ascii_case("room-list") && v.contains('@'))
                .then(|| ImpersonationRight::RoomList(v.trim().to_ascii_lowercase()))
        }
    }
}

/// Delegate access (Full Access / folder permissions) an EWS account has to other mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegateRight {
    All,
    /// Mailbox addresses (lower-cased).
    Mailboxes(Vec<String>),
}

/// An Active Directory account that authenticates to EWS with Basic or NTLM.
#[derive(Clone)]
pub struct EwsAccount {
    /// sAMAccountName, e.g. `svc-calgate`.
    pub sam: String,
    /// NetBIOS domain, e.g. `CONTOSO`.
    pub domain: String,
    /// userPrincipalName, e.g. `svc-calgate@contoso.example`.
    pub upn: String,
    pub password: String,
    pub impersonation: ImpersonationRight,
    pub delegate: DelegateRight,
}

impl EwsAccount {
    /// `DOMAIN\user`.
    pub fn logon_name(&self) -> String {
        format!("{}\\{}", self.domain, self.sam)
    }

    /// Whether `name` names this account: `DOMAIN\user`, `user@…` (UPN) or `user`
    /// (case-insensitive, as Active Directory compares).
    pub fn matches(&self, name: &str) -> bool {
        let n = name.trim();
        if let Some((d, u)) = n.split_once('\\') {
            return d.eq_ignore_ascii_case(&self.domain) && u.eq_ignore_ascii_case(&self.sam);
        }
        n.eq_ignore_ascii_case(&self.upn) || n.eq_ignore_ascii_case(&self.sam)
    }
}

impl std::fmt::Debug for EwsAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsAccount")
            .field("logon", &self.logon_name())
            .field("upn", &self.upn)
            .field("password", &"<redacted>")
            .field("impersonation", &self.impersonation)
            .field("delegate", &self.delegate)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Users, mailboxes and calendars
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MailboxKind {
    User,
    Room,
    Equipment,
    Shared,
}

#[derive(Debug, Clone)]
pub struct WorkingHours {
    pub days_of_week: Vec<calgate_recurrence::DayOfWeek>,
    pub start_time: civil::Time,
    pub end_time: civil::Time,
    /// Windows zone name.
    pub time_zone: String,
}

/// Room metadata shown by the places API.
#[derive(Debug, Clone, Default)]
pub struct RoomInfo {
    pub capacity: Option<i32>,
    pub building: Option<String>,
    pub floor_number: Option<i32>,
    pub floor_label: Option<String>,
    pub is_wheelchair_accessible: bool,
    pub tags: Vec<String>,
    pub audio_device_name: Option<String>,
    pub video_device_name: Option<String>,
    pub display_device_name: Option<String>,
    pub booking_type: Option<String>,
    pub phone: Option<String>,
    pub nickname: Option<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub upn: String,
    pub mail: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub kind: MailboxKind,
    /// Whether the account has an Exchange mailbox at all (users without one → `MailboxNotEnabledForRESTAPI`).
    pub has_mailbox: bool,
    pub account_enabled: bool,
    /// Mailbox time zone (Windows name), from mailbox settings.
    pub time_zone: String,
    pub working_hours: WorkingHours,
    pub room: Option<RoomInfo>,
    pub calendars: Vec<CalCell>,
}

impl User {
    pub fn default_calendar(&self) -> Option<&Calendar> {
        self.default_calendar_cell().map(|c| &**c)
    }
    /// The default calendar as held (with its version).
    pub fn default_calendar_cell(&self) -> Option<&CalCell> {
        self.calendars
            .iter()
            .find(|c| c.is_default)
            .or(self.calendars.first())
    }
    /// Calendar `id` as held (with its version).
    pub fn calendar_cell(&self, id: &str) -> Option<&CalCell> {
        self.calendars.iter().find(|c| c.id == id)
    }
    pub fn default_calendar_mut(&mut self) -> Option<&mut Calendar> {
        let idx =
            self.calendars
                .iter()
                .position(|c| c.is_default)
                .or(if self.calendars.is_empty() {
                    None
                } else {
                    Some(0)
                })?;
        self.calendars.get_mut(idx).map(|c| &mut **c)
    }
    pub fn calendar(&self, id: &str) -> Option<&Calendar> {
        self.calendar_cell(id).map(|c| &**c)
    }
    pub fn calendar_mut(&mut self, id: &str) -> Option<&mut Calendar> {
        self.calendars
            .iter_mut()
            .find(|c| c.id == id)
            .map(|c| &mut **c)
    }
    /// The calendar that holds event `event_id` (an id of a stored event, not of an occurrence).
    pub fn calendar_of_event_mut(&mut self, event_id: &str) -> Option<&mut Calendar> {
        self.calendars
            .iter_mut()
            .find(|c| c.events.contains_key(event_id))
            .map(|c| &mut **c)
    }
    pub fn calendar_of_event(&self, event_id: &str) -> Option<&Calendar> {
        self.calendars
            .iter()
            .find(|c| c.events.contains_key(event_id))
            .map(|c| &**c)
    }
}

/// Source of [`CalCell`] versions (process-wide, so a version names one content for good).
static NEXT_CALENDAR_VERSION: AtomicU64 = AtomicU64::new(1);

fn next_calendar_version() -> u64 {
    NEXT_CALENDAR_VERSION.fetch_add(1, Ordering::Relaxed)
}

/// A calendar as a [`User`] holds it: behind an `Arc` (a reader clones it cheaply and lets go
/// of the directory lock before expanding it), with a version that changes on *every* mutable
/// access ([`DerefMut`] takes a fresh one before handing out `&mut Calendar`). Two equal
/// versions therefore mean the same content: delta's unchanged-calendar fast path relies on it.
#[derive(Debug, Clone)]
pub struct CalCell {
    cal: Arc<Calendar>,
    version: u64,
}

impl CalCell {
    pub fn new(cal: Calendar) -> Self {
        CalCell {
            cal: Arc::new(cal),
            version: next_calendar_version(),
        }
    }

    /// Changes whenever the calendar may have changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A shared handle on the current content (copy-on-write: later edits do not touch it).
    pub fn shared(&self) -> Arc<Calendar> {
        Arc::clone(&self.cal)
    }
}

impl From<Calendar> for CalCell {
    fn from(cal: Calendar) -> Self {
        CalCell::new(cal)
    }
}

impl Deref for CalCell {
    type Target = Calendar;
    fn deref(&self) -> &Calendar {
        &self.cal
    }
}

impl DerefMut for CalCell {
    fn deref_mut(&mut self) -> &mut Calendar {
        self.version = next_calendar_version();
        Arc::make_mut(&mut self.cal)
    }
}

#[derive(Debug, Clone)]
pub struct Calendar {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub color: String,
    pub change_key: String,
    /// Stored events: single instances and series masters, by id.
    pub events: BTreeMap<String, StoredEvent>,
    /// `transactionId` → event id, for create de-duplication.
    pub transactions: HashMap<String, String>,
}

impl Calendar {
    pub fn new(id: String, name: &str, is_default: bool) -> Self {
        Calendar {
            id,
            name: name.to_owned(),
            is_default,
            color: "auto".to_owned(),
            change_key: new_change_key(),
            events: BTreeMap::new(),
            transactions: HashMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    #[default]
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    #[default]
    Normal,
    Personal,
    Private,
    Confidential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttendeeType {
    #[default]
    Required,
    Optional,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponseType {
    #[default]
    None,
    Organizer,
    TentativelyAccepted,
    Accepted,
    Declined,
    NotResponded,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailAddress {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attendee {
    pub email: EmailAddress,
    pub kind: AttendeeType,
    pub response: ResponseType,
    /// When `response` was given (`status.time`); `None` renders as `0001-01-01T00:00:00Z`.
    pub response_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub display_name: String,
    pub location_email: Option<String>,
    /// Graph `locationType` value (`default`, `conferenceRoom`, …).
    pub location_type: String,
    /// Graph `address` (`physicalAddress`), when the client gave one.
    pub address: Option<PhysicalAddress>,
    /// Graph `coordinates` (`outlookGeoCoordinates`), when the client gave them.
    pub coordinates: Option<GeoCoordinates>,
}

/// Graph `physicalAddress` (its v1.0 members); `None` = not given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhysicalAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// Graph `outlookGeoCoordinates` (Edm.Double members, kept as the client wrote them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GeoCoordinates {
    pub latitude: Option<serde_json::Number>,
    pub longitude: Option<serde_json::Number>,
    pub altitude: Option<serde_json::Number>,
    pub accuracy: Option<serde_json::Number>,
    pub altitude_accuracy: Option<serde_json::Number>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body {
    /// `"html"` or `"text"`.
    pub content_type: String,
    pub content: String,
}

/// A wall-clock date-time in a named zone, as Graph's `dateTimeTimeZone` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDateTime {
    pub date_time: civil::DateTime,
    /// The zone name as given by the client: a Windows name, an IANA name, or `UTC`.
    pub time_zone: String,
}

/// The editable fields of an event (also of one exception occurrence).
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    pub subject: String,
    pub body: Body,
    pub start: LocalDateTime,
    pub end: LocalDateTime,
    pub is_all_day: bool,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub importance: Importance,
    pub location: Location,
    /// Graph `locations` as the client gave them; empty = `[location]` (or none when
    /// `location` is empty). Setting `location` alone clears it (Graph: the two correspond).
    pub locations: Vec<Location>,
    pub attendees: Vec<Attendee>,
    pub organizer: EmailAddress,
    pub categories: Vec<String>,
    pub is_reminder_on: bool,
    pub reminder_minutes_before_start: i32,
    pub is_online_meeting: bool,
    pub response_requested: bool,
    pub allow_new_time_proposals: bool,
    pub hide_attendees: bool,
    pub is_cancelled: bool,
}

/// A recurring series' pattern plus the zone its wall-clock times are kept in.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRecurrence {
    pub rule: calgate_recurrence::Recurrence,
    /// `recurrenceTimeZone` as given (Windows or IANA); defaults to the start's zone.
    pub time_zone: String,
}

/// An occurrence that was edited or moved: its own data, keyed in the master by original start.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionOccurrence {
    pub id: String,
    pub data: EventData,
    pub last_modified: Timestamp,
    pub change_key: String,
}

/// A single-value extended property (`String {guid} Name X` → value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedProperty {
    pub id: String,
    pub value: String,
}

/// A stored item: a single instance or a series master.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub ical_uid: String,
    pub change_key: String,
    pub created: Timestamp,
    pub last_modified: Timestamp,
    pub transaction_id: Option<String>,
    pub data: EventData,
    pub recurrence: Option<SeriesRecurrence>,
    /// Edited/moved occurrences by original start instant.
    pub exceptions: BTreeMap<Timestamp, ExceptionOccurrence>,
    /// Cancelled (deleted) occurrences by original start instant.
    pub cancelled: BTreeSet<Timestamp>,
    pub extended_properties: Vec<ExtendedProperty>,
}

impl StoredEvent {
    /// Marks the item changed: new change key and last-modified time.
    pub fn touch(&mut self, now: Timestamp) {
        self.change_key = new_change_key();
        self.last_modified = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

/// A new Exchange-style item id (opaque, URL-safe base64, like `AAMkAGI2…AAA=`).
pub fn new_item_id() -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(46);
    bytes.extend_from_slice(&[0x00, 0x00, 0x0d, 0x24, 0x00, 0x46]); // "AAMkAE" prefix shape
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(&[0x00, 0x00]);
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A new change key (opaque base64, as Exchange's `changeKey`).
pub fn new_change_key() -> String {
    use base64::Engine as _;
    let mut bytes = vec![0x16, 0x00, 0x00, 0x00];
    bytes.extend_from_slice(&Uuid::new_v4().as_bytes()[..12]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A new iCalendar UID in Exchange's hex style.
pub fn new_ical_uid() -> String {
    let mut s = String::from("040000008200E00074C5B7101A82E00800000000");
    for b in Uuid::new_v4().as_bytes() {
        s.push_str(&format!("{b:02X}"));
    }
    s
}
