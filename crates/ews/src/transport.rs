//! HTTP for EWS: one POST of a SOAP envelope, authenticated with Basic, NTLM or a bearer
//! token, over TLS that may trust an organisation's private CA. Never plain http except to a
//! loopback address.
//!
//! NTLM authenticates a TCP connection, not a request: each [`NtlmLane`] is an HTTP/1.1 client
//! with a single pooled connection that is used by one request at a time; the handshake runs
//! when the server asks for it (a new connection, or one the server closed), and later requests
//! on the same connection need none — as IIS keeps it.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use calgate_core::FailureKind;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use tokio::sync::Mutex;

use crate::error::{Error, Redacted};
use crate::ntlm;

/// How calgate signs in to Exchange.
#[derive(Clone)]
pub enum Auth {
    Basic {
        username: String,
        password: String,
    },
    Ntlm {
        username: String,
        password: String,
    },
    /// OAuth for hybrid modern auth (a token obtained elsewhere).
    Bearer {
        token: String,
    },
}

impl Auth {
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "basic",
            Auth::Ntlm { .. } => "ntlm",
            Auth::Bearer { .. } => "bearer",
        }
    }

    pub fn username(&self) -> Option<&str> {
        match self {
            Auth::Basic { username, .. } | Auth::Ntlm { username, .. } => Some(username),
            Auth::Bearer { .. } => None,
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("scheme", &self.scheme())
            .field("username", &self.username())
            .field("secret", &Redacted)
            .finish()
    }
}

/// Whether `url` names this machine (plain http is allowed there only).
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
}

/// Parses and checks an EWS URL: `https://…/EWS/Exchange.asmx`, or http to loopback only.
pub fn check_url(raw: &str) -> Result<Url, Error> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::config(format!(
            "the EWS URL '{raw}' is not a URL ({e}): give https://mail.example.org/EWS/Exchange.asmx"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::config(format!(
                "the EWS URL '{raw}' is plain http: calgate sends passwords only over https (http is allowed to this machine only)"
            )));
        }
        other => {
            return Err(Error::config(format!(
                "the EWS URL '{raw}' has scheme '{other}': give https://…/EWS/Exchange.asmx"
            )));
        }
    }
    if url.host_str().is_none() {
        return Err(Error::config(format!("the EWS URL '{raw}' has no host")));
    }
    Ok(url)
}

fn builder(ca_pem: Option<&str>) -> Result<reqwest::ClientBuilder, Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("calgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(100))
        .pool_idle_timeout(Duration::from_secs(60))
        // Exchange redirects only to sign-in pages; a SOAP POST must not follow them.
        .redirect(reqwest::redirect::Policy::none())
        .http1_only();
    if let Some(pem) = ca_pem.filter(|p| !p.trim().is_empty()) {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            Error::config(format!(
                "the CA certificate file is not PEM ({e}): give the -----BEGIN CERTIFICATE----- block of the CA that issued Exchange's certificate"
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::config(
                "the CA certificate file holds no certificate",
            ));
        }
        b = b.tls_certs_merge(certs);
    }
    Ok(b)
}

/// One connection kept authenticated by NTLM.
struct NtlmLane {
    http: reqwest::Client,
    /// Held for a whole exchange: one request at a time on the lane's connection.
    busy: Mutex<()>,
}

