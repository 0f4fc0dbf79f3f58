//! Entra ID: discovery, JWKS, token endpoints (client credentials with secret and certificate,
//! authorization code + PKCE, refresh tokens, v1), AADSTS errors, Graph token validation, and
//! the app control API.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use sha2::Digest as _;

use crate::common::*;

const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";

fn b64json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// (header, claims) of a compact JWT, without verification.
fn decode(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let h = b64json(it.next().unwrap());
    let c = b64json(it.next().unwrap());
    (h, c)
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let s = r.status();
    let t = r.text().await.unwrap();
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// Asserts Entra's error shape and the AADSTS code.
fn assert_aad(status: StatusCode, body: &Value, http: u16, error: &str, code: u64) {
    assert_eq!(status.as_u16(), http, "status for {body}");
    assert_eq!(body["error"], error, "error in {body}");
    assert_eq!(body["error_codes"], json!([code]), "codes in {body}");
    let d = body["error_description"].as_str().unwrap();
    assert!(d.starts_with(&format!("AADSTS{code}: ")), "{d}");
    assert!(
        d.contains("\r\nTrace ID: ")
            && d.contains("\r\nCorrelation ID: ")
            && d.contains("\r\nTimestamp: "),
        "{d}"
    );
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[k].is_string(), "{k} missing in {body}");
    }
}

/// Creates an app through the control API; returns the created JSON (client_id, client_secret…).
async fn create_app(ts: &TestSim, body: Value) -> Value {
    let (s, v) = ts.control(Method::POST, "/apps", Some(&body)).await;
    assert_eq!(s, 201, "create app: {v}");
    v
}

async fn cc(ts: &TestSim, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    json_of(ts.token_request(tenant, form).await).await
}

