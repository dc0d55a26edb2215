//! End-to-end: raw byte scripts against `ferry serve`, pinning the wire format.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{active_listener, random_bytes, read_file, Ferry};

/// The session the seeds dissect: USER, PASS, SYST, FEAT, PWD, TYPE I, SIZE, PASV, RETR, QUIT.
#[test]
fn the_seeds_session() {
    let f = Ferry::start(&[]);
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(f.path("file.bin"), &content).unwrap();
    let mut c = f.connect();
    let greet = c.read();
    assert_eq!(greet.code.0, 220);
    assert_eq!(c.ok("USER alice", 331).lines[0], "Password required for alice.");
    c.ok("PASS secret", 230);
    assert_eq!(c.ok("SYST", 215).lines, vec!["UNIX Type: L8"]);
    let feat = c.ok("FEAT", 211);
    for f in ["EPSV", "EPRT", "MDTM", "REST STREAM", "SIZE", "PASV", "UTF8", "TVFS", "MFMT"] {
        assert!(feat.lines.iter().any(|l| l == f), "FEAT lacks {f}: {feat:?}");
    }
    assert!(feat.lines.iter().any(|l| l.starts_with("MLST type*;size*;modify*;")));
    assert_eq!(c.ok("PWD", 257).lines[0], "\"/\" is the current directory");
    c.ok("TYPE I", 200);
    assert_eq!(c.ok("SIZE file.bin", 213).lines[0], "100000");
    // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2): port = p1*256+p2.
    let pasv = c.ok("PASV", 227);
    let text = &pasv.lines[0];
    let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(&n[..4], &[127, 0, 0, 1]);
    let port = n[4] * 256 + n[5];
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let opening = c.ok("RETR file.bin", 150);
    assert!(opening.lines[0].contains("BINARY"), "{opening:?}");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, content);
    assert_eq!(c.read().code.0, 226);
    c.ok("QUIT", 221);
    assert!(c.try_read().is_none(), "server closes after QUIT");
}

#[test]
fn multiline_and_quoting_formats() {
    let f = Ferry::start(&[]);
    let mut c = f.login();
    c.send("FEAT");
    // Raw bytes: "211-" first line, space-indented middle lines, "211 " last line.
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    while !text.contains("\r\n211 ") {
        let n = c.stream.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.starts_with("211-"), "{text}");
    assert!(text.contains("\r\n EPSV\r\n"), "{text}");
    let r = c.ok("MKD say \"hi\"", 257);
    assert_eq!(r.lines[0], "\"/say \"\"hi\"\"\" created.");
    c.ok("CWD say \"hi\"", 250);
    assert_eq!(c.ok("PWD", 257).lines[0], "\"/say \"\"hi\"\"\" is the current directory");
}

