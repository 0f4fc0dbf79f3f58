//! One test binary: the shared behavioural suite instantiated for SQLite on a real temp file,
//! plus what only makes sense for SQLite (the file's bytes, the key file beside it).

mod suite;

use calgate_store::*;
use suite::{Fixture, new_connection};

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().to_str().expect("utf-8 path").to_owned();
    let (key, _) = MasterKey::generate().expect("key");
    let store = open_with(
        &location,
        OpenOptions {
            master_key: Some(key.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("open sqlite");
    Fixture {
        store,
        location,
        key,
        _guard: Box::new(dir),
    }
}

store_suite!(sqlite, super::sqlite_fixture);

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
    let store = open_with(&location, file_only())
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

    // A different key file → the database refuses it rather than returning garbage.
    std::fs::remove_file(&key).expect("rm");
    let e = open_with(&location, file_only())
        .await
        .err()
        .expect("new key refused");
    assert_eq!(e.kind(), ErrorKind::MasterKey);
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[tokio::test]
async fn postgres_urls_are_not_implemented_yet() {
    let e = open("postgres://calgate@127.0.0.1/calgate")
        .await
        .err()
        .expect("unsupported");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("not implemented yet"));
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
