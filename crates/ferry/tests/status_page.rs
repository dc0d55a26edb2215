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

use std::io::{Read, Write};
use std::net::TcpStream;

use common::browser::{Chromium, Page};
use common::{Ctrl, Ferry};
use serde_json::{json, Value};

/// STOR over EPSV, answered 226.
fn upload(c: &mut Ctrl, name: &str, body: &[u8]) {
    assert_eq!(c.upload(&format!("STOR {name}"), body).code.0, 226);
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
    page.screenshot("status-page.png");
}
