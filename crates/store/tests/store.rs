//! One test binary: the shared behavioural suite instantiated for SQLite on a real temp file
//! and for PostgreSQL on a fresh database per test, plus what only makes sense for one backend
//! (SQLite's file bytes and key file; PostgreSQL's shared database).
//!
//! The PostgreSQL tests need a server: they are `#[ignore]`d in a plain `cargo test` and run by
//! `.ci/run` (step 13) with `CALGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres
//! cargo test -p calgate-store --test store -- --ignored`. Each test creates its own database
//! and drops it afterwards.

mod suite;

use calgate_store::*;
use suite::{Fixture, new_connection};

/// A new, empty store at `location` under a fresh master key; `guard` keeps its resources.
async fn fresh_fixture(location: String, guard: Box<dyn std::any::Any + Send + Sync>) -> Fixture {
    let (key, _) = MasterKey::generate().expect("key");
    let store = open_with(
        &location,
        OpenOptions {
            master_key: Some(key.clone()),
            create: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("open {location}: {e}"));
    Fixture {
        store,
        location,
        key,
        _guard: guard,
    }
}

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().to_str().expect("utf-8 path").to_owned();
    fresh_fixture(location, Box::new(dir)).await
}

store_suite!(sqlite, super::sqlite_fixture);

/// The PostgreSQL server the PostgreSQL tests use (a database there they may create databases
/// in). Unset: the tests fail, saying so; they never skip themselves.
fn postgres_admin_url() -> String {
    std::env::var("CALGATE_TEST_POSTGRES").expect(
        "CALGATE_TEST_POSTGRES is not set: give a PostgreSQL URL whose user may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A database of its own for one test, dropped (with its connections) when the test ends.
struct PgDatabase {
    admin: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> (PgDatabase, String) {
        use sqlx::Connection as _;
        let admin = postgres_admin_url();
        let name = format!("calgate_test_{}", Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to CALGATE_TEST_POSTGRES");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create a test database");
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let url = format!("{server}/{name}{query}");
        (PgDatabase { admin, name }, url)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside any runtime the test may still be shutting down: a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
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

async fn postgres_fixture() -> Fixture {
    let (db, location) = PgDatabase::create().await;
    fresh_fixture(location, Box::new(db)).await
}

store_suite!(
    postgres,
    super::postgres_fixture,
    #[ignore = "needs PostgreSQL: CALGATE_TEST_POSTGRES=postgres://… (see the file's doc)"]
);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database file, its WAL and shared memory never hold a secret in plain text.
#[tokio::test]
async fn sqlite_file_never_holds_a_secret_in_plain_text() {
    let f = sqlite_fixture().await;
    let secret = "Zq8~s3cr3t-VALUE-that-must-not-leak";
    let key_pem = "-----BEGIN PRIVATE KEY-----\nPRIVATEKEYBYTESxyz123\n-----END PRIVATE KEY-----\n";
    f.store
        .add_connection(&new_connection(
            "c",
            vec![
                NewCredential::secret(secret, None),
                NewCredential::certificate(
                    key_pem,
                    "-----BEGIN CERTIFICATE-----\nPUBLICCERT\n-----END CERTIFICATE-----\n",
                    None,
                ),
            ],
        ))
        .await
        .expect("add");
    f.store
        .add_credential("c", &NewCredential::secret(format!("{secret}-2"), None))
        .await
        .expect("add credential");
    let c = f.store.connection("c").await.expect("get").expect("exists");
    assert_eq!(c.credentials.len(), 3);

    let dir = std::path::Path::new(&f.location);
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.starts_with(SQLITE_FILE) {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).expect("read db file");
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{name} holds the secret"
        );
        assert!(
            !contains(&bytes, b"PRIVATEKEYBYTESxyz123"),
            "{name} holds the private key"
        );
        // Sanity: the public certificate is stored in plain text, so the grep does see data.
        if contains(&bytes, b"PUBLICCERT") {
            files += 100;
        }
    }
    assert!(
        files > 100,
        "the db files were read and hold the plain certificate ({files})"
    );
}

/// Opening a data directory creates `calgate.db` and a `master.key` with mode 0600; a key file
/// readable by others is refused with a one-line error naming the fix.
#[cfg(unix)]
#[tokio::test]
async fn data_dir_key_file_is_created_0600_and_refused_when_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("calgate-data");
    let location = data.to_str().expect("utf-8").to_owned();
    // The key file is what this test is about: ignore CALGATE_MASTER_KEY whatever it holds.
    let file_only = || OpenOptions {
        key_file_only: true,
        ..OpenOptions::default()
    };
    let store = open_with(
        &location,
        OpenOptions {
            create: true,
            ..file_only()
        },
    )
    .await
    .expect("open data dir");
    store
        .add_connection(&new_connection("c", vec![NewCredential::secret("s", None)]))
        .await
        .expect("add");
    drop(store);
    let key = data.join(MASTER_KEY_FILE);
    assert!(data.join(SQLITE_FILE).is_file());
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(&data)
        .expect("data dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "a new data directory is private");

    // Reopening reuses the key (the secret decrypts).
    let again = open_with(
        &format!("sqlite://{}", data.join(SQLITE_FILE).display()),
        file_only(),
    )
    .await
    .expect("reopen by URL");
    let c = again.connection("c").await.expect("get").expect("exists");
    assert_eq!(c.credentials[0].secret.expose(), "s");
    drop(again);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let e = open_with(&location, file_only())
        .await
        .err()
        .expect("refused");
    assert_eq!(e.kind(), ErrorKind::MasterKey);
    let msg = e.to_string();
    assert!(msg.contains("chmod 600") && msg.contains("0640"), "{msg}");
    assert!(!msg.contains('\n'));

    // A deleted key file is not replaced by a new one (which could not open the secrets).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let saved = std::fs::read(&key).expect("key");
    std::fs::remove_file(&key).expect("rm");
    for create in [false, true] {
        let e = open_with(
            &location,
            OpenOptions {
                create,
                ..file_only()
            },
        )
        .await
        .err()
        .expect("missing key refused");
        assert_eq!(e.kind(), ErrorKind::MasterKey);
        let msg = e.to_string();
        assert!(msg.contains("missing") && msg.contains("restore"), "{msg}");
        assert!(!key.exists(), "no new key file was written");
    }
    // A garbled key file is a key problem, not an I/O one.
    std::fs::write(&key, [0xff, 0xfe, 0x00, 0x9c]).expect("garble");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let e = open_with(&location, file_only())
        .await
        .err()
        .expect("garbled");
    assert_eq!(e.kind(), ErrorKind::MasterKey);
    assert!(e.to_string().contains("not valid base64"), "{e}");
    // Another valid key → the database refuses it rather than returning garbage.
    let (_, other) = MasterKey::generate().expect("key");
    std::fs::write(&key, other).expect("other key");
    let e = open_with(&location, file_only())
        .await
        .err()
        .expect("other key");
    assert_eq!(e.kind(), ErrorKind::MasterKey);
    assert!(e.to_string().contains("does not match"), "{e}");
    std::fs::write(&key, saved).expect("restore");
    open_with(&location, file_only())
        .await
        .expect("restored key opens");
}

/// Without `create`, a missing data directory, an empty one, or a missing database file is an
/// error naming the place and the fix — never a fresh empty store with a fresh key.
#[tokio::test]
async fn a_missing_store_is_an_error_not_a_new_empty_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("calgate-dta");
    for (location, needle) in [
        (
            typo.display().to_string(),
            "there is no calgate data directory at",
        ),
        (dir.path().display().to_string(), "holds no calgate store"),
        (
            format!("sqlite://{}", dir.path().join("x.db").display()),
            "there is no calgate database at",
        ),
    ] {
        let e = open(&location).await.err().expect("missing");
        assert_eq!(e.kind(), ErrorKind::Missing, "{location}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(
            msg.contains("--data-dir") && msg.contains("calgate connection add"),
            "{msg}"
        );
    }
    assert!(!typo.exists(), "nothing was created");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// In a data directory that already exists with mode 0755 and a umask of 022, the database,
/// its WAL and shared-memory files and the key file are all 0600; files left looser by an
/// earlier version are tightened on open.
#[cfg(unix)]
#[tokio::test]
async fn every_file_is_private_even_in_an_existing_open_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let location = data.display().to_string();
    let opts = || OpenOptions {
        create: true,
        key_file_only: true,
        ..OpenOptions::default()
    };
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    let store = open_with(&location, opts()).await.expect("create");
    store
        .add_connection(&new_connection("c", vec![NewCredential::secret("s", None)]))
        .await
        .expect("write");
    for name in [
        SQLITE_FILE,
        "calgate.db-wal",
        "calgate.db-shm",
        MASTER_KEY_FILE,
    ] {
        assert_eq!(mode(name), Some(0o600), "{name}");
    }
    drop(store);
    std::fs::set_permissions(
        data.join(SQLITE_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("loosen");
    let _again = open_with(
        &location,
        OpenOptions {
            create: false,
            ..opts()
        },
    )
    .await
    .expect("reopen");
    assert_eq!(mode(SQLITE_FILE), Some(0o600), "tightened on open");
}

/// A PostgreSQL location whose server cannot be reached is one clear error, without the
/// password of the URL, and nothing is created anywhere.
#[tokio::test]
async fn an_unreachable_postgres_server_is_one_clear_error() {
    let e = open("postgres://calgate:pa55word@127.0.0.1:1/calgate")
        .await
        .err()
        .expect("no server on port 1");
    let m = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Database, "{m}");
    assert!(
        m.contains("cannot connect to PostgreSQL at postgres://calgate@127.0.0.1:1/calgate"),
        "{m}"
    );
    assert!(!m.contains("pa55word"), "{m}");
    assert_eq!(m.lines().count(), 1, "{m}");
}

/// A connected account's refresh token never reaches the file in plain text, through a
/// save, a refresh and a removal.
#[tokio::test]
async fn sqlite_file_never_holds_a_refresh_token_in_plain_text() {
    let f = sqlite_fixture().await;
    let s = f.store.as_ref();
    s.add_connection(&new_connection("c", vec![]))
        .await
        .expect("add");
    let rt1 = "1.AQ-refresh-token-ONE-that-must-not-leak";
    let rt2 = "1.AQ-refresh-token-TWO-that-must-not-leak";
    let id = s
        .save_account(&NewAccount {
            connection: "c".into(),
            upn: "adele@contoso.example".into(),
            mail: None,
            display_name: None,
            user_id: None,
            refresh_token: SecretString::new(rt1),
            scopes: "Calendars.Read".into(),
            endpoint: AccountEndpoint::V1,
        })
        .await
        .expect("save");
    s.store_refresh_token(id, &SecretString::new(rt2), jiff::Timestamp::now())
        .await
        .expect("refresh");
    assert_eq!(
        s.account(id)
            .await
            .expect("read")
            .expect("exists")
            .refresh_token
            .expose(),
        rt2
    );
    let dir = std::path::Path::new(&f.location);
    let mut bytes = Vec::new();
    for name in [SQLITE_FILE, "calgate.db-wal", "calgate.db-shm"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty());
    for rt in [rt1, rt2] {
        assert!(
            !contains(&bytes, rt.as_bytes()),
            "{rt} is on disk in plain text"
        );
    }
}

/// After "disk full", every later write reports the real cause with the database's path —
/// the connection whose COMMIT failed is not handed to the next writer (it used to fail with
/// "attempted to call begin_with at non-zero transaction depth") — and nothing half-written
/// remains.
#[tokio::test]
async fn disk_full_is_reported_as_such_by_every_later_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().display().to_string();
    let (key, _) = MasterKey::generate().expect("key");
    let opts = |pages| OpenOptions {
        master_key: Some(key.clone()),
        create: true,
        max_connections: Some(2),
        max_page_count: pages,
        ..Default::default()
    };
    drop(open_with(&location, opts(None)).await.expect("create"));
    let s = open_with(&location, opts(Some(40))).await.expect("capped");
    s.add_connection(&new_connection("c", vec![]))
        .await
        .expect("c");
    let mut mailboxes = Vec::new();
    for n in 0..4 {
        mailboxes.push(suite::mailbox_named(&*s, &format!("m{n}@contoso.com")).await);
    }
    let body = "x".repeat(2_000);
    let mut full_at = None;
    let mut errors = Vec::new();
    for round in 0..200 {
        let mb = mailboxes[round % mailboxes.len()];
        let mut i = suite::instance(
            &format!("big-{round}"),
            "2026-01-05T09:00:00Z",
            "2026-01-05T10:00:00Z",
        );
        i.body_preview = Some(body.clone());
        let l = suite::lease(&*s, mb).await;
        let r = s
            .apply_changes(
                &l,
                &ChangeSet {
                    upserts: vec![i],
                    ..Default::default()
                },
            )
            .await;
        if let Err(e) = r {
            full_at.get_or_insert(round);
            errors.push(e);
            if errors.len() == 8 {
                break;
            }
        }
    }
    assert!(full_at.is_some(), "the cap was reached");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::DiskFull, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("is full") && msg.contains(SQLITE_FILE),
            "{msg}"
        );
        assert!(!msg.contains("transaction depth"), "{msg}");
    }
    // Reads and status still work; lifting the cap lets writes through again.
    let before = s.count_instances(mailboxes[0]).await.expect("count");
    drop(s);
    let s = open_with(&location, opts(None)).await.expect("uncapped");
    assert_eq!(
        s.count_instances(mailboxes[0]).await.expect("count"),
        before
    );
    assert_eq!(
        s.check_integrity().await.expect("check"),
        Vec::<String>::new()
    );
    s.apply_changes(
        &suite::lease(&*s, mailboxes[0]).await,
        &ChangeSet {
            upserts: vec![suite::instance(
                "after",
                "2026-01-05T09:00:00Z",
                "2026-01-05T10:00:00Z",
            )],
            ..Default::default()
        },
    )
    .await
    .expect("writes work again");
}

