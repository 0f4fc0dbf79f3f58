//! calgate's domain: the normalized event model, the busy mapping and the privacy policy.
//!
//! Architecture invariant: no I/O, no HTTP, no SQL, no Graph or EWS JSON here. Protocol crates
//! convert their wire types into these at their edge; the store persists these; the API renders
//! these. Everything is plain data and pure functions, so it is cheap to test exhaustively.
#![forbid(unsafe_code)]

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

mod address;
pub use address::{AddressError, MAX_ADDRESS_LEN, check_address, printable, printable_line};

mod secret;
pub use secret::{SecretString, ct_eq};

pub mod busy;

/// Defines an enum's one string form (`as_str`, `FromStr`, `Display`): the spelling calgate
/// stores, prints and accepts. Serde's names are derived to match.
macro_rules! string_forms {
    ($t:ident, $what:literal, { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// calgate's spelling (stored, printed, accepted on input).
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),* }
            }
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($t::$v),)*
                    other => Err(format!(
                        concat!("unknown ", $what, " '{}' (expected {})"),
                        other,
                        [$($s),*].join(", ")
                    )),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// After the macro: `booking` uses `string_forms!`.
pub mod booking;

/// Exchange's free/busy status of an event (`showAs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

impl ShowAs {
    /// Parses Graph's and EWS's spellings case-insensitively (`busy`, `Busy`, `OOF`,
    /// `WorkingElsewhere`, `NoData` → unknown).
    pub fn parse(s: &str) -> ShowAs {
        match s.to_ascii_lowercase().as_str() {
            "free" => ShowAs::Free,
            "tentative" => ShowAs::Tentative,
            "busy" => ShowAs::Busy,
            "oof" | "outofoffice" => ShowAs::Oof,
            "workingelsewhere" => ShowAs::WorkingElsewhere,
            _ => ShowAs::Unknown,
        }
    }
}

mod domain;
mod failure;
pub use domain::*;
pub use failure::FailureKind;

string_forms!(ShowAs, "showAs", {
    Free => "free",
    Tentative => "tentative",
    Busy => "busy",
    Oof => "oof",
    WorkingElsewhere => "workingElsewhere",
    Unknown => "unknown",
});

/// How `showAs` maps to "busy" for the host application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BusyMapping {
    /// Whether `workingElsewhere` blocks time (default: no).
    pub working_elsewhere_is_busy: bool,
}

impl BusyMapping {
    /// `free` → not busy; `tentative`, `busy`, `oof`, `unknown` → busy; `workingElsewhere` per
    /// configuration (default not busy).
    pub fn is_busy(&self, show_as: ShowAs) -> bool {
        match show_as {
            ShowAs::Free => false,
            ShowAs::WorkingElsewhere => self.working_elsewhere_is_busy,
            ShowAs::Tentative | ShowAs::Busy | ShowAs::Oof | ShowAs::Unknown => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
}

impl Sensitivity {
    pub fn parse(s: &str) -> Sensitivity {
        match s.to_ascii_lowercase().as_str() {
            "personal" => Sensitivity::Personal,
            "private" => Sensitivity::Private,
            "confidential" => Sensitivity::Confidential,
            _ => Sensitivity::Normal,
        }
    }
    /// Private and confidential items are reduced to busy-only unless the mailbox's policy
    /// says `full-including-private`.
    pub fn is_restricted(self) -> bool {
        matches!(self, Sensitivity::Private | Sensitivity::Confidential)
    }
}

string_forms!(Sensitivity, "sensitivity", {
    Normal => "normal",
    Personal => "personal",
    Private => "private",
    Confidential => "confidential",
});

/// What the host application may see of a mailbox's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyPolicy {
    /// Subject, location, body, organizer and attendees, except for private/confidential items.
    #[default]
    Full,
    /// Times and busy status only.
    BusyOnly,
    /// Everything, private and confidential items included.
    FullIncludingPrivate,
}

string_forms!(PrivacyPolicy, "privacy policy", {
    Full => "full",
    BusyOnly => "busy-only",
    FullIncludingPrivate => "full-including-private",
});

impl PrivacyPolicy {
    /// How much the policy reveals: busy-only < full < full-including-private.
    fn rank(self) -> u8 {
        match self {
            PrivacyPolicy::BusyOnly => 0,
            PrivacyPolicy::Full => 1,
            PrivacyPolicy::FullIncludingPrivate => 2,
        }
    }

