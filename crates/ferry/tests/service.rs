//! End-to-end: running Ferry as a service.
//!
//! - `dist/ferry.service` and `dist/ferry.socket` pass `systemd-analyze verify`; the service
//!   scores 2.0 or better in `systemd-analyze security --offline=true`.
//! - Socket activation through `systemd-socket-activate`.
//! - The readiness protocol systemd's `Type=notify` uses: `READY=1` once serving, `RELOADING=1`
//!   (with `MONOTONIC_USEC`) and `READY=1` around a SIGHUP, `STOPPING=1` on SIGTERM, read from a
//!   datagram socket passed in `NOTIFY_SOCKET` as systemd passes it.
//! - Users: a user added with `ferry user add` while the server runs logs in within 2 seconds,
//!   without a signal; a broken users file keeps the old users; SIGHUP says what it reloaded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{user_cmd, Ctrl, Ferry};

fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/ferry.service")
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    // `verify` checks that ExecStart's program exists: this copy names the binary just built, the
    // rest of the unit is the shipped one, byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ferry.socket");
    std::fs::copy(unit().with_file_name("ferry.socket"), &socket).unwrap();
    let text = std::fs::read_to_string(unit()).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/ferry serve --config /etc/ferry/ferry.toml"));
    let copy = dir.path().join("ferry.service");
    std::fs::write(&copy, text.replace("/usr/bin/ferry", env!("CARGO_BIN_EXE_ferry"))).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .arg(&socket)
        .output()
        .expect("systemd-analyze runs");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.trim().is_empty(), "systemd-analyze verify:\n{all}");
}

#[test]
fn the_unit_scores_2_or_better_in_systemd_analyze_security() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit())
        .output()
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ferry.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} (2.0 or better wanted):\n{text}");
}

/// Waits for one datagram on `sock`.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_readiness_protocol_follows_start_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut f = Ferry::start_with("127.0.0.1:0", &[], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    assert_eq!(next(&sock), "READY=1");
    // Serving when it says so.
    f.login().ok("NOOP", 200);
    let pid = f.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let reloading = next(&sock);
    let usec = reloading.strip_prefix("RELOADING=1\nMONOTONIC_USEC=").expect(&reloading);
    assert!(usec.parse::<u64>().unwrap() > 0);
    assert_eq!(next(&sock), "READY=1");
    assert_eq!(f.stop(), Some(0));
    assert_eq!(next(&sock), "STOPPING=1");
}

/// The reply code of logging in as `user`/`password` on a fresh connection.
fn login_code(f: &Ferry, user: &str, password: &str) -> u16 {
    let mut c = Ctrl::greeted(f.addr);
    c.ok(&format!("USER {user}"), 331);
    c.send(&format!("PASS {password}"));
    c.read().code.0
}

#[test]
fn users_added_while_the_server_runs_log_in_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    user_cmd(&["add", "bob"], &file, Some("bob-pass-1"));
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, "[limits]\nfailed_login_delay_ms = 10\nban_after_failures = 0\n").unwrap();
    let f = Ferry::start(&["--users", file.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert_eq!(login_code(&f, "bob", "bob-pass-1"), 230);
    assert_eq!(login_code(&f, "carol", "carol-pass"), 530);
    // Added while the server runs: no signal, no restart.
    let said = user_cmd(&["add", "carol"], &file, Some("carol-pass"));
    assert!(said.contains("picks the change up within a second"), "{said}");
    let added = Instant::now();
    let in_time = loop {
        if login_code(&f, "carol", "carol-pass") == 230 {
            break added.elapsed();
        }
        assert!(added.elapsed() < Duration::from_secs(2), "carol could not log in 2 s after `ferry user add`");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("carol logged in {in_time:?} after `ferry user add`");
    // A changed password: the old one stops working (no cached verification survives).
    user_cmd(&["passwd", "bob"], &file, Some("bob-pass-2"));
    let changed = Instant::now();
    while login_code(&f, "bob", "bob-pass-2") != 230 {
        assert!(changed.elapsed() < Duration::from_secs(2), "the new password did not take");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(login_code(&f, "bob", "bob-pass-1"), 530, "the old password still works");
    // A broken file: the old users stay, and the log says why.
    std::fs::write(&file, "this is not toml [").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(login_code(&f, "carol", "carol-pass"), 230, "a broken users file took the users away");
    assert!(f.stderr().contains("users file changed but not reloaded (keeping the old users)"), "{}", f.stderr());
    // SIGHUP says what it reloaded, or what it could not.
    assert!(Command::new("kill").args(["-HUP", &f.pid().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f.stderr().contains("SIGHUP: users not reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(f.stderr().contains("SIGHUP: users not reloaded"), "{}", f.stderr());
    assert!(f.stderr().contains(file.to_str().unwrap()), "the failure names the file: {}", f.stderr());
    assert!(f.stderr().contains("SIGHUP: nothing reloaded"), "no TLS, no valid users file: {}", f.stderr());
    assert!(!f.stderr().contains("TLS certificate"), "a server without TLS does not claim to reload it");
}

#[test]
fn socket_activation_serves_the_socket_systemd_passes() {
    // systemd-socket-activate (from the systemd package) does what a .socket unit does: it
    // listens, and starts the service on the first connection, passing the listening socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut activator = Command::new("systemd-socket-activate")
        .args(["--listen", &listen, "--fdname=ftp"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--user", "alice:secret", "--listen", "127.0.0.1:1", "--root"])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .expect("systemd-socket-activate runs");
    // The socket exists before the server: the connection waits in its backlog, and is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match std::net::TcpStream::connect(&listen) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "systemd-socket-activate never listened: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c = Ctrl::connect_stream(stream);
    assert_eq!(c.read().code.0, 220, "greeted by the server systemd-socket-activate started");
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    assert_eq!(c.download("LIST").len(), 0, "an empty root");
    c.ok("QUIT", 221);
    let _ = Command::new("kill").args(["-TERM", &activator.id().to_string()]).status();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut activator.stdout.take().unwrap(), &mut out).unwrap();
    let _ = activator.wait();
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(log.contains("socket activation: serving the listeners systemd passed"), "{log}");
    // The inherited socket replaced --listen.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("listening on")).collect::<Vec<_>>(),
        [format!("listening on {listen}")]
    );
}