#[test]
fn every_rfc959_command_has_an_answer() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("f.txt"), b"one\ntwo\n").unwrap();
    let mut c = f.login();
    for (cmd, code) in [
        ("ACCT x", 202),
        ("CWD /", 250),
        ("CDUP", 200),
        ("XCUP", 200),
        ("XCWD /", 250),
        ("XPWD", 257),
        ("SMNT /x", 502),
        ("TYPE A", 200),
        ("TYPE A N", 200),
        ("TYPE E", 504),
        ("TYPE A T", 504),
        ("TYPE L 8", 200),
        ("TYPE L 7", 504),
        ("TYPE I", 200),
        ("STRU F", 200),
        ("STRU R", 504),
        ("STRU P", 504),
        ("MODE S", 200),
        ("MODE B", 504),
        ("MODE C", 504),
        ("ALLO 100", 202),
        ("ALLO 100 R 10", 202),
        ("REST 0", 350),
        ("XMKD d1", 257),
        ("XRMD d1", 250),
        ("MKD d2", 257),
        ("RMD d2", 250),
        ("RNFR f.txt", 350),
        ("RNTO g.txt", 250),
        ("RNTO h.txt", 503),
        ("RNFR missing", 550),
        ("SITE HELP", 214),
        ("SITE CHMOD 600 g.txt", 200),
        ("SITE FOO", 504),
        ("SYST", 215),
        ("STAT", 211),
        ("STAT /", 212),
        ("STAT g.txt", 213),
        ("HELP", 214),
        ("HELP RETR", 214),
        ("HELP BOGUS", 502),
        ("NOOP", 200),
        ("SIZE g.txt", 213),
        ("SIZE /", 550),
        ("MDTM g.txt", 213),
        ("MFMT 20200102030405 g.txt", 213),
        ("MLST g.txt", 250),
        ("OPTS UTF8 ON", 200),
        ("OPTS MLST type;size;", 200),
        ("OPTS BOGUS", 501),
        ("HOST example.com", 503),
        ("AUTH TLS", 504),
        ("ABOR", 225),
        ("DELE g.txt", 250),
        ("DELE g.txt", 550),
        ("RETR nope", 425),
        ("LIST", 425),
        ("FOO", 500),
        ("RETR", 501),
        ("PORT 1,2,3", 501),
        ("EPRT |3|1.2.3.4|5|", 522),
        ("EPSV 3", 522),
        ("EPSV 2", 522),
        ("MFMT x y", 501),
    ] {
        c.ok(cmd, code);
    }
    assert!(!f.path("g.txt").exists());
    c.ok("MDTM nope", 550);
    c.ok("REIN", 220);
    c.ok("PWD", 530);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("QUIT", 221);
}

#[test]
fn mfmt_sets_and_mdtm_reads_and_chmod_changes_mode() {
    use std::os::unix::fs::PermissionsExt;
    let f = Ferry::start(&[]);
    std::fs::write(f.path("t"), b"x").unwrap();
    let mut c = f.login();
    assert_eq!(c.ok("MFMT 20200102030405 t", 213).lines[0], "Modify=20200102030405; t");
    assert_eq!(c.ok("MDTM t", 213).lines[0], "20200102030405");
    c.ok("SITE CHMOD 640 t", 200);
    assert_eq!(std::fs::metadata(f.path("t")).unwrap().permissions().mode() & 0o777, 0o640);
    let mlst = c.ok("MLST t", 250);
    assert!(mlst.lines[1].contains("modify=20200102030405;") && mlst.lines[1].contains("UNIX.mode=0640;"), "{mlst:?}");
    assert!(mlst.lines[1].ends_with(" /t"));
}

#[test]
fn hash_answers_the_sha256_of_a_file() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("hello.txt"), b"hello\n").unwrap();
    std::fs::create_dir(f.path("dir")).unwrap();
    let mut c = f.connect();
    assert_eq!(c.read().code.0, 220);
    c.ok("HASH hello.txt", 530);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    let feat = c.ok("FEAT", 211);
    assert!(feat.lines.iter().any(|l| l == "HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32"), "{feat:?}");
    // sha256sum of "hello\n"; the range is the whole file, 6 bytes.
    let r = c.ok("HASH hello.txt", 213);
    let want = "SHA-256 0-6 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 hello.txt";
    assert_eq!(r.lines, [want]);
    c.ok("HASH nope.txt", 550);
    c.ok("HASH dir", 550);
    c.ok("HASH", 501);
    let up = random_bytes(300_000, 21);
    assert_eq!(c.upload("STOR up.bin", &up).code.0, 226);
    let r = c.ok("HASH up.bin", 213);
    assert!(r.lines[0].starts_with("SHA-256 0-300000 "), "{r:?}");
}

