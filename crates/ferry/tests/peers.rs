//! Interop: the `ferry` client against real vsftpd and Pure-FTPd servers.
//!
//! Each test starts its own server process (see `peers/servers.rs`) on a free port and drives it
//! with the `ferry` binary. vsftpd has no MLSD, so the client lists with `LIST -a` and parses the
//! `ls -l` output; Pure-FTPd has MLSD. Every scenario runs against both (`vsftpd::*` and
//! `pureftpd::*`). The servers come from `scripts/install-peer-servers.sh`; without them these
//! tests fail and say so.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;
use common::{assert_trees_equal, random_bytes, Ferry};

#[path = "peers/servers.rs"]
mod servers;

#[path = "peers/pyftpdlib.rs"]
mod pyftpdlib;

use std::path::Path;
use std::process::{Command, Output};

use servers::{Kind, Peer};

/// Runs `ferry` in `cwd` (also its HOME, so no ~/.netrc interferes), with a 10 s timeout.
fn ferry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--timeout", "10"])
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("ferry runs")
}

/// Runs `ferry`, asserts success, returns (stdout, stderr).
fn ok(args: &[&str], cwd: &Path) -> (String, String) {
    let out = ferry(args, cwd);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "ferry {args:?} failed ({}):\n{stderr}\n{stdout}", out.status);
    (stdout, stderr)
}

