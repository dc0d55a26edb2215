//! End-to-end: the `ferry` client commands against `ferry serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_trees_equal, random_bytes, read_file, Ferry};

fn ferry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).current_dir(cwd).output().expect("ferry runs")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = ferry(args, cwd);
    assert!(out.status.success(), "ferry {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn url(f: &Ferry, path: &str) -> String {
    format!("ftp://alice:secret@{}{path}", f.addr)
}

#[test]
fn put_ls_get_cat_stat_rm() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2_000_000, 1);
    std::fs::write(dir.path().join("a b.bin"), &data).unwrap();
    ok(&["put", "a b.bin", &url(&f, "/")], dir.path());
    assert_eq!(read_file(&f.path("a b.bin")), data);
    let ls = ok(&["ls", &url(&f, "/")], dir.path());
    assert_eq!(ls, "a b.bin\n");
    let json: serde_json::Value = serde_json::from_str(&ok(&["ls", "--json", &url(&f, "/")], dir.path())).unwrap();
    assert_eq!(json[0]["size"], 2_000_000);
    assert_eq!(json[0]["type"], "file");
    ok(&["get", &url(&f, "/a%20b.bin"), "copy.bin"], dir.path());
    assert_eq!(read_file(&dir.path().join("copy.bin")), data);
    std::fs::write(f.path("t.txt"), b"hello\n").unwrap();
    assert_eq!(ok(&["cat", &url(&f, "/t.txt")], dir.path()), "hello\n");
    assert!(ok(&["stat", &url(&f, "/t.txt")], dir.path()).contains("size: 6"));
    ok(&["mkdir", &url(&f, "/d")], dir.path());
    ok(&["mv", &url(&f, "/t.txt"), "/d/u.txt"], dir.path());
    assert!(f.path("d/u.txt").exists());
    ok(&["rm", &url(&f, "/d/u.txt")], dir.path());
    ok(&["rmdir", &url(&f, "/d")], dir.path());
    assert!(!f.path("d").exists());
    let missing = ferry(&["get", &url(&f, "/nope"), "x"], dir.path());
    assert_eq!(missing.status.code(), Some(5), "not found has its own exit code");
    let bad_login = ferry(&["ls", &format!("ftp://alice:wrong@{}/", f.addr)], dir.path());
    assert_eq!(bad_login.status.code(), Some(4));
    let no_server = ferry(&["ls", "--timeout", "5", "ftp://127.0.0.1:1/"], dir.path());
    assert_eq!(no_server.status.code(), Some(3));
}

#[test]
fn continue_and_segments() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(3_000_001, 2);
    std::fs::write(f.path("big"), &data).unwrap();
    std::fs::write(dir.path().join("big"), &data[..1_234_567]).unwrap();
    let said = ferry(&["get", "-c", &url(&f, "/big")], dir.path());
    assert!(said.status.success());
    let said = String::from_utf8_lossy(&said.stderr);
    assert!(said.contains("big: resuming at byte 1234567 of 3000001 (1765434 to go)"), "{said}");
    assert_eq!(read_file(&dir.path().join("big")), data);
    // --quiet says nothing.
    std::fs::write(dir.path().join("big"), &data[..1_000]).unwrap();
    let quiet = ferry(&["get", "-c", "--quiet", &url(&f, "/big")], dir.path());
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    assert_eq!(read_file(&dir.path().join("big")), data);
    ok(&["get", "--segments", "4", &url(&f, "/big"), "seg"], dir.path());
    assert_eq!(read_file(&dir.path().join("seg")), data);
    // Resume an upload.
    std::fs::write(f.path("up"), &data[..777_777]).unwrap();
    std::fs::write(dir.path().join("up"), &data).unwrap();
    let said = ferry(&["put", "-c", "up", &url(&f, "/up")], dir.path());
    assert!(said.status.success());
    let said = String::from_utf8_lossy(&said.stderr);
    assert!(said.contains("/up: resuming at byte 777777 of 3000001"), "{said}");
    assert_eq!(read_file(&f.path("up")), data);
}