#[test]
fn upload_temporaries_are_nobodys_to_touch() {
    let f = Ferry::start(&[]);
    let temp = ".ferry-upload.x.1.2";
    std::fs::write(f.path(temp), b"an upload in progress").unwrap();
    let mut c = f.login();
    for cmd in ["SIZE", "MDTM", "DELE", "RNFR", "CWD", "MLST", "STAT"] {
        c.ok(&format!("{cmd} {temp}"), 553);
    }
    c.ok(&format!("RNFR {}", "f"), 550);
    for cmd in ["RETR", "STOR", "APPE", "LIST", "NLST", "MLSD"] {
        let _data = c.epsv_connect();
        c.ok(&format!("{cmd} {temp}"), 553);
    }
    let _data = c.epsv_connect();
    c.ok("STOR .ferry-upload.other", 553);
    assert_eq!(read_file(&f.path(temp)), b"an upload in progress");
}

#[test]
fn transfers_in_every_data_mode() {
    let f = Ferry::start(&[]);
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(f.path("big"), &content).unwrap();
    let mut c = f.login();
    // Sessions start in TYPE A (RFC 959); clients send TYPE I before binary transfers.
    c.ok("TYPE I", 200);
    // EPSV
    assert_eq!(c.download("RETR big"), content);
    // PASV
    let mut d = c.pasv_connect();
    c.ok("RETR big", 150);
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(c.read().code.0, 226);
    assert_eq!(got, content);
    // PORT
    let l = active_listener("127.0.0.1");
    let p = l.local_addr().unwrap().port();
    c.ok(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 255), 200);
    c.send("RETR big");
    let (mut d, _) = l.accept().unwrap();
    assert_eq!(c.read().code.0, 150);
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(c.read().code.0, 226);
    assert_eq!(got, content);
    // EPRT, upload
    let l = active_listener("127.0.0.1");
    let p = l.local_addr().unwrap().port();
    c.ok(&format!("EPRT |1|127.0.0.1|{p}|"), 200);
    c.send("STOR up");
    let (mut d, _) = l.accept().unwrap();
    assert_eq!(c.read().code.0, 150);
    d.write_all(&content).unwrap();
    drop(d);
    assert_eq!(c.read().code.0, 226);
    assert_eq!(read_file(&f.path("up")), content);
}

/// Binary uploads of every size around the point where the server stops reading the start of an
/// upload and splices the rest into the file (64 KiB), new and replacing, sent at once and in
/// pieces with pauses, arrive byte for byte.
#[test]
fn uploads_around_the_splice_threshold_arrive_whole() {
    let f = Ferry::start(&["--no-fsync"]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    for (i, n) in [0usize, 1, 4096, 65_535, 65_536, 65_537, 200_000, 3 << 20].into_iter().enumerate() {
        let content = random_bytes(n, i as u64);
        assert_eq!(c.upload(&format!("STOR u{n}"), &content).code.0, 226, "{n} bytes");
        assert_eq!(read_file(&f.path(&format!("u{n}"))), content, "{n} bytes");
        // In pieces: the server has read part of the start when the rest arrives.
        let replaced = random_bytes(n, 100 + i as u64);
        let mut d = c.epsv_connect();
        c.ok(&format!("STOR u{n}"), 150);
        for piece in replaced.chunks(40_000) {
            d.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(d);
        assert_eq!(c.read().code.0, 226, "{n} bytes in pieces");
        assert_eq!(read_file(&f.path(&format!("u{n}"))), replaced, "{n} bytes in pieces");
    }
}

/// A large directory's names are kept between listings while it is unchanged; every change made
/// through FTP (STOR, DELE, RNFR/RNTO, MKD) shows in the very next NLST, LIST and MLSD.
#[test]
fn listings_of_a_large_directory_see_every_change_at_once() {
    let f = Ferry::start(&["--no-fsync"]);
    std::fs::create_dir(f.path("big")).unwrap();
    for i in 0..600 {
        std::fs::write(f.path(&format!("big/f{i:04}")), b"").unwrap();
    }
    // Unchanged for longer than the server requires before it keeps the names.
    std::thread::sleep(Duration::from_millis(2300));
    let mut c = f.login();
    let names = |c: &mut common::Ctrl, cmd: &str| -> Vec<String> {
        String::from_utf8(c.download(cmd)).unwrap().lines().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect()
    };
    assert_eq!(names(&mut c, "NLST big").len(), 600);
    assert_eq!(names(&mut c, "NLST big").len(), 600);
    assert_eq!(c.upload("STOR big/new", b"x").code.0, 226);
    for cmd in ["NLST big", "LIST big", "MLSD big"] {
        let got = names(&mut c, cmd);
        assert_eq!(got.len(), 601, "{cmd}");
        assert!(got.iter().any(|n| n.ends_with("new")), "{cmd}");
    }
    c.ok("DELE big/f0000", 250);
    assert!(!names(&mut c, "NLST big").iter().any(|n| n.ends_with("f0000")));
    c.ok("RNFR big/f0001", 350);
    c.ok("RNTO big/zzz", 250);
    let got = names(&mut c, "LIST big");
    assert!(got.contains(&"zzz".to_string()) && !got.contains(&"f0001".to_string()), "{got:?}");
    c.ok("MKD big/sub", 257);
    assert!(names(&mut c, "MLSD big").contains(&"sub".to_string()));
}

#[test]
fn type_a_converts_both_ways() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("unix.txt"), b"a\nb\r\nc\n").unwrap();
    let mut c = f.login();
    c.ok("TYPE A", 200);
    assert_eq!(c.download("RETR unix.txt"), b"a\r\nb\r\nc\r\n");
    assert_eq!(c.upload("STOR dos.txt", b"x\r\ny\r\nz\rw\r\n").code.0, 226);
    assert_eq!(read_file(&f.path("dos.txt")), b"x\ny\nz\rw\n");
    c.ok("TYPE I", 200);
    assert_eq!(c.download("RETR unix.txt"), b"a\nb\r\nc\n");
}

