//! Graph and Entra ID JSON, as Microsoft's documentation and real samples show it.
//!
//! Everything here is read *leniently*: unknown properties are ignored, and a property of an
//! unexpected type reads as absent ([`Lenient`]) instead of failing the whole document. What
//! calgate cannot do without (an event's id, start and end; a page's links) is checked where
//! the wire types are converted (`convert.rs`), and a missing essential is `InvalidData`, never
//! a silent default.

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// `T` if the JSON value has `T`'s shape, else `None` — never an error. Use with
/// `#[serde(default)]` so that absence is `None` too.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

/// Read from the JSON text itself, by [`Lax`]. Wire types are therefore read with
/// `serde_json::from_slice`/`from_str`, never `from_value`.
impl<'de, T: Lax> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient(T::lax(d)?))
    }
}

/// How a [`Lenient`] field is read: `None` when the JSON value does not have the type's shape,
/// an error only when the JSON itself is broken.
pub trait Lax: Sized {
    fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error>;
}

/// The general way: the field's raw text is borrowed from the input (no tree is built) and read
/// as the type, `None` if it does not fit.
macro_rules! lax_via_raw {
    ($($t:ty),* $(,)?) => {
        $(impl Lax for $t {
            fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                let raw = <&'de RawValue>::deserialize(d)?;
                Ok(serde_json::from_str(raw.get()).ok())
            }
        })*
    };
}

/// Strings and booleans (most of an event's fields) in one pass: the value is read as it comes,
/// and a value of another shape is skipped (`None`), as the raw-text way would have it.
struct LaxVisitor<T>(std::marker::PhantomData<T>);

macro_rules! lax_other {
    ($($f:ident: $t:ty),*) => {
        $(fn $f<E: serde::de::Error>(self, _: $t) -> Result<Self::Value, E> {
            Ok(None)
        })*
    };
}

/// A lax visitor's `None` for JSON null and for lists and objects, each skipped whole:
/// `lax_skip!(unit, seq, map)`, or the ones a visitor does not read itself.
macro_rules! lax_skip {
    ($($kind:ident),*) => {
        $(lax_skip!(@ $kind);)*
    };
    (@ unit) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@ seq) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
    (@ map) => {
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            while a
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            Ok(None)
        }
    };
}

impl<'de> serde::de::Visitor<'de> for LaxVisitor<String> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    lax_other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64);
    lax_skip!(unit, seq, map);
}

impl<'de> serde::de::Visitor<'de> for LaxVisitor<bool> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    lax_other!(visit_str: &str, visit_i64: i64, visit_u64: u64, visit_f64: f64);
    lax_skip!(unit, seq, map);
}

impl Lax for String {
    fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(LaxVisitor::<String>(std::marker::PhantomData))
    }
}

impl Lax for bool {
    fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(LaxVisitor::<bool>(std::marker::PhantomData))
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl Lenient<String> {
    /// The string, `None` when absent, not a string, or empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.trim().is_empty())
    }
}

/// A number Entra may send as a JSON number (v2) or as a string (v1: `"expires_in":"3599"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumOrString(pub f64);

impl<'de> Deserialize<'de> for NumOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(NumOrString)
                .ok_or_else(|| serde::de::Error::custom("not a number")),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(NumOrString)
                .map_err(|_| serde::de::Error::custom("not a number")),
            _ => Err(serde::de::Error::custom("not a number")),
        }
    }
}

impl NumOrString {
    /// Whole seconds, when finite and within a sane range.
    pub fn as_secs(self) -> Option<i64> {
        (self.0.is_finite() && self.0 >= 0.0 && self.0 < 1.0e12).then_some(self.0 as i64)
    }
}

// ---------------------------------------------------------------------------------------------
// Entra ID
// ---------------------------------------------------------------------------------------------

/// A token endpoint success body, v2 (`expires_in` a number) or v1 (numbers as strings,
/// `expires_on`, `resource`).
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token_type: Lenient<String>,
    #[serde(default)]
    pub access_token: Lenient<String>,
    #[serde(default)]
    pub expires_in: Lenient<NumOrString>,
    #[serde(default)]
    pub ext_expires_in: Lenient<NumOrString>,
    /// v1 only: absolute expiry, seconds since the epoch.
    #[serde(default)]
    pub expires_on: Lenient<NumOrString>,
    #[serde(default)]
    pub resource: Lenient<String>,
}