#[test]
fn active_mode_ascii_and_ipv6() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(f.path("t.txt"), b"a\nb\n").unwrap();
    ok(&["--active", "get", &url(&f, "/t.txt"), "t1"], dir.path());
    assert_eq!(read_file(&dir.path().join("t1")), b"a\nb\n");
    // ASCII: the wire has CRLF, the local file LF; uploading converts back.
    std::fs::write(dir.path().join("dos.txt"), b"x\ny\n").unwrap();
    ok(&["--ascii", "put", "dos.txt", &url(&f, "/dos.txt")], dir.path());
    assert_eq!(read_file(&f.path("dos.txt")), b"x\ny\n");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let six = Ferry::start_on("[::1]:0", &[]);
        std::fs::write(six.path("v6"), b"six").unwrap();
        let u = format!("ftp://alice:secret@[::1]:{}/v6", six.addr.port());
        ok(&["get", &u, "v6"], dir.path());
        ok(&["--active", "get", &u, "v6a"], dir.path());
        assert_eq!(read_file(&dir.path().join("v6a")), b"six");
    }
}

#[test]
fn mirror_both_ways_and_delete() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..60 {
        let sub = src.join(format!("d{}", i % 4)).join(if i % 3 == 0 { "deep" } else { "" });
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("file {i}.dat")), random_bytes(i * 97, i as u64)).unwrap();
    }
    let out = ferry(&["mirror", "--reverse", "src", &url(&f, "/m"), "--parallel", "4"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&["mirror", &url(&f, "/m"), "back", "--parallel", "3"], dir.path());
    assert_trees_equal(&src, &dir.path().join("back"));
    assert_trees_equal(&src, &f.path("m"));
    // A second run has nothing to do.
    let again = ferry(&["mirror", &url(&f, "/m"), "back"], dir.path());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 files downloaded"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // --dry-run changes nothing; --delete removes extras.
    std::fs::write(dir.path().join("back/extra"), b"x").unwrap();
    let dry = ok(&["mirror", "--delete", "--dry-run", &url(&f, "/m"), "back"], dir.path());
    assert!(dry.contains("delete") && dir.path().join("back/extra").exists(), "{dry}");
    ok(&["mirror", "--delete", &url(&f, "/m"), "back"], dir.path());
    assert!(!dir.path().join("back/extra").exists());
    assert_trees_equal(&src, &dir.path().join("back"));
}

#[test]
fn copy_between_servers_says_how() {
    let a = Ferry::start(&[]);
    let b = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(500_000, 9);
    std::fs::write(a.path("x"), &data).unwrap();
    let out = ferry(&["copy", &url(&a, "/x"), &url(&b, "/y")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server-to-server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_file(&b.path("y")), data);
}

#[test]
fn trace_shows_the_pasv_port_derivation() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(f.path("f"), b"traced").unwrap();
    // PASV, as the seeds draw it: 227 (h1,h2,h3,h4,p1,p2) -> port p1*256+p2.
    let out = ferry(&["--trace", "--disable-epsv", "get", &url(&f, "/f"), "p"], dir.path());
    assert!(out.status.success());
    let trace = String::from_utf8_lossy(&out.stderr).to_string();
    let line = trace.lines().find(|l| l.contains("227 (")).expect("PASV derivation in the trace");
    let nums: Vec<u32> =
        line.split('(').nth(1).unwrap().split(')').next().unwrap().split(',').map(|x| x.parse().unwrap()).collect();
    let port = nums[4] * 256 + nums[5];
    assert!(line.ends_with(&format!("-> port {}*256+{} = {port}", nums[4], nums[5])), "{line}");
    assert!(trace.contains(&format!("127.0.0.1:{port} opened (passive)")), "{trace}");
    assert!(!trace.contains("C->S  EPSV"), "{trace}");
    assert_eq!(read_file(&dir.path().join("p")), b"traced");
    // EPSV.
    let out = ferry(&["--trace", "get", &url(&f, "/f"), "f"], dir.path());
    let trace = String::from_utf8_lossy(&out.stderr).to_string();
    let port_line = trace.lines().find(|l| l.contains("229 (|||")).expect("EPSV derivation in trace");
    let port: u16 = port_line.split("-> port ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(trace.contains(&format!("127.0.0.1:{port} opened (passive)")), "{trace}");
    assert!(trace.contains("C->S  PASS ****") && !trace.contains("secret"), "{trace}");
    assert!(trace.contains("closed by server after 6 bytes"), "{trace}");
    let out = ferry(&["--trace=json", "--active", "get", &url(&f, "/f"), "g"], dir.path());
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stderr).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let port_ev = events.iter().find(|e| e["event"] == "port").expect("port event");
    let open_ev = events.iter().find(|e| e["event"] == "open" && e["conn"] == "data").expect("data open event");
    assert!(open_ev["local"].as_str().unwrap().ends_with(&format!(":{}", port_ev["port"])), "{events:?}");
}