/// Byte-exact comparison with a useful message (not two megabytes of numbers).
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes, expected {}; first difference at byte {first}", got.len(), want.len());
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The numbers in `text` right after `prefix`.
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Runs each scenario against both servers: `vsftpd::name` and `pureftpd::name`.
macro_rules! against_both {
    ($($name:ident),* $(,)?) => {
        mod vsftpd {
            $( #[test] fn $name() { super::$name(super::Kind::Vsftpd) } )*
        }
        mod pureftpd {
            $( #[test] fn $name() { super::$name(super::Kind::PureFtpd) } )*
        }
    };
}

against_both!(
    ls_plain_long_and_json,
    put_then_get_is_byte_exact,
    get_continue_resumes_a_truncated_copy,
    put_continue_resumes_a_partial_upload,
    get_with_four_segments,
    active_mode_get_and_put,
    mirror_reverse_then_back,
    ipv6_loopback,
    trace_names_the_data_port,
    remote_file_operations_and_exit_codes,
    put_segments_falls_back_to_one_stream,
    copy_of_a_missing_source_leaves_nothing,
);

fn ls_plain_long_and_json(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    peer.seed("/ls/a b.txt", b"hello\n");
    peer.seed("/ls/big.bin", &random_bytes(1_234_567, 1));
    peer.seed("/ls/sub/inner", b"x");
    let (stdout, stderr) = ok(&["--trace", "ls", &peer.url("/ls/")], dir.path());
    assert_eq!(stdout, "a b.txt\nbig.bin\nsub/\n");
    // The premise of testing both: vsftpd has no MLSD (LIST is parsed), Pure-FTPd has it.
    let listing_cmd = match kind {
        Kind::Vsftpd => "C->S  LIST -a",
        Kind::PureFtpd => "C->S  MLSD",
    };
    assert!(stderr.contains(listing_cmd), "expected {listing_cmd:?} in the trace:\n{stderr}");

    let (long, _) = ok(&["ls", "--long", &peer.url("/ls")], dir.path());
    let big = long.lines().find(|l| l.ends_with(" big.bin")).unwrap_or_else(|| panic!("{long}"));
    assert!(big.starts_with("file") && big.contains(" 1234567 "), "{long}");
    assert!(long.lines().any(|l| l.starts_with("dir") && l.ends_with(" sub")), "{long}");

    let (json, _) = ok(&["ls", "--json", &peer.url("/ls/")], dir.path());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{json}");
    assert_eq!(entries[0]["name"], "a b.txt");
    assert_eq!(entries[0]["type"], "file");
    assert_eq!(entries[0]["size"], 6);
    assert_eq!(entries[1]["name"], "big.bin");
    assert_eq!(entries[1]["size"], 1_234_567);
    assert_eq!(entries[1]["mode"], "644");
    assert_eq!(entries[2]["name"], "sub");
    assert_eq!(entries[2]["type"], "dir");
    // The modification time is now, give or take a clock minute (LIST shows minutes only).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let t = entries[1]["modified"].as_u64().unwrap_or_else(|| panic!("no time: {json}"));
    assert!(t.abs_diff(now) < 120, "modified {t}, now {now}: {json}");
}

fn put_then_get_is_byte_exact(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let one = random_bytes(1_048_583, 2);
    let five = random_bytes(4_999_999, 3);
    std::fs::write(dir.path().join("one.bin"), &one).unwrap();
    std::fs::write(dir.path().join("five mb.bin"), &five).unwrap();
    // Two files into a directory URL.
    ok(&["put", "one.bin", "five mb.bin", &peer.url("/")], dir.path());
    assert_same_bytes(&read(&peer.path("/one.bin")), &one, "uploaded one.bin");
    assert_same_bytes(&read(&peer.path("/five mb.bin")), &five, "uploaded five mb.bin");
    ok(&["get", &peer.url("/five%20mb.bin"), "back5"], dir.path());
    assert_same_bytes(&read(&dir.path().join("back5")), &five, "downloaded five mb.bin");
    ok(&["get", &peer.url("/one.bin"), "back1"], dir.path());
    assert_same_bytes(&read(&dir.path().join("back1")), &one, "downloaded one.bin");
    // Replacing an existing file with a shorter one leaves exactly the new bytes.
    std::fs::write(dir.path().join("one.bin"), &five[..1_500_000]).unwrap();
    ok(&["put", "one.bin", &peer.url("/one.bin")], dir.path());
    assert_same_bytes(&read(&peer.path("/one.bin")), &five[..1_500_000], "replaced one.bin");
}

fn get_continue_resumes_a_truncated_copy(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(3_000_001, 4);
    peer.seed("/big", &data);
    std::fs::write(dir.path().join("big"), &data[..1_234_567]).unwrap();
    let (_, trace) = ok(&["--trace", "get", "-c", &peer.url("/big")], dir.path());
    assert!(trace.contains("C->S  REST 1234567"), "{trace}");
    assert!(trace.contains(&format!("closed by server after {} bytes", 3_000_001 - 1_234_567)), "{trace}");
    assert_same_bytes(&read(&dir.path().join("big")), &data, "resumed download");
    // Complete already: nothing to do.
    let (_, said) = ok(&["get", "-c", &peer.url("/big")], dir.path());
    assert!(said.contains("already complete"), "{said}");
}

fn put_continue_resumes_a_partial_upload(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2_500_000, 5);
    // An interrupted upload: the server has the first 777,777 bytes (uploaded by the client, so
    // they belong to the server's user as a real partial upload would).
    std::fs::write(dir.path().join("up"), &data[..777_777]).unwrap();
    ok(&["put", "up", &peer.url("/up")], dir.path());
    std::fs::write(dir.path().join("up"), &data).unwrap();
    let (_, trace) = ok(&["--trace", "put", "-c", "up", &peer.url("/up")], dir.path());
    // Both servers announce REST STREAM: REST+STOR (APPE only as a fallback).
    assert!(trace.contains("C->S  REST 777777") || trace.contains("C->S  APPE"), "{trace}");
    assert!(trace.contains(&format!("closed by client after {} bytes", 2_500_000 - 777_777)), "{trace}");
    assert_same_bytes(&read(&peer.path("/up")), &data, "resumed upload");
}

fn get_with_four_segments(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(4_000_003, 6);
    peer.seed("/seg.bin", &data);
    let (_, trace) = ok(&["--trace", "get", "--segments", "4", &peer.url("/seg.bin"), "seg"], dir.path());
    assert_eq!(trace.matches("C->S  RETR").count(), 4, "{trace}");
    for offset in [1_000_001, 2_000_002, 3_000_003] {
        assert!(trace.contains(&format!("C->S  REST {offset}\n")), "REST {offset}: {trace}");
    }
    assert_same_bytes(&read(&dir.path().join("seg")), &data, "segmented download");
}

fn active_mode_get_and_put(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2_345_678, 7);
    std::fs::write(dir.path().join("act.bin"), &data).unwrap();
    let (_, trace) = ok(&["--active", "--trace", "put", "act.bin", &peer.url("/act.bin")], dir.path());
    assert!(trace.contains("opened (active)") && !trace.contains("opened (passive)"), "{trace}");
    assert!(trace.contains("C->S  EPRT |1|127.0.0.1|") || trace.contains("C->S  PORT 127,0,0,1,"), "{trace}");
    assert_same_bytes(&read(&peer.path("/act.bin")), &data, "active upload");
    let (_, trace) = ok(&["--active", "--trace", "get", &peer.url("/act.bin"), "back"], dir.path());
    assert!(trace.contains("opened (active)") && !trace.contains("opened (passive)"), "{trace}");
    assert_same_bytes(&read(&dir.path().join("back")), &data, "active download");
    // A listing over an active connection too.
    let (ls, _) = ok(&["--active", "ls", &peer.url("/")], dir.path());
    assert_eq!(ls, "act.bin\n");
}

