//! `POST /v1.0/$batch` (JSON batching): at most 20 requests with unique ids, relative URLs,
//! `dependsOn` ordering (a failed dependency → 424 for its dependents), at most 4 requests of a
//! batch running at once (as the Outlook backend does). Every sub-request goes through the whole
//! router, so authorization, throttling (a 429 with its own `Retry-After` inside the batch),
//! faults and latency apply to each one.
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::{Principal, St};
use crate::error::{GraphError, GraphResult};

/// Most requests in one batch.
pub const MAX_REQUESTS: usize = 20;
/// Most requests of one batch running at once.
pub const MAX_PARALLEL: usize = 4;
/// Largest sub-response body read back.
const MAX_SUB_BODY: usize = 16 * 1024 * 1024;

tokio::task_local! {
    static IN_BATCH: ();
}

/// Whether the current code runs as a sub-request of a `$batch`.
pub fn in_batch() -> bool {
    IN_BATCH.try_with(|_| ()).is_ok()
}

pub fn routes() -> Router<St> {
    Router::new().route("/$batch", post(batch))
}

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

/// One parsed sub-request.
#[derive(Debug)]
struct SubRequest {
    id: String,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn str_field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn parse_batch(body: &[u8]) -> GraphResult<Vec<SubRequest>> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| bad("Invalid batch payload format."))?;
    let requests = doc
        .as_object()
        .and_then(|o| str_field(o, "requests"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Invalid batch payload format."))?;
    if requests.is_empty() {
        return Err(bad(
            "Invalid batch payload format: the batch holds no requests.",
        ));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "The batch holds {} requests; a batch can hold at most {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut out = Vec::with_capacity(requests.len());
    let mut ids = HashSet::new();
    for r in requests {
        let o = r
            .as_object()
            .ok_or_else(|| bad("Invalid batch payload format."))?;
        let id = match str_field(o, "id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(bad(
                    "Invalid batch payload format: every request needs an id.",
                ));
            }
        };
        if !ids.insert(id.clone()) {
            return Err(bad(format!(
                "Invalid batch payload format: the request id '{id}' is used more than once."
            )));
        }
        let method = str_field(o, "method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("Request '{id}' has no method.")))?;
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            other => {
                return Err(bad(format!(
                    "Request '{id}' has an unsupported method '{other}'."
                )));
            }
        };
        let url = str_field(o, "url")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| bad(format!("Request '{id}' has no url.")))?
            .to_owned();
        let mut headers = Vec::new();
        match str_field(o, "headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    headers.push((k.clone(), v));
                }
            }
            Some(_) => return Err(bad(format!("Request '{id}' has invalid headers."))),
        }
        let body = match str_field(o, "body") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        };
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            return Err(bad(format!(
                "Request '{id}' has a body but no Content-Type header."
            )));
        }
        let depends_on = match str_field(o, "dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| match d {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(bad(format!("Request '{id}' has an invalid dependsOn."))),
                })
                .collect::<GraphResult<_>>()?,
            Some(_) => return Err(bad(format!("Request '{id}' has an invalid dependsOn."))),
        };
        out.push(SubRequest {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    // Dependencies must name requests of this batch and must not form a cycle.
    for r in &out {
        if let Some(d) = r.depends_on.iter().find(|d| !ids.contains(*d)) {
            return Err(bad(format!(
                "Request '{}' depends on '{d}', which is not in the batch.",
                r.id
            )));
        }
    }
    let mut resolved: HashSet<&str> = HashSet::new();
    loop {
        let before = resolved.len();
        for r in &out {
            if !resolved.contains(r.id.as_str())
                && r.depends_on.iter().all(|d| resolved.contains(d.as_str()))
            {
                resolved.insert(r.id.as_str());
            }
        }
        if resolved.len() == out.len() {
            break;
        }
        if resolved.len() == before {
            return Err(bad("The dependsOn chain of the batch contains a cycle."));
        }
    }
    Ok(out)
}

async fn batch(State(st): State<St>, p: Principal, req: Request) -> Response {
    match run(st, p, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(st: St, _p: Principal, req: Request) -> GraphResult<Response> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request body is too large.",
            )
        })?;
    let subs = parse_batch(&bytes)?;
    let auth = parts.headers.get(header::AUTHORIZATION).cloned();
    let router = crate::server::router(st.clone());

    let mut status: HashMap<String, u16> = HashMap::new();
    let mut started: HashSet<usize> = HashSet::new();
    let mut responses: Vec<Value> = Vec::with_capacity(subs.len());
    let mut running = FuturesUnordered::new();
    loop {
        // Start (or fail) every request whose dependencies are done, up to MAX_PARALLEL.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for (i, s) in subs.iter().enumerate() {
                if started.contains(&i) || !s.depends_on.iter().all(|d| status.contains_key(d)) {
                    continue;
                }
                if let Some(d) = s
                    .depends_on
                    .iter()
                    .find(|d| status.get(*d).is_some_and(|c| !(200..300).contains(c)))
                {
                    started.insert(i);
                    status.insert(s.id.clone(), 424);
                    responses.push(failed_dependency(&s.id, d));
                    progressed = true;
                    continue;
                }
                if running.len() >= MAX_PARALLEL {
                    continue;
                }
                started.insert(i);
                let sub_req = build_request(s, auth.as_ref());
                let router = router.clone();
                let id = s.id.clone();
                running.push(IN_BATCH.scope((), async move {
                    let resp = match sub_req {
                        Ok(r) => match router.oneshot(r).await {
                            Ok(resp) => resp,
                            Err(never) => match never {},
                        },
                        Err(e) => e.into_response(),
                    };
                    (id, sub_response(resp).await)
                }));
                progressed = true;
            }
        }
        match running.next().await {
            Some((id, (code, v))) => {
                status.insert(id.clone(), code);
                let mut v = v;
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".into(), json!(id));
                }
                responses.push(v);
            }
            None => break,
        }
    }
    let mut resp = axum::Json(json!({ "responses": responses })).into_response();
    resp.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    Ok(resp)
}

