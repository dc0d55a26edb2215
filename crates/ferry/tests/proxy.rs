//! End-to-end: PROXY protocol v1/v2 from a trusted load balancer. The balancer is 127.0.0.3 (the
//! test binds its sockets there); clients named in its headers are other loopback addresses, so
//! the server's checks can be seen to use the header's address, not the socket's.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Ctrl, Ferry};
use ferry_proto::proxy::{encode, Addresses, Version};

const BALANCER: &str = "127.0.0.3";

/// A TCP connection to `to` from the loopback address `source`.
fn tcp_from(source: &str, to: SocketAddr) -> TcpStream {
    let domain = if to.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    s.connect(&to.into()).unwrap();
    let stream: TcpStream = s.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// A PROXY header saying `client` connected to `server`.
fn header(version: Version, client: &str, server: SocketAddr) -> Vec<u8> {
    encode(version, &Addresses::Proxied { source: client.parse().unwrap(), destination: server })
}

/// A connection from the balancer that starts with `bytes`.
fn via_balancer(to: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = tcp_from(BALANCER, to);
    s.write_all(bytes).unwrap();
    s
}

/// A control connection the balancer relays for `client`, logged in as alice.
fn relayed_login(f: &Ferry, version: Version, client: &str) -> Ctrl {
    let mut c = Ctrl::connect_stream(via_balancer(f.addr, &header(version, client, f.addr)));
    assert_eq!(c.read().code.0, 220);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c
}

fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("ferry.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Whether the peer closed `s` (or reset it) without sending anything.
fn closed_without_data(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn relayed_session_is_the_header_client(version: Version) {
    let f = Ferry::start(&["--proxy-trusted", BALANCER, "--data-timeout", "2"]);
    std::fs::write(f.path("hello.txt"), b"hi").unwrap();
    let mut c = relayed_login(&f, version, "127.0.0.5:40001");

    c.send("STAT");
    let stat = c.read();
    assert!(stat.lines.iter().any(|l| l.contains("Connected from 127.0.0.5")), "{stat:?}");
    let log = f.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("logged in") && l.contains("peer=127.0.0.5:40001") && l.contains("via=127.0.0.3")),
        "{log}"
    );

    // Passive: a data connection from 127.0.0.1 (not the header's client) is refused, and the
    // transfer ends in 425 when the client never comes.
    let r = c.ok("PASV", 227);
    let data_addr = ferry_proto::addr::parse_pasv_reply(&r.lines[0]).unwrap();
    let mut foreign = TcpStream::connect(data_addr).unwrap();
    foreign.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.send("LIST");
    assert_eq!(c.read().code.0, 425);
    assert!(closed_without_data(&mut foreign));
    // From the header's address: accepted.
    let r = c.ok("PASV", 227);
    let data_addr = ferry_proto::addr::parse_pasv_reply(&r.lines[0]).unwrap();
    let data = tcp_from("127.0.0.5", data_addr.into());
    c.ok("LIST", 150);
    assert!(String::from_utf8(read_all(data)).unwrap().contains("hello.txt"));
    assert_eq!(c.read().code.0, 226);

    // Active: PORT must name the header's address too.
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(a) = elsewhere.local_addr().unwrap() else { unreachable!() };
    c.ok(&format!("PORT {}", ferry_proto::addr::format_port(a)), 504);
    let client_side = TcpListener::bind("127.0.0.5:0").unwrap();
    let SocketAddr::V4(a) = client_side.local_addr().unwrap() else { unreachable!() };
    c.ok(&format!("PORT {}", ferry_proto::addr::format_port(a)), 200);
    c.ok("RETR hello.txt", 150);
    let (data, _) = client_side.accept().unwrap();
    assert_eq!(read_all(data), b"hi");
    assert_eq!(c.read().code.0, 226);
    c.ok("QUIT", 221);
}

#[test]
fn a_v2_header_from_the_balancer_names_the_client() {
    relayed_session_is_the_header_client(Version::V2);
}

#[test]
fn a_v1_header_from_the_balancer_names_the_client() {
    relayed_session_is_the_header_client(Version::V1);
}

#[test]
fn a_proxy_header_from_anyone_else_is_refused() {
    let f = Ferry::start(&["--proxy-trusted", BALANCER]);
    for (source, version) in [("127.0.0.1", Version::V2), ("127.0.0.2", Version::V1)] {
        let mut c = Ctrl::connect_stream(tcp_from(source, f.addr));
        // Nothing changes for untrusted addresses: the greeting comes first.
        assert_eq!(c.read().code.0, 220);
        // One write: the server closes after its refusal, and a later write could meet a reset.
        let mut bytes = header(version, "127.0.0.5:40001", f.addr);
        bytes.extend_from_slice(b"USER alice\r\nPASS secret\r\n");
        c.send_raw(&bytes);
        let r = c.read();
        assert_eq!((r.code.0, r.lines[0].as_str()), (500, "PROXY header not accepted from this address."));
        assert!(c.try_read().is_none(), "closed after the refusal");
    }
    // With PROXY protocol off, the same refusal (a balancer sending headers to a server that is
    // not configured for it gets told).
    let off = Ferry::start(&[]);
    let mut c = off.connect();
    assert_eq!(c.read().code.0, 220);
    c.send_raw(b"PROXY TCP4 127.0.0.5 127.0.0.1 40001 21\r\n");
    assert_eq!(c.read().code.0, 500);
    assert!(c.try_read().is_none());

    let log = f.stderr() + &off.stderr();
    assert_eq!(log.matches("PROXY header from an untrusted address refused").count(), 3, "{log}");
    assert!(!log.contains("logged in"), "{log}");
    assert!(!log.contains("peer=127.0.0.5"), "{log}");
}

#[test]
fn a_trusted_address_without_a_valid_header_is_closed_before_the_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[proxy_protocol]\ntrusted = [\"127.0.0.3\"]\nheader_timeout_secs = 1\n");
    let f = Ferry::start(&["--config", cfg.to_str().unwrap()]);
    let local = encode(Version::V2, &Addresses::Local);
    for (what, bytes) in [
        ("garbage", &b"USER alice\r\nPASS secret\r\n"[..]),
        ("LOCAL", &local[..]),
        ("UNKNOWN", b"PROXY UNKNOWN\r\n"),
        ("bad v1", b"PROXY TCP4 127.0.0.5 127.0.0.1 040001 21\r\n"),
        ("no header", b""),
    ] {
        let started = Instant::now();
        let mut s = via_balancer(f.addr, bytes);
        assert!(closed_without_data(&mut s), "{what}: no greeting, closed");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: {:?}", started.elapsed());
    }
    // Everyone else is served as before.
    let mut c = f.login();
    c.ok("QUIT", 221);
    let log = f.stderr();
    assert_eq!(log.matches("logged in").count(), 1, "{log}");
    assert!(log.contains("no valid PROXY header from a trusted address"), "{log}");
    assert!(log.contains("PROXY LOCAL"), "{log}");
}

