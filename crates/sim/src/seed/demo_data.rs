//! The demo tenant ("Contoso") as data: its people, rooms, room lists, equipment, groups and
//! apps, and what their calendars hold — recurring series and single events as rows, plus the
//! tables the event generators draw from. `demo.rs` turns these tables into the model.
//!
//! Order matters: rows are generated in the order they stand here, and that order decides which
//! ids and random choices each row gets from `--rng`. Indexes into [`PEOPLE`], [`ROOMS`] and
//! [`EQUIPMENT`] are checked when the tenant is built (a wrong one is a seed error).

use calgate_recurrence::{DayOfWeek, PatternType, WeekIndex};

use crate::model::{Importance, Sensitivity, ShowAs};

// ---------------------------------------------------------------------------------------------
// Zones and offices
// ---------------------------------------------------------------------------------------------

pub(super) const WEU: &str = "W. Europe Standard Time";
pub(super) const GMT: &str = "GMT Standard Time";
pub(super) const EST: &str = "Eastern Standard Time";
pub(super) const PST: &str = "Pacific Standard Time";
pub(super) const IST: &str = "India Standard Time";
pub(super) const AUS: &str = "AUS Eastern Standard Time";
pub(super) const TOKYO: &str = "Tokyo Standard Time";

const AMS: &str = "Amsterdam HQ";
const LON: &str = "London";

// ---------------------------------------------------------------------------------------------
// Directory
// ---------------------------------------------------------------------------------------------

