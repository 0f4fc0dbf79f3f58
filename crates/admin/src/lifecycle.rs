//! The credential lifecycle (field notes P7): several secrets or certificates per connection so
//! that a secret is rotated without downtime, recorded expiry dates (given by the administrator,
//! read from a certificate, or learned from Entra ID's AADSTS7000222), and `calgate doctor`,
//! which warns 30, 14 and 7 days ahead and fails at expiry.
//!
//! Commands served (the CLI parses and prints; everything else is here):
//! - `calgate connection secret add NAME (--client-secret-env VAR | --client-secret-file FILE |
//!   --certificate FILE) [--secret-expires DATE] [--secret-id ID]` → [`read_credential`] +
//!   [`add_credential`], then optionally [`verify_credential`];
//! - `calgate connection secret remove NAME ID [--force]` → [`remove_credential`];
//! - `calgate connection list` → [`summarize`] / [`expiry_note`] (the "expires" column);
//! - `calgate doctor [--json]` → [`doctor`].
//!
//! Expiries Entra ID reports during a sync are recorded by the sync engine itself
//! (`calgate_sync::Summary::learned_expiries`).
//!
//! Rotation model: the store lists a connection's credentials newest first and the graph
//! client tries them in that order (the last one that worked first, known-expired and
//! recently rejected ones last), falling back on a credential-specific rejection. So adding a
//! new secret makes it the one in use at the next token request, and the old one stays as a
//! fallback until it is removed.
//!
//! Time is always a parameter (`now`): tests inject it, the CLI passes `Timestamp::now()`.
//! Days are 24-hour periods counted from `now` to the expiry instant; dates are shown in UTC.

use std::fmt;
use std::path::{Path, PathBuf};

