//! End-to-end: hooks on uploads, deletions, renames and logins.
//!
//! - A command hook runs (through the hook runner, since the sandboxed server cannot exec) with the
//!   event in `FERRY_*` variables, including the uploaded file's path on disk.
//! - A webhook gets the event as JSON, signed with HMAC-SHA256, and is retried when it fails; a
//!   session never waits for it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{wait_for_lines as lines, Ferry};

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
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut signature) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "x-ferry-signature" => signature = value.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
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
