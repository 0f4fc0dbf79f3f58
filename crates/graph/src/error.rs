//! One error type; callers branch on [`ErrorKind`]. Messages are written for the administrator:
//! each names the cause and the fix, and never contains a secret or a token.

use std::fmt;

/// Entra ID: "the client secret has expired".
pub const AADSTS_SECRET_EXPIRED: i64 = 7000222;
use std::time::Duration;

use crate::wire::{EntraErrorBody, GraphError, GraphErrorBody};

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient (throttled, unavailable, network): try again later (`retry_after` if known).
    Retryable,
    /// The app could not sign in or its token was refused (secret, certificate, tenant, app).
    Authentication,
    /// Signed in, but not allowed (permission, consent, RBAC scope, access policy).
    Permission,
    /// The mailbox or item does not exist.
    NotFound,
    /// The service answered something calgate cannot read (garbage, truncated page, bad link).
    InvalidData,
    /// The delta token is no longer valid: start a full resync (`location` holds the service's
    /// reset URL, when it sent one).
    ResyncRequired,
    /// Anything else: configuration errors, bad requests, bugs.
    Fatal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Retryable => "retryable",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::NotFound => "not-found",
            ErrorKind::InvalidData => "invalid-data",
            ErrorKind::ResyncRequired => "resync-required",
            ErrorKind::Fatal => "fatal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from Entra ID, Graph, the network, or calgate's own checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Graph's error code (`ErrorAccessDenied`, …) or `AADSTS7000215`.
    pub code: Option<String>,
    /// One line for the administrator: the cause and the fix.
    pub message: String,
    /// How long the service asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// For [`ErrorKind::ResyncRequired`]: the `Location` the service sent with 410 Gone.
    pub location: Option<String>,
    /// Graph's `request-id` or Entra's trace id, for a support ticket.
    pub request_id: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            location: None,
            request_id: None,
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Fatal, message)
    }
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidData, message)
    }
    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
    /// The AADSTS number, when this error came from Entra ID.
    pub fn aadsts(&self) -> Option<i64> {
        self.code.as_deref()?.strip_prefix("AADSTS")?.parse().ok()
    }
    /// Whether this error condemns one credential (wrong/expired secret, unknown certificate)
    /// rather than the connection as a whole: the next credential may still work.
    pub fn is_credential_specific(&self) -> bool {
        matches!(
            self.aadsts(),
            Some(7000215 | 7000222 | 700027 | 700024 | 7000218 | 7000112 | 700025)
        )
    }
}

/// What a token request was about, for the messages.
pub(crate) struct TokenContext<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub authority: &'a str,
    pub credential: &'a str,
}

