//! Conformance check of `calgate sim` against Microsoft's own request/response samples.
//!
//! ```text
//! cargo run -q -p calgate-sim --example conformance -- ../shared/data
//! ```
//!
//! For every RESPONSE sample under `<data>/graph` and `<data>/identity` (see `<data>/INDEX.md`;
//! each sample has a `__meta.json`), the check sends "the same request" to an in-process
//! simulator seeded with the demo tenant — the sample's URL mapped onto the simulator (`/me` → a
//! demo mailbox, ids → ids of real demo objects of the same kind, dates → the demo's window,
//! addresses in bodies → demo addresses) — and compares the SHAPES of the two answers: the same
//! status, the same property names (recursively), the same JSON types, and enum values from the
//! documented sets. Subscriptions and change notifications are checked too: the create and update
//! responses, the notification payloads Graph POSTs (compared with what the simulator POSTs to a
//! loopback receiver), the validation request, and the statuses the pages give in prose.
//! Samples that are not responses, or that are outside the simulator's scope, are listed as
//! skipped with the reason. Deliberate differences are in [`ALLOWLIST`] (and in
//! `docs/sim/conformance.md`); they are printed as `known`.
//!
//! Output: one line per sample (`ok`, `DIFF`, `skip`, plus `known` and `info` lines), then
//! `N passed, M failed, K skipped`. Exit status 1 when any sample failed or the data folder is
//! missing. Nothing from the samples is copied into the repository: they are read at run time.
//!
//! The EWS SOAP samples under `<data>/ews` are replayed against the EWS face and compared
//! structurally (see `conformance_parts/ews.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use calgate_sim::{Seed, SimHandle, SimOptions};
use serde_json::{Value, json};

#[path = "conformance_parts/ews.rs"]
mod ews;

type R<T> = Result<T, String>;

// =============================================================================================
// Deliberate differences (keep in sync with docs/sim/conformance.md)
// =============================================================================================

/// A deliberate difference: DIFFs of samples whose name starts with `sample` (alternatives
/// separated by `|`) at `path` (or below it) are reported as `known` instead of failing.
struct Known {
    sample: &'static str,
    path: &'static str,
    reason: &'static str,
}

const ALLOWLIST: &[Known] = &[
    // --- places: the documentation samples are not schema-exact (INDEX.md, reference §2.8) ---
    Known {
        sample: "place-list__",
        path: "value[].capacity",
        reason: "the doc sample writes capacity as a string (\"50\"); the CSDL declares Edm.Int32 and the simulator emits a number",
    },
    Known {
        sample: "place-list__",
        path: "value[].isWheelchairAccessible",
        reason: "the doc sample spells it isWheelchairAccessible; the CSDL property is isWheelChairAccessible, which the simulator emits",
    },
    Known {
        sample: "place-list__",
        path: "value[].displayDevice",
        reason: "the doc sample's displayDevice is not in the v1.0 CSDL; the simulator emits the CSDL's displayDeviceName",
    },
    Known {
        sample: "place-list__",
        path: "value[].isManaged",
        reason: "isManaged is not among room's properties in the v1.0 CSDL (reference §2.8); the simulator emits the CSDL's properties",
    },
    Known {
        sample: "place-list__2",
        path: "value[].geocoordinates",
        reason: "the doc sample spells it geocoordinates; the CSDL property is geoCoordinates",
    },
    // --- getSchedule: the sample's second mailbox has a desktop-Outlook custom zone ---
    Known {
        sample: "calendar-getschedule__1|outlook-get-free-busy-schedule__1",
        path: "value[].workingHours.timeZone.@odata.type",
        reason: "the sample's mailbox has a customized zone (#microsoft.graph.customTimeZone, made by desktop Outlook); the demo's mailboxes use standard Windows zones, for which workingHours.timeZone is {name} only",
    },
    Known {
        sample: "calendar-getschedule__1|outlook-get-free-busy-schedule__1",
        path: "value[].workingHours.timeZone.bias",
        reason: "customTimeZone member (see @odata.type above); not emitted for standard zones",
    },
    Known {
        sample: "calendar-getschedule__1|outlook-get-free-busy-schedule__1",
        path: "value[].workingHours.timeZone.standardOffset",
        reason: "customTimeZone member (see @odata.type above); not emitted for standard zones",
    },
    Known {
        sample: "calendar-getschedule__1|outlook-get-free-busy-schedule__1",
        path: "value[].workingHours.timeZone.daylightOffset",
        reason: "customTimeZone member (see @odata.type above); not emitted for standard zones",
    },
    // --- events ---
    Known {
        sample: "user-list-events__2",
        path: "value[].locations",
        reason: "the sample shows locations although its $select does not ask for it; the simulator honours $select",
    },
    Known {
        sample: "event-update__1|user-post-events__4",
        path: "onlineMeeting.conferenceId",
        reason: "dial-in details exist only when the organizer has a Teams audio-conferencing licence; the simulator's online meetings carry a joinUrl only",
    },
    Known {
        sample: "event-update__1|user-post-events__4",
        path: "onlineMeeting.tollNumber",
        reason: "dial-in details exist only when the organizer has a Teams audio-conferencing licence; the simulator's online meetings carry a joinUrl only",
    },
    // --- a $batch whose inner requests are outside the simulator ---
    Known {
        sample: "json-batching__1",
        path: "responses[].body.value[]",
        reason: "the sample's inner requests read directory objects, planner tasks and groups, which the simulator does not serve; in-scope calendar requests are batched instead, so the inner collection items differ",
    },
    Known {
        sample: "json-batching__1",
        path: "responses[].body.@odata.count",
        reason: "the sample's $count=true request lists directory users (out of scope); calendar collections carry no @odata.count",
    },
    Known {
        sample: "json-batching__1",
        path: "responses[].headers.X-ProxyCluster",
        reason: "planner-service diagnostic header of Microsoft's backend",
    },
    Known {
        sample: "json-batching__1",
        path: "responses[].headers.X-OfficeCluster",
        reason: "planner-service diagnostic header of Microsoft's backend",
    },
    Known {
        sample: "json-batching__1",
        path: "responses[].headers.X-Tasks-CorrelationId",
        reason: "planner-service diagnostic header of Microsoft's backend",
    },
    Known {
        sample: "json-batching__1",
        path: "responses[].headers.x-ms-resource-unit",
        reason: "directory-service cost header of Microsoft's backend; Outlook calendar responses do not carry it",
    },
    // --- an extended-property sample taken on a message, compared on an event ---
    Known {
        sample: "singlevaluelegacyextendedproperty-get__1",
        path: "sender",
        reason: "the sample reads a message; messages are out of scope, so the same $expand is compared on an event, which has no sender",
    },
    Known {
        sample: "singlevaluelegacyextendedproperty-get__1",
        path: "from",
        reason: "the sample reads a message; events have no from",
    },
    Known {
        sample: "singlevaluelegacyextendedproperty-get__1",
        path: "toRecipients",
        reason: "the sample reads a message; events have attendees, not toRecipients",
    },
];

// =============================================================================================
// Documented enum sets (CSDL v1.0, reference §2.4, §2.6, §2.8, §3.7)
// =============================================================================================

const FREE_BUSY: &[&str] = &[
    "unknown",
    "free",
    "tentative",
    "busy",
    "oof",
    "workingElsewhere",
];
const SENSITIVITY: &[&str] = &["normal", "personal", "private", "confidential"];
const IMPORTANCE: &[&str] = &["low", "normal", "high"];
const EVENT_TYPE: &[&str] = &["singleInstance", "occurrence", "exception", "seriesMaster"];
const RESPONSE_TYPE: &[&str] = &[
    "none",
    "organizer",
    "tentativelyAccepted",
    "accepted",
    "declined",
    "notResponded",
];
const ATTENDEE_TYPE: &[&str] = &["required", "optional", "resource"];
const LOCATION_TYPE: &[&str] = &[
    "default",
    "conferenceRoom",
    "homeAddress",
    "businessAddress",
    "geoCoordinates",
    "streetAddress",
    "hotel",
    "restaurant",
    "localBusiness",
    "postalAddress",
];
const UNIQUE_ID_TYPE: &[&str] = &["unknown", "locationStore", "directory", "private", "bing"];
const BOOKING_TYPE: &[&str] = &["unknown", "standard", "reserved"];
const BODY_TYPE: &[&str] = &["text", "html"];
const MEETING_PROVIDER: &[&str] = &[
    "unknown",
    "skypeForBusiness",
    "skypeForConsumer",
    "teamsForBusiness",
];
const CALENDAR_COLOR: &[&str] = &[
    "auto",
    "lightBlue",
    "lightGreen",
    "lightOrange",
    "lightGray",
    "lightYellow",
    "lightTeal",
    "lightPink",
    "lightBrown",
    "lightRed",
    "maxColor",
];
const DAY_OF_WEEK: &[&str] = &[
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const PATTERN_TYPE: &[&str] = &[
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
];
const RANGE_TYPE: &[&str] = &["endDate", "noEnd", "numbered"];
const WEEK_INDEX: &[&str] = &["first", "second", "third", "fourth", "last"];
const REMOVED_REASON: &[&str] = &["deleted", "changed"];
const TOKEN_TYPE: &[&str] = &["Bearer"];
/// Subscriptions and change notifications (CSDL: changeType values, `lifecycleEventType`,
/// `subscription.latestSupportedTlsVersion`).
const CHANGE_TYPE: &[&str] = &["created", "updated", "deleted"];
const LIFECYCLE_EVENT: &[&str] = &["reauthorizationRequired", "subscriptionRemoved", "missed"];
const TLS_VERSION: &[&str] = &["v1_0", "v1_1", "v1_2", "v1_3"];
/// OAuth 2.0 / Entra `error` values (RFC 6749 §5.2, entra v2-oauth2-auth-code-flow, reference §3.3).
const OAUTH_ERROR: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_resource",
    "interaction_required",
    "consent_required",
    "login_required",
    "access_denied",
    "temporarily_unavailable",
    "server_error",
    "unsupported_response_type",
];
/// Graph error codes: the documented top-level codes (contrib:concepts/errors.md) and the
/// Exchange-style codes the Outlook backend really returns (reference §2.3, §2.11, §2.12).
const GRAPH_ERROR_CODE: &[&str] = &[
    "accessDenied",
    "activityLimitReached",
    "extensionError",
    "generalException",
    "invalidRange",
    "invalidRequest",
    "itemNotFound",
    "malwareDetected",
    "nameAlreadyExists",
    "notAllowed",
    "notSupported",
    "resourceModified",
    "resyncRequired",
    "serviceNotAvailable",
    "syncStateNotFound",
    "quotaLimitReached",
    "unauthenticated",
    "BadRequest",
    "Forbidden",
    "NotFound",
    "ResourceNotFound",
    "Request_BadRequest",
    "Request_ResourceNotFound",
    "Authorization_RequestDenied",
    "InvalidAuthenticationToken",
    "ErrorAccessDenied",
    "ErrorItemNotFound",
    "ErrorInvalidIdMalformed",
    "ErrorInvalidRequest",
    "ErrorInvalidUser",
    "ErrorInvalidParameter",
    "ErrorInvalidProperty",
    "ErrorInvalidRecipients",
    "ErrorNonExistentMailbox",
    "ErrorInvalidDateTime",
    "ErrorPropertyValidationFailure",
    "ErrorCalendarEndDateIsEarlierThanStartDate",
    "ErrorOccurrenceCrossingBoundary",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
    "ErrorPropertyUpdate",
    "ErrorInternalServerError",
    "ErrorServerBusy",
    "ErrorTimeoutExpired",
    "MailboxNotEnabledForRESTAPI",
    "MailboxNotSupportedForRESTAPI",
    "RequestBodyRead",
    "UnknownError",
    "SyncStateNotFound",
    "SyncStateInvalid",
    "ApplicationThrottled",
    "TooManyRequests",
    "TimeZoneNotSupportedException",
    "ServiceUnavailable",
    "InternalServerError",
    "FailedDependency",
    "MethodNotAllowed",
    "PreconditionFailed",
    "ErrorIrresolvableConflict",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
];
/// AADSTS codes seen in real captures but absent from the docs' table (reference §3.7).
const AADSTS_EXTRA: &[u64] = &[1002012, 700024, 7000222, 7000218, 700022];

