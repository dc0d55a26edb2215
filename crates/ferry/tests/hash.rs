//! End-to-end: `HASH` (draft-bryan-ftpext-hash-02) with `OPTS HASH` and `RANG`, the `X*` digest
//! verbs, and digests kept with files: an upload's SHA-256 is computed beside it as it streams,
//! so `HASH` answers at once; other files are hashed once; a change behind Ferry's back is noticed.
//! Digests are checked against coreutils (`sha256sum`, `md5sum`, ...) and Python's `zlib.crc32`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{random_bytes, Ferry};

/// The digest of `file` by a coreutils tool (`sha256sum`, ...).
fn coreutils(tool: &str, file: &Path) -> String {
    let out = Command::new(tool).arg(file).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// Runs a Python expression with `data` bound to `file`'s bytes.
fn python(expr: &str, file: &Path) -> String {
    let code = format!("import zlib,os,sys; data=open(sys.argv[1],'rb').read(); print({expr})");
    let out = Command::new("python3").args(["-c", &code, file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The digest kept with `file` (the extended attribute), if any.
fn kept(file: &Path) -> String {
    python("(lambda: os.getxattr(sys.argv[1], 'user.ferry.hash.sha-256').decode())() if 'user.ferry.hash.sha-256' in os.listxattr(sys.argv[1]) else ''", file)
}

#[test]
fn an_uploaded_file_answers_hash_at_once() {
    let f = Ferry::start(&[]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    let data = random_bytes(64 << 20, 18);
    c.ok("OPTS HASH SHA-256", 200);
    // Asked right after the 226: the digest, computed beside the upload, is ready or nearly.
    assert_eq!(c.upload("STOR big.bin", &data).code.0, 226);
    let started = Instant::now();
    let r = c.ok("HASH big.bin", 213);
    let took = started.elapsed();
    let path = f.root.join("big.bin");
    let expected = coreutils("sha256sum", &path);
    assert_eq!(r.lines[0], format!("SHA-256 0-{} {expected} big.bin", 64 << 20));
    assert!(kept(&path).ends_with(&expected), "the upload kept its digest: {:?}", kept(&path));
    assert!(took < Duration::from_millis(50), "HASH of an uploaded 64 MiB file took {took:?}");
    eprintln!("HASH of a 64 MiB upload: {took:?}");
    // MFMT changes the time, not the bytes: the kept digest stays valid.
    c.ok("MFMT 20200102030405 big.bin", 213);
    assert!(kept(&path).ends_with(&expected), "MFMT dropped the kept digest");
    assert!(c.ok("HASH big.bin", 213).lines[0].contains(&expected));
    // Appended behind Ferry's back: the kept digest no longer holds, and is not used.
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all_at_end(b"tail");
    let changed = coreutils("sha256sum", &path);
    assert_ne!(changed, expected);
    assert!(c.ok("HASH big.bin", 213).lines[0].contains(&changed));
    assert!(kept(&path).ends_with(&changed), "the new digest is kept");
}

#[test]
fn mfmt_right_after_an_upload_keeps_the_digest_still_being_computed() {
    // Clients that keep times (lftp, FileZilla, curl -R) send MFMT right after the 226, when the
    // digest computed beside the upload may not be there yet: MFMT waits for it and stamps it
    // with the new time, so HASH still answers from it.
    let f = Ferry::start(&["--no-fsync"]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    for round in 0..3 {
        let data = random_bytes(32 << 20, 40 + round);
        assert_eq!(c.upload("STOR t.bin", &data).code.0, 226);
        c.ok("MFMT 20200102030405 t.bin", 213);
        let path = f.root.join("t.bin");
        let expected = coreutils("sha256sum", &path);
        let mtime_ns = python("os.stat(sys.argv[1]).st_mtime_ns", &path);
        assert_eq!(kept(&path), format!("{}:{mtime_ns}:{expected}", 32 << 20), "round {round}");
        assert_eq!(c.ok("HASH t.bin", 213).lines[0], format!("SHA-256 0-{} {expected} t.bin", 32 << 20));
    }
}

/// `write_all` for a file opened to append.
trait AppendAll {
    fn write_all_at_end(self, bytes: &[u8]);
}

impl AppendAll for std::fs::File {
    fn write_all_at_end(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).unwrap();
    }
}

#[test]
fn every_algorithm_ranges_and_the_x_verbs() {
    let f = Ferry::start(&[]);
    let path = f.root.join("placed.bin");
    std::fs::write(&path, random_bytes(300_000, 7)).unwrap();
    let mut c = f.login();
    // FEAT lists every algorithm with a star on the session's.
    let feat = c.ok("FEAT", 211).lines.join("\n");
    assert!(feat.contains("\nHASH SHA-1;SHA-256*;SHA-512;MD5;CRC32\n"), "{feat}");
    assert!(feat.contains("\nRANG\n"), "{feat}");
    assert_eq!(c.ok("OPTS HASH", 200).lines[0], "SHA-256");
    // A file placed behind Ferry's back is hashed on demand, and the result kept.
    assert_eq!(kept(&path), "");
    let sha256 = coreutils("sha256sum", &path);
    assert_eq!(c.ok("HASH placed.bin", 213).lines[0], format!("SHA-256 0-300000 {sha256} placed.bin"));
    assert!(kept(&path).ends_with(&sha256));
    for (alg, expected) in [
        ("SHA-1", coreutils("sha1sum", &path)),
        ("SHA-512", coreutils("sha512sum", &path)),
        ("MD5", coreutils("md5sum", &path)),
        ("CRC32", python("'%08x' % zlib.crc32(data)", &path)),
    ] {
        assert_eq!(c.ok(&format!("OPTS HASH {alg}"), 200).lines[0], alg);
        assert_eq!(c.ok("HASH placed.bin", 213).lines[0], format!("{alg} 0-300000 {expected} placed.bin"), "{alg}");
    }
    let feat = c.ok("FEAT", 211).lines.join("\n");
    assert!(feat.contains("\nHASH SHA-1;SHA-256;SHA-512;MD5;CRC32*\n"), "the star follows OPTS HASH: {feat}");
    assert_eq!(c.ok("OPTS HASH WHIRLPOOL", 504).code.0, 504);
    assert_eq!(c.ok("OPTS HASH", 200).lines[0], "CRC32", "a refused algorithm changes nothing");
    // RANG: the next HASH covers start..end (end exclusive), then the whole file again.
    c.ok("OPTS HASH SHA-256", 200);
    assert_eq!(c.ok("RANG 1000 5000", 350).lines[0], "Restarting at 1000. Ending at 5000.");
    let range = python("__import__('hashlib').sha256(data[1000:5000]).hexdigest()", &path);
    assert_eq!(c.ok("HASH placed.bin", 213).lines[0], format!("SHA-256 1000-5000 {range} placed.bin"));
    assert!(c.ok("HASH placed.bin", 213).lines[0].starts_with("SHA-256 0-300000 "));
    // Another command in between drops a pending RANG.
    c.ok("RANG 0 10", 350);
    c.ok("NOOP", 200);
    assert!(c.ok("HASH placed.bin", 213).lines[0].starts_with("SHA-256 0-300000 "));
    c.ok("RANG 9 1", 501);
    // The X verbs: 250 and the hex digest.
    assert_eq!(c.ok("XSHA256 placed.bin", 250).lines[0], sha256);
    assert_eq!(c.ok("XSHA1 placed.bin", 250).lines[0], coreutils("sha1sum", &path));
    assert_eq!(c.ok("XSHA512 placed.bin", 250).lines[0], coreutils("sha512sum", &path));
    assert_eq!(c.ok("XMD5 placed.bin", 250).lines[0], coreutils("md5sum", &path));
    assert_eq!(c.ok("XCRC placed.bin", 250).lines[0], python("'%08x' % zlib.crc32(data)", &path));
    // Errors: a directory, a missing file, a path outside the root.
    std::fs::create_dir(f.root.join("d")).unwrap();
    c.ok("HASH d", 550);
    c.ok("HASH nope.bin", 550);
    assert!(c.ok("XMD5 ../../etc/passwd", 550).lines[0].contains("No such file"), "never outside the root");
}

#[test]
fn a_long_hash_leaves_the_session_responsive_and_abor_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    // bob may read 20 MB/s: a 60 MB file takes three seconds to hash, whatever the machine.
    let users = dir.path().join("users.toml");
    common::user_cmd(&["add", "bob"], &users, Some("bob-pw"));
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("download_bps = 20000000\n");
    std::fs::write(&users, text).unwrap();
    let f = Ferry::start(&["--users", users.to_str().unwrap()]);
    let path = f.root.join("sixty.bin");
    std::fs::write(&path, random_bytes(60_000_000, 3)).unwrap();
    let mut c = common::Ctrl::greeted(f.addr);
    c.ok("USER bob", 331);
    c.ok("PASS bob-pw", 230);
    c.send("HASH sixty.bin");
    std::thread::sleep(Duration::from_millis(500));
    // The session answers at once meanwhile: NOOP, and STAT with the progress.
    let asked = Instant::now();
    c.ok("NOOP", 200);
    let stat = c.ok("STAT", 213).lines.join(" ");
    assert!(asked.elapsed() < Duration::from_millis(500), "the session waited for the digest");
    assert!(stat.contains("HASH") && stat.contains("/sixty.bin"), "{stat}");
    // ABOR stops it: 426 for the digest, 226 for the ABOR.
    c.send("ABOR");
    assert_eq!(c.read().code.0, 426);
    assert_eq!(c.read().code.0, 226);
    assert!(kept(&path).is_empty(), "an aborted digest keeps nothing");
    // Let alone, it finishes, paced by the user's rate (about 3 s), and is right.
    let started = Instant::now();
    let r = c.ok("HASH sixty.bin", 213);
    let took = started.elapsed();
    assert!(r.lines[0].contains(&coreutils("sha256sum", &path)), "{r:?}");
    assert!(took >= Duration::from_millis(2500), "the rate was not kept: {took:?}");
    // Then it is kept: at once.
    let started = Instant::now();
    c.ok("HASH sixty.bin", 213);
    assert!(started.elapsed() < Duration::from_millis(100));
}
