//! End-to-end FTPS (RFC 4217): policies, session reuse on data connections, implicit TLS,
//! certificate reload, and the `ferry` client's --tls against `ferry serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{client_config, make_cert, protected_login, read_file, tls_wrap, Ctrl, Ferry};

fn start(cert: &Path, key: &Path, extra: &[&str]) -> Ferry {
    let mut args = vec!["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    Ferry::start(&args)
}

fn ferry_cli(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).current_dir(cwd).output().unwrap()
}

#[test]
fn feat_advertises_tls_and_protected_transfers_work() {
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &[]);
    std::fs::write(f.path("secret.txt"), b"over tls").unwrap();
    let config = client_config(&cert);
    let mut c = Ctrl::greeted(f.addr);
    let feat = c.ok("FEAT", 211);
    for x in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feat.lines.iter().any(|l| l == x), "{x} in {feat:?}");
    }
    c.ok("PBSZ 0", 503);
    c.auth_tls(&config);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("PBSZ 0", 200);
    c.ok("PROT S", 536);
    c.ok("PROT P", 200);
    c.ok("CCC", 534);
    // Same client configuration: the data handshake resumes the control session.
    let data = c.epsv_connect();
    c.ok("RETR secret.txt", 150);
    let mut d = tls_wrap(data, &config);
    let mut got = Vec::new();
    let _ = d.read_to_end(&mut got);
    assert_eq!(got, b"over tls");
    assert_eq!(d.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    assert_eq!(c.read().code.0, 226);
    // Optional policy: plain FTP still works.
    let mut plain = f.login();
    plain.ok("NOOP", 200);
}

#[test]
fn a_data_connection_that_does_not_resume_the_session_is_refused() {
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &[]);
    std::fs::write(f.path("secret.txt"), b"for the session owner").unwrap();
    let mut c = Ctrl::greeted(f.addr);
    c.auth_tls(&client_config(&cert));
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("PBSZ 0", 200);
    c.ok("PROT P", 200);
    let data = c.epsv_connect();
    c.ok("RETR secret.txt", 150);
    // A fresh configuration: a full handshake, as a thief who raced to the port would make.
    let conn = rustls::ClientConnection::new(client_config(&cert), "127.0.0.1".try_into().unwrap()).unwrap();
    let mut d = rustls::StreamOwned::new(conn, data);
    let mut got = Vec::new();
    let _ = d.read_to_end(&mut got);
    assert!(got.is_empty(), "no data without session reuse");
    let r = c.read();
    assert_eq!(r.code.0, 522, "{r:?}");
    assert!(r.lines[0].contains("resume"), "the reply names the fix: {r:?}");
    c.ok("NOOP", 200);
}

