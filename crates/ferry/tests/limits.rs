//! End-to-end: brute-force protection (growing delays, temporary bans), per-account session,
//! bandwidth and quota limits, and the per-account FXP opt-in — with timings kept short through
//! configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{read_file, Ctrl, Ferry};

fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("ferry.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A users file with `name`/`pw` accounts, each followed by extra TOML lines.
fn users(dir: &Path, accounts: &[(&str, &str)]) -> PathBuf {
    let file = dir.join("users.toml");
    for (name, _) in accounts {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["user", "add", name, "--password-stdin", "--users"])
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
        assert!(child.wait().unwrap().success());
    }
    let mut text = std::fs::read_to_string(&file).unwrap();
    for (name, extra) in accounts {
        text = text.replace(&format!("name = \"{name}\"\n"), &format!("name = \"{name}\"\n{extra}\n"));
    }
    std::fs::write(&file, text).unwrap();
    file
}

fn connect_from(addr: SocketAddr, source: &str) -> Ctrl {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let stream: TcpStream = s.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Ctrl::connect_stream(stream)
}

#[test]
fn failed_logins_slow_down_then_ban_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[limits]\nfailed_login_delay_ms = 100\nmax_failed_login_delay_ms = 2000\nban_after_failures = 4\nban_secs = 2\nmax_login_failures = 10\n",
    );
    let f = Ferry::start(&["--config", cfg.to_str().unwrap()]);
    let mut c = f.connect();
    c.read();
    let mut took = Vec::new();
    for _ in 0..3 {
        c.ok("USER alice", 331);
        let t = Instant::now();
        c.ok("PASS wrong", 530);
        took.push(t.elapsed());
    }
    // 100 ms, 200 ms, 400 ms: each failure from the address doubles the delay.
    assert!(took[0] >= Duration::from_millis(90), "{took:?}");
    assert!(took[2] >= Duration::from_millis(380), "{took:?}");
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    assert_eq!(c.read().code.0, 421, "banned: told and closed");
    assert!(c.try_read().is_none());
    // The address is refused before the greeting; another address is served.
    let mut again = f.connect();
    assert_eq!(again.read().code.0, 421);
    let mut other = connect_from(f.addr, "127.0.0.2");
    assert_eq!(other.read().code.0, 220);
    // The ban expires.
    std::thread::sleep(Duration::from_millis(2200));
    let mut later = f.login();
    later.ok("NOOP", 200);
    assert!(f.stderr().contains("address banned"), "the ban is logged");
}

#[test]
fn per_account_session_limit() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("solo", "max_sessions = 1")]);
    let f = Ferry::start(&["--users", u.to_str().unwrap()]);
    let login = |f: &Ferry| {
        let mut c = f.connect();
        c.read();
        c.ok("USER solo", 331);
        c.send("PASS pw");
        (c.read().code.0, c)
    };
    let (code, first) = login(&f);
    assert_eq!(code, 230);
    let (code, _) = login(&f);
    assert_eq!(code, 530);
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = login(&f);
    assert_eq!(code, 230);
}

#[test]
fn bandwidth_limits_pace_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("slow", "download_bps = 200000\nupload_bps = 200000"), ("fast", "")]);
    let f = Ferry::start(&["--users", u.to_str().unwrap()]);
    std::fs::write(f.path("f"), vec![1u8; 300_000]).unwrap();
    let session = |name: &str| {
        let mut c = f.connect();
        c.read();
        c.ok(&format!("USER {name}"), 331);
        c.ok("PASS pw", 230);
        c
    };
    let mut slow = session("slow");
    let t = Instant::now();
    assert_eq!(slow.download("RETR f").len(), 300_000);
    let down = t.elapsed();
    let t = Instant::now();
    assert_eq!(slow.upload("STOR g", &vec![2u8; 300_000]).code.0, 226);
    let up = t.elapsed();
    // 300 kB at 200 kB/s takes at least 1.5 s less the first chunk's burst.
    assert!(down >= Duration::from_millis(1300), "download took {down:?}");
    assert!(up >= Duration::from_millis(1300), "upload took {up:?}");
    assert_eq!(read_file(&f.path("g")), vec![2u8; 300_000]);
    let mut fast = session("fast");
    let t = Instant::now();
    fast.download("RETR f");
    assert!(t.elapsed() < down, "the unlimited account is not paced");
}

