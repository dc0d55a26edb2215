//! Headless Chromium driven through the DevTools protocol (Debian's package, installed by
//! `scripts/install-test-deps.sh`): open a page, evaluate JavaScript in it, take a screenshot
//! into `target/test-artifacts/`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::read_http;

/// Headless Chromium, killed on drop.
pub struct Chromium {
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
    pub fn start() -> Self {
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
    pub fn page(&self) -> String {
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
pub struct Page {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Page {
    pub fn open(url: &str) -> Self {
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        Self { ws, next: 1 }
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        r["result"]["value"].clone()
    }

    /// Waits until `expression` (a string) contains every one of `wanted`; its last value.
    pub fn wait_for(&mut self, expression: &str, wanted: &[&str]) -> String {
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

impl Page {
    /// Navigates to `url` and waits until the document has loaded.
    pub fn load(&mut self, url: &str) {
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for("document.readyState", &["complete"]);
    }

    /// A PNG screenshot of the page, written to `target/test-artifacts/NAME`; its path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = artifacts().join(name);
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
        path
    }
}

/// `target/test-artifacts/`, created if missing.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