use calgate_graph::{CertificateInfo, GraphClient, Shared};
use calgate_store::{
    Connection, Credential, CredentialId, CredentialKind, ErrorKind as StoreErrorKind,
    MailboxStatus, NewCredential, Store,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::checklist::{Check, Checklist, Status};

/// Days ahead of an expiry at which `doctor` warns, largest first.
pub const WARN_DAYS: [i64; 3] = [30, 14, 7];

/// A mailbox without a successful sync for this long gets a warning.
pub const STALE_AFTER: SignedDuration = SignedDuration::from_hours(24);

/// The AADSTS code Entra ID returns for an expired client secret.
pub use calgate_graph::AADSTS_SECRET_EXPIRED;

const DAY_SECS: i64 = 86_400;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What went wrong in a lifecycle command. Every message is one line in an administrator's
/// words and names the fix; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The input is unusable (unreadable file, empty secret, a Secret ID pasted as the value,
    /// a date in the past, a PEM without key or certificate…). CLI: exit 1.
    #[error("{0}")]
    Invalid(String),
    /// No such connection or credential. CLI: exit 1.
    #[error("{0}")]
    NotFound(String),
    /// The command would break the connection (removing its last or last valid credential),
    /// or the credential is already there. CLI: exit 1.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] calgate_store::Error),
    #[error("{0}")]
    Graph(#[from] calgate_graph::Error),
}

fn invalid(msg: impl Into<String>) -> LifecycleError {
    LifecycleError::Invalid(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Expiry levels and notes
// ---------------------------------------------------------------------------------------------

/// Where a credential stands relative to its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryLevel {
    /// No expiry recorded.
    Unknown,
    /// More than 30 days left.
    Valid,
    /// 30 days or less (more than 14).
    Within30,
    /// 14 days or less (more than 7).
    Within14,
    /// 7 days or less, not yet expired.
    Within7,
    /// At or after the expiry instant.
    Expired,
}

impl ExpiryLevel {
    /// The warning threshold reached (30, 14 or 7), if any.
    pub fn threshold_days(self) -> Option<i64> {
        match self {
            ExpiryLevel::Within30 => Some(30),
            ExpiryLevel::Within14 => Some(14),
            ExpiryLevel::Within7 => Some(7),
            _ => None,
        }
    }

    /// Usable for a token request (as far as calgate knows).
    pub fn is_usable(self) -> bool {
        self != ExpiryLevel::Expired
    }
}

/// The level of an expiry at `now`: expired when `expires <= now`, else the smallest
/// threshold `N` of [`WARN_DAYS`] with `expires - now <= N days`.
pub fn expiry_level(expires: Option<Timestamp>, now: Timestamp) -> ExpiryLevel {
    let Some(at) = expires else {
        return ExpiryLevel::Unknown;
    };
    if at <= now {
        return ExpiryLevel::Expired;
    }
    let left = at.duration_since(now);
    let within = |days: i64| left <= SignedDuration::from_secs(days * DAY_SECS);
    if within(7) {
        ExpiryLevel::Within7
    } else if within(14) {
        ExpiryLevel::Within14
    } else if within(30) {
        ExpiryLevel::Within30
    } else {
        ExpiryLevel::Valid
    }
}

/// Days left, rounded up (so "in 30 days" ⇔ within the 30-day threshold); 0 when expired.
fn days_left(at: Timestamp, now: Timestamp) -> i64 {
    if at <= now {
        return 0;
    }
    let left = at.duration_since(now);
    let whole = left.as_secs() / DAY_SECS;
    if left > SignedDuration::from_secs(whole * DAY_SECS) {
        whole + 1
    } else {
        whole
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `in 12 days`, `in 5 hours`, `today` (expired), `3 days ago` — relative time in words.
fn relative(at: Timestamp, now: Timestamp) -> String {
    let diff = at.as_second().saturating_sub(now.as_second());
    if diff > 0 {
        if diff < DAY_SECS {
            let hours = (diff + 3599) / 3600;
            format!("in {}", plural(hours, "hour", "hours"))
        } else {
            format!("in {}", plural(days_left(at, now), "day", "days"))
        }
    } else {
        let ago = -diff;
        if ago < 3600 {
            "just now".to_owned()
        } else if ago < DAY_SECS {
            format!("{} ago", plural(ago / 3600, "hour", "hours"))
        } else {
            format!("{} ago", plural(ago / DAY_SECS, "day", "days"))
        }
    }
}

/// `2026-12-05` (UTC).
pub fn utc_date(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC).date().to_string()
}

/// The "expires" column of `connection list`: `None` when no expiry is recorded, else
/// `in 45 days`, `in 25 days (under 30 days: rotate)`, `in 12 days (under 14 days: rotate)`,
/// `in 5 days (under 7 days: rotate now)`, `EXPIRED 3 days ago`.
pub fn expiry_note(credential: &Credential, now: Timestamp) -> Option<String> {
    let at = credential.expires_at?;
    let rel = relative(at, now);
    Some(match expiry_level(Some(at), now) {
        ExpiryLevel::Unknown | ExpiryLevel::Valid => rel,
        ExpiryLevel::Within30 => format!("{rel} (under 30 days: rotate)"),
        ExpiryLevel::Within14 => format!("{rel} (under 14 days: rotate)"),
        ExpiryLevel::Within7 => format!("{rel} (under 7 days: rotate now)"),
        ExpiryLevel::Expired => format!("EXPIRED {rel}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Naming credentials
// ---------------------------------------------------------------------------------------------

/// What `connection list` shows in its ID column and what `secret remove` accepts first:
/// `#` + calgate's credential id.
pub fn display_id(c: &Credential) -> String {
    format!("#{}", c.id)
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// A credential in words, never with its value: `secret #3 (ID 0f8fad5b…)`,
/// `secret #3 'abc…'` (the first three characters, as Entra ID shows them in the portal's Value
/// column), `certificate #4 (thumbprint 1A2B3C4D…)`.
pub fn credential_label(c: &Credential) -> String {
    match c.kind {
        CredentialKind::Secret => match &c.key_id {
            Some(k) => format!("secret #{} (ID {})", c.id, short(k, 8)),
            None => {
                let hint: String = c.secret.expose().chars().take(3).collect();
                format!("secret #{} '{hint}…'", c.id)
            }
        },
        CredentialKind::Certificate => match &c.key_id {
            Some(k) => format!("certificate #{} (thumbprint {})", c.id, short(k, 8)),
            None => format!("certificate #{}", c.id),
        },
    }
}

/// One credential as `connection list` (text or JSON) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialSummary {
    /// calgate's id (what `secret remove` takes; the Entra ID or thumbprint work too).
    pub id: CredentialId,
    /// `#3`.
    pub display_id: String,
    /// `secret` / `certificate`.
    pub kind: &'static str,
    /// `secret #3 (ID 0f8fad5b…)`.
    pub label: String,
    /// The Entra secret ID or the certificate's SHA-1 thumbprint (hex), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub level: ExpiryLevel,
    /// [`expiry_note`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The one the graph client tries first (the newest not known to be expired).
    pub preferred: bool,
    pub added_at: Timestamp,
}

/// The connection's credentials, newest first, as `connection list` shows them.
pub fn summarize(connection: &Connection, now: Timestamp) -> Vec<CredentialSummary> {
    let preferred = preferred_credential(connection, now).map(|c| c.id);
    connection
        .credentials
        .iter()
        .map(|c| CredentialSummary {
            id: c.id,
            display_id: display_id(c),
            kind: c.kind.as_str(),
            label: credential_label(c),
            key_id: c.key_id.clone(),
            expires_at: c.expires_at,
            level: expiry_level(c.expires_at, now),
            expires: expiry_note(c, now),
            preferred: Some(c.id) == preferred,
            added_at: c.added_at,
        })
        .collect()
}

/// The credential a fresh graph client tries first: the newest not known to be expired.
pub fn preferred_credential(connection: &Connection, now: Timestamp) -> Option<&Credential> {
    connection
        .credentials
        .iter()
        .find(|c| expiry_level(c.expires_at, now).is_usable())
}

fn normalize_id(s: &str) -> String {
    s.chars()
        .filter(|ch| !ch.is_whitespace() && *ch != ':')
        .collect::<String>()
        .trim_end_matches('…')
        .to_lowercase()
}

/// Finds a credential of `connection` by what `connection list` shows: calgate's id (`3` or
/// `#3`), the Entra secret ID, or the certificate thumbprint (hex, any case, colons allowed),
/// whole or as a unique prefix of at least 6 characters.
pub fn find_credential<'a>(
    connection: &'a Connection,
    id: &str,
) -> Result<&'a Credential, LifecycleError> {
    let wanted = id.trim();
    let listed = || {
        let ids: Vec<String> = connection
            .credentials
            .iter()
            .map(credential_label)
            .collect();
        if ids.is_empty() {
            "it has no credentials".to_owned()
        } else {
            format!("it has {}", ids.join(", "))
        }
    };
    if wanted.is_empty() {
        return Err(invalid(format!(
            "give the credential to remove: its id as `calgate connection list` shows it ({})",
            listed()
        )));
    }
    let numeric = wanted.strip_prefix('#').unwrap_or(wanted);
    if let Ok(n) = numeric.parse::<i64>()
        && let Some(c) = connection.credentials.iter().find(|c| c.id.0 == n)
    {
        return Ok(c);
    }
    let key = normalize_id(wanted);
    if let Some(c) = connection
        .credentials
        .iter()
        .find(|c| c.key_id.as_deref().map(normalize_id).as_deref() == Some(key.as_str()))
    {
        return Ok(c);
    }
    if key.chars().count() >= 6 {
        let matches: Vec<&Credential> = connection
            .credentials
            .iter()
            .filter(|c| {
                c.key_id
                    .as_deref()
                    .is_some_and(|k| normalize_id(k).starts_with(&key))
            })
            .collect();
        match matches.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                let which: Vec<String> = many.iter().map(|c| credential_label(c)).collect();
                return Err(invalid(format!(
                    "'{wanted}' matches several credentials of connection '{}' ({}): give calgate's id, e.g. `{}`",
                    connection.name,
                    which.join(", "),
                    display_id(many[0])
                )));
            }
        }
    }
    Err(LifecycleError::NotFound(format!(
        "connection '{}' has no credential '{wanted}' ({}): use an id from `calgate connection list`",
        connection.name,
        listed()
    )))
}

// ---------------------------------------------------------------------------------------------
// Reading a credential from the command line's sources
// ---------------------------------------------------------------------------------------------

/// Where the new credential comes from (exactly one of the three flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialInput {
    /// `--client-secret-env VAR`: the secret's value is in this environment variable.
    SecretEnv(String),
    /// `--client-secret-file FILE`.
    SecretFile(PathBuf),
    /// `--certificate FILE`: one PEM file with the private key and the certificate.
    Certificate(PathBuf),
}

/// `secret add`'s options besides the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialOptions {
    /// `--secret-expires DATE`: the secret's expiry as Entra ID shows it. For certificates the
    /// certificate's notAfter is used, or this date when it is earlier.
    pub expires: Option<Timestamp>,
    /// `--secret-id ID`: the secret's ID in Entra ID (for certificates the thumbprint is read
    /// from the certificate).
    pub secret_id: Option<String>,
}

/// Reads the secret or certificate named by `input` into a credential ready for
/// [`add_credential`]. Values never appear in errors.
pub fn read_credential(
    input: &CredentialInput,
    options: &CredentialOptions,
    now: Timestamp,
) -> Result<NewCredential, LifecycleError> {
    match input {
        CredentialInput::SecretEnv(var) => {
            let value = std::env::var(var).map_err(|_| {
                invalid(format!(
                    "the environment variable {var} is not set (or not UTF-8): set it to the new secret's Value from Entra ID › App registrations › your app › Certificates & secrets"
                ))
            })?;
            secret_credential(&value, &format!("${var}"), options, now)
        }
        CredentialInput::SecretFile(path) => {
            let value = std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "cannot read the client secret file {} ({e}): check the path and that it is readable",
                    path.display()
                ))
            })?;
            secret_credential(&value, &path.display().to_string(), options, now)
        }
        CredentialInput::Certificate(path) => {
            let text = read_pem_file(path)?;
            certificate_credential(&text, &path.display().to_string(), options, now)
        }
    }
}