#[test]
fn rest_resumes_downloads_and_uploads() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("r"), b"0123456789").unwrap();
    let mut c = f.login();
    c.ok("REST 4", 350);
    assert_eq!(c.download("RETR r"), b"456789");
    c.ok("REST 11", 350);
    c.epsv_connect();
    c.ok("RETR r", 554);
    c.ok("REST 6", 350);
    assert_eq!(c.upload("STOR r", b"AB").code.0, 226);
    assert_eq!(read_file(&f.path("r")), b"012345AB");
    assert_eq!(c.upload("APPE r", b"CD").code.0, 226);
    assert_eq!(read_file(&f.path("r")), b"012345ABCD");
    // STOU picks a new name and says which.
    let mut d = c.epsv_connect();
    let r = c.ok("STOU r", 150);
    let name = r.lines[0].strip_prefix("FILE: ").unwrap().to_string();
    assert_ne!(name, "r");
    d.write_all(b"unique").unwrap();
    drop(d);
    assert_eq!(c.read().code.0, 226);
    assert_eq!(read_file(&f.path(&name)), b"unique");
}

#[test]
fn listings() {
    let f = Ferry::start(&[]);
    std::fs::create_dir(f.path("sub")).unwrap();
    std::fs::write(f.path("sub/a b.txt"), b"12345").unwrap();
    std::fs::write(f.path("sub/.hidden"), b"").unwrap();
    std::fs::write(f.path("sub/données.txt"), b"").unwrap();
    let mut c = f.login();
    let list = String::from_utf8(c.download("LIST sub")).unwrap();
    assert!(list.lines().any(|l| l.starts_with("-rw") && l.ends_with(" a b.txt") && l.contains(" 5 ")), "{list}");
    assert!(!list.contains(".hidden"));
    let all = String::from_utf8(c.download("LIST -la sub")).unwrap();
    assert!(all.contains(".hidden"));
    let nlst = String::from_utf8(c.download("NLST sub")).unwrap();
    assert_eq!(nlst, "a b.txt\r\ndonnées.txt\r\n");
    let glob = String::from_utf8(c.download("NLST sub/*.txt")).unwrap();
    assert_eq!(glob, "a b.txt\r\ndonnées.txt\r\n");
    let mlsd = String::from_utf8(c.download("MLSD sub")).unwrap();
    assert!(mlsd.contains("type=file;size=5;") && mlsd.contains("; a b.txt\r\n"), "{mlsd}");
    let one = String::from_utf8(c.download("LIST sub/a b.txt")).unwrap();
    assert_eq!(one.lines().count(), 1);
    c.epsv_connect();
    c.ok("MLSD sub/a b.txt", 501);
}

