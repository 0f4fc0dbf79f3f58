//! Sending one request: URLs on the Graph host only, the mailbox gate, retries on 429/503/504
//! and network failures (honouring `Retry-After`, else backoff with jitter), one
//! re-authentication on a 401, and classification of what failed; plus following
//! `@odata.nextLink`s.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use tokio::time::Instant;

use super::GraphClient;
use crate::error::{self, Error, ErrorKind, GraphContext};
use crate::limiter::{self, Metrics};

/// Retry behaviour for 429 / 503 / 504 and network failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Total time one request may spend waiting between attempts.
    pub max_total_wait: Duration,
    /// First backoff when the service gives no `Retry-After`; doubles per attempt, with jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error goes to the caller.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            max_total_wait: Duration::from_secs(120),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_backoff);
        // "Equal jitter": between half and all of the exponential step.
        let half = cap / 2;
        let jitter =
            rand::rng().random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// Parses `Retry-After`: delay-seconds, integer or fractional (`2.128`), or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && (0.0..1.0e7).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let d = at.duration_since(Timestamp::now());
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request to execute.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<Vec<u8>>,
    pub(super) prefer: Vec<String>,
    /// (gate key, slots) to hold while in flight.
    pub(super) gates: Vec<(String, u32)>,
    pub(super) mailbox: Option<String>,
    pub(super) idempotent: bool,
    pub(super) write: bool,
}

/// A successful response.
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    /// A turn of [`READING`], held until the answer is dropped (or released once its body is
    /// read into typed values).
    pub(super) reading: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// Answers whose bodies this process holds at once. Bodies are read only with a turn: the rest
/// wait in their sockets (kernel buffers and TCP flow control), not in calgate's memory. At 64
/// mailboxes in flight, their first pages (~300 KB each, more while being read and parsed)
/// arriving together were most of a first sync's peak memory; two cores parse two at a time.
static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

