//! Client authentication at the token endpoints: a client secret (form or HTTP Basic) or a
//! `private_key_jwt` assertion signed with one of the app's certificates.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::Value;

use super::error::{AadError, fmt_7, missing};
use super::token::Params;
use crate::model::{App, Tenant};
use crate::state::SimState;
use crate::tokens::{self, ClientAuth};

/// Checks the client's credential: a secret (form or Basic) or a certificate assertion.
pub(super) fn authenticate_client(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    p: &Params,
    allow_public: bool,
) -> Result<ClientAuth, AadError> {
    let now = st.now();
    if let Some(assertion) = p.get("client_assertion") {
        let ty = p
            .get("client_assertion_type")
            .ok_or_else(|| missing("client_assertion_type"))?;
        if ty != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
            return Err(AadError::new(
                "invalid_request",
                50027,
                "JWT token is invalid or malformed. The client_assertion_type is not supported.",
            ));
        }
        verify_assertion(st, tenant, app, assertion, now)?;
        return Ok(ClientAuth::Certificate);
    }
    if let Some(secret) = p.client_secret() {
        let matching: Vec<_> = app.secrets.iter().filter(|s| s.value == secret).collect();
        if matching.is_empty() {
            return Err(AadError::new(
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        if matching.iter().all(|s| now >= s.expires || now < s.start) {
            return Err(AadError::new(
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ));
        }
        return Ok(ClientAuth::Secret);
    }
    if allow_public && app.public_client {
        return Ok(ClientAuth::Public);
    }
    Err(AadError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ))
}

/// Verifies a `private_key_jwt` client assertion against the app's certificates.
fn verify_assertion(
    st: &SimState,
    tenant: &Tenant,
    app: &App,
    assertion: &str,
    now: Timestamp,
) -> Result<(), AadError> {
    let malformed = || {
        AadError::new(
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let (header, claims, input, sig) = tokens::split_jws(assertion).ok_or_else(malformed)?;
    let cid = app.client_id.to_string();
    // iss = sub = client_id
    if claims["iss"].as_str() != Some(cid.as_str()) || claims["sub"].as_str() != Some(cid.as_str())
    {
        return Err(AadError::new(
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
        ));
    }
    // aud = the token endpoint of this tenant (by GUID or domain).
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        let b = st.base_url();
        std::iter::once(tenant.id.to_string())
            .chain(tenant.domains.iter().cloned())
            .any(|t| {
                a.eq_ignore_ascii_case(&format!("{b}/{t}/oauth2/v2.0/token"))
                    || a.eq_ignore_ascii_case(&format!("{b}/{t}/oauth2/token"))
            })
    };
    let aud_match = match &claims["aud"] {
        Value::String(a) => aud_ok(a),
        Value::Array(v) => v.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_match {
        return Err(AadError::new(
            "invalid_client",
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'. Client assertion audience claim does not match the token endpoint of tenant '{}'.",
                claims["aud"].as_str().unwrap_or(""),
                tenant.id
            ),
        ));
    }
    // Validity window with five minutes of skew.
    let skew = 300;
    let n = now.as_second();
    // MSAL Python sends float seconds.
    let num = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
    let exp = num(&claims["exp"]);
    let nbf = num(&claims["nbf"]).or(num(&claims["iat"]));
    let Some(exp) = exp else {
        return Err(malformed());
    };
    if n > exp + skew || nbf.is_some_and(|nbf| n + skew < nbf) {
        let t = |s: i64| Timestamp::from_second(s).map(fmt_7).unwrap_or_default();
        return Err(AadError::new(
            "invalid_client",
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                fmt_7(now),
                t(nbf.unwrap_or(exp)),
                t(exp)
            ),
        ));
    }
    // Key lookup by x5t#S256 or x5t.
    // base64url per RFC 7515; MSAL Python sends standard base64 with padding: accept both.
    let thumb = |v: &Value| {
        v.as_str().and_then(|t| {
            let t: String = t
                .trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            URL_SAFE_NO_PAD.decode(t).ok()
        })
    };
    let s256 = thumb(&header["x5t#S256"]);
    let s1 = thumb(&header["x5t"]);
    let thumb_hex = s1
        .as_deref()
        .or(s256.as_deref())
        .map(tokens::hex)
        .unwrap_or_default();
    let cert = app.certificates.iter().find(|c| {
        s256.as_deref().is_some_and(|t| t == c.sha256.as_slice())
            || s1.as_deref().is_some_and(|t| t == c.sha1.as_slice())
    });
    let sig_fail = |reason: &str| {
        AadError::new(
            "invalid_client",
            700027,
            format!(
                "Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used by client: '{thumb_hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global endpoint.]",
                app.client_id
            ),
        )
    };
    let Some(cert) = cert else {
        return Err(sig_fail("The key was not found."));
    };
    if now >= cert.expires || now < cert.start {
        return Err(sig_fail("The key used is expired."));
    }
    let alg = header["alg"].as_str().unwrap_or("");
    let Some(key) = cert_public_key(&cert.der) else {
        return Err(sig_fail("The key was not found."));
    };
    if !tokens::verify_sig(alg, &input, &sig, &key) {
        return Err(sig_fail(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    Ok(())
}

/// The RSA public key of a DER certificate.
pub fn cert_public_key(der: &[u8]) -> Option<jsonwebtoken::DecodingKey> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match cert.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| -> Vec<u8> {
                let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[i..].to_vec()
            };
            Some(jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &strip(rsa.modulus),
                &strip(rsa.exponent),
            ))
        }
        _ => None,
    }
}