#[test]
fn abor_during_a_transfer_then_the_session_goes_on() {
    let f = Ferry::start(&[]);
    let big = vec![7u8; 64 << 20];
    std::fs::write(f.path("big"), &big).unwrap();
    let mut c = f.login();
    let mut d = c.epsv_connect();
    c.ok("RETR big", 150);
    let mut first = [0u8; 1024];
    d.read_exact(&mut first).unwrap();
    // Urgent-style ABOR: Telnet IP + DM before the command.
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    let a = c.read();
    let b = c.read();
    assert_eq!((a.code.0, b.code.0), (426, 226), "{a:?} {b:?}");
    drop(d);
    c.ok("NOOP", 200);
    assert_eq!(c.download("NLST"), b"big\r\n");
}

#[test]
fn stat_during_a_transfer_reports_progress() {
    let f = Ferry::start(&[]);
    std::fs::write(f.path("big"), vec![1u8; 32 << 20]).unwrap();
    let mut c = f.login();
    let mut d = c.epsv_connect();
    c.ok("RETR big", 150);
    let mut first = vec![0u8; 1 << 20];
    d.read_exact(&mut first).unwrap();
    let s = c.ok("STAT", 213);
    assert!(s.lines[0].contains("RETR /big") && s.lines[0].contains("bytes"), "{s:?}");
    // Commands other than ABOR/STAT/NOOP/QUIT wait for the transfer.
    c.send("PWD");
    let mut rest = Vec::new();
    d.read_to_end(&mut rest).unwrap();
    assert_eq!(first.len() + rest.len(), 32 << 20);
    assert_eq!(c.read().code.0, 226);
    assert_eq!(c.read().code.0, 257);
}

#[test]
fn pipelined_commands_in_one_packet() {
    let f = Ferry::start(&[]);
    let mut c = f.connect();
    c.read();
    c.send_raw(b"USER alice\r\nPASS secret\r\nNOOP\r\nPWD\r\nSYST\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.read().code.0).collect();
    assert_eq!(codes, vec![331, 230, 200, 257, 215]);
}

#[test]
fn login_rules() {
    let f = Ferry::start(&["--anonymous"]);
    let mut c = f.connect();
    c.read();
    c.ok("LIST", 530);
    c.ok("PASS x", 503);
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    c.ok("USER anonymous", 331);
    c.ok("PASS me@example.com", 230);
    std::fs::write(f.path("pub.txt"), b"public").unwrap();
    assert_eq!(c.download("RETR pub.txt"), b"public");
    c.epsv_connect();
    c.ok("STOR x", 550);
    c.ok("MKD x", 550);
    c.ok("DELE pub.txt", 550);
}

#[test]
fn ipv6_epsv_and_eprt() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let f = Ferry::start_on("[::1]:0", &[]);
    std::fs::write(f.path("six"), b"over ipv6").unwrap();
    let mut c = f.login();
    assert_eq!(c.download("RETR six"), b"over ipv6");
    c.ok("PASV", 425);
    c.ok("EPSV 1", 522);
    let l = active_listener("::1");
    let p = l.local_addr().unwrap().port();
    c.ok(&format!("EPRT |2|::1|{p}|"), 200);
    c.send("RETR six");
    let (mut d, _) = l.accept().unwrap();
    assert_eq!(c.read().code.0, 150);
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(c.read().code.0, 226);
    assert_eq!(got, b"over ipv6");
    c.ok("EPRT |1|127.0.0.1|5000|", 522);
}

