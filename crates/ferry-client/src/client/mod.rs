//! One FTP control connection and the data connections it opens: the session and its commands
//! here, transfers and data connections in `transfer`, errors in `error`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_proto::addr;
use ferry_proto::command::{OptsCommand, Password, TransferType};
use ferry_proto::reply::ReplyParser;
use ferry_proto::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::digest::{self, Algorithm, RemoteDigest};
use crate::tls::{Io, TlsMode};
use crate::trace::Trace;

pub use ferry_proto::listing::parse::ParsedEntry as RemoteEntry;

mod error;
mod transfer;

use error::{reply_error, transfer_refused};
pub use error::{ClientError, Result};

/// How data connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataMode {
    /// The client connects (EPSV, falling back to PASV).
    #[default]
    Passive,
    /// The server connects back (EPRT, falling back to PORT).
    Active,
}

/// What [`Client::connect`] needs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port` or `[v6]:port`.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Passive or active data connections.
    pub mode: DataMode,
    /// Timeout for connecting and for each read.
    pub timeout: Duration,
    /// Where to trace the session, if anywhere.
    pub trace: Option<Arc<Trace>>,
    /// FTPS: off, explicit (AUTH TLS) or implicit.
    pub tls: TlsMode,
    /// The TLS configuration (shared by control and data connections, for session resumption).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Use PASV (and PORT) only, never EPSV (and EPRT): for servers or middleboxes that mishandle
    /// the RFC 2428 commands.
    pub disable_extended: bool,
    /// Connect here instead of resolving `host` (which still names the server in `HOST` and
    /// the TLS handshake).
    pub connect_to: Option<std::net::IpAddr>,
}

/// How [`Client::stor`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHow {
    /// `STOR`: replace.
    Replace,
    /// `APPE`: append.
    Append,
    /// `REST n` + `STOR`: write from offset `n`.
    At(u64),
}

/// A logged-in control connection.
pub struct Client {
    control: Control,
    peer: SocketAddr,
    local: SocketAddr,
    features: Vec<String>,
    /// What this server made of EPSV and EPRT so far.
    extended: ExtendedSupport,
    mode: DataMode,
    timeout: Duration,
    trace: Option<Arc<Trace>>,
    ascii: bool,
    /// TLS for data connections (PROT P), with the name the certificate was checked against.
    data_tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
}

/// The control connection's bytes: the stream, and the replies parsed from it.
struct Control {
    stream: Box<dyn Io>,
    parser: ReplyParser,
    buf: Vec<u8>,
}

impl Control {
    fn new(stream: Box<dyn Io>) -> Self {
        Self { stream, parser: ReplyParser::new(), buf: vec![0; 8192] }
    }

    /// Writes `text` (whole command lines) at once.
    async fn write(&mut self, text: &str) -> Result<()> {
        self.stream.write_all(text.as_bytes()).await.map_err(ClientError::Io)?;
        self.stream.flush().await.map_err(ClientError::Io)
    }

    /// The next whole reply, reading as needed (each read within `timeout`).
    async fn next_reply(&mut self, timeout: Duration) -> Result<Reply> {
        loop {
            match self.parser.next_reply() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let n = match tokio::time::timeout(timeout, self.stream.read(&mut self.buf)).await {
                Ok(Ok(0)) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the control connection",
                    )))
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(ClientError::Io(e)),
                Err(_) => return Err(ClientError::Io(io::ErrorKind::TimedOut.into())),
            };
            self.parser.feed(&self.buf[..n]);
        }
    }
}

/// What a server made of an extended command (EPSV, EPRT) on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extended {
    /// Not asked yet (or it stopped working): ask.
    Untried,
    /// It answered: for EPSV, later transfers send EPSV and their command in one write (one
    /// round trip fewer per file).
    Works,
    /// Refused (or disabled by the user): use PASV / PORT.
    Refused,
}

/// EPSV's and EPRT's standing with this server.
#[derive(Debug, Clone, Copy)]
struct ExtendedSupport {
    epsv: Extended,
    eprt: Extended,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("peer", &self.peer).field("mode", &self.mode).finish()
    }
}

