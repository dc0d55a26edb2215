//! One FTP session: a task that owns the control connection and all session state.
//!
//! The loop reads bytes, splits lines ([`ferry_proto::line`]), parses commands
//! ([`ferry_proto::command::spec`]), checks each against its row ([`policy::check`]), runs it
//! (`dispatch`, the one `match` from command to handler in [`crate::handlers`]) and writes every
//! reply itself. A transfer runs as a future ([`crate::transfer`]) that the session's task polls
//! beside the control connection; while it runs, ABOR, STAT, NOOP and QUIT are served at once and
//! other commands wait in a short queue.

pub(crate) mod policy;
pub(crate) mod state;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::line::{LineEvent, LineSplitter};
use ferry_proto::{Command, Reply};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

use crate::digest::HashAlg;
use crate::events::{self, Direction, Event};
use crate::handlers::{auth, dirs, files, misc, transfer, Act, Handled};
use crate::replies;
use crate::server::{Admission, Shared};
use crate::tls::Io;
use crate::transfer::{Outcome, TransferEvent};
use state::{Account, Auth, Conn, Cx, Running, TlsState, Xfer};

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
    /// The configuration it runs with: the server's when it connected, again when it logs in.
    config: Arc<crate::config::Config>,
    conn: Conn,
    auth: Auth,
    tls: TlsState,
    xfer: Xfer,
    running: Option<Running>,
    /// Replies waiting to be written, in one write.
    out: Vec<u8>,
    /// The last 221 or 421 sent: why the session is ending, for the log.
    closing: Option<String>,
    /// Bytes moved on this session's data connections: (in, out).
    moved: (u64, u64),
}