/// The documented set for the property `key` (`name` or `name[]` for array items) whose parent
/// is `parent_key` (empty at the root), or None when the property is not enum-valued.
fn enum_set(parent_key: &str, key: &str) -> Option<(&'static str, &'static [&'static str])> {
    let parent = parent_key;
    let set: (&str, &[&str]) = match key {
        "showAs" => ("freeBusyStatus", FREE_BUSY),
        "sensitivity" => ("sensitivity", SENSITIVITY),
        "importance" => ("importance", IMPORTANCE),
        "type" if parent_key == "attendees[]" => ("attendeeType", ATTENDEE_TYPE),
        "type" if parent_key == "pattern" => ("recurrencePatternType", PATTERN_TYPE),
        "type" if parent_key == "range" => ("recurrenceRangeType", RANGE_TYPE),
        "type" if parent_key == "emailAddress" => return None,
        "type" => ("eventType", EVENT_TYPE),
        "response" if parent_key == "responseStatus" || parent_key == "status" => {
            ("responseType", RESPONSE_TYPE)
        }
        "locationType" => ("locationType", LOCATION_TYPE),
        "uniqueIdType" => ("locationUniqueIdType", UNIQUE_ID_TYPE),
        "bookingType" => ("bookingType", BOOKING_TYPE),
        "contentType" if parent_key == "body" => ("bodyType", BODY_TYPE),
        "onlineMeetingProvider" | "defaultOnlineMeetingProvider" => {
            ("onlineMeetingProviderType", MEETING_PROVIDER)
        }
        "allowedOnlineMeetingProviders[]" => ("onlineMeetingProviderType", MEETING_PROVIDER),
        "color" => ("calendarColor", CALENDAR_COLOR),
        "status" if parent_key == "scheduleItems[]" => ("freeBusyStatus", FREE_BUSY),
        "daysOfWeek[]" | "dayOfWeek" | "firstDayOfWeek" => ("dayOfWeek", DAY_OF_WEEK),
        "index" if parent_key == "pattern" => ("weekIndex", WEEK_INDEX),
        "reason" if parent_key == "@removed" => ("@removed.reason", REMOVED_REASON),
        "token_type" => ("token_type", TOKEN_TYPE),
        "lifecycleEvent" => ("lifecycleEventType", LIFECYCLE_EVENT),
        "latestSupportedTlsVersion" => ("latestSupportedTlsVersion", TLS_VERSION),
        "error" if parent.is_empty() => ("OAuth error", OAUTH_ERROR),
        "@odata.type" => return None,
        "code" if parent_key == "error" => ("Graph error code", GRAPH_ERROR_CODE),
        _ => return None,
    };
    Some(set)
}

// =============================================================================================
// Shapes
// =============================================================================================

/// The union of the shapes of several JSON values found at one path.
#[derive(Debug, Default)]
struct Shape {
    types: BTreeSet<&'static str>,
    props: BTreeMap<String, Shape>,
    items: Option<Box<Shape>>,
    /// Every string value seen (for enum and format checks).
    strings: BTreeSet<String>,
    numbers: BTreeSet<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Shape {
    fn of(values: &[&Value]) -> Shape {
        let mut s = Shape::default();
        for v in values {
            s.add(v);
        }
        s
    }
    fn add(&mut self, v: &Value) {
        self.types.insert(type_name(v));
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    self.props.entry(k.clone()).or_default().add(x);
                }
            }
            Value::Array(a) => {
                let items = self.items.get_or_insert_with(Box::default);
                for x in a {
                    items.add(x);
                }
            }
            Value::String(s) => {
                self.strings.insert(s.clone());
            }
            Value::Number(n) => {
                self.numbers.insert(n.to_string());
            }
            _ => {}
        }
    }
    fn has_items(&self) -> bool {
        self.items.as_ref().is_some_and(|i| !i.types.is_empty())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "(body)" } else { path }
}

#[derive(Debug, Default)]
struct Findings {
    /// (path, what)
    diffs: Vec<(String, String)>,
    extras: Vec<String>,
    infos: Vec<String>,
}

impl Findings {
    fn diff(&mut self, path: &str, what: impl Into<String>) {
        self.diffs.push((path.to_owned(), what.into()));
    }
}

/// Compares the sample's shape with the simulator's: missing properties, JSON types, empty
/// arrays the sample fills; extra properties are collected as info.
fn compare_shapes(sample: &Shape, sim: &Shape, path: &str, f: &mut Findings) {
    let st: BTreeSet<&str> = sample
        .types
        .iter()
        .copied()
        .filter(|t| *t != "null")
        .collect();
    let mt: BTreeSet<&str> = sim.types.iter().copied().filter(|t| *t != "null").collect();
    if !st.is_empty() && !mt.is_empty() {
        if st.is_disjoint(&mt) {
            f.diff(
                path,
                format!(
                    "type differs: sample {}, sim {}",
                    st.iter().copied().collect::<Vec<_>>().join("|"),
                    mt.iter().copied().collect::<Vec<_>>().join("|")
                ),
            );
            return;
        }
        let extra: Vec<&str> = mt.difference(&st).copied().collect();
        if !extra.is_empty() {
            f.diff(
                path,
                format!(
                    "type differs: the sim also answers {} where the sample has {}",
                    extra.join("|"),
                    st.iter().copied().collect::<Vec<_>>().join("|")
                ),
            );
        }
    }
    if st.contains("object") && mt.contains("object") {
        for (k, sv) in &sample.props {
            let p = join(path, k);
            match sim.props.get(k) {
                None => f.diff(&p, "missing in the sim's answer"),
                Some(mv) => compare_shapes(sv, mv, &p, f),
            }
        }
        for k in sim.props.keys() {
            if !sample.props.contains_key(k) {
                f.extras.push(join(path, k));
            }
        }
    }
    if st.contains("array") && mt.contains("array") {
        let p = format!("{path}[]");
        match (&sample.items, &sim.items) {
            (Some(si), Some(mi)) if sample.has_items() && sim.has_items() => {
                compare_shapes(si, mi, &p, f)
            }
            _ if sample.has_items() && !sim.has_items() => f.diff(
                path,
                "the sim's array is empty where the sample has elements (no element shape to compare)",
            ),
            _ => {}
        }
    }
}

/// Enum and format checks over every value of the simulator's answer.
fn check_values(sim: &Shape, path: &str, parent_key: &str, key: &str, f: &mut Findings) {
    if let Some((name, set)) = enum_set(parent_key, key) {
        for v in &sim.strings {
            if !set.contains(&v.as_str()) {
                f.diff(
                    path,
                    format!("value {v:?} is not in the documented set {name} {set:?}"),
                );
            }
        }
    }
    match key {
        "availabilityView" => {
            for v in &sim.strings {
                if !v.chars().all(|c| ('0'..='4').contains(&c)) {
                    f.diff(
                        path,
                        format!("availabilityView {v:?} has characters other than the digits 0-4"),
                    );
                }
            }
        }
        "@odata.etag" => {
            for v in &sim.strings {
                if !(v.starts_with("W/\"") && v.ends_with('"')) {
                    f.diff(path, format!("etag {v:?} is not of the form W/\"…\""));
                }
            }
        }
        "dateTime" => {
            for v in &sim.strings {
                if !is_graph_datetime(v) {
                    f.diff(path, format!("dateTime {v:?} is not YYYY-MM-DDThh:mm:ss.fffffff (7 fractional digits)"));
                }
            }
        }
        "error_codes[]" => {
            let known = aadsts_codes();
            for n in &sim.numbers {
                let ok = n.parse::<u64>().is_ok_and(|c| known.contains(&c));
                if !ok {
                    f.diff(path, format!("AADSTS{n} is not in Entra's AADSTS table (identity/aadsts-error-codes.csv)"));
                }
            }
        }
        "error_description" => {
            for v in &sim.strings {
                let digits: String = v
                    .strip_prefix("AADSTS")
                    .unwrap_or("")
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if digits.is_empty() || !v["AADSTS".len() + digits.len()..].starts_with(':') {
                    f.diff(
                        path,
                        format!("{:?} does not start with \"AADSTSnnn:\"", truncate(v, 60)),
                    );
                }
                if !v.contains("Trace ID:")
                    || !v.contains("Correlation ID:")
                    || !v.contains("Timestamp:")
                {
                    f.diff(path, "error_description lacks the \\r\\nTrace ID / Correlation ID / Timestamp lines");
                }
            }
        }
        "changeType" => {
            for v in &sim.strings {
                if !v.split(',').all(|c| CHANGE_TYPE.contains(&c)) {
                    f.diff(
                        path,
                        format!(
                            "changeType {v:?} is not a comma-separated list of {CHANGE_TYPE:?}"
                        ),
                    );
                }
            }
        }
        // Change notifications write the namespace in Pascal case (`#Microsoft.Graph.Message`
        // in the delivery sample), unlike entity payloads.
        "@odata.type" if parent_key == "resourceData" => {
            for v in &sim.strings {
                if !v.starts_with("#Microsoft.Graph.") {
                    f.diff(
                        path,
                        format!("@odata.type {v:?} does not start with #Microsoft.Graph."),
                    );
                }
            }
        }
        "@odata.type" => {
            for v in &sim.strings {
                if !v.starts_with("#microsoft.graph.") {
                    f.diff(
                        path,
                        format!("@odata.type {v:?} does not start with #microsoft.graph."),
                    );
                }
            }
        }
        _ => {}
    }
    for (k, s) in &sim.props {
        check_values(s, &join(path, k), key, k, f);
    }
    if let Some(i) = &sim.items {
        check_values(i, &format!("{path}[]"), parent_key, &format!("{key}[]"), f);
    }
}