fn read_pem_file(path: &Path) -> Result<String, LifecycleError> {
    std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read the certificate file {} ({e}): check the path and that it is readable",
            path.display()
        ))
    })
}

fn looks_like_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_expiry(expires: Option<Timestamp>, now: Timestamp) -> Result<(), LifecycleError> {
    if let Some(at) = expires
        && at <= now
    {
        return Err(invalid(format!(
            "the expiry date {} is not in the future: Entra ID rejects an expired secret (AADSTS7000222); create a new one in Entra ID › App registrations › your app › Certificates & secrets and give its expiry",
            utc_date(at)
        )));
    }
    Ok(())
}

/// A client secret credential from its value (`from` names the source for messages).
pub fn secret_credential(
    value: &str,
    from: &str,
    options: &CredentialOptions,
    now: Timestamp,
) -> Result<NewCredential, LifecycleError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(format!(
            "the client secret from {from} is empty: paste the secret's Value from Entra ID › App registrations › your app › Certificates & secrets"
        )));
    }
    if looks_like_guid(value) {
        return Err(invalid(format!(
            "the client secret from {from} looks like the secret's ID (a GUID), not its Value: copy the Value column of Entra ID › App registrations › your app › Certificates & secrets (it is shown only right after the secret is created; if it is hidden, create a new secret) and give the ID with --secret-id"
        )));
    }
    if value.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "the client secret from {from} contains spaces or line breaks: paste only the secret's Value"
        )));
    }
    check_expiry(options.expires, now)?;
    let key_id = options
        .secret_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if key_id.is_some_and(|k| k == value) {
        return Err(invalid(
            "--secret-id is the same as the secret's value: --secret-id takes the Secret ID column (a GUID), the secret comes from --client-secret-env or --client-secret-file",
        ));
    }
    let mut c = NewCredential::secret(value, options.expires);
    c.key_id = key_id.map(str::to_owned);
    Ok(c)
}