fn failed_dependency(id: &str, dep: &str) -> Value {
    let err = GraphError::new(
        StatusCode::FAILED_DEPENDENCY,
        "FailedDependency",
        format!("The request '{id}' was not run because the request '{dep}' it depends on failed."),
    );
    json!({
        "id": id,
        "status": 424,
        "headers": {"Cache-Control": "no-cache", "Content-Type": "application/json"},
        "body": err.body(),
    })
}

/// Builds the internal request for one sub-request (URL relative to `/v1.0`).
fn build_request(s: &SubRequest, auth: Option<&HeaderValue>) -> GraphResult<Request> {
    let url = s.url.trim();
    if url.contains("://") {
        return Err(bad(format!(
            "Invalid request URL '{url}': batch request URLs must be relative."
        )));
    }
    let rel = url.trim_start_matches('/');
    if rel.starts_with("$batch") {
        return Err(bad("A batch request cannot contain another batch request."));
    }
    let uri = format!("/v1.0/{rel}");
    let mut b = Request::builder()
        .method(s.method.clone())
        .uri(uri.as_str());
    let mut headers = HeaderMap::new();
    for (k, v) in &s.headers {
        let (Ok(name), Ok(val)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            return Err(bad(format!(
                "Request '{}' has an invalid header '{k}'.",
                s.id
            )));
        };
        if name == header::AUTHORIZATION || name == header::CONTENT_LENGTH || name == header::HOST {
            continue;
        }
        headers.append(name, val);
    }
    if let Some(a) = auth {
        headers.insert(header::AUTHORIZATION, a.clone());
    }
    let body = match &s.body {
        None => Body::empty(),
        Some(Value::String(text)) => Body::from(text.clone()),
        Some(v) => Body::from(v.to_string()),
    };
    if let Some(h) = b.headers_mut() {
        *h = headers;
    }
    b.body(body)
        .map_err(|_| bad(format!("Invalid request URL '{url}'.")))
}

