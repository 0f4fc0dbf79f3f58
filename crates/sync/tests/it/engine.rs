//! The engine against the simulator: first sync, incremental rounds after Outlook-like
//! changes, window re-base, progress and status.

use std::sync::{Arc, Mutex};

use calgate_sync::{
    Action, Progress, ProgressEvent, ProgressFn, ResyncReason, RoundKind, SyncRequest,
};
use jiff::SignedDuration;

use crate::common::{env, now, random_changes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_of_every_demo_mailbox_equals_the_truth() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let mailboxes = env.mailboxes();
    assert!(mailboxes.len() >= 30, "the demo tenant has its mailboxes");
    for (a, _) in &mailboxes {
        env.link(a, "contoso").await;
    }
    let engine = env.engine(4);
    // The dry run: one line per mailbox, all initial rounds, nothing written.
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert_eq!(plan.mailboxes.len(), mailboxes.len());
    let text = plan.to_string();
    assert_eq!(text.lines().count(), mailboxes.len());
    assert!(
        text.lines().all(|l| l.contains(": initial sync (window ")),
        "{text}"
    );

    // Progress: count mailboxes in flight; the totals only grow.
    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = events.clone();
    let progress: ProgressFn = Arc::new(move |p: &Progress| {
        if let Ok(mut v) = sink.lock() {
            v.push(p.clone());
        }
    });
    let summary = engine
        .execute(&plan, Some(progress))
        .await
        .expect("sync runs");
    assert!(
        summary.is_success(),
        "{summary}: {:?}",
        summary.failures().collect::<Vec<_>>()
    );
    assert_eq!(summary.totals.mailboxes_done, mailboxes.len() as u64);
    assert!(
        summary.totals.requests >= mailboxes.len() as u64,
        "{summary}"
    );
    assert!(summary.totals.events_upserted > 0);
    assert!(summary.peak_mailbox_concurrency <= 4);

    let events = events.lock().expect("events").clone();
    assert!(matches!(
        events.first().map(|p| &p.event),
        Some(ProgressEvent::Started)
    ));
    assert!(matches!(
        events.last().map(|p| &p.event),
        Some(ProgressEvent::Finished)
    ));
    let (mut in_flight, mut peak) = (0i64, 0i64);
    for w in events.windows(2) {
        assert!(w[1].totals.mailboxes_done >= w[0].totals.mailboxes_done);
        assert!(w[1].totals.events_upserted >= w[0].totals.events_upserted);
        assert!(w[1].totals.requests >= w[0].totals.requests);
    }
    for p in &events {
        match p.event {
            ProgressEvent::MailboxStarted { .. } => in_flight += 1,
            ProgressEvent::MailboxFinished { .. } => in_flight -= 1,
            _ => {}
        }
        peak = peak.max(in_flight);
    }
    assert!(
        (1..=4).contains(&peak),
        "at most 4 mailboxes at once, saw {peak}"
    );
    let last = events.last().map(|p| p.totals).unwrap_or_default();
    assert_eq!(last, summary.totals);

    let mut total = 0;
    for (a, _) in &mailboxes {
        total += env.assert_equal(a).await;
    }
    assert_eq!(
        total as u64, summary.totals.events_upserted,
        "every upsert is one instance"
    );

    // Status: every mailbox succeeded, with a next action and counters.
    for s in env.store.statuses().await.expect("statuses") {
        assert!(s.last_success.is_some() && s.last_error.is_none(), "{s:?}");
        assert_eq!(s.counters.rounds, 1);
        assert!(s.counters.requests >= 1);
        assert!(
            s.next_action
                .as_deref()
                .is_some_and(|a| a.contains("incremental")),
            "{s:?}"
        );
        assert!(s.lag.is_some());
        assert!(!s.resync_in_progress);
    }
    // The next plan is incremental everywhere.
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert!(
        plan.mailboxes
            .iter()
            .all(|m| matches!(m.action, Action::Incremental { .. })),
        "{plan}"
    );
    assert!(
        plan.to_string()
            .lines()
            .all(|l| l.contains(": incremental from deltaLink (window "))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_changes_then_one_incremental_round_restore_equality() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let chosen: Vec<String> = env
        .mailboxes()
        .into_iter()
        .map(|(a, _)| a)
        .step_by(7)
        .take(4)
        .collect();
    for a in &chosen {
        env.link(a, "contoso").await;
    }
    let engine = env.engine(4);
    let first = env.sync(&engine, &SyncRequest::default()).await;
    assert!(first.is_success(), "{first}");
    let mut kinds = serde_json::Map::new();
    for (i, a) in chosen.iter().enumerate() {
        let counts = random_changes(&env, a, 50, 100 + i as u64).await;
        for (k, n) in counts.as_object().into_iter().flatten() {
            let prev = kinds.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            kinds.insert(k.clone(), (prev + n.as_u64().unwrap_or(0)).into());
        }
    }
    for k in [
        "create",
        "edit",
        "move_occurrence",
        "cancel_occurrence",
        "delete_series",
        "change_pattern",
        "move_out_of_window",
    ] {
        assert!(
            kinds.get(k).and_then(|v| v.as_u64()).unwrap_or(0) > 0,
            "no {k} among {kinds:?}"
        );
    }
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert!(
        plan.mailboxes
            .iter()
            .all(|m| matches!(m.action, Action::Incremental { .. })),
        "{plan}"
    );
    let second = engine.execute(&plan, None).await.expect("sync");
    assert!(second.is_success(), "{second}");
    assert!(second.totals.events_removed > 0, "{second}");
    for o in &second.outcomes {
        assert_eq!(o.report.round, Some(RoundKind::Incremental), "{o:?}");
        assert_eq!(o.report.full_resyncs, 0);
    }
    for a in &chosen {
        env.assert_equal(a).await;
    }
    // A round with nothing new changes nothing.
    let third = env.sync(&engine, &SyncRequest::default()).await;
    assert!(third.is_success());
    assert_eq!(
        (third.totals.events_upserted, third.totals.events_removed),
        (0, 0),
        "{third}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_rebases_daily_through_a_shadow_without_loss_or_duplicates() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let a = env.mailboxes()[0].0.clone();
    env.link(&a, "contoso").await;
    let engine = env.engine(2);
    let t0 = now();
    let plan = engine
        .plan(&SyncRequest::default(), t0)
        .await
        .expect("plan");
    assert!(
        engine
            .execute(&plan, None)
            .await
            .expect("sync")
            .is_success()
    );
    let id = env.mailbox_id(&a).await;
    let before = env.store.cursor(id).await.expect("cursor").expect("some");
    let ids_before = env.store.count_instances(id).await.expect("count");

    // 25 hours later the window is re-based through a full resync.
    let later = t0 + SignedDuration::from_hours(25);
    let plan = engine
        .plan(&SyncRequest::default(), later)
        .await
        .expect("plan");
    let line = plan.to_string();
    assert!(
        line.contains("full resync into shadow (window re-based"),
        "{line}"
    );
    assert!(matches!(
        plan.mailboxes[0].action,
        Action::FullResync {
            reason: ResyncReason::Rebase { .. } | ResyncReason::WindowMoved { .. }
        }
    ));
    let s = engine.execute(&plan, None).await.expect("sync");
    assert!(s.is_success(), "{s}");
    assert_eq!(s.full_resyncs, 1);
    let after = env.store.cursor(id).await.expect("cursor").expect("some");
    // The store keeps microseconds.
    assert!(later.duration_since(after.rebased_at).abs() < SignedDuration::from_millis(1));
    assert!(after.window_start > before.window_start && after.window_end > before.window_end);
    assert_ne!(after.delta_link, before.delta_link);
    env.assert_equal(&a).await;
    // Exchange ids are unique in the store, and what left the window is the only loss.
    let n = env.store.count_instances(id).await.expect("count");
    let in_window = env.stored(&a, env.cursor_window(&a).await).await.len() as u64;
    assert_eq!(n, in_window, "nothing outside the new window is kept");
    assert!(
        n + 50 >= ids_before,
        "a one-day shift loses at most a day of instances"
    );
    // And the round after that is incremental again.
    let plan = engine
        .plan(&SyncRequest::default(), later)
        .await
        .expect("plan");
    assert!(
        matches!(plan.mailboxes[0].action, Action::Incremental { .. }),
        "{plan}"
    );
}

/// Two engines of two "processes" (two lease holders) syncing the same mailboxes with `--full`
/// at once: each mailbox's round runs under one lease at a time, a mailbox leased by the other
/// is skipped with the holder named, nothing fails, and the store ends equal to the simulator
/// (the shadow of one round can no longer be wiped by the other's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_full_syncs_of_two_processes_lose_nothing() {
    let env = env(2, None).await;
    env.add_main_connection().await;
    let mailboxes = env.mailboxes();
    for (a, _) in &mailboxes {
        env.link(a, "contoso").await;
    }
    assert!(
        env.sync(&env.engine(8), &SyncRequest::default())
            .await
            .is_success()
    );
    let engine_as = |name: &str| {
        calgate_sync::Engine::new(
            env.store.clone(),
            env.shared.clone(),
            calgate_sync::EngineOptions {
                concurrency: 8,
                page_size: 10,
                lease_holder: calgate_store::LeaseHolder {
                    id: name.into(),
                    pid: 7,
                    host: format!("host-{name}"),
                },
                ..calgate_sync::EngineOptions::default()
            },
        )
    };
    let (a, b) = (engine_as("a"), engine_as("b"));
    let full = SyncRequest {
        mode: calgate_sync::SyncMode::Full,
        ..SyncRequest::default()
    };
    let (sa, sb) = tokio::join!(a.sync(&full, None), b.sync(&full, None));
    let (sa, sb) = (sa.expect("a runs"), sb.expect("b runs"));
    for (s, other) in [(&sa, "host-b"), (&sb, "host-a")] {
        assert_eq!(
            s.totals.mailboxes_failed,
            0,
            "{s}: {:?}",
            s.failures().collect::<Vec<_>>()
        );
        for (o, holder) in s.skipped() {
            assert_eq!(holder.holder.host, other, "{}", o.address);
            assert!(o.failure.is_none());
        }
    }
    assert!(
        sa.totals.mailboxes_skipped + sb.totals.mailboxes_skipped > 0,
        "the two runs overlapped ({sa}; {sb})"
    );
    // Every mailbox was synced by at least one of them; then an incremental round changes
    // nothing and the store equals the simulator.
    for (addr, _) in &mailboxes {
        let synced = [&sa, &sb].iter().any(|s| {
            s.outcomes
                .iter()
                .any(|o| o.address == *addr && o.skipped.is_none())
        });
        assert!(synced, "{addr} was synced by one of them");
    }
    let after = env.sync(&env.engine(8), &SyncRequest::default()).await;
    assert!(after.is_success(), "{after}");
    assert_eq!(after.totals.events_upserted, 0, "{after}");
    for (addr, _) in &mailboxes {
        env.assert_equal(addr).await;
    }
    assert!(
        env.store.leases().await.expect("leases").is_empty(),
        "all released"
    );
}

/// Once the disk is full, every mailbox reports "disk full" with the database's path — not
/// the internal "non-zero transaction depth" of a poisoned connection — and the next run after
/// space is freed heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_by_every_mailbox_with_the_path() {
    let env = crate::common::env_with(0, None, Some(90)).await;
    env.add_main_connection().await;
    let mailboxes = env.mailboxes();
    for (a, _) in &mailboxes {
        env.link(a, "contoso").await;
    }
    let s = env.sync(&env.engine(4), &SyncRequest::default()).await;
    assert!(s.totals.mailboxes_failed > 3, "the cap was reached: {s}");
    for o in s.failures() {
        let f = o.failure.as_ref().expect("failure");
        assert!(
            !f.message.contains("transaction depth") && !f.message.contains("begin_with"),
            "{}: {}",
            o.address,
            f.message
        );
        if f.kind.as_str() == "disk-full" {
            assert!(
                f.message.contains("is full") && f.message.contains("calgate.db"),
                "{}",
                f.message
            );
        }
    }
    let full = s
        .failures()
        .filter(|o| {
            o.failure
                .as_ref()
                .is_some_and(|f| f.kind.as_str() == "disk-full")
        })
        .count();
    assert!(
        full + 1 >= s.totals.mailboxes_failed as usize,
        "every failing mailbox says disk full (at most one other cause): {:?}",
        s.failures().map(|o| &o.failure).collect::<Vec<_>>()
    );
}