    /// Whether `self` shows details that `other` hides (switching from `other` to `self`
    /// needs the details fetched again: they were never stored).
    pub fn reveals_more_than(self, other: PrivacyPolicy) -> bool {
        self.rank() > other.rank()
    }
}

/// The kind of mailbox a calendar belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    User,
    Room,
    Equipment,
}

string_forms!(MailboxKind, "mailbox kind", {
    User => "user",
    Room => "room",
    Equipment => "equipment",
});

/// Graph's `type` of an event as calendarView shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InstanceType {
    SingleInstance,
    Occurrence,
    Exception,
}

string_forms!(InstanceType, "instance type", {
    SingleInstance => "singleInstance",
    Occurrence => "occurrence",
    Exception => "exception",
});

/// Where an event was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Exchange,
    Calgate,
}

string_forms!(Origin, "origin", {
    Exchange => "exchange",
    Calgate => "calgate",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub address: String,
}

/// When an event happens: instants in UTC plus the zone it was scheduled in; all-day events
/// also carry their dates (end exclusive), because an all-day event is a date, not an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct When {
    pub start: Timestamp,
    pub end: Timestamp,
    /// IANA name of the zone the event was scheduled in (`UTC` when unknown).
    pub time_zone: String,
    pub all_day: Option<(Date, Date)>,
}

/// One instance as the host application sees it: a single event, an occurrence of a series or
/// an exception (a moved or edited occurrence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub exchange_id: String,
    pub ical_uid: Option<String>,
    pub mailbox: String,
    pub kind: InstanceType,
    pub series_master_id: Option<String>,
    pub when: When,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub body_preview: Option<String>,
    pub organizer: Option<Person>,
    pub attendees: Vec<Person>,
    pub web_link: Option<String>,
    pub change_key: Option<String>,
    pub last_modified: Option<Timestamp>,
    pub origin: Origin,
    /// The booking calgate pushed this instance for (`origin` is then `calgate`).
    #[serde(default)]
    pub booking_id: Option<String>,
}

/// An instance after the privacy policy: the detail fields are `None` (absent, not blanked)
/// when the policy hides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible<'a> {
    pub instance: &'a Instance,
    pub busy: bool,
    pub details_hidden: bool,
}

impl Instance {
    /// Whether this instance blocks time under `mapping`.
    pub fn is_busy(&self, mapping: BusyMapping) -> bool {
        mapping.is_busy(self.show_as)
    }

    /// Whether `policy` hides this instance's details (subject, location, body, organizer,
    /// attendees).
    pub fn details_hidden(&self, policy: PrivacyPolicy) -> bool {
        match policy {
            PrivacyPolicy::BusyOnly => true,
            PrivacyPolicy::Full => self.sensitivity.is_restricted(),
            PrivacyPolicy::FullIncludingPrivate => false,
        }
    }

    /// A copy with hidden details removed, per `policy`.
    pub fn redacted(&self, policy: PrivacyPolicy) -> Instance {
        let mut out = self.clone();
        if self.details_hidden(policy) {
            out.subject = None;
            out.location = None;
            out.body_preview = None;
            out.organizer = None;
            out.attendees = Vec::new();
        }
        out
    }

