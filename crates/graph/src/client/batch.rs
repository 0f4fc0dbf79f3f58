//! JSON `$batch`: at most 20 requests a batch, each mailbox's items holding that many slots of
//! its gate (at most 4), throttled items sent again after their `Retry-After`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::GraphClient;
use super::transport::{parse_retry_after, percent_decode};
use crate::error::{self, Error, GraphContext};
use crate::limiter::{self, MAILBOX_CONCURRENCY, Metrics};
use crate::wire;

/// Graph's limit of requests in one `$batch`.
pub const BATCH_LIMIT: usize = 20;

/// One request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// Unique within the call.
    pub id: String,
    pub method: Method,
    /// Relative to the Graph base, e.g. `/users/a@b.c/events/AAMk…`.
    pub url: String,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub depends_on: Vec<String>,
}

impl BatchRequest {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> BatchRequest {
        BatchRequest {
            id: id.into(),
            method: Method::GET,
            url: url.into(),
            body: None,
            headers: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    /// The mailbox a `/users/{x}/…` URL addresses, lowercased.
    pub fn mailbox(&self) -> Option<String> {
        let path = self.url.trim_start_matches('/');
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut it = path.split('/');
        let first = it.next()?;
        if !first.eq_ignore_ascii_case("users") {
            return None;
        }
        let m = it.next().filter(|m| !m.is_empty())?;
        Some(percent_decode(m).to_ascii_lowercase())
    }
}

/// The answer to one request of a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl BatchResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of header `name` (compared case-insensitively), if the response has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after").and_then(parse_retry_after)
    }
}

impl GraphClient {
    /// Runs `requests` as JSON batches of at most 20, in order. Throttled items (429/503/504)
    /// are sent again after their `Retry-After` (and their mailbox holds until then), up to the
    /// retry policy's attempts; the rest come back as they are, one [`BatchResponse`] per
    /// request, in request order. `dependsOn` must stay within a batch of 20.
    pub async fn batch(&self, requests: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, Error> {
        let mut seen = HashSet::new();
        for r in &requests {
            if !seen.insert(r.id.clone()) {
                return Err(Error::config(format!(
                    "batch request id '{}' is used twice",
                    r.id
                )));
            }
        }
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(BATCH_LIMIT) {
            let ids: HashSet<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            if let Some(r) = chunk
                .iter()
                .find(|r| r.depends_on.iter().any(|d| !ids.contains(d.as_str())))
            {
                return Err(Error::config(format!(
                    "batch request '{}' depends on a request outside its batch of {BATCH_LIMIT}",
                    r.id
                )));
            }
            out.extend(self.batch_chunk(chunk).await?);
        }
        Ok(out)
    }

    async fn batch_chunk(&self, chunk: &[BatchRequest]) -> Result<Vec<BatchResponse>, Error> {
        let shared = &self.inner.shared.inner;
        let policy = &shared.retry;
        let metrics = &shared.metrics;
        let mut done: HashMap<String, BatchResponse> = HashMap::new();
        let mut pending: Vec<&BatchRequest> = chunk.iter().collect();
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        while !pending.is_empty() {
            attempt += 1;
            let pending_ids: HashSet<&str> = pending.iter().map(|r| r.id.as_str()).collect();
            let items: Vec<wire::BatchRequestItem<'_>> = pending
                .iter()
                .map(|r| {
                    let mut headers = serde_json::Map::new();
                    for (k, v) in &r.headers {
                        headers.insert(k.clone(), json!(v));
                    }
                    if r.body.is_some()
                        && !r
                            .headers
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        headers.insert("Content-Type".into(), json!("application/json"));
                    }
                    wire::BatchRequestItem {
                        id: &r.id,
                        method: r.method.as_str(),
                        url: &r.url,
                        headers: (!headers.is_empty()).then_some(headers),
                        body: r.body.as_ref(),
                        depends_on: r
                            .depends_on
                            .iter()
                            .map(String::as_str)
                            .filter(|d| pending_ids.contains(d))
                            .collect(),
                    }
                })
                .collect();
            let body = serde_json::to_vec(&wire::BatchRequestBody { requests: items })
                .map_err(|e| Error::config(format!("cannot encode the batch ({e})")))?;
            // Gate: per mailbox, as many slots as its items (Outlook runs at most 4 at once).
            let mut per_mailbox: HashMap<String, u32> = HashMap::new();
            for r in &pending {
                if let Some(m) = r.mailbox() {
                    *per_mailbox.entry(self.gate_key(&m)).or_default() += 1;
                }
            }
            let url = self.url(&["$batch"], &[])?;
            let mut req = self.req(Method::POST, url, None);
            req.gates = per_mailbox
                .into_iter()
                .map(|(k, n)| (k, n.min(MAILBOX_CONCURRENCY)))
                .collect();
            req.body = Some(body);
            req.idempotent = pending.iter().all(|r| r.method == Method::GET);
            req.write = !req.idempotent;
            // The answer (and its turn to hold a body) is let go once read, before any wait.
            let mut got = parse_batch_responses(&self.execute(req).await?.body)?;
            if let Some(missing) = pending.iter().find(|r| !got.contains_key(&r.id)) {
                return Err(Error::invalid_data(format!(
                    "Graph's $batch answer has no response for request '{}'",
                    missing.id
                )));
            }
            let mut again: Vec<&BatchRequest> = Vec::new();
            let mut wait = Duration::ZERO;
            for r in &pending {
                let Some(resp) = got.remove(&r.id) else {
                    continue;
                };
                let throttled = matches!(resp.status, 429 | 503 | 504);
                if resp.status == 429 {
                    Metrics::inc(&metrics.throttled);
                }
                if throttled {
                    let ra = resp.retry_after();
                    if let (Some(ra), Some(m)) = (ra, r.mailbox()) {
                        limiter::limiter()
                            .gate(&self.gate_key(&m))
                            .hold_until(Instant::now() + ra + Duration::from_millis(5));
                    }
                    wait = wait.max(ra.unwrap_or_else(|| policy.backoff(attempt)));
                    again.push(r);
                } else if resp.status == 424 && !r.depends_on.is_empty() {
                    again.push(r);
                }
                done.insert(r.id.clone(), resp);
            }
            let only_dependents = again
                .iter()
                .all(|r| done.get(&r.id).is_some_and(|d| d.status == 424));
            if again.is_empty()
                || only_dependents
                || attempt >= policy.max_attempts
                || waited + wait > policy.max_total_wait
                || wait > policy.max_retry_after
            {
                break;
            }
            for _ in &again {
                Metrics::inc(&metrics.retries);
            }
            waited += wait;
            tokio::time::sleep(wait).await;
            pending = again;
        }
        Ok(chunk.iter().filter_map(|r| done.remove(&r.id)).collect())
    }

