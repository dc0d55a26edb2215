//! One FTP session: a task that owns the control connection and all session state.
//!
//! The loop reads bytes, splits lines, parses commands, checks [`policy`], dispatches to the
//! handlers in [`crate::handlers`], and writes every reply itself. A transfer runs as a future
//! ([`crate::transfer`]) that the session's task polls beside the control connection; while it runs, ABOR, STAT, NOOP and QUIT are served at once and other
//! commands wait in a short queue.

pub mod policy;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::line::{LineEvent, LineSplitter};
use ferry_proto::listing::Facts;
use ferry_proto::{Command, Reply, ReplyCode, VirtualPath};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

use crate::auth::User;
use crate::datachan::DataSetup;
use crate::replies;
use crate::server::Shared;
use crate::storage::Storage;
use crate::tls::Io;
use crate::transfer::{Outcome, TransferError, TransferEvent};

/// Commands that may wait behind a running transfer.
const MAX_QUEUED: usize = 32;

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
    /// AUTH TLS was accepted: flush the 234, then hand the connection to TLS.
    StartTls,
}

/// Login progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Login {
    /// Nothing yet (or after REIN).
    Fresh,
    /// USER given, waiting for PASS.
    NeedPassword(String),
    /// Logged in.
    Done,
}

/// A transfer in progress.
pub(crate) struct Running {
    /// The transfer itself ([`crate::transfer::run`]), polled by the session's own task: no
    /// cross-thread wake-ups between the transfer and its 150 and 226 replies. `None` once done.
    /// (In a `Mutex` only to make `Session` `Sync`; it is reached through `get_mut`, never locked.)
    pub task: Option<std::sync::Mutex<TransferTask>>,
    pub events: mpsc::Receiver<TransferEvent>,
    pub cancel: CancellationToken,
    pub progress: Arc<AtomicU64>,
    /// The 150 text, sent when the data connection opens.
    pub opening: Reply,
    /// The 226 text on success.
    pub success: Reply,
    pub verb: &'static str,
    pub path: String,
    pub started: Instant,
    pub abort_requested: bool,
}

/// A transfer's future.
pub(crate) type TransferTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The session state.
pub(crate) struct Session {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub login: Login,
    pub user: Option<User>,
    pub storage: Option<Arc<dyn Storage>>,
    pub cwd: VirtualPath,
    pub ascii: bool,
    pub rest: Option<u64>,
    pub rnfr: Option<VirtualPath>,
    pub data: Option<DataSetup>,
    pub epsv_all: bool,
    pub facts: Facts,
    pub failed_logins: u32,
    pub transfer: Option<Running>,
    pub quit_pending: bool,
    pub connected_at: Instant,
    /// This session's TLS configuration (its own session cache), when TLS is configured.
    pub tls: Option<crate::tls::SessionTls>,
    /// Whether the control connection is protected.
    pub control_tls: bool,
    /// Whether PBSZ was sent (RFC 4217 section 8).
    pub pbsz: bool,
    /// Whether data connections are protected (PROT P).
    pub prot_private: bool,
    /// The account's session slot (per-account session limit), while logged in.
    pub account_slot: Option<crate::limits::AccountSlot>,
    /// The account's quota usage, when it has a quota.
    pub usage: Option<Arc<std::sync::Mutex<crate::limits::Usage>>>,
    /// Replies waiting to be written, in one write.
    out: Vec<u8>,
}

