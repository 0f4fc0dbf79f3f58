//! Bookings: the host application's own events that calgate pushes into Exchange.
//!
//! A booking is keyed by the host application's id (`external_id`) and goes into one or more
//! calendars (targets), each with a role. The spec is normalized here (instants in UTC plus the
//! zone it is scheduled in); the API and the CLI parse their inputs into it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{MailboxKind, Sensitivity, ShowAs, When};

/// The longest external id accepted (it travels in URLs and in an Exchange property).
pub const MAX_EXTERNAL_ID_LEN: usize = 200;
/// The most calendars one booking may go into.
pub const MAX_TARGETS: usize = 50;

/// How a booking reaches its calendars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingMode {
    /// One copy written straight into each target calendar; no attendees, no invitations.
    #[default]
    Direct,
    /// One meeting in the organizer's calendar, the other targets as attendees.
    Meeting,
}

string_forms!(BookingMode, "booking mode", {
    Direct => "direct",
    Meeting => "meeting",
});

/// What a target calendar is to the booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetRole {
    Organizer,
    Attendee,
    Room,
    Equipment,
}

string_forms!(TargetRole, "calendar role", {
    Organizer => "organizer",
    Attendee => "attendee",
    Room => "room",
    Equipment => "equipment",
});

impl TargetRole {
    /// The mailbox kind a role expects (`None`: a person of either role).
    pub fn expected_kind(self) -> Option<MailboxKind> {
        match self {
            TargetRole::Room => Some(MailboxKind::Room),
            TargetRole::Equipment => Some(MailboxKind::Equipment),
            TargetRole::Organizer | TargetRole::Attendee => None,
        }
    }
}

/// One calendar a booking goes into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BookingTarget {
    /// The linked mailbox's address (lowercase).
    pub address: String,
    pub role: TargetRole,
}

/// What the host application asked for, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSpec {
    pub subject: String,
    pub body: Option<String>,
    pub when: When,
    pub location: Option<String>,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub mode: BookingMode,
    pub calendars: Vec<BookingTarget>,
    /// A series: `when` is its first occurrence.
    #[serde(default)]
    pub recurrence: Option<BookingRecurrence>,
}

/// A booking's series: an RFC 5545 RRULE (with COUNT or UNTIL), occurrences left out, and
/// occurrences moved or renamed. Local date-times are in the booking's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRecurrence {
    pub rrule: String,
    /// Original local starts of cancelled occurrences.
    #[serde(default)]
    pub exdates: Vec<jiff::civil::DateTime>,
    #[serde(default)]
    pub overrides: Vec<OccurrenceOverride>,
}

/// One occurrence changed: found by its original local start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceOverride {
    pub original_start: jiff::civil::DateTime,
    pub start: Timestamp,
    pub end: Timestamp,
    pub subject: Option<String>,
}

/// Where one target of a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Waiting to be written (or rewritten) into Exchange.
    Pending,
    /// Exchange holds what the booking says.
    Synced,
    /// A permanent error; `error` says what the administrator must do.
    Failed,
    /// Waiting to be removed from Exchange.
    Deleting,
    /// Removed from Exchange (the booking, or this target, was deleted).
    Deleted,
    /// Someone deleted calgate's event in Exchange; it is not re-created by itself.
    DeletedInExchange,
    /// Someone edited calgate's event in Exchange and the connection's policy is `report`:
    /// Exchange is left as it is until the booking is put again.
    Drifted,
}

string_forms!(TargetState, "target state", {
    Pending => "pending",
    Synced => "synced",
    Failed => "failed",
    Deleting => "deleting",
    Deleted => "deleted",
    DeletedInExchange => "deleted_in_exchange",
    Drifted => "drifted",
});

/// What calgate does when someone edits one of its events in Outlook (per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutlookEdits {
    /// Put the booking back (the default).
    #[default]
    AppWins,
    /// Mark the calendar `drifted` and leave Exchange alone.
    Report,
}

string_forms!(OutlookEdits, "Outlook-edit policy", {
    AppWins => "app-wins",
    Report => "report",
});

/// A booking's overall state, from its targets': `failed` if any failed, else `pending` if any
/// has work left, else `synced` (also for a deleted booking whose removals are done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    Pending,
    Synced,
    Failed,
}

string_forms!(BookingState, "booking state", {
    Pending => "pending",
    Synced => "synced",
    Failed => "failed",
});

impl BookingState {
    pub fn of(targets: impl IntoIterator<Item = TargetState>) -> BookingState {
        let mut pending = false;
        for t in targets {
            match t {
                TargetState::Failed => return BookingState::Failed,
                TargetState::Pending | TargetState::Deleting => pending = true,
                _ => {}
            }
        }
        if pending {
            BookingState::Pending
        } else {
            BookingState::Synced
        }
    }
}

/// One target as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub address: String,
    pub role: TargetRole,
    pub state: TargetState,
    pub exchange_id: Option<String>,
    pub web_link: Option<String>,
    /// The last error, in an administrator's words.
    pub error: Option<String>,
    /// Meeting mode: this calendar's answer as the organizer's event shows it
    /// (`accepted`, `tentativelyAccepted`, `declined`, `notResponded`, `none`).
    #[serde(default)]
    pub response: Option<String>,
    pub updated_at: Timestamp,
}

/// A booking as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub external_id: String,
    pub spec: BookingSpec,
    /// Bumped on every change of the spec.
    pub version: i64,
    pub deleted: bool,
    pub targets: Vec<TargetStatus>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Booking {
    pub fn state(&self) -> BookingState {
        BookingState::of(self.targets.iter().map(|t| t.state))
    }
}

/// Checks an external id: 1–200 printable characters without `/`, `?`, `#`, `%` or spaces at
/// either end (it is a URL path segment and an Exchange property value).
pub fn check_external_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("external_id is empty".into());
    }
    if id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "external_id is longer than {MAX_EXTERNAL_ID_LEN} bytes"
        ));
    }
    if id.trim() != id {
        return Err("external_id starts or ends with a space".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| c.is_control() || matches!(c, '/' | '?' | '#' | '%' | '\\'))
    {
        return Err(format!(
            "external_id contains {}: use letters, digits and - _ . : @",
            crate::printable(&c.to_string())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_state_from_targets() {
        use TargetState as T;
        assert_eq!(
            BookingState::of([T::Synced, T::Synced]),
            BookingState::Synced
        );
        assert_eq!(
            BookingState::of([T::Synced, T::Pending]),
            BookingState::Pending
        );
        assert_eq!(
            BookingState::of([T::Deleting, T::Deleted]),
            BookingState::Pending
        );
        assert_eq!(
            BookingState::of([T::Pending, T::Failed]),
            BookingState::Failed
        );
        assert_eq!(
            BookingState::of([T::Deleted, T::DeletedInExchange]),
            BookingState::Synced
        );
        assert_eq!(BookingState::of([]), BookingState::Synced);
    }

    #[test]
    fn external_ids() {
        assert!(check_external_id("course-42:session-7").is_ok());
        assert!(check_external_id("").is_err());
        assert!(check_external_id("a/b").is_err());
        assert!(check_external_id(" a").is_err());
        assert!(check_external_id("a\nb").is_err());
        assert!(check_external_id(&"x".repeat(201)).is_err());
        assert_eq!(
            "deleted_in_exchange".parse::<TargetState>(),
            Ok(TargetState::DeletedInExchange)
        );
    }
}
