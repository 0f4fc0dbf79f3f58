//! The pure page applier: delta items + window → ChangeSet.

use std::collections::BTreeMap;

use calgate_core::{Instance, InstanceType, Origin, Sensitivity, ShowAs, When};
use calgate_store::{ChangeSet, Window};
use calgate_sync::Change;
use calgate_sync::plan_page;
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn window() -> Window {
    Window {
        start: ts("2026-10-24T00:00:00Z"),
        end: ts("2027-11-24T00:00:00Z"),
    }
}

fn inst(id: &str, start: &str, end: &str, subject: &str) -> Instance {
    Instance {
        exchange_id: id.to_owned(),
        ical_uid: None,
        mailbox: "a@x".to_owned(),
        kind: InstanceType::SingleInstance,
        series_master_id: None,
        when: When {
            start: ts(start),
            end: ts(end),
            time_zone: "UTC".to_owned(),
            all_day: None,
        },
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        subject: Some(subject.to_owned()),
        location: None,
        body_preview: None,
        organizer: None,
        attendees: Vec::new(),
        web_link: None,
        change_key: None,
        last_modified: None,
        origin: Origin::Exchange,
        booking_id: None,
    }
}

fn up(i: Instance) -> Change {
    Change::Upsert(Box::new(i))
}

fn removed(id: &str) -> Change {
    Change::Removed {
        exchange_id: id.to_owned(),
    }
}

fn ids(c: &ChangeSet) -> (Vec<&str>, Vec<&str>) {
    (
        c.upserts.iter().map(|i| i.exchange_id.as_str()).collect(),
        c.removals.iter().map(String::as_str).collect(),
    )
}

/// The store's documented semantics: removals, then upserts.
fn apply(model: &mut BTreeMap<String, Instance>, c: &ChangeSet) {
    for r in &c.removals {
        model.remove(r);
    }
    for u in &c.upserts {
        model.insert(u.exchange_id.clone(), u.clone());
    }
}

#[test]
fn in_window_upserts_removed_removals_and_out_of_window_upserts_become_removals() {
    let items = vec![
        up(inst(
            "in",
            "2026-11-25T09:00:00Z",
            "2026-11-25T10:00:00Z",
            "in",
        )),
        removed("gone"),
        up(inst(
            "past",
            "2026-09-01T09:00:00Z",
            "2026-09-01T10:00:00Z",
            "moved out, past",
        )),
        up(inst(
            "future",
            "2028-01-01T09:00:00Z",
            "2028-01-01T10:00:00Z",
            "moved out, future",
        )),
        // Straddles the start: overlaps.
        up(inst(
            "straddle",
            "2026-10-23T23:00:00Z",
            "2026-10-24T01:00:00Z",
            "s",
        )),
        // Ends exactly at the window's start: outside.
        up(inst(
            "ends-at-start",
            "2026-10-23T23:00:00Z",
            "2026-10-24T00:00:00Z",
            "e",
        )),
        // Starts exactly at the window's end: outside.
        up(inst(
            "starts-at-end",
            "2027-11-24T00:00:00Z",
            "2027-11-24T01:00:00Z",
            "e",
        )),
        // Zero-length at the window's start: inside.
        up(inst(
            "zero",
            "2026-10-24T00:00:00Z",
            "2026-10-24T00:00:00Z",
            "z",
        )),
    ];
    let c = plan_page(items.clone(), window());
    let (u, r) = ids(&c);
    assert_eq!(u, ["in", "straddle", "zero"]);
    assert_eq!(
        r,
        ["gone", "past", "future", "ends-at-start", "starts-at-end"]
    );
    assert!(c.cursor.is_none() && c.masters.is_empty() && c.master_removals.is_empty());
    assert!(plan_page(vec![], window()).is_empty());
}

#[test]
fn the_last_item_of_an_id_wins() {
    let a1 = inst("a", "2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z", "v1");
    let a2 = inst("a", "2026-11-26T09:00:00Z", "2026-11-26T10:00:00Z", "v2");
    let c = plan_page(vec![up(a1.clone()), up(a2.clone())], window());
    assert_eq!(c.upserts, vec![a2.clone()]);
    assert!(c.removals.is_empty());
    // Upsert then @removed: removed (the store would otherwise apply the upsert last).
    let c = plan_page(vec![up(a1.clone()), removed("a")], window());
    assert_eq!(ids(&c), (vec![], vec!["a"]));
    // @removed then upsert: present.
    let c = plan_page(vec![removed("a"), up(a2.clone())], window());
    assert_eq!(ids(&c), (vec!["a"], vec![]));
    // Moved out then back in within one page: present, last version.
    let out = inst("a", "2029-01-01T09:00:00Z", "2029-01-01T10:00:00Z", "out");
    let c = plan_page(vec![up(out), up(a2.clone())], window());
    assert_eq!(c.upserts, vec![a2]);
    assert!(c.removals.is_empty());
}

#[test]
fn replaying_pages_is_idempotent_and_order_of_pages_decides() {
    let pages = [
        vec![
            up(inst(
                "a",
                "2026-11-25T09:00:00Z",
                "2026-11-25T10:00:00Z",
                "a",
            )),
            up(inst(
                "b",
                "2026-11-26T09:00:00Z",
                "2026-11-26T10:00:00Z",
                "b",
            )),
        ],
        vec![
            removed("a"),
            up(inst(
                "c",
                "2026-11-27T09:00:00Z",
                "2026-11-27T10:00:00Z",
                "c",
            )),
            up(inst(
                "b",
                "2030-01-01T09:00:00Z",
                "2030-01-01T10:00:00Z",
                "b moved out",
            )),
        ],
        vec![
            removed("never-seen"),
            up(inst(
                "c",
                "2026-11-28T09:00:00Z",
                "2026-11-28T10:00:00Z",
                "c2",
            )),
        ],
    ];
    let mut once = BTreeMap::new();
    for p in &pages {
        apply(&mut once, &plan_page(p.clone(), window()));
    }
    assert_eq!(once.keys().collect::<Vec<_>>(), ["c"]);
    assert_eq!(once["c"].subject.as_deref(), Some("c2"));
    // A crash after page 2 and a replay of the whole round from the old deltaLink: same end.
    let mut replayed = BTreeMap::new();
    for p in &pages[..2] {
        apply(&mut replayed, &plan_page(p.clone(), window()));
    }
    for p in &pages {
        apply(&mut replayed, &plan_page(p.clone(), window()));
    }
    assert_eq!(replayed, once);
    // Every page applied twice in a row: same end.
    let mut twice = BTreeMap::new();
    for p in &pages {
        let c = plan_page(p.clone(), window());
        apply(&mut twice, &c);
        apply(&mut twice, &c);
    }
    assert_eq!(twice, once);
}