/// Runs a session to its end. `implicit`: the listener is implicit FTPS (TLS before the greeting).
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, implicit: bool) {
    let local = match stream.local_addr() {
        Ok(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
        Err(_) => return,
    };
    let tls = shared.tls.as_ref().map(|t| t.session_configs());
    let mut s = Session::new(shared, peer, local, tls);
    tracing::debug!(implicit, "connected");
    let mut io: Box<dyn Io> = Box::new(ControlStream(stream));
    if implicit {
        io = match s.tls_accept(io).await {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(error = %e, "implicit TLS handshake failed");
                return;
            }
        };
        // Implicit FTPS protects data connections from the start.
        s.prot_private = true;
    }
    s.reply(Reply::new(ReplyCode::SERVICE_READY, s.shared.config.banner.clone()));
    let result = s.main_loop(io).await;
    if let Some(mut t) = s.transfer.take() {
        // The control connection is gone: stop the transfer, and let it finish stopping (an upload
        // is abandoned safely).
        t.cancel.cancel();
        if let Some(task) = t.task.take() {
            task.into_inner().unwrap_or_else(|p| p.into_inner()).await;
        }
    }
    match result {
        Ok(()) => tracing::debug!("session closed"),
        Err(e) => tracing::debug!(error = %e, "session ended"),
    }
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr, local: SocketAddr, tls: Option<crate::tls::SessionTls>) -> Self {
        Self {
            shared,
            peer,
            local,
            login: Login::Fresh,
            user: None,
            storage: None,
            cwd: VirtualPath::root(),
            ascii: false,
            rest: None,
            rnfr: None,
            data: None,
            epsv_all: false,
            facts: Facts::default(),
            failed_logins: 0,
            transfer: None,
            quit_pending: false,
            connected_at: Instant::now(),
            tls,
            control_tls: false,
            pbsz: false,
            prot_private: false,
            account_slot: None,
            usage: None,
            out: Vec::new(),
        }
    }

    /// Runs the server side of a TLS handshake on the control connection.
    async fn tls_accept(&mut self, io: Box<dyn Io>) -> std::io::Result<Box<dyn Io>> {
        let config = self
            .tls
            .as_ref()
            .map(|t| t.control.clone())
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        let timeout = std::time::Duration::from_secs(self.shared.config.tls.handshake_timeout_secs);
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(io);
        let stream = tokio::time::timeout(timeout, accept)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.control_tls = true;
        tracing::debug!(version = ?stream.get_ref().1.protocol_version(), "control connection protected");
        Ok(Box::new(stream))
    }

    /// Queues a reply; it is written before the session next waits.
    pub fn reply(&mut self, reply: Reply) {
        tracing::debug!(code = reply.code.0, text = %reply.lines.join(" | "), "reply");
        reply.encode_into(&mut self.out);
    }

    /// Back to the just-connected state (REIN).
    /// The control connection's protection stays: TLS cannot be undone (RFC 4217 section 13).
    pub fn reset(&mut self) {
        let shared = self.shared.clone();
        let (peer, local) = (self.peer, self.local);
        let out = std::mem::take(&mut self.out);
        let (tls, control_tls) = (self.tls.take(), self.control_tls);
        *self = Self::new(shared, peer, local, tls);
        self.control_tls = control_tls;
        self.out = out;
    }

    fn deadline(&self) -> TokioInstant {
        let limits = &self.shared.config.limits;
        if self.login == Login::Done {
            TokioInstant::now() + limits.idle_timeout()
        } else {
            TokioInstant::from_std(self.connected_at) + limits.login_timeout()
        }
    }

    async fn main_loop(&mut self, mut io: Box<dyn Io>) -> std::io::Result<()> {
        let mut splitter = LineSplitter::new(self.shared.config.limits.max_line);
        let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
        // The first bytes, held back until they cannot begin a PROXY header: a trusted balancer's
        // header was taken off before the session started, so one here is refused. `None` once
        // decided (at most 11 bytes held; usually decided on the first read).
        let mut first_bytes: Option<Vec<u8>> = Some(Vec::new());
        let shutdown = self.shared.shutdown.clone();
        loop {
            // Serve queued commands while no transfer runs.
            while self.transfer.is_none() {
                let Some(line) = queue.pop_front() else { break };
                let flow = self.handle_line(&line).await;
                match self.after(flow, io, &mut splitter, &mut queue).await? {
                    Some(next) => io = next,
                    None => return Ok(()),
                }
            }
            if !self.out.is_empty() {
                io.write_all(&self.out).await?;
                io.flush().await?;
                self.out.clear();
            }
            let deadline = self.deadline();
            let transfer_running = self.transfer.is_some();
            tokio::select! {
                data = ReadChunk(&mut io) => {
                    let data = data?;
                    if data.is_empty() {
                        return Ok(());
                    }
                    let mut bytes = &data[..];
                    let held;
                    if let Some(first) = first_bytes.as_mut() {
                        first.extend_from_slice(bytes);
                        match ferry_proto::proxy::detect(first) {
                            ferry_proto::proxy::Detect::NeedMore => continue,
                            ferry_proto::proxy::Detect::Header(version) => {
                                tracing::warn!(?version, "PROXY header from an untrusted address refused");
                                self.reply(replies::proxy_header_refused());
                                return self.flush_and_close(&mut io).await;
                            }
                            ferry_proto::proxy::Detect::NotHeader => {
                                held = first_bytes.take().unwrap_or_default();
                                bytes = &held;
                            }
                        }
                    }
                    splitter.feed(bytes);
                    while let Some(event) = splitter.next_event() {
                        let line = match event {
                            LineEvent::Line(l) => l,
                            LineEvent::TooLong => {
                                self.reply(Reply::new(ReplyCode::SYNTAX_ERROR, "Command line too long."));
                                continue;
                            }
                        };
                        if self.transfer.is_some() || !queue.is_empty() {
                            let immediate = Command::parse(&line)
                                .map(|c| policy::during_transfer(&c) == policy::DuringTransfer::Immediate)
                                .unwrap_or(false);
                            if !(immediate && self.transfer.is_some()) {
                                if queue.len() >= MAX_QUEUED {
                                    self.reply(Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, "Too many commands queued."));
                                    return self.flush_and_close(&mut io).await;
                                }
                                queue.push_back(line);
                                continue;
                            }
                        }
                        let flow = self.handle_line(&line).await;
                        let starts_tls = flow == Flow::StartTls;
                        match self.after(flow, io, &mut splitter, &mut queue).await? {
                            Some(next) => io = next,
                            None => return Ok(()),
                        }
                        if starts_tls {
                            break;
                        }
                    }
                }
                event = recv_event(&mut self.transfer), if transfer_running => {
                    if self.transfer_event(event) == Flow::Close {
                        return self.flush_and_close(&mut io).await;
                    }
                }
                () = tokio::time::sleep_until(deadline), if !transfer_running => {
                    let text = if self.login == Login::Done { "Timeout: closing control connection." } else { "Login timeout." };
                    self.reply(Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, text));
                    return self.flush_and_close(&mut io).await;
                }
                () = shutdown.cancelled(), if !transfer_running => {
                    self.reply(Reply::new(ReplyCode::SERVICE_NOT_AVAILABLE, "Server shutting down."));
                    return self.flush_and_close(&mut io).await;
                }
            }
        }
    }

    /// Acts on a command's flow: `None` when the session is over, else the (possibly now
    /// TLS-wrapped) connection.
    async fn after(
        &mut self,
        flow: Flow,
        mut io: Box<dyn Io>,
        splitter: &mut LineSplitter,
        queue: &mut VecDeque<Vec<u8>>,
    ) -> std::io::Result<Option<Box<dyn Io>>> {
        match flow {
            Flow::Continue => Ok(Some(io)),
            Flow::Close => {
                self.flush_and_close(&mut io).await?;
                Ok(None)
            }
            Flow::StartTls => {
                io.write_all(&self.out).await?;
                io.flush().await?;
                self.out.clear();
                // Anything the client pipelined after AUTH in clear text is dropped: it must not be
                // taken as if it had come over TLS.
                *splitter = LineSplitter::new(self.shared.config.limits.max_line);
                queue.clear();
                match Box::pin(self.tls_accept(io)).await {
                    Ok(io) => Ok(Some(io)),
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        Ok(None)
                    }
                }
            }
        }
    }

    async fn flush_and_close(&mut self, io: &mut Box<dyn Io>) -> std::io::Result<()> {
        io.write_all(&self.out).await?;
        self.out.clear();
        io.shutdown().await
    }

    async fn handle_line(&mut self, line: &[u8]) -> Flow {
        match Command::parse(line) {
            Ok(cmd) => {
                if matches!(cmd, Command::Pass(_)) {
                    tracing::debug!("command PASS ****");
                } else {
                    tracing::debug!(command = %cmd, "command");
                }
                if policy::access(&cmd) == policy::Access::LoggedIn && self.login != Login::Done {
                    self.reply(replies::not_logged_in());
                    return Flow::Continue;
                }
                // Boxed: an idle session's task then holds only the small loop state, not the
                // largest handler's.
                let flow = Box::pin(crate::handlers::dispatch(self, cmd)).await;
                // A listener that PASV/EPSV just opened learns which load balancers must put a
                // PROXY header on the data connections they relay to it.
                if let (Some(trust), Some(DataSetup::Passive(l))) = (&self.shared.proxy, &mut self.data) {
                    l.expect_proxy_from(trust.clone());
                }
                flow
            }
            Err(e) => {
                tracing::debug!(error = %e, "unparsable command");
                let text = match e.reply_code() {
                    ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED => {
                        "Network protocol not supported, use (1,2).".to_string()
                    }
                    ReplyCode::SYNTAX_ERROR => match &e {
                        ferry_proto::ParseError::Unknown(v) => format!("Unknown command {v}."),
                        _ => "Syntax error, command unrecognized.".to_string(),
                    },
                    _ => format!("Syntax error in parameters: {e}."),
                };
                self.reply(Reply::new(e.reply_code(), text));
                Flow::Continue
            }
        }
    }

    fn transfer_event(&mut self, event: Option<TransferEvent>) -> Flow {
        match event {
            Some(TransferEvent::Opened) => {
                if let Some(t) = &self.transfer {
                    let opening = t.opening.clone();
                    self.reply(opening);
                }
                Flow::Continue
            }
            Some(TransferEvent::Done(outcome)) => self.transfer_done(outcome),
            None => {
                // The task ended without a result (it panicked): report and go on.
                tracing::error!("transfer task ended without an outcome");
                self.transfer = None;
                self.reply(replies::local_error());
                Flow::Continue
            }
        }
    }

    fn transfer_done(&mut self, outcome: Outcome) -> Flow {
        let Some(t) = self.transfer.take() else { return Flow::Continue };
        let secs = outcome.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { outcome.bytes as f64 / secs } else { 0.0 };
        match &outcome.result {
            Ok(()) => {
                tracing::info!(verb = t.verb, path = %t.path, bytes = outcome.bytes, secs, rate_bps = rate as u64, "transfer complete");
                self.reply(t.success);
            }
            Err(e) => {
                tracing::info!(verb = t.verb, path = %t.path, bytes = outcome.bytes, secs, error = %e, "transfer failed");
                let reply = match e {
                    TransferError::Connect(_) => replies::cant_open_data(),
                    TransferError::Aborted | TransferError::Data(_) => replies::transfer_aborted(),
                    TransferError::Storage(se) => replies::storage_error(se, &t.path),
                    TransferError::Tls(why) if why.contains("reuse") => Reply::new(
                        ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED,
                        "Data connection refused: it must resume the control connection's TLS session (enable TLS session reuse in your client).",
                    ),
                    TransferError::Tls(_) => Reply::new(ReplyCode::CANT_OPEN_DATA, "TLS handshake on the data connection failed."),
                };
                self.reply(reply);
            }
        }
        if t.abort_requested {
            self.reply(replies::abor_ok());
        }
        if self.quit_pending {
            self.reply(replies::goodbye());
            return Flow::Close;
        }
        Flow::Continue
    }
}

