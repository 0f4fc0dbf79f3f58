//! Windows ↔ IANA time-zone names.
//!
//! Exchange and Microsoft Graph name zones the Windows way ("W. Europe Standard Time"); everything
//! else in calgate uses IANA names ("Europe/Berlin"). The tables are generated from CLDR's
//! `windowsZones.xml` (plus tzlocal's newer rows for zones CLDR 2021a lacks) by
//! `tools/generate.py`, and committed; CI fails when regenerating them changes anything.
#![forbid(unsafe_code)]

#[rustfmt::skip]
mod generated;

use generated::{IANA_TO_WINDOWS, WINDOWS_TO_IANA};

/// The default IANA zone for a Windows zone name (case-insensitive), e.g.
/// `"Pacific Standard Time"` → `"America/Los_Angeles"`.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    let w = windows.trim();
    WINDOWS_TO_IANA
        .binary_search_by(|(k, _)| k.cmp(&w))
        .ok()
        .map(|i| WINDOWS_TO_IANA[i].1)
        .or_else(|| {
            WINDOWS_TO_IANA
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(w))
                .map(|(_, v)| *v)
        })
}

/// The Windows zone name for an IANA zone name (including backward aliases such as
/// `US/Eastern`), e.g. `"Europe/Berlin"` → `"W. Europe Standard Time"`.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    let i = iana.trim();
    IANA_TO_WINDOWS
        .binary_search_by(|(k, _)| k.cmp(&i))
        .ok()
        .map(|n| IANA_TO_WINDOWS[n].1)
}

/// Resolves a zone name as Graph accepts it — a Windows name or an IANA name — to an IANA name.
/// `"UTC"` and `"tzone://Microsoft/Utc"` resolve to `"UTC"`.
pub fn to_iana(name: &str) -> Option<&'static str> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("utc") || n.eq_ignore_ascii_case("tzone://Microsoft/Utc") {
        return Some("UTC");
    }
    if let Some(i) = windows_to_iana(n) {
        return Some(i);
    }
    IANA_TO_WINDOWS
        .binary_search_by(|(k, _)| k.cmp(&n))
        .ok()
        .map(|i| IANA_TO_WINDOWS[i].0)
}

/// Every Windows zone name known to the table.
pub fn windows_names() -> impl Iterator<Item = &'static str> {
    WINDOWS_TO_IANA.iter().map(|(w, _)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_zones_map_both_ways() {
        assert_eq!(
            windows_to_iana("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            windows_to_iana("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            windows_to_iana("pacific standard time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            iana_to_windows("Europe/Berlin"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(iana_to_windows("US/Eastern"), Some("Eastern Standard Time"));
        assert_eq!(windows_to_iana("Not A Zone"), None);
    }

    #[test]
    fn zones_newer_than_cldr_2021a_are_present() {
        assert_eq!(
            windows_to_iana("Alberta Standard Time"),
            Some("America/Edmonton")
        );
    }

    #[test]
    fn to_iana_accepts_both_spellings() {
        assert_eq!(to_iana("Tokyo Standard Time"), Some("Asia/Tokyo"));
        assert_eq!(to_iana("Asia/Tokyo"), Some("Asia/Tokyo"));
        assert_eq!(to_iana("UTC"), Some("UTC"));
        assert_eq!(to_iana("Australia Eastern Standard Time"), None);
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(WINDOWS_TO_IANA.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IANA_TO_WINDOWS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
