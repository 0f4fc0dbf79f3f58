//! ICS feeds (RFC 5545): one mailbox's instances as a calendar Outlook, Google Calendar and
//! Apple Calendar can subscribe to. Timed instances are written in the zone they were scheduled
//! in (`TZID`, with a `VTIMEZONE` per zone giving its transitions over the feed's span); all-day
//! ones as `DATE` values. calgate stores instances (Graph's `calendarView`), so each is its own
//! `VEVENT` with calgate's stable id as `UID`. A busy-only feed (or a mailbox whose policy hides
//! the details) carries no subject, location, description or attendees — only "Busy" or "Free".

use std::collections::BTreeSet;

use calgate_core::{BusyMapping, PrivacyPolicy, ShowAs};
use calgate_store::StoredInstance;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn text(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded at 75 octets (RFC 5545 §3.1), ended with CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}{:02}", s / 3600, (s % 3600) / 60)
}

/// `VTIMEZONE` for `name` covering `[from, to)`: one observance per offset change (and the
/// offset in force at `from`).
fn vtimezone(out: &mut String, name: &str, from: Timestamp, to: Timestamp) {
    let Ok(tz) = TimeZone::get(name) else { return };
    line(out, "BEGIN:VTIMEZONE");
    line(out, &format!("TZID:{name}"));
    let first = tz.to_offset(from).seconds();
    // The offset in force before the window starts, as an observance from far back.
    line(out, "BEGIN:STANDARD");
    line(out, "DTSTART:19700101T000000");
    line(out, &format!("TZOFFSETFROM:{}", offset(first)));
    line(out, &format!("TZOFFSETTO:{}", offset(first)));
    line(out, "END:STANDARD");
    let mut before = first;
    for t in tz.following(from) {
        if t.timestamp() >= to {
            break;
        }
        let after = t.offset().seconds();
        let kind = if t.dst().is_dst() {
            "DAYLIGHT"
        } else {
            "STANDARD"
        };
        // DTSTART is the local time of the transition in the offset before it.
        let local = t
            .timestamp()
            .to_zoned(TimeZone::fixed(
                jiff::tz::Offset::from_seconds(before).unwrap_or(jiff::tz::Offset::UTC),
            ))
            .strftime("%Y%m%dT%H%M%S")
            .to_string();
        line(out, &format!("BEGIN:{kind}"));
        line(out, &format!("DTSTART:{local}"));
        line(out, &format!("TZOFFSETFROM:{}", offset(before)));
        line(out, &format!("TZOFFSETTO:{}", offset(after)));
        if !t.abbreviation().is_empty() {
            line(out, &format!("TZNAME:{}", text(t.abbreviation())));
        }
        line(out, &format!("END:{kind}"));
        before = after;
    }
    line(out, "END:VTIMEZONE");
}

/// The feed of one mailbox: `instances` over `[from, to)`, `policy` applied (the narrower of
/// the feed's and the mailbox's).
pub fn render(
    calendar_name: &str,
    instances: &[StoredInstance],
    policy: PrivacyPolicy,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> String {
    let mapping = BusyMapping::default();
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//calgate//calgate feed//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(calendar_name)));
    let zones: BTreeSet<&str> = instances
        .iter()
        .filter(|s| s.instance.when.all_day.is_none())
        .map(|s| s.instance.when.time_zone.as_str())
        .filter(|z| *z != "UTC" && TimeZone::get(z).is_ok())
        .collect();
    for z in &zones {
        vtimezone(&mut out, z, from, to);
    }
    for s in instances {
        let i = &s.instance;
        let hidden = i.details_hidden(policy);
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}@calgate", s.id));
        line(&mut out, &format!("DTSTAMP:{}", utc(now)));
        match i.when.all_day {
            Some((d0, d1)) => {
                line(
                    &mut out,
                    &format!("DTSTART;VALUE=DATE:{}", d0.strftime("%Y%m%d")),
                );
                line(
                    &mut out,
                    &format!("DTEND;VALUE=DATE:{}", d1.strftime("%Y%m%d")),
                );
            }
            None => {
                let zone = i.when.time_zone.as_str();
                if zones.contains(zone)
                    && let Ok(tz) = TimeZone::get(zone)
                {
                    let local =
                        |t: Timestamp| t.to_zoned(tz.clone()).strftime("%Y%m%dT%H%M%S").to_string();
                    line(
                        &mut out,
                        &format!("DTSTART;TZID={zone}:{}", local(i.when.start)),
                    );
                    line(
                        &mut out,
                        &format!("DTEND;TZID={zone}:{}", local(i.when.end)),
                    );
                } else {
                    line(&mut out, &format!("DTSTART:{}", utc(i.when.start)));
                    line(&mut out, &format!("DTEND:{}", utc(i.when.end)));
                }
            }
        }
        let busy = i.is_busy(mapping);
        if hidden {
            line(&mut out, if busy { "SUMMARY:Busy" } else { "SUMMARY:Free" });
        } else {
            if let Some(subject) = &i.subject {
                line(&mut out, &format!("SUMMARY:{}", text(subject)));
            }
            if let Some(location) = &i.location {
                line(&mut out, &format!("LOCATION:{}", text(location)));
            }
            if let Some(body) = &i.body_preview {
                line(&mut out, &format!("DESCRIPTION:{}", text(body)));
            }
            if let Some(org) = &i.organizer {
                line(
                    &mut out,
                    &format!(
                        "ORGANIZER;CN={}:mailto:{}",
                        text(&org.name).replace(':', ""),
                        org.address
                    ),
                );
            }
            for a in &i.attendees {
                line(
                    &mut out,
                    &format!(
                        "ATTENDEE;CN={}:mailto:{}",
                        text(&a.name).replace(':', ""),
                        a.address
                    ),
                );
            }
            if let Some(link) = &i.web_link {
                line(&mut out, &format!("URL:{link}"));
            }
        }
        line(
            &mut out,
            if busy {
                "TRANSP:OPAQUE"
            } else {
                "TRANSP:TRANSPARENT"
            },
        );
        if i.show_as == ShowAs::Tentative {
            line(&mut out, "STATUS:TENTATIVE");
        }
        if i.sensitivity.is_restricted() {
            line(&mut out, "CLASS:PRIVATE");
        }
        line(
            &mut out,
            &format!("X-MICROSOFT-CDO-BUSYSTATUS:{}", cdo_status(i.show_as)),
        );
        if let Some(m) = i.last_modified {
            line(&mut out, &format!("LAST-MODIFIED:{}", utc(m)));
        }
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

/// Outlook's busy status (`X-MICROSOFT-CDO-BUSYSTATUS`).
fn cdo_status(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "FREE",
        ShowAs::Tentative => "TENTATIVE",
        ShowAs::Oof => "OOF",
        ShowAs::WorkingElsewhere => "WORKINGELSEWHERE",
        ShowAs::Busy | ShowAs::Unknown => "BUSY",
    }
}

/// The narrower of two policies.
pub fn narrower(a: PrivacyPolicy, b: PrivacyPolicy) -> PrivacyPolicy {
    if a.reveals_more_than(b) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_and_text_is_escaped() {
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", text(&"é;,\\x".repeat(30))));
        for l in out.split("\r\n") {
            assert!(l.len() <= 75, "{l}");
        }
        assert!(out.contains("\\;") && out.contains("\\,") && out.contains("\\\\"));
        assert_eq!(offset(-18000), "-0500");
        assert_eq!(offset(19800), "+0530");
    }
}
