//! Listener, TLS (a self-signed CA generated at start-up), router assembly and the per-request
//! middleware: `request-id` / `client-request-id` headers, injected latency, holding throttle
//! permits until the response is ready, the "drop the connection after acting" fault, and,
//! after every write request, the change detection of subscriptions
//! ([`crate::subscriptions::Subscriptions::after_write`]).
//!
//! Connections are bounded by [`ConnectionLimits::header_read_timeout`]: the TLS handshake,
//! the first bytes (which tell HTTP/1.1 from HTTP/2) and every HTTP/1.1 request head must
//! arrive within it, else the connection is closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::ConnectionLimits;
use crate::error::{GraphError, REQUEST_IDS};
use crate::state::{SimState, lock};

/// Largest request body accepted (Graph rejects bodies of several MB on Outlook endpoints).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

tokio::task_local! {
    static HELD: Arc<Mutex<Vec<Box<dyn std::any::Any + Send>>>>;
}

/// Keeps `value` (a throttle permit) alive until the response of the current request has been
/// produced and the injected latency has elapsed. Outside a request it is dropped at once.
pub fn hold_until_response<T: Send + 'static>(value: T) {
    let _ = HELD.try_with(|h| lock(h).push(Box::new(value)));
}

/// The router of the whole simulator (identity + Graph + control API).
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .merge(crate::identity::routes())
        .nest("/v1.0", crate::graph::routes())
        .nest("/_sim", crate::control::routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), per_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn fallback(State(st): State<Arc<SimState>>, req: Request) -> Response {
    if crate::ews::is_ews_path(req.uri().path()) {
        return crate::ews::handle(st, req).await;
    }
    GraphError::bad_request(
        "BadRequest",
        format!(
            "Resource not found for the segment '{}'.",
            req.uri().path().rsplit('/').next().unwrap_or("")
        ),
    )
    .with_status(StatusCode::NOT_FOUND)
    .into_response()
}

impl GraphError {
    pub fn with_status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }
}

async fn per_request(State(st): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let held: Arc<Mutex<Vec<Box<dyn std::any::Any + Send>>>> = Arc::default();
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let is_control = path.starts_with("/_sim");
    let is_graph = path.starts_with("/v1.0");
    let writes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let ids = (request_id.clone(), client_request_id.clone());
    let mut resp = HELD
        .scope(
            held.clone(),
            REQUEST_IDS.scope(ids, async move {
                let resp = next.run(req).await;
                if writes {
                    // Change notifications: compare subscribed mailboxes with what was
                    // notified (delivery itself runs on background tasks).
                    st.subscriptions.after_write(&st);
                }
                let resp = if is_graph {
                    graph_shaped(resp).await
                } else {
                    resp
                };
                let latency = if is_control {
                    0
                } else {
                    st.settings().latency_ms
                };
                let extra = if is_control {
                    0
                } else {
                    st.faults.extra_latency_ms()
                };
                // Both are at most MAX_LATENCY_MS (validated where they are set).
                let total = latency.saturating_add(extra);
                if total > 0 {
                    tokio::time::sleep(Duration::from_millis(total)).await;
                }
                let drop_conn = !is_control && st.faults.take_drop_connection(&method, &path);
                (resp, drop_conn)
            }),
        )
        .await;
    drop(held); // releases throttle permits
    let h = resp.0.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&client_request_id) {
        h.insert("client-request-id", v);
    }
    h.insert(
        "x-ms-ags-diagnostic",
        HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"calgate-sim"}}"#),
    );
    if resp.1 {
        // The server has acted; now the connection breaks before the response arrives.
        let (parts, _) = resp.0.into_parts();
        let broken = futures::stream::once(async {
            Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                "connection dropped by fault injection",
            ))
        });
        return Response::from_parts(parts, Body::from_stream(broken));
    }
    resp.0.into_response()
}