/// The first private key block and every certificate block of a PEM text.
fn split_pem(text: &str) -> (Option<(String, String)>, Option<String>) {
    let mut key = None;
    let mut certs = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_owned();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let block = &rest[start..start + end + end_marker.len()];
        if label.ends_with("PRIVATE KEY") {
            key.get_or_insert_with(|| (label.clone(), format!("{block}\n")));
        } else if label == "CERTIFICATE" {
            certs.push_str(block);
            certs.push('\n');
        }
        rest = &rest[start + end + end_marker.len()..];
    }
    (key, (!certs.is_empty()).then_some(certs))
}

/// A certificate credential from one PEM text with the private key and the certificate (the
/// first certificate is the app's; a chain may follow). The expiry is the certificate's
/// notAfter (or `options.expires` when earlier); the key id is its SHA-1 thumbprint (hex, as
/// the Entra portal shows it).
pub fn certificate_credential(
    pem: &str,
    from: &str,
    options: &CredentialOptions,
    now: Timestamp,
) -> Result<NewCredential, LifecycleError> {
    let (key, cert) = split_pem(pem);
    let Some((label, key)) = key else {
        return Err(invalid(format!(
            "{from} holds no private key: give one PEM file with the private key (-----BEGIN PRIVATE KEY-----) and the certificate, e.g. `cat calgate.key calgate.crt > calgate.pem`"
        )));
    };
    if label.contains("ENCRYPTED") {
        return Err(invalid(format!(
            "the private key in {from} is encrypted with a passphrase: write an unencrypted copy with `openssl pkey -in {from} -out calgate-key.pem` and combine it with the certificate (calgate seals it at rest)"
        )));
    }
    if !(label == "PRIVATE KEY" || label == "RSA PRIVATE KEY") {
        return Err(invalid(format!(
            "the private key in {from} is a {label}: Entra ID certificate credentials need an RSA key (create one with `openssl req -x509 -newkey rsa:2048 …`, see docs/admin/credentials.md)"
        )));
    }
    let Some(cert) = cert else {
        return Err(invalid(format!(
            "{from} holds no certificate: give one PEM file with the certificate (-----BEGIN CERTIFICATE-----) and its private key"
        )));
    };
    let info = CertificateInfo::from_pem(&cert).map_err(|e| invalid(e.message))?;
    if info.not_after <= now {
        return Err(invalid(format!(
            "the certificate in {from} expired on {}: create a new one (see docs/admin/credentials.md) and upload its .cer to Entra ID › App registrations › your app › Certificates & secrets",
            utc_date(info.not_after)
        )));
    }
    if info.not_before > now {
        return Err(invalid(format!(
            "the certificate in {from} is not valid before {}: check this machine's clock, or wait until then",
            info.not_before
        )));
    }
    check_expiry(options.expires, now)?;
    let expires = match options.expires {
        Some(at) if at < info.not_after => at,
        _ => info.not_after,
    };
    let mut c = NewCredential::certificate(key, cert, Some(expires));
    c.key_id = Some(info.thumbprint_hex);
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Graph configuration of stored credentials (for validation and verification)
// ---------------------------------------------------------------------------------------------

/// A client for `connection` restricted to the credentials `keep` selects, in stored order.
fn client_with(
    connection: &Connection,
    keep: impl Fn(&Credential) -> bool,
    shared: &Shared,
) -> Result<GraphClient, calgate_graph::Error> {
    let mut only = connection.clone();
    only.credentials.retain(|c| keep(c));
    let cfg = calgate_graph::ConnectionConfig::from_connection(&only)?;
    GraphClient::new(cfg, shared)
}

fn stored_from_new(c: &NewCredential) -> Credential {
    Credential {
        id: CredentialId(0),
        kind: c.kind,
        secret: c.secret.clone(),
        certificate_pem: c.certificate_pem.clone(),
        key_id: c.key_id.clone(),
        expires_at: c.expires_at,
        added_at: Timestamp::UNIX_EPOCH,
    }
}

// ---------------------------------------------------------------------------------------------
// secret add / remove
// ---------------------------------------------------------------------------------------------

/// What `secret add` did.
#[derive(Debug, Clone)]
pub struct AddedCredential {
    pub id: CredentialId,
    /// The connection as stored afterwards (credentials newest first: the new one first).
    pub connection: Connection,
    /// The new credential as `connection list` shows it.
    pub summary: CredentialSummary,
    /// One line for the administrator: what was added and what to do next.
    pub message: String,
}

async fn load(store: &dyn Store, name: &str) -> Result<Connection, LifecycleError> {
    store.connection(name).await?.ok_or_else(|| {
        LifecycleError::NotFound(format!(
            "there is no connection named '{name}': see `calgate connection list`, or add it with `calgate connection add {name} --tenant ID --client-id ID --certificate FILE.pem`"
        ))
    })
}

/// `calgate connection secret add NAME …`: adds `credential` to the connection as its newest
/// (so it is the one used from the next token request on; the others stay as fallbacks).
/// Refuses a credential the connection already holds and one the graph client cannot use (an
/// unreadable key). Does not contact Entra ID: call [`verify_credential`] for that.
pub async fn add_credential(
    store: &dyn Store,
    connection: &str,
    credential: NewCredential,
    now: Timestamp,
) -> Result<AddedCredential, LifecycleError> {
    let before = load(store, connection).await?;
    if let Some(same) = before.credentials.iter().find(|c| {
        c.kind == credential.kind
            && c.secret == credential.secret
            && c.certificate_pem == credential.certificate_pem
    }) {
        return Err(LifecycleError::Refused(format!(
            "connection '{}' already holds this {} as {}: nothing to add",
            before.name,
            credential.kind.as_str(),
            credential_label(same)
        )));
    }
    if let Some(k) = &credential.key_id
        && let Some(same) = before.credentials.iter().find(|c| {
            c.key_id
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(k))
        })
    {
        return Err(LifecycleError::Refused(format!(
            "connection '{}' already holds a credential with ID {k} ({}): remove it first with `calgate connection secret remove {} {}`, or check the ID",
            before.name,
            credential_label(same),
            before.name,
            same.id
        )));
    }
    // The graph client must accept it (a readable RSA key, a parseable certificate): build one
    // offline with just this credential. No request is sent.
    let mut probe = before.clone();
    probe.credentials = vec![stored_from_new(&credential)];
    client_with(&probe, |_| true, &Shared::new()?)?;

    let id = store
        .add_credential(&before.name, &credential)
        .await
        .map_err(|e| match e.kind() {
            StoreErrorKind::NotFound => LifecycleError::NotFound(format!(
                "connection '{}' was removed meanwhile: see `calgate connection list`",
                before.name
            )),
            _ => LifecycleError::Store(e),
        })?;
    let after = load(store, &before.name).await?;
    let summary = summarize(&after, now)
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            LifecycleError::NotFound(format!(
                "the credential just added to connection '{}' is not there: was it removed meanwhile?",
                after.name
            ))
        })?;
    let expiry = match summary.expires_at {
        Some(at) => format!("expires {} ({})", utc_date(at), relative(at, now)),
        None => "expiry not recorded (give --secret-expires DATE to be warned in time)".to_owned(),
    };
    let others = after.credentials.len() - 1;
    let next = if others == 0 {
        String::new()
    } else {
        let old: Vec<String> = after
            .credentials
            .iter()
            .filter(|c| c.id != id)
            .map(|c| c.id.to_string())
            .collect();
        format!(
            "; check it with `calgate connection test {n}`, then remove the old one with `calgate connection secret remove {n} {}`",
            old.join(" / "),
            n = after.name
        )
    };
    let message = format!(
        "added {} to connection '{}': {expiry}; it is used from the next token request{next}",
        summary.label, after.name
    );
    Ok(AddedCredential {
        id,
        connection: after,
        summary,
        message,
    })
}