/// Turns a sub-response into `{status, headers, body}` (id added by the caller).
async fn sub_response(resp: Response) -> (u16, Value) {
    let (parts, body) = resp.into_parts();
    let status = parts.status.as_u16();
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        let name = k.as_str();
        if matches!(
            name,
            "content-length" | "transfer-encoding" | "connection" | "x-ms-ags-diagnostic"
        ) {
            continue;
        }
        if let Ok(v) = v.to_str() {
            headers.insert(canonical_header(name), json!(v));
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_SUB_BODY)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    };
    service_headers(&mut headers, status, body.as_ref());
    let mut v = json!({"status": status, "headers": headers});
    if let (Some(b), Some(o)) = (body, v.as_object_mut()) {
        o.insert("body".into(), b);
    }
    (status, v)
}

/// The OData media type Graph gives a successful JSON answer.
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// The headers Graph's batch answers carry on every sub-response (Microsoft's batching
/// example): `Cache-Control: no-cache` always; a successful JSON (OData) body also has
/// `OData-Version: 4.0` and the full OData `Content-Type`, while errors keep
/// `application/json`. Headers the handler set itself are kept.
fn service_headers(headers: &mut Map<String, Value>, status: u16, body: Option<&Value>) {
    headers
        .entry("Cache-Control")
        .or_insert_with(|| json!("no-cache"));
    let odata = (200..300).contains(&status) && body.is_some_and(Value::is_object);
    if odata {
        headers
            .entry("OData-Version")
            .or_insert_with(|| json!("4.0"));
        let plain_json = headers
            .get("Content-Type")
            .and_then(Value::as_str)
            .is_none_or(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
                    && !ct.contains("odata.metadata")
            });
        if plain_json {
            headers.insert("Content-Type".into(), json!(ODATA_JSON));
        }
    }
}

/// `content-type` → `Content-Type` (Graph shows headers in their usual casing).
fn canonical_header(name: &str) -> String {
    match name {
        "request-id" | "client-request-id" => name.to_owned(),
        "odata-version" => "OData-Version".to_owned(),
        "etag" => "ETag".to_owned(),
        _ => name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_batches() {
        assert!(parse_batch(b"not json").is_err());
        assert!(parse_batch(br#"{"requests":[]}"#).is_err());
        let dup = br#"{"requests":[{"id":"1","method":"GET","url":"/a"},{"id":"1","method":"GET","url":"/b"}]}"#;
        assert!(parse_batch(dup).is_err());
        let cycle = br#"{"requests":[{"id":"1","method":"GET","url":"/a","dependsOn":["2"]},{"id":"2","method":"GET","url":"/b","dependsOn":["1"]}]}"#;
        assert!(parse_batch(cycle).is_err());
        let no_ct = br#"{"requests":[{"id":"1","method":"POST","url":"/a","body":{}}]}"#;
        assert!(parse_batch(no_ct).is_err());
        let ok = br#"{"requests":[{"id":"1","method":"POST","url":"/a","body":{},"headers":{"Content-Type":"application/json"}},{"id":"2","method":"get","url":"b","dependsOn":["1"]}]}"#;
        assert_eq!(parse_batch(ok).map(|v| v.len()).ok(), Some(2));
    }

    #[test]
    fn sub_response_service_headers() {
        let mut ok = Map::new();
        ok.insert("Content-Type".into(), json!("application/json"));
        service_headers(&mut ok, 200, Some(&json!({"value": []})));
        assert_eq!(ok["Cache-Control"], "no-cache");
        assert_eq!(ok["OData-Version"], "4.0");
        assert_eq!(ok["Content-Type"], ODATA_JSON);

        let mut err = Map::new();
        err.insert("Content-Type".into(), json!("application/json"));
        service_headers(&mut err, 404, Some(&json!({"error": {}})));
        assert_eq!(err["Cache-Control"], "no-cache");
        assert!(!err.contains_key("OData-Version"));
        assert_eq!(err["Content-Type"], "application/json");

        let mut none = Map::new();
        service_headers(&mut none, 204, None);
        assert_eq!(none["Cache-Control"], "no-cache");
        assert!(!none.contains_key("OData-Version"));
        assert!(!none.contains_key("Content-Type"));
    }

    #[test]
    fn header_casing() {
        assert_eq!(canonical_header("content-type"), "Content-Type");
        assert_eq!(canonical_header("retry-after"), "Retry-After");
    }
}
