//! Graph-shaped error responses:
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

tokio::task_local! {
    /// (request-id, client-request-id) of the request being served; set by the request-id middleware.
    pub static REQUEST_IDS: (String, String);
}

/// The current request's ids, or fresh ones outside a request.
pub fn request_ids() -> (String, String) {
    REQUEST_IDS.try_with(Clone::clone).unwrap_or_else(|_| {
        let id = uuid::Uuid::new_v4().to_string();
        (id.clone(), id)
    })
}

#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// `Retry-After` header value (seconds, possibly fractional).
    pub retry_after: Option<String>,
    /// `Location` header (410 Gone on delta).
    pub location: Option<String>,
    /// Extra members of `innerError` (e.g. `"code": "429"`, `"status": "429"`).
    pub inner: serde_json::Map<String, serde_json::Value>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
            location: None,
            inner: serde_json::Map::new(),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 400 `ErrorInvalidRequest` / `BadRequest` style errors for malformed input.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// `404 ErrorItemNotFound`, as Exchange words it.
    pub fn item_not_found() -> Self {
        Self::not_found(
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }
    /// 401 for a missing, expired or forged token.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }
    /// 403 `ErrorAccessDenied`.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ErrorAccessDenied", message)
    }
    pub fn with_retry_after(mut self, secs: impl Into<String>) -> Self {
        self.retry_after = Some(secs.into());
        self
    }
    pub fn with_location(mut self, url: impl Into<String>) -> Self {
        self.location = Some(url.into());
        self
    }
    pub fn with_inner(mut self, key: &str, value: serde_json::Value) -> Self {
        self.inner.insert(key.to_owned(), value);
        self
    }

    pub fn body(&self) -> serde_json::Value {
        let (rid, crid) = request_ids();
        let mut inner = serde_json::Map::new();
        for (k, v) in &self.inner {
            inner.insert(k.clone(), v.clone());
        }
        inner.insert(
            "date".into(),
            json!(
                jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            ),
        );
        inner.insert("request-id".into(), json!(rid));
        inner.insert("client-request-id".into(), json!(crid));
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        if let Some(ra) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert(header::RETRY_AFTER, ra);
        }
        if let Some(loc) = self
            .location
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert(header::LOCATION, loc);
        }
        resp
    }
}

pub type GraphResult<T> = Result<T, GraphError>;
