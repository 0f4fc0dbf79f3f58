//! calgate on PostgreSQL as an operator runs it: `calgate store copy` of an SQLite
//! installation, and three `calgate serve` processes sharing one database.
//!
//! These tests need a PostgreSQL server: they are `#[ignore]`d in a plain `cargo test` and run
//! by `.ci/run` (step 13) with `CALGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DB` (a user who
//! may CREATE DATABASE). Each test creates its own database and drops it afterwards.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calgate_core::MailboxKind;
use calgate_sim::{Seed, SimOptions};
use calgate_store::{MasterKey, NewCredential, OpenOptions, Store};
use calgate_testkit::{Cli, SimExt, assert_exit, data_dir, stderr, stdout};
use common::bookings::{put, truth};
use jiff::Timestamp;
use serde_json::Value;

const CALGATE: Cli = Cli::new(env!("CARGO_BIN_EXE_calgate"));

/// The server the tests create their databases on. Unset: the test fails, saying so.
fn admin_url() -> String {
    std::env::var("CALGATE_TEST_POSTGRES").expect(
        "CALGATE_TEST_POSTGRES is not set: give a PostgreSQL URL whose user may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A database of its own for one test, dropped (with its connections) at the end.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sqlx::Connection as _;
        let admin = admin_url();
        let name = format!("calgate_cli_{}", calgate_store::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.split('?').next().unwrap();
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = format!("{server}/{name}");
        PgDatabase { admin, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection as _;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `calgate --database URL ARGS` with `envs` and nothing of the caller's calgate settings.
fn at_database(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(CALGATE.bin());
    cmd.arg("--database").arg(url).args(args);
    for k in ["CALGATE_MASTER_KEY", "CALGATE_DATA_DIR", "RUST_LOG"] {
        cmd.env_remove(k);
    }
    cmd.envs(envs.iter().copied()).stdin(Stdio::null());
    cmd
}

fn run_at_database(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    at_database(url, args, envs).output().unwrap()
}

/// `calgate store copy` of the demo's data directory to PostgreSQL, then `calgate events` (and
/// `mailbox list`, and `connection list`, which opens every sealed secret) give the same
/// output against both; a second copy into the filled database is refused, and no password
/// of the URL is ever printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: CALGATE_TEST_POSTGRES=postgres://… (see the file's doc)"]
async fn store_copy_of_the_demo_then_every_command_reads_the_same() {
    let dir = data_dir();
    let d = dir.path();
    let o = CALGATE.run(d, &["demo", "--no-serve"], &[]);
    assert_exit(&o, 0);
    let db = PgDatabase::create().await;
    // Trust authentication ignores the password; it must not be printed all the same.
    let password = "n0t-Printed-pw";
    let with_password = db
        .url
        .replacen("://postgres@", &format!("://postgres:{password}@"), 1);
    let o = CALGATE.run(d, &["store", "copy", "--to", &with_password], &[]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("every table's count verified"), "{out}");
    assert!(out.contains("instances"), "{out}");
    assert!(
        !out.contains(password) && !stderr(&o).contains(password),
        "{out}"
    );
    println!("{out}");
    // Into a database that holds calgate's data: refused, nothing changed.
    let o = CALGATE.run(d, &["store", "copy", "--to", &db.url], &[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not empty"), "{err}");

    let key_file = d.join(calgate_store::MASTER_KEY_FILE);
    let key_env = [("CALGATE_MASTER_KEY_FILE", key_file.to_str().unwrap())];
    let both = |args: &[&str]| {
        let a = CALGATE.run(d, args, &[]);
        let b = run_at_database(&db.url, args, &key_env);
        assert_exit(&a, 0);
        assert_exit(&b, 0);
        assert_eq!(
            stdout(&a),
            stdout(&b),
            "{args:?}: SQLite and PostgreSQL differ"
        );
        stdout(&a)
    };
    let list: Value = serde_json::from_str(&both(&["mailbox", "list", "--json"])).unwrap();
    let addresses: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addresses.len(), 37);
    both(&["connection", "list"]);
    let mut events = 0;
    for a in &addresses {
        let out = both(&[
            "events",
            a,
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--json",
        ]);
        events += serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len();
    }
    assert!(events > 1000, "the demo's events were compared ({events})");
    println!(
        "store copy: {} mailboxes, {events} events the same through SQLite and PostgreSQL",
        addresses.len()
    );
    // Without the key, or with another one: one clear line, never garbage.
    let o = run_at_database(&db.url, &["mailbox", "list"], &[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("CALGATE_MASTER_KEY"), "{}", stderr(&o));
    let (_, other) = MasterKey::generate().unwrap();
    let o = run_at_database(
        &db.url,
        &["mailbox", "list"],
        &[("CALGATE_MASTER_KEY", other.as_str())],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("does not match the database"),
        "{}",
        stderr(&o)
    );
}

/// A `calgate serve` process, killed with SIGKILL when dropped (or by the test).
struct Serve(Option<Child>);

impl Serve {
    fn start(url: &str, key: &str, cadence: u64) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = at_database(
            url,
            &["serve", "--listen", &format!("127.0.0.1:{port}")],
            &[
                ("CALGATE_MASTER_KEY", key),
                ("CALGATE_SYNC_CADENCE_SECONDS", &cadence.to_string()),
                ("CALGATE_SYNC_JITTER_SECONDS", "0"),
                ("CALGATE_LOG_LEVEL", "warn"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        Serve(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Each mailbox's requests as the simulator counted them.
async fn sim_requests(control: &calgate_testkit::Control) -> HashMap<String, u64> {
    let stats = control.ok(reqwest::Method::GET, "/stats", None).await;
    stats["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap_or_default().to_lowercase(),
                m["requests"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Three `calgate serve` processes on one PostgreSQL database and a simulated tenant of 2,000
/// mailboxes:
/// - over three cadence rounds every mailbox is synced once per round: the simulator's counter
///   of each mailbox, sampled every second, never moves by more than one at a time, never
///   twice within half a cadence, moves at least three times, and as often as calgate's own
///   round counter (give or take the round astride each end of the watch);
/// - 1,000 bookings pushed by the three together are each created exactly once, although one
///   instance is killed with SIGKILL while they push; the two others finish the outbox within
///   one claim period (60 s) and sync its mailboxes within a cadence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: CALGATE_TEST_POSTGRES=postgres://… (see the file's doc)"]
async fn three_instances_share_the_work_once_and_survive_kill_9() {
    let cadence: u64 = std::env::var("CALGATE_TEST_CADENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let sim = calgate_testkit::start_sim(SimOptions {
        seed: Seed::Demo,
        rng: 9,
        scale: 2000 - 37,
        scale_events: Some(3),
        latency_ms: 5,
        ..SimOptions::default()
    })
    .await;
    let control = sim.control();
    let creds = sim.creds();
    let db = PgDatabase::create().await;
    let (key, key_text) = MasterKey::generate().unwrap();
    let store: Arc<dyn Store> = calgate_store::open_with(
        &db.url,
        OpenOptions {
            master_key: Some(key),
            create: true,
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap();
    let (id, secret) = creds.first_app().pair();
    store
        .add_connection(&calgate_testkit::sim_connection(
            &sim,
            "contoso",
            &id,
            vec![NewCredential::secret(secret, None)],
        ))
        .await
        .unwrap();
    let mailboxes: Vec<(String, MailboxKind)> = creds.kinds();
    assert_eq!(mailboxes.len(), 2000);
    for (address, kind) in &mailboxes {
        calgate_testkit::link_full(store.as_ref(), address, "contoso", *kind).await;
    }

    // The first round: every mailbox once.
    let started = Instant::now();
    let mut instances: Vec<Serve> = (0..3)
        .map(|_| Serve::start(&db.url, key_text.as_str(), cadence))
        .collect();
    loop {
        let statuses = store.statuses().await.unwrap();
        let done = statuses.iter().filter(|s| s.last_success.is_some()).count();
        if done == 2000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the first sync did not finish in 300 s ({done} of 2000)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first = started.elapsed();
    let by: HashMap<String, usize> = store
        .statuses()
        .await
        .unwrap()
        .iter()
        .filter_map(|s| s.last_round_by.clone())
        .fold(HashMap::new(), |mut m, b| {
            *m.entry(b).or_default() += 1;
            m
        });
    println!(
        "first sync of 2000 mailboxes by 3 instances: {:.1} s; rounds per instance {:?}",
        first.as_secs_f64(),
        by.values().collect::<Vec<_>>()
    );
    assert_eq!(by.len(), 3, "every instance took a share: {by:?}");

    // Three cadence rounds, watched every second.
    let rounds_before: HashMap<_, _> = store
        .statuses()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.mailbox_id, s.counters.rounds))
        .collect();
    let watch = Duration::from_secs(cadence * 7 / 2 + 5);
    let t0 = Instant::now();
    let mut last = sim_requests(&control).await;
    let start_counts = last.clone();
    let mut moves: HashMap<String, Vec<(f64, u64)>> = HashMap::new();
    while t0.elapsed() < watch {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sim_requests(&control).await;
        let at = t0.elapsed().as_secs_f64();
        for (a, n) in &now {
            let before = last.get(a).copied().unwrap_or(0);
            if *n > before {
                moves.entry(a.clone()).or_default().push((at, n - before));
            }
        }
        last = now;
    }
    let statuses = store.statuses().await.unwrap();
    let mut doubled = Vec::new();
    let mut too_close = Vec::new();
    let mut too_few = Vec::new();
    let mut disagree = Vec::new();
    let mut total = 0;
    for s in &statuses {
        let a = s.address.to_lowercase();
        let m = moves.get(&a).cloned().unwrap_or_default();
        let counted =
            last.get(&a).copied().unwrap_or(0) - start_counts.get(&a).copied().unwrap_or(0);
        total += counted;
        if m.iter().any(|(_, n)| *n > 1) {
            doubled.push(a.clone());
        }
        if m.windows(2)
            .any(|w| w[1].0 - w[0].0 < cadence as f64 / 2.0 - 2.0)
        {
            too_close.push(a.clone());
        }
        if counted < 3 {
            too_few.push(a.clone());
        }
        // calgate's counter moves when a round's status is written, the simulator's when its
        // request arrives: a round astride either end of the watch counts on one side only.
        let rounds = s.counters.rounds - rounds_before.get(&s.mailbox_id).copied().unwrap_or(0);
        if rounds.abs_diff(counted) > 1 {
            disagree.push((a.clone(), rounds, counted));
        }
    }
    println!(
        "{} s watched: {total} incremental rounds over 2000 mailboxes; doubled {}, closer than half a cadence {}, fewer than 3 {}, calgate and the simulator disagree {}",
        watch.as_secs(),
        doubled.len(),
        too_close.len(),
        too_few.len(),
        disagree.len()
    );
    assert!(
        doubled.is_empty(),
        "synced twice at once: {:?}",
        &doubled[..doubled.len().min(5)]
    );
    assert!(
        too_close.is_empty(),
        "synced twice in a round: {:?}",
        &too_close[..too_close.len().min(5)]
    );
    assert!(
        too_few.is_empty(),
        "missed rounds: {:?}",
        &too_few[..too_few.len().min(5)]
    );
    assert!(
        disagree.is_empty(),
        "{:?}",
        &disagree[..disagree.len().min(5)]
    );

    // Push 1,000 bookings into 50 mailboxes; kill one instance with SIGKILL while the three
    // push them (each write takes 300 ms now, so that writes are in flight when it dies).
    control
        .ok(
            reqwest::Method::PATCH,
            "/settings",
            Some(&serde_json::json!({"latency_ms": 300})),
        )
        .await;
    let victim = instances[1].pid();
    let targets: Vec<(String, MailboxKind)> = mailboxes.iter().take(50).cloned().collect();
    let mut expected: HashSet<(String, String)> = HashSet::new();
    for i in 0..1000usize {
        let a = &targets[i % 50];
        let subject = format!("Shared booking {i}");
        let to: Vec<&(String, MailboxKind)> = if i % 5 == 0 {
            vec![a, &targets[(i + 7) % 50]]
        } else {
            vec![a]
        };
        for t in &to {
            expected.insert((t.0.to_lowercase(), subject.clone()));
        }
        put(
            store.as_ref(),
            &format!("shared-{i}"),
            &subject,
            1 + (i % 40) as i64,
            &to,
        )
        .await;
    }
    let writes = expected.len();
    let pushing = Instant::now();
    loop {
        let pending = store.pending_pushes().await.unwrap();
        if pending < writes as u64 * 9 / 10 {
            break;
        }
        assert!(
            pushing.elapsed() < Duration::from_secs(120),
            "pushing did not start ({pending} pending)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Entries claimed now (pending but not due): writes in flight, some of them the victim's.
    let pending = store.pending_pushes().await.unwrap();
    let due = store
        .due_pushes(Timestamp::now(), 10_000)
        .await
        .unwrap()
        .len() as u64;
    instances[1].kill();
    let killed_at = Instant::now();
    let killed_ts = Timestamp::now();
    println!(
        "killed instance pid {victim} with SIGKILL after {:.1} s of pushing; {} of {pending} pending entries were claimed (in flight) at that moment",
        pushing.elapsed().as_secs_f64(),
        pending.saturating_sub(due)
    );
    while store.pending_pushes().await.unwrap() > 0 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(90),
            "the outbox was not finished within a claim period of the kill ({} pending)",
            store.pending_pushes().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outbox_done = killed_at.elapsed();
    // Every mailbox is synced again by the two others within a cadence (and a lease).
    loop {
        let statuses = store.statuses().await.unwrap();
        let behind = statuses
            .iter()
            .filter(|s| s.last_attempt.is_none_or(|t| t < killed_ts))
            .count();
        if behind == 0 {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(cadence + 70),
            "{behind} mailboxes were not synced within a cadence and a lease of the kill"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resynced = killed_at.elapsed();
    let after = store.statuses().await.unwrap();
    assert!(
        after.iter().all(|s| s
            .last_round_by
            .as_deref()
            .is_none_or(|b| !b.contains(&format!("pid {victim} ")))),
        "no round after the kill is the dead instance's"
    );
    let t = truth(&control, &targets).await;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (a, items) in &t {
        for (s, _) in items {
            if s.starts_with("Shared booking ") {
                *seen.entry((a.to_lowercase(), s.clone())).or_default() += 1;
            }
        }
    }
    let duplicates: usize = seen.values().map(|n| n.saturating_sub(1)).sum();
    let lost = expected.iter().filter(|k| !seen.contains_key(*k)).count();
    let synced = store
        .list_bookings(Some(calgate_store::BookingState::Synced), None, 1001)
        .await
        .unwrap()
        .len();
    println!(
        "push through 3 instances, one killed: {writes} writes of 1000 bookings; outbox finished {:.1} s after the kill, every mailbox synced again {:.1} s after it; duplicates {duplicates}, lost {lost}, bookings synced {synced}/1000",
        outbox_done.as_secs_f64(),
        resynced.as_secs_f64()
    );
    assert_eq!(duplicates, 0);
    assert_eq!(lost, 0);
    assert_eq!(synced, 1000);
    drop(instances);
    store.close().await;
}