/// Runs a session to its end. `implicit`: the listener is implicit FTPS (TLS before the greeting).
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    implicit: bool,
    admission: Admission,
    id: u64,
) {
    let local = match stream.local_addr() {
        Ok(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
        Err(_) => return,
    };
    let conn = Conn { id, peer, local, since: Instant::now(), failed_logins: 0, admission, host: None, tls_host: None };
    let mut s = Session::new(shared, conn);
    let opened = Instant::now();
    let kick = CancellationToken::new();
    let _listed = crate::admin::Live::register(&s.shared, id, peer, kick.clone());
    s.shared.events.emit(&Event::Connected(s.auth.who(&s.conn)));
    let mut io: Box<dyn Io> = Box::new(ControlStream(stream));
    if implicit {
        // Implicit FTPS protects data connections from the start.
        io = match s.tls_accept(io, true).await {
            Ok(io) => io,
            Err(e) => {
                let reason = format!("implicit TLS handshake failed: {e}");
                let closed = events::Closed { duration: opened.elapsed(), bytes_in: 0, bytes_out: 0, reason: &reason };
                s.shared.events.emit(&Event::Closed(s.auth.who(&s.conn), closed));
                return;
            }
        };
    }
    s.reply(replies::greeting(&s.config.banner));
    let result = s.main_loop(io, kick).await;
    if let Some(mut t) = s.running.take() {
        // The control connection is gone: stop the transfer, and let it finish stopping (an upload
        // is abandoned safely).
        t.cancel.cancel();
        if let Some(task) = t.task.take() {
            task.into_inner().unwrap_or_else(|p| p.into_inner()).await;
        }
    }
    let reason = match (&result, s.closing.take()) {
        (Err(e), _) => format!("connection error: {e}"),
        (Ok(()), Some(last)) => last,
        (Ok(()), None) => "the client closed the connection".to_owned(),
    };
    let closed =
        events::Closed { duration: opened.elapsed(), bytes_in: s.moved.0, bytes_out: s.moved.1, reason: &reason };
    s.shared.events.emit(&Event::Closed(s.auth.who(&s.conn), closed));
}

impl Session {
    fn new(shared: Arc<Shared>, conn: Conn) -> Self {
        let config = shared.config();
        let tls = TlsState::for_new_session(&shared, &config);
        Self {
            shared,
            config,
            conn,
            auth: Auth::Fresh,
            tls,
            xfer: Xfer::new(),
            running: None,
            out: Vec::new(),
            closing: None,
            moved: (0, 0),
        }
    }

    /// The login and the rest, borrowed apart.
    pub(crate) fn split(&mut self) -> (&mut Auth, Cx<'_>) {
        let cx = Cx {
            shared: &self.shared,
            config: &mut self.config,
            conn: &mut self.conn,
            tls: &mut self.tls,
            xfer: &mut self.xfer,
            running: &mut self.running,
        };
        (&mut self.auth, cx)
    }

    /// Runs the server side of a TLS handshake on the control connection; on success the session
    /// is protected, its data connections too when `private_data`.
    async fn tls_accept(&mut self, io: Box<dyn Io>, private_data: bool) -> std::io::Result<Box<dyn Io>> {
        let configs = self
            .shared
            .tls
            .as_ref()
            .map(|t| t.session_configs(self.conn.host.as_ref().map(|h| h.config.name.as_str())))
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        let timeout = std::time::Duration::from_secs(self.config.tls.handshake_timeout_secs);
        let accept = tokio_rustls::TlsAcceptor::from(configs.control.clone()).accept(io);
        let result = tokio::time::timeout(timeout, accept)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))
            .and_then(|r| r);
        self.shared.events.emit(&Event::TlsHandshake(
            self.auth.who(&self.conn),
            events::Channel::Control,
            result.is_ok(),
        ));
        let stream = result?;
        tracing::debug!(version = ?stream.get_ref().1.protocol_version(), "control connection protected");
        // RFC 7151 section 3.2: the TLS server name selects the virtual host as HOST would.
        if let Some(host) = stream.get_ref().1.server_name().and_then(|n| self.shared.accounts.hosts.find(n)) {
            if self.conn.host.is_none() && matches!(self.auth, Auth::Fresh) {
                self.conn.host = Some(host.clone());
            }
            self.conn.tls_host = Some(host);
        }
        self.tls.protect(configs, private_data);
        Ok(Box::new(stream))
    }

    /// Queues a reply; it is written before the session next waits.
    fn reply(&mut self, reply: Reply) {
        if self.shared.events.wants_lines() {
            self.shared.events.emit(&Event::Reply(self.auth.who(&self.conn), &reply));
        }
        if matches!(reply.code.0, 221 | 421) {
            self.closing = Some(format!("{} {}", reply.code.0, reply.lines.join(" ")));
        }
        reply.encode_into(&mut self.out);
    }

    fn deadline(&self) -> TokioInstant {
        let limits = &self.config.limits;
        match self.auth {
            Auth::LoggedIn(_) => TokioInstant::now() + limits.idle_timeout(),
            _ => TokioInstant::from_std(self.conn.since) + limits.login_timeout(),
        }
    }

    async fn main_loop(&mut self, mut io: Box<dyn Io>, kick: CancellationToken) -> std::io::Result<()> {
        let mut splitter = LineSplitter::new(self.config.limits.max_line);
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
                () = kick.cancelled() => {
                    // The administrator's `ferry kick` / `DELETE /api/v1/sessions/{id}`; a
                    // running transfer is stopped by `run` (an upload is undone).
                    self.reply(replies::kicked());
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
                *splitter = LineSplitter::new(self.config.limits.max_line);
                queue.clear();
                match Box::pin(self.tls_accept(io, private_data)).await {
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

    /// One line: parse, keep or clear what is pending, check, run, reply.
    async fn handle_line(&mut self, line: &[u8]) -> Flow {
        let cmd = match Command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::debug!(error = %e, "unparsable command");
                // The verb only: what follows may be a password.
                let verb = line.split(|b| *b == b' ').next().unwrap_or_default();
                let shown = format!("{} (unparsable)", String::from_utf8_lossy(verb).trim_end());
                self.shared.events.emit(&Event::Command(self.auth.who(&self.conn), &shown));
                self.reply(replies::parse_error(&e));
                return Flow::Continue;
            }
        };
        if self.shared.events.wants_lines() {
            self.shared.events.emit(&Event::Command(self.auth.who(&self.conn), &cmd.redacted().to_string()));
        }
        if let Some(a) = self.auth.account_mut() {
            policy::keep_pending(&mut a.pending, &cmd);
        }
        if let Err(reply) = policy::check(self, &cmd) {
            self.reply(reply);
            return Flow::Continue;
        }
        // Boxed: an idle session's task then holds only the small loop state, not the largest
        // handler's.
        match Box::pin(dispatch(self, cmd)).await {
            Ok(Act::Reply(reply)) | Err(reply) => {
                self.reply(reply);
                Flow::Continue
            }
            Ok(Act::Transfer(running)) => {
                let (direction, size) = match &running.info.opening {
                    replies::Opening::Download { bytes, .. } => (Direction::Download, Some(*bytes)),
                    replies::Opening::Upload { .. } | replies::Opening::Unique { .. } => (Direction::Upload, None),
                    replies::Opening::Listing => (Direction::Listing, None),
                };
                let started = events::Started {
                    verb: running.info.verb,
                    direction,
                    path: &running.info.path,
                    size,
                    progress: &running.progress,
                    cancel: &running.cancel,
                };
                self.shared.events.emit(&Event::TransferStarted(self.auth.who(&self.conn), started));
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
            Some(TransferEvent::Opened(ends)) => {
                self.shared.events.emit(&Event::DataOpened(self.auth.who(&self.conn), ends));
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
        let path = &t.info.path;
        let error = outcome.result.as_ref().err().map(ToString::to_string);
        let direction = match t.info.opening {
            replies::Opening::Download { .. } => Direction::Download,
            replies::Opening::Upload { .. } | replies::Opening::Unique { .. } => Direction::Upload,
            replies::Opening::Listing => Direction::Listing,
        };
        match direction {
            Direction::Upload => self.moved.0 += outcome.bytes,
            Direction::Download | Direction::Listing => self.moved.1 += outcome.bytes,
        }
        let record = events::Transfer {
            verb: t.info.verb,
            direction,
            path,
            bytes: outcome.bytes,
            elapsed: outcome.elapsed,
            ascii: self.xfer.repr == state::Repr::Ascii,
            protected: self.tls.private_data().is_some(),
            error: error.as_deref(),
        };
        // A protected data connection's handshake: it worked if the transfer did, it failed if the
        // transfer failed at TLS (other failures say nothing about it).
        if record.protected {
            let tls = match &outcome.result {
                Ok(()) => Some(true),
                Err(crate::transfer::TransferError::Tls(_) | crate::transfer::TransferError::NotResumed) => Some(false),
                Err(_) => None,
            };
            if let Some(ok) = tls {
                self.shared.events.emit(&Event::TlsHandshake(self.auth.who(&self.conn), events::Channel::Data, ok));
            }
        }
        self.shared.events.emit(&Event::Transfer(self.auth.who(&self.conn), record));
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

// ---- Dispatch -------------------------------------------------------------------------------

/// The account of a command that needs a login: the policy checked that there is one.
fn account(auth: &mut Auth) -> Result<&mut Account, Reply> {
    auth.account_mut().ok_or_else(replies::not_logged_in)
}

/// Runs one command that passed the policy check.
async fn dispatch(s: &mut Session, cmd: Command) -> Handled {
    use Command as C;
    let (auth, mut cx) = s.split();
    let cx = &mut cx;
    Ok(match cmd {
        C::User(name) => auth::user(auth, cx, name)?.into(),
        C::Pass(pw) => auth::pass(auth, cx, pw.0).await,
        C::Acct(_) => auth::acct(auth).into(),
        C::Rein => auth::rein(auth, cx).into(),
        C::Quit => auth::quit(cx),
        C::Host(name) => auth::host(auth, cx, &name)?.into(),
        C::Auth(m) => auth::auth(cx, &m),
        C::Pbsz(_) => auth::pbsz().into(),
        C::Prot(level) => auth::prot(auth, cx, level).into(),
        C::Ccc => auth::ccc().into(),
        C::Syst => misc::syst().into(),
        C::Feat => misc::feat(cx).into(),
        C::Opts(o) => misc::opts(cx, o).into(),
        C::Help(c) => misc::help(c.as_deref()).into(),
        C::Noop => misc::noop().into(),
        C::Stat(None) => misc::stat(auth, cx).into(),
        C::Stat(Some(p)) => dirs::stat_path(account(auth)?, &p).await?.into(),
        C::Cwd(p) => dirs::cwd(account(auth)?, &p).await?.into(),
        C::Cdup => dirs::cdup(account(auth)?).into(),
        C::Pwd => dirs::pwd(account(auth)?).into(),
        C::Mkd(p) => dirs::mkd(account(auth)?, cx, &p).await?.into(),
        C::Rmd(p) => dirs::rmd(account(auth)?, cx, &p).await?.into(),
        C::Smnt(_) => dirs::smnt().into(),
        C::List(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::List).await?.into(),
        C::Nlst(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::Nlst).await?.into(),
        C::Mlsd(a) => dirs::list(account(auth)?, cx, a.as_deref(), dirs::ListKind::Mlsd).await?.into(),
        C::Mlst(a) => dirs::mlst(account(auth)?, cx, a.as_deref()).await?.into(),
        C::Dele(p) => files::dele(account(auth)?, cx, &p).await?.into(),
        C::Rnfr(p) => files::rnfr(account(auth)?, &p).await?.into(),
        C::Rnto(p) => files::rnto(account(auth)?, cx, &p).await?.into(),
        C::Size(p) => files::size(account(auth)?, &p).await?.into(),
        C::Mdtm(p) => files::mdtm(account(auth)?, &p).await?.into(),
        C::Mfmt(t, p) => files::mfmt(account(auth)?, t, &p).await?.into(),
        C::Site(sc) => files::site(account(auth)?, cx, sc).await?.into(),
        C::Hash(p) => files::hash(account(auth)?, cx, &p).await?.into(),
        C::Rang(start, end) => files::rang(account(auth)?, start, end).into(),
        C::Xsha1(p) => files::xdigest(account(auth)?, HashAlg::Sha1, &p).await?.into(),
        C::Xsha256(p) => files::xdigest(account(auth)?, HashAlg::Sha256, &p).await?.into(),
        C::Xsha512(p) => files::xdigest(account(auth)?, HashAlg::Sha512, &p).await?.into(),
        C::Xmd5(p) => files::xdigest(account(auth)?, HashAlg::Md5, &p).await?.into(),
        C::Xcrc(p) => files::xdigest(account(auth)?, HashAlg::Crc32, &p).await?.into(),
        C::Port(a) => transfer::port(account(auth)?, cx, a).into(),
        C::Eprt(a) => transfer::eprt(account(auth)?, cx, a).into(),
        C::Pasv => transfer::pasv(cx).await?.into(),
        C::Epsv(a) => transfer::epsv(cx, a).await?.into(),
        C::Type(t) => transfer::type_(cx, t).into(),
        C::Stru(st) => transfer::stru(st).into(),
        C::Mode(m) => transfer::mode(m).into(),
        C::Rest(n) => transfer::rest(account(auth)?, n).into(),
        C::Allo(_) => transfer::allo().into(),
        C::Retr(p) => transfer::retr(account(auth)?, cx, &p).await?.into(),
        C::Stor(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Stor(&p)).await?.into(),
        C::Appe(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Appe(&p)).await?.into(),
        C::Stou(p) => transfer::store(account(auth)?, cx, transfer::StoreKind::Stou(p.as_deref())).await?.into(),
        C::Abor => transfer::abor(cx),
    })
}

// ---- The control connection's byte stream -----------------------------------------------------

/// Reads what the control connection has, without holding a buffer while it waits: the bytes go
/// into a buffer on the stack of `poll` and come out as a `Vec` of their length. An idle session
/// (thousands of them wait here) so costs no read buffer. `AsyncRead` writes to the buffer only when
/// it returns `Ready`, so nothing is lost when `poll` returns `Pending`, TLS included.
struct ReadChunk<'a>(&'a mut Box<dyn Io>);

impl Future for ReadChunk<'_> {
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
