//! End-to-end: hooks on uploads, deletions, renames and logins.
//!
//! - A command hook runs (through the hook runner, since the sandboxed server cannot exec) with the
//!   event in `FERRY_*` variables, including the uploaded file's path on disk.
//! - A webhook gets the event as JSON, signed with HMAC-SHA256, and is retried when it fails; a
//!   session never waits for it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{names, read_http, wait_for_lines as lines, Ferry};

#[test]
fn command_hooks_run_outside_the_sandbox_with_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.out");
    let config = dir.path().join("ferry.toml");
    // The hook also reads the uploaded file by its local path: what a virus scanner would do.
    let command = format!(
        "echo \"$FERRY_EVENT user=$FERRY_USER ip=$FERRY_IP path=$FERRY_PATH from=$FERRY_FROM bytes=$FERRY_BYTES \
         content=$(cat \"$FERRY_LOCAL_PATH\" 2>/dev/null)\" >> {}",
        out.display()
    );
    std::fs::write(
        &config,
        format!("[[hooks]]\nevents = [\"upload\", \"delete\", \"rename\", \"login\"]\ncommand = {command:?}\n"),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    assert_eq!(c.upload("STOR up.txt", b"scanned").code.0, 226);
    // Hooks run after the fact, asynchronously: let the upload's read the file before it moves.
    assert_eq!(lines(&out, 2).len(), 2, "{}", f.stderr());
    c.ok("RNFR up.txt", 350);
    c.ok("RNTO moved.txt", 250);
    c.ok("DELE moved.txt", 250);
    let got = lines(&out, 4);
    assert_eq!(got.len(), 4, "{got:#?}\n{}", f.stderr());
    assert!(got[0].starts_with("login user=alice ip=127.0.0.1"), "{}", got[0]);
    assert!(
        got[1].starts_with("upload user=alice ip=127.0.0.1 path=/up.txt from= bytes=7 content=scanned"),
        "{}",
        got[1]
    );
    assert!(got[2].starts_with("rename user=alice ip=127.0.0.1 path=/moved.txt from=/up.txt"), "{}", got[2]);
    assert!(got[3].starts_with("delete user=alice ip=127.0.0.1 path=/moved.txt"), "{}", got[3]);
    let log = f.stderr();
    assert!(log.contains("hook runner started") && log.contains("sandbox: Landlock"), "{log}");
}

/// A webhook receiver: answers 500 to the first request, 200 to the others; each request's
/// signature header and body go to the channel.
fn receiver() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ferry", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let (headers, body) = read_http(&mut BufReader::new(stream.try_clone().unwrap()));
            let signature =
                headers.into_iter().find(|(n, _)| n == "x-ferry-signature").map(|(_, v)| v).unwrap_or_default();
            let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send((signature, String::from_utf8(body).unwrap()));
        }
    });
    (url, rx)
}

#[test]
fn webhooks_are_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = receiver();
    std::fs::write(dir.path().join("secret"), "s3cret-hook-key\n").unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\nevents = [\"upload\"]\nurl = {url:?}\nsecret_file = {:?}\nretries = 2\n",
            dir.path().join("secret")
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    assert_eq!(c.upload("STOR w.bin", &[5u8; 1000]).code.0, 226);
    // Refused once (500), delivered on the retry a second later: the same body both times.
    let first = requests.recv_timeout(Duration::from_secs(10)).expect("the webhook was called");
    let second = requests.recv_timeout(Duration::from_secs(10)).expect("the webhook was retried");
    assert_eq!(first, second);
    let (signature, body) = second;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["user"].as_str(), v["path"].as_str(), v["bytes"].as_u64()),
        (Some("upload"), Some("alice"), Some("/w.bin"), Some(1000))
    );
    assert_eq!(signature, ferry_server::hooks::signature(b"s3cret-hook-key", body.as_bytes()));
    // An independent HMAC: Python's hmac module.
    let py = std::process::Command::new("python3")
        .args(["-c", "import hmac,hashlib,sys; print('sha256='+hmac.new(b's3cret-hook-key', sys.argv[1].encode(), hashlib.sha256).hexdigest())", &body])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(py.stdout).unwrap().trim(), signature);
    // No third call: it succeeded.
    assert!(requests.recv_timeout(Duration::from_millis(1500)).is_err());
    c.ok("NOOP", 200);
}

