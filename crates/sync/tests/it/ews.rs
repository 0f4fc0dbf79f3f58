//! The engine through EWS against the simulator's EWS face: the same tenant model as its Graph
//! face, so a mailbox pulled both ways must give the same instances (ids aside).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use calgate_core::{EwsAuth, MailboxKind};
use calgate_store::Window;
use calgate_sync::SyncRequest;
use reqwest::Method;

use crate::common::{Env, Row, env, random_changes};

/// The fields EWS and Graph must agree on: start, end, all-day, showAs, subject, type.
type Key = (String, String, bool, String, Option<String>, String);

fn project(rows: BTreeMap<String, Row>) -> Vec<Key> {
    let mut v: Vec<Key> = rows.into_values().map(key).collect();
    v.sort();
    v
}

async fn add_onprem(env: &Env) {
    let c = calgate_testkit::sim_ews_connection(
        &env.sim,
        "onprem",
        "CONTOSO\\svc-calgate",
        EwsAuth::Ntlm,
        true,
    );
    env.store
        .add_connection(&c)
        .await
        .expect("add the EWS connection");
}

/// EWS's `xs:dateTime` values carry whole seconds (Exchange keeps no finer times; only the
/// simulator's random changes make sub-second ones, which Graph shows and EWS cuts).
fn whole_seconds(t: String) -> String {
    match (t.find('.'), t.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &t[..dot]),
        _ => t,
    }
}

fn key(r: Row) -> Key {
    (
        whole_seconds(r.start),
        whole_seconds(r.end),
        r.all_day,
        r.show_as,
        r.subject,
        r.kind,
    )
}

