//! Connection configuration: clouds, credentials, URLs and their validation.

use std::net::IpAddr;

use jiff::Timestamp;
use reqwest::Url;
use sha1::Digest as _;

use crate::error::Error;
use crate::secret::SecretString;

/// A Microsoft cloud: where its Entra ID authority and its Graph service are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// `global`, `usgov`, `usgov-dod`, `china`.
    pub name: String,
    /// e.g. `https://login.microsoftonline.com` (the tenant is appended).
    pub authority_host: String,
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
}

impl Cloud {
    fn make(name: &str, authority: &str, graph: &str) -> Cloud {
        Cloud {
            name: name.to_owned(),
            authority_host: authority.to_owned(),
            graph_url: graph.to_owned(),
        }
    }
    /// Microsoft's global cloud (also GCC "moderate").
    pub fn global() -> Cloud {
        Cloud::make(
            "global",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com/v1.0",
        )
    }
    /// US Government L4 (GCC High).
    pub fn us_gov() -> Cloud {
        Cloud::make(
            "usgov",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us/v1.0",
        )
    }
    /// US Government L5 (DoD).
    pub fn us_gov_dod() -> Cloud {
        Cloud::make(
            "usgov-dod",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us/v1.0",
        )
    }
    /// Microsoft 365 operated by 21Vianet (China).
    pub fn china() -> Cloud {
        Cloud::make(
            "china",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
        )
    }
    /// All presets.
    pub fn presets() -> [Cloud; 4] {
        [
            Cloud::global(),
            Cloud::us_gov(),
            Cloud::us_gov_dod(),
            Cloud::china(),
        ]
    }
    /// A preset by name (`global`, `usgov` / `gcch`, `usgov-dod` / `dod`, `china`).
    pub fn by_name(name: &str) -> Option<Cloud> {
        match name.to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" | "gcc" => Some(Cloud::global()),
            "usgov" | "gcch" | "gcc-high" | "usgovl4" => Some(Cloud::us_gov()),
            "usgov-dod" | "dod" | "usgovl5" => Some(Cloud::us_gov_dod()),
            "china" | "21vianet" => Some(Cloud::china()),
            _ => None,
        }
    }
}

/// How the client assertion JWT is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlg {
    /// PS256 with `x5t#S256` (SHA-256 thumbprint): what Microsoft documents today.
    #[default]
    Ps256,
    /// RS256 with `x5t` (SHA-1 thumbprint): the legacy form.
    Rs256,
}

/// One way for the app to prove itself. A connection may hold several (rotation).
#[derive(Debug, Clone)]
pub enum Credential {
    Secret {
        value: SecretString,
        expires: Option<Timestamp>,
    },
    Certificate {
        /// PKCS#8 or PKCS#1 RSA private key, PEM.
        private_key_pem: SecretString,
        /// The X.509 certificate uploaded to the app registration, PEM.
        cert_pem: String,
        expires: Option<Timestamp>,
        alg: AssertionAlg,
    },
}

impl Credential {
    pub fn secret(value: impl Into<SecretString>, expires: Option<Timestamp>) -> Credential {
        Credential::Secret {
            value: value.into(),
            expires,
        }
    }

    /// A certificate credential; its expiry is read from the certificate.
    pub fn certificate(
        private_key_pem: impl Into<SecretString>,
        cert_pem: impl Into<String>,
    ) -> Result<Credential, Error> {
        let cert_pem = cert_pem.into();
        let info = CertificateInfo::from_pem(&cert_pem)?;
        Ok(Credential::Certificate {
            private_key_pem: private_key_pem.into(),
            cert_pem,
            expires: Some(info.not_after),
            alg: AssertionAlg::Ps256,
        })
    }

    pub fn expires(&self) -> Option<Timestamp> {
        match self {
            Credential::Secret { expires, .. } | Credential::Certificate { expires, .. } => {
                *expires
            }
        }
    }

