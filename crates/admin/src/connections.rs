//! Adding and removing connections: the checks a connection must pass before it is stored
//! (name, tenant, client id, endpoints, a usable credential, a CA bundle that is one), for the
//! CLI, the REST API and the console alike. Reading secrets from files or the environment is
//! the caller's business; this module gets values.

use calgate_core::{
    Connection, ConnectionId, Credential, CredentialId, NewConnection, NewCredential,
};
use calgate_graph::{Cloud, ConnectionConfig, GraphClient, Shared, validate_endpoint};
use calgate_store::{ErrorKind as StoreErrorKind, Store};
use jiff::Timestamp;

/// What an administrator gives to add a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSpec {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    /// A cloud preset (`global`, `usgov`, `usgov-dod`, `china`); default global.
    pub cloud: Option<String>,
    /// The Entra ID authority host, when not the cloud's (a simulator, a proxy).
    pub authority: Option<String>,
    /// The Graph URL, when not the cloud's.
    pub graph_url: Option<String>,
    pub credentials: Vec<NewCredential>,
    /// Extra root CA certificates (PEM), trusted for this connection only.
    pub ca_cert_pem: Option<String>,
    /// `Some`: a connection to Exchange Server through EWS (tenant, client id, cloud,
    /// endpoints and credentials are then not used).
    pub ews: Option<crate::ews::EwsSpec>,
}

/// Why a connection cannot be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The request itself is wrong (a bad name, an empty tenant): bad usage.
    #[error("{0}")]
    Usage(String),
    /// A value was refused (an endpoint, a credential, a CA bundle), with the fix.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken, or the connection still has mailboxes.
    #[error("{0}")]
    Conflict(String),
    #[error("there is no connection named '{0}' (see `calgate connection list`)")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] calgate_store::Error),
}

/// A connection name: up to 64 letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), ConnectionError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ConnectionError::Usage(format!(
            "'{}' is not a usable connection name: use up to 64 letters, digits, '.', '_' or '-'",
            calgate_core::printable(name)
        )))
    }
}

