//! `mailbox import`: real HTTP to the in-process simulator, a real SQLite file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use calgate_admin::import::{self, ImportOptions, ImportReport, Outcome};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::{RetryPolicy, Shared};
use calgate_sim::SimOptions;
use calgate_store::NewMailbox;
use calgate_testkit::SimExt;
use serde_json::json;

use crate::common::{self, Env};

async fn env(scale: usize, retry: Option<RetryPolicy>) -> Env {
    let shared = match retry {
        Some(r) => Shared::with_retry_policy(r),
        None => Shared::new(),
    }
    .expect("shared");
    Env::start(
        SimOptions {
            scale,
            scale_events: Some(0),
            ..common::demo(11)
        },
        reqwest::Client::new(),
        shared,
    )
    .await
}

impl Env {
    async fn import(&self, csv: &str, dry_run: bool) -> ImportReport {
        import::import_bytes(
            self.store.as_ref(),
            &self.shared,
            csv.as_bytes(),
            &ImportOptions {
                dry_run,
                ..ImportOptions::default()
            },
        )
        .await
        .expect("import runs")
    }

    /// The store's mailboxes: address → (connection, kind, external id, privacy).
    async fn linked(
        &self,
    ) -> BTreeMap<String, (String, MailboxKind, Option<String>, PrivacyPolicy)> {
        self.store
            .list_mailboxes()
            .await
            .expect("list")
            .into_iter()
            .map(|m| {
                (
                    m.address.to_lowercase(),
                    (m.connection, m.kind, m.external_id, m.privacy),
                )
            })
            .collect()
    }
}

/// One generated row and what the import must say about it.
#[derive(Clone)]
struct Case {
    line: String,
    address: String,
    outcome: Outcome,
    /// For good rows: what must be stored.
    stored: Option<(String, MailboxKind, Option<String>, PrivacyPolicy)>,
    /// A word the reason must contain.
    reason_has: &'static str,
}

fn good(
    addr: &str,
    kind_cell: &str,
    conn: &str,
    kind: MailboxKind,
    ext: Option<&str>,
    privacy: &str,
) -> Case {
    let p: PrivacyPolicy = if privacy.is_empty() {
        PrivacyPolicy::Full
    } else {
        privacy.parse().expect("privacy")
    };
    Case {
        line: format!("{addr},{kind_cell},{conn},{},{privacy}", ext.unwrap_or("")),
        address: addr.to_owned(),
        outcome: Outcome::Linked,
        stored: Some((conn.to_owned(), kind, ext.map(str::to_owned), p)),
        reason_has: "linked as",
    }
}

fn bad(line: String, addr: &str, outcome: Outcome, reason_has: &'static str) -> Case {
    Case {
        line,
        address: addr.to_owned(),
        outcome,
        stored: None,
        reason_has,
    }
}

