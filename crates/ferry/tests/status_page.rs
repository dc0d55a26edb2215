//! End-to-end: the status page in a real browser.
//!
//! Headless Chromium (Debian's package, installed by `scripts/install-test-deps.sh`) is driven
//! through the DevTools protocol: it opens the admin listener's page for a session, the test runs
//! FTP commands and a transfer on that session, and reads what the page shows: the sessions table
//! with the user, and the session's ladder (commands and replies on the control connection, the
//! data connection opening and closing with its byte count), which must grow as the session goes
//! on (server-sent events), without a reload. A screenshot is kept in
//! `target/test-artifacts/status-page.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{read_http, Ctrl, Ferry};
use serde_json::{json, Value};

/// Headless Chromium, killed on drop.
struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    /// The DevTools HTTP endpoint.
    devtools: String,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_binary() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium is not installed: run scripts/install-test-deps.sh")
}

impl Chromium {
    fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium_binary())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .arg("--window-size=1280,900")
            .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let devtools = loop {
            let line = lines.next().expect("chromium says where DevTools listens").unwrap();
            if let Some(url) = line.strip_prefix("DevTools listening on ws://") {
                break url.split('/').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, _profile: profile, devtools }
    }

    /// The first page's DevTools websocket URL.
    fn page(&self) -> String {
        // DevTools' HTTP server keeps the connection open: read the headers, then the length.
        let s = TcpStream::connect(&self.devtools).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(&s, "GET /json/list HTTP/1.1\r\nHost: {}\r\n\r\n", self.devtools).unwrap();
        let (_, body) = read_http(&mut BufReader::new(s));
        let targets: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let page = targets.iter().find(|t| t["type"] == "page").expect("a page target");
        page["webSocketDebuggerUrl"].as_str().unwrap().to_owned()
    }
}

/// A DevTools protocol session on one page.
struct Page {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Page {
    fn open(url: &str) -> Self {
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        Self { ws, next: 1 }
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::Text(msg.into())).unwrap();
        loop {
            let answer = self.ws.read().unwrap();
            let tungstenite::Message::Text(text) = answer else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        r["result"]["value"].clone()
    }

    /// Waits until `expression` (a string) contains every one of `wanted`; its last value.
    fn wait_for(&mut self, expression: &str, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.eval(expression).as_str().unwrap_or_default().to_owned();
            if wanted.iter().all(|w| text.contains(w)) {
                return text;
            }
            assert!(Instant::now() < deadline, "the page never showed {wanted:?}; it shows:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// STOR over EPSV, answered 226.
fn upload(c: &mut Ctrl, name: &str, body: &[u8]) {
    assert_eq!(c.upload(&format!("STOR {name}"), body).code.0, 226);
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_status_page_draws_a_session_as_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ferry.toml"), "[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let f = Ferry::start(&["--config", dir.path().join("ferry.toml").to_str().unwrap()]);
    let admin = f.admin.unwrap();
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload(&mut c, "before.bin", &[1u8; 4321]);
    let sessions: Vec<Value> = {
        let mut s = TcpStream::connect(admin).unwrap();
        write!(s, "GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    let id = sessions[0]["id"].as_u64().unwrap();

    let chromium = Chromium::start();
    let mut page = Page::open(&chromium.page());
    page.call("Page.enable", json!({}));
    page.call("Page.navigate", json!({ "url": format!("http://{admin}/?session={id}") }));
    // The table shows the session; the ladder has what happened before the page opened.
    page.wait_for("document.getElementById('sessions').innerText", &["alice", "127.0.0.1:", "idle"]);
    let ladder = "document.getElementById('ladder').innerText";
    let before = page.wait_for(
        ladder,
        &[
            "220 Ferry FTP server ready.",
            "USER alice",
            "PASS ****",
            "230 ",
            "STOR before.bin",
            "150 ",
            "data connection open: port ",
            "data connection closed: 4321 bytes",
            "226 ",
        ],
    );
    assert!(!before.contains("secret"), "the password is never shown");
    // Now, with the page open: the new steps arrive without a reload.
    upload(&mut c, "live.bin", &[2u8; 98_765]);
    c.ok("MKD reports", 257);
    page.wait_for(ladder, &["STOR live.bin", "data connection closed: 98765 bytes", "MKD reports", "257 "]);
    // The ladder's arrows: commands go one way, replies the other.
    let kinds = page.eval("[...document.querySelectorAll('#ladder .step')].map(e => e.className).join(' ')");
    let kinds = kinds.as_str().unwrap();
    for kind in ["step command", "step reply", "step data-open", "step data-close"] {
        assert!(kinds.contains(kind), "{kind} missing: {kinds}");
    }
    let shot = page.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = artifacts().join("status-page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}
