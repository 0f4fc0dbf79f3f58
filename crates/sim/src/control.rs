//! The control API under `/_sim/`, for tests, demos and benchmarks (documented in the README).
//! It needs no token: it stands for the Microsoft 365 admin centre, Outlook, and the network.
//!
//! - `control_apps`: app registrations, secrets, certificates, consents, RBAC scopes, access policies
//! - `control_directory`: mailboxes (users, rooms, equipment), groups, room lists, the clock
//! - `control_events`: events changed as a person in Outlook would
//! - `control_ews`: the EWS face's accounts, authentication schemes, faults and sync states
//! - `control_faults`: fault injection, settings, per-mailbox counters
//! - `control_meetings`: booking policies, attendees' responses, meeting messages sent
//! - `control_subscriptions`: change-notification subscriptions, delivery counters and settings,
//!   lifecycle notifications, lost notifications
//!
//! Every endpoint that takes a JSON body reads it with [`parse_object`].
// GraphError (error.rs) is large; the crate passes it by value everywhere.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::{GraphError, GraphResult};
use crate::state::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .merge(crate::control_apps::routes())
        .merge(crate::control_directory::routes())
        .merge(crate::control_events::routes())
        .merge(crate::control_ews::routes())
        .merge(crate::control_faults::routes())
        .merge(crate::control_meetings::routes())
        .merge(crate::control_subscriptions::routes())
}

/// What a control endpoint makes of an empty (or all-whitespace) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmptyBody {
    /// The same as `{}` (endpoints whose fields are all optional).
    IsEmptyObject,
    /// `400` "A JSON request body is required."
    Rejected,
}

/// Reads a control endpoint's JSON body, which must be a JSON **object**: serde's derived
/// structs also accept an array of field values (`[]` would be a default configuration,
/// `[120000]` a latency), and `null`, numbers, strings and booleans are no configuration either.
/// Such bodies → `400` "… a JSON object is expected, not an array." Malformed JSON, unknown or
/// mistyped fields → `400` with serde's message. `code` is the error code of those 400s
/// (`BadRequest`, or `RequestBodyRead` where the body is Graph event JSON).
pub(crate) fn parse_object<T: DeserializeOwned>(
    body: &[u8],
    empty: EmptyBody,
    code: &str,
) -> GraphResult<T> {
    let bad = |msg: String| GraphError::bad_request(code, msg);
    // JSON's insignificant whitespace (RFC 8259 §2).
    let first = body
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let body = match (first, empty) {
        (None, EmptyBody::IsEmptyObject) => &b"{}"[..],
        (None, EmptyBody::Rejected) => {
            return Err(bad("A JSON request body is required.".into()));
        }
        (Some(b), _) => {
            // The first significant byte decides what a JSON text is; anything else is left
            // to serde (malformed JSON).
            let kind = match b {
                b'[' => Some("an array"),
                b'"' => Some("a string"),
                b'n' => Some("null"),
                b't' | b'f' => Some("a boolean"),
                b'-' | b'0'..=b'9' => Some("a number"),
                _ => None,
            };
            if let Some(kind) = kind {
                return Err(bad(format!(
                    "Invalid request body: a JSON object is expected, not {kind}."
                )));
            }
            body
        }
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("Invalid request body: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        latency_ms: u64,
    }

    #[test]
    fn only_objects_are_read() {
        let ok = |b: &str, e| parse_object::<Cfg>(b.as_bytes(), e, "BadRequest");
        assert_eq!(
            ok(" {\"latency_ms\": 5} ", EmptyBody::Rejected)
                .unwrap()
                .latency_ms,
            5
        );
        assert_eq!(ok(" \r\n", EmptyBody::IsEmptyObject).unwrap().latency_ms, 0);
        assert!(
            ok("", EmptyBody::Rejected)
                .unwrap_err()
                .message
                .contains("required")
        );
        for (body, kind) in [
            ("[]", "an array"),
            (" [5]", "an array"),
            ("null", "null"),
            ("7", "a number"),
            ("-7", "a number"),
            ("\"x\"", "a string"),
            ("false", "a boolean"),
        ] {
            let e = ok(body, EmptyBody::IsEmptyObject).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains("JSON object is expected"), "{body}: {e}");
            assert!(e.message.contains(kind), "{body}: {e}");
        }
        let e = ok("{oops", EmptyBody::IsEmptyObject).unwrap_err();
        assert!(e.message.starts_with("Invalid request body: "), "{e}");
        let e = parse_object::<Cfg>(b"{\"x\":1}", EmptyBody::Rejected, "RequestBodyRead");
        assert_eq!(e.unwrap_err().code, "RequestBodyRead");
    }
}