#[test]
fn an_upload_verify_hook_rejects_before_226_and_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let quarantine = dir.path().join("quarantine");
    let config = dir.path().join("ferry.toml");
    // A scanner in miniature: reads the upload on stdin (as `clamscan -` would), and finds the
    // same bytes at FERRY_LOCAL_PATH, under a name no client sees.
    let command = "case \"$FERRY_LOCAL_PATH\" in */.ferry-upload.*|\"$FERRY_ROOT$FERRY_PATH\") ;; *) echo \"odd path $FERRY_LOCAL_PATH\"; exit 3;; esac; \
                   if grep -q EICAR-TEST; then echo \"found EICAR-TEST in $FERRY_PATH ($FERRY_BYTES bytes)\"; exit 1; fi; \
                   [ \"$(wc -c < \"$FERRY_LOCAL_PATH\")\" -eq \"$FERRY_BYTES\" ] || { echo size mismatch; exit 4; }";
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\nevents = [\"upload.verify\"]\ncommand = {command:?}\nquarantine = {:?}\ntimeout_secs = 10\n",
            quarantine
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    // Clean: published at 226.
    assert_eq!(c.upload("STOR doc.txt", b"hello").code.0, 226, "{}", f.stderr());
    assert_eq!(std::fs::read(f.root.join("doc.txt")).unwrap(), b"hello");
    // Infected, over an existing file: 550 with the hook's words; the old file is untouched.
    let r = c.upload("STOR doc.txt", b"xx EICAR-TEST xx");
    assert_eq!(r.code.0, 550, "{r:?}");
    assert!(r.lines[0].contains("found EICAR-TEST in /doc.txt (16 bytes)"), "{r:?}");
    assert_eq!(std::fs::read(f.root.join("doc.txt")).unwrap(), b"hello", "the old file was lost");
    // Infected, new: never appears.
    assert_eq!(c.upload("STOR new.bin", b"EICAR-TEST").code.0, 550);
    assert!(!f.root.join("new.bin").exists());
    // Appended: the file goes back to its old length.
    assert_eq!(c.upload("APPE doc.txt", b" EICAR-TEST").code.0, 550);
    assert_eq!(std::fs::read(f.root.join("doc.txt")).unwrap(), b"hello");
    // Nothing hidden left behind in the root, and nothing shown to clients.
    assert_eq!(names(&f.root), ["doc.txt"], "{}", f.stderr());
    let listing = String::from_utf8(c.download("NLST")).unwrap();
    assert_eq!(listing.trim(), "doc.txt");
    // The quarantine holds the three rejected uploads, whole.
    let held = names(&quarantine);
    assert_eq!(held.len(), 3, "{held:?}");
    let mut contents: Vec<Vec<u8>> = held.iter().map(|n| std::fs::read(quarantine.join(n)).unwrap()).collect();
    contents.sort();
    assert_eq!(contents, [b"EICAR-TEST".to_vec(), b"hello EICAR-TEST".to_vec(), b"xx EICAR-TEST xx".to_vec()]);
    assert!(held.iter().all(|n| n.contains("-alice-")), "{held:?}");
    // A real client sees the refusal: curl's upload fails with the 550.
    let local = dir.path().join("bad.txt");
    std::fs::write(&local, "EICAR-TEST by curl").unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-T", local.to_str().unwrap(), &format!("ftp://alice:secret@{}/bad.txt", f.addr)])
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl's upload of a rejected file succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("550"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!f.root.join("bad.txt").exists());
    assert_eq!(names(&quarantine).len(), 4);
    assert!(f.stderr().contains("upload not published: rejected by the verify hook"), "{}", f.stderr());
    c.ok("NOOP", 200);
}

#[test]
fn a_verify_hook_that_does_not_answer_in_time_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let quarantine = dir.path().join("q");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\nevents = [\"upload.verify\"]\ncommand = \"sleep 30\"\nquarantine = {quarantine:?}\ntimeout_secs = 1\n"
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    let started = std::time::Instant::now();
    let r = c.upload("STOR slow.txt", b"unverified");
    assert_eq!(r.code.0, 451, "{r:?}");
    assert!(r.lines[0].contains("killed after 1 s"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout did not hold: {:?}", started.elapsed());
    assert!(!f.root.join("slow.txt").exists());
    assert_eq!(names(&f.root), Vec::<String>::new());
    assert_eq!(names(&quarantine).len(), 1);
}

#[test]
fn a_verify_webhook_reads_the_staged_file_and_decides() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/verify", listener.local_addr().unwrap());
    // The receiver opens the file the payload names (it is on this machine) and refuses (403)
    // what contains EICAR-TEST, with its reason in the body.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (_, body) = read_http(&mut BufReader::new(stream.try_clone().unwrap()));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let local = v["local_path"].as_str().unwrap_or_default();
            let content = std::fs::read(local).unwrap_or_default();
            let answer = if content.windows(10).any(|w| w == b"EICAR-TEST") {
                "403 Forbidden\r\nContent-Length: 21\r\n\r\nsignature EICAR-TEST\n".to_owned()
            } else if content.is_empty() {
                "500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_owned()
            } else {
                "204 No Content\r\n\r\n".to_owned()
            };
            let _ = write!(stream, "HTTP/1.1 {answer}");
        }
    });
    let quarantine = dir.path().join("q");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[[hooks]]\nevents = [\"upload.verify\"]\nurl = {url:?}\nquarantine = {quarantine:?}\ntimeout_secs = 5\n"
        ),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    assert_eq!(c.upload("STOR ok.txt", b"fine").code.0, 226, "{}", f.stderr());
    assert_eq!(std::fs::read(f.root.join("ok.txt")).unwrap(), b"fine");
    let r = c.upload("STOR bad.txt", b"EICAR-TEST");
    assert_eq!(r.code.0, 550, "{r:?}");
    assert!(r.lines[0].contains("signature EICAR-TEST"), "{r:?}");
    assert_eq!(names(&f.root), ["ok.txt"]);
    assert_eq!(names(&quarantine).len(), 1);
}