    /// "client secret" / "certificate", for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::Secret { .. } => "client secret",
            Credential::Certificate { .. } => "certificate",
        }
    }

    /// A stable, non-reversible identity of the credential (for caches and status).
    pub fn fingerprint(&self) -> String {
        let mut h = sha2::Sha256::new();
        match self {
            Credential::Secret { value, .. } => {
                h.update(b"secret\0");
                h.update(value.expose().as_bytes());
            }
            Credential::Certificate {
                private_key_pem,
                cert_pem,
                ..
            } => {
                h.update(b"cert\0");
                h.update(private_key_pem.expose().as_bytes());
                h.update(b"\0");
                h.update(cert_pem.as_bytes());
            }
        }
        let d = h.finalize();
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// What calgate needs to know about a certificate: thumbprints and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// base64url SHA-1 of the DER (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the DER (`x5t#S256`).
    pub x5t_s256: String,
    /// SHA-1 as uppercase hex, as the Entra portal shows it.
    pub thumbprint_hex: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl CertificateInfo {
    pub fn from_pem(pem: &str) -> Result<CertificateInfo, Error> {
        use base64::Engine as _;
        let bad = |why: &str| {
            Error::config(format!(
                "the certificate is not a PEM X.509 certificate ({why}): give the .pem/.crt file that starts with -----BEGIN CERTIFICATE-----"
            ))
        };
        let (_, parsed) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| bad("no PEM block"))?;
        if parsed.label != "CERTIFICATE" {
            return Err(bad("the PEM block is not a CERTIFICATE"));
        }
        let cert = parsed.parse_x509().map_err(|_| bad("unreadable X.509"))?;
        let der = &parsed.contents;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let sha1 = sha1::Sha1::digest(der);
        let sha256 = sha2::Sha256::digest(der);
        let ts = |secs: i64| Timestamp::from_second(secs).map_err(|_| bad("validity out of range"));
        Ok(CertificateInfo {
            x5t: b64.encode(sha1),
            x5t_s256: b64.encode(sha256),
            thumbprint_hex: sha1.iter().map(|b| format!("{b:02X}")).collect(),
            not_before: ts(cert.validity().not_before.timestamp())?,
            not_after: ts(cert.validity().not_after.timestamp())?,
        })
    }
}

/// Which Entra token endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoint {
    /// `/{tenant}/oauth2/v2.0/token` with `scope={resource}/.default`.
    #[default]
    V2,
    /// `/{tenant}/oauth2/token` with `resource={resource}` — legacy ("Azure AD v1") registrations.
    V1,
}

/// One connection: an app registration in one tenant.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Directory (tenant) ID or a verified domain.
    pub tenant: String,
    /// Application (client) ID.
    pub client_id: String,
    /// In preference order, newest first. Known-expired ones are tried last.
    pub credentials: Vec<Credential>,
    /// e.g. `https://login.microsoftonline.com`, or a simulator URL; the tenant is appended.
    pub authority: String,
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    /// An extra trusted root CA (PEM), e.g. the simulator's `--tls` CA.
    pub extra_root_ca_pem: Option<String>,
    pub token_endpoint: TokenEndpoint,
    /// The resource the token is for (`https://graph.microsoft.com`). `None`: derived from
    /// `graph_url` for Microsoft's Graph hosts, else the global Graph resource (simulators).
    pub graph_resource: Option<String>,
    /// calgate's ids of `credentials`, in the same order, when they come from a stored
    /// connection (empty otherwise): how a credential Entra ID rejected is named back.
    pub credential_ids: Vec<calgate_core::CredentialId>,
}

impl ConnectionConfig {
    /// A connection in `cloud` with its default endpoints.
    pub fn new(
        cloud: &Cloud,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credentials: Vec<Credential>,
    ) -> Self {
        ConnectionConfig {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credentials,
            authority: cloud.authority_host.clone(),
            graph_url: cloud.graph_url.clone(),
            extra_root_ca_pem: None,
            token_endpoint: TokenEndpoint::V2,
            graph_resource: None,
            credential_ids: Vec::new(),
        }
    }

