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

/// Exchange Online's `webLink` of an item, around its URL-encoded id.
const OWA_LINK: (&str, &str) = (
    "https://outlook.office365.com/owa/?itemid=",
    "&exvsurl=1&path=/calendar/item",
);

/// Whether a byte stands for itself in an OWA link's `itemid` (RFC 3986 unreserved): one
/// table look-up per byte, as every stored instance's id is compared.
fn unreserved(b: u8) -> bool {
    const TABLE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
            b += 1;
        }
        t
    };
    TABLE[usize::from(b)]
}

/// Exchange Online's web link of the item `exchange_id`: OWA's deep link with the id
/// URL-encoded (upper-case hex), as Graph's `webLink` spells it.
pub(crate) fn owa_link(exchange_id: &str) -> String {
    let mut out =
        String::with_capacity(OWA_LINK.0.len() + OWA_LINK.1.len() + exchange_id.len() * 2);
    out.push_str(OWA_LINK.0);
    for b in exchange_id.bytes() {
        let (bytes, n) = url_encoded(b);
        // ASCII either way: an unreserved byte, or `%` and two hex digits
        out.extend(bytes[..n].iter().map(|b| char::from(*b)));
    }
    out.push_str(OWA_LINK.1);
    out
}

/// A byte of an id as it stands in an OWA link: itself, or `%XX`, and how many bytes of the
/// array that takes.
fn url_encoded(b: u8) -> ([u8; 3], usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if unreserved(b) {
        ([b, 0, 0], 1)
    } else {
        (
            [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]],
            3,
        )
    }
}

/// An instance's web link as SQLite's `web_link` column holds it: the empty string for
/// [`owa_link`] of the instance's own id (every Exchange Online event; a fifth of a row's
/// bytes, rebuilt on read by [`read_web_link`]), else the link as it is (`NULL`: none). No web
/// link is empty, so the empty string means nothing else.
pub(crate) fn stored_web_link<'a>(exchange_id: &str, link: Option<&'a str>) -> Option<&'a str> {
    let link = link?;
    let Some(mut rest) = link
        .strip_prefix(OWA_LINK.0)
        .and_then(|rest| rest.strip_suffix(OWA_LINK.1))
        .map(str::as_bytes)
    else {
        return Some(link);
    };
    // Runs of bytes that stand for themselves compare as slices; the rest as `%XX`.
    let mut id = exchange_id.as_bytes();
    loop {
        let run = id.iter().position(|b| !unreserved(*b)).unwrap_or(id.len());
        let Some(after) = rest.strip_prefix(&id[..run]) else {
            return Some(link);
        };
        rest = after;
        let Some((&b, tail)) = id[run..].split_first() else {
            break;
        };
        let (bytes, n) = url_encoded(b);
        let Some(after) = rest.strip_prefix(&bytes[..n]) else {
            return Some(link);
        };
        rest = after;
        id = tail;
    }
    Some(if rest.is_empty() { "" } else { link })
}

/// The web link of a `web_link` column's value ([`stored_web_link`]).
pub(crate) fn read_web_link(exchange_id: &str, stored: Option<String>) -> Option<String> {
    match stored {
        Some(s) if s.is_empty() => Some(owa_link(exchange_id)),
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_online_links_of_the_own_id_are_stored_empty_and_rebuilt() {
        let link = "https://outlook.office365.com/owa/?itemid=AAMk%2Fa%2Bb%3D%C3%9C&exvsurl=1&path=/calendar/item";
        assert_eq!(owa_link("AAMk/a+b=Ü"), link);
        assert_eq!(stored_web_link("AAMk/a+b=Ü", Some(link)), Some(""));
        assert_eq!(
            read_web_link("AAMk/a+b=Ü", Some(String::new())).as_deref(),
            Some(link)
        );
        // anything else is kept as it is
        for (id, other) in [
            ("AAMk/a+b=", link),
            ("AAMk/a+b=ÜX", link),
            ("AAMk/a+b=Ü", &link.replace("%2F", "%2f")),
            ("AAMk/a+b=Ü", &link.replace("office365.com", "office365.us")),
            ("AAMk/a+b=Ü", &link.replace("&exvsurl=1", "")),
        ] {
            assert_eq!(
                stored_web_link(id, Some(other)),
                Some(other),
                "{id} {other}"
            );
            assert_eq!(
                read_web_link(id, Some(other.to_owned())).as_deref(),
                Some(other)
            );
        }
        assert_eq!(stored_web_link("AAMk", None), None);
        assert_eq!(read_web_link("AAMk", None), None);
    }
}