    /// Whether the instance overlaps `[from, to)`; zero-length instances at `from` count.
    pub fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.when.start < to && (self.when.end > from || self.when.start == from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(show_as: ShowAs, sensitivity: Sensitivity) -> Instance {
        Instance {
            exchange_id: "AAMk1".into(),
            ical_uid: None,
            mailbox: "a@b.c".into(),
            kind: InstanceType::SingleInstance,
            series_master_id: None,
            when: When {
                start: "2026-01-05T09:00:00Z"
                    .parse()
                    .unwrap_or(Timestamp::UNIX_EPOCH),
                end: "2026-01-05T10:00:00Z"
                    .parse()
                    .unwrap_or(Timestamp::UNIX_EPOCH),
                time_zone: "Europe/Berlin".into(),
                all_day: None,
            },
            show_as,
            sensitivity,
            subject: Some("Budget".into()),
            location: Some("Room 1".into()),
            body_preview: Some("…".into()),
            organizer: Some(Person {
                name: "A".into(),
                address: "a@b.c".into(),
            }),
            attendees: vec![Person {
                name: "B".into(),
                address: "b@b.c".into(),
            }],
            web_link: None,
            change_key: None,
            last_modified: None,
            origin: Origin::Exchange,
            booking_id: None,
        }
    }

    /// The one string form of each enum is also its serde name, and parses back.
    #[test]
    fn string_forms_match_serde_and_round_trip() {
        fn check<T>(all: &[T])
        where
            T: Copy
                + Serialize
                + std::str::FromStr
                + std::fmt::Display
                + PartialEq
                + std::fmt::Debug,
        {
            for v in all {
                let s = v.to_string();
                assert_eq!(serde_json::to_string(v).ok(), Some(format!("\"{s}\"")));
                assert_eq!(s.parse::<T>().ok(), Some(*v), "{s}");
            }
        }
        check(ShowAs::ALL);
        check(Sensitivity::ALL);
        check(PrivacyPolicy::ALL);
        check(MailboxKind::ALL);
        check(InstanceType::ALL);
        check(Origin::ALL);
        check(CredentialKind::ALL);
        check(FailureKind::ALL);
        assert!(
            "Busy".parse::<ShowAs>().is_err(),
            "strict: the lenient parser is ShowAs::parse"
        );
        assert!(PrivacyPolicy::Full.reveals_more_than(PrivacyPolicy::BusyOnly));
        assert!(PrivacyPolicy::FullIncludingPrivate.reveals_more_than(PrivacyPolicy::Full));
        assert!(!PrivacyPolicy::BusyOnly.reveals_more_than(PrivacyPolicy::Full));
    }

    #[test]
    fn busy_mapping_follows_the_seed_guides() {
        let m = BusyMapping::default();
        assert!(!m.is_busy(ShowAs::Free));
        assert!(m.is_busy(ShowAs::Tentative));
        assert!(m.is_busy(ShowAs::Busy));
        assert!(m.is_busy(ShowAs::Oof));
        assert!(m.is_busy(ShowAs::Unknown));
        assert!(!m.is_busy(ShowAs::WorkingElsewhere));
        let m = BusyMapping {
            working_elsewhere_is_busy: true,
        };
        assert!(m.is_busy(ShowAs::WorkingElsewhere));
    }

    #[test]
    fn show_as_parses_both_casings() {
        assert_eq!(ShowAs::parse("Busy"), ShowAs::Busy);
        assert_eq!(ShowAs::parse("OOF"), ShowAs::Oof);
        assert_eq!(ShowAs::parse("workingElsewhere"), ShowAs::WorkingElsewhere);
        assert_eq!(ShowAs::parse("NoData"), ShowAs::Unknown);
    }

    #[test]
    fn busy_only_drops_details_private_items_always_unless_full_including_private() {
        let normal = inst(ShowAs::Busy, Sensitivity::Normal);
        assert_eq!(
            normal.redacted(PrivacyPolicy::Full).subject.as_deref(),
            Some("Budget")
        );
        let r = normal.redacted(PrivacyPolicy::BusyOnly);
        assert!(r.subject.is_none() && r.location.is_none() && r.organizer.is_none());
        assert!(r.attendees.is_empty() && r.body_preview.is_none());
        assert_eq!(r.when, normal.when);

        for s in [Sensitivity::Private, Sensitivity::Confidential] {
            let p = inst(ShowAs::Busy, s);
            assert!(p.redacted(PrivacyPolicy::Full).subject.is_none());
            assert_eq!(
                p.redacted(PrivacyPolicy::FullIncludingPrivate)
                    .subject
                    .as_deref(),
                Some("Budget")
            );
        }
        let personal = inst(ShowAs::Busy, Sensitivity::Personal);
        assert!(personal.redacted(PrivacyPolicy::Full).subject.is_some());
    }

    #[test]
    fn overlap_is_half_open_and_counts_zero_length_at_start() {
        let i = inst(ShowAs::Busy, Sensitivity::Normal);
        let t = |s: &str| s.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
        assert!(i.overlaps(t("2026-01-05T09:30:00Z"), t("2026-01-05T11:00:00Z")));
        assert!(!i.overlaps(t("2026-01-05T10:00:00Z"), t("2026-01-05T11:00:00Z")));
        assert!(!i.overlaps(t("2026-01-05T08:00:00Z"), t("2026-01-05T09:00:00Z")));
    }
}
