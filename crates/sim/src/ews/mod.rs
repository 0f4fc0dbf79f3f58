//! The EWS face: `POST /EWS/Exchange.asmx` (path case-insensitive, as IIS), SOAP 1.1 (and 1.2),
//! over the same tenant model as the Graph face. Written from Microsoft's EWS reference and
//! its SOAP samples; documented in `docs/sim/ews.md`.
//!
//! - [`xml`] — reading requests (quick-xml) and writing answers (everything escaped);
//! - [`auth`](self::authenticate) — Basic and NTLM (per TCP connection), 401 challenges;
//! - [`ops`] — the calendar operations; [`availability`] — GetUserAvailability, GetRoomLists,
//!   GetRooms;
//! - [`item`] — `t:CalendarItem` ↔ model; [`ids`] — item and folder ids;
//! - [`state`] — sync states, injected faults, throttling counters.
//!
//! Every answer carries `ServerVersionInfo` 15.2.1118.7 (`V2017_07_11`): Exchange Server 2019
//! CU12, which reports that schema-version string as Exchange 2016 and later do.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

pub mod availability;
pub mod error;
pub mod ids;
pub mod item;
pub mod ntlm;
pub mod ops;
pub mod state;
pub mod xml;

use error::EwsError;
use xml::{Element, MESSAGES_NS, SOAP_NS, SOAP12_NS, TYPES_NS, Writer};

use crate::model::{EwsAccount, ImpersonationRight, Tenant};
use crate::state::SimState;

/// The path (compared case-insensitively).
pub const EWS_PATH: &str = "/EWS/Exchange.asmx";

/// `ServerVersionInfo`: Exchange Server 2019 CU12 (15.2.1118.7).
pub const SERVER_VERSION: (u32, u32, u32, u32) = (15, 2, 1118, 7);
/// The `Version` attribute Exchange 2016/2019 put in `ServerVersionInfo`.
pub const SERVER_VERSION_STRING: &str = "V2017_07_11";

/// `RequestServerVersion/@Version` values accepted.
pub const REQUEST_VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2016",
];

/// Whether `path` is the EWS endpoint.
pub fn is_ews_path(path: &str) -> bool {
    path.eq_ignore_ascii_case(EWS_PATH)
}

/// The TCP connection a request came on (set by the listener), for NTLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(pub u64);

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Uuid,
    pub account: EwsAccount,
}

fn find_account(st: &SimState, name: &str) -> Option<(Uuid, EwsAccount)> {
    let dir = st.dir();
    dir.tenants.iter().find_map(|t| {
        t.ews_accounts
            .iter()
            .find(|a| a.matches(name))
            .map(|a| (t.id, a.clone()))
    })
}

/// Looks an account up by the logon name an NTLM AUTHENTICATE message carries.
pub fn account_by_logon(st: &SimState, domain: &str, user: &str) -> Option<(Uuid, EwsAccount)> {
    let name = if domain.is_empty() || user.contains('@') {
        user.to_owned()
    } else {
        format!("{domain}\\{user}")
    };
    find_account(st, &name)
}

/// The 401 IIS answers with: one `WWW-Authenticate` per enabled scheme (`Negotiate`, `NTLM`,
/// `Basic realm="…"`), optionally with an NTLM challenge token.
pub fn unauthorized(st: &SimState, host: &str, ntlm_token: Option<(&str, &str)>) -> Response {
    let a = st.ews.auth();
    crate::state::lock(&st.ews.stats).unauthorized += 1;
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>401 - Unauthorized</title></head><body>401 - Unauthorized: Access is denied due to invalid credentials.</body></html>",
    )
        .into_response();
    let h = resp.headers_mut();
    match ntlm_token {
        Some((scheme, token)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("{scheme} {token}")) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        None => {
            if a.ntlm {
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Negotiate"),
                );
                h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
            }
            if a.basic {
                let realm = host.split(':').next().unwrap_or("localhost");
                if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                    h.append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
    }
    resp
}

fn authenticate(
    st: &SimState,
    headers: &axum::http::HeaderMap,
    conn: u64,
) -> Result<Caller, Response> {
    use base64::Engine as _;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let settings = st.ews.auth();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let Some(auth) = auth else {
        // A connection that completed NTLM stays authenticated (as IIS keeps it).
        if settings.ntlm
            && let Some(ntlm::ConnAuth::Authenticated { tenant, logon }) = st.ews.ntlm.get(conn)
            && let Some((t, account)) = find_account(st, &logon)
            && t == tenant
        {
            return Ok(Caller { tenant, account });
        }
        return Err(unauthorized(st, &host, None));
    };
    let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        if !settings.basic {
            return Err(unauthorized(st, &host, None));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(unauthorized(st, &host, None));
        };
        return match find_account(st, user) {
            Some((tenant, account)) if account.password == pass => Ok(Caller { tenant, account }),
            _ => Err(unauthorized(st, &host, None)),
        };
    }
    if (scheme.eq_ignore_ascii_case("NTLM") || scheme.eq_ignore_ascii_case("Negotiate"))
        && settings.ntlm
    {
        return ntlm::handle_header(st, conn, scheme, rest.trim(), &host);
    }
    Err(unauthorized(st, &host, None))
}