/// A tiny deterministic generator (no rand dependency needed).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// The demo tenant's people, rooms and equipment by kind (from the simulator itself).
fn demo_mailboxes(env: &Env) -> Vec<(String, MailboxKind)> {
    let mut all = env.sim.creds().kinds();
    all.retain(|(a, _)| !a.starts_with("user0"));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_rows_with_ten_percent_bad_are_classified_linked_once_and_dry_run_writes_nothing()
{
    let started = Instant::now();
    let env = env(950, None).await;
    let (main_id, main_secret) = env.app("calgate");
    let (scoped_id, scoped_secret) = env.app("calgate-scoped");
    env.add_connection("contoso", &main_id, &main_secret).await;
    env.add_connection("scoped", &scoped_id, &scoped_secret)
        .await;
    // A restricted app: Calendars.Read for the organisation, but an Application Access Policy
    // restricts it to the calgate-scope group.
    let (restricted_id, restricted_secret) = env
        .api
        .new_app(
            "calgate-restricted",
            &["Calendars.Read", "User.Read.All", "MailboxSettings.Read"],
        )
        .await
        .0
        .pair();
    env.control_ok(
        reqwest::Method::PUT,
        &format!("/apps/{restricted_id}/access-policy"),
        Some(json!({"access_right": "RestrictAccess", "group": "calgate-scope@contoso.example"})),
    )
    .await;
    env.add_connection("restricted", &restricted_id, &restricted_secret)
        .await;
    // Five load users join the scoped app's RBAC scope: the scoped app (no MailboxSettings.Read)
    // must tell their kind from Graph's room list.
    let extra_scope: Vec<String> = (946..=950)
        .map(|n| format!("user{n:05}@contoso.example"))
        .collect();
    env.control_ok(
        reqwest::Method::POST,
        "/groups/calgate-scope@contoso.example/members",
        Some(json!({"members": extra_scope})),
    )
    .await;

    let scope: BTreeSet<&str> = [
        "marco.rossi@contoso.example",
        "eva.jansen@contoso.example",
        "tomasz.nowak@contoso.example",
        "priya.sharma@contoso.example",
        "room-amstel@contoso.example",
        "room-vondel@contoso.example",
        "equip-projector@contoso.example",
    ]
    .into_iter()
    .collect();
    let demo = demo_mailboxes(&env);
    assert_eq!(demo.len(), 37, "{demo:?}");
    let load = |n: usize| format!("user{n:05}@contoso.example");
    let kind_word = |k: MailboxKind| match k {
        MailboxKind::User => "user",
        MailboxKind::Room => "room",
        MailboxKind::Equipment => "equipment",
    };

    // ---- 900 good rows ----
    let mut cases: Vec<Case> = Vec::new();
    for (i, (addr, kind)) in demo.iter().enumerate() {
        let conn = if scope.contains(addr.as_str()) {
            "scoped"
        } else {
            "contoso"
        };
        // Half of them leave the kind to be detected (the scoped app, without
        // MailboxSettings.Read, cannot tell equipment from a user: those give it).
        let detect = i % 2 == 1 && !(conn == "scoped" && *kind == MailboxKind::Equipment);
        let kind_cell = if detect { "" } else { kind_word(*kind) };
        let privacy = ["", "busy-only", "full", "full-including-private"][i % 4];
        let ext = format!("ext-{i}");
        cases.push(good(addr, kind_cell, conn, *kind, Some(&ext), privacy));
    }
    for n in 1..=863 {
        let kind_cell = if n % 3 == 0 { "" } else { "user" };
        let ext = (n % 5 != 0).then(|| format!("emp-{n}"));
        let privacy = if n % 7 == 0 { "busy-only" } else { "" };
        cases.push(good(
            &load(n),
            kind_cell,
            "contoso",
            MailboxKind::User,
            ext.as_deref(),
            privacy,
        ));
    }
    assert_eq!(cases.len(), 900);

    // ---- 80 bad rows (plus 20 duplicates below) ----
    // 20 not found (valid addresses nobody has), 5 of them through the scoped app.
    for n in 1..=20 {
        let addr = format!("nobody{n:03}@contoso.example");
        let conn = if n <= 5 { "scoped" } else { "contoso" };
        cases.push(bad(
            format!("{addr},user,{conn},,"),
            &addr,
            Outcome::NotFound,
            "no such mailbox",
        ));
    }
    // 20 out of scope: 15 load users through the RBAC-scoped app, 5 through the access policy.
    for n in 864..=883 {
        let addr = load(n);
        let (conn, why) = if n < 879 {
            ("scoped", "RBAC scope")
        } else {
            ("restricted", "Application Access Policy")
        };
        cases.push(bad(
            format!("{addr},,{conn},,"),
            &addr,
            Outcome::OutOfScope,
            why,
        ));
    }
    // 20 wrong kind: 15 seen through mailboxSettings.userPurpose, 5 through Graph places.
    for n in 884..=898 {
        let addr = load(n);
        let k = if n % 2 == 0 { "room" } else { "equipment" };
        cases.push(bad(
            format!("{addr},{k},contoso,,"),
            &addr,
            Outcome::WrongKind,
            "userPurpose",
        ));
    }
    for addr in &extra_scope {
        cases.push(bad(
            format!("{addr},room,scoped,,"),
            addr,
            Outcome::WrongKind,
            "places",
        ));
    }
    // 20 malformed rows.
    let malformed: [(&str, &str, &str); 20] = [
        ("not-an-address,user,contoso,,", "not-an-address", "no '@'"),
        (
            "two@@contoso.example,user,contoso,,",
            "two@@contoso.example",
            "not an email",
        ),
        (
            "has space@contoso.example,user,contoso,,",
            "has space@contoso.example",
            "not an email",
        ),
        ("nodomain@,user,contoso,,", "nodomain@", "not an email"),
        (",user,contoso,,", "", "empty"),
        (
            "user00899@contoso.example,desk,contoso,,",
            "user00899@contoso.example",
            "unknown mailbox kind",
        ),
        (
            "user00900@contoso.example,Person,contoso,,",
            "user00900@contoso.example",
            "unknown mailbox kind",
        ),
        (
            "user00901@contoso.example,rooms,contoso,,",
            "user00901@contoso.example",
            "unknown mailbox kind",
        ),
        (
            "user00902@contoso.example,shared,contoso,,",
            "user00902@contoso.example",
            "unknown mailbox kind",
        ),
        (
            "user00903@contoso.example,user,contoso,,private",
            "user00903@contoso.example",
            "unknown privacy",
        ),
        (
            "user00904@contoso.example,user,contoso,,busy",
            "user00904@contoso.example",
            "unknown privacy",
        ),
        (
            "user00905@contoso.example,user,contoso,,none",
            "user00905@contoso.example",
            "unknown privacy",
        ),
        (
            "user00906@contoso.example,user,contoso,,free-busy",
            "user00906@contoso.example",
            "unknown privacy",
        ),
        (
            "user00907@contoso.example,user,fabrikam,,",
            "user00907@contoso.example",
            "unknown connection 'fabrikam'",
        ),
        (
            "user00908@contoso.example,user,Contoso,,",
            "user00908@contoso.example",
            "unknown connection",
        ),
        (
            "user00909@contoso.example,user,contoso-old,,",
            "user00909@contoso.example",
            "unknown connection",
        ),
        (
            "user00910@contoso.example,user,legacy,,",
            "user00910@contoso.example",
            "unknown connection",
        ),
        (
            "user00911@contoso.example,user,contoso",
            "user00911@contoso.example",
            "3 columns",
        ),
        (
            "user00912@contoso.example,user,contoso,e1,full,extra",
            "user00912@contoso.example",
            "6 columns",
        ),
        (
            "user00913@contoso.example",
            "user00913@contoso.example",
            "1 column where",
        ),
    ];
    for (line, addr, why) in malformed {
        cases.push(bad(line.to_owned(), addr, Outcome::BadRow, why));
    }
    assert_eq!(cases.len(), 980);

    // Shuffle, then put 20 duplicates (of good rows in the first half) into the second half.
    let mut rng = Lcg(42);
    for i in (1..cases.len()).rev() {
        let j = rng.below(i + 1);
        cases.swap(i, j);
    }
    let originals: Vec<usize> = (0..490)
        .filter(|i| cases[*i].outcome == Outcome::Linked)
        .take(20)
        .collect();
    assert_eq!(originals.len(), 20);
    for (k, orig) in originals.iter().enumerate() {
        let o = cases[*orig].clone();
        // Same address, other case, other values: still a duplicate.
        let upper = o.address.to_uppercase();
        let line = format!("{upper},,contoso,dup-{k},busy-only");
        cases.insert(
            500 + k * 20,
            bad(line, &upper, Outcome::BadRow, "duplicate of line"),
        );
    }
    assert_eq!(cases.len(), 1000);
    let bad_rows = cases
        .iter()
        .filter(|c| c.outcome != Outcome::Linked)
        .count();
    assert_eq!(bad_rows, 100, "exactly 10 % bad rows");

    let mut csv = String::from("address,kind,connection,external_id,privacy\n");
    for c in &cases {
        csv.push_str(&c.line);
        csv.push('\n');
    }

    // ---- dry run: verified and reported, nothing written ----
    let dry = env.import(&csv, true).await;
    assert!(dry.dry_run);
    check_report(&dry, &cases, Outcome::Linked);
    assert!(
        dry.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Linked)
            .all(|r| r.reason.contains("dry run"))
    );
    assert!(
        env.linked().await.is_empty(),
        "a dry run wrote to the store"
    );
    assert!(dry.render_text().starts_with("Dry run"));

    // ---- the import ----
    let t = Instant::now();
    let report = env.import(&csv, false).await;
    eprintln!("import of 1000 rows took {:?}", t.elapsed());
    for o in Outcome::ALL {
        if let Some(r) = report.rows_with(o).next() {
            eprintln!("{o}: {} — {}", r.address, r.reason);
        }
    }
    check_report(&report, &cases, Outcome::Linked);
    assert!(!report.passed());
    let s = &report.summary;
    assert_eq!(
        (
            s.rows,
            s.linked,
            s.already_linked,
            s.not_found,
            s.out_of_scope,
            s.wrong_kind,
            s.bad_row,
            s.not_verified,
            s.updated
        ),
        (1000, 900, 0, 20, 20, 20, 40, 0, 0),
        "{}",
        report.summary_line()
    );
    // Exactly the good rows are linked, with the file's (and Exchange's) values.
    let expected: BTreeMap<String, _> = cases
        .iter()
        .filter_map(|c| c.stored.clone().map(|s| (c.address.to_lowercase(), s)))
        .collect();
    let stored = env.linked().await;
    assert_eq!(stored.len(), 900);
    for (addr, want) in &expected {
        assert_eq!(stored.get(addr), Some(want), "{addr}");
    }
    // Spot-check the text and JSON forms.
    let text = report.render_text();
    assert_eq!(text.lines().count(), 1002, "header + 1000 rows + counts");
    assert!(
        text.contains(
            "1000 rows: 900 linked, 20 not found, 20 out of scope, 20 wrong kind, 40 bad row"
        ),
        "{}",
        report.summary_line()
    );
    let json = report.to_json();
    assert_eq!(json["summary"]["linked"], 900);
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(1000));
    let oos = report
        .rows_with(Outcome::OutOfScope)
        .next()
        .expect("an out-of-scope row");
    assert!(oos.code.as_deref() == Some("ErrorAccessDenied"), "{oos:?}");
    assert!(
        oos.detail.as_deref().is_some_and(|d| d.contains("403")),
        "{oos:?}"
    );

    // ---- a second import changes nothing ----
    let before = env.store.list_mailboxes().await.expect("list");
    let again = env.import(&csv, false).await;
    check_report(&again, &cases, Outcome::AlreadyLinked);
    assert_eq!(again.summary.already_linked, 900);
    assert_eq!(again.summary.linked + again.summary.updated, 0);
    assert_eq!(
        env.store.list_mailboxes().await.expect("list"),
        before,
        "re-import changed the store"
    );

    // ---- a changed external id / privacy is an update; dry run first ----
    let target = cases
        .iter()
        .find(|c| c.outcome == Outcome::Linked && c.address.starts_with("user0"))
        .expect("a load user")
        .address
        .clone();
    let changed = format!(
        "address,kind,connection,external_id,privacy\n{target},user,contoso,new-ext,busy-only\n"
    );
    let dry = env.import(&changed, true).await;
    assert_eq!(dry.rows[0].outcome, Outcome::Updated, "{:?}", dry.rows[0]);
    assert!(
        dry.rows[0].reason.contains("external id"),
        "{}",
        dry.rows[0].reason
    );
    assert_eq!(
        env.store.list_mailboxes().await.expect("list"),
        before,
        "dry run wrote"
    );
    let upd = env.import(&changed, false).await;
    assert_eq!(upd.rows[0].outcome, Outcome::Updated, "{:?}", upd.rows[0]);
    let m = env
        .store
        .mailbox(&target)
        .await
        .expect("read")
        .expect("linked");
    assert_eq!(m.external_id.as_deref(), Some("new-ext"));
    assert_eq!(m.privacy, PrivacyPolicy::BusyOnly);
    let before_id = before.iter().find(|b| b.address == m.address).map(|b| b.id);
    assert_eq!(before_id, Some(m.id), "an update keeps the mailbox");
    assert_eq!(
        env.import(&changed, false).await.rows[0].outcome,
        Outcome::AlreadyLinked
    );

    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

