//! Whole sessions: the input is what a client sends on the control connection, fed to a real
//! Ferry server (in this process, on 127.0.0.1, files in a temp dir) after an optional login. The
//! harness plays the client's data side: for every 227/229 reply it connects to the announced
//! port, sends a few bytes and reads what comes, so RETR, STOR, LIST and ABOR run for real.
//!
//! Checked: the server never panics (a panic in any of its tasks aborts the process, which the
//! fuzzer reports) and always answers: after the input, `NOOP` and `QUIT` get their 221, unless
//! the session ended earlier in one of the ways that announce themselves (a 421, a 221, a 500 for
//! a PROXY header, a 234 before a TLS handshake the input cannot complete). A session that goes
//! silent for 20 seconds is a hang, and fails.
//!
//! The first input byte chooses the prologue: odd, log in as alice first; even, start fresh.

#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use ferry_proto::reply::ReplyParser;
use ferry_server::auth::{AccountLimits, AuthError, Authenticator, Permissions, User};
use ferry_server::{Config, Server};
use libfuzzer_sys::fuzz_target;

/// alice/secret, with every permission, rooted in the temp dir; no password hashing (it would
/// only slow the fuzzer down).
#[derive(Debug)]
struct Alice(std::path::PathBuf);

#[async_trait]
impl Authenticator for Alice {
    fn is_anonymous(&self, _name: &str) -> bool {
        false
    }
    async fn authenticate(&self, name: &str, password: &str, _from: std::net::IpAddr) -> Result<User, AuthError> {
        if name != "alice" || password != "secret" {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(User {
            name: name.into(),
            root: self.0.clone(),
            permissions: Permissions::all(),
            anonymous: false,
            tls_required: false,
            limits: AccountLimits::default(),
        })
    }
}

struct Harness {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    _root: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let root = tempfile::tempdir().expect("a temp dir");
        std::fs::write(root.path().join("file.txt"), b"hello\nworld\n").expect("a file");
        std::fs::create_dir(root.path().join("dir")).expect("a directory");
        let mut config = Config { listen: vec!["127.0.0.1:0".parse().expect("an address")], ..Config::default() };
        config.root = root.path().to_path_buf();
        config.fsync = false;
        // Nothing carries over from one input to the next: no bans, no delays, no limits that a
        // thousand short sessions would reach.
        config.limits.failed_login_delay_ms = 0;
        config.limits.max_failed_login_delay_ms = 0;
        config.limits.ban_after_failures = 0;
        config.limits.max_sessions_per_ip = 10_000;
        config.limits.data_timeout_secs = 1;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
        let auth = Arc::new(Alice(root.path().to_path_buf()));
        let server = rt.block_on(Server::bind(config, auth)).expect("the server binds");
        let addr = server.local_addrs()[0];
        rt.spawn(server.run(tokio_util::sync::CancellationToken::new()));
        Harness { addr, _rt: rt, _root: root }
    })
}

/// The client's side of a data connection: connect, send a little, read what comes.
fn data_connection(to: SocketAddr) {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else { return };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"uploaded by the fuzzer\r\n");
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Reads replies until the server closes; connects to every passive port announced. Returns the
/// code of the last reply.
fn client_side(mut ctrl: TcpStream, server: SocketAddr) -> Option<u16> {
    let mut parser = ReplyParser::new();
    let mut last = None;
    let mut buf = [0u8; 4096];
    let mut data = Vec::new();
    loop {
        while let Ok(Some(r)) = parser.next_reply() {
            let text = r.lines.first().cloned().unwrap_or_default();
            let port = match r.code.0 {
                227 => ferry_proto::addr::parse_pasv_reply(&text).ok().map(|a| a.port()),
                229 => ferry_proto::addr::parse_epsv_reply(&text).ok(),
                _ => None,
            };
            if let Some(port) = port {
                let to = SocketAddr::new(server.ip(), port);
                data.push(std::thread::spawn(move || data_connection(to)));
            }
            last = Some(r.code.0);
        }
        match ctrl.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => parser.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("the server went silent for 20 s (last reply {last:?})")
            }
            Err(_) => break,
        }
    }
    for d in data {
        let _ = d.join();
    }
    last
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let h = harness();
    let Ok(mut ctrl) = TcpStream::connect(h.addr) else { return };
    let _ = ctrl.set_read_timeout(Some(Duration::from_secs(20)));
    let reader = ctrl.try_clone().expect("a second handle");
    let server = h.addr;
    let client = std::thread::spawn(move || client_side(reader, server));
    let mut script = Vec::new();
    if first & 1 == 1 {
        script.extend_from_slice(b"USER alice\r\nPASS secret\r\n");
    }
    script.extend_from_slice(input);
    script.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    // The server may close first (QUIT in the input, a 421): a failed write is not an error.
    let _ = ctrl.write_all(&script);
    let last = client.join().expect("the client side");
    assert!(
        matches!(last, Some(221 | 421 | 234 | 500)),
        "the session ended without a closing reply (last reply {last:?})"
    );
});
