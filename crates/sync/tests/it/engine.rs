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
