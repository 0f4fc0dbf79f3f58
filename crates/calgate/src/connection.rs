//! `calgate connection add|list|remove|test` and `calgate connection secret add|remove`.
//!
//! Secrets come from an environment variable or a file, never from the command line, and are
//! never printed: the store seals them at rest. Reading and checking a credential, the
//! rotation rules and Test settings live in `calgate-admin`; this module parses and prints.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use calgate_admin::diagnose::{self, Purpose, TestOptions};
use calgate_admin::lifecycle::{
    self, CredentialInput, CredentialOptions, CredentialSummary, LifecycleError, RemoveOptions,
};
use calgate_graph::{Cloud, GraphClient, Shared, validate_endpoint};
use calgate_store::{
    Connection, ConnectionId, Credential, CredentialId, ErrorKind as StoreErrorKind, NewConnection,
    NewCredential, Store,
};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::output::{DateArg, Table, finish_checklist, print_json, print_out};
use crate::{Reported, StoreLocation, Usage, error_line};

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionCommand {
    /// Add a connection: an app registration (tenant, client id, credential).
    Add(Box<AddArgs>),
    /// List connections and their credentials: id, expiry, the one in use (never the secrets).
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a connection and its credentials (unlink its mailboxes first).
    Remove {
        /// The connection's name.
        name: String,
    },
    /// Test settings: sign in with every credential, check permissions, the directory and
    /// one mailbox; one ✓/✗ line per step. Exit 0 only when every step passes.
    Test(TestArgs),
    /// Secrets and certificates of a connection (rotation without downtime).
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Add a client secret or certificate to a connection; it is used from the next token
    /// request on, the others stay as fallbacks until removed.
    Add(Box<SecretAddArgs>),
    /// Remove one credential (by the id `connection list` shows, the Entra Secret ID or the
    /// certificate thumbprint).
    Remove {
        /// The connection's name.
        name: String,
        /// `#3` / `3`, the Secret ID, or the thumbprint (a unique prefix of 6+ characters).
        id: String,
        /// Remove it even though every credential left has expired.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CloudArg {
    /// Microsoft's global cloud (login.microsoftonline.com, graph.microsoft.com).
    Global,
    /// US Government GCC High.
    Usgov,
    /// US Government DoD.
    UsgovDod,
    /// Microsoft 365 operated by 21Vianet.
    China,
}

impl CloudArg {
    fn cloud(self) -> Cloud {
        match self {
            CloudArg::Global => Cloud::global(),
            CloudArg::Usgov => Cloud::us_gov(),
            CloudArg::UsgovDod => Cloud::us_gov_dod(),
            CloudArg::China => Cloud::china(),
        }
    }
}

/// Where a credential comes from: exactly one of the three.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct CredentialSource {
    /// Read the client secret's value from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Read the client secret's value from this file.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file holding the certificate and its private key (recommended over secrets).
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
}

impl CredentialSource {
    fn input(&self) -> anyhow::Result<CredentialInput> {
        Ok(
            match (
                &self.client_secret_env,
                &self.client_secret_file,
                &self.certificate,
            ) {
                (Some(var), _, _) => CredentialInput::SecretEnv(var.clone()),
                (_, Some(file), _) => CredentialInput::SecretFile(file.clone()),
                (_, _, Some(file)) => CredentialInput::Certificate(file.clone()),
                _ => {
                    return Err(Usage(
                        "give one of --client-secret-env VAR, --client-secret-file FILE or --certificate FILE".to_owned(),
                    )
                    .into());
                }
            },
        )
    }
}

