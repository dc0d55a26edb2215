//! One FTP session: a task that owns the control connection and all session state.
//!
//! The loop reads bytes, splits lines ([`ferry_proto::line`]), parses commands, checks each
//! against its row ([`policy::check`]), runs it ([`crate::handlers::dispatch`]) and writes every
//! reply itself. A transfer runs as a future ([`crate::transfer`]) that the session's task polls
//! beside the control connection; while it runs, ABOR, STAT, NOOP and QUIT are served at once and
//! other commands wait in a short queue.

mod control;
pub(crate) mod policy;
pub(crate) mod state;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::line::{LineEvent, LineSplitter};
use ferry_proto::{Command, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;

use crate::handlers::{self, Act};
use crate::replies;
use crate::server::Shared;
use crate::tls::Io;
use crate::transfer::{Outcome, TransferEvent};
use control::{recv_event, ControlStream, ReadChunk};
use state::{Auth, Conn, Running, TlsState, Xfer};

/// Commands that may wait behind a running transfer.
const MAX_QUEUED: usize = 32;

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
    /// AUTH was accepted: flush the 234, then hand the connection to TLS; data connections are
    /// protected from the start when `true` (`AUTH SSL`).
    StartTls(bool),
}

/// The session: its parts, each typed ([`state`]).
pub(crate) struct Session {
    shared: Arc<Shared>,
    conn: Conn,
    auth: Auth,
    tls: TlsState,
    xfer: Xfer,
    running: Option<Running>,
    /// Replies waiting to be written, in one write.
    out: Vec<u8>,
}

/// What a handler sees of the session besides the login: split from [`Session`] so that a
/// handler can hold the account and these at once.
pub(crate) struct Cx<'a> {
    /// Server-wide state and configuration.
    pub shared: &'a Arc<Shared>,
    /// The control connection.
    pub conn: &'a mut Conn,
    /// TLS on this session.
    pub tls: &'a mut TlsState,
    /// Transfer parameters.
    pub xfer: &'a mut Xfer,
    /// The running transfer.
    pub running: &'a mut Option<Running>,
}

impl Cx<'_> {
    /// Back to the just-connected state (`REIN`; `USER` while logged in keeps `failed_logins`).
    /// The control connection's protection stays: TLS cannot be undone (RFC 4217 section 13).
    pub fn reset(&mut self, auth: &mut Auth) {
        *auth = Auth::Fresh;
        self.conn.since = Instant::now();
        *self.xfer = Xfer::new();
        self.tls.rein();
    }
}

