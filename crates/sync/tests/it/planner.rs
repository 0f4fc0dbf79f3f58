//! The pure planner: local state + request + now → plan.

use calgate_store::{Cursor, MailboxId, Window};
use calgate_sync::{
    Action, LastError, MailboxState, ResyncReason, SyncMode, SyncRequest, WindowConfig, plan,
    plan_mailbox,
};
use jiff::{SignedDuration, Timestamp};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

const NOW: &str = "2026-11-23T10:00:00Z";

fn state(address: &str) -> MailboxState {
    MailboxState {
        mailbox_id: MailboxId(1),
        address: address.to_owned(),
        connection: "contoso".to_owned(),
        cursor: None,
        resync_in_progress: false,
        live_instances: 0,
        last_attempt: None,
        last_success: None,
        last_error: None,
        pending_resync: None,
    }
}

/// A mailbox synced (and re-based) at `base` with the default window.
fn synced_at(address: &str, base: &str) -> MailboxState {
    let w = WindowConfig::default().window_at(ts(base));
    MailboxState {
        cursor: Some(Cursor {
            delta_link:
                "https://graph.example/v1.0/users/x/calendarView/delta?$deltatoken=SECRET-TOKEN"
                    .to_owned(),
            window_start: w.start,
            window_end: w.end,
            rebased_at: ts(base),
        }),
        live_instances: 42,
        last_attempt: Some(ts(base)),
        last_success: Some(ts(base)),
        ..state(address)
    }
}

#[test]
fn default_window_is_30_days_back_365_ahead_on_utc_midnights() {
    let cfg = WindowConfig::default();
    assert_eq!((cfg.days_back, cfg.days_ahead), (30, 365));
    let w = cfg.window_at(ts(NOW));
    assert_eq!(w.start, ts("2026-10-24T00:00:00Z"));
    assert_eq!(w.end, ts("2027-11-24T00:00:00Z"));
    let r = cfg.required(ts(NOW));
    assert!(w.start <= r.start && w.end >= r.end, "{w:?} covers {r:?}");
    // The whole day asks for the same window.
    assert_eq!(cfg.window_at(ts("2026-11-23T00:00:00Z")), w);
    assert_eq!(cfg.window_at(ts("2026-11-23T23:59:59Z")), w);
    let custom = WindowConfig::new(7, 14).expect("valid");
    let w = custom.window_at(ts(NOW));
    assert_eq!(w.start, ts("2026-11-16T00:00:00Z"));
    assert_eq!(w.end, ts("2026-12-08T00:00:00Z"));
}

#[test]
fn window_config_rejects_empty_and_huge_windows() {
    assert!(WindowConfig::new(0, 0).is_err());
    assert!(WindowConfig::new(0, 4000).is_err());
    assert!(WindowConfig::new(4000, 1).is_err());
    assert!(WindowConfig::new(0, 1).is_ok());
}

#[test]
fn a_new_mailbox_gets_an_initial_round() {
    let p = plan_mailbox(
        &state("room1@contoso.example"),
        &SyncRequest::default(),
        ts(NOW),
    );
    assert_eq!(p.action, Action::Initial);
    assert_eq!(p.window(), WindowConfig::default().window_at(ts(NOW)));
    assert_eq!(
        p.to_string(),
        "room1@contoso.example: initial sync (window 2026-10-24..2027-11-24)"
    );
    // --full on a mailbox with nothing stored is the same initial round.
    let full = SyncRequest {
        mode: SyncMode::Full,
        ..SyncRequest::default()
    };
    assert_eq!(
        plan_mailbox(&state("room1@contoso.example"), &full, ts(NOW)).action,
        Action::Initial
    );
}

#[test]
fn a_fresh_cursor_gives_an_incremental_round_over_its_own_window() {
    let s = synced_at("room1@contoso.example", "2026-11-23T02:00:00Z");
    let p = plan_mailbox(&s, &SyncRequest::default(), ts(NOW));
    let Action::Incremental {
        delta_link,
        window,
        rebased_at,
    } = &p.action
    else {
        panic!("incremental expected: {p:?}");
    };
    assert!(delta_link.as_str().contains("$deltatoken"));
    assert_eq!(*rebased_at, ts("2026-11-23T02:00:00Z"));
    assert_eq!(window.start, ts("2026-10-24T00:00:00Z"));
    assert_eq!(p.window(), *window);
    assert_eq!(
        p.to_string(),
        "room1@contoso.example: incremental from deltaLink (window 2026-10-24..2027-11-24)"
    );
}