/// Reads the credential the flags name (see `calgate_admin::lifecycle::read_credential`).
fn read_credential(
    source: &CredentialSource,
    expires: Option<DateArg>,
    secret_id: Option<&str>,
    now: Timestamp,
) -> anyhow::Result<NewCredential> {
    let expires = match expires {
        Some(d) => Some(d.resolve(&TimeZone::UTC, false).map_err(Usage)?),
        None => None,
    };
    let options = CredentialOptions {
        expires,
        secret_id: secret_id.map(str::to_owned),
    };
    Ok(lifecycle::read_credential(&source.input()?, &options, now)?)
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// A name for the connection (letters, digits, '.', '_', '-').
    pub name: String,
    /// Directory (tenant) ID, or a verified domain of the tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: String,
    /// Application (client) ID of the app registration.
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    #[command(flatten)]
    pub credential: CredentialSource,
    /// Entra ID authority host (default: the cloud's, e.g. https://login.microsoftonline.com).
    #[arg(long, value_name = "URL")]
    pub authority: Option<String>,
    /// Microsoft Graph base URL (default: the cloud's, e.g. https://graph.microsoft.com/v1.0).
    #[arg(long, value_name = "URL")]
    pub graph_url: Option<String>,
    /// The Microsoft cloud the tenant lives in.
    #[arg(long, value_enum)]
    pub cloud: Option<CloudArg>,
    /// When the client secret expires (YYYY-MM-DD or RFC 3339), as Entra ID shows it.
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub secret_expires: Option<DateArg>,
    /// The secret's Secret ID (a GUID) in Entra ID, to name it as the portal does.
    #[arg(long, value_name = "ID")]
    pub secret_id: Option<String>,
    /// An extra root CA to trust (PEM), e.g. the one `calgate sim --tls` writes.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SecretAddArgs {
    /// The connection's name.
    pub name: String,
    #[command(flatten)]
    pub credential: CredentialSource,
    /// When the client secret expires (YYYY-MM-DD or RFC 3339), as Entra ID shows it (for a
    /// certificate: only when earlier than its notAfter).
    #[arg(long, value_name = "DATE", value_parser = DateArg::parse)]
    pub secret_expires: Option<DateArg>,
    /// The secret's Secret ID (a GUID) in Entra ID, to name it as the portal does.
    #[arg(long, value_name = "ID")]
    pub secret_id: Option<String>,
    /// Do not ask Entra ID for a token with the new credential alone.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PurposeArg {
    /// Only read calendars (Calendars.Read is enough).
    Pull,
    /// Also write the host application's events (needs Calendars.ReadWrite).
    Push,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The connection's name.
    pub name: String,
    /// The mailbox to probe (default: the first linked to the connection).
    #[arg(long, value_name = "ADDRESS")]
    pub mailbox: Option<String>,
    /// What the connection is for.
    #[arg(
        long = "for",
        value_enum,
        value_name = "PURPOSE",
        default_value = "pull"
    )]
    pub purpose: PurposeArg,
    /// The checklist as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(cmd: ConnectionCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        ConnectionCommand::Add(args) => {
            // Check everything first: a bad invocation sets nothing up.
            let now = Timestamp::now();
            let (conn, ca) = new_connection(&args, now)?;
            check_client(&conn, ca.as_deref(), now)?;
            let store = loc.open_or_create().await?;
            let c = add(store.as_ref(), &loc, conn, ca.as_deref()).await?;
            let creds: Vec<String> = lifecycle::summarize(&c, now)
                .iter()
                .map(credential_words)
                .collect();
            print_out(&format!(
                "connection '{}' added: tenant {}, client id {}, {}\ncheck it with `calgate connection test {}`\n",
                c.name,
                c.tenant,
                c.client_id,
                creds.join(", "),
                c.name
            ));
            Ok(())
        }
        ConnectionCommand::List { json } => {
            let store = loc.open().await?;
            list(store.as_ref(), json).await
        }
        ConnectionCommand::Remove { name } => {
            let store = loc.open().await?;
            remove(store.as_ref(), &loc, &name).await?;
            print_out(&format!("connection '{name}' removed\n"));
            Ok(())
        }
        ConnectionCommand::Test(args) => {
            let store = loc.open().await?;
            let opts = TestOptions {
                mailbox: args.mailbox.clone(),
                purpose: match args.purpose {
                    PurposeArg::Pull => Purpose::Pull,
                    PurposeArg::Push => Purpose::Push,
                },
                extra_root_ca_pem: extra_roots(&loc),
                ..TestOptions::default()
            };
            let list = diagnose::test_connection(store.as_ref(), &args.name, &opts).await?;
            finish_checklist(
                &list,
                args.json,
                &format!("connection test of '{}'", args.name),
            )
        }
        ConnectionCommand::Secret(SecretCommand::Add(args)) => secret_add(&args, &loc).await,
        ConnectionCommand::Secret(SecretCommand::Remove { name, id, force }) => {
            let store = loc.open().await?;
            let removed = lifecycle::remove_credential(
                store.as_ref(),
                &name,
                &id,
                RemoveOptions { force },
                Timestamp::now(),
            )
            .await
            .map_err(lifecycle_error)?;
            print_out(&format!("{}\n", removed.message));
            Ok(())
        }
    }
}