fn mirror_reverse_then_back(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..50usize {
        let top = ["d0", "d1", "données", "d 3"][i % 4];
        let sub = src.join(top).join(if i % 3 == 0 { "deep/er" } else { "" });
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file {i}.dat")), random_bytes(i * 997, i as u64)).unwrap();
    }
    std::fs::create_dir_all(src.join("empty dir")).unwrap();
    let (_, said) = ok(&["mirror", "--reverse", "src", &peer.url("/m"), "--parallel", "4"], dir.path());
    assert!(said.contains("50 files uploaded"), "{said}");
    assert_trees_equal(&src, &peer.path("/m"));
    let (_, said) = ok(&["mirror", &peer.url("/m"), "back", "--parallel", "4"], dir.path());
    assert!(said.contains("50 files downloaded"), "{said}");
    assert_trees_equal(&src, &dir.path().join("back"));
    // Second runs find everything up to date, both ways.
    let (_, said) = ok(&["mirror", &peer.url("/m"), "back"], dir.path());
    assert!(said.contains("0 files downloaded") && said.contains("50 up to date"), "{said}");
    let (_, said) = ok(&["mirror", "--reverse", "src", &peer.url("/m")], dir.path());
    assert!(said.contains("0 files uploaded") && said.contains("50 up to date"), "{said}");
    // --delete removes on the server what the source no longer has (files, then directories).
    std::fs::remove_dir_all(src.join("d1")).unwrap();
    std::fs::remove_file(src.join("d0/file 4.dat")).unwrap();
    let (_, said) = ok(&["mirror", "--reverse", "--delete", "src", &peer.url("/m")], dir.path());
    assert!(said.contains("0 files uploaded"), "{said}");
    assert_trees_equal(&src, &peer.path("/m"));
}

fn ipv6_loopback(kind: Kind) {
    let Some(ip) = servers::ipv6_loopback() else {
        println!("skipped: ::1 is not available here (cannot bind [::1]:0)");
        return;
    };
    let peer = Peer::start_on(kind, ip);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(1_500_000, 8);
    std::fs::write(dir.path().join("six.bin"), &data).unwrap();
    assert!(peer.url("/").contains(&format!("[::1]:{}", peer.port)), "{}", peer.url("/"));
    let (_, trace) = ok(&["--trace", "put", "six.bin", &peer.url("/six.bin")], dir.path());
    assert!(trace.contains("C->S  EPSV"), "{trace}");
    assert_same_bytes(&read(&peer.path("/six.bin")), &data, "IPv6 upload");
    ok(&["get", &peer.url("/six.bin"), "g"], dir.path());
    assert_same_bytes(&read(&dir.path().join("g")), &data, "IPv6 download");
    let (_, trace) = ok(&["--active", "--trace", "get", &peer.url("/six.bin"), "a"], dir.path());
    assert!(trace.contains("C->S  EPRT |2|::1|"), "{trace}");
    assert_same_bytes(&read(&dir.path().join("a")), &data, "IPv6 active download");
    ok(&["--active", "put", "six.bin", &peer.url("/six2.bin")], dir.path());
    assert_same_bytes(&read(&peer.path("/six2.bin")), &data, "IPv6 active upload");
    let (ls, _) = ok(&["ls", &peer.url("/")], dir.path());
    assert_eq!(ls, "six.bin\nsix2.bin\n");
}

fn trace_names_the_data_port(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    peer.seed("/f", b"traced");
    let (_, trace) = ok(&["--trace", "get", &peer.url("/f"), "f"], dir.path());
    // The server's own words: "229 Entering Extended Passive Mode (|||port|)" (or a 227).
    let reply = trace
        .lines()
        .find(|l| l.contains("S->C  229 ") || l.contains("S->C  227 "))
        .unwrap_or_else(|| panic!("no 229/227 reply in the trace:\n{trace}"));
    let port = if reply.contains("S->C  229 ") {
        number_after(reply, "(|||").unwrap()
    } else {
        let nums: Vec<u64> = reply
            .rsplit('(')
            .next()
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        nums[4] * 256 + nums[5]
    };
    assert!((u64::from(peer.passive.0)..=u64::from(peer.passive.1)).contains(&port), "{port} {:?}", peer.passive);
    let derivation =
        trace.lines().find(|l| l.contains("data ") && l.contains(" -> port ")).unwrap_or_else(|| panic!("{trace}"));
    assert!(derivation.ends_with(&format!("= {port}")) || derivation.contains(&format!("-> port {port} ")), "{trace}");
    assert!(trace.contains(&format!("-> 127.0.0.1:{port} opened (passive)")), "{trace}");
    assert!(trace.contains("closed by server after 6 bytes"), "{trace}");
    assert_eq!(read(&dir.path().join("f")), b"traced");

    // JSON, active: the port the client announced is the one the server connected to.
    let (_, json) = ok(&["--trace=json", "--active", "get", &peer.url("/f"), "g"], dir.path());
    let events: Vec<serde_json::Value> = json.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let port_ev = events.iter().find(|e| e["event"] == "port").unwrap_or_else(|| panic!("{json}"));
    let open_ev =
        events.iter().find(|e| e["event"] == "open" && e["conn"] == "data").unwrap_or_else(|| panic!("{json}"));
    assert_eq!(open_ev["mode"], "active", "{json}");
    assert!(open_ev["local"].as_str().unwrap().ends_with(&format!(":{}", port_ev["port"])), "{json}");
    let announced = events
        .iter()
        .find(|e| {
            e["event"] == "command"
                && e["text"].as_str().is_some_and(|t| t.starts_with("EPRT") || t.starts_with("PORT"))
        })
        .unwrap_or_else(|| panic!("{json}"));
    assert!(!announced["text"].as_str().unwrap().is_empty());
}