/// `secret remove`'s options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// `--force`: remove it even though every credential left is expired. (The last
    /// credential is never removed: remove the connection instead.)
    pub force: bool,
}

/// What `secret remove` did.
#[derive(Debug, Clone)]
pub struct RemovedCredential {
    /// The removed credential as it was listed.
    pub removed: CredentialSummary,
    /// The connection afterwards.
    pub connection: Connection,
    pub message: String,
}

/// `calgate connection secret remove NAME ID`: removes one credential, found by calgate's id,
/// the Entra secret ID or the certificate thumbprint ([`find_credential`]). Refuses to remove a
/// connection's last credential, and (without `force`) one whose removal leaves only expired
/// credentials. Remember to delete the secret in Entra ID too.
pub async fn remove_credential(
    store: &dyn Store,
    connection: &str,
    id: &str,
    options: RemoveOptions,
    now: Timestamp,
) -> Result<RemovedCredential, LifecycleError> {
    let conn = load(store, connection).await?;
    let target = find_credential(&conn, id)?;
    let label = credential_label(target);
    let n = &conn.name;
    if conn.credentials.len() <= 1 {
        return Err(LifecycleError::Refused(format!(
            "{label} is the only credential of connection '{n}': removing it would stop every mailbox of '{n}' from syncing. Add the new secret or certificate first (`calgate connection secret add {n} --client-secret-env VAR` or `--certificate FILE.pem`), then remove this one; or remove the whole connection with `calgate connection remove {n}`"
        )));
    }
    let remaining_usable = conn
        .credentials
        .iter()
        .filter(|c| c.id != target.id)
        .any(|c| expiry_level(c.expires_at, now).is_usable());
    if !remaining_usable && expiry_level(target.expires_at, now).is_usable() && !options.force {
        return Err(LifecycleError::Refused(format!(
            "{label} is the only credential of connection '{n}' that has not expired: removing it would stop every mailbox of '{n}' from syncing. Remove the expired one(s) instead (see `calgate connection list`), or add --force if you really mean this one"
        )));
    }
    let removed = summarize(&conn, now)
        .into_iter()
        .find(|s| s.id == target.id)
        .ok_or_else(|| LifecycleError::NotFound(format!("{label} vanished")))?;
    let done = store.remove_credential(n, target.id).await?;
    if !done {
        return Err(LifecycleError::NotFound(format!(
            "{label} of connection '{n}' was already removed"
        )));
    }
    let after = load(store, n).await?;
    let where_in_entra = match target.kind {
        CredentialKind::Secret => {
            "delete the secret in Entra ID › App registrations › your app › Certificates & secrets › Client secrets too"
        }
        CredentialKind::Certificate => {
            "delete the certificate in Entra ID › App registrations › your app › Certificates & secrets › Certificates too"
        }
    };
    let message = format!(
        "removed {label} from connection '{n}' ({} left); {where_in_entra}",
        plural(after.credentials.len() as i64, "credential", "credentials")
    );
    Ok(RemovedCredential {
        removed,
        connection: after,
        message,
    })
}