/// A lifecycle error as the one line to print.
fn lifecycle_error(e: LifecycleError) -> anyhow::Error {
    match e {
        LifecycleError::Graph(g) => anyhow::anyhow!("{}", g.message),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn secret_add(args: &SecretAddArgs, loc: &StoreLocation) -> anyhow::Result<()> {
    let store = loc.open().await?;
    let now = Timestamp::now();
    let cred = read_credential(
        &args.credential,
        args.secret_expires,
        args.secret_id.as_deref(),
        now,
    )?;
    let added = lifecycle::add_credential(store.as_ref(), &args.name, cred, now)
        .await
        .map_err(lifecycle_error)?;
    print_out(&format!("{}\n", added.message));
    if args.no_verify {
        return Ok(());
    }
    let shared = Shared::with_retry_policy(diagnose::diagnostic_retry_policy())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let list = lifecycle::verify_credential(
        store.as_ref(),
        &shared,
        &args.name,
        &added.summary.display_id,
        extra_roots(loc).as_deref(),
        now,
    )
    .await
    .map_err(lifecycle_error)?;
    print_out(&list.render());
    if list.passed() {
        return Ok(());
    }
    error_line(&format!(
        "{}; it stays configured: fix it in Entra ID and check again with `calgate connection test {n}`, or remove it with `calgate connection secret remove {n} {}`",
        crate::output::checklist_failure(&list, "verification of the new credential"),
        added.summary.display_id,
        n = added.connection.name
    ));
    Err(Reported.into())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Usage(format!(
            "'{name}' is not a usable connection name: use up to 64 letters, digits, '.', '_' or '-'"
        ))
        .into());
    }
    Ok(())
}

/// Builds the connection from the arguments: reads the secret (env var or file) or the
/// certificate, validates URLs. Returns the extra CA's PEM too.
fn new_connection(
    args: &AddArgs,
    now: Timestamp,
) -> anyhow::Result<(NewConnection, Option<String>)> {
    check_name(&args.name)?;
    let tenant = args.tenant.trim().to_owned();
    let client_id = args.client_id.trim().to_owned();
    if tenant.is_empty() || client_id.is_empty() {
        return Err(Usage(
            "--tenant and --client-id must not be empty: copy them from Entra ID › App registrations › your app › Overview".to_owned(),
        )
        .into());
    }
    let cloud = args.cloud.unwrap_or(CloudArg::Global).cloud();
    let custom = args.authority.is_some() || args.graph_url.is_some();
    let authority = match &args.authority {
        Some(a) => normalize_authority(a, &tenant)?,
        None => cloud.authority_host.clone(),
    };
    let graph_url = match &args.graph_url {
        Some(g) => {
            validate_endpoint("Graph URL", g).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            g.trim().trim_end_matches('/').to_owned()
        }
        None => cloud.graph_url.clone(),
    };
    let credential = read_credential(
        &args.credential,
        args.secret_expires,
        args.secret_id.as_deref(),
        now,
    )?;
    let ca = match &args.ca_cert {
        Some(path) => {
            let pem = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the CA certificate {} — check the path",
                    path.display()
                )
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!(
                    "{} holds no PEM certificate: give the CA's -----BEGIN CERTIFICATE----- file",
                    path.display()
                );
            }
            Some(pem)
        }
        None => None,
    };
    Ok((
        NewConnection {
            name: args.name.clone(),
            tenant,
            client_id,
            authority,
            graph_url,
            cloud: if custom && args.cloud.is_none() {
                "custom".to_owned()
            } else {
                cloud.name.clone()
            },
            credentials: vec![credential],
        },
        ca,
    ))
}

