//! A raw control connection for tests: send lines, read replies (with `ferry-proto`'s reply
//! parser), upgrade with `AUTH TLS`, open data connections. Every step panics on failure, with
//! what was expected: a test helper's failure is the test's.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support: a failed step fails the test")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::reply::ReplyParser;
use ferry_proto::Reply;

/// A control connection: plain, or protected after [`Ctrl::auth_tls`].
pub struct Ctrl {
    /// The TCP socket (under TLS once protected).
    pub stream: TcpStream,
    tls: Option<rustls::ClientConnection>,
    parser: ReplyParser,
}

impl Ctrl {
    /// Connects (reads nothing: the greeting is the caller's to read).
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self::connect_stream(stream)
    }

    /// Wraps a connected socket.
    pub fn connect_stream(stream: TcpStream) -> Self {
        Self { stream, tls: None, parser: ReplyParser::new() }
    }

    /// Connects and reads the 220 greeting.
    pub fn greeted(addr: SocketAddr) -> Self {
        let mut c = Self::connect(addr);
        assert_eq!(c.read().code.0, 220, "greeting");
        c
    }

    fn io(&mut self) -> Box<dyn ReadWrite + '_> {
        match &mut self.tls {
            Some(conn) => Box::new(rustls::Stream::new(conn, &mut self.stream)),
            None => Box::new(&mut self.stream),
        }
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut io = self.io();
        io.write_all(bytes).unwrap();
        io.flush().unwrap();
    }

    /// Sends one line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one reply (panics on timeout or close).
    pub fn read(&mut self) -> Reply {
        self.try_read().expect("a reply")
    }

    /// Reads one reply, `None` when the server closed the connection.
    pub fn try_read(&mut self) -> Option<Reply> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.parser.next_reply().expect("well-formed reply") {
                return Some(r);
            }
            let n = self.io().read(&mut buf);
            match n {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.parser.feed(&buf[..n]),
            }
        }
    }

    /// Sends a command and checks the reply code.
    pub fn ok(&mut self, line: &str, code: u16) -> Reply {
        self.send(line);
        let r = self.read();
        assert_eq!(r.code.0, code, "{line} -> {r:?}");
        r
    }

    /// `AUTH TLS` (234), then the handshake on this connection.
    pub fn auth_tls(&mut self, config: &Arc<rustls::ClientConfig>) {
        self.ok("AUTH TLS", 234);
        let mut conn = rustls::ClientConnection::new(config.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut self.stream).unwrap();
        }
        self.tls = Some(conn);
    }

    /// EPSV, connect to the announced port.
    pub fn epsv_connect(&mut self) -> TcpStream {
        let r = self.ok("EPSV", 229);
        let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).unwrap();
        let peer = self.stream.peer_addr().unwrap();
        TcpStream::connect((peer.ip(), port)).unwrap()
    }

    /// PASV, connect to the announced address.
    pub fn pasv_connect(&mut self) -> TcpStream {
        let r = self.ok("PASV", 227);
        let addr = ferry_proto::addr::parse_pasv_reply(&r.lines[0]).unwrap();
        TcpStream::connect(addr).unwrap()
    }

    /// Runs a download command over EPSV and returns the bytes.
    pub fn download(&mut self, cmd: &str) -> Vec<u8> {
        let mut data = self.epsv_connect();
        self.ok(cmd, 150);
        let mut out = Vec::new();
        data.read_to_end(&mut out).unwrap();
        assert_eq!(self.read().code.0, 226);
        out
    }

    /// Runs an upload command over EPSV; the reply after the 150.
    pub fn upload(&mut self, cmd: &str, bytes: &[u8]) -> Reply {
        let mut data = self.epsv_connect();
        self.ok(cmd, 150);
        data.write_all(bytes).unwrap();
        drop(data);
        self.read()
    }
}

/// A client-side TLS stream on a data connection.
pub type TlsData = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Runs a client TLS handshake on `sock` (for data connections under `PROT P`).
pub fn tls_wrap(sock: TcpStream, config: &Arc<rustls::ClientConfig>) -> TlsData {
    // A server that never answers fails the test instead of hanging it.
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