impl Client {
    /// Connects, reads the greeting, names the host (`HOST`, RFC 7151), logs in, reads FEAT and
    /// sets binary mode.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self> {
        let target = match opts.connect_to {
            Some(addr) => SocketAddr::new(addr, opts.port).to_string(),
            None if opts.host.contains(':') => format!("[{}]:{}", opts.host, opts.port),
            None => format!("{}:{}", opts.host, opts.port),
        };
        let stream = match tokio::time::timeout(opts.timeout, TcpStream::connect(&target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(error)) => return Err(ClientError::Connect { addr: target, error }),
            Err(_) => return Err(ClientError::Connect { addr: target, error: io::ErrorKind::TimedOut.into() }),
        };
        stream.set_nodelay(true).map_err(ClientError::Io)?;
        let peer = stream.peer_addr().map_err(ClientError::Io)?;
        let local = stream.local_addr().map_err(ClientError::Io)?;
        let trace = opts.trace.as_ref().map(|t| t.connection());
        if let Some(t) = &trace {
            t.control_open(local, peer);
        }
        let tls = match opts.tls {
            TlsMode::Off => None,
            _ => {
                let base = opts.tls_config.clone().ok_or_else(|| ClientError::Tls("no TLS configuration".into()))?;
                // A session store of this connection's own: its data connections resume its
                // session, never one of another control connection to the same server (which
                // that server would refuse).
                let mut config = (*base).clone();
                config.resumption = rustls::client::Resumption::in_memory_sessions(32);
                let config = Arc::new(config);
                let name = crate::tls::server_name(&opts.host).map_err(ClientError::Tls)?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
        };
        let mut io: Box<dyn Io> = Box::new(stream);
        if opts.tls == TlsMode::Implicit {
            io = handshake(io, tls.as_ref(), opts.timeout).await?;
        }
        let first = if opts.disable_extended { Extended::Refused } else { Extended::Untried };
        let mut c = Self {
            control: Control::new(io),
            peer,
            local,
            features: Vec::new(),
            extended: ExtendedSupport { epsv: first, eprt: first },
            mode: opts.mode,
            timeout: opts.timeout,
            trace,
            ascii: false,
            data_tls: None,
        };
        let greeting = c.read_reply().await?;
        if greeting.code.0 != 220 {
            return Err(ClientError::Protocol(format!("greeting {} {}", greeting.code, greeting.text())));
        }
        if opts.tls == TlsMode::Explicit {
            let r = c.command(Command::Auth("TLS".into())).await?;
            if r.code.0 != 234 {
                return Err(ClientError::TlsRefused { code: r.code.0, text: r.text() });
            }
            let plain = std::mem::replace(
                &mut c.control.stream,
                Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())),
            );
            c.control.stream = handshake(plain, tls.as_ref(), opts.timeout).await?;
        }
        // RFC 7151: name the host, so that a server with virtual hosts serves the right one. Not
        // for an address (it names no host) or localhost; any answer but 220 leaves the server's
        // default host (a server without HOST answers 500 or 502; one that does not know the
        // name, 504).
        if host_name(&opts.host) {
            // The answer is in the trace; anything but 220 changes nothing.
            c.command(Command::Host(opts.host.clone())).await?;
        }
        let r = c.command(Command::User(opts.user.clone())).await?;
        let r = if r.code.0 == 331 { c.command(Command::Pass(Password(opts.password.clone()))).await? } else { r };
        if r.code.0 != 230 && r.code.0 != 202 {
            return Err(ClientError::Login(format!("{} {}", r.code, r.text())));
        }
        let feat = c.command(Command::Feat).await?;
        if feat.code.0 == 211 {
            c.features = feat.lines.iter().skip(1).map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            c.features.pop_if(|l| l.eq_ignore_ascii_case("end"));
        }
        if opts.tls != TlsMode::Off {
            c.expect(Command::Pbsz(0), 200).await?;
            c.expect(Command::Prot(ferry_proto::command::ProtLevel::Private), 200).await?;
            c.data_tls = tls;
        }
        if c.has_feature("UTF8") {
            let _ = c.command(Command::Opts(ferry_proto::command::OptsCommand::Utf8(true))).await?;
        }
        c.expect(Command::Type(TransferType::Image), 200).await?;
        Ok(c)
    }

    /// This connection's trace, if the session is traced.
    pub fn trace(&self) -> Option<&Arc<Trace>> {
        self.trace.as_ref()
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether FEAT listed a feature (by its first word, case-insensitive).
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case(name)))
    }

    /// Sends a command and returns the final reply (1xx replies are not expected here).
    pub async fn command(&mut self, cmd: Command) -> Result<Reply> {
        self.send(&cmd).await?;
        self.read_reply().await
    }

    /// Sends a command and checks the reply code; 550/450 become [`ClientError::NotFound`].
    pub async fn expect(&mut self, cmd: Command, code: u16) -> Result<Reply> {
        let shown = cmd.redacted();
        let r = self.command(cmd).await?;
        if r.code.0 == code {
            Ok(r)
        } else {
            Err(reply_error(&shown, &r))
        }
    }

    /// The FEAT line starting with `prefix` (case-insensitive), e.g. `HASH` or `SITE SEGMENT`.
    pub fn feature_line(&self, prefix: &str) -> Option<&str> {
        self.features.iter().map(String::as_str).find(|f| {
            f.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
                && f[prefix.len()..].chars().next().is_none_or(char::is_whitespace)
        })
    }

    /// The digests worth computing locally for a later [`Client::remote_digest`]: the algorithm
    /// this server's `HASH` would use when it has HASH, else every one we know (`XSHA256`,
    /// `XMD5` are tried after the transfer).
    pub fn digest_plan(&self) -> Vec<Algorithm> {
        match self.feature_line("HASH").map(digest::parse_hash_feat) {
            Some((offered, current)) => match current.filter(|c| offered.contains(c)).or(offered.first().copied()) {
                Some(a) => vec![a],
                None => Vec::new(),
            },
            None => Algorithm::ALL.to_vec(),
        }
    }

    /// The server's digest of `path` with one of `wanted` (preferred first): `HASH` when FEAT
    /// lists it (after `OPTS HASH <alg>` when its current algorithm is another one;
    /// draft-bryan-ftpext-hash-02 sections 3 and 4), else `XSHA256`, then `XMD5`. `None` when
    /// the server computes none of them. A 550 is [`ClientError::NotFound`].
    pub async fn remote_digest(&mut self, path: &str, wanted: &[Algorithm]) -> Result<Option<RemoteDigest>> {
        if let Some((offered, current)) = self.feature_line("HASH").map(digest::parse_hash_feat) {
            let Some(algorithm) = wanted.iter().copied().find(|a| offered.contains(a)) else { return Ok(None) };
            if current != Some(algorithm) {
                let r = self.command(Command::Opts(OptsCommand::Hash(Some(Ok(algorithm.proto()))))).await?;
                if r.code.0 != 200 {
                    return Err(reply_error(&format!("OPTS HASH {}", algorithm.name()), &r));
                }
                self.set_current_hash(algorithm);
            }
            let r = self.command(Command::Hash(path.into())).await?;
            return match r.code.0 {
                213 => match digest::parse_hash_reply(&r.lines[0]) {
                    Some((algorithm, hex)) => Ok(Some(RemoteDigest { algorithm, hex, command: "HASH" })),
                    None => Err(ClientError::Protocol(format!("HASH reply {:?}", r.lines[0]))),
                },
                450 | 550 => Err(ClientError::NotFound { path: path.into(), text: r.text() }),
                _ => Err(reply_error(&format!("HASH {path}"), &r)),
            };
        }
        for &algorithm in wanted {
            let cmd = algorithm.x_command(path);
            let command = cmd.name();
            let r = self.command(cmd).await?;
            match r.code.0 {
                213 | 250 => {
                    let hex = digest::parse_x_reply(&r.text(), algorithm)
                        .ok_or_else(|| ClientError::Protocol(format!("{command} reply {:?}", r.text())))?;
                    return Ok(Some(RemoteDigest { algorithm, hex, command }));
                }
                450 | 550 => return Err(ClientError::NotFound { path: path.into(), text: r.text() }),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Moves FEAT's `*` (the current HASH algorithm) to `algorithm` after `OPTS HASH`.
    fn set_current_hash(&mut self, algorithm: Algorithm) {
        if let Some(line) =
            self.features.iter_mut().find(|f| f.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("HASH ")))
        {
            let names: Vec<String> = line[5..]
                .split(';')
                .map(|n| n.trim().trim_end_matches('*'))
                .filter(|n| !n.is_empty())
                .map(|n| if n.eq_ignore_ascii_case(algorithm.name()) { format!("{n}*") } else { n.to_string() })
                .collect();
            *line = format!("HASH {}", names.join(";"));
        }
    }

    /// Sends a command without reading its reply (for FXP, where two servers talk at once).
    pub async fn send_command(&mut self, cmd: &Command) -> Result<()> {
        self.send(cmd).await
    }

    /// Reads the next reply.
    pub async fn next_reply(&mut self) -> Result<Reply> {
        self.read_reply().await
    }

    async fn send(&mut self, cmd: &Command) -> Result<()> {
        if let Some(t) = &self.trace {
            t.sent(cmd);
        }
        self.control.write(&format!("{cmd}\r\n")).await
    }

    /// Sends two commands in one write.
    async fn send_pair(&mut self, a: &Command, b: &Command) -> Result<()> {
        if let Some(t) = &self.trace {
            t.sent(a);
            t.sent(b);
        }
        self.control.write(&format!("{a}\r\n{b}\r\n")).await
    }

    /// The data address a 229 reply names (`None` for any other reply).
    fn epsv_target(&self, r: &Reply) -> Option<SocketAddr> {
        if r.code.0 != 229 {
            return None;
        }
        let port = addr::parse_epsv_reply(&r.lines[0]).ok()?;
        if let Some(t) = &self.trace {
            t.port_derivation(&format!("229 (|||{port}|) -> port {port} on {}", self.peer.ip()), port);
        }
        Some(SocketAddr::new(self.peer.ip(), port))
    }

    async fn connect_data(&mut self, target: SocketAddr) -> Result<TcpStream> {
        let s = match tokio::time::timeout(self.timeout, TcpStream::connect(target)).await {
            Ok(r) => r.map_err(ClientError::Data)?,
            Err(_) => return Err(ClientError::Data(io::ErrorKind::TimedOut.into())),
        };
        if let Some(t) = &self.trace {
            t.data_open(s.local_addr().map_err(ClientError::Data)?, target, "passive");
        }
        Ok(s)
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        let r = self.control.next_reply(self.timeout).await?;
        if let Some(t) = &self.trace {
            t.received(&r);
        }
        Ok(r)
    }

    /// `TYPE A` (true) or `TYPE I` (false).
    pub async fn set_ascii(&mut self, ascii: bool) -> Result<()> {
        if ascii != self.ascii {
            let t = if ascii {
                TransferType::Ascii(ferry_proto::command::FormatControl::NonPrint)
            } else {
                TransferType::Image
            };
            self.expect(Command::Type(t), 200).await?;
            self.ascii = ascii;
        }
        Ok(())
    }

    /// The working directory (PWD).
    pub async fn pwd(&mut self) -> Result<String> {
        let r = self.expect(Command::Pwd, 257).await?;
        let t = &r.lines[0];
        let start =
            t.find('"').ok_or_else(|| ClientError::Protocol(format!("PWD reply without a quoted path: {t}")))?;
        let mut out = String::new();
        let mut chars = t[start + 1..].chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// CWD.
    pub async fn cwd(&mut self, path: &str) -> Result<()> {
        self.path_cmd(Command::Cwd(path.into()), path, &[250, 200]).await
    }
    /// MKD.
    pub async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.path_cmd(Command::Mkd(path.into()), path, &[257, 250]).await
    }
    /// RMD.
    pub async fn rmdir(&mut self, path: &str) -> Result<()> {
        self.path_cmd(Command::Rmd(path.into()), path, &[250]).await
    }
    /// DELE.
    pub async fn delete(&mut self, path: &str) -> Result<()> {
        self.path_cmd(Command::Dele(path.into()), path, &[250]).await
    }
    /// RNFR + RNTO.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.path_cmd(Command::Rnfr(from.into()), from, &[350]).await?;
        self.path_cmd(Command::Rnto(to.into()), to, &[250]).await
    }

    /// A command on a path: `ok` codes succeed; a 550/450 is [`ClientError::NotFound`] only when
    /// the path really is missing (RFC 959 uses 550 for "not taken" of any kind: a directory that
    /// is not empty, no permission), else the refusal it is.
    async fn path_cmd(&mut self, cmd: Command, path: &str, ok: &[u16]) -> Result<()> {
        let shown = cmd.redacted();
        let r = self.command(cmd).await?;
        if ok.contains(&r.code.0) {
            Ok(())
        } else if (r.code.0 == 550 || r.code.0 == 450) && !self.exists(path).await? {
            Err(ClientError::NotFound { path: path.into(), text: r.text() })
        } else {
            Err(reply_error(&shown, &r))
        }
    }

    /// Whether `path` exists: MLST when the server has it (RFC 3659 section 7), else SIZE (a
    /// file), else CWD there and back (a directory).
    pub async fn exists(&mut self, path: &str) -> Result<bool> {
        if self.has_feature("MLST") {
            let r = self.command(Command::Mlst(Some(path.into()))).await?;
            return Ok(r.code.0 == 250);
        }
        if self.size(path).await?.is_some() {
            return Ok(true);
        }
        self.is_dir(path).await
    }

    /// The size of a file that must exist (the source of a copy): SIZE, and when it answers 550,
    /// [`ClientError::NotFound`] (a directory has no SIZE either: RFC 3659 section 4). `None` when
    /// the server has no SIZE at all.
    pub async fn file_size(&mut self, path: &str) -> Result<Option<u64>> {
        let r = self.command(Command::Size(path.into())).await?;
        match r.code.0 {
            213 => parse_size(&r).map(Some),
            450 | 550 => Err(ClientError::NotFound { path: path.into(), text: r.text() }),
            500..=504 => Ok(None),
            _ => Err(reply_error("SIZE", &r)),
        }
    }

    /// SIZE; `None` when the file does not exist (550) or the server has no SIZE (5xx).
    pub async fn size(&mut self, path: &str) -> Result<Option<u64>> {
        let r = self.command(Command::Size(path.into())).await?;
        match r.code.0 {
            213 => parse_size(&r).map(Some),
            450 | 500..=504 | 550 => Ok(None),
            _ => Err(reply_error("SIZE", &r)),
        }
    }

    /// Whether `path` is a directory (CWD there and back).
    pub async fn is_dir(&mut self, path: &str) -> Result<bool> {
        let here = self.pwd().await?;
        let r = self.command(Command::Cwd(path.into())).await?;
        if r.code.0 != 250 && r.code.0 != 200 {
            return Ok(false);
        }
        let back = self.command(Command::Cwd(here.clone())).await?;
        if back.code.0 != 250 && back.code.0 != 200 {
            return Err(reply_error(&format!("CWD {here}"), &back));
        }
        Ok(true)
    }

    /// MDTM; `None` when unknown.
    pub async fn mdtm(&mut self, path: &str) -> Result<Option<SystemTime>> {
        let r = self.command(Command::Mdtm(path.into())).await?;
        Ok(if r.code.0 == 213 { ferry_proto::listing::parse_timeval(r.lines[0].trim()) } else { None })
    }

    /// MFMT; whether the server supports it.
    pub async fn mfmt(&mut self, path: &str, t: SystemTime) -> Result<bool> {
        if !self.has_feature("MFMT") {
            return Ok(false);
        }
        let r = self.command(Command::Mfmt(t, path.into())).await?;
        Ok(r.code.0 == 213)
    }

    /// QUIT, ignoring errors.
    pub async fn quit(mut self) {
        let _ = self.command(Command::Quit).await;
    }
}

pub(super) async fn handshake(
    io: Box<dyn Io>,
    tls: Option<&(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    timeout: Duration,
) -> Result<Box<dyn Io>> {
    let (connector, name) = tls.ok_or_else(|| ClientError::Tls("no TLS configuration".into()))?;
    match tokio::time::timeout(timeout, connector.connect(name.clone(), io)).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(ClientError::Tls(e.to_string())),
        Err(_) => Err(ClientError::Tls("handshake timed out".into())),
    }
}

/// The number of a `213 <size>` reply (RFC 3659 section 4.2).
fn parse_size(r: &Reply) -> Result<u64> {
    r.lines[0].trim().parse().map_err(|_| ClientError::Protocol(format!("SIZE reply {:?}", r.lines[0])))
}

/// Whether `host` names a host that `HOST` can select: a DNS name, not an address or localhost.
fn host_name(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_err()
        && !host.eq_ignore_ascii_case("localhost")
        && host.contains('.')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_is_sent_for_names_only() {
        assert!(super::host_name("ftp.a.example"));
        for not in ["127.0.0.1", "::1", "localhost", "LOCALHOST", "intranet", "a b.example", ""] {
            assert!(!super::host_name(not), "{not}");
        }
    }
}