/// Checks offline (no request is sent) that the Graph client accepts the connection: URLs,
/// the extra CA, a certificate's RSA key.
fn check_client(conn: &NewConnection, ca: Option<&str>, now: Timestamp) -> anyhow::Result<()> {
    let as_stored = Connection {
        id: ConnectionId(0),
        name: conn.name.clone(),
        tenant: conn.tenant.clone(),
        client_id: conn.client_id.clone(),
        authority: conn.authority.clone(),
        graph_url: conn.graph_url.clone(),
        cloud: conn.cloud.clone(),
        created_at: now,
        credentials: conn
            .credentials
            .iter()
            .map(|c| Credential {
                id: CredentialId(0),
                kind: c.kind,
                secret: c.secret.clone(),
                certificate_pem: c.certificate_pem.clone(),
                key_id: c.key_id.clone(),
                expires_at: c.expires_at,
                added_at: now,
            })
            .collect(),
    };
    let cfg = calgate_sync::connection_config(&as_stored, ca)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let shared = Shared::new().map_err(|e| anyhow::anyhow!("{}", e.message))?;
    GraphClient::new(cfg, &shared).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}

/// The authority host: validated (https, or http to loopback), without a trailing `/` or a
/// trailing tenant segment (the client appends the tenant).
fn normalize_authority(raw: &str, tenant: &str) -> anyhow::Result<String> {
    validate_endpoint("authority", raw).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut a = raw.trim().trim_end_matches('/').to_owned();
    for suffix in ["/v2.0", &format!("/{tenant}")] {
        if a.to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase())
        {
            a.truncate(a.len() - suffix.len());
        }
    }
    Ok(a.trim_end_matches('/').to_owned())
}

/// Adds the connection (and its extra CA file). Shared with `calgate demo`.
pub(crate) async fn add(
    store: &dyn Store,
    loc: &StoreLocation,
    conn: NewConnection,
    ca_pem: Option<&str>,
) -> anyhow::Result<Connection> {
    let name = conn.name.clone();
    store.add_connection(&conn).await.map_err(|e| match e.kind() {
        StoreErrorKind::Conflict => anyhow::anyhow!(
            "a connection named '{name}' already exists: pick another name, or remove it first with `calgate connection remove {name}`"
        ),
        _ => anyhow::anyhow!("cannot add connection '{name}': {e:#}"),
    })?;
    if let Some(pem) = ca_pem {
        write_ca(loc, &name, pem)?;
    }
    store
        .connection(&name)
        .await?
        .with_context(|| format!("connection '{name}' vanished right after it was added"))
}