/// An EWS answer: status, headers and the body (SOAP or not).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub(crate) struct Transport {
    url: Url,
    auth: Auth,
    http: reqwest::Client,
    lanes: Vec<NtlmLane>,
    next_lane: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.url.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(
        url: Url,
        auth: Auth,
        ca_pem: Option<&str>,
        lanes: usize,
    ) -> Result<Transport, Error> {
        let http = builder(ca_pem)?
            .build()
            .map_err(|e| Error::config(format!("cannot set up HTTPS ({e})")))?;
        let mut ntlm_lanes = Vec::new();
        if matches!(auth, Auth::Ntlm { .. }) {
            for _ in 0..lanes.max(1) {
                let http = builder(ca_pem)?
                    .pool_max_idle_per_host(1)
                    .build()
                    .map_err(|e| Error::config(format!("cannot set up HTTPS ({e})")))?;
                ntlm_lanes.push(NtlmLane {
                    http,
                    busy: Mutex::new(()),
                });
            }
        }
        Ok(Transport {
            url,
            auth,
            http,
            lanes: ntlm_lanes,
            next_lane: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs one SOAP envelope. `anchor` is the mailbox the request is for
    /// (`X-AnchorMailbox`, which routes it to that mailbox's server).
    pub(crate) async fn post(&self, body: String, anchor: Option<&str>) -> Result<Answer, Error> {
        match &self.auth {
            Auth::Basic { username, password } => {
                let req = self
                    .request(&self.http, body, anchor)
                    .basic_auth(username, Some(password));
                let answer = self.send(req).await?;
                self.refused(answer, "basic")
            }
            Auth::Bearer { token } => {
                let req = self.request(&self.http, body, anchor).bearer_auth(token);
                let answer = self.send(req).await?;
                self.refused(answer, "bearer")
            }
            Auth::Ntlm { username, password } => {
                self.post_ntlm(username, password, body, anchor).await
            }
        }
    }

    fn request(
        &self,
        http: &reqwest::Client,
        body: String,
        anchor: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .body(body);
        if let Some(a) = anchor {
            req = req.header("X-AnchorMailbox", a);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, Error> {
        let resp = req.send().await.map_err(|e| self.network_error(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(|e| {
            Error::new(
                FailureKind::Retryable,
                format!("the connection to Exchange broke while reading its answer ({e})"),
            )
        })?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn post_ntlm(
        &self,
        username: &str,
        password: &str,
        body: String,
        anchor: Option<&str>,
    ) -> Result<Answer, Error> {
        // The first idle lane, else the next one in turn.
        let n = self.lanes.len().max(1);
        let first = self
            .next_lane
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pick = (0..n)
            .map(|i| (first + i) % n)
            .find(|i| {
                self.lanes
                    .get(*i)
                    .is_some_and(|l| l.busy.try_lock().is_ok())
            })
            .unwrap_or(first % n);
        let Some(lane) = self.lanes.get(pick) else {
            return Err(Error::config(
                "NTLM was chosen but no NTLM connection was set up",
            ));
        };
        let _one_at_a_time = lane.busy.lock().await;
        // An authenticated connection needs no header.
        let answer = self
            .send(self.request(&lane.http, body.clone(), anchor))
            .await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let offered = offered_schemes(&answer.headers);
        let scheme = if offered.iter().any(|s| s == "ntlm") {
            "NTLM"
        } else if offered.iter().any(|s| s == "negotiate") {
            "Negotiate"
        } else {
            return self.refused(answer, "ntlm");
        };
        // NTLM authenticates the TCP connection: each leg must go on the connection the last
        // one came back on. The HTTP pool takes the connection back only after a moment (its
        // readiness is checked by a task of its own): a request sent at once would open a new
        // connection, which the server has no challenge for. Let the pool take it back first.
        settle().await;
        let negotiate = base64::engine::general_purpose::STANDARD.encode(ntlm::negotiate());
        let answer = self
            .send(
                self.request(&lane.http, body.clone(), anchor)
                    .header(AUTHORIZATION, format!("{scheme} {negotiate}")),
            )
            .await?;
        let challenge = answer
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let (s, token) = v.trim().split_once(' ')?;
                (s.eq_ignore_ascii_case(scheme)).then(|| token.trim().to_owned())
            });
        let Some(challenge) = challenge else {
            if answer.status == StatusCode::UNAUTHORIZED {
                return Err(Error::new(
                    FailureKind::Authentication,
                    "Exchange offered NTLM but answered calgate's NTLM NEGOTIATE without a challenge: check that NTLM (Windows authentication) is enabled on the EWS virtual directory",
                )
                .with_status(401)
                .with_code("NtlmNoChallenge"));
            }
            return Ok(answer);
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(challenge.as_bytes())
            .map_err(|_| Error::invalid("Exchange's NTLM challenge is not base64"))?;
        let challenge = ntlm::parse_challenge(&raw)?;
        let id = ntlm::Identity::new(username, password);
        let client_challenge: [u8; 8] = rand::random();
        let auth = ntlm::authenticate(&id, &challenge, client_challenge, "CALGATE");
        let auth = base64::engine::general_purpose::STANDARD.encode(auth);
        settle().await;
        let answer = self
            .send(
                self.request(&lane.http, body, anchor)
                    .header(AUTHORIZATION, format!("{scheme} {auth}")),
            )
            .await?;
        self.refused(answer, "ntlm")
    }

    /// A 401 as an authentication error that says which schemes the server offers.
    fn refused(&self, answer: Answer, used: &str) -> Result<Answer, Error> {
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let offered = offered_schemes(&answer.headers);
        let user = self.auth.username().unwrap_or("the token");
        let ntlm_offered = offered.iter().any(|s| s == "ntlm" || s == "negotiate");
        let basic_offered = offered.iter().any(|s| s == "basic");
        let (code, message) = if used == "basic" && !basic_offered && ntlm_offered {
            (
                "BasicNotOffered",
                "Exchange does not accept Basic authentication on EWS (it offers only NTLM/Negotiate): set the connection's --auth ntlm, or enable Basic on the EWS virtual directory (Set-WebServicesVirtualDirectory -BasicAuthentication $true)".to_owned(),
            )
        } else if used == "ntlm" && !ntlm_offered && basic_offered {
            (
                "NtlmNotOffered",
                "Exchange does not accept NTLM on EWS (it offers only Basic): set the connection's --auth basic, or enable Windows authentication on the EWS virtual directory (Set-WebServicesVirtualDirectory -WindowsAuthentication $true)".to_owned(),
            )
        } else if used == "bearer" {
            (
                "HttpUnauthorized",
                "Exchange refused the OAuth token (401): check hybrid modern authentication (the EWS virtual directory must accept OAuth) and the token's audience".to_owned(),
            )
        } else {
            (
                "HttpUnauthorized",
                format!(
                    "Exchange refused the service account {user} (401): check the user name (DOMAIN\\user or user@domain) and the password, and that the account is not locked or expired"
                ),
            )
        };
        Err(Error::new(FailureKind::Authentication, message)
            .with_status(401)
            .with_code(code))
    }

    fn network_error(&self, e: &reqwest::Error) -> Error {
        let chain = error_chain(e);
        let host = self.url.host_str().unwrap_or("the server");
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate")
            || lower.contains("unknownissuer")
            || lower.contains("invalid peer")
        {
            return Error::new(
                FailureKind::Config,
                format!(
                    "the TLS certificate of {host} is not trusted ({chain}): if Exchange uses your organisation's own CA, give the connection --ca-cert FILE with that CA's certificate (PEM); if the name does not match, use the name on the certificate in --ews-url"
                ),
            )
            .with_code("TlsUntrusted");
        }
        if e.is_timeout() {
            return Error::new(
                FailureKind::Retryable,
                format!("Exchange at {host} did not answer in time ({chain}): calgate tries again"),
            )
            .with_code("Timeout");
        }
        if e.is_connect() {
            let what =
                if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
                    "the name does not resolve"
                } else {
                    "nothing answers there"
                };
            return Error::new(
                FailureKind::Retryable,
                format!(
                    "cannot reach Exchange at {} ({what}: {chain}): check --ews-url and that this machine can reach the server (firewall, proxy)",
                    self.url
                ),
            )
            .with_code("ConnectFailed");
        }
        Error::new(
            FailureKind::Retryable,
            format!("the request to Exchange failed ({chain}): calgate tries again"),
        )
        .with_code("NetworkError")
    }
}

/// Lets the HTTP pool take back the connection an answer came on (see `post_ntlm`).
async fn settle() {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// The schemes in `WWW-Authenticate`, lower-case.
pub fn offered_schemes(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| {
            let word = part.trim().split(' ').next()?.trim();
            // `realm="x"` after a comma is a parameter, not a scheme.
            (!word.is_empty() && !word.contains('=')).then(|| word.to_ascii_lowercase())
        })
        .collect()
}

/// `Retry-After` in seconds, when present.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(3600.0)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback() {
        assert!(check_url("https://mail.example.org/EWS/Exchange.asmx").is_ok());
        assert!(check_url("http://127.0.0.1:9/EWS/Exchange.asmx").is_ok());
        assert!(check_url("http://[::1]:9/EWS/Exchange.asmx").is_ok());
        let e = check_url("http://mail.example.org/EWS/Exchange.asmx").expect_err("plain http");
        assert!(e.message.contains("https"), "{e}");
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn schemes_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, "Negotiate".parse().expect("h"));
        h.append(WWW_AUTHENTICATE, "NTLM".parse().expect("h"));
        h.append(
            WWW_AUTHENTICATE,
            "Basic realm=\"mail\", charset=\"UTF-8\""
                .parse()
                .expect("h"),
        );
        assert_eq!(offered_schemes(&h), vec!["negotiate", "ntlm", "basic"]);
    }
}