/// Sample values outside the documented set (case-insensitive): tells whether a set here is
/// incomplete. Info only: doc samples are not schema-exact.
fn check_sample_values(sample: &Shape, path: &str, parent_key: &str, key: &str, f: &mut Findings) {
    if let Some((name, set)) = enum_set(parent_key, key) {
        for v in &sample.strings {
            if !set.iter().any(|x| x.eq_ignore_ascii_case(v)) {
                f.infos
                    .push(format!("sample value {v:?} at {path} is outside {name}"));
            }
        }
    }
    for (k, s) in &sample.props {
        check_sample_values(s, &join(path, k), key, k, f);
    }
    if let Some(i) = &sample.items {
        check_sample_values(i, &format!("{path}[]"), parent_key, &format!("{key}[]"), f);
    }
}

fn is_graph_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 27 {
        return false;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    (0..4).all(digit)
        && b[4] == b'-'
        && (5..7).all(digit)
        && b[7] == b'-'
        && (8..10).all(digit)
        && b[10] == b'T'
        && (11..13).all(digit)
        && b[13] == b':'
        && (14..16).all(digit)
        && b[16] == b':'
        && (17..19).all(digit)
        && b[19] == b'.'
        && (20..27).all(digit)
}

fn aadsts_codes() -> &'static BTreeSet<u64> {
    static CODES: std::sync::OnceLock<BTreeSet<u64>> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut s: BTreeSet<u64> = AADSTS_EXTRA.iter().copied().collect();
        if let Some(dir) = DATA_DIR.get()
            && let Ok(text) = std::fs::read_to_string(dir.join("identity/aadsts-error-codes.csv"))
        {
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("AADSTS") {
                    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(c) = n.parse() {
                        s.insert(c);
                    }
                }
            }
        }
        s
    })
}

static DATA_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
/// `CONFORMANCE_VERBOSE=<sample-name prefix>` prints the requests and the sim's answers of the
/// matching samples (to debug a DIFF).
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Removes trailing commas before `}` or `]` outside strings (the published irregularity of a
/// few samples, listed in INDEX.md).
fn lenient_json(text: &str) -> Option<Value> {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut esc = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    serde_json::from_str(&out).ok()
}

// =============================================================================================
// Samples
// =============================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Area {
    Graph,
    Identity,
}

#[derive(Debug)]
struct Sample {
    area: Area,
    dir: PathBuf,
    /// `calendar-get__1`
    name: String,
    /// `calendar-get`
    page: String,
    num: u32,
    meta: Value,
}

impl Sample {
    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}__{suffix}", self.name))
    }
    fn request_json(&self) -> R<Option<Value>> {
        let p = self.file("request.json");
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", p.display()))
    }
    fn req(&self) -> &Value {
        &self.meta["request"]
    }
    fn url(&self) -> &str {
        self.req()["url"].as_str().unwrap_or("")
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        pairs(&self.req()["headers"])
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn load_samples(data: &Path) -> R<Vec<Sample>> {
    let mut out = Vec::new();
    for (area, sub) in [(Area::Graph, "graph"), (Area::Identity, "identity")] {
        let dir = data.join(sub);
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in rd.flatten() {
            let fname = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = fname.strip_suffix("__meta.json") else {
                continue;
            };
            let Some((page, num)) = name.rsplit_once("__") else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let meta: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            out.push(Sample {
                area,
                dir: dir.clone(),
                name: name.to_owned(),
                page: page.to_owned(),
                num: num.parse().unwrap_or(0),
                meta,
            });
        }
    }
    out.sort_by(|a, b| (a.area, &a.page, a.num).cmp(&(b.area, &b.page, b.num)));
    Ok(out)
}

/// What the sample says the response is.
#[derive(Debug)]
struct Expected {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    /// Set when the body was parsed leniently (trailing commas as published).
    lenient: bool,
}

fn read_body(path: &Path) -> R<(Value, bool)> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(v) => Ok((v, false)),
        Err(e) => lenient_json(&text)
            .map(|v| (v, true))
            .ok_or_else(|| format!("{} is not JSON even leniently: {e}", path.display())),
    }
}

/// Whether INDEX.md lists `file` among the irregular samples (it abbreviates `page__13__…` as
/// `__13__…` after the first file of a page).
fn listed_irregular(index_md: &str, page: &str, file: &str) -> bool {
    index_md.contains(file)
        || (index_md.contains(page) && index_md.contains(file.strip_prefix(page).unwrap_or(file)))
}

/// The sample's expected response, or the reason it is not a response sample.
fn expected(s: &Sample, index_md: &str) -> Result<Expected, String> {
    let m = &s.meta;
    if s.area == Area::Graph && is_subscription_page(&s.page) {
        return expected_subscription(s);
    }
    if s.area == Area::Graph {
        if m["kind"] == "fragment" {
            let role = m["role"].as_str().unwrap_or("");
            if role.contains("error response body") {
                let f = m["file"].as_str().unwrap_or("");
                let (body, lenient) =
                    read_body(&s.dir.join(f)).map_err(|e| format!("unreadable: {e}"))?;
                return Ok(Expected {
                    status: None,
                    headers: vec![],
                    body: Some(body),
                    lenient,
                });
            }
            return Err(format!("fragment, not a response: {role}"));
        }
        let resp = &m["response"];
        if resp.is_null() {
            let mut why =
                "no response sample on the page (the response is given in prose only)".to_owned();
            if s.url().to_ascii_lowercase().contains("/messages") {
                why.push_str("; messages are not in scope of the simulator (calendars only)");
            }
            return Err(why);
        }
        let body = match resp["body_file"].as_str() {
            Some(f) => {
                let (b, lenient) = read_body(&s.dir.join(f))
                    .map_err(|e| format!("sample is not valid JSON as published: {e}"))?;
                if lenient && !listed_irregular(index_md, &s.page, f) {
                    return Err(format!(
                        "sample {f} is not valid JSON and not listed in INDEX.md irregularities"
                    ));
                }
                Some((b, lenient))
            }
            None => None,
        };
        let lenient = body.as_ref().is_some_and(|b| b.1);
        return Ok(Expected {
            status: resp["status_code"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok()),
            headers: pairs(&resp["headers"]),
            body: body.map(|b| b.0),
            lenient,
        });
    }
    // identity
    let role = m["role"].as_str().unwrap_or("");
    let desc = m["description"].as_str().unwrap_or("");
    match role {
        "response" => {}
        "request" => return Err(format!("request, not a response ({desc})")),
        "redirect" => {
            return Err(format!(
                "browser redirect carrying a query string, not a JSON response ({desc})"
            ));
        }
        "curl" => return Err(format!("curl command line, not a response ({desc})")),
        "text" => return Err(format!("not an HTTP message ({desc})")),
        other => return Err(format!("not a response (role {other:?}: {desc})")),
    }
    let f = m["file"].as_str().unwrap_or("");
    let (body, lenient) =
        read_body(&s.dir.join(f)).map_err(|e| format!("unreadable sample: {e}"))?;
    if lenient && !listed_irregular(index_md, &s.page, f) {
        return Err(format!(
            "sample {f} is not valid JSON and not listed in INDEX.md irregularities"
        ));
    }
    let status = m["status_per_prose"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .or(Some(if body.get("error").is_some() {
            400
        } else {
            200
        }));
    Ok(Expected {
        status,
        headers: vec![],
        body: Some(body),
        lenient,
    })
}

fn is_subscription_page(page: &str) -> bool {
    page.starts_with("subscription") || page.starts_with("change-notifications")
}

/// Subscriptions and change notifications: response samples as usual; the payloads Graph
/// POSTs to the subscriber (change and lifecycle notifications) are compared with what the
/// simulator POSTs; the validation request by its method, query and Content-Type; requests
/// whose response is given in prose by the status the page states (201 create, 200 update,
/// 204 delete and reauthorize).
fn expected_subscription(s: &Sample) -> Result<Expected, String> {
    let m = &s.meta;
    if m["kind"] == "fragment" {
        let role = m["role"].as_str().unwrap_or("");
        let f = m["file"].as_str().unwrap_or("");
        if role.contains("notification payload") {
            let (body, lenient) =
                read_body(&s.dir.join(f)).map_err(|e| format!("unreadable: {e}"))?;
            return Ok(Expected {
                status: None,
                headers: vec![],
                body: Some(body),
                lenient,
            });
        }
        if role.contains("validation request") {
            let text =
                std::fs::read_to_string(s.dir.join(f)).map_err(|e| format!("unreadable: {e}"))?;
            let headers = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect();
            return Ok(Expected {
                status: None,
                headers,
                body: None,
                lenient: false,
            });
        }
        return Err(format!("fragment, not a response: {role}"));
    }
    let resp = &m["response"];
    if resp.is_null() {
        let method = s.req()["method"].as_str().unwrap_or("");
        let url = s.url().trim_end_matches('/');
        let status = match method {
            "POST" if url.ends_with("/subscriptions") => 201,
            "POST" if url.ends_with("/reauthorize") => 204,
            "PATCH" => 200,
            "DELETE" => 204,
            _ => {
                return Err(
                    "no response sample on the page (the response is given in prose only)".into(),
                );
            }
        };
        return Ok(Expected {
            status: Some(status),
            headers: vec![],
            body: None,
            lenient: false,
        });
    }
    let f = resp["body_file"]
        .as_str()
        .ok_or("the response has no body")?;
    let (body, lenient) =
        read_body(&s.dir.join(f)).map_err(|e| format!("sample is not valid JSON: {e}"))?;
    Ok(Expected {
        status: resp["status_code"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok()),
        headers: pairs(&resp["headers"]),
        body: Some(body),
        lenient,
    })
}

// =============================================================================================
// HTTP against the simulator
// =============================================================================================

#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Option<Value>,
}