/// Runs a session to its end. `implicit`: the listener is implicit FTPS (TLS before the greeting).
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, implicit: bool) {
    let local = match stream.local_addr() {
        Ok(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
        Err(_) => return,
    };
    let mut s = Session::new(shared, peer, local);
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
        s.tls.protect(true);
    }
    s.reply(replies::greeting(&s.shared.config.banner));
    let result = s.main_loop(io).await;
    if let Some(mut t) = s.running.take() {
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
    fn new(shared: Arc<Shared>, peer: SocketAddr, local: SocketAddr) -> Self {
        let tls = TlsState::for_new_session(&shared);
        Self {
            shared,
            conn: Conn { peer, local, since: Instant::now(), failed_logins: 0 },
            auth: Auth::Fresh,
            tls,
            xfer: Xfer::new(),
            running: None,
            out: Vec::new(),
        }
    }

    /// The login and the rest, borrowed apart.
    pub(crate) fn split(&mut self) -> (&mut Auth, Cx<'_>) {
        let cx = Cx {
            shared: &self.shared,
            conn: &mut self.conn,
            tls: &mut self.tls,
            xfer: &mut self.xfer,
            running: &mut self.running,
        };
        (&mut self.auth, cx)
    }

    /// Runs the server side of a TLS handshake on the control connection.
    async fn tls_accept(&mut self, io: Box<dyn Io>) -> std::io::Result<Box<dyn Io>> {
        let config = self
            .tls
            .configs()
            .map(|t| t.control.clone())
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        let timeout = std::time::Duration::from_secs(self.shared.config.tls.handshake_timeout_secs);
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(io);
        let stream = tokio::time::timeout(timeout, accept)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        tracing::debug!(version = ?stream.get_ref().1.protocol_version(), "control connection protected");
        Ok(Box::new(stream))
    }

    /// Queues a reply; it is written before the session next waits.
    fn reply(&mut self, reply: Reply) {
        tracing::debug!(code = reply.code.0, text = %reply.lines.join(" | "), "reply");
        reply.encode_into(&mut self.out);
    }

    fn deadline(&self) -> TokioInstant {
        let limits = &self.shared.config.limits;
        match self.auth {
            Auth::LoggedIn(_) => TokioInstant::now() + limits.idle_timeout(),
            _ => TokioInstant::from_std(self.conn.since) + limits.login_timeout(),
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
            while self.running.is_none() {
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
            let transfer_running = self.running.is_some();
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
                                self.reply(replies::line_too_long());
                                continue;
                            }
                        };
                        if self.running.is_some() || !queue.is_empty() {
                            let immediate = Command::parse(&line).map(|c| policy::immediate(&c)).unwrap_or(false);
                            if !(immediate && self.running.is_some()) {
                                if queue.len() >= MAX_QUEUED {
                                    self.reply(replies::too_many_queued());
                                    return self.flush_and_close(&mut io).await;
                                }
                                queue.push_back(line);
                                continue;
                            }
                        }
                        let flow = self.handle_line(&line).await;
                        let starts_tls = matches!(flow, Flow::StartTls(_));
                        match self.after(flow, io, &mut splitter, &mut queue).await? {
                            Some(next) => io = next,
                            None => return Ok(()),
                        }
                        if starts_tls {
                            break;
                        }
                    }
                }
                event = recv_event(&mut self.running), if transfer_running => {
                    if self.transfer_event(event) == Flow::Close {
                        return self.flush_and_close(&mut io).await;
                    }
                }
                () = tokio::time::sleep_until(deadline), if !transfer_running => {
                    let reply = match self.auth {
                        Auth::LoggedIn(_) => replies::idle_timeout(),
                        _ => replies::login_timeout(),
                    };
                    self.reply(reply);
                    return self.flush_and_close(&mut io).await;
                }
                () = shutdown.cancelled(), if !transfer_running => {
                    self.reply(replies::shutting_down());
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
            Flow::StartTls(private_data) => {
                io.write_all(&self.out).await?;
                io.flush().await?;
                self.out.clear();
                // Anything the client pipelined after AUTH in clear text is dropped: it must not be
                // taken as if it had come over TLS.
                *splitter = LineSplitter::new(self.shared.config.limits.max_line);
                queue.clear();
                match Box::pin(self.tls_accept(io)).await {
                    Ok(io) => {
                        self.tls.protect(private_data);
                        Ok(Some(io))
                    }
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

    /// One line: parse, keep or clear what is pending, check, run, reply.
    async fn handle_line(&mut self, line: &[u8]) -> Flow {
        let cmd = match Command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::debug!(error = %e, "unparsable command");
                self.reply(replies::parse_error(&e));
                return Flow::Continue;
            }
        };
        tracing::debug!(command = %cmd.redacted(), "command");
        if let Some(a) = self.auth.account_mut() {
            policy::keep_pending(&mut a.pending, &cmd);
        }
        if let Err(reply) = policy::check(self, &cmd) {
            self.reply(reply);
            return Flow::Continue;
        }
        // Boxed: an idle session's task then holds only the small loop state, not the largest
        // handler's.
        match Box::pin(handlers::dispatch(self, cmd)).await {
            Ok(Act::Reply(reply)) | Err(reply) => {
                self.reply(reply);
                Flow::Continue
            }
            Ok(Act::Transfer(running)) => {
                self.running = Some(*running);
                Flow::Continue
            }
            Ok(Act::Later) => Flow::Continue,
            Ok(Act::Close(replies)) => {
                replies.into_iter().for_each(|r| self.reply(r));
                Flow::Close
            }
            Ok(Act::StartTls { reply, private_data }) => {
                self.reply(reply);
                Flow::StartTls(private_data)
            }
        }
    }

    fn transfer_event(&mut self, event: Option<TransferEvent>) -> Flow {
        match event {
            Some(TransferEvent::Opened) => {
                if let Some(t) = &self.running {
                    let opening = replies::opening(&t.info.opening);
                    self.reply(opening);
                }
                Flow::Continue
            }
            Some(TransferEvent::Done(outcome)) => self.transfer_done(outcome),
            None => {
                // The task ended without a result (it panicked): report and go on.
                tracing::error!("transfer task ended without an outcome");
                self.running = None;
                self.reply(replies::local_error());
                Flow::Continue
            }
        }
    }

    fn transfer_done(&mut self, outcome: Outcome) -> Flow {
        let Some(t) = self.running.take() else { return Flow::Continue };
        let secs = outcome.elapsed.as_secs_f64();
        let (verb, path) = (t.info.verb, &t.info.path);
        match &outcome.result {
            Ok(()) => {
                let rate = if secs > 0.0 { outcome.bytes as f64 / secs } else { 0.0 };
                tracing::info!(verb, %path, bytes = outcome.bytes, secs, rate_bps = rate as u64, "transfer complete");
            }
            Err(e) => tracing::info!(verb, %path, bytes = outcome.bytes, secs, error = %e, "transfer failed"),
        }
        self.reply(replies::transfer_done(&t.info.opening, &outcome.result, path));
        if t.then.abort {
            self.reply(replies::abor_ok());
        }
        if t.then.quit {
            self.reply(replies::goodbye());
            return Flow::Close;
        }
        Flow::Continue
    }
}