/// Removes a connection and its extra CA file. Shared with `calgate demo`.
pub(crate) async fn remove(
    store: &dyn Store,
    loc: &StoreLocation,
    name: &str,
) -> anyhow::Result<()> {
    let removed = store.remove_connection(name).await.map_err(|e| match e.kind() {
        StoreErrorKind::Conflict => anyhow::anyhow!(
            "connection '{name}' still has linked mailboxes: unlink them first (`calgate mailbox list`, then `calgate mailbox unlink ADDRESS`)"
        ),
        _ => anyhow::anyhow!("cannot remove connection '{name}': {e:#}"),
    })?;
    if !removed {
        bail!("there is no connection named '{name}' (see `calgate connection list`)");
    }
    if let Some(path) = ca_path(loc, name)
        && path.exists()
    {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// One connection as `connection list --json` shows it.
#[derive(Debug, Serialize)]
struct ConnectionJson {
    name: String,
    tenant: String,
    client_id: String,
    authority: String,
    graph_url: String,
    cloud: String,
    mailboxes: usize,
    /// Newest first; `preferred` marks the one in use.
    credentials: Vec<CredentialSummary>,
}

async fn list(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let conns = store.list_connections().await?;
    let mailboxes = store.list_mailboxes().await?;
    let now = Timestamp::now();
    if json {
        let out: Vec<ConnectionJson> = conns
            .iter()
            .map(|c| ConnectionJson {
                name: c.name.clone(),
                tenant: c.tenant.clone(),
                client_id: c.client_id.clone(),
                authority: c.authority.clone(),
                graph_url: c.graph_url.clone(),
                cloud: c.cloud.clone(),
                mailboxes: mailboxes.iter().filter(|m| m.connection_id == c.id).count(),
                credentials: lifecycle::summarize(c, now),
            })
            .collect();
        return print_json(&out);
    }
    if conns.is_empty() {
        print_out(
            "no connections: add one with `calgate connection add NAME --tenant ID --client-id ID --client-secret-env VAR`\n",
        );
        return Ok(());
    }
    let mut t = Table::new(&[
        "NAME",
        "TENANT",
        "CLIENT ID",
        "AUTHORITY",
        "MAILBOXES",
        "CREDENTIAL",
        "EXPIRES",
        "IN USE",
    ]);
    for c in &conns {
        let linked = mailboxes.iter().filter(|m| m.connection_id == c.id).count();
        let creds = lifecycle::summarize(c, now);
        let head = vec![
            c.name.clone(),
            c.tenant.clone(),
            c.client_id.clone(),
            c.authority.clone(),
            linked.to_string(),
        ];
        if creds.is_empty() {
            let mut row = head;
            row.extend(["no credential".to_owned(), String::new(), String::new()]);
            t.row(row);
            continue;
        }
        for (i, cred) in creds.iter().enumerate() {
            let mut row = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); head.len()]
            };
            row.push(cred.label.clone());
            row.push(match (cred.expires_at, &cred.expires) {
                (Some(at), Some(note)) => format!("{}, {note}", lifecycle::utc_date(at)),
                _ => String::new(),
            });
            row.push(if cred.preferred { "✓" } else { "" }.to_owned());
            t.row(row);
        }
    }
    t.print();
    Ok(())
}

/// `secret #1 'abc…' (expires 2027-01-31, in 45 days)`, `certificate #2 (thumbprint 1A2B…)
/// (EXPIRED 3 days ago, 2026-11-20)`, `secret #3 (ID 0f8f…) (expiry not recorded)`.
pub(crate) fn credential_words(c: &CredentialSummary) -> String {
    match (c.expires_at, &c.expires) {
        (Some(at), Some(note)) if note.starts_with("EXPIRED") => {
            format!("{} ({note}, {})", c.label, lifecycle::utc_date(at))
        }
        (Some(at), Some(note)) => {
            format!("{} (expires {}, {note})", c.label, lifecycle::utc_date(at))
        }
        _ => format!("{} (expiry not recorded)", c.label),
    }
}

/// Where a connection's extra CA is kept: beside the database.
fn ca_path(loc: &StoreLocation, name: &str) -> Option<PathBuf> {
    loc.side_dir
        .as_ref()
        .map(|d| d.join("ca").join(format!("{name}.pem")))
}

fn write_ca(loc: &StoreLocation, name: &str, pem: &str) -> anyhow::Result<()> {
    let Some(path) = ca_path(loc, name) else {
        bail!("--ca-cert needs a data directory or sqlite://FILE to keep the certificate in");
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create {} — check the data directory", dir.display())
        })?;
    }
    std::fs::write(&path, pem)
        .with_context(|| format!("cannot write {} — check the data directory", path.display()))
}

/// Every connection's extra CA, concatenated (the HTTP client trusts all of them).
pub(crate) fn extra_roots(loc: &StoreLocation) -> Option<String> {
    let dir = loc.side_dir.as_ref()?.join("ca");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    entries.sort();
    let mut all = String::new();
    for p in entries {
        if let Ok(pem) = std::fs::read_to_string(&p) {
            all.push_str(&pem);
            if !all.ends_with('\n') {
                all.push('\n');
            }
        }
    }
    (!all.is_empty()).then_some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_loses_tenant_and_slash() {
        let a = normalize_authority("http://127.0.0.1:5080/t-1/", "t-1").unwrap_or_default();
        assert_eq!(a, "http://127.0.0.1:5080");
        let a = normalize_authority("https://login.microsoftonline.com", "t-1").unwrap_or_default();
        assert_eq!(a, "https://login.microsoftonline.com");
        assert!(normalize_authority("http://example.com", "t").is_err());
    }
}