#[test]
fn quota_refuses_with_552_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("q", "quota_bytes = 1000\nquota_files = 3")]);
    let f = Ferry::start(&["--users", u.to_str().unwrap()]);
    std::fs::write(f.path("keep"), vec![7u8; 300]).unwrap();
    let mut c = f.connect();
    c.read();
    c.ok("USER q", 331);
    c.ok("PASS pw", 230);
    assert_eq!(c.upload("STOR a", &[1u8; 500]).code.0, 226);
    // 300 + 500 used; 600 more does not fit: refused, and the partial file is gone.
    let r = c.upload("STOR b", &[2u8; 600]);
    assert_eq!(r.code.0, 552, "{r:?}");
    assert!(!f.path("b").exists());
    // Appending past the quota leaves the file as it was.
    let r = c.upload("APPE a", &[3u8; 400]);
    assert_eq!(r.code.0, 552, "{r:?}");
    assert_eq!(read_file(&f.path("a")), vec![1u8; 500]);
    // Replacing a file counts only the difference.
    assert_eq!(c.upload("STOR a", &[4u8; 650]).code.0, 226);
    // Deleting frees space; the file count is enforced too.
    c.ok("DELE a", 250);
    assert_eq!(c.upload("STOR c", &[5u8; 10]).code.0, 226);
    assert_eq!(c.upload("STOR d", &[5u8; 10]).code.0, 226);
    c.epsv_connect();
    c.ok("STOR e", 552);
    assert_eq!(read_file(&f.path("keep")), vec![7u8; 300]);
}

#[test]
fn segmented_uploads_reserve_their_quota_at_begin() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("q", "quota_bytes = 1000")]);
    let f = Ferry::start(&["--users", u.to_str().unwrap()]);
    let session = || {
        let mut c = f.connect();
        c.read();
        c.ok("USER q", 331);
        c.ok("PASS pw", 230);
        c.ok("TYPE I", 200);
        c
    };
    let (mut a, mut b) = (session(), session());
    a.ok("SITE SEGMENT BEGIN 1200 big.bin", 552);
    a.ok("SITE SEGMENT BEGIN 700 seg.bin", 200);
    // The 700 bytes are held: another session's upload finds only 300 left.
    assert_eq!(b.upload("STOR other", &[1u8; 400]).code.0, 552);
    assert!(!f.path("other").exists());
    assert_eq!(b.upload("STOR small", &[2u8; 300]).code.0, 226);
    // ABORT gives the room back.
    a.ok("SITE SEGMENT ABORT seg.bin", 250);
    assert_eq!(b.upload("STOR other", &[3u8; 400]).code.0, 226);
    // 700 used: a 300-byte segmented upload fits exactly, its segment lands, END publishes it.
    a.ok("SITE SEGMENT BEGIN 300 seg2.bin", 200);
    let mut s = session();
    s.ok("REST 0", 350);
    assert_eq!(s.upload("STOR seg2.bin", &[4u8; 300]).code.0, 226);
    a.ok("SITE SEGMENT END seg2.bin", 250);
    assert_eq!(read_file(&f.path("seg2.bin")), vec![4u8; 300]);
    // Settled once: the quota is full.
    assert_eq!(b.upload("STOR one", &[5u8; 1]).code.0, 552);
}