#[test]
fn shell_reads_commands_from_a_pipe() {
    use std::io::Write;
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(f.path("remote.txt"), b"from the server").unwrap();
    std::fs::write(dir.path().join("local.txt"), b"from the client").unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"must survive").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["shell", &url(&f, "/")])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"mkdir sub\ncd sub\npwd\nput local.txt\ncd ..\nget remote.txt got.txt\nget missing.txt keep.txt\nmget *.txt\nls sub\nbogus\nbye\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("/sub\n"), "{stdout}");
    assert_eq!(read_file(&f.path("sub/local.txt")), b"from the client");
    assert_eq!(read_file(&dir.path().join("got.txt")), b"from the server");
    assert_eq!(read_file(&dir.path().join("remote.txt")), b"from the server");
    assert!(stdout.contains("local.txt"), "ls sub lists the upload: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
    // A failed get leaves the local file as it was, and no partial file beside it.
    assert_eq!(read_file(&dir.path().join("keep.txt")), b"must survive");
    assert!(!dir.path().join("keep.txt.ferry-part").exists());
}

#[test]
fn copy_of_a_missing_source_fails_and_leaves_nothing_on_the_target() {
    let a = Ferry::start(&[]);
    let b = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for target in ["/y", "/"] {
        let out = ferry(&["copy", &url(&a, "/nope"), &url(&b, target)], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "not found: {stderr}");
        assert!(stderr.contains("nope"), "{stderr}");
        assert!(std::fs::read_dir(&b.root).unwrap().next().is_none(), "the target got {:?}", b.root);
    }
}

#[test]
fn ls_long_prints_minutes_and_json_keeps_the_fact() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(f.path("dated"), b"12345").unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_582_157_836);
    std::fs::File::options().write(true).open(f.path("dated")).unwrap().set_modified(t).unwrap();
    std::fs::create_dir(f.path("sub")).unwrap();
    let long = ok(&["ls", "--long", &url(&f, "/")], dir.path());
    let line = long.lines().find(|l| l.ends_with(" dated")).unwrap_or_else(|| panic!("{long}"));
    assert!(line.starts_with("file") && line.contains(" 5 2026-12-06 18:35 dated"), "{long}");
    assert!(!long.contains("20261206"), "no raw MLSD time: {long}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["ls", "--json", &url(&f, "/")], dir.path())).unwrap();
    assert_eq!(json[0]["modified_utc"], "20261206183557.836", "{json}");
}