#[test]
fn passive_data_through_the_balancer_carries_the_client_header() {
    let f = Ferry::start(&["--proxy-trusted", BALANCER]);
    let mut c = relayed_login(&f, Version::V2, "127.0.0.5:40001");
    c.ok("TYPE I", 200);
    let body = common::random_bytes(100_000, 7);

    // Upload: the balancer relays the data connection with the client's header; someone else's
    // connection through the balancer (another client's header) is refused first.
    let r = c.ok("EPSV", 229);
    let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).unwrap();
    let data_addr = SocketAddr::new(f.addr.ip(), port);
    let mut thief = via_balancer(data_addr, &header(Version::V2, "127.0.0.9:5000", data_addr));
    let mut data = via_balancer(data_addr, &header(Version::V2, "127.0.0.5:40002", data_addr));
    c.ok("STOR up.bin", 150);
    data.write_all(&body).unwrap();
    drop(data);
    assert_eq!(c.read().code.0, 226);
    assert!(closed_without_data(&mut thief));
    assert!(common::read_file(&f.path("up.bin")) == body, "the header is not part of the file");

    // Download, v1 on the data connection this time.
    let r = c.ok("EPSV", 229);
    let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).unwrap();
    let data_addr = SocketAddr::new(f.addr.ip(), port);
    let data = via_balancer(data_addr, &header(Version::V1, "127.0.0.5:40003", data_addr));
    c.ok("RETR up.bin", 150);
    assert!(read_all(data) == body);
    assert_eq!(c.read().code.0, 226);
    c.ok("QUIT", 221);
    assert!(f.stderr().contains("refused passive data connection from a foreign address"));
}

