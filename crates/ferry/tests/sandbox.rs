//! End-to-end: the server confines itself (Landlock, seccomp, no new privileges) and gives up
//! root. A bug planted in debug builds (`SITE TESTBUG`, armed by `FERRY_TEST_PLANTED_BUG=1`; see
//! `ferry-server/src/planted.rs`) reads and writes absolute paths without the root's handle,
//! connects anywhere and runs programs: each succeeds with `--no-sandbox` and is refused by the
//! sandbox. Every other end-to-end test runs the server sandboxed too (it is the default).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{proc_status, Ctrl, Ferry};
use ferry_testkit::peers::is_root;

const ARMED: &[(&str, &str)] = &[("FERRY_TEST_PLANTED_BUG", "1")];

fn login(f: &Ferry) -> Ctrl {
    let mut c = f.login();
    c.ok("TYPE I", 200);
    c
}

/// `SITE TESTBUG ...`: the reply's code and text.
fn bug(c: &mut Ctrl, action: &str, target: &str) -> (u16, String) {
    c.send(&format!("SITE TESTBUG {action} {target}"));
    let r = c.read();
    (r.code.0, r.lines.join(" "))
}

/// A listener on a port below 1024 (root only), which active mode never needs.
fn low_port_listener() -> Option<TcpListener> {
    (900..1024).find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
}

#[test]
fn the_planted_bug_works_unconfined_and_is_refused_by_the_sandbox() {
    for sandbox in [false, true] {
        let f = Ferry::start_with("127.0.0.1:0", if sandbox { &[] } else { &["--no-sandbox"] }, ARMED);
        let outside = f.root.parent().unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret\n").unwrap();
        std::fs::write(f.path("inside.txt"), b"inside\n").unwrap();
        let mut c = login(&f);
        let secret = outside.join("secret.txt");
        let planted = outside.join("planted.txt");
        let (read_code, read_text) = bug(&mut c, "READ", secret.to_str().unwrap());
        let (write_code, write_text) = bug(&mut c, "WRITE", planted.to_str().unwrap());
        let (exec_code, exec_text) = bug(&mut c, "EXEC", "/bin/true");
        // Beneath the root, the sandbox allows what the root allows.
        let (inside_code, inside_text) = bug(&mut c, "READ", f.path("inside.txt").to_str().unwrap());
        assert_eq!(inside_code, 200, "reading beneath the root (sandbox {sandbox}): {inside_text}");
        // Active mode's ports (1024 and up) stay reachable.
        let high = TcpListener::bind("127.0.0.1:0").unwrap();
        let (high_code, high_text) = bug(&mut c, "CONNECT", &high.local_addr().unwrap().to_string());
        assert_eq!(high_code, 200, "connecting to an unprivileged port (sandbox {sandbox}): {high_text}");
        let low = low_port_listener();
        let low_result = low.as_ref().map(|l| bug(&mut c, "CONNECT", &l.local_addr().unwrap().to_string()));
        let status = |field| proc_status(f.pid(), field).unwrap_or_default();
        // Landlock's rules need a kernel that has them (5.13+, network rules 6.7+); seccomp and
        // no-new-privileges work everywhere. On an older kernel the Landlock part is skipped, and
        // the log must say why.
        let landlock = f.stderr().contains("sandbox: Landlock fully enforced");
        if sandbox && !landlock {
            let log = f.stderr();
            assert!(log.contains("Landlock partially enforced") || log.contains("Landlock not available"), "{log}");
            eprintln!("this kernel does not enforce every Landlock rule: checking seccomp and no-new-privileges only");
            assert_eq!(exec_code, 550, "exec: {exec_text}");
            assert_eq!(status("NoNewPrivs"), "1");
            assert_eq!(status("Seccomp"), "2");
        } else if sandbox {
            assert_eq!(read_code, 550, "read outside the root: {read_text}");
            assert!(read_text.contains("Permission denied"), "{read_text}");
            assert_eq!(write_code, 550, "write outside the root: {write_text}");
            assert!(!planted.exists(), "the sandbox let a file be written outside the root");
            assert_eq!(exec_code, 550, "exec: {exec_text}");
            assert!(exec_text.contains("Operation not permitted"), "{exec_text}");
            if let Some((code, text)) = &low_result {
                assert_eq!(*code, 550, "connect to a port below 1024: {text}");
                assert!(text.contains("Permission denied"), "{text}");
            }
            assert_eq!(status("NoNewPrivs"), "1");
            assert_eq!(status("Seccomp"), "2");
            let log = f.stderr();
            assert!(log.contains("sandbox: Landlock fully enforced"), "the log names the rules:\n{log}");
            assert!(log.contains("seccomp allow-list of"), "{log}");
        } else {
            // The same calls without the sandbox: the bug is real.
            assert_eq!(read_code, 200, "{read_text}");
            assert_eq!(write_code, 200, "{write_text}");
            assert_eq!(std::fs::read(&planted).unwrap(), b"planted\n");
            assert_eq!(exec_code, 200, "{exec_text}");
            if let Some((code, text)) = &low_result {
                assert_eq!(*code, 200, "{text}");
            }
            assert_eq!(status("Seccomp"), "0");
            assert!(f.stderr().contains("sandbox off"));
        }
        // The session goes on: the refusals hurt nobody.
        c.ok("NOOP", 200);
    }
}