/// Every row of the README's exit-code table.
#[test]
fn exit_codes_follow_the_table() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let code = |args: &[&str]| {
        let out = ferry(args, dir.path());
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    std::fs::write(f.path("small"), b"abc").unwrap();
    // 0 success.
    assert_eq!(code(&["ls", &url(&f, "/")]).0, Some(0));
    // 1 other error: a local file larger than the remote one cannot be resumed.
    std::fs::write(dir.path().join("small"), b"abcdef").unwrap();
    let (c, said) = code(&["get", "-c", &url(&f, "/small")]);
    assert_eq!(c, Some(1), "{said}");
    // 2 usage: a malformed URL, a bad option value, an unknown option, mv between servers.
    for args in [
        &["ls", "ftp//nowhere"][..],
        &["ls", "ftp://[::1/"],
        &["ls", "ftp://host:99999/"],
        &["--trace=xml", "ls", &url(&f, "/")],
        &["ls", "--no-such-option", &url(&f, "/")],
        &["mv", &url(&f, "/small"), "ftp://elsewhere.invalid/x"],
    ] {
        let (c, said) = code(args);
        assert_eq!(c, Some(2), "{args:?}: {said}");
    }
    // 3 connection failed.
    let (c, said) = code(&["ls", "--timeout", "5", "ftp://127.0.0.1:1/"]);
    assert_eq!(c, Some(3), "{said}");
    // 4 login refused.
    let (c, said) = code(&["ls", &format!("ftp://alice:wrong@{}/", f.addr)]);
    assert_eq!(c, Some(4), "{said}");
    // 5 not found: a file, a directory.
    assert_eq!(code(&["get", &url(&f, "/nope"), "x"]).0, Some(5));
    let (c, said) = code(&["rmdir", &url(&f, "/no-dir")]);
    assert_eq!(c, Some(5), "{said}");
    // 6 transfer failed: the server sends 5 bytes of a file it says has 10.
    let short =
        common::fake_ftp::FakeFtp::start(b"12345".to_vec(), |verb, _| (verb == "SIZE").then(|| "213 10".into()));
    let (c, said) = code(&["get", &short.url("/f"), "short"]);
    assert_eq!(c, Some(6), "{said}");
    // 7 other refusals: a directory that is not empty, --tls to a server without FTPS.
    std::fs::create_dir(f.path("full")).unwrap();
    std::fs::write(f.path("full/x"), b"x").unwrap();
    let (c, said) = code(&["rmdir", &url(&f, "/full")]);
    assert_eq!(c, Some(7), "{said}");
    assert!(said.contains("not empty"), "{said}");
    let (c, said) = code(&["--tls", "ls", &url(&f, "/")]);
    assert_eq!(c, Some(7), "{said}");
    assert!(said.contains("AUTH TLS"), "{said}");
}

#[test]
fn shell_errors_name_the_local_file() {
    use std::io::Write;
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["shell", &url(&f, "/")])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"put missing.txt\nlcd /no/such/dir\nbye\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: missing.txt: No such file"), "{stderr}");
    assert!(stderr.contains("error: lcd /no/such/dir: No such file"), "{stderr}");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn verify_get_put_copy_and_resume_against_ferry() {
    let a = Ferry::start(&[]);
    let b = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2_345_678, 11);
    let hex = sha256_hex(&data);
    std::fs::write(dir.path().join("v.bin"), &data).unwrap();
    let out = ferry(&["put", "--verify", "v.bin", &url(&a, "/v.bin")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("/v.bin: verified (SHA-256 {hex} from HASH)")), "{said}");
    let out = ferry(&["--trace", "get", "--verify", &url(&a, "/v.bin"), "back.bin"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("verified (SHA-256 {hex} from HASH)")), "{said}");
    assert!(said.contains("C->S  HASH /v.bin") && said.contains(&format!("213 SHA-256 0-2345678 {hex}")), "{said}");
    assert_eq!(read_file(&dir.path().join("back.bin")), data);
    // Resumed: the part already here is in the digest too.
    std::fs::write(dir.path().join("back.bin"), &data[..1_000_000]).unwrap();
    let out = ferry(&["get", "-c", "--verify", &url(&a, "/v.bin"), "back.bin"], dir.path());
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("verified"));
    assert_eq!(read_file(&dir.path().join("back.bin")), data);
    std::fs::write(a.path("up.bin"), &data[..500_000]).unwrap();
    let out = ferry(&["put", "-c", "--verify", "v.bin", &url(&a, "/up.bin")], dir.path());
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("verified"));
    assert_eq!(read_file(&a.path("up.bin")), data);
    // copy: both servers' digests.
    let out = ferry(&["copy", "--verify", &url(&a, "/v.bin"), &url(&b, "/c.bin")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("/c.bin: verified (SHA-256 {hex} on both servers)")), "{said}");
    // --verify compares bytes: not with --ascii.
    assert_eq!(ferry(&["--ascii", "get", "--verify", &url(&a, "/v.bin"), "t"], dir.path()).status.code(), Some(2));
}