fn remote_file_operations_and_exit_codes(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), b"some text\n").unwrap();
    ok(&["mkdir", &peer.url("/ops")], dir.path());
    assert!(peer.path("/ops").is_dir());
    ok(&["put", "t.txt", &peer.url("/ops/")], dir.path());
    let (cat, _) = ok(&["cat", &peer.url("/ops/t.txt")], dir.path());
    assert_eq!(cat, "some text\n");
    let (stat, _) = ok(&["stat", &peer.url("/ops/t.txt")], dir.path());
    assert!(stat.contains("size: 10"), "{stat}");
    ok(&["mv", &peer.url("/ops/t.txt"), &peer.remote("/ops/u.txt")], dir.path());
    assert!(peer.path("/ops/u.txt").is_file() && !peer.path("/ops/t.txt").exists());
    ok(&["rm", &peer.url("/ops/u.txt")], dir.path());
    ok(&["rmdir", &peer.url("/ops")], dir.path());
    assert!(!peer.path("/ops").exists());

    let missing = ferry(&["get", &peer.url("/nope"), "x"], dir.path());
    assert_eq!(missing.status.code(), Some(5), "{}", String::from_utf8_lossy(&missing.stderr));
    let missing = ferry(&["stat", &peer.url("/nope")], dir.path());
    assert_eq!(missing.status.code(), Some(5), "{}", String::from_utf8_lossy(&missing.stderr));
    // vsftpd here is anonymous-only (530 to any other user); Pure-FTPd knows alice, not this password.
    let bad = format!("ftp://alice:wrong@{}/", peer.authority());
    let refused = ferry(&["ls", &bad], dir.path());
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// Neither server has Ferry's `SITE SEGMENT`: `put --segments` says so and sends one stream.
fn put_segments_falls_back_to_one_stream(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2_000_003, 16);
    std::fs::write(dir.path().join("seg.bin"), &data).unwrap();
    let (_, trace) = ok(&["--trace", "put", "--segments", "4", "seg.bin", &peer.url("/seg.bin")], dir.path());
    assert!(trace.contains("seg.bin: the server has no SITE SEGMENT; uploading over one connection"), "{trace}");
    assert_eq!(trace.matches("C->S  STOR ").count(), 1, "{trace}");
    assert!(!trace.contains("C->S  SITE SEGMENT"), "{trace}");
    assert_same_bytes(&read(&peer.path("/seg.bin")), &data, "one-stream upload");
}

/// A copy from a server where the source is missing exits 5 and tells the target nothing.
fn copy_of_a_missing_source_leaves_nothing(kind: Kind) {
    let peer = Peer::start(kind);
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(&["--trace", "copy", &peer.url("/nope"), &peer.url("/target")], dir.path());
    let trace = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{trace}");
    assert!(!trace.contains("C->S  STOR"), "{trace}");
    assert!(!peer.path("/target").exists());
}

#[test]
fn copy_between_vsftpd_and_pureftpd() {
    let v = Peer::start(Kind::Vsftpd);
    let p = Peer::start(Kind::PureFtpd);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(1_700_000, 9);
    v.seed("/from-v", &data);
    let (_, said) = ok(&["copy", &v.url("/from-v"), &p.url("/to-p")], dir.path());
    assert!(said.contains("copied"), "{said}");
    assert_same_bytes(&read(&p.path("/to-p")), &data, "vsftpd -> Pure-FTPd");
    let (_, said) = ok(&["copy", &p.url("/to-p"), &v.url("/back-v")], dir.path());
    assert!(said.contains("copied"), "{said}");
    assert_same_bytes(&read(&v.path("/back-v")), &data, "Pure-FTPd -> vsftpd");
}

