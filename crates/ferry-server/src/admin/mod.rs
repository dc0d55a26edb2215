//! The admin interface: Prometheus metrics, health checks and the sessions API, over HTTP on a
//! TCP listener (`[admin] listen`, off unless set, loopback in the examples) and on a unix socket
//! (`[admin] socket`, mode 0600, what `ferry who` and `ferry kick` use).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format, `ferry_*` series |
//! | `GET /livez` | 200 while the process serves |
//! | `GET /readyz` | 200, or 503 with the reasons (draining, root not writable, accounts store unreachable) as JSON |
//! | `GET /` | the status page: the sessions, live, and a session's ladder |
//! | `GET /api/v1/sessions` | the sessions open now, as JSON |
//! | `GET /api/v1/sessions/{id}/ladder` | its last steps (commands, replies, data connections) |
//! | `GET /api/v1/sessions/{id}/events` | its new steps as they happen (server-sent events) |
//! | `DELETE /api/v1/sessions/{id}` | disconnects the session (421 to its client) |
//! | `POST /api/v1/sessions/{id}/abort` | stops its transfer |
//! | `POST /api/v1/reload` | rereads the users file and the certificate (as SIGHUP) |
//! | `GET /api/v1/bans` | the banned addresses |
//! | `POST /api/v1/bans/{ip}?secs=N` | bans an address (`[limits] ban_secs` by default) |
//! | `DELETE /api/v1/bans/{ip}` | lifts a ban |
//!
//! Calls that change something need `Authorization: Bearer TOKEN` (the content of
//! `[admin] token_file`) on the TCP listener; on the unix socket, its file mode is the check. Without
//! a token file, they are refused on TCP.

mod live;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

pub use live::{Live, SessionView, Step, TransferView, LADDER_STEPS};
pub use metrics::Metrics;

use crate::server::Shared;

/// `[admin]` in the configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The HTTP listener (metrics, health, sessions API); none when unset. Keep it on loopback or a
    /// management network: it is never exposed by default.
    pub listen: Option<SocketAddr>,
    /// The unix socket for `ferry who`/`ferry kick` (created with mode 0600); none when unset.
    pub socket: Option<PathBuf>,
    /// A file holding the bearer token that mutating calls on the TCP listener need.
    pub token_file: Option<PathBuf>,
    /// Per-user series (`ferry_user_*`) for at most this many users (the rest are counted as
    /// `user="_other"`); 0, the default: none.
    pub per_user_metrics: usize,
}

/// The admin listeners, bound at start-up (before the sandbox).
#[derive(Debug)]
pub struct Admin {
    tcp: Option<std::net::TcpListener>,
    unix: Option<std::os::unix::net::UnixListener>,
    token: Option<String>,
}

impl Admin {
    /// Binds what `config` asks for and reads the token.
    pub fn bind(config: &AdminConfig) -> std::io::Result<Self> {
        let named = |what: &str, e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
        let tcp = config
            .listen
            .map(|a| {
                let l = std::net::TcpListener::bind(a).map_err(|e| named(&format!("admin listen {a}"), e))?;
                l.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(l)
            })
            .transpose()?;
        let unix = config
            .socket
            .as_ref()
            .map(|p| {
                use std::os::unix::fs::PermissionsExt as _;
                // A socket left by a previous run.
                if std::fs::symlink_metadata(p).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    std::fs::remove_file(p)?;
                }
                let l = std::os::unix::net::UnixListener::bind(p)
                    .map_err(|e| named(&format!("admin socket {}", p.display()), e))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
                l.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(l)
            })
            .transpose()?;
        let token = config
            .token_file
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|t| t.trim().to_owned())
                    .map_err(|e| named(&format!("admin token_file {}", p.display()), e))
            })
            .transpose()?;
        Ok(Self { tcp, unix, token })
    }

    /// The HTTP listener's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves both listeners until the server stops.
    pub(crate) fn spawn(self, shared: Arc<Shared>) -> std::io::Result<()> {
        let token: Option<Arc<str>> = self.token.map(Arc::from);
        if let Some(l) = self.tcp {
            let listener = tokio::net::TcpListener::from_std(l)?;
            let (shared, token) = (shared.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    tokio::spawn(serve(stream, shared.clone(), Access::Token(token.clone())));
                }
            });
        }
        if let Some(l) = self.unix {
            let listener = tokio::net::UnixListener::from_std(l)?;
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    tokio::spawn(serve(stream, shared.clone(), Access::Local));
                }
            });
        }
        Ok(())
    }
}

/// Who may change things on a connection.
#[derive(Debug, Clone)]
enum Access {
    /// The unix socket: whoever could open it.
    Local,
    /// TCP: a request with this bearer token (none configured: nobody).
    Token(Option<Arc<str>>),
}

impl Access {
    fn allows(&self, req: &Request<hyper::body::Incoming>) -> bool {
        match self {
            Access::Local => true,
            Access::Token(None) => false,
            Access::Token(Some(token)) => {
                let given = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let given = given.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
                given.len() == token.len()
                    && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            }
        }
    }
}

async fn serve<S>(stream: S, shared: Arc<Shared>, access: Access)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |req| {
        let (shared, access) = (shared.clone(), access.clone());
        async move { Ok::<_, std::convert::Infallible>(route(&req, &shared, &access)) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
}

/// Every answer's body: whole, or a stream (server-sent events).
type Body = BoxBody<Bytes, std::convert::Infallible>;

/// The status page (static; it reads the API).
const STATUS_PAGE: &str = include_str!("status.html");

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    respond(status, "application/json", body)
}

