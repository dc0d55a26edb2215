//! End-to-end: hostile input. The server answers or closes cleanly, never panics (the harness
//! checks its log on drop), loses no file, and keeps serving other clients.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{read_file, Ferry};

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
    assert_eq!(c.ok("PWD", 257).lines[0], "\"/\" is the current directory.");
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
    c.send_raw(b"\xff\xfb\x01\x00\x01\x02\r\n");
    assert_eq!(c.read().code.0, 500);
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
    // The per-IP limit is tested elsewhere; here every connection comes from 127.0.0.1.
    let f = Ferry::start(&["--max-sessions-per-ip", "1000"]);
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