#[test]
fn verify_falls_back_to_xsha256_and_xmd5_and_fails_on_a_mismatch() {
    use common::fake_ftp::FakeFtp;
    let dir = tempfile::tempdir().unwrap();
    let data = b"the bytes the fake server sends".to_vec();
    let hex = sha256_hex(&data);
    // No HASH in FEAT; XSHA256 answered "250 <hex>" (the path after it, as some servers do).
    let h = hex.clone();
    let x = FakeFtp::start(data.clone(), move |verb, arg| (verb == "XSHA256").then(|| format!("250 {h} {arg}")));
    let out = ferry(&["get", "--verify", &x.url("/f"), "x1"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains(&format!("verified (SHA-256 {hex} from XSHA256)")), "{said}");
    assert!(!x.got("HASH"), "HASH is not in FEAT: not sent");
    // XSHA256 unknown (502); XMD5 answered "213 <hex>".
    let m =
        FakeFtp::start(data.clone(), |verb, _| (verb == "XMD5").then(|| "213 DFD4BA6E8828D05518D676A992A5735E".into()));
    let out = ferry(&["get", "--verify", &m.url("/f"), "x2"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(m.got("XSHA256 /f") && m.got("XMD5 /f"), "{:?}", m.lines.lock().unwrap());
    assert!(
        out.status.success() && said.contains("verified (MD5 dfd4ba6e8828d05518d676a992a5735e from XMD5)"),
        "{said}"
    );
    // HASH whose current algorithm is one we do not compute: OPTS HASH SHA-256 first.
    let h = hex.clone();
    let opts = FakeFtp::start(data.clone(), move |verb, arg| match verb {
        "FEAT" => Some("211-Features:\r\n EPSV\r\n SIZE\r\n HASH SHA-1*;SHA-256;MD5\r\n211 End".into()),
        "OPTS" if arg == "HASH SHA-256" => Some("200 SHA-256".into()),
        "HASH" => Some(format!("213 SHA-256 0-31 {h} {arg}")),
        _ => None,
    });
    let out = ferry(&["get", "--verify", &opts.url("/f"), "x3"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = opts.lines.lock().unwrap().clone();
    let at = |l: &str| lines.iter().position(|x| x == l).unwrap_or_else(|| panic!("{l}: {lines:?}"));
    assert!(at("OPTS HASH SHA-256") < at("HASH /f"), "{lines:?}");
    // A HASH that differs: exit 6, and the downloaded file is kept.
    let bad = FakeFtp::start(data.clone(), |verb, arg| match verb {
        "FEAT" => Some("211-Features:\r\n EPSV\r\n SIZE\r\n HASH SHA-256*;MD5\r\n211 End".into()),
        "HASH" => Some(format!("213 SHA-256 0-31 {} {arg}", "0".repeat(64))),
        _ => None,
    });
    let out = ferry(&["get", "--verify", &bad.url("/f"), "kept"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(said.contains(&format!("SHA-256 differs: {hex} here, {} on the server", "0".repeat(64))), "{said}");
    assert_eq!(read_file(&dir.path().join("kept")), data, "the file is kept");
    // A server that computes no digest: --verify cannot be met (exit 6), the file is kept.
    let none = FakeFtp::start(data.clone(), |_, _| None);
    let out = ferry(&["get", "--verify", &none.url("/f"), "unverified"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(said.contains("cannot verify"), "{said}");
    assert_eq!(read_file(&dir.path().join("unverified")), data);
    // put: the digest of what was read while uploading.
    std::fs::write(dir.path().join("up"), &data).unwrap();
    let h = hex.clone();
    let up = FakeFtp::start(Vec::new(), move |verb, _| (verb == "XSHA256").then(|| format!("213 {h}")));
    let out = ferry(&["put", "--verify", "up", &up.url("/up")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(*up.stored.lock().unwrap(), data);
}

#[test]
fn mirror_verify_and_checksum() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("small.txt"), b"small").unwrap();
    std::fs::write(src.join("sub/big.bin"), random_bytes(1_500_000, 12)).unwrap();
    let out = ferry(&["mirror", "--reverse", "--verify", "src", &url(&f, "/m")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches("verified (SHA-256").count(), 2, "{said}");
    let out = ferry(&["mirror", "--verify", &url(&f, "/m"), "back"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.matches("verified (SHA-256").count() == 2, "{said}");
    assert_trees_equal(&src, &dir.path().join("back"));
    // Same size, same time, other bytes: size+time sees nothing, --checksum sees it.
    let small = src.join("small.txt");
    let mtime = std::fs::metadata(&small).unwrap().modified().unwrap();
    std::fs::write(&small, b"SMALL").unwrap();
    std::fs::File::options().write(true).open(&small).unwrap().set_modified(mtime).unwrap();
    let plain = ferry(&["mirror", "--reverse", "src", &url(&f, "/m")], dir.path());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("0 files uploaded"));
    assert_eq!(read_file(&f.path("m/small.txt")), b"small");
    let out = ferry(&["--trace", "mirror", "--reverse", "--checksum", "src", &url(&f, "/m")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("1 files uploaded (5 bytes), 1 up to date"), "{said}");
    assert!(said.contains("C->S  HASH /m/small.txt"), "{said}");
    assert_eq!(read_file(&f.path("m/small.txt")), b"SMALL");
    // And downloading: the local copy in back/ differs from the server's now.
    let out = ferry(&["mirror", "--checksum", &url(&f, "/m"), "back"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("1 files downloaded"), "{said}");
    assert_eq!(read_file(&dir.path().join("back/small.txt")), b"SMALL");
}

/// Without `SITE SEGMENT` in FEAT (vsftpd, Pure-FTPd, here a scripted server), `put --segments`
/// says so and uploads over one connection.
#[test]
fn put_segments_falls_back_to_one_stream() {
    let plain = common::fake_ftp::FakeFtp::start(Vec::new(), |_, _| None);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(3_000_017, 13);
    std::fs::write(dir.path().join("s.bin"), &data).unwrap();
    let out = ferry(&["put", "--segments", "4", "s.bin", &plain.url("/s.bin")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("/s.bin: the server has no SITE SEGMENT; uploading over one connection"), "{said}");
    let lines = plain.lines.lock().unwrap().clone();
    assert_eq!(lines.iter().filter(|l| l.starts_with("STOR")).count(), 1, "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("SITE") || l.starts_with("REST")), "{lines:?}");
    assert_eq!(*plain.stored.lock().unwrap(), data);
}

/// `put --segments 4` against a server with `SITE SEGMENT`: four connections, each `REST` +
/// `STOR` of its quarter, then `SITE SEGMENT END`; the file is byte-exact and verified.
#[test]
fn put_segments_four_connections() {
    let f = Ferry::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(4_000_003, 14);
    std::fs::write(dir.path().join("s.bin"), &data).unwrap();
    std::fs::write(f.path("s.bin"), b"the old version").unwrap();
    let out = ferry(&["--trace", "put", "--segments", "4", "--verify", "s.bin", &url(&f, "/s.bin")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("C->S  SITE SEGMENT BEGIN 4000003 /s.bin"), "{said}");
    for offset in [0, 1_000_001, 2_000_002, 3_000_003] {
        assert!(said.contains(&format!("C->S  REST {offset}\n")), "REST {offset}: {said}");
    }
    assert_eq!(said.matches("C->S  STOR /s.bin").count(), 4, "{said}");
    assert!(said.contains("C->S  SITE SEGMENT END /s.bin") && said.contains("S->C  250 "), "{said}");
    assert!(said.contains("(4000003 bytes, 4 segments)") && said.contains("verified (SHA-256"), "{said}");
    assert_eq!(read_file(&f.path("s.bin")), data);
}

/// Client options are listed (and accepted) on client commands only, before or after the
/// subcommand; every default is shown, the server's from its config defaults.
#[test]
fn help_lists_client_options_on_client_commands_only() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = ferry(args, dir.path());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    for sub in [&["serve"][..], &["user", "add"], &["user", "list"], &["cert", "self-signed"], &["who"], &["ban"]] {
        let text = help(&[sub, &["--help"][..]].concat());
        assert!(!text.contains("Client options") && !text.contains("--trace"), "{sub:?}:\n{text}");
    }
    for sub in ["ls", "get", "put", "mirror", "copy", "shell", "rmdir", "stat"] {
        let text = help(&[sub, "--help"]);
        assert!(text.contains("Client options:"), "{sub}:\n{text}");
        assert!(text.contains("--timeout <SECS>") && text.contains("[default: 30]"), "{sub}:\n{text}");
        assert!(text.contains("--trace-html <FILE>"), "{sub}:\n{text}");
    }
    let serve = help(&["serve", "--help"]);
    let limits = ferry_server::config::Limits::default();
    for (flag, value) in [
        ("--idle-timeout", limits.idle_timeout_secs),
        ("--login-timeout", limits.login_timeout_secs),
        ("--data-timeout", limits.data_timeout_secs),
        ("--max-sessions <N>", limits.max_sessions as u64),
    ] {
        let at = serve.find(flag).unwrap_or_else(|| panic!("{flag}:\n{serve}"));
        let entry = &serve[at..];
        let entry = &entry[..entry[2..].find("\n      --").map_or(entry.len(), |i| i + 2)];
        assert!(entry.contains(&format!("[default: {value}]")), "{flag}: {entry}");
    }
    assert!(help(&["get", "--help"]).contains("[default: 1]"), "--segments shows its default");
    assert!(help(&["mirror", "--help"]).contains("[default: 4]"), "--parallel shows its default");
    // Accepted before and after the subcommand; refused by serve.
    let f = Ferry::start(&[]);
    for args in
        [&["--trace", "--timeout", "5", "ls", &url(&f, "/")][..], &["ls", "--trace", "--timeout", "5", &url(&f, "/")]]
    {
        let out = ferry(args, dir.path());
        assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("C->S  MLSD"), "{args:?}");
    }
    assert_eq!(ferry(&["serve", "--trace"], dir.path()).status.code(), Some(2));
}

/// `SITE SEGMENT END` answered `451 ... missing A-B`: the client sends that range again (REST A,
/// STOR of B-A+1 bytes) and ends again.
#[test]
fn put_segments_sends_missing_ranges_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ends = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = ends.clone();
    let server = common::fake_ftp::FakeFtp::start(Vec::new(), move |verb, arg| match (verb, arg) {
        ("FEAT", _) => Some("211-Features:\r\n EPSV\r\n SIZE\r\n REST STREAM\r\n SITE SEGMENT\r\n211 End".into()),
        ("SITE", a) if a.starts_with("SEGMENT BEGIN") => Some("200 begun".into()),
        ("SITE", a) if a.starts_with("SEGMENT END") => Some(if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            "451 Segmented upload of /m.bin incomplete: missing 100-199.".into()
        } else {
            "250 complete".into()
        }),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(1_000, 15);
    std::fs::write(dir.path().join("m.bin"), &data).unwrap();
    let out = ferry(&["put", "--segments", "2", "m.bin", &server.url("/m.bin")], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("misses 1 range(s); sending them again"), "{said}");
    assert_eq!(ends.load(Ordering::SeqCst), 2);
    let lines = server.lines.lock().unwrap().clone();
    assert!(lines.contains(&"SITE SEGMENT BEGIN 1000 /m.bin".to_string()), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("STOR /m.bin")).count(), 3, "{lines:?}");
    let rest: Vec<&String> = lines.iter().filter(|l| l.starts_with("REST")).collect();
    assert_eq!(rest.last().unwrap().as_str(), "REST 100", "{lines:?}");
    // The last STOR carried bytes 100..200 (the fake keeps the last STOR's bytes).
    assert_eq!(*server.stored.lock().unwrap(), data[100..200]);
}