impl Resp {
    fn summary(&self) -> String {
        match &self.json {
            Some(v) if v["error"].is_object() => format!(
                "{} {}: {}",
                self.status,
                v["error"]["code"].as_str().unwrap_or("?"),
                truncate(v["error"]["message"].as_str().unwrap_or(""), 140)
            ),
            Some(v) if v["error"].is_string() => format!(
                "{} {}: {}",
                self.status,
                v["error"].as_str().unwrap_or(""),
                truncate(v["error_description"].as_str().unwrap_or(""), 140)
            ),
            _ => format!("{} {}", self.status, truncate(&self.text, 140)),
        }
    }
}

enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
}

struct Demo {
    /// The demo's first published app (read-write).
    client_id: String,
    secret: String,
    tenant: String,
    users: Vec<String>,
    /// Chosen "me".
    me: Option<String>,
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    sim: SimHandle,
    demo: Demo,
    token: R<String>,
    today: jiff::civil::Date,
    cache_rich_event: Option<String>,
    cache_master: Option<String>,
    delta: Option<DeltaRound>,
    /// The loopback endpoint that receives the simulator's validation requests and
    /// notifications (started on first use).
    receiver: Option<Receiver>,
}

struct DeltaRound {
    pages: Vec<Resp>,
    /// Two events created in the window before the round, changed after it.
    to_delete: String,
    to_update: String,
}