#[test]
fn a_base_older_than_a_day_rebases_through_a_shadow_resync() {
    // Re-based 2026-11-21 at 12:00: the window still covers, but the base is > 24 h old.
    let mut s = synced_at("room1@contoso.example", "2026-11-21T12:00:00Z");
    let old = WindowConfig::new(32, 368)
        .expect("valid")
        .window_at(ts("2026-11-21T12:00:00Z"));
    if let Some(c) = s.cursor.as_mut() {
        c.window_start = old.start;
        c.window_end = old.end;
    }
    let p = plan_mailbox(&s, &SyncRequest::default(), ts(NOW));
    assert_eq!(
        p.action,
        Action::FullResync {
            reason: ResyncReason::Rebase {
                last_base: ts("2026-11-21T12:00:00Z")
            }
        }
    );
    assert_eq!(p.window(), WindowConfig::default().window_at(ts(NOW)));
    assert_eq!(
        p.to_string(),
        "room1@contoso.example: full resync into shadow (window re-based: last base 2026-11-21; window 2026-10-24..2027-11-24)"
    );
    // Exactly 24 h counts; just under does not (with a stored window that still covers).
    for (base, due) in [
        ("2026-11-22T10:00:00Z", true),
        ("2026-11-22T10:00:01Z", false),
    ] {
        let mut s = synced_at("a@x", base);
        let big = WindowConfig::new(40, 400)
            .expect("valid")
            .window_at(ts(base));
        if let Some(c) = s.cursor.as_mut() {
            c.window_start = big.start;
            c.window_end = big.end;
        }
        let p = plan_mailbox(&s, &SyncRequest::default(), ts(NOW));
        let rebase = matches!(
            p.action,
            Action::FullResync {
                reason: ResyncReason::Rebase { .. }
            }
        );
        assert_eq!(rebase, due, "{base}: {p}");
    }
    // With the default window, yesterday's window no longer reaches now + 365 days.
    let s = synced_at("a@x", "2026-11-22T23:00:00Z");
    let p = plan_mailbox(&s, &SyncRequest::default(), ts(NOW));
    assert!(
        matches!(
            p.action,
            Action::FullResync {
                reason: ResyncReason::WindowMoved { .. }
            }
        ),
        "{p}"
    );
    let custom = SyncRequest {
        rebase_every: SignedDuration::from_hours(1),
        ..SyncRequest::default()
    };
    let s = synced_at("a@x", "2026-11-23T08:59:00Z");
    assert!(matches!(
        plan_mailbox(&s, &custom, ts(NOW)).action,
        Action::FullResync {
            reason: ResyncReason::Rebase { .. }
        }
    ));
}

#[test]
fn a_window_that_no_longer_covers_rebases_even_within_the_day() {
    // Synced one hour ago, but the configuration now asks for 400 days ahead.
    let s = synced_at("a@x", "2026-11-23T09:00:00Z");
    let req = SyncRequest {
        window: WindowConfig::new(30, 400).expect("valid"),
        ..SyncRequest::default()
    };
    let p = plan_mailbox(&s, &req, ts(NOW));
    let Action::FullResync {
        reason: ResyncReason::WindowMoved { old },
    } = &p.action
    else {
        panic!("window moved expected: {p}");
    };
    assert_eq!(old.end, ts("2027-11-24T00:00:00Z"));
    assert_eq!(p.target.end, ts("2027-12-29T00:00:00Z"));
    assert!(p.to_string().contains("full resync into shadow (window re-based: 2026-10-24..2027-11-24 no longer covers the window; window 2026-10-24..2027-12-29)"), "{p}");
    // A smaller configured window is still covered: incremental.
    let req = SyncRequest {
        window: WindowConfig::new(7, 30).expect("valid"),
        ..SyncRequest::default()
    };
    assert!(matches!(
        plan_mailbox(&s, &req, ts(NOW)).action,
        Action::Incremental { .. }
    ));
}