async fn cc_secret(ts: &TestSim, tenant: &str, id: &str, secret: &str) -> (StatusCode, Value) {
    cc(
        ts,
        tenant,
        &[
            ("client_id", id),
            ("client_secret", secret),
            ("scope", GRAPH_DEFAULT),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

/// A person's mailbox of the demo tenant.
fn a_mailbox(ts: &TestSim) -> String {
    let c = ts.creds();
    let m = c["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "user")
        .expect("a user mailbox");
    m["address"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_credentials_secret_issues_graph_shaped_token() {
    let ts = start(Seed::Demo).await;
    let (id, secret) = {
        let c = ts.creds();
        let a = &c["apps"][0];
        (
            a["client_id"].as_str().unwrap().to_owned(),
            a["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let tenant = ts.tenant();
    let (s, v) = cc_secret(&ts, &tenant, &id, &secret).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    let exp_in = v["expires_in"]
        .as_i64()
        .expect("expires_in is an integer on v2");
    assert!((3600..=5400).contains(&exp_in), "{exp_in}");
    assert!(v["ext_expires_in"].is_i64());
    assert!(v.get("refresh_token").is_none() && v.get("scope").is_none());
    let token = v["access_token"].as_str().unwrap();
    let (h, c) = decode(token);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["typ"], "JWT");
    assert!(h["kid"].is_string() && h["x5t"].is_string());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{tenant}/"));
    assert_eq!(c["tid"], tenant);
    assert_eq!(c["appid"], id);
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["app_displayname"], "calgate");
    assert!(c["oid"].is_string() && c["uti"].is_string());
    let roles: Vec<&str> = c["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"Calendars.ReadWrite"), "{roles:?}");
    assert!(c.get("scp").is_none());
    let lifetime = c["exp"].as_i64().unwrap() - now_s();
    assert!(
        (3590..=5400).contains(&lifetime),
        "exp in 60-90 min: {lifetime}"
    );
    assert!(c["nbf"].as_i64().unwrap() <= now_s() && c["iat"].as_i64().unwrap() <= now_s());
    // HTTP Basic (client_secret_basic) and the tenant's domain work too.
    let domain = ts.sim.state.dir().tenants[0].default_domain().to_owned();
    let r = ts
        .http
        .post(ts.url(&format!("/{domain}/oauth2/v2.0/token")))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("scope", GRAPH_DEFAULT),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let (s, v) = json_of(r).await;
    assert_eq!(s, 200, "basic auth: {v}");
    // The GUID resource form of the scope.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "00000003-0000-0000-c000-000000000000/.default"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(s, 200, "guid scope: {v}");
}

#[tokio::test]
async fn jwks_verifies_issued_token_and_discovery_is_consistent() {
    let ts = start(Seed::Empty).await;
    let tenant = ts.tenant();
    let token = ts.default_token().await;
    let (s, disc) = json_of(
        ts.http
            .get(ts.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let base = &ts.sim.base_url;
    assert_eq!(
        disc["token_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/token")
    );
    assert_eq!(
        disc["authorization_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/authorize")
    );
    assert_eq!(disc["issuer"], format!("{base}/{tenant}/v2.0"));
    assert_eq!(
        disc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ])
    );
    let jwks_uri = disc["jwks_uri"].as_str().unwrap().to_owned();
    assert_eq!(jwks_uri, format!("{base}/{tenant}/discovery/v2.0/keys"));
    let (s, jwks) = json_of(ts.http.get(&jwks_uri).send().await.unwrap()).await;
    assert_eq!(s, 200);
    let (h, _) = decode(&token);
    let k = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == h["kid"])
        .expect("kid in JWKS");
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["x5t"], h["x5t"]);
    assert!(k["x5c"][0].is_string() && k["issuer"].is_string());
    // x5t is the SHA-1 of the x5c certificate.
    let der = base64::engine::general_purpose::STANDARD
        .decode(k["x5c"][0].as_str().unwrap())
        .unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)),
        k["x5t"].as_str().unwrap()
    );
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        k["n"].as_str().unwrap(),
        k["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    val.set_audience(&["https://graph.microsoft.com"]);
    val.set_issuer(&[format!("https://sts.windows.net/{tenant}/")]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &val)
        .expect("token verifies with the JWKS key");
    assert_eq!(data.claims["tid"], tenant);
    // The v1 keys endpoint serves the same key; the v1 discovery names the sts issuer.
    let (_, v1) = json_of(
        ts.http
            .get(ts.url(&format!("/{tenant}/discovery/keys")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v1["keys"][0]["kid"], h["kid"]);
    let (s, d1) = json_of(
        ts.http
            .get(ts.url(&format!("/{tenant}/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d1["issuer"], format!("https://sts.windows.net/{tenant}/"));
    assert_eq!(
        d1["token_endpoint"],
        format!("{base}/{tenant}/oauth2/token")
    );
    // common / organizations and unknown tenants.
    let (s, dc) = json_of(
        ts.http
            .get(ts.url("/common/v2.0/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(dc["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    let (s, _) = json_of(
        ts.http
            .get(ts.url("/organizations/v2.0/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, e) = json_of(
        ts.http
            .get(ts.url("/nosuch.example.com/v2.0/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_aad(s, &e, 400, "invalid_request", 90002);
    // Instance discovery (MSAL, unknown authority hosts).
    let auth_ep = format!("{base}/{tenant}/oauth2/v2.0/authorize");
    let r = ts
        .http
        .get(ts.url("/common/discovery/instance"))
        .query(&[
            ("api-version", "1.1"),
            ("authorization_endpoint", auth_ep.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (s, inst) = json_of(r).await;
    assert_eq!(s, 200);
    assert_eq!(inst["api-version"], "1.1");
    assert_eq!(
        inst["tenant_discovery_endpoint"],
        format!("{base}/{tenant}/v2.0/.well-known/openid-configuration")
    );
    assert!(inst["metadata"][0]["aliases"].is_array());
}

#[tokio::test]
async fn client_credentials_error_codes() {
    let ts = start(Seed::Empty).await;
    let tenant = ts.tenant();
    let app = create_app(&ts, json!({"name": "errs", "roles": ["Calendars.Read"]})).await;
    let id = app["client_id"].as_str().unwrap().to_owned();
    let secret = app["client_secret"].as_str().unwrap().to_owned();
    let key_id = app["secret"]["key_id"].as_str().unwrap().to_owned();
    let ok = |s: StatusCode, v: &Value| assert_eq!(s, 200, "{v}");
    let (s, v) = cc_secret(&ts, &tenant, &id, &secret).await;
    ok(s, &v);
    // 90002 unknown tenant (GUID and domain).
    let (s, v) = cc_secret(&ts, "11111111-2222-3333-4444-555555555555", &id, &secret).await;
    assert_aad(s, &v, 400, "invalid_request", 90002);
    let (s, v) = cc_secret(&ts, "nosuch.onmicrosoft.com", &id, &secret).await;
    assert_aad(s, &v, 400, "invalid_request", 90002);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("Tenant 'nosuch.onmicrosoft.com' not found")
    );
    // 9001023 on /common and /organizations.
    for t in ["common", "organizations", "consumers"] {
        let (s, v) = cc_secret(&ts, t, &id, &secret).await;
        assert_aad(s, &v, 400, "invalid_request", 9001023);
    }
    // 700016 unknown app.
    let (s, v) = cc_secret(
        &ts,
        &tenant,
        "9e3c3f5a-0000-4000-8000-000000000001",
        &secret,
    )
    .await;
    assert_aad(s, &v, 400, "unauthorized_client", 700016);
    // 7000215 wrong secret, and the secret's ID pasted instead of its value.
    for wrong in ["not-the-secret-value", key_id.as_str()] {
        let (s, v) = cc_secret(&ts, &tenant, &id, wrong).await;
        assert_aad(s, &v, 401, "invalid_client", 7000215);
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("client secret value, not the client secret ID"),
            "{v}"
        );
    }
    // 7000218 no credential.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("scope", GRAPH_DEFAULT),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 401, "invalid_client", 7000218);
    // 1002012 scope without /.default; 700022 two resources; 500011 unknown resource.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/Calendars.Read"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_scope", 1002012);
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            (
                "scope",
                "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
            ),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_scope", 700022);
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://nosuch.example.com/.default"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_resource", 500011);
    // 901002 resource= on v2.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("resource", "https://graph.microsoft.com"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_request", 901002);
    // 900144 missing parameters.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_request", 900144);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("'grant_type'")
    );
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_request", 900144);
    assert!(v["error_description"].as_str().unwrap().contains("'scope'"));
    // Not a form at all.
    let r = ts
        .http
        .post(ts.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .body("{\"grant_type\":1}")
        .send()
        .await
        .unwrap();
    let (s, v) = json_of(r).await;
    assert_aad(s, &v, 400, "invalid_request", 900144);
    // unsupported_grant_type.
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", GRAPH_DEFAULT),
            ("grant_type", "password_please"),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "unsupported_grant_type", 70003);
    // Correlation id echoes client-request-id.
    let r = ts
        .http
        .post(ts.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .header("client-request-id", "0b6a4f3e-1111-4222-8333-944444444444")
        .form(&[
            ("client_id", id.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", GRAPH_DEFAULT),
        ])
        .send()
        .await
        .unwrap();
    let (_, v) = json_of(r).await;
    assert_eq!(v["correlation_id"], "0b6a4f3e-1111-4222-8333-944444444444");
    // 7000222: the only secret expired (set through the control API, then by the clock).
    let (s, _) = ts
        .control(
            Method::PATCH,
            &format!("/apps/{id}/secrets/{key_id}"),
            Some(&json!({"expires_in_seconds": -60})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = cc_secret(&ts, &tenant, &id, &secret).await;
    assert_aad(s, &v, 401, "invalid_client", 7000222);
    assert!(v["error_description"].as_str().unwrap().contains(&id));
    let (s, second) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/secrets"),
            Some(&json!({"expires_in_seconds": 3600, "value": "an-explicit-secret-value-123"})),
        )
        .await;
    assert_eq!(s, 201, "{second}");
    assert_eq!(second["value"], "an-explicit-secret-value-123");
    let (s, v) = cc_secret(&ts, &tenant, &id, "an-explicit-secret-value-123").await;
    ok(s, &v);
    let (s, _) = ts
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 7200})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = cc_secret(&ts, &tenant, &id, "an-explicit-secret-value-123").await;
    assert_aad(s, &v, 401, "invalid_client", 7000222);
    // Counters: every request naming the client id counts.
    let (s, c) = ts
        .control(Method::GET, &format!("/apps/{id}/counters"), None)
        .await;
    assert_eq!(s, 200);
    assert!(c["token_requests"].as_u64().unwrap() >= 18, "{c}");
    assert_eq!(c["tokens_issued"], 2, "{c}");
    // 700016 after the app is deleted.
    let (s, _) = ts
        .control(Method::DELETE, &format!("/apps/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, v) = cc_secret(&ts, &tenant, &id, "an-explicit-secret-value-123").await;
    assert_aad(s, &v, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn v1_token_endpoint_uses_resource_and_string_numbers() {
    let ts = start(Seed::Empty).await;
    let tenant = ts.tenant();
    let app = create_app(&ts, json!({"name": "v1", "roles": ["Calendars.Read"]})).await;
    let id = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();
    let r = ts
        .http
        .post(ts.url(&format!("/{tenant}/oauth2/token")))
        .form(&[
            ("client_id", id),
            ("client_secret", secret),
            ("resource", "https://graph.microsoft.com"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let (s, v) = json_of(r).await;
    assert_eq!(s, 200, "{v}");
    for k in ["expires_in", "ext_expires_in", "expires_on", "not_before"] {
        let n: i64 = v[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} is a string: {v}"))
            .parse()
            .unwrap();
        assert!(n > 0);
    }
    assert_eq!(v["resource"], "https://graph.microsoft.com");
    assert_eq!(v["token_type"], "Bearer");
    let (_, c) = decode(v["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["roles"], json!(["Calendars.Read"]));
    let exp_on: i64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(exp_on, c["exp"].as_i64().unwrap());
    // Missing resource on v1.
    let r = ts
        .http
        .post(ts.url(&format!("/{tenant}/oauth2/token")))
        .form(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    let (s, v) = json_of(r).await;
    assert_aad(s, &v, 400, "invalid_request", 900144);
}

/// Builds a client assertion JWT.
fn assertion(
    key_pem: &str,
    alg: jsonwebtoken::Algorithm,
    thumb: (&str, &str),
    claims: &Value,
) -> String {
    let mut h = jsonwebtoken::Header::new(alg);
    match thumb.0 {
        "x5t" => h.x5t = Some(thumb.1.to_owned()),
        _ => h.x5t_s256 = Some(thumb.1.to_owned()),
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn sha1_b64url_of_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn cc_assertion(ts: &TestSim, tenant: &str, id: &str, a: &str) -> (StatusCode, Value) {
    cc(
        ts,
        tenant,
        &[
            ("client_id", id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", a),
            ("scope", GRAPH_DEFAULT),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

#[tokio::test]
async fn client_credentials_with_certificate_assertion() {
    let ts = start(Seed::Empty).await;
    let tenant = ts.tenant();
    let app = create_app(
        &ts,
        json!({"name": "cert-app", "roles": ["Calendars.ReadWrite"]}),
    )
    .await;
    let id = app["client_id"].as_str().unwrap().to_owned();
    let (s, cert) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({"generate": true})),
        )
        .await;
    assert_eq!(s, 201, "{cert}");
    let key = cert["private_key_pem"].as_str().unwrap().to_owned();
    let s256 = cert["thumbprint_sha256_b64url"]
        .as_str()
        .unwrap()
        .to_owned();
    let s1 = sha1_b64url_of_hex(cert["thumbprint_sha1_hex"].as_str().unwrap());
    let aud = ts.url(&format!("/{tenant}/oauth2/v2.0/token"));
    let now = now_s();
    let claims = json!({"aud": aud, "iss": id, "sub": id, "jti": "b0c5b1f6-4a55-4d8b-9d8a-0d5a3c9f0a11", "nbf": now, "iat": now, "exp": now + 600});
    // PS256 + x5t#S256 (MSAL's current form).
    let a = assertion(
        &key,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", &s256),
        &claims,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_eq!(s, 200, "PS256: {v}");
    let (_, c) = decode(v["access_token"].as_str().unwrap());
    assert_eq!(c["appidacr"], "2");
    // RS256 + x5t (SHA-1, legacy clients).
    let a = assertion(&key, jsonwebtoken::Algorithm::RS256, ("x5t", &s1), &claims);
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_eq!(s, 200, "RS256: {v}");
    // aud naming the tenant by domain.
    let domain = ts.sim.state.dir().tenants[0].default_domain().to_owned();
    let mut c2 = claims.clone();
    c2["aud"] = json!(ts.url(&format!("/{domain}/oauth2/v2.0/token")));
    let a = assertion(
        &key,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", &s256),
        &c2,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_eq!(s, 200, "aud by domain: {v}");
    // 700024: expired and not-yet-valid (outside the 5-minute skew).
    for (nbf, exp) in [(now - 3600, now - 900), (now + 900, now + 1800)] {
        let mut c3 = claims.clone();
        c3["nbf"] = json!(nbf);
        c3["iat"] = json!(nbf);
        c3["exp"] = json!(exp);
        let a = assertion(
            &key,
            jsonwebtoken::Algorithm::PS256,
            ("x5t#S256", &s256),
            &c3,
        );
        let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
        assert_aad(s, &v, 401, "invalid_client", 700024);
    }
    // Within the skew: accepted.
    let mut c4 = claims.clone();
    c4["exp"] = json!(now - 60);
    let a = assertion(
        &key,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", &s256),
        &c4,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_eq!(s, 200, "skew: {v}");
    // 700027: a certificate the app doesn't have.
    let other = create_app(&ts, json!({"name": "other"})).await;
    let oid = other["client_id"].as_str().unwrap();
    let (_, ocert) = ts
        .control(
            Method::POST,
            &format!("/apps/{oid}/certificates"),
            Some(&json!({"generate": true})),
        )
        .await;
    let okey = ocert["private_key_pem"].as_str().unwrap();
    let os256 = ocert["thumbprint_sha256_b64url"].as_str().unwrap();
    let a = assertion(
        okey,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", os256),
        &claims,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_aad(s, &v, 401, "invalid_client", 700027);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("[Reason - The key was not found."),
        "{v}"
    );
    // 700027: the right thumbprint but signed by another key.
    let a = assertion(
        okey,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", &s256),
        &claims,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_aad(s, &v, 401, "invalid_client", 700027);
    // Upload the other app's certificate (PEM): now its key works for this app too.
    let (s, up) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({"cert_pem": ocert["cert_pem"]})),
        )
        .await;
    assert_eq!(s, 201, "{up}");
    assert!(up.get("private_key_pem").is_none());
    let a = assertion(
        okey,
        jsonwebtoken::Algorithm::PS256,
        ("x5t#S256", os256),
        &claims,
    );
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_eq!(s, 200, "uploaded cert: {v}");
    // Removing the certificate → 700027 again.
    let (s, _) = ts
        .control(
            Method::DELETE,
            &format!("/apps/{id}/certificates/{}", up["key_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = cc_assertion(&ts, &tenant, &id, &a).await;
    assert_aad(s, &v, 401, "invalid_client", 700027);
    // Bad upload → 400.
    let (s, v) = ts.control(Method::POST, &format!("/apps/{id}/certificates"), Some(&json!({"cert_pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----"}))).await;
    assert_eq!(s, 400, "{v}");
    // Garbage assertion.
    let (s, v) = cc_assertion(&ts, &tenant, &id, "not.a.jwt").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_request");
}

fn events_path(mailbox: &str) -> String {
    format!("/v1.0/users/{mailbox}/events")
}

/// Re-signs `claims` with `key_pem` under `header`.
fn resign(header: &Value, claims: &Value, key_pem: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let msg = format!("{h}.{p}");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    let sig =
        jsonwebtoken::crypto::sign(msg.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{msg}.{sig}")
}

async fn assert_401(ts: &TestSim, token: &str, path: &str, message_part: &str) {
    let (s, _, v) = ts.get(token, path).await;
    assert_eq!(s, 401, "{path}: {v}");
    assert_graph_error(&v, "InvalidAuthenticationToken");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(message_part),
        "expected '{message_part}' in {v}"
    );
}

#[tokio::test]
async fn graph_rejects_missing_malformed_forged_and_expired_tokens() {
    let ts = start(Seed::Demo).await;
    let mb = a_mailbox(&ts);
    let path = events_path(&mb);
    let token = ts.default_token().await;
    let (s, _, v) = ts.get(&token, &path).await;
    assert_eq!(s, 200, "a valid token works: {v}");
    // Missing.
    let r = ts.http.get(ts.url(&path)).send().await.unwrap();
    let (s, v) = json_of(r).await;
    assert_eq!(s, 401);
    assert_graph_error(&v, "InvalidAuthenticationToken");
    // Garbage.
    assert_401(&ts, "garbage", &path, "IDX14100").await;
    assert_401(&ts, "a.b.c", &path, "IDX14100").await;
    // alg none.
    let (h, c) = decode(&token);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(c.to_string())
    );
    assert_401(&ts, &none, &path, "Signature").await;
    // Re-signed with another key (same kid), and a tampered payload.
    let app = create_app(&ts, json!({"name": "forger"})).await;
    let (_, cert) = ts
        .control(
            Method::POST,
            &format!("/apps/{}/certificates", app["client_id"].as_str().unwrap()),
            Some(&json!({"generate": true})),
        )
        .await;
    let forged = resign(&h, &c, cert["private_key_pem"].as_str().unwrap());
    assert_401(&ts, &forged, &path, "Signature is invalid").await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c2 = c.clone();
    c2["roles"] = json!(["Calendars.ReadWrite", "Directory.ReadWrite.All"]);
    parts[1] = URL_SAFE_NO_PAD.encode(c2.to_string());
    assert_401(&ts, &parts.join("."), &path, "Signature is invalid").await;
    // Another audience (an Exchange token).
    let (id, secret) = ts.app("calgate");
    let tenant = ts.tenant();
    let (s, v) = cc(
        &ts,
        &tenant,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://outlook.office365.com/.default"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_401(
        &ts,
        v["access_token"].as_str().unwrap(),
        &path,
        "Invalid audience",
    )
    .await;
    // Expired: advance the clock past exp.
    let (s, _) = ts
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 5401})),
        )
        .await;
    assert_eq!(s, 200);
    assert_401(
        &ts,
        &token,
        &path,
        "Access token has expired or is not yet valid.",
    )
    .await;
    // A fresh token works again.
    let fresh = ts.default_token().await;
    let (s, _, v) = ts.get(&fresh, &path).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn graph_rejects_token_of_deleted_app_and_app_without_permissions_gets_403() {
    let ts = start(Seed::Demo).await;
    let tenant = ts.tenant();
    let mb = a_mailbox(&ts);
    let path = events_path(&mb);
    // No roles, no RBAC: Entra still issues a token (no roles claim); Graph answers 403.
    let bare = create_app(&ts, json!({"name": "bare"})).await;
    let (bid, bsecret) = (
        bare["client_id"].as_str().unwrap(),
        bare["client_secret"].as_str().unwrap(),
    );
    let (s, v) = cc_secret(&ts, &tenant, bid, bsecret).await;
    assert_eq!(s, 200, "{v}");
    let t = v["access_token"].as_str().unwrap().to_owned();
    assert!(decode(&t).1.get("roles").is_none());
    let (s, _, v) = ts.get(&t, &path).await;
    assert_eq!(s, 403, "{v}");
    assert_graph_error(&v, "ErrorAccessDenied");
    // RBAC for Applications only (no Entra role): the token has no roles, Graph allows it.
    let (s, v) = ts
        .control(
            Method::POST,
            &format!("/apps/{bid}/rbac"),
            Some(&json!({"permission": "Application Calendars.Read"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = cc_secret(&ts, &tenant, bid, bsecret).await;
    assert_eq!(s, 200);
    let t2 = v["access_token"].as_str().unwrap().to_owned();
    assert!(decode(&t2).1.get("roles").is_none());
    let (s, _, v) = ts.get(&t2, &path).await;
    assert_eq!(s, 200, "RBAC grants apply at the resource: {v}");
    // Roles granted later show up in new tokens only.
    let (s, _) = ts
        .control(
            Method::POST,
            &format!("/apps/{bid}/roles"),
            Some(&json!({"roles": ["Calendars.Read"]})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = cc_secret(&ts, &tenant, bid, bsecret).await;
    assert_eq!(
        decode(v["access_token"].as_str().unwrap()).1["roles"],
        json!(["Calendars.Read"])
    );
    // Deleting the app invalidates its tokens on Graph.
    let (s, _) = ts
        .control(Method::DELETE, &format!("/apps/{bid}"), None)
        .await;
    assert_eq!(s, 204);
    assert_401(&ts, &t2, &path, "Access token validation failure").await;
}

// ---------------------------------------------------------------------------------------------
// Authorization code + PKCE + refresh tokens
// ---------------------------------------------------------------------------------------------

const REDIRECT: &str = "http://localhost/callback";

struct Flow {
    tenant: String,
    client_id: String,
    secret: String,
    upn: String,
    nohttp: reqwest::Client,
}

impl Flow {
    async fn new(ts: &TestSim, consent: &[&str]) -> Flow {
        let app = create_app(
            ts,
            json!({"name": "web-app", "redirect_uris": [REDIRECT], "delegated_consent": consent}),
        )
        .await;
        Flow {
            tenant: ts.tenant(),
            client_id: app["client_id"].as_str().unwrap().to_owned(),
            secret: app["client_secret"].as_str().unwrap().to_owned(),
            upn: a_mailbox(ts),
            nohttp: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn params<'a>(
        &'a self,
        scope: &'a str,
        challenge: &'a str,
        method: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut p = vec![
            ("client_id", self.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", method),
        ];
        p.extend_from_slice(extra);
        p
    }

    /// Posts the sign-in form (and, when asked, the consent form with `accept`).
    async fn post(&self, ts: &TestSim, params: &[(&str, &str)]) -> reqwest::Response {
        self.nohttp
            .post(ts.url(&format!("/{}/oauth2/v2.0/authorize", self.tenant)))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// Signs in (consenting if asked) and returns the redirect's query parameters.
    async fn code(
        &self,
        ts: &TestSim,
        scope: &str,
        challenge: &str,
        method: &str,
    ) -> std::collections::HashMap<String, String> {
        let mut p = self.params(
            scope,
            challenge,
            method,
            &[("step", "signin"), ("login", &self.upn)],
        );
        let mut r = self.post(ts, &p).await;
        if r.status() == 200 {
            let html = r.text().await.unwrap();
            assert!(html.contains("Permissions requested"), "{html}");
            p.retain(|(k, _)| *k != "step");
            p.extend([("step", "consent"), ("accept", "yes")]);
            r = self.post(ts, &p).await;
        }
        assert_eq!(r.status(), 302, "{:?}", r.text().await);
        redirect_params(&r)
    }

    async fn redeem(&self, ts: &TestSim, code: &str, verifier: &str) -> (StatusCode, Value) {
        cc(
            ts,
            &self.tenant,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id),
                ("client_secret", &self.secret),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn refresh(&self, ts: &TestSim, rt: &str) -> (StatusCode, Value) {
        cc(
            ts,
            &self.tenant,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.secret),
                ("refresh_token", rt),
            ],
        )
        .await
    }
}

fn redirect_params(r: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = loc.split_once(['?', '#']).map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect()
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

const VERIFIER: &str = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag";
const SCOPES: &str =
    "openid profile offline_access https://graph.microsoft.com/Calendars.ReadWrite";

#[tokio::test]
async fn authorization_code_pkce_and_refresh_end_to_end() {
    let ts = start(Seed::Demo).await;
    let f = Flow::new(&ts, &["Calendars.ReadWrite", "User.Read"]).await;
    // The sign-in page lists the tenant's people.
    let q = f.params(SCOPES, "x", "S256", &[("login_hint", &f.upn)]);
    let r = f
        .nohttp
        .get(ts.url(&format!("/{}/oauth2/v2.0/authorize", f.tenant)))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&f.upn) && html.contains("<form") && html.contains("selected"),
        "{html}"
    );
    // Code (admin consent covers the scopes: no consent page).
    let challenge = s256(VERIFIER);
    let p = f.code(&ts, SCOPES, &challenge, "S256").await;
    assert_eq!(p["state"], "st-123");
    let code = p["code"].clone();
    let (s, v) = f.redeem(&ts, &code, VERIFIER).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].is_i64());
    let scope = v["scope"].as_str().unwrap();
    assert!(
        scope.contains("https://graph.microsoft.com/Calendars.ReadWrite")
            && scope.contains("offline_access"),
        "{scope}"
    );
    let rt = v["refresh_token"]
        .as_str()
        .expect("offline_access → refresh_token")
        .to_owned();
    let (_, idc) = decode(v["id_token"].as_str().expect("openid → id_token"));
    assert_eq!(idc["aud"], f.client_id);
    assert_eq!(
        idc["preferred_username"].as_str().unwrap().to_lowercase(),
        f.upn.to_lowercase()
    );
    assert_eq!(idc["ver"], "2.0");
    let at = v["access_token"].as_str().unwrap().to_owned();
    let (_, c) = decode(&at);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{}/", f.tenant));
    assert_eq!(c["idtyp"], "user");
    assert_eq!(c["appid"], f.client_id);
    assert!(
        c["scp"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "Calendars.ReadWrite"),
        "{c}"
    );
    assert!(c.get("roles").is_none());
    assert_eq!(
        c["upn"].as_str().unwrap().to_lowercase(),
        f.upn.to_lowercase()
    );
    assert!(c["name"].is_string() && c["oid"].is_string());
    // The delegated token reads the user's own calendar, not someone else's.
    let (s, _, v) = ts.get(&at, &events_path(&f.upn)).await;
    assert_eq!(s, 200, "{v}");
    let other = ts.creds()["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap().to_owned())
        .find(|a| !a.eq_ignore_ascii_case(&f.upn))
        .unwrap();
    let (s, _, v) = ts.get(&at, &events_path(&other)).await;
    assert_eq!(s, 403, "{v}");
    // 54005: the code is single-use.
    let (s, v) = f.redeem(&ts, &code, VERIFIER).await;
    assert_aad(s, &v, 400, "invalid_grant", 54005);
    // Refresh: a new refresh token each time; the old one keeps working.
    let (s, v) = f.refresh(&ts, &rt).await;
    assert_eq!(s, 200, "{v}");
    let rt2 = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt, rt2);
    assert!(v["access_token"].is_string());
    let (s, v) = f.refresh(&ts, &rt).await;
    assert_eq!(s, 200, "old refresh token not revoked: {v}");
    // 70008: refresh tokens expire after 90 days.
    let (s, _) = ts
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 91 * 86400})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = f.refresh(&ts, &rt2).await;
    assert_aad(s, &v, 400, "invalid_grant", 70008);
}

#[tokio::test]
async fn authorization_code_errors_pkce_plain_and_offline_access() {
    let ts = start(Seed::Demo).await;
    let f = Flow::new(&ts, &["Calendars.Read"]).await;
    let scope = "openid https://graph.microsoft.com/Calendars.Read";
    // 501481: wrong verifier, and missing verifier.
    let p = f.code(&ts, scope, &s256(VERIFIER), "S256").await;
    let (s, v) = f
        .redeem(
            &ts,
            &p["code"],
            "another-verifier-another-verifier-another-verifier",
        )
        .await;
    assert_aad(s, &v, 400, "invalid_grant", 501481);
    let p = f.code(&ts, scope, &s256(VERIFIER), "S256").await;
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client_id),
            ("client_secret", &f.secret),
            ("code", &p["code"]),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_aad(s, &v, 400, "invalid_grant", 501481);
    // plain PKCE; no offline_access → no refresh_token.
    let p = f.code(&ts, scope, VERIFIER, "plain").await;
    let (s, v) = f.redeem(&ts, &p["code"], VERIFIER).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert!(v["id_token"].is_string());
    // Without openid: no id_token.
    let p = f
        .code(
            &ts,
            "https://graph.microsoft.com/Calendars.Read",
            VERIFIER,
            "plain",
        )
        .await;
    let (s, v) = f.redeem(&ts, &p["code"], VERIFIER).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v.get("id_token").is_none() && v.get("refresh_token").is_none(),
        "{v}"
    );
    // Codes expire after about 10 minutes.
    let p = f.code(&ts, scope, VERIFIER, "plain").await;
    let (s, _) = ts
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 660})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = f.redeem(&ts, &p["code"], VERIFIER).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_grant");
    // redirect_uri must match the one of the authorization request.
    let p = f.code(&ts, scope, VERIFIER, "plain").await;
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client_id),
            ("client_secret", &f.secret),
            ("code", &p["code"]),
            ("redirect_uri", "http://localhost/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_grant");
    // A confidential client must authenticate: 7000218 / 7000215.
    let p = f.code(&ts, scope, VERIFIER, "plain").await;
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client_id),
            ("code", &p["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_aad(s, &v, 401, "invalid_client", 7000218);
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client_id),
            ("client_secret", "wrong-wrong-wrong"),
            ("code", &p["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_aad(s, &v, 401, "invalid_client", 7000215);
    // The authorize page refuses an unregistered redirect URI (shown, never redirected).
    let q = [
        ("client_id", f.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "https://evil.example.com/cb"),
        ("scope", scope),
    ];
    let r = f
        .nohttp
        .get(ts.url(&format!("/{}/oauth2/v2.0/authorize", f.tenant)))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AADSTS50011"));
    // Unknown tenant / app on authorize.
    let q = [
        ("client_id", "0f0f0f0f-0000-4000-8000-000000000000"),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
    ];
    let r = f
        .nohttp
        .get(ts.url(&format!("/{}/oauth2/v2.0/authorize", f.tenant)))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AADSTS700016"));
}

/// Request values reach the authorize pages HTML-escaped: a hostile `client_id` on the error
/// page, a hostile `login_hint` and `state` on the sign-in page, and `state` in a `form_post`.
#[tokio::test]
async fn authorize_pages_escape_request_values() {
    const HOSTILE: &str = "<script>alert('x')</script>\"&";
    const ESCAPED: &str = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;";
    let ts = start(Seed::Demo).await;
    let f = Flow::new(&ts, &["User.Read"]).await;
    let url = ts.url(&format!("/{}/oauth2/v2.0/authorize", f.tenant));
    let base = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid User.Read"),
        ("state", HOSTILE),
    ];
    // Unknown (hostile) client: Entra's error page.
    let mut q = base.to_vec();
    q.push(("client_id", HOSTILE));
    let r = f.nohttp.get(&url).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("Application with identifier &#39;{ESCAPED}&#39;")),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    // Sign-in page: the hint and the state travel in hidden fields.
    let mut q = base.to_vec();
    q.extend([("client_id", f.client_id.as_str()), ("login_hint", HOSTILE)]);
    let r = f.nohttp.get(&url).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "<input type=\"hidden\" name=\"login_hint\" value=\"{ESCAPED}\"/>"
        )) && html.contains(&format!(
            "<input type=\"hidden\" name=\"state\" value=\"{ESCAPED}\"/>"
        )),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    // form_post: the code and the state posted back by a page.
    let mut q = base.to_vec();
    q.extend([
        ("client_id", f.client_id.as_str()),
        ("response_mode", "form_post"),
        ("step", "signin"),
        ("login", f.upn.as_str()),
    ]);
    let r = f.post(&ts, &q).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"code\"")
            && html.contains(&format!(
                "<input type=\"hidden\" name=\"state\" value=\"{ESCAPED}\"/>"
            )),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test]
async fn consent_page_denial_and_65001_after_consent_revoked() {
    let ts = start(Seed::Demo).await;
    // No delegated consent: the page asks.
    let f = Flow::new(&ts, &[]).await;
    let scope = "offline_access https://graph.microsoft.com/Calendars.Read";
    let mut p = f.params(
        scope,
        VERIFIER,
        "plain",
        &[
            ("step", "signin"),
            ("login", &f.upn),
            ("response_mode", "fragment"),
        ],
    );
    let r = f.post(&ts, &p).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Permissions requested") && html.contains("Calendars.Read"),
        "{html}"
    );
    // Cancel → access_denied on the redirect (fragment mode), with state.
    p.retain(|(k, _)| *k != "step");
    let mut deny = p.clone();
    deny.extend([("step", "consent"), ("accept", "no")]);
    let r = f.post(&ts, &deny).await;
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().unwrap().contains('#'));
    let q = redirect_params(&r);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-123");
    // Accept → code; the user's consent is remembered (no page the second time).
    let mut accept = p.clone();
    accept.extend([("step", "consent"), ("accept", "yes")]);
    let r = f.post(&ts, &accept).await;
    assert_eq!(r.status(), 302);
    let q = redirect_params(&r);
    let (s, v) = f.redeem(&ts, &q["code"], VERIFIER).await;
    assert_eq!(s, 200, "{v}");
    let rt = v["refresh_token"].as_str().unwrap().to_owned();
    let q2 = f.code(&ts, scope, VERIFIER, "plain").await;
    assert!(q2.contains_key("code"));
    // prompt=none with consent missing → consent_required on the redirect.
    let p3 = f.params(
        "https://graph.microsoft.com/Calendars.ReadWrite",
        VERIFIER,
        "plain",
        &[("step", "signin"), ("login", &f.upn), ("prompt", "none")],
    );
    let r = f.post(&ts, &p3).await;
    assert_eq!(r.status(), 302);
    assert_eq!(redirect_params(&r)["error"], "consent_required");
    // form_post delivers an auto-submitting form.
    let p4 = f.params(
        scope,
        VERIFIER,
        "plain",
        &[
            ("step", "signin"),
            ("login", &f.upn),
            ("response_mode", "form_post"),
        ],
    );
    let r = f.post(&ts, &p4).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("action=\"{REDIRECT}\""))
            && html.contains("name=\"code\"")
            && html.contains("name=\"state\""),
        "{html}"
    );
    // Consent revoked by the admin → 65001 consent_required on refresh.
    let (s, v) = ts
        .control(
            Method::DELETE,
            &format!("/apps/{}/consent/Calendars.Read", f.client_id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = f.refresh(&ts, &rt).await;
    assert_aad(s, &v, 400, "invalid_grant", 65001);
    assert_eq!(v["suberror"], "consent_required");
}

#[tokio::test]
async fn refresh_tokens_revoked_or_expired_by_control_api() {
    let ts = start(Seed::Demo).await;
    let f = Flow::new(&ts, &["Calendars.Read"]).await;
    let scope = "offline_access https://graph.microsoft.com/Calendars.Read";
    let mut rts = Vec::new();
    for _ in 0..2 {
        let p = f.code(&ts, scope, VERIFIER, "plain").await;
        let (s, v) = f.redeem(&ts, &p["code"], VERIFIER).await;
        assert_eq!(s, 200, "{v}");
        rts.push(v["refresh_token"].as_str().unwrap().to_owned());
    }
    let (s, v) = ts
        .control(
            Method::POST,
            "/tokens/expire",
            Some(&json!({"user": f.upn, "client_id": f.client_id})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refresh_tokens"], 2);
    let (s, v) = f.refresh(&ts, &rts[0]).await;
    assert_aad(s, &v, 400, "invalid_grant", 70008);
    // Revocation (password reset style) → 50173.
    let p = f.code(&ts, scope, VERIFIER, "plain").await;
    let (_, v) = f.redeem(&ts, &p["code"], VERIFIER).await;
    let rt = v["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = ts
        .control(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"user": f.upn})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = f.refresh(&ts, &rt).await;
    assert_aad(s, &v, 400, "invalid_grant", 50173);
    // Garbage refresh token; bad control input.
    let (s, v) = f.refresh(&ts, "not-a-refresh-token").await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "invalid_grant");
    let (s, _) = ts
        .control(Method::POST, "/tokens/revoke", Some(&json!({})))
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts
        .control(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"user": "nobody@nowhere.example"})),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn control_api_for_apps_validates_input_and_never_lists_secret_values() {
    let ts = start(Seed::Demo).await;
    let app = create_app(&ts, json!({"name": "ctl", "roles": ["Calendars.Read"], "delegated_consent": ["Calendars.Read"], "redirect_uris": ["https://app.example.com/cb"]})).await;
    let id = app["client_id"].as_str().unwrap().to_owned();
    let secret = app["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(app["secret"]["value"], secret);
    assert_eq!(secret.len(), 40);
    // Not published in --credentials-out.
    assert!(
        !ts.creds()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["client_id"] == id.as_str())
    );
    // Listing and getting never shows secret values.
    let (s, list) = ts.control(Method::GET, "/apps", None).await;
    assert_eq!(s, 200);
    assert!(!list.to_string().contains(&secret));
    let (s, one) = ts.control(Method::GET, &format!("/apps/{id}"), None).await;
    assert_eq!(s, 200);
    assert!(!one.to_string().contains(&secret));
    assert_eq!(one["roles"], json!(["Calendars.Read"]));
    // Bad input → 400 JSON.
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "roles": ["not a role!"]}),
        json!({"name": "x", "redirect_uris": ["ftp://x"]}),
        json!({"name": "x", "bogus": 1}),
    ] {
        let (s, v) = ts.control(Method::POST, "/apps", Some(&bad)).await;
        assert_eq!(s, 400, "{bad} → {v}");
        assert_graph_error(&v, "BadRequest");
    }
    let r = ts
        .http
        .post(ts.url("/_sim/apps"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/secrets"),
            Some(&json!({"value": "short"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/secrets"),
            Some(&json!({"expires": "not-a-date"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/rbac"),
            Some(&json!({"permission": "Calendars.Read", "scope_group": "no-such-group@x"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = ts
        .control(
            Method::PUT,
            &format!("/apps/{id}/access-policy"),
            Some(&json!({"access_right": "Maybe", "group": "x"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts.control(Method::GET, "/apps/not-a-guid", None).await;
    assert_eq!(s, 404);
    // Roles: replace and revoke.
    let (s, v) = ts
        .control(
            Method::PUT,
            &format!("/apps/{id}/roles"),
            Some(&json!({"roles": ["Calendars.ReadWrite", "Place.Read.All"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["roles"], json!(["Calendars.ReadWrite", "Place.Read.All"]));
    let (s, v) = ts
        .control(
            Method::DELETE,
            &format!("/apps/{id}/roles/Place.Read.All"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["roles"], json!(["Calendars.ReadWrite"]));
    // Second secret, removal of the first: the old value stops working.
    let (s, sec2) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/secrets"),
            Some(&json!({"display_name": "rotation"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = ts
        .control(
            Method::DELETE,
            &format!(
                "/apps/{id}/secrets/{}",
                app["secret"]["key_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let tenant = ts.tenant();
    let (s, v) = cc_secret(&ts, &tenant, &id, &secret).await;
    assert_aad(s, &v, 401, "invalid_client", 7000215);
    let (s, v) = cc_secret(&ts, &tenant, &id, sec2["value"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn rbac_scope_and_access_policy_set_through_control_api() {
    let ts = start(Seed::Demo).await;
    let tenant = ts.tenant();
    let users: Vec<String> = ts.creds()["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "user")
        .map(|m| m["address"].as_str().unwrap().to_owned())
        .collect();
    let (inside, outside) = (&users[0], &users[1]);
    let domain = inside.split('@').nth(1).unwrap();
    let gmail = format!("identity-scope@{domain}");
    let (s, g) = ts
        .control(
            Method::POST,
            "/groups",
            Some(&json!({"display_name": "Identity scope", "mail": gmail, "members": [inside]})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    // RBAC scoped to the group: inside readable, outside 403.
    let app = create_app(&ts, json!({"name": "scoped-rbac"})).await;
    let (id, secret) = (
        app["client_id"].as_str().unwrap(),
        app["client_secret"].as_str().unwrap(),
    );
    let (s, v) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/rbac"),
            Some(&json!({"permission": "Calendars.Read", "scope_group": gmail})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["value"][0]["scope_group"]["mail"], gmail.as_str());
    let (_, t) = cc_secret(&ts, &tenant, id, secret).await;
    let t = t["access_token"].as_str().unwrap().to_owned();
    let (s, _, v) = ts.get(&t, &events_path(inside)).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, v) = ts.get(&t, &events_path(outside)).await;
    assert_eq!(s, 403, "{v}");
    // Removing the assignment takes effect at once (evaluated at the resource).
    let (s, _) = ts
        .control(
            Method::DELETE,
            &format!("/apps/{id}/rbac"),
            Some(&json!({"permission": "Calendars.Read", "scope_group": gmail})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = ts.get(&t, &events_path(inside)).await;
    assert_eq!(s, 403);
    let (s, _) = ts
        .control(
            Method::DELETE,
            &format!("/apps/{id}/rbac"),
            Some(&json!({"permission": "Calendars.Read", "scope_group": gmail})),
        )
        .await;
    assert_eq!(s, 404);
    // Entra role + RestrictAccess policy: outside → 403 with [RAOP].
    let app2 = create_app(&ts, json!({"name": "policy", "roles": ["Calendars.Read"]})).await;
    let (id2, secret2) = (
        app2["client_id"].as_str().unwrap(),
        app2["client_secret"].as_str().unwrap(),
    );
    let (s, v) = ts
        .control(
            Method::PUT,
            &format!("/apps/{id2}/access-policy"),
            Some(&json!({"access_right": "RestrictAccess", "group": gmail})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, t2) = cc_secret(&ts, &tenant, id2, secret2).await;
    let t2 = t2["access_token"].as_str().unwrap().to_owned();
    let (s, _, _) = ts.get(&t2, &events_path(inside)).await;
    assert_eq!(s, 200);
    let (s, _, v) = ts.get(&t2, &events_path(outside)).await;
    assert_eq!(s, 403);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("[RAOP]"),
        "{v}"
    );
    // DenyAccess flips it; clearing the policy opens everything.
    let (s, _) = ts
        .control(
            Method::PUT,
            &format!("/apps/{id2}/access-policy"),
            Some(&json!({"access_right": "DenyAccess", "group": gmail})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = ts.get(&t2, &events_path(inside)).await;
    assert_eq!(s, 403);
    let (s, _) = ts
        .control(Method::DELETE, &format!("/apps/{id2}/access-policy"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _, _) = ts.get(&t2, &events_path(outside)).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn public_client_redeems_code_without_secret() {
    let ts = start(Seed::Demo).await;
    let app = create_app(&ts, json!({"name": "native", "redirect_uris": ["http://localhost"], "delegated_consent": ["Calendars.Read"], "public_client": true})).await;
    let mut f = Flow::new(&ts, &[]).await;
    f.client_id = app["client_id"].as_str().unwrap().to_owned();
    // Loopback redirect URIs match on any port (native apps).
    let redirect = "http://localhost:53123/";
    let p = [
        ("client_id", f.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("scope", "https://graph.microsoft.com/Calendars.Read"),
        ("code_challenge", VERIFIER),
        ("code_challenge_method", "plain"),
        ("step", "signin"),
        ("login", f.upn.as_str()),
    ];
    let r = f.post(&ts, &p).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with(redirect), "{loc}");
    let q: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client_id),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        decode(v["access_token"].as_str().unwrap()).1["appidacr"],
        "0"
    );
    // A public client can't use client_credentials.
    let (s, v) = cc(
        &ts,
        &f.tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &f.client_id),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await;
    assert_aad(s, &v, 401, "invalid_client", 7000218);
}

/// MSAL Python's assertion: float `exp`/`iat`, standard base64 (padded) `x5t#S256`, and `x5c`.
#[tokio::test]
async fn msal_python_style_assertion_is_accepted() {
    let ts = start(Seed::Empty).await;
    let tenant = ts.tenant();
    let app = create_app(&ts, json!({"name": "msal-style"})).await;
    let id = app["client_id"].as_str().unwrap().to_owned();
    let (_, cert) = ts
        .control(
            Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({"generate": true})),
        )
        .await;
    let sha256 = URL_SAFE_NO_PAD
        .decode(cert["thumbprint_sha256_b64url"].as_str().unwrap())
        .unwrap();
    let std_thumb = base64::engine::general_purpose::STANDARD.encode(sha256);
    let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": std_thumb, "x5c": ["MIIB"]});
    let now = now_s() as f64 + 0.638;
    let claims = json!({"aud": ts.url(&format!("/{tenant}/oauth2/v2.0/token")), "iss": id, "sub": id, "exp": now + 600.0, "iat": now, "jti": "0d8f0a5e-2b7c-4a8e-9d3c-1b2a3c4d5e6f"});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let msg = format!("{h}.{p}");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(
        cert["private_key_pem"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let sig =
        jsonwebtoken::crypto::sign(msg.as_bytes(), &key, jsonwebtoken::Algorithm::PS256).unwrap();
    let (s, v) = cc_assertion(&ts, &tenant, &id, &format!("{msg}.{sig}")).await;
    assert_eq!(s, 200, "{v}");
}

/// v1 (`/oauth2/authorize`, `/oauth2/token`): `resource=` instead of `scope`; the request is
/// for the app's configured delegated permissions; numbers are strings; a refresh token always.
#[tokio::test]
async fn v1_authorize_code_and_token_with_resource() {
    let ts = start(Seed::Demo).await;
    let f = Flow::new(&ts, &["Calendars.ReadWrite", "User.Read"]).await;
    let v1_token = |form: Vec<(&'static str, String)>| {
        let req = ts
            .http
            .post(ts.url(&format!("/{}/oauth2/token", f.tenant)))
            .form(&form);
        async move { json_of(req.send().await.unwrap()).await }
    };
    let challenge = s256(VERIFIER);
    let base = [
        ("client_id", f.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("resource", "https://graph.microsoft.com"),
        ("state", "st-v1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let v1_url = ts.url(&format!("/{}/oauth2/authorize", f.tenant));
    // The sign-in page posts back to the v1 endpoint.
    let r = f.nohttp.get(&v1_url).query(&base).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("/{}/oauth2/authorize\"", f.tenant))
            && html.contains("name=\"resource\"")
            && html.contains(&f.upn),
        "{html}"
    );
    // Sign in (admin consent covers the configured permissions: no consent page).
    let mut p = base.to_vec();
    p.extend([("step", "signin"), ("login", f.upn.as_str())]);
    let r = f.nohttp.post(&v1_url).form(&p).send().await.unwrap();
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let q = redirect_params(&r);
    assert_eq!(q["state"], "st-v1");
    assert!(q.contains_key("session_state"));
    let form = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", f.client_id.clone()),
            ("client_secret", f.secret.clone()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
            ("resource", "https://graph.microsoft.com".to_owned()),
        ]
    };
    let (s, v) = v1_token(form(&q["code"])).await;
    assert_eq!(s, 200, "{v}");
    for k in ["expires_in", "ext_expires_in", "expires_on", "not_before"] {
        let n: i64 = v[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} is a string: {v}"))
            .parse()
            .unwrap();
        assert!(n > 0);
    }
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["resource"], "https://graph.microsoft.com");
    let rt = v["refresh_token"]
        .as_str()
        .expect("v1 always returns a refresh token")
        .to_owned();
    let (_, idc) = decode(v["id_token"].as_str().expect("v1 returns an ID token"));
    assert_eq!(idc["aud"], f.client_id);
    let at = v["access_token"].as_str().unwrap().to_owned();
    let (_, c) = decode(&at);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["idtyp"], "user");
    let scp: Vec<&str> = c["scp"].as_str().unwrap().split(' ').collect();
    assert!(
        scp.contains(&"Calendars.ReadWrite") && scp.contains(&"User.Read"),
        "{c}"
    );
    let exp_on: i64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(exp_on, c["exp"].as_i64().unwrap());
    let (s, _, v) = ts.get(&at, &events_path(&f.upn)).await;
    assert_eq!(s, 200, "{v}");
    // Refresh at v1 with resource=.
    let (s, v) = v1_token(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("client_id", f.client_id.clone()),
        ("client_secret", f.secret.clone()),
        ("refresh_token", rt.clone()),
        ("resource", "https://graph.microsoft.com".to_owned()),
    ])
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["expires_in"].is_string() && v["refresh_token"].is_string(),
        "{v}"
    );
    assert_ne!(v["refresh_token"], rt);
    // `scope` is ignored on v1 (no 900144 without it); an unknown resource → invalid_resource
    // on the redirect.
    let mut bad = base.to_vec();
    bad.retain(|(k, _)| *k != "resource");
    bad.extend([
        ("resource", "https://nowhere.example"),
        ("step", "signin"),
        ("login", f.upn.as_str()),
    ]);
    let r = f.nohttp.post(&v1_url).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let q = redirect_params(&r);
    assert_eq!(q["error"], "invalid_resource", "{q:?}");
    assert!(q["error_description"].starts_with("AADSTS500011"), "{q:?}");
    // No resource at /authorize: the token request must name it (900144).
    let mut none = base.to_vec();
    none.retain(|(k, _)| *k != "resource");
    none.extend([("step", "signin"), ("login", f.upn.as_str())]);
    let r = f.nohttp.post(&v1_url).form(&none).send().await.unwrap();
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let code = redirect_params(&r)["code"].clone();
    let mut no_res = form(&code);
    no_res.retain(|(k, _)| *k != "resource");
    let (s, v) = v1_token(no_res).await;
    assert_aad(s, &v, 400, "invalid_request", 900144);
    // The code was not consumed by the malformed request; with resource= it is redeemed.
    let (s, v) = v1_token(form(&code)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["resource"], "https://graph.microsoft.com");
    assert!(v["refresh_token"].is_string(), "{v}");
}