/// `POST /EWS/Exchange.asmx`.
pub async fn handle(st: Arc<SimState>, req: Request) -> Response {
    if st.ews.take_503() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>Service Unavailable</h1><p>HTTP Error 503. The service is unavailable.</p></body></html>",
        )
            .into_response();
    }
    let conn = req
        .extensions()
        .get::<ConnId>()
        .map(|c| c.0)
        .unwrap_or(u64::MAX);
    let (parts, body) = req.into_parts();
    // The body is read before authenticating, so that a 401 leaves the connection clean for
    // the next leg of an NTLM handshake.
    let body = axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES).await;
    let caller = match authenticate(&st, &parts.headers, conn) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if parts.method == Method::GET {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><head><title>Service</title></head><body>You have created a service.</body></html>",
        )
            .into_response();
    }
    if parts.method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST")],
            "",
        )
            .into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(_) => {
            return soap_response(
                SOAP_NS,
                Err(EwsError::fault(
                    "ErrorInvalidRequest",
                    "The request body could not be read or is too large.",
                )),
            );
        }
    };
    let (soap_ns, result) = process(&st, &caller, &body);
    soap_response(&soap_ns, result)
}

/// Parses the envelope, checks the header, and runs the operation.
fn process(st: &SimState, caller: &Caller, body: &[u8]) -> (String, ops::OpResult) {
    let root = match xml::parse(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                SOAP_NS.into(),
                Err(EwsError::schema(format!(
                    "The XML is not well-formed. {}",
                    e.0
                ))),
            );
        }
    };
    if root.name != "Envelope" || (root.ns != SOAP_NS && root.ns != SOAP12_NS) {
        return (
            SOAP_NS.into(),
            Err(EwsError::fault(
                "ErrorInvalidRequest",
                "The request is invalid: the root element is not a SOAP envelope.",
            )),
        );
    }
    let soap_ns = root.ns.clone();
    let result = run(st, caller, &root);
    (soap_ns, result)
}

fn run(st: &SimState, caller: &Caller, root: &Element) -> ops::OpResult {
    let header = root.child("Header");
    let version = match header.and_then(|h| h.child("RequestServerVersion")) {
        None => "Exchange2007_SP1".to_owned(),
        Some(v) => {
            let ver = v.attr("Version").unwrap_or("");
            if !REQUEST_VERSIONS.contains(&ver) {
                return Err(EwsError::fault(
                    "ErrorInvalidServerVersion",
                    "The specified server version is invalid.",
                ));
            }
            ver.to_owned()
        }
    };
    let op = root
        .child("Body")
        .and_then(|b| b.children.first())
        .ok_or_else(|| {
            EwsError::fault(
                "ErrorInvalidRequest",
                "The request is invalid: the SOAP body holds no operation.",
            )
        })?;
    if op.ns != MESSAGES_NS {
        return Err(EwsError::schema(format!(
            "The element '{}' in namespace '{}' is not an EWS operation.",
            op.name, op.ns
        )));
    }
    let tz_context = header
        .and_then(|h| h.path(&["TimeZoneContext", "TimeZoneDefinition"]))
        .and_then(|d| d.attr("Id"))
        .map(str::to_owned)
        .filter(|z| z.eq_ignore_ascii_case("utc") || calgate_tz::windows_to_iana(z).is_some());
    let impersonated = {
        let dir = st.dir();
        let t = dir
            .tenant_by_id(caller.tenant)
            .ok_or_else(EwsError::access_denied)?;
        match header.and_then(|h| h.path(&["ExchangeImpersonation", "ConnectingSID"])) {
            Some(sid) => Some(impersonate(t, &caller.account, sid)?),
            None => None,
        }
    };
    let base = op
        .name
        .strip_suffix("Request")
        .filter(|_| op.name == "GetUserAvailabilityRequest")
        .unwrap_or(&op.name)
        .to_owned();
    st.ews.count_operation(&base);
    if let Some(ms) = st.ews.take_server_busy(&caller.account) {
        return Err(EwsError::server_busy(ms));
    }
    let Some(in_flight) = st.ews.enter(&caller.account.logon_name()) else {
        return Err(EwsError::new(
            "ErrorExceededConnectionCount",
            "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.",
        ))
        .or_else(|e| availability::error_for(&base, e));
    };
    // Counted until the response has been produced (and any injected latency elapsed).
    crate::server::hold_until_response(in_flight);
    let ctx = ops::Ctx {
        st,
        tenant_id: caller.tenant,
        account: &caller.account,
        impersonated,
        tz_context,
        version,
    };
    match base.as_str() {
        "GetFolder" => ops::get_folder(&ctx, op),
        "FindItem" => ops::find_item(&ctx, op),
        "GetItem" => ops::get_item(&ctx, op),
        "SyncFolderItems" => ops::sync_folder_items(&ctx, op),
        "CreateItem" => ops::create_item(&ctx, op),
        "UpdateItem" => ops::update_item(&ctx, op),
        "DeleteItem" => ops::delete_item(&ctx, op),
        "ResolveNames" => ops::resolve_names(&ctx, op),
        "ConvertId" => ops::convert_id_op(&ctx, op),
        "GetUserAvailability" => availability::get_user_availability(&ctx, op),
        "GetRoomLists" => availability::get_room_lists(&ctx, op),
        "GetRooms" => availability::get_rooms(&ctx, op),
        "GetServerTimeZones" => availability::get_server_time_zones(&ctx, op),
        other => Err(EwsError::fault(
            "ErrorInvalidRequest",
            format!(
                "The request is invalid: the operation '{other}' is not supported by the simulator."
            ),
        )),
    }
}

