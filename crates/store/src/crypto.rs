//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value (aws-lc-rs), under a
//! master key from `CALGATE_MASTER_KEY` or a `master.key` file created with mode 0600.
//!
//! Sealed format: `0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)`. The associated
//! data binds a value to its row, so a sealed value copied to another row does not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "CALGATE_MASTER_KEY";
/// The key file's name inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The key that seals every secret in the store. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey {
    key: Arc<RandomizedNonceKey>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn key_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::MasterKey, message)
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<MasterKey> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| key_error("the master key could not be loaded into AES-256-GCM"))?;
        Ok(MasterKey { key: Arc::new(key) })
    }

    /// Parses the base64 encoding of 32 bytes; `what` names the source in the error.
    pub fn from_base64(text: &str, what: &str) -> Result<MasterKey> {
        let text = text.trim();
        let hint = "expected the base64 encoding of 32 random bytes (make one with `openssl rand -base64 32`)";
        if text.is_empty() {
            return Err(key_error(format!("{what} is empty: {hint}")));
        }
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| key_error(format!("{what} is not valid base64: {hint}")))?;
        let bytes: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            key_error(format!(
                "{what} decodes to {} bytes, not 32: {hint}",
                bytes.len()
            ))
        })?;
        MasterKey::from_bytes(&bytes)
    }

    /// A fresh random key and its base64 text.
    pub fn generate() -> Result<(MasterKey, String)> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| key_error("the system random generator failed"))?;
        let key = MasterKey::from_bytes(&bytes)?;
        Ok((key, STANDARD.encode(bytes)))
    }

    /// `CALGATE_MASTER_KEY`'s value, when it is set (and not empty).
    pub fn env_value() -> Result<Option<String>> {
        std::env::var_os(MASTER_KEY_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| v.into_string().map_err(|_| ()))
            .transpose()
            .map_err(|_| key_error(format!("{MASTER_KEY_ENV} is not valid UTF-8")))
    }

    /// The key from `CALGATE_MASTER_KEY` when it is set, else from `key_file` (created on
    /// first use when `key_file` is given), else an error.
    pub fn from_env_or_file(key_file: Option<&Path>) -> Result<MasterKey> {
        let env = MasterKey::env_value()?;
        MasterKey::resolve(env.as_deref(), key_file)
    }

    /// Reads the key file of a store that already holds data sealed with it: a missing file is
    /// an error naming the fix, never replaced by a new key (which could not open that data).
    pub fn load_existing(path: &Path) -> Result<MasterKey> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => MasterKey::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(key_error(format!(
                "the master key file {} is missing, but this store holds secrets sealed with it: restore master.key from your backup, or set {MASTER_KEY_ENV} to that key (a new key could not open them)",
                path.display()
            ))),
            Err(e) => Err(Error::io(
                format!("cannot read the master key file {}", path.display()),
                e,
            )),
        }
    }

    /// [`MasterKey::from_env_or_file`] with the environment value passed in (for tests).
    pub fn resolve(env_value: Option<&str>, key_file: Option<&Path>) -> Result<MasterKey> {
        match (env_value, key_file) {
            (Some(text), _) => MasterKey::from_base64(text, MASTER_KEY_ENV),
            (None, Some(path)) => MasterKey::load_or_create(path),
            (None, None) => Err(key_error(format!(
                "no master key: set {MASTER_KEY_ENV} (base64 of 32 random bytes) to encrypt secrets in this database"
            ))),
        }
    }

    /// Reads the key file, or creates it (mode 0600) with a random key when it does not exist.
    /// Refuses a key file that group or others can read or write.
    pub fn load_or_create(path: &Path) -> Result<MasterKey> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => MasterKey::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MasterKey::create(path),
            Err(e) => Err(Error::io(
                format!("cannot read the master key file {}", path.display()),
                e,
            )),
        }
    }

    fn load(path: &Path) -> Result<MasterKey> {
        check_private(path)?;
        let what = format!("the master key file {}", path.display());
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
        // Garbage is a damaged key, not an I/O problem.
        let text = String::from_utf8(bytes).map_err(|_| {
            key_error(format!(
                "{what} is not valid base64 (it holds binary data): restore master.key from your backup, or set {MASTER_KEY_ENV} to the key this data was created with"
            ))
        })?;
        MasterKey::from_base64(&text, &what)
    }

    fn create(path: &Path) -> Result<MasterKey> {
        let (key, text) = MasterKey::generate()?;
        let tmp = temp_name(path);
        let written = write_private(&tmp, format!("{text}\n").as_bytes());
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new master key file");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => MasterKey::load(path),
            Err(e) => Err(Error::io(
                format!("cannot create the master key file {}", path.display()),
                e,
            )),
        }
    }

    /// Seals `plaintext`; `aad` binds it to its place (row, purpose).
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| key_error("encrypting a secret failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens a sealed value; a wrong key, a tampered value or a value moved from another row
    /// is an error, never garbage.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(key_error(
                "a stored secret is damaged (unknown format); re-enter it",
            ));
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| key_error("a stored secret is damaged (bad nonce); re-enter it"))?;
        let mut in_out = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| {
                key_error(format!(
                    "a stored secret cannot be decrypted: the master key ({MASTER_KEY_ENV} or {MASTER_KEY_FILE}) is not the one it was encrypted with"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    path.with_file_name(name)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::io(
            format!("cannot read the master key file {}", path.display()),
            e,
        )
    })?;
    if !meta.is_file() {
        return Err(key_error(format!(
            "the master key file {} is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(format!(
            "the master key file {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; KEY_LEN]).expect("key")
    }

    #[test]
    fn seal_then_open_round_trips_with_a_fresh_nonce_each_time() {
        let k = key(1);
        let a = k.seal(b"row-1", b"s3cret").expect("seal");
        let b = k.seal(b"row-1", b"s3cret").expect("seal");
        assert_ne!(a, b, "a random nonce per value");
        assert_eq!(a.len(), 1 + NONCE_LEN + 6 + TAG_LEN);
        assert!(!a.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(k.open(b"row-1", &a).expect("open"), b"s3cret");
    }

    #[test]
    fn wrong_key_tampering_and_moved_values_are_errors() {
        let sealed = key(1).seal(b"row-1", b"s3cret").expect("seal");
        let e = key(2).open(b"row-1", &sealed).expect_err("wrong key");
        assert_eq!(e.kind(), ErrorKind::MasterKey);
        assert!(
            e.message().contains("not the one it was encrypted with"),
            "{e}"
        );
        assert!(
            key(1).open(b"row-2", &sealed).is_err(),
            "moved to another row"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key(1).open(b"row-1", &tampered).is_err());
        assert!(key(1).open(b"row-1", &sealed[..10]).is_err());
    }

    #[test]
    fn bad_env_values_give_one_line_errors() {
        for (value, needle) in [
            ("", "empty"),
            ("not base64!!", "not valid base64"),
            ("AAAA", "decodes to 3 bytes, not 32"),
        ] {
            let e = MasterKey::resolve(Some(value), None).expect_err(value);
            assert_eq!(e.kind(), ErrorKind::MasterKey);
            let msg = e.to_string();
            assert!(msg.starts_with(MASTER_KEY_ENV), "{msg}");
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let (_, text) = MasterKey::generate().expect("generate");
        assert!(MasterKey::resolve(Some(&text), None).is_ok());
        assert!(MasterKey::resolve(None, None).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_0600_reused_and_refused_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(MASTER_KEY_FILE);
        let k1 = MasterKey::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = MasterKey::load_or_create(&path).expect("reload");
        let sealed = k1.seal(b"x", b"y").expect("seal");
        assert_eq!(k2.open(b"x", &sealed).expect("same key"), b"y");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temp left"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = MasterKey::load_or_create(&path).expect_err("0644 refused");
        assert_eq!(e.kind(), ErrorKind::MasterKey);
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(e.to_string().contains("0644"), "{e}");
    }
}