impl Ctx {
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Body,
        auth: bool,
    ) -> R<Resp> {
        let url = self.localize(url);
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self.http.request(m, &url);
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("content-type") || k.eq_ignore_ascii_case("host") {
                continue;
            }
            rb = rb.header(k, v);
        }
        if auth {
            let t = self.token.as_ref().map_err(|e| format!("no token: {e}"))?;
            rb = rb.bearer_auth(t);
        }
        rb = match body {
            Body::None => rb,
            Body::Json(v) => {
                if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
                    println!("  > body {}", truncate(&v.to_string(), 1500));
                }
                rb.json(&v)
            }
            Body::Form(f) => rb.form(&f),
        };
        let r = rb
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r
            .text()
            .await
            .map_err(|e| format!("{method} {url}: body: {e}"))?;
        let json = serde_json::from_str(&text).ok();
        if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
            println!("  > {method} {url}\n  < {status} {}", truncate(&text, 3000));
        }
        Ok(Resp {
            status,
            headers,
            text,
            json,
        })
    }

    async fn graph(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Body,
    ) -> R<Resp> {
        self.send(method, path, headers, body, true).await
    }

    async fn get_ok(&self, path: &str) -> R<Value> {
        let r = self.graph("GET", path, &[], Body::None).await?;
        if r.status != 200 {
            return Err(format!("GET {path} → {}", r.summary()));
        }
        r.json.ok_or_else(|| format!("GET {path}: not JSON"))
    }

    /// Absolute sim links, Graph links and relative paths → URLs on the simulator.
    fn localize(&self, url: &str) -> String {
        if let Some(rest) = url.strip_prefix("https://graph.microsoft.com") {
            format!("{}{rest}", self.base)
        } else if let Some(rest) = url.strip_prefix("https://login.microsoftonline.com") {
            format!("{}{rest}", self.base)
        } else if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        }
    }

    fn me(&self) -> R<&str> {
        self.demo
            .me
            .as_deref()
            .ok_or_else(|| "the demo tenant has no user mailbox".to_owned())
    }

    fn others(&self) -> Vec<String> {
        let me = self.demo.me.clone().unwrap_or_default();
        self.demo
            .users
            .iter()
            .filter(|u| **u != me)
            .cloned()
            .collect()
    }

    /// Lists a collection, following `@odata.nextLink` up to `max_pages`.
    async fn list(&self, path: &str, max_pages: usize) -> R<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(path.to_owned());
        let mut pages = 0;
        while let Some(url) = next.take() {
            let v = self.get_ok(&url).await?;
            if let Some(a) = v["value"].as_array() {
                out.extend(a.iter().cloned());
            }
            pages += 1;
            if pages < max_pages {
                next = v["@odata.nextLink"].as_str().map(str::to_owned);
            }
        }
        Ok(out)
    }

    fn window(&self) -> (jiff::civil::Date, jiff::civil::Date) {
        let start = self.today.saturating_sub(jiff::Span::new().days(3));
        let end = self.today.saturating_add(jiff::Span::new().days(14));
        (start, end)
    }

    /// Chooses "me": the user mailbox whose events best cover the samples (a series master, an
    /// event with attendees and a location).
    async fn choose_me(&mut self) {
        let mut best: Option<(u32, String)> = None;
        for u in self.demo.users.iter().take(8) {
            let Ok(events) = self.list(&format!("/v1.0/users/{u}/events"), 5).await else {
                continue;
            };
            let master = events.iter().any(|e| e["type"] == "seriesMaster");
            let rich = events.iter().any(is_rich);
            let score = u32::from(master) * 2 + u32::from(rich) * 2 + u32::from(!events.is_empty());
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, u.clone()));
            }
        }
        self.demo.me = best
            .map(|b| b.1)
            .or_else(|| self.demo.users.first().cloned());
    }

    async fn rich_event(&mut self) -> R<String> {
        if let Some(id) = &self.cache_rich_event {
            return Ok(id.clone());
        }
        let me = self.me()?.to_owned();
        let events = self.list(&format!("/v1.0/users/{me}/events"), 20).await?;
        let pick = events
            .iter()
            .find(|e| is_rich(e) && e["type"] == "singleInstance")
            .or_else(|| events.iter().find(|e| is_rich(e)))
            .or_else(|| events.first())
            .and_then(|e| e["id"].as_str())
            .ok_or_else(|| format!("{me} has no events"))?
            .to_owned();
        self.cache_rich_event = Some(pick.clone());
        Ok(pick)
    }

    async fn series_master(&mut self) -> R<String> {
        if let Some(id) = &self.cache_master {
            return Ok(id.clone());
        }
        let me = self.me()?.to_owned();
        let events = self.list(&format!("/v1.0/users/{me}/events"), 20).await?;
        let masters: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "seriesMaster")
            .collect();
        let pick = masters
            .iter()
            .find(|e| {
                let t = e["recurrence"]["pattern"]["type"].as_str().unwrap_or("");
                (t == "weekly" || t == "daily") && e["recurrence"]["range"]["type"] != "endDate"
            })
            .or_else(|| masters.first())
            .and_then(|e| e["id"].as_str())
            .ok_or_else(|| format!("{me} has no series master among its events"))?
            .to_owned();
        self.cache_master = Some(pick.clone());
        Ok(pick)
    }

    /// A fresh single event in "me"'s calendar, tomorrow, for destructive samples.
    async fn scratch_event(&self, subject: &str, day_offset: i64) -> R<String> {
        let me = self.me()?;
        let d = self
            .today
            .saturating_add(jiff::Span::new().days(day_offset));
        let body = json!({
            "subject": subject,
            "body": {"contentType": "text", "content": "created by the conformance check"},
            "start": {"dateTime": format!("{d}T10:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{d}T10:30:00"), "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": self.others().first().cloned().unwrap_or_default(), "name": "Attendee"}, "type": "required"}],
            "location": {"displayName": "Conformance room"},
        });
        let r = self
            .graph(
                "POST",
                &format!("/v1.0/users/{me}/events"),
                &[],
                Body::Json(body),
            )
            .await?;
        if r.status != 201 {
            return Err(format!("cannot create a scratch event: {}", r.summary()));
        }
        r.json
            .as_ref()
            .and_then(|v| v["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| "created event has no id".to_owned())
    }

    /// Maps a sample's Graph URL onto the simulator: `/me` → the demo mailbox, the id after
    /// `events/` → `event_id`, a room-list address after `places/` → `room_list`, calendarView
    /// and instances windows → the demo window (keeping the sample's time and offset).
    fn map_url(&self, url: &str, event_id: Option<&str>, room_list: Option<&str>) -> R<String> {
        let rest = url
            .strip_prefix("https://graph.microsoft.com")
            .ok_or_else(|| format!("not a Graph URL: {url}"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let me = self.me()?;
        let mut segs: Vec<String> = Vec::new();
        let mut prev = String::new();
        for (i, seg) in path.split('/').enumerate() {
            let mut out = seg.to_owned();
            if i == 2 && seg.eq_ignore_ascii_case("me") {
                segs.push("users".into());
                out = me.to_owned();
            } else if prev.eq_ignore_ascii_case("events") && !seg.is_empty() && seg != "delta" {
                out = event_id
                    .ok_or_else(|| format!("no event id mapping for {url}"))?
                    .to_owned();
            } else if prev == "places" && seg.contains('@') {
                out = room_list
                    .ok_or_else(|| format!("no room list mapping for {url}"))?
                    .to_owned();
            }
            prev = seg.to_owned();
            segs.push(out);
        }
        let mut out = segs.join("/");
        if let Some(q) = query {
            let (ws, we) = self.window();
            let mapped: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("startDateTime") => {
                        format!("{k}={}", move_date(v, ws))
                    }
                    Some((k, v)) if k.eq_ignore_ascii_case("endDateTime") => {
                        format!("{k}={}", move_date(v, we))
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            out.push('?');
            out.push_str(&mapped.join("&"));
        }
        Ok(out)
    }
}

fn is_rich(e: &Value) -> bool {
    e["attendees"].as_array().is_some_and(|a| !a.is_empty())
        && e["location"]["displayName"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
}

/// Replaces the date of an ISO value, keeping the sample's time and offset; placeholders
/// (`{start_datetime}`) become midnight UTC.
fn move_date(v: &str, d: jiff::civil::Date) -> String {
    let b = v.as_bytes();
    let looks_dated =
        b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit);
    if looks_dated {
        let tail = &v[10..];
        // An offset such as -08:00 must be percent-encoded as a query value? '+' must.
        format!("{d}{}", tail.replace('+', "%2B"))
    } else {
        format!("{d}T00:00:00Z")
    }
}

/// Replaces every e-mail address in `v` by a demo address: the i-th distinct address by
/// `targets[i % len]`.
fn replace_addresses(v: &mut Value, targets: &[String], seen: &mut Vec<String>) {
    match v {
        Value::String(s) if looks_like_email(s) && !targets.is_empty() => {
            let key = s.to_ascii_lowercase();
            let i = match seen.iter().position(|x| *x == key) {
                Some(i) => i,
                None => {
                    seen.push(key);
                    seen.len() - 1
                }
            };
            *s = targets[i % targets.len()].clone();
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| replace_addresses(x, targets, seen)),
        Value::Object(m) => m
            .values_mut()
            .for_each(|x| replace_addresses(x, targets, seen)),
        _ => {}
    }
}

fn looks_like_email(s: &str) -> bool {
    !s.contains(' ')
        && s.split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
}

/// Doc placeholders such as `"originalStartTimeZone-value"` or `"datetime-value"` → plausible
/// values.
fn fill_placeholders(v: &mut Value, key: &str, now: &str) {
    match v {
        Value::String(s) if s.ends_with("-value") => {
            *s = if key.to_ascii_lowercase().contains("timezone") {
                "Pacific Standard Time".to_owned()
            } else if s.contains("datetime") || key == "time" {
                now.to_owned()
            } else {
                String::new()
            };
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fill_placeholders(x, key, now)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                fill_placeholders(x, k, now);
            }
        }
        _ => {}
    }
}

// =============================================================================================
// Per-sample handlers
// =============================================================================================

/// What running a sample produced.
enum Run {
    /// The simulator's answer (status, headers, body), plus notes printed with the result.
    Answer(Resp, Vec<String>),
    /// A synthesized body (several pages merged), with the status of the last page.
    Body(u16, reqwest::header::HeaderMap, Value, Vec<String>),
    Skip(String),
}

async fn run_sample(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    let page = s.page.as_str();
    let hdrs = s.request_headers();
    match (s.area, page) {
        (Area::Graph, p) if is_subscription_page(p) => subscriptions(ctx, s).await,
        (
            Area::Graph,
            "calendar-get" | "user-list-calendars" | "user-list-calendarview" | "user-list-events",
        ) => {
            let url = ctx.map_url(s.url(), None, None)?;
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            Ok(Run::Answer(r, vec![]))
        }
        (Area::Graph, "event-get") => {
            let id = ctx.rich_event().await?;
            let url = ctx.map_url(s.url(), Some(&id), None)?;
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            Ok(Run::Answer(
                r,
                vec!["a demo event with attendees and a location".into()],
            ))
        }
        (Area::Graph, "event-list-instances") => {
            let id = ctx.series_master().await?;
            let url = ctx.map_url(s.url(), Some(&id), None)?;
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            Ok(Run::Answer(
                r,
                vec!["a demo series master, window moved to the demo's dates".into()],
            ))
        }
        (Area::Graph, "event-update" | "event-delete" | "event-cancel") => {
            let id = ctx
                .scratch_event(&format!("conformance {}", s.name), 1)
                .await?;
            let url = ctx.map_url(s.url(), Some(&id), None)?;
            let method = s.req()["method"].as_str().unwrap_or("GET");
            let body = match s.request_json()? {
                Some(mut b) => {
                    let now = ctx.sim.state.now().to_string();
                    fill_placeholders(&mut b, "", &now);
                    replace_addresses(&mut b, &ctx.others(), &mut Vec::new());
                    Body::Json(b)
                }
                None => Body::None,
            };
            let r = ctx.graph(method, &url, &hdrs, body).await?;
            if page == "event-cancel"
                && (r.status == 404 || r.status == 405)
                && r.text.contains("Resource not found for the segment")
            {
                return Ok(Run::Skip("the cancel action is not implemented by the simulator (issue 2 lists list/get/create/update/delete)".into()));
            }
            Ok(Run::Answer(r, vec!["on a fresh event".into()]))
        }
        (Area::Graph, "user-post-events") => {
            let me = ctx.me()?.to_owned();
            let mut body = s.request_json()?.ok_or("the sample has no request body")?;
            replace_addresses(&mut body, &ctx.others(), &mut Vec::new());
            let url = ctx.map_url(s.url(), None, None)?;
            let r = ctx.graph("POST", &url, &hdrs, Body::Json(body)).await?;
            Ok(Run::Answer(r, vec![format!("created in {me}")]))
        }
        (Area::Graph, "calendar-getschedule" | "outlook-get-free-busy-schedule") => {
            getschedule(ctx, s).await
        }
        (Area::Graph, "place-list") => {
            let rl = if s.url().contains('@') {
                let lists = ctx.get_ok("/v1.0/places/microsoft.graph.roomlist").await?;
                Some(
                    lists["value"][0]["emailAddress"]
                        .as_str()
                        .ok_or("the demo tenant has no room list")?
                        .to_owned(),
                )
            } else {
                None
            };
            let url = ctx.map_url(s.url(), None, rl.as_deref())?;
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            Ok(Run::Answer(r, vec![]))
        }
        (Area::Graph, "delta-query-events") => delta_query(ctx, s).await,
        (Area::Graph, "event-delta") => {
            let url = ctx.map_url(s.url(), None, None)?;
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            Ok(Run::Answer(
                r,
                vec!["first page of a round, window moved to the demo's dates".into()],
            ))
        }
        (Area::Graph, "errors") => {
            // An error body: GET an event that existed and was deleted → 404.
            let id = ctx.scratch_event("conformance deleted event", 2).await?;
            let me = ctx.me()?.to_owned();
            let path = format!("/v1.0/users/{me}/events/{id}");
            let d = ctx.graph("DELETE", &path, &[], Body::None).await?;
            if d.status != 204 {
                return Err(format!("DELETE {path} → {}", d.summary()));
            }
            let r = ctx.graph("GET", &path, &[], Body::None).await?;
            Ok(Run::Answer(r, vec!["GET of a deleted event".into()]))
        }
        (Area::Graph, "json-batching") => batch(ctx).await,
        (Area::Graph, "singlevaluelegacyextendedproperty-get") => ext_property(ctx, s).await,
        (Area::Graph, "throttling") => throttling(ctx).await,
        (Area::Identity, _) => identity(ctx, s).await,
        (_, p) => Ok(Run::Skip(format!(
            "NOT MAPPED: the conformance check has no mapping for page {p} yet"
        ))),
    }
}

async fn getschedule(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    let mut body = s.request_json()?.ok_or("the sample has no request body")?;
    // The sample's period as wall-clock times in its zone.
    let field = |name: &str| -> Option<Value> {
        body.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (st, et) = (
        field("startTime").ok_or("no startTime")?,
        field("endTime").ok_or("no endTime")?,
    );
    let civil_of = |v: &Value| -> R<(jiff::civil::DateTime, String)> {
        let dt: jiff::civil::DateTime = v["dateTime"]
            .as_str()
            .unwrap_or("")
            .parse()
            .map_err(|e| format!("sample dateTime: {e}"))?;
        Ok((dt, v["timeZone"].as_str().unwrap_or("UTC").to_owned()))
    };
    let ((sdt, zone), (edt, _)) = (civil_of(&st)?, civil_of(&et)?);
    let tz =
        calgate_sim::expand::resolve_tz(&zone).ok_or_else(|| format!("unknown zone {zone}"))?;
    let span_days = i64::from((edt.date() - sdt.date()).get_days());
    // Every user's events over the next two weeks (UTC), to pick a weekday and mailboxes with
    // items in the sample's period.
    let from = ctx.today;
    let to = ctx.today.saturating_add(jiff::Span::new().days(16));
    let mut busy: Vec<(String, Vec<(jiff::Timestamp, jiff::Timestamp)>)> = Vec::new();
    for u in ctx.demo.users.iter().take(30) {
        let url = format!(
            "/v1.0/users/{u}/calendarView?startDateTime={from}T00:00:00Z&endDateTime={to}T00:00:00Z"
        );
        let Ok(events) = ctx.list(&url, 30).await else {
            continue;
        };
        let spans = events
            .iter()
            .filter(|e| e["showAs"] != "free")
            .filter_map(|e| {
                let p = |k: &str| {
                    format!("{}Z", e[k]["dateTime"].as_str().unwrap_or(""))
                        .parse::<jiff::Timestamp>()
                        .ok()
                };
                Some((p("start")?, p("end")?))
            })
            .collect();
        busy.push((u.clone(), spans));
    }
    let mut best: Option<(usize, jiff::civil::Date, Vec<String>)> = None;
    for i in 1..15 {
        let d = ctx.today.saturating_add(jiff::Span::new().days(i));
        if matches!(
            d.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            continue;
        }
        let ed = d.saturating_add(jiff::Span::new().days(span_days));
        let (Ok(ws), Ok(we)) = (
            d.to_datetime(sdt.time()).to_zoned(tz.clone()),
            ed.to_datetime(edt.time()).to_zoned(tz.clone()),
        ) else {
            continue;
        };
        let (ws, we) = (ws.timestamp(), we.timestamp());
        let mut who: Vec<(usize, String)> = busy
            .iter()
            .map(|(u, spans)| {
                (
                    spans.iter().filter(|(a, b)| *a < we && *b > ws).count(),
                    u.clone(),
                )
            })
            .filter(|(n, _)| *n > 0)
            .collect();
        who.sort_by_key(|w| std::cmp::Reverse(w.0));
        if best.as_ref().is_none_or(|(n, _, _)| who.len() > *n) {
            best = Some((who.len(), d, who.into_iter().map(|w| w.1).collect()));
        }
    }
    let (day, mut targets) = best.map(|b| (b.1, b.2)).unwrap_or((ctx.today, Vec::new()));
    for u in &ctx.demo.users {
        if !targets.contains(u) {
            targets.push(u.clone());
        }
    }
    replace_addresses(&mut body, &targets, &mut Vec::new());
    if let Some(o) = body.as_object_mut() {
        for (k, v) in o.iter_mut() {
            if (k.eq_ignore_ascii_case("startTime") || k.eq_ignore_ascii_case("endTime"))
                && let Some(dt) = v["dateTime"].as_str()
            {
                let target = if k.eq_ignore_ascii_case("endTime") {
                    day.saturating_add(jiff::Span::new().days(span_days))
                } else {
                    day
                };
                v["dateTime"] = json!(move_date(dt, target));
            }
        }
    }
    let url = ctx.map_url(s.url(), None, None)?;
    let r = ctx
        .graph("POST", &url, &s.request_headers(), Body::Json(body))
        .await?;
    Ok(Run::Answer(
        r,
        vec![format!(
            "busy demo mailboxes on {day}, the sample's hours and zone"
        )],
    ))
}

async fn delta_query(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    let hdrs = s.request_headers();
    if ctx.delta.is_none() {
        let to_delete = ctx.scratch_event("conformance delta: to delete", 1).await?;
        let to_update = ctx.scratch_event("conformance delta: to update", 2).await?;
        let first = ctx.map_url(
            "https://graph.microsoft.com/v1.0/me/calendarView/delta?startDateTime=2016-12-01T00:00:00Z&endDateTime=2016-12-30T00:00:00Z",
            None,
            None,
        )?;
        let mut pages = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
            if r.status != 200 {
                return Err(format!("delta round: GET {url} → {}", r.summary()));
            }
            next = r
                .json
                .as_ref()
                .and_then(|v| v["@odata.nextLink"].as_str())
                .map(str::to_owned);
            pages.push(r);
            if pages.len() > 2000 {
                return Err("delta round: more than 2000 pages".into());
            }
        }
        ctx.delta = Some(DeltaRound {
            pages,
            to_delete,
            to_update,
        });
    }
    let Some(round) = ctx.delta.as_mut() else {
        return Err("no delta round".into());
    };
    let n = round.pages.len();
    match s.num {
        1 | 2 => {
            let i = (s.num as usize) - 1;
            if i >= n {
                return Err(format!(
                    "the delta round has only {n} page(s) with maxpagesize=2"
                ));
            }
            let r = round.pages[i].clone();
            Ok(Run::Answer(
                r,
                vec![format!(
                    "page {} of {n} (maxpagesize=2), window moved to the demo's dates",
                    i + 1
                )],
            ))
        }
        3 => {
            let last = round.pages.last().ok_or("empty delta round")?;
            let r = last.clone();
            Ok(Run::Answer(
                r,
                vec![format!("last page ({n} of {n}) of the round")],
            ))
        }
        _ => {
            let link = round
                .pages
                .last()
                .and_then(|p| p.json.as_ref())
                .and_then(|v| v["@odata.deltaLink"].as_str())
                .ok_or("the round's last page has no @odata.deltaLink")?
                .to_owned();
            let (del, upd) = (round.to_delete.clone(), round.to_update.clone());
            let me = ctx.me()?.to_owned();
            let d = ctx
                .graph(
                    "DELETE",
                    &format!("/v1.0/users/{me}/events/{del}"),
                    &[],
                    Body::None,
                )
                .await?;
            if d.status != 204 {
                return Err(format!("delete for the delta round → {}", d.summary()));
            }
            let u = ctx
                .graph("PATCH", &format!("/v1.0/users/{me}/events/{upd}"), &[], Body::Json(json!({
                    "subject": "conformance delta: updated",
                    "location": {"displayName": "Town hall", "address": {"street": "1 Main Street", "city": "Springfield",
                        "state": "WA", "countryOrRegion": "United States", "postalCode": "98000"},
                        "coordinates": {"latitude": 47.6, "longitude": -122.3}},
                })))
                .await?;
            if u.status != 200 {
                return Err(format!("update for the delta round → {}", u.summary()));
            }
            let mut values = Vec::new();
            let mut next = Some(link);
            let mut last: Option<Resp> = None;
            let mut pages = 0;
            while let Some(url) = next.take() {
                let r = ctx.graph("GET", &url, &hdrs, Body::None).await?;
                if r.status != 200 {
                    return Ok(Run::Answer(
                        r,
                        vec!["deltaLink after a delete and an update".into()],
                    ));
                }
                let v = r.json.clone().unwrap_or(Value::Null);
                if let Some(a) = v["value"].as_array() {
                    values.extend(a.iter().cloned());
                }
                next = v["@odata.nextLink"].as_str().map(str::to_owned);
                last = Some(r);
                pages += 1;
                if pages > 100 {
                    return Err("delta after changes: more than 100 pages".into());
                }
            }
            let last = last.ok_or("no delta page")?;
            let mut body = last.json.clone().unwrap_or(json!({}));
            body["value"] = Value::Array(values);
            Ok(Run::Body(
                last.status,
                last.headers.clone(),
                body,
                vec![format!(
                    "deltaLink after a delete and an update ({pages} page(s) merged)"
                )],
            ))
        }
    }
}

async fn batch(ctx: &mut Ctx) -> R<Run> {
    let me = ctx.me()?.to_owned();
    let gone = ctx.scratch_event("conformance batch: deleted", 3).await?;
    let d = ctx
        .graph(
            "DELETE",
            &format!("/v1.0/users/{me}/events/{gone}"),
            &[],
            Body::None,
        )
        .await?;
    if d.status != 204 {
        return Err(format!("DELETE → {}", d.summary()));
    }
    // Mirrors the sample's mix: collections (one paged), errors, a POST with a body and headers.
    let body = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{me}/events")},
        {"id": "2", "method": "GET", "url": format!("/users/{me}/events/{gone}")},
        {"id": "3", "method": "DELETE", "url": format!("/users/{me}/events/{gone}")},
        {"id": "4", "method": "POST", "url": format!("/users/{me}/events"),
         "body": {"subject": "conformance batch", "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
                  "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"}},
         "headers": {"Content-Type": "application/json"}},
        {"id": "5", "method": "GET", "url": format!("/users/{me}/calendars?$select=id,name"),
         "headers": {"ConsistencyLevel": "eventual"}},
    ]});
    let hdrs = vec![("Accept".to_owned(), "application/json".to_owned())];
    let r = ctx
        .graph("POST", "/v1.0/$batch", &hdrs, Body::Json(body))
        .await?;
    Ok(Run::Answer(r, vec!["in-scope calendar requests (events list, get/delete of a deleted event, create, calendars)".into()]))
}