    /// Classifies a failed batch item like a direct request.
    pub fn batch_error(&self, request: &BatchRequest, response: &BatchResponse) -> Option<Error> {
        if response.is_success() {
            return None;
        }
        let err = response
            .body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(|e| serde_json::from_str::<wire::GraphError>(&e.to_string()).ok());
        let ctx = GraphContext {
            mailbox: request.mailbox(),
            roles: None,
            write: request.method != Method::GET,
            client_id: self.inner.client_id.clone(),
        };
        Some(error::from_graph(
            response.status,
            err.as_ref(),
            response.retry_after(),
            response.header("location").map(str::to_owned),
            &ctx,
        ))
    }
}

/// A `$batch` answer's responses by id.
fn parse_batch_responses(body: &[u8]) -> Result<HashMap<String, BatchResponse>, Error> {
    let parsed: wire::BatchResponseBody = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_data(format!("Graph sent a $batch answer that is not JSON ({e})"))
    })?;
    let responses = parsed
        .responses
        .ok_or_else(|| Error::invalid_data("Graph sent a $batch answer without 'responses'"))?;
    let mut got: HashMap<String, BatchResponse> = HashMap::new();
    for r in responses.into_iter().filter_map(|r| r.into_inner()) {
        let (Some(id), Some(status)) = (r.id.into_inner(), r.status.into_inner()) else {
            return Err(Error::invalid_data(
                "Graph sent a $batch response without id or status",
            ));
        };
        let headers = r
            .headers
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        got.insert(
            id.clone(),
            BatchResponse {
                id,
                status,
                headers,
                body: r.body,
            },
        );
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_mailbox_from_url() {
        let r = BatchRequest::get(
            "1",
            "/users/Alice%40Contoso.com/calendarView?startDateTime=x",
        );
        assert_eq!(r.mailbox().as_deref(), Some("alice@contoso.com"));
        assert_eq!(
            BatchRequest::get("1", "users/b@c/events")
                .mailbox()
                .as_deref(),
            Some("b@c")
        );
        assert_eq!(
            BatchRequest::get("1", "/places/microsoft.graph.room").mailbox(),
            None
        );
    }
}