#[test]
fn a_confined_server_transfers_through_its_passive_range() {
    // A passive range is bound under its own Landlock rule; PASV, upload, download, listing.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let range = format!("{port}-{}", port.saturating_add(3));
    let f = Ferry::start(&["--passive-ports", &range]);
    let mut c = login(&f);
    let body = common::random_bytes(300_000, 5);
    let mut data = c.pasv_connect();
    let port_used = data.peer_addr().unwrap().port();
    assert!((port..=port + 3).contains(&port_used), "{port_used} is in the range");
    c.ok("STOR up.bin", 150);
    std::io::Write::write_all(&mut data, &body).unwrap();
    drop(data);
    assert_eq!(c.read().code.0, 226);
    assert!(std::fs::read(f.path("up.bin")).unwrap() == body);
    let log = f.stderr();
    assert!(log.contains(&format!("bind TCP ports 0, {range}")), "{log}");
}

#[test]
fn run_as_switches_to_the_user_and_clears_groups() {
    if !is_root() {
        eprintln!("skipped: needs root (to switch users)");
        return;
    }
    let f = Ferry::start(&["--run-as", "nobody"]);
    // The root must be the user's (it is opened at login, after the switch).
    let root = f.root.clone();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(root.parent().unwrap(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let status = |field| proc_status(f.pid(), field).unwrap_or_default();
    let ids = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(ids(status("Uid")), ["65534"; 4], "real, effective, saved and filesystem uid");
    let gid = nobody_gid();
    assert_eq!(ids(status("Gid")), [gid.as_str(); 4]);
    assert_eq!(status("Groups"), "", "no supplementary groups");
    let mut c = f.login();
    let mut data = c.epsv_connect();
    c.ok("STOR mine.txt", 150);
    std::io::Write::write_all(&mut data, b"owned by nobody\n").unwrap();
    drop(data);
    assert_eq!(c.read().code.0, 226);
    let meta = std::fs::metadata(root.join("mine.txt")).unwrap();
    assert_eq!(meta.uid(), 65534, "the upload belongs to the run_as user");
    assert!(f.stderr().contains("switched to user"), "{}", f.stderr());
    assert!(!f.stderr().contains("running as root"), "no root warning once run_as is set");
}

/// nobody's primary group id, from /etc/passwd (65534 on Debian: nogroup).
fn nobody_gid() -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.starts_with("nobody:")).unwrap();
    line.split(':').nth(3).unwrap().to_owned()
}

#[test]
fn root_without_run_as_says_so_in_its_first_log_line() {
    if !is_root() {
        eprintln!("skipped: the warning is for servers started as root");
        return;
    }
    let f = Ferry::start(&[]);
    let log = f.stderr();
    let first = log.lines().next().unwrap_or_default();
    assert!(first.contains("running as root") && first.contains("run_as"), "first line: {first}");
}

#[test]
fn run_as_a_missing_user_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "a:b", "--run-as", "no-such-user-ferry", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run_as \"no-such-user-ferry\": no such user"), "{err}");
    assert!(!Path::new(&dir.path().join("ferry-users.toml")).exists());
}