/// Entra's error body: `{"error","error_description":"AADSTSnnn: …","error_codes":[nnn],…}`.
#[derive(Debug, Default, Deserialize)]
pub struct EntraErrorBody {
    #[serde(default)]
    pub error: Lenient<String>,
    #[serde(default)]
    pub error_description: Lenient<String>,
    #[serde(default)]
    pub error_codes: Lenient<Vec<i64>>,
    #[serde(default)]
    pub suberror: Lenient<String>,
    #[serde(default)]
    pub trace_id: Lenient<String>,
    #[serde(default)]
    pub correlation_id: Lenient<String>,
    #[serde(default)]
    pub timestamp: Lenient<String>,
    #[serde(default)]
    pub error_uri: Lenient<String>,
}

impl EntraErrorBody {
    /// The first AADSTS code: from `error_codes`, else from the `AADSTSnnn:` prefix of the
    /// description.
    pub fn aadsts(&self) -> Option<i64> {
        if let Some(c) = self.error_codes.get().and_then(|c| c.first()) {
            return Some(*c);
        }
        let d = self.error_description.get()?;
        let rest = d.trim_start().strip_prefix("AADSTS")?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }

    /// The first line of the description (Entra appends Trace ID, Correlation ID, Timestamp).
    pub fn summary(&self) -> Option<&str> {
        self.error_description
            .non_empty()
            .and_then(|d| d.split(['\r', '\n']).next())
            .map(str::trim)
    }
}

// ---------------------------------------------------------------------------------------------
// Graph errors
// ---------------------------------------------------------------------------------------------

/// `{"error":{"code","message","innerError":{…}}}`.
#[derive(Debug, Default, Deserialize)]
pub struct GraphErrorBody {
    #[serde(default)]
    pub error: Lenient<GraphError>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: Lenient<String>,
    #[serde(default)]
    pub message: Lenient<String>,
    /// The service sends `innerError`; the documentation writes `innererror`. Both are read.
    #[serde(default, rename = "innerError", alias = "innererror")]
    pub inner_error: Lenient<InnerError>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct InnerError {
    #[serde(default)]
    pub code: Lenient<String>,
    #[serde(default, rename = "request-id")]
    pub request_id: Lenient<String>,
    #[serde(default, rename = "client-request-id")]
    pub client_request_id: Lenient<String>,
    #[serde(default)]
    pub date: Lenient<String>,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// `dateTimeTimeZone`: a civil date-time (up to 7 fractional digits) and a zone name, Windows
/// (what Graph sends) or IANA.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct EmailAddress {
    #[serde(default)]
    pub name: Lenient<String>,
    #[serde(default)]
    pub address: Lenient<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default)]
    pub email_address: Lenient<EmailAddress>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default)]
    pub display_name: Lenient<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ExtendedProperty {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub value: Lenient<String>,
}

/// An event as `calendarView`, `calendarView/delta`, `instances` and `events` return it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, rename = "@removed")]
    pub removed: Option<Value>,
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default, rename = "iCalUId")]
    pub ical_uid: Lenient<String>,
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    #[serde(default)]
    pub series_master_id: Lenient<String>,
    #[serde(default)]
    pub start: Lenient<DateTimeTimeZone>,
    #[serde(default)]
    pub end: Lenient<DateTimeTimeZone>,
    #[serde(default)]
    pub is_all_day: Lenient<bool>,
    #[serde(default)]
    pub show_as: Lenient<String>,
    #[serde(default)]
    pub sensitivity: Lenient<String>,
    #[serde(default)]
    pub subject: Lenient<String>,
    #[serde(default)]
    pub location: Lenient<Location>,
    #[serde(default)]
    pub body_preview: Lenient<String>,
    #[serde(default)]
    pub organizer: Lenient<Recipient>,
    #[serde(default)]
    pub attendees: Lenient<Vec<Lenient<Recipient>>>,
    #[serde(default)]
    pub web_link: Lenient<String>,
    #[serde(default)]
    pub change_key: Lenient<String>,
    #[serde(default)]
    pub last_modified_date_time: Lenient<String>,
    #[serde(default)]
    pub original_start_time_zone: Lenient<String>,
    #[serde(default)]
    pub is_cancelled: Lenient<bool>,
    #[serde(default)]
    pub transaction_id: Lenient<String>,
    #[serde(default)]
    pub single_value_extended_properties: Lenient<Vec<Lenient<ExtendedProperty>>>,
}