/// Makes framework rejections on Graph paths (body too large, 405, unreadable body, axum's
/// 422 for mistyped JSON) Graph-shaped: `{"error":{"code","message","innerError"}}`.
async fn graph_shaped(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let (status, code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            status,
            "RequestEntityTooLarge",
            "The request body is too large.".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            status,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.".to_owned(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => (
            StatusCode::BAD_REQUEST,
            "BadRequest",
            if text.is_empty() { "Invalid request.".to_owned() } else { text },
        ),
        s if s.is_server_error() => (s, "generalException", "An unspecified error has occurred.".to_owned()),
        s => (s, "BadRequest", if text.is_empty() { "Invalid request.".to_owned() } else { text }),
    };
    let mut out = GraphError::new(status, code, message).into_response();
    for (k, v) in &parts.headers {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// TLS material generated for `--tls`.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub ca_cert_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates a CA and a server certificate for localhost / 127.0.0.1 / ::1 signed by it.
pub fn generate_tls() -> Result<TlsMaterial, crate::SimError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let tls = |e: rcgen::Error| crate::SimError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "calgate sim local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let srv_key = KeyPair::generate().map_err(tls)?;
    let mut srv_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(tls)?;
    srv_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).map_err(tls)?;

    let chain = vec![srv_cert.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(srv_key.serialize_der())
        .map_err(|e| crate::SimError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| crate::SimError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_cert_pem: ca_cert.pem(),
        server_config: Arc::new(cfg),
    })
}

/// Serves `app` on `listener` until `shutdown` fires; with `tls`, over HTTPS.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    state: Arc<SimState>,
    mut shutdown: oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let timeout = limits.header_read_timeout;
    // Each connection gets an id that its requests carry (EWS binds NTLM to the connection).
    let mut next_conn: u64 = 0;
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(std::time::Duration::from_millis(10)).await; continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        next_conn = next_conn.wrapping_add(1);
        let conn = crate::ews::ConnId(next_conn);
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut r: axum::http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(conn);
                r
            },
        ));
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            // hyper needs a timer for its header-read timeout (it panics without one).
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
            match acceptor {
                Some(acc) => {
                    // A client that never finishes the handshake is dropped.
                    if let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(timeout, acc.accept(stream)).await
                    {
                        let io = TokioIo::new(FirstBytes::new(tls_stream, timeout));
                        let _ = builder.serve_connection_with_upgrades(io, svc).await;
                    }
                }
                None => {
                    let io = TokioIo::new(FirstBytes::new(stream, timeout));
                    let _ = builder.serve_connection_with_upgrades(io, svc).await;
                }
            }
            // The connection is gone: so is its NTLM logon.
            state.ews.ntlm.forget(conn.0);
        });
    }
}

/// HTTP/2's connection preface. hyper-util's `auto` builder reads up to these 24 bytes to
/// choose HTTP/1.1 or HTTP/2, without a timeout of its own.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's stream whose reads fail with `TimedOut` if the bytes that decide the protocol
/// have not arrived by a deadline: the first byte that differs from [`H2_PREFACE`] (HTTP/1.1,
/// whose request heads hyper's `header_read_timeout` bounds from then on) or the whole preface
/// (HTTP/2). After that it is a plain pass-through.
struct FirstBytes<S> {
    inner: S,
    /// `None` once the protocol is decided.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes of the preface matched so far.
    matched: usize,
}

impl<S> FirstBytes<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            matched: 0,
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if H2_PREFACE.get(self.matched) == Some(&b) {
                self.matched += 1;
            } else {
                self.deadline = None;
                return;
            }
        }
        if self.matched == H2_PREFACE.len() {
            self.deadline = None;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    this.observe(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header-read timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_differing_byte_or_the_whole_preface_decides() {
        let t = Duration::from_secs(1);
        let mut f = FirstBytes::new(tokio::io::empty(), t);
        f.observe(b"PRI * HT");
        assert!(f.deadline.is_some(), "still could be HTTP/2");
        f.observe(b"TP/1.1");
        assert!(f.deadline.is_none(), "HTTP/1.1");
        let mut f = FirstBytes::new(tokio::io::empty(), t);
        f.observe(b"G");
        assert!(f.deadline.is_none());
        let mut f = FirstBytes::new(tokio::io::empty(), t);
        f.observe(&H2_PREFACE[..23]);
        assert!(f.deadline.is_some());
        f.observe(&H2_PREFACE[23..]);
        assert!(f.deadline.is_none(), "HTTP/2");
    }
}
