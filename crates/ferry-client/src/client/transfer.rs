//! Transfers: downloads and uploads, and the data connections they run over (passive, active,
//! TLS under PROT P).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use ferry_proto::addr::{self, NetProto};
use ferry_proto::ascii;
use ferry_proto::listing::parse::{parse_list_line, parse_mlsx_line};
use ferry_proto::listing::MlsxRole;
use ferry_proto::{Command, Reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{
    handshake, reply_error, transfer_refused, Client, ClientError, DataMode, Extended, RemoteEntry, Result, StoreHow,
};
use crate::tls::Io;
use crate::trace::Direction;

impl Client {
    /// Lists a directory: MLSD when the server has it, else `LIST -a` parsed (Unix and DOS).
    pub async fn list(&mut self, path: &str) -> Result<Vec<RemoteEntry>> {
        let use_mlsd = self.has_feature("MLST");
        let cmd = if use_mlsd { Command::Mlsd(Some(path.into())) } else { Command::List(Some(format!("-a {path}"))) };
        let mut bytes = Vec::new();
        let was_ascii = self.ascii;
        self.set_ascii(false).await?;
        let r = self.download(cmd, path, &mut bytes, &mut |_| {}).await;
        self.set_ascii(was_ascii).await?;
        match r {
            // MLSD names directories only; a file is listed with MLST.
            Err(ClientError::Reply { code: 501, .. }) if use_mlsd => {
                let r = self.command(Command::Mlst(Some(path.into()))).await?;
                if r.code.0 != 250 || r.lines.len() < 3 {
                    return Err(ClientError::NotFound { path: path.into(), text: r.text() });
                }
                let mut out = Vec::new();
                if let Some((mut e, _)) = parse_mlsx_line(r.lines[1].trim()) {
                    e.name = e.name.rsplit('/').next().unwrap_or(&e.name).to_string();
                    out.push(e);
                }
                return Ok(out);
            }
            r => {
                r?;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let now = SystemTime::now();
        let mut out = Vec::new();
        for line in text.split('\n') {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            if use_mlsd {
                if let Some((e, MlsxRole::Entry)) = parse_mlsx_line(line) {
                    out.push(e);
                }
            } else if let Some(e) = parse_list_line(line, now) {
                if e.name != "." && e.name != ".." {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// NLST: names.
    pub async fn nlst(&mut self, path: Option<&str>) -> Result<Vec<String>> {
        let mut bytes = Vec::new();
        self.download(Command::Nlst(path.map(str::to_string)), path.unwrap_or("."), &mut bytes, &mut |_| {}).await?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Downloads `path` from `offset` into `sink`; returns the bytes received.
    pub async fn retr<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        if offset > 0 {
            self.expect(Command::Rest(offset), 350).await?;
        }
        self.download(Command::Retr(path.into()), path, sink, progress).await
    }

    /// Downloads `len` bytes of `path` from `offset`, then closes the data connection (for
    /// segmented downloads). The server's reply to the cut connection is read and ignored.
    pub async fn retr_range<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        if offset > 0 {
            self.expect(Command::Rest(offset), 350).await?;
        }
        let (mut data, _) = self.open_transfer(Command::Retr(path.into()), path).await?;
        let started = Instant::now();
        let mut got = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while got < len {
            let want = (len - got).min(buf.len() as u64) as usize;
            let n = self.timed_read(&mut data, &mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n]).await.map_err(ClientError::Local)?;
            got += n as u64;
            progress(n as u64);
        }
        drop(data);
        if let Some(t) = &self.trace {
            t.data_close(got, started.elapsed(), if got < len { "server" } else { "client" }, Direction::Download);
        }
        // 226 if the server had finished, 426/451 when we cut it short: both fine here.
        let _ = self.read_reply().await?;
        if got != len {
            return Err(ClientError::Verify(format!("{path}: expected {len} bytes from offset {offset}, got {got}")));
        }
        Ok(got)
    }

    async fn timed_read(&self, data: &mut Box<dyn Io>, buf: &mut [u8]) -> Result<usize> {
        match tokio::time::timeout(self.timeout, data.read(buf)).await {
            Ok(r) => r.map_err(ClientError::Data),
            Err(_) => Err(ClientError::Data(io::ErrorKind::TimedOut.into())),
        }
    }

    async fn download<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        cmd: Command,
        path: &str,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        let (mut data, _) = self.open_transfer(cmd.clone(), path).await?;
        let started = Instant::now();
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let mut conv = ascii::FromWire::new();
        let mut out = Vec::new();
        let ascii = self.ascii && matches!(cmd, Command::Retr(_));
        loop {
            let n = self.timed_read(&mut data, &mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            progress(n as u64);
            if ascii {
                out.clear();
                conv.convert(&buf[..n], &mut out);
                sink.write_all(&out).await.map_err(ClientError::Local)?;
            } else {
                sink.write_all(&buf[..n]).await.map_err(ClientError::Local)?;
            }
        }
        if ascii {
            out.clear();
            conv.finish(&mut out);
            sink.write_all(&out).await.map_err(ClientError::Local)?;
        }
        sink.flush().await.map_err(ClientError::Local)?;
        if let Some(t) = &self.trace {
            t.data_close(total, started.elapsed(), "server", Direction::Download);
        }
        drop(data);
        self.finish_transfer(&cmd.redacted(), path).await?;
        Ok(total)
    }

    /// Uploads `source` to `path`; returns the bytes sent.
    pub async fn stor<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        path: &str,
        how: StoreHow,
        source: &mut R,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64> {
        let cmd = match how {
            StoreHow::Replace => Command::Stor(path.into()),
            StoreHow::Append => Command::Appe(path.into()),
            StoreHow::At(n) => {
                self.expect(Command::Rest(n), 350).await?;
                Command::Stor(path.into())
            }
        };
        let (mut data, _) = self.open_transfer(cmd.clone(), path).await?;
        let started = Instant::now();
        let mut total = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let mut conv = ascii::ToWire::new();
        let mut out = Vec::new();
        loop {
            let n = source.read(&mut buf).await.map_err(ClientError::Local)?;
            if n == 0 {
                break;
            }
            let chunk = if self.ascii {
                out.clear();
                conv.convert(&buf[..n], &mut out);
                &out[..]
            } else {
                &buf[..n]
            };
            match tokio::time::timeout(self.timeout, data.write_all(chunk)).await {
                Ok(r) => r.map_err(ClientError::Data)?,
                Err(_) => return Err(ClientError::Data(io::ErrorKind::TimedOut.into())),
            }
            total += n as u64;
            progress(n as u64);
        }
        data.shutdown().await.map_err(ClientError::Data)?;
        // Read the server's side of the close (and, over TLS, the session ticket it may send,
        // which the next data connection resumes with).
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(self.timeout, async {
            while let Ok(n) = data.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(data);
        if let Some(t) = &self.trace {
            t.data_close(total, started.elapsed(), "client", Direction::Upload);
        }
        self.finish_transfer(&cmd.redacted(), path).await?;
        Ok(total)
    }

    /// Reads the reply that ends a transfer.
    pub async fn finish_transfer(&mut self, cmd: &str, path: &str) -> Result<Reply> {
        let r = self.read_reply().await?;
        match r.code.0 {
            226 | 250 => Ok(r),
            550 | 450 => Err(ClientError::NotFound { path: path.into(), text: r.text() }),
            _ => Err(reply_error(cmd, &r)),
        }
    }

    /// Sets up a data connection, sends `cmd`, and returns the open data connection with the 1xx
    /// reply.
    pub async fn open_transfer(&mut self, cmd: Command, path: &str) -> Result<(Box<dyn Io>, Reply)> {
        let shown = cmd.redacted();
        let (pending, r) = if self.mode == DataMode::Passive && self.extended.epsv == Extended::Works {
            // EPSV and the command in one write: the server answers 229, then waits for the data
            // connection to serve the command (RFC 959 lets a client send commands ahead).
            self.send_pair(&Command::Epsv(addr::EpsvArg::Default), &cmd).await?;
            let epsv = self.read_reply().await?;
            match self.epsv_target(&epsv) {
                // Connect first: servers answer the command (150) once the data connection is up.
                Some(target) => {
                    let data = self.connect_data(target).await?;
                    (Pending::Connected(data), self.read_reply().await?)
                }
                None => {
                    let _refused = self.read_reply().await?;
                    // EPSV stopped working: the command was refused for lack of a data connection;
                    // set one up the ordinary way and send it again.
                    self.extended.epsv = Extended::Untried;
                    let pending = self.prepare_data().await?;
                    (pending, self.command(cmd).await?)
                }
            }
        } else {
            let pending = self.prepare_data().await?;
            (pending, self.command(cmd).await?)
        };
        if !r.code.is_preliminary() {
            return Err(transfer_refused(&shown, path, &r));
        }
        let stream = match pending {
            Pending::Connected(s) => s,
            Pending::Listening(l) => {
                let (s, from) = match tokio::time::timeout(self.timeout, l.accept()).await {
                    Ok(r) => r.map_err(ClientError::Data)?,
                    Err(_) => {
                        return Err(ClientError::Data(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the server did not connect",
                        )))
                    }
                };
                if from.ip().to_canonical() != self.peer.ip().to_canonical() {
                    return Err(ClientError::Data(io::Error::other(format!(
                        "data connection from {from}, not the server"
                    ))));
                }
                if let Some(t) = &self.trace {
                    t.data_open(s.local_addr().map_err(ClientError::Data)?, from, "active");
                }
                s
            }
        };
        // Protected data: the handshake starts after the 1xx reply and resumes the control
        // connection's TLS session (the same client configuration holds its tickets).
        let stream: Box<dyn Io> = match &self.data_tls {
            None => Box::new(stream),
            Some(_) => {
                handshake(Box::new(stream), self.data_tls.as_ref(), self.timeout).await.map_err(|e| match e {
                    ClientError::Tls(t) => ClientError::Data(io::Error::other(format!("data connection TLS: {t}"))),
                    other => other,
                })?
            }
        };
        Ok((stream, r))
    }

    async fn prepare_data(&mut self) -> Result<Pending> {
        match self.mode {
            DataMode::Passive => self.passive().await.map(Pending::Connected),
            DataMode::Active => self.active().await.map(Pending::Listening),
        }
    }

    /// Asks for a passive port (EPSV, or PASV after EPSV was refused) and connects to it.
    async fn passive(&mut self) -> Result<TcpStream> {
        let target = self.passive_target().await?;
        self.connect_data(target).await
    }

    /// The address a passive data connection goes to. PASV's announced IP is replaced by the
    /// control connection's peer when it differs (a NATed server announcing a private address).
    pub async fn passive_target(&mut self) -> Result<SocketAddr> {
        if self.extended.epsv != Extended::Refused {
            let r = self.command(Command::Epsv(addr::EpsvArg::Default)).await?;
            if r.code.0 == 229 {
                let target = self
                    .epsv_target(&r)
                    .ok_or_else(|| ClientError::Protocol(format!("bad 229 reply: {}", r.lines[0])))?;
                self.extended.epsv = Extended::Works;
                return Ok(target);
            }
            // Remember: this server does not do EPSV.
            self.extended.epsv = Extended::Refused;
        }
        let r = self.command(Command::Pasv).await?;
        if r.code.0 != 227 {
            return Err(reply_error("PASV", &r));
        }
        let a = addr::parse_pasv_reply(&r.lines[0])
            .map_err(|_| ClientError::Protocol(format!("bad 227 reply: {}", r.lines[0])))?;
        let (p1, p2) = (a.port() >> 8, a.port() & 0xff);
        let ip =
            if IpAddr::V4(*a.ip()) == self.peer.ip().to_canonical() { IpAddr::V4(*a.ip()) } else { self.peer.ip() };
        if let Some(t) = &self.trace {
            t.port_derivation(
                &format!("227 ({}) -> port {p1}*256+{p2} = {}", addr::format_port(a), a.port()),
                a.port(),
            );
        }
        Ok(SocketAddr::new(ip, a.port()))
    }

    /// Listens locally and tells the server with EPRT (or PORT after EPRT was refused).
    async fn active(&mut self) -> Result<TcpListener> {
        let l = TcpListener::bind(SocketAddr::new(self.local.ip(), 0)).await.map_err(ClientError::Data)?;
        let a = l.local_addr().map_err(ClientError::Data)?;
        self.announce_active(a).await?;
        Ok(l)
    }

    /// Sends EPRT (or PORT) naming `a`.
    pub async fn announce_active(&mut self, a: SocketAddr) -> Result<()> {
        if self.extended.eprt != Extended::Refused {
            let r = self.command(Command::Eprt(a)).await?;
            if r.code.0 == 200 {
                self.extended.eprt = Extended::Works;
                if let Some(t) = &self.trace {
                    t.port_derivation(
                        &format!("EPRT {} -> server connects to port {}", addr::format_eprt(a), a.port()),
                        a.port(),
                    );
                }
                return Ok(());
            }
            if r.code.0 != 500 && r.code.0 != 502 && r.code.0 != 522 {
                return Err(reply_error("EPRT", &r));
            }
            self.extended.eprt = Extended::Refused;
        }
        let SocketAddr::V4(v4) = SocketAddr::new(a.ip().to_canonical(), a.port()) else {
            return Err(ClientError::Protocol("the server refused EPRT and PORT cannot carry IPv6".into()));
        };
        if NetProto::of(self.peer.ip()) != NetProto::V4 {
            return Err(ClientError::Protocol("PORT needs an IPv4 control connection".into()));
        }
        self.expect(Command::Port(v4), 200).await?;
        if let Some(t) = &self.trace {
            let p = v4.port();
            t.port_derivation(&format!("PORT {} -> port {}*256+{} = {p}", addr::format_port(v4), p >> 8, p & 0xff), p);
        }
        Ok(())
    }
}

/// A data connection being made: connected (passive) or listening (active).
enum Pending {
    Connected(TcpStream),
    Listening(TcpListener),
}