async fn ews_stored(env: &Env, address: &str) -> (Window, Vec<Key>) {
    let w = env.cursor_window(address).await;
    (w, project(env.stored(address, w).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulling_the_demo_tenant_through_ews_gives_what_graph_gives() {
    let env = env(0, None).await;
    add_onprem(&env).await;
    // The same tenant pulled through Graph into a second store.
    let graph = calgate_testkit::temp_store().await;
    let (id, secret) = env.app("calgate");
    graph
        .store
        .add_connection(&calgate_testkit::sim_connection(
            &env.sim,
            "contoso",
            &id,
            vec![calgate_store::NewCredential::secret(secret, None)],
        ))
        .await
        .expect("add the Graph connection");
    let mailboxes = env.mailboxes();
    assert!(mailboxes.len() >= 30);
    for (a, k) in &mailboxes {
        env.link(a, "onprem").await;
        calgate_testkit::link_full(graph.store.as_ref(), a, "contoso", *k).await;
    }
    let summary = env.sync(&env.engine(4), &SyncRequest::default()).await;
    assert!(
        summary.is_success(),
        "{summary}: {:?}",
        summary.failures().collect::<Vec<_>>()
    );
    assert!(summary.totals.events_upserted > 300, "{summary}");
    let graph_engine = calgate_testkit::engine(
        &graph.store,
        &env.shared,
        4,
        50,
        calgate_sync::DeletionGuard::off(),
    );
    let g = graph_engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("graph sync");
    assert!(g.is_success(), "{g}");

    let mut compared = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for (a, _) in &mailboxes {
        let (w, by_ews) = ews_stored(&env, a).await;
        let gid = graph
            .store
            .mailbox(a)
            .await
            .expect("mailbox")
            .expect("linked")
            .id;
        let by_graph: Vec<Key> = {
            let mut v: Vec<Key> = graph
                .store
                .instances(gid, w.start, w.end)
                .await
                .expect("instances")
                .into_iter()
                .map(|s| key(Row::from_instance(&s.instance)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(by_ews, by_graph, "{a}: EWS and Graph disagree");
        assert_eq!(
            by_ews,
            project(env.truth(a, w).await),
            "{a}: EWS and the simulator disagree"
        );
        kinds.extend(by_ews.iter().map(|k| k.5.clone()));
        compared += by_ews.len();
    }
    // A calendar view is paged by start time: an item starting at a page's last start is read
    // again by the next page (an idempotent upsert).
    assert!(
        (compared as u64..=compared as u64 + 50).contains(&summary.totals.events_upserted),
        "{compared} instances, {summary}"
    );
    for k in ["single", "occurrence", "exception"] {
        assert!(
            kinds.iter().any(|x| x.contains(k)),
            "no {k} instance among {kinds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_changes_then_an_ews_round_restore_equality() {
    let env = env(0, None).await;
    add_onprem(&env).await;
    let chosen: Vec<String> = env
        .mailboxes()
        .into_iter()
        .map(|(a, _)| a)
        .step_by(7)
        .take(4)
        .collect();
    for a in &chosen {
        env.link(a, "onprem").await;
    }
    let engine = env.engine(4);
    let first = env.sync(&engine, &SyncRequest::default()).await;
    assert!(first.is_success(), "{first}");
    for (i, a) in chosen.iter().enumerate() {
        random_changes(&env, a, 50, 300 + i as u64).await;
    }
    let second = env.sync(&engine, &SyncRequest::default()).await;
    assert!(
        second.is_success(),
        "{second}: {:?}",
        second.failures().collect::<Vec<_>>()
    );
    assert!(
        second.totals.events_upserted > 0 && second.totals.events_removed > 0,
        "{second}"
    );
    for a in &chosen {
        let (w, stored) = ews_stored(&env, a).await;
        assert_eq!(
            stored,
            project(env.truth(a, w).await),
            "{a} after 50 random changes"
        );
    }
    // Nothing new: nothing written.
    let third = env.sync(&engine, &SyncRequest::default()).await;
    assert!(third.is_success(), "{third}");
    assert_eq!(
        (third.totals.events_upserted, third.totals.events_removed),
        (0, 0),
        "{third}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sync_state_resyncs_with_no_instance_vanishing_meanwhile() {
    // Latency makes the resync take many pages, long enough to be watched.
    let env = env(15, None).await;
    add_onprem(&env).await;
    let address = env
        .mailboxes()
        .into_iter()
        .map(|(a, _)| a)
        .max_by_key(|a| a.starts_with("room-jordaan"))
        .expect("a mailbox");
    env.link(&address, "onprem").await;
    let engine = env.engine_with(1, 20);
    let first = env.sync(&engine, &SyncRequest::default()).await;
    assert!(first.is_success(), "{first}");
    let id = env.mailbox_id(&address).await;
    let w = env.cursor_window(&address).await;
    let before = env
        .store
        .instances(id, w.start, w.end)
        .await
        .expect("instances")
        .len();
    assert!(
        before > 100,
        "{address} has {before} instances: too few to watch a resync"
    );

    let (status, body) = env
        .control(
            Method::POST,
            &format!("/ews/mailboxes/{address}/invalidate-sync-state"),
            None,
        )
        .await;
    assert!(status < 300, "{status} {body}");
    // One change, so that the round has something to find.
    random_changes(&env, &address, 1, 77).await;

    // A reader watches the mailbox while the round runs: it must never see fewer instances
    // than before (the change is at most one removal).
    let done = Arc::new(AtomicBool::new(false));
    let low = Arc::new(AtomicUsize::new(usize::MAX));
    let reads = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (store, done, low, reads) =
            (env.store.clone(), done.clone(), low.clone(), reads.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n = store
                    .instances(id, w.start, w.end)
                    .await
                    .expect("read")
                    .len();
                low.fetch_min(n, Ordering::SeqCst);
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let second = env.sync(&engine, &SyncRequest::default()).await;
    done.store(true, Ordering::SeqCst);
    watcher.await.expect("watcher");
    assert!(
        second.is_success(),
        "{second}: {:?}",
        second.failures().collect::<Vec<_>>()
    );
    assert!(
        second.full_resyncs >= 1 || second.outcomes.iter().any(|o| o.report.full_resyncs >= 1),
        "no resync: {second}"
    );
    assert!(
        reads.load(Ordering::SeqCst) >= 5,
        "the watcher read too rarely"
    );
    let low = low.load(Ordering::SeqCst);
    assert!(
        low + 1 >= before,
        "instances vanished during the resync: {low} seen, {before} before"
    );
    let (w, stored) = ews_stored(&env, &address).await;
    assert_eq!(stored, project(env.truth(&address, w).await));
    let _ = MailboxKind::Room;
}
