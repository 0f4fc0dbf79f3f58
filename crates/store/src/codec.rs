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

/// A live instance row as a round's change-log decision needs it.
pub(crate) struct LiveRow {
    pub(crate) id: String,
    pub(crate) change_key: Option<String>,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// What upserting `i` (new times `start`, `end` in µs) is for the change log, given the live row
/// it replaces: created (with `new_id`), updated (a new change key or new times; the row keeps
/// its id), or nothing (an unchanged replay).
pub(crate) fn upsert_op(
    old: Option<&LiveRow>,
    new_id: &str,
    start: i64,
    end: i64,
    i: &calgate_core::Instance,
) -> Option<(String, crate::types::ChangeOp)> {
    use crate::types::ChangeOp;
    match old {
        None => Some((new_id.to_owned(), ChangeOp::Created)),
        Some(old)
            if old.change_key.is_none()
                || old.change_key.as_deref() != i.change_key.as_deref()
                || old.start != start
                || old.end != end =>
        {
            Some((old.id.clone(), ChangeOp::Updated))
        }
        Some(_) => None,
    }
}

/// The host application's event a round's status brings, given the mailbox's consecutive
/// failures before it: a failure after a success (or as the first outcome), or a success
/// after failures.
pub(crate) fn status_notice(
    mailbox: crate::types::MailboxId,
    s: &crate::types::SyncStatusUpdate,
    failures_before: Option<i64>,
) -> Option<crate::types::NewNotice> {
    use crate::types::{NewNotice, NoticeKind, SyncOutcome};
    let failing_before = failures_before.is_some_and(|n| n > 0);
    match &s.outcome {
        SyncOutcome::Failure { kind, message } if !failing_before => Some(NewNotice {
            kind: NoticeKind::MailboxSyncFailed,
            mailbox: Some(mailbox),
            data: serde_json::json!({"error": {"kind": kind.as_str(), "message": message}}),
        }),
        SyncOutcome::Success if failing_before => Some(NewNotice {
            kind: NoticeKind::MailboxRecovered,
            mailbox: Some(mailbox),
            data: serde_json::json!({"failed_rounds": failures_before}),
        }),
        _ => None,
    }
}
