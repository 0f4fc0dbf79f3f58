//! The engine under faults: expired delta tokens, a 429 storm, credential and scope errors,
//! garbage delta links and truncated pages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calgate_graph::RetryPolicy;
use calgate_store::{ChangeSet, Cursor};
use calgate_sync::{Action, ResyncReason, RoundKind, SyncRequest};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Env, Proxy, env, now, random_changes};

fn addresses(env: &Env, step: usize, n: usize) -> Vec<String> {
    env.mailboxes()
        .into_iter()
        .map(|(a, _)| a)
        .step_by(step)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_delta_tokens_resync_in_a_shadow_and_no_instance_ever_disappears() {
    let env = Arc::new(env(0, None).await);
    env.add_main_connection().await;
    let chosen = addresses(&env, 5, 2);
    for a in &chosen {
        env.link(a, "contoso").await;
    }
    let engine = env.engine(4);
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );

    // Snapshot what the host sees; then an edit (no removal) so the resync has work to do.
    let mut watched = Vec::new();
    for a in &chosen {
        let id = env.mailbox_id(a).await;
        let w = env.cursor_window(a).await;
        let ids: BTreeSet<String> = env.stored(a, w).await.into_keys().collect();
        assert!(!ids.is_empty(), "{a} has instances");
        watched.push((a.clone(), id, w, ids));
    }
    let (a0, _, w0, ids0) = &watched[0];
    // An instance whose details the `full` policy stores (not private or confidential).
    let some_id = env
        .stored(a0, *w0)
        .await
        .into_iter()
        .find(|(id, r)| ids0.contains(id) && r.sensitivity == "Normal")
        .map(|(id, _)| id)
        .expect("a normal instance");
    let (s, v) = env
        .control(
            Method::PATCH,
            &format!("/mailboxes/{a0}/events/{some_id}"),
            Some(json!({"subject": "Renamed during the resync test"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let _ = w0;
    let faults = [
        json!({"gone_on_next": true}),
        json!({"sync_state_not_found_on_next": true}),
    ];
    for ((a, ..), f) in watched.iter().zip(faults) {
        let (s, v) = env
            .control(
                Method::POST,
                &format!("/mailboxes/{a}/delta-faults"),
                Some(f),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // Slow Graph down so the resync takes a while, and watch the store all along.
    let (s, _) = env
        .control(Method::PATCH, "/settings", Some(json!({"latency_ms": 25})))
        .await;
    assert_eq!(s, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let env = env.clone();
        let stop = stop.clone();
        let watched = watched.clone();
        tokio::spawn(async move {
            let (mut polls, mut saw_shadow) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                for (a, id, w, ids) in &watched {
                    let now_ids: BTreeSet<String> = env
                        .store
                        .instances(*id, w.start, w.end)
                        .await
                        .expect("instances")
                        .into_iter()
                        .map(|s| s.instance.exchange_id)
                        .collect();
                    let gone: Vec<&String> = ids.difference(&now_ids).collect();
                    assert!(
                        gone.is_empty(),
                        "{a}: instances disappeared during the resync: {gone:?}"
                    );
                    if env.store.shadow(*id).await.expect("shadow").is_some() {
                        saw_shadow += 1;
                    }
                    polls += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (polls, saw_shadow)
        })
    };
    let summary = env.sync(&engine, &SyncRequest::default()).await;
    stop.store(true, Ordering::SeqCst);
    let (polls, saw_shadow) = poller.await.expect("poller");
    assert!(
        summary.is_success(),
        "{summary}: {:?}",
        summary.failures().collect::<Vec<_>>()
    );
    assert!(
        saw_shadow > 0,
        "the poller watched the store while a shadow resync ran ({polls} polls)"
    );
    for o in &summary.outcomes {
        assert_eq!(
            o.report.round,
            Some(RoundKind::FullResync(ResyncReason::DeltaTokenExpired)),
            "{o:?}"
        );
        assert_eq!(o.report.full_resyncs, 1);
    }
    let (s, _) = env
        .control(Method::PATCH, "/settings", Some(json!({"latency_ms": 0})))
        .await;
    assert_eq!(s, 200);
    for (a, id, ..) in &watched {
        env.assert_equal(a).await;
        assert!(env.store.shadow(*id).await.expect("shadow").is_none());
    }
    let renamed = env.stored(a0, env.cursor_window(a0).await).await;
    assert_eq!(
        renamed
            .get(&some_id)
            .and_then(|r| r.subject.clone())
            .as_deref(),
        Some("Renamed during the resync test")
    );
    // The next round is incremental again.
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_ends_in_equality_without_early_retries() {
    // 30 % of calls throttled: allow enough attempts that no request gives up by bad luck.
    let retry = RetryPolicy {
        max_attempts: 16,
        ..RetryPolicy::default()
    };
    let env = env(0, Some(retry)).await;
    env.add_main_connection().await;
    let chosen = addresses(&env, 6, 6);
    for a in &chosen {
        env.link(a, "contoso").await;
    }
    let engine = env.engine(8);
    let (s, v) = env
        .control(
            Method::PUT,
            "/faults",
            Some(json!({"throttle_rate": 0.3, "throttle_retry_after": "0.2", "seed": 3})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let first = env.sync(&engine, &SyncRequest::default()).await;
    for (i, a) in chosen.iter().enumerate().take(3) {
        random_changes(&env, a, 20, 7 + i as u64).await;
    }
    let second = env.sync(&engine, &SyncRequest::default()).await;
    let (s, _) = env.control(Method::DELETE, "/faults", None).await;
    assert_eq!(s, 204);
    assert!(
        first.is_success(),
        "{first}: {:?}",
        first.failures().collect::<Vec<_>>()
    );
    assert!(
        second.is_success(),
        "{second}: {:?}",
        second.failures().collect::<Vec<_>>()
    );
    assert!(
        first.totals.throttled + second.totals.throttled > 0,
        "the storm throttled something"
    );
    for a in &chosen {
        env.assert_equal(a).await;
    }
    let (s, stats) = env.control(Method::GET, "/stats", None).await;
    assert_eq!(s, 200);
    let mailboxes = stats["mailboxes"].as_array().expect("mailboxes");
    assert!(!mailboxes.is_empty(), "{stats}");
    let sum = |k: &str| {
        mailboxes
            .iter()
            .map(|m| m[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(
        sum("early_retries"),
        0,
        "nothing sent before Retry-After: {stats}"
    );
    assert!(sum("throttled") > 0, "{stats}");
    for m in mailboxes {
        let peak = m["peak_concurrency"].as_u64().expect("peak");
        assert!((1..=4).contains(&peak), "{m}");
    }
    assert!(first.peak_mailbox_concurrency <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_permission_and_scope_errors_stay_with_their_connection_or_mailbox() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let (main_id, _) = env.app("calgate");
    let (expired_id, expired_secret) = env.app("calgate-expired");
    let (scoped_id, scoped_secret) = env.app("calgate-scoped");
    let (s, bare) = env
        .control(
            Method::POST,
            "/apps",
            Some(json!({"name": "no-permission"})),
        )
        .await;
    assert_eq!(s, 201, "{bare}");
    let bare_id = bare["client_id"].as_str().expect("id");
    let bare_secret = bare["client_secret"].as_str().expect("secret");
    env.add_connection("wrong-secret", &main_id, "not-the-secret-value", None, None)
        .await;
    env.add_connection("expired", &expired_id, &expired_secret, None, None)
        .await;
    env.add_connection(
        "unknown-tenant",
        &main_id,
        "x",
        Some("no-such-tenant.example"),
        None,
    )
    .await;
    env.add_connection("no-permission", bare_id, bare_secret, None, None)
        .await;
    env.add_connection("scoped", &scoped_id, &scoped_secret, None, None)
        .await;

    let (s, group) = env
        .control(Method::GET, "/groups/calgate-scope@contoso.example", None)
        .await;
    assert_eq!(s, 200, "{group}");
    let members: Vec<String> = group["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_lowercase))
        .collect();
    let all: Vec<String> = env.mailboxes().into_iter().map(|(a, _)| a).collect();
    let inside = all
        .iter()
        .find(|a| members.contains(&a.to_lowercase()))
        .expect("a member")
        .clone();
    let outside: Vec<String> = all
        .iter()
        .filter(|a| !members.contains(&a.to_lowercase()))
        .cloned()
        .collect();
    // Expected class and a piece of the message, per mailbox.
    type Expected<'a> = Option<(&'a str, &'a str)>;
    let cases: Vec<(String, &str, Expected)> = vec![
        (outside[0].clone(), "contoso", None),
        (outside[1].clone(), "contoso", None),
        (
            outside[2].clone(),
            "wrong-secret",
            Some(("authentication", "AADSTS7000215")),
        ),
        (
            outside[3].clone(),
            "wrong-secret",
            Some(("authentication", "AADSTS7000215")),
        ),
        (
            outside[4].clone(),
            "expired",
            Some(("authentication", "AADSTS7000222")),
        ),
        (
            outside[5].clone(),
            "unknown-tenant",
            Some(("authentication", "AADSTS90002")),
        ),
        (
            outside[6].clone(),
            "no-permission",
            Some(("permission", "Calendars.Read")),
        ),
        (inside.clone(), "scoped", None),
        (outside[7].clone(), "scoped", Some(("permission", "scope"))),
    ];
    for (a, c, _) in &cases {
        env.link(a, c).await;
    }
    let engine = env.engine(4);
    let summary = env.sync(&engine, &SyncRequest::default()).await;
    assert_eq!(summary.totals.mailboxes_total, cases.len() as u64);
    let outcomes: Vec<(&str, &str, &str)> = summary
        .outcomes
        .iter()
        .map(|o| {
            (
                o.address.as_str(),
                o.connection.as_str(),
                o.failure
                    .as_ref()
                    .map(|f| f.message.as_str())
                    .unwrap_or("ok"),
            )
        })
        .collect();
    assert_eq!(
        summary.totals.mailboxes_failed,
        cases.iter().filter(|c| c.2.is_some()).count() as u64,
        "{summary}: {outcomes:#?}"
    );
    let statuses = env.store.statuses().await.expect("statuses");
    for (a, _, expect) in &cases {
        let s = statuses
            .iter()
            .find(|s| s.address.eq_ignore_ascii_case(a))
            .expect("status");
        match expect {
            None => {
                assert!(
                    s.last_success.is_some() && s.last_error.is_none(),
                    "{a}: {s:?}"
                );
                env.assert_equal(a).await;
            }
            Some((class, words)) => {
                let e = s
                    .last_error
                    .as_ref()
                    .unwrap_or_else(|| panic!("{a}: no error in {s:?}"));
                assert_eq!(e.kind.as_str(), *class, "{a}: {e:?}");
                assert!(
                    e.message.contains(words),
                    "{a}: '{}' should mention {words}",
                    e.message
                );
                assert!(s.last_success.is_none());
                assert!(
                    s.next_action.as_deref().is_some_and(|n| !n.is_empty()),
                    "{s:?}"
                );
                assert_eq!(s.consecutive_failures, 1);
                let id = env.mailbox_id(a).await;
                assert_eq!(env.store.count_instances(id).await.expect("count"), 0);
                assert!(env.store.cursor(id).await.expect("cursor").is_none());
            }
        }
    }
    assert_eq!(summary.failures().count(), 6, "{outcomes:#?}");
}

/// Snapshot of one mailbox: stored rows over the window, instance count, cursor.
async fn snapshot(env: &Env, a: &str) -> (Value, u64, Option<Cursor>) {
    let id = env.mailbox_id(a).await;
    let w = env.cursor_window(a).await;
    let rows = env.stored(a, w).await;
    (
        Value::String(format!("{rows:?}")),
        env.store.count_instances(id).await.expect("count"),
        env.store.cursor(id).await.expect("cursor"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_delta_link_leaves_the_store_as_it_was_and_the_next_run_heals() {
    let env = env(0, None).await;
    env.add_main_connection().await;
    let a = addresses(&env, 9, 1).remove(0);
    let id = env.link(&a, "contoso").await;
    let engine = env.engine(2);
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );
    random_changes(&env, &a, 10, 5).await;
    // Links that are not Graph's: refused before anything is sent or written.
    let garbage = [
        "this is not a link".to_owned(),
        "https://graph.attacker.example/v1.0/users/x/calendarView/delta?$deltatoken=x".to_owned(),
        format!(
            "{}/v1.0/users/{a}/calendarView/delta?$skiptoken",
            env.base()
        ),
    ];
    for (i, link) in garbage.into_iter().enumerate() {
        let good = env.store.cursor(id).await.expect("cursor").expect("cursor");
        let bad = ChangeSet {
            cursor: Some(Cursor {
                delta_link: link.clone(),
                ..good
            }),
            ..ChangeSet::default()
        };
        env.apply_as_another_process(id, &bad).await;
        let before = snapshot(&env, &a).await;
        let plan = engine
            .plan(&SyncRequest::default(), now())
            .await
            .expect("plan");
        assert!(
            matches!(plan.mailboxes[0].action, Action::Incremental { .. }),
            "{plan}"
        );
        let s = engine.execute(&plan, None).await.expect("sync");
        assert_eq!(
            s.totals.mailboxes_failed, 1,
            "{link}: {s}: {:?}",
            s.outcomes
        );
        let failure = s.outcomes[0].failure.clone().expect("failure");
        assert!(
            ["fatal", "invalid-data"].contains(&failure.kind.as_str()),
            "{link}: {failure:?}"
        );
        assert_eq!(
            snapshot(&env, &a).await,
            before,
            "{link}: the store changed"
        );
        // The next run does not trust that link: a full resync into a shadow heals.
        let plan = engine
            .plan(&SyncRequest::default(), now())
            .await
            .expect("plan");
        assert!(
            matches!(
                plan.mailboxes[0].action,
                Action::FullResync {
                    reason: ResyncReason::LastRoundUnreadable { .. }
                }
            ),
            "{plan}"
        );
        assert!(plan.to_string().contains("not trusted"), "{plan}");
        let s = engine.execute(&plan, None).await.expect("sync");
        assert!(s.is_success(), "{s}");
        env.assert_equal(&a).await;
        random_changes(&env, &a, 5, 11 + i as u64).await;
    }
    // A Graph link whose token Graph rejects (400 InvalidDeltaToken): the graph client calls
    // for a resync, which runs through a shadow and ends in equality.
    let good = env.store.cursor(id).await.expect("cursor").expect("cursor");
    let bad = ChangeSet {
        cursor: Some(Cursor {
            delta_link: format!(
                "{}/v1.0/users/{a}/calendarView/delta?$deltatoken=bm90LWEtdG9rZW4",
                env.base()
            ),
            ..good
        }),
        ..ChangeSet::default()
    };
    env.apply_as_another_process(id, &bad).await;
    let s = env.sync(&engine, &SyncRequest::default()).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(
        s.outcomes[0].report.round,
        Some(RoundKind::FullResync(ResyncReason::DeltaTokenExpired))
    );
    env.assert_equal(&a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_page_leaves_the_store_as_it_was_and_the_next_run_heals() {
    let env = env(0, None).await;
    let proxy = Proxy::start(env.base()).await;
    let (cid, secret) = env.app("calgate");
    let graph = format!("{}/v1.0", proxy.base);
    env.add_connection("proxied", &cid, &secret, None, Some(&graph))
        .await;
    let a = env.mailboxes()[0].0.clone();
    let id = env.link(&a, "proxied").await;
    // Small pages, so that a full round has several.
    let engine = env.engine_with(2, 5);
    assert!(
        env.sync(&engine, &SyncRequest::default())
            .await
            .is_success()
    );
    env.assert_equal(&a).await;

    // An incremental round whose (only) page is cut: nothing changes.
    random_changes(&env, &a, 15, 9).await;
    let before = snapshot(&env, &a).await;
    proxy.truncate_delta_page_after(0);
    let s = env.sync(&engine, &SyncRequest::default()).await;
    assert!(!proxy.armed());
    assert_eq!(s.totals.mailboxes_failed, 1, "{s}: {:?}", s.outcomes);
    let failure = s.outcomes[0].failure.clone().expect("failure");
    assert_eq!(failure.kind.as_str(), "invalid-data", "{failure:?}");
    assert_eq!(snapshot(&env, &a).await, before, "the store changed");

    // A full resync whose second page is cut: the shadow is dropped, the live set untouched.
    proxy.truncate_delta_page_after(1);
    let full = SyncRequest {
        mode: calgate_sync::SyncMode::Full,
        ..SyncRequest::default()
    };
    let s = env.sync(&engine, &full).await;
    assert_eq!(s.totals.mailboxes_failed, 1, "{s}");
    assert!(
        s.outcomes[0].report.pages >= 2,
        "{:?}",
        s.outcomes[0].report
    );
    assert_eq!(snapshot(&env, &a).await, before, "the store changed");
    assert!(
        env.store.shadow(id).await.expect("shadow").is_none(),
        "the shadow was aborted"
    );

    // The next run heals.
    let plan = engine
        .plan(&SyncRequest::default(), now())
        .await
        .expect("plan");
    assert!(
        matches!(plan.mailboxes[0].action, Action::FullResync { .. }),
        "{plan}"
    );
    let s = engine.execute(&plan, None).await.expect("sync");
    assert!(s.is_success(), "{s}");
    env.assert_equal(&a).await;
}