/// One `ferry copy` each way between Ferry and a peer, `rounds` times: each must succeed,
/// byte-exact, and within the timeout (the hang this guards against left a 0-byte file and no
/// 226). `peer_url(name)` and `peer_path(name)` name a file on the peer.
fn copy_both_ways(
    rounds: usize,
    peer_url: &dyn Fn(&str) -> String,
    peer_path: &dyn Fn(&str) -> std::path::PathBuf,
    seed: &dyn Fn(&str, &[u8]),
) {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(1_700_000, 17);
    std::fs::write(f.path("x.bin"), &data).unwrap();
    seed("/p.bin", &data);
    let ferry_url = |p: &str| format!("ftp://alice:secret@{}{p}", f.addr);
    for i in 0..rounds {
        let (_, said) = ok(&["copy", &ferry_url("/x.bin"), &peer_url(&format!("/to{i}.bin"))], dir.path());
        assert!(said.contains("copied"), "{said}");
        assert_same_bytes(&read(&peer_path(&format!("/to{i}.bin"))), &data, "Ferry -> peer");
        let (_, said) = ok(&["copy", &peer_url("/p.bin"), &ferry_url(&format!("/from{i}.bin"))], dir.path());
        assert!(said.contains("copied"), "{said}");
        assert_same_bytes(&read(&f.path(&format!("from{i}.bin"))), &data, "peer -> Ferry");
    }
}

/// FXP with pyftpdlib, which connects at EPRT: the target gets STOR (and answers 150) before the
/// source gets RETR, so the bytes never reach a data connection that is not receiving yet.
#[test]
fn fxp_with_pyftpdlib_both_ways() {
    let py = pyftpdlib::PyFtpd::start();
    let seed = |rel: &str, data: &[u8]| std::fs::write(py.path(rel), data).unwrap();
    copy_both_ways(10, &|rel| py.url(rel), &|rel| py.path(rel), &seed);
    assert!(py.log().contains("<- STOR /to0.bin"), "{}", py.root().display());
}

/// The same against every peer, many times (about 15 s): `cargo test -p ferry --test peers
/// -- --ignored fxp_loop`.
#[test]
#[ignore = "slow: 25 rounds each way against pyftpdlib, vsftpd and Pure-FTPd"]
fn fxp_loop_against_every_peer() {
    let py = pyftpdlib::PyFtpd::start();
    let seed = |rel: &str, data: &[u8]| std::fs::write(py.path(rel), data).unwrap();
    copy_both_ways(25, &|rel| py.url(rel), &|rel| py.path(rel), &seed);
    for kind in [Kind::Vsftpd, Kind::PureFtpd] {
        let peer = Peer::start(kind);
        copy_both_ways(25, &|rel| peer.url(rel), &|rel| peer.path(rel), &|rel, data| peer.seed(rel, data));
    }
}

/// `ferry stat` of a directory on a server without MLST (vsftpd): SIZE and MDTM both answer 550
/// for a directory, and the client then says "no such file" (exit 5) although it exists.
#[test]
fn vsftpd_stat_of_a_directory() {
    let peer = Peer::start(Kind::Vsftpd);
    let dir = tempfile::tempdir().unwrap();
    peer.seed("/d/f", b"x");
    let (stat, _) = ok(&["stat", &peer.url("/d")], dir.path());
    assert!(stat.contains("dir"), "{stat}");
}

/// `ferry get` of a missing remote file onto an existing local file: SIZE says 550 (`None`), the
/// client creates (truncates) the local file, then RETR fails with 550. Exit 5 is right, but the
/// local file has lost its contents (and a new empty file is left when there was none).
#[test]
fn get_of_a_missing_file_keeps_the_local_file() {
    let peer = Peer::start(Kind::Vsftpd);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"precious").unwrap();
    let out = ferry(&["get", &peer.url("/nope"), "keep.txt"], dir.path());
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(read(&dir.path().join("keep.txt")), b"precious");
}

#[test]
fn missing_servers_fail_with_the_install_hint() {
    // Not a server test: pins the message a machine without the servers gets.
    let result = std::panic::catch_unwind(|| servers::require(&["ferry-no-such-ftpd"], &[]));
    let msg = result.err().and_then(|e| e.downcast_ref::<String>().cloned()).unwrap_or_default();
    assert!(msg.contains("scripts/install-peer-servers.sh"), "{msg}");
}