pub(super) struct PersonDef {
    pub given: &'static str,
    pub surname: &'static str,
    /// Local part of the address (`first.last`).
    pub local: &'static str,
    pub title: &'static str,
    pub dept: &'static str,
    pub zone: &'static str,
    pub office: &'static str,
    /// Index of the manager in [`PEOPLE`].
    pub manager: Option<usize>,
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

/// The people (user mailboxes). Working hours start at a random 8:00–9:30 and last 8 hours.
#[rustfmt::skip]
pub(super) const PEOPLE: [PersonDef; 25] = [
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

/// A room list; its rooms share its zone and phone prefix.
pub(super) struct RoomListDef {
    pub name: &'static str,
    pub local: &'static str,
    pub zone: &'static str,
    pub phone_prefix: &'static str,
}

#[rustfmt::skip]
pub(super) const ROOM_LISTS: [RoomListDef; 2] = [
    RoomListDef { name: "HQ Amsterdam rooms", local: "rooms-hq", zone: WEU, phone_prefix: "31 20 555" }, // 0
    RoomListDef { name: "London office rooms", local: "rooms-lon", zone: GMT, phone_prefix: "44 20 7946" }, // 1
];

pub(super) struct RoomDef {
    pub name: &'static str,
    pub local: &'static str,
    pub capacity: i32,
    pub building: &'static str,
    pub floor: i32,
    pub video: Option<&'static str>,
    pub display: Option<&'static str>,
    pub accessible: bool,
    /// Index of the room list in [`ROOM_LISTS`].
    pub list: usize,
}

#[rustfmt::skip]
pub(super) const ROOMS: [RoomDef; 8] = [
    RoomDef { name: "Amstel", local: "room-amstel", capacity: 12, building: "HQ Amsterdam", floor: 1, video: Some("Teams Room"), display: Some("Surface Hub 2S"), accessible: true, list: 0 }, // 0
    RoomDef { name: "Vondel", local: "room-vondel", capacity: 6, building: "HQ Amsterdam", floor: 1, video: Some("Teams Room"), display: Some("65\" display"), accessible: true, list: 0 }, // 1
    RoomDef { name: "Jordaan", local: "room-jordaan", capacity: 4, building: "HQ Amsterdam", floor: 2, video: None, display: Some("42\" display"), accessible: false, list: 0 }, // 2
    RoomDef { name: "Noord", local: "room-noord", capacity: 8, building: "HQ Amsterdam", floor: 2, video: Some("Webcam"), display: Some("55\" display"), accessible: true, list: 0 }, // 3
    RoomDef { name: "Zuid Boardroom", local: "room-zuid", capacity: 20, building: "HQ Amsterdam", floor: 3, video: Some("Teams Room"), display: Some("Dual 75\" displays"), accessible: true, list: 0 }, // 4
    RoomDef { name: "Thames", local: "room-thames", capacity: 10, building: "London Office", floor: 4, video: Some("Teams Room"), display: Some("Surface Hub 2S"), accessible: true, list: 1 }, // 5
    RoomDef { name: "Soho", local: "room-soho", capacity: 4, building: "London Office", floor: 4, video: None, display: None, accessible: false, list: 1 }, // 6
    RoomDef { name: "Camden", local: "room-camden", capacity: 16, building: "London Office", floor: 5, video: Some("Teams Room"), display: Some("86\" display"), accessible: true, list: 1 }, // 7
];

/// Rooms' working hours (in their list's zone).
pub(super) const ROOM_HOURS: ((i8, i8), (i8, i8)) = ((7, 0), (20, 0));

pub(super) struct EquipmentDef {
    pub name: &'static str,
    pub local: &'static str,
}

#[rustfmt::skip]
pub(super) const EQUIPMENT: [EquipmentDef; 4] = [
    EquipmentDef { name: "Projector (portable)", local: "equip-projector" }, // 0
    EquipmentDef { name: "Delivery van", local: "equip-van" }, // 1
    EquipmentDef { name: "Camera kit", local: "equip-camera" }, // 2
    EquipmentDef { name: "Laptop cart", local: "equip-laptops" }, // 3
];

/// Equipment's zone and working hours.
pub(super) const EQUIPMENT_ZONE: &str = WEU;
pub(super) const EQUIPMENT_HOURS: ((i8, i8), (i8, i8)) = ((8, 0), (18, 0));

/// Members of a group drawn from one of the tables.
pub(super) enum Members {
    None,
    All,
    /// By index.
    Some(&'static [usize]),
    /// The people of a department.
    Department(&'static str),
}

pub(super) struct GroupDef {
    pub name: &'static str,
    pub local: &'static str,
    pub people: Members,
    pub rooms: Members,
    pub equipment: Members,
}

#[rustfmt::skip]
pub(super) const GROUPS: [GroupDef; 4] = [
    // A subset of mailboxes for RBAC management-scope tests.
    GroupDef { name: "calgate-scope", local: "calgate-scope", people: Members::Some(&[3, 4, 5, 7]), rooms: Members::Some(&[0, 1]), equipment: Members::Some(&[0]) },
    GroupDef { name: "All rooms", local: "all-rooms", people: Members::None, rooms: Members::All, equipment: Members::None },
    GroupDef { name: "All staff", local: "all-staff", people: Members::All, rooms: Members::None, equipment: Members::None },
    GroupDef { name: "Engineering", local: "engineering", people: Members::Department("Engineering"), rooms: Members::None, equipment: Members::None },
];

// ---------------------------------------------------------------------------------------------
// Apps
// ---------------------------------------------------------------------------------------------

/// An app registration with one client secret, published in `--credentials-out`.
pub(super) struct AppDef {
    pub name: &'static str,
    /// Application permissions (app roles) consented.
    pub roles: &'static [&'static str],
    /// Days from now until the secret expires; negative: expired that many days ago.
    pub secret_days: i64,
    /// An RBAC-for-Applications assignment: a permission scoped to a group (by local part).
    pub rbac: Option<(&'static str, &'static str)>,
}

/// Every seeded app's redirect URIs (loopback: any port).
pub(super) const APP_REDIRECT_URIS: [&str; 2] = ["http://localhost", "http://127.0.0.1"];
/// Every seeded app's tenant-wide delegated consent.
pub(super) const APP_DELEGATED_CONSENT: [&str; 3] =
    ["Calendars.ReadWrite", "User.Read", "offline_access"];

/// The apps in published order: the first, the main read-write app, is in every seed (tests and
/// docs use it); the others only in the demo.
#[rustfmt::skip]
pub(super) const APPS: [AppDef; 4] = [
    AppDef { name: "calgate", roles: &["Calendars.ReadWrite", "MailboxSettings.Read", "Place.Read.All", "User.Read.All"], secret_days: 365, rbac: None },
    AppDef { name: "calgate-readonly", roles: &["Calendars.Read", "Place.Read.All"], secret_days: 365, rbac: None },
    AppDef { name: "calgate-scoped", roles: &["Place.Read.All", "User.Read.All"], secret_days: 365, rbac: Some(("Calendars.ReadWrite", "calgate-scope")) },
    // Its only secret expired ten days ago (AADSTS7000222 tests).
    AppDef { name: "calgate-expired", roles: &["Calendars.Read"], secret_days: -10, rbac: None },
];

/// How many of [`APPS`] are made before the directory (the rest come after it: the scoped app
/// needs its group).
pub(super) const APPS_BEFORE_DIRECTORY: usize = 2;
const _: () = assert!(APPS_BEFORE_DIRECTORY >= 1 && APPS_BEFORE_DIRECTORY <= APPS.len());

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// What an event row sets beyond subject, organizer and time (the rest keeps its defaults).
pub(super) struct Details {
    /// An online (Teams) meeting.
    pub teams: bool,
    pub show_as: Option<ShowAs>,
    pub sensitivity: Option<Sensitivity>,
    pub importance: Option<Importance>,
    pub reminder_minutes: Option<i32>,
    /// A paragraph of HTML.
    pub body: Option<&'static str>,
    /// A location's display name.
    pub location: Option<&'static str>,
    pub categories: &'static [&'static str],
    pub response_requested: Option<bool>,
}

pub(super) const PLAIN: Details = Details {
    teams: false,
    show_as: None,
    sensitivity: None,
    importance: None,
    reminder_minutes: None,
    body: None,
    location: None,
    categories: &[],
    response_requested: None,
};

const TEAMS: Details = Details {
    teams: true,
    ..PLAIN
};

/// A recurrence pattern (Graph `recurrencePattern`); a yearly pattern's month (and day of
/// month) come from [`SeriesStart::Yearly`].
pub(super) struct PatternDef {
    pub kind: PatternType,
    pub interval: u32,
    pub days: &'static [DayOfWeek],
    pub first_day: DayOfWeek,
    pub index: WeekIndex,
    pub day_of_month: u8,
}

const fn every(kind: PatternType, interval: u32) -> PatternDef {
    PatternDef {
        kind,
        interval,
        days: &[],
        first_day: DayOfWeek::Sunday,
        index: WeekIndex::First,
        day_of_month: 0,
    }
}

pub(super) const WEEKDAYS: [DayOfWeek; 5] = [
    DayOfWeek::Monday,
    DayOfWeek::Tuesday,
    DayOfWeek::Wednesday,
    DayOfWeek::Thursday,
    DayOfWeek::Friday,
];

/// Where a series' range starts.
pub(super) enum SeriesStart {
    /// This many days from today.
    Day(i64),
    /// 1 January, `years_back` years before a random day `within` days from today; the
    /// pattern's month (and, with `day_of_month`, its day of month, at most 28) is that day's.
    Yearly {
        within: (i64, i64),
        years_back: i16,
        day_of_month: bool,
    },
}

/// Where a series' range ends.
pub(super) enum SeriesEnd {
    Never,
    /// On the day this many days from today.
    Day(i64),
    /// After this many occurrences.
    After(u32),
}

/// When a series happens: pattern, range, and the local start and end time of an occurrence.
pub(super) struct SeriesTiming {
    pub pattern: PatternDef,
    pub start: SeriesStart,
    pub end: SeriesEnd,
    pub from: (i8, i8),
    pub to: (i8, i8),
}

/// Who a meeting invites, besides the organizer.
pub(super) enum Invitees {
    /// By index into [`PEOPLE`] (the organizer may be listed: it is skipped).
    People(&'static [usize]),
    Everyone,
    /// Everyone whose zone this is.
    Zone(&'static str),
}

/// A recurring meeting.
pub(super) struct SeriesDef {
    pub subject: &'static str,
    /// Index into [`PEOPLE`].
    pub organizer: usize,
    pub invitees: Invitees,
    /// Indexes into [`ROOMS`]; the first is the location.
    pub rooms: &'static [usize],
    /// Indexes into [`EQUIPMENT`].
    pub equipment: &'static [usize],
    pub zone: &'static str,
    pub timing: SeriesTiming,
    pub details: Details,
    /// Occurrences (in the seed window) moved and cancelled.
    pub exceptions: (usize, usize),
}

/// When a single event happens.
pub(super) enum Timing {
    /// At a local time, for this many minutes.
    At { from: (i8, i8), minutes: i64 },
    /// All day, for this many days.
    AllDay { days: i64 },
}

/// A single meeting.
pub(super) struct SingleDef {
    pub subject: &'static str,
    /// Index into [`PEOPLE`].
    pub organizer: usize,
    /// Indexes into [`PEOPLE`] (the organizer may be listed: it is skipped).
    pub invitees: &'static [usize],
    /// Indexes into [`EQUIPMENT`].
    pub equipment: &'static [usize],
    /// The event's zone; `None`: the organizer's.
    pub zone: Option<&'static str>,
    /// On a random weekday in this range of days from today.
    pub days: (i64, i64),
    pub timing: Timing,
    pub details: Details,
}

/// What the demo calendars hold, in the order it is generated.
pub(super) enum Item {
    Series(SeriesDef),
    /// A weekly 1:1 of every person with their manager.
    OneOnOnes,
    /// Every third person's birthday (yearly, all day) in their manager's calendar.
    Birthdays,
    /// This many meetings of random people, with [`MEETING_SUBJECTS`], rooms of the organizer's
    /// office and now and then equipment.
    RandomMeetings(usize),
    /// This many room bookings, round robin over [`ROOMS`], made by people of the room's zone.
    RoomBookings(usize),
    Single(SingleDef),
    /// Each person's own items: [`PERSONAL`], [`LUNCH_WALK`] (every fourth person), vacation,
    /// days working from home, the [`HOLIDAYS`] of their office, [`COMPANY_DAYS`].
    PersonalCalendars,
}

#[rustfmt::skip]
pub(super) const DEMO_EVENTS: [Item; 26] = [
    Item::Series(SeriesDef {
        subject: "Engineering standup", organizer: 3, invitees: Invitees::People(&[3, 4, 5, 6, 7, 8, 9]),
        rooms: &[2], equipment: &[], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { days: &WEEKDAYS, first_day: DayOfWeek::Monday, ..every(PatternType::Weekly, 1) },
            start: SeriesStart::Day(-75), end: SeriesEnd::Never, from: (9, 30), to: (9, 45),
        },
        details: TEAMS, exceptions: (1, 3),
    }),
    // Every day, weekends included.
    Item::Series(SeriesDef {
        subject: "On-call handover", organizer: 6, invitees: Invitees::People(&[6, 5]),
        rooms: &[], equipment: &[], zone: WEU,
        timing: SeriesTiming {
            pattern: every(PatternType::Daily, 1),
            start: SeriesStart::Day(-40), end: SeriesEnd::Day(90), from: (8, 45), to: (9, 0),
        },
        details: Details { reminder_minutes: Some(5), ..TEAMS }, exceptions: (2, 2),
    }),
    Item::Series(SeriesDef {
        subject: "Sales huddle", organizer: 10, invitees: Invitees::People(&[10, 11, 12, 13, 14]),
        rooms: &[], equipment: &[], zone: GMT,
        timing: SeriesTiming {
            pattern: every(PatternType::Daily, 2),
            start: SeriesStart::Day(-20), end: SeriesEnd::After(40), from: (8, 30), to: (8, 45),
        },
        details: TEAMS, exceptions: (1, 1),
    }),
    Item::OneOnOnes,
    Item::Series(SeriesDef {
        subject: "Sprint planning", organizer: 3, invitees: Invitees::People(&[3, 4, 5, 6, 7, 8, 9]),
        rooms: &[0], equipment: &[0], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { days: &[DayOfWeek::Monday], first_day: DayOfWeek::Monday, ..every(PatternType::Weekly, 2) },
            start: SeriesStart::Day(-90), end: SeriesEnd::Never, from: (13, 0), to: (15, 0),
        },
        details: Details { body: Some("Backlog grooming and sprint goals. Bring your estimates."), ..TEAMS },
        exceptions: (1, 1),
    }),
    Item::Series(SeriesDef {
        subject: "Sales forecast review", organizer: 10, invitees: Invitees::People(&[10, 11, 12, 13, 14, 15, 1]),
        rooms: &[5], equipment: &[], zone: GMT,
        timing: SeriesTiming {
            pattern: PatternDef { days: &[DayOfWeek::Thursday], ..every(PatternType::Weekly, 2) },
            start: SeriesStart::Day(-50), end: SeriesEnd::Never, from: (15, 0), to: (16, 0),
        },
        details: Details { importance: Some(Importance::High), sensitivity: Some(Sensitivity::Confidential), ..TEAMS },
        exceptions: (1, 1),
    }),
    // First Monday of the month, in the boardroom, everyone invited.
    Item::Series(SeriesDef {
        subject: "All hands", organizer: 0, invitees: Invitees::Everyone,
        rooms: &[4], equipment: &[2], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { days: &[DayOfWeek::Monday], index: WeekIndex::First, ..every(PatternType::RelativeMonthly, 1) },
            start: SeriesStart::Day(-120), end: SeriesEnd::Never, from: (16, 0), to: (17, 0),
        },
        details: Details { body: Some("Company update, Q&amp;A. Join in the Zuid Boardroom or online."), ..TEAMS },
        exceptions: (1, 0),
    }),
    // Last Friday of the month, London.
    Item::Series(SeriesDef {
        subject: "Friday drinks", organizer: 23, invitees: Invitees::Zone(GMT),
        rooms: &[7], equipment: &[], zone: GMT,
        timing: SeriesTiming {
            pattern: PatternDef { days: &[DayOfWeek::Friday], index: WeekIndex::Last, ..every(PatternType::RelativeMonthly, 1) },
            start: SeriesStart::Day(-100), end: SeriesEnd::Never, from: (17, 30), to: (19, 0),
        },
        details: Details { show_as: Some(ShowAs::Free), response_requested: Some(false), ..PLAIN },
        exceptions: (0, 0),
    }),
    Item::Series(SeriesDef {
        subject: "Month-end close", organizer: 1, invitees: Invitees::People(&[1, 20, 21]),
        rooms: &[1], equipment: &[], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { day_of_month: 25, ..every(PatternType::AbsoluteMonthly, 1) },
            start: SeriesStart::Day(-150), end: SeriesEnd::Never, from: (10, 0), to: (11, 30),
        },
        details: Details { sensitivity: Some(Sensitivity::Confidential), categories: &["Finance"], ..PLAIN },
        exceptions: (1, 0),
    }),
    // Every three months: an equipment booking.
    Item::Series(SeriesDef {
        subject: "Van service", organizer: 24, invitees: Invitees::People(&[24]),
        rooms: &[], equipment: &[1], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { day_of_month: 10, ..every(PatternType::AbsoluteMonthly, 3) },
            start: SeriesStart::Day(-200), end: SeriesEnd::Never, from: (8, 0), to: (12, 0),
        },
        details: Details { show_as: Some(ShowAs::WorkingElsewhere), location: Some("Garage Noord, Amsterdam"), ..PLAIN },
        exceptions: (0, 0),
    }),
    Item::Birthdays,
    // The second Tuesday of a month in the window.
    Item::Series(SeriesDef {
        subject: "Annual budget kickoff", organizer: 1, invitees: Invitees::People(&[1, 0, 2, 3, 10, 16, 20]),
        rooms: &[4], equipment: &[], zone: WEU,
        timing: SeriesTiming {
            pattern: PatternDef { days: &[DayOfWeek::Tuesday], index: WeekIndex::Second, ..every(PatternType::RelativeYearly, 1) },
            start: SeriesStart::Yearly { within: (0, 100), years_back: 2, day_of_month: false },
            end: SeriesEnd::Never, from: (9, 0), to: (12, 0),
        },
        details: Details { importance: Some(Importance::High), sensitivity: Some(Sensitivity::Confidential), ..PLAIN },
        exceptions: (0, 0),
    }),
    // Timed, yearly, in India time.
    Item::Series(SeriesDef {
        subject: "Annual review: Bengaluru team", organizer: 2, invitees: Invitees::People(&[2, 7, 8, 3]),
        rooms: &[], equipment: &[], zone: IST,
        timing: SeriesTiming {
            pattern: every(PatternType::AbsoluteYearly, 1),
            start: SeriesStart::Yearly { within: (10, 100), years_back: 1, day_of_month: true },
            end: SeriesEnd::After(5), from: (14, 0), to: (15, 0),
        },
        details: Details { sensitivity: Some(Sensitivity::Private), ..TEAMS },
        exceptions: (0, 0),
    }),
    Item::RandomMeetings(90),
    Item::RoomBookings(48),
    // Meetings in explicit other zones (travel) and in UTC.
    Item::Single(SingleDef { subject: "Customer visit (Pacific Standard Time)", organizer: 1, invitees: &[1, 10], zone: Some(PST), ..CUSTOMER_VISIT }),
    Item::Single(SingleDef { subject: "Customer visit (Eastern Standard Time)", organizer: 6, invitees: &[6, 15], zone: Some(EST), ..CUSTOMER_VISIT }),
    Item::Single(SingleDef { subject: "Customer visit (UTC)", organizer: 11, invitees: &[11, 20], zone: Some("UTC"), ..CUSTOMER_VISIT }),
    Item::Single(SingleDef { subject: "Customer visit (Tokyo Standard Time)", organizer: 16, invitees: &[16, 0], zone: Some(TOKYO), ..CUSTOMER_VISIT }),
    Item::Single(SingleDef { subject: "Customer visit (AUS Eastern Standard Time)", organizer: 21, invitees: &[21, 5], zone: Some(AUS), ..CUSTOMER_VISIT }),
    // Van, camera and laptop bookings.
    Item::Single(SingleDef { subject: "Trade show: load van", organizer: 24, equipment: &[1], ..EQUIPMENT_BOOKING }),
    Item::Single(SingleDef { subject: "Product photo shoot", organizer: 19, equipment: &[2], ..EQUIPMENT_BOOKING }),
    Item::Single(SingleDef { subject: "Training day laptops", organizer: 22, equipment: &[3], ..EQUIPMENT_BOOKING }),
    Item::Single(SingleDef { subject: "Office move: van", organizer: 23, equipment: &[1], ..EQUIPMENT_BOOKING }),
    Item::PersonalCalendars,
    // Multi-day, several people, its own invitation.
    Item::Single(SingleDef {
        subject: "Conference: Cloud Summit", organizer: 3, invitees: &[3, 4, 9, 13], equipment: &[],
        zone: Some(WEU), days: (20, 90), timing: Timing::AllDay { days: 3 },
        details: Details { show_as: Some(ShowAs::WorkingElsewhere), location: Some("RAI Amsterdam"), ..PLAIN },
    }),
];