async fn ext_property(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    // Create an event carrying the sample's property (the create page's own body, with the
    // Color property of the get sample added), then GET it with the sample's $expand.
    let me = ctx.me()?.to_owned();
    let mut body = s
        .dir
        .join(
            "singlevaluelegacyextendedproperty-post-singlevalueextendedproperties__1__request.json",
        )
        .to_str()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or_else(|| {
            json!({"subject": "conformance extended property",
            "start": {"dateTime": "2015-11-26T18:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2015-11-26T23:00:00", "timeZone": "Pacific Standard Time"}})
        });
    replace_addresses(&mut body, &ctx.others(), &mut Vec::new());
    let prop =
        json!({"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color", "value": "Green"});
    match body["singleValueExtendedProperties"].as_array_mut() {
        Some(a) => a.push(prop),
        None => body["singleValueExtendedProperties"] = json!([prop]),
    }
    let c = ctx
        .graph(
            "POST",
            &format!("/v1.0/users/{me}/events"),
            &[],
            Body::Json(body),
        )
        .await?;
    if c.status != 201 {
        return Err(format!("create with extended properties → {}", c.summary()));
    }
    let id = c
        .json
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .ok_or("no id")?
        .to_owned();
    let url = s.url().replacen("/me/messages/", "/me/events/", 1);
    let url = ctx.map_url(&url, Some(&id), None)?;
    let r = ctx
        .graph("GET", &url, &s.request_headers(), Body::None)
        .await?;
    Ok(Run::Answer(r, vec!["the sample's $expand on an event created with the create page's body (messages are out of scope)".into()]))
}