/// Every row has the expected outcome (good rows: `good`) and a reason with the expected words.
fn check_report(report: &ImportReport, cases: &[Case], good: Outcome) {
    assert_eq!(report.rows.len(), cases.len());
    let mut wrong = Vec::new();
    for (i, (row, case)) in report.rows.iter().zip(cases).enumerate() {
        let want = if case.outcome == Outcome::Linked {
            good
        } else {
            case.outcome
        };
        let reason_has = if case.outcome == Outcome::Linked {
            if good == Outcome::Linked {
                "linked as"
            } else {
                "already linked"
            }
        } else {
            case.reason_has
        };
        if row.line != i as u64 + 2
            || row.outcome != want
            || !row.reason.contains(reason_has)
            || !row.address.eq_ignore_ascii_case(&case.address)
        {
            wrong.push(format!(
                "line {} ({}): want {want:?} with '{reason_has}', got {:?}: {} [line field {}]",
                i + 2,
                case.line,
                row.outcome,
                row.reason,
                row.line
            ));
        }
        if row.outcome == Outcome::Linked || row.outcome == Outcome::AlreadyLinked {
            let kind = case.stored.as_ref().map(|s| s.1);
            if row.kind != kind {
                wrong.push(format!(
                    "line {}: kind {:?}, want {kind:?}",
                    i + 2,
                    row.kind
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows misclassified:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_and_broken_connections_are_not_verified_and_not_linked() {
    let env = env(
        0,
        Some(RetryPolicy {
            max_attempts: 2,
            max_total_wait: Duration::from_millis(200),
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(100),
        }),
    )
    .await;
    let (main_id, main_secret) = env.app("calgate");
    env.add_connection("contoso", &main_id, &main_secret).await;
    env.add_connection("broken", &main_id, "not-the-secret-value")
        .await;
    // An app with Calendars.Read only: kinds cannot be checked, the file's kind is trusted.
    let (bare_id, bare_secret) = env
        .api
        .new_app("calendars-only", &["Calendars.Read"])
        .await
        .0
        .pair();
    env.add_connection("bare", &bare_id, &bare_secret).await;
    // Every call to one mailbox answers 503 (Retry-After 0.3 s, longer than the policy waits).
    env.control_ok(
        reqwest::Method::PUT,
        "/faults",
        Some(
            json!({"error_rate": 1.0, "error_status": 503, "error_retry_after": "0.3",
                    "mailbox": "eva.jansen@contoso.example"}),
        ),
    )
    .await;
    // Already linked to another connection.
    env.store
        .link_mailbox(&NewMailbox {
            address: "lars.bakker@contoso.example".into(),
            connection: "bare".into(),
            kind: Some(MailboxKind::User),
            external_id: None,
            privacy: Some(PrivacyPolicy::Full),
        })
        .await
        .expect("pre-link");

    let csv = "address,connection,kind\n\
               eva.jansen@contoso.example,contoso,\n\
               anna.devries@contoso.example,contoso,\n\
               marco.rossi@contoso.example,broken,user\n\
               room-zuid@contoso.example,bare,room\n\
               equip-van@contoso.example,bare,\n\
               lars.bakker@contoso.example,contoso,user\n";
    let report = env.import(csv, false).await;
    let by: BTreeMap<&str, _> = report
        .rows
        .iter()
        .map(|r| (r.address.as_str(), r))
        .collect();
    let eva = by["eva.jansen@contoso.example"];
    assert_eq!(eva.outcome, Outcome::NotVerified, "{eva:?}");
    assert!(eva.reason.contains("again"), "{}", eva.reason);
    assert!(Outcome::NotVerified.as_str().contains("retry"));
    let marco = by["marco.rossi@contoso.example"];
    assert_eq!(marco.outcome, Outcome::NotVerified, "{marco:?}");
    assert!(
        marco.reason.contains("calgate connection test broken"),
        "{}",
        marco.reason
    );
    assert_eq!(marco.code.as_deref(), Some("AADSTS7000215"));
    assert_eq!(by["anna.devries@contoso.example"].outcome, Outcome::Linked);
    let zuid = by["room-zuid@contoso.example"];
    assert_eq!(
        (zuid.outcome, zuid.kind),
        (Outcome::Linked, Some(MailboxKind::Room))
    );
    assert!(zuid.reason.contains("not checked"), "{}", zuid.reason);
    let van = by["equip-van@contoso.example"];
    assert_eq!(
        (van.outcome, van.kind),
        (Outcome::Linked, Some(MailboxKind::User))
    );
    assert!(van.reason.contains("give the kind"), "{}", van.reason);
    let lars = by["lars.bakker@contoso.example"];
    assert_eq!(lars.outcome, Outcome::BadRow);
    assert!(
        lars.reason.contains("already linked to connection 'bare'"),
        "{}",
        lars.reason
    );

    let linked: BTreeSet<String> = env.linked().await.into_keys().collect();
    let want: BTreeSet<String> = [
        "anna.devries@contoso.example",
        "room-zuid@contoso.example",
        "equip-van@contoso.example",
        "lars.bakker@contoso.example",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        linked, want,
        "nothing half-linked, nothing unverified linked"
    );
    assert_eq!(
        env.store
            .mailbox("lars.bakker@contoso.example")
            .await
            .expect("read")
            .map(|m| m.connection),
        Some("bare".to_owned()),
        "a mailbox of another connection is left alone"
    );

    // Once the fault is gone a re-run links the rest.
    env.control_ok(reqwest::Method::DELETE, "/faults", None)
        .await;
    let again = env.import(csv, false).await;
    let eva = again
        .rows
        .iter()
        .find(|r| r.address.starts_with("eva"))
        .expect("eva");
    assert_eq!(eva.outcome, Outcome::Linked, "{eva:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_header_or_with_an_unknown_column_is_refused_whole() {
    let env = env(0, None).await;
    let (main_id, main_secret) = env.app("calgate");
    env.add_connection("contoso", &main_id, &main_secret).await;
    for (csv, says) in [
        ("anna.devries@contoso.example,user,contoso,,\n", "header"),
        (
            "address,kind,conection,external_id,privacy\n",
            "unknown column 'conection'",
        ),
        ("", "empty"),
    ] {
        let e = import::import_bytes(
            env.store.as_ref(),
            &env.shared,
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .await
        .expect_err("refused");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = import::import_bytes(
        env.store.as_ref(),
        &env.shared,
        b"\xff\xfe",
        &ImportOptions::default(),
    )
    .await
    .expect_err("not utf-8");
    assert!(e.to_string().contains("UTF-8"), "{e}");
    let missing = std::path::Path::new("/nonexistent/mailboxes.csv");
    let e = import::import_file(
        env.store.as_ref(),
        &env.shared,
        missing,
        &ImportOptions::default(),
    )
    .await
    .expect_err("no file");
    assert!(e.to_string().contains("/nonexistent/mailboxes.csv"), "{e}");
    assert!(env.linked().await.is_empty());

    // --connection supplies the connection when the file has no such column.
    let report = import::import_bytes(
        env.store.as_ref(),
        &env.shared,
        b"address\nanna.devries@contoso.example\n",
        &ImportOptions {
            default_connection: Some("contoso".into()),
            ..ImportOptions::default()
        },
    )
    .await
    .expect("imports");
    assert!(report.passed(), "{}", report.render_text());
}