/// Widening a mailbox's privacy from busy-only to full plans a full resync of that mailbox,
/// which brings the details it had not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_privacy_resyncs_the_mailbox_and_brings_its_details() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let room = env
        .mailboxes()
        .into_iter()
        .find(|(_, k)| *k == calgate_core::MailboxKind::Room)
        .map(|(a, _)| a)
        .expect("a room");
    let set = |privacy| calgate_store::NewMailbox {
        address: room.clone(),
        connection: "contoso".into(),
        kind: None,
        external_id: None,
        privacy: Some(privacy),
    };
    env.store
        .link_mailbox(&set(calgate_core::PrivacyPolicy::BusyOnly))
        .await
        .expect("link busy-only");
    let engine = env.engine(2);
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );
    let id = env.mailbox_id(&room).await;
    let all = env
        .store
        .instances(id, jiff::Timestamp::MIN, jiff::Timestamp::MAX)
        .await
        .expect("instances");
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|i| i.instance.subject.is_none() && i.instance.organizer.is_none())
    );
    env.store
        .link_mailbox(&set(calgate_core::PrivacyPolicy::Full))
        .await
        .expect("widen");
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert!(
        matches!(
            &plan.mailboxes[0].action,
            Action::FullResync { reason: ResyncReason::Pending { why } } if why.contains("busy-only")
        ),
        "{plan}"
    );
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );
    env.assert_equal(&room).await;
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert!(
        matches!(plan.mailboxes[0].action, Action::Incremental { .. }),
        "{plan}"
    );
}

