//! Seeds: `demo` (a realistic organisation, "Contoso") and `empty`; `--scale N` adds N extra
//! mailboxes with a realistic event mix; `--rng` makes everything deterministic: the same seed
//! gives the same tenant id, app ids, user ids, event ids and contents (dates are relative to
//! the wall clock at start-up).
//!
//! What the demo tenant contains is documented in `docs/sim/seed.md`.
//!
//! Seeding happens before [`SimState`] exists, so "now" here is the real clock at start-up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use calgate_recurrence::{
    DayOfWeek, Pattern, PatternType, Range, RangeKind, Recurrence, WeekIndex,
};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use uuid::Uuid;

use crate::model::{
    App, Attendee, AttendeeType, Body, Calendar, Directory, EmailAddress, EventData,
    ExceptionOccurrence, Group, Importance, LocalDateTime, Location, MailboxKind, RbacAssignment,
    ResponseType, RoomInfo, RoomList, Secret, Sensitivity, SeriesRecurrence, ShowAs, StoredEvent,
    Tenant, User, WorkingHours,
};
use crate::state::{PublishedApp, SimState};
use crate::{Seed, SimError, SimOptions};

/// The demo tenant's initial (`*.onmicrosoft.com`) domain.
pub const DEMO_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The demo tenant's vanity domain: every mailbox address uses it.
pub const DEMO_MAIL_DOMAIN: &str = "contoso.example";
/// Display name of the demo tenant.
pub const DEMO_TENANT_NAME: &str = "Contoso";

/// Days before "now" that seeded events start.
pub const WINDOW_PAST_DAYS: i64 = 30;
/// Days after "now" that seeded events end.
pub const WINDOW_FUTURE_DAYS: i64 = 120;

/// Builds the tenant described by `opts` and the app credentials to publish (the first one is
/// the main, read-write app).
pub fn build(opts: &SimOptions) -> Result<(Directory, Vec<PublishedApp>), SimError> {
    build_at(opts, Timestamp::now())
}

/// [`build`] with an explicit "now" (tests).
pub fn build_at(
    opts: &SimOptions,
    now: Timestamp,
) -> Result<(Directory, Vec<PublishedApp>), SimError> {
    let mut g = Gen::new(opts.rng, now)?;
    let mut tenant = Tenant::new(g.uuid(), DEMO_DOMAIN, DEMO_TENANT_NAME);
    tenant.domains.push(DEMO_MAIL_DOMAIN.to_owned());
    let mut published = Vec::new();

    // The main app first: published order matters (tests and docs use the first app).
    let main = g.app(
        "calgate",
        &[
            "Calendars.ReadWrite",
            "MailboxSettings.Read",
            "Place.Read.All",
            "User.Read.All",
        ],
        SignedDuration::from_hours(24 * 365),
    );
    published.push(publish(&main));
    tenant.apps.push(main.app);

    match opts.seed {
        Seed::Empty => {}
        Seed::Demo => {
            let ro = g.app(
                "calgate-readonly",
                &["Calendars.Read", "Place.Read.All"],
                SignedDuration::from_hours(24 * 365),
            );
            published.push(publish(&ro));
            tenant.apps.push(ro.app);

            demo_directory(&mut g, &mut tenant)?;

            let scope_group = tenant
                .group("calgate-scope@contoso.example")
                .map(|gr| gr.id)
                .ok_or_else(|| SimError::Seed("calgate-scope group missing".into()))?;
            let mut scoped = g.app(
                "calgate-scoped",
                &["Place.Read.All", "User.Read.All"],
                SignedDuration::from_hours(24 * 365),
            );
            scoped.app.rbac.push(RbacAssignment {
                permission: "Calendars.ReadWrite".into(),
                scope_group: Some(scope_group),
            });
            let mut p = publish(&scoped);
            p.roles
                .push("Calendars.ReadWrite (RBAC, scope calgate-scope)".into());
            published.push(p);
            tenant.apps.push(scoped.app);

            // An app whose only secret expired ten days ago (AADSTS7000222 tests).
            let expired = g.app(
                "calgate-expired",
                &["Calendars.Read"],
                SignedDuration::from_hours(-24 * 10),
            );
            published.push(publish(&expired));
            tenant.apps.push(expired.app);

            demo_events(&mut g, &mut tenant)?;
        }
    }

    if opts.scale > 0 {
        scale_mailboxes(&mut g, &mut tenant, opts.scale, opts.scale_events)?;
    }

    Ok((
        Directory {
            tenants: vec![tenant],
        },
        published,
    ))
}

/// The `--credentials-out` document (also served by `GET /_sim/credentials`):
/// `{"tenant_id","authority","graph_url","ews_url","ca_cert_pem"?,"apps":[…],"mailboxes":[…]}`.
pub fn credentials_document(
    state: &SimState,
    base_url: &str,
    ca_pem: Option<&str>,
) -> serde_json::Value {
    let apps: Vec<serde_json::Value> = crate::state::lock(&state.published)
        .iter()
        .map(|a| {
            serde_json::json!({"name": a.name, "client_id": a.client_id,
                "client_secret": a.client_secret, "roles": a.roles})
        })
        .collect();
    let (tenant_id, mailboxes) = {
        let dir = state.dir();
        match dir.tenants.first() {
            Some(t) => (
                t.id.to_string(),
                t.users()
                    .filter(|u| u.has_mailbox)
                    .map(|u| {
                        serde_json::json!({"address": u.mail, "kind": u.kind,
                            "display_name": u.display_name})
                    })
                    .collect::<Vec<_>>(),
            ),
            None => (String::new(), Vec::new()),
        }
    };
    let mut doc = serde_json::json!({
        "tenant_id": tenant_id,
        "authority": format!("{base_url}/{tenant_id}"),
        "graph_url": format!("{base_url}/v1.0"),
        "ews_url": format!("{base_url}/EWS/Exchange.asmx"),
        "apps": apps,
        "mailboxes": mailboxes,
    });
    if let Some(pem) = ca_pem {
        doc["ca_cert_pem"] = serde_json::Value::String(pem.to_owned());
    }
    doc
}

// ---------------------------------------------------------------------------------------------
// Deterministic generator
// ---------------------------------------------------------------------------------------------

/// A seeded generator of ids, secrets and choices, plus the time anchors of the seed.
pub struct Gen {
    rng: StdRng,
    now: Timestamp,
    /// Today's date (UTC) at start-up.
    today: Date,
    window_start: Timestamp,
    window_end: Timestamp,
    zones: HashMap<String, TimeZone>,
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen").field("now", &self.now).finish()
    }
}

struct NewApp {
    app: App,
    secret: String,
    roles: Vec<String>,
}

fn publish(a: &NewApp) -> PublishedApp {
    PublishedApp {
        name: a.app.display_name.clone(),
        client_id: a.app.client_id.to_string(),
        client_secret: a.secret.clone(),
        roles: a.roles.clone(),
    }
}

fn seed_err(e: impl std::fmt::Display) -> SimError {
    SimError::Seed(e.to_string())
}

const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-";

impl Gen {
    pub fn new(seed: u64, now: Timestamp) -> Result<Self, SimError> {
        let today = now.to_zoned(TimeZone::UTC).date();
        let window_start = now
            .checked_sub(SignedDuration::from_hours(24 * WINDOW_PAST_DAYS))
            .map_err(seed_err)?;
        let window_end = now
            .checked_add(SignedDuration::from_hours(24 * WINDOW_FUTURE_DAYS))
            .map_err(seed_err)?;
        Ok(Gen {
            rng: StdRng::seed_from_u64(seed),
            now,
            today,
            window_start,
            window_end,
            zones: HashMap::new(),
        })
    }

    pub fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// An Exchange-style item id (same shape as [`crate::model::new_item_id`]).
    pub fn item_id(&mut self) -> String {
        use base64::Engine as _;
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(&[0x00, 0x00, 0x0d, 0x24, 0x00, 0x46]);
        let mut r = [0u8; 32];
        self.rng.fill_bytes(&mut r);
        bytes.extend_from_slice(&r);
        bytes.extend_from_slice(&[0x00, 0x00]);
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    }

