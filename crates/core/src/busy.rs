//! Availability arithmetic: busy intervals merged, and the free slots common to several
//! calendars. Pure; the REST API's `POST /v1/availability` and `calgate freebusy` use it.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A half-open interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Merges overlapping and touching intervals, clipped to `[from, to)`; empty ones dropped.
/// The result is sorted and disjoint.
pub fn merge(mut intervals: Vec<Interval>, from: Timestamp, to: Timestamp) -> Vec<Interval> {
    for i in &mut intervals {
        i.start = i.start.max(from);
        i.end = i.end.min(to);
    }
    intervals.retain(|i| i.start < i.end);
    intervals.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// The gaps of at least `min` within `[from, to)` where none of `busy` (each a merged list,
/// as [`merge`] makes) is busy.
pub fn free_slots(
    busy: &[Vec<Interval>],
    from: Timestamp,
    to: Timestamp,
    min: SignedDuration,
) -> Vec<Interval> {
    let all = merge(busy.iter().flatten().copied().collect(), from, to);
    let mut out = Vec::new();
    let mut cursor = from;
    for b in all
        .iter()
        .chain(std::iter::once(&Interval { start: to, end: to }))
    {
        if b.start > cursor && b.start.duration_since(cursor) >= min {
            out.push(Interval {
                start: cursor,
                end: b.start,
            });
        }
        cursor = cursor.max(b.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        format!("2026-01-05T{s}:00Z")
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn i(a: &str, b: &str) -> Interval {
        Interval {
            start: t(a),
            end: t(b),
        }
    }

    #[test]
    fn merges_overlapping_touching_and_clips() {
        let m = merge(
            vec![
                i("10:00", "11:00"),
                i("09:00", "09:30"),
                i("09:30", "10:15"),
                i("12:00", "12:00"),
                i("07:00", "08:30"),
                i("16:00", "19:00"),
            ],
            t("08:00"),
            t("18:00"),
        );
        assert_eq!(
            m,
            vec![
                i("08:00", "08:30"),
                i("09:00", "11:00"),
                i("16:00", "18:00")
            ]
        );
    }

    #[test]
    fn free_slots_common_to_everyone_of_a_minimum_length() {
        let anna = merge(
            vec![i("09:00", "10:00"), i("13:00", "14:00")],
            t("08:00"),
            t("17:00"),
        );
        let room = merge(
            vec![i("10:30", "11:00"), i("13:30", "15:00")],
            t("08:00"),
            t("17:00"),
        );
        let slots = free_slots(
            &[anna, room],
            t("08:00"),
            t("17:00"),
            SignedDuration::from_mins(60),
        );
        assert_eq!(
            slots,
            vec![
                i("08:00", "09:00"),
                i("11:00", "13:00"),
                i("15:00", "17:00")
            ],
            "10:00-10:30 is too short"
        );
        let none = free_slots(&[], t("08:00"), t("09:00"), SignedDuration::from_mins(90));
        assert!(none.is_empty());
        let whole = free_slots(&[], t("08:00"), t("09:00"), SignedDuration::ZERO);
        assert_eq!(whole, vec![i("08:00", "09:00")]);
    }
}