/// The bulk-delete circuit breaker (field notes P5): Exchange losing 80 % of a mailbox's
/// events is held — nothing deleted, the mailbox marked for review with the numbers, by an
/// incremental round and by a full resync alike — until the deletions are accepted; 10 %
/// passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletions_are_held_until_accepted() {
    use reqwest::Method;
    let env = env(0, None).await;
    env.add_main_connection().await;
    for (m, _) in env.mailboxes() {
        env.link(&m, "contoso").await;
    }
    let engine = calgate_sync::Engine::new(
        env.store.clone(),
        env.shared.clone(),
        calgate_sync::EngineOptions::default(),
    );
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );
    // The mailbox with the most events.
    let mut best = (0, String::new());
    for (m, _) in env.mailboxes() {
        let n = env
            .store
            .count_instances(env.mailbox_id(&m).await)
            .await
            .expect("count");
        if n > best.0 {
            best = (n, m);
        }
    }
    let a = best.1;
    let id = env.mailbox_id(&a).await;
    let w = env.cursor_window(&a).await;
    let ids: Vec<String> = env.truth(&a, w).await.into_keys().collect();
    assert!(ids.len() >= 40, "{a} has {} instances", ids.len());
    let delete = |n: usize, skip: usize| {
        let ids = ids.clone();
        let env = &env;
        let a = a.clone();
        async move {
            for i in ids.iter().skip(skip).take(n) {
                let (s, v) = env
                    .control(Method::DELETE, &format!("/mailboxes/{a}/events/{i}"), None)
                    .await;
                assert!(s == 204 || s == 404, "{s} {v}");
            }
        }
    };
    let live = |env: &crate::common::Env| {
        let store = env.store.clone();
        async move { store.count_instances(id).await.expect("count") }
    };
    // 80 % gone in Exchange.
    let before = live(&env).await;
    delete(ids.len() * 8 / 10, 0).await;
    let truth_left = env.truth(&a, w).await.len() as u64;
    assert!(
        truth_left * 100 < before * 50,
        "{truth_left} of {before} left"
    );
    for mode in [
        calgate_sync::SyncMode::Incremental,
        calgate_sync::SyncMode::Full,
    ] {
        let s = env
            .sync(
                &engine,
                &SyncRequest {
                    mode,
                    mailboxes: Some(vec![a.clone()]),
                    ..SyncRequest::default()
                },
            )
            .await;
        let f = s.outcomes[0].failure.clone().expect("held");
        assert_eq!(
            f.kind,
            calgate_core::FailureKind::DeletionsHeld,
            "{mode:?}: {f:?}"
        );
        assert!(
            f.message.contains("held for review")
                && f.message.contains(&format!("of {a}'s {before} events"))
                && f.message.contains("--accept-deletions"),
            "{}",
            f.message
        );
        assert_eq!(live(&env).await, before, "{mode:?}: nothing deleted");
        let status = env.store.status(id).await.expect("status").expect("row");
        assert_eq!(
            status.last_error.map(|e| e.kind),
            Some(calgate_core::FailureKind::DeletionsHeld)
        );
    }
    // Accepted for that mailbox: applied, equal to Exchange.
    let s = env
        .sync(
            &engine,
            &SyncRequest {
                mailboxes: Some(vec![a.clone()]),
                accept_deletions: true,
                ..SyncRequest::default()
            },
        )
        .await;
    assert!(s.is_success(), "{s}");
    env.assert_equal(&a).await;
    assert_eq!(live(&env).await, truth_left);
    // 10 % more: below the limit, it just syncs.
    let remaining: Vec<String> = env.truth(&a, w).await.into_keys().collect();
    for i in remaining.iter().take((remaining.len() / 10).max(1)) {
        env.control(Method::DELETE, &format!("/mailboxes/{a}/events/{i}"), None)
            .await;
    }
    let s = env.sync(&engine, &SyncRequest::default()).await;
    assert!(s.is_success(), "{s}");
    env.assert_equal(&a).await;
}