/// A database a newer calgate migrated (a schema this binary does not know) is refused with
/// words that say so, and left as it was.
#[tokio::test]
async fn a_newer_schema_refuses_an_older_binary_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("calgate-data");
    let location = data.to_str().expect("utf-8").to_owned();
    let options = || OpenOptions {
        key_file_only: true,
        ..OpenOptions::default()
    };
    let store = open_with(
        &location,
        OpenOptions {
            create: true,
            ..options()
        },
    )
    .await
    .expect("create");
    drop(store);
    // What a newer calgate's migration 9999 would leave behind.
    let db = data.join(SQLITE_FILE);
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("raw open");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    pool.close().await;
    let e = open_with(&location, options())
        .await
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("schema 9999, written by a newer calgate")
            && msg.contains("run the newer calgate"),
        "{msg}"
    );
    // Still there, untouched.
    let pool = sqlx::SqlitePool::connect(&url).await.expect("raw open");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE version = 9999")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

/// Schema v18 rebuilds `instances`, `shadow_instances`, `change_log` and `webhook_deliveries`
/// with CHECKs that list their values with `=` … `OR`: every row keeps its values and rowid, the
/// change log and the deliveries their AUTOINCREMENT high-water marks, the rules still hold, and a row check no
/// longer builds a temporary index.
#[tokio::test]
async fn v18_rebuilds_the_checked_tables_keeping_rows_positions_and_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("v17.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations)
        .await
        .expect("migrations");
    migrator.run_to(17, &pool).await.expect("to v17");
    let instance = |table: &str, mailbox: i64, id: &str, kind: &str, link: &str| {
        format!(
            "INSERT INTO {table} (mailbox_id, exchange_id, id, type, start_us, end_us, time_zone, \
             show_as, sensitivity, attendees, web_link, origin, stored_at) VALUES \
             ({mailbox}, '{id}', 'uuid-{id}', '{kind}', 1, 2, 'UTC', 'busy', 'normal', '[]', \
             '{link}', 'exchange', 3)"
        )
    };
    for q in [
        "INSERT INTO connections (id, name, tenant, client_id, authority, graph_url, cloud, \
         created_at) VALUES (1, 'c', 't', 'a', 'https://login', 'https://graph', 'global', 0)"
            .to_owned(),
        "INSERT INTO mailboxes (id, address, address_key, connection_id, kind, privacy, \
         linked_at) VALUES (7, 'a@x', 'a@x', 1, 'user', 'full', 0)"
            .to_owned(),
        instance("instances", 7, "E1", "singleInstance", "https://o/1"),
        instance("instances", 7, "E2", "occurrence", ""),
        "DELETE FROM instances WHERE exchange_id = 'E1'".to_owned(),
        instance("instances", 7, "E3", "exception", "https://o/3"),
        instance("shadow_instances", 7, "S1", "occurrence", ""),
        "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, at, via) \
         VALUES (7, 'a@x', 'i1', 'E1', 'created', 5, 'round'), \
                (7, 'a@x', 'i2', 'E2', 'updated', 6, 'resync'), \
                (7, 'a@x', 'i3', 'E3', 'deleted', 7, 'round')"
            .to_owned(),
        "INSERT INTO change_log (op, at, data) VALUES ('credential.expiring', 8, '{}')".to_owned(),
        // the newest positions are gone (pruned): they must never be handed out again
        "DELETE FROM change_log WHERE seq >= 3".to_owned(),
        "INSERT INTO webhooks (id, url, secret, position, created_at) \
         VALUES ('w1', 'https://h/hook', x'00', 2, 0)"
            .to_owned(),
        "INSERT INTO webhook_deliveries (webhook_id, msg_id, seq, partition, type, payload, \
         state, next_at, created_at) VALUES \
         ('w1', 'm1', 1, 'a@x', 'event.created', '{}', 'delivered', 0, 0), \
         ('w1', 'm2', 2, 'a@x', 'event.updated', '{}', 'pending', 0, 0), \
         ('w1', 'm3', 3, 'a@x', 'event.deleted', '{}', 'dead', 0, 0)"
            .to_owned(),
        "DELETE FROM webhook_deliveries WHERE msg_id = 'm3'".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(q.clone()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    let dump = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let columns: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT group_concat(name, ', ') FROM pragma_table_info('{table}')"
            )))
            .fetch_one(&pool)
            .await
            .expect("columns");
            let q = format!(
                "SELECT json_group_array(j) FROM \
                 (SELECT json_array(rowid, {columns}) AS j FROM {table} ORDER BY rowid)"
            );
            let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
                .fetch_one(&pool)
                .await
                .expect("dump");
            rows
        }
    };
    let before = (
        dump("instances").await,
        dump("shadow_instances").await,
        dump("change_log").await,
        dump("webhook_deliveries").await,
    );
    let high_water = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                .bind(table)
                .fetch_one(&pool)
                .await
                .expect("high-water mark");
            n
        }
    };

    assert_eq!(high_water("change_log").await, 4);
    assert_eq!(high_water("webhook_deliveries").await, 3);
    migrator.run(&pool).await.expect("to v18 and on");
    let after = (
        dump("instances").await,
        dump("shadow_instances").await,
        dump("change_log").await,
        dump("webhook_deliveries").await,
    );
    assert_eq!(after, before);
    assert!(before.0.contains("E2") && before.1.contains("S1") && before.2.contains("i2"));
    assert!(before.3.contains("m2") && !before.3.contains("m3"));
    assert_eq!(high_water("change_log").await, 4);
    assert_eq!(high_water("webhook_deliveries").await, 3);
    let ok: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity");
    assert_eq!(ok, "ok");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN ('instances', 'change_log') ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        [
            "change_log_by_mailbox",
            "change_log_by_time",
            "instances_busy"
        ]
    );

    // The rules hold as before.
    for bad in [
        instance("instances", 7, "B1", "seriesMaster", ""),
        instance("shadow_instances", 7, "B2", "single", ""),
        "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, at) \
         VALUES (7, 'a@x', 'i', 'E', 'moved', 9)"
            .to_owned(),
        "INSERT INTO change_log (op, at) VALUES ('created', 9)".to_owned(),
        "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, at) \
         VALUES (7, 'a@x', 'i', 'E', 'credential.expired', 9)"
            .to_owned(),
        "UPDATE webhook_deliveries SET state = 'gone' WHERE msg_id = 'm2'".to_owned(),
    ] {
        let e = sqlx::query(sqlx::AssertSqlSafe(bad.clone()))
            .execute(&pool)
            .await
            .expect_err(&bad);
        assert!(
            e.to_string().contains("CHECK constraint failed"),
            "{bad}: {e}"
        );
    }
    // A new position follows the high-water mark, not the last row left.
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, at) \
         VALUES (7, 'a@x', 'i4', 'E4', 'created', 10) RETURNING seq",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    assert_eq!(seq, 5);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (webhook_id, msg_id, seq, partition, type, payload, \
         state, next_at, created_at) VALUES ('w1', 'm4', 4, 'a@x', 'event.created', '{}', \
         'pending', 0, 0) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert");
    assert_eq!(id, 4);
    // No temporary index is built to check a row.
    for q in [
        instance("instances", 7, "N1", "occurrence", ""),
        "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, at) \
         VALUES (7, 'a@x', 'i', 'E', 'deleted', 11)"
            .to_owned(),
        "INSERT INTO webhook_deliveries (webhook_id, msg_id, seq, partition, type, payload, \
         state, next_at, created_at) VALUES ('w1', 'm5', 5, 'a@x', 'event.created', '{}', \
         'pending', 0, 0)"
            .to_owned(),
    ] {
        use sqlx::Row as _;
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {q}")))
            .fetch_all(&pool)
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<String, _>("opcode"))
            .collect();
        assert!(plan.iter().any(|op| op == "Insert"), "{q}: {plan:?}");
        assert!(
            !plan.iter().any(|op| op == "OpenEphemeral"),
            "{q}: {plan:?}"
        );
    }
}
