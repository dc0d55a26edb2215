//! End-to-end: hostile input. The server answers or closes cleanly, never panics (the harness
//! checks its log on drop), loses no file, and keeps serving other clients.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{read_file, rss_kib, Ferry};

fn still_serves(f: &Ferry) {
    let mut c = f.login();
    c.ok("NOOP", 200);
}

#[test]
fn path_traversal_never_leaves_the_root() {
    let f = Ferry::start(&[]);
    let outside = f.root.parent().unwrap().join("outside-secret");
    std::fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, f.path("abs-link")).unwrap();
    std::os::unix::fs::symlink("../outside-secret", f.path("rel-link")).unwrap();
    std::os::unix::fs::symlink(f.root.parent().unwrap(), f.path("dir-link")).unwrap();
    let mut c = f.login();
    for p in [
        "../outside-secret",
        "/../outside-secret",
        "../../../../etc/passwd",
        "/etc/passwd",
        "abs-link",
        "rel-link",
        "dir-link/outside-secret",
    ] {
        c.ok(&format!("SIZE {p}"), 550);
        c.epsv_connect();
        c.ok(&format!("RETR {p}"), 550);
    }
    c.ok("CWD ../../..", 250);
    assert_eq!(c.ok("PWD", 257).lines[0], "\"/\" is the current directory");
    c.ok("CWD dir-link", 550);
    // Writes through links fail too and leave the outside file alone.
    c.epsv_connect();
    c.ok("STOR rel-link", 550);
    c.ok("DELE ../outside-secret", 550);
    c.ok("RNFR abs-link", 350);
    c.ok("RNTO ../stolen", 250); // renames the link itself, inside the root: "/stolen"
    assert!(f.path("stolen").symlink_metadata().is_ok());
    assert_eq!(read_file(&outside), b"secret");
    c.ok("MKD ../escape", 257);
    assert!(f.path("escape").is_dir() && !f.root.parent().unwrap().join("escape").exists());
}

#[test]
fn port_bounce_to_another_address_is_refused() {
    let f = Ferry::start(&[]);
    let victim = TcpListener::bind("127.0.0.2:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let p = victim.local_addr().unwrap().port();
    let mut c = f.login();
    c.ok(&format!("PORT 127,0,0,2,{},{}", p >> 8, p & 255), 504);
    c.ok(&format!("EPRT |1|127.0.0.2|{p}|"), 504);
    c.ok("PORT 127,0,0,1,0,25", 504);
    c.ok("LIST", 425);
    std::thread::sleep(Duration::from_millis(200));
    assert!(victim.accept().is_err(), "nothing connected to the victim");
}

#[test]
fn passive_connection_from_another_address_gets_nothing() {
    let f = Ferry::start(&["--data-timeout", "3"]);
    std::fs::write(f.path("secret"), b"for alice only").unwrap();
    let mut c = f.login();
    let r = c.ok("EPSV", 229);
    let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).unwrap();
    // A thief binds 127.0.0.2 and connects first.
    let thief = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    thief.bind(&"127.0.0.2:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    thief.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut thief: TcpStream = thief.into();
    thief.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send("RETR secret");
    // The real client still gets its data.
    let mut d = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(c.read().code.0, 150);
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"for alice only");
    assert_eq!(c.read().code.0, 226);
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the thief got {stolen:?}");
}

#[test]
fn a_64k_line_without_crlf() {
    let f = Ferry::start(&[]);
    let mut c = f.connect();
    c.read();
    c.send_raw(&vec![b'A'; 64 * 1024]);
    assert_eq!(c.read().code.0, 500);
    c.send_raw(b"\r\n");
    c.ok("USER alice", 331);
    still_serves(&f);
}

#[test]
fn nul_and_invalid_utf8() {
    let f = Ferry::start(&[]);
    let mut c = f.login();
    c.send_raw(b"RETR a\0b\r\n");
    assert_eq!(c.read().code.0, 501);
    c.send_raw(b"CWD \xff\xfe\xfd\r\n");
    assert_eq!(c.read().code.0, 501);
    // Telnet negotiation is stripped; what is left holds a NUL, which no command may (501).
    c.send_raw(b"\xff\xfb\x01\x00\x01\x02\r\n");
    assert_eq!(c.read().code.0, 501);
    c.send_raw(b"\r\n");
    assert_eq!(c.read().code.0, 500);
    c.ok("NOOP", 200);
}

#[test]
fn dropped_connections_mid_command_and_mid_transfer() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("big"), vec![9u8; 32 << 20]).unwrap();
    {
        let mut c = f.connect();
        c.read();
        c.send_raw(b"USER ali");
    }
    {
        let mut c = f.login();
        let mut d = c.epsv_connect();
        c.ok("RETR big", 150);
        let mut buf = [0u8; 4096];
        d.read_exact(&mut buf).unwrap();
        // Both connections vanish mid-transfer.
    }
    for _ in 0..20 {
        let _ = TcpStream::connect(f.addr);
    }
    std::thread::sleep(Duration::from_millis(300));
    still_serves(&f);
}