/// A collection page: `value` plus `@odata.nextLink` / `@odata.deltaLink`. `value` is kept
/// raw (borrowed text) so that each item is read on its own and a bad item is reported as such.
#[derive(Debug, Deserialize)]
pub struct Page<'a> {
    #[serde(default, borrow)]
    pub value: Option<&'a RawValue>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Lenient<String>,
    #[serde(default, rename = "@odata.deltaLink")]
    pub delta_link: Lenient<String>,
}

/// A page of events read in one pass, straight into [`Event`]s. Every field of an event is
/// lenient, so this fails only where [`Page`] would report a broken page (not JSON, `value`
/// not a list of objects); the caller then reads it again as a [`Page`] for the precise error.
#[derive(Debug, Deserialize)]
pub struct EventPage {
    pub value: Vec<Event>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Lenient<String>,
    #[serde(default, rename = "@odata.deltaLink")]
    pub delta_link: Lenient<String>,
}

// ---------------------------------------------------------------------------------------------
// Users, mailbox settings, places
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub display_name: Lenient<String>,
    #[serde(default)]
    pub mail: Lenient<String>,
    #[serde(default)]
    pub user_principal_name: Lenient<String>,
    #[serde(default)]
    pub account_enabled: Lenient<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct TimeZoneBase {
    #[serde(default)]
    pub name: Lenient<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingHours {
    #[serde(default)]
    pub days_of_week: Lenient<Vec<Lenient<String>>>,
    #[serde(default)]
    pub start_time: Lenient<String>,
    #[serde(default)]
    pub end_time: Lenient<String>,
    #[serde(default)]
    pub time_zone: Lenient<TimeZoneBase>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSettings {
    #[serde(default)]
    pub time_zone: Lenient<String>,
    #[serde(default)]
    pub working_hours: Lenient<WorkingHours>,
    #[serde(default)]
    pub user_purpose: Lenient<Value>,
}

/// A number that the documentation's samples sometimes send as a string (`"capacity":"50"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LenientInt(pub i64);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = NumOrString::deserialize(d)?;
        if n.0.is_finite() && n.0.fract() == 0.0 && n.0.abs() < 1.0e15 {
            Ok(LenientInt(n.0 as i64))
        } else {
            Err(serde::de::Error::custom("not an integer"))
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub email_address: Lenient<String>,
    #[serde(default)]
    pub display_name: Lenient<String>,
    #[serde(default)]
    pub capacity: Lenient<LenientInt>,
    #[serde(default)]
    pub building: Lenient<String>,
    #[serde(default)]
    pub floor_label: Lenient<String>,
    #[serde(default)]
    pub floor_number: Lenient<LenientInt>,
    #[serde(default)]
    pub booking_type: Lenient<String>,
    #[serde(default)]
    pub nickname: Lenient<String>,
}

// ---------------------------------------------------------------------------------------------
// $batch
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestItem<'a> {
    pub id: &'a str,
    pub method: &'a str,
    pub url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchRequestBody<'a> {
    pub requests: Vec<BatchRequestItem<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct BatchResponseBody {
    #[serde(default)]
    pub responses: Option<Vec<Lenient<BatchResponseItem>>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchResponseItem {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub status: Lenient<u16>,
    #[serde(default)]
    pub headers: Lenient<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub body: Option<Value>,
}

// Every other type a `Lenient` field holds is read through its raw text.
lax_via_raw!(
    NumOrString,
    LenientInt,
    u16,
    Vec<i64>,
    Value,
    serde_json::Map<String, Value>,
    GraphError,
    InnerError,
    TimeZoneBase,
    WorkingHours,
    BatchResponseItem,
);

/// An object whose fields are all [`Lenient`] (with defaults), read in one pass as it comes:
/// such an object reads whatever its fields hold, so only another shape (`None`, skipped) or
/// broken JSON (an error) remain — what the raw-text way gives, without reading the text twice
/// (three and four times for the objects inside an event's organizer and attendees). Two
/// differences: a key given twice is an error here (serde's), where the raw-text way read the
/// whole object as absent; and a list where the object belongs is absent, where serde read it
/// as the fields by position.
struct LaxObject<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for LaxObject<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(Some)
    }
    lax_other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    lax_skip!(unit, seq);
}

macro_rules! lax_object {
    ($($t:ty),* $(,)?) => {
        $(impl Lax for $t {
            fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                d.deserialize_any(LaxObject::<$t>(std::marker::PhantomData))
            }
        })*
    };
}
lax_object!(EmailAddress, Recipient, Location, ExtendedProperty);

