//! The data transfer objects of calgate's interfaces (serde + OpenAPI schemas).

use calgate_core::{BusyMapping, Instance, Person, PrivacyPolicy};
use calgate_store::StoredInstance;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// A detail the privacy policy may hide: hidden details are left out of the JSON (absent, not
/// blanked); shown ones are written as they are (`null` when Exchange has none).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "Option<T>")]
pub enum Detail<T> {
    #[default]
    Hidden,
    Shown(Option<T>),
}

impl<T> Detail<T> {
    pub fn is_hidden(&self) -> bool {
        matches!(self, Detail::Hidden)
    }

    fn of(hidden: bool, value: Option<T>) -> Detail<T> {
        if hidden {
            Detail::Hidden
        } else {
            Detail::Shown(value)
        }
    }
}

impl<T> From<Option<T>> for Detail<T> {
    fn from(v: Option<T>) -> Self {
        Detail::Shown(v)
    }
}

impl<T: Serialize> Serialize for Detail<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Detail::Hidden | Detail::Shown(None) => s.serialize_none(),
            Detail::Shown(Some(v)) => v.serialize(s),
        }
    }
}

/// A person: organizer or attendee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PersonDto {
    pub name: String,
    pub address: String,
}

impl From<&Person> for PersonDto {
    fn from(p: &Person) -> Self {
        PersonDto {
            name: p.name.clone(),
            address: p.address.clone(),
        }
    }
}

/// One instance of a mailbox's calendar — a single event, an occurrence of a series, or an
/// exception — as `calgate events --json`, `GET /v1/mailboxes/{address}/events` and the
/// `event.*` webhooks show it. Under the mailbox's privacy policy (`busy-only`, and for
/// private and confidential items under `full`) `subject`, `location`, `body_preview`,
/// `organizer` and `attendees` are absent and `details_hidden` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceDto {
    /// calgate's id of the instance: stable across updates and full resyncs.
    pub id: String,
    /// Exchange's id (Graph event id).
    pub exchange_id: String,
    pub ical_uid: Option<String>,
    /// The mailbox's address.
    pub mailbox: String,
    /// `singleInstance`, `occurrence` or `exception`.
    #[serde(rename = "type")]
    #[schema(example = "singleInstance")]
    pub kind: String,
    pub series_master_id: Option<String>,
    #[serde(default, skip_serializing_if = "Detail::is_hidden")]
    #[schema(value_type = Option<String>)]
    pub subject: Detail<String>,
    /// RFC 3339 instant (UTC).
    #[schema(example = "2026-12-07T09:00:00Z")]
    pub start: String,
    /// RFC 3339 instant (UTC).
    pub end: String,
    pub is_all_day: bool,
    /// All-day only: the first date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// All-day only: the day after the last date (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// The IANA zone the event was scheduled in.
    pub time_zone: String,
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, `unknown`.
    pub show_as: String,
    /// After the busy mapping: tentative and out-of-office count as busy, free does not.
    pub busy: bool,
    /// `normal`, `personal`, `private`, `confidential`.
    pub sensitivity: String,
    #[serde(default, skip_serializing_if = "Detail::is_hidden")]
    #[schema(value_type = Option<String>)]
    pub location: Detail<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    #[serde(default, skip_serializing_if = "Detail::is_hidden")]
    #[schema(value_type = Option<PersonDto>)]
    pub organizer: Detail<PersonDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<PersonDto>>,
    /// Whether the privacy policy hid the details.
    pub details_hidden: bool,
    /// The "Edit in Outlook" link.
    pub web_link: Option<String>,
    pub change_key: Option<String>,
    /// RFC 3339.
    pub last_modified: Option<String>,
    /// `exchange` (made in Exchange) or `calgate` (pushed by calgate).
    pub origin: String,
    /// For `origin: calgate`: the booking's `external_id` (else `null`).
    pub booking_id: Option<String>,
}