#[test]
fn interrupted_upload_over_an_existing_file_keeps_it() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("precious"), b"original content").unwrap();
    // ABOR during STOR.
    {
        let mut c = f.login();
        let mut d = c.epsv_connect();
        c.ok("STOR precious", 150);
        d.write_all(&vec![0u8; 1 << 20]).unwrap();
        c.send("ABOR");
        assert_eq!(c.read().code.0, 426);
        assert_eq!(c.read().code.0, 226);
        drop(d);
        assert_eq!(read_file(&f.path("precious")), b"original content");
    }
    // The control connection drops during STOR.
    {
        let mut c = f.login();
        let mut d = c.epsv_connect();
        c.ok("STOR precious", 150);
        d.write_all(&vec![0u8; 1 << 20]).unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        drop(d);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_file(&f.path("precious")), b"original content");
    let names: Vec<_> = std::fs::read_dir(&f.root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
    still_serves(&f);
}

#[test]
fn slow_bytes_and_many_short_connections() {
    // The per-address limits are tested in limits.rs; here every connection comes from 127.0.0.1,
    // and 200 connections within milliseconds are a flood the startups limit would rightly thin.
    let f = Ferry::start(&["--max-sessions-per-ip", "1000", "--max-startups-per-ip", "1000"]);
    let mut c = f.connect();
    c.read();
    for b in b"USER alice\r\n" {
        c.send_raw(&[*b]);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.read().code.0, 331);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let addr = f.addr;
            std::thread::spawn(move || {
                for _ in 0..25 {
                    if let Ok(mut s) = TcpStream::connect(addr) {
                        let _ = s.write_all(b"NOOP\r\nQUIT\r\n");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    still_serves(&f);
}

#[test]
fn slowloris_is_cut_at_the_login_timeout() {
    let f = Ferry::start(&["--login-timeout", "2"]);
    let mut slow = f.connect();
    slow.read();
    let start = std::time::Instant::now();
    // One byte every 200 ms, never a full line.
    let mut closed = false;
    for _ in 0..30 {
        if slow.stream.write_all(b"U").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        slow.stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let r = slow.stream.read(&mut buf);
        slow.stream.set_nonblocking(false).unwrap();
        if let Ok(n) = r {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if n == 0 || text.starts_with("421") {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the trickling client was disconnected");
    assert!(start.elapsed() < Duration::from_secs(5));
    still_serves(&f);
}

#[test]
fn thousands_of_connections_and_a_port_flood_keep_memory_bounded() {
    let f = Ferry::start(&["--max-sessions-per-ip", "64"]);
    let before = rss_kib(f.pid());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = f.addr;
            std::thread::spawn(move || {
                for i in 0..500 {
                    if let Ok(mut s) = TcpStream::connect(addr) {
                        if i % 2 == 0 {
                            let _ = s.write_all(b"USER x\r\n");
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // The dropped connections are noticed and uncounted; then a normal session gets in.
    let mut waited = 0;
    let mut c = loop {
        let mut c = f.connect();
        if c.read().code.0 == 220 {
            break c;
        }
        waited += 1;
        assert!(waited < 50, "the server never freed the dropped connections' slots");
        std::thread::sleep(Duration::from_millis(100));
    };
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    for i in 0..2000u32 {
        let port = 1024 + i % 1000;
        c.send(&format!("PORT 127,0,0,1,{},{}", port / 256, port % 256));
    }
    for _ in 0..2000 {
        assert_eq!(c.read().code.0, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(f.pid());
    assert!(after < before + 64 * 1024, "RSS grew from {before} KiB to {after} KiB");
    still_serves(&f);
}

#[test]
fn a_client_that_never_reads_its_data_connection_times_out() {
    let f = Ferry::start(&["--data-timeout", "2"]);
    std::fs::write(f.path("big"), vec![5u8; 64 << 20]).unwrap();
    let mut c = f.login();
    let d = c.epsv_connect();
    c.ok("RETR big", 150);
    // Never read `d`: the server's writes stall, and the data timeout ends the transfer.
    let start = std::time::Instant::now();
    assert_eq!(c.read().code.0, 426);
    assert!(start.elapsed() >= Duration::from_secs(2));
    drop(d);
    c.ok("NOOP", 200);
    still_serves(&f);
}

#[test]
fn tls_handshakes_cut_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cert", "self-signed", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let f = Ferry::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    // A ClientHello header promising more bytes than ever come, then silence or a close.
    let partial_hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    for close_early in [true, false] {
        let mut c = f.connect();
        c.read();
        c.ok("AUTH TLS", 234);
        c.send_raw(partial_hello);
        if close_early {
            drop(c);
        } else {
            c.send_raw(b"garbage that is not TLS at all\r\n\r\n");
            let mut buf = [0u8; 64];
            let _ = c.stream.read(&mut buf);
        }
    }
    // The server answered neither as if they were FTP, and serves others.
    still_serves(&f);
}