/// A list of lenient items, in one pass: each item reads as itself or `None`, so only
/// another shape than a list (`None`, skipped) or broken JSON (an error) remain.
struct LaxList<T>(std::marker::PhantomData<T>);

impl<'de, T: Lax> serde::de::Visitor<'de> for LaxList<T> {
    type Value = Option<Vec<Lenient<T>>>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(64));
        while let Some(item) = a.next_element::<Lenient<T>>()? {
            out.push(item);
        }
        Ok(Some(out))
    }
    lax_other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    lax_skip!(unit, map);
}

impl<T: Lax> Lax for Vec<Lenient<T>> {
    fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(LaxList::<T>(std::marker::PhantomData))
    }
}

/// `dateTimeTimeZone` in one pass: `dateTime` must be a string and `timeZone` a string or
/// null (or absent), as its derived reading requires; anything else reads as `None`, as
/// through the raw text.
struct LaxDateTime;

impl<'de> serde::de::Visitor<'de> for LaxDateTime {
    type Value = Option<DateTimeTimeZone>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let (mut date_time, mut time_zone, mut fits) = (None, None, true);
        let (mut seen_date_time, mut seen_time_zone) = (false, false);
        while let Some(key) = a.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "dateTime" => {
                    let v: Lenient<String> = a.next_value()?;
                    fits &= v.0.is_some() && !seen_date_time;
                    seen_date_time = true;
                    date_time = v.0;
                }
                "timeZone" => {
                    let v: Option<Lenient<String>> = a.next_value()?;
                    // null, or a string; a value of another shape does not fit
                    fits &= v.as_ref().is_none_or(|v| v.0.is_some()) && !seen_time_zone;
                    seen_time_zone = true;
                    time_zone = v.and_then(|v| v.0);
                }
                _ => {
                    a.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(match (fits, date_time) {
            (true, Some(date_time)) => Some(DateTimeTimeZone {
                date_time,
                time_zone,
            }),
            _ => None,
        })
    }
    lax_other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    lax_skip!(unit, seq);
}