#[test]
fn tls12_tickets_resume_only_on_their_own_control_connection() {
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &[]);
    std::fs::write(f.path("f.txt"), b"twelve").unwrap();
    let tls12 = || ferry_testkit::client_config_with(&cert, &[&rustls::version::TLS12]).unwrap();
    // A's data connection resumes A's session from the ticket A's handshake was given (Go's TLS
    // client, rclone's, resumes TLS 1.2 in no other way).
    let a_config = tls12();
    let mut a = protected_login(&f, &a_config);
    let data = a.epsv_connect();
    a.ok("RETR f.txt", 150);
    let mut d = tls_wrap(data, &a_config);
    assert_eq!(d.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(d.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    let mut got = Vec::new();
    let _ = d.read_to_end(&mut got);
    assert_eq!(got, b"twelve");
    assert_eq!(a.read().code.0, 226);
    // B's data connection, made by a thief holding A's ticket: B's key cannot open it, the
    // handshake is a full one, and the connection is refused.
    let mut b = protected_login(&f, &tls12());
    let data = b.epsv_connect();
    b.ok("RETR f.txt", 150);
    let conn = rustls::ClientConnection::new(a_config.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
    let mut stolen = rustls::StreamOwned::new(conn, data);
    let mut got = Vec::new();
    let _ = stolen.read_to_end(&mut got);
    assert!(got.is_empty(), "no data for a ticket of another control connection");
    let r = b.read();
    assert_eq!(r.code.0, 522, "{r:?}");
    b.ok("NOOP", 200);
    a.ok("NOOP", 200);
}

#[test]
fn tls13_downloads_keep_resuming_for_a_client_that_spends_each_ticket_once() {
    // rustls spends a TLS 1.3 ticket per resumption and the control connection brings four:
    // every download's data connection must bring a new one, or the fifth is refused.
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &[]);
    std::fs::write(f.path("f.txt"), b"thirteen").unwrap();
    let tls13 = ferry_testkit::client_config_with(&cert, &[&rustls::version::TLS13]).unwrap();
    let mut c = protected_login(&f, &tls13);
    for i in 0..12 {
        let data = c.epsv_connect();
        c.ok("RETR f.txt", 150);
        let mut d = tls_wrap(data, &tls13);
        let mut got = Vec::new();
        let _ = d.read_to_end(&mut got);
        assert_eq!(d.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(d.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "download {i}");
        assert_eq!(got, b"thirteen", "download {i}");
        assert_eq!(c.read().code.0, 226, "download {i}");
    }
}

#[test]
fn the_data_handshake_may_come_before_or_after_the_command() {
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &[]);
    let body = common::random_bytes(300_000, 16);
    std::fs::write(f.path("f.bin"), &body).unwrap();
    let config = client_config(&cert);
    let mut c = protected_login(&f, &config);
    // Four data connections, each resuming with one of rustls's single-use TLS 1.3 tickets (the
    // control connection's four; each download's connection brings one more).
    for tls_first in [true, false] {
        // Download.
        let data = c.epsv_connect();
        let mut d = if tls_first {
            // asyncio clients (aioftp): connect, complete the handshake, then send the command.
            let d = tls_wrap(data, &config);
            c.ok("RETR f.bin", 150);
            d
        } else {
            c.ok("RETR f.bin", 150);
            tls_wrap(data, &config)
        };
        assert_eq!(d.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        let mut got = Vec::new();
        let _ = d.read_to_end(&mut got);
        assert!(got == body, "tls_first={tls_first}: {} bytes", got.len());
        assert_eq!(c.read().code.0, 226, "tls_first={tls_first}");
        // Upload.
        let name = format!("up-{tls_first}.bin");
        let data = c.epsv_connect();
        let mut d = if tls_first {
            let d = tls_wrap(data, &config);
            c.ok(&format!("STOR {name}"), 150);
            d
        } else {
            c.ok(&format!("STOR {name}"), 150);
            tls_wrap(data, &config)
        };
        d.write_all(&body).unwrap();
        d.conn.send_close_notify();
        d.flush().unwrap();
        if tls_first {
            // The server could not know the direction at the handshake and sent a TLS 1.3 ticket
            // (curl needs one): a client that handshakes first reads to the server's close, as
            // aioftp's and curl's do. A client that sent the command first gets no ticket and may
            // close without reading anything (the other branch).
            let mut rest = Vec::new();
            let _ = d.read_to_end(&mut rest);
            assert!(rest.is_empty(), "no data on an upload's connection");
        }
        drop(d);
        assert_eq!(c.read().code.0, 226, "tls_first={tls_first}");
        assert!(read_file(&f.path(&name)) == body, "tls_first={tls_first}");
        // The upload's digest, computed beside it (TLS uploads take the copying path).
        let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
        let hash = c.ok(&format!("HASH {name}"), 213);
        assert_eq!(hash.lines[0], format!("SHA-256 0-{} {sha256} {name}", body.len()));
    }
}

#[test]
fn required_policy() {
    let (_d, cert, key) = make_cert();
    let f = start(&cert, &key, &["--tls-policy", "required"]);
    let mut plain = Ctrl::greeted(f.addr);
    plain.ok("USER alice", 530);
    let config = client_config(&cert);
    let mut c = Ctrl::greeted(f.addr);
    c.auth_tls(&config);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("PBSZ 0", 200);
    c.ok("PROT C", 534);
    let _d = c.epsv_connect();
    c.ok("LIST", 521);
    c.ok("PROT P", 200);
    let data = c.epsv_connect();
    c.ok("NLST", 150);
    let mut d = tls_wrap(data, &config);
    let mut got = Vec::new();
    let _ = d.read_to_end(&mut got);
    assert_eq!(c.read().code.0, 226);
}

#[test]
fn per_user_tls_requirement() {
    let (dir, cert, key) = make_cert();
    let users = dir.path().join("users.toml");
    let add = |name: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["user", "add", name, "--password-stdin", "--users"])
            .arg(&users)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
        assert!(child.wait().unwrap().success());
    };
    add("bob");
    let text = std::fs::read_to_string(&users).unwrap().replace("name = \"bob\"", "name = \"bob\"\ntls = \"required\"");
    std::fs::write(&users, text).unwrap();
    let f = start(&cert, &key, &["--users", users.to_str().unwrap()]);
    let mut plain = Ctrl::greeted(f.addr);
    plain.ok("USER bob", 331);
    let r = plain.ok("PASS pw", 530);
    assert!(r.lines[0].contains("TLS"), "{r:?}");
    let mut c = Ctrl::greeted(f.addr);
    c.auth_tls(&client_config(&cert));
    c.ok("USER bob", 331);
    c.ok("PASS pw", 230);
    let _d = c.epsv_connect();
    c.ok("LIST", 521);
}