/// Checks one credential of a connection against Entra ID on its own (no fallback to the
/// others, which would hide a bad new secret): ✓ when a token is issued, else ✗ with Entra's
/// reason and the fix. An AADSTS7000222 answer is recorded as the credential's expiry.
pub async fn verify_credential(
    store: &dyn Store,
    shared: &Shared,
    connection: &str,
    id: &str,
    now: Timestamp,
) -> Result<Checklist, LifecycleError> {
    let conn = load(store, connection).await?;
    let cred = find_credential(&conn, id)?;
    let label = credential_label(cred);
    let mut list = Checklist::new(format!("Verify {label} of connection '{}'", conn.name));
    let client = match client_with(&conn, |c| c.id == cred.id, shared) {
        Ok(c) => c,
        Err(e) => {
            let mut c = Check::fail(
                "credential-token",
                format!("{label} cannot be used: {}", e.message),
                "add it again with `calgate connection secret add`",
            );
            c.code = e.code.clone();
            list.push(c);
            return Ok(list);
        }
    };
    match client.access_token().await {
        Ok(token) => {
            let roles = match token.roles() {
                Some([]) => "no application permissions".to_owned(),
                Some(r) => r.join(", "),
                None => "roles not readable".to_owned(),
            };
            list.push(Check::pass(
                "credential-token",
                format!("Entra ID issued a token for {label} ({roles})"),
            ));
        }
        Err(e) => {
            if e.aadsts() == Some(AADSTS_SECRET_EXPIRED) {
                store.set_credential_expiry(cred.id, Some(now)).await?;
            }
            let fix = if conn.credentials.len() > 1 {
                format!(
                    "{}; the connection keeps using its other credential(s) meanwhile",
                    e.message
                )
            } else {
                e.message.clone()
            };
            let mut c = Check::fail(
                "credential-token",
                format!("Entra ID did not issue a token for {label}"),
                fix,
            );
            c.code = e.code.clone();
            list.push(c);
        }
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// doctor
// ---------------------------------------------------------------------------------------------

fn add_hint(conn: &Connection, kind: CredentialKind) -> String {
    let n = &conn.name;
    match kind {
        CredentialKind::Secret => format!(
            "create a new client secret in Entra ID › App registrations › {} › Certificates & secrets › New client secret, then `calgate connection secret add {n} --client-secret-env NEW_SECRET --secret-expires YYYY-MM-DD` (or better, a certificate: `calgate connection secret add {n} --certificate calgate.pem`, see docs/admin/credentials.md)",
            conn.client_id
        ),
        CredentialKind::Certificate => format!(
            "create a new certificate (`openssl req -x509 -newkey rsa:2048 -nodes -keyout calgate.key -out calgate.crt -days 365 -subj /CN=calgate`), upload calgate.crt in Entra ID › App registrations › {} › Certificates & secrets › Certificates, then `calgate connection secret add {n} --certificate calgate.pem` (key and certificate in one file)",
            conn.client_id
        ),
    }
}

fn credential_check(conn: &Connection, c: &Credential, now: Timestamp) -> Check {
    let n = &conn.name;
    let label = credential_label(c);
    let check_id = format!("credential:{n}:{}", c.id);
    let level = expiry_level(c.expires_at, now);
    // Another credential that is valid for longer than this one (a rotation in progress).
    let successor = conn
        .credentials
        .iter()
        .filter(|o| o.id != c.id)
        .filter(|o| match (o.expires_at, c.expires_at) {
            (None, _) => true,
            (Some(oa), Some(ca)) => oa > ca && oa > now,
            (Some(oa), None) => oa > now,
        })
        .max_by_key(|o| o.expires_at.unwrap_or(Timestamp::MAX));
    let remove = format!("`calgate connection secret remove {n} {}`", c.id);
    match (level, c.expires_at) {
        (ExpiryLevel::Unknown, _) | (_, None) => Check::pass(
            &check_id,
            format!(
                "{label} of connection '{n}': expiry not recorded (calgate learns it if Entra ID reports it expired)"
            ),
        ),
        (ExpiryLevel::Valid, Some(at)) => Check::pass(
            &check_id,
            format!(
                "{label} of connection '{n}' expires in {} ({})",
                plural(days_left(at, now), "day", "days"),
                utc_date(at)
            ),
        ),
        (ExpiryLevel::Expired, Some(at)) => {
            let when = relative(at, now);
            match successor.or_else(|| {
                conn.credentials
                    .iter()
                    .find(|o| o.id != c.id && expiry_level(o.expires_at, now).is_usable())
            }) {
                Some(other) => Check::warn(
                    &check_id,
                    format!(
                        "expired {} still configured: {label} of connection '{n}' expired {when} ({}); {} is in use",
                        c.kind.as_str(),
                        utc_date(at),
                        credential_label(other)
                    ),
                    format!("remove it with {remove}"),
                ),
                None => Check::fail(
                    &check_id,
                    format!(
                        "{label} of connection '{n}' expired {when} ({}): Entra ID rejects it (AADSTS7000222)",
                        utc_date(at)
                    ),
                    format!("{}; then remove the expired one with {remove}", add_hint(conn, c.kind)),
                )
                .with_expiry_code(c.kind),
            }
        }
        (level, Some(at)) => {
            let threshold = level.threshold_days().unwrap_or(30);
            let summary = format!(
                "{label} of connection '{n}' expires in {} ({}) — within {threshold} days",
                plural(days_left(at, now), "day", "days"),
                utc_date(at)
            );
            let fix = match successor {
                Some(other) => format!(
                    "{} is configured and valid longer: check it with `calgate connection test {n}`, then remove this one with {remove}",
                    credential_label(other)
                ),
                None => format!(
                    "add a new {} now: {}; then remove the old one with {remove}",
                    c.kind.as_str(),
                    add_hint(conn, c.kind)
                ),
            };
            Check::warn(&check_id, summary, fix)
        }
    }
}

fn connection_check(conn: &Connection, now: Timestamp) -> Check {
    let n = &conn.name;
    let check_id = format!("connection:{n}");
    if conn.credentials.is_empty() {
        return Check::fail(
            &check_id,
            format!(
                "connection '{n}' has no secret or certificate: none of its mailboxes can sync"
            ),
            add_hint(conn, CredentialKind::Certificate),
        );
    }
    match preferred_credential(conn, now) {
        Some(c) => Check::pass(
            &check_id,
            format!(
                "connection '{n}': {} configured, {} in use",
                plural(conn.credentials.len() as i64, "credential", "credentials"),
                credential_label(c)
            ),
        ),
        None => Check::fail(
            &check_id,
            format!(
                "connection '{n}' has no valid credential: every secret or certificate has expired, so none of its mailboxes can sync"
            ),
            add_hint(
                conn,
                conn.credentials
                    .first()
                    .map(|c| c.kind)
                    .unwrap_or(CredentialKind::Secret),
            ),
        )
        .with_expiry_code(
            conn.credentials
                .first()
                .map(|c| c.kind)
                .unwrap_or(CredentialKind::Secret),
        ),
    }
}

/// Entra's code for an expired credential: AADSTS7000222 for secrets (certificates past
/// notAfter are refused with AADSTS700027, which has other causes too: no code then).
trait ExpiryCode {
    fn with_expiry_code(self, kind: CredentialKind) -> Self;
}

impl ExpiryCode for Check {
    fn with_expiry_code(self, kind: CredentialKind) -> Self {
        match kind {
            CredentialKind::Secret => self.with_code(format!("AADSTS{AADSTS_SECRET_EXPIRED}")),
            CredentialKind::Certificate => self,
        }
    }
}

fn ago(t: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second().saturating_sub(t.as_second()).max(0);
    if secs < 3600 {
        format!("{} ago", plural(secs / 60, "minute", "minutes"))
    } else if secs < 2 * DAY_SECS {
        format!("{} ago", plural(secs / 3600, "hour", "hours"))
    } else {
        format!("{} ago", plural(secs / DAY_SECS, "day", "days"))
    }
}

fn mailbox_check(s: &MailboxStatus, now: Timestamp) -> Option<Check> {
    let a = &s.address;
    let check_id = format!("mailbox:{a}");
    let retry = format!("`calgate sync --mailbox {a}`");
    if let Some(err) = &s.last_error {
        let next = s
            .next_action
            .as_deref()
            .map(|n| format!("next: {n}; "))
            .unwrap_or_default();
        let failures = if s.consecutive_failures > 1 {
            format!(" ({} failures in a row)", s.consecutive_failures)
        } else {
            String::new()
        };
        return Some(Check::fail(
            &check_id,
            format!(
                "mailbox {a} (connection '{}'): the last sync, {}, failed{failures}: {}",
                s.connection,
                ago(err.at, now),
                err.message
            ),
            format!("{next}after fixing it, sync now with {retry}"),
        ));
    }
    match s.last_success {
        None => Some(Check::warn(
            &check_id,
            format!(
                "mailbox {a} (connection '{}') has never been synced",
                s.connection
            ),
            format!("run {retry} (or `calgate sync` for every mailbox)"),
        )),
        Some(t) if now.duration_since(t) > STALE_AFTER => Some(Check::warn(
            &check_id,
            format!(
                "mailbox {a} (connection '{}') has not synced successfully for more than 24 hours (last success {}, {})",
                s.connection,
                t.to_zoned(TimeZone::UTC).strftime("%Y-%m-%d %H:%M UTC"),
                ago(t, now)
            ),
            format!(
                "check that `calgate sync` still runs on its schedule (e.g. from cron); sync now with {retry}"
            ),
        )),
        Some(_) => None,
    }
}

/// `calgate doctor`: every credential's expiry (✓ unknown or more than 30 days; a warning at
/// 30, 14 and 7 days; ✗ at or after expiry, or a warning when another valid credential
/// exists), every connection (✗ without a valid credential), every mailbox's sync status (✗
/// on a last error with its message and calgate's next action; a warning without a successful
/// sync in 24 hours; the healthy ones on one ✓ line). `now` is injected.
pub async fn doctor(store: &dyn Store, now: Timestamp) -> Result<Checklist, LifecycleError> {
    let database = database_check(store).await;
    doctor_after(store, now, database).await
}

/// The database's integrity check as one line (what `doctor` says first). It reads the whole
/// file: seconds on a large store, so the console runs it in the background and shows the last
/// result.
pub async fn database_check(store: &dyn Store) -> Check {
    let fix = "stop every calgate process, restore the data directory from a backup (or rebuild it: keep master.key, `sqlite3 calgate.db .recover | sqlite3 recovered.db`), then `calgate sync --full`";
    match store.check_integrity().await {
        Ok(problems) if problems.is_empty() => {
            Check::pass("database", "the database passed its integrity check")
        }
        Ok(problems) => Check::fail(
            "database",
            format!(
                "the database is damaged ({} problem{} found, e.g. {})",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems[0]
            ),
            fix,
        ),
        Err(e) => Check::fail(
            "database",
            format!("the database is damaged or unreadable: {e}"),
            fix,
        ),
    }
}

/// `doctor`'s checks after `database` (the [`database_check`], or what stands for it): none
/// when it failed, since nothing else the store says can be trusted then.
pub async fn doctor_after(
    store: &dyn Store,
    now: Timestamp,
    database: Check,
) -> Result<Checklist, LifecycleError> {
    let mut list = Checklist::new("calgate doctor");
    let damaged = database.status == Status::Fail;
    list.push(database);
    if damaged {
        return Ok(list);
    }
    let connections = store.list_connections().await?;
    if connections.is_empty() {
        list.push(Check::warn(
            "connections",
            "no connections configured",
            "add one with `calgate connection add NAME --tenant ID --client-id ID --certificate FILE.pem` (see docs/admin/credentials.md)",
        ));
    }
    for conn in &connections {
        for c in &conn.credentials {
            list.push(credential_check(conn, c, now));
        }
        list.push(connection_check(conn, now));
    }
    let statuses = store.statuses().await?;
    if statuses.is_empty() {
        if !connections.is_empty() {
            list.push(Check::warn(
                "mailboxes",
                "no mailboxes linked",
                "link one with `calgate mailbox link ADDRESS --connection NAME`, or many with `calgate mailbox import FILE.csv`",
            ));
        }
        return Ok(list);
    }
    let mut healthy = 0usize;
    for s in &statuses {
        match mailbox_check(s, now) {
            Some(c) => {
                list.push(c);
            }
            None => healthy += 1,
        }
    }
    if healthy > 0 {
        list.push(Check::pass(
            "mailboxes",
            format!(
                "{} of {} synced successfully within the last 24 hours",
                plural(healthy as i64, "mailbox", "mailboxes"),
                statuses.len()
            ),
        ));
    }
    Ok(list)
}

impl fmt::Display for ExpiryLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpiryLevel::Unknown => "unknown",
            ExpiryLevel::Valid => "valid",
            ExpiryLevel::Within30 => "within 30 days",
            ExpiryLevel::Within14 => "within 14 days",
            ExpiryLevel::Within7 => "within 7 days",
            ExpiryLevel::Expired => "expired",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn levels_at_the_thresholds() {
        let now = at("2026-11-23T12:00:00Z");
        let d = |n: i64| now.checked_add(SignedDuration::from_hours(24 * n)).ok();
        assert_eq!(expiry_level(None, now), ExpiryLevel::Unknown);
        assert_eq!(expiry_level(d(31), now), ExpiryLevel::Valid);
        assert_eq!(expiry_level(d(30), now), ExpiryLevel::Within30);
        assert_eq!(expiry_level(d(15), now), ExpiryLevel::Within30);
        assert_eq!(expiry_level(d(14), now), ExpiryLevel::Within14);
        assert_eq!(expiry_level(d(8), now), ExpiryLevel::Within14);
        assert_eq!(expiry_level(d(7), now), ExpiryLevel::Within7);
        assert_eq!(expiry_level(d(0), now), ExpiryLevel::Expired);
        assert_eq!(expiry_level(d(-3), now), ExpiryLevel::Expired);
        let just_over = now
            .checked_add(SignedDuration::from_secs(30 * DAY_SECS + 1))
            .ok();
        assert_eq!(expiry_level(just_over, now), ExpiryLevel::Valid);
        let half_second = now
            .checked_add(SignedDuration::from_millis(30 * DAY_SECS * 1000 + 500))
            .ok();
        assert_eq!(expiry_level(half_second, now), ExpiryLevel::Valid);
        assert_eq!(days_left(half_second.unwrap_or(now), now), 31);
        assert_eq!(days_left(at("2026-12-05T12:00:00Z"), now), 12);
        assert_eq!(relative(at("2026-11-20T12:00:00Z"), now), "3 days ago");
        assert_eq!(relative(at("2026-11-23T17:00:00Z"), now), "in 5 hours");
    }

    #[test]
    fn guid_detection_and_pem_split() {
        assert!(looks_like_guid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!looks_like_guid("abc8Q~0123456789012345678901234567890123"));
        let text = "x\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n";
        let (k, c) = split_pem(text);
        assert_eq!(k.map(|(l, _)| l).as_deref(), Some("PRIVATE KEY"));
        assert!(c.unwrap_or_default().contains("AAA"));
    }
}