impl InstanceDto {
    /// The instance as the mailbox's privacy policy and the busy mapping show it.
    pub fn new(s: &StoredInstance, policy: PrivacyPolicy, mapping: BusyMapping) -> InstanceDto {
        let full: &Instance = &s.instance;
        let hidden = full.details_hidden(policy);
        let i = full.redacted(policy);
        InstanceDto {
            id: s.id.to_string(),
            exchange_id: i.exchange_id.clone(),
            ical_uid: i.ical_uid.clone(),
            mailbox: i.mailbox.clone(),
            kind: i.kind.as_str().to_owned(),
            series_master_id: i.series_master_id.clone(),
            subject: Detail::of(hidden, i.subject.clone()),
            start: i.when.start.to_string(),
            end: i.when.end.to_string(),
            is_all_day: i.when.all_day.is_some(),
            start_date: i.when.all_day.map(|(d, _)| d.to_string()),
            end_date: i.when.all_day.map(|(_, d)| d.to_string()),
            time_zone: i.when.time_zone.clone(),
            show_as: i.show_as.as_str().to_owned(),
            busy: i.is_busy(mapping),
            sensitivity: i.sensitivity.as_str().to_owned(),
            location: Detail::of(hidden, i.location.clone()),
            body_preview: i.body_preview.clone().filter(|_| !hidden),
            organizer: Detail::of(hidden, i.organizer.as_ref().map(PersonDto::from)),
            attendees: (!hidden).then(|| i.attendees.iter().map(PersonDto::from).collect()),
            details_hidden: hidden,
            web_link: i.web_link.clone(),
            change_key: i.change_key.clone(),
            last_modified: i.last_modified.map(|t| t.to_string()),
            origin: i.origin.as_str().to_owned(),
            booking_id: i.booking_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use calgate_core::{InstanceType, MailboxId, Origin, Sensitivity, ShowAs, When};
    use serde_json::Value;

    use super::*;

    fn stored(sensitivity: Sensitivity, all_day: bool) -> StoredInstance {
        let t = |s: &str| {
            s.parse::<jiff::Timestamp>()
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        };
        let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap_or_default();
        StoredInstance {
            id: uuid_like(),
            mailbox_id: MailboxId(1),
            stored_at: t("2026-01-01T00:00:00Z"),
            instance: Instance {
                exchange_id: "AAMk".into(),
                ical_uid: Some("uid".into()),
                mailbox: "room@contoso.example".into(),
                kind: InstanceType::Occurrence,
                series_master_id: Some("M".into()),
                when: When {
                    start: t("2026-01-05T09:00:00Z"),
                    end: t("2026-01-05T10:00:00Z"),
                    time_zone: "Europe/Berlin".into(),
                    all_day: all_day.then(|| (d("2026-01-05"), d("2026-01-06"))),
                },
                show_as: ShowAs::Tentative,
                sensitivity,
                subject: Some("Budget".into()),
                location: None,
                body_preview: Some("…".into()),
                organizer: Some(Person {
                    name: "A".into(),
                    address: "a@contoso.example".into(),
                }),
                attendees: vec![],
                web_link: None,
                change_key: Some("ck".into()),
                last_modified: None,
                origin: Origin::Exchange,
                booking_id: None,
            },
        }
    }

    fn uuid_like() -> calgate_store::Uuid {
        calgate_store::Uuid::nil()
    }

    fn json(s: &StoredInstance, p: PrivacyPolicy) -> serde_json::Map<String, Value> {
        let v = serde_json::to_value(InstanceDto::new(s, p, BusyMapping::default()));
        match v {
            Ok(Value::Object(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// The contract of `calgate events --json`: detail fields absent (not null) when hidden,
    /// present (null when Exchange has none) when shown; dates only for all-day instances.
    #[test]
    fn privacy_leaves_details_out_and_the_contract_fields_are_there() {
        let full = json(&stored(Sensitivity::Normal, false), PrivacyPolicy::Full);
        for k in [
            "id",
            "exchange_id",
            "ical_uid",
            "mailbox",
            "type",
            "series_master_id",
            "subject",
            "start",
            "end",
            "is_all_day",
            "time_zone",
            "show_as",
            "busy",
            "sensitivity",
            "location",
            "organizer",
            "attendees",
            "web_link",
            "change_key",
            "last_modified",
            "origin",
            "booking_id",
            "details_hidden",
        ] {
            assert!(full.contains_key(k), "{k} in {full:?}");
        }
        assert_eq!(full["location"], Value::Null);
        assert_eq!(full["type"], "occurrence");
        assert_eq!(full["busy"], true, "tentative counts as busy");
        assert!(!full.contains_key("start_date"));
        for (s, p) in [
            (stored(Sensitivity::Normal, false), PrivacyPolicy::BusyOnly),
            (stored(Sensitivity::Private, false), PrivacyPolicy::Full),
        ] {
            let m = json(&s, p);
            for k in [
                "subject",
                "location",
                "organizer",
                "attendees",
                "body_preview",
            ] {
                assert!(!m.contains_key(k), "{k} hidden: {m:?}");
            }
            assert_eq!(m["details_hidden"], true);
        }
        let day = json(&stored(Sensitivity::Normal, true), PrivacyPolicy::Full);
        assert_eq!(day["start_date"], "2026-01-05");
        assert_eq!(day["end_date"], "2026-01-06");
        assert_eq!(day["is_all_day"], true);
    }
}

/// The last failure of a mailbox's sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastErrorDto {
    /// The failure class: `authentication`, `permission`, `not-found`, `retryable`,
    /// `deletions-held`, …
    pub kind: String,
    /// One line in an administrator's words, with the fix.
    pub message: String,
    /// RFC 3339.
    pub at: String,
}

/// A mailbox's sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailboxStatusDto {
    /// `never-synced`, `ok` or `failing`.
    pub state: String,
    /// RFC 3339 (`null`: never).
    pub last_success: Option<String>,
    pub last_attempt: Option<String>,
    pub last_error: Option<LastErrorDto>,
    /// What happens next, in words.
    pub next_action: Option<String>,
    /// A full resync is pending, and why.
    pub pending_resync: Option<String>,
    /// Instances stored.
    pub events: u64,
    /// Which calgate process ran the last round ("pid 4242 on host-a"), when several share
    /// the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round_by: Option<String>,
}

/// A linked mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MailboxDto {
    pub address: String,
    /// `user`, `room` or `equipment`.
    pub kind: String,
    pub connection: String,
    /// `full`, `busy-only` or `full-including-private`.
    pub privacy: String,
    pub external_id: Option<String>,
    pub status: MailboxStatusDto,
    /// How calgate learns about changes: Graph notifies it, or it polls (and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsDto>,
}

/// A mailbox's change-detection mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationsDto {
    /// `notified` (Graph tells calgate within seconds; polling is the safety net) or
    /// `polling`.
    pub mode: String,
    /// Why the mailbox is polled (`null` when notified).
    pub reason: Option<String>,
    /// When the subscription expires (renewed a day ahead), RFC 3339.
    pub subscription_expires: Option<String>,
}

impl NotificationsDto {
    /// The mode of a mailbox, from its subscription record (`None`: it has none) and whether
    /// notifications are configured at all.
    pub fn new(
        configured: bool,
        record: Option<&calgate_store::SubscriptionRecord>,
        now: jiff::Timestamp,
    ) -> NotificationsDto {
        let polling = |reason: String| NotificationsDto {
            mode: "polling".to_owned(),
            reason: Some(reason),
            subscription_expires: None,
        };
        if !configured {
            return polling(
                "change notifications are off (no [notifications] public_url): calgate polls every mailbox on the cadence".to_owned(),
            );
        }
        match record {
            None => polling(
                "no subscription yet: the next check (within a minute) makes one".to_owned(),
            ),
            Some(r) if r.state == calgate_store::SubscriptionState::Failing => polling(
                r.reason
                    .clone()
                    .unwrap_or_else(|| "the subscription is failing".to_owned()),
            ),
            Some(r) => match r.expires_at {
                Some(e) if e > now => NotificationsDto {
                    mode: "notified".to_owned(),
                    reason: None,
                    subscription_expires: Some(e.to_string()),
                },
                _ => polling("the subscription expired; the next check makes a new one".to_owned()),
            },
        }
    }
}

impl MailboxDto {
    pub fn new(s: &calgate_store::MailboxSyncState) -> MailboxDto {
        let st = &s.status;
        MailboxDto {
            address: s.mailbox.address.clone(),
            kind: s.mailbox.kind.as_str().to_owned(),
            connection: s.mailbox.connection.clone(),
            privacy: s.mailbox.privacy.as_str().to_owned(),
            external_id: s.mailbox.external_id.clone(),
            status: MailboxStatusDto {
                state: match (&st.last_error, st.last_attempt) {
                    (Some(_), _) => "failing",
                    (None, Some(_)) => "ok",
                    (None, None) => "never-synced",
                }
                .to_owned(),
                last_success: st.last_success.map(|t| t.to_string()),
                last_attempt: st.last_attempt.map(|t| t.to_string()),
                last_error: st.last_error.as_ref().map(|e| LastErrorDto {
                    kind: e.kind.as_str().to_owned(),
                    message: e.message.clone(),
                    at: e.at.to_string(),
                }),
                next_action: st.next_action.clone(),
                pending_resync: s.mailbox.pending_resync.clone(),
                events: s.live_instances,
                last_round_by: s.status.last_round_by.clone(),
            },
            notifications: None,
        }
    }
}

/// One step of a checklist (Test settings, Verify a mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckDto {
    pub id: String,
    /// `pass`, `fail`, `warn` or `skip`.
    pub status: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A checklist: one line per step, the fix for each failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChecklistDto {
    pub title: String,
    /// Every step passed (warnings allowed).
    pub passed: bool,
    pub checks: Vec<CheckDto>,
}

impl From<&calgate_admin::Checklist> for ChecklistDto {
    fn from(c: &calgate_admin::Checklist) -> Self {
        ChecklistDto {
            title: c.title.clone(),
            passed: c.passed(),
            checks: c
                .checks
                .iter()
                .map(|k| CheckDto {
                    id: k.id.clone(),
                    status: serde_json::to_value(k.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    summary: k.summary.clone(),
                    fix: k.fix.clone(),
                    code: k.code.clone(),
                })
                .collect(),
        }
    }
}

/// A credential of a connection (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialDto {
    /// calgate's id (`calgate connection secret remove NAME ID`).
    pub id: i64,
    /// `secret` or `certificate`.
    pub kind: String,
    /// The Secret ID in Entra ID, or the certificate's thumbprint.
    pub key_id: Option<String>,
    pub expires_at: Option<String>,
}

/// A connection: an app registration in a tenant (Graph), or an Exchange Server service account (EWS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionDto {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub authority: String,
    pub graph_url: String,
    pub cloud: String,
    pub credentials: Vec<CredentialDto>,
    /// Linked mailboxes.
    pub mailboxes: u64,
    /// `graph` (Exchange Online through Microsoft Graph) or `ews` (Exchange Server through
    /// EWS; then `tenant`, `client_id`, `authority` and `graph_url` are empty).
    #[serde(default = "graph_kind")]
    pub kind: String,
    /// An EWS connection's server and service account (never its password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews: Option<EwsConnectionDto>,
}

fn graph_kind() -> String {
    "graph".to_owned()
}

/// How an EWS connection reaches Exchange Server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EwsConnectionDto {
    /// `https://mail.example.org/EWS/Exchange.asmx`.
    pub url: String,
    /// The service account, `DOMAIN\user` or `user@domain`.
    pub username: String,
    /// `basic` or `ntlm`.
    pub auth: String,
    /// `true`: acts as each mailbox (ApplicationImpersonation); `false`: delegate access.
    pub impersonation: bool,
}