/// Two hours at a customer's (rows set subject, people and zone).
const CUSTOMER_VISIT: SingleDef = SingleDef {
    subject: "",
    organizer: 0,
    invitees: &[],
    equipment: &[],
    zone: None,
    days: (5, 100),
    timing: Timing::At {
        from: (10, 0),
        minutes: 120,
    },
    details: Details {
        location: Some("Customer site"),
        categories: &["Travel"],
        ..PLAIN
    },
};

/// Half a day out with equipment, in the organizer's zone (rows set subject, organizer and
/// equipment).
const EQUIPMENT_BOOKING: SingleDef = SingleDef {
    subject: "",
    organizer: 0,
    invitees: &[],
    equipment: &[],
    zone: None,
    days: (-20, 100),
    timing: Timing::At {
        from: (9, 0),
        minutes: 240,
    },
    details: Details {
        show_as: Some(ShowAs::WorkingElsewhere),
        ..PLAIN
    },
};

/// Subjects of the random meetings (and of the `--scale` mailboxes' singles).
pub(super) const MEETING_SUBJECTS: [&str; 24] = [
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

/// Categories a random meeting may carry.
pub(super) const MEETING_CATEGORIES: [&str; 4] = ["Customer", "Internal", "Hiring", "Travel"];

/// A personal item.
pub(super) struct PersonalDef {
    pub subject: &'static str,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub minutes: i64,
}

/// Personal items, 6 to 12 per person.
#[rustfmt::skip]
pub(super) const PERSONAL: [PersonalDef; 12] = [
    PersonalDef { subject: "Focus time", show_as: ShowAs::Busy, sensitivity: Sensitivity::Normal, minutes: 120 },
    PersonalDef { subject: "Lunch", show_as: ShowAs::Free, sensitivity: Sensitivity::Normal, minutes: 60 },
    PersonalDef { subject: "Doctor appointment", show_as: ShowAs::Oof, sensitivity: Sensitivity::Private, minutes: 90 },
    PersonalDef { subject: "Gym", show_as: ShowAs::Busy, sensitivity: Sensitivity::Personal, minutes: 60 },
    PersonalDef { subject: "School pick-up", show_as: ShowAs::Oof, sensitivity: Sensitivity::Personal, minutes: 45 },
    PersonalDef { subject: "Prep: quarterly report", show_as: ShowAs::Busy, sensitivity: Sensitivity::Normal, minutes: 90 },
    PersonalDef { subject: "Commute", show_as: ShowAs::WorkingElsewhere, sensitivity: Sensitivity::Normal, minutes: 60 },
    PersonalDef { subject: "Hold: maybe travel", show_as: ShowAs::Tentative, sensitivity: Sensitivity::Normal, minutes: 120 },
    PersonalDef { subject: "Imported appointment", show_as: ShowAs::Unknown, sensitivity: Sensitivity::Normal, minutes: 30 },
    PersonalDef { subject: "Bank appointment", show_as: ShowAs::Busy, sensitivity: Sensitivity::Private, minutes: 30 },
    PersonalDef { subject: "Expense reports", show_as: ShowAs::Busy, sensitivity: Sensitivity::Normal, minutes: 30 },
    PersonalDef { subject: "Read: industry report", show_as: ShowAs::Free, sensitivity: Sensitivity::Normal, minutes: 60 },
];

/// A series in one person's own calendar, in their zone.
pub(super) struct PersonalSeriesDef {
    pub subject: &'static str,
    pub timing: SeriesTiming,
    pub details: Details,
    /// Occurrences (in the seed window) moved and cancelled.
    pub exceptions: (usize, usize),
}

/// The personal series of every fourth person (the second, sixth, …).
pub(super) const LUNCH_WALK: PersonalSeriesDef = PersonalSeriesDef {
    subject: "Lunch walk",
    timing: SeriesTiming {
        pattern: PatternDef {
            days: &[DayOfWeek::Tuesday, DayOfWeek::Thursday],
            ..every(PatternType::Weekly, 1)
        },
        start: SeriesStart::Day(-45),
        end: SeriesEnd::Day(60),
        from: (12, 30),
        to: (13, 0),
    },
    details: Details {
        show_as: Some(ShowAs::Free),
        sensitivity: Some(Sensitivity::Personal),
        ..PLAIN
    },
    exceptions: (0, 2),
};

/// A fixed-date holiday.
pub(super) struct HolidayDef {
    pub month: i8,
    pub day: i8,
    pub name: &'static str,
    /// The office that has it; `None`: every office.
    pub office: Option<&'static str>,
}

#[rustfmt::skip]
pub(super) const HOLIDAYS: [HolidayDef; 9] = [
    HolidayDef { month: 1, day: 1, name: "New Year's Day", office: None },
    HolidayDef { month: 4, day: 27, name: "King's Day", office: Some(AMS) },
    HolidayDef { month: 5, day: 5, name: "Liberation Day", office: Some(AMS) },
    HolidayDef { month: 7, day: 4, name: "Independence Day", office: Some("New York") },
    HolidayDef { month: 8, day: 15, name: "Independence Day (India)", office: Some("Bengaluru") },
    HolidayDef { month: 10, day: 2, name: "Gandhi Jayanti", office: Some("Bengaluru") },
    HolidayDef { month: 11, day: 3, name: "Culture Day", office: Some("Tokyo") },
    HolidayDef { month: 12, day: 25, name: "Christmas Day", office: None },
    HolidayDef { month: 12, day: 26, name: "Boxing Day", office: None },
];

/// An all-day event in everyone's calendar (always in the window).
pub(super) struct CompanyDayDef {
    pub subject: &'static str,
    /// Index into [`PEOPLE`].
    pub organizer: usize,
    /// The weekday this many days from today (a weekend moves to Monday).
    pub weekday: i64,
    pub days: i64,
    pub show_as: ShowAs,
}

#[rustfmt::skip]
pub(super) const COMPANY_DAYS: [CompanyDayDef; 2] = [
    CompanyDayDef { subject: "Company offsite", organizer: 0, weekday: 40, days: 2, show_as: ShowAs::WorkingElsewhere },
    CompanyDayDef { subject: "Office closed: maintenance", organizer: 23, weekday: -12, days: 1, show_as: ShowAs::Oof },
];