#[test]
fn full_interrupted_and_leftover_states_resync_into_a_shadow() {
    let fresh = synced_at("a@x", "2026-11-23T09:00:00Z");
    let full = SyncRequest {
        mode: SyncMode::Full,
        ..SyncRequest::default()
    };
    assert_eq!(
        plan_mailbox(&fresh, &full, ts(NOW)).action,
        Action::FullResync {
            reason: ResyncReason::Requested
        }
    );
    let interrupted = MailboxState {
        resync_in_progress: true,
        ..fresh.clone()
    };
    assert_eq!(
        plan_mailbox(&interrupted, &SyncRequest::default(), ts(NOW)).action,
        Action::FullResync {
            reason: ResyncReason::Interrupted
        }
    );
    // A first round that stored pages but not its deltaLink: only a completed full resync may
    // drop what it left behind.
    let leftover = MailboxState {
        cursor: None,
        live_instances: 17,
        ..fresh.clone()
    };
    let p = plan_mailbox(&leftover, &SyncRequest::default(), ts(NOW));
    assert_eq!(
        p.action,
        Action::FullResync {
            reason: ResyncReason::NoCursor { live_instances: 17 }
        }
    );
    assert!(
        p.to_string()
            .contains("17 instances stored but no delta cursor"),
        "{p}"
    );
}

#[test]
fn an_unreadable_last_round_distrusts_the_cursor_but_auth_errors_do_not() {
    let mut s = synced_at("a@x", "2026-11-23T09:00:00Z");
    for (class, resync) in [
        ("invalid-data", true),
        ("fatal", true),
        ("authentication", false),
        ("permission", false),
        ("retryable", false),
        ("not-found", false),
    ] {
        s.last_error = Some(LastError {
            kind: class.parse().expect("a failure kind"),
            message: "m".to_owned(),
        });
        let p = plan_mailbox(&s, &SyncRequest::default(), ts(NOW));
        assert_eq!(
            matches!(
                p.action,
                Action::FullResync {
                    reason: ResyncReason::LastRoundUnreadable { .. }
                }
            ),
            resync,
            "{class}: {p}"
        );
        assert!(
            p.to_string()
                .ends_with(&format!("[last attempt failed: {class}]")),
            "{p}"
        );
    }
}

#[test]
fn plans_are_fair_filtered_and_do_not_print_tokens() {
    let mut states = vec![
        MailboxState {
            connection: "big".to_owned(),
            ..synced_at("b1@x", "2026-11-23T09:00:00Z")
        },
        MailboxState {
            connection: "big".to_owned(),
            ..synced_at("b2@x", "2026-11-23T08:00:00Z")
        },
        MailboxState {
            connection: "big".to_owned(),
            ..synced_at("b3@x", "2026-11-23T07:00:00Z")
        },
        MailboxState {
            connection: "small".to_owned(),
            ..synced_at("s1@x", "2026-11-23T09:30:00Z")
        },
        MailboxState {
            connection: "big".to_owned(),
            ..state("new@x")
        },
    ];
    for (i, s) in states.iter_mut().enumerate() {
        s.mailbox_id = MailboxId(i as i64 + 1);
    }
    let p = plan(&states, &SyncRequest::default(), ts(NOW));
    let order: Vec<&str> = p.mailboxes.iter().map(|m| m.address.as_str()).collect();
    // Never attempted first, then least recently attempted; connections interleaved.
    assert_eq!(order, ["new@x", "s1@x", "b3@x", "b2@x", "b1@x"]);
    let text = p.to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("new@x: initial sync")),
        "{text}"
    );
    assert!(
        !format!("{p:?}").contains("SECRET-TOKEN"),
        "Debug must not print the delta token"
    );
    assert!(!text.contains("SECRET-TOKEN"));

    let only = SyncRequest {
        mailboxes: Some(vec![" B2@X ".to_owned()]),
        ..SyncRequest::default()
    };
    let p = plan(&states, &only, ts(NOW));
    assert_eq!(p.mailboxes.len(), 1);
    assert_eq!(p.mailboxes[0].address, "b2@x");
    let none = SyncRequest {
        mailboxes: Some(vec!["nobody@x".to_owned()]),
        ..SyncRequest::default()
    };
    assert!(
        plan(&states, &none, ts(NOW))
            .to_string()
            .contains("nothing to sync")
    );
}

#[test]
fn planning_is_pure_and_deterministic() {
    let states = vec![synced_at("a@x", "2026-11-20T00:00:00Z"), state("b@x")];
    let a = plan(&states, &SyncRequest::default(), ts(NOW));
    let b = plan(&states, &SyncRequest::default(), ts(NOW));
    assert_eq!(a, b);
    assert_eq!(a.now, ts(NOW));
    let _unused: Window = a.mailboxes[0].target;
}