impl Lax for DateTimeTimeZone {
    fn lax<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(LaxDateTime)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        s: Lenient<String>,
        #[serde(default)]
        b: Lenient<bool>,
        #[serde(default)]
        after: Lenient<String>,
    }

    /// Strings and booleans read in one pass give what reading the raw text gave: the value
    /// when it has the shape, else `None`; a value of another shape (nested too) is skipped
    /// and the fields after it still read.
    #[test]
    fn lax_strings_and_booleans_read_as_the_raw_text_way() {
        let shapes = [
            r#""text""#,
            r#""esc\"aped \u00e9 \ud83d\ude00""#,
            "true",
            "false",
            "null",
            "0",
            "-12",
            "18446744073709551615",
            "1.5e300",
            "[]",
            r#"[1, "a", {"x": [true, null]}]"#,
            "{}",
            r#"{"a": {"b": ["c", 1.0]}, "d": "e"}"#,
        ];
        for shape in shapes {
            let doc = format!(r#"{{"s": {shape}, "b": {shape}, "after": "kept"}}"#);
            let p: Probe = serde_json::from_str(&doc).unwrap();
            assert_eq!(p.s.0, serde_json::from_str::<String>(shape).ok(), "{shape}");
            assert_eq!(p.b.0, serde_json::from_str::<bool>(shape).ok(), "{shape}");
            assert_eq!(p.after.non_empty(), Some("kept"), "{shape}");
        }
        // Absent: None; broken JSON is still an error.
        let p: Probe = serde_json::from_str("{}").unwrap();
        assert!(p.s.0.is_none() && p.b.0.is_none());
        assert!(serde_json::from_str::<Probe>(r#"{"s": [1, }"#).is_err());
        assert!(serde_json::from_slice::<Probe>(b"{\"s\": \"\xff\"}").is_err());
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct EventProbe {
        #[serde(default)]
        start: Lenient<DateTimeTimeZone>,
        #[serde(default)]
        organizer: Lenient<Recipient>,
        #[serde(default)]
        location: Lenient<Location>,
        #[serde(default)]
        attendees: Lenient<Vec<Lenient<Recipient>>>,
        #[serde(default)]
        props: Lenient<Vec<Lenient<ExtendedProperty>>>,
        #[serde(default)]
        after: Lenient<String>,
    }

    /// An event's objects and lists read in one pass give what reading each one's raw text
    /// gave, for every shape, nested wrong shapes included.
    #[test]
    fn lax_objects_and_lists_read_as_the_raw_text_way() {
        let shapes = [
            "null",
            "true",
            "7",
            r#""text""#,
            "[]",
            "{}",
            r#"[{"emailAddress": {"name": "A", "address": "a@x"}}, null, 5, "s", {"emailAddress": 3}]"#,
            r#"{"emailAddress": {"name": "A", "address": "a@x"}}"#,
            r#"{"emailAddress": {"name": 1, "address": ["a@x"]}, "x": {"y": [1]}}"#,
            r#"{"emailAddress": "a@x"}"#,
            r#"{"emailAddress": null}"#,
            r#"{"displayName": "Room 1", "address": {}, "coordinates": {}}"#,
            r#"{"displayName": {"nested": true}}"#,
            r#"{"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": "UTC"}"#,
            r#"{"dateTime": "2026-01-05T09:00:00.0000000"}"#,
            r#"{"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": null}"#,
            r#"{"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": 5}"#,
            r#"{"dateTime": 5, "timeZone": "UTC"}"#,
            r#"{"dateTime": null, "timeZone": "UTC"}"#,
            r#"{"timeZone": "UTC", "extra": [1, {"a": null}]}"#,
            r#"[{"id": "String {x} Name y", "value": "v"}, {"id": 1, "value": null}, []]"#,
            r#"{"id": "i", "value": "v"}"#,
        ];
        // (serde reads a list as a struct's fields by position; a list where an object belongs
        // is absent now)
        fn object(shape: &str) -> &str {
            if shape.starts_with('[') { "0" } else { shape }
        }
        let raw = |shape: &str| -> String {
            format!(
                "{:?} {:?} {:?} {:?} {:?}",
                serde_json::from_str::<DateTimeTimeZone>(object(shape)).ok(),
                serde_json::from_str::<Recipient>(object(shape)).ok(),
                serde_json::from_str::<Location>(object(shape)).ok(),
                serde_json::from_str::<Vec<Lenient<Recipient>>>(shape).ok(),
                serde_json::from_str::<Vec<Lenient<ExtendedProperty>>>(shape).ok(),
            )
        };
        for shape in shapes {
            let doc = format!(
                r#"{{"start": {shape}, "organizer": {shape}, "location": {shape}, "attendees": {shape}, "props": {shape}, "after": "kept"}}"#
            );
            let p: EventProbe = serde_json::from_str(&doc).unwrap();
            let one_pass = format!(
                "{:?} {:?} {:?} {:?} {:?}",
                p.start.0, p.organizer.0, p.location.0, p.attendees.0, p.props.0
            );
            assert_eq!(one_pass, raw(shape), "{shape}");
            assert_eq!(p.after.non_empty(), Some("kept"), "{shape}");
        }
        // Broken JSON inside is still an error.
        assert!(
            serde_json::from_str::<EventProbe>(r#"{"organizer": {"emailAddress": [1, }}"#).is_err()
        );
    }
}