/// Session `id`'s new steps as server-sent events (`event: step`, JSON data), until the client
/// goes away.
fn step_stream(live: &Live, id: u64) -> Response<Body> {
    let rx = live.subscribe();
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((sid, step)) if sid == id => {
                    let data = serde_json::to_string(&step).unwrap_or_default();
                    let frame = hyper::body::Frame::data(Bytes::from(format!("event: step\ndata: {data}\n\n")));
                    return Some((Ok::<_, std::convert::Infallible>(frame), rx));
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache"));
    r
}

fn route(req: &Request<hyper::body::Incoming>, shared: &Shared, access: &Access) -> Response<Body> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let live = &shared.events.live;
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["metrics"]) => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.events.metrics.encode(),
        ),
        (&Method::GET, [""]) => respond(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        (&Method::GET, ["livez"]) => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, ["readyz"]) => {
            let reasons = not_ready(shared);
            let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            json(status, &serde_json::json!({ "ready": reasons.is_empty(), "reasons": reasons }))
        }
        (&Method::GET, ["api", "v1", "sessions"]) => json(StatusCode::OK, &live.list()),
        (&Method::GET, ["api", "v1", "sessions", id, "ladder"]) => match id.parse().ok().and_then(|id| live.ladder(id))
        {
            Some(steps) => json(StatusCode::OK, &steps),
            None => json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "no such session" })),
        },
        (&Method::GET, ["api", "v1", "sessions", id, "events"]) => match id.parse() {
            Ok(id) => step_stream(live, id),
            Err(_) => json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": "not a session id" })),
        },
        (&Method::DELETE, ["api", "v1", "sessions", id]) | (&Method::POST, ["api", "v1", "sessions", id, "abort"]) => {
            if !access.allows(req) {
                return json(StatusCode::UNAUTHORIZED, &serde_json::json!({ "error": "a bearer token is required" }));
            }
            let Ok(id) = id.parse::<u64>() else {
                return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": "not a session id" }));
            };
            let done = if req.method() == Method::DELETE { live.kick(id) } else { live.abort(id) };
            if done {
                if req.method() == Method::DELETE {
                    tracing::info!(session = id, "session disconnected by the administrator");
                }
                json(StatusCode::OK, &serde_json::json!({ "id": id }))
            } else {
                json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "no such session (or no transfer)" }))
            }
        }
        (&Method::POST, ["api", "v1", "reload"]) => {
            if !access.allows(req) {
                return json(StatusCode::UNAUTHORIZED, &serde_json::json!({ "error": "a bearer token is required" }));
            }
            let report = shared.reloader.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|run| run());
            match report {
                Some(r) if r.failed.is_empty() => json(StatusCode::OK, &r),
                Some(r) => json(StatusCode::UNPROCESSABLE_ENTITY, &r),
                None => json(StatusCode::NOT_IMPLEMENTED, &serde_json::json!({ "error": "this server cannot reload" })),
            }
        }
        (&Method::GET, ["api", "v1", "bans"]) => json(StatusCode::OK, &shared.limit_state.bans.list()),
        (&Method::POST | &Method::DELETE, ["api", "v1", "bans", ip]) => {
            if !access.allows(req) {
                return json(StatusCode::UNAUTHORIZED, &serde_json::json!({ "error": "a bearer token is required" }));
            }
            let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
                return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": "not an IP address" }));
            };
            ban_or_unban(req, shared, ip)
        }
        _ => json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "not found" })),
    }
}

/// `POST /api/v1/bans/{ip}[?secs=N]` and `DELETE /api/v1/bans/{ip}`.
fn ban_or_unban(req: &Request<hyper::body::Incoming>, shared: &Shared, ip: std::net::IpAddr) -> Response<Body> {
    let bans = &shared.limit_state.bans;
    if req.method() == Method::DELETE {
        return if bans.remove(ip) {
            shared.events.emit(&crate::events::Event::Unbanned(ip));
            json(StatusCode::OK, &serde_json::json!({ "ip": ip }))
        } else {
            json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "not banned" }))
        };
    }
    let secs = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("secs=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(shared.config().limits.ban_secs);
    match bans.add(ip, std::time::Duration::from_secs(secs)) {
        Ok(ban) => {
            shared.events.emit(&crate::events::Event::Banned(&ban, "administrator"));
            json(StatusCode::OK, &ban)
        }
        Err(crate::bans::Refused::Allowed) => {
            json(StatusCode::CONFLICT, &serde_json::json!({ "error": "the address is in [bans] allow" }))
        }
    }
}

/// Why the server should not get new clients now (empty: ready).
fn not_ready(shared: &Shared) -> Vec<String> {
    let mut reasons = Vec::new();
    if shared.shutdown.is_cancelled() {
        reasons.push("draining: the server is stopping".to_owned());
    }
    let exhausted = shared.events.metrics.last_passive_exhaustion();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if exhausted > 0 && now.saturating_sub(exhausted) < 10 {
        reasons.push("passive ports exhausted in the last 10 s (425 to PASV/EPSV)".to_owned());
    }
    if let Some(e) = shared.accounts.unreachable.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        reasons.push(format!("accounts store unreachable ({e}): logins get 421"));
    }
    let config = shared.config();
    if config.storage.kind == crate::config::StorageKind::Local {
        let root = &config.root;
        if rustix::fs::access(root, rustix::fs::Access::WRITE_OK).is_err() {
            reasons.push(format!("root {} is not writable", root.display()));
        }
    }
    reasons
}