#[test]
fn epsv_all_refuses_other_setup() {
    let f = Ferry::start(&[]);
    let mut c = f.login();
    c.ok("EPSV ALL", 200);
    c.ok("PASV", 503);
    c.ok("PORT 127,0,0,1,20,0", 503);
    c.ok("EPRT |1|127.0.0.1|5120|", 503);
    assert_eq!(c.download("NLST"), b"");
}

#[test]
fn idle_timeout_closes_with_421() {
    let f = Ferry::start(&["--idle-timeout", "1"]);
    let mut c = f.login();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.read().code.0, 421);
    assert!(c.try_read().is_none());
}

#[test]
fn per_ip_limit_answers_421_before_greeting() {
    let f = Ferry::start(&["--max-sessions-per-ip", "2"]);
    let mut a = f.connect();
    let mut b = f.connect();
    assert_eq!(a.read().code.0, 220);
    assert_eq!(b.read().code.0, 220);
    let mut c = f.connect();
    assert_eq!(c.read().code.0, 421);
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut d = f.connect();
    assert_eq!(d.read().code.0, 220);
}

#[test]
fn too_many_failed_logins_disconnect() {
    let f = Ferry::start(&[]);
    let mut c = f.connect();
    c.read();
    for _ in 0..2 {
        c.ok("USER alice", 331);
        c.ok("PASS bad", 530);
    }
    c.ok("USER alice", 331);
    c.ok("PASS bad", 530);
    assert_eq!(c.read().code.0, 421);
    assert!(c.try_read().is_none());
}

#[test]
fn sigterm_lets_a_running_transfer_finish_and_exits_zero() {
    let mut f = Ferry::start(&[]);
    std::fs::write(f.path("big"), vec![3u8; 16 << 20]).unwrap();
    let mut idle = f.login();
    let mut c = f.login();
    let mut d = c.epsv_connect();
    c.ok("RETR big", 150);
    let mut first = vec![0u8; 1 << 20];
    d.read_exact(&mut first).unwrap();
    let _ = std::process::Command::new("kill").args(["-TERM", &f.pid().to_string()]).status();
    assert_eq!(idle.read().code.0, 421, "idle sessions are told and closed");
    let mut rest = Vec::new();
    d.read_to_end(&mut rest).unwrap();
    assert_eq!(first.len() + rest.len(), 16 << 20, "the running transfer completed");
    assert_eq!(c.read().code.0, 226);
    assert_eq!(f.stop(), Some(0));
}

#[test]
fn abor_after_an_urgent_telnet_synch() {
    // BSD/netkit ftp(1): IAC IP IAC as TCP urgent data, then DM and ABOR in band. The kernel
    // returns the bytes before the urgent mark on their own; the ABOR behind it must still be read.
    let f = Ferry::start(&[]);
    std::fs::write(f.path("big"), vec![1u8; 32 << 20]).unwrap();
    let mut c = f.login();
    let mut d = c.epsv_connect();
    c.ok("RETR big", 150);
    let mut first = [0u8; 4096];
    d.read_exact(&mut first).unwrap();
    socket2::SockRef::from(&c.stream).send_out_of_band(&[0xff, 0xf4, 0xff]).unwrap();
    c.send_raw(b"\xf2ABOR\r\n");
    let (a, b) = (c.read(), c.read());
    assert_eq!((a.code.0, b.code.0), (426, 226), "{a:?} {b:?}");
    drop(d);
    c.ok("NOOP", 200);
}

#[test]
fn idle_sessions_cost_one_descriptor_each() {
    let f = Ferry::start(&["--max-sessions-per-ip", "500"]);
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", f.pid())).unwrap().count();
    let before = fds();
    let sessions: Vec<_> = (0..100).map(|_| f.login()).collect();
    let during = fds();
    // The sessions share one handle on their root directory: 100 sockets, not 200 descriptors.
    assert!(during - before <= 110, "{before} -> {during} descriptors for 100 sessions");
    drop(sessions);
}
