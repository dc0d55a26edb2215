//! Test harness: starts `ferry serve` on port 0 and talks raw FTP to it.
#![allow(dead_code, reason = "each test binary uses its own part of the harness")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_proto::reply::ReplyParser;
use ferry_proto::Reply;

/// A running `ferry serve`, stopped (SIGTERM) on drop.
pub struct Ferry {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl Ferry {
    /// Starts a server with user alice:secret on 127.0.0.1:0 and extra flags.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(listen: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(dir.path())
            .args(["serve", "--listen", listen, "--root"])
            .arg(&root)
            .args(["--user", "alice:secret"])
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("ferry binary runs");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("ferry printed its address").unwrap();
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.parse().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self { child: Some(child), addr, root, _dir: dir, stderr_path }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn connect(&self) -> Ctrl {
        Ctrl::connect(self.addr)
    }

    /// A logged-in session.
    pub fn login(&self) -> Ctrl {
        let mut c = self.connect();
        assert_eq!(c.read().code.0, 220);
        c.ok("USER alice", 331);
        c.ok("PASS secret", 230);
        c
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        for _ in 0..200 {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().unwrap().code()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.stop();
        let log = self.stderr();
        if log.contains("panicked") {
            panic!("the server panicked:\n{log}");
        }
    }
}

/// A raw control connection.
pub struct Ctrl {
    pub stream: TcpStream,
    parser: ReplyParser,
}

impl Ctrl {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self { stream, parser: ReplyParser::new() }
    }

    pub fn connect_stream(stream: TcpStream) -> Self {
        Self { stream, parser: ReplyParser::new() }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

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
            match self.stream.read(&mut buf) {
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

    /// Runs an upload command over EPSV.
    pub fn upload(&mut self, cmd: &str, bytes: &[u8]) -> Reply {
        let mut data = self.epsv_connect();
        self.ok(cmd, 150);
        data.write_all(bytes).unwrap();
        drop(data);
        self.read()
    }
}

/// A listener for active-mode tests.
pub fn active_listener(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0)).unwrap()
}

pub fn read_file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), for byte-exact transfer checks.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts two directory trees hold the same names and bytes.
pub fn assert_trees_equal(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                    v.push((rel, None));
                } else {
                    v.push((rel, Some(std::fs::read(e.path()).unwrap())));
                }
            }
        }
        v.sort();
        v
    };
    assert!(list(a) == list(b), "{} and {} differ", a.display(), b.display());
}

/// Writes a self-signed pair with `ferry cert self-signed` and returns (dir, cert, key).
pub fn make_cert() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cert", "self-signed", "--cert"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (dir, cert, key)
}

/// A rustls client configuration that trusts `cert` (PEM).
pub fn client_config(cert: &std::path::Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Starts `ferry serve` with a plain and an implicit-FTPS listener on loopback (user alice:secret,
/// rooted at `root`, working directory `dir`) plus `extra` flags; returns the process and the
/// implicit listener's address.
pub fn spawn_implicit_tls(
    dir: &std::path::Path,
    root: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (std::process::Child, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--implicit-tls-listen", "127.0.0.1:0"])
        .args(["--user", "alice:secret", "--root"])
        .arg(root)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(extra)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let implicit = loop {
        let l = lines.next().unwrap().unwrap();
        if let Some(a) = l.strip_prefix("listening (implicit FTPS) on ") {
            break a.parse().unwrap();
        }
    };
    // Keep reading: the server prints more, and a closed pipe would fail its start-up.
    std::thread::spawn(move || lines.for_each(drop));
    (child, implicit)
}
