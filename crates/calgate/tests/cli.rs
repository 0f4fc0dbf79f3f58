//! The `calgate` binary, run as a child process: `calgate sim` start-up, banner, credentials
//! file, real HTTP against it, exit codes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use calgate_testkit::{Cli, Control, Credentials, SimExt, assert_exit, data_dir, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_calgate");
/// `calgate --data-dir DIR …` with a clean environment.
const CALGATE: Cli = Cli::new(BIN);

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("calgate-cli-{}-{nanos}-{name}", std::process::id()))
}

/// Kills the child when dropped (also on a failed assertion).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `calgate sim ARGS` and waits (bounded) for the banner's first line; returns the base URL.
fn start_sim(args: &[&str]) -> (Running, String, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = Running(child);
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("banner within 60 s");
    let base = first
        .strip_prefix("calgate sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();
    (running, base, rx)
}

#[tokio::test]
async fn sim_serves_demo_tenant_and_writes_credentials() {
    let creds_path = temp_path("creds.json");
    let (_child, base, rx) = start_sim(&[
        "--listen",
        "127.0.0.1:0",
        "--rng",
        "5",
        "--credentials-out",
        creds_path.to_str().unwrap(),
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(
        !base.ends_with(":0"),
        "the banner must show the bound port: {base}"
    );

    // The rest of the banner: no secrets.
    let mut banner = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        let done = l.starts_with("Press Ctrl-C");
        banner.push(l);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains("tenant:"), "{banner}");
    assert!(banner.contains(creds_path.to_str().unwrap()), "{banner}");

    let text = std::fs::read_to_string(&creds_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    }
    let creds = Credentials::from_json(&text);
    let _ = std::fs::remove_file(&creds_path);
    assert_eq!(creds.graph_url, format!("{base}/v1.0"));
    let tenant = &creds.tenant_id;
    assert!(banner.contains(tenant));
    let app = creds.first_app();
    assert_eq!(app.name, "calgate");
    let secret = app.client_secret.as_str();
    assert!(!secret.is_empty());
    assert!(
        !banner.contains(secret),
        "the banner must not print secrets"
    );

    // A token over real HTTP, then a room's events.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let authority = &creds.authority;
    let r = http
        .post(format!("{authority}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let token = tok["access_token"].as_str().unwrap();

    let room = creds.first_of("room");
    let r = http
        .get(format!("{}/users/{room}/events", creds.graph_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body["value"].as_array().unwrap().is_empty(), "{body}");
}

#[test]
fn sim_port_in_use_fails_with_one_actionable_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["sim", "--seed", "empty", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&addr) && lines[0].contains("in use"),
        "{stderr}"
    );
    assert!(lines[0].contains("--listen"), "{stderr}");
    drop(busy);
}

#[test]
fn sim_unwritable_credentials_file_fails_with_exit_1() {
    let out = Command::new(BIN)
        .args([
            "sim",
            "--seed",
            "empty",
            "--listen",
            "127.0.0.1:0",
            "--credentials-out",
            "/nonexistent-calgate-dir/creds.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write credentials"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec!["sim", "--seed", "bogus"],
        vec!["sim", "--listen", "not-an-address"],
        vec!["sim", "--scale", "-1"],
        vec!["--data-dir", "x", "--database", "sqlite://y", "sim"],
        vec!["frobnicate"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(BIN).args(["sim", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--credentials-out"));
}

// ---------------------------------------------------------------------------------------------
// connection / mailbox / sync / events / demo / bench
// ---------------------------------------------------------------------------------------------

use std::process::Output;

use calgate_sim::{Seed, SimHandle, SimOptions};
use serde_json::json;

/// Every byte of every file in `dir`, recursively.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// `connection add NAME` against the simulator with the secret in an environment variable.
async fn add_sim_connection(
    dir: &std::path::Path,
    sim: &SimHandle,
    name: &str,
    tenant: &str,
    client_id: &str,
    secret: &str,
) {
    CALGATE
        .add_sim_connection(dir, sim, name, tenant, client_id, secret)
        .await;
}

async fn link(dir: &std::path::Path, address: &str, connection: &str, extra: &[&str]) {
    let mut args = vec!["mailbox", "link", address, "--connection", connection];
    args.extend_from_slice(extra);
    let o = CALGATE.run_async(dir, &args, &[]).await;
    assert_exit(&o, 0);
}

#[test]
fn connection_add_list_remove_never_shows_the_secret() {
    let dir = data_dir();
    let d = dir.path();
    let secret = "cg8Q~not-a-real-secret-0123456789abcdefXYZ";
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "contoso",
            "--tenant",
            "contoso.onmicrosoft.com",
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
            "--client-secret-env",
            "CG_SECRET",
            "--secret-expires",
            "2031-01-31",
        ],
        &[("CG_SECRET", secret)],
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("connection 'contoso' added"),
        "{}",
        stdout(&o)
    );

    // From a file, in a national cloud.
    let file = d.join("secret.txt");
    std::fs::write(&file, format!("{secret}-2\n")).unwrap();
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "gov",
            "--tenant",
            "t2",
            "--client-id",
            "c2",
            "--client-secret-file",
            file.to_str().unwrap(),
            "--cloud",
            "usgov",
        ],
        &[],
    );
    assert_exit(&o, 0);
    std::fs::remove_file(&file).unwrap();

    let o = CALGATE.run(d, &["connection", "list"], &[]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("contoso") && out.contains("contoso.onmicrosoft.com"),
        "{out}"
    );
    assert!(
        out.contains("11111111-2222-3333-4444-555555555555"),
        "{out}"
    );
    assert!(out.contains("https://login.microsoftonline.com"), "{out}");
    assert!(out.contains("https://login.microsoftonline.us"), "{out}");
    assert!(out.contains("2031-01-31, in "), "{out}");
    assert!(!out.contains(secret), "{out}");

    // Sealed at rest: not in the database, its WAL or anything else in the data dir.
    let bytes = all_bytes(d);
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, secret),
        "the secret is stored in plain text"
    );
    assert!(
        !contains(&bytes, "not-a-real-secret"),
        "part of the secret is stored in plain text"
    );

    // A taken name, an unset variable: exit 1, one line.
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "contoso",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret-env",
            "CG_SECRET",
        ],
        &[("CG_SECRET", "x")],
    );
    assert_exit(&o, 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("calgate: ") && stderr(&o).contains("already exists"));
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "other",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret-env",
            "CG_UNSET_VAR",
        ],
        &[],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("CG_UNSET_VAR"), "{}", stderr(&o));
    // No credential, two credentials, a secret on the command line: bad usage.
    for args in [
        vec![
            "connection",
            "add",
            "x",
            "--tenant",
            "t",
            "--client-id",
            "c",
        ],
        vec![
            "connection",
            "add",
            "x",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret-env",
            "A",
            "--client-secret-file",
            "f",
        ],
        vec![
            "connection",
            "add",
            "x",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ],
        vec![
            "connection",
            "add",
            "x",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret-env",
            "A",
            "--cloud",
            "mars",
        ],
    ] {
        let o = CALGATE.run(d, &args, &[("A", "v")]);
        assert_exit(&o, 2);
    }
    // Plain http to a host that is not this machine is refused.
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "x",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret-env",
            "A",
            "--authority",
            "http://login.example.com",
        ],
        &[("A", "v")],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("https://"), "{}", stderr(&o));

    // A connection in use cannot be removed; an unused one can, once.
    let o = CALGATE.run(
        d,
        &[
            "mailbox",
            "link",
            "a@contoso.example",
            "--connection",
            "gov",
        ],
        &[],
    );
    assert_exit(&o, 0);
    let o = CALGATE.run(d, &["connection", "remove", "gov"], &[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("unlink"), "{}", stderr(&o));
    let o = CALGATE.run(d, &["connection", "remove", "contoso"], &[]);
    assert_exit(&o, 0);
    let o = CALGATE.run(d, &["connection", "remove", "contoso"], &[]);
    assert_exit(&o, 1);
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = CALGATE.run(d, &["connection", "list"], &[]);
    assert!(!stdout(&o).contains("contoso"));
}