/// Classifies an Entra ID token endpoint error.
pub(crate) fn from_entra(status: u16, body: &EntraErrorBody, ctx: &TokenContext<'_>) -> Error {
    use ErrorKind::*;
    let code = body.aadsts();
    let error = body.error.non_empty().unwrap_or("").to_owned();
    let said = body
        .summary()
        .map(|s| format!(" (Entra ID said: {s})"))
        .unwrap_or_default();
    let t = ctx.tenant;
    let app = ctx.client_id;
    let (kind, msg) = match code {
        Some(7000215) => (
            Authentication,
            format!(
                "the client secret was rejected (AADSTS7000215): paste the secret's Value (not its Secret ID) from Entra ID › App registrations › {app} › Certificates & secrets, or create a new secret there"
            ),
        ),
        Some(7000222) => (
            Authentication,
            format!(
                "the client secret has expired (AADSTS7000222): create a new secret in Entra ID › App registrations › {app} › Certificates & secrets and add it to this connection (consider a certificate credential instead)"
            ),
        ),
        Some(90002) => (
            Authentication,
            format!(
                "tenant '{t}' was not found (AADSTS90002): use the Directory (tenant) ID from Entra ID › Overview, and check that the authority {} is the right cloud for this tenant",
                ctx.authority
            ),
        ),
        Some(700016) => (
            Authentication,
            format!(
                "application {app} was not found in tenant '{t}' (AADSTS700016): check the Application (client) ID in Entra ID › App registrations, and that the app is registered in (or consented to by) this tenant"
            ),
        ),
        Some(700024) => (
            Authentication,
            "the certificate assertion was outside its valid time range (AADSTS700024): this machine's clock is wrong — synchronise it with NTP (e.g. `timedatectl set-ntp true`)".to_owned(),
        ),
        Some(700027) => (
            Authentication,
            format!(
                "the certificate was not accepted (AADSTS700027): upload this certificate (the public .cer/.pem, not the key) to Entra ID › App registrations › {app} › Certificates & secrets, or use the private key that belongs to the uploaded certificate"
            ),
        ),
        Some(7000218) => (
            Authentication,
            "the connection has no client secret or certificate (AADSTS7000218): add one with `calgate connection secret add`".to_owned(),
        ),
        Some(65001) | Some(90094) => (
            Permission,
            format!(
                "admin consent is missing for application {app} (AADSTS{}): in Entra ID › App registrations › {app} › API permissions, press 'Grant admin consent'",
                code.unwrap_or(65001)
            ),
        ),
        Some(9001023) => (
            Authentication,
            format!(
                "'{t}' is not a tenant (AADSTS9001023): use the Directory (tenant) ID or a verified domain, not common/organizations/consumers"
            ),
        ),
        Some(c @ (1002012 | 70011 | 700022 | 500011 | 901002 | 900144)) => (
            Fatal,
            format!(
                "Entra ID refused the token request's scope or resource (AADSTS{c}){said}: check the connection's Graph URL and cloud (authority {})",
                ctx.authority
            ),
        ),
        _ if status == 429 || status >= 500 || error == "temporarily_unavailable" => (
            Retryable,
            format!(
                "Entra ID ({}) is temporarily unavailable (HTTP {status}){said}: calgate will try again",
                ctx.authority
            ),
        ),
        _ if error == "invalid_client" || error == "unauthorized_client" => (
            Authentication,
            format!(
                "Entra ID rejected the app's {} for application {app} in tenant '{t}'{said}: check the credential in Entra ID › App registrations › {app} › Certificates & secrets",
                ctx.credential
            ),
        ),
        _ if error == "invalid_grant" => (
            Authentication,
            format!("Entra ID refused the grant for application {app}{said}"),
        ),
        _ => (
            Fatal,
            format!(
                "Entra ID refused the token request (HTTP {status}{}){said}",
                if error.is_empty() {
                    String::new()
                } else {
                    format!(", {error}")
                }
            ),
        ),
    };
    let mut e = Error::new(kind, msg).with_status(status);
    e.code = code
        .map(|c| format!("AADSTS{c}"))
        .or_else(|| body.error.non_empty().map(str::to_owned));
    e.request_id = body.trace_id.non_empty().map(str::to_owned);
    e
}

/// What a Graph request was about, for classification and messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct GraphContext {
    pub mailbox: Option<String>,
    /// Application roles in the access token (`Calendars.Read`, …), when known.
    pub roles: Option<Vec<String>>,
    /// Whether the request writes (needs Calendars.ReadWrite).
    pub write: bool,
    pub client_id: String,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether a Graph error code means the delta token is gone.
pub(crate) fn is_resync_code(code: &str) -> bool {
    [
        "SyncStateNotFound",
        "syncStateInvalid",
        "resyncRequired",
        "InvalidDeltaToken",
    ]
    .iter()
    .any(|c| eq(code, c))
}

/// Parses a Graph error body (`{"error":{…}}`); `None` when it is not one.
pub(crate) fn parse_graph_error(body: &[u8]) -> Option<GraphError> {
    let parsed: GraphErrorBody = serde_json::from_slice(body).ok()?;
    parsed.error.into_inner()
}

