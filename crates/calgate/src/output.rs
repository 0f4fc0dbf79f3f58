//! Small output helpers: plain-text tables, dates and counts for humans.

use std::io::Write as _;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use calgate_admin::Checklist;

use crate::{Reported, error_line};

/// A left-aligned plain-text table: columns separated by two spaces, no trailing blanks.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    let pad = widths[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) {
        print_out(&self.render());
    }
}

/// Writes to stdout, ignoring a closed pipe (`calgate … | head`).
pub(crate) fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print_out(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

/// Prints a checklist (text, or JSON with `--json`) and turns it into the exit status: `Ok`
/// when it passed (warnings do not fail), else one `calgate:` line naming the first ✗ and its
/// fix, and [`Reported`] (exit 1).
pub(crate) fn finish_checklist(list: &Checklist, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        print_json(list)?;
    } else {
        print_out(&list.render());
    }
    if list.passed() {
        return Ok(());
    }
    error_line(&checklist_failure(list, what));
    Err(Reported.into())
}

/// `connection test of 'contoso' failed: <first ✗> — fix: <its fix> (2 more ✗ above)`.
pub(crate) fn checklist_failure(list: &Checklist, what: &str) -> String {
    let failed: Vec<_> = list.failed().collect();
    let Some(first) = failed.first() else {
        return format!("{what} failed");
    };
    let fix = first
        .fix
        .as_deref()
        .map(|f| format!(" — fix: {f}"))
        .unwrap_or_default();
    let more = match failed.len() - 1 {
        0 => String::new(),
        n => format!(" ({n} more ✗ above)"),
    };
    let code = first
        .code
        .as_deref()
        .filter(|c| !first.summary.contains(c) && !first.fix.as_deref().unwrap_or("").contains(c))
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    format!("{what} failed: {}{code}{fix}{more}", first.summary)
}

/// `2026-01-05 09:30` in `tz`.
pub(crate) fn local_minute(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// The date of `t` in UTC.
pub(crate) fn utc_date(t: Timestamp) -> Date {
    t.to_zoned(TimeZone::UTC).date()
}

/// A point in time given on the command line: an RFC 3339 instant, a local date-time, or a
/// date (midnight in the zone it is read in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateArg {
    Instant(Timestamp),
    Civil(DateTime),
    Date(Date),
}

impl DateArg {
    pub(crate) fn parse(s: &str) -> Result<DateArg, String> {
        let s = s.trim();
        if let Ok(t) = s.parse::<Timestamp>() {
            return Ok(DateArg::Instant(t));
        }
        let has_time = s.contains(['T', 't', ' ']);
        if !has_time && let Ok(d) = s.parse::<Date>() {
            return Ok(DateArg::Date(d));
        }
        if has_time && let Ok(dt) = s.parse::<DateTime>() {
            return Ok(DateArg::Civil(dt));
        }
        Err(format!(
            "'{s}' is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM (local time) or an RFC 3339 instant such as 2026-01-05T09:00:00Z"
        ))
    }

    /// The instant, reading dates and date-times in `tz`; a date means its midnight, or with
    /// `end_of_day` the next midnight (so `--to 2026-01-05` includes that day). Dates at the
    /// edge of the calendar (`--to 9999-12-31`: "everything") clamp to the last (or first)
    /// instant calgate can represent instead of failing.
    pub(crate) fn resolve(self, tz: &TimeZone, end_of_day: bool) -> Result<Timestamp, String> {
        let edge = |year: i16| {
            if year > 0 {
                Timestamp::MAX
            } else {
                Timestamp::MIN
            }
        };
        match self {
            DateArg::Instant(t) => Ok(t),
            DateArg::Civil(dt) => Ok(tz.to_timestamp(dt).unwrap_or_else(|_| edge(dt.year()))),
            DateArg::Date(d) => {
                let d = if end_of_day {
                    match d.tomorrow() {
                        Ok(next) => next,
                        Err(_) => return Ok(edge(d.year())),
                    }
                } else {
                    d
                };
                Ok(tz
                    .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                    .unwrap_or_else(|_| edge(d.year())))
            }
        }
    }
}

/// The zone's IANA name, or "local time".
pub(crate) fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .map(str::to_owned)
        .unwrap_or_else(|| "local time".to_owned())
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 mailbox` / `2 mailboxes`.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["xxx".into(), "y".into()]);
        assert_eq!(t.render(), "A    BB\nxxx  y\n");
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(plural(1, "event", "events"), "1 event");
        assert_eq!(plural(2000, "event", "events"), "2,000 events");
    }

    #[test]
    fn dates_parse_and_resolve() {
        let tz = TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC);
        let d = DateArg::parse("2026-01-05").unwrap_or(DateArg::Instant(Timestamp::UNIX_EPOCH));
        assert_eq!(
            d.resolve(&tz, false).map(|t| t.to_string()),
            Ok("2026-01-04T23:00:00Z".to_owned())
        );
        assert_eq!(
            d.resolve(&tz, true).map(|t| t.to_string()),
            Ok("2026-01-05T23:00:00Z".to_owned())
        );
        assert!(matches!(
            DateArg::parse("2026-01-05T09:00:00Z"),
            Ok(DateArg::Instant(_))
        ));
        assert!(matches!(
            DateArg::parse("2026-01-05T09:00"),
            Ok(DateArg::Civil(_))
        ));
        assert!(DateArg::parse("tomorrow").is_err());
    }

    /// `--to 9999-12-31` means "everything ahead", not a jiff range error.
    #[test]
    fn dates_at_the_edge_of_the_calendar_clamp() {
        let tz = TimeZone::get("Pacific/Kiritimati").unwrap_or(TimeZone::UTC);
        for (s, end, want) in [
            ("9999-12-31", true, Timestamp::MAX),
            ("9999-12-31T23:00", false, Timestamp::MAX),
            ("-009999-01-01", false, Timestamp::MIN),
        ] {
            let d = DateArg::parse(s).unwrap_or(DateArg::Instant(Timestamp::UNIX_EPOCH));
            assert_eq!(d.resolve(&tz, end), Ok(want), "{s}");
        }
    }
}