/// The authority host: validated (https, or http to loopback), without a trailing `/` or a
/// trailing tenant segment (the client appends the tenant).
pub fn normalize_authority(raw: &str, tenant: &str) -> Result<String, ConnectionError> {
    validate_endpoint("authority", raw).map_err(|e| ConnectionError::Invalid(e.message))?;
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

/// Checks a CA bundle: PEM certificates only.
pub fn check_ca_pem(pem: &str) -> Result<(), ConnectionError> {
    if pem.contains("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE KEY-----") {
        Ok(())
    } else {
        Err(ConnectionError::Invalid(
            "the CA bundle holds no PEM certificate: give the CA's -----BEGIN CERTIFICATE----- file (and no private key)".to_owned(),
        ))
    }
}

/// Validates `spec` offline (no request is sent): the name, tenant and client id, the
/// endpoints, the CA bundle, and that the Graph client accepts the whole (a certificate's RSA
/// key, its expiry). Returns what the store will hold.
pub fn prepare(spec: &ConnectionSpec, now: Timestamp) -> Result<NewConnection, ConnectionError> {
    if let Some(ews) = &spec.ews {
        return crate::ews::prepare(&spec.name, ews, spec.ca_cert_pem.as_deref());
    }
    check_name(&spec.name)?;
    let tenant = spec.tenant.trim().to_owned();
    let client_id = spec.client_id.trim().to_owned();
    if tenant.is_empty() || client_id.is_empty() {
        return Err(ConnectionError::Usage(
            "the tenant and the client id must not be empty: copy them from Entra ID › App registrations › your app › Overview".to_owned(),
        ));
    }
    let cloud = match spec.cloud.as_deref() {
        None => Cloud::global(),
        Some(name) => Cloud::by_name(name).ok_or_else(|| {
            ConnectionError::Usage(format!(
                "unknown cloud '{name}': use global, usgov, usgov-dod or china"
            ))
        })?,
    };
    let custom = spec.authority.is_some() || spec.graph_url.is_some();
    let authority = match &spec.authority {
        Some(a) => normalize_authority(a, &tenant)?,
        None => cloud.authority_host.clone(),
    };
    let graph_url = match &spec.graph_url {
        Some(g) => {
            validate_endpoint("Graph URL", g).map_err(|e| ConnectionError::Invalid(e.message))?;
            g.trim().trim_end_matches('/').to_owned()
        }
        None => cloud.graph_url.clone(),
    };
    if let Some(pem) = &spec.ca_cert_pem {
        check_ca_pem(pem)?;
    }
    let conn = NewConnection {
        name: spec.name.clone(),
        tenant,
        client_id,
        authority,
        graph_url,
        cloud: if custom && spec.cloud.is_none() {
            "custom".to_owned()
        } else {
            cloud.name.clone()
        },
        credentials: spec.credentials.clone(),
        ca_cert_pem: spec.ca_cert_pem.clone(),
        ews: None,
    };
    check_client(&conn, now)?;
    Ok(conn)
}

/// `conn` as the store would return it (ids 0), to check it before storing.
pub(crate) fn as_stored(conn: &NewConnection, now: Timestamp) -> Connection {
    Connection {
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
        ca_cert_pem: conn.ca_cert_pem.clone(),
        ews: conn.ews.clone(),
    }
}

/// The Graph client accepts the connection as it would be stored.
fn check_client(conn: &NewConnection, now: Timestamp) -> Result<(), ConnectionError> {
    let as_stored = as_stored(conn, now);
    let invalid = |e: calgate_graph::Error| ConnectionError::Invalid(e.message);
    let cfg = ConnectionConfig::from_connection(&as_stored).map_err(invalid)?;
    let shared = Shared::new().map_err(invalid)?;
    GraphClient::new(cfg, &shared).map_err(invalid)?;
    Ok(())
}

/// Validates and stores a connection; returns it as stored.
pub async fn add(
    store: &dyn Store,
    spec: &ConnectionSpec,
    now: Timestamp,
) -> Result<Connection, ConnectionError> {
    let conn = prepare(spec, now)?;
    let name = conn.name.clone();
    store.add_connection(&conn).await.map_err(|e| match e.kind() {
        StoreErrorKind::Conflict => ConnectionError::Conflict(format!(
            "a connection named '{name}' already exists: pick another name, or remove it first with `calgate connection remove {name}`"
        )),
        _ => ConnectionError::Store(e),
    })?;
    store
        .connection(&name)
        .await?
        .ok_or(ConnectionError::NotFound(name))
}

/// Removes a connection (its mailboxes must be unlinked first).
pub async fn remove(store: &dyn Store, name: &str) -> Result<(), ConnectionError> {
    let removed = store.remove_connection(name).await.map_err(|e| match e.kind() {
        StoreErrorKind::Conflict => ConnectionError::Conflict(format!(
            "connection '{name}' still has linked mailboxes: unlink them first (`calgate mailbox list`, then `calgate mailbox unlink ADDRESS`)"
        )),
        _ => ConnectionError::Store(e),
    })?;
    if removed {
        Ok(())
    } else {
        Err(ConnectionError::NotFound(name.to_owned()))
    }
}

/// Earlier versions kept a connection's extra CA as `ca/NAME.pem` beside the database (and
/// trusted every connection's for all). Moves each into its connection in the store (trusted
/// for it only) and removes the file; returns the connections that got one.
pub async fn adopt_legacy_ca_files(
    store: &dyn Store,
    data_dir: &std::path::Path,
) -> Result<Vec<String>, ConnectionError> {
    let dir = data_dir.join("ca");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut adopted = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pem"))
            .map(str::to_owned)
        else {
            continue;
        };
        let Ok(pem) = std::fs::read_to_string(&path) else {
            continue;
        };
        match store.connection(&name).await? {
            Some(c) if c.ca_cert_pem.is_none() => {
                if check_ca_pem(&pem).is_err() {
                    // Not a CA bundle: left where it is, for the administrator to look at.
                    continue;
                }
                store.set_connection_ca(&name, Some(&pem)).await?;
                adopted.push(name);
            }
            // Already in the store, or the file of a connection removed meanwhile.
            Some(_) | None => {}
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(adopted)
}