/// Checks `ExchangeImpersonation/ConnectingSID` against the account's ApplicationImpersonation
/// scope; returns the impersonated mailbox.
fn impersonate(t: &Tenant, account: &EwsAccount, sid: &Element) -> Result<Uuid, EwsError> {
    let as_fault = |mut e: EwsError| {
        e.fault = true;
        e
    };
    let addr = ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName"]
        .iter()
        .find_map(|n| sid.child_text(n))
        .filter(|s| !s.is_empty());
    let Some(addr) = addr else {
        return Err(EwsError::fault(
            "ErrorInvalidExchangeImpersonationHeaderData",
            "The impersonation header must name a user by PrimarySmtpAddress, SmtpAddress or PrincipalName.",
        ));
    };
    let uid = ops::mailbox_by_address(t, addr).map_err(as_fault)?;
    let allowed = match &account.impersonation {
        ImpersonationRight::All => true,
        ImpersonationRight::None => false,
        ImpersonationRight::RoomList(list) => t
            .room_lists
            .iter()
            .any(|l| l.email.eq_ignore_ascii_case(list) && l.rooms.contains(&uid)),
    };
    if allowed {
        Ok(uid)
    } else {
        Err(EwsError::impersonate_denied())
    }
}

/// Wraps an operation's answer (or fault) in a SOAP envelope.
fn soap_response(soap_ns: &str, result: ops::OpResult) -> Response {
    let content_type = if soap_ns == SOAP12_NS {
        "application/soap+xml; charset=utf-8"
    } else {
        "text/xml; charset=utf-8"
    };
    let (status, xml) = match result {
        Ok(body) => (StatusCode::OK, envelope(soap_ns, &body)),
        Err(e) if !e.fault => {
            // A message-level error outside an operation (never expected): still a fault.
            (StatusCode::INTERNAL_SERVER_ERROR, fault(soap_ns, &e))
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, fault(soap_ns, &e)),
    };
    let mut resp = Response::new(Body::from(xml));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert("x-feserver", HeaderValue::from_static("CALGATE-SIM"));
    resp
}

fn envelope(soap_ns: &str, body: &str) -> String {
    let (maj, min, build, rev) = SERVER_VERSION;
    let (maj, min, build, rev) = (
        maj.to_string(),
        min.to_string(),
        build.to_string(),
        rev.to_string(),
    );
    let mut w = Writer::new();
    w.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    w.start("s:Envelope", &[("xmlns:s", soap_ns)]);
    w.start("s:Header", &[]);
    w.empty(
        "h:ServerVersionInfo",
        &[
            ("MajorVersion", &maj),
            ("MinorVersion", &min),
            ("MajorBuildNumber", &build),
            ("MinorBuildNumber", &rev),
            ("Version", SERVER_VERSION_STRING),
            ("xmlns:h", TYPES_NS),
            ("xmlns", TYPES_NS),
            ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ],
    );
    w.end("s:Header");
    w.start(
        "s:Body",
        &[
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
        ],
    );
    w.raw(body);
    w.end("s:Body").end("s:Envelope");
    w.finish()
}

/// A SOAP fault as Exchange writes it: `faultcode` `a:<ResponseCode>`, `faultstring`, and a
/// `detail` with `e:ResponseCode`, `e:Message` (and `t:MessageXml`).
fn fault(soap_ns: &str, e: &EwsError) -> String {
    const ERRORS_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";
    let code_text = format!("a:{}", e.code);
    let mut w = Writer::new();
    w.raw("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    w.start("s:Envelope", &[("xmlns:s", soap_ns)]);
    w.start("s:Body", &[]).start("s:Fault", &[]);
    w.leaf_attrs("faultcode", &[("xmlns:a", TYPES_NS)], &code_text)
        .leaf_attrs("faultstring", &[("xml:lang", "en-US")], &e.message);
    w.start("detail", &[]);
    w.leaf_attrs("e:ResponseCode", &[("xmlns:e", ERRORS_NS)], e.code)
        .leaf_attrs("e:Message", &[("xmlns:e", ERRORS_NS)], &e.message);
    if let Some(ms) = e.back_off_ms {
        w.start("t:MessageXml", &[("xmlns:t", TYPES_NS)])
            .leaf_attrs(
                "t:Value",
                &[("Name", "BackOffMilliseconds")],
                &ms.to_string(),
            )
            .end("t:MessageXml");
    }
    w.end("detail")
        .end("s:Fault")
        .end("s:Body")
        .end("s:Envelope");
    w.finish()
}