impl GraphClient {
    // -----------------------------------------------------------------------------------------
    // URLs
    // -----------------------------------------------------------------------------------------

    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, Error> {
        let mut u = self.inner.graph_base.clone();
        {
            let mut segs = u
                .path_segments_mut()
                .map_err(|_| Error::config("the Graph URL cannot hold a path"))?;
            segs.pop_if_empty();
            for s in segments {
                segs.push(s);
            }
        }
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect();
            u.set_query(Some(&q.join("&")));
        }
        Ok(u)
    }

    /// A link the service sent (nextLink, deltaLink): followed as is, but only on the Graph
    /// host — the access token never goes anywhere else.
    pub(super) fn link(&self, link: &str) -> Result<Url, Error> {
        let u = Url::parse(link.trim()).map_err(|_| {
            Error::invalid_data(
                "Graph sent a paging link that is not a URL (a truncated or damaged delta link?)",
            )
        })?;
        if u.origin().ascii_serialization() != self.inner.graph_origin {
            return Err(Error::invalid_data(format!(
                "Graph sent a paging link to another host ({}); calgate only sends its token to {}",
                u.host_str().unwrap_or("?"),
                self.inner.graph_origin
            )));
        }
        Ok(u)
    }

    pub(super) fn gate_key(&self, mailbox: &str) -> String {
        limiter::key(&self.inner.graph_origin, mailbox)
    }

    pub(super) fn req(&self, method: Method, url: Url, mailbox: Option<&str>) -> Req {
        let idempotent = method != Method::POST;
        let write = method != Method::GET;
        Req {
            gates: mailbox
                .map(|m| vec![(self.gate_key(m), 1)])
                .unwrap_or_default(),
            mailbox: mailbox.map(str::to_owned),
            method,
            url,
            body: None,
            prefer: vec!["outlook.timezone=\"UTC\"".to_owned()],
            idempotent,
            write,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Execution
    // -----------------------------------------------------------------------------------------

    pub(super) async fn execute(&self, req: Req) -> Result<Resp, Error> {
        let shared = &self.inner.shared.inner;
        let policy = &shared.retry;
        let metrics = &shared.metrics;
        let limiter = limiter::limiter();
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let token = self.access_token().await?;
            // Held until the answer is read AND any Retry-After it carries is recorded in the
            // mailbox's gate: releasing the slot earlier would let another task slip a request
            // in before the "not before" instant is known.
            let mut permits = Some(limiter.acquire(&req.gates, metrics).await);
            let mut rb = self
                .inner
                .http
                .request(req.method.clone(), req.url.clone())
                .bearer_auth(token.secret().expose())
                .header("client-request-id", uuid::Uuid::new_v4().to_string())
                .header(reqwest::header::ACCEPT, "application/json");
            for p in &req.prefer {
                rb = rb.header("Prefer", p);
            }
            if let Some(b) = &req.body {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            Metrics::inc(&metrics.requests_sent);
            let sent = rb.send().await;
            let outcome = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    metrics.answered(status);
                    let headers = resp.headers().clone();
                    // Only answers with data wait for a turn: an error's small body is read at
                    // once, so that a Retry-After reaches the mailbox's gate without delay.
                    let turn = if (200..300).contains(&status) {
                        Some(READING.acquire().await.map_err(|_| {
                            Error::new(ErrorKind::Retryable, "calgate is shutting down".to_owned())
                        })?)
                    } else {
                        None
                    };
                    resp.bytes()
                        .await
                        .map(|b| (status, headers, Vec::from(b), turn))
                }
                Err(e) => Err(e),
            };
            let (status, headers, body, reading) = match outcome {
                Ok(x) => x,
                Err(e) => {
                    drop(permits.take());
                    let wait = policy.backoff(attempt);
                    if req.idempotent
                        && attempt < policy.max_attempts
                        && waited + wait <= policy.max_total_wait
                    {
                        tracing::debug!(error = %e, attempt, "Graph request failed; retrying");
                        Metrics::inc(&metrics.retries);
                        waited += wait;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let why = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "connection failed"
                    } else {
                        "connection broken"
                    };
                    return Err(Error::new(
                        ErrorKind::Retryable,
                        format!(
                            "cannot reach Microsoft Graph at {} ({why}): check DNS, proxy and firewall (outbound HTTPS); calgate will try again",
                            self.inner.graph_origin
                        ),
                    ));
                }
            };
            if (200..300).contains(&status) {
                return Ok(Resp {
                    status,
                    body,
                    reading,
                });
            }
            drop(reading);
            let ra = retry_after(&headers);
            if matches!(status, 429 | 503 | 504) {
                if status == 429 {
                    Metrics::inc(&metrics.throttled);
                }
                let until =
                    Instant::now() + ra.unwrap_or(Duration::ZERO) + Duration::from_millis(5);
                for (k, _) in &req.gates {
                    if ra.is_some() {
                        limiter.gate(k).hold_until(until);
                    } else {
                        limiter.gate(k).throttled(until);
                    }
                }
                drop(permits.take());
                let wait = ra.unwrap_or_else(|| policy.backoff(attempt));
                let give_up = attempt >= policy.max_attempts
                    || waited + wait > policy.max_total_wait
                    || ra.is_some_and(|r| r > policy.max_retry_after);
                if !give_up {
                    tracing::debug!(
                        status,
                        ?wait,
                        attempt,
                        mailbox = req.mailbox.as_deref(),
                        "throttled; waiting"
                    );
                    Metrics::inc(&metrics.retries);
                    waited += wait;
                    // Mailbox requests also wait in the gate; this covers the others.
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            drop(permits.take());
            let graph_err = error::parse_graph_error(&body);
            if status == 401 && !reauthenticated {
                // Expired or revoked token: get a new one once.
                reauthenticated = true;
                for s in &self.inner.slots {
                    s.invalidate(&token).await;
                }
                if let Some(d) = &self.inner.delegated {
                    d.invalidate(&token).await;
                }
                Metrics::inc(&metrics.retries);
                continue;
            }
            let location = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let ctx = GraphContext {
                mailbox: req.mailbox.clone(),
                roles: token.roles().map(<[String]>::to_vec),
                write: req.write,
                client_id: self.inner.client_id.clone(),
            };
            return Err(error::from_graph(
                status,
                graph_err.as_ref(),
                ra,
                location,
                &ctx,
            ));
        }
    }

    pub(super) async fn get_json(&self, url: Url, mailbox: Option<&str>) -> Result<Vec<u8>, Error> {
        Ok(self
            .execute(self.req(Method::GET, url, mailbox))
            .await?
            .body)
    }

    /// GETs `first` and every page its `@odata.nextLink`s lead to (on the Graph host only),
    /// `parse` reading each page into its items and next link. More than `max_pages` pages is
    /// `InvalidData` saying `too_many`.
    pub(super) async fn collect_pages<T>(
        &self,
        first: Url,
        mailbox: Option<&str>,
        max_pages: usize,
        too_many: &str,
        parse: impl Fn(&[u8]) -> Result<(Vec<T>, Option<String>), Error>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..max_pages {
            let body = self.get_json(url, mailbox).await?;
            let (items, next) = parse(&body)?;
            out.extend(items);
            match next {
                Some(n) => url = self.link(&n)?,
                None => return Ok(out),
            }
        }
        Err(Error::invalid_data(too_many))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.128 "),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for a in 1..10 {
            let b = p.backoff(a);
            assert!(b <= p.max_backoff, "{a}: {b:?}");
            assert!(b >= (p.base_backoff * (1 << (a - 1))).min(p.max_backoff) / 2);
        }
    }
}