/// Classifies a Graph error response.
pub(crate) fn from_graph(
    status: u16,
    err: Option<&GraphError>,
    retry_after: Option<Duration>,
    location: Option<String>,
    ctx: &GraphContext,
) -> Error {
    use ErrorKind::*;
    let code = err
        .and_then(|e| e.code.non_empty())
        .unwrap_or("")
        .to_owned();
    let message = err
        .and_then(|e| e.message.non_empty())
        .unwrap_or("")
        .to_owned();
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(" (Graph said: {})", message.trim())
    };
    let mb = ctx.mailbox.as_deref().unwrap_or("the mailbox");
    let app = ctx.client_id.as_str();
    let has_calendar_role = ctx.roles.as_ref().map(|r| {
        r.iter()
            .any(|r| eq(r, "Calendars.Read") || eq(r, "Calendars.ReadWrite"))
    });
    let has_write_role = ctx
        .roles
        .as_ref()
        .map(|r| r.iter().any(|r| eq(r, "Calendars.ReadWrite")));
    let (kind, msg) = if status == 410 || is_resync_code(&code) {
        (
            ResyncRequired,
            format!(
                "the delta token for {mb} has expired ({}): a full resync is needed",
                if code.is_empty() {
                    "410 Gone".to_owned()
                } else {
                    code.clone()
                }
            ),
        )
    } else if status == 429 || status == 503 || status == 504 {
        (
            Retryable,
            format!(
                "Microsoft Graph is throttling or unavailable for {mb} (HTTP {status}{}): calgate gave up retrying for now and will try again later",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}")
                }
            ),
        )
    } else if status == 401 {
        (
            Authentication,
            format!(
                "Microsoft Graph refused the access token (401 {}){said}: check the tenant, that the token is for this Graph cloud, and the machine's clock",
                if code.is_empty() {
                    "Unauthorized"
                } else {
                    &code
                }
            ),
        )
    } else if status == 403 || eq(&code, "ErrorAccessDenied") || eq(&code, "accessDenied") {
        let raop = message.contains("[RAOP]") || message.contains("AccessPolicy");
        let text = if raop {
            format!(
                "an Application Access Policy blocks application {app} from {mb} (403 [RAOP]): add {mb} to the policy's mail-enabled security group (Test-ApplicationAccessPolicy -AppId {app} -Identity {mb}), or replace the policy with RBAC for Applications: New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.Read\" -CustomResourceScope <scope containing {mb}>"
            )
        } else if ctx.write && has_write_role == Some(false) && has_calendar_role == Some(true) {
            format!(
                "application {app} may read but not write {mb}'s calendar (403 {code}): grant the application permission Calendars.ReadWrite with admin consent in Entra ID › App registrations › {app} › API permissions (or assign \"Application Calendars.ReadWrite\" with New-ManagementRoleAssignment)"
            )
        } else if has_calendar_role == Some(true) {
            format!(
                "{mb} is outside application {app}'s access scope (403 {code}){said}: an Application Access Policy or RBAC scope excludes it — add {mb} to the scope (New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.Read\" -CustomResourceScope <scope>; check with Test-ServicePrincipalAuthorization -Identity {app} -Resource {mb})"
            )
        } else {
            format!(
                "application {app} has no calendar permission for {mb} (403 {code}){said}: grant the application permission Calendars.Read (Calendars.ReadWrite to write) and press 'Grant admin consent' in Entra ID › App registrations › {app} › API permissions — or, if access is scoped with RBAC for Applications, make sure {mb} is inside the scope: New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.Read\" -CustomResourceScope <scope>; Test-ServicePrincipalAuthorization -Identity {app} -Resource {mb}"
            )
        };
        (Permission, text)
    } else if status == 404
        || eq(&code, "ErrorInvalidUser")
        || eq(&code, "ErrorItemNotFound")
        || eq(&code, "itemNotFound")
        || eq(&code, "ResourceNotFound")
        || eq(&code, "MailboxNotEnabledForRESTAPI")
        || eq(&code, "Request_ResourceNotFound")
    {
        if eq(&code, "ErrorItemNotFound") || eq(&code, "itemNotFound") {
            (
                NotFound,
                format!("the item no longer exists in {mb} (404 {code})"),
            )
        } else if eq(&code, "MailboxNotEnabledForRESTAPI") {
            (
                NotFound,
                format!(
                    "{mb} has no Exchange Online mailbox (MailboxNotEnabledForRESTAPI): it may be on-premises or unlicensed — check its licence in the Microsoft 365 admin center"
                ),
            )
        } else {
            (
                NotFound,
                format!(
                    "mailbox {mb} was not found in the tenant (404{}){said}: check the address (use the user's primary SMTP address or UPN) in the Microsoft 365 admin center",
                    if code.is_empty() {
                        String::new()
                    } else {
                        format!(" {code}")
                    }
                ),
            )
        }
    } else if eq(&code, "TimeZoneNotSupportedException") {
        (
            Fatal,
            format!(
                "Graph does not support the time zone calgate asked for (TimeZoneNotSupportedException){said}"
            ),
        )
    } else if status >= 500 {
        (
            Retryable,
            format!(
                "Microsoft Graph failed for {mb} (HTTP {status}{}){said}: calgate will try again later",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}")
                }
            ),
        )
    } else {
        (
            Fatal,
            format!(
                "Microsoft Graph refused the request for {mb} (HTTP {status}{}){said}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}")
                }
            ),
        )
    };
    let mut e = Error::new(kind, msg).with_status(status);
    if !code.is_empty() {
        e = e.with_code(code);
    }
    e.retry_after = retry_after;
    e.location = location;
    e.request_id = err
        .and_then(|e| e.inner_error.get())
        .and_then(|i| i.request_id.non_empty())
        .map(str::to_owned);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra(json: &str) -> EntraErrorBody {
        serde_json::from_str(json).unwrap_or_default()
    }
    fn ctx() -> TokenContext<'static> {
        TokenContext {
            tenant: "contoso.onmicrosoft.com",
            client_id: "app-1",
            authority: "https://login.microsoftonline.com",
            credential: "client secret",
        }
    }

    #[test]
    fn entra_codes_classify_with_fix() {
        let e = from_entra(
            401,
            &entra(
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#,
            ),
            &ctx(),
        );
        assert_eq!(e.kind, ErrorKind::Authentication);
        assert_eq!(e.aadsts(), Some(7000215));
        assert!(e.message.contains("Value (not its Secret ID)"));
        assert!(e.is_credential_specific());
        // Code only in the description.
        let e = from_entra(
            400,
            &entra(
                r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#,
            ),
            &ctx(),
        );
        assert_eq!(e.aadsts(), Some(90002));
        assert!(!e.is_credential_specific());
        let e = from_entra(503, &entra("{}"), &ctx());
        assert_eq!(e.kind, ErrorKind::Retryable);
    }

    #[test]
    fn graph_codes_compare_case_insensitively() {
        let g = parse_graph_error(br#"{"error":{"code":"syncStateNotFound","message":"m","innererror":{"request-id":"r"}}}"#);
        let e = from_graph(400, g.as_ref(), None, None, &GraphContext::default());
        assert_eq!(e.kind, ErrorKind::ResyncRequired);
        assert_eq!(e.request_id.as_deref(), Some("r"));
        let g = parse_graph_error(br#"{"error":{"code":"errorinvaliduser","message":"m"}}"#);
        let e = from_graph(400, g.as_ref(), None, None, &GraphContext::default());
        assert_eq!(e.kind, ErrorKind::NotFound);
        let g = parse_graph_error(br#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."}}"#);
        let e = from_graph(403, g.as_ref(), None, None, &GraphContext::default());
        assert_eq!(e.kind, ErrorKind::Permission);
        assert!(e.message.contains("Application Access Policy"));
    }
}