#[test]
fn fxp_is_per_account_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("fxp", "allow_fxp = true"), ("plain", "")]);
    let f = Ferry::start(&["--users", u.to_str().unwrap()]);
    std::fs::write(f.path("x"), b"third party").unwrap();
    let third = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let p = third.local_addr().unwrap().port();
    let session = |name: &str| {
        let mut c = f.connect();
        c.read();
        c.ok(&format!("USER {name}"), 331);
        c.ok("PASS pw", 230);
        c
    };
    session("plain").ok(&format!("EPRT |1|127.0.0.2|{p}|"), 504);
    let mut c = session("fxp");
    c.ok(&format!("EPRT |1|127.0.0.2|{p}|"), 200);
    c.send("RETR x");
    let (mut d, _) = third.accept().unwrap();
    assert_eq!(c.read().code.0, 150);
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"third party");
    assert_eq!(c.read().code.0, 226);
    c.ok("PORT 127,0,0,2,0,25", 504);
}

#[test]
fn a_hundred_logged_in_clients_from_one_address_are_served_by_default() {
    // One address is often many people (a NAT, a CI farm): with the defaults, a hundred sessions
    // from 127.0.0.1 that log in one after the other are all served, and stay.
    let f = Ferry::start(&[]);
    let mut sessions: Vec<Ctrl> = (0..100).map(|_| f.login()).collect();
    for c in &mut sessions {
        c.ok("NOOP", 200);
    }
}

#[test]
fn connections_that_have_not_logged_in_are_limited_per_address() {
    let f = Ferry::start(&["--max-startups-per-ip", "4"]);
    let mut waiting: Vec<Ctrl> = (0..4)
        .map(|_| {
            let mut c = f.connect();
            assert_eq!(c.read().code.0, 220);
            c
        })
        .collect();
    // A fifth from the same address, none of the four logged in: refused before the greeting.
    let mut fifth = f.connect();
    let r = fifth.read();
    assert_eq!(r.code.0, 421, "{r:?}");
    assert!(r.lines[0].contains("not logged in"), "{r:?}");
    // Another address is counted on its own.
    let mut other = connect_from(f.addr, "127.0.0.2");
    assert_eq!(other.read().code.0, 220);
    // One of the four logs in: it no longer waits, and a new connection gets its greeting.
    waiting[0].ok("USER alice", 331);
    waiting[0].ok("PASS secret", 230);
    let mut next = f.connect();
    assert_eq!(next.read().code.0, 220);
    // REIN puts it back among those that have not logged in.
    waiting[0].ok("REIN", 220);
    let mut over = f.connect();
    assert_eq!(over.read().code.0, 421);
}

