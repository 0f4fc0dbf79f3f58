//! [`AadError`] (`AADSTSnnn`) and the errors several endpoints share.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

/// An Entra error (`AADSTSnnn`).
#[derive(Debug, Clone)]
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
    pub suberror: Option<&'static str>,
}

impl AadError {
    pub fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        AadError {
            status,
            error,
            code,
            message: message.into(),
            suberror: None,
        }
    }

    pub(super) fn with_suberror(mut self, s: &'static str) -> Self {
        self.suberror = Some(s);
        self
    }

    /// `AADSTSnnn: message` (the first line of `error_description`).
    pub(super) fn summary(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The JSON body at simulated time `now`.
    pub fn body(&self, now: Timestamp) -> Value {
        let (trace, correlation) = crate::error::request_ids();
        let ts = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let desc = format!(
            "{}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
            self.summary()
        );
        let mut v = json!({
            "error": self.error,
            "error_description": desc,
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        if let Some(s) = self.suberror {
            v["suberror"] = json!(s);
        }
        v
    }

    pub fn response(&self, now: Timestamp) -> Response {
        json_no_store(self.status, self.body(now))
    }
}

/// A JSON response that must not be cached (token responses and their errors).
pub(super) fn json_no_store(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

fn no_store(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A timestamp as Entra prints it in messages: at most seven fractional digits, then `Z`.
pub(super) fn fmt_7(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
        .to_string()
        .chars()
        .take(27)
        .collect::<String>()
        + "Z"
}

pub(super) fn missing(name: &str) -> AadError {
    AadError::new(
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

pub(super) fn tenant_not_found(t: &str) -> AadError {
    AadError::new(
        "invalid_request",
        90002,
        format!(
            "Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

pub(super) fn app_not_found(client_id: &str, tenant: &str) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

pub(super) fn resource_not_found(name: &str, tenant: &str) -> AadError {
    AadError::new(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {name} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    )
}

/// 90033: the simulator could not do its part (its signing key, a token it could not sign).
pub(super) fn internal(e: String) -> AadError {
    AadError::new("temporarily_unavailable", 90033, e)
}

pub(super) fn invalid_grant(code: u32, msg: impl Into<String>) -> AadError {
    AadError::new("invalid_grant", code, msg)
}

/// 65001: the text of a missing consent (a token error, or a redirect from /authorize).
pub(super) fn not_consented_message(client_id: &str, app_name: &str) -> String {
    format!(
        "The user or administrator has not consented to use the application with ID '{client_id}' named '{app_name}'. Send an interactive authorization request for this user and resource."
    )
}

/// 50034: the signed-in user does not exist.
pub(super) const USER_NOT_FOUND: &str = "The user account does not exist in the directory. To sign into this application, the account must be added to the directory.";
/// 50057: the signed-in user is disabled.
pub(super) const USER_DISABLED: &str = "The user account is disabled.";