// =============================================================================================
// Subscriptions and change notifications
// =============================================================================================

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    query: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// A loopback HTTP endpoint standing for the subscriber: it answers validation requests as
/// Graph requires (200, text/plain, the decoded token) and notifications with 202.
#[derive(Clone)]
struct Receiver {
    base: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start() -> R<Receiver> {
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot start the notification receiver: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            base: format!("http://127.0.0.1:{}", addr.port()),
            hits,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (at most 10 s) for a request to `path`, a validation request or not.
    async fn wait(&self, path: &str, validation: bool) -> R<Hit> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .hits
                .lock()
                .map_err(|_| "receiver poisoned")?
                .iter()
                .find(|h| h.path == path && h.query.contains("validationToken=") == validation)
                .cloned();
            if let Some(h) = found {
                return Ok(h);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("nothing arrived at {path} within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    axum::extract::State(hits): axum::extract::State<std::sync::Arc<std::sync::Mutex<Vec<Hit>>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = uri.query().unwrap_or("").to_owned();
    let token = serde_urlencoded::from_str::<Vec<(String, String)>>(&query)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v);
    if let Ok(mut h) = hits.lock() {
        h.push(Hit {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query,
            headers,
            body,
        });
    }
    match token {
        Some(t) => ([(axum::http::header::CONTENT_TYPE, "text/plain")], t).into_response(),
        None => axum::http::StatusCode::ACCEPTED.into_response(),
    }
}

impl Ctx {
    async fn receiver(&mut self) -> R<Receiver> {
        if self.receiver.is_none() {
            self.receiver = Some(Receiver::start().await?);
        }
        self.receiver.clone().ok_or_else(|| "no receiver".into())
    }

    fn in_days(&self, days: i64) -> String {
        self.sim
            .state
            .now()
            .checked_add(jiff::SignedDuration::from_hours(24 * days))
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// A subscription body from the sample's (or a default one), mapped onto the simulator:
    /// an Outlook events resource of the demo mailbox, URLs on the receiver under `/{tag}/`,
    /// an expiration one day ahead. Notes say what was mapped.
    async fn subscription_body(
        &mut self,
        sample: Option<Value>,
        tag: &str,
        notes: &mut Vec<String>,
    ) -> R<Value> {
        let rx = self.receiver().await?;
        let me = self.me()?.to_owned();
        let mut b = sample.unwrap_or_else(|| {
            json!({"changeType": "created,updated,deleted", "clientState": "conformance",
                   "lifecycleNotificationUrl": "lifecycle"})
        });
        let resource = b["resource"].as_str().unwrap_or("").to_owned();
        let events = format!("/users/{me}/events");
        if !resource.to_ascii_lowercase().ends_with("/events") {
            if !resource.is_empty() {
                notes.push(format!(
                    "resource {resource} → {events} (the simulator serves Outlook events)"
                ));
            }
            b["resource"] = json!(events);
        } else {
            b["resource"] = json!(events);
        }
        b["notificationUrl"] = json!(rx.url(&format!("/{tag}/notify")));
        if b.get("lifecycleNotificationUrl").is_some() {
            b["lifecycleNotificationUrl"] = json!(rx.url(&format!("/{tag}/lifecycle")));
        }
        b["expirationDateTime"] = json!(self.in_days(1));
        notes.push("URLs on a loopback receiver, expiration one day ahead".into());
        Ok(b)
    }

    /// Creates a subscription (`201` or an error).
    async fn subscribe(&self, body: &Value) -> R<Value> {
        let r = self
            .graph("POST", "/v1.0/subscriptions", &[], Body::Json(body.clone()))
            .await?;
        if r.status != 201 {
            return Err(format!("POST /v1.0/subscriptions → {}", r.summary()));
        }
        r.json.ok_or_else(|| "subscription is not JSON".into())
    }
}

async fn subscriptions(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    let tag = s.name.clone();
    let mut notes = Vec::new();
    let role = s.meta["role"].as_str().unwrap_or("");
    if s.meta["kind"] == "fragment" {
        let rx = ctx.receiver().await?;
        let body = ctx.subscription_body(None, &tag, &mut notes).await?;
        notes.clear();
        if role.contains("validation request") {
            ctx.subscribe(&body).await?;
            let h = rx.wait(&format!("/{tag}/notify"), true).await?;
            if h.method != "POST" {
                return Err(format!(
                    "the validation request is a {}, not a POST",
                    h.method
                ));
            }
            return Ok(Run::Body(
                200,
                h.headers,
                json!({}),
                vec![format!(
                    "the validation request the simulator sent on create: POST ?{}",
                    truncate(&h.query, 60)
                )],
            ));
        }
        let sub = ctx.subscribe(&body).await?;
        let (path, what) = if role.contains("lifecycle") {
            let id = sub["id"].as_str().unwrap_or("");
            let r = ctx
                .send(
                    "POST",
                    &format!("/_sim/subscriptions/{id}/lifecycle"),
                    &[],
                    Body::Json(json!({"event": "missed"})),
                    false,
                )
                .await?;
            if r.status != 202 {
                return Err(format!("lifecycle injection → {}", r.summary()));
            }
            (
                format!("/{tag}/lifecycle"),
                "a `missed` lifecycle notification injected through the control API",
            )
        } else {
            ctx.scratch_event(&format!("conformance {tag}"), 4).await?;
            (
                format!("/{tag}/notify"),
                "the change notification for an event created in the subscribed mailbox",
            )
        };
        let h = rx.wait(&path, false).await?;
        let v: Value = serde_json::from_str(&h.body)
            .map_err(|e| format!("the notification POST is not JSON: {e}"))?;
        return Ok(Run::Body(200, h.headers, v, vec![what.into()]));
    }
    let method = s.req()["method"].as_str().unwrap_or("GET").to_owned();
    let url = s.url().trim_end_matches('/').to_owned();
    let sample_body = s.request_json()?;
    if method == "POST" && url.ends_with("/subscriptions") {
        let body = ctx.subscription_body(sample_body, &tag, &mut notes).await?;
        let r = ctx
            .graph("POST", "/v1.0/subscriptions", &[], Body::Json(body))
            .await?;
        return Ok(Run::Answer(r, notes));
    }
    // Update, delete, reauthorize: on a subscription made for the purpose (with a
    // lifecycleNotificationUrl, as the update sample's response shows one).
    let body = ctx.subscription_body(None, &tag, &mut Vec::new()).await?;
    let sub = ctx.subscribe(&body).await?;
    let id = sub["id"].as_str().unwrap_or("").to_owned();
    let path = format!("/v1.0/subscriptions/{id}");
    let r = match method.as_str() {
        "PATCH" => {
            let mut b = sample_body.unwrap_or_else(|| json!({}));
            if b.get("expirationDateTime").is_some() {
                b["expirationDateTime"] = json!(ctx.in_days(2));
                notes.push("renewed to two days ahead".into());
            }
            ctx.graph("PATCH", &path, &[], Body::Json(b)).await?
        }
        "DELETE" => ctx.graph("DELETE", &path, &[], Body::None).await?,
        "POST" if url.ends_with("/reauthorize") => {
            ctx.graph("POST", &format!("{path}/reauthorize"), &[], Body::None)
                .await?
        }
        other => return Err(format!("no mapping for {other} {url}")),
    };
    if s.meta["response"].is_null() {
        notes.push("status as the page states it in prose".into());
    }
    Ok(Run::Answer(r, notes))
}

async fn throttling(ctx: &mut Ctx) -> R<Run> {
    // A second simulator with a request budget of 3 per (app, mailbox) per 10 minutes.
    let sim = calgate_sim::start(SimOptions {
        seed: Seed::Demo,
        request_budget: 3,
        ..SimOptions::default()
    })
    .await
    .map_err(|e| format!("second simulator: {e}"))?;
    let creds = sim.credentials();
    let tenant = sim.tenant_id();
    let token =
        client_credentials_token(&ctx.http, &sim.base_url, &tenant, &creds["apps"][0]).await?;
    let me = ctx.me()?.to_owned();
    for i in 0..10 {
        let r = ctx
            .http
            .get(format!("{}/v1.0/users/{me}/calendars", sim.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status == 429 {
            let json = serde_json::from_str(&text).ok();
            sim.shutdown().await;
            return Ok(Run::Answer(
                Resp {
                    status,
                    headers,
                    text,
                    json,
                },
                vec![format!("request {} over a budget of 3", i + 1)],
            ));
        }
    }
    sim.shutdown().await;
    Err("no 429 after 10 requests with request_budget = 3".into())
}

async fn client_credentials_token(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    app: &Value,
) -> R<String> {
    let form = [
        ("client_id", app["client_id"].as_str().unwrap_or("")),
        ("client_secret", app["client_secret"].as_str().unwrap_or("")),
        ("scope", "https://graph.microsoft.com/.default"),
        ("grant_type", "client_credentials"),
    ];
    let r = http
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let status = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|_| format!("token endpoint answered {status}: {}", truncate(&text, 200)))?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("token endpoint answered {status}: {}", truncate(&text, 300)))
}

/// Identity samples: the form of the request the page shows for that response, with the
/// demo's client id and secret (and, for error samples, the parameter the error is about).
async fn identity(ctx: &mut Ctx, s: &Sample) -> R<Run> {
    let form_of = |sample: &str| -> Vec<(String, String)> {
        let meta = s.dir.join(format!("{sample}__meta.json"));
        let m: Value = std::fs::read_to_string(meta)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        m["form_body_lines_as_written"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|l| {
                        let l = l
                            .split("//")
                            .next()
                            .unwrap_or("")
                            .trim()
                            .trim_start_matches('&');
                        let (k, v) = l.split_once('=')?;
                        let v = urlencoding_decode(v.trim());
                        Some((k.to_owned(), v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let set = |form: &mut Vec<(String, String)>, k: &str, v: &str| {
        form.retain(|(x, _)| x != k);
        form.push((k.to_owned(), v.to_owned()));
    };
    let (mut form, note) = match (s.page.as_str(), s.num) {
        ("v2-oauth2-client-creds-grant-flow", 9) => (
            form_of("v2-oauth2-client-creds-grant-flow__5"),
            "client credentials with a secret",
        ),
        ("v2-oauth2-client-creds-grant-flow", 10) => {
            let mut f = form_of("v2-oauth2-client-creds-grant-flow__5");
            set(&mut f, "scope", "https://foo.microsoft.com/.default");
            (f, "client credentials for the sample's unknown resource")
        }
        ("reference-error-codes", 1) => {
            let mut f = form_of("v2-oauth2-client-creds-grant-flow__5");
            set(&mut f, "scope", "https://example.contoso.com/activity.read");
            (f, "client credentials with the sample's invalid scope")
        }
        ("v2-oauth2-auth-code-flow", 10) => {
            let mut f = form_of("v2-oauth2-auth-code-flow__7");
            set(&mut f, "scope", "https://foo.microsoft.com/mail.read");
            (
                f,
                "code redemption with the sample's documentation code and invalid scope",
            )
        }
        ("v2-oauth2-auth-code-flow", 14) => (
            form_of("v2-oauth2-auth-code-flow__12"),
            "refresh with the sample's documentation refresh token",
        ),
        ("v2-oauth2-auth-code-flow", 9 | 13) => {
            return Ok(Run::Skip(
                "a successful code redemption / refresh needs an interactive sign-in on /authorize; covered by the identity tests (tests/it/identity.rs) and scripts/msal_check.py".into(),
            ));
        }
        (p, n) => return Ok(Run::Skip(format!("NOT MAPPED: identity response {p}__{n}"))),
    };
    if form.is_empty() {
        return Err("could not read the request form of the sample's page".into());
    }
    set(&mut form, "client_id", &ctx.demo.client_id.clone());
    if form.iter().any(|(k, _)| k == "client_secret") {
        set(&mut form, "client_secret", &ctx.demo.secret.clone());
    }
    let url = format!("/{}/oauth2/v2.0/token", ctx.demo.tenant);
    let r = ctx.send("POST", &url, &[], Body::Form(form), false).await?;
    Ok(Run::Answer(r, vec![note.into()]))
}

fn urlencoding_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(n) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(n);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// =============================================================================================
// Comparing one sample
// =============================================================================================

fn compare(
    exp: &Expected,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: Option<&Value>,
    text: &str,
) -> Findings {
    let mut f = Findings::default();
    if let Some(es) = exp.status
        && es != status
    {
        let detail = match body {
            Some(v) if v["error"].is_object() => format!(
                "{}: {}",
                v["error"]["code"].as_str().unwrap_or("?"),
                truncate(v["error"]["message"].as_str().unwrap_or(""), 160)
            ),
            Some(v) if v["error"].is_string() => format!(
                "{}: {}",
                v["error"].as_str().unwrap_or(""),
                truncate(v["error_description"].as_str().unwrap_or(""), 160)
            ),
            _ => truncate(text, 160),
        };
        f.diff("(status)", format!("sample {es}, sim {status} ({detail})"));
        return f;
    }
    for (name, value) in &exp.headers {
        if name.eq_ignore_ascii_case("content-type") {
            if body.is_some() || exp.body.is_some() {
                let got = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let want = value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if !got.to_ascii_lowercase().starts_with(&want) {
                    f.diff(
                        "(headers)",
                        format!("Content-Type {got:?}, sample {value:?}"),
                    );
                }
            }
            continue;
        }
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            None => f.diff("(headers)", format!("{name} missing (sample: {value})")),
            Some(got) => {
                if name.eq_ignore_ascii_case("retry-after") && got.parse::<f64>().is_err() {
                    f.diff(
                        "(headers)",
                        format!("Retry-After {got:?} is not a number of seconds"),
                    );
                }
                if name.eq_ignore_ascii_case("preference-applied")
                    && !got.eq_ignore_ascii_case(value)
                {
                    f.diff(
                        "(headers)",
                        format!("Preference-Applied {got:?}, sample {value:?}"),
                    );
                }
            }
        }
    }
    match (&exp.body, body) {
        (None, _) => {
            if !text.trim().is_empty() && (status == 204 || status == 202) {
                f.diff(
                    "(body)",
                    format!("a {status} answer carries a body: {}", truncate(text, 80)),
                );
            }
        }
        (Some(_), None) => f.diff(
            "(body)",
            format!("the sim's answer is not JSON: {}", truncate(text, 120)),
        ),
        (Some(sample), Some(sim)) => {
            let ss = Shape::of(&[sample]);
            let ms = Shape::of(&[sim]);
            compare_shapes(&ss, &ms, "", &mut f);
            check_values(&ms, "", "", "", &mut f);
            check_sample_values(&ss, "", "", "", &mut f);
        }
    }
    f
}

/// The allowlist as markdown table rows (`--print-allowlist`); docs/sim/conformance.md holds
/// the same rows, and the check fails when they drift apart.
fn allowlist_rows() -> Vec<String> {
    ALLOWLIST
        .iter()
        .map(|k| {
            let samples: Vec<String> = k.sample.split('|').map(|s| format!("`{s}`")).collect();
            format!(
                "| {} | `{}` | {} |",
                samples.join(", "),
                k.path,
                k.reason.replace('|', "\\|")
            )
        })
        .collect()
}

fn docs_in_sync() -> Vec<String> {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sim/conformance.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    allowlist_rows()
        .into_iter()
        .filter(|row| !doc.contains(row.as_str()))
        .collect()
}

fn allowlisted(sample: &str, path: &str) -> Option<&'static Known> {
    ALLOWLIST.iter().find(|k| {
        k.sample.split('|').any(|p| sample.starts_with(p))
            && (path == k.path
                || path
                    .strip_prefix(k.path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('[')))
    })
}

// =============================================================================================
// main
// =============================================================================================

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--print-allowlist") {
        println!("| sample | path | reason |");
        println!("|---|---|---|");
        for row in allowlist_rows() {
            println!("{row}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(data) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!(
            "usage: cargo run -q -p calgate-sim --example conformance -- <path to shared/data>"
        );
        eprintln!("       cargo run -q -p calgate-sim --example conformance -- --print-allowlist");
        return ExitCode::from(2);
    };
    if !data.join("graph").is_dir() || !data.join("identity").is_dir() {
        eprintln!();
        eprintln!(
            "=================================================================================="
        );
        eprintln!(
            "CONFORMANCE CHECK CANNOT RUN: {} is missing or has no graph/ and identity/",
            data.display()
        );
        eprintln!("folders. It needs Microsoft's samples (shared/data, beside the repository).");
        eprintln!(
            "=================================================================================="
        );
        return ExitCode::FAILURE;
    }
    let _ = DATA_DIR.set(data.clone());
    let index_md = std::fs::read_to_string(data.join("INDEX.md")).unwrap_or_default();
    if index_md.is_empty() {
        eprintln!(
            "warning: {}/INDEX.md is missing: irregular samples cannot be confirmed",
            data.display()
        );
    }
    let samples = match load_samples(&data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("CONFORMANCE CHECK CANNOT RUN: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(samples, &index_md).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("CONFORMANCE CHECK FAILED TO RUN: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(samples: Vec<Sample>, index_md: &str) -> R<bool> {
    let sim = calgate_sim::start(SimOptions {
        seed: Seed::Demo,
        ..SimOptions::default()
    })
    .await
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let creds = sim.credentials();
    let app = creds["apps"][0].clone();
    let tenant = sim.tenant_id();
    let token = client_credentials_token(&http, &sim.base_url, &tenant, &app).await;
    let users: Vec<String> = creds["mailboxes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["kind"] == "user")
                .filter_map(|m| m["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let today = sim.state.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut ctx = Ctx {
        http,
        base: sim.base_url.clone(),
        demo: Demo {
            client_id: app["client_id"].as_str().unwrap_or("").to_owned(),
            secret: app["client_secret"].as_str().unwrap_or("").to_owned(),
            tenant,
            users,
            me: None,
        },
        sim,
        token,
        today,
        cache_rich_event: None,
        cache_master: None,
        delta: None,
        receiver: None,
    };
    if let Err(e) = &ctx.token {
        println!("note: no token from the simulator's token endpoint: {e}");
    }
    ctx.choose_me().await;
    println!(
        "conformance: {} samples; simulator {} (demo seed), mailbox for /me: {}",
        samples.len(),
        ctx.base,
        ctx.demo.me.as_deref().unwrap_or("-")
    );
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
    for s in &samples {
        let exp = match expected(s, index_md) {
            Ok(e) => e,
            Err(reason) => {
                println!("skip {}: {reason}", s.name);
                skipped += 1;
                continue;
            }
        };
        let verbose = std::env::var("CONFORMANCE_VERBOSE")
            .is_ok_and(|v| !v.is_empty() && s.name.starts_with(&v));
        VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
        let run = tokio::time::timeout(Duration::from_secs(120), run_sample(&mut ctx, s)).await;
        VERBOSE.store(false, std::sync::atomic::Ordering::Relaxed);
        let (status, headers, body, text, mut notes) = match run {
            Err(_) => {
                println!("DIFF {}: (run) timed out after 120 s", s.name);
                failed += 1;
                continue;
            }
            Ok(Err(e)) => {
                println!("DIFF {}: (run) {e}", s.name);
                failed += 1;
                continue;
            }
            Ok(Ok(Run::Skip(reason))) => {
                println!("skip {}: {reason}", s.name);
                skipped += 1;
                continue;
            }
            Ok(Ok(Run::Answer(r, notes))) => (r.status, r.headers, r.json, r.text, notes),
            Ok(Ok(Run::Body(st, h, b, notes))) => (st, h, Some(b), String::new(), notes),
        };
        if exp.lenient {
            notes
                .push("sample parsed leniently: trailing commas as published, see INDEX.md".into());
        }
        let f = compare(&exp, status, &headers, body.as_ref(), &text);
        let mut real = Vec::new();
        let mut known: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        for (path, what) in &f.diffs {
            match allowlisted(&s.name, path) {
                Some(k) => {
                    used.insert((k.sample, k.path));
                    known.entry(k.path).or_insert((k.reason, 0)).1 += 1;
                }
                None => real.push((path, what)),
            }
        }
        let note = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        if real.is_empty() {
            println!("ok {}{note}", s.name);
            passed += 1;
        } else {
            for (path, what) in &real {
                println!("DIFF {}: {} {what}", s.name, shown(path));
            }
            if !note.is_empty() {
                println!("     {}:{note}", s.name);
            }
            failed += 1;
        }
        for (path, (reason, _)) in known {
            println!("known {}: {path} — {reason}", s.name);
        }
        if !f.extras.is_empty() {
            let mut ex = f.extras.clone();
            ex.sort();
            let shown_n = ex.len().min(25);
            let more = if ex.len() > shown_n {
                format!(" … (+{})", ex.len() - shown_n)
            } else {
                String::new()
            };
            println!(
                "info {}: extra in the sim's answer: {}{more}",
                s.name,
                ex[..shown_n].join(", ")
            );
        }
        for i in &f.infos {
            println!("info {}: {i}", s.name);
        }
    }
    for k in ALLOWLIST {
        if !used.contains(&(k.sample, k.path)) {
            println!(
                "info allowlist entry unused (the sim now matches, or the sample did not run): {} {}",
                k.sample, k.path
            );
        }
    }
    let missing = docs_in_sync();
    if !missing.is_empty() {
        println!(
            "DIFF (allowlist): docs/sim/conformance.md lacks {} allowlist row(s); regenerate them with `cargo run -q -p calgate-sim --example conformance -- --print-allowlist`:",
            missing.len()
        );
        for row in &missing {
            println!("     {row}");
        }
        failed += 1;
    }
    // The EWS samples (ews/), replayed against the EWS face.
    match DATA_DIR.get().filter(|d| d.join("ews").is_dir()) {
        Some(data) => {
            let (p, f, s) = ews::run(&ctx.sim, &ctx.http, data).await;
            passed += p;
            failed += f;
            skipped += s;
        }
        None => {
            println!("DIFF ews: <data>/ews is missing");
            failed += 1;
        }
    }
    ctx.sim.shutdown().await;
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}
