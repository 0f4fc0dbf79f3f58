//! Value codecs every backend shares: instants as UTC microseconds, enumerations in calgate's
//! spelling, JSON columns, address keys.

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::AssertSqlSafe;

use crate::error::{Error, Result};

pub(crate) fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn ts(v: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|_| Error::corrupt("instant", &v.to_string()))
}

pub(crate) fn opt_ts(v: Option<i64>) -> Result<Option<Timestamp>> {
    v.map(ts).transpose()
}

pub(crate) fn text_ts(v: Option<String>) -> Result<Option<Timestamp>> {
    v.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|_| Error::corrupt("instant", &s))
    })
    .transpose()
}

pub(crate) fn date(v: Option<String>) -> Result<Option<Date>> {
    v.map(|s| s.parse::<Date>().map_err(|_| Error::corrupt("date", &s)))
        .transpose()
}

pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored enumeration in calgate's spelling (`calgate_core`'s `as_str`).
pub(crate) fn parse_enum<T: std::str::FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse::<T>().map_err(|_| Error::corrupt(what, s))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::invalid(format!("cannot encode a value as JSON: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| Error::corrupt(what, s))
}

pub(crate) fn address_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// SQL built from constant table and column names only (never from input).
pub(crate) fn sql(s: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(s)
}