/// Reads what the control connection has, without holding a buffer while it waits: the bytes go
/// into a buffer on the stack of `poll` and come out as a `Vec` of their length. An idle session
/// (thousands of them wait here) so costs no read buffer. `AsyncRead` writes to the buffer only when
/// it returns `Ready`, so nothing is lost when `poll` returns `Pending`, TLS included.
struct ReadChunk<'a>(&'a mut Box<dyn Io>);

impl std::future::Future for ReadChunk<'_> {
    type Output = std::io::Result<Vec<u8>>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let mut stack = [0u8; 1024];
        let mut buf = tokio::io::ReadBuf::new(&mut stack);
        std::task::ready!(std::pin::Pin::new(&mut **self.0).poll_read(cx, &mut buf))?;
        std::task::Poll::Ready(Ok(buf.filled().to_vec()))
    }
}

/// The control connection's TCP stream.
///
/// Reads go through `try_read`, which keeps the socket's readiness after a short read. tokio's own
/// `read` drops readiness whenever it gets fewer bytes than asked for, on the assumption that the
/// socket is empty. A read that stops at a TCP urgent mark breaks that assumption: clients send
/// the Telnet "Synch" before ABOR as urgent data (RFC 959 section 4.1.3), and the kernel returns
/// the bytes before the mark on their own. With tokio's assumption, the `ABOR` after the mark
/// would wait, unread, until the client sent something else.
struct ControlStream(TcpStream);

impl tokio::io::AsyncRead for ControlStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                // Readiness is cleared now; the next poll_read_ready registers the waker.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for ControlStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Drives the running transfer and returns its next event.
async fn recv_event(transfer: &mut Option<Running>) -> Option<TransferEvent> {
    let Some(t) = transfer else { return std::future::pending().await };
    std::future::poll_fn(|cx| {
        if let Some(task) = t.task.as_mut() {
            let task = task.get_mut().unwrap_or_else(|p| p.into_inner());
            if task.as_mut().poll(cx).is_ready() {
                t.task = None;
            }
        }
        t.events.poll_recv(cx)
    })
    .await
}