    /// Also trusts `extra` (PEM root CAs), beside the connection's own.
    pub fn with_extra_ca(mut self, extra: Option<&str>) -> ConnectionConfig {
        if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
            let mut all = self.extra_root_ca_pem.take().unwrap_or_default();
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(extra);
            self.extra_root_ca_pem = Some(all);
        }
        self
    }

    /// The client configuration of a stored connection: its credentials newest first (with
    /// their ids), its endpoints, and its own extra CA certificates (trusted for it only).
    pub fn from_connection(c: &calgate_core::Connection) -> Result<ConnectionConfig, Error> {
        let mut credentials = Vec::with_capacity(c.credentials.len());
        for cred in &c.credentials {
            let secret = cred.secret.clone();
            match cred.kind {
                calgate_core::CredentialKind::Secret => {
                    credentials.push(Credential::secret(secret, cred.expires_at));
                }
                calgate_core::CredentialKind::Certificate => {
                    let pem = cred.certificate_pem.clone().ok_or_else(|| {
                        Error::config(format!(
                            "connection '{}' has a certificate credential without its certificate: add it again with `calgate connection secret add`",
                            c.name
                        ))
                    })?;
                    let mut made = Credential::certificate(secret, pem)?;
                    if let (Credential::Certificate { expires, .. }, Some(at)) =
                        (&mut made, cred.expires_at)
                    {
                        *expires = Some(at);
                    }
                    credentials.push(made);
                }
            }
        }
        Ok(ConnectionConfig {
            tenant: c.tenant.clone(),
            client_id: c.client_id.clone(),
            credentials,
            authority: c.authority.clone(),
            graph_url: c.graph_url.clone(),
            extra_root_ca_pem: c.ca_cert_pem.clone(),
            token_endpoint: TokenEndpoint::V2,
            graph_resource: None,
            credential_ids: c.credentials.iter().map(|c| c.id).collect(),
        })
    }
}

/// Parses and checks an endpoint URL: https, or http only to a loopback host.
pub fn validate_endpoint(what: &str, raw: &str) -> Result<Url, Error> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::config(format!(
            "the {what} '{raw}' is not a URL ({e}): give a full https:// URL"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(format!(
            "the {what} must not contain a user name or password"
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&url) {
                return Err(Error::config(format!(
                    "the {what} '{raw}' uses plain http:// on a host that is not this machine: use https:// (http:// is only allowed for 127.0.0.1, ::1 and localhost, e.g. a local simulator)"
                )));
            }
        }
        other => {
            return Err(Error::config(format!(
                "the {what} '{raw}' has scheme '{other}': use https://"
            )));
        }
    }
    if url.host().is_none() {
        return Err(Error::config(format!("the {what} '{raw}' has no host")));
    }
    Ok(url)
}

/// 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let d = host.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost"
}

/// The resource a Graph URL's tokens are for.
pub(crate) fn graph_resource_for(graph: &Url) -> String {
    let host = graph.host_str().unwrap_or("").to_ascii_lowercase();
    let known = Cloud::presets().iter().any(|c| {
        Url::parse(&c.graph_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(&host)))
            .unwrap_or(false)
    });
    if known {
        format!("https://{host}")
    } else {
        "https://graph.microsoft.com".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8080/v1.0",
            "http://127.1.2.3/",
            "http://[::1]:9/",
            "http://localhost:3000",
            "http://LocalHost./x",
            "https://graph.microsoft.com/v1.0",
        ] {
            assert!(validate_endpoint("Graph URL", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://graph.microsoft.com/v1.0",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.evil.com/",
            "ftp://127.0.0.1/",
            "graph.microsoft.com",
            "https://user:pw@graph.microsoft.com/",
        ] {
            let e = validate_endpoint("Graph URL", bad).err();
            assert!(e.is_some(), "{bad}");
            assert_eq!(e.map(|e| e.kind), Some(crate::ErrorKind::Fatal));
        }
    }

    #[test]
    fn resources_per_cloud() {
        for (g, r) in [
            (
                "https://graph.microsoft.com/v1.0",
                "https://graph.microsoft.com",
            ),
            (
                "https://graph.microsoft.us/v1.0",
                "https://graph.microsoft.us",
            ),
            (
                "https://dod-graph.microsoft.us/v1.0",
                "https://dod-graph.microsoft.us",
            ),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
            ("http://127.0.0.1:5/v1.0", "https://graph.microsoft.com"),
        ] {
            let u = Url::parse(g).unwrap_or_else(|_| panic!("{g}"));
            assert_eq!(graph_resource_for(&u), r);
        }
        assert_eq!(Cloud::by_name("gcch"), Some(Cloud::us_gov()));
    }
}
