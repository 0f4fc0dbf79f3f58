//! `calgate connection add|list|remove`.
//!
//! Secrets come from an environment variable or a file, never from the command line, and are
//! never printed: the store seals them at rest.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use calgate_graph::{CertificateInfo, Cloud, validate_endpoint};
use calgate_store::{
    Connection, CredentialKind, ErrorKind as StoreErrorKind, NewConnection, NewCredential, Store,
};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::output::{DateArg, Table, print_out, utc_date};
use crate::{StoreLocation, Usage};

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionCommand {
    /// Add a connection: an app registration (tenant, client id, credential).
    Add(Box<AddArgs>),
    /// List connections and their credentials' expiry (never the secrets).
    List,
    /// Remove a connection and its credentials (unlink its mailboxes first).
    Remove {
        /// The connection's name.
        name: String,
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

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("credential")
        .required(true)
        .args(["client_secret_env", "client_secret_file", "certificate"])
))]
pub(crate) struct AddArgs {
    /// A name for the connection (letters, digits, '.', '_', '-').
    pub name: String,
    /// Directory (tenant) ID, or a verified domain of the tenant.
    #[arg(long, value_name = "ID")]
    pub tenant: String,
    /// Application (client) ID of the app registration.
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// Read the client secret's value from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Read the client secret's value from this file.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file holding the certificate and its private key (recommended over secrets).
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
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
    /// An extra root CA to trust (PEM), e.g. the one `calgate sim --tls` writes.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

pub(crate) async fn run(cmd: ConnectionCommand, loc: StoreLocation) -> anyhow::Result<()> {
    match cmd {
        ConnectionCommand::Add(args) => {
            let store = loc.open().await?;
            let (conn, ca) = new_connection(&args)?;
            let c = add(store.as_ref(), &loc, conn, ca.as_deref()).await?;
            print_out(&format!(
                "connection '{}' added: tenant {}, client id {}, {}\n",
                c.name,
                c.tenant,
                c.client_id,
                describe_credentials(&c, Timestamp::now())
            ));
            Ok(())
        }
        ConnectionCommand::List => {
            let store = loc.open().await?;
            list(store.as_ref()).await
        }
        ConnectionCommand::Remove { name } => {
            let store = loc.open().await?;
            remove(store.as_ref(), &loc, &name).await?;
            print_out(&format!("connection '{name}' removed\n"));
            Ok(())
        }
    }
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
fn new_connection(args: &AddArgs) -> anyhow::Result<(NewConnection, Option<String>)> {
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
    let expires = match args.secret_expires {
        Some(d) => Some(d.resolve(&TimeZone::UTC, false).map_err(Usage)?),
        None => None,
    };
    let credential = if let Some(var) = &args.client_secret_env {
        let value = std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "the environment variable {var} is not set (or not UTF-8): set it to the client secret's Value from Entra ID › App registrations › your app › Certificates & secrets"
            )
        })?;
        NewCredential::secret(check_secret(value, &format!("${var}"))?, expires)
    } else if let Some(file) = &args.client_secret_file {
        let value = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the client secret file {} — check the path and that it is readable",
                file.display()
            )
        })?;
        NewCredential::secret(check_secret(value, &file.display().to_string())?, expires)
    } else if let Some(file) = &args.certificate {
        certificate_credential(file, expires)?
    } else {
        return Err(Usage(
            "give one of --client-secret-env VAR, --client-secret-file FILE or --certificate FILE"
                .to_owned(),
        )
        .into());
    };
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

fn check_secret(value: String, from: &str) -> anyhow::Result<String> {
    let value = value.trim().to_owned();
    if value.is_empty() {
        bail!(
            "the client secret from {from} is empty: paste the secret's Value from Entra ID › App registrations › your app › Certificates & secrets"
        );
    }
    Ok(value)
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

/// A certificate credential from one PEM file holding the certificate and its private key.
fn certificate_credential(
    path: &Path,
    expires: Option<Timestamp>,
) -> anyhow::Result<NewCredential> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the certificate file {} — check the path and that it is readable",
            path.display()
        )
    })?;
    let (key, cert) = split_pem(&text);
    let Some(key) = key else {
        bail!(
            "{} holds no private key: give one PEM file with both the private key (-----BEGIN PRIVATE KEY-----) and the certificate",
            path.display()
        );
    };
    let Some(cert) = cert else {
        bail!(
            "{} holds no certificate: give one PEM file with both the certificate (-----BEGIN CERTIFICATE-----) and its private key",
            path.display()
        );
    };
    let info = CertificateInfo::from_pem(&cert).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // Checks that the key is usable for signing assertions.
    calgate_graph::Credential::certificate(
        calgate_graph::SecretString::new(key.clone()),
        cert.clone(),
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut c = NewCredential::certificate(key, cert, expires.or(Some(info.not_after)));
    c.key_id = Some(info.thumbprint_hex);
    Ok(c)
}

/// The first private key block and every certificate block of a PEM file.
fn split_pem(text: &str) -> (Option<String>, Option<String>) {
    let mut key = None;
    let mut certs = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
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
            key.get_or_insert_with(|| format!("{block}\n"));
        } else if label == "CERTIFICATE" {
            certs.push_str(block);
            certs.push('\n');
        }
        rest = &rest[start + end + end_marker.len()..];
    }
    (key, (!certs.is_empty()).then_some(certs))
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

async fn list(store: &dyn Store) -> anyhow::Result<()> {
    let conns = store.list_connections().await?;
    if conns.is_empty() {
        print_out(
            "no connections: add one with `calgate connection add NAME --tenant ID --client-id ID --client-secret-env VAR`\n",
        );
        return Ok(());
    }
    let mailboxes = store.list_mailboxes().await?;
    let now = Timestamp::now();
    let mut t = Table::new(&[
        "NAME",
        "TENANT",
        "CLIENT ID",
        "AUTHORITY",
        "MAILBOXES",
        "CREDENTIALS",
    ]);
    for c in &conns {
        let linked = mailboxes.iter().filter(|m| m.connection_id == c.id).count();
        t.row(vec![
            c.name.clone(),
            c.tenant.clone(),
            c.client_id.clone(),
            c.authority.clone(),
            linked.to_string(),
            describe_credentials(c, now),
        ]);
    }
    t.print();
    Ok(())
}

/// `client secret (expires 2027-01-31), certificate 1A2B… (expires …, EXPIRED)`.
pub(crate) fn describe_credentials(c: &Connection, now: Timestamp) -> String {
    if c.credentials.is_empty() {
        return "no credential".to_owned();
    }
    c.credentials
        .iter()
        .map(|cred| {
            let what = match cred.kind {
                CredentialKind::Secret => "client secret".to_owned(),
                CredentialKind::Certificate => match &cred.key_id {
                    Some(t) => format!("certificate {}…", t.chars().take(8).collect::<String>()),
                    None => "certificate".to_owned(),
                },
            };
            match cred.expires_at {
                None => format!("{what} (expiry unknown)"),
                Some(at) if at <= now => format!("{what} (EXPIRED {})", utc_date(at)),
                Some(at) => {
                    let days = (at.as_second() - now.as_second()) / 86_400;
                    let warn = if days < 30 { ", renew soon" } else { "" };
                    format!("{what} (expires {}, in {days} days{warn})", utc_date(at))
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    #[test]
    fn pem_split_finds_key_and_certs() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n";
        let (k, c) = split_pem(text);
        assert!(k.unwrap_or_default().contains("BBB"));
        assert!(c.unwrap_or_default().contains("AAA"));
        assert_eq!(split_pem("nothing"), (None, None));
    }
}