#[test]
fn an_ipv6_client_behind_an_ipv4_balancer() {
    let f = Ferry::start(&["--proxy-trusted", BALANCER]);
    let mut c = relayed_login(&f, Version::V1, "[2001:db8::5]:40001");
    c.send("STAT");
    let stat = c.read();
    assert!(stat.lines.iter().any(|l| l.contains("Connected from 2001:db8::5")), "{stat:?}");
    let r = c.ok("EPSV", 229);
    let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).unwrap();
    let data_addr = SocketAddr::new(f.addr.ip(), port);
    let data =
        via_balancer(data_addr, &header(Version::V2, "[2001:db8::5]:40002", "[2001:db8::1]:21".parse().unwrap()));
    c.ok("NLST", 150);
    read_all(data);
    assert_eq!(c.read().code.0, 226);
}

#[test]
fn per_ip_limits_count_the_header_address() {
    let f = Ferry::start(&["--proxy-trusted", BALANCER, "--max-sessions-per-ip", "1"]);
    let greet = |client: &str| {
        let mut c = Ctrl::connect_stream(via_balancer(f.addr, &header(Version::V2, client, f.addr)));
        let code = c.read().code.0;
        (c, code)
    };
    // Two clients through the same balancer: both served.
    let (_a, code) = greet("127.0.0.5:40001");
    assert_eq!(code, 220);
    let (_b, code) = greet("127.0.0.6:40001");
    assert_eq!(code, 220);
    // The same client again: over its limit.
    let (mut again, code) = greet("127.0.0.5:40002");
    assert_eq!(code, 421);
    assert!(again.try_read().is_none());
    // A direct client is not counted with the balancer's relayed ones.
    let mut direct = f.connect();
    assert_eq!(direct.read().code.0, 220);
}

#[test]
fn bans_apply_to_the_header_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[proxy_protocol]\ntrusted = [\"127.0.0.3\"]\n[limits]\nfailed_login_delay_ms = 10\nmax_failed_login_delay_ms = 10\nban_after_failures = 2\nban_secs = 60\n",
    );
    let f = Ferry::start(&["--config", cfg.to_str().unwrap()]);
    let relay = |client: &str| Ctrl::connect_stream(via_balancer(f.addr, &header(Version::V2, client, f.addr)));
    let mut c = relay("127.0.0.5:40001");
    assert_eq!(c.read().code.0, 220);
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    assert_eq!(c.read().code.0, 421, "banned: told and closed");
    // The banned client is refused through the balancer; other clients, through it or not, are
    // served.
    let mut banned = relay("127.0.0.5:40002");
    assert_eq!(banned.read().code.0, 421);
    let mut other = relay("127.0.0.6:40001");
    assert_eq!(other.read().code.0, 220);
    let mut direct = f.connect();
    assert_eq!(direct.read().code.0, 220);
    assert!(f.stderr().contains("address banned after failed logins"));
}

#[test]
fn implicit_ftps_through_the_balancer_reads_the_header_before_the_handshake() {
    let (dir, cert, key) = common::make_cert();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let (mut child, implicit) =
        common::spawn_implicit_tls(dir.path(), &root, &cert, &key, &["--proxy-trusted", BALANCER], stderr.into());

    let config = common::client_config(&cert);
    let sock = via_balancer(implicit, &header(Version::V2, "127.0.0.5:40001", implicit));
    let conn = rustls::ClientConnection::new(config, "127.0.0.1".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut parser = ferry_proto::reply::ReplyParser::new();
    let mut ask = |tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>, line: &str| {
        if !line.is_empty() {
            tls.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        }
        let mut buf = [0u8; 512];
        loop {
            if let Some(r) = parser.next_reply().unwrap() {
                return r.code.0;
            }
            let n = tls.read(&mut buf).unwrap();
            assert!(n > 0, "closed");
            parser.feed(&buf[..n]);
        }
    };
    assert_eq!(ask(&mut tls, ""), 220);
    assert_eq!(ask(&mut tls, "USER alice"), 331);
    assert_eq!(ask(&mut tls, "PASS secret"), 230);
    assert_eq!(ask(&mut tls, "QUIT"), 221);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("logged in") && l.contains("peer=127.0.0.5:40001")), "{log}");
}
