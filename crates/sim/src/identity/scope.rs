//! The `scope` parameter (v2) and the `resource` parameter (v1): which resource a request is
//! for, and which permissions on it.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::error::{AadError, resource_not_found};
use crate::tokens;

/// The scope parameter of a v2 request: its resource and the permission names.
#[derive(Debug, Clone)]
pub(super) struct ScopeReq {
    /// Canonical resource (`https://graph.microsoft.com`).
    pub resource: String,
    /// Permission names on the resource (`Calendars.Read`), without OIDC scopes. `.default` kept.
    pub perms: Vec<String>,
    /// OIDC scopes present (`openid`, `profile`, `email`, `offline_access`).
    pub oidc: BTreeSet<String>,
}

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// `openid`, `profile`, `email` or `offline_access`, in any case.
pub(super) fn is_oidc(s: &str) -> bool {
    OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s))
}

/// The canonical URI of a resource named by URI or app id (Graph, Exchange Online).
pub(super) fn canonical_resource(r: &str) -> Option<&'static str> {
    let r = r.trim_end_matches('/').to_ascii_lowercase();
    match r.as_str() {
        "https://graph.microsoft.com" | tokens::GRAPH_APP_ID => Some(tokens::GRAPH_RESOURCE),
        "https://outlook.office365.com" | "https://outlook.office.com" | tokens::OUTLOOK_APP_ID => {
            Some(tokens::OUTLOOK_RESOURCE)
        }
        _ => None,
    }
}

/// 1002012: a client-credentials scope must be `{resource}/.default`.
fn not_default(scope: &str) -> AadError {
    AadError::new(
        "invalid_scope",
        1002012,
        format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        ),
    )
}

/// Parses a v2 `scope`: one resource (700022), known (500011). Bare names (`Calendars.Read`)
/// mean Graph, as Entra does. `require_default` → every resource scope must be `/.default` (1002012).
pub(super) fn parse_scope(
    scope: &str,
    tenant: &str,
    require_default: bool,
) -> Result<ScopeReq, AadError> {
    let mut resource: Option<&'static str> = None;
    let mut perms = Vec::new();
    let mut oidc = BTreeSet::new();
    for s in scope.split_whitespace() {
        if is_oidc(s) {
            oidc.insert(s.to_ascii_lowercase());
            continue;
        }
        let (res, perm) = match s.rfind('/') {
            Some(i) if s.contains("://") || Uuid::parse_str(&s[..i]).is_ok() => {
                (&s[..i], &s[i + 1..])
            }
            _ => (tokens::GRAPH_RESOURCE, s),
        };
        if require_default && perm != ".default" {
            return Err(not_default(scope));
        }
        let canon = canonical_resource(res).ok_or_else(|| resource_not_found(res, tenant))?;
        match resource {
            Some(r) if r != canon => {
                return Err(AadError::new(
                    "invalid_scope",
                    700022,
                    format!(
                        "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                    ),
                ));
            }
            _ => resource = Some(canon),
        }
        if !perm.is_empty() {
            perms.push(perm.to_owned());
        }
    }
    let Some(resource) = resource else {
        if require_default {
            return Err(not_default(scope));
        }
        // Only OIDC scopes: the token is for Graph's user.read, as Entra does.
        return Ok(ScopeReq {
            resource: tokens::GRAPH_RESOURCE.into(),
            perms: vec!["User.Read".into()],
            oidc,
        });
    };
    Ok(ScopeReq {
        resource: resource.into(),
        perms,
        oidc,
    })
}