    pub fn change_key(&mut self) -> String {
        use base64::Engine as _;
        let mut bytes = vec![0x16, 0x00, 0x00, 0x00];
        let mut r = [0u8; 12];
        self.rng.fill_bytes(&mut r);
        bytes.extend_from_slice(&r);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn ical_uid(&mut self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(72);
        s.push_str("040000008200E00074C5B7101A82E00800000000");
        let mut r = [0u8; 16];
        self.rng.fill_bytes(&mut r);
        for b in r {
            let _ = write!(s, "{b:02X}");
        }
        s
    }

    /// A client-secret value shaped like Entra's (`abc8Q~` + 34 characters).
    pub fn secret_value(&mut self) -> String {
        let mut s = String::with_capacity(40);
        for i in 0..40 {
            if i == 3 {
                s.push_str("8Q~");
            }
            if (3..6).contains(&i) {
                continue;
            }
            let c = SECRET_CHARS[self.rng.random_range(0..SECRET_CHARS.len())];
            s.push(char::from(c));
        }
        s
    }

    fn range(&mut self, r: std::ops::Range<i64>) -> i64 {
        if r.is_empty() {
            return r.start;
        }
        self.rng.random_range(r)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.choose(&mut self.rng)
    }

    fn ago(&mut self, min_days: i64, max_days: i64) -> Timestamp {
        let secs = self.range(min_days * 86_400..max_days * 86_400 + 1);
        self.now
            .checked_sub(SignedDuration::from_secs(secs))
            .unwrap_or(self.now)
    }

    fn zone(&mut self, name: &str) -> TimeZone {
        if let Some(z) = self.zones.get(name) {
            return z.clone();
        }
        let z = calgate_tz::to_iana(name)
            .and_then(|iana| TimeZone::get(iana).ok())
            .unwrap_or(TimeZone::UTC);
        self.zones.insert(name.to_owned(), z.clone());
        z
    }

    fn day(&self, offset: i64) -> Date {
        self.today.checked_add(offset.days()).unwrap_or(self.today)
    }

    /// A weekday `offset` days from today, moved forward past a weekend.
    fn weekday(&self, offset: i64) -> Date {
        let d = self.day(offset);
        match d.weekday() {
            jiff::civil::Weekday::Saturday => d.checked_add(2.days()).unwrap_or(d),
            jiff::civil::Weekday::Sunday => d.checked_add(1.days()).unwrap_or(d),
            _ => d,
        }
    }

    fn rand_day(&mut self, r: std::ops::Range<i64>) -> Date {
        let o = self.range(r);
        self.day(o)
    }

    fn rand_weekday(&mut self, r: std::ops::Range<i64>) -> Date {
        let o = self.range(r);
        self.weekday(o)
    }

    fn app(&mut self, name: &str, roles: &[&str], valid_for: SignedDuration) -> NewApp {
        let mut app = App::new(name);
        app.client_id = self.uuid();
        app.sp_object_id = self.uuid();
        app.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        app.redirect_uris = vec!["http://localhost".into(), "http://127.0.0.1".into()];
        app.delegated_consent = ["Calendars.ReadWrite", "User.Read", "offline_access"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let value = self.secret_value();
        let start = self
            .now
            .checked_sub(SignedDuration::from_hours(24 * 30))
            .unwrap_or(self.now);
        let expires = self.now.checked_add(valid_for).unwrap_or(self.now);
        app.secrets.push(Secret {
            key_id: self.uuid(),
            display_name: format!("{name} secret"),
            value: value.clone(),
            start,
            expires,
        });
        NewApp {
            app,
            secret: value,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn calendar(&mut self) -> Calendar {
        let mut c = Calendar::new(self.item_id(), "Calendar", true);
        c.change_key = self.change_key();
        c
    }
}

// ---------------------------------------------------------------------------------------------
// The demo directory
// ---------------------------------------------------------------------------------------------

const WEU: &str = "W. Europe Standard Time";
const GMT: &str = "GMT Standard Time";
const EST: &str = "Eastern Standard Time";
const PST: &str = "Pacific Standard Time";
const IST: &str = "India Standard Time";
const AUS: &str = "AUS Eastern Standard Time";
const TOKYO: &str = "Tokyo Standard Time";

struct PersonDef {
    given: &'static str,
    surname: &'static str,
    /// Local part of the address (`first.last`).
    local: &'static str,
    title: &'static str,
    dept: &'static str,
    zone: &'static str,
    office: &'static str,
    /// Index of the manager in [`PEOPLE`].
    manager: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
const fn p(
    given: &'static str,
    surname: &'static str,
    local: &'static str,
    title: &'static str,
    dept: &'static str,
    zone: &'static str,
    office: &'static str,
    manager: Option<usize>,
) -> PersonDef {
    PersonDef {
        given,
        surname,
        local,
        title,
        dept,
        zone,
        office,
        manager,
    }
}

const AMS: &str = "Amsterdam HQ";
const LON: &str = "London";

#[rustfmt::skip]
const PEOPLE: [PersonDef; 25] = [
    p("Anna", "de Vries", "anna.devries", "Chief Executive Officer", "Management", WEU, AMS, None), // 0
    p("Lukas", "Becker", "lukas.becker", "Chief Financial Officer", "Finance", WEU, AMS, Some(0)), // 1
    p("Sophie", "Laurent", "sophie.laurent", "Head of People", "Human Resources", WEU, AMS, Some(0)), // 2
    p("Marco", "Rossi", "marco.rossi", "Engineering Manager", "Engineering", WEU, AMS, Some(0)), // 3
    p("Eva", "Jansen", "eva.jansen", "Senior Software Engineer", "Engineering", WEU, AMS, Some(3)), // 4
    p("Tomasz", "Nowak", "tomasz.nowak", "Software Engineer", "Engineering", WEU, AMS, Some(3)), // 5
    p("Ingrid", "Larsen", "ingrid.larsen", "Site Reliability Engineer", "Engineering", WEU, AMS, Some(3)), // 6
    p("Priya", "Sharma", "priya.sharma", "Software Engineer", "Engineering", IST, "Bengaluru", Some(3)), // 7
    p("Arjun", "Mehta", "arjun.mehta", "QA Engineer", "Engineering", IST, "Bengaluru", Some(3)), // 8
    p("Kenji", "Tanaka", "kenji.tanaka", "Solutions Architect", "Engineering", TOKYO, "Tokyo", Some(3)), // 9
    p("Oliver", "Bennett", "oliver.bennett", "Sales Director", "Sales", GMT, LON, Some(0)), // 10
    p("Charlotte", "Evans", "charlotte.evans", "Account Executive", "Sales", GMT, LON, Some(10)), // 11
    p("Harry", "Wilson", "harry.wilson", "Account Executive", "Sales", GMT, LON, Some(10)), // 12
    p("Emily", "Carter", "emily.carter", "Sales Engineer", "Sales", EST, "New York", Some(10)), // 13
    p("James", "Miller", "james.miller", "Account Executive", "Sales", EST, "New York", Some(10)), // 14
    p("Lachlan", "Hughes", "lachlan.hughes", "Regional Sales Manager APAC", "Sales", AUS, "Sydney", Some(10)), // 15
    p("Grace", "Thompson", "grace.thompson", "Marketing Manager", "Marketing", GMT, LON, Some(0)), // 16
    p("Noah", "Fischer", "noah.fischer", "Content Strategist", "Marketing", WEU, AMS, Some(16)), // 17
    p("Olivia", "Brown", "olivia.brown", "Product Marketing Manager", "Marketing", PST, "Seattle", Some(16)), // 18
    p("Daniel", "Kim", "daniel.kim", "Designer", "Marketing", PST, "Seattle", Some(16)), // 19
    p("Chloe", "Martin", "chloe.martin", "Financial Controller", "Finance", WEU, AMS, Some(1)), // 20
    p("Ruby", "Walker", "ruby.walker", "Accountant", "Finance", GMT, LON, Some(1)), // 21
    p("Mia", "Schneider", "mia.schneider", "Recruiter", "Human Resources", WEU, AMS, Some(2)), // 22
    p("Liam", "O'Connor", "liam.oconnor", "Office Manager", "Operations", GMT, LON, Some(0)), // 23
    p("Zoë", "Müller", "zoe.muller", "Facilities Coordinator", "Operations", WEU, AMS, Some(23)), // 24
];

struct RoomDef {
    name: &'static str,
    local: &'static str,
    capacity: i32,
    building: &'static str,
    floor: i32,
    video: Option<&'static str>,
    display: Option<&'static str>,
    accessible: bool,
    /// Index of the room list (0 = HQ, 1 = London).
    list: usize,
}

#[rustfmt::skip]
const ROOMS: [RoomDef; 8] = [
    RoomDef { name: "Amstel", local: "room-amstel", capacity: 12, building: "HQ Amsterdam", floor: 1, video: Some("Teams Room"), display: Some("Surface Hub 2S"), accessible: true, list: 0 },
    RoomDef { name: "Vondel", local: "room-vondel", capacity: 6, building: "HQ Amsterdam", floor: 1, video: Some("Teams Room"), display: Some("65\" display"), accessible: true, list: 0 },
    RoomDef { name: "Jordaan", local: "room-jordaan", capacity: 4, building: "HQ Amsterdam", floor: 2, video: None, display: Some("42\" display"), accessible: false, list: 0 },
    RoomDef { name: "Noord", local: "room-noord", capacity: 8, building: "HQ Amsterdam", floor: 2, video: Some("Webcam"), display: Some("55\" display"), accessible: true, list: 0 },
    RoomDef { name: "Zuid Boardroom", local: "room-zuid", capacity: 20, building: "HQ Amsterdam", floor: 3, video: Some("Teams Room"), display: Some("Dual 75\" displays"), accessible: true, list: 0 },
    RoomDef { name: "Thames", local: "room-thames", capacity: 10, building: "London Office", floor: 4, video: Some("Teams Room"), display: Some("Surface Hub 2S"), accessible: true, list: 1 },
    RoomDef { name: "Soho", local: "room-soho", capacity: 4, building: "London Office", floor: 4, video: None, display: None, accessible: false, list: 1 },
    RoomDef { name: "Camden", local: "room-camden", capacity: 16, building: "London Office", floor: 5, video: Some("Teams Room"), display: Some("86\" display"), accessible: true, list: 1 },
];

const EQUIPMENT: [(&str, &str); 4] = [
    ("Projector (portable)", "equip-projector"),
    ("Delivery van", "equip-van"),
    ("Camera kit", "equip-camera"),
    ("Laptop cart", "equip-laptops"),
];

fn addr(local: &str) -> String {
    format!("{local}@{DEMO_MAIL_DOMAIN}")
}

fn weekdays() -> Vec<DayOfWeek> {
    vec![
        DayOfWeek::Monday,
        DayOfWeek::Tuesday,
        DayOfWeek::Wednesday,
        DayOfWeek::Thursday,
        DayOfWeek::Friday,
    ]
}

fn time(h: i8, m: i8) -> Time {
    Time::new(h, m, 0, 0).unwrap_or(Time::midnight())
}

/// A new mailbox with an empty default calendar.
fn mailbox(
    g: &mut Gen,
    local: &str,
    display_name: &str,
    kind: MailboxKind,
    zone: &str,
    hours: (Time, Time),
) -> User {
    let mail = addr(local);
    User {
        id: g.uuid(),
        upn: mail.clone(),
        mail,
        display_name: display_name.to_owned(),
        given_name: None,
        surname: None,
        job_title: None,
        department: None,
        office_location: None,
        kind,
        has_mailbox: true,
        account_enabled: true,
        time_zone: zone.to_owned(),
        working_hours: WorkingHours {
            days_of_week: weekdays(),
            start_time: hours.0,
            end_time: hours.1,
            time_zone: zone.to_owned(),
        },
        room: None,
        calendars: vec![g.calendar()],
    }
}

/// Ids of the demo's mailboxes, by role.
struct DemoIds {
    people: Vec<Uuid>,
    rooms: Vec<Uuid>,
    equipment: Vec<Uuid>,
}

fn demo_directory(g: &mut Gen, t: &mut Tenant) -> Result<(), SimError> {
    let mut ids = DemoIds {
        people: Vec::new(),
        rooms: Vec::new(),
        equipment: Vec::new(),
    };
    for def in &PEOPLE {
        let start_h = g.range(8..10) as i8;
        let start_m = if g.chance(0.3) { 30 } else { 0 };
        let mut u = mailbox(
            g,
            def.local,
            &format!("{} {}", def.given, def.surname),
            MailboxKind::User,
            def.zone,
            (time(start_h, start_m), time(start_h + 8, start_m)),
        );
        u.given_name = Some(def.given.to_owned());
        u.surname = Some(def.surname.to_owned());
        u.job_title = Some(def.title.to_owned());
        u.department = Some(def.dept.to_owned());
        u.office_location = Some(def.office.to_owned());
        ids.people.push(u.id);
        t.insert_user(u);
    }
    for r in &ROOMS {
        let zone = if r.list == 0 { WEU } else { GMT };
        let mut u = mailbox(
            g,
            r.local,
            &format!("Room {}", r.name),
            MailboxKind::Room,
            zone,
            (time(7, 0), time(20, 0)),
        );
        let floor_label = format!("Floor {}", r.floor);
        u.office_location = Some(format!("{} {}", r.building, floor_label));
        let mut tags = Vec::new();
        if r.video.is_some() {
            tags.push("Video conferencing".to_owned());
        }
        if r.capacity >= 12 {
            tags.push("Large".to_owned());
        }
        u.room = Some(RoomInfo {
            capacity: Some(r.capacity),
            building: Some(r.building.to_owned()),
            floor_number: Some(r.floor),
            floor_label: Some(floor_label),
            is_wheelchair_accessible: r.accessible,
            tags,
            audio_device_name: r.video.map(|_| "Ceiling microphones".to_owned()),
            video_device_name: r.video.map(str::to_owned),
            display_device_name: r.display.map(str::to_owned),
            booking_type: Some("standard".to_owned()),
            phone: Some(format!(
                "+{} {}",
                if r.list == 0 {
                    "31 20 555"
                } else {
                    "44 20 7946"
                },
                1000 + r.floor * 10 + r.capacity
            )),
            nickname: Some(r.name.to_owned()),
        });
        ids.rooms.push(u.id);
        t.insert_user(u);
    }
    for (name, local) in EQUIPMENT {
        let u = mailbox(
            g,
            local,
            name,
            MailboxKind::Equipment,
            WEU,
            (time(8, 0), time(18, 0)),
        );
        ids.equipment.push(u.id);
        t.insert_user(u);
    }

    // Room lists.
    let lists = [
        ("HQ Amsterdam rooms", "rooms-hq"),
        ("London office rooms", "rooms-lon"),
    ];
    for (i, (name, local)) in lists.into_iter().enumerate() {
        let rooms = ROOMS
            .iter()
            .zip(&ids.rooms)
            .filter(|(r, _)| r.list == i)
            .map(|(_, id)| *id)
            .collect();
        t.room_lists.push(RoomList {
            id: g.uuid(),
            display_name: name.to_owned(),
            email: addr(local),
            rooms,
        });
    }

    // Groups. calgate-scope: a subset of mailboxes for RBAC management-scope tests.
    let scope_members: BTreeSet<Uuid> = [3usize, 4, 5, 7]
        .iter()
        .filter_map(|i| ids.people.get(*i).copied())
        .chain(ids.rooms.iter().take(2).copied())
        .chain(ids.equipment.first().copied())
        .collect();
    t.groups.push(Group {
        id: g.uuid(),
        display_name: "calgate-scope".into(),
        mail: addr("calgate-scope"),
        members: scope_members,
    });
    t.groups.push(Group {
        id: g.uuid(),
        display_name: "All rooms".into(),
        mail: addr("all-rooms"),
        members: ids.rooms.iter().copied().collect(),
    });
    t.groups.push(Group {
        id: g.uuid(),
        display_name: "All staff".into(),
        mail: addr("all-staff"),
        members: ids.people.iter().copied().collect(),
    });
    t.groups.push(Group {
        id: g.uuid(),
        display_name: "Engineering".into(),
        mail: addr("engineering"),
        members: PEOPLE
            .iter()
            .zip(&ids.people)
            .filter(|(d, _)| d.dept == "Engineering")
            .map(|(_, id)| *id)
            .collect(),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// One meeting (or personal item) before it is copied into each participant's calendar.
struct Spec {
    data: EventData,
    recurrence: Option<SeriesRecurrence>,
    /// Edited occurrences: original start → new data.
    exceptions: Vec<(Timestamp, EventData)>,
    cancelled: Vec<Timestamp>,
    /// Mailbox of the organizer (gets the organizer's copy).
    organizer: Uuid,
    /// Other mailboxes that get a copy, with their response.
    copies: Vec<(Uuid, ResponseType)>,
}

fn email_of(u: &User) -> EmailAddress {
    EmailAddress {
        name: u.display_name.clone(),
        address: u.mail.clone(),
    }
}

fn ldt(date: Date, t: Time, zone: &str) -> LocalDateTime {
    LocalDateTime {
        date_time: date.to_datetime(t),
        time_zone: zone.to_owned(),
    }
}

fn add_minutes(l: &LocalDateTime, minutes: i64) -> LocalDateTime {
    LocalDateTime {
        date_time: l
            .date_time
            .checked_add(minutes.minutes())
            .unwrap_or(l.date_time),
        time_zone: l.time_zone.clone(),
    }
}

fn html(text: &str) -> Body {
    Body {
        content_type: "html".into(),
        content: format!(
            "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>{text}</p></body></html>"
        ),
    }
}

fn data(
    subject: &str,
    organizer: EmailAddress,
    start: LocalDateTime,
    end: LocalDateTime,
) -> EventData {
    EventData {
        subject: subject.to_owned(),
        body: Body {
            content_type: "html".into(),
            content: String::new(),
        },
        start,
        end,
        is_all_day: false,
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        importance: Importance::Normal,
        location: Location {
            display_name: String::new(),
            location_email: None,
            location_type: "default".into(),
            ..Default::default()
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

fn all_day(
    subject: &str,
    organizer: EmailAddress,
    start: Date,
    days: i64,
    zone: &str,
) -> EventData {
    let end = start.checked_add(days.max(1).days()).unwrap_or(start);
    let mut d = data(
        subject,
        organizer,
        ldt(start, Time::midnight(), zone),
        ldt(end, Time::midnight(), zone),
    );
    d.is_all_day = true;
    d.show_as = ShowAs::Free;
    d.is_reminder_on = false;
    d.reminder_minutes_before_start = 1080;
    d
}

fn teams(d: &mut EventData) {
    d.is_online_meeting = true;
    if d.location.display_name.is_empty() {
        d.location.display_name = "Microsoft Teams Meeting".into();
    }
}

fn room_location(d: &mut EventData, room: &User) {
    d.location = Location {
        display_name: room.display_name.clone(),
        location_email: Some(room.mail.clone()),
        location_type: "conferenceRoom".into(),
        ..Default::default()
    };
}

fn attendee(u: &User, kind: AttendeeType, response: ResponseType) -> Attendee {
    Attendee {
        email: email_of(u),
        kind,
        response,
    }
}

fn response_show_as(r: ResponseType, organizer_show_as: ShowAs) -> ShowAs {
    match r {
        ResponseType::TentativelyAccepted | ResponseType::NotResponded | ResponseType::None => {
            ShowAs::Tentative
        }
        ResponseType::Declined => ShowAs::Free,
        _ => organizer_show_as,
    }
}

impl Gen {
    fn response(&mut self) -> ResponseType {
        let x = self.range(0..100);
        match x {
            0..70 => ResponseType::Accepted,
            70..82 => ResponseType::TentativelyAccepted,
            82..90 => ResponseType::Declined,
            _ => ResponseType::None,
        }
    }

    /// Creates the recurrence, sets the master's start/end to the first occurrence, and
    /// returns `(recurrence, first date)`.
    fn series(
        &mut self,
        pattern: Pattern,
        start_date: Date,
        kind: RangeKind,
        zone: &str,
    ) -> Result<(SeriesRecurrence, Date), SimError> {
        let rule = Recurrence {
            pattern,
            range: Range {
                start_date,
                kind,
                recurrence_time_zone: Some(zone.to_owned()),
            },
        };
        let horizon = start_date.checked_add(800.days()).map_err(seed_err)?;
        let first = rule
            .dates_between(start_date, horizon)
            .map_err(seed_err)?
            .first()
            .copied()
            .ok_or_else(|| SimError::Seed("a seeded series has no occurrence".into()))?;
        Ok((
            SeriesRecurrence {
                rule,
                time_zone: zone.to_owned(),
            },
            first,
        ))
    }

    /// Original start instants of the series' timed occurrences within the seed window.
    fn occurrence_starts(&mut self, s: &Spec) -> Vec<(Timestamp, Date)> {
        let Some(rec) = &s.recurrence else {
            return Vec::new();
        };
        let tz = self.zone(&rec.time_zone);
        let Ok(start) = s.data.start.date_time.to_zoned(tz.clone()) else {
            return Vec::new();
        };
        let Ok(end) = s.data.end.date_time.to_zoned(tz.clone()) else {
            return Vec::new();
        };
        let duration = start.duration_until(&end);
        rec.rule
            .expand(
                s.data.start.date_time.time(),
                duration,
                &tz,
                self.window_start,
                self.window_end,
            )
            .map(|v| {
                v.into_iter()
                    .map(|o| (o.start.timestamp(), o.date))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds a moved/edited occurrence and a cancelled occurrence to a timed series.
    fn add_exceptions(&mut self, s: &mut Spec, moved: usize, cancelled: usize) {
        let occ = self.occurrence_starts(s);
        if occ.len() < 3 {
            return;
        }
        let mut used = BTreeSet::new();
        for i in 0..moved + cancelled {
            let idx = self.range(0..occ.len() as i64) as usize;
            if !used.insert(idx) {
                continue;
            }
            let (ts, date) = occ[idx];
            if i < moved {
                let mut d = s.data.clone();
                let shift = *self.pick(&[-60i64, 30, 60, 120, 24 * 60]).unwrap_or(&60);
                let st = ldt(date, s.data.start.date_time.time(), &s.data.start.time_zone);
                let dur = s.data.start.date_time.duration_until(s.data.end.date_time);
                d.start = add_minutes(&st, shift);
                d.end = LocalDateTime {
                    date_time: d
                        .start
                        .date_time
                        .checked_add(dur)
                        .unwrap_or(d.start.date_time),
                    time_zone: d.start.time_zone.clone(),
                };
                if self.chance(0.4) {
                    d.subject = format!("{} (moved)", s.data.subject);
                }
                if self.chance(0.3) {
                    d.body = html("Agenda changed for this week, see the notes.");
                }
                s.exceptions.push((ts, d));
            } else {
                s.cancelled.push(ts);
            }
        }
    }
}

/// Copies a spec into the calendars of the organizer and every participant.
fn place(g: &mut Gen, t: &mut Tenant, s: Spec) -> Result<(), SimError> {
    let ical_uid = g.ical_uid();
    let created = g.ago(WINDOW_PAST_DAYS + 5, WINDOW_PAST_DAYS + 90);
    let last_modified = g.ago(1, WINDOW_PAST_DAYS);
    let mut targets = vec![(s.organizer, ResponseType::Organizer)];
    targets.extend(s.copies.iter().copied());
    for (mbx, response) in targets {
        let mut data = s.data.clone();
        if response != ResponseType::Organizer {
            data.show_as = response_show_as(response, data.show_as);
        }
        let exceptions: BTreeMap<Timestamp, ExceptionOccurrence> = s
            .exceptions
            .iter()
            .map(|(ts, d)| {
                let mut d = d.clone();
                d.show_as = data.show_as;
                (
                    *ts,
                    ExceptionOccurrence {
                        id: g.item_id(),
                        data: d,
                        last_modified,
                        change_key: g.change_key(),
                    },
                )
            })
            .collect();
        let ev = StoredEvent {
            id: g.item_id(),
            ical_uid: ical_uid.clone(),
            change_key: g.change_key(),
            created,
            last_modified,
            transaction_id: None,
            data,
            recurrence: s.recurrence.clone(),
            exceptions,
            cancelled: s.cancelled.iter().copied().collect(),
            extended_properties: Vec::new(),
        };
        let cal = t
            .user_by_id_mut(mbx)
            .and_then(User::default_calendar_mut)
            .ok_or_else(|| SimError::Seed("seeded mailbox has no calendar".into()))?;
        cal.events.insert(ev.id.clone(), ev);
    }
    Ok(())
}

/// Snapshot of a mailbox for building events (avoids borrowing the tenant).
#[derive(Clone)]
struct Who {
    id: Uuid,
    email: EmailAddress,
    zone: String,
    user: User,
}

fn who(t: &Tenant, id: Uuid) -> Result<Who, SimError> {
    let u = t
        .user_by_id(id)
        .ok_or_else(|| SimError::Seed("seeded mailbox missing".into()))?;
    Ok(Who {
        id,
        email: email_of(u),
        zone: u.time_zone.clone(),
        user: User {
            calendars: Vec::new(),
            ..u.clone()
        },
    })
}

/// A meeting organised by `org` with `people` (required), `rooms` and `gear` (resources).
fn meeting(
    g: &mut Gen,
    org: &Who,
    people: &[Who],
    rooms: &[Who],
    gear: &[Who],
    d: EventData,
) -> Spec {
    let mut d = d;
    let mut copies = Vec::new();
    for (i, w) in people.iter().enumerate() {
        if w.id == org.id {
            continue;
        }
        let r = g.response();
        let kind = if i > 0 && g.chance(0.15) {
            AttendeeType::Optional
        } else {
            AttendeeType::Required
        };
        d.attendees.push(attendee(&w.user, kind, r));
        copies.push((w.id, r));
    }
    for w in rooms.iter().chain(gear) {
        d.attendees.push(attendee(
            &w.user,
            AttendeeType::Resource,
            ResponseType::Accepted,
        ));
        copies.push((w.id, ResponseType::Accepted));
    }
    if let Some(room) = rooms.first() {
        room_location(&mut d, &room.user);
    }
    Spec {
        data: d,
        recurrence: None,
        exceptions: Vec::new(),
        cancelled: Vec::new(),
        organizer: org.id,
        copies,
    }
}

fn personal(org: &Who, d: EventData) -> Spec {
    let mut d = d;
    d.response_requested = false;
    Spec {
        data: d,
        recurrence: None,
        exceptions: Vec::new(),
        cancelled: Vec::new(),
        organizer: org.id,
        copies: Vec::new(),
    }
}

const MEETING_SUBJECTS: [&str; 24] = [
    "Customer call: Fabrikam renewal",
    "Design review",
    "Quarterly business review",
    "Architecture discussion",
    "Interview: backend engineer",
    "Budget check-in",
    "Campaign kickoff",
    "Pricing workshop",
    "Incident post-mortem",
    "Partner sync: Northwind Traders",
    "Roadmap planning",
    "Vendor demo",
    "Hiring committee",
    "Website refresh: status",
    "Security review",
    "Contract negotiation: Tailspin Toys",
    "Onboarding session",
    "Demo prep",
    "Offsite planning",
    "Customer workshop: Litware",
    "Data migration go/no-go",
    "Press briefing prep",
    "Lunch & learn: Rust",
    "Board pack review",
];

const PERSONAL: [(&str, ShowAs, Sensitivity, i64); 12] = [
    ("Focus time", ShowAs::Busy, Sensitivity::Normal, 120),
    ("Lunch", ShowAs::Free, Sensitivity::Normal, 60),
    ("Doctor appointment", ShowAs::Oof, Sensitivity::Private, 90),
    ("Gym", ShowAs::Busy, Sensitivity::Personal, 60),
    ("School pick-up", ShowAs::Oof, Sensitivity::Personal, 45),
    (
        "Prep: quarterly report",
        ShowAs::Busy,
        Sensitivity::Normal,
        90,
    ),
    ("Commute", ShowAs::WorkingElsewhere, Sensitivity::Normal, 60),
    (
        "Hold: maybe travel",
        ShowAs::Tentative,
        Sensitivity::Normal,
        120,
    ),
    (
        "Imported appointment",
        ShowAs::Unknown,
        Sensitivity::Normal,
        30,
    ),
    ("Bank appointment", ShowAs::Busy, Sensitivity::Private, 30),
    ("Expense reports", ShowAs::Busy, Sensitivity::Normal, 30),
    (
        "Read: industry report",
        ShowAs::Free,
        Sensitivity::Normal,
        60,
    ),
];

/// Fixed-date holidays `(month, day, name, office)`; "" = every office.
const HOLIDAYS: [(i8, i8, &str, &str); 9] = [
    (1, 1, "New Year's Day", ""),
    (4, 27, "King's Day", AMS),
    (5, 5, "Liberation Day", AMS),
    (7, 4, "Independence Day", "New York"),
    (8, 15, "Independence Day (India)", "Bengaluru"),
    (10, 2, "Gandhi Jayanti", "Bengaluru"),
    (11, 3, "Culture Day", "Tokyo"),
    (12, 25, "Christmas Day", ""),
    (12, 26, "Boxing Day", ""),
];

fn demo_events(g: &mut Gen, t: &mut Tenant) -> Result<(), SimError> {
    let people: Vec<Who> = {
        let mut v = Vec::new();
        for def in &PEOPLE {
            let id = t
                .user_id(&addr(def.local))
                .ok_or_else(|| SimError::Seed("person missing".into()))?;
            v.push(who(t, id)?);
        }
        v
    };
    let rooms: Vec<Who> = ROOMS
        .iter()
        .map(|r| {
            t.user_id(&addr(r.local))
                .ok_or_else(|| SimError::Seed("room missing".into()))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|id| who(t, id))
        .collect::<Result<_, _>>()?;
    let gear: Vec<Who> = EQUIPMENT
        .iter()
        .map(|(_, l)| {
            t.user_id(&addr(l))
                .ok_or_else(|| SimError::Seed("equipment missing".into()))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|id| who(t, id))
        .collect::<Result<_, _>>()?;
    let hq_rooms: Vec<Who> = rooms.iter().take(5).cloned().collect();
    let lon_rooms: Vec<Who> = rooms.iter().skip(5).cloned().collect();
    let room_for = |w: &Who| -> &[Who] {
        match w.zone.as_str() {
            GMT => &lon_rooms,
            WEU => &hq_rooms,
            _ => &[],
        }
    };
    let mut specs: Vec<Spec> = Vec::new();

    // --- Series ------------------------------------------------------------------------------
    // Weekly standup Mon–Fri (Engineering), organiser Marco, in room Jordaan.
    {
        let eng: Vec<Who> = [3usize, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = weekdays();
        p.first_day_of_week = DayOfWeek::Monday;
        let (rec, first) = g.series(p, g.day(-75), RangeKind::NoEnd, WEU)?;
        let d = data(
            "Engineering standup",
            people[3].email.clone(),
            ldt(first, time(9, 30), WEU),
            ldt(first, time(9, 45), WEU),
        );
        let mut d = d;
        teams(&mut d);
        let mut s = meeting(g, &people[3], &eng, &rooms[2..3], &[], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 3);
        specs.push(s);
    }
    // Daily on-call handover (every day, including weekends), Ingrid and Tomasz.
    {
        let (rec, first) = g.series(
            Pattern::new(PatternType::Daily, 1),
            g.day(-40),
            RangeKind::EndDate(g.day(90)),
            WEU,
        )?;
        let mut d = data(
            "On-call handover",
            people[6].email.clone(),
            ldt(first, time(8, 45), WEU),
            ldt(first, time(9, 0), WEU),
        );
        teams(&mut d);
        d.reminder_minutes_before_start = 5;
        let mut s = meeting(
            g,
            &people[6],
            &[people[6].clone(), people[5].clone()],
            &[],
            &[],
            d,
        );
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 2, 2);
        specs.push(s);
    }
    // Daily sales huddle, every 2 days, numbered.
    {
        let (rec, first) = g.series(
            Pattern::new(PatternType::Daily, 2),
            g.day(-20),
            RangeKind::Numbered(40),
            GMT,
        )?;
        let mut d = data(
            "Sales huddle",
            people[10].email.clone(),
            ldt(first, time(8, 30), GMT),
            ldt(first, time(8, 45), GMT),
        );
        teams(&mut d);
        let team: Vec<Who> = [10usize, 11, 12, 13, 14]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut s = meeting(g, &people[10], &team, &[], &[], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 1);
        specs.push(s);
    }
    // Weekly 1:1s between every manager and report.
    for (i, def) in PEOPLE.iter().enumerate() {
        let Some(m) = def.manager else { continue };
        let mgr = &people[m];
        let day = *g.pick(&weekdays()).unwrap_or(&DayOfWeek::Tuesday);
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![day];
        let start_date = g.rand_day(-200..-35);
        let kind = if g.chance(0.2) {
            RangeKind::EndDate(g.rand_day(30..110))
        } else {
            RangeKind::NoEnd
        };
        // A time that works for both: the manager's zone, working hours.
        let h = g.range(10..16) as i8;
        let (rec, first) = g.series(p, start_date, kind, &mgr.zone)?;
        let mut d = data(
            &format!("1:1 {} / {}", PEOPLE[m].given, def.given),
            mgr.email.clone(),
            ldt(first, time(h, 0), &mgr.zone),
            ldt(first, time(h, 30), &mgr.zone),
        );
        teams(&mut d);
        d.sensitivity = if g.chance(0.3) {
            Sensitivity::Private
        } else {
            Sensitivity::Normal
        };
        let mut s = meeting(g, mgr, &[mgr.clone(), people[i].clone()], &[], &[], d);
        s.copies
            .iter_mut()
            .for_each(|c| c.1 = ResponseType::Accepted);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 1);
        specs.push(s);
    }
    // Biweekly sprint planning (Engineering) in Amstel, with the projector.
    {
        let eng: Vec<Who> = [3usize, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut p = Pattern::new(PatternType::Weekly, 2);
        p.days_of_week = vec![DayOfWeek::Monday];
        p.first_day_of_week = DayOfWeek::Monday;
        let (rec, first) = g.series(p, g.day(-90), RangeKind::NoEnd, WEU)?;
        let mut d = data(
            "Sprint planning",
            people[3].email.clone(),
            ldt(first, time(13, 0), WEU),
            ldt(first, time(15, 0), WEU),
        );
        teams(&mut d);
        d.body = html("Backlog grooming and sprint goals. Bring your estimates.");
        let mut s = meeting(g, &people[3], &eng, &rooms[0..1], &gear[0..1], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 1);
        specs.push(s);
    }
    // Biweekly forecast review (Sales), London, Thames.
    {
        let team: Vec<Who> = [10usize, 11, 12, 13, 14, 15, 1]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut p = Pattern::new(PatternType::Weekly, 2);
        p.days_of_week = vec![DayOfWeek::Thursday];
        let (rec, first) = g.series(p, g.day(-50), RangeKind::NoEnd, GMT)?;
        let mut d = data(
            "Sales forecast review",
            people[10].email.clone(),
            ldt(first, time(15, 0), GMT),
            ldt(first, time(16, 0), GMT),
        );
        teams(&mut d);
        d.importance = Importance::High;
        d.sensitivity = Sensitivity::Confidential;
        let mut s = meeting(g, &people[10], &team, &rooms[5..6], &[], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 1);
        specs.push(s);
    }
    // Monthly relative: all hands on the first Monday, in the boardroom, everyone invited.
    {
        let mut p = Pattern::new(PatternType::RelativeMonthly, 1);
        p.days_of_week = vec![DayOfWeek::Monday];
        p.index = WeekIndex::First;
        let (rec, first) = g.series(p, g.day(-120), RangeKind::NoEnd, WEU)?;
        let mut d = data(
            "All hands",
            people[0].email.clone(),
            ldt(first, time(16, 0), WEU),
            ldt(first, time(17, 0), WEU),
        );
        teams(&mut d);
        d.body = html("Company update, Q&amp;A. Join in the Zuid Boardroom or online.");
        let mut s = meeting(g, &people[0], &people, &rooms[4..5], &gear[2..3], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 0);
        specs.push(s);
    }
    // Monthly relative: last Friday drinks (free), London.
    {
        let mut p = Pattern::new(PatternType::RelativeMonthly, 1);
        p.days_of_week = vec![DayOfWeek::Friday];
        p.index = WeekIndex::Last;
        let (rec, first) = g.series(p, g.day(-100), RangeKind::NoEnd, GMT)?;
        let mut d = data(
            "Friday drinks",
            people[23].email.clone(),
            ldt(first, time(17, 30), GMT),
            ldt(first, time(19, 0), GMT),
        );
        d.show_as = ShowAs::Free;
        d.response_requested = false;
        let lon: Vec<Who> = people.iter().filter(|w| w.zone == GMT).cloned().collect();
        let mut s = meeting(g, &people[23], &lon, &rooms[7..8], &[], d);
        s.recurrence = Some(rec);
        specs.push(s);
    }
    // Absolute monthly: month-end close on the 25th (Finance).
    {
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 1);
        p.day_of_month = 25;
        let (rec, first) = g.series(p, g.day(-150), RangeKind::NoEnd, WEU)?;
        let mut d = data(
            "Month-end close",
            people[1].email.clone(),
            ldt(first, time(10, 0), WEU),
            ldt(first, time(11, 30), WEU),
        );
        d.sensitivity = Sensitivity::Confidential;
        d.categories = vec!["Finance".into()];
        let fin: Vec<Who> = [1usize, 20, 21]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut s = meeting(g, &people[1], &fin, &rooms[1..2], &[], d);
        s.recurrence = Some(rec);
        g.add_exceptions(&mut s, 1, 0);
        specs.push(s);
    }
    // Absolute monthly every 3 months: quarterly van service (equipment booking).
    {
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 3);
        p.day_of_month = 10;
        let (rec, first) = g.series(p, g.day(-200), RangeKind::NoEnd, WEU)?;
        let mut d = data(
            "Van service",
            people[24].email.clone(),
            ldt(first, time(8, 0), WEU),
            ldt(first, time(12, 0), WEU),
        );
        d.show_as = ShowAs::WorkingElsewhere;
        d.location.display_name = "Garage Noord, Amsterdam".into();
        let s = meeting(g, &people[24], &[people[24].clone()], &[], &gear[1..2], d);
        let mut s = s;
        s.recurrence = Some(rec);
        specs.push(s);
    }
    // Absolute yearly: birthdays (all-day, free) in each manager's calendar; yearly review.
    for (i, def) in PEOPLE.iter().enumerate() {
        let Some(m) = def.manager else { continue };
        if i % 3 != 0 {
            continue;
        }
        let bday = g.rand_day(-25..110);
        let mut p = Pattern::new(PatternType::AbsoluteYearly, 1);
        p.month = bday.month() as u8;
        p.day_of_month = bday.day() as u8;
        let start =
            Date::new(bday.year() - 3, bday.month(), bday.day().min(28)).map_err(seed_err)?;
        let mgr = &people[m];
        let (rec, first) = g.series(p, start, RangeKind::NoEnd, &mgr.zone)?;
        let mut d = all_day(
            &format!("{}'s birthday", def.given),
            mgr.email.clone(),
            first,
            1,
            &mgr.zone,
        );
        d.sensitivity = Sensitivity::Personal;
        d.categories = vec!["Birthday".into()];
        let mut s = personal(mgr, d);
        s.recurrence = Some(rec);
        specs.push(s);
    }
    // Relative yearly: budget kickoff, second Tuesday of a month in the window.
    {
        let m = g.rand_day(0..100);
        let mut p = Pattern::new(PatternType::RelativeYearly, 1);
        p.month = m.month() as u8;
        p.days_of_week = vec![DayOfWeek::Tuesday];
        p.index = WeekIndex::Second;
        let start = Date::new(m.year() - 2, 1, 1).map_err(seed_err)?;
        let (rec, first) = g.series(p, start, RangeKind::NoEnd, WEU)?;
        let mut d = data(
            "Annual budget kickoff",
            people[1].email.clone(),
            ldt(first, time(9, 0), WEU),
            ldt(first, time(12, 0), WEU),
        );
        d.importance = Importance::High;
        d.sensitivity = Sensitivity::Confidential;
        let execs: Vec<Who> = [1usize, 0, 2, 3, 10, 16, 20]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut s = meeting(g, &people[1], &execs, &rooms[4..5], &[], d);
        s.recurrence = Some(rec);
        specs.push(s);
    }
    // Absolute yearly, timed: annual performance reviews (HR), in India time.
    {
        let m = g.rand_day(10..100);
        let mut p = Pattern::new(PatternType::AbsoluteYearly, 1);
        p.month = m.month() as u8;
        p.day_of_month = m.day().min(28) as u8;
        let start = Date::new(m.year() - 1, 1, 1).map_err(seed_err)?;
        let (rec, first) = g.series(p, start, RangeKind::Numbered(5), IST)?;
        let mut d = data(
            "Annual review: Bengaluru team",
            people[2].email.clone(),
            ldt(first, time(14, 0), IST),
            ldt(first, time(15, 0), IST),
        );
        teams(&mut d);
        d.sensitivity = Sensitivity::Private;
        let team: Vec<Who> = [2usize, 7, 8, 3]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        let mut s = meeting(g, &people[2], &team, &[], &[], d);
        s.recurrence = Some(rec);
        specs.push(s);
    }

    // --- Single meetings -----------------------------------------------------------------------
    for n in 0..90 {
        let org_i = g.range(0..people.len() as i64) as usize;
        let org = people[org_i].clone();
        let count = g.range(1..6) as usize;
        let mut invited = vec![org.clone()];
        for _ in 0..count {
            let j = g.range(0..people.len() as i64) as usize;
            if !invited.iter().any(|w| w.id == people[j].id) {
                invited.push(people[j].clone());
            }
        }
        let offset = g.range(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
        let date = g.weekday(offset);
        let h = g.range(9..17) as i8;
        let m = if g.chance(0.5) { 30 } else { 0 };
        let len = *g.pick(&[30i64, 30, 45, 60, 60, 90]).unwrap_or(&60);
        let subject = MEETING_SUBJECTS[n % MEETING_SUBJECTS.len()];
        let st = ldt(date, time(h, m), &org.zone);
        let mut d = data(
            subject,
            org.email.clone(),
            st.clone(),
            add_minutes(&st, len),
        );
        d.body = html(&format!("{subject}. Agenda to follow."));
        let room: Vec<Who> = if g.chance(0.6) {
            g.pick(room_for(&org)).cloned().into_iter().collect()
        } else {
            Vec::new()
        };
        if room.is_empty() || g.chance(0.5) {
            teams(&mut d);
        }
        let kit: Vec<Who> = if g.chance(0.12) {
            g.pick(&gear).cloned().into_iter().collect()
        } else {
            Vec::new()
        };
        if n % 17 == 3 {
            d.sensitivity = Sensitivity::Private;
        } else if n % 13 == 5 {
            d.sensitivity = Sensitivity::Confidential;
        }
        if n % 11 == 2 {
            d.show_as = ShowAs::Tentative;
        }
        if n % 9 == 4 {
            d.importance = Importance::High;
        }
        if n % 23 == 7 {
            d.is_cancelled = true;
            d.subject = format!("Canceled: {subject}");
        }
        if g.chance(0.2) {
            d.categories = vec![
                (*g.pick(&["Customer", "Internal", "Hiring", "Travel"])
                    .unwrap_or(&"Internal"))
                .to_owned(),
            ];
        }
        specs.push(meeting(g, &org, &invited, &room, &kit, d));
    }
    // Room bookings: every room gets meetings organised by people of its office.
    for n in 0..48usize {
        let room = rooms[n % rooms.len()].clone();
        let locals: Vec<&Who> = people.iter().filter(|w| w.zone == room.zone).collect();
        let Some(org) = g.pick(&locals).map(|w| (*w).clone()) else {
            continue;
        };
        let other = people[g.range(0..people.len() as i64) as usize].clone();
        let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
        let h = g.range(8..18) as i8;
        let len = *g.pick(&[30i64, 60, 60, 90, 120]).unwrap_or(&60);
        let subject = MEETING_SUBJECTS[(n * 7) % MEETING_SUBJECTS.len()];
        let st = ldt(date, time(h, 0), &room.zone);
        let mut d = data(
            subject,
            org.email.clone(),
            st.clone(),
            add_minutes(&st, len),
        );
        if n % 6 == 0 {
            d.sensitivity = Sensitivity::Private;
        }
        specs.push(meeting(g, &org, &[org.clone(), other], &[room], &[], d));
    }
    // A few meetings in explicit other zones (travel) and in UTC.
    for (i, zone) in [PST, EST, "UTC", TOKYO, AUS].into_iter().enumerate() {
        let org = people[(i * 5 + 1) % people.len()].clone();
        let date = g.rand_weekday(5..100);
        let st = ldt(date, time(10, 0), zone);
        let mut d = data(
            &format!("Customer visit ({zone})"),
            org.email.clone(),
            st.clone(),
            add_minutes(&st, 120),
        );
        d.location.display_name = "Customer site".into();
        d.categories = vec!["Travel".into()];
        let other = people[(i * 5 + 10) % people.len()].clone();
        specs.push(meeting(g, &org, &[org.clone(), other], &[], &[], d));
    }
    // Van and camera bookings.
    for (i, (kit, subject)) in [
        (1usize, "Trade show: load van"),
        (2, "Product photo shoot"),
        (3, "Training day laptops"),
        (1, "Office move: van"),
    ]
    .into_iter()
    .enumerate()
    {
        let org = people[[24usize, 19, 22, 23][i]].clone();
        let date = g.rand_weekday(-20..100);
        let st = ldt(date, time(9, 0), &org.zone);
        let mut d = data(
            subject,
            org.email.clone(),
            st.clone(),
            add_minutes(&st, 240),
        );
        d.show_as = ShowAs::WorkingElsewhere;
        specs.push(meeting(
            g,
            &org,
            std::slice::from_ref(&org),
            &[],
            &gear[kit..kit + 1],
            d,
        ));
    }

    // --- Personal items, vacations, conferences, holidays ----------------------------------------
    for (i, w) in people.iter().enumerate() {
        let n = g.range(6..13) as usize;
        for k in 0..n {
            let (subject, show_as, sens, len) = PERSONAL[(i + k * 5) % PERSONAL.len()];
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let h = g.range(8..17) as i8;
            let st = ldt(date, time(h, 0), &w.zone);
            let mut d = data(subject, w.email.clone(), st.clone(), add_minutes(&st, len));
            d.show_as = show_as;
            d.sensitivity = sens;
            if sens == Sensitivity::Private {
                d.body = html("Personal. Do not book over this.");
            }
            if show_as == ShowAs::Free {
                d.is_reminder_on = false;
            }
            specs.push(personal(w, d));
        }
        // A personal weekly series (gym / lunch walks) ending in the window.
        if i % 4 == 1 {
            let mut p = Pattern::new(PatternType::Weekly, 1);
            p.days_of_week = vec![DayOfWeek::Tuesday, DayOfWeek::Thursday];
            let (rec, first) = g.series(p, g.day(-45), RangeKind::EndDate(g.day(60)), &w.zone)?;
            let mut d = data(
                "Lunch walk",
                w.email.clone(),
                ldt(first, time(12, 30), &w.zone),
                ldt(first, time(13, 0), &w.zone),
            );
            d.show_as = ShowAs::Free;
            d.sensitivity = Sensitivity::Personal;
            let mut s = personal(w, d);
            s.recurrence = Some(rec);
            g.add_exceptions(&mut s, 0, 2);
            specs.push(s);
        }
        // Vacation (multi-day all-day, oof, private).
        if g.chance(0.7) {
            let start = g.rand_day(-25..100);
            let days = g.range(3..10);
            let mut d = all_day("Vacation", w.email.clone(), start, days, &w.zone);
            d.show_as = ShowAs::Oof;
            d.sensitivity = if g.chance(0.5) {
                Sensitivity::Private
            } else {
                Sensitivity::Normal
            };
            specs.push(personal(w, d));
        }
        // Working from home days.
        for _ in 0..g.range(1..4) {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let mut d = all_day("Working from home", w.email.clone(), date, 1, &w.zone);
            d.show_as = ShowAs::WorkingElsewhere;
            specs.push(personal(w, d));
        }
        // Holidays for the person's office.
        let office = PEOPLE[i].office;
        for (month, day, name, where_) in HOLIDAYS {
            if !where_.is_empty() && where_ != office {
                continue;
            }
            for year in [g.today.year(), g.today.year() + 1] {
                let Ok(date) = Date::new(year, month, day) else {
                    continue;
                };
                let from = g.day(-WINDOW_PAST_DAYS);
                let to = g.day(WINDOW_FUTURE_DAYS - 1);
                if date >= from && date <= to {
                    let mut d = all_day(name, w.email.clone(), date, 1, &w.zone);
                    d.categories = vec!["Holiday".into()];
                    d.response_requested = false;
                    specs.push(personal(w, d));
                }
            }
        }
        // Company days, always in the window.
        let mut d = all_day(
            "Company offsite",
            people[0].email.clone(),
            g.weekday(40),
            2,
            &w.zone,
        );
        d.show_as = ShowAs::WorkingElsewhere;
        specs.push(personal(w, d));
        let mut d = all_day(
            "Office closed: maintenance",
            people[23].email.clone(),
            g.weekday(-12),
            1,
            &w.zone,
        );
        d.show_as = ShowAs::Oof;
        specs.push(personal(w, d));
    }
    // Conference: multi-day, several people, own invitation.
    {
        let start = g.rand_weekday(20..90);
        let mut d = all_day(
            "Conference: Cloud Summit",
            people[3].email.clone(),
            start,
            3,
            WEU,
        );
        d.show_as = ShowAs::WorkingElsewhere;
        d.location.display_name = "RAI Amsterdam".into();
        let att: Vec<Who> = [3usize, 4, 9, 13]
            .iter()
            .map(|i| people[*i].clone())
            .collect();
        specs.push(meeting(g, &people[3], &att, &[], &[], d));
    }

    for s in specs {
        place(g, t, s)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// --scale N
// ---------------------------------------------------------------------------------------------

const SCALE_ZONES: [&str; 8] = [WEU, WEU, WEU, GMT, GMT, EST, PST, IST];

/// Instances of a scale mailbox that are not timed singles: 6 all-day events and the
/// occurrences of its 5 series in the window (one cancelled each), measured on the seed.
const SCALE_FIXED_INSTANCES: usize = 62;
/// Timed singles of a scale mailbox when no count is asked for (~150 instances in all).
const SCALE_DEFAULT_SINGLES: usize = 88;

/// Adds `n` mailboxes `user00001@…` with about 150 event instances each in the window (or
/// about `events` when given: the singles make up the difference to the fixed part).
fn scale_mailboxes(
    g: &mut Gen,
    t: &mut Tenant,
    n: usize,
    events: Option<usize>,
) -> Result<(), SimError> {
    let singles = events.map_or(SCALE_DEFAULT_SINGLES, |e| {
        e.saturating_sub(SCALE_FIXED_INSTANCES)
    });
    for i in 1..=n {
        let zone = SCALE_ZONES[i % SCALE_ZONES.len()];
        let local = format!("user{i:05}");
        let mut u = mailbox(
            g,
            &local,
            &format!("Load User {i:05}"),
            MailboxKind::User,
            zone,
            (time(9, 0), time(17, 0)),
        );
        u.given_name = Some("Load".into());
        u.surname = Some(format!("User {i:05}"));
        u.department = Some("Load testing".into());
        u.job_title = Some("Synthetic user".into());
        let me = EmailAddress {
            name: u.display_name.clone(),
            address: u.mail.clone(),
        };
        let mut events = Vec::with_capacity(singles + 11);
        let created = g.ago(WINDOW_PAST_DAYS + 5, WINDOW_PAST_DAYS + 60);
        let mut push = |g: &mut Gen, s: Spec| {
            let ev = StoredEvent {
                id: g.item_id(),
                ical_uid: g.ical_uid(),
                change_key: g.change_key(),
                created,
                last_modified: created,
                transaction_id: None,
                data: s.data,
                recurrence: s.recurrence,
                exceptions: s
                    .exceptions
                    .into_iter()
                    .map(|(ts, d)| {
                        (
                            ts,
                            ExceptionOccurrence {
                                id: g.item_id(),
                                data: d,
                                last_modified: created,
                                change_key: g.change_key(),
                            },
                        )
                    })
                    .collect(),
                cancelled: s.cancelled.into_iter().collect(),
                extended_properties: Vec::new(),
            };
            events.push(ev);
        };
        let solo = |d: EventData| Spec {
            data: d,
            recurrence: None,
            exceptions: Vec::new(),
            cancelled: Vec::new(),
            organizer: Uuid::nil(),
            copies: Vec::new(),
        };
        // ~88 singles (or as many as asked for).
        for k in 0..singles {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 1);
            let h = g.range(8..18) as i8;
            let len = *g.pick(&[30i64, 30, 60, 60, 90]).unwrap_or(&60);
            let st = ldt(date, time(h, if k % 2 == 0 { 0 } else { 30 }), zone);
            let mut d = data(
                MEETING_SUBJECTS[k % MEETING_SUBJECTS.len()],
                me.clone(),
                st.clone(),
                add_minutes(&st, len),
            );
            d.show_as = match k % 10 {
                0 => ShowAs::Tentative,
                1 => ShowAs::Free,
                2 => ShowAs::WorkingElsewhere,
                _ => ShowAs::Busy,
            };
            if k % 7 == 0 {
                d.sensitivity = Sensitivity::Private;
            }
            if k % 3 == 0 {
                let other = g.range(1..n as i64 + 1);
                d.attendees.push(Attendee {
                    email: EmailAddress {
                        name: format!("Load User {other:05}"),
                        address: addr(&format!("user{other:05}")),
                    },
                    kind: AttendeeType::Required,
                    response: ResponseType::None,
                });
                d.is_online_meeting = true;
            }
            push(g, solo(d));
        }
        // ~6 all-day (vacation, WFH).
        for k in 0..6 {
            let date = g.rand_weekday(-WINDOW_PAST_DAYS..WINDOW_FUTURE_DAYS - 3);
            let (subject, show, days) = if k == 0 {
                ("Vacation", ShowAs::Oof, 3)
            } else {
                ("Working from home", ShowAs::WorkingElsewhere, 1)
            };
            let mut d = all_day(subject, me.clone(), date, days, zone);
            d.show_as = show;
            push(g, solo(d));
        }
        // Series: weekly 1:1 (~21), biweekly (~11), monthly relative (~5), monthly absolute (~5),
        // weekly Mon/Wed (~17 until its end date) — with moved and cancelled occurrences.
        let day = *g.pick(&weekdays()).unwrap_or(&DayOfWeek::Wednesday);
        let mut defs: Vec<(Pattern, &str, i8, RangeKind)> = Vec::with_capacity(5);
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![day];
        defs.push((p, "Weekly 1:1", 11, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::Weekly, 2);
        p.days_of_week = vec![DayOfWeek::Thursday];
        defs.push((p, "Team sync", 14, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::RelativeMonthly, 1);
        p.days_of_week = vec![DayOfWeek::Monday];
        defs.push((p, "Monthly review", 15, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::AbsoluteMonthly, 1);
        p.day_of_month = 15;
        defs.push((p, "Reporting", 10, RangeKind::NoEnd));
        let mut p = Pattern::new(PatternType::Weekly, 1);
        p.days_of_week = vec![DayOfWeek::Monday, DayOfWeek::Wednesday];
        defs.push((p, "Project sync", 16, RangeKind::EndDate(g.day(30))));
        for (p, subject, h, kind) in defs {
            let (rec, first) = g.series(p, g.day(-60), kind, zone)?;
            let mut d = data(
                subject,
                me.clone(),
                ldt(first, time(h, 0), zone),
                ldt(first, time(h, 30), zone),
            );
            d.is_online_meeting = true;
            let mut s = solo(d);
            s.recurrence = Some(rec);
            g.add_exceptions(&mut s, 1, 1);
            push(g, s);
        }
        if let Some(cal) = u.default_calendar_mut() {
            for ev in events {
                cal.events.insert(ev.id.clone(), ev);
            }
        }
        t.insert_user(u);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn demo_is_deterministic_and_complete() {
        let now = Timestamp::now();
        let opts = SimOptions {
            rng: 42,
            ..SimOptions::default()
        };
        let (a, pa) = build_at(&opts, now).unwrap();
        let (b, pb) = build_at(&opts, now).unwrap();
        let ta = &a.tenants[0];
        let tb = &b.tenants[0];
        assert_eq!(ta.id, tb.id);
        assert_eq!(pa[0].client_secret, pb[0].client_secret);
        let ids_a: Vec<_> = ta.users().map(|u| u.id).collect();
        let ids_b: Vec<_> = tb.users().map(|u| u.id).collect();
        assert_eq!(ids_a, ids_b);
        assert_eq!(ta.user_count(), 25 + 8 + 4);
        for u in ta.users() {
            let n = u.default_calendar().unwrap().events.len();
            if u.kind == MailboxKind::User {
                assert!((20..=70).contains(&n), "{} has {n} items", u.mail);
            }
        }
    }
}