#[test]
fn ferry_client_explicit_and_implicit() {
    let (d, cert, key) = make_cert();
    let f = start(&cert, &key, &["--tls-policy", "required"]);
    let work = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(work.path().join("up.bin"), &data).unwrap();
    let ca = cert.to_str().unwrap();
    let u = format!("ftp://alice:secret@{}", f.addr);
    let out = ferry_cli(&["--tls", "--cacert", ca, "put", "up.bin", &format!("{u}/up.bin")], work.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_file(&f.path("up.bin")), data);
    let out = ferry_cli(
        &["--tls", "--cacert", ca, "get", "--segments", "3", &format!("{u}/up.bin"), "back.bin"],
        work.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_file(&work.path().join("back.bin")), data);
    // Without --tls the server refuses the login; without the CA the client refuses the server.
    assert_eq!(ferry_cli(&["ls", &format!("{u}/")], work.path()).status.code(), Some(4));
    assert_eq!(ferry_cli(&["--tls", "ls", &format!("{u}/")], work.path()).status.code(), Some(3));
    drop(d);
}

#[test]
fn implicit_listener_and_sighup_reload() {
    let (_d, cert, key) = make_cert();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), b"implicit").unwrap();
    let (mut child, implicit) =
        common::spawn_implicit_tls(dir.path(), &root, &cert, &key, &[], std::process::Stdio::null());
    let fingerprint = |config: &Arc<rustls::ClientConfig>| {
        let sock = TcpStream::connect(implicit).unwrap();
        let mut s = tls_wrap(sock, config);
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"220"), "greeting over TLS");
        s.conn.peer_certificates().unwrap()[0].as_ref().to_vec()
    };
    let first = fingerprint(&client_config(&cert));
    let work = tempfile::tempdir().unwrap();
    let out = ferry_cli(
        &["--cacert", cert.to_str().unwrap(), "get", &format!("ftps://alice:secret@{implicit}/f"), "f"],
        work.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_file(&work.path().join("f")), b"implicit");
    // Replace the pair on disk by renaming new files over them (as certbot and most tools do: new
    // inodes, which the sandbox must let the server read), SIGHUP, and new connections see the
    // new certificate.
    let (_d2, cert2, key2) = make_cert();
    for (new, old) in [(&cert2, &cert), (&key2, &key)] {
        let tmp = old.with_extension("new");
        std::fs::copy(new, &tmp).unwrap();
        std::fs::rename(&tmp, old).unwrap();
    }
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    let mut second = first.clone();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        second = fingerprint(&client_config(&cert2));
        if second != first {
            break;
        }
    }
    assert_ne!(first, second, "the reloaded certificate is served");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}
