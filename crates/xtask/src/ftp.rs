//! The load generator's FTP client: a control connection that parses replies with
//! `ferry_proto::reply::ReplyParser`, passive (EPSV) data connections, data read into one large
//! buffer and discarded, uploads written from memory. Nothing touches the disk. With
//! [`Ctrl::connect_tls`] it speaks explicit FTPS (AUTH TLS, PROT P), as curl does.

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use ferry_proto::reply::ReplyParser;
use ferry_proto::Reply;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::tls;

/// Read buffer size for data connections.
pub const DATA_BUF: usize = 1 << 20;

/// A control or data connection: plain TCP, or TLS over it.
pub type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// One control connection.
pub struct Ctrl {
    stream: Stream,
    parser: ReplyParser,
    buf: Box<[u8]>,
    peer: SocketAddr,
    /// After AUTH TLS: the client that protects the data connections too (PROT P).
    tls: Option<tls::Client>,
}

impl Ctrl {
    /// Connects and reads the 220 greeting.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut c = Ctrl {
            stream: Either::Left(stream),
            parser: ReplyParser::new(),
            buf: vec![0u8; 4096].into_boxed_slice(),
            peer: addr,
            tls: None,
        };
        let r = c.reply().await?;
        if r.code.0 != 220 {
            bail!("greeting: {}", one_line(&r));
        }
        Ok(c)
    }

    /// Connects, reads the greeting and secures the control connection with AUTH TLS.
    pub async fn connect_tls(addr: SocketAddr, client: &tls::Client) -> Result<Self> {
        let mut c = Self::connect(addr).await?;
        c.expect("AUTH TLS", 234).await?;
        let Ctrl { stream: Either::Left(tcp), parser, buf, peer, tls: None } = c else {
            bail!("AUTH TLS on a connection that is already secured");
        };
        let secured = client.connector.connect(client.name.clone(), tcp).await.context("TLS handshake")?;
        Ok(Ctrl { stream: Either::Right(Box::new(secured)), parser, buf, peer, tls: Some(client.clone()) })
    }

    /// Connects and logs in (USER, and PASS unless USER is enough), then TYPE I.
    pub async fn login(addr: SocketAddr, user: &str, pass: &str) -> Result<Self> {
        let mut c = Self::connect(addr).await?;
        c.log_in(user, pass).await?;
        c.expect("TYPE I", 200).await?;
        Ok(c)
    }

    /// [`Ctrl::login`] over explicit FTPS, as curl does it: AUTH TLS, USER, PASS, PBSZ 0, PROT P,
    /// TYPE I.
    pub async fn login_tls(addr: SocketAddr, user: &str, pass: &str, client: &tls::Client) -> Result<Self> {
        let mut c = Self::connect_tls(addr, client).await?;
        c.log_in(user, pass).await?;
        c.expect("PBSZ 0", 200).await?;
        c.expect("PROT P", 200).await?;
        c.expect("TYPE I", 200).await?;
        Ok(c)
    }

    /// The TLS state of the control connection (`None` when plain).
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match &self.stream {
            Either::Right(s) => Some(s.get_ref().1),
            Either::Left(_) => None,
        }
    }

    /// USER and PASS.
    pub async fn log_in(&mut self, user: &str, pass: &str) -> Result<()> {
        let r = self.cmd(&format!("USER {user}")).await?;
        match r.code.0 {
            230 => Ok(()),
            331 => {
                self.expect(&format!("PASS {pass}"), 230).await?;
                Ok(())
            }
            _ => bail!("USER: {}", one_line(&r)),
        }
    }

    /// The next complete reply.
    pub async fn reply(&mut self) -> Result<Reply> {
        loop {
            if let Some(r) = self.parser.next_reply().map_err(|e| anyhow!("reply: {e}"))? {
                return Ok(r);
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                bail!("control connection closed by the server");
            }
            self.parser.feed(&self.buf[..n]);
        }
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// Sends a command and returns its first reply.
    pub async fn cmd(&mut self, line: &str) -> Result<Reply> {
        self.send(line).await?;
        self.reply().await
    }

    /// Sends a command and requires `code`.
    pub async fn expect(&mut self, line: &str, code: u16) -> Result<Reply> {
        let r = self.cmd(line).await?;
        if r.code.0 != code {
            let shown = ferry_proto::command::redact(line);
            bail!("{shown}: expected {code}, got {}", one_line(&r));
        }
        Ok(r)
    }

    /// QUIT, then waits for the server to close.
    pub async fn quit(mut self) -> Result<()> {
        self.expect("QUIT", 221).await?;
        let mut b = [0u8; 64];
        let _ = self.stream.read(&mut b).await;
        Ok(())
    }

    /// Whether FEAT lists `name`.
    pub async fn has_feature(&mut self, name: &str) -> Result<bool> {
        let r = self.cmd("FEAT").await?;
        Ok(r.code.0 == 211 && r.lines.iter().any(|l| l.trim().to_ascii_uppercase().starts_with(name)))
    }

    /// EPSV, then connects to the announced port. (Under PROT P the TLS handshake comes after the
    /// transfer command, as the servers start it only then: see [`secure`].)
    pub async fn open_data(&mut self) -> Result<TcpStream> {
        let r = self.expect("EPSV", 229).await?;
        let port = ferry_proto::addr::parse_epsv_reply(&r.lines.join(" ")).map_err(|e| anyhow!("229: {e}"))?;
        let data = TcpStream::connect(SocketAddr::new(self.peer.ip(), port)).await.context("data connection")?;
        Ok(data)
    }

    /// Waits for 150/125, then the final reply, which must be 226 (or 250).
    pub async fn transfer_replies(&mut self, what: &str) -> Result<()> {
        let r = self.reply().await?;
        if !r.code.is_preliminary() {
            bail!("{what}: {}", one_line(&r));
        }
        let r = self.reply().await?;
        if r.code.0 != 226 && r.code.0 != 250 {
            bail!("{what}: {}", one_line(&r));
        }
        Ok(())
    }

    /// Runs a download command (`RETR path`, `LIST dir`, ...) and discards the data; returns the
    /// bytes and lines (LF count) received.
    pub async fn download(&mut self, command: &str, buf: &mut [u8]) -> Result<(u64, u64)> {
        let data = self.open_data().await?;
        self.send(command).await?;
        let tls = self.tls.clone();
        let receive = async move {
            let mut data = secure(data, tls.as_ref()).await?;
            let (mut bytes, mut lines) = (0u64, 0u64);
            loop {
                let n = data.read(buf).await.context("data connection")?;
                if n == 0 {
                    // Close at once, as clients do: some servers wait for it before the 226.
                    drop(data);
                    return Ok::<_, anyhow::Error>((bytes, lines));
                }
                bytes += n as u64;
                if command.len() >= 4 && !command[..4].eq_ignore_ascii_case("RETR") {
                    lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                }
            }
        };
        let (counts, ()) = tokio::try_join!(receive, self.transfer_replies(command))?;
        Ok(counts)
    }

    /// `STOR path` with `len` bytes taken from `chunk` over and over.
    pub async fn upload(&mut self, path: &str, chunk: &[u8], len: u64) -> Result<()> {
        let data = self.open_data().await?;
        self.send(&format!("STOR {path}")).await?;
        let r = self.reply().await?;
        if !r.code.is_preliminary() {
            bail!("STOR {path}: {}", one_line(&r));
        }
        let (l, r) = (data.local_addr().ok(), data.peer_addr().ok());
        let mut data = secure(data, self.tls.as_ref()).await?;
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            data.write_all(&chunk[..n]).await.with_context(|| format!("data connection {l:?} -> {r:?}"))?;
            left -= n as u64;
        }
        data.shutdown().await?;
        if let Either::Right(tls) = &mut data {
            // Read the server's side of the close, and with it the TLS 1.3 session tickets an
            // OpenSSL server sends on every data connection: closing with them unread makes the
            // kernel reset the connection, and the server then loses the end of the upload (as
            // curl and lftp do, so as not to).
            let mut sink = [0u8; 4096];
            let drain = async {
                while let Ok(n) = tls.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
        drop(data);
        let r = self.reply().await?;
        if r.code.0 != 226 && r.code.0 != 250 {
            bail!("STOR {path}: {}", one_line(&r));
        }
        Ok(())
    }
}

/// The data connection as the session protects it: a TLS client handshake over `tcp` under
/// PROT P (resuming the control connection's session from the shared cache), else `tcp` as is.
async fn secure(tcp: TcpStream, tls: Option<&tls::Client>) -> Result<Stream> {
    match tls {
        Some(c) => {
            let s = c.connector.connect(c.name.clone(), tcp).await.context("data connection TLS handshake")?;
            Ok(Either::Right(Box::new(s)))
        }
        None => Ok(Either::Left(tcp)),
    }
}

/// A reply on one line, for messages.
pub fn one_line(r: &Reply) -> String {
    format!("{} {}", r.code.0, r.lines.join(" | "))
}