#[test]
fn running_out_of_descriptors_refuses_with_421_and_recovers() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    let stderr_path = dir.path().join("stderr.log");
    // 64 descriptors in all, soft and hard: the server cannot raise its way out.
    let mut child = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--root", "root", "--user", "alice:secret"])
        .args(["--max-startups-per-ip", "1000"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("prlimit (util-linux) runs");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let started = Instant::now();
    let mut c0 = Ctrl::greeted(addr);
    c0.ok("USER alice", 331);
    c0.ok("PASS secret", 230);
    // A hundred more connections: every one is answered at once, 220 while descriptors last, 421
    // after; none waits out a timeout.
    let mut held = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for _ in 0..100 {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut c = Ctrl::connect_stream(s);
        let r = c.try_read().expect("an answer, not a timeout");
        match r.code.0 {
            220 => greeted += 1,
            421 => {
                assert!(r.lines[0].contains("out of resources"), "{r:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
        held.push(c);
    }
    assert!(greeted > 10 && refused > 10, "{greeted} greeted, {refused} refused");
    // No descriptor for a passive listener: 425, and the session goes on.
    c0.ok("PASV", 425);
    c0.ok("NOOP", 200);
    // Descriptors come back: service resumes by itself.
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    c0.ok("PASV", 227);
    let mut again = Ctrl::greeted(addr);
    again.ok("QUIT", 221);
    let elapsed = started.elapsed().as_secs() + 1;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    let warnings = log.matches("out of file descriptors").count() + log.matches("cannot bind a passive port").count();
    assert!(warnings >= 1 && warnings as u64 <= 2 * elapsed, "{warnings} warnings in {elapsed} s:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_flood_of_wrong_passwords_does_not_hold_up_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let u = users(dir.path(), &[("carol", ""), ("dave", "")]);
    // One hashing thread, no delay or ban: only the queue's order decides who waits.
    let cfg = config(
        dir.path(),
        "[process]\nhash_threads = 1\n[limits]\nfailed_login_delay_ms = 0\nban_after_failures = 0\nmax_login_failures = 100\n",
    );
    let f = Ferry::start(&["--users", u.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    // One password check alone, for the scale (a first login: nothing cached).
    let mut c = connect_from(f.addr, "127.0.0.1");
    c.read();
    c.ok("USER dave", 331);
    let t0 = Instant::now();
    c.ok("PASS pw", 230);
    let one = t0.elapsed();
    // Twenty wrong passwords from 127.0.0.2 at once, queued first.
    let flood: Vec<Ctrl> = (0..20)
        .map(|_| {
            let mut c = connect_from(f.addr, "127.0.0.2");
            c.read();
            c.ok("USER carol", 331);
            c.send("PASS wrong");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // carol's first login from another address waits its turn among addresses, not behind all twenty.
    let mut c = connect_from(f.addr, "127.0.0.1");
    c.read();
    c.ok("USER carol", 331);
    let t0 = Instant::now();
    c.ok("PASS pw", 230);
    let waited = t0.elapsed();
    eprintln!("one check {one:?}; carol waited {waited:?} with 20 wrong passwords queued before her");
    // First in, first out she would wait about twenty checks; in turn, about two.
    assert!(waited < one * 6, "carol waited {waited:?}, one check takes {one:?}: behind the flood");
    // The flood's answers, then the hashing thread's 19 MiB of argon2 memory is given back after
    // five idle seconds.
    for mut c in flood {
        assert_eq!(c.read().code.0, 530);
    }
    let busy = common::rss_kib(f.pid());
    std::thread::sleep(Duration::from_millis(7500));
    let idle = common::rss_kib(f.pid());
    eprintln!("RSS after the flood {busy} KiB, after 7.5 s idle {idle} KiB");
    assert!(busy > idle + 10 * 1024, "the argon2 memory stayed: {busy} KiB -> {idle} KiB");
}

#[test]
fn user_add_sets_quotas_and_session_limits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let said = common::user_cmd(
        &["add", "erin", "--quota-bytes", "1000", "--quota-files", "5", "--max-sessions", "1"],
        &file,
        Some("pw"),
    );
    assert!(said.contains("user erin saved"), "{said}");
    let list = Command::new(env!("CARGO_BIN_EXE_ferry")).args(["user", "list", "--users"]).arg(&file).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("quota bytes 1000\tquota files 5\tmax sessions 1"), "{list}");
    // A password change keeps them.
    common::user_cmd(&["add", "erin"], &file, Some("pw2"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("quota_bytes = 1000") && text.contains("max_sessions = 1"), "{text}");
    let f = Ferry::start(&["--users", file.to_str().unwrap()]);
    let mut c = Ctrl::greeted(f.addr);
    c.ok("USER erin", 331);
    c.ok("PASS pw2", 230);
    c.ok("TYPE I", 200);
    assert_eq!(c.upload("STOR big.bin", &[7u8; 2000]).code.0, 552, "over the byte quota");
    assert!(!f.root.join("big.bin").exists(), "the refused upload is undone");
    let mut second = Ctrl::greeted(f.addr);
    second.ok("USER erin", 331);
    second.send("PASS pw2");
    let r = second.read();
    assert!(r.code.0 >= 400, "a second session of erin: {r:?}");
}