#[test]
fn mailbox_link_list_unlink() {
    let dir = data_dir();
    let d = dir.path();
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "c",
            "--tenant",
            "t",
            "--client-id",
            "i",
            "--client-secret-env",
            "S",
        ],
        &[("S", "secret-value-xyz")],
    );
    assert_exit(&o, 0);
    // Unknown connection: exit 1 with the fix.
    let o = CALGATE.run(
        d,
        &[
            "mailbox",
            "link",
            "room-a@x.example",
            "--connection",
            "nope",
        ],
        &[],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("calgate connection add nope"),
        "{}",
        stderr(&o)
    );
    let o = CALGATE.run(
        d,
        &[
            "mailbox",
            "link",
            "Room-A@x.example",
            "--connection",
            "c",
            "--kind",
            "room",
            "--external-id",
            "R-101",
            "--privacy",
            "busy-only",
        ],
        &[],
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("linked Room-A@x.example (room)"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run(
        d,
        &["mailbox", "link", "bob@x.example", "--connection", "c"],
        &[],
    );
    assert_exit(&o, 0);
    // Linking again updates.
    let o = CALGATE.run(
        d,
        &[
            "mailbox",
            "link",
            "bob@x.example",
            "--connection",
            "c",
            "--kind",
            "equipment",
        ],
        &[],
    );
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("updated"), "{}", stdout(&o));
    // Linking again without settings changes nothing: the room stays a busy-only room with
    // its external id (defaults apply only when a mailbox is first linked).
    let o = CALGATE.run(
        d,
        &["mailbox", "link", "room-a@x.example", "--connection", "c"],
        &[],
    );
    assert_exit(&o, 0);
    assert!(
        stdout(&o).starts_with("already linked, nothing changed: Room-A@x.example (room)")
            && stdout(&o).contains("privacy busy-only")
            && stdout(&o).contains("external id R-101"),
        "{}",
        stdout(&o)
    );

    let o = CALGATE.run(d, &["mailbox", "list", "--json"], &[]);
    assert_exit(&o, 0);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let room = list
        .iter()
        .find(|m| m["address"] == "Room-A@x.example")
        .unwrap();
    assert_eq!(room["kind"], "room");
    assert_eq!(room["privacy"], "busy-only");
    assert_eq!(room["external_id"], "R-101");
    assert_eq!(room["connection"], "c");
    assert_eq!(room["events"], 0);
    let bob = list
        .iter()
        .find(|m| m["address"] == "bob@x.example")
        .unwrap();
    assert_eq!(bob["kind"], "equipment");
    assert_eq!(bob["privacy"], "full");

    let o = CALGATE.run(d, &["mailbox", "list"], &[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("never synced"), "{}", stdout(&o));

    // Case-insensitive addresses.
    let o = CALGATE.run(d, &["mailbox", "unlink", "room-a@X.example"], &[]);
    assert_exit(&o, 0);
    let o = CALGATE.run(d, &["mailbox", "unlink", "room-a@x.example"], &[]);
    assert_exit(&o, 1);
    assert_eq!(stderr(&o).lines().count(), 1);
    for args in [
        vec![
            "mailbox",
            "link",
            "x@y",
            "--connection",
            "c",
            "--kind",
            "bogus",
        ],
        vec![
            "mailbox",
            "link",
            "x@y",
            "--connection",
            "c",
            "--privacy",
            "some",
        ],
        vec!["mailbox", "link", "not-an-address", "--connection", "c"],
        vec!["mailbox", "link", "x@y"],
    ] {
        let o = CALGATE.run(d, &args, &[]);
        assert_exit(&o, 2);
    }
    // Hostile addresses: one validation (shared with import), one printable line, nothing
    // echoed raw to the terminal, nothing stored.
    let long = format!("{}@x.example", "a".repeat(10_000));
    for bad in [
        long.as_str(),
        "\"quoted\"@x.example",
        "a/b@x.example",
        "a?b@x.example",
        "a#b@x.example",
        "evil\u{1b}]0;pwned\u{7}\u{1b}[2J@x.example",
    ] {
        let o = CALGATE.run(d, &["mailbox", "link", bad, "--connection", "c"], &[]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("not an email address"), "{err}");
        assert!(!err.contains('\u{1b}') && err.len() < 500, "{err:?}");
    }
    let o = CALGATE.run(d, &["mailbox", "list", "--json"], &[]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing was linked");
}

/// A Graph `{dateTime, timeZone: "UTC"}` as an instant.
fn graph_utc(v: &Value) -> jiff::Timestamp {
    assert_eq!(v["timeZone"], "UTC", "{v}");
    let dt: jiff::civil::DateTime = v["dateTime"].as_str().unwrap().parse().unwrap();
    dt.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_then_events_json_equals_the_simulator_and_busy_only_hides_details() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(d, &sim, "contoso", &sim.tenant_id(), &id, &secret).await;
    let room = "room-amstel@contoso.example";
    let person = "anna.devries@contoso.example";
    link(d, room, "contoso", &["--kind", "room"]).await;
    link(d, person, "contoso", &["--privacy", "busy-only"]).await;

    let o = CALGATE.run_async(d, &["sync", "--dry-run"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("{room}: initial sync")),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("nothing was changed"));

    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "", "no progress bar and no logs off a terminal");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one summary line: {out}");
    assert!(
        out.contains("synced 2 of 2 mailboxes") && out.contains("requests"),
        "{out}"
    );

    let now = jiff::Timestamp::now();
    let from = (now - jiff::SignedDuration::from_hours(24 * 20))
        .round(jiff::Unit::Second)
        .unwrap();
    let to = (now + jiff::SignedDuration::from_hours(24 * 100))
        .round(jiff::Unit::Second)
        .unwrap();
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let o = CALGATE
        .run_async(
            d,
            &["events", room, "--from", &from_s, "--to", &to_s, "--json"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let ours: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours = ours.as_array().unwrap();

    let truth = sim.control().events(room, &from_s, &to_s).await;
    let truth = truth["value"].as_array().unwrap();
    assert!(
        truth.len() >= 5,
        "the room should have events: {}",
        truth.len()
    );
    let mut ours_ids: Vec<&str> = ours
        .iter()
        .map(|e| e["exchange_id"].as_str().unwrap())
        .collect();
    let mut truth_ids: Vec<&str> = truth.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ours_ids.sort_unstable();
    truth_ids.sort_unstable();
    assert_eq!(ours_ids, truth_ids);
    for t in truth {
        let id = t["id"].as_str().unwrap();
        let e = ours.iter().find(|e| e["exchange_id"] == id).unwrap();
        let ctx = format!("{id}: ours {e} truth {t}");
        assert_eq!(e["mailbox"], room, "{ctx}");
        // Private and confidential items are reduced to busy-only under the default policy.
        if matches!(t["sensitivity"].as_str(), Some("private" | "confidential")) {
            assert!(
                e.get("subject").is_none() && e.get("attendees").is_none(),
                "{ctx}"
            );
            assert_eq!(e["details_hidden"], true, "{ctx}");
        } else {
            assert_eq!(e["subject"], t["subject"], "{ctx}");
            assert_eq!(e["location"], t["location"]["displayName"], "{ctx}");
            assert_eq!(
                e["organizer"]["address"], t["organizer"]["emailAddress"]["address"],
                "{ctx}"
            );
        }
        assert_eq!(e["type"], t["type"], "{ctx}");
        assert_eq!(e["series_master_id"], t["seriesMasterId"], "{ctx}");
        assert_eq!(e["ical_uid"], t["iCalUId"], "{ctx}");
        assert_eq!(e["is_all_day"], t["isAllDay"], "{ctx}");
        assert_eq!(e["show_as"], t["showAs"], "{ctx}");
        assert_eq!(e["sensitivity"], t["sensitivity"], "{ctx}");
        assert_eq!(e["web_link"], t["webLink"], "{ctx}");
        assert_eq!(e["change_key"], t["changeKey"], "{ctx}");
        let busy = !matches!(t["showAs"].as_str().unwrap(), "free" | "workingElsewhere");
        assert_eq!(e["busy"], busy, "{ctx}");
        assert_eq!(e["origin"], "exchange", "{ctx}");
        if t["isAllDay"] == true {
            assert!(
                e["start_date"].is_string() && e["end_date"].is_string(),
                "{ctx}"
            );
        } else {
            assert!(
                e.get("start_date").is_none() && e.get("end_date").is_none(),
                "{ctx}"
            );
            let start: jiff::Timestamp = e["start"].as_str().unwrap().parse().unwrap();
            let end: jiff::Timestamp = e["end"].as_str().unwrap().parse().unwrap();
            assert_eq!(start, graph_utc(&t["start"]), "{ctx}");
            assert_eq!(end, graph_utc(&t["end"]), "{ctx}");
            assert!(e["start"].as_str().unwrap().ends_with('Z'), "{ctx}");
        }
        assert!(
            e["time_zone"].as_str().is_some_and(|z| !z.is_empty()),
            "{ctx}"
        );
        assert!(e["id"].as_str().is_some_and(|z| z.len() == 36), "{ctx}");
        assert!(e["last_modified"].is_string(), "{ctx}");
    }

    // busy-only: times and busy, no subject, location, body, organizer or attendees keys.
    let o = CALGATE
        .run_async(
            d,
            &["events", person, "--from", &from_s, "--to", &to_s, "--json"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let hidden: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hidden = hidden.as_array().unwrap();
    assert!(!hidden.is_empty());
    for e in hidden {
        for k in [
            "subject",
            "location",
            "body_preview",
            "organizer",
            "attendees",
        ] {
            assert!(e.get(k).is_none(), "{k} present under busy-only: {e}");
        }
        for k in [
            "start",
            "end",
            "busy",
            "show_as",
            "exchange_id",
            "type",
            "time_zone",
        ] {
            assert!(e.get(k).is_some(), "{k} missing under busy-only: {e}");
        }
    }
    let o = CALGATE
        .run_async(
            d,
            &[
                "events",
                person,
                "--from",
                &from_s,
                "--to",
                &to_s,
                "--time-zone",
                "Europe/Amsterdam",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let table = stdout(&o);
    assert!(
        table.contains("(busy)") && table.contains("Europe/Amsterdam"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("START"),
        "{table}"
    );

    // The table for the room shows subjects.
    let o = CALGATE
        .run_async(d, &["events", room, "--from", &from_s, "--to", &to_s], &[])
        .await;
    assert_exit(&o, 0);
    let first = truth
        .iter()
        .find(|t| t["sensitivity"] == "normal")
        .and_then(|t| t["subject"].as_str())
        .unwrap();
    assert!(stdout(&o).contains(first), "{}", stdout(&o));

    // --explain: one event's history, from the change log.
    let one = ours
        .iter()
        .find(|e| e["subject"].is_string())
        .expect("an event with a subject");
    let id = one["exchange_id"].as_str().unwrap();
    let o = CALGATE
        .run_async(
            d,
            &["events", room, "--explain", id, "--time-zone", "UTC"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(text.contains(one["subject"].as_str().unwrap()), "{text}");
    assert!(text.contains("first stored by a sync round"), "{text}");
    assert!(text.contains("made by a person, in Exchange"), "{text}");
    let o = CALGATE
        .run_async(d, &["events", room, "--explain", id, "--json"], &[])
        .await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["now"]["exchange_id"], one["exchange_id"]);
    assert_eq!(v["history"].as_array().map(Vec::len), Some(1), "{v}");
    let o = CALGATE
        .run_async(d, &["events", room, "--explain", "AAMk-no-such-event"], &[])
        .await;
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains("calgate does not hold this event") && text.contains("check the id"),
        "{text}"
    );
    let o = CALGATE
        .run_async(
            d,
            &["events", room, "--explain", id, "--from", &from_s],
            &[],
        )
        .await;
    assert_exit(&o, 2);

    // A second sync is incremental; unknown mailbox and reversed range are errors.
    let o = CALGATE
        .run_async(d, &["sync", "--mailbox", room], &[])
        .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("synced 1 of 1 mailbox"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE
        .run_async(d, &["sync", "--mailbox", "ghost@contoso.example"], &[])
        .await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("calgate mailbox link ghost@contoso.example"),
        "{}",
        stderr(&o)
    );
    let o = CALGATE
        .run_async(d, &["events", room, "--from", &to_s, "--to", &from_s], &[])
        .await;
    assert_exit(&o, 2);
    let o = CALGATE
        .run_async(
            d,
            &["events", room, "--from", "yesterday", "--to", &to_s],
            &[],
        )
        .await;
    assert_exit(&o, 2);
    let o = CALGATE
        .run_async(
            d,
            &[
                "events",
                "ghost@contoso.example",
                "--from",
                &from_s,
                "--to",
                &to_s,
            ],
            &[],
        )
        .await;
    assert_exit(&o, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failures_name_cause_and_fix_while_other_mailboxes_sync() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let tenant = sim.tenant_id();
    let (main_id, main_secret) = sim.creds().app("calgate").pair();
    let (ro_id, ro_secret) = sim.creds().app("calgate-readonly").pair();
    let (exp_id, exp_secret) = sim.creds().app("calgate-expired").pair();
    let (sc_id, sc_secret) = sim.creds().app("calgate-scoped").pair();
    // An app without any permission, made through the control API.
    let (nr_id, nr_secret) = sim.control().new_app("calgate-noroles", &[]).await.0.pair();

    add_sim_connection(d, &sim, "good", &tenant, &main_id, &main_secret).await;
    add_sim_connection(d, &sim, "readonly", &tenant, &ro_id, &ro_secret).await;
    add_sim_connection(
        d,
        &sim,
        "wrongsecret",
        &tenant,
        &main_id,
        "abc8Q~this-is-not-the-secret-value-000",
    )
    .await;
    add_sim_connection(d, &sim, "expired", &tenant, &exp_id, &exp_secret).await;
    add_sim_connection(
        d,
        &sim,
        "notenant",
        "no-such-tenant.example",
        &main_id,
        &main_secret,
    )
    .await;
    add_sim_connection(d, &sim, "noroles", &tenant, &nr_id, &nr_secret).await;
    add_sim_connection(d, &sim, "scoped", &tenant, &sc_id, &sc_secret).await;

    let ok = [
        ("room-noord@contoso.example", "good"),
        ("liam.oconnor@contoso.example", "good"),
        ("room-thames@contoso.example", "readonly"),
        ("marco.rossi@contoso.example", "scoped"), // inside the RBAC scope
    ];
    let failing = [
        ("room-soho@contoso.example", "wrongsecret", "AADSTS7000215"),
        (
            "room-jordaan@contoso.example",
            "wrongsecret",
            "AADSTS7000215",
        ),
        ("equip-van@contoso.example", "expired", "AADSTS7000222"),
        ("equip-camera@contoso.example", "notenant", "AADSTS90002"),
        ("equip-laptops@contoso.example", "noroles", "Calendars.Read"),
        (
            "room-zuid@contoso.example",
            "scoped",
            "New-ManagementRoleAssignment",
        ),
    ];
    for (a, c) in ok {
        link(d, a, c, &[]).await;
    }
    // Linked without verification (verification would refuse most of them).
    for (a, c, _) in failing {
        link(d, a, c, &["--no-verify"]).await;
    }

    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    // One line per cause: the wrong secret's two mailboxes share one.
    assert_eq!(lines.len(), 5, "{err}");
    for l in &lines {
        assert!(l.starts_with("calgate: sync failed for "), "{l}");
        assert!(!l.contains("<mailbox>"), "no placeholder: {l}");
    }
    let line_of = |conn: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(&format!("connection '{conn}'")))
            .unwrap_or_else(|| panic!("no line for {conn}: {err}"))
    };
    let wrong = line_of("wrongsecret");
    assert!(
        wrong.contains("2 mailboxes") && wrong.contains("AADSTS7000215"),
        "{wrong}"
    );
    assert!(wrong.contains("Certificates & secrets"), "the fix: {wrong}");
    let expired = line_of("expired");
    assert!(
        expired.contains("AADSTS7000222") && expired.contains("expired"),
        "{expired}"
    );
    assert!(
        expired.contains("create a new secret"),
        "the fix: {expired}"
    );
    let nt = line_of("notenant");
    assert!(
        nt.contains("AADSTS90002") && nt.contains("no-such-tenant.example"),
        "{nt}"
    );
    assert!(nt.contains("Directory (tenant) ID"), "the fix: {nt}");
    let nr = line_of("noroles");
    assert!(
        nr.contains("equip-laptops@contoso.example") && nr.contains("Calendars.Read"),
        "{nr}"
    );
    assert!(nr.contains("Grant admin consent"), "the fix: {nr}");
    let sc = line_of("scoped");
    assert!(
        sc.contains("room-zuid@contoso.example") && sc.contains("403"),
        "{sc}"
    );
    assert!(sc.contains("New-ManagementRoleAssignment"), "the fix: {sc}");
    for (_, _, needle) in failing {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    for s in [
        &main_secret,
        &ro_secret,
        &exp_secret,
        &sc_secret,
        &nr_secret,
    ] {
        assert!(!err.contains(s.as_str()) && !stdout(&o).contains(s.as_str()));
    }
    let out = stdout(&o);
    assert!(out.contains("synced 4 of 10 mailboxes"), "{out}");

    // The others were synced and stored; the failures are in the status.
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    assert_exit(&o, 0);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (a, _) in ok {
        let m = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == a)
            .unwrap();
        assert!(m["events"].as_u64().unwrap() > 0, "{m}");
        assert!(
            m["last_error"].is_null() && m["last_success"].is_string(),
            "{m}"
        );
    }
    for (a, _, _) in failing {
        let m = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == a)
            .unwrap();
        assert_eq!(m["events"], 0, "{m}");
        assert!(m["last_error"]["message"].is_string(), "{m}");
    }
    let now = jiff::Timestamp::now();
    let from = (now - jiff::SignedDuration::from_hours(24 * 20)).to_string();
    let to = (now + jiff::SignedDuration::from_hours(24 * 100)).to_string();
    let o = CALGATE
        .run_async(
            d,
            &[
                "events",
                "room-thames@contoso.example",
                "--from",
                &from,
                "--to",
                &to,
                "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v.as_array().unwrap().is_empty());
}

#[test]
fn demo_no_serve_links_everything_syncs_and_prints_a_summary() {
    let dir = data_dir();
    let d = dir.path();
    let o = CALGATE.run(d, &["demo", "--no-serve"], &[]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("linked 37 mailboxes (25 users, 8 rooms, 4 equipment)"),
        "{out}"
    );
    assert!(out.contains("synced 37 of 37 mailboxes"), "{out}");
    for k in [
        "mailboxes:",
        "events:",
        "requests:",
        "time:",
        "try: calgate --data-dir",
    ] {
        assert!(out.contains(k), "{k}: {out}");
    }
    assert!(
        !out.contains("~"),
        "no secret value (they contain '~'): {out}"
    );
    let o = CALGATE.run(d, &["connection", "list"], &[]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("demo") && stdout(&o).contains("37"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run(d, &["mailbox", "list", "--json"], &[]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 37);
    assert_eq!(list.iter().filter(|m| m["kind"] == "room").count(), 8);
    assert_eq!(list.iter().filter(|m| m["kind"] == "equipment").count(), 4);
    assert!(
        list.iter().all(|m| m["events"].as_u64().unwrap() > 0),
        "every mailbox has events"
    );
}

#[test]
fn bench_sync_prints_the_figures() {
    let o = Command::new(BIN)
        .args([
            "bench",
            "sync",
            "--mailboxes",
            "3",
            "--events-per-mailbox",
            "70",
            "--latency-ms",
            "5",
            "--concurrency",
            "2",
        ])
        .env_remove("CALGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let out = stdout(&o);
    for k in [
        "wall time:",
        "requests sent:",
        "requests per second:",
        "peak concurrency:",
        "429 responses:",
        "peak RSS:",
        "round-trip lower bound:",
        "mailboxes synced:     3 of 3",
    ] {
        assert!(out.contains(k), "{k}: {out}");
    }
}

#[test]
fn bench_console_signs_in_and_times_every_page() {
    let o = Command::new(BIN)
        .args([
            "bench",
            "console",
            "--mailboxes",
            "4",
            "--events-per-mailbox",
            "70",
            "--requests",
            "2",
        ])
        .env_remove("CALGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let out = stdout(&o);
    for k in [
        "bench console: 4 mailboxes",
        "overview ",
        "mailbox (busiest: week + events)",
        "why isn't it here (subject)",
        "event history ",
        "doctor ",
        "database integrity check (run in the background for the Doctor page):",
        "the database passed its integrity check",
        "slowest page:",
    ] {
        assert!(out.contains(k), "{k}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credential_over_tls_with_an_extra_ca() {
    let sim = calgate_testkit::start_sim(SimOptions {
        tls: true,
        ..calgate_testkit::demo(7)
    })
    .await;
    assert!(sim.base_url.starts_with("https://"), "{}", sim.base_url);
    let dir = data_dir();
    let d = dir.path();
    let (id, _) = sim.creds().app("calgate").pair();
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(sim.ca_cert_pem.as_deref().unwrap().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let made = Control::with_client(http, &sim.base_url)
        .ok(
            reqwest::Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({"generate": true})),
        )
        .await;
    let key = made["private_key_pem"].as_str().unwrap();
    let cert = made["cert_pem"].as_str().unwrap();
    let pem = d.join("app.pem");
    std::fs::write(&pem, format!("{key}\n{cert}\n")).unwrap();
    let ca = d.join("sim-ca.pem");
    std::fs::write(&ca, sim.ca_cert_pem.as_deref().unwrap()).unwrap();
    let graph = format!("{}/v1.0", sim.base_url);
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "add",
                "cert",
                "--tenant",
                &sim.tenant_id(),
                "--client-id",
                &id,
                "--certificate",
                pem.to_str().unwrap(),
                "--authority",
                &sim.base_url,
                "--graph-url",
                &graph,
                "--ca-cert",
                ca.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("certificate "), "{}", stdout(&o));
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    std::fs::remove_file(&pem).unwrap();
    assert!(
        !contains(&all_bytes(d), &key_body[..40]),
        "the private key is stored in plain text"
    );
    let o = CALGATE.run_async(d, &["connection", "list"], &[]).await;
    assert!(
        stdout(&o).contains("certificate #1 (thumbprint ") && stdout(&o).contains(", in 7"),
        "{}",
        stdout(&o)
    );
    link(
        d,
        "room-vondel@contoso.example",
        "cert",
        &["--kind", "room"],
    )
    .await;
    // The admin commands trust the connection's extra CA too.
    let o = CALGATE
        .run_async(d, &["connection", "test", "cert"], &[])
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("✓ certificate #"), "{}", stdout(&o));
    let o = CALGATE
        .run_async(d, &["rooms", "discover", "--connection", "cert"], &[])
        .await;
    assert_exit(&o, 0);
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("synced 1 of 1 mailbox"),
        "{}",
        stdout(&o)
    );
    // Removing the connection removes its CA file too.
    let o = CALGATE
        .run_async(
            d,
            &["mailbox", "unlink", "room-vondel@contoso.example"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let o = CALGATE
        .run_async(d, &["connection", "remove", "cert"], &[])
        .await;
    assert_exit(&o, 0);
    assert!(!d.join("ca").join("cert.pem").exists());
}

// ---------------------------------------------------------------------------------------------
// Administrator flows (issue 4): connection test, mailbox verify, import, rooms discover,
// secret rotation, doctor, connected accounts. The library (calgate-admin) has the thorough
// tests; these run the real binary end to end.
// ---------------------------------------------------------------------------------------------

/// The one `calgate:` line on stderr (asserts there is exactly one).
#[track_caller]
fn one_error_line(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    assert!(lines[0].starts_with("calgate: "), "{err}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_test_and_mailbox_verify_print_checklists() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let tenant = sim.tenant_id();
    let (main_id, main_secret) = sim.creds().app("calgate").pair();
    let (ro_id, ro_secret) = sim.creds().app("calgate-readonly").pair();
    add_sim_connection(d, &sim, "good", &tenant, &main_id, &main_secret).await;
    add_sim_connection(
        d,
        &sim,
        "wrong",
        &tenant,
        &main_id,
        "abc8Q~this-is-not-the-secret-value-000",
    )
    .await;
    add_sim_connection(d, &sim, "readonly", &tenant, &ro_id, &ro_secret).await;
    link(d, "liam.oconnor@contoso.example", "good", &[]).await;

    // A correct setup: every step ✓, exit 0; --json says the same.
    let o = CALGATE
        .run_async(d, &["connection", "test", "good"], &[])
        .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("Test settings: connection 'good'"), "{out}");
    assert!(!out.contains('✗') && !out.contains("  ! "), "{out}");
    assert!(out.contains("✓ token acquired"), "{out}");
    assert!(out.contains("liam.oconnor@contoso.example"), "{out}");
    let o = CALGATE
        .run_async(d, &["connection", "test", "good", "--json"], &[])
        .await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 8, "{v}");
    assert!(checks.iter().all(|c| c["status"] == "pass"), "{v}");

    // The wrong secret: a ✗ with Entra's code and the fix; one line on stderr; exit 1.
    let o = CALGATE
        .run_async(d, &["connection", "test", "wrong"], &[])
        .await;
    assert_exit(&o, 1);
    let out = stdout(&o);
    assert!(out.contains("✗ secret #"), "{out}");
    assert!(
        out.contains("Certificates & secrets")
            && out.contains("calgate connection secret add wrong --client-secret-env VAR"),
        "the fix: {out}"
    );
    let line = one_error_line(&o);
    assert!(
        line.starts_with("calgate: connection test of 'wrong' failed: ")
            && line.contains("AADSTS7000215")
            && line.contains("fix: "),
        "{line}"
    );
    let o = CALGATE
        .run_async(d, &["connection", "test", "wrong", "--json"], &[])
        .await;
    assert_exit(&o, 1);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap()
        .clone();
    assert_eq!(failed["code"], "AADSTS7000215", "{v}");
    assert!(failed["fix"].as_str().unwrap().contains("Value"), "{v}");

    // Calendars.Read is not enough for pushing.
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "test",
                "readonly",
                "--for",
                "push",
                "--mailbox",
                "room-thames@contoso.example",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("Calendars.ReadWrite"), "{}", stdout(&o));
    for args in [
        vec!["connection", "test", "good", "--for", "sideways"],
        vec!["connection", "test"],
    ] {
        assert_exit(&CALGATE.run_async(d, &args, &[]).await, 2);
    }
    let o = CALGATE
        .run_async(d, &["connection", "test", "nosuch"], &[])
        .await;
    assert_exit(&o, 1);
    assert!(one_error_line(&o).contains("no connection named 'nosuch'"));

    // Verify: a room is a room; an unknown address fails with the reason.
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "verify",
                "room-vondel@contoso.example",
                "--connection",
                "good",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("is a room mailbox"), "{out}");
    assert!(!out.contains('✗'), "{out}");
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "verify",
                "equip-van@contoso.example",
                "--connection",
                "good",
                "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kind = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "kind")
        .unwrap();
    assert!(
        kind["summary"].as_str().unwrap().contains("equipment"),
        "{v}"
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "verify",
                "nobody@contoso.example",
                "--connection",
                "good",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("✗ nobody@contoso.example was not found"));
    let line = one_error_line(&o);
    assert!(
        line.contains("verification of nobody@contoso.example failed"),
        "{line}"
    );
    // Nothing secret anywhere.
    for s in [&main_secret, &ro_secret] {
        assert!(!out.contains(s.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reports_each_row_and_is_idempotent_then_rooms_discover_links() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(d, &sim, "good", &sim.tenant_id(), &id, &secret).await;
    let csv = d.join("staff.csv");
    std::fs::write(
        &csv,
        "address,kind,connection,external_id,privacy\n\
         anna.devries@contoso.example,user,good,E-1,full\n\
         room-amstel@contoso.example,room,good,R-1,busy-only\n\
         not-an-address,user,good,,\n\
         nobody@contoso.example,user,good,,\n",
    )
    .unwrap();
    let file = csv.to_str().unwrap();

    // A dry run writes nothing.
    let o = CALGATE
        .run_async(d, &["mailbox", "import", file, "--dry-run"], &[])
        .await;
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("dry run"), "{}", stdout(&o));
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    assert_eq!(o.stdout.trim_ascii(), b"[]");

    let o = CALGATE
        .run_async(d, &["mailbox", "import", file], &[])
        .await;
    assert_exit(&o, 1);
    let out = stdout(&o);
    let row = |addr: &str| -> String {
        out.lines()
            .find(|l| l.contains(addr))
            .unwrap_or_else(|| panic!("no row for {addr}: {out}"))
            .to_owned()
    };
    assert!(row("anna.devries@").contains("linked"), "{out}");
    assert!(row("room-amstel@").contains("linked"), "{out}");
    assert!(row("not-an-address").contains("bad row"), "{out}");
    assert!(row("nobody@").contains("not found"), "{out}");
    assert!(
        out.contains("4 rows: 2 linked, 1 not found, 1 bad row"),
        "{out}"
    );
    let line = one_error_line(&o);
    assert!(line.contains("2 of 4 rows"), "{line}");

    // Only the good rows, as the file says.
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let amstel = list
        .iter()
        .find(|m| m["address"] == "room-amstel@contoso.example")
        .unwrap();
    assert_eq!(amstel["kind"], "room");
    assert_eq!(amstel["privacy"], "busy-only");
    assert_eq!(amstel["external_id"], "R-1");

    // Again: nothing changes; --json is the report.
    let o = CALGATE
        .run_async(d, &["mailbox", "import", file, "--json"], &[])
        .await;
    assert_exit(&o, 1);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["already_linked"], 2, "{v}");
    assert_eq!(v["summary"]["linked"], 0, "{v}");
    let o = CALGATE
        .run_async(
            d,
            &["mailbox", "import", d.join("none.csv").to_str().unwrap()],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    assert!(one_error_line(&o).contains("cannot read"));

    // Room lists: show, then link every room; room-amstel keeps its privacy.
    let o = CALGATE
        .run_async(d, &["rooms", "discover", "--connection", "good"], &[])
        .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Room list rooms-hq@contoso.example"), "{out}");
    assert!(out.contains("2 room lists, 8 rooms (add --link"), "{out}");
    let o = CALGATE
        .run_async(
            d,
            &["rooms", "discover", "--connection", "good", "--link"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("8 rooms: 7 linked, 1 already linked"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "rooms",
                "discover",
                "--connection",
                "good",
                "--room-list",
                "rooms-lon@contoso.example",
                "--link",
                "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["already_linked"], 3, "{v}");
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.iter().filter(|m| m["kind"] == "room").count(), 8);
    let amstel = list
        .iter()
        .find(|m| m["address"] == "room-amstel@contoso.example")
        .unwrap();
    assert_eq!(amstel["privacy"], "busy-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_doctor_thresholds_and_learned_expiry() {
    let dir = data_dir();
    let d = dir.path();
    let in_days = |days: i64| {
        (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days)).to_string()
    };
    // Offline: a connection whose secret expires in 60 days.
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "add",
                "contoso",
                "--tenant",
                "contoso.onmicrosoft.com",
                "--client-id",
                "11111111-2222-3333-4444-555555555555",
                "--client-secret-env",
                "CG_SECRET",
                "--secret-expires",
                &in_days(60),
            ],
            &[("CG_SECRET", "old8Q~not-a-real-secret-0123456789abcdef")],
        )
        .await;
    assert_exit(&o, 0);
    let o = CALGATE.run_async(d, &["doctor"], &[]).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("✓ secret #1"), "{}", stdout(&o));

    // The Secret ID pasted as the value is refused with the explanation.
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "secret",
                "add",
                "contoso",
                "--client-secret-env",
                "CG_SECRET",
                "--no-verify",
            ],
            &[("CG_SECRET", "0f8fad5b-d9cb-469f-a165-70867728950e")],
        )
        .await;
    assert_exit(&o, 1);
    assert!(one_error_line(&o).contains("looks like the secret's ID"));

    // A second secret expiring in 10 days: used first, and doctor warns (exit 0).
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "secret",
                "add",
                "contoso",
                "--client-secret-env",
                "CG_SECRET",
                "--secret-expires",
                &in_days(10),
                "--secret-id",
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "--no-verify",
            ],
            &[("CG_SECRET", "new8Q~not-a-real-secret-0123456789abcdef")],
        )
        .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("added secret #2 (ID 0f8fad5b…) to connection 'contoso'"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(d, &["connection", "list"], &[]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    let line2 = out.lines().find(|l| l.contains("secret #2")).unwrap();
    assert!(
        line2.contains("under 14 days: rotate") && line2.trim_end().ends_with('✓'),
        "{out}"
    );
    let line1 = out.lines().find(|l| l.contains("secret #1")).unwrap();
    assert!(!line1.trim_end().ends_with('✓'), "{out}");
    assert!(!out.contains("not-a-real-secret"), "{out}");
    let o = CALGATE
        .run_async(d, &["connection", "list", "--json"], &[])
        .await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let creds = v[0]["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0]["display_id"], "#2");
    assert_eq!(creds[0]["preferred"], true);
    assert_eq!(creds[0]["level"], "within14");

    let o = CALGATE.run_async(d, &["doctor"], &[]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("! secret #2 (ID 0f8fad5b…) of connection 'contoso' expires in")
            && out.contains("within 14 days"),
        "{out}"
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = CALGATE.run_async(d, &["doctor", "--json"], &[]).await;
    assert_exit(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "credential:contoso:2")
        .unwrap();
    assert_eq!(c["status"], "warn", "{v}");

    // Remove the old one (by its id as listed); the last one cannot go.
    let o = CALGATE
        .run_async(d, &["connection", "secret", "remove", "contoso", "#1"], &[])
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("removed secret #1"), "{}", stdout(&o));
    let o = CALGATE
        .run_async(
            d,
            &["connection", "secret", "remove", "contoso", "0f8fad5b"],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    assert!(one_error_line(&o).contains("only credential"));
    assert_exit(
        &CALGATE
            .run_async(d, &["connection", "secret", "remove", "contoso"], &[])
            .await,
        2,
    );

    // Against the simulator: a new secret made in "Entra ID" is verified on its own (✓); an
    // expired secret is learned by `sync` and makes doctor fail.
    let sim = calgate_testkit::start_demo(7).await;
    let tenant = sim.tenant_id();
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(d, &sim, "good", &tenant, &id, &secret).await;
    let made = sim
        .control()
        .ok(
            reqwest::Method::POST,
            &format!("/apps/{id}/secrets"),
            Some(&json!({"expires_in_seconds": 90 * 86_400})),
        )
        .await;
    let new_secret = made["value"].as_str().unwrap();
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "secret",
                "add",
                "good",
                "--client-secret-env",
                "CG_SECRET",
                "--secret-expires",
                made["expires"].as_str().unwrap(),
                "--secret-id",
                made["key_id"].as_str().unwrap(),
            ],
            &[("CG_SECRET", new_secret)],
        )
        .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("✓ Entra ID issued a token for secret #"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains(new_secret));

    let (exp_id, exp_secret) = sim.creds().app("calgate-expired").pair();
    add_sim_connection(d, &sim, "expired", &tenant, &exp_id, &exp_secret).await;
    link(d, "equip-van@contoso.example", "expired", &[]).await;
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 1);
    let o = CALGATE.run_async(d, &["connection", "list"], &[]).await;
    let out = stdout(&o);
    let exp_line = out.lines().find(|l| l.starts_with("expired ")).unwrap();
    assert!(exp_line.contains("EXPIRED"), "learned from Entra ID: {out}");
    let o = CALGATE.run_async(d, &["doctor", "--json"], &[]).await;
    assert_exit(&o, 1);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "connection:expired")
        .unwrap();
    assert_eq!(c["status"], "fail", "{v}");
    assert_eq!(c["code"], "AADSTS7000222", "{v}");
    let line = one_error_line(&o);
    assert!(line.starts_with("calgate: doctor failed: "), "{line}");
    assert!(
        line.contains("calgate connection secret add expired"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_connect_list_and_disconnect() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    assert_exit(
        &CALGATE
            .run_async(
                d,
                &["account", "connect", "--connection", "x", "--kind", "room"],
                &[],
            )
            .await,
        2,
    );
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(d, &sim, "jadu", &sim.tenant_id(), &id, &secret).await;
    // No account yet.
    let o = CALGATE.run_async(d, &["account", "list"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("no connected accounts"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE
        .run_async(d, &["account", "list", "--json"], &[])
        .await;
    assert_exit(&o, 0);
    assert_eq!(o.stdout.trim_ascii(), b"[]");

    let user = "anna.devries@contoso.example";
    let mut child = CALGATE.spawn(
        d,
        &[
            "account",
            "connect",
            "--connection",
            "jadu",
            "--login-hint",
            user,
            "--link",
            "--timeout",
            "60",
        ],
    );
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = Running(child);
    let (url, rx) = tokio::task::spawn_blocking(move || {
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the sign-in URL within 30 s");
            if let Some(u) = l.trim().strip_prefix(&"http".to_owned()) {
                return (format!("http{u}"), rx);
            }
        }
    })
    .await
    .unwrap();
    assert!(url.contains("code_challenge="), "{url}");

    // Play the browser: sign in (and consent if asked), then follow the redirect to calgate.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let parsed = reqwest::Url::parse(&url).unwrap();
    let mut form: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let mut action = parsed.clone();
    action.set_query(None);
    form.push(("step".into(), "signin".into()));
    form.push(("login".into(), user.into()));
    let mut r = browser
        .post(action.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        form.retain(|(k, _)| k != "step");
        form.push(("step".into(), "consent".into()));
        form.push(("accept".into(), "yes".into()));
        r = browser.post(action).form(&form).send().await.unwrap();
    }
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let page = browser.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);

    let mut running = running;
    let (status, err, rest) = tokio::task::spawn_blocking(move || {
        let status = running.0.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = running.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let rest: Vec<String> = rx.iter().collect();
        (status, err, rest.join("\n"))
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{rest}\n{err}");
    assert!(
        rest.contains(&format!("Connect account: {user} via jadu")),
        "{rest}"
    );
    assert!(rest.contains("✓ refresh token stored encrypted"), "{rest}");
    assert!(
        rest.contains(&format!("✓ mailbox {user} linked to jadu")),
        "{rest}"
    );

    let o = CALGATE.run_async(d, &["account", "list"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("✓ {user} via jadu — ok")),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    let o = CALGATE.run_async(d, &["doctor"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("1 of 1 connected account"),
        "{}",
        stdout(&o)
    );

    // The refresh token expires in "Entra ID": the next sync marks the account, and doctor
    // fails with the reconnect command.
    sim.control()
        .ok(
            reqwest::Method::POST,
            "/tokens/expire",
            Some(&json!({"user": user})),
        )
        .await;
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 1);
    let o = CALGATE.run_async(d, &["account", "list"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("✗ {user} via jadu — reconnect needed")),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(d, &["doctor"], &[]).await;
    assert_exit(&o, 1);
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| {
            l.contains(&format!(
                "✗ connected account {user} (connection 'jadu') must sign in again"
            ))
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("AADSTS70008"), "{line}");
    assert!(
        out.contains(&format!(
            "calgate account connect --connection jadu --login-hint {user}"
        )),
        "{out}"
    );

    let o = CALGATE
        .run_async(d, &["account", "disconnect", user], &[])
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(&format!("mailbox {user} stays linked")));
    let o = CALGATE
        .run_async(d, &["account", "disconnect", user], &[])
        .await;
    assert_exit(&o, 1);
    assert!(one_error_line(&o).contains("no connected account"));
    let o = CALGATE
        .run_async(d, &["account", "list", "--json"], &[])
        .await;
    assert_eq!(o.stdout.trim_ascii(), b"[]");
}

// ---------------------------------------------------------------------------------------------
// Issue 7: nothing lost, nothing exposed.
// ---------------------------------------------------------------------------------------------

/// A simulator with `mailboxes` scale mailboxes of ~260 instances each (3 delta pages of 100),
/// a data dir with a connection to it and every mailbox linked, and a first sync done.
async fn scale_setup(mailboxes: usize) -> (SimHandle, tempfile::TempDir, Vec<String>) {
    let sim = calgate_testkit::start_sim(SimOptions {
        seed: Seed::Empty,
        scale: mailboxes,
        scale_events: Some(260),
        rng: 11,
        latency_ms: 1,
        ..SimOptions::default()
    })
    .await;
    let creds = sim.creds();
    let app = creds.first_app();
    let dir = data_dir();
    let d = dir.path();
    add_sim_connection(
        d,
        &sim,
        "c",
        &sim.tenant_id(),
        &app.client_id,
        &app.client_secret,
    )
    .await;
    let addresses = creds.addresses();
    assert_eq!(addresses.len(), mailboxes);
    for a in &addresses {
        link(d, a, "c", &[]).await;
    }
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    (sim, dir, addresses)
}

/// The store (read directly with the library) equals the simulator's truth for every mailbox,
/// over each mailbox's synced window: the same instance ids with the same start and end.
async fn assert_store_equals_truth(
    sim: &SimHandle,
    dir: &std::path::Path,
    addresses: &[String],
    label: &str,
) {
    let store = calgate_store::open_with(
        &dir.display().to_string(),
        calgate_store::OpenOptions {
            key_file_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let control = sim.control();
    for a in addresses {
        let m = store.mailbox(a).await.unwrap().unwrap();
        let c = store
            .cursor(m.id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{label}: {a} has no cursor"));
        let truth = control.events(a, c.window_start, c.window_end).await;
        // All-day instances compare by date, the others by instant.
        let want: std::collections::BTreeMap<String, String> = truth["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let start = if e["isAllDay"] == true {
                    e["start"]["dateTime"].as_str().unwrap()[..10].to_owned()
                } else {
                    graph_utc(&e["start"]).to_string()
                };
                (e["id"].as_str().unwrap().to_owned(), start)
            })
            .collect();
        let got: std::collections::BTreeMap<String, String> = store
            .instances(m.id, c.window_start, c.window_end)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                let w = &s.instance.when;
                let start = match w.all_day {
                    Some((d, _)) => d.to_string(),
                    None => w.start.to_string(),
                };
                (s.instance.exchange_id.clone(), start)
            })
            .collect();
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
        assert!(
            want == got,
            "{label}: {a}: {} in the simulator, {} stored, {missing} missing, {extra} extra",
            want.len(),
            got.len()
        );
    }
    assert!(
        store.leases().await.unwrap().is_empty(),
        "{label}: no lease is left behind"
    );
}

/// Defect 1: two `calgate` processes syncing at once — `sync --full` twice, and two plain
/// syncs while Graph expires every delta token (410) — used to lose whole pages of events for
/// good. Now each mailbox's round runs under a lease in the store: 20 trials of each end with
/// the store equal to the simulator, and the process that meets a leased mailbox names its
/// holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_sync_processes_lose_nothing_and_name_the_lease_holder() {
    const TRIALS: usize = 20;
    let (sim, dir, addresses) = scale_setup(6).await;
    let d = dir.path();
    let control = sim.control();
    let mut named = [0usize; 2];
    for (scenario, named) in named.iter_mut().enumerate() {
        for trial in 0..TRIALS {
            let args: &[&str] = if scenario == 0 {
                &["sync", "--full", "--concurrency", "3"]
            } else {
                for a in &addresses {
                    control
                        .delta_faults(a, &json!({"gone_on_next": true}))
                        .await;
                }
                &["sync", "--concurrency", "3"]
            };
            let (a, b) = (CALGATE.spawn(d, args), CALGATE.spawn(d, args));
            let (oa, ob) = tokio::task::spawn_blocking(move || {
                (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
            })
            .await
            .unwrap();
            for o in [&oa, &ob] {
                assert_exit(o, 0);
                let err = stderr(o);
                assert!(!err.contains("begin_shadow"), "{err}");
                for line in err.lines() {
                    assert!(
                        line.contains("being synced by another calgate process (pid ")
                            && line.contains(" on ")
                            && line.contains(" since "),
                        "scenario {scenario}, trial {trial}: unexpected line: {line}"
                    );
                    *named += 1;
                }
            }
            let label = format!("scenario {scenario}, trial {trial}");
            assert_store_equals_truth(&sim, d, &addresses, &label).await;
            if trial % 5 == 4 {
                // And the next run finds nothing to do.
                let o = CALGATE.run_async(d, &["sync"], &[]).await;
                assert_exit(&o, 0);
                assert!(
                    stdout(&o).contains(": 0 events stored, 0 removed"),
                    "{label}: {}",
                    stdout(&o)
                );
            }
        }
    }
    assert!(
        named.iter().all(|n| *n > 0),
        "in both scenarios some process met a leased mailbox and named its holder: {named:?}"
    );
}

/// Defects 2 and 3: a busy-only room stores no subject, location, body, organizer or attendees
/// (not in any row, not anywhere in the database's bytes); every file calgate creates in an
/// existing 0755 data directory is 0600; re-linking without `--privacy` keeps busy-only; and
/// switching to full takes effect through a full resync of that mailbox.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_only_stores_no_details_files_are_private_and_widening_resyncs() {
    use std::os::unix::fs::PermissionsExt;
    let sim = calgate_testkit::start_demo(7).await;
    let parent = data_dir();
    let d = parent.path().join("data");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(&d, &sim, "c", &sim.tenant_id(), &id, &secret).await;
    let room = "room-amstel@contoso.example";
    link(&d, room, "c", &["--kind", "room", "--privacy", "busy-only"]).await;
    let o = CALGATE.run_async(&d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    // Rows read directly (an open handle also keeps the WAL and shared-memory files).
    let store = calgate_store::open_with(
        &d.display().to_string(),
        calgate_store::OpenOptions {
            key_file_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for name in [
        "calgate.db",
        "calgate.db-wal",
        "calgate.db-shm",
        "master.key",
    ] {
        let mode = std::fs::metadata(d.join(name))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(mode, 0o600, "{name}");
    }
    // The room's details as Exchange has them.
    let truth = sim
        .control()
        .events(room, "2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z")
        .await;
    let mut details: Vec<String> = Vec::new();
    for e in truth["value"].as_array().unwrap() {
        for v in [
            &e["subject"],
            &e["location"]["displayName"],
            &e["bodyPreview"],
        ] {
            if let Some(s) = v.as_str().filter(|s| s.len() >= 6) {
                details.push(s.to_owned());
            }
        }
        if let Some(o) = e["organizer"]["emailAddress"]["address"].as_str() {
            details.push(o.to_owned());
        }
    }
    details.retain(|s| s != room);
    details.sort();
    details.dedup();
    assert!(
        details.len() > 3,
        "the room has details to hide: {details:?}"
    );
    let bytes = all_bytes(&d);
    for s in &details {
        assert!(
            !contains(&bytes, s),
            "{s:?} is in the data directory's files"
        );
    }
    // Times and busy status, no details.
    let m = store.mailbox(room).await.unwrap().unwrap();
    let rows = store
        .instances(m.id, jiff::Timestamp::MIN, jiff::Timestamp::MAX)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        let i = &r.instance;
        assert!(
            i.subject.is_none()
                && i.location.is_none()
                && i.body_preview.is_none()
                && i.organizer.is_none()
                && i.attendees.is_empty(),
            "{i:?}"
        );
    }
    for sm in store.series_masters(m.id).await.unwrap() {
        assert!(sm.subject.is_none() && sm.location.is_none() && sm.organizer.is_none());
    }
    drop(store);

    // Re-linking (also with another kind of flag) keeps busy-only.
    let o = CALGATE
        .run_async(&d, &["mailbox", "link", room, "--connection", "c"], &[])
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("privacy busy-only"), "{}", stdout(&o));
    // Widening: a full resync of that mailbox brings the subjects.
    let o = CALGATE
        .run_async(
            &d,
            &[
                "mailbox",
                "link",
                room,
                "--connection",
                "c",
                "--privacy",
                "full",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("next `calgate sync` resyncs it in full"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(&d, &["sync", "--dry-run"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("full resync into shadow (privacy changed from busy-only to full"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(&d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    let o = CALGATE
        .run_async(
            &d,
            &[
                "events",
                room,
                "--from",
                "2026-01-01",
                "--to",
                "2028-01-01",
                "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let events: Value = serde_json::from_slice(&o.stdout).unwrap();
    let with_subject = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"].is_string())
        .count();
    assert!(with_subject > 0, "subjects are back after the resync");
    let o = CALGATE.run_async(&d, &["sync", "--dry-run"], &[]).await;
    assert!(stdout(&o).contains("incremental"), "{}", stdout(&o));
}

/// Defect 4: a mistyped or missing data directory is an error that names it, for every command
/// that only reads or syncs; nothing is created. Setting up (`connection add`) creates it.
#[test]
fn a_mistyped_data_dir_fails_with_one_line_and_creates_nothing() {
    let parent = data_dir();
    let typo = parent.path().join("calgate-dta");
    for args in [
        vec!["sync"],
        vec!["sync", "--dry-run"],
        vec![
            "events",
            "a@x.example",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
        ],
        vec!["mailbox", "list"],
        vec!["mailbox", "link", "a@x.example", "--connection", "c"],
        vec!["connection", "list"],
        vec!["doctor"],
        vec!["account", "list"],
    ] {
        let o = CALGATE.run(&typo, &args, &[]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "there is no calgate data directory at {}",
                typo.display()
            )) && err.contains("--data-dir"),
            "{args:?}: {err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // An existing directory without a store says so too.
    let o = CALGATE.run(parent.path(), &["sync"], &[]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("holds no calgate store"),
        "{}",
        stderr(&o)
    );
    // Setting up creates it, private.
    let o = CALGATE.run(
        &typo,
        &[
            "connection",
            "add",
            "c",
            "--tenant",
            "t",
            "--client-id",
            "i",
            "--client-secret-env",
            "S",
        ],
        &[("S", "s3cr3t-value")],
    );
    assert_exit(&o, 0);
    assert!(typo.join("calgate.db").is_file());
    let o = CALGATE.run(&typo, &["sync"], &[]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("nothing to sync"), "{}", stdout(&o));
}

/// Defect 6: the smaller ones — import size limit (and /dev/zero), a deleted or garbled
/// master.key, a corrupt page found by `doctor`, `--to 9999-12-31`.
#[test]
fn import_limits_key_damage_corruption_and_far_dates() {
    let dir = data_dir();
    let d = dir.path();
    let o = CALGATE.run(
        d,
        &[
            "connection",
            "add",
            "c",
            "--tenant",
            "t",
            "--client-id",
            "i",
            "--client-secret-env",
            "S",
        ],
        &[("S", "s3cr3t-value")],
    );
    assert_exit(&o, 0);
    // A 12 MB import and /dev/zero: refused at once, one line, nothing linked.
    let big = d.join("big.csv");
    let mut text = String::from("address,connection\n");
    while text.len() < 12_000_000 {
        text.push_str("someone.with.a.long.address@contoso.example,c\n");
    }
    std::fs::write(&big, text).unwrap();
    for file in [big.to_str().unwrap(), "/dev/zero"] {
        let started = std::time::Instant::now();
        let o = CALGATE.run(d, &["mailbox", "import", file], &[]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("larger than 10 MB"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{file} was refused quickly"
        );
    }
    // `--to 9999-12-31` means "everything ahead".
    let o = CALGATE.run(
        d,
        &["mailbox", "link", "a@x.example", "--connection", "c"],
        &[],
    );
    assert_exit(&o, 0);
    let o = CALGATE.run(
        d,
        &[
            "events",
            "a@x.example",
            "--from",
            "2026-01-01",
            "--to",
            "9999-12-31",
            "--json",
        ],
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(o.stdout.trim_ascii(), b"[]");
    // doctor checks the database itself.
    let o = CALGATE.run(d, &["doctor", "--json"], &[]);
    assert!(stdout(&o).contains("integrity check"), "{}", stdout(&o));

    // A deleted master.key is not replaced: every command says to restore it.
    let key = d.join("master.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    for args in [
        vec!["mailbox", "list"],
        vec!["sync"],
        vec!["connection", "list"],
    ] {
        let o = CALGATE.run(d, &args, &[]);
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains("master key file") && err.contains("restore"),
            "{err}"
        );
        assert!(!key.exists(), "{args:?} wrote a new key");
    }
    // A garbled one is a key problem, not "check that the data directory is writable".
    std::fs::write(&key, [0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = CALGATE.run(d, &["mailbox", "list"], &[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("not valid base64") && !err.contains("writable"),
        "{err}"
    );
    std::fs::write(&key, &saved).unwrap();
    let o = CALGATE.run(d, &["mailbox", "list"], &[]);
    assert_exit(&o, 0);
}

/// Defect 6: a page damaged in the middle of the database is found by `doctor` (an integrity
/// check), which fails with the fix instead of reporting all is well.
#[test]
fn doctor_finds_a_damaged_page() {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let dir = data_dir();
    let d = dir.path();
    let o = CALGATE.run(d, &["demo", "--no-serve"], &[]);
    assert_exit(&o, 0);
    let o = CALGATE.run(d, &["doctor"], &[]);
    assert_exit(&o, 0);
    let db = d.join("calgate.db");
    // Everything into the database file (a clean close checkpoints the WAL).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = calgate_store::open_with(
            &d.display().to_string(),
            calgate_store::OpenOptions {
                key_file_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        store.close().await;
    });
    assert!(!d.join("calgate.db-wal").exists(), "checkpointed");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 1_000_000,
        "the demo store has many pages ({len} bytes)"
    );
    let page = 4096u64;
    let middle = (len / page / 2) * page;
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(middle)).unwrap();
    f.write_all(&[0xA5; 4096]).unwrap();
    drop(f);
    let o = CALGATE.run(d, &["doctor"], &[]);
    assert_exit(&o, 1);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("the database is damaged"), "{all}");
    assert!(
        all.contains("restore the data directory from a backup"),
        "{all}"
    );
}

/// A process killed with SIGKILL mid-round leaves its leases behind; on the same host the next
/// `calgate sync` sees that their holder is gone and takes them at once (no waiting for the
/// lease to lapse, nothing skipped), and the store ends equal to the simulator.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_killed_process_are_taken_over_at_once() {
    let (sim, dir, addresses) = scale_setup(4).await;
    let d = dir.path();
    for trial in 0..6u64 {
        let mut child = CALGATE.spawn(d, &["sync", "--full", "--concurrency", "2"]);
        tokio::time::sleep(Duration::from_millis(60 + trial * 40)).await;
        let _ = child.kill();
        let _ = child.wait();
        let o = CALGATE.run_async(d, &["sync"], &[]).await;
        assert_exit(&o, 0);
        assert!(
            !stderr(&o).contains("being synced by another"),
            "trial {trial}: {}",
            stderr(&o)
        );
        assert_store_equals_truth(&sim, d, &addresses, &format!("kill trial {trial}")).await;
    }
}

/// `mailbox link` asks Exchange first (issue 8): an unknown address or a wrong `--kind` is
/// refused with the fix, a room linked without `--kind` is linked as a room, and
/// `--no-verify` links without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_link_verifies_first() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let (id, secret) = sim.creds().app("calgate").pair();
    add_sim_connection(d, &sim, "c", &sim.tenant_id(), &id, &secret).await;
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "link",
                "nobody@contoso.example",
                "--connection",
                "c",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("nobody@contoso.example was not linked") && err.contains("no such mailbox"),
        "{err}"
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "link",
                "room-amstel@contoso.example",
                "--connection",
                "c",
                "--kind",
                "user",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("--kind says user but Exchange says room"),
        "{}",
        stderr(&o)
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "link",
                "room-amstel@contoso.example",
                "--connection",
                "c",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("linked room-amstel@contoso.example (room)"),
        "{out}"
    );
    assert!(
        out.contains("verified: from mailboxSettings.userPurpose = room"),
        "{out}"
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "mailbox",
                "link",
                "nobody@contoso.example",
                "--connection",
                "c",
                "--no-verify",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

/// The on-premises administrator's flow through EWS, as the CLI runs it: add the connection
/// (the password never echoed), Test settings, a changed password, import, rooms discover, sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ews_connection_is_added_tested_rotated_imported_and_synced() {
    let sim = calgate_testkit::start_demo(8).await;
    let dir = data_dir();
    let d = dir.path();
    let user = "CONTOSO\\svc-calgate";
    let password = calgate_testkit::sim_ews_password(&sim, user);
    let url = sim.creds().ews_url;
    let pw_file = d.join("ews-password");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    let add = |extra: &[&str]| {
        let mut v = vec![
            "connection",
            "add",
            "onprem",
            "--ews-url",
            url.as_str(),
            "--username",
            user,
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // EWS and Entra ID flags do not mix; a password is required.
    let args = add(&["--tenant", "x", "--password-env", "PW"]);
    let o = CALGATE
        .run_async(
            d,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &[("PW", "p")],
        )
        .await;
    assert_exit(&o, 2);
    let args = add(&[]);
    let o = CALGATE
        .run_async(d, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .await;
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("--password-env"), "{}", stderr(&o));
    let args = add(&[
        "--password-file",
        pw_file.to_str().unwrap(),
        "--impersonation",
    ]);
    let o = CALGATE
        .run_async(d, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .await;
    assert_exit(&o, 0);
    let mut everything = format!("{}{}", stdout(&o), stderr(&o));
    let o = CALGATE
        .run_async(d, &["connection", "list", "--json"], &[])
        .await;
    assert_exit(&o, 0);
    let list: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list[0]["kind"], "ews", "{list}");
    assert_eq!(list[0]["ews"]["auth"], "ntlm");
    assert_eq!(list[0]["ews"]["impersonation"], true);
    everything.push_str(&stdout(&o));

    // A password changed in Active Directory: Test settings says so, set-password fixes it.
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "set-password",
                "onprem",
                "--password-env",
                "PW",
            ],
            &[("PW", "an-old-password")],
        )
        .await;
    assert_exit(&o, 0);
    let test = [
        "connection",
        "test",
        "onprem",
        "--mailbox",
        "room-amstel@contoso.example",
    ];
    let o = CALGATE.run_async(d, &test, &[]).await;
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("✗ Exchange refused the service account"),
        "{}",
        stdout(&o)
    );
    let o = CALGATE
        .run_async(
            d,
            &[
                "connection",
                "set-password",
                "onprem",
                "--password-file",
                pw_file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let o = CALGATE.run_async(d, &test, &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("Exchange answers EWS"),
        "{}",
        stdout(&o)
    );
    everything.push_str(&stdout(&o));

    // Import: a person, a room told by the room lists, an unknown address.
    let csv = d.join("people.csv");
    std::fs::write(
        &csv,
        "address,kind,connection,external_id,privacy\n\
         anna.devries@contoso.example,,onprem,E-1,full\n\
         room-amstel@contoso.example,,onprem,R-1,busy-only\n\
         nobody@contoso.example,user,onprem,,\n",
    )
    .unwrap();
    let o = CALGATE
        .run_async(
            d,
            &["mailbox", "import", csv.to_str().unwrap(), "--json"],
            &[],
        )
        .await;
    assert_exit(&o, 1);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let text = report.to_string();
    assert!(text.contains("ErrorNonExistentMailbox"), "{report}");
    let o = CALGATE
        .run_async(d, &["mailbox", "list", "--json"], &[])
        .await;
    let linked: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let kind_of = |a: &str| {
        linked
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == a)
            .map(|m| m["kind"].clone())
    };
    assert_eq!(
        kind_of("anna.devries@contoso.example"),
        Some("user".into()),
        "{linked}"
    );
    assert_eq!(
        kind_of("room-amstel@contoso.example"),
        Some("room".into()),
        "{linked}"
    );
    assert_eq!(kind_of("nobody@contoso.example"), None);

    // Room lists link the rooms; sync pulls every linked mailbox.
    let o = CALGATE
        .run_async(
            d,
            &["rooms", "discover", "--connection", "onprem", "--link"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("room lists"), "{}", stdout(&o));
    let o = CALGATE.run_async(d, &["sync"], &[]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(" 0 failed") || !out.contains("failed"),
        "{out}"
    );
    assert!(
        !out.contains(" 0 requests"),
        "EWS requests are counted: {out}"
    );
    everything.push_str(&out);
    assert!(!everything.contains(&password), "the password was printed");
}

/// `calgate migrate`: an older schema is reported by `--check` and refused by `serve
/// --no-migrate` (each with the command to run), migrated by `calgate migrate`, then up to date;
/// a newer schema is refused by every command with words that say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_checks_upgrades_and_refuses_what_it_should() {
    let d = data_dir();
    let d = d.path();
    let store = calgate_store::open_with(
        d.to_str().expect("utf-8"),
        calgate_store::OpenOptions {
            create: true,
            key_file_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("create");
    let latest = store.schema().await.expect("schema").version;
    drop(store);
    let o = CALGATE.run_async(d, &["migrate", "--check"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("schema {latest}, up to date")),
        "{}",
        stdout(&o)
    );
    // Make it schema 14, as the calgate before the console's sessions left it: undo 15, 16 and
    // 17 (a later migration adds its own undo here). 18 needs none: it rebuilds four tables
    // with the same columns, and runs again on tables it rebuilt.
    let url = format!("sqlite://{}", d.join(calgate_testkit::DB_FILE).display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("raw open");
    assert_eq!(latest, 18, "add the undo of the new migration above");
    for q in [
        "DROP TABLE role_leases",
        "ALTER TABLE sync_status DROP COLUMN last_round_by",
        "DROP TABLE console_sessions",
        "DELETE FROM _sqlx_migrations WHERE version >= 15",
    ] {
        sqlx::query(q).execute(&pool).await.expect(q);
    }
    pool.close().await;
    let older = 14;
    for args in [vec!["migrate", "--check"], vec!["serve", "--no-migrate"]] {
        let o = CALGATE.run_async(d, &args, &[]).await;
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "has schema {older} and this calgate uses schema {latest}"
            )) && err.contains("`calgate migrate`"),
            "{args:?}: {err}"
        );
    }
    let o = CALGATE.run_async(d, &["migrate"], &[]).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("migrated from schema {older} to schema {latest}")),
        "{}",
        stdout(&o)
    );
    let o = CALGATE.run_async(d, &["migrate", "--check"], &[]).await;
    assert_exit(&o, 0);
    // A newer calgate's schema: refused, with the way out, and left as it is.
    let pool = sqlx::SqlitePool::connect(&url).await.expect("raw open");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    pool.close().await;
    for args in [vec!["migrate"], vec!["connection", "list"]] {
        let o = CALGATE.run_async(d, &args, &[]).await;
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains("schema 9999, written by a newer calgate"),
            "{args:?}: {err}"
        );
    }
}
