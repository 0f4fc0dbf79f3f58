//! Test settings, Verify and sync of EWS connections when something is wrong: each fault gives
//! one ✗ line with its fix, one line per mailbox from sync, and the other mailboxes keep
//! syncing.

use calgate_admin::diagnose::{self, Purpose, TestOptions};
use calgate_admin::{Checklist, Status};
use calgate_core::{EwsAuth, MailboxKind};
use calgate_sync::SyncRequest;
use reqwest::Method;
use serde_json::json;

use crate::common::{ANNA, MARCO, demo_env};

const SVC: &str = "CONTOSO\\svc-calgate";
const ROOMS: &str = "CONTOSO\\svc-rooms";
const GOOD_ROOMS: [&str; 2] = ["room-camden@contoso.example", "room-soho@contoso.example"];
const UNKNOWN: &str = "nobody.here@contoso.example";

fn opts(mailbox: &str) -> TestOptions {
    TestOptions {
        mailbox: Some(mailbox.to_owned()),
        ..TestOptions::default()
    }
}

/// Exactly one ✗, on `id`, with a fix that says `fix_has`; the lines after it are skipped.
fn one_cross(list: &Checklist, id: &str, code: &str, fix_has: &str) {
    let failed: Vec<_> = list.failed().collect();
    assert_eq!(failed.len(), 1, "{}", list.render());
    let f = failed[0];
    assert_eq!(f.id, id, "{}", list.render());
    assert_eq!(f.code.as_deref(), Some(code), "{}", list.render());
    let text = format!("{} {}", f.summary, f.fix.as_deref().unwrap_or(""));
    assert!(
        text.contains(fix_has),
        "the fix should say {fix_has:?}: {}",
        list.render()
    );
    let at = list
        .checks
        .iter()
        .position(|c| c.id == id)
        .expect("the failed line");
    assert!(
        list.checks[at + 1..]
            .iter()
            .all(|c| c.status == Status::Skip),
        "{}",
        list.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ews_fault_gives_one_cross_and_one_sync_line_and_the_rest_keeps_syncing() {
    let env = demo_env(11).await;
    let store = env.store.as_ref();
    let add = |name: &str, user: &str, auth: EwsAuth, imp: bool| {
        calgate_testkit::sim_ews_connection(&env.sim, name, user, auth, imp)
    };
    // A healthy connection with two rooms: they must sync whatever else fails.
    store
        .add_connection(&add("good", SVC, EwsAuth::Ntlm, true))
        .await
        .expect("add");
    for r in GOOD_ROOMS {
        env.link(r, "good", MailboxKind::Room).await;
    }
    let list = diagnose::test_connection(
        store,
        "good",
        &TestOptions {
            purpose: Purpose::Push,
            ..opts(GOOD_ROOMS[0])
        },
    )
    .await
    .expect("test");
    assert!(list.passed(), "{}", list.render());
    for id in ["config", "dns", "tls", "auth", "server", "mailbox", "write"] {
        assert_eq!(
            list.get(id).map(|c| c.status),
            Some(Status::Pass),
            "{id}: {}",
            list.render()
        );
    }

    // Wrong password.
    let mut wrong = add("wrong-password", SVC, EwsAuth::Ntlm, true);
    if let Some(e) = wrong.ews.as_mut() {
        e.password = calgate_core::SecretString::new("not-the-password");
    }
    store.add_connection(&wrong).await.expect("add");
    env.link(ANNA, "wrong-password", MailboxKind::User).await;
    let list = diagnose::test_connection(store, "wrong-password", &opts(ANNA))
        .await
        .expect("test");
    one_cross(&list, "auth", "HttpUnauthorized", "password");

    // Missing impersonation right: svc-rooms may impersonate only the HQ room list.
    store
        .add_connection(&add("rooms-only", ROOMS, EwsAuth::Ntlm, true))
        .await
        .expect("add");
    env.link(MARCO, "rooms-only", MailboxKind::User).await;
    let list = diagnose::test_connection(store, "rooms-only", &opts(MARCO))
        .await
        .expect("test");
    one_cross(
        &list,
        "mailbox",
        "ErrorImpersonateUserDenied",
        "ApplicationImpersonation",
    );

    // Unknown mailbox, on the healthy connection.
    env.link(UNKNOWN, "good", MailboxKind::User).await;
    let list = diagnose::test_connection(store, "good", &opts(UNKNOWN))
        .await
        .expect("test");
    one_cross(
        &list,
        "mailbox",
        "ErrorNonExistentMailbox",
        "check the address",
    );
    let v = calgate_admin::verify::verify_mailbox(store, "good", UNKNOWN, &Default::default())
        .await
        .expect("verify");
    assert_eq!(
        v.failed().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["exists"],
        "{}",
        v.render()
    );

    // An NTLM-only server and a connection set to Basic.
    store
        .add_connection(&add("basic", SVC, EwsAuth::Basic, true))
        .await
        .expect("add");
    let priya = "priya.sharma@contoso.example";
    env.link(priya, "basic", MailboxKind::User).await;
    env.control_ok(Method::PUT, "/ews/auth", Some(json!({"basic": false})))
        .await;
    let list = diagnose::test_connection(store, "basic", &opts(priya))
        .await
        .expect("test");
    one_cross(&list, "auth", "BasicNotOffered", "--auth ntlm");

    // One sync: one clear line for each broken mailbox, the healthy rooms synced.
    let summary = env
        .engine_with(4, 50)
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let line = |a: &str| {
        let o = summary
            .outcomes
            .iter()
            .find(|o| o.address == a)
            .expect("an outcome");
        o.failure.as_ref().map(|f| f.message.clone())
    };
    for r in GOOD_ROOMS {
        assert_eq!(line(r), None, "{r} must keep syncing: {summary}");
    }
    let expect = [
        (ANNA, "password"),
        (MARCO, "ApplicationImpersonation"),
        (UNKNOWN, "check the address"),
        (priya, "--auth ntlm"),
    ];
    for (a, has) in expect {
        let msg = line(a).unwrap_or_else(|| panic!("{a} should fail: {summary}"));
        assert!(!msg.contains('\n') && msg.contains(has), "{a}: {msg}");
    }
    assert_eq!(summary.failures().count(), 4, "{summary}");
    for r in GOOD_ROOMS {
        let m = store.mailbox(r).await.expect("read").expect("linked");
        let n = store
            .instances(m.id, jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX)
            .await
            .expect("instances")
            .len();
        assert!(n > 0, "{r} synced nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_one_cross_and_the_ca_file_fixes_it() {
    let sim = calgate_testkit::start_sim(calgate_sim::SimOptions {
        tls: true,
        ..calgate_testkit::demo(12)
    })
    .await;
    let t = calgate_testkit::temp_store().await;
    let store = t.store.as_ref();
    let mut c = calgate_testkit::sim_ews_connection(&sim, "tls", SVC, EwsAuth::Ntlm, true);
    store.add_connection(&c).await.expect("add");
    let room = GOOD_ROOMS[0];
    calgate_testkit::link_full(store, room, "tls", MailboxKind::Room).await;
    let list = diagnose::test_connection(store, "tls", &opts(room))
        .await
        .expect("test");
    one_cross(&list, "tls", "TlsUntrusted", "--ca-cert");
    let shared = calgate_graph::Shared::new().expect("shared");
    let engine =
        calgate_testkit::engine(&t.store, &shared, 2, 50, calgate_sync::DeletionGuard::off());
    let summary = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let f = summary.failures().next().expect("the room fails");
    assert!(
        f.failure
            .as_ref()
            .is_some_and(|x| x.message.contains("--ca-cert")),
        "{summary}"
    );

    // With the simulator's CA: every line passes.
    store.remove_connection("tls").await.ok();
    store.unlink_mailbox(room).await.expect("unlink");
    store.remove_connection("tls").await.expect("remove");
    c.ca_cert_pem = sim.credentials()["ca_cert_pem"].as_str().map(str::to_owned);
    assert!(c.ca_cert_pem.is_some());
    store.add_connection(&c).await.expect("add");
    calgate_testkit::link_full(store, room, "tls", MailboxKind::Room).await;
    let list = diagnose::test_connection(store, "tls", &opts(room))
        .await
        .expect("test");
    assert!(list.passed(), "{}", list.render());
    assert!(
        list.get("tls")
            .is_some_and(|c| c.summary.contains("trusted")),
        "{}",
        list.render()
    );
}
